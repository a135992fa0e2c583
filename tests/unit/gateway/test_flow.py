"""Credit windows: senders stay within credit, receivers never hold more than a window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._flow import MAX_WINDOW, ReceiveWindow, SendWindow
from gateway._reasons import ProtocolError, Reason


def test_a_send_window_spends_and_regains_credit() -> None:
    window = SendWindow(100)
    window.consume(60)
    assert window.available == 40
    window.grant(10)
    assert window.available == 50
    with pytest.raises(ValueError, match="51"):
        window.consume(51)  # a local bug, not the peer's
    window.consume(50)
    assert window.available == 0


def test_a_window_update_past_2_31_minus_1_is_a_flow_control_error() -> None:
    window = SendWindow(MAX_WINDOW - 5)
    window.grant(5)
    with pytest.raises(ProtocolError) as info:
        window.grant(1)
    assert info.value.reason is Reason.FLOW_CONTROL_ERROR
    assert window.available == MAX_WINDOW


def test_a_zero_window_update_is_a_flow_control_error() -> None:
    with pytest.raises(ProtocolError) as info:
        SendWindow(10).grant(0)
    assert info.value.reason is Reason.FLOW_CONTROL_ERROR


def test_windows_refuse_impossible_sizes() -> None:
    for bad in (-1, MAX_WINDOW + 1):
        with pytest.raises(ValueError):
            SendWindow(bad)
    for bad in (0, MAX_WINDOW + 1):
        with pytest.raises(ValueError):
            ReceiveWindow(bad)


def test_data_beyond_the_granted_credit_is_a_flow_control_error() -> None:
    window = ReceiveWindow(1000)
    window.on_data(1000)
    with pytest.raises(ProtocolError) as info:
        window.on_data(1)
    assert info.value.reason is Reason.FLOW_CONTROL_ERROR


def test_credit_goes_back_in_batches_of_at_least_half_a_window() -> None:
    window = ReceiveWindow(1000)
    window.on_data(1000)
    assert window.consumed(300) == 0
    assert window.consumed(199) == 0
    assert window.consumed(1) == 500
    assert window.remaining == 500
    assert window.consumed(500) == 500
    assert window.remaining == 1000 and window.buffered == 0


def test_consuming_more_than_was_received_is_refused() -> None:
    window = ReceiveWindow(1000)
    window.on_data(10)
    with pytest.raises(ValueError):
        window.consumed(11)


@given(
    st.integers(1, 1 << 20),
    st.lists(st.tuples(st.booleans(), st.integers(0, 1 << 20)), max_size=200),
)
def test_receiver_holds_at_most_a_window_and_never_starves_the_sender(
    size: int, steps: list[tuple[bool, int]]
) -> None:
    receiver = ReceiveWindow(size)
    sender = SendWindow(size)
    sent = delivered = 0
    for is_send, amount in steps:
        if is_send:
            n = min(amount, sender.available)
            sender.consume(n)
            receiver.on_data(n)
            sent += n
        else:
            n = min(amount, receiver.buffered)
            increment = receiver.consumed(n)
            delivered += n
            if increment:
                sender.grant(increment)
        assert receiver.buffered <= size
        assert sender.available == receiver.remaining
        if receiver.buffered == 0:
            # Everything read: the sender always has at least half a window left.
            assert sender.available > size - max(1, size // 2)
    assert delivered + receiver.buffered == sent
