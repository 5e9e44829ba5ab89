// HS256 JWTs like the project's anon and service_role keys, signed with any secret: the real
// jwt_secret (a validly signed anon token) or another one (a forged service_role token).
import { createHmac } from "node:crypto";

const b64url = (s: string | Buffer) => Buffer.from(s).toString("base64url");

export function signJwt(claims: Record<string, unknown>, secret: string): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ iss: "supabase-demo", iat: 1_700_000_000, exp: 4_100_000_000, ...claims }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}
