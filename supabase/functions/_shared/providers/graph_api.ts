// Reading Graph API answers from graph.instagram.com (provider-contracts §2c/§2d): the error
// envelope {"error":{message,type,code,error_subcode,fbtrace_id}}, which codes mean "throttled",
// and how long to wait. Classification keys on error.code, not the HTTP status, because Graph
// sends throttling as 400 (sometimes 403) and never as 429.

import { parseJson, parseRetryAfter } from "../http.ts";

/** 4 app, 17 user, 32 page/account, 613 custom, 80002 Instagram business-use-case throttle. */
export const GRAPH_RATE_LIMIT_CODES: ReadonlySet<number> = new Set([4, 17, 32, 613, 80002]);
/** Graph's own "try again" codes. */
const GRAPH_TRANSIENT_CODES: ReadonlySet<number> = new Set([1, 2]);

export const GRAPH_TOKEN_INVALID_CODE = 190;

export interface GraphApiError {
  code: number | null;
  subcode: number | null;
  type: string | null;
  message: string | null;
  isTransient: boolean;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** The `error` object of a Graph answer, or null when the body is not a Graph error. */
export function parseGraphError(text: string): GraphApiError | null {
  const body = parseJson(text);
  if (body === null || typeof body !== "object" || Array.isArray(body)) return null;
  const e = (body as Record<string, unknown>).error;
  if (e === null || typeof e !== "object" || Array.isArray(e)) return null;
  const err = e as Record<string, unknown>;
  return {
    code: num(err.code),
    subcode: num(err.error_subcode),
    type: typeof err.type === "string" ? err.type : null,
    message: typeof err.message === "string" ? err.message : null,
    isTransient: err.is_transient === true,
  };
}

export function isRateLimit(e: GraphApiError | null): boolean {
  return e !== null && e.code !== null && GRAPH_RATE_LIMIT_CODES.has(e.code);
}

export function isTransientGraphError(e: GraphApiError | null): boolean {
  return e !== null && (e.isTransient || (e.code !== null && GRAPH_TRANSIENT_CODES.has(e.code)));
}

/**
 * Seconds to wait before calling again: Retry-After if present, else the longest
 * estimated_time_to_regain_access (minutes) in X-Business-Use-Case-Usage. X-App-Usage carries
 * percentages only, so an app-level throttle usually has no derivable wait (null).
 */
export function graphRetryAfterSeconds(headers: Headers, nowMs: number): number | null {
  const retryAfter = parseRetryAfter(headers.get("retry-after"), nowMs);
  if (retryAfter !== null) return retryAfter;
  const buc = parseJson(headers.get("x-business-use-case-usage") ?? "");
  if (buc === null || typeof buc !== "object" || Array.isArray(buc)) return null;
  let minutes: number | null = null;
  for (const entries of Object.values(buc as Record<string, unknown>)) {
    if (!Array.isArray(entries)) continue;
    for (const entry of entries) {
      const m = num((entry as Record<string, unknown> | null)?.estimated_time_to_regain_access);
      if (m !== null && m >= 0) minutes = Math.max(minutes ?? 0, m);
    }
  }
  return minutes === null ? null : Math.ceil(minutes * 60);
}

/** "HTTP 400: Graph error 190/463 (OAuthException): Error validating access token: …" */
export function describeGraphError(status: number, e: GraphApiError | null): string {
  if (e === null) return `HTTP ${status}`;
  const code = e.code === null ? "" : e.subcode === null ? ` ${e.code}` : ` ${e.code}/${e.subcode}`;
  const type = e.type ? ` (${e.type})` : "";
  return `HTTP ${status}: Graph error${code}${type}${e.message ? `: ${e.message}` : ""}`;
}
