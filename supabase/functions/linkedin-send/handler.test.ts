// linkedin-send handler against the in-process FakeJobStore and an in-process fake Unipile (an
// injected fetch that builds real Requests, so multipart bodies are what fetch would send). No
// database, no network. What SQL does with each outcome is the migration's (pgTAP); here: which
// calls are made, with what, and which outcome, with which data, is recorded.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import type { Outcome } from "../_shared/outcome.ts";
import { FakeJobStore, type FakeTask } from "../_shared/testing/fake_job_store.ts";
import { type FakeUnipileAnswer, type FakeUnipileRequest, type FakeUnipileState, fakeUnipile, unipileError } from "../_shared/testing/fake_unipile.ts";
import { createHandler, type HandlerDeps, RECONCILE_SKEW_MS, sameText } from "./handler.ts";
import { LIMIT_EXCEEDED_PAUSE_SECONDS } from "./outcomes.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const API_KEY = "unipile-handler-test-key-0123456789abcdef";
const HOST = "api9.unipile.test:13111";
const ENV = {
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }),
  UNIPILE_BASE_URL: `https://${HOST}`,
  UNIPILE_API_KEY: API_KEY,
};
const JANE = "ACoAAAJane0000000000000000";
const BO = "ACoAAABo00000000000000000";
const SINCE = "2026-12-02T10:00:00Z";

type Kind = "invite" | "follow_up" | "outbox";
interface T {
  taskId: number;
  kind: Kind;
  account?: number;
  providerId?: string | null;
  publicIdentifier?: string | null;
  note?: string | null;
  reconcileSince?: string | null;
  chatId?: string | null;
  text?: string;
  recipient?: string;
}

const lease = (taskId: number) => `00000000-0000-4000-8000-${String(taskId).padStart(12, "0")}`;
const account = (t: T) => ({ id: t.account ?? 3, unipile_account_id: `acc_${t.account ?? 3}` });
function contextOf(t: T) {
  const a = account(t);
  if (t.kind === "invite") {
    return {
      kind: "invite",
      prospect_id: 100 + t.taskId,
      account: a,
      provider_id: t.providerId === undefined ? JANE : t.providerId,
      public_identifier: t.publicIdentifier === undefined ? "jane-doe" : t.publicIdentifier,
      note: t.note === undefined ? "Hi Jane, let's connect." : t.note,
      reconcile_since: t.reconcileSince ?? null,
      pause_keys: { account: `unipile:${a.id}`, budget: `li-invites-day:${a.id}` },
    };
  }
  return {
    kind: t.kind,
    ref_id: 200 + t.taskId,
    account: a,
    recipient_provider_id: t.recipient ?? JANE,
    chat_id: t.chatId === undefined ? null : t.chatId,
    text: t.text ?? `Follow-up ${t.taskId}: thanks for connecting!`,
    reconcile_since: t.reconcileSince ?? null,
    pause_keys: { account: `unipile:${a.id}`, budget: `li-messages-day:${a.id}` },
  };
}
function payloadOf(t: T) {
  if (t.kind === "invite") return { kind: "invite", prospect_id: 100 + t.taskId };
  return t.kind === "follow_up" ? { kind: "follow_up", message_id: 200 + t.taskId } : { kind: "outbox", outbox_id: 200 + t.taskId };
}
const task = (t: T): FakeTask => ({ taskId: t.taskId, leaseToken: lease(t.taskId), payload: payloadOf(t), context: contextOf(t) });
const batch = (ts: T[]) => ({
  job: "outreach-invitations",
  batch_id: 9,
  tasks: ts.map((t) => ({ id: t.taskId, lease_token: lease(t.taskId), attempt: 1, payload: payloadOf(t) })),
});

interface Run {
  status: number;
  // deno-lint-ignore no-explicit-any
  json: any;
  text: string;
  store: FakeJobStore;
  requests: FakeUnipileRequest[];
  maxInFlight: Map<string, number>;
  maxInFlightTotal: number;
  state: FakeUnipileState;
  logs: string[];
}

type Respond = (req: FakeUnipileRequest, state: FakeUnipileState) => FakeUnipileAnswer | undefined;

async function run(
  tasks: T[],
  respond?: Respond,
  opts: { backlog?: T[]; env?: Record<string, string | undefined>; deps?: Partial<HandlerDeps>; state?: Partial<Omit<FakeUnipileState, "apiKey">> } = {},
): Promise<Run> {
  const store = new FakeJobStore({ tasks: tasks.map(task), backlog: (opts.backlog ?? []).map(task) });
  const unipile = fakeUnipile({
    apiKey: API_KEY,
    host: HOST,
    respond,
    state: { profiles: new Map([["jane-doe", JANE], ["bo", BO]]), ...opts.state },
  });
  const logs: string[] = [];
  const handler = createHandler({ env: envFrom({ ...ENV, ...opts.env }), store: () => store, fetch: unipile.fetch, log: (l) => logs.push(l), ...opts.deps });
  const res = await handler(new Request("http://fn.test/linkedin-send", {
    method: "POST",
    headers: { "content-type": "application/json", apikey: SECRET_KEY },
    body: JSON.stringify(batch(tasks)),
  }));
  const text = await res.text();
  const r = { status: res.status, json: text ? JSON.parse(text) : null, text, store, requests: unipile.requests, maxInFlight: unipile.maxInFlightPerAccount, maxInFlightTotal: unipile.maxInFlight(), state: unipile.state, logs };
  assertNoSecrets(r);
  return r;
}

/** The API key appears nowhere: not in the response, the logs, or any recorded outcome. */
function assertNoSecrets(r: Run) {
  const everything = [r.text, ...r.logs, JSON.stringify(r.store.recorded.map((x) => x.outcome))].join("\n");
  assert.equal(everything.includes(API_KEY), false, "the Unipile API key leaked");
}

type AnyOutcome = Outcome & { data?: Record<string, unknown>; after?: number | null; pause?: string | null; error?: string; notAttempted?: boolean; tag?: string };
const outcome = (r: Run, taskId: number) => r.store.outcomeOf(taskId) as AnyOutcome;
const calls = (r: Run, method: string, path: string | RegExp) =>
  r.requests.filter((q) => q.method === method && (typeof path === "string" ? q.path === path : path.test(q.path)));
const only = (status: number, type: string, title?: string, headers?: Record<string, string>) => (): FakeUnipileAnswer => unipileError(status, type, title, headers);
/** Answers `answer` to requests matching method + path, the state otherwise. */
const on = (method: string, path: string | RegExp, answer: FakeUnipileAnswer | (() => FakeUnipileAnswer)): Respond => (req) =>
  req.method === method && (typeof path === "string" ? req.path === path : path.test(req.path))
    ? (typeof answer === "function" ? answer() : answer)
    : undefined;

// ---------------------------------------------------------------------------------------------
// Invitations

Deno.test("linkedin-send invite: POST /users/invite as JSON with the note → ok {result: sent, invitation_id, provider_id}", async () => {
  const r = await run([{ taskId: 1, kind: "invite" }]);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.requests.length, 1);
  const [req] = r.requests;
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/users/invite");
  assert.equal(req.headers.get("x-api-key"), API_KEY);
  assert.equal(req.headers.get("accept"), "application/json");
  assert.match(req.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(req.json, { account_id: "acc_3", provider_id: JANE, message: "Hi Jane, let's connect." });
  const invitationId = r.state.invitations[0].id;
  assert.deepEqual(outcome(r, 1), { outcome: "ok", data: { result: "sent", invitation_id: invitationId, provider_id: JANE }, tag: "invitations_sent" });
  assert.deepEqual(r.json.linkedin, { invitations_sent: 1, messages_sent: 0, reconciled: 0, already: 0, unipile_calls: 1 });
  assert.deepEqual(r.store.finishedBatches, [9]);
});

Deno.test("linkedin-send invite: no note → no message field; no provider_id → GET /users/{public_identifier} first, its id in the data", async () => {
  const r = await run([{ taskId: 1, kind: "invite", providerId: null, note: null }]);
  assert.deepEqual(r.requests.map((q) => `${q.method} ${q.path}`), ["GET /users/jane-doe", "POST /users/invite"]);
  assert.deepEqual(Object.fromEntries(r.requests[0].query), { account_id: "acc_3" });
  assert.deepEqual(r.requests[1].json, { account_id: "acc_3", provider_id: JANE });
  assert.equal(outcome(r, 1).data!.provider_id, JANE);
  assert.equal(outcome(r, 1).data!.result, "sent");
  assert.equal(r.json.linkedin.unipile_calls, 2);
});

Deno.test("linkedin-send invite: once the profile gave the provider id, every outcome carries it (retry, dead, discard)", async () => {
  const cases: [FakeUnipileAnswer, string][] = [
    [unipileError(429, "too_many_requests", "Too many", { "retry-after": "30" }), "retry"],
    [unipileError(503, "service_unavailable"), "retry"],
    [unipileError(400, "too_many_characters"), "dead"],
    [unipileError(401, "disconnected_account"), "discard"],
    [unipileError(422, "limit_exceeded"), "retry"],
    ["hang", "retry"],
  ];
  for (const [answer, kind] of cases) {
    const r = await run([{ taskId: 1, kind: "invite", providerId: null }], on("POST", "/users/invite", answer), { deps: { timeoutMs: 50 } });
    const o = outcome(r, 1);
    assert.equal(o.outcome, kind, JSON.stringify(answer));
    assert.equal(o.data?.provider_id, JANE, `${JSON.stringify(answer)}: provider_id in the data`);
  }
  // A profile that is not there: dead with the type, nothing sent.
  const gone = await run([{ taskId: 1, kind: "invite", providerId: null, publicIdentifier: "nobody-here" }]);
  assert.deepEqual(outcome(gone, 1), {
    outcome: "dead",
    error: "Unipile 404 resource_not_found: Resource not found - Resource not found.",
    data: { error_type: "resource_not_found" },
  });
  assert.equal(calls(gone, "POST", "/users/invite").length, 0);
  // Neither identifier: dead without a call.
  const none = await run([{ taskId: 1, kind: "invite", providerId: null, publicIdentifier: null }]);
  assert.equal(none.requests.length, 0);
  assert.deepEqual(outcome(none, 1).data, { error_type: "no_identifier" });
});

Deno.test("linkedin-send invite: 422 already_invited_recently / cannot_resend_yet / already_connected → ok {result: <type>, provider_id}", async () => {
  for (const type of ["already_invited_recently", "cannot_resend_yet", "already_connected"]) {
    const r = await run([{ taskId: 1, kind: "invite" }], only(422, type));
    assert.deepEqual(outcome(r, 1), { outcome: "ok", data: { result: type, provider_id: JANE }, tag: "already" }, type);
    assert.equal(r.json.linkedin.already, 1);
    assert.equal(r.status, 200);
  }
});

Deno.test("linkedin-send invite: other 422, 400, 404 → dead {error_type}", async () => {
  for (const [status, type] of [[422, "user_unreachable"], [400, "invalid_parameters"], [400, "too_many_characters"], [404, "resource_not_found"]] as const) {
    const r = await run([{ taskId: 1, kind: "invite" }], only(status, type, "refused"));
    const o = outcome(r, 1);
    assert.equal(o.outcome, "dead", type);
    assert.deepEqual(o.data, { provider_id: JANE, error_type: type });
    assert.equal(o.error, `Unipile ${status} ${type}: refused - refused.`);
  }
  const noType = await run([{ taskId: 1, kind: "invite" }], () => ({ status: 404, body: "nope" }));
  assert.equal(outcome(noType, 1).data!.error_type, "http_404");
});

Deno.test("linkedin-send invite: 429 → retry after Retry-After with pause unipile:<id>; the account's other tasks are not called", async () => {
  const ts: T[] = [1, 2, 3].map((i) => ({ taskId: i, kind: "invite" as const, providerId: `ACoAAAProspect${i}000000000` }));
  const other: T = { taskId: 4, kind: "invite", account: 4, providerId: BO };
  const r = await run([...ts, other], (req) => req.json?.account_id === "acc_3" ? unipileError(429, "too_many_requests", "Too many requests", { "retry-after": "30" }) : undefined, {
    backlog: [{ taskId: 5, kind: "invite", providerId: "ACoAAAProspect5000000000" }],
  });
  assert.equal(calls(r, "POST", "/users/invite").filter((q) => q.json?.account_id === "acc_3").length, 1, "one call for account 3");
  const called = [1, 2, 3, 5].filter((id) => !outcome(r, id).error!.startsWith("not called: "));
  assert.equal(called.length, 1);
  for (const id of [1, 2, 3, 5]) {
    const o = outcome(r, id);
    assert.equal(o.outcome, "retry", `task ${id}`);
    assert.equal(o.pause, "unipile:3");
    assert.ok(o.after! >= 29 && o.after! <= 30, `after ${o.after}`);
    assert.equal(o.notAttempted === true, id !== called[0], `task ${id}: only the task that called uses an attempt`);
  }
  assert.match(outcome(r, [1, 2, 3, 5].find((id) => id !== called[0])!).error!, /^not called: Unipile limited LinkedIn account 3 \(acc_3\) earlier in this request \(Unipile 429 too_many_requests/);
  assert.equal(outcome(r, 4).outcome, "ok", "another account is not affected");
  assert.equal(r.json.linkedin.unipile_calls, 2);
  // Without Retry-After: 60 s.
  const bare = await run([{ taskId: 1, kind: "invite" }], () => ({ status: 429, body: "" }));
  assert.equal(outcome(bare, 1).after, 60);
});

Deno.test("linkedin-send invite: 500/502/503/504 → retry after 60 s, pause unipile:<id>, outcome unknown (reconciled next); later tasks not called", async () => {
  for (const status of [500, 502, 503, 504]) {
    const r = await run([{ taskId: 1, kind: "invite" }, { taskId: 2, kind: "invite", providerId: BO }], only(status, "unexpected_error", "Something went wrong"));
    assert.equal(r.requests.length, 1, `${status}: one call`);
    const ids = [1, 2];
    const first = ids.find((id) => !outcome(r, id).notAttempted)!;
    const o = outcome(r, first);
    assert.equal(o.outcome, "retry");
    assert.equal(o.after, 60);
    assert.equal(o.pause, "unipile:3");
    assert.match(o.error!, new RegExp(`^Unipile ${status} unexpected_error: .*; the outcome is unknown, the next attempt reconciles before sending$`));
    const later = outcome(r, ids.find((id) => id !== first)!);
    assert.deepEqual([later.outcome, later.notAttempted, later.pause], ["retry", true, "unipile:3"]);
  }
});

Deno.test("linkedin-send invite: 422 limit_exceeded → retry after 6 h, not_attempted, pause li-invites-day:<id>; later invites not called", async () => {
  const r = await run([{ taskId: 1, kind: "invite" }, { taskId: 2, kind: "invite", providerId: BO }], only(422, "limit_exceeded", "Limit exceeded"));
  assert.equal(r.requests.length, 1);
  for (const id of [1, 2]) {
    const o = outcome(r, id);
    assert.equal(o.outcome, "retry");
    assert.equal(o.pause, "li-invites-day:3");
    assert.equal(o.notAttempted, true, "LinkedIn refused before doing anything: the attempt is given back");
    assert.ok(o.after! >= LIMIT_EXCEEDED_PAUSE_SECONDS - 1 && o.after! <= LIMIT_EXCEEDED_PAUSE_SECONDS);
  }
  assert.equal(LIMIT_EXCEEDED_PAUSE_SECONDS, 21_600);
});

Deno.test("linkedin-send invite: 401 disconnected_account → discard {account_error}; the account's later tasks discarded without a call", async () => {
  for (const type of ["disconnected_account", "invalid_credentials", "expired_credentials"]) {
    const r = await run(
      [{ taskId: 1, kind: "invite" }, { taskId: 2, kind: "invite", providerId: BO }, { taskId: 3, kind: "invite", account: 4 }],
      (req) => req.json?.account_id === "acc_3" ? unipileError(401, type, "Account disconnected") : undefined,
      { backlog: [{ taskId: 4, kind: "invite", providerId: null, publicIdentifier: "bo" }] },
    );
    assert.equal(r.requests.filter((q) => q.json?.account_id === "acc_3" || q.query.get("account_id") === "acc_3").length, 1, `${type}: one call`);
    for (const id of [1, 2, 4]) {
      const o = outcome(r, id);
      assert.equal(o.outcome, "discard", `${type} task ${id}`);
      assert.equal(o.data!.account_error, type);
      assert.match(o.error!, /LinkedIn account 3 \(acc_3\) needs reconnection: Unipile 401/);
    }
    assert.equal(outcome(r, 3).outcome, "ok");
    assert.equal(r.json.discarded, 3);
  }
});

Deno.test("linkedin-send invite: a timeout or dropped connection on the POST → retry, outcome unknown; the key never shows", async () => {
  const timeout = await run([{ taskId: 1, kind: "invite" }], () => "hang", { deps: { timeoutMs: 50 } });
  assert.deepEqual(outcome(timeout, 1), {
    outcome: "retry",
    error: "outcome unknown, the next attempt reconciles before sending: timeout: Unipile did not answer within 50 ms",
    after: null,
    data: { provider_id: JANE },
  });
  const dropped = await run([{ taskId: 1, kind: "invite" }], () => "drop");
  assert.match(outcome(dropped, 1).error!, /^outcome unknown.*connection closed before message completed/);
  assert.match(outcome(dropped, 1).error!, /\[redacted\]/);
});

// ---------------------------------------------------------------------------------------------
// Invitation reconcile

Deno.test("linkedin-send invite reconcile: found among sent invitations (by provider id) → ok reconciled, nothing sent", async () => {
  const r = await run([{ taskId: 1, kind: "invite", reconcileSince: SINCE }], undefined, {
    state: {
      invitations: [
        { id: "inv_jane", invited_user_id: JANE, invited_user_public_id: "jane-doe", date: "2026-12-02T10:00:01Z" },
        { id: "inv_bo", invited_user_id: BO, invited_user_public_id: "bo", date: "2026-12-02T10:00:02Z" },
      ],
    },
  });
  assert.deepEqual(r.requests.map((q) => `${q.method} ${q.path}`), ["GET /users/invite/sent"]);
  assert.deepEqual(Object.fromEntries(r.requests[0].query), { account_id: "acc_3", limit: "100" });
  assert.deepEqual(outcome(r, 1), { outcome: "ok", data: { result: "reconciled", invitation_id: "inv_jane", provider_id: JANE }, tag: "reconciled" });
  assert.equal(r.json.linkedin.reconciled, 1);
});

Deno.test("linkedin-send invite reconcile: matched on the public identifier when the provider id is unknown; found on the second page", async () => {
  const filler = Array.from({ length: 100 }, (_, i) => ({ id: `inv_${i}`, invited_user_id: `ACoAAAFiller${i}0000000`, invited_user_public_id: `filler-${i}`, date: SINCE }));
  const r = await run([{ taskId: 1, kind: "invite", providerId: null, publicIdentifier: "Jane-Doe", reconcileSince: SINCE }], undefined, {
    state: { invitations: [{ id: "inv_jane", invited_user_id: "123456789", invited_user_public_id: "jane-doe", date: SINCE }, ...filler] },
  });
  assert.deepEqual(r.requests.map((q) => `${q.method} ${q.path} ${q.query.get("cursor") ?? ""}`), ["GET /users/invite/sent ", "GET /users/invite/sent o100"]);
  // invited_user_id is numeric here: not taken for a provider id (UNVERIFIED which one Unipile sends).
  assert.deepEqual(outcome(r, 1).data, { result: "reconciled", invitation_id: "inv_jane", provider_id: null });
  assert.equal(calls(r, "GET", "/users/jane-doe").length, 0, "no profile fetch needed");

  const withAco = await run([{ taskId: 1, kind: "invite", providerId: null, reconcileSince: SINCE }], undefined, {
    state: { invitations: [{ id: "inv_jane", invited_user_id: JANE, invited_user_public_id: "jane-doe", date: SINCE }] },
  });
  assert.deepEqual(outcome(withAco, 1).data, { result: "reconciled", invitation_id: "inv_jane", provider_id: JANE });
});

Deno.test("linkedin-send invite reconcile: not found → profile + POST; already_invited_recently then is ok too", async () => {
  const r = await run([{ taskId: 1, kind: "invite", providerId: null, reconcileSince: SINCE }], undefined, {
    state: { invitations: [{ id: "inv_bo", invited_user_id: BO, invited_user_public_id: "bo", date: SINCE }] },
  });
  assert.deepEqual(r.requests.map((q) => `${q.method} ${q.path}`), ["GET /users/invite/sent", "GET /users/jane-doe", "POST /users/invite"]);
  assert.equal(outcome(r, 1).data!.result, "sent");

  // The earlier attempt's invitation is not listed (yet), but LinkedIn has it.
  const already = await run([{ taskId: 1, kind: "invite", reconcileSince: SINCE }], on("POST", "/users/invite", unipileError(422, "already_invited_recently")));
  assert.deepEqual(outcome(already, 1), { outcome: "ok", data: { result: "already_invited_recently", provider_id: JANE }, tag: "already" });
});

Deno.test("linkedin-send invite reconcile: a failed lookup → retry and nothing sent (never send blind)", async () => {
  const cases: [FakeUnipileAnswer, Partial<AnyOutcome>][] = [
    ["hang", { outcome: "retry", after: null }],
    [unipileError(400, "invalid_parameters"), { outcome: "retry", after: null }],
    [{ status: 200, body: { object: "InvitationList" } }, { outcome: "retry", after: null }],
    [unipileError(500, "unexpected_error"), { outcome: "retry", after: 60, pause: "unipile:3" }],
    [unipileError(429, "too_many_requests", "x", { "retry-after": "9" }), { outcome: "retry", after: 9, pause: "unipile:3" }],
  ];
  for (const [answer, expected] of cases) {
    const r = await run([{ taskId: 1, kind: "invite", reconcileSince: SINCE }], on("GET", "/users/invite/sent", answer), { deps: { timeoutMs: 50 } });
    assert.equal(calls(r, "POST", "/users/invite").length, 0, `${JSON.stringify(answer)}: never send blind`);
    const o = outcome(r, 1);
    for (const [k, v] of Object.entries(expected)) assert.equal((o as Record<string, unknown>)[k], v, `${JSON.stringify(answer)} ${k}`);
    assert.match(o.error!, /^not sent: reconcile lookup: /);
  }
  const gone = await run([{ taskId: 1, kind: "invite", reconcileSince: SINCE }], on("GET", "/users/invite/sent", unipileError(401, "disconnected_account")));
  assert.equal(outcome(gone, 1).outcome, "discard");
  assert.equal(calls(gone, "POST", "/users/invite").length, 0);
});

// ---------------------------------------------------------------------------------------------
// Messages

Deno.test("linkedin-send follow_up in a chat: multipart POST /chats/{id}/messages (no hand-set Content-Type) → ok {sent, chat_id, provider_message_id}", async () => {
  const text = "Hi Jane,\nthanks for connecting — quick question?";
  const r = await run([{ taskId: 1, kind: "follow_up", chatId: "chat_jane", text }], undefined, {
    state: { chats: [{ id: "chat_jane", attendee_provider_id: JANE, messages: [] }] },
  });
  assert.equal(r.status, 200, r.text);
  const [req] = r.requests;
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/chats/chat_jane/messages");
  assert.match(req.headers.get("content-type") ?? "", /^multipart\/form-data; boundary=\S+$/, "the boundary is fetch's");
  assert.equal(req.form!.get("text"), text.replace(/\n/g, "\r\n"), "multipart writes CRLF line breaks");
  assert.equal(req.form!.get("account_id"), "acc_3");
  const sent = r.state.chats[0].messages[0];
  assert.deepEqual(outcome(r, 1), { outcome: "ok", data: { result: "sent", chat_id: "chat_jane", provider_message_id: sent.id }, tag: "messages_sent" });
  assert.deepEqual(r.json.linkedin, { invitations_sent: 0, messages_sent: 1, reconciled: 0, already: 0, unipile_calls: 1 });
});

Deno.test("linkedin-send outbox without a chat: multipart POST /chats with account_id, attendees_ids, text → the new chat_id in the data", async () => {
  const r = await run([{ taskId: 1, kind: "outbox", recipient: BO, text: "Hello from the app" }]);
  const [req] = r.requests;
  assert.equal(req.path, "/chats");
  assert.match(req.headers.get("content-type") ?? "", /^multipart\/form-data; boundary=/);
  assert.deepEqual([...req.form!.keys()].sort(), ["account_id", "attendees_ids", "text"]);
  assert.equal(req.form!.get("account_id"), "acc_3");
  assert.deepEqual(req.form!.getAll("attendees_ids"), [BO]);
  assert.equal(req.form!.get("text"), "Hello from the app");
  const chat = r.state.chats[0];
  assert.deepEqual(outcome(r, 1), { outcome: "ok", data: { result: "sent", chat_id: chat.id, provider_message_id: chat.messages[0].id }, tag: "messages_sent" });
});

Deno.test("linkedin-send messages: refusals → dead {error_type}; 401 → discard; 429 → retry pause; limit_exceeded pauses li-messages-day", async () => {
  for (const type of ["no_connection_with_recipient", "user_unreachable", "not_allowed_inmail", "blocked_recipient", "cant_send_message"]) {
    const r = await run([{ taskId: 1, kind: "follow_up" }], only(422, type));
    assert.deepEqual([outcome(r, 1).outcome, outcome(r, 1).data], ["dead", { error_type: type }], type);
  }
  const chatGone = await run([{ taskId: 1, kind: "outbox", chatId: "chat_gone" }]);
  assert.deepEqual(outcome(chatGone, 1).data, { error_type: "resource_not_found" });
  const off = await run([{ taskId: 1, kind: "follow_up" }, { taskId: 2, kind: "outbox" }], only(401, "expired_credentials"));
  assert.equal(off.requests.length, 1);
  // Refused before anything was sent, and no earlier attempt pending: SQL may forget the intent.
  for (const id of [1, 2]) {
    assert.deepEqual([outcome(off, id).outcome, outcome(off, id).data], ["discard", { account_error: "expired_credentials", not_sent: true }]);
  }
  const limited = await run([{ taskId: 1, kind: "follow_up" }], only(429, "too_many_requests"));
  assert.deepEqual([outcome(limited, 1).outcome, outcome(limited, 1).pause, outcome(limited, 1).after], ["retry", "unipile:3", 60]);
  assert.equal(outcome(limited, 1).data?.not_sent, true);
  // A 5xx may have sent: the intent stays (the next attempt reconciles).
  const broken = await run([{ taskId: 1, kind: "follow_up" }], only(500, "unexpected_error"));
  assert.equal(outcome(broken, 1).data?.not_sent, undefined);
  // An earlier attempt's outcome is unknown and this one was refused before looking: kept too.
  const unknownBefore = await run([{ taskId: 1, kind: "follow_up", chatId: "chat_jane", reconcileSince: SINCE }], only(429, "too_many_requests"));
  assert.equal(outcome(unknownBefore, 1).outcome, "retry");
  assert.equal(outcome(unknownBefore, 1).data?.not_sent, undefined);
  const quota = await run([{ taskId: 1, kind: "follow_up" }], only(422, "limit_exceeded"));
  assert.deepEqual([outcome(quota, 1).pause, outcome(quota, 1).after, outcome(quota, 1).notAttempted], ["li-messages-day:3", LIMIT_EXCEEDED_PAUSE_SECONDS, true]);
  const timeout = await run([{ taskId: 1, kind: "outbox" }], () => "hang", { deps: { timeoutMs: 50 } });
  assert.match(outcome(timeout, 1).error!, /^outcome unknown, the next attempt reconciles before sending: timeout/);
});

// ---------------------------------------------------------------------------------------------
// Message reconcile

const at = (iso: string, deltaMs: number) => new Date(Date.parse(iso) + deltaMs).toISOString();

Deno.test("linkedin-send message reconcile in the known chat: ours with exactly this text → ok reconciled (replied when the other side wrote), nothing sent", async () => {
  const text = "Hi Jane,\nany thoughts?";
  const r = await run([{ taskId: 1, kind: "follow_up", chatId: "chat_jane", text, reconcileSince: SINCE }], undefined, {
    state: {
      chats: [{
        id: "chat_jane",
        attendee_provider_id: JANE,
        messages: [
          { id: "m_old", text: "Hi Jane, any thoughts?", is_sender: 1, timestamp: at(SINCE, -3_600_000) },
          { id: "m_ours", text: "Hi Jane,\r\nany thoughts?", is_sender: 1, timestamp: at(SINCE, 1_000) },
          { id: "m_event", text: null as unknown as string, is_sender: 0, is_event: 1, timestamp: at(SINCE, 1_500) },
          { id: "m_reply", text: "Sure, let's talk", is_sender: 0, timestamp: at(SINCE, 2_000) },
        ],
      }],
    },
  });
  assert.deepEqual(r.requests.map((q) => `${q.method} ${q.path}`), ["GET /chats/chat_jane/messages"]);
  assert.deepEqual(Object.fromEntries(r.requests[0].query), { after: at(SINCE, -RECONCILE_SKEW_MS), limit: "50" });
  assert.deepEqual(outcome(r, 1), {
    outcome: "ok",
    data: { replied: true, result: "reconciled", chat_id: "chat_jane", provider_message_id: "m_ours" },
    tag: "reconciled",
  });

  // Without a reply: no replied key.
  const quiet = await run([{ taskId: 1, kind: "outbox", chatId: "chat_jane", text: "ping", reconcileSince: SINCE }], undefined, {
    state: { chats: [{ id: "chat_jane", attendee_provider_id: JANE, messages: [{ id: "m1", text: " ping ", is_sender: 1, timestamp: at(SINCE, 10) }] }] },
  });
  assert.deepEqual(outcome(quiet, 1).data, { result: "reconciled", chat_id: "chat_jane", provider_message_id: "m1" });
});

Deno.test("linkedin-send message reconcile: not ours, another text or a reply only → an outbox message is sent now (replied in the data), a follow-up is not", async () => {
  const chat = () => ({
    chats: [{
      id: "chat_jane",
      attendee_provider_id: JANE,
      messages: [
        { id: "m1", text: "Follow-up one", is_sender: 1 as const, timestamp: at(SINCE, 1_000) },
        { id: "m2", text: "Follow-up two", is_sender: 0 as const, timestamp: at(SINCE, 2_000) },
      ],
    }],
  });
  const r = await run([{ taskId: 1, kind: "outbox", chatId: "chat_jane", text: "Follow-up two", reconcileSince: SINCE }], undefined, {
    state: chat(),
  });
  assert.deepEqual(r.requests.map((q) => `${q.method} ${q.path}`), ["GET /chats/chat_jane/messages", "POST /chats/chat_jane/messages"]);
  const o = outcome(r, 1);
  assert.equal(o.data!.result, "sent");
  assert.equal(o.data!.replied, true);
  assert.equal(o.tag, "messages_sent");

  // The prospect answered since the earlier attempt: the sequence stops, nothing is sent.
  const fu = await run([{ taskId: 1, kind: "follow_up", chatId: "chat_jane", text: "Follow-up two", reconcileSince: SINCE }], undefined, {
    state: chat(),
  });
  assert.deepEqual(fu.requests.map((q) => `${q.method} ${q.path}`), ["GET /chats/chat_jane/messages"]);
  assert.deepEqual(outcome(fu, 1), {
    outcome: "discard",
    error: "the prospect replied; this follow-up is not sent",
    data: { replied: true, not_sent: true },
  });
});

Deno.test("linkedin-send message reconcile without a chat_id: the recipient's chat among recent chats, then its messages", async () => {
  const chats = () => [
    { id: "chat_bo", attendee_provider_id: BO, messages: [{ id: "mb", text: "Hello", is_sender: 1 as const, timestamp: at(SINCE, 500) }] },
    { id: "chat_jane", attendee_provider_id: JANE, messages: [{ id: "mj", text: "Hello", is_sender: 1 as const, timestamp: at(SINCE, 1_000) }] },
  ];
  const found = await run([{ taskId: 1, kind: "outbox", text: "Hello", reconcileSince: SINCE }], undefined, { state: { chats: chats() } });
  assert.deepEqual(found.requests.map((q) => `${q.method} ${q.path}`), ["GET /chats", "GET /chats/chat_jane/messages"]);
  assert.deepEqual(Object.fromEntries(found.requests[0].query), { account_id: "acc_3", after: at(SINCE, -RECONCILE_SKEW_MS), limit: "50" });
  assert.deepEqual(outcome(found, 1).data, { chat_id: "chat_jane", result: "reconciled", provider_message_id: "mj" });

  // The chat exists but our message is not in it: sent into that chat, its id in the data.
  const inChat = await run([{ taskId: 1, kind: "outbox", text: "Something else", reconcileSince: SINCE }], undefined, { state: { chats: chats() } });
  assert.deepEqual(inChat.requests.map((q) => `${q.method} ${q.path}`), ["GET /chats", "GET /chats/chat_jane/messages", "POST /chats/chat_jane/messages"]);
  assert.equal(outcome(inChat, 1).data!.chat_id, "chat_jane");
  assert.equal(outcome(inChat, 1).data!.result, "sent");

  // No chat with the recipient: a new chat.
  const none = await run([{ taskId: 1, kind: "outbox", recipient: "ACoAAANobody000000000", reconcileSince: SINCE }], undefined, { state: { chats: chats() } });
  assert.deepEqual(none.requests.map((q) => `${q.method} ${q.path}`), ["GET /chats", "POST /chats"]);
  assert.equal(outcome(none, 1).data!.result, "sent");
});

Deno.test("linkedin-send message reconcile: a failed lookup (chats or messages) → retry, nothing sent", async () => {
  for (const [path, answer] of [["/chats", "hang"], ["/chats", unipileError(500, "unexpected_error")], [/^\/chats\/.+\/messages$/, unipileError(404, "resource_not_found")]] as const) {
    const chatId = path === "/chats" ? null : "chat_jane";
    const r = await run([{ taskId: 1, kind: "follow_up", chatId, reconcileSince: SINCE }], on("GET", path, answer), {
      deps: { timeoutMs: 50 },
      state: { chats: [{ id: "chat_jane", attendee_provider_id: JANE, messages: [] }] },
    });
    assert.equal(r.requests.filter((q) => q.method === "POST").length, 0, `${String(path)}: never send blind`);
    assert.equal(outcome(r, 1).outcome, "retry");
    assert.match(outcome(r, 1).error!, /^not sent: reconcile lookup: /);
  }
});

// ---------------------------------------------------------------------------------------------
// Request-level behaviour

Deno.test("linkedin-send: one account's calls never overlap; different accounts run side by side", async () => {
  const ts: T[] = Array.from({ length: 8 }, (_, i) => ({ taskId: i + 1, kind: "invite" as const, account: i % 2 ? 4 : 3, providerId: `ACoAAAProspect${i}00000000` }));
  const r = await run(ts, (req, state) => {
    if (req.path !== "/users/invite") return undefined;
    state.invitations.push({ id: `inv_${state.invitations.length}`, invited_user_id: String(req.json?.provider_id), invited_user_public_id: null, date: SINCE });
    return { status: 200, body: { object: "UserInvitationSent", invitation_id: `inv_${state.invitations.length}` }, delayMs: 15 };
  });
  assert.equal(r.json.succeeded, 8);
  assert.equal(r.maxInFlight.get("acc_3"), 1);
  assert.equal(r.maxInFlight.get("acc_4"), 1);
  assert.equal(r.maxInFlightTotal, 2, "the two accounts' calls overlap");
  assert.equal(r.json.linkedin.invitations_sent, 8);
});

Deno.test("linkedin-send: UNIPILE_* unset → release naming the setting, no call; a refused API key → release after one call", async () => {
  const unset = await run([{ taskId: 1, kind: "invite" }], undefined, { env: { UNIPILE_API_KEY: undefined } });
  assert.equal(unset.status, 500);
  assert.equal(unset.requests.length, 0);
  assert.equal(unset.json.error, "configuration_error");
  assert.equal(unset.json.message, "UNIPILE_API_KEY is not set (supabase secrets set UNIPILE_API_KEY=…)");
  const noUrl = await run([{ taskId: 1, kind: "follow_up" }], undefined, { env: { UNIPILE_BASE_URL: undefined } });
  assert.equal(noUrl.json.message, "UNIPILE_BASE_URL is not set (supabase secrets set UNIPILE_BASE_URL=…)");
  const badUrl = await run([{ taskId: 1, kind: "follow_up" }], undefined, { env: { UNIPILE_BASE_URL: "ftp://x" } });
  assert.match(badUrl.json.message, /^UNIPILE_BASE_URL must be your Unipile DSN/);

  const refused = await run([{ taskId: 1, kind: "invite" }, { taskId: 2, kind: "invite", account: 4 }, { taskId: 3, kind: "follow_up", account: 5 }], undefined, {
    env: { UNIPILE_API_KEY: "not-the-key-0000" },
  });
  assert.equal(refused.status, 500);
  assert.match(refused.json.message, /^Unipile refused the API key \(Unipile 401 missing_credentials: Unauthorized.*check the UNIPILE_API_KEY function secret/);
  // Slots of other accounts may already be at Unipile when the first refusal comes back.
  assert.ok(refused.requests.length <= 3);
  for (const id of [1, 2, 3]) assert.equal(outcome(refused, id).outcome, "release");
  assert.equal(refused.json.released, 3);
});

Deno.test("linkedin-send: a bad payload kind is a 400 with nothing touched; a context of another kind is retried", async () => {
  const store = new FakeJobStore({ tasks: [task({ taskId: 1, kind: "invite" })] });
  const unipile = fakeUnipile({ apiKey: API_KEY });
  const handler = createHandler({ env: envFrom(ENV), store: () => store, fetch: unipile.fetch, log: () => {} });
  const body = batch([{ taskId: 1, kind: "invite" }]);
  (body.tasks[0].payload as Record<string, unknown>).kind = "poke";
  const bad = await handler(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify(body) }));
  assert.equal(bad.status, 400);
  assert.equal(unipile.requests.length, 0);
  assert.equal(store.calls.length, 0);

  const mixed = new FakeJobStore({ tasks: [{ ...task({ taskId: 1, kind: "invite" }), context: contextOf({ taskId: 1, kind: "outbox" }) }] });
  const h2 = createHandler({ env: envFrom(ENV), store: () => mixed, fetch: unipile.fetch, log: () => {} });
  await h2(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify(batch([{ taskId: 1, kind: "invite" }])) }));
  assert.equal(unipile.requests.length, 0);
  assert.match((mixed.outcomeOf(1) as AnyOutcome).error!, /context kind outbox does not match the payload's invite/);
});

Deno.test("linkedin-send: slots claim the backlog; each invitation sent once", async () => {
  const first: T[] = Array.from({ length: 10 }, (_, i) => ({ taskId: i + 1, kind: "invite" as const, account: 10 + (i % 5), providerId: `ACoAAAFirst${i}0000000000` }));
  const backlog: T[] = Array.from({ length: 90 }, (_, i) => ({ taskId: 100 + i, kind: "invite" as const, account: 10 + (i % 5), providerId: `ACoAAABack${i}0000000000` }));
  const r = await run(first, undefined, { backlog });
  assert.equal(r.json.processed, 100);
  assert.equal(r.json.succeeded, 100);
  assert.equal(calls(r, "POST", "/users/invite").length, 100);
  assert.equal(new Set(r.state.invitations.map((i) => i.invited_user_id)).size, 100);
});

Deno.test("linkedin-send sameText: line endings and surrounding whitespace only", () => {
  assert.equal(sameText("a\r\nb ", "a\nb"), true);
  assert.equal(sameText("a b", "a  b"), false);
  assert.equal(sameText(null, "a"), false);
});
