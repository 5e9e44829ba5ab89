-- Scheduling in the engine (supabase/migrations/20261204090000_jobs_scheduling.sql): cron
-- expressions checked at jobs.define, slots in a job's time zone across daylight-saving changes,
-- catch-up after downtime, next/previous slots in jobs.health, the watched runs behind
-- jobs.run_and_wait, and send windows. The scheduler's clock is injected (jobs.fire_schedule's
-- p_now); one transaction, rolled back.
begin;
set local search_path = public, extensions;
select plan(70);

do $$
begin
  if not exists (select 1 from vault.decrypted_secrets where name = 'project_url') then
    perform vault.create_secret('http://127.0.0.1:54321/', 'project_url');
  end if;
end;
$$;

create temp table due (job text not null, key text not null, payload jsonb not null default '{}');
create function pg_temp.discover(p_config jsonb) returns table (key text, payload jsonb)
language sql stable as $$ select d.key, d.payload from pg_temp.due d where d.job = p_config ->> 'job' order by d.key $$;
create function pg_temp.define(p_name text, p_schedule text, p_zone text default 'UTC', p_catch_up text default null)
returns jobs.job language sql as $$
  select jobs.define(p_name, 'pgtap-fn', 'pg_temp.discover(jsonb)'::regprocedure, p_schedule,
                     jsonb_build_object('job', p_name), p_timezone => p_zone, p_catch_up => p_catch_up);
$$;
-- Runs the scheduler for one job every p_step from p_from to p_to, as the heartbeat would.
create function pg_temp.simulate(p_job text, p_from timestamptz, p_to timestamptz, p_step interval default '1 minute')
returns int language plpgsql as $$
declare
  v_t timestamptz := p_from;
  v_fired int := 0;
begin
  update jobs.job set next_run_at = jobs.cron_next(schedule_spec, timezone, p_from - interval '1 second') where name = p_job;
  while v_t <= p_to loop
    if jobs.fire_schedule(p_job, v_t) is not null then
      v_fired := v_fired + 1;
    end if;
    v_t := v_t + p_step;
  end loop;
  return v_fired;
end;
$$;
create function pg_temp.local_slots(p_job text, p_zone text) returns text[] language sql as $$
  select array_agg(to_char(r.slot_at at time zone p_zone, 'MM-DD HH24:MI') order by r.slot_at)
    from jobs.run r where r.job_name = p_job;
$$;

-- jobs.define checks the expression and the zone ---------------------------------------------------
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '61 * * * *') $$, '22023',
  'jobs.define: schedule "61 * * * *": minute 61 is out of range 0-59', 'a minute out of range is refused, naming it');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 0 * *') $$, '22023',
  'jobs.define: schedule "0 0 * *": a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has 4',
  'four fields are refused');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 0 L * *') $$, '22023',
  'jobs.define: schedule "0 0 L * *": day-of-month field "l": "l" is not a number', 'L is refused');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 25 * * *') $$, '22023',
  'jobs.define: schedule "0 25 * * *": hour 25 is out of range 0-23', 'an hour out of range is refused');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 0 * foo *') $$, '22023',
  'jobs.define: schedule "0 0 * foo *": month field "foo": "foo" is not a number or a name (jan feb mar apr may jun jul aug sep oct nov dec)',
  'an unknown month name is refused, listing the names');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 0 5-1 * *') $$, '22023',
  'jobs.define: schedule "0 0 5-1 * *": day-of-month range "5-1" runs backwards', 'a backwards range is refused');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '*/0 * * * *') $$, '22023',
  'jobs.define: schedule "*/0 * * * *": minute field "*/0": step "0" must be a whole number from 1 to 60', 'a zero step is refused');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '10 seconds') $$, '22023',
  'jobs.define: schedule "10 seconds": schedules below a minute are not supported', 'a seconds schedule is refused');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 0 30 2 *') $$, '22023',
  'jobs.define: schedule "0 0 30 2 *" never fires (no such date in the next five years)', '30 February is refused');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 0 * * *', 'Mars/Olympus') $$, '22023',
  'jobs.define: timezone: unknown time zone "Mars/Olympus"', 'an unknown zone is refused, naming it');
select throws_ok($$ select pg_temp.define('pgtap-sched-bad', '0 0 * * *', 'UTC', 'twice') $$, '22023',
  'jobs.define: catch_up must be once or skip, not twice', 'an unknown catch-up policy is refused');
select is((select count(*)::int from jobs.job where name = 'pgtap-sched-bad'), 0, 'a refused define writes nothing');

select is(jobs.parse_cron('0 9 * jan-mar mon,FRI,7') - 'minute' - 'hour' - 'dom',
  '{"month": [1, 2, 3], "dow": [0, 1, 5], "dom_any": true, "dow_any": false, "hour_any": false}'::jsonb,
  'names in either case, and weekday 7 is Sunday');
select is(jobs.parse_cron('@daily'), jobs.parse_cron('0 0 * * *'), '@daily is 0 0 * * *');
select is(jobs.parse_cron('5/20 */6 * * *') -> 'minute', '[5, 25, 45]'::jsonb, 'n/step runs from n to the end');
select is(jobs.parse_cron('5/20 */6 * * *') -> 'hour', '[0, 6, 12, 18]'::jsonb, '*/6 is every sixth hour');
select is(jobs.parse_cron('0 0 * * 1/2') -> 'dow', '[0, 1, 3, 5]'::jsonb, 'weekday n/s runs to 7, Sunday, as in Vixie cron');

-- jobs.cron_next in a zone -------------------------------------------------------------------------
select is(jobs.cron_next(jobs.parse_cron('0 0 * * *'), 'Asia/Kolkata', '2026-12-02 10:00Z'), '2026-12-02 18:30Z'::timestamptz,
  'midnight IST is 18:30 UTC');
select is(jobs.cron_next(jobs.parse_cron('30 23 * * 0'), 'Asia/Kolkata', '2026-12-02 10:00Z'), '2026-12-06 18:00Z'::timestamptz,
  'Sundays 23:30 IST: Sunday 18:00 UTC');
select is(jobs.cron_next(jobs.parse_cron('0 9 * * 1-5'), 'America/New_York', '2027-03-12 20:00Z'), '2027-03-15 13:00Z'::timestamptz,
  'weekdays 09:00 New York: Monday after the spring change is 13:00 UTC (EDT)');
select is(jobs.cron_next(jobs.parse_cron('0 0 1,15 * 5'), 'UTC', '2027-01-01 00:00Z'), '2027-01-08 00:00Z'::timestamptz,
  'both day fields restricted: either matches (Friday 8 January before the 15th)');
select is(jobs.cron_next(jobs.parse_cron('0 0 29 2 *'), 'UTC', '2026-12-02 00:00Z'), '2028-02-29 00:00Z'::timestamptz,
  '29 February: the next leap year');

-- A London job across both changes of 2027 fires once a day at its local time ------------------------
select pg_temp.define('pgtap-sched-london', '0 9 * * *', 'Europe/London');
select is(pg_temp.simulate('pgtap-sched-london', '2027-03-26 00:00Z', '2027-03-29 23:59Z'), 4, 'March: four days, four runs');
select is(pg_temp.local_slots('pgtap-sched-london', 'Europe/London'),
  array['03-26 09:00', '03-27 09:00', '03-28 09:00', '03-29 09:00'], 'each at 09:00 London time');
select is((select array_agg(to_char(slot_at at time zone 'UTC', 'DD HH24:MI') order by slot_at) from jobs.run
            where job_name = 'pgtap-sched-london'),
  array['26 09:00', '27 09:00', '28 08:00', '29 08:00'], 'which is 09:00 UTC before the change and 08:00 UTC after it');
delete from jobs.run where job_name = 'pgtap-sched-london';
select is(pg_temp.simulate('pgtap-sched-london', '2027-10-29 00:00Z', '2027-11-01 23:59Z'), 4, 'October: four days, four runs');
select is(pg_temp.local_slots('pgtap-sched-london', 'Europe/London'),
  array['10-29 09:00', '10-30 09:00', '10-31 09:00', '11-01 09:00'], 'each at 09:00 London time');

-- 01:30 London: on 28 March it does not exist, on 31 October it happens twice.
select pg_temp.define('pgtap-sched-london-night', '30 1 * * *', 'Europe/London');
select is(pg_temp.simulate('pgtap-sched-london-night', '2027-03-27 00:00Z', '2027-03-29 23:59Z'), 3,
  'spring: one run a day, none skipped');
select is((select array_agg(to_char(slot_at at time zone 'Europe/London', 'DD HH24:MI') order by slot_at) from jobs.run
            where job_name = 'pgtap-sched-london-night'),
  array['27 01:30', '28 02:00', '29 01:30'], 'the missing 01:30 runs when the clocks jump to 02:00');
delete from jobs.run where job_name = 'pgtap-sched-london-night';
select is(pg_temp.simulate('pgtap-sched-london-night', '2027-10-30 00:00Z', '2027-11-01 23:59Z'), 3,
  'autumn: one run a day, none doubled');
select is((select array_agg(to_char(slot_at at time zone 'UTC', 'DD HH24:MI') order by slot_at) from jobs.run
            where job_name = 'pgtap-sched-london-night'),
  array['30 00:30', '31 00:30', '01 01:30'], 'the repeated 01:30 runs once, at its first occurrence (BST)');

-- An hourly job follows real time through the repeated hour: 25 runs on the long day.
select pg_temp.define('pgtap-sched-london-hourly', '0 * * * *', 'Europe/London');
select is(pg_temp.simulate('pgtap-sched-london-hourly', '2027-10-30 23:00Z', '2027-10-31 23:59Z'), 25,
  'an hourly job runs 25 times on the day the clocks go back');
select pg_temp.define('pgtap-sched-london-half', '30 * * * *', 'Europe/London');
select is(pg_temp.simulate('pgtap-sched-london-half', '2027-03-28 00:00Z', '2027-03-28 22:59Z'), 23,
  'and 23 times on the day they go forward: the vanished 01:30 does not run');

-- IST midnight: the reel job's schedule ---------------------------------------------------------------
select pg_temp.define('pgtap-sched-ist', '0 0 * * *', 'Asia/Kolkata');
select is(pg_temp.simulate('pgtap-sched-ist', '2026-12-02 18:00Z', '2026-12-02 19:00Z', '10 seconds'), 1, 'one run in the hour');
select is((select slot_at from jobs.run where job_name = 'pgtap-sched-ist'), '2026-12-02 18:30Z'::timestamptz, 'at 18:30 UTC');
select is((select schedule || ' ' || timezone || ' ' || catch_up from jobs.job where name = 'instagram-reel-urls'),
  '0 0 * * * Asia/Kolkata once', 'the reel job runs at 00:00 Asia/Kolkata');

-- Catch-up after a 3-day outage ----------------------------------------------------------------------
select pg_temp.define('pgtap-sched-once', '0 0 * * *');
select pg_temp.define('pgtap-sched-skip', '0 0 * * *', 'UTC', 'skip');
select is((select array_agg(catch_up order by name) from jobs.job where name in ('pgtap-sched-once', 'pgtap-sched-london-hourly')),
  array['skip', 'once'], 'catch_up defaults: once for a daily job, skip for an hourly one');
update jobs.job set next_run_at = '2027-01-01 00:00Z' where name in ('pgtap-sched-once', 'pgtap-sched-skip');
-- The database was down from 31 December 23:59 until 3 January 12:00: three midnights passed.
select is(jobs.fire_schedule('pgtap-sched-once', '2027-01-03 12:00Z') ->> 'outcome', 'caught_up', 'once: caught up');
select is((select array_agg(row(trigger, slot_at, missed_slots)::text) from jobs.run where job_name = 'pgtap-sched-once'),
  array[row('cron', '2027-01-03 00:00Z'::timestamptz, 3)::text], 'one run, for the latest slot, counting the 3 missed');
select is(jobs.fire_schedule('pgtap-sched-once', '2027-01-03 12:00:10Z'), null, 'the next heartbeat has nothing to fire');
select is((select next_run_at from jobs.job where name = 'pgtap-sched-once'), '2027-01-04 00:00Z'::timestamptz,
  'the next slot is the next midnight');
select is(jobs.fire_schedule('pgtap-sched-skip', '2027-01-03 12:00Z') ->> 'outcome', 'skipped', 'skip: skipped');
select is((select count(*)::int from jobs.run where job_name = 'pgtap-sched-skip'), 0, 'skip runs none');
select is((select row(last_slot_at, last_slot_outcome, last_slot_missed, next_run_at)::text from jobs.job where name = 'pgtap-sched-skip'),
  row('2027-01-03 00:00Z'::timestamptz, 'skipped', 3, '2027-01-04 00:00Z'::timestamptz)::text,
  'and records the slots it skipped');

-- A minute job reached 5 minutes late, within the grace of its latest slot: one run on time.
select pg_temp.define('pgtap-sched-minute', '* * * * *');
update jobs.job set next_run_at = '2027-01-03 12:00Z' where name = 'pgtap-sched-minute';
select is(jobs.fire_schedule('pgtap-sched-minute', '2027-01-03 12:05:10Z') - 'run' - 'job',
  jsonb_build_object('slot_at', '2027-01-03 12:05Z'::timestamptz, 'outcome', 'ran', 'missed', 5,
                     'next_run_at', '2027-01-03 12:06Z'::timestamptz),
  'its latest slot runs on time, once, the 5 before it folded in');

-- A disabled job's slots pass without a run; enabling it does not run the backlog.
update jobs.job set enabled = false, next_run_at = '2027-01-03 12:00Z' where name = 'pgtap-sched-once';
delete from jobs.run where job_name = 'pgtap-sched-once';
select is(jobs.fire_schedule('pgtap-sched-once', '2027-01-05 01:00Z') ->> 'outcome', 'disabled', 'a disabled job''s slot: no run');
select is((select count(*)::int from jobs.run where job_name = 'pgtap-sched-once'), 0, 'nothing ran');
update jobs.job set enabled = true where name = 'pgtap-sched-once';

-- The heartbeat's entry point with the real clock.
update jobs.job set next_run_at = now() - interval '1 second' where name = 'pgtap-sched-minute';
delete from jobs.run where job_name = 'pgtap-sched-minute';
select ok(jobs.fire_due_schedules() >= 1, 'jobs.fire_due_schedules fires a due slot');
select is((select count(*)::int from jobs.run where job_name = 'pgtap-sched-minute' and slot_at is not null), 1, 'one run, with its slot');
select ok((select next_run_at > now() from jobs.job where name = 'pgtap-sched-minute'), 'and its next slot is ahead');

-- Defining again keeps the next slot unless the schedule or zone changed.
update jobs.job set next_run_at = '2030-01-01 00:00Z' where name = 'pgtap-sched-ist';
select pg_temp.define('pgtap-sched-ist', '0 0 * * *', 'Asia/Kolkata');
select is((select next_run_at from jobs.job where name = 'pgtap-sched-ist'), '2030-01-01 00:00Z'::timestamptz, 'same schedule: kept');
select pg_temp.define('pgtap-sched-ist', '0 0 * * *', 'Europe/London');
select is((select next_run_at from jobs.job where name = 'pgtap-sched-ist'),
  jobs.cron_next(jobs.parse_cron('0 0 * * *'), 'Europe/London', now()), 'another zone: recomputed');

-- Next and previous slots in UTC and in the job's zone -----------------------------------------------
select pg_temp.define('pgtap-sched-ist', '0 0 * * *', 'Asia/Kolkata');
select is((select row(timezone, next_run_local::time, next_run_at = (next_run_local at time zone 'Asia/Kolkata'))::text
             from jobs.health where name = 'pgtap-sched-ist'),
  row('Asia/Kolkata', '00:00'::time, true)::text, 'jobs.health: the next slot at local midnight, and in UTC');
select is((select row(prev_run_at, prev_run_local, prev_run_outcome)::text from jobs.health where name = 'pgtap-sched-skip'),
  row('2027-01-03 00:00Z'::timestamptz, '2027-01-03 00:00'::timestamp, 'skipped')::text, 'and the previous one');
select is((select count(*)::int from cron.job c join jobs.job j on c.jobname = 'duework:' || j.name), 0,
  'no job has a pg_cron row of its own: the heartbeat fires them');

-- Watched runs (jobs.run_and_wait's parts) -------------------------------------------------------------
select pg_temp.define('pgtap-sched-watch', null);
insert into due (job, key) values ('pgtap-sched-watch', 'w1'), ('pgtap-sched-watch', 'w2'), ('pgtap-sched-watch', 'w3');
create temp table watched as select jobs.start_watched_run('pgtap-sched-watch') as r;
select is((select jsonb_array_length(r -> 'task_ids') from watched), 3, 'the watched run holds its 3 tasks');
select jobs.complete(t.id, t.lease_token, '{"sent": true}') from jobs.task t where t.job_name = 'pgtap-sched-watch' and t.key = 'w1';
select jobs.fail(t.id, t.lease_token, 'provider 503', 120) from jobs.task t where t.job_name = 'pgtap-sched-watch' and t.key = 'w2';
select jobs.fail(t.id, t.lease_token, 'bad number', null, true) from jobs.task t where t.job_name = 'pgtap-sched-watch' and t.key = 'w3';
select is(jobs.watched_run_progress((select r from watched)) - 'run_id' - 'job' - 'waited_seconds' - 'next_attempt_at',
  '{"tasks": 3, "succeeded": 1, "retried": 1, "waiting": 0, "dead": 1, "discarded": 0, "cancelled": 0, "remaining": 0,
    "settled": true, "discovered": 3, "error": null}'::jsonb, 'its progress: 1 succeeded, 1 retried, 1 dead, settled');
select matches(jobs.describe_watched_run(jobs.watched_run_progress((select r from watched))),
  '^pgtap-sched-watch: 1 succeeded, 1 retried, 1 dead, 0 discarded, 0 waiting, 0 remaining of 3 task\(s\) \(3 discovered\) after [0-9.]+ s$',
  'and the line psql prints');

select is((select array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text) from pg_proc p
            where p.pronamespace = 'jobs'::regnamespace and not coalesce(p.proconfig @> array['search_path=""'], false)),
  array['jobs.run_and_wait(text,interval,jsonb)'],
  'the one routine in jobs without a pinned search_path is the procedure that commits (Postgres allows it no SET clause)');
select ok(not has_function_privilege('anon', 'jobs.run_and_wait(text,interval,jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.run_and_wait(text,interval,jsonb)', 'EXECUTE')
          and not has_function_privilege('public', 'jobs.run_and_wait(text,interval,jsonb)', 'EXECUTE')
          and not has_function_privilege('authenticated', 'jobs.fire_schedule(text,timestamptz)', 'EXECUTE')
          and not has_function_privilege('anon', 'jobs.set_schedule(text,text,text,text)', 'EXECUTE')
          and (to_regprocedure('jobs.heartbeat_minute(int,int)') is null
               or not has_function_privilege('authenticated', 'jobs.heartbeat_minute(int,int)', 'EXECUTE')),
  'client roles execute none of them');

-- Send windows ---------------------------------------------------------------------------------------
select pg_temp.define('pgtap-sched-window', null);
-- Outside: the window opens 2 hours from now (Asia/Kolkata has no daylight saving, so the sums are exact).
insert into due (job, key, payload) values ('pgtap-sched-window', 'later', jsonb_build_object('to', 'a', 'send_window', jsonb_build_object(
  'time_zone', 'Asia/Kolkata',
  'start', to_char((now() at time zone 'Asia/Kolkata') + interval '2 hours', 'HH24:MI'),
  'end', to_char((now() at time zone 'Asia/Kolkata') + interval '3 hours', 'HH24:MI'))));
-- Discovered 3 hours ago, while its window was shut; the window opened this minute.
insert into jobs.task (job_name, key, payload, run_after) values ('pgtap-sched-window', 'opened', jsonb_build_object('send_window', jsonb_build_object(
  'time_zone', 'Asia/Kolkata',
  'start', to_char(now() at time zone 'Asia/Kolkata', 'HH24:MI'),
  'end', to_char((now() at time zone 'Asia/Kolkata') + interval '1 hour', 'HH24:MI'))), now() - interval '3 hours');
-- Queued inside its window 3 hours ago, still queued when the window closed an hour ago.
insert into jobs.task (job_name, key, payload, run_after) values ('pgtap-sched-window', 'closed', jsonb_build_object('send_window', jsonb_build_object(
  'time_zone', 'Asia/Kolkata',
  'start', to_char((now() at time zone 'Asia/Kolkata') - interval '4 hours', 'HH24:MI'),
  'end', to_char((now() at time zone 'Asia/Kolkata') - interval '1 hour', 'HH24:MI'))), now() - interval '3 hours');
select is((select (jobs.tick('pgtap-sched-window') ->> 'claimed')::int), 1, 'the tick claims only the task whose window is open');
select is((select array_agg(row(key, state)::text order by key) from jobs.task where job_name = 'pgtap-sched-window'),
  array[row('closed', 'queued')::text, row('later', 'queued')::text, row('opened', 'running')::text],
  'the one discovered while shut is claimed once its window opened; the others stay queued');
select is((select run_after from jobs.task where job_name = 'pgtap-sched-window' and key = 'later'),
  date_trunc('minute', now() + interval '2 hours'), 'one discovered outside its window waits for the window''s start');
select is(jobs.defer_closed_windows('pgtap-sched-window'), 1, 'the heartbeat''s deferral moves the one whose window closed');
select is((select run_after from jobs.task where job_name = 'pgtap-sched-window' and key = 'closed'),
  date_trunc('minute', now() - interval '4 hours') + interval '1 day', 'to the next day''s opening');
select is((select payload from jobs.task where job_name = 'pgtap-sched-window' and key = 'later'), '{"to": "a"}'::jsonb,
  'send_window leaves the payload');
select is(jobs.fail(t.id, t.lease_token, 'provider 503', 7200), 'queued', 'a retry after 2 hours')
  from jobs.task t where t.job_name = 'pgtap-sched-window' and t.key = 'opened';
select is((select run_after from jobs.task where job_name = 'pgtap-sched-window' and key = 'opened'),
  date_trunc('minute', now()) + interval '1 day', 'lands after the window closed, so it waits for the next opening');
select throws_ok($$ insert into jobs.task (job_name, key, payload) values ('pgtap-sched-window', 'bad',
    '{"send_window": {"time_zone": "Mars/Olympus", "start": "08:00", "end": "21:00"}}') $$, '22023',
  'send_window.time_zone: unknown time zone "Mars/Olympus"', 'an unknown zone is refused, naming the field');
select throws_ok($$ insert into jobs.task (job_name, key, payload) values ('pgtap-sched-window', 'bad',
    '{"send_window": {"time_zone": "UTC", "start": "8:00", "end": "21:00"}}') $$, '22023',
  'send_window.start: must be a local time HH:MM from 00:00 to 23:59, not "8:00"', 'a malformed time is refused, naming the field');

select * from finish();
rollback;
