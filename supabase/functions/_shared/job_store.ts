// Every SQL statement the job runner (job_runner.ts) makes, behind one interface so any job's
// handler can be tested against the one in-process fake (testing/fake_job_store.ts). The state
// transitions are the engine's SQL functions (supabase/migrations/…_jobs_core.sql); a job's own
// SQL (context and apply functions) is called by the engine, never from here.
//
// Outcomes and claims travel grouped (coalescer.ts): while one jobs.report call is in flight the
// next operations queue and go out together in one call and one transaction.

import type postgres from "npm:postgres@^3.4.9";
import { Coalescer, type CoalescerOptions } from "./coalescer.ts";
import { retryWhileDisconnected } from "./db.ts";
import type { Outcome, RecordedState } from "./outcome.ts";

/** SQLSTATE the engine raises for a stale or forged lease token. */
export const LEASE_LOST_SQLSTATE = "DWL01";

export interface TaskLease {
  taskId: number;
  leaseToken: string;
}

/** A dispatched task still running under its lease, with what the job's context function gave. */
export interface LeasedContext {
  taskId: number;
  context: unknown;
}

/** A dispatched task the context function found moot: the engine discarded it. */
export interface MootTask {
  taskId: number;
  reason: string;
}

/** A task claimed into the running batch. */
export interface ClaimedTask {
  lease: TaskLease;
  attempt: number;
  payload: unknown;
  context: unknown;
}

/** No task now, but due work waits for a rate-limit bucket: claim again after waitMs. */
export interface Throttled {
  waitMs: number;
}

export function isThrottled(claim: ClaimedTask | Throttled | null): claim is Throttled {
  return claim !== null && "waitMs" in claim;
}

export interface JobStore {
  /** Contexts of the dispatched tasks still running under these leases (jobs.task_contexts). */
  contexts(leases: readonly TaskLease[]): Promise<{ tasks: LeasedContext[]; moot: MootTask[] }>;
  /** Records one task's outcome (grouped into jobs.report); throws LeaseLostError when the lease is gone. */
  record(lease: TaskLease, outcome: Outcome): Promise<RecordedState>;
  /** Claims the job's next due task into this batch (grouped into jobs.report); null: none now;
   * Throttled: due work waits for a bucket (jobs.report's wait_ms). */
  claim(batchId: number): Promise<ClaimedTask | Throttled | null>;
  /** The request is done with its batch: settles it and dispatches the job's next one. */
  finishBatch(batchId: number): Promise<void>;
}

/** The task's lease is no longer ours: nothing was changed. */
export class LeaseLostError extends Error {
  override name = "LeaseLostError";
  readonly code = LEASE_LOST_SQLSTATE;
}

export function isLeaseLost(err: unknown): boolean {
  return err instanceof LeaseLostError ||
    (typeof err === "object" && err !== null && (err as { code?: unknown }).code === LEASE_LOST_SQLSTATE);
}

/** A short description of a database error (SQLSTATE + message, never parameters). */
export function describeDatabaseError(err: unknown): string {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === "string" ? `database error (SQLSTATE ${code}): ${message}` : `database error: ${message}`;
}

type GroupOp =
  | { kind: "outcome"; lease: TaskLease; outcome: Outcome }
  | { kind: "claim"; batchId: number };

type GroupResult = { state: RecordedState | "lease_lost" } | { claimed: ClaimedTask | Throttled | null };

interface ReportAnswer {
  outcomes: { task_id: number | string; state: RecordedState | "lease_lost" }[];
  claimed: {
    batch_id: number | string;
    task_id: number | string;
    lease_token: string;
    attempt: number;
    payload: unknown;
    context: unknown;
  }[];
  /** Present when claims came back short because due work waits for a bucket. */
  wait_ms?: number;
}

/** The outcome as jobs.report reads it. */
function outcomeJson(lease: TaskLease, o: Outcome): Record<string, unknown> {
  const base = { task_id: lease.taskId, lease_token: lease.leaseToken, outcome: o.outcome };
  switch (o.outcome) {
    case "ok":
      return { ...base, data: o.data ?? null, result: o.result ?? null };
    case "retry":
      return {
        ...base,
        error: o.error,
        after: o.after ?? null,
        pause: o.pause ?? null,
        data: o.data ?? null,
        ...(o.notAttempted ? { not_attempted: true } : {}),
      };
    case "dead":
    case "discard":
      return { ...base, error: o.error, data: o.data ?? null };
    case "release":
      return { ...base, error: o.error };
  }
}

/** One round trip for a group: every outcome first, then the claims, in one transaction. */
async function report(sql: postgres.Sql, ops: readonly GroupOp[]): Promise<GroupResult[]> {
  const outcomes = [];
  const claims = new Map<number, number>();
  for (const op of ops) {
    if (op.kind === "outcome") outcomes.push(outcomeJson(op.lease, op.outcome));
    else claims.set(op.batchId, (claims.get(op.batchId) ?? 0) + 1);
  }
  const claimList = [...claims].map(([batch_id, count]) => ({ batch_id, count }));
  const [row] = await sql`
    select jobs.report(${sql.json(outcomes as postgres.JSONValue)}::jsonb, ${sql.json(claimList)}::jsonb) as answer`;
  const answer = row.answer as ReportAnswer;

  const states = new Map(answer.outcomes.map((r) => [Number(r.task_id), r.state]));
  const claimedByBatch = new Map<number, ClaimedTask[]>();
  for (const c of answer.claimed) {
    const list = claimedByBatch.get(Number(c.batch_id)) ?? [];
    list.push({
      lease: { taskId: Number(c.task_id), leaseToken: String(c.lease_token) },
      attempt: Number(c.attempt),
      payload: c.payload,
      context: c.context,
    });
    claimedByBatch.set(Number(c.batch_id), list);
  }
  return ops.map((op): GroupResult => {
    if (op.kind === "claim") {
      const claimed = claimedByBatch.get(op.batchId)?.shift() ?? null;
      return { claimed: claimed ?? (answer.wait_ms != null ? { waitMs: Number(answer.wait_ms) } : null) };
    }
    const state = states.get(op.lease.taskId);
    if (state === undefined) throw new Error(`jobs.report returned no outcome for task ${op.lease.taskId}`);
    return { state };
  });
}

/** The JobStore over postgres.js (bigint columns arrive as strings, hence Number()). */
export function createPgJobStore(sql: postgres.Sql, opts: CoalescerOptions = {}): JobStore {
  // A group repeated after a connection loss may have committed the first time: its outcomes are
  // then refused as "lease lost" (nothing written twice), and tasks whose claim answer was lost
  // are put back by jobs.finish_batch.
  const group = new Coalescer<GroupOp, GroupResult>((ops) => report(sql, ops), {
    retry: retryWhileDisconnected,
    ...opts,
  });

  return {
    async contexts(leases) {
      const ids = leases.map((l) => l.taskId);
      const tokens = leases.map((l) => l.leaseToken);
      const rows = await retryWhileDisconnected(() =>
        sql`select task_id, context, moot from jobs.task_contexts(${ids}::bigint[], ${tokens}::uuid[])`
      );
      return {
        tasks: rows.filter((r) => r.moot === null).map((r) => ({ taskId: Number(r.task_id), context: r.context })),
        moot: rows.filter((r) => r.moot !== null).map((r) => ({ taskId: Number(r.task_id), reason: String(r.moot) })),
      };
    },

    async record(lease, outcome) {
      const r = await group.submit({ kind: "outcome", lease, outcome });
      const state = "state" in r ? r.state : "lease_lost";
      if (state === "lease_lost") {
        throw new LeaseLostError(`lease lost: task ${lease.taskId} is not running under this lease token`);
      }
      return state;
    },

    async claim(batchId) {
      const r = await group.submit({ kind: "claim", batchId });
      return "claimed" in r ? r.claimed : null;
    },

    async finishBatch(batchId) {
      // Idempotent, and what dispatches the next batch: worth waiting for a restarting database.
      await retryWhileDisconnected(() => sql`select jobs.finish_batch(${batchId}::bigint)`);
    },
  };
}
