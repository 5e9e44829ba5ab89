// Entry point only: real dependencies + Deno.serve. The logic is in handler.ts.
import { type BatchLeases, createPgBatchLeases } from "../_shared/batch_lease.ts";
import { getSql } from "../_shared/db.ts";
import { denoEnv } from "../_shared/env.ts";
import { createPgJobStore, type JobStore } from "../_shared/job_store.ts";
import { createHandler } from "./handler.ts";

let store: JobStore | undefined;
let leases: BatchLeases | undefined;

Deno.serve(createHandler({
  env: denoEnv,
  leases: () => (leases ??= createPgBatchLeases(getSql())),
  store: () => (store ??= createPgJobStore(getSql())),
}));
