/**
 * Runs inside each function's own Deno subprocess (the local stand-in for an edge-runtime user
 * worker). Usage: `deno run -A [--config …] worker-bootstrap.ts <absolute entrypoint path>`.
 *
 * 1. Replaces `Deno.serve` so the function's server binds 127.0.0.1 on an ephemeral port whatever
 *    options it passed (`Deno.serve(handler)`, `Deno.serve(opts, handler)`,
 *    `Deno.serve({ handler, … })`); its own `onError` and `signal` are kept.
 * 2. Defines `globalThis.EdgeRuntime = { waitUntil }`.
 * 3. Dynamic-imports the function's entrypoint (a module with `export default { fetch }` and no
 *    `Deno.serve` call is served too, like `deno serve`).
 * 4. Reports the bound port to the parent as one stdout line: `<READY_MARKER>{"port":1234}`.
 *
 * The worker exits when its stdin reaches EOF (the parent died), and on SIGTERM it dispatches
 * `beforeunload` and gives pending `waitUntil` promises a short grace period.
 */
import { pathToFileURL } from "node:url";

export const READY_MARKER = "__DUEWORK_FUNCTION_WORKER_READY__ ";

type ServeHandler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;

interface EdgeRuntimeGlobal {
  waitUntil<T>(promise: Promise<T> | T): Promise<T>;
}

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

  const pending = new Set<Promise<unknown>>();
  globalThis.EdgeRuntime = {
    waitUntil<T>(promise: Promise<T> | T): Promise<T> {
      const p = Promise.resolve(promise);
      const tracked = p.then(
        () => undefined,
        (err) => console.error("EdgeRuntime.waitUntil: background task failed:", err),
      );
      pending.add(tracked);
      tracked.finally(() => pending.delete(tracked));
      return p;
    },
  };

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

  // Parent death → stdin EOF → exit (no orphaned workers).
  (async () => {
    try {
      const buf = new Uint8Array(1024);
      while ((await Deno.stdin.read(buf)) !== null) { /* ignore input */ }
    } catch { /* stdin closed */ }
    Deno.exit(0);
  })();

  Deno.addSignalListener("SIGTERM", async () => {
    try {
      dispatchEvent(new CustomEvent("beforeunload", { detail: { reason: "termination" } }));
    } catch { /* ignore */ }
    if (pending.size > 0) {
      await Promise.race([
        Promise.allSettled([...pending]),
        new Promise((r) => setTimeout(r, TERMINATION_GRACE_MS)),
      ]);
    }
    Deno.exit(0);
  });

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
