// Workload W2 "booking reminders" (docs/bookings.md): the data of a run and its checks, in SQL.
// Bench rows are recognised by their names (clients and performers named "w2-bench …"), so a
// reset deletes exactly them, their bookings and notifications, and the tasks, batches and runs
// of the three reminder jobs; W1 and earlier W2 runs leave nothing behind for each other.
import type postgres from "npm:postgres@^3.4.9";

type Sql = ReturnType<typeof postgres>;

export const REMINDER_JOB = "booking-reminders";
/** Every job that sends through send-reminder (they share the twilio / resend buckets). */
export const REMINDER_JOBS = ["booking-reminders", "payment-reminders", "booking-notices"];
export const NAME_PREFIX = "w2-bench";
export const PERFORMERS = 50;

/** Client i's phone (E.164, not one of the fixture's special numbers) and email. */
export const phoneOf = (i: number) => `+1555${String(i).padStart(7, "0")}`;
export const emailOf = (i: number) => `w2-${i}@example.test`;
/** The task key of booking `bookingId`'s reminder on `channel`: Resend's Idempotency-Key. */
export const reminderKey = (bookingId: number, channel: "email" | "whatsapp") => `event_reminder:${bookingId}:${channel}`;

/** The migration's sizes (restored after W2): Resend 5/s with capacity 1, Twilio 50/s. */
export const DEFAULT_BUCKETS = [
  { key: "resend", capacity: 1, refill_per_second: 5 },
  { key: "twilio", capacity: 50, refill_per_second: 50 },
];

export interface Bucket {
  key: string;
  capacity: number;
  refill_per_second: number;
}

/** Deletes the bench's bookings, notifications and delivery statuses, and the reminder jobs' tasks. */
export async function resetW2(sql: Sql): Promise<void> {
  const like = `${NAME_PREFIX} %`;
  await sql`
    delete from bookings.message_status
     where message_sid in (select n.provider_message_id from public.notifications n
                             join public.clients c on c.id = n.client_id where c.name like ${like})`;
  await sql`delete from jobs.task where job_name = any (${REMINDER_JOBS})`;
  await sql`delete from jobs.batch where job_name = any (${REMINDER_JOBS})`;
  await sql`delete from jobs.run where job_name = any (${REMINDER_JOBS})`;
  await sql`delete from public.notifications where client_id in (select id from public.clients where name like ${like})`;
  await sql`delete from public.bookings where client_id in (select id from public.clients where name like ${like})`;
  await sql`delete from public.clients where name like ${like}`;
  await sql`delete from public.performers where name like ${like}`;
  await sql`delete from net._http_response`;
}

/**
 * The job as W2 runs it (batch_size × max_in_flight = C tasks in flight), its buckets sized and
 * full. jobs.size_rate_limits keeps a bucket's tokens when it only grows, so they are refilled here.
 */
export async function configureReminders(sql: Sql, c: number, batch: number, buckets: Bucket[]): Promise<void> {
  await sql`update jobs.job set batch_size = ${batch}, max_in_flight = ${c / batch}, paused = false, enabled = true,
              suspended_until = null, last_error = null where name = ${REMINDER_JOB}`;
  await sql`select jobs.size_rate_limits(${REMINDER_JOB}, ${sql.json(buckets as unknown as postgres.JSONValue)})`;
  await sql`update jobs.rate_limit set tokens = capacity, refilled_at = now() where key = any (${buckets.map((b) => b.key)})`;
}

/**
 * A zone where it is midday now (Etc/GMT-9 is UTC+9). Reminders go out between 08:00 and 21:00 in
 * the client's zone (docs/bookings.md "Send windows"): the bench's clients live there, so no send
 * waits for a morning at any hour of the run, and every task still takes the windowed path.
 */
export function middayZone(now = new Date()): string {
  const offset = ((12 - now.getUTCHours() + 36) % 24) - 12;
  return offset === 0 ? "Etc/GMT" : `Etc/GMT${offset > 0 ? "-" : "+"}${Math.abs(offset)}`;
}

/**
 * `n` clients (client i: email emailOf(i), and with `withPhone` phone phoneOf(i), opted in to
 * WhatsApp; time zone middayZone()), each with one confirmed, deposit-paid booking whose event
 * starts in about 20 h (20 h + up to 30 min), no balance due: booking-reminders discovers 1 or 2
 * sends per booking.
 */
export async function seedBookings(sql: Sql, n: number, withPhone: boolean): Promise<void> {
  await sql`insert into public.performers (name) select ${NAME_PREFIX + " performer "} || g from generate_series(1, ${PERFORMERS}) g`;
  await sql`
    insert into public.clients (name, email, phone, whatsapp_opt_in, time_zone)
    select ${NAME_PREFIX + " client "} || g, 'w2-' || g || '@example.test',
           case when ${withPhone} then '+1555' || lpad(g::text, 7, '0') end, ${withPhone}, ${middayZone()}
      from generate_series(1, ${n}) g`;
  await sql`
    insert into public.bookings (client_id, performer_id, status, event_at, deposit_paid_at)
    select c.id, p.ids[1 + (c.id % ${PERFORMERS})], 'confirmed',
           now() + interval '20 hours' + random() * interval '30 minutes', now()
      from public.clients c,
           (select array_agg(id order by id) as ids from public.performers where name like ${NAME_PREFIX + " %"}) p
     where c.name like ${NAME_PREFIX + " %"}`;
}

/** Notifications of the bench's bookings that have a provider message id (the end condition). */
export async function sentCount(sql: Sql): Promise<number> {
  const [{ n }] = await sql`
    select count(*)::int as n from public.notifications where kind = 'event_reminder' and provider_message_id is not null`;
  return n;
}

export interface DbChecks {
  notifications: number;
  withMessageId: number;
  byChannel: Record<string, number>;
  byStatus: Record<string, number>;
  failedNotifications: number;
  tasks: number;
  tasksNotSucceeded: number;
  tasksDead: number;
  tasksRetried: number;
  tasksWithError: number;
  firstError: string | null;
  batches: number;
  batchesNot202: number;
  /** Message ids of the WhatsApp / email notifications (to compare with the fakes). */
  whatsappIds: Map<string, string>;
  emailIds: Map<string, string>;
  /** max(sent_at) − the manual run's started_at: the drain as the database saw it. */
  dbDrainMs: number | null;
}

export async function dbChecks(sql: Sql): Promise<DbChecks> {
  const rows = await sql`
    select n.booking_id, n.channel, n.status, n.provider_message_id from public.notifications n
     where n.kind = 'event_reminder'`;
  const byChannel: Record<string, number> = {};
  const byStatus: Record<string, number> = {};
  const whatsappIds = new Map<string, string>();
  const emailIds = new Map<string, string>();
  let withMessageId = 0;
  for (const r of rows) {
    byChannel[r.channel] = (byChannel[r.channel] ?? 0) + 1;
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    if (r.provider_message_id) {
      withMessageId++;
      (r.channel === "email" ? emailIds : whatsappIds).set(r.provider_message_id, reminderKey(Number(r.booking_id), r.channel));
    }
  }
  const [t] = await sql`
    select count(*)::int as total,
           count(*) filter (where state <> 'succeeded')::int as not_succeeded,
           count(*) filter (where state = 'dead')::int as dead,
           count(*) filter (where attempts > 1)::int as retried,
           count(*) filter (where last_error is not null)::int as with_error,
           max(last_error) as first_error,
           (select count(*)::int from jobs.batch where job_name = ${REMINDER_JOB}) as batches,
           (select count(*)::int from jobs.batch where job_name = ${REMINDER_JOB} and http_status is distinct from 202) as batches_not_202,
           (select extract(epoch from (select max(sent_at) from public.notifications where kind = 'event_reminder')
                                     - (select min(started_at) from jobs.run where job_name = ${REMINDER_JOB} and trigger = 'manual')) * 1000)
             as db_drain_ms
      from jobs.task where job_name = ${REMINDER_JOB}`;
  return {
    notifications: rows.length,
    withMessageId,
    byChannel,
    byStatus,
    failedNotifications: (byStatus.failed ?? 0) + (byStatus.undelivered ?? 0) + (byStatus.skipped ?? 0),
    tasks: t.total,
    tasksNotSucceeded: t.not_succeeded,
    tasksDead: t.dead,
    tasksRetried: t.retried,
    tasksWithError: t.with_error,
    firstError: t.first_error ?? null,
    batches: t.batches,
    batchesNot202: t.batches_not_202,
    whatsappIds,
    emailIds,
    dbDrainMs: t.db_drain_ms === null ? null : Number(t.db_drain_ms),
  };
}

/** Waits (up to `ms`) until the reminder job has no request in flight. */
export async function settle(sql: Sql, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const [{ open }] = await sql`select count(*)::int as open from jobs.batch where job_name = ${REMINDER_JOB} and settled_at is null`;
    if (open === 0 || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One W2 throughput run (Duework or the HTTP ceiling), as stored in results.json. */
export interface W2Run {
  contender: "duework" | "reminders-ceiling";
  bookings: number;
  sends: number;
  c: number;
  latencyMs: number;
  callbacks: boolean;
  startedAt: string;
  ok: boolean;
  failures: string[];
  drainMs: number | null;
  sendsPerSec: number | null;
  checks: {
    /** Phones the fake Twilio did not create exactly one message to. */
    phonesNotExactlyOnce: number;
    twilioMessages: number;
    twilioPosts: number;
    /** Idempotency keys the fake Resend did not accept exactly one email for. */
    keysNotExactlyOnce: number;
    resendEmails: number;
    resendPosts: number;
    responses429: number;
    /** Duework: notifications with a provider message id / not sent / tasks failed or dead. */
    notificationsSent: number | null;
    notificationsFailed: number | null;
    tasksNotSucceeded: number | null;
    tasksDead: number | null;
    tasksRetried: number | null;
    errors: number;
    firstError: string | null;
  };
  cpu: Record<string, number>;
  extra?: Record<string, unknown>;
}

/** The rate-limit accuracy run. */
export interface W2RateRun {
  emails: number;
  limitPerSecond: number;
  window: "sliding";
  bucket: Bucket;
  latencyMs: number;
  startedAt: string;
  ok: boolean;
  failures: string[];
  drainMs: number | null;
  /** Accepted emails from the 10th to the last, over the time between them (fake's arrival times). */
  measuredRate: number | null;
  /** Same, from the emails' created_at in GET /__state/resend (arrival + processing_ms). */
  measuredRateCreatedAt: number | null;
  /** measuredRate / limit − 1. */
  deviation: number | null;
  /** Most requests the fake saw in any 1 s span (the sliding window's view; ≤ limit means no 429). */
  maxInAnySecond: number;
  responses429: number;
  resendPosts: number;
  keysNotExactlyOnce: number;
  tasksNotSucceeded: number | null;
  tasksDead: number | null;
  tasksRetried: number | null;
  cpu: Record<string, number>;
  extra?: Record<string, unknown>;
}

export interface W2Results {
  config: {
    bookings: number;
    rateEmails: number;
    latencyMs: number;
    c: number;
    batch: number;
    callbacks: boolean;
    heartbeat?: "local" | "hosted";
  };
  throughput: W2Run[];
  rate: W2RateRun | null;
  /** Why the rate run has no record (it threw), else null. */
  rateError: string | null;
  goals: { ceilingRatio: number | null; ceilingPass: boolean | null; ratePass: boolean | null; zero429Pass: boolean | null };
}

/** Goals: Duework ≥ 85 % of the HTTP ceiling; measured email rate within ±5 % of the limit; no 429. */
export const CEILING_GOAL = 0.85;
export const RATE_TOLERANCE = 0.05;

/**
 * Adds `unaccounted`: busy CPU-s of the host between the samples that no measured process tree
 * used (the kernel's loopback networking, and any other load on the machine: a figure well
 * above a few tenths of a second says the run was disturbed).
 */
export function withUnaccounted(cpu: Record<string, number>, wallMs: number): Record<string, number> {
  const named = Object.entries(cpu).filter(([k]) => k !== "hostBusyPct").reduce((a, [, v]) => a + v, 0);
  const busy = ((cpu.hostBusyPct ?? 0) / 100) * navigator.hardwareConcurrency * (wallMs / 1000);
  return { ...cpu, unaccounted: Math.max(0, busy - named) };
}
