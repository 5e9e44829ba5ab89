// Provider faults as the sandbox injects them (scripts/local/sandbox/faults.ts). Faults are tried
// in order and a spared request goes on to the next one, so the rates below compound to 20 %.
import type { ProviderName } from "../scripts/local/sandbox/types.ts";
import { addFault, type FaultSpec, type LoggedRequest } from "./sandbox.ts";
import type { StackInfo } from "./types.ts";

/** Longer than the functions' provider timeout (DEFAULT_TIMEOUT_MS, 10 s). */
export const TIMEOUT_DELAY_MS = 11_000;

/**
 * 20 % of a provider's requests: 5 % a 503 before the provider acts, 5 % a 429 with Retry-After,
 * 5 % a connection reset after it acted (the effect stands, the answer is lost) and 5 % an answer
 * that comes after the client's timeout, also after it acted.
 */
export function twentyPercent(provider: ProviderName): FaultSpec[] {
  return [
    { provider, status: 503, rate: 0.05 },
    { provider, status: 429, retry_after: 1, rate: 0.05 / 0.95 },
    { provider, reset: true, after: true, rate: 0.05 / 0.90 },
    { provider, status: 504, delay_ms: TIMEOUT_DELAY_MS, after: true, rate: 0.05 / 0.85 },
  ];
}

/** The same mix, struck exactly `n` times each (one of each kind, for the short mode). */
export function oneOfEach(provider: ProviderName, n = 1): FaultSpec[] {
  return twentyPercent(provider).map(({ rate: _rate, ...f }) => ({ ...f, times: n }));
}

export async function injectAll(info: StackInfo, faults: FaultSpec[]): Promise<void> {
  for (const f of faults) await addFault(info, f);
}

export const OUTAGE = (provider: ProviderName): FaultSpec => ({ provider, status: 503 });

export interface FaultTally {
  requests: number;
  struck: number;
  /** Struck after the provider acted (reset or late answer): the "sent, answer lost" window. */
  struckAfter: number;
  lastStruckAt: number | null;
}

export function tally(log: LoggedRequest[], providers: ProviderName[]): FaultTally {
  const mine = log.filter((r) => (providers as string[]).includes(r.provider));
  const struck = mine.filter((r) => r.fault_id);
  const last = struck.reduce((m, r) => Math.max(m, Date.parse(r.time)), 0);
  return {
    requests: mine.length,
    struck: struck.length,
    struckAfter: struck.filter((r) => r.fault_after).length,
    lastStruckAt: struck.length ? last : null,
  };
}
