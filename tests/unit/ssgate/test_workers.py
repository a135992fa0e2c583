"""``serve --workers N``'s supervision (:class:`ssgate._workers.WorkerSupervisor`) on a
``MemoryReactorClock`` with fake processes: start, restart with back-off, start-up
failure, orderly stop, kill after the drain; and the small pure pieces (names, seats,
the default count)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import pytest
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.testing import MemoryReactorClock

from ssgate._workers import (
    WORKER_ENV,
    WORKERS_ENV,
    WorkerSeat,
    WorkerSupervisor,
    default_workers,
    worker_node_name,
)


@dataclass
class FakeProcess:
    pid: int
    signals: list[int] = field(default_factory=list)
    gone: bool = False

    def signalProcess(self, signum: object) -> None:
        if self.gone:
            raise ProcessExitedAlready()
        assert isinstance(signum, int)
        self.signals.append(signum)


class Spawner:
    def __init__(self) -> None:
        self.started: list[tuple[int, FakeProcess]] = []

    def __call__(self, index: int) -> FakeProcess:
        process = FakeProcess(pid=1000 + len(self.started))
        self.started.append((index, process))
        return process

    def latest(self, index: int) -> FakeProcess:
        return [p for i, p in self.started if i == index][-1]


def running(
    count: int = 2, **kwargs: float
) -> tuple[WorkerSupervisor, Spawner, MemoryReactorClock, list[str]]:
    """A supervisor whose *count* workers have all reported ready."""
    clock, spawn, banners = MemoryReactorClock(), Spawner(), []
    supervisor = WorkerSupervisor(
        count, spawn, clock, kill_after=40, on_all_ready=lambda: banners.append("up"), **kwargs
    )
    supervisor.start()
    for i in range(count):
        supervisor.ready(i)
    return supervisor, spawn, clock, banners


def test_every_worker_starts_and_the_banner_comes_once_all_serve() -> None:
    clock, spawn, banners = MemoryReactorClock(), Spawner(), []
    supervisor = WorkerSupervisor(
        3, spawn, clock, kill_after=40, on_all_ready=lambda: banners.append("up")
    )
    supervisor.start()
    assert [i for i, _ in spawn.started] == [0, 1, 2]
    supervisor.ready(0)
    supervisor.ready(2)
    assert banners == []
    supervisor.ready(1)
    assert banners == ["up"]
    supervisor.ready(1)  # a later ready (a restart) does not print it again
    assert banners == ["up"]


def test_a_worker_that_dies_is_started_again_after_the_back_off_and_the_others_are_left_alone() -> (
    None
):
    supervisor, spawn, clock, _ = running()
    sibling = spawn.latest(0)
    supervisor.exited(1, 137)  # kill -9
    assert len(spawn.started) == 2  # not at once
    clock.advance(0.9)
    assert len(spawn.started) == 2
    clock.advance(0.1)
    assert spawn.started[-1][0] == 1
    assert supervisor.pids() == [sibling.pid, spawn.latest(1).pid]
    assert sibling.signals == []
    assert supervisor.restarts == 1
    assert not supervisor.finished.called


def test_the_back_off_doubles_for_a_worker_that_keeps_dying_and_resets_once_it_ran_a_while() -> (
    None
):
    supervisor, spawn, clock, _ = running(backoff_first=1, backoff_max=8, stable_seconds=60)
    waits = []
    for _ in range(6):
        before = len(spawn.started)
        supervisor.exited(0, 1)
        waited = 0.0
        while len(spawn.started) == before:
            clock.advance(0.5)
            waited += 0.5
        waits.append(waited)
    assert waits == [1, 2, 4, 8, 8, 8]
    clock.advance(61)  # the latest start ran a minute: a fresh failure waits 1 s again
    before = len(spawn.started)
    supervisor.exited(0, 1)
    clock.advance(1)
    assert len(spawn.started) == before + 1


def test_a_worker_failing_while_the_workers_start_stops_them_all_with_status_1() -> None:
    clock, spawn = MemoryReactorClock(), Spawner()
    supervisor = WorkerSupervisor(2, spawn, clock, kill_after=40)
    supervisor.start()
    supervisor.ready(0)
    supervisor.exited(1, 1)  # e.g. the database is unreachable: not retried forever
    assert spawn.latest(0).signals == [signal.SIGTERM]
    clock.advance(10)
    assert len(spawn.started) == 2  # no restart
    assert not supervisor.finished.called
    supervisor.exited(0, 0)
    assert supervisor.finished.result == 1


def test_stop_drains_every_worker_and_finishes_with_0_once_all_exited_cleanly() -> None:
    supervisor, spawn, clock, _ = running()
    d = supervisor.stop(reason="SIGTERM received")
    assert [spawn.latest(i).signals for i in (0, 1)] == [[signal.SIGTERM], [signal.SIGTERM]]
    assert supervisor.stop() is d  # a second signal: the same stop
    assert [spawn.latest(i).signals for i in (0, 1)] == [[signal.SIGTERM], [signal.SIGTERM]]
    supervisor.exited(0, 0)
    assert not d.called
    supervisor.exited(1, 0)
    assert d.result == 0
    assert clock.getDelayedCalls() == []  # the kill timer is cancelled


def test_stop_cancels_a_pending_restart() -> None:
    supervisor, spawn, clock, _ = running()
    supervisor.exited(1, 137)
    supervisor.stop()
    supervisor.exited(0, 0)
    clock.advance(60)
    assert len(spawn.started) == 2
    assert supervisor.finished.result == 0


def test_a_worker_still_running_after_the_drain_is_killed_and_the_status_is_1() -> None:
    supervisor, spawn, clock, _ = running()
    supervisor.stop()
    supervisor.exited(0, 0)
    clock.advance(39)
    assert spawn.latest(1).signals == [signal.SIGTERM]
    clock.advance(1)
    assert spawn.latest(1).signals == [signal.SIGTERM, signal.SIGKILL]
    supervisor.exited(1, 137)
    assert supervisor.finished.result == 1


def test_a_worker_that_exits_between_the_signal_and_its_delivery_is_not_an_error() -> None:
    supervisor, spawn, _, _ = running()
    spawn.latest(0).gone = True
    supervisor.stop()
    supervisor.exited(0, 0)
    supervisor.exited(1, 0)
    assert supervisor.finished.result == 0


def test_a_spawn_that_raises_counts_as_a_failed_start() -> None:
    clock = MemoryReactorClock()

    def cannot(index: int) -> FakeProcess:
        raise OSError("fork failed")

    supervisor = WorkerSupervisor(1, cannot, clock, kill_after=40)
    supervisor.start()
    assert supervisor.finished.result == 1


@pytest.mark.parametrize(
    ("configured", "index", "expected"),
    [
        ("", None, "vm:42"),
        ("", 3, "vm:42"),
        ("gw", None, "gw"),
        ("gw", 0, "gw-0"),
        ("gw", 11, "gw-11"),
    ],
)
def test_node_names_are_the_operators_name_with_the_worker_index_else_host_pid(
    configured: str, index: int | None, expected: str
) -> None:
    assert worker_node_name(configured, index, lambda: "vm:42") == expected


def test_a_seat_travels_through_the_environment() -> None:
    seat = WorkerSeat(index=1, count=2, name="gw", listeners={"gateway": 7, "staff console": 8})
    back = WorkerSeat.from_env({WORKER_ENV: seat.to_env()})
    assert back == seat
    assert back.access_log == "logs/access-1.log"
    assert WorkerSeat.from_env({}) is None


def test_the_default_worker_count_is_the_environment_else_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert default_workers({WORKERS_ENV: "3"}) == 3
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert default_workers({}) == 6
    assert default_workers({WORKERS_ENV: "0"}) == 6  # not a count: ignored
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert default_workers({}) == 1
