// State of the fake Twilio Messages API: the account, which senders and templates exist, how
// recipients behave, the messages created so far and the options tests steer with
// POST /__state/twilio (callback timing/order, 20429s, "accepted but the 201 was lost").
// Built from the "twilio" fixture section. The auth token lives here but never leaves:
// snapshotTwilioState omits it.

import { z } from "npm:zod@4";
import { CallbackScheduler } from "./twilio_callbacks.ts";

/** E.164 as the fake checks it: "+" and 8–15 digits, no leading 0. */
export const E164 = /^\+[1-9]\d{7,14}$/;

const Phone = z.string().regex(E164, "must be an E.164 number (+ and 8-15 digits)");
const ContentSid = z.string().regex(/^HX[0-9a-fA-F]{32}$/, "must be HX + 32 hex digits");

const TemplateInput = z.strictObject({
  sid: ContentSid,
  /** Human name, for snapshots and readers of the fixture file only. */
  name: z.string().optional(),
  /** Text with Twilio's {{1}}, {{2}}… placeholders, rendered into the message body. */
  body: z.string().min(1),
  /** What each placeholder stands for (documentation for client authors; not enforced). */
  variables: z.record(z.string(), z.string()).default({}),
});

const CallbackOptionsSchema = z.strictObject({
  /** false = no status callback is POSTed (message statuses still progress). */
  enabled: z.boolean(),
  /** Gap before each status step (sent, delivered, …). */
  delay_ms: z.number().int().min(0).max(60_000),
  /** POST the steps in reverse order (Twilio documents that callbacks may arrive out of order). */
  out_of_order: z.boolean(),
  /** POST every callback twice with the same I-Twilio-Idempotency-Token (a retried webhook). */
  duplicate: z.boolean(),
  /** Every WhatsApp message also reaches "read" (otherwise only numbers in recipients.read do). */
  whatsapp_read: z.boolean(),
  /** Per-POST timeout; a receiver slower than this counts as a failed delivery. */
  timeout_ms: z.number().int().min(1).max(60_000),
});

const CALLBACK_DEFAULTS: CallbackOptions = {
  enabled: true,
  delay_ms: 10,
  out_of_order: false,
  duplicate: false,
  whatsapp_read: false,
  timeout_ms: 5_000,
};

const RecipientsSchema = z.strictObject({
  /** Synchronous 400 21211 (Twilio's magic test number +15005550001 behaves so). */
  invalid: z.array(Phone).default([]),
  /** Synchronous 400 21610: the recipient replied STOP. */
  unsubscribed: z.array(Phone).default([]),
  /** Synchronous 400 21614: not a mobile / not SMS-capable. */
  not_capable: z.array(Phone).default([]),
  /** WhatsApp only: no open 24 h window, so free-form (non-template) sends fail later with 63016. */
  no_window: z.array(Phone).default([]),
  /** WhatsApp only: messages to these numbers reach "read" after "delivered". */
  read: z.array(Phone).default([]),
});

const RateLimitSchema = z.strictObject({
  /** Sends to answer with 20429; omitted = until cleared (set null). */
  times: z.number().int().min(1).optional(),
  /** HTTP status of the answer; Twilio uses 429. */
  status: z.number().int().min(400).max(599).default(429),
});

const AcceptThenHangSchema = z.strictObject({
  /** Sends to affect; omitted = until cleared (set null). */
  times: z.number().int().min(1).optional(),
  /** How long the 201 is held back after the message was created. */
  hang_ms: z.number().int().min(0).max(600_000),
});

/** Without a fixture section the fake has no account: every request gets 20003. */
const FixtureSchema = z.object({
  account_sid: z.string().regex(/^AC[0-9a-f]{32}$/, "must be AC + 32 lower-case hex digits").nullable().default(null),
  auth_token: z.string().min(1).nullable().default(null),
  /** Numbers valid as From, for SMS and (with the whatsapp: prefix) WhatsApp. */
  senders: z.array(Phone).default([]),
  /** Messaging Service SIDs accepted instead of From. */
  messaging_services: z.array(z.string().regex(/^MG[0-9a-fA-F]{32}$/)).default([]),
  latency_ms: z.number().int().min(0).max(60_000).default(0),
  /** Cap on remembered messages (oldest forgotten first) so load tests stay bounded. */
  max_messages: z.number().int().min(1).default(100_000),
  callbacks: CallbackOptionsSchema.partial().default({}),
  recipients: RecipientsSchema.default({
    invalid: [],
    unsubscribed: [],
    not_capable: [],
    no_window: [],
    read: [],
  }),
  templates: z.array(TemplateInput).default([]),
  rate_limit: RateLimitSchema.nullable().default(null),
  accept_then_hang: AcceptThenHangSchema.nullable().default(null),
});

/** POST /__state/twilio. Strict: a misspelt option must fail loudly, not be ignored. */
const SeedSchema = z.strictObject({
  latency_ms: z.number().int().min(0).max(60_000).optional(),
  /** Shifts the fake's clock (date_created etc.); timers still run in real time. */
  clock_offset_ms: z.number().int().optional(),
  callbacks: CallbackOptionsSchema.partial().optional(),
  rate_limit: RateLimitSchema.nullable().optional(),
  accept_then_hang: AcceptThenHangSchema.nullable().optional(),
  /** Numbers are added to the lists (a number is moved out of the other behaviour lists). */
  recipients: RecipientsSchema.partial().optional(),
  /** Added, or replaced by sid. */
  templates: z.array(TemplateInput).max(10_000).optional(),
});

export type CallbackOptions = z.infer<typeof CallbackOptionsSchema>;
export type TwilioRateLimit = z.infer<typeof RateLimitSchema>;
export type TwilioAcceptThenHang = z.infer<typeof AcceptThenHangSchema>;
export type TwilioTemplate = z.infer<typeof TemplateInput>;

/** Recipient behaviours, one per number. */
export type RecipientBehaviour = "invalid" | "unsubscribed" | "not_capable" | "no_window";
const BEHAVIOURS: RecipientBehaviour[] = ["invalid", "unsubscribed", "not_capable", "no_window"];

export type MessageStatus =
  | "accepted"
  | "queued"
  | "sending"
  | "sent"
  | "delivered"
  | "read"
  | "undelivered"
  | "failed";

export interface TwilioMessage {
  sid: string;
  account_sid: string;
  channel: "sms" | "whatsapp";
  to: string; // as sent, with the whatsapp: prefix
  from: string | null;
  messaging_service_sid: string | null;
  body: string;
  content_sid: string | null;
  num_segments: number;
  num_media: number;
  status: MessageStatus;
  status_callback: string | null;
  error_code: number | null;
  error_message: string | null;
  date_created: number; // epoch ms (fake clock)
  date_updated: number;
  date_sent: number | null;
  callbacks_sent: number;
  callbacks_failed: number;
}

export interface TwilioState {
  /** null = no account configured (no credentials match). */
  accountSid: string | null;
  authToken: string | null;
  senders: Set<string>;
  messagingServices: Set<string>;
  latencyMs: number;
  maxMessages: number;
  clockOffsetMs: number;
  callbacks: CallbackOptions;
  recipients: Map<string, RecipientBehaviour>; // bare E.164 → behaviour
  readReceipts: Set<string>;
  templates: Map<string, TwilioTemplate>;
  rateLimit: TwilioRateLimit | null;
  acceptThenHang: TwilioAcceptThenHang | null;
  /** Insertion (= creation) ordered; lists read it newest first. */
  messages: Map<string, TwilioMessage>;
  counters: { created: number; rate_limited: number; hung: number; callbacks_sent: number; callbacks_failed: number };
  scheduler: CallbackScheduler;
  /** The fake's clock: real time plus clock_offset_ms. */
  now(): number;
}

function zodMessage(error: z.ZodError): string {
  const issue = error.issues[0];
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") path.push(issue.keys[0]);
  return `${path.join(".") || "body"}: ${issue.code === "unrecognized_keys" ? "unknown field" : issue.message}`;
}

function addRecipients(state: TwilioState, r: Partial<z.infer<typeof RecipientsSchema>>): void {
  for (const behaviour of BEHAVIOURS) {
    for (const number of r[behaviour] ?? []) state.recipients.set(number, behaviour);
  }
  for (const number of r.read ?? []) state.readReceipts.add(number);
}

export function loadTwilioState(fixture: unknown): TwilioState {
  const parsed = FixtureSchema.safeParse(fixture ?? {});
  if (!parsed.success) throw new Error(zodMessage(parsed.error));
  const f = parsed.data;
  const state: TwilioState = {
    accountSid: f.account_sid,
    authToken: f.auth_token,
    senders: new Set(f.senders),
    messagingServices: new Set(f.messaging_services),
    latencyMs: f.latency_ms,
    maxMessages: f.max_messages,
    clockOffsetMs: 0,
    callbacks: { ...CALLBACK_DEFAULTS, ...f.callbacks },
    recipients: new Map(),
    readReceipts: new Set(),
    templates: new Map(f.templates.map((t) => [t.sid, t])),
    rateLimit: f.rate_limit,
    acceptThenHang: f.accept_then_hang,
    messages: new Map(),
    counters: { created: 0, rate_limited: 0, hung: 0, callbacks_sent: 0, callbacks_failed: 0 },
    scheduler: new CallbackScheduler(),
    now: () => Date.now() + state.clockOffsetMs,
  };
  addRecipients(state, f.recipients);
  return state;
}

export function seedTwilioState(state: TwilioState, input: unknown): Record<string, unknown> {
  const parsed = SeedSchema.safeParse(input);
  if (!parsed.success) throw new Error(zodMessage(parsed.error));
  const s = parsed.data;
  if (s.latency_ms !== undefined) state.latencyMs = s.latency_ms;
  if (s.clock_offset_ms !== undefined) state.clockOffsetMs = s.clock_offset_ms;
  if (s.callbacks !== undefined) state.callbacks = { ...state.callbacks, ...s.callbacks };
  if (s.rate_limit !== undefined) state.rateLimit = s.rate_limit;
  if (s.accept_then_hang !== undefined) state.acceptThenHang = s.accept_then_hang;
  if (s.recipients !== undefined) addRecipients(state, s.recipients);
  for (const t of s.templates ?? []) state.templates.set(t.sid, t);
  return {
    latency_ms: state.latencyMs,
    clock_offset_ms: state.clockOffsetMs,
    callbacks: state.callbacks,
    rate_limit: state.rateLimit,
    accept_then_hang: state.acceptThenHang,
    recipients: recipientLists(state),
    templates: state.templates.size,
  };
}

/** Adds a message, forgetting the oldest beyond the cap. */
export function storeMessage(state: TwilioState, message: TwilioMessage): void {
  state.messages.set(message.sid, message);
  state.counters.created++;
  if (state.messages.size > state.maxMessages) {
    state.messages.delete(state.messages.keys().next().value!);
  }
}

function recipientLists(state: TwilioState): Record<string, string[]> {
  const out: Record<string, string[]> = { invalid: [], unsubscribed: [], not_capable: [], no_window: [] };
  for (const [number, behaviour] of state.recipients) out[behaviour].push(number);
  return { ...out, read: [...state.readReceipts] };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function snapshotTwilioState(state: TwilioState): Record<string, unknown> {
  return {
    account_sid: state.accountSid, // the auth token is deliberately absent
    senders: [...state.senders],
    messaging_services: [...state.messagingServices],
    latency_ms: state.latencyMs,
    clock_offset_ms: state.clockOffsetMs,
    callbacks: state.callbacks,
    rate_limit: state.rateLimit,
    accept_then_hang: state.acceptThenHang,
    recipients: recipientLists(state),
    templates: [...state.templates.values()],
    counters: { ...state.counters, callbacks_pending: state.scheduler.pending },
    messages: [...state.messages.values()].map((m) => ({
      sid: m.sid,
      to: m.to,
      from: m.from,
      messaging_service_sid: m.messaging_service_sid,
      status: m.status,
      content_sid: m.content_sid,
      body: m.body,
      status_callback: m.status_callback,
      date_created: iso(m.date_created),
      date_sent: iso(m.date_sent),
      error_code: m.error_code,
      callbacks_sent: m.callbacks_sent,
      callbacks_failed: m.callbacks_failed,
    })),
  };
}
