// Starts the provider sandbox: one Deno.serve listener per fake provider (each
// on its own origin, so an SDK pointed at that origin sees the real paths) and
// one for the control API. All state is in memory; the fixture file is read
// only at start and on POST /__reset.

import { handleControl } from "./control.ts";
import { type Fault, FaultStore } from "./faults.ts";
import { DEFAULT_FIXTURES_PATH, loadFixtures, type ProviderStates } from "./fixtures.ts";
import {
  jsonResponse,
  paramsToObject,
  readSandboxRequest,
  redactFields,
  redactHeaders,
  sleep,
} from "./http.ts";
import { PROVIDERS } from "./providers/registry.ts";
import { RequestLog } from "./request_log.ts";
import {
  PROVIDER_NAMES,
  type ProviderName,
  type RecordedRequest,
  type SandboxRequest,
} from "./types.ts";

export type { ProviderName, RecordedRequest } from "./types.ts";
export { PROVIDER_NAMES } from "./types.ts";

export interface SandboxOptions {
  /** Interface to bind; default 127.0.0.1. */
  hostname?: string;
  /** Control API port; 0 = ephemeral. */
  controlPort: number;
  /** Port per provider; a missing provider or 0 = ephemeral. */
  providerPorts: Partial<Record<ProviderName, number>>;
  /** Fixture file; default scripts/local/sandbox/fixtures.json. */
  fixturesPath?: string;
  /** Request log capacity (oldest dropped first); default 100000. */
  maxRequests?: number;
  /**
   * The stack's functions URL (…/functions/v1): fixture webhooks whose request_url contains
   * {functions_url} are pointed there; without it they are skipped (see each fake's snapshot).
   */
  functionsUrl?: string;
  /** Called after each provider request is recorded (already redacted), e.g. to log it. */
  onRequest?: (entry: RecordedRequest) => void;
}

export interface Sandbox {
  /** Origin of the control API, e.g. http://127.0.0.1:54330 */
  controlUrl: string;
  /** Origin of each provider fake, e.g. { google_oauth: "http://127.0.0.1:54331", … } */
  providers: Record<ProviderName, string>;
  /** Stops every listener (pending delayed faults are cut short). Idempotent. */
  close(): Promise<void>;
}

function originOf(hostname: string, port: number): string {
  // A wildcard bind is reachable on loopback; report an address clients can dial.
  let host = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  if (host.includes(":")) host = `[${host}]`;
  return `http://${host}:${port}`;
}

/** What a struck request gets: the fault's answer, or a connection cut after the headers. */
function faultResponse(fault: Fault, faultBody: (status: number) => unknown): Response {
  if (fault.reset) {
    // Deno.serve cannot send a TCP RST; a body stream that errors makes it drop the connection
    // mid-response, which a client sees as a reset while reading the body.
    const body = new ReadableStream({ pull: (c) => c.error(new Error("sandbox fault: connection reset")) });
    return new Response(body, { status: fault.status ?? 200, headers: { "content-type": "application/json" } });
  }
  const headers: Record<string, string> = {};
  if (fault.retry_after !== undefined) headers["retry-after"] = String(fault.retry_after);
  const status = fault.status!;
  return jsonResponse(status, fault.body ?? faultBody(status), headers);
}

export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const fixturesPath = opts.fixturesPath ?? DEFAULT_FIXTURES_PATH;
  const loadContext = { functionsUrl: opts.functionsUrl?.replace(/\/+$/, "") || null };
  let states: ProviderStates = await loadFixtures(fixturesPath, loadContext);
  const log = new RequestLog(opts.maxRequests ?? 100_000);
  const faults = new FaultStore();
  const shutdown = new AbortController();
  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  const providers = {} as Record<ProviderName, string>;

  async function handleProvider(
    name: ProviderName,
    origin: string,
    req: Request,
  ): Promise<Response> {
    const started = performance.now();
    const time = new Date().toISOString();
    const sreq: SandboxRequest = await readSandboxRequest(req);
    const module = PROVIDERS[name];
    const fault = faults.take(name, sreq.method, sreq.path);
    let res: Response;
    if (fault !== undefined && !fault.after) {
      // Delays only await a timer, so other requests keep being served meanwhile.
      // Only shutdown cuts it short: touching req.signal makes Deno print a
      // legacy-abort warning on stdout, and a client that gave up costs one timer.
      if (fault.delay_ms) await sleep(fault.delay_ms, shutdown.signal);
      res = faultResponse(fault, module.faultBody);
    } else {
      try {
        res = await module.handle(sreq, { state: states[name], origin, signal: shutdown.signal });
      } catch (e) {
        res = jsonResponse(500, {
          error: "sandbox_error",
          provider: name,
          message: (e as Error).message,
        });
      }
      if (fault !== undefined) {
        // The effect stands; the caller gets the fault instead of the answer.
        await res.body?.cancel();
        if (fault.delay_ms) await sleep(fault.delay_ms, shutdown.signal);
        res = faultResponse(fault, module.faultBody);
      }
    }
    const entry: RecordedRequest = {
      id: log.nextId(),
      provider: name,
      method: sreq.method,
      path: sreq.path,
      query: redactFields(paramsToObject(sreq.query)),
      headers: redactHeaders(sreq.headers),
      body: redactFields(sreq.body),
      status: fault?.reset ? 0 : res.status,
      ...(fault !== undefined && { fault_id: fault.id }),
      ...(fault?.after && { fault_after: true }),
      time,
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
    };
    log.add(entry);
    if (opts.onRequest) {
      try {
        opts.onRequest(entry);
      } catch { /* a logging failure must not fail the request */ }
    }
    return res;
  }

  const controlDeps = {
    log,
    faults,
    snapshot: (name: ProviderName) => PROVIDERS[name].snapshot(states[name]),
    seed: (name: ProviderName, input: unknown) => {
      const seed = PROVIDERS[name].seed;
      if (seed === undefined) throw new Error(`The ${name} fake has no seedable state.`);
      return seed(states[name], input, { signal: shutdown.signal });
    },
    reset: async () => {
      const fresh = await loadFixtures(fixturesPath, loadContext); // throws before touching anything
      for (const name of PROVIDER_NAMES) PROVIDERS[name].dispose?.(states[name]);
      states = fresh;
      log.clear();
      faults.clear();
    },
  };

  function listen(
    port: number,
    handler: (req: Request, origin: string) => Response | Promise<Response>,
  ): string {
    let origin = "";
    const server = Deno.serve({
      hostname,
      port,
      onListen: () => {}, // keep stdout clean: main.ts prints the single ready line
    }, (req) => handler(req, origin));
    servers.push(server);
    origin = originOf(hostname, server.addr.port);
    return origin;
  }

  const close = async () => {
    if (!shutdown.signal.aborted) shutdown.abort();
    await Promise.all(servers.splice(0).map((s) => s.shutdown()));
  };

  let controlUrl: string;
  try {
    controlUrl = listen(opts.controlPort, (req) => handleControl(req, controlDeps));
    for (const name of PROVIDER_NAMES) {
      providers[name] = listen(
        opts.providerPorts[name] ?? 0,
        (req, origin) => handleProvider(name, origin, req),
      );
    }
  } catch (e) {
    await close(); // e.g. a port already in use: release the ones already bound
    throw e;
  }

  return { controlUrl, providers, close };
}
