// Delivery of the fake Unipile's webhooks (provider-contracts §6, trap 10): a JSON POST to the
// webhook's request_url with its custom headers; anything but a 200 within the timeout (30 s)
// is retried, up to 5 more times, with increasing delays. Every attempt is recorded, so tests can
// count deliveries and retries. Whether Unipile accepts other 2xx answers is UNVERIFIED; the fake
// accepts exactly 200 (what the vendor page asks for).
//
// Timers and POSTs are outbound.ts's: they end when the sandbox closes or the state is dropped.

import { logTarget, OutboundScheduler } from "./outbound.ts";

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

/** The webhook deliveries of one state: their timers, POSTs and record. */
export class WebhookScheduler extends OutboundScheduler {
  #nextId = 1;
  readonly attempts: DeliveryAttempt[] = [];
  counters = { delivered: 0, failed_attempts: 0, given_up: 0 };

  constructor(readonly maxAttempts: number) {
    super();
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

  #post(target: DeliveryTarget, body: Record<string, unknown>, timeoutMs: number) {
    const headers = new Headers();
    for (const h of target.headers) headers.set(h.key, h.value);
    headers.set("content-type", "application/json");
    return this.postOnce(target.url, headers, JSON.stringify(body), timeoutMs);
  }

  #record(a: DeliveryAttempt): void {
    this.attempts.push(a);
    if (this.attempts.length > this.maxAttempts) this.attempts.splice(0, this.attempts.length - this.maxAttempts);
  }

}

function logGiveUp(url: string, event: string, attempts: number, status: number | null, error: string | null): void {
  const why = status !== null ? `HTTP ${status}` : error;
  console.error(`sandbox unipile: ${event} webhook to ${logTarget(url)} failed ${attempts} times (last: ${why}); dropped`);
}
