// refresh-reels: re-reads the signed media/thumbnail URLs of a leased batch of Instagram reels.
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt",
//         "payload":{"reel_id","account_id","media_id","graph_version"}}]}
//
// 1. auth (secret key) → 401; body (zod) → 400; nothing touched before both pass.
// 2. One SQL call (instagram.leased_reels) reads the tokens of the tasks we still hold a lease
//    on. Moot tasks (reel or account gone, account inactive) were discarded by that call.
// 3. Per task: GET {base}/{graph_version}/{media_id}?fields=…media_url,thumbnail_url (10 s
//    timeout), then ONE SQL call records the outcome:
//      ok             → instagram.record_reel_urls (SQL parses the oe= expiry)
//      not_found      → instagram.record_reel_deleted (100/33), the run goes on
//      token_invalid  → instagram.record_token_invalid: account inactive; this request makes no
//                       further call with that account's token (its tasks here are discarded,
//                       and SQL discards the account's other tasks when they are claimed)
//      rate_limited   → instagram.record_reel_failure with the wait and the bucket to pause
//      transient / rejected → instagram.record_reel_failure (backoff; dead after max attempts)
//    Tasks of one account run one after the other within a request, so a 190 stops the rest,
//    and a throttle sends the account's (or, for #4, every) remaining task back unasked.
// 3b. A slot that finished claims the job's next due reel into the batch (the claim honours the
//    app bucket, the account's pacing bucket and its hourly budget) and goes on, until
//    MAX_TASKS_PER_REQUEST or MAX_WALL_MS: far inside the Edge limits (150 s wall, 2 s CPU).
// 3c. jobs.finish_batch settles the batch and dispatches the job's next one.
// Pacing is the engine's (token buckets at claim time): this function never sleeps.
// Tokens never appear in responses, stored errors or logs.

import { z } from "npm:zod@4";
import type { Env } from "../_shared/env.ts";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import { fetchMediaUrls, instagramBaseUrl, type MediaUrlsResult } from "../_shared/providers/instagram.ts";
import { redact } from "../_shared/redact.ts";
import {
  type ClaimedReel,
  describeDatabaseError,
  isLeaseLost,
  type LeasedReel,
  type ReelFailure,
  type ReelStore,
  type TaskLease,
} from "../_shared/reel_store.ts";
import {
  batchResponse,
  type BatchSummary,
  errorResponse,
  summarize,
  type TaskOutcome,
} from "../_shared/result.ts";
import { taskBatchSchema } from "../_shared/task_batch.ts";
import { jobRequestHandler, type JobRuntimeDeps, runtime } from "../_shared/job_request.ts";

export const ReelTaskPayloadSchema = z.object({
  reel_id: z.number().int().positive(),
  account_id: z.number().int().positive(),
  media_id: z.string().regex(/^\d{1,32}$/),
  graph_version: z.string().regex(/^v\d{1,3}\.\d{1,3}$/).optional(),
});

export const ReelBatchSchema = taskBatchSchema(ReelTaskPayloadSchema);
export type ReelBatch = z.output<typeof ReelBatchSchema>;

export interface HandlerDeps extends JobRuntimeDeps {
  env: Env;
  /** Called only once a request is authenticated and valid (so rejects never touch the DB). */
  store: () => ReelStore;
  fetch?: FetchFn;
  /** Graph call deadline; 10 s by default. */
  timeoutMs?: number;
  now?: () => number;
  /** At most one line per request; never receives tokens. */
  log?: (line: string) => void;
  maxTasksPerRequest?: number;
  maxWallMs?: number;
}

export const MAX_TASKS_PER_REQUEST = 500;
export const MAX_WALL_MS = 60_000;

const LEASE_LOST = "lease lost: the task is no longer running under this lease token";

/** What happened to each reel, beyond the generic envelope. */
export interface ReelCounts {
  refreshed: number;
  deleted: number;
  token_invalid: number;
  moot: number;
  graph_calls: number;
}

type Kind = keyof Omit<ReelCounts, "graph_calls"> | "other";

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  const log = deps.log ?? ((line: string) => console.log(line));

  return jobRequestHandler({ ...runtime(deps), name: "refresh-reels", env: deps.env, schema: ReelBatchSchema, log, process: processBatch });

  async function processBatch(batch: ReelBatch, signal: AbortSignal): Promise<Response> {
    const leases: TaskLease[] = batch.tasks.map((t) => ({ taskId: t.id, leaseToken: t.lease_token }));
    const store = deps.store();
    const counts: ReelCounts = { refreshed: 0, deleted: 0, token_invalid: 0, moot: 0, graph_calls: 0 };

    let read: { reels: LeasedReel[]; moot: { taskId: number; reason: string }[] };
    try {
      read = await store.leasedReels(leases);
    } catch (err) {
      if (isLeaseLost(err)) {
        await finishBatch(store, batch.batch_id);
        return finish(batch, leases.map((l) => skipped(l.taskId)), counts);
      }
      log(`refresh-reels: batch ${batch.batch_id} could not read its leased reels`);
      return errorResponse(500, "database_error", `could not read leased reels: ${redact(describeDatabaseError(err), [])}`);
    }
    const byTask = new Map(read.reels.map((r) => [r.taskId, r]));
    const mootOutcomes: TaskOutcome[] = read.moot.map((m) => ({ task_id: m.taskId, status: "skipped", error: `moot: ${m.reason}` }));
    counts.moot += read.moot.length;
    const mootIds = new Set(read.moot.map((m) => m.taskId));

    const now = deps.now ?? Date.now;
    const started = now();
    const baseUrl = instagramBaseUrl(deps.env);
    const timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const fetchFn = deps.fetch ?? fetch;
    const maxTasks = deps.maxTasksPerRequest ?? MAX_TASKS_PER_REQUEST;
    const maxWall = deps.maxWallMs ?? MAX_WALL_MS;
    let taken = leases.length;
    // signal: the engine settled the batch (recovered after a restart): take no more.
    const mayTakeMore = () => !signal.aborted && taken < maxTasks && now() - started < maxWall;

    // Accounts whose token Graph refused during this request: no more calls with it.
    const invalidAccounts = new Map<number, string>();
    // Throttles seen in this request (per account, or "app" for all): no more calls until the
    // wait is over; those tasks go back with the same wait (the buckets are paused in SQL too).
    const throttles = new Map<number | "app", ReelFailure>();
    // One task per account at a time, so a 190 is seen before the account's next call.
    const accountChains = new Map<number, Promise<unknown>>();
    const serialized = <T>(accountId: number, fn: () => Promise<T>): Promise<T> => {
      const prev = accountChains.get(accountId) ?? Promise.resolve();
      const run = prev.then(fn, fn);
      accountChains.set(accountId, run.catch(() => undefined));
      return run;
    };

    const processTask = async (lease: TaskLease, reel: LeasedReel): Promise<{ outcome: TaskOutcome; kind: Kind }> => {
      const secrets = [reel.accessToken, encodeURIComponent(reel.accessToken)];
      const invalid = invalidAccounts.get(reel.accountId);
      if (invalid !== undefined) {
        const reason = `moot: the account's token was refused earlier in this run (${invalid})`;
        try {
          await store.discard(lease, reason);
          return { outcome: { task_id: lease.taskId, status: "skipped", error: reason }, kind: "moot" };
        } catch (err) {
          if (isLeaseLost(err)) return { outcome: skipped(lease.taskId), kind: "other" };
          return { outcome: { task_id: lease.taskId, status: "retried", error: redact(describeDatabaseError(err), secrets) }, kind: "other" };
        }
      }

      const throttled = throttles.get("app") ?? throttles.get(reel.accountId);
      if (throttled !== undefined) {
        const f: ReelFailure = { ...throttled, error: `not called: throttled earlier in this run (${throttled.error})`, throttle: null };
        try {
          await store.recordFailure(lease, f);
          return { outcome: { task_id: lease.taskId, status: "retried", error: f.error }, kind: "other" };
        } catch (err) {
          if (isLeaseLost(err)) return { outcome: skipped(lease.taskId), kind: "other" };
          return { outcome: { task_id: lease.taskId, status: "retried", error: redact(describeDatabaseError(err), secrets) }, kind: "other" };
        }
      }

      let result: MediaUrlsResult;
      counts.graph_calls++;
      try {
        result = await fetchMediaUrls(reel.accessToken, reel.mediaId, reel.graphVersion, {
          baseUrl,
          fetch: fetchFn,
          timeoutMs,
          now,
        });
      } catch (err) {
        // The client returns failures rather than throwing; this is a bug guard.
        result = { kind: "transient", error: `unexpected error: ${err instanceof Error ? err.message : String(err)}`, retryAfterSeconds: null };
      }

      const record = async (kind: Kind, status: TaskOutcome["status"], call: () => Promise<unknown>, error?: string) => {
        try {
          const state = await call();
          const finalStatus = status === "retried" && state === "dead" ? "failed" : status;
          return { outcome: { task_id: lease.taskId, status: finalStatus, ...(error ? { error } : {}) }, kind };
        } catch (err) {
          if (isLeaseLost(err)) return { outcome: skipped(lease.taskId), kind: "other" as Kind };
          const dbError = redact(`could not record the outcome${error ? ` (${error})` : ""}: ${describeDatabaseError(err)}`, secrets);
          return { outcome: { task_id: lease.taskId, status: "retried" as const, error: dbError }, kind: "other" as Kind };
        }
      };

      switch (result.kind) {
        case "ok":
          return record("refreshed", "succeeded", () =>
            store.recordUrls(lease, { mediaUrl: result.media_url, thumbnailUrl: result.thumbnail_url }));
        case "not_found": {
          const error = redact(result.error, secrets);
          return record("deleted", "succeeded", () => store.recordDeleted(lease, error));
        }
        case "token_invalid": {
          const error = redact(result.error, secrets);
          invalidAccounts.set(reel.accountId, error);
          return record("token_invalid", "failed", () => store.recordTokenInvalid(lease, error), error);
        }
        default: {
          const f = failureOf(result, secrets);
          if (f.throttle === "app") throttles.set("app", f);
          else if (f.throttle === "account") throttles.set(reel.accountId, f);
          return record("other", f.permanent ? "failed" : "retried", () => store.recordFailure(lease, f), f.error);
        }
      }
    };

    const runSlot = async (lease: TaskLease, reel: LeasedReel | undefined): Promise<TaskOutcome[]> => {
      const done: TaskOutcome[] = [];
      let current: ClaimedReel | null = reel === undefined ? null : { lease, reel };
      if (reel === undefined && !mootIds.has(lease.taskId)) done.push(skipped(lease.taskId));
      while (current !== null) {
        const { lease: l, reel: r } = current;
        const { outcome, kind } = await serialized(r.accountId, () => processTask(l, r));
        done.push(outcome);
        if (kind !== "other") counts[kind]++;
        if (!mayTakeMore()) break;
        taken++;
        try {
          current = await store.claimNext(batch.batch_id);
        } catch (err) {
          log(`refresh-reels: batch ${batch.batch_id} could not claim more: ${redact(describeDatabaseError(err), [])}`);
          current = null;
        }
        if (current === null) taken--;
      }
      return done;
    };

    const outcomes = (await Promise.all(leases.map((l) => runSlot(l, byTask.get(l.taskId))))).flat();
    await finishBatch(store, batch.batch_id);
    return finish(batch, [...mootOutcomes, ...outcomes], counts);
  }

  async function finishBatch(store: ReelStore, batchId: number): Promise<void> {
    try {
      await store.finishBatch(batchId);
    } catch (err) {
      log(`refresh-reels: batch ${batchId} could not be finished: ${redact(describeDatabaseError(err), [])}`);
    }
  }

  function finish(batch: ReelBatch, outcomes: TaskOutcome[], counts: ReelCounts): Response {
    const summary: BatchSummary = summarize(outcomes);
    log(
      `refresh-reels: job=${JSON.stringify(batch.job)} batch=${batch.batch_id} processed=${summary.processed} ` +
        `refreshed=${counts.refreshed} deleted=${counts.deleted} token_invalid=${counts.token_invalid} ` +
        `moot=${counts.moot} retried=${summary.retried} skipped=${summary.skipped} graph_calls=${counts.graph_calls}`,
    );
    const res = batchResponse(summary);
    return Response.json({ ...summary, reels: counts }, { status: res.status });
  }
}

/** Maps a Graph failure that is neither "deleted" nor "token invalid" to a failure record. */
export function failureOf(
  result: Exclude<MediaUrlsResult, { kind: "ok" | "not_found" | "token_invalid" }>,
  secrets: ReadonlyArray<string>,
): ReelFailure {
  const error = redact(result.error, secrets);
  switch (result.kind) {
    case "rate_limited":
      // #4 is the app's limit (every account waits); 17/32/613/80002 concern this account.
      return {
        error,
        retryAfterSeconds: result.retryAfterSeconds,
        permanent: false,
        throttle: result.code === 4 || result.code === null ? "app" : "account",
      };
    case "transient":
      return { error, retryAfterSeconds: result.retryAfterSeconds, permanent: false, throttle: null };
    case "rejected":
      // A 4xx Graph would answer the same way again (bad field, deprecated version): the job's
      // backoff spaces the attempts and max_attempts ends them dead, for an operator to see.
      return { error, retryAfterSeconds: null, permanent: false, throttle: null };
  }
}

function skipped(taskId: number): TaskOutcome {
  return { task_id: taskId, status: "skipped", error: LEASE_LOST };
}
