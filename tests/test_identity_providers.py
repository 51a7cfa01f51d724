"""Sign-in with an identity provider (OpenID Connect), against a test provider whose JWKS is
served on 127.0.0.1 (tests/idp.py): ID tokens verified with the provider's keys (issuer,
audience, expiry, azp, nonce), identities found, linked or created, the provider's own `sid`
never taken for ours, keys fetched, rotated and retired, fetch failures keeping the last good
keys. Through SQL; the background worker in tests/test_jwks_worker.py, PostgREST in
tests/test_todo_app.py.
"""

import base64
import json
import time
import uuid

import jwt
import psycopg
import pytest

from conftest import assert_sqlstate, connect, fresh_database, one
from idp import IdentityProvider, SigningKey

DB = "pg_auth_identity_providers"


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB, switch_to=("web_user",), settings={"user_role": "web_user",
                                                               "jwks_min_refresh_interval": 1}) as c:
        c.execute("SELECT auth.generate_key('ES256', 'ours')")
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    yield conn
    conn.close()


@pytest.fixture
def idp(c):
    """A provider named like the test, with one RSA key published and fetched."""
    provider = IdentityProvider()
    provider.published = [SigningKey("k1")]
    name = "p" + uuid.uuid4().hex[:12]
    c.execute("SELECT auth.add_identity_provider(%s, %s, %s, %s)",
              (name, provider.issuer, provider.client_id, provider.jwks_url))
    assert one(c, "SELECT auth.refresh_provider_keys(%s)", (name,))["keys"] == 1
    provider.name = name
    yield provider
    provider.close()
    c.execute("DELETE FROM auth.identity_providers WHERE name = %s", (name,))


def call(c, sql, params=()):
    """Value, response status and X-Auth-Error of `sql` in its own transaction."""
    with c.transaction():
        value = one(c, sql, params)
        status = one(c, "SELECT current_setting('response.status', true)")
        headers = one(c, "SELECT coalesce(nullif(current_setting('response.headers', true), ''), '[]')::jsonb")
    return value, status, [h["X-Auth-Error"] for h in headers if "X-Auth-Error" in h]


def sign_in(c, idp, token, nonce=None, jwt=False):
    return one(c, "SELECT auth.sign_in_with_id_token(%s, %s, %s, %s)", (idp.name, token, nonce, jwt))


def email():
    return f"u{uuid.uuid4().hex[:10]}@example.com"


def test_a_new_identity_signs_up_and_signs_in_again_to_the_same_account(c, idp):
    key, address, sub = idp.published[0], email(), str(uuid.uuid4())
    first = sign_in(c, idp, idp.id_token(key, sub=sub, email=address, nonce="n1"), nonce="n1")
    assert first["provider"] == idp.name and first["aal"] == "aal1" and first["token"].startswith("pas_")
    row = c.execute("SELECT email, email_verified, password_hash, role FROM auth.users WHERE id = %s",
                    (first["user_id"],)).fetchone()
    # A provider without link_by_email is not trusted to have verified the address.
    assert row == (address, False, None, "web_user")
    assert c.execute("SELECT subject, email FROM auth.identities WHERE user_id = %s", (first["user_id"],)).fetchall() == [(sub, address)]
    again = sign_in(c, idp, idp.id_token(key, sub=sub, email="changed-" + address))
    assert again["user_id"] == first["user_id"] and again["session_id"] != first["session_id"]
    # The provider's new address is noted on the identity, the account keeps its own.
    assert one(c, "SELECT email FROM auth.identities WHERE subject = %s", (sub,)) == "changed-" + address
    assert one(c, "SELECT email FROM auth.users WHERE id = %s", (first["user_id"],)) == address


def test_the_session_and_its_claims_are_ours_never_the_providers(c, idp):
    ours = sign_in(c, idp, idp.id_token(idp.published[0], email=email()))
    # An ID token carrying the sid of an existing session of ours, and a sub that is a user id.
    token = idp.id_token(idp.published[0], email=email(), sid=ours["session_id"], sub=ours["user_id"], role="postgres")
    result = sign_in(c, idp, token, jwt=True)
    assert result["user_id"] != ours["user_id"] and result["session_id"] != ours["session_id"]
    claims = one(c, "SELECT auth.verify_jwt(%s)", (result["jwt"],))
    assert (claims["sub"], claims["sid"], claims["role"]) == (result["user_id"], result["session_id"], "web_user")
    # The ID token itself is no credential here: the provider's key is not in the key ring.
    e = assert_sqlstate(c, "PA010", "SELECT auth.authenticate(%s)", (token,))
    assert "kid" in str(e)
    assert_sqlstate(c, "PA010", "SELECT auth.verify_jwt(%s)", (token,))


@pytest.mark.parametrize("change, state", [
    ({"iss": "https://other-issuer.example"}, "PA007"),
    ({"iss": None}, "PA008"),
    ({"aud": "another-client"}, "PA006"),
    ({"aud": ["todo-client", "another-client"]}, "PA006"),  # several audiences need azp
    ({"aud": "todo-client", "azp": "another-client"}, "PA006"),
    ({"exp": int(time.time()) - 3600}, "PA004"),
    ({"exp": None}, "PA008"),
    ({"iat": None}, "PA008"),
    ({"sub": None}, "PA008"),
    ({"sub": ""}, "PA009"),
    ({"sub": "x" * 256}, "PA009"),
])
def test_a_token_with_wrong_claims_is_refused(c, idp, change, state):
    token = idp.id_token(idp.published[0], email=email(), **change)
    assert_sqlstate(c, state, "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, token))


def test_several_audiences_with_our_azp_are_accepted(c, idp):
    token = idp.id_token(idp.published[0], email=email(), aud=["todo-client", "other"], azp="todo-client")
    assert sign_in(c, idp, token)["user_id"]


def test_the_nonce_must_be_the_one_the_application_sent(c, idp):
    key = idp.published[0]
    assert_sqlstate(c, "PA009", "SELECT auth.sign_in_with_id_token(%s, %s, 'n-2')", (idp.name, idp.id_token(key, email=email(), nonce="n-1")))
    assert_sqlstate(c, "PA009", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(key, email=email(), nonce="n-1")))
    assert_sqlstate(c, "PA008", "SELECT auth.sign_in_with_id_token(%s, %s, 'n-1')", (idp.name, idp.id_token(key, email=email())))
    assert sign_in(c, idp, idp.id_token(key, email=email(), nonce="n-1"), nonce="n-1")["user_id"]


def test_forged_tokens_are_refused(c, idp):
    key = idp.published[0]
    good = idp.id_token(key, email=email())
    header, payload, signature = good.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(
        {**jwt.decode(good, options={"verify_signature": False}), "sub": "admin"}).encode()).rstrip(b"=").decode()
    assert_sqlstate(c, "PA003", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, f"{header}.{forged_payload}.{signature}"))
    # Another key under the same kid; the public key as an HMAC secret; alg none.
    impostor = SigningKey("k1")
    assert_sqlstate(c, "PA003", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(impostor, email=email())))
    public_pem = json.dumps(key.jwk)
    hs = jwt.encode({"iss": idp.issuer, "aud": idp.client_id, "sub": "x", "iat": int(time.time()),
                     "exp": int(time.time()) + 60}, public_pem, algorithm="HS256", headers={"kid": "k1"})
    assert_sqlstate(c, "PA011", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, hs))
    none = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=").decode() + "." + payload + "."
    assert_sqlstate(c, "PA011", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, none))


def test_a_token_of_another_provider_is_refused(c, idp):
    other = IdentityProvider(issuer="https://other.example", client_id="todo-client")
    other.published = [SigningKey("other-key", "ES256")]
    try:
        token = other.id_token(other.published[0], email=email())
        value, status, errors = call(c, "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, token))
        assert (value, status) == (None, "401") and errors[0].startswith("PA010")
        # Even under a kid the provider has, it does not verify.
        same_kid = other.id_token(other.published[0], email=email(), iss=idp.issuer, headers={"kid": "k1"})
        assert_sqlstate(c, "PA011", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, same_kid))
    finally:
        other.close()


def test_an_unknown_kid_asks_for_the_keys_and_a_rotation_is_picked_up(c, idp):
    old, new = idp.published[0], SigningKey("k2", "ES256")
    idp.published = [new]  # the provider rotated and dropped k1
    token = idp.id_token(new, email=email())
    value, status, errors = call(c, "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, token))
    assert (value, status) == (None, "401")
    assert errors == ["PA010 the token is signed with a key of the provider not known yet; try again in a few seconds"]
    asked = one(c, "SELECT refresh_requested_at > fetch_attempted_at FROM auth.identity_providers WHERE name = %s", (idp.name,))
    assert asked is True
    time.sleep(1.1)  # pg_auth.jwks_min_refresh_interval = 1 in this database
    assert one(c, "SELECT auth_internal.refresh_due_provider_keys()") >= 1
    assert sign_in(c, idp, token)["user_id"]
    # k1 is retired after the grace period (1 hour by default): still accepted now.
    retired = one(c, "SELECT retired_at - last_seen_at FROM auth.provider_keys WHERE provider = %s AND kid = 'k1'", (idp.name,))
    assert retired.total_seconds() == 3600
    assert sign_in(c, idp, idp.id_token(old, email=email()))["user_id"]
    # With no grace the dropped key is refused at once.
    c.execute("UPDATE auth.identity_providers SET key_grace_period = '0' WHERE name = %s", (idp.name,))
    c.execute("UPDATE auth.provider_keys SET retired_at = NULL WHERE provider = %s", (idp.name,))
    assert one(c, "SELECT auth.refresh_provider_keys(%s)", (idp.name,))["retired"] == 1
    value, status, _ = call(c, "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(old, email=email())))
    assert (value, status) == (None, "401")
    # A key listed again comes back.
    idp.published = [old, new]
    assert one(c, "SELECT auth.refresh_provider_keys(%s)", (idp.name,))["keys"] == 2
    assert sign_in(c, idp, idp.id_token(old, email=email()))["user_id"]


def test_unknown_kids_do_not_make_the_keys_fetched_more_often_than_allowed(c, idp):
    c.execute("UPDATE auth.identity_providers SET fetch_attempted_at = now() WHERE name = %s", (idp.name,))
    before = idp.fetches
    for _ in range(5):
        call(c, "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(SigningKey("nope", "ES256"), email=email())))
        assert one(c, "SELECT auth_internal.refresh_due_provider_keys()") == 0
    assert idp.fetches == before


@pytest.mark.parametrize("breakage", ["status", "not_json", "no_keys", "only_secret", "too_big", "redirect", "down"])
def test_a_failed_fetch_keeps_the_last_good_keys_and_says_why(c, idp, breakage):
    key = idp.published[0]
    if breakage == "status":
        idp.status = 500
    elif breakage == "not_json":
        idp.body = b"<html>maintenance</html>"
    elif breakage == "no_keys":
        idp.body = b'{"keys": []}'
    elif breakage == "only_secret":
        idp.body = json.dumps({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0" * 8}]}).encode()
    elif breakage == "too_big":
        idp.body = b'{"keys": [], "pad": "' + b"x" * (2 << 20) + b'"}'
    elif breakage == "redirect":
        idp.redirect = "http://127.0.0.1:1/elsewhere"
    else:
        idp.close()
    result = one(c, "SELECT auth.refresh_provider_keys(%s)", (idp.name,))
    assert set(result) == {"provider", "error"} and result["error"]
    row = c.execute("SELECT fetch_error, keys_fetched_at < fetch_attempted_at FROM auth.identity_providers WHERE name = %s",
                    (idp.name,)).fetchone()
    assert row == (result["error"], True)
    assert one(c, "SELECT count(*) FROM auth.provider_keys WHERE provider = %s AND retired_at IS NULL", (idp.name,)) == 1
    assert sign_in(c, idp, idp.id_token(key, email=email()))["user_id"]
    state = "PA012" if breakage in ("no_keys", "only_secret", "not_json") else "PA028"
    assert_sqlstate(c, state, "SELECT auth.refresh_provider_keys(%s, raise_errors => true)", (idp.name,))


def test_jwks_urls_must_be_https_or_loopback(c):
    for url in ("http://example.com/jwks", "ftp://example.com/jwks", "https://user:pw@example.com/jwks", "jwks.json"):
        assert_sqlstate(c, "22023", "SELECT auth.add_identity_provider('bad-url', 'i', 'c', %s)", (url,))
    c.execute("SELECT auth.add_identity_provider('later-bad', 'i', 'c', 'https://example.com/jwks')")
    try:
        c.execute("UPDATE auth.identity_providers SET jwks_url = 'http://example.com/jwks' WHERE name = 'later-bad'")
        result = one(c, "SELECT auth.refresh_provider_keys('later-bad')")
        assert "must use https" in result["error"]
    finally:
        c.execute("DELETE FROM auth.identity_providers WHERE name = 'later-bad'")
    assert_sqlstate(c, "22023", "SELECT auth.refresh_provider_keys('no-such-provider')")
    assert_sqlstate(c, "23514", "SELECT auth.add_identity_provider('Bad Name!', 'i', 'c')")


def test_an_existing_account_is_linked_by_email_only_when_allowed_and_verified(c, idp):
    address = email()
    uid = one(c, "SELECT auth.register(%s, 'a password 123')", (address,))
    key = idp.published[0]
    e = assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(key, email=address)))
    assert "not linked" in str(e)
    c.execute("UPDATE auth.identity_providers SET link_by_email = true WHERE name = %s", (idp.name,))
    assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)",
                    (idp.name, idp.id_token(key, email=address, email_verified=False)))
    assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)",
                    (idp.name, idp.id_token(key, email=address, email_verified="yes")))
    # The account's own address was never verified: whoever set its password did not prove it,
    # so the password and its sessions end when the provider's verified user links in.
    earlier = one(c, "SELECT auth.login(%s, 'a password 123')", (address,))
    linked = sign_in(c, idp, idp.id_token(key, email=address.upper()))
    assert linked["user_id"] == str(uid)
    assert one(c, "SELECT password_hash IS NULL AND email_verified FROM auth.users WHERE id = %s", (uid,)) is True
    assert_sqlstate(c, "PA017", "SELECT auth.authenticate(%s)", (earlier["token"],))
    # A verified account keeps its password.
    address2 = email()
    uid2 = one(c, "SELECT auth.register(%s, 'a password 123')", (address2,))
    c.execute("UPDATE auth.users SET email_verified = true WHERE id = %s", (uid2,))
    assert sign_in(c, idp, idp.id_token(key, email=address2))["user_id"] == str(uid2)
    assert one(c, "SELECT auth.login(%s, 'a password 123')", (address2,))["user_id"] == str(uid2)


def test_sign_up_off_and_tokens_without_email_are_refused(c, idp):
    key = idp.published[0]
    assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(key)))
    c.execute("UPDATE auth.identity_providers SET allow_sign_up = false WHERE name = %s", (idp.name,))
    e = assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(key, email=email())))
    assert "sign-up" in str(e)


def test_a_disabled_account_and_an_unverified_email_under_the_policy_get_no_session(c, idp):
    key, sub = idp.published[0], str(uuid.uuid4())
    uid = sign_in(c, idp, idp.id_token(key, sub=sub, email=email()))["user_id"]
    c.execute("SELECT auth.disable_user(%s)", (uid,))
    assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(key, sub=sub)))
    c.execute("SET pg_auth.require_verified_email = on")
    try:
        # Without link_by_email the provider's word on the address does not count.
        assert_sqlstate(c, "PA024", "SELECT auth.sign_in_with_id_token(%s, %s)",
                        (idp.name, idp.id_token(key, email=email())))
        c.execute("UPDATE auth.identity_providers SET link_by_email = true WHERE name = %s", (idp.name,))
        assert_sqlstate(c, "PA024", "SELECT auth.sign_in_with_id_token(%s, %s)",
                        (idp.name, idp.id_token(key, email=email(), email_verified=False)))
        assert sign_in(c, idp, idp.id_token(key, email=email()))["user_id"]
    finally:
        c.execute("RESET pg_auth.require_verified_email")


def test_a_signed_in_user_links_lists_and_unlinks_identities(c, idp):
    key = idp.published[0]
    me = one(c, "SELECT auth.register(%s, 'a password 123')", (email(),))
    session = one(c, "SELECT auth.login(email, 'a password 123') FROM auth.users WHERE id = %s", (me,))
    sub = str(uuid.uuid4())

    def as_me(sql, params=()):
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (session["token"],))
            c.execute("SET LOCAL ROLE NONE")
            return one(c, sql, params)

    assert as_me("SELECT auth.link_identity(%s, %s, 'n')", (idp.name, idp.id_token(key, sub=sub, nonce="n"))) == {
        "provider": idp.name, "subject": sub}
    assert as_me("SELECT count(*) FROM auth.my_identities() WHERE subject = %s", (sub,)) == 1
    assert sign_in(c, idp, idp.id_token(key, sub=sub))["user_id"] == str(me)
    # Someone else's identity cannot be taken over.
    theirs = str(uuid.uuid4())
    sign_in(c, idp, idp.id_token(key, sub=theirs, email=email()))
    with pytest.raises(psycopg.Error) as e:
        as_me("SELECT auth.link_identity(%s, %s)", (idp.name, idp.id_token(key, sub=theirs)))
    assert e.value.sqlstate == "PA027"
    assert as_me("SELECT auth.unlink_identity(%s)", (idp.name,)) is True
    assert as_me("SELECT count(*) FROM auth.my_identities()") == 0
    assert_sqlstate(c, "PA017", "SELECT auth.link_identity(%s, %s)", (idp.name, idp.id_token(key, sub=sub)))


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c", "x" * 100_000, "e30.e30.", "ey" * 10])
def test_hostile_tokens_get_documented_errors(c, idp, token):
    with pytest.raises(psycopg.Error) as e:
        c.execute("SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, token))
    assert e.value.sqlstate in ("PA001", "PA002", "22004"), e.value


def test_unknown_providers_and_read_only_transactions_are_refused(c, idp):
    assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token('no-such', 'x.y.z')")
    assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(NULL, 'x.y.z')")
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SET TRANSACTION READ ONLY")
            c.execute("SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, idp.id_token(idp.published[0], email=email())))
    assert e.value.sqlstate == "25006"


def test_keys_added_by_hand_must_be_public_signing_keys(c, idp):
    c.execute("SELECT auth.add_identity_provider('manual', %s, %s)", (idp.issuer, idp.client_id))
    try:
        key = SigningKey("manual-1", "ES256")
        c.execute("SELECT auth.add_provider_key('manual', %s)", (json.dumps(key.jwk),))
        token = idp.id_token(key, email=email())
        assert one(c, "SELECT auth.sign_in_with_id_token('manual', %s)", (token,))["provider"] == "manual"
        assert_sqlstate(c, "PA012", "SELECT auth.add_provider_key('manual', %s)",
                        (json.dumps({"kty": "oct", "kid": "s", "k": "c2VjcmV0" * 8}),))
        private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.private))
        assert_sqlstate(c, "PA012", "SELECT auth.add_provider_key('manual', %s)", (json.dumps(private),))
        assert_sqlstate(c, "22023", "SELECT auth.add_provider_key('no-such', %s)", (json.dumps(key.jwk),))
        assert_sqlstate(c, "22023", "SELECT auth.refresh_provider_keys('manual')")
    finally:
        c.execute("DELETE FROM auth.identity_providers WHERE name = 'manual'")


def test_identities_and_provider_keys_are_audited(c, idp):
    c.execute("SET pg_auth.audit = on")
    try:
        c.execute("TRUNCATE auth.audit_log")
        sub = str(uuid.uuid4())
        result = sign_in(c, idp, idp.id_token(idp.published[0], sub=sub, email=email()))
        idp.published = [SigningKey("k9", "ES256")]
        c.execute("UPDATE auth.identity_providers SET key_grace_period = '0' WHERE name = %s", (idp.name,))
        one(c, "SELECT auth.refresh_provider_keys(%s)", (idp.name,))
        c.execute("DELETE FROM auth.identities WHERE subject = %s", (sub,))
        rows = c.execute("SELECT event, user_id::text, detail FROM auth.audit_log ORDER BY id").fetchall()
    finally:
        c.execute("RESET pg_auth.audit")
    assert [r[0] for r in rows] == ["user_created", "identity_linked", "session_started",
                                    "provider_key_added", "provider_key_retired", "identity_unlinked"]
    by_event = {r[0]: r for r in rows}
    assert by_event["identity_linked"][1] == result["user_id"] and by_event["identity_linked"][2] == {"provider": idp.name}
    assert by_event["provider_key_added"][2] == {"provider": idp.name, "kid": "k9"}
    assert by_event["provider_key_retired"][2]["kid"] == "k1"


def test_an_id_token_signs_in_once(c, idp):
    token = idp.id_token(idp.published[0], email=email())
    assert sign_in(c, idp, token)["user_id"]
    e = assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, token))
    assert "used already" in str(e)
    # Tokens meant to live over a day are refused (they would have to be remembered that long).
    assert_sqlstate(c, "PA009", "SELECT auth.sign_in_with_id_token(%s, %s)",
                    (idp.name, idp.id_token(idp.published[0], email=email(), ttl=2 * 86400)))
    assert one(c, "SELECT count(*) FROM auth.used_id_tokens WHERE expires_at > now()") >= 1


def test_a_pre_registered_account_loses_every_way_in_its_maker_set_up(c, idp):
    """Live attack on 0.4.0: an attacker registered the victim's address, linked their own
    identity (or enrolled a second factor), and kept access after the victim's verified sign-in
    through a provider linked into that account."""
    c.execute("UPDATE auth.identity_providers SET link_by_email = true WHERE name = %s", (idp.name,))
    address = email()
    uid = one(c, "SELECT auth.register(%s, 'attacker password')", (address,))
    session = one(c, "SELECT auth.login(%s, 'attacker password')", (address,))
    attacker_sub = "attacker-" + uuid.uuid4().hex
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (session["token"],))
        c.execute("SET LOCAL ROLE NONE")
        one(c, "SELECT auth.link_identity(%s, %s)", (idp.name, idp.id_token(idp.published[0], sub=attacker_sub)))
        secret = one(c, "SELECT auth.enroll_totp() ->> 'secret'")
    victim = sign_in(c, idp, idp.id_token(idp.published[0], email=address))
    assert victim["user_id"] == str(uid)
    assert one(c, "SELECT count(*) FROM auth.identities WHERE user_id = %s", (uid,)) == 1
    assert one(c, "SELECT count(*) FROM auth.mfa_factors WHERE user_id = %s", (uid,)) == 0
    # The attacker's identity now signs up anew (no email: refused) instead of into the victim's account.
    assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)",
                    (idp.name, idp.id_token(idp.published[0], sub=attacker_sub)))
    assert secret


def test_addresses_alike_only_beyond_ascii_case_are_not_the_same_account(c, idp):
    """Live attack on 0.4.0: lower() folds U+0130 to i and U+212A to k, so a provider-verified
    "vİctim@…" signed into the account of "victim@…"."""
    c.execute("UPDATE auth.identity_providers SET link_by_email = true WHERE name = %s", (idp.name,))
    base = "kvictim" + uuid.uuid4().hex[:6]
    uid = one(c, "SELECT auth.register(%s, 'victim password 1')", (f"{base}@example.com",))
    c.execute("UPDATE auth.users SET email_verified = true WHERE id = %s", (uid,))
    for lookalike in (base.replace("i", "\u0130", 1), "\u212a" + base[1:]):
        lookalike = f"{lookalike}@example.com"
        assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)",
                        (idp.name, idp.id_token(idp.published[0], email=lookalike)))
    # Upper-case ASCII is the same address.
    assert sign_in(c, idp, idp.id_token(idp.published[0], email=f"{base.upper()}@EXAMPLE.COM"))["user_id"] == str(uid)


def test_a_key_with_a_keys_member_of_its_own_is_not_taken(c, idp):
    """Live attack on 0.4.0: the key stored was the outer one, the key that verified the inner."""
    honest, hidden = SigningKey("honest", "ES256"), SigningKey("hidden", "ES256")
    nested = {**honest.jwk, "keys": [hidden.jwk]}
    assert_sqlstate(c, "PA012", "SELECT auth.add_provider_key(%s, %s)", (idp.name, json.dumps(nested)))
    idp.body = json.dumps({"keys": [nested, idp.published[0].jwk]}).encode()
    assert one(c, "SELECT auth.refresh_provider_keys(%s) ->> 'keys'", (idp.name,)) == "1"
    value = one(c, "SELECT count(*) FROM auth.provider_keys WHERE provider = %s AND kid = 'honest'", (idp.name,))
    assert value == 0


def test_linking_needs_a_recent_sign_in_and_the_second_factor(c, idp):
    """Live attack on 0.4.0: a stolen cookie linked the thief's identity, which outlived the
    owner's password reset and the end of every session."""
    address = email()
    one(c, "SELECT auth.register(%s, 'owner password 1')", (address,))
    stolen = one(c, "SELECT auth.login(%s, 'owner password 1')", (address,))
    c.execute("UPDATE auth.sessions SET created_at = now() - interval '1 hour' WHERE id = %s", (stolen["session_id"],))
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (stolen["token"],))
            c.execute("SET LOCAL ROLE NONE")
            c.execute("SELECT auth.link_identity(%s, %s)", (idp.name, idp.id_token(idp.published[0], sub="thief")))
    assert e.value.sqlstate == "PA017" and "sign in again" in str(e.value)
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (stolen["token"],))
            c.execute("SET LOCAL ROLE NONE")
            c.execute("SELECT auth.request_email_change('thief@evil.example')")
    assert e.value.sqlstate == "PA017"


def test_the_last_way_in_cannot_be_unlinked(c, idp):
    sub = str(uuid.uuid4())
    session = sign_in(c, idp, idp.id_token(idp.published[0], sub=sub, email=email()))
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (session["token"],))
            c.execute("SET LOCAL ROLE NONE")
            c.execute("SELECT auth.unlink_identity(%s)", (idp.name,))
    assert e.value.sqlstate == "PA027" and "last way" in str(e.value)
    assert one(c, "SELECT count(*) FROM auth.identities WHERE subject = %s", (sub,)) == 1


@pytest.mark.parametrize("claims", [{"sub": "a\u0000b"}, {"email": "a\u0000@b.c"}, {"email": "a@"}])
def test_odd_subjects_and_addresses_get_pg_auth_errors(c, idp, claims):
    claims = {k: v.encode().decode("unicode_escape") for k, v in claims.items()}
    token = idp.id_token(idp.published[0], **({"email": email()} | claims))
    try:
        result = one(c, "SELECT auth.sign_in_with_id_token(%s, %s)", (idp.name, token))
    except psycopg.Error as e:
        assert e.sqlstate in ("PA009", "PA027"), e
    else:
        raise AssertionError(f"signed in with {claims!r}: {result!r}")


def test_a_provider_answering_one_byte_at_a_time_is_given_up_after_ten_seconds(c, idp):
    """Live attack on 0.4.0: ureq's timeouts bound each wait, not the whole answer; a JWKS sent a
    byte every half second held a backend (and the worker) for as long as the provider liked."""
    import time
    idp.drip = 0.5
    started = time.monotonic()
    result = one(c, "SELECT auth.refresh_provider_keys(%s)", (idp.name,))
    assert "within 10 seconds" in result["error"]
    assert time.monotonic() - started < 13
    assert one(c, "SELECT count(*) FROM auth.provider_keys WHERE provider = %s AND retired_at IS NULL", (idp.name,)) == 1


def test_an_ecdsa_token_respelled_is_still_the_same_token(c, idp):
    """Re-check on 0.4.0: (r, s) and (r, n - s) are both valid ECDSA signatures; the used-token
    list was keyed by the token's text, so the second spelling signed in again."""
    key = SigningKey("es-once", "ES256")
    idp.published = [key]
    one(c, "SELECT auth.refresh_provider_keys(%s)", (idp.name,))
    token = idp.id_token(key, email=email())
    assert sign_in(c, idp, token)["user_id"]
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    respelled = base64.urlsafe_b64encode(r + (n - s).to_bytes(32, "big")).rstrip(b"=").decode()
    e = assert_sqlstate(c, "PA027", "SELECT auth.sign_in_with_id_token(%s, %s)",
                        (idp.name, f"{header}.{payload}.{respelled}"))
    assert "used already" in str(e)
    # Remembered while the token verifies: its exp plus the leeway.
    kept = one(c, "SELECT max(expires_at) - now() FROM auth.used_id_tokens")
    assert kept.total_seconds() > 300
