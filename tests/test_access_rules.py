"""Access rules from a declaration (sql/policies.sql): auth.grant_access compiles "role may read /
read_mine / create / update / delete / all on this table" into GRANTs and row-level security
policies that PostgreSQL enforces; auth.revoke_access removes exactly what it made;
auth.access_rules lists them. Identifiers with odd characters, idempotency, who may declare, and
the rules at work through the real PostgREST.
"""

import psycopg
import pytest

from conftest import assert_sqlstate, connect, one
from postgrest_harness import ALICE, AUTHENTICATOR, BOB, WEB_ANON, WEB_USER, E2EDatabase, PostgREST, describe, expect

DB = "pg_auth_access_rules"
ODD_ROLE = 'web "user"; drop role x'
ODD_TABLE = '"my schema"."odd ""notes"" table"'


@pytest.fixture
def c():
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        admin.execute(f"""DO $$ BEGIN CREATE ROLE {psycopg.sql.Identifier(ODD_ROLE).as_string(admin)} NOLOGIN;
                          EXCEPTION WHEN duplicate_object THEN NULL; END $$""")
    conn = connect(DB)
    conn.execute("CREATE EXTENSION pg_auth")
    conn.execute('CREATE SCHEMA "my schema"')
    conn.execute(f"CREATE TABLE {ODD_TABLE} (id serial PRIMARY KEY, owner uuid, body text)")
    yield conn
    conn.close()


def rules(c):
    return c.execute("""SELECT role, action, policy, command, using_expression, check_expression, privilege, granted
                        FROM auth.access_rules ORDER BY policy""").fetchall()


def privileges(c, role=ODD_ROLE):
    return sorted(r[0] for r in c.execute(
        """SELECT p.privilege_type FROM pg_class c, aclexplode(c.relacl) p
            WHERE c.oid = %s::regclass AND p.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)""",
        (ODD_TABLE, role)).fetchall())


def test_rules_compile_to_policies_and_grants_with_odd_identifiers(c):
    ran = [r[0] for r in c.execute("SELECT auth.grant_access(%s, %s, '{read_mine,create,update,delete}', 'owner')",
                                   (ODD_TABLE, ODD_ROLE)).fetchall()]
    assert any("ENABLE ROW LEVEL SECURITY" in s for s in ran)
    assert one(c, "SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (ODD_TABLE,))
    got = rules(c)
    assert [(r[1], r[3], r[6], r[7]) for r in got] == [
        ("create", "INSERT", "INSERT", True), ("delete", "DELETE", "DELETE", True),
        ("read_mine", "SELECT", "SELECT", True), ("update", "UPDATE", "UPDATE", True)]
    assert {r[0] for r in got} == {ODD_ROLE}
    assert all(r[2].startswith("pg_auth_") for r in got)
    by_action = {r[1]: r for r in got}
    assert by_action["read_mine"][4] == "(owner = ( SELECT auth.uid() AS uid))"
    assert by_action["create"][5] == "(owner = ( SELECT auth.uid() AS uid))"
    assert privileges(c) == ["DELETE", "INSERT", "SELECT", "UPDATE"]


def test_running_it_again_changes_nothing(c):
    args = (ODD_TABLE, ODD_ROLE)
    c.execute("SELECT auth.grant_access(%s, %s, '{all}', 'owner')", args)
    before = (rules(c), privileges(c))
    c.execute("SELECT auth.grant_access(%s, %s, '{all}', 'owner')", args)
    assert (rules(c), privileges(c)) == before
    assert [r[1] for r in before[0]] == ["create", "delete", "read", "update"]


def test_removal_revokes_only_what_pg_auth_granted(c):
    c.execute(f"GRANT SELECT ON {ODD_TABLE} TO {psycopg.sql.Identifier(ODD_ROLE).as_string(c)}")
    c.execute("SELECT auth.grant_access(%s, %s, '{read,read_mine,create}', 'owner')", (ODD_TABLE, ODD_ROLE))
    assert {r[1]: r[7] for r in rules(c)} == {"read": False, "read_mine": False, "create": True}
    c.execute("SELECT auth.revoke_access(%s, %s, '{read}')", (ODD_TABLE, ODD_ROLE))
    assert [r[1] for r in rules(c)] == ["create", "read_mine"]
    c.execute("SELECT auth.revoke_access(%s, %s)", (ODD_TABLE, ODD_ROLE))
    assert rules(c) == []
    assert privileges(c) == ["SELECT"]  # granted by hand before: kept


def test_a_long_role_name_gets_a_hashed_policy_name(c):
    long_role = "r" * 60
    c.execute(f"DO $$ BEGIN CREATE ROLE {long_role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    c.execute("SELECT auth.grant_access(%s, %s, '{read}')", (ODD_TABLE, long_role))
    c.execute("SELECT auth.grant_access(%s, %s, '{read_mine}', 'owner')", (ODD_TABLE, long_role))
    names = [r[2] for r in rules(c) if r[0] == long_role]
    assert len(names) == 2 and all(len(n.encode()) <= 63 for n in names) and len(set(names)) == 2


@pytest.mark.parametrize("call, why", [
    ("auth.grant_access(%s, 'no_such_role', '{read}')", "does not exist"),
    ("auth.grant_access(%s, 'postgres', '{fly}')", "unknown action"),
    ("auth.grant_access(%s, 'postgres', '{read,NULL}')", "unknown action"),
    ("auth.grant_access(%s, 'postgres', '{}')", "at least one action"),
    ("auth.grant_access(%s, 'postgres', NULL)", "at least one action"),
    ("auth.grant_access(%s, 'postgres', '{read_mine}')", "needs an owner_column"),
    ("auth.grant_access(%s, 'postgres', '{read}', 'body')", "no uuid column"),
    ("auth.grant_access(%s, 'postgres', '{read}', 'missing')", "no uuid column"),
])
def test_bad_declarations_are_refused_with_a_clear_error(c, call, why):
    e = assert_sqlstate(c, "22023", f"SELECT {call}", (ODD_TABLE,))
    assert why in str(e)
    assert rules(c) == []


def test_a_view_is_not_a_table(c):
    c.execute("CREATE VIEW public.v AS SELECT 1 AS x")
    e = assert_sqlstate(c, "22023", "SELECT auth.grant_access('public.v', 'postgres', '{read}')")
    assert "is not a table" in str(e)


def test_only_the_table_owner_can_declare_rules(c):
    c.execute("DO $$ BEGIN CREATE ROLE rules_stranger NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    c.execute("GRANT EXECUTE ON FUNCTION auth.grant_access(regclass, name, text[], name) TO rules_stranger")
    c.execute('GRANT USAGE ON SCHEMA "my schema" TO rules_stranger')
    with c.transaction(force_rollback=True):
        c.execute("SET LOCAL ROLE rules_stranger")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT auth.grant_access(%s, 'rules_stranger', '{read}')", (ODD_TABLE,))


# ---- through PostgREST ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def notes():
    d = E2EDatabase("pg_auth_e2e_rules")
    d.admin.execute("CREATE TABLE api.notes (id serial PRIMARY KEY, owner uuid NOT NULL DEFAULT auth.uid(), body text)")
    d.admin.execute(f"GRANT USAGE ON SEQUENCE api.notes_id_seq TO {WEB_USER}")
    d.admin.execute("INSERT INTO api.notes (owner, body) VALUES (%s, 'alice 1'), (%s, 'bob 1')", (ALICE, BOB))
    d.one("SELECT count(*) FROM auth.grant_access('api.notes', %s, '{read_mine,create,update,delete}', 'owner')", (WEB_USER,))
    d.generate_key("HS256", "rules")
    with PostgREST(d, AUTHENTICATOR, pool=1, name="rules") as p:
        yield d, p
    d.close()


def test_rules_hold_through_postgrest(notes):
    d, api = notes
    alice, bob = d.user_token(sub=ALICE), d.user_token(sub=BOB)
    assert [n["body"] for n in expect(api.get("/notes", cookie=alice), 200, api)] == ["alice 1"]
    r = api.request("POST", "/notes", cookie=alice, json={"body": "alice 2"})
    expect(r, 201, api)
    forged = api.request("POST", "/notes", cookie=alice, json={"body": "as bob", "owner": BOB})
    assert forged.status_code in (401, 403), describe(forged, api)  # WITH CHECK: only own rows
    bob_note = d.one("SELECT id FROM api.notes WHERE owner = %s", (BOB,))
    r = api.request("PATCH", f"/notes?id=eq.{bob_note}", cookie=alice, json={"body": "changed"},
                    headers={"Prefer": "return=representation"})
    assert expect(r, 200, api) == [], describe(r, api)
    r = api.request("DELETE", f"/notes?id=eq.{bob_note}", cookie=alice, headers={"Prefer": "return=representation"})
    assert expect(r, 200, api) == []
    assert d.one("SELECT body FROM api.notes WHERE id = %s", (bob_note,)) == "bob 1"
    assert [n["body"] for n in expect(api.get("/notes", cookie=bob), 200, api)] == ["bob 1"]
    # Anonymous has no rule: PostgreSQL refuses, PostgREST answers 401.
    assert api.get("/notes").status_code == 401
    # Removing the rules takes the access away.
    d.one("SELECT count(*) FROM auth.revoke_access('api.notes', %s)", (WEB_USER,))
    assert api.get("/notes", cookie=alice).status_code in (401, 403)
    d.one("SELECT count(*) FROM auth.grant_access('api.notes', %s, '{read}')", (WEB_ANON,))
    assert sorted(n["body"] for n in expect(api.get("/notes"), 200, api)) == ["alice 1", "alice 2", "bob 1"]


def test_a_role_named_like_the_bookkeeping_cannot_make_removal_revoke_a_hand_grant(c):
    tricky = "x; granted SELECT y"
    ident = psycopg.sql.Identifier(tricky).as_string(c)
    c.execute(f"DO $$ BEGIN CREATE ROLE {ident} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    c.execute(f"GRANT SELECT ON {ODD_TABLE} TO {ident}")
    c.execute("SELECT auth.grant_access(%s, %s, '{read}')", (ODD_TABLE, tricky))
    assert [(r[0], r[1], r[7]) for r in rules(c)] == [(tricky, "read", False)]
    c.execute("SELECT auth.revoke_access(%s, %s)", (ODD_TABLE, tricky))
    assert privileges(c, tricky) == ["SELECT"]


def test_two_rules_sharing_a_privilege_pg_auth_granted_both_give_it_back(c):
    """read and read_mine both need SELECT, which pg_auth granted for the first: removing both
    revokes it (live attack on 0.3.0)."""
    c.execute("SELECT auth.grant_access(%s, %s, '{read,read_mine}', 'owner')", (ODD_TABLE, ODD_ROLE))
    assert {r[1]: r[7] for r in rules(c)} == {"read": True, "read_mine": True}
    c.execute("SELECT auth.revoke_access(%s, %s, '{read}')", (ODD_TABLE, ODD_ROLE))
    assert privileges(c) == ["SELECT"]  # read_mine still needs it
    c.execute("SELECT auth.revoke_access(%s, %s)", (ODD_TABLE, ODD_ROLE))
    assert privileges(c) == []
    c.execute("SELECT auth.grant_access(%s, %s, '{read}')", (ODD_TABLE, ODD_ROLE))
    c.execute("SELECT auth.grant_access(%s, %s, '{read_mine}', 'owner')", (ODD_TABLE, ODD_ROLE))
    c.execute("SELECT auth.revoke_access(%s, %s)", (ODD_TABLE, ODD_ROLE))
    assert privileges(c) == []
