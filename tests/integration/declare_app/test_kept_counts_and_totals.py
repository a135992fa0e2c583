"""The unit's pages read counts and sums the database keeps (migration 0018), on
SQLite and PostgreSQL: ``unit_person_counts`` (the roster's counts per status) and
``unit_ledger_totals`` (单位缴费) stay equal to a recount after every kind of change,
and 单位到龄人员查询 reads only the persons born in the window's months — finding
exactly whom the rule over every person of the unit finds, each once across pages."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

import declare_app
from declare_app._bulk import insert_rows
from declare_app._person_id import Gender
from declare_app._queries import EmployerQueries
from declare_app._retirement import (
    InsuredPerson,
    StaffKind,
    YearMonth,
    persons_reaching_retirement,
)
from declare_app._schema import (
    contributions,
    enrolments,
    persons,
    unit_ledger_totals,
    unit_person_counts,
    unit_persons,
)
from declare_app._unit_totals import NOT_PAID
from declare_app.interfaces import Actor

from .conftest import REGION, UNIT_A, UNIT_B
from .test_unit_persons import _enrol, _full_scans, _person, _plan, _statements

NOW = 1_741_572_000.0  # 2025-03-10, China time
ACTOR_A = Actor("employer", f"{REGION}{UNIT_A}@sxlss", unit_code=UNIT_A, session_id="s")


def _recounted(conn: Connection) -> dict[tuple[str, str], int]:
    u = unit_persons.c
    return dict(
        Counter((r.unit_code, r.status) for r in conn.execute(select(u.unit_code, u.status)))
    )


def _counts(conn: Connection) -> dict[tuple[str, str], int]:
    n = unit_person_counts.c
    return {
        (r.unit_code, r.status): r.n
        for r in conn.execute(select(n.unit_code, n.status, n.n))
        if r.n != 0
    }


def _roster_counts(conn: Connection) -> tuple[dict[str, int], int]:
    roster = (
        EmployerQueries(declare_app.demo_rate_table())
        .reading([])
        .roster(conn, ACTOR_A, status=None, limit=10, now=NOW)
    )
    return dict(roster.counts), roster.page.total


def test_the_roster_counts_stay_right_after_adds_moves_deletes_and_imports(
    decl_db: Engine,
) -> None:
    """After each change the kept counts per (unit, status) equal a recount of the
    roster's rows, and the roster's page 1 (which reads only the kept counts) shows
    them and their total."""
    with decl_db.begin() as conn:
        a, b, c = _person(conn, 1), _person(conn, 2), _person(conn, 3)
        pension_a = _enrol(conn, a, UNIT_A, "110")
        _enrol(conn, a, UNIT_A, "310")
        _enrol(conn, b, UNIT_A, "110")
        moved = _enrol(conn, c, UNIT_A, "110")
        assert _counts(conn) == _recounted(conn) == {(UNIT_A, "1"): 3}
        assert _roster_counts(conn) == ({"1": 3}, 3)
        # a reduce of every insurance: the person is terminated in the unit
        conn.execute(
            update(enrolments)
            .where(enrolments.c.person_number == a)
            .values(status="3", end_month="2024-12")
        )
        assert _counts(conn) == _recounted(conn) == {(UNIT_A, "1"): 2, (UNIT_A, "3"): 1}
        assert _roster_counts(conn) == ({"1": 2, "3": 1}, 3)
        # one insurance opened again: active once more
        conn.execute(
            update(enrolments)
            .where(enrolments.c.id == pension_a)
            .values(status="1", end_month=None)
        )
        assert _counts(conn) == _recounted(conn) == {(UNIT_A, "1"): 3}
        # a person moved to another unit (the enrolment's unit changed)
        conn.execute(update(enrolments).where(enrolments.c.id == moved).values(unit_code=UNIT_B))
        assert _counts(conn) == _recounted(conn) == {(UNIT_A, "1"): 2, (UNIT_B, "1"): 1}
        # a person's last enrolment in the unit deleted
        conn.execute(delete(enrolments).where(enrolments.c.person_number == b))
        assert _counts(conn) == _recounted(conn) == {(UNIT_A, "1"): 1, (UNIT_B, "1"): 1}
        assert _roster_counts(conn) == ({"1": 1}, 1)
        # an import (the bulk path: COPY and a statement trigger on PostgreSQL), with
        # persons already in the unit among the new rows
        many = [_person(conn, 10 + i) for i in range(40)]
        insert_rows(
            conn,
            enrolments,
            [
                {
                    "person_number": number,
                    "unit_code": UNIT_A,
                    "insurance": insurance,
                    "status": "2" if i % 5 == 0 else "1",
                    "start_month": "2023-01",
                    "end_month": "2024-06" if i % 5 == 0 else None,
                    "base_fen": 500_000,
                    "updated_at": NOW,
                }
                for i, number in enumerate([*many, a])
                for insurance in ("110", "210")
            ],
        )
        assert _counts(conn) == _recounted(conn)
        counts, total = _roster_counts(conn)
        assert counts == {"1": 33, "2": 8} and total == 41
        # a bulk update of many rows at once (a statement trigger over both tables)
        conn.execute(
            update(enrolments)
            .where(enrolments.c.unit_code == UNIT_A, enrolments.c.status == "2")
            .values(status="3")
        )
        assert _counts(conn) == _recounted(conn)
        assert _roster_counts(conn)[0] == {"1": 33, "3": 8}


def _line(number: str, unit: str, month: str, insurance: str = "110", **values: Any) -> dict:
    return {
        "person_number": number,
        "unit_code": unit,
        "insurance": insurance,
        "month": month,
        "base_fen": 500_000,
        "employer_fen": 80_000,
        "employee_fen": 40_000,
        "to_account_fen": 40_000,
        "status": "due",
        "paid_on": None,
    } | values


def _regrouped(conn: Connection) -> dict[tuple[Any, ...], tuple[int, int, int, int]]:
    c = contributions.c
    out = {}
    for r in conn.execute(
        select(
            c.unit_code,
            c.month,
            c.insurance,
            c.status,
            c.paid_on,
            func.count(),
            func.sum(c.base_fen),
            func.sum(c.employer_fen),
            func.sum(c.employee_fen),
        ).group_by(c.unit_code, c.month, c.insurance, c.status, c.paid_on)
    ):
        key = (r[0], r[1], r[2], r[3], r[4] or NOT_PAID)
        out[key] = (int(r[5]), int(r[6]), int(r[7]), int(r[8]))
    return out


def _totals(conn: Connection) -> dict[tuple[Any, ...], tuple[int, int, int, int]]:
    return {
        (r.unit_code, r.month, r.insurance, r.status, r.paid_on): (
            r.lines,
            r.base_fen,
            r.employer_fen,
            r.employee_fen,
        )
        for r in conn.execute(select(unit_ledger_totals))
    }


def test_the_unit_payment_totals_stay_right_after_lines_payments_and_deletes(
    decl_db: Engine,
) -> None:
    """``unit_ledger_totals`` equals the ledger grouped afresh after inserts (row by
    row and in bulk), a payment, a corrected amount, a moved line and deletes (no
    empty group is left), and 单位缴费 shows the same sums as the lines."""
    queries = EmployerQueries(declare_app.demo_rate_table()).reading([])
    with decl_db.begin() as conn:
        numbers = [_person(conn, i) for i in range(12)]
        for n in numbers:
            _enrol(conn, n, UNIT_A, "110")
        conn.execute(insert(contributions), _line(numbers[0], UNIT_A, "2025-01"))
        insert_rows(
            conn,
            contributions,
            [
                _line(n, UNIT_A, month, insurance)
                for n in numbers[1:]
                for month in ("2025-01", "2025-02")
                for insurance in ("110", "210")
            ],
        )
        assert _totals(conn) == _regrouped(conn)
        c = contributions.c
        # a payment of January's pension lines
        conn.execute(
            update(contributions)
            .where(c.month == "2025-01", c.insurance == "110")
            .values(status="paid", paid_on=date(2025, 2, 14))
        )
        # a corrected amount, a line moved to another unit, deletes
        conn.execute(
            update(contributions)
            .where(c.person_number == numbers[3], c.month == "2025-02", c.insurance == "210")
            .values(employer_fen=90_000)
        )
        conn.execute(
            update(contributions)
            .where(c.person_number == numbers[4], c.month == "2025-02", c.insurance == "110")
            .values(unit_code=UNIT_B)
        )
        conn.execute(delete(contributions).where(c.person_number == numbers[5]))
        assert _totals(conn) == _regrouped(conn)
        assert all(v[0] > 0 for v in _totals(conn).values())
        payments = queries.unit_payments(conn, ACTOR_A, limit=50, now=NOW)
        lines = conn.execute(select(contributions).where(c.unit_code == UNIT_A)).all()
        assert payments.employer == sum(r.employer_fen for r in lines) / 100
        assert payments.employee == sum(r.employee_fen for r in lines) / 100
        january = {r.insurance.value: r for r in payments.rows if r.month == "2025-01"}
        assert january["110"].status == "paid" and january["110"].paid_on == date(2025, 2, 14)
        assert january["110"].persons == 11 and january["210"].status == "due"
        due = queries.unit_payments(conn, ACTOR_A, status="due", limit=50, now=NOW)
        assert {(r.month, r.insurance.value) for r in due.rows} == {
            ("2025-01", "210"),
            ("2025-02", "110"),
            ("2025-02", "210"),
        }
        # every line of a group deleted: the group is gone
        conn.execute(delete(contributions).where(c.unit_code == UNIT_B))
        assert _totals(conn) == _regrouped(conn)
        assert not any(key[0] == UNIT_B for key in _totals(conn))


# Persons around the default window (2025-03 to 2025-08 at NOW) and far from it: each
# group of the 2025 law, late and early births, overrides, a person no longer
# contributing, a person of another unit.
_PEOPLE: tuple[tuple[str, date, str, str | None, str, str], ...] = (
    # gender, birth, staff kind, override, unit, status of the enrolment
    ("1", date(1965, 3, 2), "B", None, UNIT_A, "1"),
    ("1", date(1965, 1, 20), "A", None, UNIT_A, "1"),
    ("1", date(1965, 6, 1), "B", None, UNIT_A, "1"),
    ("1", date(1964, 12, 5), "B", None, UNIT_A, "1"),  # overdue (2024-12)
    ("1", date(1950, 5, 5), "B", None, UNIT_A, "1"),  # long overdue
    ("1", date(1980, 5, 5), "B", None, UNIT_A, "1"),  # far off
    ("2", date(1970, 2, 10), "A", None, UNIT_A, "1"),  # 干部 55
    ("2", date(1970, 4, 10), "A", None, UNIT_A, "1"),
    ("2", date(1975, 1, 10), "B", None, UNIT_A, "1"),  # 工人 50
    ("2", date(1975, 3, 10), "B", None, UNIT_A, "1"),
    ("2", date(1975, 2, 10), "A", None, UNIT_A, "1"),  # 干部: not in the window
    ("2", date(1985, 2, 10), "B", "2025-05", UNIT_A, "1"),  # override into the window
    ("1", date(1965, 3, 2), "B", "2030-01", UNIT_A, "1"),  # override out of it
    ("1", date(1965, 3, 9), "B", None, UNIT_A, "3"),  # no longer contributing
    ("1", date(1965, 3, 9), "B", None, UNIT_B, "1"),  # another unit's
)


@pytest.fixture
def retiring(decl_db: Engine) -> Engine:
    with decl_db.begin() as conn:
        for i, (gender, birth, kind, override, unit, status) in enumerate(_PEOPLE):
            number = _person(conn, 100 + i)
            conn.execute(
                update(persons)
                .where(persons.c.person_number == number)
                .values(
                    gender=gender,
                    birth_date=birth,
                    staff_kind=kind,
                    retirement_override_month=override,
                )
            )
            _enrol(
                conn,
                number,
                unit,
                "110",
                status=status,
                end_month=None if status == "1" else "2024-12",
            )
        for i in range(60):  # persons of the unit nowhere near the window
            _enrol(conn, _person(conn, 300 + i), UNIT_A, "110")
    if decl_db.dialect.name == "postgresql":
        with decl_db.begin() as conn:
            for table in ("persons", "enrolments", "unit_persons"):
                conn.exec_driver_sql(f"ANALYZE {table}")
    return decl_db


def _by_the_rule(
    conn: Connection, window: tuple[YearMonth, YearMonth], include_overdue: bool
) -> list[str]:
    """The §3.4 rule over every person contributing in UNIT_A (as before 0018)."""
    p, u = persons.c, unit_persons.c
    everyone = [
        InsuredPerson(
            person_number=r.person_number,
            name=r.name,
            id_number=r.id_number,
            gender=Gender.MALE if r.gender == "1" else Gender.FEMALE,
            birth_date=r.birth_date,
            staff_kind=StaffKind.CADRE if r.staff_kind == "A" else StaffKind.WORKER,
            payment_status="1",
            contribution_months=0,
            override_month=YearMonth(
                int(r.retirement_override_month[:4]), int(r.retirement_override_month[5:])
            )
            if r.retirement_override_month
            else None,
        )
        for r in conn.execute(
            select(persons)
            .join(unit_persons, u.person_number == p.person_number)
            .where(u.unit_code == UNIT_A, u.status == "1")
        )
    ]
    rows = persons_reaching_retirement(
        everyone,
        from_month=window[0],
        to_month=window[1],
        current_month=YearMonth(2025, 3),
        include_overdue=include_overdue,
    )
    return [r.person_number for r in rows]


@pytest.mark.parametrize(
    ("window", "include_overdue"),
    [
        ((None, None), False),
        ((None, None), True),
        (("2024-01", "2026-12"), False),
        (("2030-01", "2030-01"), False),
    ],
    ids=["default window", "with overdue", "three years", "an override's month"],
)
def test_reaching_retirement_finds_exactly_whom_the_rule_finds_each_once(
    retiring: Engine, window: tuple[str | None, str | None], include_overdue: bool
) -> None:
    """The query (persons born in the window's months, and overrides) lists exactly
    the persons the rule finds over the unit's every contributing person, in the
    rule's order; paged two at a time, every one of them appears once."""
    queries = EmployerQueries(declare_app.demo_rate_table()).reading([])
    with retiring.begin() as conn:
        first = queries.reaching_retirement(
            conn,
            ACTOR_A,
            from_month=window[0],
            to_month=window[1],
            include_overdue=include_overdue,
            limit=2,
            now=NOW,
        )
        expected = _by_the_rule(conn, (first.from_month, first.to_month), include_overdue)
        assert expected, "the case finds someone"
        seen = [r.person_number for r in first.rows]
        offset = 2
        while offset < first.page.total:
            more = queries.reaching_retirement(
                conn,
                ACTOR_A,
                from_month=window[0],
                to_month=window[1],
                include_overdue=include_overdue,
                limit=2,
                offset=offset,
                now=NOW,
            )
            seen += [r.person_number for r in more.rows]
            offset += 2
    assert first.page.total == len(expected)
    assert seen == expected


def test_reaching_retirement_reads_index_ranges(retiring: Engine) -> None:
    """No whole table of persons, enrolments or unit_persons is read (SQLite plans by
    rule; PostgreSQL with sequential scans discouraged, as the other plans tests)."""
    queries = EmployerQueries(declare_app.demo_rate_table())
    statements = _statements(
        retiring,
        lambda conn: queries.reading([]).reaching_retirement(conn, ACTOR_A, limit=10, now=NOW),
    )
    assert statements
    for sql, params in statements:
        plan = _plan(retiring, sql, params)
        assert _full_scans(retiring, plan, ("persons", "enrolments", "unit_persons")) == [], (
            f"{sql}\n{plan}"
        )
