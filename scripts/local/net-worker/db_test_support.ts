// Database helpers for the net worker tests. They need DUEWORK_TEST_DB_URL (set by the project's
// test runner) and are skipped without it. The stack's own worker serves the stack's database;
// these tests start and stop workers of their own on a database of their own on the same server
// (pg_net's worker also serves exactly one database).
import postgres from "npm:postgres@^3.4.9";
import { installStandInExtensions } from "../stack/extensions.ts";
import { fromFileUrl } from "../stack/paths.ts";
import { type NetWorker, type NetWorkerOptions, startNetWorker } from "./worker.ts";
import { type RawServer, sleep, startRawServer } from "./test_support.ts";

export type Sql = ReturnType<typeof postgres>;

export const STACK_DB_URL = Deno.env.get("DUEWORK_TEST_DB_URL");
export const TEST_DATABASE = "duework_net_worker_test";
const ignore = !STACK_DB_URL;

export let DB_URL = "";
if (STACK_DB_URL) {
  const admin = postgres(STACK_DB_URL, { max: 1, onnotice: () => {} });
  const [exists] = await admin`select 1 from pg_database where datname = ${TEST_DATABASE}`;
  if (!exists) await admin.unsafe(`create database ${TEST_DATABASE}`);
  await admin.end();
  const url = new URL(STACK_DB_URL);
  url.pathname = `/${TEST_DATABASE}`;
  DB_URL = url.toString();
  // The extension directory is shared by every checkout on this machine: put this checkout's
  // stand-in back (as a stack start does) and create pg_net afresh in the test database.
  await installStandInExtensions(fromFileUrl(new URL("../../../", import.meta.url)), () => {});
  const db = postgres(DB_URL, { max: 1, onnotice: () => {} });
  await db`drop extension if exists pg_net cascade`;
  await db`create schema if not exists extensions`;
  await db`create extension pg_net with schema extensions`;
  await db.end();
} else {
  console.warn("net-worker database tests skipped: DUEWORK_TEST_DB_URL is not set (the project's test runner sets it)");
}

export const dbTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore, sanitizeOps: false, sanitizeResources: false, fn });

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export interface Setup {
  sql: Sql;
  target: RawServer;
  /** Starts a worker for the test database (stopped at the end of the test). */
  start: (o?: Partial<NetWorkerOptions>) => Promise<NetWorker>;
  logs: string[];
}

export async function withSetup(fn: (s: Setup) => Promise<void>): Promise<void> {
  const sql = postgres(DB_URL, { max: 4, onnotice: () => {} });
  const target = await startRawServer();
  const workers: NetWorker[] = [];
  const logs: string[] = [];
  try {
    await sql`create schema if not exists extensions`;
    await sql`create extension if not exists pg_net with schema extensions`;
    const start = async (o: Partial<NetWorkerOptions> = {}) => {
      const w = await startNetWorker({ dbUrl: DB_URL, database: TEST_DATABASE, log: (l) => logs.push(`${Date.now()} ${l}`), ...o });
      workers.push(w);
      return w;
    };
    await fn({ sql, target, start, logs });
  } finally {
    for (const w of workers) await w.close();
    await target.close();
    await sql.end({ timeout: 5 });
  }
}

export async function responseRow(sql: Sql, id: string | number) {
  const [row] = await sql`select *, extract(epoch from created) * 1000 as created_ms from net._http_response where id = ${id}`;
  return row;
}

/** The worker's backends in the test database (pid, user, database). */
export async function workerBackends(sql: Sql) {
  return await sql<{ pid: number; usename: string; datname: string }[]>`
    select pid, usename::text, datname::text from pg_stat_activity where application_name = 'pg_net 0.20.4 worker'`;
}
