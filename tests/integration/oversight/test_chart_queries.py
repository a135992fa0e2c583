"""The charts' grouping queries on SQLite and PostgreSQL: logins per hour (the hour
bucket computed in SQL), open sessions at instants (gateway), declarations submitted
per day by type and state (declare_app)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy import event as sa_event

import audit
import auth
import declare_app
import gateway
from declare_app._schema import declarations, units
from gateway import _sessions
from oversight._charts import HOUR, day_start, hourly_logins

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z, 08:00 Beijing: an hour boundary
DAY = 86_400.0


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    for metadata in (auth.metadata, audit.metadata, gateway.metadata, declare_app.metadata):
        metadata.create_all(engine)
    yield engine


def event(conn: Any, at: float, outcome: str, action: str = "login") -> None:
    audit.append(
        conn,
        audit.AuditEvent(
            at=at,
            actor="channel:x",
            action=action,
            subject="33068212345678@sxlss",
            outcome=outcome,
            reason="" if outcome == "ok" else "bad-password",
            details={"peer": "192.0.2.7:1"},
        ),
    )


def test_logins_are_counted_per_hour_with_their_failures(db: Engine) -> None:
    with db.begin() as conn:
        event(conn, T0 - 1, "refused")  # before the range
        event(conn, T0, "ok")  # first second of hour 0
        event(conn, T0 + HOUR - 0.001, "refused")  # last instant of hour 0
        event(conn, T0 + HOUR, "failed")  # hour 1
        event(conn, T0 + 2 * HOUR + 5, "ok", action="login.resume")  # not a login
        event(conn, T0 + 3 * HOUR + 1, "ok")
        event(conn, T0 + 4 * HOUR, "ok")  # at the end: outside [start, start + 4 h)
    with db.begin() as conn:
        attempts, failed = hourly_logins(conn, start=T0, hours=4)
    assert attempts == [2, 1, 0, 1]
    assert failed == [1, 1, 0, 0]


def session(conn: Any, sid: str, start: float, end: float | None) -> None:
    assert _sessions.start_session(
        conn,
        session_id=sid,
        account="33068212345678@sxlss",
        unit_code="12345678",
        peer="192.0.2.7:1",
        cert_serial="01",
        node="n",
        now=start,
        max_concurrent=100,
    )
    if end is not None:
        _sessions.end_session(conn, sid, reason="client-quit", now=end)


def test_open_sessions_are_counted_at_each_instant(db: Engine) -> None:
    with db.begin() as conn:
        session(conn, "a", T0 - DAY, T0 - DAY + 60)  # long gone: not even read
        session(conn, "b", T0 - 10, T0 + 90)  # open at 0 and 60
        session(conn, "c", T0 + 30, None)  # open from 30 on
        session(conn, "d", T0 + 60, T0 + 61)  # open at exactly 60 (start inclusive)
        session(conn, "e", T0 + 100, T0 + 200)  # ended at 200: not open at 200
    with db.begin() as conn:
        counts = _sessions.open_session_counts(conn, [T0, T0 + 60, T0 + 120, T0 + 200])
        view = gateway.SessionRegistryView().open_counts(conn, [T0 + 60])
        assert _sessions.open_session_counts(conn, []) == []
    assert counts == [1, 3, 2, 1]
    assert view == [3]


def test_open_sessions_are_counted_through_the_end_time_index(db: Engine) -> None:
    """Each statement seeks ``ix_sessions_ended_at`` (migration 0011): the open
    sessions and the range's ends, never the whole history by ``started_at``."""
    with db.begin() as conn:
        for n in range(50):
            session(conn, f"s{n}", T0 - 30 * DAY + n * 3600, T0 - 29 * DAY + n * 3600)
    seen: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:  # conn, cursor, statement, parameters, context, many
        if "FROM sessions" in args[2]:
            seen.append((args[2], args[3]))

    sa_event.listen(db, "before_cursor_execute", capture)
    try:
        with db.begin() as conn:
            _sessions.open_session_counts(conn, [T0, T0 + 3600])
    finally:
        sa_event.remove(db, "before_cursor_execute", capture)
    assert len(seen) == 2
    with db.begin() as conn:
        raw: Any = conn.connection.driver_connection
        if db.dialect.name == "postgresql":  # a few rows: force the index PG would pick
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, parameters in seen:
            cur = raw.cursor()
            if db.dialect.name == "sqlite":
                cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                plan = " ".join(str(r[3]) for r in cur.fetchall())
            else:
                cur.execute("EXPLAIN " + statement, parameters)
                plan = " ".join(str(r[0]) for r in cur.fetchall())
            cur.close()
            assert "ix_sessions_ended_at" in plan and "ix_sessions_started_at" not in plan, plan


def test_declarations_are_counted_per_day_by_type_and_state(db: Engine) -> None:
    first = day_start(T0)  # Beijing midnight
    days = [first, first + DAY, first + 2 * DAY]
    with db.begin() as conn:
        conn.execute(
            insert(units).values(
                code="12345678",
                region="330682",
                name="测试单位",
                status="approved",
                registered_at=T0,
                registered_by="x",
            )
        )
        rows = [
            ("d1", "person-add", "pending-review", first + 10),
            ("d2", "person-add", "pending-review", first + DAY - 1),
            ("d3", "person-add", "applied", first + DAY),
            ("d4", "annual-base", "returned", first + DAY + 5),
            ("d5", "person-add", "pending-review", first - 1),  # the day before
            ("d6", "person-add", "draft", None),  # never submitted
        ]
        for did, kind, status, submitted in rows:
            conn.execute(
                insert(declarations).values(
                    id=did,
                    unit_code="12345678",
                    type=kind,
                    status=status,
                    version=1,
                    payload="{}",
                    findings="[]",
                    created_at=T0,
                    created_by="x",
                    updated_at=T0,
                    submitted_at=submitted,
                )
            )
    with db.begin() as conn:
        found = declare_app.submitted_per_interval(conn, days)
    assert [(c.type, c.status, c.counts) for c in found] == [
        ("annual-base", "returned", (0, 1)),
        ("person-add", "applied", (0, 1)),
        ("person-add", "pending-review", (2, 0)),
    ]
    assert (found[2].type_text, found[2].status_text) == ("人员增加", "待审核")


def test_declaration_intervals_must_increase(db: Engine) -> None:
    with db.begin() as conn:
        assert declare_app.submitted_per_interval(conn, [T0]) == []
        with pytest.raises(ValueError, match="increase"):
            declare_app.submitted_per_interval(conn, [T0, T0])
