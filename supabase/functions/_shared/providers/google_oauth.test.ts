import assert from "node:assert/strict";
import { envFrom } from "../env.ts";
import { googleOAuthProvider, interpretGoogleTokenResponse } from "./google_oauth.ts";

const NOW = Date.parse("2026-11-23T12:00:00Z");
const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  interpretGoogleTokenResponse(
    { status, headers: new Headers(headers), text: typeof body === "string" ? body : JSON.stringify(body) },
    NOW,
  );

Deno.test("google_oauth: 200 mapping", () => {
  assert.deepEqual(answer(200, { access_token: "ya29.a", expires_in: 3599, token_type: "Bearer" }), {
    kind: "refreshed",
    accessToken: "ya29.a",
    expiresIn: 3599,
    refreshToken: null,
    scope: null,
    refreshExpiresIn: null,
  });
  assert.deepEqual(answer(200, { access_token: "ya29.a", expires_in: 3920, refresh_token: "1//n", scope: "a b" }), {
    kind: "refreshed",
    accessToken: "ya29.a",
    expiresIn: 3920,
    refreshToken: "1//n",
    scope: "a b",
    refreshExpiresIn: null,
  });
  // Malformed success: retry later rather than store garbage.
  const bad = answer(200, { token_type: "Bearer" });
  assert.equal(bad.kind, "failed");
  assert.equal(bad.kind === "failed" && bad.permanent, false);
});

Deno.test("google_oauth: error mapping", () => {
  assert.deepEqual(answer(400, { error: "invalid_grant", error_description: "Account has been deleted" }), {
    kind: "failed",
    error: "invalid_grant: Account has been deleted",
    permanent: true,
    needsReauth: true,
    retryAfterSeconds: null,
  });
  const unauthorized = answer(400, { error: "unauthorized_client", error_description: "Unauthorized" });
  assert.equal(unauthorized.kind === "failed" && unauthorized.permanent && unauthorized.needsReauth, true);

  assert.equal(answer(401, { error: "invalid_client", error_description: "Unauthorized" }).kind, "misconfigured");
  assert.equal(answer(400, { error: "invalid_client" }).kind, "misconfigured");
  assert.equal(answer(401, "").kind, "misconfigured");

  assert.deepEqual(answer(429, { error: "rate_limit_exceeded" }, { "retry-after": "Mon, 23 Nov 2026 12:00:45 GMT" }), {
    kind: "failed",
    error: "HTTP 429: rate_limit_exceeded",
    permanent: false,
    needsReauth: false,
    retryAfterSeconds: 45,
  });
  const down = answer(502, "<html>bad gateway</html>", { "retry-after": "7" });
  assert.deepEqual(down, { kind: "failed", error: "HTTP 502", permanent: false, needsReauth: false, retryAfterSeconds: 7 });

  const other = answer(403, { error: "access_denied", error_description: "nope" });
  assert.deepEqual(other, {
    kind: "failed",
    error: "HTTP 403: access_denied: nope",
    permanent: true,
    needsReauth: false,
    retryAfterSeconds: null,
  });
});

Deno.test("google_oauth: provider setup names the missing secrets", () => {
  const ctx = (env: Record<string, string>) => ({ env: envFrom(env), fetch, timeoutMs: 10_000, now: Date.now });
  const none = googleOAuthProvider(ctx({}));
  assert.deepEqual(none, {
    ok: false,
    configError:
      "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET are not set (supabase secrets set GOOGLE_CLIENT_ID=… GOOGLE_CLIENT_SECRET=…)",
  });
  const noSecret = googleOAuthProvider(ctx({ GOOGLE_CLIENT_ID: "id", GOOGLE_CLIENT_SECRET: "  " }));
  assert.deepEqual(noSecret, {
    ok: false,
    configError: "GOOGLE_CLIENT_SECRET is not set (supabase secrets set GOOGLE_CLIENT_SECRET=…)",
  });
  const ok = googleOAuthProvider(ctx({ GOOGLE_CLIENT_ID: "id", GOOGLE_CLIENT_SECRET: "GOCSPX-s" }));
  assert.equal(ok.ok, true);
  assert.deepEqual(ok.ok && ok.secrets, ["GOCSPX-s"]);
});

Deno.test("google_oauth: client posts to GOOGLE_OAUTH_BASE_URL/token (trailing slash tolerated)", async () => {
  const seen: { url: string; body: string; contentType: string | null }[] = [];
  const fakeFetch: typeof fetch = async (input, init) => {
    const req = new Request(input, init);
    seen.push({ url: req.url, body: await req.text(), contentType: req.headers.get("content-type") });
    return Response.json({ access_token: "ya29.z", expires_in: 3599 });
  };
  const setup = googleOAuthProvider({
    env: envFrom({ GOOGLE_CLIENT_ID: "cid", GOOGLE_CLIENT_SECRET: "csecret", GOOGLE_OAUTH_BASE_URL: "http://fake:1/" }),
    fetch: fakeFetch,
    timeoutMs: 1000,
    now: Date.now,
  });
  assert.ok(setup.ok);
  const result = await setup.refresher.refresh("1//rt");
  assert.equal(result.kind, "refreshed");
  assert.equal(seen[0].url, "http://fake:1/token");
  assert.equal(seen[0].contentType, "application/x-www-form-urlencoded");
  assert.deepEqual(Object.fromEntries(new URLSearchParams(seen[0].body)), {
    client_id: "cid",
    client_secret: "csecret",
    grant_type: "refresh_token",
    refresh_token: "1//rt",
  });
});
