"""The Twisted side of a tunnel, shared by the gateway and the client.

:class:`TunnelProtocol` feeds the TLS transport's bytes to a sans-IO machine
(:mod:`gateway._machine`), writes what the machine queues, and bridges each stream to
a local TCP connection (:class:`StreamConnection`): the service on the gateway, the
browser on the client.  Back-pressure, both ways, with nothing buffered without bound:

- tunnel → local: DATA is written to the local transport; its credit is returned to
  the peer (``consume``) only while that transport is not asking us to pause, so a
  slow local reader stops the peer after at most one window.
- local → tunnel: bytes beyond the stream's credit are kept (at most one read) and the
  local transport is paused until ``StreamCredit`` arrives; and when the TLS transport
  itself is full, every local transport is paused until it drains.

Each stream ends exactly once, and :meth:`TunnelProtocol.stream_ended` says how
(``finished``: FIN both ways; ``peer-reset``; ``local-closed``: the local side went
away first; ``session-ended``), with the bytes it carried each way: the gateway records
it for the officer's timeline.

Closing follows Twisted's rules for a half-closeable protocol: a FIN from the tunnel
half-closes the local connection, and once both directions have ended we close it
ourselves (Twisted never does, and the socket would stay open).  The stream stops
being the local transport's producer first: Twisted does not finish a close while a
paused streaming producer is registered.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer, ITransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway._machine import (
    SessionClosed,
    StreamCredit,
    StreamData,
    StreamFin,
    StreamReset,
)
from gateway._reasons import Reason


@implementer(IPushProducer, IHalfCloseableProtocol)
class StreamConnection(Protocol):
    """One local TCP connection carried as one tunnel stream."""

    log = Logger()

    def __init__(self, tunnel: TunnelProtocol, stream_id: int | None = None) -> None:
        self.tunnel = tunnel
        self.stream_id = stream_id
        self.pending = b""  # read from local, waiting for credit (at most one read)
        self.unacked = 0  # written to local while it asked us to pause
        self.local_paused = False  # the local transport's buffer is full
        self.reading_paused = False
        self.closed = False
        self.fin_after_pending = False  # local EOF while data still waited for credit
        self.sent_fin = False
        self.got_fin = False
        self._early: list[bytes] = []  # read before the stream id was known
        self._to_local: list[bytes] = []  # tunnel data before the local side connected
        self._producing = False  # registered as the local transport's producer
        # For the record of the stream's end (the gateway's ``stream.end`` event).
        self.opened_at = 0.0
        self.bytes_from_local = 0
        self.bytes_to_local = 0
        self.ended = False

    # -- the local transport produces into us (we consume it into the tunnel)

    def connectionMade(self) -> None:
        assert self.transport is not None
        # The local transport calls pauseProducing/resumeProducing on us when its
        # write buffer fills or drains: that is the tunnel → local back-pressure.
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        self._producing = True

    def dataReceived(self, data: bytes) -> None:
        self.bytes_from_local += len(data)
        if self.stream_id is None:
            self._early.append(data)
            self._set_reading()
            return
        self.tunnel.send_stream(self, data)

    def stream_ready(self, stream_id: int) -> None:
        self.stream_id = stream_id
        early, self._early = b"".join(self._early), []
        self._set_reading()
        if early:
            self.tunnel.send_stream(self, early)

    def readConnectionLost(self) -> None:
        """The local side finished sending (half-close): FIN the stream."""
        self.tunnel.local_eof(self)

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.closed = True
        self._producing = False
        self.tunnel.local_closed(self)

    # -- closing the local connection

    def _stop_producing_for_local(self) -> None:
        """No more tunnel data for the local side: stop being its producer.

        Twisted finishes neither ``loseConnection`` nor ``loseWriteConnection`` while
        a paused streaming producer is registered, so this comes first.
        """
        if self._producing and self.transport is not None:
            self._producing = False
            self.transport.unregisterProducer()  # type: ignore[attr-defined]

    def half_close_local(self) -> None:
        """The peer sent FIN: end the local direction once what was written is sent."""
        if self.transport is None or self.closed:
            return
        self._stop_producing_for_local()
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
        else:
            self.transport.loseConnection()

    def close_local(self, *, abort: bool = False) -> None:
        """Close the local connection: flushed, or at once (RST) when *abort*."""
        if self.transport is None or self.closed:
            return
        self._stop_producing_for_local()
        if abort:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        else:
            self.transport.loseConnection()

    # -- IPushProducer: the local transport pushes back on what we write to it

    def pauseProducing(self) -> None:
        self.local_paused = True

    def resumeProducing(self) -> None:
        self.local_paused = False
        if self.unacked and self.stream_id is not None:
            n, self.unacked = self.unacked, 0
            self.tunnel.consumed(self.stream_id, n)

    def stopProducing(self) -> None:
        self.closed = True

    # -- reading from the local side is paused while data waits for credit

    def _set_reading(self) -> None:
        want_paused = (
            bool(self.pending)
            or self.tunnel.tunnel_paused
            or (self.stream_id is None and bool(self._early))
        )
        if self.transport is None or self.closed or want_paused == self.reading_paused:
            return
        self.reading_paused = want_paused
        if want_paused:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        else:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def write_from_tunnel(self, payload: bytes) -> None:
        assert self.stream_id is not None
        if self.transport is None:
            # Not connected yet: keep it without returning credit, so at most a window.
            self._to_local.append(payload)
            return
        self.transport.write(payload)
        if self.local_paused:
            self.unacked += len(payload)
        else:
            self.tunnel.consumed(self.stream_id, len(payload))

    def deliver_early(self) -> None:
        """Write what the tunnel sent before the local connection was made."""
        early, self._to_local = self._to_local, []
        for payload in early:
            self.write_from_tunnel(payload)
        if self.got_fin:  # and the FIN that followed it
            self.half_close_local()

    def buffered(self) -> int:
        """Bytes this stream holds in user space (for the bounded-memory tests)."""
        return (
            len(self.pending)
            + sum(len(b) for b in self._early)
            + sum(len(b) for b in self._to_local)
        )


# While the transport has paused us (the peer is not reading), what we may still
# write is bounded by the credit the peer granted (at most 100 streams x 256 KiB
# windows) plus small control frames.  A peer that keeps sending PINGs without
# reading the PONGs would grow that without end; past this many bytes we cut it off.
PAUSED_WRITE_LIMIT = 32 * 1024 * 1024


@implementer(IPushProducer)
class TunnelProtocol(Protocol):
    """Machine + streams over one TLS connection.  Subclasses handle the login events."""

    log = Logger()
    machine: Any  # GatewayMachine or ClientMachine

    def __init__(self) -> None:
        self.streams: dict[int, StreamConnection] = {}
        self.tunnel_paused = False
        self._closing = False
        self.written_while_paused = 0

    # -- bytes in and out ----------------------------------------------------------------

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        self.flush()

    def flush(self) -> None:
        chunks = self.machine.data_to_send()
        if not chunks or self.transport is None:
            return
        if self.tunnel_paused and not self._closing:
            self.written_while_paused += sum(len(c) for c in chunks)
            if self.written_while_paused > PAUSED_WRITE_LIMIT:
                self.log.warn(
                    "peer {peer} does not read what it asks for; cutting the connection",
                    peer=transport_peer(self.transport),
                )
                self.transport.abortConnection()  # type: ignore[attr-defined]
                return
        self.transport.writeSequence(chunks)

    def dataReceived(self, data: bytes) -> None:
        for event in self.machine.receive(data):
            self.handle_event(event)
        self.flush()

    def handle_event(self, event: object) -> None:
        if isinstance(event, StreamData):
            self.on_stream_data(event)
        elif isinstance(event, StreamCredit):
            self.on_stream_credit(event)
        elif isinstance(event, StreamFin):
            self.on_stream_fin(event)
        elif isinstance(event, StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                self._ended(stream, "peer-reset")
                stream.close_local(abort=True)
        elif isinstance(event, SessionClosed):
            self.session_closed(event.reason, event.message, by_peer=event.by_peer)
        else:
            self.handle_side_event(event)

    def on_stream_credit(self, event: StreamCredit) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None and stream.pending:
            data, stream.pending = stream.pending, b""
            self.send_stream(stream, data)
            if stream.fin_after_pending and not stream.pending:
                self._fin(stream)

    def on_stream_fin(self, event: StreamFin) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        stream.got_fin = True
        stream.half_close_local()  # before connecting: deliver_early does it
        self._forget_if_done(stream)

    def handle_side_event(self, event: object) -> None:
        raise NotImplementedError

    def stream_ended(self, stream: StreamConnection, how: str) -> None:
        """Hook, called once per stream when it is gone: *how* is ``finished``,
        ``peer-reset``, ``local-closed`` or ``session-ended``."""

    def _ended(self, stream: StreamConnection, how: str) -> None:
        if not stream.ended:
            stream.ended = True
            self.stream_ended(stream, how)

    def session_closed(self, reason: Reason, message: str, *, by_peer: bool) -> None:
        """The machine ended the session; flush the GOAWAY and close."""
        self.close_transport()

    def close_transport(self) -> None:
        self._closing = True
        self.flush()
        if self.transport is not None:
            # TLSMemoryBIOProtocol defers its close_notify until no producer is
            # registered; without this a GOAWAY is sent but the connection stays up.
            self.transport.unregisterProducer()  # type: ignore[attr-defined]
            self.transport.loseConnection()

    def terminate(self, reason: Reason, message: str = "") -> None:
        """End the session from this side with GOAWAY(*reason*)."""
        self.machine.close(reason, message)
        self.close_transport()

    # -- streams -----------------------------------------------------------------------------

    def on_stream_data(self, event: StreamData) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        stream.bytes_to_local += len(event.payload)
        if stream.closed:
            # Nobody left to read it (we still deliver our last bytes and FIN): drop it
            # but return the credit, so the peer is not stalled until it gives up.
            self.consumed(event.stream_id, len(event.payload))
            return
        stream.write_from_tunnel(event.payload)

    def send_stream(self, stream: StreamConnection, data: bytes) -> None:
        assert stream.stream_id is not None
        if stream.pending:
            # Only if the local transport delivered data after we paused it: keep order.
            data = stream.pending + data
        taken = self.machine.send_data(stream.stream_id, data)
        stream.pending = data[taken:] if taken < len(data) else b""
        stream._set_reading()
        self.flush()

    def consumed(self, stream_id: int, n: int) -> None:
        self.machine.consume(stream_id, n)
        self.flush()

    def _fin(self, stream: StreamConnection) -> None:
        assert stream.stream_id is not None
        stream.sent_fin = True
        self.machine.send_fin(stream.stream_id)
        self._forget_if_done(stream)
        self.flush()

    def _forget_if_done(self, stream: StreamConnection) -> None:
        """Both directions ended: forget the stream and close its local connection."""
        if stream.sent_fin and stream.got_fin and stream.stream_id is not None:
            self.streams.pop(stream.stream_id, None)
            self._ended(stream, "finished")
            stream.close_local()

    def local_eof(self, stream: StreamConnection) -> None:
        if stream.stream_id is None or stream.stream_id not in self.streams or stream.sent_fin:
            return
        if stream.pending:
            stream.fin_after_pending = True  # deliver what was read first
        else:
            self._fin(stream)

    def local_closed(self, stream: StreamConnection) -> None:
        if stream.stream_id is None or stream.stream_id not in self.streams:
            return
        if not stream.got_fin and (stream.sent_fin or not stream.pending):
            # Nobody is left to read what the peer might still send: cancel the stream.
            del self.streams[stream.stream_id]
            self._ended(stream, "local-closed")
            self.machine.reset_stream(stream.stream_id, Reason.STREAM_CANCELLED)
            self.flush()
            return
        self.local_eof(stream)

    def drop_streams(self) -> None:
        """The session is gone: cut every local connection (RST, so no one mistakes a
        truncated response for a complete one)."""
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            self._ended(stream, "session-ended")
            stream.close_local(abort=True)

    def buffered(self) -> int:
        """User-space bytes held for all streams (the memory-bound tests assert on this)."""
        return sum(s.buffered() for s in self.streams.values())

    # -- IPushProducer: the TLS transport pushes back when the peer reads slowly ------------

    def pauseProducing(self) -> None:
        self.tunnel_paused = True
        for stream in self.streams.values():
            stream._set_reading()

    def resumeProducing(self) -> None:
        self.tunnel_paused = False
        self.written_while_paused = 0
        for stream in list(self.streams.values()):
            stream._set_reading()

    def stopProducing(self) -> None:
        self.tunnel_paused = True

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.drop_streams()


def quiet(factory: Factory) -> Factory:
    """No "Starting factory" log line for every stream or dial."""
    factory.noisy = False
    return factory


def transport_peer(transport: ITransport | None) -> str:
    """``host:port`` of the peer, for session records and logs."""
    if transport is None:
        return "unknown"
    peer = transport.getPeer()
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None else str(peer)
