#!/usr/bin/env bash
# Sets up everything a bare Debian 12 machine lacks, then runs the demo: a PostgreSQL cluster
# with pg_auth on 127.0.0.1:5433, the todo app (examples/todo) served by PostgREST on
# http://127.0.0.1:3000 with db-pre-request = auth.authenticate, and a psql session.
# Safe to run again: the demo database is recreated, PostgREST restarted.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages
install_extension
start_cluster demo 5433
# pg_auth preloaded: attempt limits no rollback can undo, and the JWKS worker (README). The
# restart also loads a library just installed.
"$PG_BIN/psql" -q -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_auth'"
as_root sudo -u postgres "$PG_BIN/pg_ctl" -D "$RUN_DIR/demo/data" -w restart -m fast >/dev/null
create_db pg_auth_demo
"$PG_BIN/psql" -q -d pg_auth_demo -v ON_ERROR_STOP=1 -f examples/todo/schema.sql >/dev/null

postgrest=$(ensure_postgrest)
conf="$RUN_DIR/demo/postgrest.conf"
cat > "$conf" <<CONF
db-uri = "postgres://authenticator@127.0.0.1:5433/pg_auth_demo"
db-schemas = "api"
db-anon-role = "web_anon"
db-pre-request = "auth.authenticate"
server-host = "127.0.0.1"
server-port = 3000
CONF
if [ -f "$RUN_DIR/demo/postgrest.pid" ]; then
    kill "$(cat "$RUN_DIR/demo/postgrest.pid")" 2>/dev/null || true
    sleep 0.5
fi
nohup "$postgrest" "$conf" > "$RUN_DIR/demo/postgrest.log" 2>&1 &
echo $! > "$RUN_DIR/demo/postgrest.pid"
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:3000/ >/dev/null && break; sleep 0.2; done

cat <<TXT

pg_auth demo is up: the todo app (examples/todo) on real PostgREST.
  PostgreSQL:  psql -h 127.0.0.1 -p 5433 -U postgres pg_auth_demo
  PostgREST:   http://127.0.0.1:3000   (log: $RUN_DIR/demo/postgrest.log)

Try (a cookie jar keeps the session cookie):
  J=/tmp/pg_auth_demo.cookies; API=http://127.0.0.1:3000
  curl -si -c \$J \$API/rpc/register -H 'Content-Type: application/json' -d '{"email":"ann@example.com","name":"Ann","password":"correct horse"}'
  curl -s  -b \$J \$API/rpc/current_user
  curl -s  -b \$J \$API/todos -H 'Content-Type: application/json' -H 'Prefer: return=representation' -d '{"title":"try pg_auth"}'
  curl -s  -b \$J \$API/todos
  curl -si -b \$J -c \$J -X POST \$API/rpc/logout
  curl -si -b \$J \$API/rpc/current_user            # 401
  curl -si -c \$J \$API/rpc/login -H 'Content-Type: application/json' -d '{"email":"ann@example.com","password":"correct horse"}'
  curl -s  -b \$J \$API/rpc/create_api_key -H 'Content-Type: application/json' -d '{"name":"my script"}'   # {"key":"pak_…"}
  curl -s  -H 'x-api-key: pak_…' \$API/todos    # the script acts as Ann
  curl -s  -b \$J \$API/rpc/my_sessions         # devices; /rpc/end_other_sessions signs them out
Without a password (the app's "mail" lands in the table api_private.outbox):
  curl -s \$API/rpc/request_code -H 'Content-Type: application/json' -d '{"email":"bob@example.com"}'
  psql -h 127.0.0.1 -p 5433 -U postgres pg_auth_demo -c 'TABLE api_private.outbox'
  curl -si -c \$J \$API/rpc/verify_code -H 'Content-Type: application/json' -d '{"email":"bob@example.com","code":"<code>"}'
A second factor (scan the otpauth:// URI with an authenticator app; todos then need it):
  curl -s -b \$J -X POST \$API/rpc/enroll_totp
  curl -s -b \$J \$API/rpc/confirm_totp -H 'Content-Type: application/json' -d '{"code":"<6 digits>"}'
TXT

api=http://127.0.0.1:3000
jar=$(mktemp)
echo; echo "Register, then list the users (session cookie from the register call):"
curl -s -c "$jar" "$api/rpc/register" -H 'Content-Type: application/json' \
    -d '{"email":"demo@example.com","name":"Demo","password":"correct horse"}'; echo
curl -s -b "$jar" "$api/rpc/current_user"; echo
curl -s -b "$jar" "$api/todos" -H 'Content-Type: application/json' -H 'Prefer: return=representation' -d '{"title":"try pg_auth"}'; echo
rm -f "$jar"
echo; echo "Sign/verify round trip from psql:"
"$PG_BIN/psql" -d pg_auth_demo -c "SELECT auth.generate_key('ES256', 'demo-key') AS kid" \
    -c "SELECT auth.verify_jwt(auth.sign_jwt('{\"sub\":\"demo\"}'::jsonb)) AS verified_claims"

if [ -t 0 ] && [ -t 1 ]; then
    exec "$PG_BIN/psql" -d pg_auth_demo
fi
