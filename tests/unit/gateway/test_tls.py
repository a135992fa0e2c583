"""TLS options, CRL checking and live reload, with both peers in memory (iosim).

No sockets: ``twisted.test.iosim`` moves the bytes, and ``TLSMemoryBIOFactory`` gets
a ``task.Clock`` (its write buffering flushes on the clock). OpenSSL checks
certificate and CRL validity against the wall clock, so the PKI is issued at "now".
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import protocol, task
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump, connectedServerAndClient
from zope.interface import implementer

from certs import CertificateAuthority, IssuedCertificate, RevokedEntry, account_of, crl_pem
from gateway._tls import (
    CIPHERS,
    CAWithCRL,
    HandshakeDeadline,
    ReloadingServerTLS,
    client_tls_options,
    load_state_server_tls,
    peer_certificate,
    server_tls_options,
    state_crl_watcher,
    tls_version_and_cipher,
)

NOW = datetime.now(UTC)
ACCOUNT = "33068212345678@sxlss"
OTHER_ACCOUNT = "33068200000001@sxlss"
HOSTNAME = "gw.example.org"


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    server: IssuedCertificate
    good: IssuedCertificate
    revoked: IssuedCertificate
    # A CRL listing nothing, and one listing ``revoked``.
    empty_crl: x509.CertificateRevocationList
    crl: x509.CertificateRevocationList

    def server_options(
        self, crl: x509.CertificateRevocationList | None, *, require_client_cert: bool = True
    ) -> CertificateOptions:
        return server_tls_options(
            certificate=self.server.certificate,
            key=self.server.key,
            ca=self.ca.certificate,
            crl=crl,
            require_client_cert=require_client_cert,
        )

    def client_options(
        self, client: IssuedCertificate, *, hostname: str = HOSTNAME
    ) -> IOpenSSLClientConnectionCreator:
        return client_tls_options(
            hostname=hostname,
            ca=self.ca.certificate,
            client_key=client.key,
            client_certificate=client.certificate,
        )

    def crl_revoking(
        self, *issued: IssuedCertificate, number: int
    ) -> x509.CertificateRevocationList:
        entries = [RevokedEntry(i.serial_hex, NOW, "key_compromise") for i in issued]
        return self.ca.build_crl(entries, now=NOW, crl_number=number)


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = CertificateAuthority.create("ssgate tls test CA", now=NOW)
    revoked = ca.issue_client(OTHER_ACCOUNT, now=NOW)
    return Pki(
        ca=ca,
        server=ca.issue_server([HOSTNAME, "127.0.0.1"], now=NOW),
        good=ca.issue_client(ACCOUNT, now=NOW),
        revoked=revoked,
        empty_crl=ca.build_crl([], now=NOW, crl_number=1),
        crl=ca.build_crl(
            [RevokedEntry(revoked.serial_hex, NOW, "key_compromise")], now=NOW, crl_number=2
        ),
    )


@implementer(IHandshakeListener)
class Peer(protocol.Protocol):
    """Records the handshake, the peer certificate, data and the end; echoes if asked."""

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo
        self.handshake_done = False
        self.peer: x509.Certificate | None = None
        self.version_and_cipher: tuple[str, str] | None = None
        self.received = b""
        self.lost: Failure | None = None

    def handshakeCompleted(self) -> None:
        self.handshake_done = True
        self.peer = peer_certificate(self.transport)
        self.version_and_cipher = tls_version_and_cipher(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.echo:
            assert self.transport is not None
            self.transport.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.lost = reason


@dataclass
class Connection:
    server: Peer
    client: Peer
    pump: IOPump

    def send(self, data: bytes) -> bytes:
        """Client sends *data*; what the echoing server sent back."""
        before = len(self.client.received)
        assert self.client.transport is not None
        self.client.transport.write(data)
        self.pump.flush()
        return self.client.received[before:]


def connect(
    server_tls: IOpenSSLServerConnectionCreator,
    client_tls: IOpenSSLClientConnectionCreator,
    clock: task.Clock | None = None,
) -> Connection:
    """A TLS connection in memory between an echoing server and a client, handshake run."""
    clock = clock if clock is not None else task.Clock()
    server, client = Peer(echo=True), Peer()
    server_factory = TLSMemoryBIOFactory(
        server_tls, False, protocol.Factory.forProtocol(lambda: server), clock=clock
    )
    client_factory = TLSMemoryBIOFactory(
        client_tls, True, protocol.Factory.forProtocol(lambda: client), clock=clock
    )
    _, _, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        clock=clock,
    )
    # flush() advances the clock by 0 between rounds, which releases buffered writes.
    pump.flush()
    return Connection(server, client, pump)


def failure_text(failure: Failure | None) -> str:
    assert failure is not None, "the connection is still up"
    assert isinstance(failure.value, SSL.Error), failure
    return str(failure.value)


def assert_refused(conn: Connection, client_sees: str) -> None:
    """The server never completed the handshake and the client got *client_sees*."""
    assert not conn.server.handshake_done
    assert conn.server.peer is None
    assert "certificate verify failed" in failure_text(conn.server.lost)
    assert client_sees in failure_text(conn.client.lost)


# --- server and client options ---------------------------------------------------


def test_good_client_certificate_handshakes_and_server_sees_the_account(pki: Pki) -> None:
    """A CA-issued, unrevoked client certificate: TLS 1.3, and the server reads its account."""
    conn = connect(ReloadingServerTLS(pki.server_options(pki.crl)), pki.client_options(pki.good))

    assert conn.server.handshake_done
    assert conn.server.peer == pki.good.certificate
    assert account_of(conn.server.peer) == ACCOUNT
    assert conn.server.version_and_cipher is not None
    version, cipher = conn.server.version_and_cipher
    assert version == "TLSv1.3"
    assert cipher in {
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    }
    # The client verified the server and sees the server's certificate.
    assert conn.client.peer == pki.server.certificate
    assert conn.send(b"hello") == b"hello"
    assert conn.server.lost is None and conn.client.lost is None


def test_revoked_client_certificate_is_refused(pki: Pki) -> None:
    """A certificate on the CRL fails the handshake with the 'certificate revoked' alert."""
    conn = connect(ReloadingServerTLS(pki.server_options(pki.crl)), pki.client_options(pki.revoked))
    assert_refused(conn, "tls alert certificate revoked")


def test_the_serial_of_a_refused_revoked_certificate_is_noted(pki: Pki) -> None:
    """OpenSSL keeps no peer certificate after a failed handshake: the verify callback
    notes the revoked leaf's serial, for the ``tls.refused`` audit event."""
    from gateway._tls import refused_revoked_serial

    server_tls = ReloadingServerTLS(pki.server_options(pki.crl))
    refused = connect(server_tls, pki.client_options(pki.revoked))
    assert_refused(refused, "tls alert certificate revoked")
    serial = format(pki.revoked.certificate.serial_number, "x")
    assert refused_revoked_serial(refused.server.transport) == serial
    accepted = connect(server_tls, pki.client_options(pki.good))
    assert accepted.server.handshake_done
    assert refused_revoked_serial(accepted.server.transport) == ""


def test_client_without_certificate_is_refused(pki: Pki) -> None:
    """No client certificate: TLS 1.3 'certificate required' alert."""
    client = CertificateOptions(trustRoot=CAWithCRL([pki.ca.certificate]))
    conn = connect(ReloadingServerTLS(pki.server_options(pki.crl)), client)
    assert not conn.server.handshake_done
    assert "certificate required" in failure_text(conn.client.lost)


def test_client_certificate_from_another_ca_is_refused(pki: Pki) -> None:
    """A certificate the CA did not issue is refused ('unknown ca'), account or not."""
    stranger = CertificateAuthority.create("someone else's CA", now=NOW).issue_client(
        ACCOUNT, now=NOW
    )
    conn = connect(ReloadingServerTLS(pki.server_options(pki.crl)), pki.client_options(stranger))
    assert_refused(conn, "alert unknown ca")


def test_crl_signed_by_another_ca_refuses_everyone(pki: Pki) -> None:
    """With CRL_CHECK, the CA's own CRL is required: a foreign CRL does not count (fail closed)."""
    foreign = CertificateAuthority.create("foreign", now=NOW).build_crl([], now=NOW, crl_number=1)
    trust_root = CAWithCRL([pki.ca.certificate], [foreign])
    server = CertificateOptions(
        privateKey=pki.server.key,  # type: ignore[arg-type]
        certificate=pki.server.certificate,  # type: ignore[arg-type]
        trustRoot=trust_root,
    )
    conn = connect(ReloadingServerTLS(server), pki.client_options(pki.good))
    assert not conn.server.handshake_done
    assert conn.client.lost is not None


def test_without_crl_any_ca_issued_client_is_accepted(pki: Pki) -> None:
    """crl=None checks the CA only (no CRL_CHECK flag, which would refuse everyone)."""
    conn = connect(ReloadingServerTLS(pki.server_options(None)), pki.client_options(pki.revoked))
    assert conn.server.handshake_done
    assert account_of(conn.server.peer) == OTHER_ACCOUNT  # type: ignore[arg-type]


def test_staff_console_options_ask_for_no_client_certificate(pki: Pki) -> None:
    """require_client_cert=False: a client without a certificate handshakes; no peer cert."""
    client = CertificateOptions(trustRoot=CAWithCRL([pki.ca.certificate]))
    server = pki.server_options(None, require_client_cert=False)
    conn = connect(ReloadingServerTLS(server), client)
    assert conn.server.handshake_done
    assert conn.server.peer is None
    assert conn.send(b"x") == b"x"


def test_client_refuses_a_server_certificate_for_another_name(pki: Pki) -> None:
    """The client checks the server's name against the certificate (service_identity)."""
    conn = connect(
        ReloadingServerTLS(pki.server_options(pki.crl)),
        pki.client_options(pki.good, hostname="other.example.org"),
    )
    assert not conn.client.handshake_done
    assert conn.client.lost is not None
    assert conn.client.lost.check(VerificationError)
    assert "DNSMismatch" in repr(conn.client.lost.value)
    assert not conn.server.handshake_done
    assert conn.server.lost is not None


def test_client_accepts_the_server_by_ip_address(pki: Pki) -> None:
    """An IP literal as hostname matches the certificate's IP SAN."""
    conn = connect(
        ReloadingServerTLS(pki.server_options(pki.crl)),
        pki.client_options(pki.good, hostname="127.0.0.1"),
    )
    assert conn.server.handshake_done
    assert conn.send(b"ip") == b"ip"


def test_client_refuses_a_server_from_another_ca(pki: Pki) -> None:
    """The client trusts only our CA, not the platform's roots or another private CA."""
    other = CertificateAuthority.create("impostor CA", now=NOW)
    impostor = other.issue_server([HOSTNAME], now=NOW)
    server = server_tls_options(
        certificate=impostor.certificate,
        key=impostor.key,
        ca=pki.ca.certificate,
        crl=pki.crl,
    )
    conn = connect(ReloadingServerTLS(server), pki.client_options(pki.good))
    assert not conn.client.handshake_done
    assert "certificate verify failed" in failure_text(conn.client.lost)


def test_tls_1_2_uses_ecdhe_with_aead(pki: Pki) -> None:
    """A TLS 1.2-only client gets an ECDHE + AES-GCM/ChaCha20 suite."""
    client = CertificateOptions(
        privateKey=pki.good.key,  # type: ignore[arg-type]
        certificate=pki.good.certificate,  # type: ignore[arg-type]
        trustRoot=CAWithCRL([pki.ca.certificate]),
        lowerMaximumSecurityTo=TLSVersion.TLSv1_2,
    )
    conn = connect(ReloadingServerTLS(pki.server_options(pki.crl)), client)
    assert conn.server.version_and_cipher is not None
    version, cipher = conn.server.version_and_cipher
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-")
    assert "GCM" in cipher or "CHACHA20" in cipher
    assert CIPHERS == "ECDHE+AESGCM:ECDHE+CHACHA20"


def test_tls_1_2_without_forward_secrecy_is_refused(pki: Pki) -> None:
    """A TLS 1.2 client offering only static-RSA or CBC suites finds no shared cipher.

    ECDHE-ECDSA-AES128-SHA would suit our ECDSA key: only the cipher policy refuses it.
    """
    client = CertificateOptions(
        privateKey=pki.good.key,  # type: ignore[arg-type]
        certificate=pki.good.certificate,  # type: ignore[arg-type]
        trustRoot=CAWithCRL([pki.ca.certificate]),
        lowerMaximumSecurityTo=TLSVersion.TLSv1_2,
        acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(  # type: ignore[no-untyped-call, unused-ignore]
            "ECDHE-ECDSA-AES128-SHA:AES128-GCM-SHA256:AES128-SHA"
        ),
    )
    conn = connect(ReloadingServerTLS(pki.server_options(pki.crl)), client)
    assert not conn.server.handshake_done
    assert "no shared cipher" in failure_text(conn.server.lost)


def test_peer_certificate_and_cipher_on_a_plain_transport() -> None:
    """Off TLS there is no peer certificate, and no version or cipher to report."""
    assert peer_certificate(StringTransport()) is None
    assert peer_certificate(None) is None
    with pytest.raises(ValueError, match="not a TLS transport"):
        tls_version_and_cipher(StringTransport())


def test_options_with_a_mismatched_key_fail_when_built(pki: Pki) -> None:
    """ReloadingServerTLS builds the context at once: a wrong key fails at startup."""
    options = server_tls_options(
        certificate=pki.server.certificate, key=pki.good.key, ca=pki.ca.certificate, crl=pki.crl
    )
    with pytest.raises(SSL.Error):
        ReloadingServerTLS(options)


# --- reload -------------------------------------------------------------------------


def test_reload_applies_to_new_connections_and_leaves_live_ones_alone(pki: Pki) -> None:
    """After reload with a CRL revoking a certificate, a NEW connection with it fails,
    while the connection made before keeps working on the old, unchanged context."""
    old_options = pki.server_options(pki.empty_crl)
    tls = ReloadingServerTLS(old_options)
    old_context = old_options.getContext()
    before = connect(tls, pki.client_options(pki.good))
    assert before.server.handshake_done

    new_options = pki.server_options(pki.crl_revoking(pki.good, number=3))
    tls.reload(new_options)

    assert tls.options is new_options
    assert new_options.getContext() is not old_context
    assert old_options.getContext() is old_context
    after = connect(tls, pki.client_options(pki.good))
    assert_refused(after, "tls alert certificate revoked")
    # The old connection is still up and still carries data.
    assert before.send(b"still here") == b"still here"
    assert before.server.lost is None


def test_reload_refuses_unusable_options_and_keeps_the_old(pki: Pki) -> None:
    """reload() builds the new context first: on an OpenSSL error nothing changes."""
    current = pki.server_options(pki.crl)
    tls = ReloadingServerTLS(current)
    broken = server_tls_options(
        certificate=pki.server.certificate, key=pki.good.key, ca=pki.ca.certificate, crl=pki.crl
    )
    with pytest.raises(SSL.Error):
        tls.reload(broken)
    assert tls.options is current
    assert connect(tls, pki.client_options(pki.good)).server.handshake_done


# --- the state directory and the watcher ---------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """As ``ssgate provision cancel`` does: a temporary file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def state_dir(tmp_path: Path, pki: Pki) -> Path:
    (tmp_path / "server.pem").write_bytes(pki.server.cert_pem())
    (tmp_path / "server-key.pem").write_bytes(pki.server.key_pem())
    (tmp_path / "ca.pem").write_bytes(pki.ca.cert_pem())
    (tmp_path / "crl.pem").write_bytes(crl_pem(pki.empty_crl))
    return tmp_path


@pytest.fixture
def logged() -> Iterator[Sequence[LogEvent]]:
    with capturedLogs() as events:
        yield events


def warnings_in(events: Sequence[LogEvent]) -> list[str]:
    return [
        formatEvent(e)
        for e in events
        if e.get("log_level") is not None and e["log_level"].name == "warn"
    ]


def test_load_state_server_tls_reads_the_four_files(state_dir: Path, pki: Pki) -> None:
    """server.pem, server-key.pem, ca.pem and crl.pem make working gateway options."""
    material = load_state_server_tls(state_dir)
    assert material.crl == pki.empty_crl
    conn = connect(ReloadingServerTLS(material.options), pki.client_options(pki.good))
    assert conn.server.handshake_done


def test_load_state_server_tls_requires_crl_for_client_certificates(state_dir: Path) -> None:
    """No crl.pem: the gateway does not start without a revocation check."""
    (state_dir / "crl.pem").unlink()
    with pytest.raises(FileNotFoundError):
        load_state_server_tls(state_dir)
    # The staff console does not check client certificates and needs no CRL.
    assert load_state_server_tls(state_dir, require_client_cert=False).crl is None


def test_load_state_server_tls_refuses_a_crl_from_another_ca(state_dir: Path) -> None:
    """A CRL that the CA in ca.pem did not sign is an error naming crl.pem."""
    foreign = CertificateAuthority.create("foreign", now=NOW).build_crl([], now=NOW, crl_number=5)
    (state_dir / "crl.pem").write_bytes(crl_pem(foreign))
    with pytest.raises(ValueError, match=r"crl\.pem: not signed by the CA"):
        load_state_server_tls(state_dir)


def test_load_state_server_tls_names_an_unreadable_file_without_its_content(
    state_dir: Path,
) -> None:
    """A corrupt server-key.pem gives an error with the file name and none of the bytes."""
    (state_dir / "server-key.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nSECRETJUNK\n")
    with pytest.raises(ValueError, match=r"server-key\.pem: not a readable PEM") as info:
        load_state_server_tls(state_dir)
    assert "SECRETJUNK" not in str(info.value)


def test_watcher_picks_up_a_rewritten_crl_within_one_interval(state_dir: Path, pki: Pki) -> None:
    """A new crl.pem is in force for new connections after one poll, and on_change gets it."""
    clock = task.Clock()
    tls = ReloadingServerTLS(load_state_server_tls(state_dir).options)
    changes: list[x509.CertificateRevocationList | None] = []
    watcher = state_crl_watcher(clock, tls, state_dir, on_change=changes.append)
    watcher.startService()
    try:
        assert changes == []  # the load on start is not a change
        assert connect(tls, pki.client_options(pki.good)).server.handshake_done
        clock.advance(1.0)
        assert changes == []  # nothing changed on disk
        started_with = tls.options

        new_crl = pki.crl_revoking(pki.good, number=7)
        write_atomically(state_dir / "crl.pem", crl_pem(new_crl))
        clock.advance(1.0)

        assert changes == [new_crl]
        assert watcher.current_crl == new_crl
        assert tls.options is not started_with
        assert_refused(connect(tls, pki.client_options(pki.good)), "certificate revoked")
        clock.advance(5.0)
        assert changes == [new_crl]  # reported once
    finally:
        watcher.stopService()
    assert not clock.getDelayedCalls()


def test_watcher_keeps_the_old_options_on_a_corrupt_crl(
    state_dir: Path, pki: Pki, logged: Sequence[LogEvent]
) -> None:
    """An unparseable crl.pem: old options stay, one warning, no on_change; a later good
    file is picked up."""
    clock = task.Clock()
    tls = ReloadingServerTLS(load_state_server_tls(state_dir).options)
    changes: list[x509.CertificateRevocationList | None] = []
    watcher = state_crl_watcher(clock, tls, state_dir, on_change=changes.append)
    watcher.startService()
    try:
        kept = tls.options
        write_atomically(state_dir / "crl.pem", b"-----BEGIN X509 CRL-----\ngarbage\n")
        clock.advance(1.0)
        clock.advance(1.0)
        clock.advance(1.0)

        assert tls.options is kept
        assert changes == []
        warned = warnings_in(logged)
        assert len(warned) == 1, warned
        assert "keeping the previous ones" in warned[0]
        assert "crl.pem" in warned[0]
        assert connect(tls, pki.client_options(pki.revoked)).server.handshake_done

        fixed = pki.crl_revoking(pki.revoked, number=8)
        write_atomically(state_dir / "crl.pem", crl_pem(fixed))
        clock.advance(1.0)
        assert changes == [fixed]
        assert_refused(connect(tls, pki.client_options(pki.revoked)), "certificate revoked")
    finally:
        watcher.stopService()


def test_watcher_keeps_the_old_options_when_crl_disappears(
    state_dir: Path, pki: Pki, logged: Sequence[LogEvent]
) -> None:
    """A deleted crl.pem never turns revocation checking off: old options stay."""
    clock = task.Clock()
    tls = ReloadingServerTLS(load_state_server_tls(state_dir).options)
    watcher = state_crl_watcher(clock, tls, state_dir)
    watcher.startService()
    try:
        kept = tls.options
        (state_dir / "crl.pem").unlink()
        clock.advance(1.0)
        assert tls.options is kept
        assert len(warnings_in(logged)) == 1
    finally:
        watcher.stopService()


def test_a_poll_without_a_free_descriptor_is_skipped_not_a_missing_file(
    state_dir: Path, pki: Pki, logged: Sequence[LogEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway at its descriptor limit cannot open crl.pem: that is no change (no
    warning that the files are unusable, no reload), and the next poll with a
    descriptor free sees a real change as usual."""
    import errno

    clock = task.Clock()
    tls = ReloadingServerTLS(load_state_server_tls(state_dir).options)
    changes: list[x509.CertificateRevocationList | None] = []
    watcher = state_crl_watcher(clock, tls, state_dir, on_change=changes.append)
    watcher.startService()
    try:
        kept = tls.options
        real_open = Path.open

        def no_descriptor(self: Path, *args: object, **kwargs: object) -> object:
            raise OSError(errno.EMFILE, "Too many open files", str(self))

        monkeypatch.setattr(Path, "open", no_descriptor)
        clock.advance(1.0)
        assert tls.options is kept and warnings_in(logged) == []

        monkeypatch.setattr(Path, "open", real_open)
        new_crl = pki.crl_revoking(pki.good, number=9)
        write_atomically(state_dir / "crl.pem", crl_pem(new_crl))
        clock.advance(1.0)
        assert changes == [new_crl] and warnings_in(logged) == []
    finally:
        watcher.stopService()


def test_watcher_survives_a_failing_on_change(
    state_dir: Path, pki: Pki, logged: Sequence[LogEvent]
) -> None:
    """A bug in on_change is logged; the new options are in force and polling goes on."""
    clock = task.Clock()
    tls = ReloadingServerTLS(load_state_server_tls(state_dir).options)
    calls: list[object] = []

    def on_change(crl: x509.CertificateRevocationList | None) -> None:
        calls.append(crl)
        raise RuntimeError("boom")

    watcher = state_crl_watcher(clock, tls, state_dir, on_change=on_change)
    watcher.startService()
    try:
        write_atomically(state_dir / "crl.pem", crl_pem(pki.crl_revoking(pki.good, number=9)))
        clock.advance(1.0)
        write_atomically(state_dir / "crl.pem", crl_pem(pki.crl_revoking(pki.good, number=10)))
        clock.advance(1.0)
    finally:
        watcher.stopService()
    assert len(calls) == 2
    assert any(e.get("log_failure") is not None for e in logged)


# --- handshake deadline ------------------------------------------------------------


class DeadlineServer(Peer):
    def __init__(self, deadline: HandshakeDeadline) -> None:
        super().__init__()
        self.deadline = deadline

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.deadline.start(self.transport)

    def handshakeCompleted(self) -> None:
        self.deadline.stop()
        super().handshakeCompleted()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.deadline.stop()
        super().connectionLost(reason)


def test_handshake_deadline_closes_a_silent_client_after_10_seconds(pki: Pki) -> None:
    """A client that connects and never says anything is closed at 10 s, not before."""
    clock = task.Clock()
    deadline = HandshakeDeadline(clock)
    server = DeadlineServer(deadline)
    server_factory = TLSMemoryBIOFactory(
        ReloadingServerTLS(pki.server_options(pki.crl)),
        False,
        protocol.Factory.forProtocol(lambda: server),
        clock=clock,
    )
    silent = protocol.Protocol()
    _, _, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(None), lambda: silent, clock=clock
    )
    clock.advance(9.9)
    pump.flush()
    assert not deadline.expired
    assert server.lost is None
    clock.advance(0.1)
    pump.flush()
    assert deadline.expired
    assert server.lost is not None
    assert not clock.getDelayedCalls()


def test_handshake_deadline_is_cancelled_by_a_completed_handshake(pki: Pki) -> None:
    """After the handshake the deadline is gone: a quiet session is not cut at 10 s."""
    clock = task.Clock()
    deadline = HandshakeDeadline(clock)
    server = DeadlineServer(deadline)
    client = Peer()
    server_factory = TLSMemoryBIOFactory(
        ReloadingServerTLS(pki.server_options(pki.crl)),
        False,
        protocol.Factory.forProtocol(lambda: server),
        clock=clock,
    )
    client_factory = TLSMemoryBIOFactory(
        pki.client_options(pki.good),
        True,
        protocol.Factory.forProtocol(lambda: client),
        clock=clock,
    )
    _, _, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        clock=clock,
    )
    pump.flush()
    assert server.handshake_done
    clock.advance(60)
    pump.flush()
    assert not deadline.expired
    assert server.lost is None


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("unsupported protocol", "tls-version"),
        ("peer did not return a certificate", "no-client-cert"),
        ("tlsv13 alert certificate required", "no-client-cert"),
        ("certificate verify failed", "cert-untrusted"),
        ("tlsv1 alert unknown ca", "cert-untrusted"),
        ("no shared cipher", "tls-cipher"),
        ("http request", "not-tls"),
        ("something new in OpenSSL 9", "tls-failed"),
    ],
)
def test_a_failed_handshake_gets_a_reason_code_from_openssls_words(message: str, code: str) -> None:
    """Refused handshakes are logged with a reason code, not OpenSSL's raw text."""
    from OpenSSL import SSL

    from gateway._tls import tls_refusal_reason

    assert tls_refusal_reason(SSL.Error([("SSL routines", "", message)])) == code


def test_a_handshake_that_never_came_or_timed_out_has_its_own_reason_code() -> None:
    from twisted.internet.error import ConnectionDone

    from gateway._tls import tls_refusal_reason

    assert tls_refusal_reason(ConnectionDone()) == "closed-before-handshake"
    assert tls_refusal_reason(None, timed_out=True) == "tls-timeout"


# --- the CRL shared in the database (issue 13) ---------------------------------------

from twisted.internet.defer import Deferred, fail, succeed  # noqa: E402

from gateway._tls import SharedCrl, SharedCrlWatcher  # noqa: E402


class FakeCrlSource:
    """The database's CRL as the watcher's fetch sees it: a number and a CRL, and the
    fetches asked for (each answered at once unless *hold* is set)."""

    def __init__(self, crl: SharedCrl) -> None:
        self.current = crl
        self.asked: list[int] = []
        self.hold: Deferred[SharedCrl | None] | None = None
        self.broken = False

    def fetch(self, known: int) -> Deferred[SharedCrl | None]:
        self.asked.append(known)
        if self.broken:
            return fail(ConnectionError("database down"))
        if self.hold is not None:
            return self.hold
        return succeed(None if self.current.number == known else self.current)


def shared_watcher(
    pki: Pki, source: FakeCrlSource, clock: task.Clock
) -> tuple[SharedCrlWatcher, ReloadingServerTLS, list[x509.CertificateRevocationList | None]]:
    tls = ReloadingServerTLS(pki.server_options(source.current.crl))
    changes: list[x509.CertificateRevocationList | None] = []
    watcher = SharedCrlWatcher(
        clock,
        tls,
        source.current,
        source.fetch,
        pki.server_options,
        on_change=changes.append,
    )
    return watcher, tls, changes


def test_shared_crl_watcher_applies_a_newer_database_crl_at_the_next_poll(pki: Pki) -> None:
    """A CRL stored with a higher number refuses its certificates on new connections
    after one poll, and the gateway is told once (to end live sessions)."""
    clock = task.Clock()
    source = FakeCrlSource(SharedCrl(1, pki.empty_crl))
    watcher, tls, changes = shared_watcher(pki, source, clock)
    watcher.startService()
    try:
        clock.advance(1.0)
        assert source.asked == [1] and changes == []
        assert connect(tls, pki.client_options(pki.good)).server.handshake_done

        revoking = pki.crl_revoking(pki.good, number=9)
        source.current = SharedCrl(9, revoking)
        clock.advance(1.0)

        assert changes == [revoking]
        assert (watcher.current_number, watcher.current_crl) == (9, revoking)
        assert_refused(connect(tls, pki.client_options(pki.good)), "certificate revoked")
        clock.advance(3.0)
        assert changes == [revoking] and source.asked[-1] == 9
    finally:
        watcher.stopService()
    assert not clock.getDelayedCalls()


def test_shared_crl_watcher_keeps_its_crl_while_the_database_fails_and_logs_once(
    pki: Pki, logged: Sequence[LogEvent]
) -> None:
    """A failing fetch keeps the options in use (one warning per outage); the first
    poll after recovery applies what changed meanwhile."""
    clock = task.Clock()
    source = FakeCrlSource(SharedCrl(1, pki.empty_crl))
    watcher, tls, changes = shared_watcher(pki, source, clock)
    watcher.startService()
    try:
        before = tls.options
        source.broken = True
        clock.advance(1.0)
        clock.advance(1.0)
        assert tls.options is before
        assert len([w for w in warnings_in(logged) if "shared CRL" in w]) == 1
        source.broken = False
        source.current = SharedCrl(2, pki.crl)
        clock.advance(1.0)
        assert changes == [pki.crl] and tls.options is not before
    finally:
        watcher.stopService()


def test_shared_crl_watcher_asks_once_at_a_time_when_the_database_is_slow(pki: Pki) -> None:
    """While a fetch is unanswered, polls do not pile further queries on the database."""
    clock = task.Clock()
    source = FakeCrlSource(SharedCrl(1, pki.empty_crl))
    source.hold = Deferred()
    watcher, _, changes = shared_watcher(pki, source, clock)
    watcher.startService()
    try:
        clock.advance(1.0)
        clock.advance(1.0)
        clock.advance(1.0)
        assert source.asked == [1]
        source.hold.callback(SharedCrl(2, pki.crl))
        assert changes == [pki.crl]
        source.hold = None
        clock.advance(1.0)
        assert source.asked == [1, 2]
    finally:
        watcher.stopService()


def test_shared_crl_watcher_keeps_the_old_options_for_a_crl_it_cannot_use(
    pki: Pki, logged: Sequence[LogEvent]
) -> None:
    """A stored CRL that the options refuse (another CA's) is not swapped in, and the
    gateway is not told to end sessions over it."""
    clock = task.Clock()
    other = CertificateAuthority.create("another CA", now=NOW).build_crl([], now=NOW, crl_number=5)
    source = FakeCrlSource(SharedCrl(1, pki.empty_crl))

    def build(crl: x509.CertificateRevocationList) -> CertificateOptions:
        if crl is other:
            raise ValueError("the shared CRL is not signed by the CA")
        return pki.server_options(crl)

    tls = ReloadingServerTLS(pki.server_options(pki.empty_crl))
    changes: list[x509.CertificateRevocationList | None] = []
    watcher = SharedCrlWatcher(
        clock, tls, source.current, source.fetch, build, on_change=changes.append
    )
    watcher.startService()
    try:
        before = tls.options
        source.current = SharedCrl(5, other)
        clock.advance(1.0)
        assert tls.options is before and changes == [] and watcher.current_number == 1
        assert any("not signed by the CA" in w for w in warnings_in(logged))
    finally:
        watcher.stopService()
