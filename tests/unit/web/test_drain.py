"""A 413 that does not get lost in a reset (issue 11): after the early answer the
connection half-closes, reads and drops the rest of the body, and closes when it has
all come, when the client closes, or at a bound of bytes or time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

import web
from web._drain import MAX_BYTES, MAX_SECONDS

PEER = IPv4Address("TCP", "127.0.0.1", 40000)
CAP = 1024


class HalfCloseableTransport(StringTransport):
    """A StringTransport that records a half-close, as TCP and Unix transports do it."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class _Never(Resource):
    isLeaf = True

    def render_POST(self, request: object) -> bytes:
        raise AssertionError("a refused body reached the resource")


Connected = tuple[object, HalfCloseableTransport, MemoryReactorClock]


@pytest.fixture
def connect() -> Callable[[], Connected]:
    def _connect() -> Connected:
        clock = MemoryReactorClock()
        site = web.WebSite(
            _Never(),
            reactor=clock,
            body_limit=lambda path: CAP,
            too_large=lambda path, limit: web.plain(413, "too large"),
            security_headers=(),
        )
        channel = site.buildProtocol(PEER)
        transport = HalfCloseableTransport(peerAddress=PEER)
        assert channel is not None
        channel.makeConnection(transport)
        return channel, transport, clock

    return _connect


def _head(length: int) -> bytes:
    return (
        b"POST /api/v1/declarations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
    )


def test_the_answer_is_sent_and_half_closed_and_the_body_dropped_until_it_is_in(
    connect: Callable[[], Connected],
) -> None:
    channel, transport, _ = connect()
    size = 10 * CAP
    channel.dataReceived(_head(size) + b"x" * 100)  # type: ignore[attr-defined]
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.write_closed and not transport.disconnecting
    channel.dataReceived(b"x" * (size - 100 - 1))  # type: ignore[attr-defined]
    assert not transport.disconnecting  # one byte still to come
    channel.dataReceived(b"x")  # type: ignore[attr-defined]
    assert transport.disconnecting  # all in: closing now resets nothing


def test_a_chunked_body_is_dropped_until_the_client_closes(
    connect: Callable[[], Connected],
) -> None:
    channel, transport, clock = connect()
    channel.dataReceived(  # type: ignore[attr-defined]
        b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(5):
        channel.dataReceived(b"400\r\n" + b"a" * 1024 + b"\r\n")  # type: ignore[attr-defined]
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.write_closed and not transport.disconnecting
    channel.connectionLost()  # type: ignore[attr-defined]
    assert not clock.getDelayedCalls()  # the bound's timer went with it


def test_a_client_that_keeps_sending_is_cut_after_the_time_bound(
    connect: Callable[[], Connected],
) -> None:
    channel, transport, clock = connect()
    channel.dataReceived(_head(10**12))  # type: ignore[attr-defined]
    clock.advance(MAX_SECONDS - 1)
    channel.dataReceived(b"x" * 4096)  # type: ignore[attr-defined]
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_a_client_that_keeps_sending_is_cut_after_the_byte_bound(
    connect: Callable[[], Connected],
) -> None:
    channel, transport, _ = connect()
    channel.dataReceived(_head(10**12))  # type: ignore[attr-defined]
    chunk = b"x" * (1024 * 1024)
    for _ in range(MAX_BYTES // len(chunk)):
        channel.dataReceived(chunk)  # type: ignore[attr-defined]
    assert not transport.disconnecting
    channel.dataReceived(b"x")  # type: ignore[attr-defined]
    assert transport.disconnecting
