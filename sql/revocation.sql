-- Immediate revocation of individual tokens by their jti. auth.authenticate() refuses any
-- token whose jti is listed, whichever source it came from (cookie, header, Bearer).

CREATE TABLE auth.revoked_tokens (
    jti        text PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 512),
    revoked_at timestamptz NOT NULL DEFAULT now(),
    -- After this the token is expired anyway and the row may be cleaned up.
    expires_at timestamptz
);
REVOKE ALL ON auth.revoked_tokens FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.revoked_tokens', '');

-- Each backend keeps a short list in memory (src/revocation.rs); every write tells them all. The
-- row trigger is for logical replication, whose apply fires row triggers only (ALWAYS: also with
-- session_replication_role = replica); the statement trigger covers TRUNCATE. Backends keep the
-- list only while both are there and enabled.
CREATE TRIGGER revoked_tokens_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON auth.revoked_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION auth_internal.revocations_changed();
CREATE TRIGGER revoked_tokens_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON auth.revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION auth_internal.revocations_changed();
ALTER TABLE auth.revoked_tokens ENABLE ALWAYS TRIGGER revoked_tokens_changed;
ALTER TABLE auth.revoked_tokens ENABLE ALWAYS TRIGGER revoked_tokens_row_changed;

CREATE FUNCTION auth.revoke_token(jti text, expires_at timestamptz DEFAULT NULL) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO auth.revoked_tokens (jti, expires_at) VALUES (revoke_token.jti, revoke_token.expires_at)
    ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
$$;

-- Deletes revocations of tokens that have expired anyway; returns how many.
CREATE FUNCTION auth.cleanup_revoked_tokens() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (DELETE FROM auth.revoked_tokens WHERE expires_at < now() RETURNING 1)
    SELECT count(*) FROM gone
$$;

REVOKE ALL ON FUNCTION auth.revoke_token(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.cleanup_revoked_tokens() FROM PUBLIC;
