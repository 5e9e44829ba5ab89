// run-job: runs one tick of a named job over HTTP, for schedulers outside the database
// (cron-job.org, Vercel Cron, GitHub Actions). verify_jwt = false: the function checks its own
// credentials (auth.ts), before it reads anything but the headers or touches the database.
//
//   no secret key and no CRON_SECRET → 401 {"error":"unauthorized"}, no database call
//   not GET or POST → 405; body over 16 KiB → 413
//   no job, two different names, a bad name, a bad body → 400 {"error":"invalid_request","field"}
//   otherwise one `select jobs.tick(job, 'http')` → 200 with the tick's summary
//     ({job, run_id, discovered, claimed, dispatched_requests, reaped, queued, batches_in_flight, error})
//   no such job → 404 {"error":"unknown_job","job","message"}
//   database error → 503 {"error":"database_unavailable"} (nothing about the database in it)
//
// A tick is what pg_cron runs on the job's schedule, so a scheduler calling more often than
// that (or a retry) only runs an extra tick: ticks of one job take turns, and tasks are deduped
// by key. No secret is ever logged or returned.

import type { Env } from "../_shared/env.ts";
import { describeDatabaseError } from "../_shared/job_store.ts";
import { redact } from "../_shared/redact.ts";
import { methodNotAllowedResponse } from "../_shared/result.ts";
import { invalidRequestResponse } from "../_shared/task_batch.ts";
import { payloadTooLargeResponse, readLimited } from "../_shared/body.ts";
import { authorize, configuredSecrets, SHORT_CRON_SECRET_WARNING, unauthorizedResponse } from "./auth.ts";
import { MAX_BODY_BYTES, resolveJobName } from "./job_name.ts";

/** What jobs.tick returns (docs/jobs.md "A tick"); passed through as it is. */
export interface TickSummary {
  job: string;
  run_id: number;
  discovered: number;
  claimed: number;
  dispatched_requests: number;
  reaped: number;
  queued: number;
  batches_in_flight: number;
  error: string | null;
  [more: string]: unknown;
}

/** The one database call of this function. */
export interface TickStore {
  /** select jobs.tick($1, 'http') */
  tick(job: string): Promise<TickSummary>;
}

export interface RunJobDeps {
  env: Env;
  /** Called only for an authorized request that names a well-formed job. */
  store: () => TickStore;
  log?: (line: string) => void;
}

/** jobs.tick's refusal of a name no job has: SQLSTATE no_data_found, "jobs.tick: no job named X". */
export function isUnknownJob(err: unknown): boolean {
  const e = (typeof err === "object" && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  return e.code === "P0002" && typeof e.message === "string" && e.message.startsWith("jobs.tick: no job named ");
}

function unknownJobResponse(job: string): Response {
  return Response.json({ error: "unknown_job", job, message: `no job named ${job}` }, { status: 404 });
}

function databaseUnavailableResponse(): Response {
  return Response.json(
    { error: "database_unavailable", message: "the tick could not run; try again later" },
    { status: 503 },
  );
}

/** The database URL and its password, to scrub from error text. */
function databaseSecrets(env: Env): string[] {
  const url = env("SUPABASE_DB_URL");
  if (!url) return [];
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password ? [url, password] : [url];
  } catch {
    return [url];
  }
}

export function createHandler(deps: RunJobDeps): (req: Request) => Promise<Response> {
  const log = deps.log ?? ((line: string) => console.log(line));
  let warned = false;
  const warnShort = () => {
    if (warned) return;
    warned = true;
    log(SHORT_CRON_SECRET_WARNING);
  };

  return async (req) => {
    const caller = authorize(req, deps.env, warnShort);
    if (caller === null) return unauthorizedResponse();
    if (req.method !== "GET" && req.method !== "POST") return methodNotAllowedResponse("GET, POST");

    const body = req.method === "POST" ? await readLimited(req, MAX_BODY_BYTES) : "";
    if (body === null) return payloadTooLargeResponse(MAX_BODY_BYTES);
    const named = resolveJobName(new URL(req.url), body);
    if (!named.ok) return invalidRequestResponse(named.field, named.message);
    const job = named.job;

    let summary: TickSummary;
    try {
      summary = await deps.store().tick(job);
    } catch (err) {
      if (isUnknownJob(err)) {
        log(`run-job: no job named ${job}`);
        return unknownJobResponse(job);
      }
      const secrets = [...configuredSecrets(deps.env), ...databaseSecrets(deps.env)];
      log(`run-job: the tick of ${job} failed: ${redact(describeDatabaseError(err), secrets)}`);
      return databaseUnavailableResponse();
    }
    log(`run-job: ${job} ticked (${caller}): run ${summary.run_id}, discovered ${summary.discovered}, ` +
      `claimed ${summary.claimed}, ${summary.dispatched_requests} request(s) dispatched` +
      (summary.error ? `; ${summary.error}` : ""));
    return Response.json(summary);
  };
}
