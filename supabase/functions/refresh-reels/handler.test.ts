// refresh-reels handler against an in-process ReelStore and an in-process fake Graph (an
// injected fetch). No database, no network.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import { type FakeReel, FakeReelStore, type FakeReelStoreOptions } from "../_shared/testing/fake_reel_store.ts";
import { createHandler, type HandlerDeps } from "./handler.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const BASE = "http://graph.test";
const OE = (Math.floor(Date.now() / 1000) + 3 * 86_400).toString(16);

function lease(taskId: number): string {
  return `00000000-0000-4000-8000-${String(taskId).padStart(12, "0")}`;
}
function tokenOf(accountId: number): string {
  return `IGAA-secret-token-of-account-${accountId}-xyz`;
}
function reel(taskId: number, accountId: number, mediaId = `1790000000000${taskId}`): FakeReel {
  return {
    taskId,
    reelId: 500 + taskId,
    accountId,
    mediaId,
    graphVersion: "v22.0",
    accessToken: tokenOf(accountId),
    leaseToken: lease(taskId),
  };
}
function batch(reels: FakeReel[], extra: Record<string, unknown> = {}) {
  return {
    job: "instagram-reel-urls",
    batch_id: 77,
    tasks: reels.map((r) => ({
      id: r.taskId,
      lease_token: r.leaseToken,
      attempt: 1,
      payload: { reel_id: r.reelId, account_id: r.accountId, media_id: r.mediaId, graph_version: r.graphVersion },
    })),
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
  store: FakeReelStore;
  graph: Graph;
  logs: string[];
}

async function run(
  body: unknown,
  storeOpts: FakeReelStoreOptions,
  answer: (mediaId: string, token: string | null) => Answer = (id) => media(id),
  opts: { headers?: Record<string, string>; deps?: Partial<HandlerDeps>; method?: string } = {},
): Promise<Run> {
  const store = new FakeReelStore(storeOpts);
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

function assertNoTokens(r: Run) {
  const everything = [r.text, ...r.logs, ...r.store.failures.map((f) => f.failure.error),
    ...r.store.tokenInvalid.map((t) => t.error), ...r.store.deleted.map((d) => d.error),
    ...r.store.discarded.map((d) => d.reason)].join("\n");
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

Deno.test("refresh-reels: refreshes each reel with one GET and one record_reel_urls, then finishes the batch", async () => {
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
  const copyrighted = r.store.urls.find((u) => u.lease.taskId === 3)!;
  assert.equal(copyrighted.mediaUrl, null, "media_url omitted by Instagram is stored as null");
  assert.match(copyrighted.thumbnailUrl!, /oe=/);
  assert.deepEqual(r.store.finishedBatches, [77]);
  assertNoTokens(r);
});

Deno.test("refresh-reels: 100/33 marks the reel deleted and the batch goes on", async () => {
  const reels = [reel(1, 10, "17900000000002003"), reel(2, 10)];
  const r = await run(batch(reels), { reels }, (id) => id === "17900000000002003" ? graphError(100, 33) : media(id));
  assert.equal(r.store.deleted.length, 1);
  assert.equal(r.store.deleted[0].lease.taskId, 1);
  assert.match(r.store.deleted[0].error, /100\/33/);
  assert.equal(r.store.urls.length, 1);
  assert.equal(r.json.reels.deleted, 1);
  assert.equal(r.json.reels.refreshed, 1);
});

Deno.test("refresh-reels: 190 marks the account invalid once; its other reels get no Graph call", async () => {
  // Account 20's three reels in the batch, two more in the backlog; account 21 is fine.
  const reels = [reel(1, 20), reel(2, 20), reel(3, 21), reel(4, 20)];
  const backlog = [reel(5, 20), reel(6, 21)];
  const r = await run(batch(reels), { reels, backlog }, (id, token) =>
    token === tokenOf(20) ? graphError(190, 458) : media(id));
  const callsFor20 = r.graph.requests.filter((q) => q.token === tokenOf(20));
  assert.equal(callsFor20.length, 1, "exactly one call with the refused token");
  assert.equal(r.store.tokenInvalid.length, 1);
  assert.match(r.store.tokenInvalid[0].error, /190\/458/);
  assert.deepEqual(r.store.discarded.map((d) => d.lease.taskId).sort(), [2, 4]);
  assert.deepEqual(r.store.discardedOnClaim, [5], "SQL discards the backlog task of the inactive account when claimed");
  assert.deepEqual(r.store.urls.map((u) => u.lease.taskId).sort(), [3, 6]);
  assert.equal(r.json.reels.token_invalid, 1);
  assert.equal(r.json.reels.moot, 2);
  assertNoTokens(r);
});

Deno.test("refresh-reels: 401/403 without a throttle code count as a refused token", async () => {
  const reels = [reel(1, 30)];
  const r = await run(batch(reels), { reels }, () => ({ status: 403, body: { error: { message: "Forbidden", code: 10 } } }));
  assert.equal(r.store.tokenInvalid.length, 1);
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
  const byTask = new Map(r.store.failures.map((f) => [f.lease.taskId, f.failure]));
  assert.deepEqual(byTask.get(1), { ...byTask.get(1)!, retryAfterSeconds: 120, throttle: "app", permanent: false });
  assert.deepEqual(byTask.get(2), { ...byTask.get(2)!, retryAfterSeconds: 420, throttle: "account", permanent: false });
  assert.equal(byTask.get(3)!.throttle, null);
  assert.equal(byTask.get(3)!.retryAfterSeconds, null);
  assert.equal(byTask.get(4)!.permanent, false, "other 4xx back off and end dead after max attempts");
  assert.equal(r.status, 207);
  assert.equal(r.json.retried, 4);
});

Deno.test("refresh-reels: a network failure is retried and its error carries no token", async () => {
  const reels = [reel(1, 50)];
  const store = new FakeReelStore({ reels });
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
  assert.equal(store.failures.length, 1);
  assert.match(store.failures[0].failure.error, /network error/);
  assert.doesNotMatch(store.failures[0].failure.error + (await res.text()), /IGAA-secret-token/);
});

Deno.test("refresh-reels: moot tasks found by SQL are reported, lease-lost ones skipped, and nothing is called for them", async () => {
  const reels = [reel(1, 60)];
  const body = batch([reel(1, 60), reel(2, 60), reel(3, 61)]);
  const r = await run(body, { reels, moot: [{ taskId: 2, reason: "account is inactive; its reel URLs are not refreshed", leaseToken: lease(2) }] });
  assert.equal(r.graph.requests.length, 1);
  const byId = new Map(r.json.errors.map((e: { task_id: number; error: string }) => [e.task_id, e.error]));
  assert.match(String(byId.get(2)), /^moot: account is inactive/);
  assert.match(String(byId.get(3)), /lease lost/);
  assert.equal(r.json.reels.moot, 1);
});

Deno.test("refresh-reels: a lease lost at record time changes nothing and is skipped", async () => {
  const reels = [reel(1, 70), reel(2, 70)];
  const r = await run(batch(reels), { reels, leaseLost: { recordUrls: [1] } });
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
  const r = await run(batch(reels), { reels, dbError: { recordUrls: "all" } });
  assert.equal(r.json.retried, 1);
  assert.match(r.json.errors[0].error, /could not record the outcome/);
  assertNoTokens(r);
});

Deno.test("refresh-reels: after an account throttle, its other tasks in the request go back without a call", async () => {
  const reels = [reel(1, 95), reel(2, 95), reel(3, 96)];
  const r = await run(batch(reels), { reels }, (id, token) =>
    token === tokenOf(95) ? { ...graphError(80002), headers: { "retry-after": "300" } } : media(id));
  assert.equal(r.graph.requests.filter((q) => q.token === tokenOf(95)).length, 1);
  assert.equal(r.store.failures.length, 2);
  const second = r.store.failures.find((f) => f.lease.taskId === 2)!.failure;
  assert.equal(second.retryAfterSeconds, 300);
  assert.match(second.error, /^not called: throttled earlier/);
  assert.equal(r.store.urls.length, 1);
});
