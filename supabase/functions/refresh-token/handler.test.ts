// refresh-token handler against an in-process TokenStore and a fake Google token endpoint on a
// local port. No database, no network beyond 127.0.0.1.

import assert from "node:assert/strict";
import { envFrom } from "../_shared/env.ts";
import {
  type FakeAnswer,
  type FakeGoogle,
  googleError,
  googleToken,
  startFakeGoogle,
} from "../_shared/testing/fake_google.ts";
import { type FakeCredential, FakeTokenStore, type FakeTokenStoreOptions } from "../_shared/testing/fake_token_store.ts";
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

function refreshTokenOf(taskId: number): string {
  return `1//refresh-token-of-task-${taskId}-abcdefghij`;
}

function cred(taskId: number, platform = "youtube", leaseToken = LEASE[taskId - 1]): FakeCredential {
  return { taskId, accountId: 40 + taskId, platform, refreshToken: refreshTokenOf(taskId), leaseToken };
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
  store: FakeTokenStore;
  storeOpened: () => number;
  logs: string[];
  call(body: unknown, init?: { headers?: Record<string, string>; method?: string; raw?: string }): Promise<Outcome>;
}

interface Outcome {
  status: number;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function withHarness(
  opts: {
    respond?: (params: URLSearchParams) => FakeAnswer;
    store?: FakeTokenStoreOptions;
    env?: Record<string, string | undefined>;
    deps?: Partial<HandlerDeps>;
  },
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const google = startFakeGoogle(
    opts.respond ?? ((p) => googleToken(`ya29.access-for-${p.get("refresh_token")?.slice(3, 30)}`)),
  );
  const store = new FakeTokenStore({ credentials: [cred(1), cred(2), cred(3)], ...opts.store });
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
  };
  try {
    await fn(h);
  } finally {
    await google.close();
  }
}

function assertNoSideEffects(h: Harness): void {
  assert.equal(h.storeOpened(), 0, "the token store must not be used");
  assert.deepEqual(h.store.calls, []);
  assert.equal(h.google.requests.length, 0, "Google must not be called");
}

// ── success ────────────────────────────────────────────────────────────────────────────────

Deno.test("success: stores access token + expires_in, keeps the refresh token Google did not return", async () => {
  await withHarness({ respond: () => googleToken("ya29.fresh-access-token-1") }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {
      success: true,
      processed: 1,
      succeeded: 1,
      retried: 0,
      failed: 0,
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

    // One credentials read for the batch, one outcome call for the task.
    assert.deepEqual(h.store.credentialReads, [[{ taskId: 1, leaseToken: LEASE[0] }]]);
    assert.deepEqual(h.store.refreshes, [{
      lease: { taskId: 1, leaseToken: LEASE[0] },
      record: {
        accessToken: "ya29.fresh-access-token-1",
        expiresIn: 3599,
        refreshToken: null, // null = keep the stored one
        scope: "https://www.googleapis.com/auth/youtube.readonly",
        refreshExpiresIn: null,
      },
    }]);
    assert.deepEqual(h.store.failures, []);
    // The slot claims its next task while Google answers (claim-ahead), then records the outcome.
    assert.deepEqual(h.store.calls.map((c) => c.method), ["leasedCredentials", "claimNext", "recordRefresh", "finishBatch"]);
  });
});

Deno.test("success: a refresh token returned by Google is stored", async () => {
  await withHarness({
    respond: () => googleToken("ya29.fresh-access-token-2", { refresh_token: "1//rotated-refresh-token-xyz" }),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 200);
    assert.equal(h.store.refreshes.length, 1);
    assert.equal(h.store.refreshes[0].record.refreshToken, "1//rotated-refresh-token-xyz");
    assert.equal(h.store.refreshes[0].record.accessToken, "ya29.fresh-access-token-2");
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
    assert.deepEqual(h.store.refreshes.map((r) => r.lease.taskId).sort(), [1, 2, 3]);
  });
});

// ── provider failures ───────────────────────────────────────────────────────────────────────

Deno.test("invalid_grant: permanent failure that needs re-auth, 207", async () => {
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
      failed: 1,
      skipped: 0,
      errors: [{ task_id: 1, error: "invalid_grant: Token has been expired or revoked." }],
    });
    assert.deepEqual(h.store.failures, [{
      lease: { taskId: 1, leaseToken: LEASE[0] },
      record: {
        error: "invalid_grant: Token has been expired or revoked.",
        permanent: true,
        needsReauth: true,
        retryAfterSeconds: null,
      },
    }]);
    assert.deepEqual(h.store.refreshes, []);
  });
});

Deno.test("unauthorized_client (token minted for another client): permanent, needs re-auth", async () => {
  await withHarness({ respond: () => googleError(401, "unauthorized_client", "Unauthorized") }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(h.store.failures.length, 1);
    assert.equal(h.store.failures[0].record.permanent, true);
    assert.equal(h.store.failures[0].record.needsReauth, true);
    assert.equal(h.store.releases.length, 0);
  });
});

Deno.test("other 4xx (invalid_request): permanent, no re-auth", async () => {
  await withHarness({
    respond: () => googleError(400, "invalid_request", "Required parameter is missing: grant_type"),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.failed, 1);
    const rec = h.store.failures[0].record;
    assert.equal(rec.permanent, true);
    assert.equal(rec.needsReauth, false);
    assert.match(rec.error, /invalid_request: Required parameter is missing/);
  });
});

Deno.test("429 with Retry-After: 30 → transient, retry_after 30", async () => {
  await withHarness({
    respond: () => googleError(429, "rate_limit_exceeded", "Rate Limit Exceeded", { "retry-after": "30" }),
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    assert.equal(res.json.failed, 0);
    const rec = h.store.failures[0].record;
    assert.equal(rec.permanent, false);
    assert.equal(rec.needsReauth, false);
    assert.equal(rec.retryAfterSeconds, 30);
    assert.match(rec.error, /^HTTP 429/);
  });
});

Deno.test("503 → transient, engine backoff (retry_after null)", async () => {
  await withHarness({ respond: () => ({ status: 503, body: "<html>unavailable</html>" }) }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.deepEqual(res.json.errors, [{ task_id: 1, error: "HTTP 503" }]);
    assert.deepEqual(h.store.failures[0].record, {
      error: "HTTP 503",
      permanent: false,
      needsReauth: false,
      retryAfterSeconds: null,
    });
  });
});

Deno.test("transient failure on the last attempt: the store says dead → counted as failed", async () => {
  await withHarness({
    respond: () => ({ status: 500, body: { error: "internal_failure", error_description: "Backend Error" } }),
    store: { failureState: () => "dead" },
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.failed, 1);
    assert.equal(res.json.retried, 0);
    assert.equal(h.store.failures[0].record.permanent, false);
  });
});

Deno.test("timeout: Google hangs past the (injected) deadline → transient", async () => {
  await withHarness({ respond: () => "hang", deps: { timeoutMs: 150 } }, async (h) => {
    const started = Date.now();
    const res = await h.call(batch([1]));
    assert.ok(Date.now() - started < 5000, "the deadline must cut the call short");
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    const rec = h.store.failures[0].record;
    assert.equal(rec.permanent, false);
    assert.equal(rec.retryAfterSeconds, null);
    assert.match(rec.error, /timeout/);
  });
});

Deno.test("network error (connection refused) → transient", async () => {
  await withHarness({
    deps: {
      fetch: () => Promise.reject(new TypeError("error sending request: Connection refused (os error 111)")),
    },
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    assert.match(h.store.failures[0].record.error, /^network error: .*Connection refused/);
    assert.equal(h.store.failures[0].record.permanent, false);
  });
});

Deno.test("unsupported platform: permanent failure, no provider call", async () => {
  await withHarness({ store: { credentials: [cred(1, "myspace")] } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(h.google.requests.length, 0);
    assert.deepEqual(h.store.failures[0].record, {
      error: "unsupported platform: myspace",
      permanent: true,
      needsReauth: false,
      retryAfterSeconds: null,
    });
    assert.equal(res.json.failed, 1);
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
    assert.equal(h.store.releases.length, 1, "one release call for the batch");
    assert.deepEqual(h.store.releases[0].leases.map((l) => l.taskId).sort(), [1, 2, 3]);
    assert.deepEqual(
      h.store.releases[0].leases.find((l) => l.taskId === 2),
      { taskId: 2, leaseToken: LEASE[1] },
    );
    assert.equal(h.store.releases[0].reason, res.json.message);
    assert.deepEqual(h.store.failures, []);
    assert.deepEqual(h.store.refreshes, []);
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
    assert.equal(h.store.releases.length, 1);
    assert.deepEqual(h.store.releases[0].leases.map((l) => l.taskId).sort(), [1, 2]);
    assert.deepEqual(h.store.failures, [], "a configuration error must not fail (or kill) tasks");
    assert.ok(!res.text.includes(CLIENT_SECRET));
  });
});

Deno.test("release refused as a whole (one stale lease): the others are released one by one", async () => {
  // The fake refuses any release call that includes task 2.
  await withHarness({
    env: { GOOGLE_CLIENT_ID: undefined },
    store: { leaseLost: { release: [2] } },
  }, async (h) => {
    const res = await h.call(batch([1, 2, 3]));
    assert.equal(res.status, 500);
    assert.equal(res.json.released, 2);
    assert.equal(res.json.skipped, 1);
    const releasedIds = h.store.releases.flatMap((r) => r.leases.map((l) => l.taskId)).sort();
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

Deno.test("lease lost: a task missing from the leased credentials is skipped, no Google call for it", async () => {
  await withHarness({ store: { credentials: [cred(1), cred(2, "youtube", LEASE[2])] } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 207);
    assert.equal(res.json.succeeded, 1);
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.errors.length, 1);
    assert.equal(res.json.errors[0].task_id, 2);
    assert.match(res.json.errors[0].error, /lease lost/);
    assert.equal(h.google.requests.length, 1);
    assert.equal(h.google.requests[0].params.get("refresh_token"), refreshTokenOf(1));
    assert.deepEqual(h.store.calls.filter((c) => c.taskIds.includes(2) && c.method !== "leasedCredentials"), []);
  });
});

Deno.test("lease lost: DWL01 from record_token_refresh → skipped, nothing else", async () => {
  await withHarness({ store: { leaseLost: { recordRefresh: [1] } } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 207);
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.succeeded, 1);
    assert.equal(res.json.failed + res.json.retried, 0);
    assert.deepEqual(h.store.failures, [], "a lost lease is not a failure to record");
    assert.deepEqual(h.store.releases, []);
  });
});

Deno.test("lease lost: DWL01 from record_token_failure → skipped", async () => {
  await withHarness({
    respond: () => googleError(400, "invalid_grant", "Token has been expired or revoked."),
    store: { leaseLost: { recordFailure: "all" } },
  }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.failed, 0);
  });
});

Deno.test("database error while recording: reported as retried (lease expiry re-runs it), no tokens", async () => {
  await withHarness({ store: { dbError: { recordRefresh: [1] } } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 207);
    assert.equal(res.json.retried, 1);
    assert.match(res.json.errors[0].error, /SQLSTATE 57P01/);
  });
});

Deno.test("database unreachable when reading credentials → 500, no Google call", async () => {
  await withHarness({ store: { dbError: { leasedCredentials: "all" } } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 500);
    assert.equal(res.json.error, "database_error");
    assert.equal(h.google.requests.length, 0);
  });
});

// ── secrets never leak ──────────────────────────────────────────────────────────────────────

Deno.test("responses, stored errors and logs never contain tokens or the client secret", async () => {
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
    assert.equal(res.json.failed, 1);
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
    const stored = JSON.stringify(h.store.failures.map((f) => f.record.error));
    const logs = h.logs.join("\n");
    for (const secret of leaked) {
      assert.ok(!res.text.includes(secret), `response leaks ${secret}`);
      assert.ok(!stored.includes(secret), `stored error leaks ${secret}`);
      assert.ok(!logs.includes(secret), `log leaks ${secret}`);
    }
    assert.match(stored, /invalid_grant: Bad token \[redacted\]/);
    assert.equal(h.logs.length, 1, "one log line per batch");
    assert.match(h.logs[0], /processed=3 succeeded=1 retried=1 failed=1 skipped=0/);
  });
});

// ── refill: a finished slot claims the job's next due task into the same batch ─────────────

Deno.test("refill: each finished slot claims the next due task into the batch until none is left", async () => {
  const backlog = [cred(4, "youtube", crypto.randomUUID()), cred(5, "youtube", crypto.randomUUID())];
  await withHarness({ store: { backlog } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.status, 200);
    assert.equal(res.json.processed, 4);
    assert.equal(res.json.succeeded, 4);
    assert.deepEqual(h.store.refreshes.map((r) => r.lease.taskId).sort(), [1, 2, 4, 5]);
    // The backlog's lease tokens (not the batch's) are used for its outcomes.
    const four = h.store.refreshes.find((r) => r.lease.taskId === 4)!;
    assert.equal(four.lease.leaseToken, backlog[0].leaseToken);
    assert.ok(h.store.claimedBatches.every((b) => b === 123));
    assert.equal(h.google.requests.length, 4);
  });
});

Deno.test("refill: a request stops claiming at maxTasksPerRequest", async () => {
  const backlog = [4, 5, 6, 7].map((id) => cred(id, "youtube", crypto.randomUUID()));
  await withHarness({ store: { backlog }, deps: { maxTasksPerRequest: 3 } }, async (h) => {
    const res = await h.call(batch([1, 2]));
    assert.equal(res.json.processed, 3);
    assert.equal(h.google.requests.length, 3);
  });
});

Deno.test("refill: after a configuration error the task claimed ahead is released too, and nothing more is claimed", async () => {
  const backlog = [cred(4, "youtube", crypto.randomUUID()), cred(5, "youtube", crypto.randomUUID())];
  await withHarness({ store: { backlog }, env: { GOOGLE_CLIENT_SECRET: undefined } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.status, 500);
    assert.equal(h.store.claimedBatches.length, 1, "one claim ahead, none after the error");
    assert.deepEqual(h.store.releases.flatMap((r) => r.leases.map((l) => l.taskId)).sort(), [1, 4]);
    assert.equal(h.google.requests.length, 0);
  });
});

Deno.test("refill: a lost lease skips that task only; the task claimed ahead is still refreshed", async () => {
  const backlog = [cred(4, "youtube", crypto.randomUUID())];
  await withHarness({ store: { backlog, leaseLost: { recordRefresh: [1] } } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.json.skipped, 1);
    assert.equal(res.json.succeeded, 1);
    assert.deepEqual(h.store.calls.filter((c) => c.method === "recordRefresh").map((c) => c.taskIds[0]), [1, 4]);
    assert.deepEqual(h.store.refreshes.map((r) => r.lease.taskId), [4], "only task 4 was recorded");
  });
});

Deno.test("refill: the provider is called again before the previous outcome is recorded", async () => {
  // A store whose outcome writes hang until released: the slot must still move on to its next task.
  const backlog = [cred(4, "youtube", crypto.randomUUID()), cred(5, "youtube", crypto.randomUUID())];
  let releaseWrites!: () => void;
  const writesHeld = new Promise<void>((r) => (releaseWrites = r));
  await withHarness({ store: { backlog, holdRefreshes: writesHeld } }, async (h) => {
    const pending = h.call(batch([1]));
    // One slot, writes held: it can only reach its third outcome by not waiting for the first two.
    const deadline = Date.now() + 5_000;
    while (h.store.refreshes.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.equal(h.store.refreshes.length, 3, "three outcomes submitted while none is recorded yet");
    assert.equal(h.google.requests.length, 3);
    releaseWrites();
    const res = await pending;
    assert.equal(res.json.succeeded, 3);
  });
});

Deno.test("finish: the batch is finished once, after every slot is done", async () => {
  await withHarness({ store: { backlog: [cred(4, "youtube", crypto.randomUUID())] } }, async (h) => {
    await h.call(batch([1, 2, 3]));
    assert.deepEqual(h.store.finishedBatches, [123]);
    assert.equal(h.store.calls.at(-1)?.method, "finishBatch");
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

Deno.test("rotation: the new refresh token and its lifetime are stored with the access token in one write", async () => {
  const calls: string[] = [];
  await withHarness(
    { store: { credentials: [cred(1, "tiktok")] }, deps: { providers: rotatingProvider(calls) } },
    async (h) => {
      const res = await h.call(batch([1]));
      assert.equal(res.json.succeeded, 1);
      assert.deepEqual(calls, [refreshTokenOf(1)]);
      assert.deepEqual(h.store.refreshes.map((r) => r.record), [{
        accessToken: `act.new-for-${refreshTokenOf(1)}`,
        expiresIn: 86400,
        refreshToken: `rft.rotated-from-${refreshTokenOf(1)}`,
        scope: "user.info.basic",
        refreshExpiresIn: 31536000,
      }]);
    },
  );
});

Deno.test("rotation: a failed write of a rotated token is retried (it is the only copy)", async () => {
  await withHarness(
    {
      store: { credentials: [cred(1, "tiktok")], dbErrorTimes: { recordRefresh: 2 } },
      deps: { providers: rotatingProvider([]), rotatedWriteRetryMs: [1, 1, 1] },
    },
    async (h) => {
      const res = await h.call(batch([1]));
      assert.equal(res.json.succeeded, 1);
      assert.equal(h.store.calls.filter((c) => c.method === "recordRefresh").length, 3, "two failures, then stored");
    },
  );
});

Deno.test("rotation: a write that keeps failing is reported as retried and logged without the token", async () => {
  await withHarness(
    {
      store: { credentials: [cred(1, "tiktok")], dbError: { recordRefresh: [1] } },
      deps: { providers: rotatingProvider([]), rotatedWriteRetryMs: [1, 1] },
    },
    async (h) => {
      const res = await h.call(batch([1]));
      assert.equal(res.json.retried, 1);
      assert.equal(h.store.calls.filter((c) => c.method === "recordRefresh").length, 3);
      assert.ok(h.logs.some((l) => /rotated refresh token could not be stored/.test(l)));
      assert.ok(!h.logs.join("\n").includes("rft.rotated"), "the new token is never logged");
      assert.ok(!res.text.includes("rft.rotated"));
    },
  );
});

Deno.test("youtube: a write failure without rotation is not retried", async () => {
  await withHarness({ store: { dbError: { recordRefresh: [1] } }, deps: { rotatedWriteRetryMs: [1, 1] } }, async (h) => {
    const res = await h.call(batch([1]));
    assert.equal(res.json.retried, 1);
    assert.equal(h.store.calls.filter((c) => c.method === "recordRefresh").length, 1);
  });
});
