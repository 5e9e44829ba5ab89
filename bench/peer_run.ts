// One measured run of a peer contender (graphile-worker, pg-boss, HTTP ceiling): fresh database
// `bench_peers` on the stack's Postgres, fresh tokens at the fake Google, a fresh child process
// (bench/peer_worker.ts) whose CPU time is accounted on its own.
import postgres from "npm:postgres@^3.4.9";
import { TextLineStream } from "./lines.ts";
import type { Cell, ContenderId } from "./config.ts";
import type { BenchStack } from "./stack.ts";
import { cpuDelta, sampleCpu } from "./cpu.ts";
import { providerCheck, runTokens, type SandboxClient } from "./sandbox.ts";
import type { RunRecord } from "./record.ts";
import { PEER_DB, SEED_SQL, TABLE_SQL, VERIFY_SQL } from "./w1.ts";
import type { PeerSpec } from "./peer_support.ts";

export type PeerRuntime = "node" | "deno";

function peerDbUrl(dbUrl: string): string {
  const u = new URL(dbUrl);
  u.pathname = `/${PEER_DB}`;
  return u.toString();
}

async function freshPeerDatabase(adminUrl: string, url: string, tokens: string[]): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${PEER_DB} with (force)`);
    await admin.unsafe(`create database ${PEER_DB}`);
  } finally {
    await admin.end();
  }
  const db = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await db.unsafe(TABLE_SQL);
    await db.unsafe(SEED_SQL, [tokens]);
    await db.unsafe("vacuum analyze");
    await db.unsafe("checkpoint");
  } finally {
    await db.end();
  }
}

interface Message {
  type: string;
  [k: string]: unknown;
}

/** Starts bench/peer_worker.ts with the spec (W2's ceiling too: bench/w2_run.ts). */
export function spawnPeer(runtime: PeerRuntime, root: string, spec: PeerSpec) {
  const [cmd, args] = runtime === "node"
    ? ["node", ["--import", "tsx", "bench/peer_worker.ts"]]
    : [Deno.execPath(), ["run", "-A", "bench/peer_worker.ts"]];
  const child = new Deno.Command(cmd, {
    args,
    cwd: root,
    env: { BENCH_PEER_SPEC: JSON.stringify(spec) },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const queue: Message[] = [];
  const waiters: ((m: Message | null) => void)[] = [];
  const stderrTail: string[] = [];
  let closed = false;
  const deliver = (m: Message | null) => {
    const w = waiters.shift();
    if (w) w(m);
    else if (m) queue.push(m);
  };
  (async () => {
    for await (const line of child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream())) {
      if (!line.trim()) continue;
      try {
        deliver(JSON.parse(line));
      } catch {
        stderrTail.push(line);
      }
    }
    closed = true;
    while (waiters.length) deliver(null);
  })();
  (async () => {
    for await (const line of child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream())) {
      stderrTail.push(line);
      if (stderrTail.length > 30) stderrTail.shift();
    }
  })();
  return {
    pid: child.pid,
    status: child.status,
    async send(m: Message) {
      await writer.write(new TextEncoder().encode(JSON.stringify(m) + "\n"));
    },
    next(timeoutMs: number): Promise<Message | null> {
      if (queue.length) return Promise.resolve(queue.shift()!);
      if (closed) return Promise.resolve(null);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          resolve(null);
        }, timeoutMs);
        const done = (m: Message | null) => {
          clearTimeout(timer);
          resolve(m);
        };
        waiters.push(done);
      });
    },
    async expect(type: string, timeoutMs: number): Promise<Message> {
      const m = await this.next(timeoutMs);
      if (m?.type === type) return m;
      const why = m === null ? "no answer" : m.type === "error" ? String(m.message) : JSON.stringify(m);
      throw new Error(`peer worker: expected "${type}", got ${why}\n${stderrTail.join("\n")}`);
    },
    kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    },
    stderrTail,
  };
}

let livePeer: { kill(): void } | null = null;
/** Ctrl-C: the orchestrator kills a peer worker that is still running. */
export function killLivePeer(): void {
  livePeer?.kill();
}

/** Registers (or clears) the peer child Ctrl-C must kill. */
export function setLivePeer(peer: { kill(): void } | null): void {
  livePeer = peer;
}

export async function runPeer(
  { stack, sandbox, contender, cell, n, batch, rep, runId, timeoutMs, runtime }: {
    stack: BenchStack;
    sandbox: SandboxClient;
    contender: Exclude<ContenderId, "duework">;
    cell: Cell;
    n: number;
    batch: number;
    rep: number;
    runId: string;
    timeoutMs: number;
    runtime: PeerRuntime;
  },
): Promise<RunRecord> {
  const tokenPrefix = `1//bench-${runId}-`;
  const tokens = runTokens(tokenPrefix, n);
  const dbUrl = peerDbUrl(stack.info.db_url);
  const usesDb = contender !== "http-ceiling";
  if (usesDb) await freshPeerDatabase(stack.info.db_url, dbUrl, tokens);
  await sandbox.reset();
  await sandbox.register(tokens, cell.latencyMs);

  const spec: PeerSpec = { contender, dbUrl, tokenUrl: stack.info.providers.google_oauth, n, c: cell.c, batch, tokenPrefix };
  const peer = spawnPeer(runtime, stack.cfg.projectRoot, spec);
  livePeer = peer;
  const failures: string[] = [];
  let started: Message, drained: Message, stopped: Message;
  let cpu: Record<string, number>;
  try {
    await peer.expect("ready", 60_000);
    const roots = { ...stack.cpuRoots(), peerWorker: { pid: peer.pid, tree: true } };
    const before = sampleCpu(roots);
    await peer.send({ type: "go" });
    started = await peer.expect("started", 60_000);
    const d = await peer.next(timeoutMs);
    const after = sampleCpu(roots);
    cpu = cpuDelta(before, after);
    drained = d?.type === "drained" ? d : { type: "drained", tEnd: null, refreshed: null };
    await peer.send({ type: "stop" });
    stopped = await peer.expect("stopped", 60_000);
    await peer.status;
  } catch (e) {
    peer.kill();
    throw e;
  } finally {
    livePeer = null;
  }

  const t0 = started.t0 as number;
  const tEnd = drained.tEnd as number | null;
  const stats = stopped.stats as { errors: number; firstError: string | null; httpCalls: number };
  type Verify = { total: number; refreshed: number; refreshed_more_than_once: number; last_refreshed_ms: number };
  let verify: Verify | null = null;
  if (usesDb) {
    const db = postgres(dbUrl, { max: 1, onnotice: () => {} });
    try {
      verify = ((await db.unsafe(VERIFY_SQL)) as unknown as Verify[])[0];
    } finally {
      await db.end();
    }
  }
  const provider = providerCheck(await sandbox.refreshCounts(), tokens);
  if (tEnd === null) failures.push(`timed out: ${drained.refreshed ?? "?"}/${n} drained after ${timeoutMs / 1000} s`);
  if (verify && verify.refreshed !== n) failures.push(`${verify.refreshed}/${n} rows refreshed`);
  if (verify?.refreshed_more_than_once) failures.push(`${verify.refreshed_more_than_once} rows refreshed more than once`);
  if (provider.notExactlyOnce) failures.push(`${provider.notExactlyOnce} tokens not called exactly once at the fake`);
  if (stats.errors) failures.push(`${stats.errors} job errors, first: ${stats.firstError}`);
  const drainMs = tEnd === null ? null : tEnd - t0;
  return {
    contender,
    latencyMs: cell.latencyMs,
    c: cell.c,
    rep,
    n,
    startedAt: new Date(t0).toISOString(),
    ok: failures.length === 0,
    failures,
    drainMs,
    itemsPerSec: drainMs ? n / (drainMs / 1000) : null,
    dbDrainMs: verify ? Number(verify.last_refreshed_ms) - t0 : null,
    enqueueMs: (started.enqueueMs as number | null) ?? null,
    checks: {
      rowsRefreshed: verify?.refreshed ?? null,
      rowsRefreshedMoreThanOnce: verify?.refreshed_more_than_once ?? null,
      tokensNotCalledExactlyOnce: provider.notExactlyOnce,
      duplicateProviderCalls: provider.duplicateCalls,
      providerCalls: provider.calls,
      jobErrors: stats.errors,
      firstError: stats.firstError,
    },
    cpu,
    extra: { runtime, httpCalls: stats.httpCalls },
  };
}
