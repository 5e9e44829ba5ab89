// Fake Google OAuth 2.0 token endpoint (https://oauth2.googleapis.com), enough
// for the refresh-token flow used for YouTube (Google's OAuth 2.0 refresh grant):
//   POST /token      grant_type=refresh_token (form-encoded, as google-auth-library
//                    sends it; JSON and HTTP Basic client auth accepted too)
//   POST /revoke     ?token=… or form/JSON body; revokes a refresh token (or the
//                    refresh token behind an access token)
//   GET  /tokeninfo  ?access_token=… (lets tests check an issued token is live)
// Error envelope is RFC 6749's {"error","error_description"}.

import { z } from "npm:zod@4";
import type { ProviderContext, ProviderModule, SandboxRequest } from "../types.ts";

const FixtureSchema = z.object({
  /** Lifetime reported as expires_in and used to expire issued access tokens. */
  expires_in: z.number().int().min(1).default(3599),
  /** Extra time before /token answers, like a real provider's latency (benchmarks set 20 ms). */
  latency_ms: z.number().int().min(0).max(60_000).default(0),
  /** Cap on remembered access tokens (oldest forgotten first) so load tests stay bounded. */
  max_access_tokens: z.number().int().min(1).default(100_000),
  clients: z.array(z.object({
    client_id: z.string().min(1),
    client_secret: z.string().min(1),
  })).default([]),
  refresh_tokens: z.array(z.object({
    refresh_token: z.string().min(1),
    client_id: z.string().min(1),
    scope: z.string(),
    status: z.enum(["active", "revoked"]).default("active"),
  })).default([]),
});

const SeedSchema = z.object({
  latency_ms: z.number().int().min(0).max(60_000).optional(),
  refresh_tokens: z.array(z.object({
    refresh_token: z.string().min(1),
    /** Defaults to the first client of the fixture. */
    client_id: z.string().min(1).optional(),
    scope: z.string().default("https://www.googleapis.com/auth/youtube.readonly"),
    status: z.enum(["active", "revoked"]).default("active"),
  })).max(100_000).default([]),
});

export interface GoogleClient {
  client_id: string;
  client_secret: string;
}

export interface RefreshTokenRecord {
  refresh_token: string;
  client_id: string;
  scope: string;
  status: "active" | "revoked";
  refresh_count: number;
  last_refreshed_at: string | null;
  revoked_at: string | null;
}

export interface AccessTokenRecord {
  access_token: string;
  refresh_token: string;
  client_id: string;
  scope: string;
  issued_at: number; // epoch ms
  expires_at: number; // epoch ms
}

export interface GoogleOAuthState {
  expiresIn: number;
  latencyMs: number;
  maxAccessTokens: number;
  clients: Map<string, GoogleClient>;
  refreshTokens: Map<string, RefreshTokenRecord>;
  /** Insertion-ordered, so the oldest is evicted first when over the cap. */
  accessTokens: Map<string, AccessTokenRecord>;
}

// Google answers token endpoint calls with these headers.
const GOOGLE_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-cache, no-store, max-age=0, must-revalidate",
  "pragma": "no-cache",
  "expires": "Mon, 01 Jan 1990 00:00:00 GMT",
};

function googleJson(status: number, body: unknown, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...GOOGLE_HEADERS, ...extra },
  });
}

function oauthError(status: number, error: string, description: string): Response {
  return googleJson(status, { error, error_description: description });
}

/** Flat string params from a form or JSON body (first value wins for repeats). */
function bodyParams(req: SandboxRequest): Record<string, string> {
  const out: Record<string, string> = {};
  const body = req.body;
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    for (const [k, v] of Object.entries(body)) {
      const first = Array.isArray(v) ? v[0] : v;
      if (typeof first === "string") out[k] = first;
      else if (typeof first === "number" || typeof first === "boolean") out[k] = String(first);
    }
  }
  return out;
}

/** client_secret_basic: RFC 6749 §2.3.1 form-encodes id and secret before base64. */
function basicCredentials(req: SandboxRequest): GoogleClient | undefined {
  const header = req.headers.get("authorization");
  if (!header || !/^basic /i.test(header)) return undefined;
  try {
    const decoded = atob(header.slice(6).trim());
    const i = decoded.indexOf(":");
    if (i < 0) return undefined;
    const unform = (s: string) => decodeURIComponent(s.replace(/\+/g, " "));
    return {
      client_id: unform(decoded.slice(0, i)),
      client_secret: unform(decoded.slice(i + 1)),
    };
  } catch {
    return undefined;
  }
}

function newAccessToken(): string {
  return "ya29.a0" + crypto.randomUUID().replaceAll("-", "") +
    crypto.randomUUID().replaceAll("-", "");
}

function token(req: SandboxRequest, ctx: ProviderContext<GoogleOAuthState>): Response {
  if (req.method !== "POST") {
    return googleJson(405, {
      error: "invalid_request",
      error_description: `Method ${req.method} not allowed; use POST.`,
    }, { allow: "POST" });
  }
  const state = ctx.state;
  const p = bodyParams(req);
  const basic = basicCredentials(req);
  const clientId = p.client_id ?? basic?.client_id;
  const clientSecret = p.client_secret ?? basic?.client_secret;

  if (!p.grant_type) {
    return oauthError(400, "invalid_request", "Required parameter is missing: grant_type");
  }
  if (!clientId) {
    return oauthError(400, "invalid_request", "Could not determine client ID from request.");
  }
  const client = state.clients.get(clientId);
  if (client === undefined) {
    return oauthError(401, "invalid_client", "The OAuth client was not found.");
  }
  if (clientSecret !== client.client_secret) {
    return oauthError(401, "invalid_client", "Unauthorized");
  }
  if (p.grant_type !== "refresh_token") {
    return oauthError(400, "unsupported_grant_type", `Invalid grant_type: ${p.grant_type}`);
  }
  if (!p.refresh_token) {
    return oauthError(400, "invalid_request", "Missing required parameter: refresh_token");
  }
  const record = state.refreshTokens.get(p.refresh_token);
  if (record === undefined || record.status !== "active") {
    return oauthError(400, "invalid_grant", "Token has been expired or revoked.");
  }
  if (record.client_id !== client.client_id) {
    // Refresh token minted for a different OAuth client.
    return oauthError(401, "unauthorized_client", "Unauthorized");
  }

  const now = Date.now();
  const access: AccessTokenRecord = {
    access_token: newAccessToken(),
    refresh_token: record.refresh_token,
    client_id: client.client_id,
    scope: record.scope,
    issued_at: now,
    expires_at: now + state.expiresIn * 1000,
  };
  state.accessTokens.set(access.access_token, access);
  if (state.accessTokens.size > state.maxAccessTokens) {
    state.accessTokens.delete(state.accessTokens.keys().next().value!);
  }
  record.refresh_count++;
  record.last_refreshed_at = new Date(now).toISOString();

  // Like Google: no refresh_token in a refresh response; id_token only with openid (never here).
  return googleJson(200, {
    access_token: access.access_token,
    expires_in: state.expiresIn,
    scope: record.scope,
    token_type: "Bearer",
  });
}

/** Access token that is known, unexpired and whose refresh token is still active. */
function liveAccessToken(state: GoogleOAuthState, value: string): AccessTokenRecord | undefined {
  const access = state.accessTokens.get(value);
  if (access === undefined || access.expires_at <= Date.now()) return undefined;
  if (state.refreshTokens.get(access.refresh_token)?.status !== "active") return undefined;
  return access;
}

function revoke(req: SandboxRequest, ctx: ProviderContext<GoogleOAuthState>): Response {
  if (req.method !== "POST" && req.method !== "GET") {
    return googleJson(405, {
      error: "invalid_request",
      error_description: `Method ${req.method} not allowed; use POST.`,
    }, { allow: "POST, GET" });
  }
  const state = ctx.state;
  const value = req.query.get("token") ?? bodyParams(req).token;
  if (!value) return oauthError(400, "invalid_request", "Bad Request");

  let record = state.refreshTokens.get(value);
  if (record === undefined) {
    // Revoking an access token also revokes the refresh token it came from.
    const access = liveAccessToken(state, value);
    if (access !== undefined) record = state.refreshTokens.get(access.refresh_token);
  }
  if (record === undefined || record.status !== "active") {
    return oauthError(400, "invalid_token", "Token expired or revoked");
  }
  record.status = "revoked";
  record.revoked_at = new Date().toISOString();
  return googleJson(200, {});
}

function tokeninfo(req: SandboxRequest, ctx: ProviderContext<GoogleOAuthState>): Response {
  const value = req.query.get("access_token") ?? bodyParams(req).access_token;
  const access = value ? liveAccessToken(ctx.state, value) : undefined;
  if (access === undefined) return oauthError(400, "invalid_token", "Invalid Value");
  // Google returns these numbers as strings.
  return googleJson(200, {
    azp: access.client_id,
    aud: access.client_id,
    scope: access.scope,
    exp: String(Math.floor(access.expires_at / 1000)),
    expires_in: String(Math.max(0, Math.floor((access.expires_at - Date.now()) / 1000))),
    access_type: "offline",
  });
}

export const googleOAuth: ProviderModule<GoogleOAuthState> = {
  name: "google_oauth",

  loadState(fixture: unknown): GoogleOAuthState {
    const f = FixtureSchema.parse(fixture ?? {});
    const clients = new Map(f.clients.map((c) => [c.client_id, { ...c }]));
    const refreshTokens = new Map<string, RefreshTokenRecord>();
    for (const t of f.refresh_tokens) {
      if (!clients.has(t.client_id)) {
        throw new Error(`refresh token ${t.refresh_token} names unknown client ${t.client_id}`);
      }
      refreshTokens.set(t.refresh_token, {
        ...t,
        refresh_count: 0,
        last_refreshed_at: null,
        revoked_at: null,
      });
    }
    return {
      expiresIn: f.expires_in,
      latencyMs: f.latency_ms,
      maxAccessTokens: f.max_access_tokens,
      clients,
      refreshTokens,
      accessTokens: new Map(),
    };
  },

  handle(req, ctx) {
    switch (req.path) {
      case "/token":
        if (ctx.state.latencyMs > 0) {
          return new Promise((resolve) => setTimeout(() => resolve(token(req, ctx)), ctx.state.latencyMs));
        }
        return token(req, ctx);
      case "/revoke":
        return revoke(req, ctx);
      case "/tokeninfo":
        return tokeninfo(req, ctx);
      default:
        return oauthError(404, "not_found", `Unknown path ${req.path} on oauth2.googleapis.com.`);
    }
  },

  faultBody(status) {
    if (status === 400) return { error: "invalid_request", error_description: "Bad Request" };
    if (status === 401) return { error: "invalid_client", error_description: "Unauthorized" };
    if (status === 429) {
      return { error: "rate_limit_exceeded", error_description: "Rate Limit Exceeded" };
    }
    if (status >= 500) return { error: "internal_failure", error_description: "Backend Error" };
    return { error: "sandbox_fault", error_description: `Injected HTTP ${status}` };
  },

  seed(state, input) {
    const parsed = SeedSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(`${issue.path.join(".") || "body"}: ${issue.message}`);
    }
    const defaultClient = state.clients.keys().next().value;
    for (const t of parsed.data.refresh_tokens) {
      const clientId = t.client_id ?? defaultClient;
      if (clientId === undefined || !state.clients.has(clientId)) {
        throw new Error(`refresh_tokens: unknown client ${clientId}`);
      }
    }
    for (const t of parsed.data.refresh_tokens) {
      state.refreshTokens.set(t.refresh_token, {
        refresh_token: t.refresh_token,
        client_id: t.client_id ?? defaultClient!,
        scope: t.scope,
        status: t.status,
        refresh_count: 0,
        last_refreshed_at: null,
        revoked_at: null,
      });
    }
    if (parsed.data.latency_ms !== undefined) state.latencyMs = parsed.data.latency_ms;
    return { refresh_tokens: parsed.data.refresh_tokens.length, latency_ms: state.latencyMs };
  },

  snapshot(state) {
    const now = Date.now();
    return {
      expires_in: state.expiresIn,
      latency_ms: state.latencyMs,
      clients: [...state.clients.values()],
      refresh_tokens: [...state.refreshTokens.values()],
      access_tokens: [...state.accessTokens.values()].map((a) => ({
        ...a,
        issued_at: new Date(a.issued_at).toISOString(),
        expires_at: new Date(a.expires_at).toISOString(),
        expired: a.expires_at <= now,
      })),
    };
  },
};
