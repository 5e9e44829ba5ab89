// Workload W1 "token refresh drain" for the peer job systems, as the peer benchmark defines it
// (its workload module): table, job SQL and the post-run check.
// Strings only, so the orchestrator (Deno, postgres.js) and the peer worker (pg) share them.

export const PEER_DB = "bench_peers";

export const TABLE_SQL = `
create table oauth_tokens (
  id            bigserial primary key,
  provider      text        not null,
  refresh_token text        not null,
  access_token  text,
  expires_at    timestamptz not null,
  refreshed_at  timestamptz,
  refresh_count integer     not null default 0,
  lease_until   timestamptz
);
create index oauth_tokens_due_idx on oauth_tokens (expires_at) where refreshed_at is null;
`;

/** $1 = text[] of refresh tokens registered at the fake Google (the peer bench used random ones). */
export const SEED_SQL = `
insert into oauth_tokens (provider, refresh_token, access_token, expires_at)
select (array['google', 'instagram', 'tiktok'])[1 + g % 3],
       t.refresh_token,
       'stale_' || md5(random()::text),
       now() - (1 + random() * 1440) * interval '1 minute'
  from unnest($1::text[]) with ordinality as t(refresh_token, g)`;

export const APPLY_REFRESH = {
  name: "w1_apply_refresh",
  text: `update oauth_tokens
            set access_token = $2,
                expires_at = now() + make_interval(secs => $3),
                refreshed_at = now(),
                refresh_count = refresh_count + 1,
                lease_until = null
          where id = $1`,
};

export const LOAD_TOKEN = {
  name: "w1_load_token",
  text: "select refresh_token from oauth_tokens where id = $1",
};

export const VERIFY_SQL = `
select count(*)::int                                          as total,
       count(*) filter (where refreshed_at is not null)::int  as refreshed,
       count(*) filter (where refresh_count > 1)::int         as refreshed_more_than_once,
       extract(epoch from max(refreshed_at)) * 1000           as last_refreshed_ms
  from oauth_tokens`;
