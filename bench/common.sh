# Sourced by bench/run.sh and by each part (jwt.sh, postgrest.sh, sessions.sh), so that every part
# can also be run on its own. bench/run.sh prepares once and exports BENCH_PREPARED=1.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../scripts/lib.sh"

BENCH="$ROOT/bench"
BENCH_PORT=5498

# ensure_packages, the release build of pg_auth (unless SKIP_INSTALL=1) and the bench cluster.
bench_prepare() {
    if [ "${BENCH_PREPARED:-0}" = 1 ]; then
        export PGHOST=127.0.0.1 PGPORT=$BENCH_PORT PGUSER=postgres
        return
    fi
    ensure_packages
    if [ "${SKIP_INSTALL:-0}" = 1 ]; then ensure_rust; else install_extension; fi
    start_cluster bench "$BENCH_PORT"
    # The sessions of the largest default size (1M: about 0.5 GB with their indexes) fit in shared
    # buffers, as on a server sized for them; 10M (opt-in) does not. BENCH_SHARED_BUFFERS changes it.
    local want=${BENCH_SHARED_BUFFERS:-1GB}
    if [ "$("$PG_BIN/psql" -XAtq -d postgres -c 'SHOW shared_buffers')" != "$want" ]; then
        log "Setting shared_buffers = $want on the bench cluster (restart)"
        "$PG_BIN/psql" -Xq -d postgres -c "ALTER SYSTEM SET shared_buffers = '$want'"
        as_root sudo -u postgres "$PG_BIN/pg_ctl" -D "$RUN_DIR/bench/data" -w restart -m fast >/dev/null
    fi
    export BENCH_PREPARED=1
}
