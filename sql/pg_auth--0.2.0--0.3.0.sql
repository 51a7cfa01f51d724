-- pg_auth 0.2.0 → 0.3.0. Applied by ALTER EXTENSION pg_auth UPDATE.

-- Sessions carry a copy of their user's role, email and disabled flag, so auth.authenticate
-- answers a request with one index probe (sql/sessions.sql). Rewrites auth.sessions once.
ALTER TABLE auth.sessions
    ADD COLUMN user_role     text,
    ADD COLUMN user_email    text,
    ADD COLUMN user_disabled boolean;

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

-- Existing sessions get their copy (the trigger reads auth.users).
UPDATE auth.sessions SET user_id = user_id;

-- Each backend keeps a short revocation list in memory; every write tells them all.
CREATE FUNCTION auth_internal."revocations_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'revocations_changed_wrapper';
CREATE TRIGGER revoked_tokens_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON auth.revoked_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION auth_internal.revocations_changed();
CREATE TRIGGER revoked_tokens_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON auth.revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION auth_internal.revocations_changed();
ALTER TABLE auth.revoked_tokens ENABLE ALWAYS TRIGGER revoked_tokens_changed;
ALTER TABLE auth.revoked_tokens ENABLE ALWAYS TRIGGER revoked_tokens_row_changed;
-- The key ring's too: logical replication applies rows (row triggers only) with
-- session_replication_role = replica.
CREATE TRIGGER keys_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON auth.keys
    FOR EACH ROW EXECUTE FUNCTION auth.keys_changed();
ALTER TABLE auth.keys ENABLE ALWAYS TRIGGER keys_changed;
ALTER TABLE auth.keys ENABLE ALWAYS TRIGGER keys_row_changed;

-- API keys (sql/api_keys.sql).
CREATE FUNCTION auth_internal."api_key_reserved_claims"() RETURNS TEXT[] /* Vec < String > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'api_key_reserved_claims_wrapper';
CREATE FUNCTION auth_internal."publishable_json"(
	"json" TEXT /* & str */
) RETURNS TEXT /* core::option::Option<alloc::string::String> */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'publishable_json_wrapper';
CREATE FUNCTION auth_internal."new_api_key"() RETURNS TABLE (
	"key" TEXT,  /* String */
	"key_hash" bytea  /* Vec < u8 > */
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'new_api_key_wrapper';

CREATE TABLE auth.api_keys (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    role       text,
    user_id    uuid REFERENCES auth.users ON DELETE CASCADE,
    -- Extra claims published with the key's requests (tenant ids, scopes); never the ones
    -- pg_auth sets (see auth.create_api_key).
    claims     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(claims) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    CHECK (num_nonnulls(role, user_id) = 1)
);
CREATE INDEX api_keys_user_id ON auth.api_keys (user_id);
REVOKE ALL ON auth.api_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.api_keys', '');

-- Creates a key for `role`, or for the user `user_id` (give one of them), with an optional expiry
-- and extra claims. Returns {id, key, name, role, user_id, expires_at}: the key is shown here only.
CREATE FUNCTION auth.create_api_key(
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
        IF EXISTS (SELECT FROM auth.verified_session() v WHERE v.user_id = create_api_key.user_id)
           AND NOT EXISTS (SELECT FROM auth.verified_session() v JOIN auth.sessions s ON s.id = v.session_id
                           WHERE s.revoked_at IS NULL AND s.expires_at > now() AND s.idle_expires_at > now()) THEN
            PERFORM auth_internal.raise_error('not_signed_in');
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

-- Revokes a key: refused from the next statement on. True when it was not revoked yet.
CREATE FUNCTION auth.revoke_api_key(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH revoked AS (
        UPDATE auth.api_keys k SET revoked_at = now()
        WHERE k.id = revoke_api_key.id AND k.revoked_at IS NULL RETURNING 1)
    SELECT count(*) = 1 FROM revoked
$$;

-- Ends every API key made for a user: called by a password change or reset and by disabling the
-- user, as a thief who held a session could have made keys with it.
CREATE FUNCTION auth_internal.revoke_user_api_keys(user_id uuid) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE auth.api_keys k SET revoked_at = now()
    WHERE k.user_id = revoke_user_api_keys.user_id AND k.revoked_at IS NULL
$$;


-- Every key without its hash, for administrators.
CREATE VIEW auth.api_key_list AS
SELECT k.id, k.name, k.role, k.user_id, k.claims, k.created_at, k.expires_at, k.revoked_at,
       (k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())) AS active
FROM auth.api_keys k;
REVOKE ALL ON auth.api_key_list FROM PUBLIC;

-- Sessions users control, a session limit per user, admin views (sql/sessions.sql, sql/users.sql).
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

CREATE FUNCTION auth_internal."call_claims_hook"(
	"hook" oid, /* pg_sys :: Oid */
	"user_id" uuid, /* pgrx :: Uuid */
	"claims" jsonb /* JsonbText */
) RETURNS jsonb /* JsonbText */
STRICT VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'call_claims_hook_wrapper';

-- pg_auth.claims_hook names a function (user_id uuid, claims jsonb) RETURNS jsonb that sign-in
-- calls with the claims of the JWT it is about to issue; what it returns is signed instead (tenant
-- ids, feature flags), like Supabase's custom access token hook. It must be SECURITY DEFINER and
-- owned by a role that is no superuser, so it runs with that role's rights; that role decides the
-- claims of every JWT pg_auth issues. It may not change sub, sid, exp, iat or jti; when it fails
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
    FROM unnest(ARRAY['exp', 'iat', 'jti', 'sid', 'sub']) AS k WHERE result -> k IS DISTINCT FROM claims -> k;
    IF changed IS NOT NULL THEN
        PERFORM auth_internal.raise_error('claims_hook', format('the claims hook %s may not change %s', fn, changed));
    END IF;
    RETURN result;
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


-- Access and refresh tokens for clients without cookies (sql/sessions.sql).
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

-- A short-lived JWT for session `session_id` of user `user_id` (sub, role, email, sid, jti, iat,
-- exp after pg_auth.jwt_lifetime; the role also at a dotted pg_auth.role_claim), through the
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
        'sub', u.id, 'role', u.role, 'email', u.email, 'sid', session_jwt.session_id, 'jti', gen_random_uuid(),
        'iat', extract(epoch FROM now())::bigint,
        'exp', extract(epoch FROM now())::bigint + auth_internal.setting('jwt_lifetime')::int) || role_claim));
END
$$;


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
-- ends the whole session, as GoTrue does: answered {code: "PA017", …} with status 401 and not
-- raised, so the ending stays. Callable by anyone holding the token: wrap it for web_anon.
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


-- auth.login makes room for the new session (pg_auth.max_sessions_per_user) and calls the claims hook.
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
    locked_hash text;
    new_session uuid;
    lifetime integer := auth_internal.setting('session_lifetime')::int;
    idle integer := auth_internal.setting('session_idle_timeout')::int;
    result jsonb;
BEGIN
    PERFORM auth_internal.require_read_write('auth.login');
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
    PERFORM auth_internal.make_room_for_session(u.id);
    UPDATE auth.users SET password_hash = CASE WHEN auth_internal.password_needs_rehash(password_hash)
                                               THEN auth_internal.hash_password(login.password) ELSE password_hash END
    WHERE id = u.id;
    SELECT * INTO t FROM auth_internal.new_token();
    INSERT INTO auth.sessions (token_hash, user_id, expires_at, idle_expires_at, user_agent, ip)
    SELECT t.token_hash, u.id, now() + make_interval(secs => lifetime), now() + make_interval(secs => least(idle, lifetime)),
           c.user_agent, c.ip
    FROM auth_internal.client() AS c
    RETURNING id INTO new_session;
    PERFORM auth_internal.add_response_header('Set-Cookie', auth_internal.session_cookie(t.token, lifetime));
    result := jsonb_build_object('user_id', u.id, 'session_id', new_session, 'token', t.token,
                                 'expires_at', now() + make_interval(secs => lifetime));
    IF return_jwt THEN
        result := result || jsonb_build_object('jwt', auth_internal.session_jwt(u.id, new_session));
    END IF;
    RETURN result;
END
$$;


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
    WITH gone AS (
        UPDATE auth.sessions s SET revoked_at = now()
        FROM auth.verified_session() AS v
        WHERE s.user_id = v.user_id AND s.id <> v.session_id AND s.revoked_at IS NULL
        RETURNING 1)
    SELECT count(*) INTO ended FROM gone;
    RETURN ended;
END
$$;


-- Every session with its user's email, last refresh, IP and user agent; no token hashes.
CREATE VIEW auth.session_list AS
SELECT s.id, s.user_id, u.email, s.created_at, s.refreshed_at, s.expires_at, s.idle_expires_at,
       s.revoked_at, s.user_agent, s.ip,
       (s.revoked_at IS NULL AND s.expires_at > now() AND s.idle_expires_at > now()) AS active
FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id;
REVOKE ALL ON auth.session_list FROM PUBLIC;


-- Disables a user (logins refused) and ends their sessions.
-- Every user with their lock state; no password hashes.
CREATE VIEW auth.user_list AS
SELECT u.id, u.email, u.username, u.role, u.created_at, u.updated_at, u.disabled, u.email_verified,
       coalesce(a.failed_logins, 0) AS failed_logins, a.locked_until,
       coalesce(a.locked_until > now(), false) AS locked
FROM auth.users u LEFT JOIN auth.login_attempts a ON a.email_key = auth_internal.email_key(u.email);
REVOKE ALL ON auth.user_list FROM PUBLIC;


-- Access rules from a declaration (sql/policies.sql).
-- Declares that `role` may perform `actions` on `tbl`: for each action, one permissive policy
-- for that role and command, the privilege granted unless the role holds it already, and row-level
-- security enabled on the table. With `owner_column` (a uuid column), read_mine reads and
-- create/update/delete touch only rows whose owner is auth.uid(). Running it again replaces the
-- rules it made (idempotent). Returns the statements it ran.
CREATE FUNCTION auth.grant_access(tbl regclass, role name, actions text[], owner_column name DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wanted text[];
    act text;
    rule record;
    own text;
    policy name;
    stmt text;
    held boolean;
BEGIN
    IF tbl IS NULL OR role IS NULL OR actions IS NULL OR cardinality(actions) = 0 THEN
        RAISE EXCEPTION 'grant_access needs a table, a role and at least one action' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = grant_access.role) THEN
        RAISE EXCEPTION 'role % does not exist', quote_ident(role) USING ERRCODE = '22023';
    END IF;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '22023';
    END IF;
    IF owner_column IS NOT NULL AND NOT EXISTS (
           SELECT FROM pg_attribute a
           WHERE a.attrelid = tbl AND a.attname = owner_column AND a.attnum > 0 AND NOT a.attisdropped
             AND a.atttypid = 'uuid'::regtype) THEN
        RAISE EXCEPTION '% has no uuid column % to compare with auth.uid()', tbl, quote_ident(owner_column)
            USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(DISTINCT x ORDER BY x) INTO wanted
    FROM unnest(actions) AS a(v),
         unnest(CASE WHEN a.v = 'all' THEN ARRAY['create', 'read', 'update', 'delete'] ELSE ARRAY[a.v] END) AS x;
    FOREACH act IN ARRAY wanted LOOP
        IF act IS NULL OR act NOT IN ('create', 'read', 'read_mine', 'update', 'delete') THEN
            RAISE EXCEPTION 'unknown action % (use create, read, read_mine, update, delete, all)', quote_nullable(act)
                USING ERRCODE = '22023';
        END IF;
        IF act = 'read_mine' AND owner_column IS NULL THEN
            RAISE EXCEPTION 'read_mine needs an owner_column' USING ERRCODE = '22023';
        END IF;
    END LOOP;
    -- Replace what an earlier call made for these actions, keeping privileges still needed.
    RETURN QUERY SELECT * FROM auth.revoke_access(tbl, role, wanted);
    stmt := format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE stmt;
    RETURN NEXT stmt;
    FOREACH act IN ARRAY wanted LOOP
        -- The command and privilege of the action, and whether rows are the caller's own only.
        SELECT a.command, a.command AS privilege, a.own_rows INTO rule
        FROM (VALUES ('read', 'SELECT', false), ('read_mine', 'SELECT', true),
                     ('create', 'INSERT', owner_column IS NOT NULL), ('update', 'UPDATE', owner_column IS NOT NULL),
                     ('delete', 'DELETE', owner_column IS NOT NULL)) AS a(action, command, own_rows)
        WHERE a.action = act;
        own := CASE WHEN rule.own_rows THEN format('(%I = (SELECT auth.uid()))', owner_column) ELSE '(true)' END;
        -- pg_auth_<role>_<action>; a hash of the role when that is longer than an identifier may be.
        policy := CASE WHEN octet_length(format('pg_auth_%s_%s', role, act)) <= 63
                       THEN format('pg_auth_%s_%s', role, act)
                       ELSE format('pg_auth_%s_%s', left(md5(role), 16), act) END;
        stmt := format('CREATE POLICY %I ON %s AS PERMISSIVE FOR %s TO %I', policy, tbl, rule.command, role)
             || CASE rule.command
                    WHEN 'SELECT' THEN ' USING ' || own
                    WHEN 'DELETE' THEN ' USING ' || own
                    WHEN 'INSERT' THEN ' WITH CHECK ' || own
                    ELSE ' USING ' || own || ' WITH CHECK ' || own END;
        EXECUTE stmt;
        RETURN NEXT stmt;
        -- Held already, and not by the grant of another of pg_auth's rules (then this rule shares it).
        SELECT EXISTS (SELECT FROM pg_class c, aclexplode(c.relacl) p
                       WHERE c.oid = tbl AND p.grantee = (SELECT r.oid FROM pg_roles r WHERE r.rolname = grant_access.role)
                         AND p.privilege_type = rule.privilege)
           AND NOT EXISTS (SELECT FROM auth.access_rules o
                           WHERE o.table_name = tbl AND o.role = grant_access.role AND o.privilege = rule.privilege
                             AND o.granted) INTO held;
        IF NOT held THEN
            stmt := format('GRANT %s ON %s TO %I', rule.privilege, tbl, role);
            EXECUTE stmt;
            RETURN NEXT stmt;
        END IF;
        -- The comment remembers whether pg_auth granted the privilege, so removal revokes only that.
        EXECUTE format('COMMENT ON POLICY %I ON %s IS %L', policy, tbl,
                       format('pg_auth access rule: %s %s; %s %s', role, act,
                              CASE WHEN held THEN 'privilege already held:' ELSE 'granted' END, rule.privilege));
    END LOOP;
END
$$;

-- Removes the rules grant_access made for `role` on `tbl` (all of them, or those of `actions`):
-- their policies, and each privilege pg_auth granted for them unless another remaining rule of the
-- role on the table still needs it. Row-level security stays enabled. Returns the statements run.
CREATE FUNCTION auth.revoke_access(tbl regclass, role name, actions text[] DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rule record;
    stmt text;
BEGIN
    IF tbl IS NULL OR role IS NULL THEN
        RAISE EXCEPTION 'revoke_access needs a table and a role' USING ERRCODE = '22023';
    END IF;
    FOR rule IN
        SELECT r.policy, r.privilege, r.granted FROM auth.access_rules r
        WHERE r.table_name = tbl AND r.role = revoke_access.role
          AND (actions IS NULL OR r.action = ANY (actions))
    LOOP
        stmt := format('DROP POLICY %I ON %s', rule.policy, tbl);
        EXECUTE stmt;
        RETURN NEXT stmt;
        IF rule.granted AND NOT EXISTS (
               SELECT FROM auth.access_rules o
               WHERE o.table_name = tbl AND o.role = revoke_access.role AND o.privilege = rule.privilege) THEN
            stmt := format('REVOKE %s ON %s FROM %I', rule.privilege, tbl, role);
            EXECUTE stmt;
            RETURN NEXT stmt;
        END IF;
    END LOOP;
END
$$;

-- Every rule grant_access made, read from the catalog (what pg_policies shows anyone, with the
-- action and whether pg_auth granted the privilege).
CREATE VIEW auth.access_rules AS
SELECT p.polrelid::regclass AS table_name,
       (SELECT r.rolname FROM pg_roles r WHERE r.oid = p.polroles[1]) AS role,
       (regexp_match(d.description, ' ([a-z_]+); [^;]*$'))[1] AS action,
       p.polname AS policy,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       pg_get_expr(p.polqual, p.polrelid) AS using_expression,
       pg_get_expr(p.polwithcheck, p.polrelid) AS check_expression,
       (regexp_match(d.description, '; (?:granted|privilege already held:) ([A-Z]+)$'))[1] AS privilege,
       d.description ~ '; granted [A-Z]+$' AS granted
FROM pg_policy p
JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_policy'::regclass AND d.objsubid = 0
WHERE d.description LIKE 'pg_auth access rule: %';
GRANT SELECT ON auth.access_rules TO PUBLIC;

-- A password change or reset and disabling a user end the user's API keys too.
-- Disables a user (logins refused) and ends their sessions and API keys (enabling the user again
-- brings neither back).
CREATE OR REPLACE FUNCTION auth.disable_user(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE auth.users SET disabled = true, updated_at = now() WHERE id = disable_user.user_id;
    PERFORM auth.revoke_user_sessions(disable_user.user_id);
    PERFORM auth_internal.revoke_user_api_keys(disable_user.user_id);
    DELETE FROM auth.password_resets r WHERE r.user_id = disable_user.user_id AND r.used_at IS NULL;
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
    PERFORM auth_internal.revoke_user_api_keys(target);
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
    IF octet_length(old_password) > 1024 OR NOT auth_internal.verify_password(coalesce(old_password, ''), me.password_hash) THEN
        PERFORM auth_internal.record_failed_login(key);
        RETURN auth_internal.refuse('28P01', 'the current password is wrong');
    END IF;
    PERFORM auth_internal.check_new_password(new_password);
    UPDATE auth.users SET password_hash = auth_internal.hash_password(new_password), updated_at = now() WHERE id = me.id;
    PERFORM auth.revoke_user_sessions(me.id, except_session => current_session);
    PERFORM auth_internal.revoke_user_api_keys(me.id);
    DELETE FROM auth.password_resets r WHERE r.user_id = me.id AND r.used_at IS NULL;
    RETURN jsonb_build_object('changed', true);
END
$$;


-- The audit trail (sql/audit.sql, sql/audit_triggers.sql).
CREATE TABLE auth.audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    event      text NOT NULL,
    -- The user concerned; no foreign key, so entries outlive the user.
    user_id    uuid,
    -- Failed sign-ins: the SHA-256 of the lower-cased email tried, known or not.
    email_key  bytea,
    session_id uuid,
    api_key_id uuid,
    -- Who made the change: the signed-in user of the request (auth.uid()), and the database login.
    actor_id   uuid,
    db_login   text NOT NULL DEFAULT session_user,
    ip         text,
    user_agent text,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON auth.audit_log (at);
CREATE INDEX audit_log_user_id ON auth.audit_log (user_id, at);
REVOKE ALL ON auth.audit_log FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.audit_log', '');

-- Whether pg_auth.audit is on. Plain SQL with every name qualified, so it is inlined where it is
-- used (the triggers' WHEN) and no caller's search_path reaches it.
CREATE FUNCTION auth_internal.auditing() RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.lower(pg_catalog.current_setting('pg_auth.audit', true))
           OPERATOR(pg_catalog.=) ANY (ARRAY['on', 'true', 'yes', '1'])
$$;

-- The client as PostgREST describes it: IP (the first X-Forwarded-For entry, else X-Real-IP,
-- at most 64 characters) and user agent (at most 512); NULL outside PostgREST, and when a SQL
-- caller set request.headers to something that is no JSON.
CREATE FUNCTION auth_internal.client(OUT ip text, OUT user_agent text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    headers jsonb;
BEGIN
    BEGIN
        headers := nullif(current_setting('request.headers', true), '')::jsonb;
    EXCEPTION WHEN OTHERS THEN
        headers := NULL;
    END;
    ip := left(coalesce(split_part(headers ->> 'x-forwarded-for', ',', 1), headers ->> 'x-real-ip'), 64);
    user_agent := left(headers ->> 'user-agent', 512);
END
$$;

-- Records `events` about a user (or an email tried), a session or an API key, with the request's
-- actor, IP and user agent.
CREATE FUNCTION auth_internal.record_audit(events text[], user_id uuid, email_key bytea, session_id uuid,
                                           api_key_id uuid, detail jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    actor uuid;
BEGIN
    IF coalesce(cardinality(events), 0) = 0 THEN
        RETURN;
    END IF;
    BEGIN
        actor := auth.uid();
    EXCEPTION WHEN OTHERS THEN  -- claims changed by hand: no actor rather than no audit
        actor := NULL;
    END;
    INSERT INTO auth.audit_log (event, user_id, email_key, session_id, api_key_id, actor_id, ip, user_agent, detail)
    SELECT e, record_audit.user_id, record_audit.email_key, record_audit.session_id, record_audit.api_key_id,
           actor, c.ip, c.user_agent, coalesce(record_audit.detail, '{}')
    FROM unnest(events) WITH ORDINALITY AS x(e, n), auth_internal.client() AS c
    ORDER BY x.n;
END
$$;

-- One row trigger for every audited table: what changed, told as events.
CREATE FUNCTION auth_internal.audit_change() RETURNS trigger
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
    END CASE;
    PERFORM auth_internal.record_audit(events, user_id, email_key, session_id, api_key_id, detail);
    RETURN NULL;
END
$$;

-- The audit trail's triggers (sql/audit.sql): one per audited table, all calling
-- auth_internal.audit_change(). The WHEN keeps the cost of an unaudited write to a check of the setting.
CREATE TRIGGER sessions_audit AFTER INSERT OR UPDATE ON auth.sessions FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON auth.users FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER login_attempts_audit AFTER INSERT OR UPDATE ON auth.login_attempts FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER password_resets_audit AFTER INSERT OR UPDATE ON auth.password_resets FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER api_keys_audit AFTER INSERT OR UPDATE ON auth.api_keys FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER keys_audit AFTER INSERT OR UPDATE OR DELETE ON auth.keys FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();
CREATE TRIGGER revoked_tokens_audit AFTER INSERT ON auth.revoked_tokens FOR EACH ROW
    WHEN (auth_internal.auditing()) EXECUTE FUNCTION auth_internal.audit_change();

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
    )
    SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM r) + (SELECT count(*) FROM a) + (SELECT count(*) FROM l)
           + auth.cleanup_revoked_tokens()
$$;


-- A request header as PostgREST passed it (names are lower case), or NULL; NULL too when a SQL
-- caller set request.headers to something that is no JSON (a failing audit trigger or login must
-- not hand such a caller a way around the failure count).
CREATE OR REPLACE FUNCTION auth_internal.request_header(name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN nullif(current_setting('request.headers', true), '')::jsonb ->> lower(name);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;


-- A reset request refuses a read-only transaction first (no known/unknown email oracle).
CREATE OR REPLACE FUNCTION auth.request_password_reset(email text, valid_for interval DEFAULT '1 hour') RETURNS text
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


-- Who may call what. Closed by default: no function of schema auth is executable by PUBLIC
-- except the public API below. Internal helpers (hashing, cookies, settings, key parsing) and
-- everything that manages keys, users and sessions are for the owner, or for roles granted
-- explicitly (your API functions, see examples/todo/schema.sql). Every upgrade script ends with
-- this same block; regress/sql/privileges.sql lists the result.

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
    auth.as_uuid(text)
TO PUBLIC;
