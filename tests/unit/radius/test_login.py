"""A dial-in login decided by the channel's own checks on a real database: one
account store, one lockout, one TOTP replay guard, one audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import audit
import auth
from radius._usage_store import AWAITING_START_SECONDS, awaiting_start
from radius.testing import TESTBED_ACCOUNT, TESTBED_NAS, DialInTestbed, TestPolicy


@pytest.fixture
def bed(sqlite_engine: Engine) -> DialInTestbed:
    return DialInTestbed(sqlite_engine)


def test_password_and_code_are_accepted_with_the_session_id_as_class_and_the_policys_timeouts(
    sqlite_engine: Engine,
) -> None:
    bed = DialInTestbed(
        sqlite_engine, policy=TestPolicy(idle_timeout_seconds=900, max_lifetime_seconds=7200)
    )
    reply = bed.ask(bed.password + bed.otp())
    assert reply is not None and reply.code_name == "Access-Accept"
    assert (reply.session_timeout, reply.idle_timeout) == (7200, 900)
    [login] = bed.logins()
    e = login.event
    assert (e.actor, e.subject, e.outcome, e.session_id) == (
        f"radius:{TESTBED_NAS}",
        TESTBED_ACCOUNT,
        "ok",
        reply.session_class,
    )
    assert e.unit == "12345678" and e.details["via"] == "radius" and e.details["nas"] == TESTBED_NAS
    assert len(reply.session_class) == 32


def test_the_same_code_again_is_refused_as_a_replay(bed: DialInTestbed) -> None:
    code = bed.otp()
    assert bed.ask(bed.password + code).code_name == "Access-Accept"  # type: ignore[union-attr]
    again = bed.ask(bed.password + code)
    assert again is not None and again.code_name == "Access-Reject"
    assert [r.event.reason for r in bed.logins()] == ["", "otp-reused"]


def test_a_code_used_on_the_channel_is_refused_on_radius(bed: DialInTestbed) -> None:
    code = bed.otp()
    assert bed.channel_login(bed.password, code).ok
    assert bed.ask(bed.password + code).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.logins()[-1].event.reason == "otp-reused"


def test_a_code_used_on_radius_is_refused_on_the_channel(bed: DialInTestbed) -> None:
    code = bed.otp()
    assert bed.ask(bed.password + code).code_name == "Access-Accept"  # type: ignore[union-attr]
    assert bed.channel_login(bed.password, code).reason == "otp-reused"


def test_five_wrong_passwords_over_radius_lock_the_account_for_the_channel(
    bed: DialInTestbed,
) -> None:
    for i in range(5):
        assert bed.ask(f"Wrong-password-{i}" + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.channel_login(bed.password, bed.otp()).reason == "locked"


def test_five_wrong_passwords_on_the_channel_lock_the_account_for_radius(
    bed: DialInTestbed,
) -> None:
    for i in range(5):
        assert bed.channel_login(f"Wrong-password-{i}", bed.otp()).reason == "bad-password"
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.logins()[-1].event.reason == "locked"


def test_the_challenge_flow_accepts_the_code_in_the_second_request(bed: DialInTestbed) -> None:
    challenge = bed.ask(bed.password)
    assert challenge is not None and challenge.code_name == "Access-Challenge"
    assert bed.logins() == []  # a challenge decides nothing
    reply = bed.ask(bed.otp(), state=challenge.state)
    assert reply is not None and reply.code_name == "Access-Accept"
    assert bed.logins()[0].event.details["challenged"] is True


def test_a_wrong_password_in_the_challenge_flow_is_rejected_without_saying_which_factor(
    bed: DialInTestbed,
) -> None:
    challenge = bed.ask("Not-the-password")
    reply = bed.ask(bed.otp(), state=challenge.state)  # type: ignore[union-attr]
    assert reply is not None and reply.code_name == "Access-Reject"
    assert reply.reply_message == "登录失败 / Login failed"
    assert bed.logins()[0].event.reason == "bad-password"


def test_the_calling_station_must_be_in_the_accounts_allowed_sources(sqlite_engine: Engine) -> None:
    bed = DialInTestbed(sqlite_engine, policy=TestPolicy(allowed_sources=("10.20.0.0/16",)))
    assert (
        bed.ask(bed.password + bed.otp(), calling_station="10.99.0.1").code_name == "Access-Reject"
    )  # type: ignore[union-attr]
    assert (
        bed.ask(bed.password + bed.otp(), calling_station="02-00-00-00-00-01").code_name
        == "Access-Reject"
    )  # type: ignore[union-attr]
    assert [r.event.reason for r in bed.logins()] == ["source-denied", "source-denied"]
    # Refused before the password is looked at: nothing was charged to the account.
    with sqlite_engine.begin() as conn:
        assert auth.get_credential_state(conn, TESTBED_ACCOUNT).total_failures == 0  # type: ignore[union-attr]
    reply = bed.ask(bed.password + bed.otp(), calling_station="10.20.3.4")
    assert reply is not None and reply.code_name == "Access-Accept"
    assert bed.logins()[-1].event.details["source"] == "10.20.3.4"


def test_a_unit_not_approved_for_online_service_is_refused(bed: DialInTestbed) -> None:
    bed.approved_units.clear()
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.logins()[0].event.reason == "unit-unapproved"


def test_a_suspended_account_is_refused(bed: DialInTestbed) -> None:
    with bed.engine.begin() as conn:
        auth.set_account_status(
            conn, TESTBED_ACCOUNT, "suspended", reason="test", now=bed.clock.seconds()
        )
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.logins()[0].event.reason == "account-suspended"


def test_an_unknown_challenge_state_is_rejected_and_audited(bed: DialInTestbed) -> None:
    reply = bed.ask(bed.otp(), state=b"\x00" * 16)
    assert reply is not None and reply.code_name == "Access-Reject"
    assert bed.logins()[0].event.reason == "challenge-unknown"


def test_a_retransmitted_request_is_answered_from_cache_and_audited_once(
    bed: DialInTestbed,
) -> None:
    _, data = bed.nas.request(TESTBED_ACCOUNT, bed.password + bed.otp())
    first = bed.exchange(data)
    second = bed.exchange(data)
    assert first == second and len(first) == 1
    assert len(bed.logins()) == 1
    assert [c for c in bed.runner.calls if c.startswith("call:")] == ["call:authenticate"]


def test_hashing_runs_on_the_login_pool_and_the_database_work_on_the_database_pool(
    bed: DialInTestbed,
) -> None:
    bed.ask(bed.password + bed.otp())
    assert bed.runner.calls == [
        "call:authenticate",
        "_unit_admitted",
        "_sessions_in_use",
        "append",
    ]


def test_a_failing_evaluation_sends_nothing_and_a_retransmission_is_evaluated_again(
    bed: DialInTestbed,
) -> None:
    request, data = bed.nas.request(TESTBED_ACCOUNT, bed.password + bed.otp())
    bed.approved_units = None  # type: ignore[assignment]  # the unit check now raises
    assert bed.exchange(data) == []
    bed.approved_units = {"12345678"}
    # The code was accepted by the failed attempt (its step is used): a retransmission is
    # evaluated afresh and refused as a replay, never accepted twice.
    [answer] = bed.exchange(data)
    assert bed.nas.read(request, answer).code_name == "Access-Reject"  # type: ignore[union-attr]


def test_the_concurrent_session_limit_counts_open_sessions(sqlite_engine: Engine) -> None:
    bed = DialInTestbed(sqlite_engine, policy=TestPolicy(max_sessions=1))
    first = bed.ask(bed.password + bed.otp())
    assert first is not None and first.code_name == "Access-Accept"
    bed.report(bed.nas.accounting(1, session_class=first.session_class)[1])
    bed.clock.advance(30)
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.logins()[-1].event.reason == "too-many-sessions"


def test_an_accept_whose_accounting_start_has_not_come_counts_towards_the_limit(
    sqlite_engine: Engine,
) -> None:
    """max_sessions = 1: an Access-Accept without its accounting Start yet holds the
    place, so a second login a step later is refused; once the Start has not come for
    AWAITING_START_SECONDS the place is free again."""
    bed = DialInTestbed(sqlite_engine, policy=TestPolicy(max_sessions=1))
    first = bed.ask(bed.password + bed.otp())
    assert first is not None and first.code_name == "Access-Accept"
    bed.clock.advance(30)
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.logins()[-1].event.reason == "too-many-sessions"
    bed.clock.advance(AWAITING_START_SECONDS)
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Accept"  # type: ignore[union-attr]


def test_a_started_dial_in_session_is_counted_once_not_as_open_and_awaiting(
    sqlite_engine: Engine,
) -> None:
    """max_sessions = 2: after the first Accept's Start the session is in the registry and
    no longer awaited, so a second login is accepted and a third refused."""
    bed = DialInTestbed(sqlite_engine, policy=TestPolicy(max_sessions=2))
    first = bed.ask(bed.password + bed.otp())
    assert first is not None and first.code_name == "Access-Accept"
    bed.report(bed.nas.accounting(1, session_class=first.session_class)[1])
    bed.clock.advance(30)
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Accept"  # type: ignore[union-attr]
    bed.clock.advance(30)
    assert bed.ask(bed.password + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.logins()[-1].event.reason == "too-many-sessions"


def test_a_refused_or_channel_login_is_not_a_session_awaiting_its_start(
    bed: DialInTestbed,
) -> None:
    """Only a NAS's ok login is awaited: refusals and the channel's own logins (which the
    gateway records in the registry itself) are not counted."""
    assert bed.ask("wrong" + bed.otp()).code_name == "Access-Reject"  # type: ignore[union-attr]
    assert bed.channel_login(bed.password, bed.otp(1)).ok
    with bed.engine.begin() as conn:  # the event the gateway writes for that login
        audit.append(
            conn,
            audit.AuditEvent(
                at=bed.clock.seconds(),
                actor=f"channel:{TESTBED_ACCOUNT}",
                action="login",
                subject=TESTBED_ACCOUNT,
                outcome="ok",
                session_id="c" * 32,
            ),
        )
    with bed.engine.begin() as conn:
        assert awaiting_start(conn, TESTBED_ACCOUNT, now=bed.clock.seconds()) == 0
