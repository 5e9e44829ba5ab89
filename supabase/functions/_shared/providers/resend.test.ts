import assert from "node:assert/strict";
import { type FakeAnswer, type FakeHttpRequest, startFakeHttp } from "../testing/fake_http.ts";
import { createResendClient, interpretResendResponse, type ResendClient, secondsUntilQuotaReset } from "./resend.ts";

const KEY = "re_test_secret_key_0123456789abcdef";
const ID = "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794";
const EMAIL = {
  from: "Duework Bookings <bookings@duework.test>",
  to: "ana@example.com",
  subject: "Reminder",
  html: "<p>Hi Ana</p>",
  text: "Hi Ana",
  idempotencyKey: "event_reminder:42:email",
  tags: [{ name: "kind", value: "event_reminder" }],
};
const NOW = Date.parse("2026-12-02T22:30:00Z");

const resendError = (statusCode: number, name: string, message = `error ${name}`, headers: Record<string, string> = {}): FakeAnswer => ({
  status: statusCode,
  body: { statusCode, name, message },
  headers,
});
const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  interpretResendResponse({ status, headers: new Headers(headers), text: typeof body === "string" ? body : JSON.stringify(body) }, NOW, [KEY]);

async function withResend(
  respond: (req: FakeHttpRequest) => FakeAnswer,
  fn: (client: ResendClient, requests: FakeHttpRequest[]) => Promise<void>,
  timeoutMs = 2_000,
) {
  const fake = startFakeHttp(respond);
  try {
    await fn(createResendClient({ apiKey: KEY, baseUrl: `${fake.url}/`, timeoutMs, now: () => NOW }), fake.requests);
  } finally {
    await fake.close();
  }
}

Deno.test("resend: POST /emails as JSON with the Bearer key and the Idempotency-Key → sent {id}", async () => {
  await withResend(() => ({ status: 200, body: { id: ID } }), async (client, requests) => {
    assert.deepEqual(await client.sendEmail(EMAIL), { kind: "sent", id: ID });
    const req = requests[0];
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/emails");
    assert.equal(req.headers.get("authorization"), `Bearer ${KEY}`);
    assert.equal(req.headers.get("idempotency-key"), "event_reminder:42:email");
    assert.match(req.headers.get("content-type") ?? "", /^application\/json/);
    assert.ok(req.headers.get("user-agent"));
    assert.deepEqual(JSON.parse(req.body), {
      from: EMAIL.from,
      to: EMAIL.to,
      subject: EMAIL.subject,
      html: EMAIL.html,
      text: EMAIL.text,
      tags: EMAIL.tags,
    });
  });
});

Deno.test("resend: validation errors and invalid_idempotent_request are permanent with Resend's name", () => {
  assert.deepEqual(answer(422, { statusCode: 422, name: "validation_error", message: "Invalid `to` field." }), {
    kind: "permanent",
    name: "validation_error",
    error: "Resend 422 validation_error: Invalid `to` field.",
  });
  assert.equal(answer(400, { statusCode: 400, name: "invalid_idempotency_key", message: "x" }).kind, "permanent");
  assert.equal(answer(422, { statusCode: 422, name: "missing_required_field", message: "x" }).kind, "permanent");
  const reused = answer(409, { statusCode: 409, name: "invalid_idempotent_request", message: "Same key, different payload" });
  assert.equal(reused.kind === "permanent" && reused.name, "invalid_idempotent_request");
  const bare = answer(400, "<html></html>");
  assert.equal(bare.kind === "permanent" && bare.name, "http_400");
});

Deno.test("resend: 429 rate_limit_exceeded honours retry-after (else ratelimit-reset)", async () => {
  await withResend(() => resendError(429, "rate_limit_exceeded", "Too many requests", { "retry-after": "2", "ratelimit-reset": "1" }), async (client) => {
    const r = await client.sendEmail(EMAIL);
    assert.deepEqual(r, { kind: "rate_limited", retryAfterSeconds: 2, error: "Resend 429 rate_limit_exceeded: Too many requests" });
  });
  const r = answer(429, { statusCode: 429, name: "rate_limit_exceeded", message: "x" }, { "ratelimit-reset": "1" });
  assert.equal(r.kind === "rate_limited" && r.retryAfterSeconds, 1);
  const none = answer(429, { statusCode: 429, name: "rate_limit_exceeded", message: "x" });
  assert.equal(none.kind === "rate_limited" && none.retryAfterSeconds, null);
});

Deno.test("resend: daily / monthly quota → quota with the seconds until reset (next UTC midnight / 1st of next month, or a longer header)", () => {
  const daily = answer(429, { statusCode: 429, name: "daily_quota_exceeded", message: "quota" }, { "ratelimit-reset": "5400" });
  assert.equal(daily.kind === "quota" && daily.retryAfterSeconds, 5400);
  // A header shorter than the time to the reset (ratelimit-reset is the per-second window's) does not shorten the wait.
  const viaRetryAfter = answer(429, { statusCode: 429, name: "daily_quota_exceeded", message: "quota" }, { "retry-after": "600" });
  assert.equal(viaRetryAfter.kind === "quota" && viaRetryAfter.retryAfterSeconds, 5400);
  const longer = answer(429, { statusCode: 429, name: "daily_quota_exceeded", message: "quota" }, { "retry-after": "9000" });
  assert.equal(longer.kind === "quota" && longer.retryAfterSeconds, 9000);
  const dailyNoHeader = answer(429, { statusCode: 429, name: "daily_quota_exceeded", message: "quota" });
  assert.deepEqual(dailyNoHeader, { kind: "quota", retryAfterSeconds: 5400, error: "Resend 429 daily_quota_exceeded: quota" }, "22:30 → midnight UTC");
  const monthly = answer(429, { statusCode: 429, name: "monthly_quota_exceeded", message: "quota" });
  assert.equal(monthly.kind === "quota" && monthly.retryAfterSeconds, (Date.parse("2027-01-01T00:00:00Z") - NOW) / 1000);
  assert.equal(secondsUntilQuotaReset("monthly", Date.parse("2026-12-31T23:59:59.500Z")), 1);
  assert.equal(secondsUntilQuotaReset("daily", Date.parse("2026-02-28T00:00:00Z")), 86_400);
});

Deno.test("resend: 409 concurrent_idempotent_requests is busy", () => {
  const r = answer(409, { statusCode: 409, name: "concurrent_idempotent_requests", message: "in flight" }, { "retry-after": "1" });
  assert.deepEqual(r, { kind: "busy", retryAfterSeconds: 1, error: "Resend 409 concurrent_idempotent_requests: in flight" });
  const noHeader = answer(409, { statusCode: 409, name: "concurrent_idempotent_requests", message: "in flight" });
  assert.equal(noHeader.kind === "busy" && noHeader.retryAfterSeconds, null);
});

Deno.test("resend: refused keys and unverified senders are misconfigured, naming the settings", () => {
  for (const [status, name, message] of [
    [401, "missing_api_key", "Missing API key"],
    [401, "restricted_api_key", "This API key is restricted to only send emails"],
    [403, "invalid_api_key", "API key is invalid"],
    [403, "validation_error", "The duework.test domain is not verified."],
  ] as const) {
    const r = answer(status, { statusCode: status, name, message });
    assert.equal(r.kind, "misconfigured", name);
    assert.match(r.kind === "misconfigured" ? r.error : "", /RESEND_API_KEY and RESEND_FROM/);
  }
  assert.equal(answer(404, { statusCode: 404, name: "not_found", message: "x" }).kind, "misconfigured");
});

Deno.test("resend: 5xx, a 2xx without id, timeouts and network errors are transient", async () => {
  assert.deepEqual(answer(500, { statusCode: 500, name: "application_error", message: "boom" }, { "retry-after": "4" }), {
    kind: "transient",
    error: "Resend 500 application_error: boom",
    retryAfterSeconds: 4,
  });
  assert.equal(answer(200, {}).kind, "transient");
  await withResend(() => "hang", async (client, requests) => {
    assert.deepEqual(await client.sendEmail(EMAIL), {
      kind: "transient",
      error: "timeout: Resend did not answer within 100 ms",
      retryAfterSeconds: null,
    });
    assert.equal(requests.length, 1);
  }, 100);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const r = await createResendClient({ apiKey: KEY, baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 }).sendEmail(EMAIL);
  assert.equal(r.kind, "transient");
  assert.match(r.kind === "transient" ? r.error : "", /^network error: /);
});

Deno.test("resend: the key never appears in a result", async () => {
  await withResend(() => resendError(422, "validation_error", `you sent ${KEY}`), async (client) => {
    const r = await client.sendEmail(EMAIL);
    assert.equal(JSON.stringify(r).includes(KEY), false);
  });
});
