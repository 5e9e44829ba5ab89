// The sandbox's control API as the harness uses it: reset, faults, state and the request log.
import type { ProviderName } from "../scripts/local/sandbox/types.ts";
import type { StackInfo } from "./types.ts";

async function call(info: StackInfo, path: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(`${info.sandbox_url}${path}`, {
    ...init,
    headers: init.body ? { "content-type": "application/json" } : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path} → HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

/** Every fake back to its fixtures, no fault, an empty request log. */
export async function resetSandbox(info: StackInfo): Promise<void> {
  await call(info, "/__reset", { method: "POST" });
  await call(info, "/__faults", { method: "DELETE" });
  await call(info, "/__requests", { method: "DELETE" });
}

export async function providerState<T>(info: StackInfo, provider: ProviderName): Promise<T> {
  return ((await call(info, `/__state/${provider}`)) as { state: T }).state;
}

export async function seedProvider(info: StackInfo, provider: ProviderName, body: unknown): Promise<void> {
  await call(info, `/__state/${provider}`, { method: "POST", body: JSON.stringify(body) });
}

export interface FaultSpec {
  provider: ProviderName;
  method?: string;
  path?: string;
  status?: number;
  body?: unknown;
  retry_after?: number;
  delay_ms?: number;
  times?: number;
  rate?: number;
  reset?: boolean;
  after?: boolean;
}

export async function addFault(info: StackInfo, fault: FaultSpec): Promise<string> {
  return ((await call(info, "/__faults", { method: "POST", body: JSON.stringify(fault) })) as { fault: { id: string } }).fault.id;
}

export async function clearFaults(info: StackInfo): Promise<void> {
  await call(info, "/__faults", { method: "DELETE" });
}

export interface LoggedRequest {
  provider: string;
  method: string;
  path: string;
  status: number;
  time: string;
  fault_id?: string | null;
  fault_after?: boolean;
}

export async function requestLog(info: StackInfo): Promise<LoggedRequest[]> {
  return ((await call(info, "/__requests")) as { requests: LoggedRequest[] }).requests;
}
