// Service-to-service auth for job functions (verify_jwt = false) called by a person or a script
// rather than by pg_net (whose batches carry a single-use batch token, checked by
// jobs.accept_batch): the caller must present one of the project's secret keys, in `apikey` or in
// `Authorization: Bearer <key>`. Keys are compared as SHA-256 digests with timingSafeEqual, so
// neither the comparison time nor the key length leaks through timing.

import { createHash, timingSafeEqual } from "node:crypto";
import type { Env } from "./env.ts";

/**
 * Every accepted key: each value of SUPABASE_SECRET_KEYS (a JSON object name → key, as the
 * platform provides it) plus SUPABASE_SERVICE_ROLE_KEY when set. Malformed JSON is ignored.
 */
export function acceptedServiceKeys(env: Env): string[] {
  const keys: string[] = [];
  const secretKeys = env("SUPABASE_SECRET_KEYS");
  if (secretKeys) {
    try {
      const parsed: unknown = JSON.parse(secretKeys);
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
        for (const value of Object.values(parsed)) {
          if (typeof value === "string" && value.length > 0) keys.push(value);
        }
      }
    } catch {
      // A malformed value accepts nothing; the service role key below may still be set.
    }
  }
  const serviceRole = env("SUPABASE_SERVICE_ROLE_KEY");
  if (serviceRole) keys.push(serviceRole);
  return keys;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(req: Request): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization")?.trim() ?? "");
  return match ? match[1].trim() : undefined;
}

/** Keys the request presents: the `apikey` header and/or an `Authorization: Bearer` token. */
export function presentedKeys(req: Request): string[] {
  const out: string[] = [];
  const apikey = req.headers.get("apikey")?.trim();
  if (apikey) out.push(apikey);
  const bearer = bearerToken(req);
  if (bearer) out.push(bearer);
  return out;
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** a === b in constant time: both are hashed first, so neither the position of the first
 * difference nor a difference in length shows in the time taken. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** True when any presented value equals any accepted one (every pair compared, no early exit). */
export function anyMatches(presented: readonly string[], accepted: readonly string[]): boolean {
  let ok = false;
  for (const p of presented) {
    for (const a of accepted) {
      ok = safeEqual(p, a) || ok;
    }
  }
  return ok;
}

/** True when any presented key equals any accepted key (every pair compared, no early exit). */
export function isAuthorized(req: Request, acceptedKeys: readonly string[]): boolean {
  return anyMatches(presentedKeys(req), acceptedKeys);
}

export function unauthorizedResponse(): Response {
  return Response.json(
    {
      error: "unauthorized",
      message: "a valid secret key is required in the apikey header or as Authorization: Bearer",
    },
    { status: 401 },
  );
}
