// The machine and server facts printed in RESULTS.md.
import { cpus, totalmem } from "node:os";
import { readFileSync } from "node:fs";
import postgres from "npm:postgres@^3.4.9";

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  os: string;
  deno: string;
  node: string;
  loadAvg: number[];
  postgres: string;
  settings: Record<string, string>;
}

function nodeVersion(): string {
  try {
    const out = new Deno.Command("node", { args: ["--version"], stdout: "piped", stderr: "null" }).outputSync();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "unknown";
  }
}

export async function machineInfo(dbUrl: string): Promise<MachineInfo> {
  let os: string = Deno.build.os;
  try {
    os = readFileSync("/etc/os-release", "utf8").match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? os;
  } catch { /* keep */ }
  const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
  try {
    const [{ version }] = await sql`select version()`;
    const rows = await sql`select name, setting || coalesce(unit, '') as value from pg_settings
      where name in ('fsync','synchronous_commit','full_page_writes','shared_buffers','max_connections','wal_level','jit','work_mem','max_wal_size')
      order by name`;
    return {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      os,
      deno: Deno.version.deno,
      node: nodeVersion(),
      loadAvg: Deno.loadavg(),
      postgres: String(version),
      settings: Object.fromEntries(rows.map((r) => [r.name, r.value])),
    };
  } finally {
    await sql.end();
  }
}
