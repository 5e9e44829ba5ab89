// Booking reminders through the whole stack: send_booking_reminders() → jobs.tick → pg_net →
// send-reminder → the sandbox's fake Twilio (WhatsApp templates, signed status callbacks to
// twilio-status) and fake Resend (idempotency keys, rate limit) → grouped SQL outcome calls.
// The sandbox's request log is the truth for what each provider saw.
import { createHmac } from "node:crypto";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { killFunctionWorkers } from "../support/processes";
import { db, eventually, providerState, sandboxRequests, seedProvider, stackInfo, zoneAt } from "../support/stack";
import { uniquePrefix } from "../support/youtube";

const info = stackInfo();
const sql = db(info);
const AUTH_TOKEN = "duework-local-twilio-auth-token";
const ACCOUNT_SID = "AC00000000000000000000000000000001";
const EVENT_TEMPLATE = "HX00000000000000000000000000000e01";

interface Notification {
  channel: string;
  status: string;
  provider_message_id: string | null;
  error_code: string | null;
  error: string | null;
}

/**
 * A client (phone null: no WhatsApp) with one confirmed booking whose event starts in `inHours`. The
 * client lives where it is midday (`zone`: zoneAt(12)), so the reminders are inside its send window.
 */
async function booking(prefix: string, opts: { phone?: string | null; email?: boolean; inHours?: number; zone?: string } = {}) {
  const [p] = await sql`insert into public.performers (name) values (${prefix + " band"}) returning id`;
  const [c] = await sql`
    insert into public.clients (name, email, phone, whatsapp_opt_in, time_zone)
    values (${prefix}, ${opts.email === false ? null : `${prefix}@example.test`}, ${opts.phone ?? null}, true,
            ${opts.zone ?? zoneAt(12)})
    returning id`;
  const [b] = await sql`
    insert into public.bookings (client_id, performer_id, status, event_at, deposit_paid_at)
    values (${c.id}, ${p.id}, 'confirmed', now() + make_interval(hours => ${opts.inHours ?? 20}), now())
    returning id`;
  return Number(b.id);
}

async function notifications(bookingId: number): Promise<Notification[]> {
  return await sql<Notification[]>`
    select channel, status, provider_message_id, error_code, error from public.notifications
     where booking_id = ${bookingId} order by channel`;
}

async function remind() {
  const [{ r }] = await sql`select public.send_booking_reminders() as r`;
  return r as { discovered: number; error: string | null };
}

/** The messages the fake Twilio created to a number: the effect that must happen once. */
async function twilioMessages(to: string) {
  const state = await providerState<{ messages: { sid: string; to: string; status: string }[] }>(info, "twilio");
  return state.messages.filter((m) => m.to === `whatsapp:${to}`);
}

/** Completed POSTs to Messages.json (a held response is logged only once it is answered). */
async function twilioPosts(to: string) {
  return (await sandboxRequests(info, { provider: "twilio", method: "POST" }))
    .filter((r) => r.path.endsWith("/Messages.json") && (r.body as Record<string, string>)?.To === `whatsapp:${to}`);
}

async function emailPosts(bookingId: number) {
  return (await sandboxRequests(info, { provider: "resend", method: "POST", path: "/emails" }))
    .filter((r) => r.headers["idempotency-key"]?.includes(`:${bookingId}:`));
}

const settled = (ns: Notification[]) => ns.every((n) => !["pending", "sending"].includes(n.status));

/** A phone number of this test alone (the reconcile lookup looks at every message to a number). */
let phoneSeq = Math.floor(Math.random() * 9000);
const phone = () => `+4477009${String(10000 + (phoneSeq++ % 90000)).padStart(5, "0")}`;

beforeEach(async () => {
  // Fixtures reloaded: no option (a hang, a rate limit, callbacks off) or fault survives a test.
  await fetch(`${info.sandbox_url}/__reset`, { method: "POST" }).then((r) => r.body?.cancel());
  // Other tests' reminders (none are due in a test database) and a bucket emptied by an earlier test.
  await sql`update jobs.rate_limit set tokens = capacity, refilled_at = now() where key in ('resend', 'twilio')`;
  await sql`update jobs.job set suspended_until = null, last_error = null
             where name in ('booking-reminders', 'payment-reminders', 'booking-notices')`;
});

afterAll(async () => {
  await sql.end();
});

describe("send_booking_reminders()", () => {
  it("a booking 24 h out gets exactly one WhatsApp and one email, and Twilio's callbacks mark it delivered", async () => {
    const to = phone();
    const id = await booking(uniquePrefix("bk-once"), { phone: to });
    const run = await remind();
    expect(run.error).toBeNull();
    await remind(); // overlapping manual run: nothing new is queued

    const ns = await eventually(async () => {
      const rows = await notifications(id);
      return rows.length === 2 && rows.every((n) => n.provider_message_id) ? rows : null;
    }, "both reminders sent");
    await remind(); // after the sends: nothing is due any more
    await new Promise((r) => setTimeout(r, 1_000));

    expect(await twilioMessages(to)).toHaveLength(1);
    const wa = await twilioPosts(to);
    expect(wa).toHaveLength(1);
    expect(wa[0].body).toMatchObject({ From: "whatsapp:+14155238886", ContentSid: EVENT_TEMPLATE });
    expect(JSON.parse(wa[0].body.ContentVariables)["4"]).toBe(`BK-${String(id).padStart(6, "0")}`);
    const mail = await emailPosts(id);
    expect(mail).toHaveLength(1);
    expect(mail[0].headers["idempotency-key"]).toBe(`event_reminder:${id}:email`);
    expect(ns.find((n) => n.channel === "email")!.status).toBe("sent");

    // The fake posts sent → delivered to twilio-status, signed with the auth token.
    await eventually(async () => (await notifications(id)).find((n) => n.channel === "whatsapp")?.status === "delivered",
      "the WhatsApp reminder delivered (status callbacks)");
    const [{ n }] = await sql`select count(*)::int as n from jobs.task where key like ${"event_reminder:" + id + ":%"}`;
    expect(n).toBe(2);
  });

  it("an invalid phone number ends dead with a readable error, and the email still goes", async () => {
    const id = await booking(uniquePrefix("bk-bad"), { phone: "+15005550001" });
    await remind();
    const ns = await eventually(async () => {
      const rows = await notifications(id);
      return rows.length === 2 && settled(rows) ? rows : null;
    }, "both reminders settled");
    const wa = ns.find((n) => n.channel === "whatsapp")!;
    expect(wa).toMatchObject({ status: "failed", error_code: "21211", provider_message_id: null });
    expect(wa.error).toMatch(/not a valid phone number/);
    expect(ns.find((n) => n.channel === "email")).toMatchObject({ status: "sent" });
    const [task] = await sql`select state, last_error from jobs.task where key = ${`event_reminder:${id}:whatsapp`}`;
    expect(task.state).toBe("dead");
    expect(task.last_error).toMatch(/21211/);
  });

  it("the function killed after Twilio accepted the message does not send it again", async () => {
    const to = phone();
    const id = await booking(uniquePrefix("bk-kill"), { phone: to, email: false });
    // Twilio creates the message but its 201 never comes back to this request.
    await seedProvider(info, "twilio", { accept_then_hang: { times: 1, hang_ms: 120_000 } });
    await remind();
    await eventually(async () => (await twilioMessages(to)).length === 1 || null, "Twilio created the message", 20_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(killFunctionWorkers(info, "send-reminder").length).toBeGreaterThan(0);
    const killed = Date.now();

    // The lease runs out, the heartbeat re-dispatches, the new attempt looks the message up first.
    const [wa] = await eventually(async () => {
      const rows = await notifications(id);
      return rows[0]?.provider_message_id ? rows : null;
    }, "the reminder recorded after the crash", 60_000);
    console.log(`send-reminder killed after Twilio's 201: recorded by reconciliation ${((Date.now() - killed) / 1000).toFixed(1)} s later`);
    expect(wa.provider_message_id).toMatch(/^SM[0-9a-f]{32}$/);
    const created = await twilioMessages(to);
    expect(created).toHaveLength(1);
    expect(created[0].sid).toBe(wa.provider_message_id);
    const lookups = (await sandboxRequests(info, { provider: "twilio", method: "GET" }))
      .filter((r) => r.path.endsWith("/Messages.json"));
    expect(lookups.length).toBeGreaterThanOrEqual(1);
    const [task] = await sql`select state, attempts, result from jobs.task where key = ${`event_reminder:${id}:whatsapp`}`;
    expect(task.state).toBe("succeeded");
    expect(task.attempts).toBeGreaterThanOrEqual(2);
    expect(task.result.reconciled).toBe(true);
  }, 90_000);

  it("429 storms: Twilio 20429 and Resend rate_limit_exceeded are retried after their wait, each message sent once", async () => {
    const prefix = uniquePrefix("bk-429");
    const phones = [phone(), phone(), phone()];
    const ids = [];
    for (const [i, to] of phones.entries()) ids.push(await booking(`${prefix}-${i}`, { phone: to }));
    const fault = (body: Record<string, unknown>) =>
      fetch(`${info.sandbox_url}/__faults`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ status: 429, retry_after: 1, times: 4, method: "POST", ...body }),
      });
    const twilio429 = await fault({
      provider: "twilio", path: `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`,
      body: { code: 20429, message: "Too Many Requests", more_info: "https://www.twilio.com/docs/errors/20429", status: 429 },
    });
    expect(twilio429.status).toBe(201);
    await twilio429.body?.cancel();
    const faults = await fault({
      provider: "resend", path: "/emails",
      body: { statusCode: 429, name: "rate_limit_exceeded", message: "Too many requests" },
    });
    expect(faults.status).toBe(201);
    await faults.body?.cancel();
    await remind();

    for (const id of ids) {
      await eventually(async () => {
        const rows = await notifications(id);
        return rows.length === 2 && rows.every((n) => n.provider_message_id) || null;
      }, `booking ${id}: both reminders sent after the storms`, 60_000);
    }
    for (const to of phones) expect(await twilioMessages(to)).toHaveLength(1);
    for (const id of ids) expect((await emailPosts(id)).filter((r) => r.status === 200)).toHaveLength(1);
    const [{ retried }] = await sql`
      select count(*)::int as retried from jobs.task
       where key like any (${ids.map((id) => `event_reminder:${id}:%`)}) and attempts > 1`;
    expect(retried).toBeGreaterThan(0);
  }, 90_000);

  it("a client for whom it is night gets nothing until 08:00 their time; a client at midday is sent at once", async () => {
    const prefix = uniquePrefix("bk-night");
    const night = zoneAt(3);
    const nightPhone = phone();
    const nightId = await booking(`${prefix}-night`, { phone: nightPhone, zone: night });
    const dayId = await booking(`${prefix}-day`, { phone: phone() });
    await remind();
    await eventually(async () => (await notifications(dayId)).every((n) => n.provider_message_id) || null, "the day client's reminders sent");
    await remind(); // the next hourly run finds the night booking due again: nothing new, nothing sent

    const tasks = await sql`
      select state, window_zone, run_after, (((now() at time zone ${night})::date + time '08:00') at time zone ${night}) as morning
        from jobs.task where key like ${`event_reminder:${nightId}:%`}`;
    expect(tasks).toHaveLength(2);
    for (const t of tasks) {
      expect(t).toMatchObject({ state: "queued", window_zone: night });
      expect(t.run_after.getTime()).toBe(t.morning.getTime());
    }
    expect((await notifications(nightId)).map((n) => n.status)).toEqual(["pending", "pending"]);
    expect(await twilioPosts(nightPhone)).toHaveLength(0);
    expect(await emailPosts(nightId)).toHaveLength(0);
    // Nothing of it may go out later in this test database either.
    await sql`update public.bookings set status = 'cancelled', cancelled_at = now() where id = ${nightId}`;
  });
});

describe("twilio-status", () => {
  const url = `${info.api_url}/functions/v1/twilio-status`;
  const sign = (params: Record<string, string>, token = AUTH_TOKEN) =>
    createHmac("sha1", token)
      .update(url + Object.keys(params).sort().map((k) => k + params[k]).join(""))
      .digest("base64");
  const post = (params: Record<string, string>, signature?: string) =>
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        ...(signature !== undefined ? { "x-twilio-signature": signature } : {}),
      },
      body: new URLSearchParams(params),
    });

  it("a forged or missing signature is refused with 403 and changes nothing; a signed one is applied", async () => {
    const to = phone();
    const id = await booking(uniquePrefix("bk-cb"), { phone: to, email: false });
    await seedProvider(info, "twilio", { callbacks: { enabled: false } });
    await remind();
    const [wa] = await eventually(async () => {
      const rows = await notifications(id);
      return rows[0]?.provider_message_id ? rows : null;
    }, "the reminder sent");
    expect(wa.status).toBe("queued");

    const params = { MessageSid: wa.provider_message_id!, MessageStatus: "failed", ErrorCode: "30008",
                     AccountSid: ACCOUNT_SID, To: `whatsapp:${to}`, From: "whatsapp:+14155238886", ApiVersion: "2010-04-01" };
    const forged = await post(params, sign(params, "not-the-auth-token"));
    expect(forged.status).toBe(403);
    await forged.body?.cancel();
    const missing = await post(params);
    expect(missing.status).toBe(403);
    await missing.body?.cancel();
    const tampered = await post({ ...params, MessageStatus: "read" }, sign(params));
    expect(tampered.status).toBe(403);
    await tampered.body?.cancel();
    expect((await notifications(id))[0].status).toBe("queued");

    const delivered = { ...params, MessageStatus: "delivered" };
    delete (delivered as Record<string, string>).ErrorCode;
    const ok = await post(delivered, sign(delivered));
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
    expect((await notifications(id))[0].status).toBe("delivered");
    // A late "sent" (out of order) does not move it back.
    const late = { ...delivered, MessageStatus: "sent" };
    const again = await post(late, sign(late));
    expect(again.status).toBe(200);
    await again.body?.cancel();
    expect((await notifications(id))[0].status).toBe("delivered");
  });
});

describe("cleanup_stale_bookings()", () => {
  it("cancels a pending booking without deposit after 24 h and emails its client once", async () => {
    const prefix = uniquePrefix("bk-stale");
    const [p] = await sql`insert into public.performers (name) values (${prefix + " band"}) returning id`;
    const [c] = await sql`
      insert into public.clients (name, email, time_zone) values (${prefix}, ${prefix + "@example.test"}, ${zoneAt(12)}) returning id`;
    const [b] = await sql`
      insert into public.bookings (client_id, performer_id, status, event_at, created_at)
      values (${c.id}, ${p.id}, 'pending', now() + interval '10 days', now() - interval '25 hours') returning id`;
    const [{ r }] = await sql`select public.cleanup_stale_bookings() as r`;
    expect(r.success).toBe(true);
    expect(r.cancelledCount).toBeGreaterThanOrEqual(1);
    const id = Number(b.id);
    await eventually(async () => (await notifications(id))[0]?.status === "sent" || null, "the cancellation email sent");
    const mails = await emailPosts(id);
    expect(mails).toHaveLength(1);
    expect(mails[0].headers["idempotency-key"]).toBe(`booking_cancelled:${id}:email`);
    expect(mails[0].body.subject).toMatch(/cancelled/i);
  });
});
