"""The gateway: one :class:`GatewayTunnel` per employer connection, one :class:`GatewayNode`.

A tunnel is the thin adapter between the TLS transport and :class:`GatewayMachine`: it
reads the client certificate when the handshake completes, logs in through the
twisted.cred portal, opens each stream to the configured service endpoint preceded
by the signed identity header, and keeps the timers (TLS handshake, login deadline,
idle, lifetime, keepalive) that the sans-IO machine leaves to it.

The node keeps the live tunnels of this process and, once a second, asks the session
registry which of them must end (officer kill, suspended or cancelled account,
revoked certificate, whichever node or command asked), so a kill takes effect within
seconds everywhere.  Every login attempt, refusal and session end is an audit event.

Nothing happens without its record: a session's row and its ``login`` event commit in
one transaction before AUTH_OK goes out (RESUME_OK likewise with ``login.resume``), and
each end or detach commits with its event.  An end the database refused is kept and
written again at every poll (:attr:`GatewayContext.unwritten`); one lost with the
process is written at the next start (:func:`~gateway._sessions.recover_sessions`) or,
after the stale period, by any node (:func:`~gateway._sessions.reap_stale_recorded`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy import Connection, select
from twisted.application.service import Service
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IHandshakeListener, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

import audit
import certs
from auth import (
    Identity,
    IdentityHeaderError,
    RepeatedFailureLog,
    Runner,
    encode_assertion,
    new_nonce,
)
from certs._schema import certificates
from gateway import _sessions
from gateway._cred import (
    AccountPolicyView,
    ChannelCredentials,
    ChannelSession,
    IChannelSession,
    LoginRefused,
    factor_outcomes,
)
from gateway._deadlines import DeadlineQueue
from gateway._full import GatewayFullRefusal
from gateway._limits import DescriptorBudget
from gateway._machine import (
    AuthRequested,
    GatewayMachine,
    HandshakeCompleted,
    PongReceived,
    ResumeRequested,
    StreamData,
    StreamOpenRequested,
)
from gateway._reasons import Reason, for_auth_outcome
from gateway._resume import ResumeTokenError, issue_resume_token, verify_resume_token
from gateway._tls import (
    HandshakeDeadline,
    ReloadingServerTLS,
    peer_certificate,
    refused_revoked_serial,
    tls_refusal_reason,
    tls_version_and_cipher,
)
from gateway._tunnel import StreamConnection, TunnelProtocol, quiet, transport_peer

# Refused TLS connections that become audit events (see TlsRefusalBudget).
TLS_AUDITED_REFUSALS = frozenset({"cert-revoked"})

# One ``stream.end`` audit event per stream, up to this many per connection; past it
# the rest are only counted, and the counts go on the session's ``session.end`` (or
# ``session.detach``) event.  A browser opens a handful of connections per page, so a
# day's work stays itemised; a client that opens streams in a loop cannot make the
# permanent log grow by more than this per connection.
STREAM_EVENTS_PER_CONNECTION = 500
# How each stream ended, as the officer reads it (the gateway's "local" is the service).
STREAM_ENDS = {
    "finished": "finished",
    "peer-reset": "client-cancelled",
    "local-closed": "service-closed",
    "session-ended": "session-ended",
}
KEEPALIVE_INTERVAL = 30.0
KEEPALIVE_DEAD_AFTER = 90.0
STREAM_CONNECT_TIMEOUT = 10.0
# On stop, how long tunnels get to deliver their GOAWAY before they are cut.
SHUTDOWN_GRACE = 5.0
# On stop, how long a moved session's open streams may go on ([gateway] drain_seconds).
DEFAULT_DRAIN_SECONDS = 30.0

# Refusals decided by the gateway itself (not by auth.Authenticator).
_GATEWAY_REFUSALS = {
    "cert-mismatch": Reason.AUTH_FAILED,
    "cert-revoked": Reason.CERT_REVOKED,
    "source-denied": Reason.SOURCE_DENIED,
    "too-many-sessions": Reason.TOO_MANY_SESSIONS,
}


def refusal_reason(code: str) -> Reason:
    """What the employer is told for an auth refusal code (never which factor failed)."""
    return _GATEWAY_REFUSALS.get(code) or for_auth_outcome(code)


def _host_of(peer: str) -> str:
    """``host:port`` → host (an IPv6 host keeps its colons)."""
    host, colon, port = peer.rpartition(":")
    return host if colon and port.isdigit() and host else peer


def default_node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere): it hands the free pages inside the
    heap back to the kernel, which ``free`` alone does not do for memory below the
    top of the heap (where the sessions' buffers were)."""
    try:
        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _load_malloc_trim()
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 1 << 20


def map_large_allocations() -> bool:
    """Have glibc map every allocation of 1 MiB or more on its own (and unmap it when
    freed) instead of raising its threshold as it goes: argon2id's 19 MiB per login
    otherwise ends up inside each login thread's heap and stays resident (about
    75 MiB with four threads, measured with ``bench/run.py sessions``).  False where
    there is no glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


# After this many sessions ended (and at least a quarter of the most there were), the
# node gives their memory back (RSS comes back down after a rush).
TRIM_AFTER_ENDED = 256


def process_alive(pid: int) -> bool:
    """Whether process *pid* of this host still runs (a zombie does not: it is dead and
    only waits for its parent to collect its status)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[:1] != [b"Z"]
    except OSError:
        return True  # no /proc: trust the signal test


# A session's end or detach with its event, as a transaction to (re)run.
SessionWrite = Callable[[Connection], object]


class GatewayObserver(Protocol):
    """What the gateway tells whoever counts (``ssgate._metrics.GatewayMetrics`` turns
    it into Prometheus metrics; ``gateway/`` imports no metrics library).  Each call
    carries a code from a closed set: a TLS refusal reason, ``ok`` or a
    :class:`Reason` slug, a service name, ``in``/``out``.  Called on the reactor
    thread; must not block or raise."""

    def handshake_completed(self) -> None: ...
    def handshake_failed(self, reason: str) -> None: ...
    def login(self, outcome: str) -> None: ...
    def stream_opened(self, service: str) -> None: ...
    def stream_closed(self, service: str) -> None: ...
    def stream_refused(self, reason: str) -> None: ...
    def bytes_relayed(self, direction: str, count: int) -> None: ...
    def audit_written(self, seconds: float) -> None: ...
    def connection_refused(self, reason: str) -> None: ...


class NoObserver:
    """The :class:`GatewayObserver` that counts nothing (tests, benchmarks)."""

    def handshake_completed(self) -> None:
        pass

    def handshake_failed(self, reason: str) -> None:
        pass

    def login(self, outcome: str) -> None:
        pass

    def stream_opened(self, service: str) -> None:
        pass

    def stream_closed(self, service: str) -> None:
        pass

    def stream_refused(self, reason: str) -> None:
        pass

    def bytes_relayed(self, direction: str, count: int) -> None:
        pass

    def audit_written(self, seconds: float) -> None:
        pass

    def connection_refused(self, reason: str) -> None:
        pass


class TlsRefusalBudget:
    """Which refused TLS connections of an :data:`TLS_AUDITED_REFUSALS` kind become
    ``tls.refused`` audit events, so that a flood cannot grow the permanent log
    without bound: per source host at most one event every *per_source_seconds* (the
    refusals in between are counted and the next event carries the count as
    ``suppressed``), and at most *per_minute* events a minute from all sources
    together (a flood from many addresses); at most *max_sources* hosts are
    remembered (the longest quiet is forgotten first).  Every refusal is still in
    the structured log.  Per node: *n* nodes write at most *n* times as many.
    """

    def __init__(
        self,
        *,
        per_source_seconds: float = 60.0,
        per_minute: int = 60,
        max_sources: int = 4096,
    ) -> None:
        self._per_source = per_source_seconds
        self._per_minute = per_minute
        self._max_sources = max_sources
        self._sources: dict[str, tuple[float, int]] = {}  # host -> (last event, suppressed)
        self._minute = (0.0, 0)  # (start of the current minute, events in it)

    def admit(self, host: str, now: float) -> int | None:
        """None: only log this one; else audit it, carrying this many suppressed."""
        last, suppressed = self._sources.pop(host, (None, 0))
        start, spent = self._minute
        if now - start >= 60.0:
            start, spent = now, 0
        if (last is not None and now - last < self._per_source) or spent >= self._per_minute:
            self._sources[host] = (
                last if last is not None else now - self._per_source,
                suppressed + 1,
            )
            self._trim()
            return None
        self._minute = (start, spent + 1)
        self._sources[host] = (now, 0)
        self._trim()
        return suppressed

    def _trim(self) -> None:
        while len(self._sources) > self._max_sources:
            del self._sources[next(iter(self._sources))]  # dicts keep insertion order


def record_tls_refusal(
    conn: Connection,
    *,
    at: float,
    peer: str,
    reason: str,
    serial: str,
    node: str,
    suppressed: int,
) -> None:
    """The ``tls.refused`` audit event: the account is the one the certificate was
    issued to (looked up by *serial*), ``-`` when unknown."""
    account = ""
    if serial:
        found = conn.execute(
            select(certificates.c.subject).where(certificates.c.serial == serial)
        ).scalar_one_or_none()
        account = str(found or "")
    details: dict[str, audit.DetailValue] = {"peer": peer, "certificate": serial, "node": node}
    if suppressed:
        details["suppressed"] = suppressed
    audit.append(
        conn,
        audit.AuditEvent(
            at=at,
            actor=f"channel:{account or '-'}"[:255],
            action="tls.refused",
            subject=(account or "-")[:255],
            outcome="refused",
            reason=reason,
            details=details,
        ),
    )


@dataclass
class GatewayContext:
    """Everything the tunnels of one gateway process share."""

    clock: IReactorTime
    portal: Portal
    db: Runner
    identity_key: bytes = field(repr=False)
    resume_key: bytes = field(repr=False)
    services: Mapping[str, Callable[[], IStreamClientEndpoint]]
    policy_for: Callable[[str], AccountPolicyView]
    node: str = field(default_factory=default_node_name)
    handshake_timeout: float = 10.0
    auth_timeout: float = 60.0
    live: dict[str, GatewayTunnel] = field(default_factory=dict)
    # Session ends and detaches the database refused (a full disk, a lost connection),
    # by session id: the node writes them again at each poll until they commit.
    unwritten: dict[str, SessionWrite] = field(default_factory=dict)
    # Beyond this many, the oldest is given up: the reaper ends it (node-lost) later.
    max_unwritten: int = 10_000
    tls_refusals: TlsRefusalBudget = field(default_factory=TlsRefusalBudget)
    # Who counts handshakes, logins, streams, bytes and audit writes (the metrics).
    observer: GatewayObserver = field(default_factory=NoObserver)
    # The live tunnels by the earliest time one of their timers (idle, lifetime,
    # keepalive) may be due: the node's poll looks only at those (GatewayTunnel.tick).
    deadlines: DeadlineQueue[GatewayTunnel] = field(default_factory=DeadlineQueue)

    def record(self, event: audit.AuditEvent) -> Deferred[Any]:
        asked = self.clock.seconds()
        d: Deferred[Any] = self.db.run(audit.append, event)

        def written(result: object) -> object:
            # From asking to committed: the wait for a pool thread is part of it.
            self.observer.audit_written(self.clock.seconds() - asked)
            return result

        d.addCallback(written)
        d.addErrback(lambda f: GatewayTunnel.log.failure("audit append failed", f))
        return d

    def write_session(self, session_id: str, write: SessionWrite) -> Deferred[Any]:
        """Run *write* (a session change with its event); if the database refuses it,
        keep it in :attr:`unwritten` for the node to retry.  Never fails."""
        self.unwritten.pop(session_id, None)  # superseded by this newer change
        d: Deferred[Any] = self.db.run(write)

        def refused(failure: Failure) -> None:
            GatewayTunnel.log.failure(
                "recording session {sid} failed; retrying at the next poll", failure, sid=session_id
            )
            self.keep_unwritten(session_id, write)

        return d.addErrback(refused)

    def keep_unwritten(self, session_id: str, write: SessionWrite) -> None:
        self.unwritten[session_id] = write
        while len(self.unwritten) > self.max_unwritten:
            oldest = next(iter(self.unwritten))
            del self.unwritten[oldest]
            GatewayTunnel.log.error(
                "gave up recording session {sid}: too many unwritten; the reaper ends it",
                sid=oldest,
            )


class UpstreamConnection(StreamConnection):
    """The gateway's connection to a service: the identity header goes first."""

    def __init__(self, tunnel: GatewayTunnel, stream_id: int, header: bytes, service: str) -> None:
        super().__init__(tunnel, stream_id)
        self._header = header
        self.service = service
        self.counted = False  # in the observer's open streams (until it ends)

    def connectionMade(self) -> None:
        super().connectionMade()
        assert self.transport is not None
        self.transport.write(self._header)
        self.deliver_early()


@implementer(IHandshakeListener)
class GatewayTunnel(TunnelProtocol):
    log = Logger()

    def __init__(self, ctx: GatewayContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.machine = GatewayMachine()
        self.session: ChannelSession | None = None
        # The handshake completed with a client certificate (what the tunnel needs
        # of it is read into the fields below; the object itself is not kept).
        self.certified = False
        self.cert_account: str | None = None
        self.cert_serial = ""
        self.cert_fingerprint = ""
        # What the officer's timeline shows of the TLS handshake (on login events).
        self.tls_facts: dict[str, str] = {}
        self.peer = "unknown"
        self.replaced = False  # resumed on another connection: don't end the session
        self.last_activity = 0.0
        self.last_heard = 0.0
        self.last_ping = 0.0
        self._offsets = (0, 0, 0)  # counters carried over from before a resume
        self.generation = 0  # of the resume token handed out last (AUTH_OK, MOVE)
        self._handshake = HandshakeDeadline(ctx.clock, ctx.handshake_timeout)
        self._login_deadline: Any = None
        self._is_finished = False
        self._finish_waiters: list[Deferred[None]] = []
        self._stream_events = 0
        self._unitemised = [0, 0, 0]  # streams, bytes in, bytes out past the budget
        self._stream_writes: set[Deferred[Any]] = set()  # stream.end events being written

    # -- connection and TLS --------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate | None:
        """The client certificate of a completed handshake (read again from the TLS
        connection when asked: an idle session does not keep a parsed copy)."""
        return peer_certificate(self.transport) if self.certified else None

    def connectionMade(self) -> None:
        super().connectionMade()
        now = self.ctx.clock.seconds()
        self.last_activity = self.last_heard = self.last_ping = now
        # Provisional: behind a ``haproxy:`` listener the PROXY header has not been
        # read yet (the wrapper connects the TLS protocol, and so this one, before
        # any byte arrives), so this is the balancer's address.  _take_peer reads it
        # again once the header is in.
        self.peer = transport_peer(self.transport)
        assert self.transport is not None
        self._handshake.start(self.transport)
        self._login_deadline = self.ctx.clock.callLater(self.ctx.auth_timeout, self._login_timeout)

    def _take_peer(self) -> None:
        """The client's address, from the PROXY header when a balancer sent one.

        Called when the TLS handshake completes (its bytes come after the header, so
        the wrapper has parsed it) and when a connection ends before that: every
        record of the client's address (session, audit events, source throttle,
        ``allowed_sources``, alerts) is made after one of the two.
        """
        if self.transport is not None:
            self.peer = transport_peer(self.transport)

    def handshakeCompleted(self) -> None:
        self._handshake.stop()
        self._take_peer()
        cert = peer_certificate(self.transport)
        if cert is None:  # the TLS options require one; never trust a missing one
            self.terminate(Reason.AUTH_FAILED, "no client certificate")
            return
        self.ctx.observer.handshake_completed()
        self.certified = True
        self.cert_account = certs.account_of(cert)
        self.cert_serial = certs.serial_hex_of(cert.serial_number)
        self.cert_fingerprint = certs.fingerprint_sha256_of(cert)
        try:
            version, cipher = tls_version_and_cipher(self.transport)
        except ValueError:  # not TLS (a test's plain transport): nothing to tell
            version = cipher = ""
        self.tls_facts = {
            "tls_version": version,
            "tls_cipher": cipher,
            "certificate_subject": cert.subject.rfc4514_string()[:255],
        }

    def _login_timeout(self) -> None:
        self._login_deadline = None
        if self.session is None:
            self._audit("login", self.cert_account or "-", "refused", "auth-timeout")
            self.ctx.observer.login(Reason.AUTH_TIMEOUT.slug)
            self.terminate(Reason.AUTH_TIMEOUT)

    def dataReceived(self, data: bytes) -> None:
        self.last_heard = self.ctx.clock.seconds()
        super().dataReceived(data)

    # -- events --------------------------------------------------------------------------

    def handle_side_event(self, event: object) -> None:
        if isinstance(event, AuthRequested):
            self._login(event)
        elif isinstance(event, ResumeRequested):
            self._resume(event)
        elif isinstance(event, StreamOpenRequested):
            self._open_stream(event)
        elif isinstance(event, HandshakeCompleted | PongReceived):
            pass

    def on_stream_data(self, event: StreamData) -> None:
        self.last_activity = self.ctx.clock.seconds()
        super().on_stream_data(event)

    def send_stream(self, stream: StreamConnection, data: bytes) -> None:
        self.last_activity = self.ctx.clock.seconds()
        super().send_stream(stream, data)

    # -- login ---------------------------------------------------------------------------

    def _audit(
        self, action: str, subject: str, outcome: str, reason: str = "", **details: str | int
    ) -> Deferred[Any]:
        event = self._event(action, subject, outcome, reason, **details)
        if event is None:
            d: Deferred[Any] = Deferred()
            d.callback(None)
            return d
        return self.ctx.record(event)

    def _event(
        self, action: str, subject: str, outcome: str, reason: str = "", **details: str | int
    ) -> audit.AuditEvent | None:
        """The audit event of *action* on this connection (``None``, logged, if a value
        cannot be recorded)."""
        session = self.session
        # *subject* may be the account name a client sent: any UTF-8, NUL or empty.
        subject = subject.replace("\x00", "\\x00") or "-"
        try:
            return audit.AuditEvent(
                at=self.ctx.clock.seconds(),
                actor=f"channel:{subject}"[:255],
                action=action,
                subject=subject[:255],
                outcome=outcome,
                reason=reason,
                unit=session.unit_code if session else "",
                session_id=session.session_id if session else "",
                details={"peer": self.peer, "certificate": self.cert_serial, **details},
            )
        except audit.AuditEventError:
            # Never let a bad value break the tunnel; the failure says what it was.
            self.log.failure("cannot record audit event {action}", action=action)
            return None

    def _login(self, event: AuthRequested) -> None:
        credentials = ChannelCredentials(
            account=event.account,
            password=event.password,
            otp=event.otp,
            source=self.peer,
            certificate_account=self.cert_account,
            certificate_serial=self.cert_serial,
        )
        # The realm (the mind's reader) writes this event with the session it opens, in
        # one transaction: AUTH_OK goes out only once both are committed.
        login = self._event("login", event.account, "ok", **self.tls_facts, **factor_outcomes("ok"))
        d = self.ctx.portal.login(credentials, login, IChannelSession)  # type: ignore[arg-type]
        d.addCallbacks(self._logged_in, self._login_refused, errbackArgs=(event.account,))

    def _logged_in(self, result: tuple[Any, ChannelSession, Callable[[], None]]) -> None:
        _, session, _logout = result
        ended_by = self.machine.close_reason
        if ended_by is not None:
            # The deadline, the peer or the network ended the connection while we
            # checked: the session the realm just started (and its login event) must
            # not stay live; its end is recorded like any other.
            self.session = session
            self._write_end(session, ended_by, (0, 0, 0), {})
            return
        self.ctx.observer.login("ok")
        self._open_session(session, generation=0)

    def _open_session(self, session: ChannelSession, *, generation: int) -> None:
        self.session = session
        self.generation = generation
        if self._login_deadline is not None and self._login_deadline.active():
            self._login_deadline.cancel()
        self._login_deadline = None
        token = issue_resume_token(
            self.ctx.resume_key,
            session_id=session.session_id,
            generation=generation,
            fingerprint=self.cert_fingerprint,
            now=self.ctx.clock.seconds(),
        )
        self.machine.accept_auth(
            session_id=session.session_id,
            account=session.account,
            unit_code=session.unit_code,
            resume_token=token,
            idle_timeout=int(session.policy.idle_timeout_seconds),
            max_lifetime=int(session.policy.max_lifetime_seconds),
        )
        self.flush()
        previous = self.ctx.live.get(session.session_id)
        if previous is not None and previous is not self:
            previous.replaced = True
            previous.close_transport()
        self.ctx.live[session.session_id] = self
        self.ctx.unwritten.pop(session.session_id, None)  # a failed detach: live again
        self.last_activity = self.ctx.clock.seconds()
        self.ctx.deadlines.file(self, self.next_due())

    def _login_refused(self, failure: Failure, account: str) -> None:
        retry_after = 0
        if isinstance(failure.value, LoginRefused):
            code = failure.value.reason
            retry_after = failure.value.retry_after
        else:
            self.log.failure("login error for {account}", failure, account=account)
            code = "internal-error"
        # Which factor failed is for the officer's log only; the employer gets the
        # generic reason (refusal_reason) and, for a lock, how long it lasts.
        facts: dict[str, str | int] = {**self.tls_facts, **factor_outcomes(code)}
        if retry_after:
            facts["retry_after"] = retry_after
        self._audit("login", account, "refused", code, **facts)
        reason = Reason.INTERNAL_ERROR if code == "internal-error" else refusal_reason(code)
        self.ctx.observer.login(reason.slug)
        left = self.machine.reject_auth(reason, retry_after=retry_after)
        self.flush()
        if left == 0:
            self.close_transport()

    def _resume(self, event: ResumeRequested) -> None:
        now = self.ctx.clock.seconds()
        try:
            claim = verify_resume_token(
                self.ctx.resume_key, event.token, fingerprint=self.cert_fingerprint, now=now
            )
        except ResumeTokenError as e:
            self._resume_refused(str(e))
            return
        # Committed with the reattachment, before RESUME_OK goes out.
        resumed = self._event("login.resume", self.cert_account or "-", "ok", **self.tls_facts)
        if resumed is None:
            self._resume_refused("error")
            return
        d = self.ctx.db.run(
            _sessions.resume_session_recorded,
            claim.session_id,
            generation=claim.generation,
            account=self.cert_account,
            node=self.ctx.node,
            peer=self.peer,
            now=now,
            event=resumed,
        )
        d.addCallback(self._resumed, claim.generation)
        d.addErrback(self._resume_error)

    def _resume_error(self, failure: Failure) -> None:
        self.log.failure("resume error", failure)
        self._resume_refused("error")

    def _resumed(self, record: _sessions.SessionRecord | None, generation: int) -> None:
        if record is None:
            self._resume_refused("session not resumable")
            return
        session = ChannelSession(
            record.id,
            record.account,
            record.unit_code,
            self.ctx.policy_for(record.account),
            record.started_at,
        )
        self._offsets = (record.bytes_in, record.bytes_out, record.streams_opened)
        if self.machine.close_reason is not None:
            # Gone while we reattached it: detached again, resumable as before (the
            # reaper ends it if nobody does), recorded like any detach.
            self.session = session
            self._write_detach(session, self._offsets, {})
            return
        self._open_session(session, generation=generation + 1)

    def _resume_refused(self, why: str) -> None:
        self._audit(
            "login.resume",
            self.cert_account or "-",
            "refused",
            "resume-invalid",
            why=why,
            **self.tls_facts,
        )
        if self.machine.reject_auth(Reason.RESUME_INVALID) == 0:
            self.close_transport()
        self.flush()

    # -- streams -------------------------------------------------------------------------

    def _open_stream(self, event: StreamOpenRequested) -> None:
        session = self.session
        assert session is not None  # the machine only opens streams in a session
        sid, service = event.stream_id, event.service
        if service not in session.policy.services:
            self._refuse_stream(sid, service, Reason.SERVICE_DENIED)
            return
        endpoint_for = self.ctx.services.get(service)
        if endpoint_for is None:
            self._refuse_stream(sid, service, Reason.SERVICE_UNAVAILABLE)
            return
        try:
            header = encode_assertion(self._identity(session), key=self.ctx.identity_key)
        except IdentityHeaderError:
            # E.g. a listener whose addresses are not IP: a configuration problem.
            self.log.failure("cannot vouch for stream {sid} of {peer}", sid=sid, peer=self.peer)
            self._refuse_stream(sid, service, Reason.SERVICE_UNAVAILABLE)
            return
        upstream = UpstreamConnection(self, sid, header, service)
        upstream.opened_at = self.ctx.clock.seconds()
        self.streams[sid] = upstream
        factory = quiet(Factory.forProtocol(lambda: upstream))
        d = maybeDeferred(lambda: endpoint_for().connect(factory))
        d.addTimeout(STREAM_CONNECT_TIMEOUT, self.ctx.clock)
        d.addCallbacks(
            lambda _: self._stream_connected(sid, upstream),
            lambda f: self._stream_failed(sid, service, f),
        )

    def stream_ended(self, stream: StreamConnection, how: str) -> None:
        """Record the stream's end: one ``stream.end`` event (service, bytes each way,
        duration, how it ended) within the connection's budget, else only counted."""
        if not isinstance(stream, UpstreamConnection):
            return
        # Towards the service is what the client sent (in); from it, what it got (out).
        bytes_in, bytes_out = stream.bytes_to_local, stream.bytes_from_local
        observer = self.ctx.observer
        if stream.counted:
            stream.counted = False
            observer.stream_closed(stream.service)
        observer.bytes_relayed("in", bytes_in)
        observer.bytes_relayed("out", bytes_out)
        session = self.session
        if session is None:
            return
        if self._stream_events >= STREAM_EVENTS_PER_CONNECTION:
            for i, n in enumerate((1, bytes_in, bytes_out)):
                self._unitemised[i] += n
            return
        self._stream_events += 1
        duration = max(self.ctx.clock.seconds() - stream.opened_at, 0.0)
        d = self._audit(
            "stream.end",
            session.account,
            "ok",
            STREAM_ENDS.get(how, how),
            stream=stream.stream_id or 0,
            service=stream.service,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            duration_ms=round(duration * 1000),
        )
        if not d.called:
            self._stream_writes.add(d)

            def written(result: object) -> object:
                self._stream_writes.discard(d)
                return result

            d.addBoth(written)

    def _unitemised_details(self) -> dict[str, str | int]:
        streams, bytes_in, bytes_out = self._unitemised
        if not streams:
            return {}
        return {
            "streams_not_itemised": streams,
            "bytes_in_not_itemised": bytes_in,
            "bytes_out_not_itemised": bytes_out,
        }

    def _refuse_stream(self, sid: int, service: str, reason: Reason) -> None:
        assert self.session is not None
        self.ctx.observer.stream_refused(reason.slug)
        self._audit("stream.refused", self.session.account, "refused", reason.slug, service=service)
        self.machine.reject_open(sid, reason)
        self.flush()

    def _identity(self, session: ChannelSession) -> Identity:
        assert self.transport is not None
        source, dest = self.transport.getPeer(), self.transport.getHost()
        return Identity(
            account=session.account,
            unit_code=session.unit_code,
            session_id=session.session_id,
            issued_at=self.ctx.clock.seconds(),
            source_host=getattr(source, "host", "127.0.0.1"),
            source_port=getattr(source, "port", 0),
            dest_host=getattr(dest, "host", "127.0.0.1"),
            dest_port=getattr(dest, "port", 0),
            nonce=new_nonce(),
        )

    def _stream_connected(self, sid: int, upstream: UpstreamConnection) -> None:
        if self.streams.get(sid) is not upstream:
            # The client reset the stream, or the session ended, while we connected.
            upstream.close_local()
            return
        self.machine.accept_open(sid)
        if not upstream.ended:  # an end already seen would never balance the gauge
            upstream.counted = True
            self.ctx.observer.stream_opened(upstream.service)
        upstream.stream_ready(sid)
        self.flush()

    def _stream_failed(self, sid: int, service: str, failure: Failure) -> None:
        if self.streams.get(sid) is None:
            return  # reset by the client or dropped with the session meanwhile
        del self.streams[sid]
        self.log.warn(
            "service {service} for stream {sid} unavailable: {why}",
            service=service,
            sid=sid,
            why=failure.getErrorMessage(),
        )
        self._refuse_stream(sid, service, Reason.SERVICE_UNAVAILABLE)

    # -- timers (driven by the node once a second) ---------------------------------------

    def next_due(self) -> float:
        """The earliest time :meth:`tick` may have something to do: each check below
        fires once *now* is past its time, and activity only moves a time later."""
        due = min(
            self.last_heard + KEEPALIVE_DEAD_AFTER,
            max(self.last_ping, self.last_heard) + KEEPALIVE_INTERVAL,
        )
        session = self.session
        if session is not None:
            idle, lifetime = (
                session.policy.idle_timeout_seconds,
                session.policy.max_lifetime_seconds,
            )
            if idle:
                due = min(due, self.last_activity + idle)
            if lifetime:
                due = min(due, session.started_at + lifetime)
        return due

    def tick(self, now: float) -> None:
        session = self.session
        if session is None:
            return
        idle, lifetime = session.policy.idle_timeout_seconds, session.policy.max_lifetime_seconds
        if idle and now - self.last_activity > idle:  # 0 means none, as in AUTH_OK
            self.terminate(Reason.IDLE_TIMEOUT)
        elif lifetime and now - session.started_at > lifetime:
            self.terminate(Reason.MAX_LIFETIME)
        elif now - self.last_heard > KEEPALIVE_DEAD_AFTER:
            if self.transport is not None:
                self.transport.abortConnection()  # type: ignore[attr-defined]
        elif now - max(self.last_ping, self.last_heard) > KEEPALIVE_INTERVAL:
            # Only when the client has been silent that long: a client that pings by
            # itself (every 15 s) already shows it is there and keeps the path open,
            # and 10,000 idle sessions need not cost 333 more round trips a second.
            self.last_ping = now
            self.machine.ping(secrets.token_bytes(8))
            self.flush()

    def counters(self) -> tuple[int, int, int]:
        b_in, b_out, streams = self._offsets
        return (
            b_in + self.machine.bytes_received,
            b_out + self.machine.bytes_sent,
            streams + self.machine.streams_opened,
        )

    # -- draining --------------------------------------------------------------------------

    def move_elsewhere(self, drain_seconds: int) -> bool:
        """This node drains: MOVE with a fresh resume token (protocol version 3), so the
        client resumes the same session through the balancer on another node.

        The connection leaves :attr:`GatewayContext.live` (the session is no longer
        this node's to tick, heartbeat or kill); its open streams go on until they end
        or the node's drain deadline, and its end is recorded as a detach, never as an
        end.  False, nothing sent, when the client cannot move (not logged in, or an
        older protocol version): the node ends that session as before."""
        session = self.session
        if session is None or self.transport is None:
            return False
        token = issue_resume_token(
            self.ctx.resume_key,
            session_id=session.session_id,
            generation=self.generation,
            fingerprint=self.cert_fingerprint,
            now=self.ctx.clock.seconds(),
        )
        if not self.machine.move(token, drain_seconds):
            return False
        self.flush()
        if self.ctx.live.get(session.session_id) is self:
            del self.ctx.live[session.session_id]
        self.ctx.deadlines.discard(self)
        d = self._audit(
            "session.move",
            session.account,
            "ok",
            "gateway-drain",
            node=self.ctx.node,
            streams=len(self.streams),
        )
        if not d.called:  # written before the session's last records are waited for
            self._stream_writes.add(d)

            def written(result: object) -> object:
                self._stream_writes.discard(d)
                return result

            d.addBoth(written)
        return True

    @property
    def finished(self) -> bool:
        """The connection is gone and its session's records are written."""
        return self._is_finished

    # -- the end -------------------------------------------------------------------------

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        super().connectionLost(reason)
        self._handshake.stop()
        if self._login_deadline is not None and self._login_deadline.active():
            self._login_deadline.cancel()
        ended_by = self.machine.close_reason  # None: no GOAWAY either way
        # From now on the machine says the session is over, also to a login or resume
        # still being checked (they look at close_reason when they complete).
        self.machine.connection_lost()
        session = self.session
        if session is None:
            if not self.certified:
                self._take_peer()
                self._tls_refused(reason)
            self._finished([])
            return
        if self.ctx.live.get(session.session_id) is self:
            del self.ctx.live[session.session_id]
        self.ctx.deadlines.discard(self)
        if self.replaced:
            self._finished([])
            return
        # The streams' ends (written as they ended, the last ones just now by
        # drop_streams) belong to the session's final records.
        stream_writes = list(self._stream_writes)
        unitemised = self._unitemised_details()
        counters = self.counters()
        if ended_by is None or self.machine.moved:
            # The network dropped without GOAWAY, or the session moved to another node
            # (MOVE): keep it resumable; a no-op if it was resumed elsewhere already.
            self._finished([*stream_writes, self._write_detach(session, counters, unitemised)])
            return
        self._finished([*stream_writes, self._write_end(session, ended_by, counters, unitemised)])

    def _write_end(
        self,
        session: ChannelSession,
        reason: Reason,
        counters: tuple[int, int, int],
        details: dict[str, str | int],
    ) -> Deferred[Any]:
        """The session's end and its ``session.end`` event, in one transaction (kept
        for a retry if the database refuses it)."""
        event = self._event("session.end", session.account, "ok", reason.slug, **details)
        if event is None:  # pragma: no cover - our own values always make an event
            event = audit.AuditEvent(
                at=self.ctx.clock.seconds(),
                actor=f"channel:{session.account}",
                action="session.end",
                subject=session.account,
                outcome="ok",
                reason=reason.slug,
                unit=session.unit_code,
                session_id=session.session_id,
            )
        b_in, b_out, streams = counters
        write = functools.partial(
            _sessions.end_session_recorded,
            session_id=session.session_id,
            reason=reason.slug,
            now=self.ctx.clock.seconds(),
            bytes_in=b_in,
            bytes_out=b_out,
            streams_opened=streams,
            event=event,
        )
        return self.ctx.write_session(session.session_id, write)

    def _write_detach(
        self, session: ChannelSession, counters: tuple[int, int, int], details: dict[str, str | int]
    ) -> Deferred[Any]:
        """The session detached, with its counters and ``session.detach`` event (reason
        ``gateway-drain`` when it was moved away from this node, else ``network-lost``)."""
        why = "gateway-drain" if self.machine.moved else "network-lost"
        event = self._event("session.detach", session.account, "ok", why, **details)
        if event is None:  # pragma: no cover - our own values always make an event
            return self._write_end(session, Reason.NETWORK_LOST, counters, details)
        b_in, b_out, streams = counters
        write = functools.partial(
            _sessions.detach_session_recorded,
            session_id=session.session_id,
            node=self.ctx.node,
            now=self.ctx.clock.seconds(),
            bytes_in=b_in,
            bytes_out=b_out,
            streams_opened=streams,
            event=event,
        )
        return self.ctx.write_session(session.session_id, write)

    def _tls_refused(self, reason: Failure) -> None:
        # Logged; audited only for a revoked certificate (the officers' revoked-cert
        # alert must see it), within TlsRefusalBudget: anyone can open a TCP
        # connection, and the audit log must not be a scanner's to fill.
        code = tls_refusal_reason(reason.value, timed_out=self._handshake.expired)
        # OpenSSL tells the server only "certificate verify failed" (the client gets
        # the "certificate revoked" alert): the verify callback noted a revoked leaf.
        serial = refused_revoked_serial(self.transport)
        if serial:
            code = "cert-revoked"
        self.ctx.observer.handshake_failed(code)
        self.log.warn(
            "refused TLS connection from {peer}: {reason}",
            peer=self.peer,
            reason=code,
            certificate=serial,
            detail=reason.getErrorMessage()[:200],
        )
        if code not in TLS_AUDITED_REFUSALS:
            return
        now = self.ctx.clock.seconds()
        suppressed = self.ctx.tls_refusals.admit(_host_of(self.peer), now)
        if suppressed is None:
            return
        self.ctx.db.run(
            record_tls_refusal,
            at=now,
            peer=self.peer,
            reason=code,
            serial=serial,
            node=self.ctx.node,
            suppressed=suppressed,
        ).addErrback(lambda f: self.log.failure("cannot record a refused TLS connection", f))

    def _finished(self, writes: list[Deferred[Any]]) -> None:
        """Fire :meth:`when_finished` once the session's final records are written."""
        done = gatherResults(writes, consumeErrors=True)
        done.addErrback(lambda f: self.log.failure("recording the end of a session failed", f))
        done.addBoth(lambda _: self._fire_finished())

    def _fire_finished(self) -> None:
        self._is_finished = True
        waiting, self._finish_waiters = self._finish_waiters, []
        for d in waiting:
            d.callback(None)

    def when_finished(self) -> Deferred[None]:
        """Fires once the connection is gone and the session's end is recorded."""
        d: Deferred[None] = Deferred()
        if self._is_finished:
            d.callback(None)
        else:
            self._finish_waiters.append(d)
        return d


class _AdmittingFactory(ServerFactory):
    """A tunnel per connection while the descriptor budget has room; past it, the
    connection is told GOAWAY(``gateway-full``) (:mod:`gateway._full`) and the live
    sessions keep the reserve.  Each refusal is logged with its reason code (at most
    one line a second; the others are counted on it) and counted by the observer."""

    log = Logger()

    def __init__(self, ctx: GatewayContext, budget: DescriptorBudget) -> None:
        self.ctx = ctx
        self.budget = budget
        self.refusing = 0  # refusals still connected (a descriptor each)
        self._logged_at: float | None = None
        self._unlogged = 0

    def buildProtocol(self, addr: Any) -> Any:
        if self.budget.admit():
            tunnel = GatewayTunnel(self.ctx)
            tunnel.factory = self
            return tunnel
        self.ctx.observer.connection_refused(Reason.GATEWAY_FULL.slug)
        self._log_refusal(addr)
        self.refusing += 1
        return GatewayFullRefusal(
            self.ctx.clock,
            handshake_timeout=min(self.ctx.handshake_timeout, 5.0),
            on_lost=self._refusal_gone,
            # A flood: cut at once, keep the reserve for the live sessions.
            at_once=self.refusing > max(1, self.budget.reserve // 2),
        )

    def _refusal_gone(self) -> None:
        self.refusing -= 1

    def _log_refusal(self, addr: Any) -> None:
        now = self.ctx.clock.seconds()
        if self._logged_at is not None and now - self._logged_at < 1.0:
            self._unlogged += 1
            return
        self.log.warn(
            "refused connection from {peer}: {reason} ({in_use} descriptors in use, limit "
            "{limit}, reserve {reserve}; {suppressed} more refused since the last line)",
            peer=f"{getattr(addr, 'host', addr)}:{getattr(addr, 'port', '')}",
            reason=Reason.GATEWAY_FULL.slug,
            in_use=self.budget.in_use,
            limit=self.budget.limit,
            reserve=self.budget.reserve,
            suppressed=self._unlogged,
        )
        self._logged_at, self._unlogged = now, 0


class GatewayNode(Service):
    """This process's gateway: live tunnels, kill requests, timers, heartbeats."""

    log = Logger()

    def __init__(
        self,
        ctx: GatewayContext,
        *,
        poll_interval: float = 1.0,
        process_alive: Callable[[int], bool] = process_alive,
        drain_seconds: float = DEFAULT_DRAIN_SECONDS,
    ) -> None:
        self.ctx = ctx
        self.drain_seconds = drain_seconds
        self._poll_interval = poll_interval
        self._process_alive = process_alive
        # Fires once the sessions of stopped processes are ended (see startService);
        # if the database refused, the poll tries again every 30 ticks.
        self.recovered: Deferred[int] | None = None
        self._booted_at = 0.0
        self._recovery_due = True
        self._loop: LoopingCall | None = None
        self._ticks = 0
        self._polling = False
        # Which live sessions must end, reading only what changed (not every session).
        self._kill_poll = _sessions.KillPoll(clock=ctx.clock.seconds)
        self._most_live = 0  # live sessions at most since memory was last given back
        # While the database is down the poll fails every second: log that at a rate
        # a person can read (the first in full, a summary a minute, the recovery).
        self._poll_failures = RepeatedFailureLog(self.log, "session poll", clock=ctx.clock.seconds)

    def factory(
        self, tls: ReloadingServerTLS, *, descriptors: DescriptorBudget | None = None
    ) -> TLSMemoryBIOFactory:
        """The listener's factory; past *descriptors* (default: this process's open-files
        limit, read now) new connections get GOAWAY(``gateway-full``)."""
        budget = descriptors or DescriptorBudget(clock=self.ctx.clock.seconds)
        return TLSMemoryBIOFactory(tls, False, _AdmittingFactory(self.ctx, budget))

    def startService(self) -> None:
        Service.startService(self)
        map_large_allocations()  # before the first login hashes
        self._booted_at = self.ctx.clock.seconds()
        self.recovered = self._recover()
        self._loop = LoopingCall(self._poll)
        self._loop.clock = self.ctx.clock
        self._loop.start(self._poll_interval, now=False).addErrback(
            lambda f: self.log.failure("gateway poll loop died", f)
        )

    def stopService(self) -> Deferred[None]:
        """Drain (:meth:`drain`), then stop polling; fires once every session's end or
        move is recorded.

        Wait for this before closing the database, or the sessions stay ``live`` and
        count against their accounts' limits until another node reaps them.  Stop
        listening first, so the clients that move reach another node.
        """
        Service.stopService(self)
        d = self.drain(self.drain_seconds)

        def stop_polling(result: object) -> object:
            if self._loop is not None and self._loop.running:
                self._loop.stop()
            return result

        return d.addBoth(stop_polling).addBoth(self._last_writes)

    def drain(self, drain_seconds: float) -> Deferred[None]:
        """Hand every live session to another node; fires once all are gone.

        A client that speaks protocol version 3 gets MOVE with a fresh resume token:
        it resumes the same session through the balancer elsewhere, without a new code,
        and its streams still open here get up to *drain_seconds* to finish.  An older
        client gets GOAWAY(``gateway-shutdown``) as before (it is told why, and logs in
        again).  What is still connected at the deadline gets GOAWAY(``gateway-shutdown``)
        (a moved session stays resumable: its record is a detach, not an end), and what
        has not closed :data:`SHUTDOWN_GRACE` seconds later is cut.
        """
        tunnels = list(self.ctx.live.values())
        moved = 0
        for tunnel in tunnels:
            if tunnel.move_elsewhere(max(0, int(drain_seconds))):
                moved += 1
            else:
                tunnel.terminate(Reason.GATEWAY_SHUTDOWN)
        if tunnels:
            self.log.info(
                "draining: {moved} sessions moved, {ended} ended (older clients); "
                "open streams get {seconds} s",
                moved=moved,
                ended=len(tunnels) - moved,
                seconds=drain_seconds,
            )
        done: Deferred[None] = Deferred()
        if not tunnels:
            done.callback(None)
            return done
        clock = self.ctx.clock

        def cut() -> None:
            for tunnel in tunnels:
                if tunnel.transport is not None and not tunnel.finished:
                    tunnel.transport.abortConnection()  # type: ignore[attr-defined]

        def deadline() -> None:
            for tunnel in tunnels:
                if not tunnel.finished:
                    tunnel.terminate(Reason.GATEWAY_SHUTDOWN)
            timers.append(clock.callLater(SHUTDOWN_GRACE, cut))

        # Old clients were told at once: they only need the grace to read their GOAWAY.
        timers = [
            clock.callLater(drain_seconds, deadline)
            if moved
            else clock.callLater(SHUTDOWN_GRACE, cut)
        ]
        all_gone = gatherResults([t.when_finished() for t in tunnels], consumeErrors=True)

        def gone(_: object) -> None:
            for timer in timers:
                if timer.active():
                    timer.cancel()
            done.callback(None)

        all_gone.addBoth(gone)
        return done

    def _last_writes(self, _: object) -> Deferred[None]:
        """One more try for the session changes the database refused (what still fails
        is ended at the next start, or by another node, as ``node-lost``)."""
        d: Deferred[None] = Deferred()
        if not self.ctx.unwritten:
            d.callback(None)
            return d
        retry = self._write_again()
        retry.addErrback(
            lambda f: self.log.failure(
                "{count} session ends stay unrecorded at stop", f, count=len(self.ctx.unwritten)
            )
        )
        retry.addBoth(lambda _: d.callback(None))
        return d

    def _recover(self) -> Deferred[int]:
        """End the sessions a dead gateway process on this host left live (a crash, a
        ``kill -9``), each with its ``session.end`` event; fires with how many."""
        host, _, pid = self.ctx.node.rpartition(":")
        d: Deferred[int] = self.ctx.db.run(
            _sessions.recover_sessions,
            node=self.ctx.node,
            host=host if pid.isdigit() else "",
            process_alive=self._process_alive,
            booted_at=self._booted_at,
            now=self.ctx.clock.seconds(),
        )

        def done(ended: int) -> int:
            self._recovery_due = False
            if ended:
                self.log.warn(
                    "ended {count} sessions left live by a stopped gateway process", count=ended
                )
            else:
                self.log.info("start-up recovery: no session left live by a stopped process")
            return ended

        def failed(failure: Failure) -> int:
            # Not fatal: the poll tries again, and the reaper ends them once stale.
            self.log.failure("recovering the sessions of stopped processes failed", failure)
            return 0

        return d.addCallbacks(done, failed)

    def _poll(self) -> None:
        now = self.ctx.clock.seconds()
        live, deadlines = self.ctx.live, self.ctx.deadlines
        # Only the tunnels whose earliest timer may be due (not all of them, every
        # second); each is filed again under its next time, also when nothing was
        # due yet (its activity moved the time on) or it is still ending.
        for tunnel in deadlines.due(now):
            session = tunnel.session
            if session is None or live.get(session.session_id) is not tunnel:
                continue
            try:
                tunnel.tick(now)
            except Exception:
                # One broken tunnel must not stop the loop that ends all the others.
                self.log.failure("tick failed for {peer}", peer=tunnel.peer)
            if live.get(session.session_id) is tunnel:
                # Past due still (a check is strict, or the end is under way): the
                # next poll looks again, as the loop over every tunnel did.
                deadlines.file(tunnel, max(tunnel.next_due(), now))
        self._ticks += 1
        self._most_live = max(self._most_live, len(live))
        if self._ticks % 30 == 0:
            self._give_memory_back()
        if self._polling:
            return  # the database is slow; don't pile up queries
        self._polling = True
        ids = list(self.ctx.live)
        d: Deferred[Any] = self.ctx.db.run(self._kill_poll, ids)
        d.addCallback(self._end_sessions)
        if self._ticks % 10 == 0:
            stats = {sid: t.counters() for sid, t in self.ctx.live.items()}
            d.addCallback(lambda _: self.ctx.db.run(_sessions.heartbeat, stats, now=now))
        if self._ticks % 30 == 0 and self._recovery_due:
            d.addCallback(lambda _: self._recover())
        if self._ticks % 30 == 0:
            actor = f"gateway:{self.ctx.node}"
            d.addCallback(
                lambda _: self.ctx.db.run(_sessions.reap_stale_recorded, now=now, actor=actor)
            )
        if self.ctx.unwritten:
            d.addCallback(lambda _: self._write_again())
        d.addCallbacks(self._poll_failures.succeeded, self._poll_failures.failed)
        d.addBoth(self._polled)

    def _give_memory_back(self) -> None:
        """Once many sessions have ended since the most there were, hand the heap's
        free pages back to the kernel (glibc's ``malloc_trim``; a few ms, on the
        reactor, once after a rush rather than at every end)."""
        live = len(self.ctx.live)
        ended = self._most_live - live
        if _malloc_trim is None or ended < max(TRIM_AFTER_ENDED, self._most_live // 4):
            return
        self._most_live = live
        _malloc_trim(0)

    def _polled(self, result: object) -> None:
        self._polling = False

    def _write_again(self) -> Deferred[Any]:
        """Retry the session changes the database refused, oldest first; the first
        failure stops the round (and fails the poll, logged at a readable rate)."""
        pending = list(self.ctx.unwritten.items())

        def next_one(_: object = None) -> Deferred[Any] | None:
            while pending:
                session_id, write = pending.pop(0)
                if self.ctx.unwritten.get(session_id) is not write:
                    continue  # superseded meanwhile
                d: Deferred[Any] = self.ctx.db.run(write)

                def written(_: object, sid: str = session_id, w: SessionWrite = write) -> object:
                    if self.ctx.unwritten.get(sid) is w:
                        del self.ctx.unwritten[sid]
                    return next_one()

                return d.addCallback(written)
            return None

        first = next_one()
        if first is None:
            done: Deferred[Any] = Deferred()
            done.callback(None)
            return done
        return first

    def _end_sessions(self, verdict: dict[str, _sessions.SessionEnd]) -> None:
        for session_id, end in verdict.items():
            tunnel = self.ctx.live.get(session_id)
            if tunnel is None:
                continue
            try:
                reason = Reason.from_slug(end.reason)
            except ValueError:
                # A kill reason written by another version or by hand: still a kill.
                reason = Reason.OFFICER_KILL
            # Not the note: it is the officer's words, in the audit log already.
            self.log.info("ending session {sid}: {reason}", sid=session_id, reason=reason.slug)
            # The machine makes the note one clean line before it goes to the client.
            tunnel.terminate(reason, end.note if reason is Reason.OFFICER_KILL else "")

    def revoked(self, crl: x509.CertificateRevocationList) -> None:
        """A new CRL: end at once the live sessions whose certificate it lists."""
        serials = {certs.serial_hex_of(entry.serial_number) for entry in crl}
        for tunnel in list(self.ctx.live.values()):
            if tunnel.cert_serial in serials:
                tunnel.terminate(Reason.CERT_REVOKED)
