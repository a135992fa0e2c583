"""The syslog forwarder of ``ssgate serve`` on a memory clock, against a collector
whose connections are in-memory transports: every audit record arrives in order,
nothing is lost while the collector is down (issue 12, acceptance 1, with the 60 s on
the memory clock), a broken connection resends from the last record known delivered,
back-pressure stops reading, one node at a time forwards, and an outage is logged
once, then once a minute, then when it ends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

import audit
from auth.testing import SynchronousRunner
from ssgate._config import SyslogCollector, SyslogConfig
from ssgate._db import make_engine
from ssgate._syslog import CONFIRM_SECONDS, LEASE_SECONDS, forwarders, syslog_service

T0 = 1_767_225_600.0
SEQ = re.compile(rb' seq="(\d+)"')


@implementer(IStreamClientEndpoint)
class FakeCollector:
    """An endpoint whose connections are StringTransports; refuses while down."""

    def __init__(self) -> None:
        self.up = True
        self.connections: list[tuple[Protocol, StringTransport]] = []

    def connect(self, factory: Factory) -> Deferred[Protocol]:  # type: ignore[type-arg]
        if not self.up:
            return fail(ConnectionRefusedError("collector down"))
        protocol = factory.buildProtocol(None)  # type: ignore[arg-type]
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return succeed(protocol)

    def received(self) -> list[bytes]:
        """Every message any connection carried, in order."""
        return [m for messages in self.per_connection() for m in messages]

    def per_connection(self) -> list[list[bytes]]:
        found = []
        for _, transport in self.connections:
            decoder = audit.OctetCountingDecoder()
            found.append(decoder.feed(transport.value()))
            assert decoder.buffered == 0
        return found

    def seqs(self) -> list[int]:
        return [seq_of(message) for message in self.received()]

    def go_down(self) -> None:
        self.up = False
        protocol, transport = self.connections[-1]
        if not transport.disconnecting:
            protocol.connectionLost(Failure(ConnectionLost("collector stopped")))


def seq_of(message: bytes) -> int:
    m = SEQ.search(message)
    assert m is not None, message
    return int(m.group(1))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/syslog.db")
    audit.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith("ssgate._syslog"):
            events.append(event)

    globalLogPublisher.addObserver(keep)
    yield events
    globalLogPublisher.removeObserver(keep)


def record(engine: Engine, n: int, *, at: float, start: int = 0) -> None:
    with engine.begin() as conn:
        for i in range(n):
            audit.append(
                conn,
                audit.AuditEvent(
                    at=at,
                    actor="channel:33068212345678@sxlss",
                    action="login",
                    subject="33068212345678@sxlss",
                    outcome="ok",
                    details={"n": start + i},
                ),
            )


def pump(clock: MemoryReactorClock, seconds: float) -> None:
    """Let *seconds* pass one tick (1 s) at a time: a LoopingCall skips the ticks a
    single big advance jumps over."""
    for _ in range(int(seconds)):
        clock.advance(1)


def config(**kwargs: Any) -> SyslogConfig:
    collector = SyslogCollector(address="collector:514", host="collector", port=514, tls=False)
    return SyslogConfig(hostname="gw1", collectors=(collector,), **kwargs)


def start(
    engine: Engine, clock: MemoryReactorClock, collector: FakeCollector, node: str = "gw1:1"
) -> Any:
    service = syslog_service(
        SynchronousRunner(engine),
        clock,
        config(batch=100),
        state_path=Path("/nonexistent"),
        node=node,
        endpoints=lambda c: collector,
    )
    service.startService()
    return service


def test_collector_down_60_s_while_1000_events_happen_then_every_event_arrives_in_order(
    engine: Engine, logged: list[dict[str, Any]]
) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    collector = FakeCollector()
    service = start(engine, clock, collector)
    record(engine, 5, at=T0)
    pump(clock, CONFIRM_SECONDS + 1)
    assert collector.seqs() == [1, 2, 3, 4, 5]

    collector.go_down()
    for second in range(60):  # 1,000 events over the minute the collector is down
        record(engine, 17 if second < 40 else 16, at=T0 + second, start=second * 17)
        pump(clock, 1)
    assert collector.seqs()[-1] == 5
    collector.up = True
    for _ in range(40):  # the back-off is at most 30 s
        pump(clock, 1)
    for messages in collector.per_connection():  # each connection: in order, no gap
        seqs = [seq_of(m) for m in messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
    distinct = list(dict.fromkeys(collector.seqs()))
    assert distinct == list(range(1, 1006))
    assert len(distinct[5:]) == 1000
    [forwarder] = forwarders(service)
    assert forwarder.delivered == 1005  # confirmed and stored

    down = [e for e in logged if "unreachable (" in e["log_format"]]
    summaries = [e for e in logged if "still unreachable" in e["log_format"]]
    back = [e for e in logged if "reachable again" in e["log_format"]]
    assert len(down) == 1 and down[0]["collector"] == "collector:514"
    assert len(summaries) == 1  # one a minute, not one per attempt
    assert len(back) == 1 and back[0]["waiting"] == 1000
    service.stopService()


def test_a_connection_broken_before_confirmation_resends_from_the_cursor(
    engine: Engine,
) -> None:
    """Written but not confirmed (the connection broke within CONFIRM_SECONDS): sent
    again on the next connection, so the receiver sees repeats, never a gap."""
    clock = MemoryReactorClock()
    clock.advance(T0)
    collector = FakeCollector()
    service = start(engine, clock, collector)
    record(engine, 3, at=T0)
    pump(clock, CONFIRM_SECONDS + 1)  # written, then confirmed
    record(engine, 3, at=T0, start=3)
    pump(clock, 1)  # 4..6 written, not yet confirmed
    assert collector.seqs() == [1, 2, 3, 4, 5, 6]
    protocol, _ = collector.connections[-1]
    protocol.connectionLost(Failure(ConnectionLost("reset by peer")))
    pump(clock, 2)  # the retry after the first back-off
    assert collector.seqs() == [1, 2, 3, 4, 5, 6, 4, 5, 6]
    with engine.begin() as conn:
        assert audit.get_syslog_cursors(conn) == {"collector:514": 3}
    pump(clock, CONFIRM_SECONDS + 1)
    with engine.begin() as conn:
        assert audit.get_syslog_cursors(conn) == {"collector:514": 6}
    service.stopService()


def test_a_paused_transport_stops_the_reading_until_it_resumes(engine: Engine) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    collector = FakeCollector()
    service = start(engine, clock, collector)
    pump(clock, 1)
    _, transport = collector.connections[-1]
    transport.producer.pauseProducing()
    record(engine, 250, at=T0)
    pump(clock, 5)
    assert collector.seqs() == []
    transport.producer.resumeProducing()
    pump(clock, 1)
    assert collector.seqs() == list(range(1, 251))
    service.stopService()


def test_one_node_forwards_and_another_takes_over_when_it_stops(engine: Engine) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    first, second = FakeCollector(), FakeCollector()
    a = start(engine, clock, first, node="gw1:1")
    b = start(engine, clock, second, node="gw2:1")
    record(engine, 4, at=T0)
    pump(clock, CONFIRM_SECONDS + 1)
    assert first.seqs() == [1, 2, 3, 4] and second.connections == []
    a.stopService()  # frees the lease
    record(engine, 2, at=T0, start=4)
    pump(clock, 1)
    assert second.seqs() == [5, 6]  # from the cursor: nothing twice, nothing lost
    b.stopService()


def test_a_node_that_died_loses_its_lease_after_it_runs_out(engine: Engine) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    with engine.begin() as conn:
        held = audit.claim_syslog_lease(
            conn, "collector:514", holder="dead:1", now=T0, lease_seconds=LEASE_SECONDS
        )
    assert held.held
    collector = FakeCollector()
    service = start(engine, clock, collector)
    record(engine, 2, at=T0)
    pump(clock, LEASE_SECONDS - 1)
    assert collector.connections == []
    pump(clock, 2)
    assert collector.seqs() == [1, 2]
    service.stopService()


def test_the_messages_are_rfc_5424_with_the_seq_as_structured_data(engine: Engine) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    collector = FakeCollector()
    service = start(engine, clock, collector)
    record(engine, 1, at=T0)
    pump(clock, 1)
    [message] = collector.received()
    assert message.startswith(b"<110>1 2026-01-01T00:00:00.000000Z gw1 ssgate - login ")
    assert b'[ssgate@32473 seq="1" ' in message
    assert not message.endswith(b"\n")  # octet counting: no trailer
    service.stopService()


class FakeRelpServer:
    """Answers a RELP connection held in a StringTransport: the open, then
    acknowledgements of the syslog transactions the test chooses."""

    def __init__(self, protocol: Protocol, transport: StringTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.parser = audit.RelpFrameParser()
        self.frames: list[audit.RelpFrame] = []

    def read(self) -> list[audit.RelpFrame]:
        new = self.parser.feed(self.transport.value())
        self.transport.clear()
        self.frames += new
        return new

    def answer(self, txnr: int, data: bytes = b"200 OK") -> None:
        self.protocol.dataReceived(audit.RelpFrame(txnr, "rsp", data).encode())


def start_relp(engine: Engine, clock: MemoryReactorClock, collector: FakeCollector) -> Any:
    relp = SyslogCollector(
        address="collector:2514", host="collector", port=2514, tls=False, protocol="relp"
    )
    service = syslog_service(
        SynchronousRunner(engine),
        clock,
        SyslogConfig(hostname="gw1", batch=100, collectors=(relp,)),
        state_path=Path("/nonexistent"),
        node="gw1:1",
        endpoints=lambda c: collector,
    )
    service.startService()
    return service


def test_relp_moves_the_cursor_on_acknowledgements_and_resends_only_the_rest(
    engine: Engine,
) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    collector = FakeCollector()
    record(engine, 5, at=T0)
    service = start_relp(engine, clock, collector)
    server = FakeRelpServer(*collector.connections[-1])
    [opening] = server.read()
    assert opening.command == "open" and b"commands=syslog" in opening.data
    server.answer(opening.txnr, b"200 OK\nrelp_version=0\ncommands=syslog")
    clock.advance(1)
    sent = server.read()
    assert [seq_of(f.data) for f in sent] == [1, 2, 3, 4, 5]
    server.answer(sent[0].txnr)
    server.answer(sent[1].txnr)  # 1 and 2 acknowledged, 3 to 5 not
    clock.advance(1)
    [forwarder] = forwarders(service)
    assert forwarder.delivered == 2  # at once: no grace period as with plain syslog

    server.protocol.connectionLost(Failure(ConnectionLost("reset")))
    clock.advance(1)
    again = FakeRelpServer(*collector.connections[-1])
    [opening] = again.read()
    again.answer(opening.txnr)
    clock.advance(1)
    assert [seq_of(f.data) for f in again.read()] == [3, 4, 5]
    service.stopService()


def test_relp_keeps_within_the_window(engine: Engine) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    collector = FakeCollector()
    record(engine, 300, at=T0)
    service = start_relp(engine, clock, collector)
    server = FakeRelpServer(*collector.connections[-1])
    [opening] = server.read()
    server.answer(opening.txnr)
    pump(clock, 3)
    sent = server.read()
    assert len(sent) == audit.RELP_WINDOW  # nothing more until acknowledged
    for frame in sent:
        server.answer(frame.txnr)  # the window opens: the forwarder sends at once
    assert [seq_of(f.data) for f in server.read()][:1] == [audit.RELP_WINDOW + 1]
    service.stopService()
