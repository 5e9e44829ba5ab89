-- Social tokens: OAuth tokens of connected creator accounts (public.social_accounts) and the three
-- token-refresh jobs on the jobs core (20261123100000_jobs_core.sql), all run by the refresh-token
-- Edge Function:
--
--   youtube-token-refresh     Google OAuth, every 10 minutes       social.discover_due_tokens
--   instagram-token-refresh   long-lived tokens, every 6 hours     social.discover_due_instagram_tokens
--   tiktok-token-refresh      rotating refresh tokens, every 12 h  social.discover_due_tokens
--
-- This file holds only the domain: what is due (discover), the credential a leased task sends
-- (social.refresh_context) and the write each outcome makes on the account
-- (social.apply_refreshes). The engine checks leases, records task states, claims and batches;
-- nothing here writes a jobs table or takes an engine lock. Provider facts:
-- reference/provider-contracts.md §1 (Google), §2 (Instagram), §3 (TikTok).
--
-- Single flight: each job has one open task per account (jobs.task_open_key on (job, key) with
-- key = account id), and a task runs under one lease at a time. Overlapping ticks, a manual call
-- and pg_cron therefore never refresh one token twice at once; a retry is the same task under a
-- new lease. Each platform has exactly one job.

create schema if not exists social;
revoke all on schema social from public;
comment on schema social is 'Duework social-token internals. Not exposed through the Data API.';
alter default privileges in schema social revoke execute on functions from public;

create table public.social_accounts (
  id bigint generated always as identity primary key,
  -- The app user who owns the connection; lets that user read its status (never its tokens).
  user_id uuid references auth.users (id) on delete cascade,
  creator_unique_identifier text not null check (creator_unique_identifier <> ''),
  platform text not null check (platform in ('youtube', 'instagram', 'tiktok')),
  access_token text,
  refresh_token text,
  access_token_expires_at timestamptz,
  refresh_token_expires_at timestamptz,
  scopes text[] not null default '{}',
  status text not null default 'active' check (status in ('active', 'needs_reauth', 'inactive')),
  last_refreshed_at timestamptz,
  refresh_count int not null default 0,
  last_error text,
  last_error_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint social_accounts_creator_platform_key unique (creator_unique_identifier, platform)
);
comment on table public.social_accounts is
  'Connected creator accounts. Token columns are readable only by the server (postgres, service_role).';
comment on column public.social_accounts.status is
  'active: refreshed by the jobs; needs_reauth: the provider revoked the grant, the user must reconnect; inactive: switched off.';

create index social_accounts_user on public.social_accounts (user_id);
-- Due-token discovery reads only active rows, in expiry order.
create index social_accounts_due on public.social_accounts (platform, access_token_expires_at)
  where status = 'active';

alter table public.social_accounts enable row level security;
revoke all on public.social_accounts from anon, authenticated;
-- Signed-in users may read the connection status of their own accounts: non-secret columns only.
grant select (id, user_id, creator_unique_identifier, platform, access_token_expires_at, scopes, status,
              last_refreshed_at, created_at, updated_at)
  on public.social_accounts to authenticated;
create policy "Users read the status of their own connections"
  on public.social_accounts for select to authenticated
  using (user_id = (select auth.uid()));

-- ---------------------------------------------------------------------------------------------
-- Discover

-- Due = active, has a refresh token, and the access token expires within margin_minutes (default
-- 15) or is unknown; and it was not refreshed in the last min_refreshed_minutes_ago (default 0).
-- TikTok needs the latter: its margin covers the whole access-token lifetime, so without it every
-- run, manual ones included, would refresh every account again.
-- config: {"platform": "youtube", "margin_minutes": 15}
--         {"platform": "tiktok", "margin_minutes": 780, "min_refreshed_minutes_ago": 60}
create function social.discover_due_tokens(p_config jsonb)
returns table (key text, payload jsonb)
language sql
stable
set search_path = ''
as $$
  select a.id::text, jsonb_build_object('account_id', a.id)
    from public.social_accounts a
   where a.platform = p_config ->> 'platform'
     and a.status = 'active'
     and a.refresh_token is not null
     and (a.access_token_expires_at is null
          or a.access_token_expires_at
             < now() + make_interval(mins => coalesce((p_config ->> 'margin_minutes')::int, 15)))
     and (a.last_refreshed_at is null
          or a.last_refreshed_at
             <= now() - make_interval(mins => coalesce((p_config ->> 'min_refreshed_minutes_ago')::int, 0)))
   order by a.access_token_expires_at nulls first;
$$;

-- Instagram: a long-lived token (60 days) is refreshed with itself, and only while it is at least
-- 24 hours old and not yet expired. An expired one can never be refreshed: discovery marks it
-- needs_reauth without calling Instagram. Due: expires within margin_days (default 10) — with a
-- run every 6 hours that leaves 40 runs to get through before the token runs out, and the 24-hour
-- rule holds (a token that expires within 10 days was issued 50 days ago).
-- config: {"margin_days": 10}
create function social.discover_due_instagram_tokens(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_margin interval := make_interval(days => coalesce((p_config ->> 'margin_days')::int, 10));
begin
  if v_margin > interval '59 days' then
    raise exception 'discover_due_instagram_tokens: margin_days must be at most 59 (tokens under 24 hours old cannot be refreshed), got %',
      p_config ->> 'margin_days' using errcode = 'invalid_parameter_value';
  end if;

  update public.social_accounts a
     set status = 'needs_reauth',
         last_error = format('Instagram token expired at %s; a long-lived token cannot be refreshed after it expires, the user must log in again',
                             a.access_token_expires_at),
         last_error_at = now(),
         updated_at = now()
   where a.platform = 'instagram' and a.status = 'active' and a.access_token_expires_at <= now();

  return query
    select a.id::text, jsonb_build_object('account_id', a.id)
      from public.social_accounts a
     where a.platform = 'instagram'
       and a.status = 'active'
       and a.access_token is not null
       and (a.access_token_expires_at is null or a.access_token_expires_at < now() + v_margin)
     order by a.access_token_expires_at nulls first;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Context: the credential of each leased task

-- The credential a refresh sends: the refresh token, except for Instagram, whose long-lived access
-- token is refreshed with itself (GET /refresh_access_token?access_token=…).
create function social.refresh_credential(p_platform text, p_access_token text, p_refresh_token text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- plpgsql with a plain expression: called for every row, evaluated without a query (a SQL
  -- function with a SET clause is planned on every call).
  return case when p_platform = 'instagram' then p_access_token else p_refresh_token end;
end;
$$;

-- Why a leased task has nothing to refresh any more (null: it has). One wording everywhere.
create function social.refresh_moot_reason(p_account_id bigint, p_status text, p_has_refresh_token boolean)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  -- plpgsql with a plain expression: called for every row, evaluated without a query (a SQL
  -- function with a SET clause is planned on every call).
  return case when p_account_id is null then 'account no longer exists'
              when p_status <> 'active' then format('account is %s; nothing to refresh', p_status)
              when not p_has_refresh_token then 'account has no token to refresh with; nothing to refresh' end;
end;
$$;

-- Context function of the three token jobs (jobs.task_contexts, and every claim): for each task
-- the engine holds under a lease, {"account_id", "platform", "refresh_token"} with the credential of
-- social.refresh_credential, or the reason the task is moot (account deleted, not active, no
-- token): the engine then discards it. Tokens travel only here, never in task payloads or pg_net
-- bodies. p_tasks: [{"task_id", "key", "payload", "attempt"}].
create function social.refresh_context(p_tasks jsonb)
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
              then jsonb_build_object('account_id', a.id, 'platform', a.platform, 'refresh_token', c.credential) end,
         m.moot
    from jsonb_to_recordset(coalesce(p_tasks, '[]')) as t (task_id bigint, payload jsonb)
    -- One primary-key lookup per task: a plain join (or a lateral the planner flattens; limit 1
    -- keeps it a lookup) hashed the whole table on every claim.
    left join lateral (select x.* from public.social_accounts x
                        where x.id = (t.payload ->> 'account_id')::bigint limit 1) a on true
    cross join lateral (select social.refresh_credential(a.platform, a.access_token, a.refresh_token) as credential) c
    cross join lateral (select social.refresh_moot_reason(a.id, a.status, c.credential is not null) as moot) m
   order by t.task_id;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Apply: the account write of each outcome

-- What is wrong with the data of an ok outcome (null: nothing), for social.apply_refreshes.
create function social.refresh_data_problem(p_data jsonb)
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
      then 'data must be an object with access_token and expires_in'
    when jsonb_typeof(p_data -> 'access_token') is distinct from 'string' or p_data ->> 'access_token' = ''
      then 'data.access_token is required'
    when jsonb_typeof(p_data -> 'expires_in') is distinct from 'number'
      then format('data.expires_in must be a positive number of seconds, got %s', coalesce((p_data -> 'expires_in')::text, 'null'))
    when (p_data ->> 'expires_in')::numeric <= 0
      then format('data.expires_in must be a positive number of seconds, got %s', p_data -> 'expires_in')
    when coalesce(jsonb_typeof(p_data -> 'refresh_expires_in'), 'null') not in ('null', 'number')
      then format('data.refresh_expires_in must be a positive number of seconds, got %s', p_data -> 'refresh_expires_in')
    when (p_data ->> 'refresh_expires_in')::numeric <= 0
      then format('data.refresh_expires_in must be a positive number of seconds, got %s', p_data -> 'refresh_expires_in')
    when coalesce(jsonb_typeof(p_data -> 'refresh_token'), 'null') not in ('null', 'string')
      then 'data.refresh_token must be a string'
    when coalesce(jsonb_typeof(p_data -> 'scope'), 'null') not in ('null', 'string')
      then 'data.scope must be a string of space-separated scopes'
  end;
end;
$$;

-- Apply function of the three token jobs: the account write of a group of outcomes, run by
-- jobs.record_outcomes in its transaction for the tasks whose lease checked out (the apply
-- contract: 20261123100000_jobs_core.sql). One statement per kind of outcome:
--   ok      data {"access_token", "expires_in", "refresh_token"?, "scope"?, "refresh_expires_in"?}
--           The new access token and its expiry are stored; refresh_token / scope null or absent
--           keep the stored ones; refresh_expires_in sets the refresh token's expiry (providers
--           that rotate refresh tokens, e.g. TikTok). The account becomes active again, its
--           error is cleared. Result {"account_id", "expires_at"}; account gone: outcome discard,
--           error 'account no longer exists'.
--   retry / dead
--           last_error / last_error_at of the account; data {"needs_reauth": true} (invalid_grant
--           and the like) also marks it needs_reauth and ends the task dead, never retried.
--   discard nothing to write.
-- A malformed ok (data not an object, access_token missing, expires_in or refresh_expires_in not
-- a positive number, refresh_token or scope not a string) raises invalid_parameter_value naming
-- the outcome and the field before anything is written.
create function social.apply_refreshes(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_bad record;
begin
  select e.ord, e.o ->> 'task_id' as task_id, p.problem into v_bad
    from jsonb_array_elements(p_outcomes) with ordinality as e (o, ord)
    cross join lateral (select social.refresh_data_problem(e.o -> 'data') as problem) p
   where e.o ->> 'outcome' = 'ok' and p.problem is not null
   order by e.ord
   limit 1;
  if found then
    raise exception 'social.apply_refreshes: outcome % (task %): %', v_bad.ord, v_bad.task_id, v_bad.problem
      using errcode = 'invalid_parameter_value';
  end if;

  -- Successes: the new token, and the task's result (or its discard when the account is gone).
  return query
  with input as (
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'account_id')::bigint as account_id,
           e -> 'data' ->> 'access_token' as access_token,
           (e -> 'data' ->> 'expires_in')::numeric as expires_in,
           nullif(e -> 'data' ->> 'refresh_token', '') as refresh_token,
           nullif(e -> 'data' ->> 'scope', '') as scope,
           (e -> 'data' ->> 'refresh_expires_in')::numeric as refresh_expires_in
      from jsonb_array_elements(p_outcomes) e
     where e ->> 'outcome' = 'ok'
  ),
  refreshed as (
    update public.social_accounts a
       set access_token = i.access_token,
           refresh_token = coalesce(i.refresh_token, a.refresh_token),
           access_token_expires_at = now() + make_interval(secs => i.expires_in::double precision),
           refresh_token_expires_at = case when i.refresh_expires_in is not null
                                           then now() + make_interval(secs => i.refresh_expires_in::double precision)
                                           else a.refresh_token_expires_at end,
           scopes = coalesce(string_to_array(i.scope, ' '), a.scopes),
           status = 'active',
           last_refreshed_at = now(),
           refresh_count = a.refresh_count + 1,
           last_error = null,
           last_error_at = null,
           updated_at = now()
      from input i
     where a.id = i.account_id
    returning i.task_id, a.id as account_id, a.access_token_expires_at
  )
  select i.task_id,
         case when r.task_id is null then 'discard' end,
         case when r.task_id is null then 'account no longer exists' end,
         case when r.task_id is not null
              then jsonb_build_object('account_id', r.account_id, 'expires_at', r.access_token_expires_at) end
    from input i
    left join refreshed r on r.task_id = i.task_id
   order by i.task_id;

  -- Failures: the error on the account; needs_reauth marks it and makes the task dead.
  return query
  with input as (
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'account_id')::bigint as account_id,
           e ->> 'outcome' as outcome, e ->> 'error' as error,
           coalesce(e -> 'data' -> 'needs_reauth' = 'true'::jsonb, false) as needs_reauth
      from jsonb_array_elements(p_outcomes) e
     where e ->> 'outcome' in ('retry', 'dead')
  ),
  failed as (
    update public.social_accounts a
       set last_error = left(i.error, 500),
           last_error_at = now(),
           status = case when i.needs_reauth then 'needs_reauth' else a.status end,
           updated_at = now()
      from input i
     where a.id = i.account_id
  )
  select i.task_id, 'dead'::text, null::text, null::jsonb
    from input i
   where i.needs_reauth and i.outcome = 'retry'
   order by i.task_id;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- The jobs

select jobs.define(
  p_name => 'youtube-token-refresh',
  p_target_function => 'refresh-token',
  p_discover_function => 'social.discover_due_tokens(jsonb)',
  p_schedule => '*/10 * * * *',
  p_config => '{"platform": "youtube", "margin_minutes": 15}',
  p_batch_size => 10,
  p_max_in_flight => 5,
  p_description => 'Refresh YouTube (Google OAuth) access tokens that expire within margin_minutes.',
  p_context_function => 'social.refresh_context(jsonb)',
  p_apply_function => 'social.apply_refreshes(jsonb)');

select jobs.define(
  p_name => 'instagram-token-refresh',
  p_target_function => 'refresh-token',
  p_discover_function => 'social.discover_due_instagram_tokens(jsonb)',
  p_schedule => '0 */6 * * *',  -- every 6 hours (UTC)
  p_config => '{"margin_days": 10}',
  p_batch_size => 10,
  p_max_in_flight => 5,
  p_description => 'Refresh long-lived Instagram tokens that expire within margin_days; mark expired ones needs_reauth.',
  p_context_function => 'social.refresh_context(jsonb)',
  p_apply_function => 'social.apply_refreshes(jsonb)');

-- TikTok: access tokens live hours and refresh tokens rotate (each answer carries a new one and
-- the old one stops working), so a run every 12 hours refreshes every active TikTok account whose
-- access token expires within margin_minutes (780 = the 12-hour interval plus an hour) and that was
-- not refreshed in the last hour: each run takes the whole chain one step further and the stored
-- refresh token never ages out, while a manual run right after a scheduled one does nothing.
select jobs.define(
  p_name => 'tiktok-token-refresh',
  p_target_function => 'refresh-token',
  p_discover_function => 'social.discover_due_tokens(jsonb)',
  p_schedule => '0 */12 * * *',  -- every 12 hours (UTC)
  p_config => '{"platform": "tiktok", "margin_minutes": 780, "min_refreshed_minutes_ago": 60}',
  p_batch_size => 10,
  p_max_in_flight => 5,
  p_description => 'Refresh TikTok tokens (rotating refresh tokens are stored with the access token in one write).',
  p_context_function => 'social.refresh_context(jsonb)',
  p_apply_function => 'social.apply_refreshes(jsonb)');

-- SQL editor / service_role entry points, one per job: one tick now (jobs.run_now), returning
-- what it did. SECURITY DEFINER with execute for service_role only.
create function public.refresh_expired_youtube_tokens() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('youtube-token-refresh') $$;
create function public.refresh_expired_instagram_tokens() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('instagram-token-refresh') $$;
create function public.refresh_expired_tiktok_tokens() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('tiktok-token-refresh') $$;
comment on function public.refresh_expired_youtube_tokens() is
  'Runs one youtube-token-refresh tick now: discovers due tokens, dispatches batches to refresh-token.';
comment on function public.refresh_expired_instagram_tokens() is
  'Runs one instagram-token-refresh tick now: discovers due long-lived tokens, dispatches batches to refresh-token.';
comment on function public.refresh_expired_tiktok_tokens() is
  'Runs one tiktok-token-refresh tick now: discovers due tokens, dispatches batches to refresh-token.';
revoke execute on function public.refresh_expired_youtube_tokens(), public.refresh_expired_instagram_tokens(),
  public.refresh_expired_tiktok_tokens() from public, anon, authenticated;
grant execute on function public.refresh_expired_youtube_tokens(), public.refresh_expired_instagram_tokens(),
  public.refresh_expired_tiktok_tokens() to service_role;

revoke all on all functions in schema social from public, anon, authenticated;
