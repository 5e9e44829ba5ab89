// send-notification against the in-process FakeJobStore and a fake Resend (an injected fetch).
// No database, no network: which calls are made, and which outcome, with which data, is recorded.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import type { Outcome } from "../_shared/outcome.ts";
import { fakeFetch, type FakeFetchAnswer, type FakeFetchRequest } from "../_shared/testing/fake_fetch.ts";
import { FakeJobStore, type FakeTask } from "../_shared/testing/fake_job_store.ts";
import { BUSY_RETRY_SECONDS, createHandler, type HandlerDeps } from "./handler.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const RESEND_KEY = "re_duework_outreach_key_0123";
const ENV = {
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }),
  RESEND_BASE_URL: "http://resend.test",
  RESEND_API_KEY: RESEND_KEY,
  RESEND_FROM: "Duework Bookings <bookings@duework.test>",
  OUTREACH_EMAIL_FROM: "Duework Outreach <outreach@duework.test>",
};

const lease = (id: number) => `00000000-0000-4000-8000-${String(id).padStart(12, "0")}`;
const contextOf = (id: number) => ({
  notification_id: 500 + id,
  to: `user${id}@example.com`,
  subject: `Jane Doe accepted your invitation (${id})`,
  text: `Jane Doe <jane@example.com> accepted your invitation.\nCampaign: "Q1 & beyond"\n\nOpen Duework to follow up.`,
  idempotency_key: `outreach-notification:${500 + id}`,
});
const task = (id: number): FakeTask => ({ taskId: id, leaseToken: lease(id), payload: { notification_id: 500 + id }, context: contextOf(id) });
const batch = (ids: number[], payload: (id: number) => Record<string, unknown> = (id) => ({ notification_id: 500 + id })) => ({
  job: "outreach-notifications",
  batch_id: 7,
  tasks: ids.map((id) => ({ id, lease_token: lease(id), attempt: 1, payload: payload(id) })),
});

type ResendRequest = FakeFetchRequest<"resend">;
type Answer = FakeFetchAnswer;

const sent = (req: ResendRequest): Answer => ({ status: 200, body: { id: `email-${String(req.json?.to)}` } });
const resendError = (status: number, name: string, message = name, headers: Record<string, string> = {}): Answer => ({
  status,
  body: { statusCode: status, name, message },
  headers,
});

const fakeResend = (respond: (req: ResendRequest) => Answer) =>
  fakeFetch({ "resend.test": "resend" }, respond, { dropCause: () => `connection reset (Bearer ${RESEND_KEY})` });

interface Run {
  status: number;
  // deno-lint-ignore no-explicit-any
  json: any;
  store: FakeJobStore;
  requests: ResendRequest[];
}

async function run(
  ids: number[],
  respond: (req: ResendRequest) => Answer = sent,
  opts: { backlog?: number[]; env?: Record<string, string | undefined>; deps?: Partial<HandlerDeps>; payload?: (id: number) => Record<string, unknown> } = {},
): Promise<Run> {
  const store = new FakeJobStore({ tasks: ids.map(task), backlog: (opts.backlog ?? []).map(task) });
  const resend = fakeResend(respond);
  const logs: string[] = [];
  const handler = createHandler({ env: envFrom({ ...ENV, ...opts.env }), store: () => store, fetch: resend.fetch, log: (l) => logs.push(l), ...opts.deps });
  const res = await handler(new Request("http://fn.test/send-notification", {
    method: "POST",
    headers: { "content-type": "application/json", apikey: SECRET_KEY },
    body: JSON.stringify(batch(ids, opts.payload)),
  }));
  const text = await res.text();
  // The Resend key appears nowhere: not in the response, the logs, or any recorded outcome.
  const everything = [text, ...logs, JSON.stringify(store.recorded.map((r) => r.outcome))].join("\n");
  assert.equal(everything.includes(RESEND_KEY), false, "the Resend key leaked");
  return { status: res.status, json: text ? JSON.parse(text) : null, store, requests: resend.requests };
}

type AnyOutcome = Outcome & { data?: Record<string, unknown>; after?: number | null; pause?: string | null; error?: string; notAttempted?: boolean };
const outcome = (r: Run, id: number) => r.store.outcomeOf(id) as AnyOutcome;

Deno.test("send-notification: sent → ok {provider_message_id}; one POST /emails with the key, the Idempotency-Key, text and escaped HTML", async () => {
  const r = await run([1]);
  assert.equal(r.status, 200);
  assert.equal(r.json.succeeded, 1);
  assert.deepEqual(r.json.messages, { emails_sent: 1, resend_calls: 1 });
  assert.deepEqual(outcome(r, 1), { outcome: "ok", data: { provider_message_id: "email-user1@example.com" }, tag: "emails_sent" });

  const [req] = r.requests;
  assert.equal(req.path, "/emails");
  assert.equal(req.headers.get("authorization"), `Bearer ${RESEND_KEY}`);
  assert.equal(req.headers.get("idempotency-key"), "outreach-notification:501");
  assert.equal(req.headers.get("user-agent"), "duework-send-notification");
  const c = contextOf(1);
  assert.deepEqual({ ...req.json!, html: undefined }, {
    from: ENV.OUTREACH_EMAIL_FROM,
    to: c.to,
    subject: c.subject,
    text: c.text,
    html: undefined,
    tags: [{ name: "source", value: "outreach" }, { name: "notification_id", value: "501" }],
  });
  const html = String(req.json!.html);
  assert.match(html, /<title>Jane Doe accepted your invitation \(1\)<\/title>/);
  assert.match(html, /<p>Jane Doe &lt;jane@example.com&gt; accepted your invitation\.<br>\nCampaign: &quot;Q1 &amp; beyond&quot;<\/p>\n<p>Open Duework to follow up\.<\/p>/);
  assert.doesNotMatch(html, /<jane@/);
});

Deno.test("send-notification: the sender is OUTREACH_EMAIL_FROM, else RESEND_FROM; neither → release naming both, no call", async () => {
  const fallback = await run([1], sent, { env: { OUTREACH_EMAIL_FROM: undefined } });
  assert.equal(fallback.requests[0].json!.from, ENV.RESEND_FROM);
  assert.equal(outcome(fallback, 1).outcome, "ok");
  const blank = await run([1], sent, { env: { OUTREACH_EMAIL_FROM: "  " } });
  assert.equal(blank.requests[0].json!.from, ENV.RESEND_FROM);

  const none = await run([1, 2], sent, { env: { OUTREACH_EMAIL_FROM: undefined, RESEND_FROM: undefined } });
  assert.equal(none.status, 500);
  assert.equal(none.json.error, "configuration_error");
  assert.equal(
    none.json.message,
    "Notification emails: OUTREACH_EMAIL_FROM is not set (supabase secrets set OUTREACH_EMAIL_FROM=…); nor is its fallback RESEND_FROM",
  );
  assert.equal(none.requests.length, 0);
  for (const id of [1, 2]) assert.equal(outcome(none, id).outcome, "release");

  const malformed = await run([1], sent, { env: { OUTREACH_EMAIL_FROM: "outreach at duework" } });
  assert.match(malformed.json.message, /^Notification emails: OUTREACH_EMAIL_FROM must be an address/);
  assert.equal(malformed.requests.length, 0);
});

Deno.test("send-notification: RESEND_API_KEY unset → release naming it, no call", async () => {
  const r = await run([1, 2, 3], sent, { env: { RESEND_API_KEY: undefined } });
  assert.equal(r.status, 500);
  assert.equal(r.json.message, "Notification emails: RESEND_API_KEY is not set (supabase secrets set RESEND_API_KEY=…)");
  assert.equal(r.requests.length, 0);
  assert.equal(r.json.released, 3);
});

Deno.test("send-notification: a refused key or sender → release naming the settings; one call for the request", async () => {
  const r = await run([1, 2, 3], () => resendError(403, "validation_error", `The outreach.duework.test domain is not verified (key ${RESEND_KEY})`));
  assert.equal(r.status, 500);
  assert.equal(r.requests.length, 1, "the request's other emails were not called");
  for (const id of [1, 2, 3]) assert.equal(outcome(r, id).outcome, "release");
  assert.match(r.json.message, /^Resend refused the key or the sender \(Resend 403 validation_error: .*\[redacted\].*check the RESEND_API_KEY and OUTREACH_EMAIL_FROM function secrets/);
  const fallback = await run([1], () => resendError(401, "missing_api_key"), { env: { OUTREACH_EMAIL_FROM: undefined } });
  assert.match(fallback.json.message, /check the RESEND_API_KEY and RESEND_FROM function secrets/);
});

Deno.test("send-notification: 422 and 409 invalid_idempotent_request → dead with the error name", async () => {
  const invalid = await run([1], () => resendError(422, "validation_error", "Invalid `to` field."));
  assert.deepEqual(outcome(invalid, 1), { outcome: "dead", error: "Resend 422 validation_error: Invalid `to` field.", data: { error_code: "validation_error" } });
  assert.equal(invalid.json.dead, 1);
  const conflict = await run([1], () => resendError(409, "invalid_idempotent_request", "Same key, different payload"));
  assert.deepEqual(outcome(conflict, 1).data, { error_code: "invalid_idempotent_request" });
});

Deno.test("send-notification: a 429 costs one call; every email of the request retries after the wait with pause \"resend\"", async () => {
  const r = await run([1, 2, 3], () => resendError(429, "rate_limit_exceeded", "Too many requests", { "retry-after": "30" }), { backlog: [4, 5] });
  assert.equal(r.requests.length, 1);
  const ids = [1, 2, 3, 4, 5];
  for (const id of ids) {
    const o = outcome(r, id);
    assert.equal(o.outcome, "retry", `task ${id}`);
    assert.equal(o.pause, "resend");
    assert.ok(o.after !== null && o.after !== undefined && o.after >= 29 && o.after <= 30, `after ${o.after}`);
  }
  const called = ids.filter((id) => outcome(r, id).notAttempted !== true);
  assert.equal(called.length, 1, "only the email that called uses an attempt");
  assert.equal(outcome(r, called[0]).error, "Resend 429 rate_limit_exceeded: Too many requests");
  assert.match(outcome(r, ids.find((id) => id !== called[0])!).error!, /^not called: Resend limited this request earlier \(Resend 429 rate_limit_exceeded/);
  assert.deepEqual(r.json.messages, { emails_sent: 0, resend_calls: 1 });
});

Deno.test("send-notification: a quota waits until it resets; busy retries after 2 s; 5xx, timeouts and network errors retry", async () => {
  const quota = await run([1], () => resendError(429, "monthly_quota_exceeded", "quota", { "ratelimit-reset": "7200" }));
  const q = outcome(quota, 1);
  assert.deepEqual([q.outcome, q.error, q.pause], ["retry", "Resend 429 monthly_quota_exceeded: quota", "resend"]);
  assert.ok(q.after! >= 7200);

  const busy = await run([1], () => resendError(409, "concurrent_idempotent_requests", "in flight"));
  assert.deepEqual(outcome(busy, 1), { outcome: "retry", error: "Resend 409 concurrent_idempotent_requests: in flight", after: BUSY_RETRY_SECONDS });
  assert.equal(BUSY_RETRY_SECONDS, 2);
  const busyTold = await run([1], () => resendError(409, "concurrent_idempotent_requests", "in flight", { "retry-after": "7" }));
  assert.equal(outcome(busyTold, 1).after, 7);

  const down = await run([1, 2], () => resendError(503, "internal_server_error", "down", { "retry-after": "5" }));
  assert.deepEqual(outcome(down, 1), { outcome: "retry", error: "Resend 503 internal_server_error: down", after: 5 });
  assert.equal(down.requests.length, 2, "a server error does not block the request's other emails");

  const timeout = await run([1], () => "hang", { deps: { timeoutMs: 50 } });
  assert.deepEqual(outcome(timeout, 1), { outcome: "retry", error: "timeout: Resend did not answer within 50 ms", after: null });
  const dropped = await run([1], () => "drop");
  assert.equal(outcome(dropped, 1).outcome, "retry");
  assert.match(outcome(dropped, 1).error!, /^network error: fetch failed: connection reset \(Bearer \[redacted\]\)/);
});

Deno.test("send-notification: payloads with rate_keys are accepted; a bad payload or a missing key is refused with nothing touched", async () => {
  const withKeys = await run([1], sent, { payload: (id) => ({ notification_id: 500 + id, rate_keys: ["resend"] }) });
  assert.equal(withKeys.status, 200);
  const bad = await run([1], sent, { payload: () => ({ notification_id: "501" }) });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.field, "tasks.0.payload.notification_id");
  assert.equal(bad.requests.length + bad.store.calls.length, 0);

  const store = new FakeJobStore({ tasks: [task(1)] });
  const resend = fakeResend(sent);
  const handler = createHandler({ env: envFrom(ENV), store: () => store, fetch: resend.fetch, log: () => {} });
  const unauthorized = await handler(new Request("http://fn.test/", { method: "POST", body: JSON.stringify(batch([1])) }));
  assert.equal(unauthorized.status, 401);
  assert.equal(resend.requests.length + store.calls.length, 0);
});

Deno.test("send-notification: a context that does not parse is not sent", async () => {
  const store = new FakeJobStore({ tasks: [{ ...task(1), context: { ...contextOf(1), to: "not-an-address" } }] });
  const resend = fakeResend(sent);
  const handler = createHandler({ env: envFrom(ENV), store: () => store, fetch: resend.fetch, log: () => {} });
  await handler(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify(batch([1])) }));
  assert.equal(resend.requests.length, 0);
  assert.equal(store.outcomeOf(1)?.outcome, "retry");
});
