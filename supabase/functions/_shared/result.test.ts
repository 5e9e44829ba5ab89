import assert from "node:assert/strict";
import { redact } from "./redact.ts";
import { batchResponse, summarize } from "./result.ts";

Deno.test("summarize: counts per outcome; success only when every task succeeded", async () => {
  const all = summarize([{ task_id: 1, status: "succeeded" }, { task_id: 2, status: "succeeded" }]);
  assert.equal(all.success, true);
  assert.equal(batchResponse(all).status, 200);
  assert.deepEqual(await batchResponse(all).json(), {
    success: true,
    processed: 2,
    succeeded: 2,
    retried: 0,
    dead: 0,
    discarded: 0,
    skipped: 0,
    errors: [],
  });

  const mixed = summarize([
    { task_id: 1, status: "succeeded" },
    { task_id: 2, status: "retried", error: "HTTP 503" },
    { task_id: 3, status: "dead", error: "invalid_grant: x" },
    { task_id: 4, status: "skipped", error: "lease lost" },
    { task_id: 5, status: "released", error: "config" },
    { task_id: 6, status: "discarded", error: "account no longer exists" },
  ]);
  assert.equal(mixed.success, false);
  assert.equal(batchResponse(mixed).status, 207);
  assert.deepEqual(
    [mixed.processed, mixed.succeeded, mixed.retried, mixed.dead, mixed.skipped, mixed.released, mixed.discarded],
    [6, 1, 1, 1, 1, 1, 1],
  );
  assert.deepEqual(mixed.errors.map((e) => e.task_id), [2, 3, 4, 5, 6]);
  assert.equal(summarize([]).success, false);
});

Deno.test("redact: removes every occurrence of each secret and caps the length", () => {
  assert.equal(redact("a SECRET1 b SECRET1 c tok-xyz", ["SECRET1", "tok-xyz", null, "ab"]), "a [redacted] b [redacted] c [redacted]");
  assert.equal(redact("x".repeat(1000), []).length, 500);
});
