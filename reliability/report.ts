// The table of figures: printed after each run, and written to RESULTS.md by a full run.
import type { Coverage } from "./coverage.ts";
import type { Row } from "./scenario.ts";
import type { SecretScan } from "./secrets_scan.ts";

const secs = (ms: number | null) => (ms === null ? "—" : `${(ms / 1000).toFixed(1)} s`);

export function table(rows: Row[]): string {
  const head = ["scenario", "items", "lost", "duplicated effects", "recovery time", "drain", "dead (with reason)", "repeated calls (no effect)", "faults", "ok"];
  const lines = [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) =>
      `| ${[r.scenario, r.items, r.lost, r.duplicated, secs(r.recoveryMs), secs(r.drainMs), r.dead, r.repeatedCalls, r.faults,
        r.failures.length ? `**FAIL**: ${r.failures.join("; ")}` : "yes"].join(" | ")} |`
    ),
  ];
  return lines.join("\n");
}

export function effectsTable(rows: Row[]): string {
  const lines = ["| scenario | provider | idempotency key | duplicated effects | done without effect | repeated calls |", "|---|---|---|---|---|---|"];
  for (const r of rows) {
    for (const e of r.effects) {
      lines.push(`| ${r.scenario} | ${e.provider} | ${e.keyed ? "yes" : "no"} | ${e.duplicates} | ${e.missing} | ${e.repeatedCalls} |`);
    }
  }
  return lines.join("\n");
}

export function workloadsTable(rows: Row[]): string {
  const lines = ["| scenario | workload | items | done | dead (with reason) |", "|---|---|---|---|---|"];
  for (const r of rows) for (const w of r.perWorkload) lines.push(`| ${r.scenario} | ${w.workload} | ${w.total} | ${w.done} | ${w.dead} |`);
  return lines.join("\n");
}

export function secretsLine(s: SecretScan): string {
  const where = s.hits.length ? `: ${s.hits.map((h) => `${h.secret} in ${h.where}`).join(", ")}` : "";
  return `${s.secrets} secrets searched in ${s.places} places (${(s.bytes / 1e6).toFixed(1)} MB of logs, pg_net rows and engine columns): ${s.hits.length} hits${where}`;
}

export function coverageLine(c: Coverage): string {
  const listed = c.listed.map((l) => `${l.job} (${l.reason})`).join("; ");
  return `drained: ${c.drained.join(", ")}. Not drained, with the reason: ${listed || "none"}.` +
    (c.unknown.length ? ` **Neither drained nor listed: ${c.unknown.join(", ")}**` : "");
}
