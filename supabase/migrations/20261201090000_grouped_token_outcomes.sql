-- Grouped outcomes for the refresh-token function: one SQL call records the outcomes of many
-- tasks and claims the next ones, instead of two calls per task.
--
-- Why: with a 5,000-token backlog the database spent most of its time on per-call overhead
-- (a transaction, a plpgsql entry and a lock round per task and per claim), see bench/RESULTS.md.
-- Each task's domain write and its completion still commit together: a group is one transaction
-- and every task in it is decided on its own lease (a lost lease is reported per task, it does
-- not fail the group).
--
--   social.record_token_refreshes(jsonb)            set-based success path (many tasks)
--   social.record_token_refresh(...)                one task; now a wrapper of the above
--   social.claim_refresh_tasks(batch_id, count)     next due tasks into a batch, with credentials
--   social.record_and_claim_refreshes(r, f, c)      the function's one call per group

alter default privileges in schema social revoke execute on functions from public;

-- Discovery inserts thousands of tasks in one statement; the insert guard only needs to run for
-- a row that breaks its rule, so the check moves into the trigger's WHEN clause (no plpgsql call
-- per row: 5,000 inserts went from ~105 ms to ~90 ms).
drop trigger task_guard_insert on jobs.task;
create trigger task_guard_insert
  before insert on jobs.task
  for each row when (new.state <> 'queued') execute function jobs.task_guard_insert();

-- The credential a refresh sends: the refresh token, except for Instagram, whose long-lived access
-- token is refreshed with itself (GET /refresh_access_token?access_token=…).
create function social.refresh_credential(p_platform text, p_access_token text, p_refresh_token text)
returns text
language sql
immutable
set search_path = ''
as $$
  select case when p_platform = 'instagram' then p_access_token else p_refresh_token end;
$$;

-- Why a leased task has nothing to refresh any more (null: it has). One wording everywhere.
create function social.refresh_moot_reason(p_account_id bigint, p_status text, p_has_refresh_token boolean)
returns text
language sql
immutable
set search_path = ''
as $$
  select case when p_account_id is null then 'account no longer exists'
              when p_status <> 'active' then format('account is %s; nothing to refresh', p_status)
              when not p_has_refresh_token then 'account has no token to refresh with; nothing to refresh' end;
$$;

create or replace function social.leased_refresh_credentials(p_task_ids bigint[], p_lease_tokens uuid[])
returns table (task_id bigint, account_id bigint, platform text, refresh_token text)
language plpgsql
set search_path = ''
as $$
declare
  v_moot record;
begin
  for v_moot in
    select t.id, t.lease_token,
           social.refresh_moot_reason(a.id, a.status,
             social.refresh_credential(a.platform, a.access_token, a.refresh_token) is not null) as reason
      from unnest(p_task_ids, p_lease_tokens) as l (id, lease_token)
      join jobs.task t on t.id = l.id and t.lease_token = l.lease_token and t.state = 'running'
      left join public.social_accounts a on a.id = (t.payload ->> 'account_id')::bigint
     where a.id is null or a.status <> 'active'
        or social.refresh_credential(a.platform, a.access_token, a.refresh_token) is null
  loop
    perform jobs.discard(v_moot.id, v_moot.lease_token, v_moot.reason);
  end loop;

  return query
    select t.id, a.id, a.platform, c.credential
      from unnest(p_task_ids, p_lease_tokens) as l (id, lease_token)
      join jobs.task t on t.id = l.id and t.lease_token = l.lease_token and t.state = 'running'
      join public.social_accounts a on a.id = (t.payload ->> 'account_id')::bigint
      cross join lateral (select social.refresh_credential(a.platform, a.access_token, a.refresh_token) as credential) c
     where a.status = 'active' and c.credential is not null;
end;
$$;

-- Successes of many tasks in one statement. Input: a JSON array of
--   {"task_id", "lease_token", "access_token", "expires_in",
--    "refresh_token"?, "scope"?, "refresh_expires_in"?}
-- (refresh_token / scope null keep the stored ones; refresh_expires_in sets the refresh token's
-- expiry, for providers that rotate refresh tokens, e.g. TikTok).
-- Returns one row per input task: 'succeeded' (token stored, task completed), 'failed' (account
-- gone: task discarded) or 'lease_lost' (not running under that lease: nothing written for it).
-- Invalid input raises before anything is written.
create function social.record_token_refreshes(p_refreshes jsonb)
returns table (task_id bigint, state text, expires_at timestamptz)
language plpgsql
set search_path = ''
as $$
declare
  v_bad record;
begin
  if p_refreshes is null or jsonb_typeof(p_refreshes) <> 'array' then
    raise exception 'record_token_refreshes: expected a JSON array of refreshes, got %',
      coalesce(jsonb_typeof(p_refreshes), 'null') using errcode = 'invalid_parameter_value';
  end if;
  select r.ord, r.task_id, r.lease_token, r.access_token, r.expires_in, r.refresh_expires_in into v_bad
    from rows from (jsonb_to_recordset(p_refreshes)
           as (task_id bigint, lease_token uuid, access_token text, expires_in int, refresh_expires_in int))
           with ordinality as r (task_id, lease_token, access_token, expires_in, refresh_expires_in, ord)
   where r.task_id is null or r.lease_token is null or coalesce(r.access_token, '') = ''
      or r.expires_in is null or r.expires_in <= 0 or r.refresh_expires_in <= 0
   limit 1;
  if found then
    raise exception 'record_token_refreshes: refresh % (task %): %', v_bad.ord, coalesce(v_bad.task_id::text, 'null'),
      case when v_bad.task_id is null then 'task_id is required'
           when v_bad.lease_token is null then 'lease_token is required'
           when coalesce(v_bad.access_token, '') = '' then 'access_token is required'
           when v_bad.expires_in is null or v_bad.expires_in <= 0
             then format('expires_in must be a positive number of seconds, got %s', coalesce(v_bad.expires_in::text, 'null'))
           else format('refresh_expires_in must be a positive number of seconds, got %s', v_bad.refresh_expires_in) end
      using errcode = 'invalid_parameter_value';
  end if;

  -- Outcome locks first (shared, one per job, in name order), then the tasks: the outcome-side
  -- lock order of the jobs core.
  perform jobs.lock_outcomes(j.job_name, false)
     from (select distinct t.job_name
             from jobs.task t
            where t.id = any (array(select (e ->> 'task_id')::bigint from jsonb_array_elements(p_refreshes) e))
            order by t.job_name) j;

  return query
  with input as (
    select r.task_id, r.lease_token, r.access_token, r.expires_in, nullif(r.refresh_token, '') as refresh_token,
           nullif(r.scope, '') as scope, r.refresh_expires_in
      from jsonb_to_recordset(p_refreshes)
             as r(task_id bigint, lease_token uuid, access_token text, expires_in int,
                  refresh_token text, scope text, refresh_expires_in int)
  ),
  leased as (
    select t.id, (t.payload ->> 'account_id')::bigint as account_id
      from jobs.task t
      join input i on i.task_id = t.id and i.lease_token = t.lease_token
     where t.state = 'running'
     order by t.id
       for update of t
  ),
  refreshed as (
    update public.social_accounts a
       set access_token = i.access_token,
           refresh_token = coalesce(i.refresh_token, a.refresh_token),
           access_token_expires_at = now() + make_interval(secs => i.expires_in),
           refresh_token_expires_at = case when i.refresh_expires_in is not null
                                           then now() + make_interval(secs => i.refresh_expires_in)
                                           else a.refresh_token_expires_at end,
           scopes = coalesce(string_to_array(i.scope, ' '), a.scopes),
           status = 'active',
           last_refreshed_at = now(),
           refresh_count = a.refresh_count + 1,
           last_error = null,
           last_error_at = null,
           updated_at = now()
      from leased l
      join input i on i.task_id = l.id
     where a.id = l.account_id
    returning l.id as task_id, a.id as account_id, a.access_token_expires_at
  ),
  succeeded as (
    update jobs.task t
       set state = 'succeeded',
           result = jsonb_build_object('account_id', r.account_id, 'expires_at', r.access_token_expires_at),
           lease_token = null, lease_until = null, finished_at = now(), updated_at = now()
      from refreshed r
     where t.id = r.task_id
    returning t.id, r.access_token_expires_at
  ),
  discarded as (
    update jobs.task t
       set state = 'failed', last_error = 'account no longer exists',
           lease_token = null, lease_until = null, finished_at = now(), updated_at = now()
      from leased l
     where t.id = l.id and not exists (select 1 from refreshed r where r.task_id = l.id)
    returning t.id
  )
  select i.task_id,
         case when s.id is not null then 'succeeded' when d.id is not null then 'failed' else 'lease_lost' end,
         s.access_token_expires_at
    from input i
    left join succeeded s on s.id = i.task_id
    left join discarded d on d.id = i.task_id;
end;
$$;

-- One task's success (kept for SQL callers and tests; the function uses the grouped call).
-- A stale lease raises DWL01 and writes nothing.
drop function social.record_token_refresh(bigint, uuid, text, int, text, text);
create function social.record_token_refresh(
  p_task_id bigint, p_lease_token uuid, p_access_token text, p_expires_in int,
  p_refresh_token text default null, p_scope text default null, p_refresh_expires_in int default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_row record;
begin
  if p_access_token is null or p_access_token = '' then
    raise exception 'record_token_refresh: access_token is required' using errcode = 'invalid_parameter_value';
  end if;
  if p_expires_in is null or p_expires_in <= 0 then
    raise exception 'record_token_refresh: expires_in must be a positive number of seconds, got %', p_expires_in
      using errcode = 'invalid_parameter_value';
  end if;
  select * into v_row from social.record_token_refreshes(jsonb_build_array(jsonb_build_object(
    'task_id', p_task_id, 'lease_token', p_lease_token, 'access_token', p_access_token,
    'expires_in', p_expires_in, 'refresh_token', p_refresh_token, 'scope', p_scope,
    'refresh_expires_in', p_refresh_expires_in)));
  if v_row.state = 'lease_lost' then
    perform jobs.lock_leased_task(p_task_id, p_lease_token);  -- raises the DWL01 "lease lost" error
  end if;
  if v_row.state = 'failed' then
    return jsonb_build_object('state', 'failed', 'reason', 'account no longer exists');
  end if;
  return jsonb_build_object('state', 'succeeded', 'expires_at', v_row.expires_at);
end;
$$;

-- Up to p_count of the job's next due tasks, claimed into the caller's batch (jobs.claim_into_batch),
-- with their credentials (social.refresh_credential). Moot tasks (account gone, inactive, no token) are discarded and
-- replaced by further claims. Fewer rows than asked: nothing more is due for this batch now.
create function social.claim_refresh_tasks(p_batch_id bigint, p_count int)
returns table (task_id bigint, lease_token uuid, attempt int, account_id bigint, platform text, refresh_token text)
language plpgsql
set search_path = ''
as $$
declare
  v_missing int := least(greatest(coalesce(p_count, 1), 1), 100);
  v_ids bigint[];
  v_tokens uuid[];
  v_attempts int[];
  v_accounts bigint[];
  v_found int;
  v_moot record;
begin
  -- Bounded: each round discards what was moot and asks again for the difference.
  for i in 1 .. 10 loop
    select array_agg(c.id), array_agg(c.lease_token), array_agg(c.attempt),
           array_agg((c.payload ->> 'account_id')::bigint)
      into v_ids, v_tokens, v_attempts, v_accounts
      from jobs.claim_into_batch(p_batch_id, v_missing) c;
    exit when v_ids is null;

    return query
      select c.id, c.lease_token, c.attempt, a.id, a.platform, k.credential
        from unnest(v_ids, v_tokens, v_attempts, v_accounts) as c (id, lease_token, attempt, account_id)
        join public.social_accounts a on a.id = c.account_id
        cross join lateral (select social.refresh_credential(a.platform, a.access_token, a.refresh_token) as credential) k
       where a.status = 'active' and k.credential is not null
       order by c.id;
    get diagnostics v_found = row_count;
    exit when v_found = cardinality(v_ids);

    for v_moot in
      select c.id, c.lease_token,
             social.refresh_moot_reason(a.id, a.status,
               social.refresh_credential(a.platform, a.access_token, a.refresh_token) is not null) as reason
        from unnest(v_ids, v_tokens, v_accounts) as c (id, lease_token, account_id)
        left join public.social_accounts a on a.id = c.account_id
       where a.id is null or a.status <> 'active'
          or social.refresh_credential(a.platform, a.access_token, a.refresh_token) is null
    loop
      perform jobs.discard(v_moot.id, v_moot.lease_token, v_moot.reason);
    end loop;

    v_missing := v_missing - v_found;
    exit when v_missing <= 0;
  end loop;
end;
$$;

-- Replaced by social.claim_refresh_tasks(batch_id, n), which the function calls through the
-- grouped call below; nothing calls the one-at-a-time claim any more.
drop function social.claim_next_refresh(bigint);

-- The refresh-token function's one call per group of outcomes, in one transaction:
--   p_refreshes  JSON array for social.record_token_refreshes
--   p_failures   JSON array of {"task_id","lease_token","error","retry_after_seconds"?,
--                "permanent"?,"needs_reauth"?} for social.record_token_failure
--   p_claims     JSON array of {"batch_id","count"}: claim that many next tasks into each batch
-- Returns {"refreshes":[{task_id,state,expires_at}], "failures":[{task_id,state}],
--          "claimed":[{batch_id,task_id,lease_token,attempt,account_id,platform,refresh_token}]}.
-- States are per task; 'lease_lost' means nothing was written for that task.
create function social.record_and_claim_refreshes(p_refreshes jsonb, p_failures jsonb, p_claims jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_refreshes jsonb := '[]'::jsonb;
  v_failures jsonb := '[]'::jsonb;
  v_claimed jsonb := '[]'::jsonb;
  v_failure record;
  v_state text;
  v_claim record;
begin
  if coalesce(jsonb_array_length(p_refreshes), 0) > 0 then
    select coalesce(jsonb_agg(jsonb_build_object('task_id', r.task_id, 'state', r.state, 'expires_at', r.expires_at)), '[]')
      into v_refreshes
      from social.record_token_refreshes(p_refreshes) r;
  end if;

  -- Failures are rare; each runs in its own subtransaction so a lost lease skips only that task.
  for v_failure in
    select * from jsonb_to_recordset(coalesce(p_failures, '[]'))
      as f(task_id bigint, lease_token uuid, error text, retry_after_seconds int, permanent boolean, needs_reauth boolean)
  loop
    begin
      v_state := social.record_token_failure(v_failure.task_id, v_failure.lease_token, v_failure.error,
        v_failure.retry_after_seconds, coalesce(v_failure.permanent, false), coalesce(v_failure.needs_reauth, false));
    exception when sqlstate 'DWL01' then
      v_state := 'lease_lost';
    end;
    v_failures := v_failures || jsonb_build_object('task_id', v_failure.task_id, 'state', v_state);
  end loop;

  for v_claim in
    select c.batch_id, sum(c.count)::int as count
      from jsonb_to_recordset(coalesce(p_claims, '[]')) as c(batch_id bigint, count int)
     where c.batch_id is not null and c.count > 0
     group by c.batch_id
     order by c.batch_id
  loop
    v_claimed := v_claimed || coalesce((
      select jsonb_agg(jsonb_build_object(
               'batch_id', v_claim.batch_id, 'task_id', n.task_id, 'lease_token', n.lease_token,
               'attempt', n.attempt, 'account_id', n.account_id, 'platform', n.platform,
               'refresh_token', n.refresh_token))
        from social.claim_refresh_tasks(v_claim.batch_id, v_claim.count) n), '[]');
  end loop;

  return jsonb_build_object('refreshes', v_refreshes, 'failures', v_failures, 'claimed', v_claimed);
end;
$$;

revoke all on function social.refresh_credential(text, text, text) from public, anon, authenticated;
revoke all on function social.refresh_moot_reason(bigint, text, boolean) from public, anon, authenticated;
revoke all on function social.record_token_refreshes(jsonb) from public, anon, authenticated;
revoke all on function social.record_token_refresh(bigint, uuid, text, int, text, text, int) from public, anon, authenticated;
revoke all on function social.claim_refresh_tasks(bigint, int) from public, anon, authenticated;
revoke all on function social.record_and_claim_refreshes(jsonb, jsonb, jsonb) from public, anon, authenticated;
