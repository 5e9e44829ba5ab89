import assert from "node:assert/strict";
import * as path from "node:path";
import { FunctionRouter, matchRoute } from "./router.ts";

Deno.test("router: matchRoute", () => {
  assert.deepEqual(matchRoute("/_internal/health"), { kind: "health" });
  assert.deepEqual(matchRoute("/functions/v1/hello"), { kind: "function", name: "hello", functionPath: "/hello" });
  assert.deepEqual(matchRoute("/functions/v1/hello/a/b"), {
    kind: "function",
    name: "hello",
    functionPath: "/hello/a/b",
  });
  assert.deepEqual(matchRoute("/functions/v1/hello/"), { kind: "function", name: "hello", functionPath: "/hello/" });
  assert.deepEqual(matchRoute("/functions/v1/"), { kind: "not_found" });
  assert.deepEqual(matchRoute("/functions/v1"), { kind: "not_found" });
  assert.deepEqual(matchRoute("/rest/v1/x"), { kind: "not_found" });
  assert.deepEqual(matchRoute("/"), { kind: "not_found" });
});

async function tempProject(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fnrouter-" });
  for (const [rel, text] of Object.entries(files)) {
    await Deno.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await Deno.writeTextFile(path.join(dir, rel), text);
  }
  return dir;
}

Deno.test("router: discovery, config.toml settings, collisions, deno.json choice", async () => {
  const a = await tempProject({
    "deno.json": "{}",
    "supabase/config.toml": [
      "[functions.open]",
      "verify_jwt = false",
      "[functions.off]",
      "enabled = false",
      "[functions.custom]",
      'entrypoint = "./functions/custom/main.ts"',
      'import_map = "./functions/custom/import_map.json"',
    ].join("\n"),
    "supabase/functions/open/index.ts": "",
    "supabase/functions/locked/index.ts": "",
    "supabase/functions/locked/deno.json": "{}",
    "supabase/functions/off/index.ts": "",
    "supabase/functions/custom/main.ts": "",
    "supabase/functions/noindex/other.ts": "",
    "supabase/functions/_shared/index.ts": "",
    "supabase/functions/.hidden/index.ts": "",
  });
  const b = await tempProject({
    "config.toml": "",
    "functions/open/index.ts": "",
    "functions/only-b/index.ts": "",
  });
  try {
    const logs: string[] = [];
    const router = new FunctionRouter(
      [
        { functionsDir: path.join(a, "supabase/functions"), configToml: path.join(a, "supabase/config.toml") },
        { functionsDir: path.join(b, "functions"), configToml: path.join(b, "config.toml") },
      ],
      a,
      (l) => logs.push(l),
    );
    assert.deepEqual(Object.keys(router.listFunctions()).sort(), ["custom", "locked", "only-b", "open"]);
    assert.ok(logs.some((l) => l.includes('function "open" exists in')), logs.join("\n"));

    const open = router.resolve("open")!;
    assert.equal(open.rootIndex, 0);
    assert.equal(open.verifyJwt, false);
    assert.equal(open.denoConfig, path.join(a, "deno.json"));
    assert.equal(open.envFile, path.join(a, "supabase/functions/.env"));

    const locked = router.resolve("locked")!;
    assert.equal(locked.verifyJwt, true, "verify_jwt defaults to true");
    assert.equal(locked.denoConfig, path.join(a, "supabase/functions/locked/deno.json"));

    const custom = router.resolve("custom")!;
    assert.equal(custom.entrypoint, path.join(a, "supabase/functions/custom/main.ts"));
    assert.equal(custom.importMap, path.join(a, "supabase/functions/custom/import_map.json"));

    assert.equal(router.resolve("only-b")!.rootIndex, 1);
    for (const n of ["off", "noindex", "_shared", ".hidden", "missing", "..", "a/b"]) {
      assert.equal(router.resolve(n), null, n);
    }

    // config.toml changes are picked up (mtime cache)
    await new Promise((r) => setTimeout(r, 20));
    await Deno.writeTextFile(path.join(a, "supabase/config.toml"), "[functions.open]\nverify_jwt = true\n");
    const st = Deno.statSync(path.join(a, "supabase/config.toml"));
    await Deno.utime(path.join(a, "supabase/config.toml"), st.atime!, new Date(Date.now() + 5000));
    assert.equal(router.resolve("open")!.verifyJwt, true);
    assert.ok(router.resolve("off"), "re-enabled once the section is gone");
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("router: invalid config.toml → warning, defaults apply", async () => {
  const a = await tempProject({
    "config.toml": "[functions.x\nverify_jwt = false",
    "functions/x/index.ts": "",
  });
  try {
    const logs: string[] = [];
    const router = new FunctionRouter(
      [{ functionsDir: path.join(a, "functions"), configToml: path.join(a, "config.toml") }],
      a,
      (l) => logs.push(l),
    );
    assert.equal(router.resolve("x")!.verifyJwt, true);
    assert.ok(logs.some((l) => l.includes("cannot parse")));
  } finally {
    await Deno.remove(a, { recursive: true });
  }
});
