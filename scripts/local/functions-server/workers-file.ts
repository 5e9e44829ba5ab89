/**
 * `function-workers.json`: the pids of this server's function worker processes, `{ name: pid[] }`,
 * rewritten whenever one starts or exits. Tests read it to kill exactly this stack's workers;
 * matching process names (`pgrep -f …/index.ts`) would hit other stacks on the same machine.
 */
import * as path from "node:path";

export interface WorkersFile {
  /** Writes the current pids (atomically: readers never see a half-written file). */
  update(): void;
  /** Removes the file (the server is stopping and its workers are gone). */
  remove(): void;
}

export function workersFile(file: string, pids: () => Record<string, number[]>, log: (line: string) => void): WorkersFile {
  const target = path.resolve(file);
  const tmp = `${target}.${Deno.pid}.tmp`;
  let warned = false;
  return {
    update() {
      try {
        Deno.writeTextFileSync(tmp, JSON.stringify(pids()) + "\n");
        Deno.renameSync(tmp, target);
      } catch (e) {
        // Never fail a request over bookkeeping; say so once.
        if (!warned) log(`warning: cannot write ${target}: ${(e as Error).message}`);
        warned = true;
      }
    },
    remove() {
      for (const f of [tmp, target]) {
        try {
          Deno.removeSync(f);
        } catch { /* not there */ }
      }
    },
  };
}
