// An in-process fake of one or more providers for handler tests: an injected fetch that records
// every request (which provider by host, method, path, query, headers, body as text, form and
// JSON) and answers with `respond`. "hang" waits until the client aborts (a timeout); "drop"
// fails like a connection that broke, with `dropCause` as the reason Deno puts in the cause.
// Unlike fake_http.ts nothing listens on a port.

export interface FakeFetchRequest<P extends string> {
  provider: P;
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: string;
  form: URLSearchParams;
  json: Record<string, unknown> | null;
}

export type FakeFetchAnswer = { status: number; body?: unknown; headers?: Record<string, string> } | "hang" | "drop";

export interface FakeFetchOptions {
  dropCause?: (url: URL) => string;
}

export function fakeFetch<P extends string>(
  hosts: Record<string, P>,
  respond: (req: FakeFetchRequest<P>) => FakeFetchAnswer,
  opts: FakeFetchOptions = {},
): { requests: FakeFetchRequest<P>[]; fetch: typeof fetch } {
  const requests: FakeFetchRequest<P>[] = [];
  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const body = init?.body === undefined || init.body === null ? "" : init.body instanceof URLSearchParams ? init.body.toString() : String(init.body);
    const provider = hosts[url.host];
    if (provider === undefined) throw new TypeError(`unexpected host ${url.host}`);
    let json: Record<string, unknown> | null = null;
    try {
      json = body ? JSON.parse(body) : null;
    } catch { /* form */ }
    const req: FakeFetchRequest<P> = {
      provider,
      method: init?.method ?? "GET",
      path: url.pathname,
      query: url.searchParams,
      headers: new Headers(init?.headers),
      body,
      form: new URLSearchParams(body),
      json,
    };
    requests.push(req);
    const a = respond(req);
    if (a === "hang") {
      return await new Promise<Response>((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)));
    }
    if (a === "drop") {
      throw new TypeError("fetch failed", { cause: new Error(opts.dropCause?.(url) ?? "connection closed before message completed") });
    }
    return Response.json(a.body ?? {}, { status: a.status, headers: a.headers });
  };
  return { requests, fetch: f as typeof fetch };
}
