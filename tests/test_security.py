"""The holes of the attack pass (issue 7), each as the attacker would try it: a database role
setting request.* by hand, a stolen sid-bound JWT, a hostile identity provider, a cross-site
form, a key retired while another backend is mid-statement. Real PostgreSQL and, for the HTTP
cases, the real PostgREST serving the todo example app."""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest

from conftest import assert_sqlstate, connect, ensure_role, one
from todo_harness import TodoApp, dsn, session_cookie

PASSWORD = "correct horse battery staple"


# ---- SQL level ------------------------------------------------------------------------------------

@pytest.fixture
def admin(database):
    c = connect()
    ensure_role(c, "sec_user")
    c.execute("GRANT sec_user TO CURRENT_USER")
    # As an application's API would: the signed-in role may end, refresh and re-password its session.
    c.execute("GRANT EXECUTE ON FUNCTION auth.refresh(), auth.logout(), auth.change_password(text, text),"
              " auth.verified_session() TO sec_user")
    if one(c, "SELECT count(*) FROM auth.keys WHERE kid = 'sec-ring'") == 0:
        c.execute("SELECT auth.generate_key('ES256', 'sec-ring')")
    yield c
    c.close()


def http_status(error: psycopg.Error) -> int | None:
    """The HTTP status PostgREST would answer a PGRST error with."""
    return json.loads(error.diag.message_detail or "{}").get("status")


def signed_in(admin, tag):
    email = f"{tag}-{uuid.uuid4().hex[:8]}@example.com"
    user = one(admin, "SELECT auth.register(%s, %s, role => 'sec_user')", (email, PASSWORD))
    login = one(admin, "SELECT auth.login(%s, %s, true)", (email, PASSWORD))
    return user, login


def in_transaction(conn, *statements):
    """Runs statements in one transaction and returns the last one's value."""
    with conn.transaction():
        value = None
        for sql, params in statements:
            row = conn.execute(sql, params).fetchone()
            value = row[0] if row else None
        return value


def test_claims_set_by_hand_never_select_a_session(admin):
    _, victim = signed_in(admin, "victim")
    claims = json.dumps({"role": "sec_user", "sub": victim["user_id"], "sid": victim["session_id"]})
    for call in ("auth.refresh()", "auth.logout()", "auth.change_password('guess', 'new password 1')"):
        with pytest.raises(psycopg.Error) as e, admin.transaction():
            admin.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
            admin.execute(f"SELECT {call}")
        assert e.value.sqlstate == "PA017", call  # not signed in
    # The victim's session is untouched: same token, still live.
    assert in_transaction(admin, ("SELECT auth.authenticate(%s) ->> 'sid'", (victim["token"],))) == victim["session_id"]


def test_bearer_claims_are_verified_again_not_trusted(admin):
    """request.jwt.claims next to a Bearer header is what PostgREST would set, and also what any
    SQL caller can set: the Bearer token itself is verified."""
    _, victim = signed_in(admin, "bearer")
    forged = json.dumps({"role": "sec_user", "sub": victim["user_id"], "sid": victim["session_id"]})
    with pytest.raises(psycopg.Error) as e, admin.transaction():
        admin.execute("SELECT set_config('request.method', 'GET', true), set_config('request.headers', %s, true)",
                      (json.dumps({"authorization": "Bearer not.a.jwt"}),))
        admin.execute("SELECT set_config('request.jwt.claims', %s, true)", (forged,))
        admin.execute("SELECT auth.authenticate()")
    assert '"PA001"' in str(e.value) or "PA001" in str(e.value)
    # The real Bearer token works and binds its session.
    sid = in_transaction(
        admin,
        ("SELECT set_config('request.method', 'GET', true), set_config('request.headers', %s, true)",
         (json.dumps({"authorization": f"Bearer {victim['jwt']}"}),)),
        ("SELECT auth.authenticate()", ()),
        ("SELECT session_id::text FROM auth.verified_session()", ()),
    )
    assert sid == victim["session_id"]


def test_a_sid_jwt_never_refreshes_into_a_session_cookie(admin):
    _, victim = signed_in(admin, "sidjwt")
    with pytest.raises(psycopg.Error) as e, admin.transaction():
        admin.execute("SELECT auth.authenticate(%s)", (victim["jwt"],))
        admin.execute("SELECT auth.refresh()")
    assert e.value.sqlstate == "PA017"
    # It can end its session (logout), which revokes the session cookie too.
    in_transaction(admin, ("SELECT auth.authenticate(%s)", (victim["jwt"],)), ("SELECT auth.logout()", ()))
    assert_sqlstate(admin, "PA017", "SELECT auth.authenticate(%s)", (victim["token"],))


def test_a_sid_jwt_dies_with_its_session_idle_expiry(admin):
    _, victim = signed_in(admin, "idle")
    admin.execute("UPDATE auth.sessions SET idle_expires_at = now() - interval '1 s' WHERE id = %s",
                  (victim["session_id"],))
    assert_sqlstate(admin, "PA017", "SELECT auth.authenticate(%s)", (victim["jwt"],))


def test_an_identity_providers_sid_is_not_one_of_ours(admin):
    material = admin.execute("SELECT secret, public_jwk::text FROM auth_internal.new_key_material('ES256')").fetchone()
    kid = one(admin, "SELECT auth.add_key(%s, 'sec-idp')", (material[1],))
    try:
        claims = {"sub": "idp-user", "role": "sec_user", "sid": "keycloak-session-42"}
        token = one(admin, "SELECT auth.sign_jwt(%s::jsonb, %s)", (json.dumps(claims), material[0]))
        assert in_transaction(admin, ("SELECT auth.authenticate(%s) ->> 'sid'", (token,))) == "keycloak-session-42"
        assert in_transaction(admin, ("SELECT count(*) FROM auth.verified_session()", ())) == 0
        # The same sid in a token of ours names no session of ours: refused.
        ours = one(admin, "SELECT auth.sign_jwt(%s::jsonb)", (json.dumps(claims),))
        assert_sqlstate(admin, "PA009", "SELECT auth.authenticate(%s)", (ours,))
    finally:
        admin.execute("DELETE FROM auth.keys WHERE kid = %s", (kid,))


def test_a_jwks_cannot_replace_one_of_our_keys(admin):
    jwks = one(admin, "SELECT auth.jwks()")
    assert_sqlstate(admin, "PA012", "SELECT auth.add_jwks(%s::jsonb)", (json.dumps(jwks),))


def test_numeric_jti_is_revocable(admin):
    token = one(admin, """SELECT auth.sign_jwt('{"role":"sec_user","jti":90210}'::jsonb)""")
    assert in_transaction(admin, ("SELECT auth.authenticate(%s) ->> 'jti'", (token,))) == "90210"
    admin.execute("SELECT auth.revoke_token('90210')")
    assert_sqlstate(admin, "PA014", "SELECT auth.authenticate(%s)", (token,))


def test_a_token_without_role_never_leaves_a_sql_client_as_itself(admin):
    token = one(admin, """SELECT auth.sign_jwt('{"sub":"no-role"}'::jsonb)""")
    assert_sqlstate(admin, "42501", "SELECT auth.authenticate(%s)", (token,))
    ensure_role(admin, "sec_anon")
    admin.execute("GRANT sec_anon TO CURRENT_USER")
    admin.execute("SET pg_auth.anon_role = 'sec_anon'")
    assert in_transaction(admin, ("SELECT auth.authenticate(%s)", (token,)), ("SELECT current_user", ())) == "sec_anon"


def test_reset_tokens_end_with_a_reset_and_a_password_change(admin):
    user, login = signed_in(admin, "resets")
    email = one(admin, "SELECT email FROM auth.users WHERE id = %s", (user,))
    first, second = (one(admin, "SELECT auth.request_password_reset(%s)", (email,)) for _ in range(2))
    admin.execute("SELECT auth.reset_password(%s, 'a new password 1')", (first,))
    assert_sqlstate(admin, "PA016", "SELECT auth.reset_password(%s, 'a new password 2')", (second,))
    third = one(admin, "SELECT auth.request_password_reset(%s)", (email,))
    login = one(admin, "SELECT auth.login(%s, 'a new password 1')", (email,))
    in_transaction(admin, ("SELECT auth.authenticate(%s)", (login["token"],)),
                   ("SELECT auth.change_password('a new password 1', 'a new password 3')", ()))
    assert_sqlstate(admin, "PA016", "SELECT auth.reset_password(%s, 'a new password 4')", (third,))


def test_change_password_honours_the_login_lockout(admin):
    user, login = signed_in(admin, "guess")
    email = one(admin, "SELECT email FROM auth.users WHERE id = %s", (user,))
    admin.execute("SET pg_auth.login_max_failures = 3")

    def change(old):
        try:
            answer = in_transaction(admin, ("SELECT auth.authenticate(%s)", (login["token"],)),
                                    ("SELECT auth.change_password(%s, 'whatever new 1')", (old,)))
        except psycopg.Error as e:
            return e.sqlstate
        return "28P01" if answer is None else "changed"

    assert change("a wrong guess") == "28P01"
    for i in range(2):
        one(admin, "SELECT auth.login(%s, %s)", (email, f"wrong {i}"))
    # The wrong guess through change_password counted: 1 + 2 failures lock the email.
    assert change(PASSWORD) == "PA015"


def test_a_stolen_session_cannot_guess_the_old_password_without_limit(admin):
    """Issue 7, Low: wrong old passwords given to change_password are counted like failed logins
    (returned, not raised, so the count is not rolled back), so guessing through a stolen session
    locks the email after pg_auth.login_max_failures."""
    _, login = signed_in(admin, "stolen")
    admin.execute("SET pg_auth.login_max_failures = 4")
    answers = []
    for i in range(6):
        try:
            answers.append(in_transaction(admin, ("SELECT auth.authenticate(%s)", (login["token"],)),
                                          ("SELECT auth.change_password(%s, 'a brand new one')", (f"guess {i}",))) or "28P01")
        except psycopg.Error as e:
            answers.append(e.sqlstate)
    assert answers == ["28P01"] * 4 + ["PA015"] * 2, answers
    admin.execute("RESET pg_auth.login_max_failures")


def test_a_key_retired_mid_statement_elsewhere_is_refused_next(admin, new_conn):
    kid = one(admin, "SELECT auth.generate_key('ES256')")
    token = one(admin, "SELECT auth.sign_jwt('{\"n\":1}'::jsonb)")
    a = new_conn()
    assert one(a, "SELECT auth.verify_jwt(%s) ->> 'n'", (token,)) == "1"  # ring cached in A

    def retire_soon():
        time.sleep(0.5)
        with connect() as b:
            b.execute("SELECT auth.retire_key(%s)", (kid,))

    t = threading.Thread(target=retire_soon)
    t.start()
    # A is mid-statement when B retires the key; A reloads within the statement or at the next.
    a.execute("SELECT pg_sleep(1.5)")
    t.join()
    assert_sqlstate(a, "PA010", "SELECT auth.verify_jwt(%s)", (token,))
    assert_sqlstate(a, "PA010", "SELECT auth.verify_jwt(%s)", (token,))


# ---- through PostgREST ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app():
    todo = TodoApp("pg_auth_security_e2e").start()
    yield todo
    todo.stop()


def test_login_csrf_a_cross_site_form_cannot_sign_in(app):
    c = app.client()
    assert c.register(f"csrf-{uuid.uuid4().hex[:8]}@example.com", "Csrf", PASSWORD).status_code == 200
    c.close()
    form = app.client()
    resp = form.http.post(f"{app.url}/rpc/login", data={"email": "x@example.com", "password": PASSWORD},
                          timeout=10)
    assert resp.status_code == 415, resp.text
    assert session_cookie(resp) is None
    form.close()


def test_authenticator_with_forged_claims_cannot_take_over_a_session(app):
    victim = app.client()
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    assert victim.register(email, "Victim", PASSWORD).status_code == 200
    token = victim.token
    sid = str(app.session_id_of(token))
    user = str(app.one("SELECT id FROM auth.users WHERE email = %s", (email,)))
    with psycopg.connect(dsn(app.dbname).replace("user=postgres", "user=authenticator"), autocommit=True) as c:
        for fn in ("refresh_session", "logout", "current_user"):
            with pytest.raises(psycopg.Error) as e, c.transaction():
                c.execute("SET LOCAL ROLE web_anon")
                c.execute("SELECT set_config('request.jwt.claims', %s, true)",
                          (json.dumps({"role": "web_user", "sub": user, "sid": sid}),))
                c.execute(f'SELECT api."{fn}"()')
            assert e.value.sqlstate == "PA017", fn  # not signed in
    assert victim.me().status_code == 200 and victim.token == token
    victim.close()


def test_a_refused_token_holds_no_session_even_when_the_error_is_caught(admin):
    _, victim = signed_in(admin, "caught")
    jti = one(admin, "SELECT auth.decode_jwt_unverified(%s) -> 'payload' ->> 'jti'", (victim["jwt"],))
    admin.execute("SELECT auth.revoke_token(%s)", (jti,))
    with admin.transaction():
        admin.execute("SAVEPOINT s")
        with pytest.raises(psycopg.Error):
            admin.execute("SELECT auth.authenticate(%s)", (victim["jwt"],))
        admin.execute("ROLLBACK TO SAVEPOINT s")
        assert one(admin, "SELECT count(*) FROM auth.verified_session()") == 0


@pytest.mark.parametrize("sid", ["00000000000000000000000000000000----", "{00000000-0000-0000-0000-000000000000}",
                                 "00000000000000000000000000000000", 42])
def test_a_sid_not_in_canonical_uuid_form_is_an_invalid_claim(admin, sid):
    token = one(admin, "SELECT auth.sign_jwt(%s::jsonb)", (json.dumps({"role": "sec_user", "sid": sid}),))
    assert_sqlstate(admin, "PA009", "SELECT auth.authenticate(%s)", (token,))


def test_a_failed_login_never_waits_on_the_users_row_lock(admin):
    """Live attack F4: login locked the user row before checking the password, so wrong guesses
    for a known email queued behind a login in progress (or any writer of the row) while guesses
    for an unknown email did not: concurrency timing told which emails exist. Now the row is
    locked only once the password matched."""
    email = f"f4-{uuid.uuid4().hex[:8]}@example.com"
    one(admin, "SELECT auth.register(%s, %s, role => 'sec_user')", (email, PASSWORD))
    with connect() as holder, holder.transaction():
        holder.execute("SELECT 1 FROM auth.users WHERE email = %s FOR UPDATE", (email,))
        with connect() as guesser:
            guesser.execute("SET lock_timeout = '2s'")
            for who in (email, f"ghost-{uuid.uuid4().hex[:8]}@example.com"):
                answer = one(guesser, "SELECT auth.login(%s, 'wrong guess')", (who,))
                assert answer is None, (who, answer)
            # The right password does wait for the lock (and re-checks the row), never skips it.
            with pytest.raises(psycopg.errors.LockNotAvailable):
                guesser.execute("SELECT auth.login(%s, %s)", (email, PASSWORD))
    one(admin, "DELETE FROM auth.login_attempts RETURNING 1")


def test_a_host_prefixed_cookie_name_defeats_cookie_tossing(admin):
    """Live attack F7: a sibling subdomain can plant its own `access_token` cookie (the attacker's
    session) beside the victim's. Browsers refuse to accept a `__Host-` cookie from a subdomain,
    without Secure, or with a Domain; with pg_auth.cookie_name = '__Host-…' only that cookie is
    read, and it is always set Secure, Path=/ and without Domain."""
    victim_email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    victim = str(one(admin, "SELECT auth.register(%s, %s, role => 'sec_user')", (victim_email, PASSWORD)))
    _, attacker_login = signed_in(admin, "tosser")
    with admin.transaction(force_rollback=True):
        admin.execute("SET LOCAL pg_auth.cookie_name = '__Host-access_token'")
        admin.execute("SET LOCAL pg_auth.cookie_secure = off")  # the prefix still forces Secure
        victim_token = one(admin, "SELECT auth.login(%s, %s) ->> 'token'", (victim_email, PASSWORD))
        headers = json.loads(one(admin, "SELECT current_setting('response.headers')"))
        cookie = next(h["Set-Cookie"] for h in headers if "Set-Cookie" in h)
        assert cookie.startswith(f"__Host-access_token={victim_token};"), cookie
        assert "; Secure" in cookie and "; Path=/" in cookie and "Domain" not in cookie, cookie
        tossed = {"access_token": attacker_login["token"], "__Host-access_token": victim_token}
        admin.execute("SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{}', true),"
                      " set_config('request.cookies', %s, true)",
                      (json.dumps(tossed),))
        admin.execute("SELECT auth.authenticate()")
        assert one(admin, "SELECT auth.uid()::text") == victim


@pytest.mark.parametrize("kind,code,status", [
    ("not_signed_in", "PA017", 401), ("wrong_password", "28P01", 401), ("too_many_attempts", "PA015", 429),
    ("reset_token_invalid", "PA016", 400), ("json_required", "PA018", 415),
])
def test_one_error_table_for_sql_clients_and_postgrest(admin, kind, code, status):
    """Errors raised by pg_auth's SQL go through the same table as its Rust code (issue 9): a SQL
    client sees the SQLSTATE; behind PostgREST (request.headers set) the PGRST error carries the
    mapped status, and a 401 says how to authenticate."""
    assert_sqlstate(admin, code, "SELECT auth_internal.raise_error(%s)", (kind,))
    with pytest.raises(psycopg.Error) as e, admin.transaction():
        admin.execute("""SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{"accept": "*/*"}', true)""")
        admin.execute("SELECT auth_internal.raise_error(%s)", (kind,))
    assert e.value.sqlstate == "PGRST"
    body = json.loads(e.value.diag.message_primary)
    detail = json.loads(e.value.diag.message_detail)
    assert body["code"] == code and detail["status"] == status == http_status(e.value)
    assert ("WWW-Authenticate" in detail["headers"]) == (status == 401), detail


def test_an_unknown_error_kind_is_an_argument_error(admin):
    assert_sqlstate(admin, "22023", "SELECT auth_internal.raise_error('no_such_kind')")


def test_prepare_transaction_ends_the_held_session(admin):
    """Live attack on 0.2.0: after PREPARE TRANSACTION the next transaction on the connection
    still held the session authenticate verified, so it could refresh (and read the new cookie
    of) or log out a session it never presented."""
    assert int(one(admin, "SHOW max_prepared_transactions")) > 0, "the test cluster allows 2PC"
    _, victim = signed_in(admin, "twophase")
    gid = f"pg_auth_{uuid.uuid4().hex[:8]}"
    admin.execute("BEGIN")
    admin.execute("SELECT auth.authenticate(%s)", (victim["token"],))
    admin.execute(f"PREPARE TRANSACTION '{gid}'")
    try:
        with admin.transaction():
            assert one(admin, "SELECT count(*) FROM auth.verified_session()") == 0
            assert one(admin, "SELECT auth.uid()") is None
        assert_sqlstate(admin, "PA017", "SELECT auth.refresh()")
        assert_sqlstate(admin, "PA017", "SELECT auth.logout()")
    finally:
        admin.execute(f"ROLLBACK PREPARED '{gid}'")
    assert in_transaction(admin, ("SELECT auth.authenticate(%s) ->> 'sid'", (victim["token"],))) == victim["session_id"]


def test_a_login_jwt_switches_role_with_a_dotted_role_claim(admin):
    """With pg_auth.role_claim = 'app_metadata.role', the JWT auth.login returns carries the role
    at that path too, so it switches role like the session cookie does (it never did)."""
    admin.execute("SET pg_auth.role_claim = 'app_metadata.role'")
    try:
        _, login = signed_in(admin, "dotted")
        payload = one(admin, "SELECT auth.decode_jwt_unverified(%s) -> 'payload'", (login["jwt"],))
        assert payload["app_metadata"] == {"role": "sec_user"} and payload["role"] == "sec_user"
        assert in_transaction(admin, ("SELECT auth.authenticate(%s)", (login["jwt"],)),
                              ("SELECT current_user::text", ())) == "sec_user"
    finally:
        admin.execute("RESET pg_auth.role_claim")


def test_a_reset_request_refuses_a_read_only_transaction_for_known_and_unknown_emails(admin):
    """Read-only (PostgREST's GET), a known email used to fail at the INSERT and an unknown one
    not: an email oracle. Refused first now, the same for both."""
    email = f"ro-{uuid.uuid4().hex[:8]}@example.com"
    one(admin, "SELECT auth.register(%s, %s, role => 'sec_user')", (email, PASSWORD))
    for who in (email, f"nobody-{uuid.uuid4().hex[:8]}@example.com"):
        with pytest.raises(psycopg.Error) as e:
            with admin.transaction():
                admin.execute("SET TRANSACTION READ ONLY")
                admin.execute("SELECT auth.request_password_reset(%s)", (who,))
        assert e.value.sqlstate == "25006" and "needs a read-write transaction" in str(e.value)
