"""The daily audit run of ``ssgate serve`` on a memory clock: nothing at start, the first
run a while later (archive what is older than the retention, then a signed
checkpoint), then once a day; a failing run is retried at the next look and logged at
most once an hour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher

import audit
from auth.testing import SynchronousRunner
from ssgate._audit_daily import (
    CHECK_EVERY,
    DAY,
    FIRST_RUN_DELAY,
    REPORT_EVERY,
    DailyPaths,
    audit_daily_service,
)
from ssgate._config import AuditConfig
from ssgate._db import make_engine

T0 = 1_780_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith("ssgate._audit_daily"):
            events.append(event)

    globalLogPublisher.addObserver(keep)
    yield events
    globalLogPublisher.removeObserver(keep)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/daily.db")
    audit.metadata.create_all(engine)
    yield engine
    engine.dispose()


def events_on_days(engine: Engine, days: range) -> None:
    with engine.begin() as conn:
        for day in days:
            audit.append(
                conn,
                audit.AuditEvent(
                    at=T0 + day * DAY, actor="system", action="login", subject="s", outcome="ok"
                ),
            )


def start(
    engine: Engine, tmp_path: Path, runner: SynchronousRunner | None = None
) -> tuple[MemoryReactorClock, SynchronousRunner, DailyPaths]:
    clock = MemoryReactorClock()
    clock.advance(T0 + 200 * DAY)
    runner = runner or SynchronousRunner(engine)
    paths = DailyPaths(tmp_path / "audit-archive", tmp_path / "checkpoints")
    service = audit_daily_service(
        runner, clock, AuditConfig(retention_days=180), paths, KEY, node="n"
    )
    service.startService()
    return clock, runner, paths


def test_nothing_runs_at_start_the_first_run_comes_after_the_delay_then_daily(
    engine: Engine, tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    events_on_days(engine, range(200))
    clock, runner, paths = start(engine, tmp_path)
    assert runner.calls == []
    clock.advance(FIRST_RUN_DELAY - CHECK_EVERY)
    assert runner.calls == []
    clock.advance(CHECK_EVERY)
    # Records of days 0..20 are older than 180 days (the run is 10 minutes into day
    # 200): one archive, then nothing more.
    assert runner.calls == ["archive_batch", "archive_batch", "take_checkpoint"]
    with engine.begin() as conn:
        [archive] = audit.list_archives(conn)
        assert audit.verify_with_archives(conn, paths.archive_dir).ok
    assert (archive.first_seq, archive.last_seq) == (1, 21)
    [checkpoint] = audit.checkpoint_files(paths.checkpoints_dir)
    assert checkpoint.name.startswith("checkpoint-000000000200-")
    assert [e["log_level"] for e in logged] == [LogLevel.info, LogLevel.info]
    assert logged[0]["count"] == 21 and logged[1]["seq"] == 200

    clock.advance(DAY - CHECK_EVERY)
    assert runner.calls.count("take_checkpoint") == 1
    clock.advance(CHECK_EVERY)
    assert runner.calls.count("take_checkpoint") == 2  # a day later
    with engine.begin() as conn:  # day 21 is now old too
        assert [a.last_seq for a in audit.list_archives(conn)] == [21, 22]


def test_a_failing_run_is_retried_at_each_look_and_logged_once_an_hour(
    engine: Engine, tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    events_on_days(engine, range(190, 193))  # nothing old enough to archive
    (tmp_path / "checkpoints").write_text("a file where the directory should be")
    clock, runner, paths = start(engine, tmp_path)
    clock.advance(FIRST_RUN_DELAY)
    assert runner.calls.count("take_checkpoint") == 1
    [failure] = logged
    assert failure["log_level"] == LogLevel.critical and "daily audit run" in failure["task"]
    for _ in range(int(REPORT_EVERY // CHECK_EVERY) - 1):
        clock.advance(CHECK_EVERY)
    assert runner.calls.count("take_checkpoint") == int(REPORT_EVERY // CHECK_EVERY)
    assert len(logged) == 1  # retried every look, reported once
    clock.advance(CHECK_EVERY)
    # the summary: every failure since the first, which was reported in full
    assert len(logged) == 2 and logged[1]["total"] == int(REPORT_EVERY // CHECK_EVERY) + 1
    (tmp_path / "checkpoints").unlink()
    clock.advance(CHECK_EVERY)
    assert "recovered" in logged[-1]["log_format"]
    assert len(audit.checkpoint_files(paths.checkpoints_dir)) == 1


def test_a_failing_archive_does_not_hold_up_the_daily_checkpoint(
    engine: Engine, tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    events_on_days(engine, range(200))
    (tmp_path / "audit-archive").write_text("a file where the directory should be")
    clock, runner, paths = start(engine, tmp_path)
    clock.advance(FIRST_RUN_DELAY)
    assert runner.calls == ["archive_batch", "take_checkpoint"]
    assert len(audit.checkpoint_files(paths.checkpoints_dir)) == 1
    assert logged[0]["log_level"] == LogLevel.critical
    clock.advance(CHECK_EVERY)  # the archive is retried, the checkpoint is not due
    assert runner.calls == ["archive_batch", "take_checkpoint", "archive_batch"]
    (tmp_path / "audit-archive").unlink()
    clock.advance(CHECK_EVERY)
    assert runner.calls[3:] == ["archive_batch", "archive_batch"]
    assert "recovered" in logged[-1]["log_format"]
    with engine.begin() as conn:
        assert [a.last_seq for a in audit.list_archives(conn)] == [21]
