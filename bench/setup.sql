-- Benchmark data and harness, loaded by bench/run.sh into a fresh database (pg_auth + pgcrypto).
-- psql variables: n_hs, n_rs, n_es, n_ed (tokens per algorithm).
\set ON_ERROR_STOP on
SET client_min_messages = warning;

CREATE SCHEMA bench;

-- base64url text -> bytea (padding restored, as decode() wants it).
CREATE FUNCTION bench.b64url_decode(t text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT decode(rpad(translate(t, '-_', '+/'), (length(t) + 3) / 4 * 4, '='), 'base64') $$;

-- The PUBLIC key of a ring key as an SPKI PEM, built from its public JWK, for the explicit-key
-- runs and for bench/crate_cost (no openssl needed). Covers what the bench generates: Ed25519,
-- P-256, and RSA-2048 with e = 65537.
CREATE FUNCTION bench.public_pem(jwk jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
    der bytea;
    n   bytea;
BEGIN
    CASE jwk->>'kty'
    WHEN 'OKP' THEN
        der := '\x302a300506032b6570032100'::bytea || bench.b64url_decode(jwk->>'x');
    WHEN 'EC' THEN
        IF jwk->>'crv' <> 'P-256' THEN RAISE EXCEPTION 'only P-256 here'; END IF;
        der := '\x3059301306072a8648ce3d020106082a8648ce3d030107034200'::bytea || '\x04'::bytea
               || bench.b64url_decode(jwk->>'x') || bench.b64url_decode(jwk->>'y');
    WHEN 'RSA' THEN
        n := bench.b64url_decode(jwk->>'n');
        IF jwk->>'e' <> 'AQAB' OR length(n) <> 256 OR get_byte(n, 0) < 128 THEN
            RAISE EXCEPTION 'only RSA-2048 with e = 65537 here';
        END IF;
        der := '\x30820122300d06092a864886f70d01010105000382010f003082010a0282010100'::bytea
               || n || '\x0203010001'::bytea;
    ELSE
        RAISE EXCEPTION 'unexpected JWK %', jwk;
    END CASE;
    RETURN E'-----BEGIN PUBLIC KEY-----\n'
        || regexp_replace(replace(encode(der, 'base64'), E'\n', ''), '(.{64})', E'\\1\n', 'g')
        || E'\n-----END PUBLIC KEY-----\n';
END
$$;

-- The lean plpgsql HS256 verifier over pgcrypto that pg_auth is compared with. It does the least
-- a correct verifier must: split, HMAC-SHA256 over "header.payload", compare in base64url (so the
-- signature is never decoded), decode the payload, check exp. It does NOT read the header (a
-- fixed HS256 key makes alg irrelevant to the MAC check) nor nbf/iat, so it does less than
-- pg_auth: the comparison flatters it.
CREATE FUNCTION bench.verify_hs256_plpgsql(token text, secret text) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    parts  text[] := string_to_array(token, '.');
    claims jsonb;
BEGIN
    IF cardinality(parts) <> 3 THEN
        RAISE EXCEPTION 'malformed token';
    END IF;
    -- A 32-byte MAC is 44 base64 characters: no line break to strip; '=' is dropped by translate.
    IF translate(encode(hmac(parts[1] || '.' || parts[2], secret, 'sha256'), 'base64'), '+/=', '-_')
       <> parts[3] THEN
        RAISE EXCEPTION 'invalid signature';
    END IF;
    claims := convert_from(decode(rpad(translate(parts[2], '-_', '+/'),
                                       (length(parts[2]) + 3) / 4 * 4, '='), 'base64'), 'UTF8')::jsonb;
    IF (claims->>'exp')::numeric + 30 <= extract(epoch FROM now()) THEN
        RAISE EXCEPTION 'token expired';
    END IF;
    RETURN claims;
END
$$;

-- One token table per algorithm: distinct claims per row (sub, email, n, exp all vary), exp an
-- hour and more in the future, signed by auth.sign_jwt(jsonb) with that algorithm's ring key
-- (each key is generated just before its tokens, so it is the newest active one, and the header
-- carries its kid). `payload` is the decoded claims text, for the jsonb_in diagnostic.
CREATE FUNCTION bench.make_tokens(alg text, n int) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    kid text := 'bench-' || lower(alg);
    tbl text := 'bench.tok_' || lower(alg);
    got text;
BEGIN
    EXECUTE format($q$
        CREATE TABLE %s AS
        SELECT i, t.token, convert_from(bench.b64url_decode(split_part(t.token, '.', 2)), 'UTF8') AS payload
        FROM generate_series(1, %s) AS i,
             LATERAL (SELECT auth.sign_jwt(jsonb_build_object(
                 'sub', 'user-' || i,
                 'role', 'authenticated',
                 'email', 'user-' || i || '@example.com',
                 'iat', extract(epoch FROM now())::bigint,
                 'exp', extract(epoch FROM now())::bigint + 3600 + i,
                 'n', i)) AS token) AS t
        $q$, tbl, n);
    EXECUTE format('SELECT auth.decode_jwt_unverified(token)->''header''->>''kid'' FROM %s LIMIT 1', tbl) INTO got;
    IF got IS DISTINCT FROM kid THEN
        RAISE EXCEPTION '% tokens were signed by key %, not %', alg, got, kid;
    END IF;
    EXECUTE format('ANALYZE %s', tbl);
END
$$;

-- Each statement below runs in its own transaction, so the ring cache sees each new key.
SELECT auth.generate_key('HS256', 'bench-hs256');
SELECT bench.make_tokens('HS256', :n_hs);
SELECT auth.generate_key('RS256', 'bench-rs256');
SELECT bench.make_tokens('RS256', :n_rs);
SELECT auth.generate_key('ES256', 'bench-es256');
SELECT bench.make_tokens('ES256', :n_es);
SELECT auth.generate_key('EdDSA', 'bench-eddsa');
SELECT bench.make_tokens('EdDSA', :n_ed);

-- The key given explicitly: the HMAC secret, or the public key as PEM.
CREATE TABLE bench.keys AS
SELECT k.algorithm AS alg, k.kid,
       CASE WHEN k.algorithm = 'HS256' THEN k.secret ELSE bench.public_pem(k.public_jwk) END AS key
FROM auth.keys k WHERE k.kid LIKE 'bench-%';

-- Timing: clock_timestamp() around one EXECUTE of `SELECT count(<expr>) FROM <table>`, inside
-- the server (no client round trip, no result transfer: one row comes back).
CREATE TABLE bench.samples (alg text, variant text, rep int, rows bigint, us float8);

CREATE FUNCTION bench.time_query(q text, OUT rows bigint, OUT us float8)
LANGUAGE plpgsql
AS $$
DECLARE
    t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE q INTO rows;
    us := extract(epoch FROM clock_timestamp() - t0) * 1e6;
END
$$;

-- Runs every variant of one algorithm `reps` times, interleaved (variant order inside a
-- repetition), after one warm-up run of each over the first 500 rows (loads the key ring, warms
-- the caches). Every call must succeed: an error (a token that does not verify) aborts the run.
CREATE FUNCTION bench.run(alg text, variants text[], exprs text[], reps int) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    tbl text := 'bench.tok_' || lower(alg);
    r   record;
BEGIN
    SET LOCAL max_parallel_workers_per_gather = 0;
    SET LOCAL jit = off;
    FOR i IN 1 .. cardinality(variants) LOOP
        PERFORM bench.time_query(format('SELECT count(%s) FROM (SELECT * FROM %s LIMIT 500) s', exprs[i], tbl));
    END LOOP;
    FOR rep IN 1 .. reps LOOP
        FOR i IN 1 .. cardinality(variants) LOOP
            r := bench.time_query(format('SELECT count(%s) FROM %s', exprs[i], tbl));
            INSERT INTO bench.samples VALUES (alg, variants[i], rep, r.rows, r.us);
        END LOOP;
    END LOOP;
END
$$;

-- Median µs per row of each variant; net = median(variant) - median(baseline), per row.
CREATE VIEW bench.results AS
WITH med AS (
    SELECT alg, variant, max(rows) AS rows, count(*) AS reps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY us / rows) AS raw_us,
           min(us / rows) AS min_us
    FROM bench.samples GROUP BY alg, variant
)
SELECT m.alg, m.variant, m.rows, m.reps, m.raw_us, m.min_us,
       m.raw_us - b.raw_us AS net_us
FROM med m JOIN med b ON b.alg = m.alg AND b.variant = 'baseline';

-- Filled by run.sh from bench/crate_cost's output.
CREATE TABLE bench.crate_cost (alg text, run text, us float8, min_us float8, calls bigint, PRIMARY KEY (alg, run));
