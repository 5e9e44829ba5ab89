// What libcurl reports about a transfer, as pg_net stores it: the curl_easy_strerror() text of a
// CURLcode (src/core.c insert_response) and the detailed timeout message of
// src/errors.c detailed_timeout_strerror, computed from curl's transfer timers.

/** curl_easy_strerror() texts of the CURLcodes the local client can end with (libcurl 7.88–8.4). */
export const CURLE = {
  UNSUPPORTED_PROTOCOL: "Unsupported protocol",
  URL_MALFORMAT: "URL using bad/illegal format or missing URL",
  COULDNT_RESOLVE_HOST: "Couldn't resolve host name",
  COULDNT_CONNECT: "Couldn't connect to server",
  WEIRD_SERVER_REPLY: "Weird server reply",
  PARTIAL_FILE: "Transferred a partial file",
  OPERATION_TIMEDOUT: "Timeout was reached",
  SSL_CONNECT_ERROR: "SSL connect error",
  TOO_MANY_REDIRECTS: "Number of redirects hit maximum amount",
  GOT_NOTHING: "Server returned nothing (no headers, no data)",
  SEND_ERROR: "Failed sending data to the peer",
  RECV_ERROR: "Failure when receiving data from the peer",
  PEER_FAILED_VERIFICATION: "SSL peer certificate or SSH remote key was not OK",
} as const;

export type CurlCode = keyof typeof CURLE;

/**
 * curl's transfer timers in milliseconds (CURLINFO_NAMELOOKUP_TIME, _CONNECT_TIME,
 * _APPCONNECT_TIME, _PRETRANSFER_TIME, _TOTAL_TIME). A timer that was not reached is 0. Like
 * curl's progress timers, each step of a redirect chain adds its own time since the start of its
 * request, with at least 1 µs once the step happened; total is the time since the transfer began.
 */
export interface Timings {
  namelookup: number;
  connect: number;
  appconnect: number;
  pretransfer: number;
  total: number;
}

/** The timers of one transfer (all requests of its redirect chain). */
export class TransferTimers {
  readonly start = performance.now();
  private requestStart = this.start;
  private readonly t: Omit<Timings, "total"> = { namelookup: 0, connect: 0, appconnect: 0, pretransfer: 0 };

  /** TIMER_STARTSINGLE: a request of the chain begins. */
  startRequest(): void {
    this.requestStart = performance.now();
  }

  /** Curl_pgrsTime(): the step happened now. */
  mark(step: keyof Omit<Timings, "total">): void {
    this.t[step] += Math.max(performance.now() - this.requestStart, 0.001);
  }

  snapshot(): Timings {
    return { ...this.t, total: performance.now() - this.start };
  }
}

/** src/errors.c detailed_timeout_strerror, with the timers in ms instead of seconds. */
export function timeoutMessage(timeoutMs: number, t: Timings): string {
  const atDns = t.namelookup === 0 && t.connect === 0;
  const atHandshake = t.pretransfer === 0;
  const atHttp = t.pretransfer > 0;
  const dns = atDns ? t.total : atHandshake ? t.namelookup : atHttp ? t.namelookup : 0;
  const handshake = atDns ? 0 : atHandshake ? t.total - t.namelookup : atHttp
    ? (t.connect - t.namelookup) + (t.appconnect > 0 ? t.appconnect - t.connect : 0)
    : 0;
  const http = atDns ? 0 : atHandshake ? 0 : atHttp ? t.total - t.pretransfer : 0;
  const f = (ms: number) => ms.toFixed(6); // printf("%f")
  return `Timeout of ${Math.trunc(timeoutMs)} ms reached. Total time: ${f(t.total)} ms (DNS time: ${f(dns)} ms, ` +
    `TCP/SSL handshake time: ${f(handshake)} ms, HTTP Request/Response time: ${f(http)} ms)`;
}
