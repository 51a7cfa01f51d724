-- The smaller SQL functions the main flows rely on, each with bad input.
SET pg_auth.argon2_memory_kib = 64;
SET pg_auth.argon2_iterations = 1;

-- as_uuid: uuid or NULL, never an error inside a policy.
SELECT auth.as_uuid('6F1C2B0E-9A57-4D35-8A3E-2B8F1F0C9D11') AS upper, auth.as_uuid('42') AS not_uuid,
       auth.as_uuid('') AS empty, auth.as_uuid(NULL) AS null_in;

-- setting: defaults included; unknown names are clear errors.
SELECT auth_internal.setting('session_lifetime') AS lifetime, auth_internal.setting('cookie_name') AS cookie;
SELECT err($$SELECT auth_internal.setting('no_such_setting')$$);

-- Password helpers.
SELECT auth_internal.verify_password('pw', auth_internal.hash_password('pw')) AS right,
       auth_internal.verify_password('px', auth_internal.hash_password('pw')) AS wrong,
       auth_internal.verify_password('pw', NULL) AS unknown_user;
SELECT auth_internal.password_needs_rehash(auth_internal.hash_password('pw')) AS same_cost,
       auth_internal.password_needs_rehash('$2a$04$abcdefghijklmnopqrstuu5Y6bWt1h1DaI1v5g9W0pZbQ3r9Wm2') AS bcrypt,
       auth_internal.password_needs_rehash('garbage') AS unreadable;
SELECT err($$SELECT auth_internal.hash_password(NULL)$$);
SELECT err($$SELECT auth_internal.hash_password(repeat('x', 1025))$$);
SELECT err($$SELECT auth_internal.verify_password('pw', 'plaintext')$$);

-- Tokens and cookies.
SELECT auth_internal.hash_token('abc') = sha256('abc'::bytea) AS sha256, length(t.token) AS chars, length(t.token_hash) AS hash_bytes,
       auth_internal.hash_token(t.token) = t.token_hash AS matches
FROM auth_internal.new_token() AS t;
SELECT auth_internal.session_cookie('tok', 60) AS cookie, auth_internal.clearing_cookie() AS cleared;
SET pg_auth.cookie_secure = off;
SET pg_auth.cookie_name = 'sid';
SELECT auth_internal.session_cookie('tok', -5) AS negative_max_age_is_zero, auth_internal.clearing_cookie() AS cleared;
RESET pg_auth.cookie_secure;
RESET pg_auth.cookie_name;

-- Request and response headers as PostgREST passes them.
BEGIN;
SELECT auth_internal.request_header('User-Agent') IS NULL AS outside_postgrest;
SELECT set_config('request.headers', '{"user-agent":"curl/8"}', true) IS NOT NULL AS set;
SELECT auth_internal.request_header('User-Agent') AS user_agent;
SELECT auth_internal.add_response_header('Set-Cookie', 'a=1'), auth_internal.add_response_header('X-Test', 'b');
SELECT current_setting('response.headers')::jsonb AS headers;
COMMIT;

-- change_password: needs a session, the old password, a valid new one; ends the other sessions.
CREATE ROLE regress_pw NOLOGIN;
GRANT regress_pw TO CURRENT_USER;
GRANT EXECUTE ON FUNCTION auth.change_password(text, text) TO regress_pw;
SELECT auth.register('pw@example.com', 'old password', role => 'regress_pw') IS NOT NULL AS registered;
CREATE TABLE pw_sessions AS
    SELECT auth.login('pw@example.com', 'old password') AS mine, auth.login('pw@example.com', 'old password') AS other;
GRANT SELECT ON pw_sessions TO regress_pw;
SELECT err($$SELECT auth.change_password('old password', 'new password')$$) AS not_signed_in;
BEGIN;
SELECT auth.authenticate(mine ->> 'token') IS NOT NULL FROM pw_sessions;
SELECT auth.change_password('wrong', 'new password') AS wrong_old_is_returned_and_counted,
       current_setting('response.status') AS status;
SELECT err($$SELECT auth.change_password('old password', 'short')$$) AS too_short;
SELECT auth.change_password('old password', 'new password');
COMMIT;
SELECT failed_logins AS counted FROM auth.login_attempts WHERE email_key = auth_internal.email_key('pw@example.com');
SELECT err(format('SELECT auth.authenticate(%L)', other ->> 'token')) AS other_session,
       err(format('SELECT auth.authenticate(%L)', mine ->> 'token')) AS own_session FROM pw_sessions;
SELECT auth.login('pw@example.com', 'old password') ->> 'code' AS old_refused,
       auth.login('pw@example.com', 'new password') ? 'token' AS new_works;

-- revoke_user_sessions counts what it ended; cleanup removes revocations past their expiry.
SELECT auth.revoke_user_sessions(id) AS ended, auth.revoke_user_sessions(id) AS ended_again FROM auth.users;
SELECT auth.revoke_token('gone', now() - interval '1 second'), auth.revoke_token('kept', now() + interval '1 day');
SELECT auth.cleanup_revoked_tokens() AS removed;
SELECT array_agg(jti ORDER BY jti) AS left FROM auth.revoked_tokens;

-- describe_key and new_key_material refuse bad input clearly.
SELECT err($$SELECT * FROM auth_internal.describe_key(NULL)$$);
SELECT err($$SELECT * FROM auth_internal.describe_key('0123456789abcdef0123456789abcdef', 'k1', 'RS256')$$);
SELECT err($$SELECT * FROM auth_internal.describe_key('{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}')$$);
SELECT err($$SELECT * FROM auth_internal.describe_key('0123456789abcdef0123456789abcdef', '', 'HS256')$$);
SELECT err($$SELECT * FROM auth_internal.describe_key('0123456789abcdef0123456789abcdef', 'k1')$$);
SELECT err($$SELECT * FROM auth_internal.new_key_material('HS999')$$);
SELECT kid, algorithm, secret IS NOT NULL AS has_secret, public_jwk FROM auth_internal.describe_key('0123456789abcdef0123456789abcdef', 'k1', 'HS512');

DELETE FROM auth.users;
DELETE FROM auth.revoked_tokens;
DROP TABLE pw_sessions;
REVOKE EXECUTE ON FUNCTION auth.change_password(text, text) FROM regress_pw;
DROP ROLE regress_pw;
