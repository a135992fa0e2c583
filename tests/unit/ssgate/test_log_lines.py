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


def test_every_line_names_the_node_in_json_and_as_the_system_on_a_terminal() -> None:
    """Issue 13: several nodes' lines, once collected, say which node wrote each."""
    from twisted.logger import formatEventAsClassicLogText

    from ssgate._serve import with_node_name

    out = io.StringIO()
    log = Logger(namespace="test", observer=with_node_name(log_observer(out), "gw1:4242"))
    log.info("hello {n}", n=1)
    [event] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (event["node"], event["log_system"]) == ("gw1:4242", "gw1:4242")

    seen: list[str] = []
    text_log = Logger(
        namespace="test",
        observer=with_node_name(
            lambda e: seen.append(formatEventAsClassicLogText(e) or ""), "gw1:4242"
        ),  # type: ignore[arg-type]
    )
    text_log.info("hello")
    assert "[gw1:4242] hello" in seen[0]
