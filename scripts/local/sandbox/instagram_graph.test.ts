// Fake graph.instagram.com: token refresh rules, media fields and signed URLs, Graph error
// envelopes, throttling, seeding and request-log redaction.

import assert from "node:assert/strict";
import { call, postJson, withSandbox } from "./test_util.ts";
import type { Sandbox } from "./server.ts";

const TOKEN_1 = "IGAAdemo-ig-token-1";
const REEL_1 = "17900000000001001";

function refreshIg(sb: Sandbox, token: string) {
  return call(
    `${sb.providers.instagram_graph}/refresh_access_token?grant_type=ig_refresh_token&access_token=${
      encodeURIComponent(token)
    }`,
  );
}

function media(sb: Sandbox, id: string, token: string, fields = "id,media_type,media_url,thumbnail_url") {
  return call(`${sb.providers.instagram_graph}/v22.0/${id}?fields=${fields}&access_token=${encodeURIComponent(token)}`);
}

// deno-lint-ignore no-explicit-any
async function igState(sb: Sandbox): Promise<any> {
  return (await call(`${sb.controlUrl}/__state/instagram_graph`)).body.state;
}

function assertGraphError(body: unknown, code: number, subcode?: number) {
  // deno-lint-ignore no-explicit-any
  const e = (body as any).error;
  assert.equal(e.code, code);
  assert.equal(e.error_subcode, subcode);
  assert.equal(typeof e.message, "string");
  assert.equal(typeof e.type, "string");
  assert.match(e.fbtrace_id, /^A[0-9a-f]{22}$/);
}

Deno.test("instagram_graph: refresh of a ≥24h-old token returns the contract's body and a new live token", async () => {
  await withSandbox(async (sb) => {
    const res = await refreshIg(sb, TOKEN_1);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ["access_token", "expires_in", "token_type"]);
    assert.equal(res.body.token_type, "bearer");
    assert.equal(res.body.expires_in, 5_184_000);
    assert.match(res.body.access_token, /^IGAA[0-9A-Za-z]{40,}$/);
    assert.notEqual(res.body.access_token, TOKEN_1);

    // The new token works; the old one stays valid until its own expiry (documented choice).
    for (const t of [res.body.access_token, TOKEN_1]) {
      const me = await call(`${sb.providers.instagram_graph}/v22.0/me?fields=user_id,username&access_token=${t}`);
      assert.equal(me.status, 200);
      assert.deepEqual(me.body, { user_id: "17841400000000001", username: "duework_demo_creator_1", id: "17841400000000001" });
    }

    const state = await igState(sb);
    const old = state.tokens.find((t: { access_token: string }) => t.access_token === TOKEN_1);
    const fresh = state.tokens.find((t: { access_token: string }) => t.access_token === res.body.access_token);
    assert.equal(old.refresh_count, 1);
    assert.equal(fresh.refresh_count, 0);
    assert.equal(fresh.refreshed_from, TOKEN_1);
    assert.equal(fresh.ig_user_id, "17841400000000001");
    assert.ok(Math.abs(Date.parse(fresh.expires_at) - Date.now() - 5_184_000_000) < 5_000);

    // A freshly minted token is < 24 h old: refreshing it again is rejected (sandbox choice).
    const tooSoon = await refreshIg(sb, res.body.access_token);
    assert.equal(tooSoon.status, 400);
    assertGraphError(tooSoon.body, 100);
  });
});

Deno.test("instagram_graph: expired, revoked, password-changed and unknown tokens → 190 envelopes", async () => {
  await withSandbox(async (sb) => {
    const expired = await refreshIg(sb, "IGAAdemo-ig-token-expired");
    assert.equal(expired.status, 400);
    assertGraphError(expired.body, 190, 463);
    assert.equal(expired.body.error.type, "OAuthException");
    assert.match(expired.body.error.message, /^Error validating access token: Session has expired on .+\. The current time is .+\.$/);

    const revoked = await refreshIg(sb, "IGAAdemo-ig-token-revoked");
    assert.equal(revoked.status, 400);
    assertGraphError(revoked.body, 190, 458);

    await postJson(`${sb.controlUrl}/__state/instagram_graph`, {
      tokens: [{ access_token: TOKEN_1, status: "password_changed" }],
    });
    const pw = await media(sb, REEL_1, TOKEN_1);
    assertGraphError(pw.body, 190, 460);
    assert.match(pw.body.error.message, /changed their password/);

    const unknown = await refreshIg(sb, "IGAAnot-a-token");
    assert.equal(unknown.status, 400);
    assertGraphError(unknown.body, 190);

    const state = await igState(sb);
    assert.ok(state.tokens.every((t: { refresh_count: number }) => t.refresh_count === 0));
  });
});

Deno.test("instagram_graph: young-token and refresh request errors", async () => {
  await withSandbox(async (sb) => {
    const young = await refreshIg(sb, "IGAAdemo-ig-token-young");
    assert.equal(young.status, 400);
    assertGraphError(young.body, 100);

    const noGrant = await call(`${sb.providers.instagram_graph}/refresh_access_token?access_token=${TOKEN_1}`);
    assert.equal(noGrant.status, 400);
    assertGraphError(noGrant.body, 100);

    const post = await call(
      `${sb.providers.instagram_graph}/refresh_access_token?grant_type=ig_refresh_token&access_token=${TOKEN_1}`,
      { method: "POST" },
    );
    assert.equal(post.status, 400);
    assert.equal(post.body.error.message, "Unsupported request - method type: post");

    const noToken = await call(`${sb.providers.instagram_graph}/refresh_access_token?grant_type=ig_refresh_token`);
    assertGraphError(noToken.body, 2500);
    assert.equal((await igState(sb)).tokens.find((t: { access_token: string }) => t.access_token === TOKEN_1).refresh_count, 0);
  });
});

Deno.test("instagram_graph: media returns only the requested fields with signed oe= URLs", async () => {
  await withSandbox(async (sb) => {
    const before = Math.floor(Date.now() / 1000);
    const res = await media(sb, REEL_1, TOKEN_1);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ["id", "media_type", "media_url", "thumbnail_url"]);
    assert.equal(res.body.id, REEL_1);
    assert.equal(res.body.media_type, "VIDEO");
    for (const key of ["media_url", "thumbnail_url"]) {
      const url = new URL(res.body[key]);
      assert.match(url.searchParams.get("oh")!, /^00_[0-9a-f]{16}$/);
      const oe = url.searchParams.get("oe")!;
      assert.match(oe, /^[0-9A-F]+$/);
      const expiry = parseInt(oe, 16);
      assert.ok(expiry >= before + 259_200 && expiry <= before + 259_202, `oe ${expiry} not ~3 days ahead`);
    }
    // The URL is fetchable from the fake's own /cdn/ while signed; a tampered oe is refused.
    const ok = await fetch(res.body.media_url);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("content-type"), "video/mp4");
    await ok.body?.cancel();
    const tampered = new URL(res.body.media_url);
    tampered.searchParams.set("oe", "7FFFFFFF");
    const bad = await call(tampered.toString());
    assert.equal(bad.status, 403);
    assert.equal(bad.body, "URL signature mismatch");

    const some = await media(sb, REEL_1, TOKEN_1, "permalink,timestamp");
    assert.deepEqual(some.body, {
      permalink: "https://www.instagram.com/reel/DwDemo1R1/",
      timestamp: "2026-11-11T10:00:00+0000",
      id: REEL_1,
    });
    const idOnly = await call(`${sb.providers.instagram_graph}/v19.0/${REEL_1}?access_token=${TOKEN_1}`);
    assert.deepEqual(idOnly.body, { id: REEL_1 });

    const unknownField = await media(sb, REEL_1, TOKEN_1, "id,likes");
    assert.equal(unknownField.status, 400);
    assertGraphError(unknownField.body, 100);
    assert.match(unknownField.body.error.message, /\(likes\)/);

    // Copyrighted audio: media_url is absent (not null), thumbnail still there.
    const copyrighted = await media(sb, "17900000000003008", "IGAAdemo-ig-token-3");
    assert.equal(copyrighted.status, 200);
    assert.equal("media_url" in copyrighted.body, false);
    assert.equal(typeof copyrighted.body.thumbnail_url, "string");
  });
});

Deno.test("instagram_graph: expired CDN URLs answer 403 URL signature expired", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__state/instagram_graph`, { media_url_ttl_seconds: 1 });
    const res = await media(sb, REEL_1, TOKEN_1, "media_url");
    const oe = parseInt(new URL(res.body.media_url).searchParams.get("oe")!, 16);
    assert.ok(oe - Date.now() / 1000 <= 1);
    await new Promise((r) => setTimeout(r, Math.max(0, oe * 1000 - Date.now()) + 50));
    const gone = await call(res.body.media_url);
    assert.equal(gone.status, 403);
    assert.equal(gone.body, "URL signature expired");
  });
});

Deno.test("instagram_graph: deleted, unknown and other accounts' media → 100/33 IGApiException", async () => {
  await withSandbox(async (sb) => {
    const cases: [string, string][] = [
      ["17900000000002003", "IGAAdemo-ig-token-2"], // deleted in the fixture
      ["17900000000009999", TOKEN_1], // never existed
      ["17900000000002001", TOKEN_1], // belongs to creator 2
    ];
    for (const [id, token] of cases) {
      const res = await media(sb, id, token);
      assert.equal(res.status, 400, id);
      assertGraphError(res.body, 100, 33);
      assert.equal(res.body.error.type, "IGApiException");
      assert.equal(
        res.body.error.message,
        `Unsupported get request. Object with ID '${id}' does not exist, cannot be loaded due to missing ` +
          "permissions, or does not support this operation",
      );
    }
    // Media of a revoked token's account: the token fails first.
    const revoked = await media(sb, "17900000000004001", "IGAAdemo-ig-token-revoked");
    assertGraphError(revoked.body, 190, 458);
  });
});

Deno.test("instagram_graph: Authorization: Bearer works and both token forms are redacted in the log", async () => {
  await withSandbox(async (sb) => {
    const res = await call(`${sb.providers.instagram_graph}/v22.0/${REEL_1}?fields=media_type`, {
      headers: { authorization: `Bearer ${TOKEN_1}` },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { media_type: "VIDEO", id: REEL_1 });
    await refreshIg(sb, TOKEN_1);

    const log = (await call(`${sb.controlUrl}/__requests?provider=instagram_graph`)).body.requests;
    assert.equal(log.length, 2);
    assert.equal(log[0].headers.authorization, "[redacted]");
    assert.equal(log[1].query.access_token, "[redacted]");
    assert.equal(log[1].query.grant_type, "ig_refresh_token");
    assert.equal(JSON.stringify(log).includes(TOKEN_1), false);
  });
});

Deno.test("instagram_graph: version gate is configurable; any vNN.N accepted by default", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/fixtures.json`;
  await Deno.writeTextFile(path, JSON.stringify({
    instagram_graph: {
      min_graph_version: "v21.0",
      accounts: [{
        ig_user_id: "1",
        tokens: [{ access_token: "tok-a", age_seconds: 100_000 }],
        media: [{ id: "42", media_type: "IMAGE", media_product_type: "FEED" }],
      }],
    },
  }));
  try {
    await withSandbox(async (sb) => {
      const old = await media(sb, "42", "tok-a");
      assert.equal(old.status, 200); // v22.0 ≥ v21.0
      const older = await call(`${sb.providers.instagram_graph}/v20.0/42?fields=media_type,thumbnail_url&access_token=tok-a`);
      assertGraphError(older.body, 2635);
      const image = await call(`${sb.providers.instagram_graph}/v99.1/42?fields=media_type,thumbnail_url&access_token=tok-a`);
      assert.deepEqual(image.body, { media_type: "IMAGE", id: "42" }); // thumbnail_url is VIDEO-only
      const unknownPath = await call(`${sb.providers.instagram_graph}/v22.0/42/comments/x`);
      assertGraphError(unknownPath.body, 2500);
    }, { fixturesPath: path });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("instagram_graph: standing rate limits answer 4/17/613/80002 with usage headers", async () => {
  await withSandbox(async (sb) => {
    const seeded = await postJson(`${sb.controlUrl}/__state/instagram_graph`, {
      rate_limit: { code: 4, times: 1 },
      accounts: [{ ig_user_id: "17841400000000001", rate_limit: { code: 80002, status: 403, times: 2, regain_minutes: 7 } }],
    });
    assert.equal(seeded.status, 200);

    const app = await media(sb, REEL_1, TOKEN_1);
    assert.equal(app.status, 400);
    assertGraphError(app.body, 4);
    assert.equal(app.body.error.message, "(#4) Application request limit reached");
    assert.equal(JSON.parse(app.headers.get("x-app-usage")!).call_count, 100);

    for (let i = 0; i < 2; i++) {
      const buc = await refreshIg(sb, TOKEN_1);
      assert.equal(buc.status, 403);
      assertGraphError(buc.body, 80002);
      const usage = JSON.parse(buc.headers.get("x-business-use-case-usage")!);
      assert.equal(usage["17841400000000001"][0].estimated_time_to_regain_access, 7);
    }
    // Other accounts were never throttled; the exhausted limits are gone.
    assert.equal((await media(sb, "17900000000002001", "IGAAdemo-ig-token-2")).status, 200);
    assert.equal((await refreshIg(sb, TOKEN_1)).status, 200);

    for (const code of [17, 613]) {
      await postJson(`${sb.controlUrl}/__state/instagram_graph`, { rate_limit: { code } });
      const res = await media(sb, REEL_1, TOKEN_1);
      assertGraphError(res.body, code);
    }
    await postJson(`${sb.controlUrl}/__state/instagram_graph`, { rate_limit: null });
    assert.equal((await media(sb, REEL_1, TOKEN_1)).status, 200);
  });
});

Deno.test("instagram_graph: /__faults answers in Graph's envelope", async () => {
  await withSandbox(async (sb) => {
    for (const [status, code] of [[400, 4], [403, 80002], [500, 1], [503, 2]]) {
      await postJson(`${sb.controlUrl}/__faults`, { provider: "instagram_graph", status, times: 1 });
      const res = await media(sb, REEL_1, TOKEN_1);
      assert.equal(res.status, status);
      assertGraphError(res.body, code);
    }
    assert.equal((await media(sb, REEL_1, TOKEN_1)).status, 200);
  });
});

Deno.test("instagram_graph: seed adds bulk accounts/tokens/media and patches issued_at and deleted", async () => {
  await withSandbox(async (sb) => {
    const n = 2_000;
    const accounts = Array.from({ length: n }, (_, i) => ({ ig_user_id: String(90_000_000 + i) }));
    const tokens = accounts.map((a, i) => ({ access_token: `load-${i}`, ig_user_id: a.ig_user_id, age_seconds: 2 * 86_400 }));
    const mediaItems = accounts.map((a, i) => ({ id: String(80_000_000 + i), ig_user_id: a.ig_user_id }));
    const seeded = await postJson(`${sb.controlUrl}/__state/instagram_graph`, { accounts, tokens, media: mediaItems });
    assert.equal(seeded.status, 200);
    assert.deepEqual(
      [seeded.body.seeded.accounts, seeded.body.seeded.tokens, seeded.body.seeded.media],
      [n, n, n],
    );
    assert.equal((await refreshIg(sb, "load-1999")).status, 200);
    assert.equal((await media(sb, "80001999", "load-1999")).status, 200);

    // Make a fresh token young, then old again; delete a media item.
    const recent = new Date(Date.now() - 3_600_000).toISOString();
    await postJson(`${sb.controlUrl}/__state/instagram_graph`, {
      tokens: [{ access_token: "load-5", issued_at: recent }],
      media: [{ id: "80000005", deleted: true }],
    });
    assert.equal((await refreshIg(sb, "load-5")).status, 400);
    const state = await igState(sb);
    const t5 = state.tokens.find((t: { access_token: string }) => t.access_token === "load-5");
    assert.equal(t5.issued_at, recent);
    assert.equal(Date.parse(t5.expires_at) - Date.parse(recent), 5_184_000_000);
    const old = new Date(Date.now() - 25 * 3_600_000).toISOString();
    await postJson(`${sb.controlUrl}/__state/instagram_graph`, { tokens: [{ access_token: "load-5", issued_at: old }] });
    assert.equal((await refreshIg(sb, "load-5")).status, 200);
    assertGraphError((await media(sb, "80000005", "load-5")).body, 100, 33);

    // Invalid batches change nothing and name the field.
    const orphan = await postJson(`${sb.controlUrl}/__state/instagram_graph`, {
      tokens: [{ access_token: "x", ig_user_id: "123" }],
    });
    assert.equal(orphan.status, 400);
    assert.match(orphan.body.message, /^tokens\.0\.ig_user_id: unknown account 123/);
    const badId = await postJson(`${sb.controlUrl}/__state/instagram_graph`, { media: [{ id: "abc", ig_user_id: "1" }] });
    assert.match(badId.body.message, /^media\.0\.id:/);
    assert.equal((await refreshIg(sb, "x")).body.error.code, 190);
  });
});

Deno.test("instagram_graph: demo fixture has the documented accounts", async () => {
  await withSandbox(async (sb) => {
    const state = await igState(sb);
    const active = state.tokens.filter((t: { status: string; expired: boolean }) => t.status === "active" && !t.expired);
    assert.ok(active.length >= 3);
    // deno-lint-ignore no-explicit-any
    const perAccount = (id: string) => state.media.filter((m: any) => m.ig_user_id === id).length;
    for (const id of ["17841400000000001", "17841400000000002", "17841400000000003"]) {
      const n = perAccount(id);
      assert.ok(n >= 3 && n <= 8, `${id} has ${n} reels`);
    }
    assert.deepEqual(
      // deno-lint-ignore no-explicit-any
      state.tokens.filter((t: any) => t.status === "revoked").map((t: any) => t.access_token),
      ["IGAAdemo-ig-token-revoked"],
    );
    // deno-lint-ignore no-explicit-any
    assert.deepEqual(state.media.filter((m: any) => m.deleted).map((m: any) => m.id), ["17900000000002003"]);
  });
});
