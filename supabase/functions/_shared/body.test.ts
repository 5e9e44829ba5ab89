import assert from "node:assert/strict";
import { MAX_JOB_BODY_BYTES, payloadTooLargeResponse, readLimited } from "./body.ts";

/** A body that arrives in chunks with no Content-Length (chunked transfer encoding). */
function streamed(chunks: number, chunkBytes: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent++ >= chunks) return c.close();
      c.enqueue(new Uint8Array(chunkBytes).fill(0x61));
    },
  });
}

Deno.test("readLimited: a body within the limit is read whole, an empty or absent one is ''", async () => {
  assert.equal(await readLimited(new Request("http://x/", { method: "POST", body: "abc" }), 3), "abc");
  assert.equal(await readLimited(new Request("http://x/", { method: "POST", body: "" }), 3), "");
  assert.equal(await readLimited(new Request("http://x/"), 3), "");
  // Multi-byte characters are counted in bytes, and survive being split over chunks.
  assert.equal(await readLimited(new Request("http://x/", { method: "POST", body: "é" }), 2), "é");
  assert.equal(await readLimited(new Request("http://x/", { method: "POST", body: "é" }), 1), null);
});

Deno.test("readLimited: a declared Content-Length over the limit is refused without reading", async () => {
  let pulled = 0;
  const body = new ReadableStream({ pull(c) { pulled++; c.enqueue(new Uint8Array(10)); } });
  const req = new Request("http://x/", { method: "POST", body, headers: { "content-length": "11" } });
  assert.equal(await readLimited(req, 10), null);
  // A ReadableStream pulls once on its own to fill its queue; the reader never asked for more.
  assert.ok(pulled <= 1, `pulled ${pulled} chunks`);
});

Deno.test("readLimited: a streamed body stops being read at the first chunk over the limit", async () => {
  let pulled = 0;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(c) { pulled++; c.enqueue(new Uint8Array(1024)); },
    cancel() { cancelled = true; },
  });
  assert.equal(await readLimited(new Request("http://x/", { method: "POST", body }), 4096), null);
  assert.ok(pulled <= 6, `read ${pulled} chunks of an endless body`);
  assert.ok(cancelled, "the rest of the body is cancelled");
  assert.equal(await readLimited(new Request("http://x/", { method: "POST", body: streamed(4, 1024) }), 4096), "a".repeat(4096));
});

Deno.test("payloadTooLargeResponse: 413 naming the error and the limit", async () => {
  const res = payloadTooLargeResponse(MAX_JOB_BODY_BYTES);
  assert.equal(res.status, 413);
  assert.deepEqual(await res.json(), {
    error: "payload_too_large",
    message: "the body is larger than 1048576 bytes",
    limit: 1048576,
  });
});
