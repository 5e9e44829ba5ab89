// Access to the stack the test runner started: its stack.json, a Postgres client, the sandbox.
import { readFileSync } from "node:fs";
import postgres from "postgres";

export interface StackInfo {
  db_url: string;
  functions_url: string;
  secret_key: string;
  /** The functions' CRON_SECRET (run-job). */
  cron_secret: string;
  sandbox_url: string;
  providers: Record<string, string>;
  api_url: string;
  anon_key: string;
  service_role_key: string;
  jwt_secret: string;
  /** run/ of the stack: children.json, function-workers.json (see processes.ts). */
  run_dir?: string;
  pg_data?: string;
}

export function stackInfo(): StackInfo {
  const path = process.env.DUEWORK_STACK_JSON;
  if (!path) throw new Error("DUEWORK_STACK_JSON is not set: run the end-to-end tests through `npm test`");
  return JSON.parse(readFileSync(path, "utf8")) as StackInfo;
}

export function db(info: StackInfo = stackInfo()) {
  return postgres(info.db_url, { max: 4, onnotice: () => {} });
}

/** Polls `check` until it returns a truthy value or the timeout passes (then throws). */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function sandboxRequests(info: StackInfo, filter: Record<string, string> = {}) {
  const q = new URLSearchParams(filter).toString();
  const res = await fetch(`${info.sandbox_url}/__requests${q ? `?${q}` : ""}`);
  if (!res.ok) throw new Error(`GET /__requests → ${res.status}`);
  return ((await res.json()) as { requests: Array<Record<string, any>> }).requests;
}

/** Runs `run` until it stops failing, e.g. while a pool still holds connections of a dead server. */
export async function retrying<T>(what: string, run: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await run();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what} kept failing for ${timeoutMs} ms: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Replaces part of a sandbox provider's state (POST /__state/<provider>). */
export async function seedProvider(info: StackInfo, provider: string, body: unknown) {
  const res = await fetch(`${info.sandbox_url}/__state/${provider}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`seeding ${provider} → ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

export async function providerState<T>(info: StackInfo, provider: string): Promise<T> {
  const res = await fetch(`${info.sandbox_url}/__state/${provider}`);
  return ((await res.json()) as { state: T }).state;
}

/**
 * A time zone where the local hour is `hour` now (Etc/GMT-9 is UTC+9, no daylight saving). Messages
 * to people go out between 08:00 and 21:00 in their zone (docs/bookings.md, docs/outreach.md "Send
 * windows"): fixtures live at midday (zoneAt(12)), so no send waits for a morning, whatever the hour.
 */
export function zoneAt(hour: number, now = new Date()): string {
  const offset = ((hour - now.getUTCHours() + 36) % 24) - 12;
  return offset === 0 ? "Etc/GMT" : `Etc/GMT${offset > 0 ? "-" : "+"}${Math.abs(offset)}`;
}
