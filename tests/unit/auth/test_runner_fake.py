"""The one fake runner, :class:`auth.testing.SynchronousRunner`: which pool each call is
on, what it records, and how failures come back.  (Transactions and hold/release are
pinned in ``tests/unit/gateway/test_testing.py``.)"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from auth import Runner
from auth.testing import SynchronousRunner, runner_pool


def result_of(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    [result] = out
    return result


def test_each_call_knows_its_pool_and_the_reactor_is_on_none() -> None:
    runner: Runner = SynchronousRunner()
    seen: list[object] = []
    d = runner.run(lambda conn: runner_pool.get())
    d.addCallback(lambda pool: seen.append((pool, runner_pool.get())))
    runner.call(runner_pool.get).addCallback(seen.append)
    assert seen == [("database", None), "login"]
    assert runner_pool.get() is None


def test_a_held_call_runs_on_its_pool_when_released() -> None:
    runner = SynchronousRunner()
    runner.hold()
    d = runner.call(runner_pool.get)
    assert [h.pool for h in runner.held] == ["login"] and not d.called
    runner.release()
    assert result_of(d) == "login"


def test_without_an_engine_the_callable_gets_no_connection() -> None:
    def echo(conn: Any, value: int, *, twice: bool = False) -> tuple[Any, int]:
        return conn, value * (2 if twice else 1)

    assert result_of(SynchronousRunner().run(echo, 21, twice=True)) == (None, 42)


def test_calls_are_recorded_as_made_with_the_login_pool_marked() -> None:
    def recording_refusals(conn: Any) -> None: ...

    def authenticate() -> None: ...

    runner = SynchronousRunner()
    runner.run(recording_refusals)
    runner.call(authenticate)
    runner.hold()
    runner.run(recording_refusals)
    assert runner.calls == ["recording_refusals", "call:authenticate", "recording_refusals"]


def test_an_exception_comes_back_as_a_failure_not_raised() -> None:
    def broken() -> None:
        raise KeyError("x")

    failure = result_of(SynchronousRunner().call(broken))
    assert isinstance(failure, Failure) and failure.check(KeyError)
