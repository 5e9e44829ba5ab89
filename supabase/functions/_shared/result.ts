// The response envelope of job functions (DESIGN §4): 200 when every task succeeded, 207
// otherwise, with a count per status and one error entry per task that did not succeed.
// The statuses follow the outcome table of outcome.ts.

export type TaskStatus =
  | "succeeded" // ok recorded: the task succeeded
  | "retried" // back in the queue: retry recorded, or its outcome could not be recorded (lease expiry re-runs it)
  | "dead" // dead letter: dead recorded, or a retry on its last attempt
  | "discarded" // the work was moot (discard recorded, or found moot when its context was read)
  | "skipped" // lease lost (stale/forged token or already re-claimed): nothing changed
  | "released"; // handed back without consuming an attempt (configuration error)

export interface TaskOutcome {
  task_id: number;
  status: TaskStatus;
  error?: string;
}

export interface BatchSummary {
  success: boolean;
  processed: number;
  succeeded: number;
  retried: number;
  dead: number;
  discarded: number;
  skipped: number;
  /** Present only when tasks were released (configuration error). */
  released?: number;
  errors: { task_id: number; error: string }[];
}

export function summarize(outcomes: readonly TaskOutcome[]): BatchSummary {
  const count = (status: TaskStatus) => outcomes.filter((o) => o.status === status).length;
  const summary: BatchSummary = {
    success: outcomes.length > 0 && outcomes.every((o) => o.status === "succeeded"),
    processed: outcomes.length,
    succeeded: count("succeeded"),
    retried: count("retried"),
    dead: count("dead"),
    discarded: count("discarded"),
    skipped: count("skipped"),
    errors: outcomes
      .filter((o) => o.status !== "succeeded")
      .map((o) => ({ task_id: o.task_id, error: o.error ?? o.status })),
  };
  const released = count("released");
  if (released > 0) summary.released = released;
  return summary;
}

export function batchResponse(summary: BatchSummary): Response {
  return Response.json(summary, { status: summary.success ? 200 : 207 });
}

export function errorResponse(
  status: number,
  error: string,
  message: string,
  extra: Record<string, unknown> = {},
): Response {
  return Response.json({ success: false, error, message, ...extra }, { status });
}

export function methodNotAllowedResponse(allow = "POST"): Response {
  return Response.json(
    { error: "method_not_allowed", message: `use ${allow}` },
    { status: 405, headers: { allow } },
  );
}
