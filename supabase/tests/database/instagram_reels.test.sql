-- Instagram reels (supabase/migrations/20261123100200_instagram_reels.sql): who can read
-- public.instagram_reels, which reels are due (skip-fresh) and the buckets discovery sizes,
-- per-task rate keys and buckets in the claim, contexts and moot tasks (instagram.reel_context
-- through jobs.task_contexts / jobs.claim_tasks), the reel write of each outcome
-- (instagram.apply_reel_outcomes through jobs.record_outcome, throttles pausing their bucket),
-- and refresh_instagram_reel_urls().
-- Runs in one transaction that is rolled back. Its accounts start with 'pgtap-ig-<pid>-'.
begin;
set local search_path = public, extensions;
select plan(73);

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
      -- (a procedure that commits cannot pin it: jobs_scheduling.test.sql checks jobs.run_and_wait)
      and p.prokind <> 'p'
      and not coalesce(p.proconfig @> array['search_path=""'], false)),
  null, 'every function in instagram and jobs pins search_path');
select ok(not has_function_privilege('anon', 'jobs.claim_due_tasks(jobs.job,int)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.rate_limit_pause(text,numeric,text)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.size_rate_limits(text,jsonb)', 'EXECUTE'),
  'the jobs functions for rate keys are not executable by client roles');
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
select is((select row(schedule, timezone, target_function, rate_limit_key, task_rate_limits)::text from jobs.job where name = 'instagram-reel-urls'),
  row('0 0 * * *', 'Asia/Kolkata', 'refresh-reels', 'instagram-graph', true)::text,
  'instagram-reel-urls: 00:00 Asia/Kolkata, refresh-reels, app bucket, per-task rate limits');
select is((select row(next_run_local::time, (next_run_at at time zone 'UTC')::time)::text from jobs.health where name = 'instagram-reel-urls'),
  row('00:00'::time, '18:30'::time)::text, 'its next slot: midnight in India, 18:30 UTC');
select is((select row(capacity, refill_per_second)::text from jobs.rate_limit where key = 'instagram-graph'), row(10, 10)::text,
  'the app bucket: 10 requests/s');
select is((select config ->> 'graph_version' from jobs.job where name = 'instagram-reel-urls'), 'v22.0', 'Graph v22.0 by default');
select is(
  (select row(discover_function, context_function, apply_function, batch_size, max_in_flight, lease_seconds, max_attempts)::text
     from jobs.job where name = 'instagram-reel-urls'),
  row('instagram.discover_due_reels(jsonb)', 'instagram.reel_context(jsonb)', 'instagram.apply_reel_outcomes(jsonb)', 10, 5, 15, 5)::text,
  'its discover, context and apply functions; batches of 10, 5 in flight, 15 s leases, 5 attempts');

-- per-task rate keys in the claim ---------------------------------------------------------------------
-- A job of its own with small buckets: app 3, account a1 burst 1, account a2 burst 2.
select jobs.define('pgtap-ig', 'refresh-reels', 'instagram.discover_due_reels(jsonb)'::regprocedure, null,
                   '{"account_burst": 1, "account_rate_per_second": 0.001}', 10, 5,
                   p_context_function => 'instagram.reel_context(jsonb)',
                   p_apply_function => 'instagram.apply_reel_outcomes(jsonb)',
                   p_backoff_jitter => 0,
                   p_rate_limit => '{"key": "pgtap-ig-app", "capacity": 3, "refill_per_second": 0.001}',
                   p_task_rate_limits => true);
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
select is((select count(*)::int from jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5)), 0,
  'claim_tasks honours the buckets too: nothing while the app bucket is empty');
update jobs.rate_limit set tokens = 3 where key = 'pgtap-ig-app';
select is((select count(*)::int from jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5)), 0,
  '... and nothing while every account with due work is empty');
update jobs.rate_limit set tokens = 1 where key = 'ig-account:' || pg_temp.aid('a1');
create temp table claimed_ahead as select * from jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5);
select is((select count(*)::int from claimed_ahead), 1, 'one a1 token: exactly one more a1 task');
select is((select context - 'reel_id' from claimed_ahead),
  jsonb_build_object('account_id', pg_temp.aid('a1'), 'media_id', '1002', 'graph_version', 'v22.0', 'access_token', 'IGAA-a1'),
  '... claimed with its context: account, media id, Graph version and the account''s token');
update jobs.rate_limit set tokens = 1 where key = 'ig-account:' || pg_temp.aid('a1');
select jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'pgtap-ig'), 5);
-- (jobs.rate_limit_pause itself, and the claims of jobs with per-task rate keys in general, are
-- engine behaviour: jobs_core.test.sql, "per-task rate keys".)

-- contexts, moot tasks, outcomes --------------------------------------------------------------------------
create temp table leased as
select r.media_id, t.id, t.lease_token from jobs.task t join public.instagram_reels r on r.id = t.key::bigint
 where t.job_name = 'pgtap-ig' and t.state = 'running';
create function pg_temp.tid(p_media text) returns bigint language sql as $$ select id from leased where media_id = p_media $$;
create function pg_temp.tok(p_media text) returns uuid language sql as $$ select lease_token from leased where media_id = p_media $$;
-- One outcome through the engine (jobs.record_outcome: apply, then the state; DWL01 on a lost lease).
create function pg_temp.outcome(p_media text, p_outcome jsonb) returns text language sql as $$
  select jobs.record_outcome(pg_temp.tid(p_media), pg_temp.tok(p_media), p_outcome) $$;
select is(
  (select array_agg((l.context ->> 'media_id') || ':' || (l.context ->> 'access_token') || ':' || (l.context ->> 'graph_version')
                    order by l.context ->> 'media_id')
     from jobs.task_contexts(array(select id from leased order by media_id), array(select lease_token from leased order by media_id)) l),
  array['1001:IGAA-a1:v22.0', '1002:IGAA-a1:v22.0', '1004:IGAA-a1:v22.0', '2001:IGAA-a2:v22.0', '2002:IGAA-a2:v22.0'],
  'task_contexts returns each leased reel with its account''s token');
select is((select count(*)::int from jobs.task_contexts(array[pg_temp.tid('1001')], array[gen_random_uuid()])), 0,
  'a forged lease token gets nothing');

select is(pg_temp.outcome('1001', jsonb_build_object('outcome', 'ok', 'data', jsonb_build_object(
            'media_url', 'https://cdn.test/v/1001.mp4?oh=1&oe=' || to_hex(extract(epoch from now() + interval '3 days')::bigint),
            -- 47 h, a clear hour inside the 48 h margin (oe= has whole seconds: exactly 48 h would round either way)
            'thumbnail_url', 'https://cdn.test/t/1001.jpg?oh=1&oe=' || to_hex(extract(epoch from now() + interval '47 hours')::bigint)))),
  'succeeded', 'an ok outcome with the URLs succeeds');
select is((select row(media_url like '%1001.mp4%', thumbnail_url like '%1001.jpg%', url_expires_at between now() + interval '46 hours' and now() + interval '48 hours',
                      refreshed_at = now(), refresh_count)::text from public.instagram_reels where id = pg_temp.rid('1001')),
  row(true, true, true, true, 1)::text, 'URLs stored, expiry = the earlier oe=, refreshed now');
select is((select row(state, result)::text from jobs.task where id = pg_temp.tid('1001')),
  row('succeeded', jsonb_build_object('reel_id', pg_temp.rid('1001'),
                                      'url_expires_at', (select url_expires_at from public.instagram_reels where id = pg_temp.rid('1001'))))::text,
  '... and the task completed with the reel and its expiry as result');
select throws_ok(format('select jobs.record_outcome(%s, %L, %L)', pg_temp.tid('1001'), pg_temp.tok('1001'),
                        '{"outcome": "ok", "data": {"media_url": null, "thumbnail_url": null}}'), 'DWL01', null,
  'a second outcome with the same lease is refused (lease lost)');

select is(pg_temp.outcome('2001', '{"outcome": "ok", "data": {"deleted": true, "error": "HTTP 400: Graph error 100/33"}}'), 'succeeded',
  'an ok outcome with deleted');
select is((select row(status, deleted_at is not null, last_error)::text from public.instagram_reels where id = pg_temp.rid('2001')),
  row('deleted', true, 'HTTP 400: Graph error 100/33')::text, 'the reel is marked deleted');
select is((select row(state, result ->> 'deleted')::text from jobs.task where id = pg_temp.tid('2001')), row('succeeded', 'true')::text,
  '... and its task is done');

select is(pg_temp.outcome('2002', jsonb_build_object('outcome', 'retry', 'error', 'HTTP 400: Graph error 80002', 'after', 420,
                                                     'pause', 'ig-hourly:' || pg_temp.aid('a2'))),
  'queued', 'a throttle is retried');
select ok((select run_after > now() + interval '419 seconds' from jobs.task where id = pg_temp.tid('2002')), '... after the provider''s wait');
select is((select row(tokens, refilled_at > now() + interval '6 minutes')::text from jobs.rate_limit where key = 'ig-hourly:' || pg_temp.aid('a2')),
  row(0, true)::text, '... and the account''s hourly bucket (the outcome''s pause) is held empty as long');
select is((select last_error from public.instagram_reels where id = pg_temp.rid('2002')), 'HTTP 400: Graph error 80002',
  '... and the reel records the error');

select is(pg_temp.outcome('1002', '{"outcome": "dead", "error": "HTTP 400: Graph error 190/458", "data": {"token_invalid": true}}'), 'dead',
  'a refused token ends the task dead (no retries)');
select is((select row(status, last_error)::text from public.social_accounts where id = pg_temp.aid('a1')),
  row('inactive', 'HTTP 400: Graph error 190/458')::text, '... and marks the account inactive');
-- a1's other running task (1004) is now moot: discarded when read, with its bucket tokens given back.
create temp table before_refund as
select key, tokens from jobs.rate_limit where key in ('ig-account:' || pg_temp.aid('a1'), 'pgtap-ig-app');
select is(
  (select array_agg(coalesce(moot, 'work') order by task_id) from jobs.task_contexts(array[pg_temp.tid('1004')], array[pg_temp.tok('1004')])),
  array['account is inactive; its reel URLs are not refreshed'], 'task_contexts discards the moot task of the inactive account');
select is((select state from jobs.task where id = pg_temp.tid('1004')), 'discarded', '... which ends discarded (moot), not dead');
select ok((select bool_and(r.tokens >= b.tokens + 1 or r.tokens = r.capacity) from jobs.rate_limit r join before_refund b using (key)),
  '... and the tokens its claim took are back in the account''s and the app''s buckets');
select is(pg_temp.due('{}'), array['2002'], 'discovery skips the inactive account and the deleted reel');

-- instagram.reel_context and instagram.apply_reel_outcomes called directly ----------------------------------
select is(
  (select array_agg(row(c.task_id, c.context, c.moot)::text order by c.task_id) from instagram.reel_context(jsonb_build_array(
     jsonb_build_object('task_id', 1, 'key', 'k', 'attempt', 1, 'payload', jsonb_build_object('reel_id', pg_temp.rid('2002'), 'graph_version', 'v23.0')),
     jsonb_build_object('task_id', 2, 'key', 'k', 'attempt', 1, 'payload', jsonb_build_object('reel_id', pg_temp.rid('2002'))),
     jsonb_build_object('task_id', 3, 'key', 'k', 'attempt', 1, 'payload', jsonb_build_object('reel_id', pg_temp.rid('2001'))),
     jsonb_build_object('task_id', 4, 'key', 'k', 'attempt', 1, 'payload', jsonb_build_object('reel_id', pg_temp.rid('1003'))),
     jsonb_build_object('task_id', 5, 'key', 'k', 'attempt', 1, 'payload', jsonb_build_object('reel_id', pg_temp.rid('4001'))),
     jsonb_build_object('task_id', 6, 'key', 'k', 'attempt', 1, 'payload', jsonb_build_object('reel_id', -1)))) c),
  array[row(1, jsonb_build_object('reel_id', pg_temp.rid('2002'), 'account_id', pg_temp.aid('a2'), 'media_id', '2002',
                                  'graph_version', 'v23.0', 'access_token', 'IGAA-a2'), null::text)::text,
        row(2, jsonb_build_object('reel_id', pg_temp.rid('2002'), 'account_id', pg_temp.aid('a2'), 'media_id', '2002',
                                  'graph_version', 'v22.0', 'access_token', 'IGAA-a2'), null::text)::text,
        row(3, null::jsonb, 'reel is deleted; nothing to refresh')::text,
        row(4, null::jsonb, 'account is inactive; its reel URLs are not refreshed')::text,
        row(5, null::jsonb, 'account has no access token; nothing to refresh')::text,
        row(6, null::jsonb, 'reel no longer stored')::text],
  'reel_context: one row per task, the Graph call''s context (version from the payload, v22.0 by default) or why it is moot');
select is((select provolatile::text from pg_proc where oid = 'instagram.reel_context(jsonb)'::regprocedure), 's',
  'reel_context only reads (stable)');
create temp table applied as
select * from instagram.apply_reel_outcomes(jsonb_build_array(
  jsonb_build_object('task_id', 11, 'outcome', 'ok', 'payload', jsonb_build_object('reel_id', -1),
                     'data', jsonb_build_object('media_url', 'https://cdn.test/x.mp4', 'thumbnail_url', null)),
  jsonb_build_object('task_id', 12, 'outcome', 'retry', 'error', 'HTTP 401', 'payload', jsonb_build_object('reel_id', pg_temp.rid('2002')),
                     'data', jsonb_build_object('token_invalid', true)),
  jsonb_build_object('task_id', 13, 'outcome', 'ok', 'payload', jsonb_build_object('reel_id', pg_temp.rid('1004')),
                     'data', jsonb_build_object('media_url', null, 'thumbnail_url', 'https://cdn.test/t.jpg?oe=65A1B2C3')),
  jsonb_build_object('task_id', 14, 'outcome', 'discard', 'error', 'account refused this run',
                     'payload', jsonb_build_object('reel_id', pg_temp.rid('1003')))));
select is(
  (select array_agg(row(task_id, outcome, error, result)::text order by task_id) from applied),
  array[row(11, 'discard', 'reel no longer stored', null::jsonb)::text,
        row(12, 'dead', null::text, null::jsonb)::text,
        row(13, null::text, null::text, jsonb_build_object('reel_id', pg_temp.rid('1004'), 'url_expires_at', to_timestamp(1705095875)))::text],
  'apply_reel_outcomes: discard for a reel that is gone, dead for a refused token even as a retry, a result for new URLs');
select is((select row(media_url, thumbnail_url, url_expires_at)::text from public.instagram_reels where id = pg_temp.rid('1004')),
  row(null::text, 'https://cdn.test/t.jpg?oe=65A1B2C3', to_timestamp(1705095875))::text,
  'media_url null (Instagram omitted it) is stored as null; the expiry is the thumbnail''s');
select is((select row(a.status, a.last_error, r.last_error)::text from public.social_accounts a join public.instagram_reels r on r.account_id = a.id
            where r.id = pg_temp.rid('2002')),
  row('inactive', 'HTTP 401', 'HTTP 401')::text, 'a refused token switches the account off and records the error on the reel');
select is((select row(last_error, media_url like '%oe=%', refresh_count)::text from public.instagram_reels where id = pg_temp.rid('1003')),
  row(null::text, true, 0)::text, 'a discard writes nothing');
select throws_ok(
  format('select * from instagram.apply_reel_outcomes(%L)', jsonb_build_array(
    jsonb_build_object('task_id', 21, 'outcome', 'ok', 'payload', jsonb_build_object('reel_id', pg_temp.rid('1001')),
                       'data', jsonb_build_object('media_url', 'https://cdn.test/y.mp4')),
    jsonb_build_object('task_id', 22, 'outcome', 'ok', 'payload', jsonb_build_object('reel_id', pg_temp.rid('1001')),
                       'data', jsonb_build_object('deleted', 'yes')))),
  '22023', 'instagram.apply_reel_outcomes: outcome 2 (task 22): data.deleted must be true or false, got "yes"',
  'a malformed ok is refused naming the outcome, its task and the field');
select is((select media_url like '%1001.mp4%' from public.instagram_reels where id = pg_temp.rid('1001')), true,
  '... before anything was written');
select throws_ok($$select * from instagram.apply_reel_outcomes('[{"task_id": 1, "outcome": "ok"}]')$$, '22023',
  'instagram.apply_reel_outcomes: outcome 1 (task 1): data must be an object with media_url and thumbnail_url, or with deleted',
  'an ok without data is refused (it would wipe the URLs)');

-- refresh_instagram_reel_urls() ------------------------------------------------------------------------
update public.social_accounts set status = 'active' where id in (pg_temp.aid('a1'), pg_temp.aid('a2'));
select is(
  (select (r -> 'reels') - 'stored' - 'accounts_active' - 'skipped_inactive_account' from (select public.refresh_instagram_reel_urls() as r) x),
  '{"due": 4, "margin_hours": 48, "skipped_fresh": 1, "skipped_deleted": 2}'::jsonb,
  'refresh_instagram_reel_urls() reports stored, due and skipped (fresh, deleted, inactive account) reels');
select is(
  (select btrim(regexp_replace(prosrc, '\s+', ' ', 'g')) ~ '^declare .* begin v_summary := jobs\.run_now\(''instagram-reel-urls''\);'
     from pg_proc where oid = 'public.refresh_instagram_reel_urls()'::regprocedure),
  true, 'it runs the job through jobs.run_now');

select * from finish();
rollback;
