"""The background worker that keeps identity providers' keys fresh, in a cluster of its own with
pg_auth in shared_preload_libraries and pg_auth.jwks_databases naming one database (tests/preloaded.py).
Against a JWKS served on 127.0.0.1 by the test: a new provider's keys are fetched without anyone
asking, a rotation is picked up after the first token with the new kid, dropped keys retire,
failures keep the last good keys and reach the server log.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

import preloaded
from idp import IdentityProvider, SigningKey
from preloaded import LOG, dsn

DB = "jwks_app"


def one(c, sql, params=()):
    return c.execute(sql, params).fetchone()[0]


def eventually(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "the worker did not get there in time"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    preloaded.start({"pg_auth.jwks_databases": f"'{DB}, jwks_missing_db'", "pg_auth.jwks_check_interval": "1"})
    with psycopg.connect(dsn("postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
        c.execute(f"ALTER DATABASE {DB} SET pg_auth.jwks_min_refresh_interval = 1")
    # The worker connects at start: restart so it finds the database.
    preloaded.start({"pg_auth.jwks_databases": f"'{DB}, jwks_missing_db'", "pg_auth.jwks_check_interval": "1"})
    c = psycopg.connect(dsn(DB), autocommit=True)
    c.execute("CREATE EXTENSION pg_auth")
    yield c
    c.close()
    preloaded.stop()


@pytest.fixture
def idp(cluster):
    provider = IdentityProvider()
    provider.published = [SigningKey("w1", "ES256")]
    provider.name = "w" + uuid.uuid4().hex[:10]
    cluster.execute("SELECT auth.add_identity_provider(%s, %s, %s, %s)",
                    (provider.name, provider.issuer, provider.client_id, provider.jwks_url))
    yield provider
    provider.close()
    cluster.execute("DELETE FROM auth.identity_providers WHERE name = %s", (provider.name,))


def live_kids(c, name):
    return sorted(r[0] for r in c.execute(
        "SELECT kid FROM auth.provider_keys WHERE provider = %s AND (retired_at IS NULL OR retired_at > now())",
        (name,)).fetchall())


def sign_in(c, idp, key):
    with c.transaction():
        value = one(c, "SELECT auth.sign_in_with_id_token(%s, %s)",
                    (idp.name, idp.id_token(key, email=f"{uuid.uuid4().hex[:8]}@example.com")))
    return value


def test_the_worker_runs_for_the_configured_database(cluster):
    rows = cluster.execute("SELECT backend_type, datname FROM pg_stat_activity WHERE backend_type = 'pg_auth jwks'").fetchall()
    assert rows == [("pg_auth jwks", DB)]


def test_a_new_provider_gets_its_keys_without_being_asked(cluster, idp):
    eventually(lambda: live_kids(cluster, idp.name) == ["w1"])
    assert sign_in(cluster, idp, idp.published[0])["provider"] == idp.name


def test_a_rotation_is_picked_up_after_the_first_token_with_the_new_kid(cluster, idp):
    eventually(lambda: live_kids(cluster, idp.name) == ["w1"])
    # Long scheduled interval: only the unknown kid makes the worker fetch again.
    cluster.execute("UPDATE auth.identity_providers SET refresh_interval = '1 day', key_grace_period = '0' WHERE name = %s",
                    (idp.name,))
    old, new = idp.published[0], SigningKey("w2", "RS256")
    idp.published = [new]
    assert sign_in(cluster, idp, new) is None  # 401, the keys are asked for
    eventually(lambda: sign_in(cluster, idp, new))
    assert live_kids(cluster, idp.name) == ["w2"]
    assert sign_in(cluster, idp, old) is None


def test_a_failing_provider_keeps_its_keys_is_retried_and_logged(cluster, idp):
    eventually(lambda: live_kids(cluster, idp.name) == ["w1"])
    idp.status = 503
    cluster.execute("UPDATE auth.identity_providers SET refresh_interval = '1 minute', fetch_attempted_at = now() - interval '2 minutes' "
                    "WHERE name = %s", (idp.name,))
    error = eventually(lambda: one(cluster, "SELECT fetch_error FROM auth.identity_providers WHERE name = %s", (idp.name,)))
    assert "503" in error
    assert live_kids(cluster, idp.name) == ["w1"]
    assert sign_in(cluster, idp, idp.published[0])["provider"] == idp.name
    with open(LOG, errors="replace") as log:
        assert f"keys of identity provider {idp.name} not refreshed" in log.read()
    # Failing providers are retried (every pg_auth.jwks_min_refresh_interval), and recover.
    fetches = idp.fetches
    eventually(lambda: idp.fetches > fetches + 1)
    idp.status = 200
    eventually(lambda: one(cluster, "SELECT fetch_error IS NULL FROM auth.identity_providers WHERE name = %s", (idp.name,)))


def test_a_database_that_does_not_exist_does_not_stop_the_others(cluster):
    with open(LOG, errors="replace") as log:
        assert 'database "jwks_missing_db" does not exist' in log.read()
    assert one(cluster, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_auth jwks'") == 1


def test_the_databases_setting_is_fixed_at_server_start(cluster):
    assert one(cluster, "SHOW pg_auth.jwks_databases") == f"{DB}, jwks_missing_db"
    with pytest.raises(psycopg.Error) as e:
        cluster.execute("SET pg_auth.jwks_databases = 'x'")
    assert e.value.sqlstate == "55P02"
