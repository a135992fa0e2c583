"""Per-stream credit windows (``docs/protocol.md`` §6): pure arithmetic, no I/O.

Each direction of each stream has its own window.  The sender holds a
:class:`SendWindow`: DATA may carry at most the credit it has, and WINDOW_UPDATE
frames from the receiver add to it.  The receiver holds a :class:`ReceiveWindow`:
DATA beyond the credit it granted is a ``flow-control-error``, and as its application
consumes bytes it hands the credit back, batched so that one WINDOW_UPDATE covers at
least half a window.

The receiver's invariant is ``remaining + buffered + pending == window``: the peer's
credit, the bytes received but not yet consumed, and the consumed bytes not yet
granted back always add up to the window.  So a receiver never holds more than one
window of unconsumed data per stream, however slow its application is.
"""

from __future__ import annotations

from ._frames import MAX_WINDOW
from ._reasons import ProtocolError, Reason

__all__ = ["MAX_WINDOW", "ReceiveWindow", "SendWindow"]


class SendWindow:
    """The credit this side has for sending DATA on one stream."""

    __slots__ = ("_available",)

    def __init__(self, initial: int) -> None:
        if not 0 <= initial <= MAX_WINDOW:
            raise ValueError(f"initial window must be 0-{MAX_WINDOW}, got {initial}")
        self._available = initial

    @property
    def available(self) -> int:
        return self._available

    def consume(self, n: int) -> None:
        """Spend *n* bytes of credit on DATA about to be sent (a local decision)."""
        if not 0 <= n <= self._available:
            raise ValueError(f"cannot send {n} bytes with {self._available} bytes of credit")
        self._available -= n

    def grant(self, n: int) -> None:
        """Add *n* bytes of credit from a WINDOW_UPDATE; overflow is the peer's error."""
        if n < 1:
            raise ProtocolError(Reason.FLOW_CONTROL_ERROR, "window increment must be positive")
        if self._available + n > MAX_WINDOW:
            raise ProtocolError(
                Reason.FLOW_CONTROL_ERROR,
                f"window update of {n} would take the window past {MAX_WINDOW}",
            )
        self._available += n

    def __repr__(self) -> str:
        return f"SendWindow(available={self._available})"


class ReceiveWindow:
    """The credit this side granted for receiving DATA on one stream."""

    __slots__ = ("_buffered", "_pending", "_remaining", "_threshold", "window")

    def __init__(self, window: int) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be 1-{MAX_WINDOW}, got {window}")
        self.window = window
        self._remaining = window
        self._buffered = 0
        self._pending = 0
        self._threshold = max(1, window // 2)

    @property
    def remaining(self) -> int:
        """How many more bytes the peer may send before it needs a WINDOW_UPDATE."""
        return self._remaining

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed by the application (≤ ``window``)."""
        return self._buffered

    def on_data(self, n: int) -> None:
        """Account for a DATA frame of *n* bytes; more than the credit is an error."""
        if n > self._remaining:
            raise ProtocolError(
                Reason.FLOW_CONTROL_ERROR,
                f"{n} bytes of DATA exceed the {self._remaining} bytes of credit",
            )
        self._remaining -= n
        self._buffered += n

    def consumed(self, n: int) -> int:
        """The application took *n* bytes; the WINDOW_UPDATE increment to send, or 0."""
        if not 0 <= n <= self._buffered:
            raise ValueError(f"cannot consume {n} bytes, {self._buffered} are buffered")
        self._buffered -= n
        self._pending += n
        if self._pending < self._threshold:
            return 0
        increment, self._pending = self._pending, 0
        self._remaining += increment
        return increment

    def __repr__(self) -> str:
        return (
            f"ReceiveWindow(window={self.window}, remaining={self._remaining}, "
            f"buffered={self._buffered}, pending={self._pending})"
        )
