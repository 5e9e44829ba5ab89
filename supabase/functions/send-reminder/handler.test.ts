// send-reminder handler against the in-process FakeJobStore and in-process fake Twilio and
// Resend (an injected fetch). No database, no network. What SQL does with each outcome
// (bookings.reminder_context, bookings.apply_reminder_outcomes) is tested in pgTAP; here: which
// calls are made and which outcome, with which data, is recorded.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import type { Outcome } from "../_shared/outcome.ts";
import { fakeFetch, type FakeFetchAnswer, type FakeFetchRequest } from "../_shared/testing/fake_fetch.ts";
import { FakeJobStore, type FakeTask } from "../_shared/testing/fake_job_store.ts";
import { BUSY_RETRY_SECONDS, createHandler, type HandlerDeps } from "./handler.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const SID = "AC00000000000000000000000000000001";
const AUTH_TOKEN = "duework-local-twilio-auth-token";
const BASIC = btoa(`${SID}:${AUTH_TOKEN}`);
const RESEND_KEY = "re_duework_local_key";
const ENV = {
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }),
  SUPABASE_URL: "https://ref.supabase.co",
  TWILIO_BASE_URL: "http://twilio.test",
  TWILIO_ACCOUNT_SID: SID,
  TWILIO_AUTH_TOKEN: AUTH_TOKEN,
  TWILIO_WHATSAPP_FROM: "+14155238886",
  RESEND_BASE_URL: "http://resend.test",
  RESEND_API_KEY: RESEND_KEY,
  RESEND_FROM: "Duework Bookings <bookings@duework.test>",
};
const EVENT_TEMPLATE = "HX00000000000000000000000000000e01";
const BALANCE_TEMPLATE = "HX00000000000000000000000000000b01";

type Channel = "whatsapp" | "email";
type Kind = "event_reminder" | "balance_reminder" | "booking_cancelled";

interface Notification {
  taskId: number;
  channel: Channel;
  kind?: Kind;
  reconcileSince?: string | null;
  clientName?: string;
  bookingId?: number;
}

function lease(taskId: number): string {
  return `00000000-0000-4000-8000-${String(taskId).padStart(12, "0")}`;
}
const reference = (n: Notification) => `BK-${String(n.bookingId ?? 42).padStart(6, "0")}`;
function contextOf(n: Notification) {
  const kind = n.kind ?? "event_reminder";
  const bookingId = n.bookingId ?? 42;
  return {
    notification_id: 1000 + n.taskId,
    channel: n.channel,
    kind,
    to: n.channel === "email" ? `client${n.taskId}@example.com` : `+4477009${String(n.taskId).padStart(5, "0")}`,
    idempotency_key: `${kind}:${bookingId}:${n.channel}`,
    reconcile_since: n.reconcileSince ?? null,
    content_sid: n.channel === "whatsapp" ? { event_reminder: EVENT_TEMPLATE, balance_reminder: BALANCE_TEMPLATE }[kind as string] ?? null : null,
    booking: {
      id: bookingId,
      reference: reference(n),
      client_name: n.clientName ?? "Ana",
      performer_name: "The Jazz Trio",
      event_at: "2026-12-03T19:00:00Z",
      time_zone: "Europe/London",
      balance_due: 15000,
      currency: "GBP",
      cancel_reason: null,
    },
  };
}
const payloadOf = (n: Notification) => ({ notification_id: 1000 + n.taskId, channel: n.channel });
const task = (n: Notification): FakeTask => ({ taskId: n.taskId, leaseToken: lease(n.taskId), payload: payloadOf(n), context: contextOf(n) });
const batch = (ns: Notification[]) => ({
  job: "booking-reminders",
  batch_id: 9,
  tasks: ns.map((n) => ({ id: n.taskId, lease_token: lease(n.taskId), attempt: 1, payload: payloadOf(n) })),
});

// ---------------------------------------------------------------------------------------------
// Fake providers

type ProviderRequest = FakeFetchRequest<"twilio" | "resend">;
type Answer = FakeFetchAnswer;
type Respond = (req: ProviderRequest) => Answer;

let sidCounter = 0;
const twilioCreated = (): Answer => ({
  status: 201,
  body: { sid: `SM${(++sidCounter).toString(16).padStart(32, "0")}`, status: "queued", account_sid: SID, error_code: null },
});
const resendSent = (req: ProviderRequest): Answer => ({ status: 200, body: { id: `email-${String(req.json?.to)}` } });
const twilioError = (status: number, code: number, message = `error ${code}`, headers: Record<string, string> = {}): Answer => ({
  status,
  body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
  headers,
});
const resendError = (status: number, name: string, message = name, headers: Record<string, string> = {}): Answer => ({
  status,
  body: { statusCode: status, name, message },
  headers,
});
const defaultRespond: Respond = (req) => req.provider === "twilio" ? twilioCreated() : resendSent(req);

function fakeProviders(respond: Respond) {
  return fakeFetch({ "twilio.test": "twilio", "resend.test": "resend" }, respond, {
    dropCause: (url) => `error sending request for ${url.href} (Basic ${BASIC}): client error (SendRequest): connection closed before message completed`,
  });
}

// ---------------------------------------------------------------------------------------------
// Running the handler

interface Run {
  status: number;
  // deno-lint-ignore no-explicit-any
  json: any;
  text: string;
  store: FakeJobStore;
  requests: ProviderRequest[];
  logs: string[];
}

async function run(
  notifications: Notification[],
  respond: Respond = defaultRespond,
  opts: { backlog?: Notification[]; env?: Record<string, string | undefined>; deps?: Partial<HandlerDeps> } = {},
): Promise<Run> {
  const store = new FakeJobStore({ tasks: notifications.map(task), backlog: (opts.backlog ?? []).map(task) });
  const providers = fakeProviders(respond);
  const logs: string[] = [];
  const handler = createHandler({
    env: envFrom({ ...ENV, ...opts.env }),
    store: () => store,
    fetch: providers.fetch,
    log: (l) => logs.push(l),
    ...opts.deps,
  });
  const res = await handler(new Request("http://fn.test/send-reminder", {
    method: "POST",
    headers: { "content-type": "application/json", apikey: SECRET_KEY },
    body: JSON.stringify(batch(notifications)),
  }));
  const text = await res.text();
  const r = { status: res.status, json: text ? JSON.parse(text) : null, text, store, requests: providers.requests, logs };
  assertNoSecrets(r);
  return r;
}

/** The auth token, the Basic credentials and the Resend key appear nowhere: not in the response,
 * the logs, or any recorded outcome (errors and data). */
function assertNoSecrets(r: Run) {
  const everything = [r.text, ...r.logs, JSON.stringify(r.store.recorded.map((x) => x.outcome))].join("\n");
  for (const secret of [AUTH_TOKEN, BASIC, RESEND_KEY]) assert.equal(everything.includes(secret), false, `secret leaked: ${secret.slice(0, 6)}…`);
}

const outcome = (r: Run, taskId: number) => r.store.outcomeOf(taskId) as Outcome & { data?: Record<string, unknown>; after?: number | null; pause?: string | null; error?: string };
const posts = (r: Run, provider: "twilio" | "resend") => r.requests.filter((q) => q.provider === provider && q.method === "POST");
const gets = (r: Run) => r.requests.filter((q) => q.provider === "twilio" && q.method === "GET");

// ---------------------------------------------------------------------------------------------

Deno.test("send-reminder: a WhatsApp and an email task → two ok outcomes with the provider ids", async () => {
  const r = await run([{ taskId: 1, channel: "whatsapp" }, { taskId: 2, channel: "email" }]);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.succeeded, 2);
  assert.deepEqual(r.json.messages, { whatsapp_sent: 1, emails_sent: 1, reconciled: 0, twilio_calls: 1, resend_calls: 1 });

  const [tw] = posts(r, "twilio");
  assert.equal(tw.path, `/2010-04-01/Accounts/${SID}/Messages.json`);
  assert.equal(tw.headers.get("authorization"), `Basic ${BASIC}`);
  assert.deepEqual(Object.fromEntries(tw.form), {
    To: "whatsapp:+447700900001",
    From: "whatsapp:+14155238886",
    ContentSid: EVENT_TEMPLATE,
    ContentVariables: JSON.stringify({ "1": "Ana", "2": "Thursday, 3 December 2026 at 19:00 GMT", "3": "The Jazz Trio", "4": "BK-000042" }),
    StatusCallback: "https://ref.supabase.co/functions/v1/twilio-status",
  });
  const whatsapp = outcome(r, 1);
  assert.equal(whatsapp.outcome, "ok");
  assert.deepEqual(whatsapp.data, { provider_message_id: JSON.parse(JSON.stringify(whatsapp.data)).provider_message_id, status: "queued", reconciled: false });
  assert.match(String(whatsapp.data!.provider_message_id), /^SM[0-9a-f]{32}$/);

  const [em] = posts(r, "resend");
  assert.equal(em.path, "/emails");
  assert.equal(em.headers.get("authorization"), `Bearer ${RESEND_KEY}`);
  assert.equal(em.headers.get("idempotency-key"), "event_reminder:42:email");
  assert.equal(em.json!.from, ENV.RESEND_FROM);
  assert.equal(em.json!.to, "client2@example.com");
  assert.equal(em.json!.subject, "Reminder: The Jazz Trio on Thursday, 3 December 2026 at 19:00 GMT (BK-000042)");
  assert.match(String(em.json!.text), /The Jazz Trio performs for you on Thursday, 3 December 2026 at 19:00 GMT/);
  assert.match(String(em.json!.html), /<p>Booking BK-000042<\/p>/);
  assert.deepEqual(em.json!.tags, [{ name: "kind", value: "event_reminder" }, { name: "notification_id", value: "1002" }]);
  assert.deepEqual(outcome(r, 2), {
    outcome: "ok",
    data: { provider_message_id: "email-client2@example.com", status: "sent", reconciled: false },
    tag: "emails_sent",
  });
  assert.deepEqual(r.store.finishedBatches, [9]);
});

Deno.test("send-reminder: balance reminder renders the amount in minor units and the local date; TWILIO_STATUS_CALLBACK_URL wins", async () => {
  const r = await run(
    [{ taskId: 1, channel: "whatsapp", kind: "balance_reminder" }, { taskId: 2, channel: "email", kind: "balance_reminder", clientName: "<Ana & \"Bo\">" }],
    defaultRespond,
    { env: { TWILIO_STATUS_CALLBACK_URL: "https://hooks.example.com/twilio-status" } },
  );
  const [tw] = posts(r, "twilio");
  assert.equal(tw.form.get("ContentSid"), BALANCE_TEMPLATE);
  assert.deepEqual(JSON.parse(tw.form.get("ContentVariables")!), { "1": "Ana", "2": "£150.00", "3": "Thursday, 3 December 2026", "4": "BK-000042" });
  assert.equal(tw.form.get("StatusCallback"), "https://hooks.example.com/twilio-status");
  const [em] = posts(r, "resend");
  assert.equal(em.json!.subject, "Balance of £150.00 due for your event on Thursday, 3 December 2026 (BK-000042)");
  assert.match(String(em.json!.html), /Hi &lt;Ana &amp; &quot;Bo&quot;&gt;,/);
  assert.doesNotMatch(String(em.json!.html), /<Ana/);
  assert.match(String(em.json!.text), /^Hi <Ana & "Bo">,/);
});

Deno.test("send-reminder: reconcile_since and a matching message → ok reconciled, no POST", async () => {
  const since = "2026-12-02T10:00:00Z";
  const r = await run([{ taskId: 1, channel: "whatsapp", reconcileSince: since }], (req) =>
    req.method === "GET"
      ? {
        status: 200,
        body: {
          messages: [{
            sid: "SMfound0000000000000000000000000a",
            status: "delivered",
            body: "Hi Ana, a reminder: The Jazz Trio performs for you on … Booking BK-000042.",
            date_created: "Wed, 02 Dec 2026 10:00:01 +0000",
          }],
        },
      }
      : twilioCreated());
  assert.equal(posts(r, "twilio").length, 0, "nothing sent again");
  assert.equal(gets(r).length, 1);
  assert.deepEqual(Object.fromEntries(gets(r)[0].query), { To: "whatsapp:+447700900001", From: "whatsapp:+14155238886", PageSize: "20" });
  assert.deepEqual(outcome(r, 1), {
    outcome: "ok",
    data: { provider_message_id: "SMfound0000000000000000000000000a", status: "delivered", reconciled: true },
    tag: "reconciled",
  });
  assert.deepEqual(r.json.messages, { whatsapp_sent: 0, emails_sent: 0, reconciled: 1, twilio_calls: 1, resend_calls: 0 });
});

Deno.test("send-reminder: reconcile with no match → one POST; a failed lookup → retry and no POST", async () => {
  const since = "2026-12-02T10:00:00Z";
  const none = await run([{ taskId: 1, channel: "whatsapp", reconcileSince: since }], (req) =>
    req.method === "GET" ? { status: 200, body: { messages: [] } } : twilioCreated());
  assert.equal(gets(none).length, 1);
  assert.equal(posts(none, "twilio").length, 1);
  assert.equal(outcome(none, 1).outcome, "ok");
  assert.equal(outcome(none, 1).data!.reconciled, false);

  const failed = await run([{ taskId: 1, channel: "whatsapp", reconcileSince: since }], (req) =>
    req.method === "GET" ? twilioError(500, 20500, "Internal error") : twilioCreated());
  assert.equal(posts(failed, "twilio").length, 0, "never send blind");
  assert.equal(outcome(failed, 1).outcome, "retry");
  assert.match(outcome(failed, 1).error!, /^not sent: reconcile lookup: Twilio error 20500/);
});

Deno.test("send-reminder: 21211 → dead with error_code 21211 while the email in the same batch succeeds", async () => {
  const r = await run([{ taskId: 1, channel: "whatsapp" }, { taskId: 2, channel: "email" }], (req) =>
    req.provider === "twilio" ? twilioError(400, 21211, "The 'To' number +447700900001 is not a valid phone number.") : resendSent(req));
  assert.equal(r.status, 207);
  assert.equal(outcome(r, 1).outcome, "dead");
  assert.deepEqual(outcome(r, 1).data, { error_code: "21211" });
  assert.match(outcome(r, 1).error!, /^Twilio error 21211 \(HTTP 400\): The 'To' number/);
  assert.equal(outcome(r, 2).outcome, "ok");
  assert.equal(r.json.dead, 1);
  assert.equal(r.json.succeeded, 1);
});

Deno.test("send-reminder: Resend permanent errors → dead with the error name", async () => {
  const r = await run([{ taskId: 1, channel: "email" }], () => resendError(409, "invalid_idempotent_request", "Same key, different payload"));
  assert.deepEqual(outcome(r, 1), {
    outcome: "dead",
    error: "Resend 409 invalid_idempotent_request: Same key, different payload",
    data: { error_code: "invalid_idempotent_request" },
  });
});

Deno.test("send-reminder: 20003 → release with a clear message, one call, 500 configuration_error", async () => {
  const r = await run([{ taskId: 1, channel: "whatsapp" }, { taskId: 2, channel: "whatsapp" }, { taskId: 3, channel: "whatsapp" }], () =>
    twilioError(401, 20003, `Authenticate (you sent ${AUTH_TOKEN})`));
  assert.equal(r.status, 500);
  assert.equal(r.json.error, "configuration_error");
  assert.match(r.json.message, /Twilio refused the credentials \(Twilio error 20003 \(HTTP 401\): Authenticate.*check the TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN/);
  assert.equal(r.requests.length, 1, "the channel's other tasks were not called");
  for (const id of [1, 2, 3]) assert.equal(outcome(r, id).outcome, "release");
  assert.equal(r.json.released, 3);
});

Deno.test("send-reminder: a 429 storm costs one call; every task of that channel is retried with the wait and pause", async () => {
  const ns: Notification[] = [1, 2, 3].map((i) => ({ taskId: i, channel: "whatsapp" as const, bookingId: 40 + i }));
  const backlog: Notification[] = [{ taskId: 4, channel: "whatsapp", bookingId: 44 }, { taskId: 5, channel: "email", bookingId: 45 }];
  const r = await run([...ns, { taskId: 6, channel: "email", bookingId: 46 }], (req) =>
    req.provider === "twilio" ? twilioError(429, 20429, "Too Many Requests", { "retry-after": "30" }) : resendSent(req), { backlog });
  assert.equal(posts(r, "twilio").length, 1, "one Twilio call in the request");
  for (const id of [1, 2, 3, 4]) {
    const o = outcome(r, id);
    assert.equal(o.outcome, "retry", `task ${id}`);
    assert.equal(o.pause, "twilio");
    assert.ok(o.after !== null && o.after !== undefined && o.after >= 29 && o.after <= 30, `after ${o.after}`);
  }
  const called = [1, 2, 3, 4].filter((id) => !outcome(r, id).error!.startsWith("not called: "));
  assert.equal(called.length, 1);
  for (const id of [1, 2, 3, 4]) {
    const o = outcome(r, id) as Extract<Outcome, { outcome: "retry" }>;
    assert.equal(o.notAttempted === true, id !== called[0], `task ${id}: only the task that called uses an attempt`);
  }
  assert.match(outcome(r, [1, 2, 3, 4].find((id) => id !== called[0])!).error!, /^not called: Twilio limited this request earlier \(Twilio error 20429/);
  assert.equal(outcome(r, 5).outcome, "ok", "the email channel is not affected");
  assert.equal(outcome(r, 6).outcome, "ok");
  assert.deepEqual(r.json.messages, { whatsapp_sent: 0, emails_sent: 2, reconciled: 0, twilio_calls: 1, resend_calls: 2 });
});

Deno.test("send-reminder: Resend 429 rate limit / quota pause \"resend\"; busy retries after 2 s", async () => {
  const limited = await run([{ taskId: 1, channel: "email" }, { taskId: 2, channel: "email", bookingId: 43 }], () =>
    resendError(429, "rate_limit_exceeded", "Too many requests", { "retry-after": "1" }));
  assert.equal(limited.requests.length, 1);
  for (const id of [1, 2]) {
    assert.equal(outcome(limited, id).pause, "resend");
    assert.equal(outcome(limited, id).after, 1);
  }
  const quota = await run([{ taskId: 1, channel: "email" }], () => resendError(429, "daily_quota_exceeded", "quota", { "ratelimit-reset": "7200" }));
  const q = outcome(quota, 1) as Extract<Outcome, { outcome: "retry" }>;
  assert.deepEqual([q.outcome, q.error, q.pause], ["retry", "Resend 429 daily_quota_exceeded: quota", "resend"]);
  assert.ok(q.after! >= 7200, "waits until the quota resets (at least what Resend said)");
  const busy = await run([{ taskId: 1, channel: "email" }], () => resendError(409, "concurrent_idempotent_requests", "in flight"));
  assert.deepEqual(outcome(busy, 1), { outcome: "retry", error: "Resend 409 concurrent_idempotent_requests: in flight", after: BUSY_RETRY_SECONDS });
  assert.equal(BUSY_RETRY_SECONDS, 2);
});

Deno.test("send-reminder: a missing setting → release naming it, no call; the other channel still sends", async () => {
  const r = await run([{ taskId: 1, channel: "whatsapp" }], defaultRespond, { env: { TWILIO_AUTH_TOKEN: undefined } });
  assert.equal(r.status, 500);
  assert.equal(r.requests.length, 0);
  assert.equal(outcome(r, 1).outcome, "release");
  assert.equal(r.json.message, "WhatsApp reminders: TWILIO_AUTH_TOKEN is not set (supabase secrets set TWILIO_AUTH_TOKEN=…)");

  const email = await run([{ taskId: 1, channel: "email" }], defaultRespond, { env: { RESEND_FROM: " " } });
  assert.equal(email.json.message, "Email reminders: RESEND_FROM is not set (supabase secrets set RESEND_FROM=…)");
  const key = await run([{ taskId: 1, channel: "email" }], defaultRespond, { env: { RESEND_API_KEY: undefined } });
  assert.match(key.json.message, /RESEND_API_KEY is not set/);
  const from = await run([{ taskId: 1, channel: "whatsapp" }], defaultRespond, { env: { TWILIO_WHATSAPP_FROM: undefined } });
  assert.match(from.json.message, /TWILIO_WHATSAPP_FROM is not set/);
  const sid = await run([{ taskId: 1, channel: "whatsapp" }], defaultRespond, { env: { TWILIO_ACCOUNT_SID: "AC123" } });
  assert.match(sid.json.message, /TWILIO_ACCOUNT_SID must be AC followed by 32 hex characters/);

  // Email needs none of the Twilio settings.
  const other = await run([{ taskId: 1, channel: "email" }], defaultRespond, { env: { TWILIO_AUTH_TOKEN: undefined, TWILIO_ACCOUNT_SID: undefined } });
  assert.equal(other.status, 200);
});

Deno.test("send-reminder: a timeout or dropped connection → retry (unknown outcome); the network text carries no credentials", async () => {
  const timeout = await run([{ taskId: 1, channel: "whatsapp" }], () => "hang", { deps: { timeoutMs: 50 } });
  assert.equal(outcome(timeout, 1).outcome, "retry");
  assert.equal(outcome(timeout, 1).after, null);
  assert.match(outcome(timeout, 1).error!, /^outcome unknown, the next attempt looks the message up before sending: timeout/);
  const dropped = await run([{ taskId: 1, channel: "whatsapp" }], () => "drop");
  assert.match(outcome(dropped, 1).error!, /^outcome unknown.*connection closed before message completed/);
  assert.match(outcome(dropped, 1).error!, /\[redacted\]/);
  const resendDown = await run([{ taskId: 1, channel: "email" }], () => resendError(503, "internal_server_error", "down", { "retry-after": "5" }));
  assert.deepEqual(outcome(resendDown, 1), { outcome: "retry", error: "Resend 503 internal_server_error: down", after: 5 });
});

Deno.test("send-reminder: a WhatsApp kind without a template is released (configuration) without a call; unrenderable bookings → dead", async () => {
  const r = await run([{ taskId: 1, channel: "whatsapp", kind: "booking_cancelled" }, { taskId: 2, channel: "email", kind: "booking_cancelled" }]);
  assert.equal(posts(r, "twilio").length, 0);
  const released = outcome(r, 1) as Extract<Outcome, { outcome: "release" }>;
  assert.equal(released.outcome, "release");
  assert.match(released.error, /bookings\.whatsapp_templates/);
  assert.equal(outcome(r, 2).outcome, "ok");
  assert.equal(posts(r, "resend")[0].json!.subject, "Booking BK-000042 cancelled");

  const store = new FakeJobStore({
    tasks: [{ ...task({ taskId: 1, channel: "email" }), context: { ...contextOf({ taskId: 1, channel: "email" }), booking: { ...contextOf({ taskId: 1, channel: "email" }).booking, time_zone: "Mars/Olympus" } } }],
  });
  const providers = fakeProviders(defaultRespond);
  const handler = createHandler({ env: envFrom(ENV), store: () => store, fetch: providers.fetch, log: () => {} });
  await handler(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify(batch([{ taskId: 1, channel: "email" }])) }));
  assert.equal(providers.requests.length, 0);
  const o = store.outcomeOf(1) as Extract<Outcome, { outcome: "dead" }>;
  assert.equal(o.outcome, "dead");
  assert.deepEqual(o.data, { error_code: "render_failed" });
  assert.match(o.error, /unknown time_zone "Mars\/Olympus"/);
});

Deno.test("send-reminder: payloads with or without rate_keys are accepted; a bad channel is a 400 with nothing touched", async () => {
  const store = new FakeJobStore({ tasks: [task({ taskId: 1, channel: "email" })] });
  const providers = fakeProviders(defaultRespond);
  const handler = createHandler({ env: envFrom(ENV), store: () => store, fetch: providers.fetch, log: () => {} });
  const body = batch([{ taskId: 1, channel: "email" }]);
  (body.tasks[0].payload as Record<string, unknown>).rate_keys = ["resend"];
  const ok = await handler(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify(body) }));
  assert.equal(ok.status, 200);
  (body.tasks[0].payload as Record<string, unknown>).channel = "sms";
  const bad = await handler(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify(body) }));
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).field, "tasks.0.payload.channel");
  const unauthorized = await handler(new Request("http://fn.test/", { method: "POST", body: JSON.stringify(body) }));
  assert.equal(unauthorized.status, 401);
  assert.equal(providers.requests.length, 1);
});

Deno.test("send-reminder: slots claim the backlog (a large batch in one request) and send each once", async () => {
  const first: Notification[] = Array.from({ length: 10 }, (_, i) => ({ taskId: i + 1, channel: i % 2 ? "email" : "whatsapp", bookingId: 100 + i }));
  const backlog: Notification[] = Array.from({ length: 190 }, (_, i) => ({ taskId: 100 + i, channel: i % 2 ? "email" : "whatsapp", bookingId: 200 + i }));
  const r = await run(first, defaultRespond, { backlog });
  assert.equal(r.json.processed, 200);
  assert.equal(r.json.succeeded, 200);
  assert.equal(r.requests.length, 200);
  assert.equal(new Set(posts(r, "resend").map((q) => q.headers.get("idempotency-key"))).size, 100);
  assert.equal(r.json.messages.whatsapp_sent, 100);
  assert.equal(r.json.messages.emails_sent, 100);
});
