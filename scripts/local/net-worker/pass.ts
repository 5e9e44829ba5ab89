// One pass of pg_net's worker (src/worker.c pg_net_worker, inner loop body; src/core.c), in one
// transaction: lock both tables or skip, delete expired responses, claim a batch of requests,
// send them all at once, wait for every one of them, insert all responses, COMMIT. Every
// response of a pass therefore has created = the pass's transaction start, and none is visible
// before the slowest request of the pass has finished or timed out. If the worker dies during
// the pass, its transaction rolls back and the claimed requests are back in the queue.
import type postgres from "npm:postgres@^3.4.9";
import { perform } from "./http-client.ts";
import { curlRequest, type QueuedRequest, responseRow, type ResponseRow } from "./request.ts";
import { type PassSettings, readPassSettings } from "./settings.ts";

export type PassOutcome =
  | { consumed: number; expired: number }
  /** The tables are missing or locked (e.g. DROP EXTENSION is waiting): nothing was done. */
  | { skipped: string };

export interface PassHooks {
  /** A setting had a value the real GUC would refuse (null when all are valid). */
  invalidSetting(message: string | null): void;
  /** A request has been answered (for the log). */
  answered(req: QueuedRequest, row: ResponseRow, ms: number, detail: string | undefined): void;
}

class Skip extends Error {}

const INSERT_CHUNK = 500;

export async function runPass(
  sql: postgres.Sql,
  prev: PassSettings,
  hooks: PassHooks,
): Promise<{ settings: PassSettings; outcome: PassOutcome }> {
  let settings = prev;
  try {
    const outcome = await sql.begin(async (tx) => {
      const read = await readPassSettings(tx, prev);
      settings = read.settings;
      hooks.invalidSetting(read.invalid);
      try {
        // is_extension_locked: ConditionalLockRelationOid(…, AccessShareLock) on both tables
        await tx`lock table net.http_request_queue, net._http_response in access share mode nowait`;
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "55P03") throw new Skip("the pg_net tables are locked");
        if (code === "42P01" || code === "3F000") throw new Skip("pg_net is not installed in this database");
        throw e;
      }
      const expired = await tx`
        WITH rows AS (
          SELECT ctid FROM net._http_response
          WHERE created < now() - ${settings.ttl}::interval
          ORDER BY created
          LIMIT ${settings.batchSize}
        )
        DELETE FROM net._http_response r USING rows WHERE r.ctid = rows.ctid`;
      const rows = await tx<QueuedRequest[]>`
        WITH rows AS (
          SELECT id FROM net.http_request_queue
          ORDER BY id
          LIMIT ${settings.batchSize}
        )
        DELETE FROM net.http_request_queue q USING rows WHERE q.id = rows.id
        RETURNING q.id::text as id, q.method::text as method, q.url, timeout_milliseconds,
          array(select key || ': ' || value from jsonb_each_text(q.headers)) as headers, q.body`;
      if (rows.length > 0) await sendAndStore(tx, rows, hooks);
      return { consumed: rows.length, expired: expired.count };
    });
    return { settings, outcome };
  } catch (e) {
    if (e instanceof Skip) return { settings, outcome: { skipped: e.message } };
    throw e;
  }
}

async function sendAndStore(tx: postgres.TransactionSql, rows: QueuedRequest[], hooks: PassHooks): Promise<void> {
  const requests = rows.map(curlRequest); // all handles are set up before anything is sent
  const results = await Promise.all(requests.map((r) => perform(r)));
  const out = results.map((r, i) => {
    const row = responseRow(rows[i].id, rows[i].timeout_milliseconds, r);
    hooks.answered(rows[i], row, r.timings.total, r.ok ? undefined : r.detail);
    return row;
  });
  for (let i = 0; i < out.length; i += INSERT_CHUNK) {
    const chunk = out.slice(i, i + INSERT_CHUNK);
    await tx`
      insert into net._http_response (id, status_code, content, headers, content_type, timed_out, error_msg)
      select id, status_code, content, headers, content_type, timed_out, error_msg
      from pg_catalog.jsonb_to_recordset(${tx.json(chunk as unknown as postgres.JSONValue)})
        as r(id bigint, status_code int, content text, headers jsonb, content_type text, timed_out bool, error_msg text)`;
  }
}
