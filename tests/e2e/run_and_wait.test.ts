// call jobs.run_and_wait(job, timeout): one committed tick, then the counts of what its tasks
// became, on the whole stack (pg_net → refresh-token → fake Google → outcomes), from a client
// library and from psql, and the refusal inside a transaction block.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { db, stackInfo } from "../support/stack";
import {
  addFault,
  clearSandbox,
  googleRefreshCounts,
  insertExpiredAccounts,
  isolateJob,
  JOB,
  seedGoogleRefreshTokens,
  tasksFor,
  uniquePrefix,
} from "../support/youtube";

const info = stackInfo();
const sql = db(info);

beforeEach(async () => {
  await isolateJob(sql);
  await clearSandbox(info);
});

afterAll(async () => {
  await isolateJob(sql);
  await clearSandbox(info);
  await sql.end();
});

interface WatchedRun {
  job: string;
  tasks: number;
  discovered: number;
  succeeded: number;
  retried: number;
  dead: number;
  discarded: number;
  waiting: number;
  remaining: number;
  settled: boolean;
  error: string | null;
}

async function accountsDue(what: string, active: number, revoked: number) {
  const prefix = uniquePrefix(what);
  const good = Array.from({ length: active }, (_, i) => `1//${prefix}-rt-${i}`);
  const bad = Array.from({ length: revoked }, (_, i) => `1//${prefix}-revoked-${i}`);
  await seedGoogleRefreshTokens(info, good);
  if (bad.length > 0) await seedGoogleRefreshTokens(info, bad, "revoked");
  await insertExpiredAccounts(sql, prefix, [...good, ...bad]);
  return { prefix, tokens: [...good, ...bad] };
}

function psqlBinary(): string {
  const debian = "/usr/lib/postgresql/15/bin/psql";
  return existsSync(debian) ? debian : "psql";
}

describe("call jobs.run_and_wait(job, timeout)", () => {
  it("returns what the run's tasks became: succeeded, retried, dead", async () => {
    const { prefix, tokens } = await accountsDue("wait", 3, 1);
    // Google answers the first refresh request with a 503: that task is retried after its backoff.
    await addFault(info, { provider: "google_oauth", path: "/token", status: 503, times: 1 });

    const [{ summary }] = await sql<{ summary: WatchedRun }[]>`
      call jobs.run_and_wait(${JOB}, timeout => '60 seconds')`;

    expect(summary).toMatchObject({
      job: JOB, discovered: 4, tasks: 4, succeeded: 2, retried: 1, dead: 1, remaining: 0, settled: true, error: null,
    });
    // The counts are the tasks' real states, and Google refreshed two tokens, once each.
    const tasks = await tasksFor(sql, prefix);
    expect(tasks.map((t) => t.state).sort()).toEqual(["dead", "queued", "succeeded", "succeeded"]);
    const counts = await googleRefreshCounts(info, tokens);
    expect([...counts.values()].sort()).toEqual([0, 0, 1, 1]);
  });

  it("prints the counts in psql", async () => {
    await accountsDue("psql", 2, 0);
    const out = spawnSync(psqlBinary(), [info.db_url, "-X", "-c", `call jobs.run_and_wait('${JOB}', timeout => '60 s')`], {
      encoding: "utf8",
      timeout: 90_000,
    });
    expect(out.status).toBe(0);
    expect(out.stderr).toMatch(
      new RegExp(`NOTICE:  ${JOB}: 2 succeeded, 0 retried, 0 dead, 0 discarded, 0 waiting, 0 remaining of 2 task\\(s\\) \\(2 discovered\\) after [0-9.]+ s`),
    );
    expect(out.stdout).toContain('"succeeded": 2');
  });

  it("is refused inside a transaction block, and runs nothing", async () => {
    const { prefix } = await accountsDue("in-tx", 1, 0);
    await expect(sql.begin((tx) => tx`call jobs.run_and_wait(${JOB})`)).rejects.toThrow(/invalid transaction termination/);
    expect(await tasksFor(sql, prefix)).toEqual([]);
  });

  it("refuses a timeout over an hour", async () => {
    await expect(sql`call jobs.run_and_wait(${JOB}, timeout => '2 hours')`).rejects.toThrow(
      "jobs.run_and_wait: timeout must be between 0 seconds and 1 hour, not 02:00:00",
    );
  });
});
