// Which job a request names. Three places, for the three kinds of scheduler:
//
//   POST /functions/v1/run-job            {"job": "<name>"}        (cron-job.org, curl)
//   GET|POST /functions/v1/run-job?job=<name>                      (Vercel Cron sends GET)
//   GET|POST /functions/v1/run-job/<name>
//
// One place is enough; a name given in two places must be the same name (else 400 naming `job`).
// The body, when there is one, is a JSON object with no field but `job` (zod strict: an unknown
// field is refused by name). The name must pass jobs.job's check, ^[a-z0-9][a-z0-9_-]{0,62}$.

import { z } from "npm:zod@4";
import { parseJson } from "../_shared/http.ts";

/** A scheduler's request is a few bytes; anything larger is refused unread (413). */
export const MAX_BODY_BYTES = 16 * 1024;

/** jobs.job's name check (job_name_check). */
export const JOB_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The function's own path segment (Supabase passes `/run-job/<rest>` to the function). */
export const FUNCTION_NAME = "run-job";

const BodySchema = z.strictObject({ job: z.string() }).partial();

export type JobNameResult = { ok: true; job: string } | { ok: false; field: string; message: string };

const invalid = (field: string, message: string): JobNameResult => ({ ok: false, field, message });

/** A value quoted for a message, cut short so a long one is not echoed back whole. */
const quote = (v: string) => JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);

/** Path segments after `run-job`, decoded; null when one cannot be decoded. */
function pathNames(url: URL): string[] | null {
  const segments = url.pathname.split("/").filter((s) => s !== "");
  const at = segments.lastIndexOf(FUNCTION_NAME);
  if (at < 0) return [];
  try {
    return segments.slice(at + 1).map(decodeURIComponent);
  } catch {
    return null;
  }
}

/** The name in the body, undefined when the body does not name one, or the 400. */
function bodyName(body: string): { ok: true; name?: string } | { ok: false; result: JobNameResult } {
  if (body.trim() === "") return { ok: true };
  const parsed = parseJson(body);
  if (parsed === undefined) return { ok: false, result: invalid("body", "not JSON") };
  const r = BodySchema.safeParse(parsed);
  if (r.success) return { ok: true, name: r.data.job };
  const issue = r.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    return { ok: false, result: invalid(String(issue.keys[0]), 'unknown field; the body is {"job": "<name>"}') };
  }
  if (issue.path.length === 0) return { ok: false, result: invalid("body", 'must be a JSON object {"job": "<name>"}') };
  return { ok: false, result: invalid(issue.path.map(String).join("."), issue.message) };
}

/** The job a request names (path, `?job=`, body `job`), or the 400 naming the field. */
export function resolveJobName(url: URL, body: string): JobNameResult {
  const fromBody = bodyName(body);
  if (!fromBody.ok) return fromBody.result;
  const fromPath = pathNames(url);
  if (fromPath === null) return invalid("job", "the path segment after /run-job is not valid percent-encoding");
  if (fromPath.length > 1) return invalid("job", "the path is /run-job or /run-job/<job>, with one segment at most");

  const given: { where: string; name: string }[] = [
    ...fromPath.map((name) => ({ where: "path", name })),
    ...url.searchParams.getAll("job").map((name) => ({ where: "query", name })),
    ...(fromBody.name === undefined ? [] : [{ where: "body", name: fromBody.name }]),
  ];
  if (given.length === 0) {
    return invalid("job", 'required: {"job": "<name>"} in a POST body, ?job=<name>, or /run-job/<name>');
  }
  const other = given.find((g) => g.name !== given[0].name);
  if (other) {
    return invalid("job", `two different job names: ${quote(given[0].name)} (${given[0].where}) and ${quote(other.name)} (${other.where})`);
  }
  const job = given[0].name;
  if (!JOB_NAME.test(job)) return invalid("job", `must match ${JOB_NAME.source} (jobs.job names)`);
  return { ok: true, job };
}
