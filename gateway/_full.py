"""The answer of a gateway that takes no more connections: GOAWAY(``gateway-full``).

When the process is near its open-files limit (:class:`gateway._limits.DescriptorBudget`)
the node serves a new connection with :class:`GatewayFullRefusal` instead of a
tunnel: it completes the TLS handshake (the client must be able to trust what it is
told), sends GOAWAY(``gateway-full``) in place of HELLO_OK — which a client accepts in
state ``awaiting-hello`` (``docs/protocol.md`` §7.1) — and closes.  It never reads the
client's HELLO or AUTH (the password in it is dropped unread), opens no file, touches
no database and starts no session.  ``ssgate connect`` prints the sentence of
``gateway-full`` and exits with its status.

The client closes the connection when it reads the GOAWAY; the refusal waits for that
(at most *linger* seconds) rather than closing first, so that bytes the client is
still sending cannot make the kernel answer with a reset that would discard the
GOAWAY before the client reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHandshakeListener, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway._frames import GoAway, encode
from gateway._reasons import Reason
from gateway._tls import HandshakeDeadline

__all__ = ["GatewayFullRefusal"]

GOAWAY_GATEWAY_FULL = encode(GoAway(Reason.GATEWAY_FULL, ""))


@implementer(IHandshakeListener)
class GatewayFullRefusal(Protocol):
    """One refused connection: TLS handshake, GOAWAY(``gateway-full``), close.

    *on_lost* is called once when the connection is gone (the node counts the
    refusals in progress, which hold a descriptor each).  *at_once*: a flood of
    refusals is under way; cut this one without a handshake (the client reports a
    closed connection) so that the refusals cannot eat the reserve themselves."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        handshake_timeout: float,
        linger: float = 2.0,
        on_lost: Callable[[], object] | None = None,
        at_once: bool = False,
    ) -> None:
        self._at_once = at_once
        self._clock = clock
        self._deadline = HandshakeDeadline(clock, handshake_timeout)
        self._linger = linger
        self._linger_call: Any = None
        self._on_lost = on_lost
        self.told = False  # the GOAWAY was written

    def connectionMade(self) -> None:
        assert self.transport is not None
        if self._at_once:
            self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        self._deadline.start(self.transport)

    def handshakeCompleted(self) -> None:
        self._deadline.stop()
        if self.transport is None or self._at_once:
            return
        self.transport.write(GOAWAY_GATEWAY_FULL)
        self.told = True
        self._linger_call = self._clock.callLater(self._linger, self._close)

    def dataReceived(self, data: bytes) -> None:
        pass  # HELLO, AUTH: never parsed, never kept

    def _close(self) -> None:
        self._linger_call = None
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self._deadline.stop()
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        self._linger_call = None
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost()
