// send-reminder: sends booking reminders (event reminder, balance due, cancellation) by WhatsApp
// (Twilio template) or email (Resend), one notification per task.
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt","payload":{"notification_id","channel"}}]}
//
// The job runner (_shared/job_runner.ts) does the front door, the contexts (bookings.
// reminder_context, read under the lease: recipient, kind, booking, template, idempotency key
// and reconcile_since), the slots with claim-ahead, the grouped outcome writes
// (bookings.apply_reminder_outcomes) and the response. This file maps one provider answer to
// one outcome:
//
//   email    → POST {RESEND_BASE_URL}/emails, Idempotency-Key = context.idempotency_key (a resend
//              of the same email within 24 h is answered from Resend's record, never sent twice)
//   whatsapp → when context.reconcile_since is set (an earlier attempt started and recorded no
//              message sid), GET the recent messages to the recipient first: a message since then
//              whose body names the booking reference is that attempt's → ok, nothing sent; a
//              failed lookup → retry (never send blind). Else POST the template with
//              StatusCallback = TWILIO_STATUS_CALLBACK_URL or {SUPABASE_URL}/functions/v1/twilio-status.
//
//   sent / found        → ok {provider_message_id, status, reconciled}
//   permanent           → dead {error_code} (Twilio code, Resend error name)
//   rate_limited        → retry after the provider's wait, pausing "twilio" / "resend" that long
//                         (no wait given: the job's backoff, no pause)
//   quota (Resend)      → retry after the seconds until the quota resets, pause "resend"
//   busy (Resend 409)   → retry after retry-after or 2 s (the first request with the key is in flight)
//   transient           → retry (after the provider's Retry-After, else the job's backoff)
//   unknown_outcome     → retry; the next attempt's context carries reconcile_since
//   misconfigured, or a channel's settings unset → release (no attempt used; one error naming the setting)
//
// Once a channel is misconfigured or rate limited in a request, its later tasks in that request
// get the same outcome without a call (a 429 storm costs one call per request, not per task):
// a channel's first task in a request calls alone, the others wait for its answer
// (_shared/provider_gate.ts; the email path is _shared/resend_email.ts, shared with
// send-notification).
// The auth token, the Basic credentials and the Resend key never appear in responses, stored
// errors or logs.

import { z } from "npm:zod@4";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import { DEFAULT_MAX_TASKS_PER_REQUEST, type JobFunction, type RunnerDeps, serveJob, type Task } from "../_shared/job_runner.ts";
import type { Outcome } from "../_shared/outcome.ts";
import { type ClientCommon, RequestGate, type Setup } from "../_shared/provider_gate.ts";
import { redact } from "../_shared/redact.ts";
import { RESEND_RATE_KEY, resendSetup, type ResendSetup, sendResendEmail } from "../_shared/resend_email.ts";
import { requireSecrets } from "../_shared/providers/token_refresh.ts";
import {
  createTwilioClient,
  TWILIO_ACCOUNT_SID_PATTERN,
  twilioBaseUrl,
  twilioBasicAuth,
  type TwilioClient,
  twilioStatusCallbackUrl,
} from "../_shared/providers/twilio.ts";
import { type Booking, RenderError, renderEmail, whatsappVariables } from "./messages.ts";

export const CHANNELS = ["whatsapp", "email"] as const;
export type Channel = typeof CHANNELS[number];
export const KINDS = ["event_reminder", "balance_reminder", "booking_cancelled"] as const;

/** The rate keys (buckets) of the two providers, as in the tasks' rate_keys. */
export const RATE_KEY: Record<Channel, string> = { whatsapp: "twilio", email: RESEND_RATE_KEY };
export { BUSY_RETRY_SECONDS } from "../_shared/resend_email.ts";

export const ReminderPayloadSchema = z.object({
  notification_id: z.number().int().positive(),
  channel: z.enum(CHANNELS),
  // Moved off the payload by a trigger; accepted when present.
  rate_keys: z.array(z.string()).optional(),
});
export type ReminderPayload = z.output<typeof ReminderPayloadSchema>;

const timestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "not a timestamp");

export const BookingSchema: z.ZodType<Booking> = z.object({
  id: z.number().int().positive(),
  reference: z.string().min(1),
  client_name: z.string().min(1),
  performer_name: z.string().min(1),
  event_at: timestamp,
  time_zone: z.string().min(1),
  balance_due: z.number().int().nullable().default(null),
  currency: z.string().nullable().default(null),
  cancel_reason: z.string().nullable().default(null),
});

/** One row of bookings.reminder_context. */
export const ReminderContextSchema = z.object({
  notification_id: z.number().int().positive(),
  channel: z.enum(CHANNELS),
  kind: z.enum(KINDS),
  to: z.string().min(1).max(320),
  idempotency_key: z.string().min(1).max(256),
  reconcile_since: timestamp.nullable().default(null),
  content_sid: z.string().min(1).nullable().default(null),
  booking: BookingSchema,
});
export type ReminderContext = z.output<typeof ReminderContextSchema>;

export interface HandlerDeps extends RunnerDeps {
  fetch?: FetchFn;
  /** Provider call deadline; 10 s by default. */
  timeoutMs?: number;
}

interface TwilioSetup {
  client: TwilioClient;
  from: string;
  statusCallback: string;
}

interface Session {
  twilio: Setup<TwilioSetup>;
  resend: Setup<ResendSetup>;
  /** Per channel: its first task calls alone; a refusal or rate limit blocks its later ones. */
  gates: Record<Channel, RequestGate>;
  twilioCalls: number;
  resendCalls: number;
}

const E164 = /^\+[1-9]\d{6,14}$/;

function twilioSetup(deps: HandlerDeps, common: ClientCommon): Setup<TwilioSetup> {
  const env = deps.env;
  const s = requireSecrets(env, ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_FROM"]);
  if (!s.ok) return { ok: false, error: `WhatsApp reminders: ${s.configError}` };
  const { TWILIO_ACCOUNT_SID: sid, TWILIO_AUTH_TOKEN: token, TWILIO_WHATSAPP_FROM: rawFrom } = s.values;
  if (!TWILIO_ACCOUNT_SID_PATTERN.test(sid)) {
    return { ok: false, error: "WhatsApp reminders: TWILIO_ACCOUNT_SID must be AC followed by 32 hex characters" };
  }
  const from = rawFrom.replace(/^whatsapp:/, "");
  if (!E164.test(from)) {
    return { ok: false, error: "WhatsApp reminders: TWILIO_WHATSAPP_FROM must be an E.164 number such as +14155238886" };
  }
  const statusCallback = twilioStatusCallbackUrl(env);
  if (statusCallback === null) {
    return { ok: false, error: "WhatsApp reminders: neither TWILIO_STATUS_CALLBACK_URL nor SUPABASE_URL is set (the status callback URL)" };
  }
  const basic = twilioBasicAuth(sid, token);
  return {
    ok: true,
    value: {
      client: createTwilioClient({ accountSid: sid, authToken: token, baseUrl: twilioBaseUrl(env), ...common }),
      from,
      statusCallback,
    },
    secrets: [token, basic, basic.slice("Basic ".length)],
  };
}

export function sendReminderJob(deps: HandlerDeps): JobFunction<ReminderPayload, ReminderContext, Session> {
  const now = deps.now ?? Date.now;
  const common: ClientCommon = { fetch: deps.fetch ?? fetch, timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS, now };
  const secretsOf = (s: Pick<Session, "twilio" | "resend">) => [
    ...(s.twilio.ok ? s.twilio.secrets : []),
    ...(s.resend.ok ? s.resend.secrets : []),
  ];

  return {
    name: "send-reminder",
    payload: ReminderPayloadSchema,
    context: ReminderContextSchema,
    session: () => {
      const setups = {
        twilio: twilioSetup(deps, common),
        resend: resendSetup(deps.env, common, { label: "Email reminders", fromSettings: ["RESEND_FROM"], userAgent: "duework-send-reminder" }),
      };
      const scrub = (text: string) => redact(text, secretsOf(setups));
      return {
        ...setups,
        gates: {
          whatsapp: new RequestGate({ provider: "Twilio", rateKey: RATE_KEY.whatsapp, now, scrub }),
          email: new RequestGate({ provider: "Resend", rateKey: RATE_KEY.email, now, scrub }),
        },
        twilioCalls: 0,
        resendCalls: 0,
      };
    },
    secrets: (_task, s) => secretsOf(s),
    tagsField: "messages",
    // Zeros included, so the messages field always carries every count.
    counters: (s) => ({ whatsapp_sent: 0, emails_sent: 0, reconciled: 0, twilio_calls: s.twilioCalls, resend_calls: s.resendCalls }),
    maxTasksPerRequest: DEFAULT_MAX_TASKS_PER_REQUEST,

    async perform(task, s) {
      const channel = task.context.channel;
      return await s.gates[channel].run(() => channel === "email" ? sendEmail(task, s) : sendWhatsApp(task, s));
    },
  };

  /** Renders or says why this notification can never be rendered. */
  function rendered<T>(fn: () => T): { ok: true; value: T } | { ok: false; outcome: Outcome } {
    try {
      return { ok: true, value: fn() };
    } catch (err) {
      if (!(err instanceof RenderError)) throw err;
      return { ok: false, outcome: { outcome: "dead", error: `cannot render the message: ${err.message}`, data: { error_code: "render_failed" } } };
    }
  }

  async function sendEmail({ context: c }: Task<ReminderPayload, ReminderContext>, s: Session): Promise<Outcome> {
    if (!s.resend.ok) return s.gates.email.release(s.resend.error);
    const email = rendered(() => renderEmail(c.kind, c.booking));
    if (!email.ok) return email.outcome;
    s.resendCalls++;
    return await sendResendEmail(s.resend.value, s.gates.email, {
      to: c.to,
      ...email.value,
      idempotencyKey: c.idempotency_key,
      tags: [{ name: "kind", value: c.kind }, { name: "notification_id", value: String(c.notification_id) }],
    }, (id) => ({ outcome: "ok", data: { provider_message_id: id, status: "sent", reconciled: false }, tag: "emails_sent" }));
  }

  async function sendWhatsApp({ context: c }: Task<ReminderPayload, ReminderContext>, s: Session): Promise<Outcome> {
    if (!s.twilio.ok) return s.gates.whatsapp.release(s.twilio.error);
    const vars = rendered(() => whatsappVariables(c.kind, c.booking));
    if (!vars.ok) return vars.outcome;
    if (vars.value === null || c.content_sid === null) {
      // Configuration, not this message's fault: given back until the template is added.
      return s.gates.whatsapp.release(
        `no approved WhatsApp template for ${c.kind}: add its ContentSid to bookings.whatsapp_templates`);
    }
    const { client, from, statusCallback } = s.twilio.value;

    if (c.reconcile_since !== null) {
      s.twilioCalls++;
      const found = await client.findRecentMessage({
        to: c.to,
        from,
        since: new Date(c.reconcile_since),
        mustContain: c.booking.reference,
      });
      switch (found.kind) {
        case "found":
          return { outcome: "ok", data: { provider_message_id: found.sid, status: found.status, reconciled: true }, tag: "reconciled" };
        case "not_found":
          break; // the earlier attempt sent nothing: send now
        case "rate_limited":
          return s.gates.whatsapp.rateLimited(found.error, found.retryAfterSeconds);
        case "misconfigured":
          return s.gates.whatsapp.release(found.error);
        case "failed":
          return { outcome: "retry", error: `not sent: ${found.error}`, after: found.retryAfterSeconds };
      }
    }

    s.twilioCalls++;
    const r = await client.sendWhatsAppTemplate({
      to: c.to,
      from,
      contentSid: c.content_sid,
      contentVariables: vars.value,
      statusCallback,
    });
    switch (r.kind) {
      case "sent":
        return { outcome: "ok", data: { provider_message_id: r.sid, status: r.status, reconciled: false }, tag: "whatsapp_sent" };
      case "permanent":
        return { outcome: "dead", error: r.error, data: { error_code: r.code === null ? "twilio_error" : String(r.code) } };
      case "rate_limited":
        return s.gates.whatsapp.rateLimited(r.error, r.retryAfterSeconds);
      case "misconfigured":
        return s.gates.whatsapp.release(r.error);
      case "transient":
        return { outcome: "retry", error: r.error, after: r.retryAfterSeconds };
      case "unknown_outcome":
        return { outcome: "retry", error: `outcome unknown, the next attempt looks the message up before sending: ${r.error}`, after: null };
    }
  }
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  return serveJob(sendReminderJob(deps), deps);
}
