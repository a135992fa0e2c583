"""Accounting (RFC 2866) on a real database with pyrad-built reports: a Start for a
session this server granted becomes a registry session and ``radius_sessions`` row,
Interim updates it, Stop ends it with the terminate cause; each audited with the
Accept's session id.  Reports are verified, idempotent and acknowledged once stored."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from radius._schema import radius_sessions
from radius.testing import TESTBED_ACCOUNT, DialInTestbed

START, STOP, INTERIM, ON = 1, 2, 3, 7


@pytest.fixture
def bed(sqlite_engine: Engine) -> DialInTestbed:
    return DialInTestbed(sqlite_engine)


def granted(bed: DialInTestbed) -> str:
    reply = bed.ask(bed.password + bed.otp())
    assert reply is not None and reply.code_name == "Access-Accept"
    return reply.session_class


def acknowledged(bed: DialInTestbed, request: object, data: bytes) -> None:
    [answer] = bed.report(data)
    reply = bed.nas.decode(answer)
    assert reply.code == 5  # Accounting-Response
    assert request.VerifyReply(reply, answer)  # type: ignore[attr-defined]


def test_start_interim_stop_make_one_session_with_bytes_and_end_cause(bed: DialInTestbed) -> None:
    sid = granted(bed)
    request, data = bed.nas.accounting(START, session_class=sid)
    acknowledged(bed, request, data)
    session = bed.sessions.sessions[sid]
    assert (session.account, session.unit_code, session.peer, session.node) == (
        TESTBED_ACCOUNT,
        "12345678",
        "10.64.0.7",
        "radius:bras-test",
    )

    bed.clock.advance(300)
    request, data = bed.nas.accounting(
        INTERIM, session_class=sid, bytes_in=5 * 2**32 + 7, bytes_out=900
    )
    acknowledged(bed, request, data)
    assert (session.bytes_in, session.bytes_out, session.last_seen_at) == (
        5 * 2**32 + 7,
        900,
        bed.clock.seconds(),
    )

    bed.clock.advance(300)
    request, data = bed.nas.accounting(
        STOP, session_class=sid, bytes_in=10_000, bytes_out=20_000, terminate_cause=1
    )
    acknowledged(bed, request, data)
    assert (session.end_reason, session.bytes_in, session.bytes_out) == (
        "nas-user-request",
        10_000,
        20_000,
    )

    with bed.engine.begin() as conn:
        row = conn.execute(select(radius_sessions)).one()
    assert (row.nas, row.nas_port, row.acct_session_id, row.framed_ip) == (
        "bras-test",
        17,
        "acct-1",
        "10.64.0.7",
    )
    assert (row.end_reason, row.bytes_in, row.bytes_out) == ("nas-user-request", 10_000, 20_000)

    start, end = bed.events("session.start", "session.end")
    assert (start.event.actor, start.event.session_id, start.event.outcome) == (
        "radius:bras-test",
        sid,
        "ok",
    )
    assert (end.event.session_id, end.event.reason, end.event.details["bytes_out"]) == (
        sid,
        "nas-user-request",
        20_000,
    )
    assert end.event.unit == "12345678"


def test_a_start_for_a_session_this_server_did_not_grant_is_not_recorded_but_acknowledged(
    bed: DialInTestbed,
) -> None:
    request, data = bed.nas.accounting(START, session_class="0" * 32)
    acknowledged(bed, request, data)
    assert bed.sessions.sessions == {}
    [refused] = bed.events("session.start")
    assert (refused.event.outcome, refused.event.reason) == ("refused", "unknown-session")


def test_a_class_granted_to_another_account_does_not_start_a_session(bed: DialInTestbed) -> None:
    sid = granted(bed)
    _, data = bed.nas.accounting(START, session_class=sid, user_name="33068299999999@sxlss")
    bed.report(data)
    assert bed.sessions.sessions == {}


def test_a_repeated_stop_is_acknowledged_and_recorded_once(bed: DialInTestbed) -> None:
    sid = granted(bed)
    bed.report(bed.nas.accounting(START, session_class=sid)[1])
    _, stop = bed.nas.accounting(STOP, session_class=sid, terminate_cause=4)
    first, again = bed.report(stop), bed.report(stop)
    assert first == again and len(first) == 1  # the cached response
    # A Stop with a new authenticator (e.g. Acct-Delay-Time changed) is stored, changes nothing.
    bed.report(bed.nas.accounting(STOP, session_class=sid, terminate_cause=1)[1])
    assert bed.sessions.sessions[sid].end_reason == "idle-timeout"
    assert len(bed.events("session.end")) == 1


def test_a_nas_that_does_not_echo_class_is_followed_by_its_acct_session_id(
    bed: DialInTestbed,
) -> None:
    sid = granted(bed)
    bed.report(bed.nas.accounting(START, session_class=sid, acct_session_id="A-77")[1])
    bed.report(bed.nas.accounting(STOP, acct_session_id="A-77", terminate_cause=2)[1])
    assert bed.sessions.sessions[sid].end_reason == "nas-lost-carrier"


def test_accounting_on_ends_every_open_session_of_the_nas(bed: DialInTestbed) -> None:
    sid = granted(bed)
    bed.report(bed.nas.accounting(START, session_class=sid)[1])
    bed.report(bed.nas.accounting(ON)[1])
    assert bed.sessions.sessions[sid].end_reason == "nas-reboot"


def test_reports_with_a_wrong_request_authenticator_are_dropped(sqlite_engine: Engine) -> None:
    bed = DialInTestbed(sqlite_engine)
    sid = granted(bed)
    bed.nas.secret = b"not-the-shared-secret-0123456789"
    assert bed.report(bed.nas.accounting(START, session_class=sid)[1]) == []
    assert bed.accounting_server.drops["bad-request-authenticator"] == 1
    assert bed.report(bed.nas.accounting(START, session_class=sid)[1], ("192.0.2.1", 1813)) == []
    assert bed.accounting_server.drops["unknown-nas"] == 1
    assert bed.sessions.sessions == {}


def test_a_report_that_cannot_be_stored_is_not_acknowledged_so_the_nas_sends_it_again(
    bed: DialInTestbed,
) -> None:
    sid = granted(bed)
    _, data = bed.nas.accounting(START, session_class=sid)
    sessions, bed.sessions = bed.sessions, None  # type: ignore[assignment]  # storing raises
    assert bed.report(data) == []
    bed.sessions = sessions
    assert len(bed.report(data)) == 1
    assert sid in bed.sessions.sessions


def test_only_the_nas_that_started_a_session_reports_on_it(sqlite_engine: Engine) -> None:
    from radius import AccountingServer, NasClient, NasDirectory, parse_networks
    from radius.testing import NasSimulator

    bed = DialInTestbed(sqlite_engine)
    sid = granted(bed)
    bed.report(bed.nas.accounting(START, session_class=sid)[1])
    other_secret = b"the-other-nas-shared-secret-0123"
    other = NasClient("bras-other", parse_networks(["192.0.2.0/24"]), other_secret)
    bed.accounting.server = AccountingServer(NasDirectory([bed.nas_client, other]))
    _, stop = NasSimulator(secret=other_secret).accounting(
        STOP, session_class=sid, terminate_cause=1
    )
    assert len(bed.report(stop, ("192.0.2.5", 1813))) == 1  # acknowledged, not applied
    assert bed.sessions.sessions[sid].ended_at is None
