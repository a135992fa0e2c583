"""The tunnel session state machine, sans-IO, for both ends (``docs/protocol.md`` §7).

Everything that decides what may happen on a tunnel lives here: which frame is legal
in which state, the login attempt cap, the stream table with its id rules and its
limit, per-stream credit (:mod:`gateway._flow`), keepalive answers and the ends of a
session.  There is no socket, no clock and no Twisted: an adapter feeds bytes in,
acts on the events that come out, calls methods for what its side wants to do, and
writes what :meth:`data_to_send` returns.

Using a machine (both sides)::

    events = machine.receive(data)        # bytes from the TLS transport
    for event in events: ...              # act on each, in order
    transport.writeSequence(machine.data_to_send())

- ``receive(data) -> list[Event]`` never raises for anything the peer sends.  A
  protocol violation queues GOAWAY(reason) and ends the list with
  ``SessionClosed(by_peer=False)``; a GOAWAY from the peer ends it with
  ``SessionClosed(by_peer=True)``.  Either way the adapter writes out
  :meth:`data_to_send` and closes the transport.  (Frames in the same chunk *before*
  a malformed frame are dropped with it: the session is over anyway.)
- Methods queue frames; ``data_to_send() -> list[bytes]`` hands them over.  DATA is
  queued as ``[header, payload]`` pairs so the payload is not copied.
- ``send_data(stream_id, payload) -> int`` queues as much as the stream's credit
  allows and returns that count; the adapter keeps the rest, pauses its producer and
  resumes on ``StreamCredit``.  ``consume(stream_id, n)`` says the application took
  *n* received bytes, which returns credit to the peer (batched at half a window).
- ``close(reason, message="")`` sends GOAWAY; the adapter then closes the transport.
  ``connection_lost() -> Reason`` records that the transport went away.
- After the session has ended (states ``closing``/``closed``) every method is a
  quiet no-op, and calls naming a stream that was open but has since ended (reset
  by the peer, say) are ignored: the adapter may still be unwinding.  Calls that
  could never be right (a stream never opened, DATA after our own FIN, accepting a
  login nobody asked for) raise :class:`MachineUsageError`.

Timers are the adapter's: the login deadline (``close(Reason.AUTH_TIMEOUT)``), idle
time (reset it on ``StreamData`` and on ``send_data``; PING/PONG are not activity),
the maximum lifetime, and keepalive (``ping(opaque)`` every so often, expect a
``PongReceived`` with the same bytes).  The machine answers the peer's PINGs itself.

Gateway side, :class:`GatewayMachine`: ``HandshakeCompleted`` → ``AuthRequested`` /
``ResumeRequested``, answered with ``accept_auth(...)`` or ``reject_auth(reason) ->
attempts_left`` (0 means the machine has also sent GOAWAY) → ``StreamOpenRequested``,
answered with ``accept_open(id)`` or ``reject_open(id, reason)``.

Client side, :class:`ClientMachine`: HELLO is queued at construction;
``authenticate(...)`` or ``resume(token)`` (allowed right away, before HELLO_OK) →
``AuthAccepted`` or ``AuthRejected`` → ``open_stream(service) -> stream_id`` (data may
follow at once) → ``StreamOpened`` or ``StreamRefused``.

Draining (version 3): the gateway calls ``move(resume_token, drain_seconds)``, which
sends MOVE when the client speaks version 3 and says whether it did (if not, the
adapter ends the session with GOAWAY(``gateway-shutdown``) as before).  The client
gets ``MoveRequested``; its streams here go on, it may open no new one here
(``open_stream`` raises) and resumes the session on a new connection.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from ._flow import ReceiveWindow, SendWindow
from ._frames import (
    DEFAULT_INITIAL_WINDOW,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_MAX_STREAMS,
    MAX_GOAWAY_MESSAGE_BYTES,
    MAX_NOTE_CHARS,
    MAX_STREAM_ID,
    MIN_PROTOCOL_VERSION,
    MOVE_VERSION,
    PROTOCOL_VERSION,
    RETRY_AFTER_UNKNOWN,
    Auth,
    AuthFail,
    AuthOk,
    Data,
    Fin,
    Frame,
    FrameParser,
    GoAway,
    Hello,
    HelloOk,
    Move,
    Open,
    OpenFail,
    OpenOk,
    Ping,
    Pong,
    Reset,
    Resume,
    WindowUpdate,
    encode,
    encode_data_header,
    terminal_text,
)
from ._reasons import ProtocolError, Reason

__all__ = [
    "MAX_AUTH_ATTEMPTS",
    "AuthAccepted",
    "AuthRejected",
    "AuthRequested",
    "ClientMachine",
    "Event",
    "GatewayMachine",
    "HandshakeCompleted",
    "MachineUsageError",
    "MoveRequested",
    "PongReceived",
    "ResumeRequested",
    "SessionClosed",
    "State",
    "StreamCredit",
    "StreamData",
    "StreamFin",
    "StreamLimitError",
    "StreamOpenRequested",
    "StreamOpened",
    "StreamRefused",
    "StreamReset",
]

MAX_AUTH_ATTEMPTS = 3


class State(enum.Enum):
    AWAITING_HELLO = "awaiting-hello"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSING = "closing"  # we sent GOAWAY; what arrives now is ignored
    CLOSED = "closed"  # the peer sent GOAWAY, or the transport is gone


_ENDED = (State.CLOSING, State.CLOSED)


class MachineUsageError(RuntimeError):
    """The adapter asked for something this side may never do now (a bug there)."""


class StreamLimitError(MachineUsageError):
    """No stream can be opened now: the session's limit is reached (or ids ran out)."""


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """HELLO / HELLO_OK done: the protocol *version* and the peer's name."""

    version: int
    peer_name: str


@dataclass(frozen=True, slots=True)
class AuthRequested:
    """Gateway: check this login, then call ``accept_auth`` or ``reject_auth``."""

    account: str
    password: str = field(repr=False)
    otp: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ResumeRequested:
    """Gateway: check this resume token, then call ``accept_auth`` or ``reject_auth``."""

    token: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthAccepted:
    """Client: the session is open."""

    session_id: str
    account: str
    unit_code: str
    resume_token: bytes = field(repr=False)
    idle_timeout: int
    max_lifetime: int


@dataclass(frozen=True, slots=True)
class AuthRejected:
    """Client: the login was refused; with ``attempts_left == 0`` GOAWAY follows.

    *retry_after* is AUTH_FAIL's (version 2; ``None`` from a version 1 gateway)."""

    reason: Reason
    attempts_left: int
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class StreamOpenRequested:
    """Gateway: call ``accept_open`` or ``reject_open`` (the policy decides)."""

    stream_id: int
    service: str


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """Client: the gateway accepted the stream."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamRefused:
    """Client: the gateway refused the stream; it is gone."""

    stream_id: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class StreamData:
    """Bytes for the stream's application; call ``consume`` once it has taken them."""

    stream_id: int
    payload: bytes

    def __repr__(self) -> str:
        return f"StreamData(stream_id={self.stream_id}, {len(self.payload)} bytes)"


@dataclass(frozen=True, slots=True)
class StreamCredit:
    """The peer granted credit: *available* bytes may be sent on the stream now."""

    stream_id: int
    available: int


@dataclass(frozen=True, slots=True)
class StreamFin:
    """The peer will send no more on this stream (half-close)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer abandoned the stream; it is gone."""

    stream_id: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class MoveRequested:
    """Client (version 3): the gateway node is draining.  Resume the session with
    *resume_token* on a new connection; the streams open here may finish within
    *drain_seconds*, after which the gateway closes this connection."""

    resume_token: bytes = field(repr=False)
    drain_seconds: int


@dataclass(frozen=True, slots=True)
class PongReceived:
    opaque: bytes


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session ended because of what was received; flush and close the transport.

    A peer's *message* arrives made printable (:func:`~gateway._frames.terminal_text`):
    for ``officer-kill`` it is the officer's note to the employer, at most
    :data:`~gateway._frames.MAX_NOTE_CHARS` characters."""

    reason: Reason
    message: str
    by_peer: bool


Event: TypeAlias = (
    HandshakeCompleted
    | AuthRequested
    | ResumeRequested
    | AuthAccepted
    | AuthRejected
    | StreamOpenRequested
    | StreamOpened
    | StreamRefused
    | StreamData
    | StreamCredit
    | StreamFin
    | StreamReset
    | PongReceived
    | MoveRequested
    | SessionClosed
)


# -- the shared part -------------------------------------------------------------------


class _Stream:
    __slots__ = ("accepted", "id", "local_fin", "recv", "remote_fin", "send", "service")

    def __init__(self, stream_id: int, service: str, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.service = service
        self.accepted = False  # OPEN_OK sent (gateway) or received (client)
        self.local_fin = False
        self.remote_fin = False
        self.send = SendWindow(send_window)
        self.recv = ReceiveWindow(recv_window)


def _clip(message: str) -> str:
    raw = message.encode("utf-8")[:MAX_GOAWAY_MESSAGE_BYTES]
    return raw.decode("utf-8", errors="ignore")


def _message_limit(reason: Reason) -> int:
    """How many characters of a GOAWAY message are kept: an officer's note is one line."""
    return MAX_NOTE_CHARS if reason is Reason.OFFICER_KILL else MAX_GOAWAY_MESSAGE_BYTES


def _illegal(frame: Frame, state: State) -> ProtocolError:
    return ProtocolError(
        Reason.PROTOCOL_ERROR, f"{frame.TYPE.name} is not allowed in state {state.value}"
    )


class _TunnelMachine:
    # Which frames each state accepts from the peer (``docs/protocol.md`` §7.1).
    LEGAL: ClassVar[Mapping[State, frozenset[type]]]

    def __init__(self, *, max_payload: int, initial_window: int) -> None:
        self._parser = FrameParser(max_payload)
        self._max_payload = max_payload
        self._initial_window = initial_window
        # What the peer announced; until it has, the protocol's defaults.
        self._peer_window = DEFAULT_INITIAL_WINDOW
        self._frame_limit = min(max_payload, DEFAULT_MAX_PAYLOAD)
        self._max_streams = DEFAULT_MAX_STREAMS
        self._state = State.AWAITING_HELLO
        self._out: list[bytes] = []
        self._streams: dict[int, _Stream] = {}
        self._last_stream_id = 0  # highest (odd) id the client has opened
        self._close_reason: Reason | None = None
        self.bytes_sent = 0  # DATA payload bytes, for the session log
        self.bytes_received = 0
        self.streams_opened = 0

    # -- what the adapter reads ---------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def close_reason(self) -> Reason | None:
        """Why the session ended (ours, the peer's, or ``network-lost``), once it has."""
        return self._close_reason

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def max_streams(self) -> int:
        return self._max_streams

    def credit(self, stream_id: int) -> int:
        """Bytes ``send_data`` would take on this stream now (0 for an ended stream)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_fin or self._state in _ENDED:
            return 0
        return stream.send.available

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    # -- input --------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self._state in _ENDED:
            return events
        try:
            for frame in self._parser.feed(data):
                if type(frame) not in self.LEGAL[self._state]:
                    raise _illegal(frame, self._state)
                self._handle(frame, events)
                if self._state in _ENDED:
                    break
        except ProtocolError as e:
            self._end(e.reason, e.message)
            events.append(SessionClosed(e.reason, e.message, by_peer=False))
        return events

    def connection_lost(self) -> Reason:
        """The transport is gone; returns the reason the session ended with."""
        if self._close_reason is None:
            self._close_reason = Reason.NETWORK_LOST
        self._state = State.CLOSED
        self._streams.clear()
        self._out.clear()
        return self._close_reason

    def _handle(self, frame: Frame, events: list[Event]) -> None:  # noqa: PLR0911
        if isinstance(frame, Data):
            return self._on_data(frame, events)
        if isinstance(frame, WindowUpdate):
            return self._on_window_update(frame, events)
        if isinstance(frame, Fin):
            return self._on_fin(frame, events)
        if isinstance(frame, Reset):
            if self._peer_stream(frame) is not None:
                del self._streams[frame.stream_id]
                events.append(StreamReset(frame.stream_id, frame.reason))
            return None
        if isinstance(frame, Ping):
            self._send(Pong(frame.opaque))
            return None
        if isinstance(frame, Pong):
            events.append(PongReceived(frame.opaque))
            return None
        if isinstance(frame, GoAway):
            self._state = State.CLOSED
            self._close_reason = frame.reason
            self._streams.clear()
            message = terminal_text(frame.message, _message_limit(frame.reason))
            events.append(SessionClosed(frame.reason, message, by_peer=True))
            return None
        return self._handle_side(frame, events)

    def _handle_side(self, frame: Frame, events: list[Event]) -> None:
        raise NotImplementedError

    def _peer_stream(
        self, frame: Data | WindowUpdate | Fin | Reset | OpenOk | OpenFail
    ) -> _Stream | None:
        """The stream a peer frame names; None if it has ended (frames still in flight)."""
        stream = self._streams.get(frame.stream_id)
        if stream is not None:
            return stream
        if frame.stream_id % 2 == 1 and frame.stream_id <= self._last_stream_id:
            return None
        raise ProtocolError(
            Reason.PROTOCOL_ERROR,
            f"{frame.TYPE.name} for stream {frame.stream_id}, which was never opened",
        )

    def _check_peer_may_send(self, stream: _Stream, what: str) -> None:
        """Hook: the client refuses stream frames from the gateway before OPEN_OK."""

    def _on_data(self, frame: Data, events: list[Event]) -> None:
        stream = self._peer_stream(frame)
        if stream is None:
            return
        self._check_peer_may_send(stream, "DATA")
        if stream.remote_fin:
            raise ProtocolError(Reason.PROTOCOL_ERROR, f"DATA on stream {stream.id} after its FIN")
        size = len(frame.payload)
        stream.recv.on_data(size)
        if size:
            self.bytes_received += size
            events.append(StreamData(stream.id, frame.payload))

    def _on_window_update(self, frame: WindowUpdate, events: list[Event]) -> None:
        stream = self._peer_stream(frame)
        if stream is None or stream.local_fin:
            return  # ended, or this side sends no more: in-flight credit is moot
        stream.send.grant(frame.increment)
        events.append(StreamCredit(stream.id, stream.send.available))

    def _on_fin(self, frame: Fin, events: list[Event]) -> None:
        stream = self._peer_stream(frame)
        if stream is None:
            return
        self._check_peer_may_send(stream, "FIN")
        if stream.remote_fin:
            raise ProtocolError(Reason.PROTOCOL_ERROR, f"second FIN on stream {stream.id}")
        stream.remote_fin = True
        events.append(StreamFin(stream.id))
        if stream.local_fin:
            del self._streams[stream.id]

    # -- output -------------------------------------------------------------------------

    def _send(self, frame: Frame) -> None:
        self._out.append(encode(frame))

    def _end(self, reason: Reason, message: str) -> None:
        self._send(GoAway(reason, _clip(message)))
        self._state = State.CLOSING
        self._close_reason = reason
        self._streams.clear()

    def close(self, reason: Reason, message: str = "") -> None:
        """End the session with GOAWAY(*reason*); then close the transport.

        With ``officer-kill``, *message* is the officer's note, which the client
        prints: it is sent as :func:`~gateway._frames.terminal_text` makes it (one
        line, no control characters, at most ``MAX_NOTE_CHARS`` characters)."""
        if self._state not in _ENDED:
            if reason is Reason.OFFICER_KILL:
                message = terminal_text(message, MAX_NOTE_CHARS)
            self._end(reason, message)

    def ping(self, opaque: bytes) -> None:
        """Send PING with 8 opaque bytes; the peer answers PONG with the same bytes."""
        if self._state in _ENDED:
            return
        if self._state is State.AWAITING_HELLO:
            raise MachineUsageError("no PING before the HELLO exchange")
        self._send(Ping(opaque))

    def _local_stream(self, stream_id: int, what: str) -> _Stream | None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream
        if stream_id % 2 == 1 and 0 < stream_id <= self._last_stream_id:
            return None  # ended meanwhile: the adapter may still be unwinding
        raise MachineUsageError(f"{what}: stream {stream_id} was never opened")

    def _check_may_send(self, stream: _Stream, what: str) -> None:
        """Hook: the gateway may not send on a stream before it accepted it."""

    def send_data(self, stream_id: int, payload: bytes) -> int:
        """Queue DATA within the stream's credit; returns how many bytes were taken."""
        if self._state in _ENDED:
            return 0
        stream = self._local_stream(stream_id, "send_data")
        if stream is None:
            return 0
        self._check_may_send(stream, "send_data")
        if stream.local_fin:
            raise MachineUsageError(f"send_data: stream {stream_id} already sent FIN")
        size = min(len(payload), stream.send.available)
        if size == 0:
            return 0
        stream.send.consume(size)
        self.bytes_sent += size
        limit = self._frame_limit
        out = self._out
        if size == len(payload) and size <= limit:
            out.append(encode_data_header(stream_id, size))
            out.append(payload)
            return size
        view = memoryview(payload)
        for start in range(0, size, limit):
            piece = bytes(view[start : min(start + limit, size)])
            out.append(encode_data_header(stream_id, len(piece)))
            out.append(piece)
        return size

    def send_fin(self, stream_id: int) -> None:
        """Half-close: this side sends no more on the stream."""
        if self._state in _ENDED:
            return
        stream = self._local_stream(stream_id, "send_fin")
        if stream is None:
            return
        self._check_may_send(stream, "send_fin")
        if stream.local_fin:
            raise MachineUsageError(f"send_fin: stream {stream_id} already sent FIN")
        stream.local_fin = True
        self._send(Fin(stream_id))
        if stream.remote_fin:
            del self._streams[stream_id]

    def reset_stream(self, stream_id: int, reason: Reason) -> None:
        """Abandon the stream in both directions, telling the peer why."""
        if self._state in _ENDED:
            return
        if self._local_stream(stream_id, "reset_stream") is None:
            return
        del self._streams[stream_id]
        self._send(Reset(stream_id, reason))

    def consume(self, stream_id: int, n: int) -> None:
        """The application took *n* received bytes of the stream: return the credit."""
        if self._state in _ENDED:
            return
        stream = self._local_stream(stream_id, "consume")
        if stream is None:
            return
        increment = stream.recv.consumed(n)
        if increment and not stream.remote_fin:  # after FIN no more DATA needs credit
            self._send(WindowUpdate(stream_id, increment))

    def _new_stream(self, stream_id: int, service: str) -> _Stream:
        stream = _Stream(stream_id, service, self._peer_window, self._initial_window)
        self._streams[stream_id] = stream
        self._last_stream_id = stream_id
        self.streams_opened += 1
        return stream

    def _announced(self, max_payload: int, initial_window: int) -> None:
        self._frame_limit = min(self._max_payload, max_payload)
        self._peer_window = initial_window


# -- the gateway ----------------------------------------------------------------------


class GatewayMachine(_TunnelMachine):
    """The gateway's end of one tunnel connection."""

    LEGAL: ClassVar[Mapping[State, frozenset[type]]] = {
        State.AWAITING_HELLO: frozenset({Hello}),
        State.AUTHENTICATING: frozenset({Auth, Resume, Ping, Pong, GoAway}),
        State.OPEN: frozenset({Open, Data, WindowUpdate, Fin, Reset, Ping, Pong, GoAway}),
    }

    def __init__(
        self,
        *,
        server_name: str = "ssgate",
        versions: tuple[int, int] = (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION),
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        initial_window: int = DEFAULT_INITIAL_WINDOW,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_auth_attempts: int = MAX_AUTH_ATTEMPTS,
    ) -> None:
        # Check the announcement now: a bad configuration fails here, not at a HELLO.
        HelloOk(versions[1], server_name, max_payload, initial_window, max_streams)
        if not 1 <= versions[0] <= versions[1]:
            raise ValueError(f"versions must be (low, high) with 1 <= low <= high: {versions}")
        if not 1 <= max_auth_attempts <= 255:
            raise ValueError(f"max_auth_attempts must be 1-255, got {max_auth_attempts}")
        super().__init__(max_payload=max_payload, initial_window=initial_window)
        self._server_name = server_name
        self._versions = versions
        self._max_streams = max_streams
        self._max_auth_attempts = max_auth_attempts
        self._auth_attempts = 0
        self._auth_pending = False
        self._moved = False
        self.version: int | None = None

    @property
    def auth_attempts(self) -> int:
        return self._auth_attempts

    def _handle_side(self, frame: Frame, events: list[Event]) -> None:
        if isinstance(frame, Hello):
            self._on_hello(frame, events)
        elif isinstance(frame, Auth | Resume):
            if self._auth_pending:
                raise ProtocolError(
                    Reason.PROTOCOL_ERROR, f"{frame.TYPE.name} before the last one was answered"
                )
            self._auth_pending = True
            if isinstance(frame, Auth):
                events.append(AuthRequested(frame.account, frame.password, frame.otp))
            else:
                events.append(ResumeRequested(frame.token))
        else:
            assert isinstance(frame, Open)
            self._on_open(frame, events)

    def _on_hello(self, frame: Hello, events: list[Event]) -> None:
        low, high = self._versions
        version = min(high, frame.max_version)
        if version < max(low, frame.min_version):
            raise ProtocolError(
                Reason.VERSION_UNSUPPORTED,
                f"this gateway speaks protocol versions {low}-{high}",
            )
        self.version = version
        self._announced(frame.max_payload, frame.initial_window)
        self._send(
            HelloOk(
                version,
                self._server_name,
                self._max_payload,
                self._initial_window,
                self._max_streams,
            )
        )
        self._state = State.AUTHENTICATING
        events.append(HandshakeCompleted(version, frame.client_name))

    def _on_open(self, frame: Open, events: list[Event]) -> None:
        sid = frame.stream_id
        if sid % 2 == 0 or sid <= self._last_stream_id:
            raise ProtocolError(
                Reason.PROTOCOL_ERROR,
                f"OPEN of stream {sid}: ids must be odd and increase "
                f"(last was {self._last_stream_id})",
            )
        if len(self._streams) >= self._max_streams:
            self._last_stream_id = sid  # the id is spent all the same
            self._send(OpenFail(sid, Reason.TOO_MANY_STREAMS))
            return
        self._new_stream(sid, frame.service)
        events.append(StreamOpenRequested(sid, frame.service))

    def _check_may_send(self, stream: _Stream, what: str) -> None:
        if not stream.accepted:
            raise MachineUsageError(f"{what}: stream {stream.id} is not accepted yet")

    def _login_answer(self, what: str) -> bool:
        if self._state in _ENDED:
            return False  # e.g. the login deadline closed the session meanwhile
        if self._state is not State.AUTHENTICATING or not self._auth_pending:
            raise MachineUsageError(f"{what}: no login is waiting for an answer")
        self._auth_pending = False
        return True

    def accept_auth(
        self,
        *,
        session_id: str,
        account: str,
        unit_code: str,
        resume_token: bytes,
        idle_timeout: int = 0,
        max_lifetime: int = 0,
    ) -> None:
        """Open the session (answers AUTH or RESUME with AUTH_OK)."""
        frame = AuthOk(session_id, account, unit_code, resume_token, idle_timeout, max_lifetime)
        if not self._login_answer("accept_auth"):
            return
        self._send(frame)
        self._state = State.OPEN

    def reject_auth(self, reason: Reason, *, retry_after: int = RETRY_AFTER_UNKNOWN) -> int:
        """Refuse the login; returns the attempts left (0: GOAWAY was sent too).

        Only ``auth-failed`` and ``resume-invalid`` leave the door open; every other
        reason (locked, throttled, suspended, …) ends the session at once with it.
        After the last attempt the session ends with ``too-many-attempts``.
        *retry_after* (seconds, or ``RETRY_AFTER_CALL_CARRIER``) reaches clients that
        speak version 2; a version 1 client gets AUTH_FAIL without it.
        """
        frame = AuthFail(reason, 0, retry_after)  # checks retry_after's range first
        if not self._login_answer("reject_auth"):
            return 0
        self._auth_attempts += 1
        left = self._max_auth_attempts - self._auth_attempts if reason.retry_auth else 0
        version = self.version or MIN_PROTOCOL_VERSION
        self._send(AuthFail(reason, left, frame.retry_after if version >= 2 else None))
        if left == 0:
            self._end(reason if not reason.retry_auth else Reason.TOO_MANY_ATTEMPTS, "")
        return left

    def _accepting(self, stream_id: int, what: str) -> _Stream | None:
        if self._state in _ENDED:
            return None
        stream = self._local_stream(stream_id, what)
        if stream is not None and stream.accepted:
            raise MachineUsageError(f"{what}: stream {stream_id} was already accepted")
        return stream

    def accept_open(self, stream_id: int) -> None:
        """The service is connected: OPEN_OK; data may flow both ways."""
        stream = self._accepting(stream_id, "accept_open")
        if stream is not None:
            stream.accepted = True
            self._send(OpenOk(stream_id))

    def reject_open(self, stream_id: int, reason: Reason) -> None:
        """Refuse the stream (policy, or the service is down): OPEN_FAIL."""
        if self._accepting(stream_id, "reject_open") is not None:
            del self._streams[stream_id]
            self._send(OpenFail(stream_id, reason))

    @property
    def moved(self) -> bool:
        """MOVE was sent: the session is to resume elsewhere; this connection drains."""
        return self._moved

    def move(self, resume_token: bytes, drain_seconds: int) -> bool:
        """Ask the client to resume the session elsewhere (this node is draining).

        Sends MOVE and returns True when the session is open and the client speaks
        version 3 (once per connection: a second call returns True and sends nothing).
        Otherwise returns False and sends nothing: the adapter then ends the session
        with GOAWAY(``gateway-shutdown``), which every version understands."""
        frame = Move(resume_token, drain_seconds)  # checks the fields first
        if self._moved:
            return True
        if self._state is not State.OPEN or (self.version or 0) < MOVE_VERSION:
            return False
        self._moved = True
        self._send(frame)
        return True


# -- the client -----------------------------------------------------------------------


class ClientMachine(_TunnelMachine):
    """The employer client's end of the tunnel.  HELLO is queued on construction."""

    LEGAL: ClassVar[Mapping[State, frozenset[type]]] = {
        State.AWAITING_HELLO: frozenset({HelloOk, GoAway}),
        State.AUTHENTICATING: frozenset({AuthOk, AuthFail, Ping, Pong, GoAway}),
        State.OPEN: frozenset(
            {OpenOk, OpenFail, Data, WindowUpdate, Fin, Reset, Ping, Pong, GoAway, Move}
        ),
    }

    def __init__(
        self,
        *,
        client_name: str = "ssgate-connect",
        versions: tuple[int, int] = (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION),
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        initial_window: int = DEFAULT_INITIAL_WINDOW,
    ) -> None:
        hello = Hello(versions[0], versions[1], client_name, max_payload, initial_window)
        super().__init__(max_payload=max_payload, initial_window=initial_window)
        self._versions = versions
        self._auth_outstanding = False
        self._attempts_left: int | None = None  # unknown until the first AUTH_FAIL
        self._moving = False  # MOVE received: no new streams on this connection
        self.version: int | None = None
        self.session_id: str | None = None
        self._send(hello)

    def _login(self, frame: Auth | Resume) -> None:
        if self._state not in (State.AWAITING_HELLO, State.AUTHENTICATING):
            raise MachineUsageError(f"no login in state {self._state.value}")
        if self._auth_outstanding:
            raise MachineUsageError("the last login is not answered yet")
        if self._attempts_left == 0:
            raise MachineUsageError("the gateway allows no more login attempts")
        self._auth_outstanding = True
        self._send(frame)

    def authenticate(self, account: str, password: str, otp: str) -> None:
        self._login(Auth(account, password, otp))

    def resume(self, token: bytes) -> None:
        self._login(Resume(token))

    def open_stream(self, service: str) -> int:
        """Open a stream to *service*; DATA may be sent on it before ``StreamOpened``."""
        if self._state is not State.OPEN:
            raise MachineUsageError(f"no streams in state {self._state.value}")
        if self._moving:
            raise MachineUsageError("the gateway moved this session: no new streams here")
        if len(self._streams) >= self._max_streams:
            raise StreamLimitError(f"{self._max_streams} streams are open already")
        stream_id = self._last_stream_id + 2 if self._last_stream_id else 1
        if stream_id > MAX_STREAM_ID:
            raise StreamLimitError("stream ids are used up; reconnect")
        frame = Open(stream_id, service)
        self._new_stream(stream_id, service)
        self._send(frame)
        return stream_id

    @property
    def moving(self) -> bool:
        """The gateway sent MOVE: this connection only drains its open streams."""
        return self._moving

    def _on_move(self, frame: Move, events: list[Event]) -> None:
        if (self.version or 0) < MOVE_VERSION:
            raise ProtocolError(
                Reason.PROTOCOL_ERROR, f"MOVE is not part of protocol version {self.version}"
            )
        if self._moving:
            raise ProtocolError(Reason.PROTOCOL_ERROR, "a second MOVE")
        self._moving = True
        events.append(MoveRequested(frame.resume_token, frame.drain_seconds))

    def _handle_side(self, frame: Frame, events: list[Event]) -> None:
        if isinstance(frame, Move):
            self._on_move(frame, events)
        elif isinstance(frame, HelloOk):
            low, high = self._versions
            if not low <= frame.version <= high:
                raise ProtocolError(
                    Reason.PROTOCOL_ERROR, f"HELLO_OK chose version {frame.version}, not offered"
                )
            self.version = frame.version
            self._announced(frame.max_payload, frame.initial_window)
            self._max_streams = frame.max_streams
            self._state = State.AUTHENTICATING
            events.append(HandshakeCompleted(frame.version, frame.server_name))
        elif isinstance(frame, AuthOk | AuthFail):
            if not self._auth_outstanding:
                raise ProtocolError(Reason.PROTOCOL_ERROR, f"{frame.TYPE.name} without a login")
            self._auth_outstanding = False
            if isinstance(frame, AuthOk):
                self.session_id = frame.session_id
                self._state = State.OPEN
                events.append(
                    AuthAccepted(
                        frame.session_id,
                        frame.account,
                        frame.unit_code,
                        frame.resume_token,
                        frame.idle_timeout,
                        frame.max_lifetime,
                    )
                )
            else:
                if (frame.retry_after is not None) != (
                    self.version is not None and self.version >= 2
                ):
                    raise ProtocolError(
                        Reason.PROTOCOL_ERROR,
                        f"AUTH_FAIL: not the layout of protocol version {self.version}",
                    )
                self._attempts_left = frame.attempts_left
                events.append(AuthRejected(frame.reason, frame.attempts_left, frame.retry_after))
        else:
            assert isinstance(frame, OpenOk | OpenFail)
            self._on_open_answer(frame, events)

    def _on_open_answer(self, frame: OpenOk | OpenFail, events: list[Event]) -> None:
        stream = self._peer_stream(frame)
        if stream is None:
            return  # we reset it meanwhile
        if stream.accepted:
            raise ProtocolError(
                Reason.PROTOCOL_ERROR, f"{frame.TYPE.name} for open stream {stream.id}"
            )
        if isinstance(frame, OpenOk):
            stream.accepted = True
            events.append(StreamOpened(stream.id))
        else:
            del self._streams[stream.id]
            events.append(StreamRefused(stream.id, frame.reason))

    def _check_peer_may_send(self, stream: _Stream, what: str) -> None:
        if not stream.accepted:
            raise ProtocolError(
                Reason.PROTOCOL_ERROR, f"{what} on stream {stream.id} before OPEN_OK"
            )
