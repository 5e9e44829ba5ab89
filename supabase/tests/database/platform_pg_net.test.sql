-- The local pg_net stand-in (supabase/local/extensions/pg_net--0.20.4.sql) has the SQL surface
-- of supabase/pg_net 0.20.4, and enqueues requests transactionally like it.
-- Needs: supabase/local/platform.sql, create extension pg_net with schema extensions,
-- create extension pgtap with schema extensions.
begin;
select plan(112);

-- extension and schema ----------------------------------------------------------------------
select has_extension('pg_net', 'pg_net is installed');
select is((select extversion from pg_extension where extname = 'pg_net'), '0.20.4', 'pg_net reports version 0.20.4');
select is((select extnamespace::regnamespace::text from pg_extension where extname = 'pg_net'), 'extensions', 'pg_net is created "with schema extensions"');
select has_schema('net', 'its objects live in schema net');
select ok(has_schema_privilege('public', 'net', 'USAGE'), 'PUBLIC has USAGE on schema net');

-- types -------------------------------------------------------------------------------------
select has_domain('net', 'http_method', 'domain net.http_method exists');
select is((select format_type(typbasetype, typtypmod) from pg_type where oid = 'net.http_method'::regtype), 'text', 'net.http_method is a text domain');
select lives_ok($$select 'Get'::net.http_method, 'POST'::net.http_method, 'delete'::net.http_method$$, 'net.http_method accepts get/post/delete in any case');
select throws_ok($$select 'PUT'::net.http_method$$, '23514', null, 'net.http_method rejects PUT');
select has_enum('net', 'request_status', 'enum net.request_status exists');
select enum_has_labels('net', 'request_status', array['PENDING', 'SUCCESS', 'ERROR'], 'net.request_status labels');
select has_composite('net', 'http_response', 'type net.http_response exists');
select is(
  (select array_agg(attname::text || ' ' || format_type(atttypid, atttypmod) order by attnum) from pg_attribute where attrelid = 'net.http_response'::regclass and attnum > 0),
  array['status_code integer', 'headers jsonb', 'body text'], 'net.http_response fields');
select has_composite('net', 'http_response_result', 'type net.http_response_result exists');
select is(
  (select array_agg(attname::text || ' ' || format_type(atttypid, atttypmod) order by attnum) from pg_attribute where attrelid = 'net.http_response_result'::regclass and attnum > 0),
  array['status net.request_status', 'message text', 'response net.http_response'], 'net.http_response_result fields');

-- net.http_request_queue --------------------------------------------------------------------
select has_table('net', 'http_request_queue', 'net.http_request_queue exists');
select is((select relpersistence::text from pg_class where oid = 'net.http_request_queue'::regclass), 'u', 'net.http_request_queue is UNLOGGED');
select columns_are('net', 'http_request_queue', array['id', 'method', 'url', 'headers', 'body', 'timeout_milliseconds'], 'net.http_request_queue columns');
select col_type_is('net', 'http_request_queue', 'id', 'bigint', 'queue.id is bigint');
select col_not_null('net', 'http_request_queue', 'id', 'queue.id is not null');
select col_default_is('net', 'http_request_queue', 'id', $$nextval('net.http_request_queue_id_seq'::regclass)$$, 'queue.id is a bigserial');
select col_type_is('net', 'http_request_queue', 'method', 'net', 'http_method', 'queue.method is net.http_method');
select col_not_null('net', 'http_request_queue', 'method', 'queue.method is not null');
select col_type_is('net', 'http_request_queue', 'url', 'text', 'queue.url is text');
select col_not_null('net', 'http_request_queue', 'url', 'queue.url is not null');
select col_type_is('net', 'http_request_queue', 'headers', 'jsonb', 'queue.headers is jsonb');
select col_is_null('net', 'http_request_queue', 'headers', 'queue.headers is nullable (since 0.19.3)');
select col_type_is('net', 'http_request_queue', 'body', 'bytea', 'queue.body is bytea');
select col_is_null('net', 'http_request_queue', 'body', 'queue.body is nullable');
select col_type_is('net', 'http_request_queue', 'timeout_milliseconds', 'integer', 'queue.timeout_milliseconds is integer');
select col_not_null('net', 'http_request_queue', 'timeout_milliseconds', 'queue.timeout_milliseconds is not null');
-- pg_init_privs keeps what the extension script granted; Duework's migrations revoke it again
-- (jobs_core.test.sql), so the current ACLs no longer show pg_net's own grants.
select ok((select array_to_string(initprivs, ',') ~ '(^|,)=arwdDxt/' from pg_init_privs where objoid = 'net.http_request_queue'::regclass and objsubid = 0),
  'the script grants PUBLIC all privileges on the queue, as pg_net does');
select ok((select array_to_string(initprivs, ',') ~ '(^|,)=rwU/' from pg_init_privs where objoid = 'net.http_request_queue_id_seq'::regclass and objsubid = 0),
  'and all privileges on the queue sequence');

-- net._http_response ------------------------------------------------------------------------
select has_table('net', '_http_response', 'net._http_response exists');
select is((select relpersistence::text from pg_class where oid = 'net._http_response'::regclass), 'u', 'net._http_response is UNLOGGED');
select columns_are('net', '_http_response', array['id', 'status_code', 'content_type', 'headers', 'content', 'timed_out', 'error_msg', 'created'], 'net._http_response columns');
select col_type_is('net', '_http_response', 'id', 'bigint', 'response.id is bigint');
select col_is_null('net', '_http_response', 'id', 'response.id is nullable');
select col_type_is('net', '_http_response', 'status_code', 'integer', 'response.status_code is integer');
select col_is_null('net', '_http_response', 'status_code', 'response.status_code is nullable');
select col_type_is('net', '_http_response', 'content_type', 'text', 'response.content_type is text');
select col_is_null('net', '_http_response', 'content_type', 'response.content_type is nullable');
select col_type_is('net', '_http_response', 'headers', 'jsonb', 'response.headers is jsonb');
select col_is_null('net', '_http_response', 'headers', 'response.headers is nullable');
select col_type_is('net', '_http_response', 'content', 'text', 'response.content is text');
select col_is_null('net', '_http_response', 'content', 'response.content is nullable');
select col_type_is('net', '_http_response', 'timed_out', 'boolean', 'response.timed_out is boolean');
select col_is_null('net', '_http_response', 'timed_out', 'response.timed_out is nullable');
select col_type_is('net', '_http_response', 'error_msg', 'text', 'response.error_msg is text');
select col_is_null('net', '_http_response', 'error_msg', 'response.error_msg is nullable');
select col_type_is('net', '_http_response', 'created', 'timestamp with time zone', 'response.created is timestamptz');
select col_not_null('net', '_http_response', 'created', 'response.created is not null');
select col_default_is('net', '_http_response', 'created', 'now()', 'response.created defaults to now()');
select has_index('net', '_http_response', '_http_response_created_idx', array['created'], 'net._http_response has its index on created');
select ok((select array_to_string(initprivs, ',') ~ '(^|,)=arwdDxt/' from pg_init_privs where objoid = 'net._http_response'::regclass and objsubid = 0),
  'the script grants PUBLIC all privileges on responses, as pg_net does');

-- functions: signatures, return types, volatility --------------------------------------------
select has_function('net', 'http_get', array['text', 'jsonb', 'jsonb', 'integer'], 'net.http_get(url, params, headers, timeout_milliseconds)');
select function_returns('net', 'http_get', array['text', 'jsonb', 'jsonb', 'integer'], 'bigint', 'net.http_get returns bigint');
select volatility_is('net', 'http_get', array['text', 'jsonb', 'jsonb', 'integer'], 'volatile', 'net.http_get is volatile');
select is(pg_get_function_arguments('net.http_get(text,jsonb,jsonb,integer)'::regprocedure),
  $$url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, timeout_milliseconds integer DEFAULT 5000$$,
  'net.http_get argument names and defaults');

select has_function('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer'], 'net.http_post(url, body, params, headers, timeout_milliseconds)');
select function_returns('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer'], 'bigint', 'net.http_post returns bigint');
select volatility_is('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer'], 'volatile', 'net.http_post is volatile');
select is(pg_get_function_arguments('net.http_post(text,jsonb,jsonb,jsonb,integer)'::regprocedure),
  $$url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb, timeout_milliseconds integer DEFAULT 5000$$,
  'net.http_post argument names and defaults (Content-Type header, 5000 ms)');

select has_function('net', 'http_delete', array['text', 'jsonb', 'jsonb', 'integer', 'jsonb'], 'net.http_delete(url, params, headers, timeout_milliseconds, body)');
select function_returns('net', 'http_delete', array['text', 'jsonb', 'jsonb', 'integer', 'jsonb'], 'bigint', 'net.http_delete returns bigint');
select volatility_is('net', 'http_delete', array['text', 'jsonb', 'jsonb', 'integer', 'jsonb'], 'volatile', 'net.http_delete is volatile');
select is(pg_get_function_arguments('net.http_delete(text,jsonb,jsonb,integer,jsonb)'::regprocedure),
  $$url text, params jsonb DEFAULT '{}'::jsonb, headers jsonb DEFAULT '{}'::jsonb, timeout_milliseconds integer DEFAULT 5000, body jsonb DEFAULT NULL::jsonb$$,
  'net.http_delete argument names and defaults');

select has_function('net', '_urlencode_string', array['character varying'], 'net._urlencode_string(varchar)');
select function_returns('net', '_urlencode_string', array['character varying'], 'text', 'net._urlencode_string returns text');
select volatility_is('net', '_urlencode_string', array['character varying'], 'immutable', 'net._urlencode_string is immutable');
select has_function('net', '_encode_url_with_params_array', array['text', 'text[]'], 'net._encode_url_with_params_array(text, text[])');
select function_returns('net', '_encode_url_with_params_array', array['text', 'text[]'], 'text', 'net._encode_url_with_params_array returns text');
select volatility_is('net', '_encode_url_with_params_array', array['text', 'text[]'], 'immutable', 'net._encode_url_with_params_array is immutable');
select has_function('net', '_await_response', array['bigint'], 'net._await_response(bigint)');
select function_returns('net', '_await_response', array['bigint'], 'boolean', 'net._await_response returns boolean');
select has_function('net', '_http_collect_response', array['bigint', 'boolean'], 'net._http_collect_response(bigint, boolean)');
select function_returns('net', '_http_collect_response', array['bigint', 'boolean'], 'net.http_response_result', 'net._http_collect_response returns net.http_response_result');
select is(pg_get_function_arguments('net._http_collect_response(bigint,boolean)'::regprocedure), 'request_id bigint, async boolean DEFAULT true', 'net._http_collect_response arguments');
select has_function('net', 'http_collect_response', array['bigint', 'boolean'], 'net.http_collect_response(bigint, boolean)');
select function_returns('net', 'http_collect_response', array['bigint', 'boolean'], 'net.http_response_result', 'net.http_collect_response returns net.http_response_result');
select has_function('net', 'check_worker_is_up', array[]::text[], 'net.check_worker_is_up()');
select function_returns('net', 'check_worker_is_up', array[]::text[], 'void', 'net.check_worker_is_up returns void');
select has_function('net', 'worker_restart', array[]::text[], 'net.worker_restart()');
select function_returns('net', 'worker_restart', array[]::text[], 'boolean', 'net.worker_restart returns boolean');
select has_function('net', 'wait_until_running', array[]::text[], 'net.wait_until_running()');
select function_returns('net', 'wait_until_running', array[]::text[], 'void', 'net.wait_until_running returns void');
select has_function('net', 'wake', array[]::text[], 'net.wake()');
select function_returns('net', 'wake', array[]::text[], 'void', 'net.wake returns void');
select is(
  (select count(*)::int from pg_proc where pronamespace = 'net'::regnamespace),
  12, 'net has exactly pg_net''s 12 functions');
select ok(not exists (select 1 from pg_init_privs where classoid = 'pg_proc'::regclass and objoid = 'net.http_post(text,jsonb,jsonb,jsonb,integer)'::regprocedure),
  'net.http_post is created with the default ACL (EXECUTE to PUBLIC), as in pg_net');

-- URL encoding (curl_easy_escape + libcurl's URL API) -----------------------------------------
select is(net._urlencode_string('a b/é~-._'), 'a%20b%2F%C3%A9~-._', '_urlencode_string escapes like curl_easy_escape (uppercase %XX)');
select is(net._urlencode_string(null), null, '_urlencode_string(NULL) is NULL');
select is(net._encode_url_with_params_array('http://example.com', array['a=1', 'b=%2F']), 'http://example.com/?a=1&b=%2f',
  'params are appended like CURLU_APPENDQUERY (path "/" added, %XX lower-cased)');
select is(net._encode_url_with_params_array('https://example.com/p?x=1#f', array['y=2']), 'https://example.com/p?x=1&y=2#f',
  'params join an existing query with "&", before the fragment');
select throws_ok($$select net.http_get('example.com/no-scheme')$$, 'XX000', 'invalid URL "example.com/no-scheme": Bad scheme',
  'a URL without a scheme is rejected with libcurl''s message and SQLSTATE XX000 (pg_net''s ereport(ERROR) has no errcode)');
select throws_ok($$select net.http_get('localhost:6666')$$, 'XX000', 'invalid URL "localhost:6666": Unsupported URL scheme',
  'an unknown scheme is rejected with SQLSTATE XX000 too');

-- settings: pg_net's GUCs with pg_net's defaults (placeholders in the local stack's config) ------
select is(current_setting('pg_net.batch_size'), '200', 'show pg_net.batch_size: 200');
select is(current_setting('pg_net.ttl'), '6 hours', 'show pg_net.ttl: 6 hours');
select is(current_setting('pg_net.database_name'), 'postgres', 'show pg_net.database_name: postgres');
select is(current_setting('pg_net.username'), '', 'show pg_net.username: empty (the bootstrap user)');

-- behaviour: the Content-Type rule of http_post ---------------------------------------------
select throws_ok(
  $$select net.http_post('http://example.com/hook', headers := '{"content-type": "text/plain"}'::jsonb)$$,
  'P0001', 'Content-Type header must be "application/json"',
  'http_post rejects a non-JSON Content-Type');
select throws_ok(
  $$select net.http_post('http://example.com/hook', headers := '{"Content-Type": "application/json; charset=utf-8"}'::jsonb)$$,
  'P0001', 'Content-Type header must be "application/json"',
  'http_post rejects even application/json with a charset, as pg_net does');

-- behaviour: what a call puts in the queue --------------------------------------------------
create temp table _calls (name text primary key, id bigint);
insert into _calls values ('post', net.http_post(
  url := 'http://example.com/hook',
  body := '{"job": "refresh", "n": 1}'::jsonb,
  params := '{"a b": "c/d"}'::jsonb,
  headers := '{"Content-Type": "application/json", "apikey": "sb_secret_x"}'::jsonb,
  timeout_milliseconds := 1234));
insert into _calls values ('post_default_headers', net.http_post('http://example.com/hook2', headers := '{"X-Only": "1"}'::jsonb));
insert into _calls values ('get', net.http_get('http://example.com/items', '{"q": "ü"}'::jsonb));
insert into _calls values ('delete', net.http_delete('http://example.com/items/1', body := '{"why": "test"}'::jsonb));

-- (rows are compared as text: results_eq cannot pick a collation for the text columns)
select is(
  (select row(method::text, url, headers, convert_from(body, 'UTF8'), timeout_milliseconds)::text
   from net.http_request_queue where id = (select id from _calls where name = 'post')),
  row('POST'::text, 'http://example.com/hook?a%20b=c%2fd'::text,
      '{"Content-Type": "application/json", "apikey": "sb_secret_x"}'::jsonb,
      '{"n": 1, "job": "refresh"}'::text, 1234)::text,
  'http_post queues method, URL with encoded params, headers, jsonb body text and timeout');
select is(
  (select headers from net.http_request_queue where id = (select id from _calls where name = 'post_default_headers')),
  '{"X-Only": "1", "Content-Type": "application/json"}'::jsonb,
  'http_post adds Content-Type: application/json when the headers omit it');
select is(
  (select row(method::text, url, headers, body, timeout_milliseconds)::text
   from net.http_request_queue where id = (select id from _calls where name = 'get')),
  row('GET'::text, 'http://example.com/items?q=%c3%bc'::text, '{}'::jsonb, null::bytea, 5000)::text,
  'http_get queues GET, no body, default headers {} and timeout 5000');
select is(
  (select row(method::text, convert_from(body, 'UTF8'))::text
   from net.http_request_queue where id = (select id from _calls where name = 'delete')),
  row('DELETE'::text, '{"why": "test"}'::text)::text,
  'http_delete queues DELETE with its optional body');
select ok(
  (select id from _calls where name = 'post') < (select id from _calls where name = 'delete'),
  'request ids come from the queue''s sequence, in call order');

-- behaviour: enqueuing is transactional -----------------------------------------------------
savepoint before_rolled_back_call;
select isnt(net.http_get('http://example.com/rolled-back'), null, 'a call inside a savepoint returns an id');
select is((select count(*)::int from net.http_request_queue where url = 'http://example.com/rolled-back'), 1, 'the call is queued inside its transaction');
rollback to savepoint before_rolled_back_call;
select is((select count(*)::int from net.http_request_queue where url = 'http://example.com/rolled-back'), 0, 'a rolled-back call leaves nothing in the queue');

-- responses are read from net._http_response -------------------------------------------------
insert into net._http_response (id, status_code, headers, content, timed_out) values (-42, 201, '{"x": "y"}', 'ok', false);
select is(
  net._http_collect_response(-42),
  ('SUCCESS', 'ok', (201, '{"x": "y"}'::jsonb, 'ok')::net.http_response)::net.http_response_result,
  '_http_collect_response returns SUCCESS with the stored response');
select is(
  (net._http_collect_response(-43)).message, 'request matching request_id not found',
  '_http_collect_response reports a missing response as pg_net does');

select * from finish();
rollback;
