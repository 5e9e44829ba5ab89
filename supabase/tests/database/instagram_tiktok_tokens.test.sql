-- Instagram and TikTok token jobs (supabase/migrations/20261123100100_social_tokens.sql):
-- Instagram discovery (due window, expired → needs_reauth without a call), the Instagram
-- credential (its access token, in the context social.refresh_context gives a claim), TikTok's
-- min_refreshed_minutes_ago, the three job definitions and the public entry points.
-- Runs in one transaction that is rolled back.
begin;
set local search_path = public, extensions;
select plan(20);

select set_config('pgtap.prefix', 'pgtap-it-' || pg_backend_pid() || '-', true);
insert into public.social_accounts
  (creator_unique_identifier, platform, status, access_token, refresh_token, access_token_expires_at, last_refreshed_at)
select current_setting('pgtap.prefix') || a.name, a.platform, a.status, a.access_token, a.refresh_token,
       now() + a.expires_in, now() - a.refreshed_ago
  from (values
    ('ig-due',      'instagram', 'active',   'IGAA-due',     null::text, interval '5 days',   null::interval),
    ('ig-edge',     'instagram', 'active',   'IGAA-edge',    null,       interval '11 days',  null),
    ('ig-fresh',    'instagram', 'active',   'IGAA-fresh',   null,       interval '59 days',  null),
    ('ig-expired',  'instagram', 'active',   'IGAA-expired', null,       interval '-1 hour',  null),
    ('ig-off',      'instagram', 'inactive', 'IGAA-off',     null,       interval '-1 hour',  null),
    ('ig-notoken',  'instagram', 'active',   null,           null,       interval '1 day',    null),
    ('tt-due',      'tiktok',    'active',   'act-1',        'rft-1',    interval '2 hours',  interval '13 hours'),
    ('tt-recent',   'tiktok',    'active',   'act-2',        'rft-2',    interval '2 hours',  interval '10 minutes'),
    ('tt-never',    'tiktok',    'active',   null,           'rft-3',    null,                null))
    a (name, platform, status, access_token, refresh_token, expires_in, refreshed_ago);

create function pg_temp.acct(p_name text) returns public.social_accounts language sql as $$
  select * from public.social_accounts where creator_unique_identifier = current_setting('pgtap.prefix') || p_name $$;
create function pg_temp.names(p_keys text[]) returns text[] language sql as $$
  select coalesce(array_agg(substr(a.creator_unique_identifier, length(current_setting('pgtap.prefix')) + 1)
                            order by a.creator_unique_identifier), '{}')
    from public.social_accounts a
   where a.id::text = any (p_keys) and a.creator_unique_identifier like current_setting('pgtap.prefix') || '%' $$;

-- Instagram discovery -------------------------------------------------------------------------
create temp table ig as select * from social.discover_due_instagram_tokens('{"margin_days": 10}');
select is(pg_temp.names((select array_agg(key) from ig)), array['ig-due'],
  'due: active Instagram tokens expiring within margin_days (not fresh ones, not expired ones, not inactive or tokenless)');
select is((select row(status, last_error ~ 'expired', last_error_at = now())::text from pg_temp.acct('ig-expired')),
  row('needs_reauth', true, true)::text, 'an expired long-lived token is marked needs_reauth by discovery (no call can refresh it)');
select is((select status from pg_temp.acct('ig-off')), 'inactive', 'an inactive account is left alone');
select is(pg_temp.names((select array_agg(key) from social.discover_due_instagram_tokens('{"margin_days": 12}'))),
  array['ig-due', 'ig-edge'], 'the margin comes from the config');
select throws_ok($$select * from social.discover_due_instagram_tokens('{"margin_days": 60}')$$, '22023', null,
  'a margin of 60 days is refused: it would select tokens under 24 hours old');
select is((select payload from ig), jsonb_build_object('account_id', (pg_temp.acct('ig-due')).id),
  'the payload carries only the account id');

-- the Instagram credential is its access token --------------------------------------------------
select jobs.define('pgtap-ig', 'refresh-token', 'social.discover_due_instagram_tokens(jsonb)'::regprocedure, null, '{}', 10, 1,
                   p_context_function => 'social.refresh_context(jsonb)', p_apply_function => 'social.apply_refreshes(jsonb)');
insert into jobs.task (job_name, key, payload) select 'pgtap-ig', key, payload from ig;
insert into jobs.batch (job_name, size) values ('pgtap-ig', 1);
create temp table claimed as select * from jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5);
select is((select row(context ->> 'platform', context ->> 'refresh_token')::text from claimed), row('instagram', 'IGAA-due')::text,
  'an Instagram task is claimed with its long-lived access token as the credential');
select is((select context ->> 'refresh_token' from jobs.task_contexts(
            (select array_agg(task_id) from claimed), (select array_agg(lease_token) from claimed))),
  'IGAA-due', 'task_contexts returns the same credential');
select is((select state from jobs.record_outcomes((select jsonb_agg(jsonb_build_object(
            'task_id', task_id, 'lease_token', lease_token, 'outcome', 'ok',
            'data', jsonb_build_object('access_token', 'IGAA-new', 'expires_in', 5184000))) from claimed)) x),
  'succeeded', 'recording the refreshed Instagram token succeeds');
select is((select row(access_token, refresh_token, access_token_expires_at)::text from pg_temp.acct('ig-due')),
  row('IGAA-new', null::text, now() + interval '60 days')::text, 'the new token replaces the old one, 60 days ahead');

-- TikTok ------------------------------------------------------------------------------------------
select is(pg_temp.names((select array_agg(key) from social.discover_due_tokens(
            '{"platform": "tiktok", "margin_minutes": 780, "min_refreshed_minutes_ago": 60}'))),
  array['tt-due', 'tt-never'], 'TikTok: due within the margin unless refreshed in the last min_refreshed_minutes_ago');
select is(pg_temp.names((select array_agg(key) from social.discover_due_tokens('{"platform": "tiktok", "margin_minutes": 780}'))),
  array['tt-due', 'tt-never', 'tt-recent'], 'without min_refreshed_minutes_ago a recent refresh does not matter (YouTube''s config)');

-- jobs and entry points -------------------------------------------------------------------------
select is((select row(schedule, target_function, discover_function)::text from jobs.job where name = 'instagram-token-refresh'),
  row('0 */6 * * *', 'refresh-token', 'social.discover_due_instagram_tokens(jsonb)')::text, 'instagram-token-refresh runs every 6 hours');
select is((select row(schedule, config ->> 'platform')::text from jobs.job where name = 'tiktok-token-refresh'),
  row('0 */12 * * *', 'tiktok')::text, 'tiktok-token-refresh runs every 12 hours');
select is((select count(*)::int from jobs.job where name in ('instagram-token-refresh', 'tiktok-token-refresh') and next_run_at > now()), 2,
  'both have their next slot for the engine''s scheduler');
select is(
  (select array_agg(row(name, schedule, config, batch_size, max_in_flight, lease_seconds, max_attempts, context_function,
                        apply_function, rate_limit_key, task_rate_limits)::text order by name)
     from jobs.job where name in ('youtube-token-refresh', 'instagram-token-refresh', 'tiktok-token-refresh')),
  array[
    row('instagram-token-refresh', '0 */6 * * *', '{"margin_days": 10}'::jsonb, 10, 5, 15, 5,
        'social.refresh_context(jsonb)', 'social.apply_refreshes(jsonb)', null::text, false)::text,
    row('tiktok-token-refresh', '0 */12 * * *', '{"platform": "tiktok", "margin_minutes": 780, "min_refreshed_minutes_ago": 60}'::jsonb,
        10, 5, 15, 5, 'social.refresh_context(jsonb)', 'social.apply_refreshes(jsonb)', null::text, false)::text,
    row('youtube-token-refresh', '*/10 * * * *', '{"platform": "youtube", "margin_minutes": 15}'::jsonb, 10, 5, 15, 5,
        'social.refresh_context(jsonb)', 'social.apply_refreshes(jsonb)', null::text, false)::text],
  'the three token jobs: configs, batches of 10, 5 in flight, 15 s leases, 5 attempts, the token context and apply');
select ok(not has_function_privilege('anon', 'public.refresh_expired_instagram_tokens()', 'EXECUTE')
          and not has_function_privilege('authenticated', 'public.refresh_expired_tiktok_tokens()', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.discover_due_instagram_tokens(jsonb)', 'EXECUTE'),
  'client roles cannot run the jobs or their discovery');
select ok(has_function_privilege('service_role', 'public.refresh_expired_instagram_tokens()', 'EXECUTE')
          and has_function_privilege('service_role', 'public.refresh_expired_tiktok_tokens()', 'EXECUTE'),
  'service_role can run them');
select is(
  (select array_agg(p.proname || ': ' || btrim(regexp_replace(p.prosrc, '\s+', ' ', 'g')) order by p.proname)
     from pg_proc p
    where p.oid in ('public.refresh_expired_instagram_tokens()'::regprocedure, 'public.refresh_expired_tiktok_tokens()'::regprocedure)
      and p.prosecdef and p.proconfig = array['search_path=""']),
  array['refresh_expired_instagram_tokens: select jobs.run_now(''instagram-token-refresh'')',
        'refresh_expired_tiktok_tokens: select jobs.run_now(''tiktok-token-refresh'')'],
  'both are one-line SECURITY DEFINER wrappers of jobs.run_now with search_path ''''');

select is(
  (select array_agg(obj_description(p.oid, 'pg_proc') order by p.proname) from pg_proc p
    where p.pronamespace = 'public'::regnamespace and p.proname like 'refresh\_expired\_%\_tokens'),
  array['Runs one instagram-token-refresh tick now: discovers due long-lived tokens, dispatches batches to refresh-token.',
        'Runs one tiktok-token-refresh tick now: discovers due tokens, dispatches batches to refresh-token.',
        'Runs one youtube-token-refresh tick now: discovers due tokens, dispatches batches to refresh-token.'],
  'the three entry points, and only these, say what they run');

select * from finish();
rollback;
