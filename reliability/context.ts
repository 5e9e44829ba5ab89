// A Ctx over a running stack: a Postgres client that is replaced after a restart, and a retry
// helper for the moments when the database is away.
import postgres from "npm:postgres@^3.4.9";
import type { Ctx, Sql, StackInfo } from "./types.ts";

const connect = (info: StackInfo): Sql => postgres(info.db_url, { max: 4, onnotice: () => {}, connect_timeout: 5 });

export function createCtx(info: StackInfo, run: string): Ctx & { close(): Promise<void> } {
  let sql = connect(info);
  return {
    info,
    run,
    sql: () => sql,
    async reconnect() {
      const old = sql;
      sql = connect(info);
      await old.end({ timeout: 0 }).catch(() => {});
    },
    close: () => sql.end({ timeout: 1 }),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` until it succeeds (reconnecting between tries) or `timeoutMs` passes. */
export async function withDatabase<T>(ctx: Ctx, what: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what}: the database kept failing for ${timeoutMs} ms: ${(e as Error).message}`);
      await sleep(250);
      await ctx.reconnect();
    }
  }
}
