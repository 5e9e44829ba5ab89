import assert from "node:assert/strict";
import { z } from "npm:zod@4";
import { MAX_JOB_BODY_BYTES } from "./body.ts";
import { envFrom } from "./env.ts";
import { batchToken, jobRequestHandler, prefersAsync } from "./job_request.ts";
import { taskBatchSchema } from "./task_batch.ts";
import { FakeBatchLeases } from "./testing/fake_batch_leases.ts";

const SECRET = "sb_secret_front_door_test";
const TOKEN = `dwb_7_${"ab".repeat(32)}`;
const schema = taskBatchSchema(z.object({ n: z.number() }));
const body = (batchId = 7) =>
  JSON.stringify({
    job: "j",
    batch_id: batchId,
    tasks: [{ id: 1, lease_token: "00000000-0000-0000-0000-000000000001", attempt: 1, payload: { n: 1 } }],
  });

interface Harness {
  handler: (req: Request) => Promise<Response>;
  leases: FakeBatchLeases;
  background: Promise<unknown>[];
  processed: { batchId: number; aborted: () => boolean }[];
  logs: string[];
  /** Resolves the processing of every batch (it waits on this). */
  release: () => void;
}

function harness(opts: { leases?: boolean; waitUntil?: boolean; heartbeatMs?: number } = {}): Harness {
  const leases = new FakeBatchLeases().add(7, { token: TOKEN, running: 1 });
  const background: Promise<unknown>[] = [];
  const processed: Harness["processed"] = [];
  const logs: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const handler = jobRequestHandler({
    name: "fn",
    env: envFrom({ SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET }) }),
    schema,
    log: (l) => logs.push(l),
    leases: opts.leases === false ? undefined : () => leases,
    waitUntil: opts.waitUntil === false ? undefined : (p) => void background.push(p),
    heartbeatMs: opts.heartbeatMs ?? 5,
    process: async (batch, signal) => {
      processed.push({ batchId: batch.batch_id, aborted: () => signal.aborted });
      await gate;
      return Response.json({ success: true, processed: batch.tasks.length }, { status: 200 });
    },
  });
  return { handler, leases, background, processed, logs, release };
}

const post = (headers: Record<string, string>, b = body()) =>
  new Request("http://fn/", { method: "POST", headers: { "content-type": "application/json", ...headers }, body: b });
const pgNet = (token = TOKEN, b = body()) => post({ authorization: `Bearer ${token}`, prefer: "respond-async" }, b);

Deno.test("front door: a pg_net request is accepted with its batch token and answered 202 before the work is done", async () => {
  const h = harness();
  const res = await h.handler(pgNet());
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { accepted: true, batch_id: 7, tasks: 1 });
  assert.deepEqual(h.leases.calls[0], { op: "accept", batchId: 7, token: TOKEN });
  assert.equal(h.background.length, 1, "the work runs in waitUntil");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(h.processed.length, 1, "processing started after the answer");
  assert.ok(h.leases.calls.filter((c) => c.op === "keepAlive").length >= 2, "leases are extended while it works");
  h.release();
  const answer = (await h.background[0]) as Response;
  assert.equal(answer.status, 200);
  const beats = h.leases.calls.length;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(h.leases.calls.length, beats, "the heartbeat stops with the work");
});

Deno.test("front door: a wrong, replayed or missing credential is refused and nothing runs", async () => {
  const h = harness();
  const wrong = await h.handler(pgNet(`dwb_7_${"cd".repeat(32)}`));
  assert.equal(wrong.status, 401);
  const unknownBatch = await h.handler(pgNet(TOKEN, body(8)));
  assert.equal(unknownBatch.status, 401, "a token caller learns nothing about which batches exist");
  const none = await h.handler(post({ prefer: "respond-async" }));
  assert.equal(none.status, 401);
  const publishable = await h.handler(post({ apikey: "sb_publishable_x", prefer: "respond-async" }));
  assert.equal(publishable.status, 401);
  assert.equal(h.processed.length, 0);

  const first = await h.handler(pgNet());
  assert.equal(first.status, 202);
  const replay = await h.handler(pgNet());
  assert.equal(replay.status, 409);
  assert.equal((await replay.json()).error, "batch_already_accepted");
  h.release();
  await Promise.all(h.background);
  assert.equal(h.processed.length, 1, "the replay ran nothing");
});

Deno.test("front door: a batch the engine no longer has in flight is refused with 409 naming batch_id", async () => {
  const h = harness();
  h.leases.add(7, { token: TOKEN, running: 1, settled: true });
  const res = await h.handler(pgNet());
  assert.equal(res.status, 409);
  assert.deepEqual(await res.json(), {
    success: false, error: "batch_not_in_flight", message: "batch 7 is no longer in flight", field: "batch_id",
  });
  assert.equal(h.processed.length, 0);
});

Deno.test("front door: bad bodies are refused before any database call", async () => {
  const h = harness();
  const res = await h.handler(pgNet(TOKEN, "{nope"));
  assert.equal(res.status, 400);
  const res2 = await h.handler(pgNet(TOKEN, JSON.stringify({ job: "j", batch_id: "7", tasks: [] })));
  assert.equal(res2.status, 400);
  assert.equal((await res2.json()).field, "batch_id");
  assert.equal(h.leases.calls.length, 0);
});

Deno.test("front door: a body over 1 MiB → 413 payload_too_large, declared or streamed; nothing accepted or run", async () => {
  const h = harness();
  const big = JSON.stringify({ job: "j", batch_id: 7, tasks: [], pad: "x".repeat(MAX_JOB_BODY_BYTES) });
  const declared = await h.handler(post({ authorization: `Bearer ${TOKEN}`, "content-length": String(big.length) }, big));
  assert.equal(declared.status, 413);
  assert.deepEqual(await declared.json(), {
    error: "payload_too_large", message: `the body is larger than ${MAX_JOB_BODY_BYTES} bytes`, limit: MAX_JOB_BODY_BYTES,
  });
  // Chunked: no Content-Length, the limit is found while reading (and reading stops there).
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({ pull(c) { pulled++; c.enqueue(new Uint8Array(64 * 1024).fill(0x20)); } });
  const streamed = await h.handler(new Request("http://fn/", {
    method: "POST", body: endless, headers: { authorization: `Bearer ${SECRET}` },
  }));
  assert.equal(streamed.status, 413);
  assert.equal((await streamed.json()).error, "payload_too_large");
  assert.ok(pulled <= MAX_JOB_BODY_BYTES / (64 * 1024) + 2, `read ${pulled} chunks`);
  assert.equal(h.leases.calls.length, 0, "no batch accepted");
  assert.equal(h.processed.length, 0);
  // A body just within the limit is read and validated as usual.
  const within = JSON.parse(body());
  within.pad = "x".repeat(MAX_JOB_BODY_BYTES - body().length - 20);
  h.release();
  const ok = await h.handler(post({ authorization: `Bearer ${SECRET}` }, JSON.stringify(within)));
  assert.equal(ok.status, 200);
});

Deno.test("front door: an unauthenticated oversized body is refused 401 before it is read", async () => {
  const h = harness();
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({ pull(c) { pulled++; c.enqueue(new Uint8Array(1024)); } });
  const res = await h.handler(new Request("http://fn/", { method: "POST", body: endless }));
  assert.equal(res.status, 401);
  assert.equal(pulled <= 1, true, "the body was not read");
});

Deno.test("front door: a database that is away answers 503 (the engine dispatches the batch again)", async () => {
  const h = harness();
  h.leases.down = true;
  const res = await h.handler(pgNet());
  assert.equal(res.status, 503);
  assert.equal((await res.json()).error, "database_unavailable");
  assert.equal(h.processed.length, 0);
});

Deno.test("front door: a secret-key caller without Prefer gets the summary when the work is done, leases kept alive", async () => {
  const h = harness();
  const pending = h.handler(post({ apikey: SECRET }));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(h.processed.length, 1);
  assert.equal(h.leases.calls.some((c) => c.op === "accept"), false, "no accept without a token or Prefer");
  assert.ok(h.leases.calls.some((c) => c.op === "keepAlive"), "leases are extended");
  h.release();
  const res = await pending;
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { success: true, processed: 1 });
  assert.equal(h.background.length, 0);
});

Deno.test("front door: when the engine settles the batch the work is told to take no more", async () => {
  const h = harness();
  assert.equal((await h.handler(pgNet())).status, 202);
  await new Promise((r) => setTimeout(r, 15));
  assert.equal(h.processed[0].aborted(), false);
  h.leases.batches.get(7)!.settled = true;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(h.processed[0].aborted(), true);
  h.release();
  await Promise.all(h.background);
});

Deno.test("front door: a failing heartbeat is logged and the work goes on", async () => {
  const h = harness();
  assert.equal((await h.handler(pgNet())).status, 202);
  h.leases.down = true;
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(h.logs.some((l) => /could not extend its leases/.test(l)));
  h.leases.down = false;
  h.release();
  assert.equal(((await h.background[0]) as Response).status, 200);
});

Deno.test("front door: without waitUntil an async request is accepted and answered when done", async () => {
  const h = harness({ waitUntil: false });
  const pending = h.handler(pgNet());
  await new Promise((r) => setTimeout(r, 10));
  h.release();
  assert.equal((await pending).status, 200);
});

Deno.test("front door: token and Prefer parsing", () => {
  const r = (headers: Record<string, string>) => new Request("http://x/", { headers });
  assert.equal(batchToken(r({ authorization: `Bearer ${TOKEN}` })), TOKEN);
  assert.equal(batchToken(r({ authorization: `Bearer ${SECRET}` })), null);
  assert.equal(batchToken(r({ authorization: `Bearer dwb_7_short` })), null);
  assert.equal(prefersAsync(r({ prefer: "return=minimal, respond-async" })), true);
  assert.equal(prefersAsync(r({ prefer: "respond-asyncx" })), false);
  assert.equal(prefersAsync(r({})), false);
});
