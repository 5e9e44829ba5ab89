// twilio-status against an in-memory store; requests are signed with the official SDK
// (devDependency `twilio`), so the check is proven against what Twilio computes.

import assert from "node:assert/strict";
import twilio from "npm:twilio@^6.3.1";
import { envFrom } from "../_shared/env.ts";
import { postgresError } from "../_shared/testing/fake_job_store.ts";
import { callWebhook, chunkedBody, type WebhookCall, type WebhookCallOptions } from "../_shared/testing/webhook_call.ts";
import { createHandler, type DeliveryStatusStore, type DeliveryStatusUpdate, MAX_BODY_BYTES } from "./handler.ts";

const SID = "AC00000000000000000000000000000001";
const TOKEN = "duework-local-twilio-auth-token";
const CALLBACK_URL = "https://ref.supabase.co/functions/v1/twilio-status";
/** What the function sees behind the gateway: another host and path. */
const INTERNAL_URL = "http://edge-runtime.internal:8081/twilio-status";
const MESSAGE_SID = "SM0123456789abcdef0123456789abcdef";
const ENV = { SUPABASE_URL: "https://ref.supabase.co", TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: TOKEN };

const callback = (extra: Record<string, string> = {}): Record<string, string> => ({
  SmsSid: MESSAGE_SID,
  SmsStatus: "delivered",
  MessageStatus: "delivered",
  To: "whatsapp:+447700900123",
  ChannelToAddress: "+447700900123",
  MessageSid: MESSAGE_SID,
  AccountSid: SID,
  From: "whatsapp:+14155238886",
  ApiVersion: "2010-04-01",
  ChannelPrefix: "whatsapp",
  ...extra,
});

interface Run extends WebhookCall {
  updates: DeliveryStatusUpdate[];
}

async function send(
  params: Record<string, string>,
  opts: WebhookCallOptions<DeliveryStatusStore> & {
    signUrl?: string;
    signToken?: string;
    signature?: string | null;
    url?: string;
    contentType?: string;
    body?: BodyInit;
  } = {},
): Promise<Run> {
  const updates: DeliveryStatusUpdate[] = [];
  const store: DeliveryStatusStore = {
    recordDeliveryStatus(u) {
      updates.push(u);
      return Promise.resolve({ notification_id: 12, status: u.status, changed: true });
    },
    ...opts.store,
  };
  const signature = opts.signature !== undefined
    ? opts.signature
    : twilio.getExpectedTwilioSignature(opts.signToken ?? TOKEN, opts.signUrl ?? CALLBACK_URL, params);
  const headers: Record<string, string> = { "content-type": opts.contentType ?? "application/x-www-form-urlencoded", ...opts.headers };
  if (signature !== null) headers["x-twilio-signature"] = signature;
  const call = await callWebhook((d) => createHandler({ env: envFrom({ ...ENV, ...opts.env }), ...d }), store, {
    url: opts.url ?? INTERNAL_URL,
    method: opts.method,
    headers,
    body: opts.body ?? new URLSearchParams(params).toString(),
  });
  assert.equal([call.text, ...call.logs].join("\n").includes(TOKEN), false, "the auth token leaked");
  return { ...call, updates };
}

const json = (r: Run) => JSON.parse(r.text);

Deno.test("twilio-status: a valid callback → one store call with the sid, status and error, 200 empty TwiML", async () => {
  const r = await send(callback());
  assert.equal(r.status, 200, r.text);
  assert.match(r.contentType ?? "", /^text\/xml/);
  assert.match(r.text, /<Response\/>$/);
  assert.equal(r.storeCalls, 1);
  assert.deepEqual(r.updates, [{ messageSid: MESSAGE_SID, status: "delivered", errorCode: null, errorMessage: null }]);

  const failed = await send(callback({ MessageStatus: "undelivered", SmsStatus: "undelivered", ErrorCode: "63016", ErrorMessage: "Outside the window" }));
  assert.equal(failed.status, 200);
  assert.deepEqual(failed.updates, [{ messageSid: MESSAGE_SID, status: "undelivered", errorCode: "63016", errorMessage: "Outside the window" }]);
  assert.match(failed.logs.join("\n"), /SM0123456789abcdef0123456789abcdef undelivered error 63016 → notification 12/);
});

Deno.test("twilio-status: a NUL in ErrorMessage is dropped (Postgres text cannot store it), the callback is recorded", async () => {
  const r = await send(callback({ MessageStatus: "failed", SmsStatus: "failed", ErrorCode: "30008", ErrorMessage: "Unknown\u0000 error" }));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.updates, [{ messageSid: MESSAGE_SID, status: "failed", errorCode: "30008", errorMessage: "Unknown error" }]);
});

Deno.test("twilio-status: the signature is checked against the configured URL (plus the query string), not req.url", async () => {
  // Signed by Twilio for the public URL; the function is reached at another host and path.
  assert.equal((await send(callback(), { url: INTERNAL_URL })).status, 200);
  // A signature over the URL the function sees is not Twilio's.
  const viaReqUrl = await send(callback(), { signUrl: INTERNAL_URL });
  assert.equal(viaReqUrl.status, 403);
  assert.equal(viaReqUrl.storeCalls, 0);
  // The query string of the request is part of what Twilio signed.
  const withQuery = await send(callback(), { url: `${INTERNAL_URL}?attempt=2`, signUrl: `${CALLBACK_URL}?attempt=2` });
  assert.equal(withQuery.status, 200);
  const queryNotSigned = await send(callback(), { url: `${INTERNAL_URL}?attempt=2` });
  assert.equal(queryNotSigned.status, 403);
  // TWILIO_STATUS_CALLBACK_URL, when set, is the URL.
  const custom = "https://hooks.example.com/twilio/status";
  assert.equal((await send(callback(), { env: { TWILIO_STATUS_CALLBACK_URL: custom }, signUrl: custom })).status, 200);
  assert.equal((await send(callback(), { env: { TWILIO_STATUS_CALLBACK_URL: custom } })).status, 403);
  // Twilio may sign the URL with the default port.
  assert.equal((await send(callback(), { signUrl: "https://ref.supabase.co:443/functions/v1/twilio-status" })).status, 200);
});

Deno.test("twilio-status: forged, missing, other token or another account → 403 naming the reason; the store is never called", async () => {
  const forged = await send(callback(), { signature: "bm90IGEgcmVhbCBzaWduYXR1cmUhIQ==" });
  assert.equal(forged.status, 403);
  assert.deepEqual(json(forged), { error: "forbidden", reason: "invalid_signature", message: "X-Twilio-Signature does not match this request" });
  const missing = await send(callback(), { signature: null });
  assert.equal(missing.status, 403);
  assert.equal(json(missing).reason, "missing_signature");
  const otherToken = await send(callback(), { signToken: "someone-elses-auth-token-123" });
  assert.equal(json(otherToken).reason, "invalid_signature");
  const otherAccount = await send(callback({ AccountSid: "AC99999999999999999999999999999999" }));
  assert.equal(otherAccount.status, 403);
  assert.equal(json(otherAccount).reason, "wrong_account");
  const noAccount = callback();
  delete noAccount.AccountSid;
  assert.equal(json(await send(noAccount)).reason, "wrong_account");
  // A changed parameter after signing.
  const params = callback();
  const sig = twilio.getExpectedTwilioSignature(TOKEN, CALLBACK_URL, params);
  const tampered = await send({ ...params, MessageStatus: "read" }, { signature: sig });
  assert.equal(json(tampered).reason, "invalid_signature");
  for (const r of [forged, missing, otherToken, otherAccount, tampered]) assert.equal(r.storeCalls, 0);
});

Deno.test("twilio-status: 405 for other methods, 413 for a body over 64 KiB; nothing touched", async () => {
  const get = await send(callback(), { method: "GET" });
  assert.equal(get.status, 405);
  assert.equal(get.storeCalls, 0);
  const big = callback({ Body: "x".repeat(MAX_BODY_BYTES) });
  // A declared Content-Length over the limit: refused without reading the body.
  const declared = await send(big, { headers: { "content-length": String(MAX_BODY_BYTES + 1) }, body: "small" });
  assert.equal(declared.status, 413);
  assert.equal(json(declared).error, "payload_too_large");
  // Without a Content-Length (a stream), the read stops at the limit.
  const streamed = await send(big, { body: chunkedBody(new URLSearchParams(big).toString()) });
  assert.equal(streamed.status, 413);
  assert.equal(streamed.storeCalls + declared.storeCalls, 0);
});

Deno.test("twilio-status: signed but not form-encoded, or without MessageSid / MessageStatus, or an unknown status → 400 naming the field", async () => {
  const plain = await send(callback(), { contentType: "text/plain" });
  assert.equal(plain.status, 400);
  assert.deepEqual(json(plain), { error: "invalid_request", field: "content-type", message: "must be application/x-www-form-urlencoded" });
  const noSid = callback();
  delete noSid.MessageSid;
  assert.equal(json(await send(noSid)).field, "MessageSid");
  const noStatus = callback();
  delete noStatus.MessageStatus;
  assert.equal(json(await send(noStatus)).field, "MessageStatus");
  const unknown = await send(callback({ MessageStatus: "exploded" }));
  assert.equal(unknown.status, 400);
  assert.equal(json(unknown).field, "MessageStatus");
  assert.match(json(unknown).message, /unknown status "exploded"/);
  const badCode = await send(callback({ MessageStatus: "failed", ErrorCode: "63016; drop table" }));
  assert.equal(json(badCode).field, "ErrorCode");
  assert.equal(unknown.storeCalls + plain.storeCalls + badCode.storeCalls, 0);
  // Every status the SQL ranks is accepted.
  for (const s of ["queued", "sending", "sent", "delivered", "read", "failed", "undelivered"]) {
    assert.equal((await send(callback({ MessageStatus: s }))).status, 200, s);
  }
  // A charset parameter on the content type is fine.
  assert.equal((await send(callback(), { contentType: "application/x-www-form-urlencoded; charset=utf-8" })).status, 200);
});

Deno.test("twilio-status: a database error → 500 so Twilio can retry; the token is in neither the answer nor the logs", async () => {
  const r = await send(callback(), {
    store: { recordDeliveryStatus: () => Promise.reject(postgresError("57P01", `terminating connection (${TOKEN})`)) },
  });
  assert.equal(r.status, 500);
  assert.equal(json(r).error, "database_error");
  assert.match(r.logs.join("\n"), /could not be recorded: database error \(SQLSTATE 57P01\): terminating connection \(\[redacted\]\)/);
});

Deno.test("twilio-status: without the auth token or account sid → 500 configuration_error naming it, no store", async () => {
  const r = await send(callback(), { env: { TWILIO_AUTH_TOKEN: undefined } });
  assert.equal(r.status, 500);
  assert.equal(json(r).error, "configuration_error");
  assert.match(json(r).message, /TWILIO_AUTH_TOKEN is not set/);
  assert.equal(r.storeCalls, 0);
  const noUrl = await send(callback(), { env: { SUPABASE_URL: undefined } });
  assert.match(json(noUrl).message, /TWILIO_STATUS_CALLBACK_URL \(or SUPABASE_URL\) is not set/);
});
