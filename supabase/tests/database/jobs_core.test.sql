-- The jobs core (supabase/migrations/20261123100000_jobs_core.sql), the whole engine: schema and
-- state machine, discovery, claiming, dispatch, outcomes, leases, reaping, release, retries, rate
-- limits (per job and per task key), prune, privileges, the claim query's index; async batches
-- (batch credential, accept, lease heartbeats, restarts, the 10 s heartbeat, pg_net's grants);
-- jobs.define with context and apply functions, size_rate_limits, task_contexts, claim_tasks,
-- record_outcomes, report and run_now.
-- Needs: the migrations, create extension pgtap with schema extensions, Vault secrets
-- project_url and service_key (created here, inside the transaction, when missing).
-- Runs in one transaction that is rolled back; the jobs it uses are its own ('pgtap-core-*',
-- 'pgtap-async-*'), discovered by a function in pg_temp, with context and apply functions in
-- pg_temp too. The SKIP LOCKED check (a disabled job) and the heartbeat loop ('pgtap-async-minute')
-- alone commit a job through dblink (a second session) and delete it again before the end.
begin;
set local search_path = public, extensions;
select plan(335);

-- fixtures ----------------------------------------------------------------------------------
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

-- Due items per job; the test discover function returns the rows of its job (config.job).
create temp table due (job text not null, key text not null, payload jsonb not null default '{}');
create function pg_temp.discover(p_config jsonb)
returns table (key text, payload jsonb)
language sql stable
as $$ select d.key, d.payload from pg_temp.due d where d.job = p_config ->> 'job' order by d.key $$;

create function pg_temp.define(p_name text, p_batch int default 10, p_in_flight int default 5,
                               p_max_attempts int default 5, p_lease int default 180)
returns jobs.job
language sql
as $$
  select jobs.define(p_name, 'pgtap-fn', 'pg_temp.discover(jsonb)'::regprocedure, null,
                     jsonb_build_object('job', p_name), p_batch, p_in_flight, p_lease, p_max_attempts);
$$;
create function pg_temp.job(p_name text) returns jobs.job
language sql stable as $$ select * from jobs.job where name = p_name $$;
create function pg_temp.claim(p_name text) returns int
language sql as $$ select c.claimed from jobs.claim_and_dispatch(pg_temp.job(p_name), null) c $$;
-- The newest task of a key (walks ids backwards: test tasks are the newest, whatever the history), and its lease token.
create function pg_temp.tid(p_job text, p_key text) returns bigint
language sql stable as $$ select id from jobs.task where job_name = p_job and key = p_key order by id desc limit 1 $$;
create function pg_temp.tok(p_job text, p_key text) returns uuid
language sql stable as $$ select lease_token from jobs.task where id = pg_temp.tid(p_job, p_key) $$;
create function pg_temp.task(p_job text, p_key text) returns jobs.task
language sql stable as $$ select * from jobs.task where id = pg_temp.tid(p_job, p_key) $$;
create function pg_temp.add_tasks(p_job text, p_prefix text, p_n int) returns void
language sql as $$
  insert into jobs.task (job_name, key, payload)
  select p_job, p_prefix || lpad(g::text, 2, '0'), jsonb_build_object('n', g) from generate_series(1, p_n) g;
$$;
-- The request pg_net would send for a batch.
create temp view req as
select b.id as batch_id, b.job_name, b.size, b.run_id, q.id as request_id, q.method::text as method, q.url,
       q.headers, q.timeout_milliseconds, convert_from(q.body, 'UTF8')::jsonb as body
  from jobs.batch b join net.http_request_queue q on q.id = b.request_id;

create temp table r (name text primary key, v jsonb);     -- tick results
create temp table saved (name text primary key, id bigint, token uuid);  -- tokens from before an outcome
create function pg_temp.save(p_name text, p_job text, p_key text) returns void
language sql as $$
  insert into pg_temp.saved values (p_name, pg_temp.tid(p_job, p_key), pg_temp.tok(p_job, p_key));
$$;

-- schema ------------------------------------------------------------------------------------
select has_table('jobs', 'job', 'jobs.job exists');
select has_table('jobs', 'task', 'jobs.task exists');
select has_table('jobs', 'batch', 'jobs.batch exists');
select has_table('jobs', 'run', 'jobs.run exists');
select has_table('jobs', 'rate_limit', 'jobs.rate_limit exists');
select has_view('jobs', 'health', 'jobs.health exists');
select is(
  (select pg_get_indexdef(indexrelid) from pg_index where indexrelid = 'jobs.task_claimable'::regclass),
  'CREATE INDEX task_claimable ON jobs.task USING btree (job_name, run_after, id) WHERE (state = ''queued''::text)',
  'task_claimable is a partial index on queued tasks in claim order');

select pg_temp.define('pgtap-core-schema');
set local session_replication_role = replica;  -- triggers off: reach the check constraint itself
select throws_ok(
  $$insert into jobs.task (job_name, key, state) values ('pgtap-core-schema', 'x', 'bogus')$$,
  '23514', 'new row for relation "task" violates check constraint "task_state_check"',
  'the state check constraint rejects ''bogus''');
set local session_replication_role = origin;
select throws_ok(
  $$insert into jobs.task (job_name, key, state) values ('pgtap-core-schema', 'x', 'bogus')$$,
  '23514', 'jobs.task: new tasks start queued, not bogus', 'the insert guard rejects a task that does not start queued (bogus)');
select throws_ok(
  $$insert into jobs.task (job_name, key, state, attempts, lease_token, lease_until, batch_id)
    values ('pgtap-core-schema', 'x', 'running', 1, gen_random_uuid(), now(), 1)$$,
  '23514', 'jobs.task: new tasks start queued, not running', 'new tasks must start queued (running refused)');
insert into jobs.task (job_name, key) values ('pgtap-core-schema', 's1'), ('pgtap-core-schema', 's2');
select throws_ok(
  $$insert into jobs.task (job_name, key) values ('pgtap-core-schema', 's1')$$,
  '23505', null, 'a second open task for the same (job, key) is refused by task_open_key');
select throws_ok(
  $$update jobs.task set lease_token = gen_random_uuid(), lease_until = now() + interval '1 minute'
     where job_name = 'pgtap-core-schema' and key = 's1'$$,
  '23514', 'new row for relation "task" violates check constraint "task_lease_iff_running"',
  'a queued task cannot hold a lease');
select throws_ok(
  $$update jobs.task set finished_at = now() where job_name = 'pgtap-core-schema' and key = 's1'$$,
  '23514', 'new row for relation "task" violates check constraint "task_finished_iff_terminal"',
  'an open task has no finished_at');
select throws_ok(
  format('update jobs.task set state = %L, finished_at = now() where id = %s', 'succeeded', pg_temp.tid('pgtap-core-schema', 's1')),
  '23514', format('jobs.task %s: queued -> succeeded is not an allowed transition', pg_temp.tid('pgtap-core-schema', 's1')),
  'queued -> succeeded is refused by the transition trigger');
set local session_replication_role = replica;
update jobs.task set state = 'succeeded', finished_at = now() where id = pg_temp.tid('pgtap-core-schema', 's2');
set local session_replication_role = origin;
select throws_ok(
  format($$update jobs.task set state = 'running', attempts = 1, lease_token = gen_random_uuid(),
           lease_until = now() + interval '1 minute', batch_id = 1, finished_at = null where id = %s$$,
         pg_temp.tid('pgtap-core-schema', 's2')),
  '23514', format('jobs.task %s: succeeded -> running is not an allowed transition', pg_temp.tid('pgtap-core-schema', 's2')),
  'succeeded -> running is refused by the transition trigger');
select ok(
  jobs.task_transition_allowed('running', 'succeeded') and jobs.task_transition_allowed('dead', 'queued')
  and jobs.task_transition_allowed('cancelled', 'queued') and jobs.task_transition_allowed('dead', 'cancelled')
  and not jobs.task_transition_allowed('succeeded', 'queued') and not jobs.task_transition_allowed('queued', 'dead')
  and not jobs.task_transition_allowed('discarded', 'running'),
  'task_transition_allowed follows the state diagram');

-- discovery: idempotent per key; paused jobs discover but do not dispatch --------------------
select pg_temp.define('pgtap-core-discover');
update jobs.job set paused = true where name = 'pgtap-core-discover';
insert into due select 'pgtap-core-discover', k, jsonb_build_object('k', k) from unnest(array['a', 'b', 'c']) k;
insert into r values ('d1', jobs.tick('pgtap-core-discover'));
insert into r values ('d2', jobs.tick('pgtap-core-discover'));
select is((select (v ->> 'discovered')::int from r where name = 'd1'), 3, 'first tick queues the 3 due items');
select is((select (v ->> 'discovered')::int from r where name = 'd2'), 0, 'second tick over the same due items queues nothing');
select is(
  (select array_agg(key || ':' || state || ':' || payload::text order by key) from jobs.task where job_name = 'pgtap-core-discover'),
  array['a:queued:{"k": "a"}', 'b:queued:{"k": "b"}', 'c:queued:{"k": "c"}'],
  'each key is queued exactly once, with the discovered payload');
select is(
  (select array_agg(array[discovered, claimed, dispatched] order by id) from jobs.run where job_name = 'pgtap-core-discover'),
  array[array[3, 0, 0], array[0, 0, 0]], 'jobs.run records one row per tick with its counts');
select is((select v ->> 'error' from r where name = 'd2'), 'job is paused: discovered only, nothing dispatched', 'a paused tick says so');
select is((select count(*)::int from jobs.batch where job_name = 'pgtap-core-discover'), 0, 'a paused job dispatches nothing');
select is(pg_temp.claim('pgtap-core-discover'), 0, 'claim_and_dispatch claims nothing for a paused job');

update jobs.job set paused = false where name = 'pgtap-core-discover';
insert into r values ('d3', jobs.tick('pgtap-core-discover'));
select is((select (v ->> 'claimed')::int from r where name = 'd3'), 3, 'unpaused, the tick claims the 3 queued tasks');
select jobs.complete(pg_temp.tid('pgtap-core-discover', 'a'), pg_temp.tok('pgtap-core-discover', 'a'), '{"done": true}');
insert into r values ('d4', jobs.tick('pgtap-core-discover'));
select is((select (v ->> 'discovered')::int from r where name = 'd4'), 1, 'once a key succeeded, it is queued again while still due (and only it)');
select is(
  (select array_agg(state order by id) from jobs.task where job_name = 'pgtap-core-discover' and key = 'a'),
  array['succeeded', 'running'], 'key a: the finished task stays, a new one was queued and claimed');
select is((select count(*)::int from jobs.task where job_name = 'pgtap-core-discover' and key in ('b', 'c')), 2,
  'keys still running are not queued again');

-- disabled jobs do nothing --------------------------------------------------------------------
select pg_temp.define('pgtap-core-disabled');
update jobs.job set enabled = false where name = 'pgtap-core-disabled';
insert into due values ('pgtap-core-disabled', 'z', '{}');
select pg_temp.add_tasks('pgtap-core-disabled', 'q', 2);
insert into r values ('off', jobs.tick('pgtap-core-disabled'));
select is((select array[(v ->> 'discovered')::int, (v ->> 'claimed')::int] from r where name = 'off'), array[0, 0],
  'a disabled job neither discovers nor claims');
select is((select v ->> 'error' from r where name = 'off'), 'job is disabled (update jobs.job set enabled = true where name = ...)',
  'the tick records that the job is disabled');
select is((select count(*)::int from jobs.task where job_name = 'pgtap-core-disabled' and state = 'queued'), 2,
  'its queued tasks stay queued and nothing new is queued');
select is(pg_temp.claim('pgtap-core-disabled'), 0, 'claim_and_dispatch claims nothing for a disabled job');

-- claim: batch_size, run_after ----------------------------------------------------------------
select pg_temp.define('pgtap-core-claim', p_batch => 10, p_in_flight => 5);
select pg_temp.add_tasks('pgtap-core-claim', 'c', 25);
insert into jobs.task (job_name, key, run_after) values ('pgtap-core-claim', 'later', now() + interval '1 hour');
insert into r values ('c1', jobs.tick('pgtap-core-claim'));
select is((select (v ->> 'claimed')::int from r where name = 'c1'), 25, '25 due tasks are claimed');
select is((select (v ->> 'dispatched_requests')::int from r where name = 'c1'), 3, 'in 3 requests');
select is((select array_agg(size order by id) from jobs.batch where job_name = 'pgtap-core-claim'), array[10, 10, 5],
  'batch_size 10 makes batches of 10, 10 and 5');
select is((select state from pg_temp.task('pgtap-core-claim', 'later')), 'queued', 'a task whose run_after is in the future is not claimed');
select is(
  (select count(*)::int from jobs.task where job_name = 'pgtap-core-claim' and state = 'running' and attempts = 1
      and lease_until = now() + interval '180 seconds' and batch_id is not null),
  25, 'claimed tasks are running, attempt 1, leased for lease_seconds');
select is((select count(distinct lease_token)::int from jobs.task where job_name = 'pgtap-core-claim' and state = 'running'), 25,
  'every claimed task has its own lease token');

-- dispatch request ------------------------------------------------------------------------------
select is((select count(*)::int from req where job_name = 'pgtap-core-claim'), 3, 'one pg_net request per batch');
select is(
  (select array_agg(request_id order by request_id) from req where job_name = 'pgtap-core-claim'),
  (select array_agg(x order by x) from jobs.run, unnest(request_ids) x
    where id = (select (v ->> 'run_id')::bigint from r where name = 'c1')),
  'jobs.run.request_ids lists the requests of the tick');
select is((select count(*)::int from req where job_name = 'pgtap-core-claim' and run_id = (select (v ->> 'run_id')::bigint from r where name = 'c1')),
  3, 'the batches point to their run');
select is(
  (select array_agg(distinct url) from req where job_name = 'pgtap-core-claim'),
  array[(select rtrim(decrypted_secret, '/') from vault.decrypted_secrets where name = 'project_url') || '/functions/v1/pgtap-fn'],
  'URL = Vault project_url + /functions/v1/<target_function>');
select is((select array_agg(distinct method) from req where job_name = 'pgtap-core-claim'), array['POST'], 'requests are POSTs');
select is(
  (select array_agg(distinct array(select k from jsonb_object_keys(headers) k order by k)::text) from req where job_name = 'pgtap-core-claim'),
  array['{Authorization,Content-Type,Prefer}'],
  'requests carry Content-Type, Authorization and Prefer only (no apikey)');
select ok(
  (select bool_and(headers ->> 'Content-Type' = 'application/json' and headers ->> 'Prefer' = 'respond-async'
                   and headers ->> 'Authorization' ~ ('^Bearer dwb_' || batch_id || '_[0-9a-f]{64}$'))
     from req where job_name = 'pgtap-core-claim'),
  'each asks for an async answer and carries a batch token naming its batch');
select is((select count(distinct headers ->> 'Authorization')::int from req where job_name = 'pgtap-core-claim'), 3,
  'every batch has its own token');
select is(
  (select count(*)::int from req, vault.decrypted_secrets s
    where job_name = 'pgtap-core-claim' and s.name = 'service_key' and strpos(headers::text, s.decrypted_secret) > 0),
  0, 'the Vault service_key is in no queued request');
select ok(
  (select bool_and(b.token_hash = sha256(convert_to(substr(r.headers ->> 'Authorization', 8), 'UTF8')))
     from req r join jobs.batch b on b.id = r.batch_id where r.job_name = 'pgtap-core-claim'),
  'jobs.batch keeps only the SHA-256 of the token');
select ok(
  (select bool_and(b.boot = pg_postmaster_start_time()) from jobs.batch b where b.job_name = 'pgtap-core-claim'),
  'each batch records the server start it was dispatched in');
select is((select array_agg(distinct timeout_milliseconds) from req where job_name = 'pgtap-core-claim'), array[30000],
  'pg_net waits at most 30 s for the function to accept');
select ok(
  (select bool_and(body ->> 'job' = 'pgtap-core-claim' and (body ->> 'batch_id')::bigint = batch_id
                   and jsonb_array_length(body -> 'tasks') = size
                   and (select array_agg(k order by k) from jsonb_object_keys(body) k) = array['batch_id', 'job', 'tasks'])
     from req where job_name = 'pgtap-core-claim'),
  'the body is {job, batch_id, tasks} with one entry per task of the batch');
select is(
  (select count(*)::int
     from req, jsonb_array_elements(req.body -> 'tasks') e
     join jobs.task t on t.id = (e ->> 'id')::bigint
    where req.job_name = 'pgtap-core-claim' and t.batch_id = req.batch_id
      and t.lease_token = (e ->> 'lease_token')::uuid and t.attempts = (e ->> 'attempt')::int
      and t.payload = e -> 'payload'
      and (select array_agg(k order by k) from jsonb_object_keys(e) k) = array['attempt', 'id', 'lease_token', 'payload']),
  25, 'each task travels as {id, lease_token, attempt, payload} matching its row');

-- complete ------------------------------------------------------------------------------------
select pg_temp.save('c01', 'pgtap-core-claim', 'c01');
select pg_temp.save('c02', 'pgtap-core-claim', 'c02');
select lives_ok(
  format('select jobs.complete(%s, %L, %L)', (select id from saved where name = 'c01'), (select token from saved where name = 'c01'), '{"ok": true}'),
  'complete with the lease token succeeds');
select is(
  (select row(state, result, finished_at, lease_token, lease_until)::text from jobs.task where id = (select id from saved where name = 'c01')),
  row('succeeded', '{"ok": true}'::jsonb, now(), null::uuid, null::timestamptz)::text,
  'the task is succeeded with its result and finished_at, lease cleared');
select throws_ok(
  format('select jobs.complete(%s, %L)', (select id from saved where name = 'c02'), gen_random_uuid()),
  'DWL01', null, 'complete with a forged lease token raises DWL01');
select is(
  (select row(state, result, lease_token)::text from jobs.task where id = (select id from saved where name = 'c02')),
  row('running', null::jsonb, (select token from saved where name = 'c02'))::text,
  'the forged call changed nothing');
select throws_ok(
  format('select jobs.complete(%s, %L, %L)', (select id from saved where name = 'c01'), (select token from saved where name = 'c01'), '{"again": 1}'),
  'DWL01', null, 'completing an already succeeded task (stale token) raises DWL01');
select is((select result from jobs.task where id = (select id from saved where name = 'c01')), '{"ok": true}'::jsonb,
  'the stale call did not overwrite the result');
select is((select settled_at from jobs.batch where id = (select batch_id from jobs.task where id = (select id from saved where name = 'c02'))), null,
  'a batch stays in flight while its function works (until jobs.finish_batch)');
select throws_ok('select jobs.complete(null, null)', '22004', 'task id and lease token are required', 'complete needs a task id and a token');

-- max_in_flight and work-conserving dispatch ------------------------------------------------------
select pg_temp.define('pgtap-core-flight', p_batch => 2, p_in_flight => 2);
select pg_temp.add_tasks('pgtap-core-flight', 'f', 7);
insert into r values ('fl1', jobs.tick('pgtap-core-flight'));
insert into r values ('fl2', jobs.tick('pgtap-core-flight'));
select is((select array[(v ->> 'claimed')::int, (v ->> 'dispatched_requests')::int] from r where name = 'fl1'), array[4, 2],
  'max_in_flight 2 x batch_size 2: the first tick claims 4 tasks in 2 requests');
select is((select array[(v ->> 'claimed')::int, (v ->> 'batches_in_flight')::int] from r where name = 'fl2'), array[0, 2],
  'with 2 batches in flight the next tick claims nothing');
select jobs.complete(pg_temp.tid('pgtap-core-flight', 'f01'), pg_temp.tok('pgtap-core-flight', 'f01'));
select is((select count(*)::int from jobs.batch where job_name = 'pgtap-core-flight'), 2, 'completing one task of a batch dispatches nothing yet');
select jobs.complete(pg_temp.tid('pgtap-core-flight', 'f02'), pg_temp.tok('pgtap-core-flight', 'f02'));
select jobs.finish_batch((select batch_id from pg_temp.task('pgtap-core-flight', 'f02')));
select isnt((select settled_at from jobs.batch where id = (select batch_id from pg_temp.task('pgtap-core-flight', 'f02'))), null,
  'jobs.finish_batch (the function is done) settles the batch');
select is((select count(*)::int from jobs.batch where job_name = 'pgtap-core-flight'), 3, 'and dispatches the next batch at once');
select is((select count(*)::int from req where job_name = 'pgtap-core-flight' and run_id is null), 1,
  'a new pg_net request outside any tick carries it');
select is((select count(*)::int from jobs.batch where job_name = 'pgtap-core-flight' and settled_at is null), 2, 'still at most 2 batches in flight');
select is((select array_agg(key order by key) from jobs.task where job_name = 'pgtap-core-flight' and state = 'running'),
  array['f03', 'f04', 'f05', 'f06'], 'the backlog is claimed in order');

-- SKIP LOCKED: a task row locked by another session is skipped, not waited for ----------------------
create extension if not exists dblink with schema extensions;
select dblink_connect('pgtap_lock', format('host=%s port=%s dbname=%s user=%s',
  coalesce(host(inet_server_addr()), split_part(current_setting('unix_socket_directories'), ',', 1)),
  current_setting('port'), current_database(), current_user));
create temp table lockjob as select 'pgtap-skiplocked-' || pg_backend_pid() as name;
-- leftovers of an earlier run that died before its clean-up
select dblink_exec('pgtap_lock', $$delete from jobs.job where name like 'pgtap-skiplocked-%' and created_at < now() - interval '10 minutes'$$);
select dblink_exec('pgtap_lock', format(
  $$insert into jobs.job (name, target_function, discover_function, enabled) values (%L, 'pgtap-fn', 'jobs.heartbeat()', false);
    insert into jobs.task (job_name, key, run_after) select %L, 'k' || g, now() - interval '1 hour' from generate_series(1, 3) g$$,
  (select name from lockjob), (select name from lockjob)));
select dblink_exec('pgtap_lock', 'begin');
create temp table locked as
select * from dblink('pgtap_lock', format(
  $$select id from jobs.task where job_name = %L and key = 'k1' for update$$, (select name from lockjob))) as l (id bigint);
create function pg_temp.skip_locked_probe(p_job text) returns jsonb
language plpgsql as $$
declare
  v jsonb;
begin
  set local lock_timeout = '3s';
  begin
    select jsonb_build_object('claimed', c.claimed) into v
      from jobs.claim_and_dispatch(jsonb_populate_record(pg_temp.job(p_job), '{"enabled": true}'), null) c;
    v := v || jsonb_build_object('running',
      (select array_agg(key order by key) from jobs.task where job_name = p_job and state = 'running'));
    raise exception using errcode = 'PT999', message = v::text;  -- undo the claim, keep the answer
  exception
    when sqlstate 'PT999' then return sqlerrm::jsonb;
    when lock_not_available then return jsonb_build_object('error', sqlerrm);
  end;
end;
$$;
create temp table probe as select pg_temp.skip_locked_probe((select name from lockjob)) as v;
select is((select count(*)::int from locked), 1, 'another session holds a row lock on one queued task');
select is((select v from probe), '{"claimed": 2, "running": ["k2", "k3"]}'::jsonb,
  'claim skips the locked task without waiting and claims the other two');
select dblink_exec('pgtap_lock', 'rollback');
select dblink_exec('pgtap_lock', format('delete from jobs.job where name = %L', (select name from lockjob)));
select is(
  (select n from dblink('pgtap_lock', format('select count(*)::int from jobs.task where job_name = %L', (select name from lockjob))) as x (n int)),
  0, 'the committed fixture of the SKIP LOCKED check is deleted again');
select dblink_disconnect('pgtap_lock');

-- fail and backoff ----------------------------------------------------------------------------
select is(
  array(select jobs.backoff_seconds(30, 3600, 0, n, 0)::int from generate_series(1, 9) n),
  array[30, 60, 120, 240, 480, 960, 1920, 3600, 3600], 'backoff doubles from base and is capped');
select is(jobs.backoff_seconds(30, 3600, 0.2, 3, 1), 96.000, 'jitter 0.2 with rand 1 shortens the delay to 80 %');
select is(jobs.backoff_seconds(30, 3600, 0.2, 3, 0), 120.000, 'rand 0 leaves it whole');
select is(jobs.backoff_seconds(30, 3600, 0, 0, 0), 30.000, 'attempt 0 counts as attempt 1');
select is(jobs.backoff_seconds(30, 3600, 0, 100000, 0), 3600.000, 'a huge attempt number stays at the cap');

select pg_temp.define('pgtap-core-fail', p_max_attempts => 3);
update jobs.job set backoff_jitter = 0 where name = 'pgtap-core-fail';
select pg_temp.add_tasks('pgtap-core-fail', 'f', 5);
insert into jobs.task (job_name, key, attempts) values ('pgtap-core-fail', 'last', 2);
select jobs.tick('pgtap-core-fail');
select pg_temp.save('f01', 'pgtap-core-fail', 'f01');
select is(jobs.fail(pg_temp.tid('pgtap-core-fail', 'f01'), pg_temp.tok('pgtap-core-fail', 'f01'), 'boom'), 'queued',
  'a transient failure returns queued');
select is(
  (select row(state, attempts, run_after, last_error, lease_token, lease_until, finished_at)::text from pg_temp.task('pgtap-core-fail', 'f01')),
  row('queued', 1, now() + interval '30 seconds', 'boom', null::uuid, null::timestamptz, null::timestamptz)::text,
  'transient: queued again after the backoff (base 30 s for attempt 1), lease cleared, error kept');
select throws_ok(
  format('select jobs.fail(%s, %L, %L)', (select id from saved where name = 'f01'), (select token from saved where name = 'f01'), 'again'),
  'DWL01', null, 'failing with a stale token raises DWL01');
update jobs.job set backoff_jitter = 0.2 where name = 'pgtap-core-fail';
select jobs.fail(pg_temp.tid('pgtap-core-fail', 'f02'), pg_temp.tok('pgtap-core-fail', 'f02'), 'jittered');
select ok(
  (select run_after between now() + interval '24 seconds' and now() + interval '30 seconds' from pg_temp.task('pgtap-core-fail', 'f02')),
  'with jitter 0.2 the delay is between 80 % and 100 % of the backoff');
select jobs.fail(pg_temp.tid('pgtap-core-fail', 'f03'), pg_temp.tok('pgtap-core-fail', 'f03'), '429', 120);
select is((select run_after from pg_temp.task('pgtap-core-fail', 'f03')), now() + interval '120 seconds',
  'retry_after is honoured exactly');
select is(jobs.fail(pg_temp.tid('pgtap-core-fail', 'f04'), pg_temp.tok('pgtap-core-fail', 'f04'), 'bad request', null, true), 'dead',
  'a permanent failure returns dead');
select is((select row(state, finished_at, last_error)::text from pg_temp.task('pgtap-core-fail', 'f04')),
  row('dead', now(), 'bad request')::text, 'the permanent failure is dead with finished_at');
select is((select attempts from pg_temp.task('pgtap-core-fail', 'last')), 3, 'a task claimed at attempt 3 of 3');
select is(jobs.fail(pg_temp.tid('pgtap-core-fail', 'last'), pg_temp.tok('pgtap-core-fail', 'last'), 'still failing'), 'dead',
  'fails at max_attempts into dead');
select throws_ok(
  format('select jobs.fail(%s, %L, %L, -1)', pg_temp.tid('pgtap-core-fail', 'f05'), pg_temp.tok('pgtap-core-fail', 'f05'), 'x'),
  '22023', null, 'a negative retry_after is refused');
select is((select state from pg_temp.task('pgtap-core-fail', 'f05')), 'running', 'and changes nothing');

-- lease expiry ----------------------------------------------------------------------------------
select pg_temp.define('pgtap-core-lease', p_max_attempts => 2, p_lease => 60);
select pg_temp.add_tasks('pgtap-core-lease', 'l', 1);
select jobs.tick('pgtap-core-lease');
select pg_temp.save('l1', 'pgtap-core-lease', 'l01');
select is(jobs.reap(pg_temp.job('pgtap-core-lease')), 0, 'reap leaves a task with a live lease alone');
update jobs.task set lease_until = now() - interval '1 second' where id = pg_temp.tid('pgtap-core-lease', 'l01');
select is(jobs.reap(pg_temp.job('pgtap-core-lease')), 1, 'reap returns a task whose lease expired');
select is(
  (select row(state, attempts, run_after, lease_token, last_error)::text from pg_temp.task('pgtap-core-lease', 'l01')),
  row('queued', 1, now(), null::uuid, 'lease expired after 60 s (attempt 1 of 2)')::text,
  'the expired task is queued again at once, its attempt counted');
update jobs.batch set dispatched_at = now() - interval '61 seconds'
 where id = (select batch_id from pg_temp.task('pgtap-core-lease', 'l01'));
select jobs.reap(pg_temp.job('pgtap-core-lease'));
select isnt((select settled_at from jobs.batch where id = (select batch_id from pg_temp.task('pgtap-core-lease', 'l01'))), null,
  'its batch, older than the lease with nothing running, is settled');
insert into r values ('l2', jobs.tick('pgtap-core-lease'));
select is((select (v ->> 'claimed')::int from r where name = 'l2'), 1, 'the next tick claims it again');
select is((select attempts from pg_temp.task('pgtap-core-lease', 'l01')), 2, 'as attempt 2');
select isnt((select lease_token from pg_temp.task('pgtap-core-lease', 'l01')), (select token from saved where name = 'l1'),
  'with a new lease token');
select throws_ok(
  format('select jobs.complete(%s, %L)', (select id from saved where name = 'l1'), (select token from saved where name = 'l1')),
  'DWL01', null, 'the first holder''s late complete is refused');
update jobs.task set lease_until = now() - interval '1 second' where id = pg_temp.tid('pgtap-core-lease', 'l01');
insert into r values ('l3', jobs.tick('pgtap-core-lease'));
select is((select array[(v ->> 'reaped')::int, (v ->> 'claimed')::int] from r where name = 'l3'), array[1, 0],
  'a tick reaps the second expiry and claims nothing');
select is((select row(state, finished_at)::text from pg_temp.task('pgtap-core-lease', 'l01')), row('dead', now())::text,
  'a lease that expires at max_attempts ends dead');

-- reap of batches that got an HTTP answer -------------------------------------------------------------
select pg_temp.define('pgtap-core-reap', p_batch => 1, p_in_flight => 10, p_max_attempts => 5);
update jobs.job set backoff_jitter = 0 where name = 'pgtap-core-reap';
select pg_temp.add_tasks('pgtap-core-reap', 'r', 5);
insert into jobs.task (job_name, key, attempts) values ('pgtap-core-reap', 'r06', 4);
select jobs.tick('pgtap-core-reap');
insert into net._http_response (id, status_code, content, timed_out, error_msg)
select b.request_id, x.status, x.content, x.timed_out, x.error_msg
  from (values ('r01', 404, 'Function not found', false, null),
               ('r02', 500, 'boom', false, null),
               ('r03', null, null, true, 'Timeout of 180000 ms reached'),
               ('r04', 200, '{"success": true}', false, null),
               ('r05', null, null, false, 'Couldn''t connect to server'),
               ('r06', 500, 'boom', false, null)) x (key, status, content, timed_out, error_msg)
  join jobs.batch b on b.id = (select batch_id from pg_temp.task('pgtap-core-reap', x.key));
select is(jobs.reap(pg_temp.job('pgtap-core-reap')), 5, 'reap returns the unreported tasks of the 5 answered batches');
select is((select row(state, attempts, last_error)::text from pg_temp.task('pgtap-core-reap', 'r01')),
  row('queued', 0, 'pgtap-fn answered HTTP 404: Function not found')::text,
  '404: the function never ran, the task is queued with its attempt given back');
select is((select row(state, attempts, run_after)::text from pg_temp.task('pgtap-core-reap', 'r02')),
  row('queued', 1, now() + interval '30 seconds')::text, '500: queued after backoff, the attempt counts');
select is((select state from pg_temp.task('pgtap-core-reap', 'r03')), 'running', 'a timed-out request is left running (the lease decides)');
select is((select settled_at from jobs.batch where id = (select batch_id from pg_temp.task('pgtap-core-reap', 'r03'))), null,
  'and its batch stays in flight');
select is((select row(state, attempts)::text from pg_temp.task('pgtap-core-reap', 'r04')), row('queued', 1)::text,
  '200 without an outcome for the task: queued, the attempt counts');
select is((select row(state, attempts, last_error)::text from pg_temp.task('pgtap-core-reap', 'r05')),
  row('queued', 0, 'request to pgtap-fn failed: Couldn''t connect to server')::text,
  'connection error: never ran, attempt given back');
select is((select row(state, attempts, finished_at)::text from pg_temp.task('pgtap-core-reap', 'r06')), row('dead', 5, now())::text,
  '500 at max_attempts: dead');
select is(
  (select array_agg(coalesce(b.http_status::text, b.http_error) order by t.key)
     from jobs.task t join jobs.batch b on b.id = t.batch_id
    where t.job_name = 'pgtap-core-reap' and t.key in ('r01', 'r02', 'r04', 'r05') and b.settled_at is not null),
  array['404', '500', '200', 'Couldn''t connect to server'], 'answered batches are settled with the HTTP status or error');
select ok(
  (select last_error in ((select last_error from pg_temp.task('pgtap-core-reap', 'r01')), (select last_error from pg_temp.task('pgtap-core-reap', 'r05')))
          and last_error_at = now()
     from jobs.job where name = 'pgtap-core-reap'),
  'a function that never ran is reported on the job (last_error)');

-- release ------------------------------------------------------------------------------------------
select pg_temp.define('pgtap-core-release');
select pg_temp.add_tasks('pgtap-core-release', 'x', 3);
select jobs.tick('pgtap-core-release');
select pg_temp.save('x03', 'pgtap-core-release', 'x03');
select is(
  jobs.release(array[pg_temp.tid('pgtap-core-release', 'x01'), pg_temp.tid('pgtap-core-release', 'x02'), pg_temp.tid('pgtap-core-release', 'x03')],
               array[pg_temp.tok('pgtap-core-release', 'x01'), pg_temp.tok('pgtap-core-release', 'x02'), gen_random_uuid()],
               'GOOGLE_CLIENT_ID is not set'),
  2, 'release gives back the tasks it holds leases on and skips a forged token');
select is(
  (select array_agg(row(key, state, attempts, run_after, last_error)::text order by key) from jobs.task
    where job_name = 'pgtap-core-release' and key in ('x01', 'x02')),
  array[row('x01', 'queued', 0, now(), 'GOOGLE_CLIENT_ID is not set')::text, row('x02', 'queued', 0, now(), 'GOOGLE_CLIENT_ID is not set')::text],
  'released tasks are queued at once with their attempt given back');
select is((select row(state, lease_token)::text from pg_temp.task('pgtap-core-release', 'x03')),
  row('running', (select token from saved where name = 'x03'))::text, 'the task with the forged token is untouched');
select is((select row(suspended_until, last_error)::text from jobs.job where name = 'pgtap-core-release'),
  row(now() + interval '1 minute', 'GOOGLE_CLIENT_ID is not set')::text, 'the job is suspended for a minute with the reason');
insert into r values ('rel', jobs.tick('pgtap-core-release'));
select is((select (v ->> 'claimed')::int from r where name = 'rel'), 0, 'a suspended job claims nothing');
select ok((select v ->> 'error' like 'dispatch suspended until % after a configuration error: GOOGLE_CLIENT_ID is not set' from r where name = 'rel'),
  'the tick says why');
update jobs.job set suspended_until = now() - interval '1 second' where name = 'pgtap-core-release';
select is(pg_temp.claim('pgtap-core-release'), 2, 'once the suspension is over, claims resume');

-- retry, retry_dead, cancel ------------------------------------------------------------------------------
select pg_temp.define('pgtap-core-retry');
select pg_temp.add_tasks('pgtap-core-retry', 'y', 5);
select jobs.tick('pgtap-core-retry');
select jobs.fail(pg_temp.tid('pgtap-core-retry', k), pg_temp.tok('pgtap-core-retry', k), 'permanent', null, true)
  from unnest(array['y01', 'y02', 'y03', 'y04']) k;
select is((select count(*)::int from jobs.task where job_name = 'pgtap-core-retry' and state = 'dead'), 4, '4 dead tasks');
select pg_temp.save('y01', 'pgtap-core-retry', 'y01');
select lives_ok(format('select jobs.retry(%s)', (select id from saved where name = 'y01')), 'a dead task can be retried by hand');
select is((select row(state, attempts, run_after, finished_at)::text from jobs.task where id = (select id from saved where name = 'y01')),
  row('queued', 0, now(), null::timestamptz)::text, 'retry: queued now, attempts reset, no finished_at');
select throws_ok(format('select jobs.retry(%s)', (select id from saved where name = 'y01')), '22023', null,
  'a queued task cannot be retried');
select throws_ok('select jobs.retry(-1)', 'P0002', 'jobs.retry: no task -1', 'retrying a missing task says so');
insert into jobs.task (job_name, key) values ('pgtap-core-retry', 'y02');
select throws_ok(
  format('select jobs.retry(%s)', (select min(id) from jobs.task where job_name = 'pgtap-core-retry' and key = 'y02')),
  '23505', format('jobs.retry: task %s for key y02 is already open; nothing to retry', pg_temp.tid('pgtap-core-retry', 'y02')),
  'retry is refused while an open task for the same key exists');
select is(jobs.retry_dead('pgtap-core-retry'), 2, 'retry_dead retries the dead tasks without an open sibling');
select is(
  (select array_agg(key || ':' || state order by id) from jobs.task where job_name = 'pgtap-core-retry'),
  array['y01:queued', 'y02:dead', 'y03:queued', 'y04:queued', 'y05:running', 'y02:queued'],
  'y03 and y04 are queued again; y02 stays dead');
select pg_temp.save('y05', 'pgtap-core-retry', 'y05');
select jobs.cancel(pg_temp.tid('pgtap-core-retry', 'y05'), 'operator says stop');
select is((select row(state, lease_token, lease_until, finished_at, last_error)::text from jobs.task where id = (select id from saved where name = 'y05')),
  row('cancelled', null::uuid, null::timestamptz, now(), 'operator says stop')::text, 'cancel of a running task revokes its lease');
select throws_ok(
  format('select jobs.complete(%s, %L)', (select id from saved where name = 'y05'), (select token from saved where name = 'y05')),
  'DWL01', null, 'the function''s later complete of a cancelled task is refused');
select is((select count(*)::int from jobs.task where batch_id = (select batch_id from jobs.task where id = (select id from saved where name = 'y05')) and state = 'running'), 0,
  'the cancelled task no longer counts as running in its batch');
select jobs.cancel((select id from saved where name = 'y01'));
select is((select row(state, finished_at)::text from jobs.task where id = (select id from saved where name = 'y01')),
  row('cancelled', now())::text, 'cancel of a queued task');
select jobs.cancel((select min(id) from jobs.task where job_name = 'pgtap-core-retry' and key = 'y02'));
select is((select state from jobs.task where id = (select min(id) from jobs.task where job_name = 'pgtap-core-retry' and key = 'y02')),
  'cancelled', 'cancel of a dead task');
select throws_ok(format('select jobs.cancel(%s)', (select id from saved where name = 'y01')), '22023',
  format('jobs.cancel: task %s is already cancelled', (select id from saved where name = 'y01')), 'a cancelled task cannot be cancelled again');
select jobs.retry((select id from saved where name = 'y01'));
select is((select row(state, attempts)::text from jobs.task where id = (select id from saved where name = 'y01')), row('queued', 0)::text,
  'a cancelled task can be retried');

-- rate limit ----------------------------------------------------------------------------------------
insert into jobs.rate_limit (key, capacity, refill_per_second, tokens, refilled_at) values ('pgtap-core-rl', 3, 1, 3, now());
select pg_temp.define('pgtap-core-rl', p_batch => 10);
update jobs.job set rate_limit_key = 'pgtap-core-rl' where name = 'pgtap-core-rl';
select pg_temp.add_tasks('pgtap-core-rl', 'k', 12);
select is(pg_temp.claim('pgtap-core-rl'), 3, 'a bucket of capacity 3 limits the claim to 3 tasks');
select is((select tokens from jobs.rate_limit where key = 'pgtap-core-rl'), 0::numeric, 'the claim took the 3 tokens');
select is(pg_temp.claim('pgtap-core-rl'), 0, 'an empty bucket claims nothing');
update jobs.rate_limit set refilled_at = now() - interval '2 seconds' where key = 'pgtap-core-rl';
select is(pg_temp.claim('pgtap-core-rl'), 2, 'after 2 s at 1 token/s, 2 more');
update jobs.rate_limit set refilled_at = now() - interval '1 hour' where key = 'pgtap-core-rl';
select is(pg_temp.claim('pgtap-core-rl'), 3, 'a long pause refills only up to capacity');
select is((select count(*)::int from jobs.task where job_name = 'pgtap-core-rl' and state = 'running'), 8, '8 of 12 claimed in all');

-- prune -----------------------------------------------------------------------------------------------
select pg_temp.define('pgtap-core-prune');
set local session_replication_role = replica;
insert into jobs.task (job_name, key, state, finished_at) values
  ('pgtap-core-prune', 'old-ok', 'succeeded', now() - interval '8 days'),
  ('pgtap-core-prune', 'new-ok', 'succeeded', now() - interval '1 day'),
  ('pgtap-core-prune', 'dead-8', 'dead', now() - interval '8 days'),
  ('pgtap-core-prune', 'dead-40', 'dead', now() - interval '40 days');
set local session_replication_role = origin;
insert into jobs.task (job_name, key) values ('pgtap-core-prune', 'queued');
insert into jobs.run (job_name, trigger, started_at) values
  ('pgtap-core-prune', 'cron', now() - interval '15 days'), ('pgtap-core-prune', 'manual', now() - interval '1 day');
insert into jobs.batch (job_name, size, dispatched_at, settled_at) values
  ('pgtap-core-prune', 1, now() - interval '9 days', now() - interval '8 days'),
  ('pgtap-core-prune', 2, now() - interval '9 days', null);
insert into r values ('prune', jobs.prune(p_keep_cron_details => '100 years', p_keep_http_responses => '100 years'));
select ok((select (v ->> 'tasks')::int >= 2 and (v ->> 'runs')::int >= 1 and (v ->> 'batches')::int >= 1 from r where name = 'prune'),
  'prune reports what it deleted');
select is((select array_agg(key order by key) from jobs.task where job_name = 'pgtap-core-prune'),
  array['dead-8', 'new-ok', 'queued'], 'old finished tasks and very old dead ones go; recent, queued and younger dead ones stay');
select is((select array_agg(trigger) from jobs.run where job_name = 'pgtap-core-prune'), array['manual'], 'old runs go');
select is((select array_agg(size) from jobs.batch where job_name = 'pgtap-core-prune'), array[2], 'old settled batches go, unsettled stay');
select jobs.prune(p_keep_dead => '1 day', p_keep_cron_details => '100 years', p_keep_http_responses => '100 years');
select is((select array_agg(key order by key) from jobs.task where job_name = 'pgtap-core-prune'),
  array['new-ok', 'queued'], 'dead tasks go after p_keep_dead');

-- health -------------------------------------------------------------------------------------------
select is(
  (select row(queued, due_now, batches_in_flight, dead)::text from jobs.health where name = 'pgtap-core-fail'),
  row(3, 0, 1, 2)::text, 'jobs.health reports queue depth, due work, batches in flight and dead tasks');

-- privileges and search_path -------------------------------------------------------------------------------
select ok(not has_schema_privilege('anon', 'jobs', 'USAGE'), 'anon has no usage on schema jobs');
select ok(not has_schema_privilege('authenticated', 'jobs', 'USAGE'), 'authenticated has no usage on schema jobs');
-- (schema social comes with the domain migrations: checked where it exists)
select ok(not coalesce(has_schema_privilege('anon', to_regnamespace('social')::oid, 'USAGE'), false), 'anon has no usage on schema social');
select ok(not coalesce(has_schema_privilege('authenticated', to_regnamespace('social')::oid, 'USAGE'), false),
  'authenticated has no usage on schema social');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where p.pronamespace in ('jobs'::regnamespace, to_regnamespace('social'))
      and (has_function_privilege('anon', p.oid, 'EXECUTE') or has_function_privilege('authenticated', p.oid, 'EXECUTE'))),
  null, 'anon and authenticated cannot execute any function in jobs or social');
select is(
  (select array_agg(c.oid::regclass::text order by 1) from pg_class c
    where c.relnamespace = 'jobs'::regnamespace and c.relkind in ('r', 'v', 'S')
      and (has_table_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
           or has_table_privilege('authenticated', c.oid, 'SELECT, INSERT, UPDATE, DELETE'))),
  null, 'anon and authenticated have no privileges on any table or view in jobs');
select ok(not has_function_privilege('anon', 'jobs.complete(bigint,uuid,jsonb)', 'EXECUTE'), 'anon cannot execute jobs.complete');
select ok(not has_function_privilege('authenticated', 'jobs.tick(text,text)', 'EXECUTE'), 'authenticated cannot execute jobs.tick');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where p.pronamespace in ('jobs'::regnamespace, to_regnamespace('social'))
      -- (a procedure that commits cannot pin it: jobs_scheduling.test.sql checks jobs.run_and_wait)
      and p.prokind <> 'p'
      and not coalesce(p.proconfig @> array['search_path=""'], false)),
  null, 'every function in jobs and social pins search_path to ''''');
select cmp_ok((select count(*)::int from pg_proc where pronamespace = 'jobs'::regnamespace), '>=', 20, 'and there are functions to check');

-- the claim query uses task_claimable however long the history -----------------------------------------
select pg_temp.define('pgtap-core-explain');
set local session_replication_role = replica;
insert into jobs.task (job_name, key, state, finished_at, attempts)
select 'pgtap-core-explain', 'h' || g, 'succeeded', now(), 1 from generate_series(1, 20000) g;
set local session_replication_role = origin;
select pg_temp.add_tasks('pgtap-core-explain', 'q', 5);
analyze jobs.task;
create function pg_temp.plan_of(p_sql text) returns text
language plpgsql as $$
declare
  v_line text;
  v_plan text := '';
begin
  for v_line in execute 'explain ' || p_sql loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end;
$$;
create temp table claim_plan as select pg_temp.plan_of($$
  select id from jobs.task where job_name = 'pgtap-core-explain' and state = 'queued' and run_after <= now()
   order by run_after, id limit 10 for update skip locked$$) as plan;
select ok((select plan ~ 'Index Scan using task_claimable on task' from claim_plan),
  'with 20,000 finished tasks the claim query is an index scan on task_claimable');
select ok((select plan !~ 'Seq Scan' from claim_plan), 'and does not scan the table');


-- async batches: the batch credential, jobs.accept_batch, lease heartbeats, reaping across a server
-- restart (boot), pg_net responses matched only within a boot, the sub-minute heartbeat, and what
-- client roles can do on net. Its jobs are 'pgtap-async-*'. ------------------------------------------
create function pg_temp.nothing(p_config jsonb) returns table (key text, payload jsonb)
language sql stable as $$ select null::text, null::jsonb where false $$;
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
-- (The shipped jobs come with the domain migrations; without them, as when the engine is tested
-- alone, there is nothing to check here.)
select is((select array_agg(distinct lease_seconds) from jobs.job where name in
            ('youtube-token-refresh', 'instagram-token-refresh', 'tiktok-token-refresh', 'instagram-reel-urls')),
  case when exists (select 1 from jobs.job where name in
                      ('youtube-token-refresh', 'instagram-token-refresh', 'tiktok-token-refresh', 'instagram-reel-urls'))
       then array[15] end,
  'the shipped jobs use 15 s leases');

-- accept_batch ----------------------------------------------------------------------------------
select pg_temp.setup('pgtap-async-accept', 3);
create temp table acc as select pg_temp.batch('pgtap-async-accept') as batch_id,
  pg_temp.token(pg_temp.batch('pgtap-async-accept')) as token;
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id from acc), 'dwb_forged'),
  'DWB02', null, 'a wrong token is refused (DWB02)');
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id + 1000000 from acc), (select token from acc)),
  'DWB01', null, 'an unknown batch is refused (DWB01)');
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id from acc), upper((select token from acc))),
  'DWB02', null, 'the token is compared exactly');
select is((select accepted_at from jobs.batch where id = (select batch_id from acc)), null, 'refusals change nothing');
update jobs.task set lease_until = now() + interval '5 seconds' where batch_id = (select batch_id from acc);
select is((jobs.accept_batch((select batch_id from acc), (select token from acc))) - 'batch_id',
  jsonb_build_object('job', 'pgtap-async-accept', 'running', 3, 'lease_seconds', 15),
  'the right token accepts the batch and reports its running tasks and lease');
select is((select accepted_at from jobs.batch where id = (select batch_id from acc)), now(), 'accepted_at is set');
select ok((select bool_and(lease_until = now() + interval '15 seconds') from jobs.task where batch_id = (select batch_id from acc)),
  'accepting extends the leases by lease_seconds');
select throws_ok(format('select jobs.accept_batch(%s, %L)', (select batch_id from acc), (select token from acc)),
  'DWB04', null, 'a replayed request is refused (DWB04): the token is single-use');
select throws_ok(format('select jobs.accept_batch(%s, null)', (select batch_id from acc)),
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
update jobs.task set lease_until = now() + interval '2 seconds' where batch_id = (select batch_id from acc);
select is(jobs.keep_batch_alive((select batch_id from acc)), '{"running": 3, "in_flight": true}'::jsonb,
  'keep_batch_alive extends the running tasks of the batch');
select ok((select bool_and(lease_until = now() + interval '15 seconds') from jobs.task where batch_id = (select batch_id from acc)),
  'to now + lease_seconds');
select is((select alive_at from jobs.batch where id = (select batch_id from acc)), now(), 'and stamps alive_at');
update jobs.task set lease_until = now() + interval '1 hour' where batch_id = (select batch_id from acc);
select jobs.keep_batch_alive((select batch_id from acc));
select ok((select bool_and(lease_until = now() + interval '1 hour') from jobs.task where batch_id = (select batch_id from acc)),
  'a lease is never shortened');
update jobs.batch set settled_at = now() where id = (select batch_id from acc);
select is(jobs.keep_batch_alive((select batch_id from acc)) -> 'in_flight', 'false'::jsonb,
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
-- (pg_cron's own minute heartbeat runs beside this test on a fresh stack: when one of its
-- heartbeats holds the job row, the loop's skip it (SKIP LOCKED) and that one dispatches it, so
-- wait up to 15 s for a heartbeat, either, to have done it.)
create function pg_temp.minute_task_state() returns text language plpgsql as $$
declare
  v_state text;
begin
  for i in 1 .. 150 loop
    select state into v_state from dblink(format('host=%s port=%s dbname=%s user=%s', current_setting('cron.host'),
      current_setting('port'), current_database(), current_user),
      $q$select state from jobs.task where job_name = 'pgtap-async-minute'$q$) as t(state text);
    exit when v_state <> 'queued';
    perform pg_sleep(0.1);
  end loop;
  return v_state;
end;
$$;
select is(pg_temp.minute_task_state(), 'running', 'a heartbeat of the loop dispatched the committed due task');
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

-- discard ------------------------------------------------------------------------------------------
select pg_temp.define('pgtap-core-discard');
select pg_temp.add_tasks('pgtap-core-discard', 'd', 2);
select jobs.tick('pgtap-core-discard');
select pg_temp.save('d01', 'pgtap-core-discard', 'd01');
select lives_ok(format('select jobs.discard(%s, %L, %L)', (select id from saved where name = 'd01'),
                       (select token from saved where name = 'd01'), 'account was disconnected'),
  'discard with the lease token succeeds');
select is((select row(state, last_error, finished_at, lease_token)::text from jobs.task where id = (select id from saved where name = 'd01')),
  row('discarded', 'account was disconnected', now(), null::uuid)::text, 'a discarded task is terminal with the reason (state discarded)');
select throws_ok(format('select jobs.discard(%s, %L, %L)', (select id from saved where name = 'd01'),
                        (select token from saved where name = 'd01'), 'again'),
  'DWL01', null, 'discarding with a stale token raises DWL01');
select throws_ok(format('select jobs.discard(%s, %L, %L)', pg_temp.tid('pgtap-core-discard', 'd02'), gen_random_uuid(), 'x'),
  'DWL01', format('lease lost: task %s is not running under this lease token', pg_temp.tid('pgtap-core-discard', 'd02')),
  'and with a forged one, changing nothing');
select is((select state from pg_temp.task('pgtap-core-discard', 'd02')), 'running', 'the forged discard left the task running');
select lives_ok(format('select jobs.retry(%s)', (select id from saved where name = 'd01')), 'a discarded task can be retried by hand');
set local session_replication_role = replica;  -- triggers off: reach the check constraint itself
select throws_ok(
  $$insert into jobs.task (job_name, key, state) values ('pgtap-core-discard', 'old', 'failed')$$,
  '23514', 'new row for relation "task" violates check constraint "task_state_check"',
  'the state ''failed'' no longer exists (it is ''discarded'')');
set local session_replication_role = origin;

-- per-task rate keys: jobs.claim_due_tasks, jobs.rate_limit_pause ------------------------------------
select jobs.define(p_name => 'pgtap-core-trl', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-trl"}', p_batch_size => 10,
                   p_rate_limit => '{"key": "pgtap-core-trl-app", "capacity": 3, "refill_per_second": 0.001}',
                   p_task_rate_limits => true);
select jobs.size_rate_limits('pgtap-core-trl', '[{"key": "pgtap-core-trl-a", "capacity": 1, "refill_per_second": 0.001},
                                                 {"key": "pgtap-core-trl-b", "capacity": 2, "refill_per_second": 0.001}]');
update jobs.job set paused = true where name = 'pgtap-core-trl';
insert into due select 'pgtap-core-trl', k, jsonb_build_object('k', k, 'rate_keys', jsonb_build_array(rk))
  from (values ('a1', 'pgtap-core-trl-a'), ('a2', 'pgtap-core-trl-a'), ('a3', 'pgtap-core-trl-a'),
               ('b1', 'pgtap-core-trl-b'), ('b2', 'pgtap-core-trl-b'), ('n1', 'pgtap-core-trl-nobucket')) x (k, rk);
select jobs.tick('pgtap-core-trl');
update jobs.job set paused = false where name = 'pgtap-core-trl';
select is((select array_agg(key || '=' || array_to_string(rate_keys, ',') order by key) from jobs.task where job_name = 'pgtap-core-trl'),
  array['a1=pgtap-core-trl-a', 'a2=pgtap-core-trl-a', 'a3=pgtap-core-trl-a', 'b1=pgtap-core-trl-b', 'b2=pgtap-core-trl-b',
        'n1=pgtap-core-trl-nobucket'],
  'a discovered payload.rate_keys moves to jobs.task.rate_keys');
select ok((select bool_and(not payload ? 'rate_keys') from jobs.task where job_name = 'pgtap-core-trl'), '... and leaves the payload');
select is(pg_temp.claim('pgtap-core-trl'), 3,
  'the claim takes 3 (the job''s bucket): a1 (burst 1) and both b tasks, skipping a2 and a3');
select is((select array_agg(key order by key) from jobs.task where job_name = 'pgtap-core-trl' and state = 'running'),
  array['a1', 'b1', 'b2'], 'an empty bucket does not block the other keys');
select is((select array_agg(key || '=' || floor(tokens) order by key) from jobs.rate_limit where key like 'pgtap-core-trl-%'),
  array['pgtap-core-trl-a=0', 'pgtap-core-trl-app=0', 'pgtap-core-trl-b=0'], 'every bucket the claim took from is debited');
update jobs.rate_limit set tokens = 3 where key = 'pgtap-core-trl-app';
select is(pg_temp.claim('pgtap-core-trl'), 1, 'with the job''s bucket refilled only the task without a bucket row is claimed');
select is((select state from pg_temp.task('pgtap-core-trl', 'n1')), 'running', 'a key without a bucket row is not limited');
select jobs.rate_limit_pause('pgtap-core-trl-b', 600, 'pgtap-core-trl');
update jobs.rate_limit set tokens = 1 where key = 'pgtap-core-trl-a';
select is((select row(tokens, refilled_at = now() + interval '600 seconds')::text from jobs.rate_limit where key = 'pgtap-core-trl-b'),
  row(0, true)::text, 'rate_limit_pause empties the bucket and holds it for the wait');
select is(jobs.rate_limit_hold('pgtap-core-trl-b'), 0, '... so it holds nothing until then');
select is((select array_agg(t.key) from jobs.claim_tasks((select batch_id from pg_temp.task('pgtap-core-trl', 'a1')), 5) c
             join jobs.task t on t.id = c.task_id),
  array['a2'], 'claims into a batch honour per-task buckets too: one a task for a''s one token, none for the paused b');

-- jobs.define: context and apply functions, backoff, rate limits -------------------------------------
create temp table ctx_calls (n serial primary key, tasks jsonb not null);
create temp table moot_keys (key text primary key, reason text not null);
-- The test context function: {"secret": "tok-<key>"} for each task, moot for moot_keys, no row for keys 'norow…'.
create function pg_temp.ctx(p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql as $$
begin
  insert into pg_temp.ctx_calls (tasks) values (p_tasks);
  return query
    select (e ->> 'task_id')::bigint, jsonb_build_object('secret', 'tok-' || (e ->> 'key')), m.reason
      from jsonb_array_elements(p_tasks) e
      left join pg_temp.moot_keys m on m.key = e ->> 'key'
     where e ->> 'key' not like 'norow%';
end;
$$;
create temp table apply_calls (n serial primary key, outcomes jsonb not null);
create temp table overrides (key text primary key, outcome text, error text, result jsonb);
create temp table domain_writes (task_id bigint, data jsonb);
-- The test apply function: records its input and each outcome's data (the domain write), and
-- returns the overrides of its tasks' keys.
create function pg_temp.apply(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql as $$
begin
  insert into pg_temp.apply_calls (outcomes) values (p_outcomes);
  insert into pg_temp.domain_writes
  select (e ->> 'task_id')::bigint, e -> 'data' from jsonb_array_elements(p_outcomes) e where jsonb_typeof(e -> 'data') = 'object';
  return query
    select (e ->> 'task_id')::bigint, o.outcome, o.error, o.result
      from jsonb_array_elements(p_outcomes) e
      join pg_temp.overrides o on o.key = e ->> 'key';
end;
$$;
create function pg_temp.bad_discover(p_config jsonb) returns setof jsonb
language sql as $$ select p_config $$;
create function pg_temp.bad_ctx(p_tasks jsonb) returns table (task_id bigint, context jsonb)
language sql as $$ select null::bigint, null::jsonb where false $$;
create function pg_temp.bad_apply(p_outcomes text) returns table (task_id bigint, outcome text, error text, result jsonb)
language sql as $$ select null::bigint, null::text, null::text, null::jsonb where false $$;

select jobs.define(p_name => 'pgtap-core-define', p_target_function => 'pgtap-fn',
                   p_discover_function => 'pg_temp.discover(jsonb)', p_config => '{"job": "pgtap-core-define"}',
                   p_context_function => 'pg_temp.ctx(jsonb)', p_apply_function => 'pg_temp.apply(jsonb)',
                   p_backoff_base_seconds => 10, p_backoff_cap_seconds => 100, p_backoff_jitter => 0,
                   p_rate_limit => '{"key": "pgtap-core-def", "capacity": 4, "refill_per_second": 0.5}',
                   p_task_rate_limits => true);
select is(
  (select row(context_function, apply_function, backoff_base_seconds, backoff_cap_seconds, backoff_jitter,
              rate_limit_key, task_rate_limits, lease_seconds, batch_size, max_in_flight, max_attempts)::text
     from jobs.job where name = 'pgtap-core-define'),
  row('pg_temp.ctx(jsonb)'::regprocedure::text, 'pg_temp.apply(jsonb)'::regprocedure::text, 10, 100, 0,
      'pgtap-core-def', true, 15, 10, 5, 5)::text,
  'jobs.define stores the context and apply functions, backoff, the job''s bucket and task_rate_limits (lease 15 s by default)');
select is((select row(capacity, refill_per_second, tokens)::text from jobs.rate_limit where key = 'pgtap-core-def'),
  row(4, 0.5, 4)::text, 'p_rate_limit creates the job''s bucket, full');
update jobs.rate_limit set tokens = 3 where key = 'pgtap-core-def';
update jobs.job set paused = true, suspended_until = now() + interval '5 minutes' where name = 'pgtap-core-define';
select jobs.define(p_name => 'pgtap-core-define', p_target_function => 'pgtap-fn',
                   p_discover_function => 'pg_temp.discover(jsonb)', p_config => '{"job": "pgtap-core-define"}',
                   p_context_function => 'pg_temp.ctx(jsonb)', p_apply_function => 'pg_temp.apply(jsonb)',
                   p_rate_limit => '{"key": "pgtap-core-def", "capacity": 2, "refill_per_second": 0.5}',
                   p_task_rate_limits => true);
select is((select row(capacity, refill_per_second, tokens)::text from jobs.rate_limit where key = 'pgtap-core-def'),
  row(2, 0.5, 2)::text, 'defining again re-sizes a changed bucket (its tokens capped at the new capacity)');
select is((select row(backoff_base_seconds, backoff_cap_seconds, backoff_jitter, paused, suspended_until)::text
             from jobs.job where name = 'pgtap-core-define'),
  row(30, 3600, 0.2, true, now() + interval '5 minutes')::text,
  'every argument left out takes its default; paused and suspended_until are kept');
select jobs.define(p_name => 'pgtap-core-define', p_target_function => 'pgtap-fn',
                   p_discover_function => 'pg_temp.discover(jsonb)', p_config => '{"job": "pgtap-core-define"}');
select is((select row(context_function, apply_function, rate_limit_key, task_rate_limits)::text from jobs.job where name = 'pgtap-core-define'),
  row(null::text, null::text, null::text, false)::text, 'defined without them, the job has no context, apply, bucket or task limits');
select is((select count(*)::int from jobs.rate_limit where key = 'pgtap-core-def'), 1, '... and the bucket row stays for others');

select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.bad_discover(jsonb)')$$, '22023',
  format('jobs.define: discover function %s must take (jsonb) and return table(key text, payload jsonb)', 'pg_temp.bad_discover(jsonb)'::regprocedure),
  'jobs.define refuses a discover function of the wrong shape');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)', p_context_function => 'pg_temp.bad_ctx(jsonb)')$$, '22023',
  format('jobs.define: context function %s must take (jsonb) and return table(task_id bigint, context jsonb, moot text)', 'pg_temp.bad_ctx(jsonb)'::regprocedure),
  'jobs.define refuses a context function of the wrong shape');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)', p_apply_function => 'pg_temp.bad_apply(text)')$$, '22023',
  format('jobs.define: apply function %s must take (jsonb) and return table(task_id bigint, outcome text, error text, result jsonb)', 'pg_temp.bad_apply(text)'::regprocedure),
  'jobs.define refuses an apply function of the wrong shape');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)', p_apply_function => 'pg_temp.ctx(jsonb)')$$, '22023', null,
  'jobs.define refuses a context function given as the apply function');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)', p_rate_limit => '[]')$$, '22023',
  'jobs.define: p_rate_limit: expected an object {"key", "capacity", "refill_per_second"}, got []', 'p_rate_limit must be an object');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)',
                                      p_rate_limit => '{"key": "Bad Key", "capacity": 1, "refill_per_second": 1}')$$, '22023',
  'jobs.define: p_rate_limit: key must be a bucket name (a-z, 0-9 and _.:-, at most 63 characters), got "Bad Key"', 'p_rate_limit needs a valid key');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)',
                                      p_rate_limit => '{"key": "pgtap-core-bad", "capacity": 0, "refill_per_second": 1}')$$, '22023',
  'jobs.define: p_rate_limit: capacity must be a number >= 1, got 0', 'p_rate_limit needs a capacity >= 1');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)',
                                      p_rate_limit => '{"key": "pgtap-core-bad", "capacity": 2}')$$, '22023',
  'jobs.define: p_rate_limit: refill_per_second must be a number > 0, got nothing', 'p_rate_limit needs a refill rate');
select throws_ok($$select jobs.define('pgtap-core-bad', 'pgtap-fn', 'pg_temp.discover(jsonb)',
                                      p_backoff_base_seconds => 100, p_backoff_cap_seconds => 10)$$, '23514', null,
  'a backoff cap below its base is refused');
select is((select count(*)::int from jobs.job where name = 'pgtap-core-bad') + (select count(*)::int from jobs.rate_limit where key = 'pgtap-core-bad'),
  0, 'a refused define creates neither job nor bucket');

-- jobs.size_rate_limits ------------------------------------------------------------------------------
select pg_temp.define('pgtap-core-size');
select ok(not exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and classid = 20261201
                        and objid = hashtext('pgtap-core-size')::oid and objsubid = 2),
  'before jobs.size_rate_limits the job''s claim lock is not held');
select is(jobs.size_rate_limits('pgtap-core-size', '[{"key": "pgtap-core-s1", "capacity": 3, "refill_per_second": 1},
                                                    {"key": "pgtap-core-s2", "capacity": 5, "refill_per_second": 2}]'),
  2, 'jobs.size_rate_limits creates the missing buckets');
select ok(exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and classid = 20261201
                    and objid = hashtext('pgtap-core-size')::oid and objsubid = 2 and mode = 'ExclusiveLock' and granted),
  'and took the job''s claim lock (before the buckets, as claims do)');
select is((select array_agg(key || '=' || capacity || '/' || refill_per_second || '/' || tokens order by key) from jobs.rate_limit where key like 'pgtap-core-s_'),
  array['pgtap-core-s1=3/1/3', 'pgtap-core-s2=5/2/5'], 'new buckets start full');
update jobs.rate_limit set tokens = 1, refilled_at = now() - interval '1 second' where key = 'pgtap-core-s1';
update jobs.rate_limit set tokens = 4 where key = 'pgtap-core-s2';
select is(jobs.size_rate_limits('pgtap-core-size', '[{"key": "pgtap-core-s1", "capacity": 3, "refill_per_second": 1},
                                                    {"key": "pgtap-core-s2", "capacity": 2, "refill_per_second": 2}]'),
  1, 'only the changed bucket is re-sized');
select is((select array_agg(key || '=' || capacity || '/' || tokens || '/' || (refilled_at < now()) order by key) from jobs.rate_limit where key like 'pgtap-core-s_'),
  array['pgtap-core-s1=3/1/true', 'pgtap-core-s2=2/2/false'], 'an unchanged bucket keeps its tokens and refill time; a smaller one is capped');
select is(jobs.size_rate_limits('pgtap-core-size', '[{"key": "pgtap-core-s3", "capacity": 1, "refill_per_second": 1},
                                                    {"key": "pgtap-core-s3", "capacity": 7, "refill_per_second": 1}]'),
  1, 'a key given twice is sized once');
select is((select capacity from jobs.rate_limit where key = 'pgtap-core-s3'), 7::numeric, '... by its last entry');
select is(jobs.size_rate_limits('pgtap-core-size', '[]'), 0, 'no buckets: nothing to do');
select throws_ok($$select jobs.size_rate_limits('pgtap-core-nope', '[]')$$, 'P0002', 'jobs.size_rate_limits: no job named pgtap-core-nope',
  'an unknown job is refused (its name is the claim lock)');
select throws_ok($$select jobs.size_rate_limits('pgtap-core-size', '{"key": "pgtap-core-s4"}')$$, '22023',
  'jobs.size_rate_limits: p_buckets must be a JSON array of {"key", "capacity", "refill_per_second"}, got object', 'p_buckets must be an array');
select throws_ok($$select jobs.size_rate_limits('pgtap-core-size', '[{"key": "pgtap-core-s4", "capacity": 1, "refill_per_second": 1},
                                                                    {"key": "pgtap-core-s5", "capacity": "3", "refill_per_second": 1}]')$$, '22023',
  'jobs.size_rate_limits: p_buckets[1]: capacity must be a number >= 1, got "3"', 'a bad bucket is named by its index and field');
select is((select count(*)::int from jobs.rate_limit where key in ('pgtap-core-s4', 'pgtap-core-s5')), 0, '... and nothing was created');

-- jobs.task_contexts --------------------------------------------------------------------------------
select jobs.define(p_name => 'pgtap-core-ctx', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-ctx"}', p_context_function => 'pg_temp.ctx(jsonb)',
                   p_rate_limit => '{"key": "pgtap-core-ctx-app", "capacity": 100, "refill_per_second": 0.001}',
                   p_task_rate_limits => true);
select jobs.size_rate_limits('pgtap-core-ctx', '[{"key": "pgtap-core-ctx-acct", "capacity": 100, "refill_per_second": 0.001}]');
insert into due select 'pgtap-core-ctx', k, jsonb_build_object('k', k, 'rate_keys', jsonb_build_array('pgtap-core-ctx-acct'))
  from unnest(array['t1', 't2', 't3', 'norow1']) k;
insert into moot_keys values ('t2', 'account is gone');
insert into r values ('ctx', jobs.tick('pgtap-core-ctx'));
select is((select (v ->> 'claimed')::int from r where name = 'ctx'), 4, 'a job with a context function is claimed and dispatched as any other');
select is((select array_agg(key || '=' || floor(tokens) order by key) from jobs.rate_limit where key like 'pgtap-core-ctx-%'),
  array['pgtap-core-ctx-acct=96', 'pgtap-core-ctx-app=96'], '(the claim took 4 tokens from each bucket)');
create temp table ctx_tasks as select key, id, lease_token from jobs.task where job_name = 'pgtap-core-ctx';
delete from ctx_calls;
create temp table ctx_out as
select * from jobs.task_contexts(
  array(select id from ctx_tasks order by key),
  array(select case when key = 't3' then gen_random_uuid() else lease_token end from ctx_tasks order by key));
select is(
  (select array_agg(t.key || ':' || coalesce(o.context ->> 'secret', '-') || ':' || coalesce(o.moot, '-') order by t.id)
     from ctx_out o join jobs.task t on t.id = o.task_id),
  array['norow1:-:-', 't1:tok-t1:-', 't2:tok-t2:account is gone'],
  'task_contexts: one row per task running under its lease, with the context function''s context (none without a row) and moot');
select is((select count(*)::int from ctx_out where task_id = pg_temp.tid('pgtap-core-ctx', 't3')), 0, 'a forged lease token gets no row');
select is((select count(*)::int from ctx_calls), 1, 'the context function is called once');
select is(
  (select tasks from ctx_calls),
  (select jsonb_agg(jsonb_build_object('task_id', id, 'key', key, 'payload', payload, 'attempt', attempts) order by id)
     from jobs.task where job_name = 'pgtap-core-ctx' and key in ('t1', 't2', 'norow1')),
  'with [{task_id, key, payload, attempt}] of the leased tasks only');
select is((select row(state, last_error, finished_at, lease_token)::text from pg_temp.task('pgtap-core-ctx', 't2')),
  row('discarded', 'account is gone', now(), null::uuid)::text, 'a moot task is discarded with the reason');
select is((select array_agg(key || '=' || state order by key) from jobs.task where job_name = 'pgtap-core-ctx' and key <> 't2'),
  array['norow1=running', 't1=running', 't3=running'], 'the others keep running');
select is((select array_agg(key || '=' || floor(tokens) order by key) from jobs.rate_limit where key like 'pgtap-core-ctx-%'),
  array['pgtap-core-ctx-acct=97', 'pgtap-core-ctx-app=97'], 'the moot task''s claim tokens are given back to its bucket and the job''s');
select is((select count(*)::int from jobs.task_contexts(array(select id from ctx_tasks where key = 't2'), array(select lease_token from ctx_tasks where key = 't2'))), 0,
  'a task no longer running gets no row');
select throws_ok(format('select * from jobs.task_contexts(array[%s]::bigint[], array[]::uuid[])', pg_temp.tid('pgtap-core-ctx', 't1')), '22023',
  'jobs.task_contexts: 1 task ids but 0 lease tokens', 'task ids and lease tokens must pair up');
select is(
  (select array_agg(row(c.context, c.moot)::text) from jobs.task_contexts(array[pg_temp.tid('pgtap-core-claim', 'c03')], array[pg_temp.tok('pgtap-core-claim', 'c03')]) c),
  array[row(null::jsonb, null::text)::text], 'a job without a context function: the task comes back with context null');

-- jobs.claim_tasks ------------------------------------------------------------------------------------
select jobs.define(p_name => 'pgtap-core-ct', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-ct"}', p_batch_size => 1, p_max_in_flight => 1,
                   p_context_function => 'pg_temp.ctx(jsonb)',
                   p_rate_limit => '{"key": "pgtap-core-ct-app", "capacity": 100, "refill_per_second": 0.001}',
                   p_task_rate_limits => true);
select jobs.size_rate_limits('pgtap-core-ct', '[{"key": "pgtap-core-ct-acct", "capacity": 100, "refill_per_second": 0.001}]');
insert into jobs.task (job_name, key, payload) values ('pgtap-core-ct', 'a0', '{"rate_keys": ["pgtap-core-ct-acct"]}');
select jobs.tick('pgtap-core-ct');
create temp table ct as select batch_id from pg_temp.task('pgtap-core-ct', 'a0');
insert into jobs.task (job_name, key, payload)
select 'pgtap-core-ct', 'a' || g, jsonb_build_object('n', g, 'rate_keys', jsonb_build_array('pgtap-core-ct-acct')) from generate_series(1, 6) g;
insert into moot_keys values ('a1', 'reel deleted'), ('a2', 'account inactive');
delete from ctx_calls;
create temp table ct_out as select * from jobs.claim_tasks((select batch_id from ct), 3);
select is((select array_agg(t.key || ':' || (o.context ->> 'secret') order by o.task_id) from ct_out o join jobs.task t on t.id = o.task_id),
  array['a3:tok-a3', 'a4:tok-a4', 'a5:tok-a5'],
  'claim_tasks returns the asked number of tasks with their context, replacing the moot ones');
select is(
  (select count(*)::int from ct_out o join jobs.task t on t.id = o.task_id
    where t.state = 'running' and t.batch_id = (select batch_id from ct) and t.lease_token = o.lease_token
      and t.attempts = o.attempt and o.attempt = 1 and t.payload = o.payload),
  3, '... each running in the batch under the lease token it returns, with its attempt and payload');
select is((select array_agg(key || '=' || state || ':' || coalesce(last_error, '-') order by key) from jobs.task
            where job_name = 'pgtap-core-ct' and key in ('a1', 'a2', 'a6')),
  array['a1=discarded:reel deleted', 'a2=discarded:account inactive', 'a6=queued:-'],
  'the moot ones are discarded with their reason; the next due task is not claimed');
select is((select array_agg(jsonb_array_length(tasks) order by n) from ctx_calls), array[3, 2],
  'the claim asked again for the difference (3 claimed, 2 moot, then 2 more): one context call per round');
select is((select array_agg(key || '=' || floor(tokens) order by key) from jobs.rate_limit where key like 'pgtap-core-ct-%'),
  array['pgtap-core-ct-acct=96', 'pgtap-core-ct-app=96'],
  'the moot tasks'' claim tokens are refunded to the task''s and the job''s bucket (100 - 1 - 3 - 2 + 2)');

select pg_temp.define('pgtap-core-ct0', p_batch => 1, p_in_flight => 1);
insert into jobs.task (job_name, key) values ('pgtap-core-ct0', 'first');
select jobs.tick('pgtap-core-ct0');
select pg_temp.add_tasks('pgtap-core-ct0', 'n', 2);
create temp table ct0 as select * from jobs.claim_tasks((select batch_id from pg_temp.task('pgtap-core-ct0', 'first')), 5);
select is(
  (select array_agg(t.key || ':' || coalesce(c.context::text, 'null') || ':' || (t.lease_token = c.lease_token and t.state = 'running'
                    and t.batch_id = (select batch_id from pg_temp.task('pgtap-core-ct0', 'first'))) order by t.key)
     from ct0 c join jobs.task t on t.id = c.task_id),
  array['n01:null:true', 'n02:null:true'],
  'claim_tasks of a job without a context function: what is due, claimed into the batch, context null');

select jobs.define(p_name => 'pgtap-core-ct10', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-ct10"}', p_batch_size => 1, p_max_in_flight => 1,
                   p_context_function => 'pg_temp.ctx(jsonb)');
insert into jobs.task (job_name, key) values ('pgtap-core-ct10', 'first');
select jobs.tick('pgtap-core-ct10');
select pg_temp.add_tasks('pgtap-core-ct10', 'm', 12);
insert into moot_keys select 'm' || lpad(g::text, 2, '0'), 'moot' from generate_series(1, 12) g;
delete from ctx_calls;
select is((select count(*)::int from jobs.claim_tasks((select batch_id from pg_temp.task('pgtap-core-ct10', 'first')), 1)), 0,
  'a claim that finds only moot tasks returns nothing');
select is((select array[count(*) filter (where state = 'discarded'), count(*) filter (where state = 'queued')]::int[]
             from jobs.task where job_name = 'pgtap-core-ct10' and key like 'm%'),
  array[10, 2], '... after at most 10 rounds (10 discarded, 2 left queued)');
update jobs.batch set settled_at = now() where id = (select batch_id from pg_temp.task('pgtap-core-ct10', 'first'));
select is((select count(*)::int from jobs.claim_tasks((select batch_id from pg_temp.task('pgtap-core-ct10', 'first')), 5)), 0,
  'a settled batch claims nothing');
select is((select count(*)::int from jobs.task where job_name = 'pgtap-core-ct10' and state = 'queued'), 2, '... and leaves the queue alone');

-- jobs.claim_for_batches: the claims of several batches at once ----------------------------------------
select jobs.define(p_name => 'pgtap-core-cfb', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-cfb"}', p_batch_size => 1, p_max_in_flight => 3,
                   p_context_function => 'pg_temp.ctx(jsonb)');
insert into jobs.task (job_name, key) values ('pgtap-core-cfb', 'b1'), ('pgtap-core-cfb', 'b2'), ('pgtap-core-cfb', 'b3');
select jobs.tick('pgtap-core-cfb');
create temp table cfb as
  select array_agg(batch_id order by key) as b from jobs.task where job_name = 'pgtap-core-cfb' and key like 'b%';
update jobs.batch set settled_at = now() where id = (select b[3] from cfb);
select pg_temp.add_tasks('pgtap-core-cfb', 'q', 6);
insert into moot_keys values ('q02', 'moot in a multi-batch claim');
delete from ctx_calls;
create temp table cfb_out as
  select * from jobs.claim_for_batches(jsonb_build_array(
    jsonb_build_object('batch_id', (select b[2] from cfb), 'count', 2),
    jsonb_build_object('batch_id', (select b[1] from cfb), 'count', 1),
    jsonb_build_object('batch_id', (select b[1] from cfb), 'count', 1),
    jsonb_build_object('batch_id', (select b[3] from cfb), 'count', 3)));
select is(
  (select array_agg(t.key || '@' || case o.batch_id when c.b[1] then 'b1' when c.b[2] then 'b2' else 'other' end
                    || ':' || (o.context ->> 'secret')
                    || ':' || (t.batch_id = o.batch_id and t.lease_token = o.lease_token and t.state = 'running')
                    order by t.key)
     from cfb_out o join jobs.task t on t.id = o.task_id cross join cfb c),
  array['q01@b1:tok-q01:true', 'q03@b2:tok-q03:true', 'q04@b2:tok-q04:true', 'q05@b1:tok-q05:true'],
  'claim_for_batches: counts of one batch add up, the first batch is served first, its moot task is replaced in it, a settled batch gets nothing');
select is((select array_agg(jsonb_array_length(tasks) order by n) from ctx_calls), array[4, 1],
  '... one context call per round for all the batches of the job (4 claimed with one moot, then 1 more)');
select is((select array_agg(key || '=' || state order by key) from jobs.task where job_name = 'pgtap-core-cfb' and key like 'q%'),
  array['q01=running', 'q02=discarded', 'q03=running', 'q04=running', 'q05=running', 'q06=queued'],
  '... and nothing else is claimed');

-- jobs.record_outcomes -------------------------------------------------------------------------------
select jobs.define(p_name => 'pgtap-core-out', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-out"}', p_batch_size => 20, p_max_attempts => 3,
                   p_apply_function => 'pg_temp.apply(jsonb)',
                   p_backoff_base_seconds => 10, p_backoff_jitter => 0,
                   p_rate_limit => '{"key": "pgtap-core-out-app", "capacity": 50, "refill_per_second": 0.001}',
                   p_task_rate_limits => true);
select jobs.define(p_name => 'pgtap-core-out2', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-out2"}', p_apply_function => 'pg_temp.apply(jsonb)');
insert into jobs.task (job_name, key, payload)
select 'pgtap-core-out', 'o' || lpad(g::text, 2, '0'),
       jsonb_build_object('n', g, 'rate_keys', jsonb_build_array('pgtap-core-out-acct:' || g))
  from generate_series(1, 12) g;
update jobs.task set attempts = 2 where job_name = 'pgtap-core-out' and key = 'o11';
select jobs.size_rate_limits('pgtap-core-out', (
  select jsonb_agg(jsonb_build_object('key', 'pgtap-core-out-acct:' || g, 'capacity', 5, 'refill_per_second', 0.001))
    from generate_series(1, 12) g) || '[{"key": "pgtap-core-other", "capacity": 5, "refill_per_second": 0.001}]'::jsonb);
select pg_temp.add_tasks('pgtap-core-out2', 'p', 2);
select jobs.tick('pgtap-core-out');
select jobs.tick('pgtap-core-out2');
select is((select count(*)::int from jobs.task where job_name in ('pgtap-core-out', 'pgtap-core-out2') and state = 'running'), 14,
  '(14 tasks of two jobs with an apply function are running)');
insert into overrides values
  ('o08', 'discard', 'moot after all', null),
  ('o09', 'dead', 'permanent now', null),
  ('o10', null, null, '{"applied": true}');
create temp table oc as select key, id, lease_token from jobs.task where job_name in ('pgtap-core-out', 'pgtap-core-out2') and state = 'running';
create function pg_temp.o(p_key text, p_outcome jsonb) returns jsonb
language sql stable as $$
  select jsonb_build_object('task_id', id, 'lease_token', lease_token) || p_outcome from pg_temp.oc where key = p_key
$$;
delete from apply_calls;
create temp table out1 as
select row_number() over () as n, * from jobs.record_outcomes(jsonb_build_array(
  pg_temp.o('o01', '{"outcome": "ok", "result": {"n": 1}, "data": {"token": "SECRET-o01"}}'),
  pg_temp.o('o02', '{"outcome": "retry", "error": "HTTP 503", "after": 120, "pause": "pgtap-core-out-acct:2"}'),
  pg_temp.o('o03', '{"outcome": "retry", "error": "flaky", "pause": "pgtap-core-out-app"}'),
  pg_temp.o('o04', '{"outcome": "dead", "error": "invalid_grant", "data": {"token": "SECRET-o04"}}'),
  pg_temp.o('o05', '{"outcome": "discard", "error": "account gone"}'),
  pg_temp.o('o06', '{"outcome": "release", "error": "CLIENT_ID is not set"}'),
  pg_temp.o('o07', '{"outcome": "ok"}') || jsonb_build_object('lease_token', gen_random_uuid()),
  pg_temp.o('o08', '{"outcome": "ok", "result": {"x": 1}}'),
  pg_temp.o('o09', '{"outcome": "retry", "error": "HTTP 500"}'),
  pg_temp.o('o10', '{"outcome": "ok", "result": {"mine": true}}'),
  pg_temp.o('o11', '{"outcome": "retry", "error": "still flaky"}'),
  pg_temp.o('o12', '{"outcome": "retry", "error": "HTTP 429", "after": 30, "pause": "pgtap-core-other"}'),
  pg_temp.o('p01', '{"outcome": "ok", "data": {"token": "SECRET-p01"}}'),
  pg_temp.o('p02', '{"outcome": "dead", "error": "no"}')));
select is((select array_agg(state order by n) from out1),
  array['succeeded', 'queued', 'queued', 'dead', 'discarded', 'queued', 'lease_lost', 'discarded', 'dead', 'succeeded',
        'dead', 'queued', 'succeeded', 'dead'],
  'record_outcomes returns each task''s state in input order (lease_lost for the forged token)');
select is((select array_agg(task_id order by n) from out1),
  array(select id from oc order by key), '... with its task id');
select is((select row(state, result, finished_at, lease_token)::text from pg_temp.task('pgtap-core-out', 'o01')),
  row('succeeded', '{"n": 1}'::jsonb, now(), null::uuid)::text, 'ok: succeeded with the outcome''s result');
select is((select row(state, attempts, run_after, last_error, finished_at)::text from pg_temp.task('pgtap-core-out', 'o02')),
  row('queued', 1, now() + interval '120 seconds', 'HTTP 503', null::timestamptz)::text, 'retry: queued after the given seconds, with the error');
select is((select row(state, run_after, last_error)::text from pg_temp.task('pgtap-core-out', 'o03')),
  row('queued', now() + interval '10 seconds', 'flaky')::text, 'retry without after: the job''s backoff (base 10 s, no jitter)');
select is((select row(state, last_error, finished_at)::text from pg_temp.task('pgtap-core-out', 'o04')),
  row('dead', 'invalid_grant', now())::text, 'dead: dead letter with the error');
select is((select row(state, last_error, finished_at)::text from pg_temp.task('pgtap-core-out', 'o05')),
  row('discarded', 'account gone', now())::text, 'discard: discarded with the reason');
select is((select row(state, attempts, run_after, last_error, finished_at)::text from pg_temp.task('pgtap-core-out', 'o06')),
  row('queued', 0, now(), 'CLIENT_ID is not set', null::timestamptz)::text, 'release: queued at once with the attempt given back');
select is((select row(last_error, last_error_at, suspended_until)::text from jobs.job where name = 'pgtap-core-out'),
  row('CLIENT_ID is not set', now(), now() + interval '1 minute')::text, '... the reason on the job, its dispatch suspended for a minute');
select is((select suspended_until from jobs.job where name = 'pgtap-core-out2'), null, 'a job without a release is not suspended');
select is((select row(state, lease_token)::text from pg_temp.task('pgtap-core-out', 'o07')),
  row('running', (select lease_token from oc where key = 'o07'))::text, 'a lost lease changes nothing for that task and fails none of the others');
select is((select row(state, last_error, result)::text from pg_temp.task('pgtap-core-out', 'o08')),
  row('discarded', 'moot after all', null::jsonb)::text, 'apply may turn an ok into a discard, with its error');
select is((select row(state, last_error)::text from pg_temp.task('pgtap-core-out', 'o09')),
  row('dead', 'permanent now')::text, 'apply may turn a retry into dead, with its error');
select is((select result from pg_temp.task('pgtap-core-out', 'o10')), '{"applied": true}'::jsonb, 'apply''s result replaces the outcome''s');
select is((select row(state, attempts, finished_at)::text from pg_temp.task('pgtap-core-out', 'o11')),
  row('dead', 3, now())::text, 'a retry at max_attempts ends dead');
select is((select count(*)::int from apply_calls), 2, 'apply is called once per job of the group');
select is((select array_agg(x order by n) from (select n, (select array_agg(e ->> 'key' order by (e ->> 'task_id')::bigint)
                                                             from jsonb_array_elements(outcomes) e)::text as x from apply_calls) c),
  array['{o01,o02,o03,o04,o05,o08,o09,o10,o11,o12}', '{p01,p02}'],
  '... in job-name order, with the tasks of that job whose lease checked out (not the released or lost ones)');
select is((select jsonb_agg(e order by (e ->> 'task_id')::bigint) from apply_calls, jsonb_array_elements(outcomes) e
            where e ->> 'key' in ('o01', 'o02')),
  jsonb_build_array(
    jsonb_build_object('task_id', pg_temp.tid('pgtap-core-out', 'o01'), 'key', 'o01', 'payload', '{"n": 1}'::jsonb, 'attempt', 1,
                       'outcome', 'ok', 'data', '{"token": "SECRET-o01"}'::jsonb, 'error', null, 'after', null),
    jsonb_build_object('task_id', pg_temp.tid('pgtap-core-out', 'o02'), 'key', 'o02', 'payload', '{"n": 2}'::jsonb, 'attempt', 1,
                       'outcome', 'retry', 'data', null, 'error', 'HTTP 503', 'after', 120)),
  'apply gets {task_id, key, payload, attempt, outcome, data, error, after} per task');
select is((select array_agg(data ->> 'token' order by task_id) from domain_writes),
  array['SECRET-o01', 'SECRET-o04', 'SECRET-p01'], 'an outcome''s data reaches apply (the domain write)');
select is((select count(*)::int from jobs.task t where t.job_name in ('pgtap-core-out', 'pgtap-core-out2') and to_jsonb(t)::text like '%SECRET%')
          + (select count(*)::int from jobs.job j where to_jsonb(j)::text like '%SECRET%'),
  0, '... and is never stored by the engine');
select is((select row(tokens, refilled_at)::text from jobs.rate_limit where key = 'pgtap-core-out-acct:2'),
  row(0, now() + interval '120 seconds')::text, 'a retry naming its task''s bucket empties it for `after` seconds');
select is((select row(tokens, refilled_at)::text from jobs.rate_limit where key = 'pgtap-core-out-app'),
  row(0, now() + interval '60 seconds')::text, '... or the job''s bucket, for 60 s when no after is given');
select is((select tokens from jobs.rate_limit where key = 'pgtap-core-other'), 5::numeric,
  'a pause key that is not one of the task''s buckets is ignored');
select is((select count(*)::int from jobs.rate_limit where key like 'pgtap-core-out-acct:%' and tokens = 0), 1,
  'no other task bucket is paused');

-- validation: clear errors, nothing changes
select jobs.define(p_name => 'pgtap-core-val', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-val"}', p_apply_function => 'pg_temp.apply(jsonb)');
select pg_temp.add_tasks('pgtap-core-val', 'v', 3);
select jobs.tick('pgtap-core-val');
create function pg_temp.v(p_key text, p_outcome jsonb) returns jsonb
language sql stable as $$
  select jsonb_build_object('task_id', id, 'lease_token', lease_token) || p_outcome from jobs.task where id = pg_temp.tid('pgtap-core-val', p_key)
$$;
create function pg_temp.bad_outcome(p_second jsonb) returns text
language sql as $$
  select format('select * from jobs.record_outcomes(%L)', jsonb_build_array(pg_temp.v('v01', '{"outcome": "ok"}'), p_second))
$$;
delete from apply_calls;
select throws_ok($$select * from jobs.record_outcomes('{"task_id": 1}')$$, '22023',
  'jobs.record_outcomes: expected a JSON array of outcomes, got object', 'record_outcomes takes a JSON array');
select throws_ok(pg_temp.bad_outcome('7'), '22023', 'jobs.record_outcomes: p_outcomes[1]: expected an object, got 7', 'each outcome is an object');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "ok"}') - 'task_id'), '22023',
  'jobs.record_outcomes: p_outcomes[1]: task_id is required', 'task_id is required');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "ok", "task_id": "x1"}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: task_id must be a task id (a positive integer), got "x1"', 'task_id must be an id');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "ok"}') - 'lease_token'), '22023',
  'jobs.record_outcomes: p_outcomes[1]: lease_token is required', 'lease_token is required');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "ok", "lease_token": "not-a-uuid"}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: lease_token must be a uuid, got "not-a-uuid"', 'lease_token must be a uuid');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: outcome is required (ok, retry, dead, discard or release)', 'outcome is required');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "failed"}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: outcome must be one of ok, retry, dead, discard, release; got "failed"',
  'outcome must be ok, retry, dead, discard or release');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "retry", "error": 500}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: error must be a string, got 500', 'error must be a string');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "retry", "after": "10"}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: after must be a number of seconds, got "10"', 'after must be a number');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "retry", "after": -1}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: after must be >= 0 seconds, got -1', 'after must be >= 0');
select throws_ok(pg_temp.bad_outcome(pg_temp.v('v02', '{"outcome": "retry", "pause": ["k"]}')), '22023',
  'jobs.record_outcomes: p_outcomes[1]: pause must be a rate key (a string), got ["k"]', 'pause must be a string');
select is((select array_agg(key || '=' || state order by key) from jobs.task where job_name = 'pgtap-core-val'),
  array['v01=running', 'v02=running', 'v03=running'], 'a refused group changes nothing, not even its valid outcomes');
select is((select count(*)::int from apply_calls), 0, '... and calls no apply function');
insert into overrides values ('v02', 'succeeded', null, null);
select throws_ok(format('select * from jobs.record_outcomes(%L)', jsonb_build_array(pg_temp.v('v01', '{"outcome": "ok"}'), pg_temp.v('v02', '{"outcome": "ok"}'))),
  '22023',
  format('jobs.record_outcomes: %s returned outcome succeeded for task %s; an apply function may only change an outcome to discard, dead or retry (or null to keep it)',
         'pg_temp.apply(jsonb)'::regprocedure, pg_temp.tid('pgtap-core-val', 'v02')),
  'an apply function may only change an outcome to discard, dead or retry');
select is((select array_agg(key || '=' || state order by key) from jobs.task where job_name = 'pgtap-core-val'),
  array['v01=running', 'v02=running', 'v03=running'], '... and the refused group changes nothing');
select is((select array_agg(r.state) from jobs.record_outcomes(jsonb_build_array(
             pg_temp.v('v01', '{"outcome": "ok"}'), pg_temp.v('v01', '{"outcome": "dead"}'))) r),
  array['succeeded', 'lease_lost'], 'a task given twice: the first outcome counts, the second finds its lease gone');
select is((select count(*)::int from jobs.record_outcomes('[]')), 0, 'an empty group records nothing');

-- jobs.report -----------------------------------------------------------------------------------------
select jobs.define(p_name => 'pgtap-core-rep', p_target_function => 'pgtap-fn', p_discover_function => 'pg_temp.discover(jsonb)',
                   p_config => '{"job": "pgtap-core-rep"}', p_batch_size => 2, p_max_in_flight => 1,
                   p_context_function => 'pg_temp.ctx(jsonb)');
insert into jobs.task (job_name, key) select 'pgtap-core-rep', 'r' || g from generate_series(1, 6) g;
select jobs.tick('pgtap-core-rep');
create temp table rep as select batch_id from pg_temp.task('pgtap-core-rep', 'r1');
insert into r values ('rep', jobs.report(
  jsonb_build_array(
    jsonb_build_object('task_id', pg_temp.tid('pgtap-core-rep', 'r1'), 'lease_token', pg_temp.tok('pgtap-core-rep', 'r1'), 'outcome', 'ok'),
    jsonb_build_object('task_id', pg_temp.tid('pgtap-core-rep', 'r2'), 'lease_token', gen_random_uuid(), 'outcome', 'ok')),
  jsonb_build_array(jsonb_build_object('batch_id', (select batch_id from rep), 'count', 1),
                    jsonb_build_object('batch_id', (select batch_id from rep), 'count', 1))));
select is((select array(select k from jsonb_object_keys(v) k order by k collate "C") from r where name = 'rep'), array['claimed', 'outcomes'],
  'report answers {outcomes, claimed}');
select is((select v -> 'outcomes' from r where name = 'rep'),
  jsonb_build_array(jsonb_build_object('task_id', pg_temp.tid('pgtap-core-rep', 'r1'), 'state', 'succeeded'),
                    jsonb_build_object('task_id', pg_temp.tid('pgtap-core-rep', 'r2'), 'state', 'lease_lost')),
  'each outcome decided on its own lease: a lost one does not fail the group');
select is((select state from pg_temp.task('pgtap-core-rep', 'r1')), 'succeeded', '(the outcome is recorded)');
select is(
  (select jsonb_agg(e order by (e ->> 'task_id')::bigint) from r, jsonb_array_elements(v -> 'claimed') e where name = 'rep'),
  (select jsonb_agg(jsonb_build_object('batch_id', batch_id, 'task_id', id, 'lease_token', lease_token, 'attempt', attempts,
                                       'payload', payload, 'context', jsonb_build_object('secret', 'tok-' || key)) order by id)
     from jobs.task where job_name = 'pgtap-core-rep' and key in ('r3', 'r4')),
  'the claims of one batch add up (1 + 1): the next two tasks, leased into the batch, with their context');
select is((select state || ':' || batch_id from pg_temp.task('pgtap-core-rep', 'r3')), 'running:' || (select batch_id from rep),
  '(claimed into the caller''s batch)');
select is(jobs.report(null, null), '{"outcomes": [], "claimed": []}'::jsonb, 'report with nothing to report does nothing');
select is(jobs.report('[]', jsonb_build_array(jsonb_build_object('batch_id', (select batch_id from rep), 'count', 0))),
  '{"outcomes": [], "claimed": []}'::jsonb, 'a claim of 0 claims nothing');
select throws_ok($$select jobs.report('[]', '{"batch_id": 1}')$$, '22023',
  'jobs.report: p_claims must be a JSON array of {"batch_id", "count"}, got object', 'p_claims must be an array');
select throws_ok(format('select jobs.report(%L, %L)',
    jsonb_build_array(jsonb_build_object('task_id', pg_temp.tid('pgtap-core-rep', 'r4'), 'lease_token', pg_temp.tok('pgtap-core-rep', 'r4'), 'outcome', 'ok')),
    jsonb_build_array(jsonb_build_object('batch_id', (select batch_id from rep)))),
  '22023', 'jobs.report: p_claims[0]: count must be an integer >= 0, got nothing', 'a claim needs a count');
select throws_ok($$select jobs.report('[]', '[{"batch_id": "b", "count": 1}]')$$, '22023',
  'jobs.report: p_claims[0]: batch_id must be a batch id (a positive integer), got "b"', 'a claim needs a batch id');
select is((select state from pg_temp.task('pgtap-core-rep', 'r4')), 'running', 'a refused report records none of its outcomes');
select throws_ok($$select jobs.report('[{"outcome": "ok"}]', '[]')$$, '22023', 'jobs.record_outcomes: p_outcomes[0]: task_id is required',
  'its outcomes are checked as record_outcomes checks them');

-- jobs.run_now ----------------------------------------------------------------------------------------
select pg_temp.define('pgtap-core-run');
insert into due values ('pgtap-core-run', 'x', '{}'), ('pgtap-core-run', 'y', '{}');
insert into r values ('run', jobs.run_now('pgtap-core-run'));
select is((select array(select k from jsonb_object_keys(v) k order by k collate "C") from r where name = 'run'),
  array['batches_in_flight', 'claimed', 'discovered', 'dispatched_requests', 'error', 'job', 'queued', 'reaped', 'run_id'],
  'run_now returns the tick summary');
select is((select row(v ->> 'job', (v ->> 'discovered')::int, (v ->> 'claimed')::int, (v ->> 'dispatched_requests')::int)::text from r where name = 'run'),
  row('pgtap-core-run', 2, 2, 1)::text, '... of one tick: discovered, claimed, dispatched');
select is((select trigger from jobs.run where id = (select (v ->> 'run_id')::bigint from r where name = 'run')), 'manual',
  'run_now records a manual run');
select throws_ok($$select jobs.run_now('pgtap-core-nope')$$, 'P0002', 'jobs.tick: no job named pgtap-core-nope', 'run_now of an unknown job says so');
select ok(not has_function_privilege('anon', 'jobs.run_now(text)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.run_now(text)', 'EXECUTE')
          and not has_function_privilege('public', 'jobs.run_now(text)', 'EXECUTE'),
  'run_now is not executable by PUBLIC, anon or authenticated');
select ok(not has_function_privilege('anon', 'jobs.report(jsonb,jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.record_outcomes(jsonb)', 'EXECUTE')
          and not has_function_privilege('public', 'jobs.claim_tasks(bigint,int)', 'EXECUTE')
          and not has_function_privilege('public', 'jobs.task_contexts(bigint[],uuid[])', 'EXECUTE')
          and not has_function_privilege('public', 'jobs.size_rate_limits(text,jsonb)', 'EXECUTE'),
  'nor are report, record_outcomes, claim_tasks, task_contexts and size_rate_limits');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p where p.pronamespace = 'jobs'::regnamespace and p.prosecdef),
  null, 'nothing in jobs is SECURITY DEFINER');

-- heartbeat (last: it disables every other job, so it holds their row locks only briefly) ----------------------
select pg_temp.define('pgtap-core-hb');
select pg_temp.add_tasks('pgtap-core-hb', 'h', 3);
update jobs.job set enabled = false where name <> 'pgtap-core-hb' and enabled;
select is(jobs.heartbeat(), 3, 'heartbeat claims the queued due work of an enabled job');
select is((select count(*)::int from jobs.task where job_name = 'pgtap-core-hb' and state = 'running'), 3, 'its tasks are running');
select is((select count(*)::int from req where job_name = 'pgtap-core-hb'), 1, 'in one dispatched request');

-- Dispatch needs only the project URL from Vault: no key is stored for it.
delete from vault.secrets where name = 'service_key';
select ok(jobs.dispatch_secrets_present(), 'dispatch needs only project_url in Vault (no service_key)');
select is((select jobs.tick('pgtap-core-hb') ->> 'error'), null, '... and a tick dispatches without it');

select * from finish();
rollback;
