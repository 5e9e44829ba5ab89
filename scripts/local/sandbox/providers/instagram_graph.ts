// Fake graph.instagram.com (Instagram API with Instagram Login), provider-contracts §2:
//   GET /refresh_access_token?grant_type=ig_refresh_token&access_token=…   (also /vNN.N/…)
//   GET /vNN.N/{media-id}?fields=id,media_type,media_url,…&access_token=…  (or unversioned)
//   GET /vNN.N/me?fields=user_id,username                                  (token liveness)
//   GET /cdn/…?oh=…&oe=…   the signed media URLs it hands out (403 after expiry)
// The token goes in the access_token query parameter (documented) or an Authorization: Bearer
// header. Errors use the Graph envelope {"error":{message,type,code,error_subcode,fbtrace_id}}.
// State, fixture and seed shapes live in instagram_graph_state.ts.

import type { ProviderContext, ProviderModule, SandboxRequest } from "../types.ts";
import { CDN_PATH_PREFIX, mediaUrl, serveCdn } from "./instagram_cdn.ts";
import {
  type GraphError,
  graphError,
  graphFaultBody,
  type RateLimitCode,
  rateLimitError,
  usageHeaders,
} from "./graph_errors.ts";
import {
  consumeRateLimit,
  type IgToken,
  type InstagramGraphState,
  loadInstagramState,
  seedInstagramState,
  snapshotInstagramState,
} from "./instagram_graph_state.ts";
import { jsonResponse } from "../http.ts";

type Ctx = ProviderContext<InstagramGraphState>;

const MEDIA_FIELDS = new Set([
  "id",
  "media_type",
  "media_product_type",
  "media_url",
  "thumbnail_url",
  "permalink",
  "timestamp",
  "caption",
]);
const ME_FIELDS = new Set(["id", "user_id", "username"]);

/** Graph's way of writing dates in 190/463 messages ("Sunday, 23-Nov-26 12:00:00 UTC"; real ones use PST). */
function graphDate(ms: number): string {
  const d = new Date(ms);
  const day = d.toLocaleDateString("en-US", { weekday: "long", timeZone: "UTC" });
  const mon = d.toLocaleDateString("en-US", { month: "short", timeZone: "UTC" });
  const p = (n: number) => String(n).padStart(2, "0");
  return `${day}, ${p(d.getUTCDate())}-${mon}-${p(d.getUTCFullYear() % 100)} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
}

function objectMissing(method: string, id: string): GraphError {
  return {
    message: `Unsupported ${method.toLowerCase()} request. Object with ID '${id}' does not exist, ` +
      "cannot be loaded due to missing permissions, or does not support this operation",
    type: "IGApiException",
    code: 100,
    error_subcode: 33,
  };
}

function tokenFrom(req: SandboxRequest): string | null {
  const q = req.query.get("access_token");
  if (q) return q;
  const auth = req.headers.get("authorization");
  const m = auth?.match(/^(?:bearer|oauth)\s+(\S+)\s*$/i);
  return m ? m[1] : null;
}

/** The token's record, or the 190 error Graph gives for it. */
function checkToken(state: InstagramGraphState, value: string | null, now: number): IgToken | Response {
  if (value === null) {
    return graphError(400, {
      message: "An active access token must be used to query information about the current user.",
      type: "OAuthException",
      code: 2500,
    });
  }
  const token = state.tokens.get(value);
  if (token === undefined) {
    // Exact text UNVERIFIED (contract §2c).
    return graphError(400, {
      message: "Invalid OAuth access token - Cannot parse access token",
      type: "OAuthException",
      code: 190,
    });
  }
  const invalid = (subcode: number, message: string) =>
    graphError(400, {
      message: `Error validating access token: ${message}`,
      type: "OAuthException",
      code: 190,
      error_subcode: subcode,
    });
  switch (token.status) {
    case "revoked":
      return invalid(458, "The user has not authorized application.");
    case "password_changed":
      return invalid(
        460,
        "The session has been invalidated because the user changed their password or Facebook has " +
          "changed the session for security reasons.",
      );
    case "superseded": // only with invalidate_previous_on_refresh; subcode/text UNVERIFIED
      return invalid(467, "The session is invalid because a newer access token was issued.");
  }
  if (token.expires_at <= now) {
    return invalid(463, `Session has expired on ${graphDate(token.expires_at)}. The current time is ${graphDate(now)}.`);
  }
  return token;
}

/** App-wide throttle first, then the token's account; each consumes one of its `times`. */
function throttled(state: InstagramGraphState, igUserId: string): Response | null {
  const app = consumeRateLimit(state.rateLimit);
  state.rateLimit = app.rest;
  let hit = app.hit;
  if (hit === null) {
    const account = state.accounts.get(igUserId);
    if (account) {
      const acc = consumeRateLimit(account.rate_limit);
      account.rate_limit = acc.rest;
      hit = acc.hit;
    }
  }
  if (hit === null) return null;
  const code = hit.code as RateLimitCode;
  return graphError(hit.status, rateLimitError(code), usageHeaders(code, code === 4 ? null : igUserId, hit.regain_minutes));
}

function methodNotGet(req: SandboxRequest): Response {
  return graphError(400, {
    message: `Unsupported request - method type: ${req.method.toLowerCase()}`,
    type: "IGApiException",
    code: 100,
  });
}

function newAccessToken(): string {
  return "IGAA" + crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "").toUpperCase();
}

function refreshAccessToken(req: SandboxRequest, ctx: Ctx): Response {
  if (req.method !== "GET") return methodNotGet(req);
  const state = ctx.state;
  const now = Date.now();
  const grant = req.query.get("grant_type");
  if (grant !== "ig_refresh_token") {
    // Wording UNVERIFIED; Graph answers bad parameters with #100.
    return graphError(400, {
      message: `(#100) grant_type must be ig_refresh_token${grant ? `, got ${grant}` : ""}`,
      type: "OAuthException",
      code: 100,
    });
  }
  const token = checkToken(state, tokenFrom(req), now);
  if (token instanceof Response) return token;
  const limited = throttled(state, token.ig_user_id);
  if (limited) return limited;

  if (now - token.issued_at < state.minRefreshAgeSeconds * 1000) {
    // Undocumented on the real API (contract §2a); the sandbox rejects so a job that refreshes
    // too early shows up, or echoes the same token when told to ("young_token_refresh":"echo").
    if (state.youngTokenRefresh === "echo") {
      return jsonResponse(200, {
        access_token: token.access_token,
        token_type: "bearer",
        expires_in: Math.max(0, Math.floor((token.expires_at - now) / 1000)),
      });
    }
    return graphError(400, {
      message: "(#100) The access token must be at least 24 hours old to be refreshed (sandbox)",
      type: "OAuthException",
      code: 100,
    });
  }

  const fresh: IgToken = {
    access_token: newAccessToken(),
    ig_user_id: token.ig_user_id,
    issued_at: now,
    expires_at: now + state.expiresIn * 1000,
    status: "active",
    refresh_count: 0,
    last_refreshed_at: null,
    refreshed_from: token.access_token,
  };
  state.tokens.set(fresh.access_token, fresh);
  token.refresh_count++;
  token.last_refreshed_at = now;
  if (state.invalidatePreviousOnRefresh) token.status = "superseded";
  return jsonResponse(200, { access_token: fresh.access_token, token_type: "bearer", expires_in: state.expiresIn });
}

/** fields=a,b,c → the requested names, or a #100 error naming the first unknown one. */
function requestedFields(req: SandboxRequest, allowed: Set<string>, nodeType: string): string[] | Response {
  const raw = req.query.get("fields");
  const fields = raw ? raw.split(",").map((f) => f.trim()).filter(Boolean) : [];
  const unknown = fields.find((f) => !allowed.has(f));
  if (unknown !== undefined) {
    return graphError(400, {
      message: `(#100) Tried accessing nonexisting field (${unknown}) on node type (${nodeType})`,
      type: "IGApiException",
      code: 100,
    });
  }
  return fields;
}

function versionError(state: InstagramGraphState, version: string | undefined): Response | null {
  if (version === undefined || state.minGraphVersion === null) return null;
  const num = (v: string) => v.slice(1).split(".").map(Number);
  const [maj, min] = num(version);
  const [rmaj, rmin] = num(state.minGraphVersion);
  if (maj > rmaj || (maj === rmaj && min >= rmin)) return null;
  return graphError(400, {
    message: `(#2635) You are calling a deprecated version of the Graph API. Please update to at least ${state.minGraphVersion}.`,
    type: "OAuthException",
    code: 2635,
  });
}

function getMedia(req: SandboxRequest, ctx: Ctx, version: string | undefined, id: string): Response {
  const state = ctx.state;
  const now = Date.now();
  const bad = versionError(state, version);
  if (bad) return bad;
  const token = checkToken(state, tokenFrom(req), now);
  if (token instanceof Response) return token;
  const limited = throttled(state, token.ig_user_id);
  if (limited) return limited;
  if (req.method !== "GET") return graphError(400, objectMissing(req.method, id));

  const media = state.media.get(id);
  // Deleted, never existed and someone else's media look the same on the wire.
  if (media === undefined || media.deleted || media.ig_user_id !== token.ig_user_id) {
    return graphError(400, objectMissing(req.method, id));
  }
  const fields = requestedFields(req, MEDIA_FIELDS, "Media");
  if (fields instanceof Response) return fields;

  const out: Record<string, unknown> = {};
  for (const f of fields) {
    switch (f) {
      case "media_url":
        if (!media.copyrighted) out.media_url = mediaUrl(state, ctx.origin, media, "media", now);
        break; // copyrighted: field absent, not null (contract §2b)
      case "thumbnail_url":
        if (media.media_type === "VIDEO") out.thumbnail_url = mediaUrl(state, ctx.origin, media, "thumb", now);
        break;
      case "permalink":
        out.permalink = `https://www.instagram.com/${media.media_product_type === "REELS" ? "reel" : "p"}/${media.shortcode}/`;
        break;
      case "timestamp":
        // Graph's format: 2026-11-20T10:00:00+0000
        out.timestamp = new Date(media.timestamp).toISOString().replace(/\.\d{3}Z$/, "+0000");
        break;
      case "id":
        break;
      default:
        out[f] = media[f as "media_type" | "media_product_type" | "caption"];
    }
  }
  out.id = media.id; // Graph always returns id, after the requested fields
  return jsonResponse(200, out);
}

function getMe(req: SandboxRequest, ctx: Ctx, version: string | undefined): Response {
  const state = ctx.state;
  const bad = versionError(state, version);
  if (bad) return bad;
  if (req.method !== "GET") return methodNotGet(req);
  const token = checkToken(state, tokenFrom(req), Date.now());
  if (token instanceof Response) return token;
  const limited = throttled(state, token.ig_user_id);
  if (limited) return limited;
  const fields = requestedFields(req, ME_FIELDS, "User");
  if (fields instanceof Response) return fields;
  const account = state.accounts.get(token.ig_user_id);
  const out: Record<string, unknown> = {};
  if (fields.includes("user_id")) out.user_id = token.ig_user_id;
  if (fields.includes("username")) out.username = account?.username ?? null;
  out.id = token.ig_user_id;
  return jsonResponse(200, out);
}

const VERSIONED = /^\/(?:(v\d+\.\d+)\/)?([^/]+)\/?$/;

function route(req: SandboxRequest, ctx: Ctx): Response {
  if (req.path.startsWith(CDN_PATH_PREFIX)) return serveCdn(ctx.state, req.path, req.query, Date.now());
  const m = req.path.match(VERSIONED);
  if (m) {
    const [, version, node] = m;
    if (node === "refresh_access_token") return refreshAccessToken(req, ctx);
    if (node === "me") return getMe(req, ctx, version);
    if (/^\d+$/.test(node)) return getMedia(req, ctx, version, node);
  }
  return graphError(400, { message: `Unknown path components: ${req.path}`, type: "OAuthException", code: 2500 });
}

export const instagramGraph: ProviderModule<InstagramGraphState> = {
  name: "instagram_graph",
  loadState: loadInstagramState,
  handle(req, ctx) {
    if (ctx.state.latencyMs > 0) {
      return new Promise((resolve) => setTimeout(() => resolve(route(req, ctx)), ctx.state.latencyMs));
    }
    return route(req, ctx);
  },
  faultBody: graphFaultBody,
  seed: seedInstagramState,
  snapshot: snapshotInstagramState,
};
