// (d1) HTTP-only ceiling: C concurrent callers make N requests to the fake Google /token,
// no database. Same client and keep-alive agent as the peers. Runs in the peer worker.
import { createTokenClient } from "../token_client.ts";
import type { DrainTracker, PeerHandle, PeerSpec } from "../peer_support.ts";

export function describe(c: number): string {
  return `${c} concurrent callers, N requests in total, keep-alive agent maxSockets ${c}, no database`;
}

export function prepare(spec: PeerSpec, tracker: DrainTracker): Promise<PeerHandle> {
  const { tokenUrl, n, c, tokenPrefix } = spec;
  const tokens = createTokenClient(`${tokenUrl}/token`, { maxSockets: c });
  let next = 1;
  let errors = 0;
  let firstError: string | null = null;
  let running: Promise<unknown> | null = null;

  async function caller() {
    while (next <= n) {
      const i = next++;
      try {
        await tokens.refresh(`${tokenPrefix}${i}`);
        tracker.record(i);
      } catch (err) {
        // No retry: a repeated request would count as a duplicate provider call.
        errors += 1;
        firstError ??= (err as Error).message;
      }
    }
  }

  return Promise.resolve({
    start() {
      const t0 = Date.now();
      running = Promise.all(Array.from({ length: c }, caller));
      return Promise.resolve({ t0, enqueueMs: null, enqueued: n });
    },
    async stop() {
      await running;
      tokens.close();
      return { errors, firstError, httpCalls: tokens.calls };
    },
  });
}
