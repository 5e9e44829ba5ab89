// send-notification: the outreach app's queued email notifications (job outreach-notifications,
// docs/outreach.md), one outreach_notifications row per task. In-app notifications are marked
// sent in SQL and never reach this function.
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt","payload":{"notification_id"}}]}
//
// The job runner (_shared/job_runner.ts) does the front door, the contexts (read under the lease:
// {notification_id, to, subject, text, idempotency_key}), the slots, the grouped outcome writes
// (the job's apply function) and the response. perform sends one email:
//
//   POST {RESEND_BASE_URL}/emails from OUTREACH_EMAIL_FROM (else RESEND_FROM), the text as the
//   plain-text body and its escaped HTML version, Idempotency-Key = context.idempotency_key (a
//   resend of the same email within 24 h is answered from Resend's record, never sent twice)
//
//   sent              → ok {provider_message_id}, counted as emails_sent
//   permanent         → dead {error_code} (Resend's error name)
//   rate_limited/quota→ retry after Resend's wait, pause "resend"; the request's later emails
//                       retry notAttempted without a call
//   busy (409)        → retry after retry-after, else 2 s
//   misconfigured, RESEND_API_KEY or the sender unset → release with one error naming the setting
//   transient         → retry (after Retry-After when sent)
//
// The first email of a request calls alone, the others wait for its answer (a refused key or a
// 429 is seen before they call): _shared/provider_gate.ts and _shared/resend_email.ts, the same
// path as send-reminder's email channel. The Resend key never appears in responses, stored
// errors or logs.

import { z } from "npm:zod@4";
import { htmlEmail, oneLine, textParagraphs } from "../_shared/email_html.ts";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import { type JobFunction, type RunnerDeps, serveJob } from "../_shared/job_runner.ts";
import { type ClientCommon, RequestGate, type Setup } from "../_shared/provider_gate.ts";
import { redact } from "../_shared/redact.ts";
import { RESEND_RATE_KEY, resendSetup, type ResendSetup, sendResendEmail } from "../_shared/resend_email.ts";

export { BUSY_RETRY_SECONDS } from "../_shared/resend_email.ts";

/** The sender settings, the first one set wins. */
export const FROM_SETTINGS = ["OUTREACH_EMAIL_FROM", "RESEND_FROM"] as const;

export const NotificationPayloadSchema = z.object({
  notification_id: z.number().int().positive(),
  // Moved off the payload by a trigger; accepted when present.
  rate_keys: z.array(z.string()).optional(),
});
export type NotificationPayload = z.output<typeof NotificationPayloadSchema>;

/** One row of the job's context function. `to` is only checked for shape here: an address Resend
 * refuses is its 422, a dead task naming the error, rather than a context retried for ever. */
export const NotificationContextSchema = z.object({
  notification_id: z.number().int().positive(),
  to: z.string().trim().min(3).max(320).refine((s) => s.includes("@"), "not an email address"),
  subject: z.string().min(1).max(998),
  text: z.string().min(1),
  idempotency_key: z.string().min(1).max(256),
});
export type NotificationContext = z.output<typeof NotificationContextSchema>;

export interface HandlerDeps extends RunnerDeps {
  fetch?: FetchFn;
  /** Provider call deadline; 10 s by default. */
  timeoutMs?: number;
}

interface Session {
  resend: Setup<ResendSetup>;
  gate: RequestGate;
  resendCalls: number;
}

export function sendNotificationJob(deps: HandlerDeps): JobFunction<NotificationPayload, NotificationContext, Session> {
  const now = deps.now ?? Date.now;
  const common: ClientCommon = { fetch: deps.fetch ?? fetch, timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS, now };
  const secretsOf = (s: Pick<Session, "resend">) => s.resend.ok ? s.resend.secrets : [];

  return {
    name: "send-notification",
    payload: NotificationPayloadSchema,
    context: NotificationContextSchema,
    session: () => {
      const setup = { resend: resendSetup(deps.env, common, { label: "Notification emails", fromSettings: FROM_SETTINGS, userAgent: "duework-send-notification" }) };
      const scrub = (text: string) => redact(text, secretsOf(setup));
      return { ...setup, gate: new RequestGate({ provider: "Resend", rateKey: RESEND_RATE_KEY, now, scrub }), resendCalls: 0 };
    },
    secrets: (_task, s) => secretsOf(s),
    tagsField: "messages",
    // Zeros included, so the messages field always carries every count.
    counters: (s) => ({ emails_sent: 0, resend_calls: s.resendCalls }),

    perform({ context: c }, s) {
      return s.gate.run(async () => {
        if (!s.resend.ok) return s.gate.release(s.resend.error);
        s.resendCalls++;
        return await sendResendEmail(s.resend.value, s.gate, {
          to: c.to,
          subject: oneLine(c.subject),
          text: c.text,
          html: htmlEmail(c.subject, textParagraphs(c.text)),
          idempotencyKey: c.idempotency_key,
          tags: [{ name: "source", value: "outreach" }, { name: "notification_id", value: String(c.notification_id) }],
        }, (id) => ({ outcome: "ok", data: { provider_message_id: id }, tag: "emails_sent" }));
      });
    },
  };
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  return serveJob(sendNotificationJob(deps), deps);
}
