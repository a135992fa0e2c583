"""A gateway near its open-files limit refuses new connections with ``gateway-full``.

:class:`gateway._limits.DescriptorBudget` decides (pure: a fake counter and clock);
the node's accepting factory answers a refused connection with GOAWAY(``gateway-full``)
after the TLS handshake, logs it with its reason code at a readable rate and counts it,
while the sessions already open go on.  The client prints the sentence and exits with
the reason's status.  In memory, on :class:`gateway.testing.ChannelTestbed`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, cast

import pytest
from sqlalchemy import Engine
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher

from gateway._full import GOAWAY_GATEWAY_FULL, GatewayFullRefusal
from gateway._limits import DescriptorBudget, count_open_descriptors, default_reserve
from gateway._reasons import Reason
from gateway._service import GatewayTunnel, NoObserver, _AdmittingFactory
from gateway.testing import (
    EMPLOYER_ADDRESS,
    GATEWAY_ADDRESS,
    ChannelTestbed,
    MemoryEndpoint,
    RecordingProtocol,
)

# -- the budget -------------------------------------------------------------------------


class Counter:
    def __init__(self, value: int) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.value


def test_the_budget_admits_below_limit_minus_reserve_and_refuses_at_it() -> None:
    open_now = Counter(80)
    budget = DescriptorBudget(100, reserve=10, count_open=open_now, clock=lambda: 0.0)
    assert budget.threshold == 90
    admitted = 0
    while budget.admit():
        admitted += 1
        open_now.value += 1  # each admitted connection holds a descriptor
    assert open_now.value == 90  # at limit - reserve: the next one is refused
    assert admitted == 10 and budget.refused == 1


def test_the_budget_counts_near_the_limit_at_every_admission_and_rarely_far_from_it() -> None:
    open_now = Counter(10)
    now = [0.0]
    budget = DescriptorBudget(10_000, reserve=100, count_open=open_now, clock=lambda: now[0])
    for _ in range(64):
        assert budget.admit()
    assert open_now.calls == 2  # the first admission, then after recount_every
    now[0] += DescriptorBudget.recount_after
    budget.admit()
    assert open_now.calls == 3  # and once a second
    open_now.value = 9_850  # within two reserves of the limit
    now[0] += DescriptorBudget.recount_after
    budget.admit()
    before = open_now.calls
    budget.admit()
    budget.admit()
    assert open_now.calls == before + 2


def test_the_budget_follows_the_process_limit_when_none_is_given() -> None:
    limit = [1000]
    open_now = Counter(900)
    budget = DescriptorBudget(count_open=open_now, read_limit=lambda: limit[0], clock=lambda: 0.0)
    assert budget.reserve == default_reserve(1000) == 62
    assert budget.admit()
    limit[0] = 920  # an operator lowered it (prlimit) on the running process
    assert not budget.admit()


def test_an_unlimited_process_or_an_uncountable_one_admits_everything() -> None:
    unlimited = DescriptorBudget(-1, reserve=0, count_open=Counter(10**9), clock=lambda: 0.0)
    assert all(unlimited.admit() for _ in range(100))
    blind = DescriptorBudget(100, reserve=10, count_open=Counter(-1), clock=lambda: 0.0)
    assert all(blind.admit() for _ in range(100))


def test_the_reserve_is_a_small_part_of_a_large_limit_and_at_least_32() -> None:
    assert default_reserve(256) == 32
    assert default_reserve(65_536) == 1024
    assert default_reserve(1 << 20) == 1024


def test_this_process_can_count_its_descriptors() -> None:
    assert count_open_descriptors() > 2


# -- the node's answer --------------------------------------------------------------------


class CountingObserver(NoObserver):
    def __init__(self) -> None:
        self.refused: list[str] = []

    def connection_refused(self, reason: str) -> None:
        self.refused.append(reason)


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    events: list[LogEvent] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observer)


class FullBed:
    """The testbed, with a second gateway listener behind the admitting factory."""

    def __init__(self, engine: Engine) -> None:
        self.bed = ChannelTestbed(engine)
        self.observer = CountingObserver()
        self.bed.ctx.observer = self.observer
        self.open_now = Counter(0)
        self.budget = DescriptorBudget(
            1000, reserve=100, count_open=self.open_now, clock=self.bed.clock.seconds
        )
        self.factory = _AdmittingFactory(self.bed.ctx, self.budget)
        self.endpoint = MemoryEndpoint(
            self.bed.network,
            self.factory,
            client_address=EMPLOYER_ADDRESS,
            server_address=GATEWAY_ADDRESS,
            client_certificate=self.bed.client_certificate.certificate,
        )

    def client(self) -> Any:
        client = self.bed.client()
        client._endpoint_for = lambda: self.endpoint
        return client


@pytest.fixture
def full(sqlite_engine: Engine) -> FullBed:
    return FullBed(sqlite_engine)


def result_of(d: Any) -> int:
    box: list[int] = []
    d.addCallback(box.append)
    assert box, "the client has not finished"
    return box[0]


def test_below_the_limit_the_factory_serves_tunnels(full: FullBed) -> None:
    client = full.client()
    client.start()
    full.bed.run()
    assert client.tunnel is not None and client.tunnel.open
    [(_, server_end)] = full.endpoint.connections
    assert isinstance(server_end.protocol, GatewayTunnel)
    assert full.observer.refused == []


def test_near_the_limit_a_client_is_told_gateway_full_and_exits_with_its_status(
    full: FullBed, logged: list[LogEvent]
) -> None:
    """Accepted, TLS completed, GOAWAY(gateway-full) in place of HELLO_OK: the client
    prints the sentence in both languages and exits 28; the refusal is logged with its
    reason code and counted; no session or audit record is made."""
    live = full.client()
    live_done = live.start()
    full.bed.run()
    assert live.tunnel is not None and live.tunnel.open

    full.open_now.value = 950  # past limit - reserve
    full.bed.clock.advance(DescriptorBudget.recount_after)  # counted again by then
    late = full.client()
    out = io.StringIO()
    late.out = out
    done = late.start()
    full.bed.run()

    assert result_of(done) == Reason.GATEWAY_FULL.exit_code == 28
    assert Reason.GATEWAY_FULL.bilingual in out.getvalue()
    assert full.observer.refused == ["gateway-full"]
    [line] = [e for e in logged if e.get("reason") == "gateway-full"]
    assert line["log_level"].name == "warn"
    assert line["limit"] == 1000 and line["reserve"] == 100
    assert not any("log_failure" in e for e in logged)
    refusal = full.endpoint.connections[-1][1].protocol
    assert isinstance(refusal, GatewayFullRefusal) and refusal.told
    assert full.factory.refusing == 0  # gone once the client closed

    # The live session is untouched: it still opens a stream and carries bytes.
    assert not live_done.called
    browser = RecordingProtocol()
    clock = full.bed.clock
    clock.tcpServers.append(clock.tcpServers[0])  # browse() uses the last: the live one's
    full.bed.browse(live, browser)
    assert browser.transport is not None
    browser.transport.write(b"hello")
    full.bed.run()
    assert full.bed.services[-1].received == b"hello"


def test_a_refused_connection_never_reads_the_login_and_closes_if_the_client_stays(
    full: FullBed,
) -> None:
    full.open_now.value = 950
    full.bed.clock.advance(DescriptorBudget.recount_after)
    peer = RecordingProtocol()
    full.endpoint.connect(_factory_of(peer))
    full.bed.run()
    assert bytes(peer.received) == GOAWAY_GATEWAY_FULL
    assert peer.transport is not None
    peer.transport.write(b"AUTH with a password that is dropped unread")
    full.bed.run()
    assert peer.lost is None and not peer.eof
    assert full.factory.refusing == 1
    full.bed.elapse(3)  # the linger: the refusal closes itself
    assert peer.eof
    assert full.factory.refusing == 0


def test_a_flood_of_refusals_is_cut_at_once_to_keep_the_reserve(
    full: FullBed, logged: list[LogEvent]
) -> None:
    """Past reserve/2 refusals still connected, the next are cut without a handshake,
    and the log says so in one line a second, with the count of the others."""
    full.open_now.value = 950
    full.bed.clock.advance(DescriptorBudget.recount_after)
    peers = [RecordingProtocol() for _ in range(60)]
    for peer in peers:
        full.endpoint.connect(_factory_of(peer))
    full.bed.run()
    told = [p for p in peers if bytes(p.received) == GOAWAY_GATEWAY_FULL]
    cut = [p for p in peers if p.lost is not None and not p.received]
    assert len(told) == 50 and len(cut) == 10
    assert len(full.observer.refused) == 60
    lines = [e for e in logged if e.get("reason") == "gateway-full"]
    assert len(lines) == 1
    full.bed.elapse(1)
    full.endpoint.connect(_factory_of(RecordingProtocol()))
    lines = [e for e in logged if e.get("reason") == "gateway-full"]
    assert len(lines) == 2 and lines[-1]["suppressed"] == 59


def _factory_of(protocol: RecordingProtocol) -> Any:
    from twisted.internet.protocol import Factory

    return Factory.forProtocol(lambda: protocol)


def test_ssgate_connect_lists_the_gateway_full_exit_status_in_its_help() -> None:
    from ssgate._connect import exit_status_help

    assert f"   28  gateway-full: {Reason.GATEWAY_FULL.chinese}" in exit_status_help()
