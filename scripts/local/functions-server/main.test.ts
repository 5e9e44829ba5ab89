import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { findProjectRoot, parseEnvJson, parseRootSpec, parseWallClockMs } from "./main.ts";

const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");
const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

Deno.test("main: argument helpers", () => {
  assert.deepEqual(parseRootSpec("supabase/functions:supabase/config.toml", "/p"), {
    functionsDir: "/p/supabase/functions",
    configToml: "/p/supabase/config.toml",
  });
  assert.deepEqual(parseRootSpec("/abs/functions", "/p"), {
    functionsDir: "/abs/functions",
    configToml: "/abs/config.toml",
  });
  assert.equal(findProjectRoot(path.join(PROJECT_ROOT, "tests/fixtures/supabase/functions")), PROJECT_ROOT);
  assert.deepEqual(parseEnvJson('{"jwt_secret":"s","env":{"A":"1"}}'), { jwt_secret: "s", env: { A: "1" } });
  assert.throws(() => parseEnvJson('{"env":{}}'), /jwt_secret/);
  assert.throws(() => parseEnvJson('{"jwt_secret":"s","env":{"A":1}}'), /env\.A/);
  assert.equal(parseWallClockMs(undefined, "X"), 150_000);
  assert.equal(parseWallClockMs("400000", "X"), 400_000);
  assert.equal(parseWallClockMs("0", "X"), 0);
  assert.throws(() => parseWallClockMs("1.5s", "--wall-clock-ms"), /--wall-clock-ms must be a whole number/);
});

Deno.test("main: CLI prints one ready line, serves, logs requests, stops children on SIGTERM", async () => {
  const envFile = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(
    envFile,
    JSON.stringify({
      jwt_secret: "cli-test-secret-with-at-least-32-characters",
      env: { SUPABASE_URL: "http://127.0.0.1:1", SUPABASE_SECRET_KEYS: '{"default":"sb_secret_cli"}' },
    }),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "--port",
      "0",
      "--root",
      "tests/fixtures/supabase/functions:tests/fixtures/supabase/config.toml",
      "--env-json",
      envFile,
    ],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderrText = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const m = /^functions ready (\{.*\})\n$/.exec(out);
    assert.ok(m, `ready line: ${JSON.stringify(out)}`);
    const ready = JSON.parse(m[1]) as { url: string; functions_url: string };
    assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(ready.functions_url, `${ready.url}/functions/v1`);

    const res = await fetch(`${ready.functions_url}/echo-open/cli`, { method: "POST", body: "x" });
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.equal(j.path, "/echo-open/cli");
    assert.ok(j.supabaseEnv.includes("SUPABASE_SECRET_KEYS"));

    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0);
    const rest = await reader.read();
    assert.ok(rest.done && !rest.value, "nothing else on stdout");
    const err = await stderrText;
    assert.match(err, /^POST \/functions\/v1\/echo-open\/cli 200 \d+ms$/m);
    assert.ok(!err.includes("sb_secret_cli"));
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!(await Deno.stat(`/proc/${j.pid}`).then(() => true, () => false)), "function child stopped");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    reader.releaseLock();
    await Deno.remove(envFile);
  }
});

Deno.test("main: --workers-file lists the workers; they exit when the server is SIGKILLed (no orphans)", async () => {
  const envFile = await Deno.makeTempFile({ suffix: ".json" });
  const workersFile = `${envFile}.workers.json`;
  await Deno.writeTextFile(envFile, JSON.stringify({ jwt_secret: "x".repeat(32), env: {} }));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--port", "0", "--quiet", "--root", "tests/fixtures/supabase/functions", "--env-json", envFile,
      "--workers-file", workersFile],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const ready = JSON.parse(out.slice("functions ready ".length)) as { functions_url: string };
    const { pid } = await (await fetch(`${ready.functions_url}/echo-open`)).json() as { pid: number };
    // A worker with background work pending dies with the server too: nothing is left to answer to.
    const bg = await (await fetch(`${ready.functions_url}/wait-until/start?id=x&ms=60000`)).json() as { pid: number };
    const recorded = JSON.parse(await Deno.readTextFile(workersFile)) as Record<string, number[]>;
    assert.deepEqual(recorded, { "echo-open": [pid], "wait-until": [bg.pid] });
    child.kill("SIGKILL");
    await child.status;
    const alive = (p: number) => {
      try {
        return !/^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${p}/stat`));
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 60 && (alive(pid) || alive(bg.pid)); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(pid), false, `function pid ${pid} outlived the server`);
    assert.equal(alive(bg.pid), false, `function pid ${bg.pid} (background work pending) outlived the server`);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await reader.cancel().catch(() => {});
    await Deno.remove(envFile);
    await Deno.remove(workersFile).catch(() => {});
  }
});
