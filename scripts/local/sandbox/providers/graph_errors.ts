// Graph API error envelope and throttling codes, as graph.instagram.com sends them
// (provider-contracts §2c/§2d). Shared by the instagram_graph fake's handlers and its
// default fault bodies so every error it emits has the same shape.

import { jsonResponse } from "../http.ts";

/** Throttling codes the fake can be told to answer with (fixture or POST /__state). */
export const RATE_LIMIT_CODES = [4, 17, 613, 80002] as const;
export type RateLimitCode = (typeof RATE_LIMIT_CODES)[number];

export interface GraphError {
  message: string;
  type: string;
  code: number;
  error_subcode?: number;
  is_transient?: boolean;
}

/** Graph puts a random trace id on every error; clients log it, nobody parses it. */
export function fbtraceId(): string {
  return "A" + crypto.randomUUID().replaceAll("-", "").slice(0, 22);
}

export function graphErrorBody(e: GraphError): { error: Record<string, unknown> } {
  return { error: { ...e, fbtrace_id: fbtraceId() } };
}

export function graphError(status: number, e: GraphError, headers: Record<string, string> = {}): Response {
  // Graph answers errors with a JSON body; WWW-Authenticate on OAuth errors is what
  // graph.facebook.com sends (UNVERIFIED for graph.instagram.com, harmless for clients).
  const extra: Record<string, string> = e.type === "OAuthException"
    ? { "www-authenticate": `OAuth "Facebook Platform" "invalid_token" "${e.message.replaceAll('"', "'")}"` }
    : {};
  return jsonResponse(status, graphErrorBody(e), { ...extra, ...headers });
}

/** Texts from the contract's table; 613's text is Graph's generic one (UNVERIFIED for IG). */
export function rateLimitError(code: RateLimitCode): GraphError {
  switch (code) {
    case 4:
      return { message: "(#4) Application request limit reached", type: "OAuthException", code, is_transient: true };
    case 17:
      return { message: "(#17) User request limit reached", type: "OAuthException", code, is_transient: true };
    case 613:
      return { message: "(#613) Calls to this api have exceeded the rate limit.", type: "OAuthException", code, is_transient: true };
    case 80002:
      return {
        message: "There have been too many calls to this Instagram account. Wait a bit and try again.",
        type: "OAuthException",
        code,
        is_transient: true,
      };
  }
}

/**
 * Usage headers of a throttled answer. Real Graph sends them "once enough calls have been made";
 * the fake sends them only when throttling. X-App-Usage for the app-level code 4,
 * X-Business-Use-Case-Usage (keyed by the IG user id) for the account-level ones. Exact key set
 * on graph.instagram.com is UNVERIFIED (contract §2d).
 */
export function usageHeaders(
  code: RateLimitCode,
  igUserId: string | null,
  regainMinutes: number,
): Record<string, string> {
  if (code === 4 || igUserId === null) {
    return { "x-app-usage": JSON.stringify({ call_count: 100, total_cputime: 12, total_time: 34 }) };
  }
  return {
    "x-business-use-case-usage": JSON.stringify({
      [igUserId]: [{
        type: "instagram",
        call_count: 100,
        total_cputime: 12,
        total_time: 34,
        estimated_time_to_regain_access: regainMinutes,
      }],
    }),
  };
}

/** Graph-shaped default bodies for POST /__faults without an explicit body. */
export function graphFaultBody(status: number): unknown {
  if (status === 400 || status === 429) return graphErrorBody(rateLimitError(4)); // Graph never sends 429; key on code
  if (status === 403) return graphErrorBody(rateLimitError(80002)); // some reports show 403 for throttling
  if (status === 401) {
    return graphErrorBody({
      message: "Invalid OAuth access token - Cannot parse access token",
      type: "OAuthException",
      code: 190,
    });
  }
  if (status === 404) {
    return graphErrorBody({ message: "Unknown path components", type: "OAuthException", code: 2500 });
  }
  if (status === 503) {
    return graphErrorBody({
      message: "(#2) Service temporarily unavailable",
      type: "OAuthException",
      code: 2,
      is_transient: true,
    });
  }
  if (status >= 500) {
    return graphErrorBody({
      message: "An unknown error has occurred.",
      type: "OAuthException",
      code: 1,
      is_transient: true,
    });
  }
  return graphErrorBody({ message: `Sandbox fault: HTTP ${status}`, type: "OAuthException", code: 1 });
}
