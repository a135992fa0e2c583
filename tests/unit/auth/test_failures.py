"""A logged failure keeps its cause, and a background task that keeps failing is logged
at a rate a person can read: the first failure in full, a summary a minute, the
recovery (issue 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, exc, text
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from auth import RepeatedFailureLog, failure_cause

ID_NUMBER = "33068219900101123X"


def _database_error(tmp_path: Path) -> exc.OperationalError:
    """A real error of a database that cannot be opened, from a statement whose
    parameter is an ID number."""
    engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db", hide_parameters=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT :id"), {"id": ID_NUMBER})
    except exc.OperationalError as e:
        return e
    finally:
        engine.dispose()
    raise AssertionError("the database opened")


def test_a_database_error_gives_its_type_and_driver_message(tmp_path: Path) -> None:
    cause = failure_cause(_database_error(tmp_path))
    assert cause.type == "sqlalchemy.exc.OperationalError"
    assert cause.message == "(sqlite3.OperationalError) unable to open database file"


def test_the_message_is_one_bounded_line_without_sql_or_long_numbers() -> None:
    error = exc.OperationalError(
        "INSERT INTO persons (id_number) VALUES (?)", (ID_NUMBER,), Exception("disk full")
    )
    cause = failure_cause(error)
    assert cause.message == "(builtins.Exception) disk full"
    assert failure_cause(ValueError(f"no person {ID_NUMBER}")).message == "no person ***X"
    assert failure_cause(ValueError("x" * 5000)).message.endswith("…")
    assert len(failure_cause(ValueError("x" * 5000)).message) == 200
    assert failure_cause(KeyError("k")).type == "KeyError"


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = Logger(namespace="test", observer=self.events.append)

    @property
    def lines(self) -> list[tuple[str, str]]:
        return [(e["log_level"].name, e["log_format"].split(" ")[1]) for e in self.events]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(message: str = "unable to open database file") -> Failure:
    return Failure(exc.OperationalError("SELECT 1", {}, Exception(message)))


@pytest.fixture
def logged() -> tuple[Recorder, Clock, RepeatedFailureLog]:
    recorder, clock = Recorder(), Clock()
    return recorder, clock, RepeatedFailureLog(recorder.log, "session poll", clock=clock)


def test_a_failure_every_second_logs_once_then_a_summary_a_minute(
    logged: tuple[Recorder, Clock, RepeatedFailureLog],
) -> None:
    recorder, clock, failures = logged
    for _ in range(150):  # two and a half minutes of a poll every second
        failures.failed(_fail())
        clock.now += 1
    assert recorder.lines == [("critical", "failed"), ("error", "still"), ("error", "still")]
    first, summary, _ = recorder.events
    assert first["log_failure"] is not None  # the traceback, once
    assert first["error"]["type"] == "sqlalchemy.exc.OperationalError"
    assert (summary["count"], summary["total"]) == (60, 61)
    assert summary["error_message"] == "(builtins.Exception) unable to open database file"
    assert "log_failure" not in summary


def test_a_new_cause_is_logged_at_once(
    logged: tuple[Recorder, Clock, RepeatedFailureLog],
) -> None:
    recorder, clock, failures = logged
    failures.failed(_fail())
    clock.now += 1
    failures.failed(Failure(RuntimeError("a bug")))
    assert recorder.lines == [("critical", "failed"), ("critical", "failed")]


def test_the_recovery_is_logged_once_and_the_next_failure_in_full(
    logged: tuple[Recorder, Clock, RepeatedFailureLog],
) -> None:
    recorder, clock, failures = logged
    failures.succeeded(None)  # nothing to say while healthy
    for _ in range(5):
        failures.failed(_fail())
        clock.now += 1
    failures.succeeded({})
    failures.succeeded({})
    assert not failures.failing
    failures.failed(_fail())
    assert recorder.lines == [("critical", "failed"), ("info", "recovered"), ("critical", "failed")]
    recovered = recorder.events[1]
    assert (recovered["total"], recovered["seconds"]) == (5, 5.0)
    assert recovered["log_level"] is LogLevel.info
