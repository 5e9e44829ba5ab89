// Helpers for TikTok token-refresh end-to-end tests: provider state in the sandbox and expiring
// TikTok accounts in the database.
import type { Sql } from "postgres";
import { seedProvider, type StackInfo } from "./stack";

export const TIKTOK_JOB = "tiktok-token-refresh";

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
