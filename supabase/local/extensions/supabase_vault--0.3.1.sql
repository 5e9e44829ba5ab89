-- =============================================================================================
-- supabase_vault 0.3.1 — LOCAL STAND-IN (Duework local stack only; never installed on a hosted
-- project)
-- =============================================================================================
--
-- Why this exists: Vault is a C extension (libsodium) that is not packaged for Debian, and
-- hosted projects have it pre-installed. The local stack's platform.sql does
-- `create extension if not exists supabase_vault with schema vault`, and migrations and seeds
-- call vault.create_secret / vault.update_secret and read vault.decrypted_secrets exactly as on
-- hosted Supabase. This SQL-only extension gives them the same surface as supabase/vault 0.3.x
-- (sql/supabase_vault--0.3.0.sql; 0.3.1 has no SQL changes): the same table, index, view,
-- function signatures, SECURITY DEFINER + search_path = '', REVOKE from PUBLIC and
-- pg_extension_config_dump, plus the grants hosted Supabase adds after creating the extension
-- (postgres and service_role: schema usage, select/delete on the table and view, execute on
-- create_secret, update_secret and _crypto_aead_det_decrypt).
--
-- Encryption (pgcrypto instead of libsodium's deterministic XChaCha20-SIV):
--   * A random 256-bit root key is generated at CREATE EXTENSION time into vault._root_key,
--     which only its owner (the installing superuser) can read. It is not dumped.
--   * vault._crypto_aead_det_encrypt(message, additional, key_id, context, nonce) is a
--     deterministic AEAD built from AES-256-CBC + HMAC-SHA-256 in SIV style:
--       k        = HMAC-SHA256(root, context || key_id)
--       siv      = first 16 bytes of HMAC-SHA256(HMAC(k,'mac'), len‖nonce‖len‖additional‖message)
--       returns  siv || AES-256-CBC(HMAC(k,'enc'), iv = siv, message)
--     Decryption recomputes the SIV and raises 'invalid ciphertext' on any mismatch, so a
--     secret is bound to its row id (the additional data) and to its per-row nonce, and cannot
--     be moved to another row or tampered with. As in Vault, the row's nonce is kept when the
--     secret is updated (SIV makes that safe).
--   * pgcrypto lives in schema `extensions` on Supabase; its schema is resolved here at
--     install time and baked into the function bodies, which run with search_path = ''.
-- =============================================================================================

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION supabase_vault" to load this file. \quit

-- The root key: one row, readable by nobody but its owner.
create table vault._root_key (
  id int primary key default 1 check (id = 1),
  key bytea not null check (length(key) = 32)
);
revoke all on table vault._root_key from public;
comment on table vault._root_key is 'LOCAL STAND-IN: the Vault root key (random, generated at CREATE EXTENSION). Owner-only.';

do $install$
declare
  crypto text := (
    select n.nspname
    from pg_catalog.pg_extension e
    join pg_catalog.pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'pgcrypto'
  );
begin
  if crypto is null then
    raise exception 'supabase_vault (local stand-in) requires the pgcrypto extension';
  end if;

  execute pg_catalog.format(
    'insert into vault._root_key (id, key) values (1, %I.gen_random_bytes(32))', crypto);

  -- A fresh 16-byte nonce per secret. VOLATILE (Vault's C function is declared IMMUTABLE,
  -- which lets a cached plan fold it into one constant).
  execute pg_catalog.format($f$
    create function vault._crypto_aead_det_noncegen()
    returns bytea
    language sql
    volatile
    set search_path = ''
    as $body$ select %1$I.gen_random_bytes(16) $body$
  $f$, crypto);

  -- The per-(key_id, context) encryption and MAC keys.
  execute pg_catalog.format($f$
    create function vault._derive_keys(key_id bigint, context bytea, out enc_key bytea, out mac_key bytea)
    language sql
    stable
    security definer
    set search_path = ''
    as $body$
      select %1$I.hmac('enc'::bytea, k, 'sha256'), %1$I.hmac('mac'::bytea, k, 'sha256')
      from (
        select %1$I.hmac(coalesce(context, ''::bytea) || pg_catalog.int8send(coalesce(key_id, 0)), r.key, 'sha256') as k
        from vault._root_key r
        where r.id = 1
      ) derived
    $body$
  $f$, crypto);

  execute pg_catalog.format($f$
    create function vault._siv(mac_key bytea, message bytea, additional bytea, nonce bytea)
    returns bytea
    language sql
    immutable
    set search_path = ''
    as $body$
      select pg_catalog.substring(
        %1$I.hmac(
          pg_catalog.int4send(pg_catalog.length(coalesce(nonce, ''::bytea))) || coalesce(nonce, ''::bytea)
          || pg_catalog.int4send(pg_catalog.length(coalesce(additional, ''::bytea))) || coalesce(additional, ''::bytea)
          || message,
          mac_key, 'sha256'),
        1, 16)
    $body$
  $f$, crypto);

  execute pg_catalog.format($f$
    create function vault._crypto_aead_det_encrypt(message bytea, additional bytea, key_id bigint, context bytea = 'pgsodium', nonce bytea = NULL)
    returns bytea
    language plpgsql
    volatile
    security definer
    set search_path = ''
    as $body$
    declare
      k record;
      siv bytea;
    begin
      if message is null then
        return null;
      end if;
      select * into k from vault._derive_keys(key_id, context);
      siv := vault._siv(k.mac_key, message, additional, nonce);
      return siv || %1$I.encrypt_iv(message, k.enc_key, siv, 'aes-cbc/pad:pkcs');
    end
    $body$
  $f$, crypto);

  execute pg_catalog.format($f$
    create function vault._crypto_aead_det_decrypt(message bytea, additional bytea, key_id bigint, context bytea = 'pgsodium', nonce bytea = NULL)
    returns bytea
    language plpgsql
    volatile
    security definer
    set search_path = ''
    as $body$
    declare
      k record;
      siv bytea;
      plain bytea;
    begin
      if message is null then
        return null;
      end if;
      if pg_catalog.length(message) < 32 then
        raise exception 'invalid ciphertext';
      end if;
      select * into k from vault._derive_keys(key_id, context);
      siv := pg_catalog.substring(message, 1, 16);
      begin
        plain := %1$I.decrypt_iv(pg_catalog.substring(message, 17), k.enc_key, siv, 'aes-cbc/pad:pkcs');
      exception when others then
        raise exception 'invalid ciphertext';
      end;
      if vault._siv(k.mac_key, plain, additional, nonce) is distinct from siv then
        raise exception 'invalid ciphertext';
      end if;
      return plain;
    end
    $body$
  $f$, crypto);
end
$install$;

CREATE TABLE vault.secrets (
  id uuid     PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text,
  description text NOT NULL default '',
  secret      text NOT NULL,
  key_id      uuid,
  nonce       bytea DEFAULT vault._crypto_aead_det_noncegen(),
  created_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

COMMENT ON TABLE vault.secrets IS 'Table with encrypted `secret` column for storing sensitive information on disk.';

CREATE UNIQUE INDEX ON vault.secrets USING btree (name) WHERE name IS NOT NULL;

DROP VIEW IF EXISTS vault.decrypted_secrets;
CREATE VIEW vault.decrypted_secrets AS
SELECT s.id,
  s.name,
  s.description,
  s.secret,
  convert_from(
    vault._crypto_aead_det_decrypt(
      message := decode(s.secret, 'base64'::text),
      additional := convert_to(s.id::text, 'utf8'),
      key_id := 0,
      context := 'pgsodium'::bytea,
      nonce := s.nonce
    ),
    'utf8'::name
  ) AS decrypted_secret,
  s.key_id,
  s.nonce,
  s.created_at,
  s.updated_at
FROM vault.secrets s;

CREATE OR REPLACE FUNCTION vault.create_secret(
  new_secret text,
  new_name text = NULL,
  new_description text = '',
  -- unused
  new_key_id uuid = NULL
)
RETURNS uuid
SECURITY DEFINER
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
  rec record;
BEGIN
  INSERT INTO vault.secrets (secret, name, description)
  VALUES (
    new_secret,
    new_name,
    new_description
  )
  RETURNING * INTO rec;
  UPDATE vault.secrets s
  SET secret = pg_catalog.encode(vault._crypto_aead_det_encrypt(
    message := pg_catalog.convert_to(rec.secret, 'utf8'),
    additional := pg_catalog.convert_to(s.id::text, 'utf8'),
    key_id := 0,
    context := 'pgsodium'::bytea,
    nonce := rec.nonce
  ), 'base64')
  WHERE id = rec.id;
  RETURN rec.id;
END
$$;

CREATE OR REPLACE FUNCTION vault.update_secret(
  secret_id uuid,
  new_secret text = NULL,
  new_name text = NULL,
  new_description text = NULL,
  -- unused
  new_key_id uuid = NULL
)
RETURNS void
SECURITY DEFINER
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
  UPDATE vault.secrets s
  SET
    secret = CASE WHEN new_secret IS NULL THEN s.secret
                  ELSE pg_catalog.encode(vault._crypto_aead_det_encrypt(
                    message := pg_catalog.convert_to(new_secret, 'utf8'),
                    additional := pg_catalog.convert_to(s.id::text, 'utf8'),
                    key_id := 0,
                    context := 'pgsodium'::bytea,
                    nonce := s.nonce
                  ), 'base64') END,
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    updated_at = pg_catalog.now()
  WHERE s.id = secret_id;
END
$$;

REVOKE ALL ON FUNCTION
  vault._crypto_aead_det_encrypt,
  vault._crypto_aead_det_decrypt,
  vault._crypto_aead_det_noncegen,
  vault._derive_keys,
  vault._siv,
  vault.create_secret,
  vault.update_secret
FROM PUBLIC;

-- vault.secrets.nonce defaults to _crypto_aead_det_noncegen(), so whoever may insert rows needs
-- it; it only returns random bytes.
GRANT EXECUTE ON FUNCTION vault._crypto_aead_det_noncegen() TO PUBLIC;

-- What hosted Supabase grants after creating the extension (supabase/postgres after-create
-- script for supabase_vault). anon and authenticated get nothing.
do $grants$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'postgres' and not rolsuper) then
    grant usage on schema vault to postgres with grant option;
    grant select, delete, truncate, references on vault.secrets, vault.decrypted_secrets to postgres with grant option;
    grant execute on function vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt to postgres with grant option;
  end if;
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    grant usage on schema vault to service_role;
    grant select, delete on vault.secrets, vault.decrypted_secrets to service_role;
    grant execute on function vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt to service_role;
  end if;
end
$grants$;

SELECT pg_catalog.pg_extension_config_dump('vault.secrets', '');
