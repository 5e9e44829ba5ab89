// State of the fake Resend API: API keys, verified sender domains, the team's limits (requests
// per second, daily/monthly email quotas), accepted emails, Idempotency-Key records and the
// counters tests assert on (e.g. "0 × 429" after a paced run). Built from the "resend" fixture
// section; POST /__state/resend changes limits and options. Keys are never snapshotted.

import { z } from "npm:zod@4";
import { RateWindow, type WindowKind } from "./resend_limits.ts";

const Domain = z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, "must be a domain name");
const ApiKey = z.string().regex(/^re_\S+$/, "must start with re_");
const Quota = z.number().int().min(0).nullable();

/** Without a fixture section the fake knows no key: every request gets 403 invalid_api_key. */
const FixtureSchema = z.object({
  api_keys: z.array(ApiKey).default([]),
  /** The sender clients should use ("Name <a@verified.domain>"); documentation, not enforced. */
  from: z.string().optional(),
  /** Domains `from` may use; others get 403 validation_error. */
  verified_domains: z.array(Domain).default([]),
  /** Requests per second per team (all keys); current docs: 5. null = unlimited. */
  rate_limit_per_second: z.number().int().min(1).nullable().default(5),
  /**
   * "sliding" = at most N requests in any 1 s span (the strictest reading, default: a client
   * that passes it passes any 1 s window); "fixed" = N per wall-clock second. Resend's own
   * algorithm is UNVERIFIED.
   */
  rate_limit_window: z.enum(["sliding", "fixed"]).default("sliding"),
  /** Emails per UTC day / month; null = no quota. */
  daily_quota: Quota.default(null),
  monthly_quota: Quota.default(null),
  /** Time each accepted send takes; the window in which a same-key request is "in flight". */
  processing_ms: z.number().int().min(0).max(60_000).default(0),
  idempotency_ttl_seconds: z.number().int().min(1).default(86_400),
  /** Cap on remembered emails (oldest forgotten first) so load tests stay bounded. */
  max_emails: z.number().int().min(1).default(100_000),
});

/** POST /__state/resend. Strict: a misspelt option must fail loudly, not be ignored. */
const SeedSchema = z.strictObject({
  rate_limit_per_second: z.number().int().min(1).nullable().optional(),
  rate_limit_window: z.enum(["sliding", "fixed"]).optional(),
  daily_quota: Quota.optional(),
  monthly_quota: Quota.optional(),
  processing_ms: z.number().int().min(0).max(60_000).optional(),
  /** Shifts the fake's clock, e.g. 86_400_001 to expire every Idempotency-Key. */
  clock_offset_ms: z.number().int().optional(),
  /** Added to the existing lists. */
  verified_domains: z.array(Domain).optional(),
  api_keys: z.array(ApiKey).optional(),
  /** Zeroes the request/429 counters (emails and idempotency records stay). */
  reset_counters: z.boolean().optional(),
});

export interface ResendEmail {
  id: string;
  from: string;
  to: string[];
  cc: string[] | null;
  bcc: string[] | null;
  reply_to: string[] | null;
  subject: string;
  html: string | null;
  text: string | null;
  tags: { name: string; value: string }[];
  scheduled_at: string | null;
  idempotency_key: string | null;
  created_at: number; // epoch ms (fake clock)
}

export interface IdempotencyRecord {
  key: string;
  /** Canonical JSON of the request body the key was first used with. */
  payload: string;
  state: "in_flight" | "done";
  created_at: number;
  response?: { status: number; body: unknown };
}

export interface ResendCounters {
  requests: number;
  accepted: number;
  replayed: number;
  responses_409: number;
  responses_429: number;
  rate_limit_exceeded: number;
  daily_quota_exceeded: number;
  monthly_quota_exceeded: number;
}

export interface ResendState {
  apiKeys: Set<string>;
  verifiedDomains: Set<string>;
  rateLimitPerSecond: number | null;
  window: RateWindow;
  dailyQuota: number | null;
  monthlyQuota: number | null;
  processingMs: number;
  idempotencyTtlMs: number;
  maxEmails: number;
  clockOffsetMs: number;
  emails: Map<string, ResendEmail>;
  idempotency: Map<string, IdempotencyRecord>;
  /** Accepted emails per UTC day ("2026-12-02") and month ("2026-12"), for the quotas. */
  sentPerDay: Map<string, number>;
  sentPerMonth: Map<string, number>;
  counters: ResendCounters;
  /** The fake's clock: real time plus clock_offset_ms. Tests may replace it. */
  now(): number;
}

const zeroCounters = (): ResendCounters => ({
  requests: 0,
  accepted: 0,
  replayed: 0,
  responses_409: 0,
  responses_429: 0,
  rate_limit_exceeded: 0,
  daily_quota_exceeded: 0,
  monthly_quota_exceeded: 0,
});

function zodMessage(error: z.ZodError): string {
  const issue = error.issues[0];
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") path.push(issue.keys[0]);
  return `${path.join(".") || "body"}: ${issue.code === "unrecognized_keys" ? "unknown field" : issue.message}`;
}

export function loadResendState(fixture: unknown): ResendState {
  const parsed = FixtureSchema.safeParse(fixture ?? {});
  if (!parsed.success) throw new Error(zodMessage(parsed.error));
  const f = parsed.data;
  const state: ResendState = {
    apiKeys: new Set(f.api_keys),
    verifiedDomains: new Set(f.verified_domains.map((d) => d.toLowerCase())),
    rateLimitPerSecond: f.rate_limit_per_second,
    window: new RateWindow(f.rate_limit_window as WindowKind),
    dailyQuota: f.daily_quota,
    monthlyQuota: f.monthly_quota,
    processingMs: f.processing_ms,
    idempotencyTtlMs: f.idempotency_ttl_seconds * 1000,
    maxEmails: f.max_emails,
    clockOffsetMs: 0,
    emails: new Map(),
    idempotency: new Map(),
    sentPerDay: new Map(),
    sentPerMonth: new Map(),
    counters: zeroCounters(),
    now: () => Date.now() + state.clockOffsetMs,
  };
  return state;
}

export function seedResendState(state: ResendState, input: unknown): Record<string, unknown> {
  const parsed = SeedSchema.safeParse(input);
  if (!parsed.success) throw new Error(zodMessage(parsed.error));
  const s = parsed.data;
  if (s.rate_limit_per_second !== undefined) state.rateLimitPerSecond = s.rate_limit_per_second;
  if (s.rate_limit_window !== undefined) state.window = new RateWindow(s.rate_limit_window);
  if (s.daily_quota !== undefined) state.dailyQuota = s.daily_quota;
  if (s.monthly_quota !== undefined) state.monthlyQuota = s.monthly_quota;
  if (s.processing_ms !== undefined) state.processingMs = s.processing_ms;
  if (s.clock_offset_ms !== undefined) state.clockOffsetMs = s.clock_offset_ms;
  for (const d of s.verified_domains ?? []) state.verifiedDomains.add(d.toLowerCase());
  for (const k of s.api_keys ?? []) state.apiKeys.add(k);
  if (s.reset_counters) state.counters = zeroCounters();
  return options(state);
}

/** Stores an accepted email, counts it against the quotas, forgets the oldest beyond the cap. */
export function storeEmail(state: ResendState, email: ResendEmail): void {
  state.emails.set(email.id, email);
  if (state.emails.size > state.maxEmails) state.emails.delete(state.emails.keys().next().value!);
  const day = new Date(email.created_at).toISOString().slice(0, 10);
  state.sentPerDay.set(day, (state.sentPerDay.get(day) ?? 0) + 1);
  state.sentPerMonth.set(day.slice(0, 7), (state.sentPerMonth.get(day.slice(0, 7)) ?? 0) + 1);
  state.counters.accepted++;
}

function options(state: ResendState): Record<string, unknown> {
  return {
    verified_domains: [...state.verifiedDomains],
    api_keys: state.apiKeys.size, // how many, never which
    rate_limit_per_second: state.rateLimitPerSecond,
    rate_limit_window: state.window.kind,
    daily_quota: state.dailyQuota,
    monthly_quota: state.monthlyQuota,
    processing_ms: state.processingMs,
    idempotency_ttl_seconds: state.idempotencyTtlMs / 1000,
    clock_offset_ms: state.clockOffsetMs,
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

export function snapshotResendState(state: ResendState): Record<string, unknown> {
  const now = state.now();
  return {
    ...options(state),
    counters: { ...state.counters },
    emails: [...state.emails.values()].map((e) => ({
      id: e.id,
      from: e.from,
      to: e.to,
      subject: e.subject,
      idempotency_key: e.idempotency_key,
      created_at: iso(e.created_at),
    })),
    idempotency_keys: [...state.idempotency.values()].map((r) => ({
      key: r.key,
      state: r.state,
      created_at: iso(r.created_at),
      expired: r.created_at + state.idempotencyTtlMs <= now,
      email_id: (r.response?.body as { id?: string } | undefined)?.id ?? null,
    })),
  };
}
