// The front door every job function shares: POST only, a credential, a JSON body of at most
// MAX_JOB_BODY_BYTES (1 MiB; larger → 413 payload_too_large, read no further) validated by the
// function's batch schema; nothing is touched before all of them pass.
//
// Credentials: the batch token pg_net sends (Authorization: Bearer dwb_…, single-use, good only
// for the batch named in the body while its lease lasts, checked by jobs.accept_batch), or one of
// the project's secret keys (a person or script calling by hand).
//
// Answering: pg_net sends `Prefer: respond-async`. Its worker sends queued requests in passes and
// starts nothing new until every request of a pass has finished, so a function that held the
// request for its whole batch held every other job's dispatch. Such a request is accepted
// (jobs.accept_batch), answered 202 at once, and processed in EdgeRuntime.waitUntil. Without the
// header the function answers when it is done, with the batch summary. Either way the batch's
// leases are extended every lease_seconds / 3 while it works (withLeaseHeartbeat), so a function
// that dies gives its tasks back within one lease (15 s by default).
//
// Errors escaping the function's own processing are setup errors or bugs (provider and SQL
// failures are handled per task): answered 500 without details, or logged when running after 202.

import type { z } from "npm:zod@4";
import { acceptedServiceKeys, isAuthorized, unauthorizedResponse } from "./auth.ts";
import { type BatchLeases, BatchRefusedError, withLeaseHeartbeat } from "./batch_lease.ts";
import { MAX_JOB_BODY_BYTES, payloadTooLargeResponse, readLimited } from "./body.ts";
import type { Env } from "./env.ts";
import { redact } from "./redact.ts";
import { errorResponse, methodNotAllowedResponse } from "./result.ts";
import { invalidRequestResponse, parseBatch } from "./task_batch.ts";

/** Schedules work that outlives the response (EdgeRuntime.waitUntil on Supabase). */
export type WaitUntil = (promise: Promise<unknown>) => void;

/** What a job function's handler deps pass through to the front door. */
export interface JobRuntimeDeps {
  /** Accepts batches and keeps their leases alive; called only for an authenticated, valid
   * request. Without it (tests of the processing alone) only secret-key callers are served,
   * synchronously and without lease heartbeats. */
  leases?: () => BatchLeases;
  /** Defaults to EdgeRuntime.waitUntil when the runtime has it; without one, async requests are
   * still accepted but answered only when the work is done. */
  waitUntil?: WaitUntil;
  /** Lease heartbeat interval; default lease_seconds / 3 of the accepted batch (5 s). */
  heartbeatMs?: number;
}

export interface JobRequestOptions<S extends z.ZodType> extends JobRuntimeDeps {
  /** Function name, for log lines. */
  name: string;
  env: Env;
  /** The batch schema (taskBatchSchema(payload)). */
  schema: S;
  log: (line: string) => void;
  /** signal aborts when the batch is no longer in flight: finish what is held, take no more. */
  process: (batch: z.output<S>, signal: AbortSignal) => Promise<Response>;
}

const BATCH_TOKEN = /^Bearer\s+(dwb_[0-9]+_[0-9a-f]{64})$/i;
const DEFAULT_LEASE_SECONDS = 15;

/** The batch token a request carries, if any (shape only; jobs.accept_batch checks it). */
export function batchToken(req: Request): string | null {
  return BATCH_TOKEN.exec(req.headers.get("authorization")?.trim() ?? "")?.[1] ?? null;
}

/** The front-door fields of a handler's deps (so handlers pass them on without listing them). */
export function runtime(deps: JobRuntimeDeps): JobRuntimeDeps {
  return { leases: deps.leases, waitUntil: deps.waitUntil, heartbeatMs: deps.heartbeatMs };
}

/** RFC 7240: the caller prefers an immediate 202 and asynchronous processing. */
export function prefersAsync(req: Request): boolean {
  return (req.headers.get("prefer") ?? "").split(",").some((p) => p.trim().toLowerCase() === "respond-async");
}

function runtimeWaitUntil(): WaitUntil | undefined {
  const rt = (globalThis as { EdgeRuntime?: { waitUntil?: (p: Promise<unknown>) => unknown } }).EdgeRuntime;
  return typeof rt?.waitUntil === "function" ? (p) => void rt.waitUntil!(p) : undefined;
}

function refusedResponse(err: BatchRefusedError, byToken: boolean): Response {
  switch (err.refusal) {
    case "credential_refused":
      return unauthorizedResponse();
    case "no_such_batch":
      // A token caller learns nothing about which batches exist.
      return byToken ? unauthorizedResponse() : errorResponse(404, "no_such_batch", err.message, { field: "batch_id" });
    case "not_in_flight":
      return errorResponse(409, "batch_not_in_flight", err.message, { field: "batch_id" });
    case "already_accepted":
      return errorResponse(409, "batch_already_accepted", err.message, { field: "batch_id" });
  }
}

export function jobRequestHandler<S extends z.ZodType>(opts: JobRequestOptions<S>): (req: Request) => Promise<Response> {
  const waitUntil = opts.waitUntil ?? runtimeWaitUntil();

  return async function handler(req: Request): Promise<Response> {
    if (req.method !== "POST") return methodNotAllowedResponse("POST");
    const byKey = isAuthorized(req, acceptedServiceKeys(opts.env));
    const token = byKey ? null : batchToken(req);
    if (!byKey && (token === null || opts.leases === undefined)) {
      opts.log(`${opts.name}: rejected a request without a valid secret key or batch token`);
      return unauthorizedResponse();
    }

    // Read no further than the limit (an authenticated caller can still send a huge body).
    const text = await readLimited(req, MAX_JOB_BODY_BYTES);
    if (text === null) {
      opts.log(`${opts.name}: refused a body over ${MAX_JOB_BODY_BYTES} bytes`);
      return payloadTooLargeResponse(MAX_JOB_BODY_BYTES);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return invalidRequestResponse("body", "the request body is not valid JSON");
    }
    const parsed = parseBatch(opts.schema, body);
    if (!parsed.ok) return invalidRequestResponse(parsed.field, parsed.message);
    const batch = parsed.value;
    const batchId = (batch as { batch_id: number }).batch_id;
    const respondAsync = prefersAsync(req) && opts.leases !== undefined;

    let leaseSeconds = DEFAULT_LEASE_SECONDS;
    if (token !== null || respondAsync) {
      try {
        leaseSeconds = (await opts.leases!().accept(batchId, token)).leaseSeconds;
      } catch (err) {
        if (err instanceof BatchRefusedError) {
          opts.log(`${opts.name}: batch ${batchId} refused: ${err.refusal}`);
          return refusedResponse(err, token !== null);
        }
        // 503: the engine gives the tasks back at once (the function never ran).
        opts.log(`${opts.name}: batch ${batchId} could not be accepted: ${redact(String(err), [])}`);
        return errorResponse(503, "database_unavailable", "could not accept the batch; it is dispatched again");
      }
    }

    const work = async (): Promise<Response> => {
      const run = (signal: AbortSignal) => opts.process(batch, signal);
      try {
        return opts.leases === undefined
          ? await run(new AbortController().signal)
          : await withLeaseHeartbeat(opts.leases(), batchId, opts.heartbeatMs ?? (leaseSeconds * 1000) / 3, opts.log, run);
      } catch (err) {
        // No token is in scope here (see the header), but the text still goes through redact.
        const reason = redact(err instanceof Error ? err.message : String(err), []);
        opts.log(`${opts.name}: batch ${batchId} failed: ${reason}`);
        return errorResponse(
          500,
          "internal_error",
          "unexpected error; unrecorded tasks are retried when their lease expires",
        );
      }
    };

    if (respondAsync && waitUntil !== undefined) {
      waitUntil(work());
      const tasks = (batch as { tasks: unknown[] }).tasks.length;
      return Response.json({ accepted: true, batch_id: batchId, tasks }, { status: 202 });
    }
    return await work();
  };
}
