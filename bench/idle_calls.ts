// The cost of single scheduler calls with the 30 idle jobs (bench/idle_setup.ts), timed inside
// the server (clock_timestamp() around the call in a plpgsql wrapper; one statement, so one
// transaction, per call), with pg_cron paused so nothing else runs meanwhile:
//   warm           one session, after 10 untimed calls (the plpgsql code and plans are cached)
//   fresh session  the first call of a new session, as every pg_cron 1.4 run and every dblink
//                  heartbeat is; wall = connect + that call, measured by the client
// and the cluster's CPU (bench/idle_cpu.ts) per warm call and per new session with its call.
import postgres from "npm:postgres@^3.4.9";
import { type Dist, dist } from "./stats.ts";
import { IDLE_PREFIX, IDLE_SCHEMA } from "./idle_setup.ts";
import { meterClusterCpu } from "./idle_cpu.ts";

type Sql = ReturnType<typeof postgres>;

const WARMUP = 10;

export interface CallCost {
  /** Server-side ms per call in one warm session. */
  warm: Dist | null;
  /** Server-side ms of the first call in a new session. */
  freshSession: Dist | null;
  /** Client wall ms of connect + that first call. */
  freshSessionWall: Dist | null;
  /** Cluster CPU ms per warm call (the session's protocol work included). */
  warmCpuMs: number | null;
  /** Cluster CPU ms per new session with its one call (fork, start-up, authentication, caches). */
  freshSessionCpuMs: number | null;
  error: string | null;
}

export interface CallCosts {
  heartbeat: CallCost;
  tick: CallCost;
  warmCalls: number;
  freshSessions: number;
}

const WRAPPERS = `
create schema if not exists ${IDLE_SCHEMA};
create or replace function ${IDLE_SCHEMA}.timed_heartbeat() returns float8
language plpgsql set search_path = '' as $$
declare t0 timestamptz := pg_catalog.clock_timestamp();
begin
  perform jobs.heartbeat();
  return 1000 * extract(epoch from pg_catalog.clock_timestamp() - t0);
end $$;
create or replace function ${IDLE_SCHEMA}.timed_tick(p_job text) returns float8
language plpgsql set search_path = '' as $$
declare t0 timestamptz := pg_catalog.clock_timestamp();
begin
  perform jobs.tick(p_job, 'manual');
  return 1000 * extract(epoch from pg_catalog.clock_timestamp() - t0);
end $$;`;

const jobName = (i: number) => IDLE_PREFIX + String((i % 30) + 1).padStart(2, "0");

type Call = (sql: Sql, i: number) => Promise<number>;

const CALLS: Record<"heartbeat" | "tick", Call> = {
  heartbeat: async (sql) => (await sql.unsafe(`select ${IDLE_SCHEMA}.timed_heartbeat() as ms`))[0].ms,
  tick: async (sql, i) => (await sql.unsafe(`select ${IDLE_SCHEMA}.timed_tick($1) as ms`, [jobName(i)]))[0].ms,
};

const connect = (dbUrl: string) =>
  postgres(dbUrl, { max: 1, onnotice: () => {}, fetch_types: false, connection: { application_name: "bench-idle-calls" } });

type Db = { dbUrl: string; pgData: string };

async function measure(db: Db, call: Call, warmCalls: number, freshSessions: number): Promise<CallCost> {
  const warm: number[] = [];
  const fresh: number[] = [];
  const wall: number[] = [];
  try {
    const sql = connect(db.dbUrl);
    let warmCpuMs: number;
    try {
      for (let i = 0; i < WARMUP; i++) await call(sql, i);
      const meter = meterClusterCpu(db.pgData, 60_000);
      for (let i = 0; i < warmCalls; i++) warm.push(await call(sql, i));
      warmCpuMs = meter.stop().totalMs / warmCalls;
    } finally {
      await sql.end();
    }
    const meter = meterClusterCpu(db.pgData, 60_000);
    for (let i = 0; i < freshSessions; i++) {
      const t0 = performance.now();
      const sql = connect(db.dbUrl);
      try {
        fresh.push(await call(sql, i));
        wall.push(performance.now() - t0);
      } finally {
        await sql.end();
      }
    }
    // Let the postmaster reap the last session before the final sample.
    await new Promise((r) => setTimeout(r, 200));
    const freshSessionCpuMs = meter.stop().totalMs / freshSessions;
    return { warm: dist(warm), freshSession: dist(fresh), freshSessionWall: dist(wall), warmCpuMs, freshSessionCpuMs, error: null };
  } catch (e) {
    // A later engine may have renamed the call: the window measurement still stands.
    return { warm: null, freshSession: null, freshSessionWall: null, warmCpuMs: null, freshSessionCpuMs: null, error: (e as Error).message };
  }
}

export async function measureCalls(sql: Sql, db: Db, warmCalls = 200, freshSessions = 30): Promise<CallCosts> {
  await sql.unsafe(WRAPPERS);
  return {
    heartbeat: await measure(db, CALLS.heartbeat, warmCalls, freshSessions),
    tick: await measure(db, CALLS.tick, warmCalls, freshSessions),
    warmCalls,
    freshSessions,
  };
}
