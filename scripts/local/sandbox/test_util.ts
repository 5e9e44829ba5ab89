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

/** One request a webhook receiver got. */
export interface ReceivedWebhook {
  url: string;
  headers: Headers;
  /** Form fields of the body. */
  params: Record<string, string>;
}

export interface WebhookReceiver {
  /** Where to send webhooks, e.g. http://127.0.0.1:PORT/twilio-status?x=1 */
  url: string;
  received: ReceivedWebhook[];
  /** Resolves once `n` webhooks arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedWebhook[]>;
}

/**
 * A local HTTP server recording form-encoded webhooks (e.g. Twilio status callbacks), answering
 * `status` (default 204). Always closed after fn.
 */
export async function withWebhookReceiver(
  fn: (r: WebhookReceiver) => Promise<void>,
  opts: { status?: number; path?: string } = {},
): Promise<void> {
  const received: ReceivedWebhook[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const text = await req.text();
    received.push({ url: req.url, headers: req.headers, params: Object.fromEntries(new URLSearchParams(text)) });
    return new Response(null, { status: opts.status ?? 204 });
  });
  const url = `http://127.0.0.1:${server.addr.port}${opts.path ?? "/twilio-status"}`;
  const waitFor = async (n: number, timeoutMs = 3000) => {
    const deadline = Date.now() + timeoutMs;
    while (received.length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} webhooks, got ${received.length}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return received;
  };
  try {
    await fn({ url, received, waitFor });
  } finally {
    await server.shutdown();
  }
}

/** Polls `check` every 5 ms until it returns true; throws after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
