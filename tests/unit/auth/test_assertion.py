"""The signed identity assertion: a PROXY v2 header with ssgate TLVs and an HMAC.

Headers are also built here from the wire format in the module docstring, not through
the encoder, so a test that signs a hand-made header pins the HMAC definition too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import itertools
import struct
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.protocols.haproxy._v2parser import V2Parser

from auth._assertion import (
    DEFAULT_MAX_HEADER,
    REASONS,
    Identity,
    IdentityHeaderError,
    IdentityHeaderReader,
    encode_assertion,
    new_nonce,
    verify_assertion,
)

KEY = bytes(range(32, 80))  # 48 bytes
OTHER_KEY = bytes(48)
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

V4 = Identity(
    account="33068212345678@sxlss",
    unit_code="12345678",
    session_id="s-7f3a9c0e11d24b6f",
    issued_at=NOW - 0.25,
    source_host="203.0.113.7",
    source_port=50123,
    dest_host="198.51.100.1",
    dest_port=8443,
    nonce="7f3a9c0e11d24b6f.stream-3",
)
V6 = replace(
    V4,
    source_host="2001:db8::7",
    dest_host="2001:db8:1::1",
    source_port=1,
    dest_port=65535,
    issued_at=NOW + 1.123,
)


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def ours(
    account: bytes = b"33068212345678@sxlss",
    unit: bytes = b"12345678",
    session: bytes = b"s-1",
    issued_ms: int = int(NOW * 1000),
    nonce: bytes = b"n-1",
) -> list[tuple[int, bytes]]:
    return [
        (0xE0, account),
        (0xE1, unit),
        (0xE2, session),
        (0xE3, struct.pack("!Q", issued_ms)),
        (0xE4, nonce),
    ]


def build(
    tlvs: list[tuple[int, bytes]],
    *,
    key: bytes | None = KEY,
    after_mac: bytes = b"",
    command: int = 0x21,
    family: int = 0x11,
) -> bytes:
    """A header made straight from the documented format; *key* None leaves it unsigned."""
    addresses = ipaddress.IPv4Address("203.0.113.7").packed
    addresses += ipaddress.IPv4Address("198.51.100.1").packed + struct.pack("!HH", 50123, 8443)
    body = addresses + b"".join(tlv(k, v) for k, v in tlvs)
    mac_size = 35 if key is not None else 0
    length = len(body) + mac_size + len(after_mac)
    signed = SIGNATURE + bytes((command, family)) + struct.pack("!H", length) + body
    if key is None:
        return signed + after_mac
    signed += b"\xef\x00\x20"
    mac = hmac.new(key, b"ssgate-identity-v1\x00" + signed, hashlib.sha256).digest()
    return signed + mac + after_mac


def refused(data: bytes, *, key: bytes = KEY, now: float = NOW, **kw: float) -> str:
    with pytest.raises(IdentityHeaderError) as info:
        verify_assertion(data, key=key, now=now, **kw)  # type: ignore[arg-type]
    reason = info.value.reason
    assert reason in REASONS
    assert KEY.hex() not in str(info.value)
    assert repr(KEY) not in str(info.value)
    return reason


# -- round trips and the wire format -------------------------------------------------


@pytest.mark.parametrize("identity", [V4, V6], ids=["ipv4", "ipv6"])
def test_an_encoded_identity_reads_back_identically(identity: Identity) -> None:
    header = encode_assertion(identity, key=KEY)
    assert verify_assertion(header, key=KEY, now=NOW) == identity
    reader = IdentityHeaderReader(key=KEY)
    assert reader.feed(header, now=NOW) == (identity, b"")


@pytest.mark.parametrize(
    ("identity", "family", "addresses"),
    [
        (V4, 0x11, bytes([203, 0, 113, 7, 198, 51, 100, 1]) + struct.pack("!HH", 50123, 8443)),
        (
            V6,
            0x21,
            ipaddress.IPv6Address("2001:db8::7").packed
            + ipaddress.IPv6Address("2001:db8:1::1").packed
            + struct.pack("!HH", 1, 65535),
        ),
    ],
    ids=["ipv4", "ipv6"],
)
def test_the_header_is_byte_exact_proxy_v2_with_the_documented_tlvs_and_hmac(
    identity: Identity, family: int, addresses: bytes
) -> None:
    header = encode_assertion(identity, key=KEY)
    assert header[:12] == SIGNATURE
    assert header[12] == 0x21  # version 2, PROXY
    assert header[13] == family  # TCP over IPv4 / IPv6
    assert struct.unpack("!H", header[14:16])[0] == len(header) - 16
    assert header[16 : 16 + len(addresses)] == addresses
    # Walk the TLVs as the spec defines them (type, 2-byte BE length, value).
    tlvs, offset = [], 16 + len(addresses)
    while offset < len(header):
        kind, size = struct.unpack_from("!BH", header, offset)
        tlvs.append((kind, header[offset + 3 : offset + 3 + size]))
        offset += 3 + size
    assert offset == len(header)
    issued_ms = round(identity.issued_at * 1000)
    assert tlvs == [
        (0xE0, identity.account.encode()),
        (0xE1, identity.unit_code.encode()),
        (0xE2, identity.session_id.encode()),
        (0xE3, issued_ms.to_bytes(8, "big")),
        (0xE4, identity.nonce.encode()),
        (0xEF, hmac.new(KEY, b"ssgate-identity-v1\x00" + header[:-32], hashlib.sha256).digest()),
    ]


def test_twisted_haproxy_v2_parser_reads_the_addresses_of_the_whole_header() -> None:
    for identity, cls in ((V4, IPv4Address), (V6, IPv6Address)):
        header = encode_assertion(identity, key=KEY)
        info = V2Parser.parse(header)
        assert isinstance(info.source, cls)
        assert isinstance(info.destination, cls)
        # Twisted spells IPv6 uncompressed; compare the addresses, not the text.
        source = (ipaddress.ip_address(info.source.host), info.source.port)
        dest = (ipaddress.ip_address(info.destination.host), info.destination.port)
        assert source == (ipaddress.ip_address(identity.source_host), identity.source_port)
        assert dest == (ipaddress.ip_address(identity.dest_host), identity.dest_port)
        parsed, rest = V2Parser().feed(header + b"GET / HTTP/1.1\r\n")
        assert parsed is not None
        assert parsed.source == info.source
        assert rest == b"GET / HTTP/1.1\r\n"


def test_the_issue_time_travels_as_eight_byte_big_endian_milliseconds() -> None:
    header = encode_assertion(replace(V4, issued_at=NOW + 0.0004), key=KEY)
    marker = b"\xe3\x00\x08" + int(NOW * 1000).to_bytes(8, "big")
    assert marker in header  # rounded to the millisecond
    assert verify_assertion(header, key=KEY, now=NOW).issued_at == NOW


def test_foreign_standard_tlvs_go_first_are_signed_and_otherwise_ignored() -> None:
    header = encode_assertion(V4, key=KEY, extra_tlvs=[(0x01, b"h2"), (0x02, b"declare.local")])
    assert header[28:33] == b"\x01\x00\x02h2"
    assert verify_assertion(header, key=KEY, now=NOW) == V4
    tampered = header.replace(b"declare.local", b"declare.evil!")
    assert refused(tampered) == "bad-signature"
    # A foreign TLV between ours (as another encoder may place it) is ignored too.
    mixed = ours()
    mixed.insert(2, (0x05, b"unique-id"))
    mixed.insert(4, (0xF0, b"experimental"))
    assert verify_assertion(build(mixed), key=KEY, now=NOW).session_id == "s-1"


def test_each_header_is_unique_through_its_nonce() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 32 for n in nonces)
    a, b = (encode_assertion(replace(V4, nonce=n), key=KEY) for n in sorted(nonces)[:2])
    assert a != b
    assert verify_assertion(a, key=KEY, now=NOW).nonce == sorted(nonces)[0]


# -- incremental reading -------------------------------------------------------------


@pytest.mark.parametrize("identity", [V4, V6], ids=["ipv4", "ipv6"])
def test_fed_byte_by_byte_the_reader_gives_the_same_identity_and_the_rest(
    identity: Identity,
) -> None:
    header = encode_assertion(identity, key=KEY)
    app = b"POST /api/declarations HTTP/1.1\r\n\r\n"
    stream = header + app
    reader = IdentityHeaderReader(key=KEY)
    for i in range(len(header) - 1):
        assert reader.feed(stream[i : i + 1], now=NOW) is None
        assert reader.buffered == i + 1
    # The last header byte arrives together with the application's first bytes.
    assert reader.feed(stream[len(header) - 1 :], now=NOW) == (identity, app)
    assert reader.buffered == 0


def test_application_bytes_in_the_same_chunk_are_returned_intact_and_never_buffered() -> None:
    header = encode_assertion(V4, key=KEY)
    app = bytes(range(256)) * 4096  # 1 MiB that must not pass through the header buffer
    reader = IdentityHeaderReader(key=KEY)
    assert reader.feed(header[:20], now=NOW) is None
    result = reader.feed(header[20:] + app, now=NOW)
    assert result == (V4, app)


def test_after_the_header_the_reader_refuses_more_bytes_as_a_caller_bug() -> None:
    reader = IdentityHeaderReader(key=KEY)
    assert reader.feed(encode_assertion(V4, key=KEY), now=NOW) is not None
    with pytest.raises(RuntimeError):
        reader.feed(b"more", now=NOW)


def test_a_refused_stream_stays_refused_with_the_same_reason() -> None:
    reader = IdentityHeaderReader(key=KEY)
    with pytest.raises(IdentityHeaderError):
        reader.feed(b"GET ", now=NOW)
    with pytest.raises(IdentityHeaderError) as info:
        reader.feed(encode_assertion(V4, key=KEY), now=NOW)
    assert info.value.reason == "no-header"
    assert reader.buffered == 0


# -- refusals ------------------------------------------------------------------------


def test_plain_http_is_refused_as_no_header_at_its_first_byte() -> None:
    reader = IdentityHeaderReader(key=KEY)
    with pytest.raises(IdentityHeaderError) as info:
        reader.feed(b"G", now=NOW)
    assert info.value.reason == "no-header"
    assert refused(b"GET / HTTP/1.1\r\nHost: declare\r\n\r\n") == "no-header"


@pytest.mark.parametrize("position", range(12))
def test_a_wrong_signature_byte_is_refused_as_soon_as_it_arrives(position: int) -> None:
    reader = IdentityHeaderReader(key=KEY)
    assert reader.feed(SIGNATURE[:position], now=NOW) is None
    with pytest.raises(IdentityHeaderError) as info:
        reader.feed(bytes([SIGNATURE[position] ^ 0x40]), now=NOW)
    assert info.value.reason == "no-header"


@pytest.mark.parametrize(
    ("fixed", "reason"),
    [
        (b"\x20", "local-command"),  # version 2, LOCAL
        (b"\x11", "bad-version"),  # version 1
        (b"\x22", "bad-version"),  # version 2, command 2 (undefined)
        (b"\x21\x12", "bad-family"),  # UDP over IPv4
        (b"\x21\x31", "bad-family"),  # UNIX stream
        (b"\x21\x00", "bad-family"),  # UNSPEC
    ],
)
def test_local_other_versions_and_non_tcp_families_are_refused_at_that_byte(
    fixed: bytes, reason: str
) -> None:
    reader = IdentityHeaderReader(key=KEY)
    with pytest.raises(IdentityHeaderError) as info:
        reader.feed(SIGNATURE + fixed, now=NOW)
    assert info.value.reason == reason


def test_a_complete_local_header_is_refused() -> None:
    assert refused(build(ours(), command=0x20)) == "local-command"


def test_an_oversized_length_field_is_refused_before_any_of_it_is_buffered() -> None:
    reader = IdentityHeaderReader(key=KEY)
    with pytest.raises(IdentityHeaderError) as info:
        reader.feed(SIGNATURE + b"\x21\x11\xff\xff", now=NOW)
    assert info.value.reason == "oversized"
    assert reader.buffered == 0
    # The limit counts the whole header: one byte over max_header is too much.
    header = encode_assertion(V4, key=KEY)
    assert refused(header, max_header=len(header) - 1) == "oversized"
    assert verify_assertion(header, key=KEY, now=NOW, max_header=len(header)) == V4


def test_a_length_too_short_for_addresses_and_an_hmac_is_malformed() -> None:
    assert refused(SIGNATURE + b"\x21\x11\x00\x2e" + bytes(46)) == "malformed"


def test_a_wrong_key_is_a_bad_signature() -> None:
    assert refused(encode_assertion(V4, key=OTHER_KEY)) == "bad-signature"


def test_stale_and_future_headers_are_refused_and_the_bounds_are_inclusive() -> None:
    header = encode_assertion(replace(V4, issued_at=NOW), key=KEY)
    assert verify_assertion(header, key=KEY, now=NOW + 30.0) == replace(V4, issued_at=NOW)
    assert refused(header, now=NOW + 30.001) == "stale"
    assert refused(header, now=NOW + 10, max_age=9.5) == "stale"
    assert verify_assertion(header, key=KEY, now=NOW - 5.0).issued_at == NOW
    assert refused(header, now=NOW - 5.001) == "from-future"
    assert refused(header, now=NOW - 1, max_skew=0.5) == "from-future"


def test_a_header_without_the_hmac_tlv_is_refused_as_unsigned() -> None:
    assert refused(build(ours(), key=None)) == "missing-tlv"


@pytest.mark.parametrize("missing", [0xE0, 0xE1, 0xE2, 0xE3, 0xE4])
def test_a_signed_header_missing_an_ssgate_tlv_is_refused(missing: int) -> None:
    tlvs = [(k, v) for k, v in ours() if k != missing]
    assert refused(build(tlvs)) == "missing-tlv"


@pytest.mark.parametrize("kind", [0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xEF])
def test_a_signed_header_with_a_duplicated_tlv_is_refused(kind: int) -> None:
    tlvs = ours()
    tlvs.append((kind, b"x" * 32 if kind == 0xEF else dict(ours())[kind]))
    assert refused(build(tlvs)) == "duplicate-tlv"


def test_a_signed_header_with_an_unknown_ssgate_tlv_is_refused() -> None:
    assert refused(build([*ours(), (0xE5, b"admin")])) == "unknown-tlv"


@pytest.mark.parametrize(
    ("tlvs", "reason"),
    [
        pytest.param(ours(account="账户@sxlss".encode()), "bad-value", id="utf8-account"),
        pytest.param(ours(account=b"\xff\xfe"), "bad-value", id="non-utf8"),
        pytest.param(ours(unit=b""), "bad-value", id="empty"),
        pytest.param(ours(session=b"has space"), "bad-value", id="space"),
        pytest.param(ours(nonce=b"tab\t"), "bad-value", id="control"),
        pytest.param(ours(unit=b"1" * 65), "bad-value", id="too-long"),
        pytest.param([*ours()[:3], (0xE3, bytes(7)), ours()[4]], "bad-value", id="short-time"),
        pytest.param([*ours()[:3], (0xE3, bytes(9)), ours()[4]], "bad-value", id="long-time"),
        pytest.param(ours(issued_ms=2**64 - 1), "bad-value", id="time-over-2**63"),
        # An ASCII-decimal time is not the format: read as milliseconds it is far off.
        pytest.param([*ours()[:3], (0xE3, b"17672256"), ours()[4]], "from-future", id="ascii-time"),
        pytest.param(ours(issued_ms=0), "stale", id="epoch"),
    ],
)
def test_a_signed_header_with_a_value_outside_its_rules_is_refused(
    tlvs: list[tuple[int, bytes]], reason: str
) -> None:
    assert refused(build(tlvs)) == reason


def test_nothing_may_follow_the_hmac_tlv() -> None:
    assert refused(build(ours(), after_mac=tlv(0x04, b""))) == "malformed"
    assert refused(build(ours(), after_mac=b"\x00")) == "malformed"


def test_a_tlv_running_past_the_announced_length_is_malformed() -> None:
    header = build(ours(), key=None) + b"\xef\x00\x40" + bytes(32)
    assert refused(header[:14] + struct.pack("!H", len(header) - 16) + header[16:]) == "malformed"


def test_truncated_headers_wait_in_the_reader_and_are_refused_whole() -> None:
    header = encode_assertion(V4, key=KEY)
    for cut in (0, 5, 15, 16, len(header) - 1):
        assert refused(header[:cut]) == "truncated"
        assert IdentityHeaderReader(key=KEY).feed(header[:cut], now=NOW) is None
    assert refused(header + b"x") == "malformed"  # verify_assertion wants one header exactly


def test_parts_of_two_valid_headers_cannot_be_spliced_together() -> None:
    mine = encode_assertion(V4, key=KEY)
    theirs = encode_assertion(
        replace(V4, unit_code="87654321", account="1@x", source_host="192.0.2.66"), key=KEY
    )
    # Their identity with my (valid) MAC, and my identity at their address.
    assert refused(theirs[:-32] + mine[-32:]) == "bad-signature"
    assert refused(mine[:16] + theirs[16:28] + mine[28:]) == "bad-signature"


@given(data=st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_single_flipped_bit_is_refused_with_the_reason_for_its_place(
    data: st.DataObject,
) -> None:
    identity = data.draw(st.sampled_from([V4, V6]))
    header = encode_assertion(identity, key=KEY)
    position = data.draw(st.integers(0, len(header) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = bytearray(header)
    tampered[position] ^= 1 << bit
    reason = refused(bytes(tampered))

    address_end = 16 + (12 if identity is V4 else 36)
    tlv_heads, offset = set(), address_end
    while offset < len(header):
        tlv_heads |= {offset, offset + 1, offset + 2}
        offset += 3 + struct.unpack_from("!H", header, offset + 1)[0]
    if position < 12:
        assert reason == "no-header"
    elif position == 12:
        assert reason in {"bad-version", "local-command"}
    elif position == 13:
        assert reason == "bad-family"
    elif position in (14, 15):
        assert reason in {"oversized", "truncated", "malformed", "missing-tlv", "bad-signature"}
    elif position in tlv_heads:
        assert reason in {"malformed", "missing-tlv", "bad-signature"}
    else:  # addresses, ports, TLV values and the MAC itself
        assert reason == "bad-signature"


# -- boundedness under arbitrary input -----------------------------------------------

_PREFIXES = st.sampled_from(
    [b"", SIGNATURE, SIGNATURE + b"\x21\x11", SIGNATURE + b"\x21\x21", SIGNATURE + b"\x21\x11\x03"]
)


@given(
    prefix=_PREFIXES,
    tail=st.binary(max_size=2048),
    cuts=st.lists(st.integers(0, 2100), max_size=8),
    max_header=st.sampled_from([128, 300, DEFAULT_MAX_HEADER]),
)
@settings(max_examples=400)
def test_arbitrary_bytes_raise_only_identity_header_errors_and_stay_within_max_header(
    prefix: bytes, tail: bytes, cuts: list[int], max_header: int
) -> None:
    stream = prefix + tail
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    reader = IdentityHeaderReader(key=KEY, max_header=max_header)
    try:
        for start, end in itertools.pairwise(bounds):
            result = reader.feed(stream[start:end], now=NOW)
            assert reader.buffered <= max_header
            if result is not None:  # an accidental valid header: impossible without the key
                pytest.fail("random bytes verified")
    except IdentityHeaderError as e:
        assert e.reason in REASONS
    assert reader.buffered <= max_header


@given(junk=st.binary(max_size=600))
def test_signed_headers_with_arbitrary_tlv_areas_raise_only_identity_header_errors(
    junk: bytes,
) -> None:
    """Even content the key vouches for cannot make the reader fail any other way."""
    header = build([(0x04, b"")], key=None) + junk
    length = len(header) - 16 + 35
    signed = header[:14] + struct.pack("!H", length) + header[16:] + b"\xef\x00\x20"
    signed += hmac.new(KEY, b"ssgate-identity-v1\x00" + signed, hashlib.sha256).digest()
    try:
        verify_assertion(signed, key=KEY, now=NOW)
    except IdentityHeaderError as e:
        assert e.reason in REASONS


# -- writing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"account": ""},
        {"account": "账户@sxlss"},
        {"account": "a b"},
        {"account": "a" * 256},
        {"unit_code": "1" * 65},
        {"session_id": "s\n"},
        {"nonce": "n" * 129},
        {"source_host": "example.org"},
        {"source_host": "fe80::1%eth0", "dest_host": "fe80::2"},
        {"dest_host": "2001:db8::1"},  # IPv4 source, IPv6 destination
        {"source_port": 65536},
        {"dest_port": -1},
        {"issued_at": float("nan")},
        {"issued_at": -1.0},
    ],
)
def test_encoding_refuses_a_field_outside_its_rules(change: dict[str, object]) -> None:
    with pytest.raises(IdentityHeaderError) as info:
        encode_assertion(replace(V4, **change), key=KEY)  # type: ignore[arg-type]
    assert info.value.reason == "invalid-identity"


def test_the_largest_identity_fits_the_default_header_limit() -> None:
    biggest = replace(
        V6, account="a" * 255, unit_code="u" * 64, session_id="s" * 128, nonce="n" * 128
    )
    header = encode_assertion(biggest, key=KEY)
    assert len(header) <= DEFAULT_MAX_HEADER
    assert verify_assertion(header, key=KEY, now=NOW) == biggest


def test_encoding_refuses_ssgate_types_as_extra_tlvs_and_headers_over_the_limit() -> None:
    with pytest.raises(IdentityHeaderError) as info:
        encode_assertion(V4, key=KEY, extra_tlvs=[(0xE0, b"admin")])
    assert info.value.reason == "invalid-identity"
    with pytest.raises(IdentityHeaderError) as info:
        encode_assertion(V4, key=KEY, extra_tlvs=[(0x02, b"x" * 1000)])
    assert info.value.reason == "oversized"


def test_keys_shorter_than_32_bytes_are_refused_and_never_shown() -> None:
    for bad in (b"", b"k" * 31):
        with pytest.raises(ValueError, match="at least 32 bytes"):
            encode_assertion(V4, key=bad)
        with pytest.raises(ValueError, match="at least 32 bytes"):
            IdentityHeaderReader(key=bad)
    with pytest.raises(TypeError):
        IdentityHeaderReader(key="k" * 32)  # type: ignore[arg-type]
    reader = IdentityHeaderReader(key=KEY)
    assert KEY.hex() not in repr(reader)
    assert repr(KEY) not in repr(reader)


@pytest.mark.parametrize(
    "options",
    [
        {"max_age": 0},
        {"max_age": float("inf")},
        {"max_skew": -1},
        {"max_skew": float("nan")},
        {"max_header": 127},
        {"max_header": 16 + 65536},
    ],
)
def test_reader_limits_must_be_sane(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        IdentityHeaderReader(key=KEY, **options)  # type: ignore[arg-type]


def test_now_must_be_a_finite_time() -> None:
    with pytest.raises(ValueError):
        IdentityHeaderReader(key=KEY).feed(b"", now=float("nan"))
