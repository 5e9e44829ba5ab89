// The one postgres.js client of a function instance, created on first use (a request rejected
// before it needs the database never opens a connection). SUPABASE_DB_URL is provided by the
// platform; prepare: false keeps it compatible with the transaction-mode pooler.

import postgres from "npm:postgres@^3.4.9";

let client: postgres.Sql | undefined;

export function getSql(): postgres.Sql {
  if (client === undefined) {
    const url = Deno.env.get("SUPABASE_DB_URL");
    if (!url) throw new Error("SUPABASE_DB_URL is not set");
    client = postgres(url, { prepare: false, max: 10 });
  }
  return client;
}

// postgres.js connection failures and the SQLSTATEs of a server that is shutting down, crashed
// or still recovering: the statement did not run, or its outcome is unknown. Anything else
// (constraint violations, lease lost, bad input) is an answer and is never retried.
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT",
  "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "57P01", "57P02", "57P03",
]);

export function isConnectionError(err: unknown): boolean {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" && (CONNECTION_CODES.has(code) || code.startsWith("08"));
}

/** Waits between retries while the database is away: about 16 s in all, which covers a
 * crash restart of the server (the local stack's supervisor restarts it after 1 s). */
export const DB_RETRY_DELAYS_MS: readonly number[] = [200, 500, 1_000, 2_000, 4_000, 8_000];

/** Runs fn, and again after each delay while it fails with a connection error. A retried
 * statement may have committed the first time: callers retry only what is safe to repeat
 * (outcome calls are refused with "lease lost" the second time; settling a batch is idempotent). */
export async function retryWhileDisconnected<T>(fn: () => Promise<T>, delaysMs: readonly number[] = DB_RETRY_DELAYS_MS): Promise<T> {
  for (const delay of delaysMs) {
    try {
      return await fn();
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  return await fn();
}
