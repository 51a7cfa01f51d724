#!/usr/bin/env bash
# The pg_auth benchmark: one command runs every part, safe to run again (each part recreates its
# database). See bench/README.md for what is measured and how.
#
#   1. jwt.sh        auth.verify_jwt inside PostgreSQL vs a plpgsql verifier and the crate alone
#   2. postgrest.sh  each way of authenticating a PostgREST request: its database side replayed in
#                    the server (µs), then requests/s through the real PostgREST 12.0.2 (wrk)
#   3. sessions.sh   auth.authenticate (session token, sid-bound JWT, plain JWT) with 1k/100k/1M
#                    live sessions (10M opt-in); logins/s at argon2id cost
#
# SKIP_JWT=1, SKIP_POSTGREST=1, SKIP_SESSIONS=1 leave a part out (all run by default);
# SKIP_INSTALL=1 uses the installed extension. Each part's own knobs are listed at its top.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

started=$(date +%s)
bench_prepare

failed=()
part() { # NAME SKIP_VAR SCRIPT
    if [ "${!2:-0}" = 1 ]; then
        log "Skipping the $1 part ($2=1)"
        return
    fi
    log "===== Part: $1 ($3) ====="
    # Each part runs in its own process (its own traps); a failure is reported, the next part runs.
    bash "$BENCH/$3" || failed+=("$1")
}
part "JWT verification" SKIP_JWT jwt.sh
part "PostgREST throughput" SKIP_POSTGREST postgrest.sh
part "sessions and logins" SKIP_SESSIONS sessions.sh

echo
echo "Total time: $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED parts: ${failed[*]}" >&2
    exit 1
fi
