"""Interoperability with PyJWT for all twelve algorithms, both directions, and RFC 7515 A.1."""

import json

import jwt
import pytest

from conftest import assert_sqlstate, one
from jwtutil import (
    ALGORITHMS,
    KeySet,
    b64url,
    b64url_decode,
    make_token,
    now,
    oct_jwk,
    public_pem,
)

RSA_FAMILY = [a for a in ALGORITHMS if a[:2] in ("RS", "PS")]
ASYMMETRIC = [a for a in ALGORITHMS if not a.startswith("HS")]


@pytest.fixture(scope="module")
def keys():
    return KeySet()


@pytest.fixture(scope="module")
def other_keys():
    other = KeySet()
    other.secrets = {alg: secret[::-1] for alg, secret in other.secrets.items()}
    return other


def sample_claims(**extra):
    t = now()
    claims = {
        "sub": "user-42",
        "role": "web_user",
        "iat": t,
        "nbf": t - 5,
        "exp": t + 3600,
        "email": "jürgen@example.org",
        "name": "Zoë ☃ 😀 \"quoted\" \\ back",
        "scopes": ["read", "write"],
        "org": {"id": 7, "admin": False, "tags": None},
        "ratio": 0.25,
        "big": 9007199254740993,
    }
    claims.update(extra)
    return claims


def tamper_payload(token, **changes):
    """Same header and signature, a different payload: must never verify."""
    h, p, s = token.split(".")
    payload = json.loads(b64url_decode(p))
    payload.update(changes)
    return ".".join([h, b64url(json.dumps(payload).encode()), s])


def pyjwt_decode(token, key, alg):
    return jwt.decode(token, key, algorithms=[alg], options={"verify_aud": False}, leeway=5)


# ---- (a) PyJWT signs, pg_auth verifies ---------------------------------------------------------

@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_token_verifies_with_pem_or_secret(conn, keys, alg):
    claims = sample_claims()
    token = jwt.encode(claims, keys.private(alg), algorithm=alg)
    # A secret is taken as one only when the algorithm is named; PEM describes itself.
    options = json.dumps({"algorithms": [alg]})
    got = one(conn, "SELECT auth.verify_jwt(%s, %s, %s)", (token, keys.pg_public_pem(alg), options))
    assert got == claims
    # The same key must refuse the same signature over other claims.
    assert_sqlstate(conn, "PA003", "SELECT auth.verify_jwt(%s, %s, %s)",
                    (tamper_payload(token, role="admin"), keys.pg_public_pem(alg), options))


@pytest.mark.parametrize("with_alg", [True, False], ids=["jwk-alg", "jwk-no-alg"])
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_token_verifies_with_jwk(conn, keys, alg, with_alg):
    claims = sample_claims(jti=f"jwk-{alg}")
    token = jwt.encode(claims, keys.private(alg), algorithm=alg)
    jwk = json.dumps(keys.pg_jwk(alg, with_alg=with_alg))
    got = one(conn, "SELECT auth.verify_jwt(%s, %s)", (token, jwk))
    assert got == claims
    assert_sqlstate(conn, "PA003", "SELECT auth.verify_jwt(%s, %s)",
                    (tamper_payload(token, sub="someone-else"), jwk))


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_pyjwt_token_verifies_with_jwks_where_kid_picks_the_key(conn, keys, alg):
    claims = sample_claims()
    token = jwt.encode(claims, keys.private(alg), algorithm=alg, headers={"kid": f"ours-{alg}"})
    decoy_alg = "ES256" if alg != "ES256" else "EdDSA"  # another family's key listed first
    jwks = {"keys": [keys.pg_jwk(decoy_alg, kid=f"decoy-{alg}"), keys.pg_jwk(alg, kid=f"ours-{alg}")]}
    got = one(conn, "SELECT auth.verify_jwt(%s, %s)", (token, json.dumps(jwks)))
    assert got == claims
    # A kid the JWKS does not list is PA010, even though the right key is in it.
    other = jwt.encode(claims, keys.private(alg), algorithm=alg, headers={"kid": "not-listed"})
    assert_sqlstate(conn, "PA010", "SELECT auth.verify_jwt(%s, %s)", (other, json.dumps(jwks)))


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_pyjwt_token_verifies_with_the_private_pem_too(conn, keys, alg):
    claims = sample_claims()
    token = jwt.encode(claims, keys.private(alg), algorithm=alg)
    got = one(conn, "SELECT auth.verify_jwt(%s, %s)", (token, keys.pg_private_pem(alg)))
    assert got == claims


@pytest.mark.parametrize("alg", RSA_FAMILY)
def test_pyjwt_rsa_token_verifies_with_pkcs1_public_pem(conn, keys, alg):
    claims = sample_claims()
    token = jwt.encode(claims, keys.rsa, algorithm=alg)
    pem = public_pem(keys.rsa, "pkcs1")
    assert pem.startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert one(conn, "SELECT auth.verify_jwt(%s, %s)", (token, pem)) == claims


# ---- (b) pg_auth signs, PyJWT verifies ---------------------------------------------------------

SIGN_FORMATS = [(a, "pkcs8") for a in ALGORITHMS] + [(a, "traditional") for a in RSA_FAMILY + ["ES256", "ES384"]]


@pytest.mark.parametrize("alg,fmt", SIGN_FORMATS, ids=[f"{a}-{f}" for a, f in SIGN_FORMATS])
def test_pg_auth_token_with_explicit_key_verifies_in_pyjwt(conn, keys, other_keys, alg, fmt):
    claims = sample_claims()
    pem = keys.pg_private_pem(alg, fmt)
    if fmt == "traditional":
        tag = "RSA PRIVATE KEY" if alg[:2] in ("RS", "PS") else "EC PRIVATE KEY"
        assert pem.startswith(f"-----BEGIN {tag}-----")
    token = one(conn, "SELECT auth.sign_jwt(%s::jsonb, %s, %s)", (json.dumps(claims), pem, alg))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    assert header.get("typ") == "JWT"
    assert "kid" not in header
    verify_key = keys.secrets[alg] if alg.startswith("HS") else keys.public(alg)
    assert pyjwt_decode(token, verify_key, alg) == claims
    # PyJWT must refuse it under another key of the same kind: the signature is real.
    wrong = other_keys.secrets[alg] if alg.startswith("HS") else other_keys.public(alg)
    with pytest.raises(jwt.InvalidSignatureError):
        pyjwt_decode(token, wrong, alg)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_pg_auth_token_signed_with_oct_jwk_verifies_in_pyjwt(conn, keys, alg):
    claims = sample_claims()
    secret = keys.secrets[alg].encode()
    jwk = json.dumps(oct_jwk(secret, alg=alg, kid=f"oct-{alg}"))
    token = one(conn, "SELECT auth.sign_jwt(%s::jsonb, %s)", (json.dumps(claims), jwk))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"] == f"oct-{alg}"
    assert pyjwt_decode(token, secret, alg) == claims


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_secret_default_and_explicit_algorithm(conn, keys, alg):
    secret = keys.secrets["HS512"]
    token = one(conn, "SELECT auth.sign_jwt('{\"a\": 1}'::jsonb, %s, %s)", (secret, alg))
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert pyjwt_decode(token, secret, alg) == {"a": 1}
    default = one(conn, "SELECT auth.sign_jwt('{\"a\": 1}'::jsonb, %s)", (secret,))
    assert jwt.get_unverified_header(default)["alg"] == "HS256"


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_ring_key_token_verifies_in_pyjwt(conn, alg):
    kid = f"interop-ring-{alg}"
    assert one(conn, "SELECT auth.generate_key(%s, %s)", (alg, kid)) == kid
    try:
        claims = sample_claims(ring=alg)
        token = one(conn, "SELECT auth.sign_jwt(%s::jsonb)", (json.dumps(claims),))
        header = jwt.get_unverified_header(token)
        assert header["kid"] == kid, "the newest active key signs"
        assert header["alg"] == alg
        published = {k["kid"]: k for k in one(conn, "SELECT auth.jwks()")["keys"]}
        if alg.startswith("HS"):
            # HMAC secrets are never published; the owner reads the secret from auth.keys.
            assert kid not in published
            secret = one(conn, "SELECT secret FROM auth.keys WHERE kid = %s", (kid,))
            assert len(secret) >= 32
            verify_key = secret
        else:
            jwk = published[kid]
            assert jwk["alg"] == alg and jwk["use"] == "sig"
            assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk), "private members published"
            verify_key = jwt.PyJWK(jwk).key
        assert pyjwt_decode(token, verify_key, alg) == claims
        # Round trip in pg_auth too, by the ring and by the published key.
        assert one(conn, "SELECT auth.verify_jwt(%s)", (token,)) == claims
        if not alg.startswith("HS"):
            assert one(conn, "SELECT auth.verify_jwt(%s, %s)", (token, json.dumps(published[kid]))) == claims
    finally:
        conn.execute("SELECT auth.retire_key(%s)", (kid,))
    assert_sqlstate(conn, "PA010", "SELECT auth.verify_jwt(%s)", (token,))


# ---- RFC 7515 appendix A.1 -------------------------------------------------------------------

RFC_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
RFC_JWK = {
    "kty": "oct",
    "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
}


def test_rfc7515_a1_vector_is_sound():
    # Independent check of the vector itself: PyJWT accepts its signature under the RFC key.
    claims = jwt.decode(RFC_TOKEN, b64url_decode(RFC_JWK["k"]), algorithms=["HS256"],
                        options={"verify_exp": False})
    assert claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}


def test_rfc7515_a1_decodes_unverified(conn):
    got = one(conn, "SELECT auth.decode_jwt_unverified(%s)", (RFC_TOKEN,))
    assert got == {
        "header": {"typ": "JWT", "alg": "HS256"},
        "payload": {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True},
    }


def test_rfc7515_a1_good_signature_but_expired(conn):
    # PA004 is only reached after the signature checked out: with the right key the token is
    # refused as expired, with a wrong key as badly signed.
    assert_sqlstate(conn, "PA004", "SELECT auth.verify_jwt(%s, %s)", (RFC_TOKEN, json.dumps(RFC_JWK)))
    wrong = dict(RFC_JWK, k=b64url(b"\x01" * 64))
    assert_sqlstate(conn, "PA003", "SELECT auth.verify_jwt(%s, %s)", (RFC_TOKEN, json.dumps(wrong)))
    flipped = RFC_TOKEN[:-6] + ("A" if RFC_TOKEN[-6] != "A" else "B") + RFC_TOKEN[-5:]
    assert_sqlstate(conn, "PA003", "SELECT auth.verify_jwt(%s, %s)", (flipped, json.dumps(RFC_JWK)))


def test_rfc7515_a1_leeway_cannot_revive_it(conn):
    jwk = json.dumps(RFC_JWK)
    # The largest leeway allowed (7 days) is far short of 2011.
    assert_sqlstate(conn, "PA004", "SELECT auth.verify_jwt(%s, %s, %s)", (RFC_TOKEN, jwk, '{"leeway": 604800}'))
    # A leeway that would cover it is refused as an argument.
    huge = now() - 1300819380 + 3600
    assert_sqlstate(conn, "22023", "SELECT auth.verify_jwt(%s, %s, %s)",
                    (RFC_TOKEN, jwk, json.dumps({"leeway": huge})))
    assert_sqlstate(conn, "22023", "SELECT auth.verify_jwt(%s, %s, %s)", (RFC_TOKEN, jwk, '{"leeway": 604801}'))


def test_rfc7515_a1_key_resigned_fresh_verifies(conn):
    # The RFC key itself is usable: a fresh token under it (made in Python) verifies.
    key = b64url_decode(RFC_JWK["k"])
    claims = {"iss": "joe", "exp": now() + 600, "http://example.com/is_root": True}
    token = make_token({"typ": "JWT", "alg": "HS256"}, claims, key)
    assert one(conn, "SELECT auth.verify_jwt(%s, %s)", (token, json.dumps(RFC_JWK))) == claims
