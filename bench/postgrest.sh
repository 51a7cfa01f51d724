#!/usr/bin/env bash
# Part 2 of bench/run.sh: requests per second through the real PostgREST 12.0.2 (loopback, wrk)
# for eight configurations that differ only in how a request is authenticated:
#   a  no auth                 no pre-request, no jwt-secret, anonymous requests
#   b  PostgREST JWT           jwt-secret (HS256), Authorization: Bearer <HS256 JWT>
#   c  pg_auth JWT cookie      db-pre-request = auth.authenticate, Cookie: access_token=<ring JWT>
#   d  plpgsql JWT cookie      db-pre-request = bench_rest.authenticate_plpgsql (pgcrypto), same cookie
#   e  no-op pre-request       db-pre-request = bench_rest.noop, anonymous requests
#   f  pg_auth session cookie  db-pre-request = auth.authenticate, Cookie: access_token=<session token>
#   g  (diagnostic) as e, but sending c's JWT cookie: what the cookie costs PostgREST by itself
#   h  sessions example        db-pre-request = bench_rest.authenticate_sessions_example (plpgsql,
#                              plain-text token table), Cookie: access_token=<f's session token>
# All eight PostgREST processes run at once (same db-pool), each warmed up, then measured in
# interleaved rounds; each configuration is compared with (e) round by round (median and min-max
# of the per-round ratios). See bench/README.md.
#
# Before the HTTP load, the database side of each configuration is replayed inside PostgreSQL
# (bench_rest.replay in postgrest.sql), in interleaved rounds too: it resolves the few-µs
# differences that the HTTP figures cannot on a shared machine.
#
# Knobs (environment): WRK_THREADS (2), WRK_CONNECTIONS (16), WRK_SECONDS (3), REPS_HTTP (10),
# WARMUP_SECONDS (3), DB_POOL (10, every instance), HTTP_PORT_BASE (3100: ports 3101-3108, admin
# ports 3111-3118), HTTP_PATH (/items?limit=1); REPLAY_N (10000 replayed requests per
# configuration and round), REPS_REPLAY (10 rounds); FILLER_SESSIONS (10000 extra sessions in
# auth.sessions and in (h)'s table).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

DB=pg_auth_bench_rest
WRK_THREADS=${WRK_THREADS:-2} WRK_CONNECTIONS=${WRK_CONNECTIONS:-16} WRK_SECONDS=${WRK_SECONDS:-3}
REPS_HTTP=${REPS_HTTP:-10} WARMUP_SECONDS=${WARMUP_SECONDS:-3} DB_POOL=${DB_POOL:-10}
REPLAY_N=${REPLAY_N:-10000} REPS_REPLAY=${REPS_REPLAY:-10} FILLER_SESSIONS=${FILLER_SESSIONS:-10000}
HTTP_PORT_BASE=${HTTP_PORT_BASE:-3100} HTTP_PATH=${HTTP_PATH:-/items?limit=1}
started=$(date +%s)

bench_prepare
POSTGREST_BIN=$(ensure_postgrest)
command -v wrk >/dev/null || { echo "wrk not found (ensure_packages installs it)" >&2; exit 1; }
create_db "$DB"

psql_q() { "$PG_BIN/psql" -X -q -d "$DB" -v ON_ERROR_STOP=1 "$@"; }
log "Loading bench/postgrest.sql (table api.items, pre-request functions, credentials)"
psql_q -v filler_sessions="$FILLER_SESSIONS" -f "$BENCH/postgrest.sql" >/dev/null
cred() { psql_q -At -c "SELECT value FROM bench_rest.credentials WHERE name = '$1'"; }

work=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CONFIGS=(a b c d e f g h)
n=${#CONFIGS[@]}
declare -A LABEL PRE SECRET HEADER ROLE PORT ADMIN
LABEL=([a]="no auth" [b]="PostgREST jwt-secret, Bearer HS256" [c]="pg_auth authenticate, JWT cookie"
       [d]="plpgsql+pgcrypto, JWT cookie" [e]="no-op pre-request" [f]="pg_auth authenticate, session cookie"
       [g]="no-op pre-request, JWT cookie sent" [h]="sessions-example plpgsql, session cookie")
PRE=([a]="" [b]="" [c]="auth.authenticate" [d]="bench_rest.authenticate_plpgsql" [e]="bench_rest.noop"
     [f]="auth.authenticate" [g]="bench_rest.noop" [h]="bench_rest.authenticate_sessions_example")
SECRET=([b]="$(cred postgrest_secret)")
HEADER=([a]="" [b]="Authorization: Bearer $(cred bearer_jwt)" [c]="Cookie: access_token=$(cred cookie_jwt)"
        [d]="Cookie: access_token=$(cred cookie_jwt)" [e]="" [f]="Cookie: access_token=$(cred session_token)"
        [g]="Cookie: access_token=$(cred cookie_jwt)" [h]="Cookie: access_token=$(cred session_token)")
ROLE=([a]=web_anon [b]=web_user [c]=web_user [d]=web_user [e]=web_anon [f]=web_user [g]=web_anon [h]=web_user)

# The database side of each configuration, replayed inside the server (bench_rest.replay), as
# the authenticator. (b)'s DB side: the role and the verified claims PostgREST sets, no pre-request.
bearer_claims=$(psql_q -At -c "SELECT convert_from(decode(rpad(translate(p, '-_', '+/'), (length(p) + 3) / 4 * 4, '='), 'base64'), 'UTF8')
                               FROM (SELECT split_part(value, '.', 2) AS p FROM bench_rest.credentials WHERE name = 'bearer_jwt') t")
log "Replaying the database side of a request inside PostgreSQL: $REPLAY_N per configuration, $REPS_REPLAY interleaved rounds"
{
    echo '\set ON_ERROR_STOP on'
    # Round 0: warm-up, not recorded. Each round starts one configuration later than the last.
    for rep in $(seq 0 "$REPS_REPLAY"); do
        for k in $(seq 0 $((n - 1))); do
            c=${CONFIGS[$(((k + rep) % n))]}
            case $c in
                a) args="'', 'web_anon', :'anon', '{}'" ;;
                b) args="'', 'web_user', :'bearer_claims', '{}'" ;;
                c) args="'auth.authenticate', 'web_anon', :'anon', :'jwt_cookie'" ;;
                d) args="'bench_rest.authenticate_plpgsql', 'web_anon', :'anon', :'jwt_cookie'" ;;
                e) args="'bench_rest.noop', 'web_anon', :'anon', '{}'" ;;
                f) args="'auth.authenticate', 'web_anon', :'anon', :'session_cookie'" ;;
                g) args="'bench_rest.noop', 'web_anon', :'anon', :'jwt_cookie'" ;;
                h) args="'bench_rest.authenticate_sessions_example', 'web_anon', :'anon', :'session_cookie'" ;;
            esac
            echo "CALL bench_rest.replay($args, $([ "$rep" = 0 ] && echo 1000 || echo "$REPLAY_N")) \gset"
            [ "$rep" = 0 ] || echo "INSERT INTO bench_rest.replays VALUES ('$c', $rep, :us);"
        done
    done
} >"$work/replay.sql"
"$PG_BIN/psql" -X -q -d "$DB" -U authenticator -v ON_ERROR_STOP=1 -v anon='{"role":"web_anon"}' \
    -v bearer_claims="$bearer_claims" -v jwt_cookie="{\"access_token\":\"$(cred cookie_jwt)\"}" \
    -v session_cookie="{\"access_token\":\"$(cred session_token)\"}" -f "$work/replay.sql"

i=0
for c in "${CONFIGS[@]}"; do
    i=$((i + 1))
    PORT[$c]=$((HTTP_PORT_BASE + i)) ADMIN[$c]=$((HTTP_PORT_BASE + 10 + i))
    for p in "${PORT[$c]}" "${ADMIN[$c]}"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "port $p is already in use: set HTTP_PORT_BASE to a free range" >&2; exit 1
        fi
    done
    {
        echo "db-uri = \"postgres://authenticator@127.0.0.1:$BENCH_PORT/$DB\""
        echo 'db-schemas = "api"'
        echo 'db-anon-role = "web_anon"'
        echo "db-pool = $DB_POOL"
        echo 'db-pool-acquisition-timeout = 10'
        echo 'db-pool-max-idletime = 3600'  # an instance idles while the others are measured
        echo 'db-channel-enabled = false'
        echo 'db-config = false'
        echo 'server-host = "127.0.0.1"'
        echo "server-port = ${PORT[$c]}"
        echo "admin-server-port = ${ADMIN[$c]}"
        echo 'log-level = "error"'
        [ -n "${PRE[$c]}" ] && echo "db-pre-request = \"${PRE[$c]}\""
        [ -n "${SECRET[$c]:-}" ] && echo "jwt-secret = \"${SECRET[$c]}\""
    } >"$work/$c.conf"
done

log "Starting ${#CONFIGS[@]} PostgREST 12.0.2 instances (db-pool $DB_POOL each) on 127.0.0.1:$((HTTP_PORT_BASE + 1))-$((HTTP_PORT_BASE + ${#CONFIGS[@]}))"
for c in "${CONFIGS[@]}"; do
    "$POSTGREST_BIN" "$work/$c.conf" >"$work/$c.log" 2>&1 </dev/null &
    pids+=($!)
done
for c in "${CONFIGS[@]}"; do
    ready=0
    for _ in $(seq 1 200); do
        if curl -sf -m 1 -o /dev/null "http://127.0.0.1:${ADMIN[$c]}/ready"; then ready=1; break; fi
        sleep 0.1
    done
    if [ "$ready" != 1 ]; then
        echo "PostgREST ($c) did not become ready in 20 s:" >&2; tail -20 "$work/$c.log" >&2; exit 1
    fi
done

# Every configuration must answer 200 and run the request as the expected role, else the
# throughput would measure an error path.
curl_h() { # CONFIG PATH
    local args=(-s -m 5 -o "$work/body" -w '%{http_code}')
    [ -n "${HEADER[$1]}" ] && args+=(-H "${HEADER[$1]}")
    curl "${args[@]}" "http://127.0.0.1:${PORT[$1]}$2"
}
log "Checking each configuration (GET /rpc/whoami and GET $HTTP_PATH)"
for c in "${CONFIGS[@]}"; do
    code=$(curl_h "$c" /rpc/whoami)
    role=$(grep -o '"role" *: *"[^"]*"' "$work/body" | head -n1 | sed 's/.*"\([^"]*\)"$/\1/')
    code2=$(curl_h "$c" "$HTTP_PATH")
    printf '  (%s) %-42s whoami %s as %-9s %s %s\n' "$c" "${LABEL[$c]}" "$code" "$role" "$HTTP_PATH" "$code2" >&2
    if [ "$code" != 200 ] || [ "$role" != "${ROLE[$c]}" ] || [ "$code2" != 200 ]; then
        echo "configuration $c: expected 200 as ${ROLE[$c]}; body: $(head -c 400 "$work/body")" >&2
        tail -20 "$work/$c.log" >&2
        exit 1
    fi
done

run_wrk() { # CONFIG SECONDS REP (REP 0: warm-up, not recorded)
    local c=$1 args=(-t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"$2"s) out rps reqs non2xx errors
    [ -n "${HEADER[$c]}" ] && args+=(-H "${HEADER[$c]}")
    out=$(timeout $(($2 + 30)) wrk "${args[@]}" "http://127.0.0.1:${PORT[$c]}$HTTP_PATH")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    errors=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    [ -n "$rps" ] || { echo "could not read wrk's output:" >&2; echo "$out" >&2; exit 1; }
    if [ "$3" != 0 ]; then
        psql_q -c "INSERT INTO bench_rest.runs VALUES ('$c', $3, $rps, ${reqs:-0}, ${non2xx:-0}, ${errors:-0})"
        printf '  round %s (%s) %-42s %9.0f req/s%s\n' "$3" "$c" "${LABEL[$c]}" "$rps" \
            "$([ "${non2xx:-0}${errors:-0}" = 00 ] || echo "  non-2xx ${non2xx:-0}, socket errors ${errors:-0}")" >&2
    fi
}

log "Warm-up: ${WARMUP_SECONDS} s of load on each instance"
for c in "${CONFIGS[@]}"; do run_wrk "$c" "$WARMUP_SECONDS" 0; done

log "Measuring: $REPS_HTTP rounds x $n configurations x ${WRK_SECONDS} s (wrk -t$WRK_THREADS -c$WRK_CONNECTIONS, GET $HTTP_PATH); each round starts one configuration later"
for rep in $(seq 1 "$REPS_HTTP"); do
    for k in $(seq 0 $((n - 1))); do
        run_wrk "${CONFIGS[$(((k + rep - 1) % n))]}" "$WRK_SECONDS" "$rep"
    done
done

for c in "${CONFIGS[@]}"; do
    if grep -qi 'error\|fatal' "$work/$c.log"; then
        echo "PostgREST ($c) logged errors:" >&2; tail -5 "$work/$c.log" >&2
    fi
done

labels_sql=$(for c in "${CONFIGS[@]}"; do printf "('%s', '%s'), " "$c" "${LABEL[$c]}"; done)
echo
echo "Database side only: bench_rest.replay runs PostgREST's statements for one request inside the server"
echo "(no HTTP, no PostgREST), $REPLAY_N requests per configuration and round, $REPS_REPLAY interleaved rounds."
echo "µs/request = median of the rounds (min-max). '+ vs (e)' = what the configuration adds to the no-op"
echo "pre-request: the median over the rounds of (config - (e)) taken within each round (min-max)."
echo
psql_q -P footer=off <<SQL
CREATE TEMP TABLE labels (config text, label text);
INSERT INTO labels VALUES ${labels_sql%, };

-- Replay: per round, each configuration's µs and its difference with (e) in the same round.
CREATE TEMP VIEW rp AS
SELECT r.config, r.rep, r.us, r.us - e.us AS vs_e, r.us - a.us AS vs_a
FROM bench_rest.replays r
JOIN bench_rest.replays e ON e.rep = r.rep AND e.config = 'e'
JOIN bench_rest.replays a ON a.rep = r.rep AND a.config = 'a';
CREATE TEMP VIEW rmed AS
SELECT config, count(*) AS rounds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS us, min(us) AS us_lo, max(us) AS us_hi,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_a) AS vs_a,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_e) AS vs_e, min(vs_e) AS vs_e_lo, max(vs_e) AS vs_e_hi
FROM rp GROUP BY config;

SELECT m.config AS cfg, l.label AS configuration, round(m.us::numeric, 1) AS "µs/request",
       round(m.us_lo::numeric, 1) || '-' || round(m.us_hi::numeric, 1) AS "min-max",
       round(m.vs_a::numeric, 1) AS "+ vs (a)",
       CASE WHEN m.config = 'e' THEN '' ELSE to_char(m.vs_e, 'FMS990.0') END AS "+ vs (e)",
       CASE WHEN m.config = 'e' THEN '' ELSE to_char(m.vs_e_lo, 'FMS990.0') || ' to ' || to_char(m.vs_e_hi, 'FMS990.0') END AS "min-max"
FROM rmed m JOIN labels l USING (config)
ORDER BY m.config;

-- (f) against (h), round by round.
CREATE TEMP VIEW fh AS
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY f.us - h.us) AS d, min(f.us - h.us) AS lo, max(f.us - h.us) AS hi,
       count(*) FILTER (WHERE f.us < h.us) AS won, count(*) AS rounds
FROM bench_rest.replays f JOIN bench_rest.replays h ON h.rep = f.rep AND h.config = 'h' WHERE f.config = 'f';

\echo 'Goals, database side (judged on the median of the per-round differences; rounds = rounds that meet it):'
SELECT goal, figure, target, result, rounds
FROM (
    SELECT 1 AS o, '(f) - (e)  pg_auth session cookie, added over a no-op pre-request' AS goal,
           to_char(f.vs_e, 'FM990.0') || ' µs (' || to_char(f.vs_e_lo, 'FM990.0') || ' to ' || to_char(f.vs_e_hi, 'FM990.0') || ')' AS figure,
           '<= 4 µs' AS target, CASE WHEN f.vs_e <= 4 THEN 'MET' ELSE 'MISSED' END AS result,
           (SELECT count(*) FILTER (WHERE vs_e <= 4) || '/' || count(*) FROM rp WHERE config = 'f') AS rounds
    FROM rmed f WHERE f.config = 'f'
    UNION ALL
    SELECT 2, '(c) - (e)  pg_auth JWT cookie, added over a no-op pre-request',
           to_char(c.vs_e, 'FM990.0') || ' µs (' || to_char(c.vs_e_lo, 'FM990.0') || ' to ' || to_char(c.vs_e_hi, 'FM990.0') || ')',
           '<= 3 µs', CASE WHEN c.vs_e <= 3 THEN 'MET' ELSE 'MISSED' END,
           (SELECT count(*) FILTER (WHERE vs_e <= 3) || '/' || count(*) FROM rp WHERE config = 'c')
    FROM rmed c WHERE c.config = 'c'
    UNION ALL
    SELECT 3, '(f) faster than (h): (f) - (e) < (h) - (e), sessions example',
           to_char(f.vs_e, 'FM990.0') || ' vs ' || to_char(h.vs_e, 'FM990.0') || ' µs; (f) - (h) ' || to_char(fh.d, 'FMS990.0')
             || ' (' || to_char(fh.lo, 'FMS990.0') || ' to ' || to_char(fh.hi, 'FMS990.0') || ')',
           '(f) - (h) < 0', CASE WHEN fh.d < 0 THEN 'MET' ELSE 'MISSED' END, fh.won || '/' || fh.rounds
    FROM rmed f, rmed h, fh WHERE f.config = 'f' AND h.config = 'h'
) g ORDER BY o;

WITH m AS (SELECT config, vs_e FROM rmed)
SELECT round(c.vs_e::numeric, 1) AS "pg_auth (c) - (e) µs", round(d.vs_e::numeric, 1) AS "plpgsql (d) - (e) µs",
       round((d.vs_e / nullif(greatest(c.vs_e, 0), 0))::numeric, 1) || 'x' AS "JWT work: plpgsql / pg_auth",
       round(f.vs_e::numeric, 1) AS "pg_auth (f) - (e) µs", round(h.vs_e::numeric, 1) AS "example (h) - (e) µs",
       round((h.vs_e / nullif(greatest(f.vs_e, 0), 0))::numeric, 1) || 'x' AS "session work: example / pg_auth"
FROM m c, m d, m f, m h WHERE c.config = 'c' AND d.config = 'd' AND f.config = 'f' AND h.config = 'h';
\echo '(b)''s database side is only PostgREST setting the verified role and claims: its JWT work is in PostgREST.'
\echo

-- HTTP: per round, each configuration's req/s and its ratio to (e) and (a) in the same round.
CREATE TEMP VIEW hp AS
SELECT r.config, r.rep, r.rps, r.rps / e.rps AS to_e, r.rps / a.rps AS to_a
FROM bench_rest.runs r
JOIN bench_rest.runs e ON e.rep = r.rep AND e.config = 'e'
JOIN bench_rest.runs a ON a.rep = r.rep AND a.config = 'a';
CREATE TEMP VIEW hmed AS
SELECT r.config, count(*) AS rounds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.rps) AS rps, min(r.rps) AS lo, max(r.rps) AS hi,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.to_a) AS to_a,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.to_e) AS to_e, min(p.to_e) AS to_e_lo, max(p.to_e) AS to_e_hi,
       sum(r.non2xx) AS non2xx, sum(r.errors) AS errors
FROM bench_rest.runs r JOIN hp p USING (config, rep) GROUP BY r.config;
-- Any ratio of two configurations, per round: median, min, max, and rounds at or above a target.
CREATE TEMP TABLE pair (x text, y text, target float8);
CREATE TEMP VIEW paired AS
SELECT p.x, p.y, p.target, percentile_cont(0.5) WITHIN GROUP (ORDER BY rx.rps / ry.rps) AS ratio,
       min(rx.rps / ry.rps) AS lo, max(rx.rps / ry.rps) AS hi,
       count(*) FILTER (WHERE rx.rps / ry.rps >= p.target) AS ok, count(*) AS rounds
FROM pair p JOIN bench_rest.runs rx ON rx.config = p.x JOIN bench_rest.runs ry ON ry.config = p.y AND ry.rep = rx.rep
GROUP BY p.x, p.y, p.target;
CREATE TEMP VIEW bad AS SELECT sum(non2xx + errors) AS n FROM bench_rest.runs;

\echo 'PostgREST 12.0.2 on 127.0.0.1, GET $HTTP_PATH, wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${WRK_SECONDS}s, db-pool $DB_POOL, $REPS_HTTP interleaved rounds.'
\echo 'req/s = median of the rounds (min-max). / (e) and / (a) = median over the rounds of the ratio taken within'
\echo 'one round (min-max of those per-round ratios for / (e)). Every response was 2xx unless shown.'
SELECT m.config AS cfg, l.label AS configuration, round(m.rps) AS "req/s", round(m.lo) || '-' || round(m.hi) AS "min-max",
       round(m.to_a::numeric, 3) AS "/ (a)", round(m.to_e::numeric, 3) AS "/ (e)",
       CASE WHEN m.config = 'e' THEN '' ELSE round(m.to_e_lo::numeric, 3) || '-' || round(m.to_e_hi::numeric, 3) END AS "/ (e) min-max",
       m.non2xx AS "non-2xx", m.errors AS "sock err"
FROM hmed m JOIN labels l USING (config)
ORDER BY m.config;

INSERT INTO pair VALUES ('c', 'e', 0.97), ('f', 'e', 0.97), ('c', 'b', 1.0), ('c', 'd', 1.4),
                        ('g', 'e', 1.0), ('h', 'e', 1.0), ('f', 'h', 1.0), ('c', 'g', 1.0);
\echo 'Goals, HTTP (judged on the median of the per-round ratios; rounds = rounds at or above the target):'
SELECT goal, round(p.ratio::numeric, 3) AS ratio, round(p.lo::numeric, 3) || '-' || round(p.hi::numeric, 3) AS "min-max",
       '>= ' || p.target AS target,
       CASE WHEN bad.n > 0 THEN 'INVALID (non-2xx)' WHEN p.ratio >= p.target THEN 'MET' ELSE 'MISSED' END AS result,
       p.ok || '/' || p.rounds AS rounds
FROM paired p, bad, LATERAL (VALUES ('c', 'e', 1, '(c) >= 0.97 x (e)  pg_auth JWT cookie vs no-op pre-request'),
                                    ('f', 'e', 2, '(f) >= 0.97 x (e)  pg_auth session cookie vs no-op pre-request'),
                                    ('c', 'b', 3, '(c) >= (b)         JWT cookie vs PostgREST verifying a Bearer JWT'),
                                    ('c', 'd', 4, '(c) >= 1.4 x (d)   JWT cookie vs plpgsql + pgcrypto')) AS g(x, y, o, goal)
WHERE p.x = g.x AND p.y = g.y
ORDER BY g.o;

\echo 'Diagnostics (no goal). (g) / (e) is the noise: (g) is (e) plus a cookie nobody reads, so its min-max'
\echo 'is about what the HTTP figures cannot resolve; the database side above resolves it.'
SELECT what, round(p.ratio::numeric, 3) AS ratio, round(p.lo::numeric, 3) || '-' || round(p.hi::numeric, 3) AS "min-max"
FROM paired p, LATERAL (VALUES ('g', 'e', 1, '(g) / (e)  no-op: JWT cookie sent / none (noise)'),
                               ('h', 'e', 2, '(h) / (e)  sessions example / no-op'),
                               ('f', 'h', 3, '(f) / (h)  pg_auth session / sessions example'),
                               ('c', 'g', 4, '(c) / (g)  pg_auth / no-op, both sent the JWT cookie')) AS g(x, y, o, what)
WHERE p.x = g.x AND p.y = g.y
ORDER BY g.o;

\echo 'Every round (req/s):'
SELECT config AS cfg, string_agg(round(rps)::text, '  ' ORDER BY rep) AS "rounds 1..n" FROM bench_rest.runs
GROUP BY config ORDER BY config;
SQL
echo "PostgREST part: $(( $(date +%s) - started )) s"
