// The local platform end to end: SQL → pg_net stand-in → functions server → a function that
// writes back through SQL; pg_cron firing; verify_jwt; the sandbox's faults and request log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT } from "jose";
import { db, eventually, sandboxRequests, stackInfo } from "../support/stack";

const info = stackInfo();
const sql = db(info);
const unique = () => `m-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  await sql.unsafe(`
    create schema if not exists e2e_platform;
    create table if not exists e2e_platform.writeback (
      marker text primary key, user_agent text, apikey_matches boolean, created timestamptz default now());
    create table if not exists e2e_platform.ticks (id bigserial primary key, at timestamptz default now());
  `);
});

afterAll(async () => {
  await sql`select cron.unschedule(jobid) from cron.job where jobname = 'e2e-platform-tick'`;
  await sql.end();
});

async function responseRow(id: bigint | number) {
  return await eventually(async () => {
    const [row] = await sql`select * from net._http_response where id = ${id}`;
    return row;
  }, `net._http_response row ${id}`);
}

describe("net.http_post → function → SQL", () => {
  it("delivers a committed request, the function writes back, and the response is recorded", async () => {
    const marker = unique();
    const [{ id }] = await sql`
      select net.http_post(
        url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url') || '/functions/v1/writeback',
        body := jsonb_build_object('marker', ${marker}::text),
        headers := jsonb_build_object('Content-Type', 'application/json',
          'apikey', (select decrypted_secret from vault.decrypted_secrets where name = 'service_key'))
      ) as id`;
    const response = await responseRow(id);
    expect(response.status_code).toBe(200);
    expect(response.timed_out).toBe(false);
    expect(response.error_msg).toBeNull();
    expect(response.content_type).toMatch(/application\/json/);
    expect(JSON.parse(response.content)).toEqual({ ok: true, marker });
    const [row] = await sql`select * from e2e_platform.writeback where marker = ${marker}`;
    expect(row.user_agent).toBe("pg_net/0.20.4");
    expect(row.apikey_matches).toBe(true);
  });

  it("never sends a request whose transaction rolled back", async () => {
    const rolledBack = unique();
    const committed = unique();
    const url = `${info.functions_url}/writeback`;
    await sql.begin(async (tx) => {
      await tx`select net.http_post(${url}, jsonb_build_object('marker', ${rolledBack}::text))`;
      await tx`select 1/0`; // abort
    }).catch(() => {});
    // A later committed request is delivered; the queue is consumed in id order, so by the time
    // it has been answered the rolled-back one would have been sent too, had it existed.
    const [{ id }] = await sql`select net.http_post(${url}, jsonb_build_object('marker', ${committed}::text)) as id`;
    await responseRow(id);
    const rows = await sql`select marker from e2e_platform.writeback where marker in (${rolledBack}, ${committed})`;
    expect(rows.map((r) => r.marker)).toEqual([committed]);
  });

  it("honours timeout_milliseconds and records it like pg_net", async () => {
    const [{ id }] = await sql`
      select net.http_get(${`${info.functions_url}/slow`}, params := '{"ms": "3000"}'::jsonb, timeout_milliseconds := 300) as id`;
    const response = await responseRow(id);
    expect(response.timed_out).toBe(true);
    expect(response.status_code).toBeNull();
    expect(response.error_msg).toMatch(/^Timeout of 300 ms reached/);
  });

  it("reports a connection failure in error_msg", async () => {
    const [{ id }] = await sql`select net.http_get('http://127.0.0.1:9/nothing-listens-here') as id`;
    const response = await responseRow(id);
    expect(response.status_code).toBeNull();
    expect(response.error_msg).toBe("Couldn't connect to server");
  });
});

describe("functions server", () => {
  it("returns 404 JSON for an unknown function", async () => {
    const res = await fetch(`${info.functions_url}/no-such-function`, { method: "POST", body: "{}" });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    expect(await res.json()).toMatchObject({ code: "NOT_FOUND" });
  });

  it("verify_jwt = true rejects a missing or forged JWT before the function runs", async () => {
    const missing = await fetch(`${info.functions_url}/echo-jwt`);
    expect(missing.status).toBe(401);
    const forged = await new SignJWT({ role: "service_role" }).setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("1h").sign(new TextEncoder().encode("not-the-project-secret-but-32-chars-long!"));
    const bad = await fetch(`${info.functions_url}/echo-jwt`, { headers: { Authorization: `Bearer ${forged}` } });
    expect(bad.status).toBe(401);
    const good = await fetch(`${info.functions_url}/echo-jwt`, { headers: { Authorization: `Bearer ${info.anon_key}` } });
    expect(good.status).toBe(200);
  });

  it("verify_jwt = false lets the function decide", async () => {
    const res = await fetch(`${info.functions_url}/echo-open`);
    expect(res.status).toBe(200);
  });
});

describe("provider sandbox", () => {
  const google = info.providers.google_oauth;
  const refresh = (token: string) =>
    fetch(`${google}/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: token,
        client_id: "duework-local-client.apps.googleusercontent.com",
        client_secret: "duework-local-secret",
      }),
    });

  it("injects faults with Retry-After for a limited number of requests and logs every request", async () => {
    await fetch(`${info.sandbox_url}/__requests`, { method: "DELETE" });
    await fetch(`${info.sandbox_url}/__faults`, { method: "DELETE" });
    const fault = await fetch(`${info.sandbox_url}/__faults`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ provider: "google_oauth", path: "/token", status: 429, retry_after: 7, times: 1 }),
    });
    expect(fault.status).toBe(201);
    const first = await refresh("1//demo-refresh-youtube-1");
    expect(first.status).toBe(429);
    expect(first.headers.get("retry-after")).toBe("7");
    const second = await refresh("1//demo-refresh-youtube-1");
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ token_type: "Bearer", expires_in: 3599 });
    const log = await sandboxRequests(info, { provider: "google_oauth" });
    expect(log.map((r) => r.status)).toEqual([429, 200]);
    expect(JSON.stringify(log)).not.toContain("duework-local-secret");
  });

  it("answers an unknown refresh token with invalid_grant", async () => {
    const res = await refresh("1//never-issued");
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "invalid_grant" });
  });

  it("rejects a malformed fault with 400 naming the field", async () => {
    const res = await fetch(`${info.sandbox_url}/__faults`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ provider: "google_oauth", status: "boom" }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ field: "status" });
  });
});

describe("pg_cron", () => {
  it("fires a scheduled job and records the run in cron.job_run_details", async () => {
    await sql`select cron.schedule('e2e-platform-tick', '* * * * *', 'insert into e2e_platform.ticks default values')`;
    const [{ jobid }] = await sql`select jobid from cron.job where jobname = 'e2e-platform-tick'`;
    // At most one minute boundary away.
    const run = await eventually(async () => {
      const [r] = await sql`select status, return_message from cron.job_run_details where jobid = ${jobid} and status in ('succeeded', 'failed')`;
      return r;
    }, "a pg_cron run", 75_000);
    expect(run.status).toBe("succeeded");
    const [{ n }] = await sql`select count(*)::int as n from e2e_platform.ticks`;
    expect(n).toBeGreaterThanOrEqual(1);
  }, 90_000);
});
