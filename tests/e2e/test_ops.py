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
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Proc, Run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SSGATE = shutil.which("ssgate", path=str(Path(sys.executable).parent)) or "ssgate"
WAIT = 30.0  # seconds any single step may take on a loaded machine


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


@dataclass
class Node:
    state: Path
    serve: Proc
    gateway: int
    console: int
    ops: int


@pytest.fixture
def node(
    tmp_path: Path,
    run: Run,
    spawn: Callable[[list[str]], Proc],
    pg_url: str,
    forwarder: Forwarder,
) -> Node:
    """``ssgate serve`` on PostgreSQL through *forwarder*, every listener on port 0."""
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
    gateway = int(serve.wait_for(r"gateway listening on 127\.0\.0\.1:(\d+) ").group(1))
    console = int(serve.wait_for(r"staff console on https://127\.0\.0\.1:(\d+)/").group(1))
    ops = int(serve.wait_for(r"ops on http://127\.0\.0\.1:(\d+)/").group(1))
    return Node(state, serve, gateway, console, ops)


def test_readyz_follows_the_database_down_and_back_and_pages_answer_503(
    node: Node, forwarder: Forwarder
) -> None:
    state, ops, console = node.state, node.ops, node.console

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
    node.serve.stop()
    assert "console request failed" not in node.serve.output  # an outage, not a bug


# The backend of docs/operations.md's HAProxy example, pointed at this node.
HAPROXY_CONFIG = """\
global
    stats socket {stats} mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend ssgate_channel
    bind unix@{front}
    default_backend ssgate_gateways

backend ssgate_gateways
    balance leastconn
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host ssgate
    http-check expect status 200
    default-server send-proxy-v2 check port {ops} inter 200ms fall 2 rise 2
    server gw1 127.0.0.1:{gateway}
"""


def server_status(stats: Path) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(stats))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.decode().splitlines():
        fields = line.split(",")
        if fields[:2] == ["ssgate_gateways", "gw1"]:
            return fields[17]  # status
    raise AssertionError(data.decode())


def wait_status(stats: Path, want: str, proc: Proc) -> None:
    """Bounded wait (HAProxy checks every 200 ms) for gw1 to be *want*."""
    deadline = time.monotonic() + WAIT
    seen = ""
    while time.monotonic() < deadline:
        seen = server_status(stats)
        if seen == want:
            return
        proc._pump(0.2)  # read HAProxy's output meanwhile (and wait a little)
    raise AssertionError(f"gw1 is {seen}, not {want}:\n{proc.output}")


def test_haproxy_health_check_on_readyz_takes_the_node_out_and_back(
    node: Node, forwarder: Forwarder, spawn: Callable[[list[str]], Proc], tmp_path: Path
) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy not installed")
    stats = tmp_path / "haproxy.stats"
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        HAPROXY_CONFIG.format(
            stats=stats, front=tmp_path / "front.sock", ops=node.ops, gateway=node.gateway
        ),
        encoding="utf-8",
    )
    proxy = spawn([haproxy, "-db", "-f", str(config)])
    deadline = time.monotonic() + WAIT
    while not stats.exists() and time.monotonic() < deadline:
        proxy._pump(0.1)
    wait_status(stats, "UP", proxy)
    forwarder.down()
    wait_status(stats, "DOWN", proxy)
    forwarder.up()
    wait_status(stats, "UP", proxy)
    proxy.stop()
