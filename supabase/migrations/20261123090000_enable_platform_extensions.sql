-- Extensions Duework stands on. On hosted Supabase these are the dashboard's "enable extension"
-- switches; on the local stack they resolve to Debian's pg_cron and the pg_net stand-in.
-- supautils on hosted projects pins pg_cron to pg_catalog (its objects live in schema cron).
create extension if not exists pg_cron with schema pg_catalog;
-- pg_net's objects live in schema net whatever schema the extension is created in.
create extension if not exists pg_net with schema extensions;
