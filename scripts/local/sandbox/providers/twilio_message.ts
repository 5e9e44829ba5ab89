// The Message resource of the fake Twilio API: validating a create (POST Messages.json form
// fields) into a stored message, and the JSON Twilio returns for one (provider-contracts §4:
// counts are strings, dates RFC 2822, status "queued"). Pure functions over the state; the
// HTTP side is in twilio.ts and the later status changes in twilio_callbacks.ts.

import { err, type TwilioErrorSpec } from "./twilio_errors.ts";
import { E164, type TwilioMessage, type TwilioState } from "./twilio_state.ts";

export const API_VERSION = "2010-04-01";
export const WHATSAPP = "whatsapp:";

/** "Tue, 27 Nov 2018 16:14:39 +0000", the format of every Twilio date. */
export function rfc2822(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toUTCString().replace("GMT", "+0000");
}

export function messageUri(accountSid: string, sid: string): string {
  return `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}.json`;
}

/** The resource as Twilio serialises it, keys in the order of the contract's 201 body. */
export function messageJson(m: TwilioMessage): Record<string, unknown> {
  const accountSid = m.account_sid;
  return {
    sid: m.sid,
    account_sid: accountSid,
    messaging_service_sid: m.messaging_service_sid,
    to: m.to,
    from: m.from,
    body: m.body,
    status: m.status,
    num_segments: String(m.num_segments),
    num_media: String(m.num_media),
    direction: "outbound-api",
    api_version: API_VERSION,
    price: null,
    price_unit: "USD",
    error_code: m.error_code,
    error_message: m.error_message,
    date_created: rfc2822(m.date_created),
    date_updated: rfc2822(m.date_updated),
    date_sent: rfc2822(m.date_sent),
    uri: messageUri(accountSid, m.sid),
    subresource_uris: { media: `/${API_VERSION}/Accounts/${accountSid}/Messages/${m.sid}/Media.json` },
  };
}

/** Form fields; a repeated field (MediaUrl) keeps every value. */
export type FormParams = Record<string, string[]>;

export function formParams(body: unknown): FormParams {
  const out: FormParams = {};
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    for (const [k, v] of Object.entries(body)) {
      const values = (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === "string");
      if (values.length > 0) out[k] = values;
    }
  }
  return out;
}

const first = (p: FormParams, key: string): string | undefined => {
  const v = p[key]?.[0];
  return v === undefined || v === "" ? undefined : v;
};

// GSM-7 basic set (approximation: printable ASCII minus a few, plus common Latin-1 letters).
const GSM7 = /^[A-Za-z0-9 \r\n@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!"#¤%&'()*+,\-./:;<=>?¡ÄÖÑÜ§¿äöñüà^{}\\[~\]|€]*$/;

/** SMS segments as Twilio bills them: 160/153 GSM-7 characters, 70/67 UCS-2. WhatsApp: 1. */
function segments(body: string, channel: "sms" | "whatsapp"): number {
  if (channel === "whatsapp" || body.length === 0) return 1;
  const [single, multi] = GSM7.test(body) ? [160, 153] : [70, 67];
  const length = [...body].length;
  return length <= single ? 1 : Math.ceil(length / multi);
}

/** Renders {{1}}-style placeholders; the reason text on a bad ContentVariables. */
function render(template: string, rawVariables: string | undefined): { body: string } | { why: string } {
  let variables: Record<string, unknown> = {};
  if (rawVariables !== undefined) {
    try {
      variables = JSON.parse(rawVariables);
    } catch {
      return { why: "not a JSON string" };
    }
    if (variables === null || typeof variables !== "object" || Array.isArray(variables)) {
      return { why: "not a JSON object" };
    }
  }
  let why: string | null = null;
  const body = template.replace(/\{\{\s*([^{}\s]+)\s*\}\}/g, (_, key: string) => {
    const v = variables[key];
    // Twilio documents null/empty values as 21656. A variable left out entirely is
    // UNVERIFIED (Twilio may fall back to the template's sample); the fake rejects it so a
    // client bug shows up in tests instead of as a half-rendered message.
    if (v === undefined || v === null || v === "") {
      why ??= `variable {{${key}}} has no value`;
      return "";
    }
    return typeof v === "string" ? v : JSON.stringify(v);
  });
  return why === null ? { body } : { why };
}

export interface CreateResult {
  message: TwilioMessage;
  /** WhatsApp free-form to a number without an open 24 h window: fails later with 63016. */
  outsideWindow: boolean;
}

const randomHex = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n / 2)), (b) => b.toString(16).padStart(2, "0")).join("");

/** Validates a create request; the order of checks is the fake's own (Twilio's is UNVERIFIED). */
export function createMessage(state: TwilioState, p: FormParams): CreateResult | TwilioErrorSpec {
  const to = first(p, "To");
  const from = first(p, "From");
  const serviceSid = first(p, "MessagingServiceSid");
  const contentSid = first(p, "ContentSid");
  const contentVariables = first(p, "ContentVariables");
  const mediaUrls = p.MediaUrl?.filter((u) => u !== "") ?? [];
  let body = first(p, "Body");

  if (to === undefined) return err.toRequired();
  if (from === undefined && serviceSid === undefined) return err.fromRequired();
  if (body === undefined && mediaUrls.length === 0 && contentSid === undefined) return err.bodyRequired();
  if (contentVariables !== undefined && contentSid === undefined) return err.contentSidRequired();

  const channel = to.startsWith(WHATSAPP) ? "whatsapp" : "sms";
  const bareTo = channel === "whatsapp" ? to.slice(WHATSAPP.length) : to;
  if (from !== undefined && from.startsWith(WHATSAPP) !== (channel === "whatsapp")) return err.channelMismatch();
  if (!E164.test(bareTo)) return err.invalidTo(bareTo);

  if (from !== undefined) {
    const bareFrom = channel === "whatsapp" ? from.slice(WHATSAPP.length) : from;
    if (!state.senders.has(bareFrom)) return channel === "whatsapp" ? err.invalidWhatsAppFrom(from) : err.invalidFrom(from);
  } else if (!state.messagingServices.has(serviceSid!)) {
    return err.messagingServiceNotFound();
  }

  if (contentSid !== undefined) {
    const template = state.templates.get(contentSid);
    if (template === undefined) return err.contentSidInvalid();
    const rendered = render(template.body, contentVariables);
    if ("why" in rendered) return err.contentVariablesInvalid(rendered.why);
    body = rendered.body; // a Content template wins over Body
  }
  body ??= "";
  if ([...body].length > 1600) return err.bodyTooLong();

  // Synchronous recipient errors apply to both channels in the fake (for WhatsApp, Twilio
  // reports a number without WhatsApp asynchronously as 63003; not emulated).
  const behaviour = state.recipients.get(bareTo);
  if (behaviour === "invalid") return err.invalidTo(bareTo);
  if (behaviour === "unsubscribed") return err.unsubscribed();
  if (behaviour === "not_capable") return err.notCapable();

  const now = state.now();
  const viaService = from === undefined;
  const message: TwilioMessage = {
    sid: "SM" + randomHex(32),
    account_sid: state.accountSid!, // only an authorized request gets here
    channel,
    to,
    // With a Messaging Service the sender is picked when the message leaves the queue
    // (twilio_callbacks.ts fills in the fake's first sender).
    from: viaService ? null : from,
    messaging_service_sid: serviceSid ?? null,
    body,
    content_sid: contentSid ?? null,
    // Contract: a Messaging Service answers "accepted" with num_segments "0" (UNVERIFIED).
    num_segments: viaService ? 0 : segments(body, channel),
    num_media: mediaUrls.length,
    status: viaService ? "accepted" : "queued",
    status_callback: first(p, "StatusCallback") ?? null,
    error_code: null,
    error_message: null,
    date_created: now,
    date_updated: now,
    date_sent: null,
    callbacks_sent: 0,
    callbacks_failed: 0,
  };
  return { message, outsideWindow: channel === "whatsapp" && contentSid === undefined && behaviour === "no_window" };
}
