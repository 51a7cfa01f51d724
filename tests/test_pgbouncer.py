"""auth.authenticate behind PgBouncer in transaction pooling mode: many clients share a few server
connections, so whatever one transaction set (role, request.jwt.claims, the session it holds)
must be gone when the next client's transaction gets that connection — after COMMIT, ROLLBACK, or
an error.

PgBouncer (Debian's package) runs as the postgres user on its own port, in front of the test
cluster. PG_AUTH_BOUNCER_TX sets how many transactions the storm runs (default 100000, split
between role switching and claims-only mode).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time

import psycopg
import pytest
import requests

from conftest import PGHOST, PGPORT, connect, one
from postgrest_process import PostgRESTProcess

RUN_DIR = os.environ.get("PG_AUTH_RUN_DIR", "/var/tmp/pg_auth")
BOUNCER_DIR = os.path.join(RUN_DIR, "pgbouncer")
BOUNCER_PORT = int(os.environ.get("PG_AUTH_BOUNCER_PORT", "6439"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
DB = "pg_auth_bouncer"
APP = "bouncer_app"  # the app server's login: NOINHERIT, granted the web roles
WEB_ROLES = [f"bouncer_web{i}" for i in range(4)]
CLIENTS = 50
TOTAL_TX = int(os.environ.get("PG_AUTH_BOUNCER_TX", "100000"))
USERS = 40


def as_postgres(*args):
    subprocess.run(["sudo", "-u", "postgres", *args], check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def bouncer():
    """A database with users, their JWTs and session tokens; PgBouncer in transaction mode."""
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        for role in WEB_ROLES:
            admin.execute(f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute(f"DO $$ BEGIN CREATE ROLE {APP} LOGIN NOINHERIT; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute(f"GRANT {', '.join(WEB_ROLES)} TO {APP}")
    users = []
    with connect(DB) as c:
        c.execute("CREATE EXTENSION pg_auth")
        c.execute("SET pg_auth.argon2_memory_kib = 1024")
        c.execute("SET pg_auth.argon2_iterations = 1")
        c.execute("SELECT auth.generate_key('ES256')")
        for i in range(USERS):
            role = WEB_ROLES[i % len(WEB_ROLES)]
            email = f"b{i}@example.com"
            uid = str(one(c, "SELECT auth.register(%s, 'a bouncer password', role => %s)", (email, role)))
            login = one(c, "SELECT auth.login(%s, 'a bouncer password')", (email,))
            jwt = one(c, "SELECT auth.sign_jwt(jsonb_build_object('sub', %s::text, 'role', %s::text, 'n', %s::int))",
                      (uid, role, i))
            users.append({"uid": uid, "role": role, "jwt": jwt, "session": login["token"]})
    os.makedirs(BOUNCER_DIR, exist_ok=True)
    shutil.chown(BOUNCER_DIR, "postgres", "postgres")
    ini = os.path.join(BOUNCER_DIR, "pgbouncer.ini")
    with open(os.path.join(BOUNCER_DIR, "users.txt"), "w") as f:
        f.write(f'"{APP}" ""\n"postgres" ""\n')
    with open(ini, "w") as f:
        f.write(f"""[databases]
{DB} = host={PGHOST} port={PGPORT} dbname={DB}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {BOUNCER_PORT}
unix_socket_dir =
auth_type = trust
auth_file = {BOUNCER_DIR}/users.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 400
admin_users = postgres
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {BOUNCER_DIR}/pgbouncer.log
pidfile = {BOUNCER_DIR}/pgbouncer.pid
""")
    as_postgres(PGBOUNCER, "-d", "-q", ini)
    dsn = f"host=127.0.0.1 port={BOUNCER_PORT} dbname={DB} user={APP} connect_timeout=10"
    for _ in range(50):
        try:
            psycopg.connect(dsn, autocommit=True, prepare_threshold=None).close()
            break
        except psycopg.OperationalError:
            time.sleep(0.1)
    yield dsn, users
    with open(os.path.join(BOUNCER_DIR, "pgbouncer.pid")) as f:
        subprocess.run(["kill", f.read().strip()], check=False)


def storm(dsn, users, transactions, claims_only):
    """CLIENTS threads run `transactions` transactions in all, each with a random user's JWT or
    session token; returns a list of what went wrong."""
    problems, lock = [], threading.Lock()
    per_client = transactions // CLIENTS

    def client(n):
        rnd = random.Random(n)
        # prepare_threshold=None: no server-side prepared statements (transaction pooling).
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as c:
            for i in range(per_client):
                user = rnd.choice(users)
                token = user["jwt"] if rnd.random() < 0.5 else user["session"]
                ending = rnd.choice(("commit", "rollback", "error"))
                try:
                    with c.transaction(force_rollback=ending != "commit"):
                        # Nothing of any earlier transaction on this server connection remains.
                        before = c.execute("SELECT current_user::text, auth.uid(), "
                                           "coalesce(current_setting('request.jwt.claims', true), '')").fetchone()
                        if before != (APP, None, ""):
                            raise AssertionError(f"left over from an earlier transaction: {before}")
                        c.execute("SELECT auth.authenticate(%s)", (token,))
                        now = c.execute("SELECT current_user::text, auth.uid()::text").fetchone()
                        expected = (APP if claims_only else user["role"], user["uid"])
                        if now != expected:
                            raise AssertionError(f"got {now}, expected {expected}")
                        if ending == "error":
                            c.execute("SELECT 1 / 0")
                except psycopg.errors.DivisionByZero:
                    pass
                except Exception as e:  # noqa: BLE001 - every other failure is a finding
                    with lock:
                        problems.append(f"client {n} tx {i} ({ending}): {e!r}"[:300])
                    if len(problems) > 20:
                        return

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert not any(t.is_alive() for t in threads), "the storm hung"
    return problems


@pytest.mark.parametrize("claims_only", [False, True], ids=["role-switching", "claims-only"])
def test_no_transaction_sees_another_clients_role_or_claims(bouncer, claims_only):
    dsn, users = bouncer
    with connect("postgres") as admin:
        admin.execute(f"ALTER ROLE {APP} IN DATABASE {DB} SET pg_auth.claims_only = {'on' if claims_only else 'off'}")
    # New server connections pick the setting up: make PgBouncer open fresh ones.
    with psycopg.connect(f"host=127.0.0.1 port={BOUNCER_PORT} dbname=pgbouncer user=postgres", autocommit=True) as adm:
        adm.execute(f"RECONNECT {DB}")
    share = TOTAL_TX // 2
    started = time.monotonic()
    problems = storm(dsn, users, share, claims_only)
    assert not problems, "\n".join(problems)
    # The pool really was shared: far fewer server connections than clients.
    with connect("postgres") as admin:
        servers = one(admin, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s", (DB, APP))
    assert 0 < servers <= 8, servers
    print(f"{share} transactions through PgBouncer in {time.monotonic() - started:.1f} s")


def test_postgrest_through_pgbouncer_keeps_each_request_its_own(bouncer):
    """PostgREST (db-prepared-statements off, as transaction pooling requires) behind PgBouncer:
    concurrent requests with different users' session cookies and Bearer-less JWT cookies each
    see exactly their own user and role."""
    dsn, users = bouncer
    with connect(DB) as c:
        c.execute(f"ALTER ROLE {APP} IN DATABASE {DB} SET pg_auth.claims_only = off")
        c.execute("DO $$ BEGIN CREATE ROLE bouncer_anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        c.execute(f"GRANT bouncer_anon TO {APP}")
        c.execute("CREATE SCHEMA IF NOT EXISTS api")
        c.execute("""CREATE OR REPLACE FUNCTION api.whoami() RETURNS json LANGUAGE sql STABLE AS
                     $$ SELECT json_build_object('role', current_user, 'uid', auth.uid()) $$""")
        c.execute(f"GRANT USAGE ON SCHEMA api TO bouncer_anon, {', '.join(WEB_ROLES)}")
    with psycopg.connect(f"host=127.0.0.1 port={BOUNCER_PORT} dbname=pgbouncer user=postgres", autocommit=True) as adm:
        adm.execute(f"RECONNECT {DB}")
    server = PostgRESTProcess("pg_auth_bouncer_rest_")
    server.write_config(f"postgres://{APP}@127.0.0.1:{BOUNCER_PORT}/{DB}", anon_role="bouncer_anon", pool=20,
                        acquisition_timeout=10, extra={"db-prepared-statements": False})
    problems, lock = [], threading.Lock()

    def client(n):
        rnd = random.Random(n)
        with requests.Session() as http:
            for _ in range(60):
                user = rnd.choice(users)
                token = user["session"] if rnd.random() < 0.5 else user["jwt"]
                r = http.get(f"{server.url}/rpc/whoami", headers={"Cookie": f"access_token={token}"}, timeout=10)
                got = r.json() if r.status_code == 200 else r.text
                if r.status_code != 200 or got != {"role": user["role"], "uid": user["uid"]}:
                    with lock:
                        problems.append(f"{r.status_code} {got} for {user['role']} {user['uid']}")
            anonymous = http.get(f"{server.url}/rpc/whoami", timeout=10)
            if anonymous.json() != {"role": "bouncer_anon", "uid": None}:
                with lock:
                    problems.append(f"anonymous request saw {anonymous.text}")

    with server.start():
        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not problems, "\n".join(problems[:20])
