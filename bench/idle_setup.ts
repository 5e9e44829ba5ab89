// The database of the idle-cost workload: exactly 30 jobs, none with anything to do. The jobs the
// migrations define are deleted (with their tasks, runs and batches) and their pg_cron entries
// unscheduled, the domain's own pg_cron entries (not named duework:…) too; Duework's own entries
// (heartbeat, prune, …) stay. Then 30 jobs are defined with jobs.define's four oldest arguments
// only, so the same setup runs on later engines: a discover function that never returns a row,
// and a realistic mix of schedules.
import type postgres from "npm:postgres@^3.4.9";

type Sql = ReturnType<typeof postgres>;

export const IDLE_SCHEMA = "idle_bench";
export const IDLE_PREFIX = "idle-";
/** 10 every five minutes, 10 hourly, 10 daily (UTC); `rare`: fires less than every five minutes. */
export const IDLE_SCHEDULES: { schedule: string; jobs: number; rare: boolean; firesAt(d: Date): boolean }[] = [
  { schedule: "*/5 * * * *", jobs: 10, rare: false, firesAt: (d) => d.getUTCMinutes() % 5 === 0 },
  { schedule: "0 * * * *", jobs: 10, rare: true, firesAt: (d) => d.getUTCMinutes() === 0 },
  { schedule: "30 18 * * *", jobs: 10, rare: true, firesAt: (d) => d.getUTCHours() === 18 && d.getUTCMinutes() === 30 },
];

/** Whether the hourly or daily jobs are due at the minute starting at `d`. */
export const rareFiring = (d: Date) => IDLE_SCHEDULES.some((s) => s.rare && s.firesAt(d));

export interface IdleJobs {
  defined: number;
  schedules: Record<string, number>;
  /** Jobs the migrations defined, deleted before the 30 were defined. */
  removedJobs: string[];
  /** pg_cron entries unscheduled: the removed jobs' and the domain's own. */
  removedCronEntries: string[];
}

export async function prepareIdleJobs(sql: Sql): Promise<IdleJobs> {
  await sql.unsafe(`
    create schema if not exists ${IDLE_SCHEMA};
    create or replace function ${IDLE_SCHEMA}.discover_nothing(p_config jsonb)
    returns table (key text, payload jsonb)
    language sql stable set search_path = ''
    as $$ select null::text, null::jsonb where false $$;`);
  const like = `${IDLE_PREFIX}%`;
  const cronGone = await sql`
    select coalesce(c.jobname::text, 'jobid ' || c.jobid) as name, cron.unschedule(c.jobid) from cron.job c
     where c.jobname::text in (select 'duework:' || j.name from jobs.job j where j.name not like ${like})
        or c.jobname is null or c.jobname::text not like 'duework:%'
     order by c.jobid`;
  const jobsGone = await sql`delete from jobs.job where name not like ${like} returning name`;
  let n = 0;
  for (const { schedule, jobs } of IDLE_SCHEDULES) {
    for (let i = 0; i < jobs; i++) {
      n++;
      await sql`select jobs.define(
        p_name => ${IDLE_PREFIX + String(n).padStart(2, "0")},
        p_target_function => 'refresh-token',
        p_discover_function => ${IDLE_SCHEMA + ".discover_nothing(jsonb)"}::regprocedure,
        p_schedule => ${schedule})`;
    }
  }
  const [{ count }] = await sql`select count(*)::int as count from jobs.job`;
  if (count !== n) throw new Error(`idle setup: ${count} jobs defined, expected ${n}`);
  return {
    defined: n,
    schedules: Object.fromEntries(IDLE_SCHEDULES.map((s) => [s.schedule, s.jobs])),
    removedJobs: jobsGone.map((r) => r.name).sort(),
    removedCronEntries: cronGone.map((r) => r.name),
  };
}

export interface CronEntry {
  jobname: string;
  schedule: string;
  command: string;
}

/** The active pg_cron entries (what runs while the database is idle). */
export async function activeCronEntries(sql: Sql): Promise<CronEntry[]> {
  const rows = await sql`select coalesce(jobname::text, 'jobid ' || jobid) as jobname, schedule, command from cron.job where active order by 1`;
  return rows.map((r) => ({ jobname: r.jobname, schedule: r.schedule, command: r.command }));
}

/** Sets every active pg_cron entry inactive; returns their ids for resumeCron. */
export async function pauseCron(sql: Sql): Promise<number[]> {
  const rows = await sql`update cron.job set active = false where active returning jobid`;
  return rows.map((r) => Number(r.jobid));
}

export async function resumeCron(sql: Sql, jobIds: number[]): Promise<void> {
  if (jobIds.length) await sql`update cron.job set active = true where jobid = any (${jobIds})`;
}

/** Waits until no pg_cron run is starting or running; false after `timeoutMs`. */
export async function cronQuiet(sql: Sql, timeoutMs = 120_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [{ n }] = await sql`
      select count(*)::int as n from cron.job_run_details
       where status not in ('succeeded', 'failed') and start_time > now() - interval '10 minutes'`;
    if (n === 0) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}
