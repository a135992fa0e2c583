"""AuditEvent refuses malformed events at construction and normalises what it keeps."""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

import pytest

from audit import AuditEvent, AuditEventError

GOOD: dict[str, Any] = {
    "at": 1_700_000_000.25,
    "actor": "33068212345678@sxlss",
    "action": "login",
    "subject": "33068212345678@sxlss",
    "outcome": "ok",
}


def event(**changes: Any) -> AuditEvent:
    return AuditEvent(**{**GOOD, **changes})


def test_audit_event_error_is_a_value_error() -> None:
    assert issubclass(AuditEventError, ValueError)


def test_a_well_formed_event_keeps_its_values() -> None:
    e = event(reason="bad otp", unit="12345678", session_id="s-1", details={"n": 1, "x": None})
    assert (e.at, e.actor, e.action, e.subject, e.outcome) == (
        1_700_000_000.25,
        "33068212345678@sxlss",
        "login",
        "33068212345678@sxlss",
        "ok",
    )
    assert dict(e.details) == {"n": 1, "x": None}


def test_docstring_tells_callers_never_to_log_secrets() -> None:
    assert AuditEvent.__doc__ is not None
    assert "NEVER put a secret" in AuditEvent.__doc__


@pytest.mark.parametrize("field", ["actor", "action", "subject"])
@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_actor_action_and_subject_must_not_be_empty(field: str, value: str) -> None:
    with pytest.raises(AuditEventError, match=f"{field} must not be empty"):
        event(**{field: value})


@pytest.mark.parametrize("outcome", ["", "OK", "success", "refused ", "denied"])
def test_outcome_must_be_ok_refused_or_failed(outcome: str) -> None:
    with pytest.raises(AuditEventError, match="outcome"):
        event(outcome=outcome)


@pytest.mark.parametrize("outcome", ["ok", "refused", "failed"])
def test_the_three_outcomes_are_accepted(outcome: str) -> None:
    assert event(outcome=outcome).outcome == outcome


@pytest.mark.parametrize("field", ["actor", "action", "subject", "reason", "unit", "session_id"])
def test_text_fields_must_be_strings(field: str) -> None:
    with pytest.raises(AuditEventError, match=f"{field} must be a string, got int"):
        event(**{field: 5})


@pytest.mark.parametrize("field", ["actor", "reason", "unit", "session_id"])
def test_text_fields_refuse_nul_which_postgresql_cannot_store(field: str) -> None:
    with pytest.raises(AuditEventError, match="NUL"):
        event(**{field: "a\x00b"})


def test_text_fields_refuse_lone_surrogates_that_cannot_be_utf8() -> None:
    with pytest.raises(AuditEventError, match="not valid Unicode"):
        event(reason="\ud800")


def test_over_long_fields_are_refused_with_the_limit() -> None:
    with pytest.raises(AuditEventError, match="action is 65 characters long; the limit is 64"):
        event(action="a" * 65)


@pytest.mark.parametrize(
    "at", [math.nan, math.inf, -math.inf, -1.0, 253_402_300_800.0, True, "1700000000", None]
)
def test_at_must_be_finite_epoch_seconds(at: object) -> None:
    with pytest.raises(AuditEventError, match="audit event at must be epoch seconds"):
        event(at=at)


def test_at_is_normalised_to_a_float_and_minus_zero_to_zero() -> None:
    whole = event(at=1_700_000_000)
    assert isinstance(whole.at, float)
    assert whole.at == 1_700_000_000.0
    assert math.copysign(1.0, event(at=-0.0).at) == 1.0


@pytest.mark.parametrize(
    "details",
    [
        {"k": [1, 2]},
        {"k": {"nested": 1}},
        {"k": b"bytes"},
        {"k": object()},
        {"k": math.nan},
        {"k": math.inf},
        {1: "non-string key"},
        {"": "empty key"},
        ["not", "a", "mapping"],
    ],
)
def test_details_must_be_a_mapping_of_json_scalars(details: object) -> None:
    with pytest.raises(AuditEventError, match="details"):
        event(details=details)


def test_details_are_copied_so_later_changes_by_the_caller_do_not_leak_in() -> None:
    source: dict[str, Any] = {"attempt": 1}
    e = event(details=source)
    source["attempt"] = 2
    source["added"] = True
    assert dict(e.details) == {"attempt": 1}
    with pytest.raises(TypeError):
        e.details["attempt"] = 3  # type: ignore[index]


def test_events_are_frozen_and_hashable() -> None:
    e = event(details={"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.actor = "someone else"  # type: ignore[misc]
    assert hash(e) == hash(event(details={"a": 1}))
    assert e == event(details={"a": 1})
    assert e != event(details={"a": 2})


def test_enum_values_are_stored_as_their_plain_values() -> None:
    class Action(str, enum.Enum):  # noqa: UP042 - the mixin whose str() is not its value
        LOGIN = "login"

    class Attempts(enum.IntEnum):
        THREE = 3

    e = event(action=Action.LOGIN, details={"attempts": Attempts.THREE})
    assert type(e.action) is str
    assert e.action == "login"
    assert type(e.details["attempts"]) is int
