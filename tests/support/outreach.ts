// Outreach e2e helpers: a LinkedIn account, a campaign with its templates and prospects, known to
// both the database and the sandbox's fake Unipile (scripts/local/sandbox/providers/unipile*.ts).
import { readFileSync } from "node:fs";
import type postgres from "postgres";
import { providerState, sandboxRequests, seedProvider, type StackInfo, zoneAt } from "./stack";

type Sql = postgres.Sql;

export const TEMPLATES = [
  "Hi {first_name}, I work with teams like {company}. Happy to connect?",
  "Thanks for connecting, {first_name}! How is {company} handling scheduled jobs today?",
  "{first_name}, a short case study that may be useful: cron scripts to Postgres in a day.",
  "Would a 15-minute call next week be useful, {first_name}?",
  "Last note from me, {full_name}: reply any time if background jobs become a priority.",
];

export interface Campaign {
  userId: string;
  accountId: number;
  unipileAccountId: string;
  campaignId: number;
  prospects: { id: number; providerId: string; publicIdentifier: string; firstName: string }[];
}

/** The X-Webhook-Secret the fixture's webhooks carry (the stack passes it to unipile-webhook). */
export function webhookSecret(): string {
  const fixtures = JSON.parse(readFileSync("scripts/local/sandbox/fixtures.json", "utf8"));
  const hook = fixtures.unipile.webhooks.find((w: { source: string }) => w.source === "users");
  return hook.headers.find((h: { key: string }) => h.key === "X-Webhook-Secret").value;
}

/**
 * A campaign (draft) of `n` prospects known by public identifier only, on a fresh account whose zone
 * is one where it is midday (LinkedIn messages go out between 08:00 and 21:00 there).
 */
export async function createCampaign(
  info: StackInfo,
  sql: Sql,
  prefix: string,
  n: number,
  opts: { status?: "OK" | "DISCONNECTED" | "CREDENTIALS"; relations?: boolean } = {},
): Promise<Campaign> {
  const tag = prefix.replace(/[^A-Za-z0-9]/g, "");
  const unipileAccountId = `acc${tag}`;
  const prospects = Array.from({ length: n }, (_, i) => ({
    providerId: `ACo${tag}P${i}`,
    publicIdentifier: `${prefix}-p${i}`.toLowerCase(),
    firstName: `First${i}`,
  }));
  await seedProvider(info, "unipile", {
    accounts: [{ id: unipileAccountId, status: opts.status ?? "OK", invite_limit: null, name: `Owner ${tag}` }],
    users: prospects.map((p, i) => ({
      provider_id: p.providerId, public_identifier: p.publicIdentifier, first_name: p.firstName, last_name: `Last${i}`,
      company: `Company${i}`,
    })),
    ...(opts.relations ? { relations: prospects.map((p) => ({ account_id: unipileAccountId, provider_id: p.providerId })) } : {}),
  });
  const [u] = await sql`insert into auth.users (id, email) values (gen_random_uuid(), ${`${prefix}@example.test`}) returning id`;
  const [a] = await sql`
    insert into public.linkedin_accounts (user_id, unipile_account_id, display_name, daily_invite_limit,
                                          weekly_invite_limit, daily_message_limit, api_calls_per_second, time_zone)
    values (${u.id}, ${unipileAccountId}, ${"Owner " + tag}, 10000, 50000, 10000, 100, ${zoneAt(12)}) returning id`;
  const [c] = await sql`
    insert into public.outreach_campaigns (user_id, linkedin_account_id, name)
    values (${u.id}, ${a.id}, ${prefix}) returning id`;
  await sql`insert into public.outreach_templates ${sql(TEMPLATES.map((body, step) => ({ campaign_id: c.id, step, body })))}`;
  const rows = await sql`
    insert into public.prospects ${sql(prospects.map((p, i) => ({
      campaign_id: c.id, user_id: u.id, first_name: p.firstName, last_name: `Last${i}`, company: `Company${i}`,
      public_identifier: p.publicIdentifier,
    })))} returning id, public_identifier`;
  const ids = new Map(rows.map((r) => [r.public_identifier as string, Number(r.id)]));
  return {
    userId: u.id as string,
    accountId: Number(a.id),
    unipileAccountId,
    campaignId: Number(c.id),
    prospects: prospects.map((p) => ({ ...p, id: ids.get(p.publicIdentifier)! })),
  };
}

export async function prospectRows(sql: Sql, campaignId: number) {
  return await sql<{
    id: number; status: string; provider_id: string | null; chat_id: string | null; connected_via: string | null;
    follow_up_sequence_index: number; follow_up_due_at: Date | null; last_follow_up_at: Date | null;
  }[]>`
    select id::int, status, provider_id, chat_id, connected_via, follow_up_sequence_index, follow_up_due_at,
           last_follow_up_at
      from public.prospects where campaign_id = ${campaignId} order by id`;
}

/** The clock, moved forward for this campaign: its next follow-ups become due now. */
export async function advanceToNextFollowUps(sql: Sql, campaignId: number) {
  await sql`update public.prospects set follow_up_due_at = now() - interval '1 second'
             where campaign_id = ${campaignId} and status = 'connected'`;
}

/** Ends the campaign's work, so later tests' ticks leave it alone. */
export async function pauseCampaign(sql: Sql, campaignId: number) {
  await sql`update public.outreach_campaigns set status = 'paused' where id = ${campaignId}`;
}

export async function transitions(sql: Sql, prospectId: number) {
  return await sql<{ from_status: string; to_status: string; via: string }[]>`
    select from_status, to_status, via from outreach.prospect_events where prospect_id = ${prospectId} order by id`;
}

export interface FakeChat {
  id: string;
  account_id: string;
  attendee_provider_ids: string[];
  messages: { id: string; text: string; is_sender: number }[];
}

/** What the fake Unipile holds for an account: its chats with their messages, its invitations. */
export async function unipileOf(info: StackInfo, accountId: string) {
  const s = await providerState<{ chats: FakeChat[]; invitations: { account_id: string; provider_id: string; message: string | null }[] }>(
    info, "unipile");
  return { chats: s.chats.filter((c) => c.account_id === accountId), invitations: s.invitations.filter((i) => i.account_id === accountId) };
}

/** The fake's request log for one account, by "METHOD path-pattern" (ids replaced by {id}). */
export async function unipileCalls(info: StackInfo, accountId: string, chatIds: Set<string>): Promise<Map<string, number>> {
  const requests = await sandboxRequests(info, { provider: "unipile" });
  const counts = new Map<string, number>();
  for (const r of requests) {
    const q = r.query as Record<string, string>;
    const b = (r.body ?? {}) as Record<string, unknown>;
    const chat = /^\/api\/v1\/chats\/([^/]+)/.exec(r.path)?.[1];
    const mine = q.account_id === accountId || b.account_id === accountId || (chat !== undefined && chatIds.has(chat));
    if (!mine) continue;
    const shape = r.path
      .replace(/^\/api\/v1/, "")
      .replace(/^\/chats\/[^/]+/, "/chats/{id}")
      .replace(/^\/users\/(?!invite|relations)[^/]+$/, "/users/{identifier}");
    const key = `${r.method} ${shape}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export { type Sql };
