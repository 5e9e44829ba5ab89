import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as jose from "jose";
import { type FunctionsServer, startFunctionsServer } from "./server.ts";

const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const FIXTURES = path.join(PROJECT_ROOT, "tests/fixtures/supabase");
const JWT_SECRET = "test-jwt-secret-with-at-least-32-characters!!";
const SERVICE_ROLE_VALUE = "service-role-value-that-must-never-be-logged";
const SECRET_KEY_VALUE = "sb_secret_never_logged_0123456789";

const ENV: Record<string, string> = {
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_DB_URL: "postgresql://postgres:db-password-never-logged@127.0.0.1:54322/postgres",
  SUPABASE_ANON_KEY: "anon-key-value",
  SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_VALUE,
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY_VALUE }),
  SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: "sb_publishable_test" }),
};

const key = new TextEncoder().encode(JWT_SECRET);
function signJwt(claims: jose.JWTPayload, opts: { secret?: Uint8Array; exp?: number | string } = {}) {
  return new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt()
    .setExpirationTime(opts.exp ?? "1h").sign(opts.secret ?? key);
}

function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // field 3 is the state; a zombie (Z) is dead for our purposes
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** A second root with a colliding name, a syntax error and a streaming function. */
async function makeExtraRoot(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fnserver-extra-" });
  const files: Record<string, string> = {
    "config.toml": [
      "[functions.stream]",
      "verify_jwt = false",
      "[functions.syntax-error]",
      "verify_jwt = false",
      "[functions.echo-open]",
      "verify_jwt = false",
    ].join("\n"),
    "functions/echo-open/index.ts": 'Deno.serve(() => Response.json({ shadow: true }));\n',
    "functions/syntax-error/index.ts": "Deno.serve(() => new Response('x'); }}}\nconst = ;\n",
    "functions/stream/index.ts": `
Deno.serve(async (req) => {
  if (req.method === "POST") {
    let bytes = 0;
    for await (const chunk of req.body!) bytes += chunk.byteLength;
    return Response.json({ bytes });
  }
  const body = new ReadableStream({
    async start(controller) {
      for (let i = 0; i < 5; i++) {
        controller.enqueue(new TextEncoder().encode("chunk" + i + "\\n"));
        await new Promise((r) => setTimeout(r, 40));
      }
      controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/plain", "x-custom": "yes" }, status: 201 });
});
`,
  };
  for (const [rel, text] of Object.entries(files)) {
    await Deno.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await Deno.writeTextFile(path.join(dir, rel), text);
  }
  return dir;
}

Deno.test("functions server (fixture root + extra root)", async (t) => {
  Deno.env.set("DUEWORK_TEST_PARENT_ONLY", "must-not-reach-children");
  const extra = await makeExtraRoot();
  const logs: string[] = [];
  const seenPids = new Set<number>();
  let server: FunctionsServer | null = null;
  try {
    server = await startFunctionsServer({
      port: 0,
      roots: [
        { functionsDir: path.join(FIXTURES, "functions"), configToml: path.join(FIXTURES, "config.toml") },
        { functionsDir: path.join(extra, "functions"), configToml: path.join(extra, "config.toml") },
      ],
      env: ENV,
      jwtSecret: JWT_SECRET,
      projectRoot: PROJECT_ROOT,
      log: (l) => logs.push(l),
    });
    const fns = server.functionsUrl;
    const s = server;
    const rememberPids = () => Object.values(s.functionPids()).forEach((p) => seenPids.add(p));

    await t.step("urls and health", async () => {
      assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(fns, `${s.url}/functions/v1`);
      const res = await fetch(`${s.url}/_internal/health`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).ok, true);
    });

    await t.step("routing with subpath, query, body and headers", async () => {
      const res = await fetch(`${fns}/echo-open/sub/path?x=1&y=two`, {
        method: "PUT",
        headers: { "content-type": "application/json", "x-test": "abc" },
        body: JSON.stringify({ hello: "world" }),
      });
      assert.equal(res.status, 200);
      const j = await res.json();
      assert.equal(j.function, "echo-open");
      assert.equal(j.method, "PUT");
      // like Kong's strip_path route: the function sees /<name>/<rest>
      assert.equal(j.path, "/echo-open/sub/path");
      assert.equal(j.search, "?x=1&y=two");
      assert.equal(j.body, '{"hello":"world"}');
      assert.equal(j.headers["x-test"], "abc");
      assert.equal(j.headers["content-type"], "application/json");
      assert.equal(j.headers["x-forwarded-host"], new URL(s.url).host);
      assert.equal(j.edgeRuntime, true, "EdgeRuntime.waitUntil is defined");
      assert.ok(logs.some((l) => /^PUT \/functions\/v1\/echo-open\/sub\/path 200 \d+ms$/.test(l)), logs.join("\n"));
    });

    await t.step("env: platform names, .env loaded, SUPABASE_* in .env skipped, no parent leak", async () => {
      const j = await (await fetch(`${fns}/echo-open`)).json();
      assert.deepEqual(j.supabaseEnv, [
        "SUPABASE_ANON_KEY",
        "SUPABASE_DB_URL",
        "SUPABASE_PUBLISHABLE_KEYS",
        "SUPABASE_SECRET_KEYS",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_URL",
      ]);
      assert.equal(j.secretKeysIsJson, true);
      assert.equal(j.publishableKeysIsJson, true);
      assert.deepEqual(j.fixtureEnv, {
        DUEWORK_FIXTURE_GREETING: "hello",
        DUEWORK_FIXTURE_QUOTED: "two words",
        DUEWORK_FIXTURE_EXPORTED: "literal $value",
      });
      assert.ok(!j.envNames.includes("SUPABASE_FIXTURE_SHOULD_BE_SKIPPED"));
      assert.ok(!j.envNames.includes("DUEWORK_TEST_PARENT_ONLY"));
      assert.ok(j.envNames.includes("PATH"));
      assert.ok(logs.some((l) => l.includes("skipping SUPABASE_FIXTURE_SHOULD_BE_SKIPPED")));
    });

    await t.step("404s: unknown function, _shared, disabled, outside /functions/v1", async () => {
      for (const p of ["/functions/v1/nope", "/functions/v1/_shared", "/functions/v1/disabled-fn", "/functions/v1/"]) {
        const res = await fetch(`${s.url}${p}`);
        assert.equal(res.status, 404, p);
        const j = await res.json();
        assert.equal(j.code, "NOT_FOUND", p);
      }
      const nope = await (await fetch(`${fns}/nope`)).json();
      assert.deepEqual(nope, { code: "NOT_FOUND", message: "Requested function was not found" });
      const outside = await fetch(`${s.url}/rest/v1/things`);
      assert.equal(outside.status, 404);
      assert.equal((await outside.json()).code, "NOT_FOUND");
    });

    await t.step("verify_jwt = true: bad credentials → 401 and the function never runs", async () => {
      const expired = await signJwt({ role: "anon" }, { exp: Math.floor(Date.now() / 1000) - 10 });
      const wrongSecret = await signJwt({ role: "anon" }, { secret: new TextEncoder().encode("y".repeat(40)) });
      const cases: [Record<string, string>, string][] = [
        [{}, "UNAUTHORIZED_NO_AUTH_HEADER"],
        [{ authorization: "Bearer garbage" }, "UNAUTHORIZED_INVALID_JWT_FORMAT"],
        [{ authorization: "Token abc" }, "UNAUTHORIZED_INVALID_JWT_FORMAT"],
        [{ authorization: `Bearer ${SECRET_KEY_VALUE}` }, "UNAUTHORIZED_INVALID_JWT_FORMAT"],
        [{ apikey: "anon-key-value" }, "UNAUTHORIZED_NO_AUTH_HEADER"],
        [{ authorization: `Bearer ${wrongSecret}` }, "UNAUTHORIZED_INVALID_JWT"],
        [{ authorization: `Bearer ${expired}` }, "UNAUTHORIZED_INVALID_JWT"],
      ];
      for (const [headers, code] of cases) {
        const res = await fetch(`${fns}/echo-jwt`, { method: "POST", headers, body: "{}" });
        assert.equal(res.status, 401, JSON.stringify(headers));
        const j = await res.json();
        assert.equal(j.code, code, JSON.stringify(headers));
        assert.equal(typeof j.message, "string");
      }
      const missing = await (await fetch(`${fns}/echo-jwt`)).json();
      assert.equal(missing.message, "Missing authorization header");
      assert.equal(s.functionPids()["echo-jwt"], undefined, "echo-jwt was never started");
    });

    await t.step("verify_jwt = true: valid anon JWT → 200 (first invocation)", async () => {
      const anon = await signJwt({ role: "anon", iss: "supabase-demo" });
      const res = await fetch(`${fns}/echo-jwt/x`, { headers: { authorization: `Bearer ${anon}` } });
      assert.equal(res.status, 200);
      const j = await res.json();
      assert.equal(j.function, "echo-jwt");
      assert.equal(j.invocations, 1, "the rejected requests never reached the function");
      assert.equal(j.headers.authorization, "[redacted]", "authorization is passed through");
      assert.equal(j.path, "/echo-jwt/x");
      assert.equal(typeof s.functionPids()["echo-jwt"], "number");
    });

    await t.step("CORS preflight passes through without a JWT", async () => {
      const res = await fetch(`${fns}/echo-jwt`, {
        method: "OPTIONS",
        headers: { origin: "http://example.test", "access-control-request-method": "POST" },
      });
      assert.equal(res.status, 200);
      assert.equal((await res.json()).method, "OPTIONS");
    });

    await t.step("function-level deno.json is used as --config; export default { fetch }", async () => {
      const res = await fetch(`${fns}/with-config`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { greeting: "from the function's own deno.json import map" });
    });

    await t.step("name collision: first root wins, warning logged", async () => {
      const j = await (await fetch(`${fns}/echo-open`)).json();
      assert.equal(j.function, "echo-open");
      assert.ok(logs.some((l) => l.includes('function "echo-open" exists in')), "collision warning");
    });

    await t.step("streaming response and streamed request body", async () => {
      const res = await fetch(`${fns}/stream`);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get("x-custom"), "yes");
      assert.equal(await res.text(), "chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n");
      const big = new Uint8Array(3 * 1024 * 1024).fill(7);
      const post = await fetch(`${fns}/stream`, { method: "POST", body: big });
      assert.deepEqual(await post.json(), { bytes: big.byteLength });
    });

    await t.step("20 parallel slow requests overlap (one cold start, one child)", async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const res = await fetch(`${fns}/slow?ms=300`);
          assert.equal(res.status, 200);
          return await res.json() as { start: number; end: number; pid: number };
        }),
      );
      const pids = new Set(results.map((r) => r.pid));
      assert.equal(pids.size, 1, "single-flight boot: one child served all requests");
      const maxStart = Math.max(...results.map((r) => r.start));
      const minEnd = Math.min(...results.map((r) => r.end));
      assert.ok(maxStart < minEnd, `all 20 were in flight together (last start ${maxStart} < first end ${minEnd})`);
      const bootLines = logs.filter((l) => l.startsWith("worker slow started"));
      assert.equal(bootLines.length, 1, bootLines.join("\n"));
    });

    await t.step("crash: error response, next request restarts the worker", async () => {
      const first = await (await fetch(`${fns}/crash/alive`)).json();
      const res = await fetch(`${fns}/crash`, { method: "POST", body: "boom" });
      assert.ok(res.status === 502 || res.status === 503, `status ${res.status}`);
      assert.equal((await res.json()).code, "WORKER_ERROR");
      assert.ok(!isAlive(first.pid));
      const again = await fetch(`${fns}/crash/alive`);
      assert.equal(again.status, 200);
      const j = await again.json();
      assert.notEqual(j.pid, first.pid);
      // other functions were not affected
      assert.equal((await fetch(`${fns}/echo-open`).then((r) => r.json())).function, "echo-open");
      rememberPids();
    });

    await t.step("killed mid-request → 502; next request works", async () => {
      rememberPids();
      const pending = fetch(`${fns}/slow?ms=10000`);
      await new Promise((r) => setTimeout(r, 200));
      const pid = s.functionPids().slow;
      assert.equal(typeof pid, "number");
      Deno.kill(pid, "SIGKILL");
      const res = await pending;
      assert.equal(res.status, 502);
      assert.equal((await res.json()).code, "WORKER_ERROR");
      const next = await fetch(`${fns}/slow?ms=1`);
      assert.equal(next.status, 200);
      assert.notEqual((await next.json()).pid, pid);
    });

    await t.step("boot errors → 500 BOOT_ERROR, details only in the log", async () => {
      for (const name of ["boot-error", "syntax-error"]) {
        const res = await fetch(`${fns}/${name}`);
        assert.equal(res.status, 500, name);
        const j = await res.json();
        assert.equal(j.code, "BOOT_ERROR");
        assert.match(j.message, /^Worker failed to boot/);
        assert.ok(!JSON.stringify(j).includes("does-not-exist"), "stderr is not returned");
      }
      assert.ok(logs.some((l) => l.startsWith("worker boot-error failed to boot") && l.includes("does-not-exist")));
      assert.ok(logs.some((l) => l.startsWith("worker syntax-error failed to boot")));
      // a later request tries again (still broken) rather than caching the failure forever
      assert.equal((await fetch(`${fns}/boot-error`).then(async (r) => (await r.body?.cancel(), r.status))), 500);
      assert.equal(s.functionPids()["boot-error"], undefined);
    });

    await t.step("EdgeRuntime.waitUntil work finishes after the response", async () => {
      const file = await Deno.makeTempFile({ prefix: "fnserver-bg-" });
      await Deno.remove(file);
      const res = await fetch(`${fns}/background?ms=100&file=${encodeURIComponent(file)}`);
      assert.equal(res.status, 202);
      await res.body?.cancel();
      let content = "";
      for (let i = 0; i < 50 && !content; i++) {
        await new Promise((r) => setTimeout(r, 50));
        content = await Deno.readTextFile(file).catch(() => "");
      }
      assert.equal(content, "done");
      await Deno.remove(file);
    });

    await t.step("no secret values in the logs", () => {
      const all = logs.join("\n");
      for (const v of [SERVICE_ROLE_VALUE, SECRET_KEY_VALUE, JWT_SECRET, "db-password-never-logged"]) {
        assert.ok(!all.includes(v), `log leaks ${v.slice(0, 8)}…`);
      }
    });

    await t.step("close() kills every child", async () => {
      rememberPids();
      assert.ok(seenPids.size >= 5, `pids: ${[...seenPids]}`);
      await s.close();
      server = null;
      for (const pid of seenPids) assert.ok(!isAlive(pid), `pid ${pid} still alive`);
      await assert.rejects(fetch(`${s.url}/_internal/health`));
    });
  } finally {
    await server?.close();
    Deno.env.delete("DUEWORK_TEST_PARENT_ONLY");
    await Deno.remove(extra, { recursive: true });
  }
});
