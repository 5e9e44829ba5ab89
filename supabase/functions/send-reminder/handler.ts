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
// a channel's first task in a request calls alone, the others wait for its answer.
// The auth token, the Basic credentials and the Resend key never appear in responses, stored
// errors or logs.

import { z } from "npm:zod@4";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import { DEFAULT_MAX_TASKS_PER_REQUEST, type JobFunction, type RunnerDeps, serveJob, type Task } from "../_shared/job_runner.ts";
import type { Outcome } from "../_shared/outcome.ts";
import { redact } from "../_shared/redact.ts";
import { createResendClient, type ResendClient, resendBaseUrl } from "../_shared/providers/resend.ts";
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
export const RATE_KEY: Record<Channel, string> = { whatsapp: "twilio", email: "resend" };
/** Resend 409 concurrent_idempotent_requests without a retry-after. */
export const BUSY_RETRY_SECONDS = 2;

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

type Setup<T> = { ok: true; value: T; secrets: string[] } | { ok: false; error: string };
interface TwilioSetup {
  client: TwilioClient;
  from: string;
  statusCallback: string;
}
interface ResendSetup {
  client: ResendClient;
  from: string;
}

/** What a channel answers, unasked, for the rest of the request. */
type Block =
  | { outcome: "release"; error: string }
  | { outcome: "retry"; error: string; until: number | null };

interface Session {
  twilio: Setup<TwilioSetup>;
  resend: Setup<ResendSetup>;
  blocked: Partial<Record<Channel, Block>>;
  /** Settles when the channel's first task of the request has its answer. */
  firstCall: Partial<Record<Channel, Promise<void>>>;
  twilioCalls: number;
  resendCalls: number;
}

const E164 = /^\+[1-9]\d{6,14}$/;

function twilioSetup(deps: HandlerDeps, common: { fetch: FetchFn; timeoutMs: number; now: () => number }): Setup<TwilioSetup> {
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

function resendSetup(deps: HandlerDeps, common: { fetch: FetchFn; timeoutMs: number; now: () => number }): Setup<ResendSetup> {
  const s = requireSecrets(deps.env, ["RESEND_API_KEY", "RESEND_FROM"]);
  if (!s.ok) return { ok: false, error: `Email reminders: ${s.configError}` };
  const { RESEND_API_KEY: apiKey, RESEND_FROM: from } = s.values;
  if (!/^[^@\s<>]+@[^@\s<>]+$|<[^@\s<>]+@[^@\s<>]+>$/.test(from)) {
    return { ok: false, error: 'Email reminders: RESEND_FROM must be an address such as "Bookings <reminders@example.com>"' };
  }
  return {
    ok: true,
    value: { client: createResendClient({ apiKey, baseUrl: resendBaseUrl(deps.env), ...common }), from },
    secrets: [apiKey],
  };
}

export function sendReminderJob(deps: HandlerDeps): JobFunction<ReminderPayload, ReminderContext, Session> {
  const now = deps.now ?? Date.now;
  const common = { fetch: deps.fetch ?? fetch, timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS, now };
  const secretsOf = (s: Session) => [...(s.twilio.ok ? s.twilio.secrets : []), ...(s.resend.ok ? s.resend.secrets : [])];

  return {
    name: "send-reminder",
    payload: ReminderPayloadSchema,
    context: ReminderContextSchema,
    session: () => ({
      twilio: twilioSetup(deps, common),
      resend: resendSetup(deps, common),
      blocked: {},
      firstCall: {},
      twilioCalls: 0,
      resendCalls: 0,
    }),
    secrets: (_task, s) => secretsOf(s),
    tagsField: "messages",
    // Zeros included, so the messages field always carries every count.
    counters: (s) => ({ whatsapp_sent: 0, emails_sent: 0, reconciled: 0, twilio_calls: s.twilioCalls, resend_calls: s.resendCalls }),
    maxTasksPerRequest: DEFAULT_MAX_TASKS_PER_REQUEST,

    async perform(task, s) {
      const channel = task.context.channel;
      // The first task of a channel in this request goes alone; the others wait for its answer,
      // so a refused key or a 429 is seen before they call (the slots run concurrently).
      let opened: (() => void) | undefined;
      const first = s.firstCall[channel];
      if (first === undefined) s.firstCall[channel] = new Promise<void>((resolve) => (opened = resolve));
      else await first;
      try {
        const blocked = s.blocked[channel];
        // A provider's wait that has passed lifts the block (the request may still be claiming).
        if (blocked !== undefined && blocked.outcome === "retry" && blocked.until !== null && now() >= blocked.until) {
          delete s.blocked[channel];
        } else if (blocked !== undefined) return repeat(channel, blocked);
        const outcome = channel === "email" ? await sendEmail(task, s) : await sendWhatsApp(task, s);
        // Redacted here as well: the session's texts are quoted in other tasks' errors.
        return "error" in outcome ? { ...outcome, error: redact(outcome.error, secretsOf(s)) } as Outcome : outcome;
      } finally {
        opened?.();
      }
    },
  };

  /** The channel's outcome for a task that was not sent because of an earlier answer. */
  function repeat(channel: Channel, b: Block): Outcome {
    if (b.outcome === "release") return { outcome: "release", error: b.error };
    const after = b.until === null ? null : Math.max(1, Math.ceil((b.until - now()) / 1000));
    // Never attempted: the attempt is given back (a storm cannot use up max_attempts).
    return { outcome: "retry", error: `not called: ${b.error}`, after, pause: after === null ? null : RATE_KEY[channel], notAttempted: true };
  }

  function release(s: Session, channel: Channel, error: string): Outcome {
    s.blocked[channel] = { outcome: "release", error };
    return { outcome: "release", error };
  }

  function rateLimited(s: Session, channel: Channel, error: string, after: number | null): Outcome {
    const clean = redact(error, secretsOf(s));
    s.blocked[channel] = {
      outcome: "retry",
      error: `${channel === "email" ? "Resend" : "Twilio"} limited this request earlier (${clean})`,
      until: after === null ? null : now() + after * 1000,
    };
    // Without a wait from the provider (Twilio's 20429 has none), the job's backoff spaces the
    // retries and no bucket is paused (a pause without a length would hold it for a minute).
    return { outcome: "retry", error: clean, after, pause: after === null ? null : RATE_KEY[channel] };
  }

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
    if (!s.resend.ok) return release(s, "email", s.resend.error);
    const email = rendered(() => renderEmail(c.kind, c.booking));
    if (!email.ok) return email.outcome;
    const { client, from } = s.resend.value;
    s.resendCalls++;
    const r = await client.sendEmail({
      from,
      to: c.to,
      ...email.value,
      idempotencyKey: c.idempotency_key,
      tags: [{ name: "kind", value: c.kind }, { name: "notification_id", value: String(c.notification_id) }],
    });
    switch (r.kind) {
      case "sent":
        return { outcome: "ok", data: { provider_message_id: r.id, status: "sent", reconciled: false }, tag: "emails_sent" };
      case "permanent":
        return { outcome: "dead", error: r.error, data: { error_code: r.name } };
      case "rate_limited":
      case "quota":
        return rateLimited(s, "email", r.error, r.retryAfterSeconds);
      case "busy":
        return { outcome: "retry", error: r.error, after: r.retryAfterSeconds ?? BUSY_RETRY_SECONDS };
      case "misconfigured":
        return release(s, "email", r.error);
      case "transient":
        return { outcome: "retry", error: r.error, after: r.retryAfterSeconds };
    }
  }

  async function sendWhatsApp({ context: c }: Task<ReminderPayload, ReminderContext>, s: Session): Promise<Outcome> {
    if (!s.twilio.ok) return release(s, "whatsapp", s.twilio.error);
    const vars = rendered(() => whatsappVariables(c.kind, c.booking));
    if (!vars.ok) return vars.outcome;
    if (vars.value === null || c.content_sid === null) {
      // Configuration, not this message's fault: given back until the template is added.
      return release(s, "whatsapp",
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
          return rateLimited(s, "whatsapp", found.error, found.retryAfterSeconds);
        case "misconfigured":
          return release(s, "whatsapp", found.error);
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
        return rateLimited(s, "whatsapp", r.error, r.retryAfterSeconds);
      case "misconfigured":
        return release(s, "whatsapp", r.error);
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
