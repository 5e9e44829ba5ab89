// The provider sandbox's control API, as the benchmark uses it: reset between runs (bounded
// memory), register the run's refresh tokens and latency, read per-token refresh counts.
export interface SandboxClient {
  /** Reloads the fixtures (drops earlier runs' tokens) and clears the request log. */
  reset(): Promise<void>;
  register(tokens: string[], latencyMs: number): Promise<void>;
  /** Fake Google's refresh_count per refresh token. */
  refreshCounts(): Promise<Map<string, number>>;
  /** Epoch ms of the first and last refresh the fake Google saw (null: none). */
  refreshWindow(): Promise<{ first: number | null; last: number | null }>;
}

async function call(url: string, init: RequestInit): Promise<unknown> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${url}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

interface GoogleTokenState {
  refresh_token: string;
  refresh_count: number;
  last_refreshed_at: string | null;
}

export function sandboxClient(sandboxUrl: string): SandboxClient {
  const json = { "content-type": "application/json" };
  const googleTokens = async () => {
    const body = await call(`${sandboxUrl}/__state/google_oauth`, { method: "GET" }) as {
      state: { refresh_tokens: GoogleTokenState[] };
    };
    return body.state.refresh_tokens;
  };
  return {
    async reset() {
      await call(`${sandboxUrl}/__reset`, { method: "POST" });
      await call(`${sandboxUrl}/__requests`, { method: "DELETE" });
    },
    async register(tokens, latencyMs) {
      await call(`${sandboxUrl}/__state/google_oauth`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ refresh_tokens: tokens.map((refresh_token) => ({ refresh_token })), latency_ms: latencyMs }),
      });
    },
    async refreshCounts() {
      return new Map((await googleTokens()).map((t) => [t.refresh_token, t.refresh_count]));
    },
    async refreshWindow() {
      const times = (await googleTokens()).flatMap((t) => t.last_refreshed_at ? [Date.parse(t.last_refreshed_at)] : []);
      return times.length === 0
        ? { first: null, last: null }
        : { first: times.reduce((a, b) => Math.min(a, b)), last: times.reduce((a, b) => Math.max(a, b)) };
    },
  };
}

/** N fresh refresh tokens for one run: prefix + 1..N. */
export function runTokens(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
}

/** Provider-side check: this run's tokens whose refresh_count is not exactly 1. */
export function providerCheck(counts: Map<string, number>, tokens: string[]): { calls: number; notExactlyOnce: number; duplicateCalls: number } {
  let calls = 0;
  let notExactlyOnce = 0;
  let duplicateCalls = 0;
  for (const t of tokens) {
    const c = counts.get(t) ?? 0;
    calls += c;
    if (c !== 1) notExactlyOnce += 1;
    if (c > 1) duplicateCalls += c - 1;
  }
  return { calls, notExactlyOnce, duplicateCalls };
}
