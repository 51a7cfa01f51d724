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


def basic_request(c, user, password):
    """auth.authenticate() as for a request carrying Authorization: Basic (read-only path)."""
    import base64
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    with c.transaction():
        c.execute("SELECT set_config('request.headers', %s, true)", (f'{{"authorization": "{header}"}}',))
        c.execute("SELECT set_config('request.method', 'GET', true)")
        c.execute("SELECT auth.authenticate()")
        sub = one(c, "SELECT auth.jwt() ->> 'sub'")
        c.execute("SET LOCAL ROLE NONE")
        return sub


def test_basic_passwords_are_counted_too(c):
    """Re-check on 0.4.0: Basic with passwords wrote nothing, so it was never limited."""
    uid = user(c, "basic-target@example.com")
    c.execute("ALTER DATABASE attempt_limits SET pg_auth.token_sources = 'basic'")
    c.execute("ALTER DATABASE attempt_limits SET pg_auth.basic_passwords = on")
    c.execute("ALTER DATABASE attempt_limits SET pg_auth.pgrst_errors = off")
    try:
        with psycopg.connect(dsn(DB), autocommit=True) as fresh:
            fresh.execute("GRANT web_user TO CURRENT_USER")
            assert basic_request(fresh, "basic-target@example.com", PASSWORD) == str(uid)
            states = []
            for i in range(7):
                try:
                    basic_request(fresh, "basic-target@example.com", f"wrong {i}")
                except psycopg.Error as e:
                    states.append(e.sqlstate)
            assert states[:5] == ["PT401"] * 5 and states[5:] == ["PT429"] * 2, states
            with pytest.raises(psycopg.Error) as e:
                basic_request(fresh, "basic-target@example.com", PASSWORD)
            assert e.value.sqlstate == "PT429"
    finally:
        for name in ("token_sources", "basic_passwords", "pgrst_errors"):
            c.execute(f"ALTER DATABASE attempt_limits RESET pg_auth.{name}")


def test_a_password_reset_ends_the_count(c):
    """Re-check on 0.4.0: a thief's rolled-back guesses kept the owner locked out after a reset."""
    user(c, "reset-target@example.com")
    session = one(c, "SELECT auth.login('reset-target@example.com', %s)", (PASSWORD,))
    with pytest.raises(psycopg.Error) as e:
        with c.transaction():
            c.execute("SELECT auth.authenticate(%s)", (session["token"],))
            c.execute("SET LOCAL ROLE NONE")
            c.execute(GUESS_AND_ROLL_BACK.format(
                call="auth.change_password('guess ' || i, 'a new password 1')", tries=20))
    assert e.value.sqlstate == "PA015"
    token = one(c, "SELECT auth.request_password_reset('reset-target@example.com')")
    c.execute("SELECT auth.reset_password(%s, 'the owner''s new password')", (token,))
    assert one(c, "SELECT auth.login('reset-target@example.com', 'the owner''s new password')")["user_id"]


def test_an_administrator_unlocks_an_email(c):
    """Re-check on 0.4.0: a lock earned through HTTP Basic (shared memory only) could not be seen
    in auth.login_attempts nor cleared."""
    user(c, "unlock-target@example.com")
    for i in range(5):
        assert one(c, "SELECT auth.login('unlock-target@example.com', %s)", (f"wrong {i}",)) is None
    with pytest.raises(psycopg.Error) as e:
        c.execute("SELECT auth.login('unlock-target@example.com', %s)", (PASSWORD,))
    assert e.value.sqlstate == "PA015"
    c.execute("SELECT auth.unlock('Unlock-Target@example.com')")
    assert one(c, "SELECT auth.login('unlock-target@example.com', %s)", (PASSWORD,))["user_id"]


def test_the_counts_of_one_database_are_its_own(c):
    """A cluster's databases share the table: the same email in another database is someone
    else, and its success must not clear this database's count (nor its failures lock it)."""
    other_db = "attempt_limits_other"
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {other_db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {other_db}")
        admin.execute(f"ALTER DATABASE {other_db} SET pg_auth.argon2_memory_kib = 1024")
        admin.execute(f"ALTER DATABASE {other_db} SET pg_auth.argon2_iterations = 1")
    with psycopg.connect(dsn(other_db), autocommit=True) as other:
        other.execute("CREATE EXTENSION pg_auth")
        other.execute("SELECT auth.register('shared-email@example.com', 'the other one''s password')")
        user(c, "shared-email@example.com")
        state, _ = rolled_back_guesses(c, "auth.login('shared-email@example.com', 'guess ' || i)", 20)
        assert state == "PA015"
        # The other database's user signs in (and clears only their own count)...
        assert one(other, "SELECT auth.login('shared-email@example.com', 'the other one''s password')")["user_id"]
        # ...and this one stays locked.
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT auth.login('shared-email@example.com', %s)", (PASSWORD,))
        assert e.value.sqlstate == "PA015"


def test_a_failing_email_change_code_does_not_clear_the_count_of_an_address(c):
    """Round 4 of the live attack (critical): the count of an email was cleared before the code's
    purpose was carried out; a change_email code to a taken address failed there (23505), was
    usable again, and cleared that address's count at will — a sign-in code fell in 100 s."""
    user(c, "code-victim@example.com")
    user(c, "code-attacker@example.com")
    one(c, "SELECT auth.request_code('code-victim@example.com')")
    session = one(c, "SELECT auth.login('code-attacker@example.com', %s)", (PASSWORD,))
    with c.transaction():
        c.execute("SELECT auth.authenticate(%s)", (session["token"],))
        c.execute("SET LOCAL ROLE NONE")
        change = one(c, "SELECT auth.request_email_change('code-victim@example.com')")
    clear = f"auth.verify_code('code-victim@example.com', '{change['code']}', 'change_email')"
    call = ("(CASE WHEN i % 10 = 9 THEN (SELECT NULL::jsonb FROM (SELECT public.try_sql(%L)) t) "
            "ELSE auth.verify_code('code-victim@example.com', lpad(i::text, 6, '0')) END)")
    c.execute("""CREATE OR REPLACE FUNCTION public.try_sql(q text) RETURNS void LANGUAGE plpgsql AS $$
                 BEGIN EXECUTE 'SELECT ' || q; EXCEPTION WHEN unique_violation THEN NULL; END $$""")
    state, message = rolled_back_guesses(c, call.replace("%L", "'" + clear.replace("'", "''") + "'"), 200)
    assert state == "PA015" and "too many attempts" in message
