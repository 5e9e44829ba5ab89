// Ring-buffer behaviour of the request log (unit level).

import assert from "node:assert/strict";
import { RequestLog } from "./request_log.ts";
import type { RecordedRequest } from "./types.ts";

function entry(log: RequestLog, path: string, provider = "stripe" as const): RecordedRequest {
  return {
    id: log.nextId(),
    provider,
    method: "GET",
    path,
    query: {},
    headers: {},
    body: null,
    status: 200,
    time: new Date().toISOString(),
    duration_ms: 0,
  };
}

Deno.test("request_log: keeps the newest `capacity` entries in order", () => {
  const log = new RequestLog(3);
  for (let i = 0; i < 7; i++) log.add(entry(log, `/p${i}`));
  assert.equal(log.size, 3);
  assert.deepEqual(log.list().map((e) => e.path), ["/p4", "/p5", "/p6"]);
  assert.deepEqual(log.list({ limit: 2 }).map((e) => e.path), ["/p5", "/p6"]);
  assert.equal(log.clear(), 3);
  assert.deepEqual(log.list(), []);
  log.add(entry(log, "/after"));
  assert.deepEqual(log.list().map((e) => e.id), ["req_8"]); // ids keep increasing
  assert.throws(() => new RequestLog(0), RangeError);
});
