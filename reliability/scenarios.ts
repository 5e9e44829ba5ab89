// The scenarios of `npm run chaos`: what strikes, when, and how recovery is measured. RESULTS.md
// ("How each figure is measured") says the same in prose.
import postgres from "npm:postgres@^3.4.9";
import type { ProviderName } from "../scripts/local/sandbox/types.ts";
import { sleep } from "./context.ts";
import { jobsOf, perProvider, providersOf, settled, type Snapshot, timeToNMore } from "./drain.ts";
import { IN_FLIGHT } from "./engine.ts";
import { describeFault, PROCESS_FAULTS, type ProcessFault, strike } from "./process_faults.ts";
import { injectAll, oneOfEach, OUTAGE, PROVIDER_FAULTS, type ProviderFault, tally, twentyPercent } from "./provider_faults.ts";
import { type Random, shuffle } from "./random.ts";
import { addFault, clearFaults, requestLog } from "./sandbox.ts";
import type { Mix, ScenarioSpec } from "./scenario.ts";
import type { Ctx, Workload } from "./types.ts";

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function baseline(mix: Mix[], items: number): ScenarioSpec {
  return {
    key: "baseline",
    name: "no faults (baseline)",
    mix,
    items,
    limitMs: 5 * 60_000,
    measure: () => Promise.resolve({ recoveryMs: null, faults: "none" }),
  };
}

/**
 * Each process fault `rounds` times, in random order, each when a random share (5-50 %) of the
 * items is done. Recovery of one fault: from the strike until, after the process is back, one more
 * in-flight window of items (IN_FLIGHT) is done; the row shows the slowest.
 */
export function processFaults(
  mix: Mix[],
  items: number,
  rounds: number,
  random: Random,
  only: readonly ProcessFault[] = PROCESS_FAULTS,
): ScenarioSpec {
  const kinds = shuffle(Array.from({ length: rounds }, () => [...only]).flat(), random);
  // Points in the first half: a strike waits for the previous process to be back (1-2 s, and a
  // net worker's restart does not slow the drain), so later points could come after the end.
  const points = kinds.map(() => 0.05 + 0.45 * random()).sort((a, b) => a - b);
  const strikes: { kind: ProcessFault; at: number; backAfterMs: number }[] = [];
  const missed: ProcessFault[] = [];
  return {
    key: "process",
    name: only.length === 1
      ? describeFault[only[0]]
      : `process faults during a ${items.toLocaleString("en-US")}-item drain`,
    mix,
    items,
    limitMs: 10 * 60_000,
    async during(ctx, timeline) {
      for (const [i, kind] of kinds.entries()) {
        for (;;) {
          const last = timeline.at(-1);
          if (last && (last.done + last.dead >= points[i] * last.total || settled(last))) break;
          await sleep(50);
        }
        if (settled(timeline.at(-1)!)) {
          missed.push(kind);
          continue;
        }
        const at = Date.now();
        await strike(ctx, kind);
        strikes.push({ kind, at, backAfterMs: Date.now() - at });
      }
    },
    measure(_ctx, outcome) {
      // Items finishing right after a strike may be writes already under way; progress counts
      // once the process is back.
      const recoveries = strikes.map((s) => {
        const after = timeToNMore(outcome.timeline, s.at + s.backAfterMs, IN_FLIGHT);
        return { ...s, recovery: after === null ? null : s.backAfterMs + after };
      });
      const failures = recoveries.filter((r) => r.recovery === null).map((r) => `no progress after ${describeFault[r.kind]}`);
      if (missed.length) failures.push(`the drain ended before ${missed.join(", ")} could strike`);
      const worst = Math.max(0, ...recoveries.map((r) => r.recovery ?? 0));
      const detail = recoveries.map((r) => `${r.kind} ${r.recovery === null ? "never" : seconds(r.recovery)}`).join(", ");
      return Promise.resolve({ recoveryMs: recoveries.length ? worst : null, faults: `${strikes.length} strikes (${detail})`, failures });
    },
  };
}

/**
 * 20 % of every provider's requests fail (503, 429 + Retry-After, reset after the effect, answer
 * after the timeout; 5 % per kind of `kinds`), or with `once` exactly one request of each kind per
 * provider. Recovery: from
 * the last struck request until the last item was settled.
 */
export function providerFaults(
  mix: Mix[],
  items: number,
  once = false,
  kinds: readonly ProviderFault[] = PROVIDER_FAULTS,
): ScenarioSpec {
  const providers = providersOf(mix.map((m) => m.workload));
  const which = kinds.length === PROVIDER_FAULTS.length ? "" : ` (${kinds.join(", ")} only)`;
  return {
    key: "provider",
    name: once
      ? `provider faults: one of each kind per provider${which}`
      : `provider faults on ${kinds.length * 5} % of requests${which}`,
    mix,
    items,
    limitMs: 10 * 60_000,
    async start(ctx, workloads) {
      for (const p of providers) await injectAll(ctx.info, once ? oneOfEach(p, kinds) : twentyPercent(p, kinds));
      for (const w of workloads) await w.start(ctx);
    },
    async measure(ctx, outcome) {
      const t = tally(await requestLog(ctx.info), providers);
      const share = t.requests ? (100 * t.struck) / t.requests : 0;
      const failures: string[] = [];
      const expected = providers.length * kinds.length;
      if (once && t.struck < expected) failures.push(`only ${t.struck} faults struck of ${expected}`);
      return {
        recoveryMs: outcome.finishedAt !== null && t.lastStruckAt !== null ? outcome.finishedAt - t.lastStruckAt : null,
        faults: `${t.struck} of ${t.requests} requests (${share.toFixed(1)} %; ${t.struckAfter} after the provider acted)`,
        failures,
      };
    },
  };
}

/**
 * `provider` answers 503 to everything for `outageMs` from the start; the other providers' items
 * must all be settled before it ends. Recovery: from the end of the outage until its items were.
 */
export function outage(mix: Mix[], items: number, provider: ProviderName, outageMs: number): ScenarioSpec {
  const workloads = mix.map((m) => m.workload);
  let endedAt = 0;
  return {
    key: "outage",
    name: `${provider} down for ${outageMs / 1000} s, the others draining`,
    mix,
    items,
    limitMs: outageMs + 8 * 60_000,
    async start(ctx, ws) {
      await addFault(ctx.info, OUTAGE(provider));
      for (const w of ws) await w.start(ctx);
    },
    async during(ctx) {
      await sleep(outageMs);
      await clearFaults(ctx.info);
      endedAt = Date.now();
    },
    measure(_ctx, outcome) {
      const before = [...outcome.timeline].reverse().find((s) => s.at <= endedAt) ?? outcome.timeline[0];
      const others = [...perProvider(workloads, before)].filter(([p]) => p !== provider);
      const othersTotal = others.reduce((s, [, c]) => s + c.total, 0);
      const othersSettled = others.reduce((s, [, c]) => s + c.done + c.dead, 0);
      const downAtEnd = perProvider(workloads, before).get(provider);
      const failures = othersSettled < othersTotal
        ? [`only ${othersSettled} of ${othersTotal} other providers' items settled during the outage`]
        : [];
      const back = outcome.timeline.find((s) => {
        const c = perProvider(workloads, s).get(provider)!;
        return s.at >= endedAt && c.done + c.dead >= c.total;
      });
      return Promise.resolve({
        recoveryMs: back ? back.at - endedAt : null,
        faults: `${provider} 503 for ${outageMs / 1000} s (${downAtEnd?.done ?? 0} of its ${downAtEnd?.total ?? 0} done meanwhile); ` +
          `other providers: ${othersSettled} of ${othersTotal} settled meanwhile`,
        failures,
      });
    },
  };
}

/**
 * 10 concurrent manual runs of each job, two heartbeats and each job's cron slot made due, all at
 * once over the same due items. Nothing may be sent twice.
 */
export function overlap(mix: Mix[], items: number, runs = 10): ScenarioSpec {
  return {
    key: "overlap",
    name: `overlap: ${runs} manual runs + cron + heartbeat`,
    mix,
    items,
    limitMs: 5 * 60_000,
    async start(ctx: Ctx, workloads: Workload[]) {
      const jobs = jobsOf(workloads);
      const many = postgres(ctx.info.db_url, { max: runs * jobs.length + 3, onnotice: () => {} });
      try {
        await ctx.sql()`update jobs.job set next_run_at = now() where name = any (${jobs})`;
        await Promise.all([
          ...jobs.flatMap((job) => Array.from({ length: runs }, () => many`select jobs.run_now(${job})`)),
          many`select jobs.heartbeat()`,
          many`select jobs.heartbeat()`,
          many`select jobs.fire_due_schedules()`,
        ]);
      } finally {
        await many.end({ timeout: 5 });
      }
    },
    measure: () => Promise.resolve({ recoveryMs: null, faults: `${runs} × run_now per job, 2 heartbeats, the cron slot` }),
  };
}

export type { Snapshot };
