"""China time, the one UTC+8 helper: dates roll over at 16:00 UTC, pages print Beijing
wall-clock time without the offset, and an offset form exists for readers elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from web._time import CHINA_TIME, local_datetime, local_text

NEW_YEAR_UTC = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def test_the_offset_is_eight_hours_all_year() -> None:
    for month in (1, 7):  # no daylight saving since 1991
        when = datetime(2026, month, 1, tzinfo=CHINA_TIME)
        assert when.utcoffset() == timedelta(hours=8)


def test_the_local_date_rolls_over_at_16_utc() -> None:
    assert local_datetime(NEW_YEAR_UTC - 8 * 3600 - 1).date().isoformat() == "2025-12-31"
    assert local_datetime(NEW_YEAR_UTC - 8 * 3600).date().isoformat() == "2026-01-01"
    assert local_datetime(NEW_YEAR_UTC).utcoffset() == timedelta(hours=8)


def test_the_text_people_read() -> None:
    assert local_text(NEW_YEAR_UTC) == "2026-01-01 08:00"
    assert local_text(NEW_YEAR_UTC + 40, seconds=True) == "2026-01-01 08:00:40"
    assert local_text(NEW_YEAR_UTC, offset=True) == "2026-01-01 08:00 +08:00"


@pytest.mark.parametrize("ts", [float("inf"), float("nan"), 1e20])
def test_a_time_out_of_range_raises_what_callers_catch(ts: float) -> None:
    with pytest.raises((OverflowError, OSError, ValueError)):
        local_text(ts)
