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
