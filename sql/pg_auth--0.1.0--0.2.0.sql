-- pg_auth 0.1.0 → 0.2.0: the security release (issue 7). Applied by
--   ALTER EXTENSION pg_auth UPDATE TO '0.2.0';
-- Nothing is lost: users, sessions, keys, revocations and reset tokens keep every row; login
-- lockouts move from auth.users to auth.login_attempts.

-- Internal helpers live in schema auth_internal, which PUBLIC cannot even look into: schema
-- auth holds only the API. Moving a function keeps its C symbol, so nothing is recompiled.
CREATE SCHEMA auth_internal;
REVOKE ALL ON SCHEMA auth_internal FROM PUBLIC;
ALTER FUNCTION auth.add_response_header(text, text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.check_new_password(text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.clearing_cookie() SET SCHEMA auth_internal;
ALTER FUNCTION auth.describe_key(text, text, text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.hash_password(text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.hash_token(text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.new_key_material(text, text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.new_token() SET SCHEMA auth_internal;
ALTER FUNCTION auth.password_needs_rehash(text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.request_header(text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.session_cookie(text, integer) SET SCHEMA auth_internal;
ALTER FUNCTION auth.session_token_hash() SET SCHEMA auth_internal;
ALTER FUNCTION auth.setting(text) SET SCHEMA auth_internal;
ALTER FUNCTION auth.verify_password(text, text) SET SCHEMA auth_internal;

-- Which session a transaction holds is backend-local state set by auth.authenticate.
-- pg_auth::session_store::verified_session
CREATE FUNCTION auth."verified_session"() RETURNS TABLE (
	"session_id" uuid,  /* pgrx :: Uuid */
	"user_id" uuid,  /* pgrx :: Uuid */
	"token_hash" bytea  /* :: std :: option :: Option < Vec < u8 > > */
)
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verified_session_wrapper';
-- Identity helpers: auth.jwt() and auth.uid() answer from what auth.authenticate() verified in
-- this transaction (backend-local, src/published.rs), not from request.jwt.claims, which any SQL
-- caller can set. That state lives in the backend, so the helpers are PARALLEL RESTRICTED.
CREATE OR REPLACE FUNCTION auth."jwt"() RETURNS jsonb
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'jwt_wrapper';
CREATE OR REPLACE FUNCTION auth."uid"() RETURNS uuid
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'uid_wrapper';
-- Any role calls them with its own search_path: every operator is qualified.
CREATE OR REPLACE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.->>) 'role' $$;
CREATE OR REPLACE FUNCTION auth.email() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.->>) 'email' $$;
CREATE OR REPLACE FUNCTION auth.session_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.as_uuid(auth.jwt() OPERATOR(pg_catalog.->>) 'sid') $$;
-- A text as uuid when it is one, otherwise NULL (never an error inside a policy).
CREATE OR REPLACE FUNCTION auth.as_uuid(value text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN value OPERATOR(pg_catalog.~*) '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN value::pg_catalog.uuid END
$$;
-- Any claim by dotted path, as text: auth.claim('app_metadata.tenant').
CREATE OR REPLACE FUNCTION auth.claim(path text) RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.#>>) pg_catalog.string_to_array(path, '.') $$;

-- Opaque tokens carry a prefix that says what they are (pas_ session, par_ password reset), so
-- a token is never classified by its length. Unprefixed sessions from 0.1.0 keep working.
CREATE FUNCTION auth_internal."new_reset_token"() RETURNS TABLE (
	"token" TEXT,  /* String */
	"token_hash" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'new_reset_token_wrapper';
CREATE OR REPLACE FUNCTION auth.request_password_reset(email text, valid_for interval DEFAULT '1 hour') RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target uuid;
    t record;
BEGIN
    SELECT id INTO target FROM auth.users u
    WHERE lower(u.email) = lower(request_password_reset.email) AND NOT u.disabled;
    IF target IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO t FROM auth_internal.new_reset_token();
    INSERT INTO auth.password_resets (token_hash, user_id, expires_at) VALUES (t.token_hash, target, now() + valid_for);
    RETURN t.token;
END
$$;

-- pg_auth's SQL raises its errors through the same table as its Rust code: a SQL client gets
-- the SQLSTATE (PA015, PA016, PA017, PA018, 28P01), PostgREST the HTTP status and headers.
CREATE FUNCTION auth_internal."raise_error"(
	"kind" TEXT, /* & str */
	"message" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS void
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'raise_error_wrapper';


-- Functions that call the moved helpers, now by their new schema.
CREATE OR REPLACE FUNCTION auth_internal.check_new_password(password text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF password IS NULL OR length(password) < auth_internal.setting('password_min_length')::int THEN
        RAISE EXCEPTION 'password must have at least % characters', auth_internal.setting('password_min_length')
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- Creates a user and returns its id. The role defaults to pg_auth.user_role.
CREATE OR REPLACE FUNCTION auth.register(
    email    text,
    password text,
    username text DEFAULT NULL,
    role     text DEFAULT NULL,
    metadata jsonb DEFAULT '{}'
) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id uuid;
BEGIN
    IF register.email IS NULL OR register.email !~ '^[^@\s]+@[^@\s]+$' OR length(register.email) > 254 THEN
        RAISE EXCEPTION 'invalid email address' USING ERRCODE = '22023';
    END IF;
    PERFORM auth_internal.check_new_password(register.password);
    INSERT INTO auth.users (email, username, password_hash, role, metadata)
    VALUES (register.email, register.username, auth_internal.hash_password(register.password),
            coalesce(register.role, auth_internal.setting('user_role')), coalesce(register.metadata, '{}'))
    RETURNING id INTO new_id;
    RETURN new_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'a user with this email or username already exists' USING ERRCODE = '23505';
END
$$;

-- Generates a key in the database and returns its kid.
CREATE OR REPLACE FUNCTION auth.generate_key(
    algorithm   text,
    kid         text DEFAULT NULL,
    active_from timestamptz DEFAULT now()
) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO auth.keys (kid, algorithm, secret, public_jwk, origin, active_from)
    SELECT m.kid, m.algorithm, m.secret, m.public_jwk, 'generated', coalesce(generate_key.active_from, now())
    FROM auth_internal.new_key_material(generate_key.algorithm, generate_key.kid) AS m
    RETURNING kid
$$;

-- Adds one external key (secret, PEM, JWK): a public key to verify with, or a private one to
-- sign with too. Returns its kid. Re-adding a kid replaces its key.
CREATE OR REPLACE FUNCTION auth.add_key(
    key         text,
    kid         text DEFAULT NULL,
    algorithm   text DEFAULT NULL,
    active_from timestamptz DEFAULT now()
) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO auth.keys AS k (kid, algorithm, secret, public_jwk, active_from)
    SELECT d.kid, d.algorithm, d.secret, d.public_jwk, coalesce(add_key.active_from, now())
    FROM auth_internal.describe_key(add_key.key, add_key.kid, add_key.algorithm) AS d
    ON CONFLICT ON CONSTRAINT keys_pkey DO UPDATE
        SET algorithm = excluded.algorithm, secret = excluded.secret, public_jwk = excluded.public_jwk,
            active_from = excluded.active_from, retire_after = NULL
    RETURNING k.kid
$$;

-- raise_http honours pg_auth.pgrst_errors (PostgREST 11 gets PT<status> errors).
CREATE OR REPLACE FUNCTION auth.raise_http(status integer, code text, message text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF auth_internal.setting('pgrst_errors')::boolean THEN
        RAISE SQLSTATE 'PGRST' USING
            MESSAGE = json_build_object('code', code, 'message', message, 'details', NULL, 'hint', NULL)::text,
            DETAIL = json_build_object('status', status, 'headers', json_build_object())::text;
    END IF;
    -- PostgREST 11 reads no PGRST error: the status goes in a PT<status> SQLSTATE, the code in
    -- the details.
    RAISE EXCEPTION USING ERRCODE = 'PT' || status, DETAIL = code,
        MESSAGE = pg_catalog.regexp_replace(message, '[^ -~]', '?', 'g');  -- it becomes the status line
END
$$;

-- Login throttling per email, known or not (so a lockout tells nothing about which emails have
-- accounts): failures counted from failures_since; locked until locked_until. Keyed by the
-- SHA-256 of the lower-cased email, so mistyped addresses are not kept in clear.
CREATE TABLE auth.login_attempts (
    email_key      bytea PRIMARY KEY CHECK (length(email_key) = 32),
    failed_logins  integer NOT NULL DEFAULT 0,
    failures_since timestamptz,
    locked_until   timestamptz
);
REVOKE ALL ON auth.login_attempts FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.login_attempts', '');

INSERT INTO auth.login_attempts (email_key, failed_logins, failures_since, locked_until)
SELECT auth_internal.hash_token(lower(u.email)), u.failed_logins, u.failures_since, u.locked_until
FROM auth.users u WHERE u.failed_logins > 0 OR u.locked_until IS NOT NULL
ON CONFLICT (email_key) DO NOTHING;
ALTER TABLE auth.users DROP COLUMN failed_logins, DROP COLUMN failures_since, DROP COLUMN locked_until;

-- The key of an email in auth.login_attempts.
CREATE OR REPLACE FUNCTION auth_internal.email_key(email text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth_internal.hash_token(lower(coalesce(email, ''))) $$;

DROP FUNCTION auth.record_failed_login(uuid);
-- Counts a failed sign-in (or password check) for an email, known or not, and locks it after
-- pg_auth.login_max_failures failures within pg_auth.login_failure_window.
CREATE OR REPLACE FUNCTION auth_internal.record_failed_login(email_key bytea) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO auth.login_attempts AS a (email_key, failed_logins, failures_since)
    VALUES (record_failed_login.email_key, 1, now())
    ON CONFLICT (email_key) DO UPDATE
    SET failed_logins = CASE WHEN a.failures_since > now() - make_interval(secs => auth_internal.setting('login_failure_window')::int)
                             THEN a.failed_logins + 1 ELSE 1 END,
        failures_since = CASE WHEN a.failures_since > now() - make_interval(secs => auth_internal.setting('login_failure_window')::int)
                              THEN a.failures_since ELSE now() END;
    UPDATE auth.login_attempts a
    SET locked_until = now() + make_interval(secs => auth_internal.setting('login_cooldown')::int)
    WHERE a.email_key = record_failed_login.email_key
      AND a.failed_logins >= auth_internal.setting('login_max_failures')::int;
$$;

-- Signs in. On success: a new session, its cookie appended to response.headers, and
-- {user_id, session_id, token, expires_at} (plus a short-lived JWT carrying `sid` when
-- return_jwt). A wrong email or password is not an exception, so the failure count survives:
-- it sets response.status 401 and returns {code: "28P01", message}. Too many failures lock the
-- email for pg_auth.login_cooldown (429, an exception). Known and unknown emails take the same
-- path: same answers, one password check each, the same lockout (auth.login_attempts).
CREATE OR REPLACE FUNCTION auth.login(email text, password text, return_jwt boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u auth.users;
    t record;
    key bytea := auth_internal.email_key(login.email);
    locked timestamptz;
    ok boolean;
    new_session uuid;
    role_path text[] := pg_catalog.string_to_array(auth_internal.setting('role_claim'), '.');
    role_claim jsonb;
    lifetime integer := auth_internal.setting('session_lifetime')::int;
    idle integer := auth_internal.setting('session_idle_timeout')::int;
    result jsonb;
BEGIN
    SELECT a.locked_until INTO locked FROM auth.login_attempts a WHERE a.email_key = key;
    IF locked > now() THEN
        PERFORM auth_internal.raise_error('too_many_attempts', format('too many failed logins; try again in %s seconds',
                                                     ceil(extract(epoch FROM locked - now()))));
    END IF;
    -- No row lock yet: a failed login must not wait where an unknown email would not.
    SELECT * INTO u FROM auth.users WHERE lower(users.email) = lower(login.email);
    IF octet_length(login.password) > 1024 THEN
        -- Over the length limit: the same cost and answer as a wrong password.
        ok := auth_internal.verify_password('', NULL);
    ELSE
        -- Unknown emails cost one password check too (verify_password with a NULL hash).
        ok := auth_internal.verify_password(coalesce(login.password, ''), u.password_hash) AND NOT u.disabled;
    END IF;
    IF ok THEN
        -- Locked only now, and checked again: a user disabled meanwhile gets no session.
        PERFORM 1 FROM auth.users WHERE id = u.id AND NOT disabled FOR UPDATE;
        ok := FOUND;
    END IF;
    IF NOT ok THEN
        PERFORM auth_internal.record_failed_login(key);
        PERFORM set_config('response.status', '401', true);
        RETURN jsonb_build_object('code', '28P01', 'message', 'invalid email or password');
    END IF;
    DELETE FROM auth.login_attempts a WHERE a.email_key = key;
    UPDATE auth.users SET password_hash = CASE WHEN auth_internal.password_needs_rehash(password_hash)
                                               THEN auth_internal.hash_password(login.password) ELSE password_hash END
    WHERE id = u.id;
    SELECT * INTO t FROM auth_internal.new_token();
    INSERT INTO auth.sessions (token_hash, user_id, expires_at, idle_expires_at, user_agent, ip)
    VALUES (t.token_hash, u.id, now() + make_interval(secs => lifetime), now() + make_interval(secs => least(idle, lifetime)),
            left(auth_internal.request_header('user-agent'), 512),
            left(coalesce(split_part(auth_internal.request_header('x-forwarded-for'), ',', 1), auth_internal.request_header('x-real-ip')), 64))
    RETURNING id INTO new_session;
    PERFORM auth_internal.add_response_header('Set-Cookie', auth_internal.session_cookie(t.token, lifetime));
    result := jsonb_build_object('user_id', u.id, 'session_id', new_session, 'token', t.token,
                                 'expires_at', now() + make_interval(secs => lifetime));
    IF return_jwt THEN
        -- The role also at pg_auth.role_claim when that is a dotted path (app_metadata.role).
        role_claim := to_jsonb(u.role);
        FOR i IN REVERSE pg_catalog.array_length(role_path, 1)..1 LOOP
            role_claim := jsonb_build_object(role_path[i], role_claim);
        END LOOP;
        result := result || jsonb_build_object('jwt', auth.sign_jwt(jsonb_build_object(
            'sub', u.id, 'role', u.role, 'email', u.email, 'sid', new_session, 'jti', gen_random_uuid(),
            'iat', extract(epoch FROM now())::bigint,
            'exp', extract(epoch FROM now())::bigint + auth_internal.setting('jwt_lifetime')::int) || role_claim));
    END IF;
    RETURN result;
END
$$;

-- Ends the current session and clears the cookie. 401 when not signed in with a session.
CREATE OR REPLACE FUNCTION auth.logout() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- The session auth.authenticate verified (cookie, or a JWT we issued carrying sid); never
    -- request.jwt.claims, which any SQL caller can set.
    UPDATE auth.sessions s SET revoked_at = now()
    FROM auth.verified_session() AS v
    WHERE s.id = v.session_id AND s.revoked_at IS NULL;
    IF NOT FOUND THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    PERFORM auth_internal.add_response_header('Set-Cookie', auth_internal.clearing_cookie());
END
$$;

-- The token the last refresh replaced signs in for pg_auth.refresh_grace_period more (requests
-- already in flight), but never refreshes.
ALTER TABLE auth.sessions
    ADD COLUMN previous_token_hash  bytea UNIQUE CHECK (length(previous_token_hash) = 32),
    ADD COLUMN previous_valid_until timestamptz;

-- Rotates the current session's token, pushes the idle expiry forward and sets the new cookie.
-- The old token still signs in for pg_auth.refresh_grace_period (requests already in flight, a
-- second tab), then stops; it can never refresh. The absolute expiry does not move. Only the session token
-- itself refreshes: a JWT carrying sid never turns into a session cookie. Of two refreshes
-- racing with the same old token, the second gets 401 and the first one's new token stays valid.
CREATE OR REPLACE FUNCTION auth.refresh() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    sid uuid;
    ends timestamptz;
BEGIN
    SELECT * INTO t FROM auth_internal.new_token();
    UPDATE auth.sessions s
    SET token_hash = t.token_hash, refreshed_at = now(),
        previous_token_hash = s.token_hash,
        previous_valid_until = now() + make_interval(secs => auth_internal.setting('refresh_grace_period')::int),
        idle_expires_at = least(s.expires_at, now() + make_interval(secs => auth_internal.setting('session_idle_timeout')::int))
    FROM auth.verified_session() AS v
    WHERE s.id = v.session_id AND s.token_hash = v.token_hash
      AND s.revoked_at IS NULL AND s.expires_at > now() AND s.idle_expires_at > now()
    RETURNING s.id, s.expires_at INTO sid, ends;
    IF ends IS NULL THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    PERFORM auth_internal.add_response_header('Set-Cookie',
        auth_internal.session_cookie(t.token, ceil(extract(epoch FROM ends - now()))::int));
    RETURN jsonb_build_object('session_id', sid, 'token', t.token, 'expires_at', ends);
END
$$;

-- Deletes sessions, reset tokens and revocations that can no longer matter; returns how many.
-- Schedule it, e.g. with pg_cron:  SELECT cron.schedule('0 * * * *', 'SELECT auth.cleanup_expired()');
CREATE OR REPLACE FUNCTION auth.cleanup_expired() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (
        DELETE FROM auth.sessions
        WHERE expires_at < now() OR idle_expires_at < now() OR revoked_at < now() - interval '1 day'
        RETURNING 1
    ), r AS (
        DELETE FROM auth.password_resets WHERE expires_at < now() OR used_at IS NOT NULL RETURNING 1
    ), a AS (
        DELETE FROM auth.login_attempts
        WHERE coalesce(locked_until, '-infinity') < now()
          AND failures_since < now() - make_interval(secs => auth_internal.setting('login_failure_window')::int)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM r) + (SELECT count(*) FROM a) + auth.cleanup_revoked_tokens()
$$;

-- change_password returns jsonb now (a wrong old password is returned and counted, not
-- raised): it is re-created, and the EXECUTE grants applications gave on it are given again.
SELECT pg_catalog.set_config('pg_auth_upgrade.change_password_grantees',
       coalesce(pg_catalog.string_agg(a.grantee::pg_catalog.regrole::text, ','), ''), true)
FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
WHERE p.oid = 'auth.change_password(text, text)'::pg_catalog.regprocedure
  AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner;
DROP FUNCTION auth.change_password(text, text);
-- Changes the password of the signed-in user (old one required) and ends their other sessions
-- and unused reset tokens. The user is the one auth.authenticate verified in this transaction,
-- never request.jwt.claims. An email locked by failed logins is refused here too (429). A wrong
-- old password counts towards that lock like a failed login, so it is returned, not raised (an
-- error would roll the count back): {"code": "28P01", ...} with response.status 401. Success
-- returns {"changed": true}.
CREATE FUNCTION auth.change_password(old_password text, new_password text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.users;
    my_id uuid;
    current_session uuid;
    key bytea;
    locked timestamptz;
BEGIN
    SELECT v.user_id, v.session_id INTO my_id, current_session FROM auth.verified_session() AS v;
    SELECT * INTO me FROM auth.users u WHERE u.id = my_id;
    IF me.id IS NULL THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    key := auth_internal.email_key(me.email);
    SELECT a.locked_until INTO locked FROM auth.login_attempts a WHERE a.email_key = key;
    IF locked > now() THEN
        PERFORM auth_internal.raise_error('too_many_attempts', format('too many failed attempts; try again in %s seconds',
                                                     ceil(extract(epoch FROM locked - now()))));
    END IF;
    PERFORM 1 FROM auth.users WHERE id = me.id FOR UPDATE;
    IF octet_length(old_password) > 1024 OR NOT auth_internal.verify_password(coalesce(old_password, ''), me.password_hash) THEN
        PERFORM auth_internal.record_failed_login(key);
        PERFORM set_config('response.status', '401', true);
        RETURN jsonb_build_object('code', '28P01', 'message', 'the current password is wrong');
    END IF;
    PERFORM auth_internal.check_new_password(new_password);
    UPDATE auth.users SET password_hash = auth_internal.hash_password(new_password), updated_at = now() WHERE id = me.id;
    PERFORM auth.revoke_user_sessions(me.id, except_session => current_session);
    DELETE FROM auth.password_resets r WHERE r.user_id = me.id AND r.used_at IS NULL;
    RETURN jsonb_build_object('changed', true);
END
$$;

DO $$
DECLARE
    grantee text;
BEGIN
    FOREACH grantee IN ARRAY pg_catalog.string_to_array(
            pg_catalog.current_setting('pg_auth_upgrade.change_password_grantees'), ',') LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION auth.change_password(text, text) TO %s', grantee);
    END LOOP;
END
$$;

-- Sets a new password with a reset token and ends all the user's sessions.
CREATE OR REPLACE FUNCTION auth.reset_password(token text, new_password text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target uuid;
BEGIN
    PERFORM auth_internal.check_new_password(new_password);
    UPDATE auth.password_resets r SET used_at = now()
    WHERE r.token_hash = auth_internal.hash_token(coalesce(token, '')) AND r.used_at IS NULL AND r.expires_at > now()
    RETURNING r.user_id INTO target;
    IF target IS NULL THEN
        PERFORM auth_internal.raise_error('reset_token_invalid');
    END IF;
    UPDATE auth.users SET password_hash = auth_internal.hash_password(new_password), updated_at = now()
    WHERE id = target;
    DELETE FROM auth.login_attempts a USING auth.users u WHERE u.id = target AND a.email_key = auth_internal.email_key(u.email);
    -- Every other reset token of the user ends with this one.
    DELETE FROM auth.password_resets r WHERE r.user_id = target AND r.used_at IS NULL;
    PERFORM auth.revoke_user_sessions(target);
END
$$;

-- Disables a user (logins refused) and ends their sessions.
CREATE OR REPLACE FUNCTION auth.disable_user(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE auth.users SET disabled = true, updated_at = now() WHERE id = disable_user.user_id;
    PERFORM auth.revoke_user_sessions(disable_user.user_id);
    DELETE FROM auth.password_resets r WHERE r.user_id = disable_user.user_id AND r.used_at IS NULL;
END
$$;

-- Adds or refreshes every public key of a JWKS (an identity provider's, for OIDC sign-in).
-- Only keys that came from a JWKS or add_key without a secret are refreshed: a provider whose
-- JWKS names the kid of one of this database's own keys is refused, never let replace it.
CREATE OR REPLACE FUNCTION auth.add_jwks(jwks jsonb) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    clash text;
BEGIN
    SELECT d.kid INTO clash
    FROM auth_internal.describe_key(add_jwks.jwks::text) AS d JOIN auth.keys k ON k.kid = d.kid
    WHERE k.secret IS NOT NULL OR k.origin <> 'imported'
    LIMIT 1;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'invalid key: kid "%" is one of this database''s own keys; a JWKS cannot replace it', clash
            USING ERRCODE = 'PA012', HINT = 'Give the provider''s keys their own kids, or retire and delete the clashing key first.';
    END IF;
    RETURN QUERY
    INSERT INTO auth.keys AS k (kid, algorithm, secret, public_jwk)
    SELECT d.kid, d.algorithm, d.secret, d.public_jwk
    FROM auth_internal.describe_key(add_jwks.jwks::text) AS d
    ON CONFLICT ON CONSTRAINT keys_pkey DO UPDATE
        SET algorithm = excluded.algorithm, public_jwk = excluded.public_jwk, retire_after = NULL
    RETURNING k.kid;
END
$$;

-- Login CSRF defence for API functions that sign in or register: a cross-site HTML form can only
-- send form-encoded or text/plain bodies, never application/json without a CORS preflight. Call
-- it first in such functions; outside PostgREST (no request.headers) it does nothing.
CREATE FUNCTION auth.require_json_request() RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF nullif(current_setting('request.headers', true), '') IS NOT NULL
       AND coalesce(lower(split_part(auth_internal.request_header('content-type'), ';', 1)), '') <> 'application/json' THEN
        PERFORM auth_internal.raise_error('json_required');
    END IF;
END
$$;

-- Closed by default (the same block ends every version).
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth FROM PUBLIC;
REVOKE ALL ON SCHEMA auth_internal FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth_internal FROM PUBLIC;

GRANT USAGE ON SCHEMA auth TO PUBLIC;

GRANT EXECUTE ON FUNCTION
    -- JWT with a key the caller holds, and the public half of the ring.
    auth.sign_jwt(jsonb, text, text),
    auth.verify_jwt(text, text, jsonb),
    auth.decode_jwt_unverified(text),
    auth.jwks(),
    -- Request authentication (PostgREST's pre-request, any SQL client).
    auth.authenticate(),
    auth.authenticate(text),
    auth.require_json_request(),
    -- Identity helpers for RLS policies.
    auth.jwt(),
    auth.uid(),
    auth.role(),
    auth.email(),
    auth.claim(text),
    auth.session_id(),
    auth.as_uuid(text)
TO PUBLIC;
