// pg_net's settings as the local worker reads them: ALTER SYSTEM + net.worker_restart() or
// pg_reload_conf(), never another session's SET; database_name/username only at (re)start.
// ALTER SYSTEM is cluster-wide, so every test resets what it set.
import assert from "node:assert/strict";
import { dbTest, type Sql, TEST_DATABASE, waitFor, withSetup, workerBackends } from "./db_test_support.ts";
import { sleep } from "./test_support.ts";

async function resetSystem(sql: Sql, ...names: string[]) {
  for (const n of names) await sql.unsafe(`alter system reset ${n}`);
  await sql`select pg_reload_conf()`;
}

const startedWith = (logs: string[], text: string) => logs.filter((l) => l.includes("pg_net worker started") && l.includes(text)).length;

dbTest("settings: pg_net.batch_size = 1 by ALTER SYSTEM + net.worker_restart() sends one request per pass, a second apart", async () => {
  await withSetup(async ({ sql, target, start, logs }) => {
    await start();
    try {
      await sql`alter system set pg_net.batch_size = 1`;
      const [{ restarted }] = await sql`select net.worker_restart() as restarted`;
      assert.equal(restarted, true);
      await waitFor("the restart with batch_size=1", () => Promise.resolve(startedWith(logs, "pg_net.batch_size=1,") === 1));
      const [{ ids }] = await sql`
        select array_agg(net.http_get(${target.base} || '/one?i=' || i)::text order by i) as ids from generate_series(1, 3) i`;
      await waitFor("3 responses", async () => {
        const [{ n }] = await sql`select count(*)::int as n from net._http_response where id = any(${ids}::bigint[])`;
        return n === 3;
      }, 15_000);
      const created = (await sql`select extract(epoch from created) * 1000 as ms from net._http_response
        where id = any(${ids}::bigint[]) order by id`).map((r) => Number(r.ms));
      assert.ok(created[1] - created[0] >= 950 && created[2] - created[1] >= 950, `one pass per request, 1 s apart: ${created}`);
      const at = target.received.map((r) => r.at);
      assert.ok(at[1] - at[0] >= 950 && at[2] - at[1] >= 950, `sent 1 s apart: ${at}`);
    } finally {
      await resetSystem(sql, "pg_net.batch_size");
    }
  });
});

dbTest("settings: pg_net.ttl by ALTER SYSTEM + pg_reload_conf() deletes expired responses at the next pass, batch_size per pass; another session's SET does not", async () => {
  await withSetup(async ({ sql, start }) => {
    const ids = [-9101, -9102, -9103, -9104, -9105];
    const left = async () =>
      (await sql`select id::int from net._http_response where id = any(${ids}) order by id`).map((r) => r.id);
    await sql`delete from net._http_response where id = any(${ids})`;
    await sql`
      insert into net._http_response (id, status_code, created) values
        (-9101, 200, now() - interval '7 hours'), (-9102, 200, now() - interval '3 hours'),
        (-9103, 200, now() - interval '2 hours'), (-9104, 200, now() - interval '1 hour'),
        (-9105, 200, now() + interval '1 hour')`;
    const w = await start();
    try {
      await w.idle(); // the startup pass used the default ttl of 6 hours
      assert.deepEqual(await left(), [-9105, -9104, -9103, -9102]);
      await sql.begin(async (tx) => {
        await tx`set local pg_net.ttl = '1 second'`;
        await tx`select net.wake()`;
      });
      await sleep(300);
      await w.idle();
      assert.deepEqual(await left(), [-9105, -9104, -9103, -9102], "a SET in another session does not reach the worker");
      await sql`alter system set pg_net.ttl = '1 second'`;
      await sql`alter system set pg_net.batch_size = 2`;
      await sql`select pg_reload_conf()`;
      await sleep(200);
      await sql`select net.wake()`;
      // The state before the reload, asserted above: a pass that ran before the first poll below
      // (the reload can wake the worker at once) still shows as a change from it.
      const seen: string[] = ["-9105,-9104,-9103,-9102"];
      await waitFor("the expired responses to go", async () => {
        const now = (await left()).join(",");
        if (seen.at(-1) !== now) seen.push(now);
        return now === "-9105";
      });
      assert.deepEqual(seen, ["-9105,-9104,-9103,-9102", "-9105,-9104", "-9105"],
        "2 (pg_net.batch_size) per pass, oldest first, passes repeated while some were deleted");
    } finally {
      await resetSystem(sql, "pg_net.ttl", "pg_net.batch_size");
      await sql`delete from net._http_response where id = any(${ids})`;
    }
  });
});

dbTest("settings: pg_net.username and pg_net.database_name are read when the worker starts, not on reload", async () => {
  await withSetup(async ({ sql, start, logs }) => {
    const role = "duework_net_worker_role";
    const [exists] = await sql`select 1 from pg_roles where rolname = ${role}`;
    if (!exists) await sql.unsafe(`create role ${role} login`);
    try {
      await sql.unsafe(`alter system set pg_net.username = '${role}'`);
      await sql.unsafe(`alter system set pg_net.database_name = '${TEST_DATABASE}'`);
      await sql`select pg_reload_conf()`;
      await sleep(200);
      // no `database` override: the worker serves pg_net.database_name
      await start({ database: undefined });
      let mine = (await workerBackends(sql)).filter((b) => b.datname === TEST_DATABASE);
      assert.ok(mine.length > 0, "the worker connected to pg_net.database_name");
      assert.deepEqual([...new Set(mine.map((b) => b.usename))], [role]);
      await resetSystem(sql, "pg_net.username");
      await sleep(200);
      await sql`select net.wake()`;
      await sleep(300);
      mine = (await workerBackends(sql)).filter((b) => b.datname === TEST_DATABASE);
      assert.deepEqual([...new Set(mine.map((b) => b.usename))], [role], "a reload does not change the user");
      await sql`select net.worker_restart()`;
      await waitFor("the restart", () => Promise.resolve(logs.filter((l) => l.includes("pg_net worker started")).length === 2));
      mine = (await workerBackends(sql)).filter((b) => b.datname === TEST_DATABASE);
      assert.deepEqual([...new Set(mine.map((b) => b.usename))], ["postgres"], "after a restart: the bootstrap user");
    } finally {
      await resetSystem(sql, "pg_net.username", "pg_net.database_name");
    }
  });
});
