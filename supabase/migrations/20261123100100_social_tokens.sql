-- Social tokens: OAuth tokens of connected creator accounts, and the YouTube (Google OAuth)
-- refresh job on the jobs core. The refresh-token Edge Function does the Google I/O and writes
-- each outcome with one call to social.record_token_refresh / social.record_token_failure.

create schema if not exists social;
revoke all on schema social from public;
comment on schema social is 'Duework social-token internals. Not exposed through the Data API.';

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

-- Due = active, has a refresh token, and the access token expires within the margin (or is unknown).
-- config: {"platform": "youtube", "margin_minutes": 15}
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
   order by a.access_token_expires_at nulls first;
$$;

-- The credentials of the tasks the caller holds a lease on (one call per batch). Tokens travel
-- only here, never through pg_net bodies or task payloads. A leased task whose account was
-- deleted or is no longer active is discarded (state 'failed') and not returned.
create function social.leased_refresh_credentials(p_task_ids bigint[], p_lease_tokens uuid[])
returns table (task_id bigint, account_id bigint, platform text, refresh_token text)
language plpgsql
set search_path = ''
as $$
declare
  v_moot record;
begin
  for v_moot in
    select t.id, t.lease_token, a.id as account_id, a.status
      from unnest(p_task_ids, p_lease_tokens) as l (id, lease_token)
      join jobs.task t on t.id = l.id and t.lease_token = l.lease_token and t.state = 'running'
      left join public.social_accounts a on a.id = (t.payload ->> 'account_id')::bigint
     where a.id is null or a.status <> 'active' or a.refresh_token is null
  loop
    perform jobs.discard(v_moot.id, v_moot.lease_token,
      case when v_moot.account_id is null then 'account no longer exists'
           when v_moot.status <> 'active' then format('account is %s; nothing to refresh', v_moot.status)
           else 'account has no refresh token; nothing to refresh' end);
  end loop;

  return query
    select t.id, a.id, a.platform, a.refresh_token
      from unnest(p_task_ids, p_lease_tokens) as l (id, lease_token)
      join jobs.task t on t.id = l.id and t.lease_token = l.lease_token and t.state = 'running'
      join public.social_accounts a on a.id = (t.payload ->> 'account_id')::bigint
     where a.status = 'active' and a.refresh_token is not null;
end;
$$;

-- The next due task of the job, claimed into the caller's batch, with its credentials (see
-- jobs.claim_into_batch). Moot tasks (account gone or inactive) are discarded and skipped.
-- No row: nothing more to do in this request.
create function social.claim_next_refresh(p_batch_id bigint)
returns table (task_id bigint, lease_token uuid, account_id bigint, platform text, refresh_token text)
language plpgsql
set search_path = ''
as $$
declare
  v_task record;
  v_account public.social_accounts;
begin
  for i in 1 .. 20 loop
    select * into v_task from jobs.claim_into_batch(p_batch_id, 1);
    if v_task.id is null then
      return;
    end if;
    select * into v_account from public.social_accounts a where a.id = (v_task.payload ->> 'account_id')::bigint;
    if v_account.id is not null and v_account.status = 'active' and v_account.refresh_token is not null then
      return query select v_task.id, v_task.lease_token, v_account.id, v_account.platform, v_account.refresh_token;
      return;
    end if;
    perform jobs.discard(v_task.id, v_task.lease_token,
      case when v_account.id is null then 'account no longer exists'
           when v_account.status <> 'active' then format('account is %s; nothing to refresh', v_account.status)
           else 'account has no refresh token; nothing to refresh' end);
  end loop;
end;
$$;

-- Outcome: the provider issued a new access token. Keeps the stored refresh token when the
-- provider sent none (Google normally does not). Domain write and completion in one transaction;
-- a stale lease raises DWL01 and writes nothing.
create function social.record_token_refresh(
  p_task_id bigint, p_lease_token uuid, p_access_token text, p_expires_in int,
  p_refresh_token text default null, p_scope text default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_expires_at timestamptz;
begin
  if p_access_token is null or p_access_token = '' then
    raise exception 'record_token_refresh: access_token is required' using errcode = 'invalid_parameter_value';
  end if;
  if p_expires_in is null or p_expires_in <= 0 then
    raise exception 'record_token_refresh: expires_in must be a positive number of seconds, got %', p_expires_in
      using errcode = 'invalid_parameter_value';
  end if;
  -- The lease is checked by jobs.complete below; a stale one raises and rolls this write back.
  select * into v_task from jobs.task where id = p_task_id;

  update public.social_accounts
     set access_token = p_access_token,
         refresh_token = coalesce(nullif(p_refresh_token, ''), refresh_token),
         access_token_expires_at = now() + make_interval(secs => p_expires_in),
         scopes = coalesce(string_to_array(nullif(p_scope, ''), ' '), scopes),
         status = 'active',
         last_refreshed_at = now(),
         refresh_count = refresh_count + 1,
         last_error = null,
         last_error_at = null,
         updated_at = now()
   where id = (v_task.payload ->> 'account_id')::bigint
  returning access_token_expires_at into v_expires_at;

  if not found then
    perform jobs.discard(p_task_id, p_lease_token, 'account no longer exists');
    return jsonb_build_object('state', 'failed', 'reason', 'account no longer exists');
  end if;
  perform jobs.complete(p_task_id, p_lease_token,
    jsonb_build_object('account_id', (v_task.payload ->> 'account_id')::bigint, 'expires_at', v_expires_at));
  return jsonb_build_object('state', 'succeeded', 'expires_at', v_expires_at);
end;
$$;

-- Outcome: the refresh failed. needs_reauth (e.g. invalid_grant) marks the account and ends the
-- task dead with no retries. Returns the task's new state ('queued' = will retry, or 'dead').
create function social.record_token_failure(
  p_task_id bigint, p_lease_token uuid, p_error text,
  p_retry_after_seconds int default null, p_permanent boolean default false,
  p_needs_reauth boolean default false)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_task jobs.task;
  v_state text;
begin
  -- jobs.fail checks the lease; a stale one raises and nothing below runs.
  select * into v_task from jobs.task where id = p_task_id;
  v_state := jobs.fail(p_task_id, p_lease_token, p_error, p_retry_after_seconds,
                       coalesce(p_permanent, false) or coalesce(p_needs_reauth, false));
  update public.social_accounts
     set last_error = left(p_error, 500),
         last_error_at = now(),
         status = case when p_needs_reauth then 'needs_reauth' else status end,
         updated_at = now()
   where id = (v_task.payload ->> 'account_id')::bigint;
  return v_state;
end;
$$;

select jobs.define(
  p_name => 'youtube-token-refresh',
  p_target_function => 'refresh-token',
  p_discover_function => 'social.discover_due_tokens(jsonb)',
  p_schedule => '*/10 * * * *',
  p_config => '{"platform": "youtube", "margin_minutes": 15}',
  p_batch_size => 10,
  p_max_in_flight => 5,
  p_description => 'Refresh YouTube (Google OAuth) access tokens that expire within margin_minutes.');

-- SQL editor / service_role entry point: runs one tick now and returns what it did.
create function public.refresh_expired_youtube_tokens()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  return jobs.tick('youtube-token-refresh', 'manual');
end;
$$;
comment on function public.refresh_expired_youtube_tokens() is
  'Runs one youtube-token-refresh tick now: discovers due tokens, dispatches batches to refresh-token.';

revoke all on all functions in schema social from public, anon, authenticated;
revoke execute on function public.refresh_expired_youtube_tokens() from public, anon, authenticated;
grant execute on function public.refresh_expired_youtube_tokens() to service_role;
