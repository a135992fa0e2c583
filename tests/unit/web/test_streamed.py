"""Streamed answers (exports): written piece by piece as the client takes them.

A one-route site serves a :func:`web.download` whose pieces are Deferreds the test
fires by hand, so each test sees exactly when the route layer asks for the next
piece: only while the transport wants data, never after the client has gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

import web

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


@dataclass
class Pieces:
    """The body's source: each call is a Deferred the test fires; ``ended`` records
    how the body ended."""

    asked: list[Deferred[bytes]] = field(default_factory=list)
    ended: list[bool] = field(default_factory=list)

    def next(self) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.asked.append(d)
        return d

    def give(self, data: bytes) -> None:
        self.asked[-1].callback(data)


@dataclass
class OneRoute:
    pieces: Pieces

    async def handle(
        self, request: web.CappedRequest, route: web.Route, params: Mapping[str, str]
    ) -> web.Response:
        return web.download(
            "text/csv; charset=utf-8",
            "会话-2026.csv",
            self.pieces.next,
            ended=self.pieces.ended.append,
        )

    async def unrouted(
        self, request: web.CappedRequest, status: int, allowed: Sequence[str]
    ) -> web.Response:
        return web.Response(status, b"unrouted")


async def _unused(ctx: object) -> web.Response:  # the dispatcher answers itself
    raise AssertionError("not called")


def _connect(pieces: Pieces) -> tuple[HTTPChannel, StringTransport]:
    table = web.RouteTable(
        site="test",
        roles=frozenset({"anyone"}),
        max_body=1024,
        routes=(web.Route("GET", "/export.csv", ("anyone",), _unused),),
    )
    routed = web.RoutedResource(table, OneRoute(pieces), tls=False)
    site = web.WebSite(
        routed.resource(),
        reactor=MemoryReactorClock(),
        body_limit=routed.body_limit,
        too_large=lambda path, limit: web.plain(413, "too large"),
        security_headers=web.security_headers(tls=False),
    )
    channel = site.buildProtocol(PEER)
    assert isinstance(channel, HTTPChannel)
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    return channel, transport


def _get(channel: HTTPChannel, method: str = "GET") -> None:
    channel.dataReceived(f"{method} /export.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def test_pieces_are_written_as_they_come_and_the_answer_ends_with_the_last() -> None:
    pieces = Pieces()
    channel, transport = _connect(pieces)
    _get(channel)
    assert len(pieces.asked) == 1  # the first piece is asked for at once
    pieces.give(b"\xef\xbb\xbfa,b\r\n")
    pieces.give(b"1,2\r\n")
    pieces.give(b"")
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert b"Content-Length" not in head
    assert b"Content-Type: text/csv; charset=utf-8" in head
    assert b"X-Content-Type-Options: nosniff" in head  # the site's headers too
    assert (
        b'Content-Disposition: attachment; filename="__-2026.csv"; '
        b"filename*=UTF-8''%E4%BC%9A%E8%AF%9D-2026.csv" in head
    )
    assert _dechunk(body) == b"\xef\xbb\xbfa,b\r\n1,2\r\n"
    assert body.endswith(b"0\r\n\r\n")
    assert pieces.ended == [True]


def test_a_paused_transport_gets_no_new_piece_until_it_resumes() -> None:
    pieces = Pieces()
    channel, transport = _connect(pieces)
    _get(channel)
    channel.pauseProducing()  # what TCP does when its send buffer is full
    pieces.give(b"first\r\n")
    assert len(pieces.asked) == 1  # written, but the next is not read yet
    assert b"first" in transport.value()
    channel.resumeProducing()  # the buffer drained
    assert len(pieces.asked) == 2
    pieces.give(b"")
    assert pieces.ended == [True]


def test_a_client_that_leaves_stops_the_stream_and_nothing_more_is_read() -> None:
    pieces = Pieces()
    channel, transport = _connect(pieces)
    _get(channel)
    pieces.give(b"first\r\n")
    written = transport.value()
    channel.connectionLost(Failure(ConnectionError("gone")))
    assert pieces.ended == [False]
    pieces.give(b"late\r\n")  # the batch being read when the client left
    assert len(pieces.asked) == 2  # nothing asked for after it
    assert transport.value() == written  # and it is not written


def test_head_sends_the_headers_and_reads_no_piece() -> None:
    pieces = Pieces()
    channel, transport = _connect(pieces)
    _get(channel, "HEAD")
    assert pieces.asked == []
    assert transport.value().startswith(b"HTTP/1.1 200")
    assert pieces.ended == [False]


def test_a_failing_piece_cuts_the_connection_so_the_file_does_not_look_whole() -> None:
    pieces = Pieces()
    channel, transport = _connect(pieces)
    _get(channel)
    pieces.give(b"first\r\n")
    pieces.asked[-1].errback(RuntimeError("database gone"))
    assert transport.disconnecting
    assert pieces.ended == [False]
    channel.connectionLost(Failure(ConnectionError("aborted")))
    assert not transport.value().endswith(b"0\r\n\r\n")
    assert len(pieces.asked) == 2


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("events-20260101.csv", b'attachment; filename="events-20260101.csv"'),
        (
            "日志 1.csv",
            b"attachment; filename=\"___1.csv\"; filename*=UTF-8''%E6%97%A5%E5%BF%97%201.csv",
        ),
    ],
)
def test_content_disposition_has_an_ascii_name_and_the_exact_one(name: str, header: bytes) -> None:
    assert web.content_disposition(name) == header


@pytest.mark.parametrize("name", ["", "../x.csv", "a/b", "a\\b", "a\r\nX: y", "..", "x" * 129])
def test_a_download_name_that_is_not_a_plain_file_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        web.content_disposition(name)
