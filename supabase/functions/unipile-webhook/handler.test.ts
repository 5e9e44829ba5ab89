// unipile-webhook against an in-memory store: which event reaches which SQL call, normalised, and
// which requests never reach the store at all.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import { postgresError } from "../_shared/testing/fake_job_store.ts";
import { callWebhook, chunkedBody, type WebhookCall, type WebhookCallOptions } from "../_shared/testing/webhook_call.ts";
import { MAX_WEBHOOK_BODY_BYTES } from "../_shared/webhook.ts";
import {
  createHandler,
  type MessageReceivedEvent,
  MIN_SECRET_LENGTH,
  type NewRelationEvent,
  type OutreachEventStore,
} from "./handler.ts";

const SECRET = "uw_0123456789abcdef0123456789abcdef_duework";
const ENV = { UNIPILE_WEBHOOK_SECRET: SECRET };

const newRelation = (extra: Record<string, unknown> = {}) => ({
  event: "new_relation",
  account_id: "acc_linkedin_3",
  account_type: "LINKEDIN",
  webhook_name: "duework-relations",
  user_full_name: "Jane Doe",
  user_provider_id: "ACoAAB1234567",
  user_public_identifier: "jane-doe",
  user_profile_url: "https://www.linkedin.com/in/jane-doe/",
  user_picture_url: "https://media.licdn.com/jane.jpg",
  ...extra,
});

const messageReceived = (extra: Record<string, unknown> = {}) => ({
  event: "message_received",
  account_id: "acc_linkedin_3",
  account_type: "LINKEDIN",
  account_info: { type: "LINKEDIN", feature: "classic", user_id: "ACoAAOWNER000" },
  chat_id: "chat_42",
  message_id: "msg_7",
  timestamp: "2026-12-03T10:15:00.000Z",
  message: "Thanks, happy to talk next week",
  sender: {
    attendee_id: "att_unipile_1",
    attendee_name: "Jane Doe",
    attendee_provider_id: "ACoAAB1234567",
    attendee_profile_url: "https://www.linkedin.com/in/jane-doe/",
  },
  attendees: [],
  ...extra,
});

interface Run extends WebhookCall {
  // deno-lint-ignore no-explicit-any
  json: any;
  relations: NewRelationEvent[];
  messages: MessageReceivedEvent[];
}

async function send(
  body: unknown,
  opts: WebhookCallOptions<OutreachEventStore> & { secret?: string | null; raw?: BodyInit } = {},
): Promise<Run> {
  const relations: NewRelationEvent[] = [];
  const messages: MessageReceivedEvent[] = [];
  const store: OutreachEventStore = {
    recordNewRelation(e) {
      relations.push(e);
      return Promise.resolve({ matched: 1, connected: 1, prospect_ids: [17] });
    },
    recordMessageReceived(e) {
      messages.push(e);
      return Promise.resolve({ matched: 1, replied: 1, prospect_ids: [17] });
    },
    ...opts.store,
  };
  const headers: Record<string, string> = { "content-type": "application/json", ...opts.headers };
  const secret = opts.secret === undefined ? SECRET : opts.secret;
  if (secret !== null) headers["x-webhook-secret"] = secret;
  const call = await callWebhook((d) => createHandler({ env: envFrom({ ...ENV, ...opts.env }), ...d }), store, {
    url: "http://edge-runtime.internal:8081/unipile-webhook",
    method: opts.method,
    headers,
    body: opts.raw ?? JSON.stringify(body),
  });
  const everything = [call.text, ...call.logs].join("\n");
  assert.equal(everything.includes(SECRET), false, "the secret leaked");
  assert.equal(everything.includes("Jane Doe"), false, "a name was logged or returned");
  assert.equal(call.logs.join("\n").includes("jane-doe"), false, "a profile identifier was logged");
  let json: unknown = null;
  try {
    json = JSON.parse(call.text);
  } catch { /* not JSON */ }
  return { ...call, json, relations, messages };
}

Deno.test("unipile-webhook: new_relation with the right secret → one record_new_relation call with the normalised event, 200 with its answer", async () => {
  const r = await send(newRelation({ user_public_identifier: "  jane-doe  ", unexpected: { nested: true } }));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { matched: 1, connected: 1, prospect_ids: [17] });
  assert.equal(r.storeCalls, 1);
  assert.deepEqual(r.relations, [{
    account_id: "acc_linkedin_3",
    user_provider_id: "ACoAAB1234567",
    user_public_identifier: "jane-doe",
    user_full_name: "Jane Doe",
  }]);
  assert.equal(r.messages.length, 0);
  assert.match(r.logs.join("\n"), /new_relation for account acc_linkedin_3: matched 1, connected 1 \(prospects 17\)/);

  // Either identifier is enough; the other one and the name become null.
  const onlyIdentifier = await send(newRelation({ user_provider_id: undefined, user_full_name: 42 }));
  assert.equal(onlyIdentifier.status, 200);
  assert.deepEqual(onlyIdentifier.relations[0], { account_id: "acc_linkedin_3", user_provider_id: null, user_public_identifier: "jane-doe", user_full_name: null });
  const onlyProviderId = await send(newRelation({ user_public_identifier: "", user_full_name: undefined }));
  assert.deepEqual(onlyProviderId.relations[0], { account_id: "acc_linkedin_3", user_provider_id: "ACoAAB1234567", user_public_identifier: null, user_full_name: null });
});

Deno.test("unipile-webhook: message_received → one record_message_received call with {account_id, chat_id, message_id, sender_provider_id, timestamp}", async () => {
  const r = await send(messageReceived());
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { matched: 1, replied: 1, prospect_ids: [17] });
  assert.deepEqual(r.messages, [{
    account_id: "acc_linkedin_3",
    chat_id: "chat_42",
    message_id: "msg_7",
    sender_provider_id: "ACoAAB1234567",
    timestamp: "2026-12-03T10:15:00.000Z",
  }]);
  assert.equal(r.relations.length, 0);
  assert.doesNotMatch(r.logs.join("\n"), /happy to talk/, "the message text is never logged");

  // A flat sender_provider_id is accepted; no sender at all is passed on as null.
  const flat = await send(messageReceived({ sender: undefined, sender_provider_id: "ACoAAFLAT", timestamp: 1764756900 }));
  assert.equal(flat.messages[0].sender_provider_id, "ACoAAFLAT");
  assert.equal(flat.messages[0].timestamp, "2025-12-03T10:15:00.000Z", "epoch seconds");
  const none = await send(messageReceived({ sender: undefined, message_id: undefined, timestamp: "yesterday" }));
  assert.equal(none.status, 200);
  assert.deepEqual(none.messages[0], { account_id: "acc_linkedin_3", chat_id: "chat_42", message_id: null, sender_provider_id: null, timestamp: null });
});

Deno.test("unipile-webhook: a message the account sent itself → 200 ignored, no database call", async () => {
  const own = await send(messageReceived({ sender: { attendee_provider_id: "ACoAAOWNER000", attendee_name: "Jane Doe" } }));
  assert.equal(own.status, 200);
  assert.deepEqual(own.json, { ignored: true, event: "message_received", reason: "sent_by_account" });
  assert.equal(own.storeCalls, 0);
  // Without account_info nothing is skipped: the SQL's sender match decides.
  const noInfo = await send(messageReceived({ account_info: undefined, sender: { attendee_provider_id: "ACoAAOWNER000" } }));
  assert.equal(noInfo.messages.length, 1);
});

Deno.test("unipile-webhook: other events → 200 {ignored: true, event}, no database call", async () => {
  for (const event of ["message_read", "message_reaction", "account_status", "NEW_RELATION"]) {
    const r = await send({ event, account_id: "acc_linkedin_3" });
    assert.equal(r.status, 200, event);
    assert.deepEqual(r.json, { ignored: true, event });
    assert.equal(r.storeCalls, 0);
  }
});

Deno.test("unipile-webhook: a missing or wrong secret → 401, the store is never called", async () => {
  const missing = await send(newRelation(), { secret: null });
  assert.equal(missing.status, 401);
  assert.deepEqual(missing.json, { error: "unauthorized", reason: "missing_secret", message: "no X-Webhook-Secret header" });
  const empty = await send(newRelation(), { secret: "" });
  assert.equal(empty.json.reason, "missing_secret");
  // The constant-time compare is still an exact one: a prefix, one character off, a longer
  // value, another case, or the secret in another header are all refused.
  const wrong = [
    SECRET.slice(0, -1),
    SECRET.slice(0, -1) + (SECRET.endsWith("k") ? "K" : "k"),
    SECRET + "x",
    SECRET.toUpperCase(),
    "x".repeat(SECRET.length),
  ];
  for (const secret of wrong) {
    const r = await send(newRelation(), { secret });
    assert.equal(r.status, 401, secret.slice(0, 8));
    assert.deepEqual(r.json, { error: "unauthorized", reason: "invalid_secret", message: "X-Webhook-Secret does not match" });
    assert.equal(r.storeCalls, 0);
  }
  const elsewhere = await send(newRelation(), { secret: null, headers: { authorization: `Bearer ${SECRET}` } });
  assert.equal(elsewhere.status, 401);
  for (const r of [missing, empty, elsewhere]) assert.equal(r.storeCalls, 0);
  // Checked before the body is looked at: an unverified request learns nothing about it.
  assert.equal((await send(null, { secret: "nope", raw: "{not json" })).status, 401);
});

Deno.test("unipile-webhook: UNIPILE_WEBHOOK_SECRET unset or shorter than 32 characters → 500 configuration_error naming it, no store", async () => {
  const unset = await send(newRelation(), { env: { UNIPILE_WEBHOOK_SECRET: undefined } });
  assert.equal(unset.status, 500);
  assert.equal(unset.json.error, "configuration_error");
  assert.match(unset.json.message, /^UNIPILE_WEBHOOK_SECRET is not set/);
  const short = "s".repeat(MIN_SECRET_LENGTH - 1);
  // The presented header equals the short secret: still refused, the setting is the problem.
  const tooShort = await send(newRelation(), { env: { UNIPILE_WEBHOOK_SECRET: short }, secret: short });
  assert.equal(tooShort.status, 500);
  assert.match(tooShort.json.message, /^UNIPILE_WEBHOOK_SECRET must be at least 32 characters/);
  assert.equal(tooShort.text.includes(short), false);
  const blank = await send(newRelation(), { env: { UNIPILE_WEBHOOK_SECRET: "   " } });
  assert.equal(blank.status, 500);
  for (const r of [unset, tooShort, blank]) assert.equal(r.storeCalls, 0);
  const exactly = "s".repeat(MIN_SECRET_LENGTH);
  assert.equal((await send(newRelation(), { env: { UNIPILE_WEBHOOK_SECRET: exactly }, secret: exactly })).status, 200);
});

Deno.test("unipile-webhook: 405 for other methods, 413 for a body over 64 KiB; nothing touched", async () => {
  const get = await send(null, { method: "GET" });
  assert.equal(get.status, 405);
  assert.equal(get.storeCalls, 0);
  const big = JSON.stringify(newRelation({ user_picture_url: "x".repeat(MAX_WEBHOOK_BODY_BYTES) }));
  const declared = await send(null, { raw: "{}", headers: { "content-length": String(MAX_WEBHOOK_BODY_BYTES + 1) } });
  assert.equal(declared.status, 413);
  assert.equal(declared.json.error, "payload_too_large");
  // Without a Content-Length (a stream), the read stops at the limit.
  const streamed = await send(null, { raw: chunkedBody(big) });
  assert.equal(streamed.status, 413);
  assert.equal(declared.storeCalls + streamed.storeCalls, 0);
});

Deno.test("unipile-webhook: a body that is not a JSON object, or lacks what its event needs → 400 naming the field", async () => {
  const cases: [unknown, string | null, string, RegExp][] = [
    [null, "{not json", "body", /not JSON/],
    [[newRelation()], null, "body", /JSON object/],
    ["new_relation", null, "body", /JSON object/],
    [{ account_id: "acc_linkedin_3" }, null, "event", /required/],
    [{ event: 7 }, null, "event", /string/],
    [newRelation({ account_id: undefined }), null, "account_id", /required/],
    [newRelation({ account_id: 3 }), null, "account_id", /string/],
    [newRelation({ user_provider_id: undefined, user_public_identifier: null }), null, "user_provider_id", /user_provider_id or user_public_identifier is required/],
    [newRelation({ user_provider_id: ["ACo"] }), null, "user_provider_id", /string/],
    [newRelation({ user_public_identifier: "j".repeat(513) }), null, "user_public_identifier", /longer than 512/],
    [messageReceived({ chat_id: undefined }), null, "chat_id", /required/],
    [messageReceived({ account_id: " " }), null, "account_id", /required/],
    [messageReceived({ sender: { attendee_provider_id: 12 } }), null, "sender.attendee_provider_id", /string/],
    [messageReceived({ message_id: {} }), null, "message_id", /string/],
    // Postgres text cannot hold NUL: refused here rather than failing the SQL call with a 500.
    [newRelation({ account_id: "acc\u0000x" }), null, "account_id", /NUL/],
    [newRelation({ user_provider_id: "ACo\u0000" }), null, "user_provider_id", /NUL/],
    [messageReceived({ chat_id: "chat\u0000" }), null, "chat_id", /NUL/],
    [messageReceived({ sender: { attendee_provider_id: "\u0000ACo" } }), null, "sender.attendee_provider_id", /NUL/],
  ];
  for (const [body, raw, field, message] of cases) {
    const r = await send(body, raw === null ? {} : { raw });
    assert.equal(r.status, 400, `${field}: ${r.text}`);
    assert.equal(r.json.error, "invalid_request");
    assert.equal(r.json.field, field);
    assert.match(r.json.message, message);
    assert.equal(r.storeCalls, 0);
  }
});

Deno.test("unipile-webhook: a NUL in the display name is dropped, not passed to SQL", async () => {
  const r = await send(newRelation({ user_full_name: "Ja\u0000ne" }));
  assert.equal(r.status, 200);
  assert.equal(r.relations[0].user_full_name, "Jane");
});

Deno.test("unipile-webhook: a database error → 500 so Unipile retries; neither the secret nor personal data is logged", async () => {
  const r = await send(newRelation(), {
    store: {
      recordNewRelation: () => Promise.reject(postgresError("57P01", `terminating connection (${SECRET}) while matching jane-doe`)),
    },
  });
  assert.equal(r.status, 500);
  assert.equal(r.json.error, "database_error");
  assert.match(r.json.message, /Unipile will deliver it again/);
  assert.match(r.logs.join("\n"), /new_relation for account acc_linkedin_3 could not be recorded: database error \(SQLSTATE 57P01\): terminating connection \(\[redacted\]\) while matching \[redacted\]/);

  const m = await send(messageReceived(), { store: { recordMessageReceived: () => Promise.reject(new Error("relation \"outreach.prospects\" does not exist")) } });
  assert.equal(m.status, 500);
  assert.equal(m.json.error, "database_error");
});
