// HTTP helpers shared by providers and the control API: reading a request body
// once into a SandboxRequest, building JSON responses, and redacting secrets
// before anything is stored in the request log or printed.

import type { ParsedBody, SandboxRequest } from "./types.ts";

const decoder = new TextDecoder();

/** Reads method, path, query, headers and the (parsed) body of a request exactly once. */
export async function readSandboxRequest(req: Request): Promise<SandboxRequest> {
  const url = new URL(req.url);
  const contentTypeHeader = req.headers.get("content-type") ?? "";
  const contentType = contentTypeHeader.split(";", 1)[0].trim().toLowerCase();
  let rawText = "";
  let body: ParsedBody = null;
  if (req.body !== null) {
    const bytes = new Uint8Array(await req.arrayBuffer());
    if (bytes.byteLength > 0) {
      rawText = decoder.decode(bytes);
      body = await parseBody(contentType, contentTypeHeader, bytes, rawText);
    }
  }
  return {
    method: req.method.toUpperCase(),
    path: url.pathname,
    url,
    query: url.searchParams,
    headers: req.headers,
    contentType,
    body,
    rawText,
  };
}

async function parseBody(
  contentType: string,
  contentTypeHeader: string,
  bytes: Uint8Array<ArrayBuffer>,
  rawText: string,
): Promise<ParsedBody> {
  if (contentType === "application/json" || contentType.endsWith("+json")) {
    try {
      return JSON.parse(rawText) as ParsedBody;
    } catch {
      return rawText; // malformed JSON is recorded as received
    }
  }
  if (contentType === "application/x-www-form-urlencoded") {
    return paramsToObject(new URLSearchParams(rawText));
  }
  if (contentType === "multipart/form-data") {
    try {
      // Re-wrap the bytes: the original body stream is already consumed.
      const form = await new Response(bytes, {
        headers: { "content-type": contentTypeHeader },
      }).formData();
      const out: Record<string, unknown> = {};
      for (const [key, value] of form) {
        const v = typeof value === "string"
          ? value
          : { filename: value.name, type: value.type, size: value.size };
        appendField(out, key, v);
      }
      return out;
    } catch {
      return rawText;
    }
  }
  return rawText;
}

/** Repeated keys become arrays; single keys stay plain strings. */
export function paramsToObject(params: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of params) appendField(out, key, value);
  return out;
}

// deno-lint-ignore no-explicit-any
function appendField(out: Record<string, any>, key: string, value: unknown): void {
  if (!(key in out)) out[key] = value;
  else if (Array.isArray(out[key])) out[key].push(value);
  else out[key] = [out[key], value];
}

/** JSON response with a caller-chosen status and extra headers. */
export function jsonResponse(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  // 204/205/304 must not carry a body (the Response constructor throws).
  const nullBody = status === 204 || status === 205 || status === 304;
  return new Response(nullBody ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export const REDACTED = "[redacted]";

/** Headers whose values are credentials. */
const SECRET_HEADERS = new Set([
  "authorization",
  "proxy-authorization",
  "apikey",
  "x-api-key",
  "cookie",
]);

/** Body/query field names whose values are credentials. */
const SECRET_FIELDS = new Set([
  "client_secret",
  "refresh_token",
  "access_token",
  "code",
  "password",
  "token",
]);

export function redactHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of headers) {
    out[key] = SECRET_HEADERS.has(key) ? REDACTED : value;
  }
  return out;
}

/** Names (of a header given as data) that say the value is a credential. */
const SECRET_NAME = /secret|token|password|api[-_]?key|authorization|signature|cookie/i;

/**
 * A header passed as data, `{key: "X-Webhook-Secret", value: "…"}` (Unipile's webhook `headers`),
 * whose name says it carries a credential.
 */
function isSecretPair(o: Record<string, unknown>): boolean {
  return typeof o.key === "string" && typeof o.value === "string" &&
    (SECRET_HEADERS.has(o.key.toLowerCase()) || SECRET_NAME.test(o.key));
}

/**
 * Copy of a parsed body/query with secret-named fields (at any depth) replaced, and the value of
 * secret-named `{key, value}` header pairs.
 */
export function redactFields<T>(value: T): T {
  if (Array.isArray(value)) return value.map(redactFields) as T;
  if (value === null || typeof value !== "object") return value;
  const pair = isSecretPair(value as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    out[key] = SECRET_FIELDS.has(key.toLowerCase()) || (pair && key === "value") ? REDACTED : redactFields(v);
  }
  return out as T;
}

/** Sleep that ends early when `signal` aborts (server shutdown). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
