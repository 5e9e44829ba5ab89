// `supabase db advisors` (Supabase's splinter lints) against a local database. Any finding at any
// level, or a failure to run the lints at all, counts as a failure, except `unused_index`: it
// reads pg_stat_user_indexes, so on a freshly created test database it flags every index that the
// tests happened not to scan (prune and health indexes, foreign-key indexes). It is reported, not failed.
import { dbUrl, type StackConfig } from "./config.ts";
import { supabaseCli } from "./bootstrap.ts";

export interface AdvisorsResult {
  ok: boolean;
  report: string;
}

export async function runAdvisors(cfg: StackConfig): Promise<AdvisorsResult> {
  const out = await new Deno.Command(supabaseCli(cfg), {
    args: ["db", "advisors", `--remote=${dbUrl(cfg)}`, "--type", "all", "--level", "info", "--output-format", "json", "--workdir", cfg.projectRoot],
    cwd: cfg.projectRoot,
    env: { PGSSLMODE: "disable", SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  // The CLI prints a "Target: …" line before the JSON document.
  const jsonStart = stdout.indexOf("{");
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = JSON.parse(stdout.slice(jsonStart));
  } catch {
    return { ok: false, report: `could not read advisors output:\n${stdout}\n${stderr}` };
  }
  if (parsed?._tag === "Error" || "error" in (parsed ?? {})) {
    return { ok: false, report: `advisors failed to run: ${JSON.stringify(parsed)}` };
  }
  const all = findLints(parsed);
  if (all === undefined) return { ok: false, report: `unexpected advisors output: ${stdout}` };
  const lints = all.filter((l) => !WORKLOAD_DEPENDENT.has(l.name) && !isReviewedException(l));
  const ignored = all.filter((l) => WORKLOAD_DEPENDENT.has(l.name)).length;
  const reviewed = all.filter(isReviewedException).length;
  const note = (ignored > 0 ? ` (${ignored} unused_index notice(s) ignored: usage statistics of a fresh database)` : "") +
    (reviewed > 0 ? ` (${reviewed} reviewed exception(s): ${REVIEWED_EXCEPTIONS.map((e) => e.why).join("; ")})` : "");
  return {
    ok: lints.length === 0,
    report: lints.length === 0
      ? `0 findings (security + performance, all levels)${note}`
      : `${lints.length} finding(s)${note}:\n` + lints.map((l) => `  [${l.level}] ${l.name}: ${l.detail}`).join("\n"),
  };
}

/** Lints whose result depends on the workload the database has seen, not on the schema. */
const WORKLOAD_DEPENDENT = new Set(["unused_index"]);

type Lint = { name: string; level: string; detail: string };

/**
 * Findings reviewed one by one and kept, each with the reason (docs/jobs.md says the same).
 * jobs.run_and_wait is a procedure that COMMITs its tick before it waits (pg_net sends only
 * committed requests); Postgres forbids a SET clause on a procedure that commits, so it cannot pin
 * search_path. Its body names every object with its schema, it is SECURITY INVOKER, and no client
 * role may execute it (jobs_scheduling.test.sql).
 */
const REVIEWED_EXCEPTIONS = [
  { name: "function_search_path_mutable", detail: "Function `jobs.run_and_wait` has a role mutable search_path",
    why: "jobs.run_and_wait commits, so Postgres allows it no SET search_path" },
];

function isReviewedException(l: Lint): boolean {
  return REVIEWED_EXCEPTIONS.some((e) => e.name === l.name && e.detail === l.detail);
}

/** The lints array wherever the CLI's JSON envelope puts it. */
function findLints(doc: unknown): Lint[] | undefined {
  if (Array.isArray(doc)) return doc as Lint[];
  if (doc && typeof doc === "object") {
    for (const key of ["lints", "issues", "results", "data"]) {
      const v = (doc as Record<string, unknown>)[key];
      if (Array.isArray(v)) return v as Lint[];
      const nested = findLints(v);
      if (nested) return nested;
    }
  }
  return undefined;
}
