"""The employer's queries (DOMAIN §5.8) on SQLite and PostgreSQL: what each returns for
a unit whose persons came through the real workflow (person-add, person-reduce,
an inter-unit transfer) plus ledger lines and a retiree inserted directly; that unit B's
persons, ID numbers and names never reach unit A; pagination bounds; the pension
account statement against DOMAIN §4.3's example; one audit event per query."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, update

import audit
from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._pension_account import default_pension_tables
from declare_app._queries import EmployerQueries, InvalidQuery, Page
from declare_app._retirement import YearMonth
from declare_app._schema import contributions, enrolments, persons, unit_profiles
from declare_app.interfaces import (
    Actor,
    Declaration,
    DeclarationError,
    DeclarationType,
    NotFound,
    Status,
)

UNIT_A, UNIT_B = "12345678", "87654321"  # as conftest registers them
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
ADD = DeclarationType.PERSON_ADD
REDUCE = DeclarationType.PERSON_REDUCE
D = Decimal


def make_id(birth: str, seq: int) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


# Unit A's persons through the workflow (odd sequence: men, even: women).
ID_MAN_1965 = make_id("19650615", 11)  # statutory 60y2m → 2025-08
ID_WOMAN_1975 = make_id("19750310", 22)  # worker (B): 50y2m → 2025-05
ID_YOUNG = make_id("19900115", 31)  # suspended by a reduce
ID_MOVER = make_id("19880808", 41)  # B, then transferred to A (增员类型 D)
ID_PENDING = make_id("19920202", 51)  # person-add waiting for review
# Unit B's own, never to be seen by A.
ID_B_ONLY = make_id("19850505", 61)
# Inserted directly.
ID_STATEMENT = make_id("19800101", 71)  # DOMAIN §4.3 example
ID_RETIREE_A = make_id("19641201", 81)  # retired from A in 2024-12
ID_RETIREE_B = make_id("19641110", 91)  # retired from B
ID_OVERDUE = make_id("19600101", 13)  # past the statutory month, still contributing in A

B_NAMES = ("李四", "周退休")
B_UNIT_NAME = "上虞另一家公司"


@dataclass(frozen=True)
class World:
    numbers: dict[str, str]  # id number → 个人编号


def _person(conn: Connection, number: str, idn: str, name: str, **values: Any) -> None:
    gender = "1" if int(idn[16]) % 2 else "2"
    conn.execute(
        insert(persons).values(
            person_number=number,
            id_number=idn,
            id_type="01",
            name=name,
            gender=gender,
            birth_date=date(int(idn[6:10]), int(idn[10:12]), int(idn[12:14])),
            staff_kind=values.pop("staff_kind", "B"),
            created_at=1.0,
            updated_at=1.0,
            **values,
        )
    )


def _enrolment(conn: Connection, number: str, unit: str, **values: Any) -> None:
    for code in values.pop("insurances", ("110",)):
        conn.execute(
            insert(enrolments).values(
                person_number=number,
                unit_code=unit,
                insurance=code,
                status=values.get("status", "1"),
                start_month=values["start_month"],
                end_month=values.get("end_month"),
                base_fen=values.get("base_fen", 900_000),
                stop_reason=values.get("stop_reason"),
                updated_at=1.0,
            )
        )


def _ledger(
    conn: Connection,
    number: str,
    unit: str,
    months: list[str],
    *,
    insurance: str = "110",
    base_fen: int = 900_000,
    employer_fen: int = 144_000,
    employee_fen: int = 72_000,
    to_account_fen: int | None = None,
    status: str = "paid",
    paid_on: date | None = date(2025, 1, 15),
) -> None:
    for month in months:
        conn.execute(
            insert(contributions).values(
                person_number=number,
                unit_code=unit,
                insurance=insurance,
                month=month,
                base_fen=base_fen,
                employer_fen=employer_fen,
                employee_fen=employee_fen,
                to_account_fen=(
                    (employee_fen if insurance == "110" else 0)
                    if to_account_fen is None
                    else to_account_fen
                ),
                status=status,
                paid_on=paid_on if status == "paid" else None,
            )
        )


def person_add_form(id_number: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "张三",
        "id_number": id_number,
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": "2025-01-02",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": "2025-01",
        "monthly_wage": "6000",
    }
    values.update(changes)
    return values


def months_of(year: int, first: int = 1, last: int = 12) -> list[str]:
    return [f"{year}-{m:02d}" for m in range(first, last + 1)]


@pytest.fixture
def world(
    decl_db: Engine,
    workflow: Declarations,
    *,
    employer_a: Actor,
    employer_b: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> World:
    numbers: dict[str, str] = {}
    numbers[ID_MAN_1965] = enrol(employer_a, ID_MAN_1965, name="王建国", staff_kind="B")
    numbers[ID_WOMAN_1975] = enrol(employer_a, ID_WOMAN_1975, name="赵丽", staff_kind="B")
    numbers[ID_YOUNG] = enrol(employer_a, ID_YOUNG, name="钱小明")
    numbers[ID_MOVER] = enrol(employer_b, ID_MOVER, name="孙转入")
    numbers[ID_B_ONLY] = enrol(employer_b, ID_B_ONLY, name="李四")
    reduce_form = {
        "person_no": numbers[ID_YOUNG],
        "name": "钱小明",
        "id_number": ID_YOUNG,
        "reason": "12",
        "stop_month": "2025-03",
        "leave_date": "2025-02-28",
        "evidence": "解除劳动合同证明 2025-001",
    }
    decide(employer_a, REDUCE, reduce_form)
    decide(
        employer_b,
        REDUCE,
        {
            "person_no": numbers[ID_MOVER],
            "name": "孙转入",
            "id_number": ID_MOVER,
            "reason": "21",
            "stop_month": "2025-02",
            "leave_date": "2025-01-31",
        },
    )
    moved = decide(
        employer_a,
        ADD,
        person_add_form(
            ID_MOVER,
            name="孙转入",
            add_type="D",
            person_no=numbers[ID_MOVER],
            hire_date="2025-02-01",
            start_month="2025-02",
        ),
    )
    assert moved.status is Status.APPLIED, moved.findings
    with decl_db.begin() as conn:
        pending = workflow.create_draft(
            conn, employer_a, ADD, person_add_form(ID_PENDING, name="吴待审"), now=NOW
        )
        workflow.submit(conn, employer_a, pending.id, now=NOW)
        # B's own pending add, with a name A must never see.
        other = workflow.create_draft(
            conn,
            employer_b,
            ADD,
            person_add_form(make_id("19930303", 71), name="周退休"),
            now=NOW,
        )
        workflow.submit(conn, employer_b, other.id, now=NOW)

        conn.execute(  # the profile registration began (risk class 3)
            update(unit_profiles)
            .where(unit_profiles.c.unit_code == UNIT_A)
            .values(unit_type="企业", legal_rep_name="陈法人", injury_risk_class=2, updated_at=1.0)
        )
        # Ledger: Jan-Feb 2025 for A's first three, the mover in B (Jan) and A (Feb).
        for idn in (ID_MAN_1965, ID_WOMAN_1975, ID_YOUNG):
            for code in ("110", "210"):
                _ledger(
                    conn,
                    numbers[idn],
                    UNIT_A,
                    ["2025-01", "2025-02"],
                    insurance=code,
                    employer_fen=144_000 if code == "110" else 4_500,
                    employee_fen=72_000 if code == "110" else 4_500,
                )
        _ledger(conn, numbers[ID_MOVER], UNIT_B, ["2025-01"], base_fen=1_000_000)
        _ledger(conn, numbers[ID_MOVER], UNIT_A, ["2025-02"], status="due")
        _ledger(conn, numbers[ID_B_ONLY], UNIT_B, ["2025-01", "2025-02"], base_fen=1_234_500)

        # The DOMAIN §4.3 person: in A since 2023-12.  A December 2023 credit of
        # 99 670.26 earns 99 670.26 × 3.97% × 1/12 = 329.74 of interest, so 2024 opens
        # with exactly 100 000.00; then 720 a month through 2024 (base 9 000 × 8%).
        _person(conn, "33068290000001", ID_STATEMENT, "冯对帐")
        _enrolment(conn, "33068290000001", UNIT_A, start_month="2023-12")
        _ledger(
            conn,
            "33068290000001",
            UNIT_A,
            ["2023-12"],
            employee_fen=72_000,
            to_account_fen=9_967_026,
        )
        _ledger(conn, "33068290000001", UNIT_A, months_of(2024))

        # A retiree of A: born 1964-12 (statutory 60y0m → 2024-12), last month 2024-11.
        _person(
            conn,
            "33068290000002",
            ID_RETIREE_A,
            "郑退休",
            terminal_reason="31",
            receiving_pension=True,
        )
        _enrolment(
            conn,
            "33068290000002",
            UNIT_A,
            insurances=("110", "210"),
            status="3",
            start_month="2020-01",
            end_month="2024-11",
            stop_reason="31",
        )
        _ledger(conn, "33068290000002", UNIT_A, ["2023-12", *months_of(2024, 1, 11)])
        # A retiree of B.
        _person(
            conn,
            "33068290000003",
            ID_RETIREE_B,
            "周退休",
            terminal_reason="31",
            receiving_pension=True,
        )
        _enrolment(
            conn,
            "33068290000003",
            UNIT_B,
            status="3",
            start_month="2020-01",
            end_month="2024-10",
            stop_reason="31",
        )
        _ledger(conn, "33068290000003", UNIT_B, months_of(2024, 1, 10))
        # Past the statutory month and still contributing in A.
        _person(conn, "33068290000004", ID_OVERDUE, "褚超龄")
        _enrolment(conn, "33068290000004", UNIT_A, insurances=("410",), start_month="2024-01")
    return World(numbers)


@pytest.fixture
def queries() -> EmployerQueries:
    import declare_app

    return EmployerQueries(declare_app.demo_rate_table())


@pytest.fixture
def conn(decl_db: Engine) -> Iterator[Connection]:
    with decl_db.begin() as connection:
        yield connection


def _events(conn: Connection, action: str) -> list[audit.AuditRecord]:
    return audit.query(conn, actions=[f"declare.query.{action}"])


# -- what each query returns --------------------------------------------------------


def test_unit_info_shows_registry_profile_standing_injury_rate_and_insurances(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    info = queries.unit_info(conn, employer_a, now=NOW)
    assert (info.code, info.name, info.region) == (UNIT_A, "上虞示范机械厂", "330682")
    assert (info.unit_type, info.legal_rep_name, info.injury_risk_class) == ("企业", "陈法人", 2)
    assert info.injury_rate == D("0.004")  # class 2 of the demo 330682 table
    assert (info.standing, info.arrears) == ("normal", False)
    by_type = {i.insurance.value: i for i in info.insurances}
    # 王建国, 赵丽, 孙转入 contribute (钱小明 was reduced); the retiree's 110 stopped.
    assert (by_type["110"].status, by_type["110"].contributing) == ("active", 4)
    assert by_type["110"].first_month == "2020-01"
    assert (by_type["410"].contributing, by_type["410"].status_label) == (4, "参保缴费")
    assert [i.insurance.value for i in info.insurances] == ["110", "210", "310", "410", "510"]


def test_changes_lists_adds_and_reduces_with_status_code_and_months(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    result = queries.changes(conn, employer_a, now=NOW)
    assert (result.adds, result.reduces, result.page.total) == (5, 1, 6)
    rows = {(r.name, r.direction, r.status) for r in result.rows}
    assert rows == {
        ("王建国", "add", Status.APPLIED),
        ("赵丽", "add", Status.APPLIED),
        ("钱小明", "add", Status.APPLIED),
        ("钱小明", "reduce", Status.APPLIED),
        ("孙转入", "add", Status.APPLIED),
        ("吴待审", "add", Status.PENDING_REVIEW),
    }
    # Newest 生效年月 first.
    assert [r.effective_month for r in result.rows] == sorted(
        (r.effective_month or "" for r in result.rows), reverse=True
    )
    reduce = next(r for r in result.rows if r.direction == "reduce")
    assert (reduce.code, reduce.code_label, reduce.effective_month) == ("12", "辞职", "2025-03")
    assert reduce.person_number == world.numbers[ID_YOUNG]
    assert reduce.handled_on == date(2025, 3, 10) and reduce.voucher_no
    moved = next(r for r in result.rows if r.name == "孙转入")
    assert (moved.code, moved.code_label, moved.effective_month) == ("D", "区内转入", "2025-02")
    assert moved.insurances == ("110", "210", "310", "410", "510")
    pending = next(r for r in result.rows if r.status is Status.PENDING_REVIEW)
    assert pending.handled_on is None and pending.person_number is None

    only_reduces = queries.changes(conn, employer_a, direction="reduce", now=NOW)
    assert [r.name for r in only_reduces.rows] == ["钱小明"]
    january = queries.changes(conn, employer_a, from_month="2025-01", to_month="2025-01", now=NOW)
    assert {r.name for r in january.rows} == {"王建国", "赵丽", "钱小明", "吴待审"}
    assert {r.name for r in queries.changes(conn, employer_a, name="转", now=NOW).rows} == {
        "孙转入"
    }
    by_id = queries.changes(conn, employer_a, id_number=ID_YOUNG, now=NOW)
    assert {r.direction for r in by_id.rows} == {"add", "reduce"}
    waiting = queries.changes(conn, employer_a, status=Status.PENDING_REVIEW, now=NOW)
    assert [r.name for r in waiting.rows] == ["吴待审"]


def test_unit_payments_per_month_and_insurance_with_totals(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    result = queries.unit_payments(conn, employer_a, now=NOW)
    keys = [(r.month, r.insurance.value) for r in result.rows]
    assert keys[:4] == [
        ("2025-02", "110"),
        ("2025-02", "210"),
        ("2025-01", "110"),
        ("2025-01", "210"),
    ]
    feb_pension = result.rows[0]
    # Three persons paid, the mover's line is still due.
    assert (feb_pension.persons, feb_pension.status, feb_pension.status_label) == (
        4,
        "partial",
        "部分到账",
    )
    assert feb_pension.base_total == D("36000.00")
    assert (feb_pension.employer, feb_pension.employee, feb_pension.total) == (
        D("5760.00"),
        D("2880.00"),
        D("8640.00"),
    )
    assert feb_pension.late_fee is None  # no payment deadline configured
    jan_unemployment = result.rows[3]
    assert (jan_unemployment.persons, jan_unemployment.status) == (3, "paid")
    assert jan_unemployment.paid_on == date(2025, 1, 15)
    # The mover's January line is B's: not in A's January.
    assert result.rows[2].persons == 3
    assert result.page.total == len(result.rows) == 17  # 2025: 2 × 2; 2024: 12; 2023-12
    assert result.unpaid == D("2160.00")
    assert result.total == result.employer + result.employee
    only_due = queries.unit_payments(conn, employer_a, status="due", now=NOW)
    assert [(r.month, r.persons, r.status) for r in only_due.rows] == [("2025-02", 1, "due")]
    window = queries.unit_payments(
        conn, employer_a, from_month="2025-01", to_month="2025-02", insurance="210", now=NOW
    )
    assert [r.month for r in window.rows] == ["2025-02", "2025-01"]
    assert window.employee == D("270.00")


def test_unit_payments_late_fee_when_a_deadline_is_configured(
    world: World, conn: Connection, employer_a: Actor
) -> None:
    import declare_app

    # Deadline: the 15th of the month after the 费款所属期 (a test rule, not DOMAIN's).
    def deadline(month: YearMonth) -> date:
        after = month.plus_months(1)
        return date(after.year, after.month, 15)

    queries = EmployerQueries(declare_app.demo_rate_table(), payment_deadline=deadline)
    result = queries.unit_payments(
        conn, employer_a, from_month="2025-02", to_month="2025-02", insurance="110", now=NOW
    )
    (row,) = result.rows
    # The mover's due 2 160.00 (1 440 + 720), 2025-03-15 → today 2025-03-10: not late yet;
    # the paid lines were paid on 2025-01-15, before their deadline.
    assert row.late_fee == D("0.00")
    later = datetime(2025, 3, 25, 10, 0, tzinfo=CHINA_TIME).timestamp()
    result = queries.unit_payments(
        conn, employer_a, from_month="2025-02", to_month="2025-02", insurance="110", now=later
    )
    assert result.rows[0].late_fee == D("10.80")  # 2 160.00 × 0.05% × 10 days
    assert result.late_fee == D("10.80")


def test_roster_lists_active_persons_by_default_and_others_on_request(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    active = queries.roster(conn, employer_a, now=NOW)
    names = [r.name for r in active.rows]
    assert sorted(names) == sorted(["王建国", "赵丽", "孙转入", "冯对帐", "褚超龄"])
    assert [r.person_number for r in active.rows] == sorted(r.person_number for r in active.rows)
    assert active.counts == {"1": 5, "2": 1, "3": 1}
    wang = next(r for r in active.rows if r.name == "王建国")
    assert (wang.id_number, wang.gender, wang.birth_month, wang.staff_kind) == (
        ID_MAN_1965,
        "1",
        "1965-06",
        "B",
    )
    assert wang.insurances == ("110", "210", "310", "410", "510")
    assert (wang.base, wang.status, wang.status_label, wang.start_month) == (
        D("6000.00"),
        "1",
        "参保缴费",
        "2025-01",
    )
    everyone = queries.roster(conn, employer_a, status=None, now=NOW)
    assert everyone.page.total == 7
    young = next(r for r in everyone.rows if r.name == "钱小明")
    assert (young.status, young.insurances) == ("2", ("110", "210", "310", "410", "510"))
    retiree = next(r for r in everyone.rows if r.name == "郑退休")
    assert (retiree.status, retiree.insurances) == ("3", ("110", "210"))
    assert [r.name for r in queries.roster(conn, employer_a, status="2", now=NOW).rows] == [
        "钱小明"
    ]
    injury_only = queries.roster(conn, employer_a, insurance="410", now=NOW)
    assert "褚超龄" in [r.name for r in injury_only.rows]
    assert "冯对帐" not in [r.name for r in injury_only.rows]
    assert [r.name for r in queries.roster(conn, employer_a, name="建国", now=NOW).rows] == [
        "王建国"
    ]
    by_id = queries.roster(conn, employer_a, id_number=ID_WOMAN_1975.lower(), now=NOW)
    assert [r.name for r in by_id.rows] == ["赵丽"]


def test_person_payments_show_only_this_units_lines(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    mover = queries.person_payments(conn, employer_a, id_number=ID_MOVER, now=NOW)
    assert mover.person.person_number == world.numbers[ID_MOVER]
    # B's January line (base 10 000) is B's business.
    assert [(r.month, r.insurance.value, r.status, r.base) for r in mover.rows] == [
        ("2025-02", "110", "due", D("9000.00"))
    ]
    wang = queries.person_payments(
        conn, employer_a, person_number=world.numbers[ID_MAN_1965], now=NOW
    )
    assert [(r.month, r.insurance.value) for r in wang.rows] == [
        ("2025-01", "110"),
        ("2025-01", "210"),
        ("2025-02", "110"),
        ("2025-02", "210"),
    ]
    first = wang.rows[0]
    assert (first.base, first.employer, first.employee, first.to_account) == (
        D("9000.00"),
        D("1440.00"),
        D("720.00"),
        D("720.00"),
    )
    assert (first.status, first.paid_on) == ("paid", date(2025, 1, 15))
    assert (wang.months, wang.employer, wang.employee, wang.to_account) == (
        2,
        D("2970.00"),
        D("1530.00"),
        D("1440.00"),
    )
    narrowed = queries.person_payments(
        conn, employer_a, id_number=ID_MAN_1965, from_month="2025-02", insurance="210", now=NOW
    )
    assert [(r.month, r.insurance.value) for r in narrowed.rows] == [("2025-02", "210")]
    # A person who left A is still A's to look up.
    young = queries.person_payments(conn, employer_a, id_number=ID_YOUNG, now=NOW)
    assert young.page.total == 4


def test_statement_matches_the_domain_4_3_example(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    s = queries.account_statement(conn, employer_a, id_number=ID_STATEMENT, year=2024, now=NOW)
    assert s.opening == D("100000.00")
    assert (s.opening_principal, s.opening_interest) == (D("99670.26"), D("329.74"))
    assert (s.rate, s.rate_status) == (D("0.0262"), "official")
    assert (s.months_credited, s.credited) == (12, D("8640.00"))
    assert s.interest_on_opening == D("2620.00")
    assert s.interest_on_new == D("122.62")
    assert s.interest == D("2742.62")
    assert s.closing == D("111382.62")
    assert (s.total_months, s.actual_months, s.deemed_months) == (13, 13, None)
    assert [(p.from_month, p.to_month, p.unit_name) for p in s.periods] == [
        ("2024-01", "2024-12", "上虞示范机械厂")
    ]
    assert [line.interest_months for line in s.lines] == list(range(12, 0, -1))
    assert not s.provisional
    first = queries.account_statement(
        conn, employer_a, person_number="33068290000001", year=2023, now=NOW
    )
    assert (first.opening, first.credited, first.interest, first.closing) == (
        D("0.00"),
        D("99670.26"),
        D("329.74"),
        D("100000.00"),
    )
    assert first.lines[11].interest_months == 1


def test_statement_counts_every_units_credits_but_names_only_this_unit(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    s = queries.account_statement(conn, employer_a, id_number=ID_MOVER, year=2025, now=NOW)
    # B's January line is paid and credited; A's February line is still due.
    assert (s.months_credited, s.credited) == (1, D("720.00"))
    assert s.provisional and s.rate_status == "reported"
    assert [(p.from_month, p.unit_code, p.unit_name) for p in s.periods] == [
        ("2025-01", None, "其他单位"),
        ("2025-02", UNIT_A, "上虞示范机械厂"),
    ]
    # The mover was not in A in 2024: that year is not A's to see.
    with pytest.raises(NotFound):
        queries.account_statement(conn, employer_a, id_number=ID_MOVER, year=2024, now=NOW)


def test_statement_refuses_a_year_without_a_configured_rate(
    world: World, conn: Connection, employer_a: Actor
) -> None:
    import declare_app
    from declare_app._pension_account import PensionTables

    tables = default_pension_tables()
    without_2023 = PensionTables(
        {y: r for y, r in tables.interest_rates.items() if y != 2023},
        tables.payout_months_by_age,
        tables.month_level_from,
    )
    queries = EmployerQueries(declare_app.demo_rate_table(), pension_tables=without_2023)
    with pytest.raises(DeclarationError) as refused:
        queries.account_statement(conn, employer_a, id_number=ID_STATEMENT, year=2024, now=NOW)
    assert refused.value.code == "rate-missing"
    assert "2023" in refused.value.message


def test_retirees_are_those_who_retired_from_this_unit(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    result = queries.retirees(conn, employer_a, now=NOW)
    (row,) = result.rows
    assert (row.name, row.id_number, row.former_unit) == ("郑退休", ID_RETIREE_A, "上虞示范机械厂")
    assert (row.retirement_month, row.statutory_month, row.kind, row.kind_label) == (
        "2024-12",
        "2024-12",
        "normal",
        "正常退休",
    )
    assert (row.statutory_age_months, row.age_at_retirement_months) == (720, 720)
    assert row.actual_months == 12
    # 2023 closes at 720 + 720 × 3.97% / 12 = 722.38; plus Jan-Nov 2024 credits 7 920.
    assert row.account_balance == D("8642.38")
    assert row.payout_months == D("139.0")  # age 60 (DOMAIN §4.4)
    assert row.account_pension == D("62.18")  # 8 642.38 / 139
    assert (row.basic_pension, row.monthly_total, row.deemed_months) == (None, None, None)
    assert row.contribution_years == D("1.00")
    none_in_2025 = queries.retirees(conn, employer_a, from_month="2025-01", now=NOW)
    assert none_in_2025.rows == ()
    found = queries.retirees(conn, employer_a, to_month="2024-12", name="退休", now=NOW)
    assert [r.name for r in found.rows] == ["郑退休"]


def test_a_retiree_without_ledger_credits_has_no_balance_rather_than_zero(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    # Born 1966-03, woman cadre (original 55): retired 2018-01, under an override.
    idn = make_id("19660310", 42)
    _person(conn, "33068290000005", idn, "卫早退", staff_kind="A", terminal_reason="31")
    conn.execute(
        persons.update()
        .where(persons.c.person_number == "33068290000005")
        .values(retirement_override_month="2018-01")
    )
    _enrolment(
        conn,
        "33068290000005",
        UNIT_A,
        status="3",
        start_month="2000-01",
        end_month="2017-12",
        stop_reason="31",
    )
    (row,) = queries.retirees(conn, employer_a, id_number=idn, now=NOW).rows
    assert (row.kind, row.statutory_month, row.statutory_age_months) == ("special", "2018-01", None)
    assert (row.actual_months, row.account_balance, row.account_pension) == (0, None, None)
    # 51 years 10 months, before month-level values (2025): the whole age 51 → 190.
    assert (row.age_at_retirement_months, row.payout_months) == (622, D("190.0"))


def test_reaching_retirement_uses_the_2025_law_over_contributing_persons(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    result = queries.reaching_retirement(conn, employer_a, now=NOW)
    assert (result.from_month, result.to_month) == (YearMonth(2025, 3), YearMonth(2025, 8))
    assert [(r.name, r.statutory_month, r.delay_months) for r in result.rows] == [
        ("赵丽", YearMonth(2025, 5), 2),
        ("王建国", YearMonth(2025, 8), 2),
    ]
    wang = result.rows[1]
    assert wang.statutory_age == (60, 2)
    assert (wang.contribution_months, wang.meets_minimum) == (2, False)
    assert result.overdue == 0
    overdue = queries.reaching_retirement(conn, employer_a, include_overdue=True, now=NOW)
    assert [r.name for r in overdue.rows] == ["褚超龄", "赵丽", "王建国"]
    assert overdue.rows[0].overdue_still_contributing and overdue.overdue == 1
    later = queries.reaching_retirement(
        conn, employer_a, from_month="2025-06", to_month="2025-12", now=NOW
    )
    assert [r.name for r in later.rows] == ["王建国"]


# -- isolation --------------------------------------------------------------------------


def _everything(queries: EmployerQueries, conn: Connection, actor: Actor) -> list[Any]:
    """Every query as *actor*, with the widest filters."""
    wide = {"limit": 500}
    results: list[Any] = [
        queries.unit_info(conn, actor, now=NOW),
        queries.changes(conn, actor, now=NOW, **wide),
        queries.changes(conn, actor, status="draft", now=NOW, **wide),
        queries.unit_payments(conn, actor, now=NOW, **wide),
        queries.roster(conn, actor, status=None, now=NOW, **wide),
        queries.retirees(conn, actor, now=NOW, **wide),
        queries.reaching_retirement(
            conn, actor, from_month="1900-01", to_month="2100-12", include_overdue=True, now=NOW
        ),
    ]
    for row in queries.roster(conn, actor, status=None, now=NOW, **wide).rows:
        results.append(
            queries.person_payments(conn, actor, person_number=row.person_number, now=NOW)
        )
        for year in (2023, 2024, 2025):
            with contextlib.suppress(NotFound):
                results.append(
                    queries.account_statement(
                        conn, actor, person_number=row.person_number, year=year, now=NOW
                    )
                )
    return results


def test_nothing_of_unit_b_appears_in_any_query_of_unit_a(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    text = repr(_everything(queries, conn, employer_a))
    b_markers = [
        ID_B_ONLY,
        ID_RETIREE_B,
        world.numbers[ID_B_ONLY],
        "33068290000003",
        UNIT_B,
        B_UNIT_NAME,
        *B_NAMES,
        "12345.00",  # B-only person's base
        "10000.00",  # the mover's base in B
    ]
    for marker in b_markers:
        assert marker not in text, marker
    assert "王建国" in text and ID_STATEMENT in text  # the sweep did see A's data


@pytest.mark.parametrize(
    "call",
    [
        lambda q, c, a: q.person_payments(c, a, id_number=ID_B_ONLY, now=NOW),
        lambda q, c, a: q.person_payments(c, a, id_number=ID_RETIREE_B, now=NOW),
        lambda q, c, a: q.person_payments(c, a, person_number="33068290000003", now=NOW),
        lambda q, c, a: q.account_statement(c, a, id_number=ID_B_ONLY, year=2025, now=NOW),
        lambda q, c, a: q.account_statement(
            c, a, person_number="33068290000003", year=2024, now=NOW
        ),
        lambda q, c, a: q.person_payments(c, a, id_number=make_id("19700101", 99), now=NOW),
        # The right number with another person's ID number is no one.
        lambda q, c, a: q.person_payments(
            c, a, id_number=ID_B_ONLY, person_number="33068290000001", now=NOW
        ),
    ],
)
def test_another_units_person_reads_as_not_found(
    world: World,
    queries: EmployerQueries,
    conn: Connection,
    employer_a: Actor,
    call: Callable[[EmployerQueries, Connection, Actor], Any],
) -> None:
    with pytest.raises(NotFound) as refused:
        call(queries, conn, employer_a)
    assert refused.value.message == "该人员不存在"
    (event,) = audit.query(conn, outcome="refused")
    assert event.event.action.startswith("declare.query.")
    assert event.event.unit == UNIT_A and event.event.session_id == "sess-a-1"
    assert "李四" not in repr(event) and "周退休" not in repr(event)


def test_unit_b_ids_and_names_as_filters_find_nothing_for_unit_a(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    for idn in (ID_B_ONLY, ID_RETIREE_B):
        assert queries.roster(conn, employer_a, status=None, id_number=idn, now=NOW).rows == ()
        assert queries.changes(conn, employer_a, id_number=idn, now=NOW).rows == ()
        assert queries.retirees(conn, employer_a, id_number=idn, now=NOW).rows == ()
    for name in B_NAMES:
        assert queries.roster(conn, employer_a, status=None, name=name, now=NOW).rows == ()
        assert queries.changes(conn, employer_a, name=name, now=NOW).rows == ()
        assert queries.retirees(conn, employer_a, name=name, now=NOW).rows == ()


def test_unit_b_sees_its_own_and_not_a(
    world: World, queries: EmployerQueries, conn: Connection, employer_b: Actor
) -> None:
    text = repr(_everything(queries, conn, employer_b))
    for marker in ("王建国", "赵丽", "钱小明", "冯对帐", "郑退休", ID_MAN_1965, "上虞示范机械厂"):
        assert marker not in text, marker
    assert "李四" in text and "周退休" in text
    roster = queries.roster(conn, employer_b, status=None, now=NOW)
    assert {r.name: r.status for r in roster.rows} == {"李四": "1", "孙转入": "2", "周退休": "3"}


def test_only_employers_query(
    world: World, queries: EmployerQueries, conn: Connection, auditor: Actor
) -> None:
    with pytest.raises(DeclarationError) as refused:
        queries.roster(conn, auditor, now=NOW)
    assert refused.value.code == "forbidden"
    unknown = Actor("employer", "33068299999999@sxlss", unit_code="99999999", session_id="s")
    with pytest.raises(DeclarationError) as refused:
        queries.unit_info(conn, unknown, now=NOW)
    assert refused.value.code == "unit-unknown"
    assert [e.event.outcome for e in audit.query(conn)][-2:] == ["refused", "refused"]


# -- pagination ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "offset"),
    [(0, 0), (501, 0), (-1, 0), (10, -1), (True, 0), ("x", 0), (10, 10_000_001), (None, 0)],
)
def test_pagination_bounds_are_refused_with_the_field_named(
    queries: EmployerQueries,
    conn: Connection,
    employer_a: Actor,
    limit: Any,
    offset: Any,
) -> None:
    with pytest.raises(InvalidQuery) as refused:
        queries.roster(conn, employer_a, limit=limit, offset=offset, now=NOW)
    assert {f.field for f in refused.value.findings} <= {"limit", "offset"}
    assert refused.value.code == "invalid"


def test_pages_walk_the_roster_without_gaps_or_repeats(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    full = queries.roster(conn, employer_a, status=None, limit=500, now=NOW)
    seen: list[str] = []
    offset = 0
    while True:
        page = queries.roster(conn, employer_a, status=None, limit=2, offset=offset, now=NOW)
        assert page.page == Page(2, offset, 7)
        seen += [r.person_number for r in page.rows]
        if not page.page.has_more:
            break
        offset += 2
    assert seen == [r.person_number for r in full.rows]
    beyond = queries.roster(conn, employer_a, status=None, limit=2, offset=100, now=NOW)
    assert (beyond.rows, beyond.page.total) == ((), 7)


def test_pages_of_each_list_query_are_bounded_and_stable(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    listings: list[Callable[[int, int], Any]] = [
        lambda limit, offset: queries.changes(
            conn, employer_a, limit=limit, offset=offset, now=NOW
        ),
        lambda limit, offset: queries.unit_payments(
            conn, employer_a, limit=limit, offset=offset, now=NOW
        ),
        lambda limit, offset: queries.person_payments(
            conn, employer_a, id_number=ID_STATEMENT, limit=limit, offset=offset, now=NOW
        ),
        lambda limit, offset: queries.reaching_retirement(
            conn, employer_a, include_overdue=True, limit=limit, offset=offset, now=NOW
        ),
        lambda limit, offset: queries.retirees(
            conn, employer_a, limit=limit, offset=offset, now=NOW
        ),
    ]
    for listing in listings:
        whole = listing(500, 0)
        assert len(whole.rows) == whole.page.total > 0
        one_by_one = [listing(1, i).rows[0] for i in range(whole.page.total)]
        assert one_by_one == list(whole.rows)
        assert listing(1, whole.page.total).rows == ()


def test_bad_filters_are_field_errors(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    cases: list[tuple[Callable[[], Any], set[str]]] = [
        (lambda: queries.changes(conn, employer_a, from_month="2025-13", now=NOW), {"from_month"}),
        (
            lambda: queries.changes(
                conn, employer_a, from_month="2025-03", to_month="2025-01", now=NOW
            ),
            {"to_month"},
        ),
        (lambda: queries.changes(conn, employer_a, status="approved", now=NOW), {"status"}),
        (lambda: queries.changes(conn, employer_a, direction="up", now=NOW), {"direction"}),
        (lambda: queries.roster(conn, employer_a, id_number="12345", now=NOW), {"id_number"}),
        (lambda: queries.roster(conn, employer_a, name="x" * 51, now=NOW), {"name"}),
        (lambda: queries.roster(conn, employer_a, name="a\x00b", now=NOW), {"name"}),
        (lambda: queries.unit_payments(conn, employer_a, insurance="120", now=NOW), {"insurance"}),
        (lambda: queries.person_payments(conn, employer_a, now=NOW), {"id_number"}),
        (
            lambda: queries.account_statement(
                conn, employer_a, id_number=ID_STATEMENT, year=2026, now=NOW
            ),
            {"year"},
        ),
        (
            lambda: queries.reaching_retirement(conn, employer_a, include_overdue="yes", now=NOW),
            {"include_overdue"},
        ),
    ]
    for call, fields in cases:
        with pytest.raises(InvalidQuery) as refused:
            call()
        assert {f.field for f in refused.value.findings} == fields
        assert all(f.message for f in refused.value.findings)


# -- audit ---------------------------------------------------------------------------------


def test_every_query_appends_its_audit_event(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    _everything(queries, conn, employer_a)
    names = [
        "unit-info",
        "changes",
        "unit-payments",
        "roster",
        "person-payments",
        "account-statement",
        "retirees",
        "reaching-retirement",
    ]
    for name in names:
        events = _events(conn, name)
        assert any(r.event.outcome == "ok" for r in events), name
        for record in events:
            e = record.event
            assert e.actor == f"channel:{employer_a.name}"
            assert (e.unit, e.session_id) == (UNIT_A, "sess-a-1")
            # Statements of years the person was not in A are refused, as not found.
            assert e.outcome == "ok" or (name, e.details["code"]) == (
                "account-statement",
                "not-found",
            )
    first = next(r.event for r in _events(conn, "account-statement") if r.event.outcome == "ok")
    assert (first.subject, first.details["year"]) == (world.numbers[ID_MAN_1965], 2025)
    roster = _events(conn, "roster")[0].event
    assert (roster.subject, roster.details["total"]) == (UNIT_A, 7)


def test_a_filter_by_id_number_is_audited_masked(
    world: World, queries: EmployerQueries, conn: Connection, employer_a: Actor
) -> None:
    queries.person_payments(conn, employer_a, id_number=ID_MAN_1965, now=NOW)
    queries.roster(conn, employer_a, id_number=ID_MAN_1965, name="王", now=NOW)
    for name in ("person-payments", "roster"):
        (record,) = _events(conn, name)
        text = repr(record)
        assert ID_MAN_1965 not in text and "王" not in text
        assert record.event.details["id_number"] == ID_MAN_1965[:6] + "********" + ID_MAN_1965[-4:]
