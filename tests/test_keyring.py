"""The key ring across connections: rotation seen by other backends without reconnecting,
permissions of an unprivileged role, and keys imported from outside (JWKS, PEM)."""

import json
import uuid

import jwt
import psycopg
import pytest

from conftest import assert_sqlstate, connect, ensure_role, one
from jwtutil import (
    ec_key,
    ed_key,
    make_token,
    now,
    private_pem,
    public_jwk,
    public_pem,
    rsa_key,
    thumbprint,
)


def kid_of(token):
    return jwt.get_unverified_header(token).get("kid")


def ring_sign(c, claims):
    return one(c, "SELECT auth.sign_jwt(%s::jsonb)", (json.dumps(claims),))


def published(c):
    return {k["kid"]: k for k in one(c, "SELECT auth.jwks()")["keys"]}


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def py_keys():
    return {"rsa": rsa_key(), "rsa2": rsa_key(), "ec": ec_key("ES256"), "ed": ed_key()}


# ---- rotation across connections ---------------------------------------------------------------

def test_rotation_by_one_connection_is_seen_by_another_without_reconnect(new_conn):
    a, b = new_conn(), new_conn()
    pid_a = one(a, "SELECT pg_backend_pid()")
    assert pid_a != one(b, "SELECT pg_backend_pid()")
    old, new = unique("rot-old"), unique("rot-new")

    assert one(b, "SELECT auth.generate_key('ES256', %s)", (old,)) == old
    claims_old = {"sub": "alice", "exp": now() + 600}
    t_old = ring_sign(b, claims_old)
    assert kid_of(t_old) == old

    # A verifies (and so caches the ring) and publishes the old key.
    assert one(a, "SELECT auth.verify_jwt(%s)", (t_old,)) == claims_old
    assert old in published(a)

    # B rotates: a new key signs from now on, the old one is retired.
    assert one(b, "SELECT auth.generate_key('EdDSA', %s)", (new,)) == new
    b.execute("SELECT auth.retire_key(%s)", (old,))
    claims_new = {"sub": "alice", "exp": now() + 600, "gen": 2}
    t_new = ring_sign(b, claims_new)
    assert kid_of(t_new) == new

    # A's very next calls, on the same backend, see the change.
    err = assert_sqlstate(a, "PA010", "SELECT auth.verify_jwt(%s)", (t_old,))
    assert old in str(err)
    assert one(a, "SELECT auth.verify_jwt(%s)", (t_new,)) == claims_new
    jwks_a = published(a)
    assert new in jwks_a and old not in jwks_a
    assert jwks_a[new]["alg"] == "EdDSA" and jwks_a[new]["kty"] == "OKP"
    assert one(a, "SELECT pg_backend_pid()") == pid_a, "A must not have reconnected"
    # The JWKS A publishes is enough for a third party to verify the new token.
    assert jwt.decode(t_new, jwt.PyJWK(jwks_a[new]).key, algorithms=["EdDSA"]) == claims_new
    # And B sees the same.
    assert_sqlstate(b, "PA010", "SELECT auth.verify_jwt(%s)", (t_old,))
    assert published(b).keys() == jwks_a.keys()


def test_future_retirement_and_preannounced_keys(new_conn):
    a, admin = new_conn(), new_conn()
    current, pre = unique("cur"), unique("pre")
    admin.execute("SELECT auth.generate_key('ES256', %s)", (current,))
    t = ring_sign(admin, {"sub": "bob"})
    assert one(a, "SELECT auth.verify_jwt(%s)", (t,)) == {"sub": "bob"}

    # A key announced for tomorrow is published and verifies at once, but does not sign yet.
    admin.execute("SELECT auth.generate_key('ES384', %s, now() + interval '1 day')", (pre,))
    assert pre in published(a)
    assert kid_of(ring_sign(admin, {"sub": "bob"})) == current
    pre_pem = one(admin, "SELECT secret FROM auth.keys WHERE kid = %s", (pre,))
    elsewhere = jwt.encode({"sub": "carol"}, pre_pem, algorithm="ES384", headers={"kid": pre})
    assert one(a, "SELECT auth.verify_jwt(%s)", (elsewhere,)) == {"sub": "carol"}

    # Retiring in an hour changes nothing yet; retiring now does.
    admin.execute("SELECT auth.retire_key(%s, now() + interval '1 hour')", (current,))
    assert one(a, "SELECT auth.verify_jwt(%s)", (t,)) == {"sub": "bob"}
    admin.execute("SELECT auth.retire_key(%s)", (current,))
    assert_sqlstate(a, "PA010", "SELECT auth.verify_jwt(%s)", (t,))
    admin.execute("SELECT auth.retire_key(%s)", (pre,))
    assert_sqlstate(a, "PA010", "SELECT auth.verify_jwt(%s)", (elsewhere,))
    assert pre not in published(a)


def test_empty_ring_cannot_sign_and_uncommitted_changes_stay_private(new_conn):
    a = new_conn()
    kid = unique("keep")
    a.execute("SELECT auth.generate_key('HS256', %s)", (kid,))
    token = ring_sign(a, {"sub": "dave"})
    n_keys = one(a, "SELECT count(*) FROM auth.keys")

    tx = psycopg.connect(a.info.dsn)  # not autocommit: one open transaction
    try:
        tx.execute("DELETE FROM auth.keys")
        # Inside the transaction the ring is empty at once.
        assert_sqlstate(tx, "PA013", "SELECT auth.sign_jwt('{}'::jsonb)")
        tx.rollback()
        tx.execute("DELETE FROM auth.keys")
        assert_sqlstate(tx, "PA010", "SELECT auth.verify_jwt(%s)", (token,))
        tx.rollback()
        tx.execute("DELETE FROM auth.keys")
        assert one(tx, "SELECT auth.jwks()") == {"keys": []}
        # Another backend does not see the uncommitted delete.
        assert one(a, "SELECT auth.verify_jwt(%s)", (token,)) == {"sub": "dave"}
        tx.rollback()
        # After the rollback the same backend signs and verifies again.
        assert kid_of(one(tx, "SELECT auth.sign_jwt('{}'::jsonb)")) == kid
        assert one(tx, "SELECT auth.verify_jwt(%s)", (token,)) == {"sub": "dave"}
        tx.rollback()
    finally:
        tx.close()
    assert one(a, "SELECT count(*) FROM auth.keys") == n_keys


def test_retired_key_readded_verifies_again(conn, py_keys):
    kid = unique("readd")
    pem = public_pem(py_keys["ec"])
    assert one(conn, "SELECT auth.add_key(%s, %s)", (pem, kid)) == kid
    token = jwt.encode({"sub": "eve"}, py_keys["ec"], algorithm="ES256", headers={"kid": kid})
    assert one(conn, "SELECT auth.verify_jwt(%s)", (token,)) == {"sub": "eve"}
    conn.execute("SELECT auth.retire_key(%s)", (kid,))
    assert_sqlstate(conn, "PA010", "SELECT auth.verify_jwt(%s)", (token,))
    assert one(conn, "SELECT auth.add_key(%s, %s)", (pem, kid)) == kid
    assert one(conn, "SELECT retire_after IS NULL FROM auth.keys WHERE kid = %s", (kid,))
    assert one(conn, "SELECT auth.verify_jwt(%s)", (token,)) == {"sub": "eve"}


# ---- an unprivileged role ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def anon_setup(database):
    with connect() as admin:
        ensure_role(admin, "web_anon")
        assert not one(admin, "SELECT rolcanlogin OR rolsuper FROM pg_roles WHERE rolname = 'web_anon'")
        kid = unique("anon")
        admin.execute("SELECT auth.generate_key('ES256', %s)", (kid,))
        claims = {"sub": "anon-user", "role": "web_anon", "exp": now() + 600}
        token = ring_sign(admin, claims)
        assert kid_of(token) == kid
        return kid, token, claims


def anon_conn():
    """A brand-new backend (cold ring cache) that becomes web_anon before touching pg_auth."""
    c = connect()
    c.execute("SET ROLE web_anon")
    assert one(c, "SELECT current_user") == "web_anon"
    return c


@pytest.mark.parametrize("first_call", ["verify_jwt", "jwks"])
def test_web_anon_verifies_with_a_cold_cache_but_cannot_read_or_manage(anon_setup, first_call):
    kid, token, claims = anon_setup
    with anon_conn() as c:
        if first_call == "verify_jwt":
            assert one(c, "SELECT auth.verify_jwt(%s)", (token,)) == claims
        jwks = published(c)
        assert kid in jwks
        assert jwks[kid]["alg"] == "ES256"
        for key in jwks.values():
            assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key), "private material published"
        assert one(c, "SELECT auth.verify_jwt(%s)", (token,)) == claims
        # Loading the ring as its owner must give the caller's identity back.
        assert one(c, "SELECT current_user") == "web_anon"

        assert_sqlstate(c, "42501", "SELECT * FROM auth.keys")
        assert_sqlstate(c, "42501", "SELECT secret FROM auth.keys WHERE kid = %s", (kid,))
        assert_sqlstate(c, "42501", "SELECT * FROM auth.key_ring")
        assert_sqlstate(c, "42501", "SELECT auth.sign_jwt('{\"role\": \"postgres\"}'::jsonb)")
        assert_sqlstate(c, "42501", "SELECT auth.generate_key('ES256')")
        assert_sqlstate(c, "42501", "SELECT auth.add_key(%s)", ("x" * 40,))
        assert_sqlstate(c, "42501", "SELECT auth.add_jwks('{\"keys\": []}'::jsonb)")
        assert_sqlstate(c, "42501", "SELECT auth.retire_key(%s)", (kid,))
        assert_sqlstate(c, "42501", "DELETE FROM auth.keys")
        assert_sqlstate(c, "42501", "UPDATE auth.keys SET retire_after = now()")
        assert_sqlstate(c, "42501", "INSERT INTO auth.keys (kid, algorithm, secret) VALUES ('evil', 'HS256', %s)",
                        ("e" * 40,))

        # Still fine afterwards; PUBLIC functions stay usable.
        assert one(c, "SELECT auth.verify_jwt(%s)", (token,)) == claims
        assert one(c, "SELECT auth.decode_jwt_unverified(%s) -> 'header' ->> 'kid'", (token,)) == kid
        own = one(c, "SELECT auth.sign_jwt('{\"sub\": \"x\"}'::jsonb, %s)", ("s" * 40,))
        assert one(c, "SELECT auth.verify_jwt(%s, %s, '{\"algorithms\": [\"HS256\"]}')", (own, "s" * 40)) == {"sub": "x"}
        assert one(c, "SELECT current_user") == "web_anon"


def test_web_anon_sees_rotation_too(anon_setup, new_conn):
    kid, token, claims = anon_setup
    admin = new_conn()
    with anon_conn() as c:
        assert one(c, "SELECT auth.verify_jwt(%s)", (token,)) == claims
        other = unique("anon2")
        admin.execute("SELECT auth.generate_key('EdDSA', %s)", (other,))
        t2 = ring_sign(admin, {"sub": "next"})
        assert one(c, "SELECT auth.verify_jwt(%s)", (t2,)) == {"sub": "next"}
        admin.execute("SELECT auth.retire_key(%s)", (other,))
        assert_sqlstate(c, "PA010", "SELECT auth.verify_jwt(%s)", (t2,))
        assert one(c, "SELECT current_user") == "web_anon"


# ---- external keys -----------------------------------------------------------------------------

def test_add_jwks_then_pyjwt_tokens_verify_by_kid(py_keys, new_conn):
    admin, warm = new_conn(), new_conn()
    signer = unique("signer")
    admin.execute("SELECT auth.generate_key('ES256', %s)", (signer,))
    rsa_kid, ec_kid, noalg_kid, enc_kid = unique("ext-rsa"), unique("ext-ec"), unique("ext-noalg"), unique("ext-enc")
    jwks = {"keys": [
        public_jwk(py_keys["rsa"], alg="RS256", kid=rsa_kid),
        dict(public_jwk(py_keys["ec"], alg="ES256", kid=ec_kid), use="sig"),
        public_jwk(py_keys["rsa2"], kid=noalg_kid),
        dict(public_jwk(py_keys["ed"], kid=enc_kid), use="enc"),
    ]}
    rs_token = jwt.encode({"sub": "ext-1", "exp": now() + 600}, py_keys["rsa"], algorithm="RS256",
                          headers={"kid": rsa_kid})
    # A warm backend refuses it before the import...
    assert_sqlstate(warm, "PA010", "SELECT auth.verify_jwt(%s)", (rs_token,))

    kids = [r[0] for r in admin.execute("SELECT * FROM auth.add_jwks(%s::jsonb)", (json.dumps(jwks),))]
    assert sorted(kids) == sorted([rsa_kid, ec_kid, noalg_kid]), "encryption keys must be skipped"
    rows = admin.execute(
        "SELECT kid, algorithm, secret IS NULL, origin FROM auth.keys WHERE kid = ANY(%s) ORDER BY kid",
        (kids,)).fetchall()
    assert {r[0]: r[1] for r in rows} == {rsa_kid: "RS256", ec_kid: "ES256", noalg_kid: "RS256"}
    assert all(r[2] and r[3] == "imported" for r in rows)

    # ...and accepts it right after, on the same backend.
    assert one(warm, "SELECT auth.verify_jwt(%s)", (rs_token,))["sub"] == "ext-1"
    cold = new_conn()
    for c in (warm, cold):
        es_claims = {"sub": "ext-2", "iat": now(), "exp": now() + 600, "aud": "api"}
        es_token = jwt.encode(es_claims, py_keys["ec"], algorithm="ES256", headers={"kid": ec_kid})
        assert one(c, "SELECT auth.verify_jwt(%s, NULL, %s::jsonb)", (es_token, '{"audience": "api"}')) == es_claims
        noalg = jwt.encode({"sub": "ext-3"}, py_keys["rsa2"], algorithm="RS256", headers={"kid": noalg_kid})
        assert one(c, "SELECT auth.verify_jwt(%s)", (noalg,)) == {"sub": "ext-3"}
        # Only the key's one algorithm, only the key itself, only listed signing keys.
        ps = jwt.encode({"sub": "x"}, py_keys["rsa"], algorithm="PS256", headers={"kid": rsa_kid})
        assert_sqlstate(c, "PA011", "SELECT auth.verify_jwt(%s)", (ps,))
        ps2 = jwt.encode({"sub": "x"}, py_keys["rsa2"], algorithm="PS256", headers={"kid": noalg_kid})
        assert_sqlstate(c, "PA011", "SELECT auth.verify_jwt(%s)", (ps2,))
        forged = jwt.encode({"sub": "x"}, py_keys["rsa2"], algorithm="RS256", headers={"kid": rsa_kid})
        assert_sqlstate(c, "PA003", "SELECT auth.verify_jwt(%s)", (forged,))
        enc = jwt.encode({"sub": "x"}, py_keys["ed"], algorithm="EdDSA", headers={"kid": enc_kid})
        assert_sqlstate(c, "PA010", "SELECT auth.verify_jwt(%s)", (enc,))

    pub = published(admin)
    assert pub[rsa_kid]["n"] == jwks["keys"][0]["n"] and pub[ec_kid]["x"] == jwks["keys"][1]["x"]
    assert enc_kid not in pub
    # Imported public keys never sign.
    assert kid_of(ring_sign(admin, {"sub": "s"})) == signer

    # Re-importing the same JWKS refreshes, it does not duplicate.
    n = one(admin, "SELECT count(*) FROM auth.keys")
    again = [r[0] for r in admin.execute("SELECT * FROM auth.add_jwks(%s::jsonb)", (json.dumps(jwks),))]
    assert sorted(again) == sorted(kids)
    assert one(admin, "SELECT count(*) FROM auth.keys") == n


def test_add_key_public_pem_with_thumbprint_kid(py_keys, conn):
    pem = public_pem(py_keys["ed"])
    expected_kid = thumbprint(public_jwk(py_keys["ed"]))
    assert one(conn, "SELECT auth.add_key(%s)", (pem,)) == expected_kid
    token = jwt.encode({"sub": "pem-ed"}, py_keys["ed"], algorithm="EdDSA", headers={"kid": expected_kid})
    assert one(conn, "SELECT auth.verify_jwt(%s)", (token,)) == {"sub": "pem-ed"}
    row = conn.execute("SELECT algorithm, secret, public_jwk FROM auth.keys WHERE kid = %s", (expected_kid,)).fetchone()
    assert row[0] == "EdDSA" and row[1] is None
    assert row[2]["x"] == public_jwk(py_keys["ed"])["x"]
    assert published(conn)[expected_kid]["crv"] == "Ed25519"


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "RS256"])
def test_generate_key_default_kid_is_the_rfc7638_thumbprint(conn, alg):
    kid = one(conn, "SELECT auth.generate_key(%s)", (alg,))
    try:
        jwk = published(conn)[kid]
        assert jwk["alg"] == alg
        assert kid == thumbprint(jwk)
    finally:
        conn.execute("SELECT auth.retire_key(%s)", (kid,))


def test_add_key_public_pem_with_kid_and_algorithm(py_keys, new_conn):
    admin, other = new_conn(), new_conn()
    kid = unique("pem-rsa")
    assert one(admin, "SELECT auth.add_key(%s, %s, 'PS384')", (public_pem(py_keys["rsa"], "pkcs1"), kid)) == kid
    claims = {"sub": "pem-rsa", "exp": now() + 600}
    token = jwt.encode(claims, py_keys["rsa"], algorithm="PS384", headers={"kid": kid})
    assert one(other, "SELECT auth.verify_jwt(%s)", (token,)) == claims
    rs = jwt.encode(claims, py_keys["rsa"], algorithm="RS256", headers={"kid": kid})
    assert_sqlstate(other, "PA011", "SELECT auth.verify_jwt(%s)", (rs,))
    # The RSA public key as an HMAC secret under its own kid: the classic confusion attack.
    hs_token = _hs256_with_raw_secret(claims, public_pem(py_keys["rsa"], "pkcs1").encode(), kid)
    assert_sqlstate(other, "PA011", "SELECT auth.verify_jwt(%s)", (hs_token,))
    # Re-adding the kid with another key replaces it, for every backend.
    assert one(admin, "SELECT auth.add_key(%s, %s, 'PS384')", (public_pem(py_keys["rsa2"]), kid)) == kid
    assert_sqlstate(other, "PA003", "SELECT auth.verify_jwt(%s)", (token,))
    token2 = jwt.encode(claims, py_keys["rsa2"], algorithm="PS384", headers={"kid": kid})
    assert one(other, "SELECT auth.verify_jwt(%s)", (token2,)) == claims


def _hs256_with_raw_secret(claims, secret, kid):
    """HS256 with any bytes as the secret (PyJWT refuses PEM-looking HMAC keys on purpose)."""
    return make_token({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, secret)


def test_add_key_private_pem_signs_for_the_ring(py_keys, conn):
    fallback, kid = unique("fallback"), unique("pem-priv")
    conn.execute("SELECT auth.generate_key('EdDSA', %s)", (fallback,))
    assert one(conn, "SELECT auth.add_key(%s, %s)", (private_pem(py_keys["ec"], "traditional"), kid)) == kid
    assert one(conn, "SELECT secret IS NOT NULL AND origin = 'imported' FROM auth.keys WHERE kid = %s", (kid,))
    claims = {"sub": "priv", "exp": now() + 600}
    token = ring_sign(conn, claims)
    assert kid_of(token) == kid, "the newest active key signs"
    assert jwt.decode(token, py_keys["ec"].public_key(), algorithms=["ES256"]) == claims
    conn.execute("SELECT auth.retire_key(%s)", (kid,))
    assert kid_of(ring_sign(conn, claims)) == fallback
    conn.execute("SELECT auth.retire_key(%s)", (fallback,))


def test_add_key_hmac_secret_verifies_but_is_never_published(conn):
    kid, secret = unique("hmac"), "h" * 24 + uuid.uuid4().hex
    assert one(conn, "SELECT auth.add_key(%s, %s, 'HS384')", (secret, kid)) == kid
    token = jwt.encode({"sub": "hm"}, secret, algorithm="HS384", headers={"kid": kid})
    assert one(conn, "SELECT auth.verify_jwt(%s)", (token,)) == {"sub": "hm"}
    assert kid not in published(conn)
    assert secret not in json.dumps(one(conn, "SELECT auth.jwks()"))
    hs256 = jwt.encode({"sub": "hm"}, secret, algorithm="HS256", headers={"kid": kid})
    assert_sqlstate(conn, "PA011", "SELECT auth.verify_jwt(%s)", (hs256,))
    conn.execute("SELECT auth.retire_key(%s)", (kid,))
