// One pg_net request, sent with fetch the way pg_net's libcurl worker sends it
// (supabase/pg_net src/core.c init_curl_handle / insert_response), and turned into the
// net._http_response row pg_net would write.
//
// Kept from libcurl's behaviour:
// - headers come from the queue row as "key: value" lines (jsonb_each_text; JSON null values are
//   already gone); curl splits a line at its first ':' and does not send a header whose value
//   is empty; "User-Agent: pg_net/0.20.4" is always appended.
// - a body is sent as-is for POST/DELETE; like curl's POSTFIELDS, a request with a body (and any
//   POST) gets "Content-Type: application/x-www-form-urlencoded" unless it has a Content-Type.
// - redirects are followed; only http and https are allowed.
// - timeout_milliseconds bounds the whole transfer, body included (CURLOPT_TIMEOUT_MS; 0 = none).
// - any HTTP status is a success: status_code, headers, content (NULL when empty, cut at the
//   first NUL like pg_net's C string), content_type, timed_out=false, error_msg NULL.
// - a failure leaves status/content/headers/content_type NULL and sets error_msg to the
//   curl_easy_strerror text of the matching CURLcode; a timeout sets timed_out=true and
//   pg_net's detailed message.
// Not kept (fetch cannot): response header names are lower-cased and repeated headers are
// joined with ", "; headers are those of the final response of a redirect chain (pg_net reads
// the first one's); the fetch "bad ports" (1, 22, 25, 6000, …) cannot be reached.

export const USER_AGENT = "pg_net/0.20.4";

/** A row claimed from net.http_request_queue (pg_net's DELETE … RETURNING shape). */
export interface QueuedRequest {
  id: string; // bigint, as text
  method: string;
  url: string;
  timeout_milliseconds: number;
  /** `array(select key || ': ' || value from jsonb_each_text(headers))`; NULL entries skipped. */
  headers: (string | null)[] | null;
  body: Uint8Array | null;
}

/** A net._http_response row (without `created`). */
export interface ResponseRow {
  id: string;
  status_code: number | null;
  content: string | null;
  headers: Record<string, string> | null;
  content_type: string | null;
  timed_out: boolean;
  error_msg: string | null;
}

/** What the worker logs about a request: never headers, bodies or the query string. */
export interface Outcome {
  row: ResponseRow;
  method: string;
  /** The URL without query string or fragment (they can carry keys). */
  safeUrl: string;
  ms: number;
  /** The underlying error text for unmapped failures (already stripped of the URL). */
  detail?: string;
}

// curl_easy_strerror texts (libcurl 7.88 / 8.x)
const CURL = {
  UNSUPPORTED_PROTOCOL: "Unsupported protocol",
  URL_MALFORMAT: "URL using bad/illegal format or missing URL",
  COULDNT_RESOLVE_HOST: "Couldn't resolve host name",
  COULDNT_CONNECT: "Couldn't connect to server",
  SEND_ERROR: "Failed sending data to the peer",
  RECV_ERROR: "Failure when receiving data from the peer",
  GOT_NOTHING: "Server returned nothing (no headers, no data)",
  WEIRD_SERVER_REPLY: "Weird server reply",
  TOO_MANY_REDIRECTS: "Number of redirects hit maximum amount",
  SSL_CONNECT_ERROR: "SSL connect error",
  PEER_FAILED_VERIFICATION: "SSL peer certificate or SSH remote key was not OK",
  BAD_FUNCTION_ARGUMENT: "A libcurl function was given a bad argument",
} as const;

export function safeUrl(url: string): string {
  const cut = url.search(/[?#]/);
  return cut < 0 ? url : url.slice(0, cut);
}

/** pg_net's timeout message (src/errors.c detailed_timeout_strerror). fetch exposes no DNS or
 * connect timings, so those are reported as 0 and the whole time as HTTP time when the response
 * had started, or as handshake time when nothing came back. */
export function timeoutMessage(timeoutMs: number, totalMs: number, gotHeaders: boolean): string {
  const f = (n: number) => n.toFixed(6);
  const handshake = gotHeaders ? 0 : totalMs;
  const http = gotHeaders ? totalMs : 0;
  return `Timeout of ${timeoutMs} ms reached. Total time: ${f(totalMs)} ms (DNS time: ${f(0)} ms, ` +
    `TCP/SSL handshake time: ${f(handshake)} ms, HTTP Request/Response time: ${f(http)} ms)`;
}

/** Maps a fetch failure to the curl message pg_net would store. */
export function curlMessage(err: unknown): { msg: string; known: boolean } {
  const texts: string[] = [];
  let e: unknown = err;
  for (let i = 0; e && i < 5; i++) {
    texts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  const t = texts.join(" | ");
  const rules: [RegExp, string][] = [
    [/Connection refused|os error 111|ECONNREFUSED|Network is unreachable|os error 101|No route to host|os error 113|Requests to port \d+ are blocked/i, CURL.COULDNT_CONNECT],
    [/dns error|failed to lookup address|Name or service not known|No address associated|nodename nor servname|ENOTFOUND|EAI_/i, CURL.COULDNT_RESOLVE_HOST],
    [/Url scheme .* not supported|scheme .* not supported|unsupported protocol/i, CURL.UNSUPPORTED_PROTOCOL],
    [/Invalid URL/i, CURL.URL_MALFORMAT],
    [/redirect/i, CURL.TOO_MANY_REDIRECTS],
    [/certificate|UnknownIssuer|NotValidForName|CertExpired/i, CURL.PEER_FAILED_VERIFICATION],
    [/tls|ssl|handshake/i, CURL.SSL_CONNECT_ERROR],
    [/connection closed before message completed|IncompleteMessage|empty reply/i, CURL.GOT_NOTHING],
    [/invalid HTTP|parse|Weird/i, CURL.WEIRD_SERVER_REPLY],
    [/connection reset|os error 104|ECONNRESET|broken pipe|os error 32/i, CURL.RECV_ERROR],
  ];
  for (const [re, msg] of rules) if (re.test(t)) return { msg, known: true };
  return { msg: CURL.RECV_ERROR, known: false };
}

function errorRow(id: string, msg: string, timedOut = false): ResponseRow {
  return { id, status_code: null, content: null, headers: null, content_type: null, timed_out: timedOut, error_msg: msg };
}

/** Builds fetch headers from the queue row's "key: value" lines, as curl would send them. */
export function buildHeaders(lines: (string | null)[] | null, method: string, hasBody: boolean): Headers {
  const h = new Headers();
  for (const line of lines ?? []) {
    if (line === null) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) continue; // curl would send a colon-less line verbatim; HTTP has no such header
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (value === "") continue; // "Name:" with no value: curl sends nothing
    h.append(name, value);
  }
  h.append("User-Agent", USER_AGENT);
  if ((hasBody || method === "POST") && !h.has("Content-Type")) {
    h.set("Content-Type", "application/x-www-form-urlencoded");
  }
  return h;
}

/** Sends one request and returns the response row; never throws. */
export async function send(req: QueuedRequest): Promise<Outcome> {
  const started = performance.now();
  const method = req.method.toUpperCase();
  const out = (row: ResponseRow, detail?: string): Outcome => ({
    row, method, safeUrl: safeUrl(req.url), ms: performance.now() - started, detail,
  });

  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    return out(errorRow(req.id, CURL.URL_MALFORMAT));
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return out(errorRow(req.id, CURL.UNSUPPORTED_PROTOCOL));
  }
  if (method !== "GET" && method !== "POST" && method !== "DELETE") {
    return out(errorRow(req.id, `Unsupported request method ${req.method}`));
  }
  if (req.timeout_milliseconds < 0) return out(errorRow(req.id, CURL.BAD_FUNCTION_ARGUMENT));

  let headers: Headers;
  try {
    headers = buildHeaders(req.headers, method, req.body !== null);
  } catch {
    // fetch refuses header names/values that are not valid HTTP (curl would send them raw)
    return out(errorRow(req.id, CURL.SEND_ERROR), "a header name or value is not valid HTTP");
  }
  if (method === "GET" && req.body !== null) {
    return out(errorRow(req.id, CURL.SEND_ERROR), "fetch cannot send a GET request with a body");
  }

  const ac = new AbortController();
  let timedOut = false;
  const timer = req.timeout_milliseconds > 0
    ? setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, req.timeout_milliseconds)
    : undefined;
  let gotHeaders = false;
  try {
    const res = await fetch(url, {
      method,
      headers,
      body: method === "GET" ? undefined : req.body !== null ? new Uint8Array(req.body) : method === "POST" ? new Uint8Array(0) : undefined,
      redirect: "follow",
      signal: ac.signal,
    });
    gotHeaders = true;
    const bytes = new Uint8Array(await res.arrayBuffer());
    let text = new TextDecoder().decode(bytes);
    const nul = text.indexOf("\0");
    if (nul >= 0) text = text.slice(0, nul);
    const resHeaders: Record<string, string> = {};
    res.headers.forEach((v, k) => (resHeaders[k] = v));
    return out({
      id: req.id,
      status_code: res.status,
      content: text === "" ? null : text,
      headers: resHeaders,
      content_type: res.headers.get("content-type"),
      timed_out: false,
      error_msg: null,
    });
  } catch (err) {
    const ms = performance.now() - started;
    if (timedOut) {
      return out(errorRow(req.id, timeoutMessage(req.timeout_milliseconds, ms, gotHeaders), true));
    }
    const { msg, known } = curlMessage(err);
    const detail = known ? undefined : String(err instanceof Error ? (err.cause ?? err.message) : err)
      .replaceAll(req.url, safeUrl(req.url)).replaceAll(url.href, safeUrl(url.href));
    return out(errorRow(req.id, msg), detail);
  } finally {
    clearTimeout(timer);
  }
}
