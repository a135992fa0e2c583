"""The signed identity assertion: a PROXY protocol v2 header with ssgate TLVs and an HMAC.

For every stream the gateway opens to a service it first writes one PROXY v2 header
(https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt §2.2) carrying the
employer's real address and the gateway's address, then the ssgate TLVs, then an
HMAC-SHA256 TLV.  The service trusts nothing else: without a valid, fresh header the
connection is dropped, and the unit code comes only from it.

Wire format (all integers big-endian)::

    offset  size  field
    0       12    signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
    12      1     0x21       version 2, command PROXY (LOCAL is refused)
    13      1     0x11       TCP over IPv4   or  0x21  TCP over IPv6
    14      2     L          bytes that follow offset 16
    16      12|36 addresses  src addr, dst addr (4 or 16 bytes each), src port, dst port
    ..            TLVs       type (1) · length (2) · value, in this order:
                  0x01-0x30  optional standard TLVs from the spec (ALPN, authority …),
                             covered by the HMAC and otherwise ignored
                  0xE0       account       ASCII 0x21-0x7E, 1-255 bytes
                  0xE1       unit code     ASCII 0x21-0x7E, 1-64 bytes
                  0xE2       session id    ASCII 0x21-0x7E, 1-128 bytes
                  0xE3       issue time    8 bytes: unsigned milliseconds since the epoch
                  0xE4       nonce         ASCII 0x21-0x7E, 1-128 bytes, unique per stream
                  0xEF       HMAC          32 bytes, always the last TLV, ending at 16 + L

The HMAC value is ``HMAC-SHA256(key, b"ssgate-identity-v1\\x00" || H)`` where *H* is
the header exactly as sent from the first signature byte up to, and including, the
HMAC TLV's own type and length bytes (``EF 00 20``) — i.e. everything but the last 32
bytes.  So the signature, version, family, the length field, both addresses and ports
and every earlier TLV (ours and foreign ones) are covered; since the HMAC TLV must end
exactly where the length field says the header ends, nothing can be appended, removed
or moved without the check failing.  The context prefix keeps a MAC made here from
being valid anywhere else.  The key is shared by gateway and service (≥ 32 bytes).

Reading is sans-IO and incremental (:class:`IdentityHeaderReader`): it refuses as
soon as the bytes cannot be a valid header (a non-PROXY stream after at most 12
bytes, an over-long length field before buffering it) and never holds more than
``max_header`` bytes.  The reader checks the structure and the HMAC before it looks
at any value, then the TLV set (each ssgate TLV exactly once, no unknown type in
0xE0-0xEF), the values, and freshness: ``now - max_age <= issued <= now + max_skew``.

Replay: a header is only accepted within ``max_age`` seconds of its issue time, and it
is bound to the addresses it names.  Within that window a captured header could be
replayed by whoever can reach the service socket; a service that needs more keeps the
:attr:`Identity.nonce` values it saw for ``max_age + max_skew`` seconds and refuses a
repeat.  Nothing here imports Twisted or reads a clock: ``now`` is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
VERSION_PROXY = 0x21
FAMILY_TCP4 = 0x11
FAMILY_TCP6 = 0x21
FIXED_SIZE = 16  # signature, version/command, family/protocol, length

TLV_ACCOUNT = 0xE0
TLV_UNIT_CODE = 0xE1
TLV_SESSION_ID = 0xE2
TLV_ISSUED_AT = 0xE3
TLV_NONCE = 0xE4
TLV_HMAC = 0xEF
SSGATE_TLV_RANGE = range(0xE0, 0xF0)

KEY_MIN_BYTES = 32
MAC_BYTES = 32
MAC_CONTEXT = b"ssgate-identity-v1\x00"
DEFAULT_MAX_HEADER = 1024
DEFAULT_MAX_AGE = 30.0
DEFAULT_MAX_SKEW = 5.0
NONCE_BYTES = 16

# Field limits are chosen so the largest identity (IPv6) fits DEFAULT_MAX_HEADER with
# room left for a few foreign TLVs: 16 + 36 + 258 + 67 + 131 + 11 + 131 + 35 = 685.
FIELD_MAX = {"account": 255, "unit_code": 64, "session_id": 128, "nonce": 128}

_ADDRESS_SIZE = {FAMILY_TCP4: 12, FAMILY_TCP6: 36}
_ADDRESS_FORMAT = {FAMILY_TCP4: "!4s4sHH", FAMILY_TCP6: "!16s16sHH"}
_MAC_TLV_SIZE = 3 + MAC_BYTES
_TEXT = re.compile(rb"[\x21-\x7e]+")
_MAX_MILLIS = 2**63 - 1
_LOWEST_MAX_HEADER = 128
_HIGHEST_MAX_HEADER = FIXED_SIZE + 0xFFFF

_STRING_TLVS = {
    TLV_ACCOUNT: "account",
    TLV_UNIT_CODE: "unit_code",
    TLV_SESSION_ID: "session_id",
    TLV_NONCE: "nonce",
}
_REQUIRED_TLVS = (TLV_ACCOUNT, TLV_UNIT_CODE, TLV_SESSION_ID, TLV_ISSUED_AT, TLV_NONCE)

REASONS = frozenset(
    {
        "no-header",  # the stream does not start with the PROXY v2 signature
        "bad-version",  # version is not 2, or the command is neither PROXY nor LOCAL
        "local-command",  # a LOCAL header: carries no identity
        "bad-family",  # not TCP over IPv4/IPv6
        "oversized",  # the length field announces more than max_header
        "truncated",  # verify_assertion got fewer bytes than the header
        "malformed",  # TLVs overrun the header, HMAC TLV misplaced, trailing bytes
        "bad-signature",  # the HMAC does not verify under the key
        "missing-tlv",  # no HMAC TLV, or an ssgate TLV is absent
        "duplicate-tlv",  # an ssgate TLV appears twice
        "unknown-tlv",  # a type in 0xE0-0xEF that this version does not define
        "bad-value",  # a TLV value or address outside its rules (e.g. not ASCII)
        "stale",  # issued more than max_age seconds before now
        "from-future",  # issued more than max_skew seconds after now
        "invalid-identity",  # encode_assertion: a field is outside its rules
    }
)


class IdentityHeaderError(ValueError):
    """An identity header cannot be read or written.

    :attr:`reason` is one short slug from :data:`REASONS`, for logs and metrics; the
    message says a little more and never contains the key or the MAC.
    """

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a stream belongs to, as the gateway vouched for it.

    ``issued_at`` is epoch seconds (UTC) at millisecond precision on the wire;
    ``source_*`` is the employer's real address, ``dest_*`` the gateway's.
    """

    account: str
    unit_code: str
    session_id: str
    issued_at: float
    source_host: str
    source_port: int
    dest_host: str
    dest_port: int
    nonce: str


def new_nonce() -> str:
    """A fresh random nonce for one stream: 128 bits as 32 hex characters."""
    return secrets.token_hex(NONCE_BYTES)


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise TypeError(f"identity key must be bytes, got {type(key).__name__}")
    if len(key) < KEY_MIN_BYTES:
        raise ValueError(f"identity key must be at least {KEY_MIN_BYTES} bytes, got {len(key)}")
    return bytes(key)


def _check_max_header(max_header: int) -> int:
    if (
        not isinstance(max_header, int)
        or not _LOWEST_MAX_HEADER <= max_header <= _HIGHEST_MAX_HEADER
    ):
        raise ValueError(
            f"max_header must be an int in {_LOWEST_MAX_HEADER}..{_HIGHEST_MAX_HEADER}"
        )
    return max_header


def _mac(key: bytes, signed_part: bytes) -> bytes:
    return hmac.new(key, MAC_CONTEXT + signed_part, hashlib.sha256).digest()


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def _text_field(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise IdentityHeaderError("invalid-identity", f"{name} must be a str")
    raw = value.encode("ascii") if value.isascii() else b""
    if _TEXT.fullmatch(raw) is None or len(raw) > FIELD_MAX[name]:
        raise IdentityHeaderError(
            "invalid-identity",
            f"{name} must be 1-{FIELD_MAX[name]} printable ASCII characters without spaces",
        )
    return raw


def _address(name: str, host: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(host, str):
        raise IdentityHeaderError("invalid-identity", f"{name} must be a str")
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        raise IdentityHeaderError(
            "invalid-identity", f"{name} must be an IPv4 or IPv6 address, got {host!r}"
        ) from None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id is not None:
        raise IdentityHeaderError("invalid-identity", f"{name} must not carry a zone index")
    return parsed


def _port(name: str, port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise IdentityHeaderError("invalid-identity", f"{name} must be an int in 0..65535")
    return port


def encode_assertion(
    identity: Identity,
    *,
    key: bytes,
    extra_tlvs: Sequence[tuple[int, bytes]] = (),
    max_header: int = DEFAULT_MAX_HEADER,
) -> bytes:
    """The signed PROXY v2 header for *identity*, to be written before any stream byte.

    *extra_tlvs* are foreign TLVs (e.g. ``(0x02, b"declare.example")``, the authority)
    placed before ours and covered by the HMAC; their types must lie outside
    0xE0-0xEF.  Raises :class:`IdentityHeaderError` (reason ``invalid-identity``) for a
    field outside its rules, ``oversized`` for a header longer than *max_header*, and
    ValueError/TypeError for an unusable key.
    """
    key = _check_key(key)
    max_header = _check_max_header(max_header)
    source = _address("source_host", identity.source_host)
    dest = _address("dest_host", identity.dest_host)
    if source.version != dest.version:
        raise IdentityHeaderError(
            "invalid-identity", "source_host and dest_host must be of the same IP version"
        )
    family = FAMILY_TCP4 if source.version == 4 else FAMILY_TCP6
    addresses = struct.pack(
        _ADDRESS_FORMAT[family],
        source.packed,
        dest.packed,
        _port("source_port", identity.source_port),
        _port("dest_port", identity.dest_port),
    )

    issued_at = identity.issued_at
    if (
        not isinstance(issued_at, int | float)
        or not math.isfinite(issued_at)
        or not 0 <= round(issued_at * 1000) <= _MAX_MILLIS
    ):
        raise IdentityHeaderError("invalid-identity", "issued_at must be epoch seconds >= 0")
    millis = round(issued_at * 1000)

    foreign = []
    for kind, value in extra_tlvs:
        if not isinstance(kind, int) or not 0 <= kind <= 0xFF or kind in SSGATE_TLV_RANGE:
            raise IdentityHeaderError(
                "invalid-identity", "extra TLV types must be 0x00-0xFF outside 0xE0-0xEF"
            )
        if not isinstance(value, bytes) or len(value) > 0xFFFF:
            raise IdentityHeaderError("invalid-identity", "extra TLV values must be bytes")
        foreign.append(_tlv(kind, value))

    body = (
        addresses
        + b"".join(foreign)
        + _tlv(TLV_ACCOUNT, _text_field("account", identity.account))
        + _tlv(TLV_UNIT_CODE, _text_field("unit_code", identity.unit_code))
        + _tlv(TLV_SESSION_ID, _text_field("session_id", identity.session_id))
        + _tlv(TLV_ISSUED_AT, struct.pack("!Q", millis))
        + _tlv(TLV_NONCE, _text_field("nonce", identity.nonce))
    )
    length = len(body) + _MAC_TLV_SIZE
    if FIXED_SIZE + length > max_header:
        raise IdentityHeaderError(
            "oversized", f"header would be {FIXED_SIZE + length} bytes, over {max_header}"
        )
    signed = (
        SIGNATURE
        + bytes((VERSION_PROXY, family))
        + struct.pack("!H", length)
        + body
        + struct.pack("!BH", TLV_HMAC, MAC_BYTES)
    )
    return signed + _mac(key, signed)


def _check_fixed(head: bytes, max_header: int) -> int | None:
    """Check the first up-to-16 bytes; the total header size once all 16 are there."""
    seen = head[: len(SIGNATURE)]
    if seen != SIGNATURE[: len(seen)]:
        raise IdentityHeaderError("no-header", "stream does not start with a PROXY v2 header")
    if len(head) > 12:
        version, command = head[12] >> 4, head[12] & 0x0F
        if version != 2:
            raise IdentityHeaderError("bad-version", f"PROXY protocol version {version}")
        if command == 0:
            raise IdentityHeaderError("local-command", "LOCAL header carries no identity")
        if command != 1:
            raise IdentityHeaderError("bad-version", f"unknown PROXY v2 command {command}")
    if len(head) > 13 and head[13] not in _ADDRESS_SIZE:
        raise IdentityHeaderError(
            "bad-family", f"family/protocol 0x{head[13]:02x} is not TCP over IPv4 or IPv6"
        )
    if len(head) < FIXED_SIZE:
        return None
    length: int = struct.unpack_from("!H", head, 14)[0]
    total = FIXED_SIZE + length
    if total > max_header:
        raise IdentityHeaderError("oversized", f"header announces {total} bytes, over {max_header}")
    if length < _ADDRESS_SIZE[head[13]] + _MAC_TLV_SIZE:
        raise IdentityHeaderError("malformed", f"header length {length} is too short")
    return total


def _split_tlvs(header: bytes) -> list[tuple[int, bytes]]:
    """The TLVs after the address block, each of which must end inside the header."""
    offset = FIXED_SIZE + _ADDRESS_SIZE[header[13]]
    tlvs: list[tuple[int, bytes]] = []
    while offset < len(header):
        if offset + 3 > len(header):
            raise IdentityHeaderError("malformed", "TLV header runs past the end")
        kind, size = struct.unpack_from("!BH", header, offset)
        if offset + 3 + size > len(header):
            raise IdentityHeaderError("malformed", f"TLV 0x{kind:02x} runs past the end")
        tlvs.append((kind, header[offset + 3 : offset + 3 + size]))
        offset += 3 + size
    return tlvs


def _authenticate(header: bytes, tlvs: list[tuple[int, bytes]], key: bytes) -> None:
    """Check the HMAC TLV, which must close the header, before any value is looked at."""
    if not any(kind == TLV_HMAC for kind, _ in tlvs):
        raise IdentityHeaderError("missing-tlv", "no HMAC TLV (0xef): header is unsigned")
    last_kind, last_value = tlvs[-1]
    if last_kind != TLV_HMAC or len(last_value) != MAC_BYTES:
        raise IdentityHeaderError("malformed", "HMAC TLV must be last and 32 bytes long")
    if not hmac.compare_digest(_mac(key, header[:-MAC_BYTES]), last_value):
        raise IdentityHeaderError("bad-signature", "HMAC does not verify")


def _ssgate_tlvs(tlvs: list[tuple[int, bytes]]) -> dict[int, bytes]:
    """Our TLVs (all but the HMAC) by type: each exactly once, none unknown."""
    ours: dict[int, bytes] = {}
    for kind, value in tlvs[:-1]:
        if kind not in SSGATE_TLV_RANGE:
            continue  # a standard or foreign TLV: signed, but not ours to interpret
        if kind != TLV_HMAC and kind not in _REQUIRED_TLVS:
            raise IdentityHeaderError("unknown-tlv", f"unknown ssgate TLV 0x{kind:02x}")
        if kind in ours or kind == TLV_HMAC:
            raise IdentityHeaderError("duplicate-tlv", f"TLV 0x{kind:02x} appears more than once")
        ours[kind] = value
    for kind in _REQUIRED_TLVS:
        if kind not in ours:
            raise IdentityHeaderError("missing-tlv", f"TLV 0x{kind:02x} is missing")
    return ours


def _parse(header: bytes, key: bytes, now: float, max_age: float, max_skew: float) -> Identity:
    """Verify a complete header whose fixed part :func:`_check_fixed` accepted."""
    tlvs = _split_tlvs(header)
    _authenticate(header, tlvs, key)
    ours = _ssgate_tlvs(tlvs)

    texts: dict[str, str] = {}
    for kind, name in _STRING_TLVS.items():
        raw = ours[kind]
        if _TEXT.fullmatch(raw) is None or len(raw) > FIELD_MAX[name]:
            raise IdentityHeaderError("bad-value", f"TLV 0x{kind:02x} is not a valid {name}")
        texts[name] = raw.decode("ascii")
    if len(ours[TLV_ISSUED_AT]) != 8:
        raise IdentityHeaderError("bad-value", "issue time TLV must be 8 bytes")
    (millis,) = struct.unpack("!Q", ours[TLV_ISSUED_AT])
    if millis > _MAX_MILLIS:
        raise IdentityHeaderError("bad-value", "issue time out of range")
    issued_at = millis / 1000

    if issued_at < now - max_age:
        raise IdentityHeaderError("stale", f"issued {now - issued_at:.3f} s ago, over {max_age}")
    if issued_at > now + max_skew:
        raise IdentityHeaderError(
            "from-future", f"issued {issued_at - now:.3f} s in the future, over {max_skew}"
        )

    family = header[13]
    src, dst, sport, dport = struct.unpack_from(_ADDRESS_FORMAT[family], header, FIXED_SIZE)
    make = ipaddress.IPv4Address if family == FAMILY_TCP4 else ipaddress.IPv6Address
    return Identity(
        account=texts["account"],
        unit_code=texts["unit_code"],
        session_id=texts["session_id"],
        issued_at=issued_at,
        source_host=str(make(src)),
        source_port=sport,
        dest_host=str(make(dst)),
        dest_port=dport,
        nonce=texts["nonce"],
    )


def _check_now(now: float) -> float:
    if not isinstance(now, int | float) or not math.isfinite(now):
        raise ValueError(f"now must be finite epoch seconds (UTC), got {now!r}")
    return float(now)


class IdentityHeaderReader:
    """Sans-IO, incremental reader of one identity header at the start of a stream.

    Feed it the stream's bytes until :meth:`feed` returns ``(identity, rest)``; *rest*
    is the application data that followed the header and belongs to the service.
    Every refusal raises :class:`IdentityHeaderError`, and the reader stays refused.
    It never holds more than *max_header* bytes.  ``repr()`` never shows the key.
    """

    __slots__ = (
        "_buffer",
        "_done",
        "_failure",
        "_key",
        "_total",
        "max_age",
        "max_header",
        "max_skew",
    )

    def __init__(
        self,
        *,
        key: bytes,
        max_age: float = DEFAULT_MAX_AGE,
        max_skew: float = DEFAULT_MAX_SKEW,
        max_header: int = DEFAULT_MAX_HEADER,
    ) -> None:
        self._key = _check_key(key)
        if not isinstance(max_age, int | float) or not (math.isfinite(max_age) and max_age > 0):
            raise ValueError("max_age must be a positive number of seconds")
        if not isinstance(max_skew, int | float) or not (math.isfinite(max_skew) and max_skew >= 0):
            raise ValueError("max_skew must be a non-negative number of seconds")
        self.max_age = float(max_age)
        self.max_skew = float(max_skew)
        self.max_header = _check_max_header(max_header)
        self._buffer = bytearray()
        self._total: int | None = None
        self._failure: IdentityHeaderError | None = None
        self._done = False

    def __repr__(self) -> str:
        return (
            f"IdentityHeaderReader(key=<hidden>, buffered={len(self._buffer)}, "
            f"done={self._done}, failed={self._failure is not None})"
        )

    @property
    def buffered(self) -> int:
        """How many header bytes are held, waiting for the rest (≤ ``max_header``)."""
        return len(self._buffer)

    def feed(self, data: bytes, *, now: float) -> tuple[Identity, bytes] | None:
        """Take the next bytes of the stream.

        Returns None while the header is incomplete, ``(identity, rest)`` once it has
        arrived and verified at *now*; raises :class:`IdentityHeaderError` as soon as
        the bytes cannot be a valid header.  Feeding after success is a bug in the
        caller (the rest belongs to the application) and raises RuntimeError.
        """
        if self._done:
            raise RuntimeError("identity header already read; the rest is application data")
        if self._failure is not None:
            raise IdentityHeaderError(self._failure.reason, "reader already refused this stream")
        now = _check_now(now)
        try:
            return self._feed(bytes(data), now)
        except IdentityHeaderError as e:
            self._failure = e
            self._buffer.clear()
            raise

    def _feed(self, data: bytes, now: float) -> tuple[Identity, bytes] | None:
        position = 0
        while True:
            want = (FIXED_SIZE if self._total is None else self._total) - len(self._buffer)
            chunk = data[position : position + want]
            position += len(chunk)
            self._buffer += chunk
            if self._total is None:
                self._total = _check_fixed(bytes(self._buffer), self.max_header)
                if self._total is None:
                    return None
                continue  # the length is known: take the rest of the header
            if len(self._buffer) < self._total:
                return None
            header = bytes(self._buffer)
            self._buffer.clear()
            identity = _parse(header, self._key, now, self.max_age, self.max_skew)
            self._done = True
            return identity, data[position:]


def verify_assertion(
    data: bytes,
    *,
    key: bytes,
    now: float,
    max_age: float = DEFAULT_MAX_AGE,
    max_skew: float = DEFAULT_MAX_SKEW,
    max_header: int = DEFAULT_MAX_HEADER,
) -> Identity:
    """The identity in *data*, which must be exactly one complete header.

    Raises :class:`IdentityHeaderError`: ``truncated`` for too few bytes, ``malformed``
    for bytes after the header, and every reason :class:`IdentityHeaderReader` has.
    """
    reader = IdentityHeaderReader(
        key=key, max_age=max_age, max_skew=max_skew, max_header=max_header
    )
    result = reader.feed(data, now=now)
    if result is None:
        raise IdentityHeaderError("truncated", f"only {len(data)} bytes of a header")
    identity, rest = result
    if rest:
        raise IdentityHeaderError("malformed", f"{len(rest)} bytes after the header")
    return identity
