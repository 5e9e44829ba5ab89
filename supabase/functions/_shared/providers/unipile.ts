// Unipile API v1 (LinkedIn), provider-contracts §6: profiles, invitations, relations and
// messaging for one connected LinkedIn account (`account_id` = Unipile's id of it).
//
//   GET  /users/{identifier}?account_id            profile → provider_id (ACo…)
//   POST /users/invite                  JSON       {account_id, provider_id, message?}
//   GET  /users/invite/sent?account_id&limit&cursor
//   GET  /users/relations?account_id&limit&cursor  (limit ≤ 1000)
//   POST /chats                         multipart  account_id, attendees_ids, text
//   POST /chats/{chat_id}/messages      multipart  text, account_id
//   GET  /chats?account_id&after&limit&cursor
//   GET  /chats/{chat_id}/messages?after&limit&cursor
//
// Base URL: the account's DSN (UNIPILE_BASE_URL, e.g. https://api1.unipile.com:13111), `/api/v1`
// appended unless already there; there is no default host. Auth: `X-API-KEY`, `accept:
// application/json`. Plain fetch, not unipile-node-sdk: the SDK pulls in node-fetch, formdata-node
// and typebox, which a function would load on every cold start to make one call.
//
// Multipart bodies are built with the platform's FormData and handed to fetch as they are: fetch
// writes `Content-Type: multipart/form-data; boundary=…` itself. A hand-set Content-Type has no
// boundary and Unipile refuses the request (the SDK's own comment says as much).
//
// Errors are RFC 7807-like `{title, detail, type: "errors/<x>", status}` and are classified into
// the kinds of UnipileFailure. A POST that may have reached Unipile (timeout, connection broken
// after the request was written) is `unknown_outcome`: LinkedIn may have the invitation or the
// message, so the caller reconciles before sending again. A GET that did not answer is
// `transient`. The API key never appears in a result's error text (redacted, like network texts).
//
// Response shapes are read defensively: the v1 schemas are mostly untyped in the SDK, and
// scraped examples disagree. UNVERIFIED, and tolerated here:
//   - relations' `member_id` may be the numeric member id or the ACo… provider id; `created_at`
//     may be seconds or milliseconds (both parsed; callers match on public_identifier and/or id);
//   - sent invitations' items (`id`, `invited_user_id`, `invited_user_public_id`, `date` /
//     `parsed_datetime`) come from a secondary source, and their order (newest first) is assumed;
//   - `message_id` in MessageSent / ChatStarted, `invitation_id` in UserInvitationSent: a 2xx
//     without them is still taken as sent (ids null), never resent;
//   - messages' `is_sender` is 0/1 in the SDK's schema, a boolean elsewhere: both accepted;
//   - page limits other than relations' 1..1000 (chats, messages, invitations: clamped to 1..250).

import type { Env } from "../env.ts";
import { DEFAULT_TIMEOUT_MS, errorChainText, type FetchFn, fetchText, HttpTimeoutError, type HttpResult, parseJson, parseRetryAfter } from "../http.ts";
import { redact } from "../redact.ts";
import { requireSecrets } from "./token_refresh.ts";

export const UNIPILE_API_PATH = "/api/v1";
export const RELATIONS_MAX_LIMIT = 1000;
/** UNVERIFIED: the documented bound of the messaging and invitation listings. */
export const LIST_MAX_LIMIT = 250;

/** 401 types that mean the LinkedIn account itself must be reconnected (not our API key). */
export const ACCOUNT_ERROR_TYPES: ReadonlySet<string> = new Set(["disconnected_account", "invalid_credentials", "expired_credentials"]);
/** 422 types of an invitation LinkedIn already has (or a relation that already exists). */
export const ALREADY_TYPES = ["already_invited_recently", "cannot_resend_yet", "already_connected"] as const;
export type AlreadyType = typeof ALREADY_TYPES[number];
export const LIMIT_EXCEEDED_TYPE = "limit_exceeded";

// ---------------------------------------------------------------------------------------------
// Results

export type UnipileFailure =
  /** 401 disconnected_account / invalid_credentials / expired_credentials: the LinkedIn account
   * needs reconnecting; nothing of this account will work until then. */
  | { kind: "account_disconnected"; status: number; type: string; error: string }
  /** 422 already_invited_recently / cannot_resend_yet / already_connected. */
  | { kind: "already"; status: number; type: AlreadyType; error: string }
  /** 422 limit_exceeded: LinkedIn's quota for the account (invitations, usually) is used up. */
  | { kind: "limit_exceeded"; status: number; type: string; error: string }
  /** Other 422, 400, 404 (and any other 4xx): this request will be refused the same way again. */
  | { kind: "refused"; status: number; type: string; error: string }
  /** 429: wait (Retry-After seconds, null when absent). */
  | { kind: "rate_limited"; retryAfterSeconds: number | null; error: string }
  /** 5xx. On a POST the outcome is unknown as well (LinkedIn may still have acted). */
  | { kind: "server_error"; status: number; retryAfterSeconds: number | null; error: string }
  /** Other 401, 403: our API key (or the DSN) is wrong; no call of any account can succeed. */
  | { kind: "misconfigured"; error: string }
  /** A POST that may have reached Unipile did not answer (timeout, connection broken). */
  | { kind: "unknown_outcome"; error: string }
  /** Nothing happened (a GET that did not answer, a connection that never opened, an answer we
   * cannot read): safe to try again. */
  | { kind: "transient"; error: string };

/** A 429 without Retry-After waits this long, and a 5xx at least this long. */
export const DEFAULT_RETRY_AFTER_SECONDS = 60;

/** How long to wait after Unipile said 429 or failed (5xx): its Retry-After, within those bounds. */
export function unipileWaitSeconds(r: Extract<UnipileFailure, { kind: "rate_limited" | "server_error" }>): number {
  return r.kind === "rate_limited"
    ? Math.max(1, r.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS)
    : Math.max(DEFAULT_RETRY_AFTER_SECONDS, r.retryAfterSeconds ?? 0);
}

export interface Page<T> {
  kind: "page";
  items: T[];
  /** Pass back for the next page; null at the end. */
  cursor: string | null;
}

export interface Profile {
  kind: "profile";
  providerId: string;
  publicIdentifier: string | null;
}

export interface SentInvitation {
  id: string;
  /** `invited_user_id` (UNVERIFIED whether the ACo… provider id). */
  providerId: string | null;
  publicIdentifier: string | null;
  /** Milliseconds since the epoch, when given. */
  sentAtMs: number | null;
}

export interface Relation {
  publicIdentifier: string | null;
  /** `member_id` as a string, whatever its form (numeric or ACo…). */
  memberId: string | null;
  /** The ACo… id, when one of `provider_id` / `member_id` looks like one. */
  providerId: string | null;
  createdAtMs: number | null;
}

export interface Chat {
  id: string;
  attendeeProviderId: string | null;
  timestampMs: number | null;
}

export interface ChatMessage {
  id: string;
  text: string | null;
  /** Sent by the connected account (ours), not by the other side. */
  isSender: boolean;
  timestamp: number | null;
  /** A system event (reaction, group change…), not a message anyone wrote. */
  isEvent: boolean;
}

export type InvitationSent = { kind: "sent"; invitationId: string | null; usage: number | null };
export type ChatStarted = { kind: "sent"; chatId: string | null; messageId: string | null };
export type MessageSent = { kind: "sent"; messageId: string | null };

export interface UnipileClient {
  // Every method never throws: failures are UnipileFailure.
  getProfile(accountId: string, identifier: string): Promise<Profile | UnipileFailure>;
  sendInvitation(input: { accountId: string; providerId: string; message?: string | null }): Promise<InvitationSent | UnipileFailure>;
  listSentInvitations(input: { accountId: string; cursor?: string | null; limit?: number }): Promise<Page<SentInvitation> | UnipileFailure>;
  listRelations(input: { accountId: string; cursor?: string | null; limit?: number }): Promise<Page<Relation> | UnipileFailure>;
  startChat(input: { accountId: string; attendeeProviderId: string; text: string }): Promise<ChatStarted | UnipileFailure>;
  sendMessage(input: { chatId: string; accountId: string; text: string }): Promise<MessageSent | UnipileFailure>;
  listChats(input: { accountId: string; after?: Date | null; cursor?: string | null; limit?: number }): Promise<Page<Chat> | UnipileFailure>;
  listChatMessages(input: { chatId: string; after?: Date | null; cursor?: string | null; limit?: number }): Promise<Page<ChatMessage> | UnipileFailure>;
}

export interface UnipileOptions {
  /** The API root: an origin (+ optional path) to which `/api/v1` is added unless present. */
  baseUrl: string;
  apiKey: string;
  fetch?: FetchFn;
  timeoutMs?: number;
  now?: () => number;
  /** Called once per HTTP request sent (counters). */
  onRequest?: () => void;
}

const FAILURE_KINDS = new Set([
  "account_disconnected",
  "already",
  "limit_exceeded",
  "refused",
  "rate_limited",
  "server_error",
  "misconfigured",
  "unknown_outcome",
  "transient",
]);

export function isFailure(r: { kind: string }): r is UnipileFailure {
  return FAILURE_KINDS.has(r.kind);
}

// ---------------------------------------------------------------------------------------------
// Configuration

const BASE_URL_EXAMPLE = "https://api1.unipile.com:13111";

/**
 * The API root from a DSN: `https://api1.unipile.com:13111` → `https://api1.unipile.com:13111/api/v1`.
 * A DSN without a scheme (as Unipile's dashboard shows it, `api1.unipile.com:13111`) gets
 * https://; one that already ends in /api/v1 is kept.
 */
export function unipileApiBase(raw: string): { ok: true; url: string } | { ok: false; error: string } {
  let value = raw.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) value = `https://${value}`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, error: `UNIPILE_BASE_URL must be your Unipile DSN, such as ${BASE_URL_EXAMPLE}` };
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password) {
    return { ok: false, error: `UNIPILE_BASE_URL must be your Unipile DSN, such as ${BASE_URL_EXAMPLE}` };
  }
  let path = url.pathname.replace(/\/+$/, "");
  if (!path.endsWith(UNIPILE_API_PATH)) path = `${path}${UNIPILE_API_PATH}`;
  return { ok: true, url: `${url.origin}${path}` };
}

export type UnipileSetup =
  | { ok: true; client: UnipileClient; secrets: string[] }
  /** No call is possible; says which setting to fix. */
  | { ok: false; configError: string };

/** The client from UNIPILE_BASE_URL and UNIPILE_API_KEY, or the configuration error naming them. */
export function unipileFromEnv(env: Env, opts: Omit<UnipileOptions, "baseUrl" | "apiKey"> = {}): UnipileSetup {
  const s = requireSecrets(env, ["UNIPILE_BASE_URL", "UNIPILE_API_KEY"]);
  if (!s.ok) return { ok: false, configError: s.configError };
  const base = unipileApiBase(s.values.UNIPILE_BASE_URL);
  if (!base.ok) return { ok: false, configError: base.error };
  const apiKey = s.values.UNIPILE_API_KEY;
  return { ok: true, client: createUnipileClient({ ...opts, baseUrl: base.url, apiKey }), secrets: [apiKey] };
}

// ---------------------------------------------------------------------------------------------
// Errors

export interface UnipileApiError {
  /** Without the `errors/` prefix (`disconnected_account`). */
  type: string | null;
  title: string | null;
  detail: string | null;
  status: number | null;
}

/** Unipile's error body, or null when the body is not one. */
export function parseUnipileError(text: string): UnipileApiError | null {
  const b = asObject(parseJson(text));
  if (b === null) return null;
  const rawType = str(b.type);
  const type = rawType === null ? null : rawType.replace(/^errors\//, "");
  const title = str(b.title);
  const detail = str(b.detail) ?? str(b.message);
  if (type === null && title === null && detail === null) return null;
  const status = typeof b.status === "number" ? b.status : null;
  return { type, title, detail, status };
}

function describe(status: number, e: UnipileApiError | null): string {
  const head = `Unipile ${status}${e?.type ? ` ${e.type}` : ""}`;
  const text = [e?.title, e?.detail].filter((t): t is string => !!t && t.length > 0);
  // A detail that only repeats the title is dropped.
  if (text.length === 2 && text[0] === text[1]) text.pop();
  return text.length > 0 ? `${head}: ${text.join(" - ")}` : head;
}

/** The connection was never established (DNS, refused, TLS): the request cannot have left. */
function neverSent(message: string): boolean {
  return /\(Connect\)|tcp connect error|dns error|failed to lookup address|connection refused|invalid peer certificate|tls handshake/i
    .test(message);
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers (shape drift tolerated)

function asObject(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : null;
}

/** A non-empty string, or a finite number as a string (ids that came back numeric). */
function str(v: unknown): string | null {
  if (typeof v === "string") return v.trim() === "" ? null : v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return null;
}

/** LinkedIn's provider ids start ACo… (members) or ACw… (seen in the wild); numeric member ids do not. */
export function looksLikeProviderId(v: string | null | undefined): boolean {
  return typeof v === "string" && /^AC[A-Za-z0-9_-]{6,}$/.test(v);
}

/** Seconds or milliseconds since the epoch (a number or a numeric string), or an ISO date. */
export function toEpochMs(v: unknown): number | null {
  let n: number | null = null;
  if (typeof v === "number" && Number.isFinite(v)) n = v;
  else if (typeof v === "string" && /^\d+(\.\d+)?$/.test(v.trim())) n = Number(v);
  if (n !== null) return n < 1e12 ? Math.round(n * 1000) : Math.round(n); // 1e12 ms = 2001; 1e12 s is year 33658
  if (typeof v === "string") {
    const at = Date.parse(v);
    return Number.isNaN(at) ? null : at;
  }
  return null;
}

function truthy(v: unknown): boolean {
  return v === true || v === 1 || v === "1" || v === "true";
}

/** The slug of https://www.linkedin.com/in/<slug>/, if that is what the URL is. */
function slugOfProfileUrl(v: unknown): string | null {
  const s = str(v);
  if (s === null) return null;
  const m = /linkedin\.com\/in\/([^/?#]+)/i.exec(s);
  return m ? m[1] : null;
}

/**
 * Comparable form of a public identifier: trimmed, URL-decoded, lower case (LinkedIn's profile
 * slugs are case-insensitive, and non-ASCII ones come back percent-encoded or not).
 */
export function normalizePublicIdentifier(v: string | null | undefined): string | null {
  if (typeof v !== "string") return null;
  let s = v.trim().replace(/\/+$/, "");
  try {
    s = decodeURIComponent(s);
  } catch { /* keep as is */ }
  s = s.normalize("NFC").toLowerCase();
  return s === "" ? null : s;
}

function clampLimit(limit: number | undefined, max: number, fallback: number): number {
  if (limit === undefined || !Number.isFinite(limit)) return fallback;
  return Math.min(max, Math.max(1, Math.floor(limit)));
}

function parseRelation(item: Record<string, unknown>): Relation {
  const memberId = str(item.member_id);
  const explicit = str(item.provider_id);
  return {
    publicIdentifier: str(item.public_identifier) ?? slugOfProfileUrl(item.public_profile_url),
    memberId,
    providerId: looksLikeProviderId(explicit) ? explicit : looksLikeProviderId(memberId) ? memberId : explicit,
    createdAtMs: toEpochMs(item.created_at),
  };
}

function parseSentInvitation(item: Record<string, unknown>): SentInvitation | null {
  const id = str(item.id) ?? str(item.invitation_id);
  if (id === null) return null;
  return {
    id,
    providerId: str(item.invited_user_id) ?? str(item.provider_id),
    publicIdentifier: str(item.invited_user_public_id) ?? str(item.public_identifier),
    sentAtMs: toEpochMs(item.parsed_datetime) ?? toEpochMs(item.date),
  };
}

function parseChat(item: Record<string, unknown>): Chat | null {
  const id = str(item.id);
  if (id === null) return null;
  let attendee = str(item.attendee_provider_id);
  if (attendee === null && Array.isArray(item.attendees) && item.attendees.length === 1) {
    const a = asObject(item.attendees[0]);
    attendee = a === null ? null : str(a.attendee_provider_id) ?? str(a.provider_id);
  }
  return { id, attendeeProviderId: attendee, timestampMs: toEpochMs(item.timestamp) };
}

function parseMessage(item: Record<string, unknown>): ChatMessage | null {
  const id = str(item.id) ?? str(item.provider_id);
  if (id === null) return null;
  return {
    id,
    text: typeof item.text === "string" ? item.text : null,
    isSender: truthy(item.is_sender),
    timestamp: toEpochMs(item.timestamp),
    isEvent: truthy(item.is_event),
  };
}

// ---------------------------------------------------------------------------------------------
// The client

export function createUnipileClient(opts: UnipileOptions): UnipileClient {
  const base = unipileApiBase(opts.baseUrl);
  // A bad base URL is the caller's configuration error (unipileFromEnv checks it first).
  const root = base.ok ? base.url : opts.baseUrl.replace(/\/+$/, "");
  const fetchFn = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = opts.now ?? Date.now;
  const secrets = [opts.apiKey];
  const clean = (text: string) => redact(text, secrets);

  type Method = "GET" | "POST";
  type Call = { ok: true; res: HttpResult } | { ok: false; failure: UnipileFailure };

  function url(path: string, query: Record<string, string | number | null | undefined> = {}): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
    const qs = q.toString();
    return `${root}${path}${qs ? `?${qs}` : ""}`;
  }

  async function call(method: Method, target: string, body?: { json: unknown } | { form: FormData }): Promise<Call> {
    const headers: Record<string, string> = { "X-API-KEY": opts.apiKey, accept: "application/json" };
    let payload: BodyInit | undefined;
    if (body !== undefined && "json" in body) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body.json);
    } else if (body !== undefined) {
      // No Content-Type here: fetch writes multipart/form-data with its boundary.
      payload = body.form;
    }
    opts.onRequest?.();
    try {
      const res = await fetchText(fetchFn, target, { method, headers, body: payload }, timeoutMs);
      if (res.status >= 200 && res.status < 300) return { ok: true, res };
      return { ok: false, failure: classify(method, res) };
    } catch (err) {
      if (err instanceof HttpTimeoutError) {
        const error = `timeout: Unipile did not answer within ${timeoutMs} ms`;
        return { ok: false, failure: method === "POST" ? { kind: "unknown_outcome", error } : { kind: "transient", error } };
      }
      const message = errorChainText(err);
      const error = `network error: ${clean(message)}`;
      const mayHaveArrived = method === "POST" && !neverSent(message);
      return { ok: false, failure: mayHaveArrived ? { kind: "unknown_outcome", error } : { kind: "transient", error } };
    }
  }

  function classify(method: Method, res: HttpResult): UnipileFailure {
    const e = parseUnipileError(res.text);
    const type = e?.type ?? null;
    const status = res.status;
    const error = clean(describe(status, e));
    const retryAfterSeconds = parseRetryAfter(res.headers.get("retry-after"), now());
    if (status === 429) return { kind: "rate_limited", retryAfterSeconds, error };
    if (status >= 500) return { kind: "server_error", status, retryAfterSeconds, error };
    // The account's own refusals are read from the type first: they mean the same whatever the
    // status they come with (401 is the documented one).
    if (type !== null && ACCOUNT_ERROR_TYPES.has(type)) return { kind: "account_disconnected", status, type, error };
    if (status === 401 || status === 403) {
      return {
        kind: "misconfigured",
        error: `Unipile refused the API key (${error}); check the UNIPILE_API_KEY function secret (and UNIPILE_BASE_URL, your DSN)`,
      };
    }
    if (type !== null && (ALREADY_TYPES as readonly string[]).includes(type)) {
      return { kind: "already", status, type: type as AlreadyType, error };
    }
    if (type === LIMIT_EXCEEDED_TYPE) return { kind: "limit_exceeded", status, type, error };
    if (status === 408) {
      const timeout = `${error} (request timeout)`;
      return method === "POST" ? { kind: "unknown_outcome", error: timeout } : { kind: "transient", error: timeout };
    }
    // 400, 404, other 422 and any other 4xx: asking again gets the same answer.
    return { kind: "refused", status, type: type ?? `http_${status}`, error };
  }

  function body(res: HttpResult): Record<string, unknown> | null {
    return asObject(parseJson(res.text));
  }

  function unexpected(res: HttpResult, what: string): UnipileFailure {
    return { kind: "transient", error: `unexpected response: HTTP ${res.status} ${what}` };
  }

  async function page<T>(target: string, parse: (item: Record<string, unknown>) => T | null): Promise<Page<T> | UnipileFailure> {
    const c = await call("GET", target);
    if (!c.ok) return c.failure;
    const b = body(c.res);
    if (b === null || !Array.isArray(b.items)) return unexpected(c.res, "without items");
    const items: T[] = [];
    for (const raw of b.items) {
      const item = asObject(raw);
      const parsed = item === null ? null : parse(item);
      if (parsed !== null) items.push(parsed);
    }
    return { kind: "page", items, cursor: str(b.cursor) };
  }

  return {
    async getProfile(accountId, identifier) {
      const c = await call("GET", url(`/users/${encodeURIComponent(identifier)}`, { account_id: accountId }));
      if (!c.ok) return c.failure;
      const b = body(c.res);
      const providerId = str(b?.provider_id);
      if (b === null || providerId === null) return unexpected(c.res, "without provider_id");
      return { kind: "profile", providerId, publicIdentifier: str(b.public_identifier) };
    },

    async sendInvitation({ accountId, providerId, message }) {
      const json: Record<string, string> = { account_id: accountId, provider_id: providerId };
      if (message) json.message = message;
      const c = await call("POST", url("/users/invite"), { json });
      if (!c.ok) return c.failure;
      const b = body(c.res);
      return { kind: "sent", invitationId: str(b?.invitation_id) ?? str(b?.id), usage: typeof b?.usage === "number" ? b.usage : null };
    },

    listSentInvitations({ accountId, cursor, limit }) {
      return page(url("/users/invite/sent", { account_id: accountId, limit: clampLimit(limit, LIST_MAX_LIMIT, 100), cursor }), parseSentInvitation);
    },

    listRelations({ accountId, cursor, limit }) {
      return page(
        url("/users/relations", { account_id: accountId, limit: clampLimit(limit, RELATIONS_MAX_LIMIT, RELATIONS_MAX_LIMIT), cursor }),
        parseRelation,
      );
    },

    async startChat({ accountId, attendeeProviderId, text }) {
      const form = new FormData();
      form.append("account_id", accountId);
      form.append("attendees_ids", attendeeProviderId);
      form.append("text", text);
      const c = await call("POST", url("/chats"), { form });
      if (!c.ok) return c.failure;
      const b = body(c.res);
      return { kind: "sent", chatId: str(b?.chat_id) ?? str(b?.id), messageId: str(b?.message_id) };
    },

    async sendMessage({ chatId, accountId, text }) {
      const form = new FormData();
      form.append("text", text);
      form.append("account_id", accountId);
      const c = await call("POST", url(`/chats/${encodeURIComponent(chatId)}/messages`), { form });
      if (!c.ok) return c.failure;
      const b = body(c.res);
      return { kind: "sent", messageId: str(b?.message_id) ?? str(b?.id) };
    },

    listChats({ accountId, after, cursor, limit }) {
      return page(
        url("/chats", { account_id: accountId, after: after ? after.toISOString() : null, limit: clampLimit(limit, LIST_MAX_LIMIT, 50), cursor }),
        parseChat,
      );
    },

    listChatMessages({ chatId, after, cursor, limit }) {
      return page(
        url(`/chats/${encodeURIComponent(chatId)}/messages`, {
          after: after ? after.toISOString() : null,
          limit: clampLimit(limit, LIST_MAX_LIMIT, 50),
          cursor,
        }),
        parseMessage,
      );
    },
  };
}
