// An email job's Resend path (send-reminder's email channel, send-notification): the client built
// from the function's settings, and one POST /emails mapped to one outcome.
//
//   sent              → the caller's ok
//   permanent         → dead {error_code: Resend's error name} (400/422, 409 invalid_idempotent_request)
//   rate_limited      → retry after Resend's wait, pause "resend" that long; the request's later
//   / quota             emails retry notAttempted without a call (provider_gate.ts)
//   busy (409)        → retry after retry-after, else 2 s (the first request with the key is in flight)
//   misconfigured     → release (the key or the sender refused); the request's later emails too
//   transient         → retry (after Retry-After when sent); the Idempotency-Key makes it safe

import { type Env, envValue } from "./env.ts";
import type { Outcome } from "./outcome.ts";
import type { ClientCommon, RequestGate, Setup } from "./provider_gate.ts";
import { createResendClient, type EmailMessage, type ResendClient, resendBaseUrl } from "./providers/resend.ts";
import { requireSecrets } from "./providers/token_refresh.ts";

/** The engine bucket of every Resend call (tasks' rate_keys). */
export const RESEND_RATE_KEY = "resend";
/** Resend 409 concurrent_idempotent_requests without a retry-after. */
export const BUSY_RETRY_SECONDS = 2;

export interface ResendSetup {
  client: ResendClient;
  from: string;
}

export interface ResendSetupOptions {
  /** What these emails are, at the head of a configuration error ("Email reminders"). */
  label: string;
  /** The settings that may hold the sender, the first one set wins (["RESEND_FROM"]). */
  fromSettings: readonly [string, ...string[]];
  userAgent: string;
}

const SENDER = /^[^@\s<>]+@[^@\s<>]+$|<[^@\s<>]+@[^@\s<>]+>$/;

/** The Resend client over RESEND_API_KEY, RESEND_BASE_URL and the sender, or the error naming
 * the setting that is missing or malformed (the tasks are released with it). */
export function resendSetup(env: Env, common: ClientCommon, opts: ResendSetupOptions): Setup<ResendSetup> {
  const [first, ...fallbacks] = opts.fromSettings;
  const fromSetting = opts.fromSettings.find((name) => envValue(env, name) !== undefined) ?? first;
  const s = requireSecrets(env, ["RESEND_API_KEY", fromSetting]);
  if (!s.ok) {
    const noSender = envValue(env, fromSetting) === undefined && fallbacks.length > 0;
    return { ok: false, error: `${opts.label}: ${s.configError}${noSender ? `; nor is its fallback ${fallbacks.join(" or ")}` : ""}` };
  }
  const apiKey = s.values.RESEND_API_KEY;
  const from = s.values[fromSetting];
  if (!SENDER.test(from)) {
    return { ok: false, error: `${opts.label}: ${fromSetting} must be an address such as "Bookings <reminders@example.com>"` };
  }
  return {
    ok: true,
    value: {
      client: createResendClient({
        apiKey,
        baseUrl: resendBaseUrl(env),
        senderSetting: fromSetting,
        userAgent: opts.userAgent,
        ...common,
      }),
      from,
    },
    secrets: [apiKey],
  };
}

/** One POST /emails from the configured sender; `gate` blocks the request's later emails on a
 * rate limit or a refused configuration. */
export async function sendResendEmail(
  setup: ResendSetup,
  gate: RequestGate,
  email: Omit<EmailMessage, "from">,
  sent: (providerMessageId: string) => Outcome,
): Promise<Outcome> {
  const r = await setup.client.sendEmail({ ...email, from: setup.from });
  switch (r.kind) {
    case "sent":
      return sent(r.id);
    case "permanent":
      return { outcome: "dead", error: r.error, data: { error_code: r.name } };
    case "rate_limited":
    case "quota":
      return gate.rateLimited(r.error, r.retryAfterSeconds);
    case "busy":
      return { outcome: "retry", error: r.error, after: r.retryAfterSeconds ?? BUSY_RETRY_SECONDS };
    case "misconfigured":
      return gate.release(r.error);
    case "transient":
      return { outcome: "retry", error: r.error, after: r.retryAfterSeconds };
  }
}
