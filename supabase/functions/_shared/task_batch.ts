// The body jobs.tick() POSTs through pg_net to a job function:
//   {"job":"…","batch_id":123,"tasks":[{"id":1,"lease_token":"<uuid>","attempt":1,"payload":{…}}]}
// Each function supplies the schema of its own payload. Unknown extra keys are allowed (and
// dropped), so SQL can add fields without breaking deployed functions.

import { z } from "npm:zod@4";

export const MAX_TASKS_PER_BATCH = 100;

export function taskSchema<P extends z.ZodType>(payload: P) {
  return z.object({
    id: z.number().int().positive(),
    // Any 8-4-4-4-12 hex value Postgres prints for a uuid (z.uuid() would also demand RFC 9562
    // version/variant bits, which Postgres does not).
    lease_token: z.guid(),
    attempt: z.number().int().min(1),
    payload,
  });
}

export function taskBatchSchema<P extends z.ZodType>(payload: P) {
  return z.object({
    job: z.string().min(1),
    batch_id: z.number().int().positive(),
    tasks: z.array(taskSchema(payload)).min(1).max(MAX_TASKS_PER_BATCH),
  }).superRefine((batch, ctx) => {
    const seen = new Set<number>();
    batch.tasks.forEach((task, i) => {
      if (seen.has(task.id)) {
        ctx.addIssue({ code: "custom", path: ["tasks", i, "id"], message: `duplicate task id ${task.id}` });
      }
      seen.add(task.id);
    });
  });
}

export type ParseResult<T> =
  | { ok: true; value: T }
  | { ok: false; field: string; message: string };

/** Validates a parsed JSON body; on failure names the first failing field ("tasks.0.lease_token"). */
export function parseBatch<S extends z.ZodType>(schema: S, body: unknown): ParseResult<z.output<S>> {
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : "body";
  return { ok: false, field, message: issue.message };
}

export function invalidRequestResponse(field: string, message: string): Response {
  return Response.json({ error: "invalid_request", field, message }, { status: 400 });
}
