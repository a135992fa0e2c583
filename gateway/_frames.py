"""Tunnel frames: one frozen value per message, their encoding, and the frame parser.

This module is the byte layer of ``docs/protocol.md`` (§3-§5) and nothing else: no
state, no I/O.  Every frame is::

    type u8 | flags u8 | stream id u32 | payload length u32 | payload

big-endian, :data:`HEADER_SIZE` = 10 bytes of header.  Stream 0 carries the control
frames (HELLO … GOAWAY); the stream frames (OPEN … RESET) carry a non-zero stream id.

- :func:`encode` turns a frame value into bytes; :func:`encode_data_header` gives
  just the header of a DATA frame so an adapter can write ``[header, payload]``
  without copying the payload.
- :class:`FrameParser` turns bytes into frame values.  It holds at most one
  incomplete frame (never more than ``HEADER_SIZE + max_payload`` bytes), refuses an
  oversized length as soon as the header is in, and raises :class:`ProtocolError`
  for anything else that is wrong.  Work is linear in the bytes fed: a frame is
  sliced out of the input once, never by re-slicing a growing buffer.

Frame values check their own fields when built (``ValueError`` or ``TypeError``), so
an invalid frame cannot be encoded and a parsed frame is always valid.  Passwords,
one-time codes and resume tokens are left out of every ``repr``.

Version 2 adds one field, ``retry_after`` at the end of AUTH_FAIL.  The parser reads
either layout (the payload's length says which: 3 or 7 bytes), so it needs no
version; the machine, which knows the negotiated version, refuses the wrong one.
Version 3 adds one frame, MOVE (a draining gateway node hands the client a fresh
resume token and asks it to reconnect); the parser reads it in any version and the
client machine refuses it below version 3.
:func:`terminal_text` makes text that came over the wire safe to print.
"""

from __future__ import annotations

import enum
import re
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from ._reasons import ProtocolError, Reason

__all__ = [
    "DEFAULT_INITIAL_WINDOW",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_MAX_STREAMS",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_MAX_PAYLOAD",
    "MAX_NOTE_CHARS",
    "MAX_WINDOW",
    "MIN_INITIAL_WINDOW",
    "MIN_MAX_PAYLOAD",
    "MIN_PROTOCOL_VERSION",
    "MOVE_VERSION",
    "PROTOCOL_VERSION",
    "RETRY_AFTER_CALL_CARRIER",
    "RETRY_AFTER_UNKNOWN",
    "Auth",
    "AuthFail",
    "AuthOk",
    "Data",
    "Fin",
    "Frame",
    "FrameParser",
    "FrameType",
    "GoAway",
    "Hello",
    "HelloOk",
    "Move",
    "Open",
    "OpenFail",
    "OpenOk",
    "Ping",
    "Pong",
    "ProtocolError",
    "Reset",
    "Resume",
    "WindowUpdate",
    "encode",
    "encode_data_header",
    "terminal_text",
]

MAGIC = b"SSGT"
MIN_PROTOCOL_VERSION = 1
PROTOCOL_VERSION = 3  # the highest version this code speaks (docs/protocol.md §11)
MOVE_VERSION = 3  # the first version with MOVE

_HEADER = struct.Struct(">BBII")
HEADER_SIZE = _HEADER.size  # 10

DEFAULT_MAX_PAYLOAD = 64 * 1024
MIN_MAX_PAYLOAD = 16 * 1024  # every control frame fits, whatever a peer announces
MAX_MAX_PAYLOAD = 16 * 1024 * 1024
DEFAULT_INITIAL_WINDOW = 256 * 1024
MIN_INITIAL_WINDOW = 16 * 1024
MAX_WINDOW = 2**31 - 1
DEFAULT_MAX_STREAMS = 100

MAX_STREAM_ID = 2**32 - 1
MAX_NAME_BYTES = 64  # client_name, server_name
MAX_ACCOUNT_BYTES = 128
MAX_PASSWORD_BYTES = 4096
MAX_OTP_BYTES = 16
MAX_SESSION_ID_BYTES = 64
MAX_UNIT_CODE_BYTES = 32
MAX_TOKEN_BYTES = 255
MAX_SERVICE_BYTES = 64
MAX_GOAWAY_MESSAGE_BYTES = 1024
# An officer's note to the employer (GOAWAY(officer-kill)'s message): what a terminal
# line can show.  1024 bytes of UTF-8 always hold 200 characters.
MAX_NOTE_CHARS = 200
PING_SIZE = 8
# AUTH_FAIL.retry_after (version 2): 0 = no known wait; all ones = the lock does not
# lift by itself (the carrier must clear it).
RETRY_AFTER_UNKNOWN = 0
RETRY_AFTER_CALL_CARRIER = 0xFFFFFFFF

_SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)


class FrameType(enum.IntEnum):
    HELLO = 0x01
    HELLO_OK = 0x02
    AUTH = 0x03
    AUTH_OK = 0x04
    AUTH_FAIL = 0x05
    RESUME = 0x06
    OPEN = 0x10
    OPEN_OK = 0x11
    OPEN_FAIL = 0x12
    DATA = 0x13
    WINDOW_UPDATE = 0x14
    FIN = 0x15
    RESET = 0x16
    PING = 0x20
    PONG = 0x21
    GOAWAY = 0x22
    MOVE = 0x23


CONTROL_TYPES = frozenset(
    {
        FrameType.HELLO,
        FrameType.HELLO_OK,
        FrameType.AUTH,
        FrameType.AUTH_OK,
        FrameType.AUTH_FAIL,
        FrameType.RESUME,
        FrameType.PING,
        FrameType.PONG,
        FrameType.GOAWAY,
        FrameType.MOVE,
    }
)
_KNOWN_TYPES = frozenset(int(t) for t in FrameType)


# -- field checks (messages name the field, never its value) ---------------------------


def _utf8(name: str, value: str, low: int, high: int) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not encodable as UTF-8") from None
    if not low <= len(raw) <= high:
        raise ValueError(f"{name} must be {low}-{high} bytes of UTF-8, got {len(raw)}")
    return raw


def _int(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be int")
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}-{high}, got {value}")


def _bytes(name: str, value: bytes, low: int, high: int) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes")
    if not low <= len(value) <= high:
        raise ValueError(f"{name} must be {low}-{high} bytes, got {len(value)}")


def _reason(value: Reason) -> None:
    if not isinstance(value, Reason):
        raise TypeError("reason must be a Reason")


def _stream(stream_id: int) -> None:
    _int("stream_id", stream_id, 1, MAX_STREAM_ID)


# Control characters (C0, DEL, C1), format characters (bidi overrides, zero-width
# joiners: they reorder or hide what a terminal shows), line and paragraph separators,
# and unassigned or private code points.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def terminal_text(text: str, limit: int = MAX_NOTE_CHARS) -> str:
    """*text* made safe for one terminal line, at most *limit* characters.

    Every unprintable character (see ``_UNPRINTABLE_CATEGORIES``: escape sequences
    included) becomes a space, runs of white space become one, and a text longer than
    *limit* is cut with "…".  Used by the gateway on the officer's note before it is
    sent, and again by the client on whatever the gateway sent before printing it.
    """
    cleaned = "".join(
        " " if unicodedata.category(ch) in _UNPRINTABLE_CATEGORIES else ch for ch in text
    )
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(limit - 1, 0)].rstrip() + "…"
    return cleaned


def _str8(raw: bytes) -> bytes:
    return bytes((len(raw),)) + raw


def _str16(raw: bytes) -> bytes:
    return len(raw).to_bytes(2, "big") + raw


# -- control frames (stream 0) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → gateway, first frame: the versions it speaks and its receive limits."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO
    stream_id: ClassVar[int] = 0
    min_version: int
    max_version: int
    client_name: str
    max_payload: int = DEFAULT_MAX_PAYLOAD
    initial_window: int = DEFAULT_INITIAL_WINDOW

    def __post_init__(self) -> None:
        _int("min_version", self.min_version, 1, 0xFFFF)
        _int("max_version", self.max_version, self.min_version, 0xFFFF)
        _utf8("client_name", self.client_name, 0, MAX_NAME_BYTES)
        _int("max_payload", self.max_payload, MIN_MAX_PAYLOAD, MAX_MAX_PAYLOAD)
        _int("initial_window", self.initial_window, MIN_INITIAL_WINDOW, MAX_WINDOW)

    def encode_payload(self) -> bytes:
        return (
            MAGIC
            + struct.pack(
                ">HHII", self.min_version, self.max_version, self.max_payload, self.initial_window
            )
            + _str8(self.client_name.encode())
        )


@dataclass(frozen=True, slots=True)
class HelloOk:
    """Gateway → client: the chosen version, the gateway's limits for this session."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO_OK
    stream_id: ClassVar[int] = 0
    version: int
    server_name: str
    max_payload: int = DEFAULT_MAX_PAYLOAD
    initial_window: int = DEFAULT_INITIAL_WINDOW
    max_streams: int = DEFAULT_MAX_STREAMS

    def __post_init__(self) -> None:
        _int("version", self.version, 1, 0xFFFF)
        _utf8("server_name", self.server_name, 0, MAX_NAME_BYTES)
        _int("max_payload", self.max_payload, MIN_MAX_PAYLOAD, MAX_MAX_PAYLOAD)
        _int("initial_window", self.initial_window, MIN_INITIAL_WINDOW, MAX_WINDOW)
        _int("max_streams", self.max_streams, 1, 0xFFFF)

    def encode_payload(self) -> bytes:
        return struct.pack(
            ">HIIH", self.version, self.max_payload, self.initial_window, self.max_streams
        ) + _str8(self.server_name.encode())


@dataclass(frozen=True, slots=True)
class Auth:
    """Client → gateway: a login with password and one-time code (kept out of repr)."""

    TYPE: ClassVar[FrameType] = FrameType.AUTH
    stream_id: ClassVar[int] = 0
    account: str
    password: str = field(repr=False)
    otp: str = field(repr=False)

    def __post_init__(self) -> None:
        _utf8("account", self.account, 0, MAX_ACCOUNT_BYTES)
        _utf8("password", self.password, 0, MAX_PASSWORD_BYTES)
        _utf8("otp", self.otp, 0, MAX_OTP_BYTES)

    def encode_payload(self) -> bytes:
        return (
            _str8(self.account.encode()) + _str16(self.password.encode()) + _str8(self.otp.encode())
        )


@dataclass(frozen=True, slots=True)
class AuthOk:
    """Gateway → client: the session is open (after AUTH or RESUME)."""

    TYPE: ClassVar[FrameType] = FrameType.AUTH_OK
    stream_id: ClassVar[int] = 0
    session_id: str
    account: str
    unit_code: str
    resume_token: bytes = field(repr=False)
    idle_timeout: int  # seconds, 0 = none
    max_lifetime: int  # seconds, 0 = none

    def __post_init__(self) -> None:
        _utf8("session_id", self.session_id, 1, MAX_SESSION_ID_BYTES)
        _utf8("account", self.account, 0, MAX_ACCOUNT_BYTES)
        _utf8("unit_code", self.unit_code, 0, MAX_UNIT_CODE_BYTES)
        _bytes("resume_token", self.resume_token, 1, MAX_TOKEN_BYTES)
        _int("idle_timeout", self.idle_timeout, 0, 0xFFFFFFFF)
        _int("max_lifetime", self.max_lifetime, 0, 0xFFFFFFFF)

    def encode_payload(self) -> bytes:
        return (
            _str8(self.session_id.encode())
            + _str8(self.account.encode())
            + _str8(self.unit_code.encode())
            + _str8(self.resume_token)
            + struct.pack(">II", self.idle_timeout, self.max_lifetime)
        )


@dataclass(frozen=True, slots=True)
class AuthFail:
    """Gateway → client: this AUTH or RESUME was refused; *attempts_left* 0 ends it.

    *retry_after* exists from version 2 on (``None``: the version 1 layout): seconds
    until a refusal such as ``locked`` lifts, :data:`RETRY_AFTER_UNKNOWN` (0) when no
    wait is known, :data:`RETRY_AFTER_CALL_CARRIER` when only the carrier can lift it.
    """

    TYPE: ClassVar[FrameType] = FrameType.AUTH_FAIL
    stream_id: ClassVar[int] = 0
    reason: Reason
    attempts_left: int
    retry_after: int | None = None

    def __post_init__(self) -> None:
        _reason(self.reason)
        _int("attempts_left", self.attempts_left, 0, 0xFF)
        if self.retry_after is not None:
            _int("retry_after", self.retry_after, 0, 0xFFFFFFFF)

    def encode_payload(self) -> bytes:
        payload = struct.pack(">HB", self.reason.code, self.attempts_left)
        if self.retry_after is not None:
            payload += self.retry_after.to_bytes(4, "big")
        return payload


@dataclass(frozen=True, slots=True)
class Resume:
    """Client → gateway: reattach a session with its single-use token (not in repr)."""

    TYPE: ClassVar[FrameType] = FrameType.RESUME
    stream_id: ClassVar[int] = 0
    token: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _bytes("token", self.token, 1, MAX_TOKEN_BYTES)

    def encode_payload(self) -> bytes:
        return _str8(self.token)


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE: ClassVar[FrameType] = FrameType.PING
    stream_id: ClassVar[int] = 0
    opaque: bytes

    def __post_init__(self) -> None:
        _bytes("opaque", self.opaque, PING_SIZE, PING_SIZE)

    def encode_payload(self) -> bytes:
        return self.opaque


@dataclass(frozen=True, slots=True)
class Pong:
    TYPE: ClassVar[FrameType] = FrameType.PONG
    stream_id: ClassVar[int] = 0
    opaque: bytes

    def __post_init__(self) -> None:
        _bytes("opaque", self.opaque, PING_SIZE, PING_SIZE)

    def encode_payload(self) -> bytes:
        return self.opaque


@dataclass(frozen=True, slots=True)
class GoAway:
    """Either side: the session ends now, for *reason*; *message* is optional detail."""

    TYPE: ClassVar[FrameType] = FrameType.GOAWAY
    stream_id: ClassVar[int] = 0
    reason: Reason
    message: str = ""

    def __post_init__(self) -> None:
        _reason(self.reason)
        _utf8("message", self.message, 0, MAX_GOAWAY_MESSAGE_BYTES)

    def encode_payload(self) -> bytes:
        return self.reason.code.to_bytes(2, "big") + _str16(self.message.encode())


@dataclass(frozen=True, slots=True)
class Move:
    """Gateway → client (version 3): this node is draining; resume the session on a new
    connection to the same address with *resume_token* (not in repr).  The streams
    already open here may finish within *drain_seconds*; open no new ones here."""

    TYPE: ClassVar[FrameType] = FrameType.MOVE
    stream_id: ClassVar[int] = 0
    resume_token: bytes = field(repr=False)
    drain_seconds: int

    def __post_init__(self) -> None:
        _bytes("resume_token", self.resume_token, 1, MAX_TOKEN_BYTES)
        _int("drain_seconds", self.drain_seconds, 0, 2**32 - 1)

    def encode_payload(self) -> bytes:
        return _str8(self.resume_token) + self.drain_seconds.to_bytes(4, "big")


# -- stream frames (stream id != 0) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """Client → gateway: open stream *stream_id* to the named service."""

    TYPE: ClassVar[FrameType] = FrameType.OPEN
    stream_id: int
    service: str

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        if not isinstance(self.service, str):
            raise TypeError("service must be str")
        if _SERVICE_NAME.fullmatch(self.service) is None:
            raise ValueError("service must be 1-64 of A-Z a-z 0-9 . _ -")

    def encode_payload(self) -> bytes:
        return _str8(self.service.encode("ascii"))


@dataclass(frozen=True, slots=True)
class OpenOk:
    TYPE: ClassVar[FrameType] = FrameType.OPEN_OK
    stream_id: int

    def __post_init__(self) -> None:
        _stream(self.stream_id)

    def encode_payload(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class OpenFail:
    TYPE: ClassVar[FrameType] = FrameType.OPEN_FAIL
    stream_id: int
    reason: Reason

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        _reason(self.reason)

    def encode_payload(self) -> bytes:
        return self.reason.code.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Data:
    TYPE: ClassVar[FrameType] = FrameType.DATA
    stream_id: int
    payload: bytes

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        if not isinstance(self.payload, bytes):
            raise TypeError("payload must be bytes")
        if len(self.payload) > 0xFFFFFFFF:
            raise ValueError("payload longer than a frame can say")

    def encode_payload(self) -> bytes:
        return self.payload

    def __repr__(self) -> str:
        # Stream content is the employer's business data: its size is enough for a log.
        return f"Data(stream_id={self.stream_id}, {len(self.payload)} bytes)"


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    TYPE: ClassVar[FrameType] = FrameType.WINDOW_UPDATE
    stream_id: int
    increment: int

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        _int("increment", self.increment, 1, MAX_WINDOW)

    def encode_payload(self) -> bytes:
        return self.increment.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class Fin:
    TYPE: ClassVar[FrameType] = FrameType.FIN
    stream_id: int

    def __post_init__(self) -> None:
        _stream(self.stream_id)

    def encode_payload(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class Reset:
    TYPE: ClassVar[FrameType] = FrameType.RESET
    stream_id: int
    reason: Reason

    def __post_init__(self) -> None:
        _stream(self.stream_id)
        _reason(self.reason)

    def encode_payload(self) -> bytes:
        return self.reason.code.to_bytes(2, "big")


Frame: TypeAlias = (
    Hello
    | HelloOk
    | Auth
    | AuthOk
    | AuthFail
    | Resume
    | Ping
    | Pong
    | GoAway
    | Move
    | Open
    | OpenOk
    | OpenFail
    | Data
    | WindowUpdate
    | Fin
    | Reset
)


def encode_data_header(stream_id: int, length: int) -> bytes:
    """The 10-byte header of a DATA frame carrying *length* payload bytes."""
    return _HEADER.pack(FrameType.DATA, 0, stream_id, length)


def encode(frame: Frame) -> bytes:
    """The bytes of *frame* on the wire."""
    payload = frame.encode_payload()
    return _HEADER.pack(frame.TYPE, 0, frame.stream_id, len(payload)) + payload


# -- parsing -------------------------------------------------------------------------


class _Reader:
    """Reads the fields of one payload; every shortfall is a ProtocolError."""

    __slots__ = ("_pos", "_view", "_what")

    def __init__(self, view: memoryview, what: str) -> None:
        self._view = view
        self._pos = 0
        self._what = what

    def _take(self, n: int, name: str) -> memoryview:
        end = self._pos + n
        if end > len(self._view):
            raise ProtocolError(Reason.PROTOCOL_ERROR, f"{self._what}: {name} is cut short")
        chunk = self._view[self._pos : end]
        self._pos = end
        return chunk

    def u8(self, name: str) -> int:
        return self._take(1, name)[0]

    def u16(self, name: str) -> int:
        return int.from_bytes(self._take(2, name), "big")

    def u32(self, name: str) -> int:
        return int.from_bytes(self._take(4, name), "big")

    def raw(self, n: int, name: str) -> bytes:
        return bytes(self._take(n, name))

    def bytes8(self, name: str) -> bytes:
        return self.raw(self.u8(name), name)

    def str8(self, name: str) -> str:
        return self._text(self.bytes8(name), name)

    def str16(self, name: str) -> str:
        return self._text(self.raw(self.u16(name), name), name)

    def reason(self) -> Reason:
        code = self.u16("reason")
        try:
            return Reason.from_code(code)
        except ValueError:
            raise ProtocolError(
                Reason.PROTOCOL_ERROR, f"{self._what}: unknown reason code {code}"
            ) from None

    def _text(self, raw: bytes, name: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Not the codec's message: it would quote a byte of, say, the password.
            raise ProtocolError(
                Reason.PROTOCOL_ERROR, f"{self._what}: {name} is not valid UTF-8"
            ) from None

    @property
    def remaining(self) -> int:
        return len(self._view) - self._pos

    def end(self) -> None:
        if self._pos != len(self._view):
            raise ProtocolError(
                Reason.PROTOCOL_ERROR,
                f"{self._what}: {len(self._view) - self._pos} bytes after the last field",
            )


def _hello(r: _Reader, stream_id: int) -> Frame:
    if r.raw(len(MAGIC), "magic") != MAGIC:
        raise ProtocolError(Reason.PROTOCOL_ERROR, "HELLO: wrong magic")
    min_v, max_v = r.u16("min_version"), r.u16("max_version")
    max_payload, window = r.u32("max_payload"), r.u32("initial_window")
    return Hello(min_v, max_v, r.str8("client_name"), max_payload, window)


def _hello_ok(r: _Reader, stream_id: int) -> Frame:
    version = r.u16("version")
    max_payload, window = r.u32("max_payload"), r.u32("initial_window")
    max_streams = r.u16("max_streams")
    return HelloOk(version, r.str8("server_name"), max_payload, window, max_streams)


def _auth_ok(r: _Reader, stream_id: int) -> Frame:
    return AuthOk(
        r.str8("session_id"),
        r.str8("account"),
        r.str8("unit_code"),
        r.bytes8("resume_token"),
        r.u32("idle_timeout"),
        r.u32("max_lifetime"),
    )


def _auth_fail(r: _Reader, stream_id: int) -> Frame:
    reason, attempts_left = r.reason(), r.u8("attempts_left")
    # Version 1 ends here; version 2 adds retry_after.  Anything else is left over
    # (and refused by ``end``), so the length alone tells the layouts apart.
    retry_after = r.u32("retry_after") if r.remaining == 4 else None
    return AuthFail(reason, attempts_left, retry_after)


def _open(r: _Reader, stream_id: int) -> Frame:
    service = r.bytes8("service")
    if _SERVICE_NAME.fullmatch(service.decode("latin-1")) is None:
        raise ProtocolError(Reason.PROTOCOL_ERROR, "OPEN: bad service name")
    return Open(stream_id, service.decode("ascii"))


_DECODERS: dict[FrameType, Callable[[_Reader, int], Frame]] = {
    FrameType.HELLO: _hello,
    FrameType.HELLO_OK: _hello_ok,
    FrameType.AUTH: lambda r, _: Auth(r.str8("account"), r.str16("password"), r.str8("otp")),
    FrameType.AUTH_OK: _auth_ok,
    FrameType.AUTH_FAIL: _auth_fail,
    FrameType.RESUME: lambda r, _: Resume(r.bytes8("token")),
    FrameType.PING: lambda r, _: Ping(r.raw(PING_SIZE, "opaque")),
    FrameType.PONG: lambda r, _: Pong(r.raw(PING_SIZE, "opaque")),
    FrameType.GOAWAY: lambda r, _: GoAway(r.reason(), r.str16("message")),
    FrameType.MOVE: lambda r, _: Move(r.bytes8("resume_token"), r.u32("drain_seconds")),
    FrameType.OPEN: _open,
    FrameType.OPEN_OK: lambda r, sid: OpenOk(sid),
    FrameType.OPEN_FAIL: lambda r, sid: OpenFail(sid, r.reason()),
    FrameType.WINDOW_UPDATE: lambda r, sid: WindowUpdate(sid, r.u32("increment")),
    FrameType.FIN: lambda r, sid: Fin(sid),
    FrameType.RESET: lambda r, sid: Reset(sid, r.reason()),
}


def _decode(ftype: FrameType, stream_id: int, view: memoryview) -> Frame:
    if ftype is FrameType.DATA:  # the hot path: one copy, no field parsing
        return Data(stream_id, bytes(view))
    reader = _Reader(view, ftype.name)
    try:
        frame = _DECODERS[ftype](reader, stream_id)
    except ValueError as e:  # a field out of its range; the message names only the field
        raise ProtocolError(Reason.PROTOCOL_ERROR, f"{ftype.name}: {e}") from None
    reader.end()
    return frame


class FrameParser:
    """Bytes in, frames out, with at most one incomplete frame held back.

    ``feed(data)`` returns the frames completed by *data*, in order.  After it raised
    :class:`ProtocolError` the parser is spent: every later call raises that error
    again (the session is over; nothing after the bad frame can be trusted).
    """

    __slots__ = ("_buffer", "_error", "max_payload")

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if not 0 <= max_payload <= MAX_MAX_PAYLOAD:
            raise ValueError(f"max_payload must be 0-{MAX_MAX_PAYLOAD}, got {max_payload}")
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back: part of one frame, at most ``HEADER_SIZE + max_payload``."""
        return len(self._buffer)

    def _check_header(self, ftype: int, flags: int, stream_id: int, length: int) -> FrameType:
        if ftype not in _KNOWN_TYPES:
            raise ProtocolError(Reason.PROTOCOL_ERROR, f"unknown frame type 0x{ftype:02x}")
        kind = FrameType(ftype)
        if flags != 0:
            raise ProtocolError(Reason.PROTOCOL_ERROR, f"{kind.name}: flags must be 0")
        if length > self.max_payload:
            raise ProtocolError(
                Reason.FRAME_TOO_LARGE,
                f"{kind.name}: payload of {length} bytes exceeds {self.max_payload}",
            )
        if (kind in CONTROL_TYPES) != (stream_id == 0):
            raise ProtocolError(
                Reason.PROTOCOL_ERROR,
                f"{kind.name}: "
                + ("must be on stream 0" if kind in CONTROL_TYPES else "needs a stream id"),
            )
        return kind

    def feed(self, data: bytes) -> list[Frame]:
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except ProtocolError as e:
            self._error = e
            self._buffer = bytearray()
            raise

    def _feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        view = memoryview(data)
        pos = 0
        buf = self._buffer
        if buf:
            # Finish the frame held back, taking from *data* only what it still needs.
            if len(buf) < HEADER_SIZE:
                pos = min(HEADER_SIZE - len(buf), len(data))
                buf += view[:pos]
                if len(buf) < HEADER_SIZE:
                    return frames
            ftype, flags, stream_id, length = _HEADER.unpack_from(buf)
            kind = self._check_header(ftype, flags, stream_id, length)
            take = min(HEADER_SIZE + length - len(buf), len(data) - pos)
            buf += view[pos : pos + take]
            pos += take
            if len(buf) < HEADER_SIZE + length:
                return frames
            with memoryview(buf) as held:
                frames.append(_decode(kind, stream_id, held[HEADER_SIZE:]))
            buf.clear()
        end = len(data)
        while end - pos >= HEADER_SIZE:
            ftype, flags, stream_id, length = _HEADER.unpack_from(data, pos)
            kind = self._check_header(ftype, flags, stream_id, length)
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            frames.append(_decode(kind, stream_id, view[pos + HEADER_SIZE : stop]))
            pos = stop
        if pos < end:
            buf += view[pos:]
        return frames
