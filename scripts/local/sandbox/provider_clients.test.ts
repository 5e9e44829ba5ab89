// The Edge Function provider clients against the sandbox fakes: proves the fakes speak what the
// clients read (and so what the local stack will exercise end to end).

import assert from "node:assert/strict";
import {
  createInstagramTokenClient,
  fetchMediaUrls,
} from "../../../supabase/functions/_shared/providers/instagram.ts";
import { createTikTokClient } from "../../../supabase/functions/_shared/providers/tiktok.ts";
import { call, postJson, withSandbox } from "./test_util.ts";

Deno.test("clients × sandbox: Instagram refresh and media outcomes", async () => {
  await withSandbox(async (sb) => {
    const opts = { baseUrl: sb.providers.instagram_graph, timeoutMs: 5000 };
    const ig = createInstagramTokenClient(opts);

    const refreshed = await ig.refresh("IGAAdemo-ig-token-1");
    assert.equal(refreshed.kind, "refreshed");
    assert.equal(refreshed.kind === "refreshed" && refreshed.expiresIn, 5_184_000);
    assert.equal(refreshed.kind === "refreshed" && refreshed.refreshToken, null);

    const revoked = await ig.refresh("IGAAdemo-ig-token-revoked");
    assert.equal(revoked.kind === "failed" && revoked.permanent && revoked.needsReauth, true);
    const expired = await ig.refresh("IGAAdemo-ig-token-expired");
    assert.equal(expired.kind === "failed" && expired.needsReauth, true);

    const ok = await fetchMediaUrls("IGAAdemo-ig-token-1", "17900000000001001", "v22.0", opts);
    assert.equal(ok.kind, "ok");
    if (ok.kind === "ok") {
      const expected = Date.now() + 259_200_000;
      assert.ok(Math.abs(ok.expiresAt!.getTime() - expected) < 5_000);
      assert.equal(ok.media_type, "VIDEO");
      assert.equal((await call(ok.media_url!)).status, 200);
    }
    assert.equal((await fetchMediaUrls("IGAAdemo-ig-token-2", "17900000000002003", "v22.0", opts)).kind, "not_found");
    const copyrighted = await fetchMediaUrls("IGAAdemo-ig-token-3", "17900000000003008", "v22.0", opts);
    assert.equal(copyrighted.kind === "ok" && copyrighted.media_url, null);
    assert.equal((await fetchMediaUrls("IGAAdemo-ig-token-revoked", "17900000000004001", "v22.0", opts)).kind, "token_invalid");

    await postJson(`${sb.controlUrl}/__state/instagram_graph`, {
      accounts: [{ ig_user_id: "17841400000000001", rate_limit: { code: 80002, status: 403, times: 1, regain_minutes: 3 } }],
    });
    const limited = await fetchMediaUrls("IGAAdemo-ig-token-1", "17900000000001001", "v22.0", opts);
    assert.deepEqual(limited.kind === "rate_limited" && [limited.code, limited.retryAfterSeconds], [80002, 180]);

    await postJson(`${sb.controlUrl}/__faults`, { provider: "instagram_graph", status: 500, times: 1 });
    assert.equal((await fetchMediaUrls("IGAAdemo-ig-token-1", "17900000000001001", "v22.0", opts)).kind, "transient");
  });
});

Deno.test("clients × sandbox: TikTok rotation, reuse and bad credentials", async () => {
  await withSandbox(async (sb) => {
    const tt = createTikTokClient({
      clientKey: "duework-local-tiktok-key",
      clientSecret: "duework-local-tiktok-secret",
      baseUrl: sb.providers.tiktok,
      timeoutMs: 5000,
    });
    const first = await tt.refresh("rft.demo-tiktok-1");
    assert.equal(first.kind, "refreshed");
    if (first.kind !== "refreshed") return;
    assert.match(first.refreshToken!, /^rft\./);
    assert.ok(first.refreshExpiresIn! > 15_551_000);

    const reused = await tt.refresh("rft.demo-tiktok-1");
    assert.equal(reused.kind === "failed" && reused.permanent && reused.needsReauth, true);
    assert.equal((await tt.refresh(first.refreshToken!)).kind, "refreshed");

    const wrong = createTikTokClient({ clientKey: "duework-local-tiktok-key", clientSecret: "nope", baseUrl: sb.providers.tiktok });
    assert.equal((await wrong.refresh("rft.demo-tiktok-2")).kind, "misconfigured");

    await postJson(`${sb.controlUrl}/__state/tiktok`, { rate_limit: { times: 1, retry_after: 12 } });
    const limited = await tt.refresh("rft.demo-tiktok-2");
    assert.deepEqual(limited.kind === "failed" && [limited.permanent, limited.retryAfterSeconds], [false, 12]);
  });
});
