// The fake Unipile's messaging endpoints (provider-contracts §6; shapes from unipile-node-sdk
// 1.9.3's schemas, messaging/*):
//   POST /chats                      multipart: account_id, attendees_ids (repeated), text,
//                                    subject?, linkedin[api]?, linkedin[inmail]?, attachments?
//   POST /chats/{chat_id}/messages   multipart: text, account_id?, attachments?
//   GET  /chats?account_id&limit&cursor&after&before
//   GET  /chats/{chat_id}
//   GET  /chats/{chat_id}/messages?limit&cursor&after&before&sender_id
// Lists are newest first with a keyset cursor: base64 JSON of the query plus
// {cursor: {last_id, last_date}} (the SDK's decoded-cursor schema); with a cursor the other
// parameters are taken from it (the SDK's note: the cursor ignores other params).

import { jsonResponse } from "../http.ts";
import type { SandboxRequest } from "../types.ts";
import { err } from "./unipile_errors.ts";
import { attendeeId, ownMessageSent } from "./unipile_events.ts";
import {
  accountFor,
  decodeCursor,
  encodeCursor,
  field,
  fields,
  fileCount,
  multipartBody,
  parseDate,
  parseLimit,
} from "./unipile_params.ts";
import { addMessage, type Chat, type ChatMessage, directChat, type UnipileState, uniqueId } from "./unipile_state.ts";
import type { Answer } from "./unipile_users.ts";

/** LinkedIn's message length limit as the fake enforces it (UNVERIFIED: 8,000 characters). */
const TEXT_MAX = 8_000;

function messageText(body: Record<string, unknown>): { text: string } | { error: Answer } {
  const text = field(body, "text") ?? "";
  if (text === "" && fileCount(body, "attachments") === 0) {
    return { error: err.invalidParameters("text (or attachments) is required.") };
  }
  if ([...text].length > TEXT_MAX) return { error: err.tooManyCharacters("text", TEXT_MAX) };
  return { text };
}

// ---------------------------------------------------------------------------------------------
// POST /chats
// ---------------------------------------------------------------------------------------------

export function startChat(state: UnipileState, req: SandboxRequest): Answer {
  const body = multipartBody(req);
  if (!body.ok) return body.error;
  const b = body.value;
  const attendees = fields(b, "attendees_ids").filter((id) => id !== "");
  if (attendees.length === 0) return err.invalidParameters("attendees_ids is required (one or more provider ids).");
  const t = messageText(b);
  if ("error" in t) return t.error;
  const api = field(b, "linkedin[api]");
  if (api !== undefined && api !== "classic") {
    return err.invalidParameters(`linkedin[api]=${api}: the sandbox speaks the classic LinkedIn API only.`);
  }
  const inmail = field(b, "linkedin[inmail]") === "true";
  const acc = accountFor(state, field(b, "account_id"));
  if (!acc.ok) return acc.error;
  const a = acc.value;
  for (const id of attendees) if (!state.users.has(id)) return err.invalidRecipient(id);

  let chat: Chat;
  if (attendees.length === 1) {
    const id = attendees[0];
    if (!a.relations.has(id)) {
      if (!inmail) return err.noConnectionWithRecipient();
      if (!a.inmail) return err.notAllowedInmail();
    }
    // An existing 1:1 chat with the attendee takes the message, and its id is the answer's chat_id
    // (UNVERIFIED: what LinkedIn does; Unipile may also answer a new id for the same thread).
    const existed = a.directChats.has(id);
    chat = directChat(state, a, id, inmail && !a.relations.has(id));
    if (!existed) state.counters.chats_started++;
  } else {
    // A group conversation: LinkedIn allows it among relations only (no InMail).
    if (attendees.some((id) => !a.relations.has(id))) return err.noConnectionWithRecipient();
    const now = state.now();
    chat = {
      id: uniqueId(),
      account_id: a.id,
      provider_id: "2-" + btoa(uniqueId() + "_100"),
      attendees: [...new Set(attendees)],
      content_type: null,
      subject: field(b, "subject") ?? null,
      created_at: now,
      timestamp: now,
      messages: [],
      seq: state.nextSeq(),
    };
    state.chats.set(chat.id, chat);
    state.counters.chats_started++;
  }
  const m = addMessage(state, chat, { text: t.text, is_sender: 1, sender_id: a.provider_id });
  state.counters.messages_sent++;
  ownMessageSent(state, a, chat, m);
  return jsonResponse(201, { object: "ChatStarted", chat_id: chat.id, message_id: m.id });
}

// ---------------------------------------------------------------------------------------------
// POST /chats/{chat_id}/messages
// ---------------------------------------------------------------------------------------------

export function sendMessage(state: UnipileState, req: SandboxRequest, chatId: string): Answer {
  const body = multipartBody(req);
  if (!body.ok) return body.error;
  const b = body.value;
  const chat = state.chats.get(chatId);
  const accountId = field(b, "account_id");
  // account_id, when given, must be the chat's (a chat id of another account is not found).
  if (chat === undefined || (accountId !== undefined && accountId !== chat.account_id)) {
    return err.notFound(`Chat ${chatId}`);
  }
  const acc = accountFor(state, chat.account_id);
  if (!acc.ok) return acc.error;
  const t = messageText(b);
  if ("error" in t) return t.error;
  const m = addMessage(state, chat, { text: t.text, is_sender: 1, sender_id: acc.value.provider_id });
  state.counters.messages_sent++;
  ownMessageSent(state, acc.value, chat, m);
  return jsonResponse(201, { object: "MessageSent", message_id: m.id });
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

interface ListQuery {
  limit: number;
  after?: number;
  before?: number;
  account_id?: string;
  sender_id?: string;
  last?: { id: string; date: number };
}

/** The list parameters, from the query or (when given) from the cursor. */
function listQuery(req: SandboxRequest): ListQuery | { error: Answer } {
  const cursor = decodeCursor(req.query.get("cursor"));
  if (!cursor.ok) return { error: cursor.error };
  if (cursor.value !== null) {
    const c = cursor.value;
    const last = c.cursor as { last_id?: unknown; last_date?: unknown } | undefined;
    const lastDate = typeof last?.last_date === "string" ? Date.parse(last.last_date) : NaN;
    const date = (v: unknown) => (typeof v === "string" ? Date.parse(v) : undefined);
    if (typeof last?.last_id !== "string" || Number.isNaN(lastDate) || !Number.isInteger(c.limit)) {
      return { error: err.invalidParameters("cursor is invalid.") };
    }
    return {
      limit: c.limit as number,
      after: date(c.after),
      before: date(c.before),
      account_id: typeof c.account_id === "string" ? c.account_id : undefined,
      sender_id: typeof c.sender_id === "string" ? c.sender_id : undefined,
      last: { id: last.last_id, date: lastDate },
    };
  }
  const limit = parseLimit(req.query, 250, 100);
  if (!limit.ok) return { error: limit.error };
  const after = parseDate(req.query, "after");
  if (!after.ok) return { error: after.error };
  const before = parseDate(req.query, "before");
  if (!before.ok) return { error: before.error };
  return {
    limit: limit.value ?? 100,
    after: after.value,
    before: before.value,
    account_id: req.query.get("account_id") ?? undefined,
    sender_id: req.query.get("sender_id") ?? undefined,
  };
}

/** One page of `sorted` (newest first) after the cursor's item, and the next cursor. */
function page<T extends { id: string }>(
  sorted: T[],
  q: ListQuery,
  dateOf: (item: T) => number,
): { items: T[]; cursor: string | null } {
  let start = 0;
  if (q.last !== undefined) {
    const i = sorted.findIndex((x) => x.id === q.last!.id);
    start = i >= 0 ? i + 1 : sorted.findIndex((x) => dateOf(x) < q.last!.date);
    if (start < 0) start = sorted.length;
  }
  const items = sorted.slice(start, start + q.limit);
  const lastItem = items[items.length - 1];
  const more = start + q.limit < sorted.length;
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const cursor = more && lastItem !== undefined
    ? encodeCursor({
      ...(q.account_id !== undefined && { account_id: q.account_id }),
      ...(q.after !== undefined && { after: iso(q.after) }),
      ...(q.before !== undefined && { before: iso(q.before) }),
      ...(q.sender_id !== undefined && { sender_id: q.sender_id }),
      limit: q.limit,
      cursor: { last_id: lastItem.id, last_date: iso(dateOf(lastItem)) },
    })
    : null;
  return { items, cursor };
}

function inWindow(ms: number, q: ListQuery): boolean {
  return (q.after === undefined || ms > q.after) && (q.before === undefined || ms < q.before);
}

/** A Chat (the SDK's ChatSchema). attendee_provider_id only on 1:1 chats. */
export function chatJson(c: Chat) {
  let unread = 0;
  for (let i = c.messages.length - 1; i >= 0 && c.messages[i].is_sender === 0; i--) unread++;
  const single = c.attendees.length === 1;
  return {
    object: "Chat",
    id: c.id,
    account_id: c.account_id,
    account_type: "LINKEDIN",
    provider_id: c.provider_id,
    ...(single && { attendee_provider_id: c.attendees[0] }),
    name: null, // UNVERIFIED: 1:1 LinkedIn chats carry no name; groups may
    type: single ? 0 : 1,
    timestamp: new Date(c.timestamp).toISOString(),
    unread_count: unread,
    archived: 0,
    muted_until: null,
    read_only: 0,
    disabledFeatures: [],
    ...(c.subject !== null && { subject: c.subject }),
    ...(c.content_type !== null && { content_type: c.content_type }),
    folder: ["INBOX", "INBOX_LINKEDIN_CLASSIC"],
  };
}

/** A Message (the SDK's MessageSchema). is_sender 1 = the account's own message. */
export function messageJson(chat: Chat, m: ChatMessage) {
  return {
    object: "Message",
    id: m.id,
    account_id: m.account_id,
    chat_id: m.chat_id,
    chat_provider_id: chat.provider_id,
    provider_id: m.provider_id,
    sender_id: m.sender_id,
    sender_attendee_id: attendeeId(m.account_id, m.sender_id), // = the webhook's sender.attendee_id
    text: m.text,
    attachments: [],
    timestamp: new Date(m.timestamp).toISOString(),
    is_sender: m.is_sender,
    reactions: [],
    seen: 0,
    seen_by: {},
    hidden: 0,
    deleted: 0,
    edited: 0,
    is_event: 0,
    delivered: 1,
    behavior: null,
    original: JSON.stringify({ text: m.text }),
  };
}

export function listChats(state: UnipileState, req: SandboxRequest): Answer {
  const q = listQuery(req);
  if ("error" in q) return q.error;
  if (q.account_id !== undefined) {
    const acc = accountFor(state, q.account_id);
    if (!acc.ok) return acc.error;
  }
  const type = req.query.get("account_type");
  const chats = type !== null && type !== "LINKEDIN" ? [] : [...state.chats.values()]
    .filter((c) => (q.account_id === undefined || c.account_id === q.account_id) && inWindow(c.timestamp, q))
    .sort((x, y) => y.timestamp - x.timestamp || y.seq - x.seq);
  const p = page(chats, q, (c) => c.timestamp);
  return jsonResponse(200, { object: "ChatList", items: p.items.map(chatJson), cursor: p.cursor });
}

export function getChat(state: UnipileState, _req: SandboxRequest, chatId: string): Answer {
  const chat = state.chats.get(chatId);
  if (chat === undefined) return err.notFound(`Chat ${chatId}`);
  const acc = accountFor(state, chat.account_id);
  if (!acc.ok) return acc.error;
  return jsonResponse(200, chatJson(chat));
}

export function listMessages(state: UnipileState, req: SandboxRequest, chatId: string): Answer {
  const chat = state.chats.get(chatId);
  if (chat === undefined) return err.notFound(`Chat ${chatId}`);
  const acc = accountFor(state, chat.account_id);
  if (!acc.ok) return acc.error;
  const q = listQuery(req);
  if ("error" in q) return q.error;
  const messages = chat.messages
    .filter((m) => inWindow(m.timestamp, q) && (q.sender_id === undefined || m.sender_id === q.sender_id))
    .reverse();
  const p = page(messages, q, (m) => m.timestamp);
  return jsonResponse(200, {
    object: "MessageList",
    items: p.items.map((m) => messageJson(chat, m)),
    cursor: p.cursor,
  });
}
