// Runs one whole local stack: Postgres, the pg_net worker stand-in, the functions server and the
// provider sandbox. It owns every process it starts: stop() (and SIGINT/SIGTERM in the scripts)
// stops all of them and removes stack.json and the pid files. A process that exits on its own is
// restarted (keep-alive.ts); only a Postgres that keeps crashing ends the stack (`fatal`).
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
import { type Child, type LineSink, spawnChild, stopChild } from "./processes.ts";
import { childrenRecorder, killLeftoverChildren } from "./children-file.ts";
import { keepAlive, POSTGRES_RESTARTS, SERVICE_RESTARTS } from "./keep-alive.ts";

export interface StackJson {
  db_url: string;
  functions_url: string;
  secret_key: string;
  /** The functions' CRON_SECRET: what an outside scheduler sends to run-job. */
  cron_secret: string;
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
  /** children.json (the supervisor's processes) and function-workers.json (the functions' workers). */
  run_dir: string;
  pg_data: string;
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
  /**
   * Resolves when Postgres, which the stack cannot live without, keeps exiting: more than
   * POSTGRES_RESTARTS.maxRestarts times within its window (a single crash is restarted).
   */
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

/** The value of the X-Webhook-Secret header the fixture's Unipile webhooks carry (users first). */
function unipileWebhookSecret(unipile: { webhooks?: { source?: string; headers?: { key: string; value: string }[] }[] }) {
  const hooks = [...(unipile?.webhooks ?? [])].sort((a, b) => Number(b.source === "users") - Number(a.source === "users"));
  for (const hook of hooks) {
    const header = hook.headers?.find((h) => h.key.toLowerCase() === "x-webhook-secret");
    if (header) return header.value;
  }
  return undefined;
}

/**
 * Function secrets for the sandbox's accounts (the first OAuth client of each provider, Twilio's
 * account and sender, Resend's key and sender, Unipile's API key and webhook secret, from
 * scripts/local/sandbox/fixtures.json). On a hosted project these come from `supabase secrets set`.
 */
export function sandboxClientEnv(fixturesPath: string): Record<string, string> {
  const fixtures = JSON.parse(Deno.readTextFileSync(fixturesPath));
  const google = fixtures.google_oauth?.clients?.[0];
  const tiktok = fixtures.tiktok?.clients?.[0];
  const twilio = fixtures.twilio;
  const resend = fixtures.resend;
  const unipile = fixtures.unipile;
  const webhookSecret = unipileWebhookSecret(unipile);
  return {
    ...(google ? { GOOGLE_CLIENT_ID: google.client_id, GOOGLE_CLIENT_SECRET: google.client_secret } : {}),
    ...(tiktok ? { TIKTOK_CLIENT_KEY: tiktok.client_key, TIKTOK_CLIENT_SECRET: tiktok.client_secret } : {}),
    ...(twilio?.account_sid
      ? {
        TWILIO_ACCOUNT_SID: twilio.account_sid,
        TWILIO_AUTH_TOKEN: twilio.auth_token,
        TWILIO_WHATSAPP_FROM: twilio.senders?.[0],
      }
      : {}),
    ...(resend?.api_keys?.[0] ? { RESEND_API_KEY: resend.api_keys[0], RESEND_FROM: resend.from } : {}),
    ...(unipile?.api_keys?.[0] ? { UNIPILE_API_KEY: unipile.api_keys[0] } : {}),
    ...(webhookSecret ? { UNIPILE_WEBHOOK_SECRET: webhookSecret } : {}),
  };
}

function childrenFile(cfg: StackConfig): string {
  return join(cfg.socketDir, "children.json");
}

export function functionWorkersFile(cfg: StackConfig): string {
  return join(cfg.socketDir, "function-workers.json");
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

  const record = childrenRecorder(childrenFile(cfg));
  let recording = Promise.resolve();
  const recordChildren = () => (recording = record(children));
  /** A restarted process takes its predecessor's place: stop() stops them in reverse start order. */
  const replaceChild = (next: Child, previous: Child) => {
    const i = children.indexOf(previous);
    if (i >= 0) children[i] = next;
    else children.push(next);
    return recordChildren();
  };

  const stop = () => {
    stopped ??= (async () => {
      stopping = true;
      // Reverse start order: callers of the database stop before the database does.
      for (const child of [...children].reverse()) {
        // SIGINT is Postgres's "fast shutdown"; the Deno processes treat SIGINT and SIGTERM alike.
        await stopChild(child, child.name === "postgres" ? "SIGINT" : "SIGTERM");
      }
      await recording;
      await rm(childrenFile(cfg), { force: true });
      await rm(functionWorkersFile(cfg), { force: true });
      await rm(join(cfg.socketDir, "functions-env.json"), { force: true });
      await rm(cfg.stackJson, { force: true });
    })();
    return stopped;
  };

  const start = async (): Promise<StackJson> => {

  try {
    await ensurePackages(say);
    await mkdir(cfg.socketDir, { recursive: true });
    await killLeftoverChildren(childrenFile(cfg), say);
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
    await recordChildren();
    await waitForPostgres(cfg, pg);
    await recordChildren(); // again: as root, setpriv has exec'd into postgres only by now
    checkpoint();
    // From here on a Postgres that exits (crash, `pg_ctl stop -m immediate`, SIGKILL) is started
    // again on the same data directory and runs crash recovery; its clients (net worker,
    // functions) reconnect by themselves.
    keepAlive(pg, {
      name: "postgres",
      policy: POSTGRES_RESTARTS,
      spawn: () => startPostgres(cfg, opts.sink),
      ready: async (c) => {
        await waitForPostgres(cfg, c);
        await recordChildren();
      },
      stopSignal: "SIGINT",
      stopping: () => stopping,
      replaced: replaceChild,
      log: say,
      giveUp: (e) => resolveFatal(e),
    });
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
      CRON_SECRET: keys.cron_secret,
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
          "--fixtures", script("sandbox/fixtures.json"),
          // Where fixture webhooks (Unipile's new_relation, message_received) are delivered.
          "--functions-url", `${apiUrl}/functions/v1`],
        readyPrefix: "sandbox ready",
      },
      {
        name: "functions",
        // The wall clock comes from DUEWORK_FUNCTION_WALL_CLOCK_MS if set (main.ts reads it).
        argv: [deno, "run", "-A", script("functions-server/main.ts"), "--port", String(cfg.apiPort),
          ...roots.flatMap((r) => ["--root", r]), "--env-json", envJson, "--workers-file", functionWorkersFile(cfg)],
        readyPrefix: "functions ready",
      },
      {
        name: "net-worker",
        argv: [deno, "run", "-A", script("net-worker/main.ts"), "--db-url", dbUrl(cfg)],
        readyPrefix: "net-worker ready",
      },
    ];

    const startService = (spec: typeof specs[number]): Child => {
      const spawn = () => spawnChild({ ...spec, cwd: cfg.projectRoot }, cfg.logDir, opts.sink);
      const child = spawn();
      children.push(child);
      // Like the postmaster does for pg_net's worker: a service that dies is restarted after 1 s.
      keepAlive(child, {
        name: spec.name,
        policy: SERVICE_RESTARTS,
        spawn,
        // Recorded again once it serves: until its exec, /proc shows the spawning process's cmdline.
        ready: async (c) => {
          await c.ready;
          await recordChildren();
        },
        stopping: () => stopping,
        replaced: replaceChild,
        log: say,
        giveUp: (e) => say(e.message),
      });
      return child;
    };
    const services = specs.map(startService);
    await recordChildren();
    await Promise.all(services.map((c) => c.ready));
    await recordChildren(); // again: each has exec'd by now, so its cmdline is its own
    checkpoint();

    const info: StackJson = {
      db_url: dbUrl(cfg),
      functions_url: `${apiUrl}/functions/v1`,
      secret_key: keys.secret_key,
      cron_secret: keys.cron_secret,
      sandbox_url: `http://127.0.0.1:${cfg.sandboxPort}`,
      providers,
      api_url: apiUrl,
      anon_key: keys.anon_key,
      service_role_key: keys.service_role_key,
      publishable_key: keys.publishable_key,
      jwt_secret: keys.jwt_secret,
      profile: cfg.profile,
      pid: Deno.pid,
      run_dir: cfg.socketDir,
      pg_data: cfg.pgData,
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
