"""The ops listener of a real ``ssgate serve`` on PostgreSQL, and the database going
away and coming back (issue 13, acceptance 6 in part).

PostgreSQL is reached through a TCP forwarder in this test process, so the test can
take the database away (every connection cut, new ones closed at once) and give it
back, while ``serve`` runs: ``/readyz`` says 503 naming the database and then 200
again, the staff console answers 503 with ``Retry-After`` instead of 500, and nothing
is restarted.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Proc, Run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SSGATE = shutil.which("ssgate", path=str(Path(sys.executable).parent)) or "ssgate"


class Forwarder:
    """127.0.0.1:<port 0> → *target*, one thread pair per connection; :meth:`down`
    cuts every connection and closes new ones at once, :meth:`up` forwards again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_down = False
        self.lock = threading.Lock()
        self.live: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.is_down:
                    client.close()
                    continue
                server = socket.create_connection(self.target)
                self.live += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        with self.lock:
            self.is_down = True
            for s in self.live:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.live.clear()

    def up(self) -> None:
        with self.lock:
            self.is_down = False

    def close(self) -> None:
        self.down()
        self.listener.close()


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    f = Forwarder(("127.0.0.1", 5432))
    yield f
    f.close()


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def console_get(port: int, ca: Path, path: str, cookie: str) -> tuple[int, dict[str, str], str]:
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(f"https://localhost:{port}{path}", headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=20, context=context) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_readyz_follows_the_database_down_and_back_and_pages_answer_503(
    tmp_path: Path,
    run: Run,
    spawn: Callable[[list[str]], Proc],
    pg_url: str,
    forwarder: Forwarder,
) -> None:
    state = tmp_path / "state"
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{forwarder.port}")
    run("init", "--hostname", "localhost", "--database-url", url, check_rc=0)
    config = state / "ssgate.toml"
    text = config.read_text(encoding="utf-8")
    for default in (
        'listen = "tcp:8443"',
        'listen = "tcp:8444:interface=127.0.0.1"',
        'listen = "tcp:8445:interface=127.0.0.1"',
    ):
        assert default in text
        text = text.replace(default, 'listen = "tcp:0:interface=127.0.0.1"')
    config.write_text(text, encoding="utf-8")

    serve = spawn([SSGATE, "--state", str(state), "serve"])
    ops = int(serve.wait_for(r"ops on http://127\.0\.0\.1:(\d+)/").group(1))
    console = int(serve.wait_for(r"staff console on https://127\.0\.0\.1:(\d+)/").group(1))

    status, _, body = get(ops, "/healthz")
    assert (status, body) == (200, b"ok\n")
    status, _, body = get(ops, "/readyz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ready"
    status, headers, body = get(ops, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["ssgate_database_up"].samples[0].value == 1
    records = families["ssgate_audit_log_records"].samples[0].value
    assert records >= 2  # init's CA and server certificate

    cookie = "__Host-ssgate-console=" + secrets.token_urlsafe(32)
    status, _, page = console_get(console, state / "ca.pem", "/", cookie)
    assert status == 200 and "登录" in page  # an unknown session: to the login page

    forwarder.down()
    status, _, body = get(ops, "/readyz")
    assert status == 503, body
    assert json.loads(body)["checks"]["database"].startswith("unreachable")
    assert get(ops, "/healthz")[0] == 200  # alive all the same
    status, headers, page = console_get(console, state / "ca.pem", "/", cookie)
    assert status == 503, page
    assert headers.get("Retry-After") == "30"
    assert "数据库暂时无法访问" in page
    metrics = get(ops, "/metrics")[2].decode()
    assert re.search(r"(?m)^ssgate_database_up 0\.0$", metrics)

    forwarder.up()
    status, _, body = get(ops, "/readyz")
    assert status == 200, body  # no restart
    status, _, page = console_get(console, state / "ca.pem", "/", cookie)
    assert status == 200 and "登录" in page
    serve.stop()
    assert "console request failed" not in serve.output  # an outage, not a bug
