-- Engine: schedules the engine evaluates itself (time zones, catch-up after downtime, next and
-- previous fire times), run-and-wait for people in psql, and send windows per task.
--
-- pg_cron fires in UTC (on hosted Supabase cron.timezone is not ours to change) and never runs a
-- slot it missed while the database was down. So a job's schedule is no longer a pg_cron row of
-- its own: jobs.define parses the cron expression once (jobs.parse_cron) and stores the next
-- slot in jobs.job.next_run_at, computed in the job's time zone (jobs.cron_next). The heartbeat
-- that already runs every 10 s (jobs.heartbeat) fires the due slots (jobs.fire_due_schedules):
--   - on time (reached within jobs.schedule_grace(), 2 minutes, of the latest slot): one tick;
--   - after downtime: one tick (catch_up 'once') or none (catch_up 'skip'), never one per missed
--     slot; jobs.job.last_slot_* and jobs.run.slot_at / missed_slots say which.
-- Wall-clock rules in zones with daylight saving (docs/jobs.md "Schedules"):
--   - a local time that does not exist (clocks go forward) fires at the moment the clocks jump;
--   - a local time that happens twice (clocks go back) fires once, at its first occurrence;
--   - except for a job that runs every hour (hour field *): it follows real time, so it fires at
--     both occurrences of a repeated time and not at all at a vanished one (as Vixie cron does).
--
-- Also: jobs.run_and_wait (a procedure: commits the tick, waits for that run's tasks, returns the
-- counts); jobs.task send windows (payload.send_window → the task waits for the recipient's
-- local hours; claims skip one whose window closed, the heartbeat moves it on); the heartbeat visits only jobs
-- with work in flight or due (the idle cost), and on pg_cron 1.4 its six heartbeats share one
-- dblink session.

-- ---------------------------------------------------------------------------------------------
-- Cron expressions: parsed once, evaluated in a time zone

-- The values of one cron field, or an exception naming the field and the offending part.
-- Vixie cron syntax: *, n, a-b, */s, a-b/s, n/s (n to the end, step s), lists; names for months
-- and weekdays; weekday 7 is Sunday.
create function jobs.cron_field_values(p_expr text, p_field text, p_text text, p_min int, p_max int, p_names text[])
returns int[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_part text;
  v_base text;
  v_step int;
  v_lo int;
  v_hi int;
  v_values int[] := '{}'::int[];
  v_bounds text[];
begin
  foreach v_part in array pg_catalog.string_to_array(p_text, ',') loop
    if v_part = '' then
      raise exception 'schedule "%": % field "%" has an empty list item', p_expr, p_field, p_text
        using errcode = 'invalid_parameter_value';
    end if;
    if v_part ~ '/.*/' then
      raise exception 'schedule "%": % field "%": "%" has two steps', p_expr, p_field, p_text, v_part
        using errcode = 'invalid_parameter_value';
    end if;
    v_base := pg_catalog.split_part(v_part, '/', 1);
    v_step := 1;
    if v_part like '%/%' then
      if pg_catalog.split_part(v_part, '/', 2) !~ '^[0-9]{1,3}$' or pg_catalog.split_part(v_part, '/', 2)::int = 0 then
        raise exception 'schedule "%": % field "%": step "%" must be a whole number from 1 to %',
          p_expr, p_field, p_text, pg_catalog.split_part(v_part, '/', 2), p_max - p_min + 1
          using errcode = 'invalid_parameter_value';
      end if;
      v_step := pg_catalog.split_part(v_part, '/', 2)::int;
    end if;
    if v_base = '*' then
      v_lo := p_min;
      -- Day-of-week runs 0-7 (7 is Sunday again), as in Vixie cron, so 1/2 ends on Sunday.
      v_hi := p_max + (case when p_field = 'day-of-week' then 1 else 0 end);
    else
      v_bounds := pg_catalog.string_to_array(v_base, '-');
      if pg_catalog.cardinality(v_bounds) > 2 then
        raise exception 'schedule "%": % field "%": "%" is not a range', p_expr, p_field, p_text, v_base
          using errcode = 'invalid_parameter_value';
      end if;
      for i in 1 .. pg_catalog.cardinality(v_bounds) loop
        if v_bounds[i] ~ '^[0-9]{1,2}$' then
          null;
        elsif pg_catalog.lower(v_bounds[i]) = any (p_names) then
          v_bounds[i] := (pg_catalog.array_position(p_names, pg_catalog.lower(v_bounds[i])) - 1 + p_min)::text;
        else
          raise exception 'schedule "%": % field "%": "%" is not a number%', p_expr, p_field, p_text, v_bounds[i],
            case when p_names is not null then format(' or a name (%s)', pg_catalog.array_to_string(p_names, ' '))
                 else '' end
            using errcode = 'invalid_parameter_value',
                  hint = 'Five fields: minute hour day-of-month month day-of-week, e.g. ''0 0 * * *''. '
                         'L, W, #, ? and $ are not supported.';
        end if;
        if v_bounds[i]::int < p_min or v_bounds[i]::int > p_max + (case when p_field = 'day-of-week' then 1 else 0 end) then
          raise exception 'schedule "%": % % is out of range %-%', p_expr, p_field, v_bounds[i], p_min,
            p_max + case when p_field = 'day-of-week' then 1 else 0 end
            using errcode = 'invalid_parameter_value';
        end if;
      end loop;
      v_lo := v_bounds[1]::int;
      v_hi := case when pg_catalog.cardinality(v_bounds) = 2 then v_bounds[2]::int
                   when v_part like '%/%' then p_max + (case when p_field = 'day-of-week' then 1 else 0 end)
                   else v_lo end;
      if v_lo > v_hi then
        raise exception 'schedule "%": % range "%" runs backwards', p_expr, p_field, v_base
          using errcode = 'invalid_parameter_value';
      end if;
    end if;
    v_values := v_values || array(select pg_catalog.generate_series(v_lo, v_hi, v_step));
  end loop;
  if p_field = 'day-of-week' then
    v_values := array(select case when v = 7 then 0 else v end from pg_catalog.unnest(v_values) v);
  end if;
  return array(select distinct v from pg_catalog.unnest(v_values) v order by v);
end;
$$;

-- Parses a five-field cron expression (or @hourly, @daily, @midnight, @weekly, @monthly,
-- @yearly, @annually) into the jsonb jobs.cron_next evaluates. Raises invalid_parameter_value
-- with a message naming the expression and the field for anything else.
create function jobs.parse_cron(p_expr text)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_text text := pg_catalog.lower(pg_catalog.btrim(pg_catalog.regexp_replace(coalesce(p_expr, ''), '\s+', ' ', 'g')));
  v_fields text[];
  v_spec jsonb;
begin
  v_text := case v_text
    when '@yearly' then '0 0 1 1 *' when '@annually' then '0 0 1 1 *' when '@monthly' then '0 0 1 * *'
    when '@weekly' then '0 0 * * 0' when '@daily' then '0 0 * * *' when '@midnight' then '0 0 * * *'
    when '@hourly' then '0 * * * *' else v_text end;
  if v_text ~ '^[0-9]+ seconds?$' then
    raise exception 'schedule "%": schedules below a minute are not supported', p_expr
      using errcode = 'invalid_parameter_value',
            hint = 'The heartbeat dispatches due and retried work every 10 s; a schedule only decides when discovery runs.';
  end if;
  if v_text like '@%' then
    raise exception 'schedule "%": unknown macro (use @hourly, @daily, @weekly, @monthly or @yearly)', p_expr
      using errcode = 'invalid_parameter_value';
  end if;
  v_fields := pg_catalog.string_to_array(v_text, ' ');
  if v_text = '' or pg_catalog.cardinality(v_fields) <> 5 then
    raise exception 'schedule "%": a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has %',
      p_expr, case when v_text = '' then 0 else pg_catalog.cardinality(v_fields) end
      using errcode = 'invalid_parameter_value', hint = 'For example ''0 0 * * *'' (daily at midnight).';
  end if;
  v_spec := jsonb_build_object(
    'minute', pg_catalog.to_jsonb(jobs.cron_field_values(p_expr, 'minute', v_fields[1], 0, 59, null)),
    'hour', pg_catalog.to_jsonb(jobs.cron_field_values(p_expr, 'hour', v_fields[2], 0, 23, null)),
    'dom', pg_catalog.to_jsonb(jobs.cron_field_values(p_expr, 'day-of-month', v_fields[3], 1, 31, null)),
    'month', pg_catalog.to_jsonb(jobs.cron_field_values(p_expr, 'month', v_fields[4], 1, 12,
               array['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'])),
    'dow', pg_catalog.to_jsonb(jobs.cron_field_values(p_expr, 'day-of-week', v_fields[5], 0, 6,
               array['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])),
    -- Vixie cron: when both day fields are restricted a day matches either; a field that starts
    -- with * leaves the other to decide.
    'dom_any', v_fields[3] like '*%',
    'dow_any', v_fields[5] like '*%',
    -- A job that runs every hour follows real time through a repeated hour (see the header).
    'hour_any', v_fields[2] in ('*', '*/1'));
  return v_spec;
end;
$$;

-- The UTC offset of a zone at an instant (positive east of Greenwich).
create function jobs.zone_offset(p_at timestamptz, p_zone text)
returns interval
language sql
stable
set search_path = ''
as $$
  select (p_at at time zone p_zone) - (p_at at time zone 'UTC');
$$;

-- The first slot of a parsed schedule strictly after p_after, in the zone's wall-clock time
-- (header: the rules at daylight-saving changes). Looks up to five years ahead; null when the
-- expression never fires in that time (e.g. 30 February).
create function jobs.cron_next(p_spec jsonb, p_zone text, p_after timestamptz)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_minutes int[] := array(select pg_catalog.jsonb_array_elements_text(p_spec -> 'minute')::int);
  v_hours int[] := array(select pg_catalog.jsonb_array_elements_text(p_spec -> 'hour')::int);
  v_doms int[] := array(select pg_catalog.jsonb_array_elements_text(p_spec -> 'dom')::int);
  v_months int[] := array(select pg_catalog.jsonb_array_elements_text(p_spec -> 'month')::int);
  v_dows int[] := array(select pg_catalog.jsonb_array_elements_text(p_spec -> 'dow')::int);
  v_either boolean := not ((p_spec ->> 'dom_any')::boolean or (p_spec ->> 'dow_any')::boolean);
  v_hour_any boolean := (p_spec ->> 'hour_any')::boolean;
  v_local timestamp := p_after at time zone p_zone;
  v_from timestamp;
  v_day date;
  v_wall timestamp;
  v_u timestamptz;
  v_before interval;
  v_after interval;
  v_c1 timestamptz;
  v_c2 timestamptz;
  v_lo timestamptz;
  v_hi timestamptz;
  v_mid timestamptz;
  v_best timestamptz;
  v_best_wall timestamp;
  h int;
  m int;
begin
  -- A wall time at or before p_after's can still come later in real time only when clocks go
  -- back within the next 3 hours (no zone moves its clocks by more).
  v_from := case when jobs.zone_offset(p_after - interval '3 hours', p_zone) = jobs.zone_offset(p_after + interval '3 hours', p_zone)
                 then v_local else v_local - interval '3 hours' end;
  for i in 0 .. 1830 loop
    v_day := v_from::date + i;
    continue when not (pg_catalog.date_part('month', v_day)::int = any (v_months));
    if v_either then
      continue when not (pg_catalog.date_part('day', v_day)::int = any (v_doms)
                         or pg_catalog.date_part('dow', v_day)::int = any (v_dows));
    else
      continue when not (pg_catalog.date_part('day', v_day)::int = any (v_doms)
                         and pg_catalog.date_part('dow', v_day)::int = any (v_dows));
    end if;
    foreach h in array v_hours loop
      continue when v_day + pg_catalog.make_interval(hours => h, mins => 59) <= v_from;
      foreach m in array v_minutes loop
        v_wall := v_day + pg_catalog.make_interval(hours => h, mins => m);
        continue when v_wall <= v_from;
        -- Later wall times cannot come earlier in real time than a slot 3 hours of clock behind.
        if v_best is not null and v_wall > v_best_wall + interval '3 hours' then
          return v_best;
        end if;
        v_u := v_wall at time zone p_zone;
        v_before := jobs.zone_offset(v_u - interval '3 hours', p_zone);
        v_after := jobs.zone_offset(v_u + interval '3 hours', p_zone);
        if v_before = v_after then
          -- No change of clocks near: one instant, and no later wall time can beat it.
          if v_u > p_after then
            return least(v_u, v_best);
          end if;
          continue;
        end if;
        v_c1 := (v_wall - v_before) at time zone 'UTC';
        v_c2 := (v_wall - v_after) at time zone 'UTC';
        if (v_c1 at time zone p_zone) = v_wall and (v_c2 at time zone p_zone) = v_wall then
          -- Clocks went back: the wall time happens twice.
          v_lo := least(v_c1, v_c2);
          v_hi := greatest(v_c1, v_c2);
          v_u := case when v_lo > p_after then v_lo
                      when v_hour_any and v_hi > p_after then v_hi end;
        elsif (v_c1 at time zone p_zone) = v_wall then
          v_u := v_c1;
        elsif (v_c2 at time zone p_zone) = v_wall then
          v_u := v_c2;
        else
          -- Clocks went forward over this wall time. A job that runs every hour follows real
          -- time: this slot vanished. Any other fires when the clocks jump (to the minute).
          continue when v_hour_any;
          v_lo := least(v_c1, v_c2);
          v_hi := greatest(v_c1, v_c2);
          while v_hi - v_lo > interval '1 minute' loop
            v_mid := pg_catalog.to_timestamp(pg_catalog.floor(
                       (pg_catalog.date_part('epoch', v_lo) + pg_catalog.date_part('epoch', v_hi)) / 120) * 60);
            exit when v_mid <= v_lo;
            if jobs.zone_offset(v_mid, p_zone) = jobs.zone_offset(v_hi, p_zone) then
              v_hi := v_mid;
            else
              v_lo := v_mid;
            end if;
          end loop;
          v_u := v_hi;
        end if;
        if v_u > p_after and (v_best is null or v_u < v_best) then
          v_best := v_u;
          v_best_wall := v_wall;
        end if;
      end loop;
    end loop;
  end loop;
  return v_best;
end;
$$;

-- A time zone name Postgres knows (IANA, e.g. 'Asia/Kolkata', or 'UTC'), or an exception naming it.
create function jobs.check_time_zone(p_zone text, p_what text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_zone is null or not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = p_zone) then
    raise exception '%: unknown time zone "%"', p_what, coalesce(p_zone, 'null')
      using errcode = 'invalid_parameter_value',
            hint = 'Use an IANA name such as ''Europe/London'' or ''Asia/Kolkata'' (select name from pg_timezone_names).';
  end if;
  return p_zone;
end;
$$;

-- How late the scheduler may reach a slot and still call it on time (the heartbeat runs every
-- 10 s); a later one was missed: the database or pg_cron was down.
create function jobs.schedule_grace()
returns interval
language sql
immutable
set search_path = ''
as $$
  select interval '2 minutes';
$$;

-- ---------------------------------------------------------------------------------------------
-- Schedules on jobs.job

alter table jobs.job
  add column timezone text not null default 'UTC',
  add column catch_up text not null default 'skip' check (catch_up in ('once', 'skip')),
  add column schedule_spec jsonb,
  add column next_run_at timestamptz,
  add column last_slot_at timestamptz,
  add column last_slot_outcome text check (last_slot_outcome in ('ran', 'caught_up', 'skipped', 'disabled')),
  add column last_slot_missed int not null default 0;
comment on column jobs.job.schedule is
  'Cron expression in the job''s time zone (null = by hand only), evaluated by the engine''s scheduler (jobs.heartbeat).';
comment on column jobs.job.timezone is 'IANA time zone the schedule is read in (default UTC).';
comment on column jobs.job.catch_up is
  'After downtime: once = run once for all the slots missed, skip = run none and wait for the next slot.';
comment on column jobs.job.next_run_at is 'The next scheduled slot (UTC); null when the job has no schedule.';
comment on column jobs.job.last_slot_at is 'The latest slot the scheduler handled (the previous fire time).';
comment on column jobs.job.last_slot_outcome is
  'ran (on time) | caught_up (ran once after downtime) | skipped (missed, catch_up = skip) | disabled (job not enabled).';
comment on column jobs.job.last_slot_missed is 'Slots that passed unfired before last_slot_at was handled (0 when on time; counted up to 1000).';
comment on table jobs.job is
  'One row per named job (jobs.define). schedule is a cron expression in timezone (null = manual only).';
create index job_next_run on jobs.job (next_run_at) where next_run_at is not null;

alter table jobs.run
  add column slot_at timestamptz,
  add column missed_slots int not null default 0;
comment on column jobs.run.slot_at is 'For a scheduled run: the slot it ran for.';
comment on column jobs.run.missed_slots is 'For a scheduled run: slots before it that passed unfired (downtime); they ran as this one.';

-- Sets a job's schedule: null for by hand only. The expression and zone are checked here, once.
-- catch_up null: 'once' when the hour field is restricted (daily, weekly, every 6 hours),
-- 'skip' when the job runs every hour or more often (hour field *: its next slot is near anyway).
-- The next slot is recomputed only when the schedule or zone changes.
create function jobs.set_schedule(p_job text, p_schedule text, p_timezone text default 'UTC', p_catch_up text default null)
returns jobs.job
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_spec jsonb;
  v_zone text := coalesce(p_timezone, 'UTC');
  v_next timestamptz;
begin
  select * into v_job from jobs.job where name = p_job for update;
  if not found then
    raise exception 'jobs.set_schedule: no job named %', coalesce(p_job, 'null')
      using errcode = 'no_data_found', hint = 'select name from jobs.job;';
  end if;
  if p_catch_up is not null and p_catch_up not in ('once', 'skip') then
    raise exception 'jobs.define: catch_up must be once or skip, not %', p_catch_up using errcode = 'invalid_parameter_value';
  end if;
  if v_zone is distinct from v_job.timezone then
    perform jobs.check_time_zone(v_zone, 'jobs.define: timezone');
  end if;
  if p_schedule is null then
    update jobs.job
       set schedule = null, schedule_spec = null, timezone = v_zone, next_run_at = null,
           catch_up = coalesce(p_catch_up, 'skip'), updated_at = now()
     where name = p_job returning * into v_job;
    return v_job;
  end if;
  begin
    v_spec := jobs.parse_cron(p_schedule);
  exception when invalid_parameter_value then
    raise exception 'jobs.define: %', sqlerrm using errcode = 'invalid_parameter_value',
      hint = 'Five fields: minute hour day-of-month month day-of-week, e.g. ''0 0 * * *'' (daily at midnight).';
  end;
  if v_job.schedule_spec is not distinct from v_spec and v_job.timezone = v_zone and v_job.next_run_at is not null then
    v_next := v_job.next_run_at;
  else
    v_next := jobs.cron_next(v_spec, v_zone, now());
    if v_next is null then
      raise exception 'jobs.define: schedule "%" never fires (no such date in the next five years)', p_schedule
        using errcode = 'invalid_parameter_value';
    end if;
  end if;
  update jobs.job
     set schedule = p_schedule, schedule_spec = v_spec, timezone = v_zone, next_run_at = v_next,
         catch_up = coalesce(p_catch_up, case when v_spec ->> 'hour_any' = 'true' then 'skip' else 'once' end),
         updated_at = now()
   where name = p_job returning * into v_job;
  return v_job;
end;
$$;

-- One job's due slot: ticks it (on time, or once after downtime with catch_up 'once') or skips
-- it, and moves next_run_at past now. Takes the tick's locks first (outcome lock, then the job
-- row) and checks again, so two heartbeats never fire one slot twice. null: nothing was due.
-- p_now is the scheduler's clock (tests pass one; the tick itself runs at the real time).
create function jobs.fire_schedule(p_job text, p_now timestamptz default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_slot timestamptz;
  v_next timestamptz;
  v_due int := 1;
  v_on_time boolean;
  v_outcome text;
  v_summary jsonb;
  v_now timestamptz := coalesce(p_now, now());
begin
  perform jobs.lock_outcomes(p_job, true);
  select * into v_job from jobs.job where name = p_job for update;
  if not found or v_job.next_run_at is null or v_job.next_run_at > v_now then
    return null;
  end if;
  -- The latest slot that has passed, and how many passed unfired.
  v_slot := v_job.next_run_at;
  loop
    v_next := jobs.cron_next(v_job.schedule_spec, v_job.timezone, v_slot);
    exit when v_next is null or v_next > v_now;
    v_slot := v_next;
    v_due := v_due + 1;
    if v_due >= 1000 then
      v_next := jobs.cron_next(v_job.schedule_spec, v_job.timezone, v_now);
      exit;
    end if;
  end loop;
  v_on_time := v_now - v_slot <= jobs.schedule_grace();

  v_outcome := case when not v_job.enabled then 'disabled'
                    when v_on_time then 'ran'
                    when v_job.catch_up = 'once' then 'caught_up'
                    else 'skipped' end;
  if v_outcome in ('ran', 'caught_up') then
    v_summary := jobs.tick(v_job.name, 'cron');
    update jobs.run set slot_at = v_slot, missed_slots = v_due - case when v_on_time then 1 else 0 end
     where id = (v_summary ->> 'run_id')::bigint;
  end if;
  update jobs.job
     set next_run_at = v_next, last_slot_at = v_slot, last_slot_outcome = v_outcome,
         last_slot_missed = v_due - case when v_on_time then 1 else 0 end
   where name = v_job.name;
  return jsonb_build_object('job', v_job.name, 'slot_at', v_slot, 'outcome', v_outcome,
                            'missed', v_due - case when v_on_time then 1 else 0 end, 'next_run_at', v_next,
                            'run', v_summary);
end;
$$;

-- Every due slot of every job, in job-name order (the lock order of calls that take several
-- jobs' outcome locks). One job's failure is recorded on it and does not stop the others; its
-- next_run_at still moves on, so a broken job is not ticked every heartbeat.
create function jobs.fire_due_schedules(p_now timestamptz default null)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_name text;
  v_fired int := 0;
  v_now timestamptz := coalesce(p_now, now());
begin
  for v_name in select j.name from jobs.job j where j.next_run_at <= v_now order by j.name loop
    begin
      if jobs.fire_schedule(v_name, v_now) is not null then
        v_fired := v_fired + 1;
      end if;
    exception when others then
      update jobs.job
         set last_error = left('scheduler: ' || sqlerrm, 1000), last_error_at = now(),
             next_run_at = jobs.cron_next(schedule_spec, timezone, v_now)
       where name = v_name;
    end;
  end loop;
  return v_fired;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Send windows: a task may wait for its recipient's local hours

alter table jobs.task
  add column window_zone text,
  add column window_start time,
  add column window_end time,
  add column window_until timestamptz,
  add constraint task_window_complete
    check ((window_zone is null) = (window_start is null) and (window_zone is null) = (window_end is null)
           and (window_zone is null) = (window_until is null));
comment on column jobs.task.window_zone is
  'Send window (payload.send_window): the task is claimed only between window_start and window_end in this zone.';
comment on column jobs.task.window_until is
  'End of the window occurrence run_after lies in: a task still queued then waits for the next one.';
create index task_window_closed on jobs.task (job_name, window_until) where state = 'queued' and window_zone is not null;

-- The window occurrence at or after p_at: when it opens (p_at itself when inside) and closes.
-- A window whose start is later than its end runs over midnight (22:00–06:00).
create function jobs.send_window_at(p_at timestamptz, p_zone text, p_start time, p_end time,
                                    out opens_at timestamptz, out closes_at timestamptz)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_local timestamp := p_at at time zone p_zone;
  v_day date := v_local::date;
  v_time time := v_local::time;
begin
  if p_start < p_end then
    if v_time < p_start then
      opens_at := (v_day + p_start) at time zone p_zone;
      closes_at := (v_day + p_end) at time zone p_zone;
    elsif v_time < p_end then
      opens_at := p_at;
      closes_at := (v_day + p_end) at time zone p_zone;
    else
      opens_at := ((v_day + 1) + p_start) at time zone p_zone;
      closes_at := ((v_day + 1) + p_end) at time zone p_zone;
    end if;
  else
    if v_time < p_end then
      opens_at := p_at;
      closes_at := (v_day + p_end) at time zone p_zone;
    elsif v_time < p_start then
      opens_at := (v_day + p_start) at time zone p_zone;
      closes_at := ((v_day + 1) + p_end) at time zone p_zone;
    else
      opens_at := p_at;
      closes_at := ((v_day + 1) + p_end) at time zone p_zone;
    end if;
  end if;
  -- A wall time skipped by a change of clocks can put the open after p_at's own.
  opens_at := greatest(opens_at, p_at);
end;
$$;

-- On insert: payload.send_window {"time_zone": "Asia/Kolkata", "start": "08:00", "end": "21:00"}
-- becomes the task's window columns (and leaves the payload); bad input raises naming the field.
create function jobs.task_take_send_window()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_window jsonb := new.payload -> 'send_window';
  v_field text;
begin
  new.payload := new.payload - 'send_window';
  if v_window is null or v_window = 'null'::jsonb then
    return new;
  end if;
  if jsonb_typeof(v_window) <> 'object' then
    raise exception 'send_window: must be an object {"time_zone", "start", "end"}, not %', v_window
      using errcode = 'invalid_parameter_value';
  end if;
  select k into v_field from jsonb_object_keys(v_window) k where k not in ('time_zone', 'start', 'end') limit 1;
  if v_field is not null then
    raise exception 'send_window.%: unknown field (expected time_zone, start, end)', v_field
      using errcode = 'invalid_parameter_value';
  end if;
  foreach v_field in array array['start', 'end'] loop
    if coalesce(v_window ->> v_field, '') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' then
      raise exception 'send_window.%: must be a local time HH:MM from 00:00 to 23:59, not %',
        v_field, coalesce(v_window -> v_field, 'null'::jsonb) using errcode = 'invalid_parameter_value';
    end if;
  end loop;
  if (v_window ->> 'start')::time = (v_window ->> 'end')::time then
    raise exception 'send_window: start and end are both % (leave send_window out for no window)', v_window ->> 'start'
      using errcode = 'invalid_parameter_value';
  end if;
  if jsonb_typeof(v_window -> 'time_zone') is distinct from 'string' then
    raise exception 'send_window.time_zone: required, a time zone name such as "Asia/Kolkata"'
      using errcode = 'invalid_parameter_value';
  end if;
  begin
    perform now() at time zone (v_window ->> 'time_zone');
  exception when others then
    raise exception 'send_window.time_zone: unknown time zone %', v_window -> 'time_zone'
      using errcode = 'invalid_parameter_value';
  end;
  new.window_zone := v_window ->> 'time_zone';
  new.window_start := (v_window ->> 'start')::time;
  new.window_end := (v_window ->> 'end')::time;
  select w.opens_at, w.closes_at into new.run_after, new.window_until
    from jobs.send_window_at(new.run_after, new.window_zone, new.window_start, new.window_end) w;
  return new;
end;
$$;
create trigger task_take_send_window before insert on jobs.task
  for each row when (new.payload ? 'send_window') execute function jobs.task_take_send_window();

-- Whenever a windowed task is queued again or its run_after moves (a retry's backoff, a reap,
-- jobs.retry, a closed window's deferral), it waits for the window occurrence at or after it.
create function jobs.task_fit_send_window()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  select w.opens_at, w.closes_at into new.run_after, new.window_until
    from jobs.send_window_at(new.run_after, new.window_zone, new.window_start, new.window_end) w;
  return new;
end;
$$;
create trigger task_fit_send_window before update of state, run_after on jobs.task
  for each row when (new.window_zone is not null and new.state = 'queued'
                     and (old.state <> 'queued' or new.run_after is distinct from old.run_after))
  execute function jobs.task_fit_send_window();

-- Tasks still queued when their window closed (a backlog, a rate limit) wait for the next one.
-- The heartbeat calls it for every job it visits (one with due work), so such a task moves within
-- 10 s; until then the claims below skip it (window_until). The ids are collected once (an
-- InitPlan): written as "id in (subquery)", stale statistics could make it a semi join that runs
-- the locking subquery once per task of the job.
create function jobs.defer_closed_windows(p_job_name text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_count int;
begin
  update jobs.task t set run_after = now(), updated_at = now()
   where t.id = any (array(
           select x.id from jobs.task x
            where x.job_name = p_job_name and x.state = 'queued' and x.window_zone is not null
              and x.window_until <= now() and x.run_after <= now()
              for update skip locked));
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

-- As in 20261123100000_jobs_core.sql and 20261203090000_jobs_bucket_lock_order.sql, except that
-- a task whose send window closed is not taken (a column compare: no cost for tasks without one).
create or replace function jobs.select_due_tasks(p_job jobs.job, p_want int)
returns bigint[]
language plpgsql
set search_path = ''
as $$
declare
  v_want int := coalesce(p_want, 0);
  v_ids bigint[];
begin
  if v_want <= 0 then
    return null;
  end if;
  if p_job.task_rate_limits then
    return nullif(jobs.claim_due_tasks(p_job, v_want), '{}'::bigint[]);
  end if;
  if p_job.rate_limit_key is not null then
    v_want := least(v_want, coalesce(jobs.rate_limit_hold(p_job.rate_limit_key), v_want));
    if v_want <= 0 then
      return null;
    end if;
  end if;
  select array_agg(id order by run_after, id) into v_ids
    from (select t.id, t.run_after from jobs.task t
           where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
             and (t.window_until is null or t.window_until > now())
           order by t.run_after, t.id
           limit v_want
             for update skip locked) due;
  if v_ids is not null and p_job.rate_limit_key is not null then
    perform jobs.rate_limit_take(p_job.rate_limit_key, cardinality(v_ids));
  end if;
  return v_ids;
end;
$$;

-- As in 20261203090000_jobs_bucket_lock_order.sql, except that a candidate whose send window
-- closed is skipped.
create or replace function jobs.claim_due_tasks(p_job jobs.job, p_want int)
returns bigint[]
language plpgsql
set search_path = ''
as $$
declare
  v_want int := coalesce(p_want, 0);
  v_scan int := greatest(coalesce(p_want, 0) * 50, 1000);
  v_ids bigint[] := '{}'::bigint[];
  v_avail jsonb := '{}'::jsonb;
  v_cand record;
  v_key text;
  v_ok boolean;
  v_locked bigint;
begin
  if v_want <= 0 then
    return v_ids;
  end if;
  perform jobs.lock_claims(p_job.name);
  -- A key without a bucket row is not limited.
  for v_key in
    select k.key from (
      select p_job.rate_limit_key as key where p_job.rate_limit_key is not null
      union
      select unnest(d.rate_keys)
        from (select t.rate_keys from jobs.task t
               where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
               order by t.run_after, t.id
               limit v_scan) d) k
     order by k.key
  loop
    v_avail := v_avail || jsonb_build_object(v_key, coalesce(jobs.rate_limit_hold(v_key), 2147483647));
  end loop;
  if p_job.rate_limit_key is not null then
    v_want := least(v_want, (v_avail ->> p_job.rate_limit_key)::int);
    if v_want <= 0 then
      return v_ids;
    end if;
  end if;

  for v_cand in
    select t.id, t.rate_keys, t.window_until from jobs.task t
     where t.job_name = p_job.name and t.state = 'queued' and t.run_after <= now()
     order by t.run_after, t.id
     limit v_scan
  loop
    exit when cardinality(v_ids) >= v_want;
    -- Its send window closed: the heartbeat moves it to the next opening (checked here, not in
    -- the query, so the query keeps its plan: an index scan in claim order).
    continue when v_cand.window_until <= now();
    v_ok := true;
    foreach v_key in array coalesce(v_cand.rate_keys, '{}'::text[]) loop
      if not v_avail ? v_key then
        -- A task queued since the keys were locked: its bucket is taken now (rare).
        v_avail := v_avail || jsonb_build_object(v_key, coalesce(jobs.rate_limit_hold(v_key), 2147483647));
      end if;
      if (v_avail ->> v_key)::int < 1 then
        v_ok := false;
        exit;
      end if;
    end loop;
    continue when not v_ok;

    v_locked := null;
    select t.id into v_locked from jobs.task t
     where t.id = v_cand.id and t.state = 'queued' and t.run_after <= now()
       for update skip locked;
    continue when v_locked is null;

    v_ids := v_ids || v_locked;
    foreach v_key in array coalesce(v_cand.rate_keys, '{}'::text[]) loop
      v_avail := jsonb_set(v_avail, array[v_key], to_jsonb((v_avail ->> v_key)::int - 1));
    end loop;
  end loop;

  if cardinality(v_ids) > 0 then
    perform jobs.rate_limit_take(c.k, c.n::int)
       from (select k, count(*) as n
               from jobs.task t, unnest(t.rate_keys) as k
              where t.id = any (v_ids)
              group by k
              order by k) c;
    if p_job.rate_limit_key is not null then
      perform jobs.rate_limit_take(p_job.rate_limit_key, cardinality(v_ids));
    end if;
  end if;
  return v_ids;
end;
$$;


-- ---------------------------------------------------------------------------------------------
-- The heartbeat: schedules, then the jobs with work

-- As before (reap and restart the dispatch chain of every enabled job), plus: fires the due
-- schedules first, and visits only jobs with something in flight or due, so 30 idle jobs cost a
-- few index probes rather than 30 reaps and claims. Vault is read only when there is work (a
-- decryption is most of what an idle heartbeat in a fresh session would cost).
create or replace function jobs.heartbeat()
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_claimed int;
  v_total int := 0;
  v_checked boolean := false;
begin
  perform jobs.fire_due_schedules();
  for v_job in
    select j.* from jobs.job j
     where j.enabled
       and (exists (select 1 from jobs.batch b where b.job_name = j.name and b.settled_at is null)
            or exists (select 1 from jobs.task t where t.job_name = j.name and t.state = 'running')
            or exists (select 1 from jobs.task t where t.job_name = j.name and t.state = 'queued' and t.run_after <= now()))
     order by j.name
       for update skip locked
  loop
    if not v_checked then
      if not jobs.dispatch_secrets_present() then
        raise warning 'jobs.heartbeat: Vault secret project_url is missing; nothing dispatched';
        return 0;
      end if;
      v_checked := true;
    end if;
    -- One job's failure (e.g. a dropped target) must not stop the others' chains.
    begin
      perform jobs.defer_closed_windows(v_job.name);
      perform jobs.reap(v_job);
      select c.claimed into v_claimed from jobs.claim_and_dispatch(v_job, null) c;
      v_total := v_total + v_claimed;
    exception when others then
      update jobs.job set last_error = left('heartbeat: ' || sqlerrm, 1000), last_error_at = now()
       where name = v_job.name;
    end;
  end loop;
  return v_total;
end;
$$;

-- pg_cron 1.4 only (see 20261123100000_jobs_core.sql): the minute's heartbeats now share one
-- dblink session (each statement still commits on its own, so each has its own now()), instead
-- of a new connection each. (A procedure committing between heartbeats in pg_cron's own session
-- would save the dblink session too; it was tried and not kept, bench/RESULTS.md says why.)
do $$
begin
  if not exists (select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                  where n.nspname = 'jobs' and p.proname = 'heartbeat_minute') then
    return;
  end if;
  create or replace function jobs.heartbeat_minute(p_every_seconds int default 10, p_runs int default null)
  returns int
  language plpgsql
  set search_path = ''
  as $fn$
  declare
    v_conn text := format('host=%s port=%s dbname=%s user=%s',
      coalesce(nullif(pg_catalog.current_setting('cron.host', true), ''), 'localhost'),
      pg_catalog.current_setting('port'), pg_catalog.current_database(), current_user);
    v_name text := 'duework_heartbeat_' || pg_catalog.pg_backend_pid();
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_minute_end timestamptz := pg_catalog.date_trunc('minute', pg_catalog.clock_timestamp()) + interval '1 minute';
    v_every interval := make_interval(secs => greatest(coalesce(p_every_seconds, 10), 1));
    v_open boolean := false;
    v_ok int := 0;
    i int := 0;
  begin
    loop
      begin
        if not v_open then
          perform extensions.dblink_connect(v_name, v_conn);
          v_open := true;
        end if;
        perform * from extensions.dblink(v_name, 'select jobs.heartbeat()') as h (dispatched int);
        v_ok := v_ok + 1;
      exception when others then
        raise warning 'jobs.heartbeat_minute: heartbeat % failed: %', i + 1, sqlerrm;
        -- A broken session is opened again for the next heartbeat.
        if v_open then
          begin
            perform extensions.dblink_disconnect(v_name);
          exception when others then
            null;
          end;
          v_open := false;
        end if;
      end;
      i := i + 1;
      exit when i >= coalesce(p_runs, 2147483647)
             or (p_runs is null and v_started + i * v_every > v_minute_end - interval '1 second');
      perform pg_catalog.pg_sleep(greatest(0, extract(epoch from
        v_started + i * v_every - pg_catalog.clock_timestamp())::double precision));
    end loop;
    if v_open then
      perform extensions.dblink_disconnect(v_name);
    end if;
    return v_ok;
  end;
  $fn$;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- jobs.define: time zone and catch-up; no pg_cron row per job any more

drop function jobs.define(text, text, regprocedure, text, jsonb, int, int, int, int, text, regprocedure, regprocedure,
                          numeric, numeric, numeric, jsonb, boolean);

-- Registers (or updates) a job, everything it needs, and its schedule; a job needs no other
-- write to jobs.* (name the arguments: the first ten keep their positions).
--   p_discover_function  (jsonb) → table(key text, payload jsonb): the due items (the job's config in)
--   p_context_function   (jsonb) → table(task_id bigint, context jsonb, moot text), optional
--   p_apply_function     (jsonb) → table(task_id bigint, outcome text, error text, result jsonb), optional
--   p_schedule           cron expression read in p_timezone (null: by hand only), checked here
--   p_timezone           IANA zone, default UTC
--   p_catch_up           once | skip after downtime; null: once unless the job runs every hour or more often
--   p_backoff_*          retry delay min(cap, base × 2^(attempt−1)), shortened by up to jitter × 100 %
--   p_rate_limit         the job's bucket {"key", "capacity", "refill_per_second"} (created full,
--                        re-sized when it changed), every claimed task takes a token; null: none
--   p_task_rate_limits   claims also honour each task's rate_keys (jobs.claim_due_tasks)
-- Each call sets every one of these (an argument left out takes its default); the job's
-- enabled, paused and suspension state, its tasks and (same schedule and zone) its next slot are kept.
create function jobs.define(
  p_name text,
  p_target_function text,
  p_discover_function regprocedure,
  p_schedule text default null,
  p_config jsonb default '{}',
  p_batch_size int default 10,
  p_max_in_flight int default 5,
  p_lease_seconds int default 15,
  p_max_attempts int default 5,
  p_description text default '',
  p_context_function regprocedure default null,
  p_apply_function regprocedure default null,
  p_backoff_base_seconds numeric default 30,
  p_backoff_cap_seconds numeric default 3600,
  p_backoff_jitter numeric default 0.2,
  p_rate_limit jsonb default null,
  p_task_rate_limits boolean default false,
  p_timezone text default 'UTC',
  p_catch_up text default null)
returns jobs.job
language plpgsql
set search_path = ''
as $$
declare
  v_job jobs.job;
  v_problem text;
begin
  if not jobs.has_signature(p_discover_function, 'TABLE(key text, payload jsonb)') then
    raise exception 'jobs.define: discover function % must take (jsonb) and return table(key text, payload jsonb)',
      p_discover_function using errcode = 'invalid_parameter_value';
  end if;
  if p_context_function is not null
     and not jobs.has_signature(p_context_function, 'TABLE(task_id bigint, context jsonb, moot text)') then
    raise exception 'jobs.define: context function % must take (jsonb) and return table(task_id bigint, context jsonb, moot text)',
      p_context_function using errcode = 'invalid_parameter_value';
  end if;
  if p_apply_function is not null
     and not jobs.has_signature(p_apply_function, 'TABLE(task_id bigint, outcome text, error text, result jsonb)') then
    raise exception 'jobs.define: apply function % must take (jsonb) and return table(task_id bigint, outcome text, error text, result jsonb)',
      p_apply_function using errcode = 'invalid_parameter_value';
  end if;
  if p_rate_limit is not null then
    v_problem := jobs.bucket_problem(p_rate_limit);
    if v_problem is not null then
      raise exception 'jobs.define: p_rate_limit: %', v_problem using errcode = 'invalid_parameter_value';
    end if;
  end if;
  -- Checked before anything is written, so a bad schedule or zone changes nothing.
  if p_schedule is not null then
    begin
      perform jobs.parse_cron(p_schedule);
    exception when invalid_parameter_value then
      raise exception 'jobs.define: %', sqlerrm using errcode = 'invalid_parameter_value',
        hint = 'Five fields: minute hour day-of-month month day-of-week, e.g. ''0 0 * * *'' (daily at midnight).';
    end;
  end if;
  if coalesce(p_timezone, 'UTC') <> 'UTC'
     and p_timezone is distinct from (select j.timezone from jobs.job j where j.name = p_name) then
    perform jobs.check_time_zone(p_timezone, 'jobs.define: timezone');
  end if;

  insert into jobs.job as j (name, target_function, discover_function, context_function, apply_function,
                             config, batch_size, max_in_flight, lease_seconds, max_attempts, backoff_base_seconds,
                             backoff_cap_seconds, backoff_jitter, task_rate_limits, description)
  values (p_name, p_target_function, p_discover_function::text, p_context_function::text, p_apply_function::text,
          coalesce(p_config, '{}'), p_batch_size, p_max_in_flight, p_lease_seconds, p_max_attempts,
          p_backoff_base_seconds, p_backoff_cap_seconds, p_backoff_jitter, coalesce(p_task_rate_limits, false),
          coalesce(p_description, ''))
  on conflict (name) do update
     set target_function = excluded.target_function, discover_function = excluded.discover_function,
         context_function = excluded.context_function, apply_function = excluded.apply_function,
         config = excluded.config, batch_size = excluded.batch_size,
         max_in_flight = excluded.max_in_flight, lease_seconds = excluded.lease_seconds,
         max_attempts = excluded.max_attempts, backoff_base_seconds = excluded.backoff_base_seconds,
         backoff_cap_seconds = excluded.backoff_cap_seconds, backoff_jitter = excluded.backoff_jitter,
         task_rate_limits = excluded.task_rate_limits, description = excluded.description, updated_at = now()
  returning * into v_job;

  -- The job's bucket (after the job row: the lock order is job row, claim lock, buckets).
  if p_rate_limit is not null then
    perform jobs.size_rate_limits(p_name, jsonb_build_array(p_rate_limit));
  end if;
  if v_job.rate_limit_key is distinct from p_rate_limit ->> 'key' then
    update jobs.job set rate_limit_key = p_rate_limit ->> 'key' where name = v_job.name;
  end if;

  v_job := jobs.set_schedule(p_name, p_schedule, p_timezone, p_catch_up);
  -- A pg_cron row of its own from before the engine scheduled jobs: the heartbeat fires it now.
  if exists (select 1 from cron.job where jobname = 'duework:' || p_name) then
    perform cron.unschedule('duework:' || p_name);
  end if;
  return v_job;
end;
$$;

-- Existing jobs move to the engine's scheduler: parse their (UTC) schedules and drop their own
-- pg_cron rows, so nothing fires twice.
do $$
declare
  v_job record;
begin
  for v_job in select name, schedule from jobs.job where schedule is not null order by name loop
    perform jobs.set_schedule(v_job.name, v_job.schedule, 'UTC', null);
  end loop;
  perform cron.unschedule(c.jobname)
     from cron.job c join jobs.job j on c.jobname = 'duework:' || j.name;
end;
$$;
alter table jobs.job add constraint job_schedule_parsed check ((schedule is null) = (schedule_spec is null));

-- ---------------------------------------------------------------------------------------------
-- Run and wait

-- A run by hand whose tasks the caller will watch: one tick now, and the ids of the job's open
-- tasks after it (what was due, what it discovered, what was in flight already).
create function jobs.start_watched_run(p_job text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_summary jsonb := jobs.tick(p_job, 'manual');
begin
  return v_summary || jsonb_build_object('started_at', pg_catalog.clock_timestamp(), 'task_ids',
    coalesce((select jsonb_agg(t.id order by t.id) from jobs.task t
               where t.job_name = p_job and t.state in ('queued', 'running')), '[]'::jsonb));
end;
$$;

-- What became of a watched run's tasks. settled: none is running or due any more (each one
-- finished, or waits for a retry's backoff or a send window: retried / waiting).
create function jobs.watched_run_progress(p_run jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_ids bigint[] := array(select jsonb_array_elements_text(p_run -> 'task_ids')::bigint);
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_counts jsonb;
begin
  select jsonb_build_object(
           'tasks', count(*),
           'succeeded', count(*) filter (where t.state = 'succeeded'),
           'retried', count(*) filter (where t.state = 'queued' and t.run_after > v_now and t.attempts > 0),
           'waiting', count(*) filter (where t.state = 'queued' and t.run_after > v_now and t.attempts = 0),
           'dead', count(*) filter (where t.state = 'dead'),
           'discarded', count(*) filter (where t.state = 'discarded'),
           'cancelled', count(*) filter (where t.state = 'cancelled'),
           'remaining', count(*) filter (where t.state = 'running' or (t.state = 'queued' and t.run_after <= v_now)),
           'next_attempt_at', min(t.run_after) filter (where t.state = 'queued' and t.run_after > v_now))
    into v_counts
    from jobs.task t where t.id = any (v_ids);
  return jsonb_build_object('job', p_run -> 'job', 'run_id', p_run -> 'run_id', 'discovered', p_run -> 'discovered')
         || v_counts
         || jsonb_build_object(
              'settled', (v_counts ->> 'remaining')::int = 0,
              'waited_seconds', round(extract(epoch from v_now - (p_run ->> 'started_at')::timestamptz)::numeric, 1),
              'error', p_run -> 'error');
end;
$$;

-- One line for psql's NOTICE: "booking-reminders: 3 succeeded, 1 retried, 0 dead, 0 remaining …".
create function jobs.describe_watched_run(p_progress jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
  select format('%s: %s succeeded, %s retried, %s dead, %s discarded, %s waiting, %s remaining of %s task(s) (%s discovered) after %s s%s%s',
                p_progress ->> 'job', p_progress ->> 'succeeded', p_progress ->> 'retried', p_progress ->> 'dead',
                p_progress ->> 'discarded', p_progress ->> 'waiting', p_progress ->> 'remaining', p_progress ->> 'tasks',
                p_progress ->> 'discovered', p_progress ->> 'waited_seconds',
                case when (p_progress ->> 'settled')::boolean then '' else ' (timed out)' end,
                case when p_progress ->> 'error' is not null then '; ' || (p_progress ->> 'error') else '' end);
$$;

-- call jobs.run_and_wait('booking-reminders');  or  call jobs.run_and_wait('booking-reminders', timeout => '2 min');
-- Runs one tick and COMMITS it (pg_net sends only committed requests), then waits until the
-- run's tasks settle or the timeout passes, and returns (and raises as a NOTICE) what happened.
-- A procedure that commits cannot be called inside a transaction block (BEGIN …, or several
-- statements sent as one query): Postgres refuses with "invalid transaction termination". For
-- that reason it also cannot carry a SET search_path clause; every name below is qualified and
-- the work is done by functions that pin theirs.
create procedure jobs.run_and_wait(job text, timeout interval default interval '60 seconds', inout summary jsonb default null)
language plpgsql
as $$
declare
  v_run jsonb;
  v_deadline timestamptz;
begin
  if timeout is null or timeout < interval '0 seconds' or timeout > interval '1 hour' then
    raise exception 'jobs.run_and_wait: timeout must be between 0 seconds and 1 hour, not %', coalesce(timeout::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  v_run := jobs.start_watched_run(job);
  commit;
  v_deadline := pg_catalog.clock_timestamp() + timeout;
  loop
    summary := jobs.watched_run_progress(v_run);
    exit when (summary ->> 'settled')::boolean or pg_catalog.clock_timestamp() >= v_deadline;
    -- Nothing will move: the tick dispatched nothing and said why (paused, suspended, no Vault secret).
    exit when v_run ->> 'error' is not null and (v_run ->> 'claimed')::int = 0 and (v_run ->> 'batches_in_flight')::int = 0;
    commit;
    perform pg_catalog.pg_sleep(0.2);
  end loop;
  raise notice '%', jobs.describe_watched_run(summary);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Health: the schedule, the next and previous slots in UTC and in the job's zone

drop view jobs.health;
create view jobs.health as
select j.name,
       j.schedule,
       j.timezone,
       j.next_run_at,
       (j.next_run_at at time zone j.timezone) as next_run_local,
       j.last_slot_at as prev_run_at,
       (j.last_slot_at at time zone j.timezone) as prev_run_local,
       j.last_slot_outcome as prev_run_outcome,
       j.catch_up,
       j.enabled,
       j.paused,
       j.suspended_until,
       r.started_at as last_run_at,
       r.error as last_run_error,
       (select count(*) from jobs.task t where t.job_name = j.name and t.state = 'queued') as queued,
       (select count(*) from jobs.task t where t.job_name = j.name and t.state = 'queued'
           and t.run_after <= now()) as due_now,
       (select count(*) from jobs.batch b where b.job_name = j.name and b.settled_at is null) as batches_in_flight,
       (select count(*) from jobs.task t where t.job_name = j.name and t.state = 'dead') as dead,
       j.last_error,
       j.last_error_at
  from jobs.job j
  left join lateral (select * from jobs.run x where x.job_name = j.name order by x.started_at desc limit 1) r on true;
comment on view jobs.health is
  'Per job: schedule, next and previous slot (UTC and local), last run, queue, in flight, dead, last error.';

revoke all on all tables in schema jobs from public, anon, authenticated;
revoke all on all functions in schema jobs from public, anon, authenticated;
revoke all on all procedures in schema jobs from public, anon, authenticated;
