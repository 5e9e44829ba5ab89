// The W2 section of `npm run bench`: Duework's booking-reminder throughput and, in the same run,
// the HTTP-only ceiling of the same sends (peer worker child), then the rate-limit accuracy run.
// Every run starts from a reset (bench/w2.ts); afterwards the bench's rows are deleted, the
// buckets get the migration's sizes back and track_functions its default, so W1 is unaffected.
import postgres from "npm:postgres@^3.4.9";
import { join } from "node:path";
import type { BenchConfig } from "./config.ts";
import type { BenchStack } from "./stack.ts";
import type { SandboxClient } from "./sandbox.ts";
import { cpuDelta, sampleCpu } from "./cpu.ts";
import { trackFunctions } from "./function_stats.ts";
import { type PeerRuntime, setLivePeer, spawnPeer } from "./peer_run.ts";
import type { PeerSpec } from "./peer_support.ts";
import { sandboxClientEnv } from "../scripts/local/stack/supervisor.ts";
import { DueworkReminders } from "./contenders/duework_reminders.ts";
import { runRateAccuracy } from "./rate_limit.ts";
import { emulateHostedHeartbeat } from "./w2_heartbeat.ts";
import {
  effectChecks,
  effectFailures,
  loggedPosts,
  resendSeen,
  sendTiming,
  setupReminderFakes,
  twilioSeen,
} from "./reminders_sandbox.ts";
import {
  CEILING_GOAL,
  configureReminders,
  DEFAULT_BUCKETS,
  phoneOf,
  RATE_TOLERANCE,
  resetW2,
  settle,
  type W2Results,
  type W2Run,
  withUnaccounted,
} from "./w2.ts";

async function runCeiling(
  stack: BenchStack,
  sandbox: SandboxClient,
  sql: ReturnType<typeof postgres>,
  { bookings, c, batch, latencyMs, timeoutMs, runtime }:
    { bookings: number; c: number; batch: number; latencyMs: number; timeoutMs: number; runtime: PeerRuntime },
): Promise<W2Run> {
  const sends = 2 * bookings;
  const env = sandboxClientEnv(join(stack.cfg.projectRoot, "scripts", "local", "sandbox", "fixtures.json"));
  const [{ content_sid }] = await sql`select content_sid from bookings.whatsapp_templates where kind = 'event_reminder'`;
  await sandbox.reset();
  // No database: Twilio's status callbacks stay off at the fake (they would reach twilio-status).
  await setupReminderFakes(stack.info.sandbox_url, { latencyMs, callbacks: false, resendLimitPerSecond: null });
  const spec: PeerSpec = {
    contender: "reminders-ceiling",
    dbUrl: "",
    tokenUrl: "",
    n: sends,
    c,
    batch,
    reminders: {
      twilioUrl: stack.info.providers.twilio,
      resendUrl: stack.info.providers.resend,
      accountSid: env.TWILIO_ACCOUNT_SID,
      authToken: env.TWILIO_AUTH_TOKEN,
      whatsappFrom: env.TWILIO_WHATSAPP_FROM,
      contentSid: content_sid,
      statusCallback: `${stack.info.functions_url}/twilio-status`,
      resendKey: env.RESEND_API_KEY,
      resendFrom: env.RESEND_FROM,
    },
  };
  const peer = spawnPeer(runtime, stack.cfg.projectRoot, spec);
  setLivePeer(peer);
  let t0: number, tEnd: number | null, stats: { errors: number; firstError: string | null; httpCalls: number };
  let cpu: Record<string, number>;
  try {
    await peer.expect("ready", 60_000);
    const roots = { ...stack.cpuRoots(), peerWorker: { pid: peer.pid, tree: true } };
    const before = sampleCpu(roots);
    await peer.send({ type: "go" });
    t0 = (await peer.expect("started", 60_000)).t0 as number;
    const d = await peer.next(timeoutMs);
    cpu = withUnaccounted(cpuDelta(before, sampleCpu(roots)), Date.now() - t0);
    tEnd = d?.type === "drained" ? d.tEnd as number : null;
    await peer.send({ type: "stop" });
    stats = (await peer.expect("stopped", 60_000)).stats as typeof stats;
    await peer.status;
  } catch (e) {
    peer.kill();
    throw e;
  } finally {
    setLivePeer(null);
  }
  const phones = Array.from({ length: bookings }, (_, i) => phoneOf(i + 1));
  const keys = Array.from({ length: bookings }, (_, i) => `event_reminder:${i + 1}:email`);
  const twilio = await twilioSeen(stack.info.sandbox_url, phones);
  const resend = await resendSeen(stack.info.sandbox_url, keys);
  const twilioLog = await loggedPosts(stack.info.sandbox_url, "twilio", "/Messages.json");
  const resendLog = await loggedPosts(stack.info.sandbox_url, "resend", "/emails");
  const twilioPosts = twilioLog.length;
  const resendPosts = resendLog.length;
  const arrivals = [...twilioLog, ...resendLog].map((p) => p.t).sort((a, b) => a - b);
  const failures: string[] = [];
  if (tEnd === null) failures.push(`timed out after ${timeoutMs / 1000} s`);
  if (stats.errors) failures.push(`${stats.errors} request errors, first: ${stats.firstError}`);
  failures.push(...effectFailures(twilio, resend, bookings));
  const drainMs = tEnd === null ? null : tEnd - t0;
  return {
    contender: "reminders-ceiling",
    bookings,
    sends,
    c,
    latencyMs,
    callbacks: false,
    startedAt: new Date(t0).toISOString(),
    ok: failures.length === 0,
    failures,
    drainMs,
    sendsPerSec: drainMs ? sends / (drainMs / 1000) : null,
    checks: {
      ...effectChecks(twilio, resend, twilioPosts, resendPosts),
      notificationsSent: null,
      notificationsFailed: null,
      tasksNotSucceeded: null,
      tasksDead: null,
      tasksRetried: null,
      errors: stats.errors,
      firstError: stats.firstError,
    },
    cpu,
    extra: {
      runtime,
      httpCalls: stats.httpCalls,
      ...sendTiming(arrivals, t0, tEnd),
    },
  };
}

const cpuLine = (cpu: Record<string, number>, sends: number) =>
  Object.entries(cpu).filter(([k]) => k !== "hostBusyPct").map(([k, v]) => `${k} ${((v * 1000) / sends).toFixed(2)}`).join(", ");

function printRun(label: string, r: W2Run): void {
  console.log(
    r.drainMs !== null
      ? `${label}: ${r.sends} sends in ${(r.drainMs / 1000).toFixed(2)} s = ${r.sendsPerSec!.toFixed(0)}/s ${r.ok ? "✓" : "✗"}  ` +
        `(CPU-s/1000 sends: ${cpuLine(r.cpu, r.sends)}; host busy ${r.cpu.hostBusyPct?.toFixed(0)} %)`
      : `${label}: ✗`,
  );
  const e = r.extra ?? {};
  if (typeof e.firstSendMs === "number") {
    console.log(`    first send after ${e.firstSendMs} ms, drained ${e.afterLastSendMs} ms after the last; ` +
      `${(e.steadySendsPerSec as number).toFixed(0)} sends/s between the first and the last` +
      (typeof e.activeBackends === "number"
        ? `; on average ${e.activeBackends.toFixed(2)} backends active, ${(e.waitingForClaimLock as number).toFixed(2)} waiting for ` +
          `the claim lock; xmin held by jobs.heartbeat_minute in ${(100 * (e.xminPinnedShare as number)).toFixed(0)} % of the polls`
        : ""));
  }
  for (const f of r.failures) console.log(`    ${f}`);
}

/** W2 with its goals; `onProgress` gets the partial results after each run (results.json). */
export async function runW2(
  cfg: BenchConfig,
  stack: BenchStack,
  sandbox: SandboxClient,
  onProgress: (w2: W2Results) => Promise<void>,
): Promise<W2Results> {
  const w = cfg.w2;
  const batch = cfg.batch;
  const res: W2Results = {
    config: {
      bookings: w.bookings, rateEmails: w.rateEmails, latencyMs: w.latencyMs, c: w.c, batch, callbacks: w.callbacks, heartbeat: w.heartbeat,
    },
    throughput: [],
    rate: null,
    rateError: null,
    goals: { ceilingRatio: null, ceilingPass: null, ratePass: null, zero429Pass: null },
  };
  console.log(
    `W2 booking reminders: ${w.bookings} bookings = ${2 * w.bookings} sends (WhatsApp + email), ${w.latencyMs} ms, C=${w.c}, ` +
      `Twilio callbacks ${w.callbacks ? "on" : "off"}, ${w.heartbeat} heartbeat; rate test ${w.rateEmails} emails at ${w.rateLimitPerSecond}/s`,
  );
  const duework = new DueworkReminders(stack, sandbox);
  const poll = postgres(stack.info.db_url, { max: 1, onnotice: () => {}, connection: { application_name: "bench-w2-rate-poll" } });
  const sql = duework.db;
  const timeoutMs = cfg.runTimeoutMs;
  const record = (label: string, f: () => Promise<W2Run>) =>
    f().catch((e) => failedRun(label, e as Error)).then(async (r) => {
      res.throughput.push(r);
      printRun(`[W2] ${label}`, r);
      await onProgress(res);
      return r;
    });
  const failedRun = (label: string, e: Error): W2Run => ({
    contender: label.startsWith("duework") ? "duework" : "reminders-ceiling",
    bookings: w.bookings, sends: 2 * w.bookings, c: w.c, latencyMs: w.latencyMs, callbacks: w.callbacks,
    startedAt: new Date().toISOString(), ok: false, failures: [`run failed: ${e.message}`], drainMs: null, sendsPerSec: null,
    checks: { phonesNotExactlyOnce: 0, twilioMessages: 0, twilioPosts: 0, keysNotExactlyOnce: 0, resendEmails: 0, resendPosts: 0,
      responses429: 0, notificationsSent: null, notificationsFailed: null, tasksNotSucceeded: null, tasksDead: null, tasksRetried: null,
      errors: 1, firstError: e.message },
    cpu: {},
  });
  let hosted: { stop(): Promise<void> } | null = null;
  try {
    await trackFunctions(sql, true);
    if (w.heartbeat === "hosted") hosted = await emulateHostedHeartbeat(stack.info.db_url, sql);
    else if (!cfg.quick) console.log("[W2] the measured Duework run starts once pg_cron's minute heartbeat runs (up to a minute)");
    await duework.init(w.c, batch);
    const dw = await record("duework", () =>
      duework.run({
        bookings: w.bookings, c: w.c, batch, latencyMs: w.latencyMs, callbacks: w.callbacks, timeoutMs,
        waitForHeartbeat: w.heartbeat === "local" && !cfg.quick,
      }));
    const ceiling = await record("http-ceiling", () =>
      runCeiling(stack, sandbox, sql, { bookings: w.bookings, c: w.c, batch, latencyMs: w.latencyMs, timeoutMs, runtime: cfg.peerRuntime }));
    if (dw.ok && ceiling.ok && dw.sendsPerSec && ceiling.sendsPerSec) {
      res.goals.ceilingRatio = dw.sendsPerSec / ceiling.sendsPerSec;
      res.goals.ceilingPass = res.goals.ceilingRatio >= CEILING_GOAL;
      console.log(`[W2] Duework / ceiling = ${(100 * res.goals.ceilingRatio).toFixed(0)} % (goal ≥ ${CEILING_GOAL * 100} %): ` +
        (res.goals.ceilingPass ? "PASS" : "MISS"));
    }

    try {
      const r = await runRateAccuracy({
        stack, sandbox, sql, poll, emails: w.rateEmails, limit: w.rateLimitPerSecond, refill: w.rateRefill, capacity: w.rateCapacity, latencyMs: w.latencyMs, c: w.c, batch,
      });
      res.rate = r;
      if (r.ok && r.deviation !== null) {
        res.goals.ratePass = Math.abs(r.deviation) <= RATE_TOLERANCE;
        res.goals.zero429Pass = r.responses429 === 0;
      }
      console.log(
        `[W2] rate limit: ${r.emails} emails, ${r.measuredRate?.toFixed(2) ?? "–"} req/s from the 10th send on vs limit ` +
          `${r.limitPerSecond}/s (${r.deviation === null ? "–" : `${(100 * r.deviation).toFixed(1)} %`}; bucket refill ` +
          `${r.bucket.refill_per_second}/s), max ${r.maxInAnySecond} in any 1 s, ${r.responses429} × 429 ${r.ok ? "✓" : "✗"}`,
      );
      for (const f of r.failures) console.log(`    ${f}`);
    } catch (e) {
      console.log(`[W2] rate limit: ✗ run failed: ${(e as Error).message}`);
      res.rateError = (e as Error).message;
    }
    await onProgress(res);
  } finally {
    try {
      await hosted?.stop();
      await settle(sql, 10_000);
      await resetW2(sql);
      await configureReminders(sql, 50, batch, DEFAULT_BUCKETS);
      await trackFunctions(sql, false);
    } finally {
      await poll.end();
      await duework.close();
    }
  }
  return res;
}
