-- Who may call what. Everything not listed here is callable by PUBLIC: verifying, decoding,
-- signing with a key the caller already holds, and reading the public JWKS.

-- Signing with the ring mints tokens for any role: only the owner, or roles granted explicitly.
REVOKE ALL ON FUNCTION auth.sign_jwt(jsonb) FROM PUBLIC;

-- Managing the ring.
REVOKE ALL ON FUNCTION auth.generate_key(text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.add_key(text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.add_jwks(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.retire_key(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.keys_changed() FROM PUBLIC;

GRANT USAGE ON SCHEMA auth TO PUBLIC;
