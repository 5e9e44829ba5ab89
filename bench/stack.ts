// The bench's own local stack (profile "bench": ports +2000, .duework/bench, fsync off like the
// test profile), started programmatically from an empty cluster and stopped at the end.
import { join } from "node:path";
import { stackConfig, type StackConfig } from "../scripts/local/stack/config.ts";
import { createStack, type Stack, type StackJson } from "../scripts/local/stack/supervisor.ts";
import { type CpuRoots, postmasterPid, stackServicePids } from "./cpu.ts";

export interface BenchStack {
  cfg: StackConfig;
  info: StackJson;
  stop(): Promise<void>;
  /** Process roots for CPU accounting (re-read each time: the supervisor restarts dead services). */
  cpuRoots(): CpuRoots;
}

export async function startBenchStack(): Promise<{ stack: Stack; ready: Promise<BenchStack> }> {
  const cfg = stackConfig("bench");
  const stack = createStack(cfg, {
    freshCluster: true,
    seed: false,
    // Everything is in the per-process log files under .duework/bench/logs; show the stack's own lines.
    sink: (name, line) => {
      if (name === "stack") console.log(`  stack: ${line}`);
    },
  });
  const ready = stack.start().then((info) => ({
    cfg,
    info,
    stop: () => stack.stop(),
    cpuRoots(): CpuRoots {
      const services = stackServicePids(join(cfg.socketDir, "children.json"));
      const tree = (pid: number | undefined) => (pid ? { pid, tree: true } : undefined);
      return {
        postgres: tree(postmasterPid(cfg.pgData)),
        netWorker: tree(services.netWorker),
        functions: tree(services.functions),
        sandbox: tree(services.sandbox),
        orchestrator: { pid: Deno.pid, tree: false },
      };
    },
  }));
  return { stack, ready };
}
