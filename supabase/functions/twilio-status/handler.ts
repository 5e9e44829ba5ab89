// twilio-status: Twilio's StatusCallback for the WhatsApp reminders send-reminder sends
// (provider-contracts §4): a form-encoded POST with MessageSid, MessageStatus, ErrorCode (when
// failed), AccountSid, From, To…, signed with X-Twilio-Signature.
//
// verify_jwt = false (Twilio sends no JWT): the signature is the credential. It is checked
// against the URL Twilio was given — TWILIO_STATUS_CALLBACK_URL, else
// {SUPABASE_URL}/functions/v1/twilio-status, plus the request's query string — never req.url,
// which has another host and path behind the hosted gateway; and AccountSid must be ours. A
// request that fails either is answered 403 before anything touches the database.
//
//   not POST → 405; body over 64 KiB → 413; signature missing or forged, other account → 403
//   {"error":"forbidden","reason"}; not form-encoded, MessageSid/MessageStatus missing, an unknown
//   MessageStatus → 400 {"error":"invalid_request","field"}; valid → one call of
//   bookings.record_delivery_status(sid, status, error_code, error_message) and 200 with an empty
//   TwiML <Response/>; a database error → 500, so Twilio may deliver the callback again.
//
// Repeated and out-of-order callbacks are the SQL function's business (it ranks the statuses and
// keeps callbacks for sids it does not know yet). The auth token never appears in responses or
// logs.

import { type Env, envValue } from "../_shared/env.ts";
import { describeDatabaseError } from "../_shared/job_store.ts";
import { TWILIO_ACCOUNT_SID_PATTERN, twilioStatusCallbackUrl } from "../_shared/providers/twilio.ts";
import { TWILIO_SIGNATURE_HEADER, verifyTwilioSignature } from "../_shared/providers/twilio_signature.ts";
import { redact } from "../_shared/redact.ts";
import { errorResponse } from "../_shared/result.ts";
import { invalidRequestResponse } from "../_shared/task_batch.ts";
import { MAX_WEBHOOK_BODY_BYTES, readWebhookBody } from "../_shared/webhook.ts";

export const MAX_BODY_BYTES = MAX_WEBHOOK_BODY_BYTES;
/** The statuses bookings.record_delivery_status ranks (queued < sending < sent < delivered <
 * read; failed and undelivered are final). */
/** Every status Twilio reports for an outbound message (bookings.twilio_status maps them). */
export const MESSAGE_STATUSES = [
  "accepted", "scheduled", "queued", "sending", "sent", "delivered", "read", "failed", "undelivered", "canceled",
] as const;
export type MessageStatus = typeof MESSAGE_STATUSES[number];
const MAX_ERROR_MESSAGE = 1_000;

export interface DeliveryStatusUpdate {
  messageSid: string;
  status: MessageStatus;
  /** Twilio's ErrorCode (e.g. "63016"), null when absent. */
  errorCode: string | null;
  errorMessage: string | null;
}

/** What bookings.record_delivery_status returns. */
export interface DeliveryStatusResult {
  notification_id: number | null;
  status: string;
  changed: boolean;
}

/** The one database call of this function. */
export interface DeliveryStatusStore {
  /** select bookings.record_delivery_status($1, $2, $3, $4) */
  recordDeliveryStatus(update: DeliveryStatusUpdate): Promise<DeliveryStatusResult>;
}

export interface TwilioStatusDeps {
  env: Env;
  /** Called only for a request whose signature and account were verified. */
  store: () => DeliveryStatusStore;
  log?: (line: string) => void;
}

type Refusal = "missing_signature" | "invalid_signature" | "wrong_account";

const REFUSALS: Record<Refusal, string> = {
  missing_signature: `no ${TWILIO_SIGNATURE_HEADER} header`,
  invalid_signature: `${TWILIO_SIGNATURE_HEADER} does not match this request`,
  wrong_account: "AccountSid is not this project's Twilio account",
};

function forbidden(reason: Refusal): Response {
  return Response.json({ error: "forbidden", reason, message: REFUSALS[reason] }, { status: 403 });
}

function twiml(): Response {
  return new Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', {
    status: 200,
    headers: { "content-type": "text/xml; charset=utf-8" },
  });
}

/** The URL Twilio signed: the configured callback URL, with the request's query string when the
 * configured one has none (the gateway keeps the query, not the host or path). */
function signedUrl(configured: string, req: Request): string {
  if (configured.includes("?")) return configured;
  const q = req.url.indexOf("?");
  return q === -1 || q === req.url.length - 1 ? configured : configured + req.url.slice(q);
}

export function createHandler(deps: TwilioStatusDeps): (req: Request) => Promise<Response> {
  const log = deps.log ?? ((line: string) => console.log(line));

  return async (req) => {
    const read = await readWebhookBody(req, MAX_BODY_BYTES);
    if (!read.ok) return read.response;
    const body = read.body;

    const authToken = envValue(deps.env, "TWILIO_AUTH_TOKEN");
    const accountSid = envValue(deps.env, "TWILIO_ACCOUNT_SID");
    const callbackUrl = twilioStatusCallbackUrl(deps.env);
    const missing = [
      ...(authToken ? [] : ["TWILIO_AUTH_TOKEN"]),
      ...(accountSid ? [] : ["TWILIO_ACCOUNT_SID"]),
      ...(callbackUrl ? [] : ["TWILIO_STATUS_CALLBACK_URL (or SUPABASE_URL)"]),
    ];
    if (missing.length > 0 || !TWILIO_ACCOUNT_SID_PATTERN.test(accountSid!)) {
      const message = missing.length > 0
        ? `${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} not set; status callbacks cannot be verified`
        : "TWILIO_ACCOUNT_SID must be AC followed by 32 hex characters";
      log(`twilio-status: configuration error: ${message}`);
      return errorResponse(500, "configuration_error", message);
    }

    // Parsed as a form whatever the content type, so the signature is checked first.
    const params = new URLSearchParams(body);
    const signature = req.headers.get(TWILIO_SIGNATURE_HEADER);
    if (!signature) return forbidden("missing_signature");
    if (!verifyTwilioSignature(authToken!, signature, signedUrl(callbackUrl!, req), params)) {
      log("twilio-status: refused a callback whose signature does not match");
      return forbidden("invalid_signature");
    }

    const contentType = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (contentType !== "application/x-www-form-urlencoded") {
      return invalidRequestResponse("content-type", "must be application/x-www-form-urlencoded");
    }
    if (params.get("AccountSid") !== accountSid) {
      log("twilio-status: refused a signed callback for another account");
      return forbidden("wrong_account");
    }

    const messageSid = params.get("MessageSid")?.trim() ?? "";
    if (!/^[A-Za-z0-9]{2,64}$/.test(messageSid)) {
      return invalidRequestResponse("MessageSid", messageSid ? "not a message sid" : "required");
    }
    const status = params.get("MessageStatus")?.trim().toLowerCase() ?? "";
    if (!status) return invalidRequestResponse("MessageStatus", "required");
    if (!(MESSAGE_STATUSES as readonly string[]).includes(status)) {
      return invalidRequestResponse("MessageStatus", `unknown status ${JSON.stringify(status.slice(0, 40))}; one of ${MESSAGE_STATUSES.join(", ")}`);
    }
    const errorCode = params.get("ErrorCode")?.trim() || null;
    if (errorCode !== null && !/^\d{1,10}$/.test(errorCode)) return invalidRequestResponse("ErrorCode", "must be a number");
    // Postgres text cannot hold NUL: a message carrying one would fail the write (a 500, and so a
    // redelivery of the same callback); the character carries no meaning, so it is dropped.
    const errorMessage = params.get("ErrorMessage")?.replaceAll("\u0000", "").trim().slice(0, MAX_ERROR_MESSAGE) || null;

    let result: DeliveryStatusResult;
    try {
      result = await deps.store().recordDeliveryStatus({ messageSid, status: status as MessageStatus, errorCode, errorMessage });
    } catch (err) {
      log(`twilio-status: ${messageSid} ${status} could not be recorded: ${redact(describeDatabaseError(err), [authToken])}`);
      return errorResponse(500, "database_error", "the status could not be recorded; Twilio may send it again");
    }
    log(
      `twilio-status: ${messageSid} ${status}${errorCode ? ` error ${errorCode}` : ""} → notification ` +
        `${result?.notification_id ?? "unknown yet"}${result?.changed ? " (changed)" : ""}`,
    );
    return twiml();
  };
}
