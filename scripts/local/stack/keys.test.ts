// The stack's keys: generated once per state directory, and a keys.json from before the cron
// secret existed gets one without losing its other keys.

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOrCreateKeys } from "./keys.ts";

Deno.test("keys: a new state directory gets every key, a CRON_SECRET of at least 32 characters among them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keys = await loadOrCreateKeys(dir);
    assert.match(keys.secret_key, /^sb_secret_/);
    assert.ok(keys.cron_secret.length >= 32, "run-job honours CRON_SECRET only from 32 characters");
    assert.deepEqual(await loadOrCreateKeys(dir), keys, "reused on the next start");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keys: an older keys.json without cron_secret gets one; the other keys stay", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const old = { jwt_secret: "j", anon_key: "a", service_role_key: "s", publishable_key: "p", secret_key: "sb_secret_old" };
    await Deno.writeTextFile(join(dir, "keys.json"), JSON.stringify(old));
    const keys = await loadOrCreateKeys(dir);
    assert.deepEqual({ ...keys, cron_secret: undefined }, { ...old, cron_secret: undefined });
    assert.ok(keys.cron_secret.length >= 32);
    assert.deepEqual(await loadOrCreateKeys(dir), keys, "written back");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
