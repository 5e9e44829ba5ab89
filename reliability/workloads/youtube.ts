// YouTube token refresh (the token jobs): expired access tokens refreshed at the fake Google. A
// refresh grant has no idempotency key and needs none: repeating it mints another access token
// and changes nothing else, so repeats are counted as calls, not as duplicated effects.
import { startClean } from "../engine.ts";
import { providerState, seedProvider } from "../sandbox.ts";
import type { Ctx, EffectCount, Workload } from "../types.ts";

const JOB = "youtube-token-refresh";
const LATENCY_MS = 50;

const prefixOf = (ctx: Ctx) => `chaos-${ctx.run}-yt`;
let tokens: string[] = [];

export const youtube: Workload = {
  name: "YouTube token refresh (Google OAuth)",
  jobs: [JOB],
  providers: ["google_oauth"],

  async seed(ctx, items) {
    const sql = ctx.sql();
    // Earlier runs' accounts drop out of the job.
    await sql`update public.social_accounts set status = 'inactive' where platform = 'youtube' and status = 'active'`;
    await startClean(sql, this.jobs);
    const prefix = prefixOf(ctx);
    tokens = Array.from({ length: items }, (_, i) => `1//${prefix}-rt-${i}`);
    await seedProvider(ctx.info, "google_oauth", {
      latency_ms: LATENCY_MS,
      refresh_tokens: tokens.map((refresh_token) => ({ refresh_token, status: "active" })),
    });
    await sql`
      insert into public.social_accounts
        (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at)
      select ${prefix} || '-' || i, 'youtube', 'ya29.expired-' || i, t, now() - interval '1 hour'
        from unnest(${tokens}::text[]) with ordinality as x (t, i)`;
  },

  async start(ctx) {
    await ctx.sql()`select jobs.run_now(${JOB})`;
  },

  async counts(ctx) {
    const [r] = await ctx.sql()`
      select count(*)::int as total,
             count(*) filter (where refresh_count >= 1)::int as done,
             count(*) filter (where refresh_count = 0 and status = 'needs_reauth' and last_error is not null)::int as dead
        from public.social_accounts where platform = 'youtube' and creator_unique_identifier like ${prefixOf(ctx) + "-%"}`;
    return { total: r.total, done: r.done, dead: r.dead };
  },

  async effects(ctx): Promise<EffectCount[]> {
    const state = await providerState<{ refresh_tokens: { refresh_token: string; refresh_count: number }[] }>(ctx.info, "google_oauth");
    const counts = new Map(state.refresh_tokens.map((t) => [t.refresh_token, t.refresh_count]));
    const done = await ctx.sql()`
      select refresh_token from public.social_accounts
       where platform = 'youtube' and creator_unique_identifier like ${prefixOf(ctx) + "-%"} and refresh_count >= 1`;
    const missing = done.filter((r) => !counts.get(r.refresh_token)).length;
    const repeated = tokens.reduce((s, t) => s + Math.max(0, (counts.get(t) ?? 0) - 1), 0);
    return [{ provider: "google_oauth", keyed: false, duplicates: 0, missing, repeatedCalls: repeated }];
  },
};
