// Delivery of the fake Unipile's webhooks (provider-contracts §6, trap 10): a JSON POST to the
// webhook's request_url with its custom headers; anything but a 200 within the timeout (30 s)
// is retried, up to 5 more times, with increasing delays. Every attempt is recorded, so tests can
// count deliveries and retries. Whether Unipile accepts other 2xx answers is UNVERIFIED; the fake
// accepts exactly 200 (what the vendor page asks for).
//
// All timers and in-flight POSTs end when the sandbox closes (bound signal) or the state is
// dropped (cancelAll, on POST /__reset), so nothing from before reaches a test afterwards.

/** One POST of one event to one webhook. */
export interface DeliveryAttempt {
  id: number;
  webhook_id: string;
  webhook_name: string | null;
  event: string;
  url: string;
  /** 1 = first delivery, 2..6 = retries. */
  attempt: number;
  /** HTTP status of the answer; null = connection error or no answer in time. */
  status: number | null;
  error: string | null;
  /** true once a later attempt will not follow (delivered, or retries exhausted). */
  final: boolean;
  time: string;
  body: Record<string, unknown>;
}

export interface DeliveryOptions {
  /** Before the first attempt. */
  delayMs: number;
  timeoutMs: number;
  /** Gap before each retry; its length is the number of retries. */
  retryDelaysMs: number[];
}

export interface DeliveryTarget {
  id: string;
  name: string | null;
  url: string;
  headers: { key: string; value: string }[];
}

/** Timers and in-flight POSTs of one state. */
export class WebhookScheduler {
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #inflight = new Set<AbortController>();
  #signal: AbortSignal | undefined;
  #cancelled = false;
  #nextId = 1;
  readonly attempts: DeliveryAttempt[] = [];
  counters = { delivered: 0, failed_attempts: 0, given_up: 0 };

  constructor(readonly maxAttempts: number) {}

  /** Timers not yet fired plus POSTs in flight. */
  get pending(): number {
    return this.#timers.size + this.#inflight.size;
  }

  bind(signal: AbortSignal): void {
    if (this.#signal === signal) return;
    this.#signal = signal;
    if (signal.aborted) this.cancelAll();
    else signal.addEventListener("abort", () => this.cancelAll(), { once: true });
  }

  get closed(): boolean {
    return this.#cancelled || (this.#signal?.aborted ?? false);
  }

  later(ms: number, fn: () => void | Promise<void>): void {
    if (this.closed) return;
    const id = setTimeout(() => {
      this.#timers.delete(id);
      if (!this.closed) void fn();
    }, ms);
    this.#timers.add(id);
  }

  /** Delivers `body` to `target`, retrying as `opts` says. */
  deliver(target: DeliveryTarget, event: string, body: Record<string, unknown>, opts: DeliveryOptions): void {
    const attempt = async (n: number) => {
      const { status, error } = await this.#post(target, body, opts.timeoutMs);
      if (this.closed) return; // the state is gone: record nothing
      const ok = status === 200;
      const last = ok || n > opts.retryDelaysMs.length;
      this.#record({
        id: this.#nextId++,
        webhook_id: target.id,
        webhook_name: target.name,
        event,
        url: target.url,
        attempt: n,
        status,
        error,
        final: last,
        time: new Date().toISOString(),
        body,
      });
      if (ok) this.counters.delivered++;
      else {
        this.counters.failed_attempts++;
        if (last) {
          this.counters.given_up++;
          logGiveUp(target.url, event, n, status, error);
        }
      }
      if (!last) this.later(opts.retryDelaysMs[n - 1], () => attempt(n + 1));
    };
    this.later(opts.delayMs, () => attempt(1));
  }

  async #post(
    target: DeliveryTarget,
    body: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<{ status: number | null; error: string | null }> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    this.#inflight.add(ac);
    try {
      const headers = new Headers();
      for (const h of target.headers) headers.set(h.key, h.value);
      headers.set("content-type", "application/json");
      const res = await fetch(target.url, { method: "POST", headers, body: JSON.stringify(body), signal: ac.signal });
      await res.body?.cancel();
      return { status: res.status, error: null };
    } catch (e) {
      const reason = ac.signal.aborted
        ? String((ac.signal.reason as Error)?.message ?? "aborted")
        : (e as Error).message;
      return { status: null, error: reason };
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(ac);
    }
  }

  #record(a: DeliveryAttempt): void {
    this.attempts.push(a);
    if (this.attempts.length > this.maxAttempts) this.attempts.splice(0, this.attempts.length - this.maxAttempts);
  }

  /** Stops everything pending; later() and deliver() do nothing afterwards. */
  cancelAll(): void {
    this.#cancelled = true;
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
    for (const ac of this.#inflight) ac.abort(new Error("sandbox closed"));
    this.#inflight.clear();
  }
}

function logGiveUp(url: string, event: string, attempts: number, status: number | null, error: string | null): void {
  let where = url;
  try {
    const u = new URL(url);
    where = u.origin + u.pathname; // a query string may carry a receiver's secret
  } catch { /* keep as given */ }
  const why = status !== null ? `HTTP ${status}` : error;
  console.error(`sandbox unipile: ${event} webhook to ${where} failed ${attempts} times (last: ${why}); dropped`);
}
