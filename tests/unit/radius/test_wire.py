"""The bounded first look at a datagram, and strict PAP decryption; Hypothesis on the
parser and on the whole server: junk and mutated packets are dropped, never raise, and
leave the server answering valid requests with bounded memory."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radius import (
    MAX_ATTRIBUTES,
    MAX_PACKET,
    AccessServer,
    Drop,
    Evaluate,
    MalformedPacket,
    NasClient,
    NasDirectory,
    Send,
    parse_networks,
    scan_request,
)
from radius._wire import decrypt_user_password
from radius.testing import TESTBED_ACCOUNT, TESTBED_SECRET, NasSimulator

NAS = ("127.0.0.1", 40000)


def header(code: int = 1, length: int = 20) -> bytes:
    return struct.pack("!BBH", code, 1, length) + bytes(16)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too-short"),
        (header()[:19], "too-short"),
        (header(length=19), "bad-length"),
        (header(length=21), "bad-length"),
        (header(length=22) + b"\x01\x01", "bad-attribute"),
        (header(length=23) + b"\x01\x05x", "bad-attribute"),
        (header(length=21) + b"\x01", "bad-attribute"),
        (
            header(length=20 + 2 * (MAX_ATTRIBUTES + 1)) + b"\x01\x02" * (MAX_ATTRIBUTES + 1),
            "too-many-attributes",
        ),
        (header(length=20 + 36) + (b"\x50\x12" + bytes(16)) * 2, "bad-message-authenticator"),
        (header(length=20 + 10) + b"\x50\x0a" + bytes(8), "bad-message-authenticator"),
        (header(length=MAX_PACKET) + bytes(MAX_PACKET - 19), "too-long"),
    ],
)
def test_malformed_datagrams_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket) as e:
        scan_request(data)
    assert e.value.reason == reason


def test_octets_after_the_length_are_padding() -> None:
    scanned = scan_request(header(length=23) + b"\x01\x03xPADDING")
    assert scanned.attributes == ((1, b"x"),)
    assert scanned.packet == header(length=23) + b"\x01\x03x"


@given(st.binary(max_size=MAX_PACKET + 10))
def test_the_scanner_only_ever_raises_malformed_packet(data: bytes) -> None:
    try:
        scanned = scan_request(data)
    except MalformedPacket:
        return
    assert len(scanned.attributes) <= MAX_ATTRIBUTES


def test_pap_decryption_refuses_bad_lengths_and_non_text() -> None:
    auth = bytes(range(16))
    assert decrypt_user_password(b"", secret=b"s", authenticator=auth) is None
    assert decrypt_user_password(bytes(15), secret=b"s", authenticator=auth) is None
    assert decrypt_user_password(bytes(144), secret=b"s", authenticator=auth) is None


def _server() -> AccessServer:
    client = NasClient("bras-1", parse_networks(["127.0.0.0/8"]), TESTBED_SECRET)
    return AccessServer(NasDirectory([client]), max_tracked=64, max_challenges=16)


def _valid(nas: NasSimulator, i: int) -> bytes:
    return nas.request(TESTBED_ACCOUNT, f"Password-{i}907153")[1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_random_datagrams_are_dropped_and_valid_requests_still_answered(junk: list[bytes]) -> None:
    srv, nas = _server(), NasSimulator()
    for data in junk:
        step = srv.receive(data, NAS, 1000.0)
        assert isinstance(step, Drop)
    assert isinstance(srv.receive(_valid(nas, 0), NAS, 1000.0), Evaluate)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_packets_never_raise(data: st.DataObject) -> None:
    srv, nas = _server(), NasSimulator()
    packet = bytearray(_valid(nas, 1))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(packet) - 1))
        packet[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(packet)))
    step = srv.receive(bytes(packet[:cut]), NAS, 1000.0)
    assert isinstance(step, Drop | Evaluate | Send)


def test_ten_thousand_mutated_packets_leave_memory_bounded_and_valid_requests_answered() -> None:
    import random

    rng = random.Random(15)
    srv, nas = _server(), NasSimulator()
    seeds = [_valid(nas, i) for i in range(8)]
    now = 1000.0
    for i in range(10_000):
        packet = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        if rng.random() < 0.1:
            packet = bytearray(rng.randbytes(rng.randrange(0, 200)))
        srv.receive(bytes(packet), NAS, now + i / 100)
        assert srv.tracked <= 64 and srv.pending_challenges <= 16
    step = srv.receive(_valid(nas, 99), NAS, now + 200)
    assert isinstance(step, Evaluate)
    assert sum(srv.drops.values()) >= 9_000


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_accounting_reports_never_raise(data: st.DataObject) -> None:
    from radius import AccountingServer, Drop, Record

    client = NasClient("bras-1", parse_networks(["127.0.0.0/8"]), TESTBED_SECRET)
    srv = AccountingServer(NasDirectory([client]), max_tracked=64)
    packet = bytearray(NasSimulator().accounting(2, session_class="ab" * 16, terminate_cause=1)[1])
    for _ in range(data.draw(st.integers(0, 6))):
        packet[data.draw(st.integers(0, len(packet) - 1))] = data.draw(st.integers(0, 255))
    step = srv.receive(bytes(packet[: data.draw(st.integers(0, len(packet)))]), NAS, 1000.0)
    assert isinstance(step, Drop | Record)
