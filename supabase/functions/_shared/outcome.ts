// The names of the engine, once: what a job function reports for a task (Outcome), and what the
// engine did with it (RecordedState). The same words are used by jobs.report / jobs.record_outcomes
// in SQL and in docs/jobs.md ("Outcomes").
//
//   outcome   → task state (SQL)            → response count
//   ok        → succeeded                   → succeeded
//   retry     → queued (or dead: attempts)  → retried (dead)
//   dead      → dead                        → dead
//   discard   → discarded                   → discarded
//   release   → queued, attempt given back  → released
//   (lease no longer ours: nothing changed) → skipped

export type OutcomeKind = "ok" | "retry" | "dead" | "discard" | "release";

export type Data = Record<string, unknown>;

export type Outcome =
  | {
    outcome: "ok";
    /** Passed to the job's SQL apply function in the same transaction; never stored by the engine. */
    data?: Data;
    /** Stored as jobs.task.result unless apply returns one (must not carry secrets). */
    result?: Data;
    /** Counted in the response (JobFunction.tagsField) once recorded. */
    tag?: string;
    /** The write is the only copy of something (a rotated refresh token): recording is retried on
     * database errors (never on a lost lease). */
    durable?: boolean;
  }
  | {
    outcome: "retry";
    error: string;
    /** Seconds until the next attempt; null/absent = the job's backoff. */
    after?: number | null;
    /** A rate key of this task (or the job's) that the engine empties for `after` s (default 60). */
    pause?: string | null;
    /** perform never called the provider (it refused this request already): the attempt is given
     * back, so a storm of refusals cannot use up max_attempts. */
    notAttempted?: boolean;
    data?: Data;
    tag?: string;
  }
  | { outcome: "dead"; error: string; data?: Data; tag?: string }
  | { outcome: "discard"; error: string; data?: Data; tag?: string }
  | {
    /** A configuration error, not the task's fault: back to the queue with the attempt given back;
     * the job's dispatch is suspended for a minute and this request claims nothing more. */
    outcome: "release";
    error: string;
  };

/** What recording an outcome left the task in. */
export type RecordedState = "succeeded" | "queued" | "dead" | "discarded";
