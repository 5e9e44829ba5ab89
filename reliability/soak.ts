// `--soak 60m`: a round every minute, each a small drain with one random fault (a process
// fault, 20 % provider faults or a 20-second outage of one provider), until the time is up. The
// row sums the rounds; any round's failure is the soak's.
import { sleep } from "./context.ts";
import { providersOf } from "./drain.ts";
import { PROCESS_FAULTS } from "./process_faults.ts";
import type { Random } from "./random.ts";
import { type Mix, type Row, runScenario, type ScenarioSpec } from "./scenario.ts";
import { outage, processFaults, providerFaults } from "./scenarios.ts";
import type { Ctx } from "./types.ts";

const ROUND_MS = 60_000;
// Enough that a process fault strikes before the drain ends (a drain of a few hundred takes a second).
const ROUND_ITEMS = 1_000;

function randomRound(mix: Mix[], random: Random): ScenarioSpec {
  const pick = Math.floor(random() * 5);
  if (pick < PROCESS_FAULTS.length) return processFaults(mix, ROUND_ITEMS, 1, random, [PROCESS_FAULTS[pick]]);
  if (pick === 3) return providerFaults(mix, ROUND_ITEMS);
  const providers = providersOf(mix.map((m) => m.workload));
  return outage(mix, ROUND_ITEMS, providers[Math.floor(random() * providers.length)], 20_000);
}

export async function soak(ctx: Ctx, mix: Mix[], durationMs: number, random: Random, log: (line: string) => void): Promise<Row> {
  const end = Date.now() + durationMs;
  const rounds: Row[] = [];
  while (Date.now() < end) {
    const started = Date.now();
    const spec = randomRound(mix, random);
    // Each round seeds rows of its own (names carry the run id).
    const row = await runScenario({ ...ctx, run: `${ctx.run}-soak${rounds.length + 1}` }, spec);
    rounds.push(row);
    log(`  soak round ${rounds.length}: ${spec.name}: ${row.failures.length ? `FAIL ${row.failures.join("; ")}` : "ok"}`);
    const rest = ROUND_MS - (Date.now() - started);
    if (rest > 0 && Date.now() + rest < end) await sleep(rest);
  }
  const sum = (f: (r: Row) => number) => rounds.reduce((s, r) => s + f(r), 0);
  const recoveries = rounds.map((r) => r.recoveryMs).filter((x): x is number => x !== null);
  return {
    scenario: `soak ${Math.round(durationMs / 60_000)} min: ${rounds.length} rounds of ${ROUND_ITEMS} items, one random fault each`,
    items: sum((r) => r.items),
    done: sum((r) => r.done),
    dead: sum((r) => r.dead),
    lost: sum((r) => r.lost),
    duplicated: sum((r) => r.duplicated),
    repeatedCalls: sum((r) => r.repeatedCalls),
    recoveryMs: recoveries.length ? Math.max(...recoveries) : null,
    drainMs: null,
    faults: rounds.map((r) => r.scenario).join("; "),
    invariants: rounds.at(-1)!.invariants,
    effects: [],
    perWorkload: [],
    failures: rounds.flatMap((r, i) => r.failures.map((f) => `round ${i + 1}: ${f}`)),
  };
}
