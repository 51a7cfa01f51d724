#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (or the directory given).

Seeds come from the hostile-input corpus of tests/test_hostile.py (imported, so new cases there
become seeds here) and from values of the Rust unit tests. Tokens are also re-signed with the
fixed fuzz keys of fuzz/src/support.rs, so that seeds reach past the signature check. Needs the
tests' Python packages (tests/requirements.txt: cryptography, PyJWT, pytest, psycopg); no database.

Input layouts (see each target's header comment):
  token, keys, jwk          [selector] text
  verify_hmac, verify_es256, ring
                            [selector] token            (selector even: verify as is)
                            [selector] header 0xFF payload   (selector odd: sign, then verify)
  request                   headers DEL cookies DEL sources DEL cookie-name DEL header-name
  response                  5 bytes (flags, max-age) then text
  identity                  [facts] claims 0xFF path 0xFF allowed-roles
  password                  password 0xFF stored-hash
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

import test_hostile as th  # noqa: E402
from jwtutil import b64url, b64url_decode, js, make_token, private_pem, public_jwk, public_pem, sign_raw  # noqa: E402

# The fixed keys of fuzz/src/support.rs.
HMAC_SECRET = "fuzz-secret-0123456789abcdef-0123456789"
P256 = ec.derive_private_key(int.from_bytes(b"\x11" * 32, "big"), ec.SECP256R1())

MAX_SEED = 20_000  # the 1 MiB size cases are left out: the size check is one comparison


def write(corpus, target, data: bytes):
    if len(data) > MAX_SEED:
        return
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def enc(x) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")


def tokens():
    """Every token of the hostile corpus (and its accepted oddities)."""
    for case in th.CASES:
        if "verify_jwt" in case.sql or "decode_jwt" in case.sql:
            if case.params and isinstance(case.params[0], str):
                yield case.params[0]
    for _, token in th.ACCEPTED:
        yield token
    yield th.GOOD
    yield th.token_of_length(16384)[0]


def key_texts():
    """Key arguments of the hostile corpus, and well-formed keys of each kind."""
    for case in th.CASES:
        if ("verify_jwt" in case.sql or "sign_jwt" in case.sql or "add_key" in case.sql) and len(case.params) > 1:
            for p in case.params[1:2]:
                if isinstance(p, str) and not p.startswith("{\"sub\""):
                    yield p
    yield from th.WEAK_KEYS.values()
    yield from (json.dumps(j) for j in th.BAD_JWKS.values())
    yield th.SECRET
    yield HMAC_SECRET
    yield th.JWKS2
    yield json.dumps(th.ENC_ONLY)
    for key in (th.EC256, th.EC384, th.ED, P256):
        yield private_pem(key)
        yield public_pem(key)
        yield json.dumps(public_jwk(key))
        yield json.dumps(dict(public_jwk(key), kid="k1", use="sig"))
    for key in (th.EC256, P256):
        yield private_pem(key, "traditional")  # EC PRIVATE KEY
    yield th.RSA_PUB_PEM
    yield th.RSA_PUB_PKCS1
    yield th.RSA_PRIV_PEM
    yield private_pem(th.RSA, "traditional")  # RSA PRIVATE KEY
    yield json.dumps(th.RSA_JWK)
    bare = "".join(line for line in public_pem(P256).splitlines() if not line.startswith("-----"))
    yield bare
    yield bare.replace("+", "-").replace("/", "_") + "\n"
    yield "\ufeff" + public_pem(P256)
    yield "Public key of the IdP:\n" + public_pem(P256)
    yield "[" + json.dumps(public_jwk(P256)) + "]"
    yield "\ufeff" + json.dumps(public_jwk(P256))
    yield json.dumps({"kty": "oct", "k": b64url(b"k" * 32), "alg": "HS384", "kid": "a"})
    yield json.dumps({"keys": [{"kty": "oct", "k": b64url(b"k" * 32), "use": "enc"}]})
    yield json.dumps({"keys": [public_jwk(P256), public_jwk(th.ED), public_jwk(th.EC384)]})


def resigned(token, sign):
    """The token's header and payload signed again (HS256 with the fuzz secret by default)."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    message = f"{parts[0]}.{parts[1]}"
    return message + "." + b64url(sign(message.encode()))


def decoded(token):
    """(header bytes, payload bytes) of a token whose first two segments decode."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    try:
        return b64url_decode(parts[0]), b64url_decode(parts[1])
    except Exception:
        return None


def seed_tokens(corpus):
    hs = lambda m: sign_raw("HS256", m, HMAC_SECRET)  # noqa: E731
    es = lambda m: sign_raw("ES256", m, P256)  # noqa: E731
    for i, token in enumerate(tokens()):
        raw = enc(token)
        write(corpus, "token", raw)
        sel = (i % 6) << 1  # even: verify as is, with one of the six option sets
        for target, sign in (("verify_hmac", hs), ("verify_es256", es), ("ring", hs)):
            write(corpus, target, bytes([sel]) + raw)
            again = resigned(token, sign)
            if again:
                write(corpus, target, bytes([sel]) + enc(again))
            parts = decoded(token)
            if parts:
                write(corpus, target, bytes([sel | 1]) + parts[0] + b"\xff" + parts[1])
    # Options for auth.verify_jwt, as JSON (the token target parses them too).
    for case in th.CASES:
        if "::jsonb" in case.sql and len(case.params) == 3 and isinstance(case.params[2], str):
            write(corpus, "token", case.params[2].encode())
    # Well-formed tokens for the fuzz keys, one per option set, and ring kids.
    claims = js(th.GOOD_CLAIMS)
    for sel in range(6):
        for alg in ("HS256", "HS384", "HS512"):
            write(corpus, "verify_hmac", bytes([sel << 1]) + make_token({"alg": alg}, th.GOOD_CLAIMS, HMAC_SECRET).encode())
            write(corpus, "verify_hmac", bytes([(sel << 1) | 1]) + js({"alg": alg, "typ": "JWT"}) + b"\xff" + claims)
        write(corpus, "verify_es256", bytes([sel << 1]) + make_token({"alg": "ES256"}, th.GOOD_CLAIMS, P256).encode())
        write(corpus, "verify_es256", bytes([(sel << 1) | 1]) + js({"alg": "ES256"}) + b"\xff" + claims)
    for kid in ("hs", "old", "es", "next", None, "HS", "hs\n"):
        header = {"alg": "HS256", "typ": "JWT"} if kid is None else {"alg": "HS256", "kid": kid}
        write(corpus, "ring", b"\x00" + make_token(header, th.GOOD_CLAIMS, HMAC_SECRET).encode())
        write(corpus, "ring", b"\x01" + js(header) + b"\xff" + claims)
    write(corpus, "ring", b"\x00" + make_token({"alg": "ES256", "kid": "es"}, th.GOOD_CLAIMS, P256).encode())
    for aud in ("api", ["web", "x"], [], ""):
        for sel in (1, 3, 11):
            write(corpus, "verify_hmac", bytes([sel]) + js({"alg": "HS256"}) + b"\xff" + js({"aud": aud, "iss": "a", "sub": "s", "role": "r", "exp": th.T + 60}))


def seed_keys(corpus):
    for i, text in enumerate(key_texts()):
        raw = enc(text)
        write(corpus, "keys", bytes([0]) + raw)
        write(corpus, "keys", bytes([1 + i % 12]) + raw)
        stripped = text.lstrip("\ufeff").strip()
        if stripped.startswith("{"):
            try:
                value = json.loads(stripped)
            except (ValueError, RecursionError):
                continue
            entries = value.get("keys") if isinstance(value, dict) else None
            for j, jwk in enumerate(entries if isinstance(entries, list) else [value]):
                write(corpus, "jwk", bytes([(i + j) % 13]) + js(jwk))


def seed_requests(corpus):
    sep = "\x7f"
    cases = [
        ({"x-access-token": "h.h.h", "authorization": "Bearer b"}, {"access_token": "c.c.c"}),
        ({"x-access-token": "h.h.h"}, {}),
        ({"authorization": "bearer a.b.c"}, {}),
        ({"authorization": "Basic abc"}, {}),
        ({"x-access-token": "h.h.h"}, {"access_token": ""}),
        ({"authorization": "Bearer " + th.GOOD}, {"access_token": " " + th.GOOD + " "}),
        ({"authorization": "Bearer"}, {"access_token": 5}),
        ({"authorization": "BEARER  \t x "}, {"access_token": None}),
    ]
    for headers, cookies in cases:
        for sources in ("cookie, header, bearer", "header,cookie", " Cookie ,bearer", "cookies", ""):
            for names in (("access_token", "x-access-token"), ("access_token", "X-Access-Token"), ("a", "b")):
                text = sep.join([json.dumps(headers), json.dumps(cookies), sources, *names])
                write(corpus, "request", text.encode())
    write(corpus, "request", sep.join(["not json", "[1]", "cookie", "a", "b"]).encode())
    write(corpus, "request", sep.join(["", "", "", "", ""]).encode())


def seed_responses(corpus):
    texts = [
        "kid \"a\r\nSet-Cookie: x=1\u00e9\\\" is not in the key ring",
        "access_token=" + b64url(b"\x01" * 32),
        "t=",
        "sess=abc",
        "\"quoted\"",
        "role \u202e\u0000 x",
    ]
    for i, text in enumerate(texts):
        write(corpus, "response", bytes([i & 1, 60, 0, 0, 0]) + text.encode())
        write(corpus, "response", bytes([1, 0xFB, 0xFF, 0xFF, 0xFF]) + text.encode())


def seed_identity(corpus):
    claims = [
        {"role": "a", "app": {"role": "b"}, "n": 1},
        {"role": "web", "sub": "u1", "exp": th.T + 3600},
        {"app_metadata": {"role": ""}, "role": None},
        {"a": {"b": {"c": "d"}}, "x": [1, 2], "": "empty"},
    ]
    paths = ["role", "app.role", "missing.role", "n", "app_metadata.role", "a.b.c", ".", "", "..role..", "x.0"]
    for i, c in enumerate(claims):
        for j, path in enumerate(paths):
            for allowed in (b"", b" a, ,b ", b"web,app"):
                write(corpus, "identity", bytes([(i + j) & 0x0F | 0x09]) + js(c) + b"\xff" + path.encode() + b"\xff" + allowed)


# bcrypt as pgcrypto's crypt('secret', gen_salt('bf', 4)) makes it, and argon2 PHC strings at the
# cheapest costs, made with the bcrypt and argon2 crates of the main Cargo.lock.
HASHES = [
    ("secret", "$2a$04$/uaF/uaF/uaF/uaF/uaF/uyUa5B4sNev9rTvA6TvEBWYO4koffwMy"),
    ("secret", "$2b$04$/uaF/uaF/uaF/uaF/uaF/uyUa5B4sNev9rTvA6TvEBWYO4koffwMy"),
    ("Secret", "$2y$04$/uaF/uaF/uaF/uaF/uaF/uyUa5B4sNev9rTvA6TvEBWYO4koffwMy"),
    ("correct horse", "$argon2id$v=19$m=8,t=1,p=1$CQkJCQkJCQkJCQkJCQkJCQ$0F5dP6XW17cai9GCTx+nSJOq4aKBJgNKzs9MzYqRLqw"),
    ("wrong horse", "$argon2id$v=19$m=64,t=2,p=2$CQkJCQkJCQkJCQkJCQkJCQ$TVkQ0bza5PF9I/xROZolvRIZVQrfP/rN7RC+j8eqPjQ"),
    ("correct horse", "$argon2id$v=19$m=16,t=1,p=2$CQkJCQkJCQkJCQkJCQkJCQ$6xN1OVHk5aMHU5+6D4tSRYAgYc2kG1F13yzdENw2KtQ"),
    ("correct horse", "$argon2i$v=16$m=8,t=1,p=1$CQkJCQkJCQkJCQkJCQkJCQ$Fu1TsgN7LehG0Af5NgyMlVKrGm/b0J1M4Q2oeGHV6LE"),
    ("pw", "plaintext"),
    ("pw", "$2b$04$short"),
    ("pw", "$2b$31$/uaF/uaF/uaF/uaF/uaF/uyUa5B4sNev9rTvA6TvEBWYO4koffwMy"),
    ("pw", "$argon2id$v=19$m=4294967295,t=4294967295,p=16777215$CQkJCQkJCQkJCQkJCQkJCQ$AAAA"),
    ("!pw", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"),
    ("pw" * 600, "$argon2id$v=19$m=8,t=1,p=1$CQkJCQkJCQkJCQkJCQkJCQ$0F5dP6XW17cai9GCTx+nSJOq4aKBJgNKzs9MzYqRLqw"),
]


def seed_passwords(corpus):
    for password, stored in HASHES:
        write(corpus, "password", password.encode() + b"\xff" + stored.encode())


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    seed_tokens(corpus)
    seed_keys(corpus)
    seed_requests(corpus)
    seed_responses(corpus)
    seed_identity(corpus)
    seed_passwords(corpus)
    for target in sorted(os.listdir(corpus)):
        print(f"{target}: {len(os.listdir(os.path.join(corpus, target)))} files in {os.path.join(corpus, target)}")


if __name__ == "__main__":
    main()
