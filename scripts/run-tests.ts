// `npm test`: every test in the project on a stack of its own (profile "test": ports +1000 and
// .duework/test), so it never touches a stack started with `npm start`.
//
//   npm test                                   all suites
//   npm test -- supabase/tests/database/x.sql  one pgTAP file
//   npm test -- tests/e2e/platform.test.ts     one vitest file
//   npm test -- scripts/local/sandbox/         deno tests under a path
//   npm test -- --suite pgtap                  one suite: schema | pgtap | deno | vitest | chaos | advisors | lint
//   npm run schema                             rewrite supabase/schema.sql from the migrations
//
// A test stack already running (`npm run stack:up -- --profile test`) is reused and left running.
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import postgres from "npm:postgres@^3.4.9";
import { dbUrl, stackConfig } from "./local/stack/config.ts";
import { createStack, type StackJson } from "./local/stack/supervisor.ts";
import { runningSupervisor } from "./local/stack/lock.ts";
import { runAdvisors } from "./local/stack/advisors.ts";
import { runLint } from "./local/stack/lint.ts";
import { checkSnapshot } from "./local/stack/schema-snapshot.ts";
import { join } from "./local/stack/paths.ts";

// schema first: it compares the migrated schema before any test has touched the database. chaos
// (`npm run chaos -- --short`) after the others: it stops Postgres and kills the stack's services.
const SUITES = ["schema", "pgtap", "deno", "vitest", "chaos", "advisors", "lint"] as const;
type Suite = typeof SUITES[number];

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { suite: { type: "string", multiple: true }, "write-schema": { type: "boolean", default: false } },
});
for (const s of values.suite ?? []) {
  if (!SUITES.includes(s as Suite)) {
    console.error(`--suite must be one of ${SUITES.join(", ")}; got ${JSON.stringify(s)}`);
    Deno.exit(2);
  }
}

const cfg = stackConfig("test");
const root = cfg.projectRoot;

/** Which suites run which paths: positionals pick suites by where the files live. */
function plan(): Map<Suite, string[]> {
  const m = new Map<Suite, string[]>();
  const add = (s: Suite, p?: string) => {
    if (!m.has(s)) m.set(s, []);
    if (p) m.get(s)!.push(p);
  };
  for (const p of positionals) {
    if (p.endsWith(".sql") || p.startsWith("supabase/tests")) add("pgtap", p);
    else if (p.startsWith("tests/") || p.startsWith("tests")) add("vitest", p);
    else add("deno", p);
  }
  for (const s of (values.suite ?? []) as Suite[]) add(s);
  if (m.size === 0) for (const s of SUITES) add(s);
  return m;
}

async function run(argv: string[], env: Record<string, string> = {}): Promise<boolean> {
  const [cmd, ...args] = argv;
  console.log(`\n$ ${argv.map((a) => (a.includes(" ") ? JSON.stringify(a) : a)).join(" ")}`);
  const status = await new Deno.Command(cmd, { args, cwd: root, env, stdout: "inherit", stderr: "inherit" }).spawn().status;
  return status.success;
}

async function ensurePgTap(): Promise<void> {
  const sql = postgres(dbUrl(cfg), { max: 1, onnotice: () => {} });
  try {
    await sql`create extension if not exists pgtap with schema extensions`;
  } finally {
    await sql.end();
  }
}

const suites = plan();
const started = Date.now();
let stack: ReturnType<typeof createStack> | undefined;
let info: StackJson;

const reuse = (await runningSupervisor(cfg)) !== null && existsSync(cfg.stackJson);
if (reuse) {
  info = JSON.parse(await Deno.readTextFile(cfg.stackJson));
  console.log(`using the running test stack (${cfg.stackJson})`);
} else {
  console.log(`starting a test stack (Postgres :${cfg.dbPort}, functions :${cfg.apiPort}, sandbox :${cfg.sandboxPort}); logs in ${cfg.logDir}`);
  stack = createStack(cfg, {
    extraFunctionRoots: [`${join(root, "tests/fixtures/supabase/functions")}:${join(root, "tests/fixtures/supabase/config.toml")}`],
    freshCluster: true,
    sink: () => {}, // the per-process log files under .duework/test/logs keep everything
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, async () => {
      await stack?.stop();
      Deno.exit(130);
    });
  }
  try {
    info = await stack.start();
  } catch (e) {
    console.error(`the test stack did not start: ${(e as Error).message}`);
    Deno.exit(1);
  }
  console.log(`test stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const env = {
  DUEWORK_STACK_JSON: cfg.stackJson,
  DUEWORK_TEST_DB_URL: info.db_url,
};
const results: { suite: Suite; ok: boolean; seconds: number; note?: string }[] = [];
for (const [suite, paths] of suites) {
  const t0 = Date.now();
  let ok = false;
  let note: string | undefined;
  switch (suite) {
    case "pgtap":
      await ensurePgTap();
      ok = await run([
        "pg_prove", "--ext", ".sql", "-h", "127.0.0.1", "-p", String(cfg.dbPort), "-U", "postgres", "-d", "postgres",
        ...(paths.length ? paths : ["supabase/tests/database/"]),
      ], env);
      break;
    case "deno":
      ok = await run([Deno.execPath(), "test", "-A", "--no-lock", ...paths], env);
      break;
    case "vitest":
      ok = await run([join(root, "node_modules/.bin/vitest"), "run", ...paths], env);
      break;
    case "chaos":
      ok = await run([Deno.execPath(), "run", "-A", "reliability/main.ts", "--short", "--stack-json", cfg.stackJson], env);
      break;
    case "advisors": {
      const r = await runAdvisors(cfg);
      console.log(`\n$ supabase db advisors (security + performance)\n${r.report}`);
      ok = r.ok;
      note = r.ok ? "0 findings" : "findings";
      break;
    }
    case "schema": {
      const r = await checkSnapshot(cfg, values["write-schema"] ?? false);
      console.log(`\n$ pg_dump --schema-only (supabase/schema.sql)\n${r.report}`);
      ok = r.ok;
      note = r.ok ? "current" : "out of date";
      break;
    }
    case "lint": {
      const r = await runLint(cfg);
      console.log(`\n$ supabase db lint (plpgsql_check)\n${r.report}`);
      ok = r.ok;
      note = r.ok ? "0 findings" : "findings";
      break;
    }
  }
  results.push({ suite, ok, seconds: (Date.now() - t0) / 1000, note });
}

if (stack) await stack.stop();

console.log("\nSummary");
for (const r of results) {
  console.log(`  ${r.ok ? "PASS" : "FAIL"}  ${r.suite.padEnd(9)} ${r.seconds.toFixed(1).padStart(6)} s${r.note ? `  (${r.note})` : ""}`);
}
console.log(`  total ${((Date.now() - started) / 1000).toFixed(1)} s`);
Deno.exit(results.every((r) => r.ok) ? 0 : 1);
