// Holds the engine still while an attack runs, so "no row changed" is about the attack alone.
// Left running, the heartbeat would fire schedules (a jobs.run row, jobs.job.next_run_at) and
// dispatch retries that earlier test files left due. While quiet every job is disabled and
// unscheduled (jobs.heartbeat then touches nothing), and the project's pure-SQL pg_cron jobs are
// inactive; `loud()` puts back exactly what was there.
import type postgres from "postgres";
import { eventually } from "../stack";

export interface Quiet {
  loud(): Promise<void>;
}

export async function quiet(sql: postgres.Sql): Promise<Quiet> {
  const jobs = await sql<{ name: string; enabled: boolean; next_run_at: Date | null }[]>`
    select name, enabled, next_run_at from jobs.job`;
  const crons = await sql<{ jobid: number }[]>`
    select jobid from cron.job where active and command not like '%jobs.heartbeat%'`;
  await sql`update jobs.job set enabled = false, next_run_at = null`;
  if (crons.length) await sql`update cron.job set active = false where jobid in ${sql(crons.map((c) => c.jobid))}`;
  // Work already sent finishes first (a batch in flight still writes its outcomes).
  await eventually(async () => {
    const [{ n }] = await sql`
      select (select count(*) from jobs.batch where settled_at is null)
           + (select count(*) from jobs.task where state = 'running') as n`;
    return Number(n) === 0;
  }, "no batch in flight before the attack", 30_000);
  return {
    async loud() {
      for (const j of jobs) {
        await sql`update jobs.job set enabled = ${j.enabled}, next_run_at = ${j.next_run_at} where name = ${j.name}`;
      }
      if (crons.length) await sql`update cron.job set active = true where jobid in ${sql(crons.map((c) => c.jobid))}`;
    },
  };
}
