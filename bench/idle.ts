// Workload "idle" (`npm run bench -- --workloads idle`): what the scheduler costs while nothing is
// due, with 30 jobs defined (bench/idle_setup.ts). On the bench stack:
//   1. the database gets exactly the 30 idle jobs; track_functions = 'all' (ALTER SYSTEM + reload,
//      so pg_cron's and dblink's new sessions track too)
//   2. every pg_cron entry inactive, once no run is in progress: single calls (bench/idle_calls.ts),
//      `vacuum analyze`, then the baseline: the cluster's CPU over --idle-baseline-minutes (what
//      Postgres costs with no scheduler at all: autovacuum, background writers, pg_cron's launcher)
//   3. the window: pg_cron active again; it starts 30 s into a minute once a whole minute ran
//      with the schedule back, and lasts --idle-minutes whole minutes, so it holds the same
//      number of minute starts (heartbeats, ticks) wherever it falls; it avoids the minutes where
//      the hourly and daily jobs fire (msToWindowStart)
// Per window: the cluster's CPU (bench/idle_cpu.ts), function and statement time, sessions and
// pg_cron runs (bench/idle_stats.ts). The database keeps the 30 jobs afterwards (the bench stack
// is thrown away), so this workload runs after the others.
import postgres from "npm:postgres@^3.4.9";
import { readFileSync } from "node:fs";
import type { IdleConfig } from "./config.ts";
import type { MachineInfo } from "./machine.ts";
import { postmasterPid } from "./cpu.ts";
import { trackFunctions } from "./function_stats.ts";
import { type CommitInfo, commitInfo, dateNow } from "./commit.ts";
import { meterClusterCpu } from "./idle_cpu.ts";
import { type CallCosts, measureCalls } from "./idle_calls.ts";
import {
  activeCronEntries,
  type CronEntry,
  cronQuiet,
  type IdleJobs,
  pauseCron,
  prepareIdleJobs,
  rareFiring,
  resumeCron,
} from "./idle_setup.ts";
import {
  type CronRuns,
  cronRuns,
  dbDelta,
  type FunctionTime,
  processNames,
  snapshot,
  type StatementTime,
  statementsView,
} from "./idle_stats.ts";

type Sql = ReturnType<typeof postgres>;

export interface WindowStats {
  startedAt: string;
  endedAt: string;
  /** Wall clock of the window in minutes (every per-minute figure divides by this). */
  minutes: number;
  cpu: {
    /** Every process of the cluster (postmaster and descendants, exited ones included). */
    totalMs: number;
    /** Of it: processes that started or exited inside the window (pg_cron's and dblink's sessions). */
    comeAndGoMs: number;
    /** Of it: processes alive throughout, by backend type (application_name). */
    longLived: { name: string; ms: number }[];
    newProcessesSeen: number;
    samples: number;
  };
  /** Sessions started (pg_stat_database.sessions, all databases). */
  sessions: number;
  functions: FunctionTime[];
  /** Top-level statements (pg_stat_statements); null when it is not installed. */
  statements: StatementTime[] | null;
  cronRuns: CronRuns[];
  loadAvgAtEnd: number[];
}

export interface IdleMeasurement {
  label: string;
  commit: CommitInfo;
  /** `date` on the machine when the measurement finished. */
  date: string;
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  pgCron: string;
  config: IdleConfig;
  jobs: IdleJobs;
  /** Active pg_cron entries during the window. */
  cronEntries: CronEntry[];
  baseline: WindowStats | null;
  window: WindowStats;
  calls: CallCosts;
  notes: string[];
}

export interface IdleResults {
  measurements: IdleMeasurement[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function processLabel(pid: number, postmaster: number, names: Map<number, string>): string {
  if (pid === postmaster) return "postmaster";
  const known = names.get(pid);
  if (known) return known;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] || `pid ${pid}`;
  } catch {
    return `pid ${pid}`;
  }
}

async function measureWindow(sql: Sql, pgss: string | null, pgData: string, minutes: number): Promise<WindowStats> {
  const a = await snapshot(sql, pgss);
  const meter = meterClusterCpu(pgData);
  await sleep(minutes * 60_000);
  const cpu = meter.stop();
  const b = await snapshot(sql, pgss);
  const names = await processNames(sql);
  const postmaster = postmasterPid(pgData);
  const longLived = new Map<string, number>();
  for (const [pid, ms] of cpu.longLivedMs) {
    const name = processLabel(pid, postmaster, names);
    longLived.set(name, (longLived.get(name) ?? 0) + ms);
  }
  const d = dbDelta(a, b);
  return {
    startedAt: a.at.toISOString(),
    endedAt: b.at.toISOString(),
    minutes: cpu.wallMs / 60_000,
    cpu: {
      totalMs: cpu.totalMs,
      comeAndGoMs: cpu.comeAndGoMs,
      longLived: [...longLived].map(([name, ms]) => ({ name, ms })).sort((x, y) => y.ms - x.ms),
      newProcessesSeen: cpu.newProcessesSeen,
      samples: cpu.samples,
    },
    sessions: d.sessions,
    functions: d.functions,
    statements: d.statements,
    cronRuns: await cronRuns(sql, a.at, b.at),
    loadAvgAtEnd: Deno.loadavg(),
  };
}

/**
 * ms until the window starts: 30 s past a minute, after at least one whole minute with pg_cron
 * active, and (for windows under 55 min) holding no minute where the hourly or daily jobs fire,
 * so every window holds the same firings: one of the 10 `*\/5` jobs' per five minutes.
 */
function msToWindowStart(minutes: number, now = Date.now()): number {
  let minute = Math.ceil((now + 3_000) / 60_000) * 60_000;
  const clean = (m: number) =>
    minutes >= 55 || !Array.from({ length: minutes }, (_, i) => new Date(m + (i + 1) * 60_000)).some(rareFiring);
  while (!clean(minute)) minute += 60_000;
  return minute + 30_000 - now;
}

export async function runIdle(
  cfg: IdleConfig,
  db: { dbUrl: string; pgData: string; projectRoot: string },
  machine: MachineInfo,
  log: (line: string) => void = console.log,
): Promise<IdleMeasurement> {
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  const sql = postgres(db.dbUrl, { max: 1, onnotice: () => {}, connection: { application_name: "bench-idle" } });
  try {
    const [{ extversion }] = await sql`select extversion from pg_extension where extname = 'pg_cron'`;
    const pgss = await statementsView(sql);
    if (!pgss) notes.push("pg_stat_statements is not installed in this database: no statement times.");
    await trackFunctions(sql, true, "all");
    const jobs = await prepareIdleJobs(sql);
    log(`idle: ${jobs.defined} idle jobs defined; removed ${jobs.removedJobs.length} jobs and ${jobs.removedCronEntries.length} pg_cron entries`);

    const paused = await pauseCron(sql);
    let baseline: WindowStats | null = null;
    let calls: CallCosts;
    try {
      if (!(await cronQuiet(sql))) notes.push("a pg_cron run was still in progress 120 s after pg_cron was paused.");
      log("idle: timing single jobs.heartbeat() and jobs.tick() calls …");
      calls = await measureCalls(sql, db);
      // Nothing left for autovacuum from the setup and the calls: baseline and window see the same tables.
      await sql`vacuum analyze`;
      if (cfg.baselineMinutes > 0) {
        log(`idle: baseline, every pg_cron entry inactive, ${cfg.baselineMinutes} min …`);
        baseline = await measureWindow(sql, pgss, db.pgData, cfg.baselineMinutes);
      }
    } finally {
      await resumeCron(sql, paused);
    }
    const cronEntries = await activeCronEntries(sql);
    const wait = msToWindowStart(cfg.minutes);
    log(`idle: pg_cron active again (${cronEntries.length} entries); the ${cfg.minutes} min window starts in ${(wait / 1000).toFixed(0)} s, ` +
      `ends about ${new Date(Date.now() + wait + cfg.minutes * 60_000).toISOString()}`);
    await sleep(wait);
    const window = await measureWindow(sql, pgss, db.pgData, cfg.minutes);
    for (const c of [calls.heartbeat, calls.tick]) if (c.error) notes.push(`single calls: ${c.error}`);
    // The minute heartbeat that started last is still running when the window ends.
    const failed = window.cronRuns.filter((r) => r.status === "failed");
    if (failed.length) notes.push(`pg_cron runs not succeeded in the window: ${failed.map((r) => `${r.jobname} ${r.status} × ${r.runs}`).join(", ")}`);
    return {
      label: cfg.label,
      commit: commitInfo(db.projectRoot),
      date: dateNow(),
      startedAt,
      finishedAt: new Date().toISOString(),
      machine,
      pgCron: extversion,
      config: cfg,
      jobs,
      cronEntries,
      baseline,
      window,
      calls,
      notes,
    };
  } finally {
    await trackFunctions(sql, false).catch(() => {});
    await sql.end();
  }
}
