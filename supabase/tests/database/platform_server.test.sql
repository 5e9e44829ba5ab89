-- The local Postgres is configured like hosted Supabase's where it matters to the project:
-- pg_stat_statements is preloaded and installed in schema extensions.
begin;
select plan(4);

select ok(
  'pg_stat_statements' = any(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
  'pg_stat_statements is in shared_preload_libraries');
select ok(
  'pg_cron' = any(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
  'pg_cron is in shared_preload_libraries');
select is((select extnamespace::regnamespace::text from pg_extension where extname = 'pg_stat_statements'), 'extensions',
  'pg_stat_statements is installed in schema extensions, as on hosted projects');
-- reading the view fails with "pg_stat_statements must be loaded via shared_preload_libraries"
-- unless the library was preloaded
select lives_ok($$select count(*) from extensions.pg_stat_statements$$, 'pg_stat_statements collects statements');

select * from finish();
rollback;
