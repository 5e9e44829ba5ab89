/**
 * Runs inside each function's own Deno subprocess (the local stand-in for an edge-runtime user
 * worker). Usage: `deno run -A [--config …] worker-bootstrap.ts <absolute entrypoint path>
 * [<wall-clock ms>]` (the limit is an argument, not an env var, so the function's environment
 * stays exactly what it is on hosted Supabase).
 *
 * 1. Replaces `Deno.serve` so the function's server binds 127.0.0.1 on an ephemeral port whatever
 *    options it passed (`Deno.serve(handler)`, `Deno.serve(opts, handler)`,
 *    `Deno.serve({ handler, … })`); its own `onError` and `signal` are kept.
 * 2. Defines `globalThis.EdgeRuntime = { waitUntil }` and the worker's lifetime (wall clock,
 *    retire, parent death, SIGTERM): see worker-runtime.ts.
 * 3. Dynamic-imports the function's entrypoint (a module with `export default { fetch }` and no
 *    `Deno.serve` call is served too, like `deno serve`).
 * 4. Reports the bound port to the parent as one stdout line: `<READY_MARKER>{"port":1234}`.
 */
import { pathToFileURL } from "node:url";
import { createWorkerRuntime, type EdgeRuntimeGlobal } from "./worker-runtime.ts";

export const READY_MARKER = "__DUEWORK_FUNCTION_WORKER_READY__ ";

type ServeHandler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;

declare global {
  var EdgeRuntime: EdgeRuntimeGlobal;
}

const TERMINATION_GRACE_MS = Number(Deno.env.get("DUEWORK_WORKER_GRACE_MS") ?? "") || 1500;

async function main(): Promise<void> {
  const entry = Deno.args[0];
  if (!entry) {
    console.error("worker-bootstrap: missing entrypoint argument");
    Deno.exit(2);
  }

  const wallClockMs = Number(Deno.args[1] ?? "0");
  if (!Number.isInteger(wallClockMs) || wallClockMs < 0) {
    console.error(`worker-bootstrap: invalid wall-clock limit ${Deno.args[1]}`);
    Deno.exit(2);
  }
  const runtime = createWorkerRuntime({ wallClockMs, terminationGraceMs: TERMINATION_GRACE_MS });
  globalThis.EdgeRuntime = runtime.edgeRuntime;
  // Before the function loads: its limit counts from the worker's start, like edge-runtime's.
  runtime.start();

  let reported = false;
  const report = (port: number) => {
    if (reported) return;
    reported = true;
    Deno.stdout.writeSync(new TextEncoder().encode(`${READY_MARKER}${JSON.stringify({ port })}\n`));
  };

  const originalServe = Deno.serve.bind(Deno) as (
    options: Deno.ServeTcpOptions,
    handler: ServeHandler,
  ) => Deno.HttpServer<Deno.NetAddr>;
  let serveCalls = 0;

  const patchedServe = (a?: unknown, b?: unknown): Deno.HttpServer<Deno.NetAddr> => {
    let options: Record<string, unknown> = {};
    let handler: unknown;
    if (typeof a === "function") handler = a;
    else if (a && typeof a === "object") {
      options = a as Record<string, unknown>;
      handler = typeof b === "function" ? b : (options.handler ?? options.fetch);
    }
    if (typeof handler !== "function") throw new TypeError("Deno.serve: a handler function is required");
    serveCalls++;
    if (serveCalls > 1) {
      console.error("worker-bootstrap: warning: Deno.serve called more than once; only the first server receives requests");
    }
    const userOnListen = options.onListen as ((addr: Deno.NetAddr) => void) | undefined;
    return originalServe(
      {
        hostname: "127.0.0.1",
        port: 0,
        signal: options.signal as AbortSignal | undefined,
        onError: options.onError as Deno.ServeTcpOptions["onError"],
        onListen: (addr) => {
          if (serveCalls === 1) report(addr.port);
          try {
            userOnListen?.(addr);
          } catch (err) {
            console.error("onListen threw:", err);
          }
        },
      },
      handler as ServeHandler,
    );
  };
  (Deno as unknown as { serve: unknown }).serve = patchedServe;

  const mod = await import(pathToFileURL(entry).href) as { default?: { fetch?: unknown } };
  if (serveCalls === 0) {
    const fetchFn = mod.default && typeof mod.default.fetch === "function" ? mod.default.fetch : null;
    if (fetchFn) {
      patchedServe((req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
        (fetchFn as ServeHandler).call(mod.default, req, info)
      );
    } else {
      console.error(
        `worker-bootstrap: ${entry} did not call Deno.serve() (nor export default { fetch }) while loading`,
      );
      Deno.exit(1);
    }
  }
}

if (import.meta.main) {
  await main();
}
