// `npm run chaos`: the fault suite's table of figures (reliability/RESULTS.md).
//
//   npm run chaos                          every scenario at full size on its own stack; writes RESULTS.md
//   npm run chaos -- --short               one fault of each kind, small drains (what `npm test` runs)
//   npm run chaos -- --soak 60m            a round a minute with a random fault, for 60 minutes
//   npm run chaos -- --stack-json F        use the running stack described by F instead of starting one
//   npm run chaos -- --seed N              replay the fault points of an earlier run
//   npm run chaos -- --scenario process --process-faults functions   one scenario, some faults
//   npm run chaos -- --scenario provider --provider-faults 503,reset   (kinds: 503, 429, reset, timeout)
//
// Exit 1 on a lost item, a duplicated effect, a broken engine invariant, a secret found, or a job
// neither drained nor listed in coverage.ts.
import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import { stackConfig } from "../scripts/local/stack/config.ts";
import { createStack, type Stack } from "../scripts/local/stack/supervisor.ts";
import { createCtx } from "./context.ts";
import { jobCoverage } from "./coverage.ts";
import { coverageLine, effectsTable, secretsLine, table, workloadsTable } from "./report.ts";
import { writeResults } from "./results_file.ts";
import { seeded } from "./random.ts";
import { type Mix, type Row, runScenario, type ScenarioKey, SCENARIOS, type ScenarioSpec } from "./scenario.ts";
import { PROCESS_FAULTS, type ProcessFault } from "./process_faults.ts";
import { PROVIDER_FAULTS, type ProviderFault } from "./provider_faults.ts";
import { baseline, outage, overlap, processFaults, providerFaults } from "./scenarios.ts";
import { scanForSecrets } from "./secrets_scan.ts";
import { duplicateIsCounted } from "./self_check.ts";
import { soak } from "./soak.ts";
import type { StackInfo } from "./types.ts";
import { reminders } from "./workloads/reminders.ts";
import { outreach } from "./workloads/outreach.ts";
import { tiktok } from "./workloads/tiktok.ts";
import { youtube } from "./workloads/youtube.ts";
import { restoreSettings, saveSettings } from "./engine.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    short: { type: "boolean", default: false },
    soak: { type: "string" },
    "stack-json": { type: "string" },
    seed: { type: "string" },
    "no-write": { type: "boolean", default: false },
    scenario: { type: "string", multiple: true },
    "process-faults": { type: "string" },
    "provider-faults": { type: "string" },
    items: { type: "string" },
  },
});

function duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)$/.exec(text.trim());
  if (!m) {
    console.error(`--soak takes a duration such as 90s, 60m or 2h; got ${JSON.stringify(text)}`);
    Deno.exit(2);
  }
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "s" | "m" | "h"];
}

const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`--seed must be an integer; got ${JSON.stringify(values.seed)}`);
  Deno.exit(2);
}
const soakMs = values.soak === undefined ? null : duration(values.soak);

function listOf<T extends string>(flag: string, given: string[], allowed: readonly T[]): T[] {
  for (const g of given) {
    if (!(allowed as readonly string[]).includes(g)) {
      console.error(`--${flag} must be one of ${allowed.join(", ")}; got ${JSON.stringify(g)}`);
      Deno.exit(2);
    }
  }
  return given as T[];
}
const onlyScenarios = listOf<ScenarioKey>("scenario", (values.scenario ?? []).flatMap((s) => s.split(",")), SCENARIOS);
const processKinds = values["process-faults"] === undefined
  ? PROCESS_FAULTS
  : listOf<ProcessFault>("process-faults", values["process-faults"].split(","), PROCESS_FAULTS);
const providerKinds = values["provider-faults"] === undefined
  ? PROVIDER_FAULTS
  : listOf<ProviderFault>("provider-faults", values["provider-faults"].split(","), PROVIDER_FAULTS);
const itemsOverride = values.items === undefined ? null : Number(values.items);
if (itemsOverride !== null && !(Number.isInteger(itemsOverride) && itemsOverride > 0)) {
  console.error(`--items must be a positive integer; got ${JSON.stringify(values.items)}`);
  Deno.exit(2);
}
const mode = soakMs !== null ? "soak" : values.short ? "short" : "full";

/** What every scenario drains: each workload's share of the items. */
const MIX: Mix[] = [
  { workload: reminders, share: 0.5 },
  { workload: youtube, share: 0.25 },
  { workload: outreach, share: 0.15 },
  { workload: tiktok, share: 0.1 },
];

function plan(): ScenarioSpec[] {
  const random = seeded(seed);
  const n = (items: number) => itemsOverride ?? items;
  const all = mode === "short"
    ? [
      // Enough items that the drain outlasts three strikes and the restarts between them.
      processFaults(MIX, n(3_000), 1, random, processKinds),
      providerFaults(MIX, n(300), true, providerKinds),
      outage(MIX, n(300), "twilio", 15_000),
      overlap(MIX, n(200)),
    ]
    : [
      baseline(MIX, n(5_000)),
      processFaults(MIX, n(5_000), 2, random, processKinds),
      providerFaults(MIX, n(5_000), false, providerKinds),
      outage(MIX, n(3_000), "twilio", 120_000),
      overlap(MIX, n(1_000)),
    ];
  return onlyScenarios.length ? all.filter((s) => onlyScenarios.includes(s.key)) : all;
}

async function stackFor(): Promise<{ info: StackInfo; logDir: string; stack?: Stack }> {
  if (values["stack-json"]) {
    const path = values["stack-json"];
    // The workloads delete their earlier rows and switch other accounts and campaigns off.
    if (resolve(path) === resolve(stackConfig("dev").stackJson)) {
      console.error("chaos deletes and switches off rows of the stack it runs on: use the test, bench or chaos stack, not npm start's");
      Deno.exit(2);
    }
    return { info: JSON.parse(await Deno.readTextFile(path)), logDir: join(dirname(path), "logs") };
  }
  const cfg = stackConfig("chaos");
  console.log(`starting the chaos stack (Postgres :${cfg.dbPort}, functions :${cfg.apiPort}, sandbox :${cfg.sandboxPort}); logs in ${cfg.logDir}`);
  const stack = createStack(cfg, { freshCluster: true, seed: false, sink: () => {} });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, async () => {
      await stack.stop();
      Deno.exit(130);
    });
  }
  return { info: await stack.start() as unknown as StackInfo, logDir: cfg.logDir, stack };
}

const startedAt = new Date();
const { info, logDir, stack } = await stackFor();
const ctx = createCtx(info, `${startedAt.getTime().toString(36)}`);
const rows: Row[] = [];
let failed = false;
// A borrowed stack gets its job settings and buckets back (its own tests expect the migrations').
const settings = stack ? null : await saveSettings(ctx.sql());
try {
  console.log(`mode ${mode}, seed ${seed}`);
  const specs = mode === "soak" ? [] : plan();
  for (const [i, spec] of specs.entries()) {
    console.log(`\n[${i + 1}/${specs.length}] ${spec.name}: ${spec.items} items`);
    const row = await runScenario({ ...ctx, run: `${ctx.run}-${i}` }, spec);
    rows.push(row);
    console.log(table([row]).split("\n").at(-1));
  }
  if (soakMs !== null) rows.push(await soak(ctx, MIX, soakMs, random(), (l) => console.log(l)));

  const selfCheck = rows.length ? await duplicateIsCounted(ctx, reminders) : null;
  if (selfCheck) console.log(`\n${selfCheck}`);
  const secrets = await scanForSecrets(ctx, logDir);
  const coverage = await jobCoverage(ctx, MIX.map((m) => m.workload));
  console.log(`\n${table(rows)}\n\n${workloadsTable(rows)}\n\n${effectsTable(rows)}\n\nSecrets: ${secretsLine(secrets)}\nJobs: ${coverageLine(coverage)}`);
  failed = rows.some((r) => r.failures.length > 0) || secrets.hits.length > 0 || coverage.unknown.length > 0 || selfCheck !== null;
  const complete = onlyScenarios.length === 0 && processKinds === PROCESS_FAULTS && providerKinds === PROVIDER_FAULTS &&
    itemsOverride === null;
  if (mode !== "short" && complete && !values["no-write"]) {
    const path = await writeResults({ mode, seed, startedAt, rows, secrets, coverage, command: `npm run chaos${Deno.args.length ? ` -- ${Deno.args.join(" ")}` : ""}` });
    console.log(`\nwrote ${path}`);
  }
} catch (e) {
  console.error(`chaos run failed: ${(e as Error).stack ?? e}`);
  failed = true;
} finally {
  if (settings) await restoreSettings(ctx.sql(), settings).catch((e) => console.error(`could not restore the job settings: ${e}`));
  await ctx.close().catch(() => {});
  if (stack) await stack.stop();
}
console.log(failed ? "\nFAIL" : "\nPASS");
Deno.exit(failed ? 1 : 0);

function random() {
  return seeded(seed + 1);
}
