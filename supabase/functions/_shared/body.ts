// A request body read no further than a limit, for every function (job functions, run-job,
// webhooks): a body over the limit is refused with 413 before it is parsed, so an oversized
// request costs neither memory nor a database call. The limit is checked twice: against a
// declared Content-Length (refused unread), and while the body streams in (a chunked body,
// or one whose Content-Length lies), where reading stops at the first byte over it.
//
//   body over the limit → 413 {"error":"payload_too_large","message":"the body is larger than N bytes","limit":N}

/**
 * A job function's body (docs/jobs.md "Dispatch"): at most 100 tasks of a few small fields each
 * (MAX_TASKS_PER_BATCH in task_batch.ts; ~200 bytes a task in practice), so 1 MiB leaves ample room
 * for payloads SQL may add and still refuses a body nobody sends on purpose.
 */
export const MAX_JOB_BODY_BYTES = 1024 * 1024;

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
  return Response.json(
    { error: "payload_too_large", message: `the body is larger than ${limit} bytes`, limit },
    { status: 413 },
  );
}
