// YouTube token refresh through the whole stack: pg_cron / refresh_expired_youtube_tokens() →
// jobs.tick → pg_net → refresh-token Edge Function → fake Google → SQL outcome calls.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { killFunctionWorkers } from "../support/processes";
import { db, eventually, sandboxRequests, stackInfo } from "../support/stack";
import {
  accounts,
  addFault,
  clearSandbox,
  googleRefreshCounts,
  insertExpiredAccounts,
  isolateJob,
  JOB,
  seedGoogleRefreshTokens,
  tasksFor,
  uniquePrefix,
} from "../support/youtube";

const info = stackInfo();
const sql = db(info);
/** Every refresh and access token these tests create, to look for in logs at the end. */
const secretsSeen: string[] = [];

beforeEach(async () => {
  await isolateJob(sql);
  await clearSandbox(info);
});

afterAll(async () => {
  await sql`select jobs.set_schedule(${JOB}, '*/10 * * * *')`;
  await isolateJob(sql);
  await sql.end();
});

async function freshTokens(prefix: string, n: number) {
  const tokens = Array.from({ length: n }, (_, i) => `1//${prefix}-rt-${i}`);
  await seedGoogleRefreshTokens(info, tokens);
  secretsSeen.push(...tokens);
  return tokens;
}

async function refreshNow() {
  const [{ r }] = await sql`select public.refresh_expired_youtube_tokens() as r`;
  return r as { run_id: number; discovered: number; claimed: number; dispatched_requests: number; error: string | null };
}

describe("refresh_expired_youtube_tokens()", () => {
  it("a real scheduled tick (pg_cron heartbeat → jobs scheduler) refreshes due tokens and writes them back", async () => {
    const prefix = uniquePrefix("cron");
    const tokens = await freshTokens(prefix, 3);
    await insertExpiredAccounts(sql, prefix, tokens);
    // The job runs every 10 minutes; for the test, every minute (restored in afterAll). The
    // engine's scheduler (the heartbeat) fires it.
    await sql`select jobs.set_schedule(${JOB}, '* * * * *')`;
    const [{ started }] = await sql`select now() as started`;

    const rows = await eventually(async () => {
      const rs = await accounts(sql, prefix);
      return rs.every((r) => r.refresh_count >= 1) && rs;
    }, "a cron tick to refresh 3 accounts", 90_000);

    const [cronRun] = await sql`
      select * from jobs.run where job_name = ${JOB} and trigger = 'cron' and started_at >= ${started}
       order by id limit 1`;
    expect(cronRun.discovered).toBe(3);
    expect(cronRun.dispatched).toBe(1);
    for (const [i, row] of rows.entries()) {
      expect(row.refresh_count).toBe(1);
      expect(row.status).toBe("active");
      expect(row.refresh_token).toBe(tokens[i]); // Google sent none back: the stored one is kept
      expect(row.access_token).toMatch(/^ya29\.a0/);
      expect(row.access_token_expires_at!.getTime() - Date.now()).toBeGreaterThan(3_500_000);
      secretsSeen.push(row.access_token!);
      // The fake Google knows the token we stored as live.
      const info2 = await fetch(`${info.providers.google_oauth}/tokeninfo?access_token=${row.access_token}`);
      expect(info2.status).toBe(200);
      await info2.body?.cancel();
    }
    const reqs = await sandboxRequests(info, { provider: "google_oauth", path: "/token" });
    expect(reqs).toHaveLength(3);
    for (const r of reqs) {
      expect(r.method).toBe("POST");
      expect(r.headers["content-type"]).toMatch(/^application\/x-www-form-urlencoded/);
      expect(r.body.grant_type).toBe("refresh_token");
      expect(r.body.client_id).toBe("duework-local-client.apps.googleusercontent.com");
    }
    const tasks = await tasksFor(sql, prefix);
    expect(tasks.map((t) => t.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
  });

  it("three overlapping calls over 500 due rows refresh each row exactly once", async () => {
    const prefix = uniquePrefix("overlap");
    const tokens = await freshTokens(prefix, 500);
    await insertExpiredAccounts(sql, prefix, tokens);

    const results = await Promise.all([refreshNow(), refreshNow(), refreshNow()]);
    expect(results.reduce((n, r) => n + r.discovered, 0)).toBe(500);
    expect(results.every((r) => r.error === null)).toBe(true);

    // More ticks keep overlapping the outcome calls while the backlog drains (a discover that
    // read a row as due just before its refresh committed would queue it a second time).
    let draining = true;
    const tickers = [0, 1].map(async () => {
      while (draining) await refreshNow();
    });
    try {
      await eventually(async () => {
        const [{ n }] = await sql`
          select count(*)::int as n from public.social_accounts
           where creator_unique_identifier like ${prefix + "-%"} and refresh_count >= 1`;
        return n === 500;
      }, "500 refreshed accounts", 120_000);
    } finally {
      draining = false;
      await Promise.all(tickers);
    }

    const rows = await accounts(sql, prefix);
    expect(rows.filter((r) => r.refresh_count !== 1)).toEqual([]);
    const counts = await googleRefreshCounts(info, tokens);
    expect([...counts.values()].filter((c) => c !== 1)).toEqual([]);
    expect(counts.size).toBe(500);
    expect(await sandboxRequests(info, { provider: "google_oauth", path: "/token" })).toHaveLength(500);
    const tasks = await tasksFor(sql, prefix);
    expect(tasks).toHaveLength(500);
    expect(tasks.every((t) => t.state === "succeeded" && t.attempts === 1)).toBe(true);
    secretsSeen.push(...rows.map((r) => r.access_token!));
  });

  it("tasks of a function killed mid-batch are delivered again and nothing is lost", async () => {
    const prefix = uniquePrefix("kill");
    const tokens = await freshTokens(prefix, 10);
    await insertExpiredAccounts(sql, prefix, tokens);
    await sql`update jobs.job set lease_seconds = 5, backoff_base_seconds = 1 where name = ${JOB}`;
    // Google answers the first batch only after 5 s, so the function is mid-batch when it dies.
    await addFault(info, { provider: "google_oauth", path: "/token", status: 503, delay_ms: 5_000, times: 10 });

    const first = await refreshNow();
    expect(first.claimed).toBe(10);
    // The request reaches the function and its 10 Google calls start well within 1.5 s.
    await new Promise((r) => setTimeout(r, 1_500));
    const [{ n: stillRunning }] = await sql`
      select count(*)::int as n from jobs.task t join public.social_accounts a on a.id::text = t.key
       where t.job_name = ${JOB} and t.state = 'running' and a.creator_unique_identifier like ${prefix + "-%"}`;
    expect(stillRunning).toBe(10);
    // This stack's refresh-token workers only (another stack on the machine runs the same code).
    const pids = killFunctionWorkers(info, "refresh-token");
    expect(pids.length).toBeGreaterThan(0);

    // Ticks (as cron's heartbeat would) reap the lost batch and deliver its tasks again.
    const rows = await eventually(async () => {
      await refreshNow();
      const rs = await accounts(sql, prefix);
      return rs.every((r) => r.refresh_count >= 1) && rs;
    }, "the killed batch to be redelivered and refreshed", 60_000);
    expect(rows).toHaveLength(10);
    expect(rows.map((r) => r.refresh_count)).toEqual(Array(10).fill(1));
    const tasks = await tasksFor(sql, prefix);
    expect(tasks.filter((t) => t.state === "succeeded")).toHaveLength(10);
    expect(tasks.every((t) => t.attempts >= 2)).toBe(true);
    // Google saw the 10 calls of the killed batch (answered after it died) and 10 redelivered ones.
    await eventually(async () => (await sandboxRequests(info, { path: "/token" })).length === 20, "20 token calls", 10_000);
    secretsSeen.push(...rows.map((r) => r.access_token!));
  });

  it("invalid_grant marks the account needs_reauth and the task dead without retries", async () => {
    const prefix = uniquePrefix("revoked");
    const [token] = await freshTokens(prefix, 1);
    await seedGoogleRefreshTokens(info, [token], "revoked");
    await insertExpiredAccounts(sql, prefix, [token]);

    await refreshNow();
    const [task] = await eventually(async () => {
      const ts = await tasksFor(sql, prefix);
      return ts[0]?.state === "dead" && ts;
    }, "the task to go dead");
    expect(task.attempts).toBe(1);
    expect(task.last_error).toMatch(/invalid_grant/);
    expect(task.last_error).not.toContain(token);
    const [row] = await accounts(sql, prefix);
    expect(row.status).toBe("needs_reauth");
    expect(row.refresh_count).toBe(0);
    expect(row.last_error).toMatch(/invalid_grant/);

    // Not due any more: another run neither queues nor calls Google for it.
    const again = await refreshNow();
    expect(again.discovered).toBe(0);
    expect(await sandboxRequests(info, { path: "/token" })).toHaveLength(1);
  });

  it("429 with Retry-After puts the task back for that long, then it succeeds", async () => {
    const prefix = uniquePrefix("ratelimited");
    const tokens = await freshTokens(prefix, 1);
    await insertExpiredAccounts(sql, prefix, tokens);
    await addFault(info, { provider: "google_oauth", path: "/token", status: 429, retry_after: 3, times: 1 });

    await refreshNow();
    const [task] = await eventually(async () => {
      const ts = await tasksFor(sql, prefix);
      return ts[0]?.state === "queued" && ts[0].last_error !== null && ts;
    }, "the rate-limited task to be queued again");
    expect(task.last_error).toMatch(/429/);
    const [{ wait }] = await sql`select extract(epoch from run_after - now())::float8 as wait from jobs.task where id = ${task.id}`;
    expect(wait).toBeGreaterThan(0.5);
    expect(wait).toBeLessThanOrEqual(3.5);

    // Before Retry-After has passed, a run claims nothing for it.
    expect((await refreshNow()).claimed).toBe(0);
    const [done] = await eventually(async () => {
      await refreshNow();
      const ts = await tasksFor(sql, prefix);
      return ts[0]?.state === "succeeded" && ts;
    }, "the retried task to succeed", 20_000);
    expect(done.attempts).toBe(2);
    expect(await sandboxRequests(info, { path: "/token" })).toHaveLength(2);
    const [row] = await accounts(sql, prefix);
    expect(row.refresh_count).toBe(1);
    expect(row.last_error).toBeNull();
  });
});

describe("refresh-token function boundary", () => {
  async function queuedTask(prefix: string) {
    const tokens = await freshTokens(prefix, 1);
    await insertExpiredAccounts(sql, prefix, tokens);
    // Paused: the tick queues the task but does not dispatch it, so the test owns the request.
    await sql`update jobs.job set paused = true where name = ${JOB}`;
    await refreshNow();
    const [task] = await tasksFor(sql, prefix);
    return task;
  }

  async function post(body: unknown, key: string | null) {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (key !== null) headers.apikey = key;
    const res = await fetch(`${info.functions_url}/refresh-token`, {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  }

  it("a forged or missing key gets 401 and changes nothing", async () => {
    const prefix = uniquePrefix("forged");
    const task = await queuedTask(prefix);
    const body = {
      job: JOB,
      batch_id: 1,
      tasks: [{ id: Number(task.id), lease_token: crypto.randomUUID(), attempt: 1, payload: { account_id: 1 } }],
    };
    for (const key of ["sb_secret_forged", info.anon_key, null]) {
      const res = await post(body, key);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.text).error).toBe("unauthorized");
    }
    expect(await sandboxRequests(info, { path: "/token" })).toHaveLength(0);
    const [after] = await tasksFor(sql, prefix);
    expect(after.state).toBe("queued");
    const [row] = await accounts(sql, prefix);
    expect(row.refresh_count).toBe(0);
  });

  it("a malformed body gets 400 naming the field and changes nothing", async () => {
    const prefix = uniquePrefix("malformed");
    const task = await queuedTask(prefix);
    const bad = await post({ job: JOB, batch_id: 1, tasks: [{ id: Number(task.id), lease_token: "not-a-uuid", attempt: 1, payload: { account_id: 1 } }] }, info.secret_key);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({ error: "invalid_request", field: "tasks.0.lease_token" });
    const missing = await post({ job: JOB, batch_id: 1 }, info.secret_key);
    expect(missing.status).toBe(400);
    expect(JSON.parse(missing.text).field).toBe("tasks");
    const notJson = await post("{", info.secret_key);
    expect(notJson.status).toBe(400);
    expect(await sandboxRequests(info, { path: "/token" })).toHaveLength(0);
    const [after] = await tasksFor(sql, prefix);
    expect(after.state).toBe("queued");
  });
});

describe("secrets", () => {
  it("no refresh or access token appears in the stack's logs, run records or task rows", async () => {
    expect(secretsSeen.length).toBeGreaterThan(500);
    const logDir = join(dirname(process.env.DUEWORK_STACK_JSON!), "logs");
    const logs = readdirSync(logDir).map((f) => readFileSync(join(logDir, f), "utf8")).join("\n");
    const [{ history }] = await sql`
      select coalesce(string_agg(coalesce(t.last_error, '') || coalesce(t.result::text, '') || t.payload::text, ' '), '')
             || (select coalesce(string_agg(coalesce(r.error, ''), ' '), '') from jobs.run r)
             || (select coalesce(string_agg(coalesce(j.last_error, ''), ' '), '') from jobs.job j) as history
        from jobs.task t`;
    const leaked = secretsSeen.filter((s) => logs.includes(s) || history.includes(s));
    expect(leaked).toEqual([]);
  });
});
