"""Shared fixtures for the pg_auth pytest suite.

The suite runs against a live PostgreSQL 15 cluster with the release build of pg_auth installed
(scripts/test.sh starts one on 127.0.0.1:5499). PGHOST, PGPORT and PGUSER override the defaults.
A session fixture recreates the database `pg_auth_pytest` from scratch, so every run starts with
an empty key ring.
"""

import os
import subprocess
from pathlib import Path

import psycopg
import pytest


def _pg_bin() -> Path:
    """The server's programs (pg_ctl, pg_dump…): PG_AUTH_PG_BIN, set by scripts/test.sh, or
    what pg_config says."""
    if os.environ.get("PG_AUTH_PG_BIN"):
        return Path(os.environ["PG_AUTH_PG_BIN"])
    return Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())


PG_BIN = _pg_bin()
PGHOST = os.environ.get("PGHOST", "127.0.0.1")
PGPORT = os.environ.get("PGPORT", "5499")
PGUSER = os.environ.get("PGUSER", "postgres")
DBNAME = "pg_auth_pytest"


def dsn(dbname=DBNAME, user=PGUSER):
    return f"host={PGHOST} port={PGPORT} user={user} dbname={dbname} connect_timeout=10"


def connect(dbname=DBNAME):
    """A new autocommit connection (a new backend, hence a cold key-ring cache)."""
    return psycopg.connect(dsn(dbname), autocommit=True)


def one(conn, sql, params=()):
    """The single value of a single-row, single-column query."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, f"no row from {sql!r}"
    return row[0]


def assert_sqlstate(conn, expected, sql, params=()):
    """Runs `sql` and asserts it fails with SQLSTATE `expected`; returns the error.

    The whole error (message, detail, hint) is shown when the SQLSTATE differs, and a call that
    succeeds fails the assertion with the value it returned.
    """
    try:
        rows = conn.execute(sql, params).fetchall()
    except psycopg.Error as e:
        assert e.sqlstate == expected, (
            f"expected SQLSTATE {expected}, got {e.sqlstate}: {e}"
            f" (detail: {e.diag.message_detail}, hint: {e.diag.message_hint})"
        )
        return e
    raise AssertionError(f"expected SQLSTATE {expected}, but the call succeeded and returned {rows!r:.300}")


def ensure_role(conn, name):
    """CREATE ROLE name NOLOGIN unless it exists (roles are cluster-wide and survive runs)."""
    conn.execute(
        f"""DO $$ BEGIN CREATE ROLE {name} NOLOGIN;
            EXCEPTION WHEN duplicate_object THEN NULL; END $$"""
    )


def fresh_database(name, *, switch_to=(), settings=None):
    """Drops and creates database `name` with pg_auth, password hashing at a test cost (argon2id
    1 MiB, one pass) plus `settings` (pg_auth.* names without the prefix), and the roles
    `switch_to` created and granted to the connecting superuser, so auth.authenticate may switch
    to them. Returns an open autocommit connection to it."""
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
        for key, value in {"argon2_memory_kib": 1024, "argon2_iterations": 1, **(settings or {})}.items():
            admin.execute(f"ALTER DATABASE {name} SET pg_auth.{key} = {value}")
    c = connect(name)
    c.execute("CREATE EXTENSION pg_auth")
    for role in switch_to:
        ensure_role(c, role)
        c.execute(f"GRANT {role} TO CURRENT_USER")
    return c


def authenticated(conn, credential):
    """auth.authenticate(credential) in a transaction of its own; its claims, with the role it
    switched to as "current_user"."""
    with conn.transaction():
        claims = one(conn, "SELECT auth.authenticate(%s)", (credential,))
        claims["current_user"] = one(conn, "SELECT current_user")
        conn.execute("SET LOCAL ROLE NONE")
    return claims


@pytest.fixture(scope="session")
def database():
    """Drops and recreates pg_auth_pytest with the extension installed; returns its DSN."""
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DBNAME}")
    with connect() as c:
        c.execute("CREATE EXTENSION pg_auth CASCADE")
        assert one(c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_auth'")
    return dsn()


@pytest.fixture
def conn(database):
    """A fresh autocommit connection to pg_auth_pytest, as the superuser that owns auth.keys."""
    c = connect()
    yield c
    c.close()


@pytest.fixture
def new_conn(database):
    """Factory for further connections (each a separate backend); all are closed afterwards."""
    opened = []

    def make():
        c = connect()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()
