-- The key ring: generate, sign, verify, rotate, retire, publish; who may do what.
SELECT err($$SELECT auth.sign_jwt('{}'::jsonb)$$);
SELECT auth.jwks();

SELECT auth.generate_key('ES256', 'es-1', now() - interval '1 hour') AS kid;
SELECT auth.generate_key('HS256', 'hs-1', now() - interval '2 hours') AS kid;
SELECT auth.decode_jwt_unverified(auth.sign_jwt('{"sub":"a"}'::jsonb)) -> 'header' AS newest_signs;
SELECT auth.verify_jwt(auth.sign_jwt('{"sub":"a"}'::jsonb)) ->> 'sub' AS ring_round_trip;
SELECT jsonb_path_query_array(auth.jwks(), '$.keys[*].kid') AS published, auth.jwks()::text ~ '"d"' AS leaks_private;

-- Rotation: a key pre-published for tomorrow verifies now but does not sign yet.
SELECT auth.generate_key('EdDSA', 'ed-next', now() + interval '1 day') AS kid;
SELECT auth.decode_jwt_unverified(auth.sign_jwt('{}'::jsonb)) -> 'header' ->> 'kid' AS still_signing;
SELECT jsonb_path_query_array(auth.jwks(), '$.keys[*].kid') AS published;

-- Retiring: tokens of a retired key stop verifying at once.
CREATE TEMP TABLE t AS SELECT auth.sign_jwt('{"x":1}'::jsonb) AS token;
SELECT auth.retire_key('es-1');
SELECT err(format('SELECT auth.verify_jwt(%L)', token)) FROM t;
SELECT auth.decode_jwt_unverified(auth.sign_jwt('{}'::jsonb)) -> 'header' ->> 'kid' AS now_signing;
SELECT err($$SELECT auth.retire_key('no-such-kid')$$);

-- Unknown kid, and a token without kid is tried against keys of its algorithm.
SELECT err(format('SELECT auth.verify_jwt(%L)', auth.sign_jwt('{}', '{"kty":"oct","kid":"ghost","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}')));
SELECT auth.add_key('0123456789abcdef0123456789abcdef', 'shared', 'HS256') AS kid;
SELECT auth.verify_jwt(auth.sign_jwt('{"y":2}', '0123456789abcdef0123456789abcdef')) ->> 'y' AS no_kid_token;

-- External keys: a public key verifies but never signs; bad keys are refused when added.
SELECT err($$SELECT auth.add_key('{"kty":"RSA","n":"AQAB","e":"AQAB"}')$$);
SELECT err($$SELECT auth.add_key('{"kty":"oct","k":"c2hvcnQ"}')$$);
SELECT err($$SELECT auth.add_jwks('{"keys":[]}')$$);
SELECT err($$SELECT auth.generate_key('none')$$);
SELECT err($$SELECT auth.generate_key(NULL)$$);
SELECT kid, algorithm, origin, can_sign FROM auth.key_ring ORDER BY kid;

-- Privileges: a web role verifies with the ring but cannot read it, sign with it or change it.
CREATE ROLE regress_web NOLOGIN;
SET ROLE regress_web;
SELECT auth.verify_jwt(auth.sign_jwt('{"y":3}', '0123456789abcdef0123456789abcdef')) ->> 'y' AS web_can_verify;
SELECT jsonb_array_length(auth.jwks() -> 'keys') AS web_can_read_jwks;
SELECT err($$SELECT secret FROM auth.keys$$);
SELECT err($$SELECT * FROM auth.key_ring$$);
SELECT err($$SELECT auth.sign_jwt('{"role":"admin"}'::jsonb)$$);
SELECT err($$SELECT auth.generate_key('HS256')$$);
SELECT err($$SELECT auth.add_key('0123456789abcdef0123456789abcdef')$$);
SELECT err($$SELECT auth.retire_key('shared')$$);
SELECT err($$DELETE FROM auth.keys$$);
RESET ROLE;
DROP ROLE regress_web;

-- Parallel workers load the ring themselves (read-only, no xid).
CREATE TABLE par AS SELECT auth.sign_jwt(jsonb_build_object('n', i)) AS t FROM generate_series(1, 3000) AS i;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT count(auth.verify_jwt(t)) AS verified_in_parallel FROM par;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE par;

-- pg_dump keeps the ring: the table is registered as extension configuration.
SELECT array(SELECT c::regclass::text FROM unnest(extconfig) AS c ORDER BY 1) AS dumped_tables FROM pg_extension WHERE extname = 'pg_auth';
