"""The fakes of :mod:`gateway.testing` against the interfaces and behaviour they imitate.

The relay and memory tests are only as good as these fakes: the transports must
push back on producers, half-close and fail to close exactly where Twisted's TCP
transports (``twisted.internet.abstract.FileDescriptor``, ``tcp.Connection``) do.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    ISSLTransport,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from auth import Runner
from certs import CertificateAuthority
from gateway._tls import peer_certificate
from gateway.testing import (
    BUFFER_SIZE,
    READ_SIZE,
    MemoryEndpoint,
    MemoryNetwork,
    MemoryTLSTransport,
    MemoryTransport,
    RecordingProtocol,
    SynchronousRunner,
)

A = IPv4Address("TCP", "127.0.0.1", 1000)
B = IPv4Address("TCP", "127.0.0.1", 2000)


def pair(
    client: Protocol | None = None, server: Protocol | None = None
) -> tuple[MemoryNetwork, RecordingProtocol, RecordingProtocol]:
    network = MemoryNetwork()
    left = client or RecordingProtocol()
    right = server or RecordingProtocol()
    network.connect(left, right, client_address=A, server_address=B)
    assert isinstance(left, RecordingProtocol) and isinstance(right, RecordingProtocol)
    return network, left, right


def end(protocol: Protocol) -> MemoryTransport:
    assert isinstance(protocol.transport, MemoryTransport)
    return protocol.transport


@implementer(IPushProducer)
class Producer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


# -- interfaces --------------------------------------------------------------------------


def test_the_fakes_provide_the_interfaces_they_stand_in_for() -> None:
    network, left, _ = pair()
    transport = end(left)
    for interface in (ITCPTransport, IConsumer, IPushProducer):
        assert verifyObject(interface, transport)
    assert verifyObject(IHalfCloseableProtocol, left)
    endpoint = MemoryEndpoint(network, Factory.forProtocol(RecordingProtocol))
    assert verifyObject(IStreamClientEndpoint, endpoint)

    now = datetime.now(UTC)
    ca = CertificateAuthority.create("test CA", now=now)
    cert = ca.issue_client("33068212345678@sxlss", now=now).certificate
    tls = MemoryTLSTransport(network, RecordingProtocol(), host=A, peer=B, peer_certificate=cert)
    assert verifyObject(ISSLTransport, tls)
    assert peer_certificate(tls) == cert  # what the gateway reads in handshakeCompleted


def test_the_synchronous_runner_matches_the_blocking_runner_protocol() -> None:
    for name in ("run", "call"):
        fake = inspect.signature(getattr(SynchronousRunner, name))
        real = inspect.signature(getattr(Runner, name))
        assert fake == real, name
    runner: Runner = SynchronousRunner(None)
    assert runner is not None  # and mypy checks the assignment in auth/testing.py


# -- the runner ------------------------------------------------------------------------


def test_run_is_one_transaction_that_rolls_back_and_errbacks_on_an_error(
    sqlite_engine: Engine,
) -> None:
    with sqlite_engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
    runner = SynchronousRunner(sqlite_engine)

    def insert(conn: Connection, v: int, *, fail: bool = False) -> int:
        conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": v})
        if fail:
            raise ValueError("boom")
        return v

    results: list[object] = []
    runner.run(insert, 1).addCallback(results.append)
    runner.run(insert, 2, fail=True).addErrback(lambda f: results.append(f.type))
    runner.call(lambda x: x * 2, 21).addCallback(results.append)
    assert results == [1, ValueError, 42]
    with sqlite_engine.begin() as conn:
        assert conn.execute(text("SELECT v FROM t")).scalars().all() == [1]


def test_a_held_runner_runs_nothing_until_released_then_runs_in_order(
    sqlite_engine: Engine,
) -> None:
    runner = SynchronousRunner(sqlite_engine)
    runner.hold()
    order: list[int] = []
    d1 = runner.call(order.append, 1)
    d2 = runner.call(order.append, 2)
    assert (order, d1.called, d2.called, len(runner.held)) == ([], False, False, 2)
    runner.release()
    assert order == [1, 2] and d1.called and d2.called and len(runner.held) == 0


# -- transports ------------------------------------------------------------------------


def test_bytes_move_only_when_stepped_and_at_most_one_read_per_data_received() -> None:
    network, left, right = pair()
    seen: list[int] = []
    right.dataReceived = lambda data: seen.append(len(data))  # type: ignore[method-assign]
    end(left).write(b"x" * (2 * READ_SIZE + 1))
    assert seen == []
    network.step()
    assert seen == [READ_SIZE, READ_SIZE, 1]


def test_a_read_limit_makes_a_slow_reader() -> None:
    network, left, right = pair()
    end(right).read_limit = 100
    end(left).write(b"x" * 250)
    network.step()
    assert right.count == 100 and len(end(left).buffer) == 150
    network.run()
    assert right.count == 250


def test_a_full_write_buffer_pauses_a_streaming_producer_until_it_has_drained() -> None:
    network, left, right = pair()
    producer = Producer()
    end(left).registerProducer(producer, True)
    end(left).write(b"x" * BUFFER_SIZE)
    assert producer.calls == []  # not over the threshold yet
    end(left).write(b"x")
    assert producer.calls == ["pause"]
    end(right).read_limit = 1000
    network.step()
    assert producer.calls == ["pause"]  # partly drained is not drained
    end(right).read_limit = None
    network.step()
    assert producer.calls == ["pause", "resume"]


def test_pausing_a_transport_stops_delivery_to_its_protocol() -> None:
    network, left, right = pair()
    end(right).pauseProducing()
    end(left).write(b"hello")
    network.run()
    assert right.count == 0
    end(right).resumeProducing()
    network.run()
    assert bytes(right.received) == b"hello"


def test_half_close_delivers_eof_and_leaves_the_connection_open_until_lose_connection() -> None:
    network, left, right = pair()
    end(left).write(b"last")
    end(left).loseWriteConnection()
    network.run()
    assert bytes(right.received) == b"last" and right.eof and left.write_closed
    assert right.lost is None and left.lost is None  # Twisted closes nothing by itself
    end(right).write(b"reply")
    network.run()
    assert bytes(left.received) == b"reply"
    end(right).loseWriteConnection()
    network.run()
    assert left.eof and left.lost is None
    end(left).loseConnection()  # write side already closed: at once, as in Twisted
    assert left.lost is not None and left.lost.check(ConnectionDone)


def test_lose_connection_never_completes_while_a_paused_producer_is_registered() -> None:
    network, left, _ = pair()
    producer = Producer()
    end(left).registerProducer(producer, True)
    end(left).write(b"x" * (BUFFER_SIZE + 1))
    end(left).loseConnection()
    network.run()
    # FileDescriptor.doWrite resumes the paused producer instead of closing.
    assert producer.calls == ["pause", "resume"] and left.lost is None
    end(left).unregisterProducer()
    network.run()
    assert left.lost is not None and left.lost.check(ConnectionDone)


def test_a_protocol_that_cannot_half_close_sees_eof_as_the_end() -> None:
    class Plain(Protocol):
        lost: Failure | None = None

        def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
            self.lost = reason

    network = MemoryNetwork()
    plain, half = Plain(), RecordingProtocol()
    network.connect(half, plain, client_address=A, server_address=B)
    end(half).loseWriteConnection()
    network.run()
    assert plain.lost is not None and plain.lost.check(ConnectionDone)


def test_abort_and_network_failure_end_both_sides_on_the_next_step() -> None:
    network, left, right = pair()
    end(left).write(b"lost in flight")
    end(left).abortConnection()
    assert left.lost is None  # Twisted reports it on the next reactor turn
    network.run()
    assert left.lost is not None and left.lost.check(ConnectionAborted)
    assert right.lost is not None and right.lost.check(ConnectionLost)
    assert right.count == 0

    network, left, right = pair()
    end(left).cut()
    network.run()
    assert left.lost is not None and left.lost.check(ConnectionLost)
    assert right.lost is not None and right.lost.check(ConnectionLost)


def test_a_vanished_end_is_never_noticed_by_the_other() -> None:
    network, left, right = pair()
    end(left).vanish()
    network.run()
    end(right).write(b"into the void")
    network.run()
    assert left.lost is not None and right.lost is None and end(right).connected


def test_writing_to_a_closed_peer_resets_the_connection() -> None:
    network, left, right = pair()
    end(right).loseConnection()
    network.run()
    assert left.eof
    end(left).write(b"too late")
    network.run()
    assert left.lost is not None and left.lost.check(ConnectionLost)


# -- endpoints -------------------------------------------------------------------------


def test_an_endpoint_connects_at_once_or_when_released_or_refuses() -> None:
    network = MemoryNetwork()
    servers: list[RecordingProtocol] = []

    def server() -> RecordingProtocol:
        servers.append(RecordingProtocol())
        return servers[-1]

    endpoint = MemoryEndpoint(network, Factory.forProtocol(server))
    got: list[object] = []
    endpoint.connect(Factory.forProtocol(RecordingProtocol)).addCallback(got.append)
    assert len(got) == 1 and len(servers) == 1 and endpoint.attempts == 1

    endpoint.hold = True
    held = endpoint.connect(Factory.forProtocol(RecordingProtocol))
    cancelled = endpoint.connect(Factory.forProtocol(RecordingProtocol))
    assert endpoint.pending == 2
    cancelled.cancel()
    assert endpoint.pending == 1
    cancelled.addErrback(lambda f: got.append(f.type))
    assert got[-1] is CancelledError
    endpoint.release()
    assert held.called and len(servers) == 2

    endpoint.refuse = ConnectionLost()
    refused: Deferred[object] = endpoint.connect(Factory.forProtocol(RecordingProtocol))
    failures: list[Failure] = []
    refused.addErrback(failures.append)
    assert failures[0].check(ConnectionLost)


def test_high_water_records_the_most_a_transport_ever_held() -> None:
    network, left, _ = pair()
    end(left).write(b"x" * 10)
    end(left).write(b"x" * 5)
    network.run()
    end(left).write(b"x")
    assert end(left).high_water == 15
