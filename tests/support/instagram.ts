// Helpers for the Instagram reel-URL end-to-end tests: accounts + reels in the database, the
// same accounts, tokens and media in the sandbox's fake Instagram Graph, and a clean job.
import type { Sql } from "postgres";
import type { StackInfo } from "./stack";

export const REELS_JOB = "instagram-reel-urls";

export interface IgAccountSpec {
  name: string;
  token: string;
  /** Sandbox token status; "revoked" answers 190/458. */
  status?: "active" | "revoked";
  reels: { mediaId: string; deleted?: boolean; freshForHours?: number }[];
}

let counter = 0;
/** Numeric ids unique to this process run (Graph ids are numeric strings). */
export function uniqueIgIds(): { user: string; media: (i: number) => string } {
  const base = `${Date.now() % 1e9}${String(counter++).padStart(3, "0")}`;
  return { user: `1784${base}`, media: (i: number) => `1790${base}${String(i).padStart(3, "0")}` };
}

export async function seedGraph(info: StackInfo, accounts: (IgAccountSpec & { igUserId: string })[]) {
  const body = {
    accounts: accounts.map((a) => ({ ig_user_id: a.igUserId, username: a.name })),
    tokens: accounts.map((a) => ({ access_token: a.token, ig_user_id: a.igUserId, age_seconds: 3 * 86_400, status: a.status ?? "active" })),
    media: accounts.flatMap((a) =>
      a.reels.map((r) => ({
        id: r.mediaId,
        ig_user_id: a.igUserId,
        media_type: "VIDEO",
        media_product_type: "REELS",
        deleted: r.deleted ?? false,
      }))
    ),
  };
  const res = await fetch(`${info.sandbox_url}/__state/instagram_graph`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`seeding the fake Instagram Graph → ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

/** Inserts the accounts (platform instagram) and their reels; returns account ids by name. */
export async function insertAccounts(sql: Sql, prefix: string, accounts: IgAccountSpec[]): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  for (const a of accounts) {
    const [row] = await sql`
      insert into public.social_accounts (creator_unique_identifier, platform, access_token, access_token_expires_at)
      values (${`${prefix}-${a.name}`}, 'instagram', ${a.token}, now() + interval '50 days')
      returning id`;
    ids.set(a.name, Number(row.id));
    for (const r of a.reels) {
      const url = r.freshForHours === undefined ? null
        : `https://scontent.cdninstagram.com/v/e2e/${r.mediaId}.mp4?oh=e2e&oe=${Math.floor(Date.now() / 1000 + r.freshForHours * 3600).toString(16)}`;
      await sql`
        insert into public.instagram_reels (account_id, media_id, media_url, url_expires_at)
        values (${row.id}, ${r.mediaId}, ${url}, instagram.signed_url_expiry(${url}))`;
    }
  }
  return ids;
}

/**
 * Leaves the job with nothing due but what the next test creates: other Instagram accounts are
 * switched off, open tasks cancelled, batches settled, job and app bucket back to defaults.
 */
export async function isolateReelsJob(sql: Sql) {
  await sql`update public.social_accounts set status = 'inactive' where platform = 'instagram' and status = 'active'`;
  await sql`select jobs.cancel(id, 'e2e isolation') from jobs.task where job_name = ${REELS_JOB} and state in ('queued', 'running')`;
  await sql`update jobs.batch set settled_at = now() where job_name = ${REELS_JOB} and settled_at is null`;
  await sql`
    update jobs.job set lease_seconds = 15, backoff_base_seconds = 30, max_attempts = 5, batch_size = 10,
                        max_in_flight = 5, paused = false, enabled = true, suspended_until = null,
                        last_error = null, last_error_at = null,
                        config = '{"graph_version": "v22.0", "margin_hours": 48, "account_rate_per_second": 2,
                                   "account_burst": 5, "account_hourly_budget": 200}'
     where name = ${REELS_JOB}`;
  await sql`update jobs.rate_limit set capacity = 10, refill_per_second = 10, tokens = 10, refilled_at = now()
             where key = 'instagram-graph'`;
}

export async function reelsOf(sql: Sql, accountId: number) {
  return await sql<{ media_id: string; status: string; media_url: string | null; thumbnail_url: string | null;
    url_expires_at: Date | null; refreshed_at: Date | null; refresh_count: number; last_error: string | null }[]>`
    select media_id, status, media_url, thumbnail_url, url_expires_at, refreshed_at, refresh_count, last_error
      from public.instagram_reels where account_id = ${accountId} order by media_id`;
}

/** Open (queued or running) tasks of the job for these accounts. */
export async function openTasks(sql: Sql, accountIds: number[]) {
  const [{ n }] = await sql`
    select count(*)::int as n from jobs.task t
     where t.job_name = ${REELS_JOB} and t.state in ('queued', 'running')
       and (t.payload ->> 'account_id')::bigint = any (${accountIds}::bigint[])`;
  return n as number;
}
