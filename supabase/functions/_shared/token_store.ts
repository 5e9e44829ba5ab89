// Every SQL statement the refresh-token function runs, behind an interface so the handler can be
// tested against an in-process fake. State transitions live in these SQL functions (migrations
// under supabase/migrations); this module only calls them, one call per task outcome.

import type postgres from "npm:postgres@^3.4.9";

/** SQLSTATE the outcome functions raise for a stale or forged lease token. */
export const LEASE_LOST_SQLSTATE = "DWL01";

export interface TaskLease {
  taskId: number;
  leaseToken: string;
}

export interface LeasedCredential {
  taskId: number;
  accountId: number;
  platform: string;
  refreshToken: string | null;
}

export interface RefreshRecord {
  accessToken: string;
  expiresIn: number;
  /** null keeps the stored refresh token. */
  refreshToken: string | null;
  /** null keeps the stored scope. */
  scope: string | null;
}

export interface FailureRecord {
  error: string;
  /** null lets the engine choose its backoff. */
  retryAfterSeconds: number | null;
  permanent: boolean;
  needsReauth: boolean;
}

/** A task claimed into the running batch, with its credentials. */
export interface ClaimedTask {
  lease: TaskLease;
  credential: LeasedCredential;
}

export interface TokenStore {
  /** Credentials of the given tasks that are still running under these lease tokens. */
  leasedCredentials(leases: readonly TaskLease[]): Promise<LeasedCredential[]>;
  /** Stores the new token and completes the task. */
  recordRefresh(lease: TaskLease, record: RefreshRecord): Promise<unknown>;
  /** Fails the task; returns its new state ('queued' = will retry, 'dead'). */
  recordFailure(lease: TaskLease, record: FailureRecord): Promise<string>;
  /** Puts tasks back without consuming an attempt; returns how many were released. */
  release(leases: readonly TaskLease[], reason: string): Promise<number>;
  /** Claims the job's next due task into this batch (null: nothing more for this request). */
  claimNext(batchId: number): Promise<ClaimedTask | null>;
  /** The request is done with its batch: settles it and dispatches the job's next batch. */
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

async function leaseAware<T>(query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (err) {
    if (isLeaseLost(err)) {
      throw new LeaseLostError(err instanceof Error ? err.message : "lease lost", { cause: err });
    }
    throw err;
  }
}

/** The TokenStore over postgres.js (bigint columns arrive as strings, hence Number()). */
export function createPgTokenStore(sql: postgres.Sql): TokenStore {
  return {
    leasedCredentials(leases) {
      const ids = leases.map((l) => l.taskId);
      const tokens = leases.map((l) => l.leaseToken);
      return leaseAware(async () => {
        const rows = await sql`
          select task_id, account_id, platform, refresh_token
          from social.leased_refresh_credentials(${ids}::bigint[], ${tokens}::uuid[])`;
        return rows.map((r) => ({
          taskId: Number(r.task_id),
          accountId: Number(r.account_id),
          platform: String(r.platform),
          refreshToken: r.refresh_token === null || r.refresh_token === undefined ? null : String(r.refresh_token),
        }));
      });
    },

    recordRefresh(lease, rec) {
      return leaseAware(async () => {
        const [row] = await sql`
          select social.record_token_refresh(
            ${lease.taskId}::bigint, ${lease.leaseToken}::uuid, ${rec.accessToken}::text,
            ${rec.expiresIn}::int, ${rec.refreshToken}::text, ${rec.scope}::text) as result`;
        return row?.result;
      });
    },

    recordFailure(lease, rec) {
      return leaseAware(async () => {
        const [row] = await sql`
          select social.record_token_failure(
            ${lease.taskId}::bigint, ${lease.leaseToken}::uuid, ${rec.error}::text,
            ${rec.retryAfterSeconds}::int, ${rec.permanent}::boolean, ${rec.needsReauth}::boolean) as state`;
        return String(row?.state);
      });
    },

    async claimNext(batchId) {
      const [row] = await sql`
        select task_id, lease_token, account_id, platform, refresh_token
        from social.claim_next_refresh(${batchId}::bigint)`;
      if (row === undefined) return null;
      const taskId = Number(row.task_id);
      return {
        lease: { taskId, leaseToken: String(row.lease_token) },
        credential: {
          taskId,
          accountId: Number(row.account_id),
          platform: String(row.platform),
          refreshToken: row.refresh_token === null ? null : String(row.refresh_token),
        },
      };
    },

    async finishBatch(batchId) {
      await sql`select jobs.finish_batch(${batchId}::bigint)`;
    },

    release(leases, reason) {
      const ids = leases.map((l) => l.taskId);
      const tokens = leases.map((l) => l.leaseToken);
      return leaseAware(async () => {
        const [row] = await sql`
          select jobs.release(${ids}::bigint[], ${tokens}::uuid[], ${reason}::text) as released`;
        return Number(row?.released ?? 0);
      });
    },
  };
}
