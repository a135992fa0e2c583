"""The guarded identity page on a real loopback socket.

``identity_site()`` behind :class:`IdentityGuardFactory` listens on 127.0.0.1; a raw
TCP client writes bytes and collects everything it receives until the server closes.
The guard runs on the real reactor's clock, so headers are issued at
``reactor.seconds()``.  Every wait has a timeout inside the reactor.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, cast

import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure

from auth import Identity, encode_assertion
from declare_app._guard import IdentityGuardFactory
from declare_app._identity_page import identity_site

KEY = bytes(range(32, 80))  # 48 bytes
OTHER_KEY = bytes(48)
# Loopback answers in milliseconds; these only bound a hung test.
IO_TIMEOUT = 10.0
TEST_TIMEOUT = 30.0

P = ParamSpec("P")
AsyncTest = Callable[P, Coroutine[Any, Any, None]]


def reactor_test(test: AsyncTest[P]) -> AsyncTest[P]:
    """Run *test* on the reactor (pytest-twisted), failing it after TEST_TIMEOUT seconds."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        from twisted.internet import reactor

        await Deferred.fromCoroutine(test(*args, **kwargs)).addTimeout(TEST_TIMEOUT, reactor)

    marked: AsyncTest[P] = pytest_twisted.ensureDeferred(run)
    return marked


def identity(**changes: Any) -> Identity:
    from twisted.internet import reactor  # late: pytest-twisted installs it

    base = Identity(
        account="33068212345678@sxlss",
        unit_code="12345678",
        session_id="s-7f3a9c0e11d24b6f",
        issued_at=reactor.seconds(),
        source_host="203.0.113.7",
        source_port=50123,
        dest_host="198.51.100.1",
        dest_port=8443,
        nonce="7f3a9c0e11d24b6f.stream-3",
    )
    return replace(base, **changes)


@dataclass(frozen=True)
class Exchange:
    received: bytes
    reason: Failure  # why the connection ended, as the client saw it


class RawClient(Protocol):
    """Writes *data* on connect and collects every byte until the connection ends."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.chunks: list[bytes] = []
        self.ended: Deferred[Exchange] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        if self.data:
            self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.ended.callback(Exchange(b"".join(self.chunks), reason))


@dataclass
class Server:
    factory: IdentityGuardFactory
    port: IListeningPort

    async def exchange(self, data: bytes) -> Exchange:
        """Connect, send *data*, and wait for the server to end the connection."""
        from twisted.internet import reactor

        host = self.port.getHost()
        assert isinstance(host, IPv4Address)
        client = RawClient(data)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", host.port, timeout=IO_TIMEOUT)
        await connectProtocol(endpoint, client)
        return await client.ended.addTimeout(IO_TIMEOUT, reactor)

    async def close(self) -> None:
        stopped = self.port.stopListening()
        if stopped is not None:
            await stopped


async def listen(**kw: Any) -> Server:
    from twisted.internet import reactor

    factory = IdentityGuardFactory(identity_site(), key=KEY, clock=reactor, **kw)
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    return Server(factory, port)


def assert_refused_silently(exchange: Exchange) -> None:
    """Not a byte came back, and the server ended the connection."""
    assert exchange.received == b""
    assert exchange.reason.check(ConnectionDone, ConnectionLost), exchange.reason


@reactor_test
async def test_a_valid_header_then_a_request_gets_the_identity_page() -> None:
    """A good header and ``GET / HTTP/1.0``: a 200 page with the header's unit code,
    account and session id, and the server closes after it."""
    server = await listen()
    try:
        exchange = await server.exchange(
            encode_assertion(identity(), key=KEY) + b"GET / HTTP/1.0\r\n\r\n"
        )
    finally:
        await server.close()
    head, _, body = exchange.received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 "), head
    page = body.decode()
    assert '<td id="unit">12345678</td>' in page
    assert '<td id="account">33068212345678@sxlss</td>' in page
    assert '<td id="session">s-7f3a9c0e11d24b6f</td>' in page
    assert server.factory.refused == 0


@reactor_test
async def test_whoami_over_tcp_answers_the_identity_as_json() -> None:
    """The same over ``/api/v1/whoami``, the header and request written as one segment."""
    server = await listen()
    try:
        exchange = await server.exchange(
            encode_assertion(identity(session_id="s-2"), key=KEY)
            + b"GET /api/v1/whoami HTTP/1.0\r\n\r\n"
        )
    finally:
        await server.close()
    head, _, body = exchange.received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 "), head
    assert json.loads(body)["unit_code"] == "12345678"
    assert json.loads(body)["session_id"] == "s-2"


@reactor_test
async def test_refused_connections_get_zero_bytes_and_are_closed() -> None:
    """``GET /`` without a header, a header signed with another key, and a stale header
    (each followed by a request): the client receives nothing, the server closes the
    connection, and each refusal is counted and logged with its reason."""
    from twisted.internet import reactor

    server = await listen(max_age=30.0)
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    request = b"GET / HTTP/1.0\r\n\r\n"
    try:
        plain = await server.exchange(request)
        wrong_key = await server.exchange(encode_assertion(identity(), key=OTHER_KEY) + request)
        stale = await server.exchange(
            encode_assertion(identity(issued_at=reactor.seconds() - 60), key=KEY) + request
        )
    finally:
        globalLogPublisher.removeObserver(observer)
        await server.close()
    for exchange in (plain, wrong_key, stale):
        assert_refused_silently(exchange)
    assert server.factory.refused == 3
    reasons = [e["reason"] for e in events if e.get("log_format", "").startswith("refused")]
    assert reasons == ["no-header", "bad-signature", "stale"]


@reactor_test
async def test_a_silent_client_is_cut_off_after_the_header_timeout() -> None:
    """A client that connects and sends nothing is disconnected after ``header_timeout``
    (here 0.2 s) without receiving a byte."""
    from twisted.internet import reactor

    server = await listen(header_timeout=0.2)
    started = reactor.seconds()
    try:
        exchange = await server.exchange(b"")
    finally:
        await server.close()
    assert_refused_silently(exchange)
    assert reactor.seconds() - started >= 0.2
    assert server.factory.refused == 1
