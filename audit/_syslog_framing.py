"""RFC 6587 octet-counting framing for syslog over TCP (and TLS, RFC 5425).

Each message travels as ``MSG-LEN SP SYSLOG-MSG``: its length in bytes, in decimal
without leading zeros, a space, then exactly that many bytes.  Unlike the
newline-terminated ("non-transparent") framing, a message may hold any byte, and a
receiver never has to guess where one ends.

Pure code: :func:`frame` encodes, :class:`OctetCountingDecoder` decodes with a bounded
buffer (a receiver in tests, and anyone checking what a collector would read).
Nothing here imports Twisted.
"""

from __future__ import annotations

from typing import Final

# RFC 5425 §4.3.1: a receiver must take 2048-byte messages and should take 8192;
# rsyslog's default maxMessageSize is 8k.  An audit record with long details can pass
# 8k, so the collector's limit must be raised (docs/operations.md), and we refuse to
# decode anything absurd.
MAX_MESSAGE: Final = 64 * 1024


class FramingError(ValueError):
    """The byte stream is not octet-counted syslog (or a message is too long)."""


def frame(message: bytes) -> bytes:
    """*message* with its octet count in front (a trailing LF is the caller's to drop)."""
    return b"%d %s" % (len(message), message)


class OctetCountingDecoder:
    """``feed(bytes) -> [message, …]``: whole messages in order; a partial one waits.

    The buffer holds at most one message (*max_message* bytes) plus its length
    prefix; a length that is not a decimal number without leading zeros, or one
    above *max_message*, raises :class:`FramingError` and the decoder stays broken
    (the stream cannot be resynchronised).
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        if max_message < 1:
            raise ValueError("max_message must be at least 1")
        self._max = max_message
        self._digits = len(str(max_message))
        self._buffer = bytearray()
        self._need: int | None = None  # the current message's length, once read
        self._broken: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._broken is not None:
            raise self._broken
        self._buffer += data
        messages: list[bytes] = []
        try:
            while True:
                if self._need is None:
                    self._need = self._length()
                    if self._need is None:
                        break
                if len(self._buffer) < self._need:
                    break
                messages.append(bytes(self._buffer[: self._need]))
                del self._buffer[: self._need]
                self._need = None
        except FramingError as e:
            self._broken = e
            self._buffer.clear()
            raise
        return messages

    def _length(self) -> int | None:
        """Read ``MSG-LEN SP`` off the buffer; None while it is incomplete."""
        space = self._buffer.find(b" ", 0, self._digits + 1)
        if space < 0:
            head = bytes(self._buffer[: self._digits + 1])
            if len(self._buffer) > self._digits or (head and not head.isdigit()):
                raise FramingError(f"expected a message length, got {head[:16]!r}")
            return None
        digits = bytes(self._buffer[:space])
        if not digits.isdigit() or digits.startswith(b"0"):
            raise FramingError(f"expected a message length, got {digits[:16]!r}")
        length = int(digits)
        if length > self._max:
            raise FramingError(f"message of {length} bytes exceeds the limit of {self._max}")
        del self._buffer[: space + 1]
        return length
