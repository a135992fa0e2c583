"""The alert evaluator as a service of ``ssgate serve`` (and ``ssgate demo``).

Every node runs one: each tick is :func:`audit.evaluate_alerts` in one transaction on
the database pool, and the cursor row it locks makes the nodes take turns, so every
alert is raised once however many nodes run.  With the default 2 s interval an alert
is stored within a few seconds of the events that raise it.

A failing evaluation (database down, a damaged record) is logged at most once a
minute with the number of failures since the last report, not at every tick; the
next tick tries again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Connection
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

import audit
import auth
import gateway
from ssgate._config import AlertsConfig

REPORT_EVERY = 60.0  # seconds between two log lines about failing evaluations
MAX_ROUNDS = 10  # full batches judged back to back in one tick (a backlog after a stop)


def alert_thresholds(config: AlertsConfig) -> audit.AlertThresholds:
    """``[alerts]`` as the rules take it."""
    return audit.AlertThresholds(
        brute_force_failures=config.brute_force_failures,
        brute_force_window_seconds=config.brute_force_window_seconds,
        spray_accounts=config.spray_accounts,
        spray_failures=config.spray_failures,
        spray_window_seconds=config.spray_window_seconds,
        session_lookback_seconds=config.session_lookback_seconds,
        unusual_hour_min_logins=config.unusual_hour_min_logins,
        export_rows=config.export_rows,
        probe_persons=config.probe_persons,
        probe_window_seconds=config.probe_window_seconds,
    )


def registry_session_ends(conn: Connection, session_ids: Collection[str]) -> Mapping[str, float]:
    """When the gateway's session registry ended each of *session_ids* that it ended
    (:data:`audit.SessionEnds`): a session reaped after its node died has no
    ``session.end`` event, and must not count as live for the two-address rule."""
    registry = gateway.SessionRegistryView()
    ends: dict[str, float] = {}
    for sid in session_ids:
        record = registry.get(conn, sid)
        if record is not None and record.ended_at is not None:
            ends[sid] = record.ended_at
    return ends


class AlertEvaluator:
    """One evaluation per :meth:`tick`; failures reported at most every
    :data:`REPORT_EVERY` seconds."""

    log = Logger()

    def __init__(
        self,
        runner: auth.Runner,
        clock: IReactorTime,
        thresholds: audit.AlertThresholds,
        *,
        batch: int = audit.EVALUATE_BATCH,
        session_ends: audit.SessionEnds | None = registry_session_ends,
    ) -> None:
        self._runner = runner
        self._session_ends = session_ends
        self._clock = clock
        self._thresholds = thresholds
        self._batch = batch
        self._failures = auth.RepeatedFailureLog(
            self.log, "alert evaluation", clock=clock.seconds, every=REPORT_EVERY
        )

    async def tick(self) -> None:
        try:
            for _ in range(MAX_ROUNDS):
                done: audit.Evaluation = await self._runner.run(
                    audit.evaluate_alerts,
                    self._thresholds,
                    now=self._clock.seconds(),
                    batch=self._batch,
                    session_ends=self._session_ends,
                )
                if done.raised:
                    self.log.warn(
                        "{raised} new alert(s) from audit records {first} to {last}",
                        raised=done.raised,
                        first=done.after_seq + 1,
                        last=done.last_seq,
                    )
                if done.records < self._batch:
                    break
        except Exception:
            self._failures.failed(Failure())  # retried at every tick
            return
        self._failures.succeeded()

    def deferred_tick(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.tick())


def alert_service(
    runner: auth.Runner,
    clock: IReactorTime,
    config: AlertsConfig,
    **kwargs: Any,
) -> TimerService:
    """The evaluator every ``config.interval_seconds`` (first run at start)."""
    evaluator = AlertEvaluator(runner, clock, alert_thresholds(config), **kwargs)
    service = TimerService(config.interval_seconds, evaluator.deferred_tick)
    service.clock = clock
    return service
