-- Send windows for the messages people receive: a reminder, a notice or a LinkedIn message goes out
-- within the recipient's local hours (08:00-21:00 by default), never at 03:00 their time. The
-- engine does the waiting (20261204090000_jobs_scheduling.sql, "Send windows"): a discover
-- function puts payload.send_window {"time_zone", "start", "end"} on a task, the task's run_after
-- becomes the window's next opening, and a task still queued when its window closes (a backlog, a
-- rate limit) waits for the next one. Here the domains say whose hours count:
--
--   bookings    the WhatsApp and email messages to clients (booking-reminders, payment-reminders,
--               booking-notices): the client's time_zone (a performer's, for a notification to a
--               performer). The window is the job's config.send_window {"start": "HH:MM", "end":
--               "HH:MM"}, 08:00-21:00 when absent; "send_window": null sends at any hour.
--   outreach    the LinkedIn messages to prospects (outreach-follow-ups, outreach-outbox): the
--               prospect's new time_zone, else its LinkedIn account's new time_zone (UTC by
--               default). The window is outreach.settings send_window_start / send_window_end
--               (08:00 / 21:00; both null: any hour). Invitations, the relations check and the
--               notifications to the app's own users are not windowed.
--
-- A waiting task is still the item's one open task: hourly discovery finds the item again and
-- queues nothing new (the task key dedupes, and the notifications / outreach_messages row made at
-- the first discovery is the one that is sent). A task whose window opens only after the item
-- stopped being due (an event that started meanwhile) is moot when it is claimed, as before.
--
-- The discover functions are replaced whole (create or replace); only the send_window is new.
-- Nothing here writes a jobs table.

-- ---------------------------------------------------------------------------------------------
-- Bookings

-- The window of a job's messages, without the zone: config.send_window {"start", "end"} (local
-- HH:MM; a field left out keeps its default), 08:00-21:00 when config has none, null when it is
-- "send_window": null (any hour). The engine checks the values when the task is queued.
create function bookings.send_window(p_config jsonb)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_window jsonb := p_config -> 'send_window';
begin
  if v_window = 'null'::jsonb then
    return null;
  end if;
  if v_window is not null and jsonb_typeof(v_window) <> 'object' then
    raise exception 'config.send_window: must be an object {"start": "HH:MM", "end": "HH:MM"} or null, not %', v_window
      using errcode = 'invalid_parameter_value';
  end if;
  return '{"start": "08:00", "end": "21:00"}'::jsonb || coalesce(v_window, '{}'::jsonb);
end;
$$;

-- The tasks of the given bookings' notifications of one kind that are not sent yet: pending, or
-- sending (an attempt whose outcome is unknown, made safe by reconcile_since). One per
-- (kind, booking, channel); the payload carries ids only (it goes through pg_net), and the send
-- window of config (bookings.send_window) in the recipient's zone: the client's, or the
-- performer's for a notification to a performer.
create function bookings.notification_tasks(p_kind text, p_booking_ids bigint[], p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_window jsonb := bookings.send_window(p_config);
begin
  return query
  select bookings.notification_key(n.kind, n.booking_id, n.channel),
         jsonb_build_object('notification_id', n.id, 'channel', n.channel,
                            'rate_keys', jsonb_build_array(bookings.rate_key(n.channel)),
                            'send_window', v_window || jsonb_build_object('time_zone', coalesce(c.time_zone, pf.time_zone)))
    from public.notifications n
    left join public.clients c on c.id = n.client_id
    left join public.performers pf on pf.id = n.performer_id
   where n.booking_id = any (p_booking_ids) and n.kind = p_kind and n.status in ('pending', 'sending');
end;
$$;

-- As in 20261202100000_bookings.sql, with the job's send window on each task.
-- Reminders due now. config: {"kind": "event_reminder" | "balance_reminder", "lead_hours": 24,
-- "send_window": {"start": "08:00", "end": "21:00"}}.
-- Due = a confirmed booking whose event starts within lead_hours and has not started (so an
-- hour missed while the database was down or the job paused is caught up, but never after the
-- event began); a balance reminder also needs balance_due > 0. Each due (booking, channel) gets
-- its notifications row (pending) the first time, and a task while it is not sent.
-- WhatsApp needs a phone and the client's opt-in, email an address.
create or replace function bookings.discover_reminders(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_kind text := p_config ->> 'kind';
  v_lead interval := make_interval(hours => coalesce((p_config ->> 'lead_hours')::int, 24));
  v_due bigint[];
begin
  if v_kind is null or v_kind not in ('event_reminder', 'balance_reminder') then
    raise exception 'bookings.discover_reminders: config.kind must be event_reminder or balance_reminder, got %',
      coalesce(v_kind, 'null') using errcode = 'invalid_parameter_value';
  end if;
  v_due := array(
    select b.id from public.bookings b
     where b.status = 'confirmed' and b.event_at > now() and b.event_at <= now() + v_lead
       and (v_kind <> 'balance_reminder' or b.balance_due > 0));

  perform bookings.add_notifications(v_kind, v_due, array['whatsapp', 'email']);
  return query select * from bookings.notification_tasks(v_kind, v_due, p_config);
end;
$$;

-- As in 20261202100000_bookings.sql, with the job's send window on each task.
-- Cancellation emails for the bookings cleanup_stale_bookings cancelled in the last
-- config.within_hours (48). cleanup_stale_bookings runs this job at once (jobs.run_now).
create or replace function bookings.discover_cancellation_notices(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_due bigint[] := array(
    select b.id from public.bookings b
     where b.status = 'cancelled' and b.cancel_reason = bookings.stale_cancel_reason()
       and b.cancelled_at > now() - make_interval(hours => coalesce((p_config ->> 'within_hours')::int, 48)));
begin
  perform bookings.add_notifications('booking_cancelled', v_due, array['email']);
  return query select * from bookings.notification_tasks('booking_cancelled', v_due, p_config);
end;
$$;

drop function bookings.notification_tasks(text, bigint[]);

-- ---------------------------------------------------------------------------------------------
-- Outreach: time zones and the window setting

alter table public.prospects add column time_zone text;
comment on column public.prospects.time_zone is
  'IANA zone the prospect''s LinkedIn messages are timed in (outreach.settings send window); null: the LinkedIn account''s.';
alter table public.linkedin_accounts add column time_zone text not null default 'UTC';
comment on column public.linkedin_accounts.time_zone is
  'IANA zone of the account''s audience: LinkedIn messages to a prospect without a time_zone go out in its send window here.';

-- A clear error for a zone Postgres does not know, naming the table; null passes (a prospect
-- without a zone is timed in its account's). pg_timezone_names reads the whole zone database
-- (about 15 ms a call), so the rows of one insert are checked together, each distinct zone once
-- (an import of thousands of prospects costs one read, not thousands), and a zone set by an
-- update row by row.
create function outreach.check_time_zones()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_zone text;
begin
  if tg_level = 'ROW' then
    if not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = new.time_zone) then
      v_zone := new.time_zone;
    end if;
  else
    select r.zone into v_zone
      from (select distinct n.time_zone as zone from new_rows n where n.time_zone is not null) r
     where r.zone not in (select z.name from pg_catalog.pg_timezone_names z)
     order by r.zone
     limit 1;
  end if;
  if v_zone is not null then
    raise exception '%.time_zone: unknown time zone "%"', tg_table_name, v_zone
      using errcode = 'invalid_parameter_value', hint = 'Use an IANA name such as Europe/London.';
  end if;
  if tg_level = 'ROW' then
    return new;
  end if;
  return null;
end;
$$;
create trigger prospects_time_zone after insert on public.prospects
  referencing new table as new_rows for each statement execute function outreach.check_time_zones();
create trigger prospects_time_zone_change before update of time_zone on public.prospects
  for each row when (new.time_zone is not null and new.time_zone is distinct from old.time_zone)
  execute function outreach.check_time_zones();
create trigger linkedin_accounts_time_zone after insert on public.linkedin_accounts
  referencing new table as new_rows for each statement execute function outreach.check_time_zones();
create trigger linkedin_accounts_time_zone_change before update of time_zone on public.linkedin_accounts
  for each row when (new.time_zone is not null and new.time_zone is distinct from old.time_zone)
  execute function outreach.check_time_zones();

-- The window of LinkedIn messages, local to the recipient. Change with e.g.
--   update outreach.settings set send_window_start = '09:00', send_window_end = '18:00';
-- (start later than end: overnight; both null: any hour).
alter table outreach.settings
  add column send_window_start time default '08:00',
  add column send_window_end time default '21:00',
  add constraint send_window_both check ((send_window_start is null) = (send_window_end is null)),
  add constraint send_window_minutes check (send_window_start <> send_window_end
                                            and extract(second from send_window_start) = 0
                                            and extract(second from send_window_end) = 0);

-- The settings' send window, without the zone ({"start", "end"}), or null (no window).
create function outreach.send_window()
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return (select case when s.send_window_start is not null
                      then jsonb_build_object('start', to_char(s.send_window_start, 'HH24:MI'),
                                              'end', to_char(s.send_window_end, 'HH24:MI')) end
            from outreach.settings s);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Outreach: the message discoveries

-- As in 20261203100000_outreach.sql, with the send window (outreach.send_window) in the
-- prospect's zone, else its account's, on each task.
-- Connected prospects whose next follow-up is due (follow_up_due_at ≤ now) on running campaigns
-- of active accounts. Each gets its outreach_messages row for the slot (index + 1), with the
-- template rendered, the first time; a prospect whose campaign has no template for the next slot
-- has finished its sequence. Running campaigns with no open prospect left are finished.
create or replace function outreach.discover_follow_ups(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_due jsonb;
  v_window jsonb := outreach.send_window();
begin
  select coalesce(jsonb_agg(jsonb_build_object(
           'prospect_id', p.id, 'user_id', p.user_id, 'account_id', a.id, 'next_index', p.follow_up_sequence_index + 1,
           'text', outreach.render(tpl.body, p.first_name, p.last_name, p.company, p.title),
           'time_zone', coalesce(p.time_zone, a.time_zone))), '[]')
    into v_due
    from (select x.* from public.prospects x
           where x.status = 'connected' and x.follow_up_due_at <= now()
             -- (here, not only below: due prospects of paused campaigns or accounts must not use up the limit)
             and exists (select 1 from public.outreach_campaigns xc join public.linkedin_accounts xa on xa.id = xc.linkedin_account_id
                          where xc.id = x.campaign_id and xc.status = 'running' and xa.status = 'active')
           order by x.follow_up_due_at
           limit coalesce((p_config ->> 'max_per_tick')::int, 10000)) p
    join public.outreach_campaigns c on c.id = p.campaign_id
    join public.linkedin_accounts a on a.id = c.linkedin_account_id
    left join public.outreach_templates tpl on tpl.campaign_id = c.id and tpl.step = p.follow_up_sequence_index + 1
   where c.status = 'running' and a.status = 'active';

  -- No template for the next slot: the sequence is over.
  perform set_config('outreach.via', 'follow-ups', true);
  update public.prospects p
     set status = 'finished', follow_up_due_at = null, status_reason = 'no more follow-ups in the sequence',
         updated_at = now()
    from jsonb_array_elements(v_due) d
   where p.id = (d ->> 'prospect_id')::bigint and d ->> 'text' is null;
  perform set_config('outreach.via', '', true);

  insert into public.outreach_messages (prospect_id, user_id, sequence_index, text)
  select (d ->> 'prospect_id')::bigint, (d ->> 'user_id')::uuid, (d ->> 'next_index')::smallint, d ->> 'text'
    from jsonb_array_elements(v_due) d
   where d ->> 'text' is not null
  on conflict (prospect_id, sequence_index) do nothing;

  update public.outreach_campaigns c
     set status = 'finished', finished_at = now(), updated_at = now()
   where c.status = 'running'
     and exists (select 1 from public.prospects p where p.campaign_id = c.id)
     and not exists (select 1 from public.prospects p where p.campaign_id = c.id
                      and p.status in ('pending', 'connection_request_sent', 'connected'));

  perform outreach.size_account_buckets('outreach-follow-ups', array(
    select distinct (d ->> 'account_id')::bigint from jsonb_array_elements(v_due) d where d ->> 'text' is not null));
  return query
  select 'follow-up:' || m.prospect_id || ':' || m.sequence_index,
         jsonb_build_object('kind', 'follow_up', 'message_id', m.id,
                            'rate_keys', outreach.rate_keys((d ->> 'account_id')::bigint, 'message'),
                            'send_window', v_window || jsonb_build_object('time_zone', d ->> 'time_zone'))
    from jsonb_array_elements(v_due) d
    join public.outreach_messages m
      on m.prospect_id = (d ->> 'prospect_id')::bigint and m.sequence_index = (d ->> 'next_index')::smallint
   where d ->> 'text' is not null and m.status in ('pending', 'sending');
end;
$$;

-- As in 20261203100000_outreach.sql, with the send window (outreach.send_window) in the
-- recipient prospect's zone, else the sending account's, on each task (and the rows' order made
-- total with the id, as three arrays are aggregated in it now).
-- The app's queued outbox rows of active accounts.
create or replace function outreach.discover_outbox(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_rows bigint[];
  v_accounts bigint[];
  v_zones text[];
  v_window jsonb := outreach.send_window();
begin
  select array_agg(d.id order by d.created_at, d.id), array_agg(d.account_id order by d.created_at, d.id),
         array_agg(d.time_zone order by d.created_at, d.id)
    into v_rows, v_accounts, v_zones
    from (select o.id, o.created_at, o.linkedin_account_id as account_id, coalesce(p.time_zone, a.time_zone) as time_zone
            from public.outreach_outbox o
            join public.linkedin_accounts a on a.id = o.linkedin_account_id
            left join public.prospects p on p.id = o.prospect_id
           where o.status in ('queued', 'sending') and a.status = 'active'
           order by o.created_at
           limit coalesce((p_config ->> 'max_per_tick')::int, 10000)) d;
  perform outreach.size_account_buckets('outreach-outbox', array(select distinct unnest(v_accounts)));
  return query
  select 'outbox:' || d.outbox_id,
         jsonb_build_object('kind', 'outbox', 'outbox_id', d.outbox_id, 'rate_keys', outreach.rate_keys(d.account_id, 'message'),
                            'send_window', v_window || jsonb_build_object('time_zone', d.time_zone))
    from unnest(v_rows, v_accounts, v_zones) as d (outbox_id, account_id, time_zone);
end;
$$;

revoke all on all functions in schema bookings from public, anon, authenticated;
revoke all on all functions in schema outreach from public, anon, authenticated;
