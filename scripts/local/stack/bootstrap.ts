// Brings a running cluster to "like a hosted project": platform roles/schemas/extensions,
// the Vault secrets job SQL reads (project_url, service_key), then migrations through the real
// Supabase CLI so the migration history is the CLI's own.
import postgres from "npm:postgres@^3.4.9";
import { dbUrl, type StackConfig } from "./config.ts";
import { join } from "./paths.ts";

export async function applyPlatform(cfg: StackConfig): Promise<void> {
  const sql = postgres(dbUrl(cfg), { max: 1, onnotice: () => {} });
  try {
    await sql.file(join(cfg.projectRoot, "supabase", "local", "platform.sql"));
  } finally {
    await sql.end();
  }
}

/** Creates or updates the named Vault secrets (vault has no upsert of its own). */
export async function setVaultSecrets(cfg: StackConfig, secrets: Record<string, string>): Promise<void> {
  const sql = postgres(dbUrl(cfg), { max: 1, onnotice: () => {} });
  try {
    await sql.begin(async (tx) => {
      for (const [name, value] of Object.entries(secrets)) {
        const [row] = await tx`select id from vault.secrets where name = ${name}`;
        if (row) await tx`select vault.update_secret(${row.id}::uuid, ${value})`;
        else await tx`select vault.create_secret(${value}, ${name}, 'set by the Duework local stack')`;
      }
    });
  } finally {
    await sql.end();
  }
}

export function supabaseCli(cfg: StackConfig): string {
  return join(cfg.projectRoot, "node_modules", ".bin", "supabase");
}

/** `supabase db push` against the local database; returns the CLI's output. */
export async function pushMigrations(cfg: StackConfig): Promise<string> {
  const out = await new Deno.Command(supabaseCli(cfg), {
    args: ["db", "push", `--remote=${dbUrl(cfg)}`, "--yes", "--skip-vault", "--workdir", cfg.projectRoot],
    cwd: cfg.projectRoot,
    env: { PGSSLMODE: "disable", SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr)).trim();
  if (!out.success) {
    // A local database migrated from a history that no longer exists (the migrations were
    // consolidated once, before the first release): its data is throwaway, so say how to reset it.
    const hint = text.includes("Remote migration versions not found in local migrations directory")
      ? `\n\nThe local database in ${cfg.stateDir} was migrated from an older migration history. ` +
        `Local data is disposable: stop the stack and remove that directory to start fresh ` +
        `(npm run stack:down${cfg.profile === "dev" ? "" : ` -- --profile ${cfg.profile}`} && rm -rf ${cfg.stateDir}).`
      : "";
    throw new Error(`supabase db push failed (exit ${out.code}):\n${text}${hint}`);
  }
  return text;
}

/** Dev-only demo data: supabase/seed.sql if present. It must be idempotent (it runs every start). */
export async function applySeed(cfg: StackConfig): Promise<boolean> {
  const seed = join(cfg.projectRoot, "supabase", "seed.sql");
  try {
    await Deno.stat(seed);
  } catch {
    return false;
  }
  const sql = postgres(dbUrl(cfg), { max: 1, onnotice: () => {} });
  try {
    await sql.file(seed);
  } finally {
    await sql.end();
  }
  return true;
}
