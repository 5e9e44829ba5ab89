// POST /__state/unipile: seeds the fake (accounts, thousands of prospects, relations) and steers
// it (webhook timing and retries, auto-acceptance, accept-then-hang), and makes LinkedIn-side
// things happen (an invitation is accepted, a prospect replies). Strict: a misspelt field fails
// loudly, naming it. Every reference (account, user, invitation) is checked before anything is
// changed, so a refused call changes nothing.
//
//   {
//     "latency_ms", "webhook_delay_ms", "webhook_timeout_ms", "retry_delays_ms": [ms…],
//     "echo_own_messages", "note_creates_chat", "clock_offset_ms",
//     "auto_accept": {"after_ms", "notify"?, "account_ids"?} | null,
//     "accept_then_hang": {"hang_ms", "times"?, "on"?: ["invite","start_chat","send_message"]} | null,
//     "api_keys": [key…]                                   added
//     "accounts": [{"id", "status"?, "invite_limit"?, "invites_sent"?, "name"?, …}]   upserted
//     "users": [{"provider_id", "public_identifier", "first_name", "last_name", "headline"?, "company"?, …}]
//     "relations": [{"account_id", "provider_id", "created_at"?}]
//     "accept": {"invitation_id"} | {"account_id", "provider_id"?} (+ "notify"?), or a list of them
//     "reply": {"account_id", "provider_id", "text"}, or a list of them
//     "clear_deliveries": true
//   }

import { z } from "npm:zod@4";
import type { SeedContext } from "../types.ts";
import { acceptInvitation, prospectReplies } from "./unipile_events.ts";
import {
  AccountId,
  AccountInput,
  addRelation,
  type Invitation,
  OptionsInput,
  ProviderId,
  RelationInput,
  toMs,
  type UnipileState,
  upsertAccount,
  upsertUser,
  UserInput,
  zodMessage,
} from "./unipile_state.ts";

const AcceptOp = z.strictObject({
  invitation_id: z.string().min(1).optional(),
  /** With provider_id: that member's pending invitation; alone: all the account's pending ones. */
  account_id: AccountId.optional(),
  provider_id: ProviderId.optional(),
  /** false = no new_relation webhook (only GET /users/relations shows the acceptance). */
  notify: z.boolean().default(true),
}).refine((o) => o.invitation_id !== undefined || o.account_id !== undefined, {
  message: "needs invitation_id or account_id",
});

const ReplyOp = z.strictObject({
  account_id: AccountId,
  provider_id: ProviderId,
  text: z.string().min(1).max(8_000),
});

const oneOrMany = <T extends z.ZodType>(s: T) => z.union([s, z.array(s).max(100_000)]);

const SeedSchema = z.strictObject({
  ...OptionsInput.shape,
  /** Shifts the fake's clock (created_at, timestamps); timers still run in real time. */
  clock_offset_ms: z.number().int().optional(),
  api_keys: z.array(z.string().min(1)).optional(),
  accounts: z.array(AccountInput).max(10_000).optional(),
  users: z.array(UserInput).max(200_000).optional(),
  relations: z.array(RelationInput).max(200_000).optional(),
  accept: oneOrMany(AcceptOp).optional(),
  reply: oneOrMany(ReplyOp).optional(),
  /** Forgets the recorded delivery attempts (and their counters). */
  clear_deliveries: z.literal(true).optional(),
});

type Seed = z.infer<typeof SeedSchema>;
const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** The invitations each accept op names, checked against the current state. */
function acceptTargets(state: UnipileState, ops: z.infer<typeof AcceptOp>[]): Invitation[][] {
  return ops.map((op, i) => {
    const where = ops.length > 1 ? `accept.${i}` : "accept";
    if (op.invitation_id !== undefined) {
      const inv = state.invitations.get(op.invitation_id);
      if (inv === undefined) throw new Error(`${where}.invitation_id: unknown invitation ${op.invitation_id}`);
      if (inv.status !== "pending") throw new Error(`${where}.invitation_id: invitation ${inv.id} is ${inv.status}`);
      return [inv];
    }
    const acc = state.accounts.get(op.account_id!);
    if (acc === undefined) throw new Error(`${where}.account_id: unknown account ${op.account_id}`);
    if (op.provider_id !== undefined) {
      const inv = acc.lastInvitation.get(op.provider_id);
      if (inv?.status !== "pending") {
        throw new Error(`${where}: no pending invitation from ${acc.id} to ${op.provider_id}`);
      }
      return [inv];
    }
    return acc.invitations.filter((inv) => inv.status === "pending");
  });
}

/** Throws (naming the field) if a relation or reply names an account/user that will not exist. */
function checkReferences(state: UnipileState, s: Seed): void {
  const newAccounts = new Set((s.accounts ?? []).map((a) => a.id));
  const newUsers = new Map((s.users ?? []).map((u) => [u.provider_id, u.public_identifier.toLowerCase()]));
  const owners = new Map<string, string>();
  (s.users ?? []).forEach((u, i) => {
    const pi = u.public_identifier.toLowerCase();
    const owner = owners.get(pi) ?? state.byPublicId.get(pi);
    // A conflict unless the current owner is given another public identifier in this call.
    const ownerKeeps = owner !== undefined && (newUsers.get(owner) ?? pi) === pi;
    if (owner !== undefined && owner !== u.provider_id && ownerKeeps) {
      throw new Error(`users.${i}.public_identifier: ${u.public_identifier} already belongs to ${owner}`);
    }
    owners.set(pi, u.provider_id);
  });
  const account = (id: string) => state.accounts.has(id) || newAccounts.has(id);
  const user = (id: string) => state.users.has(id) || newUsers.has(id);
  (s.relations ?? []).forEach((r, i) => {
    if (!account(r.account_id)) throw new Error(`relations.${i}.account_id: unknown account ${r.account_id}`);
    if (!user(r.provider_id)) throw new Error(`relations.${i}.provider_id: unknown user ${r.provider_id}`);
  });
  const replies = list(s.reply);
  replies.forEach((r, i) => {
    const where = Array.isArray(s.reply) ? `reply.${i}` : "reply";
    if (!account(r.account_id)) throw new Error(`${where}.account_id: unknown account ${r.account_id}`);
    if (!user(r.provider_id)) throw new Error(`${where}.provider_id: unknown user ${r.provider_id}`);
  });
}

export function seedUnipileState(state: UnipileState, input: unknown, ctx: SeedContext): Record<string, unknown> {
  const parsed = SeedSchema.safeParse(input);
  if (!parsed.success) throw new Error(zodMessage(parsed.error));
  const s = parsed.data;
  checkReferences(state, s);
  const targets = acceptTargets(state, list(s.accept));
  state.scheduler.bind(ctx.signal);

  const o = state.options as Record<string, unknown>;
  for (const key of Object.keys(OptionsInput.shape)) {
    const v = (s as Record<string, unknown>)[key];
    if (v !== undefined) o[key] = v;
  }
  if (s.clock_offset_ms !== undefined) state.clockOffsetMs = s.clock_offset_ms;
  for (const k of s.api_keys ?? []) state.apiKeys.add(k);
  for (const a of s.accounts ?? []) upsertAccount(state, a);
  (s.users ?? []).forEach((u, i) => upsertUser(state, u, `users.${i}`));
  const now = state.now();
  for (const r of s.relations ?? []) {
    addRelation(
      state,
      state.accounts.get(r.account_id)!,
      r.provider_id,
      r.created_at === undefined ? now : toMs(r.created_at),
    );
  }
  if (s.clear_deliveries) {
    state.scheduler.attempts.length = 0;
    state.scheduler.counters = { delivered: 0, failed_attempts: 0, given_up: 0 };
  }

  const accepted: string[] = [];
  list(s.accept).forEach((op, i) => {
    for (const inv of targets[i]) {
      if (inv.status !== "pending") continue; // named twice in this call
      acceptInvitation(state, inv, op.notify);
      accepted.push(inv.id);
    }
  });
  const replies = list(s.reply).map((r) => {
    const { chat, message } = prospectReplies(
      state,
      state.accounts.get(r.account_id)!,
      state.users.get(r.provider_id)!,
      r.text,
    );
    return { chat_id: chat.id, message_id: message.id };
  });

  return {
    options: state.options,
    clock_offset_ms: state.clockOffsetMs,
    accounts: state.accounts.size,
    users: state.users.size,
    relations: Object.fromEntries([...state.accounts.values()].map((a) => [a.id, a.relations.size])),
    ...(s.accept !== undefined && { accepted }),
    ...(s.reply !== undefined && { replies }),
  };
}
