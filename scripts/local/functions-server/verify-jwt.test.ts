import assert from "node:assert/strict";
import * as jose from "jose";
import { createJwtVerifier } from "./verify-jwt.ts";

const SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";
const key = new TextEncoder().encode(SECRET);

function sign(claims: jose.JWTPayload, opts: { secret?: Uint8Array; exp?: number | string } = {}) {
  const jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt();
  jwt.setExpirationTime(opts.exp ?? "1h");
  return jwt.sign(opts.secret ?? key);
}

function reqWith(auth?: string, method = "POST"): Request {
  const headers = new Headers();
  if (auth !== undefined) headers.set("authorization", auth);
  return new Request("http://x/functions/v1/f", { method, headers });
}

Deno.test("verify-jwt: accepts a valid HS256 token", async () => {
  const v = createJwtVerifier({ jwtSecret: SECRET });
  const res = await v.verifyRequest(reqWith(`Bearer ${await sign({ role: "anon" })}`));
  assert.equal(res.ok, true);
  assert.equal(res.ok && res.payload.role, "anon");
});

Deno.test("verify-jwt: rejections carry the documented codes", async () => {
  const v = createJwtVerifier({ jwtSecret: SECRET });
  const cases: [string | undefined, string][] = [
    [undefined, "UNAUTHORIZED_NO_AUTH_HEADER"],
    ["", "UNAUTHORIZED_NO_AUTH_HEADER"],
    ["Basic dXNlcjpwYXNz", "UNAUTHORIZED_INVALID_JWT_FORMAT"],
    ["Bearer", "UNAUTHORIZED_INVALID_JWT_FORMAT"],
    ["Bearer a b", "UNAUTHORIZED_INVALID_JWT_FORMAT"],
    ["Bearer garbage", "UNAUTHORIZED_INVALID_JWT_FORMAT"],
    ["Bearer sb_secret_abcdef", "UNAUTHORIZED_INVALID_JWT_FORMAT"],
    [`Bearer ${await sign({ role: "anon" }, { secret: new TextEncoder().encode("x".repeat(40)) })}`, "UNAUTHORIZED_INVALID_JWT"],
    [`Bearer ${await sign({ role: "anon" }, { exp: Math.floor(Date.now() / 1000) - 60 })}`, "UNAUTHORIZED_INVALID_JWT"],
  ];
  for (const [auth, code] of cases) {
    const res = await v.verifyRequest(reqWith(auth));
    assert.equal(res.ok, false, `should reject ${auth}`);
    assert.equal(!res.ok && res.code, code, `code for ${auth}`);
  }
  const missing = await v.verifyRequest(reqWith());
  assert.equal(!missing.ok && missing.message, "Missing authorization header");
});

Deno.test("verify-jwt: alg none and HS512 are rejected", async () => {
  const v = createJwtVerifier({ jwtSecret: SECRET });
  const none = new jose.UnsecuredJWT({ role: "service_role" }).setExpirationTime("1h").encode();
  assert.equal((await v.verifyToken(none)).ok, false);
  const hs512 = await new jose.SignJWT({ role: "anon" }).setProtectedHeader({ alg: "HS512" }).setExpirationTime("1h")
    .sign(key);
  assert.equal((await v.verifyToken(hs512)).ok, false);
});

Deno.test("verify-jwt: ES256 tokens verify against SUPABASE_JWKS", async () => {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const v = createJwtVerifier({ jwtSecret: SECRET, jwks: JSON.stringify({ keys: [jwk] }) });
  const token = await new jose.SignJWT({ role: "authenticated" })
    .setProtectedHeader({ alg: "ES256", kid: "k1" }).setExpirationTime("1h").sign(privateKey);
  assert.equal((await v.verifyToken(token)).ok, true);
  // without JWKS an ES256 token cannot be verified
  const noJwks = createJwtVerifier({ jwtSecret: SECRET });
  assert.equal((await noJwks.verifyToken(token)).ok, false);
});
