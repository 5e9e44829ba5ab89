// How a Unipile answer becomes an outcome of linkedin-send (docs/outreach.md, "Outcomes"), and
// what an account's answer means for its later tasks in the same request.
//
//   401 disconnected_account / invalid_credentials / expired_credentials
//                       → discard {account_error: "<type>"}; the account's later tasks in the
//                         request are discarded the same way without a call
//   429                 → retry after Retry-After (else 60 s), pause pause_keys.account; the
//                         account's later tasks: retry, not_attempted, same pause, no call
//   5xx                 → retry after 60 s (or a longer Retry-After), pause pause_keys.account;
//                         on a send the outcome is unknown (the next attempt reconciles); later
//                         tasks of the account as for 429
//   422 limit_exceeded  → retry after 6 h, not_attempted, pause pause_keys.budget; later tasks
//                         with the same budget key: the same, no call
//   timeout / broken connection on a POST → retry (job's backoff); the next attempt reconciles
//   other 422, 400, 404 → dead {error_type: "<type>"}
//   API key refused (other 401, 403) → release; every later task of the request: release
//   a reconcile lookup that failed in any other way → retry ("not sent"): never send blind
//
// Outcome data always carries `extra` (an invite's provider_id once known; a message's chat_id
// found by the reconcile and `replied`), so SQL can store them whatever the outcome.

import type { Data, Outcome } from "../_shared/outcome.ts";
import { type UnipileFailure, unipileWaitSeconds } from "../_shared/providers/unipile.ts";

/** LinkedIn's quota is used up: the budget bucket is paused this long. */
export const LIMIT_EXCEEDED_PAUSE_SECONDS = 6 * 3600;

export interface AccountRef {
  id: number;
  unipile_account_id: string;
}
export interface PauseKeys {
  account: string;
  budget: string;
}

/** What an account (or a budget key) answers, unasked, for the rest of the request. */
export type AccountBlock =
  | { outcome: "discard"; error: string; accountError: string }
  | { outcome: "retry"; error: string; until: number };

export interface Blocks {
  accounts: Map<number, AccountBlock>;
  budgets: Map<string, { error: string; until: number }>;
  /** Set once Unipile refused the API key: nothing in this request can succeed. */
  released: string | null;
}

export function newBlocks(): Blocks {
  return { accounts: new Map(), budgets: new Map(), released: null };
}

/** Failures after which LinkedIn certainly did nothing (refused before acting): a 5xx, a timeout
 * or a broken connection may have sent. */
export const NOTHING_SENT: ReadonlySet<UnipileFailure["kind"]> = new Set([
  "account_disconnected", "rate_limited", "limit_exceeded",
]);

/** Where the call was: a reconcile lookup never leads to a blind send. */
export type Phase = "lookup" | "profile" | "send";

export interface TaskRef {
  account: AccountRef;
  pause_keys: PauseKeys;
}

export function accountLabel(a: AccountRef): string {
  return `LinkedIn account ${a.id} (${a.unipile_account_id})`;
}

const withData = (data: Data) => (Object.keys(data).length > 0 ? { data } : {});

/** The outcome of a task that is not called because of an earlier answer in this request. */
export function blockedOutcome(b: Blocks, t: TaskRef, extra: Data, now: number): Outcome | null {
  if (b.released !== null) return { outcome: "release", error: b.released };
  const a = b.accounts.get(t.account.id);
  if (a?.outcome === "discard") {
    return { outcome: "discard", error: `not called: ${a.error}`, data: { ...extra, account_error: a.accountError }, tag: "needs_reconnect" };
  }
  if (a?.outcome === "retry") {
    // A provider's wait that has passed lifts the block (the request may still be claiming).
    if (now >= a.until) b.accounts.delete(t.account.id);
    else return notCalled(a.error, a.until, t.pause_keys.account, extra, now);
  }
  const budget = b.budgets.get(t.pause_keys.budget);
  if (budget !== undefined) {
    if (now >= budget.until) b.budgets.delete(t.pause_keys.budget);
    else return notCalled(budget.error, budget.until, t.pause_keys.budget, extra, now);
  }
  return null;
}

function notCalled(error: string, until: number, pause: string, extra: Data, now: number): Outcome {
  // Never attempted: the attempt is given back (a storm cannot use up max_attempts).
  const after = Math.max(1, Math.ceil((until - now) / 1000));
  return { outcome: "retry", error: `not called: ${error}`, after, pause, notAttempted: true, ...withData(extra) };
}

/** The outcome of a failed call, recording what it means for the account's later tasks. */
export function failureOutcome(b: Blocks, t: TaskRef, r: UnipileFailure, phase: Phase, extra: Data, now: number): Outcome {
  const label = accountLabel(t.account);
  const lookup = phase === "lookup" ? "not sent: reconcile lookup: " : "";
  switch (r.kind) {
    case "account_disconnected": {
      const error = `${label} needs reconnection: ${r.error}`;
      b.accounts.set(t.account.id, { outcome: "discard", error, accountError: r.type });
      return { outcome: "discard", error, data: { ...extra, account_error: r.type }, tag: "needs_reconnect" };
    }
    case "misconfigured":
      b.released = r.error;
      return { outcome: "release", error: r.error };
    case "rate_limited": {
      const after = unipileWaitSeconds(r);
      b.accounts.set(t.account.id, { outcome: "retry", error: `Unipile limited ${label} earlier in this request (${r.error})`, until: now + after * 1000 });
      return { outcome: "retry", error: `${lookup}${r.error}`, after, pause: t.pause_keys.account, ...withData(extra), tag: "rate_limited" };
    }
    case "server_error": {
      const after = unipileWaitSeconds(r);
      b.accounts.set(t.account.id, { outcome: "retry", error: `Unipile failed for ${label} earlier in this request (${r.error})`, until: now + after * 1000 });
      const unknown = phase === "send" ? "; the outcome is unknown, the next attempt reconciles before sending" : "";
      return { outcome: "retry", error: `${lookup}${r.error}${unknown}`, after, pause: t.pause_keys.account, ...withData(extra), tag: "rate_limited" };
    }
    case "limit_exceeded": {
      const after = LIMIT_EXCEEDED_PAUSE_SECONDS;
      b.budgets.set(t.pause_keys.budget, { error: `LinkedIn's limit for ${label} was reached earlier in this request (${r.error})`, until: now + after * 1000 });
      // LinkedIn refused before doing anything: the attempt is given back.
      return { outcome: "retry", error: `${lookup}${r.error}`, after, pause: t.pause_keys.budget, notAttempted: true, ...withData(extra), tag: "limit_exceeded" };
    }
    case "unknown_outcome":
      return { outcome: "retry", error: `outcome unknown, the next attempt reconciles before sending: ${r.error}`, after: null, ...withData(extra) };
    case "transient":
      return { outcome: "retry", error: `${lookup}${r.error}`, after: null, ...withData(extra) };
    case "already":
    case "refused":
      // A lookup that is refused says nothing about what was sent: retried (dead after the job's
      // max attempts), never a blind send and never a dead letter of its own.
      if (phase === "lookup") return { outcome: "retry", error: `${lookup}${r.error}`, after: null, ...withData(extra) };
      return { outcome: "dead", error: r.error, data: { ...extra, error_type: r.type } };
  }
}
