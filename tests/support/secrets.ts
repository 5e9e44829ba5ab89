// The secrets in play on a running stack, and a search for them in any text (an HTTP response, a
// log file, a database column). Shared by the attack-surface suite and the chaos harness, so it
// depends on nothing but node:fs and runs under both node (vitest) and deno.
//
// A secret is listed with the forms it could leak in: as it is, URL-encoded (a query string, a
// form body) and, for credentials sent as HTTP Basic, the base64 of "user:password". Public values
// (the anon and publishable keys) are not secrets and are not listed. The database password of the
// local stack ("postgres") is left out too: it is a word that appears everywhere.
import { existsSync, readFileSync } from "node:fs";

export interface Secret {
  /** Where it comes from, e.g. "stack.secret_key", "fixtures.twilio.auth_token". */
  name: string;
  value: string;
}

/** The fields of .duework/<profile>/stack.json this module reads. */
export interface StackSecrets {
  secret_key: string;
  service_role_key: string;
  cron_secret: string;
  jwt_secret: string;
  [more: string]: unknown;
}

/** Shorter values would match by chance; no real secret of the stack is that short. */
export const MIN_SECRET_LENGTH = 8;

type Json = Record<string, any>;

const readJson = (path: string): Json => JSON.parse(readFileSync(path, "utf8")) as Json;

/** The provider credentials of the sandbox's fixture file (what the stack gives the functions). */
function fixtureSecrets(fixtures: Json): Secret[] {
  const out: Secret[] = [];
  const add = (name: string, value: unknown) => {
    if (typeof value === "string") out.push({ name, value });
  };
  for (const p of ["google_oauth", "tiktok"]) {
    (fixtures[p]?.clients ?? []).forEach((c: Json, i: number) => add(`fixtures.${p}.clients.${i}.client_secret`, c.client_secret));
    (fixtures[p]?.refresh_tokens ?? []).forEach((t: Json, i: number) =>
      add(`fixtures.${p}.refresh_tokens.${i}`, t.refresh_token)
    );
  }
  (fixtures.instagram_graph?.accounts ?? []).forEach((a: Json, i: number) =>
    (a.tokens ?? []).forEach((t: Json, j: number) => add(`fixtures.instagram_graph.accounts.${i}.tokens.${j}`, t.access_token))
  );
  const twilio = fixtures.twilio ?? {};
  add("fixtures.twilio.auth_token", twilio.auth_token);
  if (typeof twilio.account_sid === "string" && typeof twilio.auth_token === "string") {
    // What an Authorization: Basic header to Twilio carries.
    add("fixtures.twilio.basic_credentials", btoa(`${twilio.account_sid}:${twilio.auth_token}`));
  }
  (fixtures.resend?.api_keys ?? []).forEach((k: unknown, i: number) => add(`fixtures.resend.api_keys.${i}`, k));
  (fixtures.unipile?.api_keys ?? []).forEach((k: unknown, i: number) => add(`fixtures.unipile.api_keys.${i}`, k));
  (fixtures.unipile?.webhooks ?? []).forEach((w: Json, i: number) =>
    (w.headers ?? []).forEach((h: Json) => add(`fixtures.unipile.webhooks.${i}.${h.key}`, h.value))
  );
  for (const [name, value] of Object.entries(fixtures.stripe ?? {})) {
    if (/secret|key|token/i.test(name)) add(`fixtures.stripe.${name}`, value);
  }
  return out;
}

/** KEY=VALUE lines of a dotenv file whose names say they are secret. */
function dotenvSecrets(path: string): Secret[] {
  if (!existsSync(path)) return [];
  const out: Secret[] = [];
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m || !/SECRET|KEY|TOKEN|PASSWORD/i.test(m[1])) continue;
    const value = m[2].trim().replace(/^(['"])(.*)\1$/, "$2");
    out.push({ name: `functions.env.${m[1]}`, value });
  }
  return out;
}

/**
 * Every secret a running stack holds: its keys and secrets (stack.json), the sandbox's provider
 * credentials (fixtures.json, handed to the functions) and the secret-looking values of
 * supabase/functions/.env when there is one. Paths are relative to the repository root (the
 * working directory of npm test and of the chaos harness).
 */
export function secretsInPlay(
  info: StackSecrets,
  opts: { fixturesPath?: string; dotenvPath?: string; extra?: Secret[] } = {},
): Secret[] {
  const all: Secret[] = [
    { name: "stack.secret_key", value: info.secret_key },
    { name: "stack.service_role_key", value: info.service_role_key },
    { name: "stack.cron_secret", value: info.cron_secret },
    { name: "stack.jwt_secret", value: info.jwt_secret },
    ...fixtureSecrets(readJson(opts.fixturesPath ?? "scripts/local/sandbox/fixtures.json")),
    ...dotenvSecrets(opts.dotenvPath ?? "supabase/functions/.env"),
    ...(opts.extra ?? []),
  ];
  const seen = new Set<string>();
  return all.filter((s) => {
    if (typeof s.value !== "string" || s.value.length < MIN_SECRET_LENGTH || seen.has(s.value)) return false;
    seen.add(s.value);
    return true;
  });
}

/** The forms a secret can appear in text: as it is, URL-encoded, JSON-escaped. */
function forms(value: string): string[] {
  const encoded = [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1)];
  return [...new Set(encoded)];
}

/** The secrets `text` contains (any form), by name; [] when it holds none. */
export function findSecrets(text: string, secrets: readonly Secret[]): string[] {
  return secrets.filter((s) => forms(s.value).some((f) => text.includes(f))).map((s) => s.name);
}
