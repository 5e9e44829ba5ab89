// CLI entry of the provider sandbox.
//
//   deno run -A scripts/local/sandbox/main.ts --control-port 54330 \
//     --port google_oauth=54331 --port instagram_graph=54332 … [--fixtures file.json] \
//     [--functions-url http://127.0.0.1:54321/functions/v1]
//
// --functions-url is where fixture webhooks that say {functions_url} (e.g. Unipile's
// new_relation webhook → {functions_url}/unipile-webhook) are delivered; without it those
// webhooks are not registered (a note on stderr says so).
//
// Prints exactly one line `sandbox ready {"control_url":…,"providers":{…}}` when
// every listener is bound (the stack scripts parse it), then one line per
// provider request (method, provider, path, status; never query or body, so no
// secrets). Stops cleanly on SIGINT/SIGTERM.

import { parseArgs } from "node:util";
import { startSandbox } from "./server.ts";
import {
  isProviderName,
  PROVIDER_NAMES,
  type ProviderName,
  type RecordedRequest,
} from "./types.ts";

const USAGE = `usage: main.ts [--hostname 127.0.0.1] [--control-port N]
       [--port <provider>=<N>]... [--fixtures path.json] [--functions-url URL]
       [--max-requests N] [--quiet]
providers: ${PROVIDER_NAMES.join(", ")}
Ports default to 0 (ephemeral); the ready line reports the real ones.`;

function fail(message: string): never {
  console.error(`sandbox: ${message}\n${USAGE}`);
  Deno.exit(2);
}

function parsePort(value: string, what: string): number {
  const n = Number(value);
  if (value === "" || !Number.isInteger(n) || n < 0 || n > 65535) {
    fail(`${what}: invalid port ${JSON.stringify(value)}`);
  }
  return n;
}

// Request lines are batched and written every 50 ms: a synchronous write per
// request would cap throughput under the benchmark.
const encoder = new TextEncoder();
let pending: string[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;

function writeAllSync(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

function flush(): void {
  flushTimer = undefined;
  if (pending.length === 0) return;
  const text = pending.join("");
  pending = [];
  try {
    writeAllSync(text);
  } catch { /* stdout closed: drop log lines rather than crash the sandbox */ }
}

function logRequest(e: RecordedRequest): void {
  const fault = e.fault_id ? ` fault=${e.fault_id}` : "";
  pending.push(`${e.method} ${e.provider} ${e.path} ${e.status} ${e.duration_ms}ms${fault}\n`);
  if (pending.length >= 1000) flush();
  else if (flushTimer === undefined) flushTimer = setTimeout(flush, 50);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        hostname: { type: "string", default: "127.0.0.1" },
        "control-port": { type: "string", default: "0" },
        port: { type: "string", multiple: true, default: [] },
        fixtures: { type: "string" },
        "functions-url": { type: "string" },
        "max-requests": { type: "string" },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return;
  }

  const providerPorts: Partial<Record<ProviderName, number>> = {};
  for (const spec of v.port ?? []) {
    const eq = spec.indexOf("=");
    const name = spec.slice(0, eq);
    if (eq < 0 || !isProviderName(name)) fail(`--port ${spec}: expected <provider>=<port>`);
    providerPorts[name] = parsePort(spec.slice(eq + 1), `--port ${name}`);
  }
  let maxRequests: number | undefined;
  if (v["max-requests"] !== undefined) {
    maxRequests = Number(v["max-requests"]);
    if (!Number.isInteger(maxRequests) || maxRequests < 1) fail("--max-requests must be >= 1");
  }

  const functionsUrl = v["functions-url"];
  if (functionsUrl !== undefined) {
    let ok = false;
    try {
      ok = ["http:", "https:"].includes(new URL(functionsUrl).protocol);
    } catch { /* not a URL */ }
    if (!ok) fail(`--functions-url: expected an http(s) URL, got ${JSON.stringify(functionsUrl)}`);
  }

  let sandbox;
  try {
    sandbox = await startSandbox({
      hostname: v.hostname,
      controlPort: parsePort(v["control-port"]!, "--control-port"),
      providerPorts,
      fixturesPath: v.fixtures,
      functionsUrl,
      maxRequests,
      onRequest: v.quiet ? undefined : logRequest,
    });
  } catch (e) {
    console.error(`sandbox: failed to start: ${(e as Error).message}`);
    Deno.exit(1);
  }

  if (functionsUrl === undefined) {
    console.error("sandbox: no --functions-url: fixture webhooks whose request_url uses {functions_url} are not registered");
  }
  writeAllSync(
    `sandbox ready ${
      JSON.stringify({ control_url: sandbox.controlUrl, providers: sandbox.providers })
    }\n`,
  );

  let stopping = false;
  const stop = async (signal: Deno.Signal) => {
    if (stopping) Deno.exit(130); // second signal: give up waiting
    stopping = true;
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    await sandbox.close();
    flush();
    console.error(`sandbox: stopped (${signal})`);
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void stop(signal));
  }
}

if (import.meta.main) await main();
