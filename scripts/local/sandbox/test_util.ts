// Shared helpers for the sandbox tests (not a test file itself).

import { type Sandbox, startSandbox } from "./server.ts";

export const CLIENT_ID = "duework-local-client.apps.googleusercontent.com";
export const CLIENT_SECRET = "duework-local-secret";

/** Starts a sandbox on ephemeral ports, runs fn, always closes it. */
export async function withSandbox(
  fn: (sb: Sandbox) => Promise<void> | void,
  opts: { fixturesPath?: string; maxRequests?: number } = {},
): Promise<void> {
  const sb = await startSandbox({ controlPort: 0, providerPorts: {}, ...opts });
  try {
    await fn(sb);
  } finally {
    await sb.close();
  }
}

export interface JsonResult {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** fetch + always consume the body (Deno's leak sanitizers require it). */
export async function call(url: string, init: RequestInit = {}): Promise<JsonResult> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch { /* keep text */ }
  return { status: res.status, headers: res.headers, body };
}

export function postJson(url: string, body: unknown, method = "POST"): Promise<JsonResult> {
  return call(url, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** POST form-encoded to the fake Google token endpoint, the way google-auth-library does. */
export function refresh(
  sb: Sandbox,
  params: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<JsonResult> {
  return call(`${sb.providers.google_oauth}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(params).toString(),
  });
}

export function refreshParams(refreshToken: string): Record<string, string> {
  return {
    refresh_token: refreshToken,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_type: "refresh_token",
  };
}
