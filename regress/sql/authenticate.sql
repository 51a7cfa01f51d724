-- auth.authenticate(token) for any SQL client, and auth.authenticate() as PostgREST's
-- pre-request (PostgREST's request.* settings are simulated with set_config here; the real
-- PostgREST is exercised in tests/test_postgrest.py).
CREATE ROLE regress_user NOLOGIN;
CREATE ROLE regress_other NOLOGIN;
CREATE ROLE regress_anon NOLOGIN;
CREATE ROLE regress_admin NOLOGIN SUPERUSER;
GRANT regress_user, regress_anon, regress_admin TO CURRENT_USER;
SELECT auth.generate_key('HS256', 'auth-hs') AS kid;
CREATE TABLE tok AS SELECT
    auth.sign_jwt('{"sub":"6f1c2b0e-9a57-4d35-8a3e-2b8f1f0c9d11","role":"regress_user","email":"a@example.com","app":{"tier":"gold"}}'::jsonb) AS user_token,
    auth.sign_jwt('{"sub":"x","role":"regress_other"}'::jsonb) AS other_token,
    auth.sign_jwt('{"sub":"x","role":"regress_admin"}'::jsonb) AS super_token,
    auth.sign_jwt(jsonb_build_object('sub','x','role',current_user)) AS self_token,
    auth.sign_jwt('{"sub":"x","role":"no_such_role"}'::jsonb) AS ghost_token,
    auth.sign_jwt(jsonb_build_object('role','regress_user','exp', extract(epoch FROM now())::int - 120)) AS expired_token,
    auth.sign_jwt('{"role":"regress_user","jti":"t-1"}'::jsonb) AS jti_token;
GRANT SELECT ON tok TO regress_user;

-- A valid token: role switched and claims published for this transaction only.
BEGIN;
SELECT auth.authenticate(user_token) ->> 'email' AS email FROM tok;
SELECT current_user, auth.uid(), auth.role(), auth.email(), auth.claim('app.tier') AS tier, auth.jwt() ->> 'sub' AS sub;
COMMIT;
SELECT current_user = session_user AS role_reverted, auth.jwt() AS claims_after_commit, auth.uid();
BEGIN;
SELECT auth.authenticate(user_token) IS NOT NULL FROM tok;
ROLLBACK;
SELECT current_user = session_user AS role_reverted, auth.jwt() AS claims_after_rollback;

-- Role rules: not granted, superuser, the authenticator itself, missing role.
SELECT err(format('SELECT auth.authenticate(%L)', other_token)) FROM tok;
SELECT err(format('SELECT auth.authenticate(%L)', super_token)) FROM tok;
SELECT err(format('SELECT auth.authenticate(%L)', self_token)) FROM tok;
SELECT err(format('SELECT auth.authenticate(%L)', ghost_token)) FROM tok;
SET pg_auth.allowed_roles = 'regress_anon';
SELECT err(format('SELECT auth.authenticate(%L)', user_token)) FROM tok;
RESET pg_auth.allowed_roles;

-- Bad tokens keep their documented SQLSTATEs outside PostgREST.
SELECT err(format('SELECT auth.authenticate(%L)', expired_token)) FROM tok;
SELECT err($$SELECT auth.authenticate('garbage')$$);

-- Revocation by jti.
SELECT err(format('SELECT auth.authenticate(%L)', jti_token)) FROM tok;
SELECT auth.revoke_token('t-1');
SELECT err(format('SELECT auth.authenticate(%L)', jti_token)) FROM tok;
-- A table pg_auth cannot read is a storage failure (PA019), never "invalid key".
BEGIN;
ALTER EXTENSION pg_auth DROP TABLE auth.revoked_tokens;
DROP TABLE auth.revoked_tokens CASCADE;
SELECT err(format('SELECT auth.authenticate(%L)', jti_token)) FROM tok;
ROLLBACK;

-- Anonymous: keep the role, or switch to pg_auth.anon_role, or refuse when turned off.
SELECT auth.authenticate(NULL) AS claims, current_user = session_user AS unchanged;
SET pg_auth.anon_role = 'regress_anon';
BEGIN;
SELECT auth.authenticate(NULL) AS claims, current_user;
COMMIT;
SET pg_auth.anonymous = off;
SELECT err($$SELECT auth.authenticate(NULL)$$);
RESET pg_auth.anonymous;
RESET pg_auth.anon_role;

-- authenticate(NULL) after a token, in the same transaction: nothing of the token remains.
BEGIN;
SELECT auth.authenticate(user_token) ->> 'sub' AS sub FROM tok;
SELECT auth.authenticate(NULL) AS claims, current_user = session_user AS back_to_login_role,
       auth.uid() AS uid, auth.jwt() AS jwt;
COMMIT;

-- The identity helpers answer for what auth.authenticate verified, never for claims set by
-- hand: any SQL caller can write request.jwt.claims.
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"6f1c2b0e-9a57-4d35-8a3e-2b8f1f0c9d11","role":"regress_user"}', true) IS NOT NULL AS forged;
SELECT auth.uid() AS uid, auth.jwt() AS jwt, auth.role() AS role, auth.claim('sub') AS sub;
COMMIT;
BEGIN;
SELECT auth.authenticate(user_token) ->> 'sub' AS sub FROM tok;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-0000-0000-000000000001","role":"regress_user"}', true) IS NOT NULL AS forged;
SELECT err('SELECT auth.uid()');
SELECT err('SELECT auth.jwt()');
ROLLBACK;
-- Nothing of a transaction's authentication is left for the next one.
BEGIN;
SELECT auth.authenticate(user_token) IS NOT NULL FROM tok;
COMMIT;
SELECT set_config('request.jwt.claims', '{"sub":"6f1c2b0e-9a57-4d35-8a3e-2b8f1f0c9d11"}', false) IS NOT NULL AS forged_for_the_session;
SELECT auth.uid() AS uid, auth.jwt() AS jwt;
-- A superuser may let them read request.jwt.claims when auth.authenticate has not run (tests,
-- PostgREST without the pre-request).
SET pg_auth.trust_request_claims = on;
SELECT auth.uid() AS trusted_uid, auth.claim('sub') AS trusted_sub;
RESET pg_auth.trust_request_claims;
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS cleared;
SET ROLE regress_user;
SELECT err($$SET pg_auth.trust_request_claims = on$$);
RESET ROLE;

-- Claims-only mode: claims published, role never switched.
SET pg_auth.claims_only = on;
BEGIN;
SELECT auth.authenticate(other_token) ->> 'role' AS role_claim, current_user = session_user AS no_switch FROM tok;
SELECT auth.role();
COMMIT;
RESET pg_auth.claims_only;

-- A nested role claim.
SET pg_auth.role_claim = 'app.db_role';
BEGIN;
SELECT auth.authenticate(auth.sign_jwt('{"app":{"db_role":"regress_user"}}'::jsonb)) IS NOT NULL, current_user;
COMMIT;
RESET pg_auth.role_claim;

-- Works in a READ ONLY transaction (PostgREST's GETs, read replicas).
BEGIN READ ONLY;
SELECT auth.authenticate(user_token) IS NOT NULL AS ok, current_user FROM tok;
SELECT txid_current_if_assigned() IS NULL AS no_xid;
COMMIT;

-- The same with a cold key-ring cache: reloading the ring reads auth.keys without an xid.
SELECT auth.generate_key('HS384', 'cold-cache') AS kid;
BEGIN READ ONLY;
SELECT auth.authenticate(user_token) IS NOT NULL AS ok FROM tok;
SELECT txid_current_if_assigned() IS NULL AS no_xid_cold;
COMMIT;
DELETE FROM auth.keys WHERE kid = 'cold-cache';

-- Pre-request mode with PostgREST's settings: cookie, then header, then the Bearer token (verified
-- again: the claims in request.jwt.claims are a setting any SQL caller can write).
BEGIN;
SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{"user-agent":"t"}', true) IS NOT NULL AS set, set_config('request.cookies', json_build_object('access_token', user_token)::text, true) IS NOT NULL AS set FROM tok;
SELECT auth.authenticate();
SELECT current_user, auth.email();
COMMIT;
BEGIN;
SELECT set_config('request.method', 'GET', true), set_config('request.headers', json_build_object('x-access-token', user_token)::text, true) IS NOT NULL AS set FROM tok;
SELECT auth.authenticate();
SELECT current_user;
COMMIT;
BEGIN;
SELECT set_config('request.method', 'GET', true), set_config('request.headers', json_build_object('authorization', 'Bearer ' || user_token)::text, true) IS NOT NULL AS set,
       set_config('request.jwt.claims', '{"role":"regress_admin","sub":"forged-sub"}', true) IS NOT NULL AS set FROM tok;
SELECT auth.authenticate();
SELECT current_user, auth.claim('sub');
COMMIT;

-- A PostgREST request that sends only a cookie (PostgREST leaves it out of request.headers) or no
-- header at all has request.headers = {}: it is still PostgREST's (request.method is set), so
-- without a token it keeps db-anon-role, never the authenticator.
BEGIN;
SET LOCAL ROLE regress_anon;
SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{}', true), set_config('request.cookies', '{}', true);
SELECT auth.authenticate();
SELECT current_user AS still_the_anon_role;
COMMIT;
SELECT errd($$SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{}', true),
                     set_config('request.cookies', '{"access_token":"garbage"}', true), auth.authenticate()$$);

-- Failures in PostgREST become PGRST errors: status, WWW-Authenticate, cookie cleared.
SELECT errd(format($$SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{"a":"b"}', true), set_config('request.cookies', %L, true), auth.authenticate()$$,
                   json_build_object('access_token', expired_token))) FROM tok;
SELECT errd(format($$SELECT set_config('request.method', 'GET', true), set_config('request.headers', %L, true), auth.authenticate()$$,
                   json_build_object('x-access-token', other_token))) FROM tok;
SELECT errd(format($$SELECT set_config('request.method', 'GET', true), set_config('request.headers', %L, true), auth.authenticate()$$,
                   json_build_object('authorization', 'Bearer ' || super_token))) FROM tok;
SELECT errd($$SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{"authorization":"Bearer a.b.c"}', true),
                     set_config('request.jwt.claims', '{"role":"regress_user"}', true), auth.authenticate()$$);
SET pg_auth.anonymous = off;
SELECT errd($$SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{"a":"b"}', true), auth.authenticate()$$);
RESET pg_auth.anonymous;

-- Settings: typos in the pg_auth. prefix are errors, and web roles cannot change them.
SELECT err($$SET pg_auth.alowed_roles = 'x'$$);
SET ROLE regress_user;
SELECT err($$SET pg_auth.claims_only = on$$);
RESET ROLE;

DROP TABLE tok;
DROP ROLE regress_user, regress_other, regress_anon, regress_admin;
-- Leave the ring as we found it for the next test file.
DELETE FROM auth.keys WHERE kid = 'auth-hs';
DELETE FROM auth.revoked_tokens;
