-- Database for the PostgREST throughput part (bench/postgrest.sh), loaded into a fresh database
-- with pg_auth and pgcrypto. One tiny table served by every PostgREST configuration, the
-- pre-request functions compared with auth.authenticate (no-op, plpgsql JWT, plain-text sessions
-- table), and the credentials each configuration is called with (bench_rest.credentials, read
-- back by postgrest.sh).
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- Roles are cluster-wide; the bench cluster (port 5498) holds only bench databases.
DO $$ BEGIN CREATE ROLE authenticator LOGIN NOINHERIT; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE web_anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE web_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
ALTER ROLE authenticator LOGIN NOINHERIT NOSUPERUSER;
GRANT web_anon, web_user TO authenticator;

-- What every request reads: GET /items?limit=1.
CREATE SCHEMA api;
CREATE TABLE api.items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO api.items SELECT i, 'item ' || i FROM generate_series(1, 10) i;
ANALYZE api.items;
GRANT USAGE ON SCHEMA api TO web_anon, web_user;
GRANT SELECT ON api.items TO web_anon, web_user;

-- For the check before the load: who the request ran as, and its claims.
CREATE FUNCTION api.whoami() RETURNS json LANGUAGE sql STABLE
AS $$ SELECT json_build_object('role', current_user, 'claims', current_setting('request.jwt.claims', true)) $$;
GRANT EXECUTE ON FUNCTION api.whoami() TO web_anon, web_user;

-- The pre-request functions pg_auth is compared with (PostgREST calls them as web_anon).
CREATE SCHEMA bench_rest;
GRANT USAGE ON SCHEMA bench_rest TO web_anon, web_user;

-- (e) A pre-request that does nothing: the price of one more statement per request.
CREATE FUNCTION bench_rest.noop() RETURNS void LANGUAGE sql AS 'select';

-- (d) The same check as (c) written in plpgsql over pgcrypto, as lean as a correct one can be:
-- the JWT from the access_token cookie, HMAC-SHA256 over "header.payload" compared in base64url
-- (the signature is never decoded), the payload decoded as json (not jsonb: no re-serialisation),
-- exp checked with pg_auth's 30 s leeway, then role and claims set for the transaction in one
-- statement. It does less than pg_auth: it ignores the header (a fixed HS256 secret makes alg
-- irrelevant to the MAC check), does not check nbf/iat, does not refuse superuser roles itself
-- (set_config('role') still checks the authenticator's membership), compares the MAC with a
-- non-constant-time <>, and reads its secret from a GUC that every role can SHOW — the usual
-- pgjwt-style set-up. No cookie: anonymous, PostgREST's db-anon-role stays.
CREATE FUNCTION bench_rest.authenticate_plpgsql() RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    token  text := nullif(current_setting('request.cookies', true), '')::json ->> 'access_token';
    parts  text[];
    claims json;
BEGIN
    IF token IS NULL OR token = '' THEN
        RETURN;
    END IF;
    parts := string_to_array(token, '.');
    -- A 32-byte MAC is 44 base64 characters: no line break to strip; '=' is dropped by translate.
    IF cardinality(parts) <> 3
       OR translate(encode(public.hmac(parts[1] || '.' || parts[2], current_setting('app.jwt_secret'), 'sha256'),
                           'base64'), '+/=', '-_') <> parts[3] THEN
        RAISE SQLSTATE 'PT401' USING MESSAGE = 'invalid token';
    END IF;
    claims := convert_from(decode(rpad(translate(parts[2], '-_', '+/'), (length(parts[2]) + 3) / 4 * 4, '='),
                                  'base64'), 'UTF8')::json;
    IF (claims ->> 'exp')::numeric + 30 <= extract(epoch FROM now()) THEN
        RAISE SQLSTATE 'PT401' USING MESSAGE = 'token expired';
    END IF;
    PERFORM set_config('role', coalesce(claims ->> 'role', current_user), true),
            set_config('request.jwt.claims', claims::text, true);
END
$$;
GRANT EXECUTE ON FUNCTION bench_rest.noop(), bench_rest.authenticate_plpgsql() TO web_anon, web_user;

-- (h) The hand-written session pattern used before pg_auth (as in the PostgREST sessions
-- example): the session token kept in plain text as the primary key of a table, looked up by a
-- SECURITY DEFINER function (the table is not readable by web_anon) with a fixed search_path,
-- called from a plpgsql pre-request that switches role and sets the claims. The pre-request
-- itself cannot be SECURITY DEFINER: PostgreSQL refuses to set `role` inside one ("cannot set
-- parameter "role" within security-definer function"), hence the two functions, as in the
-- example. No cookie: anonymous; an unknown or expired token: PT401. The table holds (f)'s
-- token and the same filler tokens as auth.sessions (below), so both look up among as many rows.
CREATE TABLE bench_rest.plain_sessions (
    token      text PRIMARY KEY,
    user_id    uuid NOT NULL,
    role       text NOT NULL,
    email      text,
    expires_at timestamptz NOT NULL
);
REVOKE ALL ON bench_rest.plain_sessions FROM PUBLIC;

CREATE FUNCTION bench_rest.plain_session(session_token text)
RETURNS TABLE (user_id uuid, role text, email text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.user_id, s.role, s.email FROM bench_rest.plain_sessions s
    WHERE s.token = session_token AND s.expires_at > now()
$$;
REVOKE ALL ON FUNCTION bench_rest.plain_session(text) FROM PUBLIC;

CREATE FUNCTION bench_rest.authenticate_sessions_example() RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    token text := nullif(current_setting('request.cookies', true), '')::json ->> 'access_token';
    s     record;
BEGIN
    IF token IS NULL OR token = '' THEN
        RETURN;
    END IF;
    SELECT * INTO s FROM bench_rest.plain_session(token);
    IF NOT FOUND THEN
        RAISE SQLSTATE 'PT401' USING MESSAGE = 'invalid session';
    END IF;
    PERFORM set_config('role', s.role, true),
            set_config('request.jwt.claims', json_build_object('sub', s.user_id, 'role', s.role, 'email', s.email)::text, true);
END
$$;
REVOKE ALL ON FUNCTION bench_rest.authenticate_sessions_example() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bench_rest.plain_session(text), bench_rest.authenticate_sessions_example() TO web_anon, web_user;

-- Credentials. The ring key signs the cookie JWT of (c), and (d) verifies the same token with
-- the same secret. PostgREST's jwt-secret for (b) is a separate random HS256 secret; its token
-- carries the same claims. The session of (f) comes from a real auth.login.
SELECT auth.generate_key('HS256', 'bench-rest-hs256');
SELECT auth.register('bench-user@example.com', 'bench password 1');   -- role: pg_auth.user_role = web_user

CREATE TABLE bench_rest.credentials (name text PRIMARY KEY, value text NOT NULL);
INSERT INTO bench_rest.credentials
SELECT 'postgrest_secret', encode(gen_random_bytes(32), 'hex');        -- 64 characters

-- Claims shared by the three JWTs: the user's id as sub, role web_user, a day to live.
CREATE TEMP TABLE claims AS
SELECT jsonb_build_object('sub', u.id, 'role', 'web_user', 'email', u.email,
                          'iat', extract(epoch FROM now())::bigint,
                          'exp', extract(epoch FROM now())::bigint + 86400) AS c
FROM auth.users u WHERE u.email = 'bench-user@example.com';

INSERT INTO bench_rest.credentials
SELECT 'bearer_jwt', auth.sign_jwt(c, (SELECT value FROM bench_rest.credentials WHERE name = 'postgrest_secret'))
FROM claims
UNION ALL
SELECT 'cookie_jwt', auth.sign_jwt(c) FROM claims
UNION ALL
SELECT 'session_token', auth.login('bench-user@example.com', 'bench password 1') ->> 'token';

-- Filler sessions (psql variable filler_sessions, default 10000) so that neither (f)'s nor (h)'s
-- lookup runs on a one-row table: random tokens of auth.login's shape, owned by the bench user,
-- stored hashed in auth.sessions and in plain text in bench_rest.plain_sessions; then (f)'s own
-- session in bench_rest.plain_sessions, with the same token.
\if :{?filler_sessions}
\else
\set filler_sessions 10000
\endif
CREATE TEMP TABLE filler AS
SELECT 'pas_' || rtrim(translate(encode(gen_random_bytes(32), 'base64'), '+/', '-_'), '=') AS token
FROM generate_series(1, :filler_sessions);
INSERT INTO auth.sessions (token_hash, user_id, expires_at, idle_expires_at)
SELECT sha256(convert_to(f.token, 'UTF8')), u.id, now() + interval '7 days', now() + interval '1 day'
FROM filler f, auth.users u WHERE u.email = 'bench-user@example.com';
INSERT INTO bench_rest.plain_sessions
SELECT f.token, u.id, u.role, u.email, now() + interval '7 days'
FROM filler f, auth.users u WHERE u.email = 'bench-user@example.com'
UNION ALL
SELECT c.value, u.id, u.role, u.email, now() + interval '7 days'
FROM bench_rest.credentials c, auth.users u WHERE c.name = 'session_token' AND u.email = 'bench-user@example.com';
VACUUM (ANALYZE) auth.sessions;
VACUUM (ANALYZE) bench_rest.plain_sessions;

-- (d)'s secret: the ring key's, in a GUC on the authenticator for this database.
DO $$
BEGIN
    EXECUTE format('ALTER ROLE authenticator IN DATABASE %I SET app.jwt_secret = %L', current_database(),
                   (SELECT secret FROM auth.keys WHERE kid = 'bench-rest-hs256'));
END
$$;

-- The database side of one PostgREST request, replayed n times inside the server: the statement
-- PostgREST sends first (its set_config calls, as captured from PostgREST 12.0.2 with
-- log_statement), the pre-request (static PERFORMs, so plans are cached as with PostgREST's
-- prepared statements), the GET /items?limit=1 query, COMMIT. No protocol, no PostgREST, no wrk:
-- this isolates what each configuration costs in PostgreSQL, which the HTTP numbers cannot
-- resolve on a noisy machine. Run by the authenticator (the role rules depend on the session
-- user); µs per replayed request.
CREATE PROCEDURE bench_rest.replay(pre text, role text, claims text, cookies text, n int, INOUT us float8 DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    t0   timestamptz;
    body json;
BEGIN
    COMMIT;
    t0 := clock_timestamp();
    FOR i IN 1 .. n LOOP
        PERFORM set_config('search_path', '"api", "public"', true), set_config('role', role, true),
                set_config('request.jwt.claims', claims, true), set_config('request.method', 'GET', true),
                set_config('request.path', '/items', true),
                set_config('request.headers', '{"host":"127.0.0.1:3101"}', true),
                set_config('request.cookies', cookies, true);
        CASE pre
            WHEN '' THEN NULL;
            WHEN 'auth.authenticate' THEN PERFORM auth.authenticate();
            WHEN 'bench_rest.authenticate_plpgsql' THEN PERFORM bench_rest.authenticate_plpgsql();
            WHEN 'bench_rest.noop' THEN PERFORM bench_rest.noop();
            WHEN 'bench_rest.authenticate_sessions_example' THEN PERFORM bench_rest.authenticate_sessions_example();
        END CASE;
        WITH pgrst_source AS (SELECT api.items.* FROM api.items LIMIT 1 OFFSET 0)
        SELECT coalesce(json_agg(_postgrest_t), '[]') INTO body FROM (SELECT * FROM pgrst_source) _postgrest_t;
        COMMIT;
    END LOOP;
    us := extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END
$$;
GRANT USAGE ON SCHEMA bench_rest TO authenticator;
CREATE TABLE bench_rest.replays (config text, rep int, us float8);
GRANT INSERT ON bench_rest.replays TO authenticator;

-- wrk's results, one row per run, filled by postgrest.sh.
CREATE TABLE bench_rest.runs (config text, rep int, rps float8, requests bigint, non2xx bigint, errors bigint);
