// Writes reliability/RESULTS.md: the table from the last full run, how to reproduce it, and what
// each figure means.
import { fileURLToPath } from "node:url";
import type { Coverage } from "./coverage.ts";
import { coverageLine, effectsTable, secretsLine, table, workloadsTable } from "./report.ts";
import type { Row } from "./scenario.ts";
import type { SecretScan } from "./secrets_scan.ts";
import { ENGINE } from "./engine.ts";

export interface RunRecord {
  mode: string;
  seed: number;
  startedAt: Date;
  command: string;
  rows: Row[];
  secrets: SecretScan;
  coverage: Coverage;
}

export async function writeResults(r: RunRecord): Promise<string> {
  const path = fileURLToPath(new URL(r.mode === "soak" ? "./SOAK.md" : "./RESULTS.md", import.meta.url));
  const text = `# Chaos results (${r.mode} run)

Produced by \`${r.command}\` (seed ${r.seed}) on ${r.startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC, on
the machine described in bench/RESULTS.md, against the chaos stack (\`.duework/chaos\`). Rerun with
\`--seed ${r.seed}\` for the same fault points.

${table(r.rows)}

## Items per workload

${workloadsTable(r.rows)}

## Effects per provider

${effectsTable(r.rows)}

## Secrets and coverage

- ${secretsLine(r.secrets)}
- Jobs: ${coverageLine(r.coverage)}

## How each figure is measured

${METHOD}
`;
  await Deno.writeTextFile(path, text);
  return path;
}

const METHOD = `- **Items**: due items seeded through the tables a user fills, per 100: 50 booking reminders (per
  booking one WhatsApp template through the fake Twilio and one email through the fake Resend), 25
  expired YouTube tokens (fake Google), 15 LinkedIn sends over the fake Unipile (invitations,
  first follow-ups, outbox messages; 5 per account) and 10 TikTok tokens (fake TikTok, which
  rotates refresh tokens). The fakes answer after 50 ms.
- **Engine settings** for every scenario: batches of ${ENGINE.batch}, ${ENGINE.inFlight} in flight per job, retries after
  ${ENGINE.backoffBase} s doubling to ${ENGINE.backoffCap} s, ${ENGINE.maxAttempts} attempts, the migrations' leases (15 s) and the stack's 10 s heartbeat.
- **Lost**: items neither done (the provider's id or the new token recorded) nor dead with a reason
  when the scenario ended, plus items the database calls done whose effect no fake made.
- **Duplicated effects**: from the fakes' state, per recipient: Twilio messages to a phone,
  Resend emails to an address, Unipile invitations to a member and our messages in a chat with a
  member, beyond one. Twilio and Unipile have no idempotency key; the functions reconcile by
  listing before a retry (docs/bookings.md, docs/outreach.md), so the documented worst case is 0.
  Resend gets the task key as Idempotency-Key.
- **Dead (with reason)**: TikTok rotates the refresh token on every use, so a refresh whose answer
  is lost after TikTok acted (a reset or a late answer, a crash before the write) leaves that
  account \`needs_reauth\` with the reason (docs/jobs.md, "What a crash can cost"): dead, not lost.
- **Repeated calls (no effect)**: refresh grants beyond one per token; a refresh only mints a new
  access token, so a repeat after a lost answer costs a call, not an effect.
- **Recovery time**: process faults: from the strike until, once the process runs again, one
  in-flight window (${ENGINE.batch * ENGINE.inFlight} items) more is done, the slowest strike; provider faults: from the last struck request until the last item
  settled; outage: from the end of the outage until the provider's items were all settled.
- **Invariants** after every scenario (a failure otherwise): no task running past its lease, no
  batch unsettled, no dead task without a reason, no task of the drained jobs left open.
- **Secrets**: every key, token and client secret of the stack and of the sandbox's fixtures, as
  is, URL-encoded and JSON-escaped, searched in every file under the stack's logs, in
  \`net.http_request_queue\` and \`net._http_response\` and in every text and JSON column of the
  \`jobs\` tables.`;
