"""Protocol version 2: the officer's note in GOAWAY and AUTH_FAIL's retry_after.

Both are sans-IO: the codec (limits, layouts, bad UTF-8), the text clean-up that
makes a peer's words safe on a terminal, and the machines' version rules — a version
1 peer on either side keeps working (docs/protocol.md §5, §11).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._frames import (
    HEADER_SIZE,
    MAX_GOAWAY_MESSAGE_BYTES,
    MAX_NOTE_CHARS,
    RETRY_AFTER_CALL_CARRIER,
    AuthFail,
    FrameParser,
    FrameType,
    GoAway,
    HelloOk,
    ProtocolError,
    encode,
    terminal_text,
)
from gateway._machine import (
    AuthRejected,
    ClientMachine,
    GatewayMachine,
    SessionClosed,
)
from gateway._reasons import Reason

ACCOUNT = "33068212345678@sxlss"


def pump(src: ClientMachine | GatewayMachine, dst: ClientMachine | GatewayMachine) -> list:
    return dst.receive(b"".join(src.data_to_send()))


def raw_frame(ftype: FrameType, payload: bytes) -> bytes:
    return struct.pack(">BBII", ftype, 0, 0, len(payload)) + payload


def logged_in_pair(
    client_versions: tuple[int, int] = (1, 2), gateway_versions: tuple[int, int] = (1, 2)
) -> tuple[ClientMachine, GatewayMachine]:
    client = ClientMachine(versions=client_versions)
    gateway = GatewayMachine(versions=gateway_versions)
    client.authenticate(ACCOUNT, "pw", "123456")
    pump(client, gateway)
    return client, gateway


# -- terminal_text ---------------------------------------------------------------------


def test_terminal_text_turns_escape_sequences_and_line_breaks_into_spaces() -> None:
    assert terminal_text("\x1b[2J\x1b]0;pwned\x07请 联系\n单位\r\n管理员") == (
        "[2J ]0;pwned 请 联系 单位 管理员"
    )


def test_terminal_text_removes_c1_controls_bidi_overrides_and_zero_width_characters() -> None:
    assert terminal_text("a\x9bb\u202ec\u2066d\u200be\u2028f\ufefff\x7f") == "a b c d e f f"


def test_terminal_text_cuts_at_the_limit_with_an_ellipsis() -> None:
    assert terminal_text("安" * 300) == "安" * (MAX_NOTE_CHARS - 1) + "…"
    assert len(terminal_text("x" * 1000, 20)) == 20
    assert terminal_text("short note", 20) == "short note"


@given(st.text(max_size=2000))
def test_terminal_text_never_returns_an_unprintable_character_or_more_than_the_limit(
    text: str,
) -> None:
    out = terminal_text(text)
    assert len(out) <= MAX_NOTE_CHARS
    assert out == out.strip()
    assert all(ch.isprintable() or ch == " " for ch in out)


# -- GOAWAY's message: codec limits ------------------------------------------------------


def test_a_goaway_message_of_1024_bytes_is_encoded_and_parsed_back() -> None:
    frame = GoAway(Reason.OFFICER_KILL, "é" * (MAX_GOAWAY_MESSAGE_BYTES // 2))
    assert FrameParser().feed(encode(frame)) == [frame]


def test_a_goaway_message_over_1024_bytes_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="message must be 0-1024 bytes"):
        GoAway(Reason.OFFICER_KILL, "x" * (MAX_GOAWAY_MESSAGE_BYTES + 1))


def test_a_received_goaway_message_over_1024_bytes_is_a_protocol_error() -> None:
    message = b"x" * (MAX_GOAWAY_MESSAGE_BYTES + 1)
    wire = raw_frame(FrameType.GOAWAY, struct.pack(">HH", 13, len(message)) + message)
    with pytest.raises(ProtocolError, match="message must be 0-1024 bytes") as e:
        FrameParser().feed(wire)
    assert e.value.reason is Reason.PROTOCOL_ERROR


def test_a_goaway_message_that_is_not_utf8_is_a_protocol_error_naming_the_field() -> None:
    message = b"\xff\xfe kill"
    wire = raw_frame(FrameType.GOAWAY, struct.pack(">HH", 13, len(message)) + message)
    with pytest.raises(ProtocolError, match="GOAWAY: message is not valid UTF-8") as e:
        FrameParser().feed(wire)
    assert "\\xff" not in e.value.message  # the bytes themselves are not quoted


# -- the officer's note, end to end through both machines --------------------------------


def test_the_gateway_sends_the_officers_note_as_one_clean_bounded_line() -> None:
    client, gateway = logged_in_pair()
    gateway.close(Reason.OFFICER_KILL, "核查中\x1b[31m，请\n联系 0575-1234" + "。" * 400)
    events = pump(gateway, client)
    assert len(events) == 2  # HELLO_OK's handshake, then the end
    closed = events[-1]
    assert isinstance(closed, SessionClosed) and closed.reason is Reason.OFFICER_KILL
    assert closed.message.startswith("核查中 [31m，请 联系 0575-1234。")
    assert len(closed.message) == MAX_NOTE_CHARS and closed.message.endswith("…")


def test_the_client_cleans_a_note_even_if_the_gateway_did_not() -> None:
    client = ClientMachine()
    client.receive(encode(HelloOk(2, "g")))
    events = client.receive(encode(GoAway(Reason.OFFICER_KILL, "ok\x1b]52;c;ZXZpbA==\x07\r" * 50)))
    assert events == [
        SessionClosed(Reason.OFFICER_KILL, terminal_text("ok ]52;c;ZXZpbA== " * 50), by_peer=True)
    ]
    assert "\x1b" not in events[0].message and len(events[0].message) <= MAX_NOTE_CHARS


def test_a_version_1_client_still_ends_cleanly_on_a_kill_with_a_note() -> None:
    """GOAWAY's layout did not change: an old client parses it and may ignore the note."""
    client, gateway = logged_in_pair(client_versions=(1, 1))
    assert gateway.version == 1
    gateway.close(Reason.OFFICER_KILL, "see the officer")
    assert pump(gateway, client)[-1] == SessionClosed(
        Reason.OFFICER_KILL, "see the officer", by_peer=True
    )


# -- AUTH_FAIL's retry_after --------------------------------------------------------------


def test_auth_fail_has_a_version_1_and_a_version_2_layout() -> None:
    v1, v2 = AuthFail(Reason.LOCKED, 0), AuthFail(Reason.LOCKED, 0, 900)
    assert encode(v1)[HEADER_SIZE:] == b"\x00\x17\x00"
    assert encode(v2)[HEADER_SIZE:] == b"\x00\x17\x00\x00\x00\x03\x84"
    assert FrameParser().feed(encode(v1) + encode(v2)) == [v1, v2]


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00", b"\x00\x00\x00", b"\x00" * 5])
def test_auth_fail_of_any_other_length_is_a_protocol_error(extra: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameParser().feed(raw_frame(FrameType.AUTH_FAIL, b"\x00\x17\x00" + extra))


def test_retry_after_must_fit_in_32_bits() -> None:
    AuthFail(Reason.LOCKED, 0, RETRY_AFTER_CALL_CARRIER)
    with pytest.raises(ValueError, match="retry_after"):
        AuthFail(Reason.LOCKED, 0, RETRY_AFTER_CALL_CARRIER + 1)
    with pytest.raises(ValueError, match="retry_after"):
        GatewayMachine().reject_auth(Reason.LOCKED, retry_after=-1)


def test_a_version_2_client_learns_how_long_the_lock_lasts() -> None:
    client, gateway = logged_in_pair()
    assert gateway.reject_auth(Reason.LOCKED, retry_after=840) == 0
    events = pump(gateway, client)
    assert AuthRejected(Reason.LOCKED, 0, 840) in events
    assert events[-1] == SessionClosed(Reason.LOCKED, "", by_peer=True)


def test_a_version_2_client_learns_that_only_the_carrier_can_unlock() -> None:
    client, gateway = logged_in_pair()
    gateway.reject_auth(Reason.LOCKED, retry_after=RETRY_AFTER_CALL_CARRIER)
    assert AuthRejected(Reason.LOCKED, 0, RETRY_AFTER_CALL_CARRIER) in pump(gateway, client)


def test_a_version_1_client_gets_the_version_1_layout_it_can_parse() -> None:
    client, gateway = logged_in_pair(client_versions=(1, 1))
    gateway.reject_auth(Reason.LOCKED, retry_after=840)
    wire = b"".join(gateway.data_to_send())
    frames = FrameParser().feed(wire)
    assert frames[1] == AuthFail(Reason.LOCKED, 0)  # after HELLO_OK; no retry_after
    assert AuthRejected(Reason.LOCKED, 0, None) in client.receive(wire)


def test_a_version_2_client_talks_to_a_version_1_gateway() -> None:
    client, gateway = logged_in_pair(gateway_versions=(1, 1))
    gateway.reject_auth(Reason.AUTH_FAILED)
    events = pump(gateway, client)
    assert client.version == 1
    assert AuthRejected(Reason.AUTH_FAILED, 2, None) in events


@pytest.mark.parametrize(
    ("version", "auth_fail"),
    [(2, AuthFail(Reason.LOCKED, 0)), (1, AuthFail(Reason.LOCKED, 0, 60))],
)
def test_an_auth_fail_in_the_other_versions_layout_is_a_protocol_error(
    version: int, auth_fail: AuthFail
) -> None:
    client = ClientMachine()
    client.authenticate(ACCOUNT, "pw", "1")
    events = client.receive(encode(HelloOk(version, "g")) + encode(auth_fail))
    assert isinstance(events[-1], SessionClosed)
    assert events[-1].reason is Reason.PROTOCOL_ERROR and not events[-1].by_peer
    assert "AUTH_FAIL: not the layout of protocol version" in events[-1].message
