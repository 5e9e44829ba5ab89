-- Instagram reels (supabase/migrations/20261201100000_instagram_reels.sql): who can read
-- public.instagram_reels, which reels are due (skip-fresh), per-task rate keys and buckets in the
-- claim, moot tasks, the outcome calls of refresh-reels, and refresh_instagram_reel_urls().
-- Runs in one transaction that is rolled back. Its accounts start with 'pgtap-ig-<pid>-'.
begin;
set local search_path = public, extensions;
select plan(61);

do $$
begin
  if not exists (select 1 from vault.decrypted_secrets where name = 'project_url') then
    perform vault.create_secret('http://127.0.0.1:54321/', 'project_url');
  end if;
  if not exists (select 1 from vault.decrypted_secrets where name = 'service_key') then
    perform vault.create_secret('sb_secret_pgtap_only', 'service_key');
  end if;
end;
$$;

-- Only this test's accounts are active Instagram accounts while it runs.
update public.social_accounts set status = 'inactive' where platform = 'instagram' and status = 'active';
select set_config('pgtap.prefix', 'pgtap-ig-' || pg_backend_pid() || '-', true);
select set_config('pgtap.alice', gen_random_uuid()::text, true);
select set_config('pgtap.bob', gen_random_uuid()::text, true);
insert into auth.users (id, email) values
  (current_setting('pgtap.alice')::uuid, current_setting('pgtap.prefix') || 'alice@example.test'),
  (current_setting('pgtap.bob')::uuid, current_setting('pgtap.prefix') || 'bob@example.test');

insert into public.social_accounts (creator_unique_identifier, platform, user_id, status, access_token)
select current_setting('pgtap.prefix') || a.name, a.platform,
       case a.owner when 'alice' then current_setting('pgtap.alice')::uuid when 'bob' then current_setting('pgtap.bob')::uuid end,
       a.status, a.token
  from (values
    ('a1', 'instagram', 'alice', 'active', 'IGAA-a1'),
    ('a2', 'instagram', 'bob', 'active', 'IGAA-a2'),
    ('off', 'instagram', null, 'inactive', 'IGAA-off'),
    ('notoken', 'instagram', null, 'active', null),
    ('yt', 'youtube', null, 'active', 'ya29-yt')) a (name, platform, owner, status, token);

create function pg_temp.aid(p_name text) returns bigint language sql as $$
  select id from public.social_accounts where creator_unique_identifier = current_setting('pgtap.prefix') || p_name $$;
create function pg_temp.oe(p_in interval) returns text language sql as $$
  select 'https://cdn.test/v/x.mp4?oh=1&oe=' || to_hex(extract(epoch from now() + p_in)::bigint) $$;

insert into public.instagram_reels (account_id, media_id, media_url, url_expires_at, status)
select pg_temp.aid(r.acct), r.media_id, r.url, instagram.signed_url_expiry(r.url), r.status
  from (values
    ('a1', '1001', null, 'active'),                                  -- never fetched: due
    ('a1', '1002', pg_temp.oe(interval '1 hour'), 'active'),         -- expiring: due
    ('a1', '1003', pg_temp.oe(interval '5 days'), 'active'),         -- fresh: skipped
    ('a1', '1004', pg_temp.oe(interval '47 hours'), 'active'),       -- inside the 48 h margin: due
    ('a1', '1005', null, 'deleted'),                                 -- deleted: skipped
    ('a2', '2001', null, 'active'),
    ('a2', '2002', null, 'active'),
    ('off', '3001', null, 'active'),                                 -- inactive account: skipped
    ('notoken', '4001', null, 'active'),                             -- no token: skipped
    ('yt', '5001', null, 'active')) r (acct, media_id, url, status); -- not instagram: ignored

create function pg_temp.rid(p_media text) returns bigint language sql as $$
  select r.id from public.instagram_reels r join public.social_accounts a on a.id = r.account_id
   where r.media_id = p_media and a.creator_unique_identifier like current_setting('pgtap.prefix') || '%' $$;
create function pg_temp.due(p_config jsonb) returns text[] language sql as $$
  select coalesce(array_agg(r.media_id order by r.media_id), '{}')
    from instagram.discover_due_reels(p_config) d join public.instagram_reels r on r.id = d.key::bigint $$;

-- table, RLS, grants --------------------------------------------------------------------------------
select has_table('public', 'instagram_reels', 'public.instagram_reels exists');
select fk_ok('public', 'instagram_reels', 'account_id', 'public', 'social_accounts', 'id', 'reels belong to a social account');
select ok((select relrowsecurity from pg_class where oid = 'public.instagram_reels'::regclass), 'RLS is enabled on instagram_reels');
select ok(not has_table_privilege('anon', 'public.instagram_reels', 'SELECT, INSERT, UPDATE, DELETE'), 'anon has no privileges on instagram_reels');
select ok(not has_table_privilege('authenticated', 'public.instagram_reels', 'INSERT, UPDATE, DELETE'), 'authenticated cannot write instagram_reels');
set local role anon;
select throws_ok('select id from public.instagram_reels', '42501', null, 'anon cannot read reels');
reset role;
select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.alice'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is((select array_agg(media_id order by media_id) from public.instagram_reels),
  array['1001', '1002', '1003', '1004', '1005'], 'alice reads the reels of her own account, and only those');
reset role;
select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.bob'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is((select array_agg(media_id order by media_id) from public.instagram_reels), array['2001', '2002'], 'bob reads only his');
reset role;
select set_config('request.jwt.claims', '', true);
select ok(not has_schema_privilege('anon', 'instagram', 'USAGE') and not has_schema_privilege('authenticated', 'instagram', 'USAGE'),
  'client roles have no usage on schema instagram');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where p.pronamespace = 'instagram'::regnamespace
      and (has_function_privilege('anon', p.oid, 'EXECUTE') or has_function_privilege('authenticated', p.oid, 'EXECUTE')
           or has_function_privilege('public', p.oid, 'EXECUTE'))),
  null, 'nobody but the owner executes a function in instagram');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where p.pronamespace in ('instagram'::regnamespace, 'jobs'::regnamespace)
      and not coalesce(p.proconfig @> array['search_path=""'], false)),
  null, 'every function in instagram and jobs pins search_path');
select ok(not has_function_privilege('anon', 'jobs.claim_due_tasks(jobs.job,int)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.rate_limit_pause(text,numeric,text)', 'EXECUTE'),
  'the new jobs functions are not executable by client roles');
select ok(has_function_privilege('service_role', 'public.refresh_instagram_reel_urls()', 'EXECUTE')
          and not has_function_privilege('anon', 'public.refresh_instagram_reel_urls()', 'EXECUTE')
          and not has_function_privilege('authenticated', 'public.refresh_instagram_reel_urls()', 'EXECUTE'),
  'refresh_instagram_reel_urls(): service_role only');
select ok((select prosecdef from pg_proc where oid = 'public.refresh_instagram_reel_urls()'::regprocedure),
  'refresh_instagram_reel_urls() is security definer');

-- oe= parsing ---------------------------------------------------------------------------------------
select is(instagram.signed_url_expiry('https://x.test/a.mp4?oh=1&oe=65A1B2C3'), to_timestamp(1705095875),
  'oe is hex unix seconds');
select is(instagram.signed_url_expiry('https://x.test/a.mp4?oe=65a1b2c3&oh=1'), to_timestamp(1705095875), 'lower case, oe first');
select is(instagram.signed_url_expiry('https://x.test/a.mp4?oh=1'), null, 'no oe: null');
select is(instagram.signed_url_expiry('https://x.test/a.mp4?toe=65A1B2C3'), null, 'only the oe parameter counts');
select is(instagram.signed_url_expiry(null), null, 'null URL: null');

-- discovery -----------------------------------------------------------------------------------------
select is(pg_temp.due('{}'), array['1001', '1002', '1004', '2001', '2002'],
  'due: active reels of active instagram accounts with a token, never fetched or expiring within 48 h');
select is(pg_temp.due('{"margin_hours": 0.5}'), array['1001', '2001', '2002'], 'a 30 min margin leaves the 1 h and 47 h URLs alone');
select is(pg_temp.due('{"margin_hours": 200}'), array['1001', '1002', '1003', '1004', '2001', '2002'], 'a 200 h margin takes the 5-day URL too');
select is(
  (select to_jsonb(d) - 'id' - 'xact_id' - 'discovered_at' - 'accounts_active' - 'reels_stored' - 'skipped_inactive_account'
     from instagram.discovery_log d order by id desc limit 1),
  '{"margin_hours": 200, "reels_due": 6, "skipped_fresh": 0, "skipped_deleted": 1}'::jsonb,
  'each discovery logs its counts');
select throws_ok($$select * from instagram.discover_due_reels('{"graph_version": "latest"}')$$, '22023', null,
  'a malformed graph_version is refused');
select is(
  (select d.payload from instagram.discover_due_reels('{"graph_version": "v23.0"}') d where d.key = pg_temp.rid('1001')::text),
  jsonb_build_object('reel_id', pg_temp.rid('1001'), 'account_id', pg_temp.aid('a1'), 'media_id', '1001',
                     'graph_version', 'v23.0',
                     'rate_keys', jsonb_build_array('ig-account:' || pg_temp.aid('a1'), 'ig-hourly:' || pg_temp.aid('a1'))),
  'payload: reel, account, media id, configured version and the account''s rate keys (no token)');
select is(
  (select array_agg(key || '=' || capacity || '/' || round(refill_per_second, 4) order by key) from jobs.rate_limit
    where key in ('ig-account:' || pg_temp.aid('a1'), 'ig-hourly:' || pg_temp.aid('a1'))),
  array['ig-account:' || pg_temp.aid('a1') || '=5/2.0000', 'ig-hourly:' || pg_temp.aid('a1') || '=200/0.0556'],
  'discovery creates the account''s pacing bucket (bursts of 5, 2/s) and hourly budget (200/h)');
select pg_temp.due('{"account_hourly_budget": 50, "account_burst": 3}');
select is(
  (select array_agg(key || '=' || capacity order by key) from jobs.rate_limit
    where key in ('ig-account:' || pg_temp.aid('a1'), 'ig-hourly:' || pg_temp.aid('a1'))),
  array['ig-account:' || pg_temp.aid('a1') || '=3', 'ig-hourly:' || pg_temp.aid('a1') || '=50'],
  'a changed config re-sizes the buckets');

-- the job -------------------------------------------------------------------------------------------
select is((select row(schedule, target_function, rate_limit_key, task_rate_limits)::text from jobs.job where name = 'instagram-reel-urls'),
  row('30 18 * * *', 'refresh-reels', 'instagram-graph', true)::text,
  'instagram-reel-urls: 18:30 UTC (00:00 IST), refresh-reels, app bucket, per-task rate limits');
select is((select schedule from cron.job where jobname = 'duework:instagram-reel-urls'), '30 18 * * *', 'pg_cron has the schedule');
select is((select row(capacity, refill_per_second)::text from jobs.rate_limit where key = 'instagram-graph'), row(10, 10)::text,
  'the app bucket: 10 requests/s');
select is((select config ->> 'graph_version' from jobs.job where name = 'instagram-reel-urls'), 'v22.0', 'Graph v22.0 by default');

-- per-task rate keys in the claim ---------------------------------------------------------------------
-- A job of its own with small buckets: app 3, account a1 burst 1, account a2 burst 2.
select jobs.define('pgtap-ig', 'refresh-reels', 'instagram.discover_due_reels(jsonb)'::regprocedure, null,
                   '{"account_burst": 1, "account_rate_per_second": 0.001}', 10, 5);
insert into jobs.rate_limit (key, capacity, refill_per_second, tokens) values ('pgtap-ig-app', 3, 0.001, 3);
update jobs.job set rate_limit_key = 'pgtap-ig-app', task_rate_limits = true, backoff_jitter = 0 where name = 'pgtap-ig';
insert into jobs.task (job_name, key, payload)
select 'pgtap-ig', d.key, d.payload from instagram.discover_due_reels('{"account_burst": 1, "account_rate_per_second": 0.001}') d;
update jobs.rate_limit set capacity = 2, tokens = 2 where key = 'ig-account:' || pg_temp.aid('a2');
update jobs.rate_limit set tokens = 200 where key in ('ig-hourly:' || pg_temp.aid('a1'), 'ig-hourly:' || pg_temp.aid('a2'));
select is((select array_agg(t.rate_keys order by t.id) from jobs.task t where t.job_name = 'pgtap-ig' and t.key = pg_temp.rid('1001')::text),
  array[array['ig-account:' || pg_temp.aid('a1'), 'ig-hourly:' || pg_temp.aid('a1')]],
  'payload.rate_keys moves to jobs.task.rate_keys on insert');
select ok((select bool_and(not (payload ? 'rate_keys')) from jobs.task where job_name = 'pgtap-ig'), '... and leaves the payload');
select is((select c.claimed from jobs.claim_and_dispatch((select j from jobs.job j where name = 'pgtap-ig'), null) c), 3,
  'the claim takes 3 tasks: one of a1 (burst 1) and two of a2 (burst 2), skipping a1''s others');
select is(
  (select array_agg(r.media_id order by r.media_id) from jobs.task t join public.instagram_reels r on r.id = t.key::bigint
    where t.job_name = 'pgtap-ig' and t.state = 'running'),
  array['1001', '2001', '2002'], 'a1''s first reel and both of a2''s: an empty bucket does not block the other accounts');
select is((select tokens from jobs.rate_limit where key = 'ig-account:' || pg_temp.aid('a1')), 0::numeric, 'a1''s pacing bucket is spent');
select is((select floor(tokens) from jobs.rate_limit where key = 'ig-hourly:' || pg_temp.aid('a2')), 198::numeric, 'a2''s hourly budget lost 2');
select is((select floor(tokens) from jobs.rate_limit where key = 'pgtap-ig-app'), 0::numeric, 'the app bucket lost 3');
select is((select count(*)::int from jobs.claim_into_batch((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5)), 0,
  'claim_into_batch honours the buckets too: nothing while the app bucket is empty');
update jobs.rate_limit set tokens = 3 where key = 'pgtap-ig-app';
select is((select count(*)::int from jobs.claim_into_batch((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5)), 0,
  '... and nothing while every account with due work is empty');
update jobs.rate_limit set tokens = 1 where key = 'ig-account:' || pg_temp.aid('a1');
select is((select count(*)::int from jobs.claim_into_batch((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5)), 1,
  'one a1 token: exactly one more a1 task');
update jobs.rate_limit set tokens = 1 where key = 'ig-account:' || pg_temp.aid('a1');
select jobs.claim_into_batch((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5);
select jobs.rate_limit_pause('ig-hourly:' || pg_temp.aid('a1'), 600, 'pgtap-ig');
select is((select row(tokens, refilled_at > now() + interval '9 minutes')::text from jobs.rate_limit where key = 'ig-hourly:' || pg_temp.aid('a1')),
  row(0, true)::text, 'rate_limit_pause empties the bucket and holds it for the wait');
select is(jobs.rate_limit_refill('ig-hourly:' || pg_temp.aid('a1')), 0, '... so refills give nothing until then');

-- leased reels, moot tasks, outcomes --------------------------------------------------------------------
create temp table leased as
select r.media_id, t.id, t.lease_token from jobs.task t join public.instagram_reels r on r.id = t.key::bigint
 where t.job_name = 'pgtap-ig' and t.state = 'running';
create function pg_temp.tid(p_media text) returns bigint language sql as $$ select id from leased where media_id = p_media $$;
create function pg_temp.tok(p_media text) returns uuid language sql as $$ select lease_token from leased where media_id = p_media $$;
select is(
  (select array_agg(media_id || ':' || access_token || ':' || graph_version order by media_id)
     from instagram.leased_reels(array(select id from leased order by media_id), array(select lease_token from leased order by media_id))),
  array['1001:IGAA-a1:v22.0', '1002:IGAA-a1:v22.0', '1004:IGAA-a1:v22.0', '2001:IGAA-a2:v22.0', '2002:IGAA-a2:v22.0'],
  'leased_reels returns each leased reel with its account''s token');
select is((select count(*)::int from instagram.leased_reels(array[pg_temp.tid('1001')], array[gen_random_uuid()])), 0,
  'a forged lease token gets nothing');

select is(instagram.record_reel_urls(pg_temp.tid('1001'), pg_temp.tok('1001'),
            'https://cdn.test/v/1001.mp4?oh=1&oe=' || to_hex(extract(epoch from now() + interval '3 days')::bigint),
            -- 47 h, a clear hour inside the 48 h margin (oe= has whole seconds: exactly 48 h would round either way)
            'https://cdn.test/t/1001.jpg?oh=1&oe=' || to_hex(extract(epoch from now() + interval '47 hours')::bigint)) ->> 'state',
  'succeeded', 'record_reel_urls succeeds');
select is((select row(media_url like '%1001.mp4%', thumbnail_url like '%1001.jpg%', url_expires_at between now() + interval '46 hours' and now() + interval '48 hours',
                      refreshed_at = now(), refresh_count)::text from public.instagram_reels where id = pg_temp.rid('1001')),
  row(true, true, true, true, 1)::text, 'URLs stored, expiry = the earlier oe=, refreshed now');
select is((select state from jobs.task where id = pg_temp.tid('1001')), 'succeeded', '... and the task completed');
select throws_ok(format('select instagram.record_reel_urls(%s, %L, null, null)', pg_temp.tid('1001'), pg_temp.tok('1001')), 'DWL01', null,
  'a second outcome with the same lease is refused (lease lost)');

select is(instagram.record_reel_deleted(pg_temp.tid('2001'), pg_temp.tok('2001'), 'HTTP 400: Graph error 100/33') ->> 'deleted', 'true',
  'record_reel_deleted');
select is((select row(status, deleted_at is not null, last_error)::text from public.instagram_reels where id = pg_temp.rid('2001')),
  row('deleted', true, 'HTTP 400: Graph error 100/33')::text, 'the reel is marked deleted');
select is((select state from jobs.task where id = pg_temp.tid('2001')), 'succeeded', '... and its task is done');

select is(instagram.record_reel_failure(pg_temp.tid('2002'), pg_temp.tok('2002'), 'HTTP 400: Graph error 80002', 420, false, 'account'),
  'queued', 'a throttle is retried');
select ok((select run_after > now() + interval '419 seconds' from jobs.task where id = pg_temp.tid('2002')), '... after the provider''s wait');
select is((select row(tokens, refilled_at > now() + interval '6 minutes')::text from jobs.rate_limit where key = 'ig-hourly:' || pg_temp.aid('a2')),
  row(0, true)::text, '... and the account''s hourly bucket is held empty as long');

select is(instagram.record_token_invalid(pg_temp.tid('1002'), pg_temp.tok('1002'), 'HTTP 400: Graph error 190/458'), 'dead',
  'a refused token ends the task dead (no retries)');
select is((select row(status, last_error)::text from public.social_accounts where id = pg_temp.aid('a1')),
  row('inactive', 'HTTP 400: Graph error 190/458')::text, '... and marks the account inactive');
-- a1's other running task (1004) is now moot: discarded when read, with its bucket tokens returned on claim.
select is(
  (select array_agg(coalesce(moot, 'work') order by task_id) from instagram.leased_reels(array[pg_temp.tid('1004')], array[pg_temp.tok('1004')])),
  array['account is inactive; its reel URLs are not refreshed'], 'leased_reels discards the moot task of the inactive account');
select is((select state from jobs.task where id = pg_temp.tid('1004')), 'failed', '... which ends failed (moot), not dead');
select is(pg_temp.due('{}'), array['2002'], 'discovery skips the inactive account and the deleted reel');

-- refresh_instagram_reel_urls() ------------------------------------------------------------------------
update public.social_accounts set status = 'active' where id = pg_temp.aid('a1');
select is(
  (select (r -> 'reels') - 'stored' - 'accounts_active' - 'skipped_inactive_account' from (select public.refresh_instagram_reel_urls() as r) x),
  '{"due": 4, "margin_hours": 48, "skipped_fresh": 1, "skipped_deleted": 2}'::jsonb,
  'refresh_instagram_reel_urls() reports stored, due and skipped (fresh, deleted, inactive account) reels');

select * from finish();
rollback;
