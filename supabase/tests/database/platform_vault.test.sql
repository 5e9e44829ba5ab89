-- The local Vault stand-in (supabase/local/extensions/supabase_vault--0.3.1.sql) has Vault
-- 0.3.x's SQL surface, really encrypts, and keeps secrets away from anon and authenticated.
-- Needs: supabase/local/platform.sql (which creates supabase_vault) and
-- create extension pgtap with schema extensions.
begin;
select plan(46);

-- surface -----------------------------------------------------------------------------------
select has_extension('supabase_vault', 'supabase_vault is installed');
select is((select extversion from pg_extension where extname = 'supabase_vault'), '0.3.1', 'supabase_vault reports version 0.3.1');
select has_table('vault', 'secrets', 'vault.secrets exists');
select columns_are('vault', 'secrets', array['id', 'name', 'description', 'secret', 'key_id', 'nonce', 'created_at', 'updated_at'], 'vault.secrets columns');
select col_is_pk('vault', 'secrets', 'id', 'vault.secrets.id is the primary key');
select col_type_is('vault', 'secrets', 'id', 'uuid', 'vault.secrets.id is uuid');
select col_default_is('vault', 'secrets', 'id', 'gen_random_uuid()', 'vault.secrets.id defaults to gen_random_uuid()');
select col_type_is('vault', 'secrets', 'secret', 'text', 'vault.secrets.secret is text');
select col_not_null('vault', 'secrets', 'secret', 'vault.secrets.secret is not null');
select col_not_null('vault', 'secrets', 'description', 'vault.secrets.description is not null');
select col_default_is('vault', 'secrets', 'description', '', 'vault.secrets.description defaults to ''''');
select col_type_is('vault', 'secrets', 'nonce', 'bytea', 'vault.secrets.nonce is bytea');
select ok(
  (select indisunique and pg_get_expr(indpred, indrelid) = '(name IS NOT NULL)'
   from pg_index where indrelid = 'vault.secrets'::regclass and not indisprimary),
  'vault.secrets has a unique index on name where name is not null');
select ok(
  (select 'vault.secrets'::regclass = any (extconfig) from pg_extension where extname = 'supabase_vault'),
  'vault.secrets is marked with pg_extension_config_dump');
select has_view('vault', 'decrypted_secrets', 'vault.decrypted_secrets exists');
select columns_are('vault', 'decrypted_secrets',
  array['id', 'name', 'description', 'secret', 'decrypted_secret', 'key_id', 'nonce', 'created_at', 'updated_at'],
  'vault.decrypted_secrets columns');
select has_function('vault', 'create_secret', array['text', 'text', 'text', 'uuid'], 'vault.create_secret(text, text, text, uuid)');
select function_returns('vault', 'create_secret', array['text', 'text', 'text', 'uuid'], 'uuid', 'vault.create_secret returns uuid');
select is_definer('vault', 'create_secret', array['text', 'text', 'text', 'uuid'], 'vault.create_secret is SECURITY DEFINER');
select is(pg_get_function_arguments('vault.create_secret(text,text,text,uuid)'::regprocedure),
  $$new_secret text, new_name text DEFAULT NULL::text, new_description text DEFAULT ''::text, new_key_id uuid DEFAULT NULL::uuid$$,
  'vault.create_secret argument names and defaults');
select has_function('vault', 'update_secret', array['uuid', 'text', 'text', 'text', 'uuid'], 'vault.update_secret(uuid, text, text, text, uuid)');
select function_returns('vault', 'update_secret', array['uuid', 'text', 'text', 'text', 'uuid'], 'void', 'vault.update_secret returns void');
select is_definer('vault', 'update_secret', array['uuid', 'text', 'text', 'text', 'uuid'], 'vault.update_secret is SECURITY DEFINER');
select is(pg_get_function_arguments('vault.update_secret(uuid,text,text,text,uuid)'::regprocedure),
  $$secret_id uuid, new_secret text DEFAULT NULL::text, new_name text DEFAULT NULL::text, new_description text DEFAULT NULL::text, new_key_id uuid DEFAULT NULL::uuid$$,
  'vault.update_secret argument names and defaults');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
   where p.pronamespace = 'vault'::regnamespace and p.proname in ('create_secret', 'update_secret') and p.proconfig = array['search_path=""']),
  array['vault.create_secret(text,text,text,uuid)', 'vault.update_secret(uuid,text,text,text,uuid)'],
  'both functions run with search_path = ''''');
select ok(not has_function_privilege('public', 'vault.create_secret(text,text,text,uuid)', 'EXECUTE'), 'EXECUTE on create_secret is revoked from PUBLIC');
select ok(not has_function_privilege('public', 'vault.update_secret(uuid,text,text,text,uuid)', 'EXECUTE'), 'EXECUTE on update_secret is revoked from PUBLIC');

-- round trip --------------------------------------------------------------------------------
create temp table _ids (name text primary key, id uuid);
insert into _ids values ('a', vault.create_secret('s3kr3t value é', 'duework_test_secret', 'a test secret'));

select is(
  (select decrypted_secret collate "default" from vault.decrypted_secrets where id = (select id from _ids where name = 'a')),
  's3kr3t value é', 'create_secret stores a secret that decrypted_secrets returns');
select is(
  (select row(name, description)::text from vault.decrypted_secrets where id = (select id from _ids where name = 'a')),
  row('duework_test_secret'::text, 'a test secret'::text)::text, 'name and description are stored');
select ok(
  (select secret <> 's3kr3t value é' and strpos(secret, 's3kr3t') = 0 and length(decode(secret, 'base64')) >= 32
   from vault.secrets where id = (select id from _ids where name = 'a')),
  'the secret column holds base64 ciphertext, not the plaintext');
select ok((select length(nonce) = 16 from vault.secrets where id = (select id from _ids where name = 'a')), 'each secret has a 16-byte nonce');

select lives_ok(
  $$select vault.update_secret((select id from _ids where name = 'a'), 'rotated', new_description := 'rotated key')$$,
  'update_secret changes the secret and description');
select is(
  (select row(decrypted_secret, name, description)::text from vault.decrypted_secrets where id = (select id from _ids where name = 'a')),
  row('rotated'::text, 'duework_test_secret'::text, 'rotated key'::text)::text,
  'the updated secret decrypts; NULL arguments keep the name');
select lives_ok(
  $$select vault.update_secret((select id from _ids where name = 'a'), new_name := 'duework_test_secret_renamed')$$,
  'update_secret can rename without touching the secret');
select is(
  (select decrypted_secret collate "default" from vault.decrypted_secrets where name = 'duework_test_secret_renamed'),
  'rotated', 'a rename keeps the secret');
insert into _ids values ('empty', vault.create_secret(''));
select is(
  (select decrypted_secret collate "default" from vault.decrypted_secrets where id = (select id from _ids where name = 'empty')),
  '', 'an empty secret round-trips');

-- names are unique --------------------------------------------------------------------------
select throws_ok(
  $$select vault.create_secret('other', 'duework_test_secret_renamed')$$,
  '23505', null, 'secret names are unique');
select lives_ok(
  $$select vault.create_secret('x'), vault.create_secret('y')$$,
  'any number of secrets may have no name');

-- the ciphertext is bound to its row --------------------------------------------------------
insert into _ids values ('b', vault.create_secret('other secret', 'duework_test_secret_b'));
savepoint tamper;
update vault.secrets set secret = (select secret from vault.secrets where id = (select id from _ids where name = 'a'))
where id = (select id from _ids where name = 'b');
select throws_ok(
  $$select decrypted_secret from vault.decrypted_secrets where id = (select id from _ids where name = 'b')$$,
  'P0001', 'invalid ciphertext', 'a ciphertext copied to another row does not decrypt');
rollback to savepoint tamper;

-- roles -------------------------------------------------------------------------------------
grant select on _ids to anon, authenticated, service_role;

set local role anon;
select throws_ok($$select * from vault.secrets$$, '42501', 'permission denied for schema vault', 'anon cannot select vault.secrets');
select throws_ok($$select * from vault.decrypted_secrets$$, '42501', 'permission denied for schema vault', 'anon cannot select vault.decrypted_secrets');
select throws_ok($$select vault.create_secret('x')$$, '42501', 'permission denied for schema vault', 'anon cannot execute vault.create_secret');
reset role;

set local role authenticated;
select throws_ok($$select * from vault.secrets$$, '42501', 'permission denied for schema vault', 'authenticated cannot select vault.secrets');
select throws_ok($$select * from vault.decrypted_secrets$$, '42501', 'permission denied for schema vault', 'authenticated cannot select vault.decrypted_secrets');
select throws_ok($$select vault.create_secret('x')$$, '42501', 'permission denied for schema vault', 'authenticated cannot execute vault.create_secret');
reset role;

set local role service_role;
select is(
  (select decrypted_secret collate "default" from vault.decrypted_secrets where name = 'duework_test_secret_b'),
  'other secret', 'service_role can read vault.decrypted_secrets');
reset role;

select * from finish();
rollback;
