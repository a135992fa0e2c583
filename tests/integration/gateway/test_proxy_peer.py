"""Behind a balancer that speaks PROXY v2 (a ``haproxy:`` gateway listener), every use
of the client's address takes it from the PROXY header, not from the balancer's TCP
connection: the session record, the ``login`` and ``tls.refused`` audit events, the
per-source throttle and ``allowed_sources`` (issue 13, "PROXY v2 in front").

The wrappers are the ones ``haproxy:tcp:…`` builds in ``serve``: Twisted's
:class:`HAProxyWrappingFactory` around the TLS factory around :class:`GatewayTunnel`,
over real TLS in memory (``iosim``), with the testbed's real cred portal, argon2,
TOTP and database, on SQLite and PostgreSQL.  The balancer's TCP connection comes from
:data:`BALANCER`; the header names :data:`CLIENT`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from twisted.internet import protocol
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHandshakeListener, ITransport
from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import FakeTransport, connectedServerAndClient
from zope.interface import implementer

import audit
import certs
from auth._store import source_failure_count
from gateway._cred import AccountPolicyView
from gateway._machine import AuthAccepted, AuthRejected, ClientMachine
from gateway._service import GatewayTunnel, TlsRefusalBudget
from gateway._tls import ReloadingServerTLS, client_tls_options, server_tls_options
from gateway.testing import (
    GATEWAY_ADDRESS,
    TESTBED_ACCOUNT,
    ChannelTestbed,
    default_policy,
)

HOSTNAME = "gateway.test"
BALANCER = IPv4Address("TCP", "10.9.8.7", 40001)  # the balancer's own connection
CLIENT = ("198.51.100.23", 52000)  # what the PROXY header says
OTHER_CLIENT = ("198.51.100.99", 52001)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2_header(source: tuple[str, int], dest: tuple[str, int] = ("192.0.2.1", 8443)) -> bytes:
    """A PROXY v2 header, command PROXY, TCP over IPv4 (as HAProxy's send-proxy-v2)."""
    body = (
        ipaddress.IPv4Address(source[0]).packed
        + ipaddress.IPv4Address(dest[0]).packed
        + struct.pack("!HH", source[1], dest[1])
    )
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


class _HeaderFirst(ProtocolWrapper):
    """The balancer's side: the PROXY header goes out before anything the client says."""

    def makeConnection(self, transport: ITransport) -> None:
        factory: Any = self.factory
        transport.write(factory.header)
        super().makeConnection(transport)


class _HeaderFirstFactory(WrappingFactory):
    protocol = _HeaderFirst

    def __init__(self, wrapped: protocol.Factory, header: bytes) -> None:
        super().__init__(wrapped)
        self.header = header


@implementer(IHandshakeListener)
@dataclass
class _Employer(protocol.Protocol):
    """The client's tunnel over TLS: HELLO and AUTH once the handshake completes."""

    account: str
    password: str
    otp: str
    machine: ClientMachine = field(default_factory=lambda: ClientMachine(client_name="test"))
    events: list[object] = field(default_factory=list)

    def handshakeCompleted(self) -> None:
        self.machine.authenticate(self.account, self.password, self.otp)
        self._flush()

    def dataReceived(self, data: bytes) -> None:
        self.events += self.machine.receive(data)
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.machine.data_to_send():
            self.transport.write(chunk)


@dataclass
class Balanced:
    """A gateway behind ``haproxy:`` wrapping, and a way to dial it through the balancer."""

    bed: ChannelTestbed
    tls: ReloadingServerTLS

    def dial(
        self,
        client: certs.IssuedCertificate,
        source: tuple[str, int],
        *,
        password: str | None = None,
        otp: str | None = None,
    ) -> tuple[GatewayTunnel, _Employer]:
        bed = self.bed
        tunnels: list[GatewayTunnel] = []

        def tunnel_for() -> GatewayTunnel:
            tunnels.append(GatewayTunnel(bed.ctx))
            return tunnels[-1]

        gateway_factory = HAProxyWrappingFactory(
            TLSMemoryBIOFactory(
                self.tls,
                False,
                protocol.Factory.forProtocol(tunnel_for),
                clock=bed.clock,
            )
        )
        employer = _Employer(
            TESTBED_ACCOUNT,
            bed.password if password is None else password,
            bed.otp() if otp is None else otp,
        )
        options = client_tls_options(
            hostname=HOSTNAME,
            ca=bed.ca.certificate,
            client_key=client.key,
            client_certificate=client.certificate,
        )
        client_factory = _HeaderFirstFactory(
            TLSMemoryBIOFactory(
                options, True, protocol.Factory.forProtocol(lambda: employer), clock=bed.clock
            ),
            proxy_v2_header(source),
        )
        connectedServerAndClient(
            lambda: gateway_factory.buildProtocol(BALANCER),
            lambda: client_factory.buildProtocol(GATEWAY_ADDRESS),
            serverTransportFactory=lambda p: FakeTransport(p, True, GATEWAY_ADDRESS, BALANCER),
            clock=bed.clock,
        )[2].flush()
        [tunnel] = tunnels
        return tunnel, employer


def _balanced(engine: Engine, *, revoke_client: bool = False) -> Balanced:
    """The testbed's gateway behind the wrappers; with *revoke_client*, its CRL lists
    the testbed's client certificate."""
    bed = ChannelTestbed(engine)
    now = datetime.now(UTC)  # OpenSSL checks the CRL's dates against the real clock
    server = bed.ca.issue_server([HOSTNAME], now=now)
    revoked = [bed.client_certificate.serial_hex] if revoke_client else []
    crl = bed.ca.build_crl(
        [certs.RevokedEntry(serial, now, "key_compromise") for serial in revoked],
        now=now,
        crl_number=2,
    )
    tls = ReloadingServerTLS(
        server_tls_options(
            certificate=server.certificate, key=server.key, ca=bed.ca.certificate, crl=crl
        )
    )
    return Balanced(bed, tls)


def _only_from(network: str) -> AccountPolicyView:
    d = default_policy()
    return AccountPolicyView(
        d.max_sessions, (network,), d.services, d.idle_timeout_seconds, d.max_lifetime_seconds
    )


def test_the_session_and_its_login_event_carry_the_address_from_the_proxy_header(
    engine: Engine,
) -> None:
    balanced = _balanced(engine)
    tunnel, employer = balanced.dial(balanced.bed.client_certificate, CLIENT)
    [accepted] = [e for e in employer.events if isinstance(e, AuthAccepted)]
    assert tunnel.peer == "198.51.100.23:52000"
    record = balanced.bed.session(accepted.session_id)
    assert record is not None and record.peer == "198.51.100.23:52000"
    [login] = balanced.bed.audit_events("login")
    assert login.details["peer"] == "198.51.100.23:52000"


def test_allowed_sources_applies_to_the_proxied_address_not_the_balancers(engine: Engine) -> None:
    balanced = _balanced(engine)
    balanced.bed.policy = _only_from("198.51.100.23/32")
    _, admitted = balanced.dial(balanced.bed.client_certificate, CLIENT)
    assert any(isinstance(e, AuthAccepted) for e in admitted.events)

    balanced.bed.clock.advance(30)  # the next TOTP step (each is accepted once)
    _, refused = balanced.dial(balanced.bed.client_certificate, OTHER_CLIENT)
    [rejected] = [e for e in refused.events if isinstance(e, AuthRejected)]
    assert rejected.reason.slug == "source-denied"
    denied = balanced.bed.audit_events("login")[-1]
    assert (denied.reason, denied.details["peer"]) == ("source-denied", "198.51.100.99:52001")


def test_the_per_source_throttle_counts_the_proxied_address(engine: Engine) -> None:
    balanced = _balanced(engine)
    _, employer = balanced.dial(balanced.bed.client_certificate, CLIENT, password="wrong-password")
    assert any(isinstance(e, AuthRejected) for e in employer.events)
    now = balanced.bed.clock.seconds()
    with engine.begin() as conn:
        counts = {
            host: source_failure_count(conn, host, now=now, window_seconds=900)
            for host in (CLIENT[0], BALANCER.host)
        }
    assert counts == {CLIENT[0]: 1, BALANCER.host: 0}


def test_a_revoked_certificate_refused_at_tls_is_audited_with_the_proxied_address(
    engine: Engine,
) -> None:
    balanced = _balanced(engine, revoke_client=True)
    balanced.bed.ctx.tls_refusals = TlsRefusalBudget(per_source_seconds=60.0)
    tunnel, _ = balanced.dial(balanced.bed.client_certificate, CLIENT)
    assert tunnel.certificate is None  # refused at the handshake
    with engine.begin() as conn:
        [record] = audit.query(conn, actions={"tls.refused"})
    assert record.event.reason == "cert-revoked"
    assert record.event.details["peer"] == "198.51.100.23:52000"
