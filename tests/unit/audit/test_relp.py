"""RELP, client side: frames encode and parse back however the stream is cut; the
session opens, sends within the window, and reports acknowledgement of a contiguous
prefix only; a refusal, a serverclose or a malformed frame ends it; buffers are
bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import (
    RelpAcknowledged,
    RelpClient,
    RelpError,
    RelpFrame,
    RelpFrameParser,
    RelpOpened,
)

OK_OPEN = RelpFrame(1, "rsp", b"200 OK\nrelp_version=0\nrelp_software=x\ncommands=syslog").encode()


def test_a_frame_is_txnr_command_length_data_and_a_line_feed() -> None:
    assert RelpFrame(7, "syslog", b"<110>1 x").encode() == b"7 syslog 8 <110>1 x\n"
    assert RelpFrame(9, "close").encode() == b"9 close 0\n"


@given(
    frames=st.lists(
        st.builds(
            RelpFrame,
            st.integers(min_value=0, max_value=999_999_999),
            st.sampled_from(["rsp", "syslog", "open", "close", "serverclose"]),
            st.binary(max_size=200),
        ),
        max_size=10,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
)
def test_frames_parse_back_however_the_stream_is_cut(
    frames: list[RelpFrame], cuts: list[int]
) -> None:
    stream = b"".join(f.encode() for f in frames)
    parser = RelpFrameParser(max_data=200)
    got: list[RelpFrame] = []
    start = 0
    for cut in [*sorted({c for c in cuts if c < len(stream)}), len(stream)]:
        got += parser.feed(stream[start:cut])
        start = cut
    assert got == frames
    assert parser.buffered == 0


@pytest.mark.parametrize(
    "stream",
    [b"x rsp 0\n", b"1 rsp 3 abcd\n", b"1 rsp 0 \n", b"1 r5p 0\n", b"1" * 12],
    ids=["letters-txnr", "no-trailer", "space-after-zero", "digit-in-command", "long-txnr"],
)
def test_a_malformed_frame_is_refused(stream: bytes) -> None:
    with pytest.raises(RelpError):
        RelpFrameParser().feed(stream)


def test_a_frame_over_the_limit_is_refused_before_its_data_is_buffered() -> None:
    with pytest.raises(RelpError, match="exceeds the limit of 100"):
        RelpFrameParser(max_data=100).feed(b"1 rsp 101 ")


def test_the_session_opens_sends_within_the_window_and_acknowledges_a_prefix() -> None:
    client = RelpClient(window=3)
    assert client.open().startswith(b"1 open ")
    assert client.capacity == 0  # nothing before the server accepts
    with pytest.raises(RelpError, match="not open"):
        client.send(1, b"m")
    assert client.receive(OK_OPEN) == [RelpOpened()]
    assert client.capacity == 3
    assert client.send(10, b"a") == b"2 syslog 1 a\n"
    client.send(11, b"b")
    client.send(12, b"c")
    assert client.capacity == 0
    with pytest.raises(RelpError, match="window full"):
        client.send(13, b"d")
    assert client.receive(b"3 rsp 6 200 OK\n") == []  # 11 before 10: not a prefix yet
    assert client.receive(b"2 rsp 6 200 OK\n4 rsp 6 200 OK\n") == [
        RelpAcknowledged(11),
        RelpAcknowledged(12),
    ]
    assert client.capacity == 3


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (RelpFrame(2, "rsp", b"500 not accepted").encode(), "refused transaction 2: 500 not"),
        (b"0 serverclose 0\n", "closed the session"),
        (b"9 rsp 6 200 OK\n", "unknown transaction 9"),
        (b"2 syslog 1 x\n", "unexpected RELP command 'syslog'"),
    ],
)
def test_what_ends_a_session(answer: bytes, message: str) -> None:
    client = RelpClient()
    client.open()
    client.receive(OK_OPEN)
    client.send(1, b"m")
    with pytest.raises(RelpError, match=message):
        client.receive(answer)


def test_a_refused_open_ends_the_session() -> None:
    client = RelpClient()
    client.open()
    with pytest.raises(RelpError, match="refused transaction 1"):
        client.receive(RelpFrame(1, "rsp", b"500 unsupported").encode())
