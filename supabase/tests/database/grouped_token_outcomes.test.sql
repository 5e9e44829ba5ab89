-- Grouped outcomes (supabase/migrations/20261201090000_grouped_token_outcomes.sql): many tasks'
-- successes in one statement (record_token_refreshes), claims with credentials into a batch
-- (claim_refresh_tasks), and the refresh-token function's one call per group
-- (record_and_claim_refreshes), including lost leases and invalid input per task.
-- Runs in one transaction that is rolled back; its accounts and job ('pgtap-grouped') are its own.
begin;
set local search_path = public, extensions;
select plan(29);

select set_config('pgtap.prefix', 'pgtap-g-' || pg_backend_pid() || '-', true);
insert into public.social_accounts (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at)
select current_setting('pgtap.prefix') || g, case when g = 9 then 'tiktok' else 'youtube' end, 'at-' || g, 'rt-' || g,
       now() - interval '1 minute'
  from generate_series(1, 12) g;
create function pg_temp.aid(p_n int) returns bigint language sql as $$
  select id from public.social_accounts where creator_unique_identifier = current_setting('pgtap.prefix') || p_n $$;
create function pg_temp.acct(p_n int) returns public.social_accounts language sql as $$
  select * from public.social_accounts where id = pg_temp.aid(p_n) $$;

-- A job of our own with max_in_flight 1 and one unsettled batch: nothing else claims its tasks.
select jobs.define('pgtap-grouped', 'refresh-token', 'social.discover_due_tokens(jsonb)'::regprocedure, null,
                   '{"platform": "none"}', 10, 1);
update jobs.job set backoff_jitter = 0 where name = 'pgtap-grouped';
insert into jobs.task (job_name, key, payload)
select 'pgtap-grouped', pg_temp.aid(g)::text, jsonb_build_object('account_id', pg_temp.aid(g)) from generate_series(1, 12) g;
insert into jobs.batch (job_name, size) values ('pgtap-grouped', 1);
create temp table b as select max(id) as id from jobs.batch where job_name = 'pgtap-grouped';
create function pg_temp.tid(p_n int) returns bigint language sql as $$
  select id from jobs.task where job_name = 'pgtap-grouped' and key = pg_temp.aid(p_n)::text $$;

-- claim_refresh_tasks ---------------------------------------------------------------------------
-- Account 2 is deleted and account 3 needs reauth before the claim: both are moot.
create temp table moot as select pg_temp.tid(2) as gone, pg_temp.tid(3) as reauth;
delete from public.social_accounts where id = pg_temp.aid(2);
update public.social_accounts set status = 'needs_reauth' where id = pg_temp.aid(3);
create temp table c1 as select * from social.claim_refresh_tasks((select id from b), 4);
select is((select count(*)::int from c1), 4, 'claim_refresh_tasks returns as many usable tasks as asked');
select is((select array_agg(task_id order by task_id) from c1),
  array[pg_temp.tid(1), pg_temp.tid(4), pg_temp.tid(5), pg_temp.tid(6)],
  'moot tasks are skipped and replaced by the next due ones, in order');
select is((select array_agg(refresh_token order by task_id) from c1), array['rt-1', 'rt-4', 'rt-5', 'rt-6'],
  'each with its refresh token');
select ok((select bool_and(attempt = 1 and lease_token is not null) from c1), 'attempt 1 and a lease token');
select is((select row(state, last_error)::text from jobs.task where id = (select gone from moot)),
  row('failed', 'account no longer exists')::text, 'the task of the deleted account is discarded');
select is((select row(state, last_error)::text from jobs.task where id = (select reauth from moot)),
  row('failed', 'account is needs_reauth; nothing to refresh')::text, 'the task of the needs_reauth account is discarded');
select ok((select bool_and(t.state = 'running' and t.batch_id = (select id from b)) from jobs.task t join c1 on c1.task_id = t.id),
  'the claimed tasks run in the caller''s batch');
select is((select count(*)::int from social.claim_refresh_tasks((select id from b) + 1000, 3)), 0,
  'an unknown (or settled) batch claims nothing');

-- record_token_refreshes ------------------------------------------------------------------------
select throws_ok(
  format('select * from social.record_token_refreshes(%L::jsonb)', jsonb_build_array(jsonb_build_object(
    'task_id', pg_temp.tid(1), 'lease_token', (select lease_token from c1 where task_id = pg_temp.tid(1)),
    'access_token', 'x', 'expires_in', 0))),
  '22023', format('record_token_refreshes: refresh 1 (task %s): expires_in must be a positive number of seconds, got 0', pg_temp.tid(1)),
  'expires_in 0 is refused, naming the refresh and the task');
select throws_ok(
  format('select * from social.record_token_refreshes(%L::jsonb)', jsonb_build_array(
    jsonb_build_object('task_id', pg_temp.tid(1), 'lease_token', (select lease_token from c1 where task_id = pg_temp.tid(1)),
                       'access_token', 'ok', 'expires_in', 60),
    jsonb_build_object('task_id', 1, 'lease_token', gen_random_uuid(), 'expires_in', 60))),
  '22023', 'record_token_refreshes: refresh 2 (task 1): access_token is required',
  'a missing access token is refused');
select throws_ok($$select * from social.record_token_refreshes('{}')$$, '22023', null, 'an object instead of an array is refused');
select is((select row(access_token, refresh_count)::text from pg_temp.acct(1)), row('at-1', 0)::text,
  'a refused group wrote nothing, not even its valid refresh');

create temp table r1 as
select * from social.record_token_refreshes((
  select jsonb_agg(jsonb_build_object(
           'task_id', c1.task_id,
           'lease_token', case when c1.task_id = pg_temp.tid(5) then gen_random_uuid() else c1.lease_token end,
           'access_token', 'new-' || c1.account_id, 'expires_in', 3600,
           'refresh_token', case when c1.task_id = pg_temp.tid(4) then 'rt-rotated' end,
           'refresh_expires_in', case when c1.task_id = pg_temp.tid(4) then 86400 end,
           'scope', case when c1.task_id = pg_temp.tid(4) then 'a b' end))
    from c1));
select is((select array_agg(state order by task_id) from r1), array['succeeded', 'succeeded', 'lease_lost', 'succeeded'],
  'one state per task: a forged lease token is lease_lost, the others succeed');
select is((select row(access_token, refresh_token, access_token_expires_at, refresh_count, status)::text from pg_temp.acct(1)),
  row('new-' || pg_temp.aid(1), 'rt-1', now() + interval '1 hour', 1, 'active')::text,
  'the access token and expiry are stored; the refresh token is kept when none was sent');
select is((select row(refresh_token, refresh_token_expires_at, scopes)::text from pg_temp.acct(4)),
  row('rt-rotated', now() + interval '1 day', array['a', 'b'])::text,
  'a rotated refresh token, its expiry and the scopes are stored together');
select is((select row(access_token, refresh_count)::text from pg_temp.acct(5)), row('at-5', 0)::text,
  'nothing is written for the task whose lease was lost');
select is((select state from jobs.task where id = pg_temp.tid(5)), 'running', 'and that task keeps running');
select is((select row(state, result)::text from jobs.task where id = pg_temp.tid(6)),
  row('succeeded', jsonb_build_object('account_id', pg_temp.aid(6), 'expires_at', now() + interval '1 hour'))::text,
  'a recorded task succeeded with account id and expiry as its result');
select is((select expires_at from r1 where task_id = pg_temp.tid(6)), now() + interval '1 hour', 'and the expiry is returned');
select is((select state from social.record_token_refreshes(jsonb_build_array(jsonb_build_object(
            'task_id', pg_temp.tid(6), 'lease_token', (select lease_token from c1 where task_id = pg_temp.tid(6)),
            'access_token', 'late', 'expires_in', 60)))), 'lease_lost', 'a second report for a finished task is lease_lost');

-- record_and_claim_refreshes ------------------------------------------------------------------
create temp table c2 as select * from social.claim_refresh_tasks((select id from b), 2);
delete from public.social_accounts where id = (select account_id from c2 order by task_id limit 1);
create temp table answer as
select social.record_and_claim_refreshes(
  (select jsonb_agg(jsonb_build_object('task_id', task_id, 'lease_token', lease_token, 'access_token', 'g-' || account_id, 'expires_in', 60)) from c2),
  jsonb_build_array(
    jsonb_build_object('task_id', pg_temp.tid(5), 'lease_token', (select lease_token from jobs.task where id = pg_temp.tid(5)),
                       'error', 'Google answered HTTP 503', 'retry_after_seconds', 90),
    jsonb_build_object('task_id', pg_temp.tid(1), 'lease_token', gen_random_uuid(), 'error', 'stale', 'permanent', true)),
  jsonb_build_array(jsonb_build_object('batch_id', (select id from b), 'count', 2),
                    jsonb_build_object('batch_id', (select id from b), 'count', 1))) as v;
select is((select jsonb_agg(e ->> 'state' order by (e ->> 'task_id')::bigint) from answer, jsonb_array_elements(v -> 'refreshes') e),
  '["failed", "succeeded"]'::jsonb, 'refreshes: the task whose account was deleted meanwhile is failed (discarded), the other succeeded');
select is((select row(state, last_error)::text from jobs.task where id = (select min(task_id) from c2)),
  row('failed', 'account no longer exists')::text, 'the discarded task says why');
select is((select v -> 'failures' from answer),
  jsonb_build_array(jsonb_build_object('task_id', pg_temp.tid(5), 'state', 'queued'),
                    jsonb_build_object('task_id', pg_temp.tid(1), 'state', 'lease_lost')),
  'failures: the transient one is queued again, the stale lease is lease_lost (and did not fail the group)');
select is((select row(state, run_after, last_error)::text from jobs.task where id = pg_temp.tid(5)),
  row('queued', now() + interval '90 seconds', 'Google answered HTTP 503')::text, 'retry_after is honoured');
select is((select row(status, last_error)::text from pg_temp.acct(5)), row('active', 'Google answered HTTP 503')::text,
  'the account records the error and stays active');
select is((select jsonb_array_length(v -> 'claimed') from answer), 3, 'claims of one batch are summed: 3 tasks claimed');
select ok((select bool_and((e ->> 'batch_id')::bigint = (select id from b) and e ? 'refresh_token' and e ? 'lease_token')
             from answer, jsonb_array_elements(v -> 'claimed') e),
  'each claimed task carries its batch, lease token and refresh token');
select is((select social.record_and_claim_refreshes('[]', '[]', '[]')),
  '{"claimed": [], "failures": [], "refreshes": []}'::jsonb, 'an empty group is a no-op');

-- privileges ---------------------------------------------------------------------------------------
select ok(not has_function_privilege('anon', 'social.record_and_claim_refreshes(jsonb,jsonb,jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.record_and_claim_refreshes(jsonb,jsonb,jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.record_token_refreshes(jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.claim_refresh_tasks(bigint,integer)', 'EXECUTE'),
  'client roles cannot execute the grouped functions');

select * from finish();
rollback;
