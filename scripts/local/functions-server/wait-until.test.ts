// EdgeRuntime.waitUntil and the worker wall clock, end to end through the server: real worker
// processes running tests/fixtures/supabase/functions/wait-until, whose background tasks report to
// a recorder server in this test process.
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { type FunctionsServer, startFunctionsServer } from "./server.ts";

const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const FIXTURES = path.join(PROJECT_ROOT, "tests/fixtures/supabase");

interface Report {
  id: string;
  pid: number;
  at: number;
}

/** Collects the POSTs background tasks send when they finish. */
function startRecorder() {
  const reports: Report[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    reports.push({ ...(await req.json()), at: Date.now() });
    return new Response("ok");
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, reports, close: () => server.shutdown() };
}

function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

async function until<T>(check: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function withServer(
  wallClockMs: number,
  fn: (s: FunctionsServer, logs: string[], workersFile: string) => Promise<void>,
): Promise<void> {
  const logs: string[] = [];
  const dir = await Deno.makeTempDir({ prefix: "fnserver-wait-until-" });
  const workersFile = path.join(dir, "function-workers.json");
  const server = await startFunctionsServer({
    port: 0,
    roots: [{ functionsDir: path.join(FIXTURES, "functions"), configToml: path.join(FIXTURES, "config.toml") }],
    env: {},
    jwtSecret: "x".repeat(40),
    projectRoot: PROJECT_ROOT,
    log: (l) => logs.push(l),
    logRequests: false,
    wallClockMs,
    workersFile,
  });
  try {
    await fn(server, logs, workersFile);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

Deno.test("waitUntil: the response comes first, the background work completes after it", async () => {
  const rec = startRecorder();
  try {
    await withServer(60_000, async (s) => {
      const fns = s.functionsUrl;
      await getJson(`${fns}/wait-until/ping`); // boot first, so timings below are the function's own
      const sent = Date.now();
      const start = await getJson(`${fns}/wait-until/start?id=a&ms=800&notify=${encodeURIComponent(rec.url)}`);
      const answered = Date.now();
      assert.equal(start.status, 202);
      assert.ok(answered - sent < 500, `answered after ${answered - sent} ms, before the 800 ms of background work`);
      assert.equal(rec.reports.length, 0, "the background work has not finished when the response arrives");
      const report = await until(() => rec.reports.find((r) => r.id === "a"), "the background report");
      assert.ok(report.at - sent >= 800, `reported ${report.at - sent} ms after the request`);
      assert.equal(report.pid, start.body.pid, "the worker that answered did the work");
    });
  } finally {
    await rec.close();
  }
});

Deno.test("waitUntil: pending work survives while the same worker serves other requests", async () => {
  const rec = startRecorder();
  try {
    await withServer(60_000, async (s) => {
      const fns = s.functionsUrl;
      const start = await getJson(`${fns}/wait-until/start?id=b&ms=1500&notify=${encodeURIComponent(rec.url)}`);
      const pid = start.body.pid as number;
      // per_worker: one worker takes many concurrent requests while its background task runs.
      for (let round = 0; round < 5; round++) {
        const pings = await Promise.all(Array.from({ length: 10 }, () => getJson(`${fns}/wait-until/ping?sleep=50`)));
        for (const p of pings) assert.deepEqual(p, { status: 200, body: { pid } });
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(rec.reports.length, 0, "still running after the other requests were served");
      const report = await until(() => rec.reports.find((r) => r.id === "b"), "the background report");
      assert.equal(report.pid, pid);
      assert.equal(s.functionPids()["wait-until"], pid, "no worker was recycled");
    });
  } finally {
    await rec.close();
  }
});

Deno.test("waitUntil: a rejected background task is logged and the worker keeps serving", async () => {
  await withServer(60_000, async (s, logs) => {
    const fns = s.functionsUrl;
    const start = await getJson(`${fns}/wait-until/start?id=c&ms=20&fail=1`);
    assert.equal(start.status, 202);
    await until(
      () => logs.find((l) => l.startsWith("[wait-until] EdgeRuntime.waitUntil: background task failed")),
      "the failure in the log",
    );
    assert.ok(logs.some((l) => l.includes("background task c failed on purpose")), logs.join("\n"));
    const ping = await getJson(`${fns}/wait-until/ping`);
    assert.deepEqual(ping, { status: 200, body: { pid: start.body.pid } });
    assert.ok(!logs.some((l) => /worker wait-until .* exited/.test(l)), "the worker did not exit");
  });
});

Deno.test("wall clock: background work past the limit is cut after beforeunload; a fresh worker serves next", async () => {
  const rec = startRecorder();
  const unloadFile = await Deno.makeTempFile({ prefix: "fnserver-unload-" });
  try {
    await withServer(2_500, async (s, logs) => {
      const fns = s.functionsUrl;
      await getJson(`${fns}/wait-until/on-unload?file=${encodeURIComponent(unloadFile)}`);
      const start = await getJson(`${fns}/wait-until/start?id=d&ms=4000&notify=${encodeURIComponent(rec.url)}`);
      const pid = start.body.pid as number;
      assert.equal(start.status, 202);
      const reason = await until(() => Deno.readTextFileSync(unloadFile), "beforeunload", 5_000);
      assert.equal(reason, "wall_clock", "edge-runtime's WillTerminateReason::WallClock");
      await until(() => !isAlive(pid), "the worker to be gone at its limit", 3_000);
      assert.ok(logs.some((l) => l.includes("[wait-until] beforeunload reason=wall_clock")), logs.join("\n"));
      assert.ok(logs.some((l) => l.includes("cutting 1 background task(s) (shutdown: WallClockTime)")), logs.join("\n"));
      await until(
        () => logs.find((l) => l === `worker wait-until (pid ${pid}) stopped at its wall-clock limit of 2500 ms (shutdown: WallClockTime)`),
        "the pool's log line",
      );
      // Past the moment the task would have reported: it never did.
      await new Promise((r) => setTimeout(r, Math.max(0, start.body.at as number + 4_300 - Date.now())));
      assert.deepEqual(rec.reports, [], "the cut task never finished");
      const next = await getJson(`${fns}/wait-until/ping`);
      assert.equal(next.status, 200);
      assert.notEqual(next.body.pid, pid, "a fresh worker");
    });
  } finally {
    await rec.close();
    await Deno.remove(unloadFile);
  }
});

Deno.test("wall clock: a retired worker finishes its requests and background work, new requests go to its successor", async () => {
  const rec = startRecorder();
  try {
    // Retire at 2 s, limit at 4 s: the work below ends around 3 s, inside the limit.
    await withServer(4_000, async (s, logs, workersFile) => {
      const fns = s.functionsUrl;
      const start = await getJson(`${fns}/wait-until/start?id=e&ms=2500&notify=${encodeURIComponent(rec.url)}`);
      const first = start.body.pid as number;
      const slow = getJson(`${fns}/wait-until/ping?sleep=2700`); // in flight across the retirement
      await until(() => logs.find((l) => l.includes(`(pid ${first}) is at half its wall-clock limit`)), "retirement", 5_000);
      const successor = await until(() => {
        const p = s.functionPids()["wait-until"];
        return p !== first && p;
      }, "the successor to take over");
      // Both are this server's processes, and the file says so.
      const recorded = JSON.parse(Deno.readTextFileSync(workersFile)) as Record<string, number[]>;
      assert.deepEqual([...recorded["wait-until"]].sort(), [first, successor].sort());

      const ping = await getJson(`${fns}/wait-until/ping`);
      assert.deepEqual(ping, { status: 200, body: { pid: successor } }, "new requests go to the successor");
      assert.deepEqual(await slow, { status: 200, body: { pid: first } }, "the in-flight request was not cut");
      const report = await until(() => rec.reports.find((r) => r.id === "e"), "the background report", 5_000);
      assert.equal(report.pid, first, "the retired worker finished its background task");
      await until(() => !isAlive(first), "the retired worker to exit", 3_000);
      // The server logs the exit when it reaps the process, which can come a moment after it is gone.
      const retired = (l: string) => l.startsWith(`worker wait-until (pid ${first}) retired after`);
      await until(() => logs.some(retired), "the retired worker's exit line", 3_000).catch(() => undefined);
      assert.ok(logs.some(retired), `it exited because its work was done, not at the limit:\n${logs.join("\n")}`);
      assert.ok(isAlive(successor));
      await until(() => {
        const now = JSON.parse(Deno.readTextFileSync(workersFile)) as Record<string, number[]>;
        return JSON.stringify(now["wait-until"]) === JSON.stringify([successor]);
      }, "the workers file to drop the retired worker");
    });
  } finally {
    await rec.close();
  }
});

Deno.test("wall clock: a request still in flight at the limit is cut with 546 WORKER_LIMIT", async () => {
  await withServer(2_000, async (s) => {
    const sent = Date.now();
    const res = await getJson(`${s.functionsUrl}/wait-until/ping?sleep=5000`);
    assert.deepEqual(res, {
      status: 546,
      body: { code: "WORKER_LIMIT", message: "Function reached its wall-clock limit (please check logs)" },
    });
    assert.ok(Date.now() - sent < 4_000, "cut at the limit, not when the handler would have answered");
    assert.equal((await getJson(`${s.functionsUrl}/wait-until/ping`)).status, 200, "the next request gets a fresh worker");
  });
});
