"""A test identity provider: signing keys, its JWKS served over HTTP on 127.0.0.1 (what it serves
can be changed, broken or slowed by the test), and ID tokens signed with its keys (PyJWT)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.test.example"
ANY_SUBJECT = object()  # id_token(): a new random subject
CLIENT_ID = "todo-client"


class SigningKey:
    def __init__(self, kid: str, alg: str = "RS256"):
        self.kid, self.alg = kid, alg
        if alg.startswith("RS"):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update(kid=kid, alg=alg, use="sig")


class IdentityProvider:
    """Serves {"keys": [...]} of `published` at `jwks_url`; `status`, `body` and `delay` override
    the answer. Counts the fetches."""

    def __init__(self, issuer: str = ISSUER, client_id: str = CLIENT_ID):
        self.issuer, self.client_id = issuer, client_id
        self.published: list[SigningKey] = []
        self.status, self.body, self.delay, self.redirect = 200, None, 0.0, None
        self.drip = None  # seconds between single bytes of a body that never ends
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                provider.fetches += 1
                time.sleep(provider.delay)
                if provider.drip:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    try:
                        for _ in range(200):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(provider.drip)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                if provider.redirect:
                    self.send_response(302)
                    self.send_header("Location", provider.redirect)
                    self.end_headers()
                    return
                body = provider.body if provider.body is not None else json.dumps(
                    {"keys": [k.jwk for k in provider.published]}).encode()
                self.send_response(provider.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def id_token(self, key: SigningKey, *, sub=ANY_SUBJECT, email: str | None = None,
                 email_verified=True, nonce: str | None = None, ttl: int = 300, headers: dict | None = None,
                 **claims) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.client_id, "sub": str(uuid.uuid4()) if sub is ANY_SUBJECT else sub,
                   "iat": now, "exp": now + ttl, **claims}
        if email is not None:
            payload["email"] = email
            payload["email_verified"] = email_verified
        if nonce is not None:
            payload["nonce"] = nonce
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})})

    def close(self):
        self.server.shutdown()
        self.server.server_close()
