// The postgres.js TokenStore against a fake `sql` tag: the exact SQL functions, casts and
// parameters, row conversion, and SQLSTATE DWL01 → LeaseLostError.

import assert from "node:assert/strict";
import type postgres from "npm:postgres@^3.4.9";
import { postgresError } from "./testing/fake_token_store.ts";
import { createPgTokenStore, isLeaseLost, LeaseLostError } from "./token_store.ts";

interface Query {
  text: string;
  values: unknown[];
}

function fakeSql(answer: (q: Query) => Record<string, unknown>[] | Error) {
  const queries: Query[] = [];
  const tag = (strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.reduce((acc, s, i) => acc + `$${i}` + s).replace(/\s+/g, " ").trim();
    const q = { text, values };
    queries.push(q);
    const a = answer(q);
    return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
  };
  // sql.json(value) marks a JSON parameter; the fake passes the value through.
  Object.assign(tag, { json: (value: unknown) => value });
  return { sql: tag as unknown as postgres.Sql, queries };
}

const L1 = { taskId: 1, leaseToken: "6f1c2a44-6a0e-4f3e-9d7a-2b1f0c9e8d71" };
const L2 = { taskId: 2, leaseToken: "0b7e8c1d-3a52-4c6e-8f90-1a2b3c4d5e6f" };

Deno.test("token_store: leasedCredentials → one call with bigint[]/uuid[], bigint strings → numbers", async () => {
  const { sql, queries } = fakeSql(() => [
    { task_id: "1", account_id: "42", platform: "youtube", refresh_token: "1//rt" },
    { task_id: "2", account_id: "43", platform: "youtube", refresh_token: null },
  ]);
  const rows = await createPgTokenStore(sql).leasedCredentials([L1, L2]);
  assert.deepEqual(rows, [
    { taskId: 1, accountId: 42, platform: "youtube", refreshToken: "1//rt" },
    { taskId: 2, accountId: 43, platform: "youtube", refreshToken: null },
  ]);
  assert.equal(queries.length, 1);
  assert.equal(
    queries[0].text,
    "select task_id, account_id, platform, refresh_token from social.leased_refresh_credentials($1::bigint[], $2::uuid[])",
  );
  assert.deepEqual(queries[0].values, [[1, 2], [L1.leaseToken, L2.leaseToken]]);
});

const GROUP_SQL =
  "select social.record_and_claim_refreshes( $1::jsonb, $2::jsonb, $3::jsonb) as answer";

Deno.test("token_store: outcomes and claims submitted together go out in one grouped call", async () => {
  const { sql, queries } = fakeSql(() => [{
    answer: {
      refreshes: [{ task_id: "1", state: "succeeded", expires_at: "2026-12-01T03:00:00Z" }],
      failures: [{ task_id: "2", state: "queued" }],
      claimed: [
        { batch_id: "7", task_id: "8", lease_token: L1.leaseToken, attempt: 1, account_id: "80", platform: "youtube", refresh_token: "1//r8" },
        { batch_id: "7", task_id: "9", lease_token: L2.leaseToken, attempt: 2, account_id: "90", platform: "tiktok", refresh_token: null },
      ],
    },
  }]);
  const store = createPgTokenStore(sql);

  const [refreshed, failed, first, second, third] = await Promise.all([
    store.recordRefresh(L1, { accessToken: "ya29.a", expiresIn: 3599, refreshToken: null, scope: "s" }),
    store.recordFailure(L2, { error: "HTTP 503", retryAfterSeconds: 30, permanent: false, needsReauth: false }),
    store.claimNext(7),
    store.claimNext(7),
    store.claimNext(7),
  ]);
  assert.equal(queries.length, 1, "one round trip for the whole group");
  assert.equal(queries[0].text, GROUP_SQL);
  assert.deepEqual(queries[0].values, [
    [{ task_id: 1, lease_token: L1.leaseToken, access_token: "ya29.a", expires_in: 3599, refresh_token: null, scope: "s", refresh_expires_in: null }],
    [{ task_id: 2, lease_token: L2.leaseToken, error: "HTTP 503", retry_after_seconds: 30, permanent: false, needs_reauth: false }],
    [{ batch_id: 7, count: 3 }],
  ]);
  assert.equal(refreshed, "succeeded");
  assert.equal(failed, "queued");
  assert.deepEqual(first, {
    lease: { taskId: 8, leaseToken: L1.leaseToken },
    credential: { taskId: 8, accountId: 80, platform: "youtube", refreshToken: "1//r8" },
  });
  assert.deepEqual(second?.credential, { taskId: 9, accountId: 90, platform: "tiktok", refreshToken: null });
  assert.equal(third, null, "fewer tasks due than asked: the last claim gets nothing");
});

Deno.test("token_store: a lost lease fails only its own outcome", async () => {
  const { sql } = fakeSql(() => [{
    answer: {
      refreshes: [{ task_id: 1, state: "lease_lost" }, { task_id: 2, state: "succeeded" }],
      failures: [],
      claimed: [],
    },
  }]);
  const store = createPgTokenStore(sql);
  const rec = { accessToken: "ya29.a", expiresIn: 3599, refreshToken: null, scope: null };
  const [lost, ok] = await Promise.allSettled([store.recordRefresh(L1, rec), store.recordRefresh(L2, rec)]);
  assert.equal(lost.status, "rejected");
  assert.ok(lost.status === "rejected" && lost.reason instanceof LeaseLostError);
  assert.deepEqual(ok, { status: "fulfilled", value: "succeeded" });
});

Deno.test("token_store: a group refused as a whole is retried one operation at a time", async () => {
  const { sql, queries } = fakeSql((q) => {
    const refreshes = q.values[0] as { task_id: number }[];
    if (refreshes.some((r) => r.task_id === 1)) {
      return postgresError("22023", "record_token_refreshes: refresh 1 (task 1): expires_in must be positive");
    }
    return [{ answer: { refreshes: refreshes.map((r) => ({ task_id: r.task_id, state: "succeeded" })), failures: [], claimed: [] } }];
  });
  const store = createPgTokenStore(sql);
  const [bad, good] = await Promise.allSettled([
    store.recordRefresh(L1, { accessToken: "ya29.a", expiresIn: -1, refreshToken: null, scope: null }),
    store.recordRefresh(L2, { accessToken: "ya29.b", expiresIn: 3599, refreshToken: null, scope: null }),
  ]);
  assert.equal(queries.length, 3, "the group, then each operation alone");
  assert.ok(bad.status === "rejected" && (bad.reason as { code?: string }).code === "22023");
  assert.ok(!isLeaseLost(bad.status === "rejected" ? bad.reason : null));
  assert.deepEqual(good, { status: "fulfilled", value: "succeeded" });
});

Deno.test("token_store: release calls jobs.release with both arrays", async () => {
  const { sql, queries } = fakeSql(() => [{ released: 2 }]);
  const store = createPgTokenStore(sql);
  assert.equal(await store.release([L1, L2], "GOOGLE_CLIENT_SECRET is not set"), 2);
  assert.equal(queries[0].text, "select jobs.release($1::bigint[], $2::uuid[], $3::text) as released");
  assert.deepEqual(queries[0].values, [[1, 2], [L1.leaseToken, L2.leaseToken], "GOOGLE_CLIENT_SECRET is not set"]);
});

Deno.test("token_store: SQLSTATE DWL01 becomes LeaseLostError; other errors pass through", async () => {
  const lost = createPgTokenStore(fakeSql(() => postgresError("DWL01", "lease lost")).sql);
  await assert.rejects(lost.release([L1], "r"), LeaseLostError);
  await assert.rejects(lost.leasedCredentials([L1]), LeaseLostError);

  const broken = createPgTokenStore(fakeSql(() => postgresError("08006", "connection failure")).sql);
  await assert.rejects(broken.leasedCredentials([L1]), (err) => {
    assert.ok(!(err instanceof LeaseLostError));
    assert.equal(isLeaseLost(err), false);
    return true;
  });
});
