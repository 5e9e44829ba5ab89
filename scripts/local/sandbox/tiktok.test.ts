// Fake TikTok token endpoint: rotation (old refresh token dies at once), chain counting,
// the OAuth error envelope, throttling, seeding and request-log redaction.

import assert from "node:assert/strict";
import { call, postJson, withSandbox } from "./test_util.ts";
import type { Sandbox } from "./server.ts";

const CLIENT_KEY = "duework-local-tiktok-key";
const CLIENT_SECRET = "duework-local-tiktok-secret";

function tiktokRefresh(sb: Sandbox, refreshToken: string, overrides: Record<string, string> = {}, path = "/v2/oauth/token/") {
  return call(`${sb.providers.tiktok}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "cache-control": "no-cache" },
    body: new URLSearchParams({
      client_key: CLIENT_KEY,
      client_secret: CLIENT_SECRET,
      grant_type: "refresh_token",
      refresh_token: refreshToken,
      ...overrides,
    }).toString(),
  });
}

// deno-lint-ignore no-explicit-any
async function tiktokState(sb: Sandbox): Promise<any> {
  return (await call(`${sb.controlUrl}/__state/tiktok`)).body.state;
}

function assertOAuthError(res: { status: number; body: Record<string, unknown> }, status: number, error: string) {
  assert.equal(res.status, status);
  assert.deepEqual(Object.keys(res.body).sort(), ["error", "error_description", "log_id"]);
  assert.equal(res.body.error, error);
  assert.match(res.body.log_id as string, /^\d{14}[0-9A-F]{18}$/);
}

Deno.test("tiktok: refresh returns the contract's body and rotates the refresh token", async () => {
  await withSandbox(async (sb) => {
    const first = await tiktokRefresh(sb, "rft.demo-tiktok-1");
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.body).sort(), [
      "access_token",
      "expires_in",
      "open_id",
      "refresh_expires_in",
      "refresh_token",
      "scope",
      "token_type",
    ]);
    assert.match(first.body.access_token, /^act\.[0-9a-f]{40,}$/);
    assert.equal(first.body.expires_in, 7200);
    assert.equal(first.body.open_id, "demo-open-id-tiktok-1");
    assert.equal(first.body.scope, "user.info.basic,video.list");
    assert.equal(first.body.token_type, "Bearer");
    assert.match(first.body.refresh_token, /^rft\./);
    assert.notEqual(first.body.refresh_token, "rft.demo-tiktok-1");
    // The rotated token inherits the remaining lifetime (default): ≤ 180 days.
    assert.ok(first.body.refresh_expires_in <= 15_552_000 && first.body.refresh_expires_in > 15_552_000 - 10);

    // The old refresh token stops working at once; the new one works and rotates again.
    const reused = await tiktokRefresh(sb, "rft.demo-tiktok-1");
    assertOAuthError(reused, 400, "invalid_grant");
    const second = await tiktokRefresh(sb, first.body.refresh_token);
    assert.equal(second.status, 200);
    assert.notEqual(second.body.refresh_token, first.body.refresh_token);
    assertOAuthError(await tiktokRefresh(sb, first.body.refresh_token), 400, "invalid_grant");

    const state = await tiktokState(sb);
    const chain = state.chains.find((c: { chain_id: string }) => c.chain_id === "rft.demo-tiktok-1");
    assert.equal(chain.refresh_count, 2);
    assert.equal(chain.current_refresh_token, second.body.refresh_token);
    const original = state.refresh_tokens.find((t: { refresh_token: string }) => t.refresh_token === "rft.demo-tiktok-1");
    assert.equal(original.status, "rotated");
    assert.equal(original.replaced_by, first.body.refresh_token);
    assert.equal(state.access_tokens.length, 2);
  });
});

Deno.test("tiktok: concurrent refreshes with one token: exactly one wins", async () => {
  await withSandbox(async (sb) => {
    const results = await Promise.all([1, 2, 3].map(() => tiktokRefresh(sb, "rft.demo-tiktok-2")));
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 400, 400]);
    const state = await tiktokState(sb);
    assert.equal(state.chains.find((c: { chain_id: string }) => c.chain_id === "rft.demo-tiktok-2").refresh_count, 1);
  });
});

Deno.test("tiktok: revoked, expired, unknown and other-client tokens → invalid_grant", async () => {
  await withSandbox(async (sb) => {
    for (const token of ["rft.demo-tiktok-revoked", "rft.demo-tiktok-expired", "rft.nope", "rft.demo-tiktok-other-client"]) {
      assertOAuthError(await tiktokRefresh(sb, token), 400, "invalid_grant");
    }
    const state = await tiktokState(sb);
    assert.ok(state.chains.every((c: { refresh_count: number }) => c.refresh_count === 0));
  });
});

Deno.test("tiktok: bad client credentials → 401 invalid_client; malformed requests → invalid_request", async () => {
  await withSandbox(async (sb) => {
    assertOAuthError(await tiktokRefresh(sb, "rft.demo-tiktok-3", { client_secret: "wrong" }), 401, "invalid_client");
    assertOAuthError(await tiktokRefresh(sb, "rft.demo-tiktok-3", { client_key: "nope" }), 401, "invalid_client");
    assertOAuthError(await tiktokRefresh(sb, "rft.demo-tiktok-3", { grant_type: "password" }), 400, "unsupported_grant_type");
    assertOAuthError(await tiktokRefresh(sb, ""), 400, "invalid_request");
    const json = await postJson(`${sb.providers.tiktok}/v2/oauth/token/`, {
      client_key: CLIENT_KEY,
      client_secret: CLIENT_SECRET,
      grant_type: "refresh_token",
      refresh_token: "rft.demo-tiktok-3",
    });
    assertOAuthError(json, 400, "invalid_request");
    // No trailing slash: not the token endpoint.
    assertOAuthError(await tiktokRefresh(sb, "rft.demo-tiktok-3", {}, "/v2/oauth/token"), 404, "invalid_request");
    assertOAuthError(await call(`${sb.providers.tiktok}/v2/oauth/token/`), 405, "invalid_request");
    // None of that consumed the token.
    assert.equal((await tiktokRefresh(sb, "rft.demo-tiktok-3")).status, 200);
  });
});

Deno.test("tiktok: standing 429 with Retry-After, and /__faults bodies in the OAuth envelope", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__state/tiktok`, { rate_limit: { times: 1, retry_after: 30 } });
    const limited = await tiktokRefresh(sb, "rft.demo-tiktok-1");
    assertOAuthError(limited, 429, "rate_limit_exceeded");
    assert.equal(limited.headers.get("retry-after"), "30");

    await postJson(`${sb.controlUrl}/__faults`, { provider: "tiktok", status: 503, times: 1, retry_after: 5 });
    const down = await tiktokRefresh(sb, "rft.demo-tiktok-1");
    assertOAuthError(down, 503, "temporarily_unavailable");
    assert.equal(down.headers.get("retry-after"), "5");

    // Neither answer consumed the token.
    assert.equal((await tiktokRefresh(sb, "rft.demo-tiktok-1")).status, 200);
  });
});

Deno.test("tiktok: seeded tokens (bulk, custom lifetime) are honoured; secrets are redacted in the log", async () => {
  await withSandbox(async (sb) => {
    const tokens = Array.from({ length: 5_000 }, (_, i) => ({ refresh_token: `rft.load-${i}` }));
    tokens.push({ refresh_token: "rft.short", refresh_expires_in: 60 } as { refresh_token: string });
    const seeded = await postJson(`${sb.controlUrl}/__state/tiktok`, { refresh_tokens: tokens });
    assert.equal(seeded.status, 200);
    assert.equal(seeded.body.seeded.refresh_tokens, 5_001);

    const ok = await tiktokRefresh(sb, "rft.load-4999");
    assert.equal(ok.status, 200);
    assert.equal(ok.body.scope, "user.info.basic,video.list");
    const short = await tiktokRefresh(sb, "rft.short");
    assert.ok(short.body.refresh_expires_in <= 60 && short.body.refresh_expires_in >= 58);

    const bad = await postJson(`${sb.controlUrl}/__state/tiktok`, { refresh_tokens: [{ refresh_token: "x", client_key: "nope" }] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /^refresh_tokens\.0\.client_key: unknown client nope/);

    const log = (await call(`${sb.controlUrl}/__requests?provider=tiktok`)).body.requests;
    assert.equal(log.length, 2);
    assert.equal(log[0].body.client_key, CLIENT_KEY);
    assert.equal(log[0].body.client_secret, "[redacted]");
    assert.equal(log[0].body.refresh_token, "[redacted]");
    assert.equal(JSON.stringify(log).includes("rft.load-4999"), false);
  });
});
