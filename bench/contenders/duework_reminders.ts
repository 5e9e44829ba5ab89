// W2 throughput, Duework on its real path: one `select send_booking_reminders()` (the tick of
// booking-reminders: discover → one notification + one task per (booking, channel) → claim →
// pg_net POST to send-reminder) sends every reminder; each batch that finishes dispatches the
// next, and each request's slots claim ahead (jobs.report) with task_rate_limits on (every claim
// takes a token of the task's bucket, `twilio` or `resend`, sized here so that neither limits).
import postgres from "npm:postgres@^3.4.9";
import type { BenchStack } from "../stack.ts";
import { type CpuSample, cpuDelta, sampleCpu } from "../cpu.ts";
import {
  effectChecks,
  effectFailures,
  loggedPosts,
  resendSeen,
  sendTiming,
  setupReminderFakes,
  twilioSeen,
} from "../reminders_sandbox.ts";
import type { SandboxClient } from "../sandbox.ts";
import { waitForMinuteHeartbeat } from "../w2_heartbeat.ts";
import { functionDelta, functionStats } from "../function_stats.ts";
import {
  configureReminders,
  dbChecks,
  phoneOf,
  REMINDER_JOB,
  REMINDER_JOBS,
  reminderKey,
  resetW2,
  seedBookings,
  sentCount,
  settle,
  type W2Run,
  withUnaccounted,
} from "../w2.ts";

type Sql = ReturnType<typeof postgres>;

/** Large enough never to limit 10,000 sends (the buckets start full). */
export const THROUGHPUT_BUCKETS = [
  { key: "twilio", capacity: 100_000, refill_per_second: 100_000 },
  { key: "resend", capacity: 100_000, refill_per_second: 100_000 },
];

export function describe(c: number, batch: number, callbacks: boolean): string {
  return `jobs.job ${REMINDER_JOB}: batch_size ${batch}, max_in_flight ${c / batch} (= ${c} tasks in flight), task_rate_limits on, ` +
    `buckets twilio and resend sized ${THROUGHPUT_BUCKETS[0].capacity} / ${THROUGHPUT_BUCKETS[0].refill_per_second} per s (never limiting); ` +
    "cron schedules of the reminder jobs unscheduled (the heartbeat stays); t0 just before `select send_booking_reminders()`, " +
    "end when every notification has a provider_message_id (polled on a separate connection every 50 ms, every 10 ms from 90 % on); " +
    `Twilio status callbacks ${callbacks ? "ON (the fake POSTs sent and delivered to twilio-status, which writes them)" : "off"}; ` +
    "one untimed 100-booking run before the measured one warms the send-reminder worker";
}

export class DueworkReminders {
  private sql: Sql;
  private poll: Sql;

  constructor(private stack: BenchStack, private sandbox: SandboxClient) {
    this.sql = postgres(stack.info.db_url, { max: 1, onnotice: () => {}, connection: { application_name: "bench-w2" } });
    this.poll = postgres(stack.info.db_url, { max: 1, onnotice: () => {}, connection: { application_name: "bench-w2-poll" } });
  }

  get db(): Sql {
    return this.sql;
  }

  /** Keeps the scheduled reminder ticks out of the runs and warms the send-reminder worker (untimed). */
  async init(c: number, batch: number): Promise<void> {
    for (const job of REMINDER_JOBS) {
      await this.sql`select jobs.set_schedule(${job}, null)`;
    }
    const warm = await this.run({ bookings: 100, c, batch, latencyMs: 0, callbacks: false, timeoutMs: 60_000 });
    if (!warm.ok) throw new Error(`W2 warm-up run failed: ${warm.failures.join("; ")}`);
  }

  async close(): Promise<void> {
    await this.sql.end();
    await this.poll.end();
  }

  async run(
    { bookings, c, batch, latencyMs, callbacks, timeoutMs, waitForHeartbeat = false }: {
      bookings: number;
      c: number;
      batch: number;
      latencyMs: number;
      callbacks: boolean;
      timeoutMs: number;
      /** Start once the local minute heartbeat runs (bench/w2_heartbeat.ts). */
      waitForHeartbeat?: boolean;
    },
  ): Promise<W2Run> {
    const { sql, poll } = this;
    const sends = 2 * bookings;
    // Setup, not timed.
    await settle(sql, 10_000);
    await resetW2(sql);
    await configureReminders(sql, c, batch, THROUGHPUT_BUCKETS);
    await this.sandbox.reset();
    await setupReminderFakes(this.stack.info.sandbox_url, { latencyMs, callbacks, resendLimitPerSecond: null });
    await seedBookings(sql, bookings, true);
    await sql`vacuum analyze`;
    await sql`checkpoint`;
    await poll`select 1`;
    const heartbeatWaitedFor = waitForHeartbeat ? await waitForMinuteHeartbeat(poll) : null;
    const fnBefore = await functionStats(sql);

    const roots = this.stack.cpuRoots();
    const before: CpuSample = sampleCpu(roots);
    const t0 = Date.now();
    const tick = sql`select public.send_booking_reminders() as r`.then((rows) => ({ r: rows[0].r, t: Date.now() }));
    let done = 0;
    let tEnd: number | null = null;
    // Sampled with every poll: client backends running a statement, those waiting for the job's
    // claim lock (an advisory lock a claiming jobs.report holds until it commits), and whether
    // pg_cron 1.4's minute-long `select jobs.heartbeat_minute()` holds back the xmin horizon (then
    // no row version the run makes dead can be pruned: the bucket rows' update chains grow).
    let samples = 0, activeSum = 0, claimLockSum = 0, pinnedSamples = 0;
    for (;;) {
      done = await sentCount(poll);
      const [a] = await poll`
        select count(*) filter (where state = 'active' and pid <> pg_backend_pid()
                                  and query not like '%heartbeat_minute%')::int as active,
               count(*) filter (where wait_event_type = 'Lock' and wait_event = 'advisory')::int as claim_lock,
               count(*) filter (where query like '%heartbeat_minute%' and state = 'active'
                                  and backend_xmin is not null and pid <> pg_backend_pid())::int as pinned
          from pg_stat_activity where backend_type = 'client backend'`;
      samples++;
      activeSum += a.active;
      claimLockSum += a.claim_lock;
      if (a.pinned > 0) pinnedSamples++;
      if (done >= sends) {
        tEnd = Date.now();
        break;
      }
      if (Date.now() - t0 > timeoutMs) break;
      // Each poll is a count over the run's notifications, whose Postgres CPU competes with the
      // run: every 50 ms until 90 % are sent, then every 10 ms (the end is seen within 10 ms).
      await new Promise((r) => setTimeout(r, done < 0.9 * sends ? 50 : 10));
    }
    const after = sampleCpu(roots);
    const tAfter = Date.now();
    const tickResult = await tick;

    await settle(sql, 10_000);
    // The last status callbacks, and the backends' function statistics (flushed within ~1 s).
    await new Promise((r) => setTimeout(r, 1_200));
    const functions = functionDelta(fnBefore, await functionStats(sql));
    const db = await dbChecks(sql);
    const [{ ids }] = await sql`
      select coalesce(array_agg(b.id order by b.id), '{}') as ids from public.bookings b
        join public.clients c on c.id = b.client_id where c.name like 'w2-bench %'`;
    const bookingIds = (ids as string[]).map(Number);
    const phones = Array.from({ length: bookings }, (_, i) => phoneOf(i + 1));
    const twilio = await twilioSeen(this.stack.info.sandbox_url, phones);
    const resend = await resendSeen(this.stack.info.sandbox_url, bookingIds.map((id) => reminderKey(id, "email")));
    const twilioLog = await loggedPosts(this.stack.info.sandbox_url, "twilio", "/Messages.json");
    const resendLog = await loggedPosts(this.stack.info.sandbox_url, "resend", "/emails");
    const twilioPosts = twilioLog.length;
    const resendPosts = resendLog.length;
    // Where the drain's time went: before the first provider request (tick, pg_net, the function's
    // accept and contexts) and after the last one (its outcome write and the poll noticing it).
    const arrivals = [...twilioLog, ...resendLog].map((p) => p.t).sort((a, b) => a - b);
    const unknownSids = [...db.whatsappIds.keys()].filter((s) => !twilio.sids.has(s)).length;
    const unknownEmails = [...db.emailIds.keys()].filter((s) => !resend.ids.has(s)).length;

    const failures: string[] = [];
    if (tEnd === null) failures.push(`timed out: ${done}/${sends} notifications sent after ${timeoutMs / 1000} s`);
    if (db.notifications !== sends) failures.push(`${db.notifications}/${sends} notifications discovered`);
    if (db.withMessageId !== sends) failures.push(`${db.withMessageId}/${sends} notifications have a provider message id`);
    if (db.failedNotifications) failures.push(`${db.failedNotifications} notifications failed/skipped: ${JSON.stringify(db.byStatus)}`);
    if (db.tasks !== sends || db.tasksNotSucceeded || db.tasksDead) {
      failures.push(`tasks: ${db.tasks} (want ${sends}), ${db.tasksNotSucceeded} not succeeded, ${db.tasksDead} dead; first error: ${db.firstError}`);
    }
    failures.push(...effectFailures(twilio, resend, bookings));
    if (resend.responses429) failures.push(`fake Resend answered 429 ${resend.responses429} times`);
    if (unknownSids || unknownEmails) failures.push(`${unknownSids} message sids / ${unknownEmails} email ids recorded that the fakes never issued`);
    if (callbacks && twilio.callbacksFailed) failures.push(`${twilio.callbacksFailed} status callbacks failed`);
    const drainMs = tEnd === null ? null : tEnd - t0;
    return {
      contender: "duework",
      bookings,
      sends,
      c,
      latencyMs,
      callbacks,
      startedAt: new Date(t0).toISOString(),
      ok: failures.length === 0,
      failures,
      drainMs,
      sendsPerSec: drainMs ? sends / (drainMs / 1000) : null,
      checks: {
        ...effectChecks(twilio, resend, twilioPosts, resendPosts),
        notificationsSent: db.withMessageId,
        notificationsFailed: db.failedNotifications,
        tasksNotSucceeded: db.tasksNotSucceeded,
        tasksDead: db.tasksDead,
        tasksRetried: db.tasksRetried,
        errors: db.tasksWithError,
        firstError: db.firstError,
      },
      cpu: withUnaccounted(cpuDelta(before, after), tAfter - t0),
      extra: {
        tick: tickResult.r,
        tickMs: tickResult.t - t0,
        ...sendTiming(arrivals, t0, tEnd),
        dbDrainMs: db.dbDrainMs,
        batches: db.batches,
        batchesNot202: db.batchesNot202,
        statuses: db.byStatus,
        callbacksSent: twilio.callbacksSent,
        functions,
        heartbeatWaitedFor,
        /** Mean over the polls: backends running a statement / waiting for the claim lock. */
        activeBackends: samples ? activeSum / samples : null,
        waitingForClaimLock: samples ? claimLockSum / samples : null,
        /** Share of the polls during which jobs.heartbeat_minute held the xmin horizon back. */
        xminPinnedShare: samples ? pinnedSamples / samples : null,
      },
    };
  }
}
