"""The contribution ledger (issue 14) on SQLite and PostgreSQL: approvals write the
plan, the monthly close books each month's 应缴, later approvals of closed months book
adjustments, and 单位缴费 / 个人缴费 / the account statement read the result."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Engine, select

import declare_app
from declare_app._china_time import CHINA_TIME
from declare_app._declarations import ApplyConflictError, Declarations
from declare_app._ledger import RatesNotInForce
from declare_app._ledger_store import close_month
from declare_app._person_id import person_id_check_char
from declare_app._queries import EmployerQueries
from declare_app._retirement import YearMonth
from declare_app._schema import (
    contribution_adjustments,
    contribution_plans,
    contributions,
    enrolments,
)
from declare_app.interfaces import Actor, Declaration, DeclarationType, InvalidDeclaration
from tests.integration.declare_app.conftest import person_add_form

# Every figure ends with 2026: a month of 2027 has none in force.
RATES_2026 = """
[region.330682]
name = "上虞"

[[region.330682.rate]]
insurance = "110"
from = 2026-01-01
until = 2026-12-31
employer = "0.16"
employee = "0.08"
source = "test: pension"

[[region.330682.rate]]
insurance = "210"
from = 2026-01-01
until = 2026-12-31
employer = "0.005"
employee = "0.005"
source = "test: unemployment"

[[region.330682.rate]]
insurance = "310"
from = 2026-01-01
until = 2026-12-31
employer = "0.095"
employee = "0.02"
source = "test: medical"

[[region.330682.rate]]
insurance = "510"
from = 2026-01-01
until = 2026-12-31
employer = "0"
employee = "0"

[[region.330682.base_limit]]
from = 2026-01-01
until = 2026-12-31
floor = "4812"
ceiling = "24930"

[[region.330682.work_injury]]
from = 2026-01-01
until = 2026-12-31
class_rates = ["0.002", "0.004", "0.007", "0.009", "0.011", "0.013", "0.016", "0.019"]
"""
RATES = declare_app.load_rates_toml(RATES_2026, source="rates-2026.toml")
ADD = DeclarationType.PERSON_ADD
REDUCE = DeclarationType.PERSON_REDUCE
BASE = DeclarationType.ANNUAL_BASE
MONTHS_2026 = [f"2026-{m:02d}" for m in range(3, 13)]


def at(year: int, month: int, day: int = 10) -> float:
    return datetime(year, month, day, 10, 0, tzinfo=CHINA_TIME).timestamp()


def make_id(seq: int) -> str:
    body = f"33068219900115{seq:03d}"
    return body + person_id_check_char(body)


@pytest.fixture
def workflow() -> Declarations:  # overrides the demo-rates workflow of conftest
    return Declarations(RATES, clock=lambda: at(2026, 12, 20))


@pytest.fixture
def queries() -> EmployerQueries:
    return EmployerQueries(RATES)


def add_form(id_number: str, name: str, start: str = "2026-03", **more: Any) -> dict[str, Any]:
    return person_add_form(
        id_number,
        name=name,
        start_month=start,
        hire_date=f"{start}-02",
        monthly_wage="9000",
        **more,
    )


def close(db: Engine, *months: str) -> None:
    for text in months:
        month = YearMonth(int(text[:4]), int(text[5:]))
        with db.begin() as conn:
            close_month(
                conn,
                month,
                rates=RATES,
                current=YearMonth(2026, 12),
                actor="os:t",
                now=at(2026, 12),
            )


def ledger_rows(db: Engine, month: str) -> list[tuple[Any, ...]]:
    c = contributions.c
    with db.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(contributions).where(c.month == month).order_by(c.person_number, c.insurance)
            )
        ]


def payments(
    db: Engine, queries: EmployerQueries, employer: Actor, number: str
) -> dict[tuple[str, str], Any]:
    with db.begin() as conn:
        result = queries.person_payments(
            conn, employer, person_number=number, limit=500, now=at(2026, 12, 20)
        )
    return {(r.month, r.insurance.value): r for r in result.rows}


def test_acceptance_1_add_reduce_and_annual_base_shape_the_closed_months(
    decl_db: Engine,
    queries: EmployerQueries,
    employer_a: Actor,
    decide: Callable[..., Declaration],
) -> None:
    """Issue 14 acceptance 1: three persons added from 2026-03 on base 9 000; one
    reduced from 2026-09, one re-based to 10 000 from 2026-07; months closed through
    2026-12."""
    stays, leaves, rebased = make_id(121), make_id(123), make_id(125)
    numbers = {}
    for idn, name in ((stays, "甲"), (leaves, "乙"), (rebased, "丙")):
        done = decide(employer_a, ADD, add_form(idn, name), at(2026, 3))
        numbers[idn] = done.result["person_no"]
    decide(
        employer_a,
        BASE,
        {
            "year": "2026",
            "from_month": "2026-07",
            "lines": [
                {"person_no": numbers[rebased], "name": "丙", "id_number": rebased, "wage": "10000"}
            ],
        },
        at(2026, 7),
    )
    decide(
        employer_a,
        REDUCE,
        {
            "person_no": numbers[leaves],
            "name": "乙",
            "id_number": leaves,
            "reason": "12",
            "stop_month": "2026-09",
            "leave_date": "2026-08-31",
            "evidence": "解除劳动合同证明 2026-001",
        },
        at(2026, 9),
    )
    close(decl_db, *MONTHS_2026)

    first = payments(decl_db, queries, employer_a, numbers[stays])
    assert sorted({m for m, _ in first}) == MONTHS_2026  # ten months
    for month in MONTHS_2026:
        pension = first[(month, "110")]
        assert (pension.base, pension.employer, pension.employee) == (
            D("9000.00"),
            D("1440.00"),
            D("720.00"),
        )
        assert pension.to_account == D("720.00")
        medical, unemployment = first[(month, "310")], first[(month, "210")]
        assert (medical.employer, medical.employee) == (D("855.00"), D("180.00"))
        assert (unemployment.employer, unemployment.employee) == (D("45.00"), D("45.00"))

    second = payments(decl_db, queries, employer_a, numbers[leaves])
    assert sorted({m for m, _ in second}) == MONTHS_2026[:6]  # 03..08: stopped from 09

    third = payments(decl_db, queries, employer_a, numbers[rebased])
    assert third[("2026-06", "110")].employer == D("1440.00")
    assert (third[("2026-07", "110")].base, third[("2026-07", "110")].employer) == (
        D("10000.00"),
        D("1600.00"),
    )
    assert third[("2026-12", "110")].employee == D("800.00")

    # 单位缴费 is the sum over all persons, month by month and insurance by insurance.
    with decl_db.begin() as conn:
        unit = queries.unit_payments(conn, employer_a, limit=500, now=at(2026, 12, 20))
    people = [first, second, third]
    for row in unit.rows:
        key = (row.month, row.insurance.value)
        lines = [p[key] for p in people if key in p]
        assert row.persons == len(lines)
        assert row.employer == sum((ln.employer for ln in lines), D(0))
        assert row.employee == sum((ln.employee for ln in lines), D(0))
    assert unit.employer == sum((ln.employer for p in people for ln in p.values()), D(0))


def test_acceptance_2_a_back_dated_add_books_arrears_and_leaves_the_closed_month_alone(
    decl_db: Engine,
    queries: EmployerQueries,
    employer_a: Actor,
    decide: Callable[..., Declaration],
) -> None:
    """Issue 14 acceptance 2: March and April are closed; a person added in May from
    March gets two 补缴 rows per insurance, and the closed months' lines do not change."""
    decide(employer_a, ADD, add_form(make_id(121), "甲"), at(2026, 3))
    close(decl_db, "2026-03", "2026-04")
    before = {m: ledger_rows(decl_db, m) for m in ("2026-03", "2026-04")}
    assert len(before["2026-03"]) == 5

    late = decide(employer_a, ADD, add_form(make_id(123), "乙"), at(2026, 5))
    # 2 months × 4 insurance types: maternity (510) is at 0 since the merger into 310.
    assert late.result["adjustments"] == 8

    assert {m: ledger_rows(decl_db, m) for m in before} == before
    a = contribution_adjustments.c
    with decl_db.connect() as conn:
        rows = conn.execute(
            select(a.month, a.insurance, a.kind, a.employer_fen, a.employee_fen)
            .where(a.insurance == "110")
            .order_by(a.month)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("2026-03", "110", "arrears", 144000, 72000),
        ("2026-04", "110", "arrears", 144000, 72000),
    ]
    # 个人缴费 shows the 补缴 under the months they belong to; 单位缴费 counts them.
    with decl_db.begin() as conn:
        late_result = queries.person_payments(
            conn, employer_a, person_number=late.result["person_no"], now=at(2026, 12, 20)
        )
    assert late_result.months == 2  # March and April, by 补缴
    late_rows = payments(decl_db, queries, employer_a, late.result["person_no"])
    march = late_rows[("2026-03", "110")]
    assert (march.kind_label, march.employer, march.status) == ("补缴", D("1440.00"), "due")
    with decl_db.begin() as conn:
        unit = queries.unit_payments(
            conn, employer_a, from_month="2026-03", to_month="2026-03", now=at(2026, 12, 20)
        )
    pension = next(r for r in unit.rows if r.insurance.value == "110")
    assert (pension.persons, pension.employer, pension.base_total) == (
        2,
        D("2880.00"),
        D("9000.00"),  # the base of the month's own lines; the 补缴 adds amounts
    )
    # Approving nothing new and closing again books nothing twice.
    close(decl_db, "2026-03", "2026-04")
    assert {m: ledger_rows(decl_db, m) for m in before} == before


def test_a_reduce_of_a_closed_month_books_a_refund(
    decl_db: Engine,
    employer_a: Actor,
    decide: Callable[..., Declaration],
) -> None:
    number = decide(employer_a, ADD, add_form(make_id(121), "甲"), at(2026, 3)).result["person_no"]
    close(decl_db, "2026-03", "2026-04", "2026-05")
    decide(
        employer_a,
        REDUCE,
        {
            "person_no": number,
            "name": "甲",
            "id_number": make_id(121),
            "reason": "12",
            "stop_month": "2026-05",
            "leave_date": "2026-04-30",
            "evidence": "解除劳动合同证明 2026-002",
        },
        at(2026, 5, 20),
    )
    a = contribution_adjustments.c
    with decl_db.connect() as conn:
        rows = conn.execute(
            select(a.month, a.kind, a.employer_fen, a.employee_fen).where(a.insurance == "110")
        ).all()
    assert [tuple(r) for r in rows] == [("2026-05", "refund", -144000, -72000)]


def test_acceptance_3_a_person_enrolled_in_june_has_the_months_credited(
    decl_db: Engine,
    queries: EmployerQueries,
    employer_a: Actor,
    decide: Callable[..., Declaration],
) -> None:
    """The 2026 记账利率 is not published: the statement says so instead of failing."""
    number = decide(employer_a, ADD, add_form(make_id(121), "甲", "2026-06"), at(2026, 6))
    close(decl_db, *MONTHS_2026)
    with decl_db.begin() as conn:
        s = queries.account_statement(
            conn,
            employer_a,
            person_number=number.result["person_no"],
            year=2026,
            now=at(2026, 12, 20),
        )
    assert (s.months_credited, s.credited) == (7, D("5040.00"))
    assert (s.rate, s.rate_status, s.interest) == (None, "unpublished", None)
    assert s.closing == D("5040.00")


def test_acceptance_4_a_month_without_rates_is_refused_naming_the_year(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
) -> None:
    with decl_db.begin() as conn:
        draft = workflow.create_draft(
            conn, employer_a, ADD, add_form(make_id(121), "甲", "2027-01"), now=at(2027, 1)
        )
    rate_errors = [f.message for f in draft.findings if f.rule == "V-RATE-01"]
    assert rate_errors and "2027" in rate_errors[0]
    with pytest.raises(InvalidDeclaration), decl_db.begin() as conn:
        workflow.submit(conn, employer_a, draft.id, now=at(2027, 1))


def test_a_close_of_a_month_without_rates_names_the_year_and_file_and_writes_nothing(
    decl_db: Engine,
    employer_a: Actor,
    decide: Callable[..., Declaration],
) -> None:
    decide(employer_a, ADD, add_form(make_id(121), "甲"), at(2026, 3))
    with (
        pytest.raises(RatesNotInForce, match=r"2027 figures to rates-2026\.toml"),
        decl_db.begin() as conn,
    ):
        close_month(
            conn,
            YearMonth(2027, 1),
            rates=RATES,
            current=YearMonth(2027, 1),
            actor="os:t",
            now=at(2027, 1),
        )
    assert ledger_rows(decl_db, "2027-01") == []


def test_closing_a_month_twice_changes_nothing(
    decl_db: Engine, employer_a: Actor, decide: Callable[..., Declaration]
) -> None:
    decide(employer_a, ADD, add_form(make_id(121), "甲"), at(2026, 3))
    close(decl_db, "2026-03")
    once = ledger_rows(decl_db, "2026-03")
    with decl_db.begin() as conn:
        again = close_month(
            conn, YearMonth(2026, 3), rates=RATES, current=YearMonth(2026, 12), actor="x", now=0
        )
    assert again.already_closed and again.lines == 5
    assert again.employer == D("1440.00") + D("45.00") + D("855.00") + D("63.00")
    assert ledger_rows(decl_db, "2026-03") == once


def test_serve_closes_the_month_by_itself_on_the_close_day(
    decl_db: Engine, employer_a: Actor, decide: Callable[..., Declaration]
) -> None:
    """``[declare] close_day`` = 25: nothing before the 25th, the month closed on it,
    and later ticks find it closed (one audit event)."""
    from twisted.internet.testing import MemoryReactorClock

    import audit
    from auth.testing import SynchronousRunner
    from ssgate._monthly_close import TICK_SECONDS, MonthlyClose

    decide(employer_a, ADD, add_form(make_id(121), "甲"), at(2026, 3))
    clock = MemoryReactorClock()
    clock.advance(at(2026, 3, 24))
    closer = MonthlyClose(SynchronousRunner(decl_db), clock, RATES, 25)
    closer.tick()
    assert ledger_rows(decl_db, "2026-03") == []
    clock.advance(2 * 86400)
    closer.tick()
    assert len(ledger_rows(decl_db, "2026-03")) == 5
    clock.advance(TICK_SECONDS)
    closer.tick()
    with decl_db.connect() as conn:
        records = audit.query(conn, actions=["declare.close-month"])
    assert [(r.event.subject, r.event.actor) for r in records] == [
        ("2026-03", "ssgate:monthly-close")
    ]


def test_an_approval_needing_rates_not_in_force_is_refused_and_applies_nothing(
    decl_db: Engine, employer_a: Actor, auditor: Actor
) -> None:
    """Base limits run into 2027 but the rates end with 2026: a 2027-01 add passes the
    form's checks, and its approval is refused naming the year (V-RATE-01), with no
    enrolment, plan or voucher written."""
    limits_2027 = RATES_2026.replace(
        'until = 2026-12-31\nfloor = "4812"', 'until = 2027-12-31\nfloor = "4812"'
    )
    workflow = Declarations(
        declare_app.load_rates_toml(limits_2027, source="rates.toml"), clock=lambda: at(2027, 1)
    )
    with decl_db.begin() as conn:
        d = workflow.create_draft(
            conn, employer_a, ADD, add_form(make_id(121), "甲", "2027-01"), now=at(2027, 1)
        )
        workflow.submit(conn, employer_a, d.id, now=at(2027, 1))
        workflow.claim(conn, auditor, d.id, now=at(2027, 1))
    with pytest.raises(ApplyConflictError) as refused, decl_db.begin() as conn:
        workflow.approve(conn, auditor, d.id, now=at(2027, 1))
    assert [f.rule for f in refused.value.findings] == ["V-RATE-01"]
    assert "2027年度" in refused.value.findings[0].message
    with decl_db.connect() as conn:
        assert conn.execute(select(enrolments)).all() == []
        assert conn.execute(select(contribution_plans)).all() == []
        assert workflow.get(conn, auditor, d.id).status.value == "under-review"


def test_the_demo_history_continues_through_the_monthly_close(decl_db: Engine) -> None:
    """The demo keeps its six months of lines and loads plans: closing its current
    month leaves those lines alone, closing the next books every open plan."""
    from declare_app._demo_data import load_demo
    from tests.integration.declare_app.conftest import UNIT_A

    demo_rates = declare_app.demo_rate_table()
    with decl_db.begin() as conn:
        load_demo(conn, UNIT_A, now=at(2026, 11, 23), seed=7, persons_count=40)
    november = ledger_rows(decl_db, "2026-11")
    assert november  # the demo's own history
    for month in (YearMonth(2026, 11), YearMonth(2026, 12)):
        with decl_db.begin() as conn:
            close_month(
                conn, month, rates=demo_rates, current=YearMonth(2026, 12), actor="t", now=0
            )
    closed_november = ledger_rows(decl_db, "2026-11")
    # The demo's lines stay as they were; the close adds the persons its declarations
    # enrolled through the workflow (they have a plan but no demo history).
    assert [r for r in closed_november if r in november] == november
    p = contribution_plans.c
    with decl_db.connect() as conn:
        covering = conn.execute(
            select(p.person_number, p.insurance).where(
                p.from_month <= "2026-12",
                (p.until_month.is_(None)) | (p.until_month >= "2026-12"),
            )
        ).all()
    december = ledger_rows(decl_db, "2026-12")
    assert sorted((r[1], r[3]) for r in december) == sorted(tuple(r) for r in covering)
    assert len(december) > 100  # 40 persons' worth, less the reduced and retired
