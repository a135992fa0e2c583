"""The alert evaluator service of ``ssgate serve`` on a memory clock: it evaluates
every interval, reports new alerts, and a failing evaluation is logged at most once a
minute (with the count since the last report), then reported fixed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher

import audit
from auth.testing import SynchronousRunner
from ssgate._alerting import alert_service, alert_thresholds
from ssgate._config import AlertsConfig, ConfigError, parse_config
from ssgate._db import make_engine

T0 = 1_767_225_600.0


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith("ssgate._alerting"):
            events.append(event)

    globalLogPublisher.addObserver(keep)
    yield events
    globalLogPublisher.removeObserver(keep)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/alerting.db")
    yield engine
    engine.dispose()


def failures(engine: Engine, n: int, *, at: float) -> None:
    with engine.begin() as conn:
        for i in range(n):
            audit.append(
                conn,
                audit.AuditEvent(
                    at=at + i,
                    actor="channel:33068212345678@sxlss",
                    action="login",
                    subject="33068212345678@sxlss",
                    outcome="refused",
                    reason="bad-password",
                    details={"peer": "192.0.2.9:1"},
                ),
            )


def test_each_tick_evaluates_and_new_alerts_are_reported(
    engine: Engine, logged: list[dict[str, Any]]
) -> None:
    audit.metadata.create_all(engine)
    clock = MemoryReactorClock()
    clock.advance(T0)
    runner = SynchronousRunner(engine)
    service = alert_service(runner, clock, AlertsConfig())
    service.startService()
    assert runner.calls == ["evaluate_alerts"]  # at start
    failures(engine, 10, at=T0)
    clock.advance(2)
    assert runner.calls == ["evaluate_alerts"] * 2
    with engine.begin() as conn:
        [alert] = audit.list_alerts(conn)
    assert alert.rule == "brute-force"
    [report] = logged
    assert report["log_level"] == LogLevel.warn and report["raised"] == 1
    service.stopService()


def test_a_failing_evaluation_is_logged_once_a_minute_then_its_recovery(
    engine: Engine, logged: list[dict[str, Any]]
) -> None:
    clock = MemoryReactorClock()
    clock.advance(T0)
    service = alert_service(SynchronousRunner(engine), clock, AlertsConfig())
    service.startService()  # no tables yet: every evaluation fails
    for _ in range(29):
        clock.advance(2)
    assert [e["log_level"] for e in logged] == [LogLevel.critical]  # log.failure, once
    clock.advance(2)  # 60 s after the first report
    assert len(logged) == 2 and logged[1]["total"] == 31  # every failure since the first
    audit.metadata.create_all(engine)
    clock.advance(2)
    assert logged[2]["log_level"] == LogLevel.info and "recovered" in logged[2]["log_format"]
    clock.advance(120)
    assert len(logged) == 3
    assert service.running
    service.stopService()


def test_alerts_thresholds_come_from_the_alerts_section() -> None:
    config = parse_config(
        "[alerts]\ninterval_seconds = 1\nspray_accounts = 5\nspray_failures = 20\n",
        source="ssgate.toml",
    )
    limits = alert_thresholds(config.alerts)
    assert (config.alerts.interval_seconds, limits.spray_accounts, limits.spray_failures) == (
        1,
        5,
        20,
    )
    assert alert_thresholds(AlertsConfig()) == audit.AlertThresholds()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[alerts]\ninterval_seconds = 30\n", "alerts.interval_seconds"),
        ("[alerts]\nbrute_force_failures = 1\n", "alerts.brute_force_failures"),
        ('[alerts]\nspray_window_seconds = "15m"\n', "alerts.spray_window_seconds"),
        ("[alerts]\nexport_rows = true\n", "alerts.export_rows"),
        ("[alerts]\nthreshold = 3\n", "unknown key alerts.threshold"),
        ("[alerts]\nspray_accounts = 5\nspray_failures = 4\n", "alerts.spray_failures (4)"),
    ],
)
def test_a_bad_alerts_key_is_an_error_naming_the_key(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="ssgate.toml")
    assert names in str(caught.value) and str(caught.value).startswith("ssgate.toml: ")
