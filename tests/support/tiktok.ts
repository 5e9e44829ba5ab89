// Helpers for TikTok token-refresh end-to-end tests: provider state in the sandbox and expiring
// TikTok accounts in the database.
import type { Sql } from "postgres";
import type { StackInfo } from "./stack";

export const TIKTOK_JOB = "tiktok-token-refresh";

/** Replaces part of a sandbox provider's state (POST /__state/<provider>). */
export async function seedProvider(info: StackInfo, provider: string, body: unknown) {
  const res = await fetch(`${info.sandbox_url}/__state/${provider}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`seeding ${provider} → ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

export async function providerState<T>(info: StackInfo, provider: string): Promise<T> {
  const res = await fetch(`${info.sandbox_url}/__state/${provider}`);
  return ((await res.json()) as { state: T }).state;
}

/** n TikTok accounts `<prefix>-0001…` due for a refresh, with refresh tokens the fake TikTok knows. */
export async function insertTikTokAccounts(info: StackInfo, sql: Sql, prefix: string, n: number, status: "active" | "revoked" = "active") {
  const tokens = Array.from({ length: n }, (_, i) => `rft.${prefix}-${i}`);
  await seedProvider(info, "tiktok", {
    refresh_tokens: tokens.map((refresh_token, i) => ({ refresh_token, open_id: `${prefix}-open-${i}`, status })),
  });
  await sql`
    insert into public.social_accounts
      (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at)
    select ${prefix} || '-' || lpad(i::text, 4, '0'), 'tiktok', 'act.stale-' || i, t, now() + interval '1 hour'
      from unnest(${tokens}::text[]) with ordinality as x (t, i)`;
  return tokens;
}
