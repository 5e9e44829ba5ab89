-- Outreach (a LinkedIn outreach product's background work over Unipile, moved off an external
-- scheduler that called /api/cron/* with an x-cron-secret header). See docs/outreach.md.
--
--   tables      public.linkedin_accounts, outreach_campaigns, outreach_templates, prospects,
--               outreach_messages, outreach_outbox, outreach_notifications, gdpr_erasure_requests
--               (the app's, under RLS: a user reads their own rows); outreach.* internals
--   jobs        outreach-invitations (hourly catch-up and at once from start_campaign),
--               outreach-follow-ups (hourly), outreach-outbox (hourly) → Edge Function linkedin-send;
--               outreach-relations (09:00 and 21:00) → check-relations; outreach-notifications
--               (every 5 min) → send-notification
--   pure SQL    outreach:scheduled-campaigns (every 5 min), outreach:gdpr (daily 03:30), by pg_cron
--   webhooks    Unipile's new_relation / message_received reach unipile-webhook, which calls
--               outreach.record_new_relation / outreach.record_message_received
--
-- "Never twice": Unipile has no idempotency key. Each invitation and each follow-up slot has a
-- row from discovery on (the prospect; outreach_messages per (prospect, sequence index); the
-- outbox row), and the context function records the intent (attempt_started_at) before the
-- function may call Unipile, in a transaction that commits before the function sees the task. A
-- later attempt on a row whose earlier attempt recorded no outcome carries reconcile_since: the
-- function looks at the sent invitations or the chat before sending again.
--
-- Nothing here writes a jobs table: the jobs are declared with jobs.define, their buckets sized
-- with jobs.size_rate_limits, and the campaign starts ask for the invitations with jobs.run_now.

create schema if not exists outreach;
revoke all on schema outreach from public;
comment on schema outreach is 'Duework outreach internals (settings, transitions, GDPR audit). Not exposed through the Data API.';
alter default privileges in schema outreach revoke execute on functions from public;

-- ---------------------------------------------------------------------------------------------
-- The app's tables

create table public.linkedin_accounts (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  unipile_account_id text not null unique check (length(unipile_account_id) between 1 and 200),
  display_name text not null default '' check (length(display_name) <= 200),
  status text not null default 'active' check (status in ('active', 'needs_reconnect', 'paused')),
  status_reason text,
  daily_invite_limit int not null default 80 check (daily_invite_limit between 1 and 10000),
  weekly_invite_limit int not null default 200 check (weekly_invite_limit between 1 and 50000),
  daily_message_limit int not null default 100 check (daily_message_limit between 1 and 10000),
  api_calls_per_second numeric not null default 1 check (api_calls_per_second > 0 and api_calls_per_second <= 100),
  disconnected_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index linkedin_accounts_user on public.linkedin_accounts (user_id);
comment on column public.linkedin_accounts.api_calls_per_second is
  'The pace of this account''s Unipile calls (bucket unipile:<id>, burst 5). LinkedIn flags accounts that act like robots: keep it low in production.';
comment on column public.linkedin_accounts.status is
  'active; needs_reconnect (Unipile answered 401 disconnected_account / expired_credentials: its work stops until you set it active again after reconnecting in Unipile); paused (by you).';

create table public.outreach_campaigns (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  linkedin_account_id bigint not null references public.linkedin_accounts (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  status text not null default 'draft' check (status in ('draft', 'scheduled', 'running', 'paused', 'finished')),
  scheduled_start_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint scheduled_needs_start check (status <> 'scheduled' or scheduled_start_at is not null)
);
create index outreach_campaigns_user on public.outreach_campaigns (user_id);
create index outreach_campaigns_account on public.outreach_campaigns (linkedin_account_id);
create index outreach_campaigns_due on public.outreach_campaigns (scheduled_start_at) where status = 'scheduled';

-- step 0 = the connection note (LinkedIn allows 300 characters), 1..4 = follow-ups FU1..FU4.
create table public.outreach_templates (
  id bigint generated always as identity primary key,
  campaign_id bigint not null references public.outreach_campaigns (id) on delete cascade,
  step smallint not null check (step between 0 and 4),
  body text not null check (length(body) between 1 and 8000),
  created_at timestamptz not null default now(),
  unique (campaign_id, step),
  constraint connection_note_length check (step <> 0 or char_length(body) <= 300)
);
comment on column public.outreach_templates.body is
  'Placeholders: {first_name}, {last_name}, {full_name}, {company}, {title}. The connection note (step 0) must stay within 300 characters after them.';

create table public.prospects (
  id bigint generated always as identity primary key,
  campaign_id bigint not null references public.outreach_campaigns (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  first_name text not null default '' check (length(first_name) <= 200),
  last_name text not null default '' check (length(last_name) <= 200),
  company text check (length(company) <= 200),
  title text check (length(title) <= 200),
  public_identifier text check (public_identifier ~ '^[^[:space:]/?#]{1,200}$'),
  provider_id text check (provider_id ~ '^[^[:space:]/?#]{1,200}$'),
  status text not null default 'pending'
    check (status in ('pending', 'connection_request_sent', 'connected', 'replied', 'finished', 'failed')),
  status_reason text,
  last_error text,
  invite_attempts int not null default 0,
  invite_attempt_started_at timestamptz,
  invitation_id text,
  invite_result text,
  invited_at timestamptz,
  connected_at timestamptz,
  connected_via text check (connected_via in ('webhook', 'polling', 'invite')),
  chat_id text,
  follow_up_due_at timestamptz,
  follow_up_sequence_index smallint not null default 0 check (follow_up_sequence_index between 0 and 4),
  last_follow_up_at timestamptz,
  replied_at timestamptz,
  anonymised_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (campaign_id, public_identifier),
  constraint identified check (public_identifier is not null or provider_id is not null or anonymised_at is not null)
);
create index prospects_user on public.prospects (user_id);
create index prospects_pending on public.prospects (campaign_id) where status = 'pending';
create index prospects_invited on public.prospects (campaign_id) where status = 'connection_request_sent';
create index prospects_follow_up_due on public.prospects (follow_up_due_at) where status = 'connected';
create index prospects_provider on public.prospects (provider_id);
create index prospects_public_identifier on public.prospects (lower(public_identifier));
create index prospects_chat on public.prospects (chat_id) where chat_id is not null;
create index prospects_closed on public.prospects (updated_at) where status in ('replied', 'finished', 'failed');

-- One row per follow-up slot: written (with the personalised text) when the slot is due, before
-- anything is sent. Its unique (prospect, index) is what makes a slot sendable once.
create table public.outreach_messages (
  id bigint generated always as identity primary key,
  prospect_id bigint not null references public.prospects (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  sequence_index smallint not null check (sequence_index between 1 and 4),
  text text not null,
  status text not null default 'pending' check (status in ('pending', 'sending', 'sent', 'failed', 'skipped')),
  attempts int not null default 0,
  attempt_started_at timestamptz,
  chat_id text,
  provider_message_id text,
  sent_at timestamptz,
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (prospect_id, sequence_index)
);
create index outreach_messages_user on public.outreach_messages (user_id);
create index outreach_messages_open on public.outreach_messages (prospect_id) where status in ('pending', 'sending');

create table public.outreach_outbox (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  linkedin_account_id bigint not null references public.linkedin_accounts (id) on delete cascade,
  prospect_id bigint references public.prospects (id) on delete cascade,
  recipient_provider_id text check (recipient_provider_id ~ '^[^[:space:]/?#]{1,200}$'),
  text text not null check (length(text) between 1 and 8000),
  status text not null default 'queued' check (status in ('queued', 'sending', 'sent', 'failed', 'cancelled')),
  attempts int not null default 0,
  attempt_started_at timestamptz,
  chat_id text,
  provider_message_id text,
  sent_at timestamptz,
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint has_recipient check (prospect_id is not null or recipient_provider_id is not null)
);
create index outreach_outbox_user on public.outreach_outbox (user_id);
create index outreach_outbox_account on public.outreach_outbox (linkedin_account_id);
create index outreach_outbox_prospect on public.outreach_outbox (prospect_id);
create index outreach_outbox_queued on public.outreach_outbox (created_at) where status in ('queued', 'sending');
create index outreach_outbox_closed on public.outreach_outbox (updated_at) where status in ('sent', 'failed', 'cancelled');

create table public.outreach_notifications (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  prospect_id bigint references public.prospects (id) on delete cascade,
  channel text not null check (channel in ('email', 'in_app')),
  kind text not null default 'info' check (length(kind) between 1 and 100),
  subject text not null check (length(subject) between 1 and 200),
  body text not null check (length(body) between 1 and 10000),
  email_to text check (email_to ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  status text not null default 'queued' check (status in ('queued', 'sending', 'sent', 'failed')),
  attempts int not null default 0,
  provider_message_id text,
  error text,
  read_at timestamptz,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint email_has_address check (channel <> 'email' or email_to is not null)
);
create index outreach_notifications_user on public.outreach_notifications (user_id);
create index outreach_notifications_prospect on public.outreach_notifications (prospect_id);
create index outreach_notifications_queued on public.outreach_notifications (created_at) where status in ('queued', 'sending');
create index outreach_notifications_closed on public.outreach_notifications (updated_at) where status in ('sent', 'failed');

create table public.gdpr_erasure_requests (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  subject_public_identifier text,
  subject_provider_id text,
  status text not null default 'pending' check (status in ('pending', 'completed')),
  requested_at timestamptz not null default now(),
  completed_at timestamptz,
  result jsonb,
  -- A completed request keeps no identifier of the person it erased.
  constraint names_subject check (status = 'completed' or subject_public_identifier is not null
                                  or subject_provider_id is not null)
);
create index gdpr_erasure_requests_user on public.gdpr_erasure_requests (user_id);
create index gdpr_erasure_requests_pending on public.gdpr_erasure_requests (requested_at) where status = 'pending';
comment on table public.gdpr_erasure_requests is
  'A data subject''s erasure request, received by the workspace owner user_id: the daily outreach:gdpr run deletes every prospect of that user matching the subject (and with them their messages, outbox rows and notifications), then records the counts in result.';

-- RLS: a user reads their own rows (and queues outbox messages, files erasure requests and marks
-- notifications read); anon reads nothing. Everything else goes through the app's server code
-- (service_role) and these jobs.
alter table public.linkedin_accounts enable row level security;
alter table public.outreach_campaigns enable row level security;
alter table public.outreach_templates enable row level security;
alter table public.prospects enable row level security;
alter table public.outreach_messages enable row level security;
alter table public.outreach_outbox enable row level security;
alter table public.outreach_notifications enable row level security;
alter table public.gdpr_erasure_requests enable row level security;
revoke all on public.linkedin_accounts, public.outreach_campaigns, public.outreach_templates, public.prospects,
  public.outreach_messages, public.outreach_outbox, public.outreach_notifications, public.gdpr_erasure_requests
  from anon, authenticated;
grant select on public.linkedin_accounts, public.outreach_campaigns, public.outreach_templates, public.prospects,
  public.outreach_messages, public.outreach_outbox, public.outreach_notifications, public.gdpr_erasure_requests
  to authenticated;
grant insert (linkedin_account_id, prospect_id, recipient_provider_id, text, user_id) on public.outreach_outbox to authenticated;
grant insert (subject_public_identifier, subject_provider_id, user_id) on public.gdpr_erasure_requests to authenticated;
grant update (read_at) on public.outreach_notifications to authenticated;

create policy "Owners read their LinkedIn accounts" on public.linkedin_accounts for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Owners read their campaigns" on public.outreach_campaigns for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Owners read their templates" on public.outreach_templates for select to authenticated
  using (exists (select 1 from public.outreach_campaigns c
                  where c.id = outreach_templates.campaign_id and c.user_id = (select auth.uid())));
create policy "Owners read their prospects" on public.prospects for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Owners read their follow-ups" on public.outreach_messages for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Owners read their outbox" on public.outreach_outbox for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Owners queue messages from their own accounts" on public.outreach_outbox for insert to authenticated
  with check (user_id = (select auth.uid())
              and exists (select 1 from public.linkedin_accounts a
                           where a.id = outreach_outbox.linkedin_account_id and a.user_id = (select auth.uid()))
              and (prospect_id is null or exists (select 1 from public.prospects p
                                                   where p.id = outreach_outbox.prospect_id and p.user_id = (select auth.uid()))));
create policy "Owners read their notifications" on public.outreach_notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Owners mark their notifications read" on public.outreach_notifications for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy "Owners read their erasure requests" on public.gdpr_erasure_requests for select to authenticated
  using (user_id = (select auth.uid()));
create policy "Owners file erasure requests" on public.gdpr_erasure_requests for insert to authenticated
  with check (user_id = (select auth.uid()));

-- ---------------------------------------------------------------------------------------------
-- Internals

-- One row: follow-up timing and retention. Change with e.g.
--   update outreach.settings set follow_up_gap_days = '{3,5,7,7}';
create table outreach.settings (
  id boolean primary key default true check (id),
  first_follow_up_delay interval not null default interval '24 hours',
  follow_up_gap_days int[] not null default '{5,7,5,7}'
    check (cardinality(follow_up_gap_days) = 4 and 0 < all (follow_up_gap_days)),
  closed_prospect_retention_days int not null default 365 check (closed_prospect_retention_days > 0),
  outbox_retention_days int not null default 90 check (outbox_retention_days > 0),
  notification_retention_days int not null default 90 check (notification_retention_days > 0),
  gdpr_max_rows_per_step int not null default 5000 check (gdpr_max_rows_per_step between 1 and 1000000)
);
insert into outreach.settings default values;

-- Every prospect status change, with what caused it (the acceptance webhook and the polling job
-- race for the same transition; this log shows it happened once).
create table outreach.prospect_events (
  id bigint generated always as identity primary key,
  prospect_id bigint not null references public.prospects (id) on delete cascade,
  from_status text,
  to_status text not null,
  via text not null,
  created_at timestamptz not null default now()
);
create index prospect_events_prospect on outreach.prospect_events (prospect_id);
create index prospect_events_age on outreach.prospect_events (created_at);

-- The GDPR runs: counts only, never personal data.
create table outreach.audit_log (
  id bigint generated always as identity primary key,
  action text not null,
  details jsonb not null default '{}',
  created_at timestamptz not null default now()
);

create function outreach.log_transitions()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status then
    insert into outreach.prospect_events (prospect_id, from_status, to_status, via)
    values (new.id, old.status, new.status, coalesce(nullif(current_setting('outreach.via', true), ''), 'sql'));
  end if;
  return new;
end;
$$;
create trigger prospects_log_transitions after update of status on public.prospects
  for each row execute function outreach.log_transitions();

-- Placeholders are checked when a template is written, so no prospect ever gets "{compnay}".
create function outreach.check_template()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_unknown text := (regexp_match(
    regexp_replace(new.body, '\{(first_name|last_name|full_name|company|title)\}', '', 'g'), '\{[^{}]*\}'))[1];
begin
  if v_unknown is not null then
    raise exception 'outreach_templates.body: unknown placeholder %', v_unknown
      using errcode = 'invalid_parameter_value',
            hint = 'Use {first_name}, {last_name}, {full_name}, {company} or {title}.';
  end if;
  return new;
end;
$$;
create trigger outreach_templates_check before insert or update of body on public.outreach_templates
  for each row execute function outreach.check_template();

-- A template with the prospect's fields in place (a missing field becomes '').
create function outreach.render(p_body text, p_first_name text, p_last_name text, p_company text, p_title text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return btrim(replace(replace(replace(replace(replace(p_body,
    '{full_name}', btrim(coalesce(p_first_name, '') || ' ' || coalesce(p_last_name, ''))),
    '{first_name}', coalesce(p_first_name, '')),
    '{last_name}', coalesce(p_last_name, '')),
    '{company}', coalesce(p_company, '')),
    '{title}', coalesce(p_title, '')));
end;
$$;

-- The wait after follow-up number p_sent (1..4) before the next one: 5, 7, 5, 7 days by default.
create function outreach.follow_up_gap(p_sent int)
returns interval
language plpgsql
stable
set search_path = ''
as $$
begin
  return make_interval(days => (select s.follow_up_gap_days[p_sent] from outreach.settings s));
end;
$$;

-- The engine buckets of a LinkedIn account (docs/outreach.md, "Contract"): its share of
-- Unipile's API, and LinkedIn's invitation and message budgets.
create function outreach.rate_keys(p_account_id bigint, p_kind text)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case p_kind
    when 'invite' then jsonb_build_array('unipile:' || p_account_id, 'li-invites-day:' || p_account_id,
                                         'li-invites-week:' || p_account_id)
    when 'message' then jsonb_build_array('unipile:' || p_account_id, 'li-messages-day:' || p_account_id)
    else jsonb_build_array('unipile:' || p_account_id) end;
end;
$$;

create function outreach.size_account_buckets(p_job text, p_account_ids bigint[])
returns void
language plpgsql
set search_path = ''
as $$
begin
  if cardinality(p_account_ids) > 0 then
    perform jobs.size_rate_limits(p_job, (
      select jsonb_agg(jsonb_build_object('key', k.key, 'capacity', k.capacity, 'refill_per_second', k.refill) order by k.key)
        from public.linkedin_accounts a
       cross join lateral (values
         ('unipile:' || a.id, greatest(5, a.api_calls_per_second), a.api_calls_per_second),
         ('li-invites-day:' || a.id, a.daily_invite_limit::numeric, a.daily_invite_limit / 86400.0),
         ('li-invites-week:' || a.id, a.weekly_invite_limit::numeric, a.weekly_invite_limit / 604800.0),
         ('li-messages-day:' || a.id, a.daily_message_limit::numeric, a.daily_message_limit / 86400.0)) k (key, capacity, refill)
       where a.id = any (p_account_ids)));
  end if;
end;
$$;

create function outreach.pause_keys(p_account_id bigint, p_kind text)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return jsonb_build_object('account', 'unipile:' || p_account_id,
                            'budget', case p_kind when 'invite' then 'li-invites-day:' || p_account_id
                                                  when 'message' then 'li-messages-day:' || p_account_id end);
end;
$$;

-- Why an account's work cannot go now, or null.
create function outreach.account_moot_reason(p_status text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_status is null then 'the LinkedIn account no longer exists'
              when p_status = 'needs_reconnect' then 'the LinkedIn account needs reconnection in Unipile'
              when p_status <> 'active' then format('the LinkedIn account is %s', p_status) end;
end;
$$;

-- In-app notifications (and an email, when asked and the owner has an address) about prospects:
-- kind invitation_accepted or prospect_replied.
create function outreach.notify_about_prospects(p_ids bigint[], p_kind text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.outreach_notifications (user_id, prospect_id, channel, kind, subject, body)
  select p.user_id, p.id, 'in_app', p_kind,
         left(n.who || case p_kind when 'invitation_accepted' then ' accepted your invitation' else ' replied' end, 200),
         n.who || case p_kind when 'invitation_accepted' then ' is now a connection; the first follow-up goes out in a day.'
                              else ' replied on LinkedIn; their follow-ups have stopped.' end
    from public.prospects p
   cross join lateral (select coalesce(nullif(btrim(p.first_name || ' ' || p.last_name), ''), 'A prospect') as who) n
   where p.id = any (p_ids);
end;
$$;

-- The LinkedIn account a task works for: payload.account_id (relations), else through its
-- prospect, follow-up or outbox row.
create function outreach.task_account(p_payload jsonb)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce(
    (p_payload ->> 'account_id')::bigint,
    (select c.linkedin_account_id from public.prospects p join public.outreach_campaigns c on c.id = p.campaign_id
      where p.id = (p_payload ->> 'prospect_id')::bigint),
    (select c.linkedin_account_id from public.outreach_messages m join public.prospects p on p.id = m.prospect_id
       join public.outreach_campaigns c on c.id = p.campaign_id
      where m.id = (p_payload ->> 'message_id')::bigint),
    (select o.linkedin_account_id from public.outreach_outbox o where o.id = (p_payload ->> 'outbox_id')::bigint));
end;
$$;

-- The accounts whose Unipile answer was 401 disconnected_account / invalid_credentials /
-- expired_credentials (outcome data.account_error): marked needs_reconnect once, and their owner
-- told by email and in-app. Their queued tasks are then moot at claim (no call, no storm).
create function outreach.mark_accounts_disconnected(p_outcomes jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
  with hit as (
    select distinct on (x.account_id) x.account_id, x.why
      from (select outreach.task_account(e -> 'payload') as account_id, e -> 'data' ->> 'account_error' as why
              from jsonb_array_elements(p_outcomes) e
             where e -> 'data' ->> 'account_error' is not null) x
     where x.account_id is not null
     order by x.account_id
  ),
  marked as (
    update public.linkedin_accounts a
       set status = 'needs_reconnect', status_reason = 'Unipile: ' || left(hit.why, 200), disconnected_at = now(),
           updated_at = now()
      from hit
     where a.id = hit.account_id and a.status = 'active'
    returning a.user_id, coalesce(nullif(a.display_name, ''), a.unipile_account_id) as name, hit.why
  )
  insert into public.outreach_notifications (user_id, channel, kind, subject, body, email_to)
  select m.user_id, ch.channel, 'account_disconnected', 'Reconnect your LinkedIn account',
         format('Unipile reports your LinkedIn account %s as %s. Outreach from it is on hold until you reconnect it.',
                m.name, m.why),
         case ch.channel when 'email' then u.email end
    from marked m
    left join auth.users u on u.id = m.user_id
   cross join lateral (values ('in_app'), ('email')) ch (channel)
   where ch.channel = 'in_app' or u.email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$';
end;
$$;

-- The one transition to `connected` (the webhook, the polling job and an invitation answered
-- already_connected all come here): from pending or connection_request_sent only, so a second
-- caller for the same acceptance changes nothing (the row lock makes it re-read the status). The
-- first follow-up is due a day later. Returns the prospects it moved.
create function outreach.connect_prospects(p_ids bigint[], p_via text)
returns bigint[]
language plpgsql
set search_path = ''
as $$
declare
  v_moved bigint[];
begin
  perform set_config('outreach.via', p_via, true);
  with moved as (
    update public.prospects p
       set status = 'connected', connected_at = now(), connected_via = p_via,
           follow_up_due_at = now() + (select s.first_follow_up_delay from outreach.settings s),
           follow_up_sequence_index = 0, status_reason = null, updated_at = now()
     where p.id = any (p_ids) and p.status in ('pending', 'connection_request_sent')
    returning p.id
  )
  select coalesce(array_agg(m.id order by m.id), '{}') into v_moved from moved m;
  perform set_config('outreach.via', '', true);
  perform outreach.notify_about_prospects(v_moved, 'invitation_accepted');
  return v_moved;
end;
$$;

-- The prospects on a Unipile account matching a LinkedIn member (provider id or public identifier).
create function outreach.account_prospects(p_unipile_account_id text, p_provider_id text, p_public_identifier text)
returns table (prospect_id bigint, status text, provider_id text, chat_id text)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
  select p.id, p.status, p.provider_id, p.chat_id
    from public.linkedin_accounts a
    join public.outreach_campaigns c on c.linkedin_account_id = a.id
    join public.prospects p on p.campaign_id = c.id
   where a.unipile_account_id = p_unipile_account_id
     and ((p_provider_id is not null and p.provider_id = p_provider_id)
          or (p_public_identifier is not null and lower(p.public_identifier) = lower(p_public_identifier)));
end;
$$;

-- Unipile's new_relation webhook (the unipile-webhook function, after checking its secret):
-- {account_id, user_provider_id, user_public_identifier, user_full_name}. Idempotent: Unipile's
-- retries and the polling job find the prospect connected already. Returns
-- {matched, connected, prospect_ids}.
create function outreach.record_new_relation(p_event jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_account text := nullif(p_event ->> 'account_id', '');
  v_provider text := nullif(p_event ->> 'user_provider_id', '');
  v_public text := nullif(p_event ->> 'user_public_identifier', '');
  v_matched bigint[];
  v_moved bigint[];
begin
  if v_account is null then
    raise exception 'outreach.record_new_relation: account_id is required' using errcode = 'invalid_parameter_value';
  elsif v_provider is null and v_public is null then
    raise exception 'outreach.record_new_relation: user_provider_id or user_public_identifier is required'
      using errcode = 'invalid_parameter_value';
  end if;
  v_matched := array(select m.prospect_id from outreach.account_prospects(v_account, v_provider, v_public) m);
  -- Learn the provider id of a prospect known only by its public identifier.
  if v_provider is not null then
    update public.prospects p set provider_id = v_provider, updated_at = now()
     where p.id = any (v_matched) and p.provider_id is null;
  end if;
  v_moved := outreach.connect_prospects(v_matched, 'webhook');
  return jsonb_build_object('matched', cardinality(v_matched), 'connected', cardinality(v_moved),
                            'prospect_ids', to_jsonb(v_moved));
end;
$$;

-- A message_received webhook: {account_id, chat_id, message_id, sender_provider_id, timestamp}.
-- A message from a prospect (its provider id, in its chat or any) marks it replied: no more
-- follow-ups. Our own messages (the account's) match no prospect. Returns {matched, replied, prospect_ids}.
create function outreach.record_message_received(p_event jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_account text := nullif(p_event ->> 'account_id', '');
  v_chat text := nullif(p_event ->> 'chat_id', '');
  v_sender text := nullif(p_event ->> 'sender_provider_id', '');
  v_matched bigint[];
  v_replied bigint[];
begin
  if v_account is null then
    raise exception 'outreach.record_message_received: account_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if v_sender is null then
    return jsonb_build_object('matched', 0, 'replied', 0, 'prospect_ids', '[]'::jsonb);
  end if;
  v_matched := array(select m.prospect_id from outreach.account_prospects(v_account, v_sender, null) m);
  perform set_config('outreach.via', 'webhook', true);
  with moved as (
    update public.prospects p
       set status = 'replied', replied_at = now(), follow_up_due_at = null, chat_id = coalesce(p.chat_id, v_chat),
           updated_at = now()
     where p.id = any (v_matched) and p.status in ('pending', 'connection_request_sent', 'connected', 'finished')
    returning p.id
  )
  select coalesce(array_agg(m.id order by m.id), '{}') into v_replied from moved m;
  perform set_config('outreach.via', '', true);
  perform outreach.notify_about_prospects(v_replied, 'prospect_replied');
  return jsonb_build_object('matched', cardinality(v_matched), 'replied', cardinality(v_replied),
                            'prospect_ids', to_jsonb(v_replied));
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Invitations (job outreach-invitations → linkedin-send)

-- Pending prospects of running campaigns on active accounts, never invited or invited without a
-- recorded outcome. config: {"max_per_tick": 10000}.
create function outreach.discover_invitations(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_prospects bigint[];
  v_accounts bigint[];
begin
  select array_agg(d.prospect_id order by d.prospect_id), array_agg(d.account_id order by d.prospect_id)
    into v_prospects, v_accounts
    from (select p.id as prospect_id, a.id as account_id
            from public.prospects p
            join public.outreach_campaigns c on c.id = p.campaign_id
            join public.linkedin_accounts a on a.id = c.linkedin_account_id
           where p.status = 'pending' and c.status = 'running' and a.status = 'active'
           order by p.id
           limit coalesce((p_config ->> 'max_per_tick')::int, 10000)) d;
  perform outreach.size_account_buckets('outreach-invitations', array(select distinct unnest(v_accounts)));
  return query
  select 'invite:' || d.prospect_id,
         jsonb_build_object('kind', 'invite', 'prospect_id', d.prospect_id,
                            'rate_keys', outreach.rate_keys(d.account_id, 'invite'))
    from unnest(v_prospects, v_accounts) as d (prospect_id, account_id);
end;
$$;

-- Why an invitation has nothing to do any more, or null.
create function outreach.invitation_moot_reason(p_prospect_status text, p_campaign_status text, p_account_status text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return case when p_prospect_status is null then 'the prospect no longer exists'
              when p_prospect_status <> 'pending' then format('the prospect is %s already', p_prospect_status)
              when p_campaign_status <> 'running' then format('the campaign is %s', p_campaign_status)
              else outreach.account_moot_reason(p_account_status) end;
end;
$$;

-- What linkedin-send needs for an invitation, read under the lease, and the intent: the
-- prospect's invite_attempt_started_at is set before the function may call Unipile. An earlier
-- attempt that recorded no outcome gives reconcile_since. A note longer than LinkedIn's 300
-- characters after personalisation fails the prospect with that reason (no call is made).
create function outreach.invitation_context(p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
set search_path = ''
as $$
begin
  return query
  with r as (
    select t.task_id, p.id as prospect_id, p.status as prospect_status, p.provider_id, p.public_identifier,
           p.invite_attempt_started_at, a.id as account_id, a.unipile_account_id,
           outreach.render(tpl.body, p.first_name, p.last_name, p.company, p.title) as note,
           outreach.invitation_moot_reason(p.status, c.status, a.status) as moot
      from jsonb_to_recordset(p_tasks) as t (task_id bigint, payload jsonb)
      left join lateral (select x.* from public.prospects x where x.id = (t.payload ->> 'prospect_id')::bigint limit 1) p on true
      left join lateral (select x.* from public.outreach_campaigns x where x.id = p.campaign_id limit 1) c on true
      left join lateral (select x.* from public.linkedin_accounts x where x.id = c.linkedin_account_id limit 1) a on true
      left join lateral (select x.body from public.outreach_templates x
                          where x.campaign_id = c.id and x.step = 0 limit 1) tpl on true
  ),
  checked as (
    select r.*, case when r.moot is null and char_length(r.note) > 300
                     then format('the connection note is %s characters after personalisation; LinkedIn allows 300',
                                 char_length(r.note)) end as too_long
      from r
  ),
  marked as (
    update public.prospects x
       set invite_attempt_started_at = case when k.too_long is null then now() else x.invite_attempt_started_at end,
           invite_attempts = x.invite_attempts + case when k.too_long is null then 1 else 0 end,
           status = case when k.too_long is null then x.status else 'failed' end,
           status_reason = coalesce(k.too_long, x.status_reason),
           updated_at = now()
      from checked k
     where x.id = k.prospect_id and k.moot is null
    returning x.id
  )
  select k.task_id,
         case when k.moot is null and k.too_long is null then jsonb_build_object(
           'kind', 'invite', 'prospect_id', k.prospect_id,
           'account', jsonb_build_object('id', k.account_id, 'unipile_account_id', k.unipile_account_id),
           'provider_id', k.provider_id, 'public_identifier', k.public_identifier,
           'note', nullif(k.note, ''),
           'reconcile_since', k.invite_attempt_started_at,
           'pause_keys', outreach.pause_keys(k.account_id, 'invite')) end,
         coalesce(k.moot, k.too_long)
    from checked k;
end;
$$;

-- The invitation outcomes, set-based, in the transaction that records them:
--   ok      data {result, invitation_id?, provider_id}: sent / reconciled / already_invited_recently /
--           cannot_resend_yet → connection_request_sent; already_connected → connected
--   dead    data {error_type}: the prospect failed with the reason (a refused recipient)
--   discard data {account_error}: the account needs reconnection; the prospect stays pending
--   retry   the error is kept; data.provider_id (looked up before the refusal) is stored
--   (retry and discard keep the attempt marker, so the next attempt looks before sending, unless
--   data.not_sent says nothing can have been sent: a refusal, and no earlier unknown attempt)
create function outreach.invitation_outcomes(p_outcomes jsonb)
returns table (task_id bigint, prospect_id bigint, outcome text, error text, result text, invitation_id text,
               provider_id text, not_sent boolean)
language sql
immutable
set search_path = ''
as $$
  select (e ->> 'task_id')::bigint, (e -> 'payload' ->> 'prospect_id')::bigint, e ->> 'outcome', e ->> 'error',
         e -> 'data' ->> 'result', nullif(e -> 'data' ->> 'invitation_id', ''), nullif(e -> 'data' ->> 'provider_id', ''),
         coalesce((e -> 'data' ->> 'not_sent')::boolean, false)
    from jsonb_array_elements(p_outcomes) e;
$$;

create function outreach.apply_invitation_outcomes(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql
set search_path = ''
as $$
begin
  perform outreach.mark_accounts_disconnected(p_outcomes);

  perform set_config('outreach.via', 'invite', true);
  update public.prospects p
     set provider_id = coalesce(p.provider_id, i.provider_id),
         status = case when i.outcome = 'ok' and i.result <> 'already_connected' and p.status = 'pending'
                       then 'connection_request_sent'
                       when i.outcome = 'dead' and p.status = 'pending' then 'failed'
                       else p.status end,
         status_reason = case when i.outcome = 'dead' and p.status = 'pending' then left(i.error, 1000)
                              else p.status_reason end,
         invitation_id = case when i.outcome = 'ok' then coalesce(i.invitation_id, p.invitation_id) else p.invitation_id end,
         invite_result = case when i.outcome = 'ok' then i.result else p.invite_result end,
         invited_at = case when i.outcome = 'ok' and i.result in ('sent', 'reconciled') then coalesce(p.invited_at, now())
                           else p.invited_at end,
         -- The attempt marker stays only while the outcome is unknown (the next attempt looks first).
         invite_attempt_started_at = case when i.outcome in ('ok', 'dead') or i.not_sent then null
                                          else p.invite_attempt_started_at end,
         last_error = case when i.outcome in ('retry', 'dead', 'discard') then left(i.error, 1000) end,
         updated_at = now()
    from outreach.invitation_outcomes(p_outcomes) i
   where p.id = i.prospect_id;
  perform set_config('outreach.via', '', true);

  perform outreach.connect_prospects(array(select i.prospect_id from outreach.invitation_outcomes(p_outcomes) i
                                            where i.outcome = 'ok' and i.result = 'already_connected'), 'invite');

  return query
  select i.task_id, null::text, null::text,
         jsonb_build_object('prospect_id', i.prospect_id, 'status', p.status, 'result', i.result)
    from outreach.invitation_outcomes(p_outcomes) i
    left join public.prospects p on p.id = i.prospect_id
   where i.outcome = 'ok';
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Follow-ups and the outbox (jobs outreach-follow-ups, outreach-outbox → linkedin-send)

-- Connected prospects whose next follow-up is due (follow_up_due_at ≤ now) on running campaigns
-- of active accounts. Each gets its outreach_messages row for the slot (index + 1), with the
-- template rendered, the first time; a prospect whose campaign has no template for the next slot
-- has finished its sequence. Running campaigns with no open prospect left are finished.
create function outreach.discover_follow_ups(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_due jsonb;
begin
  select coalesce(jsonb_agg(jsonb_build_object(
           'prospect_id', p.id, 'user_id', p.user_id, 'account_id', a.id, 'next_index', p.follow_up_sequence_index + 1,
           'text', outreach.render(tpl.body, p.first_name, p.last_name, p.company, p.title))), '[]')
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
                            'rate_keys', outreach.rate_keys((d ->> 'account_id')::bigint, 'message'))
    from jsonb_array_elements(v_due) d
    join public.outreach_messages m
      on m.prospect_id = (d ->> 'prospect_id')::bigint and m.sequence_index = (d ->> 'next_index')::smallint
   where d ->> 'text' is not null and m.status in ('pending', 'sending');
end;
$$;

-- The app's queued outbox rows of active accounts.
create function outreach.discover_outbox(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_rows bigint[];
  v_accounts bigint[];
begin
  select array_agg(d.id order by d.created_at), array_agg(d.account_id order by d.created_at) into v_rows, v_accounts
    from (select o.id, o.created_at, o.linkedin_account_id as account_id
            from public.outreach_outbox o
            join public.linkedin_accounts a on a.id = o.linkedin_account_id
           where o.status in ('queued', 'sending') and a.status = 'active'
           order by o.created_at
           limit coalesce((p_config ->> 'max_per_tick')::int, 10000)) d;
  perform outreach.size_account_buckets('outreach-outbox', array(select distinct unnest(v_accounts)));
  return query
  select 'outbox:' || d.outbox_id,
         jsonb_build_object('kind', 'outbox', 'outbox_id', d.outbox_id, 'rate_keys', outreach.rate_keys(d.account_id, 'message'))
    from unnest(v_rows, v_accounts) as d (outbox_id, account_id);
end;
$$;

-- What linkedin-send needs for a follow-up or an outbox message, read under the lease, and the
-- intent (status sending, attempt_started_at = now()). A row still `sending` from an earlier
-- attempt has an unknown outcome: reconcile_since tells the function to look at the chat first.
-- Moot: the slot or row is sent/failed already; the prospect replied, finished, failed or moved
-- past this slot; the campaign is not running; the account is not active; no recipient id (the
-- row fails, and a follow-up's prospect with it: that slot can never be sent).
create function outreach.message_context(p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('outreach.via', 'follow-ups', true);
  return query
  with t as (
    select x.task_id, x.payload ->> 'kind' as kind,
           case when x.payload ->> 'kind' = 'follow_up' then (x.payload ->> 'message_id')::bigint end as message_id,
           case when x.payload ->> 'kind' = 'outbox' then (x.payload ->> 'outbox_id')::bigint end as outbox_id
      from jsonb_to_recordset(p_tasks) as x (task_id bigint, payload jsonb)
  ),
  r as (
    select t.task_id, t.kind, coalesce(m.id, o.id) as ref_id,
           coalesce(m.status, o.status) as row_status,
           coalesce(m.attempt_started_at, o.attempt_started_at) as attempt_started_at,
           coalesce(m.text, o.text) as text,
           coalesce(o.chat_id, p.chat_id) as chat_id,
           coalesce(o.recipient_provider_id, p.provider_id) as recipient,
           a.id as account_id, a.unipile_account_id,
           case
             when t.kind = 'follow_up' and m.id is null then 'the follow-up no longer exists'
             when t.kind = 'outbox' and o.id is null then 'the outbox message no longer exists'
             when t.kind not in ('follow_up', 'outbox') then format('unknown kind %s', t.kind)
             when t.kind = 'follow_up' and m.status not in ('pending', 'sending') then format('already %s', m.status)
             when t.kind = 'outbox' and o.status not in ('queued', 'sending') then format('already %s', o.status)
             when t.kind = 'follow_up' and p.status <> 'connected' then format('the prospect has %s', p.status)
             when t.kind = 'follow_up' and p.follow_up_sequence_index <> m.sequence_index - 1
               then format('the prospect is at follow-up %s already', p.follow_up_sequence_index)
             when t.kind = 'follow_up' and c.status <> 'running' then format('the campaign is %s', c.status)
             when outreach.account_moot_reason(a.status) is not null then outreach.account_moot_reason(a.status)
           end as moot
      from t
      left join lateral (select x.* from public.outreach_messages x where x.id = t.message_id limit 1) m on true
      left join lateral (select x.* from public.outreach_outbox x where x.id = t.outbox_id limit 1) o on true
      left join lateral (select x.* from public.prospects x where x.id = coalesce(m.prospect_id, o.prospect_id) limit 1) p on true
      left join lateral (select x.* from public.outreach_campaigns x where x.id = p.campaign_id limit 1) c on true
      left join lateral (select x.* from public.linkedin_accounts x
                          where x.id = coalesce(o.linkedin_account_id, c.linkedin_account_id) limit 1) a on true
  ),
  checked as (
    select r.*, case when r.moot is null and r.recipient is null
                     then 'the recipient has no LinkedIn provider id yet (not invited through Unipile)' end as no_recipient
      from r
  ),
  follow_ups as (
    update public.outreach_messages x
       set status = case when k.no_recipient is null then 'sending' else 'failed' end,
           error = coalesce(k.no_recipient, x.error),
           attempts = x.attempts + case when k.no_recipient is null then 1 else 0 end,
           attempt_started_at = case when k.no_recipient is null then now() else x.attempt_started_at end,
           updated_at = now()
      from checked k
     where k.kind = 'follow_up' and x.id = k.ref_id and k.moot is null
    returning x.id
  ),
  outbox as (
    update public.outreach_outbox x
       set status = case when k.no_recipient is null then 'sending' else 'failed' end,
           error = coalesce(k.no_recipient, x.error),
           attempts = x.attempts + case when k.no_recipient is null then 1 else 0 end,
           attempt_started_at = case when k.no_recipient is null then now() else x.attempt_started_at end,
           updated_at = now()
      from checked k
     where k.kind = 'outbox' and x.id = k.ref_id and k.moot is null
    returning x.id
  ),
  -- Its slot failed for good, so the sequence is over: otherwise the prospect stays connected and
  -- due, read again by every discovery (ahead of the others), and its campaign never finishes.
  stuck as (
    update public.prospects x
       set status = 'failed', status_reason = k.no_recipient, follow_up_due_at = null, updated_at = now()
      from checked k
      join public.outreach_messages m on m.id = k.ref_id
     where k.kind = 'follow_up' and k.no_recipient is not null and x.id = m.prospect_id and x.status = 'connected'
    returning x.id
  )
  select k.task_id,
         case when k.moot is null and k.no_recipient is null then jsonb_build_object(
           'kind', k.kind, 'ref_id', k.ref_id,
           'account', jsonb_build_object('id', k.account_id, 'unipile_account_id', k.unipile_account_id),
           'recipient_provider_id', k.recipient, 'chat_id', k.chat_id, 'text', k.text,
           'reconcile_since', case when k.row_status = 'sending' then k.attempt_started_at end,
           'pause_keys', outreach.pause_keys(k.account_id, 'message')) end,
         coalesce(k.moot, k.no_recipient)
    from checked k;
  perform set_config('outreach.via', '', true);
end;
$$;

-- The message outcomes (follow-ups and outbox rows), set-based:
--   ok      data {result: sent | reconciled, chat_id, provider_message_id, replied?}: the row is sent;
--           a follow-up advances its prospect (index = the slot, next due after the gap, or
--           finished after the last template); replied: true (seen in the chat) stops the sequence
--   dead    data {error_type}: the row failed; a follow-up's prospect failed with the reason
--   discard data {account_error}: the account needs reconnection; data {replied} (the reconcile saw
--           the prospect's answer and not our message): the slot is skipped, the prospect replied
--   retry, discard
--           the row stays sending (the next attempt reconciles) unless data.not_sent says nothing
--           can have been sent: then it waits as pending/queued again
create function outreach.message_outcomes(p_outcomes jsonb)
returns table (task_id bigint, kind text, ref_id bigint, outcome text, error text, result text, chat_id text,
               message_id text, replied boolean, not_sent boolean)
language sql
immutable
set search_path = ''
as $$
  select (e ->> 'task_id')::bigint, e -> 'payload' ->> 'kind',
         coalesce((e -> 'payload' ->> 'message_id')::bigint, (e -> 'payload' ->> 'outbox_id')::bigint),
         e ->> 'outcome', e ->> 'error', e -> 'data' ->> 'result', nullif(e -> 'data' ->> 'chat_id', ''),
         nullif(e -> 'data' ->> 'provider_message_id', ''), coalesce((e -> 'data' ->> 'replied')::boolean, false),
         coalesce((e -> 'data' ->> 'not_sent')::boolean, false)
    from jsonb_array_elements(p_outcomes) e;
$$;

create function outreach.apply_message_outcomes(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql
set search_path = ''
as $$
begin
  perform outreach.mark_accounts_disconnected(p_outcomes);

  -- The follow-up rows.
  update public.outreach_messages m
     set status = case when i.outcome = 'ok' then 'sent' when i.outcome = 'dead' then 'failed'
                       when i.outcome = 'discard' and i.replied then 'skipped'
                       when i.not_sent then 'pending' else m.status end,
         chat_id = coalesce(i.chat_id, m.chat_id), provider_message_id = coalesce(i.message_id, m.provider_message_id),
         sent_at = case when i.outcome = 'ok' then coalesce(m.sent_at, now()) else m.sent_at end,
         error = case when i.outcome = 'ok' then null else left(i.error, 1000) end,
         updated_at = now()
    from outreach.message_outcomes(p_outcomes) i
   where i.kind = 'follow_up' and m.id = i.ref_id and m.status = 'sending';

  -- Their prospects: the slot is done (or the recipient refused for good).
  perform set_config('outreach.via', 'follow-ups', true);
  update public.prospects p
     set chat_id = coalesce(i.chat_id, p.chat_id),
         follow_up_sequence_index = case when i.outcome = 'ok' then m.sequence_index else p.follow_up_sequence_index end,
         last_follow_up_at = case when i.outcome = 'ok' then now() else p.last_follow_up_at end,
         status = case when i.outcome in ('ok', 'discard') and i.replied then 'replied'
                       when i.outcome = 'ok' and not exists (select 1 from public.outreach_templates x
                                                              where x.campaign_id = p.campaign_id
                                                                and x.step = m.sequence_index + 1)
                         then 'finished'
                       when i.outcome = 'dead' then 'failed'
                       else p.status end,
         replied_at = case when i.replied then coalesce(p.replied_at, now()) else p.replied_at end,
         status_reason = case when i.outcome = 'dead' then left(i.error, 1000)
                              when i.outcome = 'ok' and not i.replied and not exists (
                                select 1 from public.outreach_templates x where x.campaign_id = p.campaign_id
                                   and x.step = m.sequence_index + 1)
                                then 'no more follow-ups in the sequence'
                              else p.status_reason end,
         follow_up_due_at = case when i.outcome = 'ok' then now() + outreach.follow_up_gap(m.sequence_index)
                                 else p.follow_up_due_at end,
         updated_at = now()
    from outreach.message_outcomes(p_outcomes) i
    join public.outreach_messages m on m.id = i.ref_id
   where i.kind = 'follow_up' and (i.outcome in ('ok', 'dead') or (i.outcome = 'discard' and i.replied))
     and p.id = m.prospect_id and p.status = 'connected'
     and p.follow_up_sequence_index = m.sequence_index - 1;
  -- A finished or replied prospect has nothing due.
  update public.prospects p set follow_up_due_at = null
    from outreach.message_outcomes(p_outcomes) i
    join public.outreach_messages m on m.id = i.ref_id
   where i.kind = 'follow_up' and p.id = m.prospect_id and p.status <> 'connected' and p.follow_up_due_at is not null;
  perform set_config('outreach.via', '', true);

  -- The outbox rows, and the chat they opened for their prospect.
  update public.outreach_outbox o
     set status = case i.outcome when 'ok' then 'sent' when 'dead' then 'failed'
                                 else case when i.not_sent then 'queued' else o.status end end,
         chat_id = coalesce(i.chat_id, o.chat_id), provider_message_id = coalesce(i.message_id, o.provider_message_id),
         sent_at = case when i.outcome = 'ok' then coalesce(o.sent_at, now()) else o.sent_at end,
         error = case when i.outcome = 'ok' then null else left(i.error, 1000) end,
         updated_at = now()
    from outreach.message_outcomes(p_outcomes) i
   where i.kind = 'outbox' and o.id = i.ref_id and o.status = 'sending';
  update public.prospects p set chat_id = i.chat_id, updated_at = now()
    from outreach.message_outcomes(p_outcomes) i
    join public.outreach_outbox o on o.id = i.ref_id
   where i.kind = 'outbox' and i.outcome = 'ok' and p.id = o.prospect_id and p.chat_id is null and i.chat_id is not null;

  return query
  select i.task_id, null::text, null::text,
         jsonb_build_object(case i.kind when 'follow_up' then 'message_id' else 'outbox_id' end, i.ref_id,
                            'result', i.result, 'chat_id', i.chat_id)
    from outreach.message_outcomes(p_outcomes) i
   where i.outcome = 'ok';
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- The acceptance check (job outreach-relations → check-relations)

-- The invited prospects (connection_request_sent, or pending with an invitation whose outcome
-- is unknown) of an account; the polling job looks for them among its relations.
create function outreach.invited_prospects(p_account_id bigint)
returns table (prospect_id bigint, provider_id text, public_identifier text)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
  select p.id, p.provider_id, p.public_identifier
    from public.outreach_campaigns c
    join public.prospects p on p.campaign_id = c.id
   where c.linkedin_account_id = p_account_id and c.status in ('running', 'paused', 'finished')
     and (p.status = 'connection_request_sent' or (p.status = 'pending' and p.invite_attempt_started_at is not null));
end;
$$;

-- One task per active account with invited prospects. config: {"max_per_tick": 10000}.
create function outreach.discover_relation_checks(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_accounts bigint[] := array(
    select a.id from public.linkedin_accounts a
     where a.status = 'active' and exists (select 1 from outreach.invited_prospects(a.id))
     order by a.id
     limit coalesce((p_config ->> 'max_per_tick')::int, 10000));
begin
  perform outreach.size_account_buckets('outreach-relations', v_accounts);
  return query
  select 'relations:' || a.id, jsonb_build_object('account_id', a.id, 'rate_keys', outreach.rate_keys(a.id, 'relations'))
    from unnest(v_accounts) as a (id);
end;
$$;

create function outreach.relations_context(p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
stable
set search_path = ''
as $$
begin
  return query
  select t.task_id,
         case when m.moot is null then jsonb_build_object(
           'account', jsonb_build_object('id', a.id, 'unipile_account_id', a.unipile_account_id),
           'pending', pend.list,
           'pause_keys', jsonb_build_object('account', 'unipile:' || a.id)) end,
         m.moot
    from jsonb_to_recordset(p_tasks) as t (task_id bigint, payload jsonb)
    left join lateral (select x.* from public.linkedin_accounts x where x.id = (t.payload ->> 'account_id')::bigint limit 1) a on true
    cross join lateral (select coalesce(jsonb_agg(jsonb_build_object('prospect_id', i.prospect_id, 'provider_id', i.provider_id,
                                                                     'public_identifier', i.public_identifier)
                                                  order by i.prospect_id), '[]'::jsonb) as list
                          from outreach.invited_prospects(a.id) i) pend
    cross join lateral (select coalesce(outreach.account_moot_reason(a.status),
                                        case when jsonb_array_length(pend.list) = 0 then 'no invited prospects left' end) as moot) m;
end;
$$;

-- ok data {accepted: [prospect_id…], checked}: those of this account's invited prospects move to
-- connected (the webhook's transition); the task's result is the seed's shape
-- {success, checked, accepted, still_pending, errors}.
create function outreach.apply_relation_outcomes(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_row record;
  v_moved bigint[];
begin
  perform outreach.mark_accounts_disconnected(p_outcomes);
  for v_row in
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'account_id')::bigint as account_id,
           coalesce(e -> 'data' -> 'accepted', '[]') as accepted, coalesce((e -> 'data' ->> 'checked')::int, 0) as checked
      from jsonb_array_elements(p_outcomes) e where e ->> 'outcome' = 'ok'
  loop
    v_moved := outreach.connect_prospects(array(
      select i.prospect_id from outreach.invited_prospects(v_row.account_id) i
       where i.prospect_id in (select (x #>> '{}')::bigint from jsonb_array_elements(v_row.accepted) x)), 'polling');
    task_id := v_row.task_id;
    outcome := null;
    error := null;
    result := jsonb_build_object('success', true, 'checked', v_row.checked, 'accepted', cardinality(v_moved),
                                 'still_pending', (select count(*) from outreach.invited_prospects(v_row.account_id)),
                                 'errors', '[]'::jsonb);
    return next;
  end loop;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Notifications (job outreach-notifications → send-notification)

-- In-app notifications need no I/O: they are marked sent here. Email ones become tasks.
create function outreach.discover_notifications(p_config jsonb)
returns table (key text, payload jsonb)
language plpgsql
set search_path = ''
as $$
begin
  update public.outreach_notifications n set status = 'sent', sent_at = now(), updated_at = now()
   where n.channel = 'in_app' and n.status = 'queued';
  return query
  select 'notification:' || n.id, jsonb_build_object('notification_id', n.id, 'rate_keys', jsonb_build_array('resend'))
    from public.outreach_notifications n
   where n.channel = 'email' and n.status in ('queued', 'sending')
   order by n.created_at
   limit coalesce((p_config ->> 'max_per_tick')::int, 10000);
end;
$$;

create function outreach.notification_context(p_tasks jsonb)
returns table (task_id bigint, context jsonb, moot text)
language plpgsql
set search_path = ''
as $$
begin
  return query
  with r as (
    select t.task_id, t.key, n.id, n.status, n.email_to, n.subject, n.body,
           case when n.id is null then 'the notification no longer exists'
                when n.status not in ('queued', 'sending') then format('already %s', n.status) end as moot
      from jsonb_to_recordset(p_tasks) as t (task_id bigint, key text, payload jsonb)
      left join lateral (select x.* from public.outreach_notifications x
                          where x.id = (t.payload ->> 'notification_id')::bigint and x.channel = 'email' limit 1) n on true
  ),
  marked as (
    update public.outreach_notifications x set status = 'sending', attempts = x.attempts + 1, updated_at = now()
      from r where x.id = r.id and r.moot is null
    returning x.id
  )
  select r.task_id,
         case when r.moot is null then jsonb_build_object('notification_id', r.id, 'to', r.email_to, 'subject', r.subject,
                                                          'text', r.body, 'idempotency_key', r.key) end,
         r.moot
    from r;
end;
$$;

create function outreach.apply_notification_outcomes(p_outcomes jsonb)
returns table (task_id bigint, outcome text, error text, result jsonb)
language plpgsql
set search_path = ''
as $$
begin
  return query
  with input as (
    select (e ->> 'task_id')::bigint as task_id, (e -> 'payload' ->> 'notification_id')::bigint as notification_id,
           e ->> 'outcome' as outcome, e ->> 'error' as error, nullif(e -> 'data' ->> 'provider_message_id', '') as message_id
      from jsonb_array_elements(p_outcomes) e
  ),
  written as (
    update public.outreach_notifications n
       set status = case i.outcome when 'ok' then 'sent' when 'dead' then 'failed' else n.status end,
           provider_message_id = coalesce(i.message_id, n.provider_message_id),
           sent_at = case when i.outcome = 'ok' then now() else n.sent_at end,
           error = case when i.outcome = 'ok' then null else left(i.error, 1000) end,
           updated_at = now()
      from input i
     where n.id = i.notification_id and n.status = 'sending'
    returning i.task_id, n.id, n.provider_message_id
  )
  select w.task_id, null::text, null::text, jsonb_build_object('notification_id', w.id, 'provider_message_id', w.provider_message_id)
    from written w join input i using (task_id)
   where i.outcome = 'ok';
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Campaign starts (pure SQL)

-- `select start_campaign(7);`: the campaign runs and its invitations are queued and dispatched
-- at once (jobs.run_now). A draft, scheduled or paused campaign may start; a finished one may not.
create function public.start_campaign(p_campaign_id bigint)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_status text;
begin
  select c.status into v_status from public.outreach_campaigns c where c.id = p_campaign_id for update;
  if not found then
    raise exception 'start_campaign: campaign % does not exist', p_campaign_id using errcode = 'no_data_found';
  elsif v_status = 'finished' then
    raise exception 'start_campaign: campaign % is finished', p_campaign_id using errcode = 'invalid_parameter_value';
  end if;
  update public.outreach_campaigns c
     set status = 'running', started_at = coalesce(c.started_at, now()), updated_at = now()
   where c.id = p_campaign_id;
  return jsonb_build_object('campaign_id', p_campaign_id, 'status', 'running', 'was', v_status,
                            'invitations', jobs.run_now('outreach-invitations'));
end;
$$;

-- Every 5 minutes: scheduled campaigns whose start time passed run, and their invitations go.
create function outreach.start_due_campaigns()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_started bigint[];
begin
  with started as (
    update public.outreach_campaigns c
       set status = 'running', started_at = coalesce(c.started_at, now()), updated_at = now()
     where c.status = 'scheduled' and c.scheduled_start_at <= now()
    returning c.id
  )
  select array_agg(s.id order by s.id) into v_started from started s;
  return jsonb_build_object('success', true, 'started', coalesce(cardinality(v_started), 0),
                            'campaign_ids', coalesce(to_jsonb(v_started), '[]'::jsonb),
                            'invitations', case when v_started is not null then jobs.run_now('outreach-invitations') end);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- GDPR (pure SQL, daily)

-- One run: pending erasure requests (each prospect of the requesting user matching the subject is
-- deleted, with its follow-ups, outbox rows, notifications and status history), then retention:
-- prospects closed (replied, finished, failed) longer than closed_prospect_retention_days are
-- anonymised (names, company, title, identifiers and message texts blanked), sent or failed
-- outbox rows and sent notifications past their retention deleted. At most
-- gdpr_max_rows_per_step rows per step; "more" says the next run goes on. Audited in
-- outreach.audit_log with counts only.
create function outreach.gdpr_cleanup()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  s outreach.settings;
  v_requests int := 0;
  v_erased int := 0;
  v_anonymised int := 0;
  v_outbox int := 0;
  v_notifications int := 0;
  v_events int := 0;
  v_outbox_erased int;
  v_providers text[];
  v_req record;
  v_n int;
  v_more boolean := false;
  v_result jsonb;
begin
  select * into strict s from outreach.settings;

  for v_req in
    select r.* from public.gdpr_erasure_requests r where r.status = 'pending'
     order by r.requested_at limit 1000 for update skip locked
  loop
    with gone as (
      delete from public.prospects p
       where p.user_id = v_req.user_id
         and ((v_req.subject_provider_id is not null and p.provider_id = v_req.subject_provider_id)
              or (v_req.subject_public_identifier is not null
                  and lower(p.public_identifier) = lower(v_req.subject_public_identifier)))
      returning p.id, p.provider_id
    )
    select count(*), array_agg(g.provider_id) filter (where g.provider_id is not null) into v_n, v_providers from gone g;
    -- The messages to the subject: by the request's provider id, or the one its prospects had (a
    -- request names the public identifier; queued messages may name only the provider id).
    with gone as (
      delete from public.outreach_outbox o
       where o.user_id = v_req.user_id
         and o.recipient_provider_id = any (coalesce(v_providers, '{}') || v_req.subject_provider_id)
      returning o.id
    )
    select count(*) into v_outbox_erased from gone;
    update public.gdpr_erasure_requests r
       set status = 'completed', completed_at = now(),
           result = jsonb_build_object('prospects_deleted', v_n, 'outbox_deleted', v_outbox_erased),
           subject_public_identifier = null, subject_provider_id = null
     where r.id = v_req.id;
    v_requests := v_requests + 1;
    v_erased := v_erased + v_n;
  end loop;

  with old as (
    select p.id from public.prospects p
     where p.status in ('replied', 'finished', 'failed') and p.anonymised_at is null
       and p.updated_at < now() - make_interval(days => s.closed_prospect_retention_days)
     limit s.gdpr_max_rows_per_step + 1 for update skip locked
  ),
  picked as (select o.id from old o limit s.gdpr_max_rows_per_step),
  anon as (
    update public.prospects p
       set first_name = '', last_name = '', company = null, title = null, public_identifier = null, provider_id = null,
           chat_id = null, status_reason = null, last_error = null, anonymised_at = now()
      from picked where p.id = picked.id
    returning p.id
  ),
  texts as (
    -- (A data-modifying WITH always runs to completion, read or not.)
    update public.outreach_messages m set text = '', error = null
      from anon where m.prospect_id = anon.id
  )
  select count(*), (select count(*) from old) > s.gdpr_max_rows_per_step into v_anonymised, v_more from anon;

  with gone as (
    delete from public.outreach_outbox o
     where o.id in (select x.id from public.outreach_outbox x
                     where x.status in ('sent', 'failed', 'cancelled')
                       and x.updated_at < now() - make_interval(days => s.outbox_retention_days)
                     limit s.gdpr_max_rows_per_step)
    returning o.id
  )
  select count(*) into v_outbox from gone;
  with gone as (
    delete from public.outreach_notifications n
     where n.id in (select x.id from public.outreach_notifications x
                     where x.status in ('sent', 'failed')
                       and x.updated_at < now() - make_interval(days => s.notification_retention_days)
                     limit s.gdpr_max_rows_per_step)
    returning n.id
  )
  select count(*) into v_notifications from gone;
  with gone as (
    delete from outreach.prospect_events e
     where e.id in (select x.id from outreach.prospect_events x
                     where x.created_at < now() - make_interval(days => s.closed_prospect_retention_days)
                     limit s.gdpr_max_rows_per_step)
    returning e.id
  )
  select count(*) into v_events from gone;

  v_more := v_more or v_outbox >= s.gdpr_max_rows_per_step or v_notifications >= s.gdpr_max_rows_per_step
            or v_events >= s.gdpr_max_rows_per_step;
  v_result := jsonb_build_object('success', true, 'erasure_requests', v_requests, 'prospects_erased', v_erased,
                                 'prospects_anonymised', v_anonymised, 'outbox_deleted', v_outbox,
                                 'notifications_deleted', v_notifications, 'events_deleted', v_events,
                                 'more', v_more, 'errors', '[]'::jsonb);
  insert into outreach.audit_log (action, details) values ('gdpr.cleanup', v_result);
  return v_result;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Jobs and entry points

select jobs.define(
  p_name => 'outreach-invitations',
  p_target_function => 'linkedin-send',
  p_discover_function => 'outreach.discover_invitations(jsonb)',
  p_context_function => 'outreach.invitation_context(jsonb)',
  p_apply_function => 'outreach.apply_invitation_outcomes(jsonb)',
  p_schedule => '0 * * * *',
  p_config => '{"max_per_tick": 10000}',
  p_batch_size => 10, p_max_in_flight => 3, p_max_attempts => 6,
  p_backoff_base_seconds => 60, p_backoff_cap_seconds => 3600,
  p_task_rate_limits => true,
  p_description => 'LinkedIn invitations (POST /users/invite) for pending prospects of running campaigns; hourly catch-up, and at once from start_campaign.');

select jobs.define(
  p_name => 'outreach-follow-ups',
  p_target_function => 'linkedin-send',
  p_discover_function => 'outreach.discover_follow_ups(jsonb)',
  p_context_function => 'outreach.message_context(jsonb)',
  p_apply_function => 'outreach.apply_message_outcomes(jsonb)',
  p_schedule => '10 * * * *',
  p_config => '{"max_per_tick": 10000}',
  p_batch_size => 10, p_max_in_flight => 3, p_max_attempts => 6,
  p_backoff_base_seconds => 60, p_backoff_cap_seconds => 3600,
  p_task_rate_limits => true,
  p_description => 'Due LinkedIn follow-ups FU1..FU4 (1 day after acceptance, then 5, 7, 5 days), in the prospect''s chat.');

select jobs.define(
  p_name => 'outreach-outbox',
  p_target_function => 'linkedin-send',
  p_discover_function => 'outreach.discover_outbox(jsonb)',
  p_context_function => 'outreach.message_context(jsonb)',
  p_apply_function => 'outreach.apply_message_outcomes(jsonb)',
  p_schedule => '20 * * * *',
  p_config => '{"max_per_tick": 10000}',
  p_batch_size => 10, p_max_in_flight => 3, p_max_attempts => 6,
  p_backoff_base_seconds => 60, p_backoff_cap_seconds => 3600,
  p_task_rate_limits => true,
  p_description => 'LinkedIn messages the app queued in outreach_outbox, each delivered once.');

select jobs.define(
  p_name => 'outreach-relations',
  p_target_function => 'check-relations',
  p_discover_function => 'outreach.discover_relation_checks(jsonb)',
  p_context_function => 'outreach.relations_context(jsonb)',
  p_apply_function => 'outreach.apply_relation_outcomes(jsonb)',
  p_schedule => '0 9,21 * * *',
  p_batch_size => 5, p_max_in_flight => 2, p_max_attempts => 4,
  p_lease_seconds => 30,
  p_backoff_base_seconds => 300, p_backoff_cap_seconds => 3600,
  p_task_rate_limits => true,
  p_description => 'The backup acceptance check (09:00 and 21:00 UTC): each account''s relations, cursor-paged; invited prospects found there are connected.');

select jobs.define(
  p_name => 'outreach-notifications',
  p_target_function => 'send-notification',
  p_discover_function => 'outreach.discover_notifications(jsonb)',
  p_context_function => 'outreach.notification_context(jsonb)',
  p_apply_function => 'outreach.apply_notification_outcomes(jsonb)',
  p_schedule => '*/5 * * * *',
  p_config => '{"max_per_tick": 10000}',
  p_batch_size => 10, p_max_in_flight => 2, p_max_attempts => 6,
  p_backoff_base_seconds => 15, p_backoff_cap_seconds => 900,
  p_task_rate_limits => true,
  p_description => 'Queued outreach notifications: email through Resend (Idempotency-Key), in-app marked sent.');

-- The Resend bucket is shared with the bookings jobs (one provider account, one limit).
select jobs.size_rate_limits('outreach-notifications', '[{"key": "resend", "capacity": 1, "refill_per_second": 5}]');

select cron.schedule('outreach:scheduled-campaigns', '*/5 * * * *', 'select outreach.start_due_campaigns()');
select cron.schedule('outreach:gdpr', '30 3 * * *', 'select outreach.gdpr_cleanup()');

-- Named entry points for the SQL editor and the app's server (service_role), one per job of the
-- seed's scheduler.
create function public.process_pending_prospects() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('outreach-invitations') $$;
create function public.process_follow_ups() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('outreach-follow-ups') $$;
create function public.process_outbox() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('outreach-outbox') $$;
create function public.check_relations() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('outreach-relations') $$;
create function public.check_pending_notifications() returns jsonb language sql security definer
  set search_path = '' as $$ select jobs.run_now('outreach-notifications') $$;
create function public.execute_scheduled_campaigns() returns jsonb language sql security definer
  set search_path = '' as $$ select outreach.start_due_campaigns() $$;
create function public.run_gdpr_cleanup() returns jsonb language sql security definer
  set search_path = '' as $$ select outreach.gdpr_cleanup() $$;

revoke all on all functions in schema outreach from public, anon, authenticated;
revoke all on all tables in schema outreach from public, anon, authenticated;
revoke all on all sequences in schema outreach from public, anon, authenticated;
revoke execute on function public.start_campaign(bigint), public.process_pending_prospects(), public.process_follow_ups(),
  public.process_outbox(), public.check_relations(), public.check_pending_notifications(),
  public.execute_scheduled_campaigns(), public.run_gdpr_cleanup()
  from public, anon, authenticated;
grant execute on function public.start_campaign(bigint), public.process_pending_prospects(), public.process_follow_ups(),
  public.process_outbox(), public.check_relations(), public.check_pending_notifications(),
  public.execute_scheduled_campaigns(), public.run_gdpr_cleanup()
  to service_role;
