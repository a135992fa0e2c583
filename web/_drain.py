"""After an early answer (a 413 for a body over its cap), read and drop the rest of the
body before closing, so the answer is not lost in a connection reset.

A server that answers before the body is in and then closes makes its kernel answer
what the client still sends with a TCP reset, and a reset makes the client's kernel
drop what it had received but not yet read: the browser sees "connection reset", not
the 413.  Through the secure channel it is the same, one hop further: the gateway's
write to the closed service fails, the stream is reset, and ``ssgate connect`` cuts
the browser's connection.

So the connection is closed the way HTTP servers do it ("lingering close", RFC 9112
§9.6): the answer is sent and the write side half-closed (the client, and through the
tunnel the browser, sees the answer and then the end of it), and what still comes is
read and dropped — never held — until the declared body has come, the client has
closed, or a bound is reached: :data:`MAX_BYTES` dropped or :data:`MAX_SECONDS` gone.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

MAX_BYTES = 64 * 1024 * 1024  # dropped after the answer; more and the connection is cut
MAX_SECONDS = 30.0  # after the answer, whatever still comes


class RefusedBodyDrain:
    """One connection's drain: :meth:`start` after the answer is written, then every
    byte read goes to :meth:`received`; :meth:`stop` when the connection is lost.

    *expected* is how many body bytes the client declared still to come
    (``Content-Length`` minus what was read), or None (chunked) when unknown.
    """

    def __init__(
        self,
        transport: Any,
        clock: IReactorTime,
        *,
        expected: int | None,
        max_bytes: int = MAX_BYTES,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._expected = expected
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds
        self._timer: IDelayedCall | None = None
        self.dropped = 0
        self.closed = False

    def start(self) -> None:
        # A registered streaming producer (the HTTP channel) would hold the half-close.
        self._transport.unregisterProducer()
        if self._expected is not None and self._expected <= 0:
            self._close()  # the body is all in: nothing is left to cause a reset
            return
        half_close = getattr(self._transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
        self._transport.resumeProducing()  # keep reading, even if the channel paused it
        self._timer = self._clock.callLater(self._max_seconds, self._close)

    def received(self, data: bytes) -> None:
        if self.closed:
            return
        self.dropped += len(data)
        if self._expected is not None and self.dropped >= self._expected:
            self._close()  # all the client meant to send has come
        elif self.dropped > self._max_bytes:
            self._close()

    def stop(self) -> None:
        """The connection is gone (the client closed after reading the answer)."""
        self.closed = True
        self._cancel_timer()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        self._transport.loseConnection()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
