"""The syslog cursors on SQLite and PostgreSQL: a new collector starts at the
beginning of the log, one holder at a time holds a lease until it runs out or is
released, only the holder moves the cursor, and the cursor never moves back."""

from __future__ import annotations

from sqlalchemy import Engine

import audit

T0 = 1_767_225_600.0


def _events(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        for i in range(n):
            audit.append(
                conn,
                audit.AuditEvent(
                    at=T0 + i, actor="system", action="test", subject=f"s{i}", outcome="ok"
                ),
            )


def claim(engine: Engine, holder: str, now: float) -> audit.SyslogLease:
    with engine.begin() as conn:
        return audit.claim_syslog_lease(conn, "soc", holder=holder, now=now, lease_seconds=10)


def test_one_holder_at_a_time_until_the_lease_runs_out_or_is_released(engine: Engine) -> None:
    audit.metadata.create_all(engine)
    _events(engine, 3)
    first = claim(engine, "a", T0)
    assert first == audit.SyslogLease(held=True, holder="a", delivered_seq=0, head_seq=3)
    assert first.waiting == 3
    assert claim(engine, "b", T0 + 5) == audit.SyslogLease(False, "a", 0, 3)
    assert claim(engine, "a", T0 + 5).held  # renewed until T0 + 15
    assert not claim(engine, "b", T0 + 14).held
    assert claim(engine, "b", T0 + 16).held  # a's lease ran out
    with engine.begin() as conn:
        audit.release_syslog_lease(conn, "soc", holder="b")
    assert claim(engine, "a", T0 + 17).held


def test_only_the_holder_moves_the_cursor_and_never_back(engine: Engine) -> None:
    audit.metadata.create_all(engine)
    _events(engine, 5)
    claim(engine, "a", T0)
    with engine.begin() as conn:
        assert audit.advance_syslog_cursor(conn, "soc", holder="a", seq=4, now=T0)
        assert not audit.advance_syslog_cursor(conn, "soc", holder="b", seq=5, now=T0)
        assert audit.advance_syslog_cursor(conn, "soc", holder="a", seq=2, now=T0)
        assert audit.get_syslog_cursors(conn) == {"soc": 4}
        count, last, encoded = audit.syslog_batch(conn, 4, lambda rs: [r.seq for r in rs])
    assert (count, last, encoded) == (1, 5, [5])


def test_a_batch_is_bounded_and_in_seq_order(engine: Engine) -> None:
    audit.metadata.create_all(engine)
    _events(engine, 7)
    with engine.begin() as conn:
        records = audit.syslog_records(conn, 2, limit=3)
        assert [r.seq for r in records] == [3, 4, 5]
        assert audit.syslog_batch(conn, 7, len) == (0, 7, 0)
