"""Two PostgREST 12.0.2 instances on one database, each with its own pool of connections: what
one does (logout, a key retired or added in SQL) holds at once for every connection of both,
without a restart. Key-ring caches are per backend and invalidated by a statement trigger on
auth.keys; sessions are looked up on every request.
"""

from __future__ import annotations

import os
import time

import pytest
import requests

from conftest import connect, one
from postgrest_process import PostgRESTProcess

DB = "pg_auth_instances"
PASSWORD = "two instances password"
REQUESTS_PER_CHECK = 12  # more than each pool's connections, so every connection answers

SCHEMA = """
CREATE SCHEMA api;
CREATE FUNCTION api.whoami() RETURNS json LANGUAGE sql STABLE
    AS $$ SELECT json_build_object('role', current_user, 'uid', auth.uid()) $$;
CREATE FUNCTION api.login(email text, password text) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN json_build_object('ok', auth.login(email, password) ? 'token');
END $$;
CREATE FUNCTION api.logout() RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$ BEGIN PERFORM auth.logout(); END $$;
GRANT USAGE ON SCHEMA api TO inst_anon, inst_user;
"""


@pytest.fixture(scope="module")
def instances():
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        for role in ("inst_anon", "inst_user"):
            admin.execute(f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("DO $$ BEGIN CREATE ROLE inst_authenticator LOGIN NOINHERIT;"
                      " EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute("GRANT inst_anon, inst_user TO inst_authenticator")
        admin.execute(f"ALTER ROLE inst_authenticator IN DATABASE {DB} SET pg_auth.cookie_secure = off")
    with connect(DB) as c:
        c.execute("CREATE EXTENSION pg_auth")
        c.execute(SCHEMA)
        uid = str(one(c, "SELECT auth.register('two@example.com', %s, role => 'inst_user')", (PASSWORD,)))
    servers = []
    for name in ("a", "b"):
        server = PostgRESTProcess(f"pg_auth_instance_{name}_")
        server.write_config(f"postgres://inst_authenticator@127.0.0.1:{os.environ.get('PGPORT', '5499')}/{DB}",
                            anon_role="inst_anon", pool=4, acquisition_timeout=10)
        servers.append(server.start())
    yield servers, uid
    for server in servers:
        server.stop()


def answers(server, token):
    """The statuses and bodies of REQUESTS_PER_CHECK requests with `token` as the cookie."""
    out = set()
    for _ in range(REQUESTS_PER_CHECK):
        r = requests.get(server.url + "/rpc/whoami", headers={"Cookie": f"access_token={token}"}, timeout=10)
        out.add((r.status_code, r.json().get("role") if r.status_code == 200 else r.json().get("code")))
    return out


def test_a_logout_through_one_instance_is_refused_at_once_through_the_other(instances):
    (a, b), uid = instances
    with requests.Session() as browser:
        r = browser.post(a.url + "/rpc/login", json={"email": "two@example.com", "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, r.text
        token = browser.cookies["access_token"]
    assert answers(a, token) == answers(b, token) == {(200, "inst_user")}
    r = requests.post(b.url + "/rpc/logout", headers={"Cookie": f"access_token={token}"}, timeout=10)
    assert r.status_code == 204, r.text
    assert answers(a, token) == answers(b, token) == {(401, "PA017")}


def test_keys_rotated_in_sql_hold_for_every_connection_of_both_instances(instances):
    (a, b), uid = instances
    with connect(DB) as c:
        c.execute("SELECT auth.generate_key('ES256', 'rotation-1')")
        claims = '{"role": "inst_user", "sub": "%s"}' % uid
        first = one(c, "SELECT auth.sign_jwt(%s::jsonb)", (claims,))
        # Every pooled connection of both instances verifies with the ring, and caches it.
        assert answers(a, first) == answers(b, first) == {(200, "inst_user")}
        c.execute("SELECT auth.retire_key('rotation-1')")
        assert answers(a, first) == answers(b, first) == {(401, "PA010")}
        c.execute("SELECT auth.generate_key('ES256', 'rotation-2')")
        second = one(c, "SELECT auth.sign_jwt(%s::jsonb)", (claims,))
    assert answers(a, second) == answers(b, second) == {(200, "inst_user")}


def test_bearer_mode_two_instances_pick_up_a_new_jwks_with_a_config_reload(instances):
    """Bearer mode: PostgREST verifies the token itself with its jwt-secret before pg_auth sees
    it. With the JWKS kept in the database (ALTER ROLE authenticator SET pgrst.jwt_secret =
    auth.jwks(), db-config on) a NOTIFY pgrst, 'reload config' hands every instance the new keys
    without a restart. A retired key is refused at once by pg_auth, before any reload."""
    _, uid = instances
    with connect(DB) as c:
        c.execute("SELECT auth.generate_key('ES256', 'bearer-1')")
        publish = ("DO $$ BEGIN EXECUTE format('ALTER ROLE inst_authenticator IN DATABASE %I SET pgrst.jwt_secret = %L',"
                   " current_database(), auth.jwks()::text); END $$")
        c.execute(publish)
        claims = '{"role": "inst_user", "sub": "%s"}' % uid
        first = one(c, "SELECT auth.sign_jwt(%s::jsonb)", (claims,))
    servers = []
    for name in ("c", "d"):
        server = PostgRESTProcess(f"pg_auth_instance_{name}_")
        server.write_config(f"postgres://inst_authenticator@127.0.0.1:{os.environ.get('PGPORT', '5499')}/{DB}",
                            anon_role="inst_anon", pool=4, acquisition_timeout=10,
                            extra={"db-config": True, "db-channel-enabled": True})
        servers.append(server.start())
    try:
        def bearer(server, token):
            r = requests.get(server.url + "/rpc/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            return r.status_code, (r.json().get("role") if r.status_code == 200 else r.json().get("code"))

        assert [bearer(s, first) for s in servers] == [(200, "inst_user")] * 2
        with connect(DB) as c:
            c.execute("SELECT auth.generate_key('ES256', 'bearer-2')")
            second = one(c, "SELECT auth.sign_jwt(%s::jsonb)", (claims,))
            # Not in PostgREST's jwt-secret yet: PostgREST itself refuses it (PGRST301).
            assert all(bearer(s, second)[0] == 401 for s in servers)
            c.execute(publish)
            c.execute("NOTIFY pgrst, 'reload config'")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and [bearer(s, second) for s in servers] != [(200, "inst_user")] * 2:
            time.sleep(0.2)
        assert [bearer(s, second) for s in servers] == [(200, "inst_user")] * 2
        with connect(DB) as c:
            c.execute("SELECT auth.retire_key('bearer-1')")
        # Still in PostgREST's jwt-secret, but pg_auth verifies every Bearer token again.
        assert [bearer(s, first) for s in servers] == [(401, "PA010")] * 2
    finally:
        for server in servers:
            server.stop()
