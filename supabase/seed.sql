-- Demo data for `npm start` (the dev profile only; applied on every start, so idempotent).
-- Five creators whose YouTube access tokens have already expired, plus one whose Google grant
-- was revoked. Their refresh tokens exist in the provider sandbox (scripts/local/sandbox/fixtures.json),
-- so the first youtube-token-refresh tick (or `select refresh_expired_youtube_tokens();`)
-- refreshes five and marks the revoked one needs_reauth.
insert into public.social_accounts
  (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at, scopes)
values
  ('demo-creator-1', 'youtube', 'ya29.demo-expired-1', '1//demo-refresh-youtube-1', now() - interval '2 hours',
   '{https://www.googleapis.com/auth/youtube.readonly}'),
  ('demo-creator-2', 'youtube', 'ya29.demo-expired-2', '1//demo-refresh-youtube-2', now() - interval '1 day',
   '{https://www.googleapis.com/auth/youtube.readonly}'),
  ('demo-creator-3', 'youtube', 'ya29.demo-expired-3', '1//demo-refresh-youtube-3', now() - interval '5 minutes',
   '{https://www.googleapis.com/auth/youtube.readonly}'),
  ('demo-creator-4', 'youtube', 'ya29.demo-expiring-4', '1//demo-refresh-youtube-4', now() + interval '5 minutes',
   '{https://www.googleapis.com/auth/youtube.readonly}'),
  ('demo-creator-5', 'youtube', null, '1//demo-refresh-youtube-5', null,
   '{https://www.googleapis.com/auth/youtube.readonly}'),
  ('demo-creator-revoked', 'youtube', 'ya29.demo-expired-6', '1//demo-refresh-youtube-revoked',
   now() - interval '3 days', '{https://www.googleapis.com/auth/youtube.readonly}')
on conflict (creator_unique_identifier, platform) do nothing;

-- Three TikTok creators whose refresh tokens the sandbox's fake TikTok knows (they rotate on every
-- refresh), one whose grant was revoked and one whose refresh token has expired:
-- `select refresh_expired_tiktok_tokens();` refreshes three and marks two needs_reauth.
insert into public.social_accounts
  (creator_unique_identifier, platform, access_token, refresh_token, access_token_expires_at, scopes)
values
  ('demo-tiktok-1', 'tiktok', 'act.demo-expired-1', 'rft.demo-tiktok-1', now() - interval '1 hour', '{user.info.basic,video.list}'),
  ('demo-tiktok-2', 'tiktok', 'act.demo-expiring-2', 'rft.demo-tiktok-2', now() + interval '3 hours', '{user.info.basic,video.list}'),
  ('demo-tiktok-3', 'tiktok', null, 'rft.demo-tiktok-3', null, '{user.info.basic}'),
  ('demo-tiktok-revoked', 'tiktok', 'act.demo-expired-4', 'rft.demo-tiktok-revoked', now() - interval '2 days',
   '{user.info.basic,video.list}'),
  ('demo-tiktok-expired', 'tiktok', 'act.demo-expired-5', 'rft.demo-tiktok-expired', now() - interval '200 days',
   '{user.info.basic,video.list}')
on conflict (creator_unique_identifier, platform) do nothing;

-- Instagram demo creators and their stored reels, matching the sandbox's fake Instagram Graph
-- ("instagram_graph" in scripts/local/sandbox/fixtures.json): creators 1-3 and "new" are fine,
-- "revoked" and "expired" hold tokens Graph refuses (190), creator 2's reel 17900000000002003 was
-- deleted on Instagram (100/33) and creator 3's reel 17900000000003008 has copyrighted audio
-- (no media_url). Long-lived tokens live 60 days; expiry = issue time (fixture age) + 60 days.
-- The first instagram-reel-urls tick (`select refresh_instagram_reel_urls();`) skips creator 1's
-- reels 4 and 5 (their stored URLs are valid for 5 more days) and fetches the other 22.
insert into public.social_accounts
  (creator_unique_identifier, platform, access_token, access_token_expires_at, scopes)
select a.creator, 'instagram', a.token, now() - make_interval(secs => a.age_seconds) + interval '60 days',
       '{instagram_business_basic}'
  from (values
    ('demo-creator-1', 'IGAAdemo-ig-token-1', 4320000),
    ('demo-creator-2', 'IGAAdemo-ig-token-2', 5011200),
    ('demo-creator-3', 'IGAAdemo-ig-token-3', 172800),
    ('demo-creator-revoked', 'IGAAdemo-ig-token-revoked', 2592000),
    ('demo-creator-expired', 'IGAAdemo-ig-token-expired', 5270400),
    ('demo-creator-new', 'IGAAdemo-ig-token-young', 3600)) a (creator, token, age_seconds)
on conflict (creator_unique_identifier, platform) do nothing;

insert into public.instagram_reels (account_id, media_id, media_url, thumbnail_url, url_expires_at, refreshed_at)
select a.id, r.media_id, u.media_url, u.thumbnail_url, instagram.signed_url_expiry(u.media_url),
       case when u.media_url is not null then now() - interval '1 day' end
  from (values
    ('demo-creator-1', '17900000000001001', null), ('demo-creator-1', '17900000000001002', null),
    ('demo-creator-1', '17900000000001003', interval '-1 day'),
    ('demo-creator-1', '17900000000001004', interval '5 days'), ('demo-creator-1', '17900000000001005', interval '5 days'),
    ('demo-creator-2', '17900000000002001', interval '1 day'), ('demo-creator-2', '17900000000002002', null),
    ('demo-creator-2', '17900000000002003', null), ('demo-creator-2', '17900000000002004', null),
    ('demo-creator-3', '17900000000003001', null), ('demo-creator-3', '17900000000003002', null),
    ('demo-creator-3', '17900000000003003', null), ('demo-creator-3', '17900000000003004', null),
    ('demo-creator-3', '17900000000003005', null), ('demo-creator-3', '17900000000003006', null),
    ('demo-creator-3', '17900000000003007', null), ('demo-creator-3', '17900000000003008', null),
    ('demo-creator-revoked', '17900000000004001', null), ('demo-creator-revoked', '17900000000004002', null),
    ('demo-creator-revoked', '17900000000004003', null),
    ('demo-creator-expired', '17900000000005001', null),
    ('demo-creator-new', '17900000000006001', null), ('demo-creator-new', '17900000000006002', null),
    ('demo-creator-new', '17900000000006003', null)) r (creator, media_id, valid_for)
  join public.social_accounts a on a.creator_unique_identifier = r.creator and a.platform = 'instagram'
  cross join lateral (
    select case when r.valid_for is not null then format('https://scontent.cdninstagram.com/v/demo/%s.mp4?oh=demo&oe=%s',
                r.media_id, to_hex(extract(epoch from now() + r.valid_for)::bigint)) end as media_url,
           case when r.valid_for is not null then format('https://scontent.cdninstagram.com/v/demo/%s.jpg?oh=demo&oe=%s',
                r.media_id, to_hex(extract(epoch from now() + r.valid_for)::bigint)) end as thumbnail_url) u
on conflict (account_id, media_id) do nothing;

-- Bookings demo (supabase/migrations/20261202100000_bookings.sql), created once (the first start;
-- times relative to it), with the reminder jobs' send windows off (below). Right after `npm start`:
--   select send_booking_reminders();  -- 24 h reminders: Ana and Ben on WhatsApp and email; Dev's
--                                     -- WhatsApp number is one Twilio refuses (21211: dead, with a
--                                     -- readable error) while his email goes; Ana's event in 40 h waits
--   select send_payment_reminders();  -- balance due within 3 days: Ben (both channels), Chloé (email)
--   select run_all_cleanup_jobs();    -- cancels Ben's unpaid pending booking (30 h old; the 2 h old one
--                                     -- stays) and emails him, deletes 3 old read notifications, 3
--                                     -- expired OTPs and 2 old audit logs (the critical one is kept)
-- The phones and addresses are the sandbox's (scripts/local/sandbox/fixtures.json: twilio, resend).
do $$
begin
  if exists (select 1 from public.clients where email like '%@demo.duework.test') then
    return;
  end if;
  -- The demo's reminders go at any hour: messages to clients wait for 08:00-21:00 in the client's
  -- zone (docs/bookings.md "Send windows"), and Ana, Ben, Chloé and Dev live in four zones, so at
  -- most hours some of them would wait for a morning. Windows as deployed again:
  --   update jobs.job set config = config - 'send_window' where name in ('booking-reminders', 'payment-reminders', 'booking-notices');
  update jobs.job set config = config || '{"send_window": null}'
   where name in ('booking-reminders', 'payment-reminders', 'booking-notices');
  insert into public.performers (name, email, phone, whatsapp_opt_in, time_zone) values
    ('The Jazz Trio', 'jazz@demo.duework.test', '+447700900100', true, 'Europe/London'),
    ('DJ Nova', 'nova@demo.duework.test', '+14155550100', false, 'America/New_York');
  insert into public.clients (name, email, phone, whatsapp_opt_in, time_zone) values
    ('Ana', 'ana@demo.duework.test', '+447700900201', true, 'Europe/London'),
    ('Ben', 'ben@demo.duework.test', '+14155550202', true, 'America/New_York'),
    ('Chloé', 'chloe@demo.duework.test', '+33612345203', false, 'Europe/Paris'),
    ('Dev', 'dev@demo.duework.test', '+15005550001', true, 'Asia/Kolkata');

  insert into public.bookings (client_id, performer_id, status, event_at, deposit_paid_at, balance_due, currency,
                               created_at, cancelled_at)
  select c.id, p.id, b.status, now() + b.event_in, case when b.status <> 'pending' then now() - interval '7 days' end,
         b.balance, b.currency, now() - b.age, null
    from (values
      ('ana@demo.duework.test', 'The Jazz Trio', 'confirmed', interval '20 hours', 0, 'GBP', interval '30 days'),
      ('ben@demo.duework.test', 'DJ Nova', 'confirmed', interval '5 hours', 15000, 'USD', interval '20 days'),
      ('chloe@demo.duework.test', 'The Jazz Trio', 'confirmed', interval '60 hours', 25000, 'EUR', interval '10 days'),
      ('dev@demo.duework.test', 'DJ Nova', 'confirmed', interval '10 hours', 0, 'INR', interval '12 days'),
      ('ana@demo.duework.test', 'DJ Nova', 'confirmed', interval '40 hours', 0, 'GBP', interval '5 days'),
      ('ana@demo.duework.test', 'The Jazz Trio', 'confirmed', interval '-2 hours', 0, 'GBP', interval '40 days'),
      ('ben@demo.duework.test', 'The Jazz Trio', 'pending', interval '14 days', 50000, 'USD', interval '30 hours'),
      ('chloe@demo.duework.test', 'DJ Nova', 'pending', interval '21 days', 40000, 'EUR', interval '2 hours'))
      b (email, performer, status, event_in, balance, currency, age)
    join public.clients c on c.email = b.email
    join public.performers p on p.name = b.performer;

  insert into public.notifications (client_id, kind, channel, status, read_at, created_at)
  select c.id, 'welcome', 'in_app', 'delivered', n.read_at, n.created_at
    from public.clients c,
         (values (now() - interval '39 days', now() - interval '40 days'), (now() - interval '35 days', now() - interval '36 days'),
                 (now() - interval '31 days', now() - interval '45 days'), (null, now() - interval '50 days'),
                 (now() - interval '1 day', now() - interval '2 days')) n (read_at, created_at)
   where c.email = 'ana@demo.duework.test';

  insert into public.otp_codes (phone, code_hash, expires_at, created_at) values
    ('+447700900201', 'demo-hash-1', now() - interval '2 hours', now() - interval '2 hours 10 minutes'),
    ('+14155550202', 'demo-hash-2', now() - interval '1 day', now() - interval '1 day 10 minutes'),
    ('+33612345203', 'demo-hash-3', now() - interval '5 minutes', now() - interval '15 minutes'),
    ('+15005550001', 'demo-hash-4', now() + interval '8 minutes', now() - interval '2 minutes');

  insert into public.audit_logs (action, severity, actor, details, created_at) values
    ('booking.updated', 'info', 'demo', '{}', now() - interval '120 days'),
    ('login.failed', 'warning', 'demo', '{}', now() - interval '95 days'),
    ('payout.override', 'critical', 'demo', '{}', now() - interval '200 days'),
    ('booking.created', 'info', 'demo', '{}', now() - interval '3 days');
end;
$$;

-- Outreach demo (supabase/migrations/20261203100000_outreach.sql, docs/outreach.md), created once,
-- with the LinkedIn messages' send window off (below).
-- The LinkedIn accounts and members are the sandbox's fake Unipile ("unipile" in
-- scripts/local/sandbox/fixtures.json). Right after `npm start`:
--   select process_pending_prospects();   -- invites Jane, Omar and Li from Dana's account (one
--                                          -- profile lookup and one POST /users/invite each); the
--                                          -- same run tries Omar from Dario's account, which Unipile
--                                          -- reports disconnected: that account is marked
--                                          -- needs_reconnect after one call and Dario is told
--   select check_relations();             -- Sam (invited two days ago) is among Dana's relations:
--                                          -- connected, first follow-up due in 24 h
--   select execute_scheduled_campaigns(); -- "Founders" was scheduled 5 minutes ago: it runs and
--                                          -- invites María
--   select process_outbox();              -- the message queued to Sam goes, once
--   select check_pending_notifications(); -- the in-app notices are marked sent, the emails go
--                                          -- through the fake Resend
--   select run_gdpr_cleanup();            -- erases the lead who asked (and their rows), anonymises
--                                          -- a prospect closed over a year ago
-- Accept the invitations on "LinkedIn" (the fake fires new_relation at unipile-webhook):
--   curl -X POST <sandbox_url>/__state/unipile -d '{"accept": {"account_id": "DwLocalLinkedInAcct001"}}'
do $$
declare
  v_dana uuid := '00000000-0000-4000-8000-00000000d001';
  v_dario uuid := '00000000-0000-4000-8000-00000000d002';
  v_a bigint;
  v_b bigint;
  v_ops bigint;
  v_founders bigint;
  v_gone bigint;
begin
  if exists (select 1 from public.linkedin_accounts where unipile_account_id = 'DwLocalLinkedInAcct001') then
    return;
  end if;
  -- The demo's LinkedIn messages go at any hour (docs/outreach.md "Send windows": 08:00-21:00 in
  -- the prospect's zone, else the account's, UTC here). Windows as deployed again:
  --   update outreach.settings set send_window_start = '08:00', send_window_end = '21:00';
  update outreach.settings set send_window_start = null, send_window_end = null;
  insert into auth.users (id, email) values (v_dana, 'dana@demo.duework.test'), (v_dario, 'dario@demo.duework.test')
  on conflict (id) do nothing;
  insert into public.linkedin_accounts (user_id, unipile_account_id, display_name)
  values (v_dana, 'DwLocalLinkedInAcct001', 'Dana Duework') returning id into v_a;
  insert into public.linkedin_accounts (user_id, unipile_account_id, display_name)
  values (v_dario, 'DwLocalLinkedInAcct002', 'Dario Disconnected') returning id into v_b;

  insert into public.outreach_campaigns (user_id, linkedin_account_id, name, status, started_at)
  values (v_dana, v_a, 'Ops leaders', 'running', now() - interval '2 days') returning id into v_ops;
  insert into public.outreach_campaigns (user_id, linkedin_account_id, name, status, scheduled_start_at)
  values (v_dana, v_a, 'Founders', 'scheduled', now() - interval '5 minutes') returning id into v_founders;
  insert into public.outreach_campaigns (user_id, linkedin_account_id, name, status, started_at)
  values (v_dario, v_b, 'Dario''s pilots', 'running', now() - interval '1 day') returning id into v_gone;

  insert into public.outreach_templates (campaign_id, step, body)
  select c.id, t.step, t.body
    from (values (v_ops), (v_founders), (v_gone)) c (id)
   cross join (values
     (0, 'Hi {first_name}, I help teams like {company} move their scheduled jobs into Postgres. Happy to connect?'),
     (1, 'Thanks for connecting, {first_name}! How does {company} run its background jobs today?'),
     (2, '{first_name}, a two-page case study in case it is useful: cron scripts to Postgres in a day.'),
     (3, 'Would 15 minutes next week be useful, {first_name}?'),
     (4, 'Last note from me, {full_name}: reply any time if background jobs become a priority.')) t (step, body);

  insert into public.prospects (campaign_id, user_id, first_name, last_name, company, title, public_identifier,
                                provider_id, status, invited_at, invite_result)
  values
    (v_ops, v_dana, 'Jane', 'Doe', 'Northwind', 'Head of Operations', 'jane-doe-duework', null, 'pending', null, null),
    (v_ops, v_dana, 'Omar', 'Haddad', 'Haddad Logistics', 'Founder', 'omar-haddad-duework', null, 'pending', null, null),
    (v_ops, v_dana, 'Li', 'Wei', 'Contoso', 'Product Manager', 'li-wei-duework', null, 'pending', null, null),
    (v_ops, v_dana, 'Sam', 'Okafor', 'Tailspin', 'Sales Director', 'sam-okafor-duework',
     'ACoAAB1dwDemoProspect000000000000000005', 'connection_request_sent', now() - interval '2 days', 'sent'),
    (v_founders, v_dana, 'María', 'García', 'Fabrikam', 'CTO', 'maria-garcia-duework', null, 'pending', null, null),
    (v_gone, v_dario, 'Omar', 'Haddad', 'Haddad Logistics', 'Founder', 'omar-haddad-duework', null, 'pending', null, null);
  -- A lead who asked to be erased, and one whose campaign closed over a year ago.
  insert into public.prospects (campaign_id, user_id, first_name, last_name, company, public_identifier, status,
                                status_reason, updated_at)
  values (v_ops, v_dana, 'Former', 'Lead', 'Initech', 'former-lead-duework', 'failed', 'not interested', now() - interval '10 days'),
         (v_ops, v_dana, 'Old', 'Prospect', 'Globex', 'old-prospect-duework', 'finished', 'no more follow-ups in the sequence',
          now() - interval '400 days');
  insert into public.gdpr_erasure_requests (user_id, subject_public_identifier) values (v_dana, 'former-lead-duework');

  insert into public.outreach_outbox (user_id, linkedin_account_id, prospect_id, text)
  select v_dana, v_a, p.id, 'Thanks for the intro, Sam. Here is the two-page overview I mentioned.'
    from public.prospects p where p.campaign_id = v_ops and p.public_identifier = 'sam-okafor-duework';
  insert into public.outreach_notifications (user_id, channel, kind, subject, body, email_to) values
    (v_dana, 'in_app', 'welcome', 'Welcome to outreach', 'Your LinkedIn account is connected.', null),
    (v_dana, 'email', 'weekly_summary', 'Your outreach this week', 'Invitations: 4. Accepted: 1. Replies: 0.',
     'dana@demo.duework.test');
end;
$$;
