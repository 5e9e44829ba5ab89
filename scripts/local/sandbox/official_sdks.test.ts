// The official SDKs against the Twilio and Resend fakes, changing nothing but where they send
// requests: proves the fakes speak the wire format the vendors' own clients expect (bodies,
// error envelopes, paging, headers, webhook signatures).
//
// twilio-node has no base-URL option (edge/region only rewrite *.twilio.com host names), so it
// gets its documented extension point: a custom httpClient. SandboxRequestClient is the SDK's
// own RequestClient with the origin of every URI swapped for the fake's. Resend takes
// `new Resend(key, { baseUrl })` (or RESEND_BASE_URL).

import assert from "node:assert/strict";
import { Resend } from "npm:resend@6";
import twilio from "npm:twilio@6";
import type { Sandbox } from "./server.ts";
import { postJson, withSandbox, withWebhookReceiver } from "./test_util.ts";

const SID = "AC00000000000000000000000000000001";
const TOKEN = "duework-local-twilio-auth-token";
const WA_FROM = "whatsapp:+14155238886";
const RESEND_KEY = "re_duework_local_key";
const FROM = "Duework Bookings <bookings@duework.test>";

/** twilio-node's RequestClient, sending to `origin` instead of https://api.twilio.com. */
class SandboxRequestClient extends twilio.RequestClient {
  readonly #origin: string;
  constructor(origin: string) {
    // No keep-alive: the test's sandbox closes right after, with no sockets left open.
    super({ keepAlive: false });
    this.#origin = origin;
  }
  // deno-lint-ignore no-explicit-any
  override request<TData>(opts: any): Promise<any> {
    const uri = new URL(opts.uri);
    return super.request<TData>({ ...opts, uri: this.#origin + uri.pathname + uri.search });
  }
}

function twilioClient(sb: Sandbox, token = TOKEN) {
  return twilio(SID, token, { httpClient: new SandboxRequestClient(sb.providers.twilio) });
}

Deno.test("official twilio SDK: create with contentSid, fetch, list with dateSentAfter, RestException codes", async () => {
  await withSandbox(async (sb) => {
    const client = twilioClient(sb);
    const since = new Date(Date.now() - 60_000);
    const created = await client.messages.create({
      to: "whatsapp:+447700900123",
      from: WA_FROM,
      contentSid: "HX00000000000000000000000000000b01",
      contentVariables: JSON.stringify({ "1": "Ana", "2": "£150.00", "3": "3 Dec 2026", "4": "BK-000042" }),
    });
    assert.match(created.sid, /^SM[0-9a-f]{32}$/);
    assert.equal(created.status, "queued");
    assert.equal(created.body, "Hi Ana, the balance of £150.00 for your event on 3 Dec 2026 is due. Booking BK-000042.");
    assert.equal(created.numSegments, "1");
    assert.ok(created.dateCreated instanceof Date && !Number.isNaN(created.dateCreated.getTime()));
    assert.equal(created.errorCode, null);

    const fetched = await client.messages(created.sid).fetch();
    assert.equal(fetched.sid, created.sid);
    assert.equal(fetched.to, "whatsapp:+447700900123");

    // The reconcile look-up: the SDK sends DateSent%3E=<ISO date-time> (key "DateSent>").
    const found = await client.messages.list({ to: "whatsapp:+447700900123", dateSentAfter: since });
    assert.deepEqual(found.map((m) => m.sid), [created.sid]);
    assert.equal((await client.messages.list({ to: "whatsapp:+447700900123", dateSentAfter: new Date(Date.now() + 60_000) })).length, 0);

    // Paging: the SDK follows next_page_uri itself.
    for (let i = 0; i < 4; i++) await client.messages.create({ to: "+447700900555", from: "+14155238886", body: `n${i}` });
    const paged = await client.messages.list({ to: "+447700900555", pageSize: 2 });
    assert.deepEqual(paged.map((m) => m.body), ["n3", "n2", "n1", "n0"]);
    const limited = await client.messages.list({ to: "+447700900555", pageSize: 3, limit: 3 });
    assert.equal(limited.length, 3);

    const invalid = await client.messages.create({ to: "+15005550001", from: "+14155238886", body: "x" }).catch((e) => e);
    assert.ok(invalid instanceof twilio.RestException, String(invalid));
    assert.equal(invalid.code, 21211);
    assert.equal(invalid.status, 400);
    assert.equal(invalid.moreInfo, "https://www.twilio.com/docs/errors/21211");

    const badAuth = await twilioClient(sb, "wrong").messages.list({ limit: 1 }).catch((e) => e);
    assert.ok(badAuth instanceof twilio.RestException);
    assert.equal(badAuth.code, 20003);

    await postJson(`${sb.controlUrl}/__state/twilio`, { rate_limit: { times: 1 } });
    const busy = await client.messages.create({ to: "+447700900123", from: "+14155238886", body: "x" }).catch((e) => e);
    assert.equal(busy.code, 20429);
    assert.equal(busy.status, 429);
  });
});

Deno.test("official twilio SDK: validateRequest accepts the fake's callback signatures (and rejects tampering)", async () => {
  await withSandbox(async (sb) => {
    await withWebhookReceiver(async (hook) => {
      const callbackUrl = `${hook.url}?notification_id=12`;
      await twilioClient(sb).messages.create({
        to: "whatsapp:+447700900999", // no open window: sent free-form, so it fails with 63016
        from: WA_FROM,
        body: "free-form",
        statusCallback: callbackUrl,
      });
      await twilioClient(sb).messages.create({ to: "+447700900123", from: "+14155238886", body: "x", statusCallback: callbackUrl });
      const got = await hook.waitFor(3);
      assert.deepEqual(got.map((c) => c.params.MessageStatus).sort(), ["delivered", "failed", "sent"]);
      for (const cb of got) {
        const signature = cb.headers.get("x-twilio-signature")!;
        assert.equal(twilio.validateRequest(TOKEN, signature, callbackUrl, cb.params), true, JSON.stringify(cb.params));
        assert.equal(twilio.validateRequest("other-token", signature, callbackUrl, cb.params), false);
        assert.equal(twilio.validateRequest(TOKEN, signature, callbackUrl, { ...cb.params, MessageStatus: "read" }), false);
        assert.equal(twilio.validateRequest(TOKEN, signature, hook.url, cb.params), false);
      }
      assert.equal(got.find((c) => c.params.MessageStatus === "failed")!.params.ErrorCode, "63016");
    });
  });
});

Deno.test("official resend SDK: send with idempotencyKey, replay, 409 and 429 error objects, emails.get", async () => {
  await withSandbox(async (sb) => {
    const resend = new Resend(RESEND_KEY, { baseUrl: sb.providers.resend });
    const payload = {
      from: FROM,
      to: "ana@example.com",
      subject: "Your event is tomorrow",
      html: "<p>Hi Ana, The Jazz Trio plays tomorrow.</p>",
    };
    const sent = await resend.emails.send(payload, { idempotencyKey: "event_reminder:42:email" });
    assert.equal(sent.error, null);
    assert.match(sent.data!.id, /^[0-9a-f-]{36}$/);
    assert.equal(sent.headers!["ratelimit-limit"], "5");

    const replay = await resend.emails.send(payload, { idempotencyKey: "event_reminder:42:email" });
    assert.equal(replay.data!.id, sent.data!.id);

    const conflict = await resend.emails.send({ ...payload, subject: "Changed" }, { idempotencyKey: "event_reminder:42:email" });
    assert.equal(conflict.data, null);
    assert.deepEqual(
      [conflict.error!.name, conflict.error!.statusCode],
      ["invalid_idempotent_request", 409],
    );

    const got = await resend.emails.get(sent.data!.id);
    assert.equal(got.error, null);
    assert.equal(got.data!.subject, "Your event is tomorrow");
    assert.deepEqual(got.data!.to, ["ana@example.com"]);

    // 4 requests so far in this second; a burst over the 5/s limit gets 429 error objects.
    const burst = await Promise.all([1, 2].map((i) => resend.emails.send({ ...payload, subject: `burst ${i}` })));
    const limited = burst.find((r) => r.error !== null)!;
    assert.deepEqual([limited.error!.name, limited.error!.statusCode], ["rate_limit_exceeded", 429]);
    assert.equal(limited.headers!["retry-after"], "1");

    // Concurrent duplicate while the first is in flight.
    await postJson(`${sb.controlUrl}/__state/resend`, { rate_limit_per_second: null, processing_ms: 200 });
    const [a, b] = await Promise.all([
      resend.emails.send(payload, { idempotencyKey: "event_reminder:43:email" }),
      new Promise((r) => setTimeout(r, 50)).then(() => resend.emails.send(payload, { idempotencyKey: "event_reminder:43:email" })),
    ]);
    assert.equal(a.error, null);
    assert.deepEqual([b.error!.name, b.error!.statusCode], ["concurrent_idempotent_requests", 409]);

    const unverified = await resend.emails.send({ ...payload, from: "x@unverified.test" });
    assert.deepEqual([unverified.error!.name, unverified.error!.statusCode], ["validation_error", 403]);
    const badKey = await new Resend("re_wrong", { baseUrl: sb.providers.resend }).emails.send(payload);
    assert.deepEqual([badKey.error!.name, badKey.error!.statusCode], ["invalid_api_key", 403]);
  });
});
