// In-process TokenStore for handler tests: serves fixed credentials (only for tasks whose lease
// token matches, like social.leased_refresh_credentials) and records every call.

import type {
  ClaimedTask,
  FailureRecord,
  LeasedCredential,
  RefreshRecord,
  TaskLease,
  TokenStore,
} from "../token_store.ts";

export interface FakeCredential extends LeasedCredential {
  /** The lease the task currently runs under; other tokens get nothing back. */
  leaseToken: string;
}

export type StoreMethod = "leasedCredentials" | "recordRefresh" | "recordFailure" | "release" | "claimNext" | "finishBatch";

export interface FakeTokenStoreOptions {
  credentials?: FakeCredential[];
  /** recordRefresh resolves only after this promise (outcome writes that take a while). */
  holdRefreshes?: Promise<void>;
  /** State record_token_refresh returns; default 'succeeded' ('failed' = account gone). */
  refreshState?: (lease: TaskLease) => string;
  /** State record_token_failure returns; default 'dead' when permanent, else 'queued'. */
  failureState?: (lease: TaskLease, rec: FailureRecord) => string;
  /** Throw SQLSTATE DWL01 (lease lost) from this method for these task ids ("all" = always). */
  leaseLost?: Partial<Record<StoreMethod, number[] | "all">>;
  /** Tasks handed out, one per claimNext call, after the batch's own (the job's backlog). */
  backlog?: FakeCredential[];
  /** Throw a generic database error from this method for these task ids. */
  dbError?: Partial<Record<StoreMethod, number[] | "all">>;
  /** Throw a generic database error from the first n calls of this method. */
  dbErrorTimes?: Partial<Record<StoreMethod, number>>;
}

/** Shaped like postgres.js's PostgresError. */
export function postgresError(code: string, message: string): Error {
  return Object.assign(new Error(message), { name: "PostgresError", code });
}

export class FakeTokenStore implements TokenStore {
  readonly calls: { method: StoreMethod; taskIds: number[] }[] = [];
  readonly credentialReads: TaskLease[][] = [];
  readonly refreshes: { lease: TaskLease; record: RefreshRecord }[] = [];
  readonly failures: { lease: TaskLease; record: FailureRecord }[] = [];
  readonly releases: { leases: TaskLease[]; reason: string }[] = [];
  readonly claimedBatches: number[] = [];
  readonly finishedBatches: number[] = [];
  private backlog: FakeCredential[];

  constructor(private readonly opts: FakeTokenStoreOptions = {}) {
    this.backlog = [...(opts.backlog ?? [])];
  }

  private check(method: StoreMethod, taskIds: number[]): void {
    this.calls.push({ method, taskIds });
    const hits = (list: number[] | "all" | undefined) =>
      list === "all" || (list !== undefined && taskIds.some((id) => list.includes(id)));
    if (hits(this.opts.leaseLost?.[method])) {
      throw postgresError("DWL01", `lease lost for task ${taskIds.join(",")}`);
    }
    const times = this.opts.dbErrorTimes?.[method] ?? 0;
    if (times > 0 && this.calls.filter((c) => c.method === method).length <= times) {
      throw postgresError("57P01", "terminating connection due to administrator command");
    }
    if (hits(this.opts.dbError?.[method])) {
      throw postgresError("57P01", "terminating connection due to administrator command");
    }
  }

  leasedCredentials(leases: readonly TaskLease[]): Promise<LeasedCredential[]> {
    this.check("leasedCredentials", leases.map((l) => l.taskId));
    this.credentialReads.push([...leases]);
    const rows = (this.opts.credentials ?? []).filter((c) =>
      leases.some((l) => l.taskId === c.taskId && l.leaseToken === c.leaseToken)
    );
    return Promise.resolve(rows.map(({ leaseToken: _lt, ...row }) => row));
  }

  async recordRefresh(lease: TaskLease, record: RefreshRecord): Promise<string> {
    this.check("recordRefresh", [lease.taskId]);
    this.refreshes.push({ lease, record });
    await this.opts.holdRefreshes;
    return this.opts.refreshState?.(lease) ?? "succeeded";
  }

  recordFailure(lease: TaskLease, record: FailureRecord): Promise<string> {
    this.check("recordFailure", [lease.taskId]);
    this.failures.push({ lease, record });
    const state = this.opts.failureState?.(lease, record) ?? (record.permanent ? "dead" : "queued");
    return Promise.resolve(state);
  }

  claimNext(batchId: number): Promise<ClaimedTask | null> {
    this.check("claimNext", []);
    this.claimedBatches.push(batchId);
    const next = this.backlog.shift();
    if (next === undefined) return Promise.resolve(null);
    const { leaseToken, ...credential } = next;
    return Promise.resolve({ lease: { taskId: next.taskId, leaseToken }, credential });
  }

  finishBatch(batchId: number): Promise<void> {
    this.check("finishBatch", []);
    this.finishedBatches.push(batchId);
    return Promise.resolve();
  }

  release(leases: readonly TaskLease[], reason: string): Promise<number> {
    this.check("release", leases.map((l) => l.taskId));
    this.releases.push({ leases: [...leases], reason });
    return Promise.resolve(leases.length);
  }
}
