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
