// CLI of `npm run bench` (node:util parseArgs) -> the run plan.
//
//   npm run bench                     full matrix: N = 5000, C = 10 and 50, 20 ms x 3 reps, plus 0 ms x 1
//   npm run bench -- --quick          N = 1000, C = 50, 20 ms, 1 rep, quick scaling (< 2 min)
//   npm run bench -- --n 2000 --reps 1 --contenders duework,http-ceiling --c 50 --latency 20
//   npm run bench -- --workloads w2   W2 only (booking reminders: throughput vs HTTP ceiling, rate-limit accuracy)
//   npm run bench -- --workloads idle --idle-label before
//                                     the scheduler's idle cost with 30 jobs, nothing due (bench/idle.ts; not in the
//                                     default set): --idle-minutes (5; --quick 2), --idle-baseline-minutes (2; --quick 1)
import { parseArgs } from "node:util";

export const CONTENDERS = ["duework", "graphile-worker", "pg-boss", "http-ceiling"] as const;
export type ContenderId = typeof CONTENDERS[number];

export const LABELS: Record<ContenderId, string> = {
  "duework": "Duework (pg_cron tick + pg_net + refresh-token Edge Function)",
  "graphile-worker": "graphile-worker 0.18.0",
  "pg-boss": "pg-boss 12.38.0",
  "http-ceiling": "HTTP-only ceiling",
};

export const WORKLOADS = ["w1", "w2", "idle"] as const;
export type WorkloadId = typeof WORKLOADS[number];
/** What runs without --workloads: idle takes minutes of waiting and replaces the database's jobs. */
export const DEFAULT_WORKLOADS: WorkloadId[] = ["w1", "w2"];

/** The idle-cost workload (bench/idle.ts). */
export interface IdleConfig {
  /** Length of the measured window with the scheduler running (whole minutes). */
  minutes: number;
  /** Length of the window with every pg_cron entry inactive (0 = none). */
  baselineMinutes: number;
  /** Name of the measurement in results.json and RESULTS.md ("before", "after"); same label = replaced. */
  label: string;
}

/** W2 "booking reminders" (bench/w2.ts). */
export interface W2Config {
  /** Bookings of the throughput run: each gives one WhatsApp and one email (2 sends). */
  bookings: number;
  /** Email-only bookings of the rate-limit accuracy run. */
  rateEmails: number;
  /** Fake latency of both providers in the throughput run and the rate run (ms). */
  latencyMs: number;
  /** Tasks in flight: batch_size 10 × max_in_flight (C / 10). */
  c: number;
  /** The fake Resend's limit in the rate run (requests/s, sliding 1 s window). */
  rateLimitPerSecond: number;
  /** The resend bucket's refill_per_second in the rate run; null = 0.98 × the limit (bench/rate_limit.ts). */
  rateRefill: number | null;
  /** The resend bucket's capacity in the rate run (default 1). */
  rateCapacity: number;
  /** local: the stack's pg_cron 1.4 minute heartbeat; hosted: a 10 s heartbeat as pg_cron 1.6 runs it (bench/w2_heartbeat.ts). */
  heartbeat: "local" | "hosted";
  /** Twilio status callbacks to twilio-status during the throughput run (off by default). */
  callbacks: boolean;
}

export interface Cell {
  latencyMs: number;
  c: number;
}

export interface RunPlanItem extends Cell {
  contender: ContenderId;
  rep: number;
}

export interface BenchConfig {
  workloads: WorkloadId[];
  w2: W2Config;
  idle: IdleConfig;
  n: number;
  quick: boolean;
  contenders: ContenderId[];
  /** Cells measured with `reps` repetitions. */
  cells: Cell[];
  reps: number;
  /** Extra cells with one repetition each (0 ms endpoint). */
  zeroCells: Cell[];
  batch: number;
  runTimeoutMs: number;
  scaling: boolean;
  resultsMd: string;
  resultsJson: string;
  /** Runtime of the peer worker child (graphile-worker, pg-boss, HTTP ceiling). */
  peerRuntime: "deno" | "node";
}

function intList(raw: string, name: string): number[] {
  return raw.split(",").map((s) => {
    const v = Number(s.trim());
    if (!Number.isInteger(v) || v < 0) throw new Error(`--${name}: ${JSON.stringify(s)} is not a non-negative integer`);
    return v;
  });
}

export function parseConfig(args: string[]): BenchConfig {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      n: { type: "string" },
      reps: { type: "string" },
      c: { type: "string" },
      latency: { type: "string" },
      "zero-latency": { type: "boolean" },
      contenders: { type: "string" },
      "no-scaling": { type: "boolean", default: false },
      "timeout-s": { type: "string" },
      out: { type: "string" },
      "peer-runtime": { type: "string" },
      workloads: { type: "string" },
      "w2-bookings": { type: "string" },
      "w2-emails": { type: "string" },
      "w2-callbacks": { type: "boolean", default: false },
      "w2-refill": { type: "string" },
      "w2-capacity": { type: "string" },
      "w2-heartbeat": { type: "string" },
      "idle-minutes": { type: "string" },
      "idle-baseline-minutes": { type: "string" },
      "idle-label": { type: "string" },
    },
  });
  const quick = values.quick ?? false;
  const n = values.n !== undefined ? intList(values.n, "n")[0] : quick ? 1000 : 5000;
  const reps = values.reps !== undefined ? intList(values.reps, "reps")[0] : quick ? 1 : 3;
  const cs = values.c !== undefined ? intList(values.c, "c") : quick ? [50] : [10, 50];
  const latencies = values.latency !== undefined ? intList(values.latency, "latency") : [20];
  const zero = values["zero-latency"] ?? !quick;
  const batch = 10;
  for (const c of cs) {
    if (c <= 0 || c % batch !== 0) throw new Error(`--c: ${c} must be a positive multiple of ${batch}`);
  }
  if (n <= 0) throw new Error("--n must be positive");
  const contenders = values.contenders !== undefined
    ? values.contenders.split(",").map((s) => s.trim()).filter(Boolean)
    : [...CONTENDERS];
  for (const c of contenders) {
    if (!CONTENDERS.includes(c as ContenderId)) {
      throw new Error(`--contenders: unknown ${JSON.stringify(c)}; known: ${CONTENDERS.join(", ")}`);
    }
  }
  const workloads = values.workloads !== undefined
    ? values.workloads.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean)
    : [...DEFAULT_WORKLOADS];
  for (const w of workloads) {
    if (!WORKLOADS.includes(w as WorkloadId)) throw new Error(`--workloads: unknown ${JSON.stringify(w)}; known: ${WORKLOADS.join(", ")}`);
  }
  if (workloads.length === 0) throw new Error(`--workloads: name at least one of ${WORKLOADS.join(", ")}`);
  const w2Bookings = values["w2-bookings"] !== undefined ? intList(values["w2-bookings"], "w2-bookings")[0] : quick ? 1000 : 5000;
  const w2Emails = values["w2-emails"] !== undefined ? intList(values["w2-emails"], "w2-emails")[0] : quick ? 100 : 300;
  if (w2Bookings <= 0 || w2Emails <= 20) throw new Error("--w2-bookings must be positive and --w2-emails above 20 (the rate is measured from the 10th send)");
  const rateRefill = values["w2-refill"] !== undefined ? Number(values["w2-refill"]) : null;
  if (rateRefill !== null && !(rateRefill > 0)) throw new Error("--w2-refill must be a positive number (requests/s)");
  const rateCapacity = values["w2-capacity"] !== undefined ? Number(values["w2-capacity"]) : 1;
  if (!(rateCapacity >= 1)) throw new Error("--w2-capacity must be a number >= 1 (a bucket holds at least one token)");
  const heartbeat = values["w2-heartbeat"] ?? "local";
  if (heartbeat !== "local" && heartbeat !== "hosted") throw new Error("--w2-heartbeat must be local or hosted");
  const idleMinutes = values["idle-minutes"] !== undefined ? intList(values["idle-minutes"], "idle-minutes")[0] : quick ? 2 : 5;
  if (idleMinutes < 1) throw new Error("--idle-minutes must be at least 1");
  const baselineMinutes = values["idle-baseline-minutes"] !== undefined
    ? intList(values["idle-baseline-minutes"], "idle-baseline-minutes")[0]
    : quick ? 1 : 2;
  const idleLabel = (values["idle-label"] ?? "before").trim();
  if (!/^[\w.-]{1,40}$/.test(idleLabel)) throw new Error("--idle-label: 1-40 letters, digits, '.', '_' or '-'");
  const out = values.out ?? "bench";
  const peerRuntime = values["peer-runtime"] ?? "deno";
  if (peerRuntime !== "deno" && peerRuntime !== "node") throw new Error(`--peer-runtime must be deno or node`);
  return {
    workloads: WORKLOADS.filter((w) => workloads.includes(w)),
    idle: { minutes: idleMinutes, baselineMinutes, label: idleLabel },
    w2: { bookings: w2Bookings, rateEmails: w2Emails, latencyMs: 20, c: 50, rateLimitPerSecond: 10, rateRefill, rateCapacity, heartbeat, callbacks: values["w2-callbacks"] ?? false },
    n,
    quick,
    contenders: contenders as ContenderId[],
    cells: latencies.flatMap((latencyMs) => cs.map((c) => ({ latencyMs, c }))),
    reps,
    zeroCells: zero && !latencies.includes(0) ? cs.map((c) => ({ latencyMs: 0, c })) : [],
    batch,
    runTimeoutMs: (values["timeout-s"] !== undefined ? intList(values["timeout-s"], "timeout-s")[0] : 300) * 1000,
    scaling: !values["no-scaling"],
    resultsMd: `${out}/RESULTS.md`,
    resultsJson: `${out}/results.json`,
    peerRuntime,
  };
}

/** Interleaved order: every contender once per cell, then the next repetition; 0 ms runs last. */
export function runPlan(cfg: BenchConfig): RunPlanItem[] {
  const plan: RunPlanItem[] = [];
  if (!cfg.workloads.includes("w1")) return plan;
  for (let rep = 1; rep <= cfg.reps; rep++) {
    for (const cell of cfg.cells) for (const contender of cfg.contenders) plan.push({ ...cell, contender, rep });
  }
  for (const cell of cfg.zeroCells) for (const contender of cfg.contenders) plan.push({ ...cell, contender, rep: 1 });
  return plan;
}
