// Helpers for the YouTube token-refresh end-to-end tests: creators in the database, matching
// refresh tokens in the sandbox's fake Google, and a clean job before each test.
import type { Sql } from "postgres";
import type { StackInfo } from "./stack";

export const JOB = "youtube-token-refresh";

/** Registers refresh tokens with the sandbox's fake Google token endpoint. */
export async function seedGoogleRefreshTokens(info: StackInfo, tokens: string[], status: "active" | "revoked" = "active") {
  const res = await fetch(`${info.sandbox_url}/__state/google_oauth`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_tokens: tokens.map((refresh_token) => ({ refresh_token, status })) }),
  });
  if (!res.ok) throw new Error(`seeding Google refresh tokens → ${res.status} ${await res.text()}`);
}

/** How many times the fake Google refreshed each of `tokens`. */
export async function googleRefreshCounts(info: StackInfo, tokens: string[]): Promise<Map<string, number>> {
  const res = await fetch(`${info.sandbox_url}/__state/google_oauth`);
  const body = (await res.json()) as { state: { refresh_tokens: Array<{ refresh_token: string; refresh_count: number }> } };
  const wanted = new Set(tokens);
  return new Map(
    body.state.refresh_tokens.filter((t) => wanted.has(t.refresh_token)).map((t) => [t.refresh_token, t.refresh_count]),
  );
}

export async function clearSandbox(info: StackInfo) {
  await fetch(`${info.sandbox_url}/__requests`, { method: "DELETE" }).then((r) => r.body?.cancel());
  await fetch(`${info.sandbox_url}/__faults`, { method: "DELETE" }).then((r) => r.body?.cancel());
}

export async function addFault(info: StackInfo, fault: Record<string, unknown>) {
  const res = await fetch(`${info.sandbox_url}/__faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(fault),
  });
  if (res.status !== 201) throw new Error(`POST /__faults → ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

/**
 * Leaves the job with nothing due but what the next test creates: earlier tests' accounts of the
 * job's platform are switched off, open tasks cancelled, in-flight batches settled, settings back
 * to defaults.
 */
export async function isolateJob(sql: Sql, job: string = JOB, platform = "youtube") {
  await sql`update public.social_accounts set status = 'inactive' where platform = ${platform} and status = 'active'`;
  await sql`select jobs.cancel(id, 'e2e isolation') from jobs.task where job_name = ${job} and state in ('queued', 'running')`;
  await sql`update jobs.batch set settled_at = now() where job_name = ${job} and settled_at is null`;
  await sql`
    update jobs.job set lease_seconds = 15, backoff_base_seconds = 30, max_attempts = 5, batch_size = 10,
                        max_in_flight = 5, paused = false, enabled = true, suspended_until = null,
                        last_error = null, last_error_at = null
     where name = ${job}`;
}

/** Inserts `tokens.length` youtube accounts named `<prefix>-<i>` whose access tokens expired. */
export async function insertExpiredAccounts(sql: Sql, prefix: string, tokens: string[]) {
  const ids = tokens.map((_, i) => `${prefix}-${i}`);
  await sql`
    insert into public.social_accounts
      (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at)
    select id, 'youtube', 'ya29.expired-' || id, token, now() - interval '1 hour'
      from unnest(${ids}::text[], ${tokens}::text[]) as t (id, token)`;
  return ids;
}

export async function accounts(sql: Sql, prefix: string) {
  return await sql<{
    creator_unique_identifier: string;
    status: string;
    access_token: string | null;
    refresh_token: string | null;
    access_token_expires_at: Date | null;
    refresh_count: number;
    last_error: string | null;
  }[]>`
    select creator_unique_identifier, status, access_token, refresh_token, access_token_expires_at,
           refresh_count, last_error
      from public.social_accounts
     where creator_unique_identifier like ${prefix + "-%"}
     order by creator_unique_identifier`;
}

export async function tasksFor(sql: Sql, prefix: string) {
  return await sql<{ id: string; key: string; state: string; attempts: number; last_error: string | null; run_after: Date; result: unknown }[]>`
    select t.id, t.key, t.state, t.attempts, t.last_error, t.run_after, t.result
      from jobs.task t
      join public.social_accounts a on a.id::text = t.key
     where t.job_name = ${JOB} and a.creator_unique_identifier like ${prefix + "-%"}
     order by t.id`;
}

export const uniquePrefix = (what: string) => `e2e-${what}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
