import assert from "node:assert/strict";
import { envFrom } from "../env.ts";
import { type FakeAnswer, type FakeHttpRequest, startFakeHttp } from "../testing/fake_http.ts";
import {
  createTwilioClient,
  TWILIO_PERMANENT_CODES,
  twilioBasicAuth,
  twilioStatusCallbackUrl,
  type TwilioClient,
  whatsappAddress,
} from "./twilio.ts";
import { closedPort, startDropper } from "../testing/tcp.ts";

const SID = "AC00000000000000000000000000000001";
const TOKEN = "duework-test-twilio-auth-token-0123456789";
const BASIC = twilioBasicAuth(SID, TOKEN);
const MESSAGE_SID = "SM0123456789abcdef0123456789abcdef";
const TEMPLATE = {
  to: "+447700900123",
  from: "+14155238886",
  contentSid: "HX00000000000000000000000000000e01",
  contentVariables: { "1": "Ana", "2": "Thursday 3 December 2026 at 19:00 GMT", "3": "The Jazz Trio", "4": "BK-000042" },
  statusCallback: "https://project.supabase.co/functions/v1/twilio-status",
};

const twilioError = (status: number, code: number, message = `error ${code}`, headers: Record<string, string> = {}): FakeAnswer => ({
  status,
  body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
  headers,
});
const created = (status = "queued"): FakeAnswer => ({
  status: 201,
  body: { sid: MESSAGE_SID, account_sid: SID, status, to: "whatsapp:+447700900123", from: "whatsapp:+14155238886", error_code: null },
});

async function withTwilio(
  respond: (req: FakeHttpRequest) => FakeAnswer,
  fn: (client: TwilioClient, requests: FakeHttpRequest[]) => Promise<void>,
  timeoutMs = 2_000,
) {
  const fake = startFakeHttp(respond);
  try {
    await fn(createTwilioClient({ accountSid: SID, authToken: TOKEN, baseUrl: `${fake.url}/`, timeoutMs }), fake.requests);
  } finally {
    await fake.close();
  }
}

function assertNoSecret(value: unknown) {
  const text = JSON.stringify(value);
  assert.equal(text.includes(TOKEN), false, "auth token in a result");
  assert.equal(text.includes(BASIC.slice(6)), false, "Basic credentials in a result");
}

Deno.test("twilio send: form POST to the account's Messages.json with Basic auth, whatsapp: addresses, template and callback → sent", async () => {
  await withTwilio(() => created(), async (client, requests) => {
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.deepEqual(r, { kind: "sent", sid: MESSAGE_SID, status: "queued" });
    assert.equal(requests.length, 1);
    const req = requests[0];
    assert.equal(req.method, "POST");
    assert.equal(req.path, `/2010-04-01/Accounts/${SID}/Messages.json`);
    assert.equal(req.headers.get("authorization"), `Basic ${btoa(`${SID}:${TOKEN}`)}`);
    assert.match(req.headers.get("content-type") ?? "", /^application\/x-www-form-urlencoded/);
    const form = new URLSearchParams(req.body);
    assert.deepEqual(Object.fromEntries(form), {
      To: "whatsapp:+447700900123",
      From: "whatsapp:+14155238886",
      ContentSid: TEMPLATE.contentSid,
      ContentVariables: JSON.stringify(TEMPLATE.contentVariables),
      StatusCallback: TEMPLATE.statusCallback,
    });
    assert.equal(form.has("Body"), false, "templates go by ContentSid, never Body");
    assert.deepEqual(JSON.parse(form.get("ContentVariables")!), TEMPLATE.contentVariables);
  });
});

Deno.test("twilio send: synchronous refusals are permanent with Twilio's code and message", async () => {
  for (const code of [...TWILIO_PERMANENT_CODES, 21617]) {
    await withTwilio(() => twilioError(400, code, `refused ${code}`), async (client) => {
      const r = await client.sendWhatsAppTemplate(TEMPLATE);
      assert.equal(r.kind, "permanent", `code ${code}`);
      assert.equal(r.kind === "permanent" && r.code, code);
      assert.match(r.kind === "permanent" ? r.error : "", new RegExp(`^Twilio error ${code} \\(HTTP 400\\): refused ${code}`));
    });
  }
  await withTwilio(() => ({ status: 400, body: "<html>bad request</html>" }), async (client) => {
    assert.deepEqual(await client.sendWhatsAppTemplate(TEMPLATE), { kind: "permanent", code: null, error: "Twilio HTTP 400" });
  });
});

Deno.test("twilio send: 429 and 20429 are rate_limited with Retry-After", async () => {
  await withTwilio(() => twilioError(429, 20429, "Too Many Requests", { "retry-after": "7" }), async (client) => {
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.equal(r.kind, "rate_limited");
    assert.equal(r.kind === "rate_limited" && r.retryAfterSeconds, 7);
  });
  await withTwilio(() => twilioError(400, 20429), async (client) => {
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.equal(r.kind === "rate_limited" && r.retryAfterSeconds, null);
  });
  await withTwilio(() => ({ status: 429, body: "" }), async (client) => {
    assert.equal((await client.sendWhatsAppTemplate(TEMPLATE)).kind, "rate_limited");
  });
});

Deno.test("twilio send: 20003 / 401 and a 404 on the account path are misconfigured, naming the settings", async () => {
  for (const answer of [twilioError(401, 20003, "Authenticate"), twilioError(403, 20003, "Authenticate"), { status: 401, body: "" }]) {
    await withTwilio(() => answer as FakeAnswer, async (client) => {
      const r = await client.sendWhatsAppTemplate(TEMPLATE);
      assert.equal(r.kind, "misconfigured");
      assert.match(r.kind === "misconfigured" ? r.error : "", /TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN/);
      assertNoSecret(r);
    });
  }
  await withTwilio(() => twilioError(404, 20404, "The requested resource was not found"), async (client) => {
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.equal(r.kind, "misconfigured");
    assert.match(r.kind === "misconfigured" ? r.error : "", /20404.*TWILIO_ACCOUNT_SID/);
  });
});

Deno.test("twilio send: 5xx is transient with Retry-After; a connection that never opened is transient", async () => {
  await withTwilio(() => ({ status: 503, body: { code: 20500, message: "Service unavailable" }, headers: { "retry-after": "12" } }), async (client) => {
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.deepEqual(r, { kind: "transient", error: "Twilio error 20500 (HTTP 503): Service unavailable", retryAfterSeconds: 12 });
  });
  const client = createTwilioClient({ accountSid: SID, authToken: TOKEN, baseUrl: closedPort(), timeoutMs: 2_000 });
  const r = await client.sendWhatsAppTemplate(TEMPLATE);
  assert.equal(r.kind, "transient", JSON.stringify(r));
  assert.match(r.kind === "transient" ? r.error : "", /^network error: .*Connect/);
  assertNoSecret(r);
});

Deno.test("twilio send: a timeout, a connection dropped after the request, or a 2xx without a sid are unknown_outcome", async () => {
  await withTwilio(() => "hang", async (client, requests) => {
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.deepEqual(r, { kind: "unknown_outcome", error: "timeout: Twilio did not answer within 100 ms" });
    assert.equal(requests.length, 1, "the request reached Twilio");
  }, 100);
  const dropper = startDropper();
  try {
    const client = createTwilioClient({ accountSid: SID, authToken: TOKEN, baseUrl: dropper.url, timeoutMs: 2_000 });
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.equal(r.kind, "unknown_outcome", JSON.stringify(r));
    assert.match(r.kind === "unknown_outcome" ? r.error : "", /^network error: /);
    assertNoSecret(r);
  } finally {
    dropper.close();
  }
  await withTwilio(() => ({ status: 201, body: "not json" }), async (client) => {
    assert.equal((await client.sendWhatsAppTemplate(TEMPLATE)).kind, "unknown_outcome");
  });
});

Deno.test("twilio send: no error text carries the auth token, even when Twilio's message would", async () => {
  await withTwilio(() => twilioError(400, 21211, `bad To; token was ${TOKEN} and ${BASIC}`), async (client) => {
    const r = await client.sendWhatsAppTemplate(TEMPLATE);
    assert.equal(r.kind, "permanent");
    assertNoSecret(r);
  });
});

// ---------------------------------------------------------------------------------------------
// Reconcile lookup

const SINCE = new Date("2026-12-02T10:00:00Z");
const rfc2822 = (iso: string) => new Date(iso).toUTCString().replace("GMT", "+0000");
const message = (sid: string, createdIso: string, body: string, status = "delivered") => ({
  sid,
  status,
  body,
  to: "whatsapp:+447700900123",
  from: "whatsapp:+14155238886",
  date_created: rfc2822(createdIso),
  direction: "outbound-api",
});
const QUERY = { to: "+447700900123", from: "whatsapp:+14155238886", since: SINCE, mustContain: "BK-000042" };

Deno.test("twilio lookup: GETs the messages between the two addresses (PageSize 20) and finds the newest match", async () => {
  const messages = [
    message("SMnewer-other", "2026-12-02T10:05:00Z", "Hi Bo, a reminder … Booking BK-000043."),
    message("SMmatch", "2026-12-02T09:59:57Z", "Hi Ana, a reminder: The Jazz Trio performs … Booking BK-000042.", "sent"),
    message("SMold", "2026-12-01T10:00:00Z", "Hi Ana, … Booking BK-000042."),
  ];
  await withTwilio(() => ({ status: 200, body: { messages, page_size: 20, next_page_uri: null } }), async (client, requests) => {
    const r = await client.findRecentMessage(QUERY);
    assert.deepEqual(r, { kind: "found", sid: "SMmatch", status: "sent" }, "within since − 5 s and containing the reference");
    const req = requests[0];
    assert.equal(req.method, "GET");
    assert.equal(req.path, `/2010-04-01/Accounts/${SID}/Messages.json`);
    assert.deepEqual(Object.fromEntries(req.query), { To: "whatsapp:+447700900123", From: "whatsapp:+14155238886", PageSize: "20" });
    assert.equal(req.headers.get("authorization"), BASIC);
  });
});

Deno.test("twilio lookup: older messages, other bookings and an empty page are not_found", async () => {
  const messages = [
    message("SMtooold", "2026-12-02T09:59:54Z", "… Booking BK-000042."),
    message("SMother", "2026-12-02T10:01:00Z", "… Booking BK-000043."),
  ];
  await withTwilio(() => ({ status: 200, body: { messages } }), async (client) => {
    assert.deepEqual(await client.findRecentMessage(QUERY), { kind: "not_found" });
  });
  await withTwilio(() => ({ status: 200, body: { messages: [] } }), async (client) => {
    assert.deepEqual(await client.findRecentMessage(QUERY), { kind: "not_found" });
  });
});

Deno.test("twilio lookup: failures are failed (never not_found); 429 rate_limited; 401 misconfigured", async () => {
  for (const answer of [{ status: 500, body: { code: 20500, message: "oops" } }, { status: 200, body: { nope: 1 } }, { status: 400, body: { code: 20001 } }] as FakeAnswer[]) {
    await withTwilio(() => answer, async (client) => {
      const r = await client.findRecentMessage(QUERY);
      assert.equal(r.kind, "failed", JSON.stringify(answer));
      assert.match(r.kind === "failed" ? r.error : "", /^reconcile lookup: /);
    });
  }
  await withTwilio(() => "hang", async (client) => {
    const r = await client.findRecentMessage(QUERY);
    assert.deepEqual(r, { kind: "failed", error: "reconcile lookup: timeout: Twilio did not answer within 100 ms", retryAfterSeconds: null });
  }, 100);
  await withTwilio(() => twilioError(429, 20429, "Too Many Requests", { "retry-after": "3" }), async (client) => {
    const r = await client.findRecentMessage(QUERY);
    assert.equal(r.kind === "rate_limited" && r.retryAfterSeconds, 3);
  });
  await withTwilio(() => twilioError(401, 20003), async (client) => {
    assert.equal((await client.findRecentMessage(QUERY)).kind, "misconfigured");
  });
  await withTwilio(() => ({ status: 200, body: { messages: [] } }), async (client, requests) => {
    assert.equal((await client.findRecentMessage({ ...QUERY, mustContain: "" })).kind, "failed");
    assert.equal(requests.length, 0, "nothing to match: no call");
  });
});

Deno.test("twilio helpers: whatsapp: prefix, status callback URL from the env", () => {
  assert.equal(whatsappAddress("+14155238886"), "whatsapp:+14155238886");
  assert.equal(whatsappAddress("whatsapp:+14155238886"), "whatsapp:+14155238886");
  assert.equal(twilioStatusCallbackUrl(envFrom({ SUPABASE_URL: "https://ref.supabase.co/" })), "https://ref.supabase.co/functions/v1/twilio-status");
  assert.equal(
    twilioStatusCallbackUrl(envFrom({ SUPABASE_URL: "https://ref.supabase.co", TWILIO_STATUS_CALLBACK_URL: "https://hooks.example.com/tw?x=1" })),
    "https://hooks.example.com/tw?x=1",
  );
  assert.equal(twilioStatusCallbackUrl(envFrom({})), null);
});
