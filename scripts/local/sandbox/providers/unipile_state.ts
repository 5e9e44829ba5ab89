// State of the fake Unipile (LinkedIn) API v1: the API keys, the connected LinkedIn accounts
// (status, invitation limit), the LinkedIn members the fake knows (prospects), each account's
// relations, sent invitations, chats and messages, the registered webhooks and the options tests
// steer with POST /__state/unipile (see unipile_control.ts). Built from the "unipile" fixture
// section; its snapshot (GET /__state/unipile) is unipile_snapshot.ts.

import { z } from "npm:zod@4";
import type { LoadContext } from "../types.ts";
import { WebhookScheduler } from "./unipile_delivery.ts";

// ---------------------------------------------------------------------------------------------
// Input schemas (fixture and POST /__state/unipile share them)
// ---------------------------------------------------------------------------------------------

/** LinkedIn's member id as Unipile names it ("provider_id", ACo… + base64url-ish characters). */
export const PROVIDER_ID = /^ACo[A-Za-z0-9_-]{6,}$/;
export const ProviderId = z.string().regex(PROVIDER_ID, "must be a LinkedIn provider id (ACo…)");
/** The vanity part of linkedin.com/in/<public_identifier>. */
export const PublicIdentifier = z.string().regex(/^[^\s/?#]{1,100}$/, "must be a public identifier (no spaces or /)");
export const AccountId = z.string().min(1).max(100);
/** Epoch ms or an ISO date-time. */
export const Instant = z.union([z.number().int().min(0), z.iso.datetime({ offset: true })]);

export const ACCOUNT_STATUSES = ["OK", "DISCONNECTED", "CREDENTIALS"] as const;

/** Creates an account or (POST /__state) changes the given fields of an existing one. */
export const AccountInput = z.strictObject({
  id: AccountId,
  /** OK; DISCONNECTED → 401 disconnected_account; CREDENTIALS → 401 expired_credentials. */
  status: z.enum(ACCOUNT_STATUSES).optional(),
  /** Invitations this account may send (since load / the last invites_sent reset); null = no limit. */
  invite_limit: z.number().int().min(0).nullable().optional(),
  /** Invitations counted against invite_limit (set 0 to start a new "week"). */
  invites_sent: z.number().int().min(0).optional(),
  /** The account owner, as the sender of its messages. */
  name: z.string().min(1).optional(),
  provider_id: ProviderId.optional(),
  public_identifier: PublicIdentifier.optional(),
  /** May start InMail chats (linkedin[inmail]=true) with non-relations; default true. */
  inmail: z.boolean().optional(),
});

export const UserInput = z.strictObject({
  provider_id: ProviderId,
  public_identifier: PublicIdentifier,
  first_name: z.string(),
  last_name: z.string(),
  headline: z.string().default(""),
  company: z.string().nullable().default(null),
  location: z.string().nullable().default(null),
  profile_picture_url: z.string().nullable().default(null),
});

export const RelationInput = z.strictObject({
  account_id: AccountId,
  provider_id: ProviderId,
  /** When the connection was made; default now (later entries count as newer). */
  created_at: Instant.optional(),
});

export const WEBHOOK_SOURCES = [
  "users",
  "messaging",
  "account_status",
  "email",
  "email_tracking",
  "calendar_event",
] as const;

/** A custom header of a webhook: an HTTP field name and a value fetch() accepts. */
export const HeaderPair = z.strictObject({
  key: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be an HTTP header name"),
  value: z.string().regex(/^[^\r\n\0]*$/, "must not contain line breaks"),
});

export const WebhookInput = z.strictObject({
  source: z.enum(WEBHOOK_SOURCES),
  /** May contain {functions_url} (fixture only), replaced by the sandbox's --functions-url. */
  request_url: z.string().min(1),
  name: z.string().optional(),
  headers: z.array(HeaderPair).default([]),
  /** messaging: default ["message_received"]. */
  events: z.array(z.string()).optional(),
  /** Only these accounts' events; default all. */
  account_ids: z.array(z.string()).optional(),
  enabled: z.boolean().default(true),
  format: z.enum(["json", "form"]).default("json"),
});

export const HANG_ENDPOINTS = ["invite", "start_chat", "send_message"] as const;

export const AutoAcceptSchema = z.strictObject({
  /** Every invitation sent from now on is accepted this long after it was sent. */
  after_ms: z.number().int().min(0).max(3_600_000),
  /** false = accept silently (no new_relation webhook): only GET /users/relations shows it. */
  notify: z.boolean().default(true),
  /** Only these accounts' invitations; default all. */
  account_ids: z.array(AccountId).optional(),
});

export const AcceptThenHangSchema = z.strictObject({
  /** Requests to affect; omitted = until cleared (set null). */
  times: z.number().int().min(1).optional(),
  /** How long the answer is held back after the effect was recorded. */
  hang_ms: z.number().int().min(0).max(600_000),
  /** Which POSTs; default all three. */
  on: z.array(z.enum(HANG_ENDPOINTS)).min(1).default([...HANG_ENDPOINTS]),
});

const RetryDelays = z.array(z.number().int().min(0).max(600_000)).max(10);

/** Options shared by the fixture and POST /__state/unipile. */
export const OptionsShape = {
  latency_ms: z.number().int().min(0).max(60_000),
  /** Before a webhook's first delivery attempt (the real new_relation comes up to 8 h late). */
  webhook_delay_ms: z.number().int().min(0).max(3_600_000),
  /** An answer slower than this counts as failed (Unipile: 30 s). */
  webhook_timeout_ms: z.number().int().min(1).max(120_000),
  /** Gap before each retry of a failed delivery; length = number of retries (Unipile: 5). */
  retry_delays_ms: RetryDelays,
  auto_accept: AutoAcceptSchema.nullable(),
  accept_then_hang: AcceptThenHangSchema.nullable(),
  /**
   * Messages the account sends (POST /chats, POST /chats/{id}/messages, the note of an accepted
   * invitation) also fire message_received, with the account as sender: Unipile's page says the
   * webhook covers messages "received or sent".
   */
  echo_own_messages: z.boolean(),
  /**
   * Accepting an invitation that had a note opens a 1:1 chat holding the note (from the account):
   * provider-contracts §6 ("invites with a note produce a new chat on acceptance"); the exact
   * timing and shape are UNVERIFIED.
   */
  note_creates_chat: z.boolean(),
};

const OptionsSchema = z.strictObject(OptionsShape);
/** Every option optional (fixture, POST /__state/unipile). */
export const OptionsInput = OptionsSchema.partial();

export const OPTION_DEFAULTS: UnipileOptions = {
  latency_ms: 0,
  webhook_delay_ms: 50,
  webhook_timeout_ms: 30_000,
  retry_delays_ms: [1_000, 2_000, 4_000, 8_000, 16_000],
  auto_accept: null,
  accept_then_hang: null,
  echo_own_messages: true,
  note_creates_chat: true,
};

const FixtureSchema = z.strictObject({
  _comment: z.string().optional(),
  /** X-API-KEY values the fake accepts; without any, every request is 401. */
  api_keys: z.array(z.string().min(1)).default([]),
  accounts: z.array(AccountInput).default([]),
  users: z.array(UserInput).default([]),
  relations: z.array(RelationInput).default([]),
  webhooks: z.array(WebhookInput).default([]),
  /** Cap on recorded delivery attempts (oldest dropped). */
  max_delivery_records: z.number().int().min(1).default(10_000),
  ...OptionsInput.shape,
});

export type UnipileOptions = z.output<typeof OptionsSchema>;
export type AccountStatus = (typeof ACCOUNT_STATUSES)[number];
export type HangEndpoint = (typeof HANG_ENDPOINTS)[number];

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

export interface LinkedInUser {
  provider_id: string;
  public_identifier: string;
  first_name: string;
  last_name: string;
  headline: string;
  company: string | null;
  location: string | null;
  profile_picture_url: string | null;
  /** Numeric member id, for member_urn (derived from provider_id). */
  member_number: string;
}

export interface Relation {
  provider_id: string;
  created_at: number; // epoch ms
  seq: number;
}

export type InvitationStatus = "pending" | "accepted" | "withdrawn";

export interface Invitation {
  id: string;
  account_id: string;
  provider_id: string;
  message: string | null;
  status: InvitationStatus;
  created_at: number;
  accepted_at: number | null;
  withdrawn_at: number | null;
  shared_secret: string;
  seq: number;
}

export interface ChatMessage {
  id: string;
  chat_id: string;
  account_id: string;
  provider_id: string;
  text: string;
  is_sender: 0 | 1;
  sender_id: string;
  timestamp: number;
  seq: number;
}

export interface Chat {
  id: string;
  account_id: string;
  provider_id: string;
  /** Provider ids of the other attendees (one for a 1:1 chat). */
  attendees: string[];
  content_type: "inmail" | null;
  subject: string | null;
  created_at: number;
  /** Time of the last message. */
  timestamp: number;
  messages: ChatMessage[]; // oldest first
  seq: number;
}

export interface Webhook {
  id: string;
  source: (typeof WEBHOOK_SOURCES)[number];
  request_url: string;
  name: string | null;
  headers: { key: string; value: string }[];
  events: string[] | null;
  account_ids: string[] | null;
  enabled: boolean;
  format: "json" | "form";
  origin: "fixture" | "api";
  created_at: number;
}

export interface UnipileAccount {
  id: string;
  status: AccountStatus;
  invite_limit: number | null;
  invites_sent: number;
  name: string;
  provider_id: string;
  public_identifier: string;
  inmail: boolean;
  /** provider_id → relation. */
  relations: Map<string, Relation>;
  /** Oldest first once sorted; `relationsSorted` false after an out-of-order insert. */
  relationOrder: Relation[];
  relationsSorted: boolean;
  /** Invitations in sending order. */
  invitations: Invitation[];
  /** provider_id → the latest invitation to that member. */
  lastInvitation: Map<string, Invitation>;
  /** provider_id → the 1:1 chat with that member. */
  directChats: Map<string, string>;
}

export interface UnipileCounters {
  requests: number;
  invitations_sent: number;
  invitations_accepted: number;
  chats_started: number;
  messages_sent: number;
  replies: number;
  hung: number;
}

export interface UnipileState {
  apiKeys: Set<string>;
  accounts: Map<string, UnipileAccount>;
  users: Map<string, LinkedInUser>;
  /** Lower-cased public_identifier → provider_id (LinkedIn vanity names ignore case). */
  byPublicId: Map<string, string>;
  invitations: Map<string, Invitation>;
  chats: Map<string, Chat>;
  webhooks: Map<string, Webhook>;
  options: UnipileOptions;
  counters: UnipileCounters;
  scheduler: WebhookScheduler;
  /** Things loadState skipped, e.g. webhooks for a functions URL the sandbox was not given. */
  notes: string[];
  clockOffsetMs: number;
  now(): number;
  nextSeq(): number;
}

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** A Unipile id: 128 bits as 22 url-safe characters (like "zYnh13HWV76_G3KyE-cAyg"). */
export function uniqueId(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

/** LinkedIn invitation ids are long numbers (format UNVERIFIED). */
export function invitationId(): string {
  const digits = crypto.getRandomValues(new Uint8Array(18));
  return "7" + [...digits].map((d) => String(d % 10)).join("");
}

/** FNV-1a, for ids derived deterministically from another id. */
function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A stable ACo… provider id for an account fixture that names none. */
function derivedProviderId(seed: string): string {
  let out = "ACoAA";
  for (let i = 0; out.length < 39; i++) out += ALPHABET[hash32(seed, 0x811c9dc5 + i) % 64];
  return out;
}

function memberNumber(providerId: string): string {
  return String(100_000_000 + (hash32(providerId) % 900_000_000));
}

// ---------------------------------------------------------------------------------------------
// Loading and mutating
// ---------------------------------------------------------------------------------------------

export function zodMessage(error: z.ZodError): string {
  const issue = error.issues[0];
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") path.push(issue.keys[0]);
  return `${path.join(".") || "body"}: ${issue.code === "unrecognized_keys" ? "unknown field" : issue.message}`;
}

export function toMs(v: number | string): number {
  return typeof v === "number" ? v : Date.parse(v);
}

/** Creates the account or changes the fields given. */
export function upsertAccount(state: UnipileState, a: z.infer<typeof AccountInput>): UnipileAccount {
  let acc = state.accounts.get(a.id);
  if (acc === undefined) {
    acc = {
      id: a.id,
      status: "OK",
      invite_limit: null,
      invites_sent: 0,
      name: "Duework Sender",
      provider_id: derivedProviderId(a.id),
      public_identifier: `duework-sender-${hash32(a.id).toString(36)}`,
      inmail: true,
      relations: new Map(),
      relationOrder: [],
      relationsSorted: true,
      invitations: [],
      lastInvitation: new Map(),
      directChats: new Map(),
    };
    state.accounts.set(a.id, acc);
  }
  if (a.status !== undefined) acc.status = a.status;
  if (a.invite_limit !== undefined) acc.invite_limit = a.invite_limit;
  if (a.invites_sent !== undefined) acc.invites_sent = a.invites_sent;
  if (a.name !== undefined) acc.name = a.name;
  if (a.provider_id !== undefined) acc.provider_id = a.provider_id;
  if (a.public_identifier !== undefined) acc.public_identifier = a.public_identifier;
  if (a.inmail !== undefined) acc.inmail = a.inmail;
  return acc;
}

/** Adds or replaces a member (by provider_id); a public identifier names one member only. */
export function upsertUser(state: UnipileState, u: z.infer<typeof UserInput>, where: string): void {
  const owner = state.byPublicId.get(u.public_identifier.toLowerCase());
  if (owner !== undefined && owner !== u.provider_id) {
    throw new Error(`${where}.public_identifier: ${u.public_identifier} already belongs to ${owner}`);
  }
  const previous = state.users.get(u.provider_id);
  if (previous !== undefined && previous.public_identifier !== u.public_identifier) {
    state.byPublicId.delete(previous.public_identifier.toLowerCase());
  }
  state.users.set(u.provider_id, { ...u, member_number: memberNumber(u.provider_id) });
  state.byPublicId.set(u.public_identifier.toLowerCase(), u.provider_id);
}

/** Makes `providerId` a relation of the account (no-op if it already is). */
export function addRelation(state: UnipileState, acc: UnipileAccount, providerId: string, createdAt: number): Relation {
  const existing = acc.relations.get(providerId);
  if (existing !== undefined) return existing;
  const rel: Relation = { provider_id: providerId, created_at: createdAt, seq: state.nextSeq() };
  acc.relations.set(providerId, rel);
  const last = acc.relationOrder[acc.relationOrder.length - 1];
  if (last !== undefined && last.created_at > createdAt) acc.relationsSorted = false;
  acc.relationOrder.push(rel);
  return rel;
}

/** The account's relations, oldest first (lists read it from the end). */
export function relationsByAge(acc: UnipileAccount): Relation[] {
  if (!acc.relationsSorted) {
    acc.relationOrder.sort((a, b) => a.created_at - b.created_at || a.seq - b.seq);
    acc.relationsSorted = true;
  }
  return acc.relationOrder;
}

export function addWebhook(
  state: UnipileState,
  w: z.infer<typeof WebhookInput>,
  origin: Webhook["origin"],
): Webhook {
  const hook: Webhook = {
    id: uniqueId(),
    source: w.source,
    request_url: w.request_url,
    name: w.name ?? null,
    headers: w.headers,
    events: w.events ?? (w.source === "messaging" ? ["message_received"] : null),
    account_ids: w.account_ids ?? null,
    enabled: w.enabled,
    format: w.format,
    origin,
    created_at: state.now(),
  };
  state.webhooks.set(hook.id, hook);
  return hook;
}

/** The 1:1 chat of the account with `providerId`, created (empty) if there is none. */
export function directChat(state: UnipileState, acc: UnipileAccount, providerId: string, inmail = false): Chat {
  const id = acc.directChats.get(providerId);
  if (id !== undefined) {
    const chat = state.chats.get(id);
    if (chat !== undefined) return chat;
  }
  const now = state.now();
  const chat: Chat = {
    id: uniqueId(),
    account_id: acc.id,
    // LinkedIn thread ids look like "2-<base64>" (format UNVERIFIED).
    provider_id: "2-" + btoa(uniqueId() + "_100"),
    attendees: [providerId],
    content_type: inmail ? "inmail" : null,
    subject: null,
    created_at: now,
    timestamp: now,
    messages: [],
    seq: state.nextSeq(),
  };
  state.chats.set(chat.id, chat);
  acc.directChats.set(providerId, chat.id);
  return chat;
}

export function addMessage(
  state: UnipileState,
  chat: Chat,
  m: { text: string; is_sender: 0 | 1; sender_id: string },
): ChatMessage {
  const now = Math.max(state.now(), chat.timestamp); // never earlier than the chat's last message
  const message: ChatMessage = {
    id: uniqueId(),
    chat_id: chat.id,
    account_id: chat.account_id,
    provider_id: "2-" + btoa(uniqueId()),
    text: m.text,
    is_sender: m.is_sender,
    sender_id: m.sender_id,
    timestamp: now,
    seq: state.nextSeq(),
  };
  chat.messages.push(message);
  chat.timestamp = now;
  return message;
}

export function fullName(u: { first_name: string; last_name: string }): string {
  return [u.first_name, u.last_name].filter((s) => s !== "").join(" ");
}

export function profileUrl(publicIdentifier: string): string {
  return `https://www.linkedin.com/in/${publicIdentifier}/`;
}

export function loadUnipileState(
  fixture: unknown,
  ctx: LoadContext = { functionsUrl: null },
): UnipileState {
  const parsed = FixtureSchema.safeParse(fixture ?? {});
  if (!parsed.success) throw new Error(zodMessage(parsed.error));
  const f = parsed.data;
  let seq = 0;
  const state: UnipileState = {
    apiKeys: new Set(f.api_keys),
    accounts: new Map(),
    users: new Map(),
    byPublicId: new Map(),
    invitations: new Map(),
    chats: new Map(),
    webhooks: new Map(),
    options: { ...OPTION_DEFAULTS },
    counters: {
      requests: 0,
      invitations_sent: 0,
      invitations_accepted: 0,
      chats_started: 0,
      messages_sent: 0,
      replies: 0,
      hung: 0,
    },
    scheduler: new WebhookScheduler(f.max_delivery_records),
    notes: [],
    clockOffsetMs: 0,
    now: () => Date.now() + state.clockOffsetMs,
    nextSeq: () => ++seq,
  };
  for (const key of Object.keys(OptionsShape) as (keyof UnipileOptions)[]) {
    if (f[key] !== undefined) (state.options as Record<string, unknown>)[key] = f[key];
  }
  for (const a of f.accounts) upsertAccount(state, a);
  f.users.forEach((u, i) => upsertUser(state, u, `users.${i}`));
  const now = state.now();
  f.relations.forEach((r, i) => {
    const acc = state.accounts.get(r.account_id);
    if (acc === undefined) throw new Error(`relations.${i}.account_id: unknown account ${r.account_id}`);
    if (!state.users.has(r.provider_id)) throw new Error(`relations.${i}.provider_id: unknown user ${r.provider_id}`);
    addRelation(state, acc, r.provider_id, r.created_at === undefined ? now : toMs(r.created_at));
  });
  for (const w of f.webhooks) {
    if (w.request_url.includes("{functions_url}")) {
      if (ctx.functionsUrl === null) {
        state.notes.push(
          `webhook ${w.name ?? w.request_url} (${w.source}) not registered: its request_url uses {functions_url} ` +
            "and the sandbox was started without --functions-url",
        );
        continue;
      }
      w.request_url = w.request_url.replaceAll("{functions_url}", ctx.functionsUrl);
    }
    addWebhook(state, w, "fixture");
  }
  return state;
}
