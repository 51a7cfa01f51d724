"""The request path's lookups (src/probe.rs, src/session_store.rs): one index probe on
auth.sessions per session request, reading the copy of the user's role, email and disabled flag
that triggers keep in the session row; the per-backend facts about tables and indexes, and what
another connection's change does to them. Immediate revocation stays as it was: a change
committed in one connection is seen by the next statement of every other.
"""

import threading

import pytest

from conftest import assert_sqlstate, authenticated, connect, fresh_database, one

DB = "pg_auth_lookup"
PASSWORD = "a lookup password"


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB, switch_to=("web_user", "web_editor")) as c:
        c.execute("SELECT auth.generate_key('HS256', 'lookup')")
    return DB


@pytest.fixture
def two(db):
    """Two connections (two backends) to the test database."""
    a, b = connect(db), connect(db)
    yield a, b
    a.close()
    b.close()


def signed_in(c, email):
    c.execute("DELETE FROM auth.users WHERE email = %s", (email,))
    user = one(c, "SELECT auth.register(%s, %s)", (email, PASSWORD))
    login = one(c, "SELECT auth.login(%s, %s, true)", (email, PASSWORD))
    return user, login["token"], login["jwt"]


claims = authenticated


def test_a_users_role_email_and_disabled_flag_reach_the_next_request_of_another_backend(two):
    a, b = two
    user, token, jwt = signed_in(b, "copy@example.com")
    first = claims(a, token)
    assert (first["role"], first["email"], first["current_user"]) == ("web_user", "copy@example.com", "web_user")
    b.execute("UPDATE auth.users SET role = 'web_editor', email = 'moved@example.com' WHERE id = %s", (user,))
    moved = claims(a, token)
    assert (moved["role"], moved["email"], moved["current_user"]) == ("web_editor", "moved@example.com", "web_editor")
    b.execute("UPDATE auth.users SET disabled = true WHERE id = %s", (user,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (token,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (jwt,))
    b.execute("UPDATE auth.users SET disabled = false WHERE id = %s", (user,))
    assert claims(a, token)["sub"] == str(user)
    assert claims(a, jwt)["sid"] == claims(a, token)["sid"]


def test_an_uncommitted_change_of_the_user_is_not_seen_and_a_rolled_back_one_never(two):
    a, b = two
    user, token, _ = signed_in(b, "pending@example.com")
    with b.transaction(force_rollback=True):
        b.execute("UPDATE auth.users SET disabled = true WHERE id = %s", (user,))
        assert claims(a, token)["sub"] == str(user)
    assert claims(a, token)["sub"] == str(user)


def test_a_login_racing_a_role_change_gets_the_committed_role(db):
    """The copy is taken with the user row locked: a login that waited for a role change gets
    the new role, never the one the change replaced."""
    changer, signer = connect(db), connect(db)
    try:
        user, _, _ = signed_in(changer, "race@example.com")
        changer.autocommit = False
        changer.execute("UPDATE auth.users SET role = 'web_editor' WHERE id = %s", (user,))
        signer.execute("SET statement_timeout = '10s'")
        result = {}
        t = threading.Thread(target=lambda: result.update(
            login=one(signer, "SELECT auth.login('race@example.com', %s)", (PASSWORD,))))
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the login should wait for the role change"
        changer.commit()
        t.join(10)
        token = result["login"]["token"]
        assert claims(signer, token)["role"] == "web_editor"
    finally:
        changer.close()
        signer.close()


def test_a_session_written_with_triggers_off_is_read_from_auth_users(two):
    """Rows written with the copy trigger disabled (a restore with --disable-triggers) carry no
    copy: the lookup reads auth.users instead, disabled flag included."""
    a, b = two
    user, token, _ = signed_in(b, "bulk@example.com")
    with b.transaction():
        b.execute("ALTER TABLE auth.sessions DISABLE TRIGGER sessions_copy_user")
        b.execute("UPDATE auth.sessions SET user_role = NULL, user_email = NULL, user_disabled = NULL WHERE user_id = %s",
                  (user,))
        b.execute("ALTER TABLE auth.sessions ENABLE ALWAYS TRIGGER sessions_copy_user")
    assert one(b, "SELECT count(*) FROM auth.sessions WHERE user_id = %s AND user_role IS NULL", (user,)) >= 1
    found = claims(a, token)
    assert (found["role"], found["email"]) == ("web_user", "bulk@example.com")
    b.execute("UPDATE auth.users SET disabled = true WHERE id = %s", (user,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (token,))


def test_changes_applied_as_a_replica_or_by_a_before_trigger_reach_the_copy(two):
    """Logical replication applies changes with session_replication_role = replica, and an
    application's BEFORE trigger may set the flag without naming it in SET: both reach the
    sessions (found by the live attack on 0.3.0)."""
    a, b = two
    user, token, _ = signed_in(b, "applied@example.com")
    with b.transaction():
        b.execute("SET LOCAL session_replication_role = replica")
        b.execute("UPDATE auth.users SET disabled = true WHERE id = %s", (user,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (token,))
    b.execute("UPDATE auth.users SET disabled = false WHERE id = %s", (user,))
    assert claims(a, token)["sub"] == str(user)
    b.execute("""CREATE FUNCTION pg_temp.ban() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN NEW.disabled := coalesce((NEW.metadata ->> 'banned')::bool, NEW.disabled); RETURN NEW; END $$""")
    b.execute("CREATE TRIGGER a_ban BEFORE UPDATE ON auth.users FOR EACH ROW EXECUTE FUNCTION pg_temp.ban()")
    try:
        b.execute("""UPDATE auth.users SET metadata = '{"banned": true}' WHERE id = %s""", (user,))
        assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (token,))
    finally:
        b.execute("DROP TRIGGER a_ban ON auth.users")
        b.execute("UPDATE auth.users SET metadata = '{}', disabled = false WHERE id = %s", (user,))


def test_a_copy_edited_by_hand_is_taken_again_from_auth_users(two):
    a, b = two
    user, token, _ = signed_in(b, "edited@example.com")
    b.execute("UPDATE auth.sessions SET user_role = 'postgres', user_disabled = false WHERE user_id = %s", (user,))
    assert claims(a, token)["role"] == "web_user"


def test_logout_revoke_and_expiry_in_one_backend_refuse_the_next_request_in_another(two):
    a, b = two
    _, token, jwt = signed_in(b, "revoke@example.com")
    assert claims(a, token)["sid"]
    sid = claims(a, jwt)["sid"]
    b.execute("UPDATE auth.sessions SET idle_expires_at = now() - interval '1 s' WHERE id = %s", (sid,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (token,))
    b.execute("UPDATE auth.sessions SET idle_expires_at = now() + interval '1 h' WHERE id = %s", (sid,))
    assert claims(a, token)["sid"] == sid
    b.execute("SELECT auth.revoke_session(%s)", (sid,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (token,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (jwt,))
    # A revoked jti, seen by the next statement of the other backend.
    _, _, jwt2 = signed_in(b, "revoke2@example.com")
    jti = claims(a, jwt2)["jti"]
    b.execute("SELECT auth.revoke_token(%s)", (jti,))
    assert_sqlstate(a, "PA014", "SELECT auth.authenticate(%s)", (jwt2,))


def test_the_lookup_follows_a_rebuilt_index_and_moved_columns_of_another_backend(two):
    """The index and column numbers a backend found are forgotten when another backend changes
    the table: a new index (new oid) and a column dropped and added again (new position; a
    stale number would read the dropped column, NULL in rows written since)."""
    a, b = two
    _, token, jwt = signed_in(b, "ddl@example.com")
    sid = claims(a, jwt)["sid"]
    assert claims(a, token)["sid"] == sid
    b.execute("ALTER TABLE auth.sessions DROP CONSTRAINT sessions_token_hash_key")
    b.execute("ALTER TABLE auth.sessions ADD CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)")
    assert claims(a, token)["sid"] == sid
    b.execute("ALTER TABLE auth.sessions DROP COLUMN previous_valid_until")
    b.execute("ALTER TABLE auth.sessions ADD COLUMN previous_valid_until timestamptz")
    assert claims(a, token)["sid"] == sid
    # A refresh in b: the replaced token signs in for the grace period, read from the moved
    # column (a stale column number would read the dropped one, NULL, and refuse it).
    with b.transaction():
        b.execute("SELECT auth.authenticate(%s)", (token,))
        b.execute("SET LOCAL ROLE NONE")
        new_token = one(b, "SELECT auth.refresh() ->> 'token'")
    assert claims(a, token)["sid"] == sid
    assert claims(a, new_token)["sid"] == sid
    b.execute("UPDATE auth.sessions SET revoked_at = now() WHERE id = %s", (sid,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (token,))
    assert_sqlstate(a, "PA017", "SELECT auth.authenticate(%s)", (jwt,))


def test_without_a_unique_index_on_the_token_hash_the_answer_is_a_storage_error(two):
    a, b = two
    _, token, _ = signed_in(b, "noindex@example.com")
    assert claims(a, token)
    b.execute("ALTER TABLE auth.sessions DROP CONSTRAINT sessions_token_hash_key")
    try:
        e = assert_sqlstate(a, "PA019", "SELECT auth.authenticate(%s)", (token,))
        assert "unique btree index on auth.sessions(token_hash)" in str(e)
    finally:
        b.execute("ALTER TABLE auth.sessions ADD CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)")
    assert claims(a, token)


def test_the_revocation_list_each_backend_keeps_follows_every_write_of_another(two):
    """Backend a keeps the list in memory; inserts, deletes and TRUNCATE in b are seen by a's
    next statement, also when the list grows past what a backend keeps (then a probes)."""
    a, b = two
    _, _, jwt = signed_in(b, "list@example.com")
    jti = claims(a, jwt)["jti"]
    b.execute("SELECT auth.revoke_token(%s)", (jti,))
    assert_sqlstate(a, "PA014", "SELECT auth.authenticate(%s)", (jwt,))
    b.execute("DELETE FROM auth.revoked_tokens WHERE jti = %s", (jti,))
    assert claims(a, jwt)["jti"] == jti
    b.execute("SELECT auth.revoke_token(%s)", (jti,))
    assert_sqlstate(a, "PA014", "SELECT auth.authenticate(%s)", (jwt,))
    b.execute("TRUNCATE auth.revoked_tokens")
    assert claims(a, jwt)["jti"] == jti
    # Longer than a backend keeps (10,000): every check probes the index.
    b.execute("INSERT INTO auth.revoked_tokens (jti) SELECT 'filler-' || i FROM generate_series(1, 10001) i")
    assert claims(a, jwt)["jti"] == jti
    b.execute("SELECT auth.revoke_token(%s)", (jti,))
    assert_sqlstate(a, "PA014", "SELECT auth.authenticate(%s)", (jwt,))
    b.execute("DELETE FROM auth.revoked_tokens WHERE jti LIKE 'filler-%'")
    assert_sqlstate(a, "PA014", "SELECT auth.authenticate(%s)", (jwt,))
    b.execute("DELETE FROM auth.revoked_tokens WHERE jti = %s", (jti,))
    assert claims(a, jwt)["jti"] == jti


def test_a_revocation_counts_at_once_in_its_own_transaction_and_not_after_a_rollback(two):
    a, b = two
    _, _, jwt = signed_in(b, "own@example.com")
    jti = claims(a, jwt)["jti"]
    with a.transaction(force_rollback=True):
        a.execute("SELECT auth.revoke_token(%s)", (jti,))
        with pytest.raises(Exception) as e:
            with a.transaction():
                a.execute("SELECT auth.authenticate(%s)", (jwt,))
        assert getattr(e.value, "sqlstate", None) == "PA014"
        assert claims(b, jwt)["jti"] == jti  # not committed: other backends still accept it
    assert claims(a, jwt)["jti"] == jti


def test_a_revocation_in_a_database_not_yet_updated_is_seen_by_every_backend(db):
    """A 0.2.0 database served by the new library has no trigger announcing revocations: no
    backend may keep the list then (found by the live attack on 0.3.0)."""
    with connect("postgres") as admin:
        admin.execute("DROP DATABASE IF EXISTS pg_auth_lookup_old WITH (FORCE)")
        admin.execute("CREATE DATABASE pg_auth_lookup_old")
    a, b = connect("pg_auth_lookup_old"), connect("pg_auth_lookup_old")
    try:
        b.execute("CREATE EXTENSION pg_auth VERSION '0.2.0'")
        b.execute("SELECT auth.generate_key('HS256', 'old')")
        jwt = one(b, """SELECT auth.sign_jwt('{"role": "web_user", "sub": "s", "jti": "old-jti"}'::jsonb)""")
        assert claims(a, jwt)["jti"] == "old-jti"
        b.execute("SELECT auth.revoke_token('old-jti')")
        assert_sqlstate(a, "PA014", "SELECT auth.authenticate(%s)", (jwt,))
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("jti", ["1e2", "1.0", "7e0", "18446744073709551616", "1.5"])
def test_a_numeric_jti_that_is_no_plain_integer_is_refused(db, jti):
    """The revocation list is matched by text; a jti written as 1e2 would be revoked as '100'
    (what verify_jwt shows) and never match: such tokens are refused (live attack on 0.3.0)."""
    from jwtutil import make_token
    with connect(db) as c:
        secret = "numeric-jti-secret-0123456789abcdef"
        c.execute("DELETE FROM auth.keys WHERE kid = 'numeric-jti'")
        c.execute("SELECT auth.add_key(%s, 'numeric-jti', 'HS256')", (secret,))
        token = make_token({"alg": "HS256", "typ": "JWT", "kid": "numeric-jti"},
                           ('{"role": "web_user", "sub": "s", "jti": %s}' % jti).encode(), key=secret.encode())
        e = assert_sqlstate(c, "PA009", "SELECT auth.authenticate(%s)", (token,))
        assert "jti" in str(e)
        c.execute("DELETE FROM auth.keys WHERE kid = 'numeric-jti'")
