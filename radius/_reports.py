"""Dropped packets reported to the log at most once per source per period.

A flood of junk from one address must not become a flood of log lines: the first drop
from a source is reported at once, later ones are counted and reported together when
the period has passed and another one comes.  At most ``max_sources`` sources are
remembered; beyond that the rest are reported under one ``*`` entry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OTHERS = "*"


@dataclass(frozen=True)
class DropReport:
    """A log line due: *count* drops from *host* since the last report, by reason."""

    host: str
    count: int
    reasons: dict[str, int]
    nas: str | None


@dataclass
class _Window:
    reported_at: float
    reasons: Counter[str] = field(default_factory=Counter)
    nas: str | None = None


class DropReports:
    def __init__(self, *, every: float = 60.0, max_sources: int = 1024) -> None:
        self._every = every
        self._max_sources = max_sources
        self._windows: dict[str, _Window] = {}

    def note(self, host: str, reason: str, now: float, nas: str | None = None) -> DropReport | None:
        """Count one drop; the report to log now, if one is due."""
        window = self._windows.get(host)
        if window is None:
            if len(self._windows) >= self._max_sources:
                self._forget(now)
            if len(self._windows) >= self._max_sources:
                host = OTHERS
                window = self._windows.get(OTHERS)
        if window is None:
            self._windows[host] = _Window(reported_at=now, nas=nas)
            return DropReport(host, 1, {reason: 1}, nas)
        window.reasons[reason] += 1
        if now - window.reported_at < self._every:
            return None
        report = DropReport(host, window.reasons.total(), dict(window.reasons), window.nas)
        self._windows[host] = _Window(reported_at=now, nas=window.nas)
        return report

    def _forget(self, now: float) -> None:
        """Drop the sources whose period has passed (their unreported drops stay in the
        server's counters)."""
        for host in [h for h, w in self._windows.items() if now - w.reported_at >= self._every]:
            del self._windows[host]
