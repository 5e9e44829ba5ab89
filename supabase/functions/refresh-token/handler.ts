// refresh-token: refreshes the OAuth access token of each social account the engine dispatches
// (youtube-token-refresh, instagram-token-refresh, tiktok-token-refresh).
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt","payload":{"account_id"}}]}
//
// The job runner (_shared/job_runner.ts) does the front door, the leases, the slots with
// claim-ahead, the grouped outcome writes and the response. This file is only the provider
// mapping: the task's context (social.refresh_context, read under the lease: the platform and the
// stored refresh token, which the payload must never carry) goes to the platform's client
// (providers.ts), and its one answer becomes one outcome. The new tokens travel as the ok
// outcome's data to the jobs' SQL apply function (social_tokens migration), which stores them in
// the transaction that completes the task; the engine itself never stores data.
//
//   refreshed                 → ok (durable when the provider rotated the refresh token: the
//                               old one is already invalid, so that write is the only copy)
//   refused (invalid_grant…)  → dead, data.needs_reauth says whether the user must sign in again
//   transient (429, 5xx…)     → retry after the provider's Retry-After, else the job's backoff
//   unsupported platform      → dead; no refresh token stored → dead, needs re-auth
//   client misconfigured, a function secret missing → release: not the tasks' fault, no attempt
//                               used, the request stops claiming and answers 500
// Tokens and client secrets never appear in responses, stored errors or logs (secrets below).

import { z } from "npm:zod@4";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import { type JobFunction, type RunnerDeps, serveJob, type Task } from "../_shared/job_runner.ts";
import type { Outcome } from "../_shared/outcome.ts";
import type { ProviderContext, ProviderFactory, ProviderSetup } from "../_shared/providers/token_refresh.ts";
import { REFRESH_PROVIDERS } from "./providers.ts";

export const RefreshPayloadSchema = z.object({
  account_id: z.number().int().positive(),
});
export type RefreshPayload = z.output<typeof RefreshPayloadSchema>;

/** One row of social.refresh_context. */
export const RefreshContextSchema = z.object({
  account_id: z.number().int().positive(),
  platform: z.string(),
  /** For Instagram the long-lived access token (it is refreshed with itself). */
  refresh_token: z.string().nullable(),
});
export type RefreshContext = z.output<typeof RefreshContextSchema>;

export interface HandlerDeps extends RunnerDeps {
  fetch?: FetchFn;
  /** Provider call deadline; 10 s by default. */
  timeoutMs?: number;
  providers?: Readonly<Record<string, ProviderFactory>>;
}

/** Per request: each platform's client is set up once (undefined: platform not supported). */
type Setups = (platform: string) => ProviderSetup | undefined;

export function refreshTokenJob(deps: HandlerDeps): JobFunction<RefreshPayload, RefreshContext, Setups> {
  const providers = deps.providers ?? REFRESH_PROVIDERS;
  const ctx: ProviderContext = {
    env: deps.env,
    fetch: deps.fetch ?? fetch,
    timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    now: deps.now ?? Date.now,
  };

  return {
    name: "refresh-token",
    payload: RefreshPayloadSchema,
    context: RefreshContextSchema,
    session() {
      const setups = new Map<string, ProviderSetup | undefined>();
      return (platform) => {
        if (!setups.has(platform)) {
          setups.set(platform, Object.hasOwn(providers, platform) ? providers[platform](ctx) : undefined);
        }
        return setups.get(platform);
      };
    },
    secrets: ({ context }, setupFor) => {
      const setup = setupFor(context.platform);
      return [context.refresh_token, ...(setup?.ok ? setup.secrets : [])];
    },
    perform,
  };

  async function perform({ context }: Task<RefreshPayload, RefreshContext>, setupFor: Setups): Promise<Outcome> {
    const setup = setupFor(context.platform);
    if (setup === undefined) {
      return { outcome: "dead", error: `unsupported platform: ${context.platform}`, data: { needs_reauth: false } };
    }
    if (!setup.ok) return { outcome: "release", error: setup.configError };
    if (!context.refresh_token) {
      return { outcome: "dead", error: "no refresh token stored for this account", data: { needs_reauth: true } };
    }

    const result = await setup.refresher.refresh(context.refresh_token);
    switch (result.kind) {
      case "misconfigured":
        return { outcome: "release", error: result.error };
      case "failed":
        return result.permanent
          ? { outcome: "dead", error: result.error, data: { needs_reauth: result.needsReauth } }
          : { outcome: "retry", error: result.error, after: result.retryAfterSeconds, data: { needs_reauth: false } };
      case "refreshed":
        return {
          outcome: "ok",
          data: {
            access_token: result.accessToken,
            expires_in: result.expiresIn,
            refresh_token: result.refreshToken, // null: keep the stored one
            scope: result.scope,
            refresh_expires_in: result.refreshExpiresIn ?? null,
          },
          durable: result.refreshToken !== null,
        };
    }
  }
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  return serveJob(refreshTokenJob(deps), deps);
}
