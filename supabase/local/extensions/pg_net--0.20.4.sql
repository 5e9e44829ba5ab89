-- =============================================================================================
-- pg_net 0.20.4 — LOCAL STAND-IN (Duework local stack only; never installed on a hosted project)
-- =============================================================================================
--
-- Why this exists: pg_net is a C extension with a background worker and is not packaged for
-- Debian, so the local stack cannot install the real one. Migrations nevertheless say
-- `create extension if not exists pg_net with schema extensions`, exactly as on hosted
-- Supabase. This SQL-only extension gives them the same surface as a fresh install of
-- supabase/pg_net 0.20.4 (sql/pg_net.sql): the same schema `net`, domain, UNLOGGED tables,
-- index, types, function signatures, defaults, return types, volatility and grants. The public
-- plpgsql bodies (http_get/http_post/http_delete, _await_response, _http_collect_response,
-- http_collect_response, check_worker_is_up) are pg_net's own, unchanged.
--
-- What differs, and why:
--   * pg_net's C functions are re-implemented in SQL/plpgsql (language differs, signature and
--     volatility do not):
--       - net._urlencode_string: curl_easy_escape (keep A-Za-z0-9-._~, %XX uppercase otherwise).
--       - net._encode_url_with_params_array: libcurl's URL API as pg_net calls it (set URL,
--         append each param with CURLU_APPENDQUERY, get URL), including its normalisation and
--         its `invalid URL "…": <curl_url_strerror>` errors, raised with SQLSTATE XX000 like
--         pg_net's ereport(ERROR) without an errcode. Checked against libcurl 7.88.
--       - net.wake(): pg_notify('pg_net_wake', ''). NOTIFY is delivered only at COMMIT, once per
--         transaction, which is pg_net's wake_at_commit; a rolled-back request is never seen.
--       - net.worker_restart(): reloads the config (as pg_net does, and returns its result) and
--         ends the worker's LISTEN connection; the worker (scripts/local/net-worker) takes that
--         as pg_net's got_restart: it finishes its current pass, exits and starts again 1 s
--         later. SECURITY DEFINER because the C original needs no privilege to restart the
--         worker and pg_terminate_backend does.
--       - net.wait_until_running(): polls every 50 ms for the worker's backend and raises after
--         30 s instead of waiting forever.
--   * net.check_worker_is_up() looks for application_name = 'pg_net 0.20.4 worker' in the current
--     database, because each local database may have its own worker (the worker is an ordinary
--     client backend here, not a background worker), with pg_net's message.
--   * Settings pg_net.batch_size (200), pg_net.ttl ('6 hours'), pg_net.database_name
--     ('postgres') and pg_net.username ('') are placeholders declared in the local stack's
--     postgresql.conf; the worker reads them like pg_net's worker does (see worker.ts). Change
--     them with ALTER SYSTEM and call net.worker_restart(), as on Supabase.
-- =============================================================================================

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

create schema if not exists net;

create domain net.http_method as text
check (
  value ilike 'get'
  or value ilike 'post'
  or value ilike 'delete'
);

-- Store pending requests. The background worker reads from here
-- API: Private
create unlogged table net.http_request_queue(
    id bigserial,
    method net.http_method not null,
    url text not null,
    headers jsonb,
    body bytea,
    timeout_milliseconds int not null
);

-- pg_net's own body, except that the worker is recognised by its application_name: the local
-- worker is a client backend, so there is no 'pg_net …' backend_type to match.
create or replace function net.check_worker_is_up() returns void as $$
begin
  if not exists (
    select pid from pg_catalog.pg_stat_activity
    where (application_name = 'pg_net 0.20.4 worker' and datname = pg_catalog.current_database())
       or backend_type ilike '%pg_net%'
  ) then
    raise exception using
      message = 'the pg_net background worker is not up'
    , detail  = 'the pg_net background worker is down due to an internal error and cannot process requests'
    , hint    = 'make sure that you didn''t modify any of pg_net internal tables';
  end if;
end
$$ language plpgsql;
comment on function net.check_worker_is_up() is 'raises an exception if the pg_net background worker is not up, otherwise it doesn''t return anything';

-- Associates a response with a request
-- API: Private
create unlogged table net._http_response(
    id bigint,
    status_code integer,
    content_type text,
    headers jsonb,
    content text,
    timed_out bool,
    error_msg text,
    created timestamptz not null default now()
);

create index on net._http_response (created);

-- Blocks until an http_request is complete
-- API: Private
create or replace function net._await_response(
    request_id bigint
)
    returns bool
    language plpgsql
as $$
declare
    rec net._http_response;
begin
    while rec is null loop
        select *
        into rec
        from net._http_response
        where id = request_id;

        if rec is null then
            -- Wait 50 ms before checking again
            perform pg_sleep(0.05);
        end if;
    end loop;

    return true;
end;
$$;


-- url encode a string
-- API: Private
-- Stand-in for the C function: curl_easy_escape over the string's bytes in the server encoding.
-- Not strict (the C one is not either) but returns NULL for NULL, like the C one.
create or replace function net._urlencode_string(string varchar)
    -- url encoded string
    returns text
    language sql
    immutable
as $$
  select case when string is null then null else coalesce((
    select pg_catalog.string_agg(
      case
        when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
          or b in (45, 46, 95, 126)                      -- 0-9 A-Z a-z - . _ ~
        then pg_catalog.chr(b)
        else '%' || pg_catalog.upper(pg_catalog.lpad(pg_catalog.to_hex(b), 2, '0'))
      end,
      '' order by i)
    from (
      select i, pg_catalog.get_byte(raw, i) as b
      from (select pg_catalog.convert_to(string::text, pg_catalog.current_setting('server_encoding')) as raw) r,
           pg_catalog.generate_series(0, pg_catalog.length(raw) - 1) as i
    ) bytes
  ), '') end
$$;

-- API: Private
-- Stand-in for the C function, which does, with libcurl's URL API:
--   curl_url_set(h, CURLUPART_URL, url, 0);
--   for each non-null param: curl_url_set(h, CURLUPART_QUERY, param, CURLU_APPENDQUERY);
--   curl_url_get(h, CURLUPART_URL, &full_url, 0);
-- and raises `invalid URL "<url>": <curl_url_strerror>` when libcurl rejects the URL. This
-- reproduces libcurl's parsing and normalisation (checked against libcurl 7.88): scheme
-- required and lower-cased, 1-3 slashes after it, userinfo kept, hostname validated and
-- percent-decoded, numeric IPv4 forms normalised, port validated (leading zeros dropped, an
-- empty port removed), "/" added for an empty path, dot segments removed, empty query and
-- fragment dropped, a query appended with "&" unless the existing one ends with "&", and the
-- %XX escapes of an appended part lower-cased (libcurl does that to URL parts it is given).
create or replace function net._encode_url_with_params_array(url text, params_array text[])
    -- url encoded string
    returns text
    language plpgsql
    immutable
as $$
declare
  -- schemes libcurl's URL API knows (it rejects the others with "Unsupported URL scheme")
  known_schemes constant text[] := array[
    'dict', 'file', 'ftp', 'ftps', 'gopher', 'gophers', 'http', 'https', 'imap', 'imaps',
    'ldap', 'ldaps', 'mqtt', 'pop3', 'pop3s', 'rtmp', 'rtmpe', 'rtmps', 'rtmpt', 'rtmpte',
    'rtmpts', 'rtsp', 'scp', 'sftp', 'smb', 'smbs', 'smtp', 'smtps', 'telnet', 'tftp'];
  m text[];
  scheme text;
  rest text;
  slashes int;
  authority text;
  userinfo text := null;
  hostport text;
  host text;
  port text := null;
  path text;
  query text := null;
  fragment text := null;
  p int;
  param text;
  segs text[];
  seg text;
  out_segs text[] := '{}';
  parts text[];
  nums numeric[];
  v numeric;
  bad constant text := 'invalid URL "%s": %s';
begin
  if url is null or params_array is null then
    return null;
  end if;

  -- scheme
  m := pg_catalog.regexp_match(url, '^([A-Za-z0-9][A-Za-z0-9+.-]{0,39}):(.*)$', 's');
  if m is null then
    raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Bad scheme');
  end if;
  scheme := pg_catalog.lower(m[1]);
  rest := m[2];
  if not scheme = any (known_schemes) then
    raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Unsupported URL scheme');
  end if;

  -- file: URLs are not sent by pg_net (http/https only); keep them as given, plus the query.
  if scheme = 'file' then
    m := pg_catalog.regexp_match(rest, '^([^?#]*)(\?[^#]*)?(#.*)?$', 's');
    path := m[1];
    query := pg_catalog.substr(m[2], 2);
    fragment := pg_catalog.substr(m[3], 2);
    authority := null;
  else
    slashes := pg_catalog.length(pg_catalog.substring(rest, '^/*'));
    if slashes < 1 or slashes > 3 then
      raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Unsupported number of slashes following scheme');
    end if;
    rest := pg_catalog.substr(rest, slashes + 1);
    m := pg_catalog.regexp_match(rest, '^([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$', 's');
    authority := m[1];
    path := m[2];
    query := pg_catalog.substr(m[3], 2);
    fragment := pg_catalog.substr(m[4], 2);

    -- userinfo: up to the first '@'
    p := pg_catalog.strpos(authority, '@');
    if p > 0 then
      userinfo := pg_catalog.substr(authority, 1, p - 1);
      hostport := pg_catalog.substr(authority, p + 1);
    else
      hostport := authority;
    end if;

    if hostport like '[%' then
      m := pg_catalog.regexp_match(hostport, '^(\[[0-9A-Fa-f:.]+(%25[A-Za-z0-9._~-]+)?\])(:(.*))?$');
      if m is null then
        raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Bad IPv6 address');
      end if;
      host := m[1];
      port := m[4];
    else
      p := pg_catalog.strpos(hostport, ':');
      if p > 0 then
        host := pg_catalog.substr(hostport, 1, p - 1);
        port := pg_catalog.substr(hostport, p + 1);
      else
        host := hostport;
      end if;
      -- percent-decode the hostname (valid printable ASCII escapes only)
      while host ~ '%[2-7][0-9A-Fa-f]' loop
        m := pg_catalog.regexp_match(host, '%([2-7][0-9A-Fa-f])');
        host := pg_catalog.replace(host, '%' || m[1], pg_catalog.chr(('x' || m[1])::bit(8)::int));
      end loop;
      if host = '' then
        raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'No host part in the URL');
      end if;
      if host ~ '[[:cntrl:] /:#?!@{}\[\]\\$''"^`*<>=;,+&()%]' then
        raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Bad hostname');
      end if;
      -- numeric IPv4 forms (1 to 4 decimal/octal/hex parts), as libcurl normalises them
      if host ~* '^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$' then
        parts := pg_catalog.string_to_array(host, '.');
        nums := '{}';
        foreach seg in array parts loop
          if seg ~* '^0x' then
            v := 0;
            for p in 3 .. pg_catalog.length(seg) loop
              v := v * 16 + pg_catalog.strpos('0123456789abcdef', pg_catalog.lower(pg_catalog.substr(seg, p, 1))) - 1;
            end loop;
          elsif seg ~ '^0[0-7]+$' then
            v := 0;
            for p in 2 .. pg_catalog.length(seg) loop
              v := v * 8 + pg_catalog.substr(seg, p, 1)::int;
            end loop;
          elsif seg ~ '^0[0-9]+$' then
            nums := null; -- not a number libcurl accepts: keep as a hostname
            exit;
          else
            v := seg::numeric;
          end if;
          nums := nums || v;
        end loop;
        if nums is not null then
          v := case pg_catalog.array_length(nums, 1)
            when 1 then case when nums[1] <= 4294967295 then nums[1] end
            when 2 then case when nums[1] <= 255 and nums[2] <= 16777215 then nums[1] * 16777216 + nums[2] end
            when 3 then case when nums[1] <= 255 and nums[2] <= 255 and nums[3] <= 65535
                             then nums[1] * 16777216 + nums[2] * 65536 + nums[3] end
            else case when nums[1] <= 255 and nums[2] <= 255 and nums[3] <= 255 and nums[4] <= 255
                      then nums[1] * 16777216 + nums[2] * 65536 + nums[3] * 256 + nums[4] end
          end;
          if v is not null then
            host := pg_catalog.format('%s.%s.%s.%s',
              pg_catalog.trunc(v / 16777216), pg_catalog.trunc(v / 65536) % 256,
              pg_catalog.trunc(v / 256) % 256, v % 256);
          end if;
        end if;
      end if;
    end if;

    if port is not null then
      if port = '' then
        port := null;
      elsif port !~ '^[0-9]+$' or port::numeric > 65535 then
        raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Port number was not a decimal number between 0 and 65535');
      else
        port := port::numeric::text;
      end if;
    end if;
  end if;

  if path ~ '[[:cntrl:] ]' then
    raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Bad path');
  end if;
  if query ~ '[[:cntrl:] ]' then
    raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Bad query');
  end if;
  if fragment ~ '[[:cntrl:] ]' then
    raise exception using errcode = 'XX000', message = pg_catalog.format(bad, url, 'Bad fragment');
  end if;

  -- path: "/" when empty, dot segments removed (RFC 3986 5.2.4, as libcurl's dedotdotify)
  if path = '' then
    path := '/';
  elsif path ~ '(^|/)\.\.?(/|$)' then
    segs := pg_catalog.string_to_array(path, '/');
    for p in 1 .. pg_catalog.array_length(segs, 1) loop
      seg := segs[p];
      if seg = '.' then
        if p = pg_catalog.array_length(segs, 1) then out_segs := out_segs || ''::text; end if;
      elsif seg = '..' then
        if pg_catalog.array_length(out_segs, 1) > 1 then
          out_segs := out_segs[1 : pg_catalog.array_length(out_segs, 1) - 1];
        end if;
        if p = pg_catalog.array_length(segs, 1) then out_segs := out_segs || ''::text; end if;
      else
        out_segs := out_segs || seg;
      end if;
    end loop;
    path := pg_catalog.array_to_string(out_segs, '/');
    if path not like '/%' then path := '/' || path; end if;
  end if;

  -- append the params (CURLU_APPENDQUERY); libcurl lower-cases the %XX of a part it is given
  foreach param in array params_array loop
    continue when param is null;
    -- split on '%' and lower-case the two hex digits that follow each one (no loop that
    -- depends on regex case behaviour under the server's locale)
    select pg_catalog.string_agg(
             case when t.i = 1 or pg_catalog.left(t.part, 2) !~ '^[0-9A-Fa-f]{2}$' then t.part
                  else pg_catalog.lower(pg_catalog.left(t.part, 2)) || pg_catalog.substr(t.part, 3) end,
             '%' order by t.i)
      into param
      from pg_catalog.unnest(pg_catalog.string_to_array(param, '%')) with ordinality as t(part, i);
    if query is not null and query <> '' then
      query := query || case when query like '%&' then '' else '&' end || param;
    else
      query := param;
    end if;
  end loop;

  return scheme || ':'
    || case when authority is null then '' else
         '//' || coalesce(userinfo || '@', '') || host || coalesce(':' || port, '') end
    || path
    || case when query is null or query = '' then '' else '?' || query end
    || case when fragment is null or fragment = '' then '' else '#' || fragment end;
end
$$;

-- Like pg_net's C function: reload the config (its result is the return value) and set
-- got_restart + the worker's latch. The local worker takes the end of its LISTEN connection as
-- that signal: it finishes its current pass, exits and starts again 1 s later. The pass's own
-- connection is left alone, so no pass is cut short. SECURITY DEFINER because the C original
-- needs no privilege and pg_terminate_backend does.
create or replace function net.worker_restart()
  returns bool
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  reloaded bool;
begin
  reloaded := pg_catalog.pg_reload_conf();
  perform pg_catalog.pg_terminate_backend(a.pid)
  from pg_catalog.pg_stat_activity a
  where a.application_name = 'pg_net 0.20.4 worker' and a.datname = pg_catalog.current_database()
    and a.query = 'listen pg_net_wake' and a.pid <> pg_catalog.pg_backend_pid();
  return reloaded;
end
$$;
comment on function net.worker_restart() is 'LOCAL STAND-IN: reloads the config and makes the net worker finish its pass and restart; returns the result of pg_reload_conf()';

create or replace function net.wait_until_running()
  returns void
  language plpgsql
as $$
declare
  deadline timestamptz := pg_catalog.clock_timestamp() + interval '30 seconds';
begin
  while not exists (
    select 1 from pg_catalog.pg_stat_activity
    where application_name = 'pg_net 0.20.4 worker' and datname = pg_catalog.current_database()
      and pid <> pg_catalog.pg_backend_pid()
  ) loop
    if pg_catalog.clock_timestamp() > deadline then
      raise exception using
        message = 'the pg_net worker did not start within 30 seconds',
        detail  = 'no backend with application_name ''pg_net 0.20.4 worker'' is connected',
        hint    = 'the local stack runs it as scripts/local/net-worker/main.ts; is it running against this database?';
    end if;
    perform pg_catalog.pg_sleep(0.05);
  end loop;
end
$$;
comment on function net.wait_until_running() is 'waits until the worker is running';

create or replace function net.wake()
  returns void
  language sql
as $$
  -- delivered only when the calling transaction commits; never on rollback
  select pg_catalog.pg_notify('pg_net_wake', '');
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_get(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    -- Add to the request queue
    insert into net.http_request_queue(method, url, headers, timeout_milliseconds)
    values (
        'GET',
        net._encode_url_with_params_array(url, params_array),
        headers,
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_post(
    -- url for the request
    url text,
    -- body of the POST request
    body jsonb default '{}'::jsonb,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int DEFAULT 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
    content_type text;
begin

    -- Exctract the content_type from headers
    select
        header_value into content_type
    from
        jsonb_each_text(coalesce(headers, '{}'::jsonb)) r(header_name, header_value)
    where
        lower(header_name) = 'content-type'
    limit
        1;

    -- If the user provided new headers and omitted the content type
    -- add it back in automatically
    if content_type is null then
        select headers || '{"Content-Type": "application/json"}'::jsonb into headers;
    end if;

    -- Confirm that the content-type is set as "application/json"
    if content_type <> 'application/json' then
        raise exception 'Content-Type header must be "application/json"';
    end if;

    select
        coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into
        params_array
    from
        jsonb_each_text(params);

    -- Add to the request queue
    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values (
        'POST',
        net._encode_url_with_params_array(url, params_array),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Interface to make an async request
-- API: Public
create or replace function net.http_delete(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000,
    -- optional body of the request
    body jsonb default NULL
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    -- Add to the request queue
    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values (
        'DELETE',
        net._encode_url_with_params_array(url, params_array),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Lifecycle states of a request (all protocols)
-- API: Public
create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');


-- A response from an HTTP server
-- API: Public
create type net.http_response AS (
    status_code integer,
    headers jsonb,
    body text
);

-- State wrapper around responses
-- API: Public
create type net.http_response_result as (
    status net.request_status,
    message text,
    response net.http_response
);


-- Collect respones of an http request
-- API: Private
create or replace function net._http_collect_response(
    -- request_id reference
    request_id bigint,
    -- when `true`, return immediately. when `false` wait for the request to complete before returning
    async bool default true
)
    -- http response composite wrapped in a result type
    returns net.http_response_result
    language plpgsql
as $$
declare
    rec net._http_response;
    req_exists boolean;
begin

    if not async then
        perform net._await_response(request_id);
    end if;

    select *
    into rec
    from net._http_response
    where id = request_id;

    if rec is null or rec.error_msg is not null then
        -- The request is either still processing or the request_id provided does not exist

        -- TODO: request in progress is indistinguishable from request that doesn't exist

        -- No request matching request_id found
        return (
            'ERROR',
            coalesce(rec.error_msg, 'request matching request_id not found'),
            null
        )::net.http_response_result;

    end if;

    -- Return a valid, populated http_response_result
    return (
        'SUCCESS',
        'ok',
        (
            rec.status_code,
            rec.headers,
            rec.content
        )::net.http_response
    )::net.http_response_result;
end;
$$;

create or replace function net.http_collect_response(
    -- request_id reference
    request_id bigint,
    -- when `true`, return immediately. when `false` wait for the request to complete before returning
    async bool default true
)
    -- http response composite wrapped in a result type
    returns net.http_response_result
    language plpgsql
as $$
begin
  raise notice 'The net.http_collect_response function is deprecated.';
  select net._http_collect_response(request_id, async);
end;
$$;

grant usage on schema net to PUBLIC;
grant all on all sequences in schema net to PUBLIC;
grant all on all tables in schema net to PUBLIC;
