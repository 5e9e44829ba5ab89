// State of the fake graph.instagram.com: accounts, long-lived access tokens and media, built
// from the "instagram_graph" fixture section and extended through POST /__state/instagram_graph.
// Kept apart from the request handlers so the wire format and the bookkeeping stay small files.

import { z } from "npm:zod@4";
import { RATE_LIMIT_CODES } from "./graph_errors.ts";

const DAY = 86_400;

/** A standing throttle: every matching request answers with `code` until cleared or `times` used up. */
const RateLimitSchema = z.object({
  code: z.union(RATE_LIMIT_CODES.map((c) => z.literal(c))),
  /** Contract §2c: 400 is common, some reports show 403. */
  status: z.union([z.literal(400), z.literal(403)]).default(400),
  /** Requests to affect; omitted = until cleared (set null). */
  times: z.number().int().min(1).optional(),
  /** Reported as estimated_time_to_regain_access (minutes) in X-Business-Use-Case-Usage. */
  regain_minutes: z.number().int().min(0).default(5),
});

const TOKEN_STATUSES = ["active", "revoked", "password_changed", "superseded"] as const;
export type TokenStatus = (typeof TOKEN_STATUSES)[number];

const isoDate = z.iso.datetime({ offset: true });

/** Fields of a token; all optional so the same shape patches an existing token. */
const TokenFieldsSchema = z.object({
  access_token: z.string().min(1),
  ig_user_id: z.string().regex(/^\d+$/).optional(),
  /** When the long-lived token was issued; refresh needs it ≥ min_refresh_age_seconds old. */
  issued_at: isoDate.optional(),
  /** Alternative to issued_at for static fixtures: issued this many seconds before load/seed. */
  age_seconds: z.number().int().min(0).optional(),
  /** Default issued_at + expires_in (60 days). */
  expires_at: isoDate.optional(),
  status: z.enum(TOKEN_STATUSES).optional(),
});
const oneIssueTime = (t: { issued_at?: string; age_seconds?: number }) =>
  t.issued_at === undefined || t.age_seconds === undefined;
const ONE_ISSUE_TIME = { message: "give issued_at or age_seconds, not both" };
const TokenPatchSchema = TokenFieldsSchema.refine(oneIssueTime, ONE_ISSUE_TIME);

const MEDIA_TYPES = ["IMAGE", "VIDEO", "CAROUSEL_ALBUM"] as const;
const PRODUCT_TYPES = ["FEED", "REELS", "STORY", "AD"] as const;

const MediaPatchSchema = z.object({
  id: z.string().regex(/^\d+$/, { message: "media ids are numeric strings" }),
  ig_user_id: z.string().regex(/^\d+$/).optional(),
  media_type: z.enum(MEDIA_TYPES).optional(),
  media_product_type: z.enum(PRODUCT_TYPES).optional(),
  /** Shortcode of the permalink https://www.instagram.com/reel/<shortcode>/ (default from id). */
  shortcode: z.string().min(1).optional(),
  timestamp: isoDate.optional(),
  caption: z.string().optional(),
  /** Deleted media answer 100/33 like media that never existed. */
  deleted: z.boolean().optional(),
  /** Instagram omits media_url for media with copyrighted material (typically Reels audio). */
  copyrighted: z.boolean().optional(),
});

const AccountPatchSchema = z.object({
  ig_user_id: z.string().regex(/^\d+$/, { message: "ig_user_id is a numeric string" }),
  username: z.string().min(1).optional(),
  rate_limit: RateLimitSchema.nullable().optional(),
});

const FixtureAccountSchema = AccountPatchSchema.extend({
  tokens: z.array(TokenFieldsSchema.omit({ ig_user_id: true }).refine(oneIssueTime, ONE_ISSUE_TIME)).default([]),
  media: z.array(MediaPatchSchema.omit({ ig_user_id: true })).default([]),
});

const FixtureSchema = z.object({
  /** expires_in of a refreshed token; contract: ≈ 5 184 000 (60 days). */
  expires_in: z.number().int().min(1).default(60 * DAY),
  /** Contract trap 4: refresh only works on tokens at least 24 h old. */
  min_refresh_age_seconds: z.number().int().min(0).default(DAY),
  /** Contract: behaviour for a token < 24 h old is undocumented; the fake rejects by default. */
  young_token_refresh: z.enum(["reject", "echo"]).default("reject"),
  /**
   * Whether a refresh kills the token it was called with. Contract: UNVERIFIED whether the
   * returned string differs; the fake always mints a new one and by default keeps the old one
   * valid until its own expiry (so only refresh_count reveals a double refresh).
   */
  invalidate_previous_on_refresh: z.boolean().default(false),
  /** Lifetime of minted CDN URLs (oe=); observed TTLs run from ~1 h to several days. */
  media_url_ttl_seconds: z.number().int().min(1).default(3 * DAY),
  /** Origin of CDN URLs; default the fake's own origin + /cdn (which answers 403 after expiry). */
  cdn_base_url: z.url().optional(),
  /** Graph versions below this answer #2635 (deprecated version); omitted = any vNN.N accepted. */
  min_graph_version: z.string().regex(/^v\d+\.\d+$/).optional(),
  latency_ms: z.number().int().min(0).max(60_000).default(0),
  /** App-wide throttle (applies to every request with a token). */
  rate_limit: RateLimitSchema.nullable().default(null),
  accounts: z.array(FixtureAccountSchema).default([]),
});

export const SeedSchema = z.object({
  latency_ms: z.number().int().min(0).max(60_000).optional(),
  media_url_ttl_seconds: z.number().int().min(1).optional(),
  /** App-wide throttle; null clears it. */
  rate_limit: RateLimitSchema.nullable().optional(),
  /** Upserts: new ids are created, existing ones get the given fields. */
  accounts: z.array(AccountPatchSchema).max(100_000).default([]),
  tokens: z.array(TokenPatchSchema).max(100_000).default([]),
  media: z.array(MediaPatchSchema).max(100_000).default([]),
});

export type RateLimit = z.infer<typeof RateLimitSchema>;
type TokenPatch = z.infer<typeof TokenPatchSchema>;
type MediaPatch = z.infer<typeof MediaPatchSchema>;
type AccountPatch = z.infer<typeof AccountPatchSchema>;

export interface IgAccount {
  ig_user_id: string;
  username: string;
  rate_limit: RateLimit | null;
}

export interface IgToken {
  access_token: string;
  ig_user_id: string;
  issued_at: number; // epoch ms
  expires_at: number; // epoch ms
  status: TokenStatus;
  /** Successful refreshes made with this token (tests check exactly-once). */
  refresh_count: number;
  last_refreshed_at: number | null;
  /** The token this one was minted from by a refresh (null for seeded tokens). */
  refreshed_from: string | null;
}

export interface IgMedia {
  id: string;
  ig_user_id: string;
  media_type: (typeof MEDIA_TYPES)[number];
  media_product_type: (typeof PRODUCT_TYPES)[number];
  shortcode: string;
  timestamp: string;
  caption: string;
  deleted: boolean;
  copyrighted: boolean;
}

export interface InstagramGraphState {
  expiresIn: number;
  minRefreshAgeSeconds: number;
  youngTokenRefresh: "reject" | "echo";
  invalidatePreviousOnRefresh: boolean;
  mediaUrlTtlSeconds: number;
  cdnBaseUrl: string | null;
  minGraphVersion: string | null;
  latencyMs: number;
  rateLimit: RateLimit | null;
  accounts: Map<string, IgAccount>;
  tokens: Map<string, IgToken>;
  media: Map<string, IgMedia>;
  /** Secret behind the oh= URL signature, per state so a reset invalidates old URLs. */
  cdnSecret: string;
}

function fail(path: string, message: string): never {
  throw new Error(`${path}: ${message}`);
}

function ensureAccount(state: InstagramGraphState, patch: AccountPatch): IgAccount {
  let account = state.accounts.get(patch.ig_user_id);
  if (account === undefined) {
    account = { ig_user_id: patch.ig_user_id, username: `ig_user_${patch.ig_user_id}`, rate_limit: null };
    state.accounts.set(account.ig_user_id, account);
  }
  if (patch.username !== undefined) account.username = patch.username;
  if (patch.rate_limit !== undefined) account.rate_limit = patch.rate_limit;
  return account;
}

function applyToken(state: InstagramGraphState, t: TokenPatch, path: string, now: number): IgToken {
  let token = state.tokens.get(t.access_token);
  const issuedAt = t.issued_at !== undefined
    ? Date.parse(t.issued_at)
    : t.age_seconds !== undefined
    ? now - t.age_seconds * 1000
    : undefined;
  if (token === undefined) {
    if (t.ig_user_id === undefined) fail(`${path}.ig_user_id`, "required for a new token");
    const issued = issuedAt ?? now;
    token = {
      access_token: t.access_token,
      ig_user_id: t.ig_user_id,
      issued_at: issued,
      expires_at: t.expires_at !== undefined ? Date.parse(t.expires_at) : issued + state.expiresIn * 1000,
      status: t.status ?? "active",
      refresh_count: 0,
      last_refreshed_at: null,
      refreshed_from: null,
    };
    state.tokens.set(token.access_token, token);
    return token;
  }
  if (t.ig_user_id !== undefined) token.ig_user_id = t.ig_user_id;
  if (issuedAt !== undefined) {
    token.issued_at = issuedAt;
    // A long-lived token lives expires_in from issue unless told otherwise.
    if (t.expires_at === undefined) token.expires_at = issuedAt + state.expiresIn * 1000;
  }
  if (t.expires_at !== undefined) token.expires_at = Date.parse(t.expires_at);
  if (t.status !== undefined) token.status = t.status;
  return token;
}

function applyMedia(state: InstagramGraphState, m: MediaPatch, path: string): IgMedia {
  const existing = state.media.get(m.id);
  if (existing === undefined) {
    if (m.ig_user_id === undefined) fail(`${path}.ig_user_id`, "required for new media");
    const media: IgMedia = {
      id: m.id,
      ig_user_id: m.ig_user_id,
      media_type: m.media_type ?? "VIDEO",
      media_product_type: m.media_product_type ?? "REELS",
      shortcode: m.shortcode ?? `Dw${m.id.slice(-9)}`,
      timestamp: m.timestamp ?? new Date().toISOString(),
      caption: m.caption ?? "",
      deleted: m.deleted ?? false,
      copyrighted: m.copyrighted ?? false,
    };
    state.media.set(media.id, media);
    return media;
  }
  for (const key of Object.keys(m) as (keyof MediaPatch)[]) {
    if (key !== "id" && m[key] !== undefined) (existing as unknown as Record<string, unknown>)[key] = m[key];
  }
  return existing;
}

/** Every referenced account must exist by the end of the batch (accounts in the same batch count). */
function checkOwners(known: Set<string>, items: { ig_user_id?: string }[], field: string): void {
  items.forEach((item, i) => {
    if (item.ig_user_id !== undefined && !known.has(item.ig_user_id)) {
      fail(`${field}.${i}.ig_user_id`, `unknown account ${item.ig_user_id}`);
    }
  });
}

export function loadInstagramState(fixture: unknown): InstagramGraphState {
  const f = FixtureSchema.parse(fixture ?? {});
  const state: InstagramGraphState = {
    expiresIn: f.expires_in,
    minRefreshAgeSeconds: f.min_refresh_age_seconds,
    youngTokenRefresh: f.young_token_refresh,
    invalidatePreviousOnRefresh: f.invalidate_previous_on_refresh,
    mediaUrlTtlSeconds: f.media_url_ttl_seconds,
    cdnBaseUrl: f.cdn_base_url?.replace(/\/+$/, "") ?? null,
    minGraphVersion: f.min_graph_version ?? null,
    latencyMs: f.latency_ms,
    rateLimit: f.rate_limit,
    accounts: new Map(),
    tokens: new Map(),
    media: new Map(),
    cdnSecret: crypto.randomUUID(),
  };
  const now = Date.now();
  f.accounts.forEach((a, i) => {
    if (state.accounts.has(a.ig_user_id)) fail(`accounts.${i}.ig_user_id`, `duplicate ${a.ig_user_id}`);
    ensureAccount(state, a);
    a.tokens.forEach((t, j) => {
      if (state.tokens.has(t.access_token)) fail(`accounts.${i}.tokens.${j}`, "duplicate access_token");
      applyToken(state, { ...t, ig_user_id: a.ig_user_id }, `accounts.${i}.tokens.${j}`, now);
    });
    a.media.forEach((m, j) => {
      if (state.media.has(m.id)) fail(`accounts.${i}.media.${j}.id`, `duplicate media id ${m.id}`);
      applyMedia(state, { ...m, ig_user_id: a.ig_user_id }, `accounts.${i}.media.${j}`);
    });
  });
  return state;
}

/** POST /__state/instagram_graph: validates everything first so a bad batch changes nothing. */
export function seedInstagramState(state: InstagramGraphState, input: unknown): Record<string, unknown> {
  const parsed = SeedSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  const s = parsed.data;
  const known = new Set(state.accounts.keys());
  for (const a of s.accounts) known.add(a.ig_user_id);
  checkOwners(known, s.tokens, "tokens");
  checkOwners(known, s.media, "media");
  s.tokens.forEach((t, i) => {
    if (!state.tokens.has(t.access_token) && t.ig_user_id === undefined) {
      fail(`tokens.${i}.ig_user_id`, "required for a new token");
    }
  });
  s.media.forEach((m, i) => {
    if (!state.media.has(m.id) && m.ig_user_id === undefined) fail(`media.${i}.ig_user_id`, "required for new media");
  });

  const now = Date.now();
  for (const a of s.accounts) ensureAccount(state, a);
  s.tokens.forEach((t, i) => applyToken(state, t, `tokens.${i}`, now));
  s.media.forEach((m, i) => applyMedia(state, m, `media.${i}`));
  if (s.latency_ms !== undefined) state.latencyMs = s.latency_ms;
  if (s.media_url_ttl_seconds !== undefined) state.mediaUrlTtlSeconds = s.media_url_ttl_seconds;
  if (s.rate_limit !== undefined) state.rateLimit = s.rate_limit;
  return {
    accounts: s.accounts.length,
    tokens: s.tokens.length,
    media: s.media.length,
    latency_ms: state.latencyMs,
    rate_limit: state.rateLimit,
  };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function snapshotInstagramState(state: InstagramGraphState): Record<string, unknown> {
  const now = Date.now();
  return {
    expires_in: state.expiresIn,
    min_refresh_age_seconds: state.minRefreshAgeSeconds,
    young_token_refresh: state.youngTokenRefresh,
    invalidate_previous_on_refresh: state.invalidatePreviousOnRefresh,
    media_url_ttl_seconds: state.mediaUrlTtlSeconds,
    min_graph_version: state.minGraphVersion,
    latency_ms: state.latencyMs,
    rate_limit: state.rateLimit,
    accounts: [...state.accounts.values()],
    tokens: [...state.tokens.values()].map((t) => ({
      ...t,
      issued_at: iso(t.issued_at),
      expires_at: iso(t.expires_at),
      last_refreshed_at: iso(t.last_refreshed_at),
      expired: t.expires_at <= now,
    })),
    media: [...state.media.values()],
  };
}

/**
 * The standing throttle `limit` for one request: returns it and what should remain stored
 * (one of its `times` used up; null once exhausted).
 */
export function consumeRateLimit(limit: RateLimit | null): { hit: RateLimit | null; rest: RateLimit | null } {
  if (limit === null) return { hit: null, rest: null };
  if (limit.times === undefined) return { hit: limit, rest: limit };
  return { hit: limit, rest: limit.times <= 1 ? null : { ...limit, times: limit.times - 1 } };
}
