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
