"""A gateway near its open-files limit (issue 16, acceptance 7, at a smaller scale).

``ssgate serve`` starts (and logs its open-files limit); then its limit is lowered
with ``prlimit`` to a few dozen descriptors above what it uses, which the gateway
reads again as it admits connections.  A real ``ssgate connect`` session is opened
first; then plain TCP connections fill the gateway until it refuses one
(``gateway-full`` in its log).  A second ``ssgate connect`` is told "the gateway is
full, try again" and exits with that reason's status (28), while the first session
still carries requests to the declaration service, ``/metrics`` counts the refusal,
and the log holds no traceback.
"""

from __future__ import annotations

import os
import resource
import socket
import time
import urllib.request
from typing import TYPE_CHECKING

import pytest

from gateway import Reason

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel

pytestmark = [pytest.mark.slow]

# Descriptors above what serve uses once started: the gateway keeps a reserve of 32
# (gateway._limits.default_reserve), so about 16 connections fit before it refuses.
HEADROOM = 48


def http_get(port: int) -> bytes:
    """One request through the client's local port; the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_full_gateway_tells_new_clients_to_try_again_and_keeps_serving_live_sessions(
    channel: Channel,
) -> None:
    # Fillers wait unauthenticated: give them the longest handshake allowance.
    config = channel.state / "ssgate.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "handshake_timeout_seconds = 10", "handshake_timeout_seconds = 120"
        ),
        encoding="utf-8",
    )
    first, second = channel.open_account(), channel.open_account()
    serve = channel.start()
    serve.wait_for(r"open files limit")
    ops_port = int(serve.wait_for(r"ops on http://127\.0\.0\.1:(\d+)/").group(1))

    live = channel.connect(first)
    _session, local_port = channel.connected(live)
    assert http_get(local_port).startswith(b"HTTP/1.1 ")

    pid = serve.popen.pid
    limit = len(os.listdir(f"/proc/{pid}/fd")) + HEADROOM
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))

    fillers: list[socket.socket] = []
    try:
        refused = False
        for _ in range(limit):
            fillers.append(socket.create_connection(("127.0.0.1", channel.port)))
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline and not refused:
                serve._pump(0.02)
                refused = "gateway-full" in serve.output
            if refused:
                break
        assert refused, f"no refusal after {len(fillers)} connections:\n{serve.output}"

        late = channel.connect(second)
        assert late.wait_exit() == Reason.GATEWAY_FULL.exit_code == 28, late.output
        assert Reason.GATEWAY_FULL.english in late.output
        assert Reason.GATEWAY_FULL.chinese in late.output

        # The live session is untouched and still reaches the declaration service.
        assert http_get(local_port).startswith(b"HTTP/1.1 ")
        assert live.popen.poll() is None

        with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=30) as r:
            metrics = r.read().decode()
        assert 'ssgate_gateway_connections_refused_total{reason="gateway-full"}' in metrics
        assert f"ssgate_open_files_limit {float(limit)}" in metrics
    finally:
        for filler in fillers:
            filler.close()
    serve._pump(0.2)
    assert "Traceback" not in serve.output
    assert "server.pem" not in serve.output
