"""On a logical-replication subscriber, what arrives by replication reaches every backend at once:
a revoked jti, a key removed from the ring, a disabled user. The apply worker fires row triggers
only (statement triggers never), with session_replication_role = replica; pg_auth's invalidating
triggers are row triggers enabled ALWAYS (found by the live attack on 0.3.0).

A cluster of its own (logical, port PG_AUTH_LOGICAL_PORT, default 5495, wal_level = logical)
under the run directory, created by scripts/lib.sh's start_cluster and stopped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import time

import psycopg
import pytest

from conftest import PG_BIN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.environ.get("PG_AUTH_RUN_DIR", "/var/tmp/pg_auth")
PORT = int(os.environ.get("PG_AUTH_LOGICAL_PORT", "5495"))
DATA = os.path.join(RUN_DIR, "logical", "data")


def dsn(db):
    return f"host=127.0.0.1 port={PORT} user=postgres dbname={db} connect_timeout=5"


def pg_ctl(*args):
    return subprocess.run(["sudo", "-u", "postgres", str(PG_BIN / "pg_ctl"), "-D", DATA, *args],
                          capture_output=True, text=True, timeout=120)


def one(c, sql, params=()):
    return c.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def pub_sub():
    start = ["bash", "-c", f"source {ROOT}/scripts/lib.sh && start_cluster logical {PORT}"]
    subprocess.run(start, check=True, capture_output=True, text=True, timeout=120)
    with psycopg.connect(dsn("postgres"), autocommit=True) as c:
        logical = one(c, "SHOW wal_level") == "logical"
        if not logical:
            c.execute("ALTER SYSTEM SET wal_level = logical")
    if not logical:
        assert pg_ctl("-w", "stop", "-m", "fast").returncode == 0
        subprocess.run(start, check=True, capture_output=True, text=True, timeout=120)
    with psycopg.connect(dsn("postgres"), autocommit=True) as c:
        for db in ("lr_sub", "lr_pub"):
            c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'lr_slot'")
        for db in ("lr_pub", "lr_sub"):
            c.execute(f"CREATE DATABASE {db}")
        c.execute("DO $$ BEGIN CREATE ROLE lr_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        c.execute("GRANT lr_user TO postgres")
    pub, sub = psycopg.connect(dsn("lr_pub"), autocommit=True), psycopg.connect(dsn("lr_sub"), autocommit=True)
    for c in (pub, sub):
        c.execute("CREATE EXTENSION pg_auth")
    pub.execute("CREATE PUBLICATION lr_pub FOR TABLE auth.keys, auth.revoked_tokens, auth.users, auth.sessions")
    # On one cluster the slot is made first: CREATE SUBSCRIPTION would wait for itself otherwise.
    pub.execute("SELECT pg_create_logical_replication_slot('lr_slot', 'pgoutput')")
    sub.execute(f"""CREATE SUBSCRIPTION lr_sub CONNECTION 'host=127.0.0.1 port={PORT} user=postgres dbname=lr_pub'
                    PUBLICATION lr_pub WITH (create_slot = false, slot_name = 'lr_slot')""")
    yield pub, sub
    sub.execute("ALTER SUBSCRIPTION lr_sub DISABLE")
    sub.execute("ALTER SUBSCRIPTION lr_sub SET (slot_name = NONE)")
    sub.execute("DROP SUBSCRIPTION lr_sub")
    # The walsender of the dropped subscription may still hold the slot for a moment.
    deadline = time.monotonic() + 30
    while True:
        pub.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE slot_name = 'lr_slot' AND active")
        try:
            pub.execute("SELECT pg_drop_replication_slot('lr_slot')")
            break
        except psycopg.errors.ObjectInUse:
            assert time.monotonic() < deadline, "the replication slot stayed in use"
            time.sleep(0.2)
    pub.close()
    sub.close()
    pg_ctl("-m", "fast", "stop")


def replicated(sub, sql, params=(), expect=True):
    """Waits until `sql` on the subscriber answers `expect` (the apply worker caught up)."""
    deadline = time.monotonic() + 30
    while one(sub, sql, params) != expect:
        assert time.monotonic() < deadline, f"not replicated: {sql}"
        time.sleep(0.1)


def authenticate(c, token):
    with c.transaction():
        claims = one(c, "SELECT auth.authenticate(%s)", (token,))
        c.execute("SET LOCAL ROLE NONE")
    return claims


def test_a_revocation_arriving_by_replication_reaches_a_backend_that_kept_the_list(pub_sub):
    pub, sub = pub_sub
    pub.execute("SELECT auth.generate_key('HS256', 'lr-1')")
    replicated(sub, "SELECT count(*) = 1 FROM auth.keys WHERE kid = 'lr-1'")
    jwt = one(pub, """SELECT auth.sign_jwt('{"role": "lr_user", "sub": "s", "jti": "lr-jti"}'::jsonb)""")
    backend = psycopg.connect(dsn("lr_sub"), autocommit=True)
    try:
        assert authenticate(backend, jwt)["jti"] == "lr-jti"  # the list and the ring are kept now
        pub.execute("SELECT auth.revoke_token('lr-jti')")
        replicated(sub, "SELECT count(*) = 1 FROM auth.revoked_tokens WHERE jti = 'lr-jti'")
        with pytest.raises(psycopg.Error) as refused:
            authenticate(backend, jwt)
        assert refused.value.sqlstate == "PA014"
    finally:
        backend.close()


def test_a_key_removed_by_replication_is_refused_by_a_backend_that_kept_the_ring(pub_sub):
    pub, sub = pub_sub
    pub.execute("SELECT auth.generate_key('HS256', 'lr-2')")
    replicated(sub, "SELECT count(*) = 1 FROM auth.keys WHERE kid = 'lr-2'")
    jwt = one(pub, """SELECT auth.sign_jwt('{"role": "lr_user", "sub": "s2"}'::jsonb)""")
    backend = psycopg.connect(dsn("lr_sub"), autocommit=True)
    try:
        assert authenticate(backend, jwt)["sub"] == "s2"
        pub.execute("DELETE FROM auth.keys WHERE kid = 'lr-2'")
        replicated(sub, "SELECT count(*) = 0 FROM auth.keys WHERE kid = 'lr-2'")
        with pytest.raises(psycopg.Error) as refused:
            authenticate(backend, jwt)
        assert refused.value.sqlstate == "PA010"
    finally:
        backend.close()


def test_a_user_disabled_by_replication_loses_the_replicated_session(pub_sub):
    pub, sub = pub_sub
    user = one(pub, "SELECT auth.register('lr@example.com', 'a replicated password', role => 'lr_user')")
    token = one(pub, "SELECT auth.login('lr@example.com', 'a replicated password') ->> 'token'")
    replicated(sub, "SELECT count(*) = 1 FROM auth.sessions WHERE user_id = %s AND user_role = 'lr_user'", (user,))
    backend = psycopg.connect(dsn("lr_sub"), autocommit=True)
    try:
        assert authenticate(backend, token)["sub"] == str(user)
        pub.execute("UPDATE auth.users SET disabled = true WHERE id = %s", (user,))
        replicated(sub, "SELECT disabled FROM auth.users WHERE id = %s", (user,))
        with pytest.raises(psycopg.Error) as refused:
            authenticate(backend, token)
        assert refused.value.sqlstate == "PA017"
    finally:
        backend.close()
