// A small HTTP/1.1 client that behaves like the libcurl easy handle pg_net configures
// (src/core.c init_curl_handle): one new connection per request (no keep-alive), the request
// bytes of http-request.ts, CURLOPT_FOLLOWLOCATION (up to 30 redirects, POST becomes GET on
// 301/302/303, CURLOPT_CUSTOMREQUEST kept), only http and https, CURLOPT_TIMEOUT_MS over the
// whole transfer, curl's 300 s connect timeout, and curl's transfer timers for pg_net's
// timeout message. Built on node:net / node:tls so that nothing rewrites the request.
import dns from "node:dns";
import net from "node:net";
import tls from "node:tls";
import { type CurlCode, type Timings, TransferTimers } from "./curl.ts";
import { concat, headerValue, type ResponseHead, ResponseReader } from "./http-response.ts";
import { requestHead, type RequestHead } from "./http-request.ts";
import { parseTarget, resolveLocation, type Target } from "./http-target.ts";

/** The easy-handle options pg_net sets for one queue row. */
export interface CurlRequest {
  url: string;
  /** CURLOPT_CUSTOMREQUEST ("GET" with a body, "DELETE"), or null. */
  customMethod: string | null;
  /** The request kind is POST: CURLOPT_POSTFIELDS, or CURLOPT_POST with POSTFIELDSIZE 0. */
  post: boolean;
  /** The POSTFIELDS bytes (empty when there are none). */
  body: Uint8Array;
  /** CURLOPT_HTTPHEADER lines. */
  headers: string[];
  /** CURLOPT_TIMEOUT_MS; 0 = no limit. */
  timeoutMs: number;
}

export type CurlResult =
  | {
    ok: true;
    /** CURLINFO_RESPONSE_CODE: the last response's status. */
    status: number;
    /** Headers of the first response of the chain (pg_net reads request 0). */
    headers: [string, string][];
    /** Content-Type of the last response (pg_net reads request -1). */
    contentType: string | null;
    body: Uint8Array;
    timings: Timings;
  }
  | { ok: false; code: CurlCode; detail: string; timings: Timings };

export const MAX_REDIRECTS = 30; // CURLOPT_MAXREDIRS default since libcurl 8.3
const CONNECT_TIMEOUT_MS = 300_000; // libcurl's DEFAULT_CONNECT_TIMEOUT
const EXPECT_100_TIMEOUT_MS = 1000; // CURLOPT_EXPECT_100_TIMEOUT_MS default

type Step<T> = { ok: true; value: T } | { ok: false; code: CurlCode; detail: string };
const failed = (code: CurlCode, detail: string) => ({ ok: false as const, code, detail });

function errText(e: unknown): string {
  const code = (e as { code?: string })?.code;
  const msg = e instanceof Error ? e.message : String(e);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

/** Runs op until it settles or the deadline passes; on timeout calls abort. */
function withDeadline<T>(deadline: number, op: (settle: (s: Step<T>) => void) => () => void): Promise<Step<T>> {
  return new Promise((resolve) => {
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = (s: Step<T>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(s);
    };
    const abort = op(settle);
    // timers may fire a little early: like curl, time out only once the deadline has passed
    const arm = () => {
      timer = setTimeout(() => {
        if (done) return;
        if (performance.now() < deadline) return arm();
        abort();
        settle(failed("OPERATION_TIMEDOUT", "timeout"));
      }, Math.max(deadline - performance.now(), 0));
    };
    if (Number.isFinite(deadline)) arm();
  });
}

function lookup(host: string, deadline: number): Promise<Step<{ address: string; family: number }[]>> {
  const family = net.isIP(host.split("%")[0]);
  if (family) return Promise.resolve({ ok: true, value: [{ address: host, family }] });
  return withDeadline(deadline, (settle) => {
    dns.lookup(host, { all: true, verbatim: true }, (err, addresses) => {
      if (err || addresses.length === 0) settle(failed("COULDNT_RESOLVE_HOST", `Could not resolve host: ${host}`));
      else settle({ ok: true, value: addresses });
    });
    return () => {};
  });
}

function connectTcp(address: string, family: number, port: number, deadline: number): Promise<Step<net.Socket>> {
  return withDeadline(deadline, (settle) => {
    const socket = net.connect({ host: address, port, family });
    socket.once("connect", () => {
      socket.removeAllListeners("error");
      settle({ ok: true, value: socket });
    });
    socket.once("error", (e) => settle(failed("COULDNT_CONNECT", `Failed to connect to ${address} port ${port}: ${errText(e)}`)));
    return () => socket.destroy();
  });
}

function startTls(socket: net.Socket, host: string, deadline: number): Promise<Step<net.Socket>> {
  return withDeadline(deadline, (settle) => {
    const secure = tls.connect({
      socket,
      host,
      servername: net.isIP(host) ? undefined : host,
      ALPNProtocols: ["http/1.1"],
    });
    secure.once("secureConnect", () => {
      secure.removeAllListeners("error");
      settle({ ok: true, value: secure });
    });
    secure.once("error", (e) => {
      const t = errText(e);
      const verify = /cert|issuer|self.signed|verify|NotValidForName|expired|altname/i.test(t);
      settle(failed(verify ? "PEER_FAILED_VERIFICATION" : "SSL_CONNECT_ERROR", t));
      secure.destroy();
    });
    return () => secure.destroy();
  });
}

/** Writes the request and reads the response; wantBody(head) false stops after the head. */
function exchange(
  socket: net.Socket,
  head: RequestHead,
  body: Uint8Array | null,
  deadline: number,
  timers: TransferTimers,
  wantBody: (h: ResponseHead) => boolean,
): Promise<Step<{ head: ResponseHead; body: Uint8Array }>> {
  return withDeadline(deadline, (settle) => {
    const reader = new ResponseReader();
    let written = false;
    let bodyPending = body !== null && body.length > 0 && head.expect100;
    let expectTimer: ReturnType<typeof setTimeout> | undefined;
    const finish = (s: Step<{ head: ResponseHead; body: Uint8Array }>) => {
      clearTimeout(expectTimer);
      socket.destroy();
      settle(s);
    };
    const sendBody = () => {
      if (!bodyPending) return;
      bodyPending = false;
      socket.write(body!);
    };
    const check = () => {
      if (bodyPending && reader.interim.includes(100)) sendBody();
      if (bodyPending && reader.head) bodyPending = false; // a final answer came first: no body
      if (reader.error) return finish(failed(reader.error.code, reader.error.detail));
      if (reader.head && !wantBody(reader.head)) return finish({ ok: true, value: { head: reader.head, body: new Uint8Array(0) } });
      if (reader.done && reader.head) {
        const bytes = reader.body.reduce((a, b) => concat(a, b), new Uint8Array(0));
        return finish({ ok: true, value: { head: reader.head, body: bytes } });
      }
    };
    socket.on("data", (chunk: Uint8Array) => {
      reader.feed(chunk);
      check();
    });
    socket.on("end", () => {
      reader.end();
      check();
    });
    socket.on("error", (e) => {
      check();
      finish(failed(written || reader.received > 0 ? "RECV_ERROR" : "SEND_ERROR", errText(e)));
    });
    socket.on("close", () => {
      reader.end();
      check();
      finish(failed("RECV_ERROR", "connection closed"));
    });
    const first = body !== null && body.length > 0 && !head.expect100 ? concat(head.bytes, body) : head.bytes;
    socket.write(first, () => (written = true));
    timers.mark("pretransfer"); // curl's before_perform: the request has been handed over
    if (bodyPending) expectTimer = setTimeout(sendBody, EXPECT_100_TIMEOUT_MS);
    return () => socket.destroy();
  });
}

async function connect(target: Target, deadline: number, timers: TransferTimers): Promise<Step<net.Socket>> {
  const connectDeadline = Math.min(deadline, performance.now() + CONNECT_TIMEOUT_MS);
  const addrs = await lookup(target.host, connectDeadline);
  if (!addrs.ok) return addrs;
  timers.mark("namelookup");
  let last: Step<net.Socket> = failed("COULDNT_CONNECT", "no address");
  for (const a of addrs.value) {
    last = await connectTcp(a.address, a.family, target.port, connectDeadline);
    if (last.ok || last.code === "OPERATION_TIMEDOUT") break;
  }
  if (!last.ok) return last;
  timers.mark("connect");
  if (target.scheme === "http") return last;
  const secure = await startTls(last.value, target.host, connectDeadline);
  if (!secure.ok) last.value.destroy();
  else timers.mark("appconnect");
  return secure;
}

/** curl_easy_perform for one request, following redirects. Never throws. */
export async function perform(req: CurlRequest): Promise<CurlResult> {
  const timers = new TransferTimers();
  const deadline = req.timeoutMs > 0 ? timers.start + req.timeoutMs : Infinity;
  const fail = (code: CurlCode, detail: string): CurlResult => ({ ok: false, code, detail, timings: timers.snapshot() });
  try {
    let url = req.url;
    let post = req.post;
    let first: Target | null = null;
    let firstHeaders: [string, string][] | null = null;
    for (let redirects = 0;; redirects++) {
      const target = parseTarget(url);
      if ("error" in target) return fail(target.error, target.detail);
      first ??= target;
      const otherHostName = target.host.toLowerCase() !== first.host.toLowerCase();
      const otherHost = otherHostName || target.port !== first.port || target.scheme !== first.scheme;
      const head = requestHead(target, {
        method: req.customMethod ?? (post ? "POST" : "GET"),
        post,
        bodyLength: post ? req.body.length : 0,
        headers: req.headers,
        otherHost,
        otherHostName,
      });
      const location = (h: ResponseHead) => (h.status >= 300 && h.status < 400 && headerValue(h, "location")) || null;
      timers.startRequest();
      const socket = await connect(target, deadline, timers);
      if (!socket.ok) return fail(socket.code, socket.detail);
      const x = await exchange(socket.value, head, post ? req.body : null, deadline, timers, (h) => location(h) === null);
      if (!x.ok) return fail(x.code, x.detail);
      firstHeaders ??= x.value.head.headers;
      const next = location(x.value.head);
      if (next === null) {
        const { head: last, body } = x.value;
        return { ok: true, status: last.status, headers: firstHeaders, contentType: headerValue(last, "content-type"), body, timings: timers.snapshot() };
      }
      if (redirects >= MAX_REDIRECTS) return fail("TOO_MANY_REDIRECTS", `Maximum (${MAX_REDIRECTS}) redirects followed`);
      const resolved = resolveLocation(next, target);
      if (resolved === null) return fail("URL_MALFORMAT", "bad Location");
      if (post && [301, 302, 303].includes(x.value.head.status)) post = false;
      url = resolved;
    }
  } catch (e) {
    return fail("RECV_ERROR", `local client error: ${errText(e)}`);
  }
}
