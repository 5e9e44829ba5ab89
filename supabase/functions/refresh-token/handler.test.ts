// refresh-token over the job runner, against the in-process FakeJobStore and a fake Google token
// endpoint on a local port. No database, no network beyond 127.0.0.1. What the runner does for
// any job (refill, claim-ahead, limits, finishing the batch) is tested in
// _shared/job_runner.test.ts; here: the front door as this function sees it, and how each
// provider answer becomes an outcome.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import type { Outcome } from "../_shared/outcome.ts";
import {
  type FakeAnswer,
  type FakeGoogle,
  googleError,
  googleToken,
  startFakeGoogle,
} from "../_shared/testing/fake_google.ts";
import {
  defaultState,
  FakeJobStore,
  type FakeJobStoreOptions,
  type FakeTask,
} from "../_shared/testing/fake_job_store.ts";
import { createHandler, type HandlerDeps } from "./handler.ts";

const SECRET_KEY = "sb_secret_test_key_0123456789abcdef";
const SERVICE_ROLE_KEY = "legacy.service.role.jwt.0123456789";
const CLIENT_ID = "1234-test.apps.googleusercontent.com";
const CLIENT_SECRET = "GOCSPX-test-client-secret-0123456789";
const LEASE = [
  "6f1c2a44-6a0e-4f3e-9d7a-2b1f0c9e8d71",
  "0b7e8c1d-3a52-4c6e-8f90-1a2b3c4d5e6f",
  "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
];
const YOUTUBE_SCOPE = "https://www.googleapis.com/auth/youtube.readonly";

function refreshTokenOf(taskId: number): string {
  return `1//refresh-token-of-task-${taskId}-abcdefghij`;
}

/** A task as the engine holds it, with what social.refresh_context returns for it. */
function task(
  taskId: number,
  platform = "youtube",
  leaseToken = LEASE[taskId - 1],
  refreshToken: string | null = refreshTokenOf(taskId),
): FakeTask {
  return {
    taskId,
    leaseToken,
    payload: { account_id: 40 + taskId },
    context: { account_id: 40 + taskId, platform, refresh_token: refreshToken },
  };
}

function batch(taskIds: number[], extra: Record<string, unknown> = {}) {
  return {
    job: "youtube-token-refresh",
    batch_id: 123,
    tasks: taskIds.map((id) => ({
      id,
      lease_token: LEASE[id - 1],
      attempt: 1,
      payload: { account_id: 40 + id },
    })),
    ...extra,
  };
}

interface Harness {
  google: FakeGoogle;
  store: FakeJobStore;
  storeOpened: () => number;
  logs: string[];
  call(body: unknown, init?: { headers?: Record<string, string>; method?: string; raw?: string }): Promise<Reply>;
  /** The recorded outcomes, in order, with their task ids. */
  outcomes(): { taskId: number; outcome: Outcome }[];
}

interface Reply {
  status: number;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function withHarness(
  opts: {
    respond?: (params: URLSearchParams) => FakeAnswer;
    store?: FakeJobStoreOptions;
    env?: Record<string, string | undefined>;
    deps?: Partial<HandlerDeps>;
  },
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const google = startFakeGoogle(
    opts.respond ?? ((p) => googleToken(`ya29.access-for-${p.get("refresh_token")?.slice(3, 30)}`)),
  );
  const store = new FakeJobStore({ tasks: [task(1), task(2), task(3)], ...opts.store });
  let opened = 0;
  const logs: string[] = [];
  const handler = createHandler({
    env: envFrom({
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }),
      SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE_KEY,
      GOOGLE_CLIENT_ID: CLIENT_ID,
      GOOGLE_CLIENT_SECRET: CLIENT_SECRET,
      GOOGLE_OAUTH_BASE_URL: google.url,
      ...opts.env,
    }),
    store: () => {
      opened++;
      return store;
    },
    log: (line) => logs.push(line),
    ...opts.deps,
  });
  const h: Harness = {
    google,
    store,
    storeOpened: () => opened,
    logs,
    async call(body, init = {}) {
      const method = init.method ?? "POST";
      const res = await handler(
        new Request("http://functions.local/refresh-token", {
          method,
          headers: { "content-type": "application/json", apikey: SECRET_KEY, ...init.headers },
          body: method === "GET" || method === "HEAD" ? undefined : init.raw ?? JSON.stringify(body),
        }),
      );
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, text, json };
    },
    outcomes: () => store.recorded.map((r) => ({ taskId: r.lease.taskId, outcome: r.outcome })),
  };
  try {
    await fn(h);
  } finally {
    await google.close();
  }
}

function assertNoSideEffects(h: Harness): void {
  assert.equal(h.storeOpened(), 0, "the job store must not be used");
  assert.deepEqual(h.store.calls, []);
  assert.equal(h.google.requests.length, 0, "Google must not be called");
}

const recordCalls = (h: Harness) => h.store.calls.filter((c) => c.method === "record");

// ── success ────────────────────────────────────────────────────────────────────────────────

Deno.test("success: ok with the access token + expires_in, refresh_token null keeps the one Google did not return", async () => {
  await withHarness({ respond: () => googleToken("ya29.fresh-access-token-1") }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {
      success: true,
      processed: 1,
      succeeded: 1,
      retried: 0,
      dead: 0,
      discarded: 0,
      skipped: 0,
      errors: [],
    });

    // Google got a form-encoded refresh_token grant with our client credentials.
    assert.equal(h.google.requests.length, 1);
    const req = h.google.requests[0];
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/token");
    assert.equal(req.contentType, "application/x-www-form-urlencoded");
    assert.equal(req.params.get("grant_type"), "refresh_token");
    assert.equal(req.params.get("refresh_token"), refreshTokenOf(1));
    assert.equal(req.params.get("client_id"), CLIENT_ID);
    assert.equal(req.params.get("client_secret"), CLIENT_SECRET);

    // One context read for the batch, one outcome for the task (and nothing else recorded).
    assert.deepEqual(h.store.contextReads, [[{ taskId: 1, leaseToken: LEASE[0] }]]);
    assert.deepEqual(h.store.recorded, [{
      lease: { taskId: 1, leaseToken: LEASE[0] },
      outcome: {
        outcome: "ok",
        data: {
          access_token: "ya29.fresh-access-token-1",
          expires_in: 3599,
          refresh_token: null, // null = keep the stored one
          scope: YOUTUBE_SCOPE,
          refresh_expires_in: null,
        },
        durable: false, // not rotated: the stored refresh token is still good
      },
      state: "succeeded",
    }]);
    // The slot claims its next task while Google answers (claim-ahead), then records the outcome.
    assert.deepEqual(h.store.calls.map((c) => c.method), ["contexts", "claim", "record", "finishBatch"]);
  });
});

Deno.test("success: a refresh token returned by Google goes to the write, durably", async () => {
  await withHarness({
    respond: () => googleToken("ya29.fresh-access-token-2", { refresh_token: "1//rotated-refresh-token-xyz" }),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 200);
    const outcomes = h.outcomes();
    assert.equal(outcomes.length, 1);
    const ok = outcomes[0].outcome as Extract<Outcome, { outcome: "ok" }>;
    assert.equal(ok.outcome, "ok");
    assert.equal(ok.data?.refresh_token, "1//rotated-refresh-token-xyz");
    assert.equal(ok.data?.access_token, "ya29.fresh-access-token-2");
    assert.equal(ok.durable, true);
    assert.ok(!res.text.includes("1//rotated-refresh-token-xyz"));
  });
});

Deno.test("success: a batch's tasks are refreshed concurrently", async () => {
  await withHarness({
    respond: (p) => ({ ...googleToken(`ya29.${p.get("refresh_token")}`) as object, delayMs: 150 } as FakeAnswer),
  }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 200);
    assert.equal(res.json.succeeded, 3);
    assert.equal(h.google.maxInFlight, 3);
    assert.deepEqual(h.outcomes().filter((o) => o.outcome.outcome === "ok").map((o) => o.taskId).sort(), [1, 2, 3]);
  });
});

Deno.test("the account is gone by the time its token is written (apply discards): counted as discarded", async () => {
  await withHarness({ store: { state: (_l, o) => o.outcome === "ok" ? "discarded" : defaultState(o) } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.discarded, 1);
    assert.equal(res.json.succeeded, 0);
  });
});

Deno.test("moot (social.refresh_context: account gone): discarded by the engine, no Google call", async () => {
  await withHarness({ store: { tasks: [{ ...task(1), moot: "account no longer exists" }, task(2)] } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 207);
    assert.equal(res.json.discarded, 1);
    assert.equal(res.json.succeeded, 1);
    assert.deepEqual(res.json.errors, [{ task_id: 1, error: "moot: account no longer exists" }]);
    assert.equal(h.google.requests.length, 1);
    assert.deepEqual(h.outcomes().map((o) => o.taskId), [2]);
  });
});

// ── provider failures ───────────────────────────────────────────────────────────────────────

Deno.test("invalid_grant: dead, needs re-auth, 207", async () => {
  await withHarness({
    respond: () => googleError(400, "invalid_grant", "Token has been expired or revoked."),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.deepEqual(res.json, {
      success: false,
      processed: 1,
      succeeded: 0,
      retried: 0,
      dead: 1,
      discarded: 0,
      skipped: 0,
      errors: [{ task_id: 1, error: "invalid_grant: Token has been expired or revoked." }],
    });
    assert.deepEqual(h.store.recorded, [{
      lease: { taskId: 1, leaseToken: LEASE[0] },
      outcome: {
        outcome: "dead",
        error: "invalid_grant: Token has been expired or revoked.",
        data: { needs_reauth: true },
      },
      state: "dead",
    }]);
  });
});

Deno.test("unauthorized_client (token minted for another client): dead, needs re-auth", async () => {
  await withHarness({ respond: () => googleError(401, "unauthorized_client", "Unauthorized") }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    const outcomes = h.outcomes();
    assert.equal(outcomes.length, 1);
    assert.equal(outcomes[0].outcome.outcome, "dead");
    assert.deepEqual((outcomes[0].outcome as { data?: unknown }).data, { needs_reauth: true });
    assert.equal(outcomes.filter((o) => o.outcome.outcome === "release").length, 0);
  });
});

Deno.test("other 4xx (invalid_request): dead, no re-auth", async () => {
  await withHarness({
    respond: () => googleError(400, "invalid_request", "Required parameter is missing: grant_type"),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.dead, 1);
    const o = h.outcomes()[0].outcome as Extract<Outcome, { outcome: "dead" }>;
    assert.equal(o.outcome, "dead");
    assert.deepEqual(o.data, { needs_reauth: false });
    assert.match(o.error, /invalid_request: Required parameter is missing/);
  });
});

Deno.test("429 with Retry-After: 30 → retry after 30 s", async () => {
  await withHarness({
    respond: () => googleError(429, "rate_limit_exceeded", "Rate Limit Exceeded", { "retry-after": "30" }),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    assert.equal(res.json.dead, 0);
    const o = h.outcomes()[0].outcome as Extract<Outcome, { outcome: "retry" }>;
    assert.equal(o.outcome, "retry");
    assert.deepEqual(o.data, { needs_reauth: false });
    assert.equal(o.after, 30);
    assert.match(o.error, /^HTTP 429/);
  });
});

Deno.test("503 → retry with the engine's backoff (after null)", async () => {
  await withHarness({ respond: () => ({ status: 503, body: "<html>unavailable</html>" }) }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.deepEqual(res.json.errors, [{ task_id: 1, error: "HTTP 503" }]);
    assert.deepEqual(h.outcomes()[0].outcome, {
      outcome: "retry",
      error: "HTTP 503",
      after: null,
      data: { needs_reauth: false },
    });
  });
});

Deno.test("transient failure on the last attempt: the engine says dead → counted as dead", async () => {
  await withHarness({
    respond: () => ({ status: 500, body: { error: "internal_failure", error_description: "Backend Error" } }),
    store: { state: (_l, o) => o.outcome === "retry" ? "dead" : defaultState(o) },
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.dead, 1);
    assert.equal(res.json.retried, 0);
    assert.equal(h.outcomes()[0].outcome.outcome, "retry", "reported as a retry (not permanent)");
  });
});

Deno.test("timeout: Google hangs past the (injected) deadline → retry", async () => {
  await withHarness({ respond: () => "hang", deps: { timeoutMs: 150 } }, async (h) => {
    const started = Date.now();
    const res = await h.call(batch([1]));
    assert.ok(Date.now() - started < 5000, "the deadline must cut the call short");
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    const o = h.outcomes()[0].outcome as Extract<Outcome, { outcome: "retry" }>;
    assert.equal(o.outcome, "retry");
    assert.equal(o.after, null);
    assert.match(o.error, /timeout/);
  });
});

Deno.test("network error (connection refused) → retry", async () => {
  await withHarness({
    deps: {
      fetch: () => Promise.reject(new TypeError("error sending request: Connection refused (os error 111)")),
    },
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    const o = h.outcomes()[0].outcome as Extract<Outcome, { outcome: "retry" }>;
    assert.match(o.error, /^network error: .*Connection refused/);
    assert.equal(o.outcome, "retry");
  });
});

Deno.test("unsupported platform: dead, no provider call", async () => {
  await withHarness({ store: { tasks: [task(1, "myspace")] } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(h.google.requests.length, 0);
    assert.deepEqual(h.outcomes()[0].outcome, {
      outcome: "dead",
      error: "unsupported platform: myspace",
      data: { needs_reauth: false },
    });
    assert.equal(res.json.dead, 1);
  });
});

Deno.test("no refresh token stored: dead, needs re-auth, no provider call", async () => {
  await withHarness({ store: { tasks: [task(1, "youtube", LEASE[0], null)] } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(h.google.requests.length, 0);
    assert.deepEqual(h.outcomes()[0].outcome, {
      outcome: "dead",
      error: "no refresh token stored for this account",
      data: { needs_reauth: true },
    });
  });
});

Deno.test("a context that does not parse: retried with the field named, no provider call", async () => {
  await withHarness({ store: { tasks: [{ ...task(1), context: { account_id: 41, platform: "youtube" } }] } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.json.retried, 1);
    assert.match(res.json.errors[0].error, /context does not parse: refresh_token/);
    assert.equal(h.google.requests.length, 0);
  });
});

// ── configuration errors ────────────────────────────────────────────────────────────────────

Deno.test("GOOGLE_CLIENT_SECRET unset: all tasks released, 500, no Google call, nothing dead", async () => {
  await withHarness({ env: { GOOGLE_CLIENT_SECRET: undefined } }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 500);
    assert.equal(res.json.success, false);
    assert.equal(res.json.error, "configuration_error");
    assert.equal(
      res.json.message,
      "GOOGLE_CLIENT_SECRET is not set (supabase secrets set GOOGLE_CLIENT_SECRET=…)",
    );
    assert.equal(res.json.released, 3);
    assert.equal(h.google.requests.length, 0);
    // Each task released under its own lease, with the reason (the store groups them into one
    // jobs.report call: job_runner.test.ts "grouped").
    assert.deepEqual(h.outcomes().map((o) => o.taskId).sort(), [1, 2, 3]);
    assert.deepEqual(
      h.store.recorded.find((r) => r.lease.taskId === 2)?.lease,
      { taskId: 2, leaseToken: LEASE[1] },
    );
    for (const { outcome } of h.outcomes()) {
      assert.deepEqual(outcome, { outcome: "release", error: res.json.message }, "released: nothing failed, dead or written");
    }
  });
});

Deno.test("invalid_client from Google: tasks released (no attempt used), 500", async () => {
  await withHarness({
    respond: () => googleError(401, "invalid_client", "The OAuth client was not found."),
  }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 500);
    assert.equal(res.json.error, "configuration_error");
    assert.match(res.json.message, /invalid_client: The OAuth client was not found\./);
    assert.match(res.json.message, /GOOGLE_CLIENT_SECRET/);
    assert.deepEqual(h.outcomes().map((o) => o.taskId).sort(), [1, 2]);
    assert.deepEqual(
      h.outcomes().filter((o) => o.outcome.outcome !== "release"),
      [],
      "a configuration error must not fail (or kill) tasks",
    );
    assert.ok(!res.text.includes(CLIENT_SECRET));
  });
});

Deno.test("release with one stale lease: that task is skipped, the others are released (each on its own lease)", async () => {
  // The fake refuses any outcome of task 2 (its lease is gone).
  await withHarness({
    env: { GOOGLE_CLIENT_ID: undefined },
    store: { leaseLost: { record: [2] } },
  }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 500);
    assert.equal(res.json.released, 2);
    assert.equal(res.json.skipped, 1);
    const releasedIds = h.outcomes().filter((o) => o.outcome.outcome === "release").map((o) => o.taskId).sort();
    assert.deepEqual(releasedIds, [1, 3]);
  });
});

// ── auth ────────────────────────────────────────────────────────────────────────────────────

Deno.test("wrong key → 401, no store or Google call", async () => {
  await withHarness({}, async (h) => {
    const res = await h.call(batch([1]), { headers: { apikey: "sb_secret_wrong_key_0123456789abcdef" } });
    assert.equal(res.status, 401);
    assert.equal(res.json.error, "unauthorized");
    assert.equal(typeof res.json.message, "string");
    assertNoSideEffects(h);
  });
});

Deno.test("missing key → 401, no side effects", async () => {
  await withHarness({}, async (h) => {
    const res = await h.call(batch([1]), { headers: { apikey: "" } });
    assert.equal(res.status, 401);
    assert.equal(res.json.error, "unauthorized");
    assertNoSideEffects(h);
  });
});

Deno.test("Authorization: Bearer <secret key> is accepted, as is the service role key", async () => {
  await withHarness({}, async (h) => {
    const bearer = await h.call(batch([1]), { headers: { apikey: "", authorization: `Bearer ${SECRET_KEY}` } });
    assert.equal(bearer.status, 200);
    const legacy = await h.call(batch([2]), { headers: { apikey: SERVICE_ROLE_KEY } });
    assert.equal(legacy.status, 200);
    const wrongBearer = await h.call(batch([3]), { headers: { apikey: "", authorization: "Bearer nope" } });
    assert.equal(wrongBearer.status, 401);
    assert.equal(h.google.requests.length, 2);
  });
});

Deno.test("GET → 405", async () => {
  await withHarness({}, async (h) => {
    const res = await h.call(undefined, { method: "GET" });
    assert.equal(res.status, 405);
    assertNoSideEffects(h);
  });
});

// ── request validation ──────────────────────────────────────────────────────────────────────

Deno.test("malformed body → 400 naming the field, nothing touched", async () => {
  await withHarness({}, async (h) => {
    const notJson = await h.call(undefined, { raw: "{not json" });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.json.error, "invalid_request");
    assert.equal(notJson.json.field, "body");

    const noTasks = await h.call({ job: "youtube-token-refresh", batch_id: 1 });
    assert.equal(noTasks.status, 400);
    assert.equal(noTasks.json.error, "invalid_request");
    assert.equal(noTasks.json.field, "tasks");
    assert.equal(typeof noTasks.json.message, "string");

    const badUuid = batch([1]);
    badUuid.tasks[0].lease_token = "not-a-uuid";
    const res = await h.call(badUuid);
    assert.equal(res.status, 400);
    assert.equal(res.json.field, "tasks.0.lease_token");

    const badAccount = batch([1, 2]);
    (badAccount.tasks[1].payload as { account_id: unknown }).account_id = "42";
    assert.equal((await h.call(badAccount)).json.field, "tasks.1.payload.account_id");

    const empty = await h.call({ ...batch([]), tasks: [] });
    assert.equal(empty.json.field, "tasks");

    assertNoSideEffects(h);
  });
});

Deno.test("unknown extra keys are allowed", async () => {
  await withHarness({}, async (h) => {
    const body = batch([1], { run_id: 9 }) as ReturnType<typeof batch>;
    (body.tasks[0] as Record<string, unknown>).key = "youtube:41";
    (body.tasks[0].payload as Record<string, unknown>).expires_at = "2026-11-23T12:00:00Z";
    const res = await h.call(body);
    assert.equal(res.status, 200);
  });
});

// ── lease lost ──────────────────────────────────────────────────────────────────────────────

Deno.test("lease lost: a task missing from the leased contexts is skipped, no Google call for it", async () => {
  await withHarness({ store: { tasks: [task(1), task(2, "youtube", LEASE[2])] } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 207);
    assert.equal(res.json.succeeded, 1);
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.errors.length, 1);
    assert.equal(res.json.errors[0].task_id, 2);
    assert.match(res.json.errors[0].error, /lease lost/);
    assert.equal(h.google.requests.length, 1);
    assert.equal(h.google.requests[0].params.get("refresh_token"), refreshTokenOf(1));
    assert.deepEqual(h.store.calls.filter((c) => c.taskIds.includes(2) && c.method !== "contexts"), []);
  });
});

Deno.test("lease lost: DWL01 when recording an ok → skipped, nothing else", async () => {
  await withHarness({ store: { leaseLost: { record: [1] } } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 207);
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.succeeded, 1);
    assert.equal(res.json.dead + res.json.retried + res.json.discarded, 0);
    assert.deepEqual(
      h.outcomes().map((o) => [o.taskId, o.outcome.outcome]),
      [[2, "ok"]],
      "a lost lease is not a failure (or a release) to record",
    );
  });
});

Deno.test("lease lost: DWL01 when recording a dead outcome → skipped", async () => {
  await withHarness({
    respond: () => googleError(400, "invalid_grant", "Token has been expired or revoked."),
    store: { leaseLost: { record: "all" } },
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.dead, 0);
  });
});

Deno.test("database error while recording: reported as retried (lease expiry re-runs it), no tokens", async () => {
  const respond = () => googleToken("ya29.unrecorded-access-token");
  await withHarness({ respond, store: { dbError: { record: [1] } } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    assert.match(res.json.errors[0].error, /SQLSTATE 57P01/);
    assert.ok(!res.text.includes("ya29.unrecorded-access-token"));
    assert.ok(!h.logs.join("\n").includes("ya29.unrecorded-access-token"));
  });
});

Deno.test("database unreachable when reading contexts → 500, no Google call", async () => {
  await withHarness({ store: { dbError: { contexts: "all" } } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 500);
    assert.equal(res.json.error, "database_error");
    assert.equal(h.google.requests.length, 0);
  });
});

// ── secrets never leak ──────────────────────────────────────────────────────────────────────

Deno.test("responses, recorded errors and logs never contain tokens or the client secret", async () => {
  const answers: Record<string, FakeAnswer> = {
    [refreshTokenOf(1)]: googleToken("ya29.secret-access-token-1", { refresh_token: "1//rotated-secret-rt" }),
    // A hostile/buggy error body echoing the refresh token and client secret back.
    [refreshTokenOf(2)]: googleError(
      400,
      "invalid_grant",
      `Bad token ${refreshTokenOf(2)} for client secret ${CLIENT_SECRET}`,
    ),
    [refreshTokenOf(3)]: googleError(503, "backend_error", `retry ${refreshTokenOf(3)}`, { "retry-after": "5" }),
  };
  await withHarness({ respond: (p) => answers[p.get("refresh_token") ?? ""] }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 207);
    assert.equal(res.json.succeeded, 1);
    assert.equal(res.json.dead, 1);
    assert.equal(res.json.retried, 1);

    const leaked = [
      "ya29.secret-access-token-1",
      "1//rotated-secret-rt",
      refreshTokenOf(1),
      refreshTokenOf(2),
      refreshTokenOf(3),
      CLIENT_SECRET,
      SECRET_KEY,
    ];
    // Everything recorded except the ok's data, which is the token write itself (it goes to the
    // SQL apply function only; the engine never stores it).
    const recorded = h.store.recorded.map((r) => r.outcome.outcome === "ok" ? { ...r.outcome, data: undefined } : r.outcome);
    const stored = JSON.stringify(recorded);
    const logs = h.logs.join("\n");
    for (const secret of leaked) {
      assert.ok(!res.text.includes(secret), `response leaks ${secret}`);
      assert.ok(!stored.includes(secret), `recorded error leaks ${secret}`);
      assert.ok(!logs.includes(secret), `log leaks ${secret}`);
    }
    assert.match(stored, /invalid_grant: Bad token \[redacted\]/);
    assert.equal(h.logs.length, 1, "one log line per batch");
    assert.match(h.logs[0], /processed=3 succeeded=1 retried=1 dead=1 discarded=0 skipped=0/);
  });
});

// ── refill (integration; the runner's own tests are in _shared/job_runner.test.ts) ──────────

Deno.test("refill: each finished slot claims the next due account into the batch until none is left", async () => {
  const backlog = [task(4, "youtube", crypto.randomUUID()), task(5, "youtube", crypto.randomUUID())];
  await withHarness({ store: { backlog } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 200);
    assert.equal(res.json.processed, 4);
    assert.equal(res.json.succeeded, 4);
    assert.deepEqual(h.outcomes().map((o) => o.taskId).sort(), [1, 2, 4, 5]);
    // The backlog's lease tokens (not the batch's) are used for its outcomes.
    const four = h.store.recorded.find((r) => r.lease.taskId === 4)!;
    assert.equal(four.lease.leaseToken, backlog[0].leaseToken);
    assert.ok(h.store.claimedBatches.every((b) => b === 123));
    assert.equal(h.google.requests.length, 4);
    assert.deepEqual(
      h.google.requests.map((r) => r.params.get("refresh_token")).sort(),
      [1, 2, 4, 5].map(refreshTokenOf).sort(),
      "a claimed task's context (its refresh token) reaches Google",
    );
  });
});

// ── rotating refresh tokens (TikTok) ──────────────────────────────────────────────────────────

function rotatingProvider(calls: string[]) {
  return {
    tiktok: () => ({
      ok: true as const,
      secrets: [],
      refresher: {
        refresh(token: string) {
          calls.push(token);
          return Promise.resolve({
            kind: "refreshed" as const,
            accessToken: `act.new-for-${token}`,
            expiresIn: 86400,
            refreshToken: `rft.rotated-from-${token}`,
            scope: "user.info.basic",
            refreshExpiresIn: 31536000,
          });
        },
      },
    }),
  };
}

Deno.test("rotation: the new refresh token and its lifetime go with the access token in one durable write", async () => {
  const calls: string[] = [];
  await withHarness(
    { store: { tasks: [task(1, "tiktok")] }, deps: { providers: rotatingProvider(calls) } },
    async (h) => {
      const res = await h.call(batch([1]));
      assert.equal(res.json.succeeded, 1);
      assert.deepEqual(calls, [refreshTokenOf(1)]);
      assert.equal(recordCalls(h).length, 1, "one write");
      assert.deepEqual(h.outcomes().map((o) => o.outcome), [{
        outcome: "ok",
        data: {
          access_token: `act.new-for-${refreshTokenOf(1)}`,
          expires_in: 86400,
          refresh_token: `rft.rotated-from-${refreshTokenOf(1)}`,
          scope: "user.info.basic",
          refresh_expires_in: 31536000,
        },
        durable: true,
      }]);
    },
  );
});

Deno.test("rotation: a failed write of a rotated token is retried (it is the only copy)", async () => {
  await withHarness(
    {
      store: { tasks: [task(1, "tiktok")], dbErrorTimes: { record: 2 } },
      deps: { providers: rotatingProvider([]), durableRetryMs: [1, 1, 1] },
    },
    async (h) => {
      const res = await h.call(batch([1]));
      assert.equal(res.json.succeeded, 1);
      assert.equal(recordCalls(h).length, 3, "two failures, then stored");
    },
  );
});

Deno.test("rotation: a write that keeps failing is reported as retried and logged without the token", async () => {
  await withHarness(
    {
      store: { tasks: [task(1, "tiktok")], dbError: { record: [1] } },
      deps: { providers: rotatingProvider([]), durableRetryMs: [1, 1] },
    },
    async (h) => {
      const res = await h.call(batch([1]));
      assert.equal(res.json.retried, 1);
      assert.equal(recordCalls(h).length, 3);
      assert.ok(h.logs.some((l) => /task 1: an outcome that is the only copy of its data could not be stored/.test(l)));
      const logs = h.logs.join("\n");
      assert.ok(!logs.includes("rft.rotated"), "the new token is never logged");
      assert.ok(!logs.includes("act.new-for"));
      assert.ok(!res.text.includes("rft.rotated"));
      assert.ok(!res.text.includes("act.new-for"));
    },
  );
});

Deno.test("youtube: a write failure without rotation is not retried", async () => {
  await withHarness({ store: { dbError: { record: [1] } }, deps: { durableRetryMs: [1, 1] } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.json.retried, 1);
    assert.equal(recordCalls(h).length, 1);
  });
});
