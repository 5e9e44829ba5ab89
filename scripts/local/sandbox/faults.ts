// Fault injection: POST /__faults makes matching provider requests fail with a
// chosen status/body/Retry-After, optionally after a delay (timeouts), only a
// limited number of times, or only a fraction of them (`rate`). A fault can cut
// the connection instead of answering (`reset`), and can strike after the fake
// handled the request (`after`: the effect happened, its answer is lost, the
// window every at-least-once system must survive). Faults are indexed per
// provider so the no-fault hot path is a single map lookup.

import { z } from "npm:zod@4";
import { PROVIDER_NAMES, type ProviderName } from "./types.ts";

/**
 * Status is limited to 200-599: the Fetch `Response` constructor (and so
 * Deno.serve) cannot emit a 1xx final response.
 */
export const FaultInputSchema = z.strictObject({
  provider: z.enum(PROVIDER_NAMES),
  method: z.string().min(1).optional(),
  path: z.string().startsWith("/", { message: "path must start with /" }).optional(),
  status: z.number().int().min(200).max(599).optional(),
  body: z.unknown().optional(),
  retry_after: z.number().int().min(0).optional(),
  delay_ms: z.number().int().min(0).max(600_000).optional(),
  times: z.number().int().min(1).optional(),
  /** Fraction of matching requests the fault strikes (0 < rate ≤ 1); default all. */
  rate: z.number().gt(0).max(1).optional(),
  /** Cut the connection: headers go out, then the body stream errors (the client sees a reset). */
  reset: z.boolean().optional(),
  /** Strike after the fake handled the request: its effect stands, its answer is replaced. */
  after: z.boolean().optional(),
}).refine((f) => f.status !== undefined || f.reset === true, {
  path: ["status"],
  message: "status is required unless reset is true",
});

export type FaultInput = z.infer<typeof FaultInputSchema>;

export interface Fault {
  id: string;
  provider: ProviderName;
  method?: string; // upper-case
  path?: string;
  status?: number;
  body?: unknown;
  retry_after?: number;
  delay_ms?: number;
  rate?: number;
  reset?: boolean;
  after?: boolean;
  /** Remaining matching requests to affect; null = unlimited. */
  times: number | null;
  hits: number;
  created_at: string;
}

export interface ValidationError {
  error: "invalid_request";
  field: string | null;
  message: string;
}

/** Validates a POST /__faults body; on failure names the first offending field. */
export function parseFaultInput(
  input: unknown,
): { ok: true; value: FaultInput } | { ok: false; error: ValidationError } {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    return {
      ok: false,
      error: { error: "invalid_request", field: null, message: "body must be a JSON object" },
    };
  }
  const result = FaultInputSchema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  let field = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") field = issue.keys[0];
  return {
    ok: false,
    error: { error: "invalid_request", field: field || null, message: issue.message },
  };
}

export class FaultStore {
  #byProvider = new Map<ProviderName, Fault[]>();
  #nextId = 1;

  add(input: FaultInput): Fault {
    const fault: Fault = {
      id: `fault_${this.#nextId++}`,
      provider: input.provider,
      ...(input.method !== undefined && { method: input.method.toUpperCase() }),
      ...(input.path !== undefined && { path: input.path }),
      ...(input.status !== undefined && { status: input.status }),
      ...(input.rate !== undefined && { rate: input.rate }),
      ...(input.reset && { reset: true }),
      ...(input.after && { after: true }),
      ...(input.body !== undefined && { body: input.body }),
      ...(input.retry_after !== undefined && { retry_after: input.retry_after }),
      ...(input.delay_ms !== undefined && { delay_ms: input.delay_ms }),
      times: input.times ?? null,
      hits: 0,
      created_at: new Date().toISOString(),
    };
    const list = this.#byProvider.get(fault.provider);
    if (list) list.push(fault);
    else this.#byProvider.set(fault.provider, [fault]);
    return fault;
  }

  /**
   * First active fault matching the request, consumed immediately (before any
   * delay) so concurrent requests cannot over-use a `times`-limited fault.
   */
  take(provider: ProviderName, method: string, path: string, random: () => number = Math.random): Fault | undefined {
    const list = this.#byProvider.get(provider);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) {
      const f = list[i];
      if (f.method !== undefined && f.method !== method) continue;
      if (f.path !== undefined && f.path !== path) continue;
      if (f.rate !== undefined && random() >= f.rate) continue; // spared this time
      f.hits++;
      if (f.times !== null) {
        f.times--;
        if (f.times === 0) list.splice(i, 1); // exhausted: stops matching
      }
      if (list.length === 0) this.#byProvider.delete(provider);
      return { ...f };
    }
    return undefined;
  }

  list(): Fault[] {
    const out: Fault[] = [];
    for (const list of this.#byProvider.values()) out.push(...list);
    return out.sort((a, b) => idNum(a.id) - idNum(b.id));
  }

  clear(): number {
    const n = this.list().length;
    this.#byProvider.clear();
    return n;
  }
}

function idNum(id: string): number {
  return Number(id.slice(id.indexOf("_") + 1));
}
