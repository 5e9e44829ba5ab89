// refresh-token: refreshes the OAuth access tokens of a leased batch of social accounts.
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt","payload":{"account_id"}}]}
//
// 1. auth (secret key) → 401; body (zod) → 400; nothing touched before both pass.
// 2. One SQL call reads the credentials of the tasks we still hold a lease on; the others are
//    skipped (lease lost).
// 3. Each task's provider is called concurrently (10 s timeout), then its outcome is recorded
//    with record_token_refresh / record_token_failure semantics: the domain write and the task's
//    completion commit together. Outcomes and claims of all slots are grouped into one SQL call
//    (social.record_and_claim_refreshes) while the previous one is in flight. A lease lost at
//    that point means someone else owns the task now: skipped, nothing changed.
// 3b. Each slot claims the job's next due task into the same batch while its current task is at
//    the provider, and calls the provider again without waiting for the previous outcome to be
//    written, so the batch's slots never idle while backlog remains; a request stops taking more
//    after MAX_TASKS_PER_REQUEST tasks or MAX_WALL_MS, well inside the Edge Function limits
//    (150 s wall, 2 s CPU).
// 3c. At the end, jobs.finish_batch settles the batch and dispatches the job's next one.
// 4. A configuration error (missing client secret, client rejected by the provider) is not the
//    tasks' fault: they are released without consuming an attempt and the answer is a 500.
// Tokens and client secrets never appear in responses, stored errors or logs.

import { z } from "npm:zod@4";
import type { Env } from "../_shared/env.ts";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import {
  type ProviderContext,
  type ProviderFactory,
  type ProviderSetup,
  type RefreshResult,
  transientFailure,
} from "../_shared/providers/token_refresh.ts";
import { redact } from "../_shared/redact.ts";
import {
  batchResponse,
  type BatchSummary,
  errorResponse,
  summarize,
  type TaskOutcome,
} from "../_shared/result.ts";
import { taskBatchSchema } from "../_shared/task_batch.ts";
import { jobRequestHandler, type JobRuntimeDeps, runtime } from "../_shared/job_request.ts";
import {
  type ClaimedTask,
  describeDatabaseError,
  type FailureRecord,
  isLeaseLost,
  type LeasedCredential,
  type TaskLease,
  type TokenStore,
} from "../_shared/token_store.ts";
import { REFRESH_PROVIDERS } from "./providers.ts";

export const RefreshTaskPayloadSchema = z.object({
  account_id: z.number().int().positive(),
});

export const RefreshBatchSchema = taskBatchSchema(RefreshTaskPayloadSchema);
export type RefreshBatch = z.output<typeof RefreshBatchSchema>;

export interface HandlerDeps extends JobRuntimeDeps {
  env: Env;
  /** Called only once a request is authenticated and valid (so rejects never touch the DB). */
  store: () => TokenStore;
  fetch?: FetchFn;
  /** Provider call deadline; 10 s by default. */
  timeoutMs?: number;
  now?: () => number;
  /** At most one line per request; never receives tokens. */
  log?: (line: string) => void;
  providers?: Readonly<Record<string, ProviderFactory>>;
  /** Refill limits per request (defaults below); tests shrink them. */
  maxTasksPerRequest?: number;
  maxWallMs?: number;
  /** Waits between retries of a rotated token's write (default ROTATED_WRITE_RETRY_MS). */
  rotatedWriteRetryMs?: readonly number[];
}

/** A request takes at most this many tasks in total, counting the batch it was sent with. Each
 * new request costs a pg_net pass, and pg_net may pause up to 1 s before it (worker.c), so a
 * request keeps going for a while; 2,000 refreshes took about 0.4 s of CPU here, inside the
 * 2 s CPU limit of an Edge Function request. */
export const MAX_TASKS_PER_REQUEST = 2_000;
/** A slot stops claiming more once the request has run this long. */
export const MAX_WALL_MS = 60_000;

type TaskResult =
  | { kind: "done"; outcome: TaskOutcome }
  | { kind: "release"; lease: TaskLease; reason: string };

/** What the provider call found, before anything is recorded. */
type Attempt =
  | { kind: "skip" }
  | { kind: "release"; reason: string }
  | { kind: "fail"; rec: FailureRecord; secrets: ReadonlyArray<string | null> }
  | { kind: "refreshed"; result: Extract<RefreshResult, { kind: "refreshed" }>; secrets: ReadonlyArray<string | null> };

const LEASE_LOST = "lease lost: the task is no longer running under this lease token";

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  const log = deps.log ?? ((line: string) => console.log(line));
  const providers = deps.providers ?? REFRESH_PROVIDERS;

  return jobRequestHandler({ ...runtime(deps), name: "refresh-token", env: deps.env, schema: RefreshBatchSchema, log, process: processBatch });

  async function processBatch(batch: RefreshBatch, signal: AbortSignal): Promise<Response> {
    const leases: TaskLease[] = batch.tasks.map((t) => ({ taskId: t.id, leaseToken: t.lease_token }));
    const store = deps.store();

    let credentials: LeasedCredential[];
    try {
      credentials = await store.leasedCredentials(leases);
    } catch (err) {
      if (isLeaseLost(err)) {
        await finishBatch(store, batch);
        return finish(batch, leases.map((l) => skipped(l.taskId)), []);
      }
      log(`refresh-token: job=${JSON.stringify(batch.job)} batch=${batch.batch_id} could not read credentials`);
      return errorResponse(
        500,
        "database_error",
        `could not read leased credentials: ${redact(describeDatabaseError(err), [])}`,
      );
    }
    const byTask = new Map(credentials.map((c) => [c.taskId, c]));

    const ctx: ProviderContext = {
      env: deps.env,
      fetch: deps.fetch ?? fetch,
      timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      now: deps.now ?? Date.now,
    };
    const setups = new Map<string, ProviderSetup | undefined>();
    const setupFor = (platform: string): ProviderSetup | undefined => {
      if (!setups.has(platform)) {
        const factory = Object.hasOwn(providers, platform) ? providers[platform] : undefined;
        setups.set(platform, factory?.(ctx));
      }
      return setups.get(platform);
    };

    const now = ctx.now;
    const started = now();
    let taken = leases.length;
    const maxTasks = deps.maxTasksPerRequest ?? MAX_TASKS_PER_REQUEST;
    const maxWall = deps.maxWallMs ?? MAX_WALL_MS;
    // signal: the engine settled the batch (recovered after a restart): take no more.
    const mayTakeMore = () => !signal.aborted && taken < maxTasks && now() - started < maxWall;

    let stopClaiming = false;
    const claimAhead = async (): Promise<ClaimedTask | null> => {
      if (stopClaiming || !mayTakeMore()) return null;
      taken++;
      try {
        const next = await store.claimNext(batch.batch_id);
        if (next === null) taken--;
        return next;
      } catch (err) {
        taken--;
        log(`refresh-token: batch ${batch.batch_id} could not claim more: ${redact(describeDatabaseError(err), [])}`);
        return null;
      }
    };

    // One slot per task of the batch. A slot claims its next task while the current one is at the
    // provider, and does not wait for an outcome to be recorded before calling the provider again:
    // claims and outcomes of all slots travel together in grouped SQL calls (token_store.ts), so
    // the provider sees C requests in flight whatever the database round trip costs.
    const runSlot = async (lease: TaskLease, credential: LeasedCredential | undefined): Promise<TaskResult[]> => {
      const recorded: Promise<TaskResult>[] = [];
      let current: ClaimedTask | { lease: TaskLease; credential: LeasedCredential | undefined } | null = {
        lease,
        credential,
      };
      while (current !== null) {
        const next = claimAhead();
        const attempt = await callProvider(current.credential, setupFor);
        // A configuration error will not go away within this request: finish what is held, claim no more.
        if (attempt.kind === "release") stopClaiming = true;
        recorded.push(record(store, current.lease, attempt));
        current = await next;
      }
      return await Promise.all(recorded);
    };
    const results = (await Promise.all(
      leases.map((lease) => runSlot(lease, byTask.get(lease.taskId))),
    )).flat();

    const outcomes: TaskOutcome[] = [];
    const toRelease = new Map<string, TaskLease[]>();
    for (const r of results) {
      if (r.kind === "done") outcomes.push(r.outcome);
      else toRelease.set(r.reason, [...(toRelease.get(r.reason) ?? []), r.lease]);
    }
    for (const [reason, group] of toRelease) {
      outcomes.push(...await release(store, group, reason));
    }
    await finishBatch(store, batch);
    return finish(batch, outcomes, [...toRelease.keys()]);
  }

  /** The provider I/O of one task; nothing is written yet. */
  async function callProvider(
    credential: LeasedCredential | undefined,
    setupFor: (platform: string) => ProviderSetup | undefined,
  ): Promise<Attempt> {
    if (credential === undefined) return { kind: "skip" };

    const setup = setupFor(credential.platform);
    const secrets = [credential.refreshToken, ...(setup?.ok ? setup.secrets : [])];
    const fail = (rec: FailureRecord): Attempt => ({ kind: "fail", rec, secrets });

    if (setup === undefined) {
      return fail({
        error: `unsupported platform: ${credential.platform}`,
        permanent: true,
        needsReauth: false,
        retryAfterSeconds: null,
      });
    }
    if (!setup.ok) return { kind: "release", reason: setup.configError };
    if (!credential.refreshToken) {
      return fail({
        error: "no refresh token stored for this account",
        permanent: true,
        needsReauth: true,
        retryAfterSeconds: null,
      });
    }

    let result: RefreshResult;
    try {
      result = await setup.refresher.refresh(credential.refreshToken);
    } catch (err) {
      // Clients return failures rather than throw; this is a bug guard.
      result = transientFailure(`unexpected error: ${err instanceof Error ? err.message : String(err)}`);
    }

    switch (result.kind) {
      case "misconfigured":
        return { kind: "release", reason: redact(result.error, secrets) };
      case "failed":
        return fail({
          error: result.error,
          permanent: result.permanent,
          needsReauth: result.needsReauth,
          retryAfterSeconds: result.retryAfterSeconds,
        });
      case "refreshed":
        return { kind: "refreshed", result, secrets };
    }
  }

  /** Records what callProvider found (one grouped SQL call shared with other tasks). */
  async function record(store: TokenStore, lease: TaskLease, attempt: Attempt): Promise<TaskResult> {
    switch (attempt.kind) {
      case "skip":
        return { kind: "done", outcome: skipped(lease.taskId) };
      case "release":
        return { kind: "release", lease, reason: attempt.reason };
      case "fail":
        return await recordFailure(store, lease, attempt.rec, attempt.secrets);
      case "refreshed": {
        const { result, secrets } = attempt;
        const write = () =>
          store.recordRefresh(lease, {
            accessToken: result.accessToken,
            expiresIn: result.expiresIn,
            refreshToken: result.refreshToken,
            scope: result.scope,
            refreshExpiresIn: result.refreshExpiresIn ?? null,
          });
        try {
          // A provider that rotated the refresh token (TikTok) has already invalidated the stored
          // one: this write is the only copy of the new token, so a database blip gets retries.
          const state = result.refreshToken === null ? await write() : await withRetries(write, deps.rotatedWriteRetryMs ?? ROTATED_WRITE_RETRY_MS);
          return state === "succeeded"
            ? { kind: "done", outcome: { task_id: lease.taskId, status: "succeeded" } }
            : { kind: "done", outcome: { task_id: lease.taskId, status: "failed", error: "account no longer exists" } };
        } catch (err) {
          if (isLeaseLost(err)) return { kind: "done", outcome: skipped(lease.taskId) };
          if (result.refreshToken !== null) {
            log(`refresh-token: task ${lease.taskId}: a rotated refresh token could not be stored; ` +
              "the account will need to sign in again if the provider invalidated the old one");
          }
          // Not recorded: the lease expires and the task is claimed again (a new token then).
          const error = redact(
            `could not record the refreshed token: ${describeDatabaseError(err)}`,
            [...secrets, result.accessToken, result.refreshToken],
          );
          return { kind: "done", outcome: { task_id: lease.taskId, status: "retried", error } };
        }
      }
    }
  }

  async function recordFailure(
    store: TokenStore,
    lease: TaskLease,
    rec: FailureRecord,
    secrets: ReadonlyArray<string | null>,
  ): Promise<TaskResult> {
    const error = redact(rec.error, secrets);
    try {
      const state = await store.recordFailure(lease, { ...rec, error });
      return {
        kind: "done",
        outcome: { task_id: lease.taskId, status: state === "queued" ? "retried" : "failed", error },
      };
    } catch (err) {
      if (isLeaseLost(err)) return { kind: "done", outcome: skipped(lease.taskId) };
      const dbError = redact(`could not record failure (${error}): ${describeDatabaseError(err)}`, secrets);
      return { kind: "done", outcome: { task_id: lease.taskId, status: "retried", error: dbError } };
    }
  }

  /**
   * One jobs.release call for the group. If it is refused as a whole because one lease is stale,
   * the others are released one by one: a configuration error must never use up attempts.
   */
  async function release(store: TokenStore, group: TaskLease[], reason: string): Promise<TaskOutcome[]> {
    const released = (l: TaskLease): TaskOutcome => ({ task_id: l.taskId, status: "released", error: reason });
    try {
      await store.release(group, reason);
      return group.map(released);
    } catch (err) {
      if (isLeaseLost(err) && group.length > 1) {
        const each = await Promise.all(group.map((l) => release(store, [l], reason)));
        return each.flat();
      }
      if (isLeaseLost(err)) return group.map((l) => skipped(l.taskId));
      const error = `could not release the task (${reason}): ${describeDatabaseError(err)}`;
      return group.map((l) => ({ task_id: l.taskId, status: "skipped", error }));
    }
  }

  /** Settles the batch so the next one goes out now; if this fails, a later reap settles it. */
  async function finishBatch(store: TokenStore, batch: RefreshBatch): Promise<void> {
    try {
      await store.finishBatch(batch.batch_id);
    } catch (err) {
      log(`refresh-token: batch ${batch.batch_id} could not be finished: ${redact(describeDatabaseError(err), [])}`);
    }
  }

  function finish(batch: RefreshBatch, outcomes: TaskOutcome[], configErrors: string[]): Response {
    const summary: BatchSummary = summarize(outcomes);
    log(
      `refresh-token: job=${JSON.stringify(batch.job)} batch=${batch.batch_id} processed=${summary.processed} ` +
        `succeeded=${summary.succeeded} retried=${summary.retried} failed=${summary.failed} ` +
        `skipped=${summary.skipped} released=${summary.released ?? 0}` +
        (configErrors.length > 0 ? " configuration_error" : ""),
    );
    if (configErrors.length > 0) {
      return Response.json({
        ...summary,
        success: false,
        error: "configuration_error",
        message: configErrors.join("; "),
      }, { status: 500 });
    }
    return batchResponse(summary);
  }
}

/** Waits before each retry of a rotated token's write (a lost lease is never retried). */
const ROTATED_WRITE_RETRY_MS = [100, 500, 2_000];

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

function skipped(taskId: number): TaskOutcome {
  return { task_id: taskId, status: "skipped", error: LEASE_LOST };
}
