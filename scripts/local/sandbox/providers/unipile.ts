// Fake Unipile API v1 for LinkedIn (provider-contracts §6), on its own origin under /api/v1 (the
// official SDK is built as `new UnipileClient(origin, apiKey)` and appends /api/v1):
//   users    GET /users/{identifier}, POST /users/invite (JSON), GET /users/invite/sent,
//            DELETE /users/invite/sent/{id}, GET /users/relations        (unipile_users.ts)
//   chats    POST /chats, POST /chats/{id}/messages (multipart), GET /chats, GET /chats/{id},
//            GET /chats/{id}/messages                                     (unipile_chats.ts)
//   webhooks POST/GET /webhooks, DELETE /webhooks/{id}                    (unipile_webhooks.ts)
// Auth is the X-API-KEY header; errors use Unipile's envelope (unipile_errors.ts). LinkedIn-side
// events (acceptances, replies) and their webhooks are unipile_events.ts, driven by
// POST /__state/unipile (unipile_control.ts). There is no idempotency key on Unipile's POSTs, so a
// retried invite gets 422 already_invited_recently and a retried message is sent twice: what the
// accept_then_hang option lets tests provoke and then reconcile.

import { sleep } from "../http.ts";
import type { ProviderContext, ProviderModule, SandboxRequest } from "../types.ts";
import { getChat, listChats, listMessages, sendMessage, startChat } from "./unipile_chats.ts";
import { seedUnipileState } from "./unipile_control.ts";
import { err, unipileError, type UnipileErrorSpec, unipileFaultBody } from "./unipile_errors.ts";
import { snapshotUnipileState } from "./unipile_snapshot.ts";
import { type HangEndpoint, loadUnipileState, type UnipileState } from "./unipile_state.ts";
import {
  type Answer,
  cancelInvitation,
  getProfile,
  listRelations,
  listSentInvitations,
  sendInvitation,
} from "./unipile_users.ts";
import { createWebhook, deleteWebhook, listWebhooks } from "./unipile_webhooks.ts";

const PREFIX = "/api/v1";

function toResponse(a: Answer): Response {
  return a instanceof Response ? a : unipileError(a);
}

/**
 * "Unipile accepted, our side never saw the answer": the effect (invitation, message) is recorded
 * and visible to lists and webhooks while the success answer is held back; a client timeout
 * shorter than hang_ms never gets it. Only successes hang, and only they use up `times`.
 */
async function maybeHang(ctx: ProviderContext<UnipileState>, endpoint: HangEndpoint, a: Answer): Promise<Answer> {
  const state = ctx.state;
  const hang = state.options.accept_then_hang;
  if (!(a instanceof Response) || a.status >= 300 || hang === null || !hang.on.includes(endpoint)) return a;
  if (hang.times !== undefined) {
    state.options.accept_then_hang = hang.times <= 1 ? null : { ...hang, times: hang.times - 1 };
  }
  state.counters.hung++;
  await sleep(hang.hang_ms, ctx.signal);
  return a;
}

function methodNotAllowed(req: SandboxRequest, allow: string): Response {
  return unipileError(err.methodNotAllowed(req.method, req.path), { allow });
}

function route(req: SandboxRequest, ctx: ProviderContext<UnipileState>): Answer | Promise<Answer> {
  const state = ctx.state;
  let seg: string[];
  try {
    seg = req.path.slice(PREFIX.length).split("/").filter((s) => s !== "").map(decodeURIComponent);
  } catch {
    return err.invalidParameters("The path is not validly encoded.");
  }
  const m = req.method;
  const [a, b, c, d] = seg;
  const notFound: UnipileErrorSpec = err.notFound(`Route ${m} ${req.path}`);

  if (a === "users") {
    if (b === "relations" && seg.length === 2) {
      return m === "GET" ? listRelations(state, req) : methodNotAllowed(req, "GET");
    }
    if (b === "invite" && seg.length === 2) {
      return m === "POST" ? maybeHang(ctx, "invite", sendInvitation(state, req)) : methodNotAllowed(req, "POST");
    }
    if (b === "invite" && c === "sent" && seg.length === 3) {
      return m === "GET" ? listSentInvitations(state, req) : methodNotAllowed(req, "GET");
    }
    if (b === "invite" && c === "sent" && seg.length === 4) {
      return m === "DELETE" ? cancelInvitation(state, req, d) : methodNotAllowed(req, "DELETE");
    }
    if (b !== undefined && b !== "invite" && seg.length === 2) {
      return m === "GET" ? getProfile(state, req, b) : methodNotAllowed(req, "GET");
    }
    return notFound;
  }
  if (a === "chats") {
    if (seg.length === 1) {
      if (m === "GET") return listChats(state, req);
      return m === "POST" ? maybeHang(ctx, "start_chat", startChat(state, req)) : methodNotAllowed(req, "GET, POST");
    }
    if (seg.length === 2) return m === "GET" ? getChat(state, req, b) : methodNotAllowed(req, "GET");
    if (seg.length === 3 && c === "messages") {
      if (m === "GET") return listMessages(state, req, b);
      return m === "POST"
        ? maybeHang(ctx, "send_message", sendMessage(state, req, b))
        : methodNotAllowed(req, "GET, POST");
    }
    return notFound;
  }
  if (a === "webhooks") {
    if (seg.length === 1) {
      if (m === "GET") return listWebhooks(state);
      return m === "POST" ? createWebhook(state, req) : methodNotAllowed(req, "GET, POST");
    }
    if (seg.length === 2) return m === "DELETE" ? deleteWebhook(state, b) : methodNotAllowed(req, "DELETE");
  }
  return notFound;
}

export const unipile: ProviderModule<UnipileState> = {
  name: "unipile",
  loadState: loadUnipileState,
  async handle(req, ctx) {
    const state = ctx.state;
    state.scheduler.bind(ctx.signal);
    state.counters.requests++;
    if (state.options.latency_ms > 0) await sleep(state.options.latency_ms, ctx.signal);
    if (req.path !== PREFIX && !req.path.startsWith(PREFIX + "/")) {
      return unipileError(err.notFound(`Route ${req.method} ${req.path}`));
    }
    const key = req.headers.get("x-api-key");
    if (key === null || !state.apiKeys.has(key)) return unipileError(err.unauthorized());
    return toResponse(await route(req, ctx));
  },
  faultBody: unipileFaultBody,
  seed: seedUnipileState,
  snapshot: snapshotUnipileState,
  dispose: (state) => state.scheduler.cancelAll(),
};
