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

CREATE FUNCTION auth_internal.copy_user_to_sessions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE auth.sessions s SET user_role = NEW.role, user_email = NEW.email, user_disabled = NEW.disabled
    WHERE s.user_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_copy_to_sessions AFTER UPDATE OF role, email, disabled ON auth.users
FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.email IS DISTINCT FROM NEW.email
                   OR OLD.disabled IS DISTINCT FROM NEW.disabled)
EXECUTE FUNCTION auth_internal.copy_user_to_sessions();

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
