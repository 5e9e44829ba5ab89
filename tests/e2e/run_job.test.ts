// run-job through the stack: an outside scheduler's HTTP call (cron-job.org, Vercel Cron, GitHub
// Actions) → functions server → run-job → jobs.tick(job, 'http') → pg_net → refresh-token → fake
// Google. The stack passes CRON_SECRET to the functions and shows it in stack.json (cron_secret).
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { db, eventually, stackInfo } from "../support/stack";
import { accounts, clearSandbox, insertExpiredAccounts, isolateJob, JOB, seedGoogleRefreshTokens, uniquePrefix } from "../support/youtube";

const info = stackInfo();
const sql = db(info);
const url = `${info.functions_url}/run-job`;

beforeEach(async () => {
  await isolateJob(sql);
  await clearSandbox(info);
});

afterAll(async () => {
  await isolateJob(sql);
  await sql.end();
});

async function call(target: string, init: RequestInit = {}) {
  const res = await fetch(target, init);
  const text = await res.text();
  expect(text).not.toContain(info.cron_secret);
  expect(text).not.toContain(info.secret_key);
  return { status: res.status, json: JSON.parse(text) };
}

const postJob = (job: string, headers: Record<string, string>) =>
  call(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ job }) });

async function httpRuns() {
  const [{ n }] = await sql`select count(*)::int as n from jobs.run where trigger = 'http'`;
  return n as number;
}

async function runRow(id: number) {
  const [row] = await sql`
    select job_name, trigger, discovered, claimed, dispatched, reaped, error from jobs.run where id = ${id}`;
  return row;
}

describe("run-job", () => {
  it("POST with CRON_SECRET in x-cron-secret runs a real tick: the jobs.run row (trigger http) has the counts it answered", async () => {
    expect(info.cron_secret.length).toBeGreaterThanOrEqual(32);
    const prefix = uniquePrefix("runjob");
    const tokens = [0, 1].map((i) => `1//${prefix}-rt-${i}`);
    await seedGoogleRefreshTokens(info, tokens);
    await insertExpiredAccounts(sql, prefix, tokens);

    const r = await postJob(JOB, { "x-cron-secret": info.cron_secret });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ job: JOB, discovered: 2, claimed: 2, dispatched_requests: 1, error: null });
    expect(Object.keys(r.json).sort()).toEqual(
      ["batches_in_flight", "claimed", "discovered", "dispatched_requests", "error", "job", "queued", "reaped", "run_id"],
    );
    expect(await runRow(r.json.run_id)).toEqual({
      job_name: JOB,
      trigger: "http",
      discovered: r.json.discovered,
      claimed: r.json.claimed,
      dispatched: r.json.dispatched_requests,
      reaped: r.json.reaped,
      error: null,
    });
    // The dispatched batch did its work: both tokens were refreshed and written back.
    const rows = await eventually(async () => {
      const rs = await accounts(sql, prefix);
      return rs.every((a) => a.refresh_count === 1 && a.access_token?.startsWith("ya29.a0")) && rs;
    }, "the tick's batch to refresh both accounts");
    expect(rows).toHaveLength(2);
  });

  it("GET ?job= with Authorization: Bearer <CRON_SECRET> (Vercel Cron), and the path form with the secret key", async () => {
    const vercel = await call(`${url}?job=${JOB}`, { headers: { authorization: `Bearer ${info.cron_secret}` } });
    expect(vercel.status).toBe(200);
    expect(vercel.json).toMatchObject({ job: JOB, discovered: 0, claimed: 0, error: null });
    expect((await runRow(vercel.json.run_id)).trigger).toBe("http");

    const byKey = await call(`${url}/${JOB}`, { method: "POST", headers: { apikey: info.secret_key } });
    expect(byKey.status).toBe(200);
    expect(byKey.json.run_id).toBeGreaterThan(vercel.json.run_id);
    expect((await runRow(byKey.json.run_id)).trigger).toBe("http");
  });

  it("a wrong, short or missing secret → 401 and no jobs.run row", async () => {
    const before = await httpRuns();
    const refused = [
      { "x-cron-secret": info.cron_secret.slice(0, 31) },
      { authorization: `Bearer ${info.cron_secret.slice(0, 31)}` },
      { "x-cron-secret": `${info.cron_secret}x` },
      { "x-cron-secret": "" },
      { apikey: info.cron_secret },
      {},
    ];
    for (const headers of refused) {
      const r = await postJob(JOB, headers);
      expect(r.status).toBe(401);
      expect(r.json.error).toBe("unauthorized");
    }
    const get = await call(`${url}?job=${JOB}`, { headers: { authorization: "Bearer not-the-secret" } });
    expect(get.status).toBe(401);
    expect(await httpRuns()).toBe(before);
  });

  it("an unknown job → 404 naming it; a malformed name → 400; neither runs anything", async () => {
    const before = await httpRuns();
    const unknown = await postJob("no-such-job-e2e", { "x-cron-secret": info.cron_secret });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ error: "unknown_job", job: "no-such-job-e2e", message: "no job named no-such-job-e2e" });
    const bad = await postJob("Not A Job", { "x-cron-secret": info.cron_secret });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: "invalid_request", field: "job" });
    expect(await httpRuns()).toBe(before);
  });

  it("the cron secret appears in no log of the stack", () => {
    const logDir = join(dirname(process.env.DUEWORK_STACK_JSON!), "logs");
    const logs = readdirSync(logDir).map((f) => readFileSync(join(logDir, f), "utf8")).join("\n");
    expect(logs).toContain("run-job: youtube-token-refresh ticked (cron_secret)");
    expect(logs).not.toContain(info.cron_secret);
  });
});
