// Twilio's REST error envelope {code, message, more_info, status} (provider-contracts §4) and
// the codes the fake answers with. The official SDK turns this body into a RestException
// whose `code` is the number below, so clients branch on it.

import { jsonResponse } from "../http.ts";

export interface TwilioErrorSpec {
  status: number;
  code: number;
  message: string;
}

export function twilioErrorBody(e: TwilioErrorSpec): Record<string, unknown> {
  return {
    code: e.code,
    message: e.message,
    more_info: `https://www.twilio.com/docs/errors/${e.code}`,
    status: e.status,
  };
}

export function twilioError(e: TwilioErrorSpec, headers: Record<string, string> = {}): Response {
  return jsonResponse(e.status, twilioErrorBody(e), headers);
}

// Documented codes (twilio.com/docs/api/errors/<code>) unless marked otherwise.
export const err = {
  authenticate: (): TwilioErrorSpec => ({ status: 401, code: 20003, message: "Authenticate" }),
  notFound: (path: string): TwilioErrorSpec => ({
    status: 404,
    code: 20404,
    message: `The requested resource ${path} was not found`,
  }),
  // 20004 "Method not allowed" as the REST API answers an unsupported verb.
  methodNotAllowed: (): TwilioErrorSpec => ({ status: 405, code: 20004, message: "Method not allowed" }),
  tooManyRequests: (status = 429): TwilioErrorSpec => ({ status, code: 20429, message: "Too Many Requests" }),
  // Invalid list parameters (DateSent, PageSize): the code Twilio uses is UNVERIFIED; 20001
  // ("Invalid parameter") is the generic one.
  invalidParameter: (name: string): TwilioErrorSpec => ({
    status: 400,
    code: 20001,
    message: `Invalid ${name}`,
  }),
  bodyRequired: (): TwilioErrorSpec => ({ status: 400, code: 21602, message: "Message body is required." }),
  fromRequired: (): TwilioErrorSpec => ({ status: 400, code: 21603, message: "A 'From' phone number is required." }),
  toRequired: (): TwilioErrorSpec => ({ status: 400, code: 21604, message: "A 'To' phone number is required." }),
  invalidTo: (to: string): TwilioErrorSpec => ({
    status: 400,
    code: 21211,
    message: `The 'To' number ${to} is not a valid phone number.`,
  }),
  invalidFrom: (from: string): TwilioErrorSpec => ({
    status: 400,
    code: 21606,
    message: `The From phone number ${from} is not a valid, SMS-capable inbound phone number or short code for your account.`,
  }),
  // 63007 "could not find a Channel with the specified From address". Twilio may also report it
  // asynchronously (in error_code); whether the REST create answers it synchronously is
  // UNVERIFIED. The fake answers 400 so a wrong sender fails fast in tests.
  invalidWhatsAppFrom: (from: string): TwilioErrorSpec => ({
    status: 400,
    code: 63007,
    message: `Twilio could not find a Channel with the specified From address: ${from}`,
  }),
  // 21910: From and To of different channels (whatsapp: on one side only).
  channelMismatch: (): TwilioErrorSpec => ({
    status: 400,
    code: 21910,
    message: "Invalid From and To pair. From and To should be of the same channel",
  }),
  unsubscribed: (): TwilioErrorSpec => ({
    status: 400,
    code: 21610,
    message: "Attempt to send to unsubscribed recipient",
  }),
  notCapable: (): TwilioErrorSpec => ({ status: 400, code: 21614, message: "'To' number is not a valid mobile number" }),
  bodyTooLong: (): TwilioErrorSpec => ({
    status: 400,
    code: 21617,
    message: "The concatenated message body exceeds the 1600 character limit.",
  }),
  contentSidRequired: (): TwilioErrorSpec => ({
    status: 400,
    code: 21654,
    message: "ContentSid Required",
  }),
  // Twilio's error pages: 21655 "The ContentSid is Invalid" (malformed, deleted, other account),
  // 21656 "The ContentVariables Parameter is invalid" (not a JSON object, null/empty values).
  contentSidInvalid: (): TwilioErrorSpec => ({ status: 400, code: 21655, message: "The ContentSid is Invalid" }),
  contentVariablesInvalid: (why: string): TwilioErrorSpec => ({
    status: 400,
    code: 21656,
    message: `The ContentVariables Parameter is invalid: ${why}`,
  }),
  // 21701 "The Messaging Service does not exist": UNVERIFIED wording.
  messagingServiceNotFound: (): TwilioErrorSpec => ({
    status: 400,
    code: 21701,
    message: "The Messaging Service does not exist",
  }),
  // Asynchronous: arrives in error_code / StatusCallback ErrorCode, never as an HTTP error.
  outsideWindow: { code: 63016, message: "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template." },
} as const;

/** Default body of a /__faults answer with this status, in Twilio's envelope. */
export function twilioFaultBody(status: number): Record<string, unknown> {
  if (status === 401) return twilioErrorBody(err.authenticate());
  if (status === 404) return twilioErrorBody({ status, code: 20404, message: "The requested resource was not found" });
  if (status === 429) return twilioErrorBody(err.tooManyRequests());
  if (status === 503) return twilioErrorBody({ status, code: 20503, message: "Service Unavailable" });
  if (status >= 500) return twilioErrorBody({ status, code: 20500, message: "Internal Server Error" });
  // Other statuses have no single Twilio code; 20001 is the generic "invalid parameter".
  return twilioErrorBody({ status, code: 20001, message: `Injected HTTP ${status}` });
}
