// One pg_net request: the queue row as consume_request_queue returns it, the easy-handle options
// init_curl_handle gives it, and the net._http_response row insert_response writes for its result
// (supabase/pg_net src/core.c).
import { CURLE, timeoutMessage } from "./curl.ts";
import type { CurlRequest, CurlResult } from "./http-client.ts";

export const USER_AGENT = "pg_net/0.20.4";

/** A row of consume_request_queue's DELETE … RETURNING. */
export interface QueuedRequest {
  id: string; // bigint, as text
  method: string;
  url: string;
  timeout_milliseconds: number;
  /** array(select key || ': ' || value from jsonb_each_text(q.headers)): never NULL (an empty
   * array for NULL headers); NULL elements are JSON-null values. */
  headers: (string | null)[] | null;
  body: Uint8Array | null;
}

/** A net._http_response row (without `created`, which is now() of the pass's transaction). */
export interface ResponseRow {
  id: string;
  status_code: number | null;
  content: string | null;
  headers: Record<string, string> | null;
  content_type: string | null;
  timed_out: boolean;
  error_msg: string | null;
}

/** An ERROR pg_net's worker raises while it sets up a pass's handles: the whole pass fails. */
export class PassError extends Error {}

/** The bytes of a C string: TextDatumGetCString() keeps what comes before the first NUL. */
function cString(bytes: Uint8Array): Uint8Array {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

/** init_curl_handle: the options pg_net sets for a queue row. */
export function curlRequest(row: QueuedRequest): CurlRequest {
  const method = row.method.toUpperCase();
  if (method !== "GET" && method !== "POST" && method !== "DELETE") {
    throw new PassError(`Unsupported request method ${row.method}`);
  }
  const headers: string[] = [];
  if (row.headers !== null) {
    for (const h of row.headers) if (h !== null) headers.push(h);
    headers.push(`User-Agent: ${USER_AGENT}`);
  }
  const body = row.body === null ? null : cString(row.body);
  // CURLOPT_TIMEOUT_MS refuses a negative value; EREPORT_CURL_SETOPT makes that an ERROR
  if (row.timeout_milliseconds < 0) throw new PassError("Could not curl_easy_setopt(CURLOPT_TIMEOUT_MS)");
  const empty = new Uint8Array(0);
  const base = { url: row.url, headers, timeoutMs: row.timeout_milliseconds };
  switch (method) {
    case "GET": // a body makes it a POSTFIELDS request sent with the method GET
      return body === null
        ? { ...base, customMethod: null, post: false, body: empty }
        : { ...base, customMethod: "GET", post: true, body };
    case "POST": // CURLOPT_POSTFIELDS, or CURLOPT_POST + POSTFIELDSIZE 0
      return { ...base, customMethod: null, post: true, body: body ?? empty };
    default: // DELETE: CURLOPT_CUSTOMREQUEST, plus POSTFIELDS when there is a body
      return { ...base, customMethod: "DELETE", post: body !== null, body: body ?? empty };
  }
}

const decoder = new TextDecoder();

/** insert_response: the row pg_net stores for a finished transfer. */
export function responseRow(id: string, timeoutMs: number, r: CurlResult): ResponseRow {
  if (!r.ok) {
    const timedOut = r.code === "OPERATION_TIMEDOUT";
    return {
      id, status_code: null, content: null, headers: null, content_type: null, timed_out: timedOut,
      error_msg: timedOut ? timeoutMessage(timeoutMs, r.timings) : CURLE[r.code],
    };
  }
  const body = cString(r.body); // the body is stored as a C string
  return {
    id,
    status_code: r.status,
    content: body.length === 0 ? null : decoder.decode(body),
    headers: Object.fromEntries(r.headers), // a repeated name keeps its last value, as in jsonb
    content_type: r.contentType,
    timed_out: false,
    error_msg: null,
  };
}
