import assert from "node:assert/strict";
import { envFrom } from "../env.ts";
import { startFakeHttp } from "../testing/fake_http.ts";
import { createTikTokClient, interpretTikTokTokenResponse, tiktokProvider } from "./tiktok.ts";

const NOW = Date.parse("2026-11-23T12:00:00Z");
const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  interpretTikTokTokenResponse(
    { status, headers: new Headers(headers), text: typeof body === "string" ? body : JSON.stringify(body) },
    NOW,
  );
const SUCCESS = {
  access_token: "act.new",
  expires_in: 7200,
  open_id: "open-1",
  refresh_expires_in: 15551000,
  refresh_token: "rft.rotated",
  scope: "user.info.basic,video.list",
  token_type: "Bearer",
};

Deno.test("tiktok: 200 → refreshed with the rotated refresh token and its remaining lifetime", () => {
  assert.deepEqual(answer(200, SUCCESS), {
    kind: "refreshed",
    accessToken: "act.new",
    expiresIn: 7200,
    refreshToken: "rft.rotated",
    scope: "user.info.basic,video.list",
    refreshExpiresIn: 15551000,
  });
  // Success is decided by the body: an error field on a 200 is still an error.
  const errorOn200 = answer(200, { error: "invalid_grant", error_description: "Refresh token is invalid or expired.", log_id: "L1" });
  assert.deepEqual(errorOn200, {
    kind: "failed",
    error: "invalid_grant: Refresh token is invalid or expired. (log_id L1)",
    permanent: true,
    needsReauth: true,
    retryAfterSeconds: null,
  });
  const noExpiry = answer(200, { ...SUCCESS, expires_in: undefined });
  assert.equal(noExpiry.kind === "failed" && !noExpiry.permanent, true);
  const noRefreshLifetime = answer(200, { ...SUCCESS, refresh_expires_in: undefined });
  assert.equal(noRefreshLifetime.kind === "refreshed" && noRefreshLifetime.refreshExpiresIn, null);
});

Deno.test("tiktok: error mapping", () => {
  assert.deepEqual(answer(401, { error: "invalid_client", error_description: "Client key or secret is incorrect.", log_id: "L2" }), {
    kind: "misconfigured",
    error: "TikTok rejected the app credentials (invalid_client: Client key or secret is incorrect. (log_id L2)); " +
      "check the TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET function secrets",
  });
  assert.deepEqual(answer(429, { error: "rate_limit_exceeded", log_id: "L3" }, { "retry-after": "30" }), {
    kind: "failed",
    error: "HTTP 429: rate_limit_exceeded (log_id L3)",
    permanent: false,
    needsReauth: false,
    retryAfterSeconds: 30,
  });
  // TikTok API v2 envelope for throttling.
  const nested = answer(429, { error: { code: "rate_limit_exceeded", message: "Slow down", log_id: "L4" } });
  assert.equal(nested.kind === "failed" && !nested.permanent, true);
  assert.equal(nested.kind === "failed" && nested.error, "HTTP 429: rate_limit_exceeded: Slow down");
  for (const status of [500, 502, 503]) {
    const r = answer(status, "<html>oops</html>");
    assert.equal(r.kind === "failed" && !r.permanent, true, `HTTP ${status}`);
  }
  const busy = answer(400, { error: "temporarily_unavailable" });
  assert.equal(busy.kind === "failed" && !busy.permanent, true);
  const malformed = answer(400, { error: "invalid_request", error_description: "The request parameters are malformed." });
  assert.deepEqual(malformed, {
    kind: "failed",
    error: "HTTP 400: invalid_request: The request parameters are malformed.",
    permanent: true,
    needsReauth: false,
    retryAfterSeconds: null,
  });
});

Deno.test("tiktok: provider setup names the missing secrets", () => {
  const ctx = (env: Record<string, string>) => ({ env: envFrom(env), fetch, timeoutMs: 10_000, now: Date.now });
  assert.deepEqual(tiktokProvider(ctx({})), {
    ok: false,
    configError:
      "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET are not set (supabase secrets set TIKTOK_CLIENT_KEY=… TIKTOK_CLIENT_SECRET=…)",
  });
  assert.deepEqual(tiktokProvider(ctx({ TIKTOK_CLIENT_KEY: "k" })), {
    ok: false,
    configError: "TIKTOK_CLIENT_SECRET is not set (supabase secrets set TIKTOK_CLIENT_SECRET=…)",
  });
  const ok = tiktokProvider(ctx({ TIKTOK_CLIENT_KEY: "k", TIKTOK_CLIENT_SECRET: "tt-secret" }));
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.ok && ok.secrets, ["tt-secret"]);
});

Deno.test("tiktok: client POSTs the form to TIKTOK_BASE_URL/v2/oauth/token/", async () => {
  const fake = startFakeHttp(() => ({ status: 200, body: SUCCESS }));
  try {
    const setup = tiktokProvider({
      env: envFrom({ TIKTOK_CLIENT_KEY: "ck", TIKTOK_CLIENT_SECRET: "cs", TIKTOK_BASE_URL: `${fake.url}/` }),
      fetch,
      timeoutMs: 2000,
      now: Date.now,
    });
    assert.ok(setup.ok);
    const result = await setup.refresher.refresh("rft.old");
    assert.equal(result.kind === "refreshed" && result.refreshToken, "rft.rotated");
    const req = fake.requests[0];
    assert.equal(req.method, "POST");
    assert.equal(req.path, "/v2/oauth/token/");
    assert.equal(req.headers.get("content-type"), "application/x-www-form-urlencoded");
    assert.deepEqual(Object.fromEntries(new URLSearchParams(req.body)), {
      client_key: "ck",
      client_secret: "cs",
      grant_type: "refresh_token",
      refresh_token: "rft.old",
    });
  } finally {
    await fake.close();
  }
});

Deno.test("tiktok: a timeout is transient", async () => {
  const fake = startFakeHttp(() => "hang");
  try {
    const r = await createTikTokClient({ clientKey: "k", clientSecret: "s", baseUrl: fake.url, timeoutMs: 100 }).refresh("rft.x");
    assert.deepEqual(r, {
      kind: "failed",
      error: "timeout: TikTok did not answer within 100 ms",
      permanent: false,
      needsReauth: false,
      retryAfterSeconds: null,
    });
  } finally {
    await fake.close();
  }
});
