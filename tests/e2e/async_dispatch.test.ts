// Dispatch through pg_net's passes (the stand-in follows the real worker: a pass starts nothing
// new until every request of it has finished). Job functions accept a batch and answer 202 at
// once, so one job's slow backlog never holds another job's dispatch; and the requests pg_net
// queues carry only single-use batch tokens, never a reusable key.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { db, eventually, seedProvider, stackInfo } from "../support/stack";
import { insertTikTokAccounts, TIKTOK_JOB } from "../support/tiktok";
import {
  clearSandbox,
  insertExpiredAccounts,
  isolateJob,
  JOB as YOUTUBE_JOB,
  seedGoogleRefreshTokens,
  uniquePrefix,
} from "../support/youtube";

const info = stackInfo();
const sql = db(info);

const setGoogleLatency = (ms: number) => seedProvider(info, "google_oauth", { latency_ms: ms });

/** A YouTube backlog of n tokens draining against Google answering in 1 s. */
async function startSlowBacklog(n: number) {
  await setGoogleLatency(1_000);
  const prefix = uniquePrefix("slow");
  const tokens = Array.from({ length: n }, (_, i) => `1//${prefix}-rt-${i}`);
  await seedGoogleRefreshTokens(info, tokens);
  await insertExpiredAccounts(sql, prefix, tokens);
  await sql`select public.refresh_expired_youtube_tokens()`;
  // The drain is under way: its five batches were accepted and Google is being called.
  await eventually(async () => {
    const [{ n: accepted }] = await sql`
      select count(*)::int as n from jobs.batch where job_name = ${YOUTUBE_JOB} and settled_at is null and accepted_at is not null`;
    return accepted === 5;
  }, "the backlog's five batches to be accepted");
  return prefix;
}

/** Seconds from a batch's dispatch (its transaction) to the function accepting it. */
async function acceptDelay(batchId: number) {
  const [row] = await eventually(async () => {
    const rows = await sql<{ s: number }[]>`
      select extract(epoch from accepted_at - dispatched_at)::float8 as s from jobs.batch
       where id = ${batchId} and accepted_at is not null`;
    return rows.length > 0 && rows;
  }, `batch ${batchId} to be accepted`);
  return row.s;
}

afterEach(async () => {
  await setGoogleLatency(0);
  await isolateJob(sql, YOUTUBE_JOB, "youtube");
  await isolateJob(sql, TIKTOK_JOB, "tiktok");
  await clearSandbox(info);
});

afterAll(async () => {
  await sql.end();
});

describe("dispatch while another job's backlog drains against a slow provider", () => {
  it("another job's tick and the heartbeat's re-dispatch reach their function within pg_net's 1 s pause, not behind the backlog", async () => {
    await isolateJob(sql, YOUTUBE_JOB, "youtube");
    await isolateJob(sql, TIKTOK_JOB, "tiktok");
    await clearSandbox(info);
    const slow = await startSlowBacklog(400);

    const tt = uniquePrefix("tt-tick");
    await insertTikTokAccounts(info, sql, tt, 2);
    const [{ r: tick }] = await sql`select public.refresh_expired_tiktok_tokens() as r`;
    expect(tick.claimed).toBe(2);
    const [{ id: tickBatch }] = await sql`select id::int from jobs.batch where run_id = ${tick.run_id}`;
    const tickDelay = await acceptDelay(tickBatch);
    // Settled before the next task exists: a batch still at work claims due tasks into itself
    // (claim-ahead), which would carry the heartbeat's task in the tick's batch on a slow machine.
    await eventually(async () => (await sql`select settled_at from jobs.batch where id = ${tickBatch}`)[0]?.settled_at != null || null,
      "the tick's batch settled");

    // A task the heartbeat dispatches: discovered while the job was paused, then due.
    const hb = uniquePrefix("tt-hb");
    await insertTikTokAccounts(info, sql, hb, 1);
    await sql`update jobs.job set paused = true where name = ${TIKTOK_JOB}`;
    await sql`select public.refresh_expired_tiktok_tokens()`;
    await sql`update jobs.job set paused = false where name = ${TIKTOK_JOB}`;
    await sql`select jobs.heartbeat()`;
    // pg_cron's own heartbeat (every 10 s) may have taken the job first (ours then skips the
    // locked job row): either way the batch that carries the task is a heartbeat's.
    const hbBatch = await eventually(async () => {
      const [row] = await sql<{ id: number | null }[]>`
        select max(t.batch_id)::int as id from jobs.task t join public.social_accounts a on a.id::text = t.key
         where t.job_name = ${TIKTOK_JOB} and a.creator_unique_identifier like ${hb + "-%"}`;
      return row.id;
    }, "a heartbeat to dispatch the task");
    expect(hbBatch).toBeGreaterThan(tickBatch);
    const [{ run_id: hbRun }] = await sql`select run_id from jobs.batch where id = ${hbBatch}`;
    expect(hbRun, "dispatched outside any tick").toBeNull();
    const hbDelay = await acceptDelay(hbBatch);

    // Both TikTok accounts of the tick and the heartbeat's one are refreshed, while YouTube drains.
    await eventually(async () => {
      const [{ n }] = await sql`
        select count(*)::int as n from public.social_accounts
         where (creator_unique_identifier like ${tt + "-%"} or creator_unique_identifier like ${hb + "-%"})
           and refresh_count = 1`;
      return n === 3;
    }, "the three TikTok accounts to be refreshed");
    const [{ left }] = await sql`
      select count(*)::int as left from public.social_accounts
       where creator_unique_identifier like ${slow + "-%"} and refresh_count = 0`;
    expect(left, "the YouTube backlog was still draining").toBeGreaterThan(0);
    console.log(`accept delay while a 1 s-latency backlog drains: tick ${tickDelay.toFixed(3)} s, heartbeat ${hbDelay.toFixed(3)} s`);
    // The YouTube requests were answered (202) within milliseconds, so no pass waits for Google.
    // What is left is pg_net's own pause: a request committed while the worker is in a run of
    // passes that another commit already woke waits out the 1 s between passes (worker.c).
    expect(tickDelay).toBeLessThan(1.5);
    expect(hbDelay).toBeLessThan(1.5);
  }, 60_000);
});

describe("what pg_net's queue holds", () => {
  it("anon cannot read the queue, and what a reader with access collects is no reusable credential", async () => {
    await isolateJob(sql, YOUTUBE_JOB, "youtube");
    await clearSandbox(info);
    // Hold the requests in the queue: pg_net.batch_size = 0 makes the worker take none per pass.
    await sql`alter system set pg_net.batch_size = 0`;
    await sql`select pg_reload_conf()`;
    await new Promise((r) => setTimeout(r, 1_500));
    const anon = db(info);
    try {
      const prefix = uniquePrefix("poll");
      const tokens = Array.from({ length: 30 }, (_, i) => `1//${prefix}-rt-${i}`);
      await seedGoogleRefreshTokens(info, tokens);
      await insertExpiredAccounts(sql, prefix, tokens);
      await sql`select public.refresh_expired_youtube_tokens()`;

      // An anon session (a client role reaching SQL by any path) tries to read the queue.
      const anonRead = await anon.begin(async (tx) => {
        await tx`set local role anon`;
        return await tx`select headers from net.http_request_queue`;
      }).then(() => "read", (err) => String((err as { code?: string }).code));
      expect(anonRead, "anon is refused").toBe("42501");

      // A reader the privileges do not stop (hosted Supabase keeps pg_net's PUBLIC grants).
      const seen = (await sql<{ h: string }[]>`select headers ->> 'Authorization' as h from net.http_request_queue
                                                where url like '%/functions/v1/refresh-token'`).map((r) => r.h);
      expect(seen).toHaveLength(3);
      const everyHeader = (await sql<{ h: string }[]>`select headers::text as h from net.http_request_queue`).map((r) => r.h).join("\n");
      for (const key of [info.secret_key, info.service_role_key, info.anon_key]) {
        expect(everyHeader.includes(key), "no project key in any queued request").toBe(false);
      }
      for (const h of seen) expect(h).toMatch(/^Bearer dwb_\d+_[0-9a-f]{64}$/);

      // A token is no key: it authorises nothing but accepting its own batch.
      const batchOf = (h: string) => Number(/dwb_(\d+)_/.exec(h)![1]);
      const other = await fetch(`${info.functions_url}/refresh-token`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: seen[0], prefer: "respond-async" },
        body: JSON.stringify({ job: YOUTUBE_JOB, batch_id: batchOf(seen[1]), tasks: [{ id: 1, lease_token: "00000000-0000-0000-0000-000000000000", attempt: 1, payload: { account_id: 1 } }] }),
      });
      expect(other.status, "one batch's token does not open another batch").toBe(401);
      await other.body?.cancel();
      const [{ accepted }] = await sql`select count(*)::int as accepted from jobs.batch
                                        where id = ${batchOf(seen[1])} and accepted_at is not null`;
      expect(accepted).toBe(0);

      // Let pg_net send them; once the function has accepted each batch, its token is spent.
      await sql`alter system reset pg_net.batch_size`;
      await sql`select pg_reload_conf()`;
      await eventually(async () => {
        const [{ n }] = await sql`select count(*)::int as n from public.social_accounts
                                   where creator_unique_identifier like ${prefix + "-%"} and refresh_count = 1`;
        return n === 30;
      }, "30 tokens refreshed", 30_000);
      for (const h of seen) {
        const batchId = batchOf(h);
        const res = await fetch(`${info.functions_url}/refresh-token`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: h, prefer: "respond-async" },
          body: JSON.stringify({ job: YOUTUBE_JOB, batch_id: batchId, tasks: [{ id: 1, lease_token: "00000000-0000-0000-0000-000000000000", attempt: 1, payload: { account_id: 1 } }] }),
        });
        expect(res.status, "a replayed token is refused").toBe(409);
        await res.body?.cancel();
      }
      const [{ twice }] = await sql`select count(*)::int as twice from public.social_accounts
                                     where creator_unique_identifier like ${prefix + "-%"} and refresh_count > 1`;
      expect(twice).toBe(0);
    } finally {
      await sql`alter system reset pg_net.batch_size`;
      await sql`select pg_reload_conf()`;
      await anon.end();
    }
  }, 60_000);
});
