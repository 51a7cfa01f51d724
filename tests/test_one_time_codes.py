"""One-time codes and links: passwordless sign-in (and sign-up), email verification, email
change; single use, expiry, the newest entry only, wrong codes past the limit, the request limit
per email, the same path for known and unknown emails, and pg_auth.require_verified_email.
Through SQL here; through PostgREST with the todo app in tests/test_todo_app.py.
"""

import threading

import psycopg
import pytest

from conftest import assert_sqlstate, connect, fresh_database, one

DB = "pg_auth_one_time_codes"
PASSWORD = "one time password"


@pytest.fixture(scope="module")
def db():
    with fresh_database(DB, switch_to=("web_user",), settings={"user_role": "web_user"}) as c:
        c.execute("SELECT auth.generate_key('HS256', 'one-time')")
    return DB


@pytest.fixture
def c(db):
    conn = connect(db)
    yield conn
    conn.close()


def user(c, email, verified=False):
    c.execute("DELETE FROM auth.users WHERE lower(email) = lower(%s)", (email,))
    c.execute("DELETE FROM auth.one_time_codes WHERE email_key = auth_internal.email_key(%s)", (email,))
    uid = one(c, "SELECT auth.register(%s, %s)", (email, PASSWORD))
    c.execute("UPDATE auth.users SET email_verified = %s WHERE id = %s", (verified, uid))
    return uid


def call(c, sql, params=()):
    """Value, response status and X-Auth-Error of `sql` in its own transaction."""
    with c.transaction():
        value = one(c, sql, params)
        status = one(c, "SELECT current_setting('response.status', true)")
        headers = one(c, "SELECT coalesce(nullif(current_setting('response.headers', true), ''), '[]')::jsonb")
    return value, status, [h["X-Auth-Error"] for h in headers if "X-Auth-Error" in h]


def signed_in_as(c, token):
    with c.transaction():
        claims = one(c, "SELECT auth.authenticate(%s)", (token,))
        c.execute("SET LOCAL ROLE NONE")
    return claims


def refused(result):
    value, status, errors = result
    assert (value, status) == (None, "401"), result
    assert errors == ["PA023 the code is wrong, used or expired; request a new one"]


def test_a_sign_in_code_signs_in_once(c):
    uid = user(c, "code@example.com")
    sent = one(c, "SELECT auth.request_code('Code@Example.com')")
    assert len(sent["code"]) == 6 and sent["code"].isdigit() and sent["link_token"].startswith("pal_")
    result, _, _ = call(c, "SELECT auth.verify_code('code@example.com', %s)", (sent["code"],))
    assert result["purpose"] == "sign_in" and result["user_id"] == str(uid) and result["aal"] == "aal1"
    assert signed_in_as(c, result["token"])["sub"] == str(uid)
    # The entry is spent, by code and by link; the email counts as verified now.
    refused(call(c, "SELECT auth.verify_code('code@example.com', %s)", (sent["code"],)))
    assert_sqlstate(c, "PA023", "SELECT auth.verify_link(%s)", (sent["link_token"],))
    assert one(c, "SELECT email_verified FROM auth.users WHERE id = %s", (uid,)) is True
    # Nothing secret is stored.
    row = c.execute("SELECT code_hash, link_hash FROM auth.one_time_codes WHERE user_id = %s", (uid,)).fetchone()
    assert sent["code"].encode() not in bytes(row[0]) and sent["link_token"].encode() not in bytes(row[1])


def test_a_link_signs_in_once_and_can_return_a_jwt(c):
    uid = user(c, "link@example.com")
    sent = one(c, "SELECT auth.request_code('link@example.com')")
    result, _, _ = call(c, "SELECT auth.verify_link(%s, true)", (sent["link_token"],))
    assert one(c, "SELECT auth.verify_jwt(%s) ->> 'sub'", (result["jwt"],)) == str(uid)
    assert_sqlstate(c, "PA023", "SELECT auth.verify_link(%s)", (sent["link_token"],))
    refused(call(c, "SELECT auth.verify_code('link@example.com', %s)", (sent["code"],)))


def test_wrong_codes_past_the_limit_spend_the_entry(c):
    user(c, "guess@example.com")
    sent = one(c, "SELECT auth.request_code('guess@example.com')")
    wrong = f"{(int(sent['code']) + 1) % 1_000_000:06d}"
    for _ in range(5):
        refused(call(c, "SELECT auth.verify_code('guess@example.com', %s)", (wrong,)))
    refused(call(c, "SELECT auth.verify_code('guess@example.com', %s)", (sent["code"],)))
    # The link of the spent entry is spent too.
    assert_sqlstate(c, "PA023", "SELECT auth.verify_link(%s)", (sent["link_token"],))


def test_parallel_guesses_cannot_pass_the_attempt_limit(db, c):
    user(c, "parallel@example.com")
    sent = one(c, "SELECT auth.request_code('parallel@example.com')")
    wrong = [f"{(int(sent['code']) + i) % 1_000_000:06d}" for i in range(1, 21)]
    counted = []

    def guess(code):
        with connect(db) as own:
            value = one(own, "SELECT auth.verify_code('parallel@example.com', %s)", (code,))
            counted.append(value)

    threads = [threading.Thread(target=guess, args=(w,)) for w in wrong]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted == [None] * 20
    assert one(c, "SELECT failed_attempts FROM auth.one_time_codes WHERE email_key = auth_internal.email_key('parallel@example.com')") == 5
    refused(call(c, "SELECT auth.verify_code('parallel@example.com', %s)", (sent["code"],)))


def test_only_the_newest_code_of_an_email_works_and_expired_ones_do_not(c):
    user(c, "newest@example.com")
    first = one(c, "SELECT auth.request_code('newest@example.com')")
    second = one(c, "SELECT auth.request_code('newest@example.com')")
    refused(call(c, "SELECT auth.verify_code('newest@example.com', %s)", (first["code"],)))
    assert_sqlstate(c, "PA023", "SELECT auth.verify_link(%s)", (first["link_token"],))
    c.execute("UPDATE auth.one_time_codes SET expires_at = now() - interval '1 second' "
              "WHERE email_key = auth_internal.email_key('newest@example.com')")
    refused(call(c, "SELECT auth.verify_code('newest@example.com', %s)", (second["code"],)))
    assert_sqlstate(c, "PA023", "SELECT auth.verify_link(%s)", (second["link_token"],))


def test_unknown_and_known_emails_take_the_same_path_and_the_same_request_limit(c):
    user(c, "limited@example.com")
    c.execute("DELETE FROM auth.one_time_codes WHERE email_key = auth_internal.email_key('nobody-here@example.com')")
    for _ in range(5):
        assert one(c, "SELECT auth.request_code('limited@example.com')") is not None
        assert one(c, "SELECT auth.request_code('nobody-here@example.com')") is None
    # An entry is stored for the unknown email too, usable by nobody.
    assert one(c, "SELECT count(*) FROM auth.one_time_codes WHERE email_key = auth_internal.email_key('nobody-here@example.com') AND user_id IS NULL AND email IS NULL") == 5
    for email in ("limited@example.com", "nobody-here@example.com", "NOBODY-HERE@example.com"):
        e = assert_sqlstate(c, "PA015", "SELECT auth.request_code(%s)", (email,))
        assert "too many codes requested for this email; try again in" in str(e)
    # Any code for the unknown email is refused like a wrong one.
    refused(call(c, "SELECT auth.verify_code('nobody-here@example.com', '123456')"))
    c.execute("UPDATE auth.one_time_codes SET created_at = created_at - interval '2 hours' "
              "WHERE email_key = auth_internal.email_key('limited@example.com')")
    assert one(c, "SELECT auth.request_code('limited@example.com')") is not None


def test_a_decoy_code_guessed_right_still_signs_nobody_in(c):
    c.execute("DELETE FROM auth.one_time_codes WHERE email_key = auth_internal.email_key('decoy@example.com')")
    assert one(c, "SELECT auth.request_code('decoy@example.com')") is None
    # Plant a known code in the decoy entry, as if guessed.
    c.execute("UPDATE auth.one_time_codes SET code_hash = auth_internal.hash_token(id::text || ':111111') "
              "WHERE email_key = auth_internal.email_key('decoy@example.com')")
    refused(call(c, "SELECT auth.verify_code('decoy@example.com', '111111')"))
    assert one(c, "SELECT count(*) FROM auth.users WHERE email = 'decoy@example.com'") == 0


def test_create_user_signs_up_a_new_email_on_first_use(c):
    c.execute("DELETE FROM auth.users WHERE email = 'signup@example.com'")
    c.execute("DELETE FROM auth.one_time_codes WHERE email_key = auth_internal.email_key('signup@example.com')")
    sent = one(c, "SELECT auth.request_code('signup@example.com', create_user => true)")
    assert one(c, "SELECT count(*) FROM auth.users WHERE email = 'signup@example.com'") == 0
    result, _, _ = call(c, "SELECT auth.verify_code('signup@example.com', %s)", (sent["code"],))
    row = c.execute("SELECT id::text, email_verified, password_hash, role FROM auth.users WHERE email = 'signup@example.com'").fetchone()
    assert row == (result["user_id"], True, None, "web_user")
    # No password: a password login is refused like a wrong one.
    value, status, _ = call(c, "SELECT auth.login('signup@example.com', '')")
    assert (value, status) == (None, "401")
    # For a known email create_user changes nothing.
    sent = one(c, "SELECT auth.request_code('signup@example.com', create_user => true)")
    again, _, _ = call(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))
    assert again["user_id"] == result["user_id"]


def test_a_verification_code_verifies_and_cannot_sign_in(c):
    uid = user(c, "verify-me@example.com")
    sent = one(c, "SELECT auth.request_code('verify-me@example.com', 'verify_email')")
    refused(call(c, "SELECT auth.verify_code('verify-me@example.com', %s)", (sent["code"],)))  # purpose sign_in
    result, _, _ = call(c, "SELECT auth.verify_code('verify-me@example.com', %s, 'verify_email')", (sent["code"],))
    assert result == {"purpose": "verify_email", "user_id": str(uid), "email_verified": True}
    assert one(c, "SELECT email_verified FROM auth.users WHERE id = %s", (uid,)) is True
    # A link made for verification verifies, and signs nobody in.
    user(c, "verify-link@example.com")
    sent = one(c, "SELECT auth.request_code('verify-link@example.com', 'verify_email')")
    result = one(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))
    assert result["purpose"] == "verify_email" and "token" not in result


def test_an_email_change_is_confirmed_at_the_new_address(c):
    uid = user(c, "old-address@example.com", verified=True)
    c.execute("DELETE FROM auth.users WHERE email = 'new-address@example.com'")
    session = one(c, "SELECT auth.login('old-address@example.com', %s)", (PASSWORD,))
    reset = one(c, "SELECT auth.request_password_reset('old-address@example.com')")
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (session["token"],))
        c.execute("SET LOCAL ROLE NONE")
        sent = one(c, "SELECT auth.request_email_change('new-address@example.com')")
    # Until confirmed nothing changes; a verification code of the old address stays for it.
    assert one(c, "SELECT email FROM auth.users WHERE id = %s", (uid,)) == "old-address@example.com"
    result, _, _ = call(c, "SELECT auth.verify_code('new-address@example.com', %s, 'change_email')", (sent["code"],))
    assert result == {"purpose": "change_email", "user_id": str(uid), "email": "new-address@example.com"}
    assert one(c, "SELECT email_verified FROM auth.users WHERE id = %s", (uid,)) is True
    # The session shows the new address at once; the reset token sent to the old one is gone.
    assert signed_in_as(c, session["token"])["email"] == "new-address@example.com"
    assert_sqlstate(c, "PA016", "SELECT auth.reset_password(%s, 'a new password 1')", (reset,))


def test_an_email_change_to_a_taken_address_is_refused_on_use(c):
    user(c, "taker@example.com")
    user(c, "taken@example.com")
    session = one(c, "SELECT auth.login('taker@example.com', %s)", (PASSWORD,))
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (session["token"],))
        c.execute("SET LOCAL ROLE NONE")
        sent = one(c, "SELECT auth.request_email_change('TAKEN@example.com')")
    assert sent["code"]
    assert_sqlstate(c, "23505", "SELECT auth.verify_link(%s)", (sent["link_token"],))
    assert_sqlstate(c, "PA017", "SELECT auth.request_email_change('x@example.com')")


def test_a_code_sent_before_an_email_change_no_longer_works(c):
    uid = user(c, "moving@example.com")
    sent = one(c, "SELECT auth.request_code('moving@example.com', 'verify_email')")
    c.execute("UPDATE auth.users SET email = 'moved@example.com' WHERE id = %s", (uid,))
    refused(call(c, "SELECT auth.verify_code('moving@example.com', %s, 'verify_email')", (sent["code"],)))
    assert one(c, "SELECT email_verified FROM auth.users WHERE id = %s", (uid,)) is False


def test_a_disabled_account_gets_no_code_and_cannot_use_one(c):
    uid = user(c, "disabled-code@example.com")
    sent = one(c, "SELECT auth.request_code('disabled-code@example.com')")
    c.execute("SELECT auth.disable_user(%s)", (uid,))
    refused(call(c, "SELECT auth.verify_code('disabled-code@example.com', %s)", (sent["code"],)))
    assert one(c, "SELECT auth.request_code('disabled-code@example.com')") is None


def test_require_verified_email_refuses_sign_in_until_verified(c):
    uid = user(c, "unverified@example.com")
    c.execute("SET pg_auth.require_verified_email = on")
    try:
        e = assert_sqlstate(c, "PA024", "SELECT auth.login('unverified@example.com', %s)", (PASSWORD,))
        assert "not verified" in str(e)
        # A wrong password still answers as a wrong password (nothing told about verification).
        value, status, _ = call(c, "SELECT auth.login('unverified@example.com', 'wrong password')")
        assert (value, status) == (None, "401")
        sent = one(c, "SELECT auth.request_code('unverified@example.com', 'verify_email')")
        one(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))
        assert one(c, "SELECT auth.login('unverified@example.com', %s)", (PASSWORD,))["user_id"] == str(uid)
        # A sign-in code proves the address itself.
        user(c, "unverified2@example.com")
        sent = one(c, "SELECT auth.request_code('unverified2@example.com')")
        assert one(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))["purpose"] == "sign_in"
    finally:
        c.execute("RESET pg_auth.require_verified_email")


@pytest.mark.parametrize("sql, params, state", [
    ("SELECT auth.request_code(NULL)", (), "22023"),
    ("SELECT auth.request_code('no-at-sign')", (), "22023"),
    ("SELECT auth.request_code(%s)", ("a@" + "b" * 300,), "22023"),
    ("SELECT auth.request_code('a@example.com', 'change_email')", (), "22023"),
    ("SELECT auth.request_code('a@example.com', NULL)", (), "22023"),
    ("SELECT auth.request_code('a@example.com', 'sign_in', false, interval '1 second')", (), "22023"),
    ("SELECT auth.request_code('a@example.com', 'sign_in', false, interval '2 days')", (), "22023"),
    ("SELECT auth.request_code('a@example.com', 'sign_in', false, NULL)", (), "22023"),
    ("SELECT auth.verify_link(NULL)", (), "PA023"),
    ("SELECT auth.verify_link(%s)", ("pal_" + "A" * 43,), "PA023"),
    ("SELECT auth.verify_link(%s)", ("x" * 100_000,), "PA023"),
])
def test_hostile_arguments_get_documented_errors(c, sql, params, state):
    assert_sqlstate(c, state, sql, params)


@pytest.mark.parametrize("email, code, purpose", [
    (None, None, None), ("a@example.com", None, "sign_in"), ("a@example.com", "x" * 100_000, "sign_in"),
    ("a@example.com", "123456", "nonsense"), ("x" * 10_000, "123456", "sign_in"), ("a@example.com", "１２３４５６", "sign_in"),
])
def test_hostile_codes_are_refused_like_wrong_ones(c, email, code, purpose):
    refused(call(c, "SELECT auth.verify_code(%s, %s, %s)", (email, code, purpose)))


def test_a_read_only_transaction_is_refused_before_any_check(c):
    for sql in ("SELECT auth.request_code('ro@example.com')", "SELECT auth.verify_code('ro@example.com', '123456')",
                "SELECT auth.verify_link('pal_x')"):
        with pytest.raises(psycopg.Error) as e:
            with c.transaction():
                c.execute("SET TRANSACTION READ ONLY")
                c.execute(sql)
        assert e.value.sqlstate == "25006", sql


def test_cleanup_deletes_spent_codes_once_they_no_longer_count(c):
    user(c, "cleanup-code@example.com")
    sent = one(c, "SELECT auth.request_code('cleanup-code@example.com')")
    one(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))
    live = one(c, "SELECT auth.request_code('cleanup-code@example.com', 'verify_email')")
    key = "auth_internal.email_key('cleanup-code@example.com')"
    c.execute(f"UPDATE auth.one_time_codes SET created_at = now() - interval '2 hours' WHERE email_key = {key}")
    c.execute("SELECT auth.cleanup_expired()")
    # The used one is gone; the live one stays usable.
    assert one(c, f"SELECT count(*) FROM auth.one_time_codes WHERE email_key = {key}") == 1
    assert one(c, "SELECT auth.verify_link(%s) ->> 'purpose'", (live["link_token"],)) == "verify_email"


def test_an_email_change_dies_with_the_session_that_asked(c):
    """Live attack on 0.4.0: a thief with a stolen cookie asked for an email change; the owner
    reset the password (every session ended), and the thief still used the code."""
    uid = user(c, "changed-by-thief@example.com", verified=True)
    stolen = one(c, "SELECT auth.login('changed-by-thief@example.com', %s)", (PASSWORD,))
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (stolen["token"],))
        c.execute("SET LOCAL ROLE NONE")
        sent = one(c, "SELECT auth.request_email_change('thief@evil.example')")
    reset = one(c, "SELECT auth.request_password_reset('changed-by-thief@example.com')")
    c.execute("SELECT auth.reset_password(%s, 'the owner''s new password')", (reset,))
    refused(call(c, "SELECT auth.verify_code('thief@evil.example', %s, 'change_email')", (sent["code"],)))
    assert_sqlstate(c, "PA023", "SELECT auth.verify_link(%s)", (sent["link_token"],))
    assert one(c, "SELECT email FROM auth.users WHERE id = %s", (uid,)) == "changed-by-thief@example.com"
    # A sign-out ends it too.
    session = one(c, "SELECT auth.login('changed-by-thief@example.com', 'the owner''s new password')")
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (session["token"],))
        c.execute("SET LOCAL ROLE NONE")
        sent = one(c, "SELECT auth.request_email_change('later@example.com')")
        c.execute("SELECT auth.logout()")
    refused(call(c, "SELECT auth.verify_code('later@example.com', %s, 'change_email')", (sent["code"],)))


def test_a_sign_in_code_ends_a_password_nobody_proved(c):
    """Live attack on 0.4.0: an attacker registered the victim's address with a password; the
    victim's code sign-in verified the account and the attacker's password kept working."""
    uid = user(c, "pre-registered@example.com")
    attacker = one(c, "SELECT auth.login('pre-registered@example.com', %s)", (PASSWORD,))
    sent = one(c, "SELECT auth.request_code('pre-registered@example.com')")
    victim = one(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))
    assert victim["user_id"] == str(uid)
    assert one(c, "SELECT password_hash IS NULL AND email_verified FROM auth.users WHERE id = %s", (uid,)) is True
    value, status, _ = call(c, "SELECT auth.login('pre-registered@example.com', %s)", (PASSWORD,))
    assert (value, status) == (None, "401")
    assert_sqlstate(c, "PA017", "SELECT auth.authenticate(%s)", (attacker["token"],))
    assert signed_in_as(c, victim["token"])["sub"] == str(uid)
    # An account whose address was proved keeps its password.
    user(c, "proved@example.com", verified=True)
    sent = one(c, "SELECT auth.request_code('proved@example.com')")
    one(c, "SELECT auth.verify_link(%s)", (sent["link_token"],))
    assert one(c, "SELECT auth.login('proved@example.com', %s)", (PASSWORD,))["user_id"]


def test_no_other_role_can_hold_the_lock_of_an_email(db, c):
    """Live attack on 0.4.0: the lock serialising requests and guesses of an email was an
    advisory lock any role could take, hanging every request for that email."""
    c.execute("DO $$ BEGIN CREATE ROLE lock_holder LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    import psycopg as pg
    with pg.connect(f"host=127.0.0.1 port={c.info.port} user=lock_holder dbname={db}", autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended('pg_auth one-time ' || encode(sha256('lockme@example.com'::bytea), 'hex'), 0))")
        with pytest.raises(pg.Error) as e:
            other.execute("SELECT FROM auth.code_email_locks FOR UPDATE")
        assert e.value.sqlstate == "42501"
        c.execute("SET statement_timeout = '5s'")
        try:
            assert one(c, "SELECT auth.request_code('lockme@example.com')") is None
            refused(call(c, "SELECT auth.verify_code('lockme@example.com', '123456')"))
        finally:
            c.execute("RESET statement_timeout")


def test_a_code_goes_to_the_accounts_own_address(c):
    """Live attack on 0.4.0: lower() folds U+0130 to i; a code asked for "bob@gma\u0130l.com"
    went to that address and signed into the account of bob@gmail.com."""
    user(c, "kbob@gmail.example")
    lookalike = "kbob@gma\u0130l.example"
    sent = one(c, "SELECT auth.request_code(%s)", (lookalike,))
    assert sent["email"] == "kbob@gmail.example"
    # create_user for a lookalike of an account made later never signs into that account.
    c.execute("DELETE FROM auth.users WHERE email = 'kcarol@mail.example'")
    c.execute("DELETE FROM auth.one_time_codes WHERE email_key = auth_internal.email_key('kcarol@mail.example')")
    sent = one(c, "SELECT auth.request_code(%s, create_user => true)", ("\u212acarol@mail.example",))
    assert sent["email"] == "\u212acarol@mail.example"
    carol = one(c, "SELECT auth.register('kcarol@mail.example', %s)", (PASSWORD,))
    result = call(c, "SELECT auth.verify_code(%s, %s)", ("\u212acarol@mail.example", sent["code"]))
    refused(result)
    assert one(c, "SELECT count(*) FROM auth.sessions WHERE user_id = %s", (carol,)) == 0
