// One scenario: seed the workloads, start them, let the faults strike while the drain runs, then
// read back items, effects and the engine's invariants. Each scenario yields one row.
import { clearFaults, resetSandbox } from "./sandbox.ts";
import { allEffects, drainUntilSettled, type DrainOutcome, jobsOf, type Snapshot } from "./drain.ts";
import { type Invariants, invariants, invariantsHold } from "./engine.ts";
import { sleep, withDatabase } from "./context.ts";
import type { Ctx, EffectCount, Workload } from "./types.ts";

export interface Mix {
  workload: Workload;
  /** Share of the scenario's items. */
  share: number;
}

export interface Row {
  scenario: string;
  items: number;
  done: number;
  dead: number;
  /** Items neither done nor dead with a reason at the end, plus items done without an effect. */
  lost: number;
  /** Effects beyond one per item, every provider (with or without an idempotency key). */
  duplicated: number;
  /** Repeated calls without a side effect (a second refresh grant): not a defect. */
  repeatedCalls: number;
  recoveryMs: number | null;
  drainMs: number | null;
  faults: string;
  invariants: Invariants;
  effects: EffectCount[];
  /** Items, done and dead per workload at the end. */
  perWorkload: { workload: string; total: number; done: number; dead: number }[];
  failures: string[];
}

export const SCENARIOS = ["baseline", "process", "provider", "outage", "overlap"] as const;
export type ScenarioKey = typeof SCENARIOS[number];

export interface ScenarioSpec {
  key: ScenarioKey;
  name: string;
  mix: Mix[];
  items: number;
  /** The drain's time limit: a scenario always ends by itself. */
  limitMs: number;
  /** Runs beside the drain (the faults); the drain ends when both are over. */
  during?: (ctx: Ctx, timeline: Snapshot[], t0: number) => Promise<void>;
  /** Starts the drain (default: each workload's own manual tick). */
  start?: (ctx: Ctx, workloads: Workload[]) => Promise<void>;
  /** Recovery time and the fault column, from what happened. */
  measure: (ctx: Ctx, outcome: DrainOutcome, t0: number) => Promise<{ recoveryMs: number | null; faults: string; failures?: string[] }>;
}

export async function runScenario(ctx: Ctx, spec: ScenarioSpec): Promise<Row> {
  const workloads = spec.mix.map((m) => m.workload);
  await resetSandbox(ctx.info);
  for (const m of spec.mix) await m.workload.seed(ctx, Math.max(1, Math.round(spec.items * m.share)));
  const t0 = Date.now();
  if (spec.start) await spec.start(ctx, workloads);
  else for (const w of workloads) await w.start(ctx);
  const outcome = await drainUntilSettled(ctx, workloads, t0 + spec.limitMs, (timeline) => spec.during?.(ctx, timeline, t0) ?? Promise.resolve());
  await clearFaults(ctx.info);
  const measured = await spec.measure(ctx, outcome, t0);
  const inv = await settledInvariants(ctx, jobsOf(workloads));
  const effects = await allEffects(ctx, workloads);
  const last = outcome.last;
  const missing = effects.reduce((s, e) => s + e.missing, 0);
  const row: Row = {
    scenario: spec.name,
    items: last.total,
    done: last.done,
    dead: last.dead,
    lost: last.total - last.done - last.dead + missing,
    duplicated: effects.reduce((s, e) => s + e.duplicates, 0),
    repeatedCalls: effects.reduce((s, e) => s + e.repeatedCalls, 0),
    recoveryMs: measured.recoveryMs,
    drainMs: outcome.finishedAt === null ? null : outcome.finishedAt - t0,
    faults: measured.faults,
    invariants: inv,
    effects,
    perWorkload: workloads.map((w, i) => {
      const c = last.perWorkload[i];
      return { workload: w.name, total: c.total, done: c.done, dead: c.dead };
    }),
    failures: [...(measured.failures ?? [])],
  };
  if (outcome.finishedAt === null) row.failures.push(`not settled within ${spec.limitMs / 1000} s`);
  if (row.lost) row.failures.push(`${row.lost} items lost (${missing} done without an effect)`);
  for (const e of effects) {
    if (e.duplicates) row.failures.push(`${e.duplicates} duplicated ${e.provider} effects (e.g. ${e.examples?.join(", ") ?? "?"})`);
  }
  if (!invariantsHold(inv)) row.failures.push(`engine invariants: ${JSON.stringify(inv)}`);
  return row;
}

/** Invariants once the drain's last batches had time to settle (a pass of pg_net, a reap). */
async function settledInvariants(ctx: Ctx, jobs: string[]): Promise<Invariants> {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const inv = await withDatabase(ctx, "engine invariants", () => invariants(ctx, jobs));
    if (invariantsHold(inv) || Date.now() > deadline) return inv;
    await sleep(500);
  }
}
