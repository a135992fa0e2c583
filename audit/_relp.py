"""RELP, the Reliable Event Logging Protocol (rsyslog's acknowledged transport), client side.

A frame is ``TXNR SP COMMAND SP DATALEN [SP DATA] LF``.  The client opens a session
(``open`` with its offers), sends each message as a ``syslog`` command with a new
transaction number, and the server answers every command with ``rsp`` and the same
number: ``200 OK`` once the message is safely received.  Unlike plain syslog over
TCP, the sender therefore *knows* what was delivered, and after a broken connection
resends only what was not acknowledged.

Pure code, no Twisted: :class:`RelpFrameParser` turns bytes into :class:`RelpFrame`
values with bounded buffers; :class:`RelpClient` is the session state: what to write,
and what the server's answers mean (:class:`Opened`, :class:`Acknowledged`).  A
server refusal, a malformed frame or a ``serverclose`` raises :class:`RelpError`:
the connection must be dropped and the unacknowledged messages sent again.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

MAX_DATA: Final = 128 * 1024  # a response is short; a message at most 64k plus header
MAX_TXNR: Final = 999_999_999  # RELP: TXNR is 1 to 9 digits, then wraps to 1
DEFAULT_WINDOW: Final = 128  # rsyslog's default relp window: unacknowledged at once
_HEADER: Final = re.compile(rb"^([0-9]{1,9}) ([A-Za-z]{1,32}) ([0-9]{1,9})")
_MAX_HEADER: Final = 9 + 1 + 32 + 1 + 9 + 1
OFFERS: Final = b"relp_version=0\nrelp_software=ssgate\ncommands=syslog"


class RelpError(Exception):
    """The session cannot go on (refused, malformed, closed by the server)."""


@dataclass(frozen=True)
class RelpFrame:
    txnr: int
    command: str
    data: bytes = b""

    def encode(self) -> bytes:
        head = b"%d %s %d" % (self.txnr, self.command.encode("ascii"), len(self.data))
        return head + (b" " + self.data if self.data else b"") + b"\n"


class RelpFrameParser:
    """``feed(bytes) -> [RelpFrame, …]``; a partial frame waits (at most
    *max_data* bytes of data plus a header); anything malformed raises RelpError."""

    def __init__(self, max_data: int = MAX_DATA) -> None:
        self._max = max_data
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RelpFrame]:
        self._buffer += data
        frames: list[RelpFrame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> RelpFrame | None:
        m = _HEADER.match(self._buffer)
        if m is None or m.end() == len(self._buffer):
            if len(self._buffer) > _MAX_HEADER or (m is None and not _could_start(self._buffer)):
                raise RelpError(f"malformed RELP frame header {bytes(self._buffer[:24])!r}")
            return None
        txnr, command, length = int(m[1]), m[2].decode("ascii"), int(m[3])
        if length > self._max:
            raise RelpError(f"RELP frame of {length} bytes exceeds the limit of {self._max}")
        at = m.end()
        if length == 0:
            if self._buffer[at : at + 1] != b"\n":
                raise RelpError("malformed RELP frame: no trailer after DATALEN 0")
            del self._buffer[: at + 1]
            return RelpFrame(txnr, command)
        if self._buffer[at : at + 1] != b" ":
            raise RelpError("malformed RELP frame: no space before DATA")
        end = at + 1 + length
        if len(self._buffer) < end + 1:
            return None
        if self._buffer[end : end + 1] != b"\n":
            raise RelpError("malformed RELP frame: DATA not followed by its trailer")
        payload = bytes(self._buffer[at + 1 : end])
        del self._buffer[: end + 1]
        return RelpFrame(txnr, command, payload)


def _could_start(buffer: bytearray) -> bool:
    """Whether *buffer* is a prefix of a valid header (digits, space, letters, …)."""
    return re.fullmatch(rb"[0-9]{0,9}( [A-Za-z]{0,32}( [0-9]{0,9})?)?", bytes(buffer)) is not None


@dataclass(frozen=True)
class Opened:
    """The server accepted the session."""


@dataclass(frozen=True)
class Acknowledged:
    """Every message up to *key* (the caller's, e.g. an audit seq) is acknowledged."""

    key: int


RelpEvent = Opened | Acknowledged


class RelpClient:
    """One RELP session: :meth:`open` first, then :meth:`send` while :attr:`capacity`
    allows, :meth:`receive` the server's bytes.  Keys (audit seqs) must increase."""

    def __init__(self, window: int = DEFAULT_WINDOW, *, max_data: int = MAX_DATA) -> None:
        if window < 1:
            raise ValueError("the RELP window must be at least 1")
        self._window = window
        self._parser = RelpFrameParser(max_data)
        self._txnr = 0
        self._open_txnr: int | None = None
        self.opened = False
        # txnr -> [key, acknowledged], in the order sent
        self._inflight: OrderedDict[int, list[int | bool]] = OrderedDict()

    @property
    def capacity(self) -> int:
        """Messages that may be sent now without overrunning the server's window."""
        return self._window - len(self._inflight) if self.opened else 0

    def open(self) -> bytes:
        self._open_txnr = self._next_txnr()
        return RelpFrame(self._open_txnr, "open", OFFERS).encode()

    def send(self, key: int, message: bytes) -> bytes:
        if not self.opened:
            raise RelpError("RELP session not open")
        if self.capacity <= 0:
            raise RelpError("RELP window full")
        txnr = self._next_txnr()
        self._inflight[txnr] = [key, False]
        return RelpFrame(txnr, "syslog", message).encode()

    def close(self) -> bytes:
        return RelpFrame(self._next_txnr(), "close").encode()

    def receive(self, data: bytes) -> list[RelpEvent]:
        events: list[RelpEvent] = []
        for frame in self._parser.feed(data):
            if frame.command == "serverclose":
                raise RelpError("the RELP server closed the session")
            if frame.command != "rsp":
                raise RelpError(f"unexpected RELP command {frame.command!r} from the server")
            code = frame.data[:3]
            if code != b"200":
                text = frame.data[:80].decode("utf-8", "replace")
                raise RelpError(f"the RELP server refused transaction {frame.txnr}: {text}")
            if frame.txnr == self._open_txnr and not self.opened:
                self.opened = True
                events.append(Opened())
                continue
            entry = self._inflight.get(frame.txnr)
            if entry is None:
                raise RelpError(f"RELP response to unknown transaction {frame.txnr}")
            entry[1] = True
            last = None
            while self._inflight and next(iter(self._inflight.values()))[1]:
                _, (key, _) = self._inflight.popitem(last=False)
                last = int(key)
            if last is not None:
                events.append(Acknowledged(last))
        return events

    def _next_txnr(self) -> int:
        self._txnr = self._txnr % MAX_TXNR + 1
        return self._txnr
