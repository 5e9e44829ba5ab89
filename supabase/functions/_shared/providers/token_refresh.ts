// What every OAuth provider client offers the refresh-token function. Adding a platform means
// one client file implementing TokenRefresher plus one ProviderFactory entry in the function's
// registry (refresh-token/providers.ts); the handler stays unchanged.

import { type Env, envValue } from "../env.ts";
import type { FetchFn } from "../http.ts";

export type RefreshResult =
  | {
    kind: "refreshed";
    accessToken: string;
    /** Seconds until the new access token expires. */
    expiresIn: number;
    /** Only when the provider returned (rotated) one; null keeps the stored token. */
    refreshToken: string | null;
    scope: string | null;
    /**
     * Seconds the refresh token stays usable, when the provider says (TikTok's
     * refresh_expires_in); null or absent = unknown / does not expire on a clock we know.
     */
    refreshExpiresIn?: number | null;
  }
  | {
    kind: "failed";
    /** Safe to store and return: never contains tokens or client secrets. */
    error: string;
    permanent: boolean;
    needsReauth: boolean;
    retryAfterSeconds: number | null;
  }
  | {
    /** The provider rejected our client credentials: not this token's fault. */
    kind: "misconfigured";
    error: string;
  };

export interface TokenRefresher {
  /** Never throws: every failure is a RefreshResult. */
  refresh(refreshToken: string): Promise<RefreshResult>;
}

export interface ProviderContext {
  env: Env;
  fetch: FetchFn;
  timeoutMs: number;
  now: () => number;
}

export type ProviderSetup =
  | {
    ok: true;
    refresher: TokenRefresher;
    /** Configured secrets (client secret…) to scrub from any error text, defensively. */
    secrets: string[];
  }
  | {
    /** No call is possible (e.g. a function secret is missing); says how to fix it. */
    ok: false;
    configError: string;
  };

export type ProviderFactory = (ctx: ProviderContext) => ProviderSetup;

export function transientFailure(error: string, retryAfterSeconds: number | null = null): RefreshResult {
  return { kind: "failed", error, permanent: false, needsReauth: false, retryAfterSeconds };
}

export function permanentFailure(error: string, needsReauth: boolean): RefreshResult {
  return { kind: "failed", error, permanent: true, needsReauth, retryAfterSeconds: null };
}

/**
 * The named function secrets, or the configuration error naming the missing ones and how to set
 * them (a ProviderSetup with ok: false).
 */
export function requireSecrets<N extends string>(
  env: Env,
  names: readonly N[],
): { ok: true; values: Record<N, string> } | { ok: false; configError: string } {
  const values = {} as Record<N, string>;
  const missing: N[] = [];
  for (const name of names) {
    const value = envValue(env, name);
    if (value) values[name] = value;
    else missing.push(name);
  }
  if (missing.length === 0) return { ok: true, values };
  const verb = missing.length > 1 ? "are" : "is";
  return {
    ok: false,
    configError: `${missing.join(" and ")} ${verb} not set (supabase secrets set ${missing.map((m) => `${m}=…`).join(" ")})`,
  };
}
