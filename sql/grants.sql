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

-- Users and sessions: reached through the application's own API functions, never directly.
REVOKE ALL ON FUNCTION auth.register(text, text, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.change_password(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.request_password_reset(text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.reset_password(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.disable_user(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.enable_user(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.delete_user(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.login(text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.record_failed_login(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.logout() FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.refresh() FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.revoke_session(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.revoke_user_sessions(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.cleanup_expired() FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.hash_password(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.verify_password(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth.session_token_hash() FROM PUBLIC;
