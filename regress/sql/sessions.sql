-- Users, passwords and sessions from SQL (the example app drives them through PostgREST in
-- tests/test_todo_app.py). Cheap argon2 cost to keep the test fast; the cost is configurable.
SET pg_auth.argon2_memory_kib = 64;
SET pg_auth.argon2_iterations = 1;
CREATE ROLE regress_member NOLOGIN;
GRANT regress_member TO CURRENT_USER;
-- The application's API functions would call these as their owner; here the member calls them.
GRANT EXECUTE ON FUNCTION auth.logout(), auth.refresh() TO regress_member;
SET pg_auth.user_role = 'regress_member';

SELECT auth.register('Alice@Example.com', 'correct horse') IS NOT NULL AS registered;
SELECT email, role, password_hash LIKE '$argon2id$v=19$m=64,t=1,p=1$%' AS argon2id, email_verified, disabled FROM auth.users;
SELECT err($$SELECT auth.register('alice@example.com', 'another password')$$);
SELECT err($$SELECT auth.register('not-an-email', 'long enough')$$);
SELECT err($$SELECT auth.register('b@example.com', 'short')$$);
SELECT err($$SELECT auth.register(NULL, 'long enough')$$);

-- Login: a session row holding only the token's SHA-256, and a cookie in response.headers.
BEGIN;
CREATE TEMP TABLE login AS SELECT auth.login('alice@example.com', 'correct horse') AS r;
SELECT current_setting('response.headers')::jsonb -> 0 ->> 'Set-Cookie'
       = 'access_token=' || (SELECT r ->> 'token' FROM login) || '; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=604800' AS cookie_ok;
COMMIT;
GRANT SELECT ON login TO regress_member;
SELECT r ? 'token' AS has_token, length(r ->> 'token') AS token_chars FROM login;
SELECT count(*) AS sessions, bool_and(token_hash = sha256(convert_to((SELECT r ->> 'token' FROM login), 'UTF8'))) AS stored_hash_only
FROM auth.sessions;
SELECT id AS alice_id FROM auth.users \gset

-- The session token authenticates: role, sub, email, sid.
BEGIN;
SELECT auth.authenticate(r ->> 'token') - 'exp' - 'sub' - 'sid' AS claims FROM login;
SELECT current_user, auth.uid() = :'alice_id' AS uid_is_user, auth.session_id() IS NOT NULL AS has_sid;
COMMIT;

-- Session lookups write nothing: a READ ONLY transaction (or a replica) gets no xid.
BEGIN READ ONLY;
SELECT auth.authenticate(r ->> 'token') ->> 'role' AS role FROM login;
SELECT txid_current_if_assigned() IS NULL AS no_xid;
COMMIT;

-- Wrong password or unknown email: no exception (the failure count must survive), 401 status.
SELECT auth.login('alice@example.com', 'wrong') AS r, current_setting('response.status', true) AS status;
SELECT auth.login('nobody@example.com', 'wrong') AS r;
-- Counted per email, known or not (by the SHA-256 of the lower-cased email).
SELECT a.failed_logins, u.email FROM auth.login_attempts a LEFT JOIN auth.users u ON auth_internal.email_key(u.email) = a.email_key ORDER BY 2;

-- Throttling: pg_auth.login_max_failures failures lock the email; a success resets the count.
SET pg_auth.login_max_failures = 3;
CREATE VIEW alice_attempts AS SELECT failed_logins, locked_until > now() AS locked
    FROM auth.login_attempts WHERE email_key = auth_internal.email_key('ALICE@example.com');
SELECT auth.login('alice@example.com', 'wrong') ->> 'code' AS code;
SELECT * FROM alice_attempts;
SELECT auth.login('alice@example.com', 'wrong') ->> 'code' AS code;
SELECT * FROM alice_attempts;
SELECT err($$SELECT auth.login('alice@example.com', 'correct horse')$$);
-- Unknown emails lock the same way and answer the same: status, body and SQLSTATE.
SELECT auth.login('nobody@example.com', 'wrong') ->> 'code' AS code;
SELECT auth.login('nobody@example.com', 'wrong') ->> 'code' AS code;
SELECT err($$SELECT auth.login('nobody@example.com', 'correct horse')$$);
-- Over the length limit: the same 401 answer for known and unknown emails, counted too.
SELECT auth.login('carol@example.com', repeat('x', 2000)) AS known, auth.login('nobody2@example.com', repeat('x', 2000)) AS unknown;
UPDATE auth.login_attempts SET locked_until = now() - interval '1 second';
SELECT auth.login('alice@example.com', 'correct horse') ? 'token' AS logged_in;
SELECT count(*) AS alice_rows FROM alice_attempts;
DROP VIEW alice_attempts;
RESET pg_auth.login_max_failures;

-- Bcrypt hashes imported from pgcrypto verify and are re-hashed as argon2id at the next login.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
UPDATE auth.users SET password_hash = crypt('from pgcrypto', gen_salt('bf', 4));
SELECT auth.login('alice@example.com', 'from pgcrypto') ? 'token' AS bcrypt_login;
SELECT password_hash LIKE '$argon2id$%' AS rehashed FROM auth.users;

-- Refresh rotates the token; logout revokes the session; both need a session.
BEGIN;
SELECT auth.authenticate(r ->> 'token') IS NOT NULL FROM login;
SELECT auth.refresh() ->> 'token' <> (SELECT r ->> 'token' FROM login) AS rotated;
COMMIT;
-- The replaced token signs in for pg_auth.refresh_grace_period more, but never refreshes.
BEGIN;
SELECT auth.authenticate(r ->> 'token') ? 'sid' AS old_token_in_grace FROM login;
SELECT err($$SELECT auth.refresh()$$);
ROLLBACK;
UPDATE auth.sessions SET previous_valid_until = now() - interval '1 second';
SELECT err(format('SELECT auth.authenticate(%L)', r ->> 'token')) FROM login;
SELECT err($$SELECT auth.logout()$$);
SELECT err($$SELECT auth.refresh()$$);
CREATE TEMP TABLE login2 AS SELECT auth.login('alice@example.com', 'from pgcrypto', return_jwt => true) AS r;
GRANT SELECT ON login2 TO regress_member;
BEGIN;
SELECT auth.authenticate(r ->> 'jwt') ? 'sid' AS jwt_has_sid FROM login2;
SELECT auth.logout();
COMMIT;
SELECT err(format('SELECT auth.authenticate(%L)', r ->> 'token')) FROM login2;
SELECT err(format('SELECT auth.authenticate(%L)', r ->> 'jwt')) FROM login2;

-- Password reset: single use, ends all sessions.
CREATE TEMP TABLE reset AS SELECT auth.request_password_reset('ALICE@example.com') AS token;
SELECT auth.request_password_reset('nobody@example.com') IS NULL AS unknown_email_gets_null;
-- Tokens say what they are by their prefix: a reset token is never looked up as a session.
SELECT token LIKE 'par\_%' AS reset_prefix, err(format('SELECT auth.authenticate(%L)', token)) FROM reset;
CREATE TEMP TABLE login3 AS SELECT auth.login('alice@example.com', 'from pgcrypto') AS r;
SELECT auth.reset_password(token, 'brand new password') FROM reset;
SELECT err(format('SELECT auth.reset_password(%L, %L)', token, 'again and again')) FROM reset;
SELECT err(format('SELECT auth.authenticate(%L)', r ->> 'token')) FROM login3;
SELECT auth.login('alice@example.com', 'brand new password') ? 'token' AS new_password_works;

-- Disabled users cannot log in and lose their sessions; expired sessions are refused and cleaned.
CREATE TEMP TABLE login4 AS SELECT auth.login('alice@example.com', 'brand new password') AS r;
SELECT auth.disable_user(id) FROM auth.users;
SELECT auth.login('alice@example.com', 'brand new password') ->> 'code' AS disabled_login;
SELECT err(format('SELECT auth.authenticate(%L)', r ->> 'token')) FROM login4;
SELECT auth.enable_user(id) FROM auth.users;
CREATE TEMP TABLE login5 AS SELECT auth.login('alice@example.com', 'brand new password') AS r;
UPDATE auth.sessions SET idle_expires_at = now() - interval '1 second' WHERE revoked_at IS NULL;
SELECT err(format('SELECT auth.authenticate(%L)', r ->> 'token')) FROM login5;
SELECT auth.cleanup_expired() > 0 AS cleaned, count(*) FILTER (WHERE revoked_at IS NULL) AS live FROM auth.sessions;

-- Web roles cannot touch users or sessions.
SET ROLE regress_member;
SELECT err($$SELECT password_hash FROM auth.users$$);
SELECT err($$SELECT token_hash FROM auth.sessions$$);
SELECT err($$SELECT auth.register('x@example.com', 'long enough', role => 'postgres')$$);
SELECT err($$SELECT auth.login('alice@example.com', 'x')$$);
RESET ROLE;

SELECT auth.delete_user(id) FROM auth.users;
SELECT (SELECT count(*) FROM auth.users) AS users, (SELECT count(*) FROM auth.sessions) AS sessions;
RESET pg_auth.user_role;
REVOKE EXECUTE ON FUNCTION auth.logout(), auth.refresh() FROM regress_member;
DROP TABLE login, login2;
DROP ROLE regress_member;
