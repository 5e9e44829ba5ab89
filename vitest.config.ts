import { defineConfig } from "vitest/config";

// End-to-end tests against a running local stack (scripts/run-tests.ts starts one and points
// DUEWORK_STACK_JSON at it). Files run one after another: they share that one stack.
export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
