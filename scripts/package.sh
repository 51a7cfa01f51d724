#!/usr/bin/env bash
# Builds the installable archive of pg_auth for this machine's PostgreSQL major version:
#   target/pg_auth-<version>-pg<major>-<arch>.tar.gz
# It holds the library and every SQL file (this version's install script, the install scripts of
# earlier releases and the upgrade scripts) under their absolute Debian paths, so on a machine
# with the same PostgreSQL and no Rust:   sudo tar -C / -xzf pg_auth-….tar.gz
# Prints the archive's path. Safe to run twice.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_pgrx >&2
cargo pgrx package --pg-config "$PG_CONFIG" >&2
staged="$ROOT/target/release/pg_auth-pg$PG_MAJOR"
cp "$ROOT"/sql/releases/pg_auth--*.sql "$staged$("$PG_CONFIG" --sharedir)/extension/"
version=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
archive="$ROOT/target/pg_auth-$version-pg$PG_MAJOR-$(uname -m).tar.gz"
tar -C "$staged" --owner=0 --group=0 -czf "$archive" .
echo "$archive"
