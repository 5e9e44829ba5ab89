/**
 * Local Edge Functions server: the stand-in for Supabase's edge-runtime main service (plus the
 * Kong route in front of it), for machines without Docker.
 *
 *   GET  /_internal/health                 → 200 { ok: true, message: "ok" }
 *   ANY  /functions/v1/<name>[/<rest>]     → the function <name>
 *   anything else                          → 404 { code: "NOT_FOUND", … }
 *
 * Each function runs in its own Deno subprocess (see worker-pool.ts / worker-bootstrap.ts), with
 * hosted Supabase's wall-clock limit (`wallClockMs`). Like Kong's `strip_path` route on hosted and
 * local Supabase, the function sees the path without the `/functions/v1` prefix
 * (`/<name>/<rest>?<query>`), unless `passFullPath` is set.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDotenv } from "./dotenv.ts";
import { FunctionRouter, type FunctionsRoot, matchRoute, type ResolvedFunction } from "./router.ts";
import { createJwtVerifier, jwtFailureResponse } from "./verify-jwt.ts";
import { BootError, type FunctionWorker, PoolClosedError, WorkerPool } from "./worker-pool.ts";
import { workersFile } from "./workers-file.ts";

export type { FunctionsRoot } from "./router.ts";

export interface FunctionsServerOptions {
  /** Interface to listen on (default 127.0.0.1). */
  hostname?: string;
  /** Port to listen on; 0 = ephemeral. */
  port: number;
  /** Function roots in priority order (first root wins on a name collision). */
  roots: FunctionsRoot[];
  /**
   * Environment given to every function: SUPABASE_URL, SUPABASE_DB_URL, SUPABASE_ANON_KEY,
   * SUPABASE_SERVICE_ROLE_KEY, SUPABASE_SECRET_KEYS, SUPABASE_PUBLISHABLE_KEYS, SUPABASE_JWKS
   * (optional), plus any other variables (e.g. provider base URLs). Values override the root's
   * `.env` file. Never logged.
   */
  env: Record<string, string>;
  /** Project JWT secret (HS256) used for verify_jwt. */
  jwtSecret: string;
  /** Project root (folder with deno.json / node_modules); default deno config + child cwd. */
  projectRoot: string;
  /** Log sink (default: console.error). One line per call. */
  log?: (line: string) => void;
  /** Log one line per request (default true). */
  logRequests?: boolean;
  /** Pass `/functions/v1/<name>/…` to the function instead of `/<name>/…` (default false). */
  passFullPath?: boolean;
  /** Extra variable names copied from the server's own environment into each child. */
  passthroughEnv?: string[];
  /** Worker boot timeout (default 30 s). */
  bootTimeoutMs?: number;
  /** Deno executable for the children (default: Deno.execPath()). */
  denoPath?: string;
  /**
   * Wall-clock limit of a worker, background tasks included (default 150 000 ms, a free hosted
   * project's; paid projects have 400 000; 0 = none). See worker-pool.ts.
   */
  wallClockMs?: number;
  /** If set, `{ name: pid[] }` of the live workers is kept in this file (see workers-file.ts). */
  workersFile?: string;
}

export interface FunctionsServer {
  /** Origin, e.g. http://127.0.0.1:54321 */
  url: string;
  /** origin + '/functions/v1' */
  functionsUrl: string;
  /** Stops listening and kills every function process (no orphans). */
  close(): Promise<void>;
  /** Pid of the worker new requests of each function go to (tests kill them to simulate crashes). */
  functionPids(): Record<string, number>;
  /** Pids of every live worker process by function name (booting and retiring ones included). */
  functionWorkerPids(): Record<string, number[]>;
  /** Names of the functions currently discoverable across roots. */
  functionNames(): string[];
}

/** OS variables a Deno child needs to run (module cache, temp dir, npm registry). */
const DEFAULT_PASSTHROUGH = [
  "PATH",
  "HOME",
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "TMPDIR",
  "NPM_CONFIG_REGISTRY",
  "DENO_CERT",
  "DENO_TLS_CA_STORE",
];

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

const BOOTSTRAP_PATH = fileURLToPath(new URL("./worker-bootstrap.ts", import.meta.url));

function jsonError(status: number, code: string, message: string): Response {
  return Response.json({ code, message }, { status });
}

export async function startFunctionsServer(opts: FunctionsServerOptions): Promise<FunctionsServer> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const logRequests = opts.logRequests ?? true;
  const projectRoot = path.resolve(opts.projectRoot);
  const roots = opts.roots.map((r) => ({
    functionsDir: path.resolve(r.functionsDir),
    configToml: path.resolve(r.configToml),
  }));
  const router = new FunctionRouter(roots, projectRoot, log);
  const verifier = createJwtVerifier({ jwtSecret: opts.jwtSecret, jwks: opts.env.SUPABASE_JWKS });
  let onPoolChange = () => {};
  const pool = new WorkerPool({
    bootstrapPath: BOOTSTRAP_PATH,
    denoPath: opts.denoPath,
    log,
    bootTimeoutMs: opts.bootTimeoutMs,
    wallClockMs: opts.wallClockMs,
    onChange: () => onPoolChange(),
  });
  const pidsFile = opts.workersFile ? workersFile(opts.workersFile, () => pool.livePids(), log) : null;
  if (pidsFile) {
    onPoolChange = () => pidsFile.update();
    pidsFile.update(); // `{}` now, so a file left by a killed predecessor is not read as ours
  }
  const httpClient = Deno.createHttpClient({});
  const passthrough = [...DEFAULT_PASSTHROUGH, ...(opts.passthroughEnv ?? [])];
  let closing = false;

  const warned = new Set<string>();
  const warnOnce = (line: string) => {
    if (warned.has(line)) return;
    warned.add(line);
    log(line);
  };

  // Report collisions and TOML problems once at startup.
  router.listFunctions();

  function childEnv(fn: ResolvedFunction): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of passthrough) {
      const v = Deno.env.get(name);
      if (v !== undefined) env[name] = v;
    }
    let fileEnv: Record<string, string> = {};
    try {
      fileEnv = parseDotenv(
        Deno.readTextFileSync(fn.envFile),
        (w) => warnOnce(`warning: ${fn.envFile}: ${w}`),
      );
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) log(`warning: cannot read ${fn.envFile}: ${(e as Error).message}`);
    }
    for (const [k, v] of Object.entries(fileEnv)) {
      if (k.startsWith("SUPABASE_")) {
        warnOnce(`warning: ${fn.envFile}: skipping ${k}: env names cannot start with SUPABASE_`);
        continue;
      }
      env[k] = v;
    }
    for (const [k, v] of Object.entries(opts.env)) env[k] = v;
    return env;
  }

  async function proxy(
    req: Request,
    url: URL,
    functionPath: string,
    worker: FunctionWorker,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> {
    const headers = new Headers();
    for (const [k, v] of req.headers) if (!HOP_BY_HOP.has(k)) headers.append(k, v);
    if (!headers.has("x-forwarded-host")) headers.set("x-forwarded-host", url.host);
    if (!headers.has("x-forwarded-proto")) headers.set("x-forwarded-proto", url.protocol.replace(":", ""));
    if (!headers.has("x-forwarded-for")) headers.set("x-forwarded-for", info.remoteAddr.hostname);
    const target = `http://127.0.0.1:${worker.port}${opts.passFullPath ? url.pathname : functionPath}${url.search}`;
    const hasBody = req.body !== null && req.method !== "GET" && req.method !== "HEAD";
    // Cancel the upstream request if the client goes away. (`req.signal` is not used: under
    // Deno.serve's legacy behaviour it also aborts after a successful response, which would cut
    // a streamed body.)
    const abort = new AbortController();
    info.completed.catch(() => abort.abort());
    let upstream: Response;
    try {
      // `duplex: "half"` is required by the fetch spec for streaming request bodies.
      const init: RequestInit & { client: Deno.HttpClient; duplex: "half" } = {
        method: req.method,
        headers,
        body: hasBody ? req.body : undefined,
        redirect: "manual",
        signal: abort.signal,
        client: httpClient,
        duplex: "half",
      };
      upstream = await fetch(target, init);
    } catch (e) {
      if (abort.signal.aborted) return jsonError(499, "CLIENT_CLOSED_REQUEST", "Client closed the request");
      const died = await pool.settleExit(worker);
      if (worker.limitReached) {
        // edge-runtime's answer when a worker hits a resource limit mid-request.
        return jsonError(546, "WORKER_LIMIT", "Function reached its wall-clock limit (please check logs)");
      }
      if (died || worker.exited) {
        return jsonError(502, "WORKER_ERROR", "Function exited due to an error (please check logs)");
      }
      log(`proxy error for ${worker.name}: ${(e as Error).message}`);
      return jsonError(502, "WORKER_ERROR", "Request to the function failed (please check logs)");
    }
    const resHeaders = new Headers();
    for (const [k, v] of upstream.headers) if (!HOP_BY_HOP.has(k)) resHeaders.append(k, v);
    return new Response(upstream.body, {
      status: upstream.status,
      statusText: upstream.statusText,
      headers: resHeaders,
    });
  }

  async function handle(req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> {
    const url = new URL(req.url);
    const route = matchRoute(url.pathname);
    if (route.kind === "health") return Response.json({ ok: true, message: "ok" });
    if (route.kind === "not_found") return jsonError(404, "NOT_FOUND", "Not found");

    const fn = router.resolve(route.name);
    if (!fn) return jsonError(404, "NOT_FOUND", "Requested function was not found");
    if (closing) return jsonError(503, "SHUTTING_DOWN", "Functions server is shutting down");

    if (fn.verifyJwt && req.method !== "OPTIONS") {
      const check = await verifier.verifyRequest(req);
      if (!check.ok) {
        if (check.detail) log(`verify_jwt rejected ${fn.name}: ${check.code} (${check.detail})`);
        return jwtFailureResponse(check);
      }
    }

    let worker: FunctionWorker;
    try {
      const lease = await pool.acquire(fn.name, () => ({
        name: fn.name,
        entrypoint: fn.entrypoint,
        denoConfig: fn.denoConfig,
        importMap: fn.importMap,
        env: childEnv(fn),
        cwd: projectRoot,
      }));
      worker = lease.worker;
      // The request counts as in flight on its worker until the response is fully sent (a
      // streamed body included), so a retiring worker is not told to exit under it.
      info.completed.then(lease.release, lease.release);
    } catch (e) {
      if (e instanceof BootError) {
        return jsonError(500, "BOOT_ERROR", "Worker failed to boot (please check logs)");
      }
      if (e instanceof PoolClosedError) {
        return jsonError(503, "SHUTTING_DOWN", "Functions server is shutting down");
      }
      log(`internal error starting ${fn.name}: ${(e as Error).message}`);
      return jsonError(500, "INTERNAL_SERVER_ERROR", "Request failed due to an internal server error");
    }
    return await proxy(req, url, route.functionPath, worker, info);
  }

  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    {
      hostname: opts.hostname ?? "127.0.0.1",
      port: opts.port,
      onListen: (addr) => listening.resolve(addr),
      onError: (e) => {
        log(`internal error: ${(e as Error)?.message ?? e}`);
        return jsonError(500, "INTERNAL_SERVER_ERROR", "Request failed due to an internal server error");
      },
    },
    async (req, info) => {
      const t0 = performance.now();
      let res: Response;
      try {
        res = await handle(req, info);
      } catch (e) {
        log(`internal error: ${(e as Error)?.message ?? e}`);
        res = jsonError(500, "INTERNAL_SERVER_ERROR", "Request failed due to an internal server error");
      }
      if (logRequests) {
        log(`${req.method} ${new URL(req.url).pathname} ${res.status} ${Math.round(performance.now() - t0)}ms`);
      }
      return res;
    },
  );
  const addr = await listening.promise;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const origin = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${addr.port}`;

  let closePromise: Promise<void> | null = null;
  return {
    url: origin,
    functionsUrl: `${origin}/functions/v1`,
    functionPids: () => pool.pids(),
    functionWorkerPids: () => pool.livePids(),
    functionNames: () => Object.keys(router.listFunctions()),
    close() {
      closePromise ??= (async () => {
        closing = true;
        await pool.close(); // in-flight proxied requests end (502) once their worker is gone
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          server.shutdown(),
          new Promise((r) => (timer = setTimeout(r, 3000))),
        ]);
        clearTimeout(timer);
        httpClient.close();
        pidsFile?.remove();
      })();
      return closePromise;
    },
  };
}
