// The front door of a provider's webhook (twilio-status, unipile-webhook): POST only, and a body
// read no further than a limit, before anything checks the credential or touches the database.
//
//   not POST → 405; body over the limit (declared or streamed) → 413 {"error":"payload_too_large"}

import { methodNotAllowedResponse } from "./result.ts";

/** A provider's callback is small; anything larger is refused unread. */
export const MAX_WEBHOOK_BODY_BYTES = 64 * 1024;

/** The body as text, or null when it is longer than `limit` bytes (read no further). */
export async function readLimited(req: Request, limit: number): Promise<string | null> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) return null;
  if (req.body === null) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

export function payloadTooLargeResponse(limit: number): Response {
  return Response.json({ error: "payload_too_large", message: `the body is larger than ${limit} bytes` }, { status: 413 });
}

/** The body of a POST within `limit` bytes, or the 405 / 413 answer. */
export async function readWebhookBody(
  req: Request,
  limit: number = MAX_WEBHOOK_BODY_BYTES,
): Promise<{ ok: true; body: string } | { ok: false; response: Response }> {
  if (req.method !== "POST") return { ok: false, response: methodNotAllowedResponse("POST") };
  const body = await readLimited(req, limit);
  return body === null ? { ok: false, response: payloadTooLargeResponse(limit) } : { ok: true, body };
}
