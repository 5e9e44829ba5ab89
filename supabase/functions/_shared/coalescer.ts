// Group commit for SQL calls: operations submitted while a flush is in flight wait and go out
// together in the next one, so under load many task outcomes share one round trip and one
// transaction, and a lone operation still goes out at once (no timer, no added latency).
//
// A flush that fails as a whole (for instance one operation with invalid input) is retried one
// operation at a time, so one bad operation cannot fail the others in its group. An optional
// retry wrapper repeats a whole flush first (a database that is restarting).

/** Runs one group; returns one result per operation, in order. */
export type FlushFn<Op, R> = (ops: readonly Op[]) => Promise<R[]>;

export interface CoalescerOptions {
  /** Groups in flight at once (default 1: the tightest grouping). */
  maxInFlight?: number;
  /** Largest group (default 200). */
  maxGroup?: number;
  /** Wraps each flush, e.g. to retry it while the database is away (db.ts retryWhileDisconnected). */
  retry?: <T>(flush: () => Promise<T>) => Promise<T>;
}

interface Pending<Op, R> {
  op: Op;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}

export class Coalescer<Op, R> {
  private queue: Pending<Op, R>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly maxInFlight: number;
  private readonly maxGroup: number;
  private readonly retry: <T>(flush: () => Promise<T>) => Promise<T>;

  constructor(private readonly flushFn: FlushFn<Op, R>, opts: CoalescerOptions = {}) {
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 1);
    this.maxGroup = Math.max(1, opts.maxGroup ?? 200);
    this.retry = opts.retry ?? ((flush) => flush());
  }

  submit(op: Op): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      this.schedule();
    });
  }

  /** Operations waiting for a flush (tests and diagnostics). */
  get waiting(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    // A microtask lets operations submitted in the same turn of the event loop join the group.
    queueMicrotask(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const group = this.queue.splice(0, this.maxGroup);
      this.inFlight++;
      this.run(group).finally(() => {
        this.inFlight--;
        if (this.queue.length > 0) this.schedule();
      });
    }
  }

  private async run(group: Pending<Op, R>[]): Promise<void> {
    let results: R[];
    try {
      results = await this.retry(() => this.flushFn(group.map((p) => p.op)));
      if (results.length !== group.length) {
        throw new Error(`coalescer: flush returned ${results.length} results for ${group.length} operations`);
      }
    } catch (err) {
      if (group.length === 1) {
        group[0].reject(err);
        return;
      }
      // Isolate the failing operation: each one again on its own.
      await Promise.all(group.map((p) => this.run([p])));
      return;
    }
    group.forEach((p, i) => p.resolve(results[i]));
  }
}
