"""A worker's adoption of its parent's listening sockets (real sockets, the test
reactor): a Unix socket keeps the parent's mode (Twisted would make it 0666) and its
file when the worker stops (its siblings still accept on it); a TCP socket serves."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.defer import maybeDeferred
from twisted.internet.protocol import Factory, Protocol

from ssgate._workers import adopt_listener

TIMEOUT = 10.0


class Hello(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"hello")
        self.transport.loseConnection()


def _listening_unix(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    os.chmod(path, 0o600)
    s.listen(8)
    s.setblocking(False)
    return s


def _read_all(family: int, address: object) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(TIMEOUT)
        c.connect(address)
        chunks = []
        while chunk := c.recv(100):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest_twisted.ensureDeferred
async def test_an_adopted_unix_socket_keeps_its_mode_and_file_when_the_worker_stops(
    tmp_path: Path,
) -> None:
    from twisted.internet import reactor, threads

    path = tmp_path / "declare.sock"
    parent = _listening_unix(path)
    port = adopt_listener(
        reactor,
        f"unix:{path}:mode=600:lockfile=1",
        os.dup(parent.fileno()),
        Factory.forProtocol(Hello),
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    got = await threads.deferToThread(_read_all, socket.AF_UNIX, str(path))
    assert got == b"hello"
    await maybeDeferred(port.stopListening)
    assert path.exists()  # the parent's, removed by the parent
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    parent.close()


@pytest_twisted.ensureDeferred
async def test_an_adopted_tcp_socket_serves_on_the_parents_port() -> None:
    from twisted.internet import reactor, threads

    parent = socket.socket()
    parent.bind(("127.0.0.1", 0))
    parent.listen(8)
    parent.setblocking(False)
    address = parent.getsockname()
    port = adopt_listener(
        reactor, "tcp:0:interface=127.0.0.1", os.dup(parent.fileno()), Factory.forProtocol(Hello)
    )
    assert port.getHost().port == address[1]  # type: ignore[attr-defined]
    got = await threads.deferToThread(_read_all, socket.AF_INET, address)
    assert got == b"hello"
    await maybeDeferred(port.stopListening)
    parent.close()
