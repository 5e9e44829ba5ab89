// Network ends a client test needs besides a fake provider: a server that takes the request and
// never answers, and a port nobody listens on.

/** A TCP server that reads the request and closes the connection without answering. */
export function startDropper(): { url: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      try {
        await conn.read(new Uint8Array(65_536));
      } catch { /* closed */ }
      conn.close();
    }
  })().catch(() => {});
  return { url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, close: () => listener.close() };
}

/** The URL of a local port that was free a moment ago (connections to it are refused). */
export function closedPort(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return `http://127.0.0.1:${port}`;
}
