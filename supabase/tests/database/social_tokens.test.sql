-- Social tokens (supabase/migrations/20261123100100_social_tokens.sql): who can read
-- public.social_accounts, which tokens are due, the leased credentials, the outcome calls of the
-- refresh-token function, and the public entry point refresh_expired_youtube_tokens().
-- Needs: the migrations, create extension pgtap with schema extensions.
-- Runs in one transaction that is rolled back. Its accounts are its own (creator ids start with
-- 'pgtap-<backend pid>-'); its tasks belong to its own job 'pgtap-social'.
begin;
set local search_path = public, extensions;
select plan(62);

-- fixtures ------------------------------------------------------------------------------------
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

-- Read back as anon/authenticated, so kept in settings rather than in tables.
select set_config('pgtap.prefix', 'pgtap-' || pg_backend_pid() || '-', true);
select set_config('pgtap.alice', gen_random_uuid()::text, true);
select set_config('pgtap.bob', gen_random_uuid()::text, true);
insert into auth.users (id, email) values
  (current_setting('pgtap.alice')::uuid, current_setting('pgtap.prefix') || 'alice@example.test'),
  (current_setting('pgtap.bob')::uuid, current_setting('pgtap.prefix') || 'bob@example.test');

insert into public.social_accounts
  (creator_unique_identifier, platform, user_id, status, access_token, refresh_token, access_token_expires_at)
select current_setting('pgtap.prefix') || a.name, a.platform,
       case a.owner when 'alice' then current_setting('pgtap.alice')::uuid when 'bob' then current_setting('pgtap.bob')::uuid end,
       a.status, a.access_token, a.refresh_token, now() + a.expires_in
  from (values
    ('due',        'youtube',   'alice', 'active',       'at-due',   'rt-due',   interval '5 minutes'),
    ('unknown',    'youtube',   'bob',   'active',       null,       'rt-unknown', null),
    ('edge20',     'youtube',   null,    'active',       'at-edge',  'rt-edge',  interval '20 minutes'),
    ('fresh',      'youtube',   'alice', 'active',       'at-fresh', 'rt-fresh', interval '2 hours'),
    ('reauth',     'youtube',   null,    'needs_reauth', 'at-r',     'rt-r',     interval '1 minute'),
    ('inactive',   'youtube',   null,    'inactive',     'at-i',     'rt-i',     interval '-1 minute'),
    ('norefresh',  'youtube',   null,    'active',       'at-n',     null,       interval '-1 minute'),
    ('insta',      'instagram', null,    'active',       'at-ig',    'rt-ig',    interval '1 minute'),
    -- accounts for the outcome calls; not due, so discovery ignores them
    ('revoked',    'youtube',   null,    'active',       'at-rv',    'rt-rv',    interval '3 hours'),
    ('flaky',      'youtube',   null,    'active',       'at-fl',    'rt-fl',    interval '3 hours'),
    ('limited',    'youtube',   null,    'active',       'at-li',    'rt-li',    interval '3 hours'),
    ('gone',       'youtube',   null,    'active',       'at-go',    'rt-go',    interval '3 hours'),
    ('flip',       'youtube',   null,    'active',       'at-fp',    'rt-fp',    interval '3 hours'))
    a (name, platform, owner, status, access_token, refresh_token, expires_in);

create function pg_temp.acct(p_name text) returns public.social_accounts
language sql as $$
  select * from public.social_accounts where creator_unique_identifier = current_setting('pgtap.prefix') || p_name
$$;
create function pg_temp.aid(p_name text) returns bigint language sql as $$ select (pg_temp.acct(p_name)).id $$;
-- The names of this test's accounts among discover_due_tokens(config).
create function pg_temp.due(p_config jsonb) returns text[]
language sql as $$
  select coalesce(array_agg(substr(a.creator_unique_identifier, length(current_setting('pgtap.prefix')) + 1)
                            order by a.creator_unique_identifier), '{}')
    from social.discover_due_tokens(p_config) d
    join public.social_accounts a on a.id = d.key::bigint
   where a.creator_unique_identifier like current_setting('pgtap.prefix') || '%'
$$;

-- who can read public.social_accounts ------------------------------------------------------------
select ok(
  (select relrowsecurity from pg_class where oid = 'public.social_accounts'::regclass),
  'row level security is enabled on public.social_accounts');
select ok(not has_table_privilege('anon', 'public.social_accounts', 'SELECT'), 'anon has no SELECT on social_accounts');
select ok(not has_column_privilege('authenticated', 'public.social_accounts', 'access_token', 'SELECT')
          and not has_column_privilege('authenticated', 'public.social_accounts', 'refresh_token', 'SELECT'),
  'authenticated has no SELECT on the token columns');
select ok(not has_table_privilege('authenticated', 'public.social_accounts', 'INSERT, UPDATE, DELETE'),
  'authenticated cannot write social_accounts');

set local role anon;
select throws_ok('select id from public.social_accounts', '42501', null, 'anon cannot select from social_accounts at all');
select throws_ok('select count(*) from public.social_accounts', '42501', null, 'not even count(*)');
reset role;

select set_config('request.jwt.claims',
  json_build_object('sub', current_setting('pgtap.alice'), 'role', 'authenticated')::text, true);
set local role authenticated;
select throws_ok('select access_token from public.social_accounts', '42501', null, 'authenticated cannot select access_token');
select throws_ok('select refresh_token from public.social_accounts', '42501', null, 'authenticated cannot select refresh_token');
select throws_ok('select * from public.social_accounts', '42501', null, 'select * is refused too (it includes the tokens)');
select is(
  (select array_agg(creator_unique_identifier || ':' || status order by creator_unique_identifier) from public.social_accounts),
  array[current_setting('pgtap.prefix') || 'due:active', current_setting('pgtap.prefix') || 'fresh:active'],
  'alice sees the status of her own accounts, and only those');
select is(
  (select count(*)::int from public.social_accounts where user_id = current_setting('pgtap.bob')::uuid), 0,
  'alice does not see bob''s account even when she asks for it');
select throws_ok($$update public.social_accounts set status = 'inactive'$$, '42501', null, 'authenticated cannot update accounts');
reset role;

select set_config('request.jwt.claims',
  json_build_object('sub', current_setting('pgtap.bob'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is(
  (select array_agg(creator_unique_identifier order by creator_unique_identifier) from public.social_accounts),
  array[current_setting('pgtap.prefix') || 'unknown'], 'bob sees only his own account');
reset role;
select set_config('request.jwt.claims', '', true);
set local role authenticated;
select is((select count(*)::int from public.social_accounts), 0, 'authenticated without a user id sees nothing');
reset role;

-- discover_due_tokens --------------------------------------------------------------------------
select is(pg_temp.due('{"platform": "youtube"}'), array['due', 'unknown'],
  'due: active youtube accounts with a refresh token expiring within 15 minutes (default) or unknown');
select is(pg_temp.due('{"platform": "youtube", "margin_minutes": 30}'), array['due', 'edge20', 'unknown'],
  'the configured margin is respected');
select is(pg_temp.due('{"platform": "youtube", "margin_minutes": 1}'), array['unknown'], 'a smaller margin excludes the 5-minute token');
select is(pg_temp.due('{"platform": "instagram"}'), array['insta'], 'the platform comes from the config');
select is(
  (select array_agg(d.payload order by d.key) from social.discover_due_tokens('{"platform": "youtube"}') d
    where d.key::bigint in (pg_temp.aid('due'), pg_temp.aid('unknown'))),
  (select array_agg(jsonb_build_object('account_id', id) order by id::text) from public.social_accounts
    where id in (pg_temp.aid('due'), pg_temp.aid('unknown'))),
  'key is the account id and the payload carries only the account id (no tokens)');

-- leased credentials ------------------------------------------------------------------------------
select jobs.define('pgtap-social', 'refresh-token', 'social.discover_due_tokens(jsonb)'::regprocedure, null,
                   '{"platform": "youtube"}', 100, 5);
update jobs.job set backoff_jitter = 0 where name = 'pgtap-social';
insert into jobs.task (job_name, key, payload)
select 'pgtap-social', pg_temp.aid(n)::text, jsonb_build_object('account_id', pg_temp.aid(n))
  from unnest(array['due', 'unknown', 'revoked', 'flaky', 'limited', 'gone', 'flip']) n;
select is((select c.claimed from jobs.claim_and_dispatch((select j from jobs.job j where name = 'pgtap-social'), null) c), 7,
  'the 7 tasks are leased');
create function pg_temp.tid(p_name text) returns bigint
language sql as $$ select max(id) from jobs.task where job_name = 'pgtap-social' and key = pg_temp.aid(p_name)::text $$;
create function pg_temp.tok(p_name text) returns uuid
language sql as $$ select lease_token from jobs.task where id = pg_temp.tid(p_name) $$;
create temp table saved as
select n as name, pg_temp.tid(n) as id, pg_temp.tok(n) as token, pg_temp.aid(n) as account_id
  from unnest(array['due', 'unknown', 'revoked', 'flaky', 'limited', 'gone', 'flip']) n;

delete from public.social_accounts where id = pg_temp.aid('gone');
update public.social_accounts set status = 'needs_reauth' where id = pg_temp.aid('flip');
create temp table creds as
select * from social.leased_refresh_credentials(
  (select array_agg(id order by name) from saved),
  (select array_agg(case when name = 'limited' then gen_random_uuid() else token end order by name) from saved));
select is(
  (select array_agg(row(c.task_id, c.account_id, c.platform, c.refresh_token)::text order by c.task_id) from creds c),
  (select array_agg(row(s.id, s.account_id, 'youtube', 'rt-' || x.rt)::text order by s.id)
     from saved s join (values ('due', 'due'), ('unknown', 'unknown'), ('revoked', 'rv'), ('flaky', 'fl')) x (name, rt) using (name)),
  'leased_refresh_credentials returns the refresh token of each task held under a correct lease token');
select is((select count(*)::int from creds where task_id = (select id from saved where name = 'limited')), 0,
  'a wrong lease token gets no credentials');
select is((select state from jobs.task where id = (select id from saved where name = 'limited')), 'running', 'and discards nothing');
select is(
  (select row(state, last_error)::text from jobs.task where id = (select id from saved where name = 'gone')),
  row('failed', 'account no longer exists')::text, 'a leased task whose account was deleted is discarded (failed)');
select is(
  (select row(state, last_error)::text from jobs.task where id = (select id from saved where name = 'flip')),
  row('failed', 'account is needs_reauth; nothing to refresh')::text, 'a leased task whose account needs reauth is discarded (failed)');

-- record_token_refresh ----------------------------------------------------------------------------
select throws_ok(
  format('select social.record_token_refresh(%s, %L, %L, 3600)', (select id from saved where name = 'due'), gen_random_uuid(), 'at-evil'),
  'DWL01', null, 'record_token_refresh with a forged lease token raises DWL01');
select is((select row(access_token, refresh_count)::text from pg_temp.acct('due')), row('at-due', 0)::text, 'and the account is unchanged');
select throws_ok(
  format('select social.record_token_refresh(%s, %L, %L, 0)', (select id from saved where name = 'unknown'), (select token from saved where name = 'unknown'), 'at-zero'),
  '22023', null, 'expires_in 0 is refused');
select throws_ok(
  format('select social.record_token_refresh(%s, %L, %L, -5)', (select id from saved where name = 'unknown'), (select token from saved where name = 'unknown'), 'at-neg'),
  '22023', null, 'a negative expires_in is refused');
select is(
  (select row(a.access_token, a.refresh_count, t.state)::text from pg_temp.acct('unknown') a, jobs.task t
    where t.id = (select id from saved where name = 'unknown')),
  row(null::text, 0, 'running')::text, 'and nothing changed');

create temp table refreshed as
select social.record_token_refresh((select id from saved where name = 'due'), (select token from saved where name = 'due'),
                                   'at-new-1', 3600) as v;
select is((select v from refreshed), jsonb_build_object('state', 'succeeded', 'expires_at', now() + interval '3600 seconds'),
  'record_token_refresh answers succeeded with the new expiry');
select is(
  (select row(access_token, refresh_token, access_token_expires_at, refresh_count, last_refreshed_at, status)::text from pg_temp.acct('due')),
  row('at-new-1', 'rt-due', now() + interval '1 hour', 1, now(), 'active')::text,
  'the access token and expiry are stored, the refresh token kept when none was sent, refresh_count + 1');
select is(
  (select row(state, result)::text from jobs.task where id = (select id from saved where name = 'due')),
  row('succeeded', jsonb_build_object('account_id', pg_temp.aid('due'), 'expires_at', now() + interval '1 hour'))::text,
  'the task succeeded with a result of account id and expiry');
select ok(
  (select result::text !~ '(at-|rt-)' from jobs.task where id = (select id from saved where name = 'due')),
  'the task result holds no token value');
select throws_ok(
  format('select social.record_token_refresh(%s, %L, %L, 3600)', (select id from saved where name = 'due'), (select token from saved where name = 'due'), 'at-late'),
  'DWL01', null, 'a second refresh on the finished task is refused');
select is((select access_token from pg_temp.acct('due')), 'at-new-1', 'the late call wrote nothing');

select social.record_token_refresh((select id from saved where name = 'unknown'), (select token from saved where name = 'unknown'),
                                   'at-new-2', 1800, 'rt-rotated', 'openid https://www.googleapis.com/auth/youtube.readonly');
select is(
  (select row(access_token, refresh_token, access_token_expires_at, scopes, refresh_count)::text from pg_temp.acct('unknown')),
  row('at-new-2', 'rt-rotated', now() + interval '30 minutes', array['openid', 'https://www.googleapis.com/auth/youtube.readonly'], 1)::text,
  'a rotated refresh token and the granted scopes are stored');

-- record_token_failure -------------------------------------------------------------------------------
select is(
  social.record_token_failure((select id from saved where name = 'revoked'), (select token from saved where name = 'revoked'),
                              'invalid_grant: Token has been expired or revoked.', null, false, true),
  'dead', 'needs_reauth ends the task dead');
select is(
  (select row(state, attempts, finished_at)::text from jobs.task where id = (select id from saved where name = 'revoked')),
  row('dead', 1, now())::text, 'dead on attempt 1, no retries');
select is(
  (select row(status, last_error, last_error_at, access_token)::text from pg_temp.acct('revoked')),
  row('needs_reauth', 'invalid_grant: Token has been expired or revoked.', now(), 'at-rv')::text,
  'the account is marked needs_reauth with the error');

select is(
  social.record_token_failure((select id from saved where name = 'flaky'), (select token from saved where name = 'flaky'), 'Google answered HTTP 503'),
  'queued', 'a transient failure queues the task again');
select is(
  (select row(state, attempts, run_after, last_error)::text from jobs.task where id = (select id from saved where name = 'flaky')),
  row('queued', 1, now() + interval '30 seconds', 'Google answered HTTP 503')::text, 'after the job''s backoff');
select is(
  (select row(status, last_error, refresh_token)::text from pg_temp.acct('flaky')),
  row('active', 'Google answered HTTP 503', 'rt-fl')::text, 'the account keeps status active and records last_error');

select is(
  social.record_token_failure((select id from saved where name = 'limited'), (select token from saved where name = 'limited'), 'HTTP 429', 120),
  'queued', 'a rate-limited failure is queued');
select is((select run_after from jobs.task where id = (select id from saved where name = 'limited')), now() + interval '120 seconds',
  'retry_after is honoured');
select throws_ok(
  format('select social.record_token_failure(%s, %L, %L, null, false, true)', (select id from saved where name = 'limited'), (select token from saved where name = 'limited'), 'invalid_grant'),
  'DWL01', null, 'a failure reported on a stale lease raises DWL01');
select is((select row(status, last_error)::text from pg_temp.acct('limited')), row('active', 'HTTP 429')::text,
  'and the account is unchanged');
select is((select count(*)::int from jobs.task where state = 'running' and batch_id = (select batch_id from jobs.task where id = (select id from saved where name = 'due'))), 0,
  'with every task reported nothing of the batch is running');

-- privileges of the functions ------------------------------------------------------------------------
select ok(not has_function_privilege('anon', 'social.record_token_refresh(bigint,uuid,text,integer,text,text,integer)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.record_token_refresh(bigint,uuid,text,integer,text,text,integer)', 'EXECUTE'),
  'anon and authenticated cannot execute record_token_refresh');
select ok(not has_function_privilege('anon', 'social.leased_refresh_credentials(bigint[],uuid[])', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.leased_refresh_credentials(bigint[],uuid[])', 'EXECUTE'),
  'anon and authenticated cannot execute leased_refresh_credentials');
select ok(not has_function_privilege('anon', 'social.record_token_failure(bigint,uuid,text,integer,boolean,boolean)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.discover_due_tokens(jsonb)', 'EXECUTE'),
  'nor record_token_failure or discover_due_tokens');
select ok(
  (select bool_and(proconfig @> array['search_path=""']) from pg_proc where pronamespace = 'social'::regnamespace),
  'every social function pins search_path to ''''');

-- public.refresh_expired_youtube_tokens() --------------------------------------------------------------
select ok(not has_function_privilege('anon', 'public.refresh_expired_youtube_tokens()', 'EXECUTE'), 'anon cannot execute refresh_expired_youtube_tokens');
select ok(not has_function_privilege('authenticated', 'public.refresh_expired_youtube_tokens()', 'EXECUTE'), 'authenticated cannot execute it');
select ok(has_function_privilege('service_role', 'public.refresh_expired_youtube_tokens()', 'EXECUTE'), 'service_role can');
select is(
  (select row(prosecdef, proconfig)::text from pg_proc where oid = 'public.refresh_expired_youtube_tokens()'::regprocedure),
  row(true, array['search_path=""'])::text, 'it is SECURITY DEFINER with search_path ''''');
set local role anon;
select throws_ok('select public.refresh_expired_youtube_tokens()', '42501', null, 'anon calling it is refused');
reset role;
set local role authenticated;
select throws_ok('select public.refresh_expired_youtube_tokens()', '42501', null, 'authenticated calling it is refused');
reset role;
-- As service_role, in a subtransaction that is undone at once: the tick locks the shared
-- youtube-token-refresh job and its committed tasks, which other sessions use.
create function pg_temp.refresh_as_service_role() returns jsonb
language plpgsql as $$
declare
  v jsonb;
begin
  begin
    set local role service_role;
    v := public.refresh_expired_youtube_tokens();
    reset role;
    v := v || jsonb_build_object('pgtap_tasks_of_this_test',
      (select array_agg(substr(a.creator_unique_identifier, length(current_setting('pgtap.prefix')) + 1))
         from jobs.task t join public.social_accounts a on a.id::text = t.key
        where t.job_name = 'youtube-token-refresh'
          and a.creator_unique_identifier like current_setting('pgtap.prefix') || '%'));
    raise exception using errcode = 'PT999', message = v::text;
  exception when sqlstate 'PT999' then
    return sqlerrm::jsonb;
  end;
end;
$$;
insert into public.social_accounts (creator_unique_identifier, platform, refresh_token, access_token_expires_at)
values (current_setting('pgtap.prefix') || 'late', 'youtube', 'rt-late', now() + interval '1 minute');
create temp table service_call as select pg_temp.refresh_as_service_role() as v;
select is((select jsonb_typeof(v -> 'dispatched_requests') from service_call), 'number',
  'service_role runs a tick and gets jsonb with dispatched_requests');
select is((select v ->> 'job' from service_call), 'youtube-token-refresh', 'of the youtube-token-refresh job');
select is((select v -> 'pgtap_tasks_of_this_test' from service_call), '["late"]'::jsonb,
  'the tick queued this test''s one due account (the others are refreshed, not due, or not youtube)');
select is(current_user::text, 'postgres', 'the role is back to the test''s own afterwards');

select * from finish();
rollback;
