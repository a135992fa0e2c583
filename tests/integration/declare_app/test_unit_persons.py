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
from sqlalchemy import Connection, Engine, delete, event, func, insert, select, update

import declare_app
from declare_app._bulk import insert_rows
from declare_app._queries import EmployerQueries
from declare_app._schema import (
    contribution_adjustments,
    contributions,
    enrolments,
    persons,
    unit_enrolment_counts,
    unit_persons,
)
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


def _names_kept(conn: Connection) -> bool:
    """Every unit_persons row carries its person's name as it is now."""
    u, p = unit_persons.c, persons.c
    rows = conn.execute(
        select(u.name, p.name.label("actual")).join(persons, p.person_number == u.person_number)
    ).all()
    return all(row.name == row.actual for row in rows)


def _counts_kept(conn: Connection) -> bool:
    """unit_enrolment_counts equals the enrolments counted per unit, insurance, status."""
    e, n = enrolments.c, unit_enrolment_counts.c
    counted = {
        (r.unit_code, r.insurance, r.status): r.n
        for r in conn.execute(
            select(e.unit_code, e.insurance, e.status, func.count().label("n")).group_by(
                e.unit_code, e.insurance, e.status
            )
        )
    }
    kept = {
        (r.unit_code, r.insurance, r.status): r.n
        for r in conn.execute(select(n.unit_code, n.insurance, n.status, n.n))
        if r.n != 0
    }
    return counted == kept


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
        assert _counts_kept(conn) and _names_kept(conn)
        # a bulk insert (COPY on PostgreSQL: one statement trigger over every row)
        many = [_person(conn, 10 + i) for i in range(60)]
        insert_rows(
            conn,
            enrolments,
            [
                {
                    "person_number": number,
                    "unit_code": UNIT_B,
                    "insurance": insurance,
                    "status": "1",
                    "start_month": f"2020-{1 + i % 12:02d}",
                    "end_month": None,
                    "base_fen": 500_000,
                    "updated_at": NOW,
                }
                for i, number in enumerate(many)
                for insurance in ("110", "210")
            ],
        )
        assert _kept(conn) == _derived(conn)
        assert _counts_kept(conn) and _names_kept(conn)
        # a person's new name reaches every unit's row of theirs
        conn.execute(update(persons).where(persons.c.person_number == a).values(name="改名后"))
        assert _names_kept(conn)
        assert conn.execute(
            select(unit_persons.c.name).where(unit_persons.c.person_number == a)
        ).scalars().all() == ["改名后"]


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


@pytest.fixture
def with_ledger(big_enough: Engine) -> Iterator[Engine]:
    """Ledger lines, an adjustment and a retirement in UNIT_A, for the queries' plans."""
    with big_enough.begin() as conn:
        numbers = (
            conn.execute(
                select(unit_persons.c.person_number).where(unit_persons.c.unit_code == UNIT_A)
            )
            .scalars()
            .all()
        )
        for month in ("2025-01", "2025-02"):
            conn.execute(
                insert(contributions),
                [
                    {
                        "person_number": n,
                        "unit_code": UNIT_A,
                        "insurance": "110",
                        "month": month,
                        "base_fen": 500_000,
                        "employer_fen": 80_000,
                        "employee_fen": 40_000,
                        "to_account_fen": 40_000,
                        "status": "paid" if month == "2025-01" else "due",
                    }
                    for n in numbers
                ],
            )
        conn.execute(
            insert(contribution_adjustments),
            {
                "person_number": numbers[0],
                "unit_code": UNIT_A,
                "insurance": "110",
                "month": "2025-01",
                "kind": "arrears",
                "base_fen": 0,
                "employer_fen": 1_000,
                "employee_fen": 500,
                "to_account_fen": 500,
                "declaration_id": None,
                "booked_at": NOW,
            },
        )
        conn.execute(
            update(enrolments)
            .where(enrolments.c.person_number == numbers[1])
            .values(status="3", end_month="2024-12", stop_reason="31")
        )
    if big_enough.dialect.name == "postgresql":
        with big_enough.begin() as conn:
            for table in ("contributions", "contribution_adjustments", "unit_enrolment_counts"):
                conn.exec_driver_sql(f"ANALYZE {table}")
    yield big_enough


_READ: tuple[str, ...] = ("enrolments", "unit_persons", "persons", "contributions", "line")


@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        ("roster", {"name": "测试1", "limit": 10}),
        ("roster", {"name": "测试1", "status": None, "limit": 10, "offset": 10}),
        ("unit_info", {}),
        ("unit_payments", {"limit": 10}),
        ("unit_payments", {"status": "due", "limit": 10}),
        ("retirees", {"limit": 10}),
        ("changes", {"limit": 10}),
        ("person_payments", {"id_number": "ID"}),
        ("account_statement", {"id_number": "ID", "year": 2025}),
    ],
    ids=[
        "name fragment",
        "name fragment, every status",
        "unit-info",
        "unit-payments",
        "unit-payments due",
        "retirees",
        "changes",
        "person-payments",
        "account-statement",
    ],
)
def test_the_unit_queries_read_index_ranges(
    with_ledger: Engine, query: str, kwargs: dict[str, Any]
) -> None:
    """Every statement of the query reads index ranges: no whole table of enrolments,
    unit_persons, persons or the ledger, nor (SQLite) the unit's every enrolment."""
    with with_ledger.begin() as conn:
        some_id = conn.execute(
            select(persons.c.id_number)
            .join(unit_persons, unit_persons.c.person_number == persons.c.person_number)
            .where(unit_persons.c.unit_code == UNIT_A)
            .limit(1)
        ).scalar_one()
    call_kwargs = {k: (some_id if v == "ID" else v) for k, v in kwargs.items()}
    queries = EmployerQueries(declare_app.demo_rate_table())
    actor = Actor("employer", f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, session_id="s")
    statements = _statements(
        with_ledger,
        lambda conn: getattr(queries.reading([]), query)(conn, actor, now=NOW, **call_kwargs),
    )
    assert statements
    for sql, params in statements:
        plan = _plan(with_ledger, sql, params)
        assert _full_scans(with_ledger, plan, _READ) == [], f"{sql}\n{plan}"


def test_the_roster_export_reads_the_unit_persons_range_in_order(big_enough: Engine) -> None:
    """The export's one query walks the unit's persons in 个人编号 order and reads each
    person's rows by key: no whole table, and on SQLite no sort of the unit's rows
    before the first one goes out."""
    queries = EmployerQueries(declare_app.demo_rate_table())
    actor = Actor("employer", f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, session_id="s")

    def export(conn: Connection) -> None:
        _summary, rows = queries.reading([]).roster_export(conn, actor, status=None, now=NOW)
        assert len(list(rows)) > 100

    statements = _statements(big_enough, export)
    streamed = [s for s in statements if "JOIN enrolments" in s[0]]
    assert len(streamed) == 1
    plan = _plan(big_enough, *streamed[0])
    assert _full_scans(big_enough, plan, _READ) == [], plan
    assert "TEMP B-TREE" not in plan, plan
