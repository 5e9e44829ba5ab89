// Postgres refuses to run as root. When the stack is started as root (CI, containers), every
// Postgres binary runs as the `postgres` OS user via setpriv, which execs in place, so the pid
// we hold is the real postmaster and signals reach it directly.
import { chown } from "node:fs/promises";

export const PG_BIN = "/usr/lib/postgresql/15/bin";

export function isRoot(): boolean {
  return Deno.uid() === 0;
}

export interface PgUser {
  uid: number;
  gid: number;
}

let cached: PgUser | undefined;

/** The uid/gid of the `postgres` OS user (created by Debian's postgresql packages). */
export async function postgresUser(): Promise<PgUser> {
  if (cached) return cached;
  const out = await new Deno.Command("id", { args: ["-u", "postgres"], stdout: "piped", stderr: "null" }).output();
  const outG = await new Deno.Command("id", { args: ["-g", "postgres"], stdout: "piped", stderr: "null" }).output();
  if (!out.success || !outG.success) {
    throw new Error("running as root but there is no `postgres` OS user; install postgresql-15 (apt-get install postgresql-15)");
  }
  cached = {
    uid: Number(new TextDecoder().decode(out.stdout).trim()),
    gid: Number(new TextDecoder().decode(outG.stdout).trim()),
  };
  return cached;
}

/** argv that runs `binary` as the postgres user when we are root, unchanged otherwise. */
export async function asPostgres(binary: string, args: string[]): Promise<string[]> {
  if (!isRoot()) return [binary, ...args];
  const u = await postgresUser();
  return ["setpriv", `--reuid=${u.uid}`, `--regid=${u.gid}`, "--init-groups", "--", binary, ...args];
}

/** Hand a directory we created to the postgres user (no-op when not root). */
export async function giveToPostgres(path: string): Promise<void> {
  if (!isRoot()) return;
  const u = await postgresUser();
  await chown(path, u.uid, u.gid);
}
