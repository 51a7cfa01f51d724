"""HTTP Basic (opt-in: the `basic` token source) through the real PostgREST 12, which forwards
`Authorization: Basic` in request.headers with and without jwt-secret: an API key's id and key;
with pg_auth.basic_passwords also an email (or username) and password, checked on every request,
refused while the email is locked, never counted (the request path writes nothing).
"""

import base64

import pytest

from postgrest_harness import AUTHENTICATOR, WEB_ANON, WEB_USER, E2EDatabase, PostgREST, describe, expect

PASSWORD = "a basic password"


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def rest():
    d = E2EDatabase("pg_auth_e2e_basic")
    d.set_role_setting(AUTHENTICATOR, "pg_auth.token_sources", "cookie, header, basic")
    d.set_role_setting(AUTHENTICATOR, "pg_auth.argon2_memory_kib", "1024")
    d.set_role_setting(AUTHENTICATOR, "pg_auth.argon2_iterations", "1")
    d.admin.execute("SET pg_auth.argon2_memory_kib = 1024")
    d.admin.execute("SET pg_auth.argon2_iterations = 1")
    d.admin.execute(f"SELECT auth.register('basic@example.com', %s, username => 'basic_user', role => '{WEB_USER}')",
                    (PASSWORD,))
    with PostgREST(d, AUTHENTICATOR, pool=1, name="basic") as api:
        yield d, api
    d.close()


def test_an_api_key_by_its_id(rest):
    d, api = rest
    made = d.one(f"SELECT auth.create_api_key('basic key', role => '{WEB_USER}')")
    me = expect(api.whoami(headers=basic(made["id"], made["key"])), 200, api)
    assert me["current_user"] == WEB_USER and me["jwt"]["key_id"] == made["id"]
    other = d.one(f"SELECT auth.create_api_key('other key', role => '{WEB_USER}')")
    wrong = api.whoami(headers=basic(other["id"], made["key"]))
    assert expect(wrong, 401, api)["code"] == "PA020", describe(wrong, api)
    d.one("SELECT auth.revoke_api_key(%s)", (made["id"],))
    assert expect(api.whoami(headers=basic(made["id"], made["key"])), 401, api)["code"] == "PA020"


def test_passwords_are_refused_unless_turned_on(rest):
    _, api = rest
    r = api.whoami(headers=basic("basic@example.com", PASSWORD))
    body = expect(r, 401, api)
    assert body["code"] == "28P01" and "basic_passwords is off" in body["message"], describe(r, api)


def test_with_passwords_on_an_email_or_username_and_password_sign_each_request_in(rest):
    d, api = rest
    d.set_role_setting(AUTHENTICATOR, "pg_auth.basic_passwords", "on")
    try:
        with PostgREST(d, AUTHENTICATOR, pool=1, name="basic_pw") as pw:
            for user in ("basic@example.com", "BASIC@example.com", "basic_user"):
                me = expect(pw.whoami(headers=basic(user, PASSWORD)), 200, pw)
                assert me["current_user"] == WEB_USER and me["email"] == "basic@example.com"
            for user, password in (("basic@example.com", "wrong"), ("nobody@example.com", PASSWORD), ("", "")):
                r = pw.whoami(headers=basic(user, password))
                assert expect(r, 401, pw)["code"] == "28P01", describe(r, pw)
            garbage = pw.whoami(headers={"Authorization": "Basic !!!not base64"})
            assert expect(garbage, 401, pw)["code"] == "28P01"
            # Nothing is written on the request path: the failures above were not counted ...
            assert d.one("SELECT count(*) FROM auth.login_attempts") == 0
            # ... but a lock from interactive sign-ins is honoured.
            d.admin.execute("""INSERT INTO auth.login_attempts (email_key, failed_logins, failures_since, locked_until)
                               VALUES (auth_internal.email_key('basic@example.com'), 5, now(), now() + interval '1 hour')""")
            assert pw.whoami(headers=basic("basic@example.com", PASSWORD)).status_code == 429
            d.admin.execute("DELETE FROM auth.login_attempts")
            d.admin.execute("UPDATE auth.users SET disabled = true WHERE email = 'basic@example.com'")
            assert pw.whoami(headers=basic("basic@example.com", PASSWORD)).status_code == 401
            d.admin.execute("UPDATE auth.users SET disabled = false WHERE email = 'basic@example.com'")
    finally:
        d.admin.execute(f"ALTER ROLE {AUTHENTICATOR} IN DATABASE {d.name} RESET pg_auth.basic_passwords")


def test_without_the_basic_source_the_header_is_ignored(rest):
    d, _ = rest
    made = d.one(f"SELECT auth.create_api_key('ignored', role => '{WEB_USER}')")
    d.set_role_setting(AUTHENTICATOR, "pg_auth.token_sources", "cookie, header")
    try:
        with PostgREST(d, AUTHENTICATOR, pool=1, name="basic_off") as off:
            me = expect(off.whoami(headers=basic(made["id"], made["key"])), 200, off)
            assert me["current_user"] == WEB_ANON
    finally:
        d.set_role_setting(AUTHENTICATOR, "pg_auth.token_sources", "cookie, header, basic")


def test_basic_with_passwords_holds_the_accounts_lock_and_costs_the_same_for_every_account(rest):
    """Found by the live attack on 0.3.0: a username escaped the lock of the account's email; a
    hash at another cost made known accounts answer faster than unknown ones; names no account can
    have still cost a password check."""
    d, _ = rest
    d.set_role_setting(AUTHENTICATOR, "pg_auth.basic_passwords", "on")
    try:
        with PostgREST(d, AUTHENTICATOR, pool=1, name="basic_lock") as pw:
            d.admin.execute("""INSERT INTO auth.login_attempts (email_key, failed_logins, failures_since, locked_until)
                               VALUES (auth_internal.email_key('basic@example.com'), 5, now(), now() + interval '1 hour')""")
            assert pw.whoami(headers=basic("basic_user", PASSWORD)).status_code == 429
            d.admin.execute("DELETE FROM auth.login_attempts")
            for user in ("", "basic@example.com\x00junk", "basic\tuser"):
                r = pw.whoami(headers=basic(user, PASSWORD))
                assert expect(r, 401, pw)["code"] == "28P01", describe(r, pw)
            # A hash at another cost than the configured one is refused until auth.login re-hashes it.
            d.set_role_setting(AUTHENTICATOR, "pg_auth.argon2_iterations", "2")
            with PostgREST(d, AUTHENTICATOR, pool=1, name="basic_cost") as costly:
                assert costly.whoami(headers=basic("basic@example.com", PASSWORD)).status_code == 401
                d.admin.execute("SET pg_auth.argon2_iterations = 2")
                assert d.one("SELECT auth.login('basic@example.com', %s) ? 'token'", (PASSWORD,))
                me = expect(costly.whoami(headers=basic("basic@example.com", PASSWORD)), 200, costly)
                assert me["current_user"] == WEB_USER
    finally:
        d.admin.execute("SET pg_auth.argon2_iterations = 1")
        d.one("SELECT auth.login('basic@example.com', %s) ? 'token'", (PASSWORD,))  # back to the test cost
        d.set_role_setting(AUTHENTICATOR, "pg_auth.argon2_iterations", "1")
        d.admin.execute(f"ALTER ROLE {AUTHENTICATOR} IN DATABASE {d.name} RESET pg_auth.basic_passwords")
