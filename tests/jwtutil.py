"""Key material and hand-made tokens for the tests (Python side: cryptography and PyJWT)."""

import base64
import hashlib
import hmac
import json
import time

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

ALGORITHMS = [
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384",
    "EdDSA",
]

HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def js(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def now() -> int:
    return int(time.time())


# ---- keys --------------------------------------------------------------------------------------

def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key(alg):
    return ec.generate_private_key(ec.SECP256R1() if alg == "ES256" else ec.SECP384R1())


def ed_key():
    return ed25519.Ed25519PrivateKey.generate()


def private_pem(key, fmt="pkcs8") -> str:
    form = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,  # RSA / EC PRIVATE KEY
    }[fmt]
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()).decode()


def public_pem(key, fmt="spki") -> str:
    pub = key.public_key() if hasattr(key, "public_key") else key
    form = {
        "spki": serialization.PublicFormat.SubjectPublicKeyInfo,
        "pkcs1": serialization.PublicFormat.PKCS1,  # RSA PUBLIC KEY
    }[fmt]
    return pub.public_bytes(serialization.Encoding.PEM, form).decode()


def public_jwk(key, alg=None, kid=None) -> dict:
    """The public half as a JWK dict, produced by PyJWT's own serializers."""
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(pub, as_dict=True)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(pub, as_dict=True)
    else:
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(pub, as_dict=True)
    if alg:
        jwk["alg"] = alg
    if kid:
        jwk["kid"] = kid
    return jwk


def oct_jwk(secret: bytes, alg=None, kid=None) -> dict:
    jwk = jwt.algorithms.HMACAlgorithm.to_jwk(secret, as_dict=True)
    if alg:
        jwk["alg"] = alg
    if kid:
        jwk["kid"] = kid
    return jwk


def thumbprint(jwk: dict) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


class KeySet:
    """One Python-made key per algorithm family, shared by a test module (RSA keygen is slow)."""

    def __init__(self):
        self.secrets = {  # HMAC secrets as text: pg_auth uses the text's bytes as the key
            "HS256": "s256-" + "a1B2c3D4e5F6g7H8i9J0" * 2,
            "HS384": "s384-" + "k1L2m3N4o5P6q7R8s9T0" * 3,
            "HS512": "s512-" + "u1V2w3X4y5Z6a7B8c9D0" * 4,
        }
        self.rsa = rsa_key()
        self.ec = {"ES256": ec_key("ES256"), "ES384": ec_key("ES384")}
        self.ed = ed_key()

    def private(self, alg):
        """The key PyJWT signs with for `alg`."""
        if alg.startswith("HS"):
            return self.secrets[alg]
        if alg[:2] in ("RS", "PS"):
            return self.rsa
        if alg.startswith("ES"):
            return self.ec[alg]
        return self.ed

    def public(self, alg):
        return self.private(alg).public_key()

    def pg_public_pem(self, alg):
        """What pg_auth is given to verify: secret text for HMAC, else the public PEM."""
        if alg.startswith("HS"):
            return self.secrets[alg]
        return public_pem(self.private(alg))

    def pg_private_pem(self, alg, fmt="pkcs8"):
        if alg.startswith("HS"):
            return self.secrets[alg]
        return private_pem(self.private(alg), fmt)

    def pg_jwk(self, alg, with_alg=True, kid=None):
        if alg.startswith("HS"):
            return oct_jwk(self.secrets[alg].encode(), alg if with_alg else None, kid)
        return public_jwk(self.private(alg), alg if with_alg else None, kid)


# ---- hand-made tokens ------------------------------------------------------------------------

def sign_raw(alg: str, signing_input: bytes, key) -> bytes:
    """Signature bytes as JWS defines them, computed directly with cryptography / hmac."""
    if alg.startswith("HS"):
        k = key.encode() if isinstance(key, str) else key
        return hmac.new(k, signing_input, HMAC_HASHES[alg]).digest()
    digest = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
    if alg.startswith("RS"):
        return key.sign(signing_input, padding.PKCS1v15(), digest[alg[2:]]())
    if alg.startswith("PS"):
        h = digest[alg[2:]]()
        return key.sign(signing_input, padding.PSS(padding.MGF1(h), h.digest_size), h)
    if alg.startswith("ES"):
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        der = key.sign(signing_input, ec.ECDSA(digest[alg[2:]]()))
        r, s = decode_dss_signature(der)
        n = 32 if alg == "ES256" else 48
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")
    return key.sign(signing_input)


def make_token(header, payload, key=None, alg=None, signature=None) -> str:
    """A compact JWS from raw parts. `header`/`payload` may be dicts/lists/scalars (JSON-encoded)
    or bytes (used as is). The signature is computed with `key` for `alg` (default: the header's
    alg) unless `signature` (bytes or an already encoded str) is given."""
    h = header if isinstance(header, bytes) else js(header)
    p = payload if isinstance(payload, bytes) else js(payload)
    signing_input = (b64url(h) + "." + b64url(p)).encode()
    if signature is None:
        alg = alg or header["alg"]
        signature = sign_raw(alg, signing_input, key)
    sig = signature if isinstance(signature, str) else b64url(signature)
    return signing_input.decode() + "." + sig
