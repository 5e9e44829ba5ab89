// Instagram and TikTok token refresh through the whole stack: refresh_expired_*_tokens() →
// jobs.tick → pg_net → refresh-token Edge Function → the sandbox's fake Instagram Graph / TikTok →
// grouped SQL outcome calls. Rotation (TikTok), needs_reauth and single flight under overlap.
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { db, eventually, providerState as sharedProviderState, sandboxRequests, seedProvider, stackInfo } from "../support/stack";
import { insertTikTokAccounts } from "../support/tiktok";
import { clearSandbox, isolateJob, uniquePrefix } from "../support/youtube";

const info = stackInfo();
const sql = db(info);

const seed = (provider: "tiktok" | "instagram_graph", body: unknown) => seedProvider(info, provider, body);
const providerState = <T>(provider: string) => sharedProviderState<T>(info, provider);

async function tick(fn: "refresh_expired_tiktok_tokens" | "refresh_expired_instagram_tokens") {
  const [{ r }] = await sql.unsafe(`select public.${fn}() as r`);
  return r as { discovered: number; claimed: number; error: string | null };
}

async function accounts(prefix: string) {
  return await sql<{
    creator_unique_identifier: string;
    status: string;
    access_token: string | null;
    refresh_token: string | null;
    access_token_expires_at: Date | null;
    refresh_token_expires_at: Date | null;
    refresh_count: number;
    last_error: string | null;
  }[]>`
    select creator_unique_identifier, status, access_token, refresh_token, access_token_expires_at,
           refresh_token_expires_at, refresh_count, last_error
      from public.social_accounts
     where creator_unique_identifier like ${prefix + "-%"}
     order by creator_unique_identifier`;
}

async function tasks(job: string, prefix: string) {
  return await sql<{ state: string; attempts: number; last_error: string | null }[]>`
    select t.state, t.attempts, t.last_error
      from jobs.task t join public.social_accounts a on a.id::text = t.key
     where t.job_name = ${job} and a.creator_unique_identifier like ${prefix + "-%"}
     order by a.creator_unique_identifier`;
}

interface TikTokChain {
  open_id: string;
  refresh_count: number;
  current_refresh_token: string;
}
interface TikTokToken {
  refresh_token: string;
  status: string;
}

afterAll(async () => {
  await isolateJob(sql, "tiktok-token-refresh", "tiktok");
  await isolateJob(sql, "instagram-token-refresh", "instagram");
  await sql.end();
});

describe("refresh_expired_tiktok_tokens()", () => {
  const JOB = "tiktok-token-refresh";
  beforeEach(async () => {
    await isolateJob(sql, JOB, "tiktok");
    await clearSandbox(info);
  });

  const tiktokAccounts = (prefix: string, n: number, status: "active" | "revoked" = "active") =>
    insertTikTokAccounts(info, sql, prefix, n, status);

  it("stores the rotated refresh token with the new access token, and the next refresh uses it", async () => {
    const prefix = uniquePrefix("tt-rot");
    const tokens = await tiktokAccounts(prefix, 3);
    const first = await tick("refresh_expired_tiktok_tokens");
    expect(first.error).toBeNull();
    expect(first.discovered).toBe(3);

    const rows = await eventually(async () => {
      const rs = await accounts(prefix);
      return rs.every((r) => r.refresh_count === 1) && rs;
    }, "3 TikTok accounts refreshed");
    const state = await providerState<{ refresh_tokens: TikTokToken[]; chains: TikTokChain[] }>("tiktok");
    for (const [i, row] of rows.entries()) {
      const chain = state.chains.find((c) => c.open_id === `${prefix}-open-${i}`)!;
      expect(row.status).toBe("active");
      expect(row.refresh_token).not.toBe(tokens[i]);
      expect(row.refresh_token).toBe(chain.current_refresh_token);
      expect(chain.refresh_count).toBe(1);
      expect(state.refresh_tokens.find((t) => t.refresh_token === tokens[i])?.status).toBe("rotated");
      expect(row.access_token).not.toMatch(/^act\.stale/);
      expect(row.refresh_token_expires_at!.getTime()).toBeGreaterThan(Date.now() + 24 * 3600_000);
    }

    // A manual run right after finds nothing due: refreshed within the last hour.
    expect((await tick("refresh_expired_tiktok_tokens")).discovered).toBe(0);

    // Twelve hours later: the refresh that follows presents the stored (rotated) token and succeeds.
    await sql`update public.social_accounts
                 set access_token_expires_at = now() - interval '1 minute', last_refreshed_at = now() - interval '12 hours'
               where creator_unique_identifier like ${prefix + "-%"}`;
    await tick("refresh_expired_tiktok_tokens");
    const again = await eventually(async () => {
      const rs = await accounts(prefix);
      return rs.every((r) => r.refresh_count === 2) && rs;
    }, "the second refresh with the rotated tokens");
    expect(again.every((r) => r.status === "active" && r.last_error === null)).toBe(true);
    const after = await providerState<{ chains: TikTokChain[] }>("tiktok");
    for (const [i, row] of again.entries()) {
      const chain = after.chains.find((c) => c.open_id === `${prefix}-open-${i}`)!;
      expect(chain.refresh_count).toBe(2);
      expect(row.refresh_token).toBe(chain.current_refresh_token);
    }
  });

  it("a revoked refresh token marks the account needs_reauth with no retries", async () => {
    const prefix = uniquePrefix("tt-rev");
    await tiktokAccounts(prefix, 1, "revoked");
    await tick("refresh_expired_tiktok_tokens");
    const [row] = await eventually(async () => {
      const rs = await accounts(prefix);
      return rs[0]?.status === "needs_reauth" && rs;
    }, "the revoked account marked needs_reauth");
    expect(row.last_error).toMatch(/invalid_grant/);
    const [task] = await tasks(JOB, prefix);
    expect(task.state).toBe("dead");
    expect(task.attempts).toBe(1);
  });

  it("single flight: many overlapping runs refresh each token exactly once", async () => {
    const prefix = uniquePrefix("tt-overlap");
    await tiktokAccounts(prefix, 200);
    // Eight runs at once, then more runs keep overlapping the drain.
    const results = await Promise.all(Array.from({ length: 8 }, () => tick("refresh_expired_tiktok_tokens")));
    expect(results.reduce((n, r) => n + r.discovered, 0)).toBe(200);
    let draining = true;
    const tickers = [0, 1, 2].map(async () => {
      while (draining) await tick("refresh_expired_tiktok_tokens");
    });
    try {
      await eventually(async () => {
        const rs = await accounts(prefix);
        return rs.every((r) => r.refresh_count >= 1);
      }, "200 TikTok accounts refreshed", 60_000);
    } finally {
      draining = false;
      await Promise.all(tickers);
    }
    const rows = await accounts(prefix);
    // A second concurrent refresh would have presented an already-rotated token: invalid_grant.
    expect(rows.filter((r) => r.refresh_count !== 1 || r.status !== "active")).toEqual([]);
    const state = await providerState<{ chains: TikTokChain[] }>("tiktok");
    const chains = state.chains.filter((c) => c.open_id.startsWith(`${prefix}-open-`));
    expect(chains).toHaveLength(200);
    expect(chains.filter((c) => c.refresh_count !== 1)).toEqual([]);
    const requests = await sandboxRequests(info, { provider: "tiktok" });
    expect(requests.filter((r) => r.status !== 200)).toEqual([]);
  });
});

describe("refresh_expired_instagram_tokens()", () => {
  const JOB = "instagram-token-refresh";
  beforeEach(async () => {
    await isolateJob(sql, JOB, "instagram");
    await clearSandbox(info);
  });

  it("refreshes due long-lived tokens; revoked → needs_reauth; expired → needs_reauth without a call; fresh ones wait", async () => {
    const prefix = uniquePrefix("ig");
    const day = 86_400;
    const cases = [
      // name, token status at Instagram, age in days, expires in (days) as stored in our table
      { name: "due", status: "active", ageDays: 55, expiresInDays: 5 },
      { name: "revoked", status: "revoked", ageDays: 55, expiresInDays: 5 },
      { name: "expired", status: "active", ageDays: 61, expiresInDays: -1 },
      { name: "fresh", status: "active", ageDays: 2, expiresInDays: 58 },
    ];
    const idOf = (i: number) => `${1784150000000000 + Math.floor(Math.random() * 1e6) * 10 + i}`;
    const ids = cases.map((_, i) => idOf(i));
    const tokenOf = (name: string) => `IGAA${prefix}-${name}`;
    await seed("instagram_graph", {
      accounts: ids.map((ig_user_id) => ({ ig_user_id })),
      tokens: cases.map((c, i) => ({
        access_token: tokenOf(c.name),
        ig_user_id: ids[i],
        age_seconds: c.ageDays * day,
        status: c.status,
      })),
    });
    await sql`
      insert into public.social_accounts (creator_unique_identifier, platform, access_token, access_token_expires_at)
      select ${prefix} || '-' || c.name, 'instagram', c.token, now() + make_interval(days => c.days)
        from unnest(${cases.map((c) => c.name)}::text[], ${cases.map((c) => tokenOf(c.name))}::text[],
                    ${cases.map((c) => c.expiresInDays)}::int[]) as c (name, token, days)`;

    const run = await tick("refresh_expired_instagram_tokens");
    expect(run.error).toBeNull();
    expect(run.discovered).toBe(2); // due + revoked; expired is marked at once, fresh is not due

    const rows = await eventually(async () => {
      const rs = await accounts(prefix);
      const byName = new Map(rs.map((r) => [r.creator_unique_identifier.slice(prefix.length + 1), r]));
      return byName.get("due")?.refresh_count === 1 && byName.get("revoked")?.status === "needs_reauth" && byName;
    }, "the due token refreshed and the revoked one marked");

    const due = rows.get("due")!;
    expect(due.status).toBe("active");
    expect(due.access_token).not.toBe(tokenOf("due"));
    expect(due.access_token).toMatch(/^IGAA/);
    expect(due.refresh_token).toBeNull();
    expect(due.access_token_expires_at!.getTime()).toBeGreaterThan(Date.now() + 59 * day * 1000);

    expect(rows.get("revoked")!.last_error).toMatch(/190/);
    const expired = rows.get("expired")!;
    expect(expired.status).toBe("needs_reauth");
    expect(expired.last_error).toMatch(/expired/);
    expect(rows.get("fresh")!.status).toBe("active");
    expect(rows.get("fresh")!.refresh_count).toBe(0);

    const calls = await sandboxRequests(info, { provider: "instagram_graph", path: "/refresh_access_token" });
    expect(calls).toHaveLength(2); // the expired and the fresh token were never sent
    const t = await tasks(JOB, prefix);
    expect(t.map((x) => x.state).sort()).toEqual(["dead", "succeeded"]);
    expect(t.every((x) => x.attempts === 1)).toBe(true);
  });
});
