// API keys of a local stack, generated once per data directory and reused on every start, in the
// shapes hosted Supabase uses: HS256 JWTs for the legacy anon/service_role keys and opaque
// sb_publishable_/sb_secret_ keys. The secret key is what a person or a script calls job
// functions with (pg_net's batches carry single-use batch tokens instead). The cron secret is the
// functions' CRON_SECRET: what an outside scheduler sends to run-job (hosted:
// `supabase secrets set CRON_SECRET=…`).
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { SignJWT } from "npm:jose@^6";
import { join } from "./paths.ts";

export interface StackKeys {
  jwt_secret: string;
  anon_key: string;
  service_role_key: string;
  publishable_key: string;
  secret_key: string;
  /** CRON_SECRET of the functions (run-job): 43 characters, above its 32-character minimum. */
  cron_secret: string;
}

function randomToken(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...buf)).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** 32 random bytes: 43 base64url characters. */
const newCronSecret = () => randomToken(32);

async function signRole(role: string, secret: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer("supabase-demo")
    .setIssuedAt(now)
    .setExpirationTime(now + 10 * 365 * 24 * 3600)
    .sign(new TextEncoder().encode(secret));
}

export async function loadOrCreateKeys(stateDir: string): Promise<StackKeys> {
  const file = join(stateDir, "keys.json");
  if (existsSync(file)) {
    const keys = JSON.parse(await readFile(file, "utf8")) as StackKeys;
    // keys.json written before the cron secret existed: add one, keep every other key.
    if (typeof keys.cron_secret === "string" && keys.cron_secret.length >= 32) return keys;
    const upgraded = { ...keys, cron_secret: newCronSecret() };
    await writeFile(file, JSON.stringify(upgraded, null, 2) + "\n", { mode: 0o600 });
    return upgraded;
  }
  const jwt_secret = randomToken(32);
  const keys: StackKeys = {
    jwt_secret,
    anon_key: await signRole("anon", jwt_secret),
    service_role_key: await signRole("service_role", jwt_secret),
    publishable_key: `sb_publishable_${randomToken(16)}`,
    secret_key: `sb_secret_${randomToken(24)}`,
    cron_secret: newCronSecret(),
  };
  await writeFile(file, JSON.stringify(keys, null, 2) + "\n", { mode: 0o600 });
  return keys;
}
