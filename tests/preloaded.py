"""A cluster of its own with pg_auth in shared_preload_libraries (port PG_AUTH_PRELOADED_PORT,
default 5496, created by scripts/lib.sh's start_cluster): for the JWKS background worker and the
attempt limits kept in shared memory. `start(conf)` writes the extra settings, (re)starts the
cluster and returns its dsn function; `stop()` stops it."""

from __future__ import annotations

import os
import shlex
import subprocess

from conftest import PG_BIN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.environ.get("PG_AUTH_RUN_DIR", "/var/tmp/pg_auth")
PORT = int(os.environ.get("PG_AUTH_PRELOADED_PORT", os.environ.get("PG_AUTH_JWKS_PORT", "5496")))
DATA = os.path.join(RUN_DIR, "jwks", "data")
LOG = os.path.join(RUN_DIR, "jwks", "postgres.log")


def dsn(db):
    return f"host=127.0.0.1 port={PORT} user=postgres dbname={db} connect_timeout=5"


def pg_ctl(*args):
    return subprocess.run(["sudo", "-u", "postgres", str(PG_BIN / "pg_ctl"), "-D", DATA, *args],
                          capture_output=True, text=True, timeout=120)


def start(settings: dict[str, str]) -> None:
    """Starts the cluster with pg_auth preloaded and `settings` (name → SQL literal) in a
    configuration file (PostgreSQL 15's ALTER SYSTEM refuses settings it does not know)."""
    begin = ["bash", "-c", f"source {ROOT}/scripts/lib.sh && start_cluster jwks {PORT}"]
    subprocess.run(begin, check=True, capture_output=True, text=True, timeout=120)
    lines = ["shared_preload_libraries = 'pg_auth'"] + [f"{k} = {v}" for k, v in settings.items()] + [""]
    include = "include_if_exists = 'pg_auth_preloaded.conf'"
    script = (f"printf %s {shlex.quote(chr(10).join(lines))} > {DATA}/pg_auth_preloaded.conf && "
              f"(grep -qxF {shlex.quote(include)} {DATA}/postgresql.conf || echo {shlex.quote(include)} >> {DATA}/postgresql.conf)")
    subprocess.run(["sudo", "-u", "postgres", "bash", "-c", script], check=True, timeout=30)
    assert pg_ctl("-w", "stop", "-m", "fast").returncode == 0
    subprocess.run(begin, check=True, capture_output=True, text=True, timeout=120)


def stop() -> None:
    pg_ctl("-m", "fast", "stop")
