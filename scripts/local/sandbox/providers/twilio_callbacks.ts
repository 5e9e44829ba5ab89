// What happens to a fake Twilio message after the 201: its status moves on (sent, delivered,
// maybe read; or failed with 63016) a few ms apart, and, when it has a StatusCallback, each
// change is POSTed there form-encoded and signed the way Twilio signs webhooks
// (X-Twilio-Signature = base64 HMAC-SHA1 keyed by the auth token over the URL followed by every
// parameter name+value, names sorted), with an I-Twilio-Idempotency-Token header.
//
// Twilio does not retry a status callback that fails (only connection overrides such as #rc=
// ask for retries), so the fake logs a failed POST once and drops it. Every timer and request
// here ends when the sandbox closes (ctx.signal), so close() never waits on a callback.

import { logTarget, OutboundScheduler } from "./outbound.ts";
import { err } from "./twilio_errors.ts";
import type { CallbackOptions, MessageStatus, TwilioMessage, TwilioState } from "./twilio_state.ts";

const encoder = new TextEncoder();

/** The X-Twilio-Signature of a POST to `url` with these form parameters. */
export async function twilioSignature(
  authToken: string,
  url: string,
  params: Record<string, string>,
): Promise<string> {
  // Plain code-unit sort, as Twilio's own SDKs sort (Object.keys(params).sort()).
  const data = Object.keys(params).sort().reduce((acc, key) => acc + key + params[key], url);
  const key = await crypto.subtle.importKey("raw", encoder.encode(authToken), { name: "HMAC", hash: "SHA-1" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(data)));
  return btoa(String.fromCharCode(...mac));
}

/** Timers and in-flight callbacks of one state, all cancelled when the sandbox closes. */
export class CallbackScheduler extends OutboundScheduler {
  /** POSTs once; true on a 2xx. Never throws; a failure is logged (and the callback dropped). */
  async post(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<boolean> {
    if (this.closed) return false;
    const { status, error } = await this.postOnce(url, headers, body, timeoutMs);
    const ok = status !== null && status >= 200 && status < 300;
    if (!ok && !this.closed) logFailure(url, status !== null ? `HTTP ${status}` : String(error));
    return ok;
  }
}

function logFailure(url: string, reason: string): void {
  console.error(`sandbox twilio: status callback to ${logTarget(url)} failed (${reason}); dropped`);
}

interface Step {
  status: MessageStatus;
  error_code?: number;
  error_message?: string;
}

/** The statuses a message will still go through, given the options at creation time. */
function planSteps(state: TwilioState, m: TwilioMessage, outsideWindow: boolean, opts: CallbackOptions): Step[] {
  if (outsideWindow) {
    return [{ status: "failed", error_code: err.outsideWindow.code, error_message: err.outsideWindow.message }];
  }
  const steps: Step[] = [{ status: "sent" }, { status: "delivered" }];
  const bareTo = m.to.replace(/^whatsapp:/, "");
  if (m.channel === "whatsapp" && (opts.whatsapp_read || state.readReceipts.has(bareTo))) steps.push({ status: "read" });
  return steps;
}

function apply(state: TwilioState, m: TwilioMessage, step: Step): void {
  const now = state.now();
  if (m.from === null) {
    const sender = [...state.senders][0];
    m.from = m.channel === "whatsapp" ? `whatsapp:${sender}` : sender;
  }
  m.status = step.status;
  m.date_updated = now;
  if (step.status === "sent") m.date_sent = now;
  if (step.error_code !== undefined) {
    m.error_code = step.error_code;
    m.error_message = step.error_message ?? null;
  }
}

function callbackParams(m: TwilioMessage, step: Step): Record<string, string> {
  const params: Record<string, string> = {
    AccountSid: m.account_sid,
    ApiVersion: "2010-04-01",
    From: m.from ?? "",
    MessageSid: m.sid,
    MessageStatus: step.status,
    SmsSid: m.sid,
    SmsStatus: step.status,
    To: m.to,
  };
  if (m.messaging_service_sid !== null) params.MessagingServiceSid = m.messaging_service_sid;
  if (step.error_code !== undefined) params.ErrorCode = String(step.error_code);
  return params;
}

/** A message exists only after an authorized create, so the account has an auth token here. */
async function deliver(state: TwilioState, m: TwilioMessage, step: Step, copies: number, timeoutMs: number) {
  const url = m.status_callback!;
  const params = callbackParams(m, step);
  const headers = {
    "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    "x-twilio-signature": await twilioSignature(state.authToken!, url, params),
    // Same token on every copy: that is what lets a receiver drop the duplicate. (Twilio's
    // token format is UNVERIFIED; a UUID here.)
    "i-twilio-idempotency-token": crypto.randomUUID(),
    "user-agent": "TwilioProxy/1.1",
  };
  const body = new URLSearchParams(params).toString();
  for (let i = 0; i < copies; i++) {
    const ok = await state.scheduler.post(url, headers, body, timeoutMs);
    if (ok) {
      m.callbacks_sent++;
      state.counters.callbacks_sent++;
    } else {
      m.callbacks_failed++;
      state.counters.callbacks_failed++;
    }
  }
}

/**
 * Moves a freshly created message through its statuses, one step every `delay_ms`, and
 * POSTs the callbacks (in reverse order with out_of_order, twice each with duplicate).
 */
export function startProgress(state: TwilioState, m: TwilioMessage, outsideWindow: boolean, signal: AbortSignal): void {
  state.scheduler.bind(signal);
  const opts = { ...state.callbacks };
  const steps = planSteps(state, m, outsideWindow, opts);
  const order = opts.out_of_order ? [...steps].reverse() : steps;
  const send = opts.enabled && m.status_callback !== null;
  // Each step waits for the previous one's callbacks, so the order on the wire is the plan's.
  const run = async (i: number) => {
    apply(state, m, steps[i]);
    if (send) await deliver(state, m, order[i], opts.duplicate ? 2 : 1, opts.timeout_ms);
    if (i + 1 < steps.length) state.scheduler.later(opts.delay_ms, () => run(i + 1));
  };
  state.scheduler.later(opts.delay_ms, () => run(0));
}
