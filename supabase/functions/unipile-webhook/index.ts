// Entry point: the platform's env, the two SQL calls over the instance's postgres.js client
// (created on first use, so a refused webhook never opens a connection), and Deno.serve.
// The logic is in handler.ts.
import type postgres from "npm:postgres@^3.4.9";
import { getSql } from "../_shared/db.ts";
import { denoEnv } from "../_shared/env.ts";
import { createHandler, type MessageReceivedResult, type NewRelationResult, type OutreachEventStore } from "./handler.ts";

let store: OutreachEventStore | undefined;

function pgOutreachEventStore(): OutreachEventStore {
  const sql = getSql();
  return {
    async recordNewRelation(e) {
      const [row] = await sql`select outreach.record_new_relation(${sql.json(e as unknown as postgres.JSONValue)}::jsonb) as result`;
      return row.result as NewRelationResult;
    },
    async recordMessageReceived(e) {
      const [row] = await sql`select outreach.record_message_received(${sql.json(e as unknown as postgres.JSONValue)}::jsonb) as result`;
      return row.result as MessageReceivedResult;
    },
  };
}

Deno.serve(createHandler({ env: denoEnv, store: () => (store ??= pgOutreachEventStore()) }));
