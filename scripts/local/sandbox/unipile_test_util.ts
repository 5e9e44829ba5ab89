// Helpers shared by the Unipile fake's tests (not a test file itself).

import assert from "node:assert/strict";
import type { Sandbox } from "./server.ts";
import { call, type JsonResult, postJson } from "./test_util.ts";

// From the "unipile" section of fixtures.json.
export const KEY = "duework-local-unipile-api-key";
export const ACC = "DwLocalLinkedInAcct001";
export const DISCONNECTED = "DwLocalLinkedInAcct002";
export const CREDENTIALS = "DwLocalLinkedInAcct003";
export const SENDER = "ACoAAB1dwDemoSender00000000000000000001";
export const JANE = "ACoAAB1dwDemoProspect000000000000000001";
export const OMAR = "ACoAAB1dwDemoProspect000000000000000002";
export const LI = "ACoAAB1dwDemoProspect000000000000000003";
export const MARIA = "ACoAAB1dwDemoProspect000000000000000004";
/** Already a relation of ACC in the fixture. */
export const SAM = "ACoAAB1dwDemoProspect000000000000000005";

export const ERROR_KEYS = ["detail", "status", "title", "type"];

export function api(sb: Sandbox, path: string, init: RequestInit = {}, key: string | null = KEY): Promise<JsonResult> {
  const headers = new Headers(init.headers);
  if (key !== null) headers.set("x-api-key", key);
  headers.set("accept", "application/json");
  return call(`${sb.providers.unipile}/api/v1${path}`, { ...init, headers });
}

export function apiJson(sb: Sandbox, path: string, body: unknown, opts: { key?: string; signal?: AbortSignal } = {}) {
  return api(sb, path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: opts.signal,
  }, opts.key ?? KEY);
}

/** multipart/form-data, as the official SDK sends chats and messages. */
export function apiForm(sb: Sandbox, path: string, fields: [string, string][], signal?: AbortSignal) {
  const form = new FormData();
  for (const [k, v] of fields) form.append(k, v);
  return api(sb, path, { method: "POST", body: form, signal });
}

export const invite = (sb: Sandbox, providerId: string, message?: string, account = ACC) =>
  apiJson(sb, "/users/invite", {
    account_id: account,
    provider_id: providerId,
    ...(message !== undefined && { message }),
  });

export const startChat = (sb: Sandbox, providerId: string, text: string, extra: [string, string][] = []) =>
  apiForm(sb, "/chats", [["account_id", ACC], ["attendees_ids", providerId], ["text", text], ...extra]);

export function control(sb: Sandbox, body: unknown): Promise<JsonResult> {
  return postJson(`${sb.controlUrl}/__state/unipile`, body);
}

// deno-lint-ignore no-explicit-any
export async function unipileState(sb: Sandbox): Promise<any> {
  return (await call(`${sb.controlUrl}/__state/unipile`)).body.state;
}

export function assertUnipileError(res: JsonResult, status: number, type: string): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.match(res.headers.get("content-type")!, /^application\/json/);
  assert.deepEqual(Object.keys(res.body).sort(), ERROR_KEYS);
  assert.equal(res.body.type, `errors/${type}`);
  assert.equal(res.body.status, status);
  assert.equal(typeof res.body.title, "string");
  assert.equal(typeof res.body.detail, "string");
}

/** `n` LinkedIn members with distinct ids, e.g. for a 2,000-prospect campaign. */
export function makeUsers(n: number, tag = "Seed") {
  return Array.from({ length: n }, (_, i) => {
    const num = String(i).padStart(6, "0");
    return {
      provider_id: `ACoAAB${tag}${num}`.padEnd(39, "x"),
      public_identifier: `${tag.toLowerCase()}-prospect-${num}`,
      first_name: `First${i}`,
      last_name: `Last${i}`,
      headline: `Role ${i} at Company ${i % 50}`,
      company: `Company ${i % 50}`,
    };
  });
}

/** One JSON webhook a hook server received. */
export interface JsonHookCall {
  path: string;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
  time: number;
}

export interface JsonHook {
  url: string;
  calls: JsonHookCall[];
  waitFor(n: number, timeoutMs?: number): Promise<JsonHookCall[]>;
}

/**
 * A local server recording JSON webhooks. `answer(i)` gives the status of the i-th call (0-based;
 * default 200); a status of 0 means "never answer" (until the server closes).
 */
export async function withJsonHook(
  fn: (hook: JsonHook) => Promise<void>,
  answer: (i: number) => number = () => 200,
): Promise<void> {
  const calls: JsonHookCall[] = [];
  const hangs = new AbortController();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const text = await req.text();
    const i = calls.length;
    calls.push({ path: new URL(req.url).pathname, headers: req.headers, body: JSON.parse(text), time: Date.now() });
    const status = answer(i);
    if (status === 0) {
      await new Promise((r) => hangs.signal.addEventListener("abort", r, { once: true }));
      return new Response(null, { status: 503 });
    }
    return new Response(status === 200 ? '{"ok":true}' : "nope", { status });
  });
  const url = `http://127.0.0.1:${server.addr.port}/unipile-webhook`;
  const waitFor = async (n: number, timeoutMs = 3000) => {
    const deadline = Date.now() + timeoutMs;
    while (calls.length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} webhooks, got ${calls.length}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return calls;
  };
  try {
    await fn({ url, calls, waitFor });
  } finally {
    hangs.abort();
    await server.shutdown();
  }
}

/** Registers a webhook through the API (as a deployment script would). */
export async function createHook(
  sb: Sandbox,
  url: string,
  source: "users" | "messaging",
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await apiJson(sb, "/webhooks", {
    source,
    request_url: url,
    name: `test-${source}`,
    headers: [{ key: "X-Webhook-Secret", value: "s3cret-for-tests-0123456789abcdef" }],
    ...extra,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.webhook_id;
}
