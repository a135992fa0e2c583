"""The session state machines, driven against each other and against raw frames."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._frames import (
    Auth,
    AuthFail,
    AuthOk,
    Data,
    Fin,
    Frame,
    FrameParser,
    GoAway,
    Hello,
    HelloOk,
    Open,
    OpenFail,
    OpenOk,
    Ping,
    Pong,
    Reset,
    Resume,
    WindowUpdate,
    encode,
)
from gateway._machine import (
    AuthAccepted,
    AuthRejected,
    AuthRequested,
    ClientMachine,
    Event,
    GatewayMachine,
    HandshakeCompleted,
    MachineUsageError,
    PongReceived,
    ResumeRequested,
    SessionClosed,
    State,
    StreamCredit,
    StreamData,
    StreamFin,
    StreamLimitError,
    StreamOpened,
    StreamOpenRequested,
    StreamRefused,
    StreamReset,
)
from gateway._reasons import Reason

ACCOUNT = "33068212345678@sxlss"
WINDOW = 256 * 1024


def sent(machine: ClientMachine | GatewayMachine) -> list[Frame]:
    """What the machine queued, parsed back into frames."""
    return FrameParser(16 * 1024 * 1024).feed(b"".join(machine.data_to_send()))


def pump(src: ClientMachine | GatewayMachine, dst: ClientMachine | GatewayMachine) -> list[Event]:
    return dst.receive(b"".join(src.data_to_send()))


def login(
    gateway: GatewayMachine | None = None, client: ClientMachine | None = None
) -> tuple[ClientMachine, GatewayMachine]:
    client = client or ClientMachine()
    gateway = gateway or GatewayMachine()
    client.authenticate(ACCOUNT, "pw", "123456")
    pump(client, gateway)
    gateway.accept_auth(session_id="s1", account=ACCOUNT, unit_code="12345678", resume_token=b"t")
    pump(gateway, client)
    assert client.state is gateway.state is State.OPEN
    return client, gateway


def gateway_in(state: State) -> GatewayMachine:
    gateway = GatewayMachine()
    if state is not State.AWAITING_HELLO:
        gateway.receive(encode(Hello(1, 1, "c")))
    if state is State.OPEN:
        gateway.receive(encode(Auth(ACCOUNT, "pw", "1")))
        gateway.accept_auth(session_id="s", account=ACCOUNT, unit_code="u", resume_token=b"t")
        gateway.receive(encode(Open(1, "declare")))
        gateway.accept_open(1)
    gateway.data_to_send()
    assert gateway.state is state
    return gateway


def client_in(state: State) -> ClientMachine:
    client = ClientMachine()
    if state is not State.AWAITING_HELLO:
        client.receive(encode(HelloOk(1, "g")))
        client.authenticate(ACCOUNT, "pw", "1")
    if state is State.OPEN:
        client.receive(encode(AuthOk("s", ACCOUNT, "u", b"t", 0, 0)))
        client.open_stream("declare")
        client.receive(encode(OpenOk(1)))
    client.data_to_send()
    assert client.state is state
    return client


def closed_by_us(events: list[Event], reason: Reason) -> SessionClosed:
    assert events, "expected SessionClosed"
    last = events[-1]
    assert isinstance(last, SessionClosed)
    assert last.reason is reason and not last.by_peer
    return last


def assert_goaway(machine: ClientMachine | GatewayMachine, reason: Reason) -> None:
    frames = sent(machine)
    assert isinstance(frames[-1], GoAway) and frames[-1].reason is reason, frames
    assert machine.state is State.CLOSING
    assert machine.close_reason is reason


# -- the whole conversation ------------------------------------------------------------------


def test_a_full_conversation_between_client_and_gateway() -> None:
    client = ClientMachine(client_name="ssgate-connect 0.1")
    gateway = GatewayMachine(server_name="gw-1")

    # HELLO and a first AUTH in one flight; the password is wrong.
    client.authenticate(ACCOUNT, "wrong", "123456")
    events = pump(client, gateway)
    assert events == [
        HandshakeCompleted(3, "ssgate-connect 0.1"),
        AuthRequested(ACCOUNT, "wrong", "123456"),
    ]
    assert gateway.reject_auth(Reason.AUTH_FAILED) == 2
    assert pump(gateway, client) == [
        HandshakeCompleted(3, "gw-1"),
        AuthRejected(Reason.AUTH_FAILED, 2, retry_after=0),
    ]

    # The right password.
    client.authenticate(ACCOUNT, "right", "654321")
    assert pump(client, gateway) == [AuthRequested(ACCOUNT, "right", "654321")]
    gateway.accept_auth(
        session_id="abc",
        account=ACCOUNT,
        unit_code="12345678",
        resume_token=b"token-1",
        idle_timeout=1800,
        max_lifetime=28800,
    )
    assert pump(gateway, client) == [
        AuthAccepted("abc", ACCOUNT, "12345678", b"token-1", 1800, 28800)
    ]
    assert client.session_id == "abc"

    # A stream, with the request sent before the gateway accepted it.
    sid = client.open_stream("declare")
    assert sid == 1
    request = b"POST /api/declarations HTTP/1.1\r\n\r\n" + b"r" * 100_000
    assert client.send_data(sid, request) == len(request)
    assert pump(client, gateway) == [
        StreamOpenRequested(1, "declare"),
        StreamData(1, request[:65536]),
        StreamData(1, request[65536:]),
    ]
    gateway.accept_open(1)
    gateway.consume(1, len(request))  # the service took it all: credit goes back
    response = b"HTTP/1.1 200 OK\r\n\r\n" + b"R" * 600_000
    taken = gateway.send_data(1, response)
    assert taken == WINDOW  # no more than the client's window
    events = pump(gateway, client)
    assert events[0] == StreamOpened(1)
    assert [e for e in events if isinstance(e, StreamData)] == [
        StreamData(1, response[i : min(i + 65536, WINDOW)]) for i in range(0, WINDOW, 65536)
    ]
    assert gateway.credit(1) == 0

    # The client's application reads slowly; credit returns in half-window batches.
    client.consume(1, 100_000)
    assert client.data_to_send() == []
    client.consume(1, WINDOW - 100_000)
    assert pump(client, gateway) == [StreamCredit(1, WINDOW)]
    rest = response[taken:]
    while rest:
        n = gateway.send_data(1, rest)
        assert n > 0
        rest = rest[n:]
        for event in pump(gateway, client):
            assert isinstance(event, StreamData)
            client.consume(1, len(event.payload))
        pump(client, gateway)

    # Orderly close of the stream: FIN both ways.
    client.send_fin(1)
    assert pump(client, gateway) == [StreamFin(1)]
    gateway.send_fin(1)
    assert pump(gateway, client) == [StreamFin(1)]
    assert client.stream_count == gateway.stream_count == 0

    # Keepalive.
    client.ping(b"\x00" * 7 + b"\x01")
    assert pump(client, gateway) == []
    assert pump(gateway, client) == [PongReceived(b"\x00" * 7 + b"\x01")]

    # The user quits.
    client.close(Reason.CLIENT_QUIT)
    assert pump(client, gateway) == [SessionClosed(Reason.CLIENT_QUIT, "", by_peer=True)]
    assert client.state is State.CLOSING and gateway.state is State.CLOSED
    assert gateway.close_reason is Reason.CLIENT_QUIT
    assert gateway.bytes_received == len(request) and gateway.bytes_sent == len(response)
    assert client.bytes_sent == len(request) and client.bytes_received == len(response)
    assert gateway.streams_opened == 1
    assert client.connection_lost() is Reason.CLIENT_QUIT


def test_a_forced_close_reaches_the_client_with_its_reason_and_message() -> None:
    client, gateway = login()
    client.open_stream("declare")
    pump(client, gateway)
    gateway.close(Reason.OFFICER_KILL, "ticket 42")
    assert pump(gateway, client) == [SessionClosed(Reason.OFFICER_KILL, "ticket 42", by_peer=True)]
    assert client.stream_count == 0 and client.close_reason is Reason.OFFICER_KILL
    assert client.send_data(1, b"late") == 0  # unwinding after the end is quiet


def test_a_resume_reopens_the_session_with_the_same_id() -> None:
    client = ClientMachine()
    gateway = GatewayMachine()
    client.resume(b"token-1")
    assert pump(client, gateway)[-1] == ResumeRequested(b"token-1")
    gateway.accept_auth(session_id="abc", account=ACCOUNT, unit_code="u", resume_token=b"token-2")
    event = pump(gateway, client)[-1]
    assert isinstance(event, AuthAccepted)
    assert (event.session_id, event.resume_token) == ("abc", b"token-2")


def test_a_lost_connection_ends_the_session_as_network_lost() -> None:
    client, _gateway = login()
    assert client.connection_lost() is Reason.NETWORK_LOST
    assert client.state is State.CLOSED and client.data_to_send() == []


# -- versions and limits ---------------------------------------------------------------------


def test_no_common_version_is_refused_with_version_unsupported() -> None:
    client = ClientMachine(versions=(4, 5))
    gateway = GatewayMachine()
    events = pump(client, gateway)
    assert closed_by_us(events, Reason.VERSION_UNSUPPORTED).message == (
        "this gateway speaks protocol versions 1-3"
    )
    assert pump(gateway, client) == [
        SessionClosed(
            Reason.VERSION_UNSUPPORTED, "this gateway speaks protocol versions 1-3", by_peer=True
        )
    ]


def test_the_highest_common_version_is_chosen() -> None:
    client = ClientMachine(versions=(2, 5))
    gateway = GatewayMachine(versions=(1, 3))
    pump(client, gateway)
    assert pump(gateway, client) == [HandshakeCompleted(3, "ssgate")]
    assert client.version == gateway.version == 3


def test_a_client_refuses_a_version_it_did_not_offer() -> None:
    client = ClientMachine()
    closed_by_us(client.receive(encode(HelloOk(4, "g"))), Reason.PROTOCOL_ERROR)


def test_each_side_sends_frames_no_larger_than_the_peer_accepts() -> None:
    client = ClientMachine(max_payload=16384, initial_window=40000)
    client, gateway = login(GatewayMachine(max_payload=20000, max_streams=7), client)
    assert client.max_streams == 7
    sid = client.open_stream("declare")
    assert client.send_data(sid, b"x" * 50_000) == 50_000
    wire = b"".join(client.data_to_send())
    frames = FrameParser().feed(wire)
    assert [len(f.payload) for f in frames if isinstance(f, Data)] == [16384] * 3 + [848]
    assert len(gateway.receive(wire)) == 5
    gateway.accept_open(sid)
    assert gateway.send_data(sid, b"y" * 50_000) == 40000  # the client's window
    frames = sent(gateway)
    assert [len(f.payload) for f in frames if isinstance(f, Data)] == [16384] * 2 + [7232]


def test_a_gateway_sends_no_more_than_the_clients_window() -> None:
    client, gateway = login(client=ClientMachine(initial_window=20000))
    client.open_stream("declare")
    pump(client, gateway)
    gateway.accept_open(1)
    assert gateway.send_data(1, b"y" * 50_000) == 20000
    assert gateway.send_data(1, b"y") == 0


# -- frames in the wrong state -------------------------------------------------------------


SAMPLES: list[Frame] = [
    Hello(1, 1, "c"),
    HelloOk(1, "g"),
    Auth(ACCOUNT, "pw", "1"),
    AuthOk("s", ACCOUNT, "u", b"t", 0, 0),
    AuthFail(Reason.AUTH_FAILED, 2),
    Resume(b"t"),
    Open(3, "declare"),
    OpenOk(1),
    OpenFail(1, Reason.SERVICE_DENIED),
    Data(1, b"x"),
    WindowUpdate(1, 1),
    Fin(1),
    Reset(1, Reason.STREAM_CANCELLED),
    Ping(b"12345678"),
    Pong(b"12345678"),
    GoAway(Reason.GATEWAY_SHUTDOWN),
]
LIVE = (State.AWAITING_HELLO, State.AUTHENTICATING, State.OPEN)


def illegal_cases() -> list[tuple[str, State, Frame]]:
    cases = []
    for side, machine in (("gateway", GatewayMachine), ("client", ClientMachine)):
        for state in LIVE:
            cases += [(side, state, f) for f in SAMPLES if type(f) not in machine.LEGAL[state]]
    return cases


@pytest.mark.parametrize(
    ("side", "state", "frame"),
    illegal_cases(),
    ids=lambda v: getattr(v, "value", None) or getattr(getattr(v, "TYPE", None), "name", v),
)
def test_a_frame_not_legal_in_the_state_ends_the_session_with_protocol_error(
    side: str, state: State, frame: Frame
) -> None:
    machine = gateway_in(state) if side == "gateway" else client_in(state)
    closed_by_us(machine.receive(encode(frame)), Reason.PROTOCOL_ERROR)
    assert_goaway(machine, Reason.PROTOCOL_ERROR)


def test_a_closing_machine_ignores_whatever_still_arrives() -> None:
    _client, gateway = login()
    gateway.close(Reason.GATEWAY_SHUTDOWN)
    assert gateway.receive(encode(Open(1, "declare")) + b"\xff garbage") == []
    assert gateway.receive(encode(Auth(ACCOUNT, "pw", "1"))) == []


def test_garbage_from_the_peer_becomes_a_goaway_not_an_exception() -> None:
    gateway = GatewayMachine()
    closed_by_us(gateway.receive(b"GET / HTTP/1.1\r\n\r\n"), Reason.PROTOCOL_ERROR)
    assert_goaway(gateway, Reason.PROTOCOL_ERROR)


def test_an_oversized_frame_ends_the_session_with_frame_too_large() -> None:
    _client, gateway = login()
    header = bytes([0x13, 0]) + (1).to_bytes(4, "big") + (65537).to_bytes(4, "big")
    closed_by_us(gateway.receive(header), Reason.FRAME_TOO_LARGE)


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_a_logged_in_gateway_survives_any_bytes(data: bytes) -> None:
    _, gateway = login()
    events = gateway.receive(data)
    if gateway.state is State.CLOSING:
        assert isinstance(events[-1], SessionClosed)


# -- logins ----------------------------------------------------------------------------------


def test_after_three_failed_logins_the_fourth_is_refused() -> None:
    client = ClientMachine()
    gateway = GatewayMachine()
    for left in (2, 1, 0):
        client.authenticate(ACCOUNT, "wrong", "000000")
        assert isinstance(pump(client, gateway)[-1], AuthRequested)
        assert gateway.reject_auth(Reason.AUTH_FAILED) == left
        events = pump(gateway, client)
        assert AuthRejected(Reason.AUTH_FAILED, left, retry_after=0) in events
        if left == 0:
            assert events[-1] == SessionClosed(Reason.TOO_MANY_ATTEMPTS, "", by_peer=True)
    assert client.state is State.CLOSED and client.close_reason is Reason.TOO_MANY_ATTEMPTS
    assert gateway.state is State.CLOSING and gateway.auth_attempts == 3
    # A fourth AUTH sent anyway gets no hearing.
    assert gateway.receive(encode(Auth(ACCOUNT, "guess", "111111"))) == []
    assert gateway.data_to_send() == []


def test_the_client_will_not_try_after_the_gateway_said_no_attempts_are_left() -> None:
    client = ClientMachine()
    client.authenticate(ACCOUNT, "pw", "1")
    client.receive(encode(HelloOk(1, "g")) + encode(AuthFail(Reason.LOCKED, 0)))
    with pytest.raises(MachineUsageError):
        client.authenticate(ACCOUNT, "pw", "2")


def test_a_final_refusal_ends_the_session_at_once_with_its_own_reason() -> None:
    gateway = gateway_in(State.AUTHENTICATING)
    gateway.receive(encode(Auth(ACCOUNT, "pw", "1")))
    assert gateway.reject_auth(Reason.LOCKED) == 0
    frames = sent(gateway)
    assert frames == [AuthFail(Reason.LOCKED, 0), GoAway(Reason.LOCKED)]


def test_a_failed_resume_counts_as_an_attempt() -> None:
    gateway = gateway_in(State.AUTHENTICATING)
    gateway.receive(encode(Resume(b"stale")))
    assert gateway.reject_auth(Reason.RESUME_INVALID) == 2
    gateway.receive(encode(Auth(ACCOUNT, "pw", "1")))
    assert gateway.reject_auth(Reason.AUTH_FAILED) == 1


def test_a_second_login_before_the_first_is_answered_is_a_protocol_error() -> None:
    gateway = gateway_in(State.AUTHENTICATING)
    events = gateway.receive(encode(Auth(ACCOUNT, "pw", "1")) + encode(Resume(b"t")))
    assert isinstance(events[0], AuthRequested)
    closed_by_us(events, Reason.PROTOCOL_ERROR)
    client = ClientMachine()
    client.authenticate(ACCOUNT, "pw", "1")
    with pytest.raises(MachineUsageError):
        client.resume(b"t")


def test_answering_a_login_nobody_asked_for_is_a_usage_error() -> None:
    gateway = gateway_in(State.AUTHENTICATING)
    with pytest.raises(MachineUsageError):
        gateway.reject_auth(Reason.AUTH_FAILED)
    with pytest.raises(MachineUsageError):
        gateway.accept_auth(session_id="s", account="a", unit_code="u", resume_token=b"t")


def test_a_login_answer_after_the_deadline_closed_the_session_is_dropped() -> None:
    gateway = gateway_in(State.AUTHENTICATING)
    gateway.receive(encode(Auth(ACCOUNT, "pw", "1")))
    gateway.close(Reason.AUTH_TIMEOUT)
    assert sent(gateway) == [GoAway(Reason.AUTH_TIMEOUT)]
    gateway.accept_auth(session_id="s", account="a", unit_code="u", resume_token=b"t")
    assert gateway.reject_auth(Reason.AUTH_FAILED) == 0
    assert gateway.data_to_send() == [] and gateway.state is State.CLOSING


def test_auth_values_never_show_in_events_repr() -> None:
    shown = repr(AuthRequested(ACCOUNT, "hunter2", "654321")) + repr(ResumeRequested(b"tok"))
    shown += repr(AuthAccepted("s", ACCOUNT, "u", b"tok", 0, 0)) + repr(StreamData(1, b"body"))
    for secret in ("hunter2", "654321", "tok'", "body"):
        assert secret not in shown


# -- streams ---------------------------------------------------------------------------------


def open_raw(gateway: GatewayMachine, *ids: int) -> list[Event]:
    return gateway.receive(b"".join(encode(Open(i, "declare")) for i in ids))


def test_stream_ids_must_be_odd_and_increase() -> None:
    for ids in ((3, 1), (3, 3), (2,)):
        gateway = gateway_in(State.OPEN)  # stream 1 already open
        events = open_raw(gateway, *ids)
        closed_by_us(events, Reason.PROTOCOL_ERROR)
    gateway = gateway_in(State.OPEN)
    assert open_raw(gateway, 3, 9) == [
        StreamOpenRequested(3, "declare"),
        StreamOpenRequested(9, "declare"),
    ]


def test_frames_for_a_stream_never_opened_are_a_protocol_error() -> None:
    for frame in (Data(5, b"x"), WindowUpdate(5, 1), Fin(5), Reset(5, Reason.STREAM_CANCELLED)):
        closed_by_us(gateway_in(State.OPEN).receive(encode(frame)), Reason.PROTOCOL_ERROR)
    closed_by_us(client_in(State.OPEN).receive(encode(OpenOk(3))), Reason.PROTOCOL_ERROR)


def test_frames_in_flight_for_an_ended_stream_are_ignored() -> None:
    client, gateway = login()
    sid = client.open_stream("declare")
    client.send_data(sid, b"hello")
    pump(client, gateway)
    gateway.accept_open(sid)
    gateway.send_data(sid, b"answer")
    client.reset_stream(sid, Reason.STREAM_CANCELLED)  # crosses the gateway's frames
    assert pump(gateway, client) == []
    assert pump(client, gateway) == [StreamReset(sid, Reason.STREAM_CANCELLED)]
    assert gateway.send_data(sid, b"more") == 0
    gateway.send_fin(sid)
    gateway.consume(sid, 5)
    gateway.accept_open(sid)
    assert gateway.data_to_send() == []


def test_the_gateway_refuses_streams_beyond_its_limit_and_frees_them_on_close() -> None:
    client, gateway = login(GatewayMachine(max_streams=2))
    first, second = client.open_stream("declare"), client.open_stream("declare")
    with pytest.raises(StreamLimitError):
        client.open_stream("declare")
    pump(client, gateway)
    # A client that ignores the limit is refused per stream, not per session.
    assert open_raw(gateway, 5) == []
    assert sent(gateway) == [OpenFail(5, Reason.TOO_MANY_STREAMS)]
    assert gateway.state is State.OPEN
    # Once a stream is closed both ways, a new one fits.
    gateway.accept_open(first)
    client.receive(encode(OpenOk(first)))
    client.send_fin(first)
    gateway.send_fin(first)
    pump(client, gateway)
    client.receive(encode(Fin(first)))
    assert client.stream_count == gateway.stream_count == 1
    assert open_raw(gateway, 7) == [StreamOpenRequested(7, "declare")]
    assert second == 3


def test_a_refused_stream_reaches_the_client_with_its_reason() -> None:
    client, gateway = login()
    sid = client.open_stream("payroll")
    client.send_data(sid, b"early bytes")  # pipelined before the answer
    events = pump(client, gateway)
    assert events[0] == StreamOpenRequested(sid, "payroll")
    gateway.reject_open(sid, Reason.SERVICE_DENIED)
    assert pump(gateway, client) == [StreamRefused(sid, Reason.SERVICE_DENIED)]
    assert client.stream_count == gateway.stream_count == 0
    assert client.send_data(sid, b"late") == 0


def test_the_gateway_may_not_send_before_accepting_and_the_client_refuses_it() -> None:
    client, gateway = login()
    sid = client.open_stream("declare")
    pump(client, gateway)
    with pytest.raises(MachineUsageError):
        gateway.send_data(sid, b"too soon")
    with pytest.raises(MachineUsageError):
        gateway.send_fin(sid)
    closed_by_us(client.receive(encode(Data(sid, b"too soon"))), Reason.PROTOCOL_ERROR)


def test_data_after_fin_and_a_second_fin_are_protocol_errors() -> None:
    gateway = gateway_in(State.OPEN)
    closed_by_us(gateway.receive(encode(Fin(1)) + encode(Data(1, b"x"))), Reason.PROTOCOL_ERROR)
    gateway = gateway_in(State.OPEN)
    closed_by_us(gateway.receive(encode(Fin(1)) + encode(Fin(1))), Reason.PROTOCOL_ERROR)


def test_local_misuse_of_streams_raises() -> None:
    client, gateway = login()
    with pytest.raises(MachineUsageError):
        client.send_data(1, b"x")  # never opened
    sid = client.open_stream("declare")
    client.send_fin(sid)
    with pytest.raises(MachineUsageError):
        client.send_data(sid, b"x")
    with pytest.raises(MachineUsageError):
        client.send_fin(sid)
    with pytest.raises(MachineUsageError):
        gateway.accept_open(99)
    with pytest.raises(ValueError):
        client.open_stream("not a service")
    pump(client, gateway)
    gateway.accept_open(sid)
    with pytest.raises(MachineUsageError):
        gateway.accept_open(sid)
    with pytest.raises(MachineUsageError):
        gateway.reject_open(sid, Reason.SERVICE_DENIED)


def test_no_streams_before_login() -> None:
    with pytest.raises(MachineUsageError):
        client_in(State.AUTHENTICATING).open_stream("declare")
    with pytest.raises(MachineUsageError):
        ClientMachine().ping(b"12345678")


# -- flow control ----------------------------------------------------------------------------


def test_data_beyond_the_window_is_a_flow_control_error() -> None:
    gateway = gateway_in(State.OPEN)
    assert gateway.receive(encode(Data(1, b"a" * 65536)) * 4) != []
    closed_by_us(gateway.receive(encode(Data(1, b"a"))), Reason.FLOW_CONTROL_ERROR)
    assert_goaway(gateway, Reason.FLOW_CONTROL_ERROR)


def test_consuming_returns_credit_that_lets_the_peer_send_again() -> None:
    gateway = gateway_in(State.OPEN)
    gateway.receive(encode(Data(1, b"a" * 65536)) * 4)
    gateway.consume(1, 131072)
    assert sent(gateway) == [WindowUpdate(1, 131072)]
    assert gateway.receive(encode(Data(1, b"b" * 65536)) * 2) == [StreamData(1, b"b" * 65536)] * 2


def test_a_window_update_past_2_31_minus_1_is_a_flow_control_error() -> None:
    client = client_in(State.OPEN)
    events = client.receive(encode(WindowUpdate(1, 2**31 - 1 - WINDOW)))
    assert events == [StreamCredit(1, 2**31 - 1)]
    closed_by_us(client.receive(encode(WindowUpdate(1, 1))), Reason.FLOW_CONTROL_ERROR)


def test_no_window_updates_after_the_peer_finished_sending() -> None:
    gateway = gateway_in(State.OPEN)
    gateway.receive(encode(Data(1, b"a" * 50_000)) * 4 + encode(Fin(1)))
    gateway.consume(1, 200_000)
    assert gateway.data_to_send() == []


def test_credit_reports_what_send_data_would_take() -> None:
    client, _gateway = login()
    sid = client.open_stream("declare")
    assert client.credit(sid) == WINDOW
    client.send_data(sid, b"x" * 1000)
    assert client.credit(sid) == WINDOW - 1000
    assert client.credit(99) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200_000), st.integers(0, 200_000)), min_size=1, max_size=4),
    st.integers(1, 70_000),
    st.integers(5_000, 300_000),
)
def test_any_mix_of_streams_and_read_speeds_delivers_every_byte_within_the_windows(
    sizes: list[tuple[int, int]], chunk: int, read: int
) -> None:
    """Several streams, both directions, bytes cut anywhere in transit, readers slower
    than writers: every byte arrives in order, and no receiver ever holds more than
    one window of unread data on a stream."""
    client, gateway = login(client=ClientMachine(initial_window=65536))
    windows = {"up": WINDOW, "down": 65536}
    data: dict[tuple[str, int], bytes] = {}
    for up_size, down_size in sizes:
        sid = client.open_stream("declare")
        data["up", sid] = bytes([sid % 251]) * up_size
        data["down", sid] = bytes([(sid * 7) % 251]) * down_size
    for event in pump(client, gateway):
        assert isinstance(event, StreamOpenRequested)
        gateway.accept_open(event.stream_id)
    offset = dict.fromkeys(data, 0)
    got = {key: bytearray() for key in data}
    unread = dict.fromkeys(data, 0)

    def carry(src: ClientMachine | GatewayMachine, direction: str) -> None:
        dst = gateway if src is client else client
        wire = b"".join(src.data_to_send())
        for start in range(0, len(wire), chunk):
            for event in dst.receive(wire[start : start + chunk]):
                assert not isinstance(event, SessionClosed), event
                if isinstance(event, StreamData):
                    key = (direction, event.stream_id)
                    got[key] += event.payload
                    unread[key] += len(event.payload)
                    assert unread[key] <= windows[direction]

    for _ in range(1000):
        if all(len(got[key]) == len(data[key]) for key in data):
            break
        for (direction, sid), payload in data.items():
            sender = client if direction == "up" else gateway
            offset[direction, sid] += sender.send_data(sid, payload[offset[direction, sid] :])
        carry(client, "up")
        carry(gateway, "down")
        for (direction, sid), n in unread.items():
            reader = gateway if direction == "up" else client
            reader.consume(sid, min(n, read))
            unread[direction, sid] -= min(n, read)
        carry(client, "up")  # the WINDOW_UPDATEs
        carry(gateway, "down")
    assert {key: bytes(v) for key, v in got.items()} == data
