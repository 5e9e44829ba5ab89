// What a fake provider sends on its own (Twilio's status callbacks, Unipile's webhooks): timers
// and POSTs that outlive the request that caused them. All of them end when the sandbox closes
// (the bound signal) or the state is dropped (cancelAll, on POST /__reset), so nothing from
// before reaches a test afterwards.

/** The answer to one outbound POST: its status, or why there was none. */
export interface OutboundResult {
  /** HTTP status of the answer; null = connection error or no answer in time. */
  status: number | null;
  error: string | null;
}

/** Timers and in-flight POSTs of one provider state. */
export class OutboundScheduler {
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #inflight = new Set<AbortController>();
  #signal: AbortSignal | undefined;
  #cancelled = false;

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

  /** POSTs once, giving up after timeoutMs. Never throws. */
  async postOnce(url: string, headers: HeadersInit, body: string, timeoutMs: number): Promise<OutboundResult> {
    if (this.closed) return { status: null, error: "the sandbox is closing" };
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    this.#inflight.add(ac);
    try {
      const res = await fetch(url, { method: "POST", headers, body, signal: ac.signal });
      await res.body?.cancel();
      return { status: res.status, error: null };
    } catch (e) {
      const reason = ac.signal.aborted ? String((ac.signal.reason as Error)?.message ?? "aborted") : (e as Error).message;
      return { status: null, error: reason };
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(ac);
    }
  }

  /** Stops everything pending; later() and postOnce() do nothing afterwards. */
  cancelAll(): void {
    this.#cancelled = true;
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
    for (const ac of this.#inflight) ac.abort(new Error("sandbox closed"));
    this.#inflight.clear();
  }
}

/** A receiver's URL as logs show it: origin and path (a query string may carry its secret). */
export function logTarget(url: string): string {
  try {
    const u = new URL(url);
    return u.origin + u.pathname;
  } catch {
    return url;
  }
}
