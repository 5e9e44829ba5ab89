// Every provider listens on its own origin; the ones not yet implemented answer
// a JSON 501 on any path and are still recorded.

import assert from "node:assert/strict";
import { PROVIDER_NAMES } from "./types.ts";
import { call, withSandbox } from "./test_util.ts";

Deno.test("providers: each provider has its own origin on 127.0.0.1", async () => {
  await withSandbox((sb) => {
    assert.deepEqual(Object.keys(sb.providers).sort(), [...PROVIDER_NAMES].sort());
    const origins = [sb.controlUrl, ...Object.values(sb.providers)];
    assert.equal(new Set(origins).size, origins.length);
    for (const origin of origins) {
      assert.match(origin, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(new URL(origin).port, "0");
    }
  });
});

Deno.test("providers: placeholders answer 501 not_implemented and are logged", async () => {
  await withSandbox(async (sb) => {
    const implemented = ["google_oauth", "instagram_graph", "tiktok", "twilio", "resend", "unipile"];
    const placeholders = PROVIDER_NAMES.filter((p) => !implemented.includes(p));
    assert.equal(placeholders.length, 1);
    for (const name of placeholders) {
      for (const [method, path] of [["GET", "/"], ["POST", "/v1/anything?x=1"]]) {
        const res = await call(`${sb.providers[name]}${path}`, {
          method,
          ...(method === "POST" && { body: "{}", headers: { "content-type": "application/json" } }),
        });
        assert.equal(res.status, 501, `${name} ${method} ${path}`);
        assert.match(res.headers.get("content-type")!, /^application\/json/);
        assert.equal(res.body.error, "not_implemented");
        assert.equal(res.body.provider, name);
        assert.equal(typeof res.body.message, "string");
      }
      const log = (await call(`${sb.controlUrl}/__requests?provider=${name}`)).body.requests;
      assert.deepEqual(
        log.map((
          e: { method: string; path: string; status: number },
        ) => [e.method, e.path, e.status]),
        [["GET", "/", 501], ["POST", "/v1/anything", 501]],
      );
      assert.deepEqual(log[1].query, { x: "1" });
      assert.deepEqual(log[1].body, {});
    }
  });
});

Deno.test("providers: fixed ports are honoured and a busy port fails cleanly", async () => {
  const { startSandbox } = await import("./server.ts");
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = (probe.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(
      startSandbox({ controlPort: 0, providerPorts: { stripe: busy } }),
      /in use|AddrInUse/i,
    );
  } finally {
    probe.close();
  }
  const sb = await startSandbox({ controlPort: 0, providerPorts: { stripe: busy } });
  try {
    assert.equal(sb.providers.stripe, `http://127.0.0.1:${busy}`);
    assert.equal((await call(`${sb.providers.stripe}/v1/customers`)).status, 501);
  } finally {
    await sb.close();
  }
});
