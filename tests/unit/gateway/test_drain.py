"""Draining a gateway node (issue 13): MOVE hands each session to another node.

Deterministic: the machines on their own, then ``ssgate connect`` against two gateway
nodes of the in-memory testbed (one database, one resume key, as two ``ssgate serve``
behind a balancer): stopping node A moves the client to node B with the same session
and no new code, lets A's open streams finish within ``drain_seconds``, and never
records the moved session as ended.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import Engine
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ServerFactory

from gateway._client import MAX_PARKED
from gateway._frames import AuthOk, HelloOk, Move, encode
from gateway._machine import (
    AuthAccepted,
    ClientMachine,
    GatewayMachine,
    MachineUsageError,
    MoveRequested,
    SessionClosed,
    State,
)
from gateway._reasons import Reason
from gateway._service import GatewayNode, GatewayTunnel
from gateway.testing import (
    EMPLOYER_ADDRESS,
    GATEWAY_ADDRESS,
    ChannelTestbed,
    MemoryEndpoint,
)

TOKEN = b"v1.token"


def pump(a: ClientMachine | GatewayMachine, b: ClientMachine | GatewayMachine) -> list[object]:
    return list(b.receive(b"".join(a.data_to_send())))


def logged_in(client_versions: tuple[int, int] = (1, 3)) -> tuple[ClientMachine, GatewayMachine]:
    client, gateway = ClientMachine(versions=client_versions), GatewayMachine()
    client.authenticate("a@sxlss", "pw", "123456")
    pump(client, gateway)
    gateway.accept_auth(session_id="s1", account="a@sxlss", unit_code="u", resume_token=TOKEN)
    events = pump(gateway, client)
    assert isinstance(events[-1], AuthAccepted)
    return client, gateway


# -- the machines ---------------------------------------------------------------------------


def test_move_reaches_a_version_3_client_with_its_token_and_ends_nothing() -> None:
    client, gateway = logged_in()
    sid = client.open_stream("declare")
    pump(client, gateway)
    assert gateway.move(b"v1.fresh", 30) is True and gateway.moved
    assert pump(gateway, client) == [MoveRequested(b"v1.fresh", 30)]
    assert client.moving and client.state is State.OPEN and gateway.state is State.OPEN
    # The open stream goes on; no new one may be opened on the moved connection.
    assert client.send_data(sid, b"more") == 4
    with pytest.raises(MachineUsageError):
        client.open_stream("declare")


def test_a_version_2_client_is_not_sent_move_so_the_node_ends_it_as_before() -> None:
    _client, gateway = logged_in(client_versions=(1, 2))
    assert gateway.move(b"v1.fresh", 30) is False
    assert gateway.data_to_send() == [] and not gateway.moved


def test_move_is_only_for_an_open_session() -> None:
    gateway = GatewayMachine()
    assert gateway.move(b"v1.fresh", 30) is False
    assert gateway.data_to_send() == []


def test_move_below_version_3_is_a_protocol_error_for_the_client() -> None:
    client = ClientMachine(versions=(1, 2))
    client.authenticate("a@sxlss", "pw", "123456")
    events = client.receive(
        encode(HelloOk(2, "g"))
        + encode(AuthOk("s1", "a@sxlss", "u", TOKEN, 0, 0))
        + encode(Move(b"v1.fresh", 30))
    )
    closed = events[-1]
    assert isinstance(closed, SessionClosed) and closed.reason is Reason.PROTOCOL_ERROR
    assert "MOVE is not part of protocol version 2" in closed.message


def test_a_second_move_is_a_protocol_error() -> None:
    client, _gateway = logged_in()
    events = client.receive(encode(Move(b"a", 1)) + encode(Move(b"b", 1)))
    closed = events[-1]
    assert isinstance(closed, SessionClosed) and closed.reason is Reason.PROTOCOL_ERROR


def test_the_gateway_refuses_a_move_from_a_client() -> None:
    _client, gateway = logged_in()
    events = gateway.receive(encode(Move(b"a", 1)))
    closed = events[-1]
    assert isinstance(closed, SessionClosed) and closed.reason is Reason.PROTOCOL_ERROR


# -- two nodes and ``ssgate connect`` ----------------------------------------------------


@pytest.fixture
def bed(sqlite_engine: Engine) -> ChannelTestbed:
    return ChannelTestbed(sqlite_engine)


class TwoNodes:
    """Node A is the testbed's; node B shares its database and keys.  Redirecting
    ``bed.gateway_endpoint`` is what the balancer does once A stopped listening."""

    def __init__(self, bed: ChannelTestbed, drain_seconds: float = 30.0) -> None:
        self.bed = bed
        self.a = bed.node
        self.a.drain_seconds = drain_seconds
        self.ctx_b = dataclasses.replace(bed.ctx, node="gw-b", live={}, unwritten={})
        self.b = GatewayNode(self.ctx_b)
        self.b.startService()
        self.endpoint_a = bed.gateway_endpoint
        self.endpoint_b = MemoryEndpoint(
            bed.network,
            ServerFactory.forProtocol(lambda: GatewayTunnel(self.ctx_b)),
            client_address=EMPLOYER_ADDRESS,
            server_address=GATEWAY_ADDRESS,
            client_certificate=bed.client_certificate.certificate,
        )

    def stop_a(self) -> Deferred[None]:
        self.bed.gateway_endpoint = self.endpoint_b  # A no longer listens
        return self.a.stopService()


def start_client(bed: ChannelTestbed) -> tuple[object, Deferred[int], str]:
    client = bed.client()
    done = client.start()
    bed.run()
    assert client.session_id is not None, client.out.getvalue()  # type: ignore[attr-defined]
    return client, done, client.session_id


def test_stopping_a_node_moves_the_client_to_another_node_in_the_same_session(
    bed: ChannelTestbed,
) -> None:
    """No new code, the same session id, live on node B; A records no session end."""
    nodes = TwoNodes(bed)
    client, done, session_id = start_client(bed)
    stopped = nodes.stop_a()
    bed.run()
    assert stopped.called, "A had no open stream: it exits at once"
    assert not done.called
    out = client.out.getvalue()  # type: ignore[attr-defined]
    assert "moving the session to another node" in out
    assert f"reconnected, same session {session_id}" in out
    record = bed.session(session_id)
    assert record is not None
    assert (record.status, record.node, record.end_reason) == ("live", "gw-b", None)
    assert session_id in nodes.ctx_b.live
    assert bed.audit_events("session.end") == []
    [moved] = bed.audit_events("session.move")
    assert moved.session_id == session_id and moved.reason == "gateway-drain"
    # The resume went through B with the token MOVE carried; the old login stays one.
    assert len(bed.audit_events("login")) == 1
    assert len(bed.audit_events("login.resume")) == 1
    # And the session works there: a new browser connection reaches the service via B.
    browser, _ = bed.browse(client)  # type: ignore[arg-type]
    browser.transport.write(b"after the move")  # type: ignore[union-attr]
    bed.run()
    assert bytes(bed.services[-1].received) == b"after the move"
    assert bed.services[-1].identity is not None
    assert bed.services[-1].identity.session_id == session_id


def test_an_open_stream_finishes_on_the_draining_node_before_it_exits(
    bed: ChannelTestbed,
) -> None:
    """The stream open on A when it drains goes on there until it ends; A's stop waits
    for it (not for drain_seconds), and the connection's end is not the session's."""
    nodes = TwoNodes(bed)
    client, done, session_id = start_client(bed)
    browser, _ = bed.browse(client)  # type: ignore[arg-type]
    browser.transport.write(b"POST half")  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    stopped = nodes.stop_a()
    bed.elapse(5)
    assert not stopped.called, "the stream is still open on A"
    browser.transport.write(b" and the rest")  # type: ignore[union-attr]
    browser.transport.loseWriteConnection()  # type: ignore[union-attr]
    bed.run()
    assert bytes(service.received) == b"POST half and the rest" and service.eof
    service.transport.write(b"201 Created")  # type: ignore[union-attr]
    service.transport.loseConnection()  # type: ignore[union-attr]
    bed.run()
    assert bytes(browser.received) == b"201 Created"
    bed.run()
    assert stopped.called and not done.called
    record = bed.session(session_id)
    assert record is not None and (record.status, record.node) == ("live", "gw-b")
    assert bed.audit_events("session.end") == []
    assert [e.reason for e in bed.audit_events("stream.end")] == ["finished"]


def test_a_stream_still_open_at_the_drain_deadline_is_cut_but_the_session_lives_on(
    bed: ChannelTestbed,
) -> None:
    nodes = TwoNodes(bed, drain_seconds=10)
    client, done, session_id = start_client(bed)
    browser, _ = bed.browse(client)  # type: ignore[arg-type]
    browser.transport.write(b"a long download")  # type: ignore[union-attr]
    bed.run()
    stopped = nodes.stop_a()
    bed.elapse(9)
    assert not stopped.called
    bed.elapse(2)
    assert stopped.called
    assert browser.lost is not None  # cut (RST), not passed off as complete
    assert not done.called  # the client goes on: its session is on B
    record = bed.session(session_id)
    assert record is not None and (record.status, record.node) == ("live", "gw-b")
    assert bed.audit_events("session.end") == []


def test_local_connections_made_while_the_session_moves_wait_for_it(
    bed: ChannelTestbed,
) -> None:
    """Between MOVE and the resume on B a browser connection is held (not read, not
    refused) and carried over B once the session is back."""
    nodes = TwoNodes(bed)
    client, done, _session_id = start_client(bed)
    nodes.endpoint_b.hold = True  # B's connection stays pending until released
    nodes.stop_a()
    bed.run()
    browser, local_end = bed.browse(client)  # type: ignore[arg-type]
    browser.transport.write(b"GET /")  # type: ignore[union-attr]
    bed.run()
    assert local_end.connected and bed.services == []
    # The old connection closed before the session was back: a detach, not an end.
    [detach] = bed.audit_events("session.detach")
    assert detach.reason == "gateway-drain" and bed.audit_events("session.end") == []
    nodes.endpoint_b.release()
    bed.run()
    assert bytes(bed.services[-1].received) == b"GET /"
    assert not done.called


def test_at_most_max_parked_local_connections_wait_while_the_session_moves(
    bed: ChannelTestbed,
) -> None:
    """The held connections are bounded: one past MAX_PARKED is closed at once."""
    nodes = TwoNodes(bed)
    client, _done, _session_id = start_client(bed)
    nodes.endpoint_b.hold = True
    nodes.stop_a()
    bed.run()
    ends = [bed.browse(client)[1] for _ in range(MAX_PARKED + 1)]  # type: ignore[arg-type]
    bed.run()
    assert [end.connected for end in ends] == [True] * MAX_PARKED + [False]
    nodes.endpoint_b.release()
    bed.run()
    assert len(bed.services) == MAX_PARKED  # each carried over B once it was back
