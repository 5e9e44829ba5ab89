// CPU accounting from Linux procfs: utime + stime (all threads) of process trees, sampled by the
// orchestrator at "go" and at "drained". A tree's time is the sum over its live members of their
// own time plus the time of children they have already reaped (cutime + cstime), so backends or
// workers that exit between the samples are still counted.
import { readdirSync, readFileSync } from "node:fs";

export let ticksPerSecond = 100;
try {
  const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped", stderr: "null" }).outputSync();
  ticksPerSecond = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
} catch { /* Linux default */ }

/** One process's /proc/<pid>/stat times, in clock ticks (ticksPerSecond). */
export interface ProcStat {
  ppid: number;
  own: number;
  reaped: number;
}

/** Every live process of the host, by PID. */
export function scanProcs(): Map<number, ProcStat> {
  const procs = new Map<number, ProcStat>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // comm may contain spaces and parentheses: fields resume after the last ')'.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    procs.set(Number(entry), {
      ppid: Number(f[1]),
      own: Number(f[11]) + Number(f[12]),
      reaped: Number(f[13]) + Number(f[14]),
    });
  }
  return procs;
}

/** Named process roots; "tree" roots include every descendant, "own" roots only themselves. */
export interface CpuRoots {
  [name: string]: { pid: number; tree: boolean } | undefined;
}

export type CpuSample = Record<string, number> & { hostBusy: number; hostTotal: number };

function hostCpu(): { busy: number; total: number } {
  const v = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - v[3] - v[4]) / ticksPerSecond, total: total / ticksPerSecond };
}

/** `root` and every live descendant of it (root first; empty if root is gone). */
export function processTree(procs: Map<number, ProcStat>, root: number): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) {
    if (!children.has(p.ppid)) children.set(p.ppid, []);
    children.get(p.ppid)!.push(pid);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    if (!procs.has(pid)) continue;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU ticks of a tree: each member's own time plus what it reaped from exited children. */
export function treeTicks(procs: Map<number, ProcStat>, members: number[]): number {
  return members.reduce((a, pid) => a + procs.get(pid)!.own + procs.get(pid)!.reaped, 0);
}

export function sampleCpu(roots: CpuRoots): CpuSample {
  const procs = scanProcs();
  const out: Record<string, number> = {};
  for (const [name, root] of Object.entries(roots)) {
    if (!root) continue;
    const ticks = root.tree ? treeTicks(procs, processTree(procs, root.pid)) : procs.get(root.pid)?.own ?? 0;
    out[name] = ticks / ticksPerSecond;
  }
  const host = hostCpu();
  return { ...out, hostBusy: host.busy, hostTotal: host.total } as CpuSample;
}

/** b − a per name, in CPU-seconds; hostBusyPct = busy share of all cores between the samples. */
export function cpuDelta(a: CpuSample, b: CpuSample): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of Object.keys(b)) {
    if (k === "hostBusy" || k === "hostTotal") continue;
    if (typeof a[k] === "number") d[k] = b[k] - a[k];
  }
  const total = b.hostTotal - a.hostTotal;
  d.hostBusyPct = total > 0 ? (100 * (b.hostBusy - a.hostBusy)) / total : 0;
  return d;
}

/** PID of the postmaster (first line of postmaster.pid). */
export function postmasterPid(pgData: string): number {
  return Number(readFileSync(`${pgData}/postmaster.pid`, "utf8").split("\n")[0]);
}

/** A live process whose command line contains every needle (fallback when children.json lags). */
function findLivePid(needles: string[]): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      if (needles.every((n) => cmd.includes(n))) return Number(entry);
    } catch { /* exited */ }
  }
  return undefined;
}

/** The stack's service processes from children.json, recognised by their script path. */
export function stackServicePids(childrenJson: string): { netWorker?: number; functions?: number; sandbox?: number } {
  const recorded = JSON.parse(readFileSync(childrenJson, "utf8")) as { pid: number; cmdline: string }[];
  const runDir = childrenJson.replace(/\/children\.json$/, "");
  const find = (needle: string) =>
    recorded.find((r) => r.cmdline.includes(needle))?.pid ?? findLivePid([needle, runDir]);
  return {
    netWorker: find("net-worker/main.ts"),
    functions: find("functions-server/main.ts"),
    sandbox: find("sandbox/main.ts"),
  };
}
