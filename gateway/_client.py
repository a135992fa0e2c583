"""``ssgate connect``: the employer's end of the secure channel.

:class:`ConnectClient` dials the gateway once (mutual TLS with the certificate from the
enrolment bundle), logs in with password + one-time code, then listens on loopback
and carries each local TCP connection as a stream to the ``declare`` service.  After a
network drop it reconnects by itself with the single-use resume token, without a new
code, keeping the session id.  When the gateway node it is on drains (MOVE, protocol
version 3) it does the same at once with the token MOVE carries, lets the streams
already open finish on the old connection, and holds new local connections until
the session is back.  Every end is told in one plain sentence (Chinese and
English) and a distinct exit status (:attr:`Reason.exit_code`).

Stream admission: a session carries at most ``max_streams`` (100) streams at once.  A
local connection beyond that waits, unread, in a bounded queue (:class:`StreamQueue`,
first come first served) until a stream ends, for at most :data:`STREAM_WAIT_TIMEOUT`
seconds; when the wait expires or the queue is full it gets an HTTP 503 answer (the
browser shows why and may retry) instead of a bare close.  So does a stream the
gateway refuses.  The queue length is :attr:`ConnectClient.waiting_streams`, and the
client logs when local connections start and stop waiting.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import tomllib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ServerEndpoint, wrapClientTLS
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

import certs
from gateway._frames import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    RETRY_AFTER_CALL_CARRIER,
    terminal_text,
)
from gateway._machine import (
    AuthAccepted,
    AuthRejected,
    ClientMachine,
    HandshakeCompleted,
    MachineUsageError,
    MoveRequested,
    PongReceived,
    StreamLimitError,
    StreamOpened,
    StreamRefused,
)
from gateway._reasons import Reason
from gateway._tls import client_tls_options
from gateway._tunnel import StreamConnection, TunnelProtocol, quiet

RESUME_WINDOW = 110.0  # a little under the token's 120 s validity
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_DEAD_AFTER = 45.0
SERVICE = "declare"
# Local connections held while the session moves to another gateway node; past this
# many, new ones are closed (a browser opens a handful per page).
MAX_PARKED = 64
# Local connections beyond the session's stream limit wait this long for a free
# stream, at most this many of them; then they are answered 503 (see the docstring).
STREAM_WAIT_TIMEOUT = 30.0
MAX_WAITING = 1024
# After a 503 the request may still be arriving: read and drop it for at most this
# long, so that closing with unread bytes does not reset the connection (and lose
# the answer) before the browser has read it.
ANSWER_LINGER = 2.0

# Exit statuses of 'ssgate connect' for failures before any session exists.
EXIT_SETUP = 2  # bad profile, bundle or passphrase
EXIT_UNREACHABLE = 3  # the gateway cannot be reached or its certificate is wrong


# Added to the generic auth-failed sentence: the client cannot know which factor was
# wrong (the gateway never says), but a code typed twice is the usual mistake.
CODE_ONCE_HINT = (
    "每个动态口令只能使用一次：如果刚刚用过这个口令，请等待下一个口令出现后再试。"
    " A one-time code works only once: if you have just used this one, wait for the "
    "next code and try again."
)


def refusal_text(reason: Reason, retry_after: int | None = None) -> str:
    """What the client prints when a login is refused (Chinese, then English).

    ``auth-failed`` keeps its generic sentence and adds :data:`CODE_ONCE_HINT`;
    ``locked`` says for how many minutes (AUTH_FAIL's ``retry_after``, protocol
    version 2) or, for an account at its hard cap, to call the carrier; ``throttled``
    says for how many minutes the source address must wait.
    """
    if reason is Reason.AUTH_FAILED:
        return f"{reason.bilingual}\n{CODE_ONCE_HINT}"
    if reason is Reason.LOCKED and retry_after == RETRY_AFTER_CALL_CARRIER:
        return (
            "该账号因多次登录失败已被锁定，需由电信运营商解锁，请联系电信运营商。"
            " This account is locked after too many failed logins and only the carrier "
            "can unlock it; please call the carrier."
        )
    if reason is Reason.LOCKED and retry_after:
        minutes = max(1, math.ceil(retry_after / 60))
        return (
            f"该账号因多次登录失败已被暂时锁定，请在 {minutes} 分钟后再试。"
            f" This account is locked after repeated failed logins; please try again in "
            f"{minutes} minute{'s' if minutes != 1 else ''}."
        )
    if reason is Reason.THROTTLED and retry_after and retry_after != RETRY_AFTER_CALL_CARRIER:
        minutes = max(1, math.ceil(retry_after / 60))
        return (
            f"该网络地址登录失败次数过多，请在 {minutes} 分钟后再试。"
            f" Too many failed logins came from this network address; please try again in "
            f"{minutes} minute{'s' if minutes != 1 else ''}."
        )
    return reason.bilingual


def officer_kill_text(note: str) -> str:
    """The line printed when an officer ended the session; *note* is theirs, cleaned
    once more here (the gateway should have, but this is what reaches the terminal)."""
    note = terminal_text(note)
    if not note:
        return Reason.OFFICER_KILL.bilingual
    return f"会话已被安全管理员终止 / Terminated by a security officer: {note}"


def unavailable_answer(reason: Reason) -> bytes:
    """The HTTP 503 a local connection gets when no stream can carry it: the reason's
    sentence in Chinese and English, the slug in ``X-Ssgate-Reason``, a retry hint."""
    body = f"{reason.chinese}\n{reason.english}\n".encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 5\r\n"
        "Cache-Control: no-store\r\n"
        f"X-Ssgate-Reason: {reason.slug}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


class ClientSetupError(Exception):
    """The profile, bundle or passphrase cannot be used; the message says why."""


@dataclass(frozen=True)
class Profile:
    path: Path
    account: str
    gateway_host: str
    gateway_port: int
    ca_fingerprint_sha256: str
    ca_file: Path
    client_bundle: Path


_KIND_CHINESE = {"str": "文本", "int": "整数"}


def load_profile(path: Path) -> Profile:
    """The profile at *path*; :class:`ClientSetupError` (one line, Chinese and English,
    naming the file and the problem) for a missing, unreadable or malformed one."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClientSetupError(
            f"{path}: 找不到该配置文件，请检查 --profile 的路径（应为开通包中的 profile.toml）。"
            f" No such profile: check the --profile path (the profile.toml of your "
            f"enrolment bundle)."
        ) from None
    except IsADirectoryError:
        raise ClientSetupError(
            f"{path}: 这是一个目录，--profile 应指向开通包中的 profile.toml 文件。"
            f" This is a directory: --profile names the profile.toml file of your "
            f"enrolment bundle."
        ) from None
    except OSError as e:
        raise ClientSetupError(
            f"{path}: 无法读取该配置文件（{e.strerror}）。 Cannot read this profile ({e.strerror})."
        ) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise ClientSetupError(
            f"{path}: 不是有效的配置文件（应为开通包中的 profile.toml）。"
            f" Not a valid profile (expected the profile.toml of your enrolment bundle)."
        ) from None
    expected = {
        "account": str,
        "gateway_host": str,
        "gateway_port": int,
        "ca_fingerprint_sha256": str,
        "ca_file": str,
        "client_bundle": str,
    }
    for key, kind in expected.items():
        if not isinstance(raw.get(key), kind):
            raise ClientSetupError(
                f"{path}: {key} 缺失或不是{_KIND_CHINESE[kind.__name__]}。"
                f" {key} missing or not a {kind.__name__}."
            )
    unknown = set(raw) - set(expected)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ClientSetupError(f"{path}: 无法识别的配置项 {names}。 Unknown keys {names}.")
    if not 1 <= raw["gateway_port"] <= 65535:
        raise ClientSetupError(f"{path}: gateway_port 应为 1-65535。 gateway_port must be 1-65535.")
    base = path.parent
    return Profile(
        path=path,
        account=raw["account"],
        gateway_host=raw["gateway_host"],
        gateway_port=raw["gateway_port"],
        ca_fingerprint_sha256=raw["ca_fingerprint_sha256"].lower(),
        ca_file=base / raw["ca_file"],
        client_bundle=base / raw["client_bundle"],
    )


@dataclass(frozen=True)
class ClientIdentity:
    ca: x509.Certificate
    key: PrivateKeyTypes = field(repr=False)
    certificate: x509.Certificate


def load_identity(profile: Profile, passphrase: bytes) -> ClientIdentity:
    """The CA (checked against the profile's fingerprint) and the client key pair."""
    try:
        ca_pem = profile.ca_file.read_bytes()
        ca = x509.load_pem_x509_certificate(ca_pem)
    except OSError as e:
        raise ClientSetupError(
            f"{profile.ca_file}: 无法读取（{e.strerror}），它应与 profile.toml 在同一目录。"
            f" Cannot read ({e.strerror}); it belongs beside profile.toml."
        ) from None
    except ValueError:
        raise ClientSetupError(
            f"{profile.ca_file}: 不是 PEM 格式的证书。 Not a PEM certificate."
        ) from None
    fingerprint = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    if fingerprint != profile.ca_fingerprint_sha256.replace(":", ""):
        raise ClientSetupError(
            f"{profile.ca_file}: CA 证书指纹与配置文件不符，请向电信运营商索取新的开通包。"
            " CA fingerprint does not match the profile; "
            "ask your carrier for a new enrolment bundle."
        )
    try:
        data = profile.client_bundle.read_bytes()
    except OSError as e:
        raise ClientSetupError(
            f"{profile.client_bundle}: 无法读取（{e.strerror}），它应与 profile.toml 在同一目录。"
            f" Cannot read ({e.strerror}); it belongs beside profile.toml."
        ) from None
    try:
        key, cert, _chain = certs.load_pkcs12(data, passphrase)
    except certs.CertificateError:
        raise ClientSetupError(
            f"{profile.client_bundle}: 证书密码错误或文件损坏。 Wrong passphrase or damaged file."
        ) from None
    if certs.account_of(cert) != profile.account:
        raise ClientSetupError(
            f"{profile.client_bundle}: 该证书不属于账号 {profile.account}。"
            f" The certificate is not for {profile.account}."
        )
    return ClientIdentity(ca=ca, key=key, certificate=cert)


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:8080`` → (host, port); only loopback, so no one else can use the session."""
    shown = terminal_text(text, 80)
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ClientSetupError(
            f"--listen {shown!r}: 请写成 主机:端口，例如 127.0.0.1:8080。"
            " Write it as HOST:PORT, e.g. 127.0.0.1:8080."
        )
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ClientSetupError(
            f"--listen {shown!r}: 主机必须是 IP 地址。 HOST must be an IP address."
        ) from None
    if not address.is_loopback:
        raise ClientSetupError(
            f"--listen {shown!r}: 只允许本机回环地址（127.0.0.1），以免网络上的其他人使用您的会话。"
            " Only a loopback address (127.0.0.1) is allowed, "
            "so nobody else on the network can use your session."
        )
    return str(address), int(port_text)


class StreamQueue:
    """Local connections waiting for a free stream, oldest first, at most *limit*.

    Each waits at most *timeout* seconds, then is answered 503.  :attr:`peak`,
    :attr:`timed_out` and :attr:`refused` say how it went.  When connections start
    waiting and when none waits any more it is logged, and told with *say* (the
    user's terminal: ``ssgate connect`` has no log of its own)."""

    log = Logger()

    def __init__(
        self,
        clock: Any,
        *,
        limit: int = MAX_WAITING,
        timeout: float = STREAM_WAIT_TIMEOUT,
        say: Callable[[str], object] | None = None,
    ) -> None:
        self.clock = clock
        self._say = say
        self.limit = limit
        self.timeout = timeout
        self._waiting: deque[LocalConnection] = deque()
        self._timers: dict[LocalConnection, Any] = {}
        self.peak = 0
        self.timed_out = 0
        self.refused = 0  # answered 503 at once: the queue was full

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, connection: LocalConnection) -> bool:
        """Queue *connection*; False (and nothing queued) if the queue is full."""
        if len(self._waiting) >= self.limit:
            self.refused += 1
            return False
        if not self._waiting:
            self.log.info(
                "the session's streams are all in use; local connections wait for one "
                "(at most {limit}, {timeout} s each)",
                limit=self.limit,
                timeout=self.timeout,
            )
            if self._say is not None:
                self._say(
                    "安全通道的连接数已满，新的本地连接正在排队等待… The secure channel's "
                    "streams are all in use; new local connections wait for a free one…"
                )
        self._waiting.append(connection)
        self._timers[connection] = self.clock.callLater(self.timeout, self._expire, connection)
        self.peak = max(self.peak, len(self._waiting))
        return True

    def first(self) -> LocalConnection | None:
        return self._waiting[0] if self._waiting else None

    def remove(self, connection: LocalConnection) -> None:
        if connection not in self._timers:
            return
        timer = self._timers.pop(connection)
        if timer is not None and timer.active():
            timer.cancel()
        self._waiting.remove(connection)
        if not self._waiting:
            self.log.info(
                "no local connection waits for a stream any more (peak {peak}, "
                "{timed_out} timed out, {refused} refused with the queue full)",
                peak=self.peak,
                timed_out=self.timed_out,
                refused=self.refused,
            )
            if self._say is not None:
                self._say(
                    f"排队的本地连接已处理完毕（最多 {self.peak} 个同时等待）。 No local "
                    f"connection waits any more (at most {self.peak} waited at once; "
                    f"{self.timed_out} timed out so far)."
                )

    def _expire(self, connection: LocalConnection) -> None:
        self._timers[connection] = None  # fired: remove() must not cancel it
        self.timed_out += 1
        self.remove(connection)
        connection.answer_unavailable(Reason.TOO_MANY_STREAMS)

    def clear(self, reason: Reason) -> None:
        """The session is over: answer every waiting connection with *reason*."""
        self._say = None  # the user has been told why the session ended
        while self._waiting:
            connection = self._waiting[0]
            self.remove(connection)
            connection.answer_unavailable(reason)


class LocalConnection(StreamConnection):
    """A browser connection on 127.0.0.1, carried as one stream.

    A *parked* one arrived while the session was moving to another node: it is not
    read from (so nothing is buffered) until :meth:`attach` gives it the new tunnel;
    meanwhile its ``tunnel`` is the old one, which it never uses without a stream id.
    A *waiting* one arrived when the session's streams were all in use: it is not read
    from either, and waits in *queue* until :meth:`admit` finds a free stream.  One
    that can get no stream is answered HTTP 503 (:meth:`answer_unavailable`).
    """

    def __init__(
        self,
        tunnel: TunnelProtocol,
        *,
        park: Callable[[LocalConnection], None] | None = None,
        queue: StreamQueue | None = None,
    ) -> None:
        super().__init__(tunnel)
        self._park = park
        self._queue = queue
        self.waiting = False
        self.answered = False  # a 503 went out; the rest of the request is dropped
        self._linger: Any = None

    def connectionMade(self) -> None:
        super().connectionMade()
        if self._park is not None:
            self._pause_unread()
            self._park(self)
            return
        self._open_stream()

    def _pause_unread(self) -> None:
        assert self.transport is not None
        if not self.reading_paused:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
            self.reading_paused = True

    def attach(self, tunnel: TunnelProtocol) -> None:
        """The session is back (on another node): carry this connection there."""
        self._park = None
        if self.closed or self.transport is None:
            return
        self.tunnel = tunnel
        self._open_stream()

    def admit(self, tunnel: TunnelProtocol) -> bool:
        """A stream may be free on *tunnel*: open one.  False if there is none yet
        (the connection keeps waiting); True once it left the queue either way."""
        if self.closed or self.transport is None:
            return True
        try:
            sid = tunnel.machine.open_stream(SERVICE)
        except StreamLimitError:
            return False
        except MachineUsageError:  # the session is ending: it says why elsewhere
            return False
        self.waiting = False
        self.tunnel = tunnel
        self._carry(tunnel, sid)
        return True

    def _open_stream(self) -> None:
        tunnel = self.tunnel
        try:
            sid = tunnel.machine.open_stream(SERVICE)
        except StreamLimitError:
            self._wait()
            return
        except MachineUsageError:  # the session is ending
            self.answer_unavailable(Reason.SERVICE_UNAVAILABLE)
            return
        self._carry(tunnel, sid)

    def _carry(self, tunnel: TunnelProtocol, sid: int) -> None:
        tunnel.streams[sid] = self
        self.stream_ready(sid)
        tunnel.flush()

    def _wait(self) -> None:
        if self._queue is None or not self._queue.add(self):
            self.answer_unavailable(Reason.TOO_MANY_STREAMS)
            return
        self.waiting = True
        self._pause_unread()

    def answer_unavailable(self, reason: Reason) -> None:
        """Answer HTTP 503 saying *reason*, then close (never a bare close)."""
        if self.transport is None or self.closed or self.answered:
            return
        self.answered = True
        self.waiting = False
        self._early = []
        self._stop_producing_for_local()
        transport: Any = self.transport
        transport.write(unavailable_answer(reason))
        half_close = getattr(transport, "loseWriteConnection", None)
        if not self.reading_paused or half_close is None:
            # What the browser sent has been read: a plain close ends it cleanly.
            transport.loseConnection()
            return
        # Unread bytes (a waiting connection's request) would make the close a reset
        # that can destroy the answer: half-close, and read and drop until the browser
        # closes too (or the linger ends).
        self.reading_paused = False
        transport.resumeProducing()
        half_close()
        clock = self._queue.clock if self._queue is not None else None
        if clock is not None:
            self._linger = clock.callLater(ANSWER_LINGER, self.close_local)

    def dataReceived(self, data: bytes) -> None:
        if self.answered:
            return  # the rest of a request we answered 503
        super().dataReceived(data)

    def readConnectionLost(self) -> None:
        if self.answered:
            self.close_local()
            return
        super().readConnectionLost()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        if self.waiting and self._queue is not None:
            self.waiting = False
            self._queue.remove(self)  # the browser gave up waiting
        super().connectionLost(reason)


class ClientTunnel(TunnelProtocol):
    log = Logger()

    def __init__(self, client: ConnectClient, *, resume_token: bytes | None) -> None:
        super().__init__()
        self.client = client
        self.machine = ClientMachine(versions=client.protocol_versions)
        self.open = False
        self.last_heard = client.clock.seconds()
        self.last_ping = self.last_heard
        self._close_when_drained = False  # moved: close once the last stream ends
        if resume_token is not None:
            self.machine.resume(resume_token)
        else:
            self.machine.authenticate(client.profile.account, client.password, client.otp)

    def dataReceived(self, data: bytes) -> None:
        self.last_heard = self.client.clock.seconds()
        super().dataReceived(data)

    def handle_side_event(self, event: object) -> None:
        if isinstance(event, AuthAccepted):
            self.open = True
            self.client.connected(self, event)
        elif isinstance(event, AuthRejected):
            self.client.rejected(event)
        elif isinstance(event, MoveRequested):
            self.client.moving(self, event)
        elif isinstance(event, StreamRefused):
            stream = self.streams.pop(event.stream_id, None)
            self.client.say(f"{event.reason.bilingual}")
            if isinstance(stream, LocalConnection):
                stream.answer_unavailable(event.reason)  # the browser reads why
            elif stream is not None:
                stream.close_local()
            self.client.stream_freed(self)
            if self._close_when_drained and not self.streams:
                # A moved connection whose last stream was refused has nothing left.
                self.client.clock.callLater(0, self._close_if_drained)
        elif isinstance(event, StreamOpened | HandshakeCompleted | PongReceived):
            pass

    def session_closed(self, reason: Reason, message: str, *, by_peer: bool) -> None:
        self.open = False
        if not self.machine.moving:  # a moved connection's end is not the session's
            self.client.ended(reason, message if by_peer else "")
        super().session_closed(reason, message, by_peer=by_peer)

    # -- after MOVE: this connection only finishes its streams --------------------------

    def close_when_drained(self) -> None:
        """Close this (moved) connection once its last stream has ended."""
        self.open = False
        self._close_when_drained = True
        self._close_if_drained()

    def stream_ended(self, stream: StreamConnection, how: str) -> None:
        self.client.stream_freed(self)
        if self._close_when_drained and not self.streams:
            # Not from inside the stream's unwinding, which may still write a frame.
            self.client.clock.callLater(0, self._close_if_drained)

    def _close_if_drained(self) -> None:
        if not self.streams and self.transport is not None and not self._closing:
            # No GOAWAY: the session goes on elsewhere; the gateway records a detach.
            self.close_transport()

    def terminate(self, reason: Reason, message: str = "") -> None:
        self.open = False
        super().terminate(reason, message)

    def tick(self, now: float) -> None:
        if now - self.last_heard > KEEPALIVE_DEAD_AFTER:
            if self.transport is not None:
                self.transport.abortConnection()  # type: ignore[attr-defined]
        elif self.open and now - self.last_ping > KEEPALIVE_INTERVAL:
            self.last_ping = now
            self.machine.ping(b"ssgate!!")
            self.flush()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.open = False
        super().connectionLost(reason)
        self.client.tunnel_lost(self)


class ConnectClient:
    """Dial, log in, listen locally, resume after drops; ``done`` fires with the exit status."""

    log = Logger()

    def __init__(
        self,
        *,
        reactor: Any,
        profile: Profile,
        identity: ClientIdentity,
        password: str,
        otp: str,
        listen: tuple[str, int],
        out: TextIO,
        endpoint_for: Callable[[], Any] | None = None,
        ask_again: Callable[[], Deferred[tuple[str, str]]] | None = None,
    ) -> None:
        """*ask_again*, when given (an interactive terminal), asks for a new password and
        code after a refused attempt, so the login may use all its attempts; it fires
        with ``(password, otp)`` or fails to give up."""
        self.reactor = reactor
        self._ask_again = ask_again
        self.clock = reactor
        self.profile = profile
        self.password = password
        self.otp = otp
        self.listen = listen
        self.out = out
        self.done: Deferred[int] = Deferred()
        self.tunnel: ClientTunnel | None = None
        self.session_id: str | None = None
        self.resume_token: bytes | None = None
        self.port: IListeningPort | None = None
        self.ending: Reason | None = None
        self.lost_at: float | None = None
        self._retry_delay = 1.0
        tls = client_tls_options(
            hostname=profile.gateway_host,
            ca=identity.ca,
            client_key=identity.key,
            client_certificate=identity.certificate,
        )
        self._endpoint_for = endpoint_for or (
            lambda: wrapClientTLS(
                tls,
                HostnameEndpoint(reactor, profile.gateway_host, profile.gateway_port, timeout=10),
            )
        )
        self._keepalive: Any = None
        self._retry: Any = None  # the pending redial
        self._told: Reason | None = None  # already printed
        # The protocol versions offered in HELLO (tests pose as an older client).
        self.protocol_versions = (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION)
        self._parked: list[LocalConnection] = []  # waiting for the moved session
        self._moving = False  # MOVE received; the session is not back yet
        self._moved_from: ClientTunnel | None = None  # the connection MOVE came on
        self.ending_note = ""  # the officer's note of a kill
        # Local connections waiting for a free stream (see the module docstring).
        self.stream_queue = StreamQueue(reactor, say=self.say)
        self._admitting: Any = None  # the pending admission of waiting connections

    @property
    def waiting_streams(self) -> int:
        """How many local connections wait for a free stream now (the queue length)."""
        return len(self.stream_queue)

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    # -- connecting --------------------------------------------------------------------------

    def start(self) -> Deferred[int]:
        # Listen first: a busy port fails at once, before any login is made, so no
        # one-time code is spent and no session is left behind on the gateway.
        if self._listen():
            self._dial()
        return self.done

    def _listen(self) -> bool:
        host, port = self.listen
        try:
            self.port = self.reactor.listenTCP(
                port, Factory.forProtocol(self._local_connection), interface=host
            )
        except Exception as e:  # CannotListenError and friends
            self.say(
                f"无法在 {host}:{port} 监听（端口可能已被占用，请换用 --listen），尚未登录，"
                f"动态口令未被使用。 Cannot listen on {host}:{port} (is the port in use? try "
                f"another --listen); no login was made and the code was not used: {e}"
            )
            self._finish(EXIT_SETUP)
            return False
        return True

    def _dial(self) -> None:
        self._retry = None
        if self.done.called:
            return
        token = self.resume_token
        d = self._endpoint_for().connect(
            quiet(Factory.forProtocol(lambda: ClientTunnel(self, resume_token=token)))
        )
        d.addCallbacks(self._dialled, self._dial_failed)

    def _dialled(self, tunnel: Protocol) -> None:
        assert isinstance(tunnel, ClientTunnel)
        if self.done.called:  # the user quit while we were dialling
            tunnel.terminate(Reason.CLIENT_QUIT)
            return
        self.tunnel = tunnel

    def _dial_failed(self, failure: Failure) -> None:
        if self.done.called:
            return
        if self.lost_at is not None:
            self._retry_later()
            return
        self.say(
            f"无法连接安全专网网关 {self.profile.gateway_host}:{self.profile.gateway_port}。"
            f" Cannot reach the gateway: {failure.getErrorMessage()}"
        )
        self._finish(EXIT_UNREACHABLE)

    def _retry_later(self) -> None:
        assert self.lost_at is not None
        if self.clock.seconds() - self.lost_at > RESUME_WINDOW:
            self.say(f"{Reason.NETWORK_LOST.bilingual}")
            self._finish(Reason.NETWORK_LOST.exit_code)
            return
        delay, self._retry_delay = self._retry_delay, min(self._retry_delay * 2, 8.0)
        self._retry = self.clock.callLater(delay, self._dial)

    # -- what the tunnel reports -------------------------------------------------------------

    def connected(self, tunnel: ClientTunnel, event: AuthAccepted) -> None:
        self.resume_token = event.resume_token
        self._retry_delay = 1.0
        if self.lost_at is not None:
            self.lost_at = None
            self._moving = False
            self._moved_from = None
            self.say(f"已重新连接，会话不变 / reconnected, same session {event.session_id}")
            parked, self._parked = self._parked, []
            for connection in parked:
                connection.attach(tunnel)
            self.stream_freed(tunnel)  # those that waited for a stream meanwhile
            return
        self.session_id = event.session_id
        self.password = self.otp = ""  # not needed again: resumes use the token
        host, port = self.listen
        bound = getattr(self.port.getHost(), "port", port) if self.port is not None else port
        self.say(
            f"已连接安全专网，请在浏览器中打开 http://{host}:{bound}/ 。"
            f" connected as {event.account} (unit {event.unit_code}, session {event.session_id}); "
            f"open http://{host}:{bound}/"
        )
        from twisted.internet.task import LoopingCall

        self._keepalive = LoopingCall(self._tick)
        self._keepalive.clock = self.clock
        self._keepalive.start(1.0, now=False)

    def _local_connection(self) -> Protocol:
        tunnel = self.tunnel
        if tunnel is not None and tunnel.open:
            return LocalConnection(tunnel, queue=self.stream_queue)
        if self._moving and self._moved_from is not None and len(self._parked) < MAX_PARKED:
            return LocalConnection(
                self._moved_from, park=self._parked.append, queue=self.stream_queue
            )
        return _Refuse()

    def stream_freed(self, tunnel: ClientTunnel) -> None:
        """A stream of *tunnel* ended (or was refused): admit waiting connections.

        Not at once: this is called while the tunnel unwinds that stream's end."""
        if tunnel is self.tunnel and len(self.stream_queue) and self._admitting is None:
            self._admitting = self.clock.callLater(0, self._admit_waiting)

    def _admit_waiting(self) -> None:
        self._admitting = None
        tunnel = self.tunnel
        if tunnel is None or not tunnel.open:
            return  # they wait for the session to come back (or for their timeout)
        while (connection := self.stream_queue.first()) is not None:
            if not connection.admit(tunnel):
                break  # every stream is in use again
            self.stream_queue.remove(connection)

    def moving(self, tunnel: ClientTunnel, event: MoveRequested) -> None:
        """The gateway node drains (MOVE): resume the session on a new connection now,
        through the same address (the balancer picks another node), with the token
        MOVE carried; the old connection finishes its streams, then closes."""
        if tunnel is not self.tunnel or self.done.called:
            return
        self.resume_token = event.resume_token
        self.tunnel = None
        self._moving = True
        self._moved_from = tunnel
        self.say(
            "网关节点正在停机维护，正在将会话转移到其他节点，无需重新登录…"
            " The gateway node is going down for maintenance; moving the session to "
            "another node, no new login needed…"
        )
        tunnel.close_when_drained()
        if self.lost_at is None:  # the resume window counts from here
            self.lost_at = self.clock.seconds()
        self._retry_delay = 1.0
        self._dial()

    def _tick(self) -> None:
        if self.tunnel is not None:
            self.tunnel.tick(self.clock.seconds())

    def rejected(self, event: AuthRejected) -> None:
        self._told = event.reason
        self.say(refusal_text(event.reason, event.retry_after))
        self.ending = event.reason
        tunnel = self.tunnel
        if event.attempts_left <= 0 or tunnel is None:
            return
        if self._ask_again is None or not event.reason.retry_auth:
            # No new factors to offer non-interactively: leave rather than wait.
            tunnel.terminate(Reason.CLIENT_QUIT)
            return
        self.say(f"还可尝试 {event.attempts_left} 次 / {event.attempts_left} attempt(s) left")
        asked = self._ask_again()
        asked.addCallbacks(
            lambda factors: self._retry_login(tunnel, *factors),
            lambda _: tunnel.terminate(Reason.CLIENT_QUIT),
        )

    def _retry_login(self, tunnel: ClientTunnel, password: str, otp: str) -> None:
        if tunnel is not self.tunnel or tunnel.transport is None or self.done.called:
            return  # the gateway gave up meanwhile (login deadline); already told
        self.ending = None
        self._told = None
        tunnel.machine.authenticate(self.profile.account, password, otp)
        tunnel.flush()

    def ended(self, reason: Reason, message: str = "") -> None:
        self.ending = reason
        self.ending_note = message if reason is Reason.OFFICER_KILL else ""

    def tunnel_lost(self, tunnel: ClientTunnel) -> None:
        if tunnel is not self.tunnel or self.done.called:
            return
        self.tunnel = None
        if self.ending is not None:
            if self.ending is Reason.OFFICER_KILL:
                self.say(officer_kill_text(self.ending_note))
            elif self.ending not in (Reason.CLIENT_QUIT, self._told):
                self.say(self.ending.bilingual)
            self._finish(self.ending.exit_code)
            return
        if self.resume_token is None:
            self.say("连接在登录完成前中断 / the connection closed before the login completed")
            self._finish(EXIT_UNREACHABLE)
            return
        if self.lost_at is None:  # not when a reconnection attempt fails: keep the window
            self.lost_at = self.clock.seconds()
            self.say("网络中断，正在重新连接… / network lost, reconnecting…")
        self._retry_later()

    def quit(self) -> None:
        """Ctrl-C: end the session cleanly with GOAWAY(client-quit)."""
        self.ending = Reason.CLIENT_QUIT
        if self.tunnel is not None and self.tunnel.transport is not None:
            self.tunnel.terminate(Reason.CLIENT_QUIT)
            self.say(Reason.CLIENT_QUIT.bilingual)
        else:
            self._finish(0)

    def _finish(self, status: int) -> None:
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self.port is not None:
            self.port.stopListening()
            self.port = None
        parked, self._parked = self._parked, []
        for connection in parked:
            connection.close_local()
        if self._admitting is not None and self._admitting.active():
            self._admitting.cancel()
        self._admitting = None
        self.stream_queue.clear(self.ending or Reason.NETWORK_LOST)
        if not self.done.called:
            self.done.callback(status)


class _Refuse(Protocol):
    """A local connection while the tunnel is down, or past :data:`MAX_PARKED` while
    the session moves: answer 503 (the network to the gateway is lost; the client is
    reconnecting) and close at once, keeping nothing."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(unavailable_answer(Reason.NETWORK_LOST))
        self.transport.loseConnection()


def listen_endpoint(reactor: Any, host: str, port: int) -> TCP4ServerEndpoint:
    return TCP4ServerEndpoint(reactor, port, interface=host)
