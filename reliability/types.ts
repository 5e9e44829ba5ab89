// What the chaos harness passes around: the stack it drives, a database client that survives a
// Postgres restart, and the shape every workload (one kind of due work) implements.
import type postgres from "npm:postgres@^3.4.9";
import type { ProviderName } from "../scripts/local/sandbox/types.ts";

export type Sql = ReturnType<typeof postgres>;

/** The fields of a stack's stack.json the harness reads. */
export interface StackInfo {
  db_url: string;
  functions_url: string;
  sandbox_url: string;
  secret_key: string;
  service_role_key: string;
  cron_secret: string;
  jwt_secret: string;
  providers: Record<string, string>;
  api_url: string;
  anon_key: string;
  run_dir?: string;
  pg_data?: string;
  [more: string]: unknown;
}

export interface Ctx {
  info: StackInfo;
  /** The current client; after a Postgres restart `reconnect()` replaces it. */
  sql(): Sql;
  reconnect(): Promise<void>;
  /** Unique per scenario: names of seeded rows start with it. */
  run: string;
}

export interface Counts {
  total: number;
  /** The effect is recorded in the domain (a provider id, a refreshed token). */
  done: number;
  /** Given up on, with a reason in the domain row. */
  dead: number;
  /** The same, split by provider, for a workload whose items go to more than one. */
  byProvider?: Partial<Record<ProviderName, Omit<Counts, "byProvider">>>;
}

export interface EffectCount {
  provider: ProviderName;
  /** The provider dedupes by an idempotency key (Resend) or not (Twilio, Unipile). */
  keyed: boolean;
  /** Effects the provider made beyond one per item (a second message, a second email). */
  duplicates: number;
  /** Items the database calls done whose effect the provider never made. */
  missing: number;
  /** Repeated calls without a side effect (a second refresh grant), counted but not a defect. */
  repeatedCalls: number;
  /** A few recipients with a duplicated effect, to start an investigation from. */
  examples?: string[];
}

/**
 * One kind of due work: seeded through the same tables a user fills, drained by its jobs over the
 * sandbox's fakes, and read back from the database (done / dead) and from the fakes (effects).
 */
export interface Workload {
  name: string;
  /** jobs.job names it drives (the coverage check compares these with every job that exists). */
  jobs: string[];
  /** Sandbox providers its jobs call: provider faults target these. */
  providers: ProviderName[];
  /** Removes earlier runs' rows, sets its fakes up, seeds about `items` due items. */
  seed(ctx: Ctx, items: number): Promise<void>;
  /** Starts the drain as an operator would: one manual tick per job. */
  start(ctx: Ctx): Promise<void>;
  counts(ctx: Ctx): Promise<Counts>;
  effects(ctx: Ctx): Promise<EffectCount[]>;
}
