#!/usr/bin/env bash
# Sets up everything a bare Debian 12 machine lacks, then runs the demo: a PostgreSQL cluster
# with pg_auth on 127.0.0.1:5433, the example API (examples/quickstart) served by PostgREST on
# http://127.0.0.1:3000 with db-pre-request = auth.authenticate, and a psql session.
# Safe to run again: the demo database is recreated, PostgREST restarted.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_packages
install_extension
start_cluster demo 5433
create_db pg_auth_demo
"$PG_BIN/psql" -q -d pg_auth_demo -v ON_ERROR_STOP=1 -f examples/quickstart/schema.sql >/dev/null

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

token=$("$PG_BIN/psql" -qAt -d pg_auth_demo -c \
    "SELECT auth.sign_jwt(jsonb_build_object('sub','alice','role','web_user','exp', extract(epoch FROM now() + interval '1 day')::int))")
cat <<TXT

pg_auth demo is up.
  PostgreSQL:  psql -h 127.0.0.1 -p 5433 -U postgres pg_auth_demo
  PostgREST:   http://127.0.0.1:3000   (log: $RUN_DIR/demo/postgrest.log)

Try:
  curl -s http://127.0.0.1:3000/notes                                  # anonymous: public notes only
  curl -s http://127.0.0.1:3000/rpc/whoami -H "Cookie: access_token=$token"
  curl -s http://127.0.0.1:3000/notes -H "x-access-token: $token"       # alice sees her own notes too
  curl -si http://127.0.0.1:3000/notes -H "Cookie: access_token=forged.token.here"   # 401, cookie cleared

In psql:
  SELECT auth.sign_jwt('{"sub":"bob","role":"web_user"}'::jsonb);          -- sign with the key ring
  SELECT auth.verify_jwt(auth.sign_jwt('{"n":1}', repeat('s', 32)), repeat('s', 32));
  SELECT auth.jwks();                                                      -- PostgREST's jwt-secret for Bearer mode
TXT

echo; echo "Sign/verify round trip from psql:"
"$PG_BIN/psql" -d pg_auth_demo -c "SELECT auth.verify_jwt(auth.sign_jwt('{\"sub\":\"demo\",\"role\":\"web_user\"}'::jsonb)) AS verified_claims"
echo "Anonymous GET /notes:"; curl -s http://127.0.0.1:3000/notes; echo
echo "GET /notes as alice:"; curl -s http://127.0.0.1:3000/notes -H "Cookie: access_token=$token"; echo

if [ -t 0 ] && [ -t 1 ]; then
    exec "$PG_BIN/psql" -d pg_auth_demo
fi
