"""Hostile input: a corpus of malicious or broken tokens, keys and options.

Every case must fail with one exact SQLSTATE, and afterwards the very same connection must still
answer (same backend pid: the backend neither crashed nor was replaced). All cases share one
connection, so a crash anywhere shows up as a pid change or a dead connection in the next case.
"""

import base64
import json
from dataclasses import dataclass

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, x25519

from conftest import assert_sqlstate, connect, one
from jwtutil import (
    b64url,
    b64url_decode,
    ec_key,
    ed_key,
    js,
    make_token,
    now,
    private_pem,
    public_jwk,
    public_pem,
    rsa_key,
    sign_raw,
)

# ---- key material ----------------------------------------------------------------------------

SECRET = "hostile-secret-0123456789abcdef-0123456789"
OTHER_SECRET = SECRET[::-1]
RSA = rsa_key()
ATTACKER_RSA = rsa_key()
EC256 = ec_key("ES256")
EC384 = ec_key("ES384")
ED = ed_key()
RSA_PUB_PEM = public_pem(RSA)
RSA_PUB_PKCS1 = public_pem(RSA, "pkcs1")
RSA_PRIV_PEM = private_pem(RSA)
RSA_JWK = public_jwk(RSA)
EC256_PUB_PEM = public_pem(EC256)
EC384_PUB_PEM = public_pem(EC384)
ED_PUB_PEM = public_pem(ED)


def _pem(key):
    return private_pem(key)


WEAK_KEYS = {
    "rsa1024": _pem(rsa_key(1024)),
    "p521": _pem(ec.generate_private_key(ec.SECP521R1())),
    "secp256k1": _pem(ec.generate_private_key(ec.SECP256K1())),
    "ed448": _pem(ed448.Ed448PrivateKey.generate()),
    "x25519": _pem(x25519.X25519PrivateKey.generate()),
    "dsa": _pem(dsa.generate_private_key(key_size=1024)),
    "encrypted-pkcs8": RSA.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password")).decode(),
    "garbage-pem": "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n",
    "certificate-pem": "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
    "truncated-pem": RSA_PRIV_PEM[: len(RSA_PRIV_PEM) // 2] + "\n-----END PRIVATE KEY-----\n",
    "corrupted-pem-body": "\n".join(
        line if i != 3 else "!!!!" + line[4:] for i, line in enumerate(RSA_PRIV_PEM.splitlines())) + "\n",
    "pem-no-end": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n",
    "short-secret-31": "x" * 31,
    "empty-secret": "",
    "rsa-public-pem": RSA_PUB_PEM,
    "ec-public-pem": EC256_PUB_PEM,
    "ed-public-pem": ED_PUB_PEM,
    "rsa-public-jwk": json.dumps(RSA_JWK),
}

BAD_JWKS = {
    "kty-unknown": {"kty": "foo", "k": "AAAA"},
    "kty-number": {"kty": 5},
    "kty-missing": {"k": b64url(b"k" * 32)},
    "empty-object": {},
    "rsa-no-n": {"kty": "RSA", "e": "AQAB"},
    "rsa-n-not-b64": {"kty": "RSA", "n": "***", "e": "AQAB"},
    "rsa-1024": public_jwk(rsa_key(1024)),
    "ec-p521": {"kty": "EC", "crv": "P-521", "x": b64url(b"\x01" * 66), "y": b64url(b"\x02" * 66)},
    "ec-off-curve": {"kty": "EC", "crv": "P-256", "x": b64url(b"\x01" * 32), "y": b64url(b"\x02" * 32)},
    "ec-no-y": {"kty": "EC", "crv": "P-256", "x": public_jwk(EC256)["x"]},
    "okp-x25519": {"kty": "OKP", "crv": "X25519", "x": b64url(b"\x09" * 32)},
    "okp-short-x": {"kty": "OKP", "crv": "Ed25519", "x": b64url(b"\x01" * 16)},
    "oct-short": {"kty": "oct", "k": b64url(b"short")},
    "oct-not-b64": {"kty": "oct", "k": "!!!not base64!!!" * 3},
    "oct-k-number": {"kty": "oct", "k": 12345},
}

T = now()
GOOD_CLAIMS = {"sub": "u1", "role": "web", "exp": T + 3600}


def hs(payload, header=None, key=SECRET, alg="HS256"):
    return make_token(header if header is not None else {"alg": alg, "typ": "JWT"}, payload, key, alg)


GOOD = hs(GOOD_CLAIMS)
GOOD_H, GOOD_P, GOOD_S = GOOD.split(".")

# ---- SQL -------------------------------------------------------------------------------------

V = "SELECT auth.verify_jwt(%s, %s)"
VO = "SELECT auth.verify_jwt(%s, %s, %s::jsonb)"
# A secret is a secret only when an HS* algorithm is named (PA012 otherwise).
HS_ONLY = '{"algorithms": ["HS256", "HS384", "HS512"]}'
VS = f"SELECT auth.verify_jwt(%s, %s, '{HS_ONLY}')"
VSO = f"SELECT auth.verify_jwt(%s, %s, %s::jsonb || '{HS_ONLY}')"
VR = "SELECT auth.verify_jwt(%s)"
DEC = "SELECT auth.decode_jwt_unverified(%s)"
SIGN = "SELECT auth.sign_jwt(%s::jsonb, %s::text)"
SIGNA = "SELECT auth.sign_jwt(%s::jsonb, %s::text, %s::text)"


@dataclass
class Case:
    id: str
    sql: str
    params: tuple
    expected: str


CASES = []


def case(id, expected, sql, *params):
    CASES.append(Case(id, sql, params, expected))


def with_sig(token, sig):
    h, p, _ = token.split(".")
    return f"{h}.{p}.{sig}"


# ---- alg "none" and other algorithm names -------------------------------------------------------

NONE_TOKEN = make_token({"alg": "none", "typ": "JWT"}, GOOD_CLAIMS, signature=b"sig")
case("none-with-garbage-sig", "PA011", VS, NONE_TOKEN, SECRET)
case("none-with-hmac-sig", "PA011", VS,
     make_token({"alg": "none"}, GOOD_CLAIMS, SECRET, alg="HS256"), SECRET)
case("none-with-sig-ring", "PA011", VR, NONE_TOKEN)
case("none-with-sig-ring-kid", "PA011", VR,
     make_token({"alg": "none", "kid": "hostile-hs"}, GOOD_CLAIMS, signature=b"sig"))
case("none-with-sig-jwk", "PA011", V, NONE_TOKEN, json.dumps(RSA_JWK))
for name in ["None", "NONE", "nOnE", "none ", "", "hs256", "HS256 ", " HS256", "Hs256", "HS1", "HS128",
             "ES512", "ES256K", "Ed25519", "EdDSA448", "RSA-OAEP", "dir", "A256GCM", "PS1024",
             "HS256\u0001", "%s%s%n%x", "HS256\" OR \"1\"=\"1"]:
    case(f"alg-name-{name!r}", "PA011", VS,
         make_token({"alg": name}, GOOD_CLAIMS, SECRET, alg="HS256"), SECRET)
for label, alg_value in [("missing", None), ("number", 256), ("null", "null"), ("array", ["HS256"]),
                         ("object", {"name": "HS256"}), ("bool", True)]:
    header = {"typ": "JWT"} if alg_value is None else {"alg": None if alg_value == "null" else alg_value}
    case(f"alg-{label}", "PA001", VS, make_token(header, GOOD_CLAIMS, SECRET, alg="HS256"), SECRET)
case("alg-duplicate-none-then-hs256", "PA001", VS,
     make_token(b'{"alg":"none","alg":"HS256"}', GOOD_CLAIMS, SECRET, alg="HS256"), SECRET)
# A header with duplicate members is ambiguous, whichever value comes last.
case("alg-duplicate-hs256-then-none", "PA001", VS,
     make_token(b'{"alg":"HS256","alg":"none"}', GOOD_CLAIMS, SECRET, alg="HS256"), SECRET)

# ---- algorithm confusion -------------------------------------------------------------------------

case("confusion-hs256-rsa-spki-pem-as-secret", "PA011", V, hs(GOOD_CLAIMS, key=RSA_PUB_PEM), RSA_PUB_PEM)
case("confusion-hs256-rsa-pkcs1-pem-as-secret", "PA011", V, hs(GOOD_CLAIMS, key=RSA_PUB_PKCS1), RSA_PUB_PKCS1)
case("confusion-hs256-rsa-jwk-text-as-secret", "PA011", V,
     hs(GOOD_CLAIMS, key=json.dumps(RSA_JWK)), json.dumps(RSA_JWK))
case("confusion-hs384-rsa-pem-as-secret", "PA011", V, hs(GOOD_CLAIMS, key=RSA_PUB_PEM, alg="HS384"), RSA_PUB_PEM)
case("confusion-hs256-rsa-pem-as-secret-ring", "PA011", VR,
     hs(GOOD_CLAIMS, header={"alg": "HS256", "kid": "hostile-rsa"}, key=RSA_PUB_PEM))
case("confusion-hs256-ec-pem-as-secret", "PA011", V, hs(GOOD_CLAIMS, key=EC256_PUB_PEM), EC256_PUB_PEM)
case("confusion-hs256-ed-pem-as-secret", "PA011", V, hs(GOOD_CLAIMS, key=ED_PUB_PEM), ED_PUB_PEM)
def public_key_shapes():
    """One P-256 public key in shapes that are neither PEM nor JSON. The live attack on 0.2.0
    forged HS256 tokens with each as the secret, and they verified."""
    der = EC256.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    point = EC256.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ssh = EC256.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    bare = base64.b64encode(der).decode()
    jwk = json.dumps({"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]), "y": b64url(point[33:])})
    return {
        "openssh": ssh + " idp@example",
        "rfc4716": f"---- BEGIN SSH2 PUBLIC KEY ----\n{ssh.split()[1]}\n---- END SSH2 PUBLIC KEY ----\n",
        "lowercase-pem": EC256_PUB_PEM.lower(),
        "four-dash-pem": EC256_PUB_PEM.replace("-----", "----"),
        "base64-of-pem": base64.b64encode(EC256_PUB_PEM.encode()).decode(),
        "bare-base64-der": bare,
        "hex-der": der.hex(),
        "raw-point-base64": base64.b64encode(point).decode(),
        "raw-point-hex": point.hex(),
        "jwk-after-zero-width-space": "\u200b" + jwk,
        "jwk-after-word-joiner": "\u2060" + jwk,
        "jwk-inside-json-string": json.dumps(jwk),
    }


for label, text in public_key_shapes().items():
    case(f"confusion-hs256-{label}-as-secret", "PA012", V, hs(GOOD_CLAIMS, key=text), text)
    case(f"confusion-hs256-{label}-add-key", "PA012", "SELECT auth.add_key(%s, %s)", text, f"shape-{label}")
for hdr_alg, key_label, key in [
    ("ES256", "hmac-secret", SECRET), ("RS256", "hmac-secret", SECRET), ("PS256", "hmac-secret", SECRET),
    ("EdDSA", "hmac-secret", SECRET), ("EdDSA", "p256", EC256_PUB_PEM), ("ES384", "p256", EC256_PUB_PEM),
    ("ES256", "p384", EC384_PUB_PEM), ("RS256", "p256", EC256_PUB_PEM), ("PS256", "ed25519", ED_PUB_PEM),
    ("ES256", "rsa", RSA_PUB_PEM), ("HS512", "ed25519", ED_PUB_PEM),
]:
    case(f"confusion-{hdr_alg}-header-with-{key_label}-key", "PA011", VS if key == SECRET else V,
         make_token({"alg": hdr_alg}, GOOD_CLAIMS, signature=b"\x01" * 64), key)
case("ring-hs256-key-with-hs512-header", "PA011", VR,
     hs(GOOD_CLAIMS, header={"alg": "HS512", "kid": "hostile-hs"}, alg="HS512"))
case("jwk-alg-ps256-rs256-token", "PA011", V,
     make_token({"alg": "RS256"}, GOOD_CLAIMS, RSA), json.dumps(dict(RSA_JWK, alg="PS256")))
case("option-algorithms-excludes-token-alg", "PA011", VO, GOOD, SECRET, '{"algorithms": ["HS512"]}')
case("option-algorithms-none", "PA011", VO, GOOD, SECRET, '{"algorithms": ["none"]}')
case("option-algorithms-unknown-name", "PA011", VO, GOOD, SECRET, '{"algorithms": ["HS256 "]}')
case("ps256-header-rs256-signature", "PA003", V,
     make_token({"alg": "PS256"}, GOOD_CLAIMS, RSA, alg="RS256"), RSA_PUB_PEM)
case("rs256-header-ps256-signature", "PA003", V,
     make_token({"alg": "RS256"}, GOOD_CLAIMS, RSA, alg="PS256"), RSA_PUB_PEM)
case("hs512-header-hs256-signature", "PA003", VS, make_token({"alg": "HS512"}, GOOD_CLAIMS, SECRET, alg="HS256"), SECRET)

# ---- signatures --------------------------------------------------------------------------------

mid = len(GOOD_S) // 2
case("sig-one-char-changed", "PA003", VS,
     with_sig(GOOD, GOOD_S[:mid] + ("A" if GOOD_S[mid] != "A" else "B") + GOOD_S[mid + 1:]), SECRET)
case("sig-wrong-secret", "PA003", VS, GOOD, OTHER_SECRET)
case("sig-secret-with-trailing-space", "PA003", VS, GOOD, SECRET + " ")
case("sig-attacker-rsa", "PA003", V, make_token({"alg": "RS256"}, GOOD_CLAIMS, ATTACKER_RSA), RSA_PUB_PEM)
case("sig-payload-swapped", "PA003", VS,
     f"{GOOD_H}.{b64url(js(dict(GOOD_CLAIMS, role='admin')))}.{GOOD_S}", SECRET)
case("sig-header-swapped", "PA003", VS, f"{b64url(js({'alg': 'HS256'}))}.{GOOD_P}.{GOOD_S}", SECRET)
case("sig-spliced-from-other-token", "PA003", VS, with_sig(GOOD, hs({"sub": "other"}).split(".")[2]), SECRET)
case("sig-AAAA", "PA003", VS, with_sig(GOOD, "AAAA"), SECRET)
case("sig-hmac-truncated-to-16-bytes", "PA003", VS, with_sig(GOOD, b64url(b64url_decode(GOOD_S)[:16])), SECRET)
case("sig-hmac-doubled", "PA003", VS, with_sig(GOOD, b64url(b64url_decode(GOOD_S) * 2)), SECRET)
ES_TOKEN = make_token({"alg": "ES256"}, GOOD_CLAIMS, EC256)
case("sig-es256-10-bytes", "PA003", V, with_sig(ES_TOKEN, b64url(b"\x07" * 10)), EC256_PUB_PEM)
case("sig-es256-zeros", "PA003", V, with_sig(ES_TOKEN, b64url(b"\x00" * 64)), EC256_PUB_PEM)
case("sig-es256-der-encoded", "PA003", V,
     with_sig(ES_TOKEN, b64url(EC256.sign(ES_TOKEN.rsplit(".", 1)[0].encode(), ec.ECDSA(hashes.SHA256())))),
     EC256_PUB_PEM)
ED_TOKEN = make_token({"alg": "EdDSA"}, GOOD_CLAIMS, ED)
case("sig-eddsa-1-byte", "PA003", V, with_sig(ED_TOKEN, "AA"), ED_PUB_PEM)
case("sig-eddsa-flipped", "PA003", V, with_sig(ED_TOKEN, b64url(bytes(b ^ 1 for b in b64url_decode(ED_TOKEN.split(".")[2])))), ED_PUB_PEM)
RS_TOKEN = make_token({"alg": "RS256"}, GOOD_CLAIMS, RSA)
case("sig-rsa-600-bytes", "PA003", V, with_sig(RS_TOKEN, b64url(b"\x05" * 600)), RSA_PUB_PEM)
case("sig-rsa-zeros", "PA003", V, with_sig(RS_TOKEN, b64url(b"\x00" * 256)), RSA_PUB_PEM)
case("sig-rsa-modulus-value", "PA003", V,
     with_sig(RS_TOKEN, b64url(RSA.public_key().public_numbers().n.to_bytes(256, "big"))), RSA_PUB_PEM)
ATTACK_JWK = public_jwk(ATTACKER_RSA)
case("embedded-jwk-not-trusted", "PA003", V,
     make_token({"alg": "RS256", "jwk": ATTACK_JWK}, GOOD_CLAIMS, ATTACKER_RSA), RSA_PUB_PEM)
case("embedded-jwk-not-trusted-ring", "PA003", VR,
     make_token({"alg": "RS256", "kid": "hostile-rsa", "jwk": ATTACK_JWK}, GOOD_CLAIMS, ATTACKER_RSA))
case("jku-x5u-not-fetched-ring", "PA003", VR,
     make_token({"alg": "RS256", "kid": "hostile-rsa", "jku": "http://127.0.0.1:1/jwks",
                 "x5u": "http://127.0.0.1:1/cert"}, GOOD_CLAIMS, ATTACKER_RSA))

# ---- truncation at many positions --------------------------------------------------------------


def truncation_expectation(token):
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return "PA001"
    sig = parts[2]
    if sig == "":
        return "PA003"  # an empty signature is well-formed (RFC 7519 unsecured form) and wrong
    # The header and payload are intact; the signature must still be canonical base64url
    # (no length 1 mod 4, no stray bits in the last character) to be a bad signature at all.
    if len(sig) % 4 == 1 or b64url(b64url_decode(sig)) != sig:
        return "PA001"
    return "PA003"


cuts = sorted(set([1, 2, 5, 10, len(GOOD_H) - 1, len(GOOD_H), len(GOOD_H) + 1, len(GOOD_H) + 5,
                   len(GOOD_H) + len(GOOD_P) // 2, len(GOOD_H) + len(GOOD_P), len(GOOD_H) + len(GOOD_P) + 1]
                  + [len(GOOD_H) + len(GOOD_P) + 2 + k for k in range(0, len(GOOD_S))]))
for n in cuts:
    t = GOOD[:n]
    case(f"truncated-{n}-of-{len(GOOD)}", truncation_expectation(t), VS, t, SECRET)
case("truncated-ring-2-segments", "PA001", VR, f"{GOOD_H}.{GOOD_P}")

# ---- segments ----------------------------------------------------------------------------------

for label, tok in [
    ("empty", ""), ("one-dot", "."), ("two-dots", ".."), ("three-dots", "..."), ("single-segment", GOOD_H),
    ("two-segments", f"{GOOD_H}.{GOOD_P}"), ("trailing-dot", GOOD + "."), ("leading-dot", "." + GOOD),
    ("four-segments", GOOD + ".AAAA"), ("five-segments-jwe-like", GOOD + ".AAAA.AAAA"),
    ("empty-header", f".{GOOD_P}.{GOOD_S}"), ("empty-payload", f"{GOOD_H}..{GOOD_S}"),
    ("double-dot-inside", f"{GOOD_H}..{GOOD_P}.{GOOD_S}"),
    ("jws-json-serialization", json.dumps({"protected": GOOD_H, "payload": GOOD_P, "signature": GOOD_S})),
    ("dots-only-many", "." * 100),
]:
    case(f"segments-{label}", "PA001", VS, tok, SECRET)
case("segments-two-ring", "PA001", VR, f"{GOOD_H}.{GOOD_P}")
# An empty signature is the well-formed unsecured shape: refused as a wrong signature.
case("segments-empty-signature-hs256", "PA003", VS, f"{GOOD_H}.{GOOD_P}.", SECRET)

# ---- base64url ---------------------------------------------------------------------------------

for label, tok in [
    ("plus-in-signature", with_sig(GOOD, GOOD_S[:10] + "+" + GOOD_S[11:])),
    ("slash-in-payload", f"{GOOD_H}.{GOOD_P[:5]}/{GOOD_P[6:]}.{GOOD_S}"),
    ("padding-header", f"{GOOD_H}=.{GOOD_P}.{GOOD_S}"),
    ("padding-payload", f"{GOOD_H}.{GOOD_P}==.{GOOD_S}"),
    ("padding-signature", GOOD + "="),
    ("asterisk", f"{GOOD_H}.{GOOD_P}.{GOOD_S[:5]}*{GOOD_S[6:]}"),
    ("percent", f"{GOOD_H}.%7B%7D.{GOOD_S}"),
    ("dollar-in-header", "$" + GOOD[1:]),
    ("header-length-1-mod-4", f"eyJhb.{GOOD_P}.{GOOD_S}"),
]:
    case(f"base64-{label}", "PA001", VS, tok, SECRET)


def signed_raw(h_seg, p_seg, key=SECRET):
    """Signs already encoded segments (lets a test sign non-canonical base64url)."""
    signing_input = f"{h_seg}.{p_seg}"
    return signing_input + "." + b64url(sign_raw("HS256", signing_input.encode(), key))


case("base64-payload-length-1-mod-4-signed", "PA001", VS, signed_raw(GOOD_H, "e30AA"), SECRET)
STD_HEADER = b64url(js({"alg": "HS256", "x": ">>>???"}))
assert "-" in STD_HEADER or "_" in STD_HEADER
case("base64-standard-alphabet-header-signed", "PA001", VS,
     signed_raw(STD_HEADER.replace("-", "+").replace("_", "/"), GOOD_P), SECRET)

# '{"alg":"HS256"} ' encodes to ...IA; 'IB' carries the same byte plus a stray bit.
canon_h = b64url(b'{"alg":"HS256"} ')
assert canon_h.endswith("IA")
case("base64-noncanonical-header-bits-signed", "PA001", VS, signed_raw(canon_h[:-1] + "B", GOOD_P), SECRET)
canon_p = b64url(b"{} ")
assert canon_p.endswith("g")
case("base64-noncanonical-payload-bits-signed", "PA001", VS, signed_raw(GOOD_H, canon_p[:-1] + "h"), SECRET)

# ---- JSON in header and payload ----------------------------------------------------------------

for label, raw in [
    ("not-json", b"abc"), ("array", b"[]"), ("array-with-alg", b'[{"alg":"HS256"}]'), ("string", b'"HS256"'),
    ("number", b"1"), ("null", b"null"), ("true", b"true"), ("trailing-garbage", b'{"alg":"HS256"}x'),
    ("invalid-utf8", b'{"alg":"HS256","kid":"\xff"}'), ("bom", b'\xef\xbb\xbf{"alg":"HS256"}'),
    # In members pg_auth does not read (found by the fuzz target `token`).
    ("invalid-utf8-unread-member", b'{"alg":"HS256","x5u":"http://127.0.0-\xf1:1/cert"}'),
    ("lone-surrogate-unread-member", b'{"alg":"HS256","x":"\\ud800"}'),
    ("typ-number", b'{"alg":"HS256","typ":5}'), ("kid-number", b'{"alg":"HS256","kid":5}'),
    ("kid-object", b'{"alg":"HS256","kid":{"$ne":null}}'), ("kid-bool", b'{"alg":"HS256","kid":true}'),
    ("kid-array", b'{"alg":"HS256","kid":["a"]}'), ("jwk-not-object", b'{"alg":"HS256","jwk":5}'),
    ("nested-5000", b"[" * 5000),
    ("unterminated", b'{"alg":"HS256"'), ("single-quotes", b"{'alg':'HS256'}"),
    ("nul-byte", b'{"alg":"HS256"}\x00'),
]:
    case(f"header-{label}", "PA001", VS, make_token(raw, GOOD_CLAIMS, SECRET, alg="HS256"), SECRET)
    if label in ("not-json", "array", "nested-5000"):
        case(f"header-{label}-decode-unverified", "PA001", DEC, make_token(raw, GOOD_CLAIMS, SECRET, alg="HS256"))
        case(f"header-{label}-ring", "PA001", VR, make_token(raw, GOOD_CLAIMS, SECRET, alg="HS256"))

for label, raw in [
    ("not-json", b"not json"), ("empty-array", b"[]"), ("array", b'[{"sub":"u1"}]'), ("string", b'"claims"'),
    ("number", b"42"), ("float", b"1.5"), ("null", b"null"), ("true", b"true"),
    ("trailing-garbage", b'{"sub":"u1"}x'), ("two-objects", b'{"a":1}{"b":2}'), ("bom", b"\xef\xbb\xbf{}"),
    ("invalid-utf8", b'{"sub":"\xff\xfe"}'), ("lone-surrogate", b'{"sub":"\\ud800"}'),
    ("duplicate-exp", b'{"exp":1,"exp":99999999999}'),
    ("duplicate-exp-reversed", b'{"exp":99999999999,"exp":1}'), ("nested-10000", b"[" * 10000),
    ("unterminated", b'{"sub":"u1"'),
    ("nan", b'{"exp":NaN}'), ("infinity", b'{"exp":Infinity}'), ("comment", b'{"sub":"u1"/* x */}'),
    ("nul-byte", b'{"sub":"u1"}\x00'),
]:
    case(f"payload-{label}", "PA001", VS, hs(raw), SECRET)
for label, raw in [("not-json", b"not json"), ("array", b"[]"), ("nested-10000", b"[" * 10000)]:
    case(f"payload-{label}-decode-unverified", "PA001", DEC, hs(raw))

# ---- size --------------------------------------------------------------------------------------

MB_TOKEN = f"{GOOD_H}.{b64url(b'{' + b' ' * (1 << 20) + b'}')}.{GOOD_S}"
case("size-1mb", "PA002", VS, MB_TOKEN, SECRET)
case("size-1mb-ring", "PA002", VR, MB_TOKEN)
case("size-1mb-decode-unverified", "PA002", DEC, MB_TOKEN)
case("size-1mb-of-dots", "PA002", VS, "." * (1 << 20), SECRET)
case("size-1mb-no-dots", "PA002", VS, "A" * (1 << 20), SECRET)
case("size-nested-100000", "PA002", VS, hs(b"[" * 100000), SECRET)


def token_of_length(length, extra_claims=None):
    """A correctly signed HS256 token of exactly `length` bytes (padding claim + header filler)."""
    for filler in range(0, 8):
        header = {"alg": "HS256", "typ": "JWT", "f": "f" * filler}
        h_len = len(b64url(js(header)))
        target = length - h_len - 2 - 43  # two dots, 43-char HS256 signature
        if target % 4 == 1:
            continue
        m = 3 * (target // 4) + {0: 0, 2: 1, 3: 2}[target % 4]
        base = dict(GOOD_CLAIMS, **(extra_claims or {}), pad="")
        base_len = len(js(base))
        claims = dict(base, pad="p" * (m - base_len))
        token = hs(claims, header=header)
        if len(token) == length:
            return token, claims
    raise AssertionError(f"cannot build a token of {length} bytes")


OVER_TOKEN, _ = token_of_length(16385)
case("size-16385-validly-signed", "PA002", VS, OVER_TOKEN, SECRET)
case("size-16385-validly-signed-ring", "PA002", VR, OVER_TOKEN)
case("key-text-300kb", "PA012", V, GOOD, "k" * 300_000)
case("key-nested-json-100000", "PA012", V, GOOD, '{"keys":' + "[" * 100000)

# ---- registered claims -------------------------------------------------------------------------

for label, value in [("string", "9999999999"), ("numeric-string", "1e30"), ("1e30", 1e30),
                     ("2pow64", 18446744073709551616), ("negative", -1), ("null", None), ("true", True),
                     ("false", False), ("negative-float", -0.5)]:
    case(f"exp-{label}", "PA009", VS, hs({"sub": "u1", "exp": value}), SECRET)
case("exp-zero", "PA004", VS, hs({"sub": "u1", "exp": 0}), SECRET)
case("exp-past-beyond-default-leeway", "PA004", VS, hs({"sub": "u1", "exp": T - 40}), SECRET)
case("exp-past-leeway-0", "PA004", VSO, hs({"sub": "u1", "exp": T - 2}), SECRET, '{"leeway": 0}')
case("exp-past-beyond-leeway-60", "PA004", VSO, hs({"sub": "u1", "exp": T - 100}), SECRET, '{"leeway": 60}')
case("exp-expired-and-bad-signature", "PA003", VS, hs({"exp": 1}, key=OTHER_SECRET), SECRET)
for label, value in [("string", "0"), ("null", None), ("negative", -10), ("bool", False), ("1e30", 1e30)]:
    case(f"nbf-{label}", "PA009", VS, hs({"sub": "u1", "exp": T + 3600, "nbf": value}), SECRET)
case("nbf-future", "PA005", VS, hs({"sub": "u1", "exp": T + 7200, "nbf": T + 3600}), SECRET)
case("nbf-future-beyond-leeway", "PA005", VSO, hs({"nbf": T + 120}), SECRET, '{"leeway": 60}')
case("nbf-far-future", "PA005", VS, hs({"nbf": 18446744073709551615}), SECRET)
for label, value in [("string", "now"), ("null", None), ("negative", -5), ("bool", True), ("array", [1])]:
    case(f"iat-{label}", "PA009", VS, hs({"sub": "u1", "exp": T + 3600, "iat": value}), SECRET)
case("iat-future", "PA005", VS, hs({"sub": "u1", "exp": T + 7200, "iat": T + 3600}), SECRET)
case("iat-1e30", "PA009", VS, hs({"iat": 1e30}), SECRET)  # not a NumericDate below 2^64, like exp and nbf

AUD = '{"audience": "api"}'
case("aud-mismatch", "PA006", VSO, hs({"aud": "web"}), SECRET, AUD)
case("aud-case-mismatch", "PA006", VSO, hs({"aud": "API"}), SECRET, AUD)
case("aud-empty-string", "PA006", VSO, hs({"aud": ""}), SECRET, AUD)
case("aud-list-mismatch", "PA006", VSO, hs({"aud": ["web", "admin"]}), SECRET, '{"audience": ["api", "x"]}')
case("aud-prefix", "PA006", VSO, hs({"aud": "api2"}), SECRET, AUD)
case("aud-missing", "PA008", VSO, hs({"sub": "u1"}), SECRET, AUD)
case("aud-present-without-audience-option", "PA006", VS, hs({"aud": "web"}), SECRET)
case("aud-list-present-without-audience-option", "PA006", VS, hs({"aud": ["a", "b"]}), SECRET)
case("aud-mismatch-ring", "PA006", VO, hs({"aud": "web"}, header={"alg": "HS256", "kid": "hostile-hs"}), None, AUD)
ISS = '{"issuer": "https://good.example"}'
case("iss-mismatch", "PA007", VSO, hs({"iss": "https://evil.example"}), SECRET, ISS)
case("iss-trailing-slash", "PA007", VSO, hs({"iss": "https://good.example/"}), SECRET, ISS)
case("iss-list-option-mismatch", "PA007", VSO, hs({"iss": "c"}), SECRET, '{"issuer": ["a", "b"]}')
case("iss-missing", "PA008", VSO, hs({"sub": "u1"}), SECRET, ISS)
case("required-sub-missing", "PA008", VSO, hs({"role": "web"}), SECRET, '{"required": ["sub"]}')
case("required-claim-null", "PA008", VSO, hs({"sub": None}), SECRET, '{"required": ["sub"]}')
case("required-one-of-several-missing", "PA008", VSO, hs({"sub": "u", "role": "r"}), SECRET,
     '{"required": ["sub", "role", "tenant"]}')
case("required-exp-missing", "PA008", VSO, hs({"sub": "u"}), SECRET, '{"required": "exp"}')
case("required-checked-after-signature", "PA003", VSO, hs({"role": "web"}, key=OTHER_SECRET), SECRET,
     '{"required": ["sub"]}')

# ---- kid -------------------------------------------------------------------------------------

for label, kid in [
    ("quotes", "a\"b'c"), ("backslashes", "\\\\x00\\'\\"), ("sql-injection", "'; DROP TABLE auth.keys; --"),
    ("sql-injection-2", "x' OR '1'='1"), ("format-string", "%s%s%s%n%x%p"), ("long-10000", "k" * 10000),
    ("empty", ""), ("unicode", "ключ-😀-\u202e"), ("newline", "hostile-hs\n"), ("nul-escape", "hostile-hs\u0000"),
    ("case-variant", "HOSTILE-HS"), ("unknown", "no-such-kid"), ("retired", "hostile-retired"),
    ("path-traversal", "../../etc/passwd"),
]:
    case(f"kid-{label}-ring", "PA010", VR,
         hs(GOOD_CLAIMS, header={"alg": "HS256", "kid": kid}))
JWKS2 = json.dumps({"keys": [dict(RSA_JWK, kid="a"), dict(public_jwk(EC256), kid="b")]})
case("jwks-token-without-kid", "PA010", V, make_token({"alg": "RS256"}, GOOD_CLAIMS, RSA), JWKS2)
case("jwks-unknown-kid", "PA010", V, make_token({"alg": "RS256", "kid": "c"}, GOOD_CLAIMS, RSA), JWKS2)
case("jwks-kid-injection", "PA010", V, make_token({"alg": "RS256", "kid": "a' OR '1'='1"}, GOOD_CLAIMS, RSA), JWKS2)
case("jwks-kid-picks-wrong-family", "PA011", V, make_token({"alg": "RS256", "kid": "b"}, GOOD_CLAIMS, RSA), JWKS2)
case("retire-unknown-kid", "PA010", "SELECT auth.retire_key(%s)", "'; DROP TABLE auth.keys; --")

# ---- NULL and invalid arguments --------------------------------------------------------------

case("null-token", "22004", VS, None, SECRET)
case("null-token-ring", "22004", VR, None)
case("null-token-before-bad-options", "22004", VO, None, None, '{"bogus": 1}')
case("null-token-decode", "22004", DEC, None)
case("null-claims", "22004", SIGN, None, SECRET)
case("null-key", "22004", SIGN, '{"sub": "u"}', None)
case("null-claims-and-key", "22004", SIGN, None, None)
case("null-claims-ring", "22004", "SELECT auth.sign_jwt(%s::jsonb)", None)
case("null-algorithm-generate-key", "22004", "SELECT auth.generate_key(%s::text)", None)
case("null-key-add", "22004", "SELECT auth.add_key(%s::text)", None)
for label, claims in [("empty-array", "[]"), ("array", '[{"sub":"u"}]'), ("string", '"sub"'), ("number", "1"),
                      ("json-null", "null"), ("true", "true")]:
    case(f"sign-claims-{label}", "22023", SIGN, claims, SECRET)
    if label in ("empty-array", "json-null"):
        case(f"sign-claims-{label}-ring", "22023", "SELECT auth.sign_jwt(%s::jsonb)", claims)
for name in ["none", "NONE", "HS999", "", " HS256", "hs256", "%s%n", "ES512", "RSA-OAEP"]:
    case(f"sign-algorithm-{name!r}", "PA011", SIGNA, "{}", SECRET, name)
    if name in ("none", "HS999"):
        case(f"generate-key-algorithm-{name!r}", "PA011", "SELECT auth.generate_key(%s)", name)
case("sign-rs256-with-secret", "PA012", SIGNA, "{}", SECRET, "RS256")  # text is no RS256 key
case("sign-hs256-with-rsa-private", "PA011", SIGNA, "{}", RSA_PRIV_PEM, "HS256")
case("sign-es384-with-p256-private", "PA011", SIGNA, "{}", private_pem(EC256), "ES384")
case("sign-eddsa-with-rsa-private", "PA011", SIGNA, "{}", RSA_PRIV_PEM, "EdDSA")
case("sign-ps256-with-ed25519-private", "PA011", SIGNA, "{}", private_pem(ED), "PS256")
for label, key in WEAK_KEYS.items():
    case(f"sign-key-{label}", "PA012", SIGN, "{}", key)
for label, jwk in BAD_JWKS.items():
    case(f"sign-jwk-{label}", "PA012", SIGN, "{}", json.dumps(jwk))
    case(f"verify-jwk-{label}", "PA012", V, GOOD, json.dumps(jwk))
case("sign-jwk-malformed-json", "PA012", SIGN, "{}", '{"kty":')
case("sign-oct-jwk-alg-rs256", "PA011", SIGN, "{}", json.dumps({"kty": "oct", "k": b64url(b"k" * 32), "alg": "RS256"}))
case("verify-oct-jwk-alg-none", "PA011", V, GOOD, json.dumps({"kty": "oct", "k": b64url(b"k" * 32), "alg": "none"}))
for label, key in [("empty", ""), ("short", "x" * 31), ("garbage-pem", WEAK_KEYS["garbage-pem"]),
                   ("certificate", WEAK_KEYS["certificate-pem"]), ("rsa1024-private", WEAK_KEYS["rsa1024"]),
                   ("p521-private", WEAK_KEYS["p521"]), ("json-array-text", "[1]"), ("malformed-json", '{"keys": [')]:
    case(f"verify-key-{label}", "PA012", V, GOOD, key)
ENC_ONLY = {"keys": [dict(RSA_JWK, use="enc", kid="e1"), dict(public_jwk(EC256), use="enc", kid="e2")]}
for label, jwks in [("empty", {"keys": []}), ("enc-only", ENC_ONLY), ("keys-number", {"keys": 5}),
                    ("keys-object", {"keys": {"kty": "RSA"}}), ("bad-member", {"keys": [{"kty": "foo"}]}),
                    ("keys-null", {"keys": None})]:
    case(f"verify-jwks-{label}", "PA012", V, GOOD, json.dumps(jwks))
case("add-jwks-enc-only", "PA012", "SELECT auth.add_jwks(%s::jsonb)", json.dumps(ENC_ONLY))
case("add-jwks-with-secret", "PA012", "SELECT auth.add_jwks(%s::jsonb)",
     json.dumps({"keys": [{"kty": "oct", "k": b64url(b"k" * 32), "kid": "s"}]}))
case("add-key-with-kid-for-jwks", "22023", "SELECT auth.add_key(%s, %s)",
     json.dumps({"keys": [dict(RSA_JWK, kid="x")]}), "y")
case("add-key-kid-too-long", "22023", "SELECT auth.add_key(%s, %s)", RSA_PUB_PEM, "k" * 201)
case("add-key-kid-control-char", "22023", "SELECT auth.add_key(%s, %s)", RSA_PUB_PEM, "a\tb")
case("add-key-kid-empty", "22023", "SELECT auth.add_key(%s, %s)", RSA_PUB_PEM, "")
case("add-key-wrong-family-algorithm", "PA011", "SELECT auth.add_key(%s, %s, %s)", RSA_PUB_PEM, "z", "ES256")

# ---- options ----------------------------------------------------------------------------------

for label, opts in [
    ("typo-audiance", {"audiance": "api"}), ("typo-capital-Audience", {"Audience": "api"}),
    ("typo-leway", {"leway": 5}), ("typo-require", {"require": ["sub"]}),
    ("typo-algorithm", {"algorithm": ["HS256"]}), ("unknown-exp", {"exp": 1}), ("empty-name", {"": 1}),
    ("format-string-name", {"%s%n": 1}), ("not-object-array", []), ("not-object-string", "audience"),
    ("not-object-number", 1), ("not-object-true", True),
    ("leeway-negative", {"leeway": -1}), ("leeway-over-max", {"leeway": 604801}),
    ("leeway-huge", {"leeway": 10 ** 12}), ("leeway-fraction", {"leeway": 1.5}),
    ("leeway-string", {"leeway": "30"}), ("leeway-null", {"leeway": None}), ("leeway-bool", {"leeway": True}),
    ("audience-empty-list", {"audience": []}), ("audience-number-list", {"audience": [1]}),
    ("audience-number", {"audience": 5}), ("audience-object", {"audience": {}}),
    ("audience-null", {"audience": None}), ("issuer-empty-list", {"issuer": []}),
    ("issuer-mixed-list", {"issuer": ["a", None]}), ("required-empty", {"required": []}),
    ("required-number", {"required": [5]}), ("algorithms-empty", {"algorithms": []}),
    ("algorithms-number", {"algorithms": 256}),
]:
    case(f"options-{label}", "22023", VO, GOOD, SECRET, json.dumps(opts))
case("options-typo-ring", "22023", "SELECT auth.verify_jwt(%s, NULL, %s::jsonb)", GOOD, '{"audiance": "api"}')

# ---- odd characters in or around the token ----------------------------------------------------

for label, tok in [
    ("control-0x01", GOOD[:20] + "\u0001" + GOOD[20:]), ("del-0x7f", GOOD[:20] + "\u007f" + GOOD[20:]),
    ("nbsp", GOOD[:20] + "\u00a0" + GOOD[20:]), ("zero-width-space", GOOD[:20] + "\u200b" + GOOD[20:]),
    ("emoji", GOOD[:20] + "😀" + GOOD[20:]), ("rtl-override", "\u202e" + GOOD),
    ("fullwidth-dots", GOOD.replace(".", "\uff0e")), ("percent-00", GOOD[:20] + "%00" + GOOD[20:]),
    ("escaped-nul-text", GOOD[:20] + "\\u0000" + GOOD[20:]), ("newline-inside", GOOD[:20] + "\n" + GOOD[20:]),
    ("tab-inside", GOOD[:20] + "\t" + GOOD[20:]), ("leading-space", " " + GOOD), ("trailing-space", GOOD + " "),
    ("trailing-newline", GOOD + "\n"), ("trailing-crlf", GOOD + "\r\n"), ("bearer-prefix", "Bearer " + GOOD),
    ("double-quoted", f'"{GOOD}"'), ("combining-accent", GOOD[:20] + "\u0301" + GOOD[20:]),
    ("cyrillic-e-homoglyph", GOOD.replace("e", "\u0435", 1)), ("latin1-letter", GOOD[:20] + "é" + GOOD[20:]),
    ("replacement-char", GOOD[:20] + "\ufffd" + GOOD[20:]), ("bom-prefix", "\ufeff" + GOOD),
]:
    case(f"chars-{label}", "PA001", VS, tok, SECRET)
    if label in ("nbsp", "trailing-newline", "bearer-prefix", "emoji"):
        case(f"chars-{label}-ring", "PA001", VR, tok)

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), sorted({i for i in _ids if _ids.count(i) > 1})
assert len(CASES) >= 100


# ---- fixtures and tests ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(database):
    """One connection for the whole corpus, and the ring keys some cases aim at."""
    c = connect()
    c.execute("SELECT auth.add_key(%s, 'hostile-rsa', 'RS256')", (RSA_PUB_PEM,))
    c.execute("SELECT auth.add_key(%s, 'hostile-hs', 'HS256')", (SECRET,))
    c.execute("SELECT auth.add_key(%s, 'hostile-retired', 'ES256')", (EC256_PUB_PEM,))
    c.execute("SELECT auth.retire_key('hostile-retired', now() - interval '1 second')")
    # The ring works: a well-formed token for the HS256 ring key verifies.
    ok = hs(GOOD_CLAIMS, header={"alg": "HS256", "kid": "hostile-hs"})
    assert one(c, VR, (ok,)) == GOOD_CLAIMS
    pid = one(c, "SELECT pg_backend_pid()")
    keys_before = one(c, "SELECT count(*) FROM auth.keys")
    yield c, pid
    # Nothing in the corpus may have changed the ring (injection, add_* cases that must fail).
    assert one(c, "SELECT count(*) FROM auth.keys") == keys_before
    for kid in ("hostile-rsa", "hostile-hs"):
        c.execute("SELECT auth.retire_key(%s)", (kid,))
    c.close()


# Validly signed tokens whose unusual parts are legal: unknown header members are ignored
# (RFC 7515 §4), and claims that jsonb stores (deep nesting, numbers beyond float range) pass.
ACCEPTED = [
    ("header-unknown-member-nested-300", make_token(b'{"alg":"HS256","x":' + b'{"a":' * 300 + b"1" + b"}" * 301, GOOD_CLAIMS, SECRET, alg="HS256")),
    ("payload-number-beyond-double", hs(b'{"x":1e400}')),
    ("payload-nested-object-200", hs(b'{"a":' * 200 + b"1" + b"}" * 200)),
]


@pytest.mark.parametrize("token", [t for _, t in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_legal_oddities_are_accepted(hostile, token):
    c, pid = hostile
    claims = one(c, VS, (token, SECRET))
    assert isinstance(claims, dict) and claims, claims
    assert one(c, "SELECT pg_backend_pid()") == pid


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_hostile_case(hostile, case):
    c, pid = hostile
    assert_sqlstate(c, case.expected, case.sql, case.params)
    assert one(c, "SELECT 1") == 1
    assert one(c, "SELECT pg_backend_pid()") == pid, "the backend was replaced"


def test_good_token_still_verifies_after_the_corpus(hostile):
    c, pid = hostile
    assert one(c, VS, (GOOD, SECRET)) == GOOD_CLAIMS
    assert one(c, "SELECT to_regclass('auth.keys') IS NOT NULL")
    assert one(c, "SELECT pg_backend_pid()") == pid


def test_token_of_exactly_the_maximum_size_verifies(hostile):
    c, _ = hostile
    token, claims = token_of_length(16384)
    assert len(token) == 16384
    assert one(c, VS, (token, SECRET)) == claims
    bigger, _ = token_of_length(16385)
    assert_sqlstate(c, "PA002", VS, (bigger, SECRET))


def test_alg_none_without_signature_is_algorithm_not_allowed(hostile):
    """An unsecured JWT (RFC 7519 section 6: `header.payload.` with an empty signature) is the
    classic "alg none" attack; the documented refusal is PA011 (algorithm not allowed)."""
    c, pid = hostile
    unsecured = make_token({"alg": "none", "typ": "JWT"}, GOOD_CLAIMS, signature="")
    assert unsecured.endswith(".")
    for sql, params in [(VS, (unsecured, SECRET)), (VR, (unsecured,))]:
        assert_sqlstate(c, "PA011", sql, params)
        assert one(c, "SELECT pg_backend_pid()") == pid


@pytest.mark.parametrize("claim,option", [("aud", {"audience": "api"}), ("iss", {"issuer": "https://good.example"})])
@pytest.mark.parametrize("value", [5, True, {"x": 1}], ids=["number", "bool", "object"])
def test_aud_iss_of_wrong_type_is_invalid_claim(hostile, claim, option, value):
    """A token that carries `aud`/`iss` with a non-string value has an invalid claim (PA009), it
    does not lack the claim (PA008)."""
    c, pid = hostile
    assert_sqlstate(c, "PA009", VSO, (hs({claim: value}), SECRET, json.dumps(option)))
    assert one(c, "SELECT pg_backend_pid()") == pid


@pytest.mark.parametrize("value", [5, True, {"x": 1}], ids=["number", "bool", "object"])
def test_token_with_non_string_aud_is_refused_without_audience_option(hostile, value):
    """README: without the `audience` option "a token that has an aud is refused" (a string `aud`
    is refused with PA006, see the corpus). A non-string `aud` is an `aud` too, and an invalid one:
    it must not slip through where a well-formed one is refused."""
    c, pid = hostile
    assert_sqlstate(c, "PA006", VS, (hs({"sub": "u1", "aud": "web"}), SECRET))
    try:
        rows = c.execute(VS, (hs({"sub": "u1", "aud": value}), SECRET)).fetchall()
    except psycopg.Error as e:
        assert e.sqlstate in ("PA006", "PA009"), f"{e.sqlstate}: {e}"
    else:
        raise AssertionError(f"token with aud={value!r} was accepted: {rows!r}")
    assert one(c, "SELECT pg_backend_pid()") == pid


@pytest.mark.parametrize("claim", ["exp", "nbf"])
@pytest.mark.parametrize("value", [[T + 3600], {"t": T + 3600}, []], ids=["array", "object", "empty-array"])
def test_structured_time_claim_is_invalid_claim(hostile, claim, value):
    """`exp`/`nbf` holding an array or object is valid JSON with an invalid claim value: PA009,
    like a string or negative `exp` (the corpus checks those), not PA001 (malformed token)."""
    c, pid = hostile
    assert_sqlstate(c, "PA009", VS, (hs({"sub": "u1", claim: value}), SECRET))
    assert one(c, "SELECT pg_backend_pid()") == pid


@pytest.mark.parametrize("depth", [200, 1000])
def test_deeply_nested_claims_to_sign_jwt(hostile, depth):
    """Deep but valid jsonb claims: either signed, or refused as an invalid argument (22023);
    never an internal error (XX000)."""
    c, pid = hostile
    claims = '{"a":' + "[" * depth + "]" * depth + "}"
    try:
        token = one(c, SIGN, (claims, SECRET))
    except psycopg.Error as e:
        assert e.sqlstate == "22023", f"expected success or 22023, got {e.sqlstate}: {e}"
    else:
        assert token.count(".") == 2
    assert one(c, "SELECT pg_backend_pid()") == pid


@pytest.mark.parametrize("depth", [200, 1000])
def test_deeply_nested_options_are_invalid_argument(hostile, depth):
    c, pid = hostile
    options = '{"audience":' + "[" * depth + "]" * depth + "}"
    assert_sqlstate(c, "22023", VO, (GOOD, SECRET, options))
    assert one(c, "SELECT pg_backend_pid()") == pid


def test_claim_with_escaped_nul_is_refused_cleanly(hostile):
    """PostgreSQL's jsonb cannot hold \\u0000: a correctly signed token carrying one cannot be
    returned. It must be refused with an ordinary error, not accepted or crash the backend."""
    c, pid = hostile
    token = hs({"sub": "a\u0000b", "exp": T + 3600})
    with pytest.raises(psycopg.Error) as err:
        c.execute(VS, (token, SECRET)).fetchall()
    assert err.value.sqlstate != "XX000" and not err.value.sqlstate.startswith("58")
    assert one(c, "SELECT pg_backend_pid()") == pid
