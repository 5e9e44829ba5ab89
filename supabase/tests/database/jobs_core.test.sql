-- The jobs core (supabase/migrations/20261123100000_jobs_core.sql): schema and state machine,
-- discovery, claiming, dispatch, outcomes, leases, reaping, release, retries, rate limits, prune,
-- privileges, heartbeat and the claim query's index.
-- Needs: the migrations, create extension pgtap with schema extensions, Vault secrets
-- project_url and service_key (created here, inside the transaction, when missing).
-- Runs in one transaction that is rolled back; the jobs it uses are its own ('pgtap-core-*'),
-- discovered by a function in pg_temp. The SKIP LOCKED check alone commits a disabled job
-- through dblink (a second session) and deletes it again before the end.
begin;
set local search_path = public, extensions;
select plan(155);

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
  and not jobs.task_transition_allowed('failed', 'running'),
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
  $$insert into jobs.job (name, target_function, discover_function, enabled) values (%L, 'pgtap-fn', 'social.discover_due_tokens(jsonb)', false);
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
select ok(not has_schema_privilege('anon', 'social', 'USAGE'), 'anon has no usage on schema social');
select ok(not has_schema_privilege('authenticated', 'social', 'USAGE'), 'authenticated has no usage on schema social');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where p.pronamespace in ('jobs'::regnamespace, 'social'::regnamespace)
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
    where p.pronamespace in ('jobs'::regnamespace, 'social'::regnamespace)
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

-- heartbeat (last: it disables every other job, so it holds their row locks only briefly) ----------------------
select pg_temp.define('pgtap-core-hb');
select pg_temp.add_tasks('pgtap-core-hb', 'h', 3);
update jobs.job set enabled = false where name <> 'pgtap-core-hb' and enabled;
select is(jobs.heartbeat(), 3, 'heartbeat claims the queued due work of an enabled job');
select is((select count(*)::int from jobs.task where job_name = 'pgtap-core-hb' and state = 'running'), 3, 'its tasks are running');
select is((select count(*)::int from req where job_name = 'pgtap-core-hb'), 1, 'in one dispatched request');

select * from finish();
rollback;
