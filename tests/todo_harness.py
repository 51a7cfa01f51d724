"""Harness for tests/test_todo_app.py and tests/test_data_safety.py.

* `fresh_database()` / `drop_database()`: databases with pg_auth (and pgcrypto) installed.
* `TodoApp`: a fresh database with the todo example app (examples/todo/schema.sql, loaded with
  psql like scripts/demo.sh does), cheap argon2 cost and a low login throttle for the test
  database, and the real PostgREST 12 binary serving it on a free loopback port (the process
  itself is tests/postgrest_process.py, shared with tests/postgrest_harness.py).
* `Client`: one browser-like user agent (a requests.Session keeping the session cookie) with a
  timeout on every call.
* Cookie helpers that read the raw `Set-Cookie` headers of a response.

Everything is bounded: psycopg connect/statement timeouts, HTTP timeouts, a deadline for
PostgREST to become ready, and PostgREST is terminated at teardown (atexit as a last resort).
PG_AUTH_E2E_KEEP=1 keeps the databases and the PostgREST directory for inspection.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql
import requests

from conftest import PG_BIN, PGHOST, PGPORT, PGUSER, dsn
from postgrest_process import KEEP, PostgRESTProcess, require_binary
from postgrest_process import describe as describe_exchange

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "examples" / "todo" / "schema.sql"


HTTP_TIMEOUT = 10  # seconds, every HTTP request
COMMAND_TIMEOUT = 60  # seconds for psql, pg_dump, pg_restore

# Cheap argon2id for test databases (the defaults cost ~19 MiB and tens of ms per hash).
ARGON2_MEMORY_KIB = 1024
ARGON2_ITERATIONS = 1
ARGON2_PREFIX = f"$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p=1$"

COOKIE = "access_token"


# ---- databases ------------------------------------------------------------------------------------

def connect(dbname: str, *, autocommit: bool = True) -> psycopg.Connection:
    """A connection as the superuser with bounded statements and cheap argon2 for this session."""
    conn = psycopg.connect(dsn(dbname), autocommit=autocommit)
    conn.execute("SET statement_timeout = '30s'")
    conn.execute("SET lock_timeout = '20s'")
    conn.execute(f"SET pg_auth.argon2_memory_kib = {ARGON2_MEMORY_KIB}")
    conn.execute(f"SET pg_auth.argon2_iterations = {ARGON2_ITERATIONS}")
    if not autocommit:
        conn.commit()
    return conn


def pg_env() -> dict:
    env = dict(os.environ)
    env.update(PGHOST=PGHOST, PGPORT=str(PGPORT), PGUSER=PGUSER, PGCONNECT_TIMEOUT="10")
    return env


def run_pg_tool(tool: str, *args: str) -> subprocess.CompletedProcess:
    """Runs psql / pg_dump / pg_restore; fails the test with its output on a non-zero exit."""
    proc = subprocess.run(
        [str(PG_BIN / tool), *args], env=pg_env(), capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{tool} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
    return proc


def drop_database(name: str) -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def fresh_database(name: str, *, extensions=("pg_auth", "pgcrypto")) -> None:
    """(Re)creates `name` with the given extensions and a cheap argon2 cost for every session."""
    drop_database(name)
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dsn(name), autocommit=True) as c:
        for ext in extensions:
            c.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(ext)))
    set_database_settings(name, {
        "pg_auth.argon2_memory_kib": ARGON2_MEMORY_KIB,
        "pg_auth.argon2_iterations": ARGON2_ITERATIONS,
    })


def set_database_settings(name: str, settings: dict) -> None:
    with psycopg.connect(dsn(name), autocommit=True) as c:
        for key, value in settings.items():
            c.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(name), sql.SQL(key), sql.Literal(str(value))))


def ensure_member_role(conn: psycopg.Connection, role: str) -> None:
    """A NOLOGIN role granted to the connected superuser, so auth.authenticate() as that superuser
    may switch to it (roles are cluster-wide: created only when missing)."""
    conn.execute(sql.SQL(
        "DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    ).format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# ---- cookies --------------------------------------------------------------------------------------

def set_cookie_headers(resp: requests.Response) -> list[str]:
    """Every raw Set-Cookie header of the response (requests would join them with ', ')."""
    return list(resp.raw.headers.getlist("Set-Cookie"))


def parse_set_cookie(header: str) -> tuple[str, str, dict]:
    """`name=value; Attr; Attr=v` → (name, value, {attr-lowercase: value-or-True})."""
    first, *rest = [p.strip() for p in header.split(";")]
    name, _, value = first.partition("=")
    attrs: dict = {}
    for part in rest:
        if not part:
            continue
        key, eq, val = part.partition("=")
        attrs[key.strip().lower()] = val.strip() if eq else True
    return name, value, attrs


def session_cookie(resp: requests.Response) -> tuple[str, dict] | None:
    """(value, attributes) of the one access_token Set-Cookie, or None when there is none."""
    found = [parse_set_cookie(h) for h in set_cookie_headers(resp)]
    found = [(v, a) for n, v, a in found if n == COOKIE]
    assert len(found) <= 1, f"several {COOKIE} cookies set: {set_cookie_headers(resp)}"
    return found[0] if found else None


def describe(resp: requests.Response, app: "TodoApp | None" = None) -> str:
    req = resp.request
    return describe_exchange(
        resp, app,
        request_details=f"cookie={req.headers.get('Cookie')!r} body={req.body!r:.300}",
        extra_lines=[f"set-cookie: {set_cookie_headers(resp)}"],
    )


# ---- the app --------------------------------------------------------------------------------------

class TodoApp(PostgRESTProcess):
    """The todo example app in a fresh database, served by a real PostgREST process."""

    def __init__(self, dbname: str, *, settings: dict | None = None):
        super().__init__("pg_auth_todo_e2e_")
        self.dbname = dbname
        self.settings = settings or {}
        self.admin: psycopg.Connection | None = None

    # -- lifecycle --
    def setup_database(self) -> None:
        fresh_database(self.dbname)
        run_pg_tool("psql", "-q", "-X", "-d", self.dbname, "-v", "ON_ERROR_STOP=1", "-f", str(SCHEMA))
        set_database_settings(self.dbname, self.settings)
        # The schema sets these for the (cluster-wide) authenticator role; repeating them for this
        # database keeps the suite independent of what another suite does to that role.
        with psycopg.connect(dsn(self.dbname), autocommit=True) as c:
            settings = [("pg_auth.cookie_secure", "off"), ("pg_auth.token_sources", "cookie, api_key")]
            if os.environ.get("PG_AUTH_PGRST_ERRORS") == "off":  # PostgREST 11
                settings.append(("pg_auth.pgrst_errors", "off"))
            for key, value in settings:
                c.execute(sql.SQL("ALTER ROLE authenticator IN DATABASE {} SET {} = {}").format(
                    sql.Identifier(self.dbname), sql.SQL(key), sql.Literal(value)))
        self.admin = connect(self.dbname)

    def start(self) -> "TodoApp":
        require_binary()
        self.setup_database()
        self.write_config(
            f"postgres://authenticator@{PGHOST}:{PGPORT}/{self.dbname}", anon_role="web_anon",
            pool=4, acquisition_timeout=10,
        )
        return super().start()

    def stop(self) -> None:
        super().stop()
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        if not KEEP:
            try:
                drop_database(self.dbname)
            except psycopg.Error:
                pass

    # -- SQL as the superuser --
    def one(self, query: str, params=()):
        assert self.admin is not None
        row = self.admin.execute(query, params).fetchone()
        assert row is not None, f"no row from {query!r}"
        return row[0]

    def execute(self, query: str, params=()) -> None:
        assert self.admin is not None
        self.admin.execute(query, params)

    def session_id_of(self, token: str):
        return self.one("SELECT id FROM auth.sessions WHERE token_hash = %s", (token_hash(token),))

    def client(self) -> "Client":
        return Client(self)


class Client:
    """One user agent: keeps the cookies PostgREST sets, like a browser would."""

    def __init__(self, app: TodoApp):
        self.app = app
        self.http = requests.Session()

    def request(self, method: str, path: str, *, cookie: str | None = None, headers: dict | None = None,
                **kw) -> requests.Response:
        """`cookie`: send exactly `access_token=<cookie>` instead of the jar's cookies."""
        h = dict(headers or {})
        if cookie is not None:
            h["Cookie"] = f"{COOKIE}={cookie}"
            with requests.Session() as once:  # the jar is neither used nor changed
                return once.request(method, self.app.url + path, headers=h, timeout=HTTP_TIMEOUT, **kw)
        return self.http.request(method, self.app.url + path, headers=h, timeout=HTTP_TIMEOUT, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json=None, **kw) -> requests.Response:
        return self.request("POST", path, json=json if json is not None else {}, **kw)

    def patch(self, path: str, json, **kw) -> requests.Response:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        return self.request("DELETE", path, **kw)

    @property
    def token(self) -> str | None:
        """The session cookie the jar holds (None once cleared)."""
        return self.http.cookies.get(COOKIE)

    # -- the app's account API --
    def register(self, email: str, name: str, password: str) -> requests.Response:
        return self.post("/rpc/register", {"email": email, "name": name, "password": password})

    def login(self, email: str, password: str) -> requests.Response:
        return self.post("/rpc/login", {"email": email, "password": password})

    def logout(self, **kw) -> requests.Response:
        return self.post("/rpc/logout", **kw)

    def refresh(self, **kw) -> requests.Response:
        return self.post("/rpc/refresh_session", **kw)

    def me(self, **kw) -> requests.Response:
        return self.get("/rpc/current_user", **kw)

    def close(self) -> None:
        self.http.close()
