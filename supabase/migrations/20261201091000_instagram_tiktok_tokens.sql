-- Instagram and TikTok token refresh, on the same engine and the same refresh-token function as
-- YouTube (social_tokens.sql, grouped_token_outcomes.sql). Provider facts:
-- reference/provider-contracts.md §2 (Instagram) and §3 (TikTok).
--
-- Single flight: each job has one open task per account (jobs.task_open_key on (job, key) with
-- key = account id), and a task runs under one lease at a time. Overlapping ticks, a manual call
-- and pg_cron on several schedules of the same job therefore never refresh one token twice at
-- once; a retry is the same task under a new lease. Each platform has exactly one job here.

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

select jobs.define(
  p_name => 'instagram-token-refresh',
  p_target_function => 'refresh-token',
  p_discover_function => 'social.discover_due_instagram_tokens(jsonb)',
  p_schedule => '0 */6 * * *',  -- every 6 hours (UTC)
  p_config => '{"margin_days": 10}',
  p_batch_size => 10,
  p_max_in_flight => 5,
  p_description => 'Refresh long-lived Instagram tokens that expire within margin_days; mark expired ones needs_reauth.');

-- Due tokens of a platform, as before (social_tokens.sql), plus min_refreshed_minutes_ago: a token
-- refreshed less than that many minutes ago is not due again (default 0). TikTok needs it: its
-- margin covers the whole access-token lifetime, so without it every run, manual ones included,
-- would refresh every account again.
-- config: {"platform": "tiktok", "margin_minutes": 780, "min_refreshed_minutes_ago": 60}
create or replace function social.discover_due_tokens(p_config jsonb)
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
  p_description => 'Refresh TikTok tokens (rotating refresh tokens are stored with the access token in one write).');

-- SQL editor / service_role entry points: one tick now, returning what it did.
create function public.refresh_expired_instagram_tokens()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  return jobs.tick('instagram-token-refresh', 'manual');
end;
$$;
comment on function public.refresh_expired_instagram_tokens() is
  'Runs one instagram-token-refresh tick now: discovers due long-lived tokens, dispatches batches to refresh-token.';

create function public.refresh_expired_tiktok_tokens()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  return jobs.tick('tiktok-token-refresh', 'manual');
end;
$$;
comment on function public.refresh_expired_tiktok_tokens() is
  'Runs one tiktok-token-refresh tick now: discovers due tokens, dispatches batches to refresh-token.';

revoke all on function social.discover_due_instagram_tokens(jsonb) from public, anon, authenticated;
revoke execute on function public.refresh_expired_instagram_tokens() from public, anon, authenticated;
revoke execute on function public.refresh_expired_tiktok_tokens() from public, anon, authenticated;
grant execute on function public.refresh_expired_instagram_tokens() to service_role;
grant execute on function public.refresh_expired_tiktok_tokens() to service_role;
