"""人员险种增加 / 减少 (insurance add / reduce, DOMAIN §5.3) — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._schema import enrolments
from declare_app.interfaces import Actor, Declaration, DeclarationType, Finding

NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
ADD = DeclarationType.INSURANCE_ADD
REDUCE = DeclarationType.INSURANCE_REDUCE


def make_id(birth: str = "19900115", seq: int = 123) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


def add_form(number: str, id_number: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "person_no": number,
        "name": "张三",
        "id_number": id_number,
        "insurances": ["110", "210", "310", "510"],
        "reason": "1",
        "start_month": "2025-03",
        "base": "6000",
        "remark": "",
    }
    values.update(changes)
    return values


def reduce_form(number: str, id_number: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "person_no": number,
        "name": "张三",
        "id_number": id_number,
        "insurances": ["310", "510"],
        "reason": "4",
        "stop_month": "2025-03",
        "remark": "",
    }
    values.update(changes)
    return values


def errors(findings: tuple[Finding, ...], severity: str = "error") -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in findings if f.severity == severity}


def check(
    db: Engine, wf: Declarations, actor: Actor, type: DeclarationType, payload: dict[str, Any]
) -> tuple[Finding, ...]:
    with db.begin() as conn:
        return wf.preview(conn, actor, type, payload, now=NOW)[1]


def rows(db: Engine, number: str) -> dict[str, list[tuple[Any, ...]]]:
    with db.begin() as conn:
        result: dict[str, list[tuple[Any, ...]]] = {}
        for r in conn.execute(
            select(enrolments).where(enrolments.c.person_number == number).order_by(enrolments.c.id)
        ):
            result.setdefault(r.insurance, []).append(
                (r.status, r.start_month, r.end_month, r.base_fen, r.stop_reason)
            )
        return result


def test_a_unit_newly_joining_the_other_types_adds_them_for_its_person(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn, insurances=["410"])
    assert errors(check(decl_db, workflow, employer_a, ADD, add_form(number, idn))) == set()
    done = decide(employer_a, ADD, add_form(number, idn))
    assert done.result == {"person_no": number, "insurances": ["110", "210", "310", "510"]}
    assert done.payload["assessed_base"] == "6000.00"
    got = rows(decl_db, number)
    assert got["110"] == [("1", "2025-03", None, 600000, None)]
    assert got["410"] == [("1", "2025-01", None, 600000, None)]


def test_the_base_is_clamped_and_must_be_an_amount(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn, insurances=["410"])
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn, base="3000"))
    assert ("V-BASE-01", "base") in errors(findings, "warning")
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn, base="x"))
    assert ("V-BASE-02", "base") in errors(findings)


def test_medical_and_maternity_together_counting_what_is_on_record(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    with decl_db.begin() as conn:
        conn.execute(
            enrolments.update()
            .where(enrolments.c.insurance == "310")
            .values(status="2", end_month="2025-02")
        )
    assert (
        errors(check(decl_db, workflow, employer_a, ADD, add_form(number, idn, insurances=["310"])))
        == set()
    )
    other = make_id(seq=125)
    other_number = enrol(employer_a, other, name="李四", insurances=["110"])
    findings = check(
        decl_db,
        workflow,
        employer_a,
        ADD,
        add_form(other_number, other, name="李四", insurances=["310"]),
    )
    assert ("V-INS-01", "insurances") in errors(findings)


def test_a_type_already_open_is_v_dup_01_and_a_second_pending_add_is_v_dup_03(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn, insurances=["410"])
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn, insurances=["410"]))
    assert ("V-DUP-01", "insurances") in errors(findings)
    with decl_db.begin() as conn:
        first = workflow.create_draft(conn, employer_a, ADD, add_form(number, idn), now=NOW)
        workflow.submit(conn, employer_a, first.id, now=NOW)
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn, insurances=["110"]))
    assert ("V-DUP-03", "insurances") in errors(findings)


def test_past_retirement_age_only_work_injury_and_reason_2_means_410_only(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    idn = make_id(birth="19641201", seq=111)  # retired 2024-12 (DOMAIN §3.2)
    number = enrol(employer_a, idn, insurances=["410"])
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn, insurances=["110"]))
    assert ("V-AGE-01", "insurances") in errors(findings)
    findings = check(
        decl_db, workflow, employer_a, ADD, add_form(number, idn, reason="2", insurances=["110"])
    )
    assert ("V-FORM-02", "insurances") in errors(findings)
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn, reason="4"))
    assert ("V-FORM-02", "reason") in errors(findings)
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn, reason="9"))
    assert ("V-FORM-01", "remark") in errors(findings)


def test_a_person_with_nothing_open_or_of_another_unit_is_not_found_here(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    employer_b = Actor("employer", "33068287654321@sxlss", unit_code="87654321", session_id="b")
    idn = make_id()
    number = enrol(employer_a, idn, insurances=["410"])
    for type, form in (
        (ADD, add_form(number, idn)),
        (REDUCE, reduce_form(number, idn, insurances=["410"])),
    ):
        assert errors(check(decl_db, workflow, employer_b, type, form)) == {
            ("V-STAT-01", "person_no")
        }
    decide(employer_a, REDUCE, reduce_form(number, idn, insurances=["410"]))
    findings = check(decl_db, workflow, employer_a, ADD, add_form(number, idn))
    assert ("V-STAT-01", "person_no") in errors(findings)


def test_reducing_medical_and_maternity_suspends_just_those(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    assert errors(check(decl_db, workflow, employer_a, REDUCE, reduce_form(number, idn))) == set()
    done = decide(employer_a, REDUCE, reduce_form(number, idn))
    assert done.result == {
        "person_no": number,
        "insurances": ["310", "510"],
        "end_month": "2025-02",
    }
    got = rows(decl_db, number)
    assert got["310"] == got["510"] == [("2", "2025-01", "2025-02", 600000, "C4")]
    assert got["110"] == [("1", "2025-01", None, 600000, None)]


def test_reduce_refusals(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn, insurances=["110", "310", "510"])
    findings = check(
        decl_db, workflow, employer_a, REDUCE, reduce_form(number, idn, insurances=["310"])
    )
    assert ("V-INS-01", "insurances") in errors(findings)
    findings = check(
        decl_db, workflow, employer_a, REDUCE, reduce_form(number, idn, insurances=["210"])
    )
    assert ("V-STAT-01", "insurances") in errors(findings)
    findings = check(
        decl_db,
        workflow,
        employer_a,
        REDUCE,
        reduce_form(number, idn, insurances=["110", "310", "510"]),
    )
    assert errors(findings) == set()
    assert ("V-STAT-01", "insurances") in errors(
        findings, "warning"
    )  # everything: a person-reduce?
    findings = check(
        decl_db, workflow, employer_a, REDUCE, reduce_form(number, idn, stop_month="2024-12")
    )
    assert ("V-DATE-01", "stop_month") in errors(findings)
    findings = check(decl_db, workflow, employer_a, REDUCE, reduce_form(number, idn, reason="1"))
    assert ("V-FORM-02", "reason") in errors(findings)


def test_a_person_with_only_medical_on_record_may_reduce_it_alone(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    """Before the 2019 merger some persons had 310 without 510: it need not wait for 510."""
    idn = make_id()
    number = enrol(employer_a, idn, insurances=["110", "510", "310"])
    with decl_db.begin() as conn:
        conn.execute(
            enrolments.update()
            .where(enrolments.c.insurance == "510")
            .values(status="2", end_month="2025-01")
        )
    findings = check(
        decl_db, workflow, employer_a, REDUCE, reduce_form(number, idn, insurances=["310"])
    )
    assert errors(findings) == set()
