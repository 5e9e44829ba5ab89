// The attack surface, for every Edge Function and every SQL entry point (issue 16, "Attack
// surface"). Functions and SQL objects are enumerated, not listed: a function folder without an
// entry in tests/support/attack/table.ts fails the suite, and every table and function in the
// catalog is probed as anon and authenticated with forged request.jwt.claims.
//
// "Nothing changed" is a fingerprint of every row of every project table (support/attack/
// fingerprint.ts) taken with the engine held still (support/attack/quiet.ts), plus the sandbox's
// request log: an attack refused at the door reaches no provider.
import { createHmac, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { changedTables, fingerprint } from "../support/attack/fingerprint";
import { received, send } from "../support/attack/http";
import { signJwt } from "../support/attack/jwt";
import { quiet, type Quiet } from "../support/attack/quiet";
import {
  type Attacker,
  callZeroArgFunctions,
  CLIENT_FUNCTIONS,
  CLIENT_READABLE,
  probeGrantedUpdates,
  probeTables,
  projectFunctions,
} from "../support/attack/sql_roles";
import { ATTACK_TABLE, deployedFunctions, type FunctionEntry } from "../support/attack/table";
import { webhookSecret } from "../support/outreach";
import { findSecrets, secretsInPlay } from "../support/secrets";
import { db, eventually, sandboxRequests, stackInfo } from "../support/stack";
import { clearSandbox, insertExpiredAccounts, isolateJob, JOB as YOUTUBE_JOB, seedGoogleRefreshTokens, uniquePrefix } from "../support/youtube";

const info = stackInfo();
const sql = db(info);
const fnUrl = (name: string) => `${info.functions_url}/${name}`;
const TWILIO_AUTH_TOKEN = "duework-local-twilio-auth-token";
const TWILIO_ACCOUNT_SID = "AC00000000000000000000000000000001";
// What twilio-status checks signatures against (TWILIO_STATUS_CALLBACK_URL unset locally).
const twilioUrl = `${info.api_url}/functions/v1/twilio-status`;

/** Hostile strings for every string field (NUL separately: Postgres text cannot hold it). */
const HOSTILE = [
  "'; drop table jobs.task; --",
  "\" or 1=1 --",
  "line one\r\nX-Injected: yes",
  "${process.env.SECRET} {{7*7}} $(id) `id`",
  "\u202Egnp.exe\u200F\u200E right-to-left",
  "x".repeat(10_000),
];

const jobBody = (entry: FunctionEntry, over: Record<string, unknown> = {}) =>
  JSON.stringify({
    job: "attack",
    batch_id: 999_999_999,
    tasks: [{ id: 999_999_999, lease_token: randomUUID(), attempt: 1, payload: entry.payload }],
    ...over,
  });

function twilioSign(params: Record<string, string>, url = twilioUrl, token = TWILIO_AUTH_TOKEN) {
  return createHmac("sha1", token).update(url + Object.keys(params).sort().map((k) => k + params[k]).join("")).digest("base64");
}

/** A request a legitimate caller could send to `name`, but carrying `headers` as its credential. */
function sample(name: string, entry: FunctionEntry, headers: Record<string, string>): RequestInit {
  switch (entry.kind) {
    case "job":
      return { method: "POST", headers: { "content-type": "application/json", ...headers }, body: jobBody(entry) };
    case "run-job":
      return { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ job: YOUTUBE_JOB }) };
    case "twilio": {
      const params = { MessageSid: `SM${"0".repeat(31)}9`, MessageStatus: "delivered", AccountSid: TWILIO_ACCOUNT_SID };
      return { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: new URLSearchParams(params) };
    }
    case "unipile":
      return {
        method: "POST", headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ event: "new_relation", account_id: "acc-attack", user_provider_id: "ACoAttack" }),
      };
  }
  throw new Error(`no sample for ${name}`);
}

/** Credentials that must all be refused, for every function. */
function wrongCredentials(entry: FunctionEntry): [string, Record<string, string>][] {
  const forgedService = signJwt({ role: "service_role" }, "not-the-jwt-secret-not-the-jwt-secret");
  const anonJwt = signJwt({ role: "anon" }, info.jwt_secret);
  const asKey = (v: string) => [{ apikey: v }, { authorization: `Bearer ${v}` }];
  const out: [string, Record<string, string>][] = [
    ["missing", {}],
    ...asKey(`sb_secret_${"A".repeat(32)}`).map((h) => ["wrong key", h] as [string, Record<string, string>]),
    ...asKey(info.secret_key.slice(0, 12)).map((h) => ["short key", h] as [string, Record<string, string>]),
    ...asKey(info.anon_key).map((h) => ["anon key", h] as [string, Record<string, string>]),
    ...asKey(info.publishable_key as string).map((h) => ["publishable key", h] as [string, Record<string, string>]),
    ...asKey(forgedService).map((h) => ["forged service_role JWT", h] as [string, Record<string, string>]),
    ...asKey(anonJwt).map((h) => ["anon JWT", h] as [string, Record<string, string>]),
    ["a batch token of no batch", { authorization: `Bearer dwb_1_${"ab".repeat(32)}` }],
  ];
  if (entry.kind !== "run-job") {
    out.push(["CRON_SECRET (run-job's alone)", { "x-cron-secret": info.cron_secret }]);
    out.push(["CRON_SECRET as bearer", { authorization: `Bearer ${info.cron_secret}` }]);
  }
  if (entry.kind === "twilio" || entry.kind === "unipile") {
    // A webhook has its own credential: the project's keys open nothing there.
    out.push(["secret key at a webhook", { apikey: info.secret_key, authorization: `Bearer ${info.secret_key}` }]);
  }
  if (entry.kind === "twilio") {
    out.push(["forged signature", { "x-twilio-signature": twilioSign({ a: "b" }, twilioUrl, "not-the-auth-token") }]);
  }
  if (entry.kind === "unipile") {
    out.push(["wrong webhook secret", { "x-webhook-secret": "x".repeat(48) }]);
    out.push(["short webhook secret", { "x-webhook-secret": webhookSecret().slice(0, 16) }]);
  }
  return out;
}

/** The valid credential of each kind (to get past the door and attack what lies behind it). */
function goodCredential(entry: FunctionEntry): Record<string, string> {
  if (entry.kind === "unipile") return { "x-webhook-secret": webhookSecret() };
  if (entry.kind === "run-job") return { "x-cron-secret": info.cron_secret };
  return { apikey: info.secret_key };
}

/** Runs `attack` with the engine still and asserts no project row changed and no provider was called. */
async function unchanged(what: string, attack: () => Promise<void>) {
  const q: Quiet = await quiet(sql);
  try {
    await clearSandbox(info);
    const before = await fingerprint(sql);
    await attack();
    // Work the attack might have started in the background (waitUntil) gets a moment to show.
    await new Promise((r) => setTimeout(r, 300));
    expect(changedTables(before, await fingerprint(sql)), `${what}: tables changed`).toEqual([]);
    expect((await sandboxRequests(info)).map((r) => `${r.provider} ${r.method} ${r.path}`), `${what}: provider calls`).toEqual([]);
  } finally {
    await q.loud();
  }
}

beforeAll(async () => {
  await clearSandbox(info);
});

afterAll(async () => {
  await sql.end();
});

describe("every Edge Function is in the attack table", () => {
  it("each folder of supabase/functions (but _shared) has an entry, and each entry a folder", () => {
    const deployed = deployedFunctions();
    expect(deployed.length).toBeGreaterThanOrEqual(9);
    expect(deployed.filter((f) => !(f in ATTACK_TABLE)), "functions without an attack entry").toEqual([]);
    expect(Object.keys(ATTACK_TABLE).filter((f) => !deployed.includes(f)), "entries without a function").toEqual([]);
  });
});

describe("credentials", () => {
  for (const [name, entry] of Object.entries(ATTACK_TABLE)) {
    it(`${name}: every wrong credential → ${entry.refused}, no row changed, no provider called`, async () => {
      await unchanged(name, async () => {
        for (const [label, headers] of wrongCredentials(entry)) {
          const r = await send(`${name} ${label}`, fnUrl(name), sample(name, entry, headers));
          expect(r.status, `${name} with ${label}: ${r.text}`).toBe(entry.refused);
          expect(r.json?.error, `${name} with ${label}`).toMatch(/^(unauthorized|forbidden)$/);
        }
        if (entry.kind === "run-job") {
          const get = await send(`${name} GET anon`, `${fnUrl(name)}?job=${YOUTUBE_JOB}`, { headers: { authorization: `Bearer ${info.anon_key}` } });
          expect(get.status).toBe(401);
        }
      });
    });
  }
});

describe("bad bodies behind a valid credential", () => {
  for (const [name, entry] of Object.entries(ATTACK_TABLE)) {
    it(`${name}: malformed, mistyped and oversized bodies → 4xx JSON naming the field, no change`, async () => {
      const good = goodCredential(entry);
      const json = { "content-type": "application/json", ...good };
      const cases: { label: string; init: RequestInit; status: number; field?: string }[] = [];
      if (entry.kind === "job") {
        const [field, bad] = entry.badField!;
        cases.push(
          { label: "not JSON", init: { body: "{nope", headers: json }, status: 400, field: "body" },
          { label: "an array", init: { body: "[]", headers: json }, status: 400, field: "body" },
          { label: "job a number", init: { body: jobBody(entry, { job: 7 }), headers: json }, status: 400, field: "job" },
          { label: "batch_id a string", init: { body: jobBody(entry, { batch_id: "1 or 1=1" }), headers: json }, status: 400, field: "batch_id" },
          { label: "no tasks", init: { body: jobBody(entry, { tasks: [] }), headers: json }, status: 400, field: "tasks" },
          {
            label: "lease_token not a uuid",
            init: { body: jobBody(entry, { tasks: [{ id: 1, lease_token: "'; drop table x; --", attempt: 1, payload: entry.payload }] }), headers: json },
            status: 400, field: "tasks.0.lease_token",
          },
          {
            label: `payload.${field} mistyped`,
            init: { body: jobBody(entry, { tasks: [{ id: 1, lease_token: randomUUID(), attempt: 1, payload: { ...entry.payload, [field]: bad } }] }), headers: json },
            status: 400, field: `tasks.0.payload.${field}`,
          },
          {
            label: "101 tasks",
            init: { body: jobBody(entry, { tasks: Array.from({ length: 101 }, (_, i) => ({ id: i + 1, lease_token: randomUUID(), attempt: 1, payload: entry.payload })) }), headers: json },
            status: 400, field: "tasks",
          },
        );
        for (const s of HOSTILE) {
          cases.push({ label: `job ${JSON.stringify(s.slice(0, 20))}… with no tasks`, init: { body: jobBody(entry, { job: s, tasks: [] }), headers: json }, status: 400, field: "tasks" });
        }
      }
      if (entry.kind === "run-job") {
        cases.push(
          { label: "not JSON", init: { body: "{nope", headers: json }, status: 400, field: "body" },
          { label: "job a number", init: { body: JSON.stringify({ job: 7 }), headers: json }, status: 400, field: "job" },
          { label: "unknown field", init: { body: JSON.stringify({ job: YOUTUBE_JOB, force: true }), headers: json }, status: 400, field: "force" },
          { label: "NUL in the name", init: { body: JSON.stringify({ job: "a\u0000b" }), headers: json }, status: 400, field: "job" },
        );
        for (const s of HOSTILE) cases.push({ label: `job ${JSON.stringify(s.slice(0, 20))}`, init: { body: JSON.stringify({ job: s }), headers: json }, status: 400, field: "job" });
      }
      if (entry.kind === "unipile") {
        cases.push(
          { label: "not JSON", init: { body: "{nope", headers: json }, status: 400, field: "body" },
          { label: "no event", init: { body: JSON.stringify({ account_id: "a" }), headers: json }, status: 400, field: "event" },
          { label: "new_relation without account", init: { body: JSON.stringify({ event: "new_relation", user_provider_id: "x" }), headers: json }, status: 400, field: "account_id" },
          { label: "id over 512", init: { body: JSON.stringify({ event: "new_relation", account_id: "a".repeat(513), user_provider_id: "x" }), headers: json }, status: 400, field: "account_id" },
          { label: "NUL in account_id", init: { body: JSON.stringify({ event: "new_relation", account_id: "acc\u0000x", user_provider_id: "x" }), headers: json }, status: 400, field: "account_id" },
          { label: "NUL in chat_id", init: { body: JSON.stringify({ event: "message_received", account_id: "acc-attack", chat_id: "c\u0000", message_id: "m" }), headers: json }, status: 400, field: "chat_id" },
        );
      }
      if (entry.kind === "twilio") {
        const params = { MessageSid: "SMattack", MessageStatus: "bogus", AccountSid: TWILIO_ACCOUNT_SID };
        const form = (p: Record<string, string>) => ({
          body: new URLSearchParams(p),
          headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": twilioSign(p) },
        });
        const noSid = { MessageStatus: "delivered", AccountSid: TWILIO_ACCOUNT_SID };
        cases.push(
          { label: "unknown status", init: form(params), status: 400, field: "MessageStatus" },
          { label: "no MessageSid", init: form(noSid), status: 400, field: "MessageSid" },
          {
            // Signed over what a form parser makes of it, so the signature passes and the type is refused.
            label: "JSON body", status: 400, field: "content-type",
            init: {
              body: JSON.stringify(params),
              headers: {
                "content-type": "application/json",
                "x-twilio-signature": twilioSign(Object.fromEntries(new URLSearchParams(JSON.stringify(params)))),
              },
            },
          },
        );
      }
      await unchanged(name, async () => {
        for (const c of cases) {
          const r = await send(`${name} ${c.label}`, fnUrl(name), { method: "POST", ...c.init });
          expect(r.status, `${name} ${c.label}: ${r.text.slice(0, 300)}`).toBe(c.status);
          expect(r.json?.error, `${name} ${c.label}`).toBe("invalid_request");
          if (c.field) expect(r.json?.field, `${name} ${c.label}`).toBe(c.field);
        }
        // Over the limit: declared (fetch sets Content-Length) and streamed (chunked, no length).
        const over = "x".repeat(entry.limit + 1);
        const headers = entry.kind === "twilio"
          ? { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": twilioSign({}) }
          : json;
        const declared = await send(`${name} declared oversize`, fnUrl(name), { method: "POST", headers, body: over });
        expect(declared.status, `${name} declared oversize`).toBe(413);
        expect(declared.json).toMatchObject({ error: "payload_too_large" });
        const chunk = new TextEncoder().encode("y".repeat(64 * 1024));
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent > entry.limit + chunk.length) return c.close();
            sent += chunk.length;
            c.enqueue(chunk);
          },
        });
        const streamed = await send(`${name} streamed oversize`, fnUrl(name), { method: "POST", headers, body: stream, duplex: "half" });
        expect(streamed.status, `${name} streamed oversize`).toBe(413);
        expect(streamed.json).toMatchObject({ error: "payload_too_large" });
      });
    });
  }
});

describe("unknown, foreign and forged tasks and batch tokens", () => {
  it("held batches: forged lease tokens and unknown ids change no task; a token for another batch → 401, a replay → 409", async () => {
    await isolateJob(sql, YOUTUBE_JOB, "youtube");
    await clearSandbox(info);
    // Hold pg_net's requests in its queue, so the batches stay in flight with their tokens unsent.
    await sql`alter system set pg_net.batch_size = 0`;
    await sql`select pg_reload_conf()`;
    await new Promise((r) => setTimeout(r, 1_500));
    try {
      const prefix = uniquePrefix("attack");
      const tokens = Array.from({ length: 12 }, (_, i) => `1//${prefix}-rt-${i}`);
      await seedGoogleRefreshTokens(info, tokens);
      await insertExpiredAccounts(sql, prefix, tokens);
      await sql`select public.refresh_expired_youtube_tokens()`;
      const queued = await sql<{ h: string }[]>`
        select headers ->> 'Authorization' as h from net.http_request_queue where url like '%/functions/v1/refresh-token'`;
      expect(queued.length).toBe(2);
      const batchOf = (h: string) => Number(/dwb_(\d+)_/.exec(h)![1]);
      const tasks = await sql<{ id: number; job_name: string; state: string; attempts: number; lease_token: string; lease_until: Date; batch_id: number; payload: unknown }[]>`
        select id::int, job_name, state, attempts, lease_token::text, lease_until, batch_id::int, payload from jobs.task
         where batch_id = any (${queued.map((q) => batchOf(q.h))}) order by id`;
      expect(tasks.length).toBe(12);
      const snapshot = async () => await sql`
        select id, state, attempts, lease_token, lease_until, batch_id, last_error, result from jobs.task
         where id = any (${tasks.map((t) => t.id)}) order by id`;
      const before = await snapshot();

      for (const [name, entry] of Object.entries(ATTACK_TABLE).filter(([, e]) => e.kind === "job")) {
        // The real task ids with forged lease tokens, plus an id no task has, by secret key.
        const forged = [...tasks.slice(0, 2).map((t) => ({ id: t.id, payload: t.payload })), { id: 9_000_000_001, payload: entry.payload }];
        const r = await send(`${name} forged leases`, fnUrl(name), {
          method: "POST",
          headers: { "content-type": "application/json", apikey: info.secret_key },
          body: JSON.stringify({
            job: YOUTUBE_JOB, batch_id: 999_999_999,
            tasks: forged.map((t) => ({ id: t.id, lease_token: randomUUID(), attempt: 1, payload: name === "refresh-token" ? t.payload : entry.payload })),
          }),
        });
        expect(r.status, `${name}: ${r.text}`).toBe(207);
        expect(r.json).toMatchObject({ success: false, processed: 3, succeeded: 0, skipped: 3 });
        expect(r.json.errors.map((e: { task_id: number }) => e.task_id).sort()).toEqual(forged.map((t) => t.id).sort());
        for (const e of r.json.errors) expect(e.error, `${name}: the answer names the problem`).toMatch(/lease/i);

        // One batch's token for the other batch, at every job function.
        const other = await send(`${name} token of another batch`, fnUrl(name), {
          method: "POST",
          headers: { "content-type": "application/json", authorization: queued[0].h, prefer: "respond-async" },
          body: jobBody(entry, { batch_id: batchOf(queued[1].h) }),
        });
        expect(other.status, `${name}: ${other.text}`).toBe(401);
      }
      expect(await snapshot(), "no held task changed").toEqual(before);
      const [{ accepted }] = await sql`select count(*)::int as accepted from jobs.batch
                                        where id = any (${queued.map((q) => batchOf(q.h))}) and accepted_at is not null`;
      expect(accepted).toBe(0);
      expect(await sandboxRequests(info, { provider: "google_oauth" })).toEqual([]);

      // Let them go; each batch is accepted once, and its token replayed at any job function → 409.
      await sql`alter system reset pg_net.batch_size`;
      await sql`select pg_reload_conf()`;
      await eventually(async () => {
        const [{ n }] = await sql`select count(*)::int as n from jobs.task where id = any (${tasks.map((t) => t.id)}) and state = 'succeeded'`;
        return n === 12;
      }, "the 12 held tasks done", 30_000);
      const done = await snapshot();
      for (const [name, entry] of Object.entries(ATTACK_TABLE).filter(([, e]) => e.kind === "job")) {
        for (const q of queued) {
          const replay = await send(`${name} replayed token`, fnUrl(name), {
            method: "POST",
            headers: { "content-type": "application/json", authorization: q.h, prefer: "respond-async" },
            body: jobBody(entry, { batch_id: batchOf(q.h) }),
          });
          expect(replay.status, `${name}: ${replay.text}`).toBe(409);
          expect(replay.json).toMatchObject({ field: "batch_id" });
        }
      }
      expect(await snapshot(), "the replays changed nothing").toEqual(done);
      const refreshes = await sandboxRequests(info, { provider: "google_oauth" });
      expect(refreshes.length, "each account refreshed once").toBe(12);
    } finally {
      await sql`alter system reset pg_net.batch_size`;
      await sql`select pg_reload_conf()`;
      await isolateJob(sql, YOUTUBE_JOB, "youtube");
    }
  }, 90_000);
});

describe("webhooks: forged, misdirected and replayed", () => {
  it("twilio-status: a signature for another URL or a tampered body → 403; a replayed callback changes nothing the second time", async () => {
    const sid = `SM${randomUUID().replace(/-/g, "")}`;
    const params = { MessageSid: sid, MessageStatus: "delivered", AccountSid: TWILIO_ACCOUNT_SID };
    const post = (p: Record<string, string>, signature: string) =>
      send("twilio-status", fnUrl("twilio-status"), {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature },
        body: new URLSearchParams(p),
      });
    await unchanged("twilio-status forged", async () => {
      for (const sig of [
        twilioSign(params, "https://evil.example/functions/v1/twilio-status"),
        twilioSign(params, `${twilioUrl}?x=1`),
        twilioSign({ ...params, MessageStatus: "failed" }),
        twilioSign(params, twilioUrl, "not-the-auth-token"),
        "",
      ]) {
        const r = await post(params, sig);
        expect(r.status).toBe(403);
        expect(r.json.error).toBe("forbidden");
      }
      const otherAccount = { ...params, AccountSid: "AC99999999999999999999999999999999" };
      const r = await post(otherAccount, twilioSign(otherAccount));
      expect(r.status).toBe(403);
      expect(r.json.reason).toBe("wrong_account");
    });
    // A valid callback for a sid no notification has: kept (docs: applied once the sid is recorded).
    const first = await post(params, twilioSign(params));
    expect(first.status).toBe(200);
    await unchanged("twilio-status replay", async () => {
      for (let i = 0; i < 3; i++) {
        const again = await post(params, twilioSign(params));
        expect(again.status).toBe(200);
      }
    });
  });

  it("unipile-webhook: missing or wrong secret → 401; a replayed event changes nothing the second time", async () => {
    const event = { event: "new_relation", account_id: `acc-${randomUUID()}`, user_provider_id: "ACoReplay", user_full_name: "Replay" };
    const post = (headers: Record<string, string>) =>
      send("unipile-webhook", fnUrl("unipile-webhook"), {
        method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(event),
      });
    await unchanged("unipile forged", async () => {
      expect((await post({})).json).toMatchObject({ error: "unauthorized", reason: "missing_secret" });
      expect((await post({ "x-webhook-secret": `${webhookSecret()}x` })).json).toMatchObject({ error: "unauthorized", reason: "invalid_secret" });
    });
    const first = await post({ "x-webhook-secret": webhookSecret() });
    expect(first.status).toBe(200);
    await unchanged("unipile replay", async () => {
      const again = await post({ "x-webhook-secret": webhookSecret() });
      expect(again.status).toBe(200);
      expect(again.json).toEqual(first.json);
    });
  });
});

describe("hostile strings in domain rows the jobs read", () => {
  it("NUL cannot be stored (a clean SQL error, not a crash); the others are stored verbatim and reach the provider as they are", async () => {
    const err = await sql`insert into public.performers (name) values (${"a\u0000b"})`.then(() => null, (e) => e.code);
    expect(err, "Postgres refuses NUL in text").toMatch(/^22/);

    const { zoneAt } = await import("../support/stack");
    await fetch(`${info.sandbox_url}/__reset`, { method: "POST" }).then((r) => r.body?.cancel());
    await sql`update jobs.rate_limit set tokens = capacity, refilled_at = now() where key = 'resend'`;
    // A name is at most 200 characters (clients_name_check): the 10k string is refused cleanly.
    const long = await sql`insert into public.clients (name) values (${"x".repeat(10_000)})`.then(() => null, (e) => e.code);
    expect(long).toBe("23514");
    const ids: { id: number; name: string }[] = [];
    for (const [i, s] of HOSTILE.entries()) {
      const name = `${s.slice(0, 190)} #${i}`;
      const [p] = await sql`insert into public.performers (name) values (${"Band " + i}) returning id`;
      const [c] = await sql`insert into public.clients (name, email, time_zone)
                            values (${name}, ${`${uniquePrefix("hostile")}@example.test`}, ${zoneAt(12)}) returning id`;
      const [b] = await sql`insert into public.bookings (client_id, performer_id, status, event_at, deposit_paid_at)
                            values (${c.id}, ${p.id}, 'confirmed', now() + interval '20 hours', now()) returning id`;
      ids.push({ id: Number(b.id), name });
    }
    await sql`select public.send_booking_reminders()`;
    for (const { id, name } of ids) {
      const mail = await eventually(async () => {
        const posts = (await sandboxRequests(info, { provider: "resend", method: "POST", path: "/emails" }))
          .filter((r) => r.headers["idempotency-key"] === `event_reminder:${id}:email` && r.status === 200);
        return posts[0];
      }, `booking ${id}'s email`, 30_000);
      // The row holds the string as it was written; the email has it on one line (control characters
      // become spaces in an email: no header can be injected), escaped in the HTML.
      const [row] = await sql`select c.name from public.clients c join public.bookings b on b.client_id = c.id where b.id = ${id}`;
      expect(row.name).toBe(name);
      const oneLine = name.replace(/[\u0000-\u001f\u007f]+/g, " ").replace(/ {2,}/g, " ").trim();
      expect(mail.body.text).toContain(`Hi ${oneLine},`);
      expect(mail.body.html).not.toContain("<script");
    }
    // The tables the strings tried to drop are there.
    const [{ n }] = await sql`select count(*)::int as n from jobs.task where key like any (${ids.map((b) => `event_reminder:${b.id}:%`)})`;
    expect(n).toBe(ids.length);
    await sql`update public.bookings set status = 'cancelled', cancelled_at = now() where id = any (${ids.map((b) => b.id)})`;
  }, 90_000);
});

describe("SQL: anon and authenticated with forged request.jwt.claims", () => {
  const attackers = async (): Promise<Attacker[]> => {
    // A real user who owns nothing: every row it sees is another user's.
    const [u] = await sql`insert into auth.users (id, email) values (gen_random_uuid(), ${uniquePrefix("intruder") + "@example.test"}) returning id`;
    return [
      { name: "anon claiming service_role", role: "anon", claims: { role: "service_role" } },
      { name: "authenticated claiming service_role", role: "authenticated", claims: { role: "service_role", sub: randomUUID() } },
      { name: "authenticated as another user", role: "authenticated", claims: { role: "authenticated", sub: u.id } },
    ];
  };

  it("every table: select, insert, update and delete reach 0 rows or are refused", async () => {
    const list = await attackers();
    let covered = 0;
    for (const a of list) {
      const probes = await probeTables(sql, a);
      covered = probes.length;
      const leaks = probes.filter((p) =>
        !(p.select === "0 rows" || p.table in CLIENT_READABLE || p.select.startsWith("refused")) ||
        !p.insert.startsWith("refused") ||
        !(p.update === "0 rows" || p.update.startsWith("refused") || p.update === "no columns") ||
        !(p.delete === "0 rows" || p.delete.startsWith("refused"))
      );
      expect(leaks, `${a.name}: tables it reached`).toEqual([]);
      // The probe means something: many tables hold rows the attacker was refused.
      expect(probes.filter((p) => p.rowsAsOwner > 0).length).toBeGreaterThan(10);
      const granted = await probeGrantedUpdates(sql, a);
      expect(granted.filter((g) => !(g.result === "0 rows" || g.result.startsWith("refused"))), `${a.name}: granted updates`).toEqual([]);
    }
    console.log(`attack surface: ${covered} tables and views probed as ${list.length} attackers`);
  });

  it("every project function: EXECUTE refused to anon and authenticated, but the listed client helpers", async () => {
    const fns = await projectFunctions(sql);
    const allowed = fns.filter((f) => f.anon || f.authenticated).map((f) => f.fn);
    expect(allowed.filter((f) => !(f in CLIENT_FUNCTIONS)), "executable by client roles").toEqual([]);
    expect(fns.filter((f) => f.fn.startsWith("jobs.")).length).toBeGreaterThan(30);
    // And calling them (zero-argument ones, rolled back) is refused too, not just unprivileged on paper.
    const zeroArg = fns.filter((f) => f.nargs === 0 && !f.trigger && !(f.fn in CLIENT_FUNCTIONS)).map((f) => f.fn);
    const [{ procs }] = await sql`select array_agg(p.oid::regprocedure::text) as procs from pg_proc p where p.prokind = 'p'`;
    const callable = zeroArg.filter((f) => !(procs ?? []).includes(f));
    for (const a of (await attackers()).slice(0, 2)) {
      const ran = (await callZeroArgFunctions(sql, a, callable)).filter((r) => r.result !== "refused 42501");
      expect(ran, `${a.name}: functions it could call`).toEqual([]);
    }
    console.log(`attack surface: ${fns.length} functions checked (${callable.length} called), ${allowed.length} client helpers allowed`);
  });
});

describe("secrets", () => {
  it("no response body or header the suite received carries a secret in play", () => {
    const secrets = secretsInPlay(info as never);
    expect(secrets.length).toBeGreaterThan(8);
    expect(received.length).toBeGreaterThan(100);
    const hits = received.flatMap((r) => findSecrets(`${r.headers}\n${r.text}`, secrets).map((s) => `${r.what}: ${s}`));
    expect(hits).toEqual([]);
  });
});
