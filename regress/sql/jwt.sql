-- JWT sign/verify with explicit keys: round trips, claims checks, every error class.
\set secret '''0123456789abcdef0123456789abcdef'''
\set other '''another-secret-that-is-long-enough!'''
-- A secret is only ever a secret when the algorithm is named.
\set hs '''{"algorithms": ["HS256", "HS384", "HS512"]}'''

-- HS256 is deterministic: the same claims and secret give the same token.
SELECT auth.sign_jwt('{"sub":"42","role":"web_user"}', :secret);
SELECT auth.verify_jwt(auth.sign_jwt('{"sub":"42","role":"web_user"}', :secret), :secret, :hs);
SELECT auth.verify_jwt(auth.sign_jwt('{"n":1}', :secret, 'HS512'), :secret, :hs) ->> 'n' AS hs512;
SELECT auth.decode_jwt_unverified(auth.sign_jwt('{"n":1}', :secret, 'HS384')) -> 'header' AS header;

-- Claims: exp, nbf, iat with the 30 s default leeway.
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt(jsonb_build_object('exp', extract(epoch FROM now())::int - 60), :secret), :secret, :hs));
SELECT auth.verify_jwt(auth.sign_jwt(jsonb_build_object('exp', extract(epoch FROM now())::int - 10), :secret), :secret, :hs) ? 'exp' AS within_leeway;
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt(jsonb_build_object('exp', extract(epoch FROM now())::int - 10), :secret), :secret, '{"leeway": 0, "algorithms": ["HS256"]}'));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt(jsonb_build_object('nbf', extract(epoch FROM now())::int + 600), :secret), :secret, :hs));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt(jsonb_build_object('iat', extract(epoch FROM now())::int + 600), :secret), :secret, :hs));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{"exp":"tomorrow"}', :secret), :secret, :hs));

-- Audience, issuer, required claims.
SELECT auth.verify_jwt(auth.sign_jwt('{"aud":"api","iss":"me"}', :secret), :secret, '{"audience":"api","issuer":["me","you"],"algorithms":["HS256"]}') ->> 'aud' AS aud;
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{"aud":"web"}', :secret), :secret, '{"audience":"api","algorithms":["HS256"]}'));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{"aud":"web"}', :secret), :secret, :hs));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{"iss":"eve"}', :secret), :secret, '{"issuer":"me","algorithms":["HS256"]}'));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{}', :secret), :secret, '{"required":["sub"],"algorithms":["HS256"]}'));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{}', :secret), :secret, '{"audiance":"api"}'));

-- Signatures and algorithms: the key decides, not the header.
-- Text that is neither PEM nor JSON is a secret only when an HS* algorithm is named.
SELECT err(format('SELECT auth.verify_jwt(%L, %L)', auth.sign_jwt('{}', :secret), :secret));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{}', :secret), :secret, '{"algorithms":["RS256"]}'));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{}', :secret), :other, :hs));
SELECT err(format('SELECT auth.verify_jwt(%L, %L, %L)', auth.sign_jwt('{}', :secret), :secret, '{"algorithms":["HS512"]}'));
SELECT err($$SELECT auth.verify_jwt('eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.', '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.verify_jwt('eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.c2ln', '0123456789abcdef0123456789abcdef')$$);
SELECT err(format('SELECT auth.sign_jwt(%L, %L, %L)', '{}', :secret, 'RS256'));
SELECT err(format('SELECT auth.sign_jwt(%L, %L, %L)', '{}', :secret, 'none'));

-- Malformed and oversized tokens, bad keys, NULLs.
SELECT err($$SELECT auth.verify_jwt('not-a-token', '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.verify_jwt('a.b.c.d', '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.verify_jwt('e30.e30.', '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.verify_jwt('bm90anNvbg.e30.c2ln', '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.verify_jwt(repeat('a', 1048576), '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.verify_jwt('eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoid2ViX3VzZXIiLCJzdWIiOiI0MiJ9.Kl34YiJ6FwZlx56I2MuxpkeLCVsLLZJIoLkwQAHz4eo', 'short', '{"algorithms": ["HS256"]}')$$);
SELECT err($$SELECT auth.verify_jwt('eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoid2ViX3VzZXIiLCJzdWIiOiI0MiJ9.Kl34YiJ6FwZlx56I2MuxpkeLCVsLLZJIoLkwQAHz4eo', '-----BEGIN PUBLIC KEY-----
AAAA
-----END PUBLIC KEY-----')$$);
SELECT err($$SELECT auth.verify_jwt('eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoid2ViX3VzZXIiLCJzdWIiOiI0MiJ9.Kl34YiJ6FwZlx56I2MuxpkeLCVsLLZJIoLkwQAHz4eo', '{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}')$$);
SELECT err($$SELECT auth.verify_jwt('e30.e30.c2ln', '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.verify_jwt(NULL, '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.sign_jwt(NULL, '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.sign_jwt('[1,2]', '0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.sign_jwt('{}', NULL)$$);
SELECT err($$SELECT auth.decode_jwt_unverified(NULL)$$);

-- A JWKS: the token's kid picks the key.
SELECT auth.verify_jwt(
    auth.sign_jwt('{"n":2}', '{"kty":"oct","kid":"b","k":"YW5vdGhlci1zZWNyZXQtdGhhdC1pcy1sb25nLWVub3VnaCE"}'),
    '{"keys":[{"kty":"oct","kid":"a","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
              {"kty":"oct","kid":"b","k":"YW5vdGhlci1zZWNyZXQtdGhhdC1pcy1sb25nLWVub3VnaCE"}]}') ->> 'n' AS from_jwks;
SELECT err(format('SELECT auth.verify_jwt(%L, %L)', auth.sign_jwt('{}', '{"kty":"oct","kid":"zz","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}'),
    '{"keys":[{"kty":"oct","kid":"a","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},{"kty":"oct","kid":"b","k":"YW5vdGhlci1zZWNyZXQtdGhhdC1pcy1sb25nLWVub3VnaCE"}]}'));

-- Volatility: nothing that reads the clock or a table is IMMUTABLE; definers pin search_path.
SELECT proname, pg_get_function_identity_arguments(oid) AS args, provolatile, prosecdef, proconfig
FROM pg_proc WHERE pronamespace = 'auth'::regnamespace ORDER BY 1, 2;
