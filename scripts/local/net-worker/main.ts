// CLI for the local pg_net worker (LOCAL STACK ONLY; see worker.ts).
//   deno run -A scripts/local/net-worker/main.ts --db-url postgres://… [--concurrency N]
// Prints exactly one `net-worker ready {"application_name":"pg_net 0.20.4 worker"}` line once
// it is listening, one line per request (method, URL without query string, status or error,
// duration; never headers or bodies), and stops cleanly on SIGINT/SIGTERM after finishing the
// requests in flight.
import { parseArgs } from "node:util";
import { APPLICATION_NAME, startNetWorker } from "./worker.ts";

const USAGE = "usage: main.ts --db-url <postgres url> [--concurrency <n>] [--poll-ms <ms>]";

function fail(msg: string): never {
  console.error(`net-worker: ${msg}\n${USAGE}`);
  Deno.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        "db-url": { type: "string" },
        "concurrency": { type: "string" },
        "poll-ms": { type: "string" },
        "help": { type: "boolean", short: "h" },
      },
      strict: true,
    });
  } catch (e) {
    fail((e as Error).message);
  }
})();

if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const dbUrl = values["db-url"] ?? fail("--db-url is required");
const positiveInt = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
};
const concurrency = positiveInt("--concurrency", values.concurrency);
const pollMs = positiveInt("--poll-ms", values["poll-ms"]);

const worker = await startNetWorker({ dbUrl, concurrency, pollMs, log: (line) => console.log(line) })
  .catch((e) => fail((e as Error).message));
console.log(`net-worker ready ${JSON.stringify({ application_name: APPLICATION_NAME })}`);

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`net-worker stopping (${signal}): finishing requests in flight`);
  await worker.close();
  console.log("net-worker stopped");
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
