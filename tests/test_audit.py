"""The audit trail (sql/audit.sql, opt-in with pg_auth.audit): sign-ins and failures, locks,
sign-outs, refreshes, password changes and resets, user, key and API-key changes, revoked tokens,
whoever made them; never a secret or a token; nothing when off; retention by
auth.cleanup_expired(); refusals of auth.authenticate in the server log at pg_auth.log_refusals.
Through SQL and through PostgREST with the todo app.
"""

import json

import pytest

from otp import totp
from conftest import assert_sqlstate, connect, fresh_database, one
from todo_harness import TodoApp

DB = "pg_auth_audit"
PASSWORD = "an audited password"


@pytest.fixture(scope="module")
def db():
    fresh_database(DB, switch_to=("web_user",), settings={"login_max_failures": 2}).close()
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    conn.execute("SET pg_auth.audit = on")
    conn.execute("TRUNCATE auth.audit_log")
    yield conn
    conn.close()


def events(c):
    return [r[0] for r in c.execute("SELECT event FROM auth.audit_log ORDER BY id").fetchall()]


def test_the_life_of_an_account_is_recorded(c):
    c.execute("DELETE FROM auth.users WHERE email = 'audited@example.com'")
    c.execute("TRUNCATE auth.audit_log")
    user = one(c, "SELECT auth.register('audited@example.com', %s)", (PASSWORD,))
    login = one(c, "SELECT auth.login('audited@example.com', %s)", (PASSWORD,))
    assert one(c, "SELECT auth.login('audited@example.com', 'a wrong password')") is None
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (login["token"],))
        c.execute("SET LOCAL ROLE NONE")
        token = one(c, "SELECT auth.refresh() ->> 'token'")
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (token,))
        c.execute("SET LOCAL ROLE NONE")
        c.execute("SELECT auth.change_password(%s, 'a changed password')", (PASSWORD,))
        c.execute("SELECT auth.logout()")
    reset = one(c, "SELECT auth.request_password_reset('audited@example.com')")
    c.execute("SELECT auth.reset_password(%s, 'a reset password!')", (reset,))
    key = one(c, "SELECT auth.create_api_key('audited key', user_id => %s)", (user,))
    c.execute("SELECT auth.disable_user(%s)", (user,))
    c.execute("SELECT auth.enable_user(%s)", (user,))
    c.execute("SELECT auth.generate_key('HS256', 'audited-kid')")
    c.execute("SELECT auth.retire_key('audited-kid')")
    c.execute("SELECT auth.revoke_token('audited-jti')")
    c.execute("SELECT auth.delete_user(%s)", (user,))
    assert events(c) == [
        "user_created", "session_started", "sign_in_failed", "session_refreshed", "password_changed",
        "session_ended", "password_reset_requested", "password_reset_used", "password_changed",
        "api_key_created", "user_disabled", "api_key_revoked", "user_enabled", "key_added", "key_retired",
        "token_revoked", "user_deleted"]
    rows = c.execute("SELECT event, user_id, session_id, api_key_id, detail FROM auth.audit_log ORDER BY id").fetchall()
    by_event = {r[0]: r for r in rows}
    assert str(by_event["session_started"][1]) == str(user) and str(by_event["session_started"][2]) == login["session_id"]
    assert str(by_event["api_key_created"][3]) == key["id"] and by_event["api_key_created"][4]["name"] == "audited key"
    assert by_event["key_added"][4]["kid"] == "audited-kid" and by_event["token_revoked"][4] == {"jti": "audited-jti"}
    # Never a secret or a token: no hash, password, token or key text anywhere in the trail.
    dump = json.dumps([list(map(str, r)) for r in c.execute("SELECT * FROM auth.audit_log").fetchall()])
    for secret in (PASSWORD, login["token"], token, reset, key["key"], "argon2", "$2"):
        assert secret not in dump


def test_codes_and_the_second_factor_are_recorded(c):
    c.execute("DELETE FROM auth.users WHERE email = 'audited-mfa@example.com'")
    user = one(c, "SELECT auth.register('audited-mfa@example.com', %s)", (PASSWORD,))
    c.execute("TRUNCATE auth.audit_log")
    sent = one(c, "SELECT auth.request_code('audited-mfa@example.com', 'verify_email')")
    one(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))
    sent = one(c, "SELECT auth.request_code('audited-mfa@example.com')")
    assert one(c, "SELECT auth.verify_code('audited-mfa@example.com', %s)",
               (f"{(int(sent['code']) + 1) % 1_000_000:06d}",)) is None
    session = one(c, "SELECT auth.verify_code('audited-mfa@example.com', %s)", (sent["code"],))

    def as_user(sql, params=()):
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (session["token"],))
            c.execute("SET LOCAL ROLE NONE")
            return one(c, sql, params)

    secret = as_user("SELECT auth.enroll_totp()")["secret"]
    wrong = f"{(int(totp(secret)) + 1) % 1_000_000:06d}"
    assert as_user("SELECT auth.confirm_totp(%s)", (wrong,)) is None
    codes = as_user("SELECT auth.confirm_totp(%s)", (totp(secret),))["recovery_codes"]
    as_user("SELECT auth.verify_recovery_code(%s)", (codes[0],))
    as_user("SELECT auth.unenroll_totp(%s)", (codes[1],))
    assert events(c) == [
        "code_requested", "code_used", "email_verified", "code_requested", "code_failed", "code_used", "session_started",
        "second_factor_enrolling", "second_factor_failed", "second_factor_enrolled", "second_factor_verified",
        "recovery_code_used", "recovery_code_used", "second_factor_removed"]
    assert one(c, "SELECT count(*) FROM auth.audit_log WHERE user_id = %s", (user,)) == 14
    dump = json.dumps([list(map(str, r)) for r in c.execute("SELECT * FROM auth.audit_log").fetchall()])
    for secret_text in (sent["code"], sent["link_token"], secret, codes[0], session["token"]):
        assert secret_text not in dump


def test_failed_sign_ins_of_unknown_emails_and_the_lock_are_recorded_by_email_hash(c):
    for _ in range(2):
        one(c, "SELECT auth.login('nobody@example.com', 'whatever password')")
    rows = c.execute("SELECT event, user_id, email_key = auth_internal.email_key('nobody@example.com'), detail "
                     "FROM auth.audit_log ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("sign_in_failed", None, True), ("sign_in_failed", None, True), ("account_locked", None, True)]
    assert rows[-1][3]["failed_logins"] == 2 and "locked_until" in rows[-1][3]
    c.execute("DELETE FROM auth.login_attempts")


def test_nothing_is_recorded_when_off(c):
    c.execute("SET pg_auth.audit = off")
    c.execute("SELECT auth.generate_key('HS256')")
    one(c, "SELECT auth.login('nobody-off@example.com', 'whatever password')")
    assert events(c) == []


def test_authenticate_writes_nothing_even_when_audited(c):
    c.execute("DELETE FROM auth.users WHERE email = 'ro@example.com'")
    c.execute("SELECT auth.register('ro@example.com', %s)", (PASSWORD,))
    token = one(c, "SELECT auth.login('ro@example.com', %s) ->> 'token'", (PASSWORD,))
    c.execute("TRUNCATE auth.audit_log")
    with c.transaction():
        c.execute("SET TRANSACTION READ ONLY")
        c.execute("SELECT auth.authenticate(%s)", (token,))
        c.execute("SET LOCAL ROLE NONE")
    assert events(c) == []


def test_old_entries_go_with_cleanup(c):
    c.execute("SELECT auth.generate_key('HS256')")
    c.execute("UPDATE auth.audit_log SET at = now() - interval '91 days'")
    c.execute("SELECT auth.generate_key('HS256')")
    c.execute("SELECT auth.cleanup_expired()")
    assert events(c) == ["key_added"]


def test_web_roles_cannot_read_the_trail(c):
    with c.transaction(force_rollback=True):
        c.execute("SET LOCAL ROLE web_user")
        assert_sqlstate(c, "42501", "SELECT * FROM auth.audit_log")


def test_through_postgrest_the_trail_has_the_clients_ip_and_user_agent():
    with TodoApp("pg_auth_audit_todo", settings={"pg_auth.audit": "on"}) as app:
        client = app.client()
        resp = client.post("/rpc/register", {"email": "web-audit@example.com", "name": "W", "password": PASSWORD},
                           headers={"User-Agent": "audit-test/1.0", "X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
        assert resp.status_code == 200, resp.text
        row = app.one("""SELECT jsonb_build_object('ip', ip, 'ua', user_agent, 'db_login', db_login)
                         FROM auth.audit_log WHERE event = 'session_started'""")
        assert row == {"ip": "203.0.113.7", "ua": "audit-test/1.0", "db_login": "authenticator"}
        assert client.get("/todos", cookie="pas_" + "R" * 43).status_code == 401
        assert app.one("SELECT count(*) FROM auth.audit_log WHERE event = 'session_started'") == 1


def test_refusals_go_to_the_server_log_at_the_level_set_without_the_credential(c):
    """auth.authenticate writes nothing; with pg_auth.log_refusals = warning the line reaches this
    client too, which shows its content (at log it goes to the server log only)."""
    seen = []
    c.add_notice_handler(lambda d: seen.append(d.message_primary))
    c.execute("SET pg_auth.log_refusals = 'warning'")
    token = "pas_" + "R" * 43
    with pytest.raises(Exception):
        with c.transaction():
            c.execute("""SELECT set_config('request.method', 'GET', true),
                                set_config('request.headers', %s, true),
                                set_config('request.cookies', %s, true)""",
                      (json.dumps({"user-agent": "evil\nforged line", "x-forwarded-for": "198.51.100.9, 10.0.0.1"}),
                       json.dumps({"access_token": token})))
            c.execute("SELECT auth.authenticate()")
    line = next(m for m in seen if "pg_auth refused a request" in m)
    assert "PA017" in line and "credential from cookie" in line and 'ip "198.51.100.9"' in line
    assert "R" * 43 not in line and "\n" not in line and "evil?forged line" in line
    seen.clear()
    c.execute("SET pg_auth.log_refusals = 'off'")
    with pytest.raises(Exception):
        with c.transaction():
            c.execute("SELECT set_config('request.method', 'GET', true), set_config('request.cookies', %s, true)",
                      (json.dumps({"access_token": token}),))
            c.execute("SELECT auth.authenticate()")
    assert not [m for m in seen if "pg_auth refused" in m]


def test_a_sign_in_re_hashing_the_password_is_no_password_change(c):
    c.execute("DELETE FROM auth.users WHERE email = 'rehash@example.com'")
    c.execute("SELECT auth.register('rehash@example.com', %s)", (PASSWORD,))
    c.execute("TRUNCATE auth.audit_log")
    c.execute("SET pg_auth.argon2_iterations = 2")
    one(c, "SELECT auth.login('rehash@example.com', %s)", (PASSWORD,))
    assert events(c) == ["password_rehashed", "session_started"]


def test_headers_that_are_no_json_cannot_keep_a_failed_sign_in_from_being_counted(c):
    """A SQL caller who sets request.headers to something that is no JSON made the audit trigger
    fail, rolling back the failure count (live attack on 0.3.0)."""
    c.execute("DELETE FROM auth.login_attempts")
    with c.transaction():
        c.execute("SELECT set_config('request.headers', '{', true)")
        assert one(c, "SELECT auth.login('guess@example.com', 'a guess') IS NULL")
    assert one(c, "SELECT failed_logins FROM auth.login_attempts WHERE email_key = auth_internal.email_key('guess@example.com')") == 1
    assert events(c) == ["sign_in_failed"]
    c.execute("DELETE FROM auth.login_attempts")
