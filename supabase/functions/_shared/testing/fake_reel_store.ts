// In-process ReelStore for refresh-reels handler tests: serves fixed reels (only for tasks whose
// lease token matches, like instagram.leased_reels), discards moot ones, hands out a backlog
// through claimNext, and records every call.

import type { ClaimedReel, LeasedReel, MootTask, ReelFailure, ReelStore, TaskLease } from "../reel_store.ts";
import { postgresError } from "./fake_token_store.ts";

export interface FakeReel extends LeasedReel {
  /** The lease the task currently runs under; other tokens get nothing back. */
  leaseToken: string;
}

export type ReelStoreMethod =
  | "leasedReels"
  | "recordUrls"
  | "recordDeleted"
  | "recordTokenInvalid"
  | "recordFailure"
  | "discard"
  | "claimNext"
  | "finishBatch";

export interface FakeReelStoreOptions {
  reels?: FakeReel[];
  /** Tasks leased to the batch that SQL finds moot (discarded by leasedReels). */
  moot?: (MootTask & { leaseToken: string })[];
  /** Handed out one per claimNext call (the job's backlog). */
  backlog?: FakeReel[];
  /** Throw SQLSTATE DWL01 from this method for these task ids ("all" = always). */
  leaseLost?: Partial<Record<ReelStoreMethod, number[] | "all">>;
  /** Throw a generic database error from this method for these task ids. */
  dbError?: Partial<Record<ReelStoreMethod, number[] | "all">>;
  /** Accounts SQL knows as inactive: claimNext discards their tasks, like claim_reel_tasks. */
  inactiveAccounts?: number[];
}

export class FakeReelStore implements ReelStore {
  readonly calls: { method: ReelStoreMethod; taskIds: number[] }[] = [];
  readonly urls: { lease: TaskLease; mediaUrl: string | null; thumbnailUrl: string | null }[] = [];
  readonly deleted: { lease: TaskLease; error: string }[] = [];
  readonly tokenInvalid: { lease: TaskLease; error: string }[] = [];
  readonly failures: { lease: TaskLease; failure: ReelFailure }[] = [];
  readonly discarded: { lease: TaskLease; reason: string }[] = [];
  readonly discardedOnClaim: number[] = [];
  readonly finishedBatches: number[] = [];
  private backlog: FakeReel[];
  private inactive: Set<number>;

  constructor(private readonly opts: FakeReelStoreOptions = {}) {
    this.backlog = [...(opts.backlog ?? [])];
    this.inactive = new Set(opts.inactiveAccounts ?? []);
  }

  private check(method: ReelStoreMethod, taskIds: number[]): void {
    this.calls.push({ method, taskIds });
    const hits = (list: number[] | "all" | undefined) =>
      list === "all" || (list !== undefined && taskIds.some((id) => list.includes(id)));
    if (hits(this.opts.leaseLost?.[method])) throw postgresError("DWL01", `lease lost for task ${taskIds.join(",")}`);
    if (hits(this.opts.dbError?.[method])) throw postgresError("57P01", "terminating connection due to administrator command");
  }

  leasedReels(leases: readonly TaskLease[]) {
    this.check("leasedReels", leases.map((l) => l.taskId));
    const held = (t: { taskId: number; leaseToken: string }) =>
      leases.some((l) => l.taskId === t.taskId && l.leaseToken === t.leaseToken);
    const reels = (this.opts.reels ?? []).filter(held).map(({ leaseToken: _lt, ...r }) => r);
    const moot = (this.opts.moot ?? []).filter(held).map(({ leaseToken: _lt, ...m }) => m);
    return Promise.resolve({ reels, moot });
  }

  recordUrls(lease: TaskLease, urls: { mediaUrl: string | null; thumbnailUrl: string | null }) {
    this.check("recordUrls", [lease.taskId]);
    this.urls.push({ lease, ...urls });
    return Promise.resolve({ state: "succeeded" });
  }

  recordDeleted(lease: TaskLease, error: string) {
    this.check("recordDeleted", [lease.taskId]);
    this.deleted.push({ lease, error });
    return Promise.resolve({ state: "succeeded", deleted: true });
  }

  recordTokenInvalid(lease: TaskLease, error: string) {
    this.check("recordTokenInvalid", [lease.taskId]);
    this.tokenInvalid.push({ lease, error });
    const reel = [...(this.opts.reels ?? []), ...(this.opts.backlog ?? [])].find((r) => r.taskId === lease.taskId);
    if (reel) this.inactive.add(reel.accountId);
    return Promise.resolve("dead");
  }

  recordFailure(lease: TaskLease, failure: ReelFailure) {
    this.check("recordFailure", [lease.taskId]);
    this.failures.push({ lease, failure });
    return Promise.resolve(failure.permanent ? "dead" : "queued");
  }

  discard(lease: TaskLease, reason: string) {
    this.check("discard", [lease.taskId]);
    this.discarded.push({ lease, reason });
    return Promise.resolve();
  }

  claimNext(batchId: number): Promise<ClaimedReel | null> {
    this.check("claimNext", [batchId]);
    for (;;) {
      const next = this.backlog.shift();
      if (next === undefined) return Promise.resolve(null);
      if (this.inactive.has(next.accountId)) {
        this.discardedOnClaim.push(next.taskId);
        continue;
      }
      const { leaseToken, ...reel } = next;
      return Promise.resolve({ lease: { taskId: next.taskId, leaseToken }, reel });
    }
  }

  finishBatch(batchId: number) {
    this.check("finishBatch", [batchId]);
    this.finishedBatches.push(batchId);
    return Promise.resolve();
  }
}
