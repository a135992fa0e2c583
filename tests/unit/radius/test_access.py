"""The sans-IO access server with packets pyrad builds, as a NAS would send them."""

from __future__ import annotations

import hashlib

import pytest

from radius import AccessServer, Drop, Evaluate, NasClient, NasDirectory, Send, parse_networks
from radius._access import CHALLENGE_UNKNOWN, UNSUPPORTED_METHOD, split_password_and_code
from radius.testing import TESTBED_ACCOUNT, TESTBED_SECRET, NasSimulator

NAS = ("127.0.0.1", 40000)
NOW = 1_790_000_000.0
SESSION = "0123456789abcdef0123456789abcdef"


def server(*, require: bool = True, **kwargs: float | int) -> AccessServer:
    client = NasClient(
        name="bras-1",
        networks=parse_networks(["127.0.0.0/8"]),
        secret=TESTBED_SECRET,
        require_message_authenticator=require,
    )
    return AccessServer(NasDirectory([client]), **kwargs)  # type: ignore[arg-type]


def evaluate(step: object) -> Evaluate:
    assert isinstance(step, Evaluate), step
    return step


def test_password_followed_by_the_code_is_one_attempt_and_the_accept_carries_class_and_timeouts() -> (
    None
):
    nas, srv = NasSimulator(), server()
    request, data = nas.request(
        TESTBED_ACCOUNT, "Password-1" + "907153", calling_station="10.9.8.7"
    )
    attempt = evaluate(srv.receive(data, NAS, NOW)).attempt
    assert (attempt.account, attempt.password, attempt.otp) == (
        TESTBED_ACCOUNT,
        "Password-1",
        "907153",
    )
    assert attempt.calling_station == "10.9.8.7" and not attempt.challenged
    assert "Password-1" not in repr(attempt) and "907153" not in repr(attempt)

    reply = nas.read(
        request, srv.accept(attempt, session_id=SESSION, session_timeout=600, idle_timeout=60)
    )
    assert reply is not None  # Response Authenticator and Message-Authenticator verified
    assert (reply.code_name, reply.session_class) == ("Access-Accept", SESSION)
    assert (reply.session_timeout, reply.idle_timeout) == (600, 60)


def test_every_response_carries_a_message_authenticator_first() -> None:
    nas, srv = NasSimulator(), server()
    _, data = nas.request(TESTBED_ACCOUNT, "Password-1")
    challenge = srv.receive(data, NAS, NOW)
    _, data = nas.request(TESTBED_ACCOUNT, "Password-1123456", identifier=9)
    reject = srv.reject(evaluate(srv.receive(data, NAS, NOW)).attempt)
    assert isinstance(challenge, Send)
    for packet in (challenge.data, reject):
        assert packet[20] == 80 and packet[21] == 18  # the first attribute


def test_the_password_alone_gets_a_challenge_whose_state_brings_the_code_back() -> None:
    nas, srv = NasSimulator(), server()
    request, data = nas.request(TESTBED_ACCOUNT, "Password-1")
    step = srv.receive(data, NAS, NOW)
    assert isinstance(step, Send)
    challenge = nas.read(request, step.data)
    assert challenge is not None and challenge.code_name == "Access-Challenge"
    assert challenge.state is not None and len(challenge.state) == 16
    assert "one-time code" in challenge.reply_message

    _, data = nas.request(TESTBED_ACCOUNT, "654321", state=challenge.state)
    attempt = evaluate(srv.receive(data, NAS, NOW + 5)).attempt
    assert (attempt.password, attempt.otp, attempt.challenged) == ("Password-1", "654321", True)

    # The State is used once.
    _, data = nas.request(TESTBED_ACCOUNT, "654321", state=challenge.state)
    assert evaluate(srv.receive(data, NAS, NOW + 6)).attempt.refusal == CHALLENGE_UNKNOWN


def test_a_state_is_bound_to_its_account_and_expires() -> None:
    nas, srv = NasSimulator(), server(challenge_timeout=60.0)
    request, data = nas.request(TESTBED_ACCOUNT, "Password-1")
    step = srv.receive(data, NAS, NOW)
    assert isinstance(step, Send)
    state = nas.read(request, step.data).state  # type: ignore[union-attr]
    _, data = nas.request("33068299999999@sxlss", "654321", state=state)
    assert evaluate(srv.receive(data, NAS, NOW + 1)).attempt.refusal == CHALLENGE_UNKNOWN

    request, data = nas.request(TESTBED_ACCOUNT, "Password-1")
    step = srv.receive(data, NAS, NOW)
    state = nas.read(request, step.data).state  # type: ignore[union-attr, arg-type]
    _, data = nas.request(TESTBED_ACCOUNT, "654321", state=state)
    assert evaluate(srv.receive(data, NAS, NOW + 61)).attempt.refusal == CHALLENGE_UNKNOWN
    assert srv.pending_challenges == 0


def test_a_request_without_message_authenticator_is_dropped_and_counted_when_required() -> None:
    nas, srv = NasSimulator(message_authenticator=False), server()
    _, data = nas.request(TESTBED_ACCOUNT, "Password-1123456")
    assert srv.receive(data, NAS, NOW) == Drop("no-message-authenticator", "127.0.0.1", "bras-1")
    assert srv.drops["no-message-authenticator"] == 1


def test_a_nas_allowed_to_omit_it_is_answered_and_still_gets_one() -> None:
    nas, srv = NasSimulator(message_authenticator=False), server(require=False)
    request, data = nas.request(TESTBED_ACCOUNT, "Password-1123456")
    attempt = evaluate(srv.receive(data, NAS, NOW)).attempt
    reply = srv.reject(attempt)
    assert reply[20] == 80 and nas.read(request, reply) is not None


@pytest.mark.parametrize("require", [True, False])
def test_a_forged_message_authenticator_is_dropped(require: bool) -> None:
    nas, srv = NasSimulator(), server(require=require)
    _, data = nas.request(TESTBED_ACCOUNT, "Password-1123456")
    # Flip a bit of the Message-Authenticator itself (the first attribute pyrad writes).
    at = data.index(bytes([80, 18]), 20)
    forged = data[: at + 2] + bytes([data[at + 2] ^ 1]) + data[at + 3 :]
    assert srv.receive(forged, NAS, NOW).reason == "bad-message-authenticator"  # type: ignore[union-attr]


def test_a_wrong_shared_secret_is_dropped() -> None:
    nas, srv = NasSimulator(secret=b"another-secret-of-32-bytes-xxxxx"), server()
    _, data = nas.request(TESTBED_ACCOUNT, "Password-1123456")
    assert srv.receive(data, NAS, NOW).reason == "bad-message-authenticator"  # type: ignore[union-attr]


def test_an_unknown_source_is_dropped_with_its_reason() -> None:
    _, data = NasSimulator().request(TESTBED_ACCOUNT, "Password-1123456")
    assert server().receive(data, ("192.0.2.1", 1812), NOW) == Drop("unknown-nas", "192.0.2.1")


def test_a_retransmission_gets_the_cached_reply_without_a_second_evaluation() -> None:
    nas, srv = NasSimulator(), server()
    _, data = nas.request(TESTBED_ACCOUNT, "Password-1123456")
    attempt = evaluate(srv.receive(data, NAS, NOW)).attempt
    # While the first is evaluated, a retransmission is ignored quietly.
    assert srv.receive(data, NAS, NOW + 1).reason == "duplicate-pending"  # type: ignore[union-attr]
    reply = srv.reject(attempt)
    assert srv.receive(data, NAS, NOW + 2) == Send(reply, 3)
    # After the window it is a new request again.
    assert isinstance(srv.receive(data, NAS, NOW + 31), Evaluate)


def test_the_same_request_authenticator_in_another_packet_is_a_replay() -> None:
    nas, srv = NasSimulator(), server()
    request, data = nas.request(TESTBED_ACCOUNT, "Password-1123456", identifier=1)
    evaluate(srv.receive(data, NAS, NOW))
    assert srv.receive(data, ("127.0.0.1", 40001), NOW + 1).reason == "authenticator-replay"  # type: ignore[union-attr]
    # The same authenticator with another identifier (re-signed with the secret).
    request.id = 2
    replayed = request.RequestPacket()
    assert srv.receive(replayed, NAS, NOW + 1).reason == "authenticator-replay"  # type: ignore[union-attr]


def test_proxy_state_is_echoed_in_order() -> None:
    nas, srv = NasSimulator(), server()
    request, data = nas.request(TESTBED_ACCOUNT, "Password-1123456", proxy_state=[b"one", b"two"])
    reply = srv.reject(evaluate(srv.receive(data, NAS, NOW)).attempt)
    assert nas.decode(reply).get(33) == [b"one", b"two"]
    assert nas.read(request, reply) is not None


def test_chap_is_refused_not_evaluated() -> None:
    nas, srv = NasSimulator(), server()
    _, data = nas.chap_request(TESTBED_ACCOUNT)
    assert evaluate(srv.receive(data, NAS, NOW)).attempt.refusal == UNSUPPORTED_METHOD


def test_only_access_requests_are_served() -> None:
    nas, srv = NasSimulator(), server()
    _, data = nas.request(TESTBED_ACCOUNT, "Password-1123456")
    accounting = bytes([4]) + data[1:]
    assert srv.receive(accounting, NAS, NOW).reason == "not-access-request"  # type: ignore[union-attr]


def test_memory_is_bounded_new_requests_beyond_the_limit_are_dropped_as_busy() -> None:
    nas, srv = NasSimulator(), server(max_tracked=3, max_challenges=2)
    for i in range(3):
        _, data = nas.request(TESTBED_ACCOUNT, f"Password-{i}123456")
        evaluate(srv.receive(data, NAS, NOW))
    _, data = nas.request(TESTBED_ACCOUNT, "Password-9123456")
    assert srv.receive(data, NAS, NOW).reason == "busy"  # type: ignore[union-attr]
    assert isinstance(srv.receive(data, NAS, NOW + 30), Evaluate)  # the window passed
    assert srv.tracked == 1


def test_a_password_ending_in_six_digits_is_password_and_code() -> None:
    assert split_password_and_code("Secret-1123456") == ("Secret-1", "123456")
    assert split_password_and_code("Secret-1") == ("Secret-1", "")
    assert split_password_and_code("123456") == ("123456", "")
    assert split_password_and_code("Secret-1１２３４５６") == ("Secret-1１２３４５６", "")


def test_a_password_that_does_not_decrypt_to_text_is_dropped() -> None:
    nas, srv = NasSimulator(), server()
    request, _ = nas.request(TESTBED_ACCOUNT, "x")
    pad = hashlib.md5(TESTBED_SECRET + request.authenticator).digest()
    plain = b"\xff" + b"a" * 15  # not UTF-8
    request[2] = [bytes(a ^ b for a, b in zip(plain, pad, strict=True))]
    step = srv.receive(request.RequestPacket(), NAS, NOW)
    assert step == Drop("undecodable-password", "127.0.0.1", "bras-1")


def test_status_server_is_answered_alive_with_a_signed_accept_only_when_signed() -> None:
    from pyrad import packet as pyrad_packet

    from radius import radius_dictionary

    srv = server(require=False)
    status = pyrad_packet.AuthPacket(
        code=pyrad_packet.StatusServer,
        id=5,
        secret=TESTBED_SECRET,
        dict=radius_dictionary(),
        message_authenticator=True,
    )
    status.authenticator = status.CreateAuthenticator()
    step = srv.receive(status.RequestPacket(), NAS, NOW)
    assert isinstance(step, Send) and step.code == 2
    reply = pyrad_packet.AuthPacket(
        secret=TESTBED_SECRET, dict=radius_dictionary(), packet=step.data
    )
    assert status.VerifyReply(reply, step.data, enforce_ma=True)
    assert srv.tracked == 0  # never cached

    unsigned = pyrad_packet.AuthPacket(
        code=pyrad_packet.StatusServer, id=6, secret=TESTBED_SECRET, dict=radius_dictionary()
    )
    unsigned.authenticator = unsigned.CreateAuthenticator()
    assert srv.receive(unsigned.RequestPacket(), NAS, NOW).reason == "no-message-authenticator"  # type: ignore[union-attr]
