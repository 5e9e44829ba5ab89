// The fake Twilio and Resend as W2 uses them: options for a run (latency, callbacks, rate limit)
// and what the fakes saw (the effects that must happen exactly once, the request times).
async function call(url: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${url}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const post = (url: string, body: unknown) =>
  call(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/**
 * Fake latency of both providers. Twilio: latency_ms (every answer waits that long). Resend:
 * processing_ms, the time an accepted send takes before its 200 (the fake's "in flight" window
 * for a same-key request). In W2 every request is an accepted send with a fresh key, so that is a
 * plain 20 ms response delay like Twilio's; only refused requests (a 429) answer at once.
 */
export async function setupReminderFakes(
  sandboxUrl: string,
  opts: { latencyMs: number; callbacks: boolean; resendLimitPerSecond: number | null },
): Promise<void> {
  await post(`${sandboxUrl}/__state/twilio`, { latency_ms: opts.latencyMs, callbacks: { enabled: opts.callbacks } });
  await post(`${sandboxUrl}/__state/resend`, {
    processing_ms: opts.latencyMs,
    rate_limit_per_second: opts.resendLimitPerSecond,
    rate_limit_window: "sliding",
    reset_counters: true,
  });
}

export interface TwilioSeen {
  messages: number;
  /** Phones (of the given list) without exactly one message. */
  notExactlyOnce: number;
  sids: Set<string>;
  callbacksSent: number;
  callbacksFailed: number;
}

export async function twilioSeen(sandboxUrl: string, phones: string[]): Promise<TwilioSeen> {
  const { state } = await call(`${sandboxUrl}/__state/twilio`) as {
    state: { messages: { sid: string; to: string }[]; counters: { callbacks_sent: number; callbacks_failed: number } };
  };
  const perPhone = new Map<string, number>();
  for (const m of state.messages) {
    const to = m.to.replace(/^whatsapp:/, "");
    perPhone.set(to, (perPhone.get(to) ?? 0) + 1);
  }
  return {
    messages: state.messages.length,
    notExactlyOnce: phones.filter((p) => perPhone.get(p) !== 1).length,
    sids: new Set(state.messages.map((m) => m.sid)),
    callbacksSent: state.counters.callbacks_sent,
    callbacksFailed: state.counters.callbacks_failed,
  };
}

export interface ResendSeen {
  emails: number;
  /** Idempotency keys (of the given list) without exactly one accepted email. */
  notExactlyOnce: number;
  ids: Set<string>;
  /** Epoch ms of each accepted email (the fake's created_at: arrival + processing_ms), ascending. */
  createdAt: number[];
  requests: number;
  replayed: number;
  responses409: number;
  responses429: number;
}

export async function resendSeen(sandboxUrl: string, keys: string[]): Promise<ResendSeen> {
  const { state } = await call(`${sandboxUrl}/__state/resend`) as {
    state: {
      emails: { id: string; idempotency_key: string | null; created_at: string }[];
      counters: { requests: number; replayed: number; responses_409: number; responses_429: number };
    };
  };
  const perKey = new Map<string, number>();
  for (const e of state.emails) {
    if (e.idempotency_key !== null) perKey.set(e.idempotency_key, (perKey.get(e.idempotency_key) ?? 0) + 1);
  }
  return {
    emails: state.emails.length,
    notExactlyOnce: keys.filter((k) => perKey.get(k) !== 1).length,
    ids: new Set(state.emails.map((e) => e.id)),
    createdAt: state.emails.map((e) => Date.parse(e.created_at)).sort((a, b) => a - b),
    requests: state.counters.requests,
    replayed: state.counters.replayed,
    responses409: state.counters.responses_409,
    responses429: state.counters.responses_429,
  };
}

/** The request log's POSTs to a provider path: arrival time (epoch ms) and status, oldest first. */
export async function loggedPosts(sandboxUrl: string, provider: "twilio" | "resend", pathSuffix: string) {
  const q = new URLSearchParams({ provider, method: "POST" });
  const { requests } = await call(`${sandboxUrl}/__requests?${q}`) as {
    requests: { path: string; status: number; time: string }[];
  };
  return requests.filter((r) => r.path.endsWith(pathSuffix)).map((r) => ({ t: Date.parse(r.time), status: r.status }));
}

/** The most timestamps within any span of `spanMs` (a half-open sliding window, as the fake's). */
export function maxInWindow(times: number[], spanMs = 1000): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[lo] <= t[hi] - spanMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** (count − 1) / (last − first) over times[from − 1 …]: the steady rate from the `from`-th event on (1-based). */
export function steadyRate(times: number[], from = 10): number | null {
  const t = [...times].sort((a, b) => a - b).slice(from - 1);
  if (t.length < 2 || t[t.length - 1] === t[0]) return null;
  return ((t.length - 1) * 1000) / (t[t.length - 1] - t[0]);
}

/** The effects both throughput runs must show at the fakes: one message per phone, one email per key. */
export function effectFailures(twilio: TwilioSeen, resend: ResendSeen, bookings: number): string[] {
  const failures: string[] = [];
  if (twilio.notExactlyOnce || twilio.messages !== bookings) {
    failures.push(`fake Twilio: ${twilio.messages} messages for ${bookings} phones, ${twilio.notExactlyOnce} phones not messaged exactly once`);
  }
  if (resend.notExactlyOnce || resend.emails !== bookings) {
    failures.push(`fake Resend: ${resend.emails} emails for ${bookings} keys, ${resend.notExactlyOnce} keys not accepted exactly once`);
  }
  return failures;
}

/** The fakes' side of a throughput run's checks. */
export function effectChecks(twilio: TwilioSeen, resend: ResendSeen, twilioPosts: number, resendPosts: number) {
  return {
    phonesNotExactlyOnce: twilio.notExactlyOnce,
    twilioMessages: twilio.messages,
    twilioPosts,
    keysNotExactlyOnce: resend.notExactlyOnce,
    resendEmails: resend.emails,
    resendPosts,
    responses429: resend.responses429,
  };
}

/** When the fakes saw the first and last request of a run (arrivals ascending, epoch ms). */
export function sendTiming(arrivals: number[], t0: number, tEnd: number | null) {
  const n = arrivals.length;
  return {
    firstSendMs: n ? arrivals[0] - t0 : null,
    afterLastSendMs: n && tEnd !== null ? tEnd - arrivals[n - 1] : null,
    /** Sends per second between the first and the last request the fakes saw. */
    steadySendsPerSec: n > 1 ? ((n - 1) * 1000) / (arrivals[n - 1] - arrivals[0]) : null,
  };
}
