// One supervisor per data directory, recorded in run/supervisor.pid.
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import type { StackConfig } from "./config.ts";
import { processCmdline } from "./processes.ts";

/** pid of the live supervisor of this profile, or null (a stale pid file is removed). */
export async function runningSupervisor(cfg: StackConfig): Promise<number | null> {
  if (!existsSync(cfg.supervisorPidFile)) return null;
  const pid = Number((await Deno.readTextFile(cfg.supervisorPidFile)).trim());
  const cmd = Number.isInteger(pid) ? processCmdline(pid) : null;
  if (cmd && cmd.includes("scripts/start.ts")) return pid;
  await rm(cfg.supervisorPidFile, { force: true });
  return null;
}

export async function claimSupervisor(cfg: StackConfig): Promise<void> {
  await writeFile(cfg.supervisorPidFile, `${Deno.pid}\n`);
}

export async function releaseSupervisor(cfg: StackConfig): Promise<void> {
  await rm(cfg.supervisorPidFile, { force: true });
}
