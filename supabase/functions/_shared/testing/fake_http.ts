// A fake provider on 127.0.0.1:<random port> for client tests: records every request (method,
// path, query, headers, body text) and answers with `respond`, which can also hang until the
// client gives up. Unlike fake_google.ts it is not tied to one endpoint or body format.

import type { FakeAnswer } from "./fake_google.ts";

export type { FakeAnswer } from "./fake_google.ts";

export interface FakeHttpRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: string;
}

export interface FakeHttp {
  url: string;
  requests: FakeHttpRequest[];
  close(): Promise<void>;
}

export function startFakeHttp(respond: (req: FakeHttpRequest) => FakeAnswer): FakeHttp {
  const requests: FakeHttpRequest[] = [];
  const hanging = new Set<() => void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (raw) => {
    const url = new URL(raw.url);
    const req: FakeHttpRequest = {
      method: raw.method,
      path: url.pathname,
      query: url.searchParams,
      headers: raw.headers,
      body: await raw.text(),
    };
    requests.push(req);
    const answer = respond(req);
    if (answer === "hang") {
      // Released by close(); the client has given up long before.
      await new Promise<void>((resolve) => hanging.add(resolve));
      return new Response(null, { status: 504 });
    }
    if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
    return new Response(
      answer.body === undefined ? "" : typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body),
      { status: answer.status, headers: { "content-type": "application/json; charset=UTF-8", ...answer.headers } },
    );
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async close() {
      for (const resolve of hanging) resolve();
      await server.shutdown();
    },
  };
}
