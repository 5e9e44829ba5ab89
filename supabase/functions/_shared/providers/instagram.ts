// Instagram API with Instagram Login (graph.instagram.com), provider-contracts §2:
// (a) a TokenRefresher for long-lived tokens: GET {base}/refresh_access_token?grant_type=
//     ig_refresh_token&access_token=<token>. There is no separate refresh token: the long-lived
//     access token is itself the credential, so the caller passes it to refresh() and stores the
//     returned access token (refreshToken in the result is always null).
// (b) fetchMediaUrls: the current signed CDN URLs of one media item, whose `oe=` expiry says
//     when they must be fetched again.
// The token travels in the query string (the documented form), so no error text built here
// includes a URL, and network error messages (Deno's name the URL) are scrubbed of the token.

import { type Env, envValue } from "../env.ts";
import { DEFAULT_TIMEOUT_MS, type FetchFn, fetchText, HttpTimeoutError, type HttpResult, parseJson } from "../http.ts";
import { redact } from "../redact.ts";
import {
  describeGraphError,
  GRAPH_TOKEN_INVALID_CODE,
  graphRetryAfterSeconds,
  isRateLimit,
  isTransientGraphError,
  parseGraphError,
} from "./graph_api.ts";
import {
  permanentFailure,
  type ProviderFactory,
  type RefreshResult,
  type TokenRefresher,
  transientFailure,
} from "./token_refresh.ts";

export const INSTAGRAM_GRAPH_DEFAULT_BASE_URL = "https://graph.instagram.com";
/** Graph version used when the caller does not pin one. */
export const INSTAGRAM_DEFAULT_GRAPH_VERSION = "v22.0";

export interface InstagramHttpOptions {
  baseUrl?: string;
  fetch?: FetchFn;
  timeoutMs?: number;
  now?: () => number;
}

/** INSTAGRAM_GRAPH_BASE_URL (the local sandbox's instagram_graph URL) or the real host. */
export function instagramBaseUrl(env: Env): string {
  return envValue(env, "INSTAGRAM_GRAPH_BASE_URL") ?? INSTAGRAM_GRAPH_DEFAULT_BASE_URL;
}

type Call = { ok: true; res: HttpResult } | { ok: false; error: string };

/** One GET with the deadline; failures to get any answer come back as safe text. */
async function get(opts: InstagramHttpOptions, pathAndQuery: string, token: string): Promise<Call> {
  const baseUrl = (opts.baseUrl ?? INSTAGRAM_GRAPH_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    const res = await fetchText(opts.fetch ?? fetch, `${baseUrl}${pathAndQuery}`, {
      method: "GET",
      headers: { accept: "application/json" },
    }, timeoutMs);
    return { ok: true, res };
  } catch (err) {
    if (err instanceof HttpTimeoutError) {
      return { ok: false, error: `timeout: Instagram did not answer within ${timeoutMs} ms` };
    }
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, error: `network error: ${redact(message, [token, encodeURIComponent(token)])}` };
  }
}

/** A 401/403 that is not a throttle means the token (or its permissions) is no good. */
function tokenRejected(status: number, code: number | null, rateLimited: boolean): boolean {
  return code === GRAPH_TOKEN_INVALID_CODE || (!rateLimited && (status === 401 || status === 403));
}

// ---------------------------------------------------------------------------------------------
// (a) Token refresh

export function createInstagramTokenClient(opts: InstagramHttpOptions = {}): TokenRefresher {
  const now = opts.now ?? Date.now;
  return {
    async refresh(accessToken: string): Promise<RefreshResult> {
      const query = new URLSearchParams({ grant_type: "ig_refresh_token", access_token: accessToken });
      const call = await get(opts, `/refresh_access_token?${query}`, accessToken);
      if (!call.ok) return transientFailure(call.error);
      const result = interpretInstagramRefreshResponse(call.res, now());
      // Graph never echoes the token, but keep the promise "no tokens in error text" locally.
      return result.kind === "failed" ? { ...result, error: redact(result.error, [accessToken]) } : result;
    },
  };
}

/** Maps a refresh_access_token answer to a RefreshResult (exported for tests). */
export function interpretInstagramRefreshResponse(res: HttpResult, nowMs: number): RefreshResult {
  const status = res.status;
  if (status >= 200 && status < 300) {
    const body = parseJson(res.text) as Record<string, unknown> | null | undefined;
    const accessToken = typeof body?.access_token === "string" && body.access_token ? body.access_token : undefined;
    const expiresIn = typeof body?.expires_in === "string" ? Number(body.expires_in) : body?.expires_in;
    if (accessToken && typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0) {
      return {
        kind: "refreshed",
        accessToken,
        expiresIn: Math.floor(expiresIn),
        refreshToken: null, // the new access token is the credential to store
        scope: null,
        refreshExpiresIn: null,
      };
    }
    return transientFailure(`unexpected response: HTTP ${status} without access_token and expires_in`);
  }

  const e = parseGraphError(res.text);
  const label = describeGraphError(status, e);
  const rateLimited = isRateLimit(e);
  if (rateLimited || status === 429) return transientFailure(label, graphRetryAfterSeconds(res.headers, nowMs));
  if (tokenRejected(status, e?.code ?? null, rateLimited)) {
    // 190 with any subcode: expired (463), password changed (460), app removed (458), garbled…
    // An expired long-lived token can never be refreshed; only a new login fixes it.
    return permanentFailure(label, true);
  }
  if (status >= 500 || status === 408 || isTransientGraphError(e)) {
    return transientFailure(label, graphRetryAfterSeconds(res.headers, nowMs));
  }
  return permanentFailure(label, false);
}

/** Registry entry: Instagram refresh needs no app secret, only the base URL. */
export const instagramProvider: ProviderFactory = (ctx) => ({
  ok: true,
  secrets: [],
  refresher: createInstagramTokenClient({
    baseUrl: instagramBaseUrl(ctx.env),
    fetch: ctx.fetch,
    timeoutMs: ctx.timeoutMs,
    now: ctx.now,
  }),
});

// ---------------------------------------------------------------------------------------------
// (b) Media URLs

export type MediaUrlsResult =
  | {
    kind: "ok";
    /** null when Instagram omits it (media with copyrighted material, typically Reels audio). */
    media_url: string | null;
    /** VIDEO only. */
    thumbnail_url: string | null;
    media_type: string | null;
    /** Earliest `oe=` expiry of the returned URLs; null when none carries one. */
    expiresAt: Date | null;
  }
  /** 190, or 401/403 without a throttling code: the account must log in again. */
  | { kind: "token_invalid"; error: string; code: number | null; subcode: number | null }
  /** 100/33: deleted, never existed, or not visible to this token. */
  | { kind: "not_found"; error: string }
  | { kind: "rate_limited"; error: string; code: number | null; retryAfterSeconds: number | null }
  /** 5xx, timeout, network failure, Graph's transient codes: try again later. */
  | { kind: "transient"; error: string; retryAfterSeconds: number | null }
  /** Any other 4xx (bad field, deprecated version, permission…): retrying the same call won't help. */
  | { kind: "rejected"; error: string; code: number | null };

/** Expiry encoded in a signed CDN URL's `oe` parameter (hex unix seconds), or null. */
export function parseSignedUrlExpiry(url: string): Date | null {
  let oe: string | null;
  try {
    oe = new URL(url).searchParams.get("oe");
  } catch {
    return null;
  }
  if (oe === null || !/^[0-9a-f]{1,12}$/i.test(oe)) return null;
  return new Date(parseInt(oe, 16) * 1000);
}

const MEDIA_ID = /^\d{1,32}$/;
const GRAPH_VERSION = /^v\d{1,3}\.\d{1,3}$/;

export async function fetchMediaUrls(
  accessToken: string,
  mediaId: string,
  graphVersion: string = INSTAGRAM_DEFAULT_GRAPH_VERSION,
  opts: InstagramHttpOptions = {},
): Promise<MediaUrlsResult> {
  // Both go into the path: refuse anything that could change which endpoint is called.
  if (!MEDIA_ID.test(mediaId)) return { kind: "rejected", error: "media id must be numeric", code: null };
  if (!GRAPH_VERSION.test(graphVersion)) {
    return { kind: "rejected", error: "graph version must look like v22.0", code: null };
  }
  const query = new URLSearchParams({ fields: "id,media_type,media_url,thumbnail_url", access_token: accessToken });
  const call = await get(opts, `/${graphVersion}/${mediaId}?${query}`, accessToken);
  if (!call.ok) return { kind: "transient", error: call.error, retryAfterSeconds: null };
  const result = interpretMediaResponse(call.res, (opts.now ?? Date.now)());
  return "error" in result ? { ...result, error: redact(result.error, [accessToken]) } : result;
}

function urlField(body: Record<string, unknown>, key: string): string | null {
  const v = body[key];
  return typeof v === "string" && v.length > 0 ? v : null;
}

/** Maps a GET media answer to a MediaUrlsResult (exported for tests). */
export function interpretMediaResponse(res: HttpResult, nowMs: number): MediaUrlsResult {
  const status = res.status;
  if (status >= 200 && status < 300) {
    const body = parseJson(res.text);
    if (body === null || typeof body !== "object" || Array.isArray(body) || !("id" in body)) {
      return { kind: "transient", error: `unexpected response: HTTP ${status} without a media id`, retryAfterSeconds: null };
    }
    const b = body as Record<string, unknown>;
    const mediaUrl = urlField(b, "media_url");
    const thumbnailUrl = urlField(b, "thumbnail_url");
    const expiries = [mediaUrl, thumbnailUrl]
      .map((u) => (u === null ? null : parseSignedUrlExpiry(u)))
      .filter((d): d is Date => d !== null);
    return {
      kind: "ok",
      media_url: mediaUrl,
      thumbnail_url: thumbnailUrl,
      media_type: typeof b.media_type === "string" ? b.media_type : null,
      expiresAt: expiries.length === 0 ? null : new Date(Math.min(...expiries.map((d) => d.getTime()))),
    };
  }

  const e = parseGraphError(res.text);
  const error = describeGraphError(status, e);
  const rateLimited = isRateLimit(e);
  if (rateLimited || status === 429) {
    return { kind: "rate_limited", error, code: e?.code ?? null, retryAfterSeconds: graphRetryAfterSeconds(res.headers, nowMs) };
  }
  if (tokenRejected(status, e?.code ?? null, rateLimited)) {
    return { kind: "token_invalid", error, code: e?.code ?? null, subcode: e?.subcode ?? null };
  }
  if (e?.code === 100 && e.subcode === 33) return { kind: "not_found", error };
  if (status >= 500 || status === 408 || isTransientGraphError(e)) {
    return { kind: "transient", error, retryAfterSeconds: graphRetryAfterSeconds(res.headers, nowMs) };
  }
  return { kind: "rejected", error, code: e?.code ?? null };
}
