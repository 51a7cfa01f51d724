#!/usr/bin/env bash
# Part 2 of bench/run.sh: requests per second through the real PostgREST 12.0.2 (loopback, wrk)
# for six configurations that differ only in how a request is authenticated:
#   a  no auth                 no pre-request, no jwt-secret, anonymous requests
#   b  PostgREST JWT           jwt-secret (HS256), Authorization: Bearer <HS256 JWT>
#   c  pg_auth JWT cookie      db-pre-request = auth.authenticate, Cookie: access_token=<ring JWT>
#   d  plpgsql JWT cookie      db-pre-request = bench_rest.authenticate_plpgsql (pgcrypto), same cookie
#   e  no-op pre-request       db-pre-request = bench_rest.noop, anonymous requests
#   f  pg_auth session cookie  db-pre-request = auth.authenticate, Cookie: access_token=<session token>
#   g  (diagnostic) as e, but sending c's JWT cookie: what the cookie costs PostgREST by itself
# All seven PostgREST processes run at once (same db-pool), each warmed up, then measured in
# interleaved rounds; the median over the rounds is reported. See bench/README.md.
#
# Before the HTTP load, the database side of each configuration is replayed inside PostgreSQL
# (bench_rest.replay in postgrest.sql), which shows what each one costs there without the noise.
#
# Knobs (environment): WRK_THREADS (2), WRK_CONNECTIONS (16), WRK_SECONDS (3), REPS_HTTP (10),
# WARMUP_SECONDS (3), DB_POOL (10, every instance), HTTP_PORT_BASE (3100: ports 3101-3107, admin
# ports 3111-3117), HTTP_PATH (/items?limit=1); REPLAY_N (10000 replayed requests per
# configuration and round), REPS_REPLAY (7 rounds).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

DB=pg_auth_bench_rest
WRK_THREADS=${WRK_THREADS:-2} WRK_CONNECTIONS=${WRK_CONNECTIONS:-16} WRK_SECONDS=${WRK_SECONDS:-3}
REPS_HTTP=${REPS_HTTP:-10} WARMUP_SECONDS=${WARMUP_SECONDS:-3} DB_POOL=${DB_POOL:-10}
REPLAY_N=${REPLAY_N:-10000} REPS_REPLAY=${REPS_REPLAY:-7}
HTTP_PORT_BASE=${HTTP_PORT_BASE:-3100} HTTP_PATH=${HTTP_PATH:-/items?limit=1}
started=$(date +%s)

bench_prepare
POSTGREST_BIN=$(ensure_postgrest)
command -v wrk >/dev/null || { echo "wrk not found (ensure_packages installs it)" >&2; exit 1; }
create_db "$DB"

psql_q() { "$PG_BIN/psql" -X -q -d "$DB" -v ON_ERROR_STOP=1 "$@"; }
log "Loading bench/postgrest.sql (table api.items, pre-request functions, credentials)"
psql_q -f "$BENCH/postgrest.sql" >/dev/null
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

CONFIGS=(a b c d e f g)
declare -A LABEL PRE SECRET HEADER ROLE PORT ADMIN
LABEL=([a]="no auth" [b]="PostgREST jwt-secret, Bearer HS256" [c]="pg_auth authenticate, JWT cookie"
       [d]="plpgsql+pgcrypto, JWT cookie" [e]="no-op pre-request" [f]="pg_auth authenticate, session cookie"
       [g]="no-op pre-request, JWT cookie sent")
PRE=([a]="" [b]="" [c]="auth.authenticate" [d]="bench_rest.authenticate_plpgsql" [e]="bench_rest.noop"
     [f]="auth.authenticate" [g]="bench_rest.noop")
SECRET=([b]="$(cred postgrest_secret)")
HEADER=([a]="" [b]="Authorization: Bearer $(cred bearer_jwt)" [c]="Cookie: access_token=$(cred cookie_jwt)"
        [d]="Cookie: access_token=$(cred cookie_jwt)" [e]="" [f]="Cookie: access_token=$(cred session_token)"
        [g]="Cookie: access_token=$(cred cookie_jwt)")
ROLE=([a]=web_anon [b]=web_user [c]=web_user [d]=web_user [e]=web_anon [f]=web_user [g]=web_anon)

# The database side of each configuration, replayed inside the server (bench_rest.replay), as
# the authenticator. (b)'s DB side: the role and the verified claims PostgREST sets, no pre-request.
bearer_claims=$(psql_q -At -c "SELECT convert_from(decode(rpad(translate(p, '-_', '+/'), (length(p) + 3) / 4 * 4, '='), 'base64'), 'UTF8')
                               FROM (SELECT split_part(value, '.', 2) AS p FROM bench_rest.credentials WHERE name = 'bearer_jwt') t")
log "Replaying the database side of a request inside PostgreSQL: $REPLAY_N per configuration, $REPS_REPLAY interleaved rounds"
{
    echo '\set ON_ERROR_STOP on'
    for rep in $(seq 0 "$REPS_REPLAY"); do  # round 0: warm-up, not recorded
        for c in a b c d e f g; do
            case $c in
                a) args="'', 'web_anon', :'anon', '{}'" ;;
                b) args="'', 'web_user', :'bearer_claims', '{}'" ;;
                c) args="'auth.authenticate', 'web_anon', :'anon', :'jwt_cookie'" ;;
                d) args="'bench_rest.authenticate_plpgsql', 'web_anon', :'anon', :'jwt_cookie'" ;;
                e) args="'bench_rest.noop', 'web_anon', :'anon', '{}'" ;;
                f) args="'auth.authenticate', 'web_anon', :'anon', :'session_cookie'" ;;
                g) args="'bench_rest.noop', 'web_anon', :'anon', :'jwt_cookie'" ;;
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
    printf '  (%s) %-38s whoami %s as %-9s %s %s\n' "$c" "${LABEL[$c]}" "$code" "$role" "$HTTP_PATH" "$code2" >&2
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
        printf '  round %s (%s) %-38s %9.0f req/s%s\n' "$3" "$c" "${LABEL[$c]}" "$rps" \
            "$([ "${non2xx:-0}${errors:-0}" = 00 ] || echo "  non-2xx ${non2xx:-0}, socket errors ${errors:-0}")" >&2
    fi
}

log "Warm-up: ${WARMUP_SECONDS} s of load on each instance"
for c in "${CONFIGS[@]}"; do run_wrk "$c" "$WARMUP_SECONDS" 0; done

n=${#CONFIGS[@]}
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
echo "PostgREST 12.0.2 on 127.0.0.1, GET $HTTP_PATH, wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${WRK_SECONDS}s, db-pool $DB_POOL,"
echo "$REPS_HTTP interleaved rounds; requests/s = median of the rounds; every response was 2xx unless shown."
echo
psql_q -P footer=off <<SQL
CREATE TEMP TABLE labels (config text, label text);
INSERT INTO labels VALUES ${labels_sql%, };
CREATE TEMP VIEW med AS
SELECT config, percentile_cont(0.5) WITHIN GROUP (ORDER BY rps) AS rps, min(rps) AS lo, max(rps) AS hi,
       sum(non2xx) AS non2xx, sum(errors) AS errors
FROM bench_rest.runs GROUP BY config;

SELECT m.config AS cfg, l.label AS configuration, round(m.rps) AS "req/s", round(m.lo) AS "min", round(m.hi) AS "max",
       round((m.rps / a.rps)::numeric, 3) AS "/ (a)", round((m.rps / e.rps)::numeric, 3) AS "/ (e)",
       m.non2xx AS "non-2xx", m.errors AS "sock err"
FROM med m JOIN labels l USING (config), med a, med e
WHERE a.config = 'a' AND e.config = 'e'
ORDER BY m.config;

CREATE TEMP VIEW r AS
SELECT max(rps) FILTER (WHERE config = 'b') AS b, max(rps) FILTER (WHERE config = 'c') AS c,
       max(rps) FILTER (WHERE config = 'd') AS d, max(rps) FILTER (WHERE config = 'e') AS e,
       max(rps) FILTER (WHERE config = 'g') AS g, sum(non2xx + errors) AS bad
FROM med;
CREATE TEMP VIEW paired AS
WITH per_round AS (
    SELECT rep, max(rps) FILTER (WHERE config = 'b') AS b, max(rps) FILTER (WHERE config = 'c') AS c,
           max(rps) FILTER (WHERE config = 'd') AS d, max(rps) FILTER (WHERE config = 'e') AS e,
           max(rps) FILTER (WHERE config = 'g') AS g
    FROM bench_rest.runs GROUP BY rep)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY c / e) AS ce, percentile_cont(0.5) WITHIN GROUP (ORDER BY c / b) AS cb,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY c / d) AS cd, percentile_cont(0.5) WITHIN GROUP (ORDER BY c / g) AS cg,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY g / e) AS ge
FROM per_round;

\echo 'Goals for pg_auth verifying a JWT cookie (c). ratio = of the medians above (what is judged);'
\echo 'paired = median over the rounds of the ratio within one round (less sensitive to drift).'
SELECT goal, round(ratio::numeric, 4) AS ratio, '>= ' || target AS target,
       CASE WHEN bad > 0 THEN 'INVALID (non-2xx)' WHEN ratio >= target THEN 'MET' ELSE 'MISSED' END AS result,
       round(pr::numeric, 4) AS paired
FROM r, paired, LATERAL (VALUES ('(c) >= 0.97 x (e)  no-op pre-request', c / e, 0.97, ce),
                                ('(c) >= (b)         PostgREST verifying', c / b, 1.0, cb),
                                ('(c) >= 1.4 x (d)   plpgsql + pgcrypto', c / d, 1.4, cd)) AS x(goal, ratio, target, pr);

\echo 'Diagnostic (no goal): the cookie alone, and pg_auth against a no-op pre-request sent the same cookie.'
SELECT what, round(ratio::numeric, 3) AS ratio, round(pr::numeric, 3) AS paired
FROM r, paired, LATERAL (VALUES ('(g) / (e)  no-op: JWT cookie sent / none', g / e, ge),
                                ('(c) / (g)  pg_auth / no-op, both sent the JWT cookie', c / g, cg)) AS x(what, ratio, pr);

\echo 'Every round (req/s):'
SELECT config AS cfg, string_agg(round(rps)::text, '  ' ORDER BY rep) AS "rounds 1..n" FROM bench_rest.runs
GROUP BY config ORDER BY config;

\echo 'Database side only (bench_rest.replay: PostgREST''s statements replayed in the server, no HTTP),'
\echo 'median µs per request over the rounds; "+ vs (e)" is what the authentication adds to a no-op pre-request.'
WITH m AS (SELECT config, percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS us FROM bench_rest.replays GROUP BY config)
SELECT m.config AS cfg, l.label AS configuration, round(m.us::numeric, 1) AS "µs/request",
       round((m.us - a.us)::numeric, 1) AS "+ vs (a)", round((m.us - e.us)::numeric, 1) AS "+ vs (e)"
FROM m JOIN labels l USING (config), m a, m e
WHERE a.config = 'a' AND e.config = 'e'
ORDER BY m.config;
WITH m AS (SELECT config, percentile_cont(0.5) WITHIN GROUP (ORDER BY us) AS us FROM bench_rest.replays GROUP BY config)
SELECT round((c.us - e.us)::numeric, 1) AS "pg_auth (c) - (e) µs", round((d.us - e.us)::numeric, 1) AS "plpgsql (d) - (e) µs",
       round(((d.us - e.us) / nullif(greatest(c.us - e.us, 0), 0))::numeric, 1) || 'x' AS "auth work: plpgsql / pg_auth"
FROM m c, m d, m e WHERE c.config = 'c' AND d.config = 'd' AND e.config = 'e';
SQL
echo "(b)'s database side is only PostgREST setting the verified role and claims: its JWT work is in PostgREST."
echo "PostgREST part: $(( $(date +%s) - started )) s"
