"""The UDP adapter: replies go back to the sender, drops are logged at most once per
source per minute with their count, and the drop log itself is bounded."""

from __future__ import annotations

from sqlalchemy import Engine
from twisted.logger import LogLevel, globalLogPublisher

from radius import DropReports
from radius.testing import TESTBED_ACCOUNT, DialInTestbed


def test_drops_are_logged_once_per_source_per_minute_with_their_count(
    sqlite_engine: Engine,
) -> None:
    bed = DialInTestbed(sqlite_engine)
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        _, data = bed.nas.request(TESTBED_ACCOUNT, "x")
        for _ in range(5):
            assert bed.exchange(data, ("192.0.2.9", 1812)) == []
        bed.clock.advance(61)
        assert bed.exchange(data, ("192.0.2.9", 1812)) == []
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [
        e for e in events if e.get("log_level") == LogLevel.warn and e.get("host") == "192.0.2.9"
    ]
    assert [w["count"] for w in warnings] == [1, 5]
    assert warnings[1]["reasons"] == "unknown-nas ×5"
    assert bed.server.drops["unknown-nas"] == 6
    assert bed.logins() == []  # nothing from an unknown NAS reaches the audit log


def test_replies_go_back_to_the_address_that_asked(sqlite_engine: Engine) -> None:
    bed = DialInTestbed(sqlite_engine)
    _, data = bed.nas.request(TESTBED_ACCOUNT, bed.password)
    bed.exchange(data, ("127.0.0.2", 41000))
    assert [addr for _, addr in bed.transport.sent] == [("127.0.0.2", 41000)]


def test_the_drop_log_remembers_a_bounded_number_of_sources() -> None:
    reports = DropReports(every=60.0, max_sources=3)
    first = [reports.note(f"192.0.2.{i}", "unknown-nas", 0.0) for i in range(10)]
    assert [r.host for r in first if r is not None] == ["192.0.2.0", "192.0.2.1", "192.0.2.2", "*"]
    assert reports.note("192.0.2.200", "unknown-nas", 61.0) is not None  # old ones forgotten
