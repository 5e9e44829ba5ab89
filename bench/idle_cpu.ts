// CPU of the whole Postgres cluster over a window, from /proc (bench/cpu.ts): the postmaster and
// every descendant, each its own utime + stime plus what it reaped from exited children
// (cutime + cstime), so backends that start and exit inside the window (pg_cron's connection per
// run, dblink's per heartbeat) are counted in full. The window's first and last samples give the
// totals; /proc is also sampled every `everyMs` to count the backends seen coming and going.
import { postmasterPid, type ProcStat, processTree, scanProcs, ticksPerSecond, treeTicks } from "./cpu.ts";

export interface ClusterCpu {
  wallMs: number;
  /** utime + stime of every process of the cluster, including exited ones. */
  totalMs: number;
  /** Of totalMs: own time of the processes alive at both ends of the window, by PID. */
  longLivedMs: Map<number, number>;
  /** Of totalMs: processes that started or exited inside the window (total − long-lived). */
  comeAndGoMs: number;
  /** Processes of the cluster first seen inside the window (a lower bound: samples miss short ones). */
  newProcessesSeen: number;
  samples: number;
}

export interface ClusterCpuMeter {
  stop(): ClusterCpu;
}

interface Sample {
  at: number;
  procs: Map<number, ProcStat>;
  members: number[];
}

function sample(root: number): Sample {
  const procs = scanProcs();
  return { at: performance.now(), procs, members: processTree(procs, root) };
}

export function meterClusterCpu(pgData: string, everyMs = 200): ClusterCpuMeter {
  const root = postmasterPid(pgData);
  const first = sample(root);
  if (first.members.length === 0) throw new Error(`the postmaster (pid ${root}) is not running`);
  const seen = new Set(first.members);
  let newSeen = 0;
  let samples = 1;
  const timer = setInterval(() => {
    samples++;
    for (const pid of sample(root).members) {
      if (!seen.has(pid)) {
        seen.add(pid);
        newSeen++;
      }
    }
  }, everyMs);
  return {
    stop(): ClusterCpu {
      clearInterval(timer);
      const last = sample(root);
      samples++;
      const ms = (ticks: number) => (ticks * 1000) / ticksPerSecond;
      const totalMs = ms(treeTicks(last.procs, last.members) - treeTicks(first.procs, first.members));
      const longLivedMs = new Map<number, number>();
      const atStart = new Set(first.members);
      for (const pid of last.members) {
        if (!atStart.has(pid)) {
          if (!seen.has(pid)) newSeen++;
          continue;
        }
        // Own time only: what the postmaster reaped is the time of processes that came and went.
        longLivedMs.set(pid, ms(last.procs.get(pid)!.own - first.procs.get(pid)!.own));
      }
      const longSum = [...longLivedMs.values()].reduce((x, y) => x + y, 0);
      return {
        wallMs: last.at - first.at,
        totalMs,
        longLivedMs,
        comeAndGoMs: totalMs - longSum,
        newProcessesSeen: newSeen,
        samples,
      };
    },
  };
}
