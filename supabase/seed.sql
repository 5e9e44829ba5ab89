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
