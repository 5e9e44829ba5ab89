// Which code a measurement ran: HEAD, the last commit that changed the engine and the domain
// migrations (supabase/migrations), and whether they had uncommitted changes.
export interface CommitInfo {
  head: string;
  subject: string;
  /** Short sha of the last commit touching supabase/migrations. */
  migrations: string;
  /** supabase/ differed from HEAD when measured. */
  dirty: boolean;
}

function git(root: string, args: string[]): string {
  const out = new Deno.Command("git", { args: ["-C", root, ...args], stdout: "piped", stderr: "null" }).outputSync();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : "";
}

export function commitInfo(root: string): CommitInfo {
  return {
    head: git(root, ["rev-parse", "--short", "HEAD"]) || "unknown",
    subject: git(root, ["log", "-1", "--format=%s"]),
    migrations: git(root, ["log", "-1", "--format=%h", "--", "supabase/migrations"]) || "unknown",
    dirty: git(root, ["status", "--porcelain", "--", "supabase"]) !== "",
  };
}

/** The output of `date` (local time of the machine, as a person would note it). */
export function dateNow(): string {
  const out = new Deno.Command("date", { stdout: "piped", stderr: "null" }).outputSync();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : new Date().toString();
}
