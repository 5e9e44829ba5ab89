// A fingerprint of every row the project holds, to assert that an attack changed nothing.
//
// Every ordinary or partitioned table of every schema is covered except those whose rows the
// platform's own machinery writes by itself: pg_catalog and information_schema, `cron` (pg_cron's
// run log) and `net` (pg_net's queue and responses, UNLOGGED). A request an attack slipped through
// would leave its trace in the project's tables (jobs.batch, jobs.run, jobs.task, the domain rows).
// A table's hash is md5 over the sorted md5 of each row's text form: independent of physical order
// and of xmin, so a VACUUM or a HOT update that changes nothing compares equal.
import type postgres from "postgres";

export const UNFINGERPRINTED_SCHEMAS = ["pg_catalog", "information_schema", "pg_toast", "cron", "net"];

/** Every table of the project, as "schema.table" (quoted identifiers not needed: all are plain). */
export async function projectTables(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<{ t: string }[]>`
    select format('%I.%I', n.nspname, c.relname) as t
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p') and not c.relispartition
       and n.nspname <> all (${UNFINGERPRINTED_SCHEMAS}) and n.nspname not like 'pg_temp%'
     order by 1`;
  return rows.map((r) => r.t);
}

export type Fingerprint = Map<string, string>;

export async function fingerprint(sql: postgres.Sql): Promise<Fingerprint> {
  const out: Fingerprint = new Map();
  for (const t of await projectTables(sql)) {
    const [r] = await sql.unsafe(
      `select count(*) || ':' || coalesce(md5(string_agg(h, '' order by h)), '') as fp
         from (select md5(x::text) as h from ${t} x) s`,
    );
    out.set(t, r.fp as string);
  }
  return out;
}

/** The tables whose fingerprint differs (added, removed or changed). */
export function changedTables(before: Fingerprint, after: Fingerprint): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names].filter((n) => before.get(n) !== after.get(n)).sort();
}
