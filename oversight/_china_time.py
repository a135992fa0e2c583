"""Beijing time for the officers: what they type into a filter and what they read.

Stored instants are epoch seconds UTC.  Asia/Shanghai has kept UTC+8 without daylight
saving since 1991, so a fixed offset is exact and needs no tz database.  Times are
shown with ``+08:00``: an officer comparing with another system's log must not guess.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final

CHINA_TIME: Final = timezone(timedelta(hours=8), "CST")


def shown(ts: float | None) -> str:
    """``2026-01-01 08:00:00 +08:00``; ``—`` for none or out of range."""
    if ts is None:
        return "—"
    try:
        return datetime.fromtimestamp(ts, CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S +08:00")
    except (OverflowError, OSError, ValueError):
        return "—"


def form_value(ts: float) -> str:
    """An instant as a ``datetime-local`` input's value, in Beijing time."""
    return datetime.fromtimestamp(ts, CHINA_TIME).strftime("%Y-%m-%dT%H:%M")


def parse_local(text: str) -> float:
    """``2026-01-01T08:00`` (seconds optional; a space for the T is fine) read as
    Beijing time; ``ValueError`` for anything else, an offset included."""
    text = text.strip().replace(" ", "T", 1)
    if len(text) not in (16, 19):
        raise ValueError("not YYYY-MM-DDTHH:MM[:SS]")
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        raise ValueError("give Beijing time without an offset")
    return value.replace(tzinfo=CHINA_TIME).timestamp()
