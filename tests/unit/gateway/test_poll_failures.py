"""The gateway's session poll while the database is down (issue 11): one critical
line with the cause, then a summary a minute — not a traceback every second — and a
line when the database is back."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import exc
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, globalLogPublisher

from gateway import GatewayContext, GatewayNode


class Database:
    """A runner whose database is down until :attr:`up`."""

    def __init__(self) -> None:
        self.up = False

    def run(self, fn: object, *args: object, **kwargs: object) -> Deferred[Any]:
        if not self.up:
            return fail(
                exc.OperationalError(
                    "SELECT …", {}, Exception("connection refused"), hide_parameters=True
                )
            )
        return succeed({})


def test_a_poll_failing_every_second_is_logged_once_a_minute_and_its_recovery() -> None:
    clock = MemoryReactorClock()
    db = Database()
    ctx = GatewayContext(
        clock=clock,
        portal=cast(Any, None),  # no logins in this test
        db=cast(Any, db),
        identity_key=b"k" * 32,
        resume_key=b"r" * 32,
        services={},
        policy_for=cast(Any, None),
        node="node-1",
    )
    node = GatewayNode(ctx, poll_interval=1.0)
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        node.startService()
        for _ in range(150):
            clock.advance(1)
        db.up = True
        clock.advance(1)
        node.stopService()
    finally:
        globalLogPublisher.removeObserver(events.append)
    mine = [e for e in events if e.get("task") == "session poll"]
    assert [e["log_level"].name for e in mine] == ["critical", "error", "error", "info"]
    assert mine[0]["error"] == {
        "type": "sqlalchemy.exc.OperationalError",
        "message": "(builtins.Exception) connection refused",
    }
    assert "recovered" in mine[-1]["log_format"] and mine[-1]["total"] == 150
