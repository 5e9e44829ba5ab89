// What happens on the LinkedIn side of the fake, and the webhooks it fires:
//   - an invitation is accepted (by a control op, or auto_accept after a delay): the invitee
//     becomes a relation, a noted invitation opens a chat holding the note, and every `users`
//     webhook gets new_relation;
//   - a prospect replies: an is_sender 0 message in their chat, and every `messaging` webhook
//     gets message_received;
//   - the account sends a message: with echo_own_messages, message_received too (sender = the
//     account), as Unipile's page says the webhook covers messages "received or sent".
// Delivery (delay, retries, recording) is unipile_delivery.ts.

import {
  addMessage,
  addRelation,
  type Chat,
  type ChatMessage,
  directChat,
  fullName,
  type Invitation,
  type LinkedInUser,
  profileUrl,
  type UnipileAccount,
  type UnipileState,
  type Webhook,
} from "./unipile_state.ts";

/** POSTs an event to every enabled webhook of `source` that covers it and the account. */
function fire(
  state: UnipileState,
  source: Webhook["source"],
  event: string,
  accountId: string,
  bodyFor: (w: Webhook) => Record<string, unknown>,
): void {
  const o = state.options;
  // Unipile only sees LinkedIn through a connected account: nothing fires for a DISCONNECTED or
  // CREDENTIALS one (whether Unipile replays missed events on reconnection is not modelled).
  if (state.accounts.get(accountId)?.status !== "OK") return;
  for (const w of state.webhooks.values()) {
    if (!w.enabled || w.source !== source) continue;
    if (w.events !== null && !w.events.includes(event)) continue;
    if (w.account_ids !== null && !w.account_ids.includes(accountId)) continue;
    // format "form" is stored but the fake always delivers JSON (what the contract covers).
    state.scheduler.deliver({ id: w.id, name: w.name, url: w.request_url, headers: w.headers }, event, bodyFor(w), {
      delayMs: o.webhook_delay_ms,
      timeoutMs: o.webhook_timeout_ms,
      retryDelaysMs: o.retry_delays_ms,
    });
  }
}

/** provider-contracts §6: flat user_* fields, in this order. */
export function newRelationBody(acc: UnipileAccount, user: LinkedInUser, webhookName: string | null) {
  return {
    event: "new_relation",
    account_id: acc.id,
    account_type: "LINKEDIN",
    webhook_name: webhookName,
    user_full_name: fullName(user),
    user_provider_id: user.provider_id,
    user_public_identifier: user.public_identifier,
    user_profile_url: profileUrl(user.public_identifier),
    user_picture_url: user.profile_picture_url,
  };
}

/** A chat attendee id (Unipile's own id of a member in an account's chats), stable per pair. */
export function attendeeId(accountId: string, providerId: string): string {
  let h = 0x811c9dc5;
  let out = "";
  const seed = `${accountId}\n${providerId}`;
  for (let round = 0; out.length < 22; round++) {
    for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ round, 0x01000193) >>> 0;
    out += h.toString(36);
  }
  return out.slice(0, 22);
}

interface Attendee {
  attendee_id: string;
  attendee_name: string;
  attendee_provider_id: string;
  attendee_profile_url: string;
}

function attendee(acc: UnipileAccount, providerId: string, name: string): Attendee {
  return {
    attendee_id: attendeeId(acc.id, providerId),
    attendee_name: name,
    attendee_provider_id: providerId,
    // The vendor's example links the provider id, not the public identifier.
    attendee_profile_url: `https://www.linkedin.com/in/${providerId}/`,
  };
}

/**
 * message_received as Unipile's "New messages" page shows it (account_id, account_type, event,
 * chat_id, timestamp, webhook_name, message_id, message, sender{attendee_*}, attendees,
 * attachments). UNVERIFIED beyond that example: `attendees` lists the chat's members other than
 * the account owner; there is no is_sender flag, so a receiver tells a reply from its own
 * message by comparing sender.attendee_provider_id with the prospect's provider id.
 */
export function messageReceivedBody(
  state: UnipileState,
  acc: UnipileAccount,
  chat: Chat,
  m: ChatMessage,
  webhookName: string | null,
) {
  const nameOf = (id: string) => {
    if (id === acc.provider_id) return acc.name;
    const u = state.users.get(id);
    return u === undefined ? id : fullName(u);
  };
  return {
    account_id: acc.id,
    account_type: "LINKEDIN",
    event: "message_received",
    chat_id: chat.id,
    timestamp: new Date(m.timestamp).toISOString(),
    webhook_name: webhookName,
    message_id: m.id,
    message: m.text,
    sender: attendee(acc, m.sender_id, nameOf(m.sender_id)),
    attendees: chat.attendees.map((id) => attendee(acc, id, nameOf(id))),
    attachments: [],
  };
}

function fireMessage(state: UnipileState, acc: UnipileAccount, chat: Chat, m: ChatMessage): void {
  fire(state, "messaging", "message_received", acc.id, (w) => messageReceivedBody(state, acc, chat, m, w.name));
}

/** After the account sent `m` (API call or accepted note). */
export function ownMessageSent(state: UnipileState, acc: UnipileAccount, chat: Chat, m: ChatMessage): void {
  if (state.options.echo_own_messages) fireMessage(state, acc, chat, m);
}

/** The invitee accepts: relation (newest first), the note's chat, new_relation unless !notify. */
export function acceptInvitation(state: UnipileState, inv: Invitation, notify: boolean): void {
  const acc = state.accounts.get(inv.account_id);
  const user = state.users.get(inv.provider_id);
  if (acc === undefined || user === undefined || inv.status !== "pending") return;
  const now = state.now();
  inv.status = "accepted";
  inv.accepted_at = now;
  state.counters.invitations_accepted++;
  addRelation(state, acc, user.provider_id, now);
  if (inv.message !== null && state.options.note_creates_chat) {
    const chat = directChat(state, acc, user.provider_id);
    const m = addMessage(state, chat, { text: inv.message, is_sender: 1, sender_id: acc.provider_id });
    ownMessageSent(state, acc, chat, m);
  }
  if (notify) fire(state, "users", "new_relation", acc.id, (w) => newRelationBody(acc, user, w.name));
}

/** With auto_accept on, schedules the acceptance of a freshly sent invitation. */
export function scheduleAutoAccept(state: UnipileState, inv: Invitation): void {
  const aa = state.options.auto_accept;
  if (aa === null || (aa.account_ids !== undefined && !aa.account_ids.includes(inv.account_id))) return;
  state.scheduler.later(aa.after_ms, () => acceptInvitation(state, inv, aa.notify));
}

/** The prospect writes to the account: a message in their 1:1 chat (created if needed). */
export function prospectReplies(
  state: UnipileState,
  acc: UnipileAccount,
  user: LinkedInUser,
  text: string,
): { chat: Chat; message: ChatMessage } {
  const chat = directChat(state, acc, user.provider_id);
  const message = addMessage(state, chat, { text, is_sender: 0, sender_id: user.provider_id });
  state.counters.replies++;
  fireMessage(state, acc, chat, message);
  return { chat, message };
}
