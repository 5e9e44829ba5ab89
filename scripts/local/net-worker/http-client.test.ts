// The local pg_net HTTP client against raw TCP servers: the exact request bytes libcurl would
// send for pg_net's easy handle, response framing, redirects, curl's error texts and pg_net's
// detailed timeout message. No database needed.
//   npx deno test -A scripts/local/net-worker/http-client.test.ts
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { timeoutMessage } from "./curl.ts";
import { perform } from "./http-client.ts";
import { curlRequest, PassError, type QueuedRequest, responseRow } from "./request.ts";
import { freePort, fullBacklog, httpResponse, type Responder, startRawServer } from "./test_support.ts";

const test = (name: string, fn: () => Promise<void> | void) => Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

function queued(o: Partial<QueuedRequest>): QueuedRequest {
  return { id: "7", method: "GET", url: "", timeout_milliseconds: 5000, headers: [], body: null, ...o };
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** Sends one queue row to a raw server; returns what the server received and the response row. */
async function roundTrip(o: Partial<QueuedRequest> & { path?: string }, respond?: Responder) {
  const server = await startRawServer(respond);
  try {
    const q = queued({ ...o, url: o.url ?? `${server.base}${o.path ?? "/"}` });
    const result = await perform(curlRequest(q));
    return { server, received: server.received, result, row: responseRow(q.id, q.timeout_milliseconds, result) };
  } finally {
    await server.close();
  }
}

test("http client: a GET sends only Host, Accept: */* and the row's headers with their case, then pg_net's User-Agent", async () => {
  const { received, server } = await roundTrip({ path: "/items?q=1", headers: ["X-Baz: qux", "apikey: k"] });
  assert.equal(received.length, 1);
  assert.equal(
    received[0].raw,
    `GET /items?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAccept: */*\r\nX-Baz: qux\r\napikey: k\r\nUser-Agent: pg_net/0.20.4\r\n\r\n`,
  );
});

test("http client: a POST with a body sends Content-Length after the headers, and the row's Content-Type instead of curl's", async () => {
  const body = json({ hello: "wörld" });
  const { received, server } = await roundTrip({
    method: "POST", path: "/hook", body, headers: ["Content-Type: application/json", "X-Request-Id: abc"],
  });
  assert.equal(
    received[0].raw,
    `POST /hook HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAccept: */*\r\nContent-Type: application/json\r\nX-Request-Id: abc\r\n` +
      `User-Agent: pg_net/0.20.4\r\nContent-Length: ${body.length}\r\n\r\n{"hello":"wörld"}`,
  );
});

test("http client: POSTFIELDS rules: POST without body, DELETE with and without body, GET with body", async () => {
  const port = (s: { port: number }) => s.port;
  let r = await roundTrip({ method: "POST", path: "/a" });
  assert.equal(r.received[0].raw, `POST /a HTTP/1.1\r\nHost: 127.0.0.1:${port(r.server)}\r\nAccept: */*\r\nUser-Agent: pg_net/0.20.4\r\n` +
    `Content-Length: 0\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n`);
  r = await roundTrip({ method: "DELETE", path: "/b" });
  assert.equal(r.received[0].raw, `DELETE /b HTTP/1.1\r\nHost: 127.0.0.1:${port(r.server)}\r\nAccept: */*\r\nUser-Agent: pg_net/0.20.4\r\n\r\n`);
  r = await roundTrip({ method: "DELETE", path: "/c", body: json({ why: 1 }) });
  assert.equal(r.received[0].raw, `DELETE /c HTTP/1.1\r\nHost: 127.0.0.1:${port(r.server)}\r\nAccept: */*\r\nUser-Agent: pg_net/0.20.4\r\n` +
    `Content-Length: 9\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n{"why":1}`);
  r = await roundTrip({ method: "get", path: "/d", body: new TextEncoder().encode("x=1\0ignored") });
  assert.equal(r.received[0].raw, `GET /d HTTP/1.1\r\nHost: 127.0.0.1:${port(r.server)}\r\nAccept: */*\r\nUser-Agent: pg_net/0.20.4\r\n` +
    `Content-Length: 3\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nx=1`, "the body is a C string: cut at the first NUL");
});

test("http client: a custom header replaces curl's own; an empty value only removes it; a row User-Agent is sent as well", async () => {
  const { received, server } = await roundTrip({
    path: "/", headers: ["Accept: application/json", "X-Empty: ", "User-Agent: mine"],
  });
  assert.equal(received[0].raw, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAccept: application/json\r\nUser-Agent: mine\r\n` +
    `User-Agent: pg_net/0.20.4\r\n\r\n`);
  const r = await roundTrip({ path: "/", headers: ["Accept: "] });
  assert.equal(r.received[0].raw, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${r.server.port}\r\nUser-Agent: pg_net/0.20.4\r\n\r\n`, "\"Accept:\" removes curl's Accept");
});

test("http client: response header names are stored as the server sent them; a repeated name keeps its last value", async () => {
  const { row } = await roundTrip({ path: "/" }, () =>
    "HTTP/1.1 201 Created\r\nX-Mixed-Case: A\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nMissingValue: \r\n" +
    "Spaces In Header Name: yes\r\nFolded: one\r\n two\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello");
  assert.equal(row.status_code, 201);
  assert.deepEqual(row.headers, {
    "X-Mixed-Case": "A", "Set-Cookie": "b=2", "MissingValue": "", "Spaces In Header Name": "yes", "Folded": "one two",
    "Content-Type": "text/plain; charset=utf-8", "Content-Length": "5",
  });
  assert.equal(row.content_type, "text/plain; charset=utf-8");
  assert.equal(row.content, "hello");
  assert.equal(row.timed_out, false);
  assert.equal(row.error_msg, null);
});

test("http client: bodies framed by chunked encoding, by the end of the connection, and a 100 Continue skipped", async () => {
  let r = await roundTrip({ path: "/" }, () =>
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n");
  assert.equal(r.row.content, "hello, world");
  r = await roundTrip({ path: "/" }, () => "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
  assert.equal(r.row.content, "until the end");
  r = await roundTrip({ path: "/" }, () => "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  assert.equal(r.row.status_code, 200);
  assert.deepEqual(r.row.headers, { "Content-Length": "2" });
  r = await roundTrip({ path: "/" }, () => "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
  assert.equal(r.row.status_code, 204);
  assert.equal(r.row.content, null, "an empty body is NULL");
  r = await roundTrip({ path: "/" }, () => "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nab\0cdef");
  assert.equal(r.row.content, "ab", "content is a C string: cut at the first NUL");
});

test("http client: curl's errors for broken replies", async () => {
  const cases: [string, Responder, string][] = [
    ["nothing", () => "", "Server returned nothing (no headers, no data)"],
    ["partial body", () => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "Transferred a partial file"],
    ["header without colon", () => "HTTP/1.1 200 OK\r\nHeaderInjection\r\nContent-Length: 0\r\n\r\n", "Weird server reply"],
    ["HTTP/0.9", () => "hello there\r\n", "Unsupported protocol"],
    ["bad chunk", () => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "Failure when receiving data from the peer"],
  ];
  for (const [what, respond, msg] of cases) {
    const { row } = await roundTrip({ path: "/" }, respond);
    assert.equal(row.error_msg, msg, what);
    assert.equal(row.status_code, null, what);
    assert.equal(row.timed_out, false, what);
  }
});

test("http client: connection refused, unknown host, unsupported scheme", async () => {
  const port = freePort();
  const send = async (url: string) => responseRow("1", 5000, await perform(curlRequest(queued({ url }))));
  assert.equal((await send(`http://127.0.0.1:${port}/`)).error_msg, "Couldn't connect to server");
  assert.equal((await send("http://no-such-host.invalid/")).error_msg, "Couldn't resolve host name");
  assert.equal((await send("ftp://127.0.0.1/file")).error_msg, "Unsupported protocol");
});

test("http client: redirects are followed; POST becomes GET on 302; headers are the first response's, content type the last's", async () => {
  const { received, row } = await roundTrip({ method: "POST", path: "/start", body: json({ a: 1 }), headers: ["Content-Type: application/json"] },
    (req) =>
      req.path === "/start"
        ? httpResponse(302, [["Location", "/next?x=1"], ["X-First", "1"], ["Content-Type", "text/html"]], "moved")
        : httpResponse(200, [["Content-Type", "application/json"], ["X-Last", "1"]], `{"method":"${req.method}"}`));
  assert.deepEqual(received.map((r) => `${r.method} ${r.path}`), ["POST /start", "GET /next"]);
  assert.doesNotMatch(received[1].raw, /Content-Length/, "the GET after a 302 has no body");
  assert.equal(row.status_code, 200);
  assert.equal(row.headers!["X-First"], "1");
  assert.equal(row.headers!["X-Last"], undefined);
  assert.equal(row.content_type, "application/json");
  assert.equal(row.content, `{"method":"GET"}`);
});

test("http client: 307 keeps the method and body; DELETE stays DELETE on 303; 31 redirects are too many", async () => {
  let r = await roundTrip({ method: "POST", path: "/a", body: json(1) }, (req) =>
    req.path === "/a" ? httpResponse(307, [["Location", "/b"]], "") : httpResponse(200, [], req.method + " " + req.body));
  assert.equal(r.row.content, "POST 1");
  r = await roundTrip({ method: "DELETE", path: "/a" }, (req) =>
    req.path === "/a" ? httpResponse(303, [["Location", "/b"]], "") : httpResponse(200, [], req.method));
  assert.equal(r.row.content, "DELETE", "CURLOPT_CUSTOMREQUEST applies to every request of the chain");
  r = await roundTrip({ path: "/loop" }, () => httpResponse(301, [["Location", "/loop"]], ""));
  assert.equal(r.received.length, 31);
  assert.equal(r.row.error_msg, "Number of redirects hit maximum amount");
});

test("http client: a server that accepts and never answers times out in the HTTP Request/Response step", async () => {
  const server = await startRawServer(() => null);
  try {
    const q = queued({ url: `${server.base}/hang`, timeout_milliseconds: 300 });
    const result = await perform(curlRequest(q));
    const row = responseRow(q.id, 300, result);
    assert.equal(row.timed_out, true);
    assert.equal(row.status_code, null);
    const m = /^Timeout of 300 ms reached\. Total time: (\d+\.\d{6}) ms \(DNS time: (\d+\.\d{6}) ms, TCP\/SSL handshake time: (\d+\.\d{6}) ms, HTTP Request\/Response time: (\d+\.\d{6}) ms\)$/
      .exec(row.error_msg!);
    assert.ok(m, row.error_msg!);
    const [total, dns, handshake, http] = m.slice(1).map(Number);
    assert.ok(total >= 300 && total < 600, `total ${total}`);
    assert.ok(dns > 0 && dns < 50, `dns ${dns}`);
    assert.ok(handshake > 0 && handshake < 100, `handshake ${handshake}`);
    assert.ok(http > 250, `http ${http}`);
    assert.ok(Math.abs(total - (dns + handshake + http)) < 5, "the three steps add up to the total");
  } finally {
    await server.close();
  }
});

test("http client: a connect that never completes (full accept queue) times out in the TCP/SSL handshake step", async () => {
  const backlog = await fullBacklog();
  try {
    const q = queued({ url: `http://127.0.0.1:${backlog.port}/`, timeout_milliseconds: 300 });
    const row = responseRow(q.id, 300, await perform(curlRequest(q)));
    assert.equal(row.timed_out, true);
    const m = /Total time: (\d+\.\d+) ms \(DNS time: (\d+\.\d+) ms, TCP\/SSL handshake time: (\d+\.\d+) ms, HTTP Request\/Response time: (\d+\.\d+) ms\)$/
      .exec(row.error_msg!);
    assert.ok(m, row.error_msg!);
    const [total, dns, handshake, http] = m.slice(1).map(Number);
    assert.ok(dns > 0 && dns < 50, `dns ${dns}`);
    assert.ok(handshake > 250, `handshake ${handshake}`);
    assert.equal(http, 0);
    assert.ok(Math.abs(total - (dns + handshake)) < 1);
  } finally {
    backlog.close();
  }
});

test("curl timeout message: pg_net's formula for the DNS, handshake and HTTP steps", () => {
  assert.equal(
    timeoutMessage(800, { namelookup: 0, connect: 0, appconnect: 0, pretransfer: 0, total: 801.5 }),
    "Timeout of 800 ms reached. Total time: 801.500000 ms (DNS time: 801.500000 ms, TCP/SSL handshake time: 0.000000 ms, HTTP Request/Response time: 0.000000 ms)",
  );
  assert.equal(
    timeoutMessage(800, { namelookup: 73.25, connect: 0, appconnect: 0, pretransfer: 0, total: 801 }),
    "Timeout of 800 ms reached. Total time: 801.000000 ms (DNS time: 73.250000 ms, TCP/SSL handshake time: 727.750000 ms, HTTP Request/Response time: 0.000000 ms)",
  );
  assert.equal(
    timeoutMessage(800, { namelookup: 10, connect: 30, appconnect: 70, pretransfer: 71, total: 800.5 }),
    "Timeout of 800 ms reached. Total time: 800.500000 ms (DNS time: 10.000000 ms, TCP/SSL handshake time: 60.000000 ms, HTTP Request/Response time: 729.500000 ms)",
  );
  assert.equal(
    timeoutMessage(800, { namelookup: 10, connect: 30, appconnect: 0, pretransfer: 31, total: 800 }),
    "Timeout of 800 ms reached. Total time: 800.000000 ms (DNS time: 10.000000 ms, TCP/SSL handshake time: 20.000000 ms, HTTP Request/Response time: 769.000000 ms)",
  );
});

test("request setup: a negative timeout_milliseconds is an ERROR of the pass, as CURLOPT_TIMEOUT_MS refuses it", () => {
  assert.throws(() => curlRequest(queued({ url: "http://x/", timeout_milliseconds: -1 })), (e: Error) => {
    assert.ok(e instanceof PassError);
    assert.equal(e.message, "Could not curl_easy_setopt(CURLOPT_TIMEOUT_MS)");
    return true;
  });
});

test("http client: https with a certificate that does not verify stores curl's verification error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const openssl = await new Deno.Command("openssl", {
      args: ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`,
        "-days", "1", "-subj", "/CN=localhost"],
      stdout: "null", stderr: "null",
    }).output().catch(() => null);
    if (!openssl?.success) {
      console.warn("openssl is not available; skipping the TLS test");
      return;
    }
    const listener = Deno.listenTls({
      hostname: "127.0.0.1", port: 0,
      cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`),
    });
    const port = (listener.addr as Deno.NetAddr).port;
    const accepting = (async () => {
      for await (const conn of listener) {
        conn.handshake().catch(() => {}).finally(() => conn.close());
      }
    })().catch(() => {});
    try {
      const row = responseRow("1", 5000, await perform(curlRequest(queued({ url: `https://localhost:${port}/` }))));
      assert.equal(row.error_msg, "SSL peer certificate or SSH remote key was not OK");
    } finally {
      listener.close();
      await accepting;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("http client: a body above 1 MiB waits for 100 Continue, as curl's Expect: 100-continue", async () => {
  const big = Buffer.alloc(1024 * 1024 + 1, "a");
  const { received, row } = await roundTrip({ method: "POST", path: "/big", body: big }, (req) => httpResponse(200, [], String(req.body.length)));
  assert.match(received[0].raw, /\r\nExpect: 100-continue\r\n\r\n/);
  assert.equal(row.content, String(big.length), "the body follows after the 1 s Expect timeout");
});
