"""The todo example app (examples/todo/schema.sql) end to end, through the real PostgREST 12
binary with `db-pre-request = auth.authenticate`, the way scripts/demo.sh runs it.

Every user is a requests.Session that keeps the HttpOnly session cookie like a browser. Each test
registers its own users (unique emails), so tests do not depend on each other's order. The test
database gets a cheap argon2 cost and `pg_auth.login_max_failures = 3` before PostgREST starts,
so its pooled authenticator sessions see both.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from datetime import datetime

import psycopg
import pytest
import requests

from todo_harness import ARGON2_PREFIX, COOKIE, PGHOST, PGPORT, TodoApp, describe, session_cookie, token_hash

DBNAME = "pg_auth_todo_e2e"
MAX_FAILURES = 3
PASSWORD = "correct horse battery"
SESSION_LIFETIME = 7 * 24 * 3600  # pg_auth.session_lifetime default
TOKEN_RE = re.compile(r"^pas_[A-Za-z0-9_-]{43}$")  # session prefix, 256 random bits in base64url
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
JSON_PREFER = {"Prefer": "return=representation"}


@pytest.fixture(scope="module")
def app():
    todo = TodoApp(DBNAME, settings={"pg_auth.login_max_failures": MAX_FAILURES}).start()
    yield todo
    todo.stop()


@pytest.fixture
def clients(app):
    made = []

    def make():
        c = app.client()
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def new_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


# PostgREST 11 (scripts/test.sh runs this suite against it too, PG_AUTH_PGRST_ERRORS=off) cannot
# read a PGRST error: a failure raised by pg_auth carries its status through a PT<status> SQLSTATE,
# pg_auth's code in `details`, and no WWW-Authenticate or clearing cookie (README).
POSTGREST_11 = os.environ.get("PG_AUTH_PGRST_ERRORS") == "off"


def code(body: dict) -> str:
    """The error's code as pg_auth or PostgreSQL named it, whichever PostgREST answered."""
    raw = body["code"]
    if POSTGREST_11 and raw.startswith("PT"):
        return (body.get("details") or "").removeprefix("pg_auth error ")
    return raw


def assert_cookie_cleared_from_the_jar(client) -> None:
    """After a refused session the clearing cookie removed it from the jar (PostgREST 12); with
    PostgREST 11 no cookie can be sent with an error, so the jar still holds the dead one."""
    if POSTGREST_11:
        assert client.token is not None
    else:
        assert client.token is None, "the clearing cookie must remove the cookie from the jar"


def expect(resp, status: int, app: TodoApp):
    assert resp.status_code == status, f"expected HTTP {status}\n{describe(resp, app)}"
    if resp.content and "json" in resp.headers.get("Content-Type", ""):
        return resp.json()
    return None


def assert_session_cookie(resp, app: TodoApp) -> str:
    """The response sets a fresh session cookie: returns its value."""
    found = session_cookie(resp)
    assert found is not None, f"no {COOKIE} cookie set\n{describe(resp, app)}"
    value, attrs = found
    assert TOKEN_RE.match(value), describe(resp, app)
    assert attrs.get("httponly") is True, describe(resp, app)
    assert attrs.get("samesite") == "Lax", describe(resp, app)
    assert attrs.get("path") == "/", describe(resp, app)
    assert 0 < int(attrs["max-age"]) <= SESSION_LIFETIME, describe(resp, app)
    # The app turns pg_auth.cookie_secure off for its authenticator (local development over http).
    assert "secure" not in attrs, describe(resp, app)
    return value


def assert_clearing_cookie(resp, app: TodoApp) -> None:
    found = session_cookie(resp)
    assert found is not None, f"no clearing {COOKIE} cookie\n{describe(resp, app)}"
    value, attrs = found
    assert value == "" and attrs.get("max-age") == "0", describe(resp, app)
    assert attrs.get("httponly") is True and attrs.get("path") == "/", describe(resp, app)


def assert_refused_session(resp, app: TodoApp) -> None:
    """auth.authenticate's answer to a dead session cookie: 401 PA017, WWW-Authenticate with
    error="invalid_token", and the cookie cleared. Never a silent fallback to anonymous."""
    body = expect(resp, 401, app)
    assert code(body) == "PA017", describe(resp, app)
    assert body["message"] == "session is unknown, expired or revoked; sign in again", describe(resp, app)
    if POSTGREST_11:
        assert session_cookie(resp) is None, describe(resp, app)
        return
    www = resp.headers.get("WWW-Authenticate", "")
    assert www.startswith("Bearer ") and 'error="invalid_token"' in www, describe(resp, app)
    assert_clearing_cookie(resp, app)


def signed_up(app, clients, tag="user", name=None):
    """A client signed in through /rpc/register; returns (client, user_id, email)."""
    c = clients()
    email = new_email(tag)
    body = expect(c.register(email, name or tag.title(), PASSWORD), 200, app)
    assert c.token, "the session cookie was not kept"
    return c, body["user_id"], email


# ---- register / login -------------------------------------------------------------------------------

def test_register_returns_session_cookie(app, clients):
    c = clients()
    email = new_email("reg")
    resp = c.register(email, "Reggie", PASSWORD)
    body = expect(resp, 200, app)
    token = assert_session_cookie(resp, app)
    assert set(body) == {"user_id", "expires_at"}, "the token must stay in the cookie, not the body"
    assert UUID_RE.match(body["user_id"])
    assert token not in resp.text
    assert c.token == token, "requests did not keep the session cookie"
    # The database holds the user (cheap argon2 cost of the test database) and only the token's hash.
    assert app.one("SELECT password_hash FROM auth.users WHERE id = %s", (body["user_id"],)).startswith(ARGON2_PREFIX)
    assert app.one("SELECT metadata ->> 'name' FROM auth.users WHERE id = %s", (body["user_id"],)) == "Reggie"
    assert app.one("SELECT role FROM auth.users WHERE id = %s", (body["user_id"],)) == "web_user"
    assert app.one("SELECT user_id::text FROM auth.sessions WHERE token_hash = %s", (token_hash(token),)) == body["user_id"]
    # The cookie signs the user in.
    me = expect(c.me(), 200, app)
    assert me == {"id": body["user_id"], "email": email, "name": "Reggie"}


def test_register_while_signed_in_is_refused(app, clients):
    c, _, _ = signed_up(app, clients, "twice")
    other = new_email("second")
    resp = c.register(other, "Second", PASSWORD)
    body = expect(resp, 403, app)
    assert code(body) == "APP01" and body["message"] == "already signed in; log out first"
    assert session_cookie(resp) is None
    assert app.one("SELECT count(*) FROM auth.users WHERE email = %s", (other,)) == 0


def test_register_rejects_bad_input(app, clients):
    c = clients()
    short = c.register(new_email("short"), "Shorty", "short")
    assert short.status_code == 400 and code(short.json()) == "22023", describe(short, app)
    noname = c.register(new_email("noname"), "   ", PASSWORD)
    assert noname.status_code == 400 and noname.json()["message"] == "name must not be empty", describe(noname, app)
    _, _, email = signed_up(app, clients, "dup")
    dup = c.register(email.upper(), "Dup", PASSWORD)  # emails are unique case-insensitively
    assert dup.status_code == 409 and code(dup.json()) == "23505", describe(dup, app)
    for r in (short, noname, dup):
        assert session_cookie(r) is None
    assert c.token is None


def test_login_returns_session_cookie(app, clients):
    first, user_id, email = signed_up(app, clients, "login")
    c = clients()
    resp = c.login(email.upper(), PASSWORD)  # emails match case-insensitively
    body = expect(resp, 200, app)
    token = assert_session_cookie(resp, app)
    assert set(body) == {"user_id", "expires_at"} and body["user_id"] == user_id
    assert token != first.token, "a login must start a new session"
    assert expect(c.me(), 200, app)["id"] == user_id
    assert expect(first.me(), 200, app)["id"] == user_id, "the first session must stay valid"
    assert app.one("SELECT count(*) FROM auth.sessions WHERE user_id = %s AND revoked_at IS NULL", (user_id,)) == 2


def test_login_while_signed_in_is_refused(app, clients):
    c, user_id, email = signed_up(app, clients, "again")
    resp = c.login(email, PASSWORD)
    body = expect(resp, 403, app)
    assert code(body) == "APP01" and body["message"] == "already signed in; log out first"
    assert session_cookie(resp) is None
    assert app.one("SELECT count(*) FROM auth.sessions WHERE user_id = %s", (user_id,)) == 1


def test_wrong_email_and_wrong_password_get_the_same_401(app, clients):
    _, user_id, email = signed_up(app, clients, "wrong")
    c = clients()
    wrong_password = c.login(email, PASSWORD + "!")
    wrong_email = c.login(new_email("nobody"), PASSWORD)
    for resp in (wrong_password, wrong_email):
        body = expect(resp, 401, app)
        assert body is None and resp.headers["X-Auth-Error"] == "28P01 invalid email or password", describe(resp, app)
        assert session_cookie(resp) is None
    assert wrong_password.text == wrong_email.text, "the answers must not reveal which emails exist"
    assert c.token is None
    # The failure was committed (auth.login does not raise, so PostgREST commits the count).
    assert app.one(ATTEMPTS.format("failed_logins"), (user_id,)) == 1


# ---- current_user / logout / refresh ------------------------------------------------------------------

def test_current_user_anonymous_and_signed_in(app, clients):
    anon = clients()
    for resp in (anon.me(), anon.post("/rpc/current_user")):
        body = expect(resp, 401, app)
        assert code(body) == "PA017" and body["message"] == "not signed in"
        assert session_cookie(resp) is None
    c, user_id, email = signed_up(app, clients, "me", name="Mia")
    for resp in (c.me(), c.post("/rpc/current_user")):
        assert expect(resp, 200, app) == {"id": user_id, "email": email, "name": "Mia"}


def test_logout_clears_the_cookie_and_ends_the_session(app, clients):
    c, user_id, _ = signed_up(app, clients, "bye")
    old = c.token
    resp = c.logout()
    assert expect(resp, 200, app) == {"signed_out": True}
    assert_clearing_cookie(resp, app)
    assert c.token is None, "the clearing cookie must remove the cookie from the jar"
    assert app.one("SELECT revoked_at IS NOT NULL FROM auth.sessions WHERE token_hash = %s", (token_hash(old),))
    # The old cookie (kept by a client that ignored the clearing cookie) no longer signs in.
    assert_refused_session(c.me(cookie=old), app)
    assert_refused_session(c.logout(cookie=old), app)
    # Without any cookie, logout says so too.
    again = c.logout()
    body = expect(again, 401, app)
    assert code(body) == "PA017" and body["message"] == "not signed in"


def test_refresh_rotates_the_session_cookie(app, clients):
    c, user_id, _ = signed_up(app, clients, "fresh")
    old = c.token
    sid = app.session_id_of(old)
    expires = app.one("SELECT expires_at FROM auth.sessions WHERE id = %s", (sid,))
    resp = c.refresh()
    body = expect(resp, 200, app)
    new = assert_session_cookie(resp, app)
    assert new != old and c.token == new
    assert set(body) == {"session_id", "expires_at"}, "the token must stay in the cookie"
    assert body["session_id"] == str(sid), "refresh keeps the session, only the token changes"
    assert datetime.fromisoformat(body["expires_at"]) == expires, "the absolute expiry must not move"
    assert app.one("SELECT token_hash FROM auth.sessions WHERE id = %s", (sid,)) == token_hash(new)
    assert expect(c.me(cookie=new), 200, app)["id"] == user_id
    assert expect(c.me(), 200, app)["id"] == user_id
    # The old value still signs in during the grace period (requests already in flight) but
    # never refreshes, and nothing it gets clears the cookie the refresh set.
    in_flight = c.me(cookie=old)
    assert expect(in_flight, 200, app)["id"] == user_id
    assert "Set-Cookie" not in in_flight.headers, describe(in_flight, app)
    again = c.refresh(cookie=old)
    assert code(expect(again, 401, app)) == "PA017"
    assert "Set-Cookie" not in again.headers, describe(again, app)
    # After the grace period the old value is dead.
    app.execute("UPDATE auth.sessions SET previous_valid_until = now() - interval '1 s' WHERE id = %s", (sid,))
    assert_refused_session(c.me(cookie=old), app)
    assert_refused_session(c.refresh(cookie=old), app)
    assert expect(c.me(cookie=new), 200, app)["id"] == user_id


def test_requests_in_flight_during_a_refresh_are_answered(app, clients):
    """Two tabs: one refreshes while the other's requests still carry the old cookie. Every one
    of them is answered, and none clears a cookie (which would delete the new one)."""
    c, user_id, _ = signed_up(app, clients, "twotabs")
    old = c.token
    tabs = 4
    start = threading.Barrier(tabs + 1)
    answers, refreshed = [], []

    def other_tab():
        start.wait()
        for _ in range(6):
            answers.append(c.me(cookie=old))

    def refreshing_tab():
        start.wait()
        refreshed.append(c.refresh())

    threads = [threading.Thread(target=other_tab) for _ in range(tabs)]
    threads.append(threading.Thread(target=refreshing_tab))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(refreshed[0], 200, app)
    assert c.token != old
    assert len(answers) == tabs * 6
    for resp in answers:
        assert expect(resp, 200, app)["id"] == user_id
        assert "Set-Cookie" not in resp.headers, describe(resp, app)
    assert expect(c.me(), 200, app)["id"] == user_id


def test_refresh_needs_a_session(app, clients):
    resp = clients().refresh()
    body = expect(resp, 401, app)
    assert code(body) == "PA017" and body["message"] == "not signed in"
    assert session_cookie(resp) is None


def test_get_requests_authenticate_in_read_only_transactions(app, clients):
    """PostgREST runs GET in READ ONLY transactions; auth.authenticate writes nothing, so a session
    cookie works there. GET on the volatile refresh_session proves the transaction was read-only
    (25006 → 405) and that authentication had already succeeded in it (otherwise 401)."""
    c, user_id, _ = signed_up(app, clients, "reader")
    assert expect(c.me(), 200, app)["id"] == user_id
    todo = expect(c.post("/todos", {"title": "read me"}, headers=JSON_PREFER), 201, app)[0]
    rows = expect(c.get(f"/todos?id=eq.{todo['id']}"), 200, app)
    assert [r["id"] for r in rows] == [todo["id"]]
    resp = c.get("/rpc/refresh_session")
    body = expect(resp, 405, app)
    assert code(body) == "25006", describe(resp, app)
    assert session_cookie(resp) is None


# ---- users and todos -------------------------------------------------------------------------------

def test_users_view(app, clients):
    c, user_id, _ = signed_up(app, clients, "lister", name="Lister")
    other, other_id, _ = signed_up(app, clients, "listed", name="Listed")
    rows = expect(c.get("/users"), 200, app)
    by_id = {r["id"]: r for r in rows}
    assert by_id[user_id] == {"id": user_id, "name": "Lister"}
    assert by_id[other_id] == {"id": other_id, "name": "Listed"}
    assert all(set(r) == {"id", "name"} for r in rows), "the view must expose ids and names only"
    # Anonymous: web_anon has no SELECT on api.users (42501; PostgREST answers 401 to anonymous).
    resp = clients().get("/users")
    body = expect(resp, 401, app)
    assert code(body) == "42501" and "permission denied for view users" in body["message"]


def test_todo_visibility_follows_rls(app, clients):
    alice, alice_id, _ = signed_up(app, clients, "alice")
    bob, _, _ = signed_up(app, clients, "bob")
    anon = clients()
    resp = alice.post("/todos", {"title": "buy milk"}, headers=JSON_PREFER)
    rows = expect(resp, 201, app)
    assert len(rows) == 1
    todo = rows[0]
    assert todo["user_id"] == alice_id and todo["title"] == "buy milk"
    assert todo["public"] is False and todo["done"] is False
    path = f"/todos?id=eq.{todo['id']}"

    assert expect(alice.get(path), 200, app) == [todo]
    assert expect(bob.get(path), 200, app) == [], "a private todo leaked to another user"
    assert expect(anon.get(path), 200, app) == [], "a private todo leaked to anonymous"
    # Bob can neither change nor delete it (RLS filters the row away: nothing is affected).
    assert expect(bob.patch(path, {"public": True}, headers=JSON_PREFER), 200, app) == []
    assert expect(bob.delete(path, headers=JSON_PREFER), 200, app) == []
    assert app.one("SELECT public FROM api.todos WHERE id = %s", (todo["id"],)) is False

    # The owner makes it public: now everyone reads it, still only the owner writes it.
    made_public = expect(alice.patch(path, {"public": True}, headers=JSON_PREFER), 200, app)
    assert made_public == [dict(todo, public=True)]
    assert expect(bob.get(path), 200, app) == [dict(todo, public=True)]
    assert expect(anon.get(path), 200, app) == [dict(todo, public=True)]
    assert expect(bob.patch(path, {"done": True}, headers=JSON_PREFER), 200, app) == []
    assert expect(alice.patch(path, {"done": True}, headers=JSON_PREFER), 200, app)[0]["done"] is True
    assert expect(bob.delete(path, headers=JSON_PREFER), 200, app) == []
    assert expect(alice.delete(path, headers=JSON_PREFER), 200, app)[0]["id"] == todo["id"]
    assert app.one("SELECT count(*) FROM api.todos WHERE id = %s", (todo["id"],)) == 0


def test_todo_for_another_user_or_anonymous_is_refused(app, clients):
    """RLS WITH CHECK (user_id = auth.uid()) refuses a row for someone else: SQLSTATE 42501.

    PostgREST documents 42501 as "403 if authenticated, 401 if not", and "authenticated" means a
    JWT that PostgREST itself verified (with a role). The app signs users in with a session
    cookie that only auth.authenticate (db-pre-request) understands, so PostgREST sees every
    request as unauthenticated and answers 401 with `WWW-Authenticate: Bearer`, even for a
    signed-in user. The body still tells the RLS violation apart from a dead session (PA017)."""
    alice, alice_id, _ = signed_up(app, clients, "victim")
    bob, bob_id, _ = signed_up(app, clients, "forger")
    resp = bob.post("/todos", {"title": "owned by alice?", "user_id": alice_id}, headers=JSON_PREFER)
    body = expect(resp, 401, app)
    assert code(body) == "42501", describe(resp, app)
    assert body["message"] == 'new row violates row-level security policy for table "todos"'
    assert session_cookie(resp) is None, "an RLS refusal must not clear a valid session"
    assert expect(bob.me(), 200, app)["id"] == bob_id, "bob is still signed in"

    # user_id cannot be changed afterwards either (no UPDATE privilege on that column).
    mine = expect(bob.post("/todos", {"title": "mine"}, headers=JSON_PREFER), 201, app)[0]
    resp = bob.patch(f"/todos?id=eq.{mine['id']}", {"user_id": alice_id}, headers=JSON_PREFER)
    body = expect(resp, 401, app)
    assert code(body) == "42501" and "permission denied for table todos" in body["message"]

    # Anonymous: web_anon has no INSERT privilege at all.
    resp = clients().post("/todos", {"title": "anonymous", "user_id": alice_id}, headers=JSON_PREFER)
    body = expect(resp, 401, app)
    assert code(body) == "42501" and "permission denied for table todos" in body["message"]
    assert app.one("SELECT count(*) FROM api.todos WHERE user_id = %s", (alice_id,)) == 0
    assert app.one("SELECT count(*) FROM api.todos WHERE title IN ('owned by alice?', 'anonymous')") == 0


# ---- dead sessions -------------------------------------------------------------------------------

def test_revoked_session_is_refused_and_cleared(app, clients):
    c, _, _ = signed_up(app, clients, "revoked")
    sid = app.session_id_of(c.token)
    assert app.one("SELECT auth.revoke_session(%s)", (sid,)) is True
    resp = c.me()
    assert_refused_session(resp, app)
    assert_cookie_cleared_from_the_jar(c)
    # Not a fallback to anonymous: a public read with the dead cookie is refused as well.
    c2, _, _ = signed_up(app, clients, "revoked2")
    old = c2.token
    app.one("SELECT auth.revoke_session(%s)", (app.session_id_of(old),))
    assert_refused_session(c2.get("/todos"), app)
    assert_refused_session(c2.post("/todos", {"title": "after revoke"}, cookie=old), app)
    assert_refused_session(c2.refresh(cookie=old), app)


def test_expired_session_is_refused_and_cleared(app, clients):
    c, _, _ = signed_up(app, clients, "expired")
    old = c.token
    app.execute("UPDATE auth.sessions SET expires_at = now() - interval '1 s' WHERE token_hash = %s",
                (token_hash(old),))
    assert_refused_session(c.me(), app)
    assert_cookie_cleared_from_the_jar(c)
    assert_refused_session(c.refresh(cookie=old), app)


def test_idle_expired_session_is_refused_and_cleared(app, clients):
    c, _, _ = signed_up(app, clients, "idle")
    app.execute("UPDATE auth.sessions SET idle_expires_at = now() - interval '1 s' WHERE token_hash = %s",
                (token_hash(c.token),))
    assert_refused_session(c.get("/todos"), app)
    assert_cookie_cleared_from_the_jar(c)


def test_disabled_user_loses_the_session_and_cannot_log_in(app, clients):
    c, user_id, email = signed_up(app, clients, "disabled")
    app.one("SELECT auth.disable_user(%s)", (user_id,))
    assert_refused_session(c.me(), app)
    if POSTGREST_11:
        # The dead cookie was not cleared, so it refuses every request that carries it, login too.
        assert code(expect(c.login(email, PASSWORD), 401, app)) == "PA017"
        resp = c.post("/rpc/login", {"email": email, "password": PASSWORD}, cookie="")
    else:
        resp = c.login(email, PASSWORD)
    assert (expect(resp, 401, app) is None and resp.headers["X-Auth-Error"].startswith("28P01"))
    assert session_cookie(resp) is None
    # Disabled users are hidden from the users list.
    viewer, _, _ = signed_up(app, clients, "viewer")
    assert user_id not in {r["id"] for r in expect(viewer.get("/users"), 200, app)}


# ---- throttling and imported hashes -----------------------------------------------------------------

# Login throttling state of a user, kept per email in auth.login_attempts.
ATTEMPTS = ("SELECT {} FROM auth.login_attempts a JOIN auth.users u ON a.email_key = auth_internal.email_key(u.email)"
            " WHERE u.id = %s")
ATTEMPTS_UPDATE = ("UPDATE auth.login_attempts a SET locked_until = now() - interval '1 s' FROM auth.users u"
                   " WHERE a.email_key = auth_internal.email_key(u.email) AND u.id = %s")


def test_login_throttling(app, clients):
    _, user_id, email = signed_up(app, clients, "throttled")
    c = clients()
    for i in range(MAX_FAILURES):
        resp = c.login(email, f"wrong password {i}")
        assert (expect(resp, 401, app) is None and resp.headers["X-Auth-Error"].startswith("28P01")), f"attempt {i + 1}"
    assert app.one(ATTEMPTS.format("failed_logins"), (user_id,)) == MAX_FAILURES
    assert app.one(ATTEMPTS.format("locked_until > now()"), (user_id,))
    sessions_before = app.one("SELECT count(*) FROM auth.sessions WHERE user_id = %s", (user_id,))

    # Locked: even the right password is refused, with 429 and how long to wait.
    resp = c.login(email, PASSWORD)
    body = expect(resp, 429, app)
    assert code(body) == "PA015", describe(resp, app)
    m = re.fullmatch(r"too many failed logins; try again in (\d+) seconds", body["message"])
    assert m and 0 < int(m.group(1)) <= 900, describe(resp, app)
    assert session_cookie(resp) is None and c.token is None
    assert app.one("SELECT count(*) FROM auth.sessions WHERE user_id = %s", (user_id,)) == sessions_before
    resp_locked_text = resp.text

    # An unknown email locks the same way, with the same answers: nothing tells which exist.
    ghost = new_email("ghost")
    for i in range(MAX_FAILURES):
        resp = c.login(ghost, f"wrong password {i}")
        assert (expect(resp, 401, app) is None and resp.headers["X-Auth-Error"].startswith("28P01"))
    ghost_locked = c.login(ghost, PASSWORD)
    assert ghost_locked.status_code == 429, describe(ghost_locked, app)
    assert re.sub(r"\d+ seconds", "N seconds", ghost_locked.text) == re.sub(r"\d+ seconds", "N seconds", resp_locked_text)
    # Another account is unaffected.
    _, _, other_email = signed_up(app, clients, "unaffected")
    expect(clients().login(other_email, PASSWORD), 200, app)

    # After the cool-down (simulated), the right password works and resets the count.
    app.execute(ATTEMPTS_UPDATE, (user_id,))
    resp = c.login(email, PASSWORD)
    expect(resp, 200, app)
    assert_session_cookie(resp, app)
    assert app.one(ATTEMPTS.format("count(*)"), (user_id,)) == 0


def test_settings_reach_the_authenticator(app):
    """The ALTER DATABASE / ALTER ROLE … IN DATABASE settings are what a new authenticator session
    (like PostgREST's pool) sees in the test database."""
    with psycopg.connect(f"host={PGHOST} port={PGPORT} user=authenticator dbname={DBNAME} connect_timeout=10",
                         autocommit=True) as c:
        def show(name):
            return c.execute(f"SELECT current_setting('{name}', true)").fetchone()[0]
        assert show("pg_auth.login_max_failures") == str(MAX_FAILURES)
        assert show("pg_auth.argon2_memory_kib") == "1024"
        assert show("pg_auth.argon2_iterations") == "1"
        assert show("pg_auth.cookie_secure") in ("off", "false")
        assert show("pg_auth.token_sources") == "cookie, api_key"


def test_bcrypt_hash_from_pgcrypto_logs_in_and_is_rehashed(app, clients):
    _, user_id, email = signed_up(app, clients, "bcrypt")
    app.execute("UPDATE auth.users SET password_hash = crypt(%s, gen_salt('bf', 4)) WHERE id = %s",
                ("imported secret", user_id))
    assert app.one("SELECT password_hash FROM auth.users WHERE id = %s", (user_id,)).startswith("$2a$04$")
    c = clients()
    expect(c.login(email, PASSWORD), 401, app)  # the old password is gone with the old hash
    resp = c.login(email, "imported secret")
    assert expect(resp, 200, app)["user_id"] == user_id
    assert_session_cookie(resp, app)
    assert app.one("SELECT password_hash FROM auth.users WHERE id = %s", (user_id,)).startswith(ARGON2_PREFIX)
    assert expect(c.me(), 200, app)["id"] == user_id
    # The re-hashed password keeps working.
    expect(c.logout(), 200, app)
    expect(c.login(email, "imported secret"), 200, app)


# ---- API keys ----------------------------------------------------------------------------------

def test_a_signed_in_user_makes_an_api_key_that_acts_as_them_until_revoked(app, clients):
    c, user_id, _ = signed_up(app, clients, "keys")
    made = expect(c.post("/rpc/create_api_key", {"name": "backup script", "expires_in_days": 30}), 200, app)
    key = made["key"]
    assert key.startswith("pak_") and set(made) == {"id", "key", "name", "expires_at"}, made
    script = clients()  # no cookie: only the key
    auth = {"x-api-key": key}
    expect(script.post("/todos", {"title": "made by a script"}, headers=auth), 201, app)
    titles = [t["title"] for t in expect(script.get("/todos?select=title,user_id", headers=auth), 200, app)
              if t["user_id"] == user_id]
    assert titles == ["made by a script"]
    listed = expect(c.get("/rpc/my_api_keys"), 200, app)
    assert [(k["id"], k["name"], k["active"]) for k in listed] == [(made["id"], "backup script", True)]
    assert "key" not in listed[0] and "key_hash" not in listed[0]
    # A key cannot make keys or list them: only the session can.
    refused = script.post("/rpc/create_api_key", {"name": "more"}, headers=auth)
    assert code(expect(refused, 401, app)) == "PA017", describe(refused, app)
    # Another user cannot revoke it; its owner can, and the next request is refused.
    other, _, _ = signed_up(app, clients, "keys-other")
    assert expect(other.post("/rpc/revoke_api_key", {"id": made["id"]}), 200, app) is False
    assert expect(c.post("/rpc/revoke_api_key", {"id": made["id"]}), 200, app) is True
    gone = script.get("/todos", headers=auth)
    assert code(expect(gone, 401, app)) == "PA020", describe(gone, app)
    assert session_cookie(gone) is None, "a refused key clears no cookie"


def test_a_value_in_the_api_key_header_that_is_no_key_is_refused(app, clients):
    resp = clients().get("/todos", headers={"x-api-key": "hunter2"})
    assert code(expect(resp, 401, app)) == "PA020", describe(resp, app)


# ---- the user's sessions ----------------------------------------------------------------------

def test_a_user_sees_their_devices_and_signs_the_others_out(app, clients):
    laptop, _, email = signed_up(app, clients, "devices")
    phone = clients()
    expect(phone.login(email, PASSWORD), 200, app)
    tablet = clients()
    expect(tablet.login(email, PASSWORD), 200, app)
    listed = expect(laptop.get("/rpc/my_sessions", headers={"User-Agent": "laptop-browser"}), 200, app)
    assert len(listed) == 3 and sum(s["current"] for s in listed) == 1, listed
    assert {s["user_agent"] for s in listed} >= {"python-requests/" + requests.__version__}
    # Sign the tablet out from the laptop, then every other device.
    tablet_id = next(s["id"] for s in expect(tablet.get("/rpc/my_sessions"), 200, app) if s["current"])
    assert expect(laptop.post("/rpc/end_session", {"id": tablet_id}), 200, app) is True
    assert_refused_session(tablet.get("/rpc/current_user"), app)
    assert expect(laptop.post("/rpc/end_other_sessions"), 200, app) == 1
    assert_refused_session(phone.get("/rpc/current_user"), app)
    expect(laptop.me(), 200, app)
    # Someone else's session id ends nothing; anonymous callers are not signed in.
    other, _, _ = signed_up(app, clients, "devices-other")
    other_id = expect(other.get("/rpc/my_sessions"), 200, app)[0]["id"]
    assert expect(laptop.post("/rpc/end_session", {"id": other_id}), 200, app) is False
    expect(other.me(), 200, app)
    anonymous = expect(clients().get("/rpc/my_sessions"), 401, app)
    assert code(anonymous) == "PA017"


def test_a_result_filter_cannot_roll_a_failed_sign_in_back(app, clients):
    """Live attack on 0.3.0: a filter that fails only when it meets a value (like.*\\ raises on
    any non-NULL text) made the transaction of a refused sign-in roll back, failure count
    included: unlimited guessing. A refusal now returns NULL (status and X-Auth-Error carry it):
    there is nothing to filter on, so every wrong guess is counted."""
    _, _, email = signed_up(app, clients, "filter")
    attacker = clients()
    path = "/rpc/login?pgrst_scalar->>code=like.*%5C"
    answers = [attacker.post(path, {"email": email, "password": f"guess {i}"}).status_code
               for i in range(MAX_FAILURES + 1)]
    assert answers == [401] * MAX_FAILURES + [429], answers
    app.execute("DELETE FROM auth.login_attempts")


def test_a_sign_in_through_get_is_refused_before_any_check(app, clients):
    """Live attack on 0.3.0: PostgREST runs GET /rpc/login in a read-only transaction but still
    calls the function; its first write then failed at one statement for a wrong password and at
    another for a right one, an oracle with nothing counted. auth.login now refuses a read-only
    transaction before it checks anything: the same answer either way."""
    _, _, email = signed_up(app, clients, "get")
    answers = []
    for password in ("a wrong guess", PASSWORD):
        resp = clients().get(f"/rpc/login?email={email}&password={password}",
                             headers={"Content-Type": "application/json"})
        answers.append((resp.status_code, resp.json().get("message")))
    assert answers[0] == answers[1], answers
    assert "needs a read-write transaction" in answers[0][1], answers
    assert app.one("SELECT count(*) FROM auth.login_attempts") == 0
