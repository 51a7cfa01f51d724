"""The archive scripts/package.sh builds installs pg_auth on a PostgreSQL that has never seen it,
with no Rust and no source checkout: a copy of the server's directory layout (bin, lib, share,
minus every pg_auth file) in a scratch root, the archive unpacked into it, a cluster initialised
and started from the copied binaries, then CREATE EXTENSION and the first things a user does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import psycopg
import pytest

from conftest import PG_BIN

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("PG_AUTH_RUN_DIR", "/var/tmp/pg_auth"))
SCRATCH = RUN_DIR / "packaging"
PORT = int(os.environ.get("PG_AUTH_PACKAGING_PORT", "5493"))


VERSION = next(line.split('"')[1] for line in (ROOT / "Cargo.toml").read_text().splitlines()
               if line.startswith("version"))
RELEASES = sorted(p.name.removeprefix("pg_auth--").removesuffix(".sql")
                  for p in (ROOT / "sql" / "releases").glob("pg_auth--*.sql"))


def run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=600, **kw)


def pg_config(flag):
    return run(str(PG_BIN / "pg_config"), flag).stdout.strip()


@pytest.fixture(scope="module")
def clean_server():
    archive = Path(run("bash", str(ROOT / "scripts" / "package.sh")).stdout.strip().splitlines()[-1])
    members = tarfile.open(archive).getnames()
    assert any(m.endswith("/lib/pg_auth.so") for m in members), members
    assert any(m.endswith("/extension/pg_auth.control") for m in members), members
    for old in RELEASES:  # every release's install script, and a way up from it
        assert any(m.endswith(f"/extension/pg_auth--{old}.sql") for m in members), (old, members)
        assert any(f"/extension/pg_auth--{old}--" in m for m in members), (old, members)
    if (SCRATCH / "data" / "postmaster.pid").exists():  # left over from an interrupted run
        subprocess.run(["sudo", "-u", "postgres", str(SCRATCH / "root" / PG_BIN.relative_to("/") / "pg_ctl"),
                        "-D", str(SCRATCH / "data"), "-m", "immediate", "stop"], capture_output=True, timeout=60)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    root = SCRATCH / "root"
    # The server's layout without pg_auth: binaries, libraries and shared files, copied.
    for directory in (PG_BIN.parent, Path(pg_config("--sharedir"))):
        shutil.copytree(directory, root / directory.relative_to("/"), symlinks=True)
    for leftover in root.rglob("pg_auth*"):
        leftover.unlink()
    assert not list(root.rglob("pg_auth*"))
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="tar")
    bin_dir = root / PG_BIN.relative_to("/")
    data = SCRATCH / "data"
    run("chown", "-R", "postgres:postgres", str(SCRATCH))
    run("sudo", "-u", "postgres", str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    run("sudo", "-u", "postgres", str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(SCRATCH / "log"), "-w",
        "-o", f"-p {PORT} -k {SCRATCH} -c listen_addresses=127.0.0.1", "start")
    yield bin_dir
    run("sudo", "-u", "postgres", str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")


def test_the_archive_installs_and_works_on_a_server_that_never_had_pg_auth(clean_server):
    bin_dir = clean_server
    # The copied server reads its library and extension directories, not the system ones.
    assert run(str(bin_dir / "pg_config"), "--pkglibdir").stdout.strip().startswith(str(SCRATCH))
    with psycopg.connect(f"host=127.0.0.1 port={PORT} user=postgres dbname=postgres", autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_auth")
        assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_auth'").fetchone()[0] == VERSION
        # The server loads from the scratch layout (what the archive put there), not the system's.
        for name in ("PKGLIBDIR", "SHAREDIR"):
            where = c.execute("SELECT setting FROM pg_config WHERE name = %s", (name,)).fetchone()[0]
            assert where.startswith(str(SCRATCH)), (name, where)
        assert c.execute("SELECT setting FROM pg_settings WHERE name = 'dynamic_library_path'").fetchone()[0] == "$libdir"
        c.execute("SELECT auth.generate_key('ES256')")
        token = c.execute("""SELECT auth.sign_jwt('{"sub": "packaged", "role": "postgres"}'::jsonb)""").fetchone()[0]
        assert c.execute("SELECT auth.verify_jwt(%s) ->> 'sub'", (token,)).fetchone()[0] == "packaged"
        c.execute("CREATE ROLE web_user NOLOGIN")
        uid = c.execute("SELECT auth.register('pkg@example.com', 'a packaged password')").fetchone()[0]
        login = c.execute("SELECT auth.login('pkg@example.com', 'a packaged password')").fetchone()[0]
        assert login["user_id"] == str(uid)
        # Earlier releases' install scripts ship too: the dump/restore path needs them.
        for old in RELEASES:
            c.execute(f"CREATE DATABASE pkg_{old.replace('.', '_')}")
    for old in RELEASES:
        with psycopg.connect(f"host=127.0.0.1 port={PORT} user=postgres dbname=pkg_{old.replace('.', '_')}",
                             autocommit=True) as c:
            c.execute(f"CREATE EXTENSION pg_auth VERSION '{old}'")
            c.execute("ALTER EXTENSION pg_auth UPDATE")
            assert c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_auth'").fetchone()[0] == VERSION


def test_pgxn_meta_names_this_version():
    meta = json.loads((ROOT / "META.json").read_text())
    assert meta["version"] == meta["provides"]["pg_auth"]["version"] == VERSION
    assert meta["meta-spec"]["version"] == "1.0.0" and meta["license"] == "mit"
    assert (ROOT / meta["provides"]["pg_auth"]["file"]).exists()
