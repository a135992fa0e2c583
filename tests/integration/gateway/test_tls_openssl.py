"""The gateway's TLS policy seen by a real peer: ``openssl s_client`` over loopback.

A Twisted echo server listens on 127.0.0.1 with :class:`ReloadingServerTLS`; each test
runs ``s_client`` as a child process of the reactor (never blocking it) and checks
its exit status and the alert it printed. ``-ign_eof`` keeps s_client reading after
it sent its line, so a TLS 1.3 refusal (which arrives after the client's handshake)
is seen; the server closes after echoing a line, which ends a good run with status 0.
Every wait has a timeout inside the reactor.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from cryptography import x509
from twisted.internet import protocol
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IHandshakeListener, IListeningPort
from twisted.python.failure import Failure
from zope.interface import implementer

from certs import (
    CertificateAuthority,
    IssuedCertificate,
    RevokedEntry,
    account_of,
    crl_pem,
)
from gateway._tls import (
    ReloadingServerTLS,
    load_state_server_tls,
    peer_certificate,
    server_tls_options,
    state_crl_watcher,
)

OPENSSL = shutil.which("openssl")
pytestmark = [
    pytest.mark.skipif(OPENSSL is None, reason="openssl binary not installed"),
    pytest.mark.slow,
]

ACCOUNT = "33068212345678@sxlss"
REVOKED_ACCOUNT = "33068200000001@sxlss"
# s_client and the server run on one machine: a few seconds is already generous.
PROCESS_TIMEOUT = 20.0
# The whole test, inside the reactor (pytest-timeout would kill the reactor for all).
TEST_TIMEOUT = 60.0

P = ParamSpec("P")
AsyncTest = Callable[P, Coroutine[Any, Any, None]]


def reactor_test(test: AsyncTest[P]) -> AsyncTest[P]:
    """Run *test* on the reactor (pytest-twisted), failing it after TEST_TIMEOUT seconds."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        from twisted.internet import reactor

        await Deferred.fromCoroutine(test(*args, **kwargs)).addTimeout(TEST_TIMEOUT, reactor)

    marked: AsyncTest[P] = pytest_twisted.ensureDeferred(run)
    return marked


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: CertificateAuthority
    server: IssuedCertificate
    good: IssuedCertificate
    revoked: IssuedCertificate
    stranger: IssuedCertificate
    crl: x509.CertificateRevocationList

    def client_args(self, name: str) -> list[str]:
        return ["-cert", str(self.dir / f"{name}.pem"), "-key", str(self.dir / f"{name}-key.pem")]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    now = datetime.now(UTC)
    ca = CertificateAuthority.create("ssgate interop CA", now=now)
    server = ca.issue_server(["gw.example.org", "127.0.0.1"], now=now)
    good = ca.issue_client(ACCOUNT, now=now)
    revoked = ca.issue_client(REVOKED_ACCOUNT, now=now)
    stranger = CertificateAuthority.create("another CA", now=now).issue_client(ACCOUNT, now=now)
    crl = ca.build_crl(
        [RevokedEntry(revoked.serial_hex, now, "key_compromise")], now=now, crl_number=1
    )
    # The state-directory layout, plus the clients' files.
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "server.pem").write_bytes(server.cert_pem())
    (tmp_path / "server-key.pem").write_bytes(server.key_pem())
    (tmp_path / "crl.pem").write_bytes(crl_pem(crl))
    for name, issued in (("good", good), ("revoked", revoked), ("stranger", stranger)):
        (tmp_path / f"{name}.pem").write_bytes(issued.cert_pem())
        (tmp_path / f"{name}-key.pem").write_bytes(issued.key_pem())
    return Pki(tmp_path, ca, server, good, revoked, stranger, crl)


@implementer(IHandshakeListener)
class LineEcho(protocol.Protocol):
    """Echoes what it gets and closes after a full line; records who handshook."""

    def __init__(self, accounts: list[str | None]) -> None:
        self.accounts = accounts

    def handshakeCompleted(self) -> None:
        peer = peer_certificate(self.transport)
        self.accounts.append(account_of(peer) if peer is not None else None)

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if b"\n" in data:
            self.transport.loseConnection()


@dataclass
class Server:
    tls: ReloadingServerTLS
    port: IListeningPort
    accounts: list[str | None] = field(default_factory=list)

    @property
    def address(self) -> str:
        host = self.port.getHost()
        assert isinstance(host, IPv4Address)
        return f"{host.host}:{host.port}"

    async def close(self) -> None:
        stopped = self.port.stopListening()
        if stopped is not None:
            await stopped


async def listen(tls: ReloadingServerTLS) -> Server:
    from twisted.internet import reactor  # late: pytest-twisted installs it

    accounts: list[str | None] = []
    endpoint = SSL4ServerEndpoint(reactor, 0, tls, interface="127.0.0.1")
    port = await endpoint.listen(protocol.Factory.forProtocol(lambda: LineEcho(accounts)))
    return Server(tls, port, accounts)


@dataclass(frozen=True)
class Run:
    code: int | None  # None: killed by a signal
    out: str
    err: str


class _Collect(protocol.ProcessProtocol):
    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.ended: Deferred[Run] = Deferred(self._kill)

    def _kill(self, _: Deferred[Run]) -> None:
        # The timeout cancelled the wait: do not leave s_client behind.
        assert self.transport is not None
        with contextlib.suppress(ProcessExitedAlready):
            self.transport.signalProcess("KILL")

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        if self.ended.called:  # cancelled by the timeout
            return
        code = getattr(reason.value, "exitCode", None)
        self.ended.callback(
            Run(code, b"".join(self.out).decode(errors="replace"), b"".join(self.err).decode())
        )


async def s_client(server: Server, pki: Pki, *args: str, stdin: bytes = b"ping\n") -> Run:
    """Run ``openssl s_client`` against *server*, verifying the server with our CA."""
    from twisted.internet import reactor

    assert OPENSSL is not None
    argv = [
        OPENSSL,
        "s_client",
        "-connect",
        server.address,
        "-CAfile",
        str(pki.dir / "ca.pem"),
        "-verify_return_error",
        "-brief",
        "-ign_eof",
        *args,
    ]
    collect = _Collect(stdin)
    reactor.spawnProcess(collect, OPENSSL, argv, env=dict(os.environ))
    return await collect.ended.addTimeout(PROCESS_TIMEOUT, reactor)


def assert_established(run: Run, version: str) -> str:
    """s_client connected with *version*, got its line back, and exited 0; the cipher."""
    assert run.code == 0, run
    assert "ping" in run.out, run
    lines = dict(line.split(": ", 1) for line in run.err.splitlines() if ": " in line)
    assert lines.get("Protocol version") == version, run
    assert lines.get("Verification") == "OK", run
    return lines["Ciphersuite"]


def assert_refused(run: Run, alert: str) -> None:
    """s_client failed with *alert* from the server and got no echo back."""
    assert run.code not in (0, None), run
    assert alert in run.err, run
    assert "ping" not in run.out, run


def gateway_tls(pki: Pki) -> ReloadingServerTLS:
    return ReloadingServerTLS(
        server_tls_options(
            certificate=pki.server.certificate,
            key=pki.server.key,
            ca=pki.ca.certificate,
            crl=pki.crl,
        )
    )


@reactor_test
async def test_tls_1_3_with_a_good_client_certificate(pki: Pki) -> None:
    """TLS 1.3 and a good certificate: connected, echoed, and the server saw the account."""
    server = await listen(gateway_tls(pki))
    try:
        run = await s_client(server, pki, "-tls1_3", *pki.client_args("good"))
    finally:
        await server.close()
    cipher = assert_established(run, "TLSv1.3")
    assert cipher in {
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    }
    assert server.accounts == [ACCOUNT]


@reactor_test
async def test_tls_1_2_with_a_good_client_certificate_uses_ecdhe_aead(pki: Pki) -> None:
    """TLS 1.2: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305, nothing else."""
    server = await listen(gateway_tls(pki))
    try:
        run = await s_client(server, pki, "-tls1_2", *pki.client_args("good"))
    finally:
        await server.close()
    cipher = assert_established(run, "TLSv1.2")
    assert cipher.startswith("ECDHE-"), cipher
    assert "GCM" in cipher or "CHACHA20" in cipher, cipher
    assert server.accounts == [ACCOUNT]


@reactor_test
async def test_refusals(pki: Pki) -> None:
    """Refused, each with the server's alert: TLS 1.1, non-PFS or CBC TLS 1.2 suites, no
    client certificate (1.2 and 1.3), a certificate from another CA, a revoked one.

    Static-RSA suites could not work with our ECDSA server key anyway; ECDHE-ECDSA with
    CBC could, so that one is refused by the cipher policy alone.
    """
    server = await listen(gateway_tls(pki))
    good = pki.client_args("good")
    try:
        # SECLEVEL=0 makes sure the client really offers TLS 1.1: the refusal is ours.
        tls11 = await s_client(server, pki, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", *good)
        static_rsa_cbc = await s_client(server, pki, "-tls1_2", "-cipher", "AES128-SHA", *good)
        static_rsa_gcm = await s_client(
            server, pki, "-tls1_2", "-cipher", "AES128-GCM-SHA256", *good
        )
        ecdhe_cbc = await s_client(
            server, pki, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA", *good
        )
        no_cert_13 = await s_client(server, pki, "-tls1_3")
        no_cert_12 = await s_client(server, pki, "-tls1_2")
        stranger = await s_client(server, pki, "-tls1_3", *pki.client_args("stranger"))
        revoked_13 = await s_client(server, pki, "-tls1_3", *pki.client_args("revoked"))
        revoked_12 = await s_client(server, pki, "-tls1_2", *pki.client_args("revoked"))
    finally:
        await server.close()

    assert_refused(tls11, "alert protocol version")
    assert_refused(static_rsa_cbc, "alert handshake failure")
    assert_refused(static_rsa_gcm, "alert handshake failure")
    assert_refused(ecdhe_cbc, "alert handshake failure")
    assert_refused(no_cert_13, "alert certificate required")
    assert_refused(no_cert_12, "alert handshake failure")
    assert_refused(stranger, "alert unknown ca")
    assert_refused(revoked_13, "alert certificate revoked")
    assert_refused(revoked_12, "alert certificate revoked")
    assert server.accounts == []


@reactor_test
async def test_reload_revokes_for_the_next_connection(pki: Pki) -> None:
    """A listening server given new options refuses a newly revoked certificate at once."""
    tls = gateway_tls(pki)
    server = await listen(tls)
    try:
        before = await s_client(server, pki, "-tls1_3", *pki.client_args("good"))
        now = datetime.now(UTC)
        crl = pki.ca.build_crl(
            [RevokedEntry(pki.good.serial_hex, now, "key_compromise")], now=now, crl_number=2
        )
        tls.reload(
            server_tls_options(
                certificate=pki.server.certificate,
                key=pki.server.key,
                ca=pki.ca.certificate,
                crl=crl,
            )
        )
        after = await s_client(server, pki, "-tls1_3", *pki.client_args("good"))
    finally:
        await server.close()
    assert_established(before, "TLSv1.3")
    assert_refused(after, "alert certificate revoked")


@reactor_test
async def test_rewritten_crl_file_takes_effect_within_5_seconds(pki: Pki) -> None:
    """crl.pem replaced atomically in the state directory: within 5 s, on the real reactor
    and the default poll interval, the newly revoked certificate is refused."""
    from twisted.internet import reactor

    tls = ReloadingServerTLS(load_state_server_tls(pki.dir).options)
    changed: Deferred[x509.CertificateRevocationList | None] = Deferred()
    watcher = state_crl_watcher(reactor, tls, pki.dir, on_change=changed.callback)
    watcher.startService()
    server = await listen(tls)
    try:
        assert_established(
            await s_client(server, pki, "-tls1_3", *pki.client_args("good")), "TLSv1.3"
        )
        now = datetime.now(UTC)
        crl = pki.ca.build_crl(
            [RevokedEntry(pki.good.serial_hex, now, "key_compromise")], now=now, crl_number=2
        )
        tmp = pki.dir / ".crl.pem.tmp"
        tmp.write_bytes(crl_pem(crl))
        os.replace(tmp, pki.dir / "crl.pem")
        started = reactor.seconds()
        assert await changed.addTimeout(5.0, reactor) == crl
        assert reactor.seconds() - started <= 5.0
        after = await s_client(server, pki, "-tls1_3", *pki.client_args("good"))
    finally:
        watcher.stopService()
        await server.close()
    assert_refused(after, "alert certificate revoked")


@reactor_test
async def test_staff_console_options_need_no_client_certificate(pki: Pki) -> None:
    """require_client_cert=False: a browser-like client without a certificate connects."""
    tls = ReloadingServerTLS(
        server_tls_options(
            certificate=pki.server.certificate,
            key=pki.server.key,
            ca=pki.ca.certificate,
            crl=None,
            require_client_cert=False,
        )
    )
    server = await listen(tls)
    try:
        run = await s_client(server, pki, "-tls1_3")
    finally:
        await server.close()
    assert_established(run, "TLSv1.3")
    assert server.accounts == [None]
