// Google OAuth 2.0 refresh_token grant (YouTube accounts), per provider-contracts §1:
// POST {base}/token, form-encoded client_id, client_secret, grant_type=refresh_token,
// refresh_token (client_secret_post). Errors are RFC 6749 {"error","error_description"}.
// The request body (secret + refresh token) never appears in any error text.

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

export const GOOGLE_OAUTH_DEFAULT_BASE_URL = "https://oauth2.googleapis.com";

export interface GoogleOAuthOptions {
  clientId: string;
  clientSecret: string;
  baseUrl?: string;
  fetch?: FetchFn;
  timeoutMs?: number;
  now?: () => number;
}

export function createGoogleOAuthClient(opts: GoogleOAuthOptions): TokenRefresher {
  const baseUrl = (opts.baseUrl ?? GOOGLE_OAUTH_DEFAULT_BASE_URL).replace(/\/+$/, "");
  const fetchFn = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = opts.now ?? Date.now;

  return {
    async refresh(refreshToken: string): Promise<RefreshResult> {
      const body = new URLSearchParams({
        client_id: opts.clientId,
        client_secret: opts.clientSecret,
        grant_type: "refresh_token",
        refresh_token: refreshToken,
      });
      let res: HttpResult;
      try {
        res = await fetchText(fetchFn, `${baseUrl}/token`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
          body,
        }, timeoutMs);
      } catch (err) {
        if (err instanceof HttpTimeoutError) {
          return transientFailure(`timeout: Google did not answer within ${timeoutMs} ms`);
        }
        return transientFailure(`network error: ${err instanceof Error ? err.message : String(err)}`);
      }
      return interpretGoogleTokenResponse(res, now());
    },
  };
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** Maps a token endpoint answer to a RefreshResult (exported for tests). */
export function interpretGoogleTokenResponse(res: HttpResult, nowMs: number): RefreshResult {
  const parsed = parseJson(res.text);
  const body: Record<string, unknown> = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
    ? parsed as Record<string, unknown>
    : {};
  const status = res.status;

  if (status >= 200 && status < 300) {
    const accessToken = str(body.access_token);
    const expiresIn = typeof body.expires_in === "string" ? Number(body.expires_in) : body.expires_in;
    if (accessToken && typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0) {
      return {
        kind: "refreshed",
        accessToken,
        expiresIn: Math.floor(expiresIn),
        refreshToken: str(body.refresh_token) ?? null,
        scope: str(body.scope) ?? null,
        refreshExpiresIn: null, // Google does not report a refresh token lifetime
      };
    }
    return transientFailure(`unexpected response: HTTP ${status} without access_token and expires_in`);
  }

  const error = str(body.error);
  const description = str(body.error_description);
  const label = error ? (description ? `${error}: ${description}` : error) : `HTTP ${status}`;

  if (error === "invalid_client" || (status === 401 && error === undefined)) {
    return {
      kind: "misconfigured",
      error: `Google rejected the OAuth client (${label}); check the GOOGLE_CLIENT_ID and ` +
        `GOOGLE_CLIENT_SECRET function secrets`,
    };
  }
  if (status === 429 || status === 408 || status >= 500) {
    const retryAfter = parseRetryAfter(res.headers.get("retry-after"), nowMs);
    return transientFailure(error ? `HTTP ${status}: ${label}` : label, retryAfter);
  }
  if (error === "invalid_grant" || error === "unauthorized_client") {
    // invalid_grant: expired/revoked/deleted; unauthorized_client: minted for another client.
    // Either way only the account owner signing in again fixes it.
    return permanentFailure(label, true);
  }
  if (status >= 400 && status < 500) {
    return permanentFailure(error ? `HTTP ${status}: ${label}` : label, false);
  }
  return transientFailure(`unexpected response: HTTP ${status}`);
}

/** Registry entry: the client configured from function secrets, or how to configure it. */
export const googleOAuthProvider: ProviderFactory = (ctx) => {
  const secrets = requireSecrets(ctx.env, ["GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"]);
  if (!secrets.ok) return secrets;
  const { GOOGLE_CLIENT_ID: clientId, GOOGLE_CLIENT_SECRET: clientSecret } = secrets.values;
  return {
    ok: true,
    secrets: [clientSecret],
    refresher: createGoogleOAuthClient({
      clientId,
      clientSecret,
      baseUrl: envValue(ctx.env, "GOOGLE_OAUTH_BASE_URL"),
      fetch: ctx.fetch,
      timeoutMs: ctx.timeoutMs,
      now: ctx.now,
    }),
  };
};
