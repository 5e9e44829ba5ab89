// `npm run bench`: W1 "token refresh drain" for Duework and its peers on the bench stack, W2
// "booking reminders" (bench/w2_run.ts), then the scaling section (bench/scaling.ts), and with
// `--workloads idle` the scheduler's idle cost (bench/idle.ts, last: it replaces the jobs).
// Writes bench/RESULTS.md and bench/results.json (an idle-only run: its section and entry only);
// exits non-zero if any run failed a check. See README.md "Benchmark" and bench/config.ts.
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { type BenchConfig, parseConfig, runPlan } from "./config.ts";
import { startBenchStack, type BenchStack } from "./stack.ts";
import { sandboxClient } from "./sandbox.ts";
import { DueworkContender } from "./contenders/duework.ts";
import { killLivePeer, runPeer } from "./peer_run.ts";
import type { RunRecord } from "./record.ts";
import { machineInfo } from "./machine.ts";
import { renderResults } from "./report.ts";
import { runW2 } from "./w2_run.ts";
import type { W2Results } from "./w2.ts";
import { runIdle } from "./idle.ts";
import { printIdle } from "./idle_report.ts";
import { previousIdle, withMeasurement, writeIdleOnly } from "./idle_results.ts";

let cfg: BenchConfig;
try {
  cfg = parseConfig(Deno.args);
} catch (e) {
  console.error((e as Error).message);
  Deno.exit(2);
}

const benchStarted = new Date();
const plan = runPlan(cfg);
if (cfg.workloads.includes("w1")) console.log(
  `W1 token-refresh drain: N = ${cfg.n}, ${plan.length} runs (${cfg.contenders.join(", ")}), ` +
    `cells ${cfg.cells.map((c) => `${c.latencyMs} ms C=${c.c}`).join(", ")} x ${cfg.reps}` +
    (cfg.zeroCells.length ? `, plus ${cfg.zeroCells.map((c) => `${c.latencyMs} ms C=${c.c}`).join(", ")} x 1` : "") +
    `; peers run under ${cfg.peerRuntime}`,
);

const idleOnly = cfg.workloads.every((w) => w === "idle");
if (cfg.workloads.includes("idle")) {
  console.log(`idle: the scheduler's idle cost with 30 jobs, a ${cfg.idle.minutes} min window` +
    (cfg.idle.baselineMinutes ? ` after a ${cfg.idle.baselineMinutes} min baseline` : "") + `, label "${cfg.idle.label}"`);
}

const { stack, ready } = await startBenchStack();
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, async () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: stopping the bench stack`);
    killLivePeer();
    await stack.stop();
    Deno.exit(130);
  });
}

let exitCode = 0;
try {
  const t = Date.now();
  let bench: BenchStack;
  try {
    bench = await ready;
  } catch (e) {
    throw new Error(`the bench stack did not start: ${(e as Error).message}`);
  }
  console.log(`bench stack ready in ${((Date.now() - t) / 1000).toFixed(1)} s (Postgres ${bench.info.db_url})`);
  const machine = await machineInfo(bench.info.db_url);
  const sandbox = sandboxClient(bench.info.sandbox_url);
  const duework = plan.some((p) => p.contender === "duework") ? new DueworkContender(bench, sandbox) : null;
  await duework?.init(cfg.batch);

  const records: RunRecord[] = [];
  const jsonPath = resolve(bench.cfg.projectRoot, cfg.resultsJson);
  const mdPath = resolve(bench.cfg.projectRoot, cfg.resultsMd);
  let idle = previousIdle(jsonPath);
  const results = () => ({
    startedAt: benchStarted.toISOString(),
    finishedAt: new Date().toISOString(),
    config: cfg,
    machine,
    runs: records,
    w2,
    scaling: scaling as unknown,
    idle,
  });
  let scaling: unknown = null;
  let w2: W2Results | null = null;
  await mkdir(dirname(jsonPath), { recursive: true });
  const writeJson = () => (idleOnly ? Promise.resolve() : writeFile(jsonPath, JSON.stringify(results(), null, 2) + "\n"));

  for (const [i, item] of plan.entries()) {
    const runId = `${Date.now().toString(36)}-${i}`;
    const label = `[${i + 1}/${plan.length}] ${item.contender} ${item.latencyMs}ms C=${item.c} rep ${item.rep}`;
    let record: RunRecord;
    try {
      record = item.contender === "duework"
        ? await duework!.run(item, cfg.n, cfg.batch, item.rep, runId, cfg.runTimeoutMs)
        : await runPeer({
          stack: bench,
          sandbox,
          contender: item.contender,
          cell: item,
          n: cfg.n,
          batch: cfg.batch,
          rep: item.rep,
          runId,
          timeoutMs: cfg.runTimeoutMs,
          runtime: cfg.peerRuntime,
        });
    } catch (e) {
      record = {
        contender: item.contender, latencyMs: item.latencyMs, c: item.c, rep: item.rep, n: cfg.n,
        startedAt: new Date().toISOString(), ok: false, failures: [`run failed: ${(e as Error).message}`],
        drainMs: null, itemsPerSec: null, dbDrainMs: null, enqueueMs: null,
        checks: { rowsRefreshed: null, rowsRefreshedMoreThanOnce: null, tokensNotCalledExactlyOnce: cfg.n,
          duplicateProviderCalls: 0, providerCalls: 0, jobErrors: 0, firstError: (e as Error).message },
        cpu: {},
      };
    }
    records.push(record);
    const cpu = Object.entries(record.cpu)
      .filter(([k]) => k !== "hostBusyPct")
      .map(([k, v]) => `${k} ${((v * 1000) / cfg.n).toFixed(2)}`).join(", ");
    console.log(
      record.drainMs !== null
        ? `${label}: ${cfg.n} in ${(record.drainMs / 1000).toFixed(2)} s = ${record.itemsPerSec!.toFixed(0)}/s ` +
          `${record.ok ? "✓" : "✗"}  (CPU-s/1000: ${cpu})`
        : `${label}: ✗`,
    );
    for (const f of record.failures) console.log(`    ${f}`);
    await writeJson();
  }
  await duework?.close();

  if (cfg.workloads.includes("w2")) {
    w2 = await runW2(cfg, bench, sandbox, async (partial) => {
      w2 = partial;
      await writeJson();
    });
  }

  // The scaling section is written by bench/scaling.ts; skipped (with a note) while it is missing.
  const scalingPath = join(bench.cfg.projectRoot, "bench", "scaling.ts");
  let renderScaling: ((r: unknown) => string) | null = null;
  let scalingNote: string | null = null;
  if (idleOnly) {
    scalingNote = null;
  } else if (!cfg.scaling) {
    scalingNote = "Scaling section skipped (--no-scaling).";
  } else if (!existsSync(scalingPath)) {
    scalingNote = "Scaling section skipped: bench/scaling.ts does not exist yet.";
  } else {
    try {
      const mod = await import("./scaling.ts");
      console.log("scaling: running bench/scaling.ts …");
      const st = Date.now();
      scaling = await mod.runScaling({ dbUrl: bench.info.db_url, quick: cfg.quick });
      renderScaling = mod.renderScaling as (r: unknown) => string;
      console.log(`scaling: done in ${((Date.now() - st) / 1000).toFixed(1)} s`);
    } catch (e) {
      scalingNote = `Scaling section failed: ${(e as Error).message}`;
      exitCode = 1;
    }
  }
  if (scalingNote) console.log(scalingNote);
  if (cfg.workloads.includes("idle")) {
    try {
      const m = await runIdle(cfg.idle, { dbUrl: bench.info.db_url, pgData: bench.cfg.pgData, projectRoot: bench.cfg.projectRoot }, machine);
      idle = withMeasurement(idle, m);
      printIdle(m);
    } catch (e) {
      console.error(`idle workload failed: ${(e as Error).stack ?? e}`);
      exitCode = 1;
    }
  }
  if (idleOnly) {
    if (idle) await writeIdleOnly(jsonPath, mdPath, idle);
  } else {
    await writeJson();
    await writeFile(mdPath, renderResults(results(), renderScaling ? renderScaling(scaling) : `## Scaling\n\n${scalingNote}\n`));
  }
  console.log(`\nwrote ${cfg.resultsMd} and ${cfg.resultsJson}`);
  // (w2 is assigned in a callback too, so TypeScript would narrow it to null here.)
  const w2Final = w2 as W2Results | null;
  const w2Runs: { ok: boolean }[] = w2Final === null ? [] : [...w2Final.throughput, ...(w2Final.rate ? [w2Final.rate] : [])];
  const w2Broken = w2Final?.rateError ? 1 : 0;
  const all = [...records, ...w2Runs];
  const failed = all.filter((r) => !r.ok).length + w2Broken;
  if (all.length === 0 && idleOnly) {
    // The idle workload has no pass/fail checks; its goal is reported in its section.
  } else if (failed) {
    console.log(`${failed} of ${all.length + w2Broken} runs failed a check`);
    exitCode = 1;
  } else {
    console.log(`all ${all.length} runs passed every check`);
  }
} catch (e) {
  console.error((e as Error).stack ?? String(e));
  exitCode = 1;
} finally {
  killLivePeer();
  await stack.stop();
}
Deno.exit(exitCode);
