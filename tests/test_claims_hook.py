"""The claims hook (pg_auth.claims_hook): a function owned by a superuser that sign-in calls to add
or change the claims of the JWT auth.login issues; it may not change sub, sid, exp, iat or jti,
and when it fails or breaks a rule the sign-in is refused (PA022) and leaves no session. Through
SQL, and through PostgREST with a sign-in function returning the JWT.
"""

import pytest

from conftest import assert_sqlstate, connect, ensure_role, fresh_database, one
from postgrest_harness import AUTHENTICATOR, WEB_USER, E2EDatabase, PostgREST, expect

DB = "pg_auth_claims_hook"
PASSWORD = "a claims hook password"

HOOKS = """
CREATE SCHEMA hooks AUTHORIZATION hook_owner;
SET ROLE hook_owner;
CREATE FUNCTION hooks.tenant(user_id uuid, claims jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT claims || jsonb_build_object('tenant', 'acme', 'features', jsonb_build_array('beta'))
$$;
CREATE FUNCTION hooks.steal_sub(user_id uuid, claims jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT claims || '{"sub": "00000000-0000-4000-8000-000000000000"}'
$$;
CREATE FUNCTION hooks.longer(user_id uuid, claims jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT claims || jsonb_build_object('exp', (claims ->> 'exp')::bigint + 86400)
$$;
CREATE FUNCTION hooks.fails(user_id uuid, claims jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'tenant lookup failed'; END $$;
CREATE FUNCTION hooks.array(user_id uuid, claims jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '[1]'::jsonb $$;
CREATE FUNCTION hooks.wrong_args(claims jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT claims $$;
CREATE FUNCTION hooks.invoker(user_id uuid, claims jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT claims $$;
RESET ROLE;
CREATE FUNCTION hooks.superuser_owned(user_id uuid, claims jsonb) RETURNS jsonb LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT claims $$;
DO $$ DECLARE f regprocedure; BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'hooks'::regnamespace
             AND p.proname NOT IN ('invoker', 'superuser_owned') LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER', f);
    END LOOP;
END $$;
"""


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB) as c:
        ensure_role(c, "web_user")
        ensure_role(c, "hook_owner")
        c.execute(HOOKS)
        c.execute("SELECT auth.generate_key('HS256', 'hook')")
        c.execute("SELECT auth.register('hook@example.com', %s)", (PASSWORD,))
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    yield conn
    conn.close()


def sessions(c):
    return one(c, "SELECT count(*) FROM auth.sessions")


def test_without_a_hook_the_jwt_is_unchanged(c):
    claims = one(c, "SELECT auth.verify_jwt(auth.login('hook@example.com', %s, true) ->> 'jwt')", (PASSWORD,))
    assert set(claims) == {"sub", "role", "email", "sid", "aal", "jti", "iat", "exp"} and claims["aal"] == "aal1"


def test_the_hook_adds_claims_to_the_signed_jwt(c):
    c.execute("SET pg_auth.claims_hook = 'hooks.tenant'")
    login = one(c, "SELECT auth.login('hook@example.com', %s, true)", (PASSWORD,))
    claims = one(c, "SELECT auth.verify_jwt(%s)", (login["jwt"],))
    assert claims["tenant"] == "acme" and claims["features"] == ["beta"]
    assert claims["sid"] == login["session_id"]
    with c.transaction():
        c.execute("GRANT web_user TO CURRENT_USER")
        assert one(c, "SELECT auth.authenticate(%s) ->> 'tenant'", (login["jwt"],)) == "acme"
        c.execute("SET LOCAL ROLE NONE")


@pytest.mark.parametrize("hook, why", [
    ("hooks.steal_sub", "may not change sub"),
    ("hooks.longer", "may not change exp"),
    ("hooks.fails", "failed (the server log says why)"),
    ("hooks.array", "returned no JSON object"),
    ("hooks.wrong_args", "must name a SECURITY DEFINER function (uuid, jsonb) RETURNS jsonb owned by a role that is no superuser"),
    ("hooks.invoker", "must name a SECURITY DEFINER function"),
    ("hooks.superuser_owned", "owned by a role that is no superuser"),
    ("hooks.missing", "must name a SECURITY DEFINER function"),
    ("hooks.tenant; DROP TABLE auth.users", "must name a SECURITY DEFINER function"),
])
def test_a_failing_or_rule_breaking_hook_refuses_the_sign_in_and_leaves_nothing(c, hook, why):
    c.execute("SELECT set_config('pg_auth.claims_hook', %s, false)", (hook,))
    before = sessions(c)
    e = assert_sqlstate(c, "PA022", "SELECT auth.login('hook@example.com', %s, true)", (PASSWORD,))
    assert why in str(e)
    assert sessions(c) == before
    assert one(c, "SELECT count(*) FROM auth.users") == 1
    # A login without a JWT does not call the hook.
    assert one(c, "SELECT auth.login('hook@example.com', %s) ? 'token'", (PASSWORD,))


def test_the_hook_runs_through_postgrest(db):
    d = E2EDatabase("pg_auth_e2e_claims_hook")
    try:
        d.generate_key("HS256", "hook-e2e")
        d.admin.execute("DO $$ BEGIN CREATE ROLE hook_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        d.admin.execute(HOOKS)
        d.admin.execute(f"SELECT auth.register('e2e-hook@example.com', %s, role => '{WEB_USER}')", (PASSWORD,))
        d.admin.execute("""CREATE FUNCTION api.signin(email text, password text) RETURNS text
                           LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
                           AS $$ SELECT auth.login(email, password, true) ->> 'jwt' $$""")
        d.admin.execute("GRANT EXECUTE ON FUNCTION api.signin(text, text) TO e2e_web_anon")
        d.set_role_setting(AUTHENTICATOR, "pg_auth.claims_hook", "hooks.tenant")
        with PostgREST(d, AUTHENTICATOR, pool=1, name="claims_hook") as api:
            jwt = expect(api.request("POST", "/rpc/signin", json={"email": "e2e-hook@example.com", "password": PASSWORD}),
                         200, api)
            me = expect(api.whoami(cookie=jwt), 200, api)
            assert me["jwt"]["tenant"] == "acme" and me["current_user"] == WEB_USER
        d.set_role_setting(AUTHENTICATOR, "pg_auth.claims_hook", "hooks.fails")
        with PostgREST(d, AUTHENTICATOR, pool=1, name="claims_hook_fails") as api:
            r = api.request("POST", "/rpc/signin", json={"email": "e2e-hook@example.com", "password": PASSWORD})
            body = expect(r, 500, api)
            assert body["code"] == "PA022" and "tenant lookup failed" not in body["message"]
    finally:
        d.close()


def test_the_hook_runs_with_its_owners_rights_not_pg_auths(c):
    """What the hook reads cannot run code with pg_auth's rights (live attack on 0.3.0: a view
    the hook read made its owner superuser)."""
    c.execute("""CREATE OR REPLACE FUNCTION hooks.whoami(user_id uuid, claims jsonb) RETURNS jsonb
                 LANGUAGE sql SECURITY DEFINER AS $$ SELECT claims || jsonb_build_object('ran_as', current_user::text) $$""")
    c.execute("ALTER FUNCTION hooks.whoami(uuid, jsonb) OWNER TO hook_owner")
    c.execute("SET pg_auth.claims_hook = 'hooks.whoami'")
    claims = one(c, "SELECT auth.verify_jwt(auth.login('hook@example.com', %s, true) ->> 'jwt')", (PASSWORD,))
    assert claims["ran_as"] == "hook_owner"


def test_an_overload_of_the_hook_changes_nothing(c):
    """The hook is called by its oid: another function of the same name (a schema's owner could
    add one) is neither called nor makes the call ambiguous."""
    c.execute("""CREATE OR REPLACE FUNCTION hooks.tenant(user_id uuid, claims jsonb, extra int DEFAULT 0) RETURNS jsonb
                 LANGUAGE sql AS $$ SELECT '{"hijacked": true}'::jsonb $$""")
    c.execute("SET pg_auth.claims_hook = 'hooks.tenant'")
    claims = one(c, "SELECT auth.verify_jwt(auth.login('hook@example.com', %s, true) ->> 'jwt')", (PASSWORD,))
    assert claims["tenant"] == "acme" and "hijacked" not in claims
