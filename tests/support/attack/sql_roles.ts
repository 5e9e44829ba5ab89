// What the client roles (anon, authenticated) can do in SQL with forged request.jwt.claims, for
// every table and every function the database has: enumerated from the catalog, so a module added
// later is covered without a line here. Each probe runs in one transaction that is rolled back.
import type postgres from "postgres";

/** Functions client roles ARE meant to execute, each with the reason. Everything else is refused. */
export const CLIENT_FUNCTIONS: Record<string, string> = {
  "auth.uid()": "the platform's RLS helper: policies call it as the client role",
  "auth.role()": "the platform's RLS helper",
  "auth.jwt()": "the platform's RLS helper",
};

/**
 * Relations a client role may read by design, each with the reason. pg_stat_statements grants
 * SELECT to PUBLIC and shows a role only its own statements' text (others': "<insufficient
 * privilege>"); it is the platform's extension, not the project's.
 */
export const CLIENT_READABLE: Record<string, string> = {
  "extensions.pg_stat_statements": "PUBLIC by the extension; other roles' query text is hidden",
  "extensions.pg_stat_statements_info": "PUBLIC by the extension; two counters, no data",
  // `npm test` installs pgTAP before this suite; its views read only the catalog, no project rows.
  "extensions.tap_funky": "PUBLIC by pgTAP (installed by the test suite); lists functions from the catalog",
  "extensions.pg_all_foreign_keys": "PUBLIC by pgTAP (installed by the test suite); lists foreign keys from the catalog",
};

/** Schemas whose functions are the platform's or the catalog's, not the project's. */
const SYSTEM_SCHEMAS = ["pg_catalog", "information_schema", "pg_toast"];

export interface Attacker {
  name: string;
  role: "anon" | "authenticated";
  claims: Record<string, unknown>;
}

export interface TableProbe {
  table: string;
  rowsAsOwner: number;
  /** What each statement did: "refused <sqlstate>" or "<n> rows". */
  select: string;
  insert: string;
  update: string;
  delete: string;
}

export async function allTables(sql: postgres.Sql) {
  return await sql<{ t: string; cols: string[] }[]>`
    select format('%I.%I', n.nspname, c.relname) as t,
           array(select quote_ident(a.attname) from pg_attribute a
                  where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
                  order by a.attnum) as cols
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname <> all (${SYSTEM_SCHEMAS})
       and n.nspname not like 'pg_temp%'
     order by 1`;
}

/** Runs `stmt` as the attacker in a savepoint: the rows it touched, or the SQLSTATE refusing it. */
async function attempt(tx: postgres.TransactionSql, stmt: string): Promise<string> {
  try {
    const r = await tx.savepoint(async (sp) => await sp.unsafe(stmt));
    const n = (r as unknown as { count: number }).count ?? r.length;
    return `${n} rows`;
  } catch (err) {
    return `refused ${(err as { code?: string }).code ?? String(err)}`;
  }
}

export async function probeTables(sql: postgres.Sql, attacker: Attacker): Promise<TableProbe[]> {
  const tables = await allTables(sql);
  const out: TableProbe[] = [];
  await sql.begin(async (tx) => {
    const owner = new Map<string, number>();
    for (const { t } of tables) {
      const [r] = await tx.unsafe(`select count(*)::int as n from ${t}`);
      owner.set(t, r.n as number);
    }
    await tx.unsafe(`set local role ${attacker.role}`);
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(attacker.claims)}, true)`;
    for (const { t, cols } of tables) {
      const col = cols[0];
      out.push({
        table: t,
        rowsAsOwner: owner.get(t)!,
        // count(*) of what the role sees: rows it must not see show up here.
        select: await attempt(tx, `select 1 from ${t}`),
        insert: await attempt(tx, `insert into ${t} default values`),
        update: col ? await attempt(tx, `update ${t} set ${col} = ${col}`) : "no columns",
        delete: await attempt(tx, `delete from ${t}`),
      });
    }
    // Nothing the probes did may stay.
    throw new RollbackProbe();
  }).catch((err) => {
    if (!(err instanceof RollbackProbe)) throw err;
  });
  return out;
}

class RollbackProbe extends Error {}

/** Updates of the columns a role was granted (e.g. notifications.read_at): they must reach 0 rows. */
export async function probeGrantedUpdates(sql: postgres.Sql, attacker: Attacker) {
  const grants = await sql<{ t: string; col: string }[]>`
    select format('%I.%I', table_schema, table_name) as t, quote_ident(column_name) as col
      from information_schema.column_privileges
     where grantee = ${attacker.role} and privilege_type = 'UPDATE'`;
  const out: { table: string; column: string; result: string }[] = [];
  await sql.begin(async (tx) => {
    await tx.unsafe(`set local role ${attacker.role}`);
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(attacker.claims)}, true)`;
    for (const g of grants) {
      out.push({ table: g.t, column: g.col, result: await attempt(tx, `update ${g.t} set ${g.col} = ${g.col}`) });
    }
    throw new RollbackProbe();
  }).catch((err) => {
    if (!(err instanceof RollbackProbe)) throw err;
  });
  return out;
}

/** Every function of the project (not an extension's, not the catalog's), with who may execute it. */
export async function projectFunctions(sql: postgres.Sql) {
  return await sql<{ fn: string; oid: number; nargs: number; trigger: boolean; anon: boolean; authenticated: boolean }[]>`
    select p.oid::regprocedure::text as fn, p.oid::int as oid, p.pronargs::int as nargs,
           p.prorettype = 'trigger'::regtype as trigger,
           has_function_privilege('anon', p.oid, 'EXECUTE') as anon,
           has_function_privilege('authenticated', p.oid, 'EXECUTE') as authenticated
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname <> all (${SYSTEM_SCHEMAS}) and p.prokind in ('f', 'p')
       and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                                                   and d.deptype = 'e')
     order by 1`;
}

/** Calls each zero-argument function as the attacker (rolled back): the refusal, or "ran". */
export async function callZeroArgFunctions(sql: postgres.Sql, attacker: Attacker, fns: string[]) {
  const out: { fn: string; result: string }[] = [];
  await sql.begin(async (tx) => {
    await tx.unsafe(`set local role ${attacker.role}`);
    await tx`select set_config('request.jwt.claims', ${JSON.stringify(attacker.claims)}, true)`;
    for (const fn of fns) {
      const r = await attempt(tx, `select ${fn.replace(/\(\)$/, "")}()`);
      out.push({ fn, result: r.startsWith("refused") ? r : "ran" });
    }
    throw new RollbackProbe();
  }).catch((err) => {
    if (!(err instanceof RollbackProbe)) throw err;
  });
  return out;
}
