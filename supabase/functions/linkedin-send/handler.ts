// linkedin-send: LinkedIn invitations, follow-ups and the app's outbox over Unipile, one per task
// (jobs outreach-invitations, outreach-follow-ups, outreach-outbox; docs/outreach.md).
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt","payload":
//         {"kind":"invite","prospect_id"} | {"kind":"follow_up","message_id"} | {"kind":"outbox","outbox_id"}}]}
//
// The job runner (_shared/job_runner.ts) does the front door, the contexts (read under the lease,
// the intent recorded in the same statement), the slots with claim-ahead, the grouped outcome
// writes (the jobs' apply functions) and the response. This file maps Unipile's answers to one
// outcome per task:
//
//   invite     reconcile_since set → GET /users/invite/sent (two pages at most) for an invitation
//              to this provider id / public identifier → ok {result: "reconciled", invitation_id,
//              provider_id}; a failed lookup → retry (never send blind). provider_id null → GET
//              /users/{public_identifier} (its provider_id goes into the data of every outcome
//              from then on). Then POST /users/invite {account_id, provider_id, message: note}
//              → ok {result: "sent", invitation_id, provider_id}; 422 already_invited_recently /
//              cannot_resend_yet / already_connected → ok {result: "<type>", provider_id}.
//   follow_up, outbox
//              reconcile_since set → the chat's messages since then (the chat: chat_id, else the
//              chat with recipient_provider_id among the chats active since then) for one of ours
//              with exactly this text → ok {result: "reconciled", chat_id, provider_message_id};
//              `replied: true` is added to the data when a message from the other side was seen
//              (a follow-up not found then is not sent: discard {replied, not_sent}); a failed
//              lookup → retry. Else POST /chats/{chat_id}/messages, or without a chat POST
//              /chats (multipart) → ok {result: "sent", chat_id, provider_message_id}.
//   failures   outcomes.ts (discard on a disconnected account, retry + pause on 429 / 5xx /
//              limit_exceeded, dead {error_type} on a refusal, release on a refused API key).
//   not_sent   in the data when this attempt certainly sent nothing (a refusal, or not called) and
//              no earlier attempt can have (no reconcile_since, or the reconcile found nothing):
//              SQL then forgets the intent, so the next attempt sends without looking first.
//
// One account's tasks run one after another within a request (serialize), so an account's answer
// (disconnected, 429, 5xx, limit_exceeded) is known before its next call: its later tasks get the
// same outcome without a call (outcomes.ts). The API key never appears in responses, stored
// errors or logs.

import { z } from "npm:zod@4";
import { DEFAULT_TIMEOUT_MS, type FetchFn } from "../_shared/http.ts";
import { type JobFunction, type RunnerDeps, serveJob } from "../_shared/job_runner.ts";
import type { Data, Outcome } from "../_shared/outcome.ts";
import {
  type ChatMessage,
  isFailure,
  looksLikeProviderId,
  normalizePublicIdentifier,
  type SentInvitation,
  type UnipileClient,
  type UnipileFailure,
  unipileFromEnv,
  type UnipileSetup,
} from "../_shared/providers/unipile.ts";
import { type Blocks, blockedOutcome, failureOutcome, newBlocks, NOTHING_SENT, type Phase } from "./outcomes.ts";

/** How far before reconcile_since a message of ours may be dated and still count (clock skew
 * between the database and LinkedIn). */
export const RECONCILE_SKEW_MS = 60_000;
/** Pages read by a reconcile lookup (newest first: the earlier attempt's item is on the first). */
export const RECONCILE_PAGES = 2;
export const INVITATIONS_PAGE_SIZE = 100;
export const CHATS_PAGE_SIZE = 50;
export const MESSAGES_PAGE_SIZE = 50;

const id = z.number().int().positive();
const timestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "not a timestamp");
const nonEmpty = z.string().trim().min(1);
// Moved off the payload by a trigger; accepted when present.
const rateKeys = z.array(z.string()).optional();

export const LinkedinSendPayloadSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("invite"), prospect_id: id, rate_keys: rateKeys }),
  z.object({ kind: z.literal("follow_up"), message_id: id, rate_keys: rateKeys }),
  z.object({ kind: z.literal("outbox"), outbox_id: id, rate_keys: rateKeys }),
]);
export type LinkedinSendPayload = z.output<typeof LinkedinSendPayloadSchema>;

const AccountSchema = z.object({ id, unipile_account_id: nonEmpty });
const PauseKeysSchema = z.object({ account: nonEmpty, budget: nonEmpty });

export const InviteContextSchema = z.object({
  kind: z.literal("invite"),
  prospect_id: id,
  account: AccountSchema,
  provider_id: nonEmpty.nullable().default(null),
  public_identifier: nonEmpty.nullable().default(null),
  /** Rendered, ≤ 300 characters (LinkedIn refuses longer: 400 too_many_characters → dead). */
  note: z.string().nullable().default(null),
  reconcile_since: timestamp.nullable().default(null),
  pause_keys: PauseKeysSchema,
});
const messageContext = {
  ref_id: id,
  account: AccountSchema,
  recipient_provider_id: nonEmpty,
  chat_id: nonEmpty.nullable().default(null),
  text: z.string().min(1),
  reconcile_since: timestamp.nullable().default(null),
  pause_keys: PauseKeysSchema,
};
export const MessageContextSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("follow_up"), ...messageContext }),
  z.object({ kind: z.literal("outbox"), ...messageContext }),
]);
export const LinkedinSendContextSchema = z.discriminatedUnion("kind", [
  InviteContextSchema,
  z.object({ kind: z.literal("follow_up"), ...messageContext }),
  z.object({ kind: z.literal("outbox"), ...messageContext }),
]);
export type InviteContext = z.output<typeof InviteContextSchema>;
export type MessageContext = z.output<typeof MessageContextSchema>;
export type LinkedinSendContext = z.output<typeof LinkedinSendContextSchema>;

export interface HandlerDeps extends RunnerDeps {
  fetch?: FetchFn;
  /** Unipile call deadline; 10 s by default. */
  timeoutMs?: number;
}

interface Session {
  unipile: UnipileSetup;
  blocks: Blocks;
  calls: number;
}

/** Our text and LinkedIn's copy of it may differ in line endings (multipart writes CRLF) and
 * surrounding whitespace only. */
export function sameText(a: string | null, b: string): boolean {
  if (a === null) return false;
  const norm = (s: string) => s.replace(/\r\n?/g, "\n").trim().normalize("NFC");
  return norm(a) === norm(b);
}

export function linkedinSendJob(deps: HandlerDeps): JobFunction<LinkedinSendPayload, LinkedinSendContext, Session> {
  const now = deps.now ?? Date.now;
  const clientOpts = { fetch: deps.fetch ?? fetch, timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS, now };

  return {
    name: "linkedin-send",
    payload: LinkedinSendPayloadSchema,
    context: LinkedinSendContextSchema,
    session: () => {
      const s: Session = { unipile: { ok: false, configError: "" }, blocks: newBlocks(), calls: 0 };
      s.unipile = unipileFromEnv(deps.env, { ...clientOpts, onRequest: () => s.calls++ });
      return s;
    },
    secrets: (_task, s) => (s.unipile.ok ? s.unipile.secrets : []),
    // One account's calls one after another: its answer is known before its next call, and an
    // account never bursts (LinkedIn flags accounts that do).
    serialize: (task) => `account:${task.context.account.id}`,
    tagsField: "linkedin",
    // Zeros included, so the field always carries every count.
    counters: (s) => ({ invitations_sent: 0, messages_sent: 0, reconciled: 0, already: 0, unipile_calls: s.calls }),

    async perform(task, s) {
      const c = task.context;
      if (c.kind !== task.payload.kind) {
        return { outcome: "retry", error: `context kind ${c.kind} does not match the payload's ${task.payload.kind}` };
      }
      if (!s.unipile.ok) return { outcome: "release", error: s.unipile.configError };
      const extra: Data = c.kind === "invite" && c.provider_id !== null ? { provider_id: c.provider_id } : {};
      // Not called now, and no earlier attempt with an unknown outcome: SQL may forget the intent.
      if (c.reconcile_since === null) extra.not_sent = true;
      const blocked = blockedOutcome(s.blocks, c, extra, now());
      if (blocked !== null) return blocked;
      return c.kind === "invite" ? await invite(c, s.unipile.client, s) : await message(c, s.unipile.client, s);
    },
  };

  /** `clean`: no earlier attempt of this row can have sent (none, or the reconcile looked and found
   * nothing). A refusal that certainly sent nothing then says so (data.not_sent), so SQL forgets
   * the intent and the next attempt sends without looking first. */
  function fail(s: Session, c: LinkedinSendContext, r: UnipileFailure, phase: Phase, extra: Data, clean: boolean): Outcome {
    const nothingSent = phase !== "lookup" && clean && NOTHING_SENT.has(r.kind);
    return failureOutcome(s.blocks, c, r, phase, nothingSent ? { ...extra, not_sent: true } : extra, now());
  }

  // -------------------------------------------------------------------------------------------
  // Invitations

  async function invite(c: InviteContext, client: UnipileClient, s: Session): Promise<Outcome> {
    let providerId = c.provider_id;
    const extra = (): Data => (providerId !== null ? { provider_id: providerId } : {});
    if (providerId === null && c.public_identifier === null) {
      return { outcome: "dead", error: "the prospect has neither a provider_id nor a public_identifier", data: { error_type: "no_identifier" } };
    }

    if (c.reconcile_since !== null) {
      const found = await findInvitation(c, client);
      if (found.kind === "found") {
        // UNVERIFIED whether invited_user_id is the ACo… id: only an id that looks like one is kept.
        const pid = providerId ?? (looksLikeProviderId(found.invitation.providerId) ? found.invitation.providerId : null);
        return {
          outcome: "ok",
          data: { result: "reconciled", invitation_id: found.invitation.id, provider_id: pid },
          tag: "reconciled",
        };
      }
      if (found.kind !== "not_found") return fail(s, c, found, "lookup", extra(), false);
    }

    if (providerId === null) {
      const profile = await client.getProfile(c.account.unipile_account_id, c.public_identifier!);
      if (isFailure(profile)) return fail(s, c, profile, "profile", extra(), true);
      providerId = profile.providerId;
    }

    const r = await client.sendInvitation({ accountId: c.account.unipile_account_id, providerId, message: c.note?.trim() ? c.note : null });
    if (r.kind === "sent") {
      return { outcome: "ok", data: { result: "sent", invitation_id: r.invitationId, provider_id: providerId }, tag: "invitations_sent" };
    }
    if (r.kind === "already") {
      // LinkedIn has an invitation (or the relation) already: ours from an earlier attempt
      // whose answer was lost, or one sent otherwise. Either way nothing is to be sent again.
      return { outcome: "ok", data: { result: r.type, provider_id: providerId }, tag: "already" };
    }
    return fail(s, c, r, "send", extra(), true);
  }

  async function findInvitation(
    c: InviteContext,
    client: UnipileClient,
  ): Promise<{ kind: "found"; invitation: SentInvitation } | { kind: "not_found" } | UnipileFailure> {
    const wanted = normalizePublicIdentifier(c.public_identifier);
    const matches = (inv: SentInvitation) =>
      (c.provider_id !== null && inv.providerId === c.provider_id) ||
      (wanted !== null && normalizePublicIdentifier(inv.publicIdentifier) === wanted);
    let cursor: string | null = null;
    for (let page = 0; page < RECONCILE_PAGES; page++) {
      const r = await client.listSentInvitations({ accountId: c.account.unipile_account_id, cursor, limit: INVITATIONS_PAGE_SIZE });
      if (isFailure(r)) return r;
      // Any pending invitation to this person is the one: LinkedIn holds one per person, and a
      // second one would be refused (already_invited_recently) anyway.
      const hit = r.items.find(matches);
      if (hit !== undefined) return { kind: "found", invitation: hit };
      if (r.cursor === null) break;
      cursor = r.cursor;
    }
    return { kind: "not_found" };
  }

  // -------------------------------------------------------------------------------------------
  // Follow-ups and outbox messages

  async function message(c: MessageContext, client: UnipileClient, s: Session): Promise<Outcome> {
    let chatId = c.chat_id;
    const extra: Data = {};

    if (c.reconcile_since !== null) {
      const found = await findMessage(c, client);
      if (isFailure(found)) return fail(s, c, found, "lookup", extra, false);
      if (found.replied) extra.replied = true;
      if (found.kind === "not_found" && found.replied && c.kind === "follow_up") {
        // The prospect answered meanwhile: the sequence stops here (the app's outbox messages go).
        return { outcome: "discard", error: "the prospect replied; this follow-up is not sent", data: { ...extra, not_sent: true } };
      }
      if (found.chatId !== null && chatId === null) {
        chatId = found.chatId;
        extra.chat_id = chatId;
      }
      if (found.kind === "found") {
        return {
          outcome: "ok",
          data: { ...extra, result: "reconciled", chat_id: found.chatId, provider_message_id: found.message.id },
          tag: "reconciled",
        };
      }
    }

    if (chatId !== null) {
      const r = await client.sendMessage({ chatId, accountId: c.account.unipile_account_id, text: c.text });
      if (isFailure(r)) return fail(s, c, r, "send", extra, true);
      return { outcome: "ok", data: { ...extra, result: "sent", chat_id: chatId, provider_message_id: r.messageId }, tag: "messages_sent" };
    }
    const r = await client.startChat({ accountId: c.account.unipile_account_id, attendeeProviderId: c.recipient_provider_id, text: c.text });
    if (isFailure(r)) return fail(s, c, r, "send", extra, true);
    return { outcome: "ok", data: { ...extra, result: "sent", chat_id: r.chatId, provider_message_id: r.messageId }, tag: "messages_sent" };
  }

  /** Our message with this text in the recipient's chat since reconcile_since, if any. */
  async function findMessage(
    c: MessageContext,
    client: UnipileClient,
  ): Promise<
    | { kind: "found"; chatId: string; message: ChatMessage; replied: boolean }
    | { kind: "not_found"; chatId: string | null; replied: boolean }
    | UnipileFailure
  > {
    const since = new Date(Date.parse(c.reconcile_since!) - RECONCILE_SKEW_MS);
    const accountId = c.account.unipile_account_id;
    let chatId = c.chat_id;

    if (chatId === null) {
      // A chat started by the earlier attempt has had activity since then.
      let cursor: string | null = null;
      for (let page = 0; page < RECONCILE_PAGES && chatId === null; page++) {
        const r = await client.listChats({ accountId, after: since, cursor, limit: CHATS_PAGE_SIZE });
        if (isFailure(r)) return r;
        chatId = r.items.find((chat) => chat.attendeeProviderId === c.recipient_provider_id)?.id ?? null;
        if (r.cursor === null) break;
        cursor = r.cursor;
      }
      if (chatId === null) return { kind: "not_found", chatId: null, replied: false };
    }

    let replied = false;
    let cursor: string | null = null;
    const recent = (m: ChatMessage) => m.timestamp === null || m.timestamp >= since.getTime();
    for (let page = 0; page < RECONCILE_PAGES; page++) {
      const r = await client.listChatMessages({ chatId, after: since, cursor, limit: MESSAGES_PAGE_SIZE });
      if (isFailure(r)) return r;
      for (const m of r.items) if (!m.isSender && !m.isEvent && recent(m)) replied = true;
      const ours = r.items.find((m) => m.isSender && !m.isEvent && recent(m) && sameText(m.text, c.text));
      if (ours !== undefined) {
        // The rest of the page was read for `replied`; a reply on a later page is the webhook's.
        return { kind: "found", chatId, message: ours, replied };
      }
      if (r.cursor === null) break;
      cursor = r.cursor;
    }
    return { kind: "not_found", chatId, replied };
  }
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  return serveJob(linkedinSendJob(deps), deps);
}
