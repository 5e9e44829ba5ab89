/**
 * CLI for the local Edge Functions server.
 *
 *   deno run -A scripts/local/functions-server/main.ts \
 *     --port 54321 \
 *     --root supabase/functions:supabase/config.toml \
 *     --root tests/fixtures/supabase/functions:tests/fixtures/supabase/config.toml \
 *     --env-json .duework/functions-env.json
 *
 * Flags:
 *   --port N            listen port (default 54321; 0 = ephemeral)
 *   --hostname H        listen interface (default 127.0.0.1)
 *   --root DIR[:TOML]   functions dir and its config.toml; repeatable, first root wins on name
 *                       collisions (default supabase/functions:supabase/config.toml; TOML defaults
 *                       to DIR/../config.toml)
 *   --env-json PATH     JSON file: { "jwt_secret": "…", "env": { "SUPABASE_URL": "…", … } }
 *   --project-root DIR  folder with the default deno.json (default: nearest ancestor of the first
 *                       root that has a deno.json)
 *   --pass-full-path    give functions `/functions/v1/<name>/…` instead of `/<name>/…`
 *   --wall-clock-ms N   a worker's wall-clock limit, background tasks included (default: env
 *                       DUEWORK_FUNCTION_WALL_CLOCK_MS, else 150000 like a free hosted project;
 *                       paid projects have 400000; 0 = none)
 *   --workers-file PATH keep `{ "<name>": [pid, …] }` of the live function workers in PATH
 *   --quiet             no per-request log lines
 *
 * stdout gets exactly one line once listening:
 *   functions ready {"url":"http://127.0.0.1:54321","functions_url":"http://127.0.0.1:54321/functions/v1"}
 * Everything else (request lines `POST /functions/v1/x 200 12ms`, function output, warnings)
 * goes to stderr. SIGINT/SIGTERM stop every function process, then exit 0.
 */
import * as path from "node:path";
import { parseArgs } from "node:util";
import { type FunctionsRoot, startFunctionsServer } from "./server.ts";
import { DEFAULT_WALL_CLOCK_MS } from "./worker-pool.ts";

/** Env default of --wall-clock-ms, so `DUEWORK_FUNCTION_WALL_CLOCK_MS=400000 npm start` works. */
export const WALL_CLOCK_ENV = "DUEWORK_FUNCTION_WALL_CLOCK_MS";

export function parseWallClockMs(raw: string | undefined, source: string): number {
  if (raw === undefined || raw === "") return DEFAULT_WALL_CLOCK_MS;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`${source} must be a whole number of milliseconds (0 = no limit), got ${raw}`);
  return ms;
}

export interface EnvJson {
  jwt_secret: string;
  env: Record<string, string>;
}

export function parseRootSpec(spec: string, cwd: string): FunctionsRoot {
  const idx = spec.lastIndexOf(":");
  const functionsDir = path.resolve(cwd, idx > 0 ? spec.slice(0, idx) : spec);
  const configToml = idx > 0 ? path.resolve(cwd, spec.slice(idx + 1)) : path.join(path.dirname(functionsDir), "config.toml");
  return { functionsDir, configToml };
}

export function findProjectRoot(start: string): string | null {
  let dir = path.resolve(start);
  for (;;) {
    for (const f of ["deno.json", "deno.jsonc"]) {
      try {
        if (Deno.statSync(path.join(dir, f)).isFile) return dir;
      } catch { /* keep looking */ }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

export function parseEnvJson(text: string): EnvJson {
  const raw = JSON.parse(text) as Record<string, unknown>;
  const jwt = raw.jwt_secret ?? raw.jwtSecret;
  if (typeof jwt !== "string" || !jwt) throw new Error("env json: jwt_secret (string) is required");
  const env = raw.env ?? {};
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw new Error("env json: env must be an object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== "string") throw new Error(`env json: env.${k} must be a string`);
    out[k] = v;
  }
  return { jwt_secret: jwt, env: out };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "54321" },
      hostname: { type: "string", default: "127.0.0.1" },
      root: { type: "string", multiple: true },
      "env-json": { type: "string" },
      "project-root": { type: "string" },
      "pass-full-path": { type: "boolean", default: false },
      "wall-clock-ms": { type: "string" },
      "workers-file": { type: "string" },
      quiet: { type: "boolean", default: false },
    },
    strict: true,
  });
  const cwd = Deno.cwd();
  const roots = (values.root?.length ? values.root : ["supabase/functions:supabase/config.toml"]).map((r) =>
    parseRootSpec(r, cwd)
  );
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}`);

  let envJson: EnvJson = { jwt_secret: "", env: {} };
  if (values["env-json"]) envJson = parseEnvJson(await Deno.readTextFile(values["env-json"]));
  else throw new Error("--env-json is required (jwt_secret and the functions' env)");

  const projectRoot = values["project-root"]
    ? path.resolve(cwd, values["project-root"])
    : findProjectRoot(roots[0].functionsDir) ?? cwd;

  const wallClockMs = values["wall-clock-ms"] !== undefined
    ? parseWallClockMs(values["wall-clock-ms"], "--wall-clock-ms")
    : parseWallClockMs(Deno.env.get(WALL_CLOCK_ENV), WALL_CLOCK_ENV);

  const log = (line: string) => console.error(line);
  const server = await startFunctionsServer({
    hostname: values.hostname,
    port,
    roots,
    env: envJson.env,
    jwtSecret: envJson.jwt_secret,
    projectRoot,
    log,
    logRequests: !values.quiet,
    passFullPath: values["pass-full-path"],
    wallClockMs,
    workersFile: values["workers-file"] ? path.resolve(cwd, values["workers-file"]) : undefined,
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`functions server: ${signal}, stopping`);
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));

  console.log(`functions ready ${JSON.stringify({ url: server.url, functions_url: server.functionsUrl })}`);
  const names = server.functionNames();
  log(`serving ${names.length} function(s) at ${server.functionsUrl}/<name>: ${names.join(", ")}`);
  log(`worker wall-clock limit: ${wallClockMs ? `${wallClockMs} ms` : "none"}`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`functions server: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
