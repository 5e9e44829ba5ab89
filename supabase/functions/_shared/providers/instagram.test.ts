import assert from "node:assert/strict";
import { envFrom } from "../env.ts";
import { type FakeAnswer, startFakeHttp } from "../testing/fake_http.ts";
import {
  createInstagramTokenClient,
  fetchMediaUrls,
  instagramProvider,
  interpretInstagramRefreshResponse,
  interpretMediaResponse,
  parseSignedUrlExpiry,
} from "./instagram.ts";

const NOW = Date.parse("2026-11-23T12:00:00Z");
const TOKEN = "IGAAsecret-long-lived-token-1234567890";
const http = (status: number, body: unknown, headers: Record<string, string> = {}) => ({
  status,
  headers: new Headers(headers),
  text: typeof body === "string" ? body : JSON.stringify(body),
});
const graphErr = (code: number, subcode?: number, extra: Record<string, unknown> = {}) => ({
  error: { message: `msg ${code}`, type: "OAuthException", code, error_subcode: subcode, fbtrace_id: "Axyz", ...extra },
});
const refreshAnswer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  interpretInstagramRefreshResponse(http(status, body, headers), NOW);
const mediaAnswer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  interpretMediaResponse(http(status, body, headers), NOW);

async function withFake(
  respond: (req: { path: string; query: URLSearchParams }) => FakeAnswer,
  fn: (url: string, fake: ReturnType<typeof startFakeHttp>) => Promise<void>,
) {
  const fake = startFakeHttp(respond);
  try {
    await fn(fake.url, fake);
  } finally {
    await fake.close();
  }
}

Deno.test("instagram refresh: 200 → refreshed with the new access token and no refresh token", () => {
  assert.deepEqual(refreshAnswer(200, { access_token: "IGAAnew", token_type: "bearer", expires_in: 5183944 }), {
    kind: "refreshed",
    accessToken: "IGAAnew",
    expiresIn: 5183944,
    refreshToken: null,
    scope: null,
    refreshExpiresIn: null,
  });
  const bad = refreshAnswer(200, { token_type: "bearer" });
  assert.equal(bad.kind === "failed" && !bad.permanent, true);
});

Deno.test("instagram refresh: 190 (any subcode) → permanent needsReauth; throttles and 5xx → transient", () => {
  for (const sub of [463, 460, 458, undefined]) {
    const r = refreshAnswer(400, graphErr(190, sub));
    assert.equal(r.kind, "failed");
    assert.equal(r.kind === "failed" && r.permanent && r.needsReauth, true, `subcode ${sub}`);
  }
  assert.deepEqual(refreshAnswer(400, graphErr(190, 463)), {
    kind: "failed",
    error: "HTTP 400: Graph error 190/463 (OAuthException): msg 190",
    permanent: true,
    needsReauth: true,
    retryAfterSeconds: null,
  });
  for (const [code, status] of [[4, 400], [17, 400], [613, 400], [80002, 403]]) {
    const r = refreshAnswer(status, graphErr(code));
    assert.equal(r.kind === "failed" && !r.permanent && !r.needsReauth, true, `code ${code}`);
  }
  // Wait derived from X-Business-Use-Case-Usage (minutes) or Retry-After.
  const buc = refreshAnswer(400, graphErr(80002), {
    "x-business-use-case-usage": JSON.stringify({ "178": [{ type: "instagram", estimated_time_to_regain_access: 7 }] }),
  });
  assert.equal(buc.kind === "failed" && buc.retryAfterSeconds, 420);
  const app = refreshAnswer(400, graphErr(4), { "x-app-usage": '{"call_count":100}' });
  assert.equal(app.kind === "failed" && app.retryAfterSeconds, null);
  const down = refreshAnswer(502, "<html>bad gateway</html>", { "retry-after": "9" });
  assert.deepEqual(down, { kind: "failed", error: "HTTP 502", permanent: false, needsReauth: false, retryAfterSeconds: 9 });
  const transientCode = refreshAnswer(400, graphErr(2, undefined, { is_transient: true }));
  assert.equal(transientCode.kind === "failed" && transientCode.permanent, false);
  // A plain 401 without a Graph body also means the token is unusable.
  const unauthorized = refreshAnswer(401, "");
  assert.equal(unauthorized.kind === "failed" && unauthorized.needsReauth, true);
  // Other request errors: permanent, not the user's fault.
  const other = refreshAnswer(400, graphErr(100));
  assert.equal(other.kind === "failed" && other.permanent && !other.needsReauth, true);
});

Deno.test("instagram refresh: GETs {base}/refresh_access_token with the token; provider needs no secrets", async () => {
  await withFake(() => ({ status: 200, body: { access_token: "IGAAfresh", token_type: "bearer", expires_in: 5184000 } }), async (url, fake) => {
    const setup = instagramProvider({ env: envFrom({ INSTAGRAM_GRAPH_BASE_URL: `${url}/` }), fetch, timeoutMs: 2000, now: Date.now });
    assert.ok(setup.ok);
    assert.deepEqual(setup.secrets, []);
    const result = await setup.refresher.refresh(TOKEN);
    assert.equal(result.kind === "refreshed" && result.accessToken, "IGAAfresh");
    assert.equal(fake.requests.length, 1);
    const req = fake.requests[0];
    assert.equal(req.method, "GET");
    assert.equal(req.path, "/refresh_access_token");
    assert.deepEqual(Object.fromEntries(req.query), { grant_type: "ig_refresh_token", access_token: TOKEN });
  });
});

Deno.test("instagram refresh: timeouts and network errors are transient and never contain the token", async () => {
  await withFake(() => "hang", async (url) => {
    const r = await createInstagramTokenClient({ baseUrl: url, timeoutMs: 100 }).refresh(TOKEN);
    assert.deepEqual(r, {
      kind: "failed",
      error: "timeout: Instagram did not answer within 100 ms",
      permanent: false,
      needsReauth: false,
      retryAfterSeconds: null,
    });
  });
  // A closed port: Deno's error message names the URL, which carries the token.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const r = await createInstagramTokenClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2000 }).refresh(TOKEN);
  assert.equal(r.kind === "failed" && !r.permanent, true);
  assert.match(r.kind === "failed" ? r.error : "", /^network error: /);
  assert.equal(JSON.stringify(r).includes(TOKEN), false);
});

Deno.test("parseSignedUrlExpiry reads oe= as hex unix seconds", () => {
  assert.deepEqual(
    parseSignedUrlExpiry("https://scontent-xx.cdninstagram.com/v/a.mp4?_nc_ht=x&oh=00_abc&oe=65A1B2C3"),
    new Date(0x65a1b2c3 * 1000),
  );
  assert.deepEqual(parseSignedUrlExpiry("https://x/y.jpg?oe=6a0b1c2d"), new Date(0x6a0b1c2d * 1000));
  assert.equal(parseSignedUrlExpiry("https://x/y.jpg?oh=1"), null);
  assert.equal(parseSignedUrlExpiry("https://x/y.jpg?oe=zzz"), null);
  assert.equal(parseSignedUrlExpiry("not a url"), null);
});

Deno.test("instagram media: ok mapping takes the earliest oe and tolerates a missing media_url", () => {
  const media = "https://cdn/v/1_n.mp4?oh=00_a&oe=6A000010";
  const thumb = "https://cdn/v/1_thumb.jpg?oh=00_b&oe=6A000005";
  assert.deepEqual(mediaAnswer(200, { id: "1", media_type: "VIDEO", media_url: media, thumbnail_url: thumb }), {
    kind: "ok",
    media_url: media,
    thumbnail_url: thumb,
    media_type: "VIDEO",
    expiresAt: new Date(0x6a000005 * 1000),
  });
  assert.deepEqual(mediaAnswer(200, { id: "1", media_type: "VIDEO", thumbnail_url: thumb }), {
    kind: "ok",
    media_url: null,
    thumbnail_url: thumb,
    media_type: "VIDEO",
    expiresAt: new Date(0x6a000005 * 1000),
  });
  assert.deepEqual(mediaAnswer(200, { id: "1", media_url: "https://cdn/x.jpg" }), {
    kind: "ok",
    media_url: "https://cdn/x.jpg",
    thumbnail_url: null,
    media_type: null,
    expiresAt: null,
  });
  assert.equal(mediaAnswer(200, "not json").kind, "transient");
});

Deno.test("instagram media: error mapping", () => {
  const notFound = mediaAnswer(400, { error: { message: "Unsupported get request.", type: "IGApiException", code: 100, error_subcode: 33 } });
  assert.deepEqual(notFound, { kind: "not_found", error: "HTTP 400: Graph error 100/33 (IGApiException): Unsupported get request." });
  assert.deepEqual(mediaAnswer(400, graphErr(190, 463)), {
    kind: "token_invalid",
    error: "HTTP 400: Graph error 190/463 (OAuthException): msg 190",
    code: 190,
    subcode: 463,
  });
  assert.deepEqual(mediaAnswer(403, ""), { kind: "token_invalid", error: "HTTP 403", code: null, subcode: null });
  assert.deepEqual(mediaAnswer(403, graphErr(80002), {
    "x-business-use-case-usage": JSON.stringify({ "1": [{ estimated_time_to_regain_access: 2 }] }),
  }), { kind: "rate_limited", error: "HTTP 403: Graph error 80002 (OAuthException): msg 80002", code: 80002, retryAfterSeconds: 120 });
  for (const code of [4, 17, 613]) assert.equal(mediaAnswer(400, graphErr(code)).kind, "rate_limited");
  assert.deepEqual(mediaAnswer(503, graphErr(2), { "retry-after": "3" }), {
    kind: "transient",
    error: "HTTP 503: Graph error 2 (OAuthException): msg 2",
    retryAfterSeconds: 3,
  });
  assert.deepEqual(mediaAnswer(400, graphErr(100)), { kind: "rejected", error: "HTTP 400: Graph error 100 (OAuthException): msg 100", code: 100 });
});

Deno.test("instagram media: GETs /{version}/{id} with fields and token; refuses ids that would change the path", async () => {
  const url = "https://scontent.cdninstagram.com/v/7_n.mp4?oh=00_a&oe=6A000000";
  await withFake(() => ({ status: 200, body: { id: "17900000000001001", media_type: "VIDEO", media_url: url } }), async (base, fake) => {
    const r = await fetchMediaUrls(TOKEN, "17900000000001001", "v22.0", { baseUrl: base });
    assert.equal(r.kind, "ok");
    assert.equal(r.kind === "ok" && r.expiresAt?.getTime(), 0x6a000000 * 1000);
    const req = fake.requests[0];
    assert.equal(req.path, "/v22.0/17900000000001001");
    assert.equal(req.query.get("fields"), "id,media_type,media_url,thumbnail_url");
    assert.equal(req.query.get("access_token"), TOKEN);

    assert.equal((await fetchMediaUrls(TOKEN, "../me", "v22.0", { baseUrl: base })).kind, "rejected");
    assert.equal((await fetchMediaUrls(TOKEN, "1", "latest", { baseUrl: base })).kind, "rejected");
    assert.equal(fake.requests.length, 1);
  });
  await withFake(() => "hang", async (base) => {
    const r = await fetchMediaUrls(TOKEN, "1", "v22.0", { baseUrl: base, timeoutMs: 100 });
    assert.deepEqual(r, { kind: "transient", error: "timeout: Instagram did not answer within 100 ms", retryAfterSeconds: null });
  });
});
