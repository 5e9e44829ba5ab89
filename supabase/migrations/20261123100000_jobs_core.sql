-- Duework jobs core: the engine every scheduled job runs on (docs/jobs.md has the state diagram).
--
--   pg_cron ──> jobs.tick(job)   one transaction: reap → discover → claim → dispatch (net.http_post)
--   function ──> jobs.complete / jobs.fail / jobs.release (or a domain function wrapping them),
--                jobs.claim_into_batch to take the next due task into its batch, and
--                jobs.finish_batch at the end, which dispatches the next batch (work-conserving):
--                a backlog drains at max_in_flight, not one batch per tick.
--   pg_cron ──> jobs.heartbeat() every minute: reaps expired leases and restarts a broken chain.
--   pg_cron ──> jobs.prune() daily: history of tasks, runs, cron.job_run_details, net responses.
--
-- Lock order, which keeps overlapping ticks and outcome calls free of deadlocks:
--   outcome calls take the job's outcome lock (shared), then the task; nothing else;
--   jobs.finish_batch locks the batch, then the job row (to dispatch the next batch);
--   ticks take the job's outcome lock (exclusive), then the job row, then batches and tasks with
--   SKIP LOCKED; the heartbeat takes job rows and batches with SKIP LOCKED.
-- The outcome lock (a transaction advisory lock per job) closes a race: without it, a tick's
-- discover could read a domain row as still due just before a concurrent outcome call commits
-- its refresh, then find no open task for the key and queue the same item a second time.
-- Everything runs as the owner (postgres): pg_cron and the Edge Functions (SUPABASE_DB_URL) call
-- it directly. Nothing here is SECURITY DEFINER; anon and authenticated get no access at all.

create schema if not exists jobs;
revoke all on schema jobs from public;
comment on schema jobs is 'Duework jobs core. Not exposed through the Data API; see docs/jobs.md.';

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
  -- Signature text such as 'social.discover_due_tokens(jsonb)' (a reg* column would block
  -- pg_upgrade); jobs.define checks that it resolves.
  discover_function text not null,
  config jsonb not null default '{}' check (jsonb_typeof(config) = 'object'),
  batch_size int not null default 10 check (batch_size between 1 and 100),
  max_in_flight int not null default 5 check (max_in_flight between 1 and 100),
  lease_seconds int not null default 180 check (lease_seconds between 1 and 3600),
  max_attempts int not null default 5 check (max_attempts between 1 and 100),
  backoff_base_seconds numeric not null default 30 check (backoff_base_seconds > 0),
  backoff_cap_seconds numeric not null default 3600,
  backoff_jitter numeric not null default 0.2 check (backoff_jitter between 0 and 1),
  rate_limit_key text references jobs.rate_limit (key) on delete set null,
  enabled boolean not null default true,
  paused boolean not null default false,
  suspended_until timestamptz,
  last_error text,
  last_error_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint job_backoff_cap_at_least_base check (backoff_cap_seconds >= backoff_base_seconds)
);
comment on table jobs.job is 'One row per named job. schedule is a UTC cron expression (null = manual only).';
comment on column jobs.job.max_in_flight is 'Batches (HTTP requests) in flight at once for this job.';
comment on column jobs.job.paused is 'Paused: ticks still discover due work, but nothing is claimed or dispatched.';
comment on column jobs.job.enabled is 'Disabled: ticks do nothing at all.';
comment on column jobs.job.suspended_until is
  'Set by jobs.release after a configuration error: no claims until then, so a broken setup does not burn attempts.';
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
-- (jobs.claim_into_batch). It is in flight until jobs.finish_batch (the function is done) or a
-- reap (its answer came back, or it outlived the lease) settles it.
create table jobs.batch (
  id bigint generated always as identity primary key,
  job_name text not null references jobs.job (name) on delete cascade,
  run_id bigint,
  request_id bigint,
  size int not null check (size >= 1),
  dispatched_at timestamptz not null default now(),
  settled_at timestamptz,
  http_status int,
  http_error text
);
comment on table jobs.batch is 'Dispatched requests. Unsettled batches are the ones in flight (max_in_flight).';
create index batch_in_flight on jobs.batch (job_name) where settled_at is null;
create index batch_settled on jobs.batch (settled_at) where settled_at is not null;

create table jobs.task (
  id bigint generated always as identity primary key,
  job_name text not null references jobs.job (name) on delete cascade,
  key text not null,
  payload jsonb not null default '{}',
  state text not null default 'queued'
    check (state in ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
  attempts int not null default 0 check (attempts >= 0),
  run_after timestamptz not null default now(),
  lease_until timestamptz,
  lease_token uuid,
  batch_id bigint,
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
    check ((state in ('succeeded', 'failed', 'dead', 'cancelled')) = (finished_at is not null)),
  constraint task_running_has_attempt check (state <> 'running' or attempts >= 1)
);
comment on table jobs.task is 'One unit of due work. States and transitions: docs/jobs.md.';
comment on column jobs.task.key is 'Dedupe key: at most one queued or running task per (job, key).';

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
      or (p_from = 'running' and p_to in ('queued', 'succeeded', 'failed', 'dead', 'cancelled'))
      or (p_from in ('failed', 'dead', 'cancelled') and p_to = 'queued')
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
     or (old.state = 'running' and new.state in ('queued', 'succeeded', 'failed', 'dead', 'cancelled'))
     or (old.state in ('failed', 'dead', 'cancelled') and new.state = 'queued')
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

create trigger task_guard_insert
  before insert on jobs.task
  for each row execute function jobs.task_guard_insert();

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

-- Secrets reach SQL through Vault as in Supabase's cron + pg_net guide (project_url, service_key).
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
              when 'service_key' then 'select vault.create_secret(''<sb_secret_… key>'', ''service_key'');'
              else format('select vault.create_secret(''<value>'', %L);', p_name) end;
  end if;
  return v_secret;
end;
$$;

-- Both Vault secrets a dispatch needs exist (checked before claiming, so nothing is leased in vain).
create function jobs.dispatch_secrets_present()
returns boolean
language sql
stable
set search_path = ''
as $$
  select count(distinct name) = 2 from vault.decrypted_secrets where name in ('project_url', 'service_key');
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

-- Takes the job's outcome lock (shared), then locks the running task (the outcome-side lock order).
-- Raises DWL01 when the task is not running under p_lease_token: a stale or forged token
-- changes nothing, and the caller's domain write in the same transaction is rolled back.
create function jobs.lock_leased_task(p_task_id bigint, p_lease_token uuid)
returns jobs.task
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
begin
  if p_task_id is null or p_lease_token is null then
    raise exception 'task id and lease token are required' using errcode = 'null_value_not_allowed';
  end if;
  perform jobs.lock_outcomes(t.job_name, false) from jobs.task t where t.id = p_task_id;
  select * into v_task from jobs.task t
   where t.id = p_task_id and t.state = 'running' and t.lease_token = p_lease_token
     for update;
  if not found then
    raise exception 'lease lost: task % is not running under this lease token', p_task_id
      using errcode = 'DWL01',
            detail = 'It was completed, cancelled, or its lease expired and it was claimed again.',
            hint = 'Drop the result; the current lease holder reports the outcome.';
  end if;
  return v_task;
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
  v_want int;
  v_available int;
  v_ids bigint[];
  v_chunk bigint[];
  v_batch_id bigint;
  v_body jsonb;
  v_request_id bigint;
  v_url text;
  v_key text;
  v_claimed int := 0;
  v_requests bigint[] := '{}'::bigint[];
begin
  if not p_job.enabled or p_job.paused or coalesce(p_job.suspended_until > now(), false) then
    return query select 0, v_requests;
    return;
  end if;

  select p_job.max_in_flight - count(*) into v_slots
    from jobs.batch where job_name = p_job.name and settled_at is null;
  v_want := v_slots * p_job.batch_size;
  if v_want <= 0 then
    return query select 0, v_requests;
    return;
  end if;

  if p_job.rate_limit_key is not null then
    v_available := jobs.rate_limit_refill(p_job.rate_limit_key);
    v_want := least(v_want, coalesce(v_available, v_want));
    if v_want <= 0 then
      return query select 0, v_requests;
      return;
    end if;
  end if;

  select array_agg(id order by run_after, id) into v_ids
    from (select t.id, t.run_after from jobs.task t
           where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
           order by t.run_after, t.id
           limit v_want
             for update skip locked) due;
  if v_ids is null then
    return query select 0, v_requests;
    return;
  end if;

  v_url := rtrim(jobs.vault_secret('project_url'), '/') || '/functions/v1/' || p_job.target_function;
  v_key := jobs.vault_secret('service_key');

  for i in 0 .. (cardinality(v_ids) - 1) / p_job.batch_size loop
    v_chunk := v_ids[i * p_job.batch_size + 1 : (i + 1) * p_job.batch_size];
    insert into jobs.batch (job_name, run_id, size)
    values (p_job.name, p_run_id, cardinality(v_chunk))
    returning id into v_batch_id;

    with leased as (
      update jobs.task t
         set state = 'running',
             attempts = t.attempts + 1,
             lease_token = gen_random_uuid(),
             lease_until = now() + make_interval(secs => p_job.lease_seconds),
             batch_id = v_batch_id,
             updated_at = now()
       where t.id = any (v_chunk)
      returning t.id, t.lease_token, t.attempts, t.payload
    )
    select jsonb_build_object(
             'job', p_job.name,
             'batch_id', v_batch_id,
             'tasks', jsonb_agg(jsonb_build_object(
               'id', l.id, 'lease_token', l.lease_token, 'attempt', l.attempts, 'payload', l.payload)
               order by l.id))
      into v_body
      from leased l;

    v_request_id := net.http_post(
      url := v_url,
      body := v_body,
      headers := jsonb_build_object(
        'Content-Type', 'application/json',
        'apikey', v_key,
        'Authorization', 'Bearer ' || v_key),
      timeout_milliseconds := p_job.lease_seconds * 1000);
    update jobs.batch set request_id = v_request_id where id = v_batch_id;

    v_claimed := v_claimed + cardinality(v_chunk);
    v_requests := v_requests || v_request_id;
  end loop;

  if p_job.rate_limit_key is not null then
    update jobs.rate_limit set tokens = greatest(tokens - v_claimed, 0) where key = p_job.rate_limit_key;
  end if;

  return query select v_claimed, v_requests;
end;
$$;

-- Work-conserving inside a batch: a function that finished a task claims the next due one into
-- the same batch (same request, same in-flight slot), so its slots never idle while backlog
-- remains. Returns nothing once the batch is settled, the job cannot dispatch, the rate limit is
-- empty, or nothing is due. Takes only task rows (SKIP LOCKED) and the rate-limit bucket.
create function jobs.claim_into_batch(p_batch_id bigint, p_count int default 1)
returns table (id bigint, lease_token uuid, attempt int, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_want int := least(greatest(coalesce(p_count, 1), 1), 100);
  v_available int;
  v_claimed int;
begin
  select j.* into v_job from jobs.batch b join jobs.job j on j.name = b.job_name
   where b.id = p_batch_id and b.settled_at is null;
  if not found or not v_job.enabled or v_job.paused or coalesce(v_job.suspended_until > now(), false) then
    return;
  end if;

  if v_job.rate_limit_key is not null then
    v_available := jobs.rate_limit_refill(v_job.rate_limit_key);
    v_want := least(v_want, coalesce(v_available, v_want));
    if v_want <= 0 then
      return;
    end if;
  end if;

  return query
    with due as (
      select t.id from jobs.task t
       where t.job_name = v_job.name and t.state = 'queued' and t.run_after <= now()
       order by t.run_after, t.id
       limit v_want
         for update skip locked
    )
    update jobs.task t
       set state = 'running',
           attempts = t.attempts + 1,
           lease_token = gen_random_uuid(),
           lease_until = now() + make_interval(secs => v_job.lease_seconds),
           batch_id = p_batch_id,
           updated_at = now()
      from due
     where t.id = due.id
    returning t.id, t.lease_token, t.attempts, t.payload;
  get diagnostics v_claimed = row_count;
  if v_claimed > 0 and v_job.rate_limit_key is not null then
    update jobs.rate_limit r set tokens = greatest(r.tokens - v_claimed, 0) where r.key = v_job.rate_limit_key;
  end if;
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

-- Returns in-flight batches' leftovers to the queue. The caller holds the job row lock.
--  * A batch whose request got an answer (any status, or a connection error) but still has running
--    tasks: the function returned without reporting them. 401/403/404 or an unreachable function
--    mean the tasks never ran, so the attempt is given back; otherwise it counts, with backoff.
--    A pg_net timeout is left alone: the function may still be working; the lease decides.
--  * Running tasks whose lease expired (function crashed, timed out, never reached) become
--    claimable again at once (the next claim makes it attempt + 1), or dead after max_attempts.
--  * A batch that outlived its lease with nothing running any more is settled (its function
--    died before jobs.finish_batch and no answer was recorded).
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
begin
  if not exists (select 1 from jobs.batch where job_name = p_job.name and settled_at is null)
     and not exists (select 1 from jobs.task where job_name = p_job.name and state = 'running') then
    return 0;
  end if;

  -- Running tasks whose lease expired, whatever their batch.
  with expired as (
    update jobs.task t
       set state = case when t.attempts >= p_job.max_attempts then 'dead' else 'queued' end,
           run_after = now(),
           finished_at = case when t.attempts >= p_job.max_attempts then now() end,
           lease_token = null, lease_until = null,
           last_error = format('lease expired after %s s (attempt %s of %s)',
                               p_job.lease_seconds, t.attempts, p_job.max_attempts),
           updated_at = now()
     where t.id in (select x.id from jobs.task x
                     where x.job_name = p_job.name and x.state = 'running' and x.lease_until < now()
                       for update skip locked)
    returning 1
  )
  select count(*) into v_count from expired;
  v_total := v_total + v_count;

  for v_batch in
    select b.id, b.dispatched_at, r.status_code, r.error_msg, coalesce(r.timed_out, false) as timed_out,
           (r.id is not null) as answered, left(r.content, 300) as content
      from jobs.batch b
      left join net._http_response r on r.id = b.request_id
     where b.job_name = p_job.name and b.settled_at is null
       for update of b skip locked
  loop
    if v_batch.answered and not v_batch.timed_out
       and coalesce(v_batch.error_msg, '') not ilike '%timeout%' then
      v_never_ran := v_batch.status_code in (401, 403, 404) or v_batch.status_code is null;
      v_error := case
        when v_batch.status_code is null then format('request to %s failed: %s', p_job.target_function, v_batch.error_msg)
        else format('%s answered HTTP %s without reporting this task: %s',
                    p_job.target_function, v_batch.status_code, coalesce(v_batch.content, ''))
      end;
      with returned as (
        update jobs.task t
           set state = case when not v_never_ran and (t.attempts >= p_job.max_attempts) then 'dead' else 'queued' end,
               attempts = case when v_never_ran then t.attempts - 1 else t.attempts end,
               run_after = now() + make_interval(secs => jobs.backoff_seconds(
                 p_job.backoff_base_seconds, p_job.backoff_cap_seconds, p_job.backoff_jitter,
                 t.attempts, random())::double precision),
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
             http_status = v_batch.status_code, http_error = v_batch.error_msg
       where id = v_batch.id;
      if v_never_ran and v_count > 0 then
        update jobs.job set last_error = v_error, last_error_at = now() where name = p_job.name;
      end if;
      v_total := v_total + v_count;
    elsif v_batch.dispatched_at < now() - make_interval(secs => p_job.lease_seconds)
          and not exists (select 1 from jobs.task t
                           where t.job_name = p_job.name and t.state = 'running' and t.batch_id = v_batch.id) then
      -- Outlived its lease with nothing left running: the function died or never finished it.
      update jobs.batch set settled_at = clock_timestamp() where id = v_batch.id;
    end if;
  end loop;

  return v_total;
end;
$$;

-- Claims and dispatches more work for a job now (no discovery). Called when a batch settles.
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
  select c.claimed into v_claimed from jobs.claim_and_dispatch(v_job, null) c;
  return v_claimed;
end;
$$;

-- The function is done with its request: settle the batch and dispatch the next one at once
-- (work-conserving). Tasks it left running stay leased until their lease expires. Idempotent.
create function jobs.finish_batch(p_batch_id bigint)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_job_name text;
begin
  update jobs.batch set settled_at = clock_timestamp()
   where id = p_batch_id and settled_at is null
  returning job_name into v_job_name;
  if v_job_name is null then
    return 0;
  end if;
  return jobs.pump(v_job_name);
end;
$$;

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
      v_error := 'Vault secrets project_url and service_key must both exist to dispatch; '
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

-- Every minute from pg_cron: reap and restart the dispatch chain of every enabled job
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
    raise warning 'jobs.heartbeat: Vault secrets project_url and service_key are missing; nothing dispatched';
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

-- Outcome: success. result must not contain secrets (it is kept for inspection).
create function jobs.complete(p_task_id bigint, p_lease_token uuid, p_result jsonb default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- The hot path: one UPDATE that checks the lease (no separate lock-then-update).
  perform jobs.lock_outcomes(t.job_name, false) from jobs.task t where t.id = p_task_id;
  update jobs.task
     set state = 'succeeded', result = p_result, lease_token = null, lease_until = null,
         finished_at = now(), updated_at = now()
   where id = p_task_id and state = 'running' and lease_token = p_lease_token;
  if not found then
    perform jobs.lock_leased_task(p_task_id, p_lease_token);  -- raises the DWL01 "lease lost" error
  end if;
end;
$$;

-- Outcome: failure. Transient → queued after retry_after seconds (the provider's Retry-After) or
-- the job's backoff; permanent or out of attempts → dead. Returns the new state.
create function jobs.fail(
  p_task_id bigint, p_lease_token uuid, p_error text,
  p_retry_after_seconds numeric default null, p_permanent boolean default false)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_job jobs.job;
  v_state text;
begin
  if p_retry_after_seconds < 0 then
    raise exception 'retry_after_seconds must be >= 0, got %', p_retry_after_seconds
      using errcode = 'invalid_parameter_value';
  end if;
  v_task := jobs.lock_leased_task(p_task_id, p_lease_token);
  select * into v_job from jobs.job where name = v_task.job_name;
  v_state := case when coalesce(p_permanent, false) or v_task.attempts >= v_job.max_attempts
                  then 'dead' else 'queued' end;
  update jobs.task
     set state = v_state,
         last_error = left(coalesce(p_error, 'failed without a message'), 1000),
         run_after = case when v_state = 'queued' then now() + make_interval(secs => coalesce(
             p_retry_after_seconds,
             jobs.backoff_seconds(v_job.backoff_base_seconds, v_job.backoff_cap_seconds,
                                  v_job.backoff_jitter, v_task.attempts, random()))::double precision)
           else run_after end,
         lease_token = null, lease_until = null,
         finished_at = case when v_state = 'dead' then now() end,
         updated_at = now()
   where id = v_task.id;
  return v_state;
end;
$$;

-- Outcome: the work is moot and the domain has recorded why (e.g. the account was disconnected
-- while the task waited). Terminal state 'failed': nothing to retry, nothing for an operator to do.
create function jobs.discard(p_task_id bigint, p_lease_token uuid, p_reason text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
begin
  v_task := jobs.lock_leased_task(p_task_id, p_lease_token);
  update jobs.task
     set state = 'failed', last_error = left(coalesce(p_reason, 'discarded'), 1000),
         lease_token = null, lease_until = null, finished_at = now(), updated_at = now()
   where id = v_task.id;
end;
$$;

-- The function cannot work at all (missing secret, rejected client credentials): give the tasks
-- back without using up an attempt, record the reason on the job, and hold dispatch for a minute
-- so a broken configuration shows up in jobs.job.last_error instead of as a pile of dead tasks.
create function jobs.release(p_task_ids bigint[], p_lease_tokens uuid[], p_reason text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_released int := 0;
  v_job_name text;
begin
  if cardinality(p_task_ids) is distinct from cardinality(p_lease_tokens) then
    raise exception 'jobs.release: % task ids but % lease tokens',
      cardinality(p_task_ids), cardinality(p_lease_tokens) using errcode = 'invalid_parameter_value';
  end if;
  for i in 1 .. coalesce(cardinality(p_task_ids), 0) loop
    begin
      v_task := jobs.lock_leased_task(p_task_ids[i], p_lease_tokens[i]);
    exception when sqlstate 'DWL01' then
      continue;
    end;
    update jobs.task
       set state = 'queued', attempts = attempts - 1, run_after = now(),
           last_error = left(coalesce(p_reason, 'released'), 1000),
           lease_token = null, lease_until = null, updated_at = now()
     where id = v_task.id;
    v_released := v_released + 1;
    v_job_name := v_task.job_name;
  end loop;
  if v_job_name is not null then
    update jobs.job
       set last_error = left(coalesce(p_reason, 'released'), 1000), last_error_at = now(),
           suspended_until = now() + interval '1 minute'
     where name = v_job_name;
  end if;
  return v_released;
end;
$$;

-- By hand: run a dead, failed or cancelled task again from attempt 1.
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
  if v_task.state not in ('dead', 'failed', 'cancelled') then
    raise exception 'jobs.retry: task % is %; only dead, failed or cancelled tasks can be retried',
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

-- Registers (or updates) a job and its pg_cron schedule. The discover function must take the
-- job's config and return table(key text, payload jsonb).
create function jobs.define(
  p_name text,
  p_target_function text,
  p_discover_function regprocedure,
  p_schedule text default null,
  p_config jsonb default '{}',
  p_batch_size int default 10,
  p_max_in_flight int default 5,
  p_lease_seconds int default 180,
  p_max_attempts int default 5,
  p_description text default '')
returns jobs.job
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
begin
  if pg_catalog.pg_get_function_result(p_discover_function) <> 'TABLE(key text, payload jsonb)'
     or pg_catalog.pg_get_function_identity_arguments(p_discover_function) !~ '^([a-z_]+ )?jsonb$' then
    raise exception 'jobs.define: discover function % must take (jsonb) and return table(key text, payload jsonb)',
      p_discover_function using errcode = 'invalid_parameter_value';
  end if;
  insert into jobs.job as j (name, target_function, discover_function, schedule, config, batch_size,
                             max_in_flight, lease_seconds, max_attempts, description)
  values (p_name, p_target_function, p_discover_function::text, p_schedule, coalesce(p_config, '{}'),
          p_batch_size, p_max_in_flight, p_lease_seconds, p_max_attempts, coalesce(p_description, ''))
  on conflict (name) do update
     set target_function = excluded.target_function, discover_function = excluded.discover_function,
         schedule = excluded.schedule, config = excluded.config, batch_size = excluded.batch_size,
         max_in_flight = excluded.max_in_flight, lease_seconds = excluded.lease_seconds,
         max_attempts = excluded.max_attempts, description = excluded.description, updated_at = now()
  returning * into v_job;

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
select cron.schedule('duework:heartbeat', '* * * * *', 'select jobs.heartbeat()');
select cron.schedule('duework:prune', '17 3 * * *', 'select jobs.prune()');

-- Nothing in jobs is reachable by client roles.
revoke all on all tables in schema jobs from public, anon, authenticated;
revoke all on all sequences in schema jobs from public, anon, authenticated;
revoke all on all functions in schema jobs from public, anon, authenticated;
alter default privileges in schema jobs revoke execute on functions from public;
