// TikTok token refresh (job tiktok-token-refresh): access tokens due within the job's margin
// refreshed at the fake TikTok. TikTok rotates the refresh token on every use, so a refresh whose
// answer is lost after TikTok made it (a reset `after: true`, a crash between TikTok's 200 and the
// write) leaves the account holding a dead token: its retry is invalid_grant and the account
// becomes needs_reauth. That loss is documented (docs/jobs.md "What a crash can cost"): such an
// account counts as dead, with its reason in last_error, not as lost. A repeated refresh makes no
// user-visible effect (another access token), so extra successful refreshes are calls, not
// duplicates.
import { startClean } from "../engine.ts";
import { providerState, seedProvider } from "../sandbox.ts";
import type { Ctx, EffectCount, Workload } from "../types.ts";

const JOB = "tiktok-token-refresh";
const LATENCY_MS = 50;

const prefixOf = (ctx: Ctx) => `chaos-${ctx.run}-tt`;
/** The i-th account's first refresh token: the id of its grant's chain at the fake (0-based). */
const chainOf = (ctx: Ctx, i: number) => `rft.${prefixOf(ctx)}-${i}`;

export const tiktok: Workload = {
  name: "TikTok token refresh (rotating refresh tokens)",
  jobs: [JOB],
  providers: ["tiktok"],

  async seed(ctx, items) {
    const sql = ctx.sql();
    // Earlier runs' accounts drop out of the job.
    await sql`update public.social_accounts set status = 'inactive' where platform = 'tiktok' and status = 'active'`;
    await startClean(sql, this.jobs);
    const prefix = prefixOf(ctx);
    const chains = Array.from({ length: items }, (_, i) => chainOf(ctx, i));
    await seedProvider(ctx.info, "tiktok", {
      latency_ms: LATENCY_MS,
      refresh_tokens: chains.map((refresh_token, i) => ({ refresh_token, open_id: `${prefix}-open-${i}`, status: "active" })),
    });
    // Due: the access token expires within the job's margin (780 min); never refreshed.
    await sql`
      insert into public.social_accounts
        (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at)
      select ${prefix} || '-' || lpad(i::text, 5, '0'), 'tiktok', 'act.stale-' || i, t, now() + interval '1 hour'
        from unnest(${chains}::text[]) with ordinality as x (t, i)`;
  },

  async start(ctx) {
    await ctx.sql()`select jobs.run_now(${JOB})`;
  },

  async counts(ctx) {
    const [r] = await ctx.sql()`
      select count(*)::int as total,
             count(*) filter (where refresh_count >= 1 and status = 'active')::int as done,
             count(*) filter (where status = 'needs_reauth' and last_error is not null)::int as dead
        from public.social_accounts
       where platform = 'tiktok' and creator_unique_identifier like ${prefixOf(ctx) + "-%"}`;
    return { total: r.total, done: r.done, dead: r.dead };
  },

  async effects(ctx): Promise<EffectCount[]> {
    const state = await providerState<{ chains: { chain_id: string; refresh_count: number }[] }>(ctx.info, "tiktok");
    const mine = state.chains.filter((c) => c.chain_id.startsWith(`rft.${prefixOf(ctx)}-`));
    const counts = new Map(mine.map((c) => [c.chain_id, c.refresh_count]));
    // The account's refresh_token has rotated since; its chain is the token it was seeded with:
    // creator <prefix>-00001 holds chain 0.
    const done = await ctx.sql()`
      select creator_unique_identifier as name from public.social_accounts
       where platform = 'tiktok' and creator_unique_identifier like ${prefixOf(ctx) + "-%"}
         and refresh_count >= 1 and status = 'active'`;
    const indexOf = (name: string) => Number(name.slice(name.lastIndexOf("-") + 1)) - 1;
    const missing = done.filter((r) => !counts.get(chainOf(ctx, indexOf(r.name as string)))).length;
    const repeated = mine.reduce((s, c) => s + Math.max(0, c.refresh_count - 1), 0);
    return [{ provider: "tiktok", keyed: false, duplicates: 0, missing, repeatedCalls: repeated }];
  },
};
