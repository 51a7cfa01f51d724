"""Harness for the end-to-end tests that drive the real PostgREST 12 binary (tests/test_postgrest*.py).

What it provides:

* `E2EDatabase`: a fresh database (one per test module) with pg_auth, the web roles, a schema `api`
  with an RLS-protected table and `api.whoami()`, and helpers that mint tokens with
  `auth.sign_jwt()` as the superuser.
* `PostgREST`: one PostgREST subprocess on a free loopback port with its own config file and log,
  started with a bounded wait and always terminated at teardown (the process itself is
  tests/postgrest_process.py, shared with tests/todo_harness.py).
* `expect()`: status assertions whose failure message carries the response and the tail of the
  PostgREST log.

Roles are cluster-wide, so the ones made here carry an `e2e_` prefix (they cannot clash with roles
other suites or a demo create) and are (re)created idempotently. Per-role settings are made with
`ALTER ROLE … IN DATABASE …`, so they vanish with the database.

Environment: PGHOST / PGPORT / PGUSER (default 127.0.0.1:5499, postgres; scripts/test.sh starts
that cluster), PG_AUTH_POSTGREST (the PostgREST binary; scripts/test.sh exports it),
PG_AUTH_E2E_KEEP=1 keeps the databases and the PostgREST config and log directories
(/tmp/pg_auth_e2e_*) after the run for inspection.
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
from psycopg import sql
import requests

from postgrest_process import KEEP, PostgRESTProcess, describe

from conftest import PGHOST, PGPORT, PGUSER, dsn
from jwtutil import b64url, b64url_decode


HTTP_TIMEOUT = 5  # seconds, every HTTP request

# ---- roles ----------------------------------------------------------------------------------------
AUTHENTICATOR = "e2e_authenticator"  # LOGIN NOINHERIT, granted WEB_ANON, WEB_USER and ADMIN
AUTHENTICATOR_CO = "e2e_authenticator_co"  # claims-only mode, granted WEB_ANON only
AUTHENTICATOR_STRICT = "e2e_authenticator_strict"  # audience + issuer required, anonymous off
WEB_ANON = "e2e_web_anon"
WEB_USER = "e2e_web_user"
OTHER_ROLE = "e2e_other_role"  # exists, granted to no authenticator
ADMIN = "e2e_admin"  # SUPERUSER NOLOGIN, granted to AUTHENTICATOR (must still be refused)

AUDIENCE = "e2e-api"
ISSUER = "https://issuer.e2e.example"

# Subjects (uuids, so auth.uid() returns them) and the rows they own.
ALICE = "a11ce000-0000-4000-8000-000000000001"
BOB = "b0b00000-0000-4000-8000-000000000002"
CAROL = "ca401000-0000-4000-8000-000000000003"
ROWS = [
    (ALICE, False, "alice private 1"),
    (ALICE, False, "alice private 2"),
    (BOB, False, "bob private"),
    (CAROL, True, "carol public"),
]


def connect(dbname: str, user: str = PGUSER) -> psycopg.Connection:
    conn = psycopg.connect(dsn(dbname, user), autocommit=True)
    conn.execute("SET statement_timeout = '20s'")
    return conn


def payload_of(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[1]))


def header_of(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[0]))


def with_payload(token: str, **changes) -> str:
    """The token with its payload re-encoded with `changes`, keeping the original signature."""
    h, p, s = token.split(".")
    payload = json.loads(b64url_decode(p))
    payload.update(changes)
    return ".".join([h, b64url(json.dumps(payload, separators=(",", ":")).encode()), s])


def flip_payload_char(token: str) -> str:
    """The token with one character in the middle of its payload segment changed."""
    h, p, s = token.split(".")
    i = len(p) // 2
    p = p[:i] + ("A" if p[i] != "A" else "B") + p[i + 1 :]
    return ".".join([h, p, s])


# ---- database ---------------------------------------------------------------------------------------

ROLE_SQL = [
    f"CREATE ROLE {AUTHENTICATOR} LOGIN NOINHERIT NOSUPERUSER",
    f"CREATE ROLE {AUTHENTICATOR_CO} LOGIN NOINHERIT NOSUPERUSER",
    f"CREATE ROLE {AUTHENTICATOR_STRICT} LOGIN NOINHERIT NOSUPERUSER",
    f"CREATE ROLE {WEB_ANON} NOLOGIN",
    f"CREATE ROLE {WEB_USER} NOLOGIN",
    f"CREATE ROLE {OTHER_ROLE} NOLOGIN",
    f"CREATE ROLE {ADMIN} NOLOGIN SUPERUSER",
]


def ensure_roles(admin: psycopg.Connection) -> None:
    """Creates the cluster-wide roles unless they exist, and puts their attributes and grants right
    (an earlier run may have left them in another state)."""
    for stmt in ROLE_SQL:
        name = stmt.split()[2]
        admin.execute(
            f"DO $$ BEGIN {stmt}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        attrs = stmt.split(name, 1)[1]
        admin.execute(f"ALTER ROLE {name} {attrs}")
    # Only the memberships the tests rely on: drop any other grant among our roles first.
    for member in (AUTHENTICATOR, AUTHENTICATOR_CO, AUTHENTICATOR_STRICT):
        for role in (WEB_ANON, WEB_USER, OTHER_ROLE, ADMIN):
            admin.execute(f"REVOKE {role} FROM {member}")
    admin.execute(f"GRANT {WEB_ANON}, {WEB_USER}, {ADMIN} TO {AUTHENTICATOR}")
    admin.execute(f"GRANT {WEB_ANON}, {WEB_USER} TO {AUTHENTICATOR_STRICT}")
    admin.execute(f"GRANT {WEB_ANON} TO {AUTHENTICATOR_CO}")


SCHEMA_SQL = f"""
CREATE EXTENSION pg_auth;
CREATE SCHEMA api;
CREATE TABLE api.items (
    id     serial PRIMARY KEY,
    owner  text NOT NULL,
    public boolean NOT NULL DEFAULT false,
    body   text
);
ALTER TABLE api.items ENABLE ROW LEVEL SECURITY;
-- Rows are visible when public or owned by the token's subject; users insert only their own.
CREATE POLICY items_read ON api.items FOR SELECT
    USING (public OR owner = (SELECT auth.claim('sub')));
CREATE POLICY items_insert ON api.items FOR INSERT
    WITH CHECK (owner = (SELECT auth.jwt() ->> 'sub'));
GRANT USAGE ON SCHEMA api TO {WEB_ANON}, {WEB_USER};
GRANT SELECT ON api.items TO {WEB_ANON}, {WEB_USER};
GRANT INSERT ON api.items TO {WEB_USER};
GRANT USAGE ON SEQUENCE api.items_id_seq TO {WEB_USER};

CREATE FUNCTION api.whoami() RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'current_user', current_user,
        'session_user', session_user,
        'jwt', auth.jwt(),
        'uid', auth.uid(),
        'sub', auth.claim('sub'),
        'role_claim', auth.role(),
        'email', auth.email(),
        'backend_pid', pg_backend_pid())
$$;
GRANT EXECUTE ON FUNCTION api.whoami() TO {WEB_ANON}, {WEB_USER};
"""


class E2EDatabase:
    """A fresh database with pg_auth, the test schema and per-authenticator settings."""

    def __init__(self, name: str):
        self.name = name
        with connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
            ensure_roles(admin)
        self.admin = connect(name)
        self.admin.execute(SCHEMA_SQL)
        for owner, public, body in ROWS:
            self.admin.execute(
                "INSERT INTO api.items (owner, public, body) VALUES (%s, %s, %s)", (owner, public, body)
            )
        # The strict authenticator: audience and issuer required, no anonymous access.
        self.set_role_setting(AUTHENTICATOR_STRICT, "pg_auth.audience", AUDIENCE)
        self.set_role_setting(AUTHENTICATOR_STRICT, "pg_auth.issuer", ISSUER)
        self.set_role_setting(AUTHENTICATOR_STRICT, "pg_auth.anonymous", "off")
        # The claims-only authenticator never switches role.
        self.set_role_setting(AUTHENTICATOR_CO, "pg_auth.claims_only", "on")

    def set_role_setting(self, role: str, name: str, value: str) -> None:
        self.admin.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                sql.Identifier(role),
                sql.Identifier(self.name),
                sql.SQL(name),
                sql.Literal(value),
            )
        )

    def one(self, sql: str, params=()):
        row = self.admin.execute(sql, params).fetchone()
        assert row is not None, f"no row from {sql!r}"
        return row[0]

    def generate_key(self, alg: str, kid: str | None = None) -> str:
        return self.one("SELECT auth.generate_key(%s, %s)", (alg, kid))

    def jwks(self) -> dict:
        return self.one("SELECT auth.jwks()")

    def sign(self, claims: dict | None = None, *, ttl: int | None = 300, **more) -> str:
        """A token signed by auth.sign_jwt() (newest active ring key) with iat, exp (unless
        ttl is None) and a fresh jti added to `claims`."""
        now = int(time.time())
        body: dict = {"iat": now, "jti": str(uuid.uuid4())}
        if ttl is not None:
            body["exp"] = now + ttl
        body.update(claims or {})
        body.update(more)
        return self.one("SELECT auth.sign_jwt(%s::jsonb)", (json.dumps(body),))

    def user_token(self, sub: str = ALICE, role: str = WEB_USER, **more) -> str:
        return self.sign({"role": role, "sub": sub, "email": f"{sub[:4]}@example.com"}, **more)

    def close(self) -> None:
        self.admin.close()
        if KEEP:
            return
        with connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


# ---- PostgREST ------------------------------------------------------------------------------------

class PostgREST(PostgRESTProcess):
    """One PostgREST process serving an E2EDatabase as `authenticator`. Use as a context manager
    or call start()/stop()."""

    def __init__(self, db: E2EDatabase, authenticator: str, *, anon_role: str = WEB_ANON,
                 pool: int = 1, jwt_secret: str | None = None, jwt_aud: str | None = None,
                 name: str | None = None):
        super().__init__(f"pg_auth_e2e_{name or authenticator}_")
        self.db = db
        self.authenticator = authenticator
        self.session = requests.Session()
        extra: dict = {}
        if jwt_secret is not None:
            secret_file = self.dir / "jwt-secret"
            secret_file.write_text(jwt_secret)
            extra["jwt-secret"] = f"@{secret_file}"
        if jwt_aud is not None:
            extra["jwt-aud"] = jwt_aud
        self.write_config(
            f"postgres://{authenticator}@{PGHOST}:{PGPORT}/{db.name}", anon_role=anon_role,
            pool=pool, acquisition_timeout=5, pool_max_idletime=600, db_config=False, extra=extra,
        )

    def stop(self) -> None:
        self.session.close()
        super().stop()

    # -- HTTP --
    def request(self, method: str, path: str, *, cookie: str | None = None, header: str | None = None,
                bearer: str | None = None, headers: dict | None = None, **kw) -> requests.Response:
        """`cookie`: a JWT sent as `Cookie: access_token=…`; `header`: one sent as
        `x-access-token`; `bearer`: one sent as `Authorization: Bearer …`."""
        h = dict(headers or {})
        if cookie is not None:
            h["Cookie"] = f"access_token={cookie}"
        if header is not None:
            h["x-access-token"] = header
        if bearer is not None:
            h["Authorization"] = f"Bearer {bearer}"
        # A fresh Session per call would open a connection per request; one keep-alive session
        # never carries cookies over, since requests only stores cookies the server sets and the
        # only ones ours sets are clearing ones (Max-Age=0).
        self.session.cookies.clear()
        return self.session.request(method, self.url + path, headers=h, timeout=HTTP_TIMEOUT, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def whoami(self, **kw) -> requests.Response:
        return self.get("/rpc/whoami", **kw)


def expect(resp: requests.Response, status: int, server: PostgREST | None = None):
    """Asserts the status; returns the JSON body (or None). The failure message shows the request,
    the response and the end of the PostgREST log."""
    assert resp.status_code == status, f"expected HTTP {status}\n{describe(resp, server)}"
    if resp.content and "json" in resp.headers.get("Content-Type", ""):
        return resp.json()
    return None


def assert_invalid_token(resp: requests.Response, server: PostgREST, *, from_cookie: bool,
                         description: str | None = None, code: str | None = None) -> dict:
    """401 as pg_auth answers a refused token: WWW-Authenticate with error="invalid_token", a JSON
    body {code, message, details, hint}, and a clearing Set-Cookie only for a cookie token."""
    body = expect(resp, 401, server)
    info = describe(resp, server)
    www = resp.headers.get("WWW-Authenticate", "")
    assert www.startswith("Bearer ") and 'error="invalid_token"' in www, info
    assert isinstance(body, dict) and set(body) >= {"code", "message", "details", "hint"}, info
    if code is not None:
        assert body["code"] == code, info
    if description is not None:
        assert description in body["message"], info
        assert description.replace('"', "'") in www, info
    cookie = resp.headers.get("Set-Cookie")
    if from_cookie:
        assert cookie is not None, f"no Set-Cookie clearing the bad cookie\n{info}"
        assert cookie.startswith("access_token=;"), info
        assert "Max-Age=0" in cookie and "HttpOnly" in cookie and "Path=/" in cookie, info
    else:
        assert cookie is None, f"Set-Cookie for a token that did not come from a cookie\n{info}"
    return body
