// LinkedIn outreach through the whole stack: start_campaign() / the jobs' entry points → jobs.tick
// → pg_net → linkedin-send / check-relations → the sandbox's fake Unipile, whose new_relation and
// message_received webhooks reach unipile-webhook → SQL. The fake's state and request log are the
// truth for what LinkedIn would have seen.
//
// OUTREACH_E2E_PROSPECTS sets the size of the full-campaign run (6 by default; the issue's
// 2,000-prospect figures came from `OUTREACH_E2E_PROSPECTS=2000 npm test -- tests/e2e/outreach.test.ts`).
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { killFunctionWorkers } from "../support/processes";
import { db, eventually, providerState, sandboxRequests, seedProvider, stackInfo } from "../support/stack";
import { uniquePrefix } from "../support/youtube";
import {
  advanceToNextFollowUps,
  type Campaign,
  createCampaign,
  prospectRows,
  TEMPLATES,
  transitions,
  unipileCalls,
  unipileOf,
  webhookSecret,
} from "../support/outreach";

const info = stackInfo();
const sql = db(info);
const N = Number(process.env.OUTREACH_E2E_PROSPECTS ?? 6);
const campaigns: number[] = [];
const DAY_MS = 86_400_000;

async function campaign(what: string, n: number, opts: Parameters<typeof createCampaign>[4] = {}): Promise<Campaign> {
  const c = await createCampaign(info, sql, uniquePrefix(what), n, opts);
  campaigns.push(c.campaignId);
  return c;
}

async function call(fn: string, ...args: number[]) {
  const [{ r }] = args.length
    ? await sql`select ${sql.unsafe(`public.${fn}`)}(${args[0]}) as r`
    : await sql`select ${sql.unsafe(`public.${fn}`)}() as r`;
  return r as Record<string, unknown>;
}

const statuses = async (c: Campaign) => (await prospectRows(sql, c.campaignId)).map((p) => p.status);
const allAre = (want: string) => async (c: Campaign) => (await statuses(c)).every((s) => s === want);

function webhook(body: unknown, secret: string | null = webhookSecret()) {
  return fetch(`${info.functions_url}/unipile-webhook`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(secret === null ? {} : { "x-webhook-secret": secret }) },
    body: JSON.stringify(body),
  });
}

beforeEach(async () => {
  await fetch(`${info.sandbox_url}/__reset`, { method: "POST" }).then((r) => r.body?.cancel());
  await fetch(`${info.sandbox_url}/__requests`, { method: "DELETE" }).then((r) => r.body?.cancel());
  await seedProvider(info, "unipile", { webhook_delay_ms: 20, retry_delays_ms: [200, 400, 800, 1600, 3200] });
  await sql`update jobs.job set suspended_until = null, last_error = null where name like 'outreach-%'`;
});

afterAll(async () => {
  // Later runs on this database leave these alone (the fake forgets their accounts on reset).
  if (campaigns.length) {
    await sql`update public.outreach_campaigns set status = 'paused' where id = any(${campaigns})`;
    await sql`update public.linkedin_accounts set status = 'paused'
               where id in (select linkedin_account_id from public.outreach_campaigns where id = any(${campaigns}))`;
  }
  await sql.end();
});

describe("a campaign from start to the fourth follow-up", () => {
  it(`invites ${N} prospects once, connects each once (webhook or polling), sends FU1..FU4 on the 1/5/7/5-day schedule, and stops a prospect who replied`, async () => {
    const c = await campaign("li-full", N);
    const started = await call("start_campaign", c.campaignId);
    expect((started.invitations as { error: string | null }).error).toBeNull();
    await call("process_pending_prospects"); // an overlapping catch-up run queues nothing new
    await eventually(() => allAre("connection_request_sent")(c), "every prospect invited", 60_000 + N * 50);

    const fake = await unipileOf(info, c.unipileAccountId);
    expect(fake.invitations).toHaveLength(N);
    expect(new Set(fake.invitations.map((i) => i.provider_id)).size).toBe(N);
    expect(fake.invitations[0].message).toMatch(/^Hi First\d+, I work with teams like Company\d+\. Happy to connect\?$/);

    // Half accept with the new_relation webhook, the rest only show in GET /users/relations.
    const half = Math.ceil(N / 2);
    await seedProvider(info, "unipile", {
      accept: c.prospects.map((p, i) => ({ account_id: c.unipileAccountId, provider_id: p.providerId, notify: i < half })),
    });
    await eventually(async () => (await prospectRows(sql, c.campaignId)).filter((p) => p.status === "connected").length >= half || null,
      "the webhook's acceptances recorded", 30_000);
    await call("check_relations");
    await eventually(() => allAre("connected")(c), "every prospect connected", 30_000);
    const rows = await prospectRows(sql, c.campaignId);
    for (const p of rows) {
      const t = (await transitions(sql, p.id)).filter((e) => e.to_status === "connected");
      expect(t, `prospect ${p.id}: one transition to connected`).toHaveLength(1);
      expect(p.follow_up_sequence_index).toBe(0);
    }
    expect(rows.filter((p) => p.connected_via === "webhook").length).toBeGreaterThanOrEqual(1);
    expect(rows.filter((p) => p.connected_via === "polling").length).toBe(N - rows.filter((p) => p.connected_via === "webhook").length);

    const replier = c.prospects[0];
    for (const step of [1, 2, 3, 4]) {
      if (step === 3) {
        await seedProvider(info, "unipile", { reply: { account_id: c.unipileAccountId, provider_id: replier.providerId, text: "Sounds good, let's talk" } });
        await eventually(async () => (await sql`select status from public.prospects where id = ${replier.id}`)[0].status === "replied" || null,
          "the reply webhook stops the sequence", 15_000);
      }
      const before = await prospectRows(sql, c.campaignId);
      await advanceToNextFollowUps(sql, c.campaignId);
      await Promise.all([call("process_follow_ups"), call("process_follow_ups")]); // overlapping runs
      const open = before.filter((p) => p.status === "connected").map((p) => p.id);
      await eventually(async () => {
        const now = await prospectRows(sql, c.campaignId);
        return now.filter((p) => open.includes(p.id)).every((p) => p.follow_up_sequence_index === step) || null;
      }, `follow-up ${step} sent to every open prospect`, 60_000 + N * 50);
      const after = (await prospectRows(sql, c.campaignId)).filter((p) => open.includes(p.id));
      for (const p of after) {
        if (step < 4) {
          expect(p.status).toBe("connected");
          const gap = (p.follow_up_due_at!.getTime() - p.last_follow_up_at!.getTime()) / DAY_MS;
          expect(gap).toBeCloseTo([5, 7, 5][step - 1], 3);
        } else {
          expect(p.status).toBe("finished");
          expect(p.follow_up_due_at).toBeNull();
        }
      }
    }

    const end = await prospectRows(sql, c.campaignId);
    expect(end.filter((p) => p.status === "replied").map((p) => p.id)).toEqual([replier.id]);
    expect(end.filter((p) => p.status === "finished")).toHaveLength(N - 1);
    // The next hourly run finds no open prospect left and finishes the campaign.
    await call("process_follow_ups");
    const [camp] = await sql`select status from public.outreach_campaigns where id = ${c.campaignId}`;
    expect(camp.status).toBe("finished");

    // LinkedIn's side: one chat per prospect; ours in it exactly once per slot sent.
    const { chats } = await unipileOf(info, c.unipileAccountId);
    for (const p of c.prospects) {
      const chat = chats.filter((ch) => ch.attendee_provider_ids.includes(p.providerId));
      expect(chat, `one chat with ${p.providerId}`).toHaveLength(1);
      const ours = chat[0].messages.filter((m) => m.is_sender && !m.text.startsWith("Hi "));
      expect(ours.map((m) => m.text.replace(/\r\n/g, "\n")),
        `${p.providerId}: each follow-up once`).toHaveLength(p === replier ? 2 : 4);
      expect(new Set(ours.map((m) => m.text)).size).toBe(ours.length);
    }
    const [{ slots }] = await sql`
      select count(*)::int as slots from public.outreach_messages m join public.prospects p on p.id = m.prospect_id
       where p.campaign_id = ${c.campaignId} and m.status = 'sent'`;
    expect(slots).toBe(2 + (N - 1) * 4);

    const calls = await unipileCalls(info, c.unipileAccountId, new Set(chats.map((ch) => ch.id)));
    console.log(`outreach e2e, ${N} prospects: Unipile calls by endpoint`, Object.fromEntries([...calls].sort()));
    expect(calls.get("POST /users/invite")).toBe(N);
    expect(calls.get("GET /users/{identifier}")).toBe(N);
    expect(calls.get("POST /chats")).toBe(N);
    expect(calls.get("POST /chats/{id}/messages")).toBe(1 + (N - 1) * 3);
    // Pages of 1,000, newest first, until every invited prospect still pending was found.
    expect(calls.get("GET /users/relations")).toBeGreaterThanOrEqual(1);
    expect(calls.get("GET /users/relations")).toBeLessThanOrEqual(Math.ceil(N / 1000));
  });
});

describe("acceptance: the webhook and the polling job", () => {
  it("racing for the same acceptance make one transition, and Unipile's repeated deliveries change nothing", async () => {
    const c = await campaign("li-race", 1);
    await call("start_campaign", c.campaignId);
    await eventually(() => allAre("connection_request_sent")(c), "the invitation sent");
    await seedProvider(info, "unipile", { webhook_delay_ms: 0 });
    await seedProvider(info, "unipile", { accept: { account_id: c.unipileAccountId, provider_id: c.prospects[0].providerId } });
    await Promise.all([call("check_relations"), call("check_relations")]);
    await eventually(() => allAre("connected")(c), "connected");
    const event = {
      event: "new_relation", account_id: c.unipileAccountId, account_type: "LINKEDIN", webhook_name: "duework",
      user_full_name: "First0 Last0", user_provider_id: c.prospects[0].providerId,
      user_public_identifier: c.prospects[0].publicIdentifier,
    };
    const again = await Promise.all([1, 2, 3, 4, 5].map(() => webhook(event)));
    for (const r of again) {
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ matched: 1, connected: 0 });
    }
    await eventually(async () => {
      const s = await providerState<{ deliveries: { event: string; final: boolean; status: number | null; body: { account_id: string } }[] }>(info, "unipile");
      return s.deliveries.some((d) => d.event === "new_relation" && d.body.account_id === c.unipileAccountId && d.final) || null;
    }, "the fake's webhook delivered");
    expect((await transitions(sql, c.prospects[0].id)).filter((e) => e.to_status === "connected")).toHaveLength(1);
  });

  it("a wrong, short or missing webhook secret is refused with 401 and changes nothing", async () => {
    const c = await campaign("li-hook", 1);
    await call("start_campaign", c.campaignId);
    await eventually(() => allAre("connection_request_sent")(c), "the invitation sent");
    const event = { event: "new_relation", account_id: c.unipileAccountId, user_provider_id: c.prospects[0].providerId };
    for (const secret of [null, "", "short", webhookSecret().slice(0, -1) + "x", webhookSecret() + "x"]) {
      const r = await webhook(event, secret);
      expect(r.status, `secret ${JSON.stringify(secret)}`).toBe(401);
      await r.body?.cancel();
    }
    expect(await statuses(c)).toEqual(["connection_request_sent"]);
    const ok = await webhook(event);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ matched: 1, connected: 1 });
    expect(await statuses(c)).toEqual(["connected"]);
  });
});

describe("crashes and failures", () => {
  it("a follow-up whose function is killed after Unipile accepted it is not sent twice", async () => {
    const c = await campaign("li-kill", 1, { relations: true });
    const p = c.prospects[0];
    // Connected already (a relation on both sides), first follow-up due.
    await sql`update public.prospects set status = 'connected', provider_id = ${p.providerId}, connected_at = now(),
                     follow_up_due_at = now() - interval '1 minute' where id = ${p.id}`;
    await sql`update public.outreach_campaigns set status = 'running', started_at = now() where id = ${c.campaignId}`;
    await seedProvider(info, "unipile", { accept_then_hang: { times: 1, hang_ms: 120_000, on: ["start_chat", "send_message"] } });
    await call("process_follow_ups");
    const fu1 = TEMPLATES[1].replace("{first_name}", p.firstName).replace("{company}", "Company0");
    const ours = async () => (await unipileOf(info, c.unipileAccountId)).chats.flatMap((ch) => ch.messages)
      .filter((m) => m.is_sender && m.text.replace(/\r\n/g, "\n") === fu1);
    await eventually(async () => (await ours()).length === 1 || null, "Unipile stored the follow-up", 20_000);
    const killed = killFunctionWorkers(info, "linkedin-send");
    expect(killed.length).toBeGreaterThan(0);
    const t0 = Date.now();
    const [task] = await eventually(async () => {
      const t = await sql`select state, attempts, result from jobs.task where key = ${`follow-up:${p.id}:1`}`;
      return t[0]?.state === "succeeded" ? t : null;
    }, "the follow-up recorded after the crash", 90_000);
    console.log(`follow-up reconciled ${((Date.now() - t0) / 1000).toFixed(1)} s after the kill`);
    expect(task.attempts).toBeGreaterThanOrEqual(2);
    expect(await ours()).toHaveLength(1);
    const [m] = await sql`select status, provider_message_id from public.outreach_messages where prospect_id = ${p.id}`;
    expect(m.status).toBe("sent");
    expect((await prospectRows(sql, c.campaignId))[0].follow_up_sequence_index).toBe(1);
  });

  it("a disconnected account stops its own work after one call, tells its owner, and resumes when reconnected", async () => {
    const c = await campaign("li-gone", 5, { status: "DISCONNECTED" });
    await call("start_campaign", c.campaignId);
    await eventually(async () => (await sql`select status from public.linkedin_accounts where id = ${c.accountId}`)[0].status === "needs_reconnect" || null,
      "the account marked needs_reconnect");
    await eventually(async () => {
      const [{ open }] = await sql`select count(*)::int as open from jobs.task where job_name = 'outreach-invitations'
                                    and state in ('queued', 'running') and payload ->> 'prospect_id' = any(${c.prospects.map((p) => String(p.id))})`;
      return open === 0 || null;
    }, "its invitation tasks settled");
    await call("process_pending_prospects");
    await new Promise((r) => setTimeout(r, 1_000));
    const calls = [...(await unipileCalls(info, c.unipileAccountId, new Set())).values()].reduce((a, b) => a + b, 0);
    expect(calls).toBeLessThanOrEqual(3); // at most one per request in flight, never one per prospect
    expect(await statuses(c)).toEqual(Array(5).fill("pending"));
    const notes = await sql`select channel, kind from public.outreach_notifications where user_id = ${c.userId} order by channel`;
    expect(notes.map((n) => `${n.channel}:${n.kind}`)).toEqual(["email:account_disconnected", "in_app:account_disconnected"]);
    await call("check_pending_notifications");
    await eventually(async () => (await sandboxRequests(info, { provider: "resend", method: "POST", path: "/emails" }))
      .some((r) => (r.body as { to?: string | string[] }).to?.toString().includes(c.unipileAccountId.slice(3).toLowerCase()) ||
                   JSON.stringify(r.body).includes("Reconnect your LinkedIn account")) || null, "the owner emailed");

    // Reconnected in Unipile, then marked active again: the prospects are invited.
    await seedProvider(info, "unipile", { accounts: [{ id: c.unipileAccountId, status: "OK" }] });
    await sql`update public.linkedin_accounts set status = 'active', status_reason = null where id = ${c.accountId}`;
    await call("process_pending_prospects");
    await eventually(() => allAre("connection_request_sent")(c), "invited after the reconnection", 30_000);
  });

  it("an outbox message is delivered once whatever runs overlap", async () => {
    const c = await campaign("li-outbox", 1, { relations: true });
    const p = c.prospects[0];
    await sql`update public.prospects set status = 'connected', provider_id = ${p.providerId} where id = ${p.id}`;
    const text = `Outbox ${c.unipileAccountId}: the deck you asked for`;
    await sql`insert into public.outreach_outbox (user_id, linkedin_account_id, prospect_id, text)
              values (${c.userId}, ${c.accountId}, ${p.id}, ${text})`;
    await Promise.all([call("process_outbox"), call("process_outbox"), call("process_outbox")]);
    await eventually(async () => (await sql`select status from public.outreach_outbox where prospect_id = ${p.id}`)[0].status === "sent" || null,
      "the outbox row sent");
    await call("process_outbox");
    await new Promise((r) => setTimeout(r, 1_000));
    const sent = (await unipileOf(info, c.unipileAccountId)).chats.flatMap((ch) => ch.messages).filter((m) => m.text === text);
    expect(sent).toHaveLength(1);
    const [row] = await sql`select chat_id from public.prospects where id = ${p.id}`;
    expect(row.chat_id).toBeTruthy();
  });
});
