// Reading and checking the parameters of a fake Unipile request: the account named by
// account_id (and its status), list limits, opaque cursors, date filters and body encodings.
// Limits follow the official SDK's schemas (unipile-node-sdk 1.9.3, common/query-parameters):
// relations 1..1000, chats and messages 1..250 (default 100), sent invitations 1..100 (default 10).

import type { SandboxRequest } from "../types.ts";
import { err, type UnipileErrorSpec } from "./unipile_errors.ts";
import type { UnipileAccount, UnipileState } from "./unipile_state.ts";

export type Checked<T> = { ok: true; value: T } | { ok: false; error: UnipileErrorSpec };

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const fail = <T>(error: UnipileErrorSpec): Checked<T> => ({ ok: false, error });

/**
 * The account a request acts for. A DISCONNECTED account answers 401 disconnected_account, a
 * CREDENTIALS one 401 expired_credentials (the status names are Unipile's account source
 * statuses; which 401 type each produces is our mapping). Unknown → 404 (see err.accountNotFound).
 */
export function accountFor(state: UnipileState, id: unknown): Checked<UnipileAccount> {
  if (typeof id !== "string" || id === "") return fail(err.invalidParameters("account_id is required."));
  const acc = state.accounts.get(id);
  if (acc === undefined) return fail(err.accountNotFound(id));
  if (acc.status === "DISCONNECTED") return fail(err.disconnectedAccount());
  if (acc.status === "CREDENTIALS") return fail(err.expiredCredentials());
  return ok(acc);
}

export function parseLimit(query: URLSearchParams, max: number, fallback: number): Checked<number | undefined> {
  const raw = query.get("limit");
  if (raw === null) return ok(undefined);
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 1 || n > max) {
    return fail(err.invalidParameters(`limit must be an integer between 1 and ${max} (default ${fallback}).`));
  }
  return ok(n);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Cursors are base64 (padded) JSON: the SDK's schema checks they are base64. Opaque to clients. */
export function encodeCursor(value: unknown): string {
  return btoa(String.fromCharCode(...encoder.encode(JSON.stringify(value))));
}

export function decodeCursor(raw: string | null): Checked<Record<string, unknown> | null> {
  if (raw === null) return ok(null);
  try {
    const bytes = Uint8Array.from(atob(raw), (c) => c.charCodeAt(0));
    const value = JSON.parse(decoder.decode(bytes));
    if (value !== null && typeof value === "object" && !Array.isArray(value)) return ok(value);
  } catch { /* below */ }
  return fail(err.invalidParameters("cursor is invalid."));
}

/**
 * after / before: the SDK types them UTCDateTimeMs, an ISO date-time exactly as
 * Date.prototype.toISOString writes it ("2026-12-03T10:00:00.000Z"); anything else is a 400.
 */
export function parseDate(query: URLSearchParams, name: string): Checked<number | undefined> {
  const raw = query.get(name);
  if (raw === null) return ok(undefined);
  const ms = Date.parse(raw);
  if (Number.isNaN(ms) || new Date(ms).toISOString() !== raw) {
    return fail(
      err.invalidParameters(`${name} must be an ISO 8601 UTC date-time with milliseconds (YYYY-MM-DDTHH:mm:ss.sssZ).`),
    );
  }
  return ok(ms);
}

/** The JSON object body, or an error for another encoding / a non-object. */
export function jsonBody(req: SandboxRequest): Checked<Record<string, unknown>> {
  if (req.contentType !== "application/json") return fail(err.wrongContentType("application/json", req.contentType));
  const b = req.body;
  if (b === null || typeof b !== "object" || Array.isArray(b)) {
    return fail(err.invalidParameters("The body must be a JSON object."));
  }
  return ok(b as Record<string, unknown>);
}

/** The multipart fields (repeated names are arrays), or an error for another encoding. */
export function multipartBody(req: SandboxRequest): Checked<Record<string, unknown>> {
  if (req.contentType !== "multipart/form-data") {
    return fail(err.wrongContentType("multipart/form-data", req.contentType));
  }
  const b = req.body;
  if (b === null || typeof b !== "object" || Array.isArray(b)) {
    return fail(err.invalidParameters("The multipart body could not be read."));
  }
  return ok(b as Record<string, unknown>);
}

/** A single text field of a multipart body (the last one if repeated); undefined if absent. */
export function field(body: Record<string, unknown>, name: string): string | undefined {
  const v = body[name];
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    const strings = v.filter((x): x is string => typeof x === "string");
    return strings[strings.length - 1];
  }
  return undefined;
}

/** A repeatable text field of a multipart body, as a list. */
export function fields(body: Record<string, unknown>, name: string): string[] {
  const v = body[name];
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return [];
}

/** Files of a multipart body (http.ts records them as {filename, type, size}). */
export function fileCount(body: Record<string, unknown>, name: string): number {
  const v = body[name];
  const list = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return list.filter((x) => x !== null && typeof x === "object").length;
}
