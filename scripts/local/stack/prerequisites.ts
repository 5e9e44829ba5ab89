// What the stack needs from the OS. Missing Debian packages are installed when we are root (CI,
// containers); otherwise the user gets the exact command to run, and the stack does not start.
import { existsSync } from "node:fs";
import { isRoot, PG_BIN } from "./os-user.ts";

const SHARE = "/usr/share/postgresql/15";

/** Debian package → a file that proves it is installed. */
const PACKAGES: Record<string, string> = {
  "postgresql-15": `${PG_BIN}/postgres`,
  "postgresql-15-cron": `${SHARE}/extension/pg_cron.control`,
  "postgresql-15-pgtap": `${SHARE}/extension/pgtap.control`,
  "libtap-parser-sourcehandler-pgtap-perl": "/usr/bin/pg_prove",
  "postgresql-15-plpgsql-check": `${SHARE}/extension/plpgsql_check.control`,
};

export function missingPackages(): string[] {
  return Object.entries(PACKAGES).filter(([, file]) => !existsSync(file)).map(([pkg]) => pkg);
}

export function installCommand(packages: string[]): string {
  return `sudo apt-get update && sudo apt-get install -y ${packages.join(" ")}`;
}

async function aptGet(args: string[], log: (line: string) => void): Promise<void> {
  log(`apt-get ${args.join(" ")}`);
  const out = await new Deno.Command("apt-get", {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`apt-get ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

export class PrerequisiteError extends Error {}

export async function ensurePackages(log: (line: string) => void): Promise<void> {
  const missing = missingPackages();
  if (missing.length === 0) return;
  if (!isRoot()) {
    throw new PrerequisiteError(
      `Missing Debian packages: ${missing.join(", ")}.\nInstall them with:\n\n  ${installCommand(missing)}\n\nthen run the command again.`,
    );
  }
  log(`installing missing Debian packages: ${missing.join(" ")}`);
  await aptGet(["update", "-qq"], log);
  await aptGet(["install", "-y", "-qq", ...missing], log);
  const still = missingPackages();
  if (still.length) throw new PrerequisiteError(`apt-get finished but these are still missing: ${still.join(", ")}`);
}
