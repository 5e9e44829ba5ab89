-- Async batches (supabase/migrations/20261202090000_async_batches.sql): the batch credential,
-- jobs.accept_batch, lease heartbeats, reaping across a server restart (boot), matching pg_net
-- responses only within a boot, the sub-minute heartbeat, and what client roles can do on net.
-- Runs in one transaction that is rolled back; its jobs are 'pgtap-async-*'.
begin;
set local search_path = public, extensions;
create extension if not exists dblink with schema extensions;
select plan(45);

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

create function pg_temp.nothing(p_config jsonb) returns table (key text, payload jsonb)
language sql stable as $$ select null::text, null::jsonb where false $$;
create function pg_temp.job(p_name text) returns jobs.job
language sql stable as $$ select * from jobs.job where name = p_name $$;
create function pg_temp.setup(p_name text, p_tasks int) returns void
language plpgsql as $$
begin
  perform jobs.define(p_name, 'pgtap-fn', 'pg_temp.nothing(jsonb)'::regprocedure, null, '{}', 10, 5);
  insert into jobs.task (job_name, key) select p_name, 'k' || g from generate_series(1, p_tasks) g;
  perform jobs.tick(p_name);
end;
$$;
-- The token a batch's request carries (what pg_net would send).
create function pg_temp.token(p_batch bigint) returns text
language sql stable as $$
  select substr(q.headers ->> 'Authorization', 8) from net.http_request_queue q
    join jobs.batch b on b.request_id = q.id where b.id = p_batch $$;
create function pg_temp.batch(p_name text) returns bigint
language sql stable as $$ select max(id) from jobs.batch where job_name = p_name $$;

-- defaults ------------------------------------------------------------------------------------
select is((select column_default from information_schema.columns
            where table_schema = 'jobs' and table_name = 'job' and column_name = 'lease_seconds'), '15',
  'a lease is 15 s by default: the function keeps it alive while it works');
select is((select array_agg(distinct lease_seconds) from jobs.job where name in
            ('youtube-token-refresh', 'instagram-token-refresh', 'tiktok-token-refresh', 'instagram-reel-urls')),
  array[15], 'the shipped jobs use 15 s leases');

-- accept_batch ----------------------------------------------------------------------------------
select pg_temp.setup('pgtap-async-accept', 3);
create temp table saved as select pg_temp.batch('pgtap-async-accept') as batch_id,
  pg_temp.token(pg_temp.batch('pgtap-async-accept')) as token;
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id from saved), 'dwb_forged'),
  'DWB02', null, 'a wrong token is refused (DWB02)');
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id + 1000000 from saved), (select token from saved)),
  'DWB01', null, 'an unknown batch is refused (DWB01)');
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id from saved), upper((select token from saved))),
  'DWB02', null, 'the token is compared exactly');
select is((select accepted_at from jobs.batch where id = (select batch_id from saved)), null, 'refusals change nothing');
update jobs.task set lease_until = now() + interval '5 seconds' where batch_id = (select batch_id from saved);
select is((jobs.accept_batch((select batch_id from saved), (select token from saved))) - 'batch_id',
  jsonb_build_object('job', 'pgtap-async-accept', 'running', 3, 'lease_seconds', 15),
  'the right token accepts the batch and reports its running tasks and lease');
select is((select accepted_at from jobs.batch where id = (select batch_id from saved)), now(), 'accepted_at is set');
select ok((select bool_and(lease_until = now() + interval '15 seconds') from jobs.task where batch_id = (select batch_id from saved)),
  'accepting extends the leases by lease_seconds');
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id from saved), (select token from saved)),
  'DWB04', null, 'a replayed request is refused (DWB04): the token is single-use');
select throws_ok(format('select jobs.accept_batch(%s, null)', (select batch_id from saved)),
  'DWB04', null, 'also for a caller with the secret key');

select pg_temp.setup('pgtap-async-late', 2);
update jobs.batch set dispatched_at = now() - interval '16 seconds' where id = pg_temp.batch('pgtap-async-late');
select throws_ok(format('select jobs.accept_batch(%s, %L)', pg_temp.batch('pgtap-async-late'), pg_temp.token(pg_temp.batch('pgtap-async-late'))),
  'DWB03', null, 'a token expires with the lease it was dispatched with (DWB03)');
select pg_temp.setup('pgtap-async-settled', 1);
update jobs.batch set settled_at = now() where id = pg_temp.batch('pgtap-async-settled');
select throws_ok(format('select jobs.accept_batch(%s, %L)', pg_temp.batch('pgtap-async-settled'), pg_temp.token(pg_temp.batch('pgtap-async-settled'))),
  'DWB03', null, 'a settled batch cannot be accepted (DWB03)');
select pg_temp.setup('pgtap-async-key', 1);
select is((jobs.accept_batch(pg_temp.batch('pgtap-async-key'), null)) ->> 'running', '1',
  'a caller with the secret key (no token) can accept a batch in flight');

-- keep_batch_alive --------------------------------------------------------------------------------
update jobs.task set lease_until = now() + interval '2 seconds' where batch_id = (select batch_id from saved);
select is(jobs.keep_batch_alive((select batch_id from saved)), '{"running": 3, "in_flight": true}'::jsonb,
  'keep_batch_alive extends the running tasks of the batch');
select ok((select bool_and(lease_until = now() + interval '15 seconds') from jobs.task where batch_id = (select batch_id from saved)),
  'to now + lease_seconds');
select is((select alive_at from jobs.batch where id = (select batch_id from saved)), now(), 'and stamps alive_at');
update jobs.task set lease_until = now() + interval '1 hour' where batch_id = (select batch_id from saved);
select jobs.keep_batch_alive((select batch_id from saved));
select ok((select bool_and(lease_until = now() + interval '1 hour') from jobs.task where batch_id = (select batch_id from saved)),
  'a lease is never shortened');
update jobs.batch set settled_at = now() where id = (select batch_id from saved);
select is(jobs.keep_batch_alive((select batch_id from saved)) -> 'in_flight', 'false'::jsonb,
  'a settled batch reports in_flight false (the function stops taking work for it)');
select throws_ok('select jobs.keep_batch_alive(-1)', 'DWB01', null, 'an unknown batch raises DWB01');

-- reap across a restart (boot) ----------------------------------------------------------------------
select pg_temp.setup('pgtap-async-boot', 20);
update jobs.job set backoff_jitter = 0 where name = 'pgtap-async-boot';
-- Two batches from before a restart: one no function accepted, one accepted.
update jobs.batch set boot = pg_postmaster_start_time() - interval '1 hour'
 where job_name = 'pgtap-async-boot';
update jobs.batch set accepted_at = now()
 where id = (select min(id) from jobs.batch where job_name = 'pgtap-async-boot');
-- After the restart pg_net's ids start again: an unrelated response carries the old request ids.
insert into net._http_response (id, status_code, content)
select request_id, 200, '{"ok":true}' from jobs.batch where job_name = 'pgtap-async-boot';
select is(jobs.reap(pg_temp.job('pgtap-async-boot')), 10, 'reap returns the 10 tasks of the unaccepted pre-restart batch');
select is(
  (select array_agg(distinct row(state, attempts, run_after, last_error)::text) from jobs.task
    where batch_id = (select max(id) from jobs.batch where job_name = 'pgtap-async-boot')),
  array[row('queued', 0, now(), 'dispatch lost: the database restarted before the function accepted the batch')::text],
  'queued at once, attempt given back, no backoff, a reason that names the restart');
select is((select http_status from jobs.batch where id = (select max(id) from jobs.batch where job_name = 'pgtap-async-boot')), null,
  'the other request''s answer (same id, new boot) is never read');
select is((select count(*)::int from jobs.task
            where batch_id = (select min(id) from jobs.batch where job_name = 'pgtap-async-boot') and state = 'running'), 10,
  'the accepted batch''s tasks stay running under their leases (the function may still be at work)');
select is((select suspended_until from jobs.job where name = 'pgtap-async-boot'), null, 'a restart suspends nothing');

-- responses within a boot -------------------------------------------------------------------------
select pg_temp.setup('pgtap-async-resp', 30);
create temp table rb as select id, row_number() over (order by id) as n, request_id from jobs.batch
  where job_name = 'pgtap-async-resp';
-- 1: answered before it was dispatched (a leftover row with a reused id) → ignored;
-- 2: accepted and answered 202 → left to its leases; 3: 404 → never ran, job suspended.
update jobs.batch set dispatched_at = now() + interval '1 second' where id = (select id from rb where n = 1);
insert into net._http_response (id, status_code, content) values
  ((select request_id from rb where n = 1), 200, '{"ok":true}'),
  ((select request_id from rb where n = 2), 202, '{"accepted":true}'),
  ((select request_id from rb where n = 3), 404, 'Function not found');
update jobs.batch set accepted_at = now() where id = (select id from rb where n = 2);
select is(jobs.reap(pg_temp.job('pgtap-async-resp')), 10, 'only the 404 batch is reaped');
select is((select count(*)::int from jobs.task where batch_id = (select id from rb where n = 1) and state = 'running'), 10,
  'a response older than the dispatch is not this batch''s');
select is((select count(*)::int from jobs.task where batch_id = (select id from rb where n = 2) and state = 'running'), 10,
  'an accepted batch is left to its leases');
select is((select array_agg(distinct row(state, attempts, run_after)::text) from jobs.task where batch_id = (select id from rb where n = 3)),
  array[row('queued', 0, now())::text], '404: never ran, queued at once with the attempt given back');
select is((select suspended_until from jobs.job where name = 'pgtap-async-resp'), now() + interval '1 minute',
  'and the job is suspended for a minute (a configuration error)');

-- an accepted batch whose function went silent -------------------------------------------------------
select pg_temp.setup('pgtap-async-silent', 3);
update jobs.batch set accepted_at = now() - interval '40 seconds', alive_at = now() - interval '16 seconds',
                      dispatched_at = now() - interval '40 seconds'
 where id = pg_temp.batch('pgtap-async-silent');
update jobs.task set lease_until = now() - interval '1 second' where batch_id = pg_temp.batch('pgtap-async-silent');
select is(jobs.reap(pg_temp.job('pgtap-async-silent')), 3, 'expired leases of a silent function are reaped');
select is((select array_agg(distinct row(state, run_after)::text) from jobs.task where batch_id = pg_temp.batch('pgtap-async-silent')),
  array[row('queued', now())::text], 'claimable at once (a crashed attempt gets no backoff)');
select isnt((select settled_at from jobs.batch where id = pg_temp.batch('pgtap-async-silent')), null,
  'and the batch, silent for a lease with nothing running, is settled');

-- finish_batch gives back what the function left running ------------------------------------------
select pg_temp.setup('pgtap-async-finish', 3);
update jobs.job set max_in_flight = 1 where name = 'pgtap-async-finish';
create temp table fin as select id, lease_token, batch_id from jobs.task where job_name = 'pgtap-async-finish' order by id;
select jobs.complete((select min(id) from fin), (select lease_token from fin order by id limit 1));
select is(jobs.finish_batch((select min(batch_id) from fin)), 2,
  'jobs.finish_batch settles the batch and the next one carries the two tasks it left running');
select is(
  (select array_agg(row(t.state, t.attempts, t.batch_id <> f.batch_id, t.last_error)::text order by t.id)
     from jobs.task t join fin f on f.id = t.id where t.id <> (select min(id) from fin)),
  array_fill(row('running', 2, true, 'left running when its batch finished (attempt 1 of 5)')::text, array[2]),
  'queued at once (no lease wait, no backoff) and claimed again as attempt 2');
select is(jobs.finish_batch((select min(batch_id) from fin)), 0, 'finishing it again does nothing');

-- pump reaps -----------------------------------------------------------------------------------------
select pg_temp.setup('pgtap-async-pump', 10);
update jobs.batch set boot = pg_postmaster_start_time() - interval '1 hour' where job_name = 'pgtap-async-pump';
select is(jobs.pump('pgtap-async-pump'), 10, 'jobs.pump reaps a lost batch and dispatches its tasks again');
select is((select count(*)::int from jobs.batch where job_name = 'pgtap-async-pump' and settled_at is null and boot = pg_postmaster_start_time()), 1,
  'in a new batch of this boot');

-- the heartbeat runs every 10 s -------------------------------------------------------------------------
select is(
  (select array_agg(jobname || ' ' || schedule || ' ' || command order by jobname) from cron.job where jobname like 'duework:heartbeat%'),
  case when (select (regexp_match(extversion, '^(\d+)\.(\d+)'))::int[] >= array[1, 5] from pg_extension where extname = 'pg_cron')
    then array['duework:heartbeat 10 seconds select jobs.heartbeat()']
    else array['duework:heartbeat * * * * * select jobs.heartbeat_minute()',
               'duework:heartbeat-at-start @reboot select jobs.heartbeat_minute()']
  end,
  'pg_cron runs the heartbeat every 10 s (on pg_cron 1.4, which has no seconds: a minute job running six, and one at server start)');
-- The loop's heartbeats run in sessions of their own: they see committed rows only, and their
-- now() is their own. A task committed through dblink, due now, is dispatched by it.
select dblink_exec(format('host=%s port=%s dbname=%s user=%s', current_setting('cron.host'), current_setting('port'),
  current_database(), current_user), $$
  insert into jobs.job (name, target_function, discover_function, lease_seconds)
  values ('pgtap-async-minute', 'pgtap-fn', 'jobs.heartbeat()', 15);
  insert into jobs.task (job_name, key) values ('pgtap-async-minute', 'm1')$$);
create temp table hb as select clock_timestamp() as t0;
select is(jobs.heartbeat_minute(1, 2), 2, 'jobs.heartbeat_minute(1, 2) runs two heartbeats');
select ok(clock_timestamp() - (select t0 from hb) >= interval '1 second', 'the given seconds apart');
select is((select state from dblink(format('host=%s port=%s dbname=%s user=%s', current_setting('cron.host'), current_setting('port'),
    current_database(), current_user), $$select state from jobs.task where job_name = 'pgtap-async-minute'$$) as t(state text)),
  'running', 'a heartbeat of the loop dispatched the committed due task');
select dblink_exec(format('host=%s port=%s dbname=%s user=%s', current_setting('cron.host'), current_setting('port'),
  current_database(), current_user), $$delete from jobs.job where name = 'pgtap-async-minute'$$);
select ok(not has_function_privilege('anon', 'jobs.heartbeat_minute(int,int)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.accept_batch(bigint,text)', 'EXECUTE')
          and not has_function_privilege('anon', 'jobs.keep_batch_alive(bigint)', 'EXECUTE'),
  'client roles execute none of the new engine functions');

-- pg_net's open tables -------------------------------------------------------------------------------
select ok(not has_table_privilege('anon', 'net.http_request_queue', 'SELECT')
          and not has_table_privilege('authenticated', 'net.http_request_queue', 'SELECT, INSERT, UPDATE, DELETE')
          and not has_table_privilege('anon', 'net._http_response', 'SELECT, INSERT, UPDATE, DELETE'),
  'where pg_net belongs to the migrating role, client roles lose their privileges on its tables');
select ok(not has_function_privilege('anon', 'net.http_post(text,jsonb,jsonb,jsonb,integer)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'net.http_get(text,jsonb,jsonb,integer)', 'EXECUTE'),
  'and on its functions');

select * from finish();
rollback;
