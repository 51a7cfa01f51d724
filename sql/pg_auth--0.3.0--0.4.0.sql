-- pg_auth 0.3.0 → 0.4.0. Applied by ALTER EXTENSION pg_auth UPDATE.
-- New: second factor (TOTP, recovery codes, session assurance level), one-time codes and links,
-- sign-in with identity providers (OIDC) and their keys, pg_auth.require_verified_email.

-- The Rust functions of this release.
-- src/shared_attempts.rs:79
-- pg_auth::shared_attempts::auth_internal::attempt_allowed
CREATE  FUNCTION auth_internal."attempt_allowed"(
	"kind" TEXT, /* & str */
	"key" bytea, /* & [u8] */
	"max" INT, /* i32 */
	"window_secs" INT /* i32 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'attempt_allowed_wrapper';
-- src/shared_attempts.rs:91
-- pg_auth::shared_attempts::auth_internal::attempt_limits_shared
CREATE  FUNCTION auth_internal."attempt_limits_shared"() RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'attempt_limits_shared_wrapper';
-- src/api/oidc.rs:34
-- pg_auth::api::oidc::auth_internal::check_jwks_url
CREATE  FUNCTION auth_internal."check_jwks_url"(
	"url" TEXT /* & str */
) RETURNS void
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'check_jwks_url_wrapper';
-- src/shared_attempts.rs:85
-- pg_auth::shared_attempts::auth_internal::clear_attempts
CREATE  FUNCTION auth_internal."clear_attempts"(
	"kind" TEXT, /* & str */
	"key" bytea /* & [u8] */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'clear_attempts_wrapper';
-- src/api/oidc.rs:40
-- pg_auth::api::oidc::auth_internal::fetch_jwks
CREATE  FUNCTION auth_internal."fetch_jwks"(
	"url" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fetch_jwks_wrapper';
-- src/api/one_time.rs:21
-- pg_auth::api::one_time::auth_internal::new_link_token
CREATE  FUNCTION auth_internal."new_link_token"() RETURNS TABLE (
	"token" TEXT,  /* String */
	"token_hash" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'new_link_token_wrapper';
-- src/api/one_time.rs:58
-- pg_auth::api::one_time::auth_internal::new_recovery_codes
CREATE  FUNCTION auth_internal."new_recovery_codes"() RETURNS TEXT[] /* Vec < String > */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'new_recovery_codes_wrapper';
-- src/api/one_time.rs:15
-- pg_auth::api::one_time::auth_internal::new_short_code
CREATE  FUNCTION auth_internal."new_short_code"() RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'new_short_code_wrapper';
-- src/api/one_time.rs:28
-- pg_auth::api::one_time::auth_internal::new_totp_secret
CREATE  FUNCTION auth_internal."new_totp_secret"() RETURNS bytea /* Vec < u8 > */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'new_totp_secret_wrapper';
-- src/api/one_time.rs:66
-- pg_auth::api::one_time::auth_internal::normalize_recovery_code
CREATE  FUNCTION auth_internal."normalize_recovery_code"(
	"code" TEXT /* & str */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'normalize_recovery_code_wrapper';
-- src/api/one_time.rs:47
-- pg_auth::api::one_time::auth_internal::totp_matching_step
CREATE  FUNCTION auth_internal."totp_matching_step"(
	"secret" bytea, /* & [u8] */
	"code" TEXT, /* Option < & str > */
	"unix_seconds" bigint, /* i64 */
	"last_used_step" bigint /* Option < i64 > */
) RETURNS bigint /* Option < i64 > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'totp_matching_step_wrapper';
-- src/api/one_time.rs:34
-- pg_auth::api::one_time::auth_internal::totp_secret_text
CREATE  FUNCTION auth_internal."totp_secret_text"(
	"secret" bytea /* & [u8] */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'totp_secret_text_wrapper';
-- src/api/one_time.rs:40
-- pg_auth::api::one_time::auth_internal::totp_uri
CREATE  FUNCTION auth_internal."totp_uri"(
	"secret" bytea, /* & [u8] */
	"issuer" TEXT, /* & str */
	"account" TEXT /* & str */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'totp_uri_wrapper';
-- src/api/oidc.rs:22
-- pg_auth::api::oidc::auth_internal::usable_provider_keys
CREATE  FUNCTION auth_internal."usable_provider_keys"(
	"document" TEXT /* & str */
) RETURNS TABLE (
	"kid" TEXT,  /* String */
	"jwk" jsonb  /* JsonbText */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'usable_provider_keys_wrapper';
-- src/api/oidc.rs:51
-- pg_auth::api::oidc::auth_internal::verify_id_token
CREATE  FUNCTION auth_internal."verify_id_token"(
	"id_token" TEXT, /* Option < & str > */
	"keys" jsonb, /* Option < JsonbText > */
	"issuer" TEXT, /* Option < & str > */
	"client_id" TEXT, /* Option < & str > */
	"nonce" TEXT /* Option < & str > */
) RETURNS jsonb /* Option < JsonbText > */
STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_id_token_wrapper';

-- Sessions record their assurance level (sql/sessions.sql); existing ones are aal1.
ALTER TABLE auth.sessions
    ADD COLUMN aal text NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2'));

-- The authenticator assurance level of the request: aal1 (one factor), aal2 (a second factor
-- verified in this session); NULL for credentials that carry none (API keys, foreign JWTs).
CREATE FUNCTION auth.aal() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.->>) 'aal' $$;

-- A new session for user `user_id` (the caller checked the first factor and holds the user row
-- lock): its cookie appended to response.headers, and {user_id, session_id, token, expires_at,
-- aal, mfa_enrolled} (plus a short-lived JWT carrying `sid` when return_jwt). Every way of signing
-- in ends here: pg_auth.require_verified_email and the session limit are checked once.
CREATE FUNCTION auth_internal.start_session(user_id uuid, return_jwt boolean) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    new_session uuid;
    lifetime integer := auth_internal.setting('session_lifetime')::int;
    idle integer := auth_internal.setting('session_idle_timeout')::int;
    result jsonb;
BEGIN
    IF auth_internal.setting('require_verified_email')::boolean
       AND NOT EXISTS (SELECT FROM auth.users u WHERE u.id = start_session.user_id AND u.email_verified) THEN
        PERFORM auth_internal.raise_error('email_not_verified');
    END IF;
    PERFORM auth_internal.make_room_for_session(start_session.user_id);
    SELECT * INTO t FROM auth_internal.new_token();
    INSERT INTO auth.sessions (token_hash, user_id, expires_at, idle_expires_at, user_agent, ip)
    SELECT t.token_hash, start_session.user_id, now() + make_interval(secs => lifetime),
           now() + make_interval(secs => least(idle, lifetime)), c.user_agent, c.ip
    FROM auth_internal.client() AS c
    RETURNING id INTO new_session;
    PERFORM auth_internal.add_response_header('Set-Cookie', auth_internal.session_cookie(t.token, lifetime));
    result := jsonb_build_object('user_id', start_session.user_id, 'session_id', new_session, 'token', t.token,
                                 'expires_at', now() + make_interval(secs => lifetime), 'aal', 'aal1',
                                 'mfa_enrolled', auth_internal.has_second_factor(start_session.user_id));
    IF return_jwt THEN
        result := result || jsonb_build_object('jwt', auth_internal.session_jwt(start_session.user_id, new_session));
    END IF;
    RETURN result;
END
$$;

-- Counts one attempt (a password, code or second factor about to be checked) where no
-- transaction can roll it back — shared memory, with pg_auth in shared_preload_libraries — and
-- refuses it with 429 past `max` within `window_secs`. A success clears the count
-- (auth_internal.clear_attempts). Without the preload only the counts in tables hold, and a SQL
-- caller that rolls its wrong guesses back is not limited by them (README, "Attempt limits").
CREATE FUNCTION auth_internal.count_attempt(kind text, key bytea, max integer, window_secs integer) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT auth_internal.attempt_allowed(kind, key, max, window_secs) THEN
        PERFORM auth_internal.raise_error('too_many_attempts',
            format('too many attempts; try again in up to %s seconds', window_secs));
    END IF;
END
$$;

-- Two addresses are the same only up to ASCII case: lower() under the database's collation also
-- folds other letters (U+0130 'İ' to 'i', U+212A KELVIN SIGN to 'k'), so an address a provider
-- verified, or a code went to, could otherwise stand for another account's.
CREATE FUNCTION auth_internal.same_email(a text, b text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.translate(a, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
         = pg_catalog.translate(b, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
$$;

-- Refuses an email address auth.users would not take, or that is no address (22023).
CREATE FUNCTION auth_internal.check_email(email text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF email IS NULL OR email !~ '^[^@\s]+@[^@\s]+$' OR length(email) > 254 THEN
        RAISE EXCEPTION 'invalid email address' USING ERRCODE = '22023';
    END IF;
END
$$;

-- The first proof that someone controls an account's address (a sign-in code, an identity
-- provider linking by verified email) into an account whose address was never verified: every
-- way in that whoever made the account set up ends — password, sessions, API keys, other
-- identities, second factor and recovery codes, pending codes — so an account made in advance
-- with someone else's address cannot be kept after its owner takes it.
CREATE FUNCTION auth_internal.end_unproved_ways_in(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- The maker's password, and the name and profile they chose (a username is another name to
    -- sign in with; metadata may carry what claims or policies read).
    UPDATE auth.users u SET password_hash = NULL, username = NULL, metadata = '{}', updated_at = now()
    WHERE u.id = end_unproved_ways_in.user_id;
    PERFORM auth.revoke_user_sessions(end_unproved_ways_in.user_id);
    PERFORM auth_internal.revoke_user_api_keys(end_unproved_ways_in.user_id);
    DELETE FROM auth.identities i WHERE i.user_id = end_unproved_ways_in.user_id;
    DELETE FROM auth.mfa_factors f WHERE f.user_id = end_unproved_ways_in.user_id;
    DELETE FROM auth.recovery_codes r WHERE r.user_id = end_unproved_ways_in.user_id;
    UPDATE auth.one_time_codes c SET expires_at = now()
    WHERE c.user_id = end_unproved_ways_in.user_id AND c.used_at IS NULL AND c.expires_at > now();
    DELETE FROM auth.password_resets r WHERE r.user_id = end_unproved_ways_in.user_id AND r.used_at IS NULL;
END
$$;

-- Ends the lock and the failure counts of an email, for administrators: auth.login_attempts,
-- the second factor's lock of its account, and (pg_auth preloaded) the counts in shared memory of
-- passwords (auth.login, HTTP Basic), codes and the second factor.
CREATE FUNCTION auth.unlock(email text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key bytea := auth_internal.email_key(unlock.email);
    account uuid;
BEGIN
    SELECT u.id INTO account FROM auth.users u WHERE lower(u.email) = lower(unlock.email);
    DELETE FROM auth.login_attempts a WHERE a.email_key = key;
    PERFORM auth_internal.clear_attempts('login', key);
    PERFORM auth_internal.clear_attempts('code', key);
    IF account IS NOT NULL THEN
        PERFORM auth_internal.clear_attempts('second_factor', uuid_send(account));
        UPDATE auth.mfa_factors f SET failed_attempts = 0, failures_since = NULL, locked_until = NULL
        WHERE f.user_id = account;
    END IF;
END
$$;

-- Signs in. On success: a new session, its cookie appended to response.headers, and
-- {user_id, session_id, token, expires_at} (plus a short-lived JWT carrying `sid` when
-- return_jwt). A wrong email or password is not an exception, so the failure count survives:
-- it returns NULL with status 401 and X-Auth-Error: 28P01 (auth_internal.refuse). Too many failures lock the
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
    locked_hash text;
BEGIN
    PERFORM auth_internal.require_read_write('auth.login');
    SELECT a.locked_until INTO locked FROM auth.login_attempts a WHERE a.email_key = key;
    IF locked > now() THEN
        PERFORM auth_internal.raise_error('too_many_attempts', format('too many failed logins; try again in %s seconds',
                                                     ceil(extract(epoch FROM locked - now()))));
    END IF;
    PERFORM auth_internal.count_attempt('login', key, auth_internal.setting('login_max_failures')::int,
                                        auth_internal.setting('login_failure_window')::int);
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
        -- A password change or reset that committed meanwhile makes the check stale: a hash that
        -- changed is checked again (a concurrent sign-in's re-hash passes, a new password not).
        SELECT x.password_hash INTO locked_hash FROM auth.users x WHERE x.id = u.id AND NOT x.disabled FOR UPDATE;
        ok := FOUND AND (locked_hash IS NOT DISTINCT FROM u.password_hash
                         OR auth_internal.verify_password(coalesce(login.password, ''), locked_hash));
    END IF;
    IF NOT ok THEN
        PERFORM auth_internal.record_failed_login(key);
        RETURN auth_internal.refuse('28P01', 'invalid email or password');
    END IF;
    DELETE FROM auth.login_attempts a WHERE a.email_key = key;
    PERFORM auth_internal.clear_attempts('login', key);
    UPDATE auth.users SET password_hash = CASE WHEN auth_internal.password_needs_rehash(password_hash)
                                               THEN auth_internal.hash_password(login.password) ELSE password_hash END
    WHERE id = u.id;
    RETURN auth_internal.start_session(u.id, return_jwt);
END
$$;

-- A short-lived JWT for session `session_id` of user `user_id` (sub, role, email, sid, aal, jti,
-- iat, exp after pg_auth.jwt_lifetime; the role also at a dotted pg_auth.role_claim), through the
-- claims hook, signed with the ring.
CREATE OR REPLACE FUNCTION auth_internal.session_jwt(user_id uuid, session_id uuid) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u auth.users;
    role_path text[] := pg_catalog.string_to_array(auth_internal.setting('role_claim'), '.');
    role_claim jsonb;
BEGIN
    SELECT * INTO u FROM auth.users WHERE id = session_jwt.user_id;
    role_claim := to_jsonb(u.role);
    FOR i IN REVERSE pg_catalog.array_length(role_path, 1)..1 LOOP
        role_claim := jsonb_build_object(role_path[i], role_claim);
    END LOOP;
    RETURN auth.sign_jwt(auth_internal.apply_claims_hook(u.id, jsonb_build_object(
        'sub', u.id, 'role', u.role, 'email', u.email, 'sid', session_jwt.session_id,
        'aal', (SELECT s.aal FROM auth.sessions s WHERE s.id = session_jwt.session_id), 'jti', gen_random_uuid(),
        'iat', extract(epoch FROM now())::bigint,
        'exp', extract(epoch FROM now())::bigint + auth_internal.setting('jwt_lifetime')::int) || role_claim));
END
$$;

-- pg_auth.claims_hook names a function (user_id uuid, claims jsonb) RETURNS jsonb that sign-in
-- calls with the claims of the JWT it is about to issue; what it returns is signed instead (tenant
-- ids, feature flags), like Supabase's custom access token hook. It must be SECURITY DEFINER and
-- owned by a role that is no superuser, so it runs with that role's rights; that role decides the
-- claims of every JWT pg_auth issues. It may not change sub, sid, aal, exp, iat or jti; when it fails
-- or breaks a rule, the sign-in is refused (PA022) and leaves nothing behind.
CREATE OR REPLACE FUNCTION auth_internal.apply_claims_hook(user_id uuid, claims jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hook text := auth_internal.setting('claims_hook');
    fn regprocedure;
    usable boolean;
    result jsonb;
    changed text;
BEGIN
    IF hook = '' THEN
        RETURN claims;
    END IF;
    BEGIN
        fn := to_regprocedure(hook || '(uuid, jsonb)');
    EXCEPTION WHEN OTHERS THEN  -- not even a name
        fn := NULL;
    END;
    -- SECURITY DEFINER and owned by a role that is no superuser: it runs with that role's rights,
    -- never with those of pg_auth's functions (whatever it reads could otherwise run code as them).
    SELECT p.prosecdef AND NOT r.rolsuper AND p.prorettype = 'jsonb'::regtype AND NOT p.proretset INTO usable
    FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE p.oid = fn;
    IF usable IS NOT TRUE THEN
        PERFORM auth_internal.raise_error('claims_hook', format(
            'pg_auth.claims_hook %L must name a SECURITY DEFINER function (uuid, jsonb) RETURNS jsonb owned by a role that is no superuser', hook));
    END IF;
    BEGIN
        result := auth_internal.call_claims_hook(fn, user_id, claims);
    EXCEPTION WHEN OTHERS THEN
        RAISE LOG 'pg_auth: the claims hook % failed: %', fn, SQLERRM;
        PERFORM auth_internal.raise_error('claims_hook', format('the claims hook %s failed (the server log says why)', fn));
    END;
    IF result IS NULL OR jsonb_typeof(result) <> 'object' THEN
        PERFORM auth_internal.raise_error('claims_hook', format('the claims hook %s returned no JSON object', fn));
    END IF;
    SELECT string_agg(k, ', ' ORDER BY k) INTO changed
    FROM unnest(ARRAY['aal', 'exp', 'iat', 'jti', 'sid', 'sub']) AS k WHERE result -> k IS DISTINCT FROM claims -> k;
    IF changed IS NOT NULL THEN
        PERFORM auth_internal.raise_error('claims_hook', format('the claims hook %s may not change %s', fn, changed));
    END IF;
    RETURN result;
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
    ), l AS (
        DELETE FROM auth.audit_log
        WHERE at < now() - make_interval(days => auth_internal.setting('audit_retention_days')::int)
        RETURNING 1
    ), c AS (
        -- Kept while they count towards the request limit of their email.
        DELETE FROM auth.one_time_codes
        WHERE created_at < now() - make_interval(secs => auth_internal.setting('code_request_window')::int)
          AND (used_at IS NOT NULL OR expires_at < now())
        RETURNING 1
    ), k AS (
        DELETE FROM auth.provider_keys WHERE retired_at < now() - interval '30 days' RETURNING 1
    ), t AS (
        DELETE FROM auth.used_id_tokens WHERE expires_at < now() RETURNING 1
    ), e AS (
        DELETE FROM auth.code_email_locks l
        WHERE NOT EXISTS (SELECT FROM auth.one_time_codes o WHERE o.email_key = l.email_key)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM r) + (SELECT count(*) FROM a) + (SELECT count(*) FROM l)
           + (SELECT count(*) FROM c) + (SELECT count(*) FROM k) + (SELECT count(*) FROM e) + (SELECT count(*) FROM t)
           + auth.cleanup_revoked_tokens()
$$;

-- Ends one of the user's own sessions (the current one too: then the cookie stays until the
-- next request clears it; use auth.logout() for that). True when it was live.
CREATE OR REPLACE FUNCTION auth.end_my_session(session_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM auth.verified_session()) THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    IF end_my_session.session_id IS DISTINCT FROM (SELECT v.session_id FROM auth.verified_session() AS v) THEN
        PERFORM auth_internal.require_second_factor();
    END IF;
    UPDATE auth.sessions s SET revoked_at = now()
    FROM auth.verified_session() AS v
    WHERE s.id = end_my_session.session_id AND s.user_id = v.user_id AND s.revoked_at IS NULL;
    RETURN FOUND;
END
$$;

-- Ends every session of the user but the current one; returns how many.
CREATE OR REPLACE FUNCTION auth.end_my_other_sessions() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ended bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM auth.verified_session()) THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    PERFORM auth_internal.require_second_factor();
    WITH gone AS (
        UPDATE auth.sessions s SET revoked_at = now()
        FROM auth.verified_session() AS v
        WHERE s.user_id = v.user_id AND s.id <> v.session_id AND s.revoked_at IS NULL
        RETURNING 1)
    SELECT count(*) INTO ended FROM gone;
    RETURN ended;
END
$$;

-- Changes the password of the signed-in user (old one required) and ends their other sessions
-- and unused reset tokens. The user is the one auth.authenticate verified in this transaction,
-- never request.jwt.claims. An email locked by failed logins is refused here too (429). A wrong
-- old password counts towards that lock like a failed login, so it is returned, not raised (an
-- error would roll the count back): {"code": "28P01", ...} with response.status 401. Success
-- returns {"changed": true}.
CREATE OR REPLACE FUNCTION auth.change_password(old_password text, new_password text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.users;
    my_id uuid;
    current_session uuid;
    key bytea;
    locked timestamptz;
BEGIN
    PERFORM auth_internal.require_read_write('auth.change_password');
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
    -- Read again under the row lock: a password change or reset that committed meanwhile (it
    -- ends the other sessions, perhaps this one) must not be overwritten by one that raced it.
    SELECT * INTO me FROM auth.users u WHERE u.id = me.id FOR UPDATE;
    IF NOT EXISTS (SELECT FROM auth.sessions s WHERE s.id = current_session AND s.revoked_at IS NULL
                   AND s.expires_at > now() AND s.idle_expires_at > now()) THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    PERFORM auth_internal.require_second_factor();
    PERFORM auth_internal.count_attempt('login', key, auth_internal.setting('login_max_failures')::int,
                                        auth_internal.setting('login_failure_window')::int);
    IF octet_length(old_password) > 1024 OR NOT auth_internal.verify_password(coalesce(old_password, ''), me.password_hash) THEN
        PERFORM auth_internal.record_failed_login(key);
        RETURN auth_internal.refuse('28P01', 'the current password is wrong');
    END IF;
    PERFORM auth_internal.clear_attempts('login', key);
    PERFORM auth_internal.check_new_password(new_password);
    UPDATE auth.users SET password_hash = auth_internal.hash_password(new_password), updated_at = now() WHERE id = me.id;
    PERFORM auth.revoke_user_sessions(me.id, except_session => current_session);
    PERFORM auth_internal.revoke_user_api_keys(me.id);
    DELETE FROM auth.password_resets r WHERE r.user_id = me.id AND r.used_at IS NULL;
    RETURN jsonb_build_object('changed', true);
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
    PERFORM auth_internal.check_email(register.email);
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
    PERFORM auth_internal.clear_attempts('login', auth_internal.email_key(u.email)) FROM auth.users u WHERE u.id = target;
    -- Every other reset token of the user ends with this one.
    DELETE FROM auth.password_resets r WHERE r.user_id = target AND r.used_at IS NULL;
    PERFORM auth.revoke_user_sessions(target);
    PERFORM auth_internal.revoke_user_api_keys(target);
END
$$;

-- Creates a key for `role`, or for the user `user_id` (give one of them), with an optional expiry
-- and extra claims. Returns {id, key, name, role, user_id, expires_at}: the key is shown here only.
CREATE OR REPLACE FUNCTION auth.create_api_key(
    name       text,
    role       text DEFAULT NULL,
    user_id    uuid DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL,
    claims     jsonb DEFAULT '{}'
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reserved text[] := auth_internal.api_key_reserved_claims();
    clash text;
    t record;
    new_id uuid;
BEGIN
    IF create_api_key.name IS NULL OR length(create_api_key.name) NOT BETWEEN 1 AND 200 THEN
        PERFORM auth_internal.raise_error('invalid_argument', 'an API key needs a name of 1 to 200 characters');
    END IF;
    IF num_nonnulls(create_api_key.role, create_api_key.user_id) <> 1 THEN
        PERFORM auth_internal.raise_error('invalid_argument', 'give an API key either a role or a user_id');
    END IF;
    IF create_api_key.role IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM pg_roles r WHERE r.rolname = create_api_key.role AND NOT r.rolsuper AND NOT r.rolbypassrls) THEN
        PERFORM auth_internal.raise_error('invalid_argument',
            format('role %s does not exist, is a superuser or bypasses row-level security', quote_ident(create_api_key.role)));
    END IF;
    IF create_api_key.user_id IS NOT NULL THEN
        -- FOR SHARE waits for a password change, reset or disable of the user in progress, which
        -- ends the user's keys: then the user is read again, and a session that made the request
        -- must still be live (the change may have ended it), so no key slips past it.
        PERFORM FROM auth.users u WHERE u.id = create_api_key.user_id AND NOT u.disabled FOR SHARE;
        IF NOT FOUND THEN
            PERFORM auth_internal.raise_error('invalid_argument', 'no such user, or the user is disabled');
        END IF;
        IF EXISTS (SELECT FROM auth.verified_session() v WHERE v.user_id = create_api_key.user_id) THEN
            -- A live session that made the request; with a second factor, verified in it.
            PERFORM auth_internal.require_second_factor();
        END IF;
    END IF;
    IF create_api_key.expires_at <= now() THEN
        PERFORM auth_internal.raise_error('invalid_argument', 'expires_at lies in the past');
    END IF;
    IF create_api_key.claims IS NULL OR jsonb_typeof(create_api_key.claims) <> 'object' THEN
        PERFORM auth_internal.raise_error('invalid_argument', 'claims must be a JSON object');
    END IF;
    -- The first member of a dotted pg_auth.role_claim (app_metadata.role) is pg_auth's too.
    reserved := reserved || split_part(auth_internal.setting('role_claim'), '.', 1);
    SELECT string_agg(k, ', ' ORDER BY k) INTO clash FROM jsonb_object_keys(create_api_key.claims) k WHERE k = ANY (reserved);
    IF clash IS NOT NULL THEN
        PERFORM auth_internal.raise_error('invalid_argument', format('claims pg_auth sets cannot be given: %s', clash));
    END IF;
    -- Published as JSON by pg_auth: numbers beyond int64 and float8 precision, or nesting deeper
    -- than 100, would change or fail on the way.
    IF auth_internal.publishable_json(create_api_key.claims::text)::jsonb IS DISTINCT FROM create_api_key.claims THEN
        PERFORM auth_internal.raise_error('invalid_argument',
            'claims cannot be published unchanged: keep numbers within int64 or float8 precision and nesting under 100 levels');
    END IF;
    SELECT * INTO t FROM auth_internal.new_api_key();
    INSERT INTO auth.api_keys (name, key_hash, role, user_id, claims, expires_at)
    VALUES (create_api_key.name, t.key_hash, create_api_key.role, create_api_key.user_id,
            create_api_key.claims, create_api_key.expires_at)
    RETURNING id INTO new_id;
    RETURN jsonb_build_object('id', new_id, 'key', t.key, 'name', create_api_key.name,
                              'role', create_api_key.role, 'user_id', create_api_key.user_id,
                              'expires_at', create_api_key.expires_at);
END
$$;

-- One row trigger for every audited table: what changed, told as events.
CREATE OR REPLACE FUNCTION auth_internal.audit_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    events text[] := '{}';
    user_id uuid;
    email_key bytea;
    session_id uuid;
    api_key_id uuid;
    detail jsonb := '{}';
BEGIN
    CASE TG_TABLE_NAME
    WHEN 'sessions' THEN
        user_id := NEW.user_id;
        session_id := NEW.id;
        IF TG_OP = 'INSERT' THEN
            events := '{session_started}';
        ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
            events := '{session_ended}';
        ELSIF OLD.token_hash IS DISTINCT FROM NEW.token_hash THEN
            events := '{session_refreshed}';
        ELSIF OLD.aal IS DISTINCT FROM NEW.aal THEN
            events := '{second_factor_verified}';
        END IF;
    WHEN 'users' THEN
        IF TG_OP = 'DELETE' THEN
            user_id := OLD.id;
            events := '{user_deleted}';
        ELSIF TG_OP = 'INSERT' THEN
            user_id := NEW.id;
            events := '{user_created}';
            detail := jsonb_build_object('role', NEW.role);
        ELSE
            user_id := NEW.id;
            IF OLD.disabled IS DISTINCT FROM NEW.disabled THEN
                events := events || CASE WHEN NEW.disabled THEN 'user_disabled' ELSE 'user_enabled' END;
            END IF;
            -- pg_auth's password changes and resets move updated_at; a sign-in re-hashing the
            -- same password at a new argon2 cost does not.
            IF OLD.password_hash IS DISTINCT FROM NEW.password_hash THEN
                events := events || CASE WHEN NEW.updated_at IS DISTINCT FROM OLD.updated_at
                                         THEN 'password_changed' ELSE 'password_rehashed' END;
            END IF;
            IF OLD.role IS DISTINCT FROM NEW.role THEN
                events := events || 'role_changed'::text;
                detail := jsonb_build_object('from', OLD.role, 'to', NEW.role);
            END IF;
            IF OLD.email IS DISTINCT FROM NEW.email THEN
                events := events || 'email_changed'::text;
            END IF;
            IF NEW.email_verified AND NOT OLD.email_verified THEN
                events := events || 'email_verified'::text;
            END IF;
        END IF;
    WHEN 'login_attempts' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
        email_key := NEW.email_key;
        detail := jsonb_build_object('failed_logins', NEW.failed_logins);
        IF TG_OP = 'INSERT' OR NEW.failed_logins IS DISTINCT FROM OLD.failed_logins THEN
            events := '{sign_in_failed}';
        END IF;
        IF NEW.locked_until > now() AND (TG_OP = 'INSERT' OR OLD.locked_until IS DISTINCT FROM NEW.locked_until) THEN
            events := events || 'account_locked'::text;
            detail := detail || jsonb_build_object('locked_until', NEW.locked_until);
        END IF;
    WHEN 'password_resets' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
        user_id := NEW.user_id;
        IF TG_OP = 'INSERT' THEN
            events := '{password_reset_requested}';
        ELSIF OLD.used_at IS NULL AND NEW.used_at IS NOT NULL THEN
            events := '{password_reset_used}';
        END IF;
    WHEN 'api_keys' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
        user_id := NEW.user_id;
        api_key_id := NEW.id;
        detail := jsonb_build_object('name', NEW.name, 'role', NEW.role);
        IF TG_OP = 'INSERT' THEN
            events := '{api_key_created}';
        ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
            events := '{api_key_revoked}';
        END IF;
    WHEN 'keys' THEN
        IF TG_OP = 'DELETE' THEN
            events := '{key_deleted}';
            detail := jsonb_build_object('kid', OLD.kid);
        ELSE
            detail := jsonb_build_object('kid', NEW.kid, 'algorithm', NEW.algorithm);
            IF TG_OP = 'INSERT' THEN
                events := '{key_added}';
            ELSIF OLD.retire_after IS DISTINCT FROM NEW.retire_after THEN
                events := '{key_retired}';
                detail := detail || jsonb_build_object('retire_after', NEW.retire_after);
            END IF;
        END IF;
    WHEN 'revoked_tokens' THEN
        IF TG_OP = 'INSERT' THEN
            events := '{token_revoked}';
            detail := jsonb_build_object('jti', NEW.jti);
        END IF;
    WHEN 'mfa_factors' THEN
        IF TG_OP = 'DELETE' THEN
            user_id := OLD.user_id;
            events := CASE WHEN OLD.confirmed_at IS NOT NULL THEN '{second_factor_removed}'::text[] ELSE '{}' END;
        ELSE
            user_id := NEW.user_id;
            IF TG_OP = 'INSERT' THEN
                events := '{second_factor_enrolling}';
            ELSIF OLD.confirmed_at IS NULL AND NEW.confirmed_at IS NOT NULL THEN
                events := '{second_factor_enrolled}';
            ELSIF NEW.failed_attempts > 0 AND NEW.failed_attempts IS DISTINCT FROM OLD.failed_attempts THEN
                events := '{second_factor_failed}';
                detail := jsonb_build_object('failed_attempts', NEW.failed_attempts);
            END IF;
            IF NEW.locked_until > now() AND OLD.locked_until IS DISTINCT FROM NEW.locked_until THEN
                events := events || 'second_factor_locked'::text;
                detail := detail || jsonb_build_object('locked_until', NEW.locked_until);
            END IF;
        END IF;
    WHEN 'recovery_codes' THEN
        user_id := NEW.user_id;
        IF OLD.used_at IS NULL AND NEW.used_at IS NOT NULL THEN
            events := '{recovery_code_used}';
        END IF;
    WHEN 'one_time_codes' THEN
        user_id := NEW.user_id;
        email_key := NEW.email_key;
        detail := jsonb_build_object('purpose', NEW.purpose);
        IF TG_OP = 'INSERT' THEN
            events := '{code_requested}';
        ELSIF NEW.failed_attempts IS DISTINCT FROM OLD.failed_attempts THEN
            events := '{code_failed}';
            detail := detail || jsonb_build_object('failed_attempts', NEW.failed_attempts);
        ELSIF OLD.used_at IS NULL AND NEW.used_at IS NOT NULL AND NEW.user_id IS NOT NULL THEN
            events := '{code_used}';
        END IF;
    WHEN 'identities' THEN
        IF TG_OP = 'DELETE' THEN
            user_id := OLD.user_id;
            events := '{identity_unlinked}';
            detail := jsonb_build_object('provider', OLD.provider);
        ELSIF TG_OP = 'INSERT' THEN
            user_id := NEW.user_id;
            events := '{identity_linked}';
            detail := jsonb_build_object('provider', NEW.provider);
        END IF;
    WHEN 'provider_keys' THEN
        detail := jsonb_build_object('provider', NEW.provider, 'kid', NEW.kid);
        IF TG_OP = 'INSERT' THEN
            events := '{provider_key_added}';
        ELSIF OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL THEN
            events := '{provider_key_retired}';
            detail := detail || jsonb_build_object('retired_at', NEW.retired_at);
        END IF;
    END CASE;
    PERFORM auth_internal.record_audit(events, user_id, email_key, session_id, api_key_id, detail);
    RETURN NULL;
END
$$;

-- sql/second_factor.sql
-- Second factor: TOTP (RFC 6238, the codes of authenticator apps) and recovery codes. Signing in
-- with a password, a code or an identity provider gives a session at aal1; verifying the second
-- factor raises that session to aal2, which RLS can require (auth.aal(), auth.mfa_satisfied()).
-- The TOTP secret must be readable to check codes, so it is stored as is, in a table no web role
-- can read. Wrong codes are counted per factor like failed logins (pg_auth.login_max_failures
-- within pg_auth.login_failure_window lock it for pg_auth.login_cooldown).

CREATE TABLE auth.mfa_factors (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL UNIQUE REFERENCES auth.users ON DELETE CASCADE,
    secret          bytea NOT NULL CHECK (length(secret) = 20),
    created_at      timestamptz NOT NULL DEFAULT now(),
    confirmed_at    timestamptz,
    -- The step of the last code accepted: a code is good once.
    last_used_step  bigint,
    failed_attempts integer NOT NULL DEFAULT 0,
    failures_since  timestamptz,
    locked_until    timestamptz
);
REVOKE ALL ON auth.mfa_factors FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.mfa_factors', '');

-- Single-use codes for a lost authenticator; only the SHA-256 of user id and code is stored.
CREATE TABLE auth.recovery_codes (
    code_hash  bytea PRIMARY KEY CHECK (length(code_hash) = 32),
    user_id    uuid NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX recovery_codes_user_id ON auth.recovery_codes (user_id);
REVOKE ALL ON auth.recovery_codes FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.recovery_codes', '');

CREATE FUNCTION auth_internal.recovery_code_hash(user_id uuid, code text) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth_internal.hash_token(user_id::pg_catalog.text || ':' || auth_internal.normalize_recovery_code(code)) $$;

-- Whether user `user_id` has a confirmed second factor.
CREATE FUNCTION auth_internal.has_second_factor(user_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM auth.mfa_factors f
                   WHERE f.user_id = has_second_factor.user_id AND f.confirmed_at IS NOT NULL)
$$;

-- The live session auth.authenticate verified in this transaction (cookie or sid-bound JWT), or
-- not_signed_in (PA017).
CREATE FUNCTION auth_internal.current_session() RETURNS auth.sessions
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s auth.sessions;
BEGIN
    SELECT x.* INTO s FROM auth.verified_session() v JOIN auth.sessions x ON x.id = v.session_id
    WHERE x.revoked_at IS NULL AND x.expires_at > now() AND x.idle_expires_at > now();
    IF s.id IS NULL THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    RETURN s;
END
$$;

-- Account changes that could take an account from its owner (email, password, other sessions,
-- API keys) need, for a user with a confirmed second factor, that factor verified in this session
-- (aal2): a stolen password alone is then not enough. PA026 otherwise.
CREATE FUNCTION auth_internal.require_second_factor() RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions := auth_internal.current_session();
BEGIN
    IF me.aal IS DISTINCT FROM 'aal2'
       AND auth_internal.has_second_factor(me.user_id) THEN
        PERFORM auth_internal.raise_error('second_factor_state',
            'this account has a second factor: verify it in this session first (auth.verify_totp)');
    END IF;
END
$$;

-- Changes that add a lasting way into the account (an email address, an identity) need a
-- session signed in within pg_auth.reauthentication_window, not a cookie that may have been
-- stolen long ago: PA017 (sign in again) otherwise.
CREATE FUNCTION auth_internal.require_recent_sign_in() RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions := auth_internal.current_session();
    window_secs integer := auth_internal.setting('reauthentication_window')::int;
BEGIN
    IF window_secs > 0 AND me.created_at < now() - make_interval(secs => window_secs) THEN
        PERFORM auth_internal.raise_error('not_signed_in',
            format('sign in again first: this needs a sign-in within the last %s seconds', window_secs));
    END IF;
END
$$;

-- Checks a second-factor code of user `user_id`: a TOTP code (once per step), or a recovery code
-- when `recovery` (once). Wrong codes count towards the factor's lock; while locked, 429.
-- The caller returns a refusal on false, so that the count commits.
CREATE FUNCTION auth_internal.check_second_factor(user_id uuid, code text, recovery boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f auth.mfa_factors;
    step bigint;
    window_secs integer := auth_internal.setting('login_failure_window')::int;
BEGIN
    SELECT * INTO f FROM auth.mfa_factors m WHERE m.user_id = check_second_factor.user_id FOR UPDATE;
    IF f.id IS NULL THEN
        PERFORM auth_internal.raise_error('second_factor_state', 'no second factor is enrolled; enrol one with auth.enroll_totp()');
    END IF;
    IF f.locked_until > now() THEN
        PERFORM auth_internal.raise_error('too_many_attempts', format('too many wrong codes; try again in %s seconds',
                                                     ceil(extract(epoch FROM f.locked_until - now()))));
    END IF;
    PERFORM auth_internal.count_attempt('second_factor', uuid_send(f.user_id), auth_internal.setting('login_max_failures')::int,
                                        window_secs);
    IF octet_length(code) <= 64 THEN
        IF recovery THEN
            UPDATE auth.recovery_codes r SET used_at = now()
            WHERE r.code_hash = auth_internal.recovery_code_hash(f.user_id, code) AND r.user_id = f.user_id
              AND r.used_at IS NULL;
            IF FOUND THEN
                UPDATE auth.mfa_factors m SET failed_attempts = 0, failures_since = NULL WHERE m.id = f.id;
                PERFORM auth_internal.clear_attempts('second_factor', uuid_send(f.user_id));
                RETURN true;
            END IF;
        ELSE
            step := auth_internal.totp_matching_step(f.secret, code, extract(epoch FROM now())::bigint, f.last_used_step);
            IF step IS NOT NULL THEN
                UPDATE auth.mfa_factors m SET last_used_step = step, failed_attempts = 0, failures_since = NULL
                WHERE m.id = f.id;
                PERFORM auth_internal.clear_attempts('second_factor', uuid_send(f.user_id));
                RETURN true;
            END IF;
        END IF;
    END IF;
    UPDATE auth.mfa_factors m
    SET failed_attempts = CASE WHEN m.failures_since > now() - make_interval(secs => window_secs) THEN m.failed_attempts + 1 ELSE 1 END,
        failures_since = CASE WHEN m.failures_since > now() - make_interval(secs => window_secs) THEN m.failures_since ELSE now() END
    WHERE m.id = f.id;
    UPDATE auth.mfa_factors m SET locked_until = now() + make_interval(secs => auth_internal.setting('login_cooldown')::int)
    WHERE m.id = f.id AND m.failed_attempts >= auth_internal.setting('login_max_failures')::int;
    RETURN false;
END
$$;

-- The current session at aal2, and a new JWT carrying it when asked.
CREATE FUNCTION auth_internal.raise_to_aal2(session auth.sessions, return_jwt boolean) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    UPDATE auth.sessions s SET aal = 'aal2' WHERE s.id = session.id;
    result := jsonb_build_object('aal', 'aal2', 'session_id', session.id);
    IF return_jwt THEN
        result := result || jsonb_build_object('jwt', auth_internal.session_jwt(session.user_id, session.id));
    END IF;
    RETURN result;
END
$$;

-- Starts enrolling a TOTP factor for the signed-in user: {factor_id, secret, uri}. Show `uri` as
-- a QR code (or `secret` to type in); auth.confirm_totp with a first code finishes. Calling it
-- again before confirming replaces the secret; with a confirmed factor it is refused (PA026).
-- Both need a session signed in within pg_auth.reauthentication_window (PA017 otherwise).
CREATE FUNCTION auth.enroll_totp(issuer text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions := auth_internal.current_session();
    account text;
    secret bytea := auth_internal.new_totp_secret();
    factor uuid;
BEGIN
    -- A factor locks out whoever lacks it: never from a cookie that may have been stolen long ago.
    PERFORM auth_internal.require_recent_sign_in();
    SELECT u.email INTO account FROM auth.users u WHERE u.id = me.user_id FOR UPDATE;
    IF auth_internal.has_second_factor(me.user_id) THEN
        PERFORM auth_internal.raise_error('second_factor_state', 'a TOTP factor is already enrolled; auth.unenroll_totp() removes it');
    END IF;
    IF length(issuer) > 100 THEN
        RAISE EXCEPTION 'issuer must have at most 100 characters' USING ERRCODE = '22023';
    END IF;
    DELETE FROM auth.mfa_factors f WHERE f.user_id = me.user_id;
    INSERT INTO auth.mfa_factors (user_id, secret) VALUES (me.user_id, secret) RETURNING id INTO factor;
    RETURN jsonb_build_object('factor_id', factor, 'secret', auth_internal.totp_secret_text(secret),
        'uri', auth_internal.totp_uri(secret, coalesce(nullif(issuer, ''), auth_internal.setting('totp_issuer')), account));
END
$$;

-- Finishes enrolment with a first code from the app: the factor is confirmed, the session is at
-- aal2, and {aal, session_id, recovery_codes} returns ten recovery codes, shown this once.
-- A wrong code returns NULL with 401 (X-Auth-Error: PA025), counted.
CREATE FUNCTION auth.confirm_totp(code text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
    codes text[];
BEGIN
    PERFORM auth_internal.require_read_write('auth.confirm_totp');
    me := auth_internal.current_session();
    PERFORM auth_internal.require_recent_sign_in();
    IF NOT EXISTS (SELECT FROM auth.mfa_factors f WHERE f.user_id = me.user_id AND f.confirmed_at IS NULL) THEN
        PERFORM auth_internal.raise_error('second_factor_state', 'no TOTP factor awaits confirmation; start with auth.enroll_totp()');
    END IF;
    IF NOT auth_internal.check_second_factor(me.user_id, code, false) THEN
        RETURN auth_internal.refuse('PA025', 'the code is wrong or was used');
    END IF;
    UPDATE auth.mfa_factors f SET confirmed_at = now() WHERE f.user_id = me.user_id;
    codes := auth_internal.new_recovery_codes();
    DELETE FROM auth.recovery_codes r WHERE r.user_id = me.user_id;
    INSERT INTO auth.recovery_codes (code_hash, user_id)
    SELECT auth_internal.recovery_code_hash(me.user_id, c), me.user_id FROM unnest(codes) AS c;
    RETURN auth_internal.raise_to_aal2(me, false) || jsonb_build_object('recovery_codes', to_jsonb(codes));
END
$$;

-- The current session, for a call that needs the user's confirmed factor (read-write: a wrong
-- code is counted). PA026 with `missing` when there is none.
CREATE FUNCTION auth_internal.session_with_factor(what text, missing text) RETURNS auth.sessions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
BEGIN
    PERFORM auth_internal.require_read_write(what);
    me := auth_internal.current_session();
    IF NOT auth_internal.has_second_factor(me.user_id) THEN
        PERFORM auth_internal.raise_error('second_factor_state', missing);
    END IF;
    RETURN me;
END
$$;

-- Verifies a code from the authenticator app for the current session: {aal: "aal2", session_id}
-- (plus a new JWT carrying aal2 when return_jwt). A wrong or used code returns NULL with 401
-- (X-Auth-Error: PA025), counted towards the factor's lock.
CREATE FUNCTION auth.verify_totp(code text, return_jwt boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
BEGIN
    me := auth_internal.session_with_factor('auth.verify_totp', 'no confirmed TOTP factor; enrol with auth.enroll_totp() and auth.confirm_totp()');
    IF NOT auth_internal.check_second_factor(me.user_id, code, false) THEN
        RETURN auth_internal.refuse('PA025', 'the code is wrong or was used');
    END IF;
    RETURN auth_internal.raise_to_aal2(me, return_jwt);
END
$$;

-- Like auth.verify_totp with a recovery code (each works once): {aal, session_id,
-- recovery_codes_left}.
CREATE FUNCTION auth.verify_recovery_code(code text, return_jwt boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
BEGIN
    me := auth_internal.session_with_factor('auth.verify_recovery_code', 'no confirmed TOTP factor, so no recovery codes');
    IF NOT auth_internal.check_second_factor(me.user_id, code, true) THEN
        RETURN auth_internal.refuse('PA025', 'the recovery code is wrong or was used');
    END IF;
    RETURN auth_internal.raise_to_aal2(me, return_jwt) || jsonb_build_object('recovery_codes_left',
        (SELECT count(*) FROM auth.recovery_codes r WHERE r.user_id = me.user_id AND r.used_at IS NULL));
END
$$;

-- Removes the signed-in user's TOTP factor and recovery codes. Needs a fresh second factor: a
-- current TOTP code or an unused recovery code, given here (a wrong one: NULL, 401, counted).
CREATE FUNCTION auth.unenroll_totp(code text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
BEGIN
    me := auth_internal.session_with_factor('auth.unenroll_totp', 'no confirmed TOTP factor to remove');
    -- Six digits are a TOTP code; anything else is taken for a recovery code (never six digits).
    IF NOT auth_internal.check_second_factor(me.user_id, code,
               auth_internal.normalize_recovery_code(coalesce(code, '')) !~ '^[0-9]{6}$') THEN
        RETURN auth_internal.refuse('PA025', 'a current code or an unused recovery code is needed to remove the factor');
    END IF;
    DELETE FROM auth.mfa_factors f WHERE f.user_id = me.user_id;
    DELETE FROM auth.recovery_codes r WHERE r.user_id = me.user_id;
    RETURN jsonb_build_object('unenrolled', true);
END
$$;

-- The signed-in user's second-factor state: {enrolled, confirmed, aal, recovery_codes_left}.
CREATE FUNCTION auth.mfa_status() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions := auth_internal.current_session();
    f auth.mfa_factors;
BEGIN
    SELECT * INTO f FROM auth.mfa_factors m WHERE m.user_id = me.user_id;
    RETURN jsonb_build_object('enrolled', f.id IS NOT NULL, 'confirmed', f.confirmed_at IS NOT NULL,
        'aal', me.aal,
        'recovery_codes_left', (SELECT count(*) FROM auth.recovery_codes r WHERE r.user_id = me.user_id AND r.used_at IS NULL));
END
$$;

-- For RLS: true when the request's user has no confirmed second factor, or verified it (aal2).
-- A policy `USING (auth.mfa_satisfied())` makes users who enrolled verify before they see rows;
-- `USING (auth.aal() = 'aal2')` requires a second factor of everyone.
CREATE FUNCTION auth.mfa_satisfied() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT auth.aal() = 'aal2'
        OR NOT auth_internal.has_second_factor(auth.uid())
$$;

-- sql/one_time_codes.sql
-- One-time codes and links, for the application to send (pg_auth sends no mail): sign in without
-- a password, verify an email address, confirm an email change. Each request makes one entry
-- usable either by its six-digit code (typed, with the email) or by its link token (clicked): once,
-- until it expires, and only the newest entry of an email and purpose. Stored as SHA-256 only.
-- Known and unknown emails take the same path: an unknown email gets an entry nobody can use,
-- so throttling and cost are the same, and the request function returns NULL for it — the
-- application's API must answer the client the same either way.

CREATE TABLE auth.one_time_codes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- SHA-256 of the lower-cased address the code goes to (as auth.login_attempts).
    email_key       bytea NOT NULL CHECK (length(email_key) = 32),
    purpose         text NOT NULL CHECK (purpose IN ('sign_in', 'verify_email', 'change_email')),
    -- NULL: no account (yet); such an entry signs in only when it carries `email` to create one.
    user_id         uuid REFERENCES auth.users ON DELETE CASCADE,
    -- The address an account is created with (sign_in with create_user) or changed to.
    email           text,
    -- change_email: the session that asked; the change dies with it (a password reset or change,
    -- a sign-out, the session ending any way).
    session_id      uuid REFERENCES auth.sessions ON DELETE CASCADE,
    code_hash       bytea NOT NULL CHECK (length(code_hash) = 32),
    link_hash       bytea NOT NULL UNIQUE CHECK (length(link_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    failed_attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX one_time_codes_email_key ON auth.one_time_codes (email_key, created_at);
CREATE INDEX one_time_codes_user_id ON auth.one_time_codes (user_id);
CREATE INDEX one_time_codes_session_id ON auth.one_time_codes (session_id);

-- One row per email that was sent a code: requests and guesses for one email lock it, so they
-- wait for each other (neither the request limit nor an entry's attempt limit can be passed by
-- sending many at once). A row lock in an owner-only table: nobody else can hold it.
CREATE TABLE auth.code_email_locks (
    email_key bytea PRIMARY KEY CHECK (length(email_key) = 32)
);
REVOKE ALL ON auth.code_email_locks FROM PUBLIC;
REVOKE ALL ON auth.one_time_codes FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.one_time_codes', '');

-- Locks the row of `email_key` in auth.code_email_locks (made on first use).
CREATE FUNCTION auth_internal.lock_email_key(email_key bytea) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO auth.code_email_locks (email_key) VALUES (lock_email_key.email_key) ON CONFLICT DO NOTHING;
    SELECT FROM auth.code_email_locks l WHERE l.email_key = lock_email_key.email_key FOR UPDATE;
$$;

-- A new entry for `email_key` (the older unused ones of that purpose end) after the request
-- limit: pg_auth.code_max_requests per pg_auth.code_request_window, counted per email, known or
-- not. {code, link_token, expires_at}.
CREATE FUNCTION auth_internal.new_one_time_code(email_key bytea, purpose text, user_id uuid, email text,
                                                valid_for interval, session_id uuid DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    window_start timestamptz := now() - make_interval(secs => auth_internal.setting('code_request_window')::int);
    oldest timestamptz;
    recent integer;
    code text := auth_internal.new_short_code();
    link record;
    new_id uuid := gen_random_uuid();
BEGIN
    IF valid_for IS NULL OR valid_for < interval '1 minute' OR valid_for > interval '1 day' THEN
        RAISE EXCEPTION 'valid_for must be between 1 minute and 1 day' USING ERRCODE = '22023';
    END IF;
    PERFORM auth_internal.lock_email_key(email_key);
    SELECT count(*), min(c.created_at) INTO recent, oldest FROM auth.one_time_codes c
    WHERE c.email_key = new_one_time_code.email_key AND c.created_at > window_start;
    IF recent >= auth_internal.setting('code_max_requests')::int THEN
        PERFORM auth_internal.raise_error('too_many_attempts', format('too many codes requested for this email; try again in %s seconds',
            ceil(extract(epoch FROM oldest - window_start))));
    END IF;
    -- The older ones expire (used_at says used).
    UPDATE auth.one_time_codes c SET expires_at = now()
    WHERE c.email_key = new_one_time_code.email_key AND c.purpose = new_one_time_code.purpose
      AND c.used_at IS NULL AND c.expires_at > now();
    SELECT * INTO link FROM auth_internal.new_link_token();
    INSERT INTO auth.one_time_codes (id, email_key, purpose, user_id, email, session_id, code_hash, link_hash, expires_at)
    VALUES (new_id, email_key, purpose, user_id, email, session_id,
            auth_internal.hash_token(new_id::pg_catalog.text || ':' || code), link.token_hash, now() + valid_for);
    RETURN jsonb_build_object('code', code, 'link_token', link.token, 'expires_at', now() + valid_for);
END
$$;

-- A code and link to send: {code, link_token, expires_at, email} — send them to `email`, the
-- account's own address —, or NULL when there is nothing to send (no such account, or disabled). purpose: sign_in (passwordless; with
-- create_user, an unknown email gets a code too and the account is made when it is used) or
-- verify_email. Throttled per email (429, PA015).
CREATE FUNCTION auth.request_code(email text, purpose text DEFAULT 'sign_in', create_user boolean DEFAULT false,
                                  valid_for interval DEFAULT '10 minutes') RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target uuid;
    stored text;
    result jsonb;
BEGIN
    PERFORM auth_internal.require_read_write('auth.request_code');
    IF purpose IS NULL OR purpose NOT IN ('sign_in', 'verify_email') THEN
        RAISE EXCEPTION 'purpose must be sign_in or verify_email (an email change starts with auth.request_email_change)'
            USING ERRCODE = '22023';
    END IF;
    PERFORM auth_internal.check_email(request_code.email);
    SELECT u.id, u.email INTO target, stored FROM auth.users u
    WHERE lower(u.email) = lower(request_code.email) AND NOT u.disabled;
    result := auth_internal.new_one_time_code(auth_internal.email_key(request_code.email), purpose, target,
        CASE WHEN target IS NULL AND purpose = 'sign_in' AND create_user THEN request_code.email END, valid_for);
    IF target IS NULL AND NOT (purpose = 'sign_in' AND coalesce(create_user, false)) THEN
        RETURN NULL;
    END IF;
    -- Send it to the account's own address, never to the one typed (they may differ beyond
    -- ASCII case).
    RETURN result || jsonb_build_object('email', coalesce(stored, request_code.email));
END
$$;

-- A code and link to send to `new_email`, the address the signed-in user wants: using it makes
-- that the account's (verified) email, while the session that asked lives. Always returns {code,
-- link_token, expires_at}; an address another account has is refused only when the code is used.
-- Needs a session signed in within pg_auth.reauthentication_window, and a user with a second
-- factor must have verified it in this session.
CREATE FUNCTION auth.request_email_change(new_email text, valid_for interval DEFAULT '10 minutes') RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
BEGIN
    PERFORM auth_internal.require_read_write('auth.request_email_change');
    me := auth_internal.current_session();
    PERFORM auth_internal.require_recent_sign_in();
    PERFORM auth_internal.require_second_factor();
    PERFORM auth_internal.check_email(new_email);
    RETURN auth_internal.new_one_time_code(auth_internal.email_key(new_email), 'change_email', me.user_id,
                                           new_email, valid_for, me.id) || jsonb_build_object('email', new_email);
END
$$;

-- Does what a used entry is for. sign_in: a session (as auth.login; the email counts as
-- verified); verify_email: the email is verified; change_email: the account's email changes.
CREATE FUNCTION auth_internal.redeem_code(entry auth.one_time_codes, return_jwt boolean) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target uuid := entry.user_id;
BEGIN
    IF entry.purpose = 'sign_in' AND target IS NULL AND entry.email IS NOT NULL THEN
        -- The account made on first use (another sign-in may have made it meanwhile).
        INSERT INTO auth.users (email, role, email_verified)
        VALUES (entry.email, auth_internal.setting('user_role'), true)
        ON CONFLICT ((lower(email))) DO NOTHING;
        SELECT u.id INTO target FROM auth.users u
        WHERE lower(u.email) = lower(entry.email) AND auth_internal.same_email(u.email, entry.email);
    END IF;
    -- The account as it is now: still enabled, still at the address the code went to; for an
    -- email change, the session that asked still live.
    SELECT u.id INTO target FROM auth.users u
    WHERE u.id = target AND NOT u.disabled
      AND (entry.purpose = 'change_email' OR auth_internal.email_key(u.email) = entry.email_key)
      AND (entry.purpose <> 'change_email'
           OR EXISTS (SELECT FROM auth.sessions s WHERE s.id = entry.session_id AND s.user_id = u.id
                      AND s.revoked_at IS NULL AND s.expires_at > now() AND s.idle_expires_at > now()))
    FOR UPDATE;
    IF target IS NULL THEN  -- the same answer as a wrong code
        RETURN auth_internal.refuse('PA023', 'the code is wrong, used or expired; request a new one');
    END IF;
    IF entry.purpose = 'change_email' THEN
        BEGIN
            UPDATE auth.users u SET email = entry.email, email_verified = true, updated_at = now() WHERE u.id = target;
        EXCEPTION WHEN unique_violation THEN
            RAISE EXCEPTION 'a user with this email already exists' USING ERRCODE = '23505';
        END;
        -- Reset tokens went to the old address.
        DELETE FROM auth.password_resets r WHERE r.user_id = target AND r.used_at IS NULL;
        RETURN jsonb_build_object('purpose', entry.purpose, 'user_id', target, 'email', entry.email);
    END IF;
    IF entry.purpose = 'sign_in' AND EXISTS (SELECT FROM auth.users u WHERE u.id = target AND NOT u.email_verified) THEN
        PERFORM auth_internal.end_unproved_ways_in(target);
    END IF;
    UPDATE auth.users u SET email_verified = true, updated_at = now() WHERE u.id = target AND NOT u.email_verified;
    IF entry.purpose = 'verify_email' THEN
        RETURN jsonb_build_object('purpose', entry.purpose, 'user_id', target, 'email_verified', true);
    END IF;
    RETURN jsonb_build_object('purpose', entry.purpose) || auth_internal.start_session(target, return_jwt);
END
$$;

-- Uses the code sent to `email` for `purpose`. A wrong code returns NULL with 401
-- (X-Auth-Error: PA023) and counts: after pg_auth.code_max_attempts wrong tries the entry is
-- spent. Unknown emails, expired, used and replaced codes get the same answer.
CREATE FUNCTION auth.verify_code(email text, code text, purpose text DEFAULT 'sign_in',
                                 return_jwt boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key bytea := auth_internal.email_key(verify_code.email);
    entry auth.one_time_codes;
    result jsonb;
BEGIN
    PERFORM auth_internal.require_read_write('auth.verify_code');
    PERFORM auth_internal.lock_email_key(key);
    SELECT * INTO entry FROM auth.one_time_codes c
    WHERE c.email_key = key AND c.purpose = verify_code.purpose AND c.used_at IS NULL AND c.expires_at > now()
    ORDER BY c.created_at DESC LIMIT 1 FOR UPDATE;
    IF entry.id IS NULL THEN
        RETURN auth_internal.refuse('PA023', 'the code is wrong, used or expired; request a new one');
    END IF;
    -- Every code an email may be sent in a window, each tried as often as allowed; no more.
    PERFORM auth_internal.count_attempt('code', key,
        auth_internal.setting('code_max_attempts')::int * auth_internal.setting('code_max_requests')::int,
        auth_internal.setting('code_request_window')::int);
    IF octet_length(code) > 64
       OR entry.code_hash <> auth_internal.hash_token(entry.id::pg_catalog.text || ':' || pg_catalog.btrim(coalesce(code, ''))) THEN
        UPDATE auth.one_time_codes c SET failed_attempts = c.failed_attempts + 1,
            used_at = CASE WHEN c.failed_attempts + 1 >= auth_internal.setting('code_max_attempts')::int THEN now() END
        WHERE c.id = entry.id;
        RETURN auth_internal.refuse('PA023', 'the code is wrong, used or expired; request a new one');
    END IF;
    UPDATE auth.one_time_codes c SET used_at = now() WHERE c.id = entry.id;
    result := auth_internal.redeem_code(entry, return_jwt);
    -- Cleared only after a success that stands: an email change to a taken address fails in
    -- redeem_code, and its code would otherwise clear the count of that address at will.
    IF result IS NOT NULL THEN
        PERFORM auth_internal.clear_attempts('code', key);
    END IF;
    RETURN result;
END
$$;

-- Uses a link token (from any request function; the purpose is the one it was made for).
-- Unknown, used or expired: PA023 (401).
CREATE FUNCTION auth.verify_link(token text, return_jwt boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    entry auth.one_time_codes;
BEGIN
    PERFORM auth_internal.require_read_write('auth.verify_link');
    UPDATE auth.one_time_codes c SET used_at = now()
    WHERE c.link_hash = auth_internal.hash_token(coalesce(token, '')) AND c.used_at IS NULL AND c.expires_at > now()
    RETURNING * INTO entry;
    IF entry.id IS NULL THEN
        PERFORM auth_internal.raise_error('code_invalid');
    END IF;
    RETURN auth_internal.redeem_code(entry, return_jwt);
END
$$;

-- sql/identity_providers.sql
-- Sign-in with an identity provider (OpenID Connect: Google, Microsoft, Keycloak, Auth0…). The
-- browser gets an ID token from the provider and posts it to an API function calling
-- auth.sign_in_with_id_token; pg_auth verifies it with the provider's keys (auth.provider_keys,
-- apart from the key ring: a provider's key never verifies a token of this database), finds or
-- creates the user through auth.identities and starts a session like a password login. The
-- provider's own claims (its `sid` among them) are never published: the session is ours.

CREATE TABLE auth.identity_providers (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,39}$'),
    -- ID tokens must carry exactly this `iss`, and this client id in `aud`.
    issuer           text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 500),
    client_id        text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 500),
    -- Where the keys are fetched (https; http only on loopback); NULL: keys are added by hand.
    jwks_url         text CHECK (length(jwks_url) <= 2000),
    -- Sign an ID token with a verified email into the existing account of that email.
    link_by_email    boolean NOT NULL DEFAULT false,
    -- Create an account for a new identity.
    allow_sign_up    boolean NOT NULL DEFAULT true,
    -- Role of accounts created through this provider (NULL: pg_auth.user_role).
    user_role        text,
    refresh_interval interval NOT NULL DEFAULT '1 hour'
                     CHECK (refresh_interval BETWEEN interval '1 minute' AND interval '7 days'),
    -- A key the provider stopped publishing is still accepted this long (tokens signed just before).
    key_grace_period interval NOT NULL DEFAULT '1 hour'
                     CHECK (key_grace_period BETWEEN interval '0' AND interval '30 days'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    keys_fetched_at      timestamptz,  -- last fetch that succeeded
    fetch_attempted_at   timestamptz,  -- last fetch, whatever came of it
    fetch_error          text,         -- why the last fetch failed; NULL after a success
    refresh_requested_at timestamptz   -- a token named a kid not known yet
);
REVOKE ALL ON auth.identity_providers FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.identity_providers', '');

CREATE TABLE auth.provider_keys (
    provider     text NOT NULL REFERENCES auth.identity_providers ON DELETE CASCADE ON UPDATE CASCADE,
    kid          text NOT NULL,  -- '' for a provider's only key without one
    jwk          jsonb NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),  -- last fetch that listed it
    -- No longer accepted from then on (set when the provider stops listing it, plus the grace).
    retired_at   timestamptz,
    PRIMARY KEY (provider, kid)
);
REVOKE ALL ON auth.provider_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.provider_keys', '');

-- ID tokens used to sign in or link, until they expire: each works once (a stolen one cannot be
-- replayed). Only hashes.
CREATE TABLE auth.used_id_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    expires_at timestamptz NOT NULL
);
REVOKE ALL ON auth.used_id_tokens FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.used_id_tokens', '');

-- Who an identity of a provider is here: several identities per user.
CREATE TABLE auth.identities (
    provider        text NOT NULL REFERENCES auth.identity_providers ON DELETE CASCADE ON UPDATE CASCADE,
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id         uuid NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    email           text,  -- as the provider last said
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user_id ON auth.identities (user_id);
REVOKE ALL ON auth.identities FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.identities', '');

-- Registers a provider. Its keys come from jwks_url (auth.refresh_provider_keys, and the
-- background worker when pg_auth.jwks_databases names this database) or auth.add_provider_key.
CREATE FUNCTION auth.add_identity_provider(name text, issuer text, client_id text, jwks_url text DEFAULT NULL,
                                           link_by_email boolean DEFAULT false, allow_sign_up boolean DEFAULT true,
                                           user_role text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF jwks_url IS NOT NULL THEN
        PERFORM auth_internal.check_jwks_url(jwks_url);
    END IF;
    INSERT INTO auth.identity_providers (name, issuer, client_id, jwks_url, link_by_email, allow_sign_up, user_role)
    VALUES (add_identity_provider.name, add_identity_provider.issuer, add_identity_provider.client_id,
            add_identity_provider.jwks_url, coalesce(add_identity_provider.link_by_email, false),
            coalesce(add_identity_provider.allow_sign_up, true), add_identity_provider.user_role);
END
$$;

-- Stores the usable keys of a provider's JWKS document: new keys are added, listed ones kept
-- (and brought back if retired), keys no longer listed retire after the provider's
-- key_grace_period. PA012 when the document holds no usable key (nothing changes).
-- {keys, added, retired}.
CREATE FUNCTION auth_internal.store_provider_keys(provider text, document text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grace interval;
    listed jsonb;
    added integer;
    retired integer;
BEGIN
    -- NO KEY UPDATE: sign-ins adding identities (a foreign key to this row) do not wait for it.
    SELECT p.key_grace_period INTO grace FROM auth.identity_providers p
    WHERE p.name = store_provider_keys.provider FOR NO KEY UPDATE;
    SELECT jsonb_agg(jsonb_build_object('kid', k.kid, 'jwk', k.jwk)) INTO listed
    FROM auth_internal.usable_provider_keys(document) AS k;
    SELECT count(*) INTO added FROM jsonb_to_recordset(listed) AS l(kid text, jwk jsonb)
    WHERE NOT EXISTS (SELECT FROM auth.provider_keys k WHERE k.provider = store_provider_keys.provider AND k.kid = l.kid);
    INSERT INTO auth.provider_keys AS k (provider, kid, jwk)
    SELECT store_provider_keys.provider, l.kid, l.jwk FROM jsonb_to_recordset(listed) AS l(kid text, jwk jsonb)
    ON CONFLICT ON CONSTRAINT provider_keys_pkey DO UPDATE SET jwk = excluded.jwk, last_seen_at = now(), retired_at = NULL;
    UPDATE auth.provider_keys k SET retired_at = k.last_seen_at + grace
    WHERE k.provider = store_provider_keys.provider AND k.retired_at IS NULL
      AND NOT EXISTS (SELECT FROM jsonb_to_recordset(listed) AS l(kid text, jwk jsonb) WHERE l.kid = k.kid);
    GET DIAGNOSTICS retired = ROW_COUNT;
    RETURN jsonb_build_object('keys', jsonb_array_length(listed), 'added', added, 'retired', retired);
END
$$;

-- Adds one key of a provider by hand (a JWK; no private parts, no oct secrets). It retires like
-- the others if the provider's fetched JWKS does not list it.
CREATE FUNCTION auth.add_provider_key(provider text, jwk jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM auth.identity_providers p WHERE p.name = add_provider_key.provider) THEN
        PERFORM auth_internal.raise_error('invalid_argument', format('unknown identity provider %L', add_provider_key.provider));
    END IF;
    INSERT INTO auth.provider_keys AS k (provider, kid, jwk)
    SELECT add_provider_key.provider, u.kid, u.jwk
    FROM auth_internal.usable_provider_keys(jsonb_build_object('keys', jsonb_build_array(add_provider_key.jwk))::text) AS u
    ON CONFLICT ON CONSTRAINT provider_keys_pkey DO UPDATE SET jwk = excluded.jwk, last_seen_at = now(), retired_at = NULL;
END
$$;

-- Fetches a provider's JWKS now and stores its keys: {provider, keys, added, retired}. A failure
-- keeps the last good keys, is logged (WARNING), recorded in fetch_error and returned as
-- {provider, error}; with `raise_errors` it is raised instead (PA028, or PA012 for a document
-- without usable keys), and then not recorded.
CREATE FUNCTION auth.refresh_provider_keys(provider text, raise_errors boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p auth.identity_providers;
    result jsonb;
    failure text;
    failure_state text;
BEGIN
    SELECT * INTO p FROM auth.identity_providers x WHERE x.name = refresh_provider_keys.provider;
    IF p.name IS NULL OR p.jwks_url IS NULL THEN
        PERFORM auth_internal.raise_error('invalid_argument',
            format('%L is no identity provider with a jwks_url', refresh_provider_keys.provider));
    END IF;
    BEGIN
        result := auth_internal.store_provider_keys(p.name, auth_internal.fetch_jwks(p.jwks_url));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT, failure_state = RETURNED_SQLSTATE;
    END;
    UPDATE auth.identity_providers x
    SET fetch_attempted_at = now(), fetch_error = failure,
        keys_fetched_at = CASE WHEN failure IS NULL THEN now() ELSE x.keys_fetched_at END
    WHERE x.name = p.name;
    IF failure IS NOT NULL THEN
        RAISE WARNING 'pg_auth: keys of identity provider % not refreshed (the last good keys stay): %', p.name, failure;
        IF raise_errors THEN
            RAISE EXCEPTION USING ERRCODE = failure_state, MESSAGE = failure;
        END IF;
        RETURN jsonb_build_object('provider', p.name, 'error', failure);
    END IF;
    RETURN jsonb_build_object('provider', p.name) || result;
END
$$;

-- The providers whose keys are due: older than their refresh_interval, failing (retried), or
-- asked for by an unknown kid — never one fetched less than pg_auth.jwks_min_refresh_interval
-- seconds ago. The background worker refreshes each in a transaction of its own.
CREATE FUNCTION auth_internal.due_provider_names() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(x.name ORDER BY x.name), '{}') FROM auth.identity_providers x
    WHERE x.jwks_url IS NOT NULL
      AND (x.fetch_attempted_at IS NULL
           OR x.fetch_attempted_at < now() - make_interval(secs => auth_internal.setting('jwks_min_refresh_interval')::int)
              AND (x.fetch_error IS NOT NULL OR x.keys_fetched_at IS NULL
                   OR x.fetch_attempted_at < now() - x.refresh_interval
                   OR x.refresh_requested_at > x.fetch_attempted_at))
$$;

-- Refreshes every due provider in this transaction (for pg_cron without the worker: schedule
-- it every minute); returns how many were fetched.
CREATE FUNCTION auth_internal.refresh_due_provider_keys() RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(auth.refresh_provider_keys(name))::integer FROM unnest(auth_internal.due_provider_names()) AS name
$$;

-- The ID token verified with the provider's live keys: {subject, email, email_verified,
-- expires_at}, email_verified only from a provider with link_by_email. NULL when the token names
-- a key not known yet: the keys are then asked for (the caller refuses the sign-in so that this
-- request commits, and the background worker fetches them). A token is good once (PA027 after).
CREATE FUNCTION auth_internal.verified_id_token(p auth.identity_providers, id_token text, nonce text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys jsonb;
    claimed jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(k.jwk ORDER BY k.kid), '[]') INTO keys FROM auth.provider_keys k
    WHERE k.provider = p.name AND (k.retired_at IS NULL OR k.retired_at > now());
    claimed := auth_internal.verify_id_token(id_token, keys, p.issuer, p.client_id, nonce);
    IF claimed IS NULL THEN
        -- Once per fetch: a flood of made-up kids writes nothing more.
        UPDATE auth.identity_providers x SET refresh_requested_at = now()
        WHERE x.name = p.name AND (x.refresh_requested_at IS NULL OR x.refresh_requested_at <= x.fetch_attempted_at);
        RETURN NULL;
    END IF;
    -- Keyed by what was signed (header and payload), not the token's text: an ECDSA signature has
    -- a second valid spelling. Kept while the token still verifies (its exp and the leeway).
    INSERT INTO auth.used_id_tokens (token_hash, expires_at)
    VALUES (auth_internal.hash_token(split_part(id_token, '.', 1) || '.' || split_part(id_token, '.', 2)),
            to_timestamp((claimed ->> 'expires_at')::bigint) + make_interval(secs => auth_internal.setting('leeway')::int))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM auth_internal.raise_error('identity_refused', 'this ID token was used already; sign in with the provider again');
    END IF;
    -- Only a provider trusted to link by email is trusted to have verified one.
    RETURN claimed || jsonb_build_object('email_verified', p.link_by_email AND (claimed ->> 'email_verified')::boolean);
END
$$;

CREATE FUNCTION auth_internal.identity_provider(name text) RETURNS auth.identity_providers
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p auth.identity_providers;
BEGIN
    SELECT * INTO p FROM auth.identity_providers x WHERE x.name = identity_provider.name;
    IF p.name IS NULL THEN
        PERFORM auth_internal.raise_error('identity_refused', format('unknown identity provider %L', identity_provider.name));
    END IF;
    RETURN p;
END
$$;

-- Signs in with an ID token of `provider`: verified (signature with the provider's keys, iss,
-- aud = client id, exp, azp, and `nonce` — pass the one the application sent, always), then the
-- identity's account, or the account of the token's email when the provider verified it and
-- link_by_email is on, or a new account (allow_sign_up, the provider's email). A session as
-- auth.login: {provider, user_id, session_id, token, expires_at, aal, mfa_enrolled[, jwt]}.
-- A token signed with a key not known yet: NULL with 401 (X-Auth-Error: PA010) and the keys are
-- fetched; try again in a few seconds.
CREATE FUNCTION auth.sign_in_with_id_token(provider text, id_token text, nonce text DEFAULT NULL,
                                           return_jwt boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p auth.identity_providers;
    claimed jsonb;
    target uuid;
    existing auth.users;
BEGIN
    PERFORM auth_internal.require_read_write('auth.sign_in_with_id_token');
    p := auth_internal.identity_provider(provider);
    claimed := auth_internal.verified_id_token(p, id_token, nonce);
    IF claimed IS NULL THEN
        RETURN auth_internal.refuse('PA010', 'the token is signed with a key of the provider not known yet; try again in a few seconds');
    END IF;
    SELECT i.user_id INTO target FROM auth.identities i WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    IF target IS NULL THEN
        SELECT * INTO existing FROM auth.users u WHERE lower(u.email) = lower(claimed ->> 'email') FOR UPDATE;
        IF existing.id IS NOT NULL THEN
            IF NOT (p.link_by_email AND (claimed ->> 'email_verified')::boolean
                    AND auth_internal.same_email(existing.email, claimed ->> 'email')) THEN
                PERFORM auth_internal.raise_error('identity_refused',
                    'an account with this email exists and is not linked to this provider; sign in to it and link the provider');
            END IF;
            target := existing.id;
            IF NOT existing.email_verified THEN
                -- Whoever made this account never proved the address; the provider's user has.
                PERFORM auth_internal.end_unproved_ways_in(target);
            END IF;
        ELSIF NOT p.allow_sign_up THEN
            PERFORM auth_internal.raise_error('identity_refused', format('sign-up through %s is off', p.name));
        ELSIF claimed ->> 'email' IS NULL THEN
            PERFORM auth_internal.raise_error('identity_refused', 'the provider gave no email address to create an account with');
        ELSE
            INSERT INTO auth.users (email, role, email_verified)
            VALUES (claimed ->> 'email', coalesce(p.user_role, auth_internal.setting('user_role')), (claimed ->> 'email_verified')::boolean)
            ON CONFLICT DO NOTHING
            RETURNING users.id INTO target;
            IF target IS NULL THEN  -- made meanwhile by someone else
                PERFORM auth_internal.raise_error('identity_refused',
                    'an account with this email exists and is not linked to this provider; sign in to it and link the provider');
            END IF;
        END IF;
        INSERT INTO auth.identities (provider, subject, user_id, email) VALUES (p.name, claimed ->> 'subject', target, claimed ->> 'email')
        ON CONFLICT DO NOTHING;
        SELECT i.user_id INTO target FROM auth.identities i WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    END IF;
    -- The account as it is now, locked: a disabled one gets no session.
    SELECT * INTO existing FROM auth.users u WHERE u.id = target FOR UPDATE;
    IF existing.disabled THEN
        PERFORM auth_internal.raise_error('identity_refused', 'this account is disabled');
    END IF;
    IF (claimed ->> 'email_verified')::boolean AND auth_internal.same_email(existing.email, claimed ->> 'email')
       AND NOT existing.email_verified THEN
        UPDATE auth.users u SET email_verified = true, updated_at = now() WHERE u.id = target;
    END IF;
    UPDATE auth.identities i SET last_sign_in_at = now(), email = claimed ->> 'email'
    WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    RETURN jsonb_build_object('provider', p.name) || auth_internal.start_session(target, return_jwt);
END
$$;

-- Links an identity of `provider` to the signed-in user (verified like a sign-in), from a session
-- signed in within pg_auth.reauthentication_window (PA017 otherwise) and, with a second factor,
-- at aal2. PA027 when it belongs to another account. {provider, subject}.
CREATE FUNCTION auth.link_identity(provider text, id_token text, nonce text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
    p auth.identity_providers;
    claimed jsonb;
    owner uuid;
BEGIN
    PERFORM auth_internal.require_read_write('auth.link_identity');
    me := auth_internal.current_session();
    -- A new way into the account outlives sessions and passwords: only from a recent sign-in,
    -- with the second factor if there is one.
    PERFORM auth_internal.require_recent_sign_in();
    PERFORM auth_internal.require_second_factor();
    p := auth_internal.identity_provider(provider);
    claimed := auth_internal.verified_id_token(p, id_token, nonce);
    IF claimed IS NULL THEN
        RETURN auth_internal.refuse('PA010', 'the token is signed with a key of the provider not known yet; try again in a few seconds');
    END IF;
    INSERT INTO auth.identities (provider, subject, user_id, email) VALUES (p.name, claimed ->> 'subject', me.user_id, claimed ->> 'email')
    ON CONFLICT DO NOTHING;
    SELECT i.user_id INTO owner FROM auth.identities i WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    IF owner <> me.user_id THEN
        PERFORM auth_internal.raise_error('identity_refused', 'this identity is linked to another account');
    END IF;
    RETURN jsonb_build_object('provider', p.name, 'subject', claimed ->> 'subject');
END
$$;

-- Removes the signed-in user's identities of `provider`. True when there was one. Not the
-- last way to sign in of an account without a password (PA027; email codes aside).
CREATE FUNCTION auth.unlink_identity(provider text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions := auth_internal.current_session();
BEGIN
    PERFORM auth_internal.require_second_factor();
    PERFORM FROM auth.users u WHERE u.id = me.user_id FOR UPDATE;
    DELETE FROM auth.identities i WHERE i.user_id = me.user_id AND i.provider = unlink_identity.provider;
    IF FOUND AND NOT EXISTS (SELECT FROM auth.identities i WHERE i.user_id = me.user_id)
       AND EXISTS (SELECT FROM auth.users u WHERE u.id = me.user_id AND u.password_hash IS NULL) THEN
        PERFORM auth_internal.raise_error('identity_refused',
            'this is the account''s last way to sign in; set a password or link another provider first');
    END IF;
    RETURN FOUND;
END
$$;

-- The signed-in user's identities.
CREATE FUNCTION auth.my_identities()
RETURNS TABLE (provider text, subject text, email text, created_at timestamptz, last_sign_in_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.provider, i.subject, i.email, i.created_at, i.last_sign_in_at
    FROM auth.identities i WHERE i.user_id = (auth_internal.current_session()).user_id
    ORDER BY i.provider, i.created_at
$$;

-- The audit trail covers the new tables (sql/audit_triggers.sql).
CREATE TRIGGER mfa_factors_audit AFTER INSERT OR UPDATE OR DELETE ON auth.mfa_factors FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER recovery_codes_audit AFTER UPDATE ON auth.recovery_codes FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER one_time_codes_audit AFTER INSERT OR UPDATE ON auth.one_time_codes FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER identities_audit AFTER INSERT OR DELETE ON auth.identities FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER provider_keys_audit AFTER INSERT OR UPDATE ON auth.provider_keys FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();

-- sql/grants.sql
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth FROM PUBLIC;
-- Internal helpers: not even visible to PUBLIC.
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
    auth.aal(),
    auth.mfa_satisfied(),
    auth.as_uuid(text)
TO PUBLIC;

-- Attempt limits a SQL caller cannot roll back need pg_auth in shared_preload_libraries (README,
-- "Attempt limits"): say so where it is missing.
DO $$
BEGIN
    IF NOT auth_internal.attempt_limits_shared() THEN
        RAISE NOTICE 'pg_auth is not in shared_preload_libraries: a role that can call the sign-in functions from SQL can roll its wrong guesses back and guess without limit'
            USING HINT = 'Add pg_auth to shared_preload_libraries and restart (README, "Attempt limits").';
    END IF;
END
$$;
