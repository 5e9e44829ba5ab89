// Per-function call counts and time in Postgres (pg_stat_user_functions): where the engine's
// database time goes. W2 turns track_functions = 'pl' on for its runs, the idle workload 'all'.
import type postgres from "npm:postgres@^3.4.9";

type Sql = ReturnType<typeof postgres>;

export type FunctionStats = Map<string, { calls: number; totalMs: number; selfMs: number }>;

export interface FunctionTime {
  /** schema.function (overloads summed). */
  name: string;
  calls: number;
  totalMs: number;
  selfMs: number;
}

/** W2's schemas by default; `null`: every schema. */
export async function functionStats(sql: Sql, schemas: string[] | null = ["jobs", "bookings", "public"]): Promise<FunctionStats> {
  await sql`select pg_stat_clear_snapshot()`;
  const rows = await sql`
    select schemaname || '.' || funcname as name, sum(calls)::bigint as calls,
           sum(total_time)::float8 as total_ms, sum(self_time)::float8 as self_ms
      from pg_stat_user_functions where ${schemas === null ? sql`true` : sql`schemaname = any (${schemas})`}
     group by 1`;
  return new Map(rows.map((r) => [r.name as string, { calls: Number(r.calls), totalMs: r.total_ms, selfMs: r.self_ms }]));
}

/** after − before, the functions with the most total time first (top `limit`; ms rounded unless `exact`). */
export function functionDelta(before: FunctionStats, after: FunctionStats, limit = 12, exact = false): FunctionTime[] {
  const out: FunctionTime[] = [];
  const ms = (v: number) => (exact ? v : Math.round(v));
  for (const [name, a] of after) {
    const b = before.get(name) ?? { calls: 0, totalMs: 0, selfMs: 0 };
    if (a.calls - b.calls > 0) {
      out.push({ name, calls: a.calls - b.calls, totalMs: ms(a.totalMs - b.totalMs), selfMs: ms(a.selfMs - b.selfMs) });
    }
  }
  return out.sort((x, y) => y.totalMs - x.totalMs).slice(0, limit);
}

/** pg_stat_user_functions on (track_functions = `level`, for new and running sessions), or back to the default. */
export async function trackFunctions(sql: Sql, on: boolean, level: "pl" | "all" = "pl"): Promise<void> {
  if (on) await sql.unsafe(`alter system set track_functions = '${level}'`);
  else await sql`alter system reset track_functions`;
  await sql`select pg_reload_conf()`;
}
