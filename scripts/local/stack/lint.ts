// `supabase db lint` (plpgsql_check) over Duework's schemas: every PL/pgSQL function is compiled
// and checked; any warning or error fails.
import { dbUrl, type StackConfig } from "./config.ts";
import { supabaseCli } from "./bootstrap.ts";

/** Schemas that hold Duework's functions (the platform stand-ins are not ours to lint). */
export const LINTED_SCHEMAS = ["public", "jobs", "social", "instagram", "bookings", "outreach"];

export async function runLint(cfg: StackConfig): Promise<{ ok: boolean; report: string }> {
  const out = await new Deno.Command(supabaseCli(cfg), {
    args: ["db", "lint", `--remote=${dbUrl(cfg)}`, "--schema", LINTED_SCHEMAS.join(","), "--level", "warning",
      "--fail-on", "warning", "--workdir", cfg.projectRoot],
    cwd: cfg.projectRoot,
    env: { PGSSLMODE: "disable", SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  return {
    ok: out.success,
    report: out.success ? `0 findings (${LINTED_SCHEMAS.join(", ")})` : `${stdout}\n${stderr}`,
  };
}
