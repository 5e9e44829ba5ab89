// Where a local stack lives and which ports it uses. Three profiles exist so `npm test` and
// `npm run bench` never collide with a stack the user runs with `npm start`: "dev" (Supabase's
// local defaults), "test" (everything shifted by +1000, separate data directory), "bench"
// (+2000, .duework/bench) and "chaos" (+3000, .duework/chaos: `npm run chaos`).
import { fromFileUrl, join } from "./paths.ts";

import { PROVIDER_NAMES, type ProviderName } from "../sandbox/types.ts";

// One list of providers for the sandbox and the stack's port plan.
export const PROVIDERS = PROVIDER_NAMES;
export type { ProviderName };

export type Profile = "dev" | "test" | "bench" | "chaos";

export interface StackConfig {
  profile: Profile;
  projectRoot: string;
  /** Git-ignored directory holding the cluster, keys, logs and stack.json. */
  stateDir: string;
  pgData: string;
  /** Unix socket directory, inside stateDir so we never need /var/run/postgresql. */
  socketDir: string;
  logDir: string;
  stackJson: string;
  supervisorPidFile: string;
  dbPort: number;
  apiPort: number;
  sandboxPort: number;
  providerPorts: Record<ProviderName, number>;
}

const DEFAULTS: Record<Profile, { db: number; api: number; sandbox: number; dir: string }> = {
  dev: { db: 54322, api: 54321, sandbox: 54330, dir: ".duework" },
  test: { db: 55322, api: 55321, sandbox: 55330, dir: ".duework/test" },
  bench: { db: 56322, api: 56321, sandbox: 56330, dir: ".duework/bench" },
  chaos: { db: 57322, api: 57321, sandbox: 57330, dir: ".duework/chaos" },
};

/** Env prefix of a profile's port overrides: DUEWORK_, DUEWORK_TEST_, DUEWORK_BENCH_. */
function envPrefix(profile: Profile): string {
  return profile === "dev" ? "DUEWORK_" : `DUEWORK_${profile.toUpperCase()}_`;
}

/** Throwaway data (test, bench): Postgres runs without fsync, like the test profile. */
export function isThrowaway(profile: Profile): boolean {
  return profile !== "dev";
}

/** Environment variables that move a profile's ports; named in every "port in use" error. */
export const PORT_ENV = {
  db: "DUEWORK_DB_PORT",
  api: "DUEWORK_API_PORT",
  sandbox: "DUEWORK_SANDBOX_PORT",
} as const;

function portFromEnv(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${name}=${raw} is not a valid TCP port (1-65535)`);
  }
  return port;
}

export const PROJECT_ROOT = fromFileUrl(new URL("../../../", import.meta.url));

export function stackConfig(profile: Profile): StackConfig {
  const d = DEFAULTS[profile];
  // The test and bench profiles ignore the dev overrides unless their own are set, so a user who
  // moved their dev ports does not accidentally point the test suite at their running stack.
  const prefix = envPrefix(profile);
  const envName = (key: keyof typeof PORT_ENV) => PORT_ENV[key].replace("DUEWORK_", prefix);
  const dbPort = portFromEnv(envName("db"), d.db);
  const apiPort = portFromEnv(envName("api"), d.api);
  const sandboxPort = portFromEnv(envName("sandbox"), d.sandbox);
  const providerPorts = Object.fromEntries(
    PROVIDERS.map((name, i) => [name, sandboxPort + 1 + i]),
  ) as Record<ProviderName, number>;
  const stateDir = join(PROJECT_ROOT, d.dir);
  return {
    profile,
    projectRoot: PROJECT_ROOT,
    stateDir,
    pgData: join(stateDir, "pgdata"),
    socketDir: join(stateDir, "run"),
    logDir: join(stateDir, "logs"),
    stackJson: join(stateDir, "stack.json"),
    supervisorPidFile: join(stateDir, "run", "supervisor.pid"),
    dbPort,
    apiPort,
    sandboxPort,
    providerPorts,
  };
}

export function portEnvName(profile: Profile, key: keyof typeof PORT_ENV): string {
  return PORT_ENV[key].replace("DUEWORK_", envPrefix(profile));
}

export function dbUrl(cfg: StackConfig, user = "postgres"): string {
  return `postgresql://${user}:postgres@127.0.0.1:${cfg.dbPort}/postgres`;
}

/** The --profile value of an entry script; exits with a usage error for anything else. */
export function profileOrExit(value: string | undefined): Profile {
  if (value === "dev" || value === "test" || value === "bench" || value === "chaos") return value;
  console.error(`--profile must be "dev", "test", "bench" or "chaos", got ${JSON.stringify(value)}`);
  Deno.exit(2);
}
