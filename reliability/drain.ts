// Drives a drain to its end and reads back what it did: items done, dead with a reason and
// still open, per workload and per provider, polled while faults strike.
import type { ProviderName } from "../scripts/local/sandbox/types.ts";
import { sleep, withDatabase } from "./context.ts";
import type { Counts, Ctx, EffectCount, Workload } from "./types.ts";

export interface Snapshot {
  at: number;
  total: number;
  done: number;
  dead: number;
  perWorkload: Counts[];
}

export async function snapshot(ctx: Ctx, workloads: Workload[]): Promise<Snapshot> {
  const perWorkload = await withDatabase(ctx, "counting items", () => Promise.all(workloads.map((w) => w.counts(ctx))));
  const sum = (k: keyof Counts) => perWorkload.reduce((s, c) => s + (c[k] as number), 0);
  return { at: Date.now(), total: sum("total"), done: sum("done"), dead: sum("dead"), perWorkload };
}

export const settled = (s: Snapshot) => s.done + s.dead >= s.total;

export interface DrainOutcome {
  last: Snapshot;
  /** When every item was done or dead, or null if the deadline came first. */
  finishedAt: number | null;
  timeline: Snapshot[];
}

/**
 * Polls every 200 ms until every item is done or dead or `deadline` (epoch ms) passes. `during`
 * runs beside the polling (the scenario's faults); the drain ends only when both are over.
 */
export async function drainUntilSettled(
  ctx: Ctx,
  workloads: Workload[],
  deadline: number,
  during: (timeline: Snapshot[]) => Promise<void> = async () => {},
): Promise<DrainOutcome> {
  const timeline: Snapshot[] = [];
  let faultsOver = false;
  const faults = during(timeline).finally(() => (faultsOver = true));
  let finishedAt: number | null = null;
  for (;;) {
    const s = await snapshot(ctx, workloads);
    timeline.push(s);
    if (settled(s) && faultsOver) {
      finishedAt = s.at;
      break;
    }
    if (Date.now() > deadline) break;
    await sleep(200);
  }
  await faults;
  return { last: timeline.at(-1)!, finishedAt, timeline };
}

/** First moment after `from` when `n` more items were done than at `from`, or null. */
export function timeToNMore(timeline: Snapshot[], from: number, n: number, done = (s: Snapshot) => s.done): number | null {
  const base = [...timeline].reverse().find((s) => s.at <= from) ?? timeline[0];
  const total = timeline.at(-1)!.total;
  const target = Math.min(done(base) + n, total);
  const hit = timeline.find((s) => s.at > from && done(s) >= target);
  return hit ? hit.at - from : null;
}

export async function allEffects(ctx: Ctx, workloads: Workload[]): Promise<EffectCount[]> {
  const out: EffectCount[] = [];
  for (const w of workloads) out.push(...await withDatabase(ctx, `effects of ${w.name}`, () => w.effects(ctx)));
  return out;
}

export const providersOf = (workloads: Workload[]): ProviderName[] => [...new Set(workloads.flatMap((w) => w.providers))];
export const jobsOf = (workloads: Workload[]): string[] => [...new Set(workloads.flatMap((w) => w.jobs))];

/** Items per provider in a snapshot (a one-provider workload's items are all that provider's). */
export function perProvider(workloads: Workload[], s: Snapshot): Map<ProviderName, Omit<Counts, "byProvider">> {
  const m = new Map<ProviderName, Omit<Counts, "byProvider">>();
  const add = (p: ProviderName, c: Omit<Counts, "byProvider">) => {
    const had = m.get(p) ?? { total: 0, done: 0, dead: 0 };
    m.set(p, { total: had.total + c.total, done: had.done + c.done, dead: had.dead + c.dead });
  };
  workloads.forEach((w, i) => {
    const c = s.perWorkload[i];
    if (c.byProvider) for (const [p, pc] of Object.entries(c.byProvider)) add(p as ProviderName, pc!);
    else add(w.providers[0], c);
  });
  return m;
}
