// Provider faults as the sandbox injects them (scripts/local/sandbox/faults.ts). Faults are tried
// in order and a spared request goes on to the next one, so the rates below compound (to 20 %).
import type { ProviderName } from "../scripts/local/sandbox/types.ts";
import { addFault, type FaultSpec, type LoggedRequest } from "./sandbox.ts";
import type { StackInfo } from "./types.ts";

/** Longer than the functions' provider timeout (DEFAULT_TIMEOUT_MS, 10 s). */
export const TIMEOUT_DELAY_MS = 11_000;

export const PROVIDER_FAULTS = ["503", "429", "reset", "timeout"] as const;
export type ProviderFault = typeof PROVIDER_FAULTS[number];

/** Each kind as the sandbox strikes it. */
function fault(provider: ProviderName, kind: ProviderFault): FaultSpec {
  switch (kind) {
    case "503":
      return { provider, status: 503 };
    case "429":
      return { provider, status: 429, retry_after: 1 };
    case "reset":
      // After the provider acted: the effect stands, the answer is lost.
      return { provider, reset: true, after: true };
    case "timeout":
      // Also after it acted, answered only after the client gave up.
      return { provider, status: 504, delay_ms: TIMEOUT_DELAY_MS, after: true };
  }
}

/**
 * 5 % of a provider's requests per kind: by default 20 % in all (a 503 before the provider acts, a
 * 429 with Retry-After, a connection reset after it acted, an answer after the client's timeout).
 * The i-th fault only sees the requests the earlier ones spared, hence 0.05 / (1 − 0.05 i).
 */
export function twentyPercent(provider: ProviderName, kinds: readonly ProviderFault[] = PROVIDER_FAULTS): FaultSpec[] {
  return kinds.map((kind, i) => ({ ...fault(provider, kind), rate: 0.05 / (1 - 0.05 * i) }));
}

/** The same mix, struck exactly `n` times each (one of each kind, for the short mode). */
export function oneOfEach(provider: ProviderName, kinds: readonly ProviderFault[] = PROVIDER_FAULTS, n = 1): FaultSpec[] {
  return kinds.map((kind) => ({ ...fault(provider, kind), times: n }));
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
