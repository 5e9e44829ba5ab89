import assert from "node:assert/strict";
import { acceptedServiceKeys, anyMatches, bearerToken, isAuthorized, presentedKeys, safeEqual } from "./auth.ts";
import { envFrom } from "./env.ts";

const req = (headers: Record<string, string>) => new Request("http://x/", { method: "POST", headers });

Deno.test("auth: accepted keys are every SUPABASE_SECRET_KEYS value plus SUPABASE_SERVICE_ROLE_KEY", () => {
  const env = envFrom({
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: "sb_secret_a", ci: "sb_secret_b", bogus: 7 }),
    SUPABASE_SERVICE_ROLE_KEY: "service-role-jwt",
  });
  assert.deepEqual(acceptedServiceKeys(env), ["sb_secret_a", "sb_secret_b", "service-role-jwt"]);
  assert.deepEqual(acceptedServiceKeys(envFrom({ SUPABASE_SECRET_KEYS: "{not json" })), []);
  assert.deepEqual(acceptedServiceKeys(envFrom({})), []);
});

Deno.test("auth: apikey header or Authorization: Bearer", () => {
  assert.deepEqual(presentedKeys(req({ apikey: "k1" })), ["k1"]);
  assert.deepEqual(presentedKeys(req({ authorization: "Bearer k2" })), ["k2"]);
  assert.deepEqual(presentedKeys(req({ authorization: "Basic k2" })), []);
  assert.deepEqual(presentedKeys(req({})), []);

  const keys = ["sb_secret_a", "sb_secret_b"];
  assert.equal(isAuthorized(req({ apikey: "sb_secret_b" }), keys), true);
  assert.equal(isAuthorized(req({ authorization: "bearer sb_secret_a" }), keys), true);
  assert.equal(isAuthorized(req({ apikey: "sb_secret_" }), keys), false); // prefix
  assert.equal(isAuthorized(req({ apikey: "sb_secret_aa" }), keys), false);
  assert.equal(isAuthorized(req({}), keys), false);
  assert.equal(isAuthorized(req({ apikey: "" }), [""]), false); // nothing presented
  assert.equal(isAuthorized(req({ apikey: "anything" }), []), false); // nothing configured
});

Deno.test("auth: safeEqual is plain equality, whatever the lengths", () => {
  assert.equal(safeEqual("a-long-shared-secret", "a-long-shared-secret"), true);
  assert.equal(safeEqual("a-long-shared-secret", "a-long-shared-secreT"), false);
  assert.equal(safeEqual("a-long-shared-secret", "a-long-shared"), false);
  assert.equal(safeEqual("a-long-shared-secret", "a-long-shared-secret "), false);
  assert.equal(safeEqual("", ""), true);
});

Deno.test("auth: bearerToken and anyMatches (every pair, exact values)", () => {
  assert.equal(bearerToken(req({ authorization: "Bearer  tok " })), "tok");
  assert.equal(bearerToken(req({ authorization: "bearer tok" })), "tok");
  assert.equal(bearerToken(req({ authorization: "Basic tok" })), undefined);
  assert.equal(bearerToken(req({})), undefined);
  assert.equal(anyMatches(["a", "cron-secret"], ["x", "cron-secret"]), true);
  assert.equal(anyMatches(["cron-secre"], ["cron-secret"]), false);
  assert.equal(anyMatches([], ["cron-secret"]), false);
  assert.equal(anyMatches(["cron-secret"], []), false);
});
