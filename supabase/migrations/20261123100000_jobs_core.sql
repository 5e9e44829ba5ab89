-- Duework jobs core: the whole engine every scheduled job runs on (docs/jobs.md has the state
-- diagram and the walk-through of a new job). Engine changes go in a later jobs_* migration.
--
--   pg_cron ──> jobs.tick(job)   one transaction: reap → discover → claim → dispatch (net.http_post)
--   function ──> jobs.accept_batch(batch, token), answers 202 and works in EdgeRuntime.waitUntil;
--                jobs.task_contexts(ids, tokens) for the tasks it was sent (what a payload must not
--                carry, e.g. credentials); jobs.keep_batch_alive(batch) every lease_seconds / 3;
--                jobs.report(outcomes, claims): a group of outcomes recorded (the domain's apply in
--                the same transaction) and the next tasks claimed into its batches, in one call;
--                jobs.finish_batch(batch) at the end, which dispatches the next batch at once
--                (work-conserving): a backlog drains at max_in_flight, not one batch per tick.
--   pg_cron ──> jobs.heartbeat() every 10 s: reaps, and restarts a dispatch chain that broke.
--   pg_cron ──> jobs.prune() daily: history of tasks, runs, batches, cron.job_run_details, net responses.
--   by hand ──> jobs.run_now(job), jobs.retry, jobs.retry_dead, jobs.cancel.
--
-- A domain supplies (docs/jobs.md "Write a new job"), and never writes jobs.* tables:
--   discover (config jsonb) → table(key text, payload jsonb); payload.rate_keys become the task's
--            per-task buckets, sized with jobs.size_rate_limits(job, buckets);
--   context  (tasks jsonb)  → table(task_id bigint, context jsonb, moot text)          [optional]
--   apply    (outcomes jsonb) → table(task_id bigint, outcome text, error text, result jsonb) [optional]
-- and registers the job with jobs.define(…).
--
-- Outcomes a function reports for a task: ok | retry | dead | discard | release.
-- Task states: queued | running | succeeded | discarded | dead | cancelled.
--
-- Lock order, which keeps ticks, claims and outcome calls free of deadlocks:
--   1. the job's outcome lock (jobs.lock_outcomes, a transaction advisory lock): shared by every
--      call that records an outcome or discards a moot task (jobs.record_outcomes, jobs.report,
--      jobs.claim_tasks, jobs.task_contexts, jobs.cancel), exclusive by jobs.tick; a call that
--      needs several takes them in job-name order;
--   2. task rows a call records outcomes for, in id order (FOR UPDATE);
--   3. the job row (jobs.tick, jobs.pump after the batch row in jobs.finish_batch, jobs.heartbeat,
--      jobs.define; jobs.record_outcomes for a release);
--   4. the job's claim lock (jobs.lock_claims, advisory): claims of a job with task_rate_limits,
--      jobs.size_rate_limits, jobs.rate_limit_pause with a job, refunds of such a job;
--   5. bucket rows (jobs.rate_limit);
--   claims take task rows only with SKIP LOCKED, so they never wait for an outcome call; the
--   heartbeat takes job rows and the reap batches and tasks with SKIP LOCKED.
-- The outcome lock closes a race: without it, a tick's discover could read a domain row as still
-- due just before a concurrent outcome call commits its refresh, then find no open task for the
-- key and queue the same item a second time.
-- Everything runs as the owner (postgres): pg_cron and the Edge Functions (SUPABASE_DB_URL) call
-- it directly. Nothing here is SECURITY DEFINER; anon and authenticated get no access at all.

create schema if not exists jobs;
revoke all on schema jobs from public;
comment on schema jobs is 'Duework jobs core. Not exposed through the Data API; see docs/jobs.md.';
alter default privileges in schema jobs revoke execute on functions from public;

-- Token buckets (one row per key) for provider rate limits; honoured by claim, so no function sleeps.
create table jobs.rate_limit (
  key text primary key check (key ~ '^[a-z0-9][a-z0-9_.:-]{0,62}$'),
  capacity numeric not null check (capacity >= 1),
  refill_per_second numeric not null check (refill_per_second > 0),
  tokens numeric not null,
  refilled_at timestamptz not null default now(),
  constraint rate_limit_tokens_in_range check (tokens >= 0 and tokens <= capacity)
);
comment on table jobs.rate_limit is
  'Token bucket per key: claim takes one token per task and refills refill_per_second up to capacity.';

create table jobs.job (
  name text primary key check (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  description text not null default '',
  schedule text,
  target_function text not null check (target_function ~ '^[A-Za-z0-9_-]{1,128}$'),
  -- Signature texts such as 'social.discover_due_tokens(jsonb)' (a reg* column would block
  -- pg_upgrade); jobs.define checks that they resolve and have the right shape.
  discover_function text not null,
  context_function text,
  apply_function text,
  config jsonb not null default '{}' check (jsonb_typeof(config) = 'object'),
  batch_size int not null default 10 check (batch_size between 1 and 100),
  max_in_flight int not null default 5 check (max_in_flight between 1 and 100),
  lease_seconds int not null default 15 check (lease_seconds between 1 and 3600),
  max_attempts int not null default 5 check (max_attempts between 1 and 100),
  backoff_base_seconds numeric not null default 30 check (backoff_base_seconds > 0),
  backoff_cap_seconds numeric not null default 3600,
  backoff_jitter numeric not null default 0.2 check (backoff_jitter between 0 and 1),
  rate_limit_key text references jobs.rate_limit (key) on delete set null,
  task_rate_limits boolean not null default false,
  enabled boolean not null default true,
  paused boolean not null default false,
  suspended_until timestamptz,
  last_error text,
  last_error_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint job_backoff_cap_at_least_base check (backoff_cap_seconds >= backoff_base_seconds)
);
comment on table jobs.job is 'One row per named job (jobs.define). schedule is a UTC cron expression (null = manual only).';
comment on column jobs.job.context_function is
  'Optional (tasks jsonb) → table(task_id bigint, context jsonb, moot text): what the function needs for a leased task '
  'that its payload must not carry; moot ones are discarded (jobs.task_contexts, jobs.claim_tasks).';
comment on column jobs.job.apply_function is
  'Optional (outcomes jsonb) → table(task_id bigint, outcome text, error text, result jsonb): the domain write of a '
  'group of outcomes, called by jobs.record_outcomes in the same transaction, once per job per group.';
comment on column jobs.job.lease_seconds is
  'A claim''s lease; the function keeps it alive while it works (jobs.keep_batch_alive), so a dead function''s '
  'tasks are back within about a lease and a heartbeat.';
comment on column jobs.job.max_in_flight is 'Batches (HTTP requests) in flight at once for this job.';
comment on column jobs.job.rate_limit_key is 'The job''s bucket (jobs.define p_rate_limit): every claimed task takes a token.';
comment on column jobs.job.task_rate_limits is
  'Claims honour jobs.task.rate_keys (per-account buckets and the like); see jobs.claim_due_tasks.';
comment on column jobs.job.paused is 'Paused: ticks still discover due work, but nothing is claimed or dispatched.';
comment on column jobs.job.enabled is 'Disabled: ticks do nothing at all.';
comment on column jobs.job.suspended_until is
  'Set by a release after a configuration error: no claims until then, so a broken setup does not burn attempts.';
create index job_rate_limit_key on jobs.job (rate_limit_key);

create table jobs.run (
  id bigint generated always as identity primary key,
  job_name text not null references jobs.job (name) on delete cascade,
  trigger text not null check (trigger in ('cron', 'manual', 'http')),
  started_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  reaped int not null default 0,
  discovered int not null default 0,
  claimed int not null default 0,
  dispatched int not null default 0,
  request_ids bigint[] not null default '{}',
  error text
);
comment on table jobs.run is 'One row per tick (cron) or manual run. Batches dispatched later by the chain have run_id null.';
create index run_job_started on jobs.run (job_name, started_at desc);
create index run_started on jobs.run (started_at);

-- One HTTP request: it starts with up to batch_size tasks and the function may claim more into it
-- (jobs.claim_tasks). It is in flight until jobs.finish_batch (the function is done) or a reap
-- (its answer came back, it was lost in a restart, or its function went silent) settles it.
create table jobs.batch (
  id bigint generated always as identity primary key,
  job_name text not null references jobs.job (name) on delete cascade,
  run_id bigint,
  request_id bigint,
  size int not null check (size >= 1),
  dispatched_at timestamptz not null default now(),
  settled_at timestamptz,
  http_status int,
  http_error text,
  boot timestamptz,
  token_hash bytea,
  accepted_at timestamptz,
  alive_at timestamptz
);
comment on table jobs.batch is 'Dispatched requests. Unsettled batches are the ones in flight (max_in_flight).';
comment on column jobs.batch.boot is
  'pg_postmaster_start_time() at dispatch: request_id means something only within the same server start.';
comment on column jobs.batch.token_hash is
  'SHA-256 of the single-use credential the request carries (Authorization: Bearer dwb_…); the token itself is never stored.';
comment on column jobs.batch.accepted_at is 'When the function accepted the batch (jobs.accept_batch) and answered 202.';
comment on column jobs.batch.alive_at is 'Last lease extension by the function working on the batch (jobs.keep_batch_alive).';
create index batch_in_flight on jobs.batch (job_name) where settled_at is null;
create index batch_settled on jobs.batch (settled_at) where settled_at is not null;

create table jobs.task (
  id bigint generated always as identity primary key,
  job_name text not null references jobs.job (name) on delete cascade,
  key text not null,
  payload jsonb not null default '{}',
  state text not null default 'queued'
    check (state in ('queued', 'running', 'succeeded', 'discarded', 'dead', 'cancelled')),
  attempts int not null default 0 check (attempts >= 0),
  run_after timestamptz not null default now(),
  lease_until timestamptz,
  lease_token uuid,
  batch_id bigint,
  rate_keys text[] constraint task_rate_keys_small check (cardinality(rate_keys) <= 8),
  last_error text,
  result jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  -- Running holds all three; any other state holds no lease (batch_id keeps the last batch).
  constraint task_lease_iff_running
    check ((state = 'running') = (lease_token is not null and lease_until is not null and batch_id is not null)
           and (state = 'running' or (lease_token is null and lease_until is null))),
  constraint task_finished_iff_terminal
    check ((state in ('succeeded', 'discarded', 'dead', 'cancelled')) = (finished_at is not null)),
  constraint task_running_has_attempt check (state <> 'running' or attempts >= 1)
);
comment on table jobs.task is 'One unit of due work. States and transitions: docs/jobs.md.';
comment on column jobs.task.key is 'Dedupe key: at most one queued or running task per (job, key).';
comment on column jobs.task.state is
  'queued | running | succeeded | discarded (moot: nothing to retry, nothing for an operator to do) | dead | cancelled.';
comment on column jobs.task.rate_keys is
  'Token buckets (jobs.rate_limit keys) this task takes one token from when claimed, in addition to '
  'the job''s rate_limit_key. Honoured only for jobs with task_rate_limits. A missing bucket row means no limit.';

-- Discovery is idempotent: a due item is never queued twice while a task for it is open.
create unique index task_open_key on jobs.task (job_name, key) where state in ('queued', 'running');
-- Claim and reap read only these small partial indexes, so their cost does not grow with history.
create index task_claimable on jobs.task (job_name, run_after, id) where state = 'queued';
-- Running tasks (few: at most what is in flight), by lease expiry; reap also finds a batch's here.
create index task_running_lease on jobs.task (job_name, lease_until) where state = 'running';
create index task_dead on jobs.task (job_name, id) where state = 'dead';
create index task_finished on jobs.task (finished_at) where finished_at is not null;

-- Only the transitions of docs/jobs.md are allowed, whoever writes the row.
create function jobs.task_transition_allowed(p_from text, p_to text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select p_from = p_to
      or (p_from = 'queued' and p_to in ('running', 'cancelled'))
      or (p_from = 'running' and p_to in ('queued', 'succeeded', 'discarded', 'dead', 'cancelled'))
      or (p_from in ('discarded', 'dead', 'cancelled') and p_to = 'queued')
      or (p_from = 'dead' and p_to = 'cancelled');
$$;

create function jobs.task_guard_transition()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Only reached for transitions the trigger's WHEN clause found not allowed.
  raise exception 'jobs.task %: % -> % is not an allowed transition', old.id, old.state, new.state
    using errcode = 'check_violation', hint = 'See the state diagram in docs/jobs.md.';
end;
$$;

-- The WHEN clause spells out jobs.task_transition_allowed instead of calling it: a function with
-- its own search_path is never inlined, and this runs on every state change (hot path).
create trigger task_guard_transition
  before update of state on jobs.task
  for each row when (not (
        old.state = new.state
     or (old.state = 'queued' and new.state in ('running', 'cancelled'))
     or (old.state = 'running' and new.state in ('queued', 'succeeded', 'discarded', 'dead', 'cancelled'))
     or (old.state in ('discarded', 'dead', 'cancelled') and new.state = 'queued')
     or (old.state = 'dead' and new.state = 'cancelled')))
  execute function jobs.task_guard_transition();

create function jobs.task_guard_insert()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.state <> 'queued' then
    raise exception 'jobs.task: new tasks start queued, not %', new.state using errcode = 'check_violation';
  end if;
  return new;
end;
$$;

-- Discovery inserts thousands of tasks in one statement; the guard only needs to run for a row
-- that breaks its rule, so the check is the trigger's WHEN clause (no plpgsql call per row).
create trigger task_guard_insert
  before insert on jobs.task
  for each row when (new.state <> 'queued') execute function jobs.task_guard_insert();

-- A discover function returns (key, payload) only; it gives a task its rate keys as
-- payload.rate_keys, which this moves to the column (so they never travel in the request body).
create function jobs.task_take_rate_keys()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if jsonb_typeof(new.payload -> 'rate_keys') = 'array' then
    new.rate_keys := array(select jsonb_array_elements_text(new.payload -> 'rate_keys'));
  end if;
  new.payload := new.payload - 'rate_keys';
  return new;
end;
$$;

create trigger task_take_rate_keys
  before insert on jobs.task
  for each row when (new.payload ? 'rate_keys')
  execute function jobs.task_take_rate_keys();

-- Exponential, capped, jittered: min(cap, base * 2^(attempt-1)), shortened by up to jitter * 100 %.
-- rand is a parameter so tests can pin it; callers use random().
create function jobs.backoff_seconds(
  p_base numeric, p_cap numeric, p_jitter numeric, p_attempt int, p_rand double precision)
returns numeric
language sql
immutable
set search_path = ''
as $$
  select round(
    least(p_cap, p_base * power(2::numeric, least(greatest(p_attempt, 1) - 1, 62)))
      * (1 - p_jitter * p_rand::numeric),
    3);
$$;

-- Secrets reach SQL through Vault as in Supabase's cron + pg_net guide. Dispatch needs only
-- project_url: each request carries its batch's single-use token, never the project's key.
create function jobs.vault_secret(p_name text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_secret text;
begin
  select decrypted_secret into v_secret from vault.decrypted_secrets where name = p_name;
  if v_secret is null or v_secret = '' then
    raise exception 'Vault secret "%" is missing', p_name
      using errcode = 'no_data_found',
            hint = case p_name
              when 'project_url' then 'select vault.create_secret(''https://<project-ref>.supabase.co'', ''project_url'');'
              else format('select vault.create_secret(''<value>'', %L);', p_name) end;
  end if;
  return v_secret;
end;
$$;

-- The Vault secret a dispatch needs exists (checked before claiming, so nothing is leased in vain).
create function jobs.dispatch_secrets_present()
returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (select 1 from vault.decrypted_secrets where name = 'project_url' and decrypted_secret <> '');
$$;

-- The per-job outcome lock: outcome calls hold it shared, discovery (jobs.tick) exclusively, so
-- discovery never reads domain state that an in-flight outcome call is about to change.
create function jobs.lock_outcomes(p_job_name text, p_exclusive boolean)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_exclusive then
    perform pg_catalog.pg_advisory_xact_lock(20261123, pg_catalog.hashtext(p_job_name));
  else
    perform pg_catalog.pg_advisory_xact_lock_shared(20261123, pg_catalog.hashtext(p_job_name));
  end if;
end;
$$;

-- The per-job claim lock, taken before bucket rows by everything that spends, refunds, pauses or
-- sizes the buckets of a job with task_rate_limits: concurrent claims never overspend a bucket and
-- never deadlock on bucket rows.
create function jobs.lock_claims(p_job_name text)
returns void
language sql
set search_path = ''
as $$
  select pg_catalog.pg_advisory_xact_lock(20261201, pg_catalog.hashtext(p_job_name));
$$;

-- Whether a function has the shape the engine calls: one jsonb argument and the given result
-- (as pg_get_function_result spells it, e.g. 'TABLE(key text, payload jsonb)').
create function jobs.has_signature(p_function regprocedure, p_result text)
returns boolean
language sql
stable
set search_path = ''
as $$
  select pg_catalog.pg_get_function_result(p_function) = p_result
     and pg_catalog.pg_get_function_identity_arguments(p_function) ~ '^([a-z_][a-z0-9_]* )?jsonb$';
$$;

-- What is wrong with a bucket description {"key", "capacity", "refill_per_second"} (null: nothing).
create function jobs.bucket_problem(p_bucket jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when p_bucket is null or jsonb_typeof(p_bucket) <> 'object'
      then format('expected an object {"key", "capacity", "refill_per_second"}, got %s', coalesce(p_bucket::text, 'null'))
    when case when jsonb_typeof(p_bucket -> 'key') = 'string'
              then p_bucket ->> 'key' !~ '^[a-z0-9][a-z0-9_.:-]{0,62}$' else true end
      then format('key must be a bucket name (a-z, 0-9 and _.:-, at most 63 characters), got %s',
                  coalesce((p_bucket -> 'key')::text, 'nothing'))
    when case when jsonb_typeof(p_bucket -> 'capacity') = 'number'
              then (p_bucket ->> 'capacity')::numeric < 1 else true end
      then format('capacity must be a number >= 1, got %s', coalesce((p_bucket -> 'capacity')::text, 'nothing'))
    when case when jsonb_typeof(p_bucket -> 'refill_per_second') = 'number'
              then (p_bucket ->> 'refill_per_second')::numeric <= 0 else true end
      then format('refill_per_second must be a number > 0, got %s', coalesce((p_bucket -> 'refill_per_second')::text, 'nothing'))
  end;
$$;

-- Refills a token bucket to now and returns the whole tokens it holds (row stays locked).
create function jobs.rate_limit_refill(p_key text)
returns int
language sql
set search_path = ''
as $$
  update jobs.rate_limit
     set tokens = least(capacity,
           tokens + greatest(0, extract(epoch from now() - refilled_at)::numeric) * refill_per_second),
         refilled_at = greatest(refilled_at, now())
   where key = p_key
  returning floor(tokens)::int;
$$;

-- Empties a bucket and holds it empty for p_seconds (a provider said "wait"): the refill of
-- jobs.rate_limit_refill counts from refilled_at, which is moved into the future.
-- Takes the job's claim lock first when given a job, the lock order of jobs.claim_due_tasks.
create function jobs.rate_limit_pause(p_key text, p_seconds numeric, p_job_name text default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_job_name is not null then
    perform jobs.lock_claims(p_job_name);
  end if;
  update jobs.rate_limit
     set tokens = 0,
         refilled_at = greatest(refilled_at, now() + make_interval(secs => greatest(coalesce(p_seconds, 0), 0)::double precision))
   where key = p_key;
end;
$$;

-- Creates the given buckets of a job (full) and re-sizes the ones whose capacity or refill
-- changed (tokens capped at the new capacity). Called by jobs.define for the job's bucket and by
-- a discover function for per-task buckets, e.g.
--   perform jobs.size_rate_limits('instagram-reel-urls', jsonb_build_array(
--     jsonb_build_object('key', 'ig-account:42', 'capacity', 5, 'refill_per_second', 2)));
-- Takes the job's claim lock first (the lock order of jobs.claim_due_tasks). A key given twice:
-- the last one counts. Returns how many buckets were created or re-sized.
create function jobs.size_rate_limits(p_job text, p_buckets jsonb)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_bad record;
  v_count int;
begin
  if p_buckets is null or jsonb_typeof(p_buckets) <> 'array' then
    raise exception 'jobs.size_rate_limits: p_buckets must be a JSON array of {"key", "capacity", "refill_per_second"}, got %',
      coalesce(jsonb_typeof(p_buckets), 'null') using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from jobs.job j where j.name = p_job) then
    raise exception 'jobs.size_rate_limits: no job named %', coalesce(p_job, 'null')
      using errcode = 'no_data_found', hint = 'Define the job first (jobs.define); its name takes the claim lock.';
  end if;
  select x.ord, x.problem into v_bad
    from (select e.ord, jobs.bucket_problem(e.v) as problem
            from jsonb_array_elements(p_buckets) with ordinality as e (v, ord)) x
   where x.problem is not null
   order by x.ord
   limit 1;
  if found then
    raise exception 'jobs.size_rate_limits: p_buckets[%]: %', v_bad.ord - 1, v_bad.problem
      using errcode = 'invalid_parameter_value';
  end if;

  perform jobs.lock_claims(p_job);
  insert into jobs.rate_limit as b (key, capacity, refill_per_second, tokens)
  select k.key, k.capacity, k.refill, k.capacity
    from (select distinct on (e.v ->> 'key') e.v ->> 'key' as key, (e.v ->> 'capacity')::numeric as capacity,
                 (e.v ->> 'refill_per_second')::numeric as refill
            from jsonb_array_elements(p_buckets) with ordinality as e (v, ord)
           order by e.v ->> 'key', e.ord desc) k
   order by k.key
  on conflict on constraint rate_limit_pkey do update
     set capacity = excluded.capacity, refill_per_second = excluded.refill_per_second,
         tokens = least(b.tokens, excluded.capacity)
   where b.capacity <> excluded.capacity or b.refill_per_second <> excluded.refill_per_second;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

-- How long pg_net waits for a function to accept a batch. It answers in milliseconds once booted;
-- the bound only keeps an unresponsive function from holding pg_net's pass for a whole lease.
create function jobs.accept_timeout_ms(p_job jobs.job)
returns int
language sql
immutable
set search_path = ''
as $$
  select least(p_job.lease_seconds, 30) * 1000;
$$;

-- ---------------------------------------------------------------------------------------------
-- Claiming: select due tasks (buckets debited), lease them (the one leasing statement), and either
-- dispatch them as new batches (jobs.claim_and_dispatch) or add them to a batch in flight
-- (jobs.claim_for_batches, which adds the job's context).

-- The claim selection of a job with task_rate_limits: up to p_want due tasks (run_after, id
-- order), skipping a task while any of its buckets (the job's rate_limit_key and the task's
-- rate_keys) is empty, so one throttled account never blocks the others (the scan reads past
-- it, up to 50 × p_want rows, at least 1,000). Returns the ids, locked; the buckets are debited.
-- Takes the job's claim lock first and then bucket rows (job bucket, then task buckets), so
-- concurrent claims never deadlock on buckets and never overspend them.
create function jobs.claim_due_tasks(p_job jobs.job, p_want int)
returns bigint[]
language plpgsql
set search_path = ''
as $$
declare
  v_want int := coalesce(p_want, 0);
  v_ids bigint[] := '{}'::bigint[];
  v_avail jsonb := '{}'::jsonb;
  v_cand record;
  v_key text;
  v_ok boolean;
  v_locked bigint;
begin
  if v_want <= 0 then
    return v_ids;
  end if;
  perform jobs.lock_claims(p_job.name);
  if p_job.rate_limit_key is not null then
    v_want := least(v_want, coalesce(jobs.rate_limit_refill(p_job.rate_limit_key), v_want));
    if v_want <= 0 then
      return v_ids;
    end if;
  end if;

  for v_cand in
    select t.id, t.rate_keys from jobs.task t
     where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
     order by t.run_after, t.id
     limit greatest(v_want * 50, 1000)
  loop
    exit when cardinality(v_ids) >= v_want;
    v_ok := true;
    foreach v_key in array coalesce(v_cand.rate_keys, '{}'::text[]) loop
      if not v_avail ? v_key then
        -- A key without a bucket row is not limited.
        v_avail := v_avail || jsonb_build_object(v_key, coalesce(jobs.rate_limit_refill(v_key), 2147483647));
      end if;
      if (v_avail ->> v_key)::int < 1 then
        v_ok := false;
        exit;
      end if;
    end loop;
    continue when not v_ok;

    v_locked := null;
    select t.id into v_locked from jobs.task t
     where t.id = v_cand.id and t.state = 'queued' and t.run_after <= now()
       for update skip locked;
    continue when v_locked is null;

    v_ids := v_ids || v_locked;
    foreach v_key in array coalesce(v_cand.rate_keys, '{}'::text[]) loop
      v_avail := jsonb_set(v_avail, array[v_key], to_jsonb((v_avail ->> v_key)::int - 1));
    end loop;
  end loop;

  if cardinality(v_ids) > 0 then
    update jobs.rate_limit r set tokens = greatest(r.tokens - c.n, 0)
      from (select k, count(*) as n
              from jobs.task t, unnest(t.rate_keys) as k
             where t.id = any (v_ids)
             group by k) c
     where r.key = c.k;
    if p_job.rate_limit_key is not null then
      update jobs.rate_limit set tokens = greatest(tokens - cardinality(v_ids), 0) where key = p_job.rate_limit_key;
    end if;
  end if;
  return v_ids;
end;
$$;

-- Up to p_want due tasks of a job, locked (SKIP LOCKED), with the job's bucket (or, for jobs with
-- task_rate_limits, every task's buckets: jobs.claim_due_tasks) debited. null: nothing due.
-- The one selection both claims use (jobs.claim_and_dispatch and jobs.claim_for_batches).
create function jobs.select_due_tasks(p_job jobs.job, p_want int)
returns bigint[]
language plpgsql
set search_path = ''
as $$
declare
  v_want int := coalesce(p_want, 0);
  v_ids bigint[];
begin
  if v_want <= 0 then
    return null;
  end if;
  if p_job.task_rate_limits then
    return nullif(jobs.claim_due_tasks(p_job, v_want), '{}'::bigint[]);
  end if;
  if p_job.rate_limit_key is not null then
    v_want := least(v_want, coalesce(jobs.rate_limit_refill(p_job.rate_limit_key), v_want));
    if v_want <= 0 then
      return null;
    end if;
  end if;
  select array_agg(id order by run_after, id) into v_ids
    from (select t.id, t.run_after from jobs.task t
           where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
           order by t.run_after, t.id
           limit v_want
             for update skip locked) due;
  if v_ids is not null and p_job.rate_limit_key is not null then
    update jobs.rate_limit set tokens = greatest(tokens - cardinality(v_ids), 0) where key = p_job.rate_limit_key;
  end if;
  return v_ids;
end;
$$;

-- Leases the given (locked, queued) tasks into a batch: the one leasing statement.
create function jobs.lease_tasks(p_job jobs.job, p_batch_id bigint, p_task_ids bigint[])
returns table (id bigint, lease_token uuid, attempt int, payload jsonb)
language sql
set search_path = ''
as $$
  update jobs.task t
     set state = 'running',
         attempts = t.attempts + 1,
         lease_token = gen_random_uuid(),
         lease_until = now() + make_interval(secs => p_job.lease_seconds),
         batch_id = p_batch_id,
         updated_at = now()
   where t.id = any (p_task_ids)
  returning t.id, t.lease_token, t.attempts, t.payload;
$$;

-- Gives back the bucket tokens the claim of these tasks took, because no provider call was made
-- for them (they were moot): one per task to the job's bucket and, for a job with
-- task_rate_limits, one to each of the task's rate_keys. For such a job the claim lock comes
-- first (a claim in the same transaction holds it already); otherwise only the job's bucket is
-- touched, which a claim of this transaction may hold.
create function jobs.refund_claims(p_job jobs.job, p_task_ids bigint[])
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_job.task_rate_limits then
    perform jobs.lock_claims(p_job.name);
  end if;
  update jobs.rate_limit r
     set tokens = least(r.capacity, r.tokens + c.n)
    from (select k.key, count(*) as n
            from (select unnest(t.rate_keys) as key from jobs.task t
                   where p_job.task_rate_limits and t.id = any (p_task_ids)
                  union all
                  select p_job.rate_limit_key from unnest(p_task_ids) as i (id)
                   where p_job.rate_limit_key is not null) k
           group by k.key) c
   where r.key = c.key;
end;
$$;

-- The contexts of a job's leased tasks (the caller has locked them, running under their lease):
-- p_tasks is the JSON array [{"task_id", "key", "payload", "attempt"}] the job's context function
-- takes. Tasks it calls moot are discarded (state 'discarded', last_error = the reason) and their
-- claim's bucket tokens are given back. One row per task; a job without a context function, or a
-- task the function returned no row for, gets context null.
create function jobs.resolve_contexts(p_job jobs.job, p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
set search_path = ''
as $$
declare
  v_rows jsonb := '{}'::jsonb;
  v_moot bigint[];
begin
  if p_job.context_function is not null then
    execute format(
      'select coalesce(jsonb_object_agg(r.task_id::text, jsonb_build_object(''context'', r.context, ''moot'', r.moot)), ''{}'')
         from %s($1) r where r.task_id is not null',
      p_job.context_function::regprocedure::regproc)
      into v_rows using p_tasks;

    -- Only when something is moot (rare): this update is not run on every claim.
    if jsonb_path_exists(v_rows, '$.* ? (@.moot != null)') then
      with moot as (
        update jobs.task t
           set state = 'discarded', last_error = left(v_rows -> t.id::text ->> 'moot', 1000),
               lease_token = null, lease_until = null, finished_at = now(), updated_at = now()
         where t.id = any (array(select (e ->> 'task_id')::bigint from jsonb_array_elements(p_tasks) e))
           and t.lease_token is not null  -- still running (see jobs.record_outcomes)
           and v_rows -> t.id::text ->> 'moot' is not null
        returning t.id
      )
      select array_agg(m.id) into v_moot from moot m;
      if v_moot is not null then
        perform jobs.refund_claims(p_job, v_moot);
      end if;
    end if;
  end if;

  return query
    select (e ->> 'task_id')::bigint,
           nullif(v_rows -> (e ->> 'task_id') -> 'context', 'null'::jsonb),
           v_rows -> (e ->> 'task_id') ->> 'moot'
      from jsonb_array_elements(p_tasks) e
     order by 1;
end;
$$;

-- A new batch of the given tasks and its request, sent by pg_net when the caller commits. The
-- request carries a fresh single-use batch token, not the project's secret key, and asks the
-- function to answer at once (Prefer: respond-async) so it never holds pg_net's pass.
create function jobs.dispatch_batch(p_job jobs.job, p_run_id bigint, p_task_ids bigint[], p_url text)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_batch_id bigint;
  v_token text;
  v_body jsonb;
  v_request_id bigint;
begin
  insert into jobs.batch (job_name, run_id, size, boot)
  values (p_job.name, p_run_id, cardinality(p_task_ids), pg_catalog.pg_postmaster_start_time())
  returning id into v_batch_id;
  -- 244 random bits (two v4 UUIDs); the batch id in it only helps a reader of logs.
  v_token := 'dwb_' || v_batch_id || '_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  update jobs.batch set token_hash = pg_catalog.sha256(convert_to(v_token, 'UTF8')) where id = v_batch_id;

  select jsonb_build_object(
           'job', p_job.name,
           'batch_id', v_batch_id,
           'tasks', jsonb_agg(jsonb_build_object(
             'id', l.id, 'lease_token', l.lease_token, 'attempt', l.attempt, 'payload', l.payload)
             order by l.id))
    into v_body
    from jobs.lease_tasks(p_job, v_batch_id, p_task_ids) l;

  v_request_id := net.http_post(
    url := p_url,
    body := v_body,
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'Authorization', 'Bearer ' || v_token,
      'Prefer', 'respond-async'),
    timeout_milliseconds := jobs.accept_timeout_ms(p_job));
  update jobs.batch set request_id = v_request_id where id = v_batch_id;
  return v_request_id;
end;
$$;

-- Claims up to max_in_flight batches of due tasks and sends one request per batch.
-- The caller holds the job row lock (jobs.tick, jobs.pump, jobs.heartbeat).
create function jobs.claim_and_dispatch(p_job jobs.job, p_run_id bigint)
returns table (claimed int, request_ids bigint[])
language plpgsql
set search_path = ''
as $$
declare
  v_slots int;
  v_ids bigint[];
  v_url text;
  v_requests bigint[] := '{}'::bigint[];
begin
  if not p_job.enabled or p_job.paused or coalesce(p_job.suspended_until > now(), false) then
    return query select 0, v_requests;
    return;
  end if;
  select p_job.max_in_flight - count(*) into v_slots
    from jobs.batch where job_name = p_job.name and settled_at is null;
  v_ids := jobs.select_due_tasks(p_job, v_slots * p_job.batch_size);
  if v_ids is null then
    return query select 0, v_requests;
    return;
  end if;

  v_url := rtrim(jobs.vault_secret('project_url'), '/') || '/functions/v1/' || p_job.target_function;
  for i in 0 .. (cardinality(v_ids) - 1) / p_job.batch_size loop
    v_requests := v_requests || jobs.dispatch_batch(
      p_job, p_run_id, v_ids[i * p_job.batch_size + 1 : (i + 1) * p_job.batch_size], v_url);
  end loop;
  return query select cardinality(v_ids), v_requests;
end;
$$;

-- What a function's claims ahead ask for, all at once: for each batch still in flight, up to its
-- count (at most 100) of its job's next due tasks, claimed into that batch, each with what the
-- job's context function returns for it. p_claims: [{"batch_id", "count"}] (counts of one batch
-- add up). Per job: one selection of due tasks (every bucket honoured) and one context call for
-- all its batches, the first batch served first. Moot tasks are discarded, the bucket tokens their
-- claim took are given back (no provider call was made), and the claim asks again for the
-- difference, at most 10 rounds. Fewer rows than asked: nothing more for those batches now.
create function jobs.claim_for_batches(p_claims jsonb)
returns table (batch_id bigint, task_id bigint, lease_token uuid, attempt int, payload jsonb, context jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_batches bigint[];
  v_missing int[];
  v_ids bigint[];
  v_from int;
  v_claimed jsonb;
  v_contexts jsonb;
begin
  for v_job in
    select j.* from jobs.job j
     where j.name in (select b.job_name from jobs.batch b
                       where b.id = any (array(select (e ->> 'batch_id')::bigint from jsonb_array_elements(p_claims) e))
                         and b.settled_at is null)
     order by j.name
  loop
    continue when not v_job.enabled or v_job.paused or coalesce(v_job.suspended_until > now(), false);
    select array_agg(c.id order by c.id), array_agg(c.n order by c.id)
      into v_batches, v_missing
      from (select (e ->> 'batch_id')::bigint as id, least(sum((e ->> 'count')::int), 100)::int as n
              from jsonb_array_elements(p_claims) e
             group by 1) c
      join jobs.batch b on b.id = c.id
     where b.job_name = v_job.name and b.settled_at is null and c.n > 0;
    continue when v_batches is null;
    -- Discarding a moot task is an outcome: the outcome lock comes before the claim lock.
    perform jobs.lock_outcomes(v_job.name, false);

    for i in 1 .. 10 loop
      v_ids := jobs.select_due_tasks(v_job, (select sum(m)::int from unnest(v_missing) m));
      exit when v_ids is null;
      -- The due tasks in order: the first batch's share first. One leasing statement per batch.
      v_claimed := '[]'::jsonb;
      v_from := 1;
      for k in 1 .. cardinality(v_batches) loop
        continue when v_missing[k] <= 0;
        exit when v_from > cardinality(v_ids);
        v_claimed := v_claimed || coalesce((
          select jsonb_agg(jsonb_build_object('batch_id', v_batches[k], 'task_id', l.id, 'key', t.key,
                                              'lease_token', l.lease_token, 'attempt', l.attempt, 'payload', l.payload))
            from jobs.lease_tasks(v_job, v_batches[k], v_ids[v_from : v_from + v_missing[k] - 1]) l
            -- a lookup by primary key per task (a plain join hashed the whole table)
            cross join lateral (select x.key from jobs.task x where x.id = l.id limit 1) t), '[]'::jsonb);
        v_from := v_from + v_missing[k];
      end loop;

      select coalesce(jsonb_object_agg(x.task_id::text, jsonb_build_object('context', x.context, 'moot', x.moot)), '{}')
        into v_contexts
        from jobs.resolve_contexts(v_job, (
               select jsonb_agg(jsonb_build_object('task_id', e -> 'task_id', 'key', e -> 'key',
                                                   'payload', e -> 'payload', 'attempt', e -> 'attempt')
                                order by (e ->> 'task_id')::bigint)
                 from jsonb_array_elements(v_claimed) e)) x;
      return query
        select c.batch_id, c.task_id, c.lease_token, c.attempt, c.payload,
               nullif(v_contexts -> c.task_id::text -> 'context', 'null'::jsonb)
          from jsonb_to_recordset(v_claimed) as c (batch_id bigint, task_id bigint, lease_token uuid, attempt int, payload jsonb)
         where v_contexts -> c.task_id::text ->> 'moot' is null
         order by c.batch_id, c.task_id;
      -- Nothing moot: every batch got what was due. Otherwise ask again for what the moot ones left.
      exit when not jsonb_path_exists(v_contexts, '$.* ? (@.moot != null)');
      select array_agg(v_missing[k] - coalesce(f.n, 0)::int order by k)
        into v_missing
        from generate_subscripts(v_batches, 1) k
        left join (select (e ->> 'batch_id')::bigint as b, count(*) as n
                     from jsonb_array_elements(v_claimed) e
                    where v_contexts -> (e ->> 'task_id') ->> 'moot' is null
                    group by 1) f on f.b = v_batches[k];
      exit when (select sum(m) from unnest(v_missing) m) <= 0;
    end loop;
  end loop;
end;
$$;

-- One batch's claims ahead (jobs.claim_for_batches for a single batch): up to p_count (1–100)
-- next due tasks claimed into it, with their contexts, moot ones replaced.
create function jobs.claim_tasks(p_batch_id bigint, p_count int default 1)
returns table (task_id bigint, lease_token uuid, attempt int, payload jsonb, context jsonb)
language plpgsql
set search_path = ''
as $$
begin
  return query
    select c.task_id, c.lease_token, c.attempt, c.payload, c.context
      from jobs.claim_for_batches(jsonb_build_array(jsonb_build_object(
             'batch_id', p_batch_id, 'count', least(greatest(coalesce(p_count, 1), 1), 100)))) c
     order by c.task_id;
end;
$$;

-- What the function needs for the tasks it was sent (the job's context function): one row per
-- task still running under the given lease (by job, then id); others get no row. Moot ones are
-- discarded here, their claim's bucket tokens given back, and come back with moot set.
create function jobs.task_contexts(p_task_ids bigint[], p_lease_tokens uuid[])
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
set search_path = ''
as $$
declare
  v_leased jsonb;
  v_job jobs.job;
begin
  if cardinality(p_task_ids) is distinct from cardinality(p_lease_tokens) then
    raise exception 'jobs.task_contexts: % task ids but % lease tokens',
      cardinality(p_task_ids), cardinality(p_lease_tokens) using errcode = 'invalid_parameter_value';
  end if;
  perform jobs.lock_outcomes(j.job_name, false)
     from (select distinct t.job_name from jobs.task t where t.id = any (p_task_ids) order by t.job_name) j;
  select jsonb_agg(jsonb_build_object('job_name', l.job_name, 'task_id', l.id, 'key', l.key, 'payload', l.payload,
                                      'attempt', l.attempts) order by l.id)
    into v_leased
    from (select t.id, t.job_name, t.key, t.payload, t.attempts
            from unnest(p_task_ids, p_lease_tokens) as i (id, lease_token)
            join jobs.task t on t.id = i.id and t.lease_token = i.lease_token
           where t.id = any (p_task_ids)  -- (the token match is the running check: see jobs.record_outcomes)
           order by t.id
             for update of t) l;
  if v_leased is null then
    return;
  end if;
  for v_job in
    select j.* from jobs.job j
     where j.name in (select e ->> 'job_name' from jsonb_array_elements(v_leased) e)
     order by j.name
  loop
    return query
      select x.task_id, x.context, x.moot
        from jobs.resolve_contexts(v_job, (
               select jsonb_agg(e - 'job_name' order by (e ->> 'task_id')::bigint)
                 from jsonb_array_elements(v_leased) e
                where e ->> 'job_name' = v_job.name)) x;
  end loop;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Outcomes

-- Records a group of outcomes in one transaction, each task decided on its own lease.
-- p_outcomes: JSON array of
--   {"task_id", "lease_token", "outcome": "ok" | "retry" | "dead" | "discard" | "release",
--    "error"?, "after"?, "pause"?, "data"?, "result"?}
--   after   retry delay in seconds (null: the job's backoff);
--   pause   a rate key of that task (or the job's rate_limit_key) that a retry empties for
--           coalesce(after, 60) seconds (the provider said "wait"); other keys are ignored;
--   data    whatever the function's perform put in the outcome, handed to the job's apply
--           function and NEVER stored (it may hold secrets, e.g. a new token);
--   result  stored as jobs.task.result of a succeeded task (unless apply returns one).
-- Invalid input raises invalid_parameter_value, naming the element and field, before anything
-- is written. Then: the outcome locks (shared, per job in name order), the tasks running under
-- the given lease (FOR UPDATE, id order; any other is 'lease_lost' and changes nothing), the
-- job's apply function once with all its tasks whose outcome is ok, retry, dead or discard
-- (not release; it may change an outcome to discard, dead or retry, set the error or the result),
-- then the states:
--   ok      → succeeded                        retry → queued after `after` or the backoff,
--   dead    → dead                                     dead once attempts >= max_attempts
--   discard → discarded (moot)                 release → queued at once with the attempt given
--                                                back; the job's last_error is set and its
--                                                dispatch suspended for a minute
-- Returns one row per element, in input order: succeeded | queued | dead | discarded | lease_lost.
-- A task given twice: the first element with its lease counts, the others are lease_lost.
create function jobs.record_outcomes(p_outcomes jsonb)
returns table (task_id bigint, state text)
language plpgsql
set search_path = ''
-- One plan per statement and session: re-planning them on every call (plpgsql's custom plans,
-- which their parameters keep winning) cost more than the work of a small group. Every table
-- access here is by primary key, which the generic plans use whatever the statistics.
set plan_cache_mode = force_generic_plan
as $$
declare
  v_bad record;
  v_bad_override record;
  v_ids bigint[];
  v_leased bigint[];
  v_work jsonb;
  v_over jsonb := '{}'::jsonb;
  v_apply record;
  v_input jsonb;
  v_rows jsonb;
  v_states jsonb;
  v_pause record;
begin
  if p_outcomes is null or jsonb_typeof(p_outcomes) <> 'array' then
    raise exception 'jobs.record_outcomes: expected a JSON array of outcomes, got %',
      coalesce(jsonb_typeof(p_outcomes), 'null') using errcode = 'invalid_parameter_value';
  end if;
  select x.ord, x.problem into v_bad
    from (select e.ord, case
            when jsonb_typeof(e.v) <> 'object' then format('expected an object, got %s', e.v)
            when coalesce(jsonb_typeof(e.v -> 'task_id'), 'null') = 'null' then 'task_id is required'
            when not (jsonb_typeof(e.v -> 'task_id') in ('number', 'string') and (e.v ->> 'task_id') ~ '^[0-9]{1,18}$')
              then format('task_id must be a task id (a positive integer), got %s', e.v -> 'task_id')
            when coalesce(jsonb_typeof(e.v -> 'lease_token'), 'null') = 'null' then 'lease_token is required'
            when not (jsonb_typeof(e.v -> 'lease_token') = 'string'
                      and (e.v ->> 'lease_token') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
              then format('lease_token must be a uuid, got %s', e.v -> 'lease_token')
            when coalesce(jsonb_typeof(e.v -> 'outcome'), 'null') = 'null'
              then 'outcome is required (ok, retry, dead, discard or release)'
            when not (jsonb_typeof(e.v -> 'outcome') = 'string'
                      and (e.v ->> 'outcome') in ('ok', 'retry', 'dead', 'discard', 'release'))
              then format('outcome must be one of ok, retry, dead, discard, release; got %s', e.v -> 'outcome')
            when coalesce(jsonb_typeof(e.v -> 'error'), 'null') not in ('null', 'string')
              then format('error must be a string, got %s', e.v -> 'error')
            when coalesce(jsonb_typeof(e.v -> 'after'), 'null') not in ('null', 'number')
              then format('after must be a number of seconds, got %s', e.v -> 'after')
            when (e.v ->> 'after')::numeric < 0 then format('after must be >= 0 seconds, got %s', e.v -> 'after')
            when coalesce(jsonb_typeof(e.v -> 'pause'), 'null') not in ('null', 'string')
              then format('pause must be a rate key (a string), got %s', e.v -> 'pause')
          end as problem
          from jsonb_array_elements(p_outcomes) with ordinality as e (v, ord)) x
   where x.problem is not null
   order by x.ord
   limit 1;
  if found then
    raise exception 'jobs.record_outcomes: p_outcomes[%]: %', v_bad.ord - 1, v_bad.problem
      using errcode = 'invalid_parameter_value';
  end if;
  if jsonb_array_length(p_outcomes) = 0 then
    return;
  end if;

  -- Outcome locks first (shared, one per job, in name order), then the tasks in id order.
  -- Every read of jobs.task here goes through id = any (…), the primary key. A task holds a
  -- lease token only while it is running (task_lease_iff_running), so matching the token is the
  -- running check; a state = 'running' clause would steer the plan to task_running_lease, a
  -- scan of every running task (and of its dead entries).
  v_ids := array(select (e ->> 'task_id')::bigint from jsonb_array_elements(p_outcomes) e);
  perform jobs.lock_outcomes(j.job_name, false)
     from (select distinct t.job_name from jobs.task t where t.id = any (v_ids) order by t.job_name) j;

  select coalesce(jsonb_agg(to_jsonb(w) order by w.task_id), '[]'::jsonb), array_agg(w.task_id)
    into v_work, v_leased
    from (select distinct on (l.id) l.ord, l.id as task_id, l.job_name, l.apply_function, l.key, l.payload,
                 l.attempts as attempt, l.rate_keys, l.outcome, l.error, l.after, l.pause, l.data, l.result
            from (select i.ord, t.id, t.job_name, j.apply_function, t.key, t.payload, t.attempts, t.rate_keys,
                         i.v ->> 'outcome' as outcome, i.v ->> 'error' as error, (i.v ->> 'after')::numeric as after,
                         i.v ->> 'pause' as pause, nullif(i.v -> 'data', 'null'::jsonb) as data,
                         nullif(i.v -> 'result', 'null'::jsonb) as result
                    from jsonb_array_elements(p_outcomes) with ordinality as i (v, ord)
                    join jobs.task t on t.id = (i.v ->> 'task_id')::bigint and t.lease_token = (i.v ->> 'lease_token')::uuid
                    join jobs.job j on j.name = t.job_name
                   where t.id = any (v_ids)
                   order by t.id
                     for update of t) l
           order by l.id, l.ord) w;

  -- The domain write: each job's apply function, once, with its tasks (not the released ones).
  for v_apply in
    select distinct w ->> 'job_name' as name, w ->> 'apply_function' as apply_function
      from jsonb_array_elements(v_work) w
     where w ->> 'apply_function' is not null and w ->> 'outcome' <> 'release'
     order by 1
  loop
    select jsonb_agg(w - 'ord' - 'job_name' - 'apply_function' - 'rate_keys' - 'pause' - 'result'
                     order by (w ->> 'task_id')::bigint)
      into v_input
      from jsonb_array_elements(v_work) w
     where w ->> 'job_name' = v_apply.name and w ->> 'outcome' <> 'release';
    -- (The domain's function plans as it would anywhere else: see plan_cache_mode above.)
    perform pg_catalog.set_config('plan_cache_mode', 'auto', true);
    execute format(
      'select coalesce(jsonb_object_agg(r.task_id::text, jsonb_build_object(
                 ''outcome'', r.outcome, ''error'', r.error, ''result'', r.result)), ''{}'')
         from %s($1) r
        where r.task_id in (select (e ->> ''task_id'')::bigint from jsonb_array_elements($1) e)',
      v_apply.apply_function::regprocedure::regproc)
      into v_rows using v_input;
    perform pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    select o.key, o.value ->> 'outcome' as outcome into v_bad_override
      from jsonb_each(v_rows) o
     where o.value ->> 'outcome' not in ('discard', 'dead', 'retry')
     limit 1;
    if found then
      raise exception 'jobs.record_outcomes: % returned outcome % for task %; an apply function may only change an outcome to discard, dead or retry (or null to keep it)',
        v_apply.apply_function, v_bad_override.outcome, v_bad_override.key using errcode = 'invalid_parameter_value';
    end if;
    v_over := v_over || v_rows;
  end loop;

  -- The states, from the outcomes as they stand after apply.
  with f as (
    select x.ord, x.task_id, x.job_name, x.after,
           coalesce(v_over -> x.task_id::text ->> 'outcome', x.outcome) as final,
           coalesce(v_over -> x.task_id::text ->> 'error', x.error) as final_error,
           coalesce(nullif(v_over -> x.task_id::text -> 'result', 'null'::jsonb), x.result) as final_result
      from jsonb_to_recordset(v_work)
        as x (ord bigint, task_id bigint, job_name text, outcome text, error text, after numeric, result jsonb)
  ),
  written as (
    update jobs.task t
       set state = case
             when f.final = 'ok' then 'succeeded'
             when f.final = 'discard' then 'discarded'
             when f.final = 'release' then 'queued'
             when f.final = 'retry' and t.attempts < j.max_attempts then 'queued'
             else 'dead' end,
           attempts = case when f.final = 'release' then t.attempts - 1 else t.attempts end,
           run_after = case
             when f.final = 'release' then now()
             when f.final = 'retry' and t.attempts < j.max_attempts then now() + make_interval(secs => coalesce(
               f.after,
               jobs.backoff_seconds(j.backoff_base_seconds, j.backoff_cap_seconds, j.backoff_jitter, t.attempts, random())
             )::double precision)
             else t.run_after end,
           result = case when f.final = 'ok' then f.final_result else t.result end,
           last_error = case
             when f.final = 'ok' then t.last_error
             when f.final = 'discard' then left(coalesce(f.final_error, 'discarded'), 1000)
             when f.final = 'release' then left(coalesce(f.final_error, 'released'), 1000)
             else left(coalesce(f.final_error, 'failed without a message'), 1000) end,
           lease_token = null, lease_until = null,
           finished_at = case
             when f.final in ('ok', 'discard', 'dead') or (f.final = 'retry' and t.attempts >= j.max_attempts)
             then now() end,
           updated_at = now()
      from f join jobs.job j on j.name = f.job_name
     where t.id = any (v_leased) and t.id = f.task_id
    returning t.id, t.state
  )
  select jsonb_object_agg(f.ord::text, w.state) into v_states
    from written w join f on f.task_id = w.id;

  -- A release is a configuration error: one clear error on the job, dispatch held for a minute.
  -- (The job row before the claim lock of a pause: the lock order. apply never sees a release,
  -- so its outcome and error stand.)
  if jsonb_path_exists(v_work, '$[*] ? (@.outcome == "release")') then
    update jobs.job j
       set last_error = r.reason, last_error_at = now(), suspended_until = now() + interval '1 minute'
      from (select distinct on (x.job_name) x.job_name, left(coalesce(x.error, 'released'), 1000) as reason
              from jsonb_to_recordset(v_work) as x (ord bigint, job_name text, outcome text, error text)
             where x.outcome = 'release'
             order by x.job_name, x.ord desc) r
     where j.name = r.job_name;
  end if;

  -- A retry that names one of its task's buckets empties it for the provider's wait (whatever
  -- apply made of the outcome: the provider said so).
  if jsonb_path_exists(v_work, '$[*] ? (@.outcome == "retry" && @.pause != null)') then
    for v_pause in
      select x.job_name, x.pause, max(coalesce(x.after, 60)) as seconds
        from jsonb_to_recordset(v_work) as x (job_name text, outcome text, pause text, after numeric, rate_keys text[])
        join jobs.job j on j.name = x.job_name
       where x.outcome = 'retry' and x.pause is not null
         and (x.pause = any (coalesce(x.rate_keys, '{}'::text[])) or x.pause = j.rate_limit_key)
       group by x.job_name, x.pause
       order by x.job_name, x.pause
    loop
      perform jobs.rate_limit_pause(v_pause.pause, v_pause.seconds, v_pause.job_name);
    end loop;
  end if;

  return query
    select (i.v ->> 'task_id')::bigint, coalesce(v_states ->> i.ord::text, 'lease_lost')
      from jsonb_array_elements(p_outcomes) with ordinality as i (v, ord)
     order by i.ord;
end;
$$;

-- One task's outcome (the single-task wrappers below). Raises DWL01 "lease lost" when the task
-- is not running under p_lease_token: nothing changes, and a domain write the caller made in the
-- same transaction is rolled back with it. Returns the task's new state.
create function jobs.record_outcome(p_task_id bigint, p_lease_token uuid, p_outcome jsonb)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_state text;
begin
  if p_task_id is null or p_lease_token is null then
    raise exception 'task id and lease token are required' using errcode = 'null_value_not_allowed';
  end if;
  select r.state into v_state
    from jobs.record_outcomes(jsonb_build_array(
           p_outcome || jsonb_build_object('task_id', p_task_id, 'lease_token', p_lease_token))) r;
  if v_state = 'lease_lost' then
    raise exception 'lease lost: task % is not running under this lease token', p_task_id
      using errcode = 'DWL01',
            detail = 'It was completed, cancelled, or its lease expired and it was claimed again.',
            hint = 'Drop the result; the current lease holder reports the outcome.';
  end if;
  return v_state;
end;
$$;

-- Outcome ok: → succeeded. result must not contain secrets (it is kept for inspection).
create function jobs.complete(p_task_id bigint, p_lease_token uuid, p_result jsonb default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform jobs.record_outcome(p_task_id, p_lease_token, jsonb_build_object('outcome', 'ok', 'result', p_result));
end;
$$;

-- Outcome retry (transient: queued after retry_after seconds, the provider's Retry-After, or the
-- job's backoff; dead once out of attempts) or dead (permanent). Returns the new state.
create function jobs.fail(
  p_task_id bigint, p_lease_token uuid, p_error text,
  p_retry_after_seconds numeric default null, p_permanent boolean default false)
returns text
language plpgsql
set search_path = ''
as $$
begin
  return jobs.record_outcome(p_task_id, p_lease_token, jsonb_build_object(
    'outcome', case when coalesce(p_permanent, false) then 'dead' else 'retry' end,
    'error', p_error, 'after', p_retry_after_seconds));
end;
$$;

-- Outcome discard: the work is moot (e.g. the account was disconnected while the task waited).
-- Terminal state 'discarded': nothing to retry, nothing for an operator to do.
create function jobs.discard(p_task_id bigint, p_lease_token uuid, p_reason text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform jobs.record_outcome(p_task_id, p_lease_token, jsonb_build_object('outcome', 'discard', 'error', p_reason));
end;
$$;

-- Outcome release: the function cannot work at all (missing secret, rejected client
-- credentials). The tasks go back without using up an attempt, the reason goes on the job, and
-- dispatch is held for a minute, so a broken configuration shows up in jobs.job.last_error
-- instead of as a pile of dead tasks. Tasks not running under their token are skipped.
-- Returns how many were released.
create function jobs.release(p_task_ids bigint[], p_lease_tokens uuid[], p_reason text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_released int;
begin
  if cardinality(p_task_ids) is distinct from cardinality(p_lease_tokens) then
    raise exception 'jobs.release: % task ids but % lease tokens',
      cardinality(p_task_ids), cardinality(p_lease_tokens) using errcode = 'invalid_parameter_value';
  end if;
  select count(*) filter (where r.state = 'queued') into v_released
    from jobs.record_outcomes(coalesce(
           (select jsonb_agg(jsonb_build_object('task_id', i.id, 'lease_token', i.lease_token,
                                                'outcome', 'release', 'error', p_reason) order by i.n)
              from unnest(p_task_ids, p_lease_tokens) with ordinality as i (id, lease_token, n)),
           '[]'::jsonb)) r;
  return v_released;
end;
$$;

-- A function's one call per group, in one transaction: its outcomes first (jobs.record_outcomes:
-- each decided on its own lease, a lost one is 'lease_lost' and does not fail the group), then
-- its claims ahead (jobs.claim_for_batches: one selection and one context call per job).
--   p_outcomes  as for jobs.record_outcomes (null or [] : none)
--   p_claims    JSON array of {"batch_id", "count"} (null or [] : none); counts of one batch add up
-- Returns {"outcomes": [{"task_id", "state"}],
--          "claimed": [{"batch_id", "task_id", "lease_token", "attempt", "payload", "context"}]}.
create function jobs.report(p_outcomes jsonb, p_claims jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_outcomes jsonb := coalesce(p_outcomes, '[]'::jsonb);
  v_claims jsonb := coalesce(p_claims, '[]'::jsonb);
  v_bad record;
  v_recorded jsonb := '[]'::jsonb;
  v_claimed jsonb := '[]'::jsonb;
begin
  if jsonb_typeof(v_claims) <> 'array' then
    raise exception 'jobs.report: p_claims must be a JSON array of {"batch_id", "count"}, got %', jsonb_typeof(v_claims)
      using errcode = 'invalid_parameter_value';
  end if;
  select x.ord, x.problem into v_bad
    from (select e.ord, case
            when jsonb_typeof(e.v) <> 'object' then format('expected an object {"batch_id", "count"}, got %s', e.v)
            when not (coalesce(jsonb_typeof(e.v -> 'batch_id'), 'null') in ('number', 'string')
                      and (e.v ->> 'batch_id') ~ '^[0-9]{1,18}$')
              then format('batch_id must be a batch id (a positive integer), got %s', coalesce((e.v -> 'batch_id')::text, 'nothing'))
            when not (coalesce(jsonb_typeof(e.v -> 'count'), 'null') = 'number' and (e.v ->> 'count') ~ '^[0-9]{1,9}$')
              then format('count must be an integer >= 0, got %s', coalesce((e.v -> 'count')::text, 'nothing'))
          end as problem
          from jsonb_array_elements(v_claims) with ordinality as e (v, ord)) x
   where x.problem is not null
   order by x.ord
   limit 1;
  if found then
    raise exception 'jobs.report: p_claims[%]: %', v_bad.ord - 1, v_bad.problem using errcode = 'invalid_parameter_value';
  end if;

  -- Every outcome lock this call takes, in job-name order, before any task or bucket: the
  -- outcomes' jobs and the claims' (a claim discards moot tasks).
  perform jobs.lock_outcomes(j.job_name, false)
     from (select t.job_name from jobs.task t
            where t.id = any (array(
                    select (e ->> 'task_id')::bigint
                      from jsonb_array_elements(case when jsonb_typeof(v_outcomes) = 'array' then v_outcomes
                                                     else '[]'::jsonb end) e
                     where (e ->> 'task_id') ~ '^[0-9]{1,18}$'))
           union
           select b.job_name from jobs.batch b
            where b.id = any (array(select (c ->> 'batch_id')::bigint from jsonb_array_elements(v_claims) c))
           order by 1) j;

  if v_outcomes <> '[]'::jsonb then
    select coalesce(jsonb_agg(jsonb_build_object('task_id', r.task_id, 'state', r.state) order by r.n), '[]'::jsonb)
      into v_recorded
      from jobs.record_outcomes(v_outcomes) with ordinality as r (task_id, state, n);
  end if;

  if v_claims <> '[]'::jsonb then
    select coalesce(jsonb_agg(jsonb_build_object(
             'batch_id', n.batch_id, 'task_id', n.task_id, 'lease_token', n.lease_token,
             'attempt', n.attempt, 'payload', n.payload, 'context', n.context) order by n.batch_id, n.task_id), '[]'::jsonb)
      into v_claimed
      from jobs.claim_for_batches(v_claims) n;
  end if;

  return jsonb_build_object('outcomes', v_recorded, 'claimed', v_claimed);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Batches in flight: accept, keep alive, reap, finish

-- The function accepts a batch before answering 202. p_token is the credential the request
-- carried, or null when the caller authenticated with the project's secret key. Extends the
-- batch's leases (the pass and the cold start may have used part of them). Raises, changing nothing:
--   DWB01 no such batch · DWB02 credential refused · DWB03 batch no longer in flight (settled, or
--   its lease ran out before anyone accepted it) · DWB04 already accepted (a replayed request).
create function jobs.accept_batch(p_batch_id bigint, p_token text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_batch jobs.batch;
  v_job jobs.job;
  v_running int;
begin
  select * into v_batch from jobs.batch where id = p_batch_id for update;
  if not found then
    raise exception 'no batch %', p_batch_id using errcode = 'DWB01';
  end if;
  if p_token is not null and (v_batch.token_hash is null
      or v_batch.token_hash <> pg_catalog.sha256(convert_to(p_token, 'UTF8'))) then
    raise exception 'batch credential refused for batch %', p_batch_id using errcode = 'DWB02';
  end if;
  if v_batch.accepted_at is not null then
    raise exception 'batch % was already accepted at %', p_batch_id, v_batch.accepted_at using errcode = 'DWB04';
  end if;
  select * into v_job from jobs.job where name = v_batch.job_name;
  if v_batch.settled_at is not null
     or (p_token is not null and v_batch.dispatched_at < now() - make_interval(secs => v_job.lease_seconds)) then
    raise exception 'batch % is no longer in flight', p_batch_id using errcode = 'DWB03';
  end if;
  update jobs.batch set accepted_at = now(), alive_at = now() where id = p_batch_id;
  v_running := jobs.extend_batch_leases(v_job, p_batch_id);
  return jsonb_build_object('batch_id', p_batch_id, 'job', v_job.name, 'running', v_running,
                            'lease_seconds', v_job.lease_seconds);
end;
$$;

-- Pushes the leases of a batch's running tasks lease_seconds ahead. Tasks an outcome call holds
-- right now are skipped (SKIP LOCKED: no lock-order deadlock with grouped outcome calls); they
-- are about to leave 'running' anyway. Returns how many tasks were extended.
create function jobs.extend_batch_leases(p_job jobs.job, p_batch_id bigint)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_count int;
begin
  update jobs.task t
     set lease_until = greatest(t.lease_until, now() + make_interval(secs => p_job.lease_seconds))
   where t.id in (select x.id from jobs.task x
                   where x.job_name = p_job.name and x.batch_id = p_batch_id and x.state = 'running'
                     for update skip locked);
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

-- The function's lease heartbeat while it works on an accepted batch (every lease_seconds / 3).
-- Returns {"running": n, "in_flight": bool}; in_flight false means the batch was settled
-- (e.g. recovered after a restart): the function should stop taking more work for it.
create function jobs.keep_batch_alive(p_batch_id bigint)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_job_name text;
  v_settled timestamptz;
begin
  select b.job_name, b.settled_at into v_job_name, v_settled from jobs.batch b where b.id = p_batch_id;
  if not found then
    raise exception 'no batch %', p_batch_id using errcode = 'DWB01';
  end if;
  select * into v_job from jobs.job where name = v_job_name;
  update jobs.batch set alive_at = now() where id = p_batch_id and settled_at is null;
  return jsonb_build_object('running', jobs.extend_batch_leases(v_job, p_batch_id),
                            'in_flight', v_settled is null);
end;
$$;

-- Running tasks nobody works on any more (their lease expired, or their function finished the
-- batch without them) go back to the queue at once: no backoff, since the attempt crashed rather
-- than failed; at max_attempts they end dead. The caller has locked them. Returns how many.
create function jobs.requeue_abandoned(p_job jobs.job, p_task_ids bigint[], p_why text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_count int;
begin
  update jobs.task t
     set state = case when t.attempts >= p_job.max_attempts then 'dead' else 'queued' end,
         run_after = now(),
         finished_at = case when t.attempts >= p_job.max_attempts then now() end,
         lease_token = null, lease_until = null,
         last_error = format('%s (attempt %s of %s)', p_why, t.attempts, p_job.max_attempts),
         updated_at = now()
   where t.id = any (p_task_ids) and t.state = 'running';
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

-- Returns in-flight batches' leftovers to the queue. The caller holds the job row lock.
--  * Running tasks whose lease expired (the function died, or never accepted in time) become
--    claimable at once (no backoff: the attempt crashed), or dead after max_attempts.
--  * A batch dispatched in an earlier server start that no function accepted is lost (pg_net's
--    queue is UNLOGGED): settled, and its tasks queued at once with the attempt given back.
--    Its request_id is never looked up: after a crash pg_net's ids start again at 1.
--  * A batch of this server start that no function accepted but pg_net got an answer for: 401,
--    403, 404, 5xx from the gateway or an unreachable function mean the tasks never ran (attempt
--    given back, no backoff). Any other answer (a function that does not accept batches and
--    returned without reporting some tasks) counts the attempt, with backoff.
--    A pg_net timeout is left alone: the function may still accept late; the lease decides.
--  * An accepted batch is left to its leases; once none of its tasks is running and the function
--    has been silent for a lease, it is settled (the function died before jobs.finish_batch).
-- Batches and expired tasks are taken with SKIP LOCKED: rows someone else holds wait for later.
create function jobs.reap(p_job jobs.job)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_batch record;
  v_count int;
  v_total int := 0;
  v_never_ran boolean;
  v_error text;
  v_boot timestamptz := pg_catalog.pg_postmaster_start_time();
begin
  if not exists (select 1 from jobs.batch where job_name = p_job.name and settled_at is null)
     and not exists (select 1 from jobs.task where job_name = p_job.name and state = 'running') then
    return 0;
  end if;

  v_total := v_total + jobs.requeue_abandoned(p_job,
    array(select x.id from jobs.task x
           where x.job_name = p_job.name and x.state = 'running' and x.lease_until < now()
             for update skip locked),
    format('lease expired after %s s', p_job.lease_seconds));

  for v_batch in
    select b.id, b.dispatched_at, b.accepted_at, b.alive_at,
           b.boot is distinct from v_boot as earlier_boot,
           r.status_code, r.error_msg, coalesce(r.timed_out, false) as timed_out,
           (r.id is not null) as answered, left(r.content, 300) as content
      from jobs.batch b
      left join net._http_response r
        on r.id = b.request_id and b.boot = v_boot and r.created >= b.dispatched_at
     where b.job_name = p_job.name and b.settled_at is null
       for update of b skip locked
  loop
    v_error := null;
    if v_batch.accepted_at is null and v_batch.earlier_boot then
      v_never_ran := true;
      v_error := 'dispatch lost: the database restarted before the function accepted the batch';
    elsif v_batch.accepted_at is null and v_batch.answered and not v_batch.timed_out then
      -- 409: the function refused a batch whose lease ran out before it arrived; 502/503/504
      -- come from a gateway or a function that could not reach the database, 546 from an
      -- instance over its limits before it started. A 500 may have done some work.
      v_never_ran := v_batch.status_code is null or v_batch.status_code in (401, 403, 404, 409, 502, 503, 504, 546);
      v_error := case
        when v_batch.status_code is null then format('request to %s failed: %s', p_job.target_function, v_batch.error_msg)
        when v_never_ran then format('%s answered HTTP %s: %s', p_job.target_function, v_batch.status_code,
                                     coalesce(v_batch.content, ''))
        else format('%s answered HTTP %s without reporting this task: %s',
                    p_job.target_function, v_batch.status_code, coalesce(v_batch.content, ''))
      end;
    end if;

    if v_error is not null then
      with returned as (
        update jobs.task t
           set state = case when not v_never_ran and t.attempts >= p_job.max_attempts then 'dead' else 'queued' end,
               attempts = case when v_never_ran then t.attempts - 1 else t.attempts end,
               run_after = case when v_never_ran then now() else now() + make_interval(secs => jobs.backoff_seconds(
                 p_job.backoff_base_seconds, p_job.backoff_cap_seconds, p_job.backoff_jitter,
                 t.attempts, random())::double precision) end,
               finished_at = case when not v_never_ran and t.attempts >= p_job.max_attempts then now() end,
               lease_token = null, lease_until = null,
               last_error = v_error,
               updated_at = now()
         where t.job_name = p_job.name and t.state = 'running' and t.batch_id = v_batch.id
        returning 1
      )
      select count(*) into v_count from returned;
      update jobs.batch
         set settled_at = clock_timestamp(),
             http_status = v_batch.status_code, http_error = coalesce(v_batch.error_msg, v_error)
       where id = v_batch.id;
      if v_never_ran and v_count > 0 and not v_batch.earlier_boot then
        -- 401/403/404 are a configuration error (wrong URL, function not deployed, key): hold
        -- dispatch for a minute, as jobs.release does, instead of retrying it every heartbeat.
        update jobs.job
           set last_error = v_error, last_error_at = now(),
               suspended_until = case when v_batch.status_code in (401, 403, 404)
                                      then now() + interval '1 minute' else suspended_until end
         where name = p_job.name;
      end if;
      v_total := v_total + v_count;
    elsif coalesce(v_batch.alive_at, v_batch.dispatched_at) < now() - make_interval(secs => p_job.lease_seconds)
          and not exists (select 1 from jobs.task t
                           where t.job_name = p_job.name and t.state = 'running' and t.batch_id = v_batch.id) then
      update jobs.batch set settled_at = clock_timestamp() where id = v_batch.id;
    end if;
  end loop;

  return v_total;
end;
$$;

-- The function is done with its request: settle the batch, return the tasks it left running to
-- the queue at once (nobody works on them any more: their outcome could not be written, or a
-- claim's answer was lost with a connection), and dispatch the next batch (work-conserving).
-- Idempotent.
create function jobs.finish_batch(p_batch_id bigint)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_job_name text;
begin
  update jobs.batch set settled_at = clock_timestamp()
   where id = p_batch_id and settled_at is null
  returning job_name into v_job_name;
  if v_job_name is null then
    return 0;
  end if;
  select * into v_job from jobs.job where name = v_job_name;
  perform jobs.requeue_abandoned(v_job,
    array(select x.id from jobs.task x
           where x.job_name = v_job.name and x.batch_id = p_batch_id and x.state = 'running'
             for update skip locked),
    'left running when its batch finished');
  return jobs.pump(v_job.name);
end;
$$;

-- Claims and dispatches more work for a job now (no discovery). Called when a batch settles; it
-- reaps first, so a backlog left by a dead function or a restart moves on without waiting for
-- the heartbeat.
create function jobs.pump(p_job_name text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_claimed int;
begin
  select * into v_job from jobs.job where name = p_job_name for update;
  if not found then
    return 0;
  end if;
  perform jobs.reap(v_job);
  select c.claimed into v_claimed from jobs.claim_and_dispatch(v_job, null) c;
  return v_claimed;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Ticks, the heartbeat, and by hand

-- One tick: reap → discover → claim → dispatch, in the caller's transaction. pg_net sends the
-- requests when it commits. Returns a readable summary.
create function jobs.tick(p_job_name text, p_trigger text default 'manual')
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_run_id bigint;
  v_reaped int := 0;
  v_discovered int := 0;
  v_claimed int := 0;
  v_requests bigint[] := '{}'::bigint[];
  v_error text;
  v_backlog bigint;
  v_in_flight bigint;
begin
  if p_trigger is null or p_trigger not in ('cron', 'manual', 'http') then
    raise exception 'jobs.tick: trigger must be cron, manual or http, not %', coalesce(p_trigger, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  perform jobs.lock_outcomes(p_job_name, true);
  select * into v_job from jobs.job where name = p_job_name for update;
  if not found then
    raise exception 'jobs.tick: no job named %', coalesce(p_job_name, 'null')
      using errcode = 'no_data_found', hint = 'select name from jobs.job;';
  end if;

  insert into jobs.run (job_name, trigger) values (v_job.name, p_trigger) returning id into v_run_id;

  if not v_job.enabled then
    v_error := 'job is disabled (update jobs.job set enabled = true where name = ...)';
  else
    v_reaped := jobs.reap(v_job);

    begin
      execute format(
        'insert into jobs.task (job_name, key, payload)
         select $1, d.key, coalesce(d.payload, ''{}''::jsonb) from %s($2) d
         on conflict (job_name, key) where state in (''queued'', ''running'') do nothing',
        v_job.discover_function::regprocedure::regproc)
        using v_job.name, v_job.config;
      get diagnostics v_discovered = row_count;
    exception when others then
      v_error := format('discover %s failed: %s', v_job.discover_function, sqlerrm);
    end;

    if v_job.paused then
      v_error := coalesce(v_error, 'job is paused: discovered only, nothing dispatched');
    elsif not jobs.dispatch_secrets_present() then
      v_error := 'Vault secret project_url must exist to dispatch; '
                 'see README "Deploy to a hosted Supabase project"';
    else
      select c.claimed, c.request_ids into v_claimed, v_requests from jobs.claim_and_dispatch(v_job, v_run_id) c;
      if v_job.suspended_until > now() then
        v_error := format('dispatch suspended until %s after a configuration error: %s',
                          v_job.suspended_until, v_job.last_error);
      end if;
    end if;
  end if;

  update jobs.run
     set finished_at = clock_timestamp(), reaped = v_reaped, discovered = v_discovered,
         claimed = v_claimed, dispatched = cardinality(v_requests), request_ids = v_requests,
         error = v_error
   where id = v_run_id;

  select count(*) into v_backlog from jobs.task where job_name = v_job.name and state = 'queued';
  select count(*) into v_in_flight from jobs.batch where job_name = v_job.name and settled_at is null;
  return jsonb_build_object(
    'job', v_job.name,
    'run_id', v_run_id,
    'discovered', v_discovered,
    'claimed', v_claimed,
    'dispatched_requests', cardinality(v_requests),
    'reaped', v_reaped,
    'queued', v_backlog,
    'batches_in_flight', v_in_flight,
    'error', v_error);
end;
$$;

-- One public way to run any job by hand (SQL editor, scripts): one tick now, and what it did.
--   select jobs.run_now('youtube-token-refresh');
create function jobs.run_now(p_job text)
returns jsonb
language sql
set search_path = ''
as $$
  select jobs.tick(p_job, 'manual');
$$;

-- Every 10 s from pg_cron (see below): reap and restart the dispatch chain of every enabled job
-- (retries whose backoff ran out, rate-limited backlog, a chain broken by a crash).
-- Skips a job whose row is locked: whoever holds it is dispatching already.
create function jobs.heartbeat()
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_claimed int;
  v_total int := 0;
begin
  if not jobs.dispatch_secrets_present() then
    raise warning 'jobs.heartbeat: Vault secret project_url is missing; nothing dispatched';
    return 0;
  end if;
  for v_job in select * from jobs.job where enabled order by name for update skip locked loop
    -- One job's failure (e.g. a dropped target) must not stop the others' chains.
    begin
      perform jobs.reap(v_job);
      select c.claimed into v_claimed from jobs.claim_and_dispatch(v_job, null) c;
      v_total := v_total + v_claimed;
    exception when others then
      update jobs.job set last_error = left('heartbeat: ' || sqlerrm, 1000), last_error_at = now()
       where name = v_job.name;
    end;
  end loop;
  return v_total;
end;
$$;

-- By hand: run a dead, discarded or cancelled task again from attempt 1.
create function jobs.retry(p_task_id bigint)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_open bigint;
begin
  select * into v_task from jobs.task where id = p_task_id for update;
  if not found then
    raise exception 'jobs.retry: no task %', p_task_id using errcode = 'no_data_found';
  end if;
  if v_task.state not in ('dead', 'discarded', 'cancelled') then
    raise exception 'jobs.retry: task % is %; only dead, discarded or cancelled tasks can be retried',
      p_task_id, v_task.state using errcode = 'invalid_parameter_value';
  end if;
  select id into v_open from jobs.task
   where job_name = v_task.job_name and key = v_task.key and state in ('queued', 'running');
  if found then
    raise exception 'jobs.retry: task % for key % is already open; nothing to retry', v_open, v_task.key
      using errcode = 'unique_violation';
  end if;
  update jobs.task
     set state = 'queued', attempts = 0, run_after = now(), finished_at = null, updated_at = now()
   where id = p_task_id;
end;
$$;

create function jobs.retry_dead(p_job_name text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_id bigint;
  v_count int := 0;
begin
  for v_id in
    select d.id from jobs.task d
     where d.job_name = p_job_name and d.state = 'dead'
       and not exists (select 1 from jobs.task o where o.job_name = d.job_name and o.key = d.key
                          and o.state in ('queued', 'running'))
       and d.id = (select max(x.id) from jobs.task x where x.job_name = d.job_name and x.key = d.key
                      and x.state = 'dead')
  loop
    perform jobs.retry(v_id);
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

-- By hand: stop a queued, running or dead task. A running task's lease is revoked, so the
-- function's outcome call is refused. Discovery queues the item again if it is still due.
create function jobs.cancel(p_task_id bigint, p_reason text default 'cancelled by hand')
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
begin
  perform jobs.lock_outcomes(t.job_name, false) from jobs.task t where t.id = p_task_id;
  select * into v_task from jobs.task where id = p_task_id for update;
  if not found then
    raise exception 'jobs.cancel: no task %', p_task_id using errcode = 'no_data_found';
  end if;
  if v_task.state not in ('queued', 'running', 'dead') then
    raise exception 'jobs.cancel: task % is already %', p_task_id, v_task.state
      using errcode = 'invalid_parameter_value';
  end if;
  update jobs.task
     set state = 'cancelled', last_error = left(coalesce(p_reason, 'cancelled'), 1000),
         lease_token = null, lease_until = null, finished_at = now(), updated_at = now()
   where id = p_task_id;
end;
$$;

-- Registers (or updates) a job, everything it needs, and its pg_cron schedule; a job needs no
-- other write to jobs.* (name the arguments: the first ten keep their positions).
--   p_discover_function  (jsonb) → table(key text, payload jsonb): the due items (the job's config in)
--   p_context_function   (jsonb) → table(task_id bigint, context jsonb, moot text), optional
--   p_apply_function     (jsonb) → table(task_id bigint, outcome text, error text, result jsonb), optional
--   p_backoff_*          retry delay min(cap, base × 2^(attempt−1)), shortened by up to jitter × 100 %
--   p_rate_limit         the job's bucket {"key", "capacity", "refill_per_second"} (created full,
--                        re-sized when it changed), every claimed task takes a token; null: none
--   p_task_rate_limits   claims also honour each task's rate_keys (jobs.claim_due_tasks)
-- Each call sets every one of these (an argument left out takes its default); the job's
-- enabled, paused and suspension state and its tasks are kept.
create function jobs.define(
  p_name text,
  p_target_function text,
  p_discover_function regprocedure,
  p_schedule text default null,
  p_config jsonb default '{}',
  p_batch_size int default 10,
  p_max_in_flight int default 5,
  p_lease_seconds int default 15,
  p_max_attempts int default 5,
  p_description text default '',
  p_context_function regprocedure default null,
  p_apply_function regprocedure default null,
  p_backoff_base_seconds numeric default 30,
  p_backoff_cap_seconds numeric default 3600,
  p_backoff_jitter numeric default 0.2,
  p_rate_limit jsonb default null,
  p_task_rate_limits boolean default false)
returns jobs.job
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_problem text;
begin
  if not jobs.has_signature(p_discover_function, 'TABLE(key text, payload jsonb)') then
    raise exception 'jobs.define: discover function % must take (jsonb) and return table(key text, payload jsonb)',
      p_discover_function using errcode = 'invalid_parameter_value';
  end if;
  if p_context_function is not null
     and not jobs.has_signature(p_context_function, 'TABLE(task_id bigint, context jsonb, moot text)') then
    raise exception 'jobs.define: context function % must take (jsonb) and return table(task_id bigint, context jsonb, moot text)',
      p_context_function using errcode = 'invalid_parameter_value';
  end if;
  if p_apply_function is not null
     and not jobs.has_signature(p_apply_function, 'TABLE(task_id bigint, outcome text, error text, result jsonb)') then
    raise exception 'jobs.define: apply function % must take (jsonb) and return table(task_id bigint, outcome text, error text, result jsonb)',
      p_apply_function using errcode = 'invalid_parameter_value';
  end if;
  if p_rate_limit is not null then
    v_problem := jobs.bucket_problem(p_rate_limit);
    if v_problem is not null then
      raise exception 'jobs.define: p_rate_limit: %', v_problem using errcode = 'invalid_parameter_value';
    end if;
  end if;

  insert into jobs.job as j (name, target_function, discover_function, context_function, apply_function, schedule,
                             config, batch_size, max_in_flight, lease_seconds, max_attempts, backoff_base_seconds,
                             backoff_cap_seconds, backoff_jitter, task_rate_limits, description)
  values (p_name, p_target_function, p_discover_function::text, p_context_function::text, p_apply_function::text,
          p_schedule, coalesce(p_config, '{}'), p_batch_size, p_max_in_flight, p_lease_seconds, p_max_attempts,
          p_backoff_base_seconds, p_backoff_cap_seconds, p_backoff_jitter, coalesce(p_task_rate_limits, false),
          coalesce(p_description, ''))
  on conflict (name) do update
     set target_function = excluded.target_function, discover_function = excluded.discover_function,
         context_function = excluded.context_function, apply_function = excluded.apply_function,
         schedule = excluded.schedule, config = excluded.config, batch_size = excluded.batch_size,
         max_in_flight = excluded.max_in_flight, lease_seconds = excluded.lease_seconds,
         max_attempts = excluded.max_attempts, backoff_base_seconds = excluded.backoff_base_seconds,
         backoff_cap_seconds = excluded.backoff_cap_seconds, backoff_jitter = excluded.backoff_jitter,
         task_rate_limits = excluded.task_rate_limits, description = excluded.description, updated_at = now()
  returning * into v_job;

  -- The job's bucket (after the job row: the lock order is job row, claim lock, buckets).
  if p_rate_limit is not null then
    perform jobs.size_rate_limits(p_name, jsonb_build_array(p_rate_limit));
  end if;
  if v_job.rate_limit_key is distinct from p_rate_limit ->> 'key' then
    update jobs.job set rate_limit_key = p_rate_limit ->> 'key' where name = v_job.name
    returning * into v_job;
  end if;

  if p_schedule is not null then
    perform cron.schedule('duework:' || p_name, p_schedule, format('select jobs.tick(%L, %L)', p_name, 'cron'));
  elsif exists (select 1 from cron.job where jobname = 'duework:' || p_name) then
    perform cron.unschedule('duework:' || p_name);
  end if;
  return v_job;
end;
$$;

-- Deletes old history in bounded chunks. Dead tasks are kept longer: they are the dead letters.
create function jobs.prune(
  p_keep_finished interval default '7 days',
  p_keep_dead interval default '30 days',
  p_keep_runs interval default '14 days',
  p_keep_cron_details interval default '7 days',
  p_keep_http_responses interval default '6 hours',
  p_max_rows int default 100000)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_tasks int;
  v_runs int;
  v_batches int;
  v_cron int := 0;
  v_http int := 0;
begin
  delete from jobs.task where id in (
    select id from jobs.task
     where finished_at < now() - case when state = 'dead' then p_keep_dead else p_keep_finished end
     order by finished_at limit p_max_rows);
  get diagnostics v_tasks = row_count;
  delete from jobs.run where id in (
    select id from jobs.run where started_at < now() - p_keep_runs order by started_at limit p_max_rows);
  get diagnostics v_runs = row_count;
  delete from jobs.batch where id in (
    select id from jobs.batch where settled_at < now() - p_keep_finished order by settled_at limit p_max_rows);
  get diagnostics v_batches = row_count;
  -- These two tables belong to pg_cron and pg_net; a role without rights to them skips them.
  begin
    delete from cron.job_run_details where end_time < now() - p_keep_cron_details;
    get diagnostics v_cron = row_count;
  exception when insufficient_privilege then
    v_cron := -1;
  end;
  begin
    delete from net._http_response where created < now() - p_keep_http_responses;
    get diagnostics v_http = row_count;
  exception when insufficient_privilege then
    v_http := -1;
  end;
  return jsonb_build_object('tasks', v_tasks, 'runs', v_runs, 'batches', v_batches,
                            'cron_job_run_details', v_cron, 'http_responses', v_http);
end;
$$;

-- Per-job health at a glance: select * from jobs.health;
create view jobs.health as
select j.name,
       j.schedule,
       j.enabled,
       j.paused,
       j.suspended_until,
       r.started_at as last_run_at,
       r.error as last_run_error,
       (select count(*) from jobs.task t where t.job_name = j.name and t.state = 'queued') as queued,
       (select count(*) from jobs.task t where t.job_name = j.name and t.state = 'queued'
           and t.run_after <= now()) as due_now,
       (select count(*) from jobs.batch b where b.job_name = j.name and b.settled_at is null) as batches_in_flight,
       (select count(*) from jobs.task t where t.job_name = j.name and t.state = 'dead') as dead,
       j.last_error,
       j.last_error_at
  from jobs.job j
  left join lateral (select * from jobs.run x where x.job_name = j.name order by x.started_at desc limit 1) r on true;

-- Housekeeping schedules (UTC).
select cron.schedule('duework:prune', '17 3 * * *', 'select jobs.prune()');

-- The heartbeat runs every 10 s, so a function that died gives its tasks back within a lease
-- plus 10 s. pg_cron 1.5+ (hosted Supabase has 1.6) schedules in seconds. pg_cron 1.4 (Debian 12,
-- the local stack) has whole minutes only; there a minute job runs jobs.heartbeat_minute(), which
-- runs the heartbeat every 10 s until the minute ends (six times; and at server start, for the rest
-- of that minute), each in a session of its own (dblink, connecting the
-- way pg_cron 1.4 itself does: cron.host, this database, this role). Each heartbeat needs its own
-- transaction: now() stands still within one, so a heartbeat after a pg_sleep in the same
-- transaction would see every lease as 10-50 s younger than it is. (A procedure could COMMIT
-- between runs, but a procedure that commits cannot pin its search_path.)
do $$
begin
  if (select (regexp_match(extversion, '^(\d+)\.(\d+)'))::int[] >= array[1, 5] from pg_catalog.pg_extension where extname = 'pg_cron') then
    perform cron.schedule('duework:heartbeat', '10 seconds', 'select jobs.heartbeat()');
    return;
  end if;
  create extension if not exists dblink with schema extensions;
  -- Heartbeats every p_every_seconds until the minute ends (or p_runs of them).
  create function jobs.heartbeat_minute(p_every_seconds int default 10, p_runs int default null)
  returns int
  language plpgsql
  set search_path = ''
  as $fn$
  declare
    v_conn text := format('host=%s port=%s dbname=%s user=%s',
      coalesce(nullif(pg_catalog.current_setting('cron.host', true), ''), 'localhost'),
      pg_catalog.current_setting('port'), pg_catalog.current_database(), current_user);
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_minute_end timestamptz := pg_catalog.date_trunc('minute', pg_catalog.clock_timestamp()) + interval '1 minute';
    v_every interval := make_interval(secs => greatest(coalesce(p_every_seconds, 10), 1));
    v_ok int := 0;
    i int := 0;
  begin
    loop
      begin
        perform * from extensions.dblink(v_conn, 'select jobs.heartbeat()') as h (dispatched int);
        v_ok := v_ok + 1;
      exception when others then
        raise warning 'jobs.heartbeat_minute: heartbeat % failed: %', i + 1, sqlerrm;
      end;
      i := i + 1;
      exit when i >= coalesce(p_runs, 2147483647)
             or (p_runs is null and v_started + i * v_every > v_minute_end - interval '1 second');
      perform pg_catalog.pg_sleep(greatest(0, extract(epoch from
        v_started + i * v_every - pg_catalog.clock_timestamp())::double precision));
    end loop;
    return v_ok;
  end;
  $fn$;
  revoke all on function jobs.heartbeat_minute(int, int) from public, anon, authenticated;
  perform cron.schedule('duework:heartbeat', '* * * * *', 'select jobs.heartbeat_minute()');
  -- After a server restart pg_cron 1.4 would wait for the next whole minute: cover the rest of
  -- the minute the server came back in.
  perform cron.schedule('duework:heartbeat-at-start', '@reboot', 'select jobs.heartbeat_minute()');
end;
$$;

-- pg_net grants its tables and functions to PUBLIC. Revoke what this project's owner may revoke:
-- where pg_net was created by the same role (the local stack, self-hosted) the revokes work;
-- on hosted Supabase pg_net belongs to supabase_admin and these revokes are refused or change
-- nothing (the batch credential above is what keeps the queue free of reusable secrets there).
do $$
declare
  v_stmt text;
begin
  foreach v_stmt in array array[
    'revoke all on table net.http_request_queue from public, anon, authenticated',
    'revoke all on table net._http_response from public, anon, authenticated',
    'revoke all on all sequences in schema net from public, anon, authenticated',
    'revoke execute on all functions in schema net from public, anon, authenticated'
  ] loop
    begin
      execute v_stmt;
    exception when insufficient_privilege then
      raise notice 'pg_net privileges: % refused (%); the batch credential still keeps secrets out of the queue',
        v_stmt, sqlerrm;
    end;
  end loop;
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'anon')
     and pg_catalog.has_table_privilege('anon', 'net.http_request_queue', 'select') then
    raise notice 'pg_net privileges: anon can still read net.http_request_queue (pg_net belongs to another role here); '
                 'it holds only single-use batch credentials';
  end if;
end;
$$;

-- Nothing in jobs is reachable by client roles (jobs.run_now included: pg_cron, the SQL editor and
-- service_role wrappers run it as the owner).
revoke all on all tables in schema jobs from public, anon, authenticated;
revoke all on all sequences in schema jobs from public, anon, authenticated;
revoke all on all functions in schema jobs from public, anon, authenticated;
