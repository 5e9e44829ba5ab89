-- Instagram reel URLs (job `instagram-reel-urls`, Edge Function `refresh-reels`), daily at
-- 00:00 IST. Instagram's media URLs are signed CDN URLs that expire (`oe=` = hex unix seconds),
-- so every stored reel of every active Instagram account is re-read from the Graph API
-- (GET /{version}/{media-id}?fields=…media_url,thumbnail_url) before its URL runs out.
--
--   discover   one task per stored reel whose URL expires within config.margin_hours (48) or is
--              unknown; fresh ones are skipped and counted (instagram.discovery_log)
--   claim      the jobs core, plus per-task rate keys added here: every claim takes a token from
--              the app bucket `instagram-graph` (10 req/s), the account's pacing bucket
--              `ig-account:<id>` (2 req/s, bursts of 5) and its hourly budget `ig-hourly:<id>`
--              (200 calls/h); work that finds a bucket empty waits queued, nobody sleeps
--   function   refresh-reels: one Graph call per task, one SQL call per outcome:
--              record_reel_urls | record_reel_deleted (100/33) | record_token_invalid (190,
--              401/403: account → inactive, its other tasks are discarded, no more calls) |
--              record_reel_failure (throttles pause the bucket, everything else backs off)
--
-- Jobs core extensions (additive; existing jobs behave exactly as before):
--   jobs.task.rate_keys        per-task token buckets, taken from payload.rate_keys on insert
--   jobs.job.task_rate_limits  claims of this job honour the tasks' rate_keys
--   jobs.claim_due_tasks       the claim selection for such jobs
--   jobs.rate_limit_pause      empties a bucket until a provider's Retry-After has passed
--   jobs.claim_and_dispatch, jobs.claim_into_batch: replaced, delegating to claim_due_tasks for
--                              jobs with task_rate_limits (the old path unchanged for the others)

-- ---------------------------------------------------------------------------------------------
-- Jobs core: per-task rate keys

alter table jobs.task add column rate_keys text[]
  constraint task_rate_keys_small check (cardinality(rate_keys) <= 8);
comment on column jobs.task.rate_keys is
  'Token buckets (jobs.rate_limit keys) this task takes one token from when claimed, in addition to '
  'the job''s rate_limit_key. Honoured only for jobs with task_rate_limits. A missing bucket row means no limit.';

alter table jobs.job add column task_rate_limits boolean not null default false;
comment on column jobs.job.task_rate_limits is
  'Claims honour jobs.task.rate_keys (per-account buckets and the like); see jobs.claim_due_tasks.';

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

-- Empties a bucket and holds it empty for p_seconds (a provider said "wait"): the refill of
-- jobs.rate_limit_refill counts from refilled_at, which is moved into the future.
-- Takes the per-job claim lock first when given a job, the lock order of jobs.claim_due_tasks.
create function jobs.rate_limit_pause(p_key text, p_seconds numeric, p_job_name text default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_job_name is not null then
    perform pg_catalog.pg_advisory_xact_lock(20261201, pg_catalog.hashtext(p_job_name));
  end if;
  update jobs.rate_limit
     set tokens = 0,
         refilled_at = greatest(refilled_at, now() + make_interval(secs => greatest(coalesce(p_seconds, 0), 0)::double precision))
   where key = p_key;
end;
$$;

-- The claim selection of a job with task_rate_limits: up to p_want due tasks (run_after, id
-- order), skipping a task while any of its buckets (the job's rate_limit_key and the task's
-- rate_keys) is empty, so one throttled account never blocks the others (the scan reads past
-- it, up to 50 × p_want rows, at least 1,000). Returns the ids, locked; the buckets are debited.
-- Claims of one job take a per-job advisory lock first and then bucket rows (job bucket, then
-- task buckets), so concurrent claims never deadlock on buckets and never overspend them.
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
  perform pg_catalog.pg_advisory_xact_lock(20261201, pg_catalog.hashtext(p_job.name));
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

-- As in 20261123100000_jobs_core.sql, except that a job with task_rate_limits selects its tasks
-- with jobs.claim_due_tasks. Every other job takes the same path as before.
create or replace function jobs.claim_and_dispatch(p_job jobs.job, p_run_id bigint)
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

  if p_job.task_rate_limits then
    v_ids := nullif(jobs.claim_due_tasks(p_job, v_want), '{}'::bigint[]);
  else
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
  end if;
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

  if p_job.rate_limit_key is not null and not p_job.task_rate_limits then
    update jobs.rate_limit set tokens = greatest(tokens - v_claimed, 0) where key = p_job.rate_limit_key;
  end if;

  return query select v_claimed, v_requests;
end;
$$;

-- As in 20261123100000_jobs_core.sql, except for jobs with task_rate_limits (jobs.claim_due_tasks).
create or replace function jobs.claim_into_batch(p_batch_id bigint, p_count int default 1)
returns table (id bigint, lease_token uuid, attempt int, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_want int := least(greatest(coalesce(p_count, 1), 1), 100);
  v_available int;
  v_claimed int;
  v_ids bigint[];
begin
  select j.* into v_job from jobs.batch b join jobs.job j on j.name = b.job_name
   where b.id = p_batch_id and b.settled_at is null;
  if not found or not v_job.enabled or v_job.paused or coalesce(v_job.suspended_until > now(), false) then
    return;
  end if;

  if v_job.task_rate_limits then
    v_ids := jobs.claim_due_tasks(v_job, v_want);
    return query
      update jobs.task t
         set state = 'running',
             attempts = t.attempts + 1,
             lease_token = gen_random_uuid(),
             lease_until = now() + make_interval(secs => v_job.lease_seconds),
             batch_id = p_batch_id,
             updated_at = now()
       where t.id = any (v_ids)
      returning t.id, t.lease_token, t.attempts, t.payload;
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

revoke all on function jobs.task_take_rate_keys() from public, anon, authenticated;
revoke all on function jobs.rate_limit_pause(text, numeric, text) from public, anon, authenticated;
revoke all on function jobs.claim_due_tasks(jobs.job, int) from public, anon, authenticated;
revoke all on function jobs.claim_and_dispatch(jobs.job, bigint) from public, anon, authenticated;
revoke all on function jobs.claim_into_batch(bigint, int) from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- Stored reels

create schema if not exists instagram;
revoke all on schema instagram from public;
comment on schema instagram is 'Duework Instagram reel-URL internals. Not exposed through the Data API.';
alter default privileges in schema instagram revoke execute on functions from public;

create table public.instagram_reels (
  id bigint generated always as identity primary key,
  account_id bigint not null references public.social_accounts (id) on delete cascade,
  media_id text not null check (media_id ~ '^[0-9]{1,32}$'),
  media_url text,
  thumbnail_url text,
  -- The earliest oe= expiry of media_url and thumbnail_url (null: none known yet).
  url_expires_at timestamptz,
  refreshed_at timestamptz,
  refresh_count int not null default 0,
  status text not null default 'active' check (status in ('active', 'deleted')),
  deleted_at timestamptz,
  last_error text,
  last_error_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint instagram_reels_account_media_key unique (account_id, media_id)
);
comment on table public.instagram_reels is
  'Reels of connected Instagram accounts and their current signed CDN URLs, kept fresh by the '
  'instagram-reel-urls job (docs/instagram-reels.md).';
comment on column public.instagram_reels.url_expires_at is
  'When the signed URLs stop working: the earliest oe= (hex unix seconds) of media_url and thumbnail_url.';
comment on column public.instagram_reels.status is
  'active: refreshed by the job; deleted: Instagram answered 100/33 (deleted or no longer visible).';

-- Discovery reads active reels per account in expiry order.
create index instagram_reels_due on public.instagram_reels (account_id, url_expires_at) where status = 'active';

alter table public.instagram_reels enable row level security;
revoke all on public.instagram_reels from anon, authenticated;
grant select on public.instagram_reels to authenticated;
create policy "Users read the reels of their own connections"
  on public.instagram_reels for select to authenticated
  using (exists (select 1 from public.social_accounts a
                  where a.id = instagram_reels.account_id and a.user_id = (select auth.uid())));

-- What each discovery found, for reports (`select refresh_instagram_reel_urls()`, cron runs).
create table instagram.discovery_log (
  id bigint generated always as identity primary key,
  xact_id bigint not null default txid_current(),
  discovered_at timestamptz not null default now(),
  margin_hours numeric not null,
  accounts_active int not null,
  reels_stored int not null,
  reels_due int not null,
  skipped_fresh int not null,
  skipped_deleted int not null,
  skipped_inactive_account int not null
);
comment on table instagram.discovery_log is
  'One row per discovery of the instagram-reel-urls job: how many stored reels were due and how many were skipped (and why).';
create index discovery_log_xact on instagram.discovery_log (xact_id);
create index discovery_log_at on instagram.discovery_log (discovered_at);

-- Expiry of a signed Instagram CDN URL: its oe parameter, hex unix seconds. Null when absent.
create function instagram.signed_url_expiry(p_url text)
returns timestamptz
language sql
immutable
set search_path = ''
as $$
  select to_timestamp(('x' || lpad(m[1], 16, '0'))::bit(64)::bigint)
    from (select regexp_match(p_url, '[?&]oe=([0-9A-Fa-f]{1,12})(&|#|$)') as m) x
   where m is not null;
$$;

-- Why a leased reel task has nothing to do any more (null: it has work). One wording everywhere.
create function instagram.reel_moot_reason(
  p_reel_id bigint, p_reel_status text, p_account_id bigint, p_account_status text, p_has_token boolean)
returns text
language sql
immutable
set search_path = ''
as $$
  select case when p_reel_id is null then 'reel no longer stored'
              when p_reel_status <> 'active' then format('reel is %s; nothing to refresh', p_reel_status)
              when p_account_id is null then 'account no longer exists'
              when p_account_status <> 'active'
                then format('account is %s; its reel URLs are not refreshed', p_account_status)
              when not p_has_token then 'account has no access token; nothing to refresh' end;
$$;

-- Due reels: stored, active, of an active Instagram account with a token, whose URLs expire
-- within margin_hours (or are unknown). config:
--   {"graph_version": "v22.0", "margin_hours": 48,
--    "account_rate_per_second": 2, "account_burst": 5, "account_hourly_budget": 200}
-- Key: the reel id. Payload: reel, account, media id and Graph version (never a token), plus the
-- account's two buckets as rate_keys, created or re-sized here from the config.
create function instagram.discover_due_reels(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_margin numeric := coalesce((p_config ->> 'margin_hours')::numeric, 48);
  v_version text := coalesce(p_config ->> 'graph_version', 'v22.0');
  v_rate numeric := coalesce((p_config ->> 'account_rate_per_second')::numeric, 2);
  v_burst numeric := coalesce((p_config ->> 'account_burst')::numeric, 5);
  v_hourly numeric := coalesce((p_config ->> 'account_hourly_budget')::numeric, 200);
  v_cutoff timestamptz;
  v_reel_ids bigint[];
  v_account_ids bigint[];
  v_media_ids text[];
begin
  if v_version !~ '^v[0-9]{1,3}\.[0-9]{1,3}$' then
    raise exception 'instagram-reel-urls: graph_version must look like v22.0, got %', v_version
      using errcode = 'invalid_parameter_value';
  end if;
  if v_margin < 0 or v_rate <= 0 or v_burst < 1 or v_hourly < 1 then
    raise exception 'instagram-reel-urls: margin_hours >= 0, account_rate_per_second > 0, account_burst >= 1 and account_hourly_budget >= 1 are required'
      using errcode = 'invalid_parameter_value';
  end if;
  v_cutoff := now() + make_interval(secs => (v_margin * 3600)::double precision);

  select coalesce(array_agg(r.id order by r.account_id, r.id), '{}'::bigint[]),
         coalesce(array_agg(r.account_id order by r.account_id, r.id), '{}'::bigint[]),
         coalesce(array_agg(r.media_id order by r.account_id, r.id), '{}'::text[])
    into v_reel_ids, v_account_ids, v_media_ids
    from public.instagram_reels r
    join public.social_accounts a on a.id = r.account_id
   where a.platform = 'instagram' and a.status = 'active' and a.access_token is not null
     and r.status = 'active'
     and (r.url_expires_at is null or r.url_expires_at <= v_cutoff);

  insert into instagram.discovery_log
    (margin_hours, accounts_active, reels_stored, reels_due, skipped_fresh, skipped_deleted, skipped_inactive_account)
  select v_margin,
         (select count(*) from public.social_accounts a
           where a.platform = 'instagram' and a.status = 'active' and a.access_token is not null),
         count(*),
         cardinality(v_reel_ids),
         count(*) filter (where x.account_ok and x.status = 'active' and x.url_expires_at > v_cutoff),
         count(*) filter (where x.account_ok and x.status <> 'active'),
         count(*) filter (where not x.account_ok)
    from (select r.status, r.url_expires_at, (a.status = 'active' and a.access_token is not null) as account_ok
            from public.instagram_reels r
            join public.social_accounts a on a.id = r.account_id
           where a.platform = 'instagram') x;
  delete from instagram.discovery_log where discovered_at < now() - interval '30 days';

  -- The accounts' buckets: created on first need, re-sized when the config changed. The per-job
  -- claim lock first: the lock order of jobs.claim_due_tasks (claim lock, then buckets).
  perform pg_catalog.pg_advisory_xact_lock(20261201, pg_catalog.hashtext('instagram-reel-urls'));
  insert into jobs.rate_limit as b (key, capacity, refill_per_second, tokens)
  select k.key, k.capacity, k.refill, k.capacity
    from (select distinct u.account_id from unnest(v_account_ids) as u (account_id)) a
    cross join lateral (values
      ('ig-account:' || a.account_id, v_burst, v_rate),
      ('ig-hourly:' || a.account_id, v_hourly, v_hourly / 3600)) k (key, capacity, refill)
   order by k.key
  on conflict on constraint rate_limit_pkey do update
     set capacity = excluded.capacity, refill_per_second = excluded.refill_per_second,
         tokens = least(b.tokens, excluded.capacity)
   where b.capacity <> excluded.capacity or b.refill_per_second <> excluded.refill_per_second;

  return query
    select d.reel_id::text,
           jsonb_build_object('reel_id', d.reel_id, 'account_id', d.account_id, 'media_id', d.media_id,
                              'graph_version', v_version,
                              'rate_keys', jsonb_build_array('ig-account:' || d.account_id, 'ig-hourly:' || d.account_id))
      from unnest(v_reel_ids, v_account_ids, v_media_ids) as d (reel_id, account_id, media_id);
end;
$$;

-- What a leased reel task needs, with the account's token: one row per task the caller still
-- holds a lease on. Moot tasks (reel gone or deleted, account gone, inactive or without a
-- token) are discarded (state 'failed') and come back with moot set and no token.
-- Tokens travel only here and in instagram.claim_reel_tasks, never in task payloads.
create function instagram.leased_reels(p_task_ids bigint[], p_lease_tokens uuid[])
returns table (task_id bigint, reel_id bigint, account_id bigint, media_id text, graph_version text,
               access_token text, moot text)
language plpgsql
set search_path = ''
as $$
declare
  v_moot record;
begin
  for v_moot in
    select x.id, x.lease_token, x.reason
      from (select t.id, t.lease_token,
                   instagram.reel_moot_reason(r.id, r.status, a.id, a.status, a.access_token is not null) as reason
              from unnest(p_task_ids, p_lease_tokens) as l (id, lease_token)
              join jobs.task t on t.id = l.id and t.lease_token = l.lease_token and t.state = 'running'
              left join public.instagram_reels r on r.id = (t.payload ->> 'reel_id')::bigint
              left join public.social_accounts a on a.id = r.account_id
             order by t.id) x
     where x.reason is not null
  loop
    perform jobs.discard(v_moot.id, v_moot.lease_token, v_moot.reason);
    task_id := v_moot.id;
    moot := v_moot.reason;
    reel_id := null; account_id := null; media_id := null; graph_version := null; access_token := null;
    return next;
  end loop;

  return query
    select t.id, r.id, a.id, r.media_id, coalesce(t.payload ->> 'graph_version', 'v22.0'), a.access_token, null::text
      from unnest(p_task_ids, p_lease_tokens) as l (id, lease_token)
      join jobs.task t on t.id = l.id and t.lease_token = l.lease_token and t.state = 'running'
      join public.instagram_reels r on r.id = (t.payload ->> 'reel_id')::bigint
      join public.social_accounts a on a.id = r.account_id
     where r.status = 'active' and a.status = 'active' and a.access_token is not null
     order by t.id;
end;
$$;

-- Up to p_count of the job's next due reel tasks claimed into the caller's batch
-- (jobs.claim_into_batch, so every bucket is honoured), with the account's token. Moot tasks are
-- discarded, the bucket tokens their claim took are given back (no call was made), and further
-- claims replace them (bounded). Fewer rows than asked: nothing more for this batch now.
create function instagram.claim_reel_tasks(p_batch_id bigint, p_count int default 1)
returns table (task_id bigint, lease_token uuid, attempt int, reel_id bigint, account_id bigint,
               media_id text, graph_version text, access_token text)
language plpgsql
set search_path = ''
as $$
declare
  v_missing int := least(greatest(coalesce(p_count, 1), 1), 100);
  v_ids bigint[];
  v_tokens uuid[];
  v_attempts int[];
  v_row record;
begin
  for i in 1 .. 10 loop
    select array_agg(c.id order by c.id), array_agg(c.lease_token order by c.id), array_agg(c.attempt order by c.id)
      into v_ids, v_tokens, v_attempts
      from jobs.claim_into_batch(p_batch_id, v_missing) c;
    exit when v_ids is null;

    for v_row in
      select l.task_id as tid, c.lease_token as lt, c.attempt as att, l.reel_id as rid, l.account_id as aid,
             l.media_id as mid, l.graph_version as gv, l.access_token as tok, l.moot
        from instagram.leased_reels(v_ids, v_tokens) l
        join unnest(v_ids, v_tokens, v_attempts) as c (id, lease_token, attempt) on c.id = l.task_id
       order by l.task_id
    loop
      if v_row.moot is null then
        task_id := v_row.tid; lease_token := v_row.lt; attempt := v_row.att; reel_id := v_row.rid;
        account_id := v_row.aid; media_id := v_row.mid; graph_version := v_row.gv; access_token := v_row.tok;
        return next;
        v_missing := v_missing - 1;
      else
        update jobs.rate_limit r set tokens = least(r.capacity, r.tokens + 1)
          from jobs.task t join jobs.job j on j.name = t.job_name
         where t.id = v_row.tid and (r.key = any (t.rate_keys) or r.key = j.rate_limit_key);
      end if;
    end loop;
    exit when v_missing <= 0;
  end loop;
end;
$$;

-- Outcome: Instagram returned the media node. Stores the URLs (media_url is null when Instagram
-- omits it, e.g. copyrighted audio), their oe= expiry and the refresh stamp, and completes the
-- task, in one transaction. A stale lease raises DWL01 and writes nothing.
create function instagram.record_reel_urls(
  p_task_id bigint, p_lease_token uuid, p_media_url text, p_thumbnail_url text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_expires timestamptz;
begin
  v_task := jobs.lock_leased_task(p_task_id, p_lease_token);
  v_expires := least(instagram.signed_url_expiry(p_media_url), instagram.signed_url_expiry(p_thumbnail_url));
  update public.instagram_reels
     set media_url = nullif(p_media_url, ''),
         thumbnail_url = nullif(p_thumbnail_url, ''),
         url_expires_at = v_expires,
         refreshed_at = now(),
         refresh_count = refresh_count + 1,
         last_error = null,
         last_error_at = null,
         updated_at = now()
   where id = (v_task.payload ->> 'reel_id')::bigint;
  if not found then
    perform jobs.discard(p_task_id, p_lease_token, 'reel no longer stored');
    return jsonb_build_object('state', 'failed', 'reason', 'reel no longer stored');
  end if;
  perform jobs.complete(p_task_id, p_lease_token,
    jsonb_build_object('reel_id', (v_task.payload ->> 'reel_id')::bigint, 'url_expires_at', v_expires));
  return jsonb_build_object('state', 'succeeded', 'url_expires_at', v_expires);
end;
$$;

-- Outcome: Instagram answered 100/33 (deleted, or no longer visible to this token). The reel is
-- marked deleted (discovery skips it from now on) and the task has done its work.
create function instagram.record_reel_deleted(p_task_id bigint, p_lease_token uuid, p_error text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
begin
  v_task := jobs.lock_leased_task(p_task_id, p_lease_token);
  update public.instagram_reels
     set status = 'deleted', deleted_at = now(), last_error = left(p_error, 500), last_error_at = now(),
         updated_at = now()
   where id = (v_task.payload ->> 'reel_id')::bigint;
  perform jobs.complete(p_task_id, p_lease_token,
    jsonb_build_object('reel_id', (v_task.payload ->> 'reel_id')::bigint, 'deleted', true));
  return jsonb_build_object('state', 'succeeded', 'deleted', true);
end;
$$;

-- Outcome: the account's token is no good (190, or 401/403 that is not a throttle). The account
-- becomes inactive (the user must reconnect) and this task dead, no retries. The account's other
-- open tasks are moot: discarded when claimed (instagram.claim_reel_tasks) or when the function
-- reads them (instagram.leased_reels), before any Graph call. Returns the task's state.
create function instagram.record_token_invalid(p_task_id bigint, p_lease_token uuid, p_error text)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_state text;
begin
  v_task := jobs.lock_leased_task(p_task_id, p_lease_token);
  v_state := jobs.fail(p_task_id, p_lease_token, p_error, null, true);
  update public.social_accounts a
     set status = 'inactive', last_error = left(p_error, 500), last_error_at = now(), updated_at = now()
    from public.instagram_reels r
   where r.id = (v_task.payload ->> 'reel_id')::bigint and a.id = r.account_id;
  update public.instagram_reels
     set last_error = left(p_error, 500), last_error_at = now(), updated_at = now()
   where id = (v_task.payload ->> 'reel_id')::bigint;
  return v_state;
end;
$$;

-- Outcome: anything else (5xx, timeout, throttling, an unexpected 4xx). The task goes back with
-- the provider's wait (Retry-After, or the BUC header's regain time) or the job's backoff, or
-- dead when permanent / out of attempts. A throttle also empties the bucket it concerns for that
-- long, so the other tasks of the account (p_throttle 'account') or of the app ('app') wait in
-- the queue instead of spending calls on more throttled answers. Returns the task's state.
create function instagram.record_reel_failure(
  p_task_id bigint, p_lease_token uuid, p_error text,
  p_retry_after_seconds int default null, p_permanent boolean default false, p_throttle text default null)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_job jobs.job;
  v_state text;
  v_account_id bigint;
begin
  if p_throttle is not null and p_throttle not in ('account', 'app') then
    raise exception 'record_reel_failure: throttle must be account, app or null, got %', p_throttle
      using errcode = 'invalid_parameter_value';
  end if;
  v_task := jobs.lock_leased_task(p_task_id, p_lease_token);
  v_state := jobs.fail(p_task_id, p_lease_token, p_error, p_retry_after_seconds, coalesce(p_permanent, false));
  update public.instagram_reels
     set last_error = left(p_error, 500), last_error_at = now(), updated_at = now()
   where id = (v_task.payload ->> 'reel_id')::bigint
  returning account_id into v_account_id;
  if p_throttle is not null then
    select * into v_job from jobs.job where name = v_task.job_name;
    if p_throttle = 'app' and v_job.rate_limit_key is not null then
      perform jobs.rate_limit_pause(v_job.rate_limit_key, coalesce(p_retry_after_seconds, 60), v_job.name);
    elsif p_throttle = 'account' and v_account_id is not null then
      perform jobs.rate_limit_pause('ig-hourly:' || v_account_id, coalesce(p_retry_after_seconds, 300), v_job.name);
    end if;
  end if;
  return v_state;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- The job

-- App-wide bucket for graph.instagram.com: 10 requests/s (the old script's 100 ms pacing).
insert into jobs.rate_limit (key, capacity, refill_per_second, tokens)
values ('instagram-graph', 10, 10, 10)
on conflict (key) do nothing;

-- Schedule '30 18 * * *' is UTC (pg_cron runs in UTC): 18:30 UTC = 00:00 IST (UTC+05:30, no DST).
select jobs.define(
  p_name => 'instagram-reel-urls',
  p_target_function => 'refresh-reels',
  p_discover_function => 'instagram.discover_due_reels(jsonb)',
  p_schedule => '30 18 * * *',
  p_config => '{"graph_version": "v22.0", "margin_hours": 48, "account_rate_per_second": 2, '
              '"account_burst": 5, "account_hourly_budget": 200}',
  p_batch_size => 10,
  p_max_in_flight => 5,
  p_description => 'Refresh the signed media/thumbnail URLs of stored Instagram reels (daily at 00:00 IST = 18:30 UTC); '
                   'skips reels whose URLs stay valid for more than margin_hours.');
update jobs.job set rate_limit_key = 'instagram-graph', task_rate_limits = true where name = 'instagram-reel-urls';

-- SQL editor / service_role entry point: runs one tick now and returns what it did, including
-- how many stored reels discovery skipped because their URLs are still fresh.
create function public.refresh_instagram_reel_urls()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_summary jsonb;
  v_reels jsonb;
begin
  v_summary := jobs.tick('instagram-reel-urls', 'manual');
  select jsonb_build_object(
           'accounts_active', d.accounts_active, 'stored', d.reels_stored, 'due', d.reels_due,
           'skipped_fresh', d.skipped_fresh, 'skipped_deleted', d.skipped_deleted,
           'skipped_inactive_account', d.skipped_inactive_account, 'margin_hours', d.margin_hours)
    into v_reels
    from instagram.discovery_log d
   where d.xact_id = txid_current()
   order by d.id desc
   limit 1;
  return v_summary || jsonb_build_object('reels', v_reels);
end;
$$;
comment on function public.refresh_instagram_reel_urls() is
  'Runs one instagram-reel-urls tick now: discovers reels whose URLs expire within margin_hours, '
  'dispatches them to refresh-reels, and reports how many were skipped as fresh.';

revoke all on all functions in schema instagram from public, anon, authenticated;
revoke all on all tables in schema instagram from public, anon, authenticated;
revoke all on all sequences in schema instagram from public, anon, authenticated;
revoke execute on function public.refresh_instagram_reel_urls() from public, anon, authenticated;
grant execute on function public.refresh_instagram_reel_urls() to service_role;
