import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import { parseBatch, taskBatchSchema } from "./task_batch.ts";

const schema = taskBatchSchema(z.object({ account_id: z.number().int().positive() }));
const task = (id: number) => ({
  id,
  lease_token: "6f1c2a44-6a0e-4f3e-9d7a-2b1f0c9e8d71",
  attempt: 1,
  payload: { account_id: 42 },
});
const body = (tasks: unknown[]) => ({ job: "youtube-token-refresh", batch_id: 123, tasks });

Deno.test("task_batch: a valid batch parses; unknown keys are allowed", () => {
  const r = parseBatch(schema, { ...body([{ ...task(1), key: "k" }]), extra: true });
  assert.ok(r.ok);
  assert.equal(r.value.tasks[0].payload.account_id, 42);
});

Deno.test("task_batch: the first failing field is named", () => {
  const field = (b: unknown) => {
    const r = parseBatch(schema, b);
    assert.equal(r.ok, false);
    return r.ok ? "" : r.field;
  };
  assert.equal(field(null), "body");
  assert.equal(field({ batch_id: 1, tasks: [task(1)] }), "job");
  assert.equal(field({ ...body([task(1)]), job: "" }), "job");
  assert.equal(field({ ...body([task(1)]), batch_id: 0 }), "batch_id");
  assert.equal(field(body([])), "tasks");
  assert.equal(field(body(Array.from({ length: 101 }, (_, i) => task(i + 1)))), "tasks");
  assert.equal(field(body([{ ...task(1), id: 1.5 }])), "tasks.0.id");
  assert.equal(field(body([{ ...task(1), lease_token: "nope" }])), "tasks.0.lease_token");
  assert.equal(field(body([{ ...task(1), attempt: 0 }])), "tasks.0.attempt");
  assert.equal(field(body([task(1), { ...task(2), payload: {} }])), "tasks.1.payload.account_id");
  assert.equal(field(body([task(1), task(1)])), "tasks.1.id"); // duplicate
});

Deno.test("task_batch: 100 tasks is the maximum accepted", () => {
  assert.ok(parseBatch(schema, body(Array.from({ length: 100 }, (_, i) => task(i + 1)))).ok);
});
