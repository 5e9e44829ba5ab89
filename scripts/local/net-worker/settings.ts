// pg_net's settings (src/worker.c _PG_init), as the local worker reads them. The local stack
// declares them as placeholders in its postgresql.conf (scripts/local/stack/postgres.ts), so
// `show`, `alter system set` and `alter system reset` work as on Supabase.
//   pg_net.batch_size     200        SIGHUP   0–32767; requests per pass and expired rows per pass
//   pg_net.ttl            '6 hours'  SIGHUP   an interval; older responses are deleted
//   pg_net.database_name  'postgres' SU_BACKEND, read when the worker (re)starts
//   pg_net.username       ''         SU_BACKEND, read when the worker (re)starts ('' = bootstrap user)
// SIGHUP settings are read by the worker's own session at the start of each pass, so they follow
// the config files as of the last pg_reload_conf() (net.worker_restart() reloads too); a `set`
// in another session cannot reach them.
import type postgres from "npm:postgres@^3.4.9";

export interface PassSettings {
  batchSize: number;
  ttl: string;
}

export interface StartupSettings {
  databaseName: string;
  username: string;
}

export const DEFAULT_PASS_SETTINGS: PassSettings = { batchSize: 200, ttl: "6 hours" };
const DEFAULT_DATABASE = "postgres";

type Sql = postgres.Sql | postgres.TransactionSql;

/** The SIGHUP settings. A batch_size the real GUC would refuse keeps the previous value (like a
 * reload of a config file with an invalid value) and is returned as `invalid`. The ttl is not
 * checked here: like pg_net's, the pass fails on an invalid interval. */
export async function readPassSettings(sql: Sql, prev: PassSettings): Promise<{ settings: PassSettings; invalid: string | null }> {
  const [row] = await sql<{ batch_size: string | null; ttl: string | null }[]>`
    select pg_catalog.current_setting('pg_net.batch_size', true) as batch_size,
           pg_catalog.current_setting('pg_net.ttl', true) as ttl`;
  const raw = row.batch_size?.trim() ?? "";
  let batchSize = prev.batchSize;
  let invalid: string | null = null;
  if (raw === "") batchSize = DEFAULT_PASS_SETTINGS.batchSize;
  else if (/^\d+$/.test(raw) && Number(raw) <= 32767) batchSize = Number(raw);
  else invalid = `invalid value for parameter "pg_net.batch_size": "${raw}" (allowed: 0 .. 32767); keeping ${prev.batchSize}`;
  const ttl = row.ttl === null || row.ttl === "" ? DEFAULT_PASS_SETTINGS.ttl : row.ttl;
  return { settings: { batchSize, ttl }, invalid };
}

/** The settings a worker reads once, when it starts. */
export async function readStartupSettings(sql: Sql): Promise<StartupSettings> {
  const [row] = await sql<{ database_name: string | null; username: string | null }[]>`
    select pg_catalog.current_setting('pg_net.database_name', true) as database_name,
           pg_catalog.current_setting('pg_net.username', true) as username`;
  return {
    databaseName: row.database_name || DEFAULT_DATABASE,
    username: row.username ?? "",
  };
}
