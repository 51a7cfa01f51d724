"""End to end through the real PostgREST 12: Bearer tokens verified by PostgREST with
`jwt-secret` = auth.jwks() (pg_auth's public key set), then checked again by
`db-pre-request = auth.authenticate` for what PostgREST cannot do: immediate revocation by `jti`
and the role rules (never a superuser)."""

import json

import pytest

from postgrest_harness import (
    ADMIN, ALICE, AUTHENTICATOR, BOB, WEB_USER, E2EDatabase, PostgREST, assert_invalid_token,
    describe, expect, header_of, payload_of, with_payload,
)

KID = "e2e-es256"


@pytest.fixture(scope="module")
def db():
    d = E2EDatabase("pg_auth_e2e_bearer")
    d.generate_key("HS256", "e2e-hs-unpublished")  # older; HMAC secrets never appear in the JWKS
    d.generate_key("ES256", KID)  # newest: auth.sign_jwt() signs with it
    yield d
    d.close()


@pytest.fixture(scope="module")
def jwks(db):
    return db.jwks()


@pytest.fixture(scope="module")
def api(db, jwks):
    with PostgREST(db, AUTHENTICATOR, pool=1, jwt_secret=json.dumps(jwks), name="bearer") as p:
        yield p


def test_jwks_publishes_only_the_asymmetric_key(jwks):
    keys = jwks["keys"]
    assert [k["kid"] for k in keys] == [KID], jwks
    assert keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256", jwks
    assert "d" not in keys[0], "private part published"


def test_bearer_token_verified_by_postgrest_runs_as_its_role(api, db):
    token = db.user_token(ALICE)
    assert header_of(token)["kid"] == KID
    r = api.whoami(bearer=token)
    me = expect(r, 200, api)
    info = describe(r, api)
    assert me["current_user"] == WEB_USER and me["session_user"] == AUTHENTICATOR, info
    assert me["uid"] == ALICE and me["jwt"] == payload_of(token), info
    assert "WWW-Authenticate" not in r.headers and "Set-Cookie" not in r.headers, info


def test_revoked_bearer_token_is_refused_at_once(api, db):
    token, other = db.user_token(ALICE), db.user_token(ALICE)
    r = api.whoami(bearer=token)
    assert expect(r, 200, api)["sub"] == ALICE, describe(r, api)

    db.one("SELECT auth.revoke_token(%s) IS NULL", (payload_of(token)["jti"],))

    r = api.whoami(bearer=token)
    assert_invalid_token(r, api, from_cookie=False, description="token has been revoked", code="PA014")
    # Revocation is by jti, whatever the source: the same token as a cookie is refused too,
    # and that answer clears the cookie.
    r = api.whoami(cookie=token)
    assert_invalid_token(r, api, from_cookie=True, description="token has been revoked", code="PA014")
    # Only that token: another one of the same user still works.
    r = api.whoami(bearer=other)
    assert expect(r, 200, api)["jwt"]["jti"] == payload_of(other)["jti"], describe(r, api)


def test_bearer_token_naming_a_superuser_is_refused(api, db):
    """The authenticator is a member of e2e_admin (a superuser), so PostgREST itself switches to it;
    auth.authenticate() is what refuses it."""
    r = api.whoami(bearer=db.user_token(BOB, role=ADMIN))
    body = expect(r, 403, api)
    assert body["code"] == "42501", describe(r, api)
    assert body["message"] == f'role not allowed: "{ADMIN}" is a superuser', describe(r, api)
    assert 'error="insufficient_scope"' in r.headers.get("WWW-Authenticate", ""), describe(r, api)


def test_bad_bearer_signature_is_refused_by_postgrest_itself(api, db):
    """With jwt-secret set PostgREST verifies Bearer tokens before the database: PGRST301, not PA…"""
    r = api.whoami(bearer=with_payload(db.user_token(ALICE), sub=BOB))
    body = expect(r, 401, api)
    assert body["code"].startswith("PGRST3"), describe(r, api)


def test_bearer_tokens_are_verified_by_pg_auth_too(api, db):
    """PostgREST 12 fact: without jwt-aud any `aud` passes its own check. pg_auth verifies the
    Bearer token again (request.jwt.claims is a setting any SQL caller can write), with the same
    rules as a cookie: a token for an audience nobody configured is refused unless
    pg_auth.audience names it — see test_postgrest.py."""
    token = db.user_token(ALICE, aud="some-api")
    r = api.whoami(bearer=token)
    assert_invalid_token(r, api, from_cookie=False, description="audience")
    r = api.whoami(cookie=token)
    assert_invalid_token(r, api, from_cookie=True, description="audience")
