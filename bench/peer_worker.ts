// Child process for one measured peer run (graphile-worker, pg-boss, HTTP ceiling, W2's HTTP ceiling), so its CPU
// time is its own. Runs under Node via tsx (see README "Benchmark"). Protocol, one JSON object
// per line; the run spec comes in BENCH_PEER_SPEC:
//   child -> {"type":"ready"}                   job system started, pools warm, LISTEN up, idle
//   parent -> {"type":"go"}                     child enqueues the backlog (or starts its callers)
//   child -> {"type":"started","t0",…}          t0 = wall clock when the backlog became visible
//   child -> {"type":"drained","tEnd",…}        tEnd = when the N-th distinct row's UPDATE returned
//   parent -> {"type":"stop"}                   child shuts the job system down gracefully
//   child -> {"type":"stopped","stats"}         and exits
import { createInterface } from "node:readline";
import process from "node:process";
import { createDrainTracker, type PeerHandle, type PeerSpec } from "./peer_support.ts";
import * as graphileWorker from "./contenders/graphile_worker.ts";
import * as pgBoss from "./contenders/pg_boss.ts";
import * as httpCeiling from "./contenders/http_ceiling.ts";
import * as remindersCeiling from "./contenders/reminders_ceiling.ts";

const MODULES = {
  "graphile-worker": graphileWorker,
  "pg-boss": pgBoss,
  "http-ceiling": httpCeiling,
  "reminders-ceiling": remindersCeiling,
};

function send(message: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.BENCH_PEER_SPEC ?? "") as PeerSpec;
  const tracker = createDrainTracker(spec.n);
  let goResolve: () => void = () => {};
  let stopResolve: () => void = () => {};
  const goRequested = new Promise<void>((r) => (goResolve = r));
  const stopRequested = new Promise<void>((r) => (stopResolve = r));
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const m = JSON.parse(line);
    if (m.type === "go") goResolve();
    if (m.type === "stop") stopResolve();
  });
  rl.on("close", () => stopResolve());

  const handle: PeerHandle = await MODULES[spec.contender].prepare(spec, tracker);
  send({ type: "ready" });
  await goRequested;
  const started = await handle.start();
  send({ type: "started", ...started });
  const tEnd = await Promise.race([tracker.drained, stopRequested.then(() => null)]);
  send({ type: "drained", tEnd, refreshed: tracker.count });
  await stopRequested;
  const stats = await handle.stop();
  send({ type: "stopped", stats });
  rl.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    send({ type: "error", message: (err as Error).stack ?? String(err) });
    process.exit(1);
  },
);
