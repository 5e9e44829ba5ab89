// The front door of a provider's webhook (twilio-status, unipile-webhook): POST only, and a body
// read no further than a limit (body.ts), before anything checks the credential or touches the
// database.
//
//   not POST → 405; body over the limit (declared or streamed) → 413 {"error":"payload_too_large"}

import { payloadTooLargeResponse, readLimited } from "./body.ts";
import { methodNotAllowedResponse } from "./result.ts";

/** A provider's callback is small; anything larger is refused unread. */
export const MAX_WEBHOOK_BODY_BYTES = 64 * 1024;

/** The body of a POST within `limit` bytes, or the 405 / 413 answer. */
export async function readWebhookBody(
  req: Request,
  limit: number = MAX_WEBHOOK_BODY_BYTES,
): Promise<{ ok: true; body: string } | { ok: false; response: Response }> {
  if (req.method !== "POST") return { ok: false, response: methodNotAllowedResponse("POST") };
  const body = await readLimited(req, limit);
  return body === null ? { ok: false, response: payloadTooLargeResponse(limit) } : { ok: true, body };
}
