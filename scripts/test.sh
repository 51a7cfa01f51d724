#!/usr/bin/env bash
# Sets up everything a bare Debian 12 machine lacks and runs every test:
#   0. cargo fmt --check and cargo clippy -D warnings
#   1. cargo pgrx test   – plain-Rust unit tests of the core and in-backend #[pg_test]s
#   2. pg_regress        – SQL-level tests in regress/ against a real cluster
#   3. pytest            – interoperability (PyJWT), hostile tokens, key rotation across
#                          connections, end-to-end through the real PostgREST
# Safe to run again; it reuses what is installed and recreates the test databases.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages
ensure_pgrx
ensure_python_env

log "Formatting and lints (cargo fmt --check, cargo clippy -D warnings)"
cargo fmt --check
cargo clippy --all-targets --features "pg$PG_MAJOR pg_test" -- -D warnings

log "Unit and in-backend tests (cargo pgrx test)"
pgrx_data="$RUN_DIR/pgrx-test"
as_root mkdir -p "$pgrx_data" && as_root rm -rf "$pgrx_data/data" && as_root chown postgres "$pgrx_data"
cargo pgrx test pg$PG_MAJOR --runas postgres --pgdata "$pgrx_data/data"

# `cargo pgrx test` installed its debug build; the remaining suites test the release build.
install_extension
start_cluster test 5499
# Two-phase commit is tested (a prepared transaction must end what authenticate held).
"$PG_BIN/psql" -q -d postgres -c "ALTER SYSTEM SET max_prepared_transactions = 10"
# A new .so is only loaded by new backends; restart so no stale library lingers (and settings apply).
as_root sudo -u postgres "$PG_BIN/pg_ctl" -D "$RUN_DIR/test/data" -w restart -m fast >/dev/null

log "SQL-level tests (pg_regress, regress/)"
"$ROOT/regress/run.sh"

log "Interoperability, hostile input and end-to-end tests (pytest)"
export PG_AUTH_POSTGREST="$(ensure_postgrest)" PG_AUTH_PG_BIN="$PG_BIN"
export PG_AUTH_POSTGREST_11="$(ensure_postgrest "$POSTGREST_OLD_PKG")"
"$ROOT/.venv/bin/python" -m pytest -q "$ROOT/tests" "$@"

log "The todo app's end-to-end suite again, through PostgREST 11.2.2 (pg_auth.pgrst_errors = off)"
PG_AUTH_POSTGREST="$PG_AUTH_POSTGREST_11" PG_AUTH_PGRST_ERRORS=off \
    "$ROOT/.venv/bin/python" -m pytest -q "$ROOT/tests/test_todo_app.py"
