// Booking reminders (docs/bookings.md): per booking one WhatsApp template through the fake Twilio
// (no idempotency key: the function reconciles by listing) and one email through the fake Resend
// (Idempotency-Key = the task key). Seeded with the benchmark's W2 helpers. Effects are counted per
// recipient (messages to a phone, emails to an address), not per key: a retry under a new key
// would be a second email all the same.
import { configureReminders, REMINDER_JOB, resetW2, seedBookings } from "../../bench/w2.ts";
import { setupReminderFakes } from "../../bench/reminders_sandbox.ts";
import { IN_FLIGHT, tuneJobs } from "../engine.ts";
import { providerState } from "../sandbox.ts";
import type { EffectCount, Workload } from "../types.ts";

/** Fake latency: slow enough that a drain lasts long enough to be hit by faults. */
const LATENCY_MS = 50;

let bookings: { id: number; phone: string; email: string }[] = [];

export const reminders: Workload = {
  name: "booking reminders (Twilio WhatsApp + Resend email)",
  jobs: [REMINDER_JOB],
  providers: ["twilio", "resend"],

  async seed(ctx, items) {
    const sql = ctx.sql();
    await resetW2(sql);
    await setupReminderFakes(ctx.info.sandbox_url, { latencyMs: LATENCY_MS, callbacks: false, resendLimitPerSecond: null });
    // Buckets far above the fakes' speed: the scenarios measure faults, not pacing.
    await configureReminders(sql, IN_FLIGHT, 10, [
      { key: "twilio", capacity: 200, refill_per_second: 2000 },
      { key: "resend", capacity: 200, refill_per_second: 2000 },
    ]);
    await tuneJobs(sql, this.jobs);
    await seedBookings(sql, Math.ceil(items / 2), true);
    bookings = (await sql`
      select b.id::bigint as id, c.phone, c.email from public.bookings b join public.clients c on c.id = b.client_id
       where c.name like 'w2-bench %' order by b.id`).map((r) => ({ id: Number(r.id), phone: r.phone as string, email: r.email as string }));
  },

  async start(ctx) {
    await ctx.sql()`select jobs.run_now(${REMINDER_JOB})`;
  },

  async counts(ctx) {
    const [r] = await ctx.sql()`
      select count(*)::int as total,
             count(*) filter (where n.provider_message_id is not null)::int as done,
             count(*) filter (where n.provider_message_id is null and n.status = 'failed'
                                and coalesce(n.error, n.error_code) is not null)::int as dead
        from public.notifications n join public.clients c on c.id = n.client_id
       where c.name like 'w2-bench %' and n.kind = 'event_reminder'`;
    const [wa] = await ctx.sql()`
      select count(*) filter (where n.provider_message_id is not null)::int as done,
             count(*) filter (where n.provider_message_id is null and n.status = 'failed'
                                and coalesce(n.error, n.error_code) is not null)::int as dead
        from public.notifications n join public.clients c on c.id = n.client_id
       where c.name like 'w2-bench %' and n.kind = 'event_reminder' and n.channel = 'whatsapp'`;
    // Discovery creates the notifications: before the first tick, every booking still owes two.
    const total = Math.max(r.total, bookings.length * 2);
    return {
      total,
      done: r.done,
      dead: r.dead,
      byProvider: {
        twilio: { total: bookings.length, done: wa.done, dead: wa.dead },
        resend: { total: total - bookings.length, done: r.done - wa.done, dead: r.dead - wa.dead },
      },
    };
  },

  async effects(ctx): Promise<EffectCount[]> {
    const sql = ctx.sql();
    const twilio = await providerState<{ messages: { to: string }[] }>(ctx.info, "twilio");
    const perPhone = new Map<string, number>();
    for (const m of twilio.messages) {
      const to = m.to.replace(/^whatsapp:/, "");
      perPhone.set(to, (perPhone.get(to) ?? 0) + 1);
    }
    const resend = await providerState<{ emails: { to: string[] }[] }>(ctx.info, "resend");
    const perAddress = new Map<string, number>();
    for (const e of resend.emails) for (const to of e.to) perAddress.set(to, (perAddress.get(to) ?? 0) + 1);

    const done = await sql`
      select n.channel, c.phone, c.email
        from public.notifications n join public.clients c on c.id = n.client_id
       where c.name like 'w2-bench %' and n.kind = 'event_reminder' and n.provider_message_id is not null`;
    let twilioMissing = 0;
    let resendMissing = 0;
    for (const n of done) {
      if (n.channel === "whatsapp" && !perPhone.get(n.phone)) twilioMissing++;
      if (n.channel === "email" && !perAddress.get(n.email)) resendMissing++;
    }
    const extra = (m: Map<string, number>, wanted: string[]) => wanted.reduce((s, k) => s + Math.max(0, (m.get(k) ?? 0) - 1), 0);
    const twice = (m: Map<string, number>, wanted: string[]) => wanted.filter((k) => (m.get(k) ?? 0) > 1).slice(0, 5);
    return [
      {
        provider: "twilio",
        keyed: false,
        duplicates: extra(perPhone, bookings.map((b) => b.phone)),
        missing: twilioMissing,
        repeatedCalls: 0,
        examples: twice(perPhone, bookings.map((b) => b.phone)),
      },
      {
        provider: "resend",
        keyed: true,
        duplicates: extra(perAddress, bookings.map((b) => b.email)),
        missing: resendMissing,
        repeatedCalls: 0,
        examples: twice(perAddress, bookings.map((b) => b.email)),
      },
    ];
  },
};
