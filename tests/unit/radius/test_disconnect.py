"""Disconnect (RFC 5176): a dial-in session the registry marks for ending reaches its
NAS as a signed Disconnect-Request, resent until answered; an ACK (or the NAS no longer
having it) ends the session; every outcome is audited with the session id."""

from __future__ import annotations

from typing import Any

import pytest
from pyrad import packet as pyrad_packet
from sqlalchemy import Engine

from radius import DisconnectPoller, DisconnectSender
from radius._packets import radius_dictionary
from radius.testing import TESTBED_ACCOUNT, TESTBED_SECRET, DatagramRecorder, DialInTestbed


class Dialled:
    """A testbed with one accounted dial-in session and a disconnect poller."""

    def __init__(self, engine: Engine) -> None:
        self.bed = bed = DialInTestbed(engine)
        reply = bed.ask(bed.password + bed.otp())
        assert reply is not None
        self.sid = reply.session_class
        bed.report(bed.nas.accounting(1, session_class=self.sid, acct_session_id="S-9")[1])
        self.sender = DisconnectSender(bed.clock, tries=3, timeout=2.0)
        self.wire = DatagramRecorder()
        self.sender.makeConnection(self.wire)  # type: ignore[arg-type]
        self.poller = DisconnectPoller(
            bed.runner,
            bed.sessions,
            self.sender,
            bed.nas_directory,
            bed.clock,
        )

    def received(self, i: int = -1) -> Any:
        data, addr = self.wire.sent[i]
        assert addr == ("127.0.0.1", 3799)
        request = pyrad_packet.CoAPacket(
            secret=TESTBED_SECRET, dict=radius_dictionary(), packet=data
        )
        assert request.code == 40
        assert request.VerifyCoARequest() and request.verify_message_authenticator()
        return request

    def answer(
        self, request: Any, code: int = 41, cause: int | None = None, secret: bytes = TESTBED_SECRET
    ) -> None:
        request.secret = secret
        reply = request.CreateReply()
        reply.code = code
        if cause is not None:
            reply[101] = [cause.to_bytes(4, "big")]
        self.sender.datagramReceived(reply.ReplyPacket(), ("127.0.0.1", 3799))


@pytest.fixture
def dialled(sqlite_engine: Engine) -> Dialled:
    return Dialled(sqlite_engine)


def test_nothing_is_sent_for_sessions_nobody_asked_to_end(dialled: Dialled) -> None:
    dialled.poller.tick()
    assert dialled.wire.sent == []


def test_an_officers_kill_reaches_the_nas_and_the_ack_ends_the_session(dialled: Dialled) -> None:
    dialled.bed.sessions.kills[dialled.sid] = "officer-kill"
    done = dialled.poller.tick()
    request = dialled.received()
    assert request["User-Name"] == [TESTBED_ACCOUNT] and request["Acct-Session-Id"] == ["S-9"]
    assert request["Framed-IP-Address"] == ["10.64.0.7"]
    assert request["Event-Timestamp"] == [int(dialled.bed.clock.seconds())]
    dialled.answer(request)
    assert done.called
    assert dialled.bed.sessions.sessions[dialled.sid].end_reason == "officer-kill"
    [event] = dialled.bed.events("session.disconnect")
    assert (event.event.outcome, event.event.reason, event.event.session_id) == (
        "ok",
        "officer-kill",
        dialled.sid,
    )
    # Claimed once: the next round sends nothing more.
    dialled.poller.tick()
    assert len(dialled.wire.sent) == 1


def test_an_unanswered_request_is_resent_then_tried_again_for_three_rounds_then_given_up(
    dialled: Dialled,
) -> None:
    dialled.bed.sessions.kills[dialled.sid] = "account-suspended"
    for _ in range(3):
        dialled.poller.tick()
        for _ in range(3):
            dialled.bed.clock.advance(2.0)
    dialled.poller.tick()  # given up: nothing more is sent
    assert len(dialled.wire.sent) == 9  # 3 rounds of 3 sends
    assert len({data for data, _ in dialled.wire.sent[:3]}) == 1  # resends: the same packet
    events = dialled.bed.events("session.disconnect")
    assert [(e.event.outcome, e.event.reason, e.event.details["final"]) for e in events] == [
        ("failed", "no-answer", False),
        ("failed", "no-answer", False),
        ("failed", "no-answer", True),
    ]
    assert dialled.bed.sessions.sessions[dialled.sid].ended_at is None


def test_a_nak_is_recorded_and_session_context_not_found_ends_the_session(dialled: Dialled) -> None:
    dialled.bed.sessions.kills[dialled.sid] = "officer-kill"
    dialled.poller.tick()
    dialled.answer(dialled.received(), code=42, cause=503)
    assert dialled.bed.sessions.sessions[dialled.sid].end_reason == "officer-kill"
    [event] = dialled.bed.events("session.disconnect")
    assert event.event.details["answer"] == "nak:503"


def test_an_answer_signed_with_another_secret_is_ignored(dialled: Dialled) -> None:
    dialled.bed.sessions.kills[dialled.sid] = "officer-kill"
    done = dialled.poller.tick()
    dialled.answer(dialled.received(), secret=b"not-the-secret-0123456789abcdef")
    assert not done.called
    dialled.answer(dialled.received())
    assert done.called
