import assert from "node:assert/strict";
import { envFrom } from "../env.ts";
import { type FakeAnswer, type FakeHttpRequest, startFakeHttp } from "../testing/fake_http.ts";
import {
  createUnipileClient,
  isFailure,
  normalizePublicIdentifier,
  parseUnipileError,
  toEpochMs,
  type UnipileClient,
  unipileApiBase,
  unipileFromEnv,
} from "./unipile.ts";
import { closedPort, startDropper } from "../testing/tcp.ts";

const API_KEY = "unipile-test-api-key-0123456789abcdef";
const ACCOUNT = "acc_Jx7Qv2";
const PROVIDER = "ACoAAB1234567890abcdefXYZ";

const unipileError = (status: number, type: string, title = type, detail?: string, headers: Record<string, string> = {}): FakeAnswer => ({
  status,
  body: { title, detail: detail ?? `${title} (detail)`, instance: "/api/v1/x", type: `errors/${type}`, status },
  headers,
});

async function withUnipile(
  respond: (req: FakeHttpRequest) => FakeAnswer,
  fn: (client: UnipileClient, requests: FakeHttpRequest[]) => Promise<void>,
  timeoutMs = 2_000,
) {
  const fake = startFakeHttp(respond);
  let calls = 0;
  try {
    await fn(createUnipileClient({ baseUrl: fake.url, apiKey: API_KEY, timeoutMs, onRequest: () => calls++ }), fake.requests);
    assert.equal(calls, fake.requests.length, "onRequest once per request sent");
  } finally {
    await fake.close();
  }
}

function assertNoSecret(value: unknown) {
  assert.equal(JSON.stringify(value).includes(API_KEY), false, "API key in a result");
}

/** The fields of a multipart body as the server parses them. */
async function formOf(req: FakeHttpRequest): Promise<FormData> {
  return await new Request("http://parse.test/", { method: "POST", headers: { "content-type": req.headers.get("content-type") ?? "" }, body: req.body })
    .formData();
}

function assertCommonHeaders(req: FakeHttpRequest) {
  assert.equal(req.headers.get("x-api-key"), API_KEY);
  assert.equal(req.headers.get("accept"), "application/json");
}

// ---------------------------------------------------------------------------------------------
// Configuration

Deno.test("unipile config: the DSN gets /api/v1 (once), a bare host gets https://, no default host", () => {
  assert.deepEqual(unipileApiBase("https://api1.unipile.com:13111"), { ok: true, url: "https://api1.unipile.com:13111/api/v1" });
  assert.deepEqual(unipileApiBase("https://api1.unipile.com:13111/"), { ok: true, url: "https://api1.unipile.com:13111/api/v1" });
  assert.deepEqual(unipileApiBase("https://api1.unipile.com:13111/api/v1/"), { ok: true, url: "https://api1.unipile.com:13111/api/v1" });
  assert.deepEqual(unipileApiBase(" api8.unipile.com:13851 "), { ok: true, url: "https://api8.unipile.com:13851/api/v1" });
  assert.deepEqual(unipileApiBase("http://127.0.0.1:54400/unipile"), { ok: true, url: "http://127.0.0.1:54400/unipile/api/v1" });
  for (const bad of ["ftp://api1.unipile.com", "https://user:pw@api1.unipile.com", "https://exa mple.com"]) {
    const r = unipileApiBase(bad);
    assert.equal(r.ok, false, bad);
    assert.match(!r.ok ? r.error : "", /^UNIPILE_BASE_URL must be your Unipile DSN/);
  }

  const none = unipileFromEnv(envFrom({ UNIPILE_API_KEY: API_KEY }));
  assert.deepEqual(none, { ok: false, configError: "UNIPILE_BASE_URL is not set (supabase secrets set UNIPILE_BASE_URL=…)" });
  const both = unipileFromEnv(envFrom({ UNIPILE_BASE_URL: " " }));
  assert.match(!both.ok ? both.configError : "", /^UNIPILE_BASE_URL and UNIPILE_API_KEY are not set/);
  const ok = unipileFromEnv(envFrom({ UNIPILE_BASE_URL: "https://api1.unipile.com:13111", UNIPILE_API_KEY: API_KEY }));
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.ok && ok.secrets, [API_KEY]);
});

// ---------------------------------------------------------------------------------------------
// Profiles and invitations

Deno.test("unipile getProfile: GET /api/v1/users/{identifier}?account_id with X-API-KEY → provider_id", async () => {
  await withUnipile(() => ({ status: 200, body: { object: "UserProfile", provider_id: PROVIDER, public_identifier: "jane-doe", first_name: "Jane" } }), async (client, requests) => {
    const r = await client.getProfile(ACCOUNT, "jane-doe");
    assert.deepEqual(r, { kind: "profile", providerId: PROVIDER, publicIdentifier: "jane-doe" });
    const [req] = requests;
    assert.equal(req.method, "GET");
    assert.equal(req.path, "/api/v1/users/jane-doe");
    assert.deepEqual(Object.fromEntries(req.query), { account_id: ACCOUNT });
    assertCommonHeaders(req);
    assert.equal(req.body, "");
  });
  await withUnipile(() => ({ status: 200, body: { object: "UserProfile" } }), async (client, requests) => {
    const r = await client.getProfile(ACCOUNT, "jürgen-müller/x");
    assert.deepEqual(r, { kind: "transient", error: "unexpected response: HTTP 200 without provider_id" });
    assert.equal(requests[0].path, "/api/v1/users/j%C3%BCrgen-m%C3%BCller%2Fx", "the identifier is one path segment");
  });
});

Deno.test("unipile sendInvitation: POST /users/invite as JSON {account_id, provider_id, message} → sent", async () => {
  await withUnipile(() => ({ status: 200, body: { object: "UserInvitationSent", invitation_id: "7195000000000000001", usage: 75 } }), async (client, requests) => {
    const r = await client.sendInvitation({ accountId: ACCOUNT, providerId: PROVIDER, message: "Hi Jane, let's connect" });
    assert.deepEqual(r, { kind: "sent", invitationId: "7195000000000000001", usage: 75 });
    const [req] = requests;
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/api/v1/users/invite");
    assert.equal(req.query.size, 0);
    assertCommonHeaders(req);
    assert.match(req.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(JSON.parse(req.body), { account_id: ACCOUNT, provider_id: PROVIDER, message: "Hi Jane, let's connect" });
  });
  await withUnipile(() => ({ status: 201, body: "" }), async (client, requests) => {
    const r = await client.sendInvitation({ accountId: ACCOUNT, providerId: PROVIDER, message: null });
    assert.deepEqual(r, { kind: "sent", invitationId: null, usage: null }, "a 2xx is sent even without the id (UNVERIFIED shape)");
    assert.deepEqual(JSON.parse(requests[0].body), { account_id: ACCOUNT, provider_id: PROVIDER }, "no note: no message field");
  });
});

Deno.test("unipile errors: every documented answer is classified, with the type", async () => {
  const cases: [FakeAnswer, Record<string, unknown>][] = [
    [unipileError(401, "disconnected_account"), { kind: "account_disconnected", status: 401, type: "disconnected_account" }],
    [unipileError(401, "invalid_credentials"), { kind: "account_disconnected", type: "invalid_credentials" }],
    [unipileError(401, "expired_credentials"), { kind: "account_disconnected", type: "expired_credentials" }],
    [unipileError(422, "already_invited_recently"), { kind: "already", status: 422, type: "already_invited_recently" }],
    [unipileError(422, "cannot_resend_yet"), { kind: "already", type: "cannot_resend_yet" }],
    [unipileError(422, "already_connected"), { kind: "already", type: "already_connected" }],
    [unipileError(422, "limit_exceeded"), { kind: "limit_exceeded", status: 422, type: "limit_exceeded" }],
    [unipileError(422, "no_connection_with_recipient"), { kind: "refused", status: 422, type: "no_connection_with_recipient" }],
    [unipileError(422, "user_unreachable"), { kind: "refused", type: "user_unreachable" }],
    [unipileError(400, "too_many_characters"), { kind: "refused", status: 400, type: "too_many_characters" }],
    [unipileError(400, "invalid_parameters"), { kind: "refused", type: "invalid_parameters" }],
    [unipileError(404, "resource_not_found"), { kind: "refused", status: 404, type: "resource_not_found" }],
    [{ status: 404, body: "<html>not found</html>" }, { kind: "refused", status: 404, type: "http_404" }],
    [unipileError(429, "too_many_requests", "Too many requests", undefined, { "retry-after": "17" }), { kind: "rate_limited", retryAfterSeconds: 17 }],
    [{ status: 429, body: "" }, { kind: "rate_limited", retryAfterSeconds: null }],
    [unipileError(500, "unexpected_error", "Something went wrong"), { kind: "server_error", status: 500, retryAfterSeconds: null }],
    [{ status: 503, body: "", headers: { "retry-after": "5" } }, { kind: "server_error", status: 503, retryAfterSeconds: 5 }],
    [unipileError(401, "missing_credentials", "Unauthorized"), { kind: "misconfigured" }],
    [unipileError(403, "insufficient_permissions"), { kind: "misconfigured" }],
    [{ status: 401, body: "" }, { kind: "misconfigured" }],
  ];
  for (const [answer, expected] of cases) {
    await withUnipile(() => answer, async (client) => {
      const r = await client.sendInvitation({ accountId: ACCOUNT, providerId: PROVIDER });
      for (const [k, v] of Object.entries(expected)) assert.deepEqual((r as Record<string, unknown>)[k], v, `${JSON.stringify(answer)} → ${k}`);
      assert.equal(isFailure(r), true);
    });
  }
  await withUnipile(() => unipileError(422, "already_invited_recently", "Invitation already sent", "An invitation was sent recently"), async (client) => {
    const r = await client.sendInvitation({ accountId: ACCOUNT, providerId: PROVIDER });
    assert.equal(r.kind === "already" && r.error, "Unipile 422 already_invited_recently: Invitation already sent - An invitation was sent recently");
  });
  await withUnipile(() => unipileError(401, "missing_credentials", "Unauthorized"), async (client) => {
    const r = await client.getProfile(ACCOUNT, "jane-doe");
    assert.match(r.kind === "misconfigured" ? r.error : "", /^Unipile refused the API key \(Unipile 401 missing_credentials: Unauthorized.*check the UNIPILE_API_KEY function secret/);
  });
});

Deno.test("unipile errors: parseUnipileError reads the RFC 7807 body and strips errors/", () => {
  assert.deepEqual(parseUnipileError(JSON.stringify({ title: "T", detail: "D", type: "errors/limit_exceeded", status: 422 })), {
    type: "limit_exceeded",
    title: "T",
    detail: "D",
    status: 422,
  });
  assert.equal(parseUnipileError("not json"), null);
  assert.equal(parseUnipileError("{}"), null);
});

Deno.test("unipile: a timeout or dropped connection on a POST is unknown_outcome; on a GET transient; a closed port is transient", async () => {
  await withUnipile(() => "hang", async (client, requests) => {
    assert.deepEqual(await client.sendInvitation({ accountId: ACCOUNT, providerId: PROVIDER }), {
      kind: "unknown_outcome",
      error: "timeout: Unipile did not answer within 100 ms",
    });
    assert.deepEqual(await client.startChat({ accountId: ACCOUNT, attendeeProviderId: PROVIDER, text: "hi" }), {
      kind: "unknown_outcome",
      error: "timeout: Unipile did not answer within 100 ms",
    });
    assert.deepEqual(await client.getProfile(ACCOUNT, "jane-doe"), { kind: "transient", error: "timeout: Unipile did not answer within 100 ms" });
    assert.equal((await client.listRelations({ accountId: ACCOUNT })).kind, "transient");
    assert.equal(requests.length, 4, "each request reached Unipile");
  }, 100);

  const dropper = startDropper();
  try {
    const client = createUnipileClient({ baseUrl: dropper.url, apiKey: API_KEY, timeoutMs: 2_000 });
    const post = await client.sendMessage({ chatId: "chat_1", accountId: ACCOUNT, text: "hi" });
    assert.equal(post.kind, "unknown_outcome", JSON.stringify(post));
    assert.match(post.kind === "unknown_outcome" ? post.error : "", /^network error: /);
    assertNoSecret(post);
    const get = await client.listChats({ accountId: ACCOUNT });
    assert.equal(get.kind, "transient");
  } finally {
    dropper.close();
  }

  const client = createUnipileClient({ baseUrl: closedPort(), apiKey: API_KEY, timeoutMs: 2_000 });
  const r = await client.sendInvitation({ accountId: ACCOUNT, providerId: PROVIDER });
  assert.equal(r.kind, "transient", JSON.stringify(r));
  assert.match(r.kind === "transient" ? r.error : "", /^network error: .*Connect/);
});

Deno.test("unipile: no result carries the API key, even when Unipile's error text would", async () => {
  await withUnipile(() => unipileError(400, "invalid_parameters", `bad request with key ${API_KEY}`, `X-API-KEY: ${API_KEY}`), async (client) => {
    const r = await client.sendInvitation({ accountId: ACCOUNT, providerId: PROVIDER });
    assert.equal(r.kind, "refused");
    assertNoSecret(r);
    assert.match(JSON.stringify(r), /\[redacted\]/);
  });
  await withUnipile(() => unipileError(403, "forbidden", API_KEY), async (client) => {
    const r = await client.listRelations({ accountId: ACCOUNT });
    assert.equal(r.kind, "misconfigured");
    assertNoSecret(r);
  });
});

// ---------------------------------------------------------------------------------------------
// Messaging (multipart)

Deno.test("unipile startChat: multipart POST /chats (boundary set by fetch) with account_id, attendees_ids, text → chat_id, message_id", async () => {
  const text = "Hi Jane,\nthanks for connecting — here is the deck 📎 & more";
  await withUnipile(() => ({ status: 201, body: { object: "ChatStarted", chat_id: "chat_9", message_id: "msg_1" } }), async (client, requests) => {
    const r = await client.startChat({ accountId: ACCOUNT, attendeeProviderId: PROVIDER, text });
    assert.deepEqual(r, { kind: "sent", chatId: "chat_9", messageId: "msg_1" });
    const [req] = requests;
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/api/v1/chats");
    assertCommonHeaders(req);
    assert.match(req.headers.get("content-type") ?? "", /^multipart\/form-data; boundary=\S+$/, "fetch wrote the boundary");
    const form = await formOf(req);
    assert.deepEqual([...form.keys()].sort(), ["account_id", "attendees_ids", "text"]);
    assert.equal(form.get("account_id"), ACCOUNT);
    assert.deepEqual(form.getAll("attendees_ids"), [PROVIDER]);
    // The multipart encoding (HTML spec) writes line breaks as CRLF: what LinkedIn stores may
    // differ from our text in line endings only, so the reconcile compares them normalised.
    assert.equal(form.get("text"), text.replace(/\n/g, "\r\n"));
  });
});

Deno.test("unipile sendMessage: multipart POST /chats/{id}/messages with text and account_id → message_id", async () => {
  await withUnipile(() => ({ status: 201, body: { object: "MessageSent", message_id: "msg_2" } }), async (client, requests) => {
    const r = await client.sendMessage({ chatId: "chat 9/x", accountId: ACCOUNT, text: "Following up" });
    assert.deepEqual(r, { kind: "sent", messageId: "msg_2" });
    const [req] = requests;
    assert.equal(req.path, "/api/v1/chats/chat%209%2Fx/messages");
    assert.match(req.headers.get("content-type") ?? "", /^multipart\/form-data; boundary=/);
    const form = await formOf(req);
    assert.equal(form.get("text"), "Following up");
    assert.equal(form.get("account_id"), ACCOUNT);
  });
  await withUnipile(() => ({ status: 201, body: { object: "MessageSent" } }), async (client) => {
    assert.deepEqual(await client.sendMessage({ chatId: "c", accountId: ACCOUNT, text: "x" }), { kind: "sent", messageId: null });
  });
});

Deno.test("unipile listChats / listChatMessages: after as ISO, limit, cursor; items read defensively", async () => {
  const after = new Date("2026-12-02T10:00:00Z");
  await withUnipile((req) =>
    req.path === "/api/v1/chats"
      ? {
        status: 200,
        body: {
          object: "ChatList",
          items: [
            { object: "Chat", id: "chat_1", attendee_provider_id: PROVIDER, timestamp: "2026-12-02T10:00:05.000Z" },
            { object: "Chat", id: "chat_2", attendees: [{ attendee_provider_id: "ACoOTHER1234567" }] },
            { object: "Chat", name: "no id" },
          ],
          cursor: "c2",
        },
      }
      : {
        status: 200,
        body: {
          object: "MessageList",
          items: [
            { object: "Message", id: "m1", text: "Hello", is_sender: 1, timestamp: "2026-12-02T10:00:06.000Z" },
            { object: "Message", id: "m2", text: null, is_sender: 0, is_event: 1, timestamp: "2026-12-02T10:00:07.000Z" },
            { object: "Message", id: "m3", text: "Hi!", is_sender: false, timestamp: 1_796_205_608 },
          ],
          cursor: null,
        },
      }, async (client, requests) => {
    const chats = await client.listChats({ accountId: ACCOUNT, after, limit: 500, cursor: "c1" });
    assert.deepEqual(chats, {
      kind: "page",
      items: [
        { id: "chat_1", attendeeProviderId: PROVIDER, timestampMs: Date.parse("2026-12-02T10:00:05Z") },
        { id: "chat_2", attendeeProviderId: "ACoOTHER1234567", timestampMs: null },
      ],
      cursor: "c2",
    });
    assert.deepEqual(Object.fromEntries(requests[0].query), { account_id: ACCOUNT, after: "2026-12-02T10:00:00.000Z", limit: "250", cursor: "c1" });

    const messages = await client.listChatMessages({ chatId: "chat_1", after, limit: 20 });
    assert.deepEqual(messages, {
      kind: "page",
      items: [
        { id: "m1", text: "Hello", isSender: true, timestamp: Date.parse("2026-12-02T10:00:06Z"), isEvent: false },
        { id: "m2", text: null, isSender: false, timestamp: Date.parse("2026-12-02T10:00:07Z"), isEvent: true },
        { id: "m3", text: "Hi!", isSender: false, timestamp: 1_796_205_608_000, isEvent: false },
      ],
      cursor: null,
    });
    assert.equal(requests[1].path, "/api/v1/chats/chat_1/messages");
    assert.deepEqual(Object.fromEntries(requests[1].query), { after: "2026-12-02T10:00:00.000Z", limit: "20" });
  });
  await withUnipile(() => ({ status: 200, body: { object: "ChatList" } }), async (client) => {
    assert.deepEqual(await client.listChats({ accountId: ACCOUNT }), { kind: "transient", error: "unexpected response: HTTP 200 without items" });
  });
});

// ---------------------------------------------------------------------------------------------
// Relations and sent invitations

Deno.test("unipile listRelations: GET /users/relations?account_id&limit≤1000&cursor; member_id numeric or ACo…, created_at s or ms", async () => {
  await withUnipile(() => ({
    status: 200,
    body: {
      object: "UserRelationsList",
      items: [
        { object: "UserRelation", public_identifier: "jane-doe", member_id: PROVIDER, created_at: 1_712_160_000 },
        { object: "UserRelation", public_identifier: "bo", member_id: 987654321, created_at: 1_712_160_000_123 },
        { object: "UserRelation", public_profile_url: "https://www.linkedin.com/in/Ana-Lopez/", member_id: "12345" },
        "junk",
      ],
      cursor: "next-1",
    },
  }), async (client, requests) => {
    const r = await client.listRelations({ accountId: ACCOUNT, cursor: "c0", limit: 5000 });
    assert.deepEqual(r, {
      kind: "page",
      items: [
        { publicIdentifier: "jane-doe", memberId: PROVIDER, providerId: PROVIDER, createdAtMs: 1_712_160_000_000 },
        { publicIdentifier: "bo", memberId: "987654321", providerId: null, createdAtMs: 1_712_160_000_123 },
        { publicIdentifier: "Ana-Lopez", memberId: "12345", providerId: null, createdAtMs: null },
      ],
      cursor: "next-1",
    });
    assert.equal(requests[0].path, "/api/v1/users/relations");
    assert.deepEqual(Object.fromEntries(requests[0].query), { account_id: ACCOUNT, limit: "1000", cursor: "c0" });
    assertCommonHeaders(requests[0]);
  });
  await withUnipile(() => ({ status: 200, body: { object: "UserRelationsList", items: [], cursor: "" } }), async (client, requests) => {
    assert.deepEqual(await client.listRelations({ accountId: ACCOUNT }), { kind: "page", items: [], cursor: null });
    assert.deepEqual(Object.fromEntries(requests[0].query), { account_id: ACCOUNT, limit: "1000" }, "no cursor on the first page");
  });
});

Deno.test("unipile listSentInvitations: GET /users/invite/sent, items with invited_user_id / invited_user_public_id", async () => {
  await withUnipile(() => ({
    status: 200,
    body: {
      object: "InvitationList",
      items: [
        { object: "InvitationSent", id: "inv_2", invited_user_id: PROVIDER, invited_user_public_id: "jane-doe", date: "2026-12-02T10:00:01Z" },
        { object: "InvitationSent", id: 7, invited_user_public_id: "bo", parsed_datetime: "2026-12-01T10:00:00Z" },
        { object: "InvitationSent", invited_user: "no id" },
      ],
      cursor: null,
    },
  }), async (client, requests) => {
    const r = await client.listSentInvitations({ accountId: ACCOUNT, limit: 100 });
    assert.deepEqual(r, {
      kind: "page",
      items: [
        { id: "inv_2", providerId: PROVIDER, publicIdentifier: "jane-doe", sentAtMs: Date.parse("2026-12-02T10:00:01Z") },
        { id: "7", providerId: null, publicIdentifier: "bo", sentAtMs: Date.parse("2026-12-01T10:00:00Z") },
      ],
      cursor: null,
    });
    assert.equal(requests[0].path, "/api/v1/users/invite/sent");
    assert.deepEqual(Object.fromEntries(requests[0].query), { account_id: ACCOUNT, limit: "100" });
  });
});

Deno.test("unipile helpers: epoch seconds vs ms, public identifiers compared case- and encoding-insensitively", () => {
  assert.equal(toEpochMs(1_712_160_000), 1_712_160_000_000);
  assert.equal(toEpochMs(1_712_160_000_000), 1_712_160_000_000);
  assert.equal(toEpochMs("1712160000"), 1_712_160_000_000);
  assert.equal(toEpochMs("2026-12-02T10:00:00Z"), Date.parse("2026-12-02T10:00:00Z"));
  assert.equal(toEpochMs("yesterday"), null);
  assert.equal(toEpochMs(null), null);
  assert.equal(normalizePublicIdentifier(" Jane-Doe/ "), "jane-doe");
  assert.equal(normalizePublicIdentifier("j%C3%BCrgen"), normalizePublicIdentifier("Jürgen"));
  assert.equal(normalizePublicIdentifier("%E0%A4%A"), "%e0%a4%a", "bad encoding kept");
  assert.equal(normalizePublicIdentifier(""), null);
  assert.equal(normalizePublicIdentifier(null), null);
});
