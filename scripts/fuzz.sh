#!/usr/bin/env bash
# Fuzzes pg_auth's parsers of untrusted bytes (fuzz/, cargo-fuzz and libFuzzer): installs
# cargo-fuzz if missing, writes the seed corpora (fuzz/seed.py, from tests/test_hostile.py),
# builds every target and runs them one after the other, one process each.
#   scripts/fuzz.sh                     100000 executions per target (a few minutes)
#   scripts/fuzz.sh 10000000            the full run whose figures README.md "Fuzzing" lists
#   scripts/fuzz.sh 100000 token keys   only the targets named
# FUZZ_MAX_TIME caps each target's time in seconds (default 900): a target slower than
# runs/FUZZ_MAX_TIME stops there and the table shows how many executions it reached.
# Corpora grow in fuzz/corpus/<target>, crashes land in fuzz/artifacts/<target>, logs in
# fuzz/logs/<target>.log (all ignored by git). Exits non-zero if any target crashed.
source "$(dirname "$0")/lib.sh"
cd "$ROOT/fuzz"

RUNS=${1:-100000}
[ $# -gt 0 ] && shift
MAX_TIME=${FUZZ_MAX_TIME:-900}
CARGO_FUZZ_VERSION=0.13.2

ensure_rust
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "Installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked
fi
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
ensure_python_env

log "Seeding fuzz/corpus from tests/test_hostile.py and the unit tests"
"$ROOT/.venv/bin/python" "$ROOT/fuzz/seed.py" "$ROOT/fuzz/corpus"

# No sanitizer: the code under test is safe Rust (ASan would only slow it down); debug
# assertions on, so integer overflow panics like any failed assertion.
FUZZ_FLAGS=(--sanitizer none --debug-assertions)
log "Building the fuzz targets"
cargo +nightly fuzz build "${FUZZ_FLAGS[@]}"

if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi

# Input size bounds: tokens up to past the 16 KiB limit, key text up to an RSA private PEM,
# error texts as long as a header may sensibly quote.
max_len() {
    case "$1" in
        token | verify_hmac | ring) echo 17000 ;;
        response) echo 1024 ;;
        *) echo 4096 ;;
    esac
}

mkdir -p logs
summary=()
crashed=0
for t in "${TARGETS[@]}"; do
    log "Fuzzing $t: $RUNS runs or $MAX_TIME s"
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    set +e
    cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "corpus/$t" -- \
        -runs="$RUNS" -max_total_time="$MAX_TIME" -max_len="$(max_len "$t")" \
        -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"logs/$t.log" 2>&1
    status=$?
    set -e
    execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "logs/$t.log" | tail -n1)
    rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "logs/$t.log" | tail -n1)
    secs=$(awk '/^Done [0-9]+ runs in/ {print $5}' "logs/$t.log" | tail -n1)
    crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
    [ "$crashes" -gt 0 ] && crashed=1 && tail -n 40 "logs/$t.log" >&2
    summary+=("| $t | ${execs:-?} | ${secs:-?} | ${rate:-?} | $crashes |")
done

printf '\n| target | executions | seconds | exec/s | crashes |\n|---|---:|---:|---:|---:|\n'
printf '%s\n' "${summary[@]}"
exit $crashed
