"""Access and refresh tokens for clients without cookies (auth.refresh_token): a short-lived JWT
and a refresh token from sign-in; using the refresh token rotates it; the one replaced moments ago
(concurrent requests) still gets an access token; reusing an older one ends the whole session, as
GoTrue does. Through SQL, and through PostgREST in Bearer mode (jwt-secret from auth.jwks()).
"""

import json

import pytest

from conftest import assert_sqlstate, authenticated, connect, fresh_database, one
from postgrest_harness import AUTHENTICATOR, WEB_ANON, WEB_USER, E2EDatabase, PostgREST, describe, expect

DB = "pg_auth_refresh_tokens"
PASSWORD = "a refresh token password"


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB, switch_to=("web_user",)) as c:
        c.execute("SELECT auth.generate_key('ES256', 'refresh')")
        c.execute("SELECT auth.register('mobile@example.com', %s)", (PASSWORD,))
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    yield conn
    conn.close()


def sign_in(c):
    return one(c, "SELECT auth.login('mobile@example.com', %s, true)", (PASSWORD,))


claims_of = authenticated


def test_a_refresh_token_gives_a_new_pair_and_the_old_one_a_grace(c):
    first = sign_in(c)
    pair = one(c, "SELECT auth.refresh_token(%s)", (first["token"],))
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 900 and pair["session_id"] == first["session_id"]
    assert pair["refresh_token"].startswith("pas_") and pair["refresh_token"] != first["token"]
    assert claims_of(c, pair["access_token"])["sid"] == first["session_id"]
    # Within the grace period the replaced token gets an access token, and no refresh token.
    again = one(c, "SELECT auth.refresh_token(%s)", (first["token"],))
    assert again["refresh_token"] is None and claims_of(c, again["access_token"])["sid"] == first["session_id"]
    nxt = one(c, "SELECT auth.refresh_token(%s)", (pair["refresh_token"],))
    assert nxt["refresh_token"] and claims_of(c, nxt["access_token"])["sid"] == first["session_id"]


def test_reusing_a_rotated_refresh_token_ends_the_whole_session(c):
    c.execute("SET pg_auth.refresh_grace_period = 0")
    c.execute("SET pg_auth.audit = on")
    first = sign_in(c)
    pair = one(c, "SELECT auth.refresh_token(%s)", (first["token"],))
    stolen = one(c, "SELECT auth.refresh_token(%s)", (first["token"],))
    assert stolen is None
    assert one(c, "SELECT revoked_at IS NOT NULL FROM auth.sessions WHERE id = %s", (first["session_id"],))
    assert_sqlstate(c, "PA017", "SELECT auth.refresh_token(%s)", (pair["refresh_token"],))
    assert_sqlstate(c, "PA017", "SELECT auth.authenticate(%s)", (pair["access_token"],))
    assert_sqlstate(c, "PA017", "SELECT auth.authenticate(%s)", (first["jwt"],))
    events = [r[0] for r in c.execute("SELECT event FROM auth.audit_log WHERE session_id = %s ORDER BY id",
                                      (first["session_id"],)).fetchall()]
    assert events == ["session_started", "session_refreshed", "session_ended", "refresh_token_reused"]


def test_a_cookie_refresh_counts_for_reuse_too(c):
    c.execute("SET pg_auth.refresh_grace_period = 0")
    first = sign_in(c)
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (first["token"],))
        c.execute("SET LOCAL ROLE NONE")
        c.execute("SELECT auth.refresh()")
    assert one(c, "SELECT auth.refresh_token(%s) IS NULL", (first["token"],))
    assert one(c, "SELECT revoked_at IS NOT NULL FROM auth.sessions WHERE id = %s", (first["session_id"],))


@pytest.mark.parametrize("token", [None, "", "pas_" + "x" * 43, "not a token", "a.b.c"])
def test_unknown_tokens_are_refused(c, token):
    assert_sqlstate(c, "PA017", "SELECT auth.refresh_token(%s)", (token,))


def test_a_disabled_user_gets_no_new_tokens(c):
    first = sign_in(c)
    c.execute("UPDATE auth.users SET disabled = true WHERE email = 'mobile@example.com'")
    try:
        assert_sqlstate(c, "PA017", "SELECT auth.refresh_token(%s)", (first["token"],))
    finally:
        c.execute("UPDATE auth.users SET disabled = false WHERE email = 'mobile@example.com'")


# ---- through PostgREST in Bearer mode --------------------------------------------------------------

def test_bearer_clients_refresh_and_a_reuse_ends_their_session_through_postgrest():
    d = E2EDatabase("pg_auth_e2e_refresh")
    try:
        d.generate_key("ES256", "bearer-refresh")
        d.admin.execute(f"SELECT auth.register('bearer@example.com', %s, role => '{WEB_USER}')", (PASSWORD,))
        d.admin.execute("""CREATE FUNCTION api.signin(email text, password text) RETURNS jsonb
                           LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
                           AS $$ SELECT auth.login(email, password, true) $$;
                           CREATE FUNCTION api.token(refresh_token text) RETURNS jsonb
                           LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
                           AS $$ SELECT auth.refresh_token(refresh_token) $$""")
        d.admin.execute(f"GRANT EXECUTE ON FUNCTION api.signin(text, text), api.token(text) TO {WEB_ANON}, {WEB_USER}")
        d.set_role_setting(AUTHENTICATOR, "pg_auth.refresh_grace_period", "0")
        with PostgREST(d, AUTHENTICATOR, pool=1, jwt_secret=json.dumps(d.jwks()), name="refresh") as api:
            signed = expect(api.request("POST", "/rpc/signin", json={"email": "bearer@example.com", "password": PASSWORD}),
                            200, api)
            assert expect(api.whoami(bearer=signed["jwt"]), 200, api)["current_user"] == WEB_USER
            pair = expect(api.request("POST", "/rpc/token", json={"refresh_token": signed["token"]}), 200, api)
            assert expect(api.whoami(bearer=pair["access_token"]), 200, api)["current_user"] == WEB_USER
            reused = api.request("POST", "/rpc/token", json={"refresh_token": signed["token"]})
            assert expect(reused, 401, api) is None, describe(reused, api)
            assert reused.headers["X-Auth-Error"].startswith("PA017"), describe(reused, api)
            # The session is ended: its access tokens are refused by pg_auth at once, not at exp.
            refused = api.whoami(bearer=pair["access_token"])
            assert refused.status_code == 401, describe(refused, api)
            assert expect(api.request("POST", "/rpc/token", json={"refresh_token": pair["refresh_token"]}), 401, api)
    finally:
        d.close()
