// Resend, provider-contracts §5: POST {base}/emails (JSON, Authorization: Bearer re_…,
// Idempotency-Key), 200 {"id"}. Errors are flat {statusCode, name, message}; the kind is read
// from `name` first and the HTTP status second.
//
// Plain fetch, not the resend SDK: one POST does not need a client library loaded on every cold
// start. The Idempotency-Key makes every resend of the same email safe for 24 h (a replay with
// the same key and payload returns the first answer without sending), so timeouts and network
// failures are plain `transient`: unlike Twilio there is no unknown outcome to reconcile.

import { type Env, envValue } from "../env.ts";
import {
  DEFAULT_TIMEOUT_MS,
  errorChainText,
  type FetchFn,
  fetchText,
  HttpTimeoutError,
  type HttpResult,
  parseJson,
  parseJsonObject,
  parseRetryAfter,
} from "../http.ts";
import { redact } from "../redact.ts";

export const RESEND_DEFAULT_BASE_URL = "https://api.resend.com";

export interface ResendOptions {
  apiKey: string;
  baseUrl?: string;
  fetch?: FetchFn;
  timeoutMs?: number;
  now?: () => number;
  /** The setting that holds the sender, named when Resend refuses it (default RESEND_FROM). */
  senderSetting?: string;
  userAgent?: string;
}

export interface EmailMessage {
  /** "Name <address@domain>" */
  from: string;
  to: string | string[];
  subject: string;
  html: string;
  text: string;
  /** 1–256 characters; the same key with the same payload never sends twice (24 h). */
  idempotencyKey: string;
  /** ASCII letters, digits, _ and - only. */
  tags?: { name: string; value: string }[];
}

export type ResendSendResult =
  | { kind: "sent"; id: string }
  /** Resend refused this email (validation, or the key reused for another payload). */
  | { kind: "permanent"; name: string; error: string }
  /** 429 rate_limit_exceeded: the team's requests per second. */
  | { kind: "rate_limited"; retryAfterSeconds: number | null; error: string }
  /** 429 daily/monthly_quota_exceeded: nothing is sent until the quota resets. */
  | { kind: "quota"; retryAfterSeconds: number; error: string }
  /** 409 concurrent_idempotent_requests: the first request with this key is still in flight. */
  | { kind: "busy"; retryAfterSeconds: number | null; error: string }
  /** The key or the sender is refused: no email can be sent until the configuration changes. */
  | { kind: "misconfigured"; error: string }
  /** 5xx, timeout, network: safe to send again (the Idempotency-Key dedupes). */
  | { kind: "transient"; error: string; retryAfterSeconds: number | null };

export interface ResendClient {
  /** Never throws: every failure is a ResendSendResult. */
  sendEmail(email: EmailMessage): Promise<ResendSendResult>;
}

/** RESEND_BASE_URL (the local sandbox's resend URL) or the real host. */
export function resendBaseUrl(env: Env): string {
  return envValue(env, "RESEND_BASE_URL") ?? RESEND_DEFAULT_BASE_URL;
}

export interface ResendApiError {
  statusCode: number | null;
  name: string | null;
  message: string | null;
}

/** Resend's flat error body, or null when the body is not one. */
export function parseResendError(text: string): ResendApiError | null {
  const b = parseJsonObject(text);
  if (b === null) return null;
  const name = typeof b.name === "string" && b.name ? b.name : null;
  const message = typeof b.message === "string" ? b.message : null;
  if (name === null && message === null) return null;
  return { statusCode: typeof b.statusCode === "number" ? b.statusCode : null, name, message };
}

/** Seconds until the next UTC midnight (daily quota) or the first of next month (monthly). */
export function secondsUntilQuotaReset(period: "daily" | "monthly", nowMs: number): number {
  const d = new Date(nowMs);
  const reset = period === "daily"
    ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return Math.max(1, Math.ceil((reset - nowMs) / 1000));
}

/** ratelimit-reset: delta seconds (IETF draft 6, as Resend documents it). */
function resetSeconds(headers: Headers): number | null {
  const v = headers.get("ratelimit-reset")?.trim();
  return v && /^\d+$/.test(v) ? Number(v) : null;
}


export function createResendClient(opts: ResendOptions): ResendClient {
  const baseUrl = (opts.baseUrl ?? RESEND_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const fetchFn = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = opts.now ?? Date.now;
  const secrets = [opts.apiKey];
  const senderSetting = opts.senderSetting ?? "RESEND_FROM";

  return {
    async sendEmail(email) {
      const body: Record<string, unknown> = {
        from: email.from,
        to: email.to,
        subject: email.subject,
        html: email.html,
        text: email.text,
      };
      if (email.tags && email.tags.length > 0) body.tags = email.tags;
      let res: HttpResult;
      try {
        res = await fetchText(fetchFn, `${baseUrl}/emails`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${opts.apiKey}`,
            "content-type": "application/json",
            accept: "application/json",
            "idempotency-key": email.idempotencyKey,
            "user-agent": opts.userAgent ?? "duework",
          },
          body: JSON.stringify(body),
        }, timeoutMs);
      } catch (err) {
        if (err instanceof HttpTimeoutError) {
          return { kind: "transient", error: `timeout: Resend did not answer within ${timeoutMs} ms`, retryAfterSeconds: null };
        }
        return { kind: "transient", error: `network error: ${redact(errorChainText(err), secrets)}`, retryAfterSeconds: null };
      }
      return interpretResendResponse(res, now(), secrets, senderSetting);
    },
  };
}

/** Maps a POST /emails answer to a ResendSendResult (exported for tests). */
export function interpretResendResponse(
  res: HttpResult,
  nowMs: number,
  secrets: readonly string[] = [],
  senderSetting = "RESEND_FROM",
): ResendSendResult {
  const status = res.status;
  if (status >= 200 && status < 300) {
    const body = parseJson(res.text) as Record<string, unknown> | null | undefined;
    if (typeof body?.id === "string" && body.id) return { kind: "sent", id: body.id };
    // Sending again with the same key returns the first answer.
    return { kind: "transient", error: `unexpected response: HTTP ${status} without an email id`, retryAfterSeconds: null };
  }
  const e = parseResendError(res.text);
  const name = e?.name ?? `http_${status}`;
  const error = redact(`Resend ${status} ${name}${e?.message ? `: ${e.message}` : ""}`, secrets);
  const retryAfter = parseRetryAfter(res.headers.get("retry-after"), nowMs);

  if (status === 429) {
    if (name === "daily_quota_exceeded" || name === "monthly_quota_exceeded") {
      const period = name === "daily_quota_exceeded" ? "daily" : "monthly";
      // ratelimit-reset is documented for the per-second window; a quota resets at the day's or
      // month's end, so the longer of the two waits counts.
      const told = resetSeconds(res.headers) ?? retryAfter ?? 0;
      return { kind: "quota", retryAfterSeconds: Math.max(told, secondsUntilQuotaReset(period, nowMs)), error };
    }
    return { kind: "rate_limited", retryAfterSeconds: retryAfter ?? resetSeconds(res.headers), error };
  }
  if (status === 409) {
    if (name === "concurrent_idempotent_requests") return { kind: "busy", retryAfterSeconds: retryAfter, error };
    return { kind: "permanent", name, error }; // invalid_idempotent_request: same key, other payload
  }
  if (status === 401 || status === 403) {
    // 401 missing/restricted key, 403 invalid key, 403 validation_error (unverified domain,
    // testing-only sender): every email of this configuration fails the same way.
    return {
      kind: "misconfigured",
      error: `Resend refused the key or the sender (${error}); check the RESEND_API_KEY and ${senderSetting} function secrets ` +
        `and that the sender's domain is verified`,
    };
  }
  if (status === 404 || status === 405) {
    return { kind: "misconfigured", error: `Resend does not serve POST /emails here (${error}); check RESEND_BASE_URL` };
  }
  if (status >= 500 || status === 408) return { kind: "transient", error, retryAfterSeconds: retryAfter };
  // 400/422 validation_error, invalid_idempotency_key, missing_required_field, …
  return { kind: "permanent", name, error };
}
