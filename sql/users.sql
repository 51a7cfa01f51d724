-- Users, passwords and password resets. Tables are owner-only; applications reach them through
-- the SECURITY DEFINER functions below, which are not executable by PUBLIC: wrap them in your
-- API schema (see examples/todo) and grant those wrappers to web roles.

CREATE TABLE auth.users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
    username       text CHECK (length(username) BETWEEN 1 AND 100),
    password_hash  text,
    role           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    disabled       boolean NOT NULL DEFAULT false,
    email_verified boolean NOT NULL DEFAULT false,
    metadata       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE UNIQUE INDEX users_email_key ON auth.users (lower(email));
CREATE UNIQUE INDEX users_username_key ON auth.users (lower(username));
REVOKE ALL ON auth.users FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.users', '');

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

-- The key of an email in auth.login_attempts.
CREATE FUNCTION auth_internal.email_key(email text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth_internal.hash_token(lower(coalesce(email, ''))) $$;

CREATE TABLE auth.password_resets (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX password_resets_user_id ON auth.password_resets (user_id);
REVOKE ALL ON auth.password_resets FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.password_resets', '');

-- Raises an error PostgREST turns into exactly this HTTP status and JSON body; outside
-- PostgREST it is an ordinary error with SQLSTATE PGRST and the JSON as message.
CREATE FUNCTION auth.raise_http(status integer, code text, message text) RETURNS void
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

CREATE FUNCTION auth_internal.check_new_password(password text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF password IS NULL OR length(password) < auth_internal.setting('password_min_length')::int THEN
        RAISE EXCEPTION 'password must have at least % characters', auth_internal.setting('password_min_length')
            USING ERRCODE = '22023';
    END IF;
END
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

-- Creates a user and returns its id. The role defaults to pg_auth.user_role.
CREATE FUNCTION auth.register(
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

-- A one-time password reset token for the application to send by email: single use, valid
-- for `valid_for`, stored hashed. NULL for an unknown or disabled email (do not reveal which).
CREATE FUNCTION auth.request_password_reset(email text, valid_for interval DEFAULT '1 hour') RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target uuid;
    t record;
BEGIN
    -- Read-only, a known email would fail at the INSERT and an unknown one not: refused first.
    PERFORM auth_internal.require_read_write('auth.request_password_reset');
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

-- Sets a new password with a reset token and ends all the user's sessions.
CREATE FUNCTION auth.reset_password(token text, new_password text) RETURNS void
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

-- Two addresses are the same only up to ASCII case: lower() under the database's collation also
-- folds other letters (U+0130 'İ' to 'i', U+212A KELVIN SIGN to 'k'), so an address a provider
-- verified, or a code went to, could otherwise stand for another account's.
CREATE FUNCTION auth_internal.same_email(a text, b text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.translate(a, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
         = pg_catalog.translate(b, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
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

-- Every user with their lock state; no password hashes.
CREATE VIEW auth.user_list AS
SELECT u.id, u.email, u.username, u.role, u.created_at, u.updated_at, u.disabled, u.email_verified,
       coalesce(a.failed_logins, 0) AS failed_logins, a.locked_until,
       coalesce(a.locked_until > now(), false) AS locked
FROM auth.users u LEFT JOIN auth.login_attempts a ON a.email_key = auth_internal.email_key(u.email);
REVOKE ALL ON auth.user_list FROM PUBLIC;

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

-- Disables a user (logins refused) and ends their sessions and API keys (enabling the user again
-- brings neither back).
CREATE FUNCTION auth.disable_user(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE auth.users SET disabled = true, updated_at = now() WHERE id = disable_user.user_id;
    PERFORM auth.revoke_user_sessions(disable_user.user_id);
    PERFORM auth_internal.revoke_user_api_keys(disable_user.user_id);
    DELETE FROM auth.password_resets r WHERE r.user_id = disable_user.user_id AND r.used_at IS NULL;
END
$$;

CREATE FUNCTION auth.enable_user(user_id uuid) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ UPDATE auth.users SET disabled = false, updated_at = now() WHERE id = enable_user.user_id $$;

-- Deletes a user; their sessions and reset tokens go with them.
CREATE FUNCTION auth.delete_user(user_id uuid) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM auth.users WHERE id = delete_user.user_id $$;
