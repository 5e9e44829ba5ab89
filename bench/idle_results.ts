// Where the idle measurements are kept: the `idle` entry of bench/results.json, one measurement
// per label. Every bench run carries the earlier ones over; a run of the idle workload alone
// changes only that entry and the idle section of RESULTS.md, leaving W1/W2/scaling as they were.
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import type { IdleMeasurement, IdleResults } from "./idle.ts";
import { renderIdle, spliceIdleSection } from "./idle_report.ts";

/** The idle results of an earlier run in `jsonPath`, or null. */
export function previousIdle(jsonPath: string): IdleResults | null {
  if (!existsSync(jsonPath)) return null;
  try {
    const idle = JSON.parse(readFileSync(jsonPath, "utf8")).idle as IdleResults | undefined;
    return Array.isArray(idle?.measurements) ? idle : null;
  } catch {
    return null;
  }
}

/** `idle` with `m` added, replacing a measurement of the same label. */
export function withMeasurement(idle: IdleResults | null, m: IdleMeasurement): IdleResults {
  return { measurements: [...(idle?.measurements ?? []).filter((x) => x.label !== m.label), m] };
}

/** Writes `idle` into the existing results.json and RESULTS.md, keeping everything else. */
export async function writeIdleOnly(jsonPath: string, mdPath: string, idle: IdleResults): Promise<void> {
  const json = existsSync(jsonPath) ? JSON.parse(readFileSync(jsonPath, "utf8")) : {};
  await writeFile(jsonPath, JSON.stringify({ ...json, idle }, null, 2) + "\n");
  const md = existsSync(mdPath) ? readFileSync(mdPath, "utf8") : "";
  await writeFile(mdPath, spliceIdleSection(md, renderIdle(idle)));
}
