-- Bookings (supabase/migrations/20261202100000_bookings.sql): the jobs, buckets and the daily
-- cleanup entry in pg_cron; who can read the app's tables (RLS) and run the functions; the four
-- cleanup steps (boundaries, retention settings, chunking, run_all_cleanup_jobs and a failing
-- step); reminder discovery (bookings.discover_reminders directly and through
-- jobs.run_now('booking-reminders' / 'payment-reminders')); the send context and intent
-- (bookings.reminder_context through jobs.task_contexts / jobs.claim_tasks, and directly); the
-- outcomes (bookings.apply_reminder_outcomes through jobs.record_outcome, and directly); Twilio's
-- status callbacks (bookings.record_delivery_status).
-- Runs in one transaction that is rolled back. Its rows carry 'pgtap-bk-<backend pid>-' (client and
-- performer names, e-mail addresses, notification to_address, OTP code_hash, audit actor).
begin;
set local search_path = public, extensions;
select plan(149);

do $$
begin
  if not exists (select 1 from vault.decrypted_secrets where name = 'project_url') then
    perform vault.create_secret('http://127.0.0.1:54321/', 'project_url');
  end if;
  if not exists (select 1 from vault.decrypted_secrets where name = 'service_key') then
    perform vault.create_secret('sb_secret_pgtap_only', 'service_key');
  end if;
end;
$$;

-- fixtures ------------------------------------------------------------------------------------------
select set_config('pgtap.prefix', 'pgtap-bk-' || pg_backend_pid() || '-', true);
select set_config('pgtap.alice', gen_random_uuid()::text, true);   -- client (opted in to WhatsApp)
select set_config('pgtap.bob', gen_random_uuid()::text, true);     -- client (e-mail only)
select set_config('pgtap.perry', gen_random_uuid()::text, true);   -- performer
select set_config('pgtap.olga', gen_random_uuid()::text, true);    -- a user with no client or performer row
insert into auth.users (id, email)
select current_setting('pgtap.' || u)::uuid, current_setting('pgtap.prefix') || u || '@example.test'
  from unnest(array['alice', 'bob', 'perry', 'olga']) u;

-- Only this test's rows are within the cleanup's reach while it runs (rolled back with the rest).
update public.bookings set created_at = now() where status = 'pending' and deposit_paid_at is null and created_at < now();
update public.notifications set created_at = now() where read_at is not null;
update public.otp_codes set expires_at = now() + interval '1 day' where expires_at < now() + interval '1 day';
update public.audit_logs set created_at = now() where severity <> 'critical';
update bookings.message_status set updated_at = now();

-- A zone where the local hour is p_hour now (Etc/GMT-9 is UTC+9): messages are sent in the
-- client's local hours (08:00-21:00 by default), so the clients live where it is midday.
create function pg_temp.zone_at(p_hour int) returns text language sql as $$
  select 'Etc/GMT' || case when o > 0 then '-' || o when o < 0 then '+' || -o else '' end
    from (select (p_hour - extract(hour from now() at time zone 'UTC')::int + 36) % 24 - 12 as o) x $$;
-- p_time on the local day p_days after today's in p_zone.
create function pg_temp.local(p_zone text, p_days int, p_time time) returns timestamptz language sql as $$
  select ((now() at time zone p_zone)::date + p_days + p_time) at time zone p_zone $$;
insert into public.clients (user_id, name, email, phone, whatsapp_opt_in, time_zone) values
  (current_setting('pgtap.alice')::uuid, current_setting('pgtap.prefix') || 'optin',
   current_setting('pgtap.prefix') || 'alice@example.test', '+447700900001', true, pg_temp.zone_at(12)),
  (current_setting('pgtap.bob')::uuid, current_setting('pgtap.prefix') || 'email',
   current_setting('pgtap.prefix') || 'bob@example.test', '+447700900002', false, pg_temp.zone_at(13));
insert into public.performers (user_id, name, email) values
  (current_setting('pgtap.perry')::uuid, current_setting('pgtap.prefix') || 'perf1', current_setting('pgtap.prefix') || 'perry@example.test'),
  (null, current_setting('pgtap.prefix') || 'perf2', null);

create function pg_temp.cid(p_name text) returns bigint language sql as $$
  select id from public.clients where name = current_setting('pgtap.prefix') || p_name $$;
create function pg_temp.pid(p_name text) returns bigint language sql as $$
  select id from public.performers where name = current_setting('pgtap.prefix') || p_name $$;

create temp table mine (name text primary key, id bigint not null unique);
create function pg_temp.book(p_name text, p_client text, p_performer text, p_status text, p_event_in interval,
                             p_created_ago interval default interval '1 hour', p_deposit boolean default false,
                             p_balance bigint default 0)
returns bigint language sql as $$
  with b as (
    insert into public.bookings (client_id, performer_id, status, event_at, created_at, deposit_paid_at, balance_due,
                                 cancelled_at, cancel_reason)
    values (pg_temp.cid(p_client), pg_temp.pid(p_performer), p_status, now() + p_event_in, now() - p_created_ago,
            case when p_deposit then now() - p_created_ago end, p_balance,
            case when p_status = 'cancelled' then now() - interval '1 day' end,
            case when p_status = 'cancelled' then 'cancelled by the client' end)
    returning id)
  insert into mine select p_name, id from b returning id $$;
create function pg_temp.bid(p_name text) returns bigint language sql as $$ select id from mine where name = p_name $$;

-- reminders (performer perf1)
select pg_temp.book('b23', 'optin', 'perf1', 'confirmed', interval '23 hours');
select pg_temp.book('b22', 'optin', 'perf1', 'confirmed', interval '22 hours');
select pg_temp.book('b21', 'optin', 'perf1', 'confirmed', interval '21 hours');
select pg_temp.book('b20', 'optin', 'perf1', 'confirmed', interval '20 hours');
select pg_temp.book('b25', 'optin', 'perf1', 'confirmed', interval '25 hours');
select pg_temp.book('bpast', 'optin', 'perf1', 'confirmed', interval '-1 minute');
select pg_temp.book('b2h', 'optin', 'perf1', 'confirmed', interval '2 hours');     -- a missed hour: never reminded
select pg_temp.book('bnoopt', 'email', 'perf1', 'confirmed', interval '23 hours'); -- phone, but not opted in
select pg_temp.book('bcanc', 'optin', 'perf1', 'cancelled', interval '23 hours');
select pg_temp.book('bbal', 'optin', 'perf1', 'confirmed', interval '70 hours', p_balance => 5000);
select pg_temp.book('bbal0', 'optin', 'perf1', 'confirmed', interval '70 hours');
-- cleanup (client bob, performer perf2)
select pg_temp.book('s_old', 'email', 'perf2', 'pending', interval '10 days', interval '24 hours 1 minute');
select pg_temp.book('s_new', 'email', 'perf2', 'pending', interval '10 days', interval '23 hours 59 minutes');
select pg_temp.book('s_dep', 'email', 'perf2', 'pending', interval '10 days', interval '48 hours', p_deposit => true);
select pg_temp.book('s_conf', 'email', 'perf2', 'confirmed', interval '10 days', interval '48 hours');

-- In-app notifications, tagged in to_address.
insert into public.notifications (client_id, performer_id, kind, channel, to_address, created_at, read_at)
select case when n.who = 'perf1' then null else pg_temp.cid(n.who) end,
       case when n.who = 'perf1' then pg_temp.pid('perf1') end,
       'message', 'in_app', current_setting('pgtap.prefix') || n.name, now() - n.age, now() - n.read_ago
  from (values
    ('n_read_old', 'optin', interval '31 days', interval '31 days'),
    ('n_unread_old', 'optin', interval '40 days', null),
    ('n_read_29', 'optin', interval '29 days', interval '29 days'),
    ('n_alice', 'optin', interval '1 hour', null),
    ('n_bob', 'email', interval '1 hour', null),
    ('n_perf', 'perf1', interval '1 hour', null)) n (name, who, age, read_ago);
create function pg_temp.nid(p_name text) returns bigint language sql as $$
  select id from public.notifications where to_address = current_setting('pgtap.prefix') || p_name $$;

insert into public.otp_codes (phone, code_hash, expires_at)
values ('+447700900001', current_setting('pgtap.prefix') || 'otp_expired', now() - interval '1 minute'),
       ('+447700900001', current_setting('pgtap.prefix') || 'otp_valid', now() + interval '5 minutes');
insert into public.audit_logs (action, severity, actor, created_at)
select 'booking.updated', a.severity, current_setting('pgtap.prefix') || a.name, now() - a.age
  from (values
    ('a_old_info', 'info', interval '91 days'),
    ('a_old_crit', 'critical', interval '200 days'),
    ('a_89', 'warning', interval '89 days'),
    ('a_11', 'info', interval '11 days'),
    ('a_9', 'info', interval '9 days')) a (name, severity, age);
create function pg_temp.otps(p_like text) returns int language sql as $$
  select count(*)::int from public.otp_codes where code_hash like current_setting('pgtap.prefix') || p_like $$;
create function pg_temp.audits() returns text[] language sql as $$
  select coalesce(array_agg(substr(actor, length(current_setting('pgtap.prefix')) + 1) order by actor collate "C"), '{}')
    from public.audit_logs where actor like current_setting('pgtap.prefix') || '%' $$;

-- The names and channels of this test's bookings among discover_reminders(config).
create function pg_temp.due(p_config jsonb) returns text[] language sql as $$
  select coalesce(array_agg(m.name || ':' || split_part(d.key, ':', 3) order by m.name collate "C", split_part(d.key, ':', 3) collate "C"), '{}')
    from bookings.discover_reminders(p_config) d join mine m on m.id = split_part(d.key, ':', 2)::bigint $$;
create function pg_temp.key(p_name text, p_channel text, p_kind text default 'event_reminder') returns text language sql as $$
  select p_kind || ':' || pg_temp.bid(p_name) || ':' || p_channel $$;
create function pg_temp.notif(p_name text, p_channel text, p_kind text default 'event_reminder') returns public.notifications
language sql as $$
  select * from public.notifications where booking_id = pg_temp.bid(p_name) and kind = p_kind and channel = p_channel $$;
create function pg_temp.tid(p_name text, p_channel text, p_kind text default 'event_reminder') returns bigint language sql as $$
  select max(id) from jobs.task
   where job_name = case p_kind when 'event_reminder' then 'booking-reminders' when 'balance_reminder' then 'payment-reminders'
                                else 'booking-notices' end
     and key = pg_temp.key(p_name, p_channel, p_kind) $$;
create function pg_temp.tok(p_name text, p_channel text, p_kind text default 'event_reminder') returns uuid language sql as $$
  select lease_token from jobs.task where id = pg_temp.tid(p_name, p_channel, p_kind) $$;
-- The context of one leased task (jobs.task_contexts: marks the send intent, discards a moot one).
create function pg_temp.ctx(p_name text, p_channel text, p_kind text default 'event_reminder') returns jsonb language sql as $$
  select jsonb_build_object('context', c.context, 'moot', c.moot)
    from jobs.task_contexts(array[pg_temp.tid(p_name, p_channel, p_kind)], array[pg_temp.tok(p_name, p_channel, p_kind)]) c $$;
-- One outcome through the engine (jobs.record_outcome: apply, then the state; DWL01 on a lost lease).
create function pg_temp.outcome(p_name text, p_channel text, p_outcome jsonb) returns text language sql as $$
  select jobs.record_outcome(pg_temp.tid(p_name, p_channel), pg_temp.tok(p_name, p_channel), p_outcome) $$;
create function pg_temp.sm(p_tag text) returns text language sql as $$
  select 'SM' || md5(current_setting('pgtap.prefix') || p_tag) $$;
create function pg_temp.my_keys() returns text[] language sql as $$
  select array_agg(k) from (select pg_temp.key(m.name, ch, 'event_reminder') k from mine m, unnest(array['whatsapp', 'email']) ch) x $$;

-- 7. the jobs, buckets and cron entry -----------------------------------------------------------------
select is(
  (select row(schedule, command)::text from cron.job where jobname = 'bookings:cleanup'),
  row('* 2 * * *', 'select bookings.cleanup_tick()')::text, 'pg_cron runs bookings.cleanup_tick() each minute of 02:00-02:59 UTC');
select is(
  (select array_agg(row(name, target_function, task_rate_limits, discover_function, context_function, apply_function, config)::text order by name)
     from jobs.job where name in ('booking-reminders', 'payment-reminders', 'booking-notices')),
  array[row('booking-notices', 'send-reminder', true, 'bookings.discover_cancellation_notices(jsonb)', 'bookings.reminder_context(jsonb)',
            'bookings.apply_reminder_outcomes(jsonb)', '{"within_hours": 48}'::jsonb)::text,
        row('booking-reminders', 'send-reminder', true, 'bookings.discover_reminders(jsonb)', 'bookings.reminder_context(jsonb)',
            'bookings.apply_reminder_outcomes(jsonb)', '{"kind": "event_reminder", "lead_hours": 24}'::jsonb)::text,
        row('payment-reminders', 'send-reminder', true, 'bookings.discover_reminders(jsonb)', 'bookings.reminder_context(jsonb)',
            'bookings.apply_reminder_outcomes(jsonb)', '{"kind": "balance_reminder", "lead_hours": 72}'::jsonb)::text],
  'the three jobs go to send-reminder with per-task rate limits and the bookings functions');
select is(
  (select array_agg(name || ' ' || schedule || ' ' || timezone || ' ' || (next_run_at > now())::text order by name) from jobs.job
    where name in ('booking-reminders', 'payment-reminders', 'booking-notices')),
  array['booking-notices */15 * * * * UTC true', 'booking-reminders 0 * * * * UTC true', 'payment-reminders 5 * * * * UTC true'],
  'reminders hourly, notices every 15 minutes (UTC), each with its next slot for the scheduler');
select is(
  (select array_agg(key || '=' || capacity || '/' || refill_per_second::numeric(10, 2) order by key) from jobs.rate_limit where key in ('resend', 'twilio')),
  array['resend=1/5.00', 'twilio=50/50.00'], 'buckets resend (refill 5/s) and twilio exist');
select ok(
  (select bool_and(content_sid ~ '^HX[0-9a-fA-F]{32}$') and count(*) = 2 from bookings.whatsapp_templates
    where kind in ('event_reminder', 'balance_reminder')),
  'a WhatsApp template per reminder kind');
select is((select row(stale_booking_after, notification_retention, audit_retention)::text from bookings.cleanup_settings),
  row(interval '24 hours', interval '30 days', interval '90 days')::text, 'cleanup defaults: 24 h, 30 days, 90 days');
select throws_ok(
  format($$insert into public.clients (name, time_zone) values (%L, 'Mars/Olympus')$$, current_setting('pgtap.prefix') || 'mars'),
  '22023', 'time_zone: unknown time zone "Mars/Olympus"', 'an unknown time zone is refused with its name');

-- 6. privileges and RLS ------------------------------------------------------------------------------
select is(
  (select array_agg(c.relname::text order by c.relname) from pg_class c
    where c.oid in ('public.clients'::regclass, 'public.performers'::regclass, 'public.bookings'::regclass,
                    'public.notifications'::regclass, 'public.otp_codes'::regclass, 'public.audit_logs'::regclass)
      and c.relrowsecurity),
  array['audit_logs', 'bookings', 'clients', 'notifications', 'otp_codes', 'performers'], 'RLS is on for the six app tables');
select is(
  (select array_agg(t order by t) from unnest(array['public.clients', 'public.performers', 'public.bookings', 'public.notifications',
                                                  'public.otp_codes', 'public.audit_logs']) t
    where has_table_privilege('anon', t, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),
  null, 'anon has no privilege on any of them');
select is(
  (select array_agg(t order by t) from unnest(array['public.clients', 'public.performers', 'public.bookings', 'public.notifications',
                                                  'public.otp_codes', 'public.audit_logs']) t
    where has_table_privilege('authenticated', t, 'INSERT, UPDATE, DELETE, TRUNCATE')
       or (t in ('public.otp_codes', 'public.audit_logs') and has_table_privilege('authenticated', t, 'SELECT'))),
  null, 'authenticated cannot write them, nor read otp_codes or audit_logs');
select ok(has_column_privilege('authenticated', 'public.notifications', 'read_at', 'UPDATE')
          and not has_column_privilege('authenticated', 'public.notifications', 'status', 'UPDATE'),
  'authenticated may update notifications.read_at, and no other column');
select ok(not has_schema_privilege('anon', 'bookings', 'USAGE') and not has_schema_privilege('authenticated', 'bookings', 'USAGE'),
  'client roles have no usage on schema bookings');
select is(
  (select array_agg(c.oid::regclass::text order by 1) from pg_class c
    where c.relnamespace = 'bookings'::regnamespace and c.relkind in ('r', 'v', 'm', 'S', 'p')
      and (has_table_privilege('anon', c.oid, 'SELECT') or has_table_privilege('authenticated', c.oid, 'SELECT')
           or has_table_privilege('public', c.oid, 'SELECT'))),
  null, 'nobody but the owner selects from a bookings table');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where (p.pronamespace = 'bookings'::regnamespace
           or p.oid in ('public.run_all_cleanup_jobs()'::regprocedure, 'public.send_booking_reminders()'::regprocedure,
                        'public.send_payment_reminders()'::regprocedure, 'public.run_all_reminder_jobs()'::regprocedure,
                        'public.cleanup_stale_bookings()'::regprocedure, 'public.cleanup_old_notifications()'::regprocedure,
                        'public.cleanup_expired_otps()'::regprocedure, 'public.cleanup_old_audit_logs()'::regprocedure))
      and (has_function_privilege('anon', p.oid, 'EXECUTE') or has_function_privilege('authenticated', p.oid, 'EXECUTE')
           or has_function_privilege('public', p.oid, 'EXECUTE'))),
  null, 'anon and authenticated execute no bookings.* function and none of the public entry points');
select ok(has_function_privilege('service_role', 'public.run_all_cleanup_jobs()', 'EXECUTE')
          and has_function_privilege('service_role', 'public.send_booking_reminders()', 'EXECUTE'),
  'service_role runs the entry points');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where p.pronamespace = 'bookings'::regnamespace and p.prokind = 'f'
      and not coalesce(p.proconfig @> array['search_path=""'], false)),
  null, 'every function in bookings pins search_path');

set local role anon;
select throws_ok('select 1 from public.bookings', '42501', null, 'anon cannot read bookings');
select throws_ok('select 1 from public.notifications', '42501', null, 'anon cannot read notifications');
select throws_ok('select 1 from public.clients', '42501', null, 'anon cannot read clients');
reset role;

select set_config('pgtap.alice_bookings', (select array_agg(b.id order by b.id)::text from public.bookings b where b.client_id = pg_temp.cid('optin')), true);
select set_config('pgtap.perry_bookings', (select array_agg(b.id order by b.id)::text from public.bookings b where b.performer_id = pg_temp.pid('perf1')), true);
select set_config('pgtap.alice_notes',
  (select array_agg(id order by id)::text from public.notifications where client_id = pg_temp.cid('optin')), true);
select set_config('pgtap.n_alice', pg_temp.nid('n_alice')::text, true);
select set_config('pgtap.n_bob', pg_temp.nid('n_bob')::text, true);
select set_config('pgtap.n_perf', pg_temp.nid('n_perf')::text, true);
select set_config('pgtap.c_optin', pg_temp.cid('optin')::text, true);
select set_config('pgtap.p_perf1', pg_temp.pid('perf1')::text, true);

select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.alice'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is((select array_agg(id order by id) from public.bookings)::text, current_setting('pgtap.alice_bookings'),
  'a client reads her own bookings, and only those');
select is((select array_agg(id order by id) from public.notifications)::text, current_setting('pgtap.alice_notes'),
  '... her own notifications, and only those');
select is((select array_agg(id) from public.clients)::text, '{' || current_setting('pgtap.c_optin') || '}', '... and her own client row only');
select is((select count(*)::int from public.performers), 0, '... and no performer row');
update public.notifications set read_at = now()
 where id in (current_setting('pgtap.n_alice')::bigint, current_setting('pgtap.n_bob')::bigint);
select throws_ok(format('update public.notifications set status = %L where id = %s', 'read', current_setting('pgtap.n_alice')),
  '42501', null, 'she cannot update any other column of her notification');
select throws_ok('select 1 from bookings.message_status', '42501', null, 'authenticated cannot read bookings.message_status');
reset role;
select is((select array_agg(row(substr(to_address, length(current_setting('pgtap.prefix')) + 1), read_at)::text order by to_address)
             from public.notifications where id in (pg_temp.nid('n_alice'), pg_temp.nid('n_bob'))),
  array[row('n_alice', now())::text, row('n_bob', null::timestamptz)::text],
  'she marked her own notification read; the update did not reach another client''s');

select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.perry'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is((select array_agg(id order by id) from public.bookings)::text, current_setting('pgtap.perry_bookings'),
  'a performer reads the bookings he performs at, and only those');
select is((select array_agg(id) from public.notifications)::text, '{' || current_setting('pgtap.n_perf') || '}',
  '... his own notifications only');
select is((select array_agg(id) from public.performers)::text, '{' || current_setting('pgtap.p_perf1') || '}', '... his own performer row only');
reset role;

select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.olga'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is((select row((select count(*) from public.bookings), (select count(*) from public.notifications),
                      (select count(*) from public.clients), (select count(*) from public.performers))::text),
  row(0, 0, 0, 0)::text, 'another user sees no booking, notification, client or performer');
reset role;
select set_config('request.jwt.claims', '', true);

-- 1. cleanup -----------------------------------------------------------------------------------------
create temp table stale_result as select public.cleanup_stale_bookings() as r;
select is((select r - 'noticesQueued' from stale_result), '{"success": true, "cancelledCount": 1, "more": false, "errors": []}'::jsonb,
  'cleanup_stale_bookings cancels one booking');
select ok((select (r ->> 'noticesQueued')::int >= 1 from stale_result), '... and reports the cancellation notice it queued');
select is(
  (select array_agg(m.name || ':' || b.status order by m.name) from mine m join public.bookings b using (id) where m.name like 's\_%'),
  array['s_conf:confirmed', 's_dep:pending', 's_new:pending', 's_old:cancelled'],
  'pending without deposit created 24 h 01 min ago: cancelled; 23 h 59 min, with a deposit, or confirmed: kept');
select is((select row(cancel_reason, cancelled_at)::text from public.bookings where id = pg_temp.bid('s_old')),
  row('no deposit within 24 hours', now())::text, '... with the cancel reason');
select is((select row(status, to_address, client_id)::text from pg_temp.notif('s_old', 'email', 'booking_cancelled')),
  row('pending', current_setting('pgtap.prefix') || 'bob@example.test', pg_temp.cid('email'))::text,
  'its client''s booking_cancelled e-mail notification is pending');
select is((select state in ('queued', 'running') from jobs.task where id = pg_temp.tid('s_old', 'email', 'booking_cancelled')), true,
  '... with a task of booking-notices (jobs.run_now)');

select is(public.cleanup_old_notifications(), '{"success": true, "deletedCount": 1, "more": false, "errors": []}'::jsonb,
  'cleanup_old_notifications deletes one');
select is(
  (select array_agg(n order by n) from unnest(array['n_read_old', 'n_unread_old', 'n_read_29']) n where pg_temp.nid(n) is not null),
  array['n_read_29', 'n_unread_old'], 'read and older than 30 days: deleted; unread old and read 29 days old: kept');

select is(public.cleanup_expired_otps(), '{"success": true, "deletedCount": 1, "more": false, "errors": []}'::jsonb,
  'cleanup_expired_otps deletes one');
select is(array[pg_temp.otps('otp_expired'), pg_temp.otps('otp_valid')], array[0, 1], 'the expired code only');

select is(public.cleanup_old_audit_logs(), '{"success": true, "deletedCount": 1, "more": false, "errors": []}'::jsonb,
  'cleanup_old_audit_logs deletes one');
select is(pg_temp.audits(), array['a_11', 'a_89', 'a_9', 'a_old_crit'], 'non-critical older than 90 days: deleted; critical and recent: kept');
update bookings.cleanup_settings set audit_retention = '10 days';
select is((public.cleanup_old_audit_logs() ->> 'deletedCount')::int, 2, 'with audit_retention 10 days two more go');
select is(pg_temp.audits(), array['a_9', 'a_old_crit'], '... the 89- and 11-day ones; the 9-day one and the critical one stay');

update bookings.cleanup_settings set chunk_rows = 3, max_rows_per_pass = 7;
insert into public.otp_codes (code_hash, expires_at)
select current_setting('pgtap.prefix') || 'chunk-' || i, now() - make_interval(mins => i) from generate_series(1, 10) i;
select is(public.cleanup_expired_otps(), '{"success": true, "deletedCount": 7, "more": true, "errors": []}'::jsonb,
  'chunk_rows 3, max_rows_per_pass 7: one pass deletes 7 of 10 and says more');
select is(public.cleanup_expired_otps(), '{"success": true, "deletedCount": 3, "more": false, "errors": []}'::jsonb,
  '... the next deletes the last 3');
select is(pg_temp.otps('chunk-%'), 0, '... and none is left');
update bookings.cleanup_settings set chunk_rows = 5000, max_rows_per_pass = 50000;

-- Delivery statuses (bookings.message_status, keyed by message_sid) go with the notifications.
insert into bookings.message_status (message_sid, status, updated_at) values (pg_temp.sm('old-status'), 'delivered', now() - interval '31 days');
select public.cleanup_old_notifications();
select is((select count(*)::int from bookings.message_status where message_sid = pg_temp.sm('old-status')), 0,
  'delivery statuses older than 30 days are deleted with the notifications');

-- run_all_cleanup_jobs: one row for every step.
select pg_temp.book('s_old2', 'email', 'perf2', 'pending', interval '10 days', interval '25 hours');
insert into public.notifications (client_id, kind, channel, to_address, created_at, read_at)
values (pg_temp.cid('optin'), 'message', 'in_app', current_setting('pgtap.prefix') || 'n_read_old2', now() - interval '40 days', now() - interval '39 days');
insert into public.otp_codes (code_hash, expires_at)
values (current_setting('pgtap.prefix') || 'run-1', now() - interval '1 hour'), (current_setting('pgtap.prefix') || 'run-2', now() - interval '1 hour');
insert into public.audit_logs (action, actor, created_at) values ('booking.updated', current_setting('pgtap.prefix') || 'a_run', now() - interval '20 days');
create temp table run_result as select public.run_all_cleanup_jobs() as r;
select is(
  (select jsonb_build_object('success', r -> 'success', 'errors', r -> 'errors', 'passes', r -> 'passes',
            'counts', (select jsonb_object_agg(s.key, coalesce(s.value -> 'cancelledCount', s.value -> 'deletedCount')) from jsonb_each(r -> 'steps') s))
     from run_result),
  '{"success": true, "errors": [], "passes": 1, "counts": {"cleanup_stale_bookings": 1, "cleanup_old_notifications": 1,
    "cleanup_expired_otps": 2, "cleanup_old_audit_logs": 1}}'::jsonb,
  'run_all_cleanup_jobs: success, one pass, the count of each of the four steps');
select is(
  (select array_agg(row(severity, actor, details)::text) from public.audit_logs where action = 'cleanup.run' and created_at = now()),
  array[row('info', 'run_all_cleanup_jobs', '{"passes": 1, "errors": [], "counts": {"cleanup_stale_bookings": 1,
    "cleanup_old_notifications": 1, "cleanup_expired_otps": 2, "cleanup_old_audit_logs": 1}}'::jsonb)::text],
  '... and exactly one cleanup.run audit row, holding counts only');
select is((select status from public.bookings where id = pg_temp.bid('s_old2')), 'cancelled', '... the stale booking is cancelled');
select is((select r #>> '{steps,cleanup_stale_bookings,noticesQueued}' from run_result), '1', '... and its summary counts the cancellation email queued');

-- One failing step does not stop the others.
insert into public.notifications (client_id, kind, channel, to_address, created_at, read_at)
values (pg_temp.cid('optin'), 'message', 'in_app', current_setting('pgtap.prefix') || 'n_read_old3', now() - interval '40 days', now() - interval '39 days');
insert into public.otp_codes (code_hash, expires_at) values (current_setting('pgtap.prefix') || 'fail-1', now() - interval '1 hour');
insert into public.audit_logs (action, actor, created_at) values ('booking.updated', current_setting('pgtap.prefix') || 'a_fail', now() - interval '20 days');
alter table public.otp_codes rename to otp_codes_x;
delete from run_result;
insert into run_result select public.run_all_cleanup_jobs();
alter table public.otp_codes_x rename to otp_codes;
select is(
  (select jsonb_build_object('success', r -> 'success', 'errors', r -> 'errors',
            'counts', (select jsonb_object_agg(s.key, coalesce(s.value -> 'cancelledCount', s.value -> 'deletedCount')) from jsonb_each(r -> 'steps') s))
     from run_result),
  '{"success": false, "errors": ["cleanup_expired_otps: relation \"public.otp_codes\" does not exist"],
    "counts": {"cleanup_stale_bookings": 0, "cleanup_old_notifications": 1, "cleanup_expired_otps": 0, "cleanup_old_audit_logs": 1}}'::jsonb,
  'a failing step: success false, its error listed, the other steps ran');
select is(array[(pg_temp.nid('n_read_old3') is null)::int, pg_temp.otps('fail-1'), (select count(*)::int from public.audit_logs
                  where actor = current_setting('pgtap.prefix') || 'a_fail')],
  array[1, 1, 0], '... the old notification and audit log are gone, the OTP is still there');
select is((select array_agg(severity order by id) from public.audit_logs where action = 'cleanup.run' and created_at = now()),
  array['info', 'error'], '... and the run is audited as an error');

-- A step whose delete fails reports more = false, so the daily run (bookings.cleanup_tick) does not
-- repeat the failing pass every minute of the hour.
create function pg_temp.refuse_delete() returns trigger language plpgsql as $$
begin
  raise exception 'audit log % is held', old.id;
end;
$$;
insert into public.audit_logs (action, actor, created_at) values ('booking.updated', current_setting('pgtap.prefix') || 'a_held', now() - interval '20 days');
create trigger pgtap_refuse before delete on public.audit_logs for each row
  when (old.actor like 'pgtap-bk-%-a_held') execute function pg_temp.refuse_delete();
delete from run_result;
insert into run_result select public.cleanup_old_audit_logs();
drop trigger pgtap_refuse on public.audit_logs;
select is((select r - 'errors' - 'more' from run_result), '{"success": false, "deletedCount": 0}'::jsonb,
  'a delete that fails: the step reports no success and nothing deleted');
select ok((select (r -> 'errors' ->> 0) ~ '^cleanup_old_audit_logs: audit log [0-9]+ is held$' from run_result), '... and the error');
select is((select (r ->> 'more')::boolean from run_result), false,
  '... and does not ask for another pass');

-- 2. reminder discovery ------------------------------------------------------------------------------
-- Every claim below gets its tokens and slots, whatever other work these jobs have in flight.
update jobs.rate_limit set capacity = 1000, tokens = 1000 where key in ('resend', 'twilio');
update jobs.job set max_in_flight = 100 where name in ('booking-reminders', 'payment-reminders');
select is(pg_temp.due('{"kind": "event_reminder", "lead_hours": 24}'),
  array['b20:email', 'b20:whatsapp', 'b21:email', 'b21:whatsapp', 'b22:email', 'b22:whatsapp', 'b23:email', 'b23:whatsapp',
        'b2h:email', 'b2h:whatsapp', 'bnoopt:email'],
  'due: confirmed events within 24 h not started (2 h: a missed hour caught up), WhatsApp only when opted in; not 25 h, started, cancelled');
select is(
  (select d.payload from bookings.discover_reminders('{"kind": "event_reminder", "lead_hours": 24}') d where d.key = pg_temp.key('b23', 'whatsapp')),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'channel', 'whatsapp', 'rate_keys', jsonb_build_array('twilio'),
                     'send_window', jsonb_build_object('time_zone', pg_temp.zone_at(12), 'start', '08:00', 'end', '21:00')),
  'key event_reminder:<id>:whatsapp; payload: notification, channel, rate key twilio, the send window in the client''s zone');
select is(
  (select d.payload from bookings.discover_reminders('{"kind": "event_reminder", "lead_hours": 24}') d where d.key = pg_temp.key('b23', 'email')),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'email')).id, 'channel', 'email', 'rate_keys', jsonb_build_array('resend'),
                     'send_window', jsonb_build_object('time_zone', pg_temp.zone_at(12), 'start', '08:00', 'end', '21:00')),
  '... and event_reminder:<id>:email with rate key resend');
select is(
  (select array_agg(m.name || ':' || n.channel || ':' || n.status || ':' || n.to_address order by m.name collate "C", n.channel collate "C")
     from public.notifications n join mine m on m.id = n.booking_id where m.name in ('b23', 'bnoopt')),
  array['b23:email:pending:' || current_setting('pgtap.prefix') || 'alice@example.test', 'b23:whatsapp:pending:+447700900001',
        'bnoopt:email:pending:' || current_setting('pgtap.prefix') || 'bob@example.test'],
  'one pending notification per booking and channel, addressed');
select is((select count(*)::int from public.notifications n join mine m on m.id = n.booking_id where n.kind = 'event_reminder'), 11,
  'discovery run three times: still 11 notification rows (dedupe)');
select throws_ok($$select * from bookings.discover_reminders('{"kind": "booking_cancelled"}')$$, '22023',
  'bookings.discover_reminders: config.kind must be event_reminder or balance_reminder, got booking_cancelled', 'an unknown kind is refused');

create temp table run1 as select jobs.run_now('booking-reminders') as r;
select is((select run1.r ->> 'error' from run1), null, 'jobs.run_now(''booking-reminders'') runs');
select is(
  (select array_agg(row(t.key, t.state, t.rate_keys, t.payload, t.window_zone, t.window_start, t.window_end, t.run_after,
                        t.window_until)::text order by t.key collate "C") from jobs.task t
    where t.job_name = 'booking-reminders' and t.key in (pg_temp.key('b23', 'whatsapp'), pg_temp.key('b23', 'email'))),
  array[row(pg_temp.key('b23', 'email'), 'running', array['resend'],
            jsonb_build_object('notification_id', (pg_temp.notif('b23', 'email')).id, 'channel', 'email'),
            pg_temp.zone_at(12), '08:00'::time, '21:00'::time, now(), pg_temp.local(pg_temp.zone_at(12), 0, '21:00'))::text,
        row(pg_temp.key('b23', 'whatsapp'), 'running', array['twilio'],
            jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'channel', 'whatsapp'),
            pg_temp.zone_at(12), '08:00'::time, '21:00'::time, now(), pg_temp.local(pg_temp.zone_at(12), 0, '21:00'))::text],
  'through the engine: one task per channel, claimed at once (midday for the client: its window is open until 21:00), '
  'payload.rate_keys and send_window moved to jobs.task');
select is((select count(*)::int from jobs.task where job_name = 'booking-reminders' and key = any (pg_temp.my_keys())), 11,
  '11 tasks for this test''s bookings');
select jobs.run_now('booking-reminders');
select is(
  array[(select count(*)::int from jobs.task where job_name = 'booking-reminders' and key = any (pg_temp.my_keys())),
        (select count(*)::int from public.notifications n join mine m on m.id = n.booking_id where n.kind = 'event_reminder')],
  array[11, 11], 'running discovery again: no new task and no new notification row');

select is(pg_temp.due('{"kind": "balance_reminder", "lead_hours": 72}'), array['bbal:email', 'bbal:whatsapp'],
  'balance reminders: an outstanding balance and the event in 70 h is due; a balance of 0 is not');
select jobs.run_now('payment-reminders');
select is((select array_agg(state order by key collate "C") from jobs.task
            where job_name = 'payment-reminders' and key in (pg_temp.key('bbal', 'email', 'balance_reminder'), pg_temp.key('bbal', 'whatsapp', 'balance_reminder'))),
  array['running', 'running'], 'payment-reminders queues and claims them (keys balance_reminder:<id>:<channel>)');

-- 3. context and the send intent ------------------------------------------------------------------------
create temp table ctx_b23 as
select * from jobs.task_contexts(array[pg_temp.tid('b23', 'email'), pg_temp.tid('b23', 'whatsapp')],
                                 array[pg_temp.tok('b23', 'email'), pg_temp.tok('b23', 'whatsapp')]);
select is((select context from ctx_b23 where task_id = pg_temp.tid('b23', 'whatsapp')),
  jsonb_build_object(
    'notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'channel', 'whatsapp', 'kind', 'event_reminder',
    'to', '+447700900001', 'idempotency_key', pg_temp.key('b23', 'whatsapp'), 'reconcile_since', null,
    'content_sid', (select content_sid from bookings.whatsapp_templates where kind = 'event_reminder'),
    'booking', jsonb_build_object('id', pg_temp.bid('b23'), 'reference', 'BK-' || lpad(pg_temp.bid('b23')::text, 6, '0'),
      'client_name', current_setting('pgtap.prefix') || 'optin', 'performer_name', current_setting('pgtap.prefix') || 'perf1',
      'event_at', now() + interval '23 hours', 'time_zone', pg_temp.zone_at(12), 'balance_due', 0, 'currency', 'USD', 'cancel_reason', null)),
  'WhatsApp context: phone, task key as idempotency key, the template''s content_sid, the booking, its reference and zone');
select ok((select context #>> '{booking,reference}' ~ '^BK-[0-9]{6}$' from ctx_b23 where task_id = pg_temp.tid('b23', 'whatsapp')),
  '... the reference is BK- and six digits');
select is((select context - 'booking' from ctx_b23 where task_id = pg_temp.tid('b23', 'email')),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'email')).id, 'channel', 'email', 'kind', 'event_reminder',
    'to', current_setting('pgtap.prefix') || 'alice@example.test', 'idempotency_key', pg_temp.key('b23', 'email'),
    'reconcile_since', null, 'content_sid', null),
  'e-mail context: the address, the task key as Idempotency-Key, no template');
select is(
  (select array_agg(row(n.channel, n.status, n.attempt_started_at, n.send_attempts)::text order by n.channel)
     from public.notifications n where n.booking_id = pg_temp.bid('b23') and n.kind = 'event_reminder'),
  array[row('email', 'sending', now(), 1)::text, row('whatsapp', 'sending', now(), 1)::text],
  'reading the context records the intent: sending, attempt_started_at, send_attempts 1');

select is((pg_temp.ctx('b20', 'whatsapp') -> 'context' ->> 'reconcile_since'), null, 'a first attempt has nothing to reconcile');
-- The first attempt started in an earlier transaction (now() stands still inside this one).
update public.notifications set attempt_started_at = now() - interval '5 minutes' where id = (pg_temp.notif('b20', 'whatsapp')).id;
select is((pg_temp.ctx('b20', 'whatsapp') -> 'context' ->> 'reconcile_since')::timestamptz, now() - interval '5 minutes',
  'a second context call for a WhatsApp send still sending: reconcile_since = the earlier attempt_started_at');
select is((select row(status, attempt_started_at, send_attempts)::text from pg_temp.notif('b20', 'whatsapp')),
  row('sending', now() - interval '5 minutes', 2)::text,
  '... the new attempt is counted; the first unknown attempt''s start is kept');
select is((pg_temp.ctx('b20', 'whatsapp') -> 'context' ->> 'reconcile_since')::timestamptz, now() - interval '5 minutes',
  'a third attempt (the second ended without an outcome) still looks back to the first attempt''s start, not the second''s');

update public.bookings set status = 'cancelled', cancelled_at = now(), cancel_reason = 'client cancelled' where id = pg_temp.bid('b2h');
select is(pg_temp.ctx('b2h', 'whatsapp'), '{"context": null, "moot": "the booking is cancelled"}'::jsonb,
  'booking cancelled meanwhile: moot');
select is((select row(status, error, send_attempts)::text from pg_temp.notif('b2h', 'whatsapp')),
  row('skipped', 'the booking is cancelled', 0)::text, '... the notification is skipped');
select is((select row(state, last_error)::text from jobs.task where id = pg_temp.tid('b2h', 'whatsapp')),
  row('discarded', 'the booking is cancelled')::text, '... and the task discarded');
update public.notifications set status = 'sent', sent_at = now() where id = (pg_temp.notif('bnoopt', 'email')).id;
select is(pg_temp.ctx('bnoopt', 'email'), '{"context": null, "moot": "already sent"}'::jsonb, 'already sent: moot');
select is((select row(status, send_attempts)::text from pg_temp.notif('bnoopt', 'email')), row('sent', 0)::text,
  '... and the notification keeps its status');
update public.bookings set balance_due = 0 where id = pg_temp.bid('bbal');
select is(pg_temp.ctx('bbal', 'email', 'balance_reminder'), '{"context": null, "moot": "the balance has been paid"}'::jsonb,
  'balance paid meanwhile: moot');
update public.clients set whatsapp_opt_in = false where id = pg_temp.cid('optin');
select is(pg_temp.ctx('b21', 'email') ->> 'moot', null, 'opted out of WhatsApp meanwhile: the e-mail still goes');
select is(pg_temp.ctx('b25', 'whatsapp'), null, 'a task that is not leased gets no row');
update public.clients set whatsapp_opt_in = true where id = pg_temp.cid('optin');

-- reminder_context called directly with a tasks JSON.
insert into public.notifications (booking_id, client_id, kind, channel, to_address)
values (pg_temp.bid('bpast'), pg_temp.cid('optin'), 'event_reminder', 'email', null);
select is(
  (select array_agg(row(c.task_id, c.context, c.moot)::text order by c.task_id) from bookings.reminder_context(jsonb_build_array(
     jsonb_build_object('task_id', 1, 'key', 'k1', 'payload', jsonb_build_object('notification_id', -1)),
     jsonb_build_object('task_id', 2, 'key', 'k2', 'payload', jsonb_build_object('notification_id', (pg_temp.notif('bpast', 'email')).id)))) c),
  array[row(1, null::jsonb, 'the notification no longer exists')::text, row(2, null::jsonb, 'the event has started')::text],
  'reminder_context: a notification gone, an event started');
select is((select row(status, error)::text from pg_temp.notif('bpast', 'email')), row('skipped', 'the event has started')::text,
  '... a moot pending notification is skipped');
select is(
  (select c.context ->> 'to' from bookings.reminder_context(jsonb_build_array(jsonb_build_object('task_id', 3, 'key', pg_temp.key('s_old', 'email', 'booking_cancelled'),
     'payload', jsonb_build_object('notification_id', (pg_temp.notif('s_old', 'email', 'booking_cancelled')).id)))) c),
  current_setting('pgtap.prefix') || 'bob@example.test', 'the cancellation notice''s context: the client''s address');

-- The reference keeps every digit of a long booking id (lpad would cut it to six).
insert into public.bookings (id, client_id, performer_id, status, event_at) overriding system value
values (1000000000 + pg_backend_pid(), pg_temp.cid('optin'), pg_temp.pid('perf1'), 'confirmed', now() + interval '30 hours');
insert into mine values ('bbig', 1000000000 + pg_backend_pid());
insert into public.notifications (booking_id, client_id, kind, channel, to_address)
values (pg_temp.bid('bbig'), pg_temp.cid('optin'), 'event_reminder', 'email', null);
select is(
  (select c.context #>> '{booking,reference}' from bookings.reminder_context(jsonb_build_array(jsonb_build_object('task_id', 4, 'key', 'k4',
     'payload', jsonb_build_object('notification_id', (pg_temp.notif('bbig', 'email')).id)))) c),
  'BK-' || pg_temp.bid('bbig'), 'a booking id of more than six digits keeps all its digits in the reference');

-- 4. outcomes through the engine ----------------------------------------------------------------------
select is(pg_temp.outcome('b23', 'whatsapp', jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('provider_message_id', pg_temp.sm('a'), 'status', 'queued'))), 'succeeded',
  'ok with the message sid: succeeded');
select is((select row(provider_message_id, status, sent_at, error)::text from pg_temp.notif('b23', 'whatsapp')),
  row(pg_temp.sm('a'), 'queued', now(), null::text)::text, 'the notification holds the sid, queued, sent_at');
select is((select result from jobs.task where id = pg_temp.tid('b23', 'whatsapp')),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'provider_message_id', pg_temp.sm('a'), 'reconciled', false),
  '... and the task result names the notification');

select is(pg_temp.outcome('b23', 'email', '{"outcome": "retry", "error": "HTTP 503 from Resend", "after": 0}'), 'queued', 'retry: queued again');
select is((select row(status, error, provider_message_id)::text from pg_temp.notif('b23', 'email')),
  row('sending', 'HTTP 503 from Resend', null::text)::text, '... the notification keeps sending, with the error');
select is((select array_agg(split_part(key, ':', 3)) from bookings.discover_reminders('{"kind": "event_reminder", "lead_hours": 24}')
            where key like 'event_reminder:' || pg_temp.bid('b23') || ':%'),
  array['email'], 'WhatsApp sent, e-mail not yet: discovery returns only the e-mail (dedupe per channel)');
create temp table claimed as
select * from jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'booking-reminders' and settled_at is null), 10);
select is((select row(context ->> 'channel', context ->> 'idempotency_key', context ->> 'reconcile_since')::text from claimed
            where task_id = pg_temp.tid('b23', 'email')),
  row('email', pg_temp.key('b23', 'email'), null::text)::text,
  'claim_tasks claims the retry into the batch with its context; e-mail gets no reconcile_since (Resend dedupes on the key)');
select is((select send_attempts from pg_temp.notif('b23', 'email')), 2, '... second attempt recorded');
select is(pg_temp.outcome('b23', 'email', '{"outcome": "dead", "error": "HTTP 422: invalid to", "data": {"error_code": "validation_error"}}'),
  'dead', 'dead: the task is dead');
select is((select row(status, error_code, error)::text from pg_temp.notif('b23', 'email')),
  row('failed', 'validation_error', 'HTTP 422: invalid to')::text, '... the notification failed with the code and error');
select is((select count(*)::int from bookings.discover_reminders('{"kind": "event_reminder", "lead_hours": 24}')
            where key like 'event_reminder:' || pg_temp.bid('b23') || ':%'),
  0, 'the failed e-mail does not resend the WhatsApp (nor itself)');

select is(pg_temp.outcome('b20', 'whatsapp', '{"outcome": "dead", "error": "HTTP 400: Twilio 21211: Invalid To phone number", "data": {"error_code": "21211"}}'),
  'dead', 'dead {error_code 21211}');
select is((select row(status, error_code, error)::text from pg_temp.notif('b20', 'whatsapp')),
  row('failed', '21211', 'HTTP 400: Twilio 21211: Invalid To phone number')::text, '... the notification failed with 21211 and the error');

select is(pg_temp.ctx('b20', 'email') ->> 'moot', null, 'b20''s e-mail is read');
select is(pg_temp.outcome('b20', 'email', jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('provider_message_id', pg_temp.sm('a'), 'status', 'queued'))), 'dead',
  'an ok with a message id another notification holds becomes dead');
select is((select last_error from jobs.task where id = pg_temp.tid('b20', 'email')),
  format('provider message %s is already recorded for another notification', pg_temp.sm('a')), '... with a clear error');
select is((select provider_message_id from pg_temp.notif('b20', 'email')), null, '... and the id is not stored twice');

select is(bookings.record_delivery_status(pg_temp.sm('c'), 'delivered'), '{"notification_id": null, "status": "delivered", "changed": false}'::jsonb,
  'a callback before the send''s outcome: nothing to change yet');
select is((select status from bookings.message_status where message_sid = pg_temp.sm('c')), 'delivered', '... it is kept in message_status');
select is(pg_temp.ctx('b22', 'whatsapp') ->> 'moot', null, 'b22''s WhatsApp is read');
select is(pg_temp.outcome('b22', 'whatsapp', jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('provider_message_id', pg_temp.sm('c'), 'status', 'queued'))), 'succeeded', 'then its ok arrives');
select is((select row(status, delivered_at)::text from pg_temp.notif('b22', 'whatsapp')), row('delivered', now())::text,
  '... and the notification takes the later status from the callback');

select is(pg_temp.ctx('b21', 'whatsapp') ->> 'moot', null, 'b21''s WhatsApp is read');
select is(pg_temp.outcome('b21', 'whatsapp', jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('provider_message_id', pg_temp.sm('b'), 'status', 'accepted'))), 'succeeded', 'ok, status accepted');
select is((pg_temp.notif('b21', 'whatsapp')).status, 'queued', '... Twilio''s accepted is queued');

-- apply called directly.
select is(
  (select array_agg(row(a.task_id, a.outcome, a.error, a.result)::text order by a.task_id) from bookings.apply_reminder_outcomes(jsonb_build_array(
     jsonb_build_object('task_id', 901, 'outcome', 'ok', 'payload', jsonb_build_object('notification_id', -1),
                        'data', jsonb_build_object('provider_message_id', pg_temp.sm('d'))),
     jsonb_build_object('task_id', 902, 'outcome', 'ok', 'payload', jsonb_build_object('notification_id', (pg_temp.notif('b2h', 'email')).id),
                        'data', jsonb_build_object('status', 'queued')),
     jsonb_build_object('task_id', 903, 'outcome', 'retry', 'error', 'timeout',
                        'payload', jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id)))) a),
  array[row(901, 'discard', 'the notification no longer exists', null::jsonb)::text,
        row(902, 'dead', 'the send reported no provider message id', null::jsonb)::text],
  'apply_reminder_outcomes: discard for a notification gone, dead for an ok without a message id');
select is((select row(status, error)::text from pg_temp.notif('b23', 'whatsapp')), row('queued', null::text)::text,
  '... a retry for a notification that has its message id leaves it alone');

-- 5. delivery statuses ------------------------------------------------------------------------------
select is(bookings.record_delivery_status(pg_temp.sm('a'), 'queued'),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'status', 'queued', 'changed', false),
  'queued for a queued message: unchanged');
select is(bookings.record_delivery_status(pg_temp.sm('a'), 'sent'),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'status', 'sent', 'changed', true), 'queued → sent');
select is(bookings.record_delivery_status(pg_temp.sm('a'), 'delivered'),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'status', 'delivered', 'changed', true), 'sent → delivered');
select is((select row(status, delivered_at)::text from pg_temp.notif('b23', 'whatsapp')), row('delivered', now())::text,
  '... delivered_at is set');
select is(bookings.record_delivery_status(pg_temp.sm('a'), 'delivered') ->> 'changed', 'false', 'a repeated delivered changes nothing');
select is(bookings.record_delivery_status(pg_temp.sm('a'), 'sent'),
  jsonb_build_object('notification_id', (pg_temp.notif('b23', 'whatsapp')).id, 'status', 'delivered', 'changed', false),
  'sent after delivered (out of order): stays delivered');
select is((pg_temp.notif('b23', 'whatsapp')).status, 'delivered', '... in the row too');
select is(bookings.record_delivery_status(pg_temp.sm('b'), 'failed', '63016', null),
  jsonb_build_object('notification_id', (pg_temp.notif('b21', 'whatsapp')).id, 'status', 'failed', 'changed', true), 'failed with 63016');
select is((select row(status, error_code, error)::text from pg_temp.notif('b21', 'whatsapp')),
  row('failed', '63016', 'Twilio error 63016')::text, '... the notification failed with error_code 63016');
select is(bookings.record_delivery_status(pg_temp.sm('b'), 'delivered') ->> 'status', 'failed', 'failed is final');
select throws_ok($$select bookings.record_delivery_status('SMnot-a-sid', 'delivered')$$, '22023',
  'bookings.record_delivery_status: MessageSid must be SM or MM followed by 32 hex digits, got SMnot-a-sid', 'a bad sid is refused, named');
select throws_ok(format('select bookings.record_delivery_status(%L, %L)', pg_temp.sm('a'), 'teleported'), '22023',
  'bookings.record_delivery_status: unknown MessageStatus teleported', 'an unknown status is refused, named');

-- 8. the daily run (bookings.cleanup_tick): passes until nothing is left, one audit record ---------
update bookings.cleanup_settings set chunk_rows = 2, max_rows_per_pass = 3;
delete from bookings.cleanup_run where run_date = (now() at time zone 'UTC')::date;
insert into public.otp_codes (code_hash, expires_at)
select current_setting('pgtap.prefix') || 'tick-' || g, now() - interval '1 hour' from generate_series(1, 5) g;
select is(bookings.cleanup_tick(), '{"more": true, "passes": 1}'::jsonb, 'the first tick of the day takes a pass and says more');
select ok(pg_temp.otps('tick-%') between 2 and 4, '... it deleted at most max_rows_per_pass (3) expired OTPs');
create temp table ticks (n int, r jsonb);
do $$
begin
  for i in 2 .. 10 loop
    insert into ticks select i, bookings.cleanup_tick();
    exit when (select r ? 'success' from ticks where n = i);
  end loop;
end;
$$;
select is((select r ->> 'success' from ticks order by n desc limit 1), 'true', 'later ticks finish the run and return its audit summary');
select is(pg_temp.otps('tick-%'), 0, '... no expired OTP is left');
select is((select (details ->> 'passes')::int = 1 + (select count(*) from ticks) and (details -> 'counts' ->> 'cleanup_expired_otps')::int >= 5
             from public.audit_logs where action = 'cleanup.run' and actor = 'pg_cron' order by id desc limit 1), true,
  '... one cleanup.run record for the run: its passes, counts summed over them');
select is(bookings.cleanup_tick(), null, 'a later tick the same day does nothing');
update bookings.cleanup_settings set chunk_rows = 5000, max_rows_per_pass = 50000;

-- 9. send windows ---------------------------------------------------------------------------------------
-- Messages to clients go out between 08:00 and 21:00 in the client's zone (the engine holds each task
-- until then): a reminder discovered at 03:xx local for an event at 10:xx goes out at 08:00.
insert into public.clients (name, email, phone, whatsapp_opt_in, time_zone) values
  (current_setting('pgtap.prefix') || 'night', current_setting('pgtap.prefix') || 'night@example.test', '+447700900003', true,
   pg_temp.zone_at(3));
select pg_temp.book('w_night', 'night', 'perf1', 'confirmed', interval '7 hours');
select pg_temp.book('w_day', 'optin', 'perf1', 'confirmed', interval '7 hours');
select is((select run_now ->> 'error' from jobs.run_now('booking-reminders')), null, 'booking-reminders runs');
create function pg_temp.window_of(p_name text, p_kind text default 'event_reminder') returns text[] language sql as $$
  select array_agg(row(split_part(t.key, ':', 3), t.state, t.window_zone, t.window_start, t.window_end, t.run_after, t.window_until)::text
                   order by t.key collate "C")
    from jobs.task t
   where t.id in (pg_temp.tid(p_name, 'email', p_kind), pg_temp.tid(p_name, 'whatsapp', p_kind)) $$;
select is(pg_temp.window_of('w_night'),
  array[row('email', 'queued', pg_temp.zone_at(3), '08:00'::time, '21:00'::time, pg_temp.local(pg_temp.zone_at(3), 0, '08:00'),
            pg_temp.local(pg_temp.zone_at(3), 0, '21:00'))::text,
        row('whatsapp', 'queued', pg_temp.zone_at(3), '08:00'::time, '21:00'::time, pg_temp.local(pg_temp.zone_at(3), 0, '08:00'),
            pg_temp.local(pg_temp.zone_at(3), 0, '21:00'))::text],
  'night at the client (03:xx local): both tasks wait, run_after = the next 08:00 local, until 21:00 local');
select is(pg_temp.window_of('w_day'),
  array[row('email', 'running', pg_temp.zone_at(12), '08:00'::time, '21:00'::time, now(), pg_temp.local(pg_temp.zone_at(12), 0, '21:00'))::text,
        row('whatsapp', 'running', pg_temp.zone_at(12), '08:00'::time, '21:00'::time, now(), pg_temp.local(pg_temp.zone_at(12), 0, '21:00'))::text],
  'midday at the client: run_after = now, claimed at once');
select is((select array_agg(row(n.channel, n.status, n.send_attempts, n.attempt_started_at)::text order by n.channel)
             from public.notifications n where n.booking_id = pg_temp.bid('w_night')),
  array[row('email', 'pending', 0, null::timestamptz)::text, row('whatsapp', 'pending', 0, null::timestamptz)::text],
  'the waiting reminders have their notifications rows from discovery on, pending: no send has started');
select is((select count(*)::int from bookings.discover_reminders('{"kind": "event_reminder", "lead_hours": 24}')
            where key like 'event_reminder:' || pg_temp.bid('w_night') || ':%'), 2,
  'while they wait the booking is still due: discovery finds both channels again');
select is((select run_now ->> 'error' from jobs.run_now('booking-reminders')), null, '... and the next run');
select is(
  array[(select count(*)::int from jobs.task where job_name = 'booking-reminders'
           and key in (pg_temp.key('w_night', 'email'), pg_temp.key('w_night', 'whatsapp'))),
        (select count(*)::int from public.notifications where booking_id = pg_temp.bid('w_night'))],
  array[2, 2], '... queues nothing new: still one task and one notification row per channel');
select is(
  (select array_agg(distinct t.job_name || ':' || (t.window_zone = c.time_zone)::text order by t.job_name || ':' || (t.window_zone = c.time_zone)::text)
     from jobs.task t
     join public.notifications n on n.id = (t.payload ->> 'notification_id')::bigint
     join public.clients c on c.id = n.client_id
    where t.job_name in ('booking-reminders', 'payment-reminders', 'booking-notices') and c.name like current_setting('pgtap.prefix') || '%'),
  array['booking-notices:true', 'booking-reminders:true', 'payment-reminders:true'],
  'every task of the three jobs (reminders, balance reminders, the cancellation notice) is windowed in its client''s zone');

-- The window is the job's config.send_window.
update jobs.job set config = config || '{"send_window": {"start": "02:00", "end": "05:00"}}' where name = 'booking-reminders';
select pg_temp.book('w_night2', 'night', 'perf1', 'confirmed', interval '8 hours');
select jobs.run_now('booking-reminders');
select is(pg_temp.window_of('w_night2'),
  array[row('email', 'running', pg_temp.zone_at(3), '02:00'::time, '05:00'::time, now(), pg_temp.local(pg_temp.zone_at(3), 0, '05:00'))::text,
        row('whatsapp', 'running', pg_temp.zone_at(3), '02:00'::time, '05:00'::time, now(), pg_temp.local(pg_temp.zone_at(3), 0, '05:00'))::text],
  'config.send_window 02:00-05:00: the night client''s reminder goes at once (03:xx local), until 05:00 local');
update jobs.job set config = config || '{"send_window": null}' where name = 'booking-reminders';
select pg_temp.book('w_any', 'night', 'perf1', 'confirmed', interval '9 hours');
select jobs.run_now('booking-reminders');
select is(pg_temp.window_of('w_any'),
  array[row('email', 'running', null::text, null::time, null::time, now(), null::timestamptz)::text,
        row('whatsapp', 'running', null::text, null::time, null::time, now(), null::timestamptz)::text],
  '"send_window": null: no window, sent at any hour');
select is(
  (select array_agg(d.payload -> 'send_window' order by d.key collate "C") from bookings.discover_reminders(
     '{"kind": "event_reminder", "send_window": {"end": "20:00"}}') d where d.key like 'event_reminder:' || pg_temp.bid('w_any') || ':%'),
  array[jsonb_build_object('time_zone', pg_temp.zone_at(3), 'start', '08:00', 'end', '20:00'),
        jsonb_build_object('time_zone', pg_temp.zone_at(3), 'start', '08:00', 'end', '20:00')],
  'a field left out of config.send_window keeps its default');
select throws_ok($$select * from bookings.discover_reminders('{"kind": "event_reminder", "send_window": "08-21"}')$$, '22023',
  'config.send_window: must be an object {"start": "HH:MM", "end": "HH:MM"} or null, not "08-21"', 'a send_window that is not an object is refused');
update jobs.job set config = config || '{"send_window": {"start": "8am"}}' where name = 'booking-reminders';
select is((select run_now ->> 'error' from jobs.run_now('booking-reminders')),
  'discover bookings.discover_reminders(jsonb) failed: send_window.start: must be a local time HH:MM from 00:00 to 23:59, not "8am"',
  'a bad time in config.send_window: the run fails naming the field');
update jobs.job set config = config - 'send_window' where name = 'booking-reminders';

-- A notification to a performer is timed in the performer's zone.
update public.performers set time_zone = pg_temp.zone_at(5) where id = pg_temp.pid('perf2');
insert into public.notifications (booking_id, performer_id, kind, channel, to_address)
values (pg_temp.bid('w_day'), pg_temp.pid('perf2'), 'performer_note', 'email', current_setting('pgtap.prefix') || 'perf2@example.test');
select is((select payload -> 'send_window' from bookings.notification_tasks('performer_note', array[pg_temp.bid('w_day')], '{}')),
  jsonb_build_object('time_zone', pg_temp.zone_at(5), 'start', '08:00', 'end', '21:00'),
  'bookings.notification_tasks: a performer''s notification gets the window in the performer''s zone');

select * from finish();
rollback;
