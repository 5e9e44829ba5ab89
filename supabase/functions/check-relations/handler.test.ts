// check-relations handler against the in-process FakeJobStore and the in-process fake Unipile.
// No database, no network: which relations pages are read, what is matched, and which outcome,
// with which data, is recorded.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import type { Outcome } from "../_shared/outcome.ts";
import { FakeBatchLeases } from "../_shared/testing/fake_batch_leases.ts";
import { FakeJobStore, type FakeTask } from "../_shared/testing/fake_job_store.ts";
import { type FakeUnipileAnswer, type FakeUnipileRequest, type FakeUnipileState, fakeUnipile, unipileError } from "../_shared/testing/fake_unipile.ts";
import { createHandler, type HandlerDeps, MAX_PAGES } from "./handler.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const API_KEY = "unipile-relations-test-key-0123456789";
const HOST = "api9.unipile.test:13111";
const ENV = {
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }),
  UNIPILE_BASE_URL: `https://${HOST}`,
  UNIPILE_API_KEY: API_KEY,
};

interface Pending {
  prospect_id: number;
  provider_id?: string | null;
  public_identifier?: string | null;
}
interface Acct {
  taskId: number;
  account?: number;
  pending: Pending[];
}

const lease = (taskId: number) => `00000000-0000-4000-8000-${String(taskId).padStart(12, "0")}`;
const accountOf = (a: Acct) => a.account ?? 3;
const contextOf = (a: Acct) => ({
  account: { id: accountOf(a), unipile_account_id: `acc_${accountOf(a)}` },
  pending: a.pending.map((p) => ({ provider_id: null, public_identifier: null, ...p })),
  pause_keys: { account: `unipile:${accountOf(a)}` },
});
const task = (a: Acct): FakeTask => ({ taskId: a.taskId, leaseToken: lease(a.taskId), payload: { account_id: accountOf(a) }, context: contextOf(a) });
const batch = (as: Acct[]) => ({
  job: "outreach-relations",
  batch_id: 9,
  tasks: as.map((a) => ({ id: a.taskId, lease_token: lease(a.taskId), attempt: 1, payload: { account_id: accountOf(a) } })),
});

/** n relations nobody is waiting for. */
const strangers = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ object: "UserRelation", public_identifier: `stranger-${from + i}`, member_id: `${900000 + from + i}`, created_at: 1_712_160_000 }));

interface Run {
  status: number;
  // deno-lint-ignore no-explicit-any
  json: any;
  text: string;
  store: FakeJobStore;
  requests: FakeUnipileRequest[];
  logs: string[];
}
type Respond = (req: FakeUnipileRequest, state: FakeUnipileState) => FakeUnipileAnswer | undefined;

async function run(
  accounts: Acct[],
  relations: Record<string, unknown>[],
  respond?: Respond,
  opts: { env?: Record<string, string | undefined>; deps?: Partial<HandlerDeps>; headers?: Record<string, string> } = {},
): Promise<Run> {
  const store = new FakeJobStore({ tasks: accounts.map(task) });
  const unipile = fakeUnipile({ apiKey: API_KEY, host: HOST, respond, state: { relations } });
  const logs: string[] = [];
  const handler = createHandler({ env: envFrom({ ...ENV, ...opts.env }), store: () => store, fetch: unipile.fetch, log: (l) => logs.push(l), ...opts.deps });
  const res = await handler(new Request("http://fn.test/check-relations", {
    method: "POST",
    headers: { "content-type": "application/json", ...(opts.headers ?? { apikey: SECRET_KEY }) },
    body: JSON.stringify(batch(accounts)),
  }));
  const text = await res.text();
  const r = { status: res.status, json: text ? JSON.parse(text) : null, text, store, requests: unipile.requests, logs };
  const everything = [r.text, ...r.logs, JSON.stringify(store.recorded.map((x) => x.outcome))].join("\n");
  assert.equal(everything.includes(API_KEY), false, "the Unipile API key leaked");
  return r;
}

type AnyOutcome = Outcome & { data?: Record<string, unknown>; after?: number | null; pause?: string | null; error?: string };
const outcome = (r: Run, taskId: number) => r.store.outcomeOf(taskId) as AnyOutcome;

const JANE = "ACoAAAJane0000000000000000";

Deno.test("check-relations: one page; matched on provider id (member_id), public identifier (any case) or profile URL → ok {accepted, checked, pages}", async () => {
  const relations = [
    ...strangers(3),
    { object: "UserRelation", public_identifier: "someone-else", member_id: JANE, created_at: 1_712_160_000 },
    { object: "UserRelation", public_identifier: "Bo-Smith", member_id: 123456789 },
    { object: "UserRelation", public_profile_url: "https://www.linkedin.com/in/j%C3%BCrgen-m/", member_id: "55" },
    { object: "UserRelation", public_identifier: "ana", member_id: "ACoAAAAna00000000000000", provider_id: "ACoAAAAna00000000000000" },
  ];
  const r = await run([{
    taskId: 1,
    pending: [
      { prospect_id: 11, provider_id: JANE, public_identifier: "jane-doe" },
      { prospect_id: 12, public_identifier: "bo-smith" },
      { prospect_id: 13, public_identifier: "jürgen-m" },
      { prospect_id: 14, provider_id: "ACoAAAAna00000000000000" },
      { prospect_id: 15, provider_id: "ACoAAANotYet00000000000", public_identifier: "not-yet" },
    ],
  }], relations);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.requests.length, 1);
  const [req] = r.requests;
  assert.equal(req.method, "GET");
  assert.equal(req.path, "/users/relations");
  assert.deepEqual(Object.fromEntries(req.query), { account_id: "acc_3", limit: "1000" });
  assert.equal(req.headers.get("x-api-key"), API_KEY);
  assert.equal(req.headers.get("accept"), "application/json");
  assert.deepEqual(outcome(r, 1), { outcome: "ok", data: { accepted: [11, 12, 13, 14], checked: 7, pages: 1, complete: true }, tag: "checked" });
  assert.deepEqual(r.json.relations, { checked: 1, unipile_calls: 1, relations_read: 7, accepted: 4 });
});

Deno.test("check-relations: pages with the cursor until the last pending prospect is found, then stops", async () => {
  const relations = [...strangers(1000), ...strangers(1000, 1000), { object: "UserRelation", public_identifier: "late-one", member_id: "1" }, ...strangers(1500, 2000)];
  const r = await run([{ taskId: 1, pending: [{ prospect_id: 21, public_identifier: "late-one" }] }], relations);
  assert.deepEqual(r.requests.map((q) => q.query.get("cursor")), [null, "o1000", "o2000"]);
  for (const q of r.requests) assert.equal(q.query.get("limit"), "1000");
  assert.deepEqual(outcome(r, 1).data, { accepted: [21], checked: 3000, pages: 3, complete: true });

  // Nobody found: every page to the end (cursor null).
  const all = await run([{ taskId: 1, pending: [{ prospect_id: 21, public_identifier: "never" }] }], strangers(2500));
  assert.equal(all.requests.length, 3);
  assert.deepEqual(outcome(all, 1).data, { accepted: [], checked: 2500, pages: 3, complete: true });
});

Deno.test("check-relations: at most 50 pages; a cursor that does not move stops the paging", async () => {
  let n = 0;
  const endless: Respond = (req) =>
    req.path === "/users/relations" ? { status: 200, body: { object: "UserRelationsList", items: strangers(2, n += 2), cursor: `c${n}` } } : undefined;
  const r = await run([{ taskId: 1, pending: [{ prospect_id: 31, public_identifier: "never" }] }], [], endless);
  assert.equal(r.requests.length, MAX_PAGES);
  assert.equal(MAX_PAGES, 50);
  assert.deepEqual(outcome(r, 1).data, { accepted: [], checked: 100, pages: 50, complete: false });

  const stuck: Respond = () => ({ status: 200, body: { object: "UserRelationsList", items: strangers(1), cursor: "same" } });
  const s = await run([{ taskId: 1, pending: [{ prospect_id: 31, public_identifier: "never" }] }], [], stuck);
  assert.equal(s.requests.length, 2);
  assert.equal(outcome(s, 1).data!.complete, false);
});

Deno.test("check-relations: the paging budget stops a slow account and reports what was found", async () => {
  let n = 0;
  const slow: Respond = () => ({
    status: 200,
    body: { object: "UserRelationsList", items: n++ === 0 ? [{ public_identifier: "early" }] : strangers(1, n), cursor: `c${n}` },
    delayMs: 20,
  });
  const r = await run([{ taskId: 1, pending: [{ prospect_id: 41, public_identifier: "early" }, { prospect_id: 42, public_identifier: "never" }] }], [], slow, {
    deps: { pagingBudgetMs: 50 },
  });
  assert.ok(r.requests.length >= 2 && r.requests.length <= 4, `${r.requests.length} pages`);
  assert.deepEqual(outcome(r, 1).data, { accepted: [41], checked: r.requests.length, pages: r.requests.length, complete: false });
});

Deno.test("check-relations: nothing pending (or nothing identifiable) → ok without a call", async () => {
  const r = await run([{ taskId: 1, pending: [] }, { taskId: 2, account: 4, pending: [{ prospect_id: 5 }] }], strangers(5));
  assert.equal(r.requests.length, 0);
  for (const id of [1, 2]) assert.deepEqual(outcome(r, id).data, { accepted: [], checked: 0, pages: 0, complete: true });
});

Deno.test("check-relations: 401 → discard {account_error}; 429 / 5xx → retry with pause; timeout → retry; 404 → dead; the other account still checked", async () => {
  const failing = (answer: FakeUnipileAnswer): Respond => (req) => req.query.get("account_id") === "acc_3" ? answer : undefined;
  const accounts: Acct[] = [{ taskId: 1, pending: [{ prospect_id: 1, public_identifier: "x" }] }, { taskId: 2, account: 4, pending: [{ prospect_id: 2, public_identifier: "stranger-1" }] }];

  const off = await run(accounts, strangers(3), failing(unipileError(401, "disconnected_account", "Disconnected")));
  assert.deepEqual(outcome(off, 1), {
    outcome: "discard",
    error: "LinkedIn account 3 (acc_3) needs reconnection: Unipile 401 disconnected_account: Disconnected - Disconnected.",
    data: { account_error: "disconnected_account" },
    tag: "needs_reconnect",
  });
  assert.deepEqual(outcome(off, 2).data, { accepted: [2], checked: 3, pages: 1, complete: true });

  const limited = await run(accounts, [], failing(unipileError(429, "too_many_requests", "Slow down", { "retry-after": "120" })));
  assert.deepEqual(outcome(limited, 1), { outcome: "retry", error: "Unipile 429 too_many_requests: Slow down - Slow down.", after: 120, pause: "unipile:3" });
  const bare = await run(accounts, [], failing({ status: 429, body: "" }));
  assert.equal(outcome(bare, 1).after, 60);

  const down = await run(accounts, [], failing(unipileError(502, "bad_gateway")));
  assert.deepEqual([outcome(down, 1).outcome, outcome(down, 1).after, outcome(down, 1).pause], ["retry", 60, "unipile:3"]);

  const timeout = await run(accounts, [], failing("hang"), { deps: { timeoutMs: 50 } });
  assert.deepEqual(outcome(timeout, 1), { outcome: "retry", error: "timeout: Unipile did not answer within 50 ms", after: null });

  const gone = await run(accounts, [], failing(unipileError(404, "resource_not_found", "Account not found")));
  assert.deepEqual([outcome(gone, 1).outcome, outcome(gone, 1).data], ["dead", { error_type: "resource_not_found" }]);

  // A failure on a later page names it.
  let page = 0;
  const second: Respond = () => (page++ === 0 ? { status: 200, body: { items: strangers(1000), cursor: "o1000" } } : unipileError(503, "unavailable"));
  const late = await run([accounts[0]], [], second);
  assert.match(outcome(late, 1).error!, /^Unipile 503 unavailable: .* \(relations page 2\)$/);
});

Deno.test("check-relations: UNIPILE_* unset → release without a call; a refused key → release", async () => {
  const unset = await run([{ taskId: 1, pending: [{ prospect_id: 1, public_identifier: "x" }] }], [], undefined, { env: { UNIPILE_BASE_URL: undefined } });
  assert.equal(unset.status, 500);
  assert.equal(unset.requests.length, 0);
  assert.equal(unset.json.message, "UNIPILE_BASE_URL is not set (supabase secrets set UNIPILE_BASE_URL=…)");
  const refused = await run([{ taskId: 1, pending: [{ prospect_id: 1, public_identifier: "x" }] }], [], undefined, { env: { UNIPILE_API_KEY: "wrong-key-0000" } });
  assert.equal(refused.status, 500);
  assert.equal(outcome(refused, 1).outcome, "release");
  assert.match(refused.json.message, /check the UNIPILE_API_KEY function secret/);
});

Deno.test("check-relations: the runner keeps the batch's leases alive while the pages are read", async () => {
  const token = `dwb_9_${"c".repeat(64)}`;
  const leases = new FakeBatchLeases().add(9, { token, running: 1 });
  let n = 0;
  const slow: Respond = () => ({ status: 200, body: { items: strangers(1, n), cursor: ++n < 6 ? `c${n}` : null }, delayMs: 10 });
  const r = await run([{ taskId: 1, pending: [{ prospect_id: 1, public_identifier: "never" }] }], [], slow, {
    deps: { leases: () => leases, heartbeatMs: 5 },
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(outcome(r, 1).data!.pages, 6);
  assert.ok(leases.calls.filter((c) => c.op === "keepAlive").length >= 3, `keepAlive calls: ${JSON.stringify(leases.calls)}`);
});

Deno.test("check-relations: a bad payload is a 400; a context for another account is retried without a call", async () => {
  const store = new FakeJobStore({ tasks: [{ ...task({ taskId: 1, pending: [] }), context: contextOf({ taskId: 1, account: 8, pending: [{ prospect_id: 1, public_identifier: "x" }] }) }] });
  const unipile = fakeUnipile({ apiKey: API_KEY });
  const handler = createHandler({ env: envFrom(ENV), store: () => store, fetch: unipile.fetch, log: () => {} });
  const bad = await handler(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify({ ...batch([]), tasks: [{ id: 1, lease_token: lease(1), attempt: 1, payload: { account_id: "3" } }] }) }));
  assert.equal(bad.status, 400);
  await handler(new Request("http://fn.test/", { method: "POST", headers: { apikey: SECRET_KEY }, body: JSON.stringify(batch([{ taskId: 1, pending: [] }])) }));
  assert.equal(unipile.requests.length, 0);
  assert.match((store.outcomeOf(1) as AnyOutcome).error!, /context account 8 does not match the payload's 3/);
});
