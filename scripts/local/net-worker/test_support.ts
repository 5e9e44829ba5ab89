// Test helpers for the net worker: a raw TCP HTTP server that records the exact bytes it receives
// and answers with exactly the bytes a test gives it (no HTTP library in between).
import net from "node:net";
import { Buffer } from "node:buffer";

export interface RawRequest {
  /** The exact bytes received for this request (head and body). */
  raw: string;
  method: string;
  path: string;
  search: URLSearchParams;
  /** Header lines as received, in order ("Name: value"). */
  headerLines: string[];
  body: string;
  /** When the request head had fully arrived (Date.now()). */
  at: number;
}

/** An answer: raw response bytes, or null to never answer (the connection stays open). */
export type Responder = (req: RawRequest) => string | Uint8Array | null | Promise<string | Uint8Array | null>;

export interface RawServer {
  port: number;
  base: string;
  received: RawRequest[];
  /** Connections currently waiting for or receiving an answer. */
  readonly active: number;
  readonly maxActive: number;
  close(): Promise<void>;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A complete HTTP/1.1 response with Content-Length. */
export function httpResponse(status: number, headers: [string, string][], body: string): string {
  const lines = [`HTTP/1.1 ${status} X`, ...headers.map(([k, v]) => `${k}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`];
  return lines.join("\r\n") + "\r\n\r\n" + body;
}

/** The default answer: ?sleep=ms delays it, ?status=n sets the status; JSON {ok, path}. */
export const jsonResponder: Responder = async (req) => {
  const ms = Number(req.search.get("sleep") ?? "0");
  if (ms > 0) await sleep(ms);
  if (req.search.has("hang")) return null;
  return httpResponse(Number(req.search.get("status") ?? "200"), [["Content-Type", "application/json"], ["X-Target", "yes"]],
    JSON.stringify({ ok: true, path: req.path }));
};

export function startRawServer(respond: Responder = jsonResponder): Promise<RawServer> {
  const received: RawRequest[] = [];
  const sockets = new Set<net.Socket>();
  let active = 0;
  let maxActive = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buf = Buffer.alloc(0);
    let handled = false;
    socket.on("data", (chunk: Buffer) => {
      if (handled) return;
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.subarray(0, end).toString("utf8");
      const [requestLine, ...headerLines] = head.split("\r\n");
      const cl = headerLines.find((l) => /^content-length:/i.test(l));
      const length = cl ? Number(cl.split(":")[1].trim()) : 0;
      if (buf.length < end + 4 + length) return;
      handled = true;
      const [method, target] = requestLine.split(" ");
      const url = new URL(target, "http://x");
      const req: RawRequest = {
        raw: buf.subarray(0, end + 4 + length).toString("utf8"),
        method,
        path: url.pathname,
        search: url.searchParams,
        headerLines,
        body: buf.subarray(end + 4, end + 4 + length).toString("utf8"),
        at: Date.now(),
      };
      received.push(req);
      active++;
      maxActive = Math.max(maxActive, active);
      let counted = true;
      const finished = () => {
        if (counted) active--;
        counted = false;
      };
      socket.on("close", finished);
      Promise.resolve(respond(req)).then((answer) => {
        if (answer === null) return; // never answer
        finished();
        if (!socket.destroyed) socket.end(typeof answer === "string" ? Buffer.from(answer, "utf8") : answer);
      }, () => socket.destroy());
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        base: `http://127.0.0.1:${port}`,
        received,
        get active() {
          return active;
        },
        get maxActive() {
          return maxActive;
        },
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** A port nothing listens on. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A listening socket whose accept queue is full, so that a new connect() hangs in the handshake. */
export async function fullBacklog(): Promise<{ port: number; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // never accepts
  const port = (listener.addr as Deno.NetAddr).port;
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 5000; i++) {
    const connected = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port });
      fillers.push(s);
      s.on("error", () => {});
      const t = setTimeout(() => resolve(false), 200);
      s.once("connect", () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (!connected) break; // the queue is full: this connect is hanging
  }
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      listener.close();
    },
  };
}
