// The heartbeat W2 runs under. The local stack has pg_cron 1.4 (whole minutes only), so the
// migration schedules `select jobs.heartbeat_minute()` every minute: one statement that runs
// jobs.heartbeat() every 10 s over one dblink session until the minute ends. That statement holds
// its snapshot, and so the database's xmin horizon, for about 59 s of every minute: no row version
// made dead meanwhile can be pruned. Hosted Supabase (pg_cron 1.6) schedules
// `select jobs.heartbeat()` every 10 seconds instead, each a short transaction.
//
//   local   (default) the stack as it is; outside --quick the measured run waits until the
//           minute heartbeat is running, so every run sees the local stack's steady state
//   hosted  the minute heartbeat is unscheduled (its running statement cancelled) and the bench
//           calls `select jobs.heartbeat()` every 10 s on its own connection, as pg_cron 1.6
//           would; the minute schedule is put back afterwards
import postgres from "npm:postgres@^3.4.9";

type Sql = ReturnType<typeof postgres>;

export type HeartbeatMode = "local" | "hosted";

const MINUTE_JOB = "duework:heartbeat";

/** Whether a `jobs.heartbeat_minute()` statement is running and holding an xmin. */
export async function minuteHeartbeatRunning(sql: Sql): Promise<boolean> {
  const [{ n }] = await sql`
    select count(*)::int as n from pg_stat_activity
     where query like '%jobs.heartbeat_minute()%' and state = 'active' and backend_xmin is not null
       and pid <> pg_backend_pid()`;
  return n > 0;
}

/**
 * Waits (up to `timeoutMs`) until the minute heartbeat runs with at least 20 s of its minute
 * left (so a run of a few seconds lies inside one such statement); false if it did not.
 */
export async function waitForMinuteHeartbeat(sql: Sql, timeoutMs = 95_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [{ second }] = await sql`select extract(second from clock_timestamp())::float8 as second`;
    if (second <= 40 && await minuteHeartbeatRunning(sql)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Replaces the minute heartbeat by a 10 s one from the bench; stop() puts the schedule back. */
export async function emulateHostedHeartbeat(dbUrl: string, sql: Sql): Promise<{ stop(): Promise<void> }> {
  const [{ command }] = await sql`select command from cron.job where jobname = ${MINUTE_JOB}`;
  const [{ schedule }] = await sql`select schedule from cron.job where jobname = ${MINUTE_JOB}`;
  await sql`select cron.unschedule(${MINUTE_JOB})`;
  await sql`select pg_cancel_backend(pid) from pg_stat_activity
             where query like '%jobs.heartbeat_minute()%' and pid <> pg_backend_pid()`;
  const hb = postgres(dbUrl, { max: 1, onnotice: () => {}, connection: { application_name: "bench-w2-heartbeat" } });
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    if (!stopped) running = hb`select jobs.heartbeat()`.catch((e) => console.error(`bench heartbeat: ${e.message}`));
  }, 10_000);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      await hb.end();
      await sql`select cron.schedule(${MINUTE_JOB}, ${schedule}, ${command})`;
    },
  };
}
