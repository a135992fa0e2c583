"""The node registry's timer (issue 13), on a fake clock and a fake database: it
registers at start, beats and reaps every interval — never reaping on the registering
beat, which leaves a restart's own recovery to go first — one round at a time, logs a
failing database once, and records a clean stop."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import LogEvent, LogLevel, capturedLogs

from ssgate._nodes import NodeRegistry


class FakeDatabase:
    """Answers each transaction at once (or holds them), noting which ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.held: list[Deferred[Any]] = []
        self.hold = False
        self.broken = False
        self.reaped: dict[str, int] = {}

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.ran.append(fn.__name__)
        if self.broken:
            return fail(ConnectionError("database down"))
        if self.hold:
            d: Deferred[Any] = Deferred()
            self.held.append(d)
            return d
        return succeed(self.reaped if fn.__name__ == "reap_lost_nodes" else None)

    read = run


@pytest.fixture
def logged() -> Iterator[Sequence[LogEvent]]:
    with capturedLogs() as events:
        yield events


def registry(db: FakeDatabase, clock: task.Clock) -> NodeRegistry:
    return NodeRegistry(db, clock, name="gw1:10", host="gw1", pid=10, version="t")


def test_registers_at_start_then_beats_and_reaps_every_interval() -> None:
    db, clock = FakeDatabase(), task.Clock()
    node = registry(db, clock)
    node.startService()
    assert db.ran == ["register_node"]
    clock.advance(5)
    assert db.ran == ["register_node", "node_heartbeat", "reap_lost_nodes"]
    node.stopService()
    assert db.ran[-1] == "node_stopped"
    assert not clock.getDelayedCalls()


def test_a_slow_database_gets_one_round_at_a_time() -> None:
    db, clock = FakeDatabase(), task.Clock()
    node = registry(db, clock)
    db.hold = True
    node.startService()
    clock.advance(5)
    clock.advance(5)
    assert db.ran == ["register_node"]
    db.hold = False
    db.held[0].callback(None)
    clock.advance(5)
    assert db.ran == ["register_node", "node_heartbeat", "reap_lost_nodes"]
    node.stopService()


def test_a_failing_database_is_logged_once_and_the_recovery_once(
    logged: Sequence[LogEvent],
) -> None:
    db, clock = FakeDatabase(), task.Clock()
    node = registry(db, clock)
    db.broken = True
    node.startService()
    clock.advance(5)
    clock.advance(5)
    warnings = [e for e in logged if e["log_level"] is LogLevel.warn]
    assert len(warnings) == 1 and "heartbeat failed" in warnings[0]["log_format"]
    db.broken = False
    clock.advance(5)  # registers now
    db.reaped = {"gw2:20": 3}
    clock.advance(5)
    texts = [e["log_format"] for e in logged]
    assert sum("answers again" in t for t in texts) == 1
    [lost] = [e for e in logged if "stopped reporting" in e["log_format"]]
    assert (lost["lost"], lost["count"]) == ("gw2:20", 3)
    node.stopService()
