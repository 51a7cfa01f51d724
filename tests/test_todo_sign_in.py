"""The todo app's sign-in beyond passwords, end to end through the real PostgREST 12 binary:
codes and links by mail (the app's outbox table stands in for the mail server), email
verification and change, pg_auth.require_verified_email, a TOTP second factor that RLS requires
once enrolled, and sign-in with an identity provider (a test provider on 127.0.0.1).
"""

from __future__ import annotations

import time
import uuid

import pytest

from idp import IdentityProvider, SigningKey
from otp import totp
from test_todo_app import PASSWORD, code, expect, new_email, signed_up
from todo_harness import TodoApp

DBNAME = "pg_auth_todo_sign_in"
JSON_PREFER = {"Prefer": "return=representation"}


@pytest.fixture(scope="module")
def app():
    todo = TodoApp(DBNAME, settings={"pg_auth.jwks_min_refresh_interval": 1}).start()
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


def mail(app, email, purpose):
    """The last code and link the app mailed to `email` for `purpose`, or None."""
    row = app.admin.execute("SELECT code, link FROM api_private.outbox WHERE email = %s AND purpose = %s "
                            "ORDER BY id DESC LIMIT 1", (email, purpose)).fetchone()
    return None if row is None else {"code": row[0], "token": row[1].split("token=", 1)[1]}


def refusal(resp):
    """(status, X-Auth-Error code) of a refusal pg_auth returned rather than raised."""
    return resp.status_code, resp.headers.get("X-Auth-Error", "").split(" ")[0]


def test_a_code_by_mail_signs_in_and_up_without_a_password(app, clients):
    browser, email = clients(), new_email("passwordless")
    assert expect(browser.post("/rpc/request_code", {"email": email}), 200, app) == {"sent": True}
    sent = mail(app, email, "sign_in")
    body = expect(browser.post("/rpc/verify_code", {"email": email, "code": sent["code"]}), 200, app)
    assert body["purpose"] == "sign_in" and "token" not in body and browser.token
    assert expect(browser.me(), 200, app)["email"] == email
    # The code is spent; guessing through another client is refused and counted.
    thief = clients()
    assert refusal(thief.post("/rpc/verify_code", {"email": email, "code": sent["code"]})) == (401, "PA023")
    assert thief.token is None


def test_the_answer_is_the_same_for_known_and_unknown_emails(app, clients):
    _, _, known = signed_up(app, clients, "known")
    unknown = new_email("unknown")
    answers = [clients().post("/rpc/request_code", {"email": e, "purpose": "verify_email"}) for e in (known, unknown)]
    assert [(r.status_code, r.json()) for r in answers] == [(200, {"sent": True})] * 2
    assert mail(app, known, "verify_email") is not None and mail(app, unknown, "verify_email") is None
    guesses = [clients().post("/rpc/verify_code", {"email": e, "code": "123456", "purpose": "verify_email"})
               for e in (known, unknown)]
    assert [(r.status_code, r.text, r.headers.get("X-Auth-Error")) for r in guesses][0] == \
        [(r.status_code, r.text, r.headers.get("X-Auth-Error")) for r in guesses][1]


def test_wrong_codes_past_the_limit_and_too_many_requests(app, clients):
    attacker, email = clients(), new_email("guessed")
    expect(attacker.post("/rpc/request_code", {"email": email}), 200, app)
    sent = mail(app, email, "sign_in")
    # A result filter cannot roll the count back: the refusal is NULL, nothing to filter on.
    path = "/rpc/verify_code?pgrst_scalar->>purpose=like.*%5C"
    wrong = f"{(int(sent['code']) + 1) % 1_000_000:06d}"
    assert [refusal(attacker.post(path, {"email": email, "code": wrong})) for _ in range(5)] == [(401, "PA023")] * 5
    assert refusal(attacker.post("/rpc/verify_code", {"email": email, "code": sent["code"]})) == (401, "PA023")
    for _ in range(4):
        expect(attacker.post("/rpc/request_code", {"email": email}), 200, app)
    body = expect(attacker.post("/rpc/request_code", {"email": email}), 429, app)
    assert code(body) == "PA015"
    # Through GET (a read-only transaction) nothing is checked.
    resp = attacker.get(f"/rpc/verify_code?email={email}&code=000000", headers={"Content-Type": "application/json"})
    assert resp.status_code >= 400 and "read-write" in resp.json()["message"]


def test_a_mailed_link_signs_in_once_and_only_as_json(app, clients):
    browser, email = clients(), new_email("link")
    expect(browser.post("/rpc/request_code", {"email": email}), 200, app)
    token = mail(app, email, "sign_in")["token"]
    # Login CSRF: a cross-site form posting the link is refused before anything happens.
    form = clients().request("POST", "/rpc/verify_link", data={"token": token},
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    expect(browser.post("/rpc/verify_link", {"token": token}), 200, app)
    assert expect(browser.me(), 200, app)["email"] == email
    assert code(expect(clients().post("/rpc/verify_link", {"token": token}), 401, app)) == "PA023"


def test_an_email_change_is_confirmed_by_a_code_sent_to_the_new_address(app, clients):
    user, _, old = signed_up(app, clients, "mover")
    new = new_email("moved")
    expect(user.post("/rpc/change_email", {"new_email": new}), 200, app)
    sent = mail(app, new, "change_email")
    assert expect(user.me(), 200, app)["email"] == old
    body = expect(clients().post("/rpc/verify_code", {"email": new, "code": sent["code"], "purpose": "change_email"}), 200, app)
    assert body["email"] == new
    assert expect(user.me(), 200, app)["email"] == new
    assert code(expect(clients().post("/rpc/change_email", {"new_email": new}), 401, app)) == "PA017"


def test_required_verification_holds_sign_in_until_the_mailed_link(clients):
    app = TodoApp(DBNAME + "_verified", settings={"pg_auth.require_verified_email": "on"}).start()
    try:
        browser, email = app.client(), new_email("verify")
        assert expect(browser.register(email, "Vera", PASSWORD), 200, app) == {"verification_sent": True}
        assert browser.token is None
        body = expect(browser.login(email, PASSWORD), 403, app)
        assert code(body) == "PA024" and "not verified" in body["message"]
        # A wrong password still answers as one: nothing is told about the account.
        assert refusal(browser.login(email, "a wrong password")) == (401, "28P01")
        token = mail(app, email, "verify_email")["token"]
        assert expect(browser.post("/rpc/verify_link", {"token": token}), 200, app)["email_verified"] is True
        expect(browser.login(email, PASSWORD), 200, app)
        assert expect(browser.me(), 200, app)["email"] == email
        browser.close()
    finally:
        app.stop()


def test_a_second_factor_guards_the_todos_once_enrolled(app, clients):
    user, _, email = signed_up(app, clients, "mfa")
    expect(user.post("/todos", {"title": "before enrolment"}, headers=JSON_PREFER), 201, app)
    enrolment = expect(user.post("/rpc/enroll_totp"), 200, app)
    assert enrolment["uri"].startswith("otpauth://totp/pg_auth%20todo:")
    assert refusal(user.post("/rpc/confirm_totp", {"code": "000000" if totp(enrolment["secret"]) != "000000" else "111111"})) == (401, "PA025")
    confirmed = expect(user.post("/rpc/confirm_totp", {"code": totp(enrolment["secret"])}), 200, app)
    assert len(confirmed["recovery_codes"]) == 10 and confirmed["aal"] == "aal2"
    assert [t["title"] for t in expect(user.get("/todos"), 200, app)] == ["before enrolment"]
    # A new sign-in is aal1: the todos stay hidden until the second factor.
    phone = clients()
    expect(phone.login(email, PASSWORD), 200, app)
    assert expect(phone.get("/todos"), 200, app) == []
    # (42501; PostgREST answers 401 to a request it takes for anonymous, as every cookie session)
    assert code(expect(phone.post("/todos", {"title": "sneaky"}), 401, app)) == "42501"
    assert expect(phone.get("/rpc/mfa_status"), 200, app)["aal"] == "aal1"
    expect(phone.post("/rpc/verify_totp", {"code": totp(enrolment["secret"], offset=1)}), 200, app)
    assert [t["title"] for t in expect(phone.get("/todos"), 200, app)] == ["before enrolment"]
    # A recovery code works once, on yet another device.
    laptop = clients()
    expect(laptop.login(email, PASSWORD), 200, app)
    expect(laptop.post("/rpc/use_recovery_code", {"code": confirmed["recovery_codes"][0]}), 200, app)
    assert len(expect(laptop.get("/todos"), 200, app)) == 1
    tablet = clients()
    expect(tablet.login(email, PASSWORD), 200, app)
    assert refusal(tablet.post("/rpc/use_recovery_code", {"code": confirmed["recovery_codes"][0]})) == (401, "PA025")
    # Unenrolling needs a fresh factor.
    assert refusal(user.post("/rpc/unenroll_totp", {"code": "999999"}))[0] == 401
    expect(user.post("/rpc/unenroll_totp", {"code": confirmed["recovery_codes"][1]}), 200, app)
    assert len(expect(tablet.get("/todos"), 200, app)) == 1


def test_wrong_second_factor_codes_lock_the_factor(app, clients):
    user, _, email = signed_up(app, clients, "mfa-lock")
    secret = expect(user.post("/rpc/enroll_totp"), 200, app)["secret"]
    expect(user.post("/rpc/confirm_totp", {"code": totp(secret)}), 200, app)
    thief = clients()  # has the password, not the phone
    expect(thief.login(email, PASSWORD), 200, app)
    wrong = [f"{(int(totp(secret, offset=o)) + 1) % 1_000_000:06d}" for o in (-1, 0, 1)]
    path = "/rpc/verify_totp?pgrst_scalar->>aal=like.*%5C"
    answers = [thief.post(path, {"code": wrong[i % 3]}).status_code for i in range(6)]
    assert answers == [401] * 5 + [429], answers
    assert code(expect(thief.post("/rpc/verify_totp", {"code": totp(secret, offset=1)}), 429, app)) == "PA015"
    assert expect(thief.get("/todos"), 200, app) == []


@pytest.fixture
def provider(app):
    idp = IdentityProvider()
    idp.published = [SigningKey("todo-1", "ES256")]
    idp.name = "idp" + uuid.uuid4().hex[:8]
    app.execute("SELECT auth.add_identity_provider(%s, %s, %s, %s)", (idp.name, idp.issuer, idp.client_id, idp.jwks_url))
    app.execute("SELECT auth.refresh_provider_keys(%s)", (idp.name,))
    yield idp
    idp.close()


def provider_sign_in(browser, provider, **claims):
    """What the app's page does: asks for a nonce (kept in the browser's cookie), gets an ID token
    from the provider for it, posts the token."""
    nonce = browser.post("/rpc/start_provider_sign_in").json()["nonce"]
    token = provider.id_token(provider.published[0], nonce=nonce, **claims)
    return token, browser.post("/rpc/sign_in_with_provider", {"provider": provider.name, "id_token": token})


def test_sign_in_with_an_identity_provider(app, clients, provider):
    browser, email = clients(), new_email("oidc")
    token, resp = provider_sign_in(browser, provider, email=email, sid="provider-session-1")
    body = expect(resp, 200, app)
    assert body["provider"] == provider.name and browser.token
    me = expect(browser.me(), 200, app)
    assert me["email"] == email and me["id"] == body["user_id"]
    identities = expect(browser.get("/rpc/my_identities"), 200, app)
    assert [(i["provider"], i["email"]) for i in identities] == [(provider.name, email)]
    expect(browser.post("/todos", {"title": "from the provider"}, headers=JSON_PREFER), 201, app)
    # The token replayed from another browser (no nonce cookie) is refused, and so is a second
    # use in the same one.
    thief = clients()
    body = expect(thief.post("/rpc/sign_in_with_provider", {"provider": provider.name, "id_token": token}), 401, app)
    assert code(body) == "PA009" and thief.token is None
    thief.http.cookies.set("oidc_nonce", browser.http.cookies.get("oidc_nonce") or "")
    again = clients()
    nonce = again.post("/rpc/start_provider_sign_in").json()["nonce"]
    assert nonce
    # The ID token is no credential for the API itself.
    resp = clients().get("/todos", headers={"Cookie": f"access_token={token}"})
    assert resp.status_code == 401


def test_an_id_token_works_once(app, clients, provider):
    browser = clients()
    nonce = browser.post("/rpc/start_provider_sign_in").json()["nonce"]
    token = provider.id_token(provider.published[0], nonce=nonce, email=new_email("once"))
    jar = dict(browser.http.cookies)
    expect(browser.post("/rpc/sign_in_with_provider", {"provider": provider.name, "id_token": token}), 200, app)
    replay = clients()
    for name, value in jar.items():
        replay.http.cookies.set(name, value)
    body = expect(replay.post("/rpc/sign_in_with_provider", {"provider": provider.name, "id_token": token}), 403, app)
    assert code(body) == "PA027" and "used already" in body["message"]


def test_provider_tokens_for_another_audience_or_a_rotated_key(app, clients, provider):
    _, resp = provider_sign_in(clients(), provider, email=new_email("aud"), aud="someone-else")
    assert code(expect(resp, 401, app)) == "PA006"
    rotated = SigningKey("todo-2", "RS256")
    provider.published = [rotated]
    browser = clients()
    token, first = provider_sign_in(browser, provider, email=new_email("rotated"))
    assert refusal(first) == (401, "PA010")
    # What the background worker does (tests/test_jwks_worker.py runs the worker itself).
    time.sleep(1.1)
    app.one("SELECT auth_internal.refresh_due_provider_keys()")
    _, second = provider_sign_in(browser, provider, email=new_email("rotated"))
    expect(second, 200, app)
