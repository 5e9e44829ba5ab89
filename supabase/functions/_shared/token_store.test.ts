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

Deno.test("token_store: recordRefresh / recordFailure / release call the SQL interface", async () => {
  const { sql, queries } = fakeSql((q) => {
    if (q.text.includes("record_token_refresh")) return [{ result: { ok: true } }];
    if (q.text.includes("record_token_failure")) return [{ state: "queued" }];
    return [{ released: 2 }];
  });
  const store = createPgTokenStore(sql);

  assert.deepEqual(
    await store.recordRefresh(L1, { accessToken: "ya29.a", expiresIn: 3599, refreshToken: null, scope: "s" }),
    { ok: true },
  );
  assert.equal(
    queries[0].text,
    "select social.record_token_refresh( $1::bigint, $2::uuid, $3::text, $4::int, $5::text, $6::text) as result",
  );
  assert.deepEqual(queries[0].values, [1, L1.leaseToken, "ya29.a", 3599, null, "s"]);

  assert.equal(
    await store.recordFailure(L2, { error: "HTTP 503", retryAfterSeconds: 30, permanent: false, needsReauth: false }),
    "queued",
  );
  assert.equal(
    queries[1].text,
    "select social.record_token_failure( $1::bigint, $2::uuid, $3::text, $4::int, $5::boolean, $6::boolean) as state",
  );
  assert.deepEqual(queries[1].values, [2, L2.leaseToken, "HTTP 503", 30, false, false]);

  assert.equal(await store.release([L1, L2], "GOOGLE_CLIENT_SECRET is not set"), 2);
  assert.equal(queries[2].text, "select jobs.release($1::bigint[], $2::uuid[], $3::text) as released");
  assert.deepEqual(queries[2].values, [[1, 2], [L1.leaseToken, L2.leaseToken], "GOOGLE_CLIENT_SECRET is not set"]);
});

Deno.test("token_store: SQLSTATE DWL01 becomes LeaseLostError; other errors pass through", async () => {
  const lost = createPgTokenStore(fakeSql(() => postgresError("DWL01", "lease lost")).sql);
  await assert.rejects(
    lost.recordFailure(L1, { error: "x", retryAfterSeconds: null, permanent: true, needsReauth: false }),
    LeaseLostError,
  );
  await assert.rejects(lost.release([L1], "r"), LeaseLostError);

  const broken = createPgTokenStore(fakeSql(() => postgresError("08006", "connection failure")).sql);
  await assert.rejects(broken.leasedCredentials([L1]), (err) => {
    assert.ok(!(err instanceof LeaseLostError));
    assert.equal(isLeaseLost(err), false);
    return true;
  });
});
