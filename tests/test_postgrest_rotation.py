"""End to end through the real PostgREST 12: rotating the key ring while PostgREST keeps running
on the same pooled connection. A key added or retired in another session is seen by the pooled
backend's very next request (relcache invalidation of auth.keys), with no restart of anything."""

import pytest

from postgrest_harness import (
    ALICE, AUTHENTICATOR, BOB, WEB_USER, E2EDatabase, PostgREST, assert_invalid_token, describe,
    expect, header_of,
)


@pytest.fixture(scope="module")
def db():
    d = E2EDatabase("pg_auth_e2e_rotation")
    yield d
    d.close()


@pytest.fixture(scope="module")
def api(db):
    with PostgREST(db, AUTHENTICATOR, pool=1, name="rotation") as p:
        yield p


def whoami_ok(api, **kw):
    r = api.whoami(**kw)
    me = expect(r, 200, api)
    assert me["current_user"] == WEB_USER, describe(r, api)
    return me


def test_key_rotation_without_restarting_postgrest(api, db):
    db.generate_key("HS256", "rot-old")
    token_a = db.user_token(ALICE)
    assert header_of(token_a)["kid"] == "rot-old"
    pid = api.pid
    backend = whoami_ok(api, cookie=token_a)["backend_pid"]

    # Step 1: a new key is added. It signs from now on; tokens of the old key still verify.
    db.generate_key("ES256", "rot-new")
    token_b = db.user_token(BOB)
    assert header_of(token_b)["kid"] == "rot-new"
    assert whoami_ok(api, cookie=token_a)["sub"] == ALICE
    assert whoami_ok(api, header=token_b)["sub"] == BOB

    # Step 2: the old key is retired. Its tokens are refused at the next request.
    db.one("SELECT auth.retire_key('rot-old') IS NULL")
    r = api.whoami(cookie=token_a)
    assert_invalid_token(r, api, from_cookie=True, description='kid "rot-old"', code="PA010")
    r = api.whoami(header=token_a)
    assert_invalid_token(r, api, from_cookie=False, description='kid "rot-old"', code="PA010")
    me = whoami_ok(api, cookie=token_b)
    assert me["sub"] == BOB

    # Same PostgREST process, same pooled backend: the change reached a running connection.
    assert api.alive() and api.pid == pid, api.log_tail()
    assert me["backend_pid"] == backend, f"pool reconnected ({backend} → {me['backend_pid']})\n{api.log_tail()}"

    # A token signed with a key that is not in the ring at all is refused too.
    db.admin.execute("DELETE FROM auth.keys WHERE kid = 'rot-new'")
    r = api.whoami(cookie=token_b)
    assert_invalid_token(r, api, from_cookie=True, description='kid "rot-new"', code="PA010")
    assert api.alive() and api.pid == pid, api.log_tail()
