"""China Standard Time (UTC+8): the one clock people read and type times in.

Stored instants are epoch seconds (UTC); the declaration service dates its rules by
the local date, and every page shows and reads Beijing time.  Asia/Shanghai has kept
UTC+8 with no daylight saving since 1991, so a fixed offset is exact for every time
handled here and needs no tz database (``tzdata`` is not a dependency).

One module for every package (the declaration service, the auditors', officers' and
carriers' pages): it sits in the bottom layer so that none keeps its own copy.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final

CHINA_TIME: Final = timezone(timedelta(hours=8), "CST")
OFFSET_TEXT: Final = "+08:00"
NONE_SHOWN: Final = "—"


def local_datetime(ts: float) -> datetime:
    """Epoch seconds as an aware datetime in China time.

    Raises ``OverflowError``, ``OSError`` or ``ValueError`` for a time out of range.
    """
    return datetime.fromtimestamp(ts, CHINA_TIME)


def local_text(ts: float, *, seconds: bool = False, offset: bool = False) -> str:
    """Epoch seconds as people read them: ``2026-01-01 08:00`` (``…08:00:00`` with
    *seconds*; ``… +08:00`` with *offset*, where a reader may not assume Beijing time).
    Raises as :func:`local_datetime` does."""
    text = local_datetime(ts).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {OFFSET_TEXT}" if offset else text


def shown(ts: float | None, *, seconds: bool = False, offset: bool = False) -> str:
    """:func:`local_text`, with ``—`` for none or a time out of range (for pages)."""
    if ts is None:
        return NONE_SHOWN
    try:
        return local_text(ts, seconds=seconds, offset=offset)
    except (OverflowError, OSError, ValueError):
        return NONE_SHOWN


def form_value(ts: float) -> str:
    """An instant as a ``datetime-local`` input's value, in Beijing time."""
    return local_datetime(ts).strftime("%Y-%m-%dT%H:%M")


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
