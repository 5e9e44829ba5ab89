// Resend's Idempotency-Key on POST /emails (provider-contracts §5, trap 8): kept 24 h; the same
// key with the same payload answers the original response without sending again; with another
// payload 409 invalid_idempotent_request; while the first request is still being processed
// 409 concurrent_idempotent_requests. Only successful sends are remembered: a request refused
// by validation or a quota leaves the key free (what Resend does there is UNVERIFIED).

import type { IdempotencyRecord, ResendState } from "./resend_state.ts";

export const MAX_KEY_LENGTH = 256;

/** JSON with object keys sorted at every depth, so key order does not make payloads differ. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export type Claim =
  | { kind: "new"; record: IdempotencyRecord }
  | { kind: "replay"; response: { status: number; body: unknown } }
  | { kind: "conflict"; name: "invalid_idempotent_request" | "concurrent_idempotent_requests" };

/**
 * Looks the key up and, if it is free (or expired), marks it in flight. Synchronous, so two
 * concurrent requests with one key cannot both get "new".
 */
export function claimKey(state: ResendState, key: string, payload: string, now: number): Claim {
  const existing = state.idempotency.get(key);
  if (existing !== undefined && existing.created_at + state.idempotencyTtlMs > now) {
    if (existing.payload !== payload) return { kind: "conflict", name: "invalid_idempotent_request" };
    if (existing.state === "in_flight") return { kind: "conflict", name: "concurrent_idempotent_requests" };
    return { kind: "replay", response: existing.response! };
  }
  state.idempotency.delete(key); // expired: re-insert so the map stays ordered by age
  const record: IdempotencyRecord = { key, payload, state: "in_flight", created_at: now };
  state.idempotency.set(key, record);
  // Bounded like the email list: the oldest record goes first.
  if (state.idempotency.size > state.maxEmails) state.idempotency.delete(state.idempotency.keys().next().value!);
  return { kind: "new", record };
}

export function finishKey(record: IdempotencyRecord, response: { status: number; body: unknown }): void {
  record.state = "done";
  record.response = response;
}

export function releaseKey(state: ResendState, record: IdempotencyRecord): void {
  if (state.idempotency.get(record.key) === record) state.idempotency.delete(record.key);
}
