// Tests for the local pg_net worker against a real Postgres with the local `pg_net` stand-in.
// Needs DUEWORK_TEST_DB_URL (set by the project's test runner); skipped without it.
//   npx deno test -A scripts/local/net-worker/
import assert from "node:assert/strict";
import postgres from "npm:postgres@^3.4.9";
import { APPLICATION_NAME, type NetWorker, type NetWorkerOptions, startNetWorker } from "./worker.ts";

const STACK_DB_URL = Deno.env.get("DUEWORK_TEST_DB_URL");
const ignore = !STACK_DB_URL;
// The stack's own worker serves the stack's database. These tests start and stop workers of
// their own, so they use a database of their own on the same server, as pg_net's one-database
// worker would require too.
const TEST_DATABASE = "duework_net_worker_test";
let DB_URL: string | undefined;
if (STACK_DB_URL) {
  const admin = postgres(STACK_DB_URL, { max: 1, onnotice: () => {} });
  const [exists] = await admin`select 1 from pg_database where datname = ${TEST_DATABASE}`;
  if (!exists) await admin.unsafe(`create database ${TEST_DATABASE}`);
  await admin.end();
  const url = new URL(STACK_DB_URL);
  url.pathname = `/${TEST_DATABASE}`;
  DB_URL = url.toString();
}
if (ignore) console.warn("net-worker tests skipped: DUEWORK_TEST_DB_URL is not set (the project's test runner sets it)");

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

interface Received {
  method: string;
  path: string;
  search: string;
  headers: Headers;
  body: string;
  at: number;
}

/** A local HTTP target that records requests and tracks how many run at once. */
function startTarget() {
  const received: Received[] = [];
  let current = 0;
  let maxConcurrent = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    received.push({ method: req.method, path: url.pathname, search: url.search, headers: req.headers, body: await req.text(), at: Date.now() });
    current++;
    maxConcurrent = Math.max(maxConcurrent, current);
    try {
      const ms = Number(url.searchParams.get("sleep") ?? "0");
      if (ms > 0) await sleep(ms);
      return Response.json({ ok: true, path: url.pathname }, { status: Number(url.searchParams.get("status") ?? "200"), headers: { "x-target": "yes" } });
    } finally {
      current--;
    }
  });
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    received,
    get maxConcurrent() {
      return maxConcurrent;
    },
    close: () => server.shutdown(),
  };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

type Sql = ReturnType<typeof postgres>;

async function withSetup(
  fn: (ctx: { sql: Sql; target: ReturnType<typeof startTarget>; start: (o?: Partial<NetWorkerOptions>) => Promise<NetWorker>; logs: string[] }) => Promise<void>,
): Promise<void> {
  const sql = postgres(DB_URL!, { max: 3, onnotice: () => {} });
  const target = startTarget();
  const workers: NetWorker[] = [];
  const logs: string[] = [];
  try {
    await sql`create schema if not exists extensions`;
    await sql`create extension if not exists pg_net with schema extensions`;
    const start = async (o: Partial<NetWorkerOptions> = {}) => {
      const w = await startNetWorker({ dbUrl: DB_URL!, log: (l) => logs.push(l), ...o });
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

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore, sanitizeOps: false, sanitizeResources: false, fn });

async function responseRow(sql: Sql, id: string) {
  const [row] = await sql`select * from net._http_response where id = ${id}`;
  return row;
}

test("net worker: a POST is sent after COMMIT with its body, headers and User-Agent, and its response is stored", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start();
    let id = "";
    await sql.begin(async (tx) => {
      const [r] = await tx`
        select net.http_post(
          url := ${target.base + "/post-commit"},
          body := '{"hello": "world"}'::jsonb,
          params := '{"q": "a b"}'::jsonb,
          headers := '{"Content-Type": "application/json", "X-Test": "yes", "X-Null": null}'::jsonb
        )::text as id`;
      id = r.id;
      await sleep(300); // the worker must not see it before the commit
      assert.equal(target.received.filter((x) => x.path === "/post-commit").length, 0, "sent before commit");
    });
    const row = await waitFor("the response row", () => responseRow(sql, id));
    const got = target.received.find((x) => x.path === "/post-commit");
    assert.ok(got, "the target received the request");
    assert.equal(got.method, "POST");
    assert.equal(got.search, "?q=a%20b");
    assert.deepEqual(JSON.parse(got.body), { hello: "world" });
    assert.equal(got.headers.get("content-type"), "application/json");
    assert.equal(got.headers.get("x-test"), "yes");
    assert.equal(got.headers.has("x-null"), false, "JSON-null header values are dropped");
    assert.equal(got.headers.get("user-agent"), "pg_net/0.20.4");
    assert.equal(row.status_code, 200);
    assert.deepEqual(JSON.parse(row.content), { ok: true, path: "/post-commit" });
    assert.equal(row.content_type, "application/json");
    assert.equal(row.headers["x-target"], "yes");
    assert.equal(row.timed_out, false);
    assert.equal(row.error_msg, null);
  });
});

test("net worker: a request made in a rolled-back transaction is never sent", async () => {
  await withSetup(async ({ sql, target, start }) => {
    const worker = await start();
    let id = "";
    await sql.begin(async (tx) => {
      const [r] = await tx`select net.http_get(${target.base + "/rolled-back"})::text as id`;
      id = r.id;
      throw new Error("rollback");
    }).catch((e) => assert.equal((e as Error).message, "rollback"));
    await sql`select net.wake()`; // wake the worker anyway
    await worker.idle();
    await sleep(300);
    assert.equal(target.received.filter((x) => x.path === "/rolled-back").length, 0);
    assert.equal(await responseRow(sql, id), undefined);
  });
});

test("net worker: a timeout stores timed_out = true and pg_net's timeout message", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start();
    const [{ id }] = await sql`select net.http_get(${target.base + "/slow?sleep=2000"}, timeout_milliseconds := 200)::text as id`;
    const row = await waitFor("the response row", () => responseRow(sql, id));
    assert.equal(row.timed_out, true);
    assert.equal(row.status_code, null);
    assert.equal(row.content, null);
    assert.match(
      row.error_msg,
      /^Timeout of 200 ms reached\. Total time: \d+\.\d{6} ms \(DNS time: 0\.000000 ms, TCP\/SSL handshake time: \d+\.\d{6} ms, HTTP Request\/Response time: \d+\.\d{6} ms\)$/,
    );
  });
});

test("net worker: connection refused stores curl's message", async () => {
  await withSetup(async ({ sql, start }) => {
    await start();
    const port = freePort();
    const [{ id }] = await sql`select net.http_get(${`http://127.0.0.1:${port}/nothing-here`})::text as id`;
    const row = await waitFor("the response row", () => responseRow(sql, id));
    assert.equal(row.status_code, null);
    assert.equal(row.timed_out, false);
    assert.equal(row.error_msg, "Couldn't connect to server");
  });
});

test("net worker: 50 slow requests run concurrently", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start();
    const [{ ids }] = await sql`
      select array_agg(net.http_get(${target.base + "/concurrent?sleep=200"})::text) as ids
      from generate_series(1, 50)`;
    await waitFor("50 response rows", async () => {
      const [{ n }] = await sql`select count(*)::int as n from net._http_response where id = any(${ids}::bigint[])`;
      return n === 50;
    }, 20_000);
    assert.ok(target.maxConcurrent >= 20, `max concurrency observed by the target was ${target.maxConcurrent}`);
    const [{ ok }] = await sql`select count(*)::int as ok from net._http_response where id = any(${ids}::bigint[]) and status_code = 200`;
    assert.equal(ok, 50);
  });
});

test("net worker: a committed request is picked up on NOTIFY, without waiting for the safety poll", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start({ pollMs: 60_000 });
    await sleep(100);
    await sql`select net.http_get(${target.base + "/prompt"})`;
    const committedAt = Date.now();
    const got = await waitFor("the request", () => Promise.resolve(target.received.find((x) => x.path === "/prompt")), 5_000);
    assert.ok(got.at - committedAt < 1_000, `picked up after ${got.at - committedAt} ms`);
  });
});

test("net worker: net.worker_restart() makes the worker reconnect, and it keeps processing", async () => {
  await withSetup(async ({ sql, target, start, logs }) => {
    await start({ pollMs: 60_000 });
    const [{ restarted }] = await sql`select net.worker_restart() as restarted`;
    assert.equal(restarted, true);
    await waitFor("the reconnect", () => Promise.resolve(logs.some((l) => l.includes("reconnected"))), 10_000);
    await sql`select net.wait_until_running()`;
    await sql`select net.check_worker_is_up()`;
    const [{ id }] = await sql`select net.http_get(${target.base + "/after-restart"})::text as id`;
    const row = await waitFor("the response row", () => responseRow(sql, id));
    assert.equal(row.status_code, 200);
  });
});

test("net worker: responses older than pg_net.ttl are deleted, newer ones kept", async () => {
  await withSetup(async ({ sql, start }) => {
    const [{ db }] = await sql`select current_database() as db`;
    await sql`delete from net._http_response where id in (-9001, -9002, -9003)`;
    await sql`
      insert into net._http_response (id, status_code, created) values
        (-9001, 200, now() - interval '7 hours'),
        (-9002, 200, now() - interval '2 hours'),
        (-9003, 200, now() - interval '10 minutes')`;
    const worker = await start();
    try {
      // default pg_net.ttl = 6 hours
      await sql`select net.wake()`;
      await worker.idle();
      let left = (await sql`select id::int from net._http_response where id in (-9001, -9002, -9003) order by id`).map((r) => r.id);
      assert.deepEqual(left, [-9003, -9002]);
      // pg_net.ttl is read by the worker's session: set it for new sessions, then restart
      await sql.unsafe(`alter database "${db.replaceAll('"', '""')}" set pg_net.ttl = '1 hour'`);
      await sql`select net.worker_restart()`;
      await waitFor("the TTL deletion", async () => {
        left = (await sql`select id::int from net._http_response where id in (-9001, -9002, -9003) order by id`).map((r) => r.id);
        return left.length === 1;
      });
      assert.deepEqual(left, [-9003]);
    } finally {
      await sql.unsafe(`alter database "${db.replaceAll('"', '""')}" reset pg_net.ttl`);
      await sql`delete from net._http_response where id in (-9001, -9002, -9003)`;
    }
  });
});

test("net worker: net.check_worker_is_up() passes while the worker runs and raises once it stops", async () => {
  await withSetup(async ({ sql, start }) => {
    const [{ others }] = await sql`select count(*)::int as others from pg_stat_activity where application_name = ${APPLICATION_NAME}`;
    const worker = await start();
    await sql`select net.check_worker_is_up()`;
    await worker.close();
    if (others > 0) {
      console.warn("another net worker is connected to this database; skipping the 'raises when stopped' assertion");
      return;
    }
    await waitFor("the worker's backends to go", async () => {
      const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity where application_name = ${APPLICATION_NAME}`;
      return n === 0;
    });
    await assert.rejects(sql`select net.check_worker_is_up()`, (e: Error) => {
      assert.equal(e.message, "the pg_net background worker is not up");
      return true;
    });
  });
});
