// One provider's gate within a job request (send-reminder's channels, send-notification's Resend):
// the provider's first task in the request calls alone and the others wait for its answer, so a
// refused key or a 429 is seen before they call (the runner's slots run concurrently). Once the
// provider refused the configuration (release) or limited the request (rate limit, quota), the
// later tasks get the same outcome without a call: a 429 storm costs one call per request, not
// one per task. Those retries say notAttempted, so the engine gives their attempt back; a wait
// from the provider that has passed lifts the block (the request may still be claiming).

import type { FetchFn } from "./http.ts";
import type { Outcome } from "./outcome.ts";

/** What every provider client of a job request is built with. */
export interface ClientCommon {
  fetch: FetchFn;
  timeoutMs: number;
  now: () => number;
}

/** A provider client built from the function's settings, or the error naming the setting. */
export type Setup<T> = { ok: true; value: T; secrets: string[] } | { ok: false; error: string };

/** What the provider answers, unasked, for the rest of the request. */
type Block =
  | { outcome: "release"; error: string }
  | { outcome: "retry"; error: string; until: number | null };

export interface RequestGateOptions {
  /** The provider's name in the errors of the tasks not called ("Resend"). */
  provider: string;
  /** The rate key (engine bucket) paused while the provider limits us ("resend"). */
  rateKey: string;
  now: () => number;
  /** Scrubs the request's secrets from every error (the provider's texts are quoted in other
   * tasks' errors too). */
  scrub?: (text: string) => string;
}

export class RequestGate {
  private blocked: Block | undefined;
  /** Settles when the first task of the request has its answer. */
  private firstCall: Promise<void> | undefined;

  constructor(private readonly opts: RequestGateOptions) {}

  /** Runs `call` (one provider call and its outcome) unless an earlier answer already decided;
   * the outcome's error is scrubbed. */
  async run(call: () => Promise<Outcome>): Promise<Outcome> {
    let opened: (() => void) | undefined;
    if (this.firstCall === undefined) this.firstCall = new Promise<void>((resolve) => (opened = resolve));
    else await this.firstCall;
    try {
      const b = this.blocked;
      if (b !== undefined && b.outcome === "retry" && b.until !== null && this.opts.now() >= b.until) {
        this.blocked = undefined;
      } else if (b !== undefined) return this.repeat(b);
      const outcome = await call();
      const scrub = this.opts.scrub;
      return scrub !== undefined && "error" in outcome ? { ...outcome, error: scrub(outcome.error) } as Outcome : outcome;
    } finally {
      opened?.();
    }
  }

  /** A configuration error: this task and the provider's later ones in the request are released. */
  release(error: string): Outcome {
    this.blocked = { outcome: "release", error };
    return { outcome: "release", error };
  }

  /** The provider limited us (`after` s, null = it did not say): retry, and block the rest. */
  rateLimited(error: string, after: number | null): Outcome {
    const clean = this.opts.scrub?.(error) ?? error;
    this.blocked = {
      outcome: "retry",
      error: `${this.opts.provider} limited this request earlier (${clean})`,
      until: after === null ? null : this.opts.now() + after * 1000,
    };
    // Without a wait from the provider (Twilio's 20429 has none), the job's backoff spaces the
    // retries and no bucket is paused (a pause without a length would hold it for a minute).
    return { outcome: "retry", error: clean, after, pause: after === null ? null : this.opts.rateKey };
  }

  /** The outcome of a task that was not called because of an earlier answer. */
  private repeat(b: Block): Outcome {
    if (b.outcome === "release") return { outcome: "release", error: b.error };
    const after = b.until === null ? null : Math.max(1, Math.ceil((b.until - this.opts.now()) / 1000));
    // Never attempted: the attempt is given back (a storm cannot use up max_attempts).
    return { outcome: "retry", error: `not called: ${b.error}`, after, pause: after === null ? null : this.opts.rateKey, notAttempted: true };
  }
}
