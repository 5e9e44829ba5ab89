// Outbound HTTP for provider clients: every call has a deadline (the whole exchange, body
// included), and failures come back as typed errors the caller can map to "retry later".

export const DEFAULT_TIMEOUT_MS = 10_000;

/** The provider did not answer (headers and body) within the deadline. */
export class HttpTimeoutError extends Error {
  override name = "HttpTimeoutError";
  constructor(readonly timeoutMs: number) {
    super(`timed out after ${timeoutMs} ms`);
  }
}

/** The request never produced a response (DNS, connection refused, reset, TLS…). */
export class HttpNetworkError extends Error {
  override name = "HttpNetworkError";
}

export interface HttpResult {
  status: number;
  headers: Headers;
  /** The body text, read completely within the deadline. */
  text: string;
}

export type FetchFn = typeof fetch;

/**
 * fetch + read the body, aborting both after `timeoutMs`. Throws HttpTimeoutError or
 * HttpNetworkError; never throws for an HTTP error status.
 */
export async function fetchText(
  fetchFn: FetchFn,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<HttpResult> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
  try {
    const res = await fetchFn(url, { ...init, signal });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text };
  } catch (err) {
    if (timeout.aborted) throw new HttpTimeoutError(timeoutMs);
    const message = err instanceof Error ? err.message : String(err);
    throw new HttpNetworkError(message, { cause: err });
  }
}

/** The largest value an SQL `int` can hold; longer waits are clamped to it. */
const MAX_SECONDS = 2_147_483_647;

/**
 * Seconds to wait from a Retry-After header (RFC 9110 §10.2.3): either delay-seconds or an
 * HTTP-date (a date in the past means 0). Returns null when absent or unparseable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const v = value.trim();
  if (v === "") return null;
  if (/^\d+$/.test(v)) return Math.min(Number(v), MAX_SECONDS);
  // Only try dates for things that look like one: Date.parse("30") would be the year 2030.
  if (!/[a-z]/i.test(v)) return null;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.min(Math.max(0, Math.ceil((at - nowMs) / 1000)), MAX_SECONDS);
}

/** Parsed JSON, or undefined when the text is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The body as a JSON object (a provider's error envelope), or null for anything else. */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  const body = parseJson(text);
  return body !== null && typeof body === "object" && !Array.isArray(body) ? body as Record<string, unknown> : null;
}

/** The message of an error and of its causes ("fetch failed: error sending request …: client
 * error (Connect): …"): Deno's fetch puts the reason in the cause. */
export function errorChainText(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 5 && e !== undefined && e !== null; i++) {
    const m = e instanceof Error ? e.message : String(e);
    if (m && !parts.some((p) => p.includes(m))) parts.push(m);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ");
}
