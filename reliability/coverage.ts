// Every job that calls a function must be exercised by a workload, or be listed here with the
// reason it is not: a job added without either fails `npm test`'s chaos suite the day it lands.
import { withDatabase } from "./context.ts";
import type { Ctx, Workload } from "./types.ts";

/** Jobs the chaos drain does not run, and why. Keep it short: each entry is a gap. */
export const NOT_DRAINED: Record<string, string> = {
  "booking-notices": "same function and providers as booking-reminders (send-reminder), which the drain runs",
  "payment-reminders": "same function and providers as booking-reminders (send-reminder), which the drain runs",
  "instagram-token-refresh": "same function as the token workloads (refresh-token); covered by tests/e2e and crash_recovery",
  "instagram-reel-urls": "no chaos workload yet (covered by tests/e2e/instagram_reels*.test.ts)",
  "outreach-relations": "no chaos workload yet (covered by tests/e2e outreach tests)",
  "outreach-notifications": "no chaos workload yet (covered by tests/e2e outreach tests)",
};

export interface Coverage {
  drained: string[];
  listed: { job: string; reason: string }[];
  /** Jobs neither drained nor listed: a failure. */
  unknown: string[];
}

export async function jobCoverage(ctx: Ctx, workloads: Workload[]): Promise<Coverage> {
  const rows = await withDatabase(ctx, "listing jobs", () => ctx.sql()<{ name: string }[]>`
    select name from jobs.job where target_function is not null order by name`);
  const drained = new Set(workloads.flatMap((w) => w.jobs));
  return {
    drained: rows.filter((r) => drained.has(r.name)).map((r) => r.name),
    listed: rows.filter((r) => !drained.has(r.name) && NOT_DRAINED[r.name]).map((r) => ({ job: r.name, reason: NOT_DRAINED[r.name] })),
    unknown: rows.filter((r) => !drained.has(r.name) && !NOT_DRAINED[r.name]).map((r) => r.name),
  };
}
