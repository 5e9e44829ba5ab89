// (b) pg-boss, set up as the peer bench does: new PgBoss({ useListenNotify: true }) with its
// default pool (10), createQueue(q, { notify: true }), work(q, { batchSize: 10,
// localConcurrency: C / 10, burstWhenBatchFull: true, perJobResults: true }), the backlog
// enqueued with one insert() call. Runs in the peer worker.
import pg from "pg";
import { PgBoss } from "pg-boss";
import { createTokenClient } from "../token_client.ts";
import {
  createAppPool,
  type DrainTracker,
  type PeerHandle,
  type PeerSpec,
  refreshOneToken,
  waitForListener,
  warmPool,
} from "../peer_support.ts";

const APP_NAME = "pg-boss";
const QUEUE = "refresh-token";

export function workOptions(c: number, batch: number) {
  return { batchSize: batch, localConcurrency: c / batch, burstWhenBatchFull: true, perJobResults: true };
}

export function describe(c: number, batch: number): string {
  return `new PgBoss({useListenNotify: true, pool max default 10}); createQueue('${QUEUE}', {notify: true}); ` +
    `work(queue, ${JSON.stringify(workOptions(c, batch))}, handler runs its batch with Promise.all, per-job results); ` +
    "enqueue: one boss.insert(queue, N jobs) call; handler uses a separate app pool (max C) for its SELECT + UPDATE";
}

export async function prepare(spec: PeerSpec, tracker: DrainTracker): Promise<PeerHandle> {
  const { dbUrl, tokenUrl, c, batch } = spec;
  // deno-lint-ignore no-explicit-any
  const boss: any = new PgBoss({ connectionString: dbUrl, application_name: APP_NAME, useListenNotify: true } as never);
  boss.on("error", (err: Error) => console.error(`[pg-boss error] ${err.message}`));
  boss.on("warning", (w: { message?: string }) => console.error(`[pg-boss warning] ${w.message ?? JSON.stringify(w)}`));
  await boss.start();
  await boss.createQueue(QUEUE, { notify: true });

  const appPool = createAppPool(dbUrl, c);
  const options = workOptions(c, batch);
  const tokens = createTokenClient(`${tokenUrl}/token`, { maxSockets: options.batchSize * options.localConcurrency });
  let errors = 0;
  let firstError: string | null = null;

  await boss.work(QUEUE, options, (jobs: { id: string; data: { id: number } }[]) =>
    Promise.all(jobs.map(async (job) => {
      try {
        await refreshOneToken({ pool: appPool, tokens, tracker, id: job.data.id });
        return { id: job.id, status: "completed" };
      } catch (err) {
        errors += 1;
        firstError ??= (err as Error).message;
        return { id: job.id, status: "failed", output: { message: (err as Error).message } };
      }
    })));

  await waitForListener(dbUrl, APP_NAME);
  await warmPool(appPool, c);
  const bossDb = boss.getDb();
  await warmPool({ query: (sql: string) => bossDb.executeSql(sql) }, 9); // one of its 10 is held by LISTEN

  // Job payloads are built before the clock starts; insert() itself is timed.
  const idClient = new pg.Client({ connectionString: dbUrl });
  await idClient.connect();
  const { rows } = await idClient.query("select id from oauth_tokens order by id");
  await idClient.end();
  const jobs = rows.map((r: { id: string }) => ({ data: { id: Number(r.id) } }));

  return {
    async start() {
      const begun = Date.now();
      await boss.insert(QUEUE, jobs);
      const t0 = Date.now();
      return { t0, enqueueMs: t0 - begun, enqueued: jobs.length };
    },
    async stop() {
      await boss.stop({ graceful: true, timeout: 30_000 });
      await appPool.end();
      tokens.close();
      return { errors, firstError, httpCalls: tokens.calls };
    },
  };
}
