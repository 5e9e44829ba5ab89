// Fake Twilio Messages API: the 201 body, every synchronous error code, the asynchronous 63016,
// signed status callbacks (and their order/duplicate/disabled options), 20429, accept-then-hang,
// fetch, list filters and paging, seeding, and that the auth token never shows up anywhere.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { Sandbox } from "./server.ts";
import { call, eventually, type JsonResult, postJson, withSandbox, withWebhookReceiver } from "./test_util.ts";

const SID = "AC00000000000000000000000000000001";
const TOKEN = "duework-local-twilio-auth-token";
const SENDER = "+14155238886";
const TO = "+447700900123";
const EVENT_REMINDER = "HX00000000000000000000000000000e01";
const BASIC = "Basic " + btoa(`${SID}:${TOKEN}`);
const RFC2822 = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$/;

const messagesPath = (sid = SID) => `/2010-04-01/Accounts/${sid}/Messages.json`;

function send(
  sb: Sandbox,
  params: Record<string, string>,
  opts: { auth?: string | null; sid?: string; signal?: AbortSignal } = {},
): Promise<JsonResult> {
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  const auth = opts.auth === undefined ? BASIC : opts.auth;
  if (auth !== null) headers.authorization = auth;
  return call(`${sb.providers.twilio}${messagesPath(opts.sid)}`, {
    method: "POST",
    headers,
    body: new URLSearchParams(params).toString(),
    signal: opts.signal,
  });
}

const sms = (extra: Record<string, string> = {}) => ({ To: TO, From: SENDER, Body: "Hello from Duework", ...extra });

function get(sb: Sandbox, path: string): Promise<JsonResult> {
  return call(`${sb.providers.twilio}${path}`, { headers: { authorization: BASIC } });
}

const fetchMessage = (sb: Sandbox, sid: string) => get(sb, `/2010-04-01/Accounts/${SID}/Messages/${sid}.json`);

// deno-lint-ignore no-explicit-any
async function twilioState(sb: Sandbox): Promise<any> {
  return (await call(`${sb.controlUrl}/__state/twilio`)).body.state;
}

function setOptions(sb: Sandbox, options: unknown): Promise<JsonResult> {
  return postJson(`${sb.controlUrl}/__state/twilio`, options);
}

function assertTwilioError(res: JsonResult, status: number, code: number) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.deepEqual(Object.keys(res.body).sort(), ["code", "message", "more_info", "status"]);
  assert.equal(res.body.code, code);
  assert.equal(res.body.status, status);
  assert.equal(res.body.more_info, `https://www.twilio.com/docs/errors/${code}`);
  assert.equal(typeof res.body.message, "string");
}

/** Twilio's webhook signature, computed independently of the fake. */
function expectedSignature(url: string, params: Record<string, string>): string {
  const data = Object.keys(params).sort().reduce((acc, k) => acc + k + params[k], url);
  return createHmac("sha1", TOKEN).update(data).digest("base64");
}

Deno.test("twilio: create answers 201 with the contract's body; the message then goes sent → delivered", async () => {
  await withSandbox(async (sb) => {
    const res = await send(sb, sms());
    assert.equal(res.status, 201);
    assert.match(res.headers.get("content-type")!, /^application\/json/);
    const m = res.body;
    assert.deepEqual(Object.keys(m), [
      "sid",
      "account_sid",
      "messaging_service_sid",
      "to",
      "from",
      "body",
      "status",
      "num_segments",
      "num_media",
      "direction",
      "api_version",
      "price",
      "price_unit",
      "error_code",
      "error_message",
      "date_created",
      "date_updated",
      "date_sent",
      "uri",
      "subresource_uris",
    ]);
    assert.match(m.sid, /^SM[0-9a-f]{32}$/);
    assert.equal(m.account_sid, SID);
    assert.equal(m.messaging_service_sid, null);
    assert.equal(m.to, TO);
    assert.equal(m.from, SENDER);
    assert.equal(m.body, "Hello from Duework");
    assert.equal(m.status, "queued");
    assert.equal(m.num_segments, "1");
    assert.equal(m.num_media, "0");
    assert.equal(m.direction, "outbound-api");
    assert.equal(m.api_version, "2010-04-01");
    assert.equal(m.price, null);
    assert.equal(m.price_unit, "USD");
    assert.equal(m.error_code, null);
    assert.equal(m.error_message, null);
    assert.match(m.date_created, RFC2822);
    assert.match(m.date_updated, RFC2822);
    assert.equal(m.date_sent, null);
    assert.equal(m.uri, `/2010-04-01/Accounts/${SID}/Messages/${m.sid}.json`);
    assert.deepEqual(m.subresource_uris, { media: `/2010-04-01/Accounts/${SID}/Messages/${m.sid}/Media.json` });

    await eventually(async () => (await fetchMessage(sb, m.sid)).body.status === "delivered", 3000, "delivered");
    const fetched = (await fetchMessage(sb, m.sid)).body;
    assert.match(fetched.date_sent, RFC2822);
    assert.equal(fetched.sid, m.sid);

    // Long non-GSM bodies are billed in 67-character UCS-2 segments.
    const long = await send(sb, sms({ Body: "Olá ✓ ".repeat(30) }));
    assert.equal(long.body.num_segments, "3");
  });
});

Deno.test("twilio: WhatsApp Content template is rendered from ContentVariables; whatsapp: on both sides", async () => {
  await withSandbox(async (sb) => {
    const res = await send(sb, {
      To: `whatsapp:${TO}`,
      From: `whatsapp:${SENDER}`,
      ContentSid: EVENT_REMINDER,
      ContentVariables: JSON.stringify({ "1": "Ana", "2": "3 Dec 2026, 19:00", "3": "The Jazz Trio", "4": "BK-000042" }),
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.to, `whatsapp:${TO}`);
    assert.equal(res.body.from, `whatsapp:${SENDER}`);
    assert.equal(
      res.body.body,
      "Hi Ana, a reminder: The Jazz Trio performs for you on 3 Dec 2026, 19:00. Booking BK-000042.",
    );
    const state = await twilioState(sb);
    assert.equal(state.messages[0].content_sid, EVENT_REMINDER);
  });
});

Deno.test("twilio: credentials, paths and methods → 20003 / 20404 / 20004", async () => {
  await withSandbox(async (sb) => {
    const missing = await send(sb, sms(), { auth: null });
    assertTwilioError(missing, 401, 20003);
    assert.equal(missing.headers.get("www-authenticate"), 'Basic realm="Twilio API"');
    assertTwilioError(await send(sb, sms(), { auth: "Basic " + btoa(`${SID}:wrong`) }), 401, 20003);
    assertTwilioError(await send(sb, sms(), { auth: "Bearer " + TOKEN }), 401, 20003);
    const otherSid = "AC00000000000000000000000000000002";
    assertTwilioError(await send(sb, sms(), { sid: otherSid }), 401, 20003); // path sid ≠ auth user
    assertTwilioError(await send(sb, sms(), { sid: otherSid, auth: "Basic " + btoa(`${otherSid}:${TOKEN}`) }), 401, 20003);

    assertTwilioError(await fetchMessage(sb, "SM00000000000000000000000000000000"), 404, 20404);
    assertTwilioError(await get(sb, `/2010-04-01/Accounts/${SID}/Messages`), 404, 20404); // no .json
    assertTwilioError(await get(sb, "/2010-04-01/Accounts.json"), 404, 20404);
    const del = await call(`${sb.providers.twilio}${messagesPath()}`, { method: "DELETE", headers: { authorization: BASIC } });
    assertTwilioError(del, 405, 20004);
    assert.equal((await twilioState(sb)).messages.length, 0);
  });
});

Deno.test("twilio: every synchronous validation error has its Twilio code and creates nothing", async () => {
  await withSandbox(async (sb) => {
    const wa = (extra: Record<string, string>) => ({ To: `whatsapp:${TO}`, From: `whatsapp:${SENDER}`, ...extra });
    const cases: [Record<string, string>, number][] = [
      [{ From: SENDER, Body: "x" }, 21604],
      [{ To: TO, Body: "x" }, 21603],
      [{ To: TO, From: SENDER }, 21602],
      [sms({ To: "5551234567" }), 21211], // not E.164
      [sms({ To: "+1234567" }), 21211], // 7 digits
      [sms({ To: "+1234567890123456" }), 21211], // 16 digits
      [sms({ To: "+15005550001" }), 21211], // fixture: invalid
      [sms({ To: "+15005550004" }), 21610], // fixture: unsubscribed
      [sms({ To: "+15005550009" }), 21614], // fixture: not capable
      [sms({ From: "+15550009999" }), 21606],
      [wa({ From: "whatsapp:+15550009999", Body: "x" }), 63007],
      [wa({ From: SENDER, Body: "x" }), 21910], // whatsapp: on one side only
      [wa({ ContentSid: "HX0000000000000000000000000000dead" }), 21655],
      [wa({ ContentSid: "HXnot-a-sid" }), 21655],
      [wa({ ContentSid: EVENT_REMINDER, ContentVariables: "{not json" }), 21656],
      [wa({ ContentSid: EVENT_REMINDER, ContentVariables: '["Ana"]' }), 21656],
      [wa({ ContentSid: EVENT_REMINDER, ContentVariables: '{"1":"Ana","2":"Trio","3":"soon"}' }), 21656], // {{4}} missing
      [wa({ ContentSid: EVENT_REMINDER, ContentVariables: '{"1":"","2":"Trio","3":"soon","4":"BK"}' }), 21656],
      [wa({ Body: "x", ContentVariables: '{"1":"Ana"}' }), 21654],
      [sms({ Body: "x".repeat(1601) }), 21617],
      [{ To: TO, MessagingServiceSid: "MG000000000000000000000000000000ff", Body: "x" }, 21701],
    ];
    for (const [params, code] of cases) {
      const res = await send(sb, params);
      assertTwilioError(res, 400, code);
    }
    // A JSON body carries no form parameters.
    const json = await call(`${sb.providers.twilio}${messagesPath()}`, {
      method: "POST",
      headers: { authorization: BASIC, "content-type": "application/json" },
      body: JSON.stringify(sms()),
    });
    assertTwilioError(json, 400, 21604);
    const state = await twilioState(sb);
    assert.equal(state.messages.length, 0);
    assert.equal(state.counters.created, 0);
  });
});

Deno.test("twilio: a Messaging Service send answers accepted with num_segments 0 and gets a sender later", async () => {
  await withSandbox(async (sb) => {
    const res = await send(sb, { To: TO, MessagingServiceSid: "MG00000000000000000000000000000001", Body: "x" });
    assert.equal(res.status, 201);
    assert.equal(res.body.status, "accepted");
    assert.equal(res.body.num_segments, "0");
    assert.equal(res.body.from, null);
    assert.equal(res.body.messaging_service_sid, "MG00000000000000000000000000000001");
    await eventually(async () => (await fetchMessage(sb, res.body.sid)).body.status === "delivered");
    assert.equal((await fetchMessage(sb, res.body.sid)).body.from, SENDER);
  });
});

Deno.test("twilio: WhatsApp free-form outside the 24 h window → 201 queued, then failed with 63016 (callback too)", async () => {
  await withSandbox(async (sb) => {
    await withWebhookReceiver(async (hook) => {
      const res = await send(sb, {
        To: "whatsapp:+447700900999",
        From: `whatsapp:${SENDER}`,
        Body: "Hi Ana, a reminder that The Jazz Trio will perform at your event tomorrow.",
        StatusCallback: hook.url,
      });
      assert.equal(res.status, 201);
      assert.equal(res.body.status, "queued");
      assert.equal(res.body.error_code, null);

      const [cb] = await hook.waitFor(1);
      assert.equal(cb.params.MessageStatus, "failed");
      assert.equal(cb.params.SmsStatus, "failed");
      assert.equal(cb.params.ErrorCode, "63016");
      const fetched = (await fetchMessage(sb, res.body.sid)).body;
      assert.equal(fetched.status, "failed");
      assert.equal(fetched.error_code, 63016);
      assert.match(fetched.error_message, /outside the allowed window/);
      assert.equal(fetched.date_sent, null);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(hook.received.length, 1); // failed is final: nothing follows

      // The same recipient with a template is fine (templates may open a conversation).
      const template = await send(sb, {
        To: "whatsapp:+447700900999",
        From: `whatsapp:${SENDER}`,
        ContentSid: EVENT_REMINDER,
        ContentVariables: JSON.stringify({ "1": "Ana", "2": "Trio", "3": "tomorrow", "4": "BK-1" }),
      });
      await eventually(async () => (await fetchMessage(sb, template.body.sid)).body.status === "delivered");
    });
  });
});

Deno.test("twilio: status callbacks are form-encoded and signed with the auth token (HMAC-SHA1 over URL + sorted params)", async () => {
  await withSandbox(async (sb) => {
    await withWebhookReceiver(async (hook) => {
      const callbackUrl = `${hook.url}?notification=12`;
      const res = await send(sb, sms({ StatusCallback: callbackUrl }));
      const got = await hook.waitFor(2);
      assert.deepEqual(got.map((c) => c.params.MessageStatus), ["sent", "delivered"]);
      for (const cb of got) {
        assert.deepEqual(Object.keys(cb.params).sort(), [
          "AccountSid",
          "ApiVersion",
          "From",
          "MessageSid",
          "MessageStatus",
          "SmsSid",
          "SmsStatus",
          "To",
        ]);
        assert.equal(cb.params.MessageSid, res.body.sid);
        assert.equal(cb.params.SmsSid, res.body.sid);
        assert.equal(cb.params.AccountSid, SID);
        assert.equal(cb.params.From, SENDER);
        assert.equal(cb.params.To, TO);
        assert.equal(cb.params.ApiVersion, "2010-04-01");
        assert.equal(cb.url, callbackUrl);
        assert.match(cb.headers.get("content-type")!, /^application\/x-www-form-urlencoded/);
        assert.equal(cb.headers.get("x-twilio-signature"), expectedSignature(callbackUrl, cb.params));
        assert.notEqual(cb.headers.get("x-twilio-signature"), expectedSignature(hook.url, cb.params));
        assert.match(cb.headers.get("i-twilio-idempotency-token")!, /^[0-9a-f-]{36}$/);
      }
      assert.notEqual(got[0].headers.get("i-twilio-idempotency-token"), got[1].headers.get("i-twilio-idempotency-token"));
      await eventually(async () => (await twilioState(sb)).messages[0].callbacks_sent === 2);

      // WhatsApp to a number with read receipts also reports read.
      hook.received.length = 0;
      await send(sb, {
        To: "whatsapp:+447700900124",
        From: `whatsapp:${SENDER}`,
        Body: "Thanks!",
        StatusCallback: hook.url,
      });
      const wa = await hook.waitFor(3);
      assert.deepEqual(wa.map((c) => c.params.MessageStatus), ["sent", "delivered", "read"]);
      assert.equal(wa[0].params.From, `whatsapp:${SENDER}`);
    });
  });
});

Deno.test("twilio: callback options: out_of_order reverses, duplicate repeats with the same token, disabled sends none", async () => {
  await withSandbox(async (sb) => {
    await withWebhookReceiver(async (hook) => {
      const set = await setOptions(sb, { callbacks: { out_of_order: true, duplicate: true, delay_ms: 5 } });
      assert.equal(set.status, 200);
      assert.equal(set.body.seeded.callbacks.out_of_order, true);
      const res = await send(sb, sms({ StatusCallback: hook.url }));
      const got = await hook.waitFor(4);
      assert.deepEqual(got.map((c) => c.params.MessageStatus), ["delivered", "delivered", "sent", "sent"]);
      const tokens = got.map((c) => c.headers.get("i-twilio-idempotency-token"));
      assert.equal(tokens[0], tokens[1]);
      assert.equal(tokens[2], tokens[3]);
      assert.notEqual(tokens[0], tokens[2]);
      // The resource itself moves in the real order and ends delivered.
      await eventually(async () => (await fetchMessage(sb, res.body.sid)).body.status === "delivered");

      hook.received.length = 0;
      await setOptions(sb, { callbacks: { enabled: false, out_of_order: false, duplicate: false } });
      const quiet = await send(sb, sms({ StatusCallback: hook.url }));
      await eventually(async () => (await fetchMessage(sb, quiet.body.sid)).body.status === "delivered");
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(hook.received.length, 0);
    });
  });
});

Deno.test("twilio: a failing callback receiver is logged and dropped, never retried, never fatal", async () => {
  await withSandbox(async (sb) => {
    await withWebhookReceiver(async (hook) => {
      const res = await send(sb, sms({ StatusCallback: hook.url }));
      await hook.waitFor(2);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(hook.received.length, 2); // one POST per status, no retries
      await eventually(async () => (await twilioState(sb)).messages[0].callbacks_failed === 2);
      assert.equal((await fetchMessage(sb, res.body.sid)).body.status, "delivered");
    }, { status: 500 });

    // Nothing listens on this port at all.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const res = await send(sb, sms({ StatusCallback: `http://127.0.0.1:${closedPort}/gone` }));
    await eventually(async () => (await twilioState(sb)).counters.callbacks_failed === 4);
    assert.equal((await fetchMessage(sb, res.body.sid)).body.status, "delivered");
    assert.equal((await send(sb, sms())).status, 201); // still serving
  });
});

Deno.test("twilio: rate_limit answers 429/20429 without creating anything, then sends go through", async () => {
  await withSandbox(async (sb) => {
    assert.equal((await setOptions(sb, { rate_limit: { times: 2 } })).status, 200);
    assertTwilioError(await send(sb, sms()), 429, 20429);
    const second = await send(sb, sms());
    assertTwilioError(second, 429, 20429);
    assert.equal(second.body.message, "Too Many Requests");
    assert.equal((await twilioState(sb)).messages.length, 0);
    assert.equal((await send(sb, sms())).status, 201);
    const state = await twilioState(sb);
    assert.equal(state.messages.length, 1);
    assert.equal(state.counters.rate_limited, 2);
    assert.equal(state.rate_limit, null);

    await setOptions(sb, { rate_limit: { times: 1, status: 503 } });
    assertTwilioError(await send(sb, sms()), 503, 20429);
    // Reads are not limited: the budget counts send attempts only.
    await setOptions(sb, { rate_limit: {} });
    assert.equal((await get(sb, messagesPath())).status, 200);
    assertTwilioError(await send(sb, sms()), 429, 20429);
    await setOptions(sb, { rate_limit: null });
    assert.equal((await send(sb, sms())).status, 201);
  });
});

Deno.test("twilio: accept_then_hang creates the message at once and holds the 201 back", async () => {
  await withSandbox(async (sb) => {
    await withWebhookReceiver(async (hook) => {
      await setOptions(sb, { accept_then_hang: { times: 1, hang_ms: 400 } });
      const started = Date.now();
      const pending = send(sb, sms({ StatusCallback: hook.url }));
      // Visible to list and fetch, and its callbacks fire, before the 201 arrives.
      let sid = "";
      await eventually(async () => {
        const list = (await get(sb, `${messagesPath()}?To=${encodeURIComponent(TO)}`)).body;
        sid = list.messages[0]?.sid ?? "";
        return sid !== "";
      });
      assert.equal((await fetchMessage(sb, sid)).status, 200);
      await hook.waitFor(2);
      const res = await pending;
      assert.ok(Date.now() - started >= 390, `answered after ${Date.now() - started} ms`);
      assert.equal(res.status, 201);
      assert.equal(res.body.sid, sid);
      assert.equal(res.body.status, "queued"); // the body is the one of the moment it was accepted

      // A client that gives up early never sees the 201, but the message exists.
      await setOptions(sb, { accept_then_hang: { times: 1, hang_ms: 5_000 } });
      await assert.rejects(send(sb, sms({ Body: "timed out" }), { signal: AbortSignal.timeout(100) }));
      const state = await twilioState(sb);
      assert.equal(state.messages.length, 2);
      assert.equal(state.messages[1].body, "timed out");
      assert.equal(state.counters.hung, 2);
      assert.equal(state.accept_then_hang, null);
      assert.equal((await send(sb, sms())).status, 201); // not hung any more
    });
  });
});

Deno.test("twilio: a hung answer does not keep the sandbox from closing", async () => {
  let closedIn = 0;
  let pending: Promise<unknown> | undefined;
  await withSandbox(async (sb) => {
    await setOptions(sb, { accept_then_hang: { hang_ms: 60_000 } });
    pending = send(sb, sms()).catch(() => null);
    await eventually(async () => (await twilioState(sb)).messages.length === 1);
    closedIn = Date.now();
  });
  closedIn = Date.now() - closedIn;
  await pending;
  assert.ok(closedIn < 2_000, `close took ${closedIn} ms`);
});

Deno.test("twilio: /__faults bodies use Twilio's envelope", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__faults`, { provider: "twilio", status: 503, times: 1, retry_after: 2 });
    const down = await send(sb, sms());
    assertTwilioError(down, 503, 20503);
    assert.equal(down.headers.get("retry-after"), "2");
    await postJson(`${sb.controlUrl}/__faults`, { provider: "twilio", status: 500, times: 1 });
    assertTwilioError(await send(sb, sms()), 500, 20500);
    await postJson(`${sb.controlUrl}/__faults`, { provider: "twilio", status: 429, times: 1 });
    assertTwilioError(await send(sb, sms()), 429, 20429);
    assert.equal((await twilioState(sb)).messages.length, 0);
  });
});

Deno.test("twilio: list filters (To, From, DateSent, DateSent>, DateSent<) and the paging envelope", async () => {
  await withSandbox(async (sb) => {
    const A = "+447700900201";
    const B = "+447700900202";
    // Two messages "two days ago" (fake clock), then five now.
    await setOptions(sb, { clock_offset_ms: -2 * 86_400_000, callbacks: { enabled: false } });
    const old = [(await send(sb, sms({ To: A, Body: "old 1" }))).body.sid, (await send(sb, sms({ To: B, Body: "old 2" }))).body.sid];
    // Their date_sent is stamped when they leave the queue: wait for that before "now" returns.
    await eventually(async () => (await twilioState(sb)).messages.every((m: { status: string }) => m.status === "delivered"));
    await setOptions(sb, { clock_offset_ms: 0 });
    const fresh: string[] = [];
    for (let i = 0; i < 4; i++) fresh.push((await send(sb, sms({ To: A, Body: `new ${i}` }))).body.sid);
    fresh.push((await send(sb, sms({ To: B, Body: "new B" }))).body.sid);

    const list = (query: string) => get(sb, `${messagesPath()}?${query}`);
    const sids = (res: JsonResult) => res.body.messages.map((m: { sid: string }) => m.sid);

    const all = await list("");
    assert.equal(all.status, 200);
    assert.deepEqual(sids(all), [...fresh].reverse().concat([...old].reverse())); // newest first
    assert.deepEqual(Object.keys(all.body).sort(), [
      "end",
      "first_page_uri",
      "messages",
      "next_page_uri",
      "page",
      "page_size",
      "previous_page_uri",
      "start",
      "uri",
    ]);
    assert.equal(all.body.page_size, 50);
    assert.equal(all.body.next_page_uri, null);

    assert.deepEqual(sids(await list(`To=${encodeURIComponent(A)}`)), [fresh[3], fresh[2], fresh[1], fresh[0], old[0]]);
    assert.equal((await list(`From=${encodeURIComponent("+15550000000")}`)).body.messages.length, 0);
    assert.equal((await list(`From=${encodeURIComponent(SENDER)}`)).body.messages.length, 7);

    // Twilio's inequality syntax: DateSent>=X arrives as key "DateSent>" (encoded or not).
    const today = new Date().toISOString().slice(0, 10);
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    assert.equal((await list(`DateSent>=${today}`)).body.messages.length, 5);
    assert.equal((await list(`DateSent%3E=${yesterday}`)).body.messages.length, 5);
    assert.equal((await list(`DateSent<=${yesterday}`)).body.messages.length, 2);
    assert.equal((await list(`DateSent=${twoDaysAgo}`)).body.messages.length, 2);
    // Date-times (what twilio-node sends for dateSentAfter), to the second.
    const since = new Date(Date.now() - 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    assert.deepEqual(sids(await list(`To=${encodeURIComponent(A)}&DateSent%3E=${since}`)), [fresh[3], fresh[2], fresh[1], fresh[0]]);
    const future = new Date(Date.now() + 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    assert.equal((await list(`DateSent%3E=${future}`)).body.messages.length, 0);
    assertTwilioError(await list("DateSent%3E=yesterday"), 400, 20001);
    assertTwilioError(await list("PageSize=0"), 400, 20001);
    assertTwilioError(await list("PageSize=1001"), 400, 20001);

    // Paging: follow next_page_uri to the end; every message exactly once.
    const seen: string[] = [];
    let page = await list(`To=${encodeURIComponent(A)}&PageSize=2`);
    assert.equal(page.body.first_page_uri, `${messagesPath()}?To=%2B447700900201&PageSize=2&Page=0`);
    assert.equal(page.body.uri, page.body.first_page_uri);
    assert.equal(page.body.previous_page_uri, null);
    assert.deepEqual([page.body.page, page.body.page_size, page.body.start, page.body.end], [0, 2, 0, 1]);
    const pages = [page];
    while (true) {
      seen.push(...sids(page));
      if (page.body.next_page_uri === null) break;
      assert.match(page.body.next_page_uri, /[?&]PageToken=PASM[0-9a-f]{32}/);
      page = await get(sb, page.body.next_page_uri);
      pages.push(page);
    }
    assert.deepEqual(seen, [fresh[3], fresh[2], fresh[1], fresh[0], old[0]]);
    assert.deepEqual(pages.map((p) => p.body.page), [0, 1, 2]);
    assert.deepEqual(pages.map((p) => p.body.messages.length), [2, 2, 1]);
    assert.deepEqual([pages[2].body.start, pages[2].body.end], [4, 4]);
    // previous_page_uri leads back to the page before.
    assert.deepEqual(sids(await get(sb, pages[2].body.previous_page_uri)), sids(pages[1]));
    assert.deepEqual(sids(await get(sb, pages[1].body.previous_page_uri)), sids(pages[0]));
    // Filters survive in every page URI.
    const filtered = await list(`To=${encodeURIComponent(A)}&DateSent%3E=${today}&PageSize=3`);
    assert.match(filtered.body.next_page_uri, /DateSent%3E=\d{4}-\d{2}-\d{2}&PageSize=3&Page=1&PageToken=/);
    const rest = await get(sb, filtered.body.next_page_uri);
    assert.deepEqual(sids(rest), [fresh[0]]);
  });
});

Deno.test("twilio: options and seeds are validated with the offending field named; templates/recipients can be added", async () => {
  await withSandbox(async (sb) => {
    const bad: [unknown, RegExp][] = [
      [{ rate_limit: { times: 0 } }, /^rate_limit\.times: /],
      [{ rate_limit: { status: 200 } }, /^rate_limit\.status: /],
      [{ accept_then_hang: { times: 1 } }, /^accept_then_hang\.hang_ms: /],
      [{ callbacks: { out_of_ordr: true } }, /^callbacks\.out_of_ordr: unknown field/],
      [{ callbacks: { delay_ms: -1 } }, /^callbacks\.delay_ms: /],
      [{ recipients: { invalid: ["5551234"] } }, /^recipients\.invalid\.0: /],
      [{ templates: [{ sid: "HX1", body: "x" }] }, /^templates\.0\.sid: /],
      [{ nonsense: 1 }, /^nonsense: unknown field/],
    ];
    for (const [input, message] of bad) {
      const res = await setOptions(sb, input);
      assert.equal(res.status, 400, JSON.stringify(input));
      assert.match(res.body.message, message);
    }

    const seeded = await setOptions(sb, {
      recipients: { unsubscribed: ["+447700900777"] },
      templates: [{ sid: "HX000000000000000000000000000000aa", name: "custom", body: "Code {{1}}" }],
    });
    assert.equal(seeded.status, 200);
    assertTwilioError(await send(sb, sms({ To: "+447700900777" })), 400, 21610);
    const templ = await send(sb, sms({ ContentSid: "HX000000000000000000000000000000aa", ContentVariables: '{"1":"42"}' }));
    assert.equal(templ.body.body, "Code 42");
  });
});

Deno.test("twilio: the auth token never appears in the snapshot or the request log", async () => {
  await withSandbox(async (sb) => {
    await send(sb, sms());
    await send(sb, sms(), { auth: "Basic " + btoa(`${SID}:wrong-token`) });
    await get(sb, messagesPath());
    const snapshot = await call(`${sb.controlUrl}/__state/twilio`);
    const log = (await call(`${sb.controlUrl}/__requests?provider=twilio`)).body.requests;
    assert.equal(log.length, 3);
    for (const entry of log) assert.equal(entry.headers.authorization, "[redacted]");
    const dump = JSON.stringify([snapshot.body, log]);
    for (const secret of [TOKEN, btoa(`${SID}:${TOKEN}`), "wrong-token", btoa(`${SID}:wrong-token`)]) {
      assert.equal(dump.includes(secret), false, secret);
    }
    assert.equal(snapshot.body.state.account_sid, SID);
    assert.equal(log[0].body.To, TO); // the rest of the form is kept
  });
});

Deno.test("twilio: POST /__reset drops callbacks still pending from before and restores the fixture options", async () => {
  await withSandbox(async (sb) => {
    await withWebhookReceiver(async (hook) => {
      await setOptions(sb, { callbacks: { delay_ms: 150 }, rate_limit: { times: 5 } });
      await setOptions(sb, { rate_limit: null });
      await send(sb, sms({ StatusCallback: hook.url }));
      assert.equal((await postJson(`${sb.controlUrl}/__reset`, {})).status, 200);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(hook.received.length, 0);
      const state = await twilioState(sb);
      assert.equal(state.messages.length, 0);
      assert.equal(state.callbacks.delay_ms, 10);
    });
  });
});
