"""Second factor: TOTP enrolment and confirmation, verification raising a session to aal2,
replays, the throttle, recovery codes, unenrolment with a fresh factor, and what RLS reads
(auth.aal(), auth.mfa_satisfied()). Through SQL here; through PostgREST with the todo app in
tests/test_todo_app.py. Codes are computed here with an independent RFC 6238 implementation.
"""

import base64
from urllib.parse import parse_qs, unquote, urlparse

import psycopg
import pytest

from conftest import assert_sqlstate, connect, fresh_database, one
from otp import totp

DB = "pg_auth_second_factor"
PASSWORD = "second factor password"


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB, switch_to=("web_user",), settings={"user_role": "web_user"}) as c:
        c.execute("SELECT auth.generate_key('HS256', 'second-factor')")
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    yield conn
    conn.close()


def user(c, email):
    c.execute("DELETE FROM auth.users WHERE email = %s", (email,))
    one(c, "SELECT auth.register(%s, %s)", (email, PASSWORD))
    return one(c, "SELECT auth.login(%s, %s)", (email, PASSWORD))


def signed_in(c, token, sql, params=()):
    """`sql` as the owner in a transaction where auth.authenticate verified `token`: its value,
    the response status and X-Auth-Error it left."""
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (token,))
        c.execute("SET LOCAL ROLE NONE")
        value = one(c, sql, params)
        status = one(c, "SELECT current_setting('response.status', true)")
        headers = one(c, "SELECT coalesce(nullif(current_setting('response.headers', true), ''), '[]')::jsonb")
    errors = [h["X-Auth-Error"] for h in headers if "X-Auth-Error" in h]
    return value, status, errors


def claims(c, token):
    with c.transaction():
        value = one(c, "SELECT auth.authenticate(%s)", (token,))
        extra = c.execute("SELECT auth.aal(), auth.mfa_satisfied()").fetchone()
        c.execute("SET LOCAL ROLE NONE")
    return value, extra


def enrolled(c, email):
    """A user with a confirmed factor: (login result, secret, recovery codes); the code that
    confirmed it is in `used_codes[email]`."""
    session = user(c, email)
    enrolment, _, _ = signed_in(c, session["token"], "SELECT auth.enroll_totp()")
    used_codes[email] = totp(enrolment["secret"])
    confirmed, _, _ = signed_in(c, session["token"], "SELECT auth.confirm_totp(%s)", (used_codes[email],))
    assert confirmed["aal"] == "aal2"
    return session, enrolment["secret"], confirmed["recovery_codes"]


used_codes = {}


def test_enrolment_gives_a_secret_and_an_otpauth_uri_for_the_account(c):
    session = user(c, "enrol@example.com")
    result, _, _ = signed_in(c, session["token"], "SELECT auth.enroll_totp('Todo & Co')")
    uri = urlparse(result["uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/Todo & Co:enrol@example.com"
    params = parse_qs(uri.query)
    assert params["secret"] == [result["secret"]] and params["issuer"] == ["Todo & Co"]
    assert (params["algorithm"], params["digits"], params["period"]) == (["SHA1"], ["6"], ["30"])
    assert len(base64.b32decode(result["secret"])) == 20
    # Not confirmed yet: the session stays aal1, nothing is required.
    status, _, _ = signed_in(c, session["token"], "SELECT auth.mfa_status()")
    assert status == {"enrolled": True, "confirmed": False, "aal": "aal1", "recovery_codes_left": 0}
    assert claims(c, session["token"])[1] == ("aal1", True)
    # Enrolling again before confirming replaces the secret.
    again, _, _ = signed_in(c, session["token"], "SELECT auth.enroll_totp()")
    assert again["secret"] != result["secret"] and "issuer=pg_auth" in again["uri"]
    assert one(c, "SELECT count(*) FROM auth.mfa_factors f JOIN auth.users u ON u.id = f.user_id "
                  "WHERE u.email = 'enrol@example.com'") == 1


def test_a_wrong_first_code_is_refused_and_counted_and_a_right_one_confirms(c):
    session = user(c, "confirm@example.com")
    enrolment, _, _ = signed_in(c, session["token"], "SELECT auth.enroll_totp()")
    wrong = f"{(int(totp(enrolment['secret'])) + 1) % 1_000_000:06d}"
    value, status, errors = signed_in(c, session["token"], "SELECT auth.confirm_totp(%s)", (wrong,))
    assert (value, status) == (None, "401") and errors == ["PA025 the code is wrong or was used"]
    assert one(c, "SELECT failed_attempts FROM auth.mfa_factors f JOIN auth.users u ON u.id = f.user_id "
                  "WHERE u.email = 'confirm@example.com'") == 1
    confirmed, _, _ = signed_in(c, session["token"], "SELECT auth.confirm_totp(%s)", (totp(enrolment["secret"]),))
    assert confirmed["aal"] == "aal2" and len(set(confirmed["recovery_codes"])) == 10
    # The session is at aal2 now, for the cookie and for a JWT of it.
    published, helpers = claims(c, session["token"])
    assert published["aal"] == "aal2" and helpers == ("aal2", True)
    # Only hashes are stored.
    stored = [bytes(r[0]) for r in c.execute(
        "SELECT code_hash FROM auth.recovery_codes r JOIN auth.users u ON u.id = r.user_id "
        "WHERE u.email = 'confirm@example.com'").fetchall()]
    assert len(stored) == 10 and all(code.encode() not in stored for code in confirmed["recovery_codes"])


def test_a_new_sign_in_is_aal1_until_the_second_factor_and_a_code_works_once(c):
    _, secret, _ = enrolled(c, "verify@example.com")
    session = one(c, "SELECT auth.login('verify@example.com', %s)", (PASSWORD,))
    assert session["aal"] == "aal1" and session["mfa_enrolled"] is True
    assert claims(c, session["token"])[1] == ("aal1", False)
    # The code confirmation used is spent: the same step cannot be used again.
    value, status, errors = signed_in(c, session["token"], "SELECT auth.verify_totp(%s)",
                                      (used_codes["verify@example.com"],))
    assert (value, status) == (None, "401") and errors[0].startswith("PA025")
    # The next step's code (within the window) works, once.
    code = totp(secret, offset=1)
    result, _, _ = signed_in(c, session["token"], "SELECT auth.verify_totp(%s, true)", (code,))
    assert result["aal"] == "aal2" and result["session_id"] == session["session_id"]
    assert one(c, "SELECT auth.verify_jwt(%s) ->> 'aal'", (result["jwt"],)) == "aal2"
    assert claims(c, result["jwt"])[1] == ("aal2", True)
    assert claims(c, session["token"])[1] == ("aal2", True)
    value, _, _ = signed_in(c, session["token"], "SELECT auth.verify_totp(%s)", (code,))
    assert value is None
    # Other sessions of the user stay at aal1.
    other = one(c, "SELECT auth.login('verify@example.com', %s, true)", (PASSWORD,))
    assert claims(c, other["token"])[1] == ("aal1", False)
    assert one(c, "SELECT auth.verify_jwt(%s) ->> 'aal'", (other["jwt"],)) == "aal1"


def test_wrong_codes_past_the_limit_lock_the_factor_even_for_the_right_code(c):
    _, secret, recovery = enrolled(c, "throttle@example.com")
    session = one(c, "SELECT auth.login('throttle@example.com', %s)", (PASSWORD,))
    for attempt in range(5):
        value, status, _ = signed_in(c, session["token"], "SELECT auth.verify_totp('000000')")
        assert (value, status) == (None, "401"), attempt
    for right in (totp(secret, offset=1), recovery[0]):
        with pytest.raises(psycopg.Error) as e:
            signed_in(c, session["token"], "SELECT auth.verify_totp(%s)" if right.isdigit()
                      else "SELECT auth.verify_recovery_code(%s)", (right,))
        assert e.value.sqlstate == "PA015" and "too many wrong codes" in str(e.value)
    assert claims(c, session["token"])[1] == ("aal1", False)


def test_a_recovery_code_works_once_in_any_spelling(c):
    _, _, recovery = enrolled(c, "recovery@example.com")
    session = one(c, "SELECT auth.login('recovery@example.com', %s)", (PASSWORD,))
    typed = " " + recovery[3].upper().replace("-", " ") + " "
    result, _, _ = signed_in(c, session["token"], "SELECT auth.verify_recovery_code(%s)", (typed,))
    assert result["aal"] == "aal2" and result["recovery_codes_left"] == 9
    again = one(c, "SELECT auth.login('recovery@example.com', %s)", (PASSWORD,))
    value, status, errors = signed_in(c, again["token"], "SELECT auth.verify_recovery_code(%s)", (recovery[3],))
    assert (value, status) == (None, "401") and errors[0].startswith("PA025")
    # Another user's code is no code for this one.
    _, _, theirs = enrolled(c, "recovery-other@example.com")
    value, _, _ = signed_in(c, again["token"], "SELECT auth.verify_recovery_code(%s)", (theirs[0],))
    assert value is None


def test_unenrolment_needs_a_fresh_second_factor(c):
    session, secret, recovery = enrolled(c, "unenrol@example.com")
    value, status, _ = signed_in(c, session["token"], "SELECT auth.unenroll_totp('123456')")
    assert (value, status) == (None, "401")
    value, _, _ = signed_in(c, session["token"], "SELECT auth.unenroll_totp(NULL)")
    assert value is None
    # An unused recovery code does it, as does a current code.
    result, _, _ = signed_in(c, session["token"], "SELECT auth.unenroll_totp(%s)", (recovery[0],))
    assert result == {"unenrolled": True}
    assert one(c, "SELECT count(*) FROM auth.recovery_codes r JOIN auth.users u ON u.id = r.user_id "
                  "WHERE u.email = 'unenrol@example.com'") == 0
    status, _, _ = signed_in(c, session["token"], "SELECT auth.mfa_status()")
    assert status["enrolled"] is False
    session, secret, _ = enrolled(c, "unenrol2@example.com")
    result, _, _ = signed_in(c, session["token"], "SELECT auth.unenroll_totp(%s)", (totp(secret, offset=1),))
    assert result == {"unenrolled": True}


def test_calls_in_the_wrong_state_get_pa026_and_strangers_pa017(c):
    session, _, _ = enrolled(c, "state@example.com")
    with pytest.raises(psycopg.Error) as e:
        signed_in(c, session["token"], "SELECT auth.enroll_totp()")
    assert e.value.sqlstate == "PA026"
    with pytest.raises(psycopg.Error) as e:
        signed_in(c, session["token"], "SELECT auth.confirm_totp('123456')")
    assert e.value.sqlstate == "PA026"
    plain = user(c, "state-plain@example.com")
    for sql in ("SELECT auth.verify_totp('123456')", "SELECT auth.verify_recovery_code('abcde-fghij')",
                "SELECT auth.unenroll_totp('123456')"):
        with pytest.raises(psycopg.Error) as e:
            signed_in(c, plain["token"], sql)
        assert e.value.sqlstate == "PA026", sql
    for sql in ("SELECT auth.enroll_totp()", "SELECT auth.verify_totp('123456')", "SELECT auth.mfa_status()",
                "SELECT auth.confirm_totp('123456')", "SELECT auth.unenroll_totp('123456')"):
        assert_sqlstate(c, "PA017", sql)
    # A JWT without sid holds no session either.
    token = one(c, "SELECT auth.sign_jwt(jsonb_build_object('sub', gen_random_uuid(), 'role', 'web_user', "
                   "'exp', extract(epoch FROM now())::int + 60))")
    with pytest.raises(psycopg.Error) as e:
        signed_in(c, token, "SELECT auth.verify_totp('123456')")
    assert e.value.sqlstate == "PA017"


@pytest.mark.parametrize("code", ["", " ", "12345", "1234567", "１２３４５６", "12345\u0000", "x" * 100_000,
                                  "'; DROP TABLE auth.users; --", "-1", "999999999999"])
def test_hostile_codes_are_refused_not_crashes(c, code):
    code = code.replace("\u0000", "")
    session = user(c, "hostile-code@example.com")
    enrolment, _, _ = signed_in(c, session["token"], "SELECT auth.enroll_totp()")
    for sql in ("SELECT auth.confirm_totp(%s)",):
        value, status, _ = signed_in(c, session["token"], sql, (code,))
        assert (value, status) == (None, "401")
    signed_in(c, session["token"], "SELECT auth.confirm_totp(%s)", (totp(enrolment["secret"]),))
    for sql in ("SELECT auth.verify_totp(%s)", "SELECT auth.verify_recovery_code(%s)", "SELECT auth.unenroll_totp(%s)"):
        value, status, _ = signed_in(c, session["token"], sql, (code,))
        assert (value, status) == (None, "401"), sql
    with pytest.raises(psycopg.Error) as e:
        signed_in(c, session["token"], "SELECT auth.enroll_totp(%s)", ("i" * 101,))
    assert e.value.sqlstate == "PA026"  # enrolled: the state is checked first


def test_the_assurance_level_cannot_be_claimed_by_a_hook_or_an_api_key(c):
    c.execute("""CREATE OR REPLACE FUNCTION public.aal_hook(user_id uuid, claims jsonb) RETURNS jsonb
                 LANGUAGE sql SECURITY DEFINER AS $$ SELECT claims || '{"aal": "aal2"}' $$""")
    c.execute("DO $$ BEGIN CREATE ROLE aal_hook_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    c.execute("ALTER FUNCTION public.aal_hook(uuid, jsonb) OWNER TO aal_hook_owner")
    user(c, "hook-aal@example.com")
    c.execute("SET pg_auth.claims_hook = 'public.aal_hook'")
    try:
        assert_sqlstate(c, "PA022", "SELECT auth.login('hook-aal@example.com', %s, true)", (PASSWORD,))
    finally:
        c.execute("RESET pg_auth.claims_hook")
    uid = one(c, "SELECT id FROM auth.users WHERE email = 'hook-aal@example.com'")
    assert_sqlstate(c, "22023", "SELECT auth.create_api_key('k', user_id => %s, claims => '{\"aal\": \"aal2\"}')", (uid,))


def test_a_read_only_transaction_is_refused_before_any_check(c):
    session, secret, _ = enrolled(c, "readonly-mfa@example.com")
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SET TRANSACTION READ ONLY")
            c.execute("SELECT auth.authenticate(%s)", (session["token"],))
            c.execute("SET LOCAL ROLE NONE")
            c.execute("SELECT auth.verify_totp('000000')")
    assert e.value.sqlstate == "25006"


def test_deleting_a_user_deletes_the_factor_and_codes(c):
    enrolled(c, "gone-mfa@example.com")
    c.execute("DELETE FROM auth.users WHERE email = 'gone-mfa@example.com'")
    assert one(c, "SELECT count(*) FROM auth.mfa_factors f LEFT JOIN auth.users u ON u.id = f.user_id WHERE u.id IS NULL") == 0
    assert one(c, "SELECT count(*) FROM auth.recovery_codes r LEFT JOIN auth.users u ON u.id = r.user_id WHERE u.id IS NULL") == 0


def test_account_changes_need_the_second_factor_once_enrolled(c):
    """Live attack on 0.4.0: a password thief without the phone (aal1) changed the account's
    email, ended the owner's sessions and made API keys."""
    owner, secret, _ = enrolled(c, "guarded@example.com")
    thief = one(c, "SELECT auth.login('guarded@example.com', %s)", (PASSWORD,))
    uid = one(c, "SELECT id FROM auth.users WHERE email = 'guarded@example.com'")
    attempts = [
        ("SELECT auth.request_email_change('thief@evil.example')", ()),
        ("SELECT auth.change_password(%s, 'the thief''s password')", (PASSWORD,)),
        ("SELECT auth.end_my_other_sessions()", ()),
        ("SELECT auth.end_my_session(%s)", (owner["session_id"],)),
        ("SELECT auth.create_api_key('thief key', user_id => %s)", (uid,)),
    ]
    for sql, params in attempts:
        with pytest.raises(psycopg.Error) as e:
            signed_in(c, thief["token"], sql, params)
        assert e.value.sqlstate == "PA026" and "second factor" in str(e.value), sql
    # Signing itself out needs nothing more.
    assert signed_in(c, thief["token"], "SELECT auth.end_my_session(%s)", (thief["session_id"],))[0] is True
    # At aal2 the owner may.
    assert signed_in(c, owner["token"], "SELECT auth.create_api_key('owner key', user_id => %s) ->> 'name'", (uid,))[0] == "owner key"
    assert signed_in(c, owner["token"], "SELECT auth.request_email_change('new-guarded@example.com') ? 'code'")[0] is True
    # Users without a second factor are not asked for one.
    plain = user(c, "unguarded@example.com")
    assert signed_in(c, plain["token"], "SELECT auth.request_email_change('new-unguarded@example.com') ? 'code'")[0] is True


def test_enrolment_needs_a_recent_sign_in(c):
    """Re-check on 0.4.0: a cookie stolen long ago enrolled a factor (and so reached aal2, ended
    the owner's sessions, and locked the owner out for good)."""
    stolen = user(c, "enrol-stolen@example.com")
    c.execute("UPDATE auth.sessions SET created_at = now() - interval '2 days' WHERE id = %s", (stolen["session_id"],))
    for sql in ("SELECT auth.enroll_totp()", "SELECT auth.confirm_totp('123456')"):
        with pytest.raises(psycopg.Error) as e:
            signed_in(c, stolen["token"], sql)
        assert e.value.sqlstate == "PA017" and "sign in again" in str(e.value), sql
