-- Claims that find only rate-limited work say when to come back
-- (supabase/migrations/20261202090000_jobs_claim_wait.sql): jobs.bucket_wait_ms, and the wait_ms
-- of jobs.report when its claims come back short because due work waits for a bucket.
-- Runs in one transaction that is rolled back; its job is 'pgtap-wait-<pid>'.
begin;
set local search_path = public, extensions;
select plan(9);

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
update jobs.rate_limit set tokens = 0, refilled_at = now() where key = current_setting('pgtap.key');
select is(jobs.bucket_wait_ms(array[current_setting('pgtap.key')]), 100, 'an empty bucket refilling 10/s: 100 ms');
update jobs.rate_limit set tokens = 0.75, refilled_at = now() where key = current_setting('pgtap.key');
select is(jobs.bucket_wait_ms(array[current_setting('pgtap.key')]), 25, 'three quarters of a token: 25 ms');
update jobs.rate_limit set tokens = 0, refilled_at = now() + interval '2 seconds' where key = current_setting('pgtap.key');
select is(jobs.bucket_wait_ms(array[current_setting('pgtap.key')]), 2100, 'a paused bucket: the pause, then a token');
select is(jobs.bucket_wait_ms(array['pgtap-no-such-bucket']), null, 'a key without a bucket is not limited');

-- report: the tick takes the one token; the batch's claim ahead finds the bucket empty.
insert into due values ('a'), ('b'), ('c');
update jobs.rate_limit set tokens = 1, refilled_at = now() where key = current_setting('pgtap.key');
select jobs.tick(current_setting('pgtap.job'));
create temp table b as select id from jobs.batch where job_name = current_setting('pgtap.job') and settled_at is null;
select is((select count(*)::int from b), 1, 'the tick dispatched one batch (one token)');

create temp table ans as select jobs.report('[]', jsonb_build_array(jsonb_build_object('batch_id', (select id from b), 'count', 2))) as a;
select is((select jsonb_array_length(a -> 'claimed') from ans), 0, 'nothing claimed: the bucket is empty');
select is((select (a ->> 'wait_ms')::int from ans), 100, 'wait_ms: when the bucket holds a token again');

update jobs.rate_limit set tokens = 1, refilled_at = now() where key = current_setting('pgtap.key');
delete from jobs.task where job_name = current_setting('pgtap.job') and state = 'queued';
select ok(not (jobs.report('[]', jsonb_build_array(jsonb_build_object('batch_id', (select id from b), 'count', 1))) ? 'wait_ms'),
          'nothing due: no wait_ms (the slot ends)');

select * from finish();
rollback;
