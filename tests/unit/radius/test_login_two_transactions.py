"""A dial-in login as ``ssgate serve`` runs it: the reservation in one transaction on
the database pool, only the hash on the login pool, then one transaction that settles
the attempt, checks the unit and ``max_sessions`` and writes the ``login`` event.

The same rules as the one-call path (tests/unit/radius/test_login.py), plus what the
folding adds: every outcome is audited in the transaction that decides it, and a
transaction that fails midway leaves nothing of itself."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

import audit
import auth
from radius.testing import TESTBED_ACCOUNT, TESTBED_NAS, DialInTestbed, TestPolicy


def two(engine: Engine, **kwargs: object) -> DialInTestbed:
    return DialInTestbed(engine, two_transactions=True, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def bed(sqlite_engine: Engine) -> DialInTestbed:
    return two(sqlite_engine)


def reply_code(bed: DialInTestbed, password: str, **kwargs: object) -> str:
    reply = bed.ask(password, **kwargs)
    assert reply is not None
    return reply.code_name


def test_only_the_hash_runs_on_the_login_pool_between_two_transactions(bed: DialInTestbed) -> None:
    reply = bed.ask(bed.password + bed.otp())
    assert reply is not None and reply.code_name == "Access-Accept"
    assert bed.runner.calls == ["reserve", "call:check", "_settled"]
    [login] = bed.logins()
    assert login.event.outcome == "ok" and login.event.session_id == reply.session_class
    assert login.event.actor == f"radius:{TESTBED_NAS}" and login.event.unit == "12345678"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [("wrong-password", "bad-password"), ("", "bad-otp")],
)
def test_each_refusal_is_audited_with_its_reason_in_the_settling_transaction(
    bed: DialInTestbed, typed: str, reason: str
) -> None:
    password = typed + bed.otp() if typed else bed.password + "000000"
    if not typed and bed.otp() == "000000":  # pragma: no cover - one step in a million
        password = bed.password + "000001"
    assert reply_code(bed, password) == "Access-Reject"
    assert [r.event.reason for r in bed.logins()] == [reason]
    assert bed.runner.calls == ["reserve", "call:check", "_settled"]


def test_the_same_code_again_is_refused_as_a_replay_and_across_the_channel(
    bed: DialInTestbed,
) -> None:
    code = bed.otp()
    assert reply_code(bed, bed.password + code) == "Access-Accept"
    assert reply_code(bed, bed.password + code) == "Access-Reject"
    assert not bed.channel_login(bed.password, code).ok
    assert bed.channel_login(bed.password, bed.otp(1)).ok
    assert reply_code(bed, bed.password + bed.otp(1)) == "Access-Reject"
    assert [r.event.reason for r in bed.logins()] == ["", "otp-reused", "otp-reused"]


def test_five_wrong_passwords_lock_the_account_for_the_channel_and_locked_is_audited(
    bed: DialInTestbed,
) -> None:
    for _ in range(5):
        assert reply_code(bed, "wrong-password" + bed.otp()) == "Access-Reject"
    assert bed.channel_login(bed.password, bed.otp()).reason == "locked"
    assert reply_code(bed, bed.password + bed.otp(1)) == "Access-Reject"
    reasons = [r.event.reason for r in bed.logins()]
    assert reasons == ["bad-password"] * 5 + ["locked"]


def test_a_lock_set_on_the_channel_refuses_dial_in(bed: DialInTestbed) -> None:
    for _ in range(5):
        assert not bed.channel_login("wrong-password", bed.otp()).ok
    assert reply_code(bed, bed.password + bed.otp()) == "Access-Reject"
    assert [r.event.reason for r in bed.logins()] == ["locked"]


def test_the_challenge_flow_accepts_the_code_in_the_second_request(bed: DialInTestbed) -> None:
    challenge = bed.ask(bed.password)
    assert challenge is not None and challenge.code_name == "Access-Challenge"
    assert reply_code(bed, bed.otp(), state=challenge.state) == "Access-Accept"
    assert [r.event.details["challenged"] for r in bed.logins()] == [True]


def test_a_unit_not_approved_uses_the_code_and_is_audited(bed: DialInTestbed) -> None:
    bed.approved_units.clear()
    code = bed.otp()
    assert reply_code(bed, bed.password + code) == "Access-Reject"
    assert bed.logins()[0].event.reason == "unit-unapproved"
    bed.approved_units.add("12345678")
    # The factors were right and the code is spent, as on the one-call path.
    assert reply_code(bed, bed.password + code) == "Access-Reject"
    assert bed.logins()[1].event.reason == "otp-reused"


def test_a_suspended_account_and_an_unknown_one_are_refused_and_audited(
    bed: DialInTestbed,
) -> None:
    assert reply_code(bed, "x" + bed.otp(), user_name="33068299999999@sxlss") == "Access-Reject"
    with bed.engine.begin() as conn:
        auth.set_account_status(
            conn, TESTBED_ACCOUNT, "suspended", reason="test", now=bed.clock.seconds()
        )
    assert reply_code(bed, bed.password + bed.otp()) == "Access-Reject"
    assert [r.event.reason for r in bed.logins()] == ["unknown-account", "account-suspended"]


def test_the_calling_station_policy_refuses_before_any_account_work(
    sqlite_engine: Engine,
) -> None:
    bed = two(sqlite_engine, policy=TestPolicy(allowed_sources=("10.20.0.0/16",)))
    assert reply_code(bed, bed.password + bed.otp(), calling_station="10.99.0.1") == "Access-Reject"
    assert [r.event.reason for r in bed.logins()] == ["source-denied"]
    assert bed.runner.calls == ["append"]
    with sqlite_engine.begin() as conn:
        state = auth.get_credential_state(conn, TESTBED_ACCOUNT)
        assert state is not None and state.total_failures == 0


def test_the_session_limit_counts_accepts_awaiting_their_start(sqlite_engine: Engine) -> None:
    bed = two(sqlite_engine, policy=TestPolicy(max_sessions=1))
    assert reply_code(bed, bed.password + bed.otp()) == "Access-Accept"
    bed.clock.advance(30)
    assert reply_code(bed, bed.password + bed.otp()) == "Access-Reject"
    assert bed.logins()[-1].event.reason == "too-many-sessions"


def test_a_failure_midway_writes_nothing_of_the_settling_transaction(bed: DialInTestbed) -> None:
    """The unit check raises inside the second transaction: no answer, no event, the
    code not spent and the lockout counters as the reservation left them; the NAS's
    retransmission is evaluated afresh and accepted, its one use of the code."""
    request, data = bed.nas.request(TESTBED_ACCOUNT, bed.password + bed.otp())
    bed.approved_units = None  # type: ignore[assignment]  # the unit check now raises
    assert bed.exchange(data) == []
    assert bed.logins() == []
    with bed.engine.begin() as conn:
        state = auth.get_credential_state(conn, TESTBED_ACCOUNT)
        assert state is not None
        assert state.totp_last_step is None  # the code was not used
        assert state.consecutive_failures == 1  # the reservation stands until a success
    bed.approved_units = {"12345678"}
    [answer] = bed.exchange(data)
    reply = bed.nas.read(request, answer)
    assert reply is not None and reply.code_name == "Access-Accept"
    [login] = bed.logins()
    assert login.event.outcome == "ok" and login.event.session_id == reply.session_class
    with bed.engine.begin() as conn:
        state = auth.get_credential_state(conn, TESTBED_ACCOUNT)
        assert state is not None and state.consecutive_failures == 0


def test_an_event_that_cannot_be_written_sends_no_accept(
    bed: DialInTestbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No dial-in session without its login event: the append fails, so the whole
    settlement rolls back and nothing is answered."""

    def broken(conn: object, event: audit.AuditEvent) -> None:
        raise RuntimeError("the audit table is gone")

    monkeypatch.setattr(audit, "append", broken)
    _request, data = bed.nas.request(TESTBED_ACCOUNT, bed.password + bed.otp())
    assert bed.exchange(data) == []
    with bed.engine.begin() as conn:
        state = auth.get_credential_state(conn, TESTBED_ACCOUNT)
        assert state is not None and state.totp_last_step is None
