// Every SQL statement the refresh-token function runs, behind an interface so the handler can be
// tested against an in-process fake. State transitions live in these SQL functions (migrations
// under supabase/migrations); this module only calls them. Outcomes and claims are grouped into
// social.record_and_claim_refreshes calls (see createPgTokenStore).

import type postgres from "npm:postgres@^3.4.9";
import { Coalescer, type CoalescerOptions } from "./coalescer.ts";
import { retryWhileDisconnected } from "./db.ts";

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
  /** Seconds until a rotated refresh token expires (TikTok); null/absent keeps the stored expiry. */
  refreshExpiresIn?: number | null;
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
  /** Stores the new token and completes the task; returns 'succeeded', or 'failed' (account gone). */
  recordRefresh(lease: TaskLease, record: RefreshRecord): Promise<string>;
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

/** Turns the SQLSTATE of a lost lease into a LeaseLostError. */
export async function leaseAware<T>(query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (err) {
    if (isLeaseLost(err)) {
      throw new LeaseLostError(err instanceof Error ? err.message : "lease lost", { cause: err });
    }
    throw err;
  }
}

/** One operation of a grouped call (social.record_and_claim_refreshes). */
type GroupOp =
  | { kind: "refresh"; lease: TaskLease; record: RefreshRecord }
  | { kind: "failure"; lease: TaskLease; record: FailureRecord }
  | { kind: "claim"; batchId: number };

type GroupResult = { leaseLost: true } | { leaseLost: false; state: string } | { claimed: ClaimedTask | null };

interface GroupAnswer {
  refreshes: { task_id: number | string; state: string }[];
  failures: { task_id: number | string; state: string }[];
  claimed: {
    batch_id: number | string;
    task_id: number | string;
    lease_token: string;
    account_id: number | string;
    platform: string;
    refresh_token: string | null;
  }[];
}

/**
 * The TokenStore over postgres.js (bigint columns arrive as strings, hence Number()).
 * Outcomes and claims are grouped (see coalescer.ts): while one call is in flight, the next
 * ones queue and then travel together in one social.record_and_claim_refreshes call.
 */
export function createPgTokenStore(sql: postgres.Sql, opts: CoalescerOptions = {}): TokenStore {
  const group = new Coalescer<GroupOp, GroupResult>((ops) => recordAndClaim(sql, ops), {
    retry: retryWhileDisconnected,
    ...opts,
  });
  const outcome = async (op: GroupOp): Promise<string> => {
    const r = await group.submit(op);
    if ("leaseLost" in r && r.leaseLost) {
      throw new LeaseLostError(`lease lost: task ${(op as { lease: TaskLease }).lease.taskId} is not running under this lease token`);
    }
    return (r as { state: string }).state;
  };

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

    recordRefresh: (lease, record) => outcome({ kind: "refresh", lease, record }),
    recordFailure: (lease, record) => outcome({ kind: "failure", lease, record }),

    async claimNext(batchId) {
      const r = await group.submit({ kind: "claim", batchId });
      return "claimed" in r ? r.claimed : null;
    },

    async finishBatch(batchId) {
      // Idempotent, and what dispatches the next batch: worth waiting for a restarting database.
      await retryWhileDisconnected(() => sql`select jobs.finish_batch(${batchId}::bigint)`);
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

/** One round trip for a group: outcomes first, then claims, in one transaction. */
async function recordAndClaim(sql: postgres.Sql, ops: readonly GroupOp[]): Promise<GroupResult[]> {
  const refreshes = [];
  const failures = [];
  const claims = new Map<number, number>();
  for (const op of ops) {
    if (op.kind === "refresh") {
      refreshes.push({
        task_id: op.lease.taskId,
        lease_token: op.lease.leaseToken,
        access_token: op.record.accessToken,
        expires_in: op.record.expiresIn,
        refresh_token: op.record.refreshToken,
        scope: op.record.scope,
        refresh_expires_in: op.record.refreshExpiresIn ?? null,
      });
    } else if (op.kind === "failure") {
      failures.push({
        task_id: op.lease.taskId,
        lease_token: op.lease.leaseToken,
        error: op.record.error,
        retry_after_seconds: op.record.retryAfterSeconds,
        permanent: op.record.permanent,
        needs_reauth: op.record.needsReauth,
      });
    } else {
      claims.set(op.batchId, (claims.get(op.batchId) ?? 0) + 1);
    }
  }
  const claimList = [...claims].map(([batch_id, count]) => ({ batch_id, count }));
  const [row] = await sql`
    select social.record_and_claim_refreshes(
      ${sql.json(refreshes)}::jsonb, ${sql.json(failures)}::jsonb, ${sql.json(claimList)}::jsonb) as answer`;
  const answer = row.answer as GroupAnswer;

  const stateOf = (list: { task_id: number | string; state: string }[]) =>
    new Map(list.map((r) => [Number(r.task_id), r.state]));
  const refreshStates = stateOf(answer.refreshes);
  const failureStates = stateOf(answer.failures);
  const claimedByBatch = new Map<number, ClaimedTask[]>();
  for (const c of answer.claimed) {
    const taskId = Number(c.task_id);
    const list = claimedByBatch.get(Number(c.batch_id)) ?? [];
    list.push({
      lease: { taskId, leaseToken: String(c.lease_token) },
      credential: {
        taskId,
        accountId: Number(c.account_id),
        platform: String(c.platform),
        refreshToken: c.refresh_token === null ? null : String(c.refresh_token),
      },
    });
    claimedByBatch.set(Number(c.batch_id), list);
  }

  return ops.map((op): GroupResult => {
    if (op.kind === "claim") return { claimed: claimedByBatch.get(op.batchId)?.shift() ?? null };
    const state = (op.kind === "refresh" ? refreshStates : failureStates).get(op.lease.taskId);
    if (state === undefined) throw new Error(`no outcome returned for task ${op.lease.taskId}`);
    return state === "lease_lost" ? { leaseLost: true } : { leaseLost: false, state };
  });
}
