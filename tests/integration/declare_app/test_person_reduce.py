"""人员减少 (person reduce): DOMAIN §5.4 reasons, V-RED-01/02, the month window, and
closing the person's enrolments as 暂停 or 终止 (§8) — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

import audit
from declare_app import person_id_check_char
from declare_app._agency_records import record_pension_award
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._schema import enrolments, pension_awards, persons
from declare_app.interfaces import (
    Actor,
    Declaration,
    DeclarationError,
    DeclarationType,
    Finding,
    InvalidDeclaration,
    Status,
)

from .conftest import attach_evidence

UNIT_A = "12345678"
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
REDUCE = DeclarationType.PERSON_REDUCE


def make_id(birth: str = "19900115", seq: int = 123) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


def reduce_form(number: str, id_number: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "person_no": number,
        "name": "张三",
        "id_number": id_number,
        "reason": "12",
        "stop_month": "2025-03",
        "leave_date": "2025-02-28",
        "evidence": "解除劳动合同证明 2025-001",
        "remark": "",
    }
    values.update(changes)
    return values


def errors(findings: tuple[Finding, ...], severity: str = "error") -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in findings if f.severity == severity}


def check(
    db: Engine,
    wf: Declarations,
    actor: Actor,
    payload: dict[str, Any],
    type: DeclarationType = REDUCE,
) -> tuple[Finding, ...]:
    with db.begin() as conn:
        return wf.preview(conn, actor, type, payload, now=NOW)[1]


def open_rows(db: Engine, number: str) -> list[Any]:
    with db.begin() as conn:
        return conn.execute(
            select(enrolments).where(enrolments.c.person_number == number).order_by(enrolments.c.id)
        ).all()


def test_a_resignation_suspends_every_open_enrolment_from_the_stop_month(
    decl_db: Engine,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    done = decide(employer_a, REDUCE, reduce_form(number, idn))
    assert done.status is Status.APPLIED
    assert done.result == {
        "person_no": number,
        "insurances": ["110", "210", "310", "410", "510"],
        "status": "2",
        "end_month": "2025-02",
    }
    rows = open_rows(decl_db, number)
    assert {(r.status, r.end_month, r.stop_reason, r.closed_by) for r in rows} == {
        ("2", "2025-02", "12", done.id)
    }


def test_a_legacy_15_digit_id_number_is_upgraded_with_a_warning(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    """The 15-digit number (GB 11643-1989) of someone enrolled under the 18-digit one
    finds them on 人员减少 too, with the V-ID-01 warning (issue 14, defect 5)."""
    idn = make_id(birth="19750115", seq=125)
    number = enrol(employer_a, idn)
    legacy = idn[:6] + idn[8:17]
    findings = check(decl_db, workflow, employer_a, reduce_form(number, legacy))
    assert errors(findings) == set()
    assert ("V-ID-01", "id_number") in errors(findings, "warning")


@pytest.mark.parametrize("reason", ["11", "12", "13", "14", "21", "22", "34", "35", "41"])
def test_every_reason_but_31_32_33_suspends(
    decl_db: Engine,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
    reason: str,
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    done = decide(employer_a, REDUCE, reduce_form(number, idn, reason=reason, evidence="证明1号"))
    assert done.result["status"] == "2"


def test_retirement_terminates_warns_before_the_statutory_month_and_awards_nothing(
    decl_db: Engine,
    *,
    workflow: Declarations,
    employer_a: Actor,
    auditor: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    """A 人员减少 for retirement ends the contributions (AAC031 3); whether the person
    receives a basic pension is the agency's award (社会保险法 Art. 16), recorded by
    staff as its own audited step — only then is the person a pensioner (V-AGE-01)
    (issue 14, defect 7)."""
    idn = make_id()
    number = enrol(employer_a, idn)
    form = reduce_form(number, idn, reason="31", evidence="退休审批表 2025-017")
    findings = check(decl_db, workflow, employer_a, form)
    assert errors(findings) == set()
    assert ("V-RED-02", "stop_month") in errors(findings, "warning")  # born 1990
    done = decide(employer_a, REDUCE, form)
    assert done.result["status"] == "3"
    with decl_db.begin() as conn:
        person = conn.execute(select(persons)).one()
    assert (person.terminal_reason, person.receiving_pension) == ("31", False)
    with decl_db.begin() as conn, pytest.raises(DeclarationError) as refused:
        record_pension_award(
            conn,
            employer_a,
            done.id,
            from_month="2025-04",
            reference="上社养核〔2025〕17号",
            now=NOW,
        )
    assert refused.value.code == "forbidden"
    with decl_db.begin() as conn:
        record_pension_award(
            conn,
            auditor,
            done.id,
            from_month="2025-04",
            reference="上社养核〔2025〕17号",
            now=NOW,
        )
        person = conn.execute(select(persons)).one()
        award = conn.execute(select(pension_awards)).one()
        events = [r.event for r in audit.query(conn) if r.event.action == "declare.pension-award"]
    assert person.receiving_pension is True
    assert (award.from_month, award.recorded_by) == ("2025-04", "zhang")
    assert [e.outcome for e in events] == ["refused", "ok"]
    again = {
        "name": "张三",
        "id_number": idn,
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": "2025-03-01",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "B",
        "start_month": "2025-03",
        "monthly_wage": "6000",
        "person_no": number,
    }
    findings = check(decl_db, workflow, employer_a, again, DeclarationType.PERSON_ADD)
    assert ("V-AGE-01", "insurances") in errors(findings)
    findings = check(
        decl_db, workflow, employer_a, {**again, "insurances": ["410"]}, DeclarationType.PERSON_ADD
    )
    assert errors(findings) == set()  # a pensioner may still be covered for work injury


def test_a_retirement_at_the_statutory_month_has_no_warning(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    """A woman worker born 1975-01 retires at 50y1m in 2025-02 (DOMAIN §3.2)."""
    idn = make_id(birth="19750115", seq=124)
    number = enrol(employer_a, idn, name="李梅", insurances=["410"])
    findings = check(
        decl_db,
        workflow,
        employer_a,
        reduce_form(
            number, idn, name="李梅", reason="31", evidence="退休审批表", stop_month="2025-02"
        ),
    )
    assert errors(findings) == errors(findings, "warning") == set()


def test_death_terminates_and_the_person_cannot_be_enrolled_again(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    decide(employer_a, REDUCE, reduce_form(number, idn, reason="32", evidence="死亡证明 123"))
    assert {r.status for r in open_rows(decl_db, number)} == {"3"}
    findings = check(
        decl_db,
        workflow,
        employer_a,
        {
            "name": "张三",
            "id_number": idn,
            "staff_kind": "B",
            "nation": "01",
            "hukou_type": "A",
            "hire_date": "2025-03-01",
            "insurances": ["410"],
            "add_type": "B",
            "start_month": "2025-03",
            "monthly_wage": "6000",
            "person_no": number,
        },
        DeclarationType.PERSON_ADD,
    )
    assert ("V-STAT-01", "id_number") in errors(findings)


def test_a_suspended_person_resumes_with_type_b_from_the_stop_month(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    decide(employer_a, REDUCE, reduce_form(number, idn, stop_month="2025-02"))
    resume = {
        "name": "张三",
        "id_number": idn,
        "staff_kind": "B",
        "nation": "01",
        "hukou_type": "A",
        "hire_date": "2025-03-01",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "B",
        "start_month": "2025-03",
        "monthly_wage": "7000",
        "person_no": number,
    }
    assert errors(check(decl_db, workflow, employer_a, resume, DeclarationType.PERSON_ADD)) == set()
    done = decide(employer_a, DeclarationType.PERSON_ADD, resume)
    assert done.result["new_person"] is False
    rows = open_rows(decl_db, number)
    assert [(r.status, r.start_month) for r in rows if r.insurance == "110"] == [
        ("2", "2025-01"),
        ("1", "2025-03"),
    ]


@pytest.mark.parametrize(
    "case",
    [("2025-04", True), ("2025-05", False), ("2024-11", False), ("2025-01", True)],
)
def test_the_stop_month_is_in_the_window_and_not_before_the_start(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    case: tuple[str, bool],
) -> None:
    """Back at most 3 months from 2025-03, ahead at most one; the person started 2025-01."""
    stop, ok = case
    idn = make_id()
    number = enrol(employer_a, idn)
    findings = check(decl_db, workflow, employer_a, reduce_form(number, idn, stop_month=stop))
    assert (("V-DATE-01", "stop_month") in errors(findings)) is not ok


def test_reason_other_needs_a_remark_and_unknown_reasons_are_refused(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, enrol: Callable[..., str]
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    findings = check(decl_db, workflow, employer_a, reduce_form(number, idn, reason="99"))
    assert ("V-FORM-01", "remark") in errors(findings)
    findings = check(decl_db, workflow, employer_a, reduce_form(number, idn, reason="03"))
    assert ("V-FORM-02", "reason") in errors(findings)


def test_the_person_must_be_this_units_and_match_the_form(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    enrol: Callable[..., str],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    other = make_id(seq=125)
    other_number = enrol(employer_b, other, name="李四")
    findings = check(decl_db, workflow, employer_a, reduce_form(other_number, other, name="李四"))
    unknown = check(decl_db, workflow, employer_a, reduce_form("33068299999999", make_id(seq=127)))
    assert errors(findings) == errors(unknown) == {("V-STAT-01", "person_no")}
    assert [f.message for f in findings] == [f.message for f in unknown]  # nothing leaks
    findings = check(decl_db, workflow, employer_a, reduce_form(number, idn, name="张山"))
    assert ("V-FORM-02", "name") in errors(findings)
    findings = check(decl_db, workflow, employer_a, reduce_form(number, other))
    assert ("V-STAT-01", "person_no") in errors(findings) or ("V-FORM-02", "id_number") in errors(
        findings
    )
    findings = check(decl_db, workflow, employer_a, reduce_form("", idn))
    assert errors(findings) == {("V-FORM-01", "person_no")}


def test_nothing_open_nothing_to_reduce_and_no_duplicate_pending_reduce(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    decide: Callable[..., Declaration],
) -> None:
    idn = make_id()
    number = enrol(employer_a, idn)
    with decl_db.begin() as conn:
        d = workflow.create_draft(conn, employer_a, REDUCE, reduce_form(number, idn), now=NOW)
        attach_evidence(conn, workflow, employer_a, d.id, now=NOW)
        workflow.submit(conn, employer_a, d.id, now=NOW)
        second = workflow.create_draft(conn, employer_a, REDUCE, reduce_form(number, idn), now=NOW)
    assert ("V-DUP-03", "person_no") in errors(second.findings)
    with decl_db.begin() as conn:
        workflow.withdraw(conn, employer_a, d.id, now=NOW)
    decide(employer_a, REDUCE, reduce_form(number, idn))
    findings = check(decl_db, workflow, employer_a, reduce_form(number, idn))
    assert ("V-STAT-01", "person_no") in errors(findings)


@pytest.mark.parametrize(
    ("reason", "needed"), [("12", "解除（终止）劳动合同证明"), ("32", "死亡证明")]
)
def test_a_reduce_whose_reason_needs_evidence_is_submitted_only_with_an_uploaded_file(
    decl_db: Engine,
    *,
    workflow: Declarations,
    employer_a: Actor,
    enrol: Callable[..., str],
    reason: str,
    needed: str,
) -> None:
    """V-RED-01 (DOMAIN §6; issue 14, defect 8): evidence is uploaded, not typed — a
    description alone is refused at submit, naming the document; with the file it goes."""
    idn = make_id()
    number = enrol(employer_a, idn)
    form = reduce_form(number, idn, reason=reason, evidence="证明编号 2026-001")
    with decl_db.begin() as conn:
        d = workflow.create_draft(conn, employer_a, REDUCE, form, now=NOW)
    assert ("V-RED-01", "evidence") not in errors(d.findings)  # the draft may wait for it
    with pytest.raises(InvalidDeclaration) as refused, decl_db.begin() as conn:
        workflow.submit(conn, employer_a, d.id, now=NOW)
    [finding] = [f for f in refused.value.findings if f.rule == "V-RED-01"]
    assert finding.field == "evidence" and needed in finding.message and "上传" in finding.message
    with decl_db.begin() as conn:
        attach_evidence(conn, workflow, employer_a, d.id, now=NOW)
        submitted = workflow.submit(conn, employer_a, d.id, now=NOW)
    assert submitted.status is Status.PENDING_REVIEW
