// (a) graphile-worker, set up as the peer bench does: run({ concurrency: C, pgPool, taskList })
// with the default pollInterval; worker pool max(10, C + 2); the backlog enqueued in one
// transaction with one call to graphile_worker.add_jobs(job_spec[]). Runs in the peer worker.
import { EventEmitter } from "node:events";
import pg from "pg";
import { Logger, run } from "graphile-worker";
import { createTokenClient } from "../token_client.ts";
import {
  createAppPool,
  type DrainTracker,
  logPoolErrors,
  type PeerHandle,
  type PeerSpec,
  refreshOneToken,
  waitForListener,
  warmPool,
} from "../peer_support.ts";

const APP_NAME = "graphile-worker";

const ENQUEUE_SQL = `
select count(*)::int as enqueued
  from graphile_worker.add_jobs(
         (select array_agg(row('refresh_token', json_build_object('id', id), null, null, null, null, null, null)::graphile_worker.job_spec
                           order by id)
            from oauth_tokens))`;

export function describe(c: number): string {
  return `run({concurrency: ${c}, pollInterval: default 2000 ms, pgPool max ${Math.max(10, c + 2)}}); ` +
    "enqueue: one transaction, one graphile_worker.add_jobs(job_spec[]) call with N specs; task uses a separate app pool (max C) for its SELECT + UPDATE";
}

export async function prepare(spec: PeerSpec, tracker: DrainTracker): Promise<PeerHandle> {
  const { dbUrl, tokenUrl, c } = spec;
  const poolMax = Math.max(10, c + 2);
  const workerPool = logPoolErrors(new pg.Pool({ connectionString: dbUrl, max: poolMax, application_name: APP_NAME }), APP_NAME);
  const appPool = createAppPool(dbUrl, c);
  const tokens = createTokenClient(`${tokenUrl}/token`, { maxSockets: c });
  let errors = 0;
  let firstError: string | null = null;

  const logger = new Logger(() => (level: string, message: string) => {
    if (level === "error" || level === "warning") console.error(`[graphile-worker ${level}] ${message}`);
  });
  const runner = await run({
    pgPool: workerPool,
    concurrency: c,
    noHandleSignals: true,
    logger,
    events: new EventEmitter() as never,
    taskList: {
      refresh_token: async (payload: unknown) => {
        try {
          await refreshOneToken({ pool: appPool, tokens, tracker, id: (payload as { id: number }).id });
        } catch (err) {
          errors += 1;
          firstError ??= (err as Error).message;
          throw err;
        }
      },
    },
  });
  await waitForListener(dbUrl, APP_NAME);
  await warmPool(appPool, c);
  await warmPool(workerPool, poolMax - 1); // one client is held by LISTEN

  return {
    async start() {
      const client = new pg.Client({ connectionString: dbUrl, application_name: "w1-enqueue" });
      await client.connect();
      try {
        const begun = Date.now();
        await client.query("begin");
        const { rows } = await client.query(ENQUEUE_SQL);
        await client.query("commit");
        const t0 = Date.now();
        return { t0, enqueueMs: t0 - begun, enqueued: rows[0].enqueued };
      } finally {
        await client.end();
      }
    },
    async stop() {
      await runner.stop();
      await workerPool.end();
      await appPool.end();
      tokens.close();
      return { errors, firstError, httpCalls: tokens.calls };
    },
  };
}
