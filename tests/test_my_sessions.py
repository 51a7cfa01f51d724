"""Sessions a signed-in user controls (auth.my_sessions, auth.end_my_session,
auth.end_my_other_sessions), the session limit per user (pg_auth.max_sessions_per_user,
pg_auth.session_limit_mode) and the administrators' views (auth.session_list, auth.user_list).
Through SQL here; through PostgREST with the todo app in tests/test_todo_app.py.
"""

import threading

import psycopg
import pytest

from conftest import assert_sqlstate, connect, fresh_database, one

DB = "pg_auth_my_sessions"
PASSWORD = "my sessions password"


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB, switch_to=("web_user",)) as c:
        c.execute("SELECT auth.generate_key('HS256', 'my-sessions')")
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    yield conn
    conn.close()


def user(c, email):
    c.execute("DELETE FROM auth.users WHERE email = %s", (email,))
    return one(c, "SELECT auth.register(%s, %s)", (email, PASSWORD))


def login(c, email, jwt=False):
    return one(c, "SELECT auth.login(%s, %s, %s)", (email, PASSWORD, jwt))


def as_signed_in(c, token, sql, params=()):
    """Runs `sql` (as the owner) in a transaction where auth.authenticate verified `token`."""
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (token,))
        c.execute("SET LOCAL ROLE NONE")
        return c.execute(sql, params).fetchall()


def live(c, token):
    try:
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (token,))
            c.execute("SET LOCAL ROLE NONE")
        return True
    except psycopg.Error as e:
        assert e.sqlstate == "PA017", e
        return False


def test_a_user_lists_their_own_live_sessions_and_which_is_current(c):
    me, other = user(c, "list@example.com"), user(c, "list-other@example.com")
    first, second = login(c, "list@example.com"), login(c, "list@example.com")
    login(c, "list-other@example.com")
    ended = login(c, "list@example.com")
    c.execute("SELECT auth.revoke_session(%s)", (ended["session_id"],))
    rows = as_signed_in(c, second["token"], "SELECT id::text, current FROM auth.my_sessions()")
    assert rows == [(second["session_id"], True), (first["session_id"], False)]
    # A JWT carrying sid is signed in with its session too.
    jwt = login(c, "list@example.com", jwt=True)
    rows = as_signed_in(c, jwt["jwt"], "SELECT id::text FROM auth.my_sessions() WHERE current")
    assert rows == [(jwt["session_id"],)]
    assert me != other


def test_a_user_ends_one_of_their_sessions_but_not_someone_elses(c):
    user(c, "end@example.com")
    user(c, "end-other@example.com")
    mine, phone = login(c, "end@example.com"), login(c, "end@example.com")
    theirs = login(c, "end-other@example.com")
    assert as_signed_in(c, mine["token"], "SELECT auth.end_my_session(%s)", (theirs["session_id"],)) == [(False,)]
    assert live(c, theirs["token"])
    assert as_signed_in(c, mine["token"], "SELECT auth.end_my_session(%s)", (phone["session_id"],)) == [(True,)]
    assert not live(c, phone["token"]) and live(c, mine["token"])
    assert as_signed_in(c, mine["token"], "SELECT auth.end_my_session(%s)", (phone["session_id"],)) == [(False,)]


def test_a_user_ends_every_other_session(c):
    user(c, "others@example.com")
    sessions = [login(c, "others@example.com") for _ in range(3)]
    assert as_signed_in(c, sessions[1]["token"], "SELECT auth.end_my_other_sessions()") == [(2,)]
    assert [live(c, s["token"]) for s in sessions] == [False, True, False]


@pytest.mark.parametrize("call", ["SELECT * FROM auth.my_sessions()", "SELECT auth.end_my_session(gen_random_uuid())",
                                  "SELECT auth.end_my_other_sessions()"])
def test_without_a_verified_session_the_answer_is_not_signed_in(c, call):
    c.execute("SET request.jwt.claims = '{\"sid\": \"00000000-0000-4000-8000-000000000000\"}'")
    assert_sqlstate(c, "PA017", call)


def test_end_oldest_keeps_at_most_the_limit(c):
    user(c, "limit@example.com")
    c.execute("SET pg_auth.max_sessions_per_user = 2")
    sessions = [login(c, "limit@example.com") for _ in range(4)]
    assert [live(c, s["token"]) for s in sessions] == [False, False, True, True]
    c.execute("SET pg_auth.max_sessions_per_user = 1")  # single-session mode
    newest = login(c, "limit@example.com")
    assert [live(c, s["token"]) for s in sessions + [newest]] == [False, False, False, False, True]


def test_refuse_mode_refuses_the_login_and_keeps_the_sessions(c):
    uid = user(c, "refuse@example.com")
    c.execute("SET pg_auth.max_sessions_per_user = 2")
    c.execute("SET pg_auth.session_limit_mode = 'refuse'")
    sessions = [login(c, "refuse@example.com") for _ in range(2)]
    e = assert_sqlstate(c, "PA021", "SELECT auth.login('refuse@example.com', %s)", (PASSWORD,))
    assert "2 active sessions" in str(e)
    assert one(c, "SELECT count(*) FROM auth.sessions WHERE user_id = %s", (uid,)) == 2
    assert all(live(c, s["token"]) for s in sessions)
    # Ending one makes room.
    as_signed_in(c, sessions[0]["token"], "SELECT auth.end_my_session(%s)", (sessions[1]["session_id"],))
    assert login(c, "refuse@example.com")["token"]
    c.execute("SET pg_auth.session_limit_mode = 'refuse_everything'")
    e = assert_sqlstate(c, "22023", "SELECT auth.login('refuse@example.com', %s)", (PASSWORD,))
    assert "end_oldest or refuse" in str(e)


def test_concurrent_logins_never_exceed_the_limit(db):
    setup = connect(db)
    uid = user(setup, "race-limit@example.com")
    setup.close()
    errors = []

    def sign_in():
        try:
            with connect(db) as conn:
                conn.execute("SET pg_auth.max_sessions_per_user = 1")
                for _ in range(5):
                    login(conn, "race-limit@example.com")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=sign_in) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with connect(db) as conn:
        assert one(conn, """SELECT count(*) FROM auth.sessions WHERE user_id = %s AND revoked_at IS NULL
                            AND expires_at > now() AND idle_expires_at > now()""", (uid,)) == 1
        assert one(conn, "SELECT count(*) FROM auth.sessions WHERE user_id = %s", (uid,)) == 20


def test_admin_views_show_sessions_and_lock_state_without_secrets(c):
    uid = user(c, "admin-view@example.com")
    s = login(c, "admin-view@example.com")
    row = one(c, "SELECT to_jsonb(l) FROM auth.session_list l WHERE id = %s", (s["session_id"],))
    assert row["user_id"] == str(uid) and row["email"] == "admin-view@example.com" and row["active"] is True
    assert not {"token_hash", "previous_token_hash"} & set(row)
    c.execute("SET pg_auth.login_max_failures = 2")
    for _ in range(2):
        one(c, "SELECT auth.login('admin-view@example.com', 'wrong password!')")
    row = one(c, "SELECT to_jsonb(l) FROM auth.user_list l WHERE id = %s", (uid,))
    assert row["locked"] is True and row["failed_logins"] == 2 and "password_hash" not in row
    c.execute("DELETE FROM auth.login_attempts")
    with c.transaction():
        c.execute("SET LOCAL ROLE web_user")
        for view in ("auth.session_list", "auth.user_list"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with c.transaction():
                    c.execute(f"SELECT * FROM {view}")


def test_a_sign_in_with_the_old_password_during_a_change_gets_no_session(db):
    """auth.login checks the password, then waits for the user row: a password change that
    committed meanwhile makes the check stale, and the sign-in fails (live attack on 0.3.0)."""
    setup = connect(db)
    user(setup, "race-login@example.com")
    token = login(setup, "race-login@example.com")["token"]
    setup.close()
    owner, thief = connect(db), connect(db)
    try:
        owner.execute("BEGIN")
        owner.execute("SELECT auth.authenticate(%s)", (token,))
        owner.execute("SET LOCAL ROLE NONE")
        owner.execute("SELECT auth.change_password(%s, 'a changed password')", (PASSWORD,))
        result = {}
        t = threading.Thread(target=lambda: result.update(login=login(thief, "race-login@example.com")))
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the sign-in should wait for the password change"
        owner.execute("COMMIT")
        t.join(10)
        assert result["login"] is None, result
    finally:
        owner.close()
        thief.close()


def test_of_two_racing_password_changes_the_one_whose_session_the_first_ended_fails(db):
    """Owner and thief both know the old password and hold a session; the owner's change ends the
    thief's session, so the thief's change, waiting on the row lock, is refused instead of taking
    the account over (live attack on 0.3.0)."""
    setup = connect(db)
    user(setup, "race-change@example.com")
    owner_token = login(setup, "race-change@example.com")["token"]
    thief_token = login(setup, "race-change@example.com")["token"]
    setup.close()
    owner, thief = connect(db), connect(db)
    try:
        owner.execute("BEGIN")
        owner.execute("SELECT auth.authenticate(%s)", (owner_token,))
        owner.execute("SET LOCAL ROLE NONE")
        assert one(owner, "SELECT auth.change_password(%s, 'the owner password')", (PASSWORD,)) == {"changed": True}
        result = {}

        def change():
            try:
                with thief.transaction():
                    thief.execute("SELECT auth.authenticate(%s)", (thief_token,))
                    thief.execute("SET LOCAL ROLE NONE")
                    result["answer"] = one(thief, "SELECT auth.change_password(%s, 'the thief password')", (PASSWORD,))
            except psycopg.Error as e:
                result["error"] = e.sqlstate

        t = threading.Thread(target=change)
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the thief's change should wait for the owner's"
        owner.execute("COMMIT")
        t.join(10)
        assert result == {"error": "PA017"}, result
        assert login(owner, "race-change@example.com") is None
        assert one(owner, "SELECT auth.login('race-change@example.com', 'the owner password') ? 'token'")
    finally:
        owner.close()
        thief.close()
