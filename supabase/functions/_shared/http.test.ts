import assert from "node:assert/strict";
import { fetchText, HttpNetworkError, HttpTimeoutError, parseJson, parseRetryAfter } from "./http.ts";

Deno.test("parseRetryAfter: delay-seconds", () => {
  assert.equal(parseRetryAfter("30"), 30);
  assert.equal(parseRetryAfter(" 0 "), 0);
  assert.equal(parseRetryAfter("99999999999"), 2_147_483_647);
});

Deno.test("parseRetryAfter: HTTP-date, relative to now; past dates are 0", () => {
  const now = Date.parse("2026-11-23T12:00:00Z");
  assert.equal(parseRetryAfter("Mon, 23 Nov 2026 12:01:30 GMT", now), 90);
  assert.equal(parseRetryAfter("Mon, 23 Nov 2026 11:00:00 GMT", now), 0);
});

Deno.test("parseRetryAfter: absent or garbage → null", () => {
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter(undefined), null);
  assert.equal(parseRetryAfter(""), null);
  assert.equal(parseRetryAfter("-5"), null);
  assert.equal(parseRetryAfter("1.5"), null);
  assert.equal(parseRetryAfter("soon"), null);
});

Deno.test("fetchText: reads status, headers and body", async () => {
  const fake: typeof fetch = () =>
    Promise.resolve(new Response("hello", { status: 418, headers: { "retry-after": "3" } }));
  const res = await fetchText(fake, "http://x/", {}, 1000);
  assert.equal(res.status, 418);
  assert.equal(res.text, "hello");
  assert.equal(res.headers.get("retry-after"), "3");
});

Deno.test("fetchText: a call that outlives the deadline → HttpTimeoutError", async () => {
  // Honours the abort signal like real fetch does.
  const hanging: typeof fetch = (_url, init) =>
    new Promise((_resolve, reject) => {
      init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
    });
  await assert.rejects(fetchText(hanging, "http://x/", {}, 50), (err) => {
    assert.ok(err instanceof HttpTimeoutError);
    assert.equal(err.timeoutMs, 50);
    return true;
  });
});

Deno.test("fetchText: a failing connection → HttpNetworkError", async () => {
  const refused: typeof fetch = () => Promise.reject(new TypeError("Connection refused"));
  await assert.rejects(fetchText(refused, "http://x/", {}, 1000), HttpNetworkError);
});

Deno.test("parseJson", () => {
  assert.deepEqual(parseJson('{"a":1}'), { a: 1 });
  assert.equal(parseJson("<html>"), undefined);
});
