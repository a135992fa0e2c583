"""The identity guard and the identity page, in memory.

Every connection is a :class:`StringTransport` and every clock a
:class:`MemoryReactorClock` set to ``NOW``, so the header's freshness and the header
timeout are decided by ``clock.advance`` alone.  Headers come from
:func:`auth.encode_assertion` (its wire format is pinned in tests/unit/auth).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

from auth import Identity, encode_assertion
from declare_app._guard import IdentityGuard, IdentityGuardFactory, identity_of
from declare_app._identity_page import identity_site

KEY = bytes(range(32, 80))  # 48 bytes
OTHER_KEY = bytes(48)
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PEER = IPv4Address("TCP", "10.0.0.2", 40000)  # the gateway, as the service sees it

ALICE = Identity(
    account="33068212345678@sxlss",
    unit_code="12345678",
    session_id="s-7f3a9c0e11d24b6f",
    issued_at=NOW,
    source_host="203.0.113.7",
    source_port=50123,
    dest_host="198.51.100.1",
    dest_port=8443,
    nonce="7f3a9c0e11d24b6f.stream-3",
)


def header(identity: Identity = ALICE, *, key: bytes = KEY) -> bytes:
    return encode_assertion(identity, key=key)


# -- fixtures and fakes --------------------------------------------------------------


class Recorder(Protocol):
    """A wrapped protocol that records what reaches it, and what it knew when."""

    def __init__(self) -> None:
        self.identity_at_connection_made: Identity | None = None
        self.received: list[bytes] = []
        self.lost: list[Failure] = []

    def connectionMade(self) -> None:
        self.identity_at_connection_made = identity_of(self)

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.append(reason)


@dataclass
class RecordingFactory(Factory):
    """The wrapped factory: builds :class:`Recorder` (or declines) and counts start/stop."""

    declines: bool = False
    built: list[Recorder] = field(default_factory=list)
    addresses: list[IAddress] = field(default_factory=list)
    started: int = 0
    stopped: int = 0

    def startFactory(self) -> None:
        self.started += 1

    def stopFactory(self) -> None:
        self.stopped += 1

    def buildProtocol(self, addr: IAddress) -> Recorder | None:  # type: ignore[override]
        self.addresses.append(addr)
        if self.declines:
            return None
        protocol = Recorder()
        self.built.append(protocol)
        return protocol


@pytest.fixture
def clock() -> MemoryReactorClock:
    clock = MemoryReactorClock()
    clock.advance(NOW)
    return clock


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """Every log event emitted during the test (removed again even if the test fails)."""
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observer)


@dataclass
class Connection:
    factory: IdentityGuardFactory
    wrapped: RecordingFactory
    guard: IdentityGuard
    transport: StringTransport

    def send(self, data: bytes) -> None:
        self.guard.dataReceived(data)

    @property
    def aborted(self) -> bool:
        # StringTransport.abortConnection sets both flags, loseConnection only the first.
        return bool(self.transport.disconnecting and self.transport.disconnected)

    @property
    def admitted(self) -> Recorder | None:
        assert len(self.wrapped.built) <= 1
        return self.wrapped.built[0] if self.wrapped.built else None


def connect(
    clock: MemoryReactorClock, wrapped: RecordingFactory | None = None, **kw: Any
) -> Connection:
    wrapped = wrapped if wrapped is not None else RecordingFactory()
    factory = IdentityGuardFactory(wrapped, key=KEY, clock=clock, **kw)
    guard = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    guard.makeConnection(transport)
    return Connection(factory, wrapped, guard, transport)


def refusals(events: list[LogEvent]) -> list[LogEvent]:
    return [e for e in events if e.get("log_format", "").startswith("refused connection")]


def assert_refused(conn: Connection, events: list[LogEvent], reason: str) -> None:
    """Refused with *reason*: aborted, counted, logged once, and nothing got through."""
    assert conn.transport.value() == b""
    assert conn.aborted
    assert conn.wrapped.built == []
    assert conn.wrapped.addresses == []
    assert conn.factory.refused == 1
    [event] = refusals(events)
    assert event["reason"] == reason
    assert event["log_level"] == LogLevel.warn
    assert event["service"] == "declare"
    assert "10.0.0.2" in event["peer"]
    text = formatEvent(event)
    assert reason in text
    assert KEY.hex() not in text
    assert repr(KEY) not in text
    # The header timeout is gone with the connection.
    assert conn.factory.clock.getDelayedCalls() == []  # type: ignore[attr-defined]


# -- admission -----------------------------------------------------------------------


def test_a_valid_header_admits_the_connection_with_its_identity(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """A good header: the wrapped factory builds a protocol for the transport's peer, the
    identity is on it before its connectionMade, the guard writes nothing and logs no
    refusal, and the header timeout is cancelled."""
    conn = connect(clock)
    conn.send(header())
    wrapped = conn.admitted
    assert wrapped is not None
    assert identity_of(wrapped) == ALICE
    assert wrapped.identity_at_connection_made == ALICE
    assert wrapped.transport is conn.transport
    assert wrapped.received == []
    assert conn.wrapped.addresses == [PEER]
    assert conn.transport.value() == b""
    assert not conn.transport.disconnecting
    assert conn.factory.refused == 0
    assert refusals(logged) == []
    assert clock.getDelayedCalls() == []


def test_a_header_arriving_one_byte_at_a_time_is_admitted_on_its_last_byte(
    clock: MemoryReactorClock,
) -> None:
    """Split into single bytes, the header builds nothing until its last byte, and no
    header byte ever reaches the wrapped protocol."""
    conn = connect(clock)
    raw = header()
    for i in range(len(raw) - 1):
        conn.send(raw[i : i + 1])
        assert conn.admitted is None, f"admitted after {i + 1} of {len(raw)} bytes"
    conn.send(raw[-1:])
    wrapped = conn.admitted
    assert wrapped is not None
    assert identity_of(wrapped) == ALICE
    assert wrapped.received == []
    assert conn.factory.refused == 0


def test_bytes_after_the_header_in_the_same_chunk_reach_the_wrapped_protocol(
    clock: MemoryReactorClock,
) -> None:
    """The rest of the chunk that completes the header is the service's first data, and
    later chunks follow it unchanged and in order."""
    conn = connect(clock)
    raw = header()
    conn.send(raw[:10])
    conn.send(raw[10:] + b"first")
    conn.send(b"second")
    wrapped = conn.admitted
    assert wrapped is not None
    assert wrapped.received == [b"first", b"second"]


def test_connection_lost_after_admission_reaches_the_wrapped_protocol(
    clock: MemoryReactorClock,
) -> None:
    """The wrapped protocol is told, with the transport's reason, when the link ends."""
    conn = connect(clock)
    conn.send(header())
    reason = Failure(ConnectionDone("bye"))
    conn.guard.connectionLost(reason)
    wrapped = conn.admitted
    assert wrapped is not None
    assert wrapped.lost == [reason]


def test_an_admitted_connection_is_not_cut_by_the_header_timeout(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """Once the header verified, the header timeout no longer applies."""
    conn = connect(clock, header_timeout=5.0)
    conn.send(header())
    clock.advance(3600)
    assert not conn.transport.disconnecting
    assert conn.factory.refused == 0
    assert refusals(logged) == []


def test_max_age_is_the_factorys(clock: MemoryReactorClock, logged: list[LogEvent]) -> None:
    """``max_age`` reaches the reader: with 10 s, a 9 s old header passes, an 11 s old
    one is refused as stale."""
    fresh = connect(clock, max_age=10.0)
    fresh.send(header(replace(ALICE, issued_at=NOW - 9)))
    assert fresh.admitted is not None
    old = connect(clock, max_age=10.0)
    old.send(header(replace(ALICE, issued_at=NOW - 11)))
    assert_refused(old, logged, "stale")


def test_freshness_is_judged_on_the_factorys_clock_when_the_header_completes(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """The time that counts is the clock's when the last header byte arrives: a header
    that was fresh when it started arriving but is stale by its end is refused."""
    conn = connect(clock, max_age=2.0, header_timeout=10.0)
    raw = header()
    conn.send(raw[:-1])
    clock.advance(3.0)
    conn.send(raw[-1:])
    assert_refused(conn, logged, "stale")


# -- refusals ------------------------------------------------------------------------

# A LOCAL header (command 0) is well-formed PROXY v2 but carries no identity.
_LOCAL = bytearray(header())
_LOCAL[12] = 0x20
# One byte of the account TLV changed after signing.
_TAMPERED = bytearray(header())
_TAMPERED[_TAMPERED.index(b"33068212345678")] ^= 0x01
# A header announcing 65535 bytes: refused from its fixed part, before any buffering.
_OVERSIZED = header()[:14] + struct.pack("!H", 0xFFFF)

REFUSALS = [
    pytest.param(header(key=OTHER_KEY), "bad-signature", id="wrong-key"),
    pytest.param(bytes(_TAMPERED), "bad-signature", id="tampered-account"),
    pytest.param(header(replace(ALICE, issued_at=NOW - 31)), "stale", id="stale"),
    pytest.param(header(replace(ALICE, issued_at=NOW + 6)), "from-future", id="from-future"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: declare\r\n\r\n", "no-header", id="http-request"),
    pytest.param(b"PROXY TCP4 203.0.113.7 10.0.0.1 50123 443\r\n", "no-header", id="proxy-v1"),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "no-header", id="tls-hello"),
    pytest.param(bytes(range(256)), "no-header", id="garbage"),
    pytest.param(bytes(_LOCAL), "local-command", id="local-command"),
    pytest.param(_OVERSIZED, "oversized", id="oversized"),
]


def test_a_replayed_header_is_refused_on_a_second_connection(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """The same header (same nonce) on a second connection while it is still fresh is a
    replay: refused with reason ``replayed``; the first connection stays admitted."""
    wrapped = RecordingFactory()
    factory = IdentityGuardFactory(wrapped, key=KEY, clock=clock)
    captured = header()
    first = factory.buildProtocol(PEER)
    first.makeConnection(StringTransport(peerAddress=PEER))
    first.dataReceived(captured)
    assert len(wrapped.built) == 1

    second_transport = StringTransport(peerAddress=PEER)
    second = factory.buildProtocol(PEER)
    second.makeConnection(second_transport)
    second.dataReceived(captured)
    assert len(wrapped.built) == 1
    assert second_transport.value() == b""
    assert factory.refused == 1
    [event] = refusals(logged)
    assert event["reason"] == "replayed"


@pytest.mark.parametrize(("data", "reason"), REFUSALS)
def test_a_bad_start_is_refused_with_its_reason(
    clock: MemoryReactorClock, logged: list[LogEvent], data: bytes, reason: str
) -> None:
    """Wrong key, tampering, stale or future time, anything that is not a PROXY v2
    header, a LOCAL header, an over-long one: the connection is aborted without a byte
    written, the wrapped factory is never asked, and the refusal is counted and logged
    as a warning with the reason and the peer (never the key)."""
    conn = connect(clock)
    conn.send(data)
    assert_refused(conn, logged, reason)


@pytest.mark.parametrize(("data", "reason"), REFUSALS)
def test_a_bad_start_fed_byte_by_byte_is_refused_once(
    clock: MemoryReactorClock, logged: list[LogEvent], data: bytes, reason: str
) -> None:
    """The same starts one byte at a time (the rest arriving after the refusal, as it
    can from a transport that had already read it): refused with the same reason,
    counted and logged exactly once, and nothing reaches the wrapped protocol."""
    conn = connect(clock)
    for i in range(len(data)):
        conn.send(data[i : i + 1])
    conn.send(header())  # even a good header after a refusal changes nothing
    assert_refused(conn, logged, reason)


def test_an_http_request_is_refused_at_its_first_byte(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """A plain request is refused as soon as it cannot be a header: after one byte."""
    conn = connect(clock)
    conn.send(b"G")
    assert_refused(conn, logged, "no-header")


# -- the header timeout --------------------------------------------------------------


def test_a_silent_connection_is_refused_after_the_header_timeout(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """Nothing sent: still open just before ``header_timeout``, aborted at it with the
    reason ``header-timeout``."""
    conn = connect(clock, header_timeout=5.0)
    clock.advance(4.999)
    assert not conn.transport.disconnecting
    assert conn.factory.refused == 0
    clock.advance(0.001)
    assert_refused(conn, logged, "header-timeout")
    assert "5.0 s" in refusals(logged)[0]["detail"]


def test_a_trickled_header_does_not_extend_the_header_timeout(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """A peer sending a byte now and then (slowloris) gets ``header_timeout`` from the
    connection's start in total, not per byte."""
    conn = connect(clock, header_timeout=5.0, max_age=60.0)
    raw = header()
    for i in range(5):
        conn.send(raw[i : i + 1])
        clock.advance(0.99)
    assert not conn.transport.disconnecting
    conn.send(raw[5:6])
    clock.advance(0.05)
    assert_refused(conn, logged, "header-timeout")


def test_a_refused_connection_has_no_timeout_left_to_fire(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """A refusal for a bad header cancels the timeout: it is not refused a second time."""
    conn = connect(clock)
    conn.send(b"garbage")
    clock.advance(3600)
    assert_refused(conn, logged, "no-header")


def test_a_connection_closed_before_its_header_is_not_a_refusal(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """A peer that goes away mid-header: the timeout is cancelled, nothing is counted or
    logged as refused, and the wrapped factory never hears of it."""
    conn = connect(clock)
    conn.send(header()[:20])
    conn.guard.connectionLost(Failure(ConnectionDone()))
    assert clock.getDelayedCalls() == []
    clock.advance(3600)
    assert conn.factory.refused == 0
    assert refusals(logged) == []
    assert conn.wrapped.addresses == []


# -- the wrapped factory -------------------------------------------------------------


def test_start_and_stop_pass_through_to_the_wrapped_factory(clock: MemoryReactorClock) -> None:
    """Listening on the guard starts the wrapped factory; stopping stops it (once per
    port, as Factory.doStart/doStop count)."""
    wrapped = RecordingFactory()
    factory = IdentityGuardFactory(wrapped, key=KEY, clock=clock)
    factory.doStart()
    factory.doStart()
    assert (wrapped.started, wrapped.stopped, wrapped.numPorts) == (1, 0, 2)
    factory.doStop()
    assert (wrapped.started, wrapped.stopped) == (1, 0)
    factory.doStop()
    assert (wrapped.started, wrapped.stopped, wrapped.numPorts) == (1, 1, 0)


def test_a_declining_wrapped_factory_closes_the_connection_without_a_refusal(
    clock: MemoryReactorClock, logged: list[LogEvent]
) -> None:
    """The wrapped factory returning None after a good header: the connection is closed
    cleanly, writes nothing, is not counted as refused, and later bytes are ignored."""
    conn = connect(clock, RecordingFactory(declines=True))
    conn.send(header() + b"GET / HTTP/1.0\r\n")
    conn.send(b"\r\n")
    assert conn.wrapped.addresses == [PEER]
    assert conn.transport.disconnecting
    assert not conn.aborted
    assert conn.transport.value() == b""
    assert conn.factory.refused == 0
    assert refusals(logged) == []
    assert any("declined" in e.get("log_format", "") for e in logged)


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"key": b"k" * 31}, id="short-key"),
        pytest.param({"max_age": 0.0}, id="zero-max-age"),
        pytest.param({"max_age": math.inf}, id="infinite-max-age"),
        pytest.param({"header_timeout": 0.0}, id="zero-timeout"),
        pytest.param({"header_timeout": -1.0}, id="negative-timeout"),
        pytest.param({"header_timeout": math.nan}, id="nan-timeout"),
    ],
)
def test_a_bad_configuration_fails_when_the_factory_is_made(
    clock: MemoryReactorClock, kwargs: dict[str, Any]
) -> None:
    """A short key, a non-positive or infinite max_age or header timeout is refused at
    start-up, not on every connection."""
    args: dict[str, Any] = {"key": KEY, "clock": clock, **kwargs}
    with pytest.raises(ValueError):
        IdentityGuardFactory(RecordingFactory(), **args)


def test_identity_of_an_unguarded_protocol_is_none() -> None:
    """Only an :class:`Identity` set by the guard counts; anything else reads as None."""
    assert identity_of(Protocol()) is None
    impostor = Protocol()
    impostor.ssgate_identity = {"unit_code": "12345678"}  # type: ignore[attr-defined]
    assert identity_of(impostor) is None


# -- the identity page behind the guard ----------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


def parse_responses(raw: bytes) -> list[Response]:
    """Split what the server wrote into responses (each with a Content-Length)."""
    responses = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(b": ")
            headers[name.lower()] = value
        size = int(headers[b"content-length"])
        responses.append(Response(int(status_line.split(b" ")[1]), headers, raw[:size]))
        raw = raw[size:]
    return responses


def guarded_site(clock: MemoryReactorClock) -> Connection:
    factory = IdentityGuardFactory(identity_site(reactor=clock), key=KEY, clock=clock)
    guard = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    guard.makeConnection(transport)
    return Connection(factory, RecordingFactory(), guard, transport)


def fetch(clock: MemoryReactorClock, request: bytes, identity: Identity = ALICE) -> Response:
    conn = guarded_site(clock)
    conn.send(header(identity) + request)
    [response] = parse_responses(conn.transport.value())
    return response


def test_header_and_http_request_in_one_chunk_get_the_identity_page(
    clock: MemoryReactorClock,
) -> None:
    """The header and ``GET /`` in one chunk: the page shows the unit code, account and
    session id from the header (this also pins that ``request.channel`` is the protocol
    the guard labelled; with Site's default proxy protocol it was not, and every request
    got 403)."""
    response = fetch(clock, b"GET / HTTP/1.0\r\n\r\n")
    assert response.status == 200
    assert response.headers[b"content-type"] == b"text/html; charset=utf-8"
    assert response.headers[b"cache-control"] == b"no-store"
    page = response.body.decode()
    assert '<td id="unit">12345678</td>' in page
    assert '<td id="account">33068212345678@sxlss</td>' in page
    assert '<td id="session">s-7f3a9c0e11d24b6f</td>' in page
    assert "203.0.113.7:50123" in page


def test_whoami_is_the_identity_as_json(clock: MemoryReactorClock) -> None:
    """``/api/v1/whoami`` (query string ignored) answers the same identity as JSON."""
    response = fetch(clock, b"GET /api/v1/whoami?x=1 HTTP/1.0\r\n\r\n")
    assert response.status == 200
    assert response.headers[b"content-type"] == b"application/json"
    assert json.loads(response.body) == {
        "account": "33068212345678@sxlss",
        "unit_code": "12345678",
        "session_id": "s-7f3a9c0e11d24b6f",
        "source": "203.0.113.7:50123",
    }


def test_every_request_on_a_kept_alive_connection_has_the_identity(
    clock: MemoryReactorClock,
) -> None:
    """Two pipelined HTTP/1.1 requests on one guarded connection both see the identity."""
    conn = guarded_site(clock)
    conn.send(
        header()
        + b"GET / HTTP/1.1\r\nHost: declare\r\n\r\n"
        + b"GET /api/v1/whoami HTTP/1.1\r\nHost: declare\r\n\r\n"
    )
    page, whoami = parse_responses(conn.transport.value())
    assert page.status == 200
    assert b"12345678" in page.body
    assert whoami.status == 200
    assert json.loads(whoami.body)["session_id"] == "s-7f3a9c0e11d24b6f"


def test_an_unknown_path_is_404(clock: MemoryReactorClock) -> None:
    """Only ``/`` and ``/api/v1/whoami`` exist; other paths do not show the identity."""
    response = fetch(clock, b"GET /favicon.ico HTTP/1.0\r\n\r\n")
    assert response.status == 404
    assert b"12345678" not in response.body


def test_the_identity_is_html_escaped_and_json_encoded(clock: MemoryReactorClock) -> None:
    """The header's text fields allow any printable ASCII except space, so ``<``, ``>``,
    ``&`` and both quotes can arrive in an account, unit code or session id: the page
    escapes them, and the JSON carries them unchanged."""
    hostile = replace(
        ALICE,
        account='<script>alert("x")</script>&\'@sxlss',
        unit_code="<b>",
        session_id='"><img/src=x/onerror=alert(1)>',
    )
    page = fetch(clock, b"GET / HTTP/1.0\r\n\r\n", hostile).body.decode()
    assert "<script>" not in page
    assert "<b>" not in page
    assert "<img" not in page
    assert (
        '<td id="account">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;@sxlss</td>'
        in page
    )
    assert '<td id="unit">&lt;b&gt;</td>' in page
    assert '<td id="session">&quot;&gt;&lt;img/src=x/onerror=alert(1)&gt;</td>' in page
    whoami = fetch(clock, b"GET /api/v1/whoami HTTP/1.0\r\n\r\n", hostile)
    assert whoami.headers[b"x-content-type-options"] == b"nosniff"
    body = json.loads(whoami.body)
    assert (body["account"], body["unit_code"], body["session_id"]) == (
        hostile.account,
        hostile.unit_code,
        hostile.session_id,
    )


@pytest.mark.parametrize("path", [b"/", b"/api/v1/whoami"])
def test_the_site_refuses_a_connection_without_an_identity(
    clock: MemoryReactorClock, path: bytes
) -> None:
    """Served without the guard, the site answers 403 and shows nothing."""
    site = identity_site(reactor=clock)
    channel = site.buildProtocol(PEER)
    assert channel is not None
    transport = StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    channel.dataReceived(b"GET " + path + b" HTTP/1.0\r\n\r\n")
    [response] = parse_responses(transport.value())
    assert response.status == 403
    assert response.body == b"no identity\n"


def test_the_site_builds_the_http_channel_itself() -> None:
    """``request.channel`` must be the protocol the guard labels, so the site's protocol
    is an ``HTTPChannel``, not Site's default proxy around one."""
    site = identity_site(reactor=MemoryReactorClock())
    assert isinstance(site, Site)
    assert isinstance(site.buildProtocol(PEER), HTTPChannel)
