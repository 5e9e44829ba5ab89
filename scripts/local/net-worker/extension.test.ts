// The worker and the extension's lifecycle, and what the worker costs the database, measured
// with pg_stat_statements as pg_net's own tests do (test/test_stat_statements.py).
import assert from "node:assert/strict";
import { dbTest, responseRow, TEST_DATABASE, waitFor, withSetup } from "./db_test_support.ts";
import { sleep } from "./test_support.ts";

dbTest("extension: DROP EXTENSION waits for the pass; after re-creating it, request id 1 never gets a stale response", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await sql`drop extension if exists pg_net cascade`;
    await sql`create extension pg_net with schema extensions`;
    const w = await start();
    await w.idle();
    const [{ id: oldId }] = await sql`select net.http_get(${target.base + "/old?sleep=800"})::text as id`;
    assert.equal(oldId, "1");
    await waitFor("the old request at the server", () => Promise.resolve(target.received.length === 1));
    const t0 = Date.now();
    await sql`drop extension pg_net`; // waits for the pass's AccessShareLock
    const waited = Date.now() - t0;
    assert.ok(waited >= 500, `DROP EXTENSION returned after ${waited} ms, before the pass had finished`);
    await sql`create extension pg_net with schema extensions`;
    const [{ id: newId }] = await sql`select net.http_get(${target.base + "/new"})::text as id`;
    assert.equal(newId, "1", "the new extension's sequence starts again at 1");
    const row = await waitFor("the new response", () => responseRow(sql, newId));
    assert.deepEqual(JSON.parse(row.content), { ok: true, path: "/new" });
    await sleep(1500); // a stale answer of the old request would have been written by now
    const rows = await sql`select content from net._http_response where id = 1`;
    assert.equal(rows.length, 1);
    assert.deepEqual(JSON.parse(rows[0].content), { ok: true, path: "/new" });
  });
});

dbTest("extension: while the tables are missing the worker skips its passes, and works again once pg_net is back", async () => {
  await withSetup(async ({ sql, target, start, logs }) => {
    const w = await start();
    await w.idle();
    await sql`drop extension pg_net`;
    await sql`select pg_notify('pg_net_wake', '')`; // what net.wake() does
    await waitFor("a skipped pass", () => Promise.resolve(logs.some((l) => l.includes("pass skipped: pg_net is not installed"))));
    await sql`create extension pg_net with schema extensions`;
    const [{ id }] = await sql`select net.http_get(${target.base + "/back"})::text as id`;
    const row = await waitFor("the response", () => responseRow(sql, id));
    assert.equal(row.status_code, 200);
  });
});

dbTest("extension: an idle worker runs no query; a commit of 100 requests costs two passes (4 DELETE statements)", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await sql`create extension if not exists pg_stat_statements with schema extensions`;
    const w = await start();
    await w.idle();
    const count = async () => {
      const [{ n }] = await sql`
        select coalesce(sum(calls), 0)::int as n from extensions.pg_stat_statements s
        join pg_database d on d.oid = s.dbid
        where d.datname = ${TEST_DATABASE}
          and (query ilike '%DELETE FROM net._http_response r %' or query ilike '%DELETE FROM net.http_request_queue%')`;
      return n;
    };
    await sql`select extensions.pg_stat_statements_reset()`;
    await sleep(2500);
    assert.equal(await count(), 0, "the idle worker ran a pass");
    await sql`select net.http_get(${target.base + "/many?i=" } || i) from generate_series(1, 100) i`;
    await waitFor("100 requests", () => Promise.resolve(target.received.length === 100));
    await sleep(300);
    await w.idle();
    assert.equal(await count(), 4, "2 statements in the pass that sent them, 2 in the pass that found nothing more");
  });
});
