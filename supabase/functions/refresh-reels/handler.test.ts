// refresh-reels handler against the in-process FakeJobStore and an in-process fake Graph (an
// injected fetch). No database, no network. What SQL does with each outcome (instagram.reel_context
// and the job's apply function) is tested in pgTAP; here: which outcome, with which data.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import type { Outcome } from "../_shared/outcome.ts";
import { defaultState, FakeJobStore, type FakeJobStoreOptions, type FakeTask } from "../_shared/testing/fake_job_store.ts";
import { APP_RATE_KEY, createHandler, type HandlerDeps } from "./handler.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const BASE = "http://graph.test";
const OE = (Math.floor(Date.now() / 1000) + 3 * 86_400).toString(16);

interface Reel {
  taskId: number;
  reelId: number;
  accountId: number;
  mediaId: string;
  graphVersion: string;
}

function lease(taskId: number): string {
  return `00000000-0000-4000-8000-${String(taskId).padStart(12, "0")}`;
}
function tokenOf(accountId: number): string {
  return `IGAA-secret-token-of-account-${accountId}-xyz`;
}
function reel(taskId: number, accountId: number, mediaId = `1790000000000${taskId}`): Reel {
  return { taskId, reelId: 500 + taskId, accountId, mediaId, graphVersion: "v22.0" };
}
function payloadOf(r: Reel) {
  return { reel_id: r.reelId, account_id: r.accountId, media_id: r.mediaId, graph_version: r.graphVersion };
}
/** The task as the engine knows it: its lease, and the context instagram.reel_context returns. */
function task(r: Reel): FakeTask {
  return {
    taskId: r.taskId,
    leaseToken: lease(r.taskId),
    payload: payloadOf(r),
    context: { ...payloadOf(r), access_token: tokenOf(r.accountId) },
  };
}
function batch(reels: Reel[], extra: Record<string, unknown> = {}) {
  return {
    job: "instagram-reel-urls",
    batch_id: 77,
    tasks: reels.map((r) => ({ id: r.taskId, lease_token: lease(r.taskId), attempt: 1, payload: payloadOf(r) })),
    ...extra,
  };
}

type Answer = { status: number; body: unknown; headers?: Record<string, string> };
const graphError = (code: number, subcode?: number, status = 400): Answer => ({
  status,
  body: { error: { message: `Graph error ${code}`, type: "OAuthException", code, error_subcode: subcode, fbtrace_id: "x" } },
});
const media = (id: string, copyrighted = false): Answer => ({
  status: 200,
  body: {
    ...(copyrighted ? {} : { media_url: `https://cdn.test/v/${id}.mp4?oh=abc&oe=${OE}` }),
    thumbnail_url: `https://cdn.test/t/${id}.jpg?oh=def&oe=${OE}`,
    media_type: "VIDEO",
    id,
  },
});

interface Graph {
  requests: { path: string; token: string | null; fields: string | null }[];
  fetch: typeof fetch;
}

function fakeGraph(answer: (mediaId: string, token: string | null) => Answer): Graph {
  const requests: Graph["requests"] = [];
  const f = (input: string | URL | Request, _init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const token = url.searchParams.get("access_token");
    requests.push({ path: url.pathname, token, fields: url.searchParams.get("fields") });
    const mediaId = url.pathname.split("/").pop()!;
    const a = answer(mediaId, token);
    return Promise.resolve(Response.json(a.body, { status: a.status, headers: a.headers }));
  };
  return { requests, fetch: f as typeof fetch };
}

interface Run {
  status: number;
  // deno-lint-ignore no-explicit-any
  json: any;
  text: string;
  store: FakeJobStore;
  graph: Graph;
  logs: string[];
}

type StoreOpts = Omit<FakeJobStoreOptions, "tasks" | "backlog"> & { reels?: Reel[]; backlog?: Reel[]; tasks?: FakeTask[] };

function fakeStore({ reels = [], backlog = [], tasks = [], ...opts }: StoreOpts): FakeJobStore {
  return new FakeJobStore({ ...opts, tasks: [...reels.map(task), ...tasks], backlog: backlog.map(task) });
}

async function run(
  body: unknown,
  storeOpts: StoreOpts,
  answer: (mediaId: string, token: string | null) => Answer = (id) => media(id),
  opts: { headers?: Record<string, string>; deps?: Partial<HandlerDeps>; method?: string } = {},
): Promise<Run> {
  const store = fakeStore(storeOpts);
  const graph = fakeGraph(answer);
  const logs: string[] = [];
  const handler = createHandler({
    env: envFrom({ SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }), INSTAGRAM_GRAPH_BASE_URL: BASE }),
    store: () => store,
    fetch: graph.fetch,
    log: (l) => logs.push(l),
    ...opts.deps,
  });
  const res = await handler(new Request("http://fn.test/refresh-reels", {
    method: opts.method ?? "POST",
    headers: { "content-type": "application/json", apikey: SECRET_KEY, ...opts.headers },
    body: opts.method === "GET" ? undefined : JSON.stringify(body),
  }));
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, text, store, graph, logs };
}

// What the old ReelStore calls were, read off the recorded outcomes.
type Recorded = { taskId: number; outcome: Outcome };
function recorded(store: FakeJobStore, match: (o: Outcome) => boolean): Recorded[] {
  return store.recorded.filter((r) => match(r.outcome)).map((r) => ({ taskId: r.lease.taskId, outcome: r.outcome }));
}
const dataOf = (o: Outcome): Record<string, unknown> => ("data" in o ? o.data ?? {} : {});
/** ok {media_url, thumbnail_url} (was record_reel_urls). */
const urls = (s: FakeJobStore) =>
  recorded(s, (o) => o.outcome === "ok" && o.tag === "refreshed").map((r) => {
    const d = dataOf(r.outcome);
    return { taskId: r.taskId, media_url: d.media_url, thumbnail_url: d.thumbnail_url };
  });
/** ok {deleted, error} (was record_reel_deleted). */
const deleted = (s: FakeJobStore) =>
  recorded(s, (o) => o.outcome === "ok" && dataOf(o).deleted === true).map((r) => ({ taskId: r.taskId, error: String(dataOf(r.outcome).error) }));
/** dead {token_invalid} (was record_token_invalid). */
const tokenInvalid = (s: FakeJobStore) =>
  recorded(s, (o) => o.outcome === "dead" && dataOf(o).token_invalid === true).map((r) => ({ taskId: r.taskId, error: errorOf(r.outcome) }));
/** retry (was record_reel_failure). */
const failures = (s: FakeJobStore) =>
  recorded(s, (o) => o.outcome === "retry") as { taskId: number; outcome: Extract<Outcome, { outcome: "retry" }> }[];
/** discard by the handler (was jobs.discard). */
const discarded = (s: FakeJobStore) => recorded(s, (o) => o.outcome === "discard").map((r) => ({ taskId: r.taskId, reason: errorOf(r.outcome) }));
const errorOf = (o: Outcome) => ("error" in o ? o.error : "");

function assertNoTokens(r: Run) {
  // Every error text and every piece of outcome data (which goes to SQL) included.
  const everything = [r.text, ...r.logs, JSON.stringify(r.store.recorded.map((x) => x.outcome))].join("\n");
  assert.doesNotMatch(everything, /IGAA-secret-token/);
}

Deno.test("refresh-reels: 401 without the secret key, 405 for GET, 400 for a bad body; no store, no Graph", async () => {
  const r1 = await run(batch([reel(1, 10)]), { reels: [reel(1, 10)] }, undefined, { headers: { apikey: "wrong" } });
  assert.equal(r1.status, 401);
  assert.equal(r1.store.calls.length, 0);
  assert.equal(r1.graph.requests.length, 0);
  const r2 = await run(null, {}, undefined, { method: "GET" });
  assert.equal(r2.status, 405);
  const bad = batch([reel(1, 10)]);
  (bad.tasks[0].payload as Record<string, unknown>).media_id = "../me";
  const r3 = await run(bad, { reels: [reel(1, 10)] });
  assert.equal(r3.status, 400);
  assert.equal(r3.json.field, "tasks.0.payload.media_id");
  assert.equal(r3.store.calls.length, 0);
});

Deno.test("refresh-reels: refreshes each reel with one GET and one ok outcome carrying the URLs, then finishes the batch", async () => {
  const reels = [reel(1, 10), reel(2, 10), reel(3, 11, "17900000000003008")];
  const r = await run(batch(reels), { reels }, (id) => media(id, id === "17900000000003008"));
  assert.equal(r.status, 200);
  assert.equal(r.json.succeeded, 3);
  assert.deepEqual(r.json.reels, { refreshed: 3, deleted: 0, token_invalid: 0, moot: 0, graph_calls: 3 });
  assert.equal(r.graph.requests.length, 3);
  for (const q of r.graph.requests) {
    assert.match(q.path, /^\/v22\.0\/\d+$/);
    assert.match(q.fields!, /media_url/);
    assert.match(q.fields!, /thumbnail_url/);
  }
  assert.equal(r.graph.requests[0].token, tokenOf(10));
  assert.equal(r.store.recorded.length, 3, "one outcome per task");
  const copyrighted = urls(r.store).find((u) => u.taskId === 3)!;
  assert.equal(copyrighted.media_url, null, "media_url omitted by Instagram is passed on as null");
  assert.match(String(copyrighted.thumbnail_url), /oe=/);
  assert.deepEqual(r.store.finishedBatches, [77]);
  assertNoTokens(r);
});

Deno.test("refresh-reels: 100/33 marks the reel deleted and the batch goes on", async () => {
  const reels = [reel(1, 10, "17900000000002003"), reel(2, 10)];
  const r = await run(batch(reels), { reels }, (id) => id === "17900000000002003" ? graphError(100, 33) : media(id));
  assert.equal(deleted(r.store).length, 1);
  assert.equal(deleted(r.store)[0].taskId, 1);
  assert.match(deleted(r.store)[0].error, /100\/33/);
  assert.equal(urls(r.store).length, 1);
  assert.equal(r.json.reels.deleted, 1);
  assert.equal(r.json.reels.refreshed, 1);
  assertNoTokens(r);
});

// Account 20's three reels in the batch, two more tasks in the backlog; account 21 is fine. The
// engine's context function finds a task moot once the 190 is recorded (the account inactive).
function refusalScenario() {
  const reels = [reel(1, 20), reel(2, 20), reel(3, 21), reel(4, 20)];
  const backlog = [reel(5, 20), reel(6, 21)];
  const accountOf = new Map([...reels, ...backlog].map((x) => [x.taskId, x.accountId]));
  const mootOnClaim: FakeJobStoreOptions["mootOnClaim"] = (t, done) =>
    done.some((d) => d.outcome.outcome === "dead" && accountOf.get(d.lease.taskId) === accountOf.get(t.taskId))
      ? "account is inactive; its reel URLs are not refreshed"
      : undefined;
  const answer = (id: string, token: string | null) => token === tokenOf(20) ? graphError(190, 458) : media(id);
  return { reels, backlog, mootOnClaim, answer };
}

Deno.test("refresh-reels: 190 marks the account invalid once; its other reels get no Graph call", async () => {
  // The slots' claims reach SQL after the 190 is recorded (as when they travel in the group that
  // carries it): the backlog task of the now inactive account is discarded by the claim.
  const { reels, backlog, mootOnClaim, answer } = refusalScenario();
  let refusalRecorded!: () => void;
  const holdClaims = new Promise<void>((resolve) => (refusalRecorded = resolve));
  const state: FakeJobStoreOptions["state"] = (_lease, o) => {
    if (o.outcome === "dead") refusalRecorded();
    return defaultState(o);
  };
  const r = await run(batch(reels), { reels, backlog, mootOnClaim, holdClaims, state }, answer);
  const callsFor20 = r.graph.requests.filter((q) => q.token === tokenOf(20));
  assert.equal(callsFor20.length, 1, "exactly one call with the refused token");
  assert.equal(tokenInvalid(r.store).length, 1);
  assert.match(tokenInvalid(r.store)[0].error, /190\/458/);
  assert.deepEqual(discarded(r.store).map((d) => d.taskId).sort(), [2, 4]);
  for (const d of discarded(r.store)) assert.match(d.reason, /^moot: the account's token was refused earlier in this run \(.*190\/458/);
  assert.deepEqual(r.store.discardedOnClaim.map((d) => d.taskId), [5], "SQL discards the backlog task of the inactive account when claimed");
  assert.deepEqual(urls(r.store).map((u) => u.taskId).sort(), [3, 6]);
  assert.equal(r.json.reels.token_invalid, 1);
  assert.equal(r.json.reels.moot, 2);
  assert.equal(r.json.dead, 1);
  assert.equal(r.json.discarded, 2);
  assertNoTokens(r);
});

Deno.test("refresh-reels: 190: a task of the account claimed ahead, before the refusal was recorded, is discarded without a call", async () => {
  // Claims answered at once (claim-ahead: a slot claims its next task while its first is at
  // Graph), so task 5 is handed out with account 20's token before the 190 comes back.
  const { reels, backlog, mootOnClaim, answer } = refusalScenario();
  const r = await run(batch(reels), { reels, backlog, mootOnClaim }, answer);
  assert.equal(r.graph.requests.filter((q) => q.token === tokenOf(20)).length, 1, "exactly one call with the refused token");
  assert.equal(tokenInvalid(r.store).length, 1);
  assert.deepEqual(discarded(r.store).map((d) => d.taskId).sort(), [2, 4, 5]);
  assert.deepEqual(r.store.discardedOnClaim, []);
  assert.deepEqual(urls(r.store).map((u) => u.taskId).sort(), [3, 6]);
  assert.equal(r.json.reels.token_invalid, 1);
  assert.equal(r.json.reels.moot, 3);
  assertNoTokens(r);
});

Deno.test("refresh-reels: 401/403 without a throttle code count as a refused token", async () => {
  const reels = [reel(1, 30)];
  const r = await run(batch(reels), { reels }, () => ({ status: 403, body: { error: { message: "Forbidden", code: 10 } } }));
  assert.equal(tokenInvalid(r.store).length, 1);
});

Deno.test("refresh-reels: throttles are retried with the provider's wait and pause the right bucket", async () => {
  const reels = [reel(1, 40), reel(2, 41), reel(3, 42), reel(4, 43)];
  const r = await run(batch(reels), { reels }, (id) => {
    if (id.endsWith("1")) return { ...graphError(4), headers: { "retry-after": "120" } };
    if (id.endsWith("2")) {
      return {
        ...graphError(80002),
        headers: { "x-business-use-case-usage": JSON.stringify({ "1784": [{ type: "instagram", call_count: 100, estimated_time_to_regain_access: 7 }] }) },
      };
    }
    if (id.endsWith("3")) return { status: 503, body: { error: { message: "down", code: 2, is_transient: true } } };
    return graphError(100, 2500); // rejected: a bad parameter
  });
  const byTask = new Map(failures(r.store).map((f) => [f.taskId, f.outcome]));
  assert.equal(byTask.size, 4, "every task retried (none dead)");
  assert.deepEqual(byTask.get(1), { ...byTask.get(1)!, outcome: "retry", after: 120, pause: APP_RATE_KEY });
  assert.equal(APP_RATE_KEY, "instagram-graph", "the job's rate_limit_key");
  assert.deepEqual(byTask.get(2), { ...byTask.get(2)!, outcome: "retry", after: 420, pause: "ig-hourly:41" });
  assert.equal(byTask.get(3)!.pause ?? null, null);
  assert.equal(byTask.get(3)!.after ?? null, null);
  assert.equal(byTask.get(4)!.outcome, "retry", "other 4xx back off and end dead after max attempts");
  assert.equal(byTask.get(4)!.after ?? null, null, "other 4xx: the job's backoff");
  assert.equal(byTask.get(4)!.pause ?? null, null);
  assert.equal(r.status, 207);
  assert.equal(r.json.retried, 4);
});

Deno.test("refresh-reels: a network failure is retried and its error carries no token", async () => {
  const reels = [reel(1, 50)];
  const store = fakeStore({ reels });
  const handler = createHandler({
    env: envFrom({ SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }), INSTAGRAM_GRAPH_BASE_URL: BASE }),
    store: () => store,
    fetch: ((input: string) => Promise.reject(new TypeError(`error sending request for url (${input})`))) as unknown as typeof fetch,
    log: () => {},
  });
  const res = await handler(new Request("http://fn.test/", {
    method: "POST",
    headers: { apikey: SECRET_KEY },
    body: JSON.stringify(batch(reels)),
  }));
  assert.equal(res.status, 207);
  assert.equal(failures(store).length, 1);
  assert.match(failures(store)[0].outcome.error, /network error/);
  assert.doesNotMatch(failures(store)[0].outcome.error + (await res.text()), /IGAA-secret-token/);
});

Deno.test("refresh-reels: moot tasks found by SQL are reported, lease-lost ones skipped, and nothing is called for them", async () => {
  const reels = [reel(1, 60)];
  const body = batch([reel(1, 60), reel(2, 60), reel(3, 61)]);
  const mootTask: FakeTask = { ...task(reel(2, 60)), moot: "account is inactive; its reel URLs are not refreshed" };
  const r = await run(body, { reels, tasks: [mootTask] });
  assert.equal(r.graph.requests.length, 1);
  const byId = new Map(r.json.errors.map((e: { task_id: number; error: string }) => [e.task_id, e.error]));
  assert.match(String(byId.get(2)), /^moot: account is inactive/);
  assert.match(String(byId.get(3)), /lease lost/);
  assert.equal(r.json.reels.moot, 1);
  assert.equal(r.json.discarded, 1);
  assert.equal(r.json.skipped, 1);
});

Deno.test("refresh-reels: a lease lost at record time changes nothing and is skipped", async () => {
  const reels = [reel(1, 70), reel(2, 70)];
  const r = await run(batch(reels), { reels, leaseLost: { record: [1] } });
  assert.equal(r.json.skipped, 1);
  assert.equal(r.json.succeeded, 1);
});

Deno.test("refresh-reels: slots claim the backlog until MAX_TASKS_PER_REQUEST", async () => {
  const reels = [reel(1, 80)];
  const backlog = Array.from({ length: 10 }, (_, i) => reel(100 + i, 81 + i));
  const r = await run(batch(reels), { reels, backlog }, undefined, { deps: { maxTasksPerRequest: 4 } });
  assert.equal(r.graph.requests.length, 4);
  assert.equal(r.json.processed, 4);
});

Deno.test("refresh-reels: a database error while recording is reported as retried, without the token", async () => {
  const reels = [reel(1, 90)];
  const r = await run(batch(reels), { reels, dbError: { record: "all" } });
  assert.equal(r.json.retried, 1);
  assert.match(r.json.errors[0].error, /could not record the outcome/);
  assertNoTokens(r);
});

Deno.test("refresh-reels: after an account throttle, its other tasks in the request go back without a call", async () => {
  const reels = [reel(1, 95), reel(2, 95), reel(3, 96)];
  const r = await run(batch(reels), { reels }, (id, token) =>
    token === tokenOf(95) ? { ...graphError(80002), headers: { "retry-after": "300" } } : media(id));
  assert.equal(r.graph.requests.filter((q) => q.token === tokenOf(95)).length, 1);
  assert.equal(failures(r.store).length, 2);
  const second = failures(r.store).find((f) => f.taskId === 2)!.outcome;
  assert.equal(second.after, 300);
  assert.match(second.error, /^not called: throttled earlier/);
  assert.equal(second.notAttempted, true, "a task never sent gives its attempt back");
  assert.equal(second.pause ?? null, null, "the bucket was paused by the first");
  assert.equal(urls(r.store).length, 1);
});

Deno.test("refresh-reels: after an app throttle (#4), every later task in the request goes back without a call", async () => {
  // Task 2 (another account) is claimed ahead by the same slot and performed after task 1's answer.
  const r = await run(batch([reel(1, 97)]), { reels: [reel(1, 97)], backlog: [reel(2, 98)] }, () => ({
    ...graphError(4),
    headers: { "retry-after": "90" },
  }));
  assert.equal(r.graph.requests.length, 1);
  const second = failures(r.store).find((f) => f.taskId === 2)!.outcome;
  assert.equal(second.after, 90);
  assert.match(second.error, /^not called: throttled earlier in this run \(.*Graph error 4/);
  assert.equal(second.pause ?? null, null);
  assert.deepEqual(r.json.reels, { refreshed: 0, deleted: 0, token_invalid: 0, moot: 0, graph_calls: 1 });
  assertNoTokens(r);
});
