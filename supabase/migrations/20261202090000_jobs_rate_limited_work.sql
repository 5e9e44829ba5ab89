-- Rate-limited work: claims that find only rate-limited work say when to come back, retries
-- that were never attempted give their attempt back, and a claim writes each bucket once.

-- Claims that find only rate-limited work say when to come back.
--
-- A job function's slot claims its next task ahead (jobs.report). When the claim comes back empty
-- because every due task waits for an empty bucket, the slot used to end, and the queue moved on
-- only when the batch finished (jobs.pump, then a pg_net pass of up to 1 s) or at the next
-- heartbeat (10 s): a 10 req/s bucket drained at a fraction of its rate. Now jobs.report also
-- answers "wait_ms": how long until the first due task's buckets hold a token again, and the
-- runner keeps one slot of the request waiting that long and claiming again (the engine's bucket
-- paces the provider; the function never guesses a rate and never needs a 429 to find it).

-- Milliseconds until every bucket of p_keys holds a whole token (a paused bucket counts from the
-- end of its pause), or null when they hold one already or never refill. Keys without a bucket
-- row are not limited.
create function jobs.bucket_wait_ms(p_keys text[])
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_seconds numeric;
begin
  -- Counted from the end of the claim (clock_timestamp), not from the start of its transaction
  -- (now()): the caller sleeps this long after the answer arrives.
  select max(greatest(0, extract(epoch from r.refilled_at - clock_timestamp())::numeric)
             + greatest(0, 1 - least(r.capacity, r.tokens + greatest(0, extract(epoch from clock_timestamp() - r.refilled_at)::numeric)
                                                   * r.refill_per_second)) / r.refill_per_second)
    into v_seconds
    from jobs.rate_limit r
   where r.key = any (p_keys) and r.refill_per_second > 0;
  if v_seconds is null or v_seconds <= 0 then
    return null;
  end if;
  return least(ceil(v_seconds * 1000), 60000)::int;
end;
$$;

-- For claims that came back short: the shortest wait, over the claims' rate-limited jobs, until
-- the first due task's buckets (its rate keys and the job's) refill; null when nothing due waits
-- for a bucket (the queue is empty, or the rest are locked by another claim).
create function jobs.claim_wait_ms(p_claims jsonb)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_keys text[];
  v_wait int;
  v_best int;
begin
  for v_job in
    select j.* from jobs.job j
     where j.name in (select b.job_name from jobs.batch b
                       where b.id = any (array(select (e ->> 'batch_id')::bigint from jsonb_array_elements(p_claims) e))
                         and b.settled_at is null)
       and (j.rate_limit_key is not null or j.task_rate_limits)
       and j.enabled and not j.paused and not coalesce(j.suspended_until > now(), false)
  loop
    select coalesce(t.rate_keys, '{}'::text[]) into v_keys
      from jobs.task t
     where t.job_name = v_job.name and t.state = 'queued' and t.run_after <= now()
     order by t.run_after, t.id
     limit 1;
    continue when not found;
    if v_job.rate_limit_key is not null then
      v_keys := v_keys || v_job.rate_limit_key;
    end if;
    v_wait := jobs.bucket_wait_ms(v_keys);
    if v_wait is not null and (v_best is null or v_wait < v_best) then
      v_best := v_wait;
    end if;
  end loop;
  return v_best;
end;
$$;


-- A function's one call per group, in one transaction: its outcomes first (jobs.record_outcomes:
-- each decided on its own lease, a lost one is 'lease_lost' and does not fail the group), then
-- its claims ahead (jobs.claim_for_batches: one selection and one context call per job).
--   p_outcomes  as for jobs.record_outcomes (null or [] : none)
--   p_claims    JSON array of {"batch_id", "count"} (null or [] : none); counts of one batch add up
-- Returns {"outcomes": [{"task_id", "state"}],
--          "claimed": [{"batch_id", "task_id", "lease_token", "attempt", "payload", "context"}]}
--  and, when fewer tasks were claimed than asked because due work waits for a bucket,
--  "wait_ms": when to ask again (jobs.claim_wait_ms).
create or replace function jobs.report(p_outcomes jsonb, p_claims jsonb)
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
  v_wait int;
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

  if v_claims <> '[]'::jsonb
     and jsonb_array_length(v_claimed) < (select coalesce(sum((c ->> 'count')::int), 0) from jsonb_array_elements(v_claims) c) then
    v_wait := jobs.claim_wait_ms(v_claims);
  end if;
  return jsonb_build_object('outcomes', v_recorded, 'claimed', v_claimed)
         || case when v_wait is not null then jsonb_build_object('wait_ms', v_wait) else '{}'::jsonb end;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- A retry that was never attempted gives its attempt back.
--
-- Once a provider refused a request's call with "wait" (a 429), the function answers that
-- provider's other tasks of the request with the same retry without calling (one call per request
-- in a storm, not one per task). Those retries used to count as attempts, so a storm of a few
-- rounds could use up max_attempts and dead-letter tasks that never reached the provider. A retry
-- outcome may now say "not_attempted": true: the task is queued after `after` with its attempt
-- given back (never dead for it), as a release is, but without suspending the job. Everything
-- else is the function of 20261123100000_jobs_core.sql.

create or replace function jobs.record_outcomes(p_outcomes jsonb)
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
            when coalesce(jsonb_typeof(e.v -> 'not_attempted'), 'null') not in ('null', 'boolean')
              then format('not_attempted must be true or false, got %s', e.v -> 'not_attempted')
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
                 l.attempts as attempt, l.rate_keys, l.outcome, l.error, l.after, l.pause, l.data, l.result,
                 l.not_attempted
            from (select i.ord, t.id, t.job_name, j.apply_function, t.key, t.payload, t.attempts, t.rate_keys,
                         i.v ->> 'outcome' as outcome, i.v ->> 'error' as error, (i.v ->> 'after')::numeric as after,
                         i.v ->> 'pause' as pause, nullif(i.v -> 'data', 'null'::jsonb) as data,
                         nullif(i.v -> 'result', 'null'::jsonb) as result,
                         i.v ->> 'outcome' = 'retry' and coalesce((i.v ->> 'not_attempted')::boolean, false) as not_attempted
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
    select jsonb_agg(w - 'ord' - 'job_name' - 'apply_function' - 'rate_keys' - 'pause' - 'result' - 'not_attempted'
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
           -- A retry of a task perform never attempted (its provider was known to refuse in this
           -- request) gives its attempt back, like a release, unless apply changed the outcome.
           coalesce(x.not_attempted, false) and v_over -> x.task_id::text ->> 'outcome' is null as given_back,
           coalesce(v_over -> x.task_id::text ->> 'outcome', x.outcome) as final,
           coalesce(v_over -> x.task_id::text ->> 'error', x.error) as final_error,
           coalesce(nullif(v_over -> x.task_id::text -> 'result', 'null'::jsonb), x.result) as final_result
      from jsonb_to_recordset(v_work)
        as x (ord bigint, task_id bigint, job_name text, outcome text, error text, after numeric, result jsonb,
              not_attempted boolean)
  ),
  written as (
    update jobs.task t
       set state = case
             when f.final = 'ok' then 'succeeded'
             when f.final = 'discard' then 'discarded'
             when f.final = 'release' then 'queued'
             when f.final = 'retry' and (f.given_back or t.attempts < j.max_attempts) then 'queued'
             else 'dead' end,
           attempts = case when f.final = 'release' or f.given_back then t.attempts - 1 else t.attempts end,
           run_after = case
             when f.final = 'release' then now()
             when f.final = 'retry' and (f.given_back or t.attempts < j.max_attempts) then now() + make_interval(secs => coalesce(
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
             when f.final in ('ok', 'discard', 'dead') or (f.final = 'retry' and not f.given_back and t.attempts >= j.max_attempts)
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


-- ---------------------------------------------------------------------------------------------
-- One bucket write per claim.
--
-- A claim used to refill each bucket it looked at (an UPDATE) and then debit it (another UPDATE):
-- two new row versions per bucket per claim, and one even when nothing was claimed. The few
-- bucket rows are the hottest in the engine; while any long transaction holds back cleanup
-- (the local minute heartbeat of pg_cron 1.4 does for ~59 s a minute), their version chains grow
-- with every claim and each claim gets slower (bench W2: 1.1 ms → 4.7 ms per claim over a
-- 10,000-send drain). Now a claim locks the bucket rows it reads (SELECT … FOR UPDATE: a lock,
-- no new version) and writes each bucket it debits once, refill and debit in one UPDATE.

-- The whole tokens a bucket holds now, its row locked until the transaction ends (the claim
-- order: the job's claim lock, then buckets). null: no such bucket (not limited).
create function jobs.rate_limit_hold(p_key text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_tokens numeric;
begin
  select least(r.capacity, r.tokens + greatest(0, extract(epoch from now() - r.refilled_at)::numeric) * r.refill_per_second)
    into v_tokens
    from jobs.rate_limit r
   where r.key = p_key
     for update;
  return floor(v_tokens)::int;
end;
$$;

-- Takes p_n tokens from a bucket: its refill up to now and the debit, in one write.
create function jobs.rate_limit_take(p_key text, p_n int)
returns void
language plpgsql
set search_path = ''
as $$
begin
  update jobs.rate_limit
     set tokens = greatest(least(capacity,
                                 tokens + greatest(0, extract(epoch from now() - refilled_at)::numeric) * refill_per_second)
                           - p_n, 0),
         refilled_at = greatest(refilled_at, now())
   where key = p_key;
end;
$$;

-- The claim selection of a job with task_rate_limits: up to p_want due tasks (run_after, id
-- order), skipping a task while any of its buckets (the job's rate_limit_key and the task's
-- rate_keys) is empty, so one throttled account never blocks the others (the scan reads past
-- it, up to 50 × p_want rows, at least 1,000). Returns the ids, locked; the buckets are debited.
-- Takes the job's claim lock first and then bucket rows (job bucket, then task buckets), so
-- concurrent claims never deadlock on buckets and never overspend them.
create or replace function jobs.claim_due_tasks(p_job jobs.job, p_want int)
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
    v_want := least(v_want, coalesce(jobs.rate_limit_hold(p_job.rate_limit_key), v_want));
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
        v_avail := v_avail || jsonb_build_object(v_key, coalesce(jobs.rate_limit_hold(v_key), 2147483647));
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
    perform jobs.rate_limit_take(c.k, c.n::int)
       from (select k, count(*) as n
               from jobs.task t, unnest(t.rate_keys) as k
              where t.id = any (v_ids)
              group by k
              order by k) c;
    if p_job.rate_limit_key is not null then
      perform jobs.rate_limit_take(p_job.rate_limit_key, cardinality(v_ids));
    end if;
  end if;
  return v_ids;
end;
$$;

-- Up to p_want due tasks of a job, locked (SKIP LOCKED), with the job's bucket (or, for jobs with
-- task_rate_limits, every task's buckets: jobs.claim_due_tasks) debited. null: nothing due.
-- The one selection both claims use (jobs.claim_and_dispatch and jobs.claim_for_batches).
create or replace function jobs.select_due_tasks(p_job jobs.job, p_want int)
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
    v_want := least(v_want, coalesce(jobs.rate_limit_hold(p_job.rate_limit_key), v_want));
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
    perform jobs.rate_limit_take(p_job.rate_limit_key, cardinality(v_ids));
  end if;
  return v_ids;
end;
$$;

-- Its claims no longer refill with a write of their own.
drop function jobs.rate_limit_refill(text);

revoke all on function jobs.bucket_wait_ms(text[]), jobs.claim_wait_ms(jsonb), jobs.rate_limit_hold(text),
  jobs.rate_limit_take(text, int) from public, anon, authenticated;
