// Fake Twilio Programmable Messaging API (api.twilio.com), provider-contracts §4:
//   POST /2010-04-01/Accounts/{AccountSid}/Messages.json            create (SMS / WhatsApp)
//   GET  /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}.json fetch
//   GET  /2010-04-01/Accounts/{AccountSid}/Messages.json            list (To, From, DateSent[<>])
// HTTP Basic AccountSid:AuthToken, form-encoded bodies, JSON answers, Twilio's error envelope.
// There is no idempotency key for creates (trap 6): a retried POST creates a second message,
// which is exactly what the accept_then_hang option lets tests provoke and then reconcile.

import { jsonResponse, sleep } from "../http.ts";
import type { ProviderContext, ProviderModule, SandboxRequest } from "../types.ts";
import { startProgress } from "./twilio_callbacks.ts";
import { err, twilioError, twilioFaultBody } from "./twilio_errors.ts";
import { listMessages } from "./twilio_list.ts";
import { API_VERSION, createMessage, formParams, messageJson } from "./twilio_message.ts";
import { loadTwilioState, seedTwilioState, snapshotTwilioState, storeMessage, type TwilioState } from "./twilio_state.ts";

const LIST_PATH = new RegExp(`^/${API_VERSION}/Accounts/([^/]+)/Messages\\.json$`);
const ITEM_PATH = new RegExp(`^/${API_VERSION}/Accounts/([^/]+)/Messages/([^/]+)\\.json$`);

function requestId(): string {
  return "RQ" + crypto.randomUUID().replaceAll("-", "");
}

/** The Basic credentials, or null when absent/malformed. */
function basicAuth(req: SandboxRequest): { user: string; pass: string } | null {
  const header = req.headers.get("authorization");
  if (!header || !/^basic /i.test(header)) return null;
  try {
    const decoded = atob(header.slice(6).trim());
    const i = decoded.indexOf(":");
    return i < 0 ? null : { user: decoded.slice(0, i), pass: decoded.slice(i + 1) };
  } catch {
    return null;
  }
}

/** Twilio answers 20003 to wrong credentials and to an AccountSid in the path that is not theirs. */
function authorized(req: SandboxRequest, state: TwilioState, pathSid: string): boolean {
  const creds = basicAuth(req);
  return creds !== null && state.accountSid !== null && creds.user === state.accountSid &&
    creds.pass === state.authToken && pathSid === creds.user;
}

/** Takes one use of a times-limited option; returns the option as it was, or null if off. */
function takeOne<T extends { times?: number }>(current: T | null, set: (next: T | null) => void): T | null {
  if (current === null) return null;
  if (current.times !== undefined) set(current.times <= 1 ? null : { ...current, times: current.times - 1 });
  return current;
}

async function create(req: SandboxRequest, ctx: ProviderContext<TwilioState>): Promise<Response> {
  const state = ctx.state;
  // 20429 means Twilio never processed the request (trap 6): checked before anything is stored.
  const limited = takeOne(state.rateLimit, (next) => (state.rateLimit = next));
  if (limited !== null) {
    state.counters.rate_limited++;
    return twilioError(err.tooManyRequests(limited.status));
  }
  // Twilio reads form fields only; a JSON body carries no parameters (so: 21604).
  const params = req.contentType === "application/x-www-form-urlencoded" ? formParams(req.body) : {};
  const result = createMessage(state, params);
  if ("code" in result) return twilioError(result);

  const message = result.message;
  storeMessage(state, message);
  const body = messageJson(message); // the 201 shows the message as created
  startProgress(state, message, result.outsideWindow, ctx.signal);

  // "Twilio accepted, our side never saw the 201": the message exists (fetch/list/callbacks see
  // it) while the answer is held back; a client timeout shorter than hang_ms never gets it.
  const hang = takeOne(state.acceptThenHang, (next) => (state.acceptThenHang = next));
  if (hang !== null) {
    state.counters.hung++;
    await sleep(hang.hang_ms, ctx.signal);
  }
  return jsonResponse(201, body, { "twilio-request-id": requestId() });
}

function route(req: SandboxRequest, ctx: ProviderContext<TwilioState>): Response | Promise<Response> {
  const state = ctx.state;
  const list = LIST_PATH.exec(req.path);
  const item = list === null ? ITEM_PATH.exec(req.path) : null;
  if (list === null && item === null) return twilioError(err.notFound(req.path));
  const pathSid = (list ?? item)![1];
  if (!authorized(req, state, pathSid)) {
    return twilioError(err.authenticate(), { "www-authenticate": 'Basic realm="Twilio API"' });
  }

  if (list !== null) {
    if (req.method === "POST") return create(req, ctx);
    if (req.method !== "GET") return twilioError(err.methodNotAllowed(), { allow: "GET, POST" });
    const result = listMessages(state, req.query);
    if ("code" in result) return twilioError(result);
    return jsonResponse(200, result.body, { "twilio-request-id": requestId() });
  }

  if (req.method !== "GET") return twilioError(err.methodNotAllowed(), { allow: "GET" });
  const message = state.messages.get(item![2]);
  if (message === undefined) return twilioError(err.notFound(req.path));
  return jsonResponse(200, messageJson(message), { "twilio-request-id": requestId() });
}

export const twilio: ProviderModule<TwilioState> = {
  name: "twilio",
  loadState: loadTwilioState,
  async handle(req, ctx) {
    if (ctx.state.latencyMs > 0) await sleep(ctx.state.latencyMs, ctx.signal);
    return route(req, ctx);
  },
  faultBody: twilioFaultBody,
  seed: seedTwilioState,
  snapshot: snapshotTwilioState,
  dispose: (state) => state.scheduler.cancelAll(),
};
