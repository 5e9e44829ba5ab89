// Peer worker helpers (pg, node:): pools, drain tracker, one W1 job, LISTEN probe.
// Same behaviour as the peer bench's workload.js / listener.js.
import pg from "pg";
import { APPLY_REFRESH, LOAD_TOKEN } from "./w1.ts";
import type { TokenClient } from "./token_client.ts";
import type { RemindersSpec } from "./contenders/reminders_ceiling.ts";

export function logPoolErrors(pool: pg.Pool, name: string): pg.Pool {
  const report = (err: Error) => console.error(`[${name} pool] client error: ${err.message}`);
  pool.on("error", report);
  pool.on("connect", (client) => client.on("error", report));
  return pool;
}

export function createAppPool(url: string, max: number): pg.Pool {
  return logPoolErrors(new pg.Pool({ connectionString: url, max, application_name: "w1-app" }), "app");
}

/** Opens every connection of a pool before the clock starts. */
export async function warmPool(queryable: { query(sql: string): Promise<unknown> }, size: number): Promise<void> {
  await Promise.all(Array.from({ length: size }, () => queryable.query("select pg_sleep(0.05)")));
}

export interface DrainTracker {
  drained: Promise<number>;
  record(id: string | number): void;
  readonly count: number;
}

/** Resolves `drained` with the wall-clock ms at which the N-th distinct row was refreshed. */
export function createDrainTracker(n: number): DrainTracker {
  const done = new Set<string>();
  let resolveDrained: (t: number) => void = () => {};
  const drained = new Promise<number>((r) => (resolveDrained = r));
  return {
    drained,
    record(id) {
      done.add(String(id));
      if (done.size === n) resolveDrained(Date.now());
    },
    get count() {
      return done.size;
    },
  };
}

/** One W1 job of a job system: load the refresh token, call the provider, write the row back. */
export async function refreshOneToken(
  { pool, tokens, tracker, id }: { pool: pg.Pool; tokens: TokenClient; tracker: DrainTracker; id: number },
): Promise<void> {
  const { rows } = await pool.query({ ...LOAD_TOKEN, values: [id] });
  if (rows.length !== 1) throw new Error(`oauth_tokens row ${id} not found`);
  const answer = await tokens.refresh(rows[0].refresh_token);
  const { rowCount } = await pool.query({ ...APPLY_REFRESH, values: [id, answer.access_token, answer.expires_in] });
  if (rowCount !== 1) throw new Error(`update of oauth_tokens row ${id} touched ${rowCount} rows`);
  tracker.record(id);
}

/** Waits until a LISTEN connection of the given application_name is idle in pg_stat_activity. */
export async function waitForListener(url: string, applicationName: string, timeoutMs = 20_000): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: "w1-probe" });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await client.query(
        `select count(*)::int as n from pg_stat_activity
          where application_name = $1 and state = 'idle' and query ilike 'listen%'`,
        [applicationName],
      );
      if (rows[0].n > 0) return;
      if (Date.now() > deadline) throw new Error(`no LISTEN connection from ${applicationName} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await client.end();
  }
}

export interface PeerSpec {
  contender: "graphile-worker" | "pg-boss" | "http-ceiling" | "reminders-ceiling";
  dbUrl: string;
  tokenUrl: string;
  n: number;
  c: number;
  batch: number;
  /** http-ceiling only: request i (1..N) uses refresh token `${tokenPrefix}${i}`. */
  tokenPrefix?: string;
  /** reminders-ceiling only (W2): the fakes' URLs and the sandbox accounts. */
  reminders?: RemindersSpec;
}

export interface PeerHandle {
  start(): Promise<{ t0: number; enqueueMs: number | null; enqueued: number }>;
  stop(): Promise<{ errors: number; firstError: string | null; httpCalls: number }>;
}
