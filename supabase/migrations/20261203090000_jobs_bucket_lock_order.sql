-- Engine: claims lock their buckets in key order.
--
-- jobs.claim_due_tasks locked a bucket row the first time a candidate task named it, so in task
-- order. Two jobs whose tasks share buckets (the outreach jobs share each LinkedIn account's
-- unipile:<id>; the bookings and outreach jobs share resend) could take them in opposite orders
-- and deadlock: Postgres then aborts one claim. Now every bucket a claim may read (the job's
-- rate_limit_key and the rate keys of the tasks it will scan) is locked first, once, sorted by
-- key. Otherwise unchanged from 20261202090000_jobs_rate_limited_work.sql.

create or replace function jobs.claim_due_tasks(p_job jobs.job, p_want int)
returns bigint[]
language plpgsql
set search_path = ''
as $$
declare
  v_want int := coalesce(p_want, 0);
  v_scan int := greatest(coalesce(p_want, 0) * 50, 1000);
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
  -- A key without a bucket row is not limited.
  for v_key in
    select k.key from (
      select p_job.rate_limit_key as key where p_job.rate_limit_key is not null
      union
      select unnest(d.rate_keys)
        from (select t.rate_keys from jobs.task t
               where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
               order by t.run_after, t.id
               limit v_scan) d) k
     order by k.key
  loop
    v_avail := v_avail || jsonb_build_object(v_key, coalesce(jobs.rate_limit_hold(v_key), 2147483647));
  end loop;
  if p_job.rate_limit_key is not null then
    v_want := least(v_want, (v_avail ->> p_job.rate_limit_key)::int);
    if v_want <= 0 then
      return v_ids;
    end if;
  end if;

  for v_cand in
    select t.id, t.rate_keys from jobs.task t
     where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
     order by t.run_after, t.id
     limit v_scan
  loop
    exit when cardinality(v_ids) >= v_want;
    v_ok := true;
    foreach v_key in array coalesce(v_cand.rate_keys, '{}'::text[]) loop
      if not v_avail ? v_key then
        -- A task queued since the keys were locked: its bucket is taken now (rare).
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

revoke all on function jobs.claim_due_tasks(jobs.job, int) from public, anon, authenticated;
