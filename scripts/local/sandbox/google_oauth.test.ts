// Fake Google OAuth token endpoint: every outcome a refresh can have, on the
// wire format google-auth-library and our own client rely on.

import assert from "node:assert/strict";
import {
  call,
  CLIENT_ID,
  CLIENT_SECRET,
  postJson,
  refresh,
  refreshParams,
  withSandbox,
} from "./test_util.ts";

const YT_SCOPE = "https://www.googleapis.com/auth/youtube.readonly";

Deno.test("google_oauth: refresh_token grant returns a Google-shaped access token", async () => {
  await withSandbox(async (sb) => {
    const res = await refresh(sb, refreshParams("1//demo-refresh-youtube-1"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(
      res.headers.get("cache-control"),
      "no-cache, no-store, max-age=0, must-revalidate",
    );
    assert.deepEqual(Object.keys(res.body).sort(), [
      "access_token",
      "expires_in",
      "scope",
      "token_type",
    ]);
    assert.match(res.body.access_token, /^ya29\.[A-Za-z0-9._-]{20,}$/);
    assert.equal(res.body.expires_in, 3599);
    assert.equal(res.body.scope, YT_SCOPE);
    assert.equal(res.body.token_type, "Bearer");
    assert.equal("refresh_token" in res.body, false); // Google keeps the old one valid

    // Each refresh mints a distinct token, remembered in state and live via tokeninfo.
    const again = await refresh(sb, refreshParams("1//demo-refresh-youtube-1"));
    assert.notEqual(again.body.access_token, res.body.access_token);
    const state = (await call(`${sb.controlUrl}/__state/google_oauth`)).body.state;
    const issued = state.access_tokens.map((a: { access_token: string }) => a.access_token);
    assert.deepEqual(issued, [res.body.access_token, again.body.access_token]);
    const rt = state.refresh_tokens.find((t: { refresh_token: string }) =>
      t.refresh_token === "1//demo-refresh-youtube-1"
    );
    assert.equal(rt.refresh_count, 2);

    const info = await call(
      `${sb.providers.google_oauth}/tokeninfo?access_token=${res.body.access_token}`,
    );
    assert.equal(info.status, 200);
    assert.equal(info.body.aud, CLIENT_ID);
    assert.equal(info.body.scope, YT_SCOPE);
  });
});

Deno.test("google_oauth: JSON body and HTTP Basic client auth are accepted too", async () => {
  await withSandbox(async (sb) => {
    const json = await postJson(
      `${sb.providers.google_oauth}/token`,
      refreshParams("1//demo-refresh-youtube-3"),
    );
    assert.equal(json.status, 200);
    assert.match(json.body.scope, /yt-analytics\.readonly/);

    const basic = await refresh(
      sb,
      { grant_type: "refresh_token", refresh_token: "1//demo-refresh-youtube-2" },
      { authorization: "Basic " + btoa(`${CLIENT_ID}:${CLIENT_SECRET}`) },
    );
    assert.equal(basic.status, 200);
    assert.equal(basic.body.token_type, "Bearer");
  });
});

Deno.test("google_oauth: unknown and fixture-revoked refresh tokens → 400 invalid_grant", async () => {
  await withSandbox(async (sb) => {
    for (const token of ["1//does-not-exist", "1//demo-refresh-youtube-revoked"]) {
      const res = await refresh(sb, refreshParams(token));
      assert.equal(res.status, 400);
      assert.deepEqual(res.body, {
        error: "invalid_grant",
        error_description: "Token has been expired or revoked.",
      });
    }
  });
});

Deno.test("google_oauth: POST /revoke kills the refresh token and its access tokens", async () => {
  await withSandbox(async (sb) => {
    const before = await refresh(sb, refreshParams("1//demo-refresh-youtube-4"));
    assert.equal(before.status, 200);

    const revoked = await call(
      `${sb.providers.google_oauth}/revoke?token=${
        encodeURIComponent("1//demo-refresh-youtube-4")
      }`,
      { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" } },
    );
    assert.equal(revoked.status, 200);
    assert.deepEqual(revoked.body, {});

    const after = await refresh(sb, refreshParams("1//demo-refresh-youtube-4"));
    assert.equal(after.status, 400);
    assert.equal(after.body.error, "invalid_grant");

    const info = await call(
      `${sb.providers.google_oauth}/tokeninfo?access_token=${before.body.access_token}`,
    );
    assert.equal(info.status, 400);
    assert.equal(info.body.error, "invalid_token");

    // Revoking twice is an error, like Google.
    const twice = await call(`${sb.providers.google_oauth}/revoke`, {
      method: "POST",
      body: new URLSearchParams({ token: "1//demo-refresh-youtube-4" }),
    });
    assert.equal(twice.status, 400);
    assert.equal(twice.body.error, "invalid_token");

    // Other tokens are unaffected.
    assert.equal((await refresh(sb, refreshParams("1//demo-refresh-youtube-5"))).status, 200);
  });
});

Deno.test("google_oauth: revoking an access token revokes its refresh token", async () => {
  await withSandbox(async (sb) => {
    const issued = await refresh(sb, refreshParams("1//demo-refresh-youtube-5"));
    const res = await call(`${sb.providers.google_oauth}/revoke`, {
      method: "POST",
      body: new URLSearchParams({ token: issued.body.access_token }),
    });
    assert.equal(res.status, 200);
    const after = await refresh(sb, refreshParams("1//demo-refresh-youtube-5"));
    assert.equal(after.body.error, "invalid_grant");
  });
});

Deno.test("google_oauth: bad client credentials → 401 invalid_client", async () => {
  await withSandbox(async (sb) => {
    const unknown = await refresh(sb, {
      ...refreshParams("1//demo-refresh-youtube-1"),
      client_id: "nope.apps.googleusercontent.com",
    });
    assert.equal(unknown.status, 401);
    assert.deepEqual(unknown.body, {
      error: "invalid_client",
      error_description: "The OAuth client was not found.",
    });

    const wrongSecret = await refresh(sb, {
      ...refreshParams("1//demo-refresh-youtube-1"),
      client_secret: "wrong",
    });
    assert.equal(wrongSecret.status, 401);
    assert.deepEqual(wrongSecret.body, {
      error: "invalid_client",
      error_description: "Unauthorized",
    });

    const noClient = await refresh(sb, {
      grant_type: "refresh_token",
      refresh_token: "1//demo-refresh-youtube-1",
    });
    assert.equal(noClient.status, 400);
    assert.deepEqual(noClient.body, {
      error: "invalid_request",
      error_description: "Could not determine client ID from request.",
    });
  });
});

Deno.test("google_oauth: token of another client → 401 unauthorized_client", async () => {
  await withSandbox(async (sb) => {
    const res = await refresh(sb, refreshParams("1//demo-refresh-other-client"));
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { error: "unauthorized_client", error_description: "Unauthorized" });
  });
});

Deno.test("google_oauth: missing/unsupported parameters → 400 with Google's texts", async () => {
  await withSandbox(async (sb) => {
    const { refresh_token: _, ...noRefresh } = refreshParams("x");
    const missingRefresh = await refresh(sb, noRefresh);
    assert.equal(missingRefresh.status, 400);
    assert.deepEqual(missingRefresh.body, {
      error: "invalid_request",
      error_description: "Missing required parameter: refresh_token",
    });

    const { grant_type: __, ...noGrant } = refreshParams("1//demo-refresh-youtube-1");
    const missingGrant = await refresh(sb, noGrant);
    assert.equal(missingGrant.status, 400);
    assert.deepEqual(missingGrant.body, {
      error: "invalid_request",
      error_description: "Required parameter is missing: grant_type",
    });

    const unsupported = await refresh(sb, {
      ...refreshParams("1//demo-refresh-youtube-1"),
      grant_type: "password",
    });
    assert.equal(unsupported.status, 400);
    assert.deepEqual(unsupported.body, {
      error: "unsupported_grant_type",
      error_description: "Invalid grant_type: password",
    });
  });
});

Deno.test("google_oauth: unknown path → 404 JSON, GET /token → 405", async () => {
  await withSandbox(async (sb) => {
    const res = await call(`${sb.providers.google_oauth}/oauth2/v9/nothing`);
    assert.equal(res.status, 404);
    assert.equal(res.body.error, "not_found");
    assert.match(res.headers.get("content-type")!, /^application\/json/);

    const get = await call(`${sb.providers.google_oauth}/token`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
  });
});

Deno.test("google_oauth: access tokens expire after the fixture's expires_in", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/fixtures.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      google_oauth: {
        expires_in: 1,
        clients: [{ client_id: "c", client_secret: "s" }],
        refresh_tokens: [{ refresh_token: "r", client_id: "c", scope: "a b" }],
      },
    }),
  );
  try {
    await withSandbox(async (sb) => {
      const res = await refresh(sb, {
        grant_type: "refresh_token",
        refresh_token: "r",
        client_id: "c",
        client_secret: "s",
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.expires_in, 1);
      assert.equal(res.body.scope, "a b");
      await new Promise((r) => setTimeout(r, 1100));
      const info = await call(
        `${sb.providers.google_oauth}/tokeninfo?access_token=${res.body.access_token}`,
      );
      assert.equal(info.status, 400);
    }, { fixturesPath: path });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("google_oauth: POST /__state adds refresh tokens that the token endpoint then honours", async () => {
  await withSandbox(async (sb) => {
    const before = await refresh(sb, refreshParams("1//load-1"));
    assert.equal(before.status, 400);
    assert.equal(before.body.error, "invalid_grant");

    const seeded = await postJson(`${sb.controlUrl}/__state/google_oauth`, {
      refresh_tokens: [{ refresh_token: "1//load-1" }, { refresh_token: "1//load-2", status: "revoked" }],
    });
    assert.equal(seeded.status, 200);
    assert.deepEqual(seeded.body.seeded, { refresh_tokens: 2, latency_ms: 0 });

    const ok = await refresh(sb, refreshParams("1//load-1"));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.scope, YT_SCOPE);
    const revoked = await refresh(sb, refreshParams("1//load-2"));
    assert.equal(revoked.body.error, "invalid_grant");

    const bad = await postJson(`${sb.controlUrl}/__state/google_oauth`, {
      refresh_tokens: [{ refresh_token: "" }],
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /^refresh_tokens\.0\.refresh_token:/);
    const unknownClient = await postJson(`${sb.controlUrl}/__state/google_oauth`, {
      refresh_tokens: [{ refresh_token: "1//x", client_id: "nope" }],
    });
    assert.equal(unknownClient.status, 400);
    const noSeed = await postJson(`${sb.controlUrl}/__state/stripe`, {});
    assert.equal(noSeed.status, 400);
  });
});

Deno.test("google_oauth: latency_ms set through POST /__state delays /token answers", async () => {
  await withSandbox(async (sb) => {
    const set = await postJson(`${sb.controlUrl}/__state/google_oauth`, { latency_ms: 150 });
    assert.equal(set.body.seeded.latency_ms, 150);
    const t0 = performance.now();
    const res = await refresh(sb, refreshParams("1//demo-refresh-youtube-1"));
    assert.equal(res.status, 200);
    assert.ok(performance.now() - t0 >= 140, "answered before the configured latency");
  });
});
