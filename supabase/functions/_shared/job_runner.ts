// The one runtime of every job function. A job supplies a JobFunction: its payload and context
// schemas and a perform(task) that maps one provider answer to one Outcome (outcome.ts). The
// runner does everything else:
//
// 1. the front door (job_request.ts): POST, a credential, the batch body validated with the job's
//    payload schema → 401/405/400 with nothing touched; pg_net's batches are accepted and answered
//    202 at once, the work runs in EdgeRuntime.waitUntil under lease heartbeats;
// 2. one jobs.task_contexts call for the dispatched tasks (credentials read under their lease;
//    moot ones were discarded by the engine; ones whose lease is gone are skipped);
// 3. one slot per dispatched task. While a slot's task is in perform, the slot claims its next
//    task into the same batch (claim-ahead), and it performs that one without waiting for the
//    previous outcome to be written: outcomes and claims of all slots travel together in grouped
//    jobs.report calls (job_store.ts). A request stops claiming after maxTasksPerRequest tasks or
//    maxWallMs, when the engine settled the batch (signal), or after a release (a configuration
//    error will not go away within this request);
// 4. jobs.finish_batch when every slot is done (settles the batch, dispatches the next one);
// 5. the response envelope (result.ts) and one log line. Every error text goes through redact
//    with the job's secrets; outcome data (which may carry new tokens) goes only to SQL.

import type { z } from "npm:zod@4";
import type { Env } from "./env.ts";
import { jobRequestHandler, type JobRuntimeDeps, runtime } from "./job_request.ts";
import {
  type ClaimedTask,
  describeDatabaseError,
  isLeaseLost,
  type JobStore,
  type LeasedContext,
  isThrottled,
  type MootTask,
  type TaskLease,
  type Throttled,
} from "./job_store.ts";
import type { Outcome, RecordedState } from "./outcome.ts";
import { redact } from "./redact.ts";
import { type BatchSummary, errorResponse, summarize, type TaskOutcome, type TaskStatus } from "./result.ts";
import { taskBatchSchema } from "./task_batch.ts";

export interface Task<P, C> {
  id: number;
  leaseToken: string;
  attempt: number;
  payload: P;
  context: C;
}

export interface JobFunction<P, C, S = undefined> {
  /** Function name, for log lines. */
  name: string;
  /** The task payload the engine dispatches (front door: 400 naming the field). */
  payload: z.ZodType<P>;
  /** What the job's SQL context function returns for a task; one that does not parse is retried. */
  context: z.ZodType<C>;
  /** Per-request state (provider clients, accounts refused during this request…). */
  session?: () => S;
  /** One task: call the provider once and say what happened. Throwing is treated as a retry. */
  perform(task: Task<P, C>, session: S): Promise<Outcome>;
  /** Tasks with the same value run one after another within a request (null: no constraint). */
  serialize?: (task: Task<P, C>) => string | number | null;
  /** Values scrubbed from every error text the runner stores, returns or logs for this task. */
  secrets?: (task: Task<P, C>, session: S) => ReadonlyArray<string | null | undefined>;
  /** The response field that counts recorded outcome tags (e.g. "reels"). */
  tagsField?: string;
  /** Extra counters of the request added to the tags (e.g. provider calls made; a 0 makes a tag
   * always present). */
  counters?: (session: S) => Record<string, number>;
  /** Defaults for RunnerDeps.maxTasksPerRequest / maxWallMs. */
  maxTasksPerRequest?: number;
  maxWallMs?: number;
}

export interface RunnerDeps extends JobRuntimeDeps {
  env: Env;
  /** Called only once a request is authenticated and valid (so rejects never touch the DB). */
  store: () => JobStore;
  /** At most a line per request and per noteworthy failure; never receives secrets. */
  log?: (line: string) => void;
  now?: () => number;
  maxTasksPerRequest?: number;
  maxWallMs?: number;
  /** Waits between retries of recording a durable outcome (default DURABLE_RETRY_MS). */
  durableRetryMs?: readonly number[];
}

/** Each new request costs a pg_net pass (which may wait up to 1 s, worker.c), so a request keeps
 * claiming for a while: 2,000 token refreshes took about 0.4 s of CPU here, inside the 2 s CPU
 * limit of an Edge Function request. */
export const DEFAULT_MAX_TASKS_PER_REQUEST = 2_000;
/** A request stops claiming once it has run this long (Edge wall clock: 150 s free, 400 s paid). */
export const DEFAULT_MAX_WALL_MS = 60_000;
export const DURABLE_RETRY_MS: readonly number[] = [100, 500, 2_000];
/** The longest a slot waits for a bucket; a longer wait (a paused bucket) is left to the heartbeat. */
export const MAX_PACING_WAIT_MS = 5_000;

const LEASE_LOST = "lease lost: the task is no longer running under this lease token";

type Recorded = { outcome: TaskOutcome; tag?: string };

const STATUS_OF: Record<RecordedState, TaskStatus> = {
  succeeded: "succeeded",
  queued: "retried",
  dead: "dead",
  discarded: "discarded",
};

export function serveJob<P, C, S>(job: JobFunction<P, C, S>, deps: RunnerDeps): (req: Request) => Promise<Response> {
  const log = deps.log ?? ((line: string) => console.log(line));
  const now = deps.now ?? Date.now;
  const schema = taskBatchSchema(job.payload);
  type Batch = z.output<typeof schema>;

  return jobRequestHandler({ ...runtime(deps), name: job.name, env: deps.env, schema, log, process: run });

  async function run(batch: Batch, signal: AbortSignal): Promise<Response> {
    const store = deps.store();
    const leases: TaskLease[] = batch.tasks.map((t) => ({ taskId: t.id, leaseToken: t.lease_token }));

    let read: { tasks: LeasedContext[]; moot: MootTask[] };
    try {
      read = await store.contexts(leases);
    } catch (err) {
      if (isLeaseLost(err)) read = { tasks: [], moot: [] };
      else {
        log(`${job.name}: batch ${batch.batch_id} could not read its tasks' contexts`);
        return errorResponse(500, "database_error", `could not read the tasks' contexts: ${redact(describeDatabaseError(err), [])}`);
      }
    }

    const session = (job.session?.() ?? undefined) as S;
    const tags: Record<string, number> = {};
    const results: Recorded[] = [];
    for (const m of read.moot) {
      results.push({ outcome: { task_id: m.taskId, status: "discarded", error: `moot: ${m.reason}` }, tag: "moot" });
    }
    const contextOf = new Map(read.tasks.map((t) => [t.taskId, t.context]));
    const mootIds = new Set(read.moot.map((m) => m.taskId));

    const started = now();
    const maxTasks = deps.maxTasksPerRequest ?? job.maxTasksPerRequest ?? DEFAULT_MAX_TASKS_PER_REQUEST;
    const maxWall = deps.maxWallMs ?? job.maxWallMs ?? DEFAULT_MAX_WALL_MS;
    let taken = leases.length;
    let stopClaiming = false;
    let released = false;
    const mayTakeMore = () => !stopClaiming && !signal.aborted && taken < maxTasks && now() - started < maxWall;

    // A claim that found only rate-limited work says when a token comes back (jobs.report's
    // wait_ms): one slot of the request waits that long and claims again, the others end. So a
    // bucket's rate is used to the full without a 429, and the database is not polled by every slot.
    let pacing = false;
    const claimAhead = async (): Promise<ClaimedTask | null> => {
      for (;;) {
        if (!mayTakeMore()) return null;
        taken++;
        let next: ClaimedTask | Throttled | null;
        try {
          next = await store.claim(batch.batch_id);
        } catch (err) {
          taken--;
          log(`${job.name}: batch ${batch.batch_id} could not claim more: ${redact(describeDatabaseError(err), [])}`);
          return null;
        }
        if (next !== null && !isThrottled(next)) return next;
        taken--;
        if (next === null || pacing || next.waitMs > MAX_PACING_WAIT_MS) return null;
        const wait = Math.min(next.waitMs, Math.max(0, maxWall - (now() - started)));
        pacing = true;
        try {
          await sleep(Math.max(wait, 1), signal);
        } finally {
          pacing = false;
        }
      }
    };

    // Same serialize value → one after another (e.g. one account's calls, so a refused token is
    // seen before that account's next call).
    const chains = new Map<string | number, Promise<unknown>>();
    const serialized = <T>(key: string | number | null, fn: () => Promise<T>): Promise<T> => {
      if (key === null) return fn();
      const run = (chains.get(key) ?? Promise.resolve()).then(fn, fn);
      chains.set(key, run.catch(() => undefined));
      return run;
    };

    /** The task as perform sees it, or the outcome for one whose payload or context does not parse. */
    const prepare = (lease: TaskLease, attempt: number, payload: unknown, context: unknown): Task<P, C> | Outcome => {
      const p = job.payload.safeParse(payload);
      if (!p.success) return { outcome: "retry", error: `payload does not parse: ${issueText(p.error)}` };
      const c = job.context.safeParse(context);
      if (!c.success) return { outcome: "retry", error: `context does not parse: ${issueText(c.error)}` };
      return { id: lease.taskId, leaseToken: lease.leaseToken, attempt, payload: p.data, context: c.data };
    };

    const perform = async (task: Task<P, C>): Promise<Outcome> => {
      try {
        return await job.perform(task, session);
      } catch (err) {
        // perform maps failures to outcomes; this is a bug guard.
        return { outcome: "retry", error: `unexpected error: ${err instanceof Error ? err.message : String(err)}` };
      }
    };

    const record = async (lease: TaskLease, outcome: Outcome, secrets: ReadonlyArray<string | null | undefined>): Promise<Recorded> => {
      const error = "error" in outcome ? redact(outcome.error, secrets) : undefined;
      const clean = (error === undefined ? outcome : { ...outcome, error }) as Outcome;
      const write = () => store.record(lease, clean);
      try {
        const state = clean.outcome === "ok" && clean.durable
          ? await withRetries(write, deps.durableRetryMs ?? DURABLE_RETRY_MS)
          : await write();
        const status: TaskStatus = clean.outcome === "release" && state === "queued" ? "released" : STATUS_OF[state];
        return {
          outcome: { task_id: lease.taskId, status, ...(error !== undefined ? { error } : {}) },
          tag: "tag" in clean ? clean.tag : undefined,
        };
      } catch (err) {
        if (isLeaseLost(err)) return { outcome: skipped(lease.taskId) };
        const dataSecrets = stringsOf("data" in clean ? clean.data : undefined);
        if (clean.outcome === "ok" && clean.durable) {
          log(`${job.name}: task ${lease.taskId}: an outcome that is the only copy of its data could not be stored`);
        }
        // Not recorded: the lease expires (or finish_batch puts it back) and the task runs again.
        const dbError = redact(
          `could not record the outcome${error ? ` (${error})` : ""}: ${describeDatabaseError(err)}`,
          [...secrets, ...dataSecrets],
        );
        return { outcome: { task_id: lease.taskId, status: "retried", error: dbError } };
      }
    };

    const runSlot = async (first: { lease: TaskLease; attempt: number; payload: unknown; context: unknown }) => {
      const recorded: Promise<Recorded>[] = [];
      let current: typeof first | null = first;
      while (current !== null) {
        const next = claimAhead();
        const { lease } = current;
        const task = prepare(lease, current.attempt, current.payload, current.context);
        if ("outcome" in task) {
          recorded.push(record(lease, task, []));
        } else {
          const secrets = job.secrets?.(task, session) ?? [];
          const outcome = await serialized(job.serialize?.(task) ?? null, () => perform(task));
          if (outcome.outcome === "release") {
            stopClaiming = true;
            released = true;
          }
          recorded.push(record(lease, outcome, secrets));
        }
        current = await next;
      }
      return await Promise.all(recorded);
    };

    const slots: Promise<Recorded[]>[] = [];
    for (const t of batch.tasks) {
      const lease = { taskId: t.id, leaseToken: t.lease_token };
      if (contextOf.has(t.id)) {
        slots.push(runSlot({ lease, attempt: t.attempt, payload: t.payload, context: contextOf.get(t.id) }));
      } else if (!mootIds.has(t.id)) {
        results.push({ outcome: skipped(t.id) });
      }
    }
    for (const r of (await Promise.all(slots)).flat()) results.push(r);

    try {
      await store.finishBatch(batch.batch_id);
    } catch (err) {
      // A later reap settles it.
      log(`${job.name}: batch ${batch.batch_id} could not be finished: ${redact(describeDatabaseError(err), [])}`);
    }

    for (const r of results) if (r.tag !== undefined && r.outcome.status !== "skipped") tags[r.tag] = (tags[r.tag] ?? 0) + 1;
    for (const [k, v] of Object.entries(job.counters?.(session) ?? {})) tags[k] = (tags[k] ?? 0) + v;
    return respond(batch, results.map((r) => r.outcome), tags, released);
  }

  function respond(batch: Batch, outcomes: TaskOutcome[], tags: Record<string, number>, released: boolean): Response {
    const summary: BatchSummary = summarize(outcomes);
    const tagText = Object.entries(tags).map(([k, v]) => ` ${k}=${v}`).join("");
    log(
      `${job.name}: job=${JSON.stringify(batch.job)} batch=${batch.batch_id} processed=${summary.processed} ` +
        `succeeded=${summary.succeeded} retried=${summary.retried} dead=${summary.dead} ` +
        `discarded=${summary.discarded} skipped=${summary.skipped} released=${summary.released ?? 0}${tagText}` +
        (released ? " configuration_error" : ""),
    );
    const body: Record<string, unknown> = { ...summary };
    if (job.tagsField !== undefined) body[job.tagsField] = tags;
    if (released) {
      const reasons = [...new Set(outcomes.filter((o) => o.status === "released").map((o) => o.error ?? ""))];
      return Response.json(
        { ...body, success: false, error: "configuration_error", message: reasons.join("; ") },
        { status: 500 },
      );
    }
    return Response.json(body, { status: summary.success ? 200 : 207 });
  }
}

function skipped(taskId: number): TaskOutcome {
  return { task_id: taskId, status: "skipped", error: LEASE_LOST };
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue.path.length > 0 ? issue.path.map(String).join(".") : "value"}: ${issue.message}`;
}

/** String values of outcome data (new tokens…), so no error text can carry them. */
function stringsOf(data: Record<string, unknown> | undefined): string[] {
  return Object.values(data ?? {}).filter((v): v is string => typeof v === "string");
}

/** Resolves after ms, or at once when the request is aborted. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

async function withRetries<T>(fn: () => Promise<T>, delaysMs: readonly number[]): Promise<T> {
  for (const delay of delaysMs) {
    try {
      return await fn();
    } catch (err) {
      if (isLeaseLost(err)) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  return await fn();
}
