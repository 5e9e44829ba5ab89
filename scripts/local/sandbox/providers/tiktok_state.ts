// State of the fake TikTok OAuth token endpoint: clients, refresh tokens and the rotation chains
// they form. Built from the "tiktok" fixture section, extended through POST /__state/tiktok.
// A chain is one user's grant: its first refresh token plus every rotated successor, so tests
// can count refreshes per grant (exactly-once) even though each refresh mints a new token.

import { z } from "npm:zod@4";

const DAY = 86_400;

const RateLimitSchema = z.object({
  /** Requests to affect; omitted = until cleared (set null). */
  times: z.number().int().min(1).optional(),
  /** Sent as Retry-After (seconds); omitted = no header (TikTok's token endpoint limit is UNVERIFIED). */
  retry_after: z.number().int().min(0).optional(),
});

const STATUSES = ["active", "revoked"] as const;

const RefreshTokenInput = z.object({
  refresh_token: z.string().min(1),
  /** Defaults to the first client of the fixture. */
  client_key: z.string().min(1).optional(),
  /** Defaults to a value derived from the token. */
  open_id: z.string().min(1).optional(),
  scope: z.string().default("user.info.basic,video.list"),
  status: z.enum(STATUSES).default("active"),
  /** Remaining lifetime in seconds at load/seed time (≤ 0 = already expired); default the state's. */
  refresh_expires_in: z.number().int().optional(),
});

const FixtureSchema = z.object({
  /** Access token lifetime; contract (2026-11): 2 h. */
  expires_in: z.number().int().min(1).default(7200),
  /** Refresh token lifetime for seeded tokens; contract (2026-11): 180 days. */
  refresh_expires_in: z.number().int().min(1).default(180 * DAY),
  /**
   * Whether a rotated refresh token gets a full new lifetime. Contract: UNVERIFIED; the
   * "remaining lifetime" wording suggests inheritance, so by default it inherits.
   */
  rotation_resets_lifetime: z.boolean().default(false),
  latency_ms: z.number().int().min(0).max(60_000).default(0),
  /** Cap on remembered access tokens (oldest forgotten first) so load tests stay bounded. */
  max_access_tokens: z.number().int().min(1).default(100_000),
  rate_limit: RateLimitSchema.nullable().default(null),
  clients: z.array(z.object({ client_key: z.string().min(1), client_secret: z.string().min(1) })).default([]),
  refresh_tokens: z.array(RefreshTokenInput).default([]),
});

export const SeedSchema = z.object({
  latency_ms: z.number().int().min(0).max(60_000).optional(),
  /** Standing 429 for the token endpoint; null clears it. */
  rate_limit: RateLimitSchema.nullable().optional(),
  refresh_tokens: z.array(RefreshTokenInput).max(100_000).default([]),
});

export type TikTokRateLimit = z.infer<typeof RateLimitSchema>;

export interface TikTokRefreshToken {
  refresh_token: string;
  client_key: string;
  open_id: string;
  scope: string;
  /** "rotated" = used once and replaced; reusing it is invalid_grant. */
  status: "active" | "revoked" | "rotated";
  issued_at: number; // epoch ms
  expires_at: number; // epoch ms
  /** The first refresh token of this grant. */
  chain_id: string;
  replaced_by: string | null;
}

export interface TikTokChain {
  chain_id: string;
  open_id: string;
  /** Successful refreshes over the whole chain. */
  refresh_count: number;
  current_refresh_token: string;
  last_refreshed_at: number | null;
}

export interface TikTokAccessToken {
  access_token: string;
  open_id: string;
  chain_id: string;
  expires_at: number;
}

export interface TikTokState {
  expiresIn: number;
  refreshExpiresIn: number;
  rotationResetsLifetime: boolean;
  latencyMs: number;
  maxAccessTokens: number;
  rateLimit: TikTokRateLimit | null;
  clients: Map<string, string>; // client_key → client_secret
  refreshTokens: Map<string, TikTokRefreshToken>;
  chains: Map<string, TikTokChain>;
  accessTokens: Map<string, TikTokAccessToken>;
}

function openIdFor(token: string): string {
  // A stable, opaque-looking id per seeded token (TikTok open_ids are per app and user).
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193) >>> 0;
  return `-000${h.toString(16).padStart(8, "0")}-sandbox-open-id`;
}

function addToken(state: TikTokState, t: z.infer<typeof RefreshTokenInput>, clientKey: string, now: number): void {
  const lifetime = t.refresh_expires_in ?? state.refreshExpiresIn;
  const record: TikTokRefreshToken = {
    refresh_token: t.refresh_token,
    client_key: clientKey,
    open_id: t.open_id ?? openIdFor(t.refresh_token),
    scope: t.scope,
    status: t.status,
    issued_at: now,
    expires_at: now + lifetime * 1000,
    chain_id: t.refresh_token,
    replaced_by: null,
  };
  state.refreshTokens.set(record.refresh_token, record);
  state.chains.set(record.chain_id, {
    chain_id: record.chain_id,
    open_id: record.open_id,
    refresh_count: 0,
    current_refresh_token: record.refresh_token,
    last_refreshed_at: null,
  });
}

export function loadTikTokState(fixture: unknown): TikTokState {
  const f = FixtureSchema.parse(fixture ?? {});
  const state: TikTokState = {
    expiresIn: f.expires_in,
    refreshExpiresIn: f.refresh_expires_in,
    rotationResetsLifetime: f.rotation_resets_lifetime,
    latencyMs: f.latency_ms,
    maxAccessTokens: f.max_access_tokens,
    rateLimit: f.rate_limit,
    clients: new Map(f.clients.map((c) => [c.client_key, c.client_secret])),
    refreshTokens: new Map(),
    chains: new Map(),
    accessTokens: new Map(),
  };
  const defaultClient = f.clients[0]?.client_key;
  const now = Date.now();
  f.refresh_tokens.forEach((t, i) => {
    const key = t.client_key ?? defaultClient;
    if (key === undefined || !state.clients.has(key)) {
      throw new Error(`refresh_tokens.${i}: unknown client ${key}`);
    }
    if (state.refreshTokens.has(t.refresh_token)) throw new Error(`refresh_tokens.${i}: duplicate refresh_token`);
    addToken(state, t, key, now);
  });
  return state;
}

export function seedTikTokState(state: TikTokState, input: unknown): Record<string, unknown> {
  const parsed = SeedSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  const s = parsed.data;
  const defaultClient = state.clients.keys().next().value;
  s.refresh_tokens.forEach((t, i) => {
    const key = t.client_key ?? defaultClient;
    if (key === undefined || !state.clients.has(key)) {
      throw new Error(`refresh_tokens.${i}.client_key: unknown client ${key}`);
    }
  });
  const now = Date.now();
  // Re-seeding a token replaces it and starts a fresh chain (a new grant for the load test).
  for (const t of s.refresh_tokens) addToken(state, t, t.client_key ?? defaultClient!, now);
  if (s.latency_ms !== undefined) state.latencyMs = s.latency_ms;
  if (s.rate_limit !== undefined) state.rateLimit = s.rate_limit;
  return { refresh_tokens: s.refresh_tokens.length, latency_ms: state.latencyMs, rate_limit: state.rateLimit };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function snapshotTikTokState(state: TikTokState): Record<string, unknown> {
  const now = Date.now();
  return {
    expires_in: state.expiresIn,
    refresh_expires_in: state.refreshExpiresIn,
    rotation_resets_lifetime: state.rotationResetsLifetime,
    latency_ms: state.latencyMs,
    rate_limit: state.rateLimit,
    clients: [...state.clients.keys()].map((client_key) => ({ client_key })),
    refresh_tokens: [...state.refreshTokens.values()].map((t) => ({
      ...t,
      issued_at: iso(t.issued_at),
      expires_at: iso(t.expires_at),
      expired: t.expires_at <= now,
    })),
    chains: [...state.chains.values()].map((c) => ({ ...c, last_refreshed_at: iso(c.last_refreshed_at) })),
    access_tokens: [...state.accessTokens.values()].map((a) => ({
      ...a,
      expires_at: iso(a.expires_at),
      expired: a.expires_at <= now,
    })),
  };
}
