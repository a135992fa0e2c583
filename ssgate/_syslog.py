"""Syslog forwarding as a service of ``ssgate serve``: every audit event to each
collector in ``[syslog]``, as RFC 5424 over TCP with octet counting (RFC 6587),
TLS 1.2+ (RFC 5425) unless the collector says ``tls = false``.

The audit log is the queue (see :mod:`audit._syslog_store`): per collector a cursor
row holds the last ``seq`` known delivered, and a lease on that row makes one node
forward to each collector.  Every ``interval_seconds`` a :class:`SyslogForwarder`
renews its lease, connects if it is not connected (with back-off), moves the cursor
over what it can now believe delivered, and sends the records after what it has sent
in batches (read and formatted on the database pool, written with the transport's
back-pressure: nothing more is read while the transport asks us to pause).

Delivery is at least once.  Plain syslog over TCP has no acknowledgement, so a
record counts as delivered once it was written and the connection then stayed up,
not back-pressured, for :data:`CONFIRM_SECONDS` (a collector that died meanwhile
resets the connection, and we know).  With ``protocol = "relp"`` the collector
acknowledges each record (:mod:`audit._relp`) and the cursor follows exactly.
After a broken connection, a restart or a ``kill -9`` the forwarder resends from the
cursor; a repeat carries the same ``seq`` in its structured data, which is how a
receiver drops it.

A collector that cannot be reached is logged once, then in one summary line a minute
(attempts, events waiting), and once more when it is back.  Nothing here blocks the
reactor: database work runs on the runner, files are read once at start.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from OpenSSL.crypto import FILETYPE_ASN1
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import (
    AcceptableCiphers,
    Certificate,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import audit
import auth
from ssgate._config import SyslogCollector, SyslogConfig

REPORT_EVERY: Final = 60.0  # seconds between two summary lines while a collector is down
CONFIRM_SECONDS: Final = 2.0  # connection up this long after a write: delivered
LEASE_SECONDS: Final = 10.0  # another node takes over this long after we stopped renewing
CONNECT_TIMEOUT: Final = 10.0
FIRST_RETRY: Final = 1.0
MAX_RETRY: Final = 30.0
MAX_ROUNDS: Final = 20  # batches sent back to back in one tick (a backlog)
MAX_CAPACITY: Final = 1 << 30  # plain syslog: no window, only back-pressure
# The ciphers the gateway allows: forward secrecy and AEAD only.
CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


class SyslogSetupError(Exception):
    """A collector's TLS files cannot be used; the message names the key and file."""


Messages = list[tuple[int, bytes]]  # (audit seq, one RFC 5424 message), in seq order


def encoder(config: SyslogConfig, hostname: str) -> Callable[[list[audit.AuditRecord]], Messages]:
    """Records → ``(seq, message)`` pairs: :func:`audit.export_syslog`'s lines as UTF-8,
    without their line feed (the transport frames them)."""

    def encode(records: list[audit.AuditRecord]) -> Messages:
        lines = audit.export_syslog(
            records, hostname, config.app_name, facility=config.facility, sd_id=config.sd_id
        )
        return [
            (record.seq, line.removesuffix("\n").encode("utf-8"))
            for record, line in zip(records, lines, strict=True)
        ]

    return encode


@implementer(IHandshakeListener)
class _CollectorProtocol(Protocol):
    """A connection carrying octet-counted syslog (RFC 6587) to a collector.

    It writes what the forwarder gives it, pauses the forwarder with the transport's
    back-pressure, and says what it believes delivered: what was written at least
    ``confirm_seconds`` ago while the connection stayed up (plain syslog has no
    acknowledgement).  A syslog collector sends nothing back; whatever it sends is
    dropped.

    :attr:`ready` fires when the connection can carry messages: at once over plain
    TCP, after the handshake (the collector's certificate checked) over TLS; it fails
    with the reason if the connection ends first.
    """

    def __init__(self, forwarder: SyslogForwarder, *, tls: bool) -> None:
        self._forwarder = forwarder
        self._tls = tls
        self.paused = False
        self.ready: Deferred[None] = Deferred()
        self.failure: Failure | None = None  # why we dropped the connection, if we did
        self._written: deque[tuple[float, int]] = deque()  # (written at, last seq)

    def connectionMade(self) -> None:
        transport: Any = self.transport  # TCP or TLS: an IConsumer as well
        transport.registerProducer(_Producer(self), True)
        if not self._tls:
            self._usable()

    def handshakeCompleted(self) -> None:
        self._usable()

    def _usable(self) -> None:
        if not self.ready.called:
            self.ready.callback(None)

    def dataReceived(self, data: bytes) -> None:
        pass  # nothing to read: RFC 5425/6587 senders expect no reply

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        reason = self.failure or reason
        if not self.ready.called:
            self.ready.errback(reason)
        self._forwarder._lost(self, reason)

    def capacity(self) -> int:
        """Messages the forwarder may hand over now."""
        return 0 if self.paused else MAX_CAPACITY

    def send(self, messages: Messages, now: float) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(audit.frame_octet_counted(m) for _, m in messages))
        self._written.append((now, messages[-1][0]))

    def delivered_upto(self, now: float, confirm_seconds: float) -> int | None:
        """The last seq written at least *confirm_seconds* ago, while not paused."""
        if self.paused:
            return None
        seq = None
        while self._written and self._written[0][0] <= now - confirm_seconds:
            seq = self._written.popleft()[1]
        return seq

    def close(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()

    def abort(self, failure: Failure | None = None) -> None:
        self.failure = self.failure or failure
        transport: Any = self.transport  # TCP and TLS transports can abort
        if transport is not None:
            transport.abortConnection()


class _RelpProtocol(_CollectorProtocol):
    """A connection speaking RELP (:mod:`audit._relp`): each message is acknowledged by
    the collector, so what is delivered is known exactly, and at most a window of
    messages is unacknowledged at a time."""

    def __init__(self, forwarder: SyslogForwarder, *, tls: bool) -> None:
        super().__init__(forwarder, tls=tls)
        self._relp = audit.RelpClient()
        self._acknowledged: int | None = None

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.registerProducer(_Producer(self), True)
        transport.write(self._relp.open())  # over TLS, sent once the handshake is done

    def handshakeCompleted(self) -> None:
        pass  # usable once the server accepts the RELP session

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self._relp.receive(data)
        except audit.RelpError:
            self.abort(Failure())
            return
        for event in events:
            if isinstance(event, audit.RelpOpened):
                self._usable()
            else:
                self._acknowledged = event.key
        if events and self.ready.called and self.capacity() * 2 >= audit.RELP_WINDOW:
            self._forwarder.kick()  # the window opened: send more before the next tick

    def capacity(self) -> int:
        return 0 if self.paused else self._relp.capacity

    def send(self, messages: Messages, now: float) -> None:
        assert self.transport is not None
        self.transport.writeSequence([self._relp.send(seq, m) for seq, m in messages])

    def delivered_upto(self, now: float, confirm_seconds: float) -> int | None:
        seq, self._acknowledged = self._acknowledged, None
        return seq


@implementer(IPushProducer)
class _Producer:
    def __init__(self, protocol: _CollectorProtocol) -> None:
        self._protocol = protocol

    def pauseProducing(self) -> None:
        self._protocol.paused = True

    def resumeProducing(self) -> None:
        self._protocol.paused = False

    def stopProducing(self) -> None:
        self._protocol.paused = True


@dataclass
class _Outage:
    """A collector that cannot be reached: since when, and what has not been logged."""

    since: float
    reported_at: float
    reason: str
    attempts: int = 0  # failed attempts since the last log line


class SyslogForwarder:
    """Forwards the audit log to one collector; :meth:`tick` does one step."""

    log = Logger()

    def __init__(
        self,
        runner: auth.Runner,
        clock: IReactorTime,
        endpoint: IStreamClientEndpoint,
        *,
        collector: str,
        node: str,
        encode: Callable[[list[audit.AuditRecord]], Messages],
        tls: bool = False,
        relp: bool = False,
        batch: int = audit.SYSLOG_BATCH,
        confirm_seconds: float = CONFIRM_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.collector = collector
        self._runner = runner
        self._clock = clock
        self._endpoint = endpoint
        self._node = node
        self._encode = encode
        self._tls = tls  # the endpoint wraps TLS: wait for the handshake
        self._kind = _RelpProtocol if relp else _CollectorProtocol
        self._batch = batch
        self._confirm_seconds = confirm_seconds
        self._lease_seconds = lease_seconds
        self._protocol: _CollectorProtocol | None = None
        self._busy = False
        self._stopped = False
        self._held = False
        self.delivered = 0  # the cursor as last read or moved
        self.sent = 0  # the last seq written on this connection
        self._retry_at = 0.0
        self._retry_delay = FIRST_RETRY
        self._outage: _Outage | None = None
        self._waiting = 0
        self._db_failing = 0
        self._db_unreported = 0
        self._db_reported_at: float | None = None

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    # -- one step ------------------------------------------------------------------

    async def tick(self) -> None:
        if self._busy or self._stopped:
            return  # a step takes longer than the interval: skip, never overlap
        self._busy = True
        try:
            await self._step()
        except Exception:
            self._db_failed(Failure())
        else:
            self._db_works()
        finally:
            self._busy = False

    def deferred_tick(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.tick())

    async def _step(self) -> None:
        now = self._clock.seconds()
        lease: audit.SyslogLease = await self._runner.run(
            audit.claim_syslog_lease,
            self.collector,
            holder=self._node,
            now=now,
            lease_seconds=self._lease_seconds,
        )
        self._waiting = lease.waiting
        if not lease.held:
            if self._held:
                self.log.info(
                    "syslog collector {collector}: node {holder} forwards to it now",
                    collector=self.collector,
                    holder=lease.holder,
                )
            self._held = False
            self._drop_connection()
            return
        self._held = True
        if self._protocol is None:
            self.delivered = lease.delivered_seq
            if now < self._retry_at:
                self._report_outage(now)
                return
            if not await self._connect():
                return
        await self._confirm()
        await self._send()

    async def _connect(self) -> bool:
        factory = Factory.forProtocol(lambda: self._kind(self, tls=self._tls))
        factory.noisy = False  # no "Starting factory" line at every attempt
        d = self._endpoint.connect(factory)
        d.addTimeout(CONNECT_TIMEOUT, self._clock)
        protocol: _CollectorProtocol | None = None
        try:
            connected = await d
            assert isinstance(connected, _CollectorProtocol)
            protocol = connected
            ready = protocol.ready
            ready.addTimeout(CONNECT_TIMEOUT, self._clock)
            await ready
        except Exception:
            failure = Failure()
            if protocol is not None:
                protocol.abort()  # a handshake that failed or hung
            self._unreachable(failure)
            return False
        if self._stopped:
            protocol.close()
            return False
        self._protocol = protocol
        self.sent = self.delivered  # everything since the cursor, again
        if self._outage is not None:
            self.log.info(
                "syslog collector {collector} reachable again after {seconds:.0f} s; "
                "sending from audit record {seq} ({waiting} waiting)",
                collector=self.collector,
                seconds=self._clock.seconds() - self._outage.since,
                seq=self.sent + 1,
                waiting=self._waiting,
            )
            self._outage = None
        return True

    async def _confirm(self) -> None:
        """Move the cursor over what the connection says is delivered: acknowledged
        (RELP), or written CONFIRM_SECONDS ago on a connection still up (syslog)."""
        protocol = self._protocol
        if protocol is None:
            return
        seq = protocol.delivered_upto(self._clock.seconds(), self._confirm_seconds)
        if seq is None or seq <= self.delivered:
            return
        moved = await self._runner.run(
            audit.advance_syslog_cursor,
            self.collector,
            holder=self._node,
            seq=seq,
            now=self._clock.seconds(),
        )
        if moved:
            self.delivered = max(self.delivered, seq)
            self._retry_delay = FIRST_RETRY  # this connection delivered: it is healthy

    async def _send(self) -> None:
        for _ in range(MAX_ROUNDS):
            protocol = self._protocol
            limit = 0 if protocol is None else min(self._batch, protocol.capacity())
            if protocol is None or limit <= 0:
                return
            count, last, messages = await self._runner.run(
                audit.syslog_batch, self.sent, self._encode, limit=limit
            )
            if self._protocol is not protocol or count == 0 or protocol.capacity() < count:
                return  # the connection broke (or shrank) while we read: sent later
            protocol.send(messages, self._clock.seconds())
            self.sent = last
            if count < limit:
                return

    def kick(self) -> None:
        """Confirm and send now, not at the next tick (a RELP window opened)."""
        if self._busy or self._stopped or self._protocol is None:
            return
        self._busy = True

        async def pump() -> None:
            try:
                await self._confirm()
                await self._send()
            except Exception:
                self._db_failed(Failure())
            finally:
                self._busy = False

        Deferred.fromCoroutine(pump())

    # -- the connection ------------------------------------------------------------

    def _lost(self, protocol: _CollectorProtocol, reason: Failure) -> None:
        if self._protocol is not protocol:
            return
        self._protocol = None
        self.sent = self.delivered
        if not self._stopped and self._held:
            self._unreachable(reason)

    def _drop_connection(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.close()

    def _unreachable(self, reason: Failure) -> None:
        """A failed connect or a broken connection: back off, and log (rate-limited)."""
        now = self._clock.seconds()
        self._retry_at = now + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, MAX_RETRY)
        why = _reason(reason)
        if self._outage is None:
            self._outage = _Outage(since=now, reported_at=now, reason=why)
            self.log.warn(
                "syslog collector {collector} unreachable ({reason}); its {waiting} waiting "
                "event(s) stay queued in the audit log and are sent when it is back",
                collector=self.collector,
                reason=why,
                waiting=self._waiting,
            )
            return
        self._outage.attempts += 1
        self._outage.reason = why
        self._report_outage(now)

    def _report_outage(self, now: float) -> None:
        """The minute's summary while a collector stays unreachable."""
        outage = self._outage
        if outage is None or now - outage.reported_at < REPORT_EVERY:
            return
        self.log.warn(
            "syslog collector {collector} still unreachable after {seconds:.0f} s "
            "({attempts} failed attempt(s) since the last report, last: {reason}); "
            "{waiting} event(s) waiting",
            collector=self.collector,
            seconds=now - outage.since,
            attempts=outage.attempts,
            reason=outage.reason,
            waiting=self._waiting,
        )
        outage.attempts = 0
        outage.reported_at = now

    # -- database failures (as the alert evaluator reports them) -------------------

    def _db_failed(self, failure: Failure) -> None:
        self._db_failing += 1
        self._db_unreported += 1
        now = self._clock.seconds()
        if self._db_reported_at is not None and now - self._db_reported_at < REPORT_EVERY:
            return
        self.log.failure(
            "syslog forwarding to {collector} failed ({count} failure(s) since the last "
            "report); retrying every tick",
            failure,
            collector=self.collector,
            count=self._db_unreported,
        )
        self._db_unreported = 0
        self._db_reported_at = now

    def _db_works(self) -> None:
        if self._db_failing:
            self.log.info(
                "syslog forwarding to {collector} works again after {count} failure(s)",
                collector=self.collector,
                count=self._db_failing,
            )
            self._db_failing = self._db_unreported = 0
            self._db_reported_at = None

    # -- stop ----------------------------------------------------------------------

    def stop(self) -> Deferred[None]:
        """Close the connection and give the lease up for another node."""
        self._stopped = True
        self._drop_connection()
        if not self._held:
            return succeed(None)
        self._held = False
        d: Deferred[None] = maybeDeferred(
            self._runner.run, audit.release_syslog_lease, self.collector, holder=self._node
        )
        d.addErrback(lambda f: self.log.failure("syslog lease not released", f))
        return d


def _reason(failure: Failure) -> str:
    """The error in words, without a traceback (and nothing secret: it is a socket
    or TLS error about the collector)."""
    value = failure.value
    args = getattr(value, "args", ())
    queue = args[0] if args else None
    if isinstance(queue, list) and queue and all(isinstance(e, tuple) for e in queue):
        # pyOpenSSL's error queue: [(library, function, reason), ...]
        text = "TLS: " + "; ".join(str(e[-1]) for e in queue)
    else:
        text = str(value).strip() or type(value).__name__
    return text[:300]


class _ForwarderService(TimerService):
    """A forwarder's ticks; stopping also closes its connection and frees its lease."""

    def __init__(self, forwarder: SyslogForwarder, interval: float, clock: IReactorTime) -> None:
        super().__init__(interval, forwarder.deferred_tick)  # type: ignore[no-untyped-call]
        self.clock = clock
        self.forwarder = forwarder

    def stopService(self) -> Deferred[None]:
        d: Deferred[None] = maybeDeferred(super().stopService)
        d.addBoth(lambda _: self.forwarder.stop())
        return d


# -- building them from [syslog] ---------------------------------------------------------


def client_tls(collector: SyslogCollector, state_path: Path) -> Any:
    """TLS 1.2+ client options checking the collector's certificate against the CAs in
    ``ca_file`` (one or a bundle) and its name, with our client certificate when
    configured.  Raises :class:`SyslogSetupError` naming the collector and the key.

    Key and certificate go to Twisted as ``cryptography`` objects (through
    ``extraCertificateOptions``), as ``gateway.client_tls_options`` does: pyOpenSSL
    deprecates its own.
    """

    def read(key: str, name: str) -> bytes:
        path = state_path / name  # an absolute path stays as it is
        try:
            return path.read_bytes()
        except OSError as e:
            raise SyslogSetupError(
                f"syslog collector {collector.key}: {key} {path}: {e.strerror or e}"
            ) from None

    def unusable(key: str, what: str, e: Exception) -> SyslogSetupError:
        # The message names the file, never its contents (a key is secret).
        return SyslogSetupError(
            f"syslog collector {collector.key}: {key} {getattr(collector, key)}: "
            f"{what} ({type(e).__name__})"
        )

    ca_pem = read("ca_file", collector.ca_file)
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as e:
        raise unusable("ca_file", "not a PEM certificate", e) from None
    extra: dict[str, Any] = {
        "raiseMinimumTo": TLSVersion.TLSv1_2,
        "acceptableCiphers": AcceptableCiphers.fromOpenSSLCipherString(CIPHERS),  # type: ignore[no-untyped-call, unused-ignore]
    }
    if collector.cert_file:
        cert_pem = read("cert_file", collector.cert_file)
        key_pem = read("key_file", collector.key_file)
        try:
            extra["certificate"] = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as e:
            raise unusable("cert_file", "not a PEM certificate", e) from None
        try:
            extra["privateKey"] = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            raise unusable("key_file", "not an unencrypted PEM private key", e) from None
    return optionsForClientTLS(
        collector.expected_name,
        trustRoot=trustRootFromCertificates(
            [
                Certificate.load(c.public_bytes(serialization.Encoding.DER), FILETYPE_ASN1)
                for c in cas
            ]
        ),
        extraCertificateOptions=extra,
    )


def collector_endpoint(
    reactor: Any, collector: SyslogCollector, state_path: Path
) -> IStreamClientEndpoint:
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, collector.host, collector.port, timeout=CONNECT_TIMEOUT
    )
    if collector.tls:
        endpoint = wrapClientTLS(client_tls(collector, state_path), endpoint)
    return endpoint


def syslog_service(
    runner: auth.Runner,
    reactor: Any,
    config: SyslogConfig,
    *,
    state_path: Path,
    node: str,
    endpoints: Callable[[SyslogCollector], IStreamClientEndpoint] | None = None,
    **kwargs: Any,
) -> MultiService:
    """One forwarder per collector (none without collectors), each ticking every
    ``interval_seconds``.  Raises :class:`SyslogSetupError` for unusable TLS files."""
    hostname = config.hostname or _hostname()
    encode = encoder(config, hostname)
    try:
        encode([])  # export_syslog checks hostname, app name, facility and SD-ID now
    except ValueError as e:
        raise SyslogSetupError(f"[syslog]: {e}") from None
    services = MultiService()
    for collector in config.collectors:
        endpoint = (
            endpoints(collector)
            if endpoints is not None
            else collector_endpoint(reactor, collector, state_path)
        )
        forwarder = SyslogForwarder(
            runner,
            reactor,
            endpoint,
            collector=collector.key,
            node=node,
            encode=encode,
            tls=collector.tls,
            relp=collector.protocol == "relp",
            batch=config.batch,
            **kwargs,
        )
        services.addService(_ForwarderService(forwarder, config.interval_seconds, reactor))
    return services


def forwarders(services: MultiService) -> Iterable[SyslogForwarder]:
    for service in services:
        if isinstance(service, _ForwarderService):
            yield service.forwarder


def _hostname() -> str:
    """This machine's name as RFC 5424 HOSTNAME takes it (printable ASCII)."""
    name = socket.gethostname()  # not getfqdn(): that may wait for DNS
    clean = "".join(c for c in name if 33 <= ord(c) <= 126)[:255]
    return clean or "-"
