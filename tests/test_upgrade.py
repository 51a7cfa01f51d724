"""ALTER EXTENSION pg_auth UPDATE from every kept release loses nothing and ends with exactly the
schema of a fresh install.

Every released install script is kept in sql/releases/ and installed beside the current one by
scripts/lib.sh, so `CREATE EXTENSION pg_auth VERSION '0.1.0'` builds the old schema with the new
library, as a database upgraded in place has it until ALTER EXTENSION UPDATE.
"""

import os
import subprocess

import psycopg
import pytest

from conftest import PG_BIN, PGHOST, PGPORT, PGUSER, connect, one

RELEASES = ["0.1.0", "0.2.0", "0.3.0"]
PASSWORD = "correct horse battery staple"

# Every object of schema auth, described from the catalog in a form independent of creation
# order and of dropped columns' positions.
SCHEMA_DESCRIPTION = """
SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid)
       || ' acl=' || coalesce(p.proacl::text, 'default')
FROM pg_proc p WHERE p.pronamespace = ANY(ARRAY['auth'::regnamespace, 'auth_internal'::regnamespace])
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relnamespace = ANY(ARRAY['auth'::regnamespace, 'auth_internal'::regnamespace])
UNION ALL
SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, 'default')
       || ' rls=' || c.relrowsecurity
FROM pg_class c WHERE c.relnamespace = ANY(ARRAY['auth'::regnamespace, 'auth_internal'::regnamespace]) AND c.relkind <> 'i'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = ANY(ARRAY['auth'::regnamespace, 'auth_internal'::regnamespace])
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index
WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = ANY(ARRAY['auth'::regnamespace, 'auth_internal'::regnamespace]))
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text FROM pg_trigger t
WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = ANY(ARRAY['auth'::regnamespace, 'auth_internal'::regnamespace]))
UNION ALL
SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
WHERE c.relnamespace = ANY(ARRAY['auth'::regnamespace, 'auth_internal'::regnamespace]) AND c.relkind = 'v'
UNION ALL
SELECT 'dumped ' || x::regclass FROM pg_extension e, unnest(e.extconfig) AS x WHERE e.extname = 'pg_auth'
UNION ALL
SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_auth')
ORDER BY 1
"""


def fresh_db(name, version=None):
    with connect("postgres") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    c = connect(name)
    c.execute("CREATE EXTENSION pg_auth" + (f" VERSION '{version}'" if version else ""))
    return c


def describe(conn):
    return [r[0] for r in conn.execute(SCHEMA_DESCRIPTION).fetchall()]


def fill_old(c, old):
    """Data of every kind in a database at release `old`; returns what was put in."""
    assert one(c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_auth'") == old
    c.execute("DO $$ BEGIN CREATE ROLE web_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    facts = {}
    c.execute("SELECT auth.generate_key('ES256', 'active')")
    c.execute("SELECT auth.generate_key('EdDSA', 'future', now() + interval '1 day')")
    c.execute("SELECT auth.generate_key('HS256', 'retired')")
    facts["retired_jwt"] = one(c, """SELECT auth.verify_jwt(auth.sign_jwt('{"x":1}'::jsonb)) IS NOT NULL""")
    c.execute("SELECT auth.retire_key('retired')")
    facts["ring_jwt"] = one(c, """SELECT auth.sign_jwt('{"sub":"s","role":"web_user"}'::jsonb)""")
    alice = one(c, "SELECT auth.register('alice@example.com', %s)", (PASSWORD,))
    bob = one(c, "SELECT auth.register('bob@example.com', %s)", (PASSWORD,))
    facts["live_token"] = one(c, "SELECT auth.login('alice@example.com', %s) ->> 'token'", (PASSWORD,))
    expired = one(c, "SELECT auth.login('alice@example.com', %s) ->> 'session_id'", (PASSWORD,))
    c.execute("UPDATE auth.sessions SET expires_at = now() - interval '1 s' WHERE id = %s", (expired,))
    revoked = one(c, "SELECT auth.login('bob@example.com', %s) ->> 'session_id'", (PASSWORD,))
    c.execute("SELECT auth.revoke_session(%s)", (revoked,))
    c.execute("SELECT auth.revoke_token('jti-1')")
    c.execute("SELECT auth.request_password_reset('bob@example.com')")
    # Bob is locked out (in 0.1.0, in columns of auth.users).
    if old == "0.1.0":
        c.execute("UPDATE auth.users SET failed_logins = 5, failures_since = now(), locked_until = now() + interval '1 hour' WHERE id = %s", (bob,))
    else:
        c.execute("""INSERT INTO auth.login_attempts (email_key, failed_logins, failures_since, locked_until)
                     VALUES (auth_internal.email_key('bob@example.com'), 5, now(), now() + interval '1 hour')""")
    # An application's grant on a function the update re-creates (change_password).
    c.execute("GRANT EXECUTE ON FUNCTION auth.change_password(text, text) TO web_user")
    facts["counts"] = counts(c)
    facts.update(alice=alice, bob=bob)
    return facts


@pytest.fixture(scope="module", params=RELEASES)
def old(request):
    return request.param


def db_name(prefix, old):
    return prefix + "_" + old.replace(".", "_")


@pytest.fixture(scope="module")
def upgraded(old):
    """A database of release `old` with data of every kind, then updated in place; and what was
    put in."""
    c = fresh_db(db_name("pg_auth_upgrade", old), old)
    facts = fill_old(c, old)
    # Between installing the new library and ALTER EXTENSION UPDATE, the old schema still serves.
    c.execute("DO $$ BEGIN GRANT web_user TO CURRENT_USER; END $$")
    with c.transaction():
        assert one(c, "SELECT auth.authenticate(%s) ->> 'sub'", (facts["live_token"],)) == str(facts["alice"])
        c.execute("SET LOCAL ROLE NONE")
    c.execute("ALTER EXTENSION pg_auth UPDATE")
    yield c, facts
    c.close()


@pytest.fixture(scope="module")
def restored(old, tmp_path_factory):
    """The usual migration path: pg_dump of a database of release `old`, restored into a server
    with the new version installed. The extension is created at the old version first (the dump
    names no version, and the old tables' rows only fit the old schema), then updated."""
    source = fresh_db(db_name("pg_auth_dump_source", old), old)
    facts = fill_old(source, old)
    source.close()
    dump = tmp_path_factory.mktemp("dump") / "old.dump"
    env = {**os.environ, "PGHOST": PGHOST, "PGPORT": str(PGPORT), "PGUSER": PGUSER}
    subprocess.run([str(PG_BIN / "pg_dump"), "-Fc", "-d", db_name("pg_auth_dump_source", old), "-f", str(dump)],
                   env=env, check=True, capture_output=True, timeout=120)
    c = fresh_db(db_name("pg_auth_restored", old), old)
    # CREATE EXTENSION made schema auth already: restore everything but that entry (README).
    toc = subprocess.run([str(PG_BIN / "pg_restore"), "-l", str(dump)], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    listing = dump.with_suffix(".list")
    listing.write_text("".join(line + "\n" for line in toc.splitlines() if " SCHEMA - auth " not in line))
    proc = subprocess.run([str(PG_BIN / "pg_restore"), "--exit-on-error", "-L", str(listing),
                           "-d", db_name("pg_auth_restored", old), str(dump)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    c.execute("ALTER EXTENSION pg_auth UPDATE")
    yield c, facts
    c.close()


@pytest.fixture(params=["updated-in-place", "dumped-and-restored"])
def migrated(request, old):  # `old` named here: getfixturevalue cannot parametrize
    return request.getfixturevalue("upgraded" if request.param == "updated-in-place" else "restored")


def counts(c):
    return one(c, """SELECT json_build_object(
        'users', (SELECT count(*) FROM auth.users), 'sessions', (SELECT count(*) FROM auth.sessions),
        'keys', (SELECT count(*) FROM auth.keys), 'revoked', (SELECT count(*) FROM auth.revoked_tokens),
        'resets', (SELECT count(*) FROM auth.password_resets))""")


def test_update_reaches_the_current_version_and_keeps_every_row(migrated):
    c, facts = migrated
    assert one(c, "SELECT extversion FROM pg_extension WHERE extname = 'pg_auth'") == one(
        c, "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_auth'")
    assert counts(c) == facts["counts"]
    # 0.3.0: every session carries its user's role, email and disabled flag.
    assert one(c, """SELECT count(*) FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id
                     WHERE (s.user_role, s.user_email, s.user_disabled) IS DISTINCT FROM (u.role, u.email, u.disabled)""") == 0
    # 0.4.0: sessions signed in before the update are at aal1; the new features work at once.
    assert one(c, "SELECT count(*) FROM auth.sessions WHERE aal <> 'aal1'") == 0
    sent = one(c, "SELECT auth.request_code('alice@example.com', 'verify_email')")
    assert one(c, "SELECT auth.verify_link(%s) ->> 'purpose'", (sent["link_token"],)) == "verify_email"


def test_old_credentials_still_work_after_the_update(migrated):
    c, facts = migrated
    c.execute("DO $$ BEGIN GRANT web_user TO CURRENT_USER; END $$")
    with c.transaction():
        claims = one(c, "SELECT auth.authenticate(%s)", (facts["live_token"],))
        assert claims["sub"] == str(facts["alice"])
    assert one(c, "SELECT auth.verify_jwt(%s) ->> 'sub'", (facts["ring_jwt"],)) == "s"
    assert one(c, "SELECT auth.login('alice@example.com', %s) ? 'token'", (PASSWORD,))
    # The lockout moved with Bob to auth.login_attempts.
    with pytest.raises(psycopg.Error) as e:
        c.execute("SELECT auth.login('bob@example.com', %s)", (PASSWORD,))
    assert e.value.sqlstate == "PA015"


def test_upgraded_schema_equals_a_fresh_install(migrated):
    c, _ = migrated
    assert one(c, "SELECT has_function_privilege('web_user', 'auth.change_password(text, text)', 'EXECUTE')")
    c.execute("REVOKE EXECUTE ON FUNCTION auth.change_password(text, text) FROM web_user")  # not in a fresh install
    with fresh_db("pg_auth_fresh") as fresh:
        assert describe(c) == describe(fresh)
