"""TLS for the secure channel: server and client options, CRL checking, live reload.

Policy, in one place: TLS 1.2 and 1.3 only; on TLS 1.2 only ECDHE key exchange with
AEAD ciphers (Mozilla "intermediate" without DHE); TLS 1.3 keeps OpenSSL's suites,
which are all AEAD. The gateway requires a client certificate issued by our CA and
not listed on the current CRL; OpenSSL's X509 store does the CRL check
(:class:`CAWithCRL`).

An OpenSSL context cannot be changed once it has made a connection and its store
cannot forget a CRL, so a new CRL means new options: :class:`ReloadingServerTLS`
hands new connections whatever options it holds now, and :class:`SharedCrlWatcher`
polls the database's CRL version (and the state directory's certificate files) and
swaps fresh options in when either changes (:class:`CrlWatcher` does the same for a
crl.pem file alone). Connections
already up keep their context; the gateway ends the sessions of newly revoked
certificates itself, through ``on_change``.

Everything here takes and returns ``cryptography`` objects; pyOpenSSL appears only
where Twisted's TLS machinery needs it.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast
from weakref import WeakKeyDictionary

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL, crypto
from twisted.application.service import Service
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IReactorTime,
    ISSLTransport,
    ISystemHandle,
    ITransport,
)
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.internet.ssl import optionsForClientTLS as _options_for_client_tls
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

__all__ = [
    "CIPHERS",
    "CRL_POLL_INTERVAL",
    "HANDSHAKE_TIMEOUT",
    "STATE_TLS_FILES",
    "CAWithCRL",
    "CrlWatcher",
    "HandshakeDeadline",
    "ReloadingServerTLS",
    "ServerTLSMaterial",
    "SharedCrl",
    "SharedCrlWatcher",
    "client_tls_options",
    "load_state_server_tls",
    "peer_certificate",
    "refused_revoked_serial",
    "server_tls_options",
    "state_crl_watcher",
    "tls_version_and_cipher",
]

# TLS 1.2 suites; TLS 1.3 suites are OpenSSL's defaults (AES-GCM and ChaCha20 only).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
MINIMUM_VERSION = TLSVersion.TLSv1_2
# The issue: a rewritten crl.pem takes effect within 5 s.
CRL_POLL_INTERVAL = 1.0
# The issue: a handshake not done within 10 s is closed.
HANDSHAKE_TIMEOUT = 10.0

SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
CA_FILE = "ca.pem"
CRL_FILE = "crl.pem"
STATE_TLS_FILES = (SERVER_CERT_FILE, SERVER_KEY_FILE, CA_FILE, CRL_FILE)

_T = TypeVar("_T")

# The exclusion of twisted from untyped-call checks is not in every config yet.
_acceptable_ciphers = AcceptableCiphers.fromOpenSSLCipherString(CIPHERS)  # type: ignore[no-untyped-call, unused-ignore]


@implementer(IOpenSSLTrustRoot)
class CAWithCRL:
    """Trust *ca_certificates*, and refuse certificates listed on *crls*.

    With at least one CRL, OpenSSL's ``CRL_CHECK`` flag is set: a leaf certificate
    needs a CRL from its issuer that does not list it, is correctly signed and is
    current (a CRL past its next-update date refuses everyone: fail closed). With no
    CRL the flag stays off, as a client verifying a server does.
    """

    def __init__(
        self,
        ca_certificates: Iterable[x509.Certificate],
        crls: Iterable[x509.CertificateRevocationList] = (),
    ) -> None:
        self.ca_certificates = tuple(ca_certificates)
        self.crls = tuple(crls)
        if not self.ca_certificates:
            raise ValueError("CAWithCRL needs at least one CA certificate")

    def __repr__(self) -> str:
        names = ", ".join(c.subject.rfc4514_string() for c in self.ca_certificates)
        return f"<CAWithCRL [{names}] crls={len(self.crls)}>"

    def _addCACertsToContext(self, context: SSL.Context) -> None:
        store = context.get_cert_store()
        assert store is not None  # a fresh context always has one
        for certificate in self.ca_certificates:
            # X509Store.add_cert takes only pyOpenSSL's X509.
            store.add_cert(crypto.X509.from_cryptography(certificate))
        for crl in self.crls:
            store.add_crl(crl)
        if self.crls:
            # Leaf only: our CA signs end-entity certificates directly (path_length=0).
            store.set_flags(crypto.X509StoreFlags.CRL_CHECK)


def server_tls_options(
    *,
    certificate: x509.Certificate,
    key: PrivateKeyTypes,
    ca: x509.Certificate,
    crl: x509.CertificateRevocationList | None,
    require_client_cert: bool = True,
) -> CertificateOptions:
    """Server options: our certificate, TLS 1.2+, ECDHE+AEAD, client certificates.

    With *require_client_cert* (the gateway) a client must present a certificate from
    *ca* that *crl* does not list (``crl=None`` skips the revocation check). Without
    it (the staff console) no client certificate is asked for, and *ca* and *crl* are
    unused. Bad input (a key that does not match) raises when the context is built:
    call ``getContext()`` to find out early, as :class:`ReloadingServerTLS` does.
    """
    if require_client_cert:
        return CertificateOptions(
            # Twisted's hints say pyOpenSSL; cryptography objects work and do not warn.
            privateKey=key,  # type: ignore[arg-type]
            certificate=certificate,  # type: ignore[arg-type]
            trustRoot=CAWithCRL([ca], [crl] if crl is not None else []),
            raiseMinimumTo=MINIMUM_VERSION,
            acceptableCiphers=_acceptable_ciphers,
        )
    return CertificateOptions(
        privateKey=key,  # type: ignore[arg-type]
        certificate=certificate,  # type: ignore[arg-type]
        raiseMinimumTo=MINIMUM_VERSION,
        acceptableCiphers=_acceptable_ciphers,
    )


def client_tls_options(
    *,
    hostname: str,
    ca: x509.Certificate,
    client_key: PrivateKeyTypes,
    client_certificate: x509.Certificate,
) -> IOpenSSLClientConnectionCreator:
    """Client options for ``ssgate connect``: verify the gateway, present our certificate.

    The server certificate must chain to *ca* and name *hostname* (DNS name or IP
    address, checked by service_identity); the same TLS 1.2+ and cipher policy as the
    server. The key and certificate go through ``extraCertificateOptions`` as
    cryptography objects: ``clientCertificate=`` would take pyOpenSSL objects, which
    pyOpenSSL deprecates.
    """
    return _options_for_client_tls(
        hostname,
        trustRoot=CAWithCRL([ca]),
        extraCertificateOptions={
            "privateKey": client_key,
            "certificate": client_certificate,
            "raiseMinimumTo": MINIMUM_VERSION,
            "acceptableCiphers": _acceptable_ciphers,
        },
    )


@implementer(IOpenSSLServerConnectionCreator)
class ReloadingServerTLS:
    """Server connection creator whose options can be replaced while listening.

    Each new connection gets a context from the options held at that moment; live
    connections keep theirs. Pass it where Twisted takes server TLS options
    (``SSL4ServerEndpoint``, ``TLSMemoryBIOFactory``).
    """

    def __init__(self, options: CertificateOptions) -> None:
        options.getContext()  # fail at startup, not at the first client
        self._options = options

    @property
    def options(self) -> CertificateOptions:
        return self._options

    def reload(self, options: CertificateOptions) -> None:
        """Use *options* for new connections; raises (and keeps the old) if unusable."""
        options.getContext()  # builds and caches the context: OpenSSL errors surface here
        self._options = options

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = self._options.serverConnectionForTLS(tlsProtocol)
        mode = connection.get_context().get_verify_mode()
        if mode & SSL.VERIFY_PEER:
            connection.set_verify(mode, _noting_revoked(tlsProtocol))
        return connection


# The serial of a client certificate OpenSSL refused because the CRL lists it, by
# connection.  The handshake fails before OpenSSL keeps the peer's certificate, so
# only the verify callback ever sees which one it was (the audit event names it).
_REVOKED_SERIALS: WeakKeyDictionary[TLSMemoryBIOProtocol, str] = WeakKeyDictionary()
_X509_V_ERR_CERT_REVOKED = 23


def _noting_revoked(tls_protocol: TLSMemoryBIOProtocol) -> Callable[..., bool]:
    """A verify callback deciding as OpenSSL did (*ok*), noting a revoked leaf."""

    def verify(_conn: Any, certificate: crypto.X509, error: int, depth: int, ok: int) -> bool:
        if not ok and depth == 0 and error == _X509_V_ERR_CERT_REVOKED:
            _REVOKED_SERIALS[tls_protocol] = format(certificate.get_serial_number(), "x")
        return bool(ok)

    return verify


def refused_revoked_serial(transport: object) -> str:
    """The serial (lowercase hex, as ``certs`` writes it) of the revoked certificate
    the handshake on *transport* refused; ``""`` if it refused none."""
    if not isinstance(transport, TLSMemoryBIOProtocol):
        return ""
    return _REVOKED_SERIALS.get(transport, "")


class ServerTLSMaterial(NamedTuple):
    """Server options and the CRL they check against (``None``: no client certificates)."""

    options: CertificateOptions
    crl: x509.CertificateRevocationList | None


def load_state_server_tls(
    state_dir: Path,
    *,
    require_client_cert: bool = True,
    crl: x509.CertificateRevocationList | None = None,
) -> ServerTLSMaterial:
    """Server options from the state directory's server.pem, server-key.pem, ca.pem, crl.pem.

    With *require_client_cert*, the CRL (*crl*, the shared one from the database, or
    else crl.pem) must carry the CA's signature: the gateway never runs without a
    revocation check. Raises :class:`ValueError` naming
    the file on unreadable or inconsistent input, :class:`OSError` when a file cannot
    be read, :class:`OpenSSL.SSL.Error` when OpenSSL refuses the key or certificate.
    The options' context is built before returning.
    """
    certificate = _read(state_dir / SERVER_CERT_FILE, x509.load_pem_x509_certificate)
    key = _read(
        state_dir / SERVER_KEY_FILE,
        lambda pem: serialization.load_pem_private_key(pem, password=None),
    )
    ca = _read(state_dir / CA_FILE, x509.load_pem_x509_certificate)
    if not require_client_cert:
        crl = None
    elif crl is None:
        crl = _read(state_dir / CRL_FILE, x509.load_pem_x509_crl)
        if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
            raise ValueError(f"{state_dir / CRL_FILE}: not signed by the CA in {CA_FILE}")
    elif crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        raise ValueError(f"the shared CRL is not signed by the CA in {state_dir / CA_FILE}")
    options = server_tls_options(
        certificate=certificate,
        key=key,
        ca=ca,
        crl=crl,
        require_client_cert=require_client_cert,
    )
    options.getContext()
    return ServerTLSMaterial(options, crl)


def _read(path: Path, parse: Callable[[bytes], _T]) -> _T:
    data = path.read_bytes()
    try:
        return parse(data)
    except (ValueError, TypeError) as e:
        # The message names the file; never the content (server-key.pem is a secret).
        raise ValueError(f"{path}: not a readable PEM file of the expected kind") from e


_Snapshot = tuple[tuple[int, int, bytes] | None, ...]


class CrlWatcher(Service):
    """Polls the TLS files and swaps fresh server options into *tls* when one changes.

    Every *interval* seconds on *clock*, each of *paths* is fingerprinted by
    (mtime_ns, size, sha256). On a change, *load* builds new options; they replace
    the old in *tls*, and when the CRL differs from the one in use *on_change* gets
    the new CRL so the gateway can end sessions whose certificate is now revoked.
    A file that cannot be read or parsed keeps the old options and logs one warning
    per distinct broken state. Writers replace files atomically (rename).

    On start the watcher takes its baseline and loads once, so a change made between
    the caller's first load and the start is not missed; ``on_change`` is not called
    for that first load.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        tls: ReloadingServerTLS,
        paths: Sequence[Path],
        load: Callable[[], tuple[CertificateOptions, x509.CertificateRevocationList | None]],
        *,
        interval: float = CRL_POLL_INTERVAL,
        on_change: Callable[[x509.CertificateRevocationList | None], object] | None = None,
    ) -> None:
        self._clock = clock
        self._tls = tls
        self._paths = tuple(paths)
        self._load = load
        self._interval = interval
        self._on_change = on_change
        self._seen: _Snapshot | None = None
        self._crl: x509.CertificateRevocationList | None = None
        self._loop: LoopingCall | None = None

    @property
    def current_crl(self) -> x509.CertificateRevocationList | None:
        """The CRL of the options last swapped in by this watcher."""
        return self._crl

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._seen = self._snapshot()
        self._apply(first=True)
        loop = LoopingCall(self.poll)
        loop.clock = self._clock
        loop.start(self._interval, now=False).addErrback(
            lambda f: self.log.failure("TLS file watcher stopped", f)
        )
        self._loop = loop

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        super().stopService()  # type: ignore[no-untyped-call]

    def poll(self) -> None:
        """Check the files once; reload if any changed since the last check."""
        try:
            snapshot = self._snapshot()
        except _OutOfDescriptors:
            return  # the gateway is full; the next poll looks again
        if snapshot == self._seen:
            return
        self._seen = snapshot
        self._apply(first=False)

    def _apply(self, *, first: bool) -> None:
        try:
            options, crl = self._load()
            self._tls.reload(options)
        except (OSError, ValueError, TypeError, SSL.Error, crypto.Error) as e:
            # No traceback: an operator mid-edit is not a bug. The error names the file.
            self.log.warn(
                "TLS files cannot be used; keeping the previous ones: {error}",
                error=str(e) or type(e).__name__,
            )
            return
        except Exception:
            # A bug, not bad input: say so loudly, keep the old options, keep polling.
            self.log.failure("Reloading the TLS files failed; keeping the previous ones")
            return
        previous, self._crl = self._crl, crl
        self.log.info(
            "TLS options loaded; CRL number {crl_number}, {revoked} revoked",
            crl_number=_crl_number(crl),
            revoked=len(crl) if crl is not None else 0,
        )
        if first or self._on_change is None or crl == previous:
            return
        try:
            self._on_change(crl)
        except Exception:
            self.log.failure("CRL change callback failed")

    def _snapshot(self) -> _Snapshot:
        return tuple(_fingerprint(path) for path in self._paths)


class _OutOfDescriptors(OSError):
    """The process has no descriptor free to read a file with: the files did not
    change, so the poll skips this turn instead of reporting them missing."""


def _fingerprint(path: Path) -> tuple[int, int, bytes] | None:
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            digest = hashlib.sha256(f.read()).digest()
    except OSError as e:
        if e.errno in (errno.EMFILE, errno.ENFILE):
            raise _OutOfDescriptors(e.errno, e.strerror, str(path)) from None
        return None
    return (st.st_mtime_ns, st.st_size, digest)


def _crl_number(crl: x509.CertificateRevocationList | None) -> int | None:
    if crl is None:
        return None
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def state_crl_watcher(
    clock: IReactorTime,
    tls: ReloadingServerTLS,
    state_dir: Path,
    *,
    interval: float = CRL_POLL_INTERVAL,
    on_change: Callable[[x509.CertificateRevocationList | None], object] | None = None,
) -> CrlWatcher:
    """A :class:`CrlWatcher` over the state directory's TLS files (client certs required)."""
    return CrlWatcher(
        clock,
        tls,
        [state_dir / name for name in STATE_TLS_FILES],
        lambda: load_state_server_tls(state_dir),
        interval=interval,
        on_change=on_change,
    )


class SharedCrl(NamedTuple):
    """The current CRL as the database holds it, with its number (the version polled)."""

    number: int
    crl: x509.CertificateRevocationList


class SharedCrlWatcher(Service):
    """Keeps the gateway's TLS options on the CRL the database holds (issue 13).

    Every *interval* seconds on *clock* it asks *fetch* (given the CRL number in use)
    for a newer CRL — one cheap read of a version number, done off the reactor by the
    caller's database pool — and fingerprints the state directory's TLS files
    (*paths*: server certificate and key, CA).  On a newer CRL or a changed file,
    *build* makes fresh options for the CRL, they replace the old ones in *tls* for new
    connections, and *on_change* gets a CRL that differs from the one in use, so the
    gateway ends the live sessions whose certificate it now lists.  A fetch that fails
    (the database down) or options that cannot be built keep the old ones: the next
    poll tries again.  One fetch at a time: a slow database does not pile up queries.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        tls: ReloadingServerTLS,
        initial: SharedCrl,
        fetch: Callable[[int], Deferred[SharedCrl | None]],
        build: Callable[[x509.CertificateRevocationList], CertificateOptions],
        *,
        paths: Sequence[Path] = (),
        interval: float = CRL_POLL_INTERVAL,
        on_change: Callable[[x509.CertificateRevocationList | None], object] | None = None,
    ) -> None:
        self._clock = clock
        self._tls = tls
        self._current = initial
        self._fetch = fetch
        self._build = build
        self._paths = tuple(paths)
        self._interval = interval
        self._on_change = on_change
        self._seen: _Snapshot = self._snapshot()
        self._busy = False
        self._failing = False
        self._loop: LoopingCall | None = None

    @property
    def current_crl(self) -> x509.CertificateRevocationList | None:
        """The CRL the options in use check against."""
        return self._current.crl

    @property
    def current_number(self) -> int:
        return self._current.number

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        loop = LoopingCall(self.poll)
        loop.clock = self._clock
        loop.start(self._interval, now=False).addErrback(
            lambda f: self.log.failure("shared CRL watcher stopped", f)
        )
        self._loop = loop

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        super().stopService()  # type: ignore[no-untyped-call]

    def poll(self) -> Deferred[Any] | None:
        """Check once (unless a check is under way); fires when this check is done."""
        if self._busy:
            return None
        self._busy = True
        d = self._fetch(self._current.number)
        d.addCallbacks(self._fetched, self._fetch_failed)
        d.addBoth(self._done)
        return d

    def _done(self, _: object) -> None:
        self._busy = False

    def _fetch_failed(self, failure: Any) -> None:
        if not self._failing:  # once per outage, not every second
            self._failing = True
            self.log.warn(
                "reading the shared CRL failed; keeping the one in use: {error}",
                error=str(failure.value) or type(failure.value).__name__,
            )

    def _fetched(self, newer: SharedCrl | None) -> None:
        if self._failing:
            self._failing = False
            self.log.info("reading the shared CRL works again")
        try:
            snapshot = self._snapshot()
        except _OutOfDescriptors:
            return  # the gateway is full; the next poll looks again
        if newer is None and snapshot == self._seen:
            return
        chosen = newer if newer is not None else self._current
        try:
            self._tls.reload(self._build(chosen.crl))
        except (OSError, ValueError, TypeError, SSL.Error, crypto.Error) as e:
            self.log.warn(
                "new TLS options cannot be used; keeping the previous ones: {error}",
                error=str(e) or type(e).__name__,
            )
            return
        except Exception:
            self.log.failure("building TLS options failed; keeping the previous ones")
            return
        self._seen = snapshot
        previous, self._current = self._current, chosen
        self.log.info(
            "TLS options loaded; CRL number {crl_number}, {revoked} revoked",
            crl_number=chosen.number,
            revoked=len(chosen.crl),
        )
        if self._on_change is None or chosen.crl == previous.crl:
            return
        try:
            self._on_change(chosen.crl)
        except Exception:
            self.log.failure("CRL change callback failed")

    def _snapshot(self) -> _Snapshot:
        return tuple(_fingerprint(path) for path in self._paths)


# OpenSSL's words for why a handshake failed → our reason codes (first match wins).
_TLS_REFUSALS = (
    ("revoked", "cert-revoked"),
    ("peer did not return a certificate", "no-client-cert"),
    ("certificate required", "no-client-cert"),
    ("certificate verify failed", "cert-untrusted"),
    ("unknown ca", "cert-untrusted"),
    ("unsupported protocol", "tls-version"),
    ("version too low", "tls-version"),
    ("wrong version number", "tls-version"),
    ("no shared cipher", "tls-cipher"),
    ("no suitable signature algorithm", "tls-cipher"),
    ("http request", "not-tls"),
)


def tls_refusal_reason(error: BaseException | None, *, timed_out: bool = False) -> str:
    """The reason code for a connection that ended before its TLS handshake completed."""
    if timed_out:
        return "tls-timeout"
    if isinstance(error, SSL.Error):
        text = str(error).lower()
        for needle, code in _TLS_REFUSALS:
            if needle in text:
                return code
        return "tls-failed"
    return "closed-before-handshake"


def peer_certificate(transport: ITransport | None) -> x509.Certificate | None:
    """The peer's certificate on a TLS transport, once the handshake is done.

    ``None`` before ``handshakeCompleted``, without a peer certificate, or when
    *transport* is not TLS.
    """
    if transport is None or not ISSLTransport.providedBy(transport):
        return None
    peer = transport.getPeerCertificate()
    if peer is None:
        return None
    return cast(crypto.X509, peer).to_cryptography()


def tls_version_and_cipher(transport: ITransport | None) -> tuple[str, str]:
    """The negotiated protocol and cipher, e.g. ``("TLSv1.3", "TLS_AES_256_GCM_SHA384")``.

    Raises :class:`ValueError` when *transport* is not TLS or the handshake is not done.
    """
    if transport is None or not ISystemHandle.providedBy(transport):
        raise ValueError("not a TLS transport")
    handle = cast(ISystemHandle, transport).getHandle()
    if not isinstance(handle, SSL.Connection):
        raise ValueError("not a TLS transport")
    cipher = handle.get_cipher_name()
    if cipher is None:
        raise ValueError("TLS handshake not completed")
    return handle.get_protocol_version_name(), cipher


class HandshakeDeadline:
    """Aborts a TLS connection whose handshake has not completed in *timeout* seconds.

    The server's protocol calls :meth:`start` from ``connectionMade`` and
    :meth:`stop` from ``handshakeCompleted`` and ``connectionLost``.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self._clock = clock
        self._timeout = timeout
        self._call: IDelayedCall | None = None
        self.expired = False

    def start(self, transport: ITransport) -> None:
        self.stop()
        self._call = self._clock.callLater(self._timeout, self._expire, transport)

    def stop(self) -> None:
        """Cancel the deadline; safe to call more than once."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _expire(self, transport: ITransport) -> None:
        self._call = None
        self.expired = True
        self.log.info(
            "TLS handshake with {peer} not completed in {timeout} s; closing",
            peer=str(transport.getPeer()),
            timeout=self._timeout,
        )
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()
