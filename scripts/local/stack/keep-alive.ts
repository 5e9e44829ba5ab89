// Restarts a stack process that exits while the stack runs, the way the postmaster restarts a
// crashed background worker: after a short delay, with the same arguments. A process that keeps
// dying (a crash loop) ends in giveUp() instead of restarting forever.
import { type Child, stopChild } from "./processes.ts";

export interface RestartPolicy {
  /** Wait before each restart (gives a crashed Postgres's backends time to go away). */
  delayMs: number;
  /** Give up when the process exits more than this many times within windowMs (Infinity: never). */
  maxRestarts: number;
  windowMs: number;
}

/** Postgres: restart after 1 s; 6 exits within 60 s (5 restarts that did not hold) is fatal. */
export const POSTGRES_RESTARTS: RestartPolicy = { delayMs: 1_000, maxRestarts: 5, windowMs: 60_000 };

/** The Deno services (net worker, functions, sandbox) hold no state worth giving up over. */
export const SERVICE_RESTARTS: RestartPolicy = { delayMs: 1_000, maxRestarts: Infinity, windowMs: 60_000 };

/** Exits within a sliding window. */
export class RestartBudget {
  private exits: number[] = [];
  constructor(private readonly policy: RestartPolicy) {}

  /** Records an exit at `now`; false once exits within the window exceed maxRestarts. */
  allow(now = Date.now()): boolean {
    this.exits = this.exits.filter((t) => now - t < this.policy.windowMs);
    this.exits.push(now);
    return this.exits.length <= this.policy.maxRestarts;
  }

  /** Exits recorded within the window (as of the last allow()). */
  get recent(): number {
    return this.exits.length;
  }
}

export interface KeepAliveOptions {
  name: string;
  policy: RestartPolicy;
  /** Starts a fresh instance with the same arguments. */
  spawn(): Child | Promise<Child>;
  /** Resolves once an instance serves (default: its ready line). */
  ready?(child: Child): Promise<unknown>;
  /** How to stop an instance started while the stack was stopping (Postgres: SIGINT). */
  stopSignal?: Deno.Signal;
  /** True once the stack is stopping: exits are expected then and nothing is restarted. */
  stopping(): boolean;
  /** `next` replaces `previous` (the children list and children.json). */
  replaced(next: Child, previous: Child): void | Promise<void>;
  log(line: string): void;
  /** The process keeps dying within the window, or cannot be started at all. */
  giveUp(error: Error): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Watches `first` and every instance after it until the stack stops or the budget runs out. */
export function keepAlive(first: Child, opts: KeepAliveOptions): void {
  const budget = new RestartBudget(opts.policy);
  const { delayMs, maxRestarts, windowMs } = opts.policy;
  const limit = Number.isFinite(maxRestarts) ? ` (${maxRestarts} restarts within ${windowMs / 1000} s at most)` : "";

  const watch = (child: Child) => {
    child.status.then(async (s) => {
      if (opts.stopping()) return;
      const how = s.signal ? `signal ${s.signal}` : `code ${s.code}`;
      if (!budget.allow()) {
        opts.giveUp(new Error(
          `${opts.name} exited ${budget.recent} times within ${windowMs / 1000} s (last: ${how}); ` +
            `giving up after ${maxRestarts} restarts. Its last output:\n${child.tail()}`,
        ));
        return;
      }
      const exitedAt = Date.now();
      opts.log(`${opts.name} (pid ${child.pid}) exited unexpectedly (${how}); restarting in ${delayMs / 1000} s${limit}`);
      await sleep(delayMs);
      if (opts.stopping()) return;
      let next: Child;
      try {
        next = await opts.spawn();
      } catch (e) {
        opts.giveUp(new Error(`cannot restart ${opts.name}: ${(e as Error).message}`));
        return;
      }
      // stop() may have begun while we spawned; it did not see `next`, so stop it here.
      if (opts.stopping()) return void (await stopChild(next, opts.stopSignal));
      await opts.replaced(next, child);
      watch(next);
      (opts.ready ?? ((c: Child) => c.ready))(next).then(
        () => opts.log(`${opts.name} is back (pid ${next.pid}, ${((Date.now() - exitedAt) / 1000).toFixed(1)} s after the exit)`),
        // If it exited, watch() above handles that; this line says why it did not come up.
        (e) => opts.log(`${opts.name} (pid ${next.pid}) did not come up: ${(e as Error).message.split("\n")[0]}`),
      );
    });
  };
  watch(first);
}
