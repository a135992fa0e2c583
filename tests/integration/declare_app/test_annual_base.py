"""年度缴费基数申报 (annual base, DOMAIN §5.5), single-person lines — on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

import declare_app
from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._rules import RuleSettings
from declare_app._schema import enrolments
from declare_app.interfaces import Actor, Declaration, DeclarationType, Finding

NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
BASE = DeclarationType.ANNUAL_BASE


def make_id(birth: str = "19900115", seq: int = 123) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


def line(number: str, id_number: str, wage: str = "9000", name: str = "张三") -> dict[str, str]:
    return {"person_no": number, "name": name, "id_number": id_number, "wage": wage}


def errors(findings: tuple[Finding, ...], severity: str = "error") -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in findings if f.severity == severity}


def check(
    db: Engine, wf: Declarations, actor: Actor, payload: dict[str, Any]
) -> tuple[dict[str, Any], tuple[Finding, ...]]:
    with db.begin() as conn:
        normalised, findings = wf.preview(conn, actor, BASE, payload, now=NOW)
    return dict(normalised), findings


def test_each_line_is_clamped_and_applied_to_every_open_enrolment(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    """DOMAIN §2.3 worked example, with the 2024 limits carried into 2025."""
    low, mid, high = make_id(seq=121), make_id(seq=123), make_id(seq=125)
    numbers = [
        enrol(employer_a, idn, name=n) for idn, n in ((low, "甲"), (mid, "乙"), (high, "丙"))
    ]
    payload = {
        "year": 2025,
        "lines": [
            line(numbers[0], low, "3000", "甲"),
            line(numbers[1], mid, "9000", "乙"),
            line(numbers[2], high, "30000", "丙"),
        ],
    }
    normalised, findings = check(decl_db, workflow, employer_a, payload)
    assert normalised["year"] == "2025"
    assert [ln["base"] for ln in normalised["lines"]] == ["4812.00", "9000.00", "24930.00"]
    assert errors(findings) == set()
    assert errors(findings, "warning") == {
        ("V-BASE-01", "lines[0].wage"),
        ("V-BASE-01", "lines[2].wage"),
        ("V-BASE-03", "lines[2].wage"),  # 6 000 → 24 930
    }
    done = decide(employer_a, BASE, payload)
    assert done.result == {"year": 2025, "lines": 3}
    with decl_db.begin() as conn:
        got = {
            (r.person_number, r.base_fen, r.base_year)
            for r in conn.execute(select(enrolments).where(enrolments.c.status == "1"))
        }
    assert got == {
        (numbers[0], 481200, 2025),
        (numbers[1], 900000, 2025),
        (numbers[2], 2493000, 2025),
    }


def test_a_persons_base_is_declared_once_a_year(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    with decl_db.begin() as conn:
        d = workflow.create_draft(
            conn, employer_a, BASE, {"year": "2025", "lines": [line(number, idn)]}, now=NOW
        )
        workflow.submit(conn, employer_a, d.id, now=NOW)
    _, findings = check(
        decl_db, workflow, employer_a, {"year": "2025", "lines": [line(number, idn)]}
    )
    assert ("V-DUP-03", "lines[0].person_no") in errors(findings)  # pending
    with decl_db.begin() as conn:
        workflow.withdraw(conn, employer_a, d.id, now=NOW)
    decide(employer_a, BASE, {"year": "2025", "lines": [line(number, idn)]})
    _, findings = check(
        decl_db, workflow, employer_a, {"year": "2025", "lines": [line(number, idn, "9500")]}
    )
    assert ("V-DUP-03", "lines[0].person_no") in errors(findings)  # applied
    _, findings = check(
        decl_db, workflow, employer_a, {"year": "2026", "lines": [line(number, idn)]}
    )
    assert errors(findings) == set()


def test_line_refusals(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    payload = {
        "year": "2025",
        "lines": [
            line(number, idn, "abc"),
            line(number, idn),
            line("33068299999999", make_id(seq=127)),
            {"person_no": number, "name": "张三", "id_number": idn, "wage": "9000", "extra": "x"},
        ],
    }
    _, findings = check(decl_db, workflow, employer_a, payload)
    got = errors(findings)
    assert ("V-BASE-02", "lines[0].wage") in got
    assert ("V-DUP-03", "lines[1].id_number") in got
    assert ("V-STAT-01", "lines[2].person_no") in got
    assert ("V-FORM-02", "lines[3].extra") in got
    _, findings = check(decl_db, workflow, employer_a, {"year": "2023", "lines": []})
    assert errors(findings) == {("V-DATE-01", "year"), ("V-FORM-01", "lines")}
    _, findings = check(decl_db, workflow, employer_a, {"year": "x", "lines": "no"})
    assert errors(findings) == {("V-FORM-02", "year"), ("V-FORM-02", "lines")}


def test_the_line_limit_is_a_setting_10000_by_default(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    assert RuleSettings().max_lines == 10_000
    workflow = Declarations(
        declare_app.demo_rate_table(), settings=RuleSettings(max_lines=200), clock=lambda: NOW
    )
    lines = [line("3306820000000" + str(i % 10), make_id(seq=i)) for i in range(201)]
    _, findings = check(decl_db, workflow, employer_a, {"year": "2025", "lines": lines})
    assert ("V-FORM-03", "lines") in errors(findings)


def test_a_person_of_another_unit_is_not_found(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    enrol: Callable[..., str],
) -> None:
    idn = make_id()
    number = enrol(employer_b, idn)
    _, findings = check(
        decl_db, workflow, employer_a, {"year": "2025", "lines": [line(number, idn)]}
    )
    assert errors(findings) == {("V-STAT-01", "lines[0].person_no")}
