-- Grouped token outcomes (supabase/migrations/20261123100100_social_tokens.sql on the engine of
-- 20261123100000_jobs_core.sql): claims with credentials into a batch (jobs.claim_tasks with
-- social.refresh_context), many tasks' new tokens in one call (jobs.record_outcomes with
-- social.apply_refreshes), and the refresh-token function's one call per group (jobs.report),
-- including lost leases and invalid input per task.
-- Runs in one transaction that is rolled back; its accounts and job ('pgtap-grouped') are its own.
begin;
set local search_path = public, extensions;
select plan(30);

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
                   '{"platform": "none"}', 10, 1,
                   p_context_function => 'social.refresh_context(jsonb)',
                   p_apply_function => 'social.apply_refreshes(jsonb)',
                   p_backoff_jitter => 0);
insert into jobs.task (job_name, key, payload)
select 'pgtap-grouped', pg_temp.aid(g)::text, jsonb_build_object('account_id', pg_temp.aid(g)) from generate_series(1, 12) g;
insert into jobs.batch (job_name, size) values ('pgtap-grouped', 1);
create temp table b as select max(id) as id from jobs.batch where job_name = 'pgtap-grouped';
create function pg_temp.tid(p_n int) returns bigint language sql as $$
  select id from jobs.task where job_name = 'pgtap-grouped' and key = pg_temp.aid(p_n)::text $$;

-- claims with credentials: jobs.claim_tasks + social.refresh_context ---------------------------
-- Account 2 is deleted and account 3 needs reauth before the claim: both are moot.
create temp table moot as select pg_temp.tid(2) as gone, pg_temp.tid(3) as reauth;
delete from public.social_accounts where id = pg_temp.aid(2);
update public.social_accounts set status = 'needs_reauth' where id = pg_temp.aid(3);
create temp table c1 as select * from jobs.claim_tasks((select id from b), 4);
select is((select count(*)::int from c1), 4, 'claim_tasks returns as many usable tasks as asked');
select is((select array_agg(task_id order by task_id) from c1),
  array[pg_temp.tid(1), pg_temp.tid(4), pg_temp.tid(5), pg_temp.tid(6)],
  'moot tasks are skipped and replaced by the next due ones, in order');
select is((select array_agg(context ->> 'refresh_token' order by task_id) from c1), array['rt-1', 'rt-4', 'rt-5', 'rt-6'],
  'each with its refresh token');
select ok((select bool_and(attempt = 1 and lease_token is not null) from c1), 'attempt 1 and a lease token');
select is((select row(state, last_error)::text from jobs.task where id = (select gone from moot)),
  row('discarded', 'account no longer exists')::text, 'the task of the deleted account is discarded');
select is((select row(state, last_error)::text from jobs.task where id = (select reauth from moot)),
  row('discarded', 'account is needs_reauth; nothing to refresh')::text, 'the task of the needs_reauth account is discarded');
select ok((select bool_and(t.state = 'running' and t.batch_id = (select id from b)) from jobs.task t join c1 on c1.task_id = t.id),
  'the claimed tasks run in the caller''s batch');
select is((select count(*)::int from jobs.claim_tasks((select id from b) + 1000, 3)), 0,
  'an unknown (or settled) batch claims nothing');

-- many new tokens in one call: jobs.record_outcomes + social.apply_refreshes ---------------------
create function pg_temp.ok(p_task bigint, p_data jsonb, p_token uuid default null) returns jsonb language sql as $$
  select jsonb_build_object('task_id', p_task, 'lease_token', coalesce(p_token, (select lease_token from c1 where task_id = p_task)),
                            'outcome', 'ok', 'data', p_data) $$;
select throws_ok(
  format('select * from jobs.record_outcomes(%L::jsonb)', jsonb_build_array(
    pg_temp.ok(pg_temp.tid(1), '{"access_token": "x", "expires_in": 0}'))),
  '22023', format('social.apply_refreshes: outcome 1 (task %s): data.expires_in must be a positive number of seconds, got 0', pg_temp.tid(1)),
  'expires_in 0 is refused, naming the outcome and the task');
select throws_ok(
  format('select * from jobs.record_outcomes(%L::jsonb)', jsonb_build_array(
    pg_temp.ok(pg_temp.tid(1), '{"access_token": "ok", "expires_in": 60}'),
    pg_temp.ok(pg_temp.tid(4), '{"expires_in": 60}'))),
  '22023', format('social.apply_refreshes: outcome 2 (task %s): data.access_token is required', pg_temp.tid(4)),
  'a missing access token is refused');
select throws_ok(
  format('select * from jobs.record_outcomes(%L::jsonb)', jsonb_build_array(
    pg_temp.ok(pg_temp.tid(1), '{"access_token": "ok", "expires_in": "3600"}'))),
  '22023', format('social.apply_refreshes: outcome 1 (task %s): data.expires_in must be a positive number of seconds, got "3600"', pg_temp.tid(1)),
  'an expiry that is not a number is refused (not cast)');
select is((select row(access_token, refresh_count)::text from pg_temp.acct(1)), row('at-1', 0)::text,
  'a refused group wrote nothing, not even its valid refresh');
select is((select count(*)::int from jobs.task t join c1 on c1.task_id = t.id where t.state = 'running'), 4,
  '... and its tasks keep running');

create temp table r1 as
select * from jobs.record_outcomes((
  select jsonb_agg(pg_temp.ok(c1.task_id,
           jsonb_build_object('access_token', 'new-' || (c1.context ->> 'account_id'), 'expires_in', 3600)
           || case when c1.task_id = pg_temp.tid(4)
                   then jsonb_build_object('refresh_token', 'rt-rotated', 'refresh_expires_in', 86400, 'scope', 'a b')
                   else '{}'::jsonb end,
           case when c1.task_id = pg_temp.tid(5) then gen_random_uuid() end) order by c1.task_id)
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
select is((select (result ->> 'expires_at')::timestamptz from jobs.task where id = pg_temp.tid(6)),
  (select access_token_expires_at from pg_temp.acct(6)), 'and the expiry it reports is the one stored');
select is((select state from jobs.record_outcomes(jsonb_build_array(
            pg_temp.ok(pg_temp.tid(6), '{"access_token": "late", "expires_in": 60}'))) x),
  'lease_lost', 'a second report for a finished task is lease_lost');

-- the function's one call per group: jobs.report ------------------------------------------------
create temp table c2 as select * from jobs.claim_tasks((select id from b), 2);
delete from public.social_accounts where id = (select (context ->> 'account_id')::bigint from c2 order by task_id limit 1);
create temp table answer as
select jobs.report(
  (select jsonb_agg(jsonb_build_object('task_id', task_id, 'lease_token', lease_token, 'outcome', 'ok',
                                       'data', jsonb_build_object('access_token', 'g-' || (context ->> 'account_id'), 'expires_in', 60)))
     from c2)
  || jsonb_build_array(
       jsonb_build_object('task_id', pg_temp.tid(5), 'lease_token', (select lease_token from jobs.task where id = pg_temp.tid(5)),
                          'outcome', 'retry', 'error', 'Google answered HTTP 503', 'after', 90),
       jsonb_build_object('task_id', pg_temp.tid(1), 'lease_token', gen_random_uuid(), 'outcome', 'dead', 'error', 'stale')),
  jsonb_build_array(jsonb_build_object('batch_id', (select id from b), 'count', 2),
                    jsonb_build_object('batch_id', (select id from b), 'count', 1))) as v;
select is((select jsonb_agg(e ->> 'state' order by (e ->> 'task_id')::bigint) from answer, jsonb_array_elements(v -> 'outcomes') e
            where (e ->> 'task_id')::bigint in (select task_id from c2)),
  '["discarded", "succeeded"]'::jsonb, 'new tokens: the task whose account was deleted meanwhile is discarded, the other succeeded');
select is((select row(state, last_error)::text from jobs.task where id = (select min(task_id) from c2)),
  row('discarded', 'account no longer exists')::text, 'the discarded task says why');
select is((select jsonb_agg(e order by (e ->> 'task_id')::bigint desc) from answer, jsonb_array_elements(v -> 'outcomes') e
            where (e ->> 'task_id')::bigint in (pg_temp.tid(5), pg_temp.tid(1))),
  jsonb_build_array(jsonb_build_object('task_id', pg_temp.tid(5), 'state', 'queued'),
                    jsonb_build_object('task_id', pg_temp.tid(1), 'state', 'lease_lost')),
  'failures: the transient one is queued again, the stale lease is lease_lost (and did not fail the group)');
select is((select row(state, run_after, last_error)::text from jobs.task where id = pg_temp.tid(5)),
  row('queued', now() + interval '90 seconds', 'Google answered HTTP 503')::text, 'the wait (after) is honoured');
select is((select row(status, last_error)::text from pg_temp.acct(5)), row('active', 'Google answered HTTP 503')::text,
  'the account records the error and stays active');
select is((select jsonb_array_length(v -> 'claimed') from answer), 3, 'claims of one batch are summed: 3 tasks claimed');
select ok((select bool_and((e ->> 'batch_id')::bigint = (select id from b) and e ? 'lease_token'
                           and e -> 'context' ? 'refresh_token' and e -> 'context' ->> 'account_id' = e -> 'payload' ->> 'account_id')
             from answer, jsonb_array_elements(v -> 'claimed') e),
  'each claimed task carries its batch, lease token and, in its context, its refresh token');
select is((select jobs.report('[]', '[]')),
  '{"claimed": [], "outcomes": []}'::jsonb, 'an empty group is a no-op');

-- privileges ---------------------------------------------------------------------------------------
select ok(not has_function_privilege('anon', 'jobs.report(jsonb,jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.report(jsonb,jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.apply_refreshes(jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.refresh_context(jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.claim_tasks(bigint,integer)', 'EXECUTE'),
  'client roles cannot execute the grouped calls or the token functions they run');

select * from finish();
rollback;
