/**
 * One function worker process: spawned with worker-bootstrap.ts, its output prefixed into the
 * server log, ready once it reports its port. The pool (worker-pool.ts) decides when to start and
 * stop them.
 */
import { forEachLine, stripAnsi } from "./lines.ts";
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

export interface FunctionWorker {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** true once the process has exited. */
  readonly exited: boolean;
  /** true once the worker's wall-clock limit has passed (it is being or has been cut). */
  readonly limitReached: boolean;
  /** Resolves when the process has exited. */
  readonly status: Promise<Deno.CommandStatus>;
}

/** A spawned worker and the state the pool keeps about it. */
export interface WorkerProcess extends FunctionWorker {
  child: Deno.ChildProcess;
  exited: boolean;
  limitReached: boolean;
  port: number;
  spawnedAt: number;
  stdin: WritableStreamDefaultWriter<Uint8Array> | null;
  outputDone: Promise<void>;
  /** Proxied requests not yet fully answered. */
  inflight: number;
  lastRequestAt: number;
  /** No new requests go to a retired worker; it exits once its work is done. */
  retired: boolean;
  retireSent: boolean;
  timers: ReturnType<typeof setTimeout>[];
}

export interface SpawnOptions {
  bootstrapPath: string;
  denoPath: string;
  wallClockMs: number;
  bootTimeoutMs: number;
  tailLines: number;
  log: (line: string) => void;
  /** Called right after the process exists (before it is ready), so it can be tracked and killed. */
  onSpawn: (w: WorkerProcess) => void;
}

/** Writes one command line on the worker's stdin (ignored if the worker is gone). */
export function sendCommand(w: WorkerProcess, command: string): void {
  w.stdin?.write(new TextEncoder().encode(`${command}\n`)).catch(() => {});
}

/** SIGTERM, then SIGKILL after graceMs; waits for the exit and the last output lines. */
export async function terminateWorker(w: WorkerProcess, graceMs: number): Promise<void> {
  if (!w.exited) {
    try {
      w.child.kill("SIGTERM");
    } catch { /* already gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      w.status.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
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

/** Spawns a worker and resolves once it serves; rejects with BootError (the process is gone). */
export async function spawnWorker(spec: WorkerSpec, opts: SpawnOptions): Promise<WorkerProcess> {
  const args = ["run", "--allow-all", "--no-prompt"];
  if (spec.denoConfig) args.push("--config", spec.denoConfig);
  if (spec.importMap) args.push("--import-map", spec.importMap);
  args.push(opts.bootstrapPath, spec.entrypoint, String(opts.wallClockMs));

  const started = performance.now();
  const child = new Deno.Command(opts.denoPath, {
    args,
    cwd: spec.cwd,
    env: spec.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const tail: string[] = [];
  const portReady = Promise.withResolvers<number>();
  const prefix = `[${spec.name}]`;

  const stdoutDone = forEachLine(child.stdout, (rawLine) => {
    const line = stripAnsi(rawLine);
    if (line.startsWith(READY_MARKER)) {
      try {
        const { port } = JSON.parse(line.slice(READY_MARKER.length)) as { port: number };
        portReady.resolve(port);
        return;
      } catch { /* fall through: log it */ }
    }
    opts.log(`${prefix} ${line}`);
  });
  const stderrDone = forEachLine(child.stderr, (rawLine) => {
    const line = stripAnsi(rawLine);
    tail.push(line);
    if (tail.length > opts.tailLines) tail.shift();
    opts.log(`${prefix} ${line}`);
  });

  const w: WorkerProcess = {
    name: spec.name,
    pid: child.pid,
    port: 0,
    exited: false,
    limitReached: false,
    child,
    status: child.status,
    spawnedAt: Date.now(),
    stdin: child.stdin.getWriter(),
    outputDone: Promise.all([stdoutDone, stderrDone]).then(() => {}),
    inflight: 0,
    lastRequestAt: 0,
    retired: false,
    retireSent: false,
    timers: [],
  };
  child.status.then(() => {
    w.exited = true;
    w.stdin?.close().catch(() => {});
    w.stdin = null;
  });
  opts.onSpawn(w);

  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    portReady.promise.then((port) => ({ kind: "ready" as const, port })),
    child.status.then((st) => ({ kind: "exited" as const, st })),
    new Promise<{ kind: "timeout" }>((r) => (timer = setTimeout(() => r({ kind: "timeout" }), opts.bootTimeoutMs))),
  ]);
  clearTimeout(timer);

  if (outcome.kind === "ready") {
    w.port = outcome.port;
    opts.log(
      `worker ${spec.name} started (pid ${w.pid}, port ${w.port}, ${Math.round(performance.now() - started)}ms)`,
    );
    return w;
  }

  let reason: string;
  if (outcome.kind === "timeout") {
    reason = `no ready signal within ${opts.bootTimeoutMs}ms`;
    await terminateWorker(w, 2000);
  } else {
    const st = outcome.st;
    reason = `process exited with ${st.signal ? `signal ${st.signal}` : `code ${st.code}`} before serving`;
    // drain remaining output so the stderr tail is complete
    await Promise.race([w.outputDone, new Promise((r) => setTimeout(r, 500))]);
  }
  opts.log(
    `worker ${spec.name} failed to boot: ${reason}` +
      (tail.length ? `; stderr tail:\n${tail.map((l) => `  | ${l}`).join("\n")}` : ""),
  );
  throw new BootError(spec.name, reason, [...tail]);
}
