// The in-process JobStore every job's handler tests use: it serves contexts only for tasks whose
// lease token matches (like jobs.task_contexts), hands out a backlog one claim at a time (like
// jobs.report's claims, which discard the claimed tasks the context function finds moot), and
// records every outcome it was given.

import type { ClaimedTask, JobStore, LeasedContext, MootTask, TaskLease, Throttled } from "../job_store.ts";
import type { Outcome, RecordedState } from "../outcome.ts";

export interface FakeTask {
  taskId: number;
  /** The lease the task currently runs under; other tokens get nothing back. */
  leaseToken: string;
  context?: unknown;
  /** Set: the context function finds the task moot (the engine discards it, when its context is
   * read or when it is claimed). */
  moot?: string;
  /** For backlog tasks: what the claim hands out. */
  attempt?: number;
  payload?: unknown;
}

export type StoreMethod = "contexts" | "record" | "claim" | "finishBatch";

export interface FakeJobStoreOptions {
  /** The dispatched tasks as the engine knows them. */
  tasks?: FakeTask[];
  /** Tasks handed out, one per claim, after the batch's own (the job's backlog). */
  backlog?: FakeTask[];
  /** The state recording returns; default: ok → succeeded, retry/release → queued, dead → dead, discard → discarded. */
  state?: (lease: TaskLease, outcome: Outcome) => RecordedState;
  /** record resolves only after this promise (outcome writes that take a while). */
  holdRecords?: Promise<void>;
  /** claim takes from the backlog only after this promise (claims that reach SQL late). */
  holdClaims?: Promise<void>;
  /** Claims that would hand out a backlog task answer Throttled with these waits first, in order. */
  throttle?: number[];
  /** The context function at claim time, given what was recorded so far (a reason: moot). */
  mootOnClaim?: (task: FakeTask, recorded: FakeJobStore["recorded"]) => string | undefined;
  /** Answer "lease lost" from this method for these task ids ("all" = always). */
  leaseLost?: Partial<Record<StoreMethod, number[] | "all">>;
  /** Throw a database error from this method for these task ids ("all" = always). */
  dbError?: Partial<Record<StoreMethod, number[] | "all">>;
  /** Throw a database error from the first n calls of this method. */
  dbErrorTimes?: Partial<Record<StoreMethod, number>>;
}

/** Shaped like postgres.js's PostgresError. */
export function postgresError(code: string, message: string): Error {
  return Object.assign(new Error(message), { name: "PostgresError", code });
}

export function defaultState(outcome: Outcome): RecordedState {
  switch (outcome.outcome) {
    case "ok":
      return "succeeded";
    case "retry":
    case "release":
      return "queued";
    case "dead":
      return "dead";
    case "discard":
      return "discarded";
  }
}

export class FakeJobStore implements JobStore {
  readonly calls: { method: StoreMethod; taskIds: number[] }[] = [];
  readonly contextReads: TaskLease[][] = [];
  /** Every outcome recorded (lease checked), in order. */
  readonly recorded: { lease: TaskLease; outcome: Outcome; state: RecordedState }[] = [];
  readonly claimedBatches: number[] = [];
  /** Backlog tasks found moot when claimed: discarded by the engine, never handed out. */
  readonly discardedOnClaim: { taskId: number; reason: string }[] = [];
  readonly finishedBatches: number[] = [];
  private readonly tasks: Map<number, FakeTask>;
  private readonly backlog: FakeTask[];

  constructor(private readonly opts: FakeJobStoreOptions = {}) {
    this.tasks = new Map((opts.tasks ?? []).map((t) => [t.taskId, t]));
    this.backlog = [...(opts.backlog ?? [])];
  }

  /** The recorded outcome of a task (the last one), if any. */
  outcomeOf(taskId: number): Outcome | undefined {
    return this.recorded.findLast((r) => r.lease.taskId === taskId)?.outcome;
  }

  private check(method: StoreMethod, taskIds: number[]): "lease_lost" | null {
    this.calls.push({ method, taskIds });
    const hits = (list: number[] | "all" | undefined) =>
      list === "all" || (list !== undefined && taskIds.some((id) => list.includes(id)));
    const times = this.opts.dbErrorTimes?.[method] ?? 0;
    if (times > 0 && this.calls.filter((c) => c.method === method).length <= times) {
      throw postgresError("57P01", "terminating connection due to administrator command");
    }
    if (hits(this.opts.dbError?.[method])) {
      throw postgresError("57P01", "terminating connection due to administrator command");
    }
    return hits(this.opts.leaseLost?.[method]) ? "lease_lost" : null;
  }

  contexts(leases: readonly TaskLease[]): Promise<{ tasks: LeasedContext[]; moot: MootTask[] }> {
    try {
      const lost = this.check("contexts", leases.map((l) => l.taskId));
      this.contextReads.push([...leases]);
      const held = lost === "lease_lost" ? [] : leases
        .map((l) => this.tasks.get(l.taskId))
        .filter((t): t is FakeTask => t !== undefined && leases.some((l) => l.taskId === t.taskId && l.leaseToken === t.leaseToken));
      return Promise.resolve({
        tasks: held.filter((t) => t.moot === undefined).map((t) => ({ taskId: t.taskId, context: t.context ?? null })),
        moot: held.filter((t) => t.moot !== undefined).map((t) => ({ taskId: t.taskId, reason: t.moot! })),
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async record(lease: TaskLease, outcome: Outcome): Promise<RecordedState> {
    if (this.opts.holdRecords) await this.opts.holdRecords;
    if (this.check("record", [lease.taskId]) === "lease_lost") {
      throw postgresError("DWL01", `lease lost: task ${lease.taskId} is not running under this lease token`);
    }
    const state = this.opts.state?.(lease, outcome) ?? defaultState(outcome);
    this.recorded.push({ lease, outcome, state });
    return state;
  }

  claim(batchId: number): Promise<ClaimedTask | Throttled | null> {
    try {
      this.check("claim", []);
    } catch (err) {
      return Promise.reject(err);
    }
    this.claimedBatches.push(batchId);
    return this.opts.holdClaims ? this.opts.holdClaims.then(() => this.takeNext()) : Promise.resolve(this.takeNext());
  }

  private takeNext(): ClaimedTask | Throttled | null {
    if (this.backlog.length > 0 && this.opts.throttle !== undefined && this.opts.throttle.length > 0) {
      return { waitMs: this.opts.throttle.shift()! };
    }
    for (;;) {
      const next = this.backlog.shift();
      if (next === undefined) return null;
      const moot = next.moot ?? this.opts.mootOnClaim?.(next, this.recorded);
      if (moot !== undefined) {
        this.discardedOnClaim.push({ taskId: next.taskId, reason: moot });
        continue;
      }
      this.tasks.set(next.taskId, next);
      return {
        lease: { taskId: next.taskId, leaseToken: next.leaseToken },
        attempt: next.attempt ?? 1,
        payload: next.payload ?? {},
        context: next.context ?? null,
      };
    }
  }

  finishBatch(batchId: number): Promise<void> {
    try {
      this.check("finishBatch", []);
    } catch (err) {
      return Promise.reject(err);
    }
    this.finishedBatches.push(batchId);
    return Promise.resolve();
  }
}
