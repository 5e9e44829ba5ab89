// One measured run, as stored in results.json and rendered by report.ts.
import type { ContenderId } from "./config.ts";

export interface RunRecord {
  contender: ContenderId;
  latencyMs: number;
  c: number;
  rep: number;
  n: number;
  startedAt: string;
  ok: boolean;
  failures: string[];
  drainMs: number | null;
  itemsPerSec: number | null;
  /** Cross-check from the database: last refreshed_at − start of the backlog (see README). */
  dbDrainMs: number | null;
  /** Peers: time to enqueue N jobs (not part of the drain). Duework: the tick call's duration (part of it). */
  enqueueMs: number | null;
  checks: {
    rowsRefreshed: number | null;
    rowsRefreshedMoreThanOnce: number | null;
    /** Tokens the fake Google did not see exactly once. */
    tokensNotCalledExactlyOnce: number;
    duplicateProviderCalls: number;
    providerCalls: number;
    jobErrors: number;
    firstError: string | null;
  };
  /** CPU-seconds between go and drained, per process (tree). */
  cpu: Record<string, number>;
  extra?: Record<string, unknown>;
}

export function cpuPer1000(r: RunRecord, key: string): number | null {
  const v = r.cpu[key];
  return typeof v === "number" ? (v * 1000) / r.n : null;
}
