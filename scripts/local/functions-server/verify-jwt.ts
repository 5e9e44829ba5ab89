/**
 * verify_jwt gate, modelled on the Supabase CLI's edge-runtime main service
 * (`internal/functions/serve/templates/main.ts`): when a function has `verify_jwt = true`, the
 * request must carry `Authorization: Bearer <JWT>` that verifies as HS256 with the project's JWT
 * secret, or as ES256/RS256 against `SUPABASE_JWKS` when that is provided. `sb_secret_…` /
 * `sb_publishable_…` API keys and the `apikey` header are NOT accepted (same as the local CLI).
 * Expired tokens are rejected. OPTIONS (CORS preflight) requests are never checked.
 *
 * Error bodies use the hosted platform's `{ code, message }` shape; `msg` repeats the message the
 * way the local CLI's main.ts reports it.
 */
import * as jose from "jose";

export type JwtFailureCode =
  | "UNAUTHORIZED_NO_AUTH_HEADER"
  | "UNAUTHORIZED_INVALID_JWT_FORMAT"
  | "UNAUTHORIZED_INVALID_JWT";

export type JwtCheck =
  | { ok: true; payload: jose.JWTPayload }
  | { ok: false; code: JwtFailureCode; message: string; detail?: string };

export interface JwtVerifier {
  verifyRequest(req: Request): Promise<JwtCheck>;
  verifyToken(token: string): Promise<JwtCheck>;
}

export function createJwtVerifier(opts: { jwtSecret: string; jwks?: string }): JwtVerifier {
  const secret = new TextEncoder().encode(opts.jwtSecret);
  let localJwks: ReturnType<typeof jose.createLocalJWKSet> | null = null;
  if (opts.jwks) {
    try {
      localJwks = jose.createLocalJWKSet(JSON.parse(opts.jwks) as jose.JSONWebKeySet);
    } catch {
      localJwks = null;
    }
  }

  async function verifyToken(token: string): Promise<JwtCheck> {
    let alg: string | undefined;
    try {
      alg = jose.decodeProtectedHeader(token).alg;
      jose.decodeJwt(token);
    } catch {
      return { ok: false, code: "UNAUTHORIZED_INVALID_JWT_FORMAT", message: "Invalid JWT" };
    }
    try {
      if (alg === "HS256") {
        const { payload } = await jose.jwtVerify(token, secret, { algorithms: ["HS256"] });
        return { ok: true, payload };
      }
      if ((alg === "ES256" || alg === "RS256") && localJwks) {
        const { payload } = await jose.jwtVerify(token, localJwks, { algorithms: ["ES256", "RS256"] });
        return { ok: true, payload };
      }
      return {
        ok: false,
        code: "UNAUTHORIZED_INVALID_JWT",
        message: "Invalid JWT",
        detail: `unsupported alg ${alg}`,
      };
    } catch (e) {
      const detail = e instanceof jose.errors.JWTExpired
        ? "expired"
        : e instanceof Error
        ? (e as { code?: string }).code ?? e.name
        : String(e);
      return { ok: false, code: "UNAUTHORIZED_INVALID_JWT", message: "Invalid JWT", detail };
    }
  }

  async function verifyRequest(req: Request): Promise<JwtCheck> {
    const header = req.headers.get("authorization");
    if (!header) {
      return {
        ok: false,
        code: "UNAUTHORIZED_NO_AUTH_HEADER",
        message: "Missing authorization header",
      };
    }
    const parts = header.split(" ");
    if (parts.length !== 2 || parts[0] !== "Bearer" || !parts[1]) {
      return {
        ok: false,
        code: "UNAUTHORIZED_INVALID_JWT_FORMAT",
        message: "Auth header is not 'Bearer {token}'",
      };
    }
    return await verifyToken(parts[1]);
  }

  return { verifyRequest, verifyToken };
}

export function jwtFailureResponse(check: Extract<JwtCheck, { ok: false }>): Response {
  return Response.json(
    { code: check.code, message: check.message, msg: check.message },
    { status: 401 },
  );
}
