"""kill -9 of the postmaster in the middle of a storm of logins, refreshes and logouts, then a
restart (crash recovery): every session whose login, refresh or logout the client saw committed
is there as it was told, and failed logins the clients saw are counted.

A cluster of its own (crash, port PG_AUTH_CRASH_PORT, default 5494) under the run directory,
created by scripts/lib.sh's start_cluster and stopped afterwards.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import PG_BIN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.environ.get("PG_AUTH_RUN_DIR", "/var/tmp/pg_auth")
PORT = int(os.environ.get("PG_AUTH_CRASH_PORT", "5494"))
DATA = os.path.join(RUN_DIR, "crash", "data")
DB = "pg_auth_crash"
PASSWORD = "a crash password"
USERS = 8
CLIENTS = 8


def dsn(db=DB):
    return f"host=127.0.0.1 port={PORT} user=postgres dbname={db} connect_timeout=5"


def lib(command):
    subprocess.run(["bash", "-c", f"source {ROOT}/scripts/lib.sh && {command}"], check=True,
                   capture_output=True, text=True, timeout=120)


def pg_ctl(*args):
    return subprocess.run(["sudo", "-u", "postgres", str(PG_BIN / "pg_ctl"), "-D", DATA, *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cluster():
    lib(f"start_cluster crash {PORT}")
    with psycopg.connect(dsn("postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
        c.execute("DO $$ BEGIN CREATE ROLE crash_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        c.execute("GRANT crash_user TO postgres")  # lets authenticate switch to it
    with psycopg.connect(dsn(), autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_auth")
        c.execute("GRANT EXECUTE ON FUNCTION auth.refresh(), auth.logout() TO crash_user")
        c.execute(f"ALTER DATABASE {DB} SET pg_auth.argon2_memory_kib = 1024")
        c.execute(f"ALTER DATABASE {DB} SET pg_auth.argon2_iterations = 1")
        c.execute(f"ALTER DATABASE {DB} SET pg_auth.refresh_grace_period = 0")
        c.execute(f"ALTER DATABASE {DB} SET pg_auth.login_max_failures = 1000")
        for i in range(USERS):
            c.execute("SELECT auth.register(%s, %s, role => 'crash_user')", (f"c{i}@example.com", PASSWORD))
    yield
    pg_ctl("-m", "immediate", "stop")


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def storm(stop: threading.Event, acked: list, lock: threading.Lock):
    """Each client logs in, refreshes, logs out, and fails logins, recording only what it saw
    committed (the call returned)."""
    def client(n):
        rnd = random.Random(n)
        while not stop.is_set():
            try:
                with psycopg.connect(dsn(), autocommit=True) as c:
                    while not stop.is_set():
                        email = f"c{rnd.randrange(USERS)}@example.com"
                        if rnd.random() < 0.2:
                            # An email that never signs in, so no success resets its count.
                            ghost = f"ghost{n}@example.com"
                            c.execute("SELECT auth.login(%s, 'wrong')", (ghost,))
                            with lock:
                                acked.append(("failed", ghost))
                            continue
                        token = c.execute("SELECT auth.login(%s, %s) ->> 'token'", (email, PASSWORD)).fetchone()[0]
                        with lock:
                            acked.append(("login", token))
                        with c.transaction():
                            c.execute("SELECT auth.authenticate(%s)", (token,))
                            new = c.execute("SELECT auth.refresh() ->> 'token'").fetchone()[0]
                        with lock:
                            acked.append(("refresh", token, new))
                        if rnd.random() < 0.5:
                            with c.transaction():
                                c.execute("SELECT auth.authenticate(%s)", (new,))
                                c.execute("SELECT auth.logout()")
                            with lock:
                                acked.append(("logout", new))
            except psycopg.Error:
                time.sleep(0.05)  # the server went away: what was in flight is unknown

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads


def test_everything_acknowledged_survives_kill_9_of_the_postmaster(cluster):
    stop, lock, acked = threading.Event(), threading.Lock(), []
    threads = storm(stop, acked, lock)
    time.sleep(3)
    with open(os.path.join(DATA, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    subprocess.run(["sudo", "kill", "-9", str(postmaster)], check=True)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    with lock:
        seen = list(acked)
    assert sum(1 for a in seen if a[0] == "login") > 10, f"the storm did too little: {len(seen)}"
    # Orphaned backends exit once they notice the postmaster is gone; then restart (recovery).
    for _ in range(100):
        if pg_ctl("-l", os.path.join(RUN_DIR, "crash", "postgres.log"), "-w", "-o",
                  f"-p {PORT} -k {os.path.dirname(DATA)} -c listen_addresses=127.0.0.1", "start").returncode == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the cluster did not restart after kill -9")

    live, dead, failures = {}, set(), {}
    for a in seen:
        if a[0] == "login":
            live[a[1]] = True
        elif a[0] == "refresh":
            live.pop(a[1], None)
            dead.add(a[1])
            live[a[2]] = True
        elif a[0] == "logout":
            live.pop(a[1], None)
            dead.add(a[1])
        elif a[0] == "failed":
            failures[a[1]] = failures.get(a[1], 0) + 1
    with psycopg.connect(dsn(), autocommit=True) as c:
        rows = {bytes(h): revoked for h, revoked in c.execute(
            "SELECT token_hash, revoked_at IS NOT NULL FROM auth.sessions").fetchall()}
        counted = {email: c.execute("SELECT coalesce((SELECT failed_logins FROM auth.login_attempts"
                                    " WHERE email_key = auth_internal.email_key(%s)), 0)", (email,)).fetchone()[0]
                   for email in failures}
    kinds = {k: sum(1 for a in seen if a[0] == k) for k in ("login", "refresh", "logout", "failed")}
    print(f"acknowledged before kill -9: {kinds}; sessions after recovery: {len(rows)}")
    # Sessions reconcile with the logins acknowledged: at most one in flight per client more.
    assert kinds["login"] <= len(rows) <= kinds["login"] + CLIENTS, (kinds, len(rows))
    lost = [t for t in live if token_hash(t) not in rows]
    assert not lost, f"{len(lost)} acknowledged sessions are gone after recovery"
    for t in dead:
        # A token refreshed away is no session's current token; a logged-out one is revoked.
        assert rows.get(token_hash(t), True), f"a replaced or ended token is still live: {t[:10]}"
    loggedout = [a[1] for a in seen if a[0] == "logout"]
    assert all(rows.get(token_hash(t)) is True for t in loggedout), "an acknowledged logout was undone"
    for email, n in failures.items():
        # Every acknowledged failure is counted; at most the one in flight at the crash more.
        assert n <= counted.get(email, 0) <= n + 1, f"{email}: {n} failed logins acknowledged, {counted.get(email)} counted"
