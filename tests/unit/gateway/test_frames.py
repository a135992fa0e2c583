"""Tunnel frames: every message round-trips, and the parser is bounded and strict."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._frames import (
    DEFAULT_MAX_PAYLOAD,
    HEADER_SIZE,
    MAGIC,
    MAX_WINDOW,
    Auth,
    AuthFail,
    AuthOk,
    Data,
    Fin,
    Frame,
    FrameParser,
    FrameType,
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
)
from gateway._reasons import ProtocolError, Reason


def utf8(max_bytes: int) -> st.SearchStrategy[str]:
    return st.text(max_size=max_bytes).filter(lambda s: len(s.encode()) <= max_bytes)


stream_ids = st.integers(1, 2**32 - 1)
reasons = st.sampled_from(list(Reason))
u32 = st.integers(0, 2**32 - 1)
eight = st.binary(min_size=8, max_size=8)
tokens = st.binary(min_size=1, max_size=255)
services = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)


@st.composite
def hellos(draw: st.DrawFn) -> Hello:
    low = draw(st.integers(1, 0xFFFF))
    return Hello(
        low,
        draw(st.integers(low, 0xFFFF)),
        draw(utf8(64)),
        draw(st.integers(16384, 16 * 1024 * 1024)),
        draw(st.integers(16384, MAX_WINDOW)),
    )


frames: st.SearchStrategy[Frame] = st.one_of(
    hellos(),
    st.builds(
        HelloOk,
        st.integers(1, 0xFFFF),
        utf8(64),
        st.integers(16384, 16 * 1024 * 1024),
        st.integers(16384, MAX_WINDOW),
        st.integers(1, 0xFFFF),
    ),
    st.builds(Auth, utf8(128), utf8(4096), utf8(16)),
    st.builds(AuthOk, utf8(64).filter(bool), utf8(128), utf8(32), tokens, u32, u32),
    st.builds(AuthFail, reasons, st.integers(0, 255)),
    st.builds(Resume, tokens),
    st.builds(Move, tokens, u32),
    st.builds(Ping, eight),
    st.builds(Pong, eight),
    st.builds(GoAway, reasons, utf8(1024)),
    st.builds(Open, stream_ids, services),
    st.builds(OpenOk, stream_ids),
    st.builds(OpenFail, stream_ids, reasons),
    st.builds(Data, stream_ids, st.binary(max_size=2000)),
    st.builds(WindowUpdate, stream_ids, st.integers(1, MAX_WINDOW)),
    st.builds(Fin, stream_ids),
    st.builds(Reset, stream_ids, reasons),
)


def header(ftype: int, stream_id: int, length: int, flags: int = 0) -> bytes:
    return struct.pack(">BBII", ftype, flags, stream_id, length)


def refused(data: bytes, reason: Reason = Reason.PROTOCOL_ERROR) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        FrameParser().feed(data)
    assert info.value.reason is reason
    return info.value


# -- round trips --------------------------------------------------------------------------


@given(frames)
def test_every_frame_type_round_trips_through_encode_and_parse(frame: Frame) -> None:
    wire = encode(frame)
    ftype, flags, stream_id, length = struct.unpack_from(">BBII", wire)
    assert (ftype, flags, stream_id, length) == (frame.TYPE, 0, frame.stream_id, len(wire) - 10)
    parser = FrameParser()
    assert parser.feed(wire) == [frame]
    assert parser.buffered == 0


@given(st.lists(frames, max_size=12), st.lists(st.integers(0, 100_000), max_size=30))
def test_a_stream_split_at_any_points_gives_the_same_frames(
    sent: list[Frame], cuts: list[int]
) -> None:
    wire = b"".join(encode(f) for f in sent)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    parser = FrameParser()
    got: list[Frame] = []
    for start, stop in itertools.pairwise(points):
        got += parser.feed(wire[start:stop])
        assert parser.buffered <= HEADER_SIZE + parser.max_payload
    assert got == sent
    assert parser.buffered == 0


def test_every_frame_type_is_covered_by_the_strategy() -> None:
    seen: set[FrameType] = set()

    @settings(max_examples=400)
    @given(frames)
    def collect(frame: Frame) -> None:
        seen.add(frame.TYPE)

    collect()
    assert seen == set(FrameType)


def test_a_data_header_plus_its_payload_is_the_encoded_data_frame() -> None:
    payload = b"x" * 1000
    assert encode_data_header(7, len(payload)) + payload == encode(Data(7, payload))


def test_strings_at_their_maximum_length_round_trip() -> None:
    frame = Auth("a" * 128, "密" * 1365 + "x", "9" * 16)  # 4096 bytes of UTF-8
    assert FrameParser().feed(encode(frame)) == [frame]
    goaway = GoAway(Reason.OFFICER_KILL, "é" * 512)
    assert FrameParser().feed(encode(goaway)) == [goaway]


def test_bulk_data_parses_whole_when_fed_in_odd_chunks() -> None:
    payloads = [bytes([i]) * DEFAULT_MAX_PAYLOAD for i in range(64)]  # 4 MiB
    wire = b"".join(encode(Data(1, p)) for p in payloads)
    parser = FrameParser()
    got: list[Frame] = []
    for start in range(0, len(wire), 9973):
        got += parser.feed(wire[start : start + 9973])
        assert parser.buffered <= HEADER_SIZE + DEFAULT_MAX_PAYLOAD
    assert got == [Data(1, p) for p in payloads]


def test_many_frames_in_one_chunk_all_come_out_in_order() -> None:
    sent = [Data(i, i.to_bytes(4, "big")) for i in range(1, 20_001)]
    assert FrameParser().feed(b"".join(encode(f) for f in sent)) == sent


# -- hostile input ------------------------------------------------------------------------


@given(st.binary(max_size=3000), st.lists(st.integers(1, 400), max_size=20))
def test_random_bytes_raise_only_protocol_errors_and_stay_bounded(
    data: bytes, sizes: list[int]
) -> None:
    parser = FrameParser(max_payload=1024)
    pos = 0
    try:
        for size in [*sizes, len(data)]:
            parser.feed(data[pos : pos + size])
            pos += size
            assert parser.buffered <= HEADER_SIZE + 1024
    except ProtocolError:
        pass


@given(
    st.lists(frames, min_size=1, max_size=6),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "truncate"]),
            st.integers(0, 10**6),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 500),
)
def test_mutated_valid_streams_raise_only_protocol_errors_and_stay_bounded(
    sent: list[Frame], mutations: list[tuple[str, int, int]], chunk: int
) -> None:
    wire = bytearray(b"".join(encode(f) for f in sent))
    for kind, where, value in mutations:
        i = where % (len(wire) + 1)
        if kind == "flip" and i < len(wire):
            wire[i] ^= value or 1
        elif kind == "insert":
            wire[i:i] = bytes([value])
        elif kind == "delete" and i < len(wire):
            del wire[i]
        elif kind == "truncate":
            del wire[i:]
    parser = FrameParser()
    try:
        for start in range(0, len(wire), chunk):
            for frame in parser.feed(bytes(wire[start : start + chunk])):
                encode(frame)  # whatever parses is a valid frame
            assert parser.buffered <= HEADER_SIZE + DEFAULT_MAX_PAYLOAD
    except ProtocolError:
        pass


def test_an_oversized_length_is_refused_before_any_payload_arrives() -> None:
    parser = FrameParser()
    parser.feed(header(FrameType.DATA, 1, DEFAULT_MAX_PAYLOAD + 1)[:9])  # not yet a header
    with pytest.raises(ProtocolError) as info:
        parser.feed(header(FrameType.DATA, 1, DEFAULT_MAX_PAYLOAD + 1)[9:])
    assert info.value.reason is Reason.FRAME_TOO_LARGE
    assert parser.buffered == 0


def test_a_payload_of_exactly_max_payload_is_accepted() -> None:
    parser = FrameParser(max_payload=20000)
    assert parser.feed(encode(Data(1, b"z" * 20000))) == [Data(1, b"z" * 20000)]
    with pytest.raises(ProtocolError, match="20001"):
        FrameParser(max_payload=20000).feed(header(FrameType.DATA, 1, 20001))


def test_a_parser_that_failed_stays_failed() -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError):
        parser.feed(header(0x7F, 0, 0))
    with pytest.raises(ProtocolError):
        parser.feed(encode(Ping(b"12345678")))


def test_an_unknown_frame_type_is_a_protocol_error() -> None:
    assert "0x7f" in refused(header(0x7F, 0, 0)).message


def test_nonzero_flags_are_a_protocol_error() -> None:
    refused(header(FrameType.FIN, 1, 0, flags=1))


def test_control_frames_need_stream_0_and_stream_frames_need_a_stream() -> None:
    refused(header(FrameType.PING, 1, 8) + b"12345678")
    refused(header(FrameType.FIN, 0, 0))
    refused(header(FrameType.DATA, 0, 1) + b"x")


def test_bad_utf8_is_a_protocol_error_that_does_not_echo_the_bytes() -> None:
    password = b"secret\xff\xfe"
    payload = b"\x01a" + len(password).to_bytes(2, "big") + password + b"\x06123456"
    error = refused(header(FrameType.AUTH, 0, len(payload)) + payload)
    assert "password" in error.message
    assert "secret" not in str(error) and "xff" not in str(error).lower()


def test_trailing_bytes_after_the_last_field_are_a_protocol_error() -> None:
    payload = encode(Fin(3))[10:] + b"\x00"
    refused(header(FrameType.FIN, 3, 1) + payload)
    ping = encode(Ping(b"12345678"))
    refused(header(FrameType.PING, 0, 9) + ping[10:] + b"!")


def test_a_length_prefix_running_past_the_payload_is_a_protocol_error() -> None:
    refused(header(FrameType.OPEN, 1, 3) + b"\x09de")
    refused(header(FrameType.PING, 0, 7) + b"1234567")


def test_hello_with_the_wrong_magic_is_a_protocol_error() -> None:
    good = encode(Hello(1, 1, "c"))
    assert good[10:14] == MAGIC
    assert "magic" in refused(good[:10] + b"HTTP" + good[14:]).message


def test_out_of_range_fields_are_protocol_errors() -> None:
    refused(header(FrameType.WINDOW_UPDATE, 1, 4) + (0).to_bytes(4, "big"))
    refused(header(FrameType.WINDOW_UPDATE, 1, 4) + (2**31).to_bytes(4, "big"))
    bad_service = b"\x07dec lar"
    refused(header(FrameType.OPEN, 1, len(bad_service)) + bad_service)
    small = encode(Hello(1, 1, "c"))
    hello = bytearray(small)
    hello[18:22] = (1024).to_bytes(4, "big")  # max_payload below 16 KiB
    refused(bytes(hello))
    refused(header(FrameType.RESUME, 0, 1) + b"\x00")  # empty token


def test_an_unknown_reason_code_is_a_protocol_error() -> None:
    assert "999" in refused(header(FrameType.RESET, 1, 2) + (999).to_bytes(2, "big")).message


# -- values --------------------------------------------------------------------------


def test_repr_never_shows_passwords_codes_tokens_or_stream_content() -> None:
    shown = " ".join(
        repr(f)
        for f in (
            Auth("33068212345678@sxlss", "hunter2-pass", "654321"),
            Resume(b"resume-secret"),
            AuthOk("sid", "acct", "12345678", b"resume-secret", 0, 0),
            Data(1, b"employee-id-330682"),
        )
    )
    assert "33068212345678@sxlss" in shown
    for secret in ("hunter2-pass", "654321", "resume-secret", "employee-id"):
        assert secret not in shown


@pytest.mark.parametrize(
    "build",
    [
        lambda: Auth("a", "x" * 4097, "1"),
        lambda: Auth("a" * 129, "p", "1"),
        lambda: Auth("a", "p", "1" * 17),
        lambda: Open(1, "no spaces"),
        lambda: Open(1, ""),
        lambda: Open(0, "declare"),
        lambda: Data(2**32, b""),
        lambda: WindowUpdate(1, 0),
        lambda: Ping(b"short"),
        lambda: Resume(b""),
        lambda: Hello(2, 1, "c"),
        lambda: HelloOk(1, "s", max_streams=0),
        lambda: GoAway(Reason.CLIENT_QUIT, "x" * 1025),
        lambda: AuthFail(Reason.AUTH_FAILED, 256),
    ],
)
def test_invalid_frames_cannot_be_built(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError):
        build()


def test_reason_fields_must_be_reasons() -> None:
    with pytest.raises(TypeError):
        Reset(1, 43)  # type: ignore[arg-type]
