// Fake TikTok Login Kit v2 token endpoint (open.tiktokapis.com), provider-contracts §3:
//   POST /v2/oauth/token/   form-encoded client_key, client_secret, grant_type=refresh_token,
//                           refresh_token (the trailing slash is part of the path)
// Refresh tokens ROTATE: every success returns a new refresh_token and the one just used stops
// working at once, so a second worker refreshing with the same token gets invalid_grant.
// Errors use the OAuth envelope {"error","error_description","log_id"}. Their HTTP statuses are
// UNVERIFIED in the contract; the fake uses 400 (401 for invalid_client, 429 when throttled).

import { jsonResponse } from "../http.ts";
import type { ProviderContext, ProviderModule, SandboxRequest } from "../types.ts";
import {
  loadTikTokState,
  seedTikTokState,
  snapshotTikTokState,
  type TikTokRefreshToken,
  type TikTokState,
} from "./tiktok_state.ts";

export const TOKEN_PATH = "/v2/oauth/token/";

/** TikTok log ids look like 20230814181406D1A2B3C4D5E6F7A8B9C0 (timestamp + hex). */
function logId(): string {
  const ts = new Date().toISOString().replace(/[-:TZ.]/g, "").slice(0, 14);
  return ts + crypto.randomUUID().replaceAll("-", "").slice(0, 18).toUpperCase();
}

function tiktokError(
  status: number,
  error: string,
  description: string,
  headers: Record<string, string> = {},
): Response {
  return jsonResponse(status, { error, error_description: description, log_id: logId() }, headers);
}

function formParams(req: SandboxRequest): Record<string, string> {
  const out: Record<string, string> = {};
  const body = req.body;
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    for (const [k, v] of Object.entries(body)) {
      const first = Array.isArray(v) ? v[0] : v;
      if (typeof first === "string") out[k] = first;
    }
  }
  return out;
}

const randomPart = () => crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "").slice(0, 16);

/** The record behind a usable refresh token, or the reason it is not. */
function usable(record: TikTokRefreshToken | undefined, clientKey: string, now: number): string | null {
  if (record === undefined) return "Refresh token is invalid or expired.";
  if (record.status === "rotated") return "Refresh token has already been used.";
  if (record.status === "revoked") return "Refresh token has been revoked.";
  if (record.expires_at <= now) return "Refresh token is invalid or expired.";
  if (record.client_key !== clientKey) return "Refresh token was issued to another client.";
  return null;
}

function token(req: SandboxRequest, ctx: ProviderContext<TikTokState>): Response {
  if (req.method !== "POST") {
    return tiktokError(405, "invalid_request", `Method ${req.method} is not allowed; use POST.`, { allow: "POST" });
  }
  const state = ctx.state;
  if (state.rateLimit !== null) {
    const limit = state.rateLimit;
    if (limit.times !== undefined) state.rateLimit = limit.times <= 1 ? null : { ...limit, times: limit.times - 1 };
    const headers: Record<string, string> = limit.retry_after !== undefined
      ? { "retry-after": String(limit.retry_after) }
      : {};
    return tiktokError(429, "rate_limit_exceeded", "The API rate limit was exceeded.", headers);
  }
  if (req.contentType !== "application/x-www-form-urlencoded") {
    return tiktokError(400, "invalid_request", "The request parameters are malformed.");
  }
  const p = formParams(req);
  if (!p.client_key || !p.client_secret || !p.grant_type) {
    return tiktokError(400, "invalid_request", "The request parameters are malformed.");
  }
  const secret = state.clients.get(p.client_key);
  if (secret === undefined || secret !== p.client_secret) {
    return tiktokError(401, "invalid_client", "Client key or secret is incorrect.");
  }
  if (p.grant_type !== "refresh_token") {
    return tiktokError(400, "unsupported_grant_type", `Unsupported grant_type: ${p.grant_type}`);
  }
  if (!p.refresh_token) return tiktokError(400, "invalid_request", "The request parameters are malformed.");

  const now = Date.now();
  const record = state.refreshTokens.get(p.refresh_token);
  const why = usable(record, p.client_key, now);
  if (why !== null || record === undefined) return tiktokError(400, "invalid_grant", why ?? "");

  const chain = state.chains.get(record.chain_id)!;
  const next: TikTokRefreshToken = {
    ...record,
    refresh_token: "rft." + randomPart(),
    status: "active",
    issued_at: now,
    expires_at: state.rotationResetsLifetime ? now + state.refreshExpiresIn * 1000 : record.expires_at,
    replaced_by: null,
  };
  state.refreshTokens.set(next.refresh_token, next);
  record.status = "rotated";
  record.replaced_by = next.refresh_token;
  chain.refresh_count++;
  chain.current_refresh_token = next.refresh_token;
  chain.last_refreshed_at = now;

  const accessToken = "act." + randomPart();
  state.accessTokens.set(accessToken, {
    access_token: accessToken,
    open_id: record.open_id,
    chain_id: record.chain_id,
    expires_at: now + state.expiresIn * 1000,
  });
  if (state.accessTokens.size > state.maxAccessTokens) {
    state.accessTokens.delete(state.accessTokens.keys().next().value!);
  }

  return jsonResponse(200, {
    access_token: accessToken,
    expires_in: state.expiresIn,
    open_id: record.open_id,
    // Remaining lifetime of the new refresh token (contract §3).
    refresh_expires_in: Math.max(0, Math.floor((next.expires_at - now) / 1000)),
    refresh_token: next.refresh_token,
    scope: record.scope,
    token_type: "Bearer",
  });
}

function route(req: SandboxRequest, ctx: ProviderContext<TikTokState>): Response {
  if (req.path === TOKEN_PATH) return token(req, ctx);
  // Without the trailing slash the real endpoint does not answer the grant either; a fake
  // that accepted it would hide the client bug the contract warns about.
  return tiktokError(404, "invalid_request", `Unknown path ${req.path} on open.tiktokapis.com.`);
}

export const tiktok: ProviderModule<TikTokState> = {
  name: "tiktok",
  loadState: loadTikTokState,
  handle(req, ctx) {
    if (ctx.state.latencyMs > 0) {
      return new Promise((resolve) => setTimeout(() => resolve(route(req, ctx)), ctx.state.latencyMs));
    }
    return route(req, ctx);
  },
  faultBody(status) {
    const body = (error: string, error_description: string) => ({ error, error_description, log_id: logId() });
    if (status === 429) return body("rate_limit_exceeded", "The API rate limit was exceeded.");
    if (status === 401) return body("invalid_client", "Client key or secret is incorrect.");
    if (status === 400) return body("invalid_request", "The request parameters are malformed.");
    if (status === 503) return body("temporarily_unavailable", "The server is temporarily unavailable.");
    if (status >= 500) return body("server_error", "Internal server error.");
    return body("sandbox_fault", `Injected HTTP ${status}`);
  },
  seed: seedTikTokState,
  snapshot: snapshotTikTokState,
};
