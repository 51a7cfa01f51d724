-- Server-side sessions. The client holds a 256-bit random token (in an HttpOnly cookie);
-- only its SHA-256 is stored. auth.authenticate() looks the hash up with one index probe and
-- writes nothing, so it works in READ ONLY transactions and on replicas. A session ends at
-- expires_at (absolute) or idle_expires_at (pushed forward by auth.refresh() and logins).

CREATE TABLE auth.sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_id         uuid NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    refreshed_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    idle_expires_at timestamptz NOT NULL,
    user_agent      text,
    ip              text,
    revoked_at      timestamptz,
    -- The token the last auth.refresh() replaced: it still signs in until previous_valid_until
    -- (pg_auth.refresh_grace_period), for requests already in flight, but never refreshes.
    previous_token_hash  bytea UNIQUE CHECK (length(previous_token_hash) = 32),
    previous_valid_until timestamptz,
    -- What auth.authenticate needs of the user, copied so that one index probe answers a request.
    -- Kept equal to auth.users by the triggers below; NULL (a row written with triggers off) makes
    -- auth.authenticate read auth.users instead.
    user_role     text,
    user_email    text,
    user_disabled boolean,
    -- Authenticator assurance level: aal1 after one factor (password, code, identity provider),
    -- aal2 once a second factor was verified in this session (sql/second_factor.sql).
    aal           text NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2'))
);
CREATE INDEX sessions_user_id ON auth.sessions (user_id);
REVOKE ALL ON auth.sessions FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.sessions', '');

-- Every token a refresh replaced, for reuse detection: presenting one to auth.refresh_token()
-- after the grace period means it was stolen (the thief or the owner refreshed since), and ends
-- the session. Only hashes; deleted with the session.
CREATE TABLE auth.rotated_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES auth.sessions ON DELETE CASCADE,
    rotated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rotated_tokens_session_id ON auth.rotated_tokens (session_id);
REVOKE ALL ON auth.rotated_tokens FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.rotated_tokens', '');

-- A new session (or one moved to another user, or its copy edited by hand) takes the user's
-- values from auth.users. FOR SHARE waits for a concurrent change of the user and then reads
-- what it committed, so a session is never created with values a change just missed.
CREATE FUNCTION auth_internal.copy_user_into_session() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT u.role, u.email, u.disabled INTO NEW.user_role, NEW.user_email, NEW.user_disabled
    FROM auth.users u WHERE u.id = NEW.user_id FOR SHARE;
    RETURN NEW;
END
$$;
CREATE TRIGGER sessions_copy_user BEFORE INSERT OR UPDATE OF user_id, user_role, user_email, user_disabled
ON auth.sessions FOR EACH ROW EXECUTE FUNCTION auth_internal.copy_user_into_session();
ALTER TABLE auth.sessions ENABLE ALWAYS TRIGGER sessions_copy_user;

-- A change of a user's role, email or disabled flag reaches every session of the user in the same
-- transaction: the next request sees it, as it would reading auth.users. No column list: a
-- BEFORE trigger of the application may change the flag without naming it in SET.
CREATE FUNCTION auth_internal.copy_user_to_sessions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE auth.sessions s SET user_role = NEW.role, user_email = NEW.email, user_disabled = NEW.disabled
    WHERE s.user_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_copy_to_sessions AFTER UPDATE ON auth.users
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.email IS DISTINCT FROM NEW.email
                   OR OLD.disabled IS DISTINCT FROM NEW.disabled)
EXECUTE FUNCTION auth_internal.copy_user_to_sessions();
-- ALWAYS: also for changes applied with session_replication_role = replica (logical replication).
ALTER TABLE auth.users ENABLE ALWAYS TRIGGER users_copy_to_sessions;

-- Appends one header to PostgREST's response.headers (a JSON array of one-key objects).
CREATE FUNCTION auth_internal.add_response_header(name text, value text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT set_config('response.headers',
        (coalesce(nullif(current_setting('response.headers', true), ''), '[]')::jsonb
         || jsonb_build_array(jsonb_build_object(name, value)))::text, true);
$$;

-- A refusal that must leave a record (a failed sign-in is counted, a reused refresh token ends its
-- session) is returned, not raised, so that the transaction commits. It returns NULL, with status
-- 401 and the reason in the X-Auth-Error header (and a NOTICE for SQL clients): never a value a
-- PostgREST client could filter on, as a filter that fails only on one kind of answer (?x=like.*\
-- raises when it meets a value) would roll the record back.
CREATE FUNCTION auth_internal.refuse(code text, message text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('response.status', '401', true);
    PERFORM auth_internal.add_response_header('X-Auth-Error', code || ' ' || message);
    RAISE NOTICE '% %', code, message;
    RETURN NULL;
END
$$;

-- The functions that record a refusal refuse to run in a read-only transaction, before they check
-- anything: PostgREST runs GET /rpc/... read-only yet still calls the function, whose first write
-- would then fail at a different statement for a right and a wrong password, telling them apart
-- while nothing is counted.
CREATE FUNCTION auth_internal.require_read_write(what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'on' THEN
        RAISE EXCEPTION '% records failed attempts and needs a read-write transaction (through PostgREST: POST, not GET)', what
            USING ERRCODE = '25006';
    END IF;
END
$$;

-- A request header as PostgREST passed it (names are lower case), or NULL; NULL too when a SQL
-- caller set request.headers to something that is no JSON (a failing audit trigger or login must
-- not hand such a caller a way around the failure count).
CREATE FUNCTION auth_internal.request_header(name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN nullif(current_setting('request.headers', true), '')::jsonb ->> lower(name);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
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

-- Signs in. On success: a new session, its cookie appended to response.headers, and
-- {user_id, session_id, token, expires_at} (plus a short-lived JWT carrying `sid` when
-- return_jwt). A wrong email or password is not an exception, so the failure count survives:
-- it returns NULL with status 401 and X-Auth-Error: 28P01 (auth_internal.refuse). Too many failures lock the
-- email for pg_auth.login_cooldown (429, an exception). Known and unknown emails take the same
-- path: same answers, one password check each, the same lockout (auth.login_attempts).
CREATE FUNCTION auth.login(email text, password text, return_jwt boolean DEFAULT false) RETURNS jsonb
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

-- A short-lived JWT for session `session_id` of user `user_id` (sub, role, email, sid, aal, jti,
-- iat, exp after pg_auth.jwt_lifetime; the role also at a dotted pg_auth.role_claim), through the
-- claims hook, signed with the ring.
CREATE FUNCTION auth_internal.session_jwt(user_id uuid, session_id uuid) RETURNS text
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
CREATE FUNCTION auth_internal.apply_claims_hook(user_id uuid, claims jsonb) RETURNS jsonb
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
-- pg_auth.max_sessions_per_user (0: no limit): before a login adds a session to a user who has
-- that many live ones, the oldest are ended (pg_auth.session_limit_mode = end_oldest; 1 makes a
-- single-session mode) or the login is refused with PA021 (refuse). The caller holds the user row
-- lock, so concurrent logins of one user count one after the other.
CREATE FUNCTION auth_internal.make_room_for_session(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    max_sessions integer := auth_internal.setting('max_sessions_per_user')::int;
    mode text := auth_internal.setting('session_limit_mode');
    live integer;
BEGIN
    IF max_sessions = 0 THEN
        RETURN;
    END IF;
    IF mode NOT IN ('end_oldest', 'refuse') THEN
        PERFORM auth_internal.raise_error('invalid_argument',
            format('pg_auth.session_limit_mode is %L; use end_oldest or refuse', mode));
    END IF;
    SELECT count(*) INTO live FROM auth.sessions s
    WHERE s.user_id = make_room_for_session.user_id AND s.revoked_at IS NULL
      AND s.expires_at > now() AND s.idle_expires_at > now();
    IF live < max_sessions THEN
        RETURN;
    END IF;
    IF mode = 'refuse' THEN
        PERFORM auth_internal.raise_error('session_limit',
            format('this account already has %s active sessions (the most allowed); sign out of one first', live));
    END IF;
    UPDATE auth.sessions s SET revoked_at = now()
    WHERE s.id IN (SELECT o.id FROM auth.sessions o
                   WHERE o.user_id = make_room_for_session.user_id AND o.revoked_at IS NULL
                     AND o.expires_at > now() AND o.idle_expires_at > now()
                   ORDER BY o.created_at, o.id LIMIT live - max_sessions + 1);
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

-- Counts a failed sign-in (or password check) for an email, known or not, and locks it after
-- pg_auth.login_max_failures failures within pg_auth.login_failure_window.
CREATE FUNCTION auth_internal.record_failed_login(email_key bytea) RETURNS void
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

-- Ends the current session and clears the cookie. 401 when not signed in with a session.
CREATE FUNCTION auth.logout() RETURNS void
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

-- Rotates the current session's token, pushes the idle expiry forward and sets the new cookie.
-- The old token still signs in for pg_auth.refresh_grace_period (requests already in flight, a
-- second tab), then stops; it can never refresh. The absolute expiry does not move. Only the session token
-- itself refreshes: a JWT carrying sid never turns into a session cookie. Of two refreshes
-- racing with the same old token, the second gets 401 and the first one's new token stays valid.
CREATE FUNCTION auth.refresh() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    sid uuid;
    ends timestamptz;
    replaced bytea;
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
    RETURNING s.id, s.expires_at, s.previous_token_hash INTO sid, ends, replaced;
    IF ends IS NULL THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    INSERT INTO auth.rotated_tokens (token_hash, session_id) VALUES (replaced, sid) ON CONFLICT DO NOTHING;
    PERFORM auth_internal.add_response_header('Set-Cookie',
        auth_internal.session_cookie(t.token, ceil(extract(epoch FROM ends - now()))::int));
    RETURN jsonb_build_object('session_id', sid, 'token', t.token, 'expires_at', ends);
END
$$;

-- For clients without cookies (mobile apps, SPAs sending Bearer JWTs): trades a refresh token
-- (the session token auth.login returned) for a new short-lived JWT and a new refresh token:
-- {access_token, token_type, expires_in, refresh_token, session_id}. The token replaced moments
-- ago (pg_auth.refresh_grace_period; concurrent requests) gets an access token and no new refresh
-- token. One replaced longer ago is reuse — it was stolen, or the thief refreshed first — and
-- ends the whole session, as GoTrue does: answered NULL with status 401 and X-Auth-Error: PA017
-- (auth_internal.refuse), not raised, so the ending stays. Callable by anyone holding the token: wrap it for web_anon.
CREATE FUNCTION auth.refresh_token(refresh_token text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    presented bytea := auth_internal.hash_token(coalesce(refresh_token, ''));
    t record;
    s record;
    reused uuid;
    lifetime integer := auth_internal.setting('jwt_lifetime')::int;
BEGIN
    PERFORM auth_internal.require_read_write('auth.refresh_token');
    SELECT * INTO t FROM auth_internal.new_token();
    UPDATE auth.sessions AS x
    SET token_hash = t.token_hash, refreshed_at = now(),
        previous_token_hash = x.token_hash,
        previous_valid_until = now() + make_interval(secs => auth_internal.setting('refresh_grace_period')::int),
        idle_expires_at = least(x.expires_at, now() + make_interval(secs => auth_internal.setting('session_idle_timeout')::int))
    WHERE x.token_hash = presented AND x.revoked_at IS NULL AND x.expires_at > now() AND x.idle_expires_at > now()
      AND NOT EXISTS (SELECT FROM auth.users u WHERE u.id = x.user_id AND u.disabled)
    RETURNING x.id, x.user_id INTO s;
    IF FOUND THEN
        INSERT INTO auth.rotated_tokens (token_hash, session_id) VALUES (presented, s.id) ON CONFLICT DO NOTHING;
        RETURN jsonb_build_object('access_token', auth_internal.session_jwt(s.user_id, s.id), 'token_type', 'bearer',
                                  'expires_in', lifetime, 'refresh_token', t.token, 'session_id', s.id);
    END IF;
    SELECT x.id, x.user_id INTO s FROM auth.sessions x
    WHERE x.previous_token_hash = presented AND x.previous_valid_until > now()
      AND x.revoked_at IS NULL AND x.expires_at > now() AND x.idle_expires_at > now()
      AND NOT EXISTS (SELECT FROM auth.users u WHERE u.id = x.user_id AND u.disabled);
    IF FOUND THEN
        RETURN jsonb_build_object('access_token', auth_internal.session_jwt(s.user_id, s.id), 'token_type', 'bearer',
                                  'expires_in', lifetime, 'refresh_token', NULL, 'session_id', s.id);
    END IF;
    UPDATE auth.sessions x SET revoked_at = now()
    FROM auth.rotated_tokens r
    WHERE r.token_hash = presented AND x.id = r.session_id AND x.revoked_at IS NULL
    RETURNING x.id INTO reused;
    IF FOUND THEN
        RAISE LOG 'pg_auth: refresh token reused; session % ended', reused;
        IF auth_internal.auditing() THEN
            PERFORM auth_internal.record_audit('{refresh_token_reused}', x.user_id, NULL, x.id, NULL, NULL)
            FROM auth.sessions x WHERE x.id = reused;
        END IF;
        RETURN auth_internal.refuse('PA017', 'refresh token already used; the session is ended, sign in again');
    END IF;
    PERFORM auth_internal.raise_error('not_signed_in');
END
$$;

-- ---- sessions the signed-in user controls (OWASP ASVS 5.0 §7.4-7.5) ------------------------------
-- They act on the user of the session auth.authenticate verified (cookie, or a JWT carrying
-- sid); PA017 when there is none. Owner-only like the rest: applications wrap them.

-- The user's live sessions, newest first; `current` is the one making this request.
CREATE FUNCTION auth.my_sessions()
RETURNS TABLE (id uuid, created_at timestamptz, refreshed_at timestamptz, expires_at timestamptz,
               user_agent text, ip text, current boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM auth.verified_session()) THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    RETURN QUERY
    SELECT s.id, s.created_at, s.refreshed_at, least(s.expires_at, s.idle_expires_at), s.user_agent, s.ip,
           s.id = v.session_id
    FROM auth.verified_session() AS v JOIN auth.sessions s ON s.user_id = v.user_id
    WHERE s.revoked_at IS NULL AND s.expires_at > now() AND s.idle_expires_at > now()
    ORDER BY s.created_at DESC, s.id;
END
$$;

-- Ends one of the user's own sessions (the current one too: then the cookie stays until the
-- next request clears it; use auth.logout() for that). True when it was live.
CREATE FUNCTION auth.end_my_session(session_id uuid) RETURNS boolean
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
CREATE FUNCTION auth.end_my_other_sessions() RETURNS bigint
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

-- ---- administration ------------------------------------------------------------------------------

-- Every session with its user's email, last refresh, IP and user agent; no token hashes.
CREATE VIEW auth.session_list AS
SELECT s.id, s.user_id, u.email, s.created_at, s.refreshed_at, s.expires_at, s.idle_expires_at,
       s.revoked_at, s.user_agent, s.ip,
       (s.revoked_at IS NULL AND s.expires_at > now() AND s.idle_expires_at > now()) AS active
FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id;
REVOKE ALL ON auth.session_list FROM PUBLIC;

CREATE FUNCTION auth.revoke_session(session_id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH ended AS (
        UPDATE auth.sessions SET revoked_at = now()
        WHERE id = revoke_session.session_id AND revoked_at IS NULL RETURNING 1
    )
    SELECT count(*) > 0 FROM ended
$$;

-- Ends every session of a user (except one, e.g. the current); returns how many.
CREATE FUNCTION auth.revoke_user_sessions(user_id uuid, except_session uuid DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH ended AS (
        UPDATE auth.sessions SET revoked_at = now()
        WHERE sessions.user_id = revoke_user_sessions.user_id AND revoked_at IS NULL
          AND id IS DISTINCT FROM except_session
        RETURNING 1
    )
    SELECT count(*) FROM ended
$$;

-- Deletes sessions, reset tokens and revocations that can no longer matter; returns how many.
-- Schedule it, e.g. with pg_cron:  SELECT cron.schedule('0 * * * *', 'SELECT auth.cleanup_expired()');
CREATE FUNCTION auth.cleanup_expired() RETURNS bigint
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
