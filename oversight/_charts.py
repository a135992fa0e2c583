"""The officers' charts page: ``GET /charts`` (role ``officer``; admin too).

Five charts drawn on the server as SVG (:mod:`._svg`), each followed by its numbers
as a table:

* channel logins and their failures per hour over the last 7 days — one
  ``GROUP BY`` hour over the ``login`` events in the range (the ``(action, at)``
  index range), :func:`hourly_logins`;
* open sessions at each hour over the last 24 hours — :class:`SessionCounts`
  (``gateway``: one conditional count per instant over the sessions overlapping
  the day);
* the sources with the most refused or failed logins over the 7 days —
  :func:`failures_by_source`;
* declarations submitted per day over the last 14 days, by type and by current
  state — :class:`DeclarationCounts` (``declare_app``), when the console has one.

Hours and days are Beijing hours and days (UTC+8, no daylight saving).  Every query
runs in one transaction on the database pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import PackageLoader
from markupsafe import Markup
from sqlalchemy import Connection, Integer, case, cast, func, select

import web
from web import Response, StaffCtx
from web._time import local_datetime, shown

from ._logins import FAILED, FailureGroup, audit_events, failures_by_source
from ._svg import Chart, Series, bar_chart, hbar_chart, line_chart
from .interfaces import DeclarationCounts, DeclarationTally, SessionCounts

CHARTS = "/charts"
HOUR = 3600.0
DAY = 86_400.0
LOGIN_HOURS = 7 * 24
SESSION_HOURS = 24
DECLARATION_DAYS = 14
TOP_SOURCES = 10
_UTC8 = 8 * HOUR


def _bucket(conn: Connection, start: float, width: float) -> Any:
    """``floor((at - start) / width)`` as an integer, for rows with ``at >= start``."""
    offset = (audit_events.c.at - start) / width
    if conn.dialect.name == "postgresql":
        return cast(func.floor(offset), Integer)
    return cast(offset, Integer)  # SQLite's CAST truncates; the offset is never negative


def hourly_logins(conn: Connection, *, start: float, hours: int) -> tuple[list[int], list[int]]:
    """(attempts, refused or failed) of channel logins in each hour from *start*."""
    e = audit_events.c
    inner = (
        select(
            _bucket(conn, start, HOUR).label("hour"),
            case((e.outcome.in_(FAILED), 1), else_=0).label("failed"),
        )
        .where(e.action == "login", e.at >= start, e.at < start + hours * HOUR)
        .subquery()
    )
    attempts, failed = [0] * hours, [0] * hours
    rows = conn.execute(
        select(inner.c.hour, func.count(), func.sum(inner.c.failed)).group_by(inner.c.hour)
    )
    for hour, count, fails in rows:
        if 0 <= int(hour) < hours:
            attempts[int(hour)] = int(count)
            failed[int(hour)] = int(fails or 0)
    return attempts, failed


@dataclass(frozen=True)
class ChartData:
    """Everything the page draws, read in one transaction."""

    login_start: float
    attempts: Sequence[int]
    failed: Sequence[int]
    session_instants: Sequence[float]
    open_sessions: Sequence[int]
    sources: Sequence[FailureGroup]
    day_starts: Sequence[float]
    declarations: Sequence[DeclarationTally] | None


def hour_start(now: float) -> float:
    """The start of the Beijing hour holding *now* (an hour is an hour in UTC+8)."""
    return math.floor(now / HOUR) * HOUR


def day_start(now: float) -> float:
    """Beijing midnight starting the day that holds *now*."""
    return math.floor((now + _UTC8) / DAY) * DAY - _UTC8


def read_charts(
    conn: Connection,
    *,
    now: float,
    sessions: SessionCounts,
    declarations: DeclarationCounts | None,
) -> ChartData:
    login_start = hour_start(now) - (LOGIN_HOURS - 1) * HOUR  # the current hour is last
    attempts, failed = hourly_logins(conn, start=login_start, hours=LOGIN_HOURS)
    instants = [hour_start(now) - (SESSION_HOURS - 1 - i) * HOUR for i in range(SESSION_HOURS)]
    instants.append(now)
    first_day = day_start(now) - (DECLARATION_DAYS - 1) * DAY
    days = [first_day + i * DAY for i in range(DECLARATION_DAYS + 1)]
    return ChartData(
        login_start=login_start,
        attempts=attempts,
        failed=failed,
        session_instants=instants,
        open_sessions=list(sessions.open_counts(conn, instants)),
        sources=failures_by_source(
            conn, since=login_start, until=now + 1, kind="channel", limit=TOP_SOURCES
        ),
        day_starts=days,
        declarations=None if declarations is None else declarations(conn, days),
    )


def _hour_label(ts: float) -> str:
    return local_datetime(ts).strftime("%m-%d %H:00")


def _day_label(ts: float) -> str:
    return local_datetime(ts).strftime("%m-%d")


def draw(data: ChartData) -> list[Chart]:
    """The page's charts from *data*."""
    hours = [_hour_label(data.login_start + i * HOUR) for i in range(len(data.attempts))]
    charts = [
        line_chart(
            "logins-per-hour",
            "专网登录与失败（每小时，近 7 天）",
            hours,
            [Series("登录尝试", tuple(data.attempts)), Series("被拒绝或失败", tuple(data.failed))],
            unit="次",
            label_every=24,
        ),
        line_chart(
            "open-sessions",
            "在线会话数（近 24 小时，每小时整点及现在）",
            [_hour_label(t) for t in data.session_instants[:-1]] + ["现在"],
            [Series("在线会话", tuple(data.open_sessions))],
            unit="个",
            label_every=4,
        ),
        hbar_chart(
            "failing-sources",
            f"登录失败最多的来源地址（近 7 天，前 {TOP_SOURCES} 个）",
            [g.key or "（未记录）" for g in data.sources],
            [g.attempts for g in data.sources],
            name="失败次数",
            unit="次",
        ),
    ]
    if data.declarations is not None:
        days = [_day_label(t) for t in data.day_starts[:-1]]
        charts.append(
            bar_chart(
                "declarations-by-type",
                f"每日提交的申报（按类型，近 {DECLARATION_DAYS} 天）",
                days,
                _summed(data.declarations, by_type=True, width=len(days)),
                unit="件",
            )
        )
        charts.append(
            bar_chart(
                "declarations-by-state",
                f"每日提交的申报（按当前状态，近 {DECLARATION_DAYS} 天）",
                days,
                _summed(data.declarations, by_type=False, width=len(days)),
                unit="件",
            )
        )
    return charts


def _summed(tallies: Sequence[DeclarationTally], *, by_type: bool, width: int) -> list[Series]:
    sums: dict[str, list[int]] = {}
    for t in tallies:
        row = sums.setdefault(t.type_text if by_type else t.status_text, [0] * width)
        for i, n in enumerate(t.counts[:width]):
            row[i] += n
    return [Series(name, tuple(values)) for name, values in sums.items()]


def charts_section(
    sessions: SessionCounts, declarations: DeclarationCounts | None = None
) -> web.ConsoleSection:
    """The charts page (see the module docstring) as a console section."""

    async def show(ctx: StaffCtx) -> Response:
        data: ChartData = await ctx.runner.run(
            read_charts, now=ctx.now, sessions=sessions, declarations=declarations
        )
        charts = draw(data)
        return ctx.page(
            "charts/page.html",
            title="统计图表",
            current=CHARTS,
            charts=[(c, Markup(c.svg)) for c in charts],  # noqa: S704 - built escaped by _svg
            generated=shown(ctx.now, seconds=True, offset=True),
            has_declarations=declarations is not None,
        )

    roles = ("officer",)
    return web.ConsoleSection(
        path=CHARTS,
        title="统计图表",
        roles=roles,
        routes=(web.Route("GET", CHARTS, roles, show),),
        templates=PackageLoader("oversight", "templates"),
    )
