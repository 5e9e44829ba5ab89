// A fake Google OAuth token endpoint on 127.0.0.1:<random port> for tests. Each POST /token is
// recorded (form params) and answered by `respond`, which can also hang until the client gives up.

export type FakeAnswer =
  | { status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number }
  | "hang";

export interface FakeGoogleRequest {
  method: string;
  path: string;
  contentType: string | null;
  params: URLSearchParams;
}

export interface FakeGoogle {
  url: string;
  requests: FakeGoogleRequest[];
  /** Highest number of requests in flight at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

export function googleToken(accessToken: string, extra: Record<string, unknown> = {}): FakeAnswer {
  return {
    status: 200,
    body: {
      access_token: accessToken,
      expires_in: 3599,
      scope: "https://www.googleapis.com/auth/youtube.readonly",
      token_type: "Bearer",
      ...extra,
    },
  };
}

export function googleError(status: number, error: string, description: string, headers?: Record<string, string>): FakeAnswer {
  return { status, body: { error, error_description: description }, headers };
}

export function startFakeGoogle(respond: (params: URLSearchParams) => FakeAnswer): FakeGoogle {
  const requests: FakeGoogleRequest[] = [];
  const hanging = new Set<() => void>();
  let inFlight = 0;
  const fake: FakeGoogle = {
    url: "",
    requests,
    maxInFlight: 0,
    async close() {
      for (const resolve of hanging) resolve();
      await server.shutdown();
    },
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    inFlight++;
    fake.maxInFlight = Math.max(fake.maxInFlight, inFlight);
    try {
      const params = new URLSearchParams(await req.text());
      requests.push({
        method: req.method,
        path: new URL(req.url).pathname,
        contentType: req.headers.get("content-type"),
        params,
      });
      const answer = respond(params);
      if (answer === "hang") {
        // Released by close(); the client has given up long before.
        await new Promise<void>((resolve) => hanging.add(resolve));
        return new Response(null, { status: 504 });
      }
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      return new Response(answer.body === undefined ? "" : JSON.stringify(answer.body), {
        status: answer.status,
        headers: { "content-type": "application/json; charset=utf-8", ...answer.headers },
      });
    } finally {
      inFlight--;
    }
  });
  fake.url = `http://127.0.0.1:${server.addr.port}`;
  return fake;
}
