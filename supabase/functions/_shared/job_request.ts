// The front door every job function shares: POST only, the caller's secret key (pg_net sends the
// project's key from Vault), a JSON body validated by the function's batch schema; nothing is
// touched before all three pass. Errors escaping the function's own processing are setup errors
// or bugs (provider and SQL failures are handled per task), answered 500 without details.

import type { z } from "npm:zod@4";
import { acceptedServiceKeys, isAuthorized, unauthorizedResponse } from "./auth.ts";
import type { Env } from "./env.ts";
import { redact } from "./redact.ts";
import { errorResponse, methodNotAllowedResponse } from "./result.ts";
import { invalidRequestResponse, parseBatch } from "./task_batch.ts";

export interface JobRequestOptions<S extends z.ZodType> {
  /** Function name, for log lines. */
  name: string;
  env: Env;
  /** The batch schema (taskBatchSchema(payload)). */
  schema: S;
  log: (line: string) => void;
  process: (batch: z.output<S>) => Promise<Response>;
}

export function jobRequestHandler<S extends z.ZodType>(opts: JobRequestOptions<S>): (req: Request) => Promise<Response> {
  return async function handler(req: Request): Promise<Response> {
    if (req.method !== "POST") return methodNotAllowedResponse("POST");
    if (!isAuthorized(req, acceptedServiceKeys(opts.env))) {
      opts.log(`${opts.name}: rejected a request without a valid secret key`);
      return unauthorizedResponse();
    }

    let body: unknown;
    try {
      body = await req.json();
    } catch {
      return invalidRequestResponse("body", "the request body is not valid JSON");
    }
    const parsed = parseBatch(opts.schema, body);
    if (!parsed.ok) return invalidRequestResponse(parsed.field, parsed.message);

    try {
      return await opts.process(parsed.value);
    } catch (err) {
      // No token is in scope here (see the header), but the text still goes through redact.
      const reason = redact(err instanceof Error ? err.message : String(err), []);
      const batchId = (parsed.value as { batch_id?: unknown }).batch_id;
      opts.log(`${opts.name}: batch ${batchId} failed: ${reason}`);
      return errorResponse(
        500,
        "internal_error",
        "unexpected error; unrecorded tasks are retried when their lease expires",
      );
    }
  };
}
