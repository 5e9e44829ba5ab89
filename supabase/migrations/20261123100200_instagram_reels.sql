-- Instagram reel URLs (job `instagram-reel-urls`, Edge Function `refresh-reels`), daily at
-- 00:00 IST. Instagram's media URLs are signed CDN URLs that expire (`oe=` = hex unix seconds),
-- so every stored reel of every active Instagram account is re-read from the Graph API
-- (GET /{version}/{media-id}?fields=…media_url,thumbnail_url) before its URL runs out.
--
--   discover   one task per stored reel whose URL expires within config.margin_hours (48) or is
--              unknown; fresh ones are skipped and counted (instagram.discovery_log)
--   claim      the jobs core (20261123100000_jobs_core.sql) with per-task rate keys: every claim
--              takes a token from the app bucket `instagram-graph` (10 req/s), the account's
--              pacing bucket `ig-account:<id>` (2 req/s, bursts of 5) and its hourly budget
--              `ig-hourly:<id>` (200 calls/h); work that finds a bucket empty waits queued,
--              nobody sleeps
--   context    instagram.reel_context: the account's token for each leased task, or why the
--              task is moot (the engine discards it and gives its bucket tokens back)
--   function   refresh-reels: one Graph call per task, one outcome per answer
--   apply      instagram.apply_reel_outcomes: URLs stored | reel deleted (100/33) | account
--              inactive (190, 401/403) | the error on the reel (throttles, 5xx…). A throttle's
--              bucket is paused by the engine (the outcome's `pause`), not here.
--
-- Nothing here writes a jobs table or takes an engine lock: buckets are sized through
-- jobs.size_rate_limits and the job is declared with jobs.define.

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
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_oe text[] := regexp_match(p_url, '[?&]oe=([0-9A-Fa-f]{1,12})(&|#|$)');
begin
  -- plpgsql with plain expressions: called for every row, evaluated without a query (a SQL
  -- function with a SET clause is planned on every call).
  if v_oe is null then
    return null;
  end if;
  return to_timestamp(('x' || lpad(v_oe[1], 16, '0'))::bit(64)::bigint);
end;
$$;

-- Why a leased reel task has nothing to do any more (null: it has work). One wording everywhere.
create function instagram.reel_moot_reason(
  p_reel_id bigint, p_reel_status text, p_account_id bigint, p_account_status text, p_has_token boolean)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- plpgsql with a plain expression: called for every row, evaluated without a query (a SQL
  -- function with a SET clause is planned on every call).
  return case when p_reel_id is null then 'reel no longer stored'
              when p_reel_status <> 'active' then format('reel is %s; nothing to refresh', p_reel_status)
              when p_account_id is null then 'account no longer exists'
              when p_account_status <> 'active'
                then format('account is %s; its reel URLs are not refreshed', p_account_status)
              when not p_has_token then 'account has no access token; nothing to refresh' end;
end;
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

  -- The accounts' buckets: created full on first need, re-sized when the config changed (the
  -- engine takes its claim lock for that).
  if cardinality(v_account_ids) > 0 then
    perform jobs.size_rate_limits('instagram-reel-urls', (
      select jsonb_agg(jsonb_build_object('key', k.key, 'capacity', k.capacity, 'refill_per_second', k.refill) order by k.key)
        from (select distinct u.account_id from unnest(v_account_ids) as u (account_id)) a
        cross join lateral (values
          ('ig-account:' || a.account_id, v_burst, v_rate),
          ('ig-hourly:' || a.account_id, v_hourly, v_hourly / 3600)) k (key, capacity, refill)));
  end if;

  return query
    select d.reel_id::text,
           jsonb_build_object('reel_id', d.reel_id, 'account_id', d.account_id, 'media_id', d.media_id,
                              'graph_version', v_version,
                              'rate_keys', jsonb_build_array('ig-account:' || d.account_id, 'ig-hourly:' || d.account_id))
      from unnest(v_reel_ids, v_account_ids, v_media_ids) as d (reel_id, account_id, media_id);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Context: what a leased reel task needs, with the account's token

-- The job's context function (jobs.task_contexts, and every claim): for each task the engine holds
-- under a lease, {"reel_id", "account_id", "media_id", "graph_version", "access_token"}, or the
-- reason the task is moot (reel gone or deleted, account gone, inactive or without a token): the
-- engine then discards it and refunds its bucket tokens (no call was made). Tokens travel only
-- here, never in task payloads or pg_net bodies. p_tasks: [{"task_id", "key", "payload", "attempt"}].
create function instagram.reel_context(p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
stable
set search_path = ''
as $$
begin
  -- plpgsql, so the plan is cached per session: a SQL function with a SET clause is planned
  -- again on every call (on every claim).
  return query
  select t.task_id,
         case when m.moot is null
              then jsonb_build_object('reel_id', r.id, 'account_id', a.id, 'media_id', r.media_id,
                                      'graph_version', coalesce(t.payload ->> 'graph_version', 'v22.0'),
                                      'access_token', a.access_token) end,
         m.moot
    from jsonb_to_recordset(coalesce(p_tasks, '[]')) as t (task_id bigint, payload jsonb)
    -- Primary-key lookups per task: plain joins (or laterals the planner flattens; limit 1 keeps
    -- them lookups) hashed both tables on every claim.
    left join lateral (select x.* from public.instagram_reels x
                        where x.id = (t.payload ->> 'reel_id')::bigint limit 1) r on true
    left join lateral (select y.* from public.social_accounts y where y.id = r.account_id limit 1) a on true
    cross join lateral (select instagram.reel_moot_reason(r.id, r.status, a.id, a.status, a.access_token is not null) as moot) m
   order by t.task_id;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Apply: the reel (and account) write of each outcome

-- What is wrong with the data of an ok outcome (null: nothing), for instagram.apply_reel_outcomes.
create function instagram.reel_data_problem(p_data jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- plpgsql with a plain expression: called for every row, evaluated without a query (a SQL
  -- function with a SET clause is planned on every call).
  return case
    when jsonb_typeof(p_data) is distinct from 'object'
      then 'data must be an object with media_url and thumbnail_url, or with deleted'
    when coalesce(jsonb_typeof(p_data -> 'deleted'), 'null') not in ('null', 'boolean')
      then format('data.deleted must be true or false, got %s', p_data -> 'deleted')
    when coalesce(jsonb_typeof(p_data -> 'media_url'), 'null') not in ('null', 'string')
      then format('data.media_url must be a string or null, got %s', p_data -> 'media_url')
    when coalesce(jsonb_typeof(p_data -> 'thumbnail_url'), 'null') not in ('null', 'string')
      then format('data.thumbnail_url must be a string or null, got %s', p_data -> 'thumbnail_url')
  end;
end;
$$;

-- Apply function of instagram-reel-urls: what each Graph answer changes on the reel (and on its
-- account), for a whole group of outcomes at once, inside the engine's recording transaction.
--
--   ok, data {"media_url", "thumbnail_url"}   Instagram returned the media node: the URLs (null
--        when Instagram omits one, e.g. copyrighted audio), their oe= expiry (the earlier one)
--        and the refresh stamp are stored, the reel's error cleared. Result {"reel_id",
--        "url_expires_at"}; reel gone: outcome discard, error 'reel no longer stored'.
--   ok, data {"deleted": true, "error"}       100/33 (deleted, or no longer visible to this
--        token): the reel is marked deleted with the error (discovery skips it from now on).
--        Result {"reel_id", "deleted": true}.
--   dead (or retry), data {"token_invalid": true}   190, or 401/403 that is not a throttle: the
--        account becomes inactive (the user must reconnect) and the reel records the error; the
--        task ends dead, never retried. The account's other open tasks are moot from now on:
--        instagram.reel_context says so when they are claimed or read.
--   retry / dead                               anything else: the error on the reel.
--   discard                                    nothing to write.
-- A malformed ok (data not an object, deleted not a boolean, a URL not a string) raises
-- invalid_parameter_value naming the outcome and the field before anything is written.
create function instagram.apply_reel_outcomes(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_bad record;
begin
  select e.ord, e.o ->> 'task_id' as task_id, p.problem into v_bad
    from jsonb_array_elements(p_outcomes) with ordinality as e (o, ord)
    cross join lateral (select instagram.reel_data_problem(e.o -> 'data') as problem) p
   where e.o ->> 'outcome' = 'ok' and p.problem is not null
   order by e.ord
   limit 1;
  if found then
    raise exception 'instagram.apply_reel_outcomes: outcome % (task %): %', v_bad.ord, v_bad.task_id, v_bad.problem
      using errcode = 'invalid_parameter_value';
  end if;

  -- Fresh URLs: stored with their expiry; the task's result (or its discard when the reel is gone).
  return query
  with input as (
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'reel_id')::bigint as reel_id,
           nullif(e -> 'data' ->> 'media_url', '') as media_url,
           nullif(e -> 'data' ->> 'thumbnail_url', '') as thumbnail_url
      from jsonb_array_elements(p_outcomes) e
     where e ->> 'outcome' = 'ok' and e -> 'data' -> 'deleted' is distinct from 'true'::jsonb
  ),
  refreshed as (
    update public.instagram_reels r
       set media_url = i.media_url,
           thumbnail_url = i.thumbnail_url,
           url_expires_at = least(instagram.signed_url_expiry(i.media_url), instagram.signed_url_expiry(i.thumbnail_url)),
           refreshed_at = now(),
           refresh_count = r.refresh_count + 1,
           last_error = null,
           last_error_at = null,
           updated_at = now()
      from input i
     where r.id = i.reel_id
    returning i.task_id, r.id as reel_id, r.url_expires_at
  )
  select i.task_id,
         case when f.task_id is null then 'discard' end,
         case when f.task_id is null then 'reel no longer stored' end,
         case when f.task_id is not null
              then jsonb_build_object('reel_id', f.reel_id, 'url_expires_at', f.url_expires_at) end
    from input i
    left join refreshed f on f.task_id = i.task_id
   order by i.task_id;

  -- Deleted reels: marked, never asked for again; the task has done its work.
  return query
  with input as (
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'reel_id')::bigint as reel_id,
           coalesce(e -> 'data' ->> 'error', e ->> 'error') as error
      from jsonb_array_elements(p_outcomes) e
     where e ->> 'outcome' = 'ok' and e -> 'data' -> 'deleted' = 'true'::jsonb
  ),
  deleted as (
    update public.instagram_reels r
       set status = 'deleted', deleted_at = now(), last_error = left(i.error, 500), last_error_at = now(),
           updated_at = now()
      from input i
     where r.id = i.reel_id
  )
  select i.task_id, null::text, null::text, jsonb_build_object('reel_id', i.reel_id, 'deleted', true)
    from input i
   order by i.task_id;

  -- Failures: the error on the reel; a refused token also switches its account off (task dead).
  return query
  with input as (
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'reel_id')::bigint as reel_id,
           e ->> 'outcome' as outcome, e ->> 'error' as error,
           coalesce(e -> 'data' -> 'token_invalid' = 'true'::jsonb, false) as token_invalid
      from jsonb_array_elements(p_outcomes) e
     where e ->> 'outcome' in ('retry', 'dead')
  ),
  reels as (
    update public.instagram_reels r
       set last_error = left(i.error, 500), last_error_at = now(), updated_at = now()
      from input i
     where r.id = i.reel_id
    returning i.task_id, r.account_id
  ),
  accounts as (
    update public.social_accounts a
       set status = 'inactive', last_error = left(i.error, 500), last_error_at = now(), updated_at = now()
      from input i
      join reels r on r.task_id = i.task_id
     where i.token_invalid and a.id = r.account_id
  )
  select i.task_id, 'dead'::text, null::text, null::jsonb
    from input i
   where i.token_invalid and i.outcome = 'retry'
   order by i.task_id;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- The job

-- Schedule '30 18 * * *' is UTC (pg_cron runs in UTC): 18:30 UTC = 00:00 IST (UTC+05:30, no DST).
-- App-wide bucket for graph.instagram.com: 10 requests/s (the old script's 100 ms pacing); the
-- accounts' buckets come from discovery (rate_keys).
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
                   'skips reels whose URLs stay valid for more than margin_hours.',
  p_context_function => 'instagram.reel_context(jsonb)',
  p_apply_function => 'instagram.apply_reel_outcomes(jsonb)',
  p_rate_limit => '{"key": "instagram-graph", "capacity": 10, "refill_per_second": 10}',
  p_task_rate_limits => true);

-- SQL editor / service_role entry point: runs one tick now (jobs.run_now) and returns what it did,
-- including how many stored reels discovery skipped because their URLs are still fresh.
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
  v_summary := jobs.run_now('instagram-reel-urls');
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
