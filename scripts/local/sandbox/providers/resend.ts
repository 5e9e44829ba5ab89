// Fake Resend API (api.resend.com), provider-contracts §5:
//   POST /emails       JSON body, Authorization: Bearer re_…, optional Idempotency-Key → 200 {id}
//   GET  /emails/{id}  the stored email (what resend.emails.get reads)
// Errors are flat {statusCode, name, message}. The team rate limit is enforced and reported on
// every answer (ratelimit-*); Idempotency-Key replays, conflicts and in-flight duplicates
// behave as documented, with "in flight" made observable through processing_ms.

import { jsonResponse, sleep } from "../http.ts";
import type { ProviderContext, ProviderModule, SandboxRequest } from "../types.ts";
import { canonicalJson, claimKey, finishKey, MAX_KEY_LENGTH, releaseKey } from "./resend_idempotency.ts";
import { quotaExceeded, rateLimitHeaders, type WindowReading } from "./resend_limits.ts";
import {
  loadResendState,
  type ResendEmail,
  type ResendState,
  seedResendState,
  snapshotResendState,
  storeEmail,
} from "./resend_state.ts";
import { type ResendErrorSpec, validateEmail } from "./resend_validate.ts";

const EMAIL_PATH = /^\/emails\/([^/]+)$/;

const ERRORS = {
  missing_api_key: { statusCode: 401, name: "missing_api_key", message: "Missing API key in the authorization header." },
  invalid_api_key: { statusCode: 403, name: "invalid_api_key", message: "API key is invalid." },
  rate_limit_exceeded: {
    statusCode: 429,
    name: "rate_limit_exceeded",
    message: "Too many requests. You can only make 5 requests per second. See rate limit response headers for more information.",
  },
  daily_quota_exceeded: {
    statusCode: 429,
    name: "daily_quota_exceeded",
    message: "You have reached your daily email sending quota.",
  },
  monthly_quota_exceeded: {
    statusCode: 429,
    name: "monthly_quota_exceeded",
    message: "You have reached your monthly email sending quota.",
  },
  invalid_idempotency_key: {
    statusCode: 400,
    name: "invalid_idempotency_key",
    message: "The key must be between 1-256 chars.",
  },
  invalid_idempotent_request: {
    statusCode: 409,
    name: "invalid_idempotent_request",
    message: "Same idempotency key used with a different request payload.",
  },
  concurrent_idempotent_requests: {
    statusCode: 409,
    name: "concurrent_idempotent_requests",
    message: "Same idempotency key used while original request is still in progress.",
  },
  not_found: { statusCode: 404, name: "not_found", message: "Email not found" },
  no_route: { statusCode: 404, name: "not_found", message: "The requested endpoint does not exist." },
  method_not_allowed: { statusCode: 405, name: "method_not_allowed", message: "Method not allowed" },
  application_error: {
    statusCode: 500,
    name: "application_error",
    message: "An unexpected error occurred. Please try again later.",
  },
  internal_server_error: {
    statusCode: 500,
    name: "internal_server_error",
    message: "An unexpected error occurred.",
  },
} satisfies Record<string, ResendErrorSpec>;

function resendError(e: ResendErrorSpec, reading: WindowReading | null, extra: Record<string, string> = {}): Response {
  return jsonResponse(e.statusCode, e, { ...rateLimitHeaders(reading), ...extra });
}

/** "2023-04-03 22:13:42.674981+00", the timestamp format of Resend's email objects. */
function resendTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "000+00");
}

function emailJson(e: ResendEmail): Record<string, unknown> {
  return {
    object: "email",
    id: e.id,
    to: e.to,
    from: e.from,
    created_at: resendTime(e.created_at),
    subject: e.subject,
    html: e.html,
    text: e.text,
    bcc: e.bcc,
    cc: e.cc,
    reply_to: e.reply_to,
    // The fake simulates no delivery events; an accepted email stays "sent".
    last_event: "sent",
    scheduled_at: e.scheduled_at,
    tags: e.tags,
  };
}

/** Seconds until the quota that refused a send starts over (next UTC day or month). */
function quotaRetryAfter(name: "daily_quota_exceeded" | "monthly_quota_exceeded", now: number): string {
  const d = new Date(now);
  const next = name === "daily_quota_exceeded"
    ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return String(Math.max(1, Math.ceil((next - now) / 1000)));
}

async function send(
  req: SandboxRequest,
  ctx: ProviderContext<ResendState>,
  reading: WindowReading | null,
  now: number,
): Promise<Response> {
  const state = ctx.state;
  const key = req.headers.get("idempotency-key");
  if (key !== null && (key.length < 1 || key.length > MAX_KEY_LENGTH)) {
    return resendError(ERRORS.invalid_idempotency_key, reading);
  }
  const claim = key === null ? null : claimKey(state, key, canonicalJson(req.body), now);
  if (claim?.kind === "conflict") {
    state.counters.responses_409++;
    return resendError(ERRORS[claim.name], reading);
  }
  if (claim?.kind === "replay") {
    state.counters.replayed++;
    return jsonResponse(claim.response.status, claim.response.body, rateLimitHeaders(reading));
  }
  const record = claim?.record;

  // Resend reads JSON only; any other body is as good as none.
  const json = req.contentType === "application/json" ? req.body : req.rawText;
  const valid = validateEmail(json, state.verifiedDomains);
  if ("statusCode" in valid) {
    if (record) releaseKey(state, record);
    return resendError(valid, reading);
  }
  const quota = quotaExceeded(state, now);
  if (quota !== null) {
    if (record) releaseKey(state, record);
    state.counters.responses_429++;
    state.counters[quota]++;
    return resendError(ERRORS[quota], reading, { "retry-after": quotaRetryAfter(quota, now) });
  }

  // The send "takes" processing_ms; a request with the same key meanwhile gets 409 concurrent.
  if (state.processingMs > 0) await sleep(state.processingMs, ctx.signal);
  const email: ResendEmail = { id: crypto.randomUUID(), ...valid, idempotency_key: key, created_at: state.now() };
  storeEmail(state, email);
  const body = { id: email.id };
  if (record) finishKey(record, { status: 200, body });
  return jsonResponse(200, body, rateLimitHeaders(reading));
}

async function handle(req: SandboxRequest, ctx: ProviderContext<ResendState>): Promise<Response> {
  const state = ctx.state;
  const now = state.now();
  const limit = state.rateLimitPerSecond;
  const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "")?.[1];
  // Unauthenticated answers carry the team's headers too but are not counted (no team known).
  if (auth === undefined) return resendError(ERRORS.missing_api_key, limit === null ? null : state.window.peek(now, limit));
  if (!state.apiKeys.has(auth)) return resendError(ERRORS.invalid_api_key, limit === null ? null : state.window.peek(now, limit));

  state.counters.requests++;
  const reading = limit === null ? null : state.window.take(now, limit);
  if (reading !== null && !reading.allowed) {
    state.counters.responses_429++;
    state.counters.rate_limit_exceeded++;
    const e = { ...ERRORS.rate_limit_exceeded, message: ERRORS.rate_limit_exceeded.message.replace("5", String(limit)) };
    return resendError(e, reading, { "retry-after": String(reading.reset) });
  }

  if (req.path === "/emails") {
    if (req.method !== "POST") return resendError(ERRORS.method_not_allowed, reading, { allow: "POST" });
    return await send(req, ctx, reading, now);
  }
  const m = EMAIL_PATH.exec(req.path);
  if (m === null) return resendError(ERRORS.no_route, reading);
  if (req.method !== "GET") return resendError(ERRORS.method_not_allowed, reading, { allow: "GET" });
  const email = state.emails.get(decodeURIComponent(m[1]));
  if (email === undefined) return resendError(ERRORS.not_found, reading);
  return jsonResponse(200, emailJson(email), rateLimitHeaders(reading));
}

function faultBody(status: number): ResendErrorSpec {
  const byStatus: Record<number, ResendErrorSpec> = {
    401: ERRORS.missing_api_key,
    403: ERRORS.invalid_api_key,
    404: ERRORS.no_route,
    405: ERRORS.method_not_allowed,
    409: ERRORS.concurrent_idempotent_requests,
    429: ERRORS.rate_limit_exceeded,
    500: ERRORS.internal_server_error,
  };
  if (byStatus[status]) return byStatus[status];
  if (status === 400 || status === 422) {
    return { statusCode: status, name: "validation_error", message: "We found an error with one or more fields in the request." };
  }
  if (status >= 500) return { ...ERRORS.application_error, statusCode: status };
  return { statusCode: status, name: "application_error", message: `Injected HTTP ${status}` };
}

export const resend: ProviderModule<ResendState> = {
  name: "resend",
  loadState: loadResendState,
  handle,
  faultBody,
  seed: seedResendState,
  snapshot: snapshotResendState,
};
