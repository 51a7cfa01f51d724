"""auth.authenticate on a streaming replica: a hot standby cannot assign transaction ids or
write, so session lookups and key-ring loads must be pure reads.

A standby of the test cluster is made with pg_basebackup, run by the postgres user on its own
port, and removed afterwards."""

import os
import shutil
import subprocess
import time

import psycopg
import pytest

from conftest import PG_BIN

PRIMARY_PORT = int(os.environ.get("PGPORT", "5499"))
STANDBY_PORT = int(os.environ.get("PG_AUTH_STANDBY_PORT", "5497"))
RUN_DIR = os.environ.get("PG_AUTH_RUN_DIR", "/var/tmp/pg_auth")
STANDBY_DIR = os.path.join(RUN_DIR, "standby")
DB = "pg_auth_replica"


def as_postgres(*cmd: str, timeout: int = 120) -> subprocess.CompletedProcess:
    prefix = [] if os.geteuid() != 0 else ["sudo", "-u", "postgres"]
    return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, timeout=timeout)


def connect(port: int, dbname: str = DB) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=True,
                           connect_timeout=5)


def stop_standby() -> None:
    if os.path.exists(os.path.join(STANDBY_DIR, "data", "PG_VERSION")):
        subprocess.run(["sudo", "-u", "postgres", f"{PG_BIN}/pg_ctl", "-D", f"{STANDBY_DIR}/data", "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
    shutil.rmtree(STANDBY_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def replica():
    with connect(PRIMARY_PORT, "postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    primary = connect(PRIMARY_PORT)
    primary.execute("CREATE EXTENSION pg_auth")
    primary.execute("DO $$ BEGIN CREATE ROLE replica_member NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    primary.execute("GRANT replica_member TO postgres")
    primary.execute("SET pg_auth.argon2_memory_kib = 64")
    primary.execute("SELECT auth.generate_key('ES256', 'replica-key')")
    primary.execute("SELECT auth.register('r@example.com', 'correct horse', role => 'replica_member')")
    login = primary.execute("SELECT auth.login('r@example.com', 'correct horse', return_jwt => true)").fetchone()[0]
    ring_jwt = primary.execute("SELECT auth.sign_jwt('{\"role\":\"replica_member\",\"sub\":\"s1\"}'::jsonb)").fetchone()[0]
    lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    # A hot standby needs at least the primary's max_connections.
    max_connections = primary.execute("SHOW max_connections").fetchone()[0]

    stop_standby()
    os.makedirs(STANDBY_DIR, exist_ok=True)
    shutil.chown(STANDBY_DIR, "postgres", "postgres")
    as_postgres(f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(PRIMARY_PORT), "-U", "postgres",
                "-D", f"{STANDBY_DIR}/data", "-R", "-X", "stream", "--checkpoint=fast")
    as_postgres(f"{PG_BIN}/pg_ctl", "-D", f"{STANDBY_DIR}/data", "-l", f"{STANDBY_DIR}/postgres.log", "-w",
                "-t", "60", "start", "-o",
                f"-p {STANDBY_PORT} -k {STANDBY_DIR} -c listen_addresses=127.0.0.1 -c max_connections={max_connections}")
    try:
        standby = connect(STANDBY_PORT)
        deadline = time.monotonic() + 30
        while standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0] is not True:
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.2)
        yield primary, standby, login, ring_jwt
        standby.close()
    finally:
        primary.close()
        stop_standby()
        with connect(PRIMARY_PORT, "postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def authenticate(conn: psycopg.Connection, token: str) -> tuple:
    with conn.transaction():
        claims = conn.execute("SELECT auth.authenticate(%s)", (token,)).fetchone()[0]
        return claims, conn.execute("SELECT current_user").fetchone()[0]


def test_the_standby_is_read_only(replica):
    _, standby, _, _ = replica
    assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True


def test_session_cookie_authenticates_on_the_standby(replica):
    _, standby, login, _ = replica
    claims, user = authenticate(standby, login["token"])
    assert user == "replica_member"
    assert claims["sid"] == login["session_id"] and claims["email"] == "r@example.com"


def test_ring_jwt_verifies_on_the_standby_with_a_cold_cache(replica):
    _, standby, _, ring_jwt = replica
    fresh = connect(STANDBY_PORT)  # a new backend: the key ring is loaded from auth.keys here
    try:
        claims, user = authenticate(fresh, ring_jwt)
        assert (claims["sub"], user) == ("s1", "replica_member")
        assert fresh.execute("SELECT auth.verify_jwt(%s) ->> 'sub'", (ring_jwt,)).fetchone()[0] == "s1"
    finally:
        fresh.close()


def test_jwt_with_sid_is_checked_against_the_replicated_session(replica):
    primary, standby, login, _ = replica
    claims, _ = authenticate(standby, login["jwt"])
    assert claims["sid"] == login["session_id"]
    primary.execute("SELECT auth.revoke_session(%s)", (login["session_id"],))
    lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.monotonic() + 30
    while standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0] is not True:
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.2)
    for token in (login["token"], login["jwt"]):
        with pytest.raises(psycopg.Error) as refused:
            authenticate(standby, token)
        assert refused.value.sqlstate == "PA017"


def test_a_revoked_jti_is_refused_on_the_standby_once_replayed(replica):
    """The standby's backends keep the revocation list in memory: the primary's write reaches
    them as an invalidation replayed with the commit."""
    primary, standby, _, _ = replica
    jwt = primary.execute("""SELECT auth.sign_jwt('{"role":"replica_member","sub":"s2","jti":"replica-jti"}'::jsonb)""").fetchone()[0]
    assert authenticate(standby, jwt)[0]["jti"] == "replica-jti"  # the standby's list is loaded now
    primary.execute("SELECT auth.revoke_token('replica-jti')")
    lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.monotonic() + 30
    while standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0] is not True:
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.2)
    with pytest.raises(psycopg.Error) as refused:
        authenticate(standby, jwt)
    assert refused.value.sqlstate == "PA014"
