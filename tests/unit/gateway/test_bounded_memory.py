"""A 100 MB transfer through a stream whose reader is throttled keeps memory bounded.

Acceptance item: "A 100 MB transfer through a stream whose reader is throttled keeps
the gateway's and client's memory bounded (test asserts on buffered bytes, not on
time)".  The whole channel runs in memory (:class:`gateway.testing.ChannelTestbed`):
the network moves bytes only when stepped, its transports pause a registered
producer when more than ``BUFFER_SIZE`` bytes wait in their write buffer (as
Twisted's TCP transports do) and deliver at most ``READ_SIZE`` bytes per
``dataReceived``.  The reader at the far end takes only ``SLOW_READ`` bytes per step;
the tunnel itself is fast.  After every step the test adds up what each process holds
for the stream in user space and checks it against a bound derived from the protocol:

- ``W`` = the stream window both sides announce (``DEFAULT_INITIAL_WINDOW``, 256 KiB),
- ``R`` = one read from the local connection (``READ_SIZE``, 64 KiB), and
- ``B`` = a transport's pause threshold (``BUFFER_SIZE``, 64 KiB).

The sending process holds at most one read it has no credit for (``pending``,
≤ R: it stops reading at once) plus the DATA it sent and the peer has not received
(≤ W: it never has more credit than that).  The receiving process holds what it
wrote to its slow local reader: bytes it wrote while that transport was not full
(≤ B, the pause threshold), plus those it wrote after the transport asked it to pause,
whose credit it has not returned (≤ W).  Hence:

- ``SENDER_BOUND   = R + W + FRAMING``
- ``RECEIVER_BOUND = B + W + FRAMING``
- ``PATH_BOUND     = R + B + W + FRAMING`` for both processes together: the DATA in
  flight and the receiver's unreturned credit share one window (``docs/protocol.md``
  §6: ``remaining + buffered + pending == window``).

With 100 MB going each way at once, each process is the sender of one direction and
the receiver of the other, and the bounds add up.

Credit bounds each stream; what bounds a slow *tunnel* is that the tunnel pauses
every local reader while its transport is full (``TunnelProtocol.pauseProducing``).
Then the tunnel transport holds at most its pause threshold plus one read per stream
(sent when credit arrives) plus the write that crossed the threshold:
``TUNNEL_BOUND = B + (streams + 1) * R + FRAMING``, against ``streams * W`` without it.

``FRAMING`` (4 KiB) covers frame headers (10 bytes per DATA frame; a window holds a
handful of frames) and WINDOW_UPDATE / PING / PONG frames.  The counted buffers are
the tunnel's own (``TunnelProtocol.buffered()``: data waiting for credit or for the
local connection), the tunnel transport's write buffer, and the write buffer of the
local connection (service or browser).  All 100 MB must arrive, in order, intact.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from gateway._frames import DEFAULT_INITIAL_WINDOW
from gateway._tunnel import TunnelProtocol
from gateway.testing import (
    BUFFER_SIZE,
    READ_SIZE,
    ChannelTestbed,
    MemoryTransport,
    RecordingProtocol,
)

TOTAL = 100 * 1024 * 1024
CHUNK = 16 * 1024  # what the sending application writes at a time
SLOW_READ = 16 * 1024  # what the throttled reader takes per network step

W = DEFAULT_INITIAL_WINDOW
R = READ_SIZE
B = BUFFER_SIZE
FRAMING = 4 * 1024
SENDER_BOUND = R + W + FRAMING
RECEIVER_BOUND = B + W + FRAMING
PATH_BOUND = R + B + W + FRAMING

# The fastest a reader can finish, plus room for the window to fill and drain.
MAX_STEPS = TOTAL // SLOW_READ + 1000
REQUEST = b"GET /big HTTP/1.1\r\n\r\n"


def chunks(total: int) -> Iterator[bytes]:
    """*total* bytes, made as they are needed; every chunk is numbered, so a lost,
    repeated or reordered chunk changes the hash."""
    noise = os.urandom(CHUNK)
    for n in range(total // CHUNK):
        yield n.to_bytes(8, "big") + noise[8:]


@implementer(IPushProducer)
class Source:
    """Writes *total* bytes to *transport* as fast as it lets it, then half-closes."""

    def __init__(self, transport: MemoryTransport, total: int = TOTAL) -> None:
        self.transport = transport
        self.chunks = chunks(total)
        self.digest = hashlib.sha256()
        self.sent = 0
        self.paused = False
        self.pauses = 0
        transport.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self.produce()

    def stopProducing(self) -> None:
        self.paused = True

    def produce(self) -> None:
        while not self.paused:
            chunk = next(self.chunks, None)
            if chunk is None:
                self.transport.unregisterProducer()
                self.transport.loseWriteConnection()
                return
            self.digest.update(chunk)
            self.sent += len(chunk)
            self.transport.write(chunk)


@dataclass
class Process:
    """What one side holds for the stream: its tunnel, the tunnel's transport and the
    local connection's transport."""

    tunnel: TunnelProtocol
    local: MemoryTransport

    def held(self) -> int:
        tunnel_transport = self.tunnel.transport
        assert isinstance(tunnel_transport, MemoryTransport)
        return self.tunnel.buffered() + len(tunnel_transport.buffer) + len(self.local.buffer)


@pytest.fixture
def bed(sqlite_engine: Engine) -> ChannelTestbed:
    bed = ChannelTestbed(sqlite_engine)
    bed.keep_service_data = False  # the service keeps a count and a hash only
    return bed


def open_stream(bed: ChannelTestbed) -> tuple[Process, Process, RecordingProtocol]:
    """Log in, open one stream; returns (gateway, client, browser)."""
    client = bed.client()
    client.start()
    bed.run()
    assert client.tunnel is not None
    browser = RecordingProtocol(keep=False)
    _, local_end = bed.browse(client, browser)
    browser.transport.write(REQUEST)  # type: ignore[union-attr]
    bed.run()
    [service] = bed.services
    assert service.count == len(REQUEST)
    upstream_end = bed.service_endpoint.connections[-1][0]
    gateway = Process(bed.tunnels[-1], upstream_end)
    return gateway, Process(client.tunnel, local_end), browser


def transfer(
    bed: ChannelTestbed,
    flows: list[tuple[Source, RecordingProtocol]],
    *,
    gateway: Process,
    client: Process,
    gateway_bound: int,
    client_bound: int,
    path_bound: int,
) -> tuple[int, int]:
    """Run *flows* (source, throttled sink) to the end, checking the bounds after every
    network step; returns the most the gateway and the client ever held."""
    starts = []
    for source, sink in flows:
        assert isinstance(sink.transport, MemoryTransport)
        sink.transport.read_limit = SLOW_READ
        starts.append(sink.count)
        source.produce()
    peak_gateway = peak_client = 0
    for _ in range(MAX_STEPS):
        moved = bed.network.step()
        held_gateway, held_client = gateway.held(), client.held()
        assert held_gateway <= gateway_bound, f"the gateway holds {held_gateway} bytes"
        assert held_client <= client_bound, f"the client holds {held_client} bytes"
        assert held_gateway + held_client <= path_bound
        peak_gateway = max(peak_gateway, held_gateway)
        peak_client = max(peak_client, held_client)
        if all(sink.eof for _, sink in flows):
            break
        assert moved, "the transfer stalled"
    else:
        raise AssertionError(f"not done after {MAX_STEPS} steps")
    for (source, sink), start in zip(flows, starts, strict=True):
        assert sink.count - start == TOTAL
        assert sink.digest.digest() == source.digest.digest()
        assert source.pauses > 0  # the throttled reader pushed back all the way
    return peak_gateway, peak_client


def test_a_100_mb_download_to_a_slow_browser_keeps_both_processes_bounded(
    bed: ChannelTestbed,
) -> None:
    gateway, client, browser = open_stream(bed)
    [service] = bed.services
    assert isinstance(service.transport, MemoryTransport)
    source = Source(service.transport)
    _, peak_client = transfer(
        bed,
        [(source, browser)],
        gateway=gateway,
        client=client,
        gateway_bound=SENDER_BOUND,
        client_bound=RECEIVER_BOUND,
        path_bound=PATH_BOUND,
    )
    assert peak_client > B  # the browser really was behind: the client held a backlog


def test_a_100_mb_upload_to_a_slow_service_keeps_both_processes_bounded(
    bed: ChannelTestbed,
) -> None:
    gateway, client, browser = open_stream(bed)
    [service] = bed.services
    assert isinstance(browser.transport, MemoryTransport)
    source = Source(browser.transport)
    source.digest = hashlib.sha256(REQUEST)  # the service has the request line already
    peak_gateway, _ = transfer(
        bed,
        [(source, service)],
        gateway=gateway,
        client=client,
        gateway_bound=RECEIVER_BOUND,
        client_bound=SENDER_BOUND,
        path_bound=PATH_BOUND,
    )
    assert peak_gateway > B


def test_100_mb_each_way_at_once_keeps_both_processes_bounded(bed: ChannelTestbed) -> None:
    """Each process is then sender of one direction and receiver of the other."""
    gateway, client, browser = open_stream(bed)
    [service] = bed.services
    assert isinstance(service.transport, MemoryTransport)
    assert isinstance(browser.transport, MemoryTransport)
    download = Source(service.transport)
    upload = Source(browser.transport)
    upload.digest = hashlib.sha256(REQUEST)
    both = SENDER_BOUND + RECEIVER_BOUND - FRAMING
    transfer(
        bed,
        [(download, browser), (upload, service)],
        gateway=gateway,
        client=client,
        gateway_bound=both,
        client_bound=both,
        path_bound=2 * PATH_BOUND - FRAMING,
    )


STREAMS = 4
PER_STREAM = 4 * 1024 * 1024
TUNNEL_BOUND = B + (STREAMS + 1) * R + FRAMING


def test_a_slow_tunnel_pauses_every_local_reader(bed: ChannelTestbed) -> None:
    client = bed.client()
    client.start()
    bed.run()
    tunnel = client.tunnel
    assert tunnel is not None and isinstance(tunnel.transport, MemoryTransport)
    tunnel_out = tunnel.transport
    sources = []
    for _ in range(STREAMS):
        browser = RecordingProtocol(keep=False)
        bed.browse(client, browser)
        assert isinstance(browser.transport, MemoryTransport)
        sources.append(Source(browser.transport, PER_STREAM))
    bed.run()
    assert len(bed.services) == STREAMS
    gateway_in = bed.tunnels[-1].transport
    assert isinstance(gateway_in, MemoryTransport)
    gateway_in.read_limit = SLOW_READ  # the tunnel, not the service, is slow now
    for source in sources:
        source.produce()

    peak = 0
    for _ in range(STREAMS * PER_STREAM // SLOW_READ + 1000):
        moved = bed.network.step()
        assert len(tunnel_out.buffer) <= TUNNEL_BOUND, len(tunnel_out.buffer)
        assert tunnel.buffered() <= STREAMS * R
        peak = max(peak, len(tunnel_out.buffer))
        if all(service.eof for service in bed.services):
            break
        assert moved, "the transfer stalled"
    else:
        raise AssertionError("the uploads did not finish")
    for source, service in zip(sources, bed.services, strict=True):
        assert service.count == PER_STREAM
        assert service.digest.digest() == source.digest.digest()
    assert peak > B  # the tunnel transport really was full
