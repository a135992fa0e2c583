"""In-memory fakes for testing the gateway and ``ssgate connect`` without sockets or threads.

- :class:`SynchronousRunner` (:mod:`auth.testing`'s, re-exported) is the
  :class:`auth.Runner` that runs each callable at once on the calling thread (or
  holds it until ``release``, to test what happens while a login or a query is
  still in flight).
- :class:`MemoryNetwork` connects protocols through :class:`MemoryTransport` pairs that
  behave like Twisted's TCP transports where back-pressure and closing are concerned
  (``twisted.internet.abstract.FileDescriptor``): a write buffer that pauses a
  registered streaming producer when it holds more than ``buffer_size`` bytes and
  resumes it once it has drained completely; ``pauseProducing`` stops delivery to the
  protocol; at most :data:`READ_SIZE` bytes per ``dataReceived``; half-close through
  ``loseWriteConnection`` and ``readConnectionLost`` for an
  :class:`IHalfCloseableProtocol`; and Twisted's quirks that matter for leaks — a
  half-closeable protocol's connection stays open until it calls ``loseConnection``,
  and ``loseConnection`` waits forever while a registered streaming producer is paused.
  ``twisted.test.iosim`` has none of this (its ``FakeTransport`` never pauses a
  producer and ignores ``loseWriteConnection``).  Nothing moves until
  :meth:`MemoryNetwork.step`; a reader is made slow by giving its transport a
  ``read_limit`` (bytes per step).
- :class:`MemoryEndpoint` is an ``IStreamClientEndpoint`` onto a server factory on the
  network; it can hold connections until released, or refuse them.  With
  ``client_certificate`` the server's transport is a :class:`MemoryTLSTransport`: it
  provides ``ISSLTransport`` and returns that certificate as the peer's, and the
  server protocol's ``handshakeCompleted`` is called as TLS would, so the gateway's
  real certificate handling runs unchanged.
- :class:`RecordingProtocol` is a local peer (browser or service) that keeps what it
  receives and how its connection ended.

``tests/unit/gateway/test_testing.py`` checks these fakes against the interfaces and
the Twisted behaviour they imitate.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from OpenSSL import crypto
from sqlalchemy import Engine
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer

import audit
import auth
import certs
from auth.testing import SynchronousRunner
from certs._schema import metadata as certs_metadata
from gateway._client import ClientIdentity, ConnectClient, Profile
from gateway._cred import AccountPolicyView, ChannelChecker, ChannelRealm
from gateway._schema import metadata as gateway_metadata
from gateway._service import GatewayContext, GatewayNode, GatewayTunnel
from gateway._sessions import SessionRecord, get_session

#: Twisted's TCP transports read at most this much per ``dataReceived``
#: (``tcp.Connection.bufferSize``) and pause their producer above this much buffered
#: (``abstract.FileDescriptor.bufferSize``).
READ_SIZE = 65536
BUFFER_SIZE = 65536

Address = IPv4Address | IPv6Address


# -- connections -------------------------------------------------------------------------


@implementer(ITCPTransport, IConsumer, IPushProducer)
class MemoryTransport:
    """One end of an in-memory TCP connection (see the module docstring)."""

    def __init__(
        self,
        network: MemoryNetwork,
        protocol: IProtocol,
        *,
        host: Address,
        peer: Address,
        buffer_size: int = BUFFER_SIZE,
    ) -> None:
        self.network = network
        self.protocol = protocol
        self.host = host
        self.peer = peer
        self.buffer_size = buffer_size
        self.other: MemoryTransport = self  # set by MemoryNetwork.connect
        self.buffer = bytearray()  # written here, not yet delivered to the other end
        self.read_limit: int | None = None  # bytes delivered to our protocol per step
        self.producer: Any = None
        self.streaming = False
        self.producer_paused = False
        self.reading = True
        self.connected = True
        self.disconnecting = False  # loseConnection: close once the buffer drained
        self.write_closing = False  # loseWriteConnection: half-close once drained
        self.write_closed = False  # our FIN is out: the other end will read EOF
        self.eof_received = False
        self.reset = False  # we went away abruptly: the other end gets ConnectionLost
        self.silent = False  # we went away and the other end will never know
        self.lost_reason: Failure | None = None
        self.high_water = 0  # the most bytes ever held in ``buffer``
        self._want_write = False
        self._lose_next_step: BaseException | None = None

    def __repr__(self) -> str:
        return f"<MemoryTransport {type(self.protocol).__name__} buffered={len(self.buffer)}>"

    # -- ITransport

    def write(self, data: bytes) -> None:
        if not self.connected or self.write_closed or self._lose_next_step is not None:
            return
        self.buffer += data
        self.high_water = max(self.high_water, len(self.buffer))
        self._want_write = True
        if self.producer is not None and self.streaming and len(self.buffer) > self.buffer_size:
            self.producer_paused = True
            self.producer.pauseProducing()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if not self.connected or self.disconnecting:
            return
        if self.write_closed:
            # Twisted: nothing left to flush once the write half is closed.
            self._lose(ConnectionDone())
            return
        self.reading = False
        self.disconnecting = True
        self._want_write = True

    def abortConnection(self) -> None:
        if not self.connected:
            return
        # Twisted: stop at once, report connectionLost on the next reactor turn.
        self.buffer.clear()
        self.reading = False
        self._lose_next_step = ConnectionAborted()

    def getPeer(self) -> Address:
        return self.peer

    def getHost(self) -> Address:
        return self.host

    # -- ITCPTransport

    def loseWriteConnection(self) -> None:
        if self.connected and not self.write_closing:
            self.write_closing = True
            self._want_write = True

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    # -- IConsumer

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(f"Cannot register producer {producer!r}: {self.producer!r} is")
        if not self.connected:
            producer.stopProducing()
            return
        self.producer = producer
        self.streaming = streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        self.producer = None
        if self.connected and self.disconnecting:
            self._want_write = True

    # -- IPushProducer: pausing the transport stops reading

    def pauseProducing(self) -> None:
        self.reading = False

    def resumeProducing(self) -> None:
        if self.connected and not self.disconnecting:
            self.reading = True

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- what the network does each step

    def cut(self) -> None:
        """The network fails: both ends see ConnectionLost on the next step."""
        if self.connected:
            self.buffer.clear()
            self._lose_next_step = ConnectionLost()

    def vanish(self) -> None:
        """This end sees ConnectionLost; the other end notices nothing (its packets
        are dropped), as when a NAT forgets the connection."""
        if self.connected:
            self.buffer.clear()
            self.silent = True
            self._lose_next_step = ConnectionLost()

    def _lose(self, reason: BaseException) -> None:
        if not self.connected:
            return
        self.connected = False
        self.reading = False
        self.buffer.clear()
        if isinstance(reason, ConnectionDone):
            self.write_closed = True
        elif not self.silent:
            self.reset = True
        self.lost_reason = Failure(reason)
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        self.protocol.connectionLost(self.lost_reason)

    def _step(self) -> bool:
        if not self.connected:
            return False
        if self._lose_next_step is not None:
            self._lose(self._lose_next_step)
            return True
        other = self.other
        if other.reset:
            self._lose(ConnectionLost())
            return True
        moved = self._deliver()
        if not self.connected:
            return True
        if self._want_write and not self.buffer:
            moved = self._drained() or moved
        if not self.connected:
            return True
        if other.write_closed and not other.buffer and not self.eof_received and self.reading:
            self.eof_received = True
            moved = True
            half_closeable = IHalfCloseableProtocol(self.protocol, None)
            if half_closeable is not None:
                half_closeable.readConnectionLost()
            else:
                self._lose(ConnectionDone())
        return moved

    def _deliver(self) -> bool:
        """Move bytes from our buffer into the other end's protocol."""
        if not self.buffer:
            return False
        other = self.other
        if not other.connected:
            if other.silent:  # into the void
                self.buffer.clear()
                return False
            self._lose(ConnectionLost())  # writing to a closed peer: reset
            return True
        budget = other.read_limit if other.read_limit is not None else len(self.buffer)
        moved = False
        while self.buffer and budget > 0 and other.reading and other.connected:
            n = min(READ_SIZE, budget, len(self.buffer))
            chunk = bytes(self.buffer[:n])
            del self.buffer[:n]
            budget -= n
            moved = True
            other.protocol.dataReceived(chunk)
        return moved

    def _drained(self) -> bool:
        """``FileDescriptor.doWrite`` once the buffer is empty."""
        self._want_write = False
        if self.producer is not None and (not self.streaming or self.producer_paused):
            self.producer_paused = False
            self.producer.resumeProducing()
            return True
        if self.disconnecting:
            self._lose(ConnectionDone())
            return True
        if self.write_closing and not self.write_closed:
            self.write_closed = True
            half_closeable = IHalfCloseableProtocol(self.protocol, None)
            if half_closeable is not None:
                half_closeable.writeConnectionLost()
            return True
        return False


@implementer(ISSLTransport)
class MemoryTLSTransport(MemoryTransport):
    """A server-side transport that presents *peer_certificate* as the client's."""

    def __init__(self, *args: Any, peer_certificate: x509.Certificate, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peer_certificate = peer_certificate

    def getPeerCertificate(self) -> crypto.X509:
        return crypto.X509.from_cryptography(self.peer_certificate)


class MemoryNetwork:
    """Every in-memory connection of a test, moved forward one :meth:`step` at a time."""

    def __init__(self) -> None:
        self.transports: list[MemoryTransport] = []

    def connect(
        self,
        client: IProtocol,
        server: IProtocol,
        *,
        client_address: Address,
        server_address: Address,
        client_certificate: x509.Certificate | None = None,
    ) -> tuple[MemoryTransport, MemoryTransport]:
        """Connect two protocols; returns (client transport, server transport)."""
        client_end = MemoryTransport(self, client, host=client_address, peer=server_address)
        server_end: MemoryTransport
        if client_certificate is None:
            server_end = MemoryTransport(self, server, host=server_address, peer=client_address)
        else:
            server_end = MemoryTLSTransport(
                self,
                server,
                host=server_address,
                peer=client_address,
                peer_certificate=client_certificate,
            )
        client_end.other, server_end.other = server_end, client_end
        self.transports += [client_end, server_end]
        client.makeConnection(client_end)
        server.makeConnection(server_end)
        if client_certificate is not None:
            # TLS reports the handshake before any application data is delivered.
            for protocol in (server, client):
                listener = IHandshakeListener(protocol, None)
                if listener is not None:
                    listener.handshakeCompleted()
        return client_end, server_end

    def step(self) -> bool:
        """Move what each connection can move now; whether anything happened."""
        moved = False
        for transport in list(self.transports):
            moved = transport._step() or moved
        self.transports = [t for t in self.transports if t.connected]
        return moved

    def run(self, max_steps: int = 10_000) -> int:
        """Step until nothing moves; returns the number of steps taken."""
        for n in range(max_steps):
            if not self.step():
                return n
        raise AssertionError(f"the network was still busy after {max_steps} steps")


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """Connects to *server_factory* over *network*, at once or when released."""

    def __init__(
        self,
        network: MemoryNetwork,
        server_factory: IProtocolFactory,
        *,
        client_address: Address | None = None,
        server_address: Address | None = None,
        client_certificate: x509.Certificate | None = None,
    ) -> None:
        self.network = network
        self.server_factory = server_factory
        self.client_address = client_address or IPv4Address("TCP", "127.0.0.1", 40000)
        self.server_address = server_address or IPv4Address("TCP", "127.0.0.1", 8443)
        self.client_certificate = client_certificate
        self.hold = False  # keep connection attempts pending until release()
        self.refuse: BaseException | None = None  # fail connection attempts with this
        self.attempts = 0
        self.connections: list[tuple[MemoryTransport, MemoryTransport]] = []
        self._held: list[tuple[IProtocolFactory, Deferred[IProtocol]]] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        self.attempts += 1
        if self.refuse is not None:
            return fail(self.refuse)
        if self.hold:
            d: Deferred[IProtocol] = Deferred(self._cancel)
            self._held.append((protocolFactory, d))
            return d
        try:
            return succeed(self._connect(protocolFactory))
        except ConnectionRefusedError:
            return fail()

    @property
    def pending(self) -> int:
        return len(self._held)

    def release(self) -> None:
        """Complete the held connection attempts."""
        self.hold = False
        while self._held:
            factory, d = self._held.pop(0)
            try:
                protocol = self._connect(factory)
            except ConnectionRefusedError:
                d.errback(Failure())
            else:
                d.callback(protocol)

    def _cancel(self, d: Deferred[IProtocol]) -> None:
        self._held = [(f, held) for f, held in self._held if held is not d]

    def _connect(self, factory: IProtocolFactory) -> IProtocol:
        server = self.server_factory.buildProtocol(self.client_address)
        client = factory.buildProtocol(self.server_address)
        if server is None or client is None:
            raise ConnectionRefusedError("factory refused the connection")
        pair = self.network.connect(
            client,
            server,
            client_address=self.client_address,
            server_address=self.server_address,
            client_certificate=self.client_certificate,
        )
        self.connections.append(pair)
        return client


# -- local peers -----------------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class RecordingProtocol(Protocol):
    """A browser or a service: keeps what it receives and how its connection ended.

    With ``keep=False`` only the count and SHA-256 of the bytes are kept.
    """

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.received = bytearray()
        self.count = 0
        self.digest = hashlib.sha256()
        self.eof = False  # the peer half-closed (or closed)
        self.write_closed = False
        self.lost: Failure | None = None

    @property
    def memory_transport(self) -> MemoryTransport:
        assert isinstance(self.transport, MemoryTransport)
        return self.transport

    def dataReceived(self, data: bytes) -> None:
        self.count += len(data)
        self.digest.update(data)
        if self.keep:
            self.received += data

    def readConnectionLost(self) -> None:
        self.eof = True

    def writeConnectionLost(self) -> None:
        self.write_closed = True

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.lost = reason


class IdentifiedService(RecordingProtocol):
    """The ``declare`` service: reads and checks the identity header, then records."""

    def __init__(self, key: bytes, clock: IReactorTime, *, keep: bool = True) -> None:
        super().__init__(keep=keep)
        self.clock = clock
        self.reader = auth.IdentityHeaderReader(key=key)
        self.identity: auth.Identity | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.identity is None:
            # Raises IdentityHeaderError for a stream without a valid, fresh header.
            got = self.reader.feed(data, now=self.clock.seconds())
            if got is None:
                return
            self.identity, data = got
        super().dataReceived(data)


# -- a whole channel ---------------------------------------------------------------------

TESTBED_ACCOUNT = "33068212345678@sxlss"
TESTBED_UNIT = "12345678"
TESTBED_NOW = 1_767_225_615.0  # 15 s into a TOTP step
TESTBED_NODE = "test-node"
EMPLOYER_ADDRESS = IPv4Address("TCP", "203.0.113.7", 51000)
GATEWAY_ADDRESS = IPv4Address("TCP", "192.0.2.1", 8443)


def default_policy() -> AccountPolicyView:
    return AccountPolicyView(
        max_sessions=2,
        allowed_sources=(),
        services=("declare",),
        idle_timeout_seconds=1800.0,
        max_lifetime_seconds=43200.0,
    )


class ChannelTestbed:
    """A gateway with its database, PKI and ``declare`` service, and employer clients.

    Everything is real but the network (:class:`MemoryNetwork`), the clock
    (``MemoryReactorClock``, starting at :data:`TESTBED_NOW`) and the database thread
    pool (:class:`SynchronousRunner`): the twisted.cred checker and realm, the
    authenticator with argon2 and TOTP, the session registry, resume tokens, the
    audit log and the identity header.  One account, :data:`TESTBED_ACCOUNT`, is
    enrolled with a client certificate, :attr:`password` and :attr:`totp_secret`.
    :attr:`policy` may be replaced at any time; the gateway reads it at each login.
    """

    def __init__(self, engine: Engine, *, policy: AccountPolicyView | None = None) -> None:
        for metadata in (auth.metadata, certs_metadata, gateway_metadata, audit.metadata):
            metadata.create_all(engine)
        self.engine = engine
        self.clock = MemoryReactorClock()
        self.clock.advance(TESTBED_NOW)
        self.network = MemoryNetwork()
        self.runner = SynchronousRunner(engine)
        self.policy = policy or default_policy()

        now = datetime.fromtimestamp(TESTBED_NOW, UTC)
        self.ca = certs.CertificateAuthority.create("ssgate test CA", now=now)
        self.client_certificate = self.ca.issue_client(TESTBED_ACCOUNT, now=now)
        self.password = auth.generate_password()
        self.totp_secret = auth.new_totp_secret()
        hasher = auth.PasswordHasher(auth.Argon2Params())
        box = auth.SecretBox(auth.SecretBox.generate_key())
        name = auth.AccountName(region="330682", unit_code=TESTBED_UNIT, realm="sxlss")
        with engine.begin() as conn:
            certs.record_certificate(
                conn,
                self.client_certificate.certificate,
                kind="client",
                subject=TESTBED_ACCOUNT,
                now=now,
            )
            auth.create_account(
                conn,
                name,
                password_hash=hasher.hash(self.password),
                totp_secret_sealed=box.seal(
                    self.totp_secret, context=auth.totp_secret_context(TESTBED_ACCOUNT)
                ),
                now=TESTBED_NOW,
            )
        authenticator = auth.Authenticator(
            engine, hasher, box, auth.LockoutPolicy(source_max_failures=1000)
        )
        portal = Portal(
            ChannelRealm(
                db=self.runner,
                policy_for=self._policy_for,
                clock=self.clock.seconds,
                node=TESTBED_NODE,
                end_session=lambda session_id: None,
            ),
            [
                ChannelChecker(
                    authenticator=authenticator,
                    db=self.runner,
                    policy_for=self._policy_for,
                    clock=self.clock.seconds,
                )
            ],
        )
        self.identity_key = secrets.token_bytes(32)
        self.services: list[IdentifiedService] = []
        self.keep_service_data = True  # False: services keep only a count and a hash
        self.service_endpoint = MemoryEndpoint(
            self.network,
            Factory.forProtocol(self._new_service),
            client_address=IPv4Address("TCP", "127.0.0.1", 50000),
            server_address=IPv4Address("TCP", "127.0.0.1", 9000),
        )
        self.ctx = GatewayContext(
            clock=self.clock,
            portal=portal,
            db=self.runner,
            identity_key=self.identity_key,
            resume_key=secrets.token_bytes(32),
            services={"declare": lambda: self.service_endpoint},
            policy_for=self._policy_for,
            node=TESTBED_NODE,
        )
        self.node = GatewayNode(self.ctx)
        self.gateway_endpoint = MemoryEndpoint(
            self.network,
            ServerFactory.forProtocol(lambda: GatewayTunnel(self.ctx)),
            client_address=EMPLOYER_ADDRESS,
            server_address=GATEWAY_ADDRESS,
            client_certificate=self.client_certificate.certificate,
        )
        self.node.startService()

    def _policy_for(self, account: str) -> AccountPolicyView:
        return self.policy

    def _new_service(self) -> IdentifiedService:
        service = IdentifiedService(self.identity_key, self.clock, keep=self.keep_service_data)
        self.services.append(service)
        return service

    # -- employers -------------------------------------------------------------------------

    def otp(self) -> str:
        return auth.current_code(self.totp_secret, self.clock.seconds())

    def client(
        self,
        *,
        password: str | None = None,
        otp: str | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 8080),
    ) -> ConnectClient:
        """An ``ssgate connect`` for the enrolled account (not started)."""
        profile = Profile(
            path=Path("profile.toml"),
            account=TESTBED_ACCOUNT,
            gateway_host="gw.example.org",
            gateway_port=GATEWAY_ADDRESS.port,
            ca_fingerprint_sha256=self.ca.fingerprint_sha256(),
            ca_file=Path("ca.pem"),
            client_bundle=Path("client.p12"),
        )
        identity = ClientIdentity(
            ca=self.ca.certificate,
            key=self.client_certificate.key,
            certificate=self.client_certificate.certificate,
        )
        return ConnectClient(
            reactor=self.clock,
            profile=profile,
            identity=identity,
            password=self.password if password is None else password,
            otp=self.otp() if otp is None else otp,
            listen=listen,
            out=io.StringIO(),
            endpoint_for=lambda: self.gateway_endpoint,
        )

    def browse(
        self, client: ConnectClient, browser: RecordingProtocol | None = None
    ) -> tuple[RecordingProtocol, MemoryTransport]:
        """Open a browser connection to *client*'s local port.

        Returns the browser and the client's end of that connection.
        """
        assert client.port is not None, "the client is not listening"
        port, factory, _backlog, interface = self.clock.tcpServers[-1]
        local = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 61000))
        assert local is not None
        browser = browser or RecordingProtocol()
        _, local_end = self.network.connect(
            browser,
            local,
            client_address=IPv4Address("TCP", "127.0.0.1", 61000),
            server_address=IPv4Address("TCP", interface, port),
        )
        return browser, local_end

    # -- moving time and bytes ---------------------------------------------------------------

    def run(self) -> None:
        """Deliver everything that can be delivered now (no time passes)."""
        self.clock.advance(0)
        self.network.run()

    def elapse(self, seconds: int) -> None:
        """Let *seconds* pass one at a time, delivering everything after each."""
        for _ in range(seconds):
            self.clock.advance(1)
            self.network.run()

    # -- what happened -------------------------------------------------------------------

    @property
    def tunnels(self) -> list[GatewayTunnel]:
        """The gateway's tunnels, oldest first."""
        found = []
        for _, server_end in self.gateway_endpoint.connections:
            assert isinstance(server_end.protocol, GatewayTunnel)
            found.append(server_end.protocol)
        return found

    def audit_events(self, *actions: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            records = audit.query(conn, actions=actions or None)
        return [r.event for r in records]

    def session(self, session_id: str) -> SessionRecord | None:
        with self.engine.begin() as conn:
            return get_session(conn, session_id)
