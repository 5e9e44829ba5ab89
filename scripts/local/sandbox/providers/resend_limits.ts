// Resend's team limits (provider-contracts §5, trap 8): a requests-per-second rate limit shared by
// every key of the team, answered with 429 rate_limit_exceeded + retry-after, and reported on
// every response as ratelimit-limit / ratelimit-remaining / ratelimit-reset (IETF draft 6,
// seconds); plus daily and monthly email quotas (429 daily_quota_exceeded /
// monthly_quota_exceeded). A request refused with 429 does not use up the window.

import type { ResendState } from "./resend_state.ts";

export type WindowKind = "sliding" | "fixed";

const WINDOW_MS = 1000;

export interface WindowReading {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Whole seconds until a request would be allowed again (≥ 1). */
  reset: number;
}

export class RateWindow {
  readonly kind: WindowKind;
  #hits: number[] = []; // sliding: times of the requests in the last second, ascending
  #second = Number.NaN; // fixed: the wall-clock second being counted
  #count = 0;

  constructor(kind: WindowKind) {
    this.kind = kind;
  }

  /** Counts one request if the window has room. */
  take(now: number, limit: number): WindowReading {
    return this.#read(now, limit, true);
  }

  /** The current reading without counting anything (for answers that are not counted). */
  peek(now: number, limit: number): WindowReading {
    return this.#read(now, limit, false);
  }

  #read(now: number, limit: number, count: boolean): WindowReading {
    if (this.kind === "fixed") {
      const second = Math.floor(now / WINDOW_MS);
      if (second !== this.#second) {
        this.#second = second;
        this.#count = 0;
      }
      const allowed = this.#count < limit;
      if (allowed && count) this.#count++;
      const reset = Math.max(1, Math.ceil(((second + 1) * WINDOW_MS - now) / 1000));
      return { allowed, limit, remaining: Math.max(0, limit - this.#count), reset };
    }
    while (this.#hits.length > 0 && this.#hits[0] <= now - WINDOW_MS) this.#hits.shift();
    const allowed = this.#hits.length < limit;
    if (allowed && count) this.#hits.push(now);
    const oldest = this.#hits[0];
    const reset = oldest === undefined ? 1 : Math.max(1, Math.ceil((oldest + WINDOW_MS - now) / 1000));
    return { allowed, limit, remaining: Math.max(0, limit - this.#hits.length), reset };
  }
}

/** ratelimit-* headers of a reading (none when the fake runs without a rate limit). */
export function rateLimitHeaders(r: WindowReading | null): Record<string, string> {
  if (r === null) return {};
  return {
    "ratelimit-limit": String(r.limit),
    "ratelimit-remaining": String(r.remaining),
    "ratelimit-reset": String(r.reset),
  };
}

/** Which email quota one more email would exceed, if any. */
export function quotaExceeded(
  state: ResendState,
  now: number,
): "daily_quota_exceeded" | "monthly_quota_exceeded" | null {
  const day = new Date(now).toISOString().slice(0, 10);
  if (state.dailyQuota !== null && (state.sentPerDay.get(day) ?? 0) >= state.dailyQuota) {
    return "daily_quota_exceeded";
  }
  if (state.monthlyQuota !== null && (state.sentPerMonth.get(day.slice(0, 7)) ?? 0) >= state.monthlyQuota) {
    return "monthly_quota_exceeded";
  }
  return null;
}
