// Who may run a job over HTTP: a caller with one of the project's secret keys (`apikey` or
// `Authorization: Bearer`, _shared/auth.ts), or an outside scheduler with CRON_SECRET
// (`x-cron-secret: <secret>` or `Authorization: Bearer <secret>`, the form Vercel Cron sends).
// Only headers are read; every comparison is constant-time (safeEqual hashes both sides).
//
// CRON_SECRET is honoured only when it is at least 32 characters long: a shorter one is
// ignored, with one configuration warning that never carries the value.

import { acceptedServiceKeys, anyMatches, bearerToken, isAuthorized } from "../_shared/auth.ts";
import { type Env, envValue } from "../_shared/env.ts";

export const CRON_SECRET_SETTING = "CRON_SECRET";
export const CRON_SECRET_HEADER = "x-cron-secret";
export const MIN_CRON_SECRET_LENGTH = 32;

/** The usable CRON_SECRET, or why there is none (`short`: set, but too short to be honoured). */
export function configuredCronSecret(env: Env): { secret: string } | { secret: null; short: boolean } {
  const secret = envValue(env, CRON_SECRET_SETTING);
  if (secret === undefined) return { secret: null, short: false };
  if (secret.length < MIN_CRON_SECRET_LENGTH) return { secret: null, short: true };
  return { secret };
}

export const SHORT_CRON_SECRET_WARNING = `run-job: configuration warning: ${CRON_SECRET_SETTING} is shorter than ` +
  `${MIN_CRON_SECRET_LENGTH} characters and is ignored; only the project's secret keys are accepted ` +
  `(generate one with: openssl rand -hex 32)`;

/** Values the request offers as CRON_SECRET: the x-cron-secret header and a Bearer token. */
function presentedCronSecrets(req: Request): string[] {
  const out: string[] = [];
  const header = req.headers.get(CRON_SECRET_HEADER)?.trim();
  if (header) out.push(header);
  const bearer = bearerToken(req);
  if (bearer) out.push(bearer);
  return out;
}

export type Caller = "secret_key" | "cron_secret";

/** Which credential the request carries, or null. `warnShort` runs when a short CRON_SECRET is set. */
export function authorize(req: Request, env: Env, warnShort: () => void): Caller | null {
  const cron = configuredCronSecret(env);
  if (cron.secret === null && cron.short) warnShort();
  // Both checks always run, so the time taken does not say which credential was tried.
  const byKey = isAuthorized(req, acceptedServiceKeys(env));
  const byCron = cron.secret !== null && anyMatches(presentedCronSecrets(req), [cron.secret]);
  return byKey ? "secret_key" : byCron ? "cron_secret" : null;
}

export function unauthorizedResponse(): Response {
  return Response.json({
    error: "unauthorized",
    message: "a secret key (apikey or Authorization: Bearer) or CRON_SECRET (x-cron-secret or Authorization: Bearer) is required",
  }, { status: 401 });
}

/** Every configured secret, to scrub from log lines. */
export function configuredSecrets(env: Env): string[] {
  return [...acceptedServiceKeys(env), envValue(env, CRON_SECRET_SETTING) ?? ""].filter((s) => s !== "");
}
