// CLI for the local pg_net worker (LOCAL STACK ONLY; see worker.ts).
//   deno run -A scripts/local/net-worker/main.ts --db-url postgres://… [--database <name>]
// Prints exactly one `net-worker ready {"application_name":"pg_net 0.20.4 worker"}` line once
// it is listening, one line per request (method, URL without query string, status or error,
// duration; never headers or bodies), and on SIGINT/SIGTERM finishes the current pass (as
// pg_net's worker does on SIGTERM) and exits. --database overrides pg_net.database_name.
import { parseArgs } from "node:util";
import { APPLICATION_NAME, startNetWorker } from "./worker.ts";

const USAGE = "usage: main.ts --db-url <postgres url> [--database <name>]";

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
        "database": { type: "string" },
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

const worker = await startNetWorker({ dbUrl, database: values.database, log: (line) => console.log(line) })
  .catch((e) => fail((e as Error).message));
console.log(`net-worker ready ${JSON.stringify({ application_name: APPLICATION_NAME })}`);

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`net-worker stopping (${signal}): finishing the current pass`);
  await worker.close();
  console.log("net-worker stopped");
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
