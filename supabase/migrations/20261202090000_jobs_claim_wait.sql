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
stable
set search_path = ''
as $$
declare
  v_seconds numeric;
begin
  select max(greatest(0, extract(epoch from r.refilled_at - now())::numeric)
             + greatest(0, 1 - least(r.capacity, r.tokens + greatest(0, extract(epoch from now() - r.refilled_at)::numeric)
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
stable
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

revoke all on function jobs.bucket_wait_ms(text[]), jobs.claim_wait_ms(jsonb) from public, anon, authenticated;
