// run/children.json: the processes a supervisor started, `[{ name, pid, cmdline }]`, rewritten
// whenever one is (re)started. The next start kills what a SIGKILLed supervisor left behind, and
// tests find this stack's own processes by pid (never by matching names, which would hit other
// stacks on the machine).
import { existsSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { processCmdline } from "./processes.ts";

export interface RecordedChild {
  name: string;
  pid: number;
  /** Checked before killing, so a recycled pid is never hit. */
  cmdline: string;
}

/** Serialized writes (atomic rename), so a restart racing another never leaves a stale list. */
export function childrenRecorder(file: string): (children: { name: string; pid: number }[]) => Promise<void> {
  let chain = Promise.resolve();
  return (children) => {
    const snapshot: RecordedChild[] = children.map((c) => ({ name: c.name, pid: c.pid, cmdline: processCmdline(c.pid) ?? "" }));
    chain = chain.then(async () => {
      await writeFile(`${file}.tmp`, JSON.stringify(snapshot));
      await rename(`${file}.tmp`, file);
    }).catch(() => {});
    return chain;
  };
}

/** Kills processes recorded by a supervisor that died without cleaning up (e.g. SIGKILL). */
export async function killLeftoverChildren(file: string, log: (l: string) => void): Promise<void> {
  if (!existsSync(file)) return;
  const recorded = JSON.parse(await Deno.readTextFile(file)) as RecordedChild[];
  for (const { pid, cmdline } of recorded) {
    if (processCmdline(pid) === cmdline) {
      log(`stopping leftover process ${pid} from an earlier run`);
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* raced with its exit */ }
    }
  }
  await rm(file, { force: true });
}
