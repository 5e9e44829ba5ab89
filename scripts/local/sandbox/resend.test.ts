// Fake Resend API: send + retrieve, auth and validation errors in the flat envelope,
// Idempotency-Key (replay, conflict, concurrent, 24 h expiry on an injected clock), the enforced
// team rate limit with ratelimit-* headers, quotas, faults, seeding and key redaction.

import assert from "node:assert/strict";
import { readSandboxRequest } from "./http.ts";
import { resend } from "./providers/resend.ts";
import type { ResendState } from "./providers/resend_state.ts";
import type { Sandbox } from "./server.ts";
import { call, type JsonResult, postJson, withSandbox } from "./test_util.ts";

const KEY = "re_duework_local_key";
const FROM = "Duework Bookings <bookings@duework.test>";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DAY_MS = 86_400_000;

const email = (extra: Record<string, unknown> = {}) => ({
  from: FROM,
  to: "ana@example.com",
  subject: "Your event is tomorrow",
  html: "<p>Hi Ana</p>",
  ...extra,
});

function sendEmail(
  sb: Sandbox,
  body: unknown,
  opts: { key?: string | null; idempotencyKey?: string; contentType?: string } = {},
): Promise<JsonResult> {
  const headers: Record<string, string> = { "content-type": opts.contentType ?? "application/json" };
  const key = opts.key === undefined ? KEY : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (opts.idempotencyKey !== undefined) headers["idempotency-key"] = opts.idempotencyKey;
  return call(`${sb.providers.resend}/emails`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const getEmail = (sb: Sandbox, id: string) =>
  call(`${sb.providers.resend}/emails/${id}`, { headers: { authorization: `Bearer ${KEY}` } });

const setOptions = (sb: Sandbox, options: unknown) => postJson(`${sb.controlUrl}/__state/resend`, options);

// deno-lint-ignore no-explicit-any
async function resendState(sb: Sandbox): Promise<any> {
  return (await call(`${sb.controlUrl}/__state/resend`)).body.state;
}

function assertResendError(res: JsonResult, status: number, name: string) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.deepEqual(Object.keys(res.body).sort(), ["message", "name", "statusCode"]);
  assert.equal(res.body.statusCode, status);
  assert.equal(res.body.name, name);
  assert.equal(typeof res.body.message, "string");
}

Deno.test("resend: send answers 200 {id} with ratelimit headers; GET /emails/{id} returns the email", async () => {
  await withSandbox(async (sb) => {
    const res = await sendEmail(sb, email({ to: ["ana@example.com", "Bob <bob@example.com>"], text: "Hi", tags: [{ name: "kind", value: "event_reminder" }] }));
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body), ["id"]);
    assert.match(res.body.id, UUID);
    assert.equal(res.headers.get("ratelimit-limit"), "5");
    assert.equal(res.headers.get("ratelimit-remaining"), "4");
    assert.equal(res.headers.get("ratelimit-reset"), "1");

    const got = await getEmail(sb, res.body.id);
    assert.equal(got.status, 200);
    assert.equal(got.body.object, "email");
    assert.equal(got.body.id, res.body.id);
    assert.deepEqual(got.body.to, ["ana@example.com", "Bob <bob@example.com>"]);
    assert.equal(got.body.from, FROM);
    assert.equal(got.body.subject, "Your event is tomorrow");
    assert.equal(got.body.html, "<p>Hi Ana</p>");
    assert.equal(got.body.text, "Hi");
    assert.match(got.body.created_at, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\+00$/);
    assert.deepEqual(got.body.tags, [{ name: "kind", value: "event_reminder" }]);
    assert.equal(got.headers.get("ratelimit-remaining"), "3"); // reads count too (per team)

    assertResendError(await getEmail(sb, "00000000-0000-4000-8000-000000000000"), 404, "not_found");
    const state = await resendState(sb);
    assert.equal(state.emails.length, 1);
    assert.deepEqual(Object.keys(state.emails[0]).sort(), ["created_at", "from", "id", "idempotency_key", "subject", "to"]);
    assert.equal(state.counters.accepted, 1);
  });
});

Deno.test("resend: missing key → 401 missing_api_key, unknown key → 403 invalid_api_key, both with headers", async () => {
  await withSandbox(async (sb) => {
    const missing = await sendEmail(sb, email(), { key: null });
    assertResendError(missing, 401, "missing_api_key");
    assert.equal(missing.headers.get("ratelimit-limit"), "5");
    assertResendError(await sendEmail(sb, email(), { key: "re_unknown" }), 403, "invalid_api_key");
    const basic = await call(`${sb.providers.resend}/emails`, {
      method: "POST",
      headers: { authorization: "Basic " + btoa("re_x:"), "content-type": "application/json" },
      body: JSON.stringify(email()),
    });
    assertResendError(basic, 401, "missing_api_key");
    const state = await resendState(sb);
    assert.equal(state.emails.length, 0);
    assert.equal(state.counters.requests, 0); // not counted against the team's window
  });
});

Deno.test("resend: body validation in the flat envelope (422 missing/invalid, 403 unverified domain, 400 not JSON)", async () => {
  await withSandbox(async (sb) => {
    await setOptions(sb, { rate_limit_per_second: null });
    const cases: [unknown, number, string, RegExp?][] = [
      [email({ from: undefined }), 422, "missing_required_field", /`from`/],
      [email({ to: undefined }), 422, "missing_required_field", /`to`/],
      [email({ to: [] }), 422, "missing_required_field", /`to`/],
      [email({ subject: undefined }), 422, "missing_required_field", /`subject`/],
      [email({ html: undefined }), 422, "missing_required_field", /`html` or `text`/],
      [email({ from: "not an address" }), 422, "validation_error", /`from`/],
      [email({ from: "Duework <bookings@duework.test" }), 422, "validation_error", /`from`/],
      [email({ to: "ana@" }), 422, "validation_error", /`to`/],
      [email({ to: ["ana@example.com", 7] }), 422, "validation_error", /`to`/],
      [email({ to: Array.from({ length: 51 }, (_, i) => `u${i}@example.com`) }), 422, "validation_error", /50/],
      [email({ cc: "nope" }), 422, "validation_error", /`cc`/],
      [email({ tags: [{ name: "bad tag", value: "x" }] }), 422, "validation_error", /`tags`/],
      [email({ from: "Someone <someone@unverified.test>" }), 403, "validation_error", /unverified\.test domain is not verified/],
      [[email()], 400, "validation_error"],
    ];
    for (const [body, status, name, message] of cases) {
      const res = await sendEmail(sb, body);
      assertResendError(res, status, name);
      if (message) assert.match(res.body.message, message);
    }
    assertResendError(await sendEmail(sb, "{not json"), 400, "validation_error");
    assertResendError(await sendEmail(sb, "from=x", { contentType: "application/x-www-form-urlencoded" }), 400, "validation_error");
    // Exactly 50 recipients and a bare address are fine; so is text without html.
    const fifty = await sendEmail(sb, email({ to: Array.from({ length: 50 }, (_, i) => `u${i}@example.com`) }));
    assert.equal(fifty.status, 200);
    assert.equal((await sendEmail(sb, email({ from: "bookings@duework.test", html: undefined, text: "Hi" }))).status, 200);
    assert.equal((await resendState(sb)).emails.length, 2);
  });
});

Deno.test("resend: Idempotency-Key replays the original answer; another payload → 409; bad key → 400", async () => {
  await withSandbox(async (sb) => {
    const key = "event_reminder:42:email";
    const first = await sendEmail(sb, email(), { idempotencyKey: key });
    assert.equal(first.status, 200);
    // Same payload (key order does not matter) → the same id, no second email.
    const reordered = { html: "<p>Hi Ana</p>", subject: "Your event is tomorrow", to: "ana@example.com", from: FROM };
    const replay = await sendEmail(sb, reordered, { idempotencyKey: key });
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.body, first.body);
    assert.equal(replay.headers.get("ratelimit-remaining"), "3"); // a replay is still a request

    const conflict = await sendEmail(sb, email({ subject: "Changed" }), { idempotencyKey: key });
    assertResendError(conflict, 409, "invalid_idempotent_request");

    assertResendError(await sendEmail(sb, email(), { idempotencyKey: "k".repeat(257) }), 400, "invalid_idempotency_key");
    assertResendError(await sendEmail(sb, email(), { idempotencyKey: "" }), 400, "invalid_idempotency_key");
    await new Promise((r) => setTimeout(r, 1000)); // next rate-limit window
    assert.equal((await sendEmail(sb, email(), { idempotencyKey: "k".repeat(256) })).status, 200);

    // A refused request does not take the key: fixing the payload then works.
    assertResendError(await sendEmail(sb, email({ to: "bad" }), { idempotencyKey: "fix-me" }), 422, "validation_error");
    assert.equal((await sendEmail(sb, email(), { idempotencyKey: "fix-me" })).status, 200);

    const state = await resendState(sb);
    assert.equal(state.emails.length, 3);
    assert.equal(state.emails[0].idempotency_key, key);
    assert.equal(state.counters.replayed, 1);
    assert.equal(state.counters.responses_409, 1);
    const record = state.idempotency_keys.find((k: { key: string }) => k.key === key);
    assert.deepEqual([record.state, record.email_id, record.expired], ["done", first.body.id, false]);
  });
});

Deno.test("resend: a same-key request while the first is in flight → 409 concurrent_idempotent_requests", async () => {
  await withSandbox(async (sb) => {
    await setOptions(sb, { processing_ms: 300 });
    const key = "balance_reminder:7:email";
    const firstPending = sendEmail(sb, email(), { idempotencyKey: key });
    await new Promise((r) => setTimeout(r, 50));
    const second = await sendEmail(sb, email(), { idempotencyKey: key });
    assertResendError(second, 409, "concurrent_idempotent_requests");
    assert.equal((await resendState(sb)).idempotency_keys[0].state, "in_flight");
    const first = await firstPending;
    assert.equal(first.status, 200);
    // Once it finished, the same request replays it.
    const third = await sendEmail(sb, email(), { idempotencyKey: key });
    assert.deepEqual(third.body, first.body);
    assert.equal((await resendState(sb)).emails.length, 1);
  });
});

Deno.test("resend: idempotency keys expire after 24 h (fake clock via clock_offset_ms)", async () => {
  await withSandbox(async (sb) => {
    const key = "event_reminder:43:email";
    const first = await sendEmail(sb, email(), { idempotencyKey: key });
    await setOptions(sb, { clock_offset_ms: DAY_MS - 1000 });
    assert.deepEqual((await sendEmail(sb, email(), { idempotencyKey: key })).body, first.body);
    await setOptions(sb, { clock_offset_ms: DAY_MS + 1000 });
    const later = await sendEmail(sb, email(), { idempotencyKey: key });
    assert.equal(later.status, 200);
    assert.notEqual(later.body.id, first.body.id);
    // After expiry the key is reusable with any payload.
    await setOptions(sb, { clock_offset_ms: 3 * DAY_MS });
    assert.equal((await sendEmail(sb, email({ subject: "Other" }), { idempotencyKey: key })).status, 200);
    assert.equal((await resendState(sb)).emails.length, 3);
  });
});

Deno.test("resend: the state's clock is injectable (unit level, no server)", async () => {
  const state = resend.loadState({ api_keys: [KEY], verified_domains: ["duework.test"] }) as ResendState;
  let now = Date.UTC(2026, 11, 2, 10, 0, 0);
  state.now = () => now;
  const ctx = { state, origin: "http://resend.test", signal: new AbortController().signal };
  const post = async (body: unknown) => {
    const req = await readSandboxRequest(
      new Request("http://resend.test/emails", {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "idempotency-key": "k1" },
        body: JSON.stringify(body),
      }),
    );
    const res = await resend.handle(req, ctx);
    return { status: res.status, body: await res.json() };
  };
  const first = await post(email());
  now += DAY_MS - 1;
  assert.deepEqual((await post(email())).body, first.body);
  assert.equal((await post(email({ subject: "x" }))).status, 409);
  now += 1;
  const fresh = await post(email({ subject: "x" }));
  assert.equal(fresh.status, 200);
  assert.notEqual(fresh.body.id, first.body.id);
  assert.equal(state.emails.get(fresh.body.id)!.created_at, now);
});

Deno.test("resend: rate limit per team: N+1 in one second → exactly one 429 with retry-after; counted in the snapshot", async () => {
  await withSandbox(async (sb) => {
    const results = await Promise.all(Array.from({ length: 6 }, () => sendEmail(sb, email())));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    const limited = results.find((r) => r.status === 429)!;
    assertResendError(limited, 429, "rate_limit_exceeded");
    assert.equal(limited.headers.get("retry-after"), "1");
    assert.equal(limited.headers.get("ratelimit-remaining"), "0");
    assert.deepEqual(
      results.filter((r) => r.status === 200).map((r) => r.headers.get("ratelimit-remaining")).sort(),
      ["0", "1", "2", "3", "4"],
    );
    let state = await resendState(sb);
    assert.equal(state.counters.responses_429, 1);
    assert.equal(state.counters.rate_limit_exceeded, 1);
    assert.equal(state.emails.length, 5);

    // The window slides: a second later there is room again (fake clock, no sleeping).
    await setOptions(sb, { clock_offset_ms: 1001 });
    assert.equal((await sendEmail(sb, email())).status, 200);

    // A paced client (within the limit) never sees a 429.
    await setOptions(sb, { rate_limit_per_second: 2, clock_offset_ms: 10_000, reset_counters: true });
    for (let i = 0; i < 4; i++) {
      await setOptions(sb, { clock_offset_ms: 10_000 + i * 500 });
      assert.equal((await sendEmail(sb, email())).status, 200, `send ${i}`);
    }
    state = await resendState(sb);
    assert.equal(state.counters.responses_429, 0);
    assert.equal(state.rate_limit_per_second, 2);
  });
});

Deno.test("resend: fixed (wall-clock second) window and no limit at all", async () => {
  await withSandbox(async (sb) => {
    // Start of a wall-clock second on the fake clock, so the burst cannot straddle two.
    const offset = Math.ceil(Date.now() / 1000) * 1000 + 100_000 - Date.now();
    await setOptions(sb, { rate_limit_window: "fixed", rate_limit_per_second: 3, clock_offset_ms: offset });
    const burst = await Promise.all(Array.from({ length: 4 }, () => sendEmail(sb, email())));
    assert.deepEqual(burst.map((r) => r.status).sort(), [200, 200, 200, 429]);
    await setOptions(sb, { clock_offset_ms: offset + 1000 }); // the next second
    assert.equal((await sendEmail(sb, email())).status, 200);

    await setOptions(sb, { rate_limit_per_second: null });
    const many = await Promise.all(Array.from({ length: 20 }, () => sendEmail(sb, email())));
    assert.ok(many.every((r) => r.status === 200));
    assert.equal(many[0].headers.get("ratelimit-limit"), null);
  });
});

Deno.test("resend: daily and monthly quotas → 429 daily_quota_exceeded / monthly_quota_exceeded", async () => {
  await withSandbox(async (sb) => {
    await setOptions(sb, { rate_limit_per_second: null, daily_quota: 2 });
    assert.equal((await sendEmail(sb, email())).status, 200);
    assert.equal((await sendEmail(sb, email(), { idempotencyKey: "q1" })).status, 200);
    const over = await sendEmail(sb, email(), { idempotencyKey: "q2" });
    assertResendError(over, 429, "daily_quota_exceeded");
    assert.ok(Number(over.headers.get("retry-after")) > 0);
    // A replay is not a new email: still answered.
    assert.equal((await sendEmail(sb, email(), { idempotencyKey: "q1" })).status, 200);

    await setOptions(sb, { daily_quota: null, monthly_quota: 2 });
    assertResendError(await sendEmail(sb, email()), 429, "monthly_quota_exceeded");
    const state = await resendState(sb);
    assert.equal(state.counters.daily_quota_exceeded, 1);
    assert.equal(state.counters.monthly_quota_exceeded, 1);
    assert.equal(state.counters.responses_429, 2);
    assert.equal(state.emails.length, 2);
  });
});

Deno.test("resend: /__faults bodies use the flat envelope; unknown routes and methods", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__faults`, { provider: "resend", status: 500, times: 1 });
    assertResendError(await sendEmail(sb, email()), 500, "internal_server_error");
    await postJson(`${sb.controlUrl}/__faults`, { provider: "resend", status: 429, times: 1, retry_after: 3 });
    const limited = await sendEmail(sb, email());
    assertResendError(limited, 429, "rate_limit_exceeded");
    assert.equal(limited.headers.get("retry-after"), "3");
    await postJson(`${sb.controlUrl}/__faults`, { provider: "resend", status: 503, times: 1 });
    assertResendError(await sendEmail(sb, email()), 503, "application_error");

    const auth = { authorization: `Bearer ${KEY}` };
    assertResendError(await call(`${sb.providers.resend}/emails`, { headers: auth }), 405, "method_not_allowed");
    assertResendError(await call(`${sb.providers.resend}/domains`, { headers: auth }), 404, "not_found");
  });
});

Deno.test("resend: options are validated with the field named; the API key never shows in snapshot or log", async () => {
  await withSandbox(async (sb) => {
    for (const [input, message] of [
      [{ rate_limit_per_second: 0 }, /^rate_limit_per_second: /],
      [{ rate_limit_window: "rolling" }, /^rate_limit_window: /],
      [{ daily_quota: -1 }, /^daily_quota: /],
      [{ processing_ms: "slow" }, /^processing_ms: /],
      [{ verified_domains: ["not a domain"] }, /^verified_domains\.0: /],
      [{ processing: 5 }, /^processing: unknown field/],
    ] as [unknown, RegExp][]) {
      const res = await setOptions(sb, input);
      assert.equal(res.status, 400, JSON.stringify(input));
      assert.match(res.body.message, message);
    }
    await setOptions(sb, { verified_domains: ["other.test"], api_keys: ["re_second_key"] });
    assert.equal((await sendEmail(sb, email({ from: "x@other.test" }), { key: "re_second_key" })).status, 200);

    const snapshot = await call(`${sb.controlUrl}/__state/resend`);
    const log = (await call(`${sb.controlUrl}/__requests?provider=resend`)).body.requests;
    assert.equal(log[0].headers.authorization, "[redacted]");
    const dump = JSON.stringify([snapshot.body, log]);
    assert.equal(dump.includes(KEY), false);
    assert.equal(dump.includes("re_second_key"), false);
    assert.equal(snapshot.body.state.api_keys, 2);
  });
});
