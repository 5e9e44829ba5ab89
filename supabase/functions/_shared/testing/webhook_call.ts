// Calls a provider webhook's handler (twilio-status, unipile-webhook) the way the tests of each
// do: built with the test's store behind a counter (a handler asks for its store only once the
// request is verified, so the count says whether anything could have touched the database) and
// a log collector; a GET or HEAD carries no body.

export interface WebhookCall {
  status: number;
  text: string;
  contentType: string | null;
  /** Times the handler asked for its store. */
  storeCalls: number;
  logs: string[];
}

/** What a webhook test varies per call, besides what its provider signs or sends. */
export interface WebhookCallOptions<S> {
  env?: Record<string, string | undefined>;
  method?: string;
  headers?: Record<string, string>;
  /** Replaces methods of the test's store (a failing database). */
  store?: Partial<S>;
}

export interface WebhookRequest {
  url: string;
  method?: string;
  headers: Record<string, string>;
  body: BodyInit;
}

export async function callWebhook<S>(
  build: (deps: { store: () => S; log: (line: string) => void }) => (req: Request) => Promise<Response>,
  store: S,
  request: WebhookRequest,
): Promise<WebhookCall> {
  let storeCalls = 0;
  const logs: string[] = [];
  const handler = build({
    store: () => {
      storeCalls++;
      return store;
    },
    log: (l) => logs.push(l),
  });
  const method = request.method ?? "POST";
  const res = await handler(new Request(request.url, {
    method,
    headers: request.headers,
    body: method === "GET" || method === "HEAD" ? undefined : request.body,
  }));
  const text = await res.text();
  return { status: res.status, text, contentType: res.headers.get("content-type"), storeCalls, logs };
}

/** `text` as a stream of 8 KiB chunks: a body without a Content-Length. */
export function chunkedBody(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 8192) c.enqueue(bytes.slice(i, i + 8192));
      c.close();
    },
  });
}
