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
