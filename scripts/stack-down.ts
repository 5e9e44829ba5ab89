// `npm run stack:down`: stops the background stack of a profile. Safe to run twice: with nothing
// running it only removes stale pid files and any leftovers of a killed supervisor.
import { parseArgs } from "node:util";
import { rm } from "node:fs/promises";
import { profileOrExit, stackConfig } from "./local/stack/config.ts";
import { runningSupervisor } from "./local/stack/lock.ts";
import { processCmdline } from "./local/stack/processes.ts";

const { values } = parseArgs({ args: Deno.args, options: { profile: { type: "string", default: "dev" } } });
const cfg = stackConfig(profileOrExit(values.profile));
const pid = await runningSupervisor(cfg);
if (pid === null) {
  await rm(cfg.stackJson, { force: true });
  console.log(`No Duework stack (profile ${cfg.profile}) is running.`);
  Deno.exit(0);
}
console.log(`Stopping the Duework stack (profile ${cfg.profile}, pid ${pid})…`);
Deno.kill(pid, "SIGTERM");
const deadline = Date.now() + 60_000;
while (processCmdline(pid) !== null) {
  if (Date.now() > deadline) {
    console.error(`The stack (pid ${pid}) did not stop within 60 s; see ${cfg.logDir}/stack.log`);
    Deno.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}
console.log("Stopped.");
