// The local pg_net worker against a real Postgres with the local `pg_net` stand-in: passes,
// wakes, restarts and what reaches the HTTP server.
//   npm test -- scripts/local/net-worker/
import assert from "node:assert/strict";
import { APPLICATION_NAME } from "./worker.ts";
import { DB_URL, dbTest, responseRow, TEST_DATABASE, waitFor, withSetup, workerBackends } from "./db_test_support.ts";
import { freePort, sleep } from "./test_support.ts";

dbTest("net worker: a POST is sent after COMMIT with exactly curl's headers (names as written) and its response is stored", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start();
    let id = "";
    await sql.begin(async (tx) => {
      const [r] = await tx`
        select net.http_post(
          url := ${target.base + "/post-commit"},
          body := '{"hello": "world"}'::jsonb,
          params := '{"q": "a b"}'::jsonb,
          headers := '{"Content-Type": "application/json", "X-Baz": "yes", "X-Null": null}'::jsonb
        )::text as id`;
      id = r.id;
      await sleep(300); // the worker must not see it before the commit
      assert.equal(target.received.length, 0, "sent before commit");
    });
    const row = await waitFor("the response row", () => responseRow(sql, id));
    const got = target.received.find((x) => x.path === "/post-commit")!;
    assert.equal(got.method, "POST");
    assert.equal(got.search.toString(), "q=a+b");
    const body = '{"hello": "world"}';
    assert.deepEqual(got.headerLines, [
      `Host: 127.0.0.1:${target.port}`,
      "Accept: */*",
      "X-Baz: yes", // jsonb key order: shorter keys first
      "Content-Type: application/json",
      "User-Agent: pg_net/0.20.4",
      `Content-Length: ${body.length}`,
    ], "no accept-language, accept-encoding or other added header; the JSON-null header is dropped");
    assert.equal(got.body, body);
    assert.equal(row.status_code, 200);
    assert.deepEqual(JSON.parse(row.content), { ok: true, path: "/post-commit" });
    assert.equal(row.content_type, "application/json");
    assert.equal(row.headers["X-Target"], "yes", "response header names as the server sent them");
    assert.equal(row.timed_out, false);
    assert.equal(row.error_msg, null);
  });
});

dbTest("net worker: a request made in a rolled-back transaction is never sent", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start();
    let id = "";
    await sql.begin(async (tx) => {
      const [r] = await tx`select net.http_get(${target.base + "/rolled-back"})::text as id`;
      id = r.id;
      throw new Error("rollback");
    }).catch((e) => assert.equal((e as Error).message, "rollback"));
    await sql`select net.wake()`; // wake the worker anyway
    await sleep(500);
    assert.equal(target.received.length, 0);
    assert.equal(await responseRow(sql, id), undefined);
  });
});

dbTest("net worker: a timeout stores timed_out = true and pg_net's detailed message", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start();
    const [{ id }] = await sql`select net.http_get(${target.base + "/slow?sleep=2000"}, timeout_milliseconds := 200)::text as id`;
    const row = await waitFor("the response row", () => responseRow(sql, id));
    assert.equal(row.timed_out, true);
    assert.equal(row.status_code, null);
    assert.equal(row.content, null);
    const m = /^Timeout of 200 ms reached\. Total time: (\d+\.\d{6}) ms \(DNS time: (\d+\.\d{6}) ms, TCP\/SSL handshake time: (\d+\.\d{6}) ms, HTTP Request\/Response time: (\d+\.\d{6}) ms\)$/
      .exec(row.error_msg);
    assert.ok(m, row.error_msg);
    const [total, dns, handshake, http] = m.slice(1).map(Number);
    assert.ok(dns > 0 && handshake > 0 && http >= 150 && total >= 200, row.error_msg);
  });
});

dbTest("net worker: connection refused stores curl's message", async () => {
  await withSetup(async ({ sql, start }) => {
    await start();
    const [{ id }] = await sql`select net.http_get(${`http://127.0.0.1:${freePort()}/nothing-here`})::text as id`;
    const row = await waitFor("the response row", () => responseRow(sql, id));
    assert.equal(row.status_code, null);
    assert.equal(row.timed_out, false);
    assert.equal(row.error_msg, "Couldn't connect to server");
  });
});

dbTest("net worker: a pass sends all its requests at once; their responses appear together, with the pass's created, when the slowest is done", async () => {
  await withSetup(async ({ sql, target, start }) => {
    await start();
    const [{ ids }] = await sql`
      select array_agg(net.http_get(${target.base} || '/batch?n=' || i || case when i = 1 then '&sleep=800' else '' end)::text order by i) as ids
      from generate_series(1, 50) i`;
    await waitFor("all 50 requests at the server", () => Promise.resolve(target.received.length === 50));
    assert.ok(target.maxActive >= 50, `the server saw at most ${target.maxActive} at once`);
    await sleep(300); // 49 are answered, the slow one is not
    const [{ n }] = await sql`select count(*)::int as n from net._http_response where id = any(${ids}::bigint[])`;
    assert.equal(n, 0, "no response is visible before the pass commits");
    await waitFor("50 response rows", async () => {
      const [{ n }] = await sql`select count(*)::int as n from net._http_response where id = any(${ids}::bigint[])`;
      return n === 50;
    });
    const rows = await sql`select distinct created, extract(epoch from created) * 1000 as ms from net._http_response where id = any(${ids}::bigint[])`;
    assert.equal(rows.length, 1, "one transaction: one created for the whole pass");
    assert.ok(Number(rows[0].ms) <= Math.min(...target.received.map((r) => r.at)) + 5, "created is the pass's start");
  });
});

dbTest("net worker: nothing is sent during a pass; a commit during it cuts the next 1 s wait short, a second one does not", async () => {
  await withSetup(async ({ sql, target, start, logs }) => {
    const w = await start();
    await w.idle();
    const at = (path: string) => waitFor(path, () => Promise.resolve(target.received.find((r) => r.path === path)?.at), 10_000);
    await sql`select net.http_get(${target.base + "/a?sleep=600"})`;
    const tA = await at("/a");
    await sql`select net.http_get(${target.base + "/b?sleep=600"})`; // during pass 1: sets the latch
    const tB = await at("/b");
    await sql`select net.http_get(${target.base + "/c"})`; // during pass 2: should_wake is already 1
    const tC = await at("/c");
    const info = `a=${tA} b=${tB} c=${tC}\n${logs.join("\n")}`;
    assert.ok(tB - tA >= 550, `b was sent ${tB - tA} ms after a: before a's pass ended\n${info}`);
    assert.ok(tB - tA < 600 + 400, `b waited ${tB - tA} ms: the latch should have cut the 1 s wait short\n${info}`);
    assert.ok(tC - tB >= 600 + 900, `c was sent ${tC - tB} ms after b: the pass after b must wait the full second\n${info}`);
  });
});

dbTest("net worker: a committed request is picked up on its wake at once", async () => {
  await withSetup(async ({ sql, target, start }) => {
    const w = await start();
    await w.idle();
    const committedAt = Date.now();
    await sql`select net.http_get(${target.base + "/prompt"})`;
    const got = await waitFor("the request", () => Promise.resolve(target.received.find((x) => x.path === "/prompt")), 5_000);
    assert.ok(got.at - committedAt < 500, `picked up after ${got.at - committedAt} ms`);
  });
});

dbTest("net worker: a row inserted straight into the queue waits for the next wake (no polling)", async () => {
  await withSetup(async ({ sql, target, start }) => {
    const w = await start();
    await w.idle();
    const [{ id }] = await sql`
      insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
      values ('GET', ${target.base + "/direct"}, '{}', 5000) returning id::text as id`;
    await sleep(2500);
    assert.equal(target.received.length, 0, "sent without a wake");
    const [{ queued }] = await sql`select count(*)::int as queued from net.http_request_queue where id = ${id}`;
    assert.equal(queued, 1);
    await sql`select net.wake()`;
    const row = await waitFor("the response row after a wake", () => responseRow(sql, id));
    assert.equal(row.status_code, 200);
  });
});

dbTest("net worker: a worker killed mid-pass rolls its pass back; the request is sent again after the restart", async () => {
  await withSetup(async ({ sql, target, start }) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./main.ts", import.meta.url).pathname, "--db-url", DB_URL, "--database", TEST_DATABASE],
      stdout: "piped", stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("net-worker ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the worker exited before it was ready:\n${out}`);
      out += value;
    }
    const [{ id }] = await sql`select net.http_get(${target.base + "/killed?sleep=1500"})::text as id`;
    await waitFor("the first send", () => Promise.resolve(target.received.length === 1));
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel().catch(() => {});
    await waitFor("the killed worker's backends to go", async () =>
      (await workerBackends(sql)).filter((b) => b.datname === TEST_DATABASE).length === 0);
    // its pass never committed: the claimed row is still in the queue, and no response exists
    const [{ queued }] = await sql`select count(*)::int as queued from net.http_request_queue where id = ${id}`;
    assert.equal(queued, 1);
    assert.equal(await responseRow(sql, id), undefined);
    await start(); // "restarted": should_wake = 1, so it runs a pass at once
    const row = await waitFor("the response row", () => responseRow(sql, id), 10_000);
    assert.equal(row.status_code, 200);
    assert.equal(target.received.filter((r) => r.path === "/killed").length, 2, "sent again after the restart");
    const [{ n }] = await sql`select count(*)::int as n from net._http_response where id = ${id}`;
    assert.equal(n, 1);
  });
});

dbTest("net worker: net.worker_restart() lets the current pass finish, then the worker starts again 1 s later", async () => {
  await withSetup(async ({ sql, target, start, logs }) => {
    await start();
    const [{ id: slow }] = await sql`select net.http_get(${target.base + "/slow?sleep=800"})::text as id`;
    await waitFor("the slow request", () => Promise.resolve(target.received.length === 1));
    const [{ restarted }] = await sql`select net.worker_restart() as restarted`;
    assert.equal(restarted, true, "returns pg_reload_conf()'s result");
    const [{ id: next }] = await sql`select net.http_get(${target.base + "/next"})::text as id`;
    const slowRow = await waitFor("the slow response", () => responseRow(sql, slow));
    assert.equal(slowRow.status_code, 200, "the pass was not cut short");
    const nextRow = await waitFor("the next response", () => responseRow(sql, next), 10_000);
    assert.equal(nextRow.status_code, 200);
    const slowEnd = target.received[0].at + 800;
    const nextAt = target.received.find((r) => r.path === "/next")!.at;
    assert.ok(nextAt - slowEnd >= 900, `the next request went out ${nextAt - slowEnd} ms after the pass: no 1 s restart gap\n${logs.join("\n")}`);
    assert.equal(target.received.filter((r) => r.path === "/slow").length, 1, "the slow request was sent once");
    assert.ok(logs.some((l) => l.includes("exiting for a restart")));
    await sql`select net.check_worker_is_up()`;
  });
});

dbTest("net worker: net.check_worker_is_up() passes while the worker runs and raises once it stops", async () => {
  await withSetup(async ({ sql, start }) => {
    const others = (await sql`select count(*)::int as n from pg_stat_activity where application_name = ${APPLICATION_NAME} and datname = ${TEST_DATABASE}`)[0].n;
    const worker = await start();
    await sql`select net.check_worker_is_up()`;
    await worker.close();
    if (others > 0) {
      console.warn("another net worker is connected to this database; skipping the 'raises when stopped' assertion");
      return;
    }
    await waitFor("the worker's backends to go", async () => {
      const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity where application_name = ${APPLICATION_NAME} and datname = ${TEST_DATABASE}`;
      return n === 0;
    });
    await assert.rejects(sql`select net.check_worker_is_up()`, (e: Error) => {
      assert.equal(e.message, "the pg_net background worker is not up");
      return true;
    });
  });
});
