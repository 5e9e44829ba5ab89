// LinkedIn outreach over the fake Unipile (docs/outreach.md): connection invitations
// (outreach-invitations), first follow-ups to connected prospects (outreach-follow-ups) and the
// app's queued messages (outreach-outbox), all sent by linkedin-send. Unipile has no idempotency
// key: the function records its intent before each call and, after an attempt whose outcome is
// unknown, looks at the sent invitations or the chat before sending again. So the effects are
// counted per recipient at the fake (invitations to a member, our messages in chats with a
// member), not per key: a second send after a lost answer is a duplicate however it came about.
//
// Items, by index: i % 4 = 0, 1 an invitation to a pending prospect (known by public identifier
// only, so each costs GET /users/{identifier} + POST /users/invite); 2 the first follow-up to a
// connected prospect with no chat yet (POST /chats); 3 an outbox message to a member by provider
// id (POST /chats). Every 5 items share one LinkedIn account (its own Unipile account at the
// fake), paced at 10 calls/s with budgets far above the run: a 429/5xx pauses only that account's
// bucket for a minute, so faults slow a few items, not the whole drain. The accounts' zone is one
// where it is midday, so no message waits for a send window.
import { middayZone } from "../../bench/w2.ts";
import { startClean } from "../engine.ts";
import { providerState, seedProvider } from "../sandbox.ts";
import type { Ctx, EffectCount, Sql, Workload } from "../types.ts";

const JOBS = ["outreach-invitations", "outreach-follow-ups", "outreach-outbox"];
const LATENCY_MS = 50;
const ITEMS_PER_ACCOUNT = 5;
const CALLS_PER_SECOND = 10;

const TEMPLATES = [
  "Hi {first_name}, I work with teams like {company}. Happy to connect?",
  "Thanks for connecting, {first_name}! How is {company} handling scheduled jobs today?",
  "{first_name}, a short case study that may be useful: cron scripts to Postgres in a day.",
  "Would a 15-minute call next week be useful, {first_name}?",
  "Last note from me, {full_name}: reply any time if background jobs become a priority.",
];

type Kind = "invite" | "follow_up" | "outbox";
const kindOf = (i: number): Kind => (i % 4 < 2 ? "invite" : i % 4 === 2 ? "follow_up" : "outbox");

const prefixOf = (ctx: Ctx) => `chaos-${ctx.run}-li`;
/** Provider ids and Unipile account ids allow letters and digits only. */
const tagOf = (ctx: Ctx) => `chaos${ctx.run}`.replace(/[^A-Za-z0-9]/g, "");

interface Item {
  i: number;
  kind: Kind;
  account: number;
  providerId: string;
  publicIdentifier: string;
}

function itemsOf(ctx: Ctx, n: number): Item[] {
  const tag = tagOf(ctx);
  const prefix = prefixOf(ctx).toLowerCase();
  return Array.from({ length: n }, (_, i) => ({
    i,
    kind: kindOf(i),
    account: Math.floor(i / ITEMS_PER_ACCOUNT),
    providerId: `ACo${tag}P${i}`,
    publicIdentifier: `${prefix}-${kindOf(i) === "invite" ? "inv" : kindOf(i) === "follow_up" ? "fu" : "ob"}-${i}`,
  }));
}

/** The run's LinkedIn accounts: database id → Unipile account id. */
async function accountsOf(sql: Sql, ctx: Ctx): Promise<Map<number, string>> {
  const rows = await sql`
    select id::bigint as id, unipile_account_id from public.linkedin_accounts where display_name like ${prefixOf(ctx) + "-%"}`;
  return new Map(rows.map((r) => [Number(r.id), r.unipile_account_id as string]));
}

export const outreach: Workload = {
  name: "LinkedIn outreach (Unipile invitations, follow-ups, outbox)",
  jobs: JOBS,
  providers: ["unipile"],

  async seed(ctx, n) {
    const sql = ctx.sql();
    // Earlier runs' (and the demo's) campaigns stop, their queued outbox rows are cancelled, and
    // open tasks of the jobs end.
    await sql`update public.outreach_campaigns set status = 'paused', updated_at = now() where status in ('running', 'scheduled')`;
    await sql`update public.outreach_outbox set status = 'cancelled', updated_at = now() where status in ('queued', 'sending')`;
    await startClean(sql, this.jobs);

    const prefix = prefixOf(ctx);
    const tag = tagOf(ctx);
    const items = itemsOf(ctx, n);
    const accounts = Math.ceil(n / ITEMS_PER_ACCOUNT);
    const unipileIds = Array.from({ length: accounts }, (_, a) => `acc${tag}A${a}`);
    await seedProvider(ctx.info, "unipile", {
      latency_ms: LATENCY_MS,
      accounts: unipileIds.map((id, a) => ({ id, status: "OK", invite_limit: null, name: `${prefix}-${a}` })),
      users: items.map((it) => ({
        provider_id: it.providerId,
        public_identifier: it.publicIdentifier,
        first_name: `First${it.i}`,
        last_name: `Last${it.i}`,
        company: `Company${it.i}`,
      })),
      // Messages go to connections (LinkedIn refuses a chat with anyone else without InMail).
      relations: items.filter((it) => it.kind !== "invite")
        .map((it) => ({ account_id: unipileIds[it.account], provider_id: it.providerId })),
    });

    const [u] = await sql`insert into auth.users (id, email) values (gen_random_uuid(), ${`${tag.toLowerCase()}@example.test`}) returning id`;
    const zone = middayZone();
    const accountRows = await sql`
      insert into public.linkedin_accounts ${
      sql(unipileIds.map((id, a) => ({
        user_id: u.id,
        unipile_account_id: id,
        display_name: `${prefix}-${a}`,
        daily_invite_limit: 10000,
        weekly_invite_limit: 50000,
        daily_message_limit: 10000,
        api_calls_per_second: CALLS_PER_SECOND,
        time_zone: zone,
      })))
    } returning id, unipile_account_id`;
    const accountId = new Map(accountRows.map((r) => [r.unipile_account_id as string, r.id]));
    const campaignRows = await sql`
      insert into public.outreach_campaigns ${
      sql(unipileIds.map((id, a) => ({
        user_id: u.id,
        linkedin_account_id: accountId.get(id),
        name: `${prefix}-${a}`,
        status: "running",
        started_at: new Date(),
      })))
    } returning id, name`;
    const campaignOf = new Map(campaignRows.map((r) => [r.name as string, r.id]));
    await sql`
      insert into public.outreach_templates ${
      sql(campaignRows.flatMap((c) => TEMPLATES.map((body, step) => ({ campaign_id: c.id, step, body }))))
    }`;

    const prospects = items.filter((it) => it.kind !== "outbox");
    const dueAt = new Date(Date.now() - 60_000);
    const connectedAt = new Date(Date.now() - 2 * 86_400_000);
    for (let k = 0; k < prospects.length; k += 500) {
      await sql`
        insert into public.prospects ${
        sql(prospects.slice(k, k + 500).map((it) => ({
          campaign_id: campaignOf.get(`${prefix}-${it.account}`),
          user_id: u.id,
          first_name: `First${it.i}`,
          last_name: `Last${it.i}`,
          company: `Company${it.i}`,
          public_identifier: it.publicIdentifier,
          // Invitations: known by public identifier only. Follow-ups: connected two days ago,
          // the first follow-up due, no chat yet.
          provider_id: it.kind === "follow_up" ? it.providerId : null,
          status: it.kind === "follow_up" ? "connected" : "pending",
          connected_at: it.kind === "follow_up" ? connectedAt : null,
          connected_via: it.kind === "follow_up" ? "webhook" : null,
          follow_up_due_at: it.kind === "follow_up" ? dueAt : null,
        })))
      }`;
    }
    const outbox = items.filter((it) => it.kind === "outbox");
    if (outbox.length > 0) {
      await sql`
        insert into public.outreach_outbox ${
        sql(outbox.map((it) => ({
          user_id: u.id,
          linkedin_account_id: accountId.get(unipileIds[it.account]),
          recipient_provider_id: it.providerId,
          text: `${prefix} outbox message ${it.i}: see you at the meetup?`,
        })))
      }`;
    }
  },

  async start(ctx) {
    for (const job of JOBS) await ctx.sql()`select jobs.run_now(${job})`;
  },

  async counts(ctx) {
    const sql = ctx.sql();
    const prefix = prefixOf(ctx);
    const [r] = await sql`
      with p as (
        select p.id, p.status, p.status_reason, p.public_identifier like '%-inv-%' as invite
          from public.prospects p join public.outreach_campaigns c on c.id = p.campaign_id
         where c.name like ${prefix + "-%"}
      ),
      m as (select m.prospect_id, m.status, m.error from public.outreach_messages m where m.prospect_id in (select id from p)
                                                                                    and m.sequence_index = 1),
      o as (
        select o.status, o.error from public.outreach_outbox o join public.linkedin_accounts a on a.id = o.linkedin_account_id
         where a.display_name like ${prefix + "-%"}
      )
      select (select count(*) from p)::int + (select count(*) from o)::int as total,
             (select count(*) from p where invite and status in ('connection_request_sent', 'connected'))::int
               + (select count(*) from m where status = 'sent')::int
               + (select count(*) from o where status = 'sent')::int as done,
             (select count(*) from p where invite and status = 'failed' and status_reason is not null)::int
               + (select count(*) from p where not invite and (
                    (status = 'failed' and status_reason is not null)
                    or exists (select 1 from m where m.prospect_id = p.id and m.status = 'failed' and m.error is not null)))::int
               + (select count(*) from o where status = 'failed' and error is not null)::int as dead`;
    return { total: r.total, done: r.done, dead: r.dead };
  },

  async effects(ctx): Promise<EffectCount[]> {
    const sql = ctx.sql();
    const prefix = prefixOf(ctx);
    const mine = new Set((await accountsOf(sql, ctx)).values());
    const state = await providerState<{
      invitations: { account_id: string; provider_id: string }[];
      chats: { account_id: string; attendee_provider_ids: string[]; messages: { is_sender: number | boolean }[] }[];
    }>(ctx.info, "unipile");
    // Per member: invitations sent to them, and our messages in chats with them.
    const invitations = new Map<string, number>();
    for (const inv of state.invitations) {
      if (mine.has(inv.account_id)) invitations.set(inv.provider_id, (invitations.get(inv.provider_id) ?? 0) + 1);
    }
    const messages = new Map<string, number>();
    for (const chat of state.chats) {
      if (!mine.has(chat.account_id)) continue;
      const ours = chat.messages.filter((m) => Boolean(m.is_sender)).length;
      for (const pid of chat.attendee_provider_ids) messages.set(pid, (messages.get(pid) ?? 0) + ours);
    }

    // Every item, with whether the database calls it done.
    const rows = await sql`
      select 'invite' as kind, p.public_identifier as pi, p.provider_id,
             p.status in ('connection_request_sent', 'connected') as done
        from public.prospects p join public.outreach_campaigns c on c.id = p.campaign_id
       where c.name like ${prefix + "-%"} and p.public_identifier like '%-inv-%'
      union all
      select 'follow_up', p.public_identifier, p.provider_id,
             exists (select 1 from public.outreach_messages m where m.prospect_id = p.id and m.sequence_index = 1 and m.status = 'sent')
        from public.prospects p join public.outreach_campaigns c on c.id = p.campaign_id
       where c.name like ${prefix + "-%"} and p.public_identifier like '%-fu-%'
      union all
      select 'outbox', null, o.recipient_provider_id, o.status = 'sent'
        from public.outreach_outbox o join public.linkedin_accounts a on a.id = o.linkedin_account_id
       where a.display_name like ${prefix + "-%"}`;
    // An invited prospect's provider id: the database's, else the seed's (item index in the name).
    const tag = tagOf(ctx);
    const pidOf = (r: { pi: string | null; provider_id: string | null }) =>
      r.provider_id ?? `ACo${tag}P${r.pi!.slice(r.pi!.lastIndexOf("-") + 1)}`;
    let duplicates = 0;
    let missing = 0;
    const examples: string[] = [];
    for (const r of rows) {
      const pid = pidOf(r as unknown as { pi: string | null; provider_id: string | null });
      const made = (r.kind === "invite" ? invitations : messages).get(pid) ?? 0;
      duplicates += Math.max(0, made - 1);
      if (made > 1 && examples.length < 5) examples.push(`${r.kind} to ${pid}: ${made}`);
      if (r.done && made === 0) missing++;
    }
    return [{ provider: "unipile", keyed: false, duplicates, missing, repeatedCalls: 0, examples }];
  },
};
