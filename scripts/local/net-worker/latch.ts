// PostgreSQL's process latch, as pg_net's worker uses it: SetLatch() makes the next (or the
// current) WaitLatch() return at once; the worker calls ResetLatch() after every wait, so a
// latch set while the worker was busy cuts exactly one wait short.
export class Latch {
  private isSet = false;
  private wake: (() => void) | null = null;

  set(): void {
    this.isSet = true;
    this.wake?.();
  }

  reset(): void {
    this.isSet = false;
  }

  get pending(): boolean {
    return this.isSet;
  }

  /** WaitLatch(WL_LATCH_SET [| WL_TIMEOUT]); null = no timeout. */
  wait(timeoutMs: number | null): Promise<"latch" | "timeout"> {
    if (this.isSet) return Promise.resolve("latch");
    return new Promise((resolve) => {
      const timer = timeoutMs === null ? undefined : setTimeout(() => {
        this.wake = null;
        resolve("timeout");
      }, timeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve("latch");
      };
    });
  }
}
