#!/usr/bin/env bash
# Part 1 of bench/run.sh: the cost of auth.verify_jwt inside PostgreSQL, a plpgsql verifier and the
# jsonwebtoken crate alone. Runs on its own too (the database pg_auth_bench is recreated).
# See bench/README.md for what is measured and how.
#
# Knobs (environment): N_HS, N_RS, N_ES, N_ED tokens per algorithm; REPS_FAST (HS256, EdDSA) and
# REPS_SLOW (RS256, ES256) timed repetitions; SKIP_INSTALL=1 skips rebuilding the extension.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

N_HS=${N_HS:-20000} N_ES=${N_ES:-20000} N_ED=${N_ED:-20000} N_RS=${N_RS:-4000}
REPS_FAST=${REPS_FAST:-9} REPS_SLOW=${REPS_SLOW:-5}
CRATE_TOKENS=${CRATE_TOKENS:-5000}
DB=pg_auth_bench
started=$(date +%s)

bench_prepare
ensure_rust
create_db "$DB"

log "Building bench/crate_cost (release, same profile as the extension)"
(cd "$BENCH/crate_cost" && cargo build --release --locked --quiet)

psql_q() { "$PG_BIN/psql" -X -q -d "$DB" -v ON_ERROR_STOP=1 "$@"; }

log "Signing tokens with the key ring (HS256 $N_HS, RS256 $N_RS, ES256 $N_ES, EdDSA $N_ED)"
psql_q -v n_hs="$N_HS" -v n_rs="$N_RS" -v n_es="$N_ES" -v n_ed="$N_ED" -f "$BENCH/setup.sql" >/dev/null
psql_q -c "CHECKPOINT"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for alg in HS256 RS256 ES256 EdDSA; do
    psql_q -At -c "SELECT key FROM bench.keys WHERE alg = '$alg'" >"$work/$alg.key"
    psql_q -At -c "SELECT token FROM bench.tok_$(echo "$alg" | tr 'A-Z' 'a-z') ORDER BY i LIMIT $CRATE_TOKENS" >"$work/$alg.tokens"
done
# The crate alone, on the same keys and tokens: once before and once after the server timings,
# so that drift of the machine's speed shows (and averages out) rather than skewing the ratio.
crate_run() { # LABEL
    log "Timing the jsonwebtoken crate alone (bench/crate_cost, $1 the server timings)"
    (cd "$BENCH/crate_cost" && cargo run --release --locked --quiet -- "$work") >"$work/crate.txt"
    while read -r alg us min calls; do
        psql_q -c "INSERT INTO bench.crate_cost VALUES ('$alg', '$1', $us, $min, $calls)"
    done <"$work/crate.txt"
}
crate_run before

log "Timing inside the server (median of repetitions; this takes a couple of minutes)"
run_alg() { # ALG REPS EXTRA_VARIANTS EXTRA_EXPRS
    psql_q >/dev/null <<SQL
SELECT bench.run('$1',
    ARRAY['baseline', 'explicit', 'ring'${3:-}],
    ARRAY['length(token)', format('auth.verify_jwt(token, %L, %L)', k.key, format('{"algorithms": ["%s"]}', k.alg)), 'auth.verify_jwt(token)'${4:-}],
    $2)
FROM bench.keys k WHERE k.alg = '$1';
SQL
}
run_alg HS256 "$REPS_FAST" \
    ", 'plpgsql', 'decode_unverified', 'payload_jsonb_in'" \
    ", format('bench.verify_hs256_plpgsql(token, %L)', k.key), 'auth.decode_jwt_unverified(token)', 'payload::jsonb'"
run_alg EdDSA "$REPS_FAST"
run_alg RS256 "$REPS_SLOW"
run_alg ES256 "$REPS_SLOW"

crate_run after

echo
echo "All figures: microseconds per call. raw = per row of SELECT count(f(token)) FROM <tokens>;"
echo "net = raw - raw of the same scan with count(length(token)); medians over the repetitions."
echo
psql_q -P footer=off <<'SQL'
SELECT alg, variant, rows, reps,
       round(raw_us::numeric, 2) AS "raw µs", round(min_us::numeric, 2) AS "min raw µs",
       round(net_us::numeric, 2) AS "net µs"
FROM bench.results
ORDER BY array_position(ARRAY['HS256','EdDSA','RS256','ES256'], alg),
         array_position(ARRAY['baseline','ring','explicit','plpgsql','decode_unverified','payload_jsonb_in'], variant);

\echo 'jsonwebtoken::decode alone (bench/crate_cost), before and after the server timings'
SELECT alg, round(max(us) FILTER (WHERE run = 'before')::numeric, 2) AS "before µs",
       round(max(us) FILTER (WHERE run = 'after')::numeric, 2) AS "after µs",
       round(avg(us)::numeric, 2) AS "mean µs", max(calls) AS "calls/pass"
FROM bench.crate_cost GROUP BY alg
ORDER BY array_position(ARRAY['HS256','EdDSA','RS256','ES256'], alg);

\echo 'Summary (net µs per call; crate = mean of the two crate runs, key parsed once)'
WITH crate AS (SELECT alg, avg(us) AS us FROM bench.crate_cost GROUP BY alg)
SELECT r.alg,
       round(r.net_us::numeric, 2)                     AS "pg_auth ring",
       round(e.net_us::numeric, 2)                     AS "pg_auth explicit",
       round(c.us::numeric, 2)                         AS "crate",
       round((r.net_us / c.us)::numeric, 2) || 'x'     AS "ring/crate",
       round((e.net_us / c.us)::numeric, 2) || 'x'     AS "explicit/crate"
FROM bench.results r
JOIN bench.results e ON e.alg = r.alg AND e.variant = 'explicit'
LEFT JOIN crate c ON c.alg = r.alg
WHERE r.variant = 'ring'
ORDER BY array_position(ARRAY['HS256','EdDSA','RS256','ES256'], r.alg);

\echo 'HS256: lean plpgsql verifier over pgcrypto hmac() vs pg_auth (net µs per call)'
SELECT round(p.net_us::numeric, 2)                     AS "plpgsql+pgcrypto HS256",
       round(r.net_us::numeric, 2)                     AS "pg_auth HS256 ring",
       round(e.net_us::numeric, 2)                     AS "pg_auth HS256 explicit",
       round((p.net_us / r.net_us)::numeric, 1) || 'x' AS "speedup ring",
       round((p.net_us / e.net_us)::numeric, 1) || 'x' AS "speedup explicit"
FROM bench.results p
JOIN bench.results r ON r.alg = p.alg AND r.variant = 'ring'
JOIN bench.results e ON e.alg = p.alg AND e.variant = 'explicit'
WHERE p.alg = 'HS256' AND p.variant = 'plpgsql';

\echo 'Goals (pg_auth = the larger of its ring and explicit net µs per call, both measured in this run):'
WITH crate AS (SELECT alg, avg(us) AS us FROM bench.crate_cost GROUP BY alg),
pg AS (SELECT r.alg, r.net_us AS ring, e.net_us AS explicit, greatest(r.net_us, e.net_us) AS worst
       FROM bench.results r JOIN bench.results e ON e.alg = r.alg AND e.variant = 'explicit' WHERE r.variant = 'ring')
SELECT goal, figure, target, result
FROM (
    SELECT 1 AS o, 'HS256 auth.verify_jwt per call' AS goal,
           round(pg.worst::numeric, 2) || ' µs (ring ' || round(pg.ring::numeric, 2) || ', explicit '
             || round(pg.explicit::numeric, 2) || ')' AS figure,
           '<= 1.2 µs per call' AS target, CASE WHEN pg.worst <= 1.2 THEN 'MET' ELSE 'MISSED' END AS result
    FROM pg WHERE pg.alg = 'HS256'
    UNION ALL
    SELECT 2, 'HS256 against the lean plpgsql+pgcrypto verifier',
           round((p.net_us / pg.worst)::numeric, 1) || 'x (' || round(p.net_us::numeric, 2) || ' / '
             || round(pg.worst::numeric, 2) || ' µs; ring ' || round((p.net_us / pg.ring)::numeric, 1) || 'x)',
           '>= 6x plpgsql', CASE WHEN p.net_us / pg.worst >= 6 THEN 'MET' ELSE 'MISSED' END
    FROM pg JOIN bench.results p ON p.alg = pg.alg AND p.variant = 'plpgsql' WHERE pg.alg = 'HS256'
    UNION ALL
    SELECT 2 + array_position(ARRAY['EdDSA','RS256','ES256'], pg.alg), pg.alg || ' against the crate alone',
           round((pg.worst / c.us)::numeric, 2) || 'x (' || round(pg.worst::numeric, 2) || ' / ' || round(c.us::numeric, 2) || ' µs)',
           '<= 1.5x crate', CASE WHEN pg.worst / c.us <= 1.5 THEN 'MET' ELSE 'MISSED' END
    FROM pg JOIN crate c USING (alg) WHERE pg.alg <> 'HS256'
) g ORDER BY o;
SQL
echo "JWT part: $(( $(date +%s) - started )) s"
