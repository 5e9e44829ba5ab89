// A job function's hold on its batch: accepting it (jobs.accept_batch, before answering 202)
// and keeping its tasks' leases alive while it works (jobs.keep_batch_alive). Behind an
// interface so handlers can be tested against an in-process fake (testing/fake_batch_leases.ts).

import type postgres from "npm:postgres@^3.4.9";

/** Why jobs.accept_batch refused a batch (SQLSTATEs raised by the migration). */
export type BatchRefusal =
  | "no_such_batch" // DWB01
  | "credential_refused" // DWB02
  | "not_in_flight" // DWB03: settled, or its lease ran out before anyone accepted it
  | "already_accepted"; // DWB04: a replayed request

const REFUSALS: Record<string, BatchRefusal> = {
  DWB01: "no_such_batch",
  DWB02: "credential_refused",
  DWB03: "not_in_flight",
  DWB04: "already_accepted",
};

export class BatchRefusedError extends Error {
  override name = "BatchRefusedError";
  constructor(readonly refusal: BatchRefusal, message: string) {
    super(message);
  }
}

export interface AcceptedBatch {
  /** Tasks of the batch still running under their leases. */
  running: number;
  leaseSeconds: number;
}

export interface BatchAliveness {
  running: number;
  /** false: the batch was settled (recovered after a restart, or finished): take no more work. */
  inFlight: boolean;
}

export interface BatchLeases {
  /** token: the credential the request carried, or null for a caller with the secret key. */
  accept(batchId: number, token: string | null): Promise<AcceptedBatch>;
  keepAlive(batchId: number): Promise<BatchAliveness>;
}

function refusalOf(err: unknown): BatchRefusedError | null {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  const refusal = typeof code === "string" ? REFUSALS[code] : undefined;
  return refusal ? new BatchRefusedError(refusal, err instanceof Error ? err.message : String(err)) : null;
}

export function createPgBatchLeases(sql: postgres.Sql): BatchLeases {
  const call = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      throw refusalOf(err) ?? err;
    }
  };
  return {
    accept: (batchId, token) =>
      call(async () => {
        const [row] = await sql<{ r: { running: number; lease_seconds: number } }[]>`
          select jobs.accept_batch(${batchId}, ${token}) as r`;
        return { running: row.r.running, leaseSeconds: row.r.lease_seconds };
      }),
    keepAlive: (batchId) =>
      call(async () => {
        const [row] = await sql<{ r: { running: number; in_flight: boolean } }[]>`
          select jobs.keep_batch_alive(${batchId}) as r`;
        return { running: row.r.running, inFlight: row.r.in_flight };
      }),
  };
}

/**
 * Runs work while extending the batch's leases every intervalMs. The signal passed to work
 * aborts when the batch is no longer in flight (the engine recovered it): finish what is in
 * hand, take no more. A failed heartbeat (database away) is logged and tried again next time;
 * the leases then run out on their own if the database stays away.
 */
export async function withLeaseHeartbeat<T>(
  leases: BatchLeases,
  batchId: number,
  intervalMs: number,
  log: (line: string) => void,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const stop = new AbortController();
  let beating: Promise<void> | null = null;
  const beat = async () => {
    try {
      const alive = await leases.keepAlive(batchId);
      if (!alive.inFlight) stop.abort(new Error(`batch ${batchId} is no longer in flight`));
    } catch (err) {
      if (err instanceof BatchRefusedError) return; // not a batch of the engine (a hand-made request)
      log(`batch ${batchId}: could not extend its leases: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const timer = setInterval(() => {
    beating ??= beat().finally(() => (beating = null));
  }, intervalMs);
  try {
    return await work(stop.signal);
  } finally {
    clearInterval(timer);
    await beating;
  }
}
