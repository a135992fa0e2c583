"""The service side of the identity assertion: trust a connection only after its header.

:class:`IdentityGuardFactory` wraps any server factory.  Each connection must begin
with the gateway's signed PROXY v2 header (:mod:`auth._assertion`); until it has
arrived and verified, nothing reaches the wrapped protocol.  A connection that sends
anything else, a header with a bad signature or a stale time, or nothing at all within
``header_timeout`` seconds, is dropped and logged with the reason — it gets no byte
back.  The verified identity is set on the wrapped protocol as ``ssgate_identity``
before its ``makeConnection``, so even its ``connectionMade`` can read it.
"""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from auth import Identity, IdentityHeaderError, IdentityHeaderReader
from auth._assertion import DEFAULT_MAX_SKEW

TIMEOUT_REASON = "header-timeout"


class IdentityGuard(Protocol):
    """One guarded connection: reads the header, then hands the transport over."""

    log = Logger()

    def __init__(self, factory: IdentityGuardFactory) -> None:
        self._factory = factory
        self._reader = IdentityHeaderReader(key=factory.key, max_age=factory.max_age)
        self._wrapped: IProtocol | None = None
        self._timeout: IDelayedCall | None = None
        # Set once the connection is refused or declined: whatever still arrives
        # (a transport may deliver what it had already read) is dropped unseen.
        self._closed = False

    def connectionMade(self) -> None:
        self._timeout = self._factory.clock.callLater(
            self._factory.header_timeout, self._on_timeout
        )

    def _peer(self) -> str:
        transport: ITransport | None = self.transport
        address: IAddress | None = transport.getPeer() if transport is not None else None
        return str(address)

    def _cancel_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _on_timeout(self) -> None:
        self._timeout = None
        self._refuse(TIMEOUT_REASON, f"no complete header within {self._factory.header_timeout} s")

    def _refuse(self, reason: str, detail: str) -> None:
        self._cancel_timeout()
        self._closed = True
        self.log.warn(
            "refused connection to {service} from {peer}: {reason} ({detail})",
            service=self._factory.service,
            peer=self._peer(),
            reason=reason,
            detail=detail,
        )
        self._factory.refused += 1
        transport = self.transport
        if transport is not None:
            # Abort: drop anything buffered and do not wait for the peer.
            getattr(transport, "abortConnection", transport.loseConnection)()

    def dataReceived(self, data: bytes) -> None:
        if self._wrapped is not None:
            self._wrapped.dataReceived(data)
            return
        if self._closed:
            return
        try:
            result = self._reader.feed(data, now=self._factory.clock.seconds())
        except IdentityHeaderError as e:
            self._refuse(e.reason, str(e))
            return
        if result is None:
            return
        identity, rest = result
        if not self._factory.first_use(identity.nonce):
            self._refuse("replayed", f"nonce of session {identity.session_id} seen before")
            return
        self._cancel_timeout()
        transport = self.transport
        assert transport is not None
        wrapped = self._factory.wrapped.buildProtocol(transport.getPeer())
        if wrapped is None:
            self._closed = True
            self.log.info(
                "{service} declined a connection from {peer} (session {session})",
                service=self._factory.service,
                peer=self._peer(),
                session=identity.session_id,
            )
            transport.loseConnection()
            return
        wrapped.ssgate_identity = identity  # type: ignore[attr-defined]
        self._wrapped = wrapped
        wrapped.makeConnection(transport)
        if rest:
            wrapped.dataReceived(rest)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_timeout()
        if self._wrapped is not None:
            self._wrapped.connectionLost(reason)


class IdentityGuardFactory(Factory):
    """Wrap *wrapped* so that only connections with a valid identity header reach it.

    *key* and *max_age* are those of :class:`auth.IdentityHeaderReader` and are checked
    here, so a bad configuration fails at start-up rather than on every connection.
    :attr:`refused` counts the connections refused so far.
    """

    def __init__(
        self,
        wrapped: IProtocolFactory,
        *,
        key: bytes,
        clock: IReactorTime,
        service: str = "declare",
        max_age: float = 30.0,
        header_timeout: float = 5.0,
    ) -> None:
        IdentityHeaderReader(key=key, max_age=max_age)  # raises for a bad key or max_age
        if (
            not isinstance(header_timeout, int | float)
            or not math.isfinite(header_timeout)
            or header_timeout <= 0
        ):
            raise ValueError("header_timeout must be a positive number of seconds")
        self.wrapped = wrapped
        self.key = key
        self.clock = clock
        self.service = service
        self.max_age = max_age
        self.header_timeout = header_timeout
        self.refused = 0
        # Nonces admitted within the freshness window: a header captured on the way
        # to the service cannot be replayed while it would still count as fresh.
        self._seen: dict[str, float] = {}

    def first_use(self, nonce: str) -> bool:
        """Record *nonce*; False if it was already admitted while still fresh."""
        now = self.clock.seconds()
        horizon = self.max_age + DEFAULT_MAX_SKEW
        if len(self._seen) > 1024:  # prune now and then, not on every connection
            self._seen = {n: t for n, t in self._seen.items() if now - t <= horizon}
        seen_at = self._seen.get(nonce)
        if seen_at is not None and now - seen_at <= horizon:
            return False
        self._seen[nonce] = now
        return True

    def buildProtocol(self, addr: Any) -> IdentityGuard:
        return IdentityGuard(self)

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()


def identity_of(protocol: object) -> Identity | None:
    """The identity a guarded protocol (e.g. an ``HTTPChannel``) was admitted with.

    This is the protocol the wrapped factory built; a ``twisted.web`` ``Site`` must
    build its ``HTTPChannel`` directly (see :func:`declare_app._identity_page.identity_site`)
    for ``request.channel`` to be that protocol.
    """
    identity = getattr(protocol, "ssgate_identity", None)
    return identity if isinstance(identity, Identity) else None
