// The function secrets the stack derives from the sandbox fixtures (sandboxClientEnv).

import assert from "node:assert/strict";
import { sandboxClientEnv } from "./supervisor.ts";

const FIXTURES = decodeURIComponent(new URL("../sandbox/fixtures.json", import.meta.url).pathname);

Deno.test("supervisor: the functions get Unipile's API key and the webhooks' X-Webhook-Secret from the fixtures", async () => {
  const fixture = JSON.parse(await Deno.readTextFile(FIXTURES)).unipile;
  const env = sandboxClientEnv(FIXTURES);
  assert.equal(env.UNIPILE_API_KEY, fixture.api_keys[0]);
  const users = fixture.webhooks.find((w: { source: string }) => w.source === "users");
  assert.equal(
    env.UNIPILE_WEBHOOK_SECRET,
    users.headers.find((h: { key: string }) => h.key === "X-Webhook-Secret").value,
  );
  assert.ok(env.UNIPILE_WEBHOOK_SECRET.length >= 32); // docs/outreach.md: at least 32 characters
  // The other providers' secrets are still there.
  assert.equal(typeof env.RESEND_API_KEY, "string");
  assert.equal(typeof env.TWILIO_AUTH_TOKEN, "string");
});
