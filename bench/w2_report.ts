// The W2 section of bench/RESULTS.md: goals (PASS/MISS), the throughput runs, the rate-limit
// accuracy run, where Duework's database time went, and how each run was set up.
import { CEILING_GOAL, RATE_TOLERANCE, type W2Results, type W2Run } from "./w2.ts";
import * as dwDesc from "./contenders/duework_reminders.ts";
import * as ceilingDesc from "./contenders/reminders_ceiling.ts";
import * as rateDesc from "./rate_limit.ts";

const fmt = (v: number | null | undefined, d = 0) => (v === null || v === undefined ? "–" : v.toFixed(d));
const pass = (ok: boolean | null) => (ok === null ? "–" : ok ? "**PASS**" : "**MISS**");
const CPU_KEYS: [string, string][] = [
  ["postgres", "Postgres"],
  ["netWorker", "net worker"],
  ["functions", "functions server"],
  ["sandbox", "sandbox"],
  ["peerWorker", "peer worker"],
  ["orchestrator", "orchestrator"],
  ["unaccounted", "unaccounted"],
];
const LABEL: Record<W2Run["contender"], string> = {
  "duework": "Duework (send_booking_reminders() → pg_net → send-reminder)",
  "reminders-ceiling": "HTTP-only ceiling (same sends, no database)",
};

const cpu = (c: Record<string, number>, sends: number) =>
  CPU_KEYS.map(([k]) => (typeof c[k] === "number" ? ((c[k] * 1000) / sends).toFixed(2) : "–")).join(" / ");
const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

export function renderW2(w2: W2Results): string {
  const out: string[] = [];
  const dw = w2.throughput.find((r) => r.contender === "duework");
  const ceiling = w2.throughput.find((r) => r.contender === "reminders-ceiling");
  const rate = w2.rate;
  const c = w2.config;
  out.push(
    "## W2 \"booking reminders\"",
    "",
    `${c.bookings} confirmed bookings whose event is about 20 h out, each client with an opted-in phone and an email ` +
      "and a time zone where it is midday (its send window, 08:00-21:00 local, open all run long): " +
      `${2 * c.bookings} sends (${c.bookings} WhatsApp templates to the fake Twilio, ${c.bookings} emails to the fake Resend), ` +
      `${c.latencyMs} ms fake latency on both, C = ${c.c} (booking-reminders: batch_size ${c.batch}, max_in_flight ${c.c / c.batch}), ` +
      `Twilio status callbacks ${c.callbacks ? "**on**" : "off"} in Duework's run, ` +
      (c.heartbeat === "hosted"
        ? "heartbeat as on hosted Supabase (`--w2-heartbeat hosted`: `select jobs.heartbeat()` every 10 s from the bench, pg_cron's minute heartbeat unscheduled). "
        : `the local stack's heartbeat (pg_cron 1.4: one \`select jobs.heartbeat_minute()\` statement per minute${dw?.extra?.heartbeatWaitedFor ? "; the measured run started while it ran" : ""}). `) +
      "Duework: from just before " +
      "`select send_booking_reminders()` (discovery of every notification is inside the drain) until every notification has a " +
      "provider_message_id. Ceiling: C callers make the same HTTP requests, no database. sends/s = sends / drain.",
    "",
    "### Goals",
    "",
    "| goal | measured | ratio | result |",
    "|---|---|---|---|",
    dw?.sendsPerSec && ceiling?.sendsPerSec
      ? `| Duework ≥ ${CEILING_GOAL * 100} % of the HTTP-only ceiling | ${fmt(dw.sendsPerSec)} vs ceiling ${fmt(ceiling.sendsPerSec)} sends/s | ` +
        `${fmt(100 * (w2.goals.ceilingRatio ?? dw.sendsPerSec / ceiling.sendsPerSec))} % | ${pass(w2.goals.ceilingPass)} |`
      : "| Duework ≥ 85 % of the HTTP-only ceiling | not measured (or a run failed) | – | – |",
    rate
      ? `| email rate within ±${RATE_TOLERANCE * 100} % of the fake Resend's ${rate.limitPerSecond} req/s | ` +
        `${fmt(rate.measuredRate, 2)} req/s from the 10th send on (${rate.emails} emails) | ${rate.deviation === null ? "–" : `${(100 * rate.deviation).toFixed(1)} %`} | ${pass(w2.goals.ratePass)} |`
      : `| email rate within ±${RATE_TOLERANCE * 100} % of the limit | not measured${w2.rateError ? `: ${w2.rateError}` : ""} | – | – |`,
    rate
      ? `| no 429 from the fake Resend in the rate run | ${rate.responses429} × 429 (most accepted in any 1 s: ${rate.maxInAnySecond}) | – | ${pass(w2.goals.zero429Pass)} |`
      : "| no 429 from the fake Resend in the rate run | not measured | – | – |",
    "",
    "### Throughput",
    "",
    "| contender | ok | sends | drain s | sends/s | first send after ms | sends/s first → last send | phones not messaged exactly once | " +
      "email keys not accepted exactly once | POSTs Twilio / Resend | 429s | tasks not succeeded / dead / retried | " +
      `CPU-s per 1000 sends: ${CPU_KEYS.map(([, l]) => l).join(" / ")} | host busy % |`,
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const r of w2.throughput) {
    const e = r.extra ?? {};
    const k = r.checks;
    out.push(
      `| ${LABEL[r.contender]} | ${r.ok ? "✓" : "✗"} | ${r.sends} | ${fmt(r.drainMs === null ? null : r.drainMs / 1000, 2)} | ` +
        `**${fmt(r.sendsPerSec)}** | ${fmt(num(e.firstSendMs))} | ${fmt(num(e.steadySendsPerSec))} | ${k.phonesNotExactlyOnce} | ` +
        `${k.keysNotExactlyOnce} | ${k.twilioPosts} / ${k.resendPosts} | ${k.responses429} | ` +
        `${k.tasksNotSucceeded === null ? "n/a" : `${k.tasksNotSucceeded} / ${k.tasksDead} / ${k.tasksRetried}`} | ` +
        `${cpu(r.cpu, r.sends)} | ${fmt(r.cpu.hostBusyPct)} |`,
    );
  }
  const e = dw?.extra ?? {};
  if (dw && typeof e.firstSendMs === "number") {
    out.push(
      "",
      `Duework's drain: the tick (discovery of ${dw.sends} notifications and tasks, first claims) took ${fmt(num(e.tickMs))} ms and the ` +
        `first provider request came ${fmt(num(e.firstSendMs))} ms after t0; between the first and the last request ` +
        `${fmt(num(e.steadySendsPerSec))} sends/s. Sampled with each poll: ${fmt(num(e.activeBackends), 2)} other client backends ` +
        `running a statement on average, ${fmt(num(e.waitingForClaimLock), 2)} waiting for the job's claim lock; ` +
        `\`select jobs.heartbeat_minute()\` (pg_cron 1.4's minute-long heartbeat statement, local stack only) held the xmin ` +
        `horizon back in ${fmt(100 * (num(e.xminPinnedShare) ?? 0))} % of the polls, so no row version made dead during the run ` +
        "could be pruned (the `twilio` / `resend` bucket rows are updated by every claim).",
    );
  }
  const failures = [...w2.throughput.filter((r) => !r.ok).map((r) => `${r.contender}: ${r.failures.join("; ")}`),
    ...(rate && !rate.ok ? [`rate run: ${rate.failures.join("; ")}`] : []), ...(w2.rateError ? [`rate run: ${w2.rateError}`] : [])];
  out.push(
    "",
    failures.length
      ? `**Failed checks:**\n\n${failures.map((f) => `- ${f}`).join("\n")}`
      : "Every W2 run passed its checks: every notification sent exactly once (one Twilio message per phone and one accepted Resend " +
        "email per Idempotency-Key in the fakes' state, no extra POST), each provider id recorded on its notification, no failed or dead task.",
    "",
  );

  if (rate) {
    const g = (rate.extra?.gapsMs ?? {}) as Record<string, number | null>;
    out.push(
      "### Rate-limit accuracy",
      "",
      "| emails | fake Resend limit | bucket `resend` | measured rate, arrival times (10th → last) | same from created_at | vs limit | " +
        "most accepted in any 1 s | 429s | gap between sends ms p10 / p50 / p90 / max | tasks retried | drain s | ok |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
      `| ${rate.emails} | ${rate.limitPerSecond}/s, sliding 1 s | capacity ${rate.bucket.capacity}, refill ${rate.bucket.refill_per_second}/s | ` +
        `**${fmt(rate.measuredRate, 2)}**/s | ${fmt(rate.measuredRateCreatedAt, 2)}/s | ${rate.deviation === null ? "–" : `${(100 * rate.deviation).toFixed(1)} %`} | ` +
        `${rate.maxInAnySecond} | ${rate.responses429} | ${fmt(g.p10)} / ${fmt(g.p50)} / ${fmt(g.p90)} / ${fmt(g.max)} | ${rate.tasksRetried ?? "–"} | ` +
        `${fmt(rate.drainMs === null ? null : rate.drainMs / 1000, 1)} | ${rate.ok ? "✓" : "✗"} |`,
      "",
      `With capacity 1 a send leaves at the earliest 1 / refill after the previous claim, so the gap is 1 / ${rate.bucket.refill_per_second} s = ` +
        `${fmt(1000 / rate.bucket.refill_per_second, 1)} ms plus however late the pacing slot claims again; the median gap above shows that lateness.`,
      "",
    );
  }

  const fns = (dw?.extra?.functions ?? []) as { name: string; calls: number; totalMs: number; selfMs: number }[];
  if (fns.length && dw) {
    out.push(
      "### Where Duework's database time went (throughput run)",
      "",
      `pg_stat_user_functions over the run (track_functions = pl during W2), the functions with the most total time; ${dw.sends} sends.`,
      "",
      "| function | calls | total ms | self ms | ms per call | µs per send (total) |",
      "|---|---|---|---|---|---|",
      ...fns.map((f) =>
        `| \`${f.name}\` | ${f.calls} | ${f.totalMs} | ${f.selfMs} | ${(f.totalMs / f.calls).toFixed(2)} | ${((1000 * f.totalMs) / dw.sends).toFixed(0)} |`
      ),
      "",
    );
  }

  out.push(
    "### How W2 was set up",
    "",
    `- Duework: ${dwDesc.describe(c.c, c.batch, c.callbacks)}.`,
    `- Ceiling: ${ceilingDesc.describe(c.c)}.`,
    ...(rate ? [`- Rate-limit accuracy: ${rate.emails} email-only bookings (clients without a phone); ${rateDesc.describe(rate.bucket, rate.limitPerSecond, rate.latencyMs, c.c, c.batch)}.`] : []),
    "- Fake latency: Twilio `latency_ms`; Resend `processing_ms` (the time an accepted send takes before its 200; every W2 request " +
      "is an accepted send with a fresh key, so it is a plain response delay; a 429 answers at once).",
    "- Every run starts from a reset: the bench's clients, bookings, notifications and delivery statuses and the three reminder jobs' " +
      "tasks, batches and runs are deleted, the sandbox is reset (fresh fakes, empty request log); after W2 the buckets get the " +
      "migration's sizes back. Checks read the fakes' own state (`GET /__state/twilio`, `GET /__state/resend`) and request log.",
    "",
  );
  return out.join("\n");
}
