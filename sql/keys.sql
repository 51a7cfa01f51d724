-- The key ring. Key material is readable by the table owner only; every role verifies through
-- auth.verify_jwt(), which reads the table as its owner for one fixed SELECT (src/keyring.rs).

CREATE TABLE auth.keys (
    kid          text PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 200),
    algorithm    text NOT NULL CHECK (algorithm IN ('HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512',
                                                    'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA')),
    -- Private key text (HMAC secret, PKCS#8 PEM, oct JWK): present only for keys we sign with.
    secret       text,
    -- Public half as a JWK; NULL for HMAC secrets, which are never published.
    public_jwk   jsonb,
    origin       text NOT NULL DEFAULT 'imported' CHECK (origin IN ('generated', 'imported')),
    -- Signs from this moment on (the newest active key signs). Verifies as soon as it is added.
    active_from  timestamptz NOT NULL DEFAULT now(),
    -- Neither signs nor verifies after this moment.
    retire_after timestamptz,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (secret IS NOT NULL OR public_jwk IS NOT NULL)
);

COMMENT ON TABLE auth.keys IS 'pg_auth key ring: signing and verification keys (owner-only).';

REVOKE ALL ON auth.keys FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('auth.keys', '');

CREATE TRIGGER keys_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON auth.keys
    FOR EACH STATEMENT EXECUTE FUNCTION auth.keys_changed();
-- The row trigger is for logical replication, whose apply fires row triggers only (ALWAYS: also
-- with session_replication_role = replica); the statement trigger covers TRUNCATE.
CREATE TRIGGER keys_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON auth.keys
    FOR EACH ROW EXECUTE FUNCTION auth.keys_changed();
ALTER TABLE auth.keys ENABLE ALWAYS TRIGGER keys_changed;
ALTER TABLE auth.keys ENABLE ALWAYS TRIGGER keys_row_changed;

-- Generates a key in the database and returns its kid.
CREATE FUNCTION auth.generate_key(
    algorithm   text,
    kid         text DEFAULT NULL,
    active_from timestamptz DEFAULT now()
) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO auth.keys (kid, algorithm, secret, public_jwk, origin, active_from)
    SELECT m.kid, m.algorithm, m.secret, m.public_jwk, 'generated', coalesce(generate_key.active_from, now())
    FROM auth_internal.new_key_material(generate_key.algorithm, generate_key.kid) AS m
    RETURNING kid
$$;

-- Adds one external key (secret, PEM, JWK): a public key to verify with, or a private one to
-- sign with too. Returns its kid. Re-adding a kid replaces its key.
CREATE FUNCTION auth.add_key(
    key         text,
    kid         text DEFAULT NULL,
    algorithm   text DEFAULT NULL,
    active_from timestamptz DEFAULT now()
) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO auth.keys AS k (kid, algorithm, secret, public_jwk, active_from)
    SELECT d.kid, d.algorithm, d.secret, d.public_jwk, coalesce(add_key.active_from, now())
    FROM auth_internal.describe_key(add_key.key, add_key.kid, add_key.algorithm) AS d
    ON CONFLICT ON CONSTRAINT keys_pkey DO UPDATE
        SET algorithm = excluded.algorithm, secret = excluded.secret, public_jwk = excluded.public_jwk,
            active_from = excluded.active_from, retire_after = NULL
    RETURNING k.kid
$$;

-- Adds or refreshes every public key of a JWKS (an identity provider's, for OIDC sign-in).
-- Only keys that came from a JWKS or add_key without a secret are refreshed: a provider whose
-- JWKS names the kid of one of this database's own keys is refused, never let replace it.
CREATE FUNCTION auth.add_jwks(jwks jsonb) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    clash text;
BEGIN
    SELECT d.kid INTO clash
    FROM auth_internal.describe_key(add_jwks.jwks::text) AS d JOIN auth.keys k ON k.kid = d.kid
    WHERE k.secret IS NOT NULL OR k.origin <> 'imported'
    LIMIT 1;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'invalid key: kid "%" is one of this database''s own keys; a JWKS cannot replace it', clash
            USING ERRCODE = 'PA012', HINT = 'Give the provider''s keys their own kids, or retire and delete the clashing key first.';
    END IF;
    RETURN QUERY
    INSERT INTO auth.keys AS k (kid, algorithm, secret, public_jwk)
    SELECT d.kid, d.algorithm, d.secret, d.public_jwk
    FROM auth_internal.describe_key(add_jwks.jwks::text) AS d
    ON CONFLICT ON CONSTRAINT keys_pkey DO UPDATE
        SET algorithm = excluded.algorithm, public_jwk = excluded.public_jwk, retire_after = NULL
    RETURNING k.kid;
END
$$;

-- Retires a key: from `at` on it neither signs nor verifies. Errors on an unknown kid.
CREATE FUNCTION auth.retire_key(kid text, at timestamptz DEFAULT now()) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE auth.keys AS k SET retire_after = coalesce(retire_key.at, now()) WHERE k.kid = retire_key.kid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no key with kid "%" in the key ring', retire_key.kid
            USING ERRCODE = 'PA010', HINT = 'SELECT kid FROM auth.keys lists the keys.';
    END IF;
END
$$;

-- What admins may look at: everything but the secret.
CREATE VIEW auth.key_ring AS
    SELECT kid, algorithm, origin, secret IS NOT NULL AS can_sign, public_jwk, active_from, retire_after, created_at
    FROM auth.keys;
REVOKE ALL ON auth.key_ring FROM PUBLIC;
