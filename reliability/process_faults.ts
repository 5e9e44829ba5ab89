// Process faults on this stack's own processes, found by the pids its supervisor recorded
// (never by name: another stack on the machine runs the same commands). The supervisor restarts
// each one; these helpers strike and then wait until the process is back.
import { cmdline, isAlive, killFunctionsServer, stackChild, stopPostgresImmediately } from "../tests/support/processes.ts";
import { sleep, withDatabase } from "./context.ts";
import type { Ctx } from "./types.ts";

export const PROCESS_FAULTS = ["postgres", "functions", "net-worker"] as const;
export type ProcessFault = typeof PROCESS_FAULTS[number];

export const describeFault: Record<ProcessFault, string> = {
  postgres: "Postgres stopped with pg_ctl -m immediate",
  functions: "functions server SIGKILLed",
  "net-worker": "net worker SIGKILLed",
};

/** Strikes; resolves once the process runs again (Postgres: answers a query). */
export async function strike(ctx: Ctx, fault: ProcessFault): Promise<void> {
  const info = ctx.info;
  switch (fault) {
    case "postgres":
      stopPostgresImmediately(info);
      await sleep(500);
      await withDatabase(ctx, "Postgres after an immediate stop", () => ctx.sql()`select 1`, 60_000);
      return;
    case "functions": {
      const { pid } = killFunctionsServer(info);
      await backAgain(ctx, "functions", pid);
      return;
    }
    case "net-worker": {
      const child = stackChild(info, "net-worker");
      if (cmdline(child.pid) !== child.cmdline) throw new Error(`pid ${child.pid} is no longer the net worker`);
      process.kill(child.pid, "SIGKILL");
      await backAgain(ctx, "net-worker", child.pid);
      return;
    }
  }
}

/** Waits until the supervisor recorded a new live process of that name (it restarts after 1 s). */
async function backAgain(ctx: Ctx, name: string, oldPid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const child = stackChild(ctx.info, name);
      if (child.pid !== oldPid && isAlive(child.pid)) return;
    } catch { /* children.json is being rewritten */ }
    if (Date.now() > deadline) throw new Error(`the supervisor did not restart ${name} within 30 s`);
    await sleep(100);
  }
}
