// `npm run stack:up`: the same stack as `npm start`, in the background. Returns once everything is
// ready and .duework/stack.json is written; if it is already running, says so and succeeds.
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "./local/stack/paths.ts";
import { profileOrExit, stackConfig } from "./local/stack/config.ts";
import { runningSupervisor } from "./local/stack/lock.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { profile: { type: "string", default: "dev" }, "no-seed": { type: "boolean", default: false } },
});
const cfg = stackConfig(profileOrExit(values.profile));
const running = await runningSupervisor(cfg);
if (running !== null && existsSync(cfg.stackJson)) {
  console.log(`The Duework stack (profile ${cfg.profile}) is already running (pid ${running}); see ${cfg.stackJson}`);
  Deno.exit(0);
}
if (running !== null) {
  console.error(`A stack (pid ${running}) is starting or stuck; see ${join(cfg.logDir, "stack.log")}`);
  Deno.exit(1);
}

await mkdir(cfg.logDir, { recursive: true });
const logPath = join(cfg.logDir, "stack.log");
const logStart = (await Deno.stat(logPath).catch(() => ({ size: 0 }))).size;
// The supervisor must outlive this process and write straight into stack.log (a file, not a
// pipe to us), detached from the terminal's process group so Ctrl-C here does not reach it.
// Deno.Command cannot hand a file to a child's stdout, so a one-line sh does the redirection.
const argv = [Deno.execPath(), "run", "-A", join(cfg.projectRoot, "scripts", "start.ts"), "--background",
  "--profile", cfg.profile, ...(values["no-seed"] ? ["--no-seed"] : [])];
const launched = await new Deno.Command("sh", {
  args: ["-c", 'log="$1"; shift; setsid "$@" >>"$log" 2>&1 </dev/null &', "sh", logPath, ...argv],
  cwd: cfg.projectRoot,
}).output();
if (!launched.success) {
  console.error("could not launch the stack supervisor");
  Deno.exit(1);
}

async function newLog(): Promise<string> {
  const bytes = await Deno.readFile(logPath).catch(() => new Uint8Array());
  return new TextDecoder().decode(bytes.slice(logStart));
}

const started = Date.now();
let sawSupervisor = false;
while (Date.now() - started < 300_000) {
  const pid = await runningSupervisor(cfg);
  if (pid !== null) sawSupervisor = true;
  if (pid !== null && existsSync(cfg.stackJson)) {
    const info = JSON.parse(await Deno.readTextFile(cfg.stackJson));
    console.log(`Duework stack (profile ${cfg.profile}) is up in ${((Date.now() - started) / 1000).toFixed(1)} s (pid ${pid}).`);
    console.log(`  Database   ${info.db_url}\n  Functions  ${info.functions_url}\n  Sandbox    ${info.sandbox_url}`);
    console.log(`  Stack info ${cfg.stackJson}\n  Logs       ${cfg.logDir}/\nStop it with: npm run stack:down${cfg.profile === "test" ? " -- --profile test" : ""}`);
    Deno.exit(0);
  }
  if (sawSupervisor && pid === null) break; // it started and died
  if (!sawSupervisor && Date.now() - started > 30_000) break; // it never got going
  await new Promise((r) => setTimeout(r, 100));
}
console.error(`The stack did not come up. Output of this attempt (${logPath}):\n${await newLog()}`);
Deno.exit(1);
