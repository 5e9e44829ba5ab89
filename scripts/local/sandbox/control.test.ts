// Control API: request log (redaction, filters, clearing, cap), faults
// (status, body, Retry-After, times, delay without blocking, validation),
// reset, health and 404s.

import assert from "node:assert/strict";
import { call, postJson, refresh, refreshParams, withSandbox } from "./test_util.ts";

Deno.test("control: health and unknown paths", async () => {
  await withSandbox(async (sb) => {
    assert.deepEqual((await call(`${sb.controlUrl}/__health`)).body, { ok: true });
    const unknown = await call(`${sb.controlUrl}/__nope`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error, "not_found");
    assert.equal((await call(`${sb.controlUrl}/__state/myspace`)).status, 404);
    assert.equal((await call(`${sb.controlUrl}/__reset`)).status, 405);
  });
});

Deno.test("control: request log records parsed bodies with secrets redacted", async () => {
  await withSandbox(async (sb) => {
    const token = await refresh(sb, refreshParams("1//demo-refresh-youtube-1"), {
      authorization: "Bearer should-not-leak",
      cookie: "sid=should-not-leak",
      "x-request-id": "abc",
    });
    assert.equal(token.status, 200);
    await call(`${sb.providers.google_oauth}/revoke?token=secret-in-query&keep=1`, {
      method: "POST",
    });
    await postJson(`${sb.providers.twilio}/2010-04-01/Accounts/AC1/Messages.json`, {
      To: "+15550001",
      nested: { password: "pw", ok: true },
    });
    await call(`${sb.providers.resend}/emails`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello raw",
    });

    const all = (await call(`${sb.controlUrl}/__requests`)).body.requests;
    assert.equal(all.length, 4);
    const [t, r, tw, rs] = all;

    assert.equal(t.provider, "google_oauth");
    assert.equal(t.method, "POST");
    assert.equal(t.path, "/token");
    assert.equal(t.status, 200);
    assert.match(t.id, /^req_\d+$/);
    assert.ok(!Number.isNaN(Date.parse(t.time)));
    assert.equal(typeof t.duration_ms, "number");
    assert.equal(t.headers.authorization, "[redacted]");
    assert.equal(t.headers.cookie, "[redacted]");
    assert.equal(t.headers["x-request-id"], "abc");
    assert.match(t.headers["content-type"], /x-www-form-urlencoded/);
    assert.deepEqual(t.body, {
      refresh_token: "[redacted]",
      client_id: "duework-local-client.apps.googleusercontent.com",
      client_secret: "[redacted]",
      grant_type: "refresh_token",
    });
    assert.equal(JSON.stringify(all).includes("should-not-leak"), false);
    assert.equal(JSON.stringify(all).includes("duework-local-secret"), false);
    assert.equal(JSON.stringify(all).includes("demo-refresh-youtube-1"), false);

    assert.deepEqual(r.query, { token: "[redacted]", keep: "1" });
    assert.equal(r.status, 400);

    assert.equal(tw.provider, "twilio");
    assert.equal(tw.status, 401); // no credentials
    assert.deepEqual(tw.body, { To: "+15550001", nested: { password: "[redacted]", ok: true } });
    assert.equal(rs.body, "hello raw");

    // Filters.
    const google = (await call(`${sb.controlUrl}/__requests?provider=google_oauth`)).body.requests;
    assert.deepEqual(google.map((e: { path: string }) => e.path), ["/token", "/revoke"]);
    const tokenOnly =
      (await call(`${sb.controlUrl}/__requests?provider=google_oauth&path=/token`)).body.requests;
    assert.equal(tokenOnly.length, 1);
    assert.equal(tokenOnly[0].id, t.id);
    const last = (await call(`${sb.controlUrl}/__requests?limit=1`)).body.requests;
    assert.deepEqual(last.map((e: { id: string }) => e.id), [rs.id]);

    // Clearing.
    const cleared = await call(`${sb.controlUrl}/__requests`, { method: "DELETE" });
    assert.deepEqual(cleared.body, { cleared: 4 });
    assert.deepEqual((await call(`${sb.controlUrl}/__requests`)).body, { requests: [] });
  });
});

Deno.test("control: request log is capped, keeping the newest entries", async () => {
  await withSandbox(async (sb) => {
    for (let i = 0; i < 5; i++) await call(`${sb.providers.stripe}/v1/x${i}`);
    const paths = (await call(`${sb.controlUrl}/__requests`)).body.requests.map((
      e: { path: string },
    ) => e.path);
    assert.deepEqual(paths, ["/v1/x2", "/v1/x3", "/v1/x4"]);
  }, { maxRequests: 3 });
});

Deno.test("control: fault with status, Retry-After and times is applied then exhausted", async () => {
  await withSandbox(async (sb) => {
    const created = await postJson(`${sb.controlUrl}/__faults`, {
      provider: "google_oauth",
      method: "post",
      path: "/token",
      status: 503,
      retry_after: 7,
      times: 2,
    });
    assert.equal(created.status, 201);
    assert.match(created.body.fault.id, /^fault_\d+$/);
    assert.equal(created.body.fault.times, 2);

    // A different path of the same provider is not affected.
    const other = await call(`${sb.providers.google_oauth}/tokeninfo?access_token=x`);
    assert.equal(other.status, 400);

    for (let i = 0; i < 2; i++) {
      const res = await refresh(sb, refreshParams("1//demo-refresh-youtube-1"));
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "7");
      assert.equal(res.body.error, "internal_failure"); // Google-style default body
      if (i === 0) {
        const listed = (await call(`${sb.controlUrl}/__faults`)).body.faults;
        assert.equal(listed.length, 1);
        assert.equal(listed[0].times, 1);
      }
    }
    const third = await refresh(sb, refreshParams("1//demo-refresh-youtube-1"));
    assert.equal(third.status, 200);
    assert.equal(third.headers.get("retry-after"), null);
    assert.deepEqual((await call(`${sb.controlUrl}/__faults`)).body, { faults: [] });

    // Faulted requests are recorded with the fault's status and id.
    const log = (await call(`${sb.controlUrl}/__requests?path=/token`)).body.requests;
    assert.deepEqual(log.map((e: { status: number }) => e.status), [503, 503, 200]);
    assert.equal(log[0].fault_id, created.body.fault.id);
    assert.equal(log[2].fault_id, undefined);
  });
});

Deno.test("control: custom fault body, method matching, first match wins, DELETE clears", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__faults`, {
      provider: "google_oauth",
      method: "GET",
      status: 500,
    });
    await postJson(`${sb.controlUrl}/__faults`, {
      provider: "google_oauth",
      status: 429,
      body: { error: "rate_limit_exceeded", custom: true },
    });
    await postJson(`${sb.controlUrl}/__faults`, { provider: "google_oauth", status: 418 });

    const get = await call(`${sb.providers.google_oauth}/tokeninfo`);
    assert.equal(get.status, 500); // first matching fault (GET only)
    const post = await refresh(sb, refreshParams("1//demo-refresh-youtube-1"));
    assert.equal(post.status, 429); // GET-only fault skipped, next one wins
    assert.deepEqual(post.body, { error: "rate_limit_exceeded", custom: true });

    // Faults are per provider.
    assert.equal((await call(`${sb.providers.stripe}/v1/x`)).status, 501);

    const cleared = await call(`${sb.controlUrl}/__faults`, { method: "DELETE" });
    assert.deepEqual(cleared.body, { cleared: 3 });
    assert.equal((await refresh(sb, refreshParams("1//demo-refresh-youtube-1"))).status, 200);
  });
});

Deno.test("control: a delayed fault does not block parallel requests", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__faults`, {
      provider: "google_oauth",
      path: "/token",
      status: 504,
      delay_ms: 1500,
      times: 1,
    });
    const t0 = performance.now();
    const slow = refresh(sb, refreshParams("1//demo-refresh-youtube-1")).then((r) => ({
      r,
      ms: performance.now() - t0,
    }));
    await new Promise((r) => setTimeout(r, 50)); // let the slow one take the fault first
    // Same path, same provider: the fault is used up, so this one is answered at once.
    const fast = await refresh(sb, refreshParams("1//demo-refresh-youtube-2"));
    const fastMs = performance.now() - t0;
    assert.equal(fast.status, 200);
    assert.ok(fastMs < 1000, `parallel request took ${fastMs} ms`);

    const { r, ms } = await slow;
    assert.equal(r.status, 504);
    assert.ok(ms >= 1400, `delayed request answered after ${ms} ms`);
    const log = (await call(`${sb.controlUrl}/__requests`)).body.requests;
    const delayed = log.find((e: { status: number }) => e.status === 504);
    assert.ok(delayed.duration_ms >= 1400);
  });
});

Deno.test("control: close() cuts a pending delayed fault short", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__faults`, {
      provider: "tiktok",
      status: 500,
      delay_ms: 600_000,
    });
    const pending = call(`${sb.providers.tiktok}/v2/oauth/token/`, { method: "POST" });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await sb.close();
    const res = await pending;
    assert.equal(res.status, 500);
    assert.ok(performance.now() - t0 < 5000);
  });
});

Deno.test("control: POST /__faults validation names the bad field", async () => {
  await withSandbox(async (sb) => {
    const cases: [unknown, string | null][] = [
      [{ provider: "google_oauth" }, "status"],
      [{ provider: "google_oauth", status: 700 }, "status"],
      [{ provider: "google_oauth", status: 99 }, "status"],
      [{ provider: "google_oauth", status: "500" }, "status"],
      [{ status: 500 }, "provider"],
      [{ provider: "myspace", status: 500 }, "provider"],
      [{ provider: "google_oauth", status: 500, times: 0 }, "times"],
      [{ provider: "google_oauth", status: 500, delay_ms: -1 }, "delay_ms"],
      [{ provider: "google_oauth", status: 500, retry_after: 1.5 }, "retry_after"],
      [{ provider: "google_oauth", status: 500, path: "token" }, "path"],
      [{ provider: "google_oauth", status: 500, retryAfter: 3 }, "retryAfter"],
      [[1, 2], null],
    ];
    for (const [input, field] of cases) {
      const res = await postJson(`${sb.controlUrl}/__faults`, input);
      assert.equal(res.status, 400, JSON.stringify(input));
      assert.equal(res.body.error, "invalid_request");
      assert.equal(res.body.field, field, JSON.stringify(input));
      assert.equal(typeof res.body.message, "string");
    }
    const notJson = await call(`${sb.controlUrl}/__faults`, { method: "POST", body: "{" });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.field, null);
    assert.deepEqual((await call(`${sb.controlUrl}/__faults`)).body, { faults: [] });
  });
});

Deno.test("control: POST /__reset restores fixture state and clears log and faults", async () => {
  await withSandbox(async (sb) => {
    await call(`${sb.providers.google_oauth}/revoke?token=1//demo-refresh-youtube-1`, {
      method: "POST",
    });
    assert.equal((await refresh(sb, refreshParams("1//demo-refresh-youtube-1"))).status, 400);
    await postJson(`${sb.controlUrl}/__faults`, { provider: "stripe", status: 500 });

    const reset = await call(`${sb.controlUrl}/__reset`, { method: "POST" });
    assert.deepEqual(reset.body, { reset: true });
    assert.deepEqual((await call(`${sb.controlUrl}/__requests`)).body, { requests: [] });
    assert.deepEqual((await call(`${sb.controlUrl}/__faults`)).body, { faults: [] });

    const state = (await call(`${sb.controlUrl}/__state/google_oauth`)).body;
    assert.equal(state.provider, "google_oauth");
    const t1 = state.state.refresh_tokens.find((t: { refresh_token: string }) =>
      t.refresh_token === "1//demo-refresh-youtube-1"
    );
    assert.equal(t1.status, "active");
    assert.deepEqual(state.state.access_tokens, []);
    assert.equal((await refresh(sb, refreshParams("1//demo-refresh-youtube-1"))).status, 200);
  });
});

Deno.test("control: reset with a broken fixture file keeps the running state", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/fixtures.json`;
  await Deno.copyFile(new URL("./fixtures.json", import.meta.url), path);
  try {
    await withSandbox(async (sb) => {
      await Deno.writeTextFile(path, JSON.stringify({ google_oauth: { clients: "nope" } }));
      const res = await call(`${sb.controlUrl}/__reset`, { method: "POST" });
      assert.equal(res.status, 500);
      assert.equal(res.body.error, "fixture_error");
      assert.match(res.body.message, /google_oauth/);
      assert.equal((await refresh(sb, refreshParams("1//demo-refresh-youtube-1"))).status, 200);
    }, { fixturesPath: path });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("control: rate, reset and after faults", async () => {
  await withSandbox(async (sb) => {
    // status is needed unless the fault cuts the connection.
    const bad = await postJson(`${sb.controlUrl}/__faults`, { provider: "google_oauth", rate: 0.5 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, "status");
    const badRate = await postJson(`${sb.controlUrl}/__faults`, { provider: "google_oauth", status: 500, rate: 0 });
    assert.equal(badRate.body.field, "rate");

    // after + reset: the fake handles the request (a refresh rotates nothing for Google, so look at
    // the log), then the client's body read fails.
    await postJson(`${sb.controlUrl}/__faults`, { provider: "google_oauth", path: "/token", reset: true, after: true, times: 1 });
    const res = await fetch(`${sb.providers.google_oauth}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(refreshParams("1//demo-refresh-youtube-1")).toString(),
    });
    await assert.rejects(res.text());
    const [entry] = (await call(`${sb.controlUrl}/__requests?path=/token`)).body.requests;
    assert.equal(entry.status, 0);
    assert.equal(entry.fault_after, true);

    // rate: about that fraction of matching requests is struck.
    await postJson(`${sb.controlUrl}/__faults`, { provider: "google_oauth", path: "/token", status: 503, rate: 0.3 });
    let struck = 0;
    for (let i = 0; i < 200; i++) {
      if ((await refresh(sb, refreshParams("1//demo-refresh-youtube-1"))).status === 503) struck++;
    }
    assert.ok(struck > 20 && struck < 110, `struck ${struck} of 200 at rate 0.3`);
  });
});
