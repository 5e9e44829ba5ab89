// What the database itself counts over a window of the idle-cost workload: per-function time
// (pg_stat_user_functions, track_functions = 'all'), top-level statements (pg_stat_statements,
// when installed), sessions started (pg_stat_database.sessions), and pg_cron's runs
// (cron.job_run_details). Deltas of two snapshots; the bench's own queries (marked, or reading
// pg_stat_* views) are left out of the statements.
import type postgres from "npm:postgres@^3.4.9";
import { functionDelta, type FunctionStats, functionStats, type FunctionTime } from "./function_stats.ts";

type Sql = ReturnType<typeof postgres>;

/** Marks the bench's own statements so pg_stat_statements deltas can leave them out. */
const MARK = "/* idle-bench */";

export type { FunctionTime };

export interface StatementTime {
  query: string;
  calls: number;
  /** Planning + execution. */
  ms: number;
}

export interface CronRuns {
  jobname: string;
  status: string;
  runs: number;
  /** Sum of end_time − start_time (wall clock, includes pg_sleep). */
  wallMs: number;
}

interface Snapshot {
  at: Date;
  functions: FunctionStats;
  statements: Map<string, StatementTime> | null;
  sessions: number;
}

/** Schema-qualified pg_stat_statements, or null when it is not installed in this database. */
export async function statementsView(sql: Sql): Promise<string | null> {
  const rows = await sql`
    select quote_ident(n.nspname) || '.pg_stat_statements' as view from pg_extension e
      join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_stat_statements'`;
  return rows[0]?.view ?? null;
}

export async function snapshot(sql: Sql, pgss: string | null): Promise<Snapshot> {
  const [{ at, sessions }] = await sql.unsafe(`${MARK}
    select clock_timestamp() as at,
           (select sum(sessions)::float8 from pg_stat_database) as sessions`);
  const functions = await functionStats(sql, null);
  let statements: Map<string, StatementTime> | null = null;
  if (pgss) {
    statements = new Map();
    for (const r of await sql.unsafe(`${MARK}
      select userid || ':' || dbid || ':' || queryid as key, query, calls::float8 as calls,
             total_exec_time + total_plan_time as ms
        from ${pgss} where toplevel and query not like '%idle-bench%' and query not like '%pg_stat_%'`)) {
      statements.set(r.key, { query: r.query, calls: r.calls, ms: r.ms });
    }
  }
  return { at: new Date(at), functions, statements, sessions: Number(sessions ?? 0) };
}

export interface DbDelta {
  functions: FunctionTime[];
  statements: StatementTime[] | null;
  sessions: number;
}

/** b − a; only what was called in between, most time first. */
export function dbDelta(a: Snapshot, b: Snapshot): DbDelta {
  // The bench's own pg_stat_statements() call of snapshot `a` is flushed inside the window.
  const functions = functionDelta(a.functions, b.functions, Infinity, true).filter((f) => !f.name.endsWith(".pg_stat_statements"));
  const statements = b.statements === null ? null : [...b.statements.entries()].map(([key, s]) => {
    const p = a.statements?.get(key);
    return { query: s.query, calls: s.calls - (p?.calls ?? 0), ms: s.ms - (p?.ms ?? 0) };
  }).filter((s) => s.calls > 0).sort((x, y) => y.ms - x.ms);
  return { functions, statements, sessions: b.sessions - a.sessions };
}

/** pg_cron's runs that started in [from, to). */
export async function cronRuns(sql: Sql, from: Date, to: Date): Promise<CronRuns[]> {
  const rows = await sql.unsafe(`${MARK}
    select coalesce(j.jobname::text, 'jobid ' || d.jobid) as jobname, d.status, count(*)::int as runs,
           coalesce(sum(extract(epoch from d.end_time - d.start_time) * 1000), 0)::float8 as wall_ms
      from cron.job_run_details d left join cron.job j on j.jobid = d.jobid
     where d.start_time >= $1 and d.start_time < $2
     group by 1, 2 order by 1, 2`, [from, to]);
  return rows.map((r) => ({ jobname: r.jobname, status: r.status, runs: r.runs, wallMs: r.wall_ms }));
}

/** PID → "backend_type (application_name)" of the cluster's processes that Postgres lists. */
export async function processNames(sql: Sql): Promise<Map<number, string>> {
  const rows = await sql.unsafe(`${MARK}
    select pid, backend_type, application_name from pg_stat_activity`);
  return new Map(rows.map((r) => [r.pid, r.application_name ? `${r.backend_type} (${r.application_name})` : r.backend_type]));
}
