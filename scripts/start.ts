// `npm start`: the whole local stack in the foreground, logs streamed, Ctrl-C stops everything.
// Also the process `npm run stack:up` runs in the background (--background: quieter banner).
import { parseArgs } from "node:util";
import { profileOrExit, stackConfig } from "./local/stack/config.ts";
import { consoleSink } from "./local/stack/console.ts";
import { claimSupervisor, releaseSupervisor, runningSupervisor } from "./local/stack/lock.ts";
import { mkdir } from "node:fs/promises";
import { createStack, type StackJson } from "./local/stack/supervisor.ts";
import { PrerequisiteError } from "./local/stack/prerequisites.ts";
import { PortInUseError } from "./local/stack/ports.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    profile: { type: "string", default: "dev" },
    background: { type: "boolean", default: false },
    "no-seed": { type: "boolean", default: false },
  },
});
const cfg = stackConfig(profileOrExit(values.profile));
const sink = consoleSink();

function banner(info: StackJson): string {
  return [
    "",
    "Duework local stack is running.",
    "",
    `  Database        ${info.db_url}`,
    `  Functions       ${info.functions_url}/<name>`,
    `  Sandbox control ${info.sandbox_url}  (GET /__requests, POST /__faults)`,
    ...Object.entries(info.providers).map(([p, url]) => `    ${p.padEnd(16)}${url}`),
    `  Stack info      ${cfg.stackJson}  (keys for clients and tests)`,
    "",
    "What to try next:",
    `  psql '${info.db_url}' -c "select refresh_expired_youtube_tokens()"   # refresh the demo YouTube tokens now`,
    `  psql '${info.db_url}' -c "select creator_unique_identifier, status, access_token_expires_at from social_accounts"`,
    `  psql '${info.db_url}' -c "select * from jobs.health"`,
    `  curl ${info.sandbox_url}/__requests?provider=google_oauth`,
    "  npm test            # every test, on its own stack (ports +1000)",
    "",
    values.background ? "Stop it with: npm run stack:down" : "Press Ctrl-C to stop everything.",
    "",
  ].join("\n");
}

const other = await runningSupervisor(cfg);
if (other !== null) {
  console.error(
    `A Duework stack (profile ${cfg.profile}) is already running from this directory (pid ${other}).\n` +
      "Stop it with `npm run stack:down`" + (cfg.profile === "test" ? " -- --profile test" : "") + ", or use it as is.",
  );
  Deno.exit(1);
}
await mkdir(cfg.socketDir, { recursive: true });
await claimSupervisor(cfg);

const stack = createStack(cfg, { seed: cfg.profile === "dev" && !values["no-seed"], sink });
let shuttingDown = false;
const shutdown = async (code: number) => {
  if (shuttingDown) return;
  shuttingDown = true;
  sink("stack", "stopping…");
  await stack.stop();
  await releaseSupervisor(cfg);
  sink("stack", "stopped");
  Deno.exit(code);
};
for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => shutdown(0));

try {
  const started = Date.now();
  const info = await stack.start();
  sink("stack", `ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(banner(info));
  const err = await stack.fatal;
  sink("stack", err.message);
  await shutdown(1);
} catch (e) {
  if (shuttingDown) await new Promise(() => {}); // shutdown() exits the process
  const known = e instanceof PrerequisiteError || e instanceof PortInUseError;
  console.error(`\n${known ? (e as Error).message : (e as Error).stack ?? String(e)}\n`);
  await releaseSupervisor(cfg);
  Deno.exit(1);
}
