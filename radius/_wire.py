"""RADIUS on the wire: the bounded first look at a datagram, and PAP passwords.

:func:`scan_request` walks the header and the attribute list of a received datagram
*before* pyrad decodes it, so that every packet costs at most :data:`MAX_PACKET`
bytes and :data:`MAX_ATTRIBUTES` attributes of work, and so that the checks the
BlastRADIUS countermeasures rest on (exactly one Message-Authenticator of 16 octets)
are made on the bytes as sent.  Decoding attributes and computing authenticators is
pyrad's (:mod:`radius._packets`).

:func:`decrypt_user_password` is RFC 2865 §5.2 by hand.  pyrad's ``PwDecrypt`` decodes
the result with ``errors="ignore"``: it silently drops bytes that are not UTF-8, so
two different passwords can come out as the same text.  Here an undecodable password
is refused instead (with a wrong shared secret, it is what the NAS sends).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

# RFC 2865 §3: "The maximum length is 4096"; the minimum is the 20-octet header.
MIN_PACKET = 20
MAX_PACKET = 4096
# A NAS sends a dozen or two attributes with an Access-Request; far more is an attack
# or a broken peer, and each one costs work.
MAX_ATTRIBUTES = 64
# RFC 2865 §5.2: the encrypted password is 16 to 128 octets, a multiple of 16.
MAX_PASSWORD = 128

ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCESS_CHALLENGE = 11
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5

USER_NAME = 1
USER_PASSWORD = 2
CHAP_PASSWORD = 3
NAS_PORT = 5
FRAMED_IP_ADDRESS = 8
CLASS = 25
STATE = 24
CALLING_STATION_ID = 31
NAS_IDENTIFIER = 32
ACCT_STATUS_TYPE = 40
ACCT_INPUT_OCTETS = 42
ACCT_OUTPUT_OCTETS = 43
ACCT_SESSION_ID = 44
ACCT_SESSION_TIME = 46
ACCT_TERMINATE_CAUSE = 49
ACCT_INPUT_GIGAWORDS = 52
ACCT_OUTPUT_GIGAWORDS = 53
EAP_MESSAGE = 79
MESSAGE_AUTHENTICATOR = 80


class MalformedPacket(ValueError):
    """The datagram is not a well-formed RADIUS packet; ``reason`` is the drop code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class ScannedPacket:
    """What :func:`scan_request` found: the header and the raw attributes in order."""

    code: int
    identifier: int
    authenticator: bytes
    packet: bytes  # exactly Length octets (padding after it dropped, RFC 2865 §3)
    attributes: tuple[tuple[int, bytes], ...]

    def values(self, attribute: int) -> list[bytes]:
        return [value for kind, value in self.attributes if kind == attribute]

    def first(self, attribute: int) -> bytes | None:
        for kind, value in self.attributes:
            if kind == attribute:
                return value
        return None

    @property
    def has_message_authenticator(self) -> bool:
        return any(kind == MESSAGE_AUTHENTICATOR for kind, _ in self.attributes)


def scan_request(data: bytes) -> ScannedPacket:
    """The header and attributes of *data*, or :class:`MalformedPacket` saying why not.

    Checks only the structure: sizes, attribute lengths, the attribute count, and that
    a Message-Authenticator, if present, is one attribute of 16 octets.
    """
    if len(data) < MIN_PACKET:
        raise MalformedPacket("too-short", f"{len(data)} octets")
    if len(data) > MAX_PACKET:
        raise MalformedPacket("too-long", f"{len(data)} octets")
    code, identifier, length = struct.unpack_from("!BBH", data)
    if length < MIN_PACKET or length > len(data):
        raise MalformedPacket("bad-length", f"Length {length}, datagram {len(data)}")
    packet = data[:length]
    attributes: list[tuple[int, bytes]] = []
    at = MIN_PACKET
    while at < length:
        if len(attributes) == MAX_ATTRIBUTES:
            raise MalformedPacket("too-many-attributes", f"more than {MAX_ATTRIBUTES}")
        if at + 2 > length:
            raise MalformedPacket("bad-attribute", f"truncated header at {at}")
        kind, size = packet[at], packet[at + 1]
        if size < 2 or at + size > length:
            raise MalformedPacket("bad-attribute", f"attribute {kind} length {size} at {at}")
        attributes.append((kind, packet[at + 2 : at + size]))
        at += size
    found = [value for kind, value in attributes if kind == MESSAGE_AUTHENTICATOR]
    if len(found) > 1:
        raise MalformedPacket("bad-message-authenticator", "more than one")
    if found and len(found[0]) != 16:
        raise MalformedPacket("bad-message-authenticator", f"{len(found[0])} octets")
    return ScannedPacket(code, identifier, packet[4:20], packet, tuple(attributes))


def decrypt_user_password(hidden: bytes, *, secret: bytes, authenticator: bytes) -> str | None:
    """The PAP password hidden in a User-Password value (RFC 2865 §5.2), or None if
    the value has a bad length or does not decrypt to UTF-8 text without NULs."""
    if not hidden or len(hidden) % 16 or len(hidden) > MAX_PASSWORD:
        return None
    plain = bytearray()
    last = authenticator
    for at in range(0, len(hidden), 16):
        block = hidden[at : at + 16]
        pad = hashlib.md5(secret + last, usedforsecurity=False).digest()
        plain += bytes(a ^ b for a, b in zip(block, pad, strict=True))
        last = block
    text = bytes(plain).rstrip(b"\x00")
    if b"\x00" in text:
        return None
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_text(value: bytes | None, *, limit: int = 253) -> str | None:
    """A text attribute as str, or None if absent, empty, too long, not UTF-8 or with
    control characters (they would end up in the audit log and in SQL parameters)."""
    if not value or len(value) > limit:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return None
    return text


def decode_integer(value: bytes | None) -> int | None:
    """A 32-bit integer attribute, or None if absent or not 4 octets."""
    if value is None or len(value) != 4:
        return None
    return int.from_bytes(value)
