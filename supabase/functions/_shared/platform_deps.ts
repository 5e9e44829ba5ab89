// The real dependencies of a job function on Supabase: the platform's env, and the batch leases
// and job store over the instance's one postgres.js client, both created on first use (a request
// rejected at the front door never opens a connection).
import { type BatchLeases, createPgBatchLeases } from "./batch_lease.ts";
import { getSql } from "./db.ts";
import { denoEnv } from "./env.ts";
import { createPgJobStore, type JobStore } from "./job_store.ts";
import type { RunnerDeps } from "./job_runner.ts";

let store: JobStore | undefined;
let leases: BatchLeases | undefined;

export function platformDeps(): RunnerDeps {
  return {
    env: denoEnv,
    leases: () => (leases ??= createPgBatchLeases(getSql())),
    store: () => (store ??= createPgJobStore(getSql())),
  };
}
