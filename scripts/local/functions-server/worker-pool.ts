/**
 * One Deno subprocess per function ("user worker"), run like edge-runtime's per_worker policy:
 * started lazily on the first request, one worker serves many concurrent requests, restarted on
 * the next request after it died. Boot is single-flight: N concurrent first requests share one
 * spawn.
 *
 * Lifetime (wall clock; default 150 s, a free hosted project's limit; 0 = unlimited):
 * - At half of it the worker is retired, as edge-runtime retires it (later requests might not get
 *   enough time): new requests go to a fresh worker. If the old one was in use, its successor is
 *   booted at once and takes over when ready, so a steady stream of requests sees no cold start.
 *   The retired worker keeps its in-flight requests and `waitUntil` work and exits when both are
 *   done (the pool writes `retire` on its stdin once no request of it is in flight).
 * - At the limit the worker cuts itself (`beforeunload`, reason "wall_clock"); the pool SIGKILLs
 *   it `killGraceMs` later if it is still there (a busy loop never sees its own timer).
 * - Nothing else stops a worker: no idle timeout, no recycling while work is pending.
 */
import { RETIRE_COMMAND } from "./worker-runtime.ts";
import {
  type FunctionWorker,
  sendCommand,
  spawnWorker,
  terminateWorker,
  type WorkerProcess,
  type WorkerSpec,
} from "./worker-process.ts";

export { BootError, type FunctionWorker, type WorkerSpec } from "./worker-process.ts";

export class PoolClosedError extends Error {
  constructor() {
    super("functions server is shutting down");
    this.name = "PoolClosedError";
  }
}

export const DEFAULT_WALL_CLOCK_MS = 150_000;

/** A retiring worker that started a request this recently gets its successor booted at once. */
const BUSY_WINDOW_MS = 30_000;

/** A worker for one request; release() once the response has been sent (or failed). */
export interface Lease {
  worker: FunctionWorker;
  release(): void;
}

export interface WorkerPoolOptions {
  bootstrapPath: string;
  denoPath?: string;
  log: (line: string) => void;
  /** Max time from spawn to the ready line (default 30 s; first npm download can be slow). */
  bootTimeoutMs?: number;
  /** SIGTERM → SIGKILL grace on close, and SIGKILL delay after the wall-clock limit (default 2 s). */
  killGraceMs?: number;
  stderrTailLines?: number;
  /** Wall-clock limit per worker in ms (default 150 000; 0 = none). */
  wallClockMs?: number;
  /** Called whenever a worker process is spawned or exits. */
  onChange?: () => void;
}

type MakeSpec = () => WorkerSpec | Promise<WorkerSpec>;

export class WorkerPool {
  /** The worker new requests of a function go to. */
  private readonly ready = new Map<string, WorkerProcess>();
  private readonly booting = new Map<string, Promise<WorkerProcess>>();
  /** Every child spawned and not yet exited (booting, ready, retired). */
  private readonly live = new Set<WorkerProcess>();
  /** How to (re)boot each function; kept for successors booted at retirement. */
  private readonly specs = new Map<string, MakeSpec>();
  private closed = false;
  private readonly denoPath: string;
  private readonly bootTimeoutMs: number;
  private readonly killGraceMs: number;
  private readonly tailLines: number;
  readonly wallClockMs: number;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.denoPath = opts.denoPath ?? Deno.execPath();
    this.bootTimeoutMs = opts.bootTimeoutMs ?? 30_000;
    this.killGraceMs = opts.killGraceMs ?? 2_000;
    this.tailLines = opts.stderrTailLines ?? 30;
    this.wallClockMs = opts.wallClockMs ?? DEFAULT_WALL_CLOCK_MS;
  }

  /** A running worker for the function, booting one if needed; the lease counts the request. */
  async acquire(name: string, makeSpec: MakeSpec): Promise<Lease> {
    if (this.closed) throw new PoolClosedError();
    this.specs.set(name, makeSpec);
    let w = this.ready.get(name);
    if (!w || w.exited) w = await this.boot(name);
    if (this.closed) throw new PoolClosedError();
    // Counted synchronously after the await: no retire timer can run in between.
    w.inflight++;
    w.lastRequestAt = Date.now();
    const worker = w;
    let released = false;
    return {
      worker,
      release: () => {
        if (released) return;
        released = true;
        worker.inflight--;
        this.retireIfIdle(worker);
      },
    };
  }

  /** Pids of the workers new requests go to, by function name. */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, w] of this.ready) if (!w.exited) out[name] = w.pid;
    return out;
  }

  /** Pids of every live worker process by function name (booting and retiring ones included). */
  livePids(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const w of this.live) (out[w.name] ??= []).push(w.pid);
    return out;
  }

  /** Pids of every live child, booting ones included. */
  allPids(): number[] {
    return [...this.live].map((w) => w.pid);
  }

  /** Waits (briefly) for a worker's exit to be observed; used after a failed proxy attempt. */
  async settleExit(worker: FunctionWorker, timeoutMs = 250): Promise<boolean> {
    if (worker.exited) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const res = await Promise.race([worker.status.then(() => true), timeout]);
    clearTimeout(timer);
    return res;
  }

  /** Stops one worker (SIGTERM, then SIGKILL after the grace period). */
  async stop(name: string): Promise<void> {
    const w = this.ready.get(name);
    if (w) await terminateWorker(w, this.killGraceMs);
  }

  /** Kills every child (booting, ready or retired) and waits for them to exit. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.live].map((w) => terminateWorker(w, this.killGraceMs)));
    // Boots in progress settle (their child is already in `live` once spawned)…
    await Promise.allSettled([...this.booting.values()]);
    // …and anything spawned meanwhile goes too.
    await Promise.all([...this.live].map((w) => terminateWorker(w, this.killGraceMs)));
    this.ready.clear();
  }

  private boot(name: string): Promise<WorkerProcess> {
    const inProgress = this.booting.get(name);
    if (inProgress) return inProgress;
    const makeSpec = this.specs.get(name)!;
    const boot = (async () => {
      if (this.closed) throw new PoolClosedError();
      return await spawnWorker(await makeSpec(), {
        bootstrapPath: this.opts.bootstrapPath,
        denoPath: this.denoPath,
        wallClockMs: this.wallClockMs,
        bootTimeoutMs: this.bootTimeoutMs,
        tailLines: this.tailLines,
        log: this.opts.log,
        onSpawn: (w) => this.track(w),
      });
    })();
    this.booting.set(name, boot);
    // Registered before any caller awaits `boot`, so callers see the new worker in `ready`.
    boot.then(
      (w) => {
        if (this.booting.get(name) === boot) this.booting.delete(name);
        if (w.exited || this.closed) return;
        const previous = this.ready.get(name);
        this.ready.set(name, w);
        this.scheduleLifetime(w);
        // A successor booted at retirement takes over: the old worker can now drain.
        if (previous && previous !== w) this.retireIfIdle(previous);
      },
      () => {
        if (this.booting.get(name) === boot) this.booting.delete(name);
      },
    );
    return boot;
  }

  private track(w: WorkerProcess): void {
    this.live.add(w);
    this.opts.onChange?.();
    w.status.then((st) => {
      for (const t of w.timers) clearTimeout(t);
      this.live.delete(w);
      if (this.ready.get(w.name) === w) this.ready.delete(w.name);
      this.opts.onChange?.();
      if (this.closed || !w.port) return; // boot failures are logged by spawnWorker
      const seconds = ((Date.now() - w.spawnedAt) / 1000).toFixed(1);
      if (w.limitReached) {
        this.opts.log(`worker ${w.name} (pid ${w.pid}) stopped at its wall-clock limit of ${this.wallClockMs} ms (shutdown: WallClockTime)`);
      } else if (w.retireSent && st.code === 0) {
        this.opts.log(`worker ${w.name} (pid ${w.pid}) retired after ${seconds} s: its requests and background tasks were done`);
      } else {
        this.opts.log(`worker ${w.name} (pid ${w.pid}) exited with ${st.signal ? `signal ${st.signal}` : `code ${st.code}`}`);
      }
    });
  }

  private scheduleLifetime(w: WorkerProcess): void {
    if (!this.wallClockMs) return;
    const at = (ms: number, fn: () => void) =>
      w.timers.push(setTimeout(fn, Math.max(0, w.spawnedAt + ms - Date.now())));
    at(this.wallClockMs / 2, () => this.retire(w));
    at(this.wallClockMs, () => {
      // The worker cuts itself now; requests still in flight on it fail (546 WORKER_LIMIT).
      w.limitReached = true;
      w.retired = true;
      if (this.ready.get(w.name) === w) this.ready.delete(w.name);
    });
    at(this.wallClockMs + this.killGraceMs, () => {
      if (w.exited) return;
      this.opts.log(`worker ${w.name} (pid ${w.pid}) did not stop at its wall-clock limit; killing it`);
      try {
        w.child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    });
  }

  /** Half the wall clock has passed: send new requests elsewhere, let this one finish its work. */
  private retire(w: WorkerProcess): void {
    if (w.exited || w.retired) return;
    w.retired = true;
    if (this.ready.get(w.name) === w) {
      const busy = w.inflight > 0 || Date.now() - w.lastRequestAt <= Math.min(BUSY_WINDOW_MS, this.wallClockMs / 2);
      if (busy && !this.closed) {
        this.opts.log(`worker ${w.name} (pid ${w.pid}) is at half its wall-clock limit; booting its successor`);
        // w keeps serving until the successor is ready (boot() then hands over and drains w).
        this.boot(w.name).catch(() => {
          if (this.ready.get(w.name) === w) this.ready.delete(w.name);
          this.retireIfIdle(w);
        });
        return;
      }
      this.ready.delete(w.name);
    }
    this.retireIfIdle(w);
  }

  /** Tells a retired worker to exit once its background tasks are done, when nothing else can reach it. */
  private retireIfIdle(w: WorkerProcess): void {
    if (!w.retired || w.retireSent || w.exited || w.inflight > 0 || this.ready.get(w.name) === w) return;
    w.retireSent = true;
    sendCommand(w, RETIRE_COMMAND);
  }
}
