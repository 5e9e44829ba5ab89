// Instagram reel URLs through the whole stack: refresh_instagram_reel_urls() → jobs.tick →
// pg_net → refresh-reels Edge Function → fake Instagram Graph → SQL outcome calls.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { db, eventually, sandboxRequests, stackInfo } from "../support/stack";
import { clearSandbox } from "../support/youtube";
import {
  type IgAccountSpec,
  insertAccounts,
  isolateReelsJob,
  openTasks,
  reelsOf,
  REELS_JOB,
  seedGraph,
  uniqueIgIds,
} from "../support/instagram";

const info = stackInfo();
const sql = db(info);
const tokensSeen: string[] = [];

beforeEach(async () => {
  await isolateReelsJob(sql);
  await clearSandbox(info);
});

afterAll(async () => {
  await isolateReelsJob(sql);
  await sql.end();
});

const prefixOf = (what: string) => `e2e-ig-${what}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** Accounts with fresh unique Graph ids, seeded in the sandbox and the database. */
async function setup(what: string, specs: (Omit<IgAccountSpec, "reels" | "token"> & {
  reels: number;
  deleted?: number[];
  fresh?: number[];
})[]) {
  const prefix = prefixOf(what);
  const accounts = specs.map((s) => {
    const ids = uniqueIgIds();
    const token = `IGAAe2e-${prefix}-${s.name}-token`;
    tokensSeen.push(token);
    return {
      name: s.name,
      token,
      status: s.status,
      igUserId: ids.user,
      reels: Array.from({ length: s.reels }, (_, i) => ({
        mediaId: ids.media(i + 1),
        deleted: s.deleted?.includes(i + 1),
        freshForHours: s.fresh?.includes(i + 1) ? 120 : undefined,
      })),
    };
  });
  await seedGraph(info, accounts);
  const ids = await insertAccounts(sql, prefix, accounts);
  const owner = new Map<string, string>(); // media id → account name
  for (const a of accounts) for (const r of a.reels) owner.set(r.mediaId, a.name);
  return { accounts, ids, owner };
}

async function refreshNow() {
  const [{ r }] = await sql`select public.refresh_instagram_reel_urls() as r`;
  return r as {
    run_id: number; discovered: number; claimed: number; error: string | null;
    reels: { due: number; stored: number; skipped_fresh: number; skipped_deleted: number };
  };
}

/** Graph media GETs the sandbox received, with the owning account's name (tokens are redacted in the log). */
async function graphCalls(owner: Map<string, string>) {
  const reqs = await sandboxRequests(info, { provider: "instagram_graph" });
  return reqs
    .map((r) => ({ mediaId: String(r.path).split("/").pop()!, path: String(r.path), time: Date.parse(r.time), status: r.status as number }))
    .filter((r) => owner.has(r.mediaId))
    .map((r) => ({ ...r, account: owner.get(r.mediaId)! }));
}

describe("refresh_instagram_reel_urls()", () => {
  it("refreshes due reels, skips fresh ones, marks deleted reels and stops calling for a refused token", async () => {
    const { accounts, ids, owner } = await setup("run", [
      { name: "ok", reels: 4, fresh: [4] },
      { name: "gone", reels: 3, deleted: [2] },
      { name: "revoked", status: "revoked", reels: 4 },
    ]);
    const first = await refreshNow();
    expect(first.error).toBeNull();
    expect(first.reels.skipped_fresh).toBeGreaterThanOrEqual(1);
    expect(first.discovered).toBe(10); // 11 stored, 1 fresh

    const allIds = [...ids.values()];
    await eventually(async () => (await openTasks(sql, allIds)) === 0, "every reel task to finish", 60_000);

    // ok: three refreshed with the sandbox's signed URLs; the fresh one untouched, no call for it.
    const ok = await reelsOf(sql, ids.get("ok")!);
    for (const r of ok.slice(0, 3)) {
      expect(r.refresh_count).toBe(1);
      expect(r.media_url).toMatch(/[?&]oe=[0-9a-f]+/);
      expect(r.thumbnail_url).toMatch(/[?&]oe=[0-9a-f]+/);
      expect(r.url_expires_at!.getTime() - Date.now()).toBeGreaterThan(2.9 * 86_400_000); // the fake's 3-day TTL
    }
    expect(ok[3].refresh_count).toBe(0);

    // gone: reel 2 deleted, the others refreshed (the run went on).
    const gone = await reelsOf(sql, ids.get("gone")!);
    expect(gone.map((r) => r.status)).toEqual(["active", "deleted", "active"]);
    expect(gone[1].last_error).toMatch(/100\/33/);
    expect(gone[0].refresh_count + gone[2].refresh_count).toBe(2);

    // revoked: account inactive; no call after it was marked, and never one per reel.
    const [acct] = await sql`select status, last_error, last_error_at from public.social_accounts where id = ${ids.get("revoked")!}`;
    expect(acct.status).toBe("inactive");
    expect(acct.last_error).toMatch(/190/);
    const calls = await graphCalls(owner);
    const revokedCalls = calls.filter((c) => c.account === "revoked");
    expect(revokedCalls.length).toBeGreaterThanOrEqual(1);
    expect(revokedCalls.length).toBeLessThan(4);
    for (const c of revokedCalls) expect(c.time).toBeLessThanOrEqual(new Date(acct.last_error_at).getTime() + 50);
    const revokedTasks = await sql`
      select state, count(*)::int as n from jobs.task
       where job_name = ${REELS_JOB} and (payload ->> 'account_id')::bigint = ${ids.get("revoked")!} group by state order by state`;
    expect(Object.fromEntries(revokedTasks.map((t) => [t.state, t.n]))).toEqual({ dead: 1, discarded: 3 });

    // Graph calls: 3 (ok) + 3 (gone) + the revoked account's, against 11 stored reels.
    expect(calls.filter((c) => c.account !== "revoked")).toHaveLength(6);
    expect(calls.every((c) => /^\/v22\.0\/\d+$/.test(c.path))).toBe(true);

    // The next run finds nothing due: every URL is fresh, the deleted reel and the inactive account are skipped.
    await clearSandbox(info);
    const second = await refreshNow();
    expect(second.discovered).toBe(0);
    expect(second.reels.skipped_fresh).toBeGreaterThanOrEqual(6);
    await new Promise((r) => setTimeout(r, 500));
    expect(await graphCalls(owner)).toHaveLength(0);
    void accounts;
  });

  it("honours the app bucket and each account's pacing bucket however often claims run", async () => {
    // App: 2 burst, 4/s. Accounts: 1 burst, 1/s. 3 accounts x 4 reels.
    await sql`update jobs.rate_limit set capacity = 2, refill_per_second = 4, tokens = 2, refilled_at = now() where key = 'instagram-graph'`;
    await sql`update jobs.job set config = config || '{"account_burst": 1, "account_rate_per_second": 1}' where name = ${REELS_JOB}`;
    const { ids, owner } = await setup("rate", [
      { name: "a", reels: 4 }, { name: "b", reels: 4 }, { name: "c", reels: 4 },
    ]);
    // Claims as often as possible: ticks every 50 ms on top of the function's own claims. The first
    // tick is awaited, so the wait below never sees "nothing open" before discovery ran.
    expect((await refreshNow()).discovered).toBe(12);
    let draining = true;
    const ticker = (async () => {
      while (draining) {
        await refreshNow();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await eventually(async () => (await openTasks(sql, [...ids.values()])) === 0, "12 paced reel tasks", 60_000);
    } finally {
      draining = false;
      await ticker;
    }
    const calls = (await graphCalls(owner)).sort((x, y) => x.time - y.time);
    expect(calls).toHaveLength(12);
    // Buckets pace claims. A claim reaches Graph after a delay D that varies: a refill claim inside
    // the function calls at once, a batch dispatched through pg_net waits for pg_net's pass, which
    // can include its 1 s pause between passes. So at Graph, any window of w seconds holds at most
    // burst + rate * (w + D) calls of a bucket; D <= 1.2 s here. Without pacing all 12 calls would
    // land within a few ms.
    const D = 1.2;
    const withinBucket = (times: number[], burst: number, rate: number) => {
      for (let i = 0; i < times.length; i++) {
        for (let j = i; j < times.length; j++) {
          const w = (times[j] - times[i]) / 1000;
          expect(j - i + 1).toBeLessThanOrEqual(burst + rate * (w + D));
        }
      }
    };
    withinBucket(calls.map((c) => c.time), 2, 4);
    expect(calls[11].time - calls[0].time).toBeGreaterThanOrEqual(2_500 - D * 1000);
    for (const name of ["a", "b", "c"]) {
      const t = calls.filter((c) => c.account === name).map((c) => c.time);
      expect(t).toHaveLength(4);
      withinBucket(t, 1, 1);
      expect(t[3] - t[0], `account ${name}'s 4 calls are paced`).toBeGreaterThanOrEqual(3_000 - D * 1000);
    }
  });

  it("stops at the account's hourly budget and leaves the rest queued", async () => {
    await sql`update jobs.job set config = config || '{"account_hourly_budget": 3}' where name = ${REELS_JOB}`;
    const { ids, owner } = await setup("hourly", [{ name: "big", reels: 6 }]);
    for (let i = 0; i < 10; i++) {
      await refreshNow();
      await new Promise((r) => setTimeout(r, 200));
    }
    await eventually(async () => {
      const [{ n }] = await sql`select count(*)::int as n from jobs.task where job_name = ${REELS_JOB} and state = 'running'`;
      return n === 0;
    }, "no task running");
    expect(await graphCalls(owner)).toHaveLength(3);
    const reels = await reelsOf(sql, ids.get("big")!);
    expect(reels.filter((r) => r.refresh_count === 1)).toHaveLength(3);
    expect(await openTasks(sql, [ids.get("big")!])).toBe(3);
  });

  it("a throttled account waits for the regain time while the others go on", async () => {
    const { ids, owner } = await setup("throttle", [{ name: "hot", reels: 3 }, { name: "cool", reels: 2 }]);
    // Graph answers 80002 for the "hot" account's first request (BUC throttle, regain in 5 min).
    const hot = [...owner.entries()].filter(([, a]) => a === "hot").map(([m]) => m);
    const res = await fetch(`${info.sandbox_url}/__faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ provider: "instagram_graph", path: `/v22.0/${hot[0]}`, status: 400, times: 1,
        body: { error: { message: "There have been too many calls to this Instagram account.", type: "OAuthException", code: 80002 } },
        retry_after: 300 }),
    });
    expect(res.status).toBe(201);
    await res.body?.cancel();
    await refreshNow();
    await eventually(async () => (await openTasks(sql, [ids.get("cool")!])) === 0, "the cool account's reels");
    const [t] = await sql`
      select state, run_after, last_error from jobs.task
       where job_name = ${REELS_JOB} and payload ->> 'media_id' = ${hot[0]} order by id desc limit 1`;
    expect(t.state).toBe("queued");
    expect(new Date(t.run_after).getTime() - Date.now()).toBeGreaterThan(250_000);
    const [bucket] = await sql`select tokens, refilled_at from jobs.rate_limit where key = ${"ig-hourly:" + ids.get("hot")!}`;
    expect(Number(bucket.tokens)).toBeLessThan(1);
    expect(new Date(bucket.refilled_at).getTime() - Date.now()).toBeGreaterThan(250_000);
    const calls = await graphCalls(owner);
    expect(calls.filter((c) => c.account === "cool")).toHaveLength(2);
    expect(calls.filter((c) => c.account === "hot")).toHaveLength(1); // its other reels went back unasked
    expect(await openTasks(sql, [ids.get("hot")!])).toBe(3);
  });

  it("never writes an Instagram token to the function logs", () => {
    const logs = join(dirname(process.env.DUEWORK_STACK_JSON!), "logs");
    const text = readdirSync(logs).map((f) => readFileSync(join(logs, f), "utf8")).join("\n");
    for (const t of tokensSeen) expect(text.includes(t)).toBe(false);
  });
});
