-- Outreach (supabase/migrations/20261203100000_outreach.sql, docs/outreach.md): the five jobs and the
-- two pg_cron entries; who can read the app's tables (RLS) and run the functions; templates
-- (placeholders, the 300-character note, outreach.render) and the follow-up gaps (5/7/5/7 days);
-- invitations (outreach.discover_invitations directly and through jobs.run_now('outreach-invitations'),
-- start_campaign and the scheduled starts, outreach.invitation_context through jobs.task_contexts /
-- jobs.claim_tasks and directly, outreach.apply_invitation_outcomes through jobs.record_outcome(s)
-- and directly); acceptance (outreach.record_new_relation, outreach.record_message_received); the
-- relations check; follow-ups FU1..FU4; the outbox; notifications; the GDPR run.
-- Runs in one transaction that is rolled back. Its rows carry 'pgtap-or-<backend pid>-' (users' e-mail
-- addresses, Unipile account ids, campaign names, prospects' public identifiers, outbox texts,
-- notification subjects).
begin;
set local search_path = public, extensions;
set local timezone = 'UTC';
select plan(268);

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
select set_config('pgtap.prefix', 'pgtap-or-' || pg_backend_pid() || '-', true);
select set_config('pgtap.ursula', gen_random_uuid()::text, true);  -- the main workspace owner
select set_config('pgtap.victor', gen_random_uuid()::text, true);  -- another owner
select set_config('pgtap.wanda', gen_random_uuid()::text, true);   -- a user with no outreach rows
insert into auth.users (id, email)
select current_setting('pgtap.' || u)::uuid, current_setting('pgtap.prefix') || u || '@example.test'
  from unnest(array['ursula', 'victor', 'wanda']) u;

-- Only this test's rows are within the GDPR run's reach while it runs (rolled back with the rest).
update public.prospects set updated_at = now()
 where status in ('replied', 'finished', 'failed') and anonymised_at is null and updated_at < now();
update public.outreach_outbox set updated_at = now() where status in ('sent', 'failed', 'cancelled') and updated_at < now();
update public.outreach_notifications set updated_at = now() where status in ('sent', 'failed') and updated_at < now();
update outreach.prospect_events set created_at = now() where created_at < now();
update public.gdpr_erasure_requests set status = 'completed', completed_at = now() where status = 'pending';
-- ... and of a follow-up discovery limited to one prospect: nobody else's is due before this test's.
update public.prospects set follow_up_due_at = now() where status = 'connected' and follow_up_due_at < now();
-- Every claim below gets its slots and the notification e-mails their tokens, whatever other work
-- these jobs have in flight. (The LinkedIn account buckets are this test's own: pg_temp.refill.)
update jobs.job set max_in_flight = 100 where name like 'outreach-%';

create temp table fx (name text collate "C" primary key, kind text not null, id bigint not null);
create function pg_temp.id(p_name text) returns bigint language sql as $$ select id from fx where name = p_name $$;
create function pg_temp.uid(p_user text) returns uuid language sql as $$ select current_setting('pgtap.' || p_user)::uuid $$;
create function pg_temp.tag(p_text text) returns text language sql as $$ select current_setting('pgtap.prefix') || p_text $$;
create function pg_temp.prov(p_name text) returns text language sql as $$ select 'ACo' || md5(pg_temp.tag(p_name)) $$;
-- The fixture names of ids of one kind, sorted.
create function pg_temp.names(p_kind text, p_ids bigint[]) returns text[] language sql as $$
  select coalesce(array_agg(f.name order by f.name collate "C"), '{}') from fx f where f.kind = p_kind and f.id = any (p_ids) $$;

-- A zone where the local hour is p_hour now (Etc/GMT-9 is UTC+9), and p_time on the local day p_days
-- after today's there. LinkedIn messages go out between 08:00 and 21:00 in the prospect's zone, else
-- the account's: the accounts live where it is midday, unless a test says otherwise.
create function pg_temp.zone_at(p_hour int) returns text language sql as $$
  select 'Etc/GMT' || case when o > 0 then '-' || o when o < 0 then '+' || -o else '' end
    from (select (p_hour - extract(hour from now() at time zone 'UTC')::int + 36) % 24 - 12 as o) x $$;
create function pg_temp.local(p_zone text, p_days int, p_time time) returns timestamptz language sql as $$
  select ((now() at time zone p_zone)::date + p_days + p_time) at time zone p_zone $$;
create function pg_temp.account(p_name text, p_user text, p_status text default 'active', p_zone text default pg_temp.zone_at(12))
returns bigint language sql as $$
  with a as (insert into public.linkedin_accounts (user_id, unipile_account_id, display_name, status, time_zone)
             values (pg_temp.uid(p_user), pg_temp.tag(p_name), 'LinkedIn ' || p_name, p_status, p_zone) returning id)
  insert into fx select p_name, 'account', id from a returning id $$;
create function pg_temp.campaign(p_name text, p_account text, p_status text, p_start interval default null) returns bigint
language sql as $$
  with c as (insert into public.outreach_campaigns (user_id, linkedin_account_id, name, status, scheduled_start_at)
             select a.user_id, a.id, pg_temp.tag(p_name), p_status, now() + p_start from public.linkedin_accounts a
              where a.id = pg_temp.id(p_account)
             returning id)
  insert into fx select p_name, 'campaign', id from c returning id $$;
-- A prospect named p_name: first name initcap(p_name), last name Tester, company Acme, title CTO;
-- public identifier <prefix><name>, provider id pg_temp.prov(name).
create function pg_temp.prospect(p_name text, p_campaign text, p_status text default 'pending',
                                 p_ids text default 'both', p_due interval default null, p_index int default 0,
                                 p_company text default 'Acme') returns bigint
language sql as $$
  with p as (
    insert into public.prospects (campaign_id, user_id, first_name, last_name, company, title, public_identifier, provider_id,
                                  status, follow_up_due_at, follow_up_sequence_index, connected_at)
    select c.id, c.user_id, initcap(p_name), 'Tester', p_company, 'CTO',
           case when p_ids in ('both', 'public') then pg_temp.tag(p_name) end,
           case when p_ids in ('both', 'provider') then pg_temp.prov(p_name) end,
           p_status, now() + p_due, p_index, case when p_status = 'connected' then now() - interval '2 days' end
      from public.outreach_campaigns c where c.id = pg_temp.id(p_campaign)
    returning id)
  insert into fx select p_name, 'prospect', id from p returning id $$;
create function pg_temp.outbox(p_name text, p_account text, p_prospect text, p_recipient text, p_status text default 'queued')
returns bigint language sql as $$
  with o as (insert into public.outreach_outbox (user_id, linkedin_account_id, prospect_id, recipient_provider_id, text, status)
             select a.user_id, a.id, pg_temp.id(p_prospect), p_recipient, pg_temp.tag(p_name), p_status
               from public.linkedin_accounts a where a.id = pg_temp.id(p_account)
             returning id)
  insert into fx select p_name, 'outbox', id from o returning id $$;
create function pg_temp.notification(p_name text, p_user text, p_channel text, p_status text default 'queued') returns bigint
language sql as $$
  with n as (insert into public.outreach_notifications (user_id, channel, subject, body, email_to, status)
             values (pg_temp.uid(p_user), p_channel, pg_temp.tag(p_name), 'Body of ' || p_name,
                     case when p_channel = 'email' then pg_temp.tag(p_user) || '@example.test' end, p_status)
             returning id)
  insert into fx select p_name, 'notification', id from n returning id $$;

select pg_temp.account('a1', 'ursula');
update public.linkedin_accounts set daily_invite_limit = 40, weekly_invite_limit = 150, daily_message_limit = 60
 where id = pg_temp.id('a1');
select pg_temp.account('a2', 'ursula', 'needs_reconnect');
select pg_temp.account('a3', 'ursula', 'paused');
select pg_temp.account('a4', 'ursula');   -- Unipile will say disconnected_account
select pg_temp.account('a5', 'ursula');   -- no prospects at all
select pg_temp.account('b1', 'victor');

select pg_temp.campaign('c_run', 'a1', 'running');
select pg_temp.campaign('c_long', 'a1', 'running');
select pg_temp.campaign('c_paused', 'a1', 'paused');
select pg_temp.campaign('c_fu2', 'a1', 'running');
select pg_temp.campaign('c_empty', 'a1', 'running');
select pg_temp.campaign('c_fin', 'a1', 'finished');
select pg_temp.campaign('st_draft', 'a1', 'draft');
select pg_temp.campaign('st_paused', 'a1', 'paused');
select pg_temp.campaign('st_sched', 'a1', 'scheduled', interval '1 hour');
select pg_temp.campaign('sched_due', 'a1', 'scheduled', interval '-1 minute');
select pg_temp.campaign('sched_later', 'a1', 'scheduled', interval '1 hour');
select pg_temp.campaign('c_recon', 'a2', 'running');
select pg_temp.campaign('c_pacc', 'a3', 'running');
select pg_temp.campaign('c_gd', 'a3', 'running');
select pg_temp.campaign('c_disc', 'a4', 'running');
select pg_temp.campaign('c_vic', 'b1', 'running');

insert into public.outreach_templates (campaign_id, step, body) values
  (pg_temp.id('c_run'), 0, 'Hi {first_name}, I saw your work at {company}.'),
  (pg_temp.id('c_run'), 1, 'FU1 for {full_name}'),
  (pg_temp.id('c_run'), 2, 'FU2 {first_name}'),
  (pg_temp.id('c_run'), 3, 'FU3 {title} at {company}'),
  (pg_temp.id('c_run'), 4, 'FU4 {last_name}'),
  (pg_temp.id('c_long'), 0, '{company} ' || repeat('x', 280)),
  (pg_temp.id('c_fu2'), 1, 'Short FU1 {first_name}'),
  (pg_temp.id('c_fu2'), 2, 'Short FU2 {first_name}'),
  (pg_temp.id('c_vic'), 0, 'Hello {first_name}');

-- Invitations. The first five pending prospects of account a1 are the ones its unipile bucket (5)
-- lets the first claim take, the next five the second.
select pg_temp.prospect('jane', 'c_run', p_ids => 'public');
select pg_temp.prospect('john', 'c_run');
select pg_temp.prospect('kate', 'c_run');
select pg_temp.prospect('liam', 'c_run');
select pg_temp.prospect('longnote', 'c_long', p_company => repeat('C', 200));
select pg_temp.prospect('nora', 'c_run');
select pg_temp.prospect('omar', 'c_run');
select pg_temp.prospect('pia', 'c_run');
select pg_temp.prospect('pat', 'c_run');   -- invited an hour ago, no outcome recorded
update public.prospects set invite_attempt_started_at = now() - interval '1 hour', invite_attempts = 1 where id = pg_temp.id('pat');
select pg_temp.prospect('quinn', 'c_run', p_ids => 'public');
select pg_temp.prospect('dz1', 'c_disc');
select pg_temp.prospect('dz2', 'c_disc');
select pg_temp.prospect('vic', 'c_vic');
select pg_temp.prospect('p_paused', 'c_paused');
select pg_temp.prospect('p_recon', 'c_recon');
select pg_temp.prospect('p_pacc', 'c_pacc');
select pg_temp.prospect('p_fin', 'c_fin');
select pg_temp.prospect('st_p1', 'st_draft');
select pg_temp.prospect('st_p2', 'st_paused');
select pg_temp.prospect('st_p3', 'st_sched');
select pg_temp.prospect('sd_p', 'sched_due');
select pg_temp.prospect('sl_p', 'sched_later');
-- Acceptance and the relations check.
select pg_temp.prospect('sam', 'c_run', 'connection_request_sent');
select pg_temp.prospect('tia', 'c_run', 'connection_request_sent', p_ids => 'public');
select pg_temp.prospect('uma', 'c_run', 'connection_request_sent');
select pg_temp.prospect('vera', 'c_run', 'connection_request_sent');
select pg_temp.prospect('vic_crs', 'c_vic', 'connection_request_sent');
select pg_temp.prospect('rec_crs', 'c_recon', 'connection_request_sent');
-- Follow-ups.
select pg_temp.prospect('wes', 'c_run', 'connected', p_due => interval '-1 minute');
select pg_temp.prospect('xena', 'c_run', 'connected', p_due => interval '1 hour');
select pg_temp.prospect('yuri', 'c_paused', 'connected', p_due => interval '-1 minute');
select pg_temp.prospect('zed', 'c_pacc', 'connected', p_due => interval '-1 minute');
select pg_temp.prospect('ron', 'c_run', 'connected', p_due => interval '-1 minute');
select pg_temp.prospect('moe', 'c_run', 'connected', p_ids => 'public', p_due => interval '-1 minute');
select pg_temp.prospect('mo2', 'c_run', 'connected', p_index => 1);
select pg_temp.prospect('fin2', 'c_fu2', 'connected', p_due => interval '-1 minute', p_index => 2);
select pg_temp.prospect('closed1', 'c_empty', 'finished');
select pg_temp.prospect('rex', 'c_run', 'connected');
select pg_temp.prospect('dan', 'c_run', 'connected');
select pg_temp.prospect('nat', 'c_run', 'connected');
-- The outbox.
select pg_temp.prospect('oli', 'c_run', 'connected');
update public.prospects set chat_id = 'chat-oli' where id = pg_temp.id('oli');
select pg_temp.prospect('ola', 'c_run', 'connected');
-- GDPR: ursula's prospect matching the subject, and victor's with the same public identifier.
select pg_temp.prospect('gp', 'c_gd', 'connection_request_sent');
update public.prospects set public_identifier = pg_temp.tag('gdpr-subject'), provider_id = pg_temp.prov('gdpr-subject')
 where id = pg_temp.id('gp');
update public.prospects set status = 'connected' where id = pg_temp.id('gp');  -- a status event to erase
select pg_temp.prospect('vgp', 'c_vic', 'replied');
update public.prospects set public_identifier = pg_temp.tag('gdpr-subject'), provider_id = pg_temp.prov('gdpr-subject')
 where id = pg_temp.id('vgp');

insert into public.outreach_messages (prospect_id, user_id, sequence_index, text, status)
select pg_temp.id(m.p), pg_temp.uid(m.u), m.i, m.t, m.s
  from (values ('mo2', 'ursula', 1, 'mo2 FU1, an older attempt', 'pending'),
               ('gp', 'ursula', 1, 'gp FU1 text', 'sent'),
               ('vgp', 'victor', 1, 'vgp FU1 text', 'sent')) m (p, u, i, t, s);
create function pg_temp.msg(p_prospect text, p_index int) returns public.outreach_messages language sql as $$
  select * from public.outreach_messages where prospect_id = pg_temp.id(p_prospect) and sequence_index = p_index $$;

select pg_temp.outbox('o_pchat', 'a1', 'oli', null);
select pg_temp.outbox('o_pnochat', 'a1', 'ola', null);
select pg_temp.outbox('o_rec', 'a1', null, pg_temp.prov('stranger'));
select pg_temp.outbox('o_paused', 'a3', null, pg_temp.prov('stranger'));
select pg_temp.outbox('o_sent', 'a1', null, pg_temp.prov('stranger'), 'sent');
select pg_temp.outbox('o_gp', 'a3', 'gp', null, 'sent');
select pg_temp.outbox('o_gprec', 'a3', null, pg_temp.prov('gdpr-subject'), 'sent');
select pg_temp.outbox('o_vgprec', 'b1', null, pg_temp.prov('gdpr-subject'), 'sent');

select pg_temp.notification('n_u_email', 'ursula', 'email');
select pg_temp.notification('n_u_app', 'ursula', 'in_app');
select pg_temp.notification('n_v_app', 'victor', 'in_app');
select pg_temp.notification('n_gp', 'ursula', 'in_app', 'sent');
update public.outreach_notifications set prospect_id = pg_temp.id('gp') where id = pg_temp.id('n_gp');

insert into public.gdpr_erasure_requests (user_id, subject_public_identifier)
values (pg_temp.uid('ursula'), pg_temp.tag('nobody-u')), (pg_temp.uid('victor'), pg_temp.tag('nobody-v'));

create function pg_temp.p(p_name text) returns public.prospects language sql as $$
  select * from public.prospects where id = pg_temp.id(p_name) $$;
create function pg_temp.acc(p_name text) returns public.linkedin_accounts language sql as $$
  select * from public.linkedin_accounts where id = pg_temp.id(p_name) $$;
create function pg_temp.camp(p_name text) returns public.outreach_campaigns language sql as $$
  select * from public.outreach_campaigns where id = pg_temp.id(p_name) $$;
create function pg_temp.ob(p_name text) returns public.outreach_outbox language sql as $$
  select * from public.outreach_outbox where id = pg_temp.id(p_name) $$;
create function pg_temp.events(p_name text) returns text[] language sql as $$
  select coalesce(array_agg(coalesce(from_status, '-') || '>' || to_status || ':' || via order by id), '{}')
    from outreach.prospect_events where prospect_id = pg_temp.id(p_name) $$;
-- The rate keys of one of this test's accounts, and a full bucket for each of them (now() stands
-- still inside the transaction, so a bucket never refills by itself here).
create function pg_temp.rk(p_kind text, p_account text) returns text language sql as $$
  select p_kind || ':' || pg_temp.id(p_account) $$;
create function pg_temp.refill() returns void language sql as $$
  update jobs.rate_limit set tokens = capacity
   where key in (select k || ':' || f.id from fx f, unnest(array['unipile', 'li-invites-day', 'li-invites-week', 'li-messages-day']) k
                  where f.kind = 'account') $$;

-- The engine: a task of a job by key, its lease token, its context (jobs.task_contexts: records the
-- intent, discards a moot one) and one outcome (jobs.record_outcome: apply, then the state).
create function pg_temp.tid(p_job text, p_key text) returns bigint language sql as $$
  select max(id) from jobs.task where job_name = p_job and key = p_key $$;
create function pg_temp.tok(p_job text, p_key text) returns uuid language sql as $$
  select lease_token from jobs.task where id = pg_temp.tid(p_job, p_key) $$;
create function pg_temp.ctx(p_job text, p_key text) returns jsonb language sql as $$
  select jsonb_build_object('context', c.context, 'moot', c.moot)
    from jobs.task_contexts(array[pg_temp.tid(p_job, p_key)], array[pg_temp.tok(p_job, p_key)]) c $$;
create function pg_temp.outcome(p_job text, p_key text, p_outcome jsonb) returns text language sql as $$
  select jobs.record_outcome(pg_temp.tid(p_job, p_key), pg_temp.tok(p_job, p_key), p_outcome) $$;
create function pg_temp.task(p_job text, p_key text) returns jobs.task language sql as $$
  select * from jobs.task where id = pg_temp.tid(p_job, p_key) $$;
create function pg_temp.ik(p_name text) returns text language sql as $$ select 'invite:' || pg_temp.id(p_name) $$;
create function pg_temp.fk(p_name text, p_index int) returns text language sql as $$
  select 'follow-up:' || pg_temp.id(p_name) || ':' || p_index $$;

-- 1. the jobs, schedules, buckets and settings ----------------------------------------------------------
select is(
  (select array_agg(row(name, target_function, schedule, task_rate_limits, discover_function, context_function, apply_function)::text
                    order by name)
     from jobs.job where name like 'outreach-%'),
  array[row('outreach-follow-ups', 'linkedin-send', '10 * * * *', true, 'outreach.discover_follow_ups(jsonb)',
            'outreach.message_context(jsonb)', 'outreach.apply_message_outcomes(jsonb)')::text,
        row('outreach-invitations', 'linkedin-send', '0 * * * *', true, 'outreach.discover_invitations(jsonb)',
            'outreach.invitation_context(jsonb)', 'outreach.apply_invitation_outcomes(jsonb)')::text,
        row('outreach-notifications', 'send-notification', '*/5 * * * *', true, 'outreach.discover_notifications(jsonb)',
            'outreach.notification_context(jsonb)', 'outreach.apply_notification_outcomes(jsonb)')::text,
        row('outreach-outbox', 'linkedin-send', '20 * * * *', true, 'outreach.discover_outbox(jsonb)',
            'outreach.message_context(jsonb)', 'outreach.apply_message_outcomes(jsonb)')::text,
        row('outreach-relations', 'check-relations', '0 9,21 * * *', true, 'outreach.discover_relation_checks(jsonb)',
            'outreach.relations_context(jsonb)', 'outreach.apply_relation_outcomes(jsonb)')::text],
  'five jobs: their Edge Functions, schedules, per-task rate limits and the outreach functions');
select is(
  (select array_agg(name || ' ' || schedule || ' ' || timezone || ' ' || (next_run_at > now())::text order by name)
     from jobs.job where name like 'outreach-%'),
  array['outreach-follow-ups 10 * * * * UTC true', 'outreach-invitations 0 * * * * UTC true',
        'outreach-notifications */5 * * * * UTC true', 'outreach-outbox 20 * * * * UTC true',
        'outreach-relations 0 9,21 * * * UTC true'],
  'the engine''s scheduler ticks each job on its schedule (UTC)');
select is(
  (select array_agg(row(jobname, schedule, command)::text order by jobname) from cron.job
    where jobname in ('outreach:scheduled-campaigns', 'outreach:gdpr')),
  array[row('outreach:gdpr', '30 3 * * *', 'select outreach.gdpr_cleanup()')::text,
        row('outreach:scheduled-campaigns', '*/5 * * * *', 'select outreach.start_due_campaigns()')::text],
  'pg_cron runs the pure-SQL entries: scheduled campaigns every 5 minutes, GDPR at 03:30');
select is(
  (select array_agg(row(name, config, batch_size, max_attempts)::text order by name) from jobs.job where name like 'outreach-%'),
  array[row('outreach-follow-ups', '{"max_per_tick": 10000}'::jsonb, 10, 6)::text,
        row('outreach-invitations', '{"max_per_tick": 10000}'::jsonb, 10, 6)::text,
        row('outreach-notifications', '{"max_per_tick": 10000}'::jsonb, 10, 6)::text,
        row('outreach-outbox', '{"max_per_tick": 10000}'::jsonb, 10, 6)::text,
        row('outreach-relations', '{}'::jsonb, 5, 4)::text],
  'their config, batch sizes and attempts');
select is((select capacity || '/' || refill_per_second::numeric(10, 2) from jobs.rate_limit where key = 'resend'), '1/5.00',
  'the notification e-mails share the resend bucket (refill 5/s)');
select is(
  (select row(first_follow_up_delay, follow_up_gap_days, closed_prospect_retention_days, outbox_retention_days,
              notification_retention_days, gdpr_max_rows_per_step)::text from outreach.settings),
  row(interval '24 hours', '{5,7,5,7}'::int[], 365, 90, 90, 5000)::text,
  'settings: first follow-up a day after acceptance, gaps 5/7/5/7 days, retention 365/90/90 days, 5000 rows a step');

-- 2. privileges and RLS ------------------------------------------------------------------------------
create temp table app_tables (t text primary key);
insert into app_tables values ('public.linkedin_accounts'), ('public.outreach_campaigns'), ('public.outreach_templates'),
  ('public.prospects'), ('public.outreach_messages'), ('public.outreach_outbox'), ('public.outreach_notifications'),
  ('public.gdpr_erasure_requests');
select is((select count(*)::int from app_tables a join pg_class c on c.oid = a.t::regclass where c.relrowsecurity), 8,
  'RLS is on for the eight app tables');
select is(
  (select array_agg(t order by t) from app_tables
    where has_table_privilege('anon', t, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
       or has_any_column_privilege('anon', t, 'SELECT, INSERT, UPDATE, REFERENCES')),
  null, 'anon has no privilege on any of them, not even on a column');
select is(
  (select array_agg(t order by t) from app_tables
    where not has_table_privilege('authenticated', t, 'SELECT')
       or has_table_privilege('authenticated', t, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),
  null, 'authenticated selects from all of them and has no table-wide write');
select is(
  (select array_agg(t || '.' || c.attname || ':' || p order by (t || '.' || c.attname || ':' || p) collate "C") from app_tables a
     join pg_attribute c on c.attrelid = a.t::regclass and c.attnum > 0 and not c.attisdropped
     cross join unnest(array['INSERT', 'UPDATE']) p
    where has_column_privilege('authenticated', a.t, c.attname, p)),
  array['public.gdpr_erasure_requests.subject_provider_id:INSERT', 'public.gdpr_erasure_requests.subject_public_identifier:INSERT',
        'public.gdpr_erasure_requests.user_id:INSERT', 'public.outreach_notifications.read_at:UPDATE',
        'public.outreach_outbox.linkedin_account_id:INSERT', 'public.outreach_outbox.prospect_id:INSERT',
        'public.outreach_outbox.recipient_provider_id:INSERT', 'public.outreach_outbox.text:INSERT',
        'public.outreach_outbox.user_id:INSERT'],
  'authenticated writes only: the outbox''s recipient and text, an erasure request''s subject, a notification''s read_at');
select ok(not has_schema_privilege('anon', 'outreach', 'USAGE') and not has_schema_privilege('authenticated', 'outreach', 'USAGE'),
  'client roles have no usage on schema outreach');
select is(
  (select array_agg(c.oid::regclass::text order by 1) from pg_class c
    where c.relnamespace = 'outreach'::regnamespace and c.relkind in ('r', 'v', 'm', 'S', 'p')
      and (has_table_privilege('anon', c.oid, 'SELECT') or has_table_privilege('authenticated', c.oid, 'SELECT')
           or has_table_privilege('public', c.oid, 'SELECT'))),
  null, 'nobody but the owner selects from an outreach table');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where (p.pronamespace = 'outreach'::regnamespace
           or p.oid in ('public.start_campaign(bigint)'::regprocedure, 'public.process_pending_prospects()'::regprocedure,
                        'public.process_follow_ups()'::regprocedure, 'public.process_outbox()'::regprocedure,
                        'public.check_relations()'::regprocedure, 'public.check_pending_notifications()'::regprocedure,
                        'public.execute_scheduled_campaigns()'::regprocedure, 'public.run_gdpr_cleanup()'::regprocedure))
      and (has_function_privilege('anon', p.oid, 'EXECUTE') or has_function_privilege('authenticated', p.oid, 'EXECUTE')
           or has_function_privilege('public', p.oid, 'EXECUTE'))),
  null, 'anon and authenticated execute no outreach.* function and none of the public entry points');
select ok(
  (select bool_and(has_function_privilege('service_role', f, 'EXECUTE'))
     from unnest(array['public.start_campaign(bigint)', 'public.process_pending_prospects()', 'public.process_follow_ups()',
                       'public.process_outbox()', 'public.check_relations()', 'public.check_pending_notifications()',
                       'public.execute_scheduled_campaigns()', 'public.run_gdpr_cleanup()']) f),
  'service_role runs the eight public entry points');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
    where (p.pronamespace = 'outreach'::regnamespace and (p.prosecdef or not coalesce(p.proconfig @> array['search_path=""'], false)))
       or (p.oid in ('public.start_campaign(bigint)'::regprocedure, 'public.run_gdpr_cleanup()'::regprocedure)
           and not coalesce(p.proconfig @> array['search_path=""'], false))),
  null, 'every outreach function pins search_path and none is SECURITY DEFINER (the entry points pin it too)');

set local role anon;
select throws_ok('select 1 from public.linkedin_accounts', '42501', null, 'anon cannot read linkedin_accounts');
select throws_ok('select 1 from public.outreach_campaigns', '42501', null, 'anon cannot read outreach_campaigns');
select throws_ok('select 1 from public.outreach_templates', '42501', null, 'anon cannot read outreach_templates');
select throws_ok('select 1 from public.prospects', '42501', null, 'anon cannot read prospects');
select throws_ok('select 1 from public.outreach_messages', '42501', null, 'anon cannot read outreach_messages');
select throws_ok('select 1 from public.outreach_outbox', '42501', null, 'anon cannot read outreach_outbox');
select throws_ok('select 1 from public.outreach_notifications', '42501', null, 'anon cannot read outreach_notifications');
select throws_ok('select 1 from public.gdpr_erasure_requests', '42501', null, 'anon cannot read gdpr_erasure_requests');
select throws_ok('select public.start_campaign(1)', '42501', null, 'anon cannot start a campaign');
reset role;

-- What each user owns, as the owner sees it.
create function pg_temp.owned(p_user text) returns jsonb language sql as $$
  select jsonb_build_object(
    'linkedin_accounts', (select jsonb_agg(id order by id) from public.linkedin_accounts where user_id = pg_temp.uid(p_user)),
    'outreach_campaigns', (select jsonb_agg(id order by id) from public.outreach_campaigns where user_id = pg_temp.uid(p_user)),
    'outreach_templates', (select jsonb_agg(t.id order by t.id) from public.outreach_templates t
                            join public.outreach_campaigns c on c.id = t.campaign_id where c.user_id = pg_temp.uid(p_user)),
    'prospects', (select jsonb_agg(id order by id) from public.prospects where user_id = pg_temp.uid(p_user)),
    'outreach_messages', (select jsonb_agg(id order by id) from public.outreach_messages where user_id = pg_temp.uid(p_user)),
    'outreach_outbox', (select jsonb_agg(id order by id) from public.outreach_outbox where user_id = pg_temp.uid(p_user)),
    'outreach_notifications', (select jsonb_agg(id order by id) from public.outreach_notifications where user_id = pg_temp.uid(p_user)),
    'gdpr_erasure_requests', (select jsonb_agg(id order by id) from public.gdpr_erasure_requests where user_id = pg_temp.uid(p_user))) $$;
select set_config('pgtap.owned_ursula', pg_temp.owned('ursula')::text, true);
select set_config('pgtap.owned_victor', pg_temp.owned('victor')::text, true);
select ok((select bool_and(jsonb_typeof(v) = 'array') from jsonb_each(current_setting('pgtap.owned_ursula')::jsonb) e (k, v))
          and (select bool_and(jsonb_typeof(v) = 'array') from jsonb_each(current_setting('pgtap.owned_victor')::jsonb) e (k, v)),
  'ursula and victor each own rows in all eight tables');
-- Ids the statements under the client roles need (they cannot read the fixture table).
select set_config('pgtap.ids', (select jsonb_object_agg(name, id) from fx)::text, true);

-- The rows a client sees, table by table (run under the client's role).
select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.ursula'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is((select jsonb_agg(id order by id) from public.linkedin_accounts), current_setting('pgtap.owned_ursula')::jsonb -> 'linkedin_accounts',
  'an owner reads her own LinkedIn accounts, and only those');
select is((select jsonb_agg(id order by id) from public.outreach_campaigns), current_setting('pgtap.owned_ursula')::jsonb -> 'outreach_campaigns',
  '... her own campaigns');
select is((select jsonb_agg(id order by id) from public.outreach_templates), current_setting('pgtap.owned_ursula')::jsonb -> 'outreach_templates',
  '... the templates of her campaigns');
select is((select jsonb_agg(id order by id) from public.prospects), current_setting('pgtap.owned_ursula')::jsonb -> 'prospects',
  '... her own prospects');
select is((select jsonb_agg(id order by id) from public.outreach_messages), current_setting('pgtap.owned_ursula')::jsonb -> 'outreach_messages',
  '... her own follow-ups');
select is((select jsonb_agg(id order by id) from public.outreach_outbox), current_setting('pgtap.owned_ursula')::jsonb -> 'outreach_outbox',
  '... her own outbox');
select is((select jsonb_agg(id order by id) from public.outreach_notifications),
  current_setting('pgtap.owned_ursula')::jsonb -> 'outreach_notifications', '... her own notifications');
select is((select jsonb_agg(id order by id) from public.gdpr_erasure_requests),
  current_setting('pgtap.owned_ursula')::jsonb -> 'gdpr_erasure_requests', '... and her own erasure requests');

select lives_ok(format($$insert into public.outreach_outbox (user_id, linkedin_account_id, prospect_id, text) values (%L, %s, %s, %L)$$,
    current_setting('pgtap.ursula'), current_setting('pgtap.ids')::jsonb ->> 'a1', current_setting('pgtap.ids')::jsonb ->> 'jane',
    current_setting('pgtap.prefix') || 'o_rls'),
  'she queues an outbox message from her account to her prospect');
select throws_ok(format($$insert into public.outreach_outbox (user_id, linkedin_account_id, recipient_provider_id, text) values (%L, %s, 'ACoX', 'hi')$$,
    current_setting('pgtap.ursula'), current_setting('pgtap.ids')::jsonb ->> 'b1'),
  '42501', 'new row violates row-level security policy for table "outreach_outbox"', '... not from another user''s account');
select throws_ok(format($$insert into public.outreach_outbox (user_id, linkedin_account_id, prospect_id, text) values (%L, %s, %s, 'hi')$$,
    current_setting('pgtap.ursula'), current_setting('pgtap.ids')::jsonb ->> 'a1', current_setting('pgtap.ids')::jsonb ->> 'vic'),
  '42501', 'new row violates row-level security policy for table "outreach_outbox"', '... nor to another user''s prospect');
select throws_ok(format($$insert into public.outreach_outbox (user_id, linkedin_account_id, recipient_provider_id, text) values (%L, %s, 'ACoX', 'hi')$$,
    current_setting('pgtap.victor'), current_setting('pgtap.ids')::jsonb ->> 'b1'),
  '42501', 'new row violates row-level security policy for table "outreach_outbox"', '... nor in another user''s name');
select throws_ok(format($$insert into public.outreach_outbox (user_id, linkedin_account_id, recipient_provider_id, text, status) values (%L, %s, 'ACoX', 'hi', 'sent')$$,
    current_setting('pgtap.ursula'), current_setting('pgtap.ids')::jsonb ->> 'a1'),
  '42501', null, '... nor set its status');
select lives_ok(format($$insert into public.gdpr_erasure_requests (user_id, subject_public_identifier) values (%L, %L)$$,
    current_setting('pgtap.ursula'), upper(current_setting('pgtap.prefix') || 'gdpr-subject')),
  'she files an erasure request (the subject''s public identifier, in capitals)');
select throws_ok(format($$insert into public.gdpr_erasure_requests (user_id, subject_public_identifier) values (%L, 'someone')$$,
    current_setting('pgtap.victor')),
  '42501', 'new row violates row-level security policy for table "gdpr_erasure_requests"', '... only for herself');
update public.outreach_notifications set read_at = now()
 where id in ((current_setting('pgtap.ids')::jsonb ->> 'n_u_app')::bigint, (current_setting('pgtap.ids')::jsonb ->> 'n_v_app')::bigint);
select throws_ok(format('update public.outreach_notifications set status = %L where id = %s', 'sent',
    current_setting('pgtap.ids')::jsonb ->> 'n_u_app'), '42501', null, 'she cannot update any other column of her notification');
select throws_ok('delete from public.prospects', '42501', null, 'she cannot delete prospects (the app''s server does)');
select throws_ok('select public.start_campaign(1)', '42501', null, 'she cannot execute start_campaign');
select throws_ok('select outreach.follow_up_gap(1)', '42501', null, 'nor any outreach.* function (no usage on the schema)');
select throws_ok('select 1 from outreach.settings', '42501', null, 'nor read outreach.settings');
reset role;
select is(
  (select array_agg(row(f.name, n.read_at)::text order by f.name) from fx f join public.outreach_notifications n on n.id = f.id
    where f.name in ('n_u_app', 'n_v_app')),
  array[row('n_u_app', now())::text, row('n_v_app', null::timestamptz)::text],
  'she marked her own notification read; the update did not reach another user''s');
select is((select row(o.user_id, o.linkedin_account_id, o.prospect_id, o.status)::text from public.outreach_outbox o
            where o.text = pg_temp.tag('o_rls')),
  row(pg_temp.uid('ursula'), pg_temp.id('a1'), pg_temp.id('jane'), 'queued')::text, '... her outbox row is queued');
insert into fx select 'o_rls', 'outbox', id from public.outreach_outbox where text = pg_temp.tag('o_rls');
insert into fx select 'req_u', 'request', id from public.gdpr_erasure_requests
 where user_id = pg_temp.uid('ursula') and subject_public_identifier = upper(pg_temp.tag('gdpr-subject'));

select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.victor'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is(
  jsonb_build_object(
    'linkedin_accounts', (select jsonb_agg(id order by id) from public.linkedin_accounts),
    'outreach_campaigns', (select jsonb_agg(id order by id) from public.outreach_campaigns),
    'outreach_templates', (select jsonb_agg(id order by id) from public.outreach_templates),
    'prospects', (select jsonb_agg(id order by id) from public.prospects),
    'outreach_messages', (select jsonb_agg(id order by id) from public.outreach_messages),
    'outreach_outbox', (select jsonb_agg(id order by id) from public.outreach_outbox),
    'outreach_notifications', (select jsonb_agg(id order by id) from public.outreach_notifications),
    'gdpr_erasure_requests', (select jsonb_agg(id order by id) from public.gdpr_erasure_requests)),
  current_setting('pgtap.owned_victor')::jsonb, 'another owner reads his own rows in each table, and only those');
reset role;
select set_config('request.jwt.claims', json_build_object('sub', current_setting('pgtap.wanda'), 'role', 'authenticated')::text, true);
set local role authenticated;
select is(
  array[(select count(*) from public.linkedin_accounts), (select count(*) from public.outreach_campaigns),
        (select count(*) from public.outreach_templates), (select count(*) from public.prospects),
        (select count(*) from public.outreach_messages), (select count(*) from public.outreach_outbox),
        (select count(*) from public.outreach_notifications), (select count(*) from public.gdpr_erasure_requests)]::int[],
  array[0, 0, 0, 0, 0, 0, 0, 0], 'a user with no outreach rows sees none');
reset role;
select set_config('request.jwt.claims', '', true);

-- 3. templates, render, the follow-up gaps -----------------------------------------------------------
select throws_ok(
  format($$insert into public.outreach_templates (campaign_id, step, body) values (%s, 1, 'Hi {first_name} at {compnay}')$$, pg_temp.id('st_draft')),
  '22023', 'outreach_templates.body: unknown placeholder {compnay}', 'an unknown placeholder is refused, named');
select throws_ok(
  format($$update public.outreach_templates set body = 'FU1 {Full_Name}' where campaign_id = %s and step = 1$$, pg_temp.id('c_run')),
  '22023', 'outreach_templates.body: unknown placeholder {Full_Name}', '... also when a template is changed');
select throws_ok(
  format($$insert into public.outreach_templates (campaign_id, step, body) values (%s, 0, %L)$$, pg_temp.id('st_draft'), repeat('n', 301)),
  '23514', 'new row for relation "outreach_templates" violates check constraint "connection_note_length"',
  'a connection note of 301 characters is refused');
select lives_ok(
  format($$insert into public.outreach_templates (campaign_id, step, body) values (%1$s, 0, %2$L), (%1$s, 1, %3$L)$$,
         pg_temp.id('st_draft'), repeat('n', 300), repeat('f', 301)),
  'a note of 300 characters and a longer follow-up are accepted');
select is(outreach.render('{first_name} {last_name} ({full_name}) of {company}, {title}: {first_name}!', 'Jane', 'Doe', 'Acme', 'CTO'),
  'Jane Doe (Jane Doe) of Acme, CTO: Jane!', 'render substitutes every placeholder, each time it occurs');
select is(outreach.render('{first_name} {last_name} ({full_name}) of {company}, {title}: {first_name}!', 'Jane', null, null, null),
  'Jane  (Jane) of , : Jane!', '... a missing field becomes an empty string');
select is(outreach.render('{first_name}{last_name}{full_name}{company}{title}', null, null, null, null), '', '... all of them');

select is(array[outreach.follow_up_gap(1), outreach.follow_up_gap(2), outreach.follow_up_gap(3), outreach.follow_up_gap(4)],
  array[interval '5 days', interval '7 days', interval '5 days', interval '7 days'], 'the gaps after FU1..FU4: 5, 7, 5, 7 days');
update outreach.settings set follow_up_gap_days = '{3,5,7,7}';
select is(array[outreach.follow_up_gap(1), outreach.follow_up_gap(2)], array[interval '3 days', interval '5 days'],
  'a changed settings row changes them');
update outreach.settings set follow_up_gap_days = '{5,7,5,7}';

-- 4. invitations -------------------------------------------------------------------------------------
create function pg_temp.discovered_invites() returns text[] language sql as $$
  select pg_temp.names('prospect', array(select split_part(d.key, ':', 2)::bigint from outreach.discover_invitations('{}') d)) $$;
select is(pg_temp.discovered_invites(),
  array['dz1', 'dz2', 'jane', 'john', 'kate', 'liam', 'longnote', 'nora', 'omar', 'pat', 'pia', 'quinn', 'vic'],
  'discover_invitations: pending prospects of running campaigns on active accounts (not of paused, draft, scheduled or finished campaigns, nor on accounts needing reconnection or paused)');
select is((select row(d.key, d.payload)::text from outreach.discover_invitations('{}') d where d.key = pg_temp.ik('jane')),
  row(pg_temp.ik('jane'), jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('jane'),
      'rate_keys', jsonb_build_array(pg_temp.rk('unipile', 'a1'), pg_temp.rk('li-invites-day', 'a1'), pg_temp.rk('li-invites-week', 'a1'))))::text,
  'key invite:<prospect>; payload kind, prospect_id and the account''s rate keys');
select is(
  (select array_agg(row(key, capacity, refill_per_second)::text order by key collate "C") from jobs.rate_limit
    where key in (pg_temp.rk('unipile', 'a1'), pg_temp.rk('li-invites-day', 'a1'), pg_temp.rk('li-invites-week', 'a1'),
                  pg_temp.rk('li-messages-day', 'a1'))),
  array[row(pg_temp.rk('li-invites-day', 'a1'), 40::numeric, 40 / 86400.0)::text,
        row(pg_temp.rk('li-invites-week', 'a1'), 150::numeric, 150 / 604800.0)::text,
        row(pg_temp.rk('li-messages-day', 'a1'), 60::numeric, 60 / 86400.0)::text,
        row(pg_temp.rk('unipile', 'a1'), 5::numeric, 1::numeric)::text],
  'the account''s buckets are sized from its limits: 40 invitations a day, 150 a week, 60 messages a day, Unipile 5/s');
update public.linkedin_accounts set daily_invite_limit = 50 where id = pg_temp.id('a1');
select pg_temp.discovered_invites();
select is((select row(capacity, refill_per_second)::text from jobs.rate_limit where key = pg_temp.rk('li-invites-day', 'a1')),
  row(50::numeric, 50 / 86400.0)::text, 'a changed daily_invite_limit re-sizes the bucket at the next discovery');
update public.linkedin_accounts set daily_invite_limit = 40 where id = pg_temp.id('a1');
select pg_temp.discovered_invites();

create temp table inv_run as select jobs.run_now('outreach-invitations') as r;
select is((select r ->> 'error' from inv_run), null, 'jobs.run_now(''outreach-invitations'') runs');
select is(
  (select array_agg(f.name || ':' || t.state order by f.name) from fx f join jobs.task t on t.job_name = 'outreach-invitations'
     and t.key = 'invite:' || f.id and t.id = pg_temp.tid('outreach-invitations', t.key)
    where f.kind = 'prospect' and f.name in ('jane', 'john', 'kate', 'liam', 'longnote', 'nora', 'omar', 'pat', 'pia', 'quinn', 'dz1', 'dz2', 'vic')),
  array['dz1:running', 'dz2:running', 'jane:running', 'john:running', 'kate:running', 'liam:running', 'longnote:running',
        'nora:queued', 'omar:queued', 'pat:queued', 'pia:queued', 'quinn:queued', 'vic:running'],
  'through the engine: a task per prospect; a1''s Unipile bucket (5) lets five of its ten be claimed, the others wait');
select is((select row(rate_keys, payload)::text from pg_temp.task('outreach-invitations', pg_temp.ik('jane'))),
  row(array[pg_temp.rk('unipile', 'a1'), pg_temp.rk('li-invites-day', 'a1'), pg_temp.rk('li-invites-week', 'a1')],
      jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('jane')))::text,
  '... payload.rate_keys moved to jobs.task.rate_keys');
select is((select tokens from jobs.rate_limit where key = pg_temp.rk('unipile', 'a1')), 0::numeric, '... and the bucket is empty');

-- The context and the intent.
select is(pg_temp.ctx('outreach-invitations', pg_temp.ik('jane')),
  jsonb_build_object('moot', null, 'context', jsonb_build_object(
    'kind', 'invite', 'prospect_id', pg_temp.id('jane'),
    'account', jsonb_build_object('id', pg_temp.id('a1'), 'unipile_account_id', pg_temp.tag('a1')),
    'provider_id', null, 'public_identifier', pg_temp.tag('jane'), 'note', 'Hi Jane, I saw your work at Acme.',
    'reconcile_since', null,
    'pause_keys', jsonb_build_object('account', pg_temp.rk('unipile', 'a1'), 'budget', pg_temp.rk('li-invites-day', 'a1')))),
  'invitation context (jobs.task_contexts): the account, identifiers, the personalised note, pause keys; nothing to reconcile on a first attempt');
select is((select row(status, invite_attempts, invite_attempt_started_at)::text from pg_temp.p('jane')),
  row('pending', 1, now())::text, 'reading it records the intent: invite_attempt_started_at set, invite_attempts 1');
select is((pg_temp.ctx('outreach-invitations', pg_temp.ik('john')) -> 'context' ->> 'provider_id'), pg_temp.prov('john'),
  'a prospect whose provider id is known gets it in the context');
select is(pg_temp.ctx('outreach-invitations', pg_temp.ik('longnote')),
  '{"context": null, "moot": "the connection note is 481 characters after personalisation; LinkedIn allows 300"}'::jsonb,
  'a note over 300 characters after personalisation: moot, the reason names 300');
select is((select row(status, status_reason, invite_attempts, invite_attempt_started_at)::text from pg_temp.p('longnote')),
  row('failed', 'the connection note is 481 characters after personalisation; LinkedIn allows 300', 0, null::timestamptz)::text,
  '... the prospect failed with that reason, no attempt recorded');
select is((select row(state, last_error)::text from pg_temp.task('outreach-invitations', pg_temp.ik('longnote'))),
  row('discarded', 'the connection note is 481 characters after personalisation; LinkedIn allows 300')::text, '... and the task discarded');
select is((select tokens from jobs.rate_limit where key = pg_temp.rk('unipile', 'a1')), 1::numeric,
  '... its claim''s token given back (no call was made)');
select is(pg_temp.ctx('outreach-invitations', pg_temp.ik('kate')) ->> 'moot', null, 'kate''s context is read');
select is(pg_temp.ctx('outreach-invitations', pg_temp.ik('liam')) ->> 'moot', null, 'liam''s context is read');

-- invitation_context called directly: the moot reasons.
select is(
  (select array_agg(row(c.task_id, c.context, c.moot)::text order by c.task_id) from outreach.invitation_context(jsonb_build_array(
     jsonb_build_object('task_id', 1, 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', -1)),
     jsonb_build_object('task_id', 2, 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('sam'))),
     jsonb_build_object('task_id', 3, 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('p_paused'))),
     jsonb_build_object('task_id', 4, 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('p_recon'))),
     jsonb_build_object('task_id', 5, 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('p_pacc'))),
     jsonb_build_object('task_id', 6, 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('st_p1'))))) c),
  array[row(1, null::jsonb, 'the prospect no longer exists')::text,
        row(2, null::jsonb, 'the prospect is connection_request_sent already')::text,
        row(3, null::jsonb, 'the campaign is paused')::text,
        row(4, null::jsonb, 'the LinkedIn account needs reconnection in Unipile')::text,
        row(5, null::jsonb, 'the LinkedIn account is paused')::text,
        row(6, null::jsonb, 'the campaign is draft')::text],
  'invitation_context: moot for a prospect gone or not pending, a campaign not running, an account needing reconnection or paused');
select is((select array_agg(invite_attempts || ':' || coalesce(invite_attempt_started_at::text, '-') order by id) from public.prospects
            where id in (pg_temp.id('sam'), pg_temp.id('p_paused'), pg_temp.id('p_recon'), pg_temp.id('p_pacc'))),
  array['0:-', '0:-', '0:-', '0:-'], '... and records no intent for them');
select is(
  (select c.context -> 'note' from outreach.invitation_context(jsonb_build_array(jsonb_build_object('task_id', 7,
     'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('vic'))))) c),
  '"Hello Vic"'::jsonb, 'each campaign''s own note template');

-- Outcomes through the engine.
select is(pg_temp.outcome('outreach-invitations', pg_temp.ik('jane'), jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('result', 'sent', 'invitation_id', 'inv-jane', 'provider_id', pg_temp.prov('jane')))),
  'succeeded', 'invite 200: ok {result sent, invitation_id, provider_id} succeeds');
select is(
  (select row(status, invitation_id, invite_result, invited_at, invite_attempt_started_at, provider_id, last_error)::text from pg_temp.p('jane')),
  row('connection_request_sent', 'inv-jane', 'sent', now(), null::timestamptz, pg_temp.prov('jane'), null::text)::text,
  '... connection_request_sent, the invitation id and the learned provider id stored, the attempt marker cleared');
select is((pg_temp.task('outreach-invitations', pg_temp.ik('jane'))).result,
  jsonb_build_object('prospect_id', pg_temp.id('jane'), 'status', 'connection_request_sent', 'result', 'sent'),
  '... the task result names the prospect and its status');
select is(pg_temp.events('jane'), array['pending>connection_request_sent:invite'], '... one status event, via invite');

select is(pg_temp.outcome('outreach-invitations', pg_temp.ik('john'), jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('result', 'already_connected', 'provider_id', pg_temp.prov('john')))),
  'succeeded', '422 already_connected: ok');
select is(
  (select row(status, connected_via, connected_at, follow_up_due_at, follow_up_sequence_index, invite_result, invite_attempt_started_at)::text
     from pg_temp.p('john')),
  row('connected', 'invite', now(), now() + interval '24 hours', 0, 'already_connected', null::timestamptz)::text,
  '... connected, the first follow-up due in 24 hours, at index 0');
select is(
  (select array_agg(row(channel, kind, subject, status)::text) from public.outreach_notifications where prospect_id = pg_temp.id('john')),
  array[row('in_app', 'invitation_accepted', 'John Tester accepted your invitation', 'queued')::text],
  '... and an in-app invitation_accepted notification');

select is(pg_temp.outcome('outreach-invitations', pg_temp.ik('kate'), jsonb_build_object('outcome', 'dead',
            'error', 'HTTP 422 recipient_cannot_be_invited', 'data', jsonb_build_object('error_type', 'recipient_cannot_be_invited'))),
  'dead', 'another 422: dead');
select is((select row(status, status_reason, last_error, invite_attempt_started_at)::text from pg_temp.p('kate')),
  row('failed', 'HTTP 422 recipient_cannot_be_invited', 'HTTP 422 recipient_cannot_be_invited', null::timestamptz)::text,
  '... the prospect failed with the reason');

select is(pg_temp.outcome('outreach-invitations', pg_temp.ik('liam'), '{"outcome": "retry", "error": "timeout on POST /users/invite", "after": 0}'),
  'queued', 'a timeout: retry, queued again');
select is((select row(status, invite_attempt_started_at, last_error)::text from pg_temp.p('liam')),
  row('pending', now(), 'timeout on POST /users/invite')::text, '... the attempt marker stays (the outcome is unknown), the error kept');
-- The first attempt started in an earlier transaction (now() stands still inside this one).
update public.prospects set invite_attempt_started_at = now() - interval '5 minutes' where id = pg_temp.id('liam');
select pg_temp.refill();
create temp table inv_claimed as
select * from jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'outreach-invitations' and settled_at is null), 10);
select is((select (context ->> 'reconcile_since')::timestamptz from inv_claimed where task_id = pg_temp.tid('outreach-invitations', pg_temp.ik('liam'))),
  now() - interval '5 minutes', 'claim_tasks claims the retry with its context: reconcile_since = the earlier attempt''s marker');
select is((select row(invite_attempts, invite_attempt_started_at)::text from pg_temp.p('liam')), row(2, now() - interval '5 minutes')::text,
  '... and counts the second attempt, keeping the first unknown attempt''s marker (a third attempt looks back to it)');
select is(pg_temp.names('prospect', array(select (payload ->> 'prospect_id')::bigint from inv_claimed)),
  array['liam', 'nora', 'omar', 'pat', 'pia'], '... with the next four of the account''s waiting invitations');
select is((select context ->> 'reconcile_since' from inv_claimed where task_id = pg_temp.tid('outreach-invitations', pg_temp.ik('pat')))::timestamptz,
  now() - interval '1 hour', 'a pending prospect with an attempt but no outcome gets reconcile_since too');
select is(pg_temp.outcome('outreach-invitations', pg_temp.ik('pat'), jsonb_build_object('outcome', 'retry', 'error', 'HTTP 422 limit_exceeded',
            'after', 21600, 'not_attempted', true, 'pause', pg_temp.rk('li-invites-day', 'a1'))),
  'queued', '422 limit_exceeded: retry, not attempted, pausing the context''s pause_keys.budget');
select is((select row(attempts, run_after)::text from pg_temp.task('outreach-invitations', pg_temp.ik('pat'))), row(0, now() + interval '6 hours')::text,
  '... the attempt is given back, the task waits 6 hours');
select is((select row(tokens, refilled_at)::text from jobs.rate_limit where key = pg_temp.rk('li-invites-day', 'a1')),
  row(0::numeric, now() + interval '6 hours')::text, '... and the account''s daily invitation bucket is empty for 6 hours (a rate key of the task)');

-- Unipile says the account is disconnected, for both of a4's invitations in one group.
select is(
  (select array_agg(r.state order by r.task_id) from jobs.record_outcomes(jsonb_build_array(
     jsonb_build_object('task_id', pg_temp.tid('outreach-invitations', pg_temp.ik('dz1')),
                        'lease_token', pg_temp.tok('outreach-invitations', pg_temp.ik('dz1')), 'outcome', 'discard',
                        'error', 'HTTP 401 disconnected_account', 'data', jsonb_build_object('account_error', 'disconnected_account')),
     jsonb_build_object('task_id', pg_temp.tid('outreach-invitations', pg_temp.ik('dz2')),
                        'lease_token', pg_temp.tok('outreach-invitations', pg_temp.ik('dz2')), 'outcome', 'discard',
                        'error', 'HTTP 401 disconnected_account', 'data', jsonb_build_object('account_error', 'disconnected_account')))) r),
  array['discarded', 'discarded'], '401 disconnected_account for two tasks (jobs.record_outcomes): both discarded');
select is((select row(status, status_reason, disconnected_at)::text from pg_temp.acc('a4')),
  row('needs_reconnect', 'Unipile: disconnected_account', now())::text, '... the account needs reconnection');
select is(
  (select array_agg(row(channel, kind, subject, email_to, status)::text order by channel) from public.outreach_notifications
    where user_id = pg_temp.uid('ursula') and kind = 'account_disconnected'),
  array[row('email', 'account_disconnected', 'Reconnect your LinkedIn account', pg_temp.tag('ursula') || '@example.test', 'queued')::text,
        row('in_app', 'account_disconnected', 'Reconnect your LinkedIn account', null::text, 'queued')::text],
  '... and its owner is told once, in the app and by e-mail, for the two outcomes');
select is((select array_agg(row(status, last_error, invite_attempt_started_at)::text order by id) from public.prospects
            where id in (pg_temp.id('dz1'), pg_temp.id('dz2'))),
  array[row('pending', 'HTTP 401 disconnected_account', null::timestamptz)::text, row('pending', 'HTTP 401 disconnected_account', null::timestamptz)::text],
  '... the prospects stay pending');
select is(
  (select count(*)::int from outreach.apply_invitation_outcomes(jsonb_build_array(jsonb_build_object('task_id', 900, 'outcome', 'discard',
     'error', 'HTTP 401 expired_credentials', 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('dz1')),
     'data', jsonb_build_object('account_error', 'expired_credentials'))))), 0, 'a later account_error for the same account');
select is((select count(*)::int from public.outreach_notifications where user_id = pg_temp.uid('ursula') and kind = 'account_disconnected'), 2,
  '... tells nobody again');
select is(pg_temp.discovered_invites() && array['dz1', 'dz2'], false, '... and its invitations are no longer discovered');

-- apply_invitation_outcomes called directly, one of each remaining answer.
update public.prospects set invite_attempt_started_at = now() - interval '2 minutes' where id = pg_temp.id('quinn');
select is(
  (select array_agg(row(a.task_id, a.outcome, a.error, a.result)::text order by a.task_id) from outreach.apply_invitation_outcomes(jsonb_build_array(
     jsonb_build_object('task_id', 901, 'outcome', 'ok', 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('nora')),
                        'data', jsonb_build_object('result', 'reconciled', 'invitation_id', 'inv-nora', 'provider_id', pg_temp.prov('nora'))),
     jsonb_build_object('task_id', 902, 'outcome', 'ok', 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('omar')),
                        'data', jsonb_build_object('result', 'already_invited_recently', 'provider_id', pg_temp.prov('omar'))),
     jsonb_build_object('task_id', 903, 'outcome', 'ok', 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('pia')),
                        'data', jsonb_build_object('result', 'cannot_resend_yet', 'provider_id', pg_temp.prov('pia'))),
     jsonb_build_object('task_id', 904, 'outcome', 'retry', 'error', 'HTTP 429', 'payload', jsonb_build_object('kind', 'invite', 'prospect_id', pg_temp.id('quinn')),
                        'data', jsonb_build_object('not_sent', true, 'provider_id', pg_temp.prov('quinn'))))) a),
  array[row(901, null::text, null::text, jsonb_build_object('prospect_id', pg_temp.id('nora'), 'status', 'connection_request_sent', 'result', 'reconciled'))::text,
        row(902, null::text, null::text, jsonb_build_object('prospect_id', pg_temp.id('omar'), 'status', 'connection_request_sent', 'result', 'already_invited_recently'))::text,
        row(903, null::text, null::text, jsonb_build_object('prospect_id', pg_temp.id('pia'), 'status', 'connection_request_sent', 'result', 'cannot_resend_yet'))::text],
  'apply_invitation_outcomes: reconciled, already_invited_recently and cannot_resend_yet are connection_request_sent');
select is(
  (select array_agg(row(f.name, p.status, p.invitation_id, p.invite_result, p.invited_at, p.invite_attempt_started_at)::text order by f.name)
     from fx f join public.prospects p on p.id = f.id where f.name in ('nora', 'omar', 'pia')),
  array[row('nora', 'connection_request_sent', 'inv-nora', 'reconciled', now(), null::timestamptz)::text,
        row('omar', 'connection_request_sent', null::text, 'already_invited_recently', null::timestamptz, null::timestamptz)::text,
        row('pia', 'connection_request_sent', null::text, 'cannot_resend_yet', null::timestamptz, null::timestamptz)::text],
  '... a reconciled invitation keeps its id and invited_at; the 422s record their result; every marker cleared');
select is((select row(status, provider_id, invite_attempt_started_at, last_error)::text from pg_temp.p('quinn')),
  row('pending', pg_temp.prov('quinn'), null::timestamptz, 'HTTP 429')::text,
  'a retry with data.not_sent clears the attempt marker (nothing to reconcile) and stores the provider id looked up');

-- 5. campaign starts ---------------------------------------------------------------------------------
create temp table starts as
select c.name, public.start_campaign(pg_temp.id(c.name)) as r from (values ('st_draft'), ('st_paused'), ('st_sched')) c (name);
select is((select array_agg(row(name, r - 'invitations')::text order by name) from starts),
  array[row('st_draft', jsonb_build_object('campaign_id', pg_temp.id('st_draft'), 'status', 'running', 'was', 'draft'))::text,
        row('st_paused', jsonb_build_object('campaign_id', pg_temp.id('st_paused'), 'status', 'running', 'was', 'paused'))::text,
        row('st_sched', jsonb_build_object('campaign_id', pg_temp.id('st_sched'), 'status', 'running', 'was', 'scheduled'))::text],
  'start_campaign: a draft, a paused and a scheduled campaign start');
select is((select bool_and(r -> 'invitations' ->> 'job' = 'outreach-invitations' and r -> 'invitations' ->> 'error' is null) from starts), true,
  '... each runs the invitations job at once (jobs.run_now)');
select is((select array_agg(row(status, started_at)::text) from public.outreach_campaigns
            where id in (pg_temp.id('st_draft'), pg_temp.id('st_paused'), pg_temp.id('st_sched'))),
  array[row('running', now())::text, row('running', now())::text, row('running', now())::text], '... they are running since now');
select is((select array_agg(t.state in ('queued', 'running') order by t.key) from jobs.task t
            where t.job_name = 'outreach-invitations' and t.key in (pg_temp.ik('st_p1'), pg_temp.ik('st_p2'), pg_temp.ik('st_p3'))),
  array[true, true, true], '... and their pending prospects'' invitations are queued');
select throws_ok(format('select public.start_campaign(%s)', pg_temp.id('c_fin')), '22023',
  format('start_campaign: campaign %s is finished', pg_temp.id('c_fin')), 'a finished campaign does not start');
select throws_ok('select public.start_campaign(-1)', 'P0002', 'start_campaign: campaign -1 does not exist', 'nor an unknown one');

create temp table due_starts as select outreach.start_due_campaigns() as r;
select is((select (r -> 'campaign_ids') @> to_jsonb(array[pg_temp.id('sched_due')]) and not (r -> 'campaign_ids') @> to_jsonb(array[pg_temp.id('sched_later')])
                  and (r ->> 'success')::boolean and (r ->> 'started')::int = jsonb_array_length(r -> 'campaign_ids')
                  and r -> 'invitations' ->> 'job' = 'outreach-invitations' from due_starts), true,
  'start_due_campaigns starts the scheduled campaigns whose start passed, and runs the invitations');
select is((select array_agg(f.name || ':' || c.status order by f.name) from fx f join public.outreach_campaigns c on c.id = f.id
            where f.name in ('sched_due', 'sched_later')),
  array['sched_due:running', 'sched_later:scheduled'], '... a campaign scheduled for later stays scheduled');
select is((select state in ('queued', 'running') from pg_temp.task('outreach-invitations', pg_temp.ik('sd_p'))), true,
  '... the started one''s prospects are invited');
select is((public.execute_scheduled_campaigns() -> 'campaign_ids') @> to_jsonb(array[pg_temp.id('sched_due')]), false,
  'execute_scheduled_campaigns (the entry point) does not start it twice');

-- 6. acceptance: the webhook -----------------------------------------------------------------------
select is(outreach.record_new_relation(jsonb_build_object('account_id', pg_temp.tag('a1'), 'user_provider_id', pg_temp.prov('sam'),
            'user_public_identifier', 'someone-else', 'user_full_name', 'Sam Tester')),
  jsonb_build_object('matched', 1, 'connected', 1, 'prospect_ids', jsonb_build_array(pg_temp.id('sam'))),
  'record_new_relation matches the prospect by provider id and connects it');
select is((select row(status, connected_via, connected_at, follow_up_due_at, follow_up_sequence_index)::text from pg_temp.p('sam')),
  row('connected', 'webhook', now(), now() + interval '24 hours', 0)::text, '... via webhook, the first follow-up due in a day');
select is(outreach.record_new_relation(jsonb_build_object('account_id', pg_temp.tag('a1'), 'user_provider_id', pg_temp.prov('sam'))),
  '{"matched": 1, "connected": 0, "prospect_ids": []}'::jsonb, 'a second call (Unipile''s retry) changes nothing');
select is(outreach.record_new_relation(jsonb_build_object('account_id', pg_temp.tag('a1'), 'user_public_identifier', upper(pg_temp.tag('tia')),
            'user_provider_id', pg_temp.prov('tia'))),
  jsonb_build_object('matched', 1, 'connected', 1, 'prospect_ids', jsonb_build_array(pg_temp.id('tia'))),
  'a prospect known by its public identifier only is matched case-insensitively');
select is((select row(status, provider_id)::text from pg_temp.p('tia')), row('connected', pg_temp.prov('tia'))::text,
  '... and its provider id is learned');
select is(outreach.record_new_relation(jsonb_build_object('account_id', pg_temp.tag('b1'), 'user_provider_id', pg_temp.prov('uma'))),
  '{"matched": 0, "connected": 0, "prospect_ids": []}'::jsonb, 'a member who is a prospect of another account only: no match');
select is(outreach.record_new_relation(jsonb_build_object('account_id', pg_temp.tag('a1'), 'user_public_identifier', 'not-a-prospect')),
  '{"matched": 0, "connected": 0, "prospect_ids": []}'::jsonb, 'a relation who is no prospect: no match');
select throws_ok($$select outreach.record_new_relation('{"user_provider_id": "ACo1"}')$$, '22023',
  'outreach.record_new_relation: account_id is required', 'no account_id: refused, named');
select throws_ok(format('select outreach.record_new_relation(%L)', jsonb_build_object('account_id', pg_temp.tag('a1'), 'user_full_name', 'X')),
  '22023', 'outreach.record_new_relation: user_provider_id or user_public_identifier is required', 'no identifier: refused, named');
select is(pg_temp.events('sam') || pg_temp.events('tia'),
  array['connection_request_sent>connected:webhook', 'connection_request_sent>connected:webhook'],
  'prospect_events: exactly one connection_request_sent → connected event each, via webhook');
select is(
  (select array_agg(row(channel, kind, subject, body, status)::text) from public.outreach_notifications where prospect_id = pg_temp.id('sam')),
  array[row('in_app', 'invitation_accepted', 'Sam Tester accepted your invitation',
            'Sam Tester is now a connection; the first follow-up goes out in a day.', 'queued')::text],
  '... and one in-app invitation_accepted notification');

select is(outreach.record_message_received(jsonb_build_object('account_id', pg_temp.tag('a1'), 'chat_id', 'chat-sam',
            'message_id', 'm1', 'sender_provider_id', pg_temp.prov('sam'))),
  jsonb_build_object('matched', 1, 'replied', 1, 'prospect_ids', jsonb_build_array(pg_temp.id('sam'))),
  'record_message_received from a prospect: replied');
select is((select row(status, replied_at, follow_up_due_at, chat_id)::text from pg_temp.p('sam')),
  row('replied', now(), null::timestamptz, 'chat-sam')::text, '... its follow-ups stop (nothing due), the chat is kept');
select is(pg_temp.events('sam'), array['connection_request_sent>connected:webhook', 'connected>replied:webhook'], '... logged via webhook');
select is((select array_agg(subject) from public.outreach_notifications where prospect_id = pg_temp.id('sam') and kind = 'prospect_replied'),
  array['Sam Tester replied'], '... and the owner is told in the app');
select is(outreach.record_message_received(jsonb_build_object('account_id', pg_temp.tag('a1'), 'chat_id', 'chat-x',
            'sender_provider_id', pg_temp.prov('vic'))),
  '{"matched": 0, "replied": 0, "prospect_ids": []}'::jsonb, 'a sender who is a prospect of another account only: nothing');
select is((pg_temp.p('vic')).status, 'pending', '... that prospect is unchanged');
select is(outreach.record_message_received(jsonb_build_object('account_id', pg_temp.tag('a1'), 'chat_id', 'chat-sam',
            'sender_provider_id', 'ACoTheAccountItself')),
  '{"matched": 0, "replied": 0, "prospect_ids": []}'::jsonb, 'our own message (the account''s sender id): nothing');
select throws_ok($$select outreach.record_message_received('{"sender_provider_id": "ACo1"}')$$, '22023',
  'outreach.record_message_received: account_id is required', 'no account_id: refused, named');

-- 7. the relations check -------------------------------------------------------------------------------
select is(
  (select array_agg(row(f.name, d.payload)::text order by f.name) from outreach.discover_relation_checks('{}') d
     join fx f on f.kind = 'account' and d.key = 'relations:' || f.id),
  array[row('a1', jsonb_build_object('account_id', pg_temp.id('a1'), 'rate_keys', jsonb_build_array(pg_temp.rk('unipile', 'a1'))))::text,
        row('b1', jsonb_build_object('account_id', pg_temp.id('b1'), 'rate_keys', jsonb_build_array(pg_temp.rk('unipile', 'b1'))))::text],
  'discover_relation_checks: one task per active account with invited prospects (not one needing reconnection, paused or with none)');
select pg_temp.refill();
create temp table rel_run as select jobs.run_now('outreach-relations') as r;
select is((select r ->> 'error' from rel_run), null, 'jobs.run_now(''outreach-relations'') runs');
create temp table rel_ctx as select pg_temp.ctx('outreach-relations', 'relations:' || pg_temp.id('a1')) as c;
select is((select (c -> 'context') - 'pending' from rel_ctx),
  jsonb_build_object('account', jsonb_build_object('id', pg_temp.id('a1'), 'unipile_account_id', pg_temp.tag('a1')),
                     'pause_keys', jsonb_build_object('account', pg_temp.rk('unipile', 'a1'))),
  'relations context (jobs.task_contexts): the account and its pause key');
select is((select pg_temp.names('prospect', array(select (e ->> 'prospect_id')::bigint from jsonb_array_elements(c #> '{context,pending}') e)) from rel_ctx),
  array['jane', 'liam', 'nora', 'omar', 'pat', 'pia', 'uma', 'vera'],
  '... and its invited prospects: connection_request_sent, or pending with an attempt whose outcome is unknown');
select is((select e from rel_ctx, jsonb_array_elements(c #> '{context,pending}') e where (e ->> 'prospect_id')::bigint = pg_temp.id('uma')),
  jsonb_build_object('prospect_id', pg_temp.id('uma'), 'provider_id', pg_temp.prov('uma'), 'public_identifier', pg_temp.tag('uma')),
  '... each with its identifiers');
select is(pg_temp.outcome('outreach-relations', 'relations:' || pg_temp.id('a1'), jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('accepted', jsonb_build_array(pg_temp.id('uma'), pg_temp.id('pat'), pg_temp.id('vic_crs'), pg_temp.id('sam'), -5),
                                       'checked', 1234))),
  'succeeded', 'ok {accepted, checked} succeeds');
select is((pg_temp.task('outreach-relations', 'relations:' || pg_temp.id('a1'))).result,
  '{"success": true, "checked": 1234, "accepted": 2, "still_pending": 6, "errors": []}'::jsonb,
  '... result {success, checked, accepted, still_pending, errors}');
select is(
  (select array_agg(row(f.name, p.status, p.connected_via, p.follow_up_due_at)::text order by f.name) from fx f join public.prospects p on p.id = f.id
    where f.name in ('uma', 'pat', 'vic_crs', 'sam')),
  array[row('pat', 'connected', 'polling', now() + interval '24 hours')::text, row('sam', 'replied', 'webhook', null::timestamptz)::text,
        row('uma', 'connected', 'polling', now() + interval '24 hours')::text,
        row('vic_crs', 'connection_request_sent', null::text, null::timestamptz)::text],
  '... this account''s invited prospects are connected via polling; another account''s and an already replied one are not touched');
select is(pg_temp.events('uma') || pg_temp.events('pat'),
  array['connection_request_sent>connected:polling', 'pending>connected:polling'], '... one event each, via polling');
select is(outreach.record_new_relation(jsonb_build_object('account_id', pg_temp.tag('a1'), 'user_provider_id', pg_temp.prov('uma'))) ->> 'connected',
  '0', 'the webhook arriving after the polling: nothing to do');
select is(pg_temp.events('uma'), array['connection_request_sent>connected:polling'], '... still one event');
select is((select count(*)::int from public.outreach_notifications where prospect_id = pg_temp.id('uma') and kind = 'invitation_accepted'), 1,
  '... and one notification');

select is(
  (select array_agg(row(c.task_id, c.context, c.moot)::text order by c.task_id) from outreach.relations_context(jsonb_build_array(
     jsonb_build_object('task_id', 1, 'payload', jsonb_build_object('account_id', pg_temp.id('a5'))),
     jsonb_build_object('task_id', 2, 'payload', jsonb_build_object('account_id', pg_temp.id('a2'))),
     jsonb_build_object('task_id', 3, 'payload', jsonb_build_object('account_id', pg_temp.id('a3'))),
     jsonb_build_object('task_id', 4, 'payload', jsonb_build_object('account_id', -1)))) c),
  array[row(1, null::jsonb, 'no invited prospects left')::text,
        row(2, null::jsonb, 'the LinkedIn account needs reconnection in Unipile')::text,
        row(3, null::jsonb, 'the LinkedIn account is paused')::text,
        row(4, null::jsonb, 'the LinkedIn account no longer exists')::text],
  'relations_context: moot when no prospect is invited, or the account is not active');
select is(
  (select array_agg(row(a.task_id, a.outcome, a.error, a.result)::text) from outreach.apply_relation_outcomes(jsonb_build_array(
     jsonb_build_object('task_id', 905, 'outcome', 'ok', 'payload', jsonb_build_object('account_id', pg_temp.id('b1')),
                        'data', jsonb_build_object('accepted', jsonb_build_array(pg_temp.id('vic_crs')), 'checked', 10)))) a),
  array[row(905, null::text, null::text, '{"success": true, "checked": 10, "accepted": 1, "still_pending": 1, "errors": []}'::jsonb)::text],
  'apply_relation_outcomes directly: victor''s account''s prospect connected; one left (vic, whose invitation has no outcome yet)');
select is(pg_temp.events('vic_crs'), array['connection_request_sent>connected:polling'], '... via polling');

-- 8. follow-ups ------------------------------------------------------------------------------------------
-- max_per_tick counts sendable prospects: ones due longer on a paused campaign or account do not use it up.
update public.prospects set follow_up_due_at = now() - interval '2 days' where id in (pg_temp.id('yuri'), pg_temp.id('zed'));
update public.prospects set follow_up_due_at = now() - interval '1 day' where id = pg_temp.id('wes');
select is(pg_temp.names('prospect', array(select split_part(d.key, ':', 2)::bigint from outreach.discover_follow_ups('{"max_per_tick": 1}') d)),
  array['wes'], 'discover_follow_ups with max_per_tick 1: the longest due sendable prospect, past those it must skip');
create temp table fu_disc as select * from outreach.discover_follow_ups('{}');
select is(pg_temp.names('prospect', array(select split_part(d.key, ':', 2)::bigint from fu_disc d)),
  array['moe', 'ron', 'wes'],
  'discover_follow_ups: connected prospects due now on running campaigns of active accounts (not paused campaigns, inactive accounts, not yet due)');
select is((select row(d.key, d.payload)::text from fu_disc d where d.key = pg_temp.fk('wes', 1)),
  row(pg_temp.fk('wes', 1), jsonb_build_object('kind', 'follow_up', 'message_id', (pg_temp.msg('wes', 1)).id,
      'rate_keys', jsonb_build_array(pg_temp.rk('unipile', 'a1'), pg_temp.rk('li-messages-day', 'a1')),
      'send_window', jsonb_build_object('time_zone', pg_temp.zone_at(12), 'start', '08:00', 'end', '21:00')))::text,
  'key follow-up:<prospect>:<index>; payload kind, message_id, the account''s message rate keys, the send window (the account''s zone)');
select is((select row(user_id, sequence_index, text, status, attempts)::text from pg_temp.msg('wes', 1)),
  row(pg_temp.uid('ursula'), 1, 'FU1 for Wes Tester', 'pending', 0)::text, '... its outreach_messages row, written first, holds the rendered text');
select is(
  (select array_agg(f.name order by f.name) from fx f where f.name in ('xena', 'yuri', 'zed') and exists
     (select 1 from public.outreach_messages m where m.prospect_id = f.id)), null, '... no row for the skipped ones');
select is((select row(status, follow_up_due_at, status_reason)::text from pg_temp.p('fin2')),
  row('finished', null::timestamptz, 'no more follow-ups in the sequence')::text,
  'a prospect whose campaign has no template for its next slot has finished');
select is((select array_agg(f.name || ':' || c.status || ':' || coalesce((c.finished_at = now())::text, '-') order by f.name)
             from fx f join public.outreach_campaigns c on c.id = f.id where f.name in ('c_empty', 'c_fu2', 'c_run', 'c_paused')),
  array['c_empty:finished:true', 'c_fu2:finished:true', 'c_paused:paused:-', 'c_run:running:-'],
  'running campaigns with no open prospect left are finished; the others are not');
select is((select row(d.key, d.payload)::text from outreach.discover_follow_ups('{}') d where d.key = pg_temp.fk('wes', 1)),
  (select row(d.key, d.payload)::text from fu_disc d where d.key = pg_temp.fk('wes', 1)), 'a second discovery: the same key and row');
select is((select count(*)::int from public.outreach_messages where prospect_id = pg_temp.id('wes')), 1, '... never a second row');
select is((select row(capacity, refill_per_second)::text from jobs.rate_limit where key = pg_temp.rk('li-messages-day', 'a1')),
  row(60::numeric, 60 / 86400.0)::text, 'the message bucket: daily_message_limit per 24 hours');

select pg_temp.refill();
create temp table fu_run as select jobs.run_now('outreach-follow-ups') as r;
select is((select r ->> 'error' from fu_run), null, 'jobs.run_now(''outreach-follow-ups'') runs');
select is(pg_temp.ctx('outreach-follow-ups', pg_temp.fk('wes', 1)),
  jsonb_build_object('moot', null, 'context', jsonb_build_object(
    'kind', 'follow_up', 'ref_id', (pg_temp.msg('wes', 1)).id,
    'account', jsonb_build_object('id', pg_temp.id('a1'), 'unipile_account_id', pg_temp.tag('a1')),
    'recipient_provider_id', pg_temp.prov('wes'), 'chat_id', null, 'text', 'FU1 for Wes Tester', 'reconcile_since', null,
    'pause_keys', jsonb_build_object('account', pg_temp.rk('unipile', 'a1'), 'budget', pg_temp.rk('li-messages-day', 'a1')))),
  'follow-up context (jobs.task_contexts): recipient, no chat yet, the text, pause keys; nothing to reconcile');
select is((select row(status, attempts, attempt_started_at)::text from pg_temp.msg('wes', 1)), row('sending', 1, now())::text,
  '... the intent: sending, attempts 1, attempt_started_at');
select is(pg_temp.ctx('outreach-follow-ups', pg_temp.fk('moe', 1)),
  '{"context": null, "moot": "the recipient has no LinkedIn provider id yet (not invited through Unipile)"}'::jsonb,
  'no recipient provider id: moot');
select is((select row(status, error, attempts)::text from pg_temp.msg('moe', 1)),
  row('failed', 'the recipient has no LinkedIn provider id yet (not invited through Unipile)', 0)::text, '... the row failed');
select is((select row(status, status_reason, follow_up_due_at)::text from pg_temp.p('moe')),
  row('failed', 'the recipient has no LinkedIn provider id yet (not invited through Unipile)', null::timestamptz)::text,
  '... and so has the prospect: its sequence cannot go on (it is not due again, and its campaign can finish)');
select is(pg_temp.events('moe'), array['connected>failed:follow-ups'], '... logged via follow-ups');
select is(outreach.record_message_received(jsonb_build_object('account_id', pg_temp.tag('a1'), 'chat_id', 'chat-ron',
            'sender_provider_id', pg_temp.prov('ron'))) ->> 'replied', '1', 'ron replies before his follow-up goes');
select is(pg_temp.ctx('outreach-follow-ups', pg_temp.fk('ron', 1)), '{"context": null, "moot": "the prospect has replied"}'::jsonb,
  '... his follow-up is moot');
select is((select row(state, last_error)::text from pg_temp.task('outreach-follow-ups', pg_temp.fk('ron', 1))),
  row('discarded', 'the prospect has replied')::text, '... its task discarded');

select is(pg_temp.outcome('outreach-follow-ups', pg_temp.fk('wes', 1), '{"outcome": "retry", "error": "HTTP 503 from Unipile", "after": 0}'),
  'queued', 'a 503: retry');
select is((select row(status, error)::text from pg_temp.msg('wes', 1)), row('sending', 'HTTP 503 from Unipile')::text,
  '... the row stays sending (the next attempt looks at the chat first)');
update public.outreach_messages set attempt_started_at = now() - interval '5 minutes' where id = (pg_temp.msg('wes', 1)).id;
select pg_temp.refill();
create temp table fu_claimed as
select * from jobs.claim_tasks((select max(id) from jobs.batch where job_name = 'outreach-follow-ups' and settled_at is null), 10);
select is((select (context ->> 'reconcile_since')::timestamptz from fu_claimed where task_id = pg_temp.tid('outreach-follow-ups', pg_temp.fk('wes', 1))),
  now() - interval '5 minutes', 'claim_tasks: the re-attempt has reconcile_since = the earlier attempt_started_at');
select is((select row(status, attempts, attempt_started_at)::text from pg_temp.msg('wes', 1)), row('sending', 2, now() - interval '5 minutes')::text,
  '... and is counted, keeping the first unknown attempt''s start (a third attempt looks back to it)');
select is(pg_temp.outcome('outreach-follow-ups', pg_temp.fk('wes', 1), jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('result', 'reconciled', 'chat_id', 'chat-wes', 'provider_message_id', 'msg-wes-1'))),
  'succeeded', 'found in the chat: ok');
select is((select row(status, sent_at, chat_id, provider_message_id, error)::text from pg_temp.msg('wes', 1)),
  row('sent', now(), 'chat-wes', 'msg-wes-1', null::text)::text, '... the row is sent');
select is((select row(status, follow_up_sequence_index, last_follow_up_at, follow_up_due_at, chat_id)::text from pg_temp.p('wes')),
  row('connected', 1, now(), now() + interval '5 days', 'chat-wes')::text,
  '... the prospect is at FU1, FU2 due 5 days later, the chat stored on the prospect');
select is((pg_temp.task('outreach-follow-ups', pg_temp.fk('wes', 1))).result,
  jsonb_build_object('message_id', (pg_temp.msg('wes', 1)).id, 'result', 'reconciled', 'chat_id', 'chat-wes'), '... the task result');

-- The next slots, directly: discover, context, apply.
create function pg_temp.fu_msg(p_name text) returns bigint language plpgsql as $$
declare
  v_msg bigint;
begin
  update public.prospects set follow_up_due_at = now() - interval '1 minute' where id = pg_temp.id(p_name) and status = 'connected';
  select (d.payload ->> 'message_id')::bigint into v_msg from outreach.discover_follow_ups('{}') d
   where d.key like 'follow-up:' || pg_temp.id(p_name) || ':%';
  return v_msg;
end;
$$;
create function pg_temp.fu_ctx(p_msg bigint) returns jsonb language sql as $$
  select jsonb_build_object('context', c.context, 'moot', c.moot) from outreach.message_context(jsonb_build_array(
    jsonb_build_object('task_id', 1, 'payload', jsonb_build_object('kind', 'follow_up', 'message_id', p_msg)))) c $$;
create function pg_temp.fu_apply(p_msg bigint, p_outcome jsonb) returns jsonb language sql as $$
  select jsonb_agg(to_jsonb(a)) from outreach.apply_message_outcomes(jsonb_build_array(jsonb_build_object('task_id', 1,
    'payload', jsonb_build_object('kind', 'follow_up', 'message_id', p_msg)) || p_outcome)) a $$;
create function pg_temp.fu_sent(p_name text) returns text language plpgsql as $$
declare
  v_msg bigint := pg_temp.fu_msg(p_name);
  v_ctx jsonb := pg_temp.fu_ctx(v_msg);
begin
  perform pg_temp.fu_apply(v_msg, jsonb_build_object('outcome', 'ok', 'data', jsonb_build_object('result', 'sent',
    'chat_id', v_ctx #>> '{context,chat_id}', 'provider_message_id', 'msg-' || v_msg)));
  return (select row(m.sequence_index, m.text, m.status, p.follow_up_sequence_index, p.follow_up_due_at - now(), p.status, p.status_reason)::text
            from public.prospects p join public.outreach_messages m on m.id = v_msg where p.id = pg_temp.id(p_name));
end;
$$;
select is(pg_temp.fu_ctx(pg_temp.fu_msg('wes')) #>> '{context,chat_id}', 'chat-wes', 'FU2 goes into the prospect''s chat');
select is(pg_temp.fu_sent('wes'), row(2, 'FU2 Wes', 'sent', 2, interval '7 days', 'connected', null::text)::text,
  'FU2 sent: FU3 due 7 days later');
select is(pg_temp.fu_sent('wes'), row(3, 'FU3 CTO at Acme', 'sent', 3, interval '5 days', 'connected', null::text)::text,
  'FU3 sent: FU4 due 5 days later');
select is(pg_temp.fu_sent('wes'), row(4, 'FU4 Tester', 'sent', 4, null::interval, 'finished', 'no more follow-ups in the sequence')::text,
  'FU4 sent: the sequence has finished, nothing due');
select is((select array_agg(sequence_index || ':' || status order by sequence_index) from public.outreach_messages where prospect_id = pg_temp.id('wes')),
  array['1:sent', '2:sent', '3:sent', '4:sent'], '... one row per slot, each sent once');
select is(pg_temp.fu_msg('wes'), null, '... and nothing more is discovered');

select set_config('pgtap.msg_rex', pg_temp.fu_msg('rex')::text, true);
select is(pg_temp.fu_ctx(current_setting('pgtap.msg_rex')::bigint) ->> 'moot', null, 'rex''s FU1 is read');
select is(pg_temp.fu_apply(current_setting('pgtap.msg_rex')::bigint, '{"outcome": "ok", "data": {"result": "sent", "chat_id": "chat-rex", "provider_message_id": "msg-rex", "replied": true}}'),
  jsonb_build_array(jsonb_build_object('task_id', 1, 'outcome', null, 'error', null,
    'result', jsonb_build_object('message_id', current_setting('pgtap.msg_rex')::bigint, 'result', 'sent', 'chat_id', 'chat-rex'))),
  'apply_message_outcomes: ok with replied: true');
select is((select row(status, replied_at, follow_up_due_at, chat_id)::text from pg_temp.p('rex')),
  row('replied', now(), null::timestamptz, 'chat-rex')::text, '... the prospect replied (seen in the chat): the sequence stops');

select set_config('pgtap.msg_dan', pg_temp.fu_msg('dan')::text, true);
select is(pg_temp.fu_ctx(current_setting('pgtap.msg_dan')::bigint) ->> 'moot', null, 'dan''s FU1 is read');
select is(pg_temp.fu_apply(current_setting('pgtap.msg_dan')::bigint,
            '{"outcome": "dead", "error": "HTTP 422 recipient_unreachable", "data": {"error_type": "recipient_unreachable"}}'), null,
  'a dead outcome');
select is((select row(status, error)::text from pg_temp.msg('dan', 1)), row('failed', 'HTTP 422 recipient_unreachable')::text, '... the row failed');
select is((select row(status, status_reason, follow_up_due_at)::text from pg_temp.p('dan')),
  row('failed', 'HTTP 422 recipient_unreachable', null::timestamptz)::text, '... and the prospect failed with the reason');

select set_config('pgtap.msg_nat', pg_temp.fu_msg('nat')::text, true);
select is(pg_temp.fu_ctx(current_setting('pgtap.msg_nat')::bigint) ->> 'moot', null, 'nat''s FU1 is read');
select pg_temp.fu_apply(current_setting('pgtap.msg_nat')::bigint, '{"outcome": "retry", "error": "HTTP 422 limit_exceeded", "data": {"not_sent": true}}');
select is((select row(status, error)::text from pg_temp.msg('nat', 1)), row('pending', 'HTTP 422 limit_exceeded')::text,
  'a retry with data.not_sent: the row is waiting again, nothing to reconcile');
select is(pg_temp.fu_ctx(current_setting('pgtap.msg_nat')::bigint) #>> '{context,reconcile_since}', null, '... the next attempt sends without looking');
select is((select row(status, follow_up_sequence_index)::text from pg_temp.p('nat')), row('connected', 0)::text, '... the prospect still waits for FU1');

select is(
  (select array_agg(row(c.task_id, c.moot)::text order by c.task_id) from outreach.message_context(jsonb_build_array(
     jsonb_build_object('task_id', 1, 'payload', jsonb_build_object('kind', 'follow_up', 'message_id', (pg_temp.msg('mo2', 1)).id)),
     jsonb_build_object('task_id', 2, 'payload', jsonb_build_object('kind', 'follow_up', 'message_id', (pg_temp.msg('wes', 4)).id)),
     jsonb_build_object('task_id', 3, 'payload', jsonb_build_object('kind', 'follow_up', 'message_id', -1)),
     jsonb_build_object('task_id', 4, 'payload', jsonb_build_object('kind', 'outbox', 'outbox_id', -1)))) c),
  array[row(1, 'the prospect is at follow-up 1 already')::text, row(2, 'already sent')::text,
        row(3, 'the follow-up no longer exists')::text, row(4, 'the outbox message no longer exists')::text],
  'message_context: moot for a slot the prospect has moved past, a row sent already, rows gone');
select is((select row(status, attempts)::text from pg_temp.msg('mo2', 1)), row('pending', 0)::text, '... the moved-past slot is not attempted');

-- 9. the outbox -----------------------------------------------------------------------------------------
select is(pg_temp.names('outbox', array(select split_part(d.key, ':', 2)::bigint from outreach.discover_outbox('{}') d)),
  array['o_pchat', 'o_pnochat', 'o_rec', 'o_rls'],
  'discover_outbox: queued rows of active accounts (not a paused account''s, not sent ones)');
select is((select d.payload from outreach.discover_outbox('{}') d where d.key = 'outbox:' || pg_temp.id('o_rec')),
  jsonb_build_object('kind', 'outbox', 'outbox_id', pg_temp.id('o_rec'),
                     'rate_keys', jsonb_build_array(pg_temp.rk('unipile', 'a1'), pg_temp.rk('li-messages-day', 'a1')),
                     'send_window', jsonb_build_object('time_zone', pg_temp.zone_at(12), 'start', '08:00', 'end', '21:00')),
  'key outbox:<id>; payload kind, outbox_id, rate keys, the send window');
select pg_temp.refill();
create temp table ob_run as select jobs.run_now('outreach-outbox') as r;
select is((select r ->> 'error' from ob_run), null, 'jobs.run_now(''outreach-outbox'') runs');
create temp table ob_ctx as
select c.* from jobs.task_contexts(
  array(select pg_temp.tid('outreach-outbox', 'outbox:' || pg_temp.id(n)) from unnest(array['o_pchat', 'o_pnochat', 'o_rec', 'o_rls']) n),
  array(select pg_temp.tok('outreach-outbox', 'outbox:' || pg_temp.id(n)) from unnest(array['o_pchat', 'o_pnochat', 'o_rec', 'o_rls']) n)) c;
select is((select context from ob_ctx where task_id = pg_temp.tid('outreach-outbox', 'outbox:' || pg_temp.id('o_pchat'))),
  jsonb_build_object('kind', 'outbox', 'ref_id', pg_temp.id('o_pchat'),
    'account', jsonb_build_object('id', pg_temp.id('a1'), 'unipile_account_id', pg_temp.tag('a1')),
    'recipient_provider_id', pg_temp.prov('oli'), 'chat_id', 'chat-oli', 'text', pg_temp.tag('o_pchat'), 'reconcile_since', null,
    'pause_keys', jsonb_build_object('account', pg_temp.rk('unipile', 'a1'), 'budget', pg_temp.rk('li-messages-day', 'a1'))),
  'outbox context: a prospect''s chat and provider id, the text');
select is((select row(context ->> 'recipient_provider_id', context ->> 'chat_id')::text from ob_ctx
            where task_id = pg_temp.tid('outreach-outbox', 'outbox:' || pg_temp.id('o_rec'))),
  row(pg_temp.prov('stranger'), null::text)::text, '... or the row''s recipient_provider_id');
select is((select array_agg(row(status, attempts, attempt_started_at)::text) from public.outreach_outbox
            where id in (pg_temp.id('o_pchat'), pg_temp.id('o_pnochat'), pg_temp.id('o_rec'), pg_temp.id('o_rls'))),
  array[row('sending', 1, now())::text, row('sending', 1, now())::text, row('sending', 1, now())::text, row('sending', 1, now())::text],
  '... the intent recorded on each row');
select is(pg_temp.outcome('outreach-outbox', 'outbox:' || pg_temp.id('o_pnochat'), jsonb_build_object('outcome', 'ok',
            'data', jsonb_build_object('result', 'sent', 'chat_id', 'chat-ola', 'provider_message_id', 'msg-ola'))),
  'succeeded', 'ok for a message in a new chat');
select is((select row(status, sent_at, chat_id, provider_message_id)::text from pg_temp.ob('o_pnochat')),
  row('sent', now(), 'chat-ola', 'msg-ola')::text, '... the row is sent');
select is((pg_temp.p('ola')).chat_id, 'chat-ola', '... and its prospect keeps the new chat');
select is(pg_temp.outcome('outreach-outbox', 'outbox:' || pg_temp.id('o_rec'),
            '{"outcome": "dead", "error": "HTTP 404 recipient_not_found", "data": {"error_type": "recipient_not_found"}}'),
  'dead', 'dead');
select is((select row(status, error)::text from pg_temp.ob('o_rec')), row('failed', 'HTTP 404 recipient_not_found')::text, '... the row failed');
select is(pg_temp.outcome('outreach-outbox', 'outbox:' || pg_temp.id('o_rls'), '{"outcome": "retry", "error": "HTTP 500", "after": 0}'),
  'queued', 'retry');
select is((select row(status, error)::text from pg_temp.ob('o_rls')), row('sending', 'HTTP 500')::text, '... the row stays sending');
select is(
  (select count(*)::int from outreach.apply_message_outcomes(jsonb_build_array(jsonb_build_object('task_id', 906, 'outcome', 'retry',
     'error', 'HTTP 429', 'payload', jsonb_build_object('kind', 'outbox', 'outbox_id', pg_temp.id('o_rls')), 'data', '{"not_sent": true}'::jsonb)))),
  0, 'apply_message_outcomes directly: a retry with not_sent');
select is((select row(status, error)::text from pg_temp.ob('o_rls')), row('queued', 'HTTP 429')::text, '... queued again');

-- 10. notifications ------------------------------------------------------------------------------------
create temp table n_disc as select * from outreach.discover_notifications('{}');
select is(
  (select count(*)::int from public.outreach_notifications where user_id in (pg_temp.uid('ursula'), pg_temp.uid('victor'))
      and channel = 'in_app' and (status <> 'sent' or (sent_at <> now() and id <> pg_temp.id('n_gp')))), 0,
  'discover_notifications marks the in-app notifications sent');
select set_config('pgtap.n_disc_email', (select id from public.outreach_notifications
  where user_id = pg_temp.uid('ursula') and kind = 'account_disconnected' and channel = 'email')::text, true);
insert into fx values ('n_disc_email', 'notification', current_setting('pgtap.n_disc_email')::bigint);
select is(pg_temp.names('notification', array(select split_part(d.key, ':', 2)::bigint from n_disc d)), array['n_disc_email', 'n_u_email'],
  '... and returns the queued e-mails as tasks');
select is((select d.payload from n_disc d where d.key = 'notification:' || pg_temp.id('n_u_email')),
  jsonb_build_object('notification_id', pg_temp.id('n_u_email'), 'rate_keys', '["resend"]'::jsonb),
  'key notification:<id>; payload notification_id, rate key resend');
update jobs.rate_limit set capacity = 1000, tokens = 1000 where key = 'resend';
create temp table n_run as select jobs.run_now('outreach-notifications') as r;
select is((select r ->> 'error' from n_run), null, 'jobs.run_now(''outreach-notifications'') runs');
select is(pg_temp.ctx('outreach-notifications', 'notification:' || pg_temp.id('n_disc_email')),
  jsonb_build_object('moot', null, 'context', jsonb_build_object('notification_id', pg_temp.id('n_disc_email'),
    'to', pg_temp.tag('ursula') || '@example.test', 'subject', 'Reconnect your LinkedIn account',
    'text', format('Unipile reports your LinkedIn account %s as disconnected_account. Outreach from it is on hold until you reconnect it.',
                   'LinkedIn a4'),
    'idempotency_key', 'notification:' || pg_temp.id('n_disc_email'))),
  'notification context: address, subject, text, the task key as Idempotency-Key');
select is((select row(status, attempts)::text from public.outreach_notifications where id = pg_temp.id('n_disc_email')),
  row('sending', 1)::text, '... the intent: sending, attempts 1');
select is(pg_temp.outcome('outreach-notifications', 'notification:' || pg_temp.id('n_disc_email'),
            '{"outcome": "ok", "data": {"provider_message_id": "re_123"}}'), 'succeeded', 'ok {provider_message_id}');
select is((select row(status, sent_at, provider_message_id, error)::text from public.outreach_notifications where id = pg_temp.id('n_disc_email')),
  row('sent', now(), 're_123', null::text)::text, '... the notification is sent');
select is((pg_temp.task('outreach-notifications', 'notification:' || pg_temp.id('n_disc_email'))).result,
  jsonb_build_object('notification_id', pg_temp.id('n_disc_email'), 'provider_message_id', 're_123'), '... the task result');
select is(pg_temp.ctx('outreach-notifications', 'notification:' || pg_temp.id('n_u_email')) ->> 'moot', null, 'the other e-mail is read');
select is(pg_temp.outcome('outreach-notifications', 'notification:' || pg_temp.id('n_u_email'),
            '{"outcome": "dead", "error": "HTTP 422 validation_error", "data": {"error_code": "validation_error"}}'), 'dead', 'dead {error_code}');
select is((select row(status, error)::text from public.outreach_notifications where id = pg_temp.id('n_u_email')),
  row('failed', 'HTTP 422 validation_error')::text, '... the notification failed with the error');
select is(
  (select array_agg(row(c.task_id, c.moot)::text order by c.task_id) from outreach.notification_context(jsonb_build_array(
     jsonb_build_object('task_id', 1, 'key', 'k1', 'payload', jsonb_build_object('notification_id', -1)),
     jsonb_build_object('task_id', 2, 'key', 'k2', 'payload', jsonb_build_object('notification_id', pg_temp.id('n_disc_email'))))) c),
  array[row(1, 'the notification no longer exists')::text, row(2, 'already sent')::text],
  'notification_context directly: moot for a notification gone or sent already');

-- 11. GDPR ---------------------------------------------------------------------------------------------
select pg_temp.prospect('r_old', 'c_gd', 'finished');
select pg_temp.prospect('r_open', 'c_gd', 'connected');
select pg_temp.prospect('r_recent', 'c_gd', 'finished');
insert into public.outreach_messages (prospect_id, user_id, sequence_index, text, status, error)
values (pg_temp.id('r_old'), pg_temp.uid('ursula'), 1, 'Hello R_old, about Acme', 'failed', 'HTTP 422 for R_old');
update public.prospects set chat_id = 'chat-r-old', status_reason = 'no more follow-ups in the sequence' where id = pg_temp.id('r_old');
update public.prospects set updated_at = now() - interval '400 days' where id in (pg_temp.id('r_old'), pg_temp.id('r_open'));
update public.prospects set updated_at = now() - interval '10 days' where id = pg_temp.id('r_recent');
insert into outreach.prospect_events (prospect_id, from_status, to_status, via, created_at)
values (pg_temp.id('r_old'), 'connected', 'finished', 'follow-ups', now() - interval '400 days');
select pg_temp.outbox('o_oldsent', 'a3', null, pg_temp.prov('stranger'), 'sent');
select pg_temp.outbox('o_oldqueued', 'a3', null, pg_temp.prov('stranger'));
update public.outreach_outbox set updated_at = now() - interval '100 days' where id in (pg_temp.id('o_oldsent'), pg_temp.id('o_oldqueued'));
select pg_temp.notification('n_oldsent', 'ursula', 'email', 'sent');
select pg_temp.notification('n_oldqueued', 'ursula', 'email');
update public.outreach_notifications set updated_at = now() - interval '100 days' where id in (pg_temp.id('n_oldsent'), pg_temp.id('n_oldqueued'));
select set_config('pgtap.gp_msg', (pg_temp.msg('gp', 1)).id::text, true);

create temp table gdpr1 as select outreach.gdpr_cleanup() as r;
select is((select r from gdpr1),
  '{"success": true, "erasure_requests": 3, "prospects_erased": 1, "prospects_anonymised": 1, "outbox_deleted": 1,
    "notifications_deleted": 1, "events_deleted": 1, "more": false, "errors": []}'::jsonb,
  'gdpr_cleanup: three requests, one prospect erased, one anonymised, one old outbox row, notification and event deleted');
select is(pg_temp.names('prospect', array(select id from public.prospects where id in (pg_temp.id('gp'), pg_temp.id('vgp')))), array['vgp'],
  'the request deleted the requesting user''s prospect matching the subject (identifier in any case); another user''s is kept');
select is(
  array[(select count(*) from public.outreach_messages where id = current_setting('pgtap.gp_msg')::bigint),
        (select count(*) from public.outreach_notifications where id = pg_temp.id('n_gp')),
        (select count(*) from outreach.prospect_events where prospect_id = pg_temp.id('gp')),
        (select count(*) from public.outreach_outbox where id = pg_temp.id('o_gp'))]::int[],
  array[0, 0, 0, 0], '... with its follow-ups, notifications, status events and outbox rows');
select is(pg_temp.names('outbox', array(select id from public.outreach_outbox where recipient_provider_id = pg_temp.prov('gdpr-subject'))),
  array['o_vgprec'], '... and her outbox rows addressed to the subject''s provider id (another user''s are kept)');
select is(
  (select array_agg(row(f.name, r.status, r.completed_at, r.subject_public_identifier, r.subject_provider_id, r.result)::text order by f.name)
     from fx f join public.gdpr_erasure_requests r on r.id = f.id where f.name = 'req_u'),
  array[row('req_u', 'completed', now(), null::text, null::text, '{"prospects_deleted": 1, "outbox_deleted": 1}'::jsonb)::text],
  'the request is completed with its counts, and keeps no identifier of the subject');
select is((select array_agg(status order by requested_at, id) from public.gdpr_erasure_requests
            where user_id in (pg_temp.uid('ursula'), pg_temp.uid('victor'))),
  array['completed', 'completed', 'completed'], '... as is every other pending request');

select is(
  (select row(first_name, last_name, company, title, public_identifier, provider_id, chat_id, status_reason, anonymised_at, status)::text
     from pg_temp.p('r_old')),
  row('', '', null::text, null::text, null::text, null::text, null::text, null::text, now(), 'finished')::text,
  'retention: a prospect closed for longer than 365 days is anonymised (names, company, title, identifiers, chat)');
select is((select row(text, error)::text from pg_temp.msg('r_old', 1)), row('', null::text)::text, '... and its message texts blanked');
select is(
  (select array_agg(row(f.name, p.first_name, p.public_identifier is not null, p.anonymised_at)::text order by f.name)
     from fx f join public.prospects p on p.id = f.id where f.name in ('r_open', 'r_recent')),
  array[row('r_open', 'R_Open', true, null::timestamptz)::text, row('r_recent', 'R_Recent', true, null::timestamptz)::text],
  '... an open prospect and one closed 10 days ago are kept');
select is(pg_temp.names('outbox', array(select id from public.outreach_outbox where id in (pg_temp.id('o_oldsent'), pg_temp.id('o_oldqueued')))),
  array['o_oldqueued'], 'a sent outbox row older than 90 days is deleted, a queued one kept');
select is(pg_temp.names('notification', array(select id from public.outreach_notifications where id in (pg_temp.id('n_oldsent'), pg_temp.id('n_oldqueued')))),
  array['n_oldqueued'], 'a sent notification older than 90 days is deleted, a queued one kept');
select is((select array_agg(details order by id) from outreach.audit_log where action = 'gdpr.cleanup' and created_at = now()),
  array[(select r from gdpr1)], 'one outreach.audit_log row for the run, holding its counts');
select is((select count(*)::int from outreach.audit_log
            where created_at = now() and (details::text ilike '%' || pg_temp.tag('') || '%' or details::text ilike '%gdpr-subject%'
                                          or details::text like '%' || pg_temp.prov('gdpr-subject') || '%')),
  0, '... and nothing of the subject''s identifiers');

update outreach.settings set gdpr_max_rows_per_step = 1;
select pg_temp.prospect('r_c1', 'c_gd', 'failed');
select pg_temp.prospect('r_c2', 'c_gd', 'replied');
update public.prospects set updated_at = now() - interval '366 days' where id in (pg_temp.id('r_c1'), pg_temp.id('r_c2'));
select is((select jsonb_build_object('anonymised', r -> 'prospects_anonymised', 'more', r -> 'more') from (select outreach.gdpr_cleanup() as r) x),
  '{"anonymised": 1, "more": true}'::jsonb, 'gdpr_max_rows_per_step 1: one of two prospects anonymised, more: true');
select is((select jsonb_build_object('anonymised', r -> 'prospects_anonymised', 'more', r -> 'more') from (select public.run_gdpr_cleanup() as r) x),
  '{"anonymised": 1, "more": false}'::jsonb, '... the next run (run_gdpr_cleanup) anonymises the other and is done');
select is((select count(*)::int from public.prospects where id in (pg_temp.id('r_c1'), pg_temp.id('r_c2')) and anonymised_at is not null), 2,
  '... both are anonymised');
select is((select count(*)::int from outreach.audit_log where action = 'gdpr.cleanup' and created_at = now()), 3, '... one audit row per run');
update outreach.settings set gdpr_max_rows_per_step = 5000;

-- 12. send windows ---------------------------------------------------------------------------------------
-- LinkedIn messages (follow-ups, the outbox) go out between 08:00 and 21:00 in the prospect's zone, else
-- its account's; invitations are not windowed.
select is((select row(send_window_start, send_window_end)::text from outreach.settings), row('08:00'::time, '21:00'::time)::text,
  'settings: the send window is 08:00-21:00');
insert into public.linkedin_accounts (user_id, unipile_account_id) values (pg_temp.uid('wanda'), pg_temp.tag('a_default'));
select is((select time_zone from public.linkedin_accounts where unipile_account_id = pg_temp.tag('a_default')), 'UTC',
  'an account''s time_zone is UTC unless set');
select is((select count(*)::int from jobs.task where job_name = 'outreach-invitations' and window_zone is not null
             and key = any (array(select 'invite:' || f.id from fx f where f.kind = 'prospect'))), 0,
  'invitations have no send window');
select throws_ok(
  format($$insert into public.prospects (campaign_id, user_id, public_identifier, time_zone) values (%s, %L, %L, 'Mars/Olympus')$$,
         pg_temp.id('c_run'), pg_temp.uid('ursula'), pg_temp.tag('mars')),
  '22023', 'prospects.time_zone: unknown time zone "Mars/Olympus"', 'a prospect''s unknown time zone is refused with its name');
select throws_ok(
  format($$insert into public.prospects (campaign_id, user_id, public_identifier, time_zone) values (%s, %L, %L, 'Europe/Paris'),
           (%s, %L, %L, null), (%s, %L, %L, 'Moon/Base')$$,
         pg_temp.id('c_run'), pg_temp.uid('ursula'), pg_temp.tag('paris'), pg_temp.id('c_run'), pg_temp.uid('ursula'), pg_temp.tag('nozone'),
         pg_temp.id('c_run'), pg_temp.uid('ursula'), pg_temp.tag('moon')),
  '22023', 'prospects.time_zone: unknown time zone "Moon/Base"', '... also among others inserted with it (checked once per statement)');
select throws_ok(format($$update public.prospects set time_zone = 'Europe/Atlantis' where id = %s$$, pg_temp.id('wes')),
  '22023', 'prospects.time_zone: unknown time zone "Europe/Atlantis"', '... also when it is changed');
select throws_ok(format($$update public.linkedin_accounts set time_zone = 'Mars/Olympus' where id = %s$$, pg_temp.id('a5')),
  '22023', 'linkedin_accounts.time_zone: unknown time zone "Mars/Olympus"', 'an account''s unknown time zone is refused with its name');
select throws_ok(format($$update public.linkedin_accounts set time_zone = null where id = %s$$, pg_temp.id('a5')),
  '23502', null, '... and an account always has one');

-- An account where it is 03:xx and one where it is midday; prospects with and without a zone of their own.
select pg_temp.account('an', 'ursula', p_zone => pg_temp.zone_at(3));
select pg_temp.account('aday', 'ursula');
select pg_temp.campaign('c_an', 'an', 'running');
select pg_temp.campaign('c_aday', 'aday', 'running');
insert into public.outreach_templates (campaign_id, step, body) values
  (pg_temp.id('c_an'), 1, 'Night FU1 {first_name}'), (pg_temp.id('c_aday'), 1, 'Day FU1 {first_name}');
select pg_temp.prospect('w_own_day', 'c_an', 'connected', p_due => interval '-1 minute');    -- its own zone: midday
update public.prospects set time_zone = pg_temp.zone_at(12) where id = pg_temp.id('w_own_day');
select pg_temp.prospect('w_acc_night', 'c_an', 'connected', p_due => interval '-1 minute');  -- none: the account's, night
select pg_temp.prospect('w_own_night', 'c_aday', 'connected', p_due => interval '-1 minute');  -- its own zone: night
update public.prospects set time_zone = pg_temp.zone_at(3) where id = pg_temp.id('w_own_night');
select pg_temp.prospect('w_acc_day', 'c_aday', 'connected', p_due => interval '-1 minute');  -- none: the account's, midday
select pg_temp.outbox('ow_own_day', 'an', 'w_own_day', null);
select pg_temp.outbox('ow_acc_night', 'an', null, pg_temp.prov('stranger'));
select pg_temp.outbox('ow_own_night', 'aday', 'w_own_night', null);
select pg_temp.refill();
select is(array[jobs.run_now('outreach-follow-ups') ->> 'error', jobs.run_now('outreach-outbox') ->> 'error'], array[null, null]::text[],
  'the follow-ups and outbox jobs run');
create function pg_temp.window_of(p_job text, p_key text) returns text language sql as $$
  select row(t.state, t.window_zone, t.run_after, t.window_until)::text from jobs.task t where t.id = pg_temp.tid(p_job, p_key) $$;
select is(
  array[pg_temp.window_of('outreach-follow-ups', pg_temp.fk('w_own_day', 1)), pg_temp.window_of('outreach-follow-ups', pg_temp.fk('w_acc_day', 1))],
  array[row('running', pg_temp.zone_at(12), now(), pg_temp.local(pg_temp.zone_at(12), 0, '21:00'))::text,
        row('running', pg_temp.zone_at(12), now(), pg_temp.local(pg_temp.zone_at(12), 0, '21:00'))::text],
  'follow-ups: midday in the prospect''s own zone (on a night account), or in the account''s for a prospect without one: sent at once');
select is(
  array[pg_temp.window_of('outreach-follow-ups', pg_temp.fk('w_own_night', 1)), pg_temp.window_of('outreach-follow-ups', pg_temp.fk('w_acc_night', 1))],
  array[row('queued', pg_temp.zone_at(3), pg_temp.local(pg_temp.zone_at(3), 0, '08:00'), pg_temp.local(pg_temp.zone_at(3), 0, '21:00'))::text,
        row('queued', pg_temp.zone_at(3), pg_temp.local(pg_temp.zone_at(3), 0, '08:00'), pg_temp.local(pg_temp.zone_at(3), 0, '21:00'))::text],
  '... night in the prospect''s own zone (on a day account), or in the account''s: they wait for 08:00 local');
select is((select array_agg(row(m.status, m.attempts)::text) from public.outreach_messages m
            where m.prospect_id in (pg_temp.id('w_own_night'), pg_temp.id('w_acc_night'))),
  array[row('pending', 0)::text, row('pending', 0)::text], '... their follow-up rows are written, pending (nothing is sending)');
select is((select count(*)::int from outreach.discover_follow_ups('{}') d
            where d.key in (pg_temp.fk('w_own_night', 1), pg_temp.fk('w_acc_night', 1))), 2,
  '... they stay due while they wait: discovery returns the same slots');
select is((select count(*)::int from public.outreach_messages m where m.prospect_id in (pg_temp.id('w_own_night'), pg_temp.id('w_acc_night'))),
  2, '... and writes no second row');
select is(
  array[pg_temp.window_of('outreach-outbox', 'outbox:' || pg_temp.id('ow_own_day')),
        pg_temp.window_of('outreach-outbox', 'outbox:' || pg_temp.id('ow_acc_night')),
        pg_temp.window_of('outreach-outbox', 'outbox:' || pg_temp.id('ow_own_night'))],
  array[row('running', pg_temp.zone_at(12), now(), pg_temp.local(pg_temp.zone_at(12), 0, '21:00'))::text,
        row('queued', pg_temp.zone_at(3), pg_temp.local(pg_temp.zone_at(3), 0, '08:00'), pg_temp.local(pg_temp.zone_at(3), 0, '21:00'))::text,
        row('queued', pg_temp.zone_at(3), pg_temp.local(pg_temp.zone_at(3), 0, '08:00'), pg_temp.local(pg_temp.zone_at(3), 0, '21:00'))::text],
  'the outbox: to a prospect in its zone (midday, on a night account: sent), to a provider id in the account''s (night: waits), '
  'to a prospect at night on a day account (waits)');

-- The window is outreach.settings'.
update outreach.settings set send_window_start = '02:00', send_window_end = '05:00';
select is((select d.payload -> 'send_window' from outreach.discover_outbox('{}') d where d.key = 'outbox:' || pg_temp.id('ow_acc_night')),
  jsonb_build_object('time_zone', pg_temp.zone_at(3), 'start', '02:00', 'end', '05:00'), 'settings 02:00-05:00: the payload''s window');
select pg_temp.outbox('ow_night2', 'an', null, pg_temp.prov('stranger'));
select jobs.run_now('outreach-outbox');
select is(pg_temp.window_of('outreach-outbox', 'outbox:' || pg_temp.id('ow_night2')),
  row('running', pg_temp.zone_at(3), now(), pg_temp.local(pg_temp.zone_at(3), 0, '05:00'))::text,
  '... a message queued now for the night account goes at once (03:xx local), until 05:00 local');
update outreach.settings set send_window_start = null, send_window_end = null;
select is((select d.payload -> 'send_window' from outreach.discover_follow_ups('{}') d where d.key = pg_temp.fk('w_acc_night', 1)),
  'null'::jsonb, 'both null: no window (the payload''s send_window is null, the engine drops it)');
select throws_ok($$update outreach.settings set send_window_start = '08:00'$$, '23514', null, 'a window needs both ends');
select throws_ok($$update outreach.settings set send_window_start = '08:00', send_window_end = '08:00'$$, '23514', null,
  '... two different ones');
select throws_ok($$update outreach.settings set send_window_start = '08:00:30', send_window_end = '21:00'$$, '23514', null,
  '... in whole minutes');
update outreach.settings set send_window_start = '08:00', send_window_end = '21:00';
update public.outreach_campaigns set status = 'paused' where id in (pg_temp.id('c_an'), pg_temp.id('c_aday'));

-- 13. the named entry points; an account disconnected during a follow-up --------------------------------
select is(array[public.process_pending_prospects() ->> 'job', public.process_follow_ups() ->> 'job', public.process_outbox() ->> 'job',
                public.check_relations() ->> 'job', public.check_pending_notifications() ->> 'job'],
  array['outreach-invitations', 'outreach-follow-ups', 'outreach-outbox', 'outreach-relations', 'outreach-notifications'],
  'process_pending_prospects, process_follow_ups, process_outbox, check_relations, check_pending_notifications run their jobs');
select is(pg_temp.fu_apply(current_setting('pgtap.msg_nat')::bigint,
            '{"outcome": "discard", "error": "HTTP 401 invalid_credentials", "data": {"account_error": "invalid_credentials", "not_sent": true}}'), null,
  'a follow-up answered 401 invalid_credentials (nothing sent, no earlier unknown attempt): discard');
select is((select row(status, error)::text from pg_temp.msg('nat', 1)), row('pending', 'HTTP 401 invalid_credentials')::text,
  '... the row waits again (data.not_sent: nothing was sent)');
select is((select row(status, status_reason)::text from pg_temp.acc('a1')), row('needs_reconnect', 'Unipile: invalid_credentials')::text,
  '... the account needs reconnection');
select is(pg_temp.fu_ctx(current_setting('pgtap.msg_nat')::bigint), '{"context": null, "moot": "the LinkedIn account needs reconnection in Unipile"}'::jsonb,
  '... and its next follow-up is moot at claim');

select * from finish();
rollback;
