// The engine settings every chaos scenario runs with, and the engine's invariants after a drain.
import type { Ctx, Sql } from "./types.ts";

/**
 * 50 tasks in flight per job (batches of 10, 5 at a time); retries after 5 s doubling to 60 s; 8
 * attempts. 8 attempts over that backoff outlast a 2-minute outage (5 + 10 + 20 + 40 + 60 + 60 +
 * 60 s), and at 20 % faulty requests one item in 390,000 would use them all up.
 */
export const ENGINE = { batch: 10, inFlight: 5, backoffBase: 5, backoffCap: 60, maxAttempts: 8 };

/** Items the engine keeps in flight per job: the recovery-time yardstick (see RESULTS.md). */
export const IN_FLIGHT = ENGINE.batch * ENGINE.inFlight;

/** A scenario's jobs start clean: earlier scenarios' open tasks cancelled, the settings above. */
export async function startClean(sql: Sql, jobs: string[]): Promise<void> {
  await sql`select jobs.cancel(id, 'chaos: a new scenario') from jobs.task where job_name = any (${jobs}) and state in ('queued', 'running')`;
  await tuneJobs(sql, jobs);
}

export async function tuneJobs(sql: Sql, jobs: string[]): Promise<void> {
  await sql`
    update jobs.job set backoff_base_seconds = ${ENGINE.backoffBase}, backoff_cap_seconds = ${ENGINE.backoffCap},
                        max_attempts = ${ENGINE.maxAttempts}, batch_size = ${ENGINE.batch}, max_in_flight = ${ENGINE.inFlight},
                        paused = false, enabled = true, suspended_until = null, last_error = null, last_error_at = null
     where name = any (${jobs})`;
}

export interface Invariants {
  /** Tasks still `running` although their lease ran out (nobody will finish them but a reap). */
  runningPastLease: number;
  /** Batches dispatched and never settled. */
  unsettledBatches: number;
  /** Tasks dead without a last_error saying why. */
  deadWithoutReason: number;
  /** Tasks neither finished nor waiting (queued or running) of the given jobs. */
  openTasks: number;
}

export async function invariants(ctx: Ctx, jobs: string[]): Promise<Invariants> {
  const [r] = await ctx.sql()`
    select (select count(*) from jobs.task where job_name = any (${jobs}) and state = 'running'
                                             and lease_until < now() - interval '1 second')::int as running_past_lease,
           (select count(*) from jobs.batch where job_name = any (${jobs}) and settled_at is null)::int as unsettled,
           (select count(*) from jobs.task where job_name = any (${jobs}) and state = 'dead'
                                             and coalesce(last_error, '') = '')::int as dead_without_reason,
           (select count(*) from jobs.task where job_name = any (${jobs}) and state in ('queued', 'running'))::int as open`;
  return {
    runningPastLease: r.running_past_lease,
    unsettledBatches: r.unsettled,
    deadWithoutReason: r.dead_without_reason,
    openTasks: r.open,
  };
}

export const invariantsHold = (i: Invariants) =>
  i.runningPastLease === 0 && i.unsettledBatches === 0 && i.deadWithoutReason === 0 && i.openTasks === 0;

/** The settings tuneJobs and the workloads change, to put back on a stack the run borrowed. */
export interface Settings {
  jobs: Record<string, unknown>[];
  buckets: Record<string, unknown>[];
}

export async function saveSettings(sql: Sql): Promise<Settings> {
  return {
    jobs: await sql`select name, batch_size, max_in_flight, lease_seconds, max_attempts, backoff_base_seconds,
                           backoff_cap_seconds, paused, enabled, next_run_at from jobs.job`,
    buckets: await sql`select key, capacity, refill_per_second from jobs.rate_limit`,
  };
}

export async function restoreSettings(sql: Sql, s: Settings): Promise<void> {
  for (const j of s.jobs) {
    await sql`update jobs.job set batch_size = ${j.batch_size as number}, max_in_flight = ${j.max_in_flight as number},
                lease_seconds = ${j.lease_seconds as number}, max_attempts = ${j.max_attempts as number},
                backoff_base_seconds = ${j.backoff_base_seconds as number}, backoff_cap_seconds = ${j.backoff_cap_seconds as number},
                paused = ${j.paused as boolean}, enabled = ${j.enabled as boolean}, next_run_at = ${j.next_run_at as Date}
               where name = ${j.name as string}`;
  }
  for (const b of s.buckets) {
    await sql`update jobs.rate_limit set capacity = ${b.capacity as number}, refill_per_second = ${b.refill_per_second as number},
                tokens = least(tokens, ${b.capacity as number}) where key = ${b.key as string}`;
  }
}
