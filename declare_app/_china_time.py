"""China Standard Time (UTC+8): the one clock the declaration service dates and shows by.

Stored times are epoch seconds (UTC); the local date decides the date rules, voucher
numbers and the import year, and people read times in Beijing time.  Asia/Shanghai
has kept UTC+8 with no daylight saving since 1991, so a fixed offset is exact for
every time this service handles and needs no tz database (``tzdata`` is not a
dependency, and ``zoneinfo`` finds nothing on a machine without the system's).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final

CHINA_TIME: Final = timezone(timedelta(hours=8), "CST")
_OFFSET_TEXT: Final = "+08:00"


def local_datetime(ts: float) -> datetime:
    """Epoch seconds as an aware datetime in China time.

    Raises ``OverflowError``, ``OSError`` or ``ValueError`` for a time out of range.
    """
    return datetime.fromtimestamp(ts, CHINA_TIME)


def local_text(ts: float, *, seconds: bool = False, offset: bool = False) -> str:
    """Epoch seconds as people read them: ``2026-01-01 08:00`` (``…08:00:00`` with
    *seconds*; ``… +08:00`` with *offset*, where a reader may not assume Beijing time).

    The pages print it without the offset (their tests pin that); raises as
    :func:`local_datetime` does.
    """
    text = local_datetime(ts).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {_OFFSET_TEXT}" if offset else text
