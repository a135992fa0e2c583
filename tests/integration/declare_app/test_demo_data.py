"""The demo unit's data: a few hundred valid persons across statuses, the ledger, and a
declaration of each type in various states — deterministic, loaded once."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

import audit
import declare_app
from declare_app import Gender, check_person_id
from declare_app._declarations import CHINA_TIME
from declare_app._demo_data import load_demo
from declare_app._retirement import (
    InsuredPerson,
    StaffKind,
    YearMonth,
    persons_reaching_retirement,
)
from declare_app._rules._common import gender_of
from declare_app._schema import contributions, declarations, enrolments, persons
from declare_app.interfaces import DeclarationType
from ssgate._db import make_engine
from ssgate._schema import all_metadata

UNIT = "12345678"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=CHINA_TIME).timestamp()


def _gender(code: str) -> Gender:
    gender = gender_of(code)
    assert gender is not None
    return gender


def test_persons_are_valid_and_spread_over_the_statuses(decl_db: Engine) -> None:
    with decl_db.begin() as conn:
        summary = load_demo(conn, UNIT, now=NOW, seed=7)
    assert summary.loaded and summary.persons == 300
    assert set(summary.enrolments_by_status) == {"1", "2", "3"}
    assert summary.enrolments_by_status["1"] > 1000
    with decl_db.begin() as conn:
        rows = conn.execute(select(persons)).all()
        statuses = dict(
            conn.execute(
                select(enrolments.c.status, func.count(func.distinct(enrolments.c.person_number)))
                .where(enrolments.c.unit_code == UNIT)
                .group_by(enrolments.c.status)
            ).all()
        )
    assert len(rows) == 300 + 1  # and the one added by the applied person-add
    today = date(2026, 11, 23)
    for row in rows:
        findings = check_person_id(
            row.id_number,
            today=today,
            declared_gender=_gender(row.gender),
            declared_birth_date=row.birth_date,
        )
        assert [f for f in findings if f.severity == "error"] == [], row.id_number
        assert 2 <= len(row.name) <= 4
    assert len({r.person_number for r in rows}) == len(rows)
    assert statuses["1"] > 200 and statuses["2"] > 20 and statuses["3"] > 5


def test_some_persons_reach_retirement_age_in_the_next_six_months(decl_db: Engine) -> None:
    with decl_db.begin() as conn:
        load_demo(conn, UNIT, now=NOW, seed=7)
        rows = conn.execute(
            select(persons, enrolments.c.status)
            .join(enrolments, enrolments.c.person_number == persons.c.person_number)
            .where(enrolments.c.insurance == "110")
        ).all()
    insured = [
        InsuredPerson(
            person_number=r.person_number,
            name=r.name,
            id_number=r.id_number,
            gender=_gender(r.gender),
            birth_date=r.birth_date,
            staff_kind=StaffKind.CADRE if r.staff_kind == "A" else StaffKind.WORKER,
            payment_status=r.status,
            contribution_months=120,
        )
        for r in rows
    ]
    due = persons_reaching_retirement(
        insured,
        from_month=YearMonth(2026, 11),
        to_month=YearMonth(2027, 4),
        current_month=YearMonth(2026, 11),
    )
    assert len(due) >= 4


def test_the_ledger_covers_six_months_for_contributing_persons(decl_db: Engine) -> None:
    with decl_db.begin() as conn:
        summary = load_demo(conn, UNIT, now=NOW, seed=7)
        lines = conn.execute(select(contributions).where(contributions.c.insurance == "110")).all()
    assert summary.ledger_lines > 5000
    assert {line.month for line in lines} == {f"2026-{m:02d}" for m in range(6, 12)}
    assert {line.status for line in lines if line.month == "2026-11"} == {"due"}
    for line in lines:
        assert line.employee_fen == line.to_account_fen == round(line.base_fen * 0.08)
        assert line.employer_fen == round(line.base_fen * 0.16)


def test_a_declaration_of_each_type_in_various_states(decl_db: Engine) -> None:
    with decl_db.begin() as conn:
        summary = load_demo(conn, UNIT, now=NOW, seed=7)
        rows = conn.execute(select(declarations)).all()
        trail = audit.query(conn)
    assert {t for t, _, _ in summary.declarations} == {t.value for t in DeclarationType}
    assert {s for _, s, _ in summary.declarations} == {
        "draft",
        "pending-review",
        "under-review",
        "returned",
        "withdrawn",
        "applied",
    }
    assert len(rows) == len(summary.declarations) + 1  # the returned person-add, resubmitted
    assert {r.version for r in rows} == {1, 2}
    assert all(r.unit_code == UNIT and r.created_at <= NOW for r in rows)
    assert sum(r.voucher_no is not None for r in rows) == 4
    assert all(r.event.unit == UNIT for r in trail if r.event.action.startswith("declare."))
    with decl_db.begin() as conn:
        assert audit.verify(conn).ok


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 1, 0, 5, tzinfo=CHINA_TIME),
        datetime(2027, 1, 1, 0, 0, tzinfo=CHINA_TIME),
        datetime(2026, 3, 31, 23, 59, tzinfo=CHINA_TIME),
    ],
)
def test_loading_works_at_the_edges_of_days_months_and_years(decl_db: Engine, at: datetime) -> None:
    with decl_db.begin() as conn:
        summary = load_demo(conn, UNIT, now=at.timestamp(), seed=3, persons_count=60)
    assert {t for t, _, _ in summary.declarations} == {t.value for t in DeclarationType}


def test_the_same_seed_gives_the_same_data_and_a_second_load_does_nothing(
    decl_db: Engine, tmp_path: Path
) -> None:
    with decl_db.begin() as conn:
        first = load_demo(conn, UNIT, now=NOW, seed=11, persons_count=80)
        ids = conn.execute(
            select(persons.c.id_number, persons.c.name).order_by(persons.c.id_number)
        ).all()
        again = load_demo(conn, UNIT, now=NOW, seed=11, persons_count=80)
    assert again.loaded is False
    other = make_engine(f"sqlite:///{tmp_path}/other.db")
    for metadata in all_metadata():
        metadata.create_all(other)
    with other.begin() as conn:
        declare_app.register_unit(
            conn, UNIT, name="x", region="330682", credit_code=None, actor="t", now=1.0
        )
        declare_app.approve_unit(conn, UNIT, actor="t", now=2.0)
        second = load_demo(conn, UNIT, now=NOW, seed=11, persons_count=80)
        ids2 = conn.execute(
            select(persons.c.id_number, persons.c.name).order_by(persons.c.id_number)
        ).all()
    other.dispose()
    assert ids == ids2
    assert first.declarations == second.declarations


def test_an_unapproved_unit_gets_no_demo(decl_db: Engine) -> None:
    with decl_db.begin() as conn, pytest.raises(ValueError, match="approved"):
        load_demo(conn, "11112222", now=NOW, seed=1)
