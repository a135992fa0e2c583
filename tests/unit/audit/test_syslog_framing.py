"""RFC 6587 octet counting: what frame() writes the decoder reads back whole, however
the stream is cut; the decoder's buffer is bounded and a malformed length breaks it
for good (an octet-counted stream cannot be resynchronised)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import FramingError, OctetCountingDecoder, frame_octet_counted


def test_a_frame_is_the_byte_length_a_space_and_the_message() -> None:
    assert frame_octet_counted("<110>1 é".encode()) == b"9 <110>1 \xc3\xa9"  # 9 bytes, 8 characters


@given(
    messages=st.lists(st.binary(min_size=1, max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=30),
)
def test_messages_come_back_whole_and_in_order_however_the_stream_is_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame_octet_counted(m) for m in messages)
    decoder = OctetCountingDecoder(max_message=300)
    got: list[bytes] = []
    start = 0
    for cut in [*sorted({c for c in cuts if c < len(stream)}), len(stream)]:
        got += decoder.feed(stream[start:cut])
        start = cut
    assert got == messages
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    "stream",
    [b"abc 12", b"012 x", b" 5 hello", b"12345678", b"-1 x"],
    ids=["letters", "leading-zero", "no-digits", "no-space-in-time", "negative"],
)
def test_a_malformed_length_is_refused(stream: bytes) -> None:
    decoder = OctetCountingDecoder(max_message=1000)
    with pytest.raises(FramingError):
        decoder.feed(stream)
    with pytest.raises(FramingError):  # and stays refused
        decoder.feed(b"3 abc")


def test_a_message_longer_than_the_limit_is_refused_before_it_is_buffered() -> None:
    decoder = OctetCountingDecoder(max_message=100)
    with pytest.raises(FramingError, match="101 bytes exceeds the limit of 100"):
        decoder.feed(b"101 ")
    assert decoder.buffered == 0


def test_the_buffer_never_holds_more_than_one_message_and_its_length() -> None:
    decoder = OctetCountingDecoder(max_message=100)
    assert decoder.feed(b"100 " + b"x" * 99) == []
    assert decoder.buffered == 99
    assert decoder.feed(b"x2 ab") == [b"x" * 100, b"ab"]
