// This stack's own processes, found by pid in the files the stack keeps: run/children.json (what
// the supervisor started) and run/function-workers.json (the functions server's workers). Never
// by matching process names: another stack on this machine runs the very same commands.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { StackInfo } from "./stack.ts";

export interface RecordedChild {
  name: string;
  pid: number;
  cmdline: string;
}

function runDir(info: StackInfo): string {
  // Stacks started before run_dir was in stack.json keep the same layout.
  return info.run_dir ?? join(dirname(process.env.DUEWORK_STACK_JSON ?? ""), "run");
}

/** Command line of a live process (zombies count as dead), or null. */
export function cmdline(pid: number): string | null {
  try {
    if (/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"))) return null;
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return null;
  }
}

export const isAlive = (pid: number) => cmdline(pid) !== null;

/** Pids of this stack's live worker processes of one function (booting and retiring ones too). */
export function functionWorkerPids(info: StackInfo, name: string): number[] {
  const all = JSON.parse(readFileSync(join(runDir(info), "function-workers.json"), "utf8")) as Record<string, number[]>;
  // The file could be a killed server's: keep only pids that still are function workers.
  return (all[name] ?? []).filter((pid) => cmdline(pid)?.includes("functions-server/worker-bootstrap.ts"));
}

/** Kills this stack's workers of one function (to simulate a crash); returns their pids. */
export function killFunctionWorkers(info: StackInfo, name: string, signal: NodeJS.Signals = "SIGKILL"): number[] {
  const pids = functionWorkerPids(info, name);
  for (const pid of pids) process.kill(pid, signal);
  return pids;
}

/** What the supervisor recorded, or throws if it has no live process of that name. */
export function stackChild(info: StackInfo, name: string): RecordedChild {
  const all = JSON.parse(readFileSync(join(runDir(info), "children.json"), "utf8")) as RecordedChild[];
  const child = all.find((c) => c.name === name);
  if (!child) throw new Error(`children.json has no "${name}": ${JSON.stringify(all)}`);
  return child;
}

/**
 * SIGKILLs the functions server by the pid the supervisor recorded (after checking the pid still
 * runs that command). Returns its pid and its workers' pids: they exit on their own once their
 * stdin (a pipe from the server) reaches EOF.
 */
export function killFunctionsServer(info: StackInfo): { pid: number; workers: number[] } {
  const server = stackChild(info, "functions");
  if (cmdline(server.pid) !== server.cmdline) throw new Error(`pid ${server.pid} is no longer the functions server`);
  const all = JSON.parse(readFileSync(join(runDir(info), "function-workers.json"), "utf8")) as Record<string, number[]>;
  const workers = Object.values(all).flat().filter(isAlive);
  process.kill(server.pid, "SIGKILL");
  return { pid: server.pid, workers };
}

/** Waits until none of the pids is alive; returns the ones still alive at the timeout. */
export async function waitForExit(pids: number[], timeoutMs = 5_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter(isAlive);
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const PG_BIN = "/usr/lib/postgresql/15/bin";

/** argv running a Postgres binary as the postgres OS user when we are root (it refuses root). */
export function asPostgres(binary: string, args: string[]): string[] {
  if (process.getuid?.() !== 0) return [binary, ...args];
  const id = (flag: string) => execFileSync("id", [flag, "postgres"]).toString().trim();
  return ["setpriv", `--reuid=${id("-u")}`, `--regid=${id("-g")}`, "--init-groups", "--", binary, ...args];
}

/** `pg_ctl stop -m immediate` on this stack's cluster: Postgres exits without a checkpoint. */
export function stopPostgresImmediately(info: StackInfo): void {
  const pgData = info.pg_data ?? join(dirname(runDir(info)), "pgdata");
  const [cmd, ...args] = asPostgres(`${PG_BIN}/pg_ctl`, ["-D", pgData, "stop", "-m", "immediate"]);
  execFileSync(cmd, args, { stdio: "pipe" });
}
