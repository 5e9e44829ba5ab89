// After a run: every secret in play searched for in every log file of the stack, in pg_net's
// queue and responses, and in every text or JSON column of the engine's tables. 0 hits expected.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { findSecrets, secretsInPlay } from "../tests/support/secrets.ts";
import { withDatabase } from "./context.ts";
import type { Ctx } from "./types.ts";

export interface SecretHit {
  where: string;
  secret: string;
}

export interface SecretScan {
  secrets: number;
  places: number;
  bytes: number;
  hits: SecretHit[];
}

function filesUnder(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

export async function scanForSecrets(ctx: Ctx, logDir: string): Promise<SecretScan> {
  const secrets = secretsInPlay(ctx.info as Parameters<typeof secretsInPlay>[0]);
  const hits: SecretHit[] = [];
  let places = 0;
  let bytes = 0;
  const look = (where: string, text: string) => {
    places++;
    bytes += text.length;
    for (const secret of findSecrets(text, secrets)) hits.push({ where, secret });
  };
  for (const file of filesUnder(logDir)) look(file.slice(logDir.length + 1), readFileSync(file, "utf8"));

  const columns = await withDatabase(ctx, "listing columns", () => ctx.sql()<{ schema: string; table: string; column: string }[]>`
    select c.table_schema as schema, c.table_name as table, c.column_name as column
      from information_schema.columns c
      join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
     where c.table_schema in ('jobs', 'net') and t.table_type = 'BASE TABLE'
       and c.data_type in ('text', 'json', 'jsonb', 'character varying')
     order by 1, 2, 3`);
  for (const c of columns) {
    // One string per column: every row's value, so a hit names the column.
    const [{ all }] = await ctx.sql().unsafe(
      `select coalesce(string_agg(${quote(c.column)}::text, E'\\n'), '') as all from ${quote(c.schema)}.${quote(c.table)}`,
    );
    look(`${c.schema}.${c.table}.${c.column}`, all as string);
  }
  return { secrets: secrets.length, places, bytes, hits };
}

const quote = (ident: string) => `"${ident.replaceAll('"', '""')}"`;
