"""Attempt limits a SQL caller cannot roll back. A refusal is counted in a table, which the
caller's transaction can undo: a compromised application login (or any role granted a web role)
wraps each guess in a savepoint and rolls the wrong ones back. With pg_auth preloaded, every
attempt is also counted in shared memory before the answer is known, and only a success clears
it (live attack on 0.4.0: a six-digit sign-in code fell in 36 s, a TOTP factor in 110 s).
In a cluster of its own with pg_auth in shared_preload_libraries (tests/preloaded.py).
"""

from __future__ import annotations

import psycopg
import pytest

import preloaded
from otp import totp
from preloaded import dsn

DB = "attempt_limits"
PASSWORD = "attempt limits password"

GUESS_AND_ROLL_BACK = """
DO $$
DECLARE
    answer jsonb;
BEGIN
    FOR i IN 0..{tries} LOOP
        BEGIN
            answer := {call};
            IF answer IS NOT NULL THEN
                RAISE EXCEPTION 'guessed after % tries', i + 1;
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'P0099';  -- roll the wrong guess back
        EXCEPTION WHEN SQLSTATE 'P0099' THEN NULL;
        END;
    END LOOP;
END $$"""


def one(c, sql, params=()):
    return c.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def c():
    preloaded.start({})
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
        for key, value in {"argon2_memory_kib": 1024, "argon2_iterations": 1}.items():
            admin.execute(f"ALTER DATABASE {DB} SET pg_auth.{key} = {value}")
    conn = psycopg.connect(dsn(DB), autocommit=True)
    conn.execute("CREATE EXTENSION pg_auth")
    conn.execute("DO $$ BEGIN CREATE ROLE web_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    conn.execute("GRANT web_user TO CURRENT_USER")
    conn.execute("SELECT auth.generate_key('HS256', 'limits')")
    yield conn
    conn.close()
    preloaded.stop()


def user(c, email):
    c.execute("DELETE FROM auth.users WHERE email = %s", (email,))
    return one(c, "SELECT auth.register(%s, %s)", (email, PASSWORD))


def rolled_back_guesses(c, call, tries):
    """Runs the savepoint brute force; the SQLSTATE and message it ends with."""
    with pytest.raises(psycopg.Error) as e:
        c.execute(GUESS_AND_ROLL_BACK.format(call=call, tries=tries))
    return e.value.sqlstate, str(e.value)


def test_the_limits_are_kept_in_shared_memory(c):
    assert one(c, "SELECT auth_internal.attempt_limits_shared()") is True


def test_rolled_back_guesses_of_a_code_stop_at_the_limit(c):
    user(c, "code-target@example.com")
    sent = one(c, "SELECT auth.request_code('code-target@example.com')")
    right = int(sent["code"])
    # Guess everything but the right code, rolling each wrong guess back.
    call = f"auth.verify_code('code-target@example.com', lpad(((i + {right + 1}) % 1000000)::text, 6, '0'))"
    state, message = rolled_back_guesses(c, call, 1000)
    assert state == "PA015" and "too many attempts" in message
    # The table saw nothing (rolled back), but the right code is refused too now.
    assert one(c, "SELECT failed_attempts FROM auth.one_time_codes WHERE email_key = auth_internal.email_key('code-target@example.com')") == 0
    with pytest.raises(psycopg.Error) as e:
        c.execute("SELECT auth.verify_code('code-target@example.com', %s)", (sent["code"],))
    assert e.value.sqlstate == "PA015"


def test_rolled_back_guesses_of_a_second_factor_stop_at_the_limit(c):
    user(c, "totp-target@example.com")
    session = one(c, "SELECT auth.login('totp-target@example.com', %s)", (PASSWORD,))
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (session["token"],))
        c.execute("SET LOCAL ROLE NONE")
        secret = one(c, "SELECT auth.enroll_totp() ->> 'secret'")
        one(c, "SELECT auth.confirm_totp(%s)", (totp(secret),))
    thief = one(c, "SELECT auth.login('totp-target@example.com', %s)", (PASSWORD,))
    right = {totp(secret, offset=o) for o in (-1, 0, 1, 2)}
    wrong = [f"{n:06d}" for n in range(1000) if f"{n:06d}" not in right][:100]
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (thief["token"],))
            c.execute("SET LOCAL ROLE NONE")
            c.execute(GUESS_AND_ROLL_BACK.format(
                call=f"auth.verify_totp((ARRAY{wrong!r})[i % {len(wrong)} + 1])", tries=100))
    assert e.value.sqlstate == "PA015"
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (thief["token"],))
            c.execute("SET LOCAL ROLE NONE")
            c.execute("SELECT auth.verify_totp(%s)", (totp(secret, offset=1),))
    assert e.value.sqlstate == "PA015"


def test_rolled_back_password_guesses_stop_at_the_limit(c):
    user(c, "login-target@example.com")
    state, _ = rolled_back_guesses(c, "auth.login('login-target@example.com', 'guess ' || i)", 50)
    assert state == "PA015"
    assert one(c, "SELECT count(*) FROM auth.login_attempts") == 0  # all rolled back
    with pytest.raises(psycopg.Error) as e:
        c.execute("SELECT auth.login('login-target@example.com', %s)", (PASSWORD,))
    assert e.value.sqlstate == "PA015"


def test_a_success_clears_the_count(c):
    user(c, "clears@example.com")
    for _ in range(4):
        assert one(c, "SELECT auth.login('clears@example.com', 'wrong password')") is None
    assert one(c, "SELECT auth.login('clears@example.com', %s)", (PASSWORD,))["user_id"]
    for _ in range(4):
        assert one(c, "SELECT auth.login('clears@example.com', 'wrong password')") is None
    assert one(c, "SELECT auth.login('clears@example.com', %s)", (PASSWORD,))["user_id"]
