"""The automatic monthly close: on ``[declare] close_day`` of each month, ``serve``
closes that month's contributions (费款所属期) as ``ssgate declare close-month`` does.

A :class:`~twisted.application.internet.TimerService` ticks every hour; the close runs
on the database pool, never on the reactor.  Several nodes may tick together: the
close is idempotent and the month's row is written first, so one closes it and the
others find it closed.  Log lines name the month and counts, never a person.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

import audit
import auth
from declare_app import CloseResult, LedgerError, RatesNotInForce, RateTable, YearMonth, close_month
from declare_app._china_time import CHINA_TIME

TICK_SECONDS = 3600.0
ACTOR = "ssgate:monthly-close"


class MonthlyClose:
    """One tick: close the current month if its close day has come."""

    log = Logger()

    def __init__(
        self,
        runner: auth.Runner,
        clock: IReactorTime,
        rates: RateTable,
        close_day: int,
        *,
        tz: tzinfo = CHINA_TIME,
    ) -> None:
        if not 1 <= close_day <= 28:
            raise ValueError("close_day must be 1 to 28")
        self._runner = runner
        self._clock = clock
        self._rates = rates
        self._close_day = close_day
        self._tz = tz

    def tick(self) -> Deferred[CloseResult | None]:
        now = self._clock.seconds()
        today = datetime.fromtimestamp(now, self._tz).date()
        if today.day < self._close_day:
            return succeed(None)
        d: Deferred[CloseResult | None] = self._runner.run(self._close, YearMonth.of(today), now)
        d.addErrback(self._failed, today)
        return d

    def _close(self, conn: Connection, month: YearMonth, now: float) -> CloseResult | None:
        result = close_month(conn, month, rates=self._rates, current=month, actor=ACTOR, now=now)
        if result.already_closed:
            return None
        audit.append(
            conn,
            audit.AuditEvent(
                at=now,
                actor=ACTOR,
                action="declare.close-month",
                subject=result.month,
                outcome="ok",
                details={"lines": result.lines, "units": result.units},
            ),
        )
        self.log.info(
            "closed {month}: {lines} contribution lines in {units} units",
            month=result.month,
            lines=result.lines,
            units=result.units,
        )
        return result

    def _failed(self, failure: Failure, today: Any) -> None:
        if failure.check(sa_exc.IntegrityError):
            return None  # another node closed the month at the same moment
        if failure.check(RatesNotInForce, LedgerError):
            self.log.warn(
                "monthly close of {month} refused: {why}",
                month=f"{today.year:04d}-{today.month:02d}",
                why=str(failure.value),
            )
            return None
        self.log.failure("monthly close failed", failure)
        return None


def monthly_close_service(
    runner: auth.Runner, clock: IReactorTime, rates: RateTable, close_day: int
) -> TimerService:
    """The hourly tick (first at start) of :class:`MonthlyClose`."""
    closer = MonthlyClose(runner, clock, rates, close_day)
    service = TimerService(TICK_SECONDS, closer.tick)
    service.clock = clock
    return service
