/**
 * The lifetime of one function worker process, as edge-runtime's per_worker supervisor runs it:
 *
 * - `EdgeRuntime.waitUntil(promise)` keeps the worker alive until the promise settles. A rejected
 *   background task is logged; it never crashes the worker.
 * - Wall clock: the worker lives at most `wallClockMs` from its start, background tasks included
 *   (hosted: 150 s free, 400 s paid). At the limit it dispatches `beforeunload` with
 *   `detail.reason = "wall_clock"` (edge-runtime's `WillTerminateReason::WallClock`, serialized
 *   snake_case) and exits; whatever is still running is cut. `0` disables the limit.
 * - Retire: the pool stops routing requests to a worker at half its wall clock and, once no request
 *   of it is in flight, writes `retire` on its stdin. The worker then exits as soon as its
 *   background tasks are done (hosted: the isolate ends when its event loop has nothing left).
 * - stdin EOF means the functions server died: exit at once, there is no one left to answer to.
 * - SIGTERM (server shutdown): `beforeunload` with reason "termination", then a short grace for
 *   background tasks.
 *
 * Imported by the pool too (for RETIRE_COMMAND), so nothing here runs at import time.
 */

/** Line the pool writes on a worker's stdin to retire it. */
export const RETIRE_COMMAND = "retire";

export interface EdgeRuntimeGlobal {
  waitUntil<T>(promise: Promise<T> | T): Promise<T>;
}

export interface WorkerRuntimeOptions {
  /** Wall-clock limit in ms from now; 0 = none. */
  wallClockMs: number;
  /** How long SIGTERM waits for background tasks before exiting. */
  terminationGraceMs: number;
  log?: (line: string) => void;
  exit?: (code: number) => void;
}

export interface WorkerRuntime {
  edgeRuntime: EdgeRuntimeGlobal;
  /** Background tasks not yet settled. */
  pending(): number;
  /** Starts the wall-clock timer, the stdin reader and the SIGTERM handler. */
  start(): void;
}

function dispatchBeforeUnload(reason: string, log: (line: string) => void): void {
  try {
    dispatchEvent(new CustomEvent("beforeunload", { cancelable: true, detail: { reason } }));
  } catch (err) {
    log(`worker-bootstrap: a beforeunload listener threw: ${err}`);
  }
}

export function createWorkerRuntime(opts: WorkerRuntimeOptions): WorkerRuntime {
  const log = opts.log ?? ((line: string) => console.error(line));
  const exit = opts.exit ?? ((code: number) => Deno.exit(code));
  const pending = new Set<Promise<unknown>>();
  let retired = false;

  const exitIfRetiredAndIdle = () => {
    if (retired && pending.size === 0) exit(0);
  };

  const edgeRuntime: EdgeRuntimeGlobal = {
    waitUntil<T>(promise: Promise<T> | T): Promise<T> {
      const p = Promise.resolve(promise);
      // The handler attached here also marks `p` as handled, so a rejection the function does not
      // catch itself is logged instead of becoming an unhandled rejection that kills the process.
      const tracked: Promise<void> = p.then(
        () => undefined,
        (err) => console.error("EdgeRuntime.waitUntil: background task failed:", err),
      ).finally(() => {
        pending.delete(tracked);
        exitIfRetiredAndIdle();
      });
      pending.add(tracked);
      return p;
    },
  };

  const onWallClock = () => {
    log(
      `worker-bootstrap: wall-clock limit of ${opts.wallClockMs} ms reached` +
        (pending.size ? `; cutting ${pending.size} background task(s)` : "") + " (shutdown: WallClockTime)",
    );
    dispatchBeforeUnload("wall_clock", log);
    // One macrotask turn lets synchronous listeners' microtasks finish; async work is cut, as the
    // limit says.
    setTimeout(() => exit(0), 0);
  };

  const readCommands = async () => {
    const decoder = new TextDecoder();
    const buf = new Uint8Array(1024);
    let text = "";
    try {
      for (;;) {
        const n = await Deno.stdin.read(buf);
        if (n === null) break;
        text += decoder.decode(buf.subarray(0, n), { stream: true });
        let nl: number;
        while ((nl = text.indexOf("\n")) >= 0) {
          const command = text.slice(0, nl).trim();
          text = text.slice(nl + 1);
          if (command === RETIRE_COMMAND) {
            retired = true;
            exitIfRetiredAndIdle();
          }
        }
      }
    } catch { /* stdin closed */ }
    // Parent death → stdin EOF → exit (no orphaned workers).
    exit(0);
  };

  const onSigterm = async () => {
    dispatchBeforeUnload("termination", log);
    if (pending.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...pending]),
        new Promise((r) => (timer = setTimeout(r, opts.terminationGraceMs))),
      ]);
      clearTimeout(timer);
    }
    exit(0);
  };

  return {
    edgeRuntime,
    pending: () => pending.size,
    start() {
      if (opts.wallClockMs > 0) {
        // unref: the limit must never be what keeps the process alive.
        Deno.unrefTimer(setTimeout(onWallClock, opts.wallClockMs));
      }
      void readCommands();
      Deno.addSignalListener("SIGTERM", () => void onSigterm());
    },
  };
}
