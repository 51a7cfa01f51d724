"""Data safety: pg_dump/pg_restore keeps users, sessions, keys, revocations and reset tokens (and
what was valid before is valid after), and concurrent logins, refreshes and logouts on one
account neither fail, deadlock nor lose a session row.

Sessions are checked from SQL as the superuser: `auth.authenticate(token)` inside a transaction
switches to the user's role, so the users here act as `safety_member`, a NOLOGIN role
granted to the superuser (auth.authenticate only switches to roles the session user is a member
of), which may also run auth.refresh() and auth.logout() as PostgREST's web roles do through the
app's wrappers.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from todo_harness import (
    ARGON2_PREFIX, KEEP, connect, dsn, drop_database, ensure_member_role, fresh_database, run_pg_tool,
    token_hash,
)

MEMBER = "safety_member"
PASSWORD = "correct horse battery"
TABLES = {  # auth tables kept by pg_dump (pg_extension_config_dump), with their keys
    "users": "id",
    "sessions": "id",
    "keys": "kid",
    "revoked_tokens": "jti",
    "password_resets": "token_hash",
}


def prepare(dbname: str) -> psycopg.Connection:
    """A fresh database whose users act as MEMBER; returns a superuser connection. A rotated
    token dies at once here (no refresh grace period), so rotations are checked exactly; the
    grace period has its own tests in test_todo_app.py and regress/sql/sessions.sql."""
    fresh_database(dbname)
    with connect(dbname) as c:
        c.execute(f"ALTER DATABASE {dbname} SET pg_auth.refresh_grace_period = 0")
    conn = connect(dbname)
    ensure_member_role(conn, MEMBER)
    conn.execute(f"GRANT EXECUTE ON FUNCTION auth.refresh(), auth.logout() TO {MEMBER}")
    conn.execute(f"SET pg_auth.user_role = '{MEMBER}'")  # auth.register's default role
    return conn


def one(conn, query, params=()):
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query!r}"
    return row[0]


def snapshot(conn) -> dict:
    """Every row of every dumped auth table, as JSON, in key order."""
    return {
        table: one(conn, f"SELECT coalesce(json_agg(t ORDER BY t.{key}), '[]') FROM auth.{table} t")
        for table, key in TABLES.items()
    }


def authenticate(conn, token) -> dict:
    """auth.authenticate(token) in a transaction that is rolled back; returns claims, uid, sid and
    the role it switched to. Raises the psycopg error when the token is refused."""
    with conn.transaction(force_rollback=True):
        claims = one(conn, "SELECT auth.authenticate(%s)", (token,))
        return {
            "claims": claims,
            "uid": one(conn, "SELECT auth.uid()::text"),
            "sid": one(conn, "SELECT auth.session_id()::text"),
            "current_user": one(conn, "SELECT current_user::text"),
        }


def refused(conn, token) -> str:
    """The SQLSTATE auth.authenticate(token) fails with (fails the test if it succeeds)."""
    try:
        authenticate(conn, token)
    except psycopg.Error as e:
        return e.sqlstate
    raise AssertionError(f"token {token[:12]}… still authenticates")


@pytest.fixture
def databases():
    names = []

    def make(name):
        names.append(name)
        return name

    yield make
    if not KEEP:
        for name in names:
            drop_database(name)


# ---- pg_dump / pg_restore ------------------------------------------------------------------------------

def test_dump_and_restore_keep_users_sessions_and_keys(databases, tmp_path):
    src_name = databases("pg_auth_safety_src")
    dst_name = databases("pg_auth_safety_dst")
    src = prepare(src_name)
    with src:
        ann = one(src, "SELECT auth.register('ann@example.com', %s, username => 'ann', metadata => '{\"name\":\"Ann\"}')::text",
                  (PASSWORD,))
        bob = one(src, "SELECT auth.register('bob@example.com', %s)::text", (PASSWORD,))
        one(src, "SELECT auth.register('cat@example.com', %s)", (PASSWORD,))
        # Keys: an ES256 signing key and a newer HS256 one (the newest active key signs).
        one(src, "SELECT auth.generate_key('ES256', 'safety-es256', now() - interval '1 minute')")
        one(src, "SELECT auth.generate_key('HS256', 'safety-hs256')")
        # Sessions: two live for ann (one with a JWT carrying sid), one revoked for bob.
        ann1 = one(src, "SELECT auth.login('ann@example.com', %s)", (PASSWORD,))
        ann2 = one(src, "SELECT auth.login('ann@example.com', %s, return_jwt => true)", (PASSWORD,))
        bob1 = one(src, "SELECT auth.login('bob@example.com', %s)", (PASSWORD,))
        assert one(src, "SELECT auth.revoke_session(%s)", (bob1["session_id"],)) is True
        # A failed login is kept too (the throttling counters are data).
        assert one(src, "SELECT auth.login('bob@example.com', 'wrong password') IS NULL")
        # A ring-signed JWT, a revoked one, and a reset token.
        exp = int(time.time()) + 3600
        jwt = one(src, "SELECT auth.sign_jwt(%s::jsonb)",
                  (json.dumps({"sub": ann, "role": MEMBER, "exp": exp, "jti": "keep-me"}),))
        revoked_jwt = one(src, "SELECT auth.sign_jwt(%s::jsonb)",
                          (json.dumps({"sub": bob, "role": MEMBER, "exp": exp, "jti": "revoked-jti"}),))
        one(src, "SELECT auth.revoke_token('revoked-jti', now() + interval '1 hour')::text")
        reset = one(src, "SELECT auth.request_password_reset('cat@example.com')")
        before = snapshot(src)
        kid_src = one(src, "SELECT auth.sign_jwt('{\"sub\":\"probe\"}'::jsonb)").split(".")[0]
        assert authenticate(src, ann1["token"])["uid"] == ann  # sanity: valid before the dump

    assert len(before["users"]) == 3 and len(before["sessions"]) == 3 and len(before["keys"]) == 2
    assert len(before["revoked_tokens"]) == 1 and len(before["password_resets"]) == 1

    dump = tmp_path / "pg_auth.dump"
    run_pg_tool("pg_dump", "-Fc", "-f", str(dump), "-d", src_name)
    listing = run_pg_tool("pg_restore", "-l", str(dump)).stdout
    for table in TABLES:
        assert f"TABLE DATA auth {table} " in listing, f"auth.{table} is not in the dump:\n{listing}"
    # Only hashes of session and reset tokens are stored, so a dump cannot leak them.
    script = run_pg_tool("pg_restore", "-f", "-", str(dump)).stdout
    for secret in (ann1["token"], ann2["token"], bob1["token"], reset):
        assert secret not in script, "a session/reset token is in the dump in clear"
    assert token_hash(ann1["token"]).hex() in script

    # Restore into a brand-new, empty database (the dump creates the extensions itself).
    drop_database(dst_name)
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {dst_name}")
    proc = run_pg_tool("pg_restore", "--exit-on-error", "--single-transaction", "-d", dst_name, str(dump))
    assert proc.stderr.strip() == "", proc.stderr

    with connect(dst_name) as dst:
        assert snapshot(dst) == before, "restored auth tables differ from the originals"
        # Live sessions keep working: same user, same session id, the user's role.
        for login, uid in ((ann1, ann), (ann2, ann)):
            got = authenticate(dst, login["token"])
            assert got["uid"] == uid and got["sid"] == login["session_id"]
            assert got["current_user"] == MEMBER and got["claims"]["role"] == MEMBER
            assert got["claims"]["email"] == "ann@example.com"
        # The JWT carrying ann2's session id is accepted while that session lives.
        got = authenticate(dst, ann2["jwt"])
        assert got["sid"] == ann2["session_id"] and got["uid"] == ann
        # Revoked stays revoked.
        assert refused(dst, bob1["token"]) == "PA017"
        assert refused(dst, revoked_jwt) == "PA014"
        # The key ring: a JWT signed before the dump verifies, and the same key signs afterwards.
        claims = one(dst, "SELECT auth.verify_jwt(%s)", (jwt,))
        assert claims == {"sub": ann, "role": MEMBER, "exp": exp, "jti": "keep-me"}
        assert authenticate(dst, jwt)["uid"] == ann
        signed_after = one(dst, "SELECT auth.sign_jwt('{\"sub\":\"after restore\"}'::jsonb)")
        assert signed_after.split(".")[0] == kid_src, "another key signs after the restore"
        with connect(src_name) as src2:  # and the original database verifies it
            assert one(src2, "SELECT auth.verify_jwt(%s) ->> 'sub'", (signed_after,)) == "after restore"
        assert one(dst, "SELECT count(*) FROM jsonb_array_elements(auth.jwks() -> 'keys')") == 1  # ES256 only
        # Passwords, throttling counters and reset tokens came along.
        assert one(dst, "SELECT a.failed_logins FROM auth.login_attempts a JOIN auth.users u"
                        " ON a.email_key = auth_internal.email_key(u.email) WHERE u.id = %s", (bob,)) == 1
        new_login = one(dst, "SELECT auth.login('ann@example.com', %s)", (PASSWORD,))
        assert authenticate(dst, new_login["token"])["uid"] == ann
        dst.execute("SELECT auth.reset_password(%s, 'a brand new password')", (reset,))
        assert "token" in one(dst, "SELECT auth.login('cat@example.com', 'a brand new password')")
        with pytest.raises(psycopg.Error) as e:
            dst.execute("SELECT auth.reset_password(%s, 'yet another password')", (reset,))
        assert e.value.sqlstate == "PA016" and "invalid, used or expired" in str(e.value)
        # Logout in the restored database ends the restored session.
        with dst.transaction():
            one(dst, "SELECT auth.authenticate(%s)", (ann1["token"],))
            dst.execute("SELECT auth.logout()")
        assert refused(dst, ann1["token"]) == "PA017"

    with connect(src_name) as src3:  # the source is untouched by what happened in the copy
        assert snapshot(src3) == before


# ---- concurrency ----------------------------------------------------------------------------------------

THREADS = 8
ITERATIONS = 25
THREAD_DEADLINE = 90  # seconds; the whole run normally takes a few


class Worker(threading.Thread):
    """One client hammering the shared account: login → (authenticate + refresh) → maybe logout."""

    def __init__(self, index: int, dbname: str, email: str, uid: str, barrier: threading.Barrier):
        super().__init__(name=f"worker-{index}", daemon=True)
        self.index, self.dbname, self.email, self.uid, self.barrier = index, dbname, email, uid, barrier
        self.created: list[str] = []  # session ids
        self.live: dict[str, str] = {}  # session id → current token (sessions left signed in)
        self.revoked: set[str] = set()
        self.unexpected: list[str] = []
        self.expected_refusals = 0

    def fail(self, i: int, step: str, err: BaseException) -> None:
        code = getattr(err, "sqlstate", None)
        self.unexpected.append(f"{self.name} iteration {i} {step}: {type(err).__name__} {code}: {err}")

    def expect_refused(self, conn, i: int, step: str, token: str, sqlstate: str) -> None:
        try:
            with conn.transaction():
                conn.execute("SELECT auth.authenticate(%s)", (token,))
        except psycopg.Error as e:
            if e.sqlstate == sqlstate:
                self.expected_refusals += 1
                return
            self.fail(i, step, e)
            return
        self.unexpected.append(f"{self.name} iteration {i} {step}: token still accepted")

    def run(self) -> None:
        try:
            conn = connect(self.dbname)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.fail(-1, "connect", e)
            return
        try:
            self.barrier.wait(timeout=30)
            for i in range(ITERATIONS):
                self.iteration(conn, i)
        except BaseException as e:  # noqa: BLE001
            self.fail(-1, "run", e)
        finally:
            conn.close()

    def iteration(self, conn, i: int) -> None:
        step = "login"
        try:
            login = one(conn, "SELECT auth.login(%s, %s)", (self.email, PASSWORD))
            sid, token = login["session_id"], login["token"]
            self.created.append(sid)
            self.live[sid] = token

            step = "authenticate + refresh"
            with conn.transaction():
                claims = one(conn, "SELECT auth.authenticate(%s)", (token,))
                assert claims["sid"] == sid and claims["sub"] == self.uid, claims
                assert one(conn, "SELECT auth.session_id()::text") == sid
                new = one(conn, "SELECT auth.refresh()")
                assert new["session_id"] == sid, new
            self.live[sid] = new["token"]
            # SET LOCAL role and claims ended with the transaction.
            assert one(conn, "SELECT current_user::text") != 'safety_member'
            assert one(conn, "SELECT auth.session_id()") is None

            step = "old token after rotation"
            self.expect_refused(conn, i, step, token, "PA017")

            if i % 5 == 4:
                step = "cleanup_expired"
                one(conn, "SELECT auth.cleanup_expired()")
            if i % 4 == 0:
                return  # this session stays signed in

            step = "authenticate + logout"
            with conn.transaction():
                one(conn, "SELECT auth.authenticate(%s)", (new["token"],))
                conn.execute("SELECT auth.logout()")
            del self.live[sid]
            self.revoked.add(sid)

            step = "token after logout"
            self.expect_refused(conn, i, step, new["token"], "PA017")

            if i % 4 == 3:
                # Logging out again without a session: the PA017 "not signed in" error the
                # sequence implies (auth.logout raises it for PostgREST as a 401).
                step = "logout without a session"
                try:
                    with conn.transaction():
                        conn.execute("SELECT auth.logout()")
                    self.unexpected.append(f"{self.name} iteration {i}: logout without a session succeeded")
                except psycopg.Error as e:
                    if e.sqlstate == "PA017" and "not signed in" in str(e):
                        self.expected_refusals += 1
                    else:
                        self.fail(i, step, e)
        except BaseException as e:  # noqa: BLE001
            self.fail(i, step, e)


def test_concurrent_logins_refreshes_and_logouts_on_one_account(databases):
    dbname = databases("pg_auth_safety_conc")
    admin = prepare(dbname)
    email = "shared@example.com"
    uid = str(one(admin, "SELECT auth.register(%s, %s)", (email, PASSWORD)))
    hash_before = one(admin, "SELECT password_hash FROM auth.users WHERE id = %s", (uid,))
    assert hash_before.startswith(ARGON2_PREFIX)

    barrier = threading.Barrier(THREADS, timeout=30)
    workers = [Worker(n, dbname, email, uid, barrier) for n in range(THREADS)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=max(1.0, THREAD_DEADLINE - (time.monotonic() - started)))
    hung = [w.name for w in workers if w.is_alive()]
    assert not hung, f"threads still running after {THREAD_DEADLINE}s (deadlock or hang?): {hung}"

    unexpected = [msg for w in workers for msg in w.unexpected]
    assert not unexpected, "unexpected errors:\n" + "\n".join(unexpected[:20])
    assert sum(w.expected_refusals for w in workers) > 0

    created = [sid for w in workers for sid in w.created]
    live = {sid: tok for w in workers for sid, tok in w.live.items()}
    revoked = set().union(*(w.revoked for w in workers))
    assert len(created) == THREADS * ITERATIONS == len(set(created))
    assert len(live) + len(revoked) == len(created) and not (set(live) & revoked)

    rows = admin.execute(
        "SELECT id::text, token_hash, revoked_at IS NOT NULL FROM auth.sessions WHERE user_id = %s", (uid,)
    ).fetchall()
    assert len(rows) == len(created), f"{len(created)} sessions created, {len(rows)} rows present"
    assert {r[0] for r in rows} == set(created)
    assert {r[0] for r in rows if r[2]} == revoked, "revoked sessions and revoked_at disagree"
    for sid, hashed, _ in rows:
        if sid in live:
            assert bytes(hashed) == token_hash(live[sid]), f"session {sid} lost its last rotation"
    assert one(admin, "SELECT count(DISTINCT token_hash) FROM auth.sessions") == len(created)
    # Every session left signed in still authenticates with its last token; nothing else does.
    for sid, tok in live.items():
        assert authenticate(admin, tok)["sid"] == sid
    # The account is neither locked nor re-hashed by the churn.
    state = admin.execute(
        "SELECT (SELECT count(*) FROM auth.login_attempts a WHERE a.email_key = auth_internal.email_key(u.email)),"
        " password_hash FROM auth.users u WHERE id = %s", (uid,)
    ).fetchone()
    assert state == (0, hash_before)
    admin.close()


def test_racing_refreshes_of_one_session_leave_exactly_one_valid_token(databases):
    """Several clients holding the same cookie refresh it at the same moment (two browser tabs).
    All authenticate before any refresh commits; auth.refresh() serialises on the session row.
    Whatever each caller was told, afterwards exactly one token (the last committed) works, the
    session row is still one row, and nothing deadlocks."""
    dbname = databases("pg_auth_safety_race")
    admin = prepare(dbname)
    admin.execute("SELECT auth.register('race@example.com', %s)", (PASSWORD,))
    login = one(admin, "SELECT auth.login('race@example.com', %s)", (PASSWORD,))
    barrier = threading.Barrier(THREADS, timeout=30)
    results: list = [None] * THREADS

    def racer(n: int) -> None:
        try:
            with connect(dbname) as c, c.transaction():
                one(c, "SELECT auth.authenticate(%s)", (login["token"],))
                barrier.wait()
                results[n] = ("ok", one(c, "SELECT auth.refresh() ->> 'token'"))
        except psycopg.Error as e:
            results[n] = ("error", e.sqlstate, str(e))
        except BaseException as e:  # noqa: BLE001
            results[n] = ("error", type(e).__name__, str(e))

    threads = [threading.Thread(target=racer, args=(n,), daemon=True) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "racing refreshes hung"
    errors = [r for r in results if r[0] != "ok"]
    # A refresh that lost the race may only fail as "not signed in"; nothing else is acceptable.
    assert all(r[1] == "PA017" and "not signed in" in r[2] for r in errors), errors
    issued = [r[1] for r in results if r[0] == "ok"]
    assert issued, results
    working = [tok for tok in issued if _accepted(admin, tok)]
    assert len(working) == 1, f"{len(issued)} refreshes succeeded, {len(working)} of their tokens work"
    assert refused(admin, login["token"]) == "PA017"
    assert one(admin, "SELECT count(*) FROM auth.sessions") == 1
    assert bytes(one(admin, "SELECT token_hash FROM auth.sessions")) == token_hash(working[0])
    admin.close()


def _accepted(conn, token) -> bool:
    try:
        authenticate(conn, token)
        return True
    except psycopg.Error:
        return False


def test_a_rotated_token_cannot_refresh_again(databases):
    """Deterministic form of two tabs refreshing one cookie at once: A and B both authenticate with
    token T; A refreshes (T → T1) and commits; then B, still holding T, refreshes. T was rotated
    away before B's refresh ran, so B must be told "not signed in" and A's T1 must stay valid."""
    dbname = databases("pg_auth_safety_rotate")
    admin = prepare(dbname)
    admin.execute("SELECT auth.register('tabs@example.com', %s)", (PASSWORD,))
    token = one(admin, "SELECT auth.login('tabs@example.com', %s)", (PASSWORD,))["token"]
    a, b = connect(dbname), connect(dbname)
    try:
        a.execute("BEGIN")
        b.execute("BEGIN")
        one(a, "SELECT auth.authenticate(%s)", (token,))
        one(b, "SELECT auth.authenticate(%s)", (token,))
        t1 = one(a, "SELECT auth.refresh() ->> 'token'")
        a.execute("COMMIT")
        b_outcome = None
        try:
            t2 = one(b, "SELECT auth.refresh() ->> 'token'")
            b.execute("COMMIT")
            b_outcome = f"B's refresh with the rotated-away token succeeded (new token {t2[:8]}…)"
        except psycopg.Error as e:
            b.execute("ROLLBACK")
            assert e.sqlstate == "PA017" and "not signed in" in str(e), e
        t1_ok = _accepted(admin, t1)
        assert b_outcome is None and t1_ok, (
            f"{b_outcome}; A's token from the first refresh {'works' if t1_ok else 'no longer works'}")
    finally:
        a.close()
        b.close()
        admin.close()
