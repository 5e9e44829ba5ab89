// Duework on its real path: one call of public.refresh_expired_youtube_tokens() (the tick:
// discover → claim → pg_net POST to the refresh-token Edge Function) drains the backlog, because
// every finished batch dispatches the next (work-conserving chain). C = max_in_flight × 10.
import postgres from "npm:postgres@^3.4.9";
import type { Cell } from "../config.ts";
import type { BenchStack } from "../stack.ts";
import { type CpuSample, cpuDelta, sampleCpu } from "../cpu.ts";
import { providerCheck, runTokens, type SandboxClient } from "../sandbox.ts";
import type { RunRecord } from "../record.ts";

const JOB = "youtube-token-refresh";

export function describe(c: number, batch: number): string {
  return `jobs.job ${JOB}: batch_size ${batch}, max_in_flight ${c / batch} (= ${c} tasks in flight); ` +
    "cron schedule of the job unscheduled (the heartbeat stays); t0 just before `select public.refresh_expired_youtube_tokens()`, " +
    "end when the N-th social_accounts row has refresh_count >= 1 (polled every 10 ms on a separate connection); " +
    "one untimed 200-token drain before the first run warms the function worker (as the peers' pools are warmed)";
}

type Sql = ReturnType<typeof postgres>;

export class DueworkContender {
  private sql: Sql;
  private poll: Sql;

  constructor(private stack: BenchStack, private sandbox: SandboxClient) {
    this.sql = postgres(stack.info.db_url, { max: 1, onnotice: () => {}, connection: { application_name: "bench-duework" } });
    this.poll = postgres(stack.info.db_url, { max: 1, onnotice: () => {}, connection: { application_name: "bench-poll" } });
  }

  /**
   * Once per bench: keep the scheduled ticks of this job out of the measurement, and warm up like the
   * peers are warmed up (their pools and LISTEN connections are up before the clock starts): an
   * untimed drain of 200 tokens boots the refresh-token worker process and opens its database
   * connections, so the first measured run does not pay a cold start the others do not.
   */
  async init(batch: number): Promise<void> {
    await this.sql`select jobs.set_schedule(${JOB}, null)`;
    const warmup = await this.run({ latencyMs: 0, c: 5 * batch }, 200, batch, 0, "warmup", 60_000);
    if (!warmup.ok) throw new Error(`Duework warm-up drain failed: ${warmup.failures.join("; ")}`);
  }

  async close(): Promise<void> {
    await this.sql.end();
    await this.poll.end();
  }

  async run(cell: Cell, n: number, batch: number, rep: number, runId: string, timeoutMs: number): Promise<RunRecord> {
    const { sql, poll } = this;
    const tokens = runTokens(`1//bench-${runId}-`, n);
    // Setup, not timed.
    await sql`truncate jobs.task, jobs.batch, jobs.run`;
    await sql`delete from public.social_accounts`;
    await sql`delete from net._http_response`;
    await sql`update jobs.job set max_in_flight = ${cell.c / batch}, batch_size = ${batch}, paused = false,
                enabled = true, suspended_until = null, last_error = null where name = ${JOB}`;
    await this.sandbox.reset();
    await this.sandbox.register(tokens, cell.latencyMs);
    await sql`
      insert into public.social_accounts
        (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at, status, scopes)
      select 'bench-' || g, 'youtube', 'ya29.stale-' || g, t, now() - (1 + random() * 1440) * interval '1 minute',
             'active', '{https://www.googleapis.com/auth/youtube.readonly}'
        from unnest(${tokens}::text[]) with ordinality as x(t, g)`;
    await sql`vacuum analyze`;
    await sql`checkpoint`;
    await poll`select 1`;

    const roots = this.stack.cpuRoots();
    const before: CpuSample = sampleCpu(roots);
    const t0 = Date.now();
    const tick = sql`select public.refresh_expired_youtube_tokens() as r`.then((rows) => ({ r: rows[0].r, t: Date.now() }));
    let refreshed = 0;
    let tEnd: number | null = null;
    for (;;) {
      const [{ n: done }] = await poll`select count(*)::int as n from public.social_accounts where refresh_count >= 1`;
      refreshed = done;
      if (done >= n) {
        tEnd = Date.now();
        break;
      }
      if (Date.now() - t0 > timeoutMs) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const after = sampleCpu(roots);
    const tickResult = await tick;

    // Let the chain settle (last outcome calls, last batch settlements), then check.
    const settleDeadline = Date.now() + 10_000;
    for (;;) {
      const [{ open }] = await sql`select count(*)::int as open from jobs.batch where settled_at is null`;
      if (open === 0 || Date.now() > settleDeadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const [rows] = await sql`
      select count(*) filter (where refresh_count >= 1)::int as refreshed,
             count(*) filter (where refresh_count > 1)::int  as more_than_once,
             count(*) filter (where status <> 'active' or last_error is not null)::int as bad_rows,
             extract(epoch from max(last_refreshed_at) - (select min(started_at) from jobs.run where trigger = 'manual')) * 1000 as db_drain_ms
        from public.social_accounts`;
    const [tasks] = await sql`
      select count(*)::int as total,
             count(*) filter (where state <> 'succeeded')::int as not_succeeded,
             count(*) filter (where attempts > 1)::int as retried,
             count(*) filter (where last_error is not null)::int as with_error,
             max(last_error) as first_error,
             (select count(*)::int from jobs.batch) as batches,
             (select count(*)::int from jobs.batch where http_status is distinct from 200) as batches_not_200
        from jobs.task where job_name = ${JOB}`;
    const provider = providerCheck(await this.sandbox.refreshCounts(), tokens);
    // Where the drain's time went: before the first provider call (tick + first dispatch) and
    // after the last one (its outcome write + the poll noticing it).
    const window = await this.sandbox.refreshWindow();

    const jobErrors = tasks.not_succeeded + tasks.retried + tasks.with_error + rows.bad_rows;
    const failures: string[] = [];
    if (tEnd === null) failures.push(`timed out: ${refreshed}/${n} rows refreshed after ${timeoutMs / 1000} s`);
    if (rows.refreshed !== n) failures.push(`${rows.refreshed}/${n} rows refreshed`);
    if (rows.more_than_once) failures.push(`${rows.more_than_once} rows refreshed more than once`);
    if (provider.notExactlyOnce) failures.push(`${provider.notExactlyOnce} tokens not called exactly once at the fake`);
    if (jobErrors) failures.push(`job errors: ${JSON.stringify(tasks)}, rows not active/with error ${rows.bad_rows}`);
    const drainMs = tEnd === null ? null : tEnd - t0;
    return {
      contender: "duework",
      latencyMs: cell.latencyMs,
      c: cell.c,
      rep,
      n,
      startedAt: new Date(t0).toISOString(),
      ok: failures.length === 0,
      failures,
      drainMs,
      itemsPerSec: drainMs ? n / (drainMs / 1000) : null,
      dbDrainMs: rows.db_drain_ms === null ? null : Number(rows.db_drain_ms),
      enqueueMs: tickResult.t - t0,
      checks: {
        rowsRefreshed: rows.refreshed,
        rowsRefreshedMoreThanOnce: rows.more_than_once,
        tokensNotCalledExactlyOnce: provider.notExactlyOnce,
        duplicateProviderCalls: provider.duplicateCalls,
        providerCalls: provider.calls,
        jobErrors,
        firstError: tasks.first_error ?? null,
      },
      cpu: cpuDelta(before, after),
      extra: {
        tick: tickResult.r,
        tasks: tasks.total,
        batches: tasks.batches,
        firstProviderCallMs: window.first === null ? null : window.first - t0,
        afterLastProviderCallMs: window.last === null || tEnd === null ? null : tEnd - window.last,
      },
    };
  }
}
