"""The gateway and ``ssgate connect`` wired together in memory: login, streams, ends.

Everything is the real code — :class:`GatewayTunnel`, :class:`GatewayNode`,
:class:`ConnectClient`, the twisted.cred checker and realm, argon2 + TOTP, the session
registry, resume tokens, the audit log, the identity header — except three things
(:mod:`gateway.testing`): the network (:class:`MemoryNetwork`, whose transports pause
producers and half-close as Twisted's TCP transports do), the clock
(``MemoryReactorClock``) and the database thread pool (:class:`SynchronousRunner`, on
an SQLite file).

TLS is not run: the gateway's transport is a :class:`MemoryTLSTransport`, which
provides ``ISSLTransport`` and presents the client certificate, and the testbed calls
``handshakeCompleted()`` as ``TLSMemoryBIOProtocol`` would.  So
``gateway._tls.peer_certificate`` runs unchanged and nothing is monkeypatched; TLS
itself is covered by ``test_tls.py`` and the openssl interop tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest
from sqlalchemy import Engine
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from gateway import _sessions
from gateway._client import RESUME_WINDOW, ConnectClient
from gateway._frames import DEFAULT_INITIAL_WINDOW
from gateway._machine import (
    AuthAccepted,
    AuthRejected,
    ClientMachine,
    Event,
    SessionClosed,
    StreamRefused,
)
from gateway._reasons import Reason
from gateway._service import STREAM_CONNECT_TIMEOUT, GatewayTunnel
from gateway._tunnel import StreamConnection, TunnelProtocol
from gateway.testing import (
    EMPLOYER_ADDRESS,
    GATEWAY_ADDRESS,
    TESTBED_ACCOUNT,
    TESTBED_UNIT,
    ChannelTestbed,
    MemoryTransport,
)

ACCOUNT = TESTBED_ACCOUNT
# The client gives up resuming after RESUME_WINDOW seconds, at its next redial (≤ 8 s).
RESUME_WINDOW_GIVE_UP = int(RESUME_WINDOW) + 10


@pytest.fixture
def bed(sqlite_engine: Engine) -> ChannelTestbed:
    return ChannelTestbed(sqlite_engine)


def record_events(tunnel: TunnelProtocol) -> list[object]:
    """Every event *tunnel*'s machine produces from now on, in order."""
    seen: list[object] = []
    handle = tunnel.handle_event

    def spy(event: object) -> None:
        seen.append(event)
        handle(event)

    tunnel.handle_event = spy  # type: ignore[method-assign]
    return seen


def result_of(d: Deferred[int]) -> int:
    assert d.called, "the client has not finished"
    box: list[int] = []
    d.addCallback(box.append)
    return box[0]


def tunnel_transport(tunnel: TunnelProtocol) -> MemoryTransport:
    assert isinstance(tunnel.transport, MemoryTransport)
    return tunnel.transport


class Connected:
    """A client logged in through the testbed, with the gateway's side of it."""

    def __init__(self, bed: ChannelTestbed, client: ConnectClient) -> None:
        self.client = client
        self.done = client.start()
        assert client.tunnel is not None
        self.client_events = record_events(client.tunnel)
        bed.run()
        self.gateway = bed.tunnels[-1]
        assert self.gateway.session is not None, client.out.getvalue()
        self.session_id = self.gateway.session.session_id

    @property
    def out(self) -> str:
        text: str = self.client.out.getvalue()  # type: ignore[attr-defined]
        return text


def connect(bed: ChannelTestbed, **kwargs: str) -> Connected:
    return Connected(bed, bed.client(**kwargs))  # type: ignore[arg-type]


class RawClient(Protocol):
    """A client speaking the protocol by hand, to do what ``ssgate connect`` never does."""

    def __init__(self, on_event: Callable[[RawClient, Event], None] | None = None) -> None:
        self.machine = ClientMachine()
        self.events: list[Event] = []
        self.on_event = on_event
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        self.flush()

    def flush(self) -> None:
        assert self.transport is not None
        self.transport.writeSequence(self.machine.data_to_send())

    def dataReceived(self, data: bytes) -> None:
        for event in self.machine.receive(data):
            self.events.append(event)
            if self.on_event is not None:
                self.on_event(self, event)
        self.flush()

    def connectionLost(self, reason: Failure = Failure(ConnectionLost())) -> None:  # noqa: B008
        self.lost = reason


def raw_connect(bed: ChannelTestbed, raw: RawClient) -> GatewayTunnel:
    bed.gateway_endpoint.connect(Factory.forProtocol(lambda: raw))
    return bed.tunnels[-1]


# -- login and relay ---------------------------------------------------------------------


def test_login_opens_a_session_and_a_stream_carries_bytes_both_ways_after_the_identity_header(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)

    [accepted] = [e for e in c.client_events if isinstance(e, AuthAccepted)]
    assert (accepted.session_id, accepted.account, accepted.unit_code) == (
        c.session_id,
        ACCOUNT,
        TESTBED_UNIT,
    )
    assert (accepted.idle_timeout, accepted.max_lifetime) == (1800, 43200)
    assert c.client.session_id == c.session_id and c.client.resume_token
    assert (
        f"connected as {ACCOUNT} (unit {TESTBED_UNIT}, session {c.session_id}); "
        "open http://127.0.0.1:8080/"
    ) in c.out
    record = bed.session(c.session_id)
    assert record is not None
    assert (record.status, record.account, record.node) == ("live", ACCOUNT, "test-node")
    assert record.peer == f"{EMPLOYER_ADDRESS.host}:{EMPLOYER_ADDRESS.port}"
    [login] = bed.audit_events("login")
    assert (login.outcome, login.subject, login.unit, login.session_id) == (
        "ok",
        ACCOUNT,
        TESTBED_UNIT,
        c.session_id,
    )

    browser, _ = bed.browse(c.client)
    request = b"GET /units HTTP/1.1\r\nHost: x\r\n\r\n"
    browser.transport.write(request)  # type: ignore[union-attr]
    bed.run()

    [service] = bed.services
    # IdentifiedService raises unless the stream starts with a valid, fresh header.
    identity = service.identity
    assert identity is not None
    assert (identity.account, identity.unit_code, identity.session_id) == (
        ACCOUNT,
        TESTBED_UNIT,
        c.session_id,
    )
    assert (identity.source_host, identity.source_port) == (
        EMPLOYER_ADDRESS.host,
        EMPLOYER_ADDRESS.port,
    )
    assert (identity.dest_host, identity.dest_port) == (GATEWAY_ADDRESS.host, GATEWAY_ADDRESS.port)
    assert identity.issued_at == bed.clock.seconds()
    assert bytes(service.received) == request

    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    service.transport.write(response)  # type: ignore[union-attr]
    bed.run()
    assert bytes(browser.received) == response
    assert not c.done.called
    assert c.gateway.counters() == (len(request), len(response), 1)


def test_every_stream_gets_its_own_connection_and_header_with_a_fresh_nonce(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    first, _ = bed.browse(c.client)
    second, _ = bed.browse(c.client)
    first.transport.write(b"one")  # type: ignore[union-attr]
    second.transport.write(b"two")  # type: ignore[union-attr]
    bed.run()
    one, two = bed.services
    assert (bytes(one.received), bytes(two.received)) == (b"one", b"two")
    assert one.identity is not None and two.identity is not None
    assert one.identity.nonce != two.identity.nonce
    two.transport.write(b"2")  # type: ignore[union-attr]
    one.transport.write(b"1")  # type: ignore[union-attr]
    bed.run()
    assert (bytes(first.received), bytes(second.received)) == (b"1", b"2")


def test_half_close_travels_as_fin_and_both_local_connections_close_when_both_ends_are_done(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    browser, local_end = bed.browse(c.client)
    browser.transport.write(b"request")  # type: ignore[union-attr]
    browser.transport.loseWriteConnection()  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    assert bytes(service.received) == b"request" and service.eof
    upstream_end = bed.service_endpoint.connections[-1][0]

    service.transport.write(b"response")  # type: ignore[union-attr]
    bed.run()
    assert bytes(browser.received) == b"response" and not browser.eof
    assert local_end.connected and upstream_end.connected  # one direction still open

    service.transport.loseWriteConnection()  # type: ignore[union-attr]
    bed.run()
    assert browser.eof
    # Twisted never closes a half-closeable connection by itself: the relay must, or
    # every finished stream would leave a socket open on both hosts.
    assert not local_end.connected and not upstream_end.connected
    assert c.gateway.streams == {}
    assert c.client.tunnel is not None and c.client.tunnel.streams == {}


def test_a_browser_that_went_away_resets_the_stream_and_the_service_connection_is_cut(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    browser, local_end = bed.browse(c.client)
    browser.transport.write(b"request")  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    browser.transport.loseConnection()  # type: ignore[union-attr]
    bed.run()
    assert service.eof and service.lost is None  # a close reads as EOF, as in TCP
    service.transport.write(b"response")  # type: ignore[union-attr]
    bed.run()
    # Writing to the closed browser fails (RST): the client resets the stream and the
    # gateway cuts the service connection.
    assert not local_end.connected
    assert service.lost is not None and service.lost.check(ConnectionLost)
    assert c.gateway.streams == {}


def test_a_reply_to_a_browser_that_aborted_is_drained_so_the_service_is_not_stalled(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    browser, local_end = bed.browse(c.client)
    browser.transport.write(b"u")  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    service.transport.pauseProducing()  # type: ignore[union-attr]  # busy: not reading
    browser.transport.write(b"u" * (400 * 1024))  # type: ignore[union-attr]
    bed.run()
    assert c.client.tunnel is not None and c.client.tunnel.buffered() > 0  # upload waits
    browser.transport.abortConnection()  # type: ignore[union-attr]
    bed.run()
    assert not local_end.connected

    # The client still owes the gateway the bytes it read, so the stream stays; what
    # the service answers meanwhile has no reader but must not stall the service.
    service.transport.write(b"d" * (1024 * 1024))  # type: ignore[union-attr]
    bed.run()
    assert len(service.memory_transport.buffer) == 0
    service.transport.resumeProducing()  # type: ignore[union-attr]
    bed.run()
    assert service.eof and service.count > DEFAULT_INITIAL_WINDOW  # what was read, then FIN
    service.transport.loseWriteConnection()  # type: ignore[union-attr]
    bed.run()
    assert c.gateway.streams == {} and c.client.tunnel.streams == {}
    assert not bed.service_endpoint.connections[-1][0].connected


def test_bytes_a_local_transport_delivers_after_being_paused_are_kept_in_order(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    _, local_end = bed.browse(c.client)
    bed.run()
    local = local_end.protocol
    assert isinstance(local, StreamConnection)
    local.dataReceived(b"a" * (DEFAULT_INITIAL_WINDOW + 10))  # the credit takes a window
    assert local.pending == b"a" * 10 and not local_end.reading
    local.dataReceived(b"b" * 5)  # a transport that does not stop at once
    assert local.pending == b"a" * 10 + b"b" * 5
    bed.run()
    [service] = bed.services
    assert bytes(service.received) == b"a" * (DEFAULT_INITIAL_WINDOW + 10) + b"b" * 5
    assert local_end.reading


# -- streams the gateway refuses ------------------------------------------------------


def test_a_service_outside_the_accounts_policy_is_refused_and_audited(
    bed: ChannelTestbed,
) -> None:
    bed.policy = replace(bed.policy, services=("query",))
    c = connect(bed)
    browser, local_end = bed.browse(c.client)
    browser.transport.write(b"GET / HTTP/1.1\r\n\r\n")  # type: ignore[union-attr]
    bed.run()

    [refused] = [e for e in c.client_events if isinstance(e, StreamRefused)]
    assert refused.reason is Reason.SERVICE_DENIED
    assert Reason.SERVICE_DENIED.bilingual in c.out
    assert bed.services == [] and bed.service_endpoint.attempts == 0
    assert not local_end.connected
    assert browser.eof or browser.lost is not None
    [event] = bed.audit_events("stream.refused")
    assert (event.outcome, event.reason, event.subject) == ("refused", "service-denied", ACCOUNT)
    assert (event.session_id, event.unit) == (c.session_id, TESTBED_UNIT)
    assert event.details["service"] == "declare"
    assert not c.done.called  # the session goes on


def test_a_service_that_refuses_the_connection_gives_service_unavailable(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    bed.service_endpoint.refuse = ConnectionRefusedError()
    bed.browse(c.client)
    bed.run()
    [refused] = [e for e in c.client_events if isinstance(e, StreamRefused)]
    assert refused.reason is Reason.SERVICE_UNAVAILABLE
    [event] = bed.audit_events("stream.refused")
    assert event.reason == "service-unavailable"
    assert c.gateway.streams == {}


def test_a_service_that_does_not_answer_in_time_gives_service_unavailable(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    bed.service_endpoint.hold = True
    bed.browse(c.client)
    bed.run()
    assert bed.service_endpoint.pending == 1
    bed.clock.advance(STREAM_CONNECT_TIMEOUT)
    bed.run()
    [refused] = [e for e in c.client_events if isinstance(e, StreamRefused)]
    assert refused.reason is Reason.SERVICE_UNAVAILABLE
    assert bed.service_endpoint.pending == 0  # the attempt was cancelled


def test_data_and_fin_sent_before_the_service_is_connected_arrive_after_the_header(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    bed.service_endpoint.hold = True
    browser, _ = bed.browse(c.client)
    browser.transport.write(b"early bytes")  # type: ignore[union-attr]
    browser.transport.loseWriteConnection()  # type: ignore[union-attr]
    bed.run()
    assert c.gateway.buffered() == len(b"early bytes")  # held without returning credit
    bed.service_endpoint.release()
    bed.run()
    [service] = bed.services
    assert service.identity is not None
    assert bytes(service.received) == b"early bytes" and service.eof
    service.transport.write(b"late reply")  # type: ignore[union-attr]
    bed.run()
    assert bytes(browser.received) == b"late reply"


def test_a_service_connection_completed_after_the_stream_was_reset_is_closed(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    bed.service_endpoint.hold = True
    browser, _ = bed.browse(c.client)
    browser.transport.write(b"x")  # type: ignore[union-attr]
    bed.run()
    browser.transport.abortConnection()  # type: ignore[union-attr]
    bed.run()
    assert c.gateway.streams == {}
    bed.service_endpoint.release()
    bed.run()
    [service] = bed.services
    upstream_end = bed.service_endpoint.connections[-1][0]
    assert not upstream_end.connected and service.eof


# -- logins the gateway refuses -------------------------------------------------------


def test_a_wrong_password_is_refused_in_words_and_the_client_exits_with_the_reason_code(
    bed: ChannelTestbed,
) -> None:
    client = bed.client(password="not the password")
    done = client.start()
    # Bound before the login (a busy port costs no code), and closed when it fails.
    listening = client.port
    assert listening is not None
    stopped: list[bool] = []
    listening.stopListening = lambda: stopped.append(True)  # type: ignore[method-assign]
    bed.run()
    assert result_of(done) == Reason.AUTH_FAILED.exit_code == 20
    out = client.out.getvalue()  # type: ignore[attr-defined]
    assert out.count(Reason.AUTH_FAILED.bilingual) == 1
    [login] = bed.audit_events("login")
    assert (login.outcome, login.reason) == ("refused", "bad-password")
    assert client.port is None and stopped == [True]


def test_three_failed_attempts_end_the_connection_with_too_many_attempts(
    bed: ChannelTestbed,
) -> None:
    def again(raw: RawClient, event: Event) -> None:
        if isinstance(event, AuthRejected) and event.attempts_left:
            raw.machine.authenticate(ACCOUNT, "wrong password", bed.otp())

    raw = RawClient(again)
    raw.machine.authenticate(ACCOUNT, "wrong password", bed.otp())
    tunnel = raw_connect(bed, raw)
    bed.run()

    assert [e for e in raw.events if isinstance(e, AuthRejected)] == [
        AuthRejected(Reason.AUTH_FAILED, 2, retry_after=0),
        AuthRejected(Reason.AUTH_FAILED, 1, retry_after=0),
        AuthRejected(Reason.AUTH_FAILED, 0, retry_after=0),
    ]
    assert raw.events[-1] == SessionClosed(Reason.TOO_MANY_ATTEMPTS, "", by_peer=True)
    assert raw.lost is not None and not tunnel_transport(tunnel).connected
    logins = bed.audit_events("login")
    assert [(e.outcome, e.reason) for e in logins] == [("refused", "bad-password")] * 3
    assert tunnel.session is None and bed.ctx.live == {}


def test_an_empty_account_name_is_refused_like_any_other_not_left_unanswered(
    bed: ChannelTestbed,
) -> None:
    raw = RawClient()
    raw.machine.authenticate("", "x", "123456")
    raw_connect(bed, raw)
    bed.run()
    assert AuthRejected(Reason.AUTH_FAILED, 2, retry_after=0) in raw.events
    [login] = bed.audit_events("login")
    assert (login.subject, login.reason) == ("-", "cert-mismatch")


def test_a_connection_that_does_not_log_in_within_the_deadline_is_closed(
    bed: ChannelTestbed,
) -> None:
    raw = RawClient()  # HELLO only
    tunnel = raw_connect(bed, raw)
    bed.run()
    bed.clock.advance(59)
    bed.run()
    assert raw.lost is None
    bed.clock.advance(1)
    bed.run()
    assert raw.events[-1] == SessionClosed(Reason.AUTH_TIMEOUT, "", by_peer=True)
    assert raw.lost is not None and not tunnel_transport(tunnel).connected
    [login] = bed.audit_events("login")
    assert (login.outcome, login.reason) == ("refused", "auth-timeout")


def test_a_login_that_completes_after_the_connection_dropped_leaves_no_live_session(
    bed: ChannelTestbed,
) -> None:
    bed.runner.hold()  # the database is slow: the login is still being checked
    client = bed.client()
    done = client.start()
    bed.run()
    [tunnel] = bed.tunnels
    tunnel_transport(tunnel).cut()
    bed.run()
    assert result_of(done) == 3  # lost before the login completed
    bed.runner.release()
    bed.run()
    assert bed.ctx.live == {}
    with bed.engine.begin() as conn:
        [record] = _sessions.list_sessions(conn)
    assert (record.status, record.end_reason) == ("ended", "network-lost")


# -- timers ------------------------------------------------------------------------------


def test_the_idle_timeout_counts_stream_data_only_not_keepalives(bed: ChannelTestbed) -> None:
    bed.policy = replace(bed.policy, idle_timeout_seconds=30.0)
    c = connect(bed)
    browser, _ = bed.browse(c.client)
    bed.elapse(20)
    browser.transport.write(b"still here")  # type: ignore[union-attr]
    bed.run()
    bed.elapse(30)  # keepalive PINGs and PONGs went both ways meanwhile
    assert not c.done.called
    bed.elapse(1)
    assert result_of(c.done) == Reason.IDLE_TIMEOUT.exit_code == 11
    assert SessionClosed(Reason.IDLE_TIMEOUT, "", by_peer=True) in c.client_events
    assert Reason.IDLE_TIMEOUT.bilingual in c.out
    record = bed.session(c.session_id)
    assert record is not None and (record.status, record.end_reason) == ("ended", "idle-timeout")
    [end] = bed.audit_events("session.end")
    assert (end.reason, end.session_id) == ("idle-timeout", c.session_id)


def test_the_maximum_lifetime_ends_a_busy_session(bed: ChannelTestbed) -> None:
    bed.policy = replace(bed.policy, idle_timeout_seconds=30.0, max_lifetime_seconds=60.0)
    c = connect(bed)
    browser, _ = bed.browse(c.client)
    for _ in range(6):
        bed.elapse(10)
        assert not c.done.called
        browser.transport.write(b".")  # type: ignore[union-attr]
        bed.run()
    bed.elapse(1)
    assert result_of(c.done) == Reason.MAX_LIFETIME.exit_code == 12
    record = bed.session(c.session_id)
    assert record is not None and record.end_reason == "max-lifetime"
    assert record.bytes_in == 6 and record.streams_opened == 1


def test_zero_timeouts_mean_none(bed: ChannelTestbed) -> None:
    bed.policy = replace(bed.policy, idle_timeout_seconds=0.0, max_lifetime_seconds=0.0)
    c = connect(bed)
    bed.elapse(100)
    assert not c.done.called


# -- ends decided elsewhere ----------------------------------------------------------------


def test_an_officer_kill_in_the_registry_ends_the_session_within_a_second(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    with bed.engine.begin() as conn:
        _sessions.request_kill(
            conn, c.session_id, reason="officer-kill", note="", actor="officer:o", now=1.0
        )
    bed.elapse(1)
    assert SessionClosed(Reason.OFFICER_KILL, "", by_peer=True) in c.client_events
    assert result_of(c.done) == Reason.OFFICER_KILL.exit_code == 13
    assert Reason.OFFICER_KILL.bilingual in c.out
    record = bed.session(c.session_id)
    assert record is not None and (record.status, record.end_reason) == ("ended", "officer-kill")


def test_end_sessions_terminates_with_the_verdicts_reason_and_treats_unknown_ones_as_a_kill(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    bed.node._end_sessions(
        {
            c.session_id: _sessions.SessionEnd("account-suspended"),
            "gone": _sessions.SessionEnd("officer-kill", "not this one"),
        }
    )
    bed.run()
    assert SessionClosed(Reason.ACCOUNT_SUSPENDED, "", by_peer=True) in c.client_events
    assert result_of(c.done) == 14

    bed.elapse(30)  # a new one-time code
    other = connect(bed)
    bed.node._end_sessions({other.session_id: _sessions.SessionEnd("a note someone typed")})
    bed.run()
    assert SessionClosed(Reason.OFFICER_KILL, "", by_peer=True) in other.client_events


def test_stopping_the_node_says_gateway_shutdown_and_waits_until_the_ends_are_recorded(
    bed: ChannelTestbed,
) -> None:
    """A client of protocol version 2 cannot move (MOVE is version 3): it is told
    gateway-shutdown as before, and its session ends so."""
    client = bed.client()
    client.protocol_versions = (1, 2)
    c = Connected(bed, client)
    stopped = bed.node.stopService()
    assert not stopped.called
    bed.run()
    assert stopped.called
    assert result_of(c.done) == Reason.GATEWAY_SHUTDOWN.exit_code
    record = bed.session(c.session_id)
    assert record is not None and record.end_reason == "gateway-shutdown"


def test_the_client_quitting_ends_the_session_with_client_quit_and_exit_status_0(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    c.client.quit()
    bed.run()
    assert result_of(c.done) == 0
    assert Reason.CLIENT_QUIT.bilingual in c.out
    record = bed.session(c.session_id)
    assert record is not None and record.end_reason == "client-quit"
    [end] = bed.audit_events("session.end")
    assert end.reason == "client-quit"


def test_a_client_that_cannot_listen_fails_at_once_without_logging_in(
    bed: ChannelTestbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy --listen port: exit 2 with a sentence naming the port, before any dial —
    no login attempt, no code spent, no session left on the gateway (issue 11)."""

    def busy(*args: object, **kwargs: object) -> None:
        raise CannotListenError("127.0.0.1", 8080, OSError("address in use"))

    monkeypatch.setattr(bed.clock, "listenTCP", busy)
    client = bed.client()
    done = client.start()
    bed.run()
    assert result_of(done) == 2
    bed.elapse(10)
    assert bed.gateway_endpoint.attempts == 0
    out = client.out.getvalue()  # type: ignore[attr-defined]
    assert "127.0.0.1:8080" in out and "动态口令未被使用" in out and "not used" in out
    assert bed.audit_events("login") == []
    with bed.engine.begin() as conn:
        assert _sessions.list_sessions(conn) == []


# -- network loss and resume -------------------------------------------------------------


def test_a_dropped_connection_detaches_the_session_and_the_client_resumes_it_with_its_token(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    browser, _ = bed.browse(c.client)
    browser.transport.write(b"before")  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    token = c.client.resume_token

    tunnel_transport(c.gateway).cut()  # no GOAWAY: the network failed
    bed.run()
    record = bed.session(c.session_id)
    assert record is not None and record.status == "detached" and record.bytes_in == 6
    [detach] = bed.audit_events("session.detach")
    assert (detach.reason, detach.session_id) == ("network-lost", c.session_id)
    assert bed.audit_events("session.end") == []
    assert bed.ctx.live == {}
    assert "network lost, reconnecting" in c.out
    assert isinstance(browser.lost, Failure) and service.lost is not None  # streams do not survive
    assert not c.done.called

    bed.elapse(1)  # the first retry comes after a second
    assert bed.gateway_endpoint.attempts == 2
    resumed = bed.tunnels[-1]
    assert resumed is not c.gateway
    assert resumed.session is not None and resumed.session.session_id == c.session_id
    assert f"reconnected, same session {c.session_id}" in c.out
    assert c.client.resume_token not in (None, token)  # each token works once
    record = bed.session(c.session_id)
    assert record is not None and (record.status, record.resume_generation) == ("live", 1)
    [resume] = bed.audit_events("login.resume")
    assert (resume.outcome, resume.session_id) == ("ok", c.session_id)

    again, _ = bed.browse(c.client)
    again.transport.write(b"after")  # type: ignore[union-attr]
    bed.run()
    assert bed.services[-1].identity is not None
    assert bed.services[-1].identity.session_id == c.session_id
    assert bytes(bed.services[-1].received) == b"after"
    assert resumed.counters()[0] == 11  # bytes in, carried over from before the drop


def test_a_resume_that_completes_after_the_new_connection_dropped_leaves_it_detached(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    tunnel_transport(c.gateway).cut()
    bed.run()
    bed.runner.hold()  # the registry is slow to reattach the session
    bed.elapse(1)
    resuming = bed.tunnels[-1]
    assert resuming is not c.gateway and bed.runner.held
    tunnel_transport(resuming).cut()
    bed.network.run()
    bed.runner.release()
    record = bed.session(c.session_id)
    assert record is not None and record.status == "detached"
    assert bed.ctx.live == {}
    assert not c.done.called  # the client keeps trying within its window


def test_a_resume_token_works_once(bed: ChannelTestbed) -> None:
    c = connect(bed)
    token = c.client.resume_token
    assert token is not None
    tunnel_transport(c.gateway).cut()
    bed.run()
    bed.elapse(1)  # the client resumes with the token
    raw = RawClient()
    raw.machine.resume(token)
    raw_connect(bed, raw)
    bed.run()
    assert AuthRejected(Reason.RESUME_INVALID, 2, retry_after=0) in raw.events
    refusals = [e for e in bed.audit_events("login.resume") if e.outcome == "refused"]
    assert [e.reason for e in refusals] == ["resume-invalid"]


def test_resuming_before_the_gateway_noticed_the_drop_replaces_the_old_connection(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    old = c.gateway
    tunnel_transport(c.client.tunnel).vanish()  # type: ignore[arg-type]
    bed.run()
    assert tunnel_transport(old).connected  # the gateway has not noticed
    bed.elapse(1)
    new = bed.tunnels[-1]
    assert new is not old and new.session is not None
    assert new.session.session_id == c.session_id
    assert not tunnel_transport(old).connected  # closed by the resume
    assert bed.ctx.live == {c.session_id: new}
    record = bed.session(c.session_id)
    assert record is not None and record.status == "live"
    assert bed.audit_events("session.end", "session.detach") == []


def test_the_client_gives_up_resuming_after_the_resume_window(bed: ChannelTestbed) -> None:
    c = connect(bed)
    bed.gateway_endpoint.refuse = ConnectionRefusedError()
    tunnel_transport(c.gateway).cut()
    bed.run()
    bed.elapse(120)
    assert result_of(c.done) == Reason.NETWORK_LOST.exit_code == 18
    assert Reason.NETWORK_LOST.bilingual in c.out
    attempts = bed.gateway_endpoint.attempts
    bed.elapse(30)
    assert bed.gateway_endpoint.attempts == attempts


def test_reconnections_that_fail_before_the_resume_do_not_extend_the_resume_window(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    tunnel_transport(c.gateway).cut()
    bed.run()
    for _ in range(RESUME_WINDOW_GIVE_UP):
        bed.clock.advance(1)
        for _client_end, gateway_end in bed.gateway_endpoint.connections:
            gateway_end.cut()  # each new connection dies before the resume gets through
        bed.network.run()
        if c.done.called:
            break
    assert result_of(c.done) == Reason.NETWORK_LOST.exit_code
    assert bed.gateway_endpoint.attempts > 5


def test_quitting_while_reconnecting_stops_the_redials(bed: ChannelTestbed) -> None:
    c = connect(bed)
    bed.gateway_endpoint.refuse = ConnectionRefusedError()
    tunnel_transport(c.gateway).cut()
    bed.run()
    bed.elapse(2)
    c.client.quit()
    assert result_of(c.done) == 0
    attempts = bed.gateway_endpoint.attempts
    bed.gateway_endpoint.refuse = None
    bed.elapse(30)
    assert bed.gateway_endpoint.attempts == attempts


def test_local_connections_during_a_reconnection_are_closed_at_once(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    bed.gateway_endpoint.refuse = ConnectionRefusedError()
    tunnel_transport(c.gateway).cut()
    bed.run()
    browser, _ = bed.browse(c.client)
    bed.run()
    assert browser.eof or browser.lost is not None
    assert bed.service_endpoint.attempts == 0


def test_a_peer_that_sends_pings_but_never_reads_is_cut_off_at_the_paused_write_limit(
    bed: ChannelTestbed,
) -> None:
    """PONGs for a peer that does not read would pile up without bound; once the
    transport has paused us, writing more than PAUSED_WRITE_LIMIT ends the connection."""
    from gateway._frames import Ping, encode
    from gateway._tunnel import PAUSED_WRITE_LIMIT

    c = connect(bed)
    gateway = c.gateway
    transport = tunnel_transport(gateway)
    gateway.pauseProducing()  # what the transport does when its buffer is full
    pings = encode(Ping(b"12345678")) * 4096
    fed = 0
    while gateway.written_while_paused <= PAUSED_WRITE_LIMIT and fed < 4 * PAUSED_WRITE_LIMIT:
        gateway.dataReceived(pings)
        fed += len(pings)
    bed.run()
    assert not transport.connected
    # The PONGs are the size of the PINGs: what we answered is what it sent, capped.
    assert gateway.written_while_paused <= PAUSED_WRITE_LIMIT + len(pings)


def test_writes_while_paused_are_counted_afresh_after_each_resume(bed: ChannelTestbed) -> None:
    """A peer that does read (the transport resumes us) is never cut off."""
    from gateway._frames import Ping, encode

    c = connect(bed)
    gateway = c.gateway
    gateway.pauseProducing()
    gateway.dataReceived(encode(Ping(b"12345678")) * 10)
    assert gateway.written_while_paused > 0
    gateway.resumeProducing()
    assert gateway.written_while_paused == 0
    assert tunnel_transport(gateway).connected


# -- what reaches the employer and the officer (issue 10 timeline, issue 11 wording) ----------


def test_an_officer_kill_brings_the_officers_note_to_the_client_as_one_clean_line(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    with bed.engine.begin() as conn:
        _sessions.kill_session(
            conn,
            c.session_id,
            note="账号核查中，请致电 0575-1234\x1b[2J\n\u202eevil",
            actor="officer:o",
            now=bed.clock.seconds(),
        )
    bed.elapse(1)
    assert result_of(c.done) == Reason.OFFICER_KILL.exit_code
    line = "会话已被安全管理员终止 / Terminated by a security officer: 账号核查中，请致电 0575-1234 [2J evil"
    assert line + "\n" in c.out
    assert "\x1b" not in c.out and "\u202e" not in c.out


def test_an_officer_kill_without_a_note_prints_the_standard_sentence(bed: ChannelTestbed) -> None:
    c = connect(bed)
    bed.node._end_sessions({c.session_id: _sessions.SessionEnd("officer-kill", " \x07 ")})
    bed.run()
    assert result_of(c.done) == 13
    assert c.out.endswith(Reason.OFFICER_KILL.bilingual + "\n")


def test_each_stream_end_is_an_audit_event_with_service_bytes_duration_and_how(
    bed: ChannelTestbed,
) -> None:
    c = connect(bed)
    browser, _ = bed.browse(c.client)
    browser.transport.write(b"GET / HTTP/1.1\r\n\r\n")  # type: ignore[union-attr]
    browser.transport.loseWriteConnection()  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    bed.elapse(2)
    service.transport.write(b"x" * 5000)  # type: ignore[union-attr]
    service.transport.loseConnection()  # type: ignore[union-attr]
    bed.run()
    second, _ = bed.browse(c.client)
    second.transport.write(b"abc")  # type: ignore[union-attr]
    bed.run()
    c.client.quit()  # the second stream is still open when the session ends
    bed.run()
    ends = bed.audit_events("stream.end")
    assert [(e.reason, e.details["service"], e.details["stream"]) for e in ends] == [
        ("finished", "declare", 1),
        ("session-ended", "declare", 3),
    ]
    first = ends[0]
    assert (first.details["bytes_in"], first.details["bytes_out"]) == (18, 5000)
    assert first.details["duration_ms"] == 2000
    assert (first.actor, first.session_id, first.unit) == (
        f"channel:{ACCOUNT}",
        c.session_id,
        TESTBED_UNIT,
    )
    assert (ends[1].details["bytes_in"], ends[1].details["bytes_out"]) == (3, 0)
    session_end = bed.audit_events("session.end")[-1]
    assert "streams_not_itemised" not in session_end.details


def test_streams_past_the_per_connection_budget_are_counted_on_the_session_end(
    bed: ChannelTestbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import _service

    monkeypatch.setattr(_service, "STREAM_EVENTS_PER_CONNECTION", 1)
    c = connect(bed)
    for payload in (b"a", b"bb", b"ccc"):
        browser, _ = bed.browse(c.client)
        browser.transport.write(payload)  # type: ignore[union-attr]
        bed.run()
        browser.transport.loseConnection()  # type: ignore[union-attr]
        bed.run()
    c.client.quit()
    bed.run()
    assert len(bed.audit_events("stream.end")) == 1
    details = bed.audit_events("session.end")[-1].details
    assert (
        details["streams_not_itemised"],
        details["bytes_in_not_itemised"],
        details["bytes_out_not_itemised"],
    ) == (2, 5, 0)


def test_the_login_event_records_each_factor_and_the_client_certificate(
    bed: ChannelTestbed,
) -> None:
    refused = connect_refused(bed, password="wrong-password")
    assert "A one-time code works only once" in refused.out.getvalue()  # type: ignore[attr-defined]
    c = connect(bed)
    refusal, success = bed.audit_events("login")[-2:]
    assert (refusal.reason, refusal.details["factor_certificate"]) == ("bad-password", "ok")
    assert (refusal.details["factor_password"], refusal.details["factor_code"]) == (
        "wrong",
        "not-checked",
    )
    assert success.session_id == c.session_id
    assert {k: success.details[k] for k in ("factor_password", "factor_code")} == {
        "factor_password": "ok",
        "factor_code": "ok",
    }
    assert success.details["certificate_subject"] == (
        bed.client_certificate.certificate.subject.rfc4514_string()
    )
    # The memory transport is not TLS: the facts are there, and empty, not invented.
    assert (success.details["tls_version"], success.details["tls_cipher"]) == ("", "")


def connect_refused(bed: ChannelTestbed, **kwargs: str) -> ConnectClient:
    client = bed.client(**kwargs)
    done = client.start()
    bed.run()
    assert done.called
    return client


def _lock(bed: ChannelTestbed, **values: object) -> None:
    from sqlalchemy import update

    from auth._schema import credentials

    with bed.engine.begin() as conn:
        conn.execute(update(credentials).where(credentials.c.principal == ACCOUNT).values(**values))


def test_a_locked_account_is_told_for_how_many_minutes(bed: ChannelTestbed) -> None:
    _lock(bed, locked_until_at=bed.clock.seconds() + 601, lock_count=1)
    client = connect_refused(bed)
    out = client.out.getvalue()  # type: ignore[attr-defined]
    assert "请在 11 分钟后再试" in out and "please try again in 11 minutes." in out
    [event] = [e for e in bed.audit_events("login") if e.reason == "locked"]
    assert event.details["retry_after"] == 601


def test_an_account_at_its_hard_cap_is_told_to_call_the_carrier(bed: ChannelTestbed) -> None:
    _lock(bed, hard_locked=True)
    client = connect_refused(bed)
    out = client.out.getvalue()  # type: ignore[attr-defined]
    assert "需由电信运营商解锁" in out and "only the carrier can unlock it" in out
    assert "minute" not in out


def test_a_throttled_source_is_told_for_how_many_minutes(bed: ChannelTestbed) -> None:
    """The per-source throttle says how long its window still runs, like a lock does."""
    from sqlalchemy import insert

    from auth import LockoutPolicy
    from auth._schema import source_failures
    from auth._store import source_key

    policy = LockoutPolicy(source_max_failures=1000)  # the testbed's
    with bed.engine.begin() as conn:
        conn.execute(
            insert(source_failures).values(
                source=source_key(EMPLOYER_ADDRESS.host),
                window_started_at=bed.clock.seconds() - 30,
                failures=policy.source_max_failures,
            )
        )
    client = connect_refused(bed)
    out = client.out.getvalue()  # type: ignore[attr-defined]
    minutes = math.ceil((policy.source_window_seconds - 30) / 60)
    assert f"请在 {minutes} 分钟后再试" in out
    assert "Too many failed logins came from this network address" in out
    [event] = [e for e in bed.audit_events("login") if e.reason == "throttled"]
    assert event.details["retry_after"] == policy.source_window_seconds - 30


def test_a_stream_the_browser_aborts_ends_as_client_cancelled(bed: ChannelTestbed) -> None:
    c = connect(bed)
    browser, _ = bed.browse(c.client)
    browser.transport.write(b"GET")  # type: ignore[union-attr]
    bed.run()
    browser.transport.abortConnection()  # type: ignore[union-attr]
    bed.run()
    [end] = bed.audit_events("stream.end")
    assert (end.reason, end.details["bytes_in"], end.details["bytes_out"]) == (
        "client-cancelled",
        3,
        0,
    )


def test_a_stream_the_service_aborts_ends_as_service_closed(bed: ChannelTestbed) -> None:
    c = connect(bed)
    browser, _ = bed.browse(c.client)
    browser.transport.write(b"GET")  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    service.transport.write(b"HTTP/1.1 500")  # type: ignore[union-attr]
    bed.run()
    service.transport.abortConnection()  # type: ignore[union-attr]
    bed.run()
    [end] = bed.audit_events("stream.end")
    assert (end.reason, end.details["bytes_in"], end.details["bytes_out"]) == (
        "service-closed",
        3,
        12,
    )
