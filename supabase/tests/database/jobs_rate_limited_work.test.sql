-- Rate-limited work (supabase/migrations/20261202090000_jobs_rate_limited_work.sql):
-- jobs.bucket_wait_ms; the wait_ms of jobs.report when its claims come back short because due work
-- waits for a bucket; a retry that was never attempted (not_attempted) gives its attempt back.
-- Runs in one transaction that is rolled back; its job is 'pgtap-wait-<pid>'.
begin;
set local search_path = public, extensions;
select plan(14);

do $$
begin
  if not exists (select 1 from vault.decrypted_secrets where name = 'project_url') then
    perform vault.create_secret('http://127.0.0.1:54321/', 'project_url');
  end if;
end;
$$;

create temp table due (key text not null);
create function pg_temp.discover(p_config jsonb) returns table (key text, payload jsonb)
language sql stable as $$ select d.key, '{}'::jsonb from pg_temp.due d order by d.key $$;
select set_config('pgtap.job', 'pgtap-wait-' || pg_backend_pid(), true);
select set_config('pgtap.key', 'pgtap-wait-bucket-' || pg_backend_pid(), true);

select jobs.define(current_setting('pgtap.job'), 'pgtap-fn', 'pg_temp.discover(jsonb)'::regprocedure,
                   p_batch_size => 1, p_max_in_flight => 1,
                   p_rate_limit => jsonb_build_object('key', current_setting('pgtap.key'), 'capacity', 1,
                                                      'refill_per_second', 10));

-- bucket_wait_ms
update jobs.rate_limit set tokens = 1, refilled_at = now() where key = current_setting('pgtap.key');
select is(jobs.bucket_wait_ms(array[current_setting('pgtap.key')]), null, 'a bucket holding a token: no wait');
-- (Counted from clock_timestamp(): a few ms may have passed since the update.)
update jobs.rate_limit set tokens = 0, refilled_at = clock_timestamp() where key = current_setting('pgtap.key');
select ok(jobs.bucket_wait_ms(array[current_setting('pgtap.key')]) between 90 and 100, 'an empty bucket refilling 10/s: 100 ms');
update jobs.rate_limit set tokens = 0.75, refilled_at = clock_timestamp() where key = current_setting('pgtap.key');
select ok(jobs.bucket_wait_ms(array[current_setting('pgtap.key')]) between 15 and 25, 'three quarters of a token: 25 ms');
update jobs.rate_limit set tokens = 0, refilled_at = clock_timestamp() + interval '2 seconds' where key = current_setting('pgtap.key');
select ok(jobs.bucket_wait_ms(array[current_setting('pgtap.key')]) between 2090 and 2100, 'a paused bucket: the pause, then a token');
select is(jobs.bucket_wait_ms(array['pgtap-no-such-bucket']), null, 'a key without a bucket is not limited');

-- report: the tick takes the one token; the batch's claim ahead finds the bucket empty.
insert into due values ('a'), ('b'), ('c');
update jobs.rate_limit set tokens = 1, refilled_at = now() where key = current_setting('pgtap.key');
select jobs.tick(current_setting('pgtap.job'));
create temp table b as select id from jobs.batch where job_name = current_setting('pgtap.job') and settled_at is null;
select is((select count(*)::int from b), 1, 'the tick dispatched one batch (one token)');

create temp table ans as select jobs.report('[]', jsonb_build_array(jsonb_build_object('batch_id', (select id from b), 'count', 2))) as a;
select is((select jsonb_array_length(a -> 'claimed') from ans), 0, 'nothing claimed: the bucket is empty');
select ok((select (a ->> 'wait_ms')::int from ans) between 1 and 100, 'wait_ms: when the bucket holds a token again');
select is((select tokens from jobs.rate_limit where key = current_setting('pgtap.key')), 0::numeric,
          'the tick''s claim wrote the bucket once: refilled and debited to 0');

update jobs.rate_limit set tokens = 1, refilled_at = now() where key = current_setting('pgtap.key');
delete from jobs.task where job_name = current_setting('pgtap.job') and state = 'queued';
select ok(not (jobs.report('[]', jsonb_build_array(jsonb_build_object('batch_id', (select id from b), 'count', 1))) ? 'wait_ms'),
          'nothing due: no wait_ms (the slot ends)');

-- not_attempted: a retry the function never attempted gives its attempt back, even on the last one.
update jobs.job set max_attempts = 1 where name = current_setting('pgtap.job');
update jobs.rate_limit set tokens = 1, refilled_at = now() where key = current_setting('pgtap.key');
delete from due;
insert into due values ('na');
select jobs.tick(current_setting('pgtap.job'));  -- discovers it (its one batch is still in flight)
select jobs.report('[]', jsonb_build_array(jsonb_build_object('batch_id', (select id from b), 'count', 1)));
create temp table na as select id, lease_token, attempts from jobs.task where job_name = current_setting('pgtap.job') and key = 'na';
select is((select attempts from na), 1, 'claimed: its first (and last allowed) attempt');
select is(jobs.record_outcome((select id from na), (select lease_token from na),
          '{"outcome": "retry", "error": "not called: throttled earlier in this request", "after": 5, "not_attempted": true}'),
          'queued', 'a not-attempted retry on the last attempt is queued, not dead');
select is((select attempts from jobs.task where id = (select id from na)), 0, '... with its attempt given back');
select throws_ok($$ select jobs.record_outcomes('[{"task_id": 1, "lease_token": "6f1c2a44-6a0e-4f3e-9d7a-2b1f0c9e8d71",
                    "outcome": "retry", "error": "x", "not_attempted": "yes"}]') $$,
  '22023', 'jobs.record_outcomes: p_outcomes[0]: not_attempted must be true or false, got "yes"', 'not_attempted must be a boolean');

select * from finish();
rollback;
