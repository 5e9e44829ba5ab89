// Entry point: the platform's env, the one SQL call over the instance's postgres.js client
// (created on first use, so a refused request never opens a connection), and Deno.serve.
// The logic is in handler.ts.
import { getSql } from "../_shared/db.ts";
import { denoEnv } from "../_shared/env.ts";
import { createHandler, type TickStore, type TickSummary } from "./handler.ts";

let store: TickStore | undefined;

function pgTickStore(): TickStore {
  const sql = getSql();
  return {
    async tick(job) {
      const [row] = await sql`select jobs.tick(${job}::text, 'http') as summary`;
      return row.summary as TickSummary;
    },
  };
}

Deno.serve(createHandler({ env: denoEnv, store: () => (store ??= pgTickStore()) }));
