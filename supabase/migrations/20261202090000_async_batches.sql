-- Jobs core: batches that do not hold pg_net's pass, a per-batch credential instead of the
-- project's secret key, leases kept alive by the function, and recovery that never trusts a
-- pg_net request id across a database restart.
--
-- Why (docs/jobs.md "Dispatch and pg_net"):
--  * pg_net sends up to pg_net.batch_size queued requests per pass and starts nothing new until
--    every request of the pass has finished. A function that answered only when its batch was
--    done (up to 60 s) held every other job's dispatches behind it. Now the function accepts the
--    batch (jobs.accept_batch), answers 202 at once and works in EdgeRuntime.waitUntil, extending
--    its tasks' leases (jobs.keep_batch_alive) while it works. The default lease is 15 s and the
--    heartbeat reaps every 10 s instead of once a minute, so a function that dies gives its tasks
--    back within about 25 s.
--  * pg_net's queue is readable by client roles on many installations, and its headers used to
--    carry the secret key. A batch now carries a random single-use token that only authorises
--    accepting that batch while its lease lasts; only its SHA-256 is stored here.
--  * pg_net's tables and id sequence are UNLOGGED: after a crash ids restart at 1 and an old
--    batch's request_id can name another request's response. Each batch records the server's
--    start time (its "boot"); a response is matched only within the same boot, and a batch of an
--    earlier boot that no function accepted is known to be lost: its tasks come back at once,
--    attempt given back, no backoff.

alter table jobs.batch
  add column boot timestamptz,
  add column token_hash bytea,
  add column accepted_at timestamptz,
  add column alive_at timestamptz;
comment on column jobs.batch.boot is
  'pg_postmaster_start_time() at dispatch: request_id means something only within the same server start.';
comment on column jobs.batch.token_hash is
  'SHA-256 of the single-use credential the request carries (Authorization: Bearer dwb_…); the token itself is never stored.';
comment on column jobs.batch.accepted_at is 'When the function accepted the batch (jobs.accept_batch) and answered 202.';
comment on column jobs.batch.alive_at is 'Last lease extension by the function working on the batch (jobs.keep_batch_alive).';

alter table jobs.job alter column lease_seconds set default 15;
-- Leases are now kept alive by the function while it works; the old 180 s default only delayed recovery.
update jobs.job set lease_seconds = 15 where lease_seconds = 180;

-- As in 20261123100000_jobs_core.sql, with the new 15 s lease default.
-- Registers (or updates) a job and its pg_cron schedule (see there).
create or replace function jobs.define(
  p_name text,
  p_target_function text,
  p_discover_function regprocedure,
  p_schedule text default null,
  p_config jsonb default '{}',
  p_batch_size int default 10,
  p_max_in_flight int default 5,
  p_lease_seconds int default 15,
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

-- Up to p_want due tasks of a job, locked (SKIP LOCKED), with the job's bucket (or, for jobs with
-- task_rate_limits, every task's buckets: jobs.claim_due_tasks) debited. null: nothing due.
-- The one selection both claims use (jobs.claim_and_dispatch and jobs.claim_into_batch).
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
create or replace function jobs.claim_and_dispatch(p_job jobs.job, p_run_id bigint)
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

-- Claims up to p_count of the job's next due tasks into a batch that is still in flight.
create or replace function jobs.claim_into_batch(p_batch_id bigint, p_count int default 1)
returns table (id bigint, lease_token uuid, attempt int, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
begin
  select j.* into v_job from jobs.batch b join jobs.job j on j.name = b.job_name
   where b.id = p_batch_id and b.settled_at is null;
  if not found or not v_job.enabled or v_job.paused or coalesce(v_job.suspended_until > now(), false) then
    return;
  end if;
  return query select * from jobs.lease_tasks(
    v_job, p_batch_id, jobs.select_due_tasks(v_job, least(greatest(coalesce(p_count, 1), 1), 100)));
end;
$$;

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
create or replace function jobs.reap(p_job jobs.job)
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
create or replace function jobs.finish_batch(p_batch_id bigint)
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
create or replace function jobs.pump(p_job_name text)
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

revoke all on function jobs.accept_timeout_ms(jobs.job) from public, anon, authenticated;
revoke all on function jobs.select_due_tasks(jobs.job, int) from public, anon, authenticated;
revoke all on function jobs.lease_tasks(jobs.job, bigint, bigint[]) from public, anon, authenticated;
revoke all on function jobs.dispatch_batch(jobs.job, bigint, bigint[], text) from public, anon, authenticated;
revoke all on function jobs.accept_batch(bigint, text) from public, anon, authenticated;
revoke all on function jobs.extend_batch_leases(jobs.job, bigint) from public, anon, authenticated;
revoke all on function jobs.keep_batch_alive(bigint) from public, anon, authenticated;
revoke all on function jobs.requeue_abandoned(jobs.job, bigint[], text) from public, anon, authenticated;
