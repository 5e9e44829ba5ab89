// Unipile's v1 error envelope (RFC 7807-like, provider-contracts §6):
//   { "title", "detail", "type": "errors/<name>", "status" }
// and the errors the fake answers with. v2's extra "object": "Error" / "req_id" are not v1.
// Titles and details are our wording; the types of the contract's table are documented, the
// others are marked UNVERIFIED where they are defined.

import { jsonResponse } from "../http.ts";

export interface UnipileErrorSpec {
  status: number;
  /** Without the "errors/" prefix. */
  name: string;
  title: string;
  detail: string;
}

export function unipileErrorBody(e: UnipileErrorSpec): Record<string, unknown> {
  return { title: e.title, detail: e.detail, type: `errors/${e.name}`, status: e.status };
}

export function unipileError(e: UnipileErrorSpec, headers: Record<string, string> = {}): Response {
  return jsonResponse(e.status, unipileErrorBody(e), headers);
}

const spec = (status: number, name: string, title: string, detail: string): UnipileErrorSpec => ({
  status,
  name,
  title,
  detail,
});

export const err = {
  // A missing or unknown X-API-KEY. The type Unipile uses is UNVERIFIED; "unauthorized" is
  // deliberately none of the account-disconnection types (disconnected_account,
  // invalid_credentials, expired_credentials), so a client cannot mistake a bad API key for a
  // LinkedIn account that needs reconnecting.
  unauthorized: () => spec(401, "unauthorized", "Unauthorized", "Missing or invalid access token (X-API-KEY)."),
  invalidParameters: (detail: string) => spec(400, "invalid_parameters", "Invalid parameters", detail),
  // The fake is strict about bodies: JSON where multipart is expected (and the reverse) is a
  // 400 invalid_parameters. Whether the real API rejects or tolerates the other encoding is
  // UNVERIFIED; strictness catches a client that would depend on the tolerance.
  wrongContentType: (expected: string, got: string) =>
    spec(400, "invalid_parameters", "Invalid parameters", `Expected a ${expected} body, got ${got || "none"}.`),
  tooManyCharacters: (field: string, max: number) =>
    spec(400, "too_many_characters", "Too many characters", `The ${field} exceeds ${max} characters.`),
  disconnectedAccount: () =>
    spec(
      401,
      "disconnected_account",
      "Disconnected account",
      "The account appears to be disconnected from the provider service.",
    ),
  expiredCredentials: () =>
    spec(401, "expired_credentials", "Expired credentials", "The account's credentials have expired; reconnect it."),
  // An account_id the API key does not know. 404 resource_not_found rather than 422: the account
  // is a resource the request names, and a lookup that finds nothing is Unipile's 404 (its other
  // "not found" answers). Both would be `dead` for linkedin-send; the exact answer is UNVERIFIED.
  accountNotFound: (id: string) => spec(404, "resource_not_found", "Resource not found", `Account ${id} not found.`),
  // An unknown LinkedIn member on GET /users/{identifier}: 404 resource_not_found (UNVERIFIED;
  // LinkedIn itself answers 404 for an unknown profile).
  userNotFound: (identifier: string) =>
    spec(404, "resource_not_found", "Resource not found", `User ${identifier} not found.`),
  notFound: (what: string) => spec(404, "resource_not_found", "Resource not found", `${what} not found.`),
  methodNotAllowed: (method: string, path: string) =>
    spec(405, "method_not_allowed", "Method not allowed", `${method} is not supported on ${path}.`),
  alreadyInvitedRecently: () =>
    spec(
      422,
      "already_invited_recently",
      "Already invited recently",
      "An invitation has already been sent recently to this recipient.",
    ),
  cannotResendYet: () =>
    spec(
      422,
      "cannot_resend_yet",
      "Cannot resend yet",
      "The invitation to this recipient was withdrawn; it cannot be sent again yet.",
    ),
  alreadyConnected: () =>
    spec(422, "already_connected", "Already connected", "The recipient is already a relation of this account."),
  limitExceeded: () =>
    spec(422, "limit_exceeded", "Limit exceeded", "The provider's limit for this action has been reached."),
  // An attendee / invitee the provider does not know (or a public identifier where a provider id
  // is required). The type is UNVERIFIED ("invalid_recipient"); it is a 422 like the other
  // recipient refusals, so linkedin-send marks the prospect failed rather than retrying.
  invalidRecipient: (id: string) =>
    spec(422, "invalid_recipient", "Invalid recipient", `The recipient ${id} cannot be reached.`),
  noConnectionWithRecipient: () =>
    spec(
      422,
      "no_connection_with_recipient",
      "No connection with recipient",
      "The recipient is not a relation of this account.",
    ),
  notAllowedInmail: () => spec(422, "not_allowed_inmail", "InMail not allowed", "This account cannot send InMails."),
  tooManyRequests: () =>
    spec(429, "too_many_requests", "Too many requests", "Too many requests; slow down and retry later."),
} as const;

/** Default body of a /__faults answer with this status, in Unipile's envelope. */
export function unipileFaultBody(status: number): Record<string, unknown> {
  if (status === 400) return unipileErrorBody(err.invalidParameters("Injected fault."));
  if (status === 401) return unipileErrorBody(err.disconnectedAccount());
  if (status === 404) return unipileErrorBody(err.notFound("Resource"));
  if (status === 422) return unipileErrorBody(err.limitExceeded());
  if (status === 429) return unipileErrorBody(err.tooManyRequests());
  // Unipile's 5xx types are UNVERIFIED (LinkedIn may also signal limits with a 500).
  if (status === 503) {
    return unipileErrorBody(spec(503, "service_unavailable", "Service unavailable", "Injected fault."));
  }
  if (status >= 500) {
    return unipileErrorBody(spec(status, "unexpected_error", "Unexpected error", "Injected fault."));
  }
  return unipileErrorBody(spec(status, "sandbox_fault", `HTTP ${status}`, "Injected fault."));
}
