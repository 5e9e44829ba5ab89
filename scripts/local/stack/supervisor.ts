// Runs one whole local stack: Postgres, the pg_net worker stand-in, the functions server and the
// provider sandbox. It owns every process it starts: stop() (and SIGINT/SIGTERM in the scripts)
// stops all of them and removes stack.json and the pid files.
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { applyPlatform, applySeed, pushMigrations, setVaultSecrets } from "./bootstrap.ts";
import { dbUrl, PROVIDERS, type ProviderName, type StackConfig } from "./config.ts";
import { installStandInExtensions } from "./extensions.ts";
import { loadOrCreateKeys, type StackKeys } from "./keys.ts";
import { join } from "./paths.ts";
import { assertPortsFree } from "./ports.ts";
import { ensureCluster, startPostgres, stopLeftoverPostmaster, waitForPostgres } from "./postgres.ts";
import { ensurePackages } from "./prerequisites.ts";
import { type Child, type LineSink, processCmdline, spawnChild, stopChild } from "./processes.ts";

export interface StackJson {
  db_url: string;
  functions_url: string;
  secret_key: string;
  sandbox_url: string;
  providers: Record<ProviderName, string>;
  // Extras a local client needs; hosted projects show the same values in the dashboard.
  api_url: string;
  anon_key: string;
  service_role_key: string;
  publishable_key: string;
  jwt_secret: string;
  profile: string;
  pid: number;
}

export interface StackOptions {
  /** Extra function roots (functionsDir:configToml), e.g. test fixtures. */
  extraFunctionRoots?: string[];
  /** Apply supabase/seed.sql (dev demo data). */
  seed?: boolean;
  /** Start from an empty cluster (the test runner: every run sees exactly the migrations). */
  freshCluster?: boolean;
  sink: LineSink;
}

export interface Stack {
  /** Brings everything up; rejects (after stopping what it started) on any failure or stop(). */
  start(): Promise<StackJson>;
  /** Stops every process started so far, at any point, and removes stack.json. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when Postgres, which the stack cannot live without, exits. */
  fatal: Promise<Error>;
}

/** Env a provider client in a function reads to find the provider (real hosts are the defaults). */
export function providerEnv(providers: Record<ProviderName, string>): Record<string, string> {
  return {
    GOOGLE_OAUTH_BASE_URL: providers.google_oauth,
    INSTAGRAM_GRAPH_BASE_URL: providers.instagram_graph,
    TIKTOK_BASE_URL: providers.tiktok,
    TWILIO_BASE_URL: providers.twilio,
    RESEND_BASE_URL: providers.resend,
    UNIPILE_BASE_URL: providers.unipile,
    STRIPE_BASE_URL: providers.stripe,
  };
}

/**
 * Function secrets for the sandbox's OAuth clients (the first client of each provider in
 * scripts/local/sandbox/fixtures.json). On a hosted project these come from `supabase secrets set`.
 */
export function sandboxClientEnv(fixturesPath: string): Record<string, string> {
  const fixtures = JSON.parse(Deno.readTextFileSync(fixturesPath));
  const google = fixtures.google_oauth?.clients?.[0];
  const tiktok = fixtures.tiktok?.clients?.[0];
  return {
    ...(google ? { GOOGLE_CLIENT_ID: google.client_id, GOOGLE_CLIENT_SECRET: google.client_secret } : {}),
    ...(tiktok ? { TIKTOK_CLIENT_KEY: tiktok.client_key, TIKTOK_CLIENT_SECRET: tiktok.client_secret } : {}),
  };
}

function childrenFile(cfg: StackConfig): string {
  return join(cfg.socketDir, "children.json");
}

/** Kills processes recorded by a supervisor that died without cleaning up (e.g. SIGKILL). */
async function killLeftoverChildren(cfg: StackConfig, log: (l: string) => void): Promise<void> {
  const file = childrenFile(cfg);
  if (!existsSync(file)) return;
  const recorded = JSON.parse(await Deno.readTextFile(file)) as { pid: number; cmdline: string }[];
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

export function createStack(cfg: StackConfig, opts: StackOptions): Stack {
  const say = (line: string) => opts.sink("stack", line);
  const deno = Deno.execPath();
  const children: Child[] = [];
  let stopping = false;
  let stopped: Promise<void> | undefined;
  let resolveFatal: (e: Error) => void = () => {};
  const fatal = new Promise<Error>((r) => (resolveFatal = r));
  const checkpoint = () => {
    if (stopping) throw new Error("stack start interrupted by stop");
  };

  const recordChildren = () =>
    writeFile(childrenFile(cfg), JSON.stringify(children.map((c) => ({ pid: c.pid, cmdline: processCmdline(c.pid) ?? "" }))));

  const stop = () => {
    stopped ??= (async () => {
      stopping = true;
      // Reverse start order: callers of the database stop before the database does.
      for (const child of [...children].reverse()) {
        // SIGINT is Postgres's "fast shutdown"; the Deno processes treat SIGINT and SIGTERM alike.
        await stopChild(child, child.name === "postgres" ? "SIGINT" : "SIGTERM");
      }
      await rm(childrenFile(cfg), { force: true });
      await rm(join(cfg.socketDir, "functions-env.json"), { force: true });
      await rm(cfg.stackJson, { force: true });
    })();
    return stopped;
  };

  const start = async (): Promise<StackJson> => {

  try {
    await ensurePackages(say);
    await mkdir(cfg.socketDir, { recursive: true });
    await killLeftoverChildren(cfg, say);
    await stopLeftoverPostmaster(cfg, say);
    assertPortsFree(cfg);
    if (opts.freshCluster) await rm(cfg.pgData, { recursive: true, force: true });
    const updated = await installStandInExtensions(cfg.projectRoot, say);
    if (updated.length && existsSync(join(cfg.pgData, "PG_VERSION"))) {
      say(
        `the local pg_net/vault stand-ins changed (${updated.join(", ")}); this cluster still has the old ` +
          `versions installed. To pick them up: npm run stack:down && rm -rf ${cfg.pgData}`,
      );
    }
    const cluster = await ensureCluster(cfg, say);
    const keys: StackKeys = await loadOrCreateKeys(cfg.stateDir);
    checkpoint();

    const pg = await startPostgres(cfg, opts.sink);
    children.push(pg);
    pg.status.then((s) => {
      if (!stopping) resolveFatal(new Error(`Postgres exited unexpectedly (code ${s.code}):\n${pg.tail()}`));
    });
    await recordChildren();
    await waitForPostgres(cfg, pg);
    checkpoint();
    say(`Postgres 15 ready on port ${cfg.dbPort} (${cluster} cluster)`);

    await applyPlatform(cfg);
    const apiUrl = `http://127.0.0.1:${cfg.apiPort}`;
    await setVaultSecrets(cfg, { project_url: apiUrl, service_key: keys.secret_key });
    const pushed = await pushMigrations(cfg);
    for (const line of pushed.split("\n")) if (/Applying migration|up to date/i.test(line)) say(line.trim());
    if (opts.seed && (await applySeed(cfg))) say("applied supabase/seed.sql (demo data)");
    checkpoint();

    const providers = Object.fromEntries(
      PROVIDERS.map((p) => [p, `http://127.0.0.1:${cfg.providerPorts[p]}`]),
    ) as Record<ProviderName, string>;
    const functionsEnv = {
      SUPABASE_URL: apiUrl,
      SUPABASE_DB_URL: dbUrl(cfg),
      SUPABASE_ANON_KEY: keys.anon_key,
      SUPABASE_SERVICE_ROLE_KEY: keys.service_role_key,
      SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: keys.publishable_key }),
      SUPABASE_SECRET_KEYS: JSON.stringify({ default: keys.secret_key }),
      ...providerEnv(providers),
      ...sandboxClientEnv(join(cfg.projectRoot, "scripts", "local", "sandbox", "fixtures.json")),
    };
    const envJson = join(cfg.socketDir, "functions-env.json");
    await writeFile(envJson, JSON.stringify({ env: functionsEnv, jwt_secret: keys.jwt_secret }), { mode: 0o600 });

    const roots = [
      `${join(cfg.projectRoot, "supabase", "functions")}:${join(cfg.projectRoot, "supabase", "config.toml")}`,
      ...(opts.extraFunctionRoots ?? []),
    ];
    const script = (p: string) => join(cfg.projectRoot, "scripts", "local", p);
    const specs = [
      {
        name: "sandbox",
        argv: [deno, "run", "-A", script("sandbox/main.ts"), "--control-port", String(cfg.sandboxPort),
          ...PROVIDERS.flatMap((p) => ["--port", `${p}=${cfg.providerPorts[p]}`]),
          "--fixtures", script("sandbox/fixtures.json")],
        readyPrefix: "sandbox ready",
      },
      {
        name: "functions",
        argv: [deno, "run", "-A", script("functions-server/main.ts"), "--port", String(cfg.apiPort),
          ...roots.flatMap((r) => ["--root", r]), "--env-json", envJson],
        readyPrefix: "functions ready",
      },
      {
        name: "net-worker",
        argv: [deno, "run", "-A", script("net-worker/main.ts"), "--db-url", dbUrl(cfg)],
        readyPrefix: "net-worker ready",
      },
    ];

    const startService = (spec: typeof specs[number]): Child => {
      const child = spawnChild({ ...spec, cwd: cfg.projectRoot }, cfg.logDir, opts.sink);
      children.push(child);
      // Like the postmaster does for pg_net's worker: a service that dies is restarted after 1 s.
      child.status.then((s) => {
        if (stopping) return;
        say(`${spec.name} exited (code ${s.code}); restarting in 1 s`);
        setTimeout(() => {
          if (stopping) return;
          children.splice(children.indexOf(child), 1);
          startService(spec).ready.then(recordChildren, (e) => say(String(e)));
        }, 1000);
      });
      return child;
    };
    const services = specs.map(startService);
    await recordChildren();
    await Promise.all(services.map((c) => c.ready));
    checkpoint();

    const info: StackJson = {
      db_url: dbUrl(cfg),
      functions_url: `${apiUrl}/functions/v1`,
      secret_key: keys.secret_key,
      sandbox_url: `http://127.0.0.1:${cfg.sandboxPort}`,
      providers,
      api_url: apiUrl,
      anon_key: keys.anon_key,
      service_role_key: keys.service_role_key,
      publishable_key: keys.publishable_key,
      jwt_secret: keys.jwt_secret,
      profile: cfg.profile,
      pid: Deno.pid,
    };
    await writeFile(cfg.stackJson, JSON.stringify(info, null, 2) + "\n", { mode: 0o600 });
    return info;
  } catch (e) {
    await stop();
    throw e;
  }
  };

  return { start, stop, fatal };
}
