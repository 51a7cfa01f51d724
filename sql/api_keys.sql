-- API keys for apps and machines. A key is `pak_` and 256 random bits, shown once by
-- auth.create_api_key; only its SHA-256 is stored. auth.authenticate() takes it from the
-- API-key header (pg_auth.api_key_header, x-api-key) or any other token source, finds it with
-- one index probe and writes nothing. A key acts as a role, or as a user (their current role,
-- ending when the user is disabled or deleted). Owner-only: applications wrap these functions.

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
