// In-process stand-in for jobs.accept_batch / jobs.keep_batch_alive (handler tests).
import { type AcceptedBatch, type BatchAliveness, type BatchLeases, BatchRefusedError } from "../batch_lease.ts";

export interface FakeBatch {
  token: string;
  running: number;
  accepted?: boolean;
  settled?: boolean;
}

export class FakeBatchLeases implements BatchLeases {
  readonly batches = new Map<number, FakeBatch>();
  readonly calls: { op: "accept" | "keepAlive"; batchId: number; token?: string | null }[] = [];
  /** When set, every call fails like a database that went away. */
  down = false;
  leaseSeconds = 30;

  add(batchId: number, batch: FakeBatch): this {
    this.batches.set(batchId, batch);
    return this;
  }

  accept(batchId: number, token: string | null): Promise<AcceptedBatch> {
    this.calls.push({ op: "accept", batchId, token });
    if (this.down) return Promise.reject(Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" }));
    const b = this.batches.get(batchId);
    if (!b) return Promise.reject(new BatchRefusedError("no_such_batch", `no batch ${batchId}`));
    if (token !== null && token !== b.token) {
      return Promise.reject(new BatchRefusedError("credential_refused", `batch credential refused for batch ${batchId}`));
    }
    if (b.accepted) return Promise.reject(new BatchRefusedError("already_accepted", `batch ${batchId} was already accepted`));
    if (b.settled) return Promise.reject(new BatchRefusedError("not_in_flight", `batch ${batchId} is no longer in flight`));
    b.accepted = true;
    return Promise.resolve({ running: b.running, leaseSeconds: this.leaseSeconds });
  }

  keepAlive(batchId: number): Promise<BatchAliveness> {
    this.calls.push({ op: "keepAlive", batchId });
    if (this.down) return Promise.reject(Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" }));
    const b = this.batches.get(batchId);
    if (!b) return Promise.reject(new BatchRefusedError("no_such_batch", `no batch ${batchId}`));
    return Promise.resolve({ running: b.running, inFlight: !b.settled });
  }
}
