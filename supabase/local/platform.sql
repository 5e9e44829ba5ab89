-- Local stand-in for what every hosted Supabase project already has before the first migration:
-- the API roles, the `extensions` and `auth` schemas, the auth helpers, and the pre-installed
-- extensions. Applied by the local stack before `supabase db push`; never part of
-- supabase/migrations. Idempotent: it runs on every stack start.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;

-- Hosted projects resolve unqualified names in public, then extensions.
alter database postgres set search_path = "$user", public, extensions;

-- Since 2026-10-30 hosted projects no longer auto-grant new public tables to the API roles,
-- so the local stack adds no default table privileges either: migrations grant explicitly.

create extension if not exists pg_stat_statements with schema extensions; -- preloaded by the stack
create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists supabase_vault; -- its control file pins schema vault

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

-- Minimal auth.users so that foreign keys and the database advisors' lints that inspect it work.
create table if not exists auth.users (
  id uuid primary key,
  email text,
  role text,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_anonymous boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table auth.users enable row level security;

-- Same bodies as GoTrue's: read the claims PostgREST puts into request.jwt.claims.
create or replace function auth.uid() returns uuid
language sql stable
set search_path = ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
set search_path = ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;
