// GET /__state/unipile: a JSON view of the fake Unipile's state for tests. API keys never leave
// (only their number), and webhook header values whose name says secret are redacted.

import { REDACTED } from "../http.ts";
import { relationsByAge, type UnipileState } from "./unipile_state.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const SECRET_HEADER = /secret|token|password|api[-_]?key|authorization|signature|cookie/i;

export function redactedHeaders(headers: { key: string; value: string }[]): { key: string; value: string }[] {
  return headers.map((h) => ({ key: h.key, value: SECRET_HEADER.test(h.key) ? REDACTED : h.value }));
}

export function snapshotUnipileState(state: UnipileState): Record<string, unknown> {
  const relations: Record<string, unknown[]> = {};
  for (const acc of state.accounts.values()) {
    relations[acc.id] = [...relationsByAge(acc)].reverse().map((r) => ({
      provider_id: r.provider_id,
      public_identifier: state.users.get(r.provider_id)?.public_identifier ?? null,
      created_at: iso(r.created_at),
    }));
  }
  return {
    api_keys: state.apiKeys.size, // the keys themselves never leave
    accounts: [...state.accounts.values()].map((a) => ({
      id: a.id,
      status: a.status,
      invite_limit: a.invite_limit,
      invites_sent: a.invites_sent,
      name: a.name,
      provider_id: a.provider_id,
      public_identifier: a.public_identifier,
      inmail: a.inmail,
      relations: a.relations.size,
      pending_invitations: a.invitations.filter((i) => i.status === "pending").length,
    })),
    users: state.users.size,
    relations,
    invitations: [...state.invitations.values()].map((i) => ({
      id: i.id,
      account_id: i.account_id,
      provider_id: i.provider_id,
      public_identifier: state.users.get(i.provider_id)?.public_identifier ?? null,
      message: i.message,
      status: i.status,
      created_at: iso(i.created_at),
      accepted_at: iso(i.accepted_at),
      withdrawn_at: iso(i.withdrawn_at),
    })),
    chats: [...state.chats.values()].map((c) => ({
      id: c.id,
      account_id: c.account_id,
      attendee_provider_ids: c.attendees,
      content_type: c.content_type,
      created_at: iso(c.created_at),
      timestamp: iso(c.timestamp),
      messages: c.messages.map((m) => ({
        id: m.id,
        text: m.text,
        is_sender: m.is_sender,
        sender_id: m.sender_id,
        timestamp: iso(m.timestamp),
      })),
    })),
    webhooks: [...state.webhooks.values()].map((w) => ({
      id: w.id,
      source: w.source,
      name: w.name,
      request_url: w.request_url,
      headers: redactedHeaders(w.headers),
      events: w.events,
      account_ids: w.account_ids,
      enabled: w.enabled,
      origin: w.origin,
    })),
    deliveries: state.scheduler.attempts,
    options: state.options,
    clock_offset_ms: state.clockOffsetMs,
    counters: { ...state.counters, ...state.scheduler.counters, webhooks_pending: state.scheduler.pending },
    notes: state.notes,
  };
}
