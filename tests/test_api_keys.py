"""API keys (sql/api_keys.sql, src/api_keys.rs): created for a role or a user, shown once and
stored hashed, recognised by their `pak_` prefix, sent in the API-key header (x-api-key), revoked
or expired from the next statement on, never written to on the request path. Through SQL and
through the real PostgREST 12.
"""

import hashlib
import time

import psycopg
import pytest

from conftest import assert_sqlstate, authenticated, connect, ensure_role, fresh_database, one
from postgrest_harness import (
    ALICE, AUTHENTICATOR, WEB_ANON, WEB_USER, E2EDatabase, PostgREST, assert_invalid_token, describe, expect,
)

DB = "pg_auth_api_keys"


@pytest.fixture(scope="module")
def db():
    fresh_database(DB, switch_to=("web_user", "web_service")).close()
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    yield conn
    conn.close()


authenticate = authenticated


def test_a_role_key_is_shown_once_stored_hashed_and_acts_as_its_role(c):
    made = one(c, """SELECT auth.create_api_key('billing job', role => 'web_service',
                                              claims => '{"tenant": "acme", "scopes": ["read"]}')""")
    key = made["key"]
    assert key.startswith("pak_") and len(key) == 47
    stored = c.execute("SELECT key_hash FROM auth.api_keys WHERE id = %s", (made["id"],)).fetchone()[0]
    assert bytes(stored) == hashlib.sha256(key.encode()).digest()
    assert one(c, "SELECT count(*) FROM auth.api_keys WHERE key_hash::text LIKE %s", (f"%{key}%",)) == 0
    claims = authenticate(c, key)
    assert claims["current_user"] == "web_service"
    assert (claims["role"], claims["key_id"], claims["key_name"]) == ("web_service", made["id"], "billing job")
    assert claims["tenant"] == "acme" and claims["scopes"] == ["read"]
    assert "sub" not in claims and "exp" not in claims
    listed = one(c, "SELECT to_jsonb(l) FROM auth.api_key_list l WHERE id = %s", (made["id"],))
    assert listed["active"] is True and "key_hash" not in listed and "key" not in listed


def test_a_user_key_acts_as_the_user_and_follows_the_user(c):
    c.execute("DELETE FROM auth.users WHERE email = 'keyuser@example.com'")
    user = one(c, "SELECT auth.register('keyuser@example.com', 'a key user password')")
    key = one(c, "SELECT auth.create_api_key('cli', user_id => %s) ->> 'key'", (user,))
    claims = authenticate(c, key)
    assert (claims["sub"], claims["email"], claims["role"], claims["current_user"]) == (
        str(user), "keyuser@example.com", "web_user", "web_user")
    assert one(c, "SELECT auth.uid() IS NULL")  # outside the transaction: nothing kept
    c.execute("UPDATE auth.users SET role = 'web_service' WHERE id = %s", (user,))
    assert authenticate(c, key)["current_user"] == "web_service"
    # Deleting the user ends the key.
    c.execute("DELETE FROM auth.users WHERE id = %s", (user,))
    assert_sqlstate(c, "PA020", "SELECT auth.authenticate(%s)", (key,))


@pytest.mark.parametrize("ending", ["disable", "reset", "change"])
def test_disabling_the_user_or_a_password_reset_or_change_ends_their_keys(c, ending):
    """A thief who held a session could have made keys with it: the owner's recovery ends them,
    and enabling the user again brings none back (live attack on 0.3.0)."""
    c.execute("DELETE FROM auth.users WHERE email = 'recover@example.com'")
    user = one(c, "SELECT auth.register('recover@example.com', 'a recovering password')")
    key = one(c, "SELECT auth.create_api_key('thief', user_id => %s) ->> 'key'", (user,))
    role_key = one(c, "SELECT auth.create_api_key('service', role => 'web_service') ->> 'key'")
    assert authenticate(c, key)["sub"] == str(user)
    if ending == "disable":
        c.execute("SELECT auth.disable_user(%s)", (user,))
        c.execute("SELECT auth.enable_user(%s)", (user,))
    elif ending == "reset":
        reset = one(c, "SELECT auth.request_password_reset('recover@example.com')")
        c.execute("SELECT auth.reset_password(%s, 'a brand new password')", (reset,))
    else:
        login = one(c, "SELECT auth.login('recover@example.com', 'a recovering password')")
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (login["token"],))
            c.execute("SET LOCAL ROLE NONE")
            assert one(c, "SELECT auth.change_password('a recovering password', 'a brand new password')")
    assert_sqlstate(c, "PA020", "SELECT auth.authenticate(%s)", (key,))
    assert authenticate(c, role_key)["key_name"] == "service"  # other keys are not touched


def test_a_dotted_role_claim_shows_the_keys_role_whatever_its_claims_say(c):
    c.execute("SET pg_auth.role_claim = 'app.role'")
    e = assert_sqlstate(c, "22023", """SELECT auth.create_api_key('smuggle', role => 'web_service',
                                                                  claims => '{"app": {"role": "bypass"}}')""")
    assert "app" in str(e)
    made = one(c, "SELECT auth.create_api_key('edited', role => 'web_service')")
    c.execute("""UPDATE auth.api_keys SET claims = '{"app": {"role": "bypass", "tenant": "t"}}' WHERE id = %s""",
              (made["id"],))
    claims = authenticate(c, made["key"])
    assert claims["app"] == {"role": "web_service", "tenant": "t"} and claims["current_user"] == "web_service"
    c.execute("RESET pg_auth.role_claim")


@pytest.mark.parametrize("claims", ['{"n": 1e400}', '{"n": 123456789012345678901234567890}',
                                    '{"deep": ' + '[' * 200 + ']' * 200 + '}'])
def test_claims_that_would_change_on_the_way_are_refused_at_creation(c, claims):
    e = assert_sqlstate(c, "22023", "SELECT auth.create_api_key('odd', role => 'web_service', claims => %s::jsonb)",
                        (claims,))
    assert "published unchanged" in str(e)
    # Written by hand anyway: a clear error, not an internal one.
    made = one(c, "SELECT auth.create_api_key('odd', role => 'web_service')")
    c.execute("UPDATE auth.api_keys SET claims = %s::jsonb WHERE id = %s", (claims, made["id"]))
    if claims.startswith('{"n": 1234'):
        assert authenticate(c, made["key"])["key_name"] == "odd"  # readable, only less precise
    else:
        e = assert_sqlstate(c, "22023", "SELECT auth.authenticate(%s)", (made["key"],))
        assert "cannot be published" in str(e)


def test_a_role_that_bypasses_row_level_security_gets_no_key(c):
    c.execute("DO $$ BEGIN CREATE ROLE web_bypass NOLOGIN BYPASSRLS; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    e = assert_sqlstate(c, "22023", "SELECT auth.create_api_key('x', role => 'web_bypass')")
    assert "bypasses row-level security" in str(e)


def test_revocation_and_expiry_count_from_the_next_statement_of_every_backend(db):
    a, b = connect(db), connect(db)
    try:
        made = one(b, "SELECT auth.create_api_key('revocable', role => 'web_service')")
        assert authenticate(a, made["key"])["key_id"] == made["id"]
        assert one(b, "SELECT auth.revoke_api_key(%s)", (made["id"],)) is True
        assert one(b, "SELECT auth.revoke_api_key(%s)", (made["id"],)) is False
        assert_sqlstate(a, "PA020", "SELECT auth.authenticate(%s)", (made["key"],))
        soon = one(b, "SELECT auth.create_api_key('short', role => 'web_service', expires_at => now() + interval '1 second')")
        claims = authenticate(a, soon["key"])
        assert abs(claims["exp"] - time.time()) < 5
        time.sleep(1.2)
        assert_sqlstate(a, "PA020", "SELECT auth.authenticate(%s)", (soon["key"],))
        assert one(b, "SELECT active FROM auth.api_key_list WHERE id = %s", (soon["id"],)) is False
    finally:
        a.close()
        b.close()


def test_keys_work_in_read_only_transactions(c):
    key = one(c, "SELECT auth.create_api_key('ro', role => 'web_service') ->> 'key'")
    with c.transaction():
        c.execute("SET TRANSACTION READ ONLY")
        assert one(c, "SELECT auth.authenticate(%s) ->> 'role'", (key,)) == "web_service"
        c.execute("SET LOCAL ROLE NONE")


@pytest.mark.parametrize("call, why", [
    ("auth.create_api_key(NULL, role => 'web_service')", "name"),
    ("auth.create_api_key('', role => 'web_service')", "name"),
    ("auth.create_api_key(repeat('n', 201), role => 'web_service')", "name"),
    ("auth.create_api_key('x')", "either a role or a user_id"),
    ("auth.create_api_key('x', role => 'web_service', user_id => gen_random_uuid())", "either a role or a user_id"),
    ("auth.create_api_key('x', role => 'no_such_role')", "does not exist, is a superuser"),
    ("auth.create_api_key('x', role => 'postgres')", "does not exist, is a superuser"),
    ("auth.create_api_key('x', user_id => gen_random_uuid())", "no such user"),
    ("auth.create_api_key('x', role => 'web_service', expires_at => now() - interval '1 s')", "past"),
    ("auth.create_api_key('x', role => 'web_service', claims => '[1]')", "JSON object"),
    ("auth.create_api_key('x', role => 'web_service', claims => NULL)", "JSON object"),
    ("""auth.create_api_key('x', role => 'web_service', claims => '{"role": "postgres", "sub": "s"}')""", "role, sub"),
])
def test_bad_arguments_are_refused_with_a_clear_error(c, call, why):
    e = assert_sqlstate(c, "22023", f"SELECT {call}")
    assert why in str(e)


def test_claims_pg_auth_sets_cannot_be_smuggled_in_by_editing_the_row(c):
    made = one(c, "SELECT auth.create_api_key('edited', role => 'web_service')")
    c.execute("""UPDATE auth.api_keys SET claims = '{"role": "postgres", "sub": "admin", "key_id": "x", "ok": 1}'
                 WHERE id = %s""", (made["id"],))
    claims = authenticate(c, made["key"])
    assert (claims["role"], claims["current_user"], claims["key_id"], claims["ok"]) == (
        "web_service", "web_service", made["id"], 1)
    assert "sub" not in claims


@pytest.mark.parametrize("key", ["pak_" + "A" * 43, "pak_" + "A" * 42, "pak_", "PAK_" + "A" * 43])
def test_unknown_and_malformed_keys_are_refused(c, key):
    expected = "PA020" if len(key) == 47 and key.startswith("pak_") else "PA001"
    assert_sqlstate(c, expected, "SELECT auth.authenticate(%s)", (key,))


def test_a_role_the_authenticator_lacks_is_refused_at_the_request(c):
    ensure_role(c, "web_ungranted")
    key = one(c, "SELECT auth.create_api_key('ungranted', role => 'web_ungranted') ->> 'key'")
    assert_sqlstate(c, "42501", "SELECT auth.authenticate(%s)", (key,))


def test_web_roles_cannot_create_list_or_read_keys(c):
    with c.transaction():
        c.execute("SET LOCAL ROLE web_user")
        for stmt in ("SELECT auth.create_api_key('x', role => 'web_user')", "SELECT * FROM auth.api_key_list",
                     "SELECT * FROM auth.api_keys", "SELECT auth.revoke_api_key(gen_random_uuid())"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with c.transaction():
                    c.execute(stmt)


# ---- through PostgREST ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rest():
    d = E2EDatabase("pg_auth_e2e_api_keys")
    d.generate_key("HS256", "api-keys")
    with PostgREST(d, AUTHENTICATOR, pool=1, name="api_keys") as p:
        yield d, p
    d.close()


def test_a_key_in_the_api_key_header_signs_requests_in(rest):
    d, api = rest
    key = d.one("SELECT auth.create_api_key('e2e', role => %s) ->> 'key'", (WEB_USER,))
    r = api.whoami(headers={"x-api-key": key})
    me = expect(r, 200, api)
    assert me["current_user"] == WEB_USER and me["jwt"]["key_name"] == "e2e", describe(r, api)
    # Revoked: 401 with WWW-Authenticate, no cookie to clear.
    d.one("SELECT auth.revoke_api_key(id) FROM auth.api_keys WHERE name = 'e2e'")
    body = assert_invalid_token(api.whoami(headers={"x-api-key": key}), api, from_cookie=False)
    assert body["code"] == "PA020"


def test_a_value_in_the_api_key_header_that_is_no_key_is_refused_not_ignored(rest):
    d, api = rest
    body = assert_invalid_token(api.whoami(headers={"x-api-key": "not-a-key"}), api, from_cookie=False)
    assert body["code"] == "PA020"
    # Not even a valid session token or JWT: only an API key belongs there (live attack on 0.3.0).
    for token in (d.user_token(), "pas_" + "A" * 43, "A" * 43):
        body = assert_invalid_token(api.whoami(headers={"x-api-key": token}), api, from_cookie=False)
        assert body["code"] == "PA020"
    # Without the header the request is anonymous as before.
    assert expect(api.whoami(), 200, api)["current_user"] == WEB_ANON


def test_a_user_key_reads_the_users_rows_under_rls(rest):
    d, api = rest
    d.admin.execute("DELETE FROM auth.users WHERE email = 'alice-key@example.com'")
    user = d.one("SELECT auth.register('alice-key@example.com', 'alice key password')")
    d.admin.execute("UPDATE auth.users SET id = %s, role = %s WHERE id = %s", (ALICE, WEB_USER, user))
    key = d.one("SELECT auth.create_api_key('alice cli', user_id => %s) ->> 'key'", (ALICE,))
    rows = expect(api.get("/items", headers={"x-api-key": key}), 200, api)
    assert {r["owner"] for r in rows} >= {ALICE}
    me = expect(api.whoami(headers={"x-api-key": key}), 200, api)
    assert me["uid"] == ALICE and me["email"] == "alice-key@example.com"


def test_the_api_key_header_name_is_a_setting(rest):
    d, api = rest
    key = d.one("SELECT auth.create_api_key('renamed', role => %s) ->> 'key'", (WEB_USER,))
    d.set_role_setting(AUTHENTICATOR, "pg_auth.api_key_header", "x-service-key")
    try:
        with PostgREST(d, AUTHENTICATOR, pool=1, name="api_keys_renamed") as other:
            assert expect(other.whoami(headers={"x-service-key": key}), 200, other)["current_user"] == WEB_USER
            assert expect(other.whoami(headers={"x-api-key": key}), 200, other)["current_user"] == WEB_ANON
    finally:
        d.admin.execute(f"ALTER ROLE {AUTHENTICATOR} IN DATABASE {d.name} RESET pg_auth.api_key_header")


def test_a_role_that_bypasses_row_level_security_later_is_refused_at_use(c):
    """Checked when the key is used too: the role may gain BYPASSRLS after the key was made, and
    a user key takes the user's role (live attack on 0.3.0)."""
    made = one(c, "SELECT auth.create_api_key('later', role => 'web_service')")
    c.execute("ALTER ROLE web_service BYPASSRLS")
    try:
        e = assert_sqlstate(c, "42501", "SELECT auth.authenticate(%s)", (made["key"],))
        assert "bypasses row-level security" in str(e)
    finally:
        c.execute("ALTER ROLE web_service NOBYPASSRLS")
    assert authenticate(c, made["key"])["key_name"] == "later"


def test_a_key_made_while_a_password_change_is_committing_does_not_survive_it(db):
    """The thief's session makes a key while the owner's password change holds the user row: the
    change ends the thief's session, and the key is refused (live attack on 0.3.0)."""
    import threading
    setup = connect(db)
    setup.execute("DELETE FROM auth.users WHERE email = 'race-key@example.com'")
    setup.execute("SELECT auth.register('race-key@example.com', 'the old password')")
    owner_token = one(setup, "SELECT auth.login('race-key@example.com', 'the old password') ->> 'token'")
    thief_token = one(setup, "SELECT auth.login('race-key@example.com', 'the old password') ->> 'token'")
    setup.close()
    owner, thief = connect(db), connect(db)
    try:
        owner.execute("BEGIN")
        owner.execute("SELECT auth.authenticate(%s)", (owner_token,))
        owner.execute("SET LOCAL ROLE NONE")
        owner.execute("SELECT auth.change_password('the old password', 'the new password')")
        result = {}

        def make_key():
            try:
                with thief.transaction():
                    thief.execute("SELECT auth.authenticate(%s)", (thief_token,))
                    thief.execute("SET LOCAL ROLE NONE")
                    uid = one(thief, "SELECT user_id FROM auth.verified_session()")
                    result["key"] = one(thief, "SELECT auth.create_api_key('planted', user_id => %s) ->> 'key'", (uid,))
            except psycopg.Error as e:
                result["error"] = e.sqlstate

        t = threading.Thread(target=make_key)
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the key should wait for the password change"
        owner.execute("COMMIT")
        t.join(10)
        assert result == {"error": "PA017"}, result
    finally:
        owner.close()
        thief.close()
