#!/usr/bin/env bash
# Part 3 of bench/run.sh:
#   B  auth.authenticate(token) with 1k, 100k and 1M live sessions in auth.sessions (10M on
#      request): µs per call (median of repetitions, over 20k sampled sessions) for a session token,
#      a sid-bound JWT (as auth.login(…, true) issues it) and a plain JWT; the sid-bound JWT against
#      the plain one, and the ratio of the largest size to the smallest (flatness);
#   C  auth.login at the configured argon2id cost: logins/s on one core, and the cost of a failed
#      login for an unknown email against a wrong password (they should be equal).
# Runs on its own too (the database pg_auth_bench_sessions is recreated). See bench/README.md.
#
# Knobs (environment): SESSION_SIZES ("1000 100000 1000000"; add 10000000 for the 10M size),
# SAMPLE_N (20000 sessions per pass), REPS_SESSIONS (5), GROW_BATCH (1000000 sessions inserted per
# transaction), N_LOGINS (20 rounds of success / unknown email / wrong password).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

DB=pg_auth_bench_sessions
SESSION_SIZES=${SESSION_SIZES:-"1000 100000 1000000"}
SAMPLE_N=${SAMPLE_N:-20000} REPS_SESSIONS=${REPS_SESSIONS:-5} N_LOGINS=${N_LOGINS:-20}
GROW_BATCH=${GROW_BATCH:-1000000}
started=$(date +%s)

bench_prepare
create_db "$DB"
psql_q() { "$PG_BIN/psql" -X -q -d "$DB" -v ON_ERROR_STOP=1 "$@"; }
log "Loading bench/sessions.sql"
psql_q -f "$BENCH/sessions.sql" >/dev/null

# C first, on a quiet database (before a million rows are written).
log "C: timing auth.login, $N_LOGINS rounds of (success, unknown email, wrong password), one backend"
psql_q -c "SELECT bench_s.time_logins($N_LOGINS)" >/dev/null

# B: grow the population step by step (at most GROW_BATCH sessions per transaction); after each
# step VACUUM ANALYZE (hint bits, visibility map and statistics, so neither autovacuum nor
# first-read page writes land in the timings), then time.
for size in $SESSION_SIZES; do
    log "B: growing auth.sessions to $size live sessions"
    t0=$(date +%s.%N)
    have=$(psql_q -At -c "SELECT n FROM bench_s.population")
    while [ "$have" -lt "$size" ]; do
        have=$(( size - have > GROW_BATCH ? have + GROW_BATCH : size ))
        psql_q -c "SELECT bench_s.grow($have)" >/dev/null
        [ "$have" = "$size" ] || echo "  $have sessions ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s)" >&2
    done
    psql_q -c "VACUUM (ANALYZE) auth.sessions" -c "VACUUM (ANALYZE) auth.users" -c "CHECKPOINT"
    grow_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    psql_q -c "INSERT INTO bench_s.sizes SELECT $size, $grow_s,
                   pg_total_relation_size('auth.sessions') / 1048576.0, pg_total_relation_size('auth.users') / 1048576.0"
    log "B: timing auth.authenticate over $SAMPLE_N sampled sessions (session token, sid-bound JWT, plain JWT), $REPS_SESSIONS repetitions"
    # One session: a warm-up pass of each variant, then the repetitions, interleaved. Each pass is
    # its own transaction (rolled back): authenticate switches role for the rest of it.
    {
        echo 'SET max_parallel_workers_per_gather = 0;'
        echo 'SET jit = off;'
        echo "SELECT bench_s.resample($SAMPLE_N);"
        for rep in $(seq 0 "$REPS_SESSIONS"); do
            for v in baseline authenticate sid_jwt jwt cached_plan plan_per_call; do
                case $v in
                    baseline) expr='length(token)' ;;
                    authenticate) expr='auth.authenticate(token)' ;;
                    sid_jwt) expr='auth.authenticate(sid_jwt)' ;;
                    jwt) expr='auth.authenticate(jwt)' ;;
                    cached_plan) expr='bench_s.lookup(token, false)' ;;
                    plan_per_call) expr='bench_s.lookup(token, true)' ;;
                esac
                echo 'BEGIN;'
                echo "SELECT rows, us, reads FROM bench_s.time_query('SELECT count($expr) FROM bench_s.sample') \\gset"
                echo 'ROLLBACK;'
                [ "$rep" = 0 ] || echo "INSERT INTO bench_s.samples VALUES ($size, '$v', $rep, :rows, :us, :reads);"
            done
        done
    } | psql_q >/dev/null
done

echo
psql_q -P footer=off <<'SQL'
\echo 'B. auth.authenticate(credential) per call against the number of live sessions. Each call verifies,'
\echo '   switches the role to web_user and publishes the claims; what differs is how the credential is checked:'
\echo '     session token: SHA-256 of the token, looked up in auth.sessions (by token_hash; live, user not disabled);'
\echo '     sid-bound JWT: HS256 verification, the session looked up in auth.sessions (by id = sid; live, user not'
\echo '                    disabled) and the jti in auth.revoked_tokens;'
\echo '     plain JWT:     HS256 verification only (no sid, no jti): the JWT cookie of PostgREST configuration (c).'
\echo '   raw = median over repetitions of (pass time / rows); net = raw - raw of count(length(token)) over the'
\echo '   same rows; reads = blocks of auth.* not found in shared_buffers, per call.'
CREATE TEMP VIEW res AS
WITH med AS (
    SELECT live, variant, max(rows) AS rows, count(*) AS reps,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY us / rows) AS raw_us, min(us / rows) AS min_us,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY reads::float8 / rows) AS reads
    FROM bench_s.samples GROUP BY live, variant)
SELECT m.live, m.variant, m.rows, m.reps, m.raw_us, m.min_us, m.raw_us - b.raw_us AS net_us, m.reads
FROM med m JOIN med b ON b.live = m.live AND b.variant = 'baseline';
CREATE TEMP TABLE credential (variant text, label text, o int);
INSERT INTO credential VALUES ('authenticate', 'session token', 1), ('sid_jwt', 'sid-bound JWT', 2), ('jwt', 'plain JWT', 3);

SELECT s.live AS "live sessions", round(s.sessions_mb::numeric) AS "sessions MB", round(s.users_mb::numeric) AS "users MB",
       round(s.grow_s::numeric, 1) AS "populate+vacuum s", max(r.rows) AS "calls/pass", max(r.reps) AS reps
FROM bench_s.sizes s JOIN res r USING (live) GROUP BY s.live, s.sessions_mb, s.users_mb, s.grow_s ORDER BY s.live;

SELECT r.live AS "live sessions", c.label AS credential,
       round(r.raw_us::numeric, 2) AS "raw µs", round(r.min_us::numeric, 2) AS "min raw µs",
       round(r.net_us::numeric, 2) AS "net µs/call", round(r.reads::numeric, 2) AS "reads/call"
FROM res r JOIN credential c USING (variant) ORDER BY r.live, c.o;

\echo 'Per size (net µs per call); the sid-bound JWT against the plain JWT (goal: at most 2 µs more, up to 1M sessions):'
CREATE TEMP VIEW per_size AS
SELECT live, max(net_us) FILTER (WHERE variant = 'authenticate') AS session,
       max(net_us) FILTER (WHERE variant = 'sid_jwt') AS sid_jwt, max(net_us) FILTER (WHERE variant = 'jwt') AS jwt
FROM res GROUP BY live;
SELECT live AS "live sessions", round(session::numeric, 2) AS "session token", round(sid_jwt::numeric, 2) AS "sid-bound JWT",
       round(jwt::numeric, 2) AS "plain JWT", to_char(sid_jwt - jwt, 'FMS990.00') AS "sid JWT - JWT",
       CASE WHEN live > 1000000 THEN 'measured' WHEN sid_jwt - jwt <= 2 THEN 'MET' ELSE 'MISSED' END AS "<= 2 µs"
FROM per_size ORDER BY live;

\echo 'Goals: flat = net(size) / net(smallest size) <= 1.2x, judged at the largest size up to 1M; sizes above'
\echo '1M (SESSION_SIZES with 10000000) are measured and shown without a goal.'
WITH lo AS (SELECT min(live) AS live FROM res), hi AS (SELECT max(live) AS live FROM res WHERE live <= 1000000)
SELECT goal, figure, target, result
FROM (
    SELECT c.o * 10 + CASE WHEN x.live <= 1000000 THEN 0 ELSE 1 END AS o,
           format('%s flat: %s / %s sessions', c.label, x.live, lo.live) AS goal,
           round((x.net_us / l.net_us)::numeric, 2) || 'x (net ' || round(x.net_us::numeric, 2) || ' / '
             || round(l.net_us::numeric, 2) || ' µs; raw ' || round((x.raw_us / l.raw_us)::numeric, 2) || 'x)' AS figure,
           '<= 1.2x' AS target,
           CASE WHEN x.live > 1000000 THEN 'measured' WHEN x.net_us / l.net_us <= 1.2 THEN 'MET' ELSE 'MISSED' END AS result
    FROM credential c, lo, hi, res x, res l
    WHERE c.variant IN ('authenticate', 'sid_jwt') AND x.variant = c.variant AND l.variant = c.variant
      AND l.live = lo.live AND (x.live = hi.live OR x.live > 1000000)
    UNION ALL
    SELECT 100, 'sid-bound JWT - plain JWT, every size up to 1M',
           'largest ' || to_char(max(sid_jwt - jwt), 'FMS990.00') || ' µs (at ' || string_agg(live::text, ', ' ORDER BY live) || ')',
           '<= 2 µs', CASE WHEN max(sid_jwt - jwt) <= 2 THEN 'MET' ELSE 'MISSED' END
    FROM per_size WHERE live <= 1000000
) g ORDER BY o;

\echo 'Diagnostic: pg_auth 0.2.0''s session query (SQL over SPI; 0.3.0 probes the indexes directly) alone'
\echo 'from plpgsql (no role switch, no claims), with a cached plan or parsed and planned on every call'
\echo '(net µs per call; reads per call).'
SELECT live AS "live sessions",
       round(max(net_us) FILTER (WHERE variant = 'authenticate')::numeric, 2) AS "pg_auth authenticate",
       round(max(net_us) FILTER (WHERE variant = 'plan_per_call')::numeric, 2) AS "query, planned per call",
       round(max(net_us) FILTER (WHERE variant = 'cached_plan')::numeric, 2) AS "query, cached plan",
       round(max(reads) FILTER (WHERE variant = 'cached_plan')::numeric, 2) AS "reads (cached plan)",
       current_setting('shared_buffers') AS shared_buffers
FROM res GROUP BY live ORDER BY live;

\echo 'C. auth.login at the configured argon2id cost, one backend, each call timed alone'
LOAD 'pg_auth';
SELECT current_setting('pg_auth.argon2_memory_kib') AS "argon2 memory KiB",
       current_setting('pg_auth.argon2_iterations') AS iterations,
       current_setting('pg_auth.argon2_parallelism') AS parallelism;

SELECT kind, count(*) AS calls, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric) AS "median µs",
       round(min(us)::numeric) AS "min µs", round(max(us)::numeric) AS "max µs",
       round((1e6 / percentile_cont(0.5) WITHIN GROUP (ORDER BY us))::numeric, 1) AS "per s (1 core)"
FROM bench_s.logins GROUP BY kind ORDER BY array_position(ARRAY['success', 'unknown email', 'wrong password'], kind);

WITH m AS (SELECT kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS us FROM bench_s.logins GROUP BY kind)
SELECT round((1e6 * (SELECT count(*) FROM bench_s.logins WHERE kind = 'success')
              / (SELECT sum(us) FROM bench_s.logins WHERE kind = 'success'))::numeric, 1) AS "logins/s (sequential)",
       round((u.us / w.us)::numeric, 3) AS "unknown email / wrong password",
       round((u.us / s.us)::numeric, 3) AS "unknown email / success",
       CASE WHEN u.us / w.us BETWEEN 0.9 AND 1.1 THEN 'MET' ELSE 'MISSED' END AS "goal: unknown ~ wrong (0.9-1.1)"
FROM m u, m w, m s WHERE u.kind = 'unknown email' AND w.kind = 'wrong password' AND s.kind = 'success';
SQL
echo "Sessions part: $(( $(date +%s) - started )) s"
