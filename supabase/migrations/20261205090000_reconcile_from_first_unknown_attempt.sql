-- Reconcile from the first attempt whose outcome is unknown, not from the previous attempt.
--
-- Twilio and Unipile have no idempotency key, so a send whose outcome is unknown (a timeout, a
-- connection cut after the provider acted, a function killed after the provider's answer) leaves
-- its row `sending` and the next attempt looks the message up from `reconcile_since` before
-- sending again. Until now each attempt moved the row's attempt start to its own start. When an
-- attempt ended without sending and without a lookup that answered (the lookup itself failed, or
-- the function was killed before it), the attempt after it looked back only to that attempt's
-- start: it missed the message the first attempt had made and sent a second one. `npm run chaos`
-- found it (27 WhatsApp messages sent twice in a 5,000-item drain with process faults, 41 with 20 %
-- provider faults). Now the start of the first unknown attempt is kept until an outcome is known
-- (for invitations the outcome writes clear it; a reminder or message row leaves `sending` only
-- with an outcome), and every later attempt looks back to it.
--
-- Only the three context functions change; each is the earlier body with that one assignment.

create or replace function bookings.reminder_context(p_tasks jsonb)
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
           -- A row still sending had an attempt whose outcome is unknown: its start is kept, so
           -- every later attempt looks back to the first such attempt, not only the previous one.
           attempt_started_at = case when r.moot is not null then x.attempt_started_at
                                     when r.notification_status = 'sending' then coalesce(x.attempt_started_at, now())
                                     else now() end,
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

create or replace function outreach.invitation_context(p_tasks jsonb)
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
       -- Set while an attempt's outcome is unknown (outcomes clear it): kept, not moved to this
       -- attempt, so the lookup reaches back to the first unknown attempt.
       set invite_attempt_started_at = case when k.too_long is null then coalesce(x.invite_attempt_started_at, now())
                                            else x.invite_attempt_started_at end,
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

create or replace function outreach.message_context(p_tasks jsonb)
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
           attempt_started_at = case when k.no_recipient is not null then x.attempt_started_at
                                     when k.row_status = 'sending' then coalesce(x.attempt_started_at, now())
                                     else now() end,
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
           attempt_started_at = case when k.no_recipient is not null then x.attempt_started_at
                                     when k.row_status = 'sending' then coalesce(x.attempt_started_at, now())
                                     else now() end,
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
