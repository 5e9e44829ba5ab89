// The due work every scenario drains, and how its outcome is read back.
//
// Items are booking reminders (bench/w2.ts seeds them: one WhatsApp message through the fake
// Twilio, which has no idempotency key, and one email through the fake Resend, which has one, per
// booking) plus YouTube tokens (fake Google, whose refresh grant has no key but whose effect is
// idempotent: a second refresh only mints another access token). The fakes' own state and the
// sandbox's request log are the truth for effects; the database is the truth for "done".
import type postgres from "npm:postgres@^3.4.9";
import { configureReminders, phoneOf, REMINDER_JOB, reminderKey, resetW2, seedBookings } from "../bench/w2.ts";
import { resendSeen, setupReminderFakes, twilioSeen } from "../bench/reminders_sandbox.ts";
import {
  googleRefreshCounts,
  insertExpiredAccounts,
  isolateJob,
  JOB as YOUTUBE_JOB,
  seedGoogleRefreshTokens,
} from "../tests/support/youtube.ts";

export type Sql = ReturnType<typeof postgres>;
export { REMINDER_JOB, YOUTUBE_JOB };

export interface StackInfo {
  db_url: string;
  functions_url: string;
  sandbox_url: string;
  secret_key: string;
  service_role_key: string;
  cron_secret: string;
  jwt_secret: string;
  run_dir?: string;
  pg_data?: string;
}

/** What a drain is made of: `bookings` bookings (2 items each) and `tokens` YouTube tokens. */
export interface DrainPlan {
  bookings: number;
  tokens: number;
}

export const itemCount = (p: DrainPlan) => p.bookings * 2 + p.tokens;

/**
 * The engine settings every scenario runs with: 50 requests in flight per job, retries after 5 s
 * doubling to 60 s, 8 attempts. 8 attempts over that backoff outlast a 2-minute outage (5 + 10 +
 * 20 + 40 + 60 + 60 + 60 s), and at 20 % faulty requests one item in 390,000 uses them all up.
 */
export const ENGINE = { batch: 10, inFlight: 5, backoffBase: 5, backoffCap: 60, maxAttempts: 8 };

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`POST ${url} → ${res.status} ${await res.text()}`);
  await res.body?.cancel();
};

const del = (url: string) => fetch(url, { method: "DELETE" }).then((r) => r.body?.cancel());

/** Clears the fakes' logs, faults and counters and the previous drain's rows; seeds a new drain. */
export async function prepareDrain(sql: Sql, info: StackInfo, plan: DrainPlan, run: string): Promise<Drain> {
  await del(`${info.sandbox_url}/__faults`);
  await del(`${info.sandbox_url}/__requests`);
  await resetW2(sql);
  await post(`${info.sandbox_url}/__state/twilio`, { reset_messages: true }).catch(() => {});
  await setupReminderFakes(info.sandbox_url, { latencyMs: 20, callbacks: false, resendLimitPerSecond: null });
  // Buckets far above the fakes' speed: the scenarios measure faults, not pacing.
  await configureReminders(sql, ENGINE.batch * ENGINE.inFlight, ENGINE.batch, [
    { key: "twilio", capacity: 100, refill_per_second: 1000 },
    { key: "resend", capacity: 100, refill_per_second: 1000 },
  ]);
  await isolateJob(sql, YOUTUBE_JOB, "youtube");
  for (const job of [REMINDER_JOB, YOUTUBE_JOB]) {
    await sql`update jobs.job set backoff_base_seconds = ${ENGINE.backoffBase}, backoff_cap_seconds = ${ENGINE.backoffCap},
                max_attempts = ${ENGINE.maxAttempts}, batch_size = ${ENGINE.batch}, max_in_flight = ${ENGINE.inFlight}
               where name = ${job}`;
  }
  await seedBookings(sql, plan.bookings, true);
  const [{ first }] = await sql`select min(b.id)::bigint as first from public.bookings b join public.clients c on c.id = b.client_id
                                 where c.name like 'w2-bench %'`;
  const bookingIds = plan.bookings ? (await sql`
    select b.id::bigint as id, c.phone from public.bookings b join public.clients c on c.id = b.client_id
     where c.name like 'w2-bench %' order by b.id`).map((r) => ({ id: Number(r.id), phone: r.phone as string })) : [];
  void first;
  const prefix = `chaos-${run}`;
  const tokens = Array.from({ length: plan.tokens }, (_, i) => `1//${prefix}-rt-${i}`);
  if (tokens.length) {
    await seedGoogleRefreshTokens(info as never, tokens);
    await insertExpiredAccounts(sql as never, prefix, tokens);
  }
  return { plan, prefix, tokens, bookings: bookingIds, started: Date.now() };
}

export interface Drain {
  plan: DrainPlan;
  prefix: string;
  tokens: string[];
  bookings: { id: number; phone: string }[];
  started: number;
}

/** Starts the drain the way an operator would: one manual tick per job (the heartbeat does the rest). */
export async function startDrain(sql: Sql, d: Drain): Promise<void> {
  if (d.plan.bookings) await sql`select jobs.run_now(${REMINDER_JOB})`;
  if (d.plan.tokens) await sql`select jobs.run_now(${YOUTUBE_JOB})`;
}

export interface Progress {
  done: number;
  deadWithReason: number;
  open: number;
}

/** Items done (a provider id / a refreshed token), dead with a reason, and the rest. */
export async function progress(sql: Sql, d: Drain): Promise<Progress> {
  const [r] = await sql`
    with n as (
      select n.provider_message_id is not null as done,
             n.status = 'failed' and coalesce(n.error, n.error_code) is not null as dead
        from public.notifications n join public.clients c on c.id = n.client_id
       where c.name like 'w2-bench %' and n.kind = 'event_reminder'),
    a as (
      select a.refresh_count >= 1 as done,
             a.status = 'needs_reauth' and a.last_error is not null as dead
        from public.social_accounts a where a.creator_unique_identifier like ${d.prefix + "-%"})
    select (select count(*) filter (where done) from n)::int + (select count(*) filter (where done) from a)::int as done,
           (select count(*) filter (where dead and not done) from n)::int
             + (select count(*) filter (where dead and not done) from a)::int as dead`;
  const total = itemCount(d.plan);
  return { done: r.done, deadWithReason: r.dead, open: total - r.done - r.dead };
}

export interface Effects {
  /** Provider effects beyond one per item where the provider has an idempotency key (Resend). */
  duplicatedKeyed: number;
  /** Effects beyond one per item where it has none (Twilio messages). */
  duplicatedUnkeyed: number;
  /** Extra refresh grants at Google (harmless: a refresh has no side effect but a new token). */
  duplicateRefreshes: number;
  /** Items done in the database whose effect the provider never saw. */
  doneWithoutEffect: number;
}

export async function effects(sql: Sql, info: StackInfo, d: Drain): Promise<Effects> {
  const phones = d.bookings.map((b) => b.phone);
  const keys = d.bookings.map((b) => reminderKey(b.id, "email"));
  const twilio = await twilioSeen(info.sandbox_url, phones);
  const perPhone = await messagesPerPhone(info.sandbox_url);
  const resend = await resendSeen(info.sandbox_url, keys);
  const refreshes = d.tokens.length ? await googleRefreshCounts(info as never, d.tokens) : new Map<string, number>();
  let duplicatedUnkeyed = 0;
  let missing = 0;
  for (const p of phones) {
    const n = perPhone.get(p) ?? 0;
    duplicatedUnkeyed += Math.max(0, n - 1);
  }
  void twilio;
  const [{ wa_done, email_done }] = await sql`
    select count(*) filter (where n.channel = 'whatsapp' and n.provider_message_id is not null)::int as wa_done,
           count(*) filter (where n.channel = 'email' and n.provider_message_id is not null)::int as email_done
      from public.notifications n join public.clients c on c.id = n.client_id
     where c.name like 'w2-bench %' and n.kind = 'event_reminder'`;
  missing += Math.max(0, wa_done - phones.filter((p) => (perPhone.get(p) ?? 0) >= 1).length);
  missing += Math.max(0, email_done - (resend.emails - 0));
  let duplicateRefreshes = 0;
  for (const c of refreshes.values()) duplicateRefreshes += Math.max(0, c - 1);
  // Resend dedupes by key: a second email for one key would be a second entry with that key.
  const duplicatedKeyed = Math.max(0, resend.emails - new Set(keys).size) + (resend.notExactlyOnce && resend.emails > keys.length ? resend.notExactlyOnce : 0);
  return { duplicatedKeyed, duplicatedUnkeyed, duplicateRefreshes, doneWithoutEffect: missing };
}

/** Messages the fake Twilio created per recipient phone (E.164 without the whatsapp: prefix). */
async function messagesPerPhone(sandboxUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${sandboxUrl}/__state/twilio`);
  const { state } = await res.json() as { state: { messages: { to: string }[] } };
  const m = new Map<string, number>();
  for (const msg of state.messages) {
    const to = msg.to.replace(/^whatsapp:/, "");
    m.set(to, (m.get(to) ?? 0) + 1);
  }
  return m;
}

export { phoneOf };
