// W2 rate-limit accuracy: N email-only bookings (clients without a phone) → N emails through
// booking-reminders, with the fake Resend limited to 10 requests/s (sliding 1 s window: at most
// 10 accepted requests in any 1 s span) and the `resend` bucket sized to stay under it. Measured
// at the fake: the accepted requests' arrival times, from the 10th to the last (the steady part),
// the most requests in any 1 s span, and the 429s it answered.
import type postgres from "npm:postgres@^3.4.9";
import type { BenchStack } from "./stack.ts";
import { cpuDelta, sampleCpu } from "./cpu.ts";
import { functionDelta, functionStats } from "./function_stats.ts";
import type { SandboxClient } from "./sandbox.ts";
import { loggedPosts, maxInWindow, resendSeen, setupReminderFakes, steadyRate } from "./reminders_sandbox.ts";
import { THROUGHPUT_BUCKETS } from "./contenders/duework_reminders.ts";
import {
  type Bucket,
  configureReminders,
  dbChecks,
  RATE_TOLERANCE,
  REMINDER_JOB,
  reminderKey,
  resetW2,
  seedBookings,
  sentCount,
  settle,
  type W2RateRun,
  withUnaccounted,
} from "./w2.ts";

type Sql = ReturnType<typeof postgres>;

/** The send rate is measured from this send on (the first ones may come faster: the bucket starts full). */
export const STEADY_FROM = 10;

/**
 * The `resend` bucket for a provider limit of `limit` requests/s in a sliding window.
 * Capacity 1: a token is never saved up, so no two sends leave closer together than
 * 1 / refill_per_second (a capacity above 1 would let a burst through after any pause, and 11
 * in a 1 s span is a 429). The refill is 2 % under the limit, 9.8/s for 10/s: 10 grants then
 * span 10 / 9.8 = 1.0204 s instead of 1 s, i.e. 20 ms of margin for the time between the
 * claim that takes the token (Postgres' now()) and the request reaching the fake (the claim's
 * commit, the slot starting its call, the network), which varies by a few ms per send. The cost
 * is 2 % of the allowed rate, inside the ±5 % goal. What the run measures on top: the pacing slot
 * claims a few ms after the token is due (it sleeps wait_ms, counted from its claim's transaction
 * start, only once that claim's round trip is over), and with capacity 1 that lateness is never
 * made up, so the steady gap is 1 / refill + the lateness (the report shows the gaps).
 * `--w2-refill` / `--w2-capacity` try other sizes.
 */
export function rateBucket(limit: number, refill: number | null = null, capacity = 1): Bucket {
  return { key: "resend", capacity, refill_per_second: refill ?? Math.round(limit * 0.98 * 100) / 100 };
}

export function describe(b: Bucket, limit: number, latencyMs: number, c: number, batch: number): string {
  return `fake Resend rate_limit_per_second ${limit} (sliding 1 s window), processing_ms ${latencyMs}; ` +
    `bucket resend capacity ${b.capacity}, refill_per_second ${b.refill_per_second}; booking-reminders batch_size ${batch}, ` +
    `max_in_flight ${c / batch}; rate = (accepted sends from the ${STEADY_FROM}th to the last − 1) / time between them, ` +
    "from the fake's request log (arrival times); goal: within ±5 % of the limit, 0 × 429";
}

export async function runRateAccuracy(
  { stack, sandbox, sql, poll, emails, limit, refill, capacity, latencyMs, c, batch }: {
    stack: BenchStack;
    sandbox: SandboxClient;
    sql: Sql;
    poll: Sql;
    emails: number;
    limit: number;
    refill: number | null;
    capacity: number;
    latencyMs: number;
    c: number;
    batch: number;
  },
): Promise<W2RateRun> {
  const bucket = rateBucket(limit, refill, capacity);
  await settle(sql, 10_000);
  await resetW2(sql);
  await configureReminders(sql, c, batch, [bucket, THROUGHPUT_BUCKETS.find((b) => b.key === "twilio")!]);
  await sandbox.reset();
  await setupReminderFakes(stack.info.sandbox_url, { latencyMs, callbacks: false, resendLimitPerSecond: limit });
  await seedBookings(sql, emails, false);
  await sql`vacuum analyze`;
  const fnBefore = await functionStats(sql);

  const timeoutMs = Math.ceil((emails / bucket.refill_per_second) * 1500) + 30_000;
  const roots = stack.cpuRoots();
  const before = sampleCpu(roots);
  const t0 = Date.now();
  await sql`select public.send_booking_reminders()`;
  let done = 0;
  let tEnd: number | null = null;
  for (;;) {
    done = await sentCount(poll);
    if (done >= emails) {
      tEnd = Date.now();
      break;
    }
    if (Date.now() - t0 > timeoutMs) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const after = sampleCpu(roots);
  const tAfter = Date.now();
  await settle(sql, 10_000);
  await new Promise((r) => setTimeout(r, 1_200));
  const functions = functionDelta(fnBefore, await functionStats(sql));

  const db = await dbChecks(sql);
  const [{ ids }] = await sql`
    select coalesce(array_agg(b.id order by b.id), '{}') as ids from public.bookings b
      join public.clients c on c.id = b.client_id where c.name like 'w2-bench %'`;
  const keys = (ids as string[]).map((id) => reminderKey(Number(id), "email"));
  const resend = await resendSeen(stack.info.sandbox_url, keys);
  const posts = await loggedPosts(stack.info.sandbox_url, "resend", "/emails");
  const accepted = posts.filter((p) => p.status === 200).map((p) => p.t);
  const measuredRate = steadyRate(accepted, STEADY_FROM);
  // The requests that carried the emails (how many, who dispatched them and when, relative to t0).
  const requests = (await sql`
    select id, run_id, size, http_status,
           round(extract(epoch from dispatched_at) * 1000 - ${t0}) as dispatched_ms,
           round(extract(epoch from accepted_at) * 1000 - ${t0}) as accepted_ms,
           round(extract(epoch from settled_at) * 1000 - ${t0}) as settled_ms
      from jobs.batch where job_name = ${REMINDER_JOB} order by id`).map((b) => ({ ...b, id: Number(b.id) }));
  const refused = posts.filter((p) => p.status !== 200).map((p) => p.t - t0);
  const gaps = accepted.slice(1).map((t, i) => t - accepted[i]).sort((a, b) => a - b);
  const pct = (q: number) => gaps.length ? gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] : null;

  const failures: string[] = [];
  if (tEnd === null) failures.push(`timed out: ${done}/${emails} emails sent after ${timeoutMs / 1000} s`);
  if (db.withMessageId !== emails || db.notifications !== emails) {
    failures.push(`${db.withMessageId}/${emails} notifications sent (${db.notifications} discovered)`);
  }
  if (resend.notExactlyOnce || resend.emails !== emails) {
    failures.push(`fake Resend: ${resend.emails} emails for ${emails} keys, ${resend.notExactlyOnce} keys not accepted exactly once`);
  }
  if (db.tasksNotSucceeded || db.tasksDead) failures.push(`${db.tasksNotSucceeded} tasks not succeeded (${db.tasksDead} dead); first error: ${db.firstError}`);
  return {
    emails,
    limitPerSecond: limit,
    window: "sliding",
    bucket,
    latencyMs,
    startedAt: new Date(t0).toISOString(),
    ok: failures.length === 0,
    failures,
    drainMs: tEnd === null ? null : tEnd - t0,
    measuredRate,
    measuredRateCreatedAt: steadyRate(resend.createdAt, STEADY_FROM),
    deviation: measuredRate === null ? null : measuredRate / limit - 1,
    maxInAnySecond: maxInWindow(accepted),
    responses429: resend.responses429,
    resendPosts: posts.length,
    keysNotExactlyOnce: resend.notExactlyOnce,
    tasksNotSucceeded: db.tasksNotSucceeded,
    tasksDead: db.tasksDead,
    tasksRetried: db.tasksRetried,
    cpu: withUnaccounted(cpuDelta(before, after), tAfter - t0),
    extra: {
      requests,
      refusedAtMs: refused,
      gapsMs: { p10: pct(0.1), p50: pct(0.5), p90: pct(0.9), max: gaps.length ? gaps[gaps.length - 1] : null },
      firstError: db.firstError,
      functions,
      withinTolerance: RATE_TOLERANCE,
    },
  };
}
