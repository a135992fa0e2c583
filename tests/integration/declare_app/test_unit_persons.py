"""``unit_persons`` and the roster's plans, on SQLite and PostgreSQL.

The triggers on ``enrolments`` keep each (unit, person) row equal to what the
roster derived from the enrolments before (AAC031: 1 while one is open, else 3 if one
was terminated, else 2; the first month), through inserts, updates and deletes.  The
roster's statements — page 1, a deep page, a search by ID number — read index ranges:
no plan scans ``enrolments``, ``unit_persons`` or (for the ID search) ``persons``
whole, nor the unit's every enrolment through ``ix_enrolments_unit_code``.  On PostgreSQL the test tables are tiny, where a sequential scan is the
cheapest plan anyway, so the plans are taken with ``enable_seqscan`` off: a
sequential scan that remains has no index able to serve it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, event, insert, select, update

import declare_app
from declare_app._queries import EmployerQueries
from declare_app._schema import enrolments, persons, unit_persons
from declare_app.interfaces import Actor

from .conftest import REGION, UNIT_A, UNIT_B

NOW = 1_741_572_000.0


def _person(conn: Connection, i: int) -> str:
    body = f"{REGION}1980{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
    number = f"{i + 1:010d}"
    conn.execute(
        insert(persons),
        {
            "person_number": number,
            "id_number": body + declare_app.person_id_check_char(body),
            "id_type": "01",
            "name": f"测试{i}",
            "gender": "1" if i % 2 else "2",
            "birth_date": date(1980, 1 + i % 12, 1 + i % 28),
            "staff_kind": "B",
            "created_at": NOW,
            "updated_at": NOW,
        },
    )
    return number


def _enrol(conn: Connection, number: str, unit: str, insurance: str, **values: Any) -> int:
    row = {
        "person_number": number,
        "unit_code": unit,
        "insurance": insurance,
        "status": "1",
        "start_month": "2020-01",
        "end_month": None,
        "base_fen": 500_000,
        "updated_at": NOW,
    } | values
    return int(conn.execute(insert(enrolments).returning(enrolments.c.id), row).scalar_one())


def _derived(conn: Connection) -> set[tuple[str, str, str, str]]:
    """What the roster derived from ``enrolments`` before ``unit_persons`` existed."""
    e = enrolments.c
    rows = conn.execute(
        select(e.unit_code, e.person_number, e.status, e.start_month).order_by(e.id)
    ).all()
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        grouped.setdefault((row.unit_code, row.person_number), []).append(row)
    return {
        (
            unit,
            number,
            "1" if min(r.status for r in rs) == "1" else max(r.status for r in rs),
            min(r.start_month for r in rs),
        )
        for (unit, number), rs in grouped.items()
    }


def _kept(conn: Connection) -> set[tuple[str, str, str, str]]:
    u = unit_persons.c
    return {
        tuple(row)  # type: ignore[misc]
        for row in conn.execute(select(u.unit_code, u.person_number, u.status, u.start_month))
    }


def test_the_triggers_keep_unit_persons_equal_to_the_enrolments(decl_db: Engine) -> None:
    """After each kind of change the kept rows are exactly the derived ones."""
    with decl_db.begin() as conn:
        a, b = _person(conn, 1), _person(conn, 2)
        first = _enrol(conn, a, UNIT_A, "110", start_month="2019-05")
        _enrol(conn, a, UNIT_A, "310", start_month="2021-03")
        moved = _enrol(conn, b, UNIT_B, "110")
        assert _kept(conn) == _derived(conn)
        assert (UNIT_A, a, "1", "2019-05") in _kept(conn)
        # a reduce: the pension enrolment closed, 失业 still open → still 1
        conn.execute(
            update(enrolments)
            .where(enrolments.c.id == first)
            .values(status="3", end_month="2024-12")
        )
        assert _kept(conn) == _derived(conn)
        # every enrolment closed: terminated (3) wins over suspended (2)
        conn.execute(
            update(enrolments)
            .where(enrolments.c.person_number == a, enrolments.c.status == "1")
            .values(status="2", end_month="2024-12")
        )
        assert (UNIT_A, a, "3", "2019-05") in _kept(conn)
        assert _kept(conn) == _derived(conn)
        # a person's last enrolment in a unit removed: no row for that unit
        conn.execute(delete(enrolments).where(enrolments.c.id == moved))
        assert not any(unit == UNIT_B for unit, *_ in _kept(conn))
        assert _kept(conn) == _derived(conn)


@pytest.fixture
def big_enough(decl_db: Engine) -> Iterator[Engine]:
    with decl_db.begin() as conn:
        for i in range(200):  # a page is a small part of the unit, as in life
            number = _person(conn, i)
            for insurance in ("110", "210", "310"):
                _enrol(conn, number, UNIT_A if i % 3 else UNIT_B, insurance)
    if decl_db.dialect.name == "postgresql":
        with decl_db.begin() as conn:
            for table in ("persons", "enrolments", "unit_persons"):
                conn.exec_driver_sql(f"ANALYZE {table}")
    yield decl_db


def _statements(engine: Engine, call: Any) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:  # conn, cursor, statement, parameters, context, many
        if args[2].lstrip().upper().startswith("SELECT"):
            seen.append((args[2], args[3]))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.begin() as conn:
            call(conn)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def _plan(engine: Engine, sql: str, params: Any) -> str:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            return "\n".join(str(r[-1]) for r in rows)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql, params))


def _full_scans(engine: Engine, plan: str, tables: tuple[str, ...]) -> list[str]:
    """The plan's lines that read a whole table (or a whole index of it), or, on
    SQLite, every enrolment of the unit (``ix_enrolments_unit_code`` on the unit
    alone).  SQLite plans by rule here (ssgate never runs ANALYZE on it), so its plan
    is the one production gets.  PostgreSQL plans by cost: on these few hundred rows
    it rightly reads the unit's enrolments through ``ix_enrolments_unit_code``, so
    only its sequential scans are failures here; its plans at 246,000 enrolments are
    in docs/benchmarks.md (``bench/run.py declare --explain``)."""
    lines = plan.splitlines()
    if engine.dialect.name == "sqlite":
        unit_wide = [line for line in lines if "ix_enrolments_unit_code" in line]
        whole = [
            line for line in lines for t in tables if line.strip().split(" ")[:2] == ["SCAN", t]
        ]
        return unit_wide + whole
    return [line for line in lines for t in tables if f"Seq Scan on {t}" in line]


@pytest.mark.parametrize(
    ("view", "whole"),
    [
        ({"limit": 10, "offset": 0}, ("enrolments", "unit_persons")),
        ({"limit": 10, "offset": 30}, ("enrolments", "unit_persons")),
        ({"status": None, "limit": 10, "offset": 30}, ("enrolments", "unit_persons")),
        ({"id_number": "ID", "limit": 50}, ("enrolments", "unit_persons", "persons")),
    ],
    ids=["page 1", "deep page", "deep page, every status", "ID number"],
)
def test_the_roster_reads_index_ranges(
    big_enough: Engine, view: dict[str, Any], whole: tuple[str, ...]
) -> None:
    """Every statement of the roster call reads ranges of an index, none a whole table."""
    with big_enough.begin() as conn:
        some_id = conn.execute(select(persons.c.id_number).limit(1)).scalar_one()
    kwargs = {k: (some_id if v == "ID" else v) for k, v in view.items()}
    queries = EmployerQueries(declare_app.demo_rate_table())
    actor = Actor("employer", f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, session_id="s")
    statements = _statements(
        big_enough, lambda conn: queries.reading([]).roster(conn, actor, now=NOW, **kwargs)
    )
    roster = [s for s in statements if "unit_persons" in s[0] or "enrolments" in s[0]]
    assert len(roster) >= 2
    for sql, params in roster:
        plan = _plan(big_enough, sql, params)
        assert _full_scans(big_enough, plan, whole) == [], f"{sql}\n{plan}"
