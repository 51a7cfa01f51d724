#!/usr/bin/env bash
# SQL-level tests: pg_regress runs regress/sql/*.sql against the test cluster (started by
# scripts/test.sh) and compares with regress/expected/*.out.
source "$(dirname "$0")/../scripts/lib.sh"
start_cluster test 5499
cd "$ROOT/regress"
"$PG_BIN/psql" -q -d postgres -c "DROP DATABASE IF EXISTS pg_auth_regress WITH (FORCE)" -c "CREATE DATABASE pg_auth_regress"
tests=$(cd sql && ls *.sql | sed 's/\.sql$//' | sort)
"$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress" \
    --use-existing --host="$PGHOST" --port="$PGPORT" --user=postgres --dbname=pg_auth_regress \
    --inputdir=. --outputdir=. --bindir="$PG_BIN" $tests
