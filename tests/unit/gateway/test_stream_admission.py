"""Stream admission in ``ssgate connect`` (issue 16, acceptance 6), in memory.

A session carries at most 100 streams at once.  A local connection beyond that waits,
unread, in a bounded queue until a stream ends, and is answered HTTP 503 (never a
bare close) when its wait expires, when the queue is full, when the gateway refuses
its stream or when the session ends.  The gateway, client, machine and tunnel code
are the real ones on :class:`gateway.testing.ChannelTestbed` (memory network, memory
clock); the service answers each request once the test lets it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory

from gateway._client import MAX_WAITING, STREAM_WAIT_TIMEOUT, ConnectClient, unavailable_answer
from gateway._reasons import Reason
from gateway.testing import ChannelTestbed, IdentifiedService, MemoryEndpoint, RecordingProtocol

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
STREAM_LIMIT = 100  # what the gateway announces (docs/protocol.md section 9)


class Browser(RecordingProtocol):
    """An HTTP client with ``Connection: close``: it closes once the answer ended."""

    def readConnectionLost(self) -> None:
        super().readConnectionLost()
        assert self.transport is not None
        self.transport.loseConnection()


class AnsweringService(IdentifiedService):
    """The declaration service: answers a whole request once :attr:`held` is False."""

    held = True

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        self.answer_if_due()

    def answer_if_due(self) -> bool:
        if self.held or self.transport is None or b"\r\n\r\n" not in self.received:
            return False
        if getattr(self, "answered", False):
            return False
        self.answered = True
        self.transport.write(ANSWER)
        self.transport.loseConnection()
        return True


class Bed:
    """The testbed with an answering service and one logged-in client."""

    def __init__(self, engine: Engine) -> None:
        self.bed = ChannelTestbed(engine)
        self.services: list[AnsweringService] = []
        old = self.bed.service_endpoint
        self.bed.service_endpoint = MemoryEndpoint(
            self.bed.network,
            Factory.forProtocol(self._service),
            client_address=old.client_address,
            server_address=old.server_address,
        )
        self.client: ConnectClient = self.bed.client()
        self.done = self.client.start()
        self.settle()
        assert self.client.tunnel is not None and self.client.tunnel.open

    def _service(self) -> AnsweringService:
        service = AnsweringService(self.bed.identity_key, self.bed.clock)
        self.services.append(service)
        return service

    def settle(self) -> None:
        """Deliver everything, including what admissions scheduled for 'now'."""
        for _ in range(4):
            self.bed.run()

    def request(self, count: int) -> list[Browser]:
        browsers = []
        for _ in range(count):
            browser = Browser()
            self.bed.browse(self.client, browser)
            assert browser.transport is not None
            browser.transport.write(REQUEST)
            browsers.append(browser)
        self.settle()
        return browsers

    def answer_all(self, *, rounds: int = 50) -> Iterator[int]:
        """Let the service answer; each round, how many it answered."""
        AnsweringService.held = False
        try:
            for _ in range(rounds):
                answered = sum(s.answer_if_due() for s in self.services)
                self.settle()
                yield answered
                if not answered:
                    return
        finally:
            AnsweringService.held = True


@pytest.fixture
def bed(sqlite_engine: Engine) -> Bed:
    AnsweringService.held = True
    return Bed(sqlite_engine)


def test_three_hundred_concurrent_requests_through_one_session_are_all_answered(
    bed: Bed,
) -> None:
    """Three times the stream limit at once: 100 are carried, 200 wait unread, and as
    streams end the waiting ones are carried in turn; every request gets the
    service's answer and none is closed without one."""
    browsers = bed.request(300)

    assert len(bed.services) == STREAM_LIMIT
    assert bed.client.waiting_streams == 300 - STREAM_LIMIT
    assert all(b.lost is None and not b.received for b in browsers)

    list(bed.answer_all())

    assert [bytes(b.received) for b in browsers] == [ANSWER] * 300
    assert all(b.lost is not None for b in browsers)
    assert len(bed.services) == 300
    assert bed.client.waiting_streams == 0
    assert bed.client.stream_queue.peak == 300 - STREAM_LIMIT
    assert bed.client.stream_queue.timed_out == 0
    assert bed.client.tunnel is not None and bed.client.tunnel.open
    told = bed.client.out.getvalue()  # type: ignore[attr-defined]
    assert "new local connections wait for a free one" in told
    assert "at most 200 waited at once; 0 timed out" in told


def test_a_connection_that_waits_too_long_is_answered_503_and_the_others_go_on(
    bed: Bed,
) -> None:
    """Past STREAM_WAIT_TIMEOUT a waiting connection gets a 503 naming the reason
    (too many connections at once); the streams in use are untouched."""
    browsers = bed.request(STREAM_LIMIT + 1)
    late = browsers[-1]
    bed.bed.elapse(int(STREAM_WAIT_TIMEOUT) + 1)

    assert bytes(late.received) == unavailable_answer(Reason.TOO_MANY_STREAMS)
    assert b"503 Service Unavailable" in late.received
    assert Reason.TOO_MANY_STREAMS.english.encode() in late.received
    assert late.lost is not None
    assert bed.client.waiting_streams == 0
    assert bed.client.stream_queue.timed_out == 1
    assert all(b.lost is None for b in browsers[:-1])

    list(bed.answer_all())
    assert [bytes(b.received) for b in browsers[:-1]] == [ANSWER] * STREAM_LIMIT


def test_past_the_queue_limit_a_connection_is_answered_503_at_once(bed: Bed) -> None:
    bed.client.stream_queue.limit = 2
    browsers = bed.request(STREAM_LIMIT + 3)

    assert bed.client.waiting_streams == 2
    refused = browsers[-1]
    assert bytes(refused.received) == unavailable_answer(Reason.TOO_MANY_STREAMS)
    assert refused.lost is not None
    assert bed.client.stream_queue.refused == 1

    list(bed.answer_all())
    assert [bytes(b.received) for b in browsers[:-1]] == [ANSWER] * (STREAM_LIMIT + 2)


def test_the_queue_is_bounded_by_default() -> None:
    assert 0 < MAX_WAITING <= 4096
    assert 0 < STREAM_WAIT_TIMEOUT <= 60


def test_a_browser_that_gives_up_while_waiting_leaves_the_queue(bed: Bed) -> None:
    browsers = bed.request(STREAM_LIMIT + 2)
    gone = browsers[-2]
    assert gone.transport is not None
    gone.transport.abortConnection()  # type: ignore[attr-defined]
    bed.settle()

    assert bed.client.waiting_streams == 1
    list(bed.answer_all())
    assert not gone.received
    assert bytes(browsers[-1].received) == ANSWER
    assert len(bed.services) == STREAM_LIMIT + 1  # no stream for the one that left


def test_a_stream_the_gateway_refuses_is_answered_503_with_the_reason(bed: Bed) -> None:
    bed.bed.service_endpoint.refuse = ConnectionRefusedError()
    [browser] = bed.request(1)

    assert bytes(browser.received) == unavailable_answer(Reason.SERVICE_UNAVAILABLE)
    assert browser.lost is not None


def test_connections_waiting_when_the_session_ends_are_answered_503(bed: Bed) -> None:
    browsers = bed.request(STREAM_LIMIT + 1)
    assert bed.client.tunnel is not None
    bed.client.quit()
    bed.settle()

    assert bytes(browsers[-1].received) == unavailable_answer(Reason.CLIENT_QUIT)
    assert bed.client.waiting_streams == 0
