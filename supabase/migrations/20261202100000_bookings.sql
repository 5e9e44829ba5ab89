-- Bookings (an entertainment-booking platform's background work, moved off Vercel Cron).
--
--   tables      public.clients, performers, bookings, notifications, otp_codes, audit_logs (the
--               app's, read through the Data API under RLS); bookings.* internals (templates,
--               delivery statuses, cleanup settings), never exposed
--   cleanup     daily from 02:00 UTC, pure SQL (pg_cron runs `select bookings.cleanup_tick()`
--               each minute of that hour: one pass per transaction until nothing is left):
--               cleanup_stale_bookings, cleanup_old_notifications, cleanup_expired_otps,
--               cleanup_old_audit_logs; `select run_all_cleanup_jobs();` runs one pass by hand
--   reminders   jobs booking-reminders (24 h before the event, WhatsApp + email) and
--               payment-reminders (3 days before, outstanding balance), hourly; booking-notices
--               (the cancellation email of a booking the cleanup cancelled). All three go to the
--               Edge Function send-reminder, one task per (booking, kind, channel)
--   callbacks   Twilio's status callbacks reach the function twilio-status, which calls
--               bookings.record_delivery_status
--
-- "Never twice": a notifications row exists per (booking, kind, channel) from discovery on; its
-- task key is the Resend Idempotency-Key; for Twilio (no idempotency key) the context function
-- records the intent (attempt_started_at) before the function may POST, and a later attempt of
-- a send whose outcome is unknown is told to look the message up first (reconcile_since).
--
-- Nothing here writes a jobs table: the jobs are declared with jobs.define, their buckets sized
-- with jobs.size_rate_limits, and the cleanup asks for the notices with jobs.run_now.

create schema if not exists bookings;
revoke all on schema bookings from public;
comment on schema bookings is 'Duework bookings internals (reminders, delivery statuses, cleanup). Not exposed through the Data API.';
alter default privileges in schema bookings revoke execute on functions from public;

-- ---------------------------------------------------------------------------------------------
-- The app's tables

-- A clear error for a zone Postgres does not know (the reminder renders the event in it).
create function bookings.check_time_zone()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = new.time_zone) then
    raise exception 'time_zone: unknown time zone "%"', new.time_zone
      using errcode = 'invalid_parameter_value', hint = 'Use an IANA name such as Europe/London.';
  end if;
  return new;
end;
$$;

create table public.clients (
  id bigint generated always as identity primary key,
  user_id uuid unique references auth.users (id) on delete set null,
  name text not null check (length(name) between 1 and 200),
  email text check (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  phone text check (phone ~ '^\+[1-9][0-9]{6,14}$'),
  whatsapp_opt_in boolean not null default false,
  time_zone text not null default 'UTC',
  created_at timestamptz not null default now()
);
comment on column public.clients.phone is 'E.164 (+ and 7 to 15 digits).';
comment on column public.clients.whatsapp_opt_in is 'WhatsApp reminders are sent only when true (and a phone is set).';

create table public.performers (
  id bigint generated always as identity primary key,
  user_id uuid unique references auth.users (id) on delete set null,
  name text not null check (length(name) between 1 and 200),
  email text check (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  phone text check (phone ~ '^\+[1-9][0-9]{6,14}$'),
  whatsapp_opt_in boolean not null default false,
  time_zone text not null default 'UTC',
  created_at timestamptz not null default now()
);

create trigger clients_time_zone before insert or update of time_zone on public.clients
  for each row execute function bookings.check_time_zone();
create trigger performers_time_zone before insert or update of time_zone on public.performers
  for each row execute function bookings.check_time_zone();

create table public.bookings (
  id bigint generated always as identity primary key,
  client_id bigint not null references public.clients (id) on delete restrict,
  performer_id bigint not null references public.performers (id) on delete restrict,
  status text not null default 'pending' check (status in ('pending', 'confirmed', 'completed', 'cancelled')),
  event_at timestamptz not null,
  deposit_paid_at timestamptz,
  balance_due bigint not null default 0 check (balance_due >= 0),
  currency text not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  cancelled_at timestamptz,
  cancel_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((status = 'cancelled') = (cancelled_at is not null))
);
comment on column public.bookings.balance_due is 'Outstanding balance in minor units of currency (pence, cents).';
comment on column public.bookings.cancel_reason is
  'Why it was cancelled; ''no deposit within 24 hours'' when cleanup_stale_bookings did it (the client gets an email).';

create index bookings_client on public.bookings (client_id);
create index bookings_performer on public.bookings (performer_id);
-- Reminder discovery and the stale-booking cleanup read only these slices.
create index bookings_confirmed_event on public.bookings (event_at) where status = 'confirmed';
create index bookings_pending_unpaid on public.bookings (created_at) where status = 'pending' and deposit_paid_at is null;
create index bookings_cancelled_recent on public.bookings (cancelled_at) where status = 'cancelled';

create table public.notifications (
  id bigint generated always as identity primary key,
  booking_id bigint references public.bookings (id) on delete cascade,
  client_id bigint references public.clients (id) on delete cascade,
  performer_id bigint references public.performers (id) on delete cascade,
  kind text not null check (kind ~ '^[a-z][a-z_]{0,49}$'),
  channel text not null check (channel in ('whatsapp', 'email', 'in_app')),
  to_address text,
  status text not null default 'pending'
    check (status in ('pending', 'sending', 'queued', 'sent', 'delivered', 'read', 'failed', 'undelivered', 'skipped')),
  provider_message_id text unique,
  error_code text,
  error text,
  send_attempts int not null default 0,
  attempt_started_at timestamptz,
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (num_nonnulls(client_id, performer_id) = 1)
);
comment on table public.notifications is
  'Messages to clients and performers. Reminders get one row per (booking, kind, channel) when discovered; '
  'status: pending (due) → sending (a send attempt started) → queued/sent/delivered/read (the provider''s word, '
  'from Twilio''s status callbacks) | failed/undelivered (error_code, error) | skipped (no longer due).';
comment on column public.notifications.read_at is 'When the recipient read it in the app (in_app); read ones are deleted after 30 days.';
comment on column public.notifications.attempt_started_at is
  'Set when a send attempt starts, before the provider is called: a later attempt of a send whose outcome '
  'is unknown looks the message up first (Twilio has no idempotency key).';

-- "Never twice": one reminder per booking, kind and channel.
create unique index notifications_once on public.notifications (booking_id, kind, channel) where booking_id is not null;
create index notifications_client on public.notifications (client_id);
create index notifications_performer on public.notifications (performer_id);
create index notifications_read_old on public.notifications (created_at) where read_at is not null;

create table public.otp_codes (
  id bigint generated always as identity primary key,
  user_id uuid references auth.users (id) on delete cascade,
  phone text,
  code_hash text not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);
create index otp_codes_expiry on public.otp_codes (expires_at);
create index otp_codes_user on public.otp_codes (user_id);

create table public.audit_logs (
  id bigint generated always as identity primary key,
  action text not null check (length(action) between 1 and 100),
  severity text not null default 'info' check (severity in ('debug', 'info', 'warning', 'error', 'critical')),
  actor text,
  details jsonb not null default '{}',
  created_at timestamptz not null default now()
);
comment on column public.audit_logs.severity is 'critical entries are kept forever; the others are deleted after the retention (90 days).';
create index audit_logs_prunable on public.audit_logs (created_at) where severity <> 'critical';

-- RLS: a client and a performer read their own rows; anon reads nothing. Writes go through the
-- app's own server code (service_role) and these jobs.
alter table public.clients enable row level security;
alter table public.performers enable row level security;
alter table public.bookings enable row level security;
alter table public.notifications enable row level security;
alter table public.otp_codes enable row level security;
alter table public.audit_logs enable row level security;
revoke all on public.clients, public.performers, public.bookings, public.notifications, public.otp_codes,
  public.audit_logs from anon, authenticated;
grant select on public.clients, public.performers, public.bookings, public.notifications to authenticated;
grant update (read_at) on public.notifications to authenticated;
-- OTP codes and audit logs are the server's: no client role reads or writes them.
create policy "No access for client roles" on public.otp_codes for all to anon, authenticated using (false) with check (false);
create policy "No access for client roles" on public.audit_logs for all to anon, authenticated using (false) with check (false);

create policy "Clients read their own profile" on public.clients for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Performers read their own profile" on public.performers for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Clients and performers read their own bookings" on public.bookings for select to authenticated
  using (exists (select 1 from public.clients c where c.id = bookings.client_id and c.user_id = (select auth.uid()))
         or exists (select 1 from public.performers p where p.id = bookings.performer_id and p.user_id = (select auth.uid())));
create policy "Recipients read their own notifications" on public.notifications for select to authenticated
  using (exists (select 1 from public.clients c where c.id = notifications.client_id and c.user_id = (select auth.uid()))
         or exists (select 1 from public.performers p where p.id = notifications.performer_id and p.user_id = (select auth.uid())));
create policy "Recipients mark their own notifications read" on public.notifications for update to authenticated
  using (exists (select 1 from public.clients c where c.id = notifications.client_id and c.user_id = (select auth.uid()))
         or exists (select 1 from public.performers p where p.id = notifications.performer_id and p.user_id = (select auth.uid())));

-- ---------------------------------------------------------------------------------------------
-- Internals

-- The approved WhatsApp templates (business-initiated messages must be templates: ContentSid +
-- ContentVariables). Fill in your own SIDs from the Twilio Console (Content Template Builder):
--   update bookings.whatsapp_templates set content_sid = 'HX…' where kind = 'event_reminder';
-- Variables: event_reminder {1: client name, 2: event date and time in the client's zone,
-- 3: performer, 4: booking reference}; balance_reminder {1: client name, 2: amount, 3: event
-- date, 4: booking reference}.
create table bookings.whatsapp_templates (
  kind text primary key check (kind in ('event_reminder', 'balance_reminder')),
  content_sid text not null check (content_sid ~ '^HX[0-9a-fA-F]{32}$'),
  description text not null default ''
);
insert into bookings.whatsapp_templates (kind, content_sid, description) values
  ('event_reminder', 'HX00000000000000000000000000000e01', 'Hi {{1}}, a reminder: {{3}} performs for you on {{2}}. Booking {{4}}.'),
  ('balance_reminder', 'HX00000000000000000000000000000b01', 'Hi {{1}}, the balance of {{2}} for your event on {{3}} is due. Booking {{4}}.');

-- The furthest delivery status Twilio reported per message. Callbacks can arrive before the send's
-- outcome is written (the message's sid is not on its notification yet), out of order, and more
-- than once: they are kept here and the later status wins (bookings.delivery_rank).
create table bookings.message_status (
  message_sid text primary key,
  status text not null,
  error_code text,
  error_message text,
  updated_at timestamptz not null default now()
);
create index message_status_age on bookings.message_status (updated_at);

-- One row. Change a retention with e.g. update bookings.cleanup_settings set audit_retention = '180 days';
create table bookings.cleanup_settings (
  id boolean primary key default true check (id),
  stale_booking_after interval not null default '24 hours',
  notification_retention interval not null default '30 days',
  audit_retention interval not null default '90 days',
  -- A delete statement takes at most chunk_rows rows; one pass of a step at most max_rows_per_pass
  -- (the daily run takes a pass a minute, each its own transaction, until nothing is left).
  chunk_rows int not null default 5000 check (chunk_rows between 1 and 100000),
  max_rows_per_pass int not null default 50000 check (max_rows_per_pass >= 1)
);
insert into bookings.cleanup_settings default values;

create function bookings.stale_cancel_reason()
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return 'no deposit within 24 hours';
end;
$$;

-- Twilio's message statuses in our words: everything before "sent" is queued; canceled is failed.
create function bookings.twilio_status(p_status text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_status
    when 'accepted' then 'queued' when 'scheduled' then 'queued' when 'queued' then 'queued'
    when 'sending' then 'queued' when 'sent' then 'sent' when 'delivered' then 'delivered'
    when 'read' then 'read' when 'undelivered' then 'undelivered' when 'failed' then 'failed'
    when 'canceled' then 'failed'
  end;
end;
$$;

-- Later beats earlier; failed and undelivered are final.
create function bookings.delivery_rank(p_status text)
returns int
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_status
    when 'pending' then 0 when 'sending' then 0 when 'skipped' then 0
    when 'queued' then 1 when 'sent' then 2 when 'delivered' then 3 when 'read' then 4
    when 'undelivered' then 9 when 'failed' then 9 else 0
  end;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Reminders: discover, context, apply

-- The task key: one per (kind, booking, channel); it is also the email's Idempotency-Key.
create function bookings.notification_key(p_kind text, p_booking_id bigint, p_channel text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return p_kind || ':' || p_booking_id || ':' || p_channel;
end;
$$;

create function bookings.rate_key(p_channel text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_channel when 'email' then 'resend' when 'whatsapp' then 'twilio' end;
end;
$$;

-- The notifications rows (pending) of one kind for the given bookings' clients, one per channel
-- the client can be reached on (email: an address; WhatsApp: a phone and the opt-in); rows that
-- exist already are left as they are.
create function bookings.add_notifications(p_kind text, p_booking_ids bigint[], p_channels text[])
returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.notifications (booking_id, client_id, kind, channel, to_address)
  select b.id, b.client_id, p_kind, ch.channel, case ch.channel when 'email' then c.email else c.phone end
    from public.bookings b
    join public.clients c on c.id = b.client_id
   cross join unnest(p_channels) ch (channel)
   where b.id = any (p_booking_ids)
     and case ch.channel when 'email' then c.email is not null else c.phone is not null and c.whatsapp_opt_in end
  on conflict (booking_id, kind, channel) where booking_id is not null do nothing;
end;
$$;

-- The tasks of the given bookings' notifications of one kind that are not sent yet: pending, or
-- sending (an attempt whose outcome is unknown, made safe by reconcile_since). One per
-- (kind, booking, channel); the payload carries ids only (it goes through pg_net).
create function bookings.notification_tasks(p_kind text, p_booking_ids bigint[])
returns table (key text, payload jsonb)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
  select bookings.notification_key(n.kind, n.booking_id, n.channel),
         jsonb_build_object('notification_id', n.id, 'channel', n.channel,
                            'rate_keys', jsonb_build_array(bookings.rate_key(n.channel)))
    from public.notifications n
   where n.booking_id = any (p_booking_ids) and n.kind = p_kind and n.status in ('pending', 'sending');
end;
$$;

-- Reminders due now. config: {"kind": "event_reminder" | "balance_reminder", "lead_hours": 24}.
-- Due = a confirmed booking whose event starts within lead_hours and has not started (so an
-- hour missed while the database was down or the job paused is caught up, but never after the
-- event began); a balance reminder also needs balance_due > 0. Each due (booking, channel) gets
-- its notifications row (pending) the first time, and a task while it is not sent.
-- WhatsApp needs a phone and the client's opt-in, email an address.
create function bookings.discover_reminders(p_config jsonb)
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
  return query select * from bookings.notification_tasks(v_kind, v_due);
end;
$$;

-- Cancellation emails for the bookings cleanup_stale_bookings cancelled in the last
-- config.within_hours (48). cleanup_stale_bookings runs this job at once (jobs.run_now).
create function bookings.discover_cancellation_notices(p_config jsonb)
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
  return query select * from bookings.notification_tasks('booking_cancelled', v_due);
end;
$$;

-- The reference clients see (in messages and in the reconcile lookup): BK-000042, BK-1234567.
create function bookings.booking_reference(p_booking_id bigint)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return 'BK-' || case when p_booking_id < 1000000 then lpad(p_booking_id::text, 6, '0') else p_booking_id::text end;
end;
$$;

-- Why a reminder task has nothing to send any more, or null.
create function bookings.reminder_moot_reason(
  p_kind text, p_channel text, p_notification_status text, p_provider_message_id text,
  p_booking_status text, p_event_at timestamptz, p_balance_due bigint,
  p_email text, p_phone text, p_whatsapp_opt_in boolean)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_notification_status is null then
    return 'the notification no longer exists';
  elsif p_provider_message_id is not null or p_notification_status not in ('pending', 'sending') then
    return format('already %s', p_notification_status);
  elsif p_booking_status is null then
    return 'the booking no longer exists';
  elsif p_kind = 'booking_cancelled' then
    if p_booking_status <> 'cancelled' then
      return format('the booking is %s again', p_booking_status);
    end if;
  elsif p_booking_status <> 'confirmed' then
    return format('the booking is %s', p_booking_status);
  elsif p_event_at <= now() then
    return 'the event has started';
  elsif p_kind = 'balance_reminder' and p_balance_due <= 0 then
    return 'the balance has been paid';
  end if;
  if p_channel = 'email' and p_email is null then
    return 'the client has no email address';
  elsif p_channel = 'whatsapp' and (p_phone is null or not p_whatsapp_opt_in) then
    return 'the client has not opted in to WhatsApp';
  end if;
  return null;
end;
$$;

-- What send-reminder needs for each leased task (the address, the template, the booking), read
-- under the lease, and the intent: before the function may call the provider, the notification
-- becomes `sending` with attempt_started_at = now(). A WhatsApp send that had already started
-- without a recorded outcome (timeout, crash after Twilio's 201) gets reconcile_since, so the
-- function looks the message up before sending again. A moot task (booking cancelled, event
-- started, balance paid, opted out) marks its notification skipped and is discarded by the engine.
create function bookings.reminder_context(p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
set search_path = ''
as $$
begin
  return query
  with r as (
    select t.task_id, t.key, n.id as notification_id, n.kind, n.channel, n.status as notification_status,
           n.attempt_started_at, b.id as booking_id, b.event_at, b.balance_due, b.currency, b.cancel_reason,
           c.name as client_name, c.email, c.phone, c.time_zone, p.name as performer_name, w.content_sid,
           bookings.reminder_moot_reason(n.kind, n.channel, n.status, n.provider_message_id, b.status, b.event_at,
                                         b.balance_due, c.email, c.phone, c.whatsapp_opt_in) as moot
      from jsonb_to_recordset(p_tasks) as t (task_id bigint, key text, payload jsonb)
      left join lateral (select x.* from public.notifications x
                          where x.id = (t.payload ->> 'notification_id')::bigint limit 1) n on true
      left join lateral (select x.* from public.bookings x where x.id = n.booking_id limit 1) b on true
      left join lateral (select x.* from public.clients x where x.id = b.client_id limit 1) c on true
      left join lateral (select x.* from public.performers x where x.id = b.performer_id limit 1) p on true
      left join lateral (select x.content_sid from bookings.whatsapp_templates x
                          where x.kind = n.kind and n.channel = 'whatsapp' limit 1) w on true
  ),
  marked as (
    update public.notifications x
       set status = case when r.moot is null then 'sending' else 'skipped' end,
           error = case when r.moot is null then x.error else r.moot end,
           send_attempts = x.send_attempts + case when r.moot is null then 1 else 0 end,
           attempt_started_at = case when r.moot is null then now() else x.attempt_started_at end,
           to_address = case when r.moot is null then case r.channel when 'email' then r.email else r.phone end
                             else x.to_address end,
           updated_at = now()
      from r
     where x.id = r.notification_id and r.notification_status in ('pending', 'sending')
    returning x.id
  )
  select r.task_id,
         case when r.moot is null then jsonb_build_object(
           'notification_id', r.notification_id, 'channel', r.channel, 'kind', r.kind,
           'to', case r.channel when 'email' then r.email else r.phone end,
           'idempotency_key', r.key,
           'reconcile_since', case when r.channel = 'whatsapp' and r.notification_status = 'sending'
                                   then r.attempt_started_at end,
           'content_sid', r.content_sid,
           'booking', jsonb_build_object(
             'id', r.booking_id, 'reference', bookings.booking_reference(r.booking_id),
             'client_name', r.client_name, 'performer_name', r.performer_name, 'event_at', r.event_at,
             'time_zone', r.time_zone, 'balance_due', r.balance_due, 'currency', r.currency,
             'cancel_reason', r.cancel_reason)) end,
         r.moot
    from r;  -- (marked runs whether or not it is read: a data-modifying WITH always does)
end;
$$;

-- The send outcomes, set-based, in the transaction that records them (jobs.record_outcomes):
--   ok     data {provider_message_id, status, reconciled}: the provider's id is stored and the
--          status becomes the later of what the send answered and any callback that came first;
--          a provider id already stored for another notification turns the outcome dead
--   dead   data {error_code}: the notification is failed with the error (an invalid number, an
--          opted-out recipient, a rejected email)
--   retry  the error is kept on the notification (it stays sending; the next attempt reconciles)
create function bookings.apply_reminder_outcomes(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql
set search_path = ''
as $$
begin
  return query
  with input as (
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'notification_id')::bigint as notification_id,
           e ->> 'outcome' as outcome, e ->> 'error' as error, e -> 'data' as data,
           nullif(e -> 'data' ->> 'provider_message_id', '') as message_id
      from jsonb_array_elements(p_outcomes) e
  ),
  ok as (
    -- The first ok per provider id, and only if no other notification holds it.
    select i.*, not exists (select 1 from public.notifications x
                             where x.provider_message_id = i.message_id and x.id <> i.notification_id)
                and row_number() over (partition by i.message_id order by i.task_id) = 1 as unique_id
      from input i where i.outcome = 'ok'
  ),
  sent as (
    update public.notifications n
       set provider_message_id = ok.message_id,
           status = case when bookings.delivery_rank(ms.status) > bookings.delivery_rank(
                               coalesce(bookings.twilio_status(ok.data ->> 'status'), 'queued'))
                         then ms.status
                         else coalesce(bookings.twilio_status(ok.data ->> 'status'), 'queued') end,
           error_code = ms.error_code, error = ms.error_message,
           sent_at = now(),
           delivered_at = case when ms.status in ('delivered', 'read') then ms.updated_at end,
           updated_at = now()
      from ok
      left join bookings.message_status ms on ms.message_sid = ok.message_id
     where n.id = ok.notification_id and ok.unique_id and ok.message_id is not null
    returning ok.task_id, n.id as notification_id, n.provider_message_id
  ),
  failed as (
    update public.notifications n
       set status = 'failed', error_code = left(i.data ->> 'error_code', 100), error = left(i.error, 1000),
           updated_at = now()
      from input i
     where i.outcome = 'dead' and n.id = i.notification_id and n.provider_message_id is null
    returning i.task_id
  ),
  refused as (
    -- An ok this function turns dead (below): the notification fails with the same reason.
    update public.notifications n
       set status = 'failed', error_code = 'provider_id',
           error = case when ok.message_id is null then 'the send reported no provider message id'
                        else format('provider message %s is already recorded for another notification', ok.message_id) end,
           updated_at = now()
      from ok
     where n.id = ok.notification_id and n.provider_message_id is null and (ok.message_id is null or not ok.unique_id)
    returning ok.task_id
  ),
  retried as (
    update public.notifications n
       set error = left(i.error, 1000), updated_at = now()
      from input i
     where i.outcome = 'retry' and n.id = i.notification_id and n.provider_message_id is null
    returning i.task_id
  )
  select ok.task_id,
         case when s.task_id is not null then null
              when ok.message_id is null then 'dead'
              when not ok.unique_id then 'dead'
              else 'discard' end,
         case when s.task_id is not null then null
              when ok.message_id is null then 'the send reported no provider message id'
              when not ok.unique_id then format('provider message %s is already recorded for another notification', ok.message_id)
              else 'the notification no longer exists' end,
         case when s.task_id is not null then jsonb_build_object(
           'notification_id', s.notification_id, 'provider_message_id', s.provider_message_id,
           'reconciled', coalesce((ok.data ->> 'reconciled')::boolean, false)) end
    from ok left join sent s on s.task_id = ok.task_id;
end;
$$;

-- Twilio's status callback (the twilio-status function, after checking X-Twilio-Signature).
-- Repeated and out-of-order callbacks are harmless: a status never goes back (delivery_rank), and
-- a callback that beats the send's outcome is kept in bookings.message_status until the
-- notification has its message id. Returns {notification_id, status, changed}.
create function bookings.record_delivery_status(
  p_message_sid text, p_status text, p_error_code text default null, p_error_message text default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_status text := bookings.twilio_status(p_status);
  v_error text := case when nullif(p_error_code, '') is not null
                       then coalesce(nullif(left(p_error_message, 1000), ''), format('Twilio error %s', p_error_code)) end;
  v_notification bigint;
  v_current text;
  v_changed boolean;
begin
  if p_message_sid is null or p_message_sid !~ '^(SM|MM)[0-9a-fA-F]{32}$' then
    raise exception 'bookings.record_delivery_status: MessageSid must be SM or MM followed by 32 hex digits, got %',
      coalesce(left(p_message_sid, 40), 'null') using errcode = 'invalid_parameter_value';
  end if;
  if v_status is null then
    raise exception 'bookings.record_delivery_status: unknown MessageStatus %', coalesce(left(p_status, 40), 'null')
      using errcode = 'invalid_parameter_value';
  end if;

  insert into bookings.message_status as m (message_sid, status, error_code, error_message)
  values (p_message_sid, v_status, nullif(left(p_error_code, 100), ''), v_error)
  on conflict (message_sid) do update
     set status = excluded.status, error_code = coalesce(excluded.error_code, m.error_code),
         error_message = coalesce(excluded.error_message, m.error_message), updated_at = now()
   where bookings.delivery_rank(excluded.status) > bookings.delivery_rank(m.status);

  update public.notifications n
     set status = v_status,
         error_code = coalesce(nullif(left(p_error_code, 100), ''), n.error_code),
         error = coalesce(v_error, n.error),
         delivered_at = case when v_status in ('delivered', 'read') then coalesce(n.delivered_at, now()) else n.delivered_at end,
         updated_at = now()
   where n.provider_message_id = p_message_sid
     and bookings.delivery_rank(v_status) > bookings.delivery_rank(n.status)
  returning n.id, n.status into v_notification, v_current;
  v_changed := found;
  if not v_changed then
    select n.id, n.status into v_notification, v_current
      from public.notifications n where n.provider_message_id = p_message_sid;
  end if;
  return jsonb_build_object('notification_id', v_notification, 'status', coalesce(v_current, v_status),
                            'changed', v_changed);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Cleanup (pure SQL)

-- Deletes rows of p_table matching p_where in statements of at most p_chunk rows (rows someone
-- holds are skipped, never waited for), up to p_max rows. Rows are picked by ctid, so any table
-- works whatever its key. A failing chunk stops the step (the chunks before it stay deleted) and
-- asks for no further pass: the next day's run tries again. Returns {deleted, more, error}.
create function bookings.delete_in_chunks(p_table regclass, p_where text, p_chunk int, p_max int)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_total bigint := 0;
  v_want int;
  v_count int;
begin
  loop
    v_want := least(p_chunk, p_max - v_total);
    begin
      execute format('delete from %s where ctid = any (array(select ctid from %s where %s limit %s for update skip locked))',
                     p_table, p_table, p_where, v_want);
      get diagnostics v_count = row_count;
    exception when others then
      return jsonb_build_object('deleted', v_total, 'more', false, 'error', sqlerrm);
    end;
    v_total := v_total + v_count;
    exit when v_count < v_want or v_total >= p_max;
  end loop;
  return jsonb_build_object('deleted', v_total, 'more', v_total >= p_max, 'error', null);
end;
$$;

-- The seed's result shape: {success, deletedCount, errors[]} (+ more: rows are left for the next pass).
create function bookings.deleted_result(p_step jsonb, p_name text)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return jsonb_build_object(
    'success', p_step ->> 'error' is null,
    'deletedCount', (p_step ->> 'deleted')::bigint,
    'more', (p_step ->> 'more')::boolean,
    'errors', case when p_step ->> 'error' is null then '[]'::jsonb
                   else jsonb_build_array(p_name || ': ' || (p_step ->> 'error')) end);
end;
$$;

-- Pending bookings with no deposit stale_booking_after (24 h) after creation → cancelled, and
-- their clients' cancellation emails queued (job booking-notices, run at once).
create function public.cleanup_stale_bookings()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  s bookings.cleanup_settings;
  v_total bigint := 0;
  v_count int;
  v_errors jsonb := '[]'::jsonb;
  v_notices jsonb;
begin
  select * into s from bookings.cleanup_settings;
  loop
    begin
      with stale as (
        select b.id from public.bookings b
         where b.status = 'pending' and b.deposit_paid_at is null and b.created_at <= now() - s.stale_booking_after
         order by b.created_at
         limit least(s.chunk_rows, s.max_rows_per_pass - v_total)
           for update skip locked)
      update public.bookings b
         set status = 'cancelled', cancelled_at = now(), cancel_reason = bookings.stale_cancel_reason(), updated_at = now()
        from stale where b.id = stale.id;
      get diagnostics v_count = row_count;
    exception when others then
      v_errors := v_errors || jsonb_build_array('cleanup_stale_bookings: ' || sqlerrm);
      exit;
    end;
    v_total := v_total + v_count;
    exit when v_count < s.chunk_rows or v_total >= s.max_rows_per_pass;
  end loop;

  if v_total > 0 then
    begin
      v_notices := jobs.run_now('booking-notices');
    exception when others then
      v_errors := v_errors || jsonb_build_array(
        'cleanup_stale_bookings: the cancellation emails wait for the next booking-notices tick: ' || sqlerrm);
    end;
  end if;
  return jsonb_build_object('success', jsonb_array_length(v_errors) = 0, 'cancelledCount', v_total,
                            'more', v_total >= s.max_rows_per_pass and jsonb_array_length(v_errors) = 0,
                            'noticesQueued', coalesce((v_notices ->> 'discovered')::int, 0), 'errors', v_errors);
end;
$$;

-- Read notifications older than notification_retention (30 days); delivery statuses kept as long.
create function public.cleanup_old_notifications()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  s bookings.cleanup_settings;
  v_step jsonb;
begin
  select * into s from bookings.cleanup_settings;
  v_step := bookings.delete_in_chunks('public.notifications',
    format('read_at is not null and created_at < %L', now() - s.notification_retention), s.chunk_rows, s.max_rows_per_pass);
  perform bookings.delete_in_chunks('bookings.message_status',
    format('updated_at < %L', now() - s.notification_retention), s.chunk_rows, s.max_rows_per_pass);
  return bookings.deleted_result(v_step, 'cleanup_old_notifications');
end;
$$;

-- OTP codes past expires_at.
create function public.cleanup_expired_otps()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  s bookings.cleanup_settings;
begin
  select * into s from bookings.cleanup_settings;
  return bookings.deleted_result(
    bookings.delete_in_chunks('public.otp_codes', format('expires_at < %L', now()), s.chunk_rows, s.max_rows_per_pass),
    'cleanup_expired_otps');
end;
$$;

-- Audit logs older than audit_retention (90 days), except critical ones.
create function public.cleanup_old_audit_logs()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  s bookings.cleanup_settings;
begin
  select * into s from bookings.cleanup_settings;
  return bookings.deleted_result(
    bookings.delete_in_chunks('public.audit_logs',
      format('severity <> %L and created_at < %L', 'critical', now() - s.audit_retention), s.chunk_rows, s.max_rows_per_pass),
    'cleanup_old_audit_logs');
end;
$$;

-- One pass of every step; a step that fails does not stop the others.
create function bookings.cleanup_pass()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_steps jsonb := '{}'::jsonb;
  v_result jsonb;
  v_step text;
begin
  foreach v_step in array array['cleanup_stale_bookings', 'cleanup_old_notifications', 'cleanup_expired_otps',
                                'cleanup_old_audit_logs'] loop
    begin
      execute format('select public.%I()', v_step) into v_result;
    exception when others then
      v_result := jsonb_build_object('success', false, 'errors', jsonb_build_array(v_step || ': ' || sqlerrm));
    end;
    v_steps := v_steps || jsonb_build_object(v_step, v_result);
  end loop;
  return v_steps;
end;
$$;

-- Sums passes: counts add up, errors collect, more = any step left rows behind.
create function bookings.cleanup_summary(p_total jsonb, p_pass jsonb)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_out jsonb := '{}'::jsonb;
  v_step text;
  v_a jsonb;
  v_b jsonb;
  v_count text;
begin
  for v_step in select jsonb_object_keys(p_pass) loop
    v_a := coalesce(p_total -> v_step, '{}');
    v_b := p_pass -> v_step;
    v_count := case when v_b ? 'cancelledCount' then 'cancelledCount' else 'deletedCount' end;
    v_out := v_out || jsonb_build_object(v_step, jsonb_build_object(
      'success', coalesce((v_a ->> 'success')::boolean, true) and coalesce((v_b ->> 'success')::boolean, false),
      v_count, coalesce((v_a ->> v_count)::bigint, 0) + coalesce((v_b ->> v_count)::bigint, 0),
      'more', coalesce((v_b ->> 'more')::boolean, false),
      'errors', coalesce(v_a -> 'errors', '[]') || coalesce(v_b -> 'errors', '[]'))
      -- The stale-bookings step also says how many cancellation emails it queued.
      || case when v_b ? 'noticesQueued' then jsonb_build_object('noticesQueued',
           coalesce((v_a ->> 'noticesQueued')::int, 0) + (v_b ->> 'noticesQueued')::int) else '{}'::jsonb end);
  end loop;
  return v_out;
end;
$$;

-- The audit record of a cleanup run: counts only, never row contents.
create function bookings.audit_cleanup(p_steps jsonb, p_actor text, p_passes int)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_errors jsonb;
  v_result jsonb;
begin
  select coalesce(jsonb_agg(e), '[]') into v_errors
    from jsonb_each(p_steps) s, jsonb_array_elements(s.value -> 'errors') e;
  v_result := jsonb_build_object('success', jsonb_array_length(v_errors) = 0, 'steps', p_steps, 'errors', v_errors,
                                 'passes', p_passes);
  insert into public.audit_logs (action, severity, actor, details)
  values ('cleanup.run', case when jsonb_array_length(v_errors) = 0 then 'info' else 'error' end, p_actor,
          jsonb_build_object('passes', p_passes, 'errors', v_errors,
                             'counts', (select jsonb_object_agg(s.key, coalesce(s.value -> 'cancelledCount', s.value -> 'deletedCount'))
                                          from jsonb_each(p_steps) s)));
  return v_result;
end;
$$;

-- `select run_all_cleanup_jobs();`: one pass of every step (at most max_rows_per_pass rows each;
-- "more" says a step left rows for the next pass), audited.
create function public.run_all_cleanup_jobs()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  return bookings.audit_cleanup(bookings.cleanup_summary('{}', bookings.cleanup_pass()), 'run_all_cleanup_jobs', 1);
end;
$$;

-- Today's daily run: passes until no step has rows left, each pass its own transaction (pg_cron
-- calls bookings.cleanup_tick() every minute from 02:00 to 02:59 UTC; the first call starts the
-- day's run, the next ones go on while a step reported more). A first run over millions of old
-- rows is therefore many short transactions (row locks and WAL of at most max_rows_per_pass rows
-- per step each), never one long one. The run's audit record is written when it is done (or at
-- its last pass of the hour): counts summed over its passes.
create table bookings.cleanup_run (
  run_date date primary key,
  passes int not null default 0,
  totals jsonb not null default '{}',
  done boolean not null default false,
  started_at timestamptz not null default now(),
  finished_at timestamptz
);

create function bookings.cleanup_tick()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_run bookings.cleanup_run;
  v_pass jsonb;
  v_more boolean;
  v_last boolean := extract(minute from now() at time zone 'UTC') >= 59;
begin
  insert into bookings.cleanup_run (run_date) values ((now() at time zone 'UTC')::date)
  on conflict (run_date) do nothing;
  select * into v_run from bookings.cleanup_run
   where run_date = (now() at time zone 'UTC')::date for update skip locked;
  if not found or v_run.done then
    return null;  -- today's run is done, or another pass is at work
  end if;
  v_pass := bookings.cleanup_pass();
  v_more := exists (select 1 from jsonb_each(v_pass) s where (s.value ->> 'more')::boolean);
  update bookings.cleanup_run r
     set passes = r.passes + 1, totals = bookings.cleanup_summary(r.totals, v_pass),
         done = not v_more or v_last, finished_at = case when not v_more or v_last then now() end
   where r.run_date = v_run.run_date
  returning * into v_run;
  if v_run.done then
    delete from bookings.cleanup_run where run_date < v_run.run_date - 30;
    return bookings.audit_cleanup(v_run.totals, 'pg_cron', v_run.passes);
  end if;
  return jsonb_build_object('passes', v_run.passes, 'more', true);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Jobs and entry points

select jobs.define(
  p_name => 'booking-reminders',
  p_target_function => 'send-reminder',
  p_discover_function => 'bookings.discover_reminders(jsonb)',
  p_context_function => 'bookings.reminder_context(jsonb)',
  p_apply_function => 'bookings.apply_reminder_outcomes(jsonb)',
  p_schedule => '0 * * * *',
  p_config => '{"kind": "event_reminder", "lead_hours": 24}',
  p_batch_size => 10, p_max_in_flight => 5, p_max_attempts => 6,
  p_backoff_base_seconds => 15, p_backoff_cap_seconds => 900,
  p_task_rate_limits => true,
  p_description => 'Event reminders 24 h before, on WhatsApp (opted-in clients) and email; one per booking and channel.');

select jobs.define(
  p_name => 'payment-reminders',
  p_target_function => 'send-reminder',
  p_discover_function => 'bookings.discover_reminders(jsonb)',
  p_context_function => 'bookings.reminder_context(jsonb)',
  p_apply_function => 'bookings.apply_reminder_outcomes(jsonb)',
  p_schedule => '5 * * * *',
  p_config => '{"kind": "balance_reminder", "lead_hours": 72}',
  p_batch_size => 10, p_max_in_flight => 5, p_max_attempts => 6,
  p_backoff_base_seconds => 15, p_backoff_cap_seconds => 900,
  p_task_rate_limits => true,
  p_description => 'Balance reminders 3 days before the event for bookings with an outstanding balance.');

select jobs.define(
  p_name => 'booking-notices',
  p_target_function => 'send-reminder',
  p_discover_function => 'bookings.discover_cancellation_notices(jsonb)',
  p_context_function => 'bookings.reminder_context(jsonb)',
  p_apply_function => 'bookings.apply_reminder_outcomes(jsonb)',
  p_schedule => '*/15 * * * *',
  p_config => '{"within_hours": 48}',
  p_batch_size => 10, p_max_in_flight => 2, p_max_attempts => 6,
  p_backoff_base_seconds => 15, p_backoff_cap_seconds => 900,
  p_task_rate_limits => true,
  p_description => 'Cancellation emails for bookings the daily cleanup cancelled (no deposit within 24 h).');

-- Shared buckets (a key is one bucket whichever job claims from it). Resend allows 5 requests/s
-- per team; capacity 1 keeps any one second at 5 or fewer. Twilio's limit is on concurrent REST
-- requests (20429), not a rate: this bucket only caps bursts. Re-size for your account with e.g.
--   select jobs.size_rate_limits('booking-reminders', '[{"key": "resend", "capacity": 1, "refill_per_second": 10}]');
select jobs.size_rate_limits('booking-reminders', '[
  {"key": "resend", "capacity": 1, "refill_per_second": 5},
  {"key": "twilio", "capacity": 50, "refill_per_second": 50}]');

select cron.schedule('bookings:cleanup', '* 2 * * *', 'select bookings.cleanup_tick()');

create function public.send_booking_reminders() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('booking-reminders') $$;
create function public.send_payment_reminders() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('payment-reminders') $$;
create function public.run_all_reminder_jobs() returns jsonb language sql security definer
  set search_path = '' as $$
  select jsonb_build_object('booking_reminders', jobs.run_now('booking-reminders'),
                            'payment_reminders', jobs.run_now('payment-reminders'))
$$;

revoke all on all functions in schema bookings from public, anon, authenticated;
revoke all on all tables in schema bookings from public, anon, authenticated;
revoke all on all sequences in schema bookings from public, anon, authenticated;
revoke execute on function public.cleanup_stale_bookings(), public.cleanup_old_notifications(),
  public.cleanup_expired_otps(), public.cleanup_old_audit_logs(), public.run_all_cleanup_jobs(),
  public.send_booking_reminders(), public.send_payment_reminders(), public.run_all_reminder_jobs()
  from public, anon, authenticated;
grant execute on function public.cleanup_stale_bookings(), public.cleanup_old_notifications(),
  public.cleanup_expired_otps(), public.cleanup_old_audit_logs(), public.run_all_cleanup_jobs(),
  public.send_booking_reminders(), public.send_payment_reminders(), public.run_all_reminder_jobs()
  to service_role;
