"""A client certificate the TLS layer refuses against the CRL is in the audit log
(``tls.refused``, ``cert-revoked``, with the serial and the account it was issued
to), within a per-source budget, and the ``revoked-cert`` alert sees it.

The gateway's real tunnel (:class:`GatewayTunnel` over the testbed's context and
database) behind real TLS in memory (``iosim``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from twisted.internet import protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import FakeTransport, connectedServerAndClient

import audit
import certs
from gateway._service import GatewayTunnel, TlsRefusalBudget
from gateway._tls import ReloadingServerTLS, client_tls_options, server_tls_options
from gateway.testing import EMPLOYER_ADDRESS, GATEWAY_ADDRESS, TESTBED_ACCOUNT, ChannelTestbed

HOSTNAME = "gateway.test"


def _dial(bed: ChannelTestbed, tls: ReloadingServerTLS, client: certs.IssuedCertificate) -> None:
    """One connection from the employer with *client*'s certificate, run to its end."""
    server_factory = TLSMemoryBIOFactory(
        tls, False, protocol.Factory.forProtocol(lambda: GatewayTunnel(bed.ctx)), clock=bed.clock
    )
    options = client_tls_options(
        hostname=HOSTNAME,
        ca=bed.ca.certificate,
        client_key=client.key,
        client_certificate=client.certificate,
    )
    client_factory = TLSMemoryBIOFactory(
        options, True, protocol.Factory.forProtocol(protocol.Protocol), clock=bed.clock
    )
    _, _, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        serverTransportFactory=lambda p: FakeTransport(p, True, GATEWAY_ADDRESS, EMPLOYER_ADDRESS),
        clock=bed.clock,
    )
    pump.flush()


def _refusals(bed: ChannelTestbed) -> list[audit.AuditRecord]:
    with bed.engine.begin() as conn:
        return audit.query(conn, actions={"tls.refused"})


def test_a_revoked_certificate_refused_by_tls_is_audited_and_alerted(engine: Engine) -> None:
    bed = ChannelTestbed(engine)
    now = datetime.now(UTC)  # OpenSSL checks the CRL's dates against the real clock
    server = bed.ca.issue_server([HOSTNAME], now=now)
    revoked = bed.client_certificate
    crl = bed.ca.build_crl(
        [certs.RevokedEntry(revoked.serial_hex, now, "key_compromise")], now=now, crl_number=2
    )
    tls = ReloadingServerTLS(
        server_tls_options(
            certificate=server.certificate, key=server.key, ca=bed.ca.certificate, crl=crl
        )
    )
    bed.ctx.tls_refusals = TlsRefusalBudget(per_source_seconds=60.0)
    for _ in range(5):  # a client retrying in a loop
        _dial(bed, tls, revoked)
    [first] = _refusals(bed)
    e = first.event
    assert (e.action, e.outcome, e.reason, e.subject) == (
        "tls.refused",
        "refused",
        "cert-revoked",
        TESTBED_ACCOUNT,
    )
    assert e.details["certificate"] == revoked.serial_hex
    assert e.details["peer"] == "203.0.113.7:51000" and "suppressed" not in e.details

    bed.clock.advance(61)
    _dial(bed, tls, revoked)
    second = _refusals(bed)[-1].event
    assert second.details["suppressed"] == 4  # the four retries within the minute

    # A certificate the CA never issued: refused, logged, not audited.
    stranger = certs.CertificateAuthority.create("someone else", now=now)
    _dial(bed, tls, stranger.issue_client(TESTBED_ACCOUNT, now=now))
    assert len(_refusals(bed)) == 2

    with engine.begin() as conn:
        records = audit.query(conn, actions={"tls.refused"})
    findings = audit.find_alerts(records, after_seq=0, thresholds=audit.AlertThresholds())
    [alert] = [f for f in findings if f.rule == "revoked-cert"]
    assert alert.account == TESTBED_ACCOUNT and revoked.serial_hex in alert.summary
    assert alert.source == "203.0.113.7"
    assert set(alert.evidence.seqs) == {r.seq for r in records}


def test_the_budget_bounds_events_per_source_in_all_and_its_own_memory() -> None:
    budget = TlsRefusalBudget(per_source_seconds=60.0, per_minute=3, max_sources=2)
    assert budget.admit("192.0.2.1", 0.0) == 0
    assert budget.admit("192.0.2.1", 30.0) is None  # within the source's minute
    assert budget.admit("192.0.2.1", 61.0) == 1  # carries the one it suppressed
    assert [budget.admit(f"198.51.100.{i}", 62.0) for i in range(3)] == [0, 0, None]
    assert budget.admit("203.0.113.9", 70.0) is None  # three a minute in all
    assert budget.admit("203.0.113.9", 122.0) == 1  # a new minute
    assert len(budget._sources) <= 2  # the longest quiet hosts are forgotten
