// Crashes in the middle of a drain: Postgres stopped with `pg_ctl stop -m immediate` (pg_net's
// UNLOGGED queue and responses are lost, its ids start again at 1), the functions server SIGKILLed.
// Every due token must be refreshed, no task charged for another request's answer, recovery fast.
// Each test prints what the crash cost in duplicate provider calls (delivery is at least once).
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { killFunctionsServer, killFunctionWorkers, stopPostgresImmediately } from "../support/processes";
import { db, eventually, providerState, retrying, seedProvider, stackInfo } from "../support/stack";
import { insertTikTokAccounts, TIKTOK_JOB } from "../support/tiktok";
import {
  clearSandbox,
  googleRefreshCounts,
  insertExpiredAccounts,
  isolateJob,
  JOB as YOUTUBE_JOB,
  seedGoogleRefreshTokens,
  uniquePrefix,
} from "../support/youtube";

const info = stackInfo();
let sql = db(info);

const setLatency = (provider: "google_oauth" | "tiktok", ms: number) =>
  retrying(`${provider} latency`, () => seedProvider(info, provider, { latency_ms: ms }), 30_000);

async function refreshedCount(prefix: string): Promise<number> {
  const [{ n }] = await sql`select count(*)::int as n from public.social_accounts
                             where creator_unique_identifier like ${prefix + "-%"} and refresh_count >= 1`;
  return n;
}

async function youtubeBacklog(n: number) {
  const prefix = uniquePrefix("crash");
  const tokens = Array.from({ length: n }, (_, i) => `1//${prefix}-rt-${i}`);
  await seedGoogleRefreshTokens(info, tokens);
  await insertExpiredAccounts(sql, prefix, tokens);
  return { prefix, tokens };
}

/** Provider calls beyond one per token (the crash's at-least-once cost). */
async function duplicateGoogleCalls(tokens: string[]): Promise<number> {
  const counts = await googleRefreshCounts(info, tokens);
  expect(counts.size).toBe(tokens.length);
  return [...counts.values()].reduce((sum, c) => sum + Math.max(0, c - 1), 0);
}

/** Tasks of the drain that were charged or failed for an answer that was not theirs. */
async function wronglyCharged(prefix: string) {
  return await sql<{ key: string; attempts: number; last_error: string }[]>`
    select t.key, t.attempts, t.last_error from jobs.task t
      join public.social_accounts a on a.id::text = t.key
     where t.job_name = ${YOUTUBE_JOB} and a.creator_unique_identifier like ${prefix + "-%"}
       and (t.last_error like '%without reporting%' or t.state <> 'succeeded')`;
}

beforeEach(async () => {
  await isolateJob(sql, YOUTUBE_JOB, "youtube");
  await isolateJob(sql, TIKTOK_JOB, "tiktok");
  await clearSandbox(info);
});

afterEach(async () => {
  await setLatency("google_oauth", 0);
  await setLatency("tiktok", 0);
});

afterAll(async () => {
  await sql.end();
});

describe("Postgres stopped with -m immediate mid-drain", () => {
  it("refreshes every token, charges no task for another request's answer, and is done within 30 s of Postgres being back", async () => {
    await setLatency("google_oauth", 100);
    const { prefix, tokens } = await youtubeBacklog(1_000);
    await sql`select public.refresh_expired_youtube_tokens()`;
    await eventually(async () => (await refreshedCount(prefix)) >= 250, "a quarter of the drain", 30_000);

    const [{ inflight }] = await sql`select count(*)::int as inflight from jobs.task where job_name = ${YOUTUBE_JOB} and state = 'running'`;
    stopPostgresImmediately(info);
    await sql.end({ timeout: 0 }).catch(() => {});
    sql = db(info);
    await retrying("a new connection", () => sql`select 1`, 30_000);
    const back = Date.now();

    // pg_net's ids start again at 1: unrelated requests now take the ids the old batches had.
    await sql`select net.http_get(${`${info.sandbox_url}/__requests?provider=none`}) from generate_series(1, 300)`;

    await eventually(async () => (await refreshedCount(prefix)) === 1_000, "all 1,000 tokens refreshed", 60_000);
    const recovery = (Date.now() - back) / 1000;
    await eventually(async () => (await wronglyCharged(prefix)).length === 0 && true, "every task succeeded", 10_000)
      .catch(async () => expect(await wronglyCharged(prefix)).toEqual([]));
    const duplicates = await duplicateGoogleCalls(tokens);
    console.log(`postgres crash at 25 %: done ${recovery.toFixed(1)} s after Postgres was back; ` +
      `${duplicates} duplicate Google calls (${inflight} tasks were running at the crash)`);
    expect(recovery).toBeLessThan(30);
    expect(duplicates).toBeLessThanOrEqual(inflight);
  }, 120_000);

  it("TikTok: rotated tokens whose write the crash lost cost their accounts a sign-in; the rest refresh", async () => {
    await setLatency("tiktok", 100);
    const prefix = uniquePrefix("tt-crash");
    await insertTikTokAccounts(info, sql, prefix, 300);
    await sql`select public.refresh_expired_tiktok_tokens()`;
    await eventually(async () => (await refreshedCount(prefix)) >= 75, "a quarter of the TikTok drain", 30_000);
    stopPostgresImmediately(info);
    await sql.end({ timeout: 0 }).catch(() => {});
    sql = db(info);
    await retrying("a new connection", () => sql`select 1`, 30_000);

    const settled = await eventually(async () => {
      const rows = await sql<{ status: string; refresh_count: number }[]>`
        select status, refresh_count from public.social_accounts where creator_unique_identifier like ${prefix + "-%"}`;
      const open = await sql`select 1 from jobs.task t join public.social_accounts a on a.id::text = t.key
                              where t.job_name = ${TIKTOK_JOB} and a.creator_unique_identifier like ${prefix + "-%"}
                                and t.state in ('queued', 'running') limit 1`;
      return open.length === 0 && rows;
    }, "every TikTok task to finish", 90_000);
    const lost = settled.filter((r) => r.status === "needs_reauth").length;
    const refreshed = settled.filter((r) => r.status === "active" && r.refresh_count >= 1).length;
    const chains = await providerState<{ chains: { open_id: string; refresh_count: number }[] }>(info, "tiktok");
    const calls = chains.chains.filter((c) => c.open_id.startsWith(`${prefix}-open-`)).reduce((s, c) => s + c.refresh_count, 0);
    console.log(`tiktok postgres crash at 25 %: ${refreshed} refreshed, ${lost} accounts need a new sign-in, ` +
      `${calls} successful TikTok refreshes for 300 accounts`);
    expect(refreshed + lost).toBe(300);
  }, 150_000);
});

describe("functions killed mid-drain", () => {
  it("the functions server SIGKILLed at 30 %: done within 45 s of the kill, nothing lost", async () => {
    await setLatency("google_oauth", 100);
    const { prefix, tokens } = await youtubeBacklog(1_000);
    await sql`select public.refresh_expired_youtube_tokens()`;
    await eventually(async () => (await refreshedCount(prefix)) >= 300, "30 % of the drain", 30_000);
    const [{ inflight }] = await sql`select count(*)::int as inflight from jobs.task where job_name = ${YOUTUBE_JOB} and state = 'running'`;
    killFunctionsServer(info);
    const killed = Date.now();

    await eventually(async () => (await refreshedCount(prefix)) === 1_000, "all 1,000 tokens refreshed", 60_000);
    const recovery = (Date.now() - killed) / 1000;
    const duplicates = await duplicateGoogleCalls(tokens);
    console.log(`functions server killed at 30 %: done ${recovery.toFixed(1)} s after the kill; ` +
      `${duplicates} duplicate Google calls (${inflight} tasks were running at the kill)`);
    expect(recovery).toBeLessThan(45);
    expect(duplicates).toBeLessThanOrEqual(inflight);
    expect(await wronglyCharged(prefix)).toEqual([]);
  }, 120_000);

  it("TikTok: a functions server killed mid-drain costs at most the accounts whose refresh was at TikTok", async () => {
    await setLatency("tiktok", 100);
    const prefix = uniquePrefix("tt-kill");
    await insertTikTokAccounts(info, sql, prefix, 300);
    await sql`select public.refresh_expired_tiktok_tokens()`;
    await eventually(async () => (await refreshedCount(prefix)) >= 90, "30 % of the TikTok drain", 30_000);
    const [{ inflight }] = await sql`select count(*)::int as inflight from jobs.task where job_name = ${TIKTOK_JOB} and state = 'running'`;
    killFunctionsServer(info);
    const settled = await eventually(async () => {
      const open = await sql`select 1 from jobs.task t join public.social_accounts a on a.id::text = t.key
                              where t.job_name = ${TIKTOK_JOB} and a.creator_unique_identifier like ${prefix + "-%"}
                                and t.state in ('queued', 'running') limit 1`;
      if (open.length > 0) return false;
      return await sql<{ status: string; refresh_count: number }[]>`
        select status, refresh_count from public.social_accounts where creator_unique_identifier like ${prefix + "-%"}`;
    }, "every TikTok task to finish", 90_000);
    const lost = settled.filter((r) => r.status === "needs_reauth").length;
    console.log(`tiktok functions server killed at 30 %: ${300 - lost} refreshed, ${lost} accounts need a new sign-in ` +
      `(${inflight} tasks were running at the kill)`);
    expect(settled.filter((r) => r.status === "active" && r.refresh_count >= 1).length + lost).toBe(300);
    expect(lost).toBeLessThanOrEqual(inflight);
  }, 150_000);

  it("a function worker killed mid-batch: its tasks come back by the heartbeat alone within 45 s", async () => {
    // Google answers only after 5 s, so the function is mid-batch when it dies.
    const { prefix } = await youtubeBacklog(10);
    await setLatency("google_oauth", 5_000);
    await sql`select public.refresh_expired_youtube_tokens()`;
    await eventually(async () => {
      const [{ n }] = await sql`select count(*)::int as n from jobs.batch where job_name = ${YOUTUBE_JOB}
                                 and settled_at is null and accepted_at is not null`;
      return n === 1;
    }, "the batch to be accepted");
    await new Promise((r) => setTimeout(r, 500));
    expect(killFunctionWorkers(info, "refresh-token").length).toBeGreaterThan(0);
    const killed = Date.now();
    await setLatency("google_oauth", 0);

    // No manual tick: pg_cron's heartbeat (every 10 s) reaps the expired leases and dispatches again.
    await eventually(async () => (await refreshedCount(prefix)) === 10, "the 10 tokens refreshed after the kill", 60_000);
    const redelivered = (Date.now() - killed) / 1000;
    console.log(`function worker killed mid-batch: redelivered and refreshed ${redelivered.toFixed(1)} s after the kill`);
    expect(redelivered).toBeLessThan(45);
  }, 90_000);
});
