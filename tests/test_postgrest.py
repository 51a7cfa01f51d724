"""End to end through the real PostgREST 12: `db-pre-request = auth.authenticate`.

Cookie and custom-header JWTs verified by pg_auth, anonymous access, refused tokens (401 with
WWW-Authenticate and a clearing cookie), refused roles (403), audience/issuer checks, claims-only
mode under RLS, and that nothing leaks from one request into the next on a one-connection pool.
Bearer tokens: test_postgrest_bearer.py; key rotation under a running PostgREST:
test_postgrest_rotation.py. The harness is tests/postgrest_harness.py.
"""

import itertools
import json

import pytest

from postgrest_process import raw_http
from postgrest_harness import (
    ADMIN, ALICE, AUDIENCE, AUTHENTICATOR, AUTHENTICATOR_CO, AUTHENTICATOR_STRICT, BOB, CAROL, ISSUER,
    OTHER_ROLE, ROWS, WEB_ANON, WEB_USER, E2EDatabase, PostgREST, assert_invalid_token, b64url, describe,
    expect, flip_payload_char, payload_of, with_payload,
)

PUBLIC_OWNERS = {owner for owner, public, _ in ROWS if public}


@pytest.fixture(scope="module")
def db():
    d = E2EDatabase("pg_auth_e2e")
    d.generate_key("HS256", "e2e-hs")
    yield d
    d.close()


@pytest.fixture(scope="module")
def api(db):
    """PostgREST as e2e_authenticator with default pg_auth settings and a one-connection pool."""
    with PostgREST(db, AUTHENTICATOR, pool=1) as p:
        yield p


@pytest.fixture(scope="module")
def strict(db):
    """PostgREST as e2e_authenticator_strict: pg_auth.audience, pg_auth.issuer set, anonymous off."""
    with PostgREST(db, AUTHENTICATOR_STRICT, name="strict") as p:
        yield p


@pytest.fixture(scope="module")
def claims_only(db):
    """PostgREST as e2e_authenticator_co: pg_auth.claims_only = on; granted e2e_web_anon only."""
    with PostgREST(db, AUTHENTICATOR_CO, name="claims_only") as p:
        yield p


def owners(resp, server):
    rows = expect(resp, 200, server)
    assert isinstance(rows, list), describe(resp, server)
    return sorted(r["owner"] for r in rows)


def visible_owners(sub):
    """What the items_read policy lets `sub` see of the seeded rows."""
    return sorted(o for o, public, _ in ROWS if public or o == sub)


# ---- 1. anonymous -----------------------------------------------------------------------------------

def test_anonymous_request_runs_as_anon_role(api):
    r = api.whoami()
    me = expect(r, 200, api)
    info = describe(r, api)
    assert me["current_user"] == WEB_ANON, info
    assert me["session_user"] == AUTHENTICATOR, info
    assert me["jwt"] == {"role": WEB_ANON}, info  # what PostgREST publishes for no token
    assert me["uid"] is None and me["sub"] is None, info
    assert "WWW-Authenticate" not in r.headers and "Set-Cookie" not in r.headers, info
    assert owners(api.get("/items"), api) == sorted(PUBLIC_OWNERS)


def test_empty_cookie_counts_as_no_token(api):
    """Browsers send `access_token=` after the cookie was cleared: that is anonymous, not an error."""
    r = api.whoami(headers={"Cookie": "access_token="})
    assert expect(r, 200, api)["current_user"] == WEB_ANON, describe(r, api)


# ---- 2./3. valid cookie and custom header ---------------------------------------------------------

def test_cookie_token_switches_role_and_publishes_claims(api, db):
    token = db.user_token(ALICE)
    r = api.whoami(headers={"Cookie": f"theme=dark; access_token={token}; lang=en"})
    me = expect(r, 200, api)
    info = describe(r, api)
    assert me["current_user"] == WEB_USER, info
    assert me["session_user"] == AUTHENTICATOR, info
    assert me["uid"] == ALICE and me["sub"] == ALICE, info
    assert me["role_claim"] == WEB_USER and me["email"] == "a11c@example.com", info
    assert me["jwt"] == payload_of(token), info
    assert "Set-Cookie" not in r.headers and "WWW-Authenticate" not in r.headers, info
    assert owners(api.get("/items", cookie=token), api) == visible_owners(ALICE)


def test_custom_header_token_switches_role(api, db):
    token = db.user_token(BOB)
    r = api.whoami(header=token)
    me = expect(r, 200, api)
    assert me["current_user"] == WEB_USER and me["sub"] == BOB, describe(r, api)
    assert me["jwt"]["jti"] == payload_of(token)["jti"], describe(r, api)
    assert owners(api.get("/items", header=token), api) == visible_owners(BOB)


def test_cookie_is_tried_before_the_header(api, db):
    """Default pg_auth.token_sources = 'cookie, header, bearer'."""
    r = api.whoami(cookie=db.user_token(ALICE), header=db.user_token(BOB))
    assert expect(r, 200, api)["sub"] == ALICE, describe(r, api)


def test_user_writes_go_through_rls_as_the_switched_role(api, db):
    token = db.user_token(ALICE)
    r = api.request("POST", "/items", cookie=token, json={"owner": ALICE, "body": "written over http"},
                    headers={"Prefer": "return=representation"})
    rows = expect(r, 201, api)
    try:
        assert rows and rows[0]["owner"] == ALICE, describe(r, api)
        # The anonymous role has no INSERT privilege: the write must have run as e2e_web_user.
        r2 = api.request("POST", "/items", json={"owner": ALICE, "body": "anon write"})
        body = expect(r2, 401, api)
        assert body["code"] == "42501", describe(r2, api)
    finally:
        db.admin.execute("DELETE FROM api.items WHERE body IN ('written over http', 'anon write')")


def test_rls_violation_on_a_cookie_session_is_401_not_403(api, db):
    """PostgREST 12 fact, not pg_auth's choice: PostgREST maps SQLSTATE 42501 to 401 whenever the
    request carried no Bearer token, which is always the case for cookie/header sessions — so a
    signed-in user who breaks an RLS policy gets 401 (WWW-Authenticate: Bearer), not 403."""
    token = db.user_token(ALICE)
    r = api.request("POST", "/items", cookie=token, json={"owner": BOB, "body": "impersonation"})
    body = expect(r, 401, api)
    assert body["code"] == "42501" and "row-level security" in body["message"], describe(r, api)
    assert r.headers.get("WWW-Authenticate") == "Bearer", describe(r, api)
    assert db.one("SELECT count(*) FROM api.items WHERE body = 'impersonation'") == 0


# ---- 4. refused tokens: 401, WWW-Authenticate, clearing cookie ---------------------------------------

def bad_token(db, kind):
    """(token, words in the message, SQLSTATE in the body's code: README's error table)."""
    good = db.user_token(ALICE)
    h, p, _ = good.split(".")
    none_header = b64url(b'{"alg":"none","typ":"JWT"}')
    return {
        "expired": (db.user_token(ALICE, ttl=-120), "token has expired", "PA004"),
        "tampered_char": (flip_payload_char(good), "invalid token signature", "PA003"),
        "tampered_claims": (with_payload(good, sub=BOB), "invalid token signature", "PA003"),
        "not_a_jwt": ("not-a-jwt", "malformed token", "PA001"),
        # The same claims under {"alg":"none"} with a leftover signature…
        "alg_none": (f"{none_header}.{p}.{good.split('.')[2]}", "algorithm not allowed", "PA011"),
        # …and as RFC 7519 §6.1's unsecured JWT, with an empty signature: refused, code not pinned
        # (pg_auth answers PA001 "signature is not base64url" here, README lists `none` as PA011).
        "unsecured_jwt": (f"{none_header}.{p}.", None, None),
        "other_key": (db.one("SELECT auth.sign_jwt(%s::jsonb, %s, 'HS256')",
                             (json.dumps(payload_of(good)), "another-secret-of-32-bytes-or-more!")),
                      None, None),
    }[kind]


@pytest.mark.parametrize("source", ["cookie", "header"])
@pytest.mark.parametrize("kind", ["expired", "tampered_char", "tampered_claims", "not_a_jwt", "alg_none",
                                  "unsecured_jwt", "other_key"])
def test_refused_token_is_401(api, db, kind, source):
    token, description, code = bad_token(db, kind)
    r = api.whoami(**{source: token})
    body = assert_invalid_token(r, api, from_cookie=source == "cookie", description=description, code=code)
    assert body["code"].startswith("PA"), describe(r, api)


def strict_token(db, **claims):
    base = {"role": WEB_USER, "sub": ALICE, "aud": AUDIENCE, "iss": ISSUER}
    base.update(claims)
    return db.sign({k: v for k, v in base.items() if v is not None})


def test_strict_instance_accepts_matching_audience_and_issuer(strict, db):
    """Makes the refusals below meaningful: this instance does serve good tokens."""
    for source in ("cookie", "header"):
        r = strict.whoami(**{source: strict_token(db)})
        assert expect(r, 200, strict)["current_user"] == WEB_USER, describe(r, strict)
    r = strict.whoami(cookie=strict_token(db, aud=["someone-else", AUDIENCE]))
    assert expect(r, 200, strict)["sub"] == ALICE, describe(r, strict)


@pytest.mark.parametrize("source", ["cookie", "header"])
@pytest.mark.parametrize("kind, claims, description, code", [
    ("wrong_audience", {"aud": "another-api"}, "audience", "PA006"),
    ("missing_audience", {"aud": None}, '"aud"', "PA008"),
    ("wrong_issuer", {"iss": "https://evil.example"}, "issuer", "PA007"),
    ("missing_issuer", {"iss": None}, '"iss"', "PA008"),
])
def test_strict_refuses_audience_and_issuer_mismatch(strict, db, source, kind, claims, description, code):
    r = strict.whoami(**{source: strict_token(db, **claims)})
    assert_invalid_token(r, strict, from_cookie=source == "cookie", description=description, code=code)


def test_strict_refuses_anonymous_requests(strict):
    """pg_auth.anonymous = off: no token → 401 with a bare `WWW-Authenticate: Bearer` (RFC 6750 §3.1:
    no error code when the request carried no credentials) and no cookie to clear."""
    r = strict.whoami()
    body = expect(r, 401, strict)
    assert r.headers.get("WWW-Authenticate") == "Bearer", describe(r, strict)
    assert "Set-Cookie" not in r.headers, describe(r, strict)
    assert body["code"] == "28000" and "no token" in body["message"], describe(r, strict)


def test_duplicate_cookie_the_last_one_is_used(api, db):
    """PostgREST 12 fact pg_auth inherits: with two cookies of the same name, request.cookies keeps
    the last one. A cookie tossed in from a sibling domain or a longer path can thus shadow (or,
    when it is garbage, log out) the real session."""
    alice, bob = db.user_token(ALICE), db.user_token(BOB)
    r = api.whoami(headers={"Cookie": f"access_token={alice}; access_token={bob}"})
    assert expect(r, 200, api)["sub"] == BOB, describe(r, api)
    r = api.whoami(headers={"Cookie": f"access_token={alice}; access_token=garbage"})
    assert_invalid_token(r, api, from_cookie=True, description="malformed token")


def test_token_with_aud_is_refused_when_no_audience_is_configured(api, db):
    """Pins current behaviour, which differs from PostgREST's: PostgREST 12 without jwt-aud accepts
    any `aud` (see test_postgrest_bearer.py), pg_auth without pg_auth.audience refuses a token
    that carries one (RFC 7519 §4.1.3). The same token passes as Bearer and fails as cookie."""
    r = api.whoami(cookie=db.user_token(ALICE, aud="some-api"))
    assert_invalid_token(r, api, from_cookie=True, description="audience", code="PA006")


# ---- 5. refused roles: 403 ----------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["cookie", "header"])
@pytest.mark.parametrize("role, reason", [
    (OTHER_ROLE, "is not granted to the authenticator role"),
    (ADMIN, "is a superuser"),
    (AUTHENTICATOR, "is the authenticator role itself"),
    ("e2e_no_such_role", "does not exist"),
])
def test_refused_role_is_403(api, db, role, reason, source):
    r = api.whoami(**{source: db.user_token(ALICE, role=role)})
    body = expect(r, 403, api)
    info = describe(r, api)
    assert body["code"] == "42501", info
    assert body["message"] == f'role not allowed: "{role}" {reason}', info
    www = r.headers.get("WWW-Authenticate", "")
    assert www.startswith("Bearer ") and 'error="insufficient_scope"' in www and reason in www, info
    if source == "header":
        assert "Set-Cookie" not in r.headers, info


# ---- 7. claims-only mode ------------------------------------------------------------------------------

def test_claims_only_publishes_claims_without_switching_role(claims_only, db):
    for sub in (ALICE, BOB):
        token = db.user_token(sub)
        r = claims_only.whoami(cookie=token)
        me = expect(r, 200, claims_only)
        info = describe(r, claims_only)
        assert me["current_user"] == WEB_ANON, info  # no SET ROLE: stays PostgREST's anon role
        assert me["session_user"] == AUTHENTICATOR_CO, info
        assert me["sub"] == sub and me["role_claim"] == WEB_USER, info
        assert me["jwt"] == payload_of(token), info
        # RLS reads the published claims: each sees their own rows plus the public one.
        assert owners(claims_only.get("/items", cookie=token), claims_only) == visible_owners(sub)
    assert owners(claims_only.get("/items"), claims_only) == sorted(PUBLIC_OWNERS)


def test_claims_only_never_checks_or_switches_to_the_claimed_role(claims_only, db):
    """e2e_authenticator_co is granted neither e2e_web_user nor e2e_admin: a role check would give
    403. In claims-only mode the role claim is only published."""
    for role in (ADMIN, OTHER_ROLE):
        r = claims_only.whoami(header=db.user_token(CAROL, role=role))
        me = expect(r, 200, claims_only)
        assert me["current_user"] == WEB_ANON and me["role_claim"] == role, describe(r, claims_only)


def test_claims_only_still_refuses_bad_tokens(claims_only, db):
    r = claims_only.whoami(cookie=db.user_token(ALICE, ttl=-120))
    assert_invalid_token(r, claims_only, from_cookie=True, description="token has expired")
    r = claims_only.whoami(header=with_payload(db.user_token(BOB), sub=ALICE))
    assert_invalid_token(r, claims_only, from_cookie=False, description="invalid token signature")


# ---- 9. nothing leaks between requests on one pooled connection ----------------------------------------

def test_no_role_or_claims_leak_between_requests(api, db):
    alice, bob = db.user_token(ALICE), db.user_token(BOB)
    expired = db.user_token(ALICE, ttl=-120)
    other, admin = db.user_token(ALICE, role=OTHER_ROLE), db.user_token(BOB, role=ADMIN)
    steps = [
        ("anon", {}, 200, WEB_ANON, None),
        ("alice cookie", {"cookie": alice}, 200, WEB_USER, ALICE),
        ("anon", {}, 200, WEB_ANON, None),
        ("bob header", {"header": bob}, 200, WEB_USER, BOB),
        ("expired cookie", {"cookie": expired}, 401, None, None),
        ("anon", {}, 200, WEB_ANON, None),
        ("alice header", {"header": alice}, 200, WEB_USER, ALICE),
        ("superuser claim", {"cookie": admin}, 403, None, None),
        ("anon", {}, 200, WEB_ANON, None),
        ("bob cookie", {"cookie": bob}, 200, WEB_USER, BOB),
        ("other role", {"header": other}, 403, None, None),
        ("bob cookie", {"cookie": bob}, 200, WEB_USER, BOB),
        ("alice cookie", {"cookie": alice}, 200, WEB_USER, ALICE),
    ]
    backends = set()
    for i, (label, kw, status, role, sub) in enumerate(itertools.islice(itertools.cycle(steps), 65)):
        path = "/items" if i % 5 == 4 else "/rpc/whoami"
        r = api.get(path, **kw)
        info = f"step {i} ({label}, {path})\n" + describe(r, api)
        body = expect(r, status, api)
        if status != 200:
            continue
        if path == "/items":
            assert sorted(row["owner"] for row in body) == visible_owners(sub), info
            continue
        assert body["current_user"] == role, info
        assert body["sub"] == sub, info
        if sub is None:
            assert body["jwt"] == {"role": WEB_ANON}, info
        else:
            assert body["jwt"] == payload_of(kw.get("cookie") or kw.get("header")), info
        backends.add(body["backend_pid"])
    # db-pool = 1: every request ran on the same backend, so a leak would have shown.
    assert len(backends) == 1, f"expected one pooled backend, saw {backends}\n{api.log_tail()}"
    # And the pooled session itself is back to the authenticator with no claims set.
    row = db.one(
        "SELECT json_build_object('state', state, 'user', usename) FROM pg_stat_activity WHERE pid = %s",
        (backends.pop(),),
    )
    assert row["user"] == AUTHENTICATOR and row["state"] == "idle", row


def test_a_request_without_any_header_runs_as_the_anon_role(api):
    """Found by the third live attack: PostgREST leaves cookies out of request.headers, so a
    request with no other header had request.headers = {} and was taken for a SQL client, and
    ran as the authenticator itself."""
    status, _, body = raw_http(api.url, b"GET /rpc/whoami HTTP/1.0\r\n\r\n")
    assert status.split()[1] == "200", (status, body)
    assert json.loads(body)["current_user"] == WEB_ANON, body
    status, headers, body = raw_http(api.url, b"GET /rpc/whoami HTTP/1.0\r\nCookie: access_token=garbage\r\n\r\n")
    assert status.split()[1] == "401", (status, body)
    assert any(h.lower().startswith("www-authenticate: bearer") for h in headers), headers
    assert any(h.lower().startswith("set-cookie: access_token=;") for h in headers), headers
