// Every SQL statement the refresh-reels function runs, behind an interface so the handler can be
// tested against an in-process fake (testing/fake_reel_store.ts). The state transitions live in
// the SQL functions of supabase/migrations/20261201100000_instagram_reels.sql; this module only
// calls them, one call per task outcome.

import type postgres from "npm:postgres@^3.4.9";
import { retryWhileDisconnected } from "./db.ts";
import { leaseAware, type TaskLease } from "./token_store.ts";

export { describeDatabaseError, isLeaseLost, LeaseLostError, type TaskLease } from "./token_store.ts";

/** A leased reel task with what its Graph call needs. The token never leaves the function. */
export interface LeasedReel {
  taskId: number;
  reelId: number;
  accountId: number;
  mediaId: string;
  graphVersion: string;
  accessToken: string;
}

/** A leased task SQL found moot (reel or account gone, account inactive) and discarded. */
export interface MootTask {
  taskId: number;
  reason: string;
}

export interface ClaimedReel {
  lease: TaskLease;
  reel: LeasedReel;
}

export type Throttle = "app" | "account";

export interface ReelFailure {
  error: string;
  /** null lets the engine choose its backoff. */
  retryAfterSeconds: number | null;
  permanent: boolean;
  /** A throttle also empties that bucket for retryAfterSeconds (app: every account waits). */
  throttle: Throttle | null;
}

export interface ReelStore {
  /** The reels of the tasks still running under these leases; moot ones are discarded. */
  leasedReels(leases: readonly TaskLease[]): Promise<{ reels: LeasedReel[]; moot: MootTask[] }>;
  /** Stores the new URLs (SQL parses their oe= expiry) and completes the task. */
  recordUrls(lease: TaskLease, urls: { mediaUrl: string | null; thumbnailUrl: string | null }): Promise<unknown>;
  /** 100/33: marks the reel deleted and completes the task. */
  recordDeleted(lease: TaskLease, error: string): Promise<unknown>;
  /** 190 / 401 / 403: the account becomes inactive, the task dead. Returns the task's state. */
  recordTokenInvalid(lease: TaskLease, error: string): Promise<string>;
  /** Anything else: retried with backoff (or dead). Returns the task's state. */
  recordFailure(lease: TaskLease, failure: ReelFailure): Promise<string>;
  /** The work became moot while this request held it (jobs.discard). */
  discard(lease: TaskLease, reason: string): Promise<void>;
  /** Claims the job's next due reel into this batch, honouring every rate bucket (null: none now). */
  claimNext(batchId: number): Promise<ClaimedReel | null>;
  /** The request is done with its batch: settles it and dispatches the job's next batch. */
  finishBatch(batchId: number): Promise<void>;
}

/** An outcome call: lease-aware, and repeated while the database is away (a repeat after an
 * unseen commit is refused as "lease lost", so nothing is written twice). */
function outcome<T>(query: () => Promise<T>): Promise<T> {
  return leaseAware(() => retryWhileDisconnected(query));
}

// deno-lint-ignore no-explicit-any
function reelOf(r: any): LeasedReel {
  return {
    taskId: Number(r.task_id),
    reelId: Number(r.reel_id),
    accountId: Number(r.account_id),
    mediaId: String(r.media_id),
    graphVersion: String(r.graph_version),
    accessToken: String(r.access_token),
  };
}

/** The ReelStore over postgres.js (bigint columns arrive as strings, hence Number()). */
export function createPgReelStore(sql: postgres.Sql): ReelStore {
  return {
    leasedReels(leases) {
      const ids = leases.map((l) => l.taskId);
      const tokens = leases.map((l) => l.leaseToken);
      return leaseAware(async () => {
        const rows = await sql`
          select task_id, reel_id, account_id, media_id, graph_version, access_token, moot
          from instagram.leased_reels(${ids}::bigint[], ${tokens}::uuid[])`;
        return {
          reels: rows.filter((r) => r.moot === null).map(reelOf),
          moot: rows.filter((r) => r.moot !== null).map((r) => ({ taskId: Number(r.task_id), reason: String(r.moot) })),
        };
      });
    },

    recordUrls(lease, urls) {
      return outcome(async () => {
        const [row] = await sql`
          select instagram.record_reel_urls(${lease.taskId}::bigint, ${lease.leaseToken}::uuid,
            ${urls.mediaUrl}::text, ${urls.thumbnailUrl}::text) as result`;
        return row?.result;
      });
    },

    recordDeleted(lease, error) {
      return outcome(async () => {
        const [row] = await sql`
          select instagram.record_reel_deleted(${lease.taskId}::bigint, ${lease.leaseToken}::uuid, ${error}::text) as result`;
        return row?.result;
      });
    },

    recordTokenInvalid(lease, error) {
      return outcome(async () => {
        const [row] = await sql`
          select instagram.record_token_invalid(${lease.taskId}::bigint, ${lease.leaseToken}::uuid, ${error}::text) as state`;
        return String(row?.state);
      });
    },

    recordFailure(lease, f) {
      return outcome(async () => {
        const [row] = await sql`
          select instagram.record_reel_failure(${lease.taskId}::bigint, ${lease.leaseToken}::uuid, ${f.error}::text,
            ${f.retryAfterSeconds}::int, ${f.permanent}::boolean, ${f.throttle}::text) as state`;
        return String(row?.state);
      });
    },

    discard(lease, reason) {
      return outcome(async () => {
        await sql`select jobs.discard(${lease.taskId}::bigint, ${lease.leaseToken}::uuid, ${reason}::text)`;
      });
    },

    async claimNext(batchId) {
      const [row] = await sql`
        select task_id, lease_token, reel_id, account_id, media_id, graph_version, access_token
        from instagram.claim_reel_tasks(${batchId}::bigint, 1)`;
      if (row === undefined) return null;
      return { lease: { taskId: Number(row.task_id), leaseToken: String(row.lease_token) }, reel: reelOf(row) };
    },

    async finishBatch(batchId) {
      await retryWhileDisconnected(() => sql`select jobs.finish_batch(${batchId}::bigint)`);
    },
  };
}
