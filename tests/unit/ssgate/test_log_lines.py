"""Process logs off a terminal are JSON lines: one object per line, no 0x1E."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger

from ssgate._serve import log_observer


def test_each_log_event_is_one_json_line_without_a_record_separator() -> None:
    out = io.StringIO()
    log = Logger(namespace="test", observer=log_observer(out))
    log.info("first {n}", n=1)
    log.warn("second {what}", what="x")
    text = out.getvalue()
    assert "\x1e" not in text
    lines = text.splitlines()
    assert len(lines) == 2
    events = [json.loads(line) for line in lines]
    assert [e["log_format"] for e in events] == ["first {n}", "second {what}"]


def test_a_logged_database_failure_carries_its_cause_and_no_parameters() -> None:
    """Issue 11: Twisted writes the exception as {"unpersistable": true}; the JSON line
    also says its type and the driver's message (a full disk is not a stopped server),
    without the statement's parameters."""
    from sqlalchemy import exc
    from twisted.python.failure import Failure

    id_number = "33068219900101123X"
    error = exc.OperationalError(
        "INSERT INTO persons (id_number) VALUES (?)",
        (id_number,),
        Exception("database or disk is full"),
        hide_parameters=True,
    )
    out = io.StringIO()
    log = Logger(namespace="test", observer=log_observer(out))
    log.failure("session poll failed", Failure(error))
    [line] = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["error"] == {
        "type": "sqlalchemy.exc.OperationalError",
        "message": "(builtins.Exception) database or disk is full",
    }
    assert id_number not in line
