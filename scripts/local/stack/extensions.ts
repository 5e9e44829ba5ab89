// Installs the local stand-ins for pg_net and supabase_vault (SQL-only extensions in
// supabase/local/extensions) into the server's extension directory, so migrations can say
// `create extension pg_net with schema extensions` exactly as they do on hosted Supabase.
import { existsSync } from "node:fs";
import { copyFile, readdir, readFile } from "node:fs/promises";
import { isRoot, PG_BIN } from "./os-user.ts";
import { join } from "./paths.ts";
import { PrerequisiteError } from "./prerequisites.ts";

export async function extensionDir(): Promise<string> {
  const out = await new Deno.Command(`${PG_BIN}/pg_config`, { args: ["--sharedir"], stdout: "piped" }).output();
  return join(new TextDecoder().decode(out.stdout).trim(), "extension");
}

async function sameContent(a: string, b: string): Promise<boolean> {
  if (!existsSync(b)) return false;
  const [x, y] = await Promise.all([readFile(a), readFile(b)]);
  return x.equals(y);
}

/** Copies changed files; returns their names (empty when everything was up to date). */
export async function installStandInExtensions(projectRoot: string, log: (line: string) => void): Promise<string[]> {
  const source = join(projectRoot, "supabase", "local", "extensions");
  const target = await extensionDir();
  const files = (await readdir(source)).filter((f) => f.endsWith(".control") || f.endsWith(".sql"));
  const stale: string[] = [];
  for (const f of files) {
    if (!(await sameContent(join(source, f), join(target, f)))) stale.push(f);
  }
  if (stale.length === 0) return [];
  if (!isRoot()) {
    throw new PrerequisiteError(
      `The local pg_net/supabase_vault stand-ins must be installed into ${target}. Run:\n\n  sudo cp ${stale.map((f) => join(source, f)).join(" ")} ${target}/\n\nthen run the command again.`,
    );
  }
  for (const f of stale) await copyFile(join(source, f), join(target, f));
  log(`installed stand-in extension files into ${target}: ${stale.join(", ")}`);
  return stale;
}
