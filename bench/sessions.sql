-- Database for the sessions part (bench/sessions.sh), loaded into a fresh database with pg_auth
-- and pgcrypto: a generator of live sessions, the timing harness for auth.authenticate(token)
-- (session tokens, sid-bound JWTs and plain JWTs) and for auth.login.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- Users act as web_user; auth.authenticate(token) switches to it only if the session user was
-- granted it (superusers are not members of every role for this check). The bench connects as
-- postgres: web_user is not a superuser, so the role rules pass.
DO $$ BEGIN CREATE ROLE web_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT web_user TO postgres;

-- The ring key that signs the JWTs authenticated here (the sid-bound ones, as auth.login(…, true)
-- issues them, and the plain ones): a JWT verified with a ring key counts as issued here, so its
-- sid is checked against auth.sessions.
SELECT auth.generate_key('HS256', 'bench-sessions');

CREATE SCHEMA bench_s;

-- Session token number i: the session prefix and a 43-character base64url string (SHA-256 of i,
-- unpadded), the shape of the tokens auth.login hands out; only its SHA-256 is stored, as
-- auth.login does.
CREATE FUNCTION bench_s.token(i bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT 'pas_' || rtrim(translate(encode(sha256(convert_to(i::text, 'UTF8')), 'base64'), '+/', '-_'), '=') $$;

-- User k owns sessions 10k-9 .. 10k (ten sessions per user).
CREATE FUNCTION bench_s.user_id(k bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT md5('bench-user-' || k)::uuid $$;

-- Session i's id: as random in the primary key as gen_random_uuid() (pg_auth's default), but
-- computable, so that the sid of session i is known without a lookup.
CREATE FUNCTION bench_s.session_id(i bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT md5('bench-session-' || i)::uuid $$;

CREATE TABLE bench_s.population (n bigint NOT NULL);
INSERT INTO bench_s.population VALUES (0);

-- Whether auth.sessions carries a copy of its user's role, email and disabled flag (pg_auth
-- 0.3.0 and later, kept by triggers).
CREATE FUNCTION bench_s.sessions_copy_user() RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT count(*) = 3 FROM pg_attribute
    WHERE attrelid = 'auth.sessions'::regclass AND NOT attisdropped
      AND attname IN ('user_role', 'user_email', 'user_disabled')
$$;

-- Grows auth.sessions to `target` live sessions (and their users), inserting only what is missing,
-- in one transaction (bench/sessions.sh calls it in steps of at most GROW_BATCH sessions).
-- The foreign key trigger is skipped (session_replication_role = replica): the rows reference
-- users inserted just before, by construction.
CREATE FUNCTION bench_s.grow(target bigint) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    have bigint := (SELECT n FROM bench_s.population);
BEGIN
    IF target <= have THEN
        RETURN have;
    END IF;
    PERFORM set_config('session_replication_role', 'replica', true);
    INSERT INTO auth.users (id, email, password_hash, role)
    SELECT bench_s.user_id(k), 'user-' || k || '@bench.example', 'not-a-password-hash', 'web_user'
    FROM generate_series((have + 9) / 10 + 1, (target + 9) / 10) k;
    IF bench_s.sessions_copy_user() THEN
        -- pg_auth >= 0.3.0: the copy of the user's role, email and disabled flag that the
        -- sessions_copy_user trigger writes, written here in bulk (the trigger, which fires even
        -- for replica writes, is off for this insert); without it authenticate would take its
        -- fallback path (reading auth.users) instead of the one a real session takes.
        ALTER TABLE auth.sessions DISABLE TRIGGER sessions_copy_user;
        INSERT INTO auth.sessions (id, token_hash, user_id, expires_at, idle_expires_at,
                                   user_role, user_email, user_disabled)
        SELECT bench_s.session_id(i), sha256(convert_to(bench_s.token(i), 'UTF8')), bench_s.user_id((i - 1) / 10 + 1),
               now() + interval '7 days', now() + interval '1 day',
               'web_user', 'user-' || ((i - 1) / 10 + 1) || '@bench.example', false
        FROM generate_series(have + 1, target) i;
        ALTER TABLE auth.sessions ENABLE ALWAYS TRIGGER sessions_copy_user;
    ELSE
        INSERT INTO auth.sessions (id, token_hash, user_id, expires_at, idle_expires_at)
        SELECT bench_s.session_id(i), sha256(convert_to(bench_s.token(i), 'UTF8')), bench_s.user_id((i - 1) / 10 + 1),
               now() + interval '7 days', now() + interval '1 day'
        FROM generate_series(have + 1, target) i;
    END IF;
    -- The copy, where there is one, must be what auth.users holds (as the trigger would write it).
    IF bench_s.sessions_copy_user() AND EXISTS (
        SELECT 1 FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id
        WHERE s.id IN (bench_s.session_id(have + 1), bench_s.session_id(target))
          AND (s.user_role, s.user_email, s.user_disabled) IS DISTINCT FROM (u.role, u.email, u.disabled)) THEN
        RAISE EXCEPTION 'bench_s.grow: the sessions'' copy of their user differs from auth.users';
    END IF;
    UPDATE bench_s.population SET n = target;
    RETURN target;
END
$$;

-- The credentials authenticated in one timed pass: `n` sessions drawn uniformly (with
-- replacement) from the live ones, so rows differ (nothing can be folded) and lookups hit the
-- indexes in random order. For each drawn session: its token; a sid-bound JWT as
-- auth.login(email, password, true) returns it (sub, role, email, sid, a fresh jti, iat, exp an
-- hour ahead), signed by the ring key; and a plain JWT of the same user without sid and jti (the
-- JWT cookie of PostgREST configuration (c)).
CREATE TABLE bench_s.sample (token text NOT NULL, sid_jwt text NOT NULL, jwt text NOT NULL);
CREATE FUNCTION bench_s.resample(n int) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    live bigint := (SELECT p.n FROM bench_s.population p);
    now_s bigint := extract(epoch FROM now())::bigint;
BEGIN
    TRUNCATE bench_s.sample;
    INSERT INTO bench_s.sample
    SELECT bench_s.token(i),
           auth.sign_jwt(c || jsonb_build_object('sid', bench_s.session_id(i), 'jti', gen_random_uuid())),
           auth.sign_jwt(c)
    FROM (SELECT 1 + floor(random() * live)::bigint AS i FROM generate_series(1, n)) d,
         LATERAL (SELECT (d.i - 1) / 10 + 1 AS k) u,
         LATERAL (SELECT jsonb_build_object('sub', bench_s.user_id(u.k), 'role', 'web_user',
                                            'email', 'user-' || u.k || '@bench.example',
                                            'iat', now_s, 'exp', now_s + 3600) AS c) cl;
    ANALYZE bench_s.sample;
END
$$;

-- Blocks of auth.* tables and indexes this transaction has read into shared buffers (not found
-- there: they came from the OS page cache or the disk).
CREATE FUNCTION bench_s.blocks_read() RETURNS bigint
LANGUAGE sql STABLE
AS $$
    SELECT sum(pg_stat_get_xact_blocks_fetched(c.oid) - pg_stat_get_xact_blocks_hit(c.oid))::bigint
    FROM pg_class c WHERE c.relnamespace = 'auth'::regnamespace AND c.relkind IN ('r', 'i')
$$;

-- clock_timestamp() around one EXECUTE, inside the server (no client round trip), and the
-- blocks read meanwhile.
CREATE FUNCTION bench_s.time_query(q text, OUT rows bigint, OUT us float8, OUT reads bigint)
LANGUAGE plpgsql
AS $$
DECLARE
    t0 timestamptz;
    r0 bigint := bench_s.blocks_read();
BEGIN
    t0 := clock_timestamp();
    EXECUTE q INTO rows;
    us := extract(epoch FROM clock_timestamp() - t0) * 1e6;
    reads := bench_s.blocks_read() - r0;
END
$$;
CREATE TABLE bench_s.samples (live bigint, variant text, rep int, rows bigint, us float8, reads bigint);

-- Diagnostics: pg_auth 0.2.0's session query (src/session_store.rs of 0.2.0; 0.3.0 probes the
-- unique indexes directly instead of running SQL), run from plpgsql either with a
-- cached plan (static SQL) or parsed and planned on every call (EXECUTE, as an SPI query given as
-- text is). Returns exp; no role switch, no claims published.
CREATE FUNCTION bench_s.lookup(token text, plan_every_call boolean) RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    r record;
BEGIN
    IF plan_every_call THEN
        EXECUTE 'SELECT u.id::text AS sub, u.role, u.email, s.id::text AS sid,
                        extract(epoch FROM least(s.expires_at, s.idle_expires_at))::bigint AS exp
                 FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
                   AND s.idle_expires_at > now() AND NOT u.disabled'
        INTO r USING sha256(convert_to(token, 'UTF8'));
    ELSE
        SELECT u.id::text AS sub, u.role, u.email, s.id::text AS sid,
               extract(epoch FROM least(s.expires_at, s.idle_expires_at))::bigint AS exp INTO r
        FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id
        WHERE s.token_hash = sha256(convert_to(token, 'UTF8')) AND s.revoked_at IS NULL AND s.expires_at > now()
          AND s.idle_expires_at > now() AND NOT u.disabled;
    END IF;
    IF r.sub IS NULL THEN
        RAISE EXCEPTION 'no live session for %', token;
    END IF;
    RETURN r.exp;
END
$$;
CREATE TABLE bench_s.sizes (live bigint PRIMARY KEY, grow_s float8, sessions_mb float8, users_mb float8);

-- ---- logins ------------------------------------------------------------------------------------

SELECT auth.register('login@bench.example', 'correct horse battery staple');
CREATE TABLE bench_s.logins (kind text, rep int, us float8);

-- n rounds of three logins, interleaved, each timed on its own: the right password, an unknown
-- email, a wrong password for the existing user. Round 0 is a warm-up (not recorded). Each
-- result is checked. The lock-out threshold is raised for this transaction only (the successful
-- logins in between reset the failure count anyway).
CREATE FUNCTION bench_s.time_logins(n int) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    t0     timestamptz;
    result jsonb;
    kind   text;
BEGIN
    PERFORM set_config('pg_auth.login_max_failures', '1000', true);
    FOR rep IN 0 .. n LOOP
        FOREACH kind IN ARRAY ARRAY['success', 'unknown email', 'wrong password'] LOOP
            t0 := clock_timestamp();
            result := CASE kind
                WHEN 'success' THEN auth.login('login@bench.example', 'correct horse battery staple')
                WHEN 'unknown email' THEN auth.login('nobody-' || rep || '@bench.example', 'correct horse battery staple')
                ELSE auth.login('login@bench.example', 'wrong horse battery staple ' || rep)
            END;
            IF rep > 0 THEN
                INSERT INTO bench_s.logins VALUES (kind, rep, extract(epoch FROM clock_timestamp() - t0) * 1e6);
            END IF;
            IF (kind = 'success') <> (result ? 'token') OR (kind <> 'success' AND result IS NOT NULL) THEN
                RAISE EXCEPTION 'unexpected login result for %: %', kind, result;
            END IF;
        END LOOP;
    END LOOP;
END
$$;
