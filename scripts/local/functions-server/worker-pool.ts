/**
 * One Deno subprocess per function ("user worker"), started lazily on the first request, kept
 * warm, and restarted on the next request after it died. Boot is single-flight: N concurrent
 * first requests share one spawn.
 */
import { READY_MARKER } from "./worker-bootstrap.ts";

export interface WorkerSpec {
  /** Function name (the pool key). */
  name: string;
  /** Absolute entrypoint path. */
  entrypoint: string;
  denoConfig?: string;
  importMap?: string;
  /** Complete environment of the child (the child does not inherit the server's env). */
  env: Record<string, string>;
  cwd: string;
}

export class BootError extends Error {
  constructor(
    readonly functionName: string,
    readonly reason: string,
    readonly stderrTail: string[],
  ) {
    super(`worker for function "${functionName}" failed to boot: ${reason}`);
    this.name = "BootError";
  }
}

export class PoolClosedError extends Error {
  constructor() {
    super("functions server is shutting down");
    this.name = "PoolClosedError";
  }
}

export interface FunctionWorker {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** true once the process has exited. */
  readonly exited: boolean;
  /** Resolves when the process has exited. */
  readonly status: Promise<Deno.CommandStatus>;
}

interface WorkerInternal extends FunctionWorker {
  child: Deno.ChildProcess;
  exited: boolean;
  port: number;
  stdin: WritableStreamDefaultWriter<Uint8Array> | null;
  outputDone: Promise<void>;
}

export interface WorkerPoolOptions {
  bootstrapPath: string;
  denoPath?: string;
  log: (line: string) => void;
  /** Max time from spawn to the ready line (default 30 s; first npm download can be slow). */
  bootTimeoutMs?: number;
  /** SIGTERM → SIGKILL grace on close (default 2 s). */
  killGraceMs?: number;
  stderrTailLines?: number;
}

export class WorkerPool {
  private readonly ready = new Map<string, WorkerInternal>();
  private readonly booting = new Map<string, Promise<WorkerInternal>>();
  /** Every child ever spawned and not yet exited (including ones still booting). */
  private readonly live = new Set<WorkerInternal>();
  private closed = false;
  private readonly denoPath: string;
  private readonly bootTimeoutMs: number;
  private readonly killGraceMs: number;
  private readonly tailLines: number;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.denoPath = opts.denoPath ?? Deno.execPath();
    this.bootTimeoutMs = opts.bootTimeoutMs ?? 30_000;
    this.killGraceMs = opts.killGraceMs ?? 2_000;
    this.tailLines = opts.stderrTailLines ?? 30;
  }

  /** Returns a running worker for the function, booting one if needed (single-flight). */
  async get(name: string, makeSpec: () => WorkerSpec | Promise<WorkerSpec>): Promise<FunctionWorker> {
    if (this.closed) throw new PoolClosedError();
    const existing = this.ready.get(name);
    if (existing && !existing.exited) return existing;
    let boot = this.booting.get(name);
    if (!boot) {
      boot = (async () => this.spawn(await makeSpec()))();
      this.booting.set(name, boot);
      boot.then(
        (w) => {
          if (this.booting.get(name) === boot) this.booting.delete(name);
          if (!w.exited) this.ready.set(name, w);
        },
        () => {
          if (this.booting.get(name) === boot) this.booting.delete(name);
        },
      );
    }
    return await boot;
  }

  /** Pids of running (booted) workers by function name. */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, w] of this.ready) if (!w.exited) out[name] = w.pid;
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
    if (w) await this.terminate(w);
  }

  /** Kills every child (booting or ready) and waits for them to exit. */
  async close(): Promise<void> {
    this.closed = true;
    // Let in-progress boots settle into `live` (they are already in it once spawned).
    await Promise.all([...this.live].map((w) => this.terminate(w)));
    await Promise.allSettled([...this.booting.values()]);
    await Promise.all([...this.live].map((w) => this.terminate(w)));
    this.ready.clear();
  }

  private async terminate(w: WorkerInternal): Promise<void> {
    if (!w.exited) {
      try {
        w.child.kill("SIGTERM");
      } catch { /* already gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        w.status.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.killGraceMs))),
      ]);
      clearTimeout(timer);
      if (timedOut && !w.exited) {
        try {
          w.child.kill("SIGKILL");
        } catch { /* already gone */ }
        await w.status;
      }
    }
    await w.stdin?.close().catch(() => {});
    w.stdin = null;
    await w.outputDone;
  }

  private async spawn(spec: WorkerSpec): Promise<WorkerInternal> {
    if (this.closed) throw new PoolClosedError();
    const args = ["run", "--allow-all", "--no-prompt"];
    if (spec.denoConfig) args.push("--config", spec.denoConfig);
    if (spec.importMap) args.push("--import-map", spec.importMap);
    args.push(this.opts.bootstrapPath, spec.entrypoint);

    const started = performance.now();
    const child = new Deno.Command(this.denoPath, {
      args,
      cwd: spec.cwd,
      env: spec.env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();

    const tail: string[] = [];
    let resolvePort!: (port: number) => void;
    const portPromise = new Promise<number>((r) => (resolvePort = r));
    const prefix = `[${spec.name}]`;

    const stdoutDone = forEachLine(child.stdout, (rawLine) => {
      const line = stripAnsi(rawLine);
      if (line.startsWith(READY_MARKER)) {
        try {
          const { port } = JSON.parse(line.slice(READY_MARKER.length)) as { port: number };
          resolvePort(port);
          return;
        } catch { /* fall through: log it */ }
      }
      this.opts.log(`${prefix} ${line}`);
    });
    const stderrDone = forEachLine(child.stderr, (rawLine) => {
      const line = stripAnsi(rawLine);
      tail.push(line);
      if (tail.length > this.tailLines) tail.shift();
      this.opts.log(`${prefix} ${line}`);
    });

    const w: WorkerInternal = {
      name: spec.name,
      pid: child.pid,
      port: 0,
      exited: false,
      child,
      status: child.status,
      stdin: child.stdin.getWriter(),
      outputDone: Promise.all([stdoutDone, stderrDone]).then(() => {}),
    };
    this.live.add(w);
    child.status.then((st) => {
      w.exited = true;
      this.live.delete(w);
      if (this.ready.get(spec.name) === w) this.ready.delete(spec.name);
      w.stdin?.close().catch(() => {});
      w.stdin = null;
      if (!this.closed && w.port) {
        this.opts.log(
          `worker ${spec.name} (pid ${w.pid}) exited with ${st.signal ? `signal ${st.signal}` : `code ${st.code}`}`,
        );
      }
    });

    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      portPromise.then((port) => ({ kind: "ready" as const, port })),
      child.status.then((st) => ({ kind: "exited" as const, st })),
      new Promise<{ kind: "timeout" }>((r) => (timer = setTimeout(() => r({ kind: "timeout" }), this.bootTimeoutMs))),
    ]);
    clearTimeout(timer);

    if (outcome.kind === "ready") {
      w.port = outcome.port;
      this.opts.log(
        `worker ${spec.name} started (pid ${w.pid}, port ${w.port}, ${Math.round(performance.now() - started)}ms)`,
      );
      return w;
    }

    let reason: string;
    if (outcome.kind === "timeout") {
      reason = `no ready signal within ${this.bootTimeoutMs}ms`;
      await this.terminate(w);
    } else {
      const st = outcome.st;
      reason = `process exited with ${st.signal ? `signal ${st.signal}` : `code ${st.code}`} before serving`;
      // drain remaining output so the stderr tail is complete
      await Promise.race([w.outputDone, new Promise((r) => setTimeout(r, 500))]);
    }
    const err = new BootError(spec.name, reason, [...tail]);
    this.opts.log(
      `worker ${spec.name} failed to boot: ${reason}` +
        (tail.length ? `; stderr tail:\n${tail.map((l) => `  | ${l}`).join("\n")}` : ""),
    );
    throw err;
  }
}

// deno-lint-ignore no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[A-Za-z]/g;

function stripAnsi(s: string): string {
  return s.replace(ANSI_RE, "");
}

async function forEachLine(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, nl).replace(/\r$/, ""));
        buf = buf.slice(nl + 1);
      }
    }
    buf += decoder.decode();
    if (buf) onLine(buf);
  } catch {
    /* stream errored (process killed) */
  }
}
