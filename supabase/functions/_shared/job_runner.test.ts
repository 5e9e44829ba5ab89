// The job runner with a tiny job (no provider): slots, claim-ahead refill, the limits of a
// request, release, lost leases, finishing the batch, and how outcomes travel to the store.
// Every job function gets this behaviour; its own tests cover only its provider mapping.

import assert from "node:assert/strict";
import type postgres from "npm:postgres@^3.4.9";
import { z } from "npm:zod@4";
import { envFrom } from "./env.ts";
import { type JobFunction, type RunnerDeps, serveJob, type Task } from "./job_runner.ts";
import { createPgJobStore, type JobStore } from "./job_store.ts";
import type { Outcome } from "./outcome.ts";
import { FakeJobStore, type FakeJobStoreOptions, type FakeTask } from "./testing/fake_job_store.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const LEASE = [
  "6f1c2a44-6a0e-4f3e-9d7a-2b1f0c9e8d71",
  "0b7e8c1d-3a52-4c6e-8f90-1a2b3c4d5e6f",
  "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
];

type P = { n: number };
type C = { secret: string };
type T = Task<P, C>;

function task(taskId: number, leaseToken = LEASE[taskId - 1] ?? crypto.randomUUID()): FakeTask {
  return { taskId, leaseToken, payload: { n: taskId }, context: { secret: `secret-of-task-${taskId}` } };
}

function batch(taskIds: number[]) {
  return {
    job: "tiny-job",
    batch_id: 123,
    tasks: taskIds.map((id) => ({ id, lease_token: LEASE[id - 1], attempt: 1, payload: { n: id } })),
  };
}

interface Harness {
  store: FakeJobStore;
  /** Tasks perform was called with, in order. */
  performed: number[];
  /** Most performs running at once. */
  maxInFlight: () => number;
  logs: string[];
  // deno-lint-ignore no-explicit-any
  call(body: unknown): Promise<{ status: number; text: string; json: any }>;
}

async function withRunner(
  opts: {
    perform?: (task: T) => Promise<Outcome>;
    store?: FakeJobStoreOptions;
    jobStore?: JobStore;
    deps?: Partial<RunnerDeps>;
  },
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const store = new FakeJobStore({ tasks: [task(1), task(2), task(3)], ...opts.store });
  const performed: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const logs: string[] = [];
  const job: JobFunction<P, C> = {
    name: "tiny-job",
    payload: z.object({ n: z.number() }),
    context: z.object({ secret: z.string() }),
    secrets: (t) => [t.context.secret],
    async perform(t) {
      performed.push(t.id);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        return await (opts.perform?.(t) ?? Promise.resolve<Outcome>({ outcome: "ok", data: { n: t.payload.n } }));
      } finally {
        inFlight--;
      }
    },
  };
  const handler = serveJob(job, {
    env: envFrom({ SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }) }),
    store: () => opts.jobStore ?? store,
    log: (line) => logs.push(line),
    ...opts.deps,
  });
  await fn({
    store,
    performed,
    maxInFlight: () => maxInFlight,
    logs,
    async call(body) {
      const res = await handler(
        new Request("http://functions.local/tiny-job", {
          method: "POST",
          headers: { "content-type": "application/json", apikey: SECRET_KEY },
          body: JSON.stringify(body),
        }),
      );
      const text = await res.text();
      return { status: res.status, text, json: JSON.parse(text) };
    },
  });
}

const recordedIds = (h: Harness) => h.store.recorded.map((r) => r.lease.taskId);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ── slots ───────────────────────────────────────────────────────────────────────────────────

Deno.test("slots: a batch's tasks are performed concurrently", async () => {
  await withRunner({ perform: (t) => sleep(50).then(() => ({ outcome: "ok", data: { n: t.payload.n } })) }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 200);
    assert.equal(res.json.succeeded, 3);
    assert.equal(h.maxInFlight(), 3);
  });
});

Deno.test("slots: perform gets the payload and the context read under the lease", async () => {
  const seen: T[] = [];
  await withRunner({ perform: (t) => (seen.push(t), Promise.resolve({ outcome: "ok" })) }, async (h) => {
    await h.call(batch([2]));
    assert.deepEqual(seen, [
      { id: 2, leaseToken: LEASE[1], attempt: 1, payload: { n: 2 }, context: { secret: "secret-of-task-2" } },
    ]);
    assert.deepEqual(h.store.contextReads, [[{ taskId: 2, leaseToken: LEASE[1] }]]);
  });
});

// ── refill: a finished slot claims the job's next due task into the same batch ─────────────

Deno.test("refill: each finished slot claims the next due task into the batch until none is left", async () => {
  const backlog = [task(4), task(5)];
  await withRunner({ store: { backlog } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 200);
    assert.equal(res.json.processed, 4);
    assert.equal(res.json.succeeded, 4);
    assert.deepEqual(recordedIds(h).sort(), [1, 2, 4, 5]);
    // The backlog's lease tokens (not the batch's) are used for its outcomes.
    const four = h.store.recorded.find((r) => r.lease.taskId === 4)!;
    assert.equal(four.lease.leaseToken, backlog[0].leaseToken);
    assert.ok(h.store.claimedBatches.every((b) => b === 123));
    assert.equal(h.performed.length, 4);
  });
});

Deno.test("refill: a claim throttled by a bucket is repeated after its wait by one slot; the others end", async () => {
  const backlog = [task(4), task(5)];
  // Three slots claim ahead; the first two claims that would take a backlog task are throttled.
  await withRunner({ store: { backlog, throttle: [30, 30] } }, async (h) => {
    const started = Date.now();
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 200);
    assert.deepEqual([...h.performed].sort(), [1, 2, 3, 4, 5], "the throttled backlog is still performed");
    assert.ok(Date.now() - started >= 30, "the pacing slot waited for the bucket");
    assert.equal(res.json.succeeded, 5);
  });
});

Deno.test("refill: a throttle longer than the pacing limit ends the slots (the heartbeat takes it up)", async () => {
  const backlog = [task(4)];
  await withRunner({ store: { backlog, throttle: [60_000, 60_000, 60_000] } }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 200);
    assert.deepEqual([...h.performed].sort(), [1, 2, 3]);
  });
});

Deno.test("refill: a request stops claiming at maxTasksPerRequest", async () => {
  const backlog = [4, 5, 6, 7].map((id) => task(id));
  await withRunner({ store: { backlog }, deps: { maxTasksPerRequest: 3 } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.json.processed, 3);
    assert.equal(h.performed.length, 3);
  });
});

Deno.test("refill: a request stops claiming once maxWallMs has passed", async () => {
  let clock = 0;
  const backlog = [4, 5, 6].map((id) => task(id));
  await withRunner({
    store: { backlog },
    perform: () => {
      clock += 1_000;
      return Promise.resolve({ outcome: "ok" });
    },
    deps: { now: () => clock, maxWallMs: 1_500 },
  }, async (h) => {
    const res = await h.call(batch([1]));
    // t=0: task 1 (claims 4 ahead); t=1000: task 4 (claims 5 ahead); t=2000: task 5, no more.
    assert.equal(res.json.processed, 3);
    assert.deepEqual(h.performed, [1, 4, 5]);
  });
});

Deno.test("refill: after a release the task claimed ahead is released too, and nothing more is claimed", async () => {
  const backlog = [task(4), task(5)];
  await withRunner({
    store: { backlog },
    perform: () => Promise.resolve({ outcome: "release", error: "SOME_SECRET is not set" }),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 500);
    assert.equal(res.json.error, "configuration_error");
    assert.equal(res.json.message, "SOME_SECRET is not set");
    assert.equal(h.store.claimedBatches.length, 1, "one claim ahead, none after the release");
    assert.deepEqual(recordedIds(h).sort(), [1, 4]);
    assert.ok(h.store.recorded.every((r) => r.outcome.outcome === "release"));
    assert.equal(res.json.released, 2);
    assert.ok(!h.performed.includes(5), "the backlog's next task is never taken");
  });
});

Deno.test("refill: a lost lease skips that task only; the task claimed ahead is still performed", async () => {
  const backlog = [task(4)];
  await withRunner({ store: { backlog, leaseLost: { record: [1] } } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.succeeded, 1);
    assert.deepEqual(h.store.calls.filter((c) => c.method === "record").map((c) => c.taskIds[0]), [1, 4]);
    assert.deepEqual(recordedIds(h), [4], "only task 4 was recorded");
  });
});

Deno.test("refill: perform runs again before the previous outcome is recorded", async () => {
  // A store whose outcome writes hang until released: the slot must still move on to its next task.
  const backlog = [task(4), task(5)];
  let releaseWrites!: () => void;
  const writesHeld = new Promise<void>((r) => (releaseWrites = r));
  await withRunner({ store: { backlog, holdRecords: writesHeld } }, async (h) => {
    const pending = h.call(batch([1]));
    // One slot, writes held: it can only reach its third task by not waiting for the first two.
    const deadline = Date.now() + 5_000;
    while (h.performed.length < 3 && Date.now() < deadline) await sleep(2);
    assert.deepEqual(h.performed, [1, 4, 5], "three tasks performed while no outcome is recorded yet");
    assert.equal(h.store.recorded.length, 0);
    releaseWrites();
    const res = await pending;
    assert.equal(res.json.succeeded, 3);
  });
});

Deno.test("finish: the batch is finished once, after every slot is done", async () => {
  await withRunner({ store: { backlog: [task(4)] } }, async (h) => {
    await h.call(batch([1, 2, 3]));
    assert.deepEqual(h.store.finishedBatches, [123]);
    assert.equal(h.store.calls.at(-1)?.method, "finishBatch");
  });
});

// ── outcomes ────────────────────────────────────────────────────────────────────────────────

Deno.test("outcomes: a context that does not parse is retried naming the field, perform is not called", async () => {
  await withRunner({ store: { tasks: [{ ...task(1), context: { secret: 7 } }] } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.json.retried, 1);
    assert.match(res.json.errors[0].error, /^context does not parse: secret/);
    assert.deepEqual(h.performed, []);
  });
});

Deno.test("outcomes: the job's secrets are scrubbed from errors; a throwing perform is a retry", async () => {
  await withRunner({
    perform: (t) =>
      t.id === 1
        ? Promise.resolve({ outcome: "dead", error: `refused ${t.context.secret}` })
        : Promise.reject(new Error(`boom ${t.context.secret}`)),
  }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.json.dead, 1);
    assert.equal(res.json.retried, 1);
    assert.ok(!res.text.includes("secret-of-task"));
    assert.ok(!JSON.stringify(h.store.recorded).includes("secret-of-task"));
    assert.deepEqual(h.store.recorded.map((r) => "error" in r.outcome ? r.outcome.error : null).sort(), [
      "refused [redacted]",
      "unexpected error: boom [redacted]",
    ]);
  });
});

// ── grouped: the real store's jobs.report calls (postgres.js replaced by a recording fake) ──

/** Answers jobs.task_contexts, jobs.report and jobs.finish_batch like the engine; records each
 * jobs.report call. Each answer takes a few ms, like a round trip. */
function fakeSql(contexts: Map<number, unknown>) {
  const reports: { outcomes: { task_id: number; outcome: string }[]; claims: { batch_id: number; count: number }[] }[] = [];
  const sql = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.join("?");
    const answer = () => {
      if (text.includes("jobs.task_contexts")) {
        const ids = values[0] as number[];
        return ids.map((id) => ({ task_id: String(id), context: contexts.get(id) ?? null, moot: null }));
      }
      if (text.includes("jobs.report")) {
        const outcomes = values[0] as { task_id: number; outcome: string }[];
        const claims = values[1] as { batch_id: number; count: number }[];
        reports.push({ outcomes, claims });
        return [{
          answer: {
            outcomes: outcomes.map((o) => ({ task_id: o.task_id, state: o.outcome === "ok" ? "succeeded" : "queued" })),
            claimed: [],
          },
        }];
      }
      if (text.includes("jobs.finish_batch")) return [];
      throw new Error(`unexpected statement: ${text}`);
    };
    return sleep(5).then(answer);
  }) as unknown as postgres.Sql;
  (sql as unknown as { json: (v: unknown) => unknown }).json = (v) => v;
  return { sql, reports };
}

Deno.test("grouped: a request's releases travel together in one jobs.report call", async () => {
  const { sql, reports } = fakeSql(new Map([1, 2, 3].map((id) => [id, task(id).context])));
  await withRunner({
    jobStore: createPgJobStore(sql),
    perform: () => Promise.resolve({ outcome: "release", error: "SOME_SECRET is not set" }),
  }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 500);
    assert.equal(res.json.released, 3);
    const withReleases = reports.filter((r) => r.outcomes.some((o) => o.outcome === "release"));
    assert.equal(withReleases.length, 1, "one call for the batch's releases");
    assert.deepEqual(withReleases[0].outcomes.map((o) => o.task_id).sort(), [1, 2, 3]);
  });
});

Deno.test("grouped: outcomes and claims of all slots share jobs.report calls", async () => {
  const { sql, reports } = fakeSql(new Map([1, 2, 3].map((id) => [id, task(id).context])));
  await withRunner({ jobStore: createPgJobStore(sql) }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.json.succeeded, 3);
    // The three claims ahead go out in one call, the three outcomes in the next.
    assert.equal(reports.length, 2);
    assert.deepEqual(reports[0].claims, [{ batch_id: 123, count: 3 }]);
    assert.deepEqual(reports[1].outcomes.map((o) => o.task_id).sort(), [1, 2, 3]);
  });
});
