-- Social tokens (supabase/migrations/20261123100100_social_tokens.sql): who can read
-- public.social_accounts, which tokens are due, the context of a leased task (its credential:
-- social.refresh_context through jobs.task_contexts), the account write of each outcome
-- (social.apply_refreshes through jobs.record_outcome), and the public entry point
-- refresh_expired_youtube_tokens().
-- Needs: the migrations, create extension pgtap with schema extensions.
-- Runs in one transaction that is rolled back. Its accounts are its own (creator ids start with
-- 'pgtap-<backend pid>-'); its tasks belong to its own job 'pgtap-social'.
begin;
set local search_path = public, extensions;
select plan(74);

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

-- the context of leased tasks: social.refresh_context through jobs.task_contexts ----------------
select jobs.define('pgtap-social', 'refresh-token', 'social.discover_due_tokens(jsonb)'::regprocedure, null,
                   '{"platform": "youtube"}', 100, 5,
                   p_context_function => 'social.refresh_context(jsonb)',
                   p_apply_function => 'social.apply_refreshes(jsonb)',
                   p_backoff_jitter => 0);
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
create function pg_temp.sid(p_name text) returns bigint language sql as $$ select id from saved where name = p_name $$;
create function pg_temp.stok(p_name text) returns uuid language sql as $$ select token from saved where name = p_name $$;
-- One outcome of a saved task through the engine (jobs.record_outcome: apply, then the state;
-- DWL01 on a lost lease), under its own lease token.
create function pg_temp.outcome(p_name text, p_outcome jsonb) returns text
language sql as $$ select jobs.record_outcome(pg_temp.sid(p_name), pg_temp.stok(p_name), p_outcome) $$;

delete from public.social_accounts where id = pg_temp.aid('gone');
update public.social_accounts set status = 'needs_reauth' where id = pg_temp.aid('flip');
create temp table creds as
select * from jobs.task_contexts(
  (select array_agg(id order by name) from saved),
  (select array_agg(case when name = 'limited' then gen_random_uuid() else token end order by name) from saved));
select is(
  (select array_agg(row(c.task_id, c.context)::text order by c.task_id) from creds c where c.moot is null),
  (select array_agg(row(s.id, jsonb_build_object('account_id', s.account_id, 'platform', 'youtube', 'refresh_token', 'rt-' || x.rt))::text
                    order by s.id)
     from saved s join (values ('due', 'due'), ('unknown', 'unknown'), ('revoked', 'rv'), ('flaky', 'fl')) x (name, rt) using (name)),
  'task_contexts returns the account, platform and refresh token of each task held under a correct lease token');
select is((select count(*)::int from creds where task_id = pg_temp.sid('limited')), 0,
  'a wrong lease token gets no credentials');
select is((select state from jobs.task where id = pg_temp.sid('limited')), 'running', 'and discards nothing');
select is(
  (select array_agg(row(c.task_id, c.context, c.moot)::text order by c.task_id) from creds c where c.moot is not null),
  (select array_agg(x order by x) from unnest(array[
     row(pg_temp.sid('gone'), null::jsonb, 'account no longer exists')::text,
     row(pg_temp.sid('flip'), null::jsonb, 'account is needs_reauth; nothing to refresh')::text]) x),
  'moot tasks come back with their reason and no credentials');
select is(
  (select row(state, last_error)::text from jobs.task where id = pg_temp.sid('gone')),
  row('discarded', 'account no longer exists')::text, 'a leased task whose account was deleted is discarded');
select is(
  (select row(state, last_error)::text from jobs.task where id = pg_temp.sid('flip')),
  row('discarded', 'account is needs_reauth; nothing to refresh')::text, 'a leased task whose account needs reauth is discarded');

-- outcome ok: the new token (social.apply_refreshes) ------------------------------------------------
select throws_ok(
  format('select jobs.record_outcome(%s, %L, %L)', pg_temp.sid('due'), gen_random_uuid(),
         '{"outcome": "ok", "data": {"access_token": "at-evil", "expires_in": 3600}}'),
  'DWL01', null, 'an ok outcome with a forged lease token raises DWL01');
select is((select row(access_token, refresh_count)::text from pg_temp.acct('due')), row('at-due', 0)::text, 'and the account is unchanged');
select throws_ok(
  format('select jobs.record_outcome(%s, %L, %L)', pg_temp.sid('unknown'), pg_temp.stok('unknown'),
         '{"outcome": "ok", "data": {"access_token": "at-zero", "expires_in": 0}}'),
  '22023', null, 'expires_in 0 is refused');
select throws_ok(
  format('select jobs.record_outcome(%s, %L, %L)', pg_temp.sid('unknown'), pg_temp.stok('unknown'),
         '{"outcome": "ok", "data": {"access_token": "at-neg", "expires_in": -5}}'),
  '22023', null, 'a negative expires_in is refused');
select is(
  (select row(a.access_token, a.refresh_count, t.state)::text from pg_temp.acct('unknown') a, jobs.task t
    where t.id = pg_temp.sid('unknown')),
  row(null::text, 0, 'running')::text, 'and nothing changed');

select is(pg_temp.outcome('due', '{"outcome": "ok", "data": {"access_token": "at-new-1", "expires_in": 3600}}'), 'succeeded',
  'an ok outcome with the new token answers succeeded');
select is(
  (select row(access_token, refresh_token, access_token_expires_at, refresh_count, last_refreshed_at, status)::text from pg_temp.acct('due')),
  row('at-new-1', 'rt-due', now() + interval '1 hour', 1, now(), 'active')::text,
  'the access token and expiry are stored, the refresh token kept when none was sent, refresh_count + 1');
select is(
  (select row(state, result)::text from jobs.task where id = pg_temp.sid('due')),
  row('succeeded', jsonb_build_object('account_id', pg_temp.aid('due'), 'expires_at', now() + interval '1 hour'))::text,
  'the task succeeded with a result of account id and expiry');
select ok(
  (select result::text !~ '(at-|rt-)' from jobs.task where id = pg_temp.sid('due')),
  'the task result holds no token value');
select throws_ok(
  format('select jobs.record_outcome(%s, %L, %L)', pg_temp.sid('due'), pg_temp.stok('due'),
         '{"outcome": "ok", "data": {"access_token": "at-late", "expires_in": 3600}}'),
  'DWL01', null, 'a second refresh on the finished task is refused');
select is((select access_token from pg_temp.acct('due')), 'at-new-1', 'the late call wrote nothing');

select pg_temp.outcome('unknown', jsonb_build_object('outcome', 'ok', 'data', jsonb_build_object(
  'access_token', 'at-new-2', 'expires_in', 1800, 'refresh_token', 'rt-rotated',
  'scope', 'openid https://www.googleapis.com/auth/youtube.readonly')));
select is(
  (select row(access_token, refresh_token, access_token_expires_at, scopes, refresh_count)::text from pg_temp.acct('unknown')),
  row('at-new-2', 'rt-rotated', now() + interval '30 minutes', array['openid', 'https://www.googleapis.com/auth/youtube.readonly'], 1)::text,
  'a rotated refresh token and the granted scopes are stored');

-- outcomes retry / dead: the error on the account ----------------------------------------------------
select is(
  pg_temp.outcome('revoked', '{"outcome": "retry", "error": "invalid_grant: Token has been expired or revoked.", "data": {"needs_reauth": true}}'),
  'dead', 'needs_reauth ends the task dead, even when reported as a retry');
select is(
  (select row(state, attempts, finished_at)::text from jobs.task where id = pg_temp.sid('revoked')),
  row('dead', 1, now())::text, 'dead on attempt 1, no retries');
select is(
  (select row(status, last_error, last_error_at, access_token)::text from pg_temp.acct('revoked')),
  row('needs_reauth', 'invalid_grant: Token has been expired or revoked.', now(), 'at-rv')::text,
  'the account is marked needs_reauth with the error');

select is(pg_temp.outcome('flaky', '{"outcome": "retry", "error": "Google answered HTTP 503"}'),
  'queued', 'a transient failure queues the task again');
select is(
  (select row(state, attempts, run_after, last_error)::text from jobs.task where id = pg_temp.sid('flaky')),
  row('queued', 1, now() + interval '30 seconds', 'Google answered HTTP 503')::text, 'after the job''s backoff');
select is(
  (select row(status, last_error, refresh_token)::text from pg_temp.acct('flaky')),
  row('active', 'Google answered HTTP 503', 'rt-fl')::text, 'the account keeps status active and records last_error');

select is(pg_temp.outcome('limited', '{"outcome": "retry", "error": "HTTP 429", "after": 120}'),
  'queued', 'a rate-limited failure is queued');
select is((select run_after from jobs.task where id = pg_temp.sid('limited')), now() + interval '120 seconds',
  'the provider''s wait (after) is honoured');
select throws_ok(
  format('select jobs.record_outcome(%s, %L, %L)', pg_temp.sid('limited'), pg_temp.stok('limited'),
         '{"outcome": "dead", "error": "invalid_grant", "data": {"needs_reauth": true}}'),
  'DWL01', null, 'a failure reported on a stale lease raises DWL01');
select is((select row(status, last_error)::text from pg_temp.acct('limited')), row('active', 'HTTP 429')::text,
  'and the account is unchanged');
select is((select count(*)::int from jobs.task where state = 'running' and batch_id = (select batch_id from jobs.task where id = pg_temp.sid('due'))), 0,
  'with every task reported nothing of the batch is running');

-- social.refresh_context and social.apply_refreshes called directly --------------------------------
insert into public.social_accounts (creator_unique_identifier, platform, status, access_token, refresh_token)
select current_setting('pgtap.prefix') || n, p, 'active', at, rt
  from (values ('ctx-ig', 'instagram', 'IGAA-ctx', null), ('ctx-norefresh', 'youtube', 'at-nr', null)) v (n, p, at, rt);
select is(
  (select array_agg(row(c.task_id, c.context, c.moot)::text order by c.task_id) from social.refresh_context(jsonb_build_array(
     jsonb_build_object('task_id', 3, 'key', 'x', 'attempt', 1, 'payload', jsonb_build_object('account_id', pg_temp.aid('ctx-ig'))),
     jsonb_build_object('task_id', 1, 'key', 'x', 'attempt', 1, 'payload', jsonb_build_object('account_id', pg_temp.aid('fresh'))),
     jsonb_build_object('task_id', 2, 'key', 'x', 'attempt', 2, 'payload', jsonb_build_object('account_id', pg_temp.aid('inactive'))),
     jsonb_build_object('task_id', 4, 'key', 'x', 'attempt', 1, 'payload', jsonb_build_object('account_id', pg_temp.aid('ctx-norefresh'))),
     jsonb_build_object('task_id', 5, 'key', 'x', 'attempt', 1, 'payload', jsonb_build_object('account_id', -1)))) c),
  array[row(1, jsonb_build_object('account_id', pg_temp.aid('fresh'), 'platform', 'youtube', 'refresh_token', 'rt-fresh'), null::text)::text,
        row(2, null::jsonb, 'account is inactive; nothing to refresh')::text,
        row(3, jsonb_build_object('account_id', pg_temp.aid('ctx-ig'), 'platform', 'instagram', 'refresh_token', 'IGAA-ctx'), null::text)::text,
        row(4, null::jsonb, 'account has no token to refresh with; nothing to refresh')::text,
        row(5, null::jsonb, 'account no longer exists')::text],
  'refresh_context: one row per task, the credential (Instagram: its access token) or why the task is moot');
select is((select provolatile::text from pg_proc where oid = 'social.refresh_context(jsonb)'::regprocedure), 's',
  'refresh_context only reads (stable)');

create temp table applied as
select * from social.apply_refreshes(jsonb_build_array(
  jsonb_build_object('task_id', 11, 'key', 'k', 'attempt', 1, 'outcome', 'ok', 'payload', jsonb_build_object('account_id', pg_temp.aid('fresh')),
                     'data', jsonb_build_object('access_token', 'at-direct', 'expires_in', 7200, 'refresh_expires_in', 86400)),
  jsonb_build_object('task_id', 12, 'key', 'k', 'attempt', 1, 'outcome', 'ok', 'payload', jsonb_build_object('account_id', -1),
                     'data', jsonb_build_object('access_token', 'at-nobody', 'expires_in', 600)),
  jsonb_build_object('task_id', 13, 'key', 'k', 'attempt', 1, 'outcome', 'dead', 'payload', jsonb_build_object('account_id', pg_temp.aid('edge20')),
                     'error', 'unauthorized_client', 'data', jsonb_build_object('needs_reauth', true)),
  jsonb_build_object('task_id', 14, 'key', 'k', 'attempt', 3, 'outcome', 'retry', 'payload', jsonb_build_object('account_id', pg_temp.aid('insta')),
                     'error', 'HTTP 502', 'after', null, 'data', null),
  jsonb_build_object('task_id', 15, 'key', 'k', 'attempt', 1, 'outcome', 'discard', 'payload', jsonb_build_object('account_id', pg_temp.aid('ctx-ig')),
                     'error', 'not for us')));
select is(
  (select array_agg(row(task_id, outcome, error, result)::text order by task_id) from applied),
  array[row(11, null::text, null::text, jsonb_build_object('account_id', pg_temp.aid('fresh'), 'expires_at', now() + interval '2 hours'))::text,
        row(12, 'discard', 'account no longer exists', null::jsonb)::text],
  'apply_refreshes: a result for a stored token, discard for an account that is gone; no row for failures it keeps as they are');
select is((select row(access_token, access_token_expires_at, refresh_token_expires_at, refresh_token)::text from pg_temp.acct('fresh')),
  row('at-direct', now() + interval '2 hours', now() + interval '1 day', 'rt-fresh')::text,
  'the token, its expiry and the refresh token''s expiry are stored');
select is((select row(status, last_error, last_error_at)::text from pg_temp.acct('edge20')),
  row('needs_reauth', 'unauthorized_client', now())::text, 'a dead outcome with needs_reauth marks the account');
select is((select row(status, last_error)::text from pg_temp.acct('insta')), row('active', 'HTTP 502')::text,
  'a retry records the error and keeps the account active');
select is((select row(status, last_error)::text from pg_temp.acct('ctx-ig')), row('active', null::text)::text,
  'a discard writes nothing');
select throws_ok($$select * from social.apply_refreshes('{"outcome": "ok"}')$$, '22023', null,
  'an object instead of an array is refused');
select throws_ok(
  format('select * from social.apply_refreshes(%L)', jsonb_build_array(
    jsonb_build_object('task_id', 21, 'outcome', 'retry', 'error', 'x', 'payload', jsonb_build_object('account_id', pg_temp.aid('fresh'))),
    jsonb_build_object('task_id', 22, 'outcome', 'ok', 'payload', jsonb_build_object('account_id', pg_temp.aid('fresh')),
                       'data', jsonb_build_object('access_token', 'x', 'expires_in', 60, 'scope', jsonb_build_array('a'))))),
  '22023', 'social.apply_refreshes: outcome 2 (task 22): data.scope must be a string of space-separated scopes',
  'a malformed ok is refused naming the outcome, its task and the field');
select is((select last_error from pg_temp.acct('fresh')), null, '... before anything was written (not even the retry''s error)');

-- privileges of the functions ------------------------------------------------------------------------
select ok(not has_function_privilege('anon', 'social.apply_refreshes(jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.apply_refreshes(jsonb)', 'EXECUTE'),
  'anon and authenticated cannot execute apply_refreshes');
select ok(not has_function_privilege('anon', 'social.refresh_context(jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.refresh_context(jsonb)', 'EXECUTE'),
  'anon and authenticated cannot execute refresh_context');
select ok(not has_function_privilege('anon', 'social.refresh_credential(text,text,text)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'social.discover_due_tokens(jsonb)', 'EXECUTE'),
  'nor refresh_credential or discover_due_tokens');
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
select is(
  (select btrim(regexp_replace(prosrc, '\s+', ' ', 'g')) from pg_proc where oid = 'public.refresh_expired_youtube_tokens()'::regprocedure),
  'select jobs.run_now(''youtube-token-refresh'')', 'it is one line: jobs.run_now of its job');
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
