// TikTok Login Kit v2 refresh_token grant, provider-contracts §3: POST {base}/v2/oauth/token/
// (trailing slash), form-encoded client_key, client_secret, grant_type=refresh_token,
// refresh_token. Refresh tokens ROTATE: every success carries a new refresh_token and the one
// just used is dead, so the result's refreshToken must be stored (with refreshExpiresIn, the new
// token's remaining lifetime). Success is decided by the body (access_token present, no
// `error`), not the HTTP status, which the contract marks UNVERIFIED for errors.

import { envValue } from "../env.ts";
import {
  DEFAULT_TIMEOUT_MS,
  type FetchFn,
  fetchText,
  HttpTimeoutError,
  type HttpResult,
  parseJson,
  parseRetryAfter,
} from "../http.ts";
import {
  permanentFailure,
  type ProviderFactory,
  requireSecrets,
  type RefreshResult,
  type TokenRefresher,
  transientFailure,
} from "./token_refresh.ts";

export const TIKTOK_DEFAULT_BASE_URL = "https://open.tiktokapis.com";

export interface TikTokOptions {
  clientKey: string;
  clientSecret: string;
  baseUrl?: string;
  fetch?: FetchFn;
  timeoutMs?: number;
  now?: () => number;
}

export function createTikTokClient(opts: TikTokOptions): TokenRefresher {
  const baseUrl = (opts.baseUrl ?? TIKTOK_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const fetchFn = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = opts.now ?? Date.now;

  return {
    async refresh(refreshToken: string): Promise<RefreshResult> {
      const body = new URLSearchParams({
        client_key: opts.clientKey,
        client_secret: opts.clientSecret,
        grant_type: "refresh_token",
        refresh_token: refreshToken,
      });
      let res: HttpResult;
      try {
        res = await fetchText(fetchFn, `${baseUrl}/v2/oauth/token/`, {
          method: "POST",
          headers: {
            "content-type": "application/x-www-form-urlencoded",
            "cache-control": "no-cache",
            accept: "application/json",
          },
          body,
        }, timeoutMs);
      } catch (err) {
        if (err instanceof HttpTimeoutError) {
          return transientFailure(`timeout: TikTok did not answer within ${timeoutMs} ms`);
        }
        return transientFailure(`network error: ${err instanceof Error ? err.message : String(err)}`);
      }
      return interpretTikTokTokenResponse(res, now());
    },
  };
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

function seconds(value: unknown): number | undefined {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

// Errors where TikTok is at fault or busy: try again later.
const TRANSIENT_ERRORS = new Set(["server_error", "temporarily_unavailable", "rate_limit_exceeded"]);

/** Maps a token endpoint answer to a RefreshResult (exported for tests). */
export function interpretTikTokTokenResponse(res: HttpResult, nowMs: number): RefreshResult {
  const parsed = parseJson(res.text);
  const body: Record<string, unknown> = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
    ? parsed as Record<string, unknown>
    : {};
  const status = res.status;
  // OAuth endpoints send a flat {"error": "..."}; the TikTok API v2 envelope nests
  // {"error": {"code": "..."}} (e.g. rate_limit_exceeded) – read both.
  const nested = body.error !== null && typeof body.error === "object" ? body.error as Record<string, unknown> : null;
  const rawError = str(body.error) ?? (nested ? str(nested.code) : undefined);
  const error = rawError === "ok" ? undefined : rawError; // the v2 envelope says "ok" on success
  const accessToken = str(body.access_token);

  if (error === undefined && accessToken !== undefined && status < 400) {
    const expiresIn = seconds(body.expires_in);
    if (expiresIn === undefined || expiresIn === 0) {
      return transientFailure(`unexpected response: HTTP ${status} without a usable expires_in`);
    }
    return {
      kind: "refreshed",
      accessToken,
      expiresIn,
      // Always present per the contract; if it ever is not, the stored token is kept.
      refreshToken: str(body.refresh_token) ?? null,
      scope: str(body.scope) ?? null,
      refreshExpiresIn: seconds(body.refresh_expires_in) ?? null,
    };
  }

  const description = str(body.error_description) ?? (nested ? str(nested.message) : undefined);
  const logId = str(body.log_id);
  const label = (error ? (description ? `${error}: ${description}` : error) : `HTTP ${status}`) +
    (logId ? ` (log_id ${logId})` : "");

  if (error === "invalid_client" || error === "unauthorized_client" || (status === 401 && error === undefined)) {
    return {
      kind: "misconfigured",
      error: `TikTok rejected the app credentials (${label}); check the TIKTOK_CLIENT_KEY and ` +
        `TIKTOK_CLIENT_SECRET function secrets`,
    };
  }
  if (status === 429 || status === 408 || status >= 500 || (error !== undefined && TRANSIENT_ERRORS.has(error))) {
    return transientFailure(`HTTP ${status}: ${label}`, parseRetryAfter(res.headers.get("retry-after"), nowMs));
  }
  if (error === "invalid_grant" || error === "access_denied") {
    // invalid_grant: refresh token expired, revoked, already rotated or for another app.
    return permanentFailure(label, true);
  }
  if (status >= 200 && status < 300 && error === undefined) {
    return transientFailure(`unexpected response: HTTP ${status} without access_token`);
  }
  return permanentFailure(`HTTP ${status}: ${label}`, false);
}

/** Registry entry: the client configured from function secrets, or how to configure it. */
export const tiktokProvider: ProviderFactory = (ctx) => {
  const secrets = requireSecrets(ctx.env, ["TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET"]);
  if (!secrets.ok) return secrets;
  const { TIKTOK_CLIENT_KEY: clientKey, TIKTOK_CLIENT_SECRET: clientSecret } = secrets.values;
  return {
    ok: true,
    secrets: [clientSecret],
    refresher: createTikTokClient({
      clientKey,
      clientSecret,
      baseUrl: envValue(ctx.env, "TIKTOK_BASE_URL"),
      fetch: ctx.fetch,
      timeoutMs: ctx.timeoutMs,
      now: ctx.now,
    }),
  };
};
