// The supervisor keeps the stack running when one of its processes dies: Postgres (stopped with
// `pg_ctl stop -m immediate`, or its postmaster SIGKILLed) and the functions server (SIGKILLed,
// its workers must not outlive it). Every process is found by the pid the stack recorded.
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  functionWorkerPids,
  isAlive,
  killFunctionsServer,
  stackChild,
  stopPostgresImmediately,
  waitForExit,
} from "../support/processes";
import { db, eventually, retrying, stackInfo } from "../support/stack";

const info = stackInfo();
const sql = db(info);
const unique = () => `rec-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  await sql`create schema if not exists e2e_platform`;
  await sql`create table if not exists e2e_platform.writeback (
    marker text primary key, user_agent text, apikey_matches boolean, created timestamptz default now())`;
});

afterAll(async () => {
  await sql.end();
});

/** A fresh connection each try: the point is that the server takes new connections again. */
async function connects(): Promise<boolean> {
  const probe = postgres(info.db_url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await probe`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

/** SQL → net worker → functions server → writeback function → SQL, and SQL → net worker → sandbox. */
async function dispatchesEndToEnd(): Promise<void> {
  const [{ id }] = await retrying("net.http_get", () =>
    sql`select net.http_get(${`${info.sandbox_url}/__requests`}) as id`);
  const response = await eventually(async () => {
    const [row] = await sql`select status_code, error_msg from net._http_response where id = ${id}`;
    return row;
  }, "the sandbox's response row", 15_000);
  expect(response).toEqual({ status_code: 200, error_msg: null });

  // The function's own database pool lost its connections too; it must reconnect by itself.
  const marker = unique();
  await retrying("net.http_post", () => sql`
    select net.http_post(
      url := ${`${info.functions_url}/writeback`},
      body := jsonb_build_object('marker', ${marker}::text),
      headers := jsonb_build_object('Content-Type', 'application/json', 'apikey', ${info.secret_key}::text))`);
  await eventually(async () => {
    const [row] = await sql`select marker from e2e_platform.writeback where marker = ${marker}`;
    return row;
  }, "the function's write-back row", 15_000);
}

/** The services that must ride out a Postgres restart untouched. */
const services = () => ["net-worker", "functions", "sandbox"].map((name) => stackChild(info, name).pid);

describe("Postgres restarts", () => {
  it("pg_ctl stop -m immediate: a new connection within 15 s, same net worker and functions, dispatch works", async () => {
    await dispatchesEndToEnd(); // warms the function's pool, so it holds connections that will die
    const pgBefore = stackChild(info, "postgres").pid;
    const before = services();

    stopPostgresImmediately(info);
    expect(isAlive(pgBefore)).toBe(false);
    const t0 = Date.now();
    await eventually(connects, "Postgres to accept connections again", 15_000);
    expect(Date.now() - t0).toBeLessThan(15_000);

    // The supervisor records a restarted child at spawn (its /proc cmdline may still be the
    // spawner's) and again once it serves: wait for that second record.
    const pgAfter = await eventually(async () => {
      const child = stackChild(info, "postgres");
      return child.pid !== pgBefore && isAlive(child.pid) && child.cmdline.includes(" -D ") && child.pid;
    }, "children.json to record the new postmaster with its command line");
    expect(stackChild(info, "postgres").cmdline).toContain(" -D ");
    expect(pgAfter).not.toBe(pgBefore);
    expect(services()).toEqual(before);
    expect(before.every(isAlive)).toBe(true);
    await dispatchesEndToEnd();
  });

  it("SIGKILL of the postmaster: restarted the same way (crash recovery), clients reconnect", async () => {
    const pgBefore = stackChild(info, "postgres").pid;
    const before = services();

    process.kill(pgBefore, "SIGKILL");
    await eventually(async () => !isAlive(pgBefore), "the postmaster to die");
    await eventually(connects, "Postgres to accept connections again", 15_000);
    await eventually(async () => {
      const pid = stackChild(info, "postgres").pid;
      return pid !== pgBefore && isAlive(pid);
    }, "children.json to record the new postmaster");
    expect(services()).toEqual(before);
    await dispatchesEndToEnd();
  });
});

describe("functions server crash", () => {
  it("SIGKILL of the functions server leaves no worker alive; it is restarted and serves again", async () => {
    // Two workers, one of them with background work pending.
    expect((await fetch(`${info.functions_url}/echo-open`)).status).toBe(200);
    const bg = await fetch(`${info.functions_url}/wait-until/start?id=crash&ms=60000`);
    expect(bg.status).toBe(202);
    await bg.body?.cancel();
    expect(functionWorkerPids(info, "wait-until")).toHaveLength(1);
    const netWorker = stackChild(info, "net-worker").pid;

    const { pid, workers } = killFunctionsServer(info);
    expect(workers.length).toBeGreaterThanOrEqual(2);
    expect(await waitForExit([pid, ...workers], 5_000)).toEqual([]);

    const restarted = await eventually(async () => {
      const now = stackChild(info, "functions").pid;
      return now !== pid && isAlive(now) && now;
    }, "the supervisor to restart the functions server", 15_000);
    const res = await eventually(async () => {
      const r = await fetch(`${info.functions_url}/echo-open`).catch(() => null);
      return r?.status === 200 && r;
    }, "the restarted server to serve", 15_000);
    expect((await res.json()).function).toBe("echo-open");
    expect(stackChild(info, "functions").pid).toBe(restarted);
    expect(stackChild(info, "net-worker").pid).toBe(netWorker);
    expect(functionWorkerPids(info, "wait-until")).toEqual([]);
    await dispatchesEndToEnd();
  });
});
