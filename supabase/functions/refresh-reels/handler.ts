// refresh-reels: re-reads the signed media/thumbnail URLs of a leased batch of Instagram reels.
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt",
//         "payload":{"reel_id","account_id","media_id","graph_version"}}]}
//
// The job runtime (_shared/job_runner.ts) does the front door (401/400 before anything is
// touched), reads the tasks' contexts (instagram.reel_context: the account's token, read under
// the lease; moot tasks — reel or account gone, account inactive — are discarded by the engine),
// runs the slots with claim-ahead, records every outcome in grouped jobs.report calls (the
// reels job's apply function does the domain write), finishes the batch and answers. This file
// is the Graph mapping: per task one GET {base}/{graph_version}/{media_id}?fields=…media_url,
// thumbnail_url (10 s timeout), and its answer as one outcome:
//   ok             → ok {media_url, thumbnail_url}            (SQL stores them, parses oe=)
//   not_found      → ok {deleted, error} (100/33)             (reel marked deleted; the run goes on)
//   token_invalid  → dead {token_invalid} (190, 401/403)      (account made inactive; this request
//                    makes no further call with its token: the account's later tasks here are
//                    discarded as moot, and SQL finds its other tasks moot when they are claimed)
//   rate_limited   → retry after the provider's wait, pausing the bucket concerned (#4: the app's,
//                    17/32/613/80002: the account's hourly); the account's (for #4, every)
//                    later task in this request goes back with the same wait, unasked
//   transient / rejected → retry (the job's backoff; dead after max attempts)
// Tasks of one account run one after another within a request (serialize), so a 190 or a
// throttle is seen before that account's next call. Pacing is the engine's (token buckets at
// claim time): this function never sleeps. Tokens never appear in responses, stored errors,
// outcome data or logs.

import { z } from "npm:zod@4";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import { type JobFunction, type RunnerDeps, serveJob } from "../_shared/job_runner.ts";
import { fetchMediaUrls, instagramBaseUrl } from "../_shared/providers/instagram.ts";
import { redact } from "../_shared/redact.ts";

const mediaId = z.string().regex(/^\d{1,32}$/);
const graphVersion = z.string().regex(/^v\d{1,3}\.\d{1,3}$/);

export const ReelTaskPayloadSchema = z.object({
  reel_id: z.number().int().positive(),
  account_id: z.number().int().positive(),
  media_id: mediaId,
  graph_version: graphVersion.optional(),
});
export type ReelTaskPayload = z.output<typeof ReelTaskPayloadSchema>;

/** What instagram.reel_context returns for a task (the token never travels in the payload). */
export const ReelContextSchema = z.object({
  reel_id: z.number().int().positive(),
  account_id: z.number().int().positive(),
  media_id: mediaId,
  graph_version: graphVersion,
  access_token: z.string().min(1),
});
export type ReelContext = z.output<typeof ReelContextSchema>;

export interface HandlerDeps extends RunnerDeps {
  fetch?: FetchFn;
  /** Graph call deadline; 10 s by default. */
  timeoutMs?: number;
}

export const MAX_TASKS_PER_REQUEST = 500;
const APP_THROTTLE_DEFAULT_S = 60;
const ACCOUNT_THROTTLE_DEFAULT_S = 300;
/** The job's app-wide bucket (its rate_limit_key), emptied by a #4 throttle. */
export const APP_RATE_KEY = "instagram-graph";

interface Session {
  /** Accounts whose token Graph refused during this request → the refusal. */
  invalidAccounts: Map<number, string>;
  /** Throttles seen during this request (per account, or "app" for all). */
  throttles: Map<number | "app", { error: string; after: number | null }>;
  graphCalls: number;
}

export function refreshReelsJob(deps: HandlerDeps): JobFunction<ReelTaskPayload, ReelContext, Session> {
  const opts = {
    baseUrl: instagramBaseUrl(deps.env),
    fetch: deps.fetch ?? fetch,
    timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    now: deps.now,
  };
  const secretsOf = (c: ReelContext) => [c.access_token, encodeURIComponent(c.access_token)];

  return {
    name: "refresh-reels",
    payload: ReelTaskPayloadSchema,
    context: ReelContextSchema,
    session: () => ({ invalidAccounts: new Map(), throttles: new Map(), graphCalls: 0 }),
    serialize: (t) => t.context.account_id,
    secrets: (t) => secretsOf(t.context),
    tagsField: "reels",
    // Zeros included, so the reels field always carries every count.
    counters: (s) => ({ refreshed: 0, deleted: 0, token_invalid: 0, moot: 0, graph_calls: s.graphCalls }),
    maxTasksPerRequest: MAX_TASKS_PER_REQUEST,

    async perform({ context: c }, s) {
      const refused = s.invalidAccounts.get(c.account_id);
      if (refused !== undefined) {
        return { outcome: "discard", error: `moot: the account's token was refused earlier in this run (${refused})`, tag: "moot" };
      }
      const throttled = s.throttles.get("app") ?? s.throttles.get(c.account_id);
      if (throttled !== undefined) {
        return {
          outcome: "retry",
          error: `not called: throttled earlier in this run (${throttled.error})`,
          after: throttled.after,
          notAttempted: true,
        };
      }

      s.graphCalls++;
      const r = await fetchMediaUrls(c.access_token, c.media_id, c.graph_version, opts);
      if (r.kind === "ok") {
        return { outcome: "ok", data: { media_url: r.media_url, thumbnail_url: r.thumbnail_url }, tag: "refreshed" };
      }
      // Redacted here too: data and the session's texts (quoted in other tasks' errors) are not.
      const error = redact(r.error, secretsOf(c));
      switch (r.kind) {
        case "not_found":
          return { outcome: "ok", data: { deleted: true, error }, tag: "deleted" };
        case "token_invalid":
          s.invalidAccounts.set(c.account_id, error);
          return { outcome: "dead", error, data: { token_invalid: true }, tag: "token_invalid" };
        case "rate_limited": {
          // #4 is the app's limit (every account waits); 17/32/613/80002 concern this account.
          // Without a wait from Graph: a minute for the app, the hourly budget's 5 minutes for an account.
          const app = r.code === 4 || r.code === null;
          const after = r.retryAfterSeconds ?? (app ? APP_THROTTLE_DEFAULT_S : ACCOUNT_THROTTLE_DEFAULT_S);
          s.throttles.set(app ? "app" : c.account_id, { error, after });
          return { outcome: "retry", error, after, pause: app ? APP_RATE_KEY : `ig-hourly:${c.account_id}` };
        }
        case "transient":
          return { outcome: "retry", error, after: r.retryAfterSeconds };
        case "rejected":
          // A 4xx Graph would answer the same way again (bad field, deprecated version): the job's
          // backoff spaces the attempts and max_attempts ends them dead, for an operator to see.
          return { outcome: "retry", error, after: null };
      }
    },
  };
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  return serveJob(refreshReelsJob(deps), deps);
}
