-- The todo app on pg_auth: PostgREST exposes only the schema "api"; "auth" stays private.
-- Sessions live in an HttpOnly cookie; RLS shows each user their own todos and public ones.
-- Loaded by scripts/demo.sh (database pg_auth_demo) and by the end-to-end tests.

DO $$ BEGIN CREATE ROLE authenticator LOGIN NOINHERIT; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE web_anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE web_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT web_anon, web_user TO authenticator;

CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO web_anon, web_user;

-- ---- mail: the app sends codes and links; this demo's "mail server" is a table ------------------

CREATE SCHEMA api_private;
CREATE TABLE api_private.outbox (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sent_at timestamptz NOT NULL DEFAULT now(),
    email   text NOT NULL,
    purpose text NOT NULL,
    code    text NOT NULL,
    link    text NOT NULL
);

-- Mails a code and link (`sent` from auth.request_code or auth.request_email_change; NULL: no
-- account, nothing to send).
CREATE FUNCTION api_private.send_code(email text, purpose text, sent jsonb) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
    -- To the address pg_auth names (the account's own), not the one typed.
    INSERT INTO api_private.outbox (email, purpose, code, link)
    SELECT sent ->> 'email', send_code.purpose, sent ->> 'code', '/rpc/verify_link?token=' || (sent ->> 'link_token')
    WHERE sent IS NOT NULL
$$;

-- The nonce of a sign-in with an identity provider, in an HttpOnly cookie of its own.
CREATE FUNCTION api_private.set_nonce_cookie(nonce text, max_age integer) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT set_config('response.headers',
        (coalesce(nullif(current_setting('response.headers', true), ''), '[]')::jsonb
         || jsonb_build_array(jsonb_build_object('Set-Cookie', format('oidc_nonce=%s; Max-Age=%s; Path=/; HttpOnly; SameSite=Lax%s',
                nonce, max_age, CASE WHEN current_setting('pg_auth.cookie_secure')::boolean THEN '; Secure' ELSE '' END))))::text,
        true)
$$;

CREATE FUNCTION api_private.nonce_cookie() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT nullif(coalesce(nullif(current_setting('request.cookies', true), ''), '{}')::json ->> 'oidc_nonce', '') $$;

-- ---- account functions (SECURITY DEFINER: they call auth.*, which web roles cannot) --------

CREATE FUNCTION api.register(email text, name text, password text) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    session jsonb;
BEGIN
    PERFORM auth.require_json_request();  -- login CSRF: no cross-site form can send JSON
    IF auth.uid() IS NOT NULL THEN
        PERFORM auth.raise_http(403, 'APP01', 'already signed in; log out first');
    END IF;
    IF coalesce(length(trim(name)), 0) = 0 THEN
        RAISE EXCEPTION 'name must not be empty' USING ERRCODE = '22023';
    END IF;
    PERFORM auth.register(email, password, metadata => jsonb_build_object('name', name));
    -- Where sign-in waits for a verified email, the new user gets a verification mail instead.
    IF current_setting('pg_auth.require_verified_email')::boolean THEN
        PERFORM api_private.send_code(email, 'verify_email', auth.request_code(email, 'verify_email'));
        RETURN json_build_object('verification_sent', true);
    END IF;
    session := auth.login(email, password);
    RETURN json_build_object('user_id', session -> 'user_id', 'expires_at', session -> 'expires_at');
END
$$;

CREATE FUNCTION api.login(email text, password text) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    session jsonb;
BEGIN
    PERFORM auth.require_json_request();  -- login CSRF: no cross-site form can send JSON
    IF auth.uid() IS NOT NULL THEN
        PERFORM auth.raise_http(403, 'APP01', 'already signed in; log out first');
    END IF;
    session := auth.login(email, password);
    IF session IS NULL THEN
        RETURN NULL;  -- auth.login set status 401 and X-Auth-Error; NULL leaves a client nothing to filter on
    END IF;
    RETURN json_build_object('user_id', session -> 'user_id', 'expires_at', session -> 'expires_at');
END
$$;

CREATE FUNCTION api.logout() RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.logout();
    RETURN json_build_object('signed_out', true);
END
$$;

CREATE FUNCTION api.refresh_session() RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN auth.refresh() - 'token';
END
$$;

CREATE FUNCTION api."current_user"() RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me json;
BEGIN
    -- The user auth.authenticate verified, not request.jwt.claims (any SQL caller can set those).
    SELECT json_build_object('id', u.id, 'email', u.email, 'name', u.metadata ->> 'name') INTO me
    FROM auth.verified_session() AS v JOIN auth.users u ON u.id = v.user_id;
    IF me IS NULL THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    RETURN me;
END
$$;

REVOKE ALL ON FUNCTION api.register(text, text, text), api.login(text, text), api.logout(),
                       api.refresh_session(), api."current_user"() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.register(text, text, text), api.login(text, text) TO web_anon, web_user;
GRANT EXECUTE ON FUNCTION api.logout(), api.refresh_session(), api."current_user"() TO web_anon, web_user;

-- ---- API keys: a signed-in user makes keys for scripts that act as them -------------------------

-- Only a session (the cookie) makes, lists and revokes keys: a key cannot make more keys.
CREATE FUNCTION api.my_session_user() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me uuid := (SELECT v.user_id FROM auth.verified_session() AS v);
BEGIN
    IF me IS NULL THEN
        PERFORM auth_internal.raise_error('not_signed_in');
    END IF;
    RETURN me;
END
$$;

-- {id, key, name, expires_at}: the key is shown here only; send it as `x-api-key: pak_…`.
CREATE FUNCTION api.create_api_key(name text, expires_in_days integer DEFAULT NULL) RETURNS json
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (auth.create_api_key(create_api_key.name, user_id => api.my_session_user(),
                                expires_at => now() + make_interval(days => expires_in_days)) - 'role' - 'user_id')::json
$$;

CREATE FUNCTION api.my_api_keys() RETURNS TABLE (id uuid, name text, created_at timestamptz,
                                                 expires_at timestamptz, revoked_at timestamptz, active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.id, k.name, k.created_at, k.expires_at, k.revoked_at, k.active
    FROM auth.api_key_list k WHERE k.user_id = api.my_session_user() ORDER BY k.created_at
$$;

-- True when one of the caller's own active keys was revoked.
CREATE FUNCTION api.revoke_api_key(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT auth.revoke_api_key(k.id) FROM auth.api_keys k
                     WHERE k.id = revoke_api_key.id AND k.user_id = api.my_session_user()), false)
$$;

REVOKE ALL ON FUNCTION api.my_session_user(), api.create_api_key(text, integer), api.my_api_keys(),
                       api.revoke_api_key(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.create_api_key(text, integer), api.my_api_keys(), api.revoke_api_key(uuid)
    TO web_anon, web_user;

-- ---- the signed-in user's sessions (devices) ----------------------------------------------------

CREATE FUNCTION api.my_sessions() RETURNS TABLE (id uuid, created_at timestamptz, refreshed_at timestamptz,
                                                 expires_at timestamptz, user_agent text, ip text, current boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM auth.my_sessions() $$;

CREATE FUNCTION api.end_session(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth.end_my_session(end_session.id) $$;

CREATE FUNCTION api.end_other_sessions() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth.end_my_other_sessions() $$;

REVOKE ALL ON FUNCTION api.my_sessions(), api.end_session(uuid), api.end_other_sessions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.my_sessions(), api.end_session(uuid), api.end_other_sessions() TO web_anon, web_user;

-- ---- passwordless sign-in, email verification and change: codes and links by mail -----------------

-- Mails a sign-in code and link (a new email gets an account when it is used) or a verification
-- code. The answer is the same whether the email has an account or not.
CREATE FUNCTION api.request_code(email text, purpose text DEFAULT 'sign_in') RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.require_json_request();
    PERFORM api_private.send_code(email, purpose, auth.request_code(email, purpose, create_user => purpose = 'sign_in'));
    RETURN json_build_object('sent', true);
END
$$;

-- Uses a mailed code: sign_in sets the session cookie; verify_email and change_email say what
-- changed. A wrong code: NULL with 401 (X-Auth-Error), counted.
CREATE FUNCTION api.verify_code(email text, code text, purpose text DEFAULT 'sign_in') RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.require_json_request();
    RETURN auth.verify_code(email, code, purpose) - 'token' - 'session_id';
END
$$;

-- The mailed link: /rpc/verify_link?token=pal_… (POST, as the link's page would send it).
CREATE FUNCTION api.verify_link(token text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.require_json_request();  -- login CSRF: no cross-site form can post an attacker's link
    RETURN auth.verify_link(token) - 'token' - 'session_id';
END
$$;

-- Mails a code to the new address; api.verify_code(new_email, code, 'change_email') confirms.
CREATE FUNCTION api.change_email(new_email text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.require_json_request();
    PERFORM api_private.send_code(new_email, 'change_email', auth.request_email_change(new_email));
    RETURN json_build_object('sent', true);
END
$$;

REVOKE ALL ON FUNCTION api.request_code(text, text), api.verify_code(text, text, text), api.verify_link(text),
                       api.change_email(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.request_code(text, text), api.verify_code(text, text, text), api.verify_link(text),
                          api.change_email(text) TO web_anon, web_user;

-- ---- second factor: TOTP and recovery codes; todos need it once enrolled ---------------------------

-- Each changes the account: JSON only, so no other site's form can post them.
CREATE FUNCTION api.enroll_totp() RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM auth.require_json_request(); RETURN auth.enroll_totp('pg_auth todo'); END $$;

CREATE FUNCTION api.confirm_totp(code text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM auth.require_json_request(); RETURN auth.confirm_totp(code); END $$;

CREATE FUNCTION api.verify_totp(code text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM auth.require_json_request(); RETURN auth.verify_totp(code); END $$;

CREATE FUNCTION api.use_recovery_code(code text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM auth.require_json_request(); RETURN auth.verify_recovery_code(code); END $$;

CREATE FUNCTION api.unenroll_totp(code text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM auth.require_json_request(); RETURN auth.unenroll_totp(code); END $$;

CREATE FUNCTION api.mfa_status() RETURNS json
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth.mfa_status() $$;

REVOKE ALL ON FUNCTION api.enroll_totp(), api.confirm_totp(text), api.verify_totp(text), api.use_recovery_code(text),
                       api.unenroll_totp(text), api.mfa_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.enroll_totp(), api.confirm_totp(text), api.verify_totp(text), api.use_recovery_code(text),
                          api.unenroll_totp(text), api.mfa_status() TO web_anon, web_user;

-- ---- sign-in with an identity provider (configure one with auth.add_identity_provider) -----------

-- 1. Before sending the browser to the provider: a nonce for the provider's sign-in request, also
--    kept in this browser's HttpOnly cookie, so an ID token is good only in the browser that
--    asked for it (a stolen one cannot be replayed elsewhere).
CREATE FUNCTION api.start_provider_sign_in() RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nonce text := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
BEGIN
    PERFORM auth.require_json_request();
    PERFORM api_private.set_nonce_cookie(nonce, 600);
    RETURN json_build_object('nonce', nonce);
END
$$;

-- 2. The browser got `id_token` from the provider; the nonce comes from its cookie, never the body.
CREATE FUNCTION api.sign_in_with_provider(provider text, id_token text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.require_json_request();
    IF auth.uid() IS NOT NULL THEN
        PERFORM auth.raise_http(403, 'APP01', 'already signed in; log out first');
    END IF;
    PERFORM api_private.set_nonce_cookie('', 0);
    RETURN auth.sign_in_with_id_token(provider, id_token, api_private.nonce_cookie()) - 'token' - 'session_id';
END
$$;

CREATE FUNCTION api.link_provider(provider text, id_token text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.require_json_request();
    PERFORM api_private.set_nonce_cookie('', 0);
    RETURN auth.link_identity(provider, id_token, api_private.nonce_cookie());
END
$$;

CREATE FUNCTION api.my_identities() RETURNS TABLE (provider text, email text, created_at timestamptz,
                                                   last_sign_in_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT i.provider, i.email, i.created_at, i.last_sign_in_at FROM auth.my_identities() i $$;

REVOKE ALL ON FUNCTION api.start_provider_sign_in(), api.sign_in_with_provider(text, text),
                       api.link_provider(text, text), api.my_identities() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.start_provider_sign_in(), api.sign_in_with_provider(text, text),
                          api.link_provider(text, text), api.my_identities() TO web_anon, web_user;

-- ---- users: ids and names only --------------------------------------------------------------

CREATE VIEW api.users AS
    SELECT id, metadata ->> 'name' AS name FROM auth.users WHERE NOT disabled;
GRANT SELECT ON api.users TO web_user;

-- ---- todos under row-level security -----------------------------------------------------------

CREATE TABLE api.todos (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NOT NULL DEFAULT auth.uid(),
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    done       boolean NOT NULL DEFAULT false,
    public     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE api.todos ENABLE ROW LEVEL SECURITY;
-- (select auth.uid()) is evaluated once per statement, not once per row.
CREATE POLICY todos_read ON api.todos FOR SELECT USING (public OR user_id = (SELECT auth.uid()));
CREATE POLICY todos_insert ON api.todos FOR INSERT TO web_user WITH CHECK (user_id = (SELECT auth.uid()));
CREATE POLICY todos_update ON api.todos FOR UPDATE TO web_user USING (user_id = (SELECT auth.uid()));
CREATE POLICY todos_delete ON api.todos FOR DELETE TO web_user USING (user_id = (SELECT auth.uid()));
-- A user who enrolled a second factor sees and changes todos only after verifying it (aal2).
CREATE POLICY todos_second_factor ON api.todos AS RESTRICTIVE TO web_user USING ((SELECT auth.mfa_satisfied()));
GRANT SELECT ON api.todos TO web_anon, web_user;
GRANT INSERT (user_id, title, done, public), UPDATE (title, done, public), DELETE ON api.todos TO web_user;

-- ---- pg_auth settings for this app ---------------------------------------------------------------

-- Local development over http: cookies without the Secure flag (keep it on in production).
ALTER ROLE authenticator SET pg_auth.cookie_secure = off;
-- Session cookies for browsers, API keys (x-api-key) for scripts: no JWT sources.
ALTER ROLE authenticator SET pg_auth.token_sources = 'cookie, api_key';
