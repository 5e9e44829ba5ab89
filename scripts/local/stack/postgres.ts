// The stack's Postgres 15: a project-local cluster (initdb on first run, reused afterwards),
// pg_stat_statements and pg_cron preloaded, started as a foreground child so the supervisor
// owns its lifetime.
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import postgres from "npm:postgres@^3.4.9";
import { isThrowaway, type StackConfig } from "./config.ts";
import { asPostgres, giveToPostgres, PG_BIN } from "./os-user.ts";
import { join } from "./paths.ts";
import { type Child, type LineSink, processCmdline, spawnChild } from "./processes.ts";

async function run(argv: string[], what: string): Promise<string> {
  const [cmd, ...args] = argv;
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${what} failed (exit ${out.code}):\n${text}`);
  return text;
}

/** Settings every start writes to duework.conf (included from postgresql.conf). */
function serverSettings(cfg: StackConfig): string {
  const lines = [
    "# Written by the Duework local stack on every start; edit scripts/local/stack/postgres.ts instead.",
    "listen_addresses = '127.0.0.1'",
    "max_connections = 200",
    // Hosted Supabase preloads (in this order) pg_stat_statements, pg_stat_monitor, pgaudit,
    // plpgsql, plpgsql_check, pg_cron, pg_net, …; the ones Debian's Postgres 15 has here:
    "shared_preload_libraries = 'pg_stat_statements, pg_cron'",
    // pg_cron runs jobs in this database, like hosted Supabase; 1.4 schedules in GMT (= UTC).
    "cron.database_name = 'postgres'",
    "cron.host = '127.0.0.1'",
    "timezone = 'UTC'",
    "log_timezone = 'UTC'",
    "log_line_prefix = '%m [%p] '",
    "log_min_messages = warning",
    "cron.log_min_messages = warning",
    // pg_net's settings with pg_net's defaults. The real ones are defined by the extension's
    // library; these placeholders make `show`, `alter system set/reset` work the same, and the
    // local worker (scripts/local/net-worker/settings.ts) reads them.
    "pg_net.batch_size = 200",
    "pg_net.ttl = '6 hours'",
    "pg_net.database_name = 'postgres'",
    "pg_net.username = ''",
  ];
  if (isThrowaway(cfg.profile)) {
    // Throwaway test/bench data: no fsync (an OS crash may lose it). synchronous_commit stays on,
    // as on hosted projects: a commit must survive a Postgres crash (`pg_ctl stop -m immediate`),
    // which the crash tests do; without fsync it costs a write(), not a flush.
    lines.push("fsync = off", "full_page_writes = off");
  }
  return lines.join("\n") + "\n";
}

export async function ensureCluster(cfg: StackConfig, log: (line: string) => void): Promise<"created" | "reused"> {
  await mkdir(cfg.stateDir, { recursive: true });
  for (const dir of [cfg.socketDir, cfg.logDir]) {
    await mkdir(dir, { recursive: true });
    await giveToPostgres(dir);
  }
  let created: "created" | "reused" = "reused";
  if (!existsSync(join(cfg.pgData, "PG_VERSION"))) {
    if (existsSync(cfg.pgData)) {
      throw new Error(
        `${cfg.pgData} exists but is not a Postgres data directory (no PG_VERSION). ` +
          `Remove it (rm -rf ${cfg.pgData}) to let the stack create a fresh cluster.`,
      );
    }
    log(`creating a new Postgres cluster in ${cfg.pgData}`);
    await mkdir(cfg.pgData, { recursive: true });
    await giveToPostgres(cfg.pgData);
    await run(
      await asPostgres(`${PG_BIN}/initdb`, [
        "-D", cfg.pgData, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
      ]),
      "initdb",
    );
    const conf = join(cfg.pgData, "postgresql.conf");
    await writeFile(conf, (await Deno.readTextFile(conf)) + "\ninclude_if_exists = 'duework.conf'\n");
    created = "created";
  } else {
    const version = (await Deno.readTextFile(join(cfg.pgData, "PG_VERSION"))).trim();
    if (version !== "15") {
      throw new Error(`${cfg.pgData} holds a Postgres ${version} cluster; this stack runs Postgres 15. Remove the directory to start fresh.`);
    }
  }
  const settings = join(cfg.pgData, "duework.conf");
  await writeFile(settings, serverSettings(cfg));
  await giveToPostgres(settings);
  return created;
}

/**
 * A postmaster left behind by a supervisor that was killed with SIGKILL still owns the data
 * directory. Stop it so this start can take over instead of failing on a stale lock.
 */
export async function stopLeftoverPostmaster(cfg: StackConfig, log: (line: string) => void): Promise<void> {
  const pidFile = join(cfg.pgData, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number((await Deno.readTextFile(pidFile)).split("\n")[0]);
  const cmdline = Number.isInteger(pid) ? processCmdline(pid) : null;
  if (cmdline === null || !cmdline.includes("postgres")) return; // stale file; postgres cleans it up
  log(`stopping a leftover Postgres (pid ${pid}) from an earlier run`);
  await run(await asPostgres(`${PG_BIN}/pg_ctl`, ["-D", cfg.pgData, "stop", "-m", "fast", "-w"]), "pg_ctl stop");
}

export function startPostgres(cfg: StackConfig, sink: LineSink): Promise<Child> {
  return asPostgres(`${PG_BIN}/postgres`, [
    "-D", cfg.pgData, "-p", String(cfg.dbPort), "-k", cfg.socketDir,
  ]).then((argv) => spawnChild({ name: "postgres", argv }, cfg.logDir, sink));
}

/** Resolves once the server accepts connections; rejects if it exits or takes too long. */
export async function waitForPostgres(cfg: StackConfig, child: Child, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.status.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`Postgres exited during startup:\n${child.tail()}`);
    const sql = postgres({ host: "127.0.0.1", port: cfg.dbPort, user: "postgres", database: "postgres", max: 1, connect_timeout: 2, onnotice: () => {} });
    try {
      await sql`select 1`;
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await sql.end({ timeout: 1 });
    }
  }
  throw new Error(`Postgres did not accept connections on port ${cfg.dbPort} within ${timeoutMs / 1000}s:\n${child.tail()}`);
}
