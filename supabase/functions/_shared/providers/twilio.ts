// Twilio Programmable Messaging (WhatsApp), provider-contracts §4: send a template message
// (POST {base}/2010-04-01/Accounts/{sid}/Messages.json, form-encoded, HTTP Basic sid:token,
// To/From prefixed `whatsapp:`, ContentSid + ContentVariables, StatusCallback), and look up the
// recent messages between two addresses (GET …/Messages.json?To&From&PageSize=20) so that an
// attempt whose outcome is unknown can be reconciled before anything is sent again.
//
// Plain fetch, not the twilio SDK: the SDK pulls in axios, its own HTTP agent and every Twilio
// product's resource classes, which a function would load on every cold start to make one POST.
//
// Twilio documents no idempotency key for Messages create (§0 trap 6), so a POST that may have
// reached Twilio must never be repeated blind: a timeout, or a connection that broke after the
// request was written, is `unknown_outcome`, and the caller looks the message up first on its
// next attempt. Only failures that prove nothing was sent (the connection never opened, 5xx,
// 429/20429 "never processed") are `transient` / `rate_limited`. Error texts come from Twilio's
// envelope {code, message, more_info, status}; none of them contains the auth token (network
// error texts are scrubbed of it too).

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

export const TWILIO_DEFAULT_BASE_URL = "https://api.twilio.com";
export const TWILIO_ACCOUNT_SID_PATTERN = /^AC[0-9a-fA-F]{32}$/;
/** How far before `since` a message may have been created and still count (clock skew). */
export const RECONCILE_SKEW_MS = 5_000;
export const RECONCILE_PAGE_SIZE = 20;

/** Errors Twilio answers synchronously that resending the same message cannot fix. */
export const TWILIO_PERMANENT_CODES: ReadonlySet<number> = new Set([
  21211, // invalid To
  21408, // region not enabled (geo permissions)
  21608, // trial account, unverified To
  21610, // recipient unsubscribed (STOP)
  21614, // To is not capable of receiving the channel
  63016, // outside the WhatsApp 24-h window (normally asynchronous, §0 trap 7)
]);
/** Our sender is wrong (TWILIO_WHATSAPP_FROM): every message would fail, so it is configuration. */
export const TWILIO_SENDER_CODES: ReadonlySet<number> = new Set([
  21212, // invalid From
  21606, // From is not a valid sender for this account
  63007, // no WhatsApp channel for this From
]);
export const TWILIO_AUTH_CODE = 20003;
export const TWILIO_TOO_MANY_REQUESTS_CODE = 20429;

export interface TwilioOptions {
  accountSid: string;
  authToken: string;
  baseUrl?: string;
  fetch?: FetchFn;
  timeoutMs?: number;
  now?: () => number;
}

export interface WhatsAppTemplate {
  /** E.164 (+447700900123) or already `whatsapp:+…`. */
  to: string;
  from: string;
  contentSid: string;
  /** Template variables ({"1": "Ana", …}); sent as a JSON string. */
  contentVariables: Record<string, string>;
  statusCallback?: string | null;
}

export type TwilioSendResult =
  | { kind: "sent"; sid: string; status: string }
  /** Twilio refused this message (bad or unsubscribed recipient…): sending it again fails the same way. */
  | { kind: "permanent"; code: number | null; error: string }
  /** 429 / 20429: never processed, retry after the wait (null: the caller's backoff). */
  | { kind: "rate_limited"; retryAfterSeconds: number | null; error: string }
  /** Credentials or account path refused (20003 / 401, 404): no message can be sent. */
  | { kind: "misconfigured"; error: string }
  /** Nothing was sent (5xx, the connection never opened): safe to send again. */
  | { kind: "transient"; error: string; retryAfterSeconds: number | null }
  /** The request may have reached Twilio (timeout, connection broken after sending): look the
   * message up before sending again. */
  | { kind: "unknown_outcome"; error: string };

export interface RecentMessageQuery {
  to: string;
  from: string;
  /** Earliest creation time a match may have (minus RECONCILE_SKEW_MS). */
  since: Date;
  /** Text the message body must contain (e.g. the booking reference). */
  mustContain: string;
}

export type TwilioLookupResult =
  | { kind: "found"; sid: string; status: string }
  | { kind: "not_found" }
  | { kind: "rate_limited"; retryAfterSeconds: number | null; error: string }
  | { kind: "misconfigured"; error: string }
  /** The lookup did not answer: whether the message exists is unknown. */
  | { kind: "failed"; error: string; retryAfterSeconds: number | null };

export interface TwilioClient {
  /** Never throws: every failure is a TwilioSendResult. */
  sendWhatsAppTemplate(msg: WhatsAppTemplate): Promise<TwilioSendResult>;
  /** Never throws. */
  findRecentMessage(query: RecentMessageQuery): Promise<TwilioLookupResult>;
}

/** `whatsapp:+…` for an E.164 number (a value that already has the prefix is kept). */
export function whatsappAddress(number: string): string {
  const n = number.trim();
  return n.startsWith("whatsapp:") ? n : `whatsapp:${n}`;
}

/** TWILIO_BASE_URL (the local sandbox's twilio URL) or the real host. */
export function twilioBaseUrl(env: Env): string {
  return envValue(env, "TWILIO_BASE_URL") ?? TWILIO_DEFAULT_BASE_URL;
}

/** Where Twilio posts status callbacks: TWILIO_STATUS_CALLBACK_URL, else the twilio-status
 * function of this project; null when neither it nor SUPABASE_URL is set. send-reminder passes
 * it as StatusCallback and twilio-status verifies signatures against it. */
export function twilioStatusCallbackUrl(env: Env): string | null {
  const configured = envValue(env, "TWILIO_STATUS_CALLBACK_URL");
  if (configured) return configured;
  const base = envValue(env, "SUPABASE_URL");
  return base ? `${base.replace(/\/+$/, "")}/functions/v1/twilio-status` : null;
}

/** The value of the Authorization header (a secret: scrub it like the token). */
export function twilioBasicAuth(accountSid: string, authToken: string): string {
  return `Basic ${btoa(`${accountSid}:${authToken}`)}`;
}

export interface TwilioApiError {
  code: number | null;
  message: string | null;
  moreInfo: string | null;
  status: number | null;
}

/** Twilio's error envelope, or null when the body is not one. */
export function parseTwilioError(text: string): TwilioApiError | null {
  const b = parseJsonObject(text);
  if (b === null) return null;
  const code = typeof b.code === "number" ? b.code : typeof b.code === "string" && /^\d+$/.test(b.code) ? Number(b.code) : null;
  const message = typeof b.message === "string" ? b.message : null;
  if (code === null && message === null) return null;
  return {
    code,
    message,
    moreInfo: typeof b.more_info === "string" ? b.more_info : null,
    status: typeof b.status === "number" ? b.status : null,
  };
}

function describeTwilioError(status: number, e: TwilioApiError | null): string {
  if (e === null) return `Twilio HTTP ${status}`;
  const head = e.code !== null ? `Twilio error ${e.code} (HTTP ${status})` : `Twilio HTTP ${status}`;
  return `${head}${e.message ? `: ${e.message}` : ""}${e.moreInfo ? ` (${e.moreInfo})` : ""}`;
}


/** The connection was never established (DNS, refused, TLS): the request cannot have left. */
function neverSent(message: string): boolean {
  return /\(Connect\)|tcp connect error|dns error|failed to lookup address|connection refused|invalid peer certificate|tls handshake/i
    .test(message);
}

export function createTwilioClient(opts: TwilioOptions): TwilioClient {
  const baseUrl = (opts.baseUrl ?? TWILIO_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const fetchFn = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = opts.now ?? Date.now;
  const authorization = twilioBasicAuth(opts.accountSid, opts.authToken);
  const secrets = [opts.authToken, authorization, authorization.slice("Basic ".length)];
  const messagesUrl = `${baseUrl}/2010-04-01/Accounts/${encodeURIComponent(opts.accountSid)}/Messages.json`;

  type Call = { ok: true; res: HttpResult } | { ok: false; timeout: boolean; sent: boolean; error: string };

  async function call(url: string, init: RequestInit): Promise<Call> {
    try {
      const res = await fetchText(fetchFn, url, {
        ...init,
        headers: { ...init.headers as Record<string, string>, authorization, accept: "application/json" },
      }, timeoutMs);
      return { ok: true, res };
    } catch (err) {
      if (err instanceof HttpTimeoutError) {
        return { ok: false, timeout: true, sent: true, error: `timeout: Twilio did not answer within ${timeoutMs} ms` };
      }
      const message = errorChainText(err);
      return { ok: false, timeout: false, sent: !neverSent(message), error: `network error: ${redact(message, secrets)}` };
    }
  }

  /** The failure kinds shared by both calls, from a non-2xx answer. */
  function classifyError(res: HttpResult):
    | { kind: "rate_limited"; retryAfterSeconds: number | null; error: string }
    | { kind: "misconfigured"; error: string }
    | { kind: "transient"; error: string; retryAfterSeconds: number | null }
    | { kind: "permanent"; code: number | null; error: string } {
    const e = parseTwilioError(res.text);
    const error = redact(describeTwilioError(res.status, e), secrets);
    const retryAfterSeconds = parseRetryAfter(res.headers.get("retry-after"), now());
    if (res.status === 429 || e?.code === TWILIO_TOO_MANY_REQUESTS_CODE) return { kind: "rate_limited", retryAfterSeconds, error };
    if (res.status === 401 || e?.code === TWILIO_AUTH_CODE) {
      return {
        kind: "misconfigured",
        error: `Twilio refused the credentials (${error}); check the TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN function secrets`,
      };
    }
    if (e?.code != null && TWILIO_SENDER_CODES.has(e.code)) {
      return {
        kind: "misconfigured",
        error: `Twilio refused our sender (${error}); check the TWILIO_WHATSAPP_FROM function secret`,
      };
    }
    if (res.status === 404) {
      return {
        kind: "misconfigured",
        error: `Twilio does not know the account path (${error}); check TWILIO_ACCOUNT_SID (and TWILIO_BASE_URL)`,
      };
    }
    if (res.status >= 500 || res.status === 408) return { kind: "transient", error, retryAfterSeconds };
    // Any other 4xx: the listed codes (TWILIO_PERMANENT_CODES) and every other refusal of this
    // message; Twilio would answer the same again.
    return { kind: "permanent", code: e?.code ?? null, error };
  }

  return {
    async sendWhatsAppTemplate(msg) {
      const form = new URLSearchParams({
        To: whatsappAddress(msg.to),
        From: whatsappAddress(msg.from),
        ContentSid: msg.contentSid,
        ContentVariables: JSON.stringify(msg.contentVariables),
      });
      if (msg.statusCallback) form.set("StatusCallback", msg.statusCallback);
      const c = await call(messagesUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: form,
      });
      if (!c.ok) return c.sent ? { kind: "unknown_outcome", error: c.error } : { kind: "transient", error: c.error, retryAfterSeconds: null };
      const { res } = c;
      if (res.status >= 200 && res.status < 300) {
        const body = parseJson(res.text) as Record<string, unknown> | null | undefined;
        const sid = typeof body?.sid === "string" && body.sid ? body.sid : null;
        if (sid === null) {
          // Twilio took the request; whether a message exists is for the lookup to say.
          return { kind: "unknown_outcome", error: `unexpected response: HTTP ${res.status} without a message sid` };
        }
        return { kind: "sent", sid, status: typeof body?.status === "string" && body.status ? body.status : "queued" };
      }
      return classifyError(res);
    },

    async findRecentMessage(q) {
      // An empty text would match every message to this number.
      if (!q.mustContain) return { kind: "failed", error: "reconcile lookup: no text to match", retryAfterSeconds: null };
      const query = new URLSearchParams({
        To: whatsappAddress(q.to),
        From: whatsappAddress(q.from),
        PageSize: String(RECONCILE_PAGE_SIZE),
      });
      const c = await call(`${messagesUrl}?${query}`, { method: "GET" });
      if (!c.ok) return { kind: "failed", error: `reconcile lookup: ${c.error}`, retryAfterSeconds: null };
      const { res } = c;
      if (res.status < 200 || res.status >= 300) {
        const r = classifyError(res);
        if (r.kind === "rate_limited" || r.kind === "misconfigured") return r;
        return { kind: "failed", error: `reconcile lookup: ${r.error}`, retryAfterSeconds: r.kind === "transient" ? r.retryAfterSeconds : null };
      }
      const body = parseJson(res.text) as Record<string, unknown> | null | undefined;
      const messages = body?.messages;
      if (!Array.isArray(messages)) {
        return { kind: "failed", error: `reconcile lookup: unexpected response: HTTP ${res.status} without messages`, retryAfterSeconds: null };
      }
      const earliest = q.since.getTime() - RECONCILE_SKEW_MS;
      // Newest first: the first match is the latest message of this notification.
      for (const m of messages as Record<string, unknown>[]) {
        if (m === null || typeof m !== "object") continue;
        const created = typeof m.date_created === "string" ? Date.parse(m.date_created) : NaN;
        const text = typeof m.body === "string" ? m.body : "";
        if (typeof m.sid === "string" && m.sid && Number.isFinite(created) && created >= earliest && text.includes(q.mustContain)) {
          return { kind: "found", sid: m.sid, status: typeof m.status === "string" && m.status ? m.status : "queued" };
        }
      }
      return { kind: "not_found" };
    },
  };
}
