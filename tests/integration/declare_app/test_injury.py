"""工伤事故申报 and 工伤鉴定 (DOMAIN §5.6, §5.7): V-INJ-01/02, the 30-day late flag,
V-APP-01 — on SQLite and PostgreSQL.  Approval accepts the application (受理); the
工伤认定决定 is the 社会保险行政部门's, recorded later by staff (工伤保险条例 Arts. 17,
20; issue 14, defect 2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from declare_app import person_id_check_char
from declare_app._agency_records import record_injury_decision
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._schema import enrolments, injury_applications, injury_appraisals, injury_cases
from declare_app.interfaces import Actor, Declaration, DeclarationError, DeclarationType, Finding

UNIT_A = "12345678"
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
ACCIDENT = DeclarationType.INJURY_ACCIDENT
APPRAISAL = DeclarationType.INJURY_APPRAISAL


def make_id(birth: str = "19900115", seq: int = 123) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


def accident(number: str, id_number: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "person_no": number,
        "name": "张三",
        "gender": "1",
        "birth_date": "1990-01-15",
        "id_number": id_number,
        "job": "冲压工",
        "work_start_date": "",
        "accident_time": "2025-03-01T14:30",
        "accident_place": "本单位二车间",
        "accident_cause": "操作冲床时手被压伤",
        "diagnosis_date": "2025-03-01",
        "injury_part": "左手",
        "injury_degree": "骨折",
        "disease_name": "",
        "exposure_post": "",
        "exposure_period": "",
        "description": "2025年3月1日14时30分，在二车间操作冲床时左手被压伤，左手食指骨折。",
        "request": "申请认定为工伤",
        "materials": "劳动合同复印件\n上虞人民医院诊断证明书",
        "extension_ref": "",
        "contact_name": "王经理",
        "contact_phone": "0575-82000000",
    }
    values.update(changes)
    return values


def appraisal(number: str, id_number: str, decision_no: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "person_no": number,
        "name": "张三",
        "id_number": id_number,
        "decision_no": decision_no,
        "decision_date": "2025-03-10",
        "injury_part": "左手",
        "hospital": "上虞人民医院",
        "stable_date": "2025-03-08",
        "appraisal_kind": "1",
        "previous_conclusion_date": "",
        "applicant_kind": "1",
        "materials": "工伤认定决定书、病历",
        "contact_name": "王经理",
        "contact_phone": "0575-82000000",
    }
    values.update(changes)
    return values


def errors(findings: tuple[Finding, ...], severity: str = "error") -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in findings if f.severity == severity}


def check(
    db: Engine, wf: Declarations, actor: Actor, type: DeclarationType, payload: dict[str, Any]
) -> tuple[dict[str, Any], tuple[Finding, ...]]:
    with db.begin() as conn:
        normalised, findings = wf.preview(conn, actor, type, payload, now=NOW)
    return dict(normalised), findings


@pytest.fixture
def insured(employer_a: Actor, enrol: Callable[..., str]) -> tuple[str, str]:
    idn = make_id()
    return enrol(employer_a, idn), idn


DECISION = "上人社工伤认字〔2025〕1号"


def test_approving_an_accident_report_accepts_the_application_and_recognises_nothing(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> None:
    """工伤保险条例 Arts. 17, 20: the employer applies, the 社会保险行政部门 decides within
    60 days of acceptance; approving the declaration is the acceptance (受理) only."""
    number, idn = insured
    normalised, findings = check(decl_db, workflow, employer_a, ACCIDENT, accident(number, idn))
    assert findings == ()
    assert (normalised["deadline"], normalised["late"]) == ("2025-03-31", False)
    assert normalised["accident_time"] == "2025-03-01T14:30"
    done = decide(employer_a, ACCIDENT, accident(number, idn))
    assert done.result == {
        "application_no": "GSSL20250310000001",
        "accepted_on": "2025-03-10",
        "late": False,
    }
    with decl_db.begin() as conn:
        assert conn.execute(select(injury_cases)).all() == []  # no 工伤认定决定书
        application = conn.execute(select(injury_applications)).one()
    assert (
        application.person_number,
        application.unit_code,
        application.accident_date,
        application.decision_no,
    ) == (number, UNIT_A, date(2025, 3, 1), None)


def test_staff_record_the_decision_as_its_own_audited_step(
    decl_db: Engine,
    *,
    workflow: Declarations,
    employer_a: Actor,
    auditor: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> None:
    """The decision (number, date, outcome) is recorded once, by staff, with an audit
    event and a history line; an employer cannot record it (Art. 20)."""
    import audit

    number, idn = insured
    done = decide(employer_a, ACCIDENT, accident(number, idn))
    with decl_db.begin() as conn, pytest.raises(DeclarationError) as refused:
        record_injury_decision(
            conn,
            employer_a,
            done.id,
            decision_no=DECISION,
            decided_on=date(2025, 3, 10),
            outcome="recognised",
            now=NOW,
        )
    assert refused.value.code == "forbidden"
    with decl_db.begin() as conn:
        recorded = record_injury_decision(
            conn,
            auditor,
            done.id,
            decision_no=DECISION,
            decided_on=date(2025, 3, 10),
            outcome="recognised",
            now=NOW,
        )
    assert recorded["decision_no"] == DECISION
    with decl_db.begin() as conn, pytest.raises(DeclarationError) as again:
        record_injury_decision(
            conn,
            auditor,
            done.id,
            decision_no="X2",
            decided_on=date(2025, 3, 10),
            outcome="recognised",
            now=NOW,
        )
    assert again.value.code == "decided"
    with decl_db.begin() as conn:
        case = conn.execute(select(injury_cases)).one()
        actions = [
            (r.event.action, r.event.outcome)
            for r in audit.query(conn)
            if r.event.action == "declare.injury-decision"
        ]
        history = workflow.get(conn, auditor, done.id).history
    assert (case.decision_no, case.outcome, case.recorded_by, case.application_no) == (
        DECISION,
        "recognised",
        "zhang",
        "GSSL20250310000001",
    )
    assert sorted(actions) == [
        ("declare.injury-decision", "ok"),
        ("declare.injury-decision", "refused"),
        ("declare.injury-decision", "refused"),
    ]
    assert any(DECISION in str(h["note"]) for h in history)


def test_a_late_report_is_accepted_and_flagged(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> None:
    number, idn = insured
    late = accident(number, idn, accident_time="2025-01-20T08:00", diagnosis_date="2025-01-20")
    normalised, findings = check(decl_db, workflow, employer_a, ACCIDENT, late)
    assert (normalised["deadline"], normalised["late"]) == ("2025-02-19", True)
    assert errors(findings) == set()
    assert ("V-INJ-02", "accident_time") in errors(findings, "warning")
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        ACCIDENT,
        {**late, "extension_ref": "上人社工伤延〔2025〕3号"},
    )
    assert errors(findings, "warning") == {("V-INJ-02", "extension_ref")}
    assert decide(employer_a, ACCIDENT, late).result["late"] is True
    with decl_db.begin() as conn:
        assert conn.execute(select(injury_applications.c.late)).scalar() is True


def test_seven_days_before_the_deadline_warns(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, insured: tuple[str, str]
) -> None:
    number, idn = insured
    form = accident(number, idn, accident_time="2025-02-12T08:00", diagnosis_date="2025-02-12")
    _, findings = check(decl_db, workflow, employer_a, ACCIDENT, form)
    assert errors(findings, "warning") == {("V-INJ-02", "accident_time")}
    assert "2025-03-14" in findings[0].message


def test_an_occupational_disease_counts_from_the_diagnosis_and_needs_its_exposure(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, insured: tuple[str, str]
) -> None:
    number, idn = insured
    form = accident(
        number,
        idn,
        accident_time="2025-01-02T08:00",
        diagnosis_date="2025-03-01",
        disease_name="噪声聋",
        materials="劳动合同\n职业病诊断证明书",
    )
    normalised, findings = check(decl_db, workflow, employer_a, ACCIDENT, form)
    assert errors(findings) == {("V-INJ-01", "exposure_post"), ("V-INJ-01", "exposure_period")}
    assert normalised["late"] is False and normalised["deadline"] == "2025-03-31"


def test_required_items_dates_and_the_record(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, insured: tuple[str, str]
) -> None:
    number, idn = insured
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        ACCIDENT,
        accident(number, idn, accident_place="", description=""),
    )
    assert errors(findings) == {("V-INJ-01", "accident_place"), ("V-INJ-01", "description")}
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        ACCIDENT,
        accident(number, idn, accident_time="2025-03-11T08:00"),
    )
    assert ("V-INJ-01", "accident_time") in errors(findings)
    _, findings = check(
        decl_db, workflow, employer_a, ACCIDENT, accident(number, idn, diagnosis_date="2025-02-01")
    )
    assert ("V-INJ-01", "diagnosis_date") in errors(findings)
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        ACCIDENT,
        accident(number, idn, gender="2", birth_date="1990-01-16"),
    )
    assert errors(findings) == {("V-ID-06", "gender"), ("V-ID-07", "birth_date")}
    _, findings = check(
        decl_db, workflow, employer_a, ACCIDENT, accident(number, idn, gender="", birth_date="")
    )
    assert ("V-INJ-01", "gender") in errors(findings)  # required on the form
    _, findings = check(
        decl_db, workflow, employer_a, ACCIDENT, accident(number, idn, accident_time="2025-03-01")
    )
    assert ("V-FORM-02", "accident_time") in errors(findings)


def test_materials_and_coverage_warnings(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, insured: tuple[str, str]
) -> None:
    number, idn = insured
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        ACCIDENT,
        accident(number, idn, materials="照片", injury_degree="死亡"),
    )
    assert [f.message for f in findings if f.rule == "V-INJ-01"] == [
        "提交材料中应有劳动合同或劳动关系证明",
        "提交材料中应有医疗诊断证明或职业病诊断证明",
        "职工死亡的，应提交死亡证明",
    ]
    with decl_db.begin() as conn:
        conn.execute(
            update(enrolments)
            .where(enrolments.c.insurance == "410")
            .values(status="2", end_month="2025-01")
        )
    _, findings = check(decl_db, workflow, employer_a, ACCIDENT, accident(number, idn))
    assert errors(findings, "warning") == {("V-INJ-01", "accident_time")}


def test_the_same_accident_twice_and_a_person_of_another_unit(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> None:
    employer_b = Actor("employer", "33068287654321@sxlss", unit_code="87654321", session_id="b")
    number, idn = insured
    with decl_db.begin() as conn:
        d = workflow.create_draft(conn, employer_a, ACCIDENT, accident(number, idn), now=NOW)
        workflow.submit(conn, employer_a, d.id, now=NOW)
    _, findings = check(decl_db, workflow, employer_a, ACCIDENT, accident(number, idn))
    assert ("V-DUP-03", "accident_time") in errors(findings)
    with decl_db.begin() as conn:
        workflow.withdraw(conn, employer_a, d.id, now=NOW)
    decide(employer_a, ACCIDENT, accident(number, idn))
    _, findings = check(decl_db, workflow, employer_a, ACCIDENT, accident(number, idn))
    assert ("V-DUP-03", "accident_time") in errors(findings)
    _, findings = check(decl_db, workflow, employer_b, ACCIDENT, accident(number, idn))
    assert ("V-STAT-01", "person_no") in errors(findings)


# -- appraisal -----------------------------------------------------------------------------


@pytest.fixture
def case(
    decl_db: Engine,
    employer_a: Actor,
    auditor: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> tuple[str, str, str]:
    """An accepted application whose recognition decision staff recorded."""
    number, idn = insured
    done = decide(employer_a, ACCIDENT, accident(number, idn))
    with decl_db.begin() as conn:
        record_injury_decision(
            conn,
            auditor,
            done.id,
            decision_no=DECISION,
            decided_on=date(2025, 3, 10),
            outcome="recognised",
            now=NOW,
        )
    return number, idn, DECISION


def test_an_accepted_application_without_a_decision_cannot_be_appraised(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> None:
    """Art. 23: appraisal needs the 工伤认定决定; the acceptance number is not one."""
    number, idn = insured
    done = decide(employer_a, ACCIDENT, accident(number, idn))
    application = done.result["application_no"]
    _, findings = check(
        decl_db, workflow, employer_a, APPRAISAL, appraisal(number, idn, application)
    )
    assert ("V-APP-01", "decision_no") in errors(findings)


def test_a_not_recognised_decision_cannot_be_appraised(
    decl_db: Engine,
    *,
    workflow: Declarations,
    employer_a: Actor,
    auditor: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> None:
    number, idn = insured
    done = decide(employer_a, ACCIDENT, accident(number, idn))
    with decl_db.begin() as conn:
        record_injury_decision(
            conn,
            auditor,
            done.id,
            decision_no="不予认定1号",
            decided_on=date(2025, 3, 10),
            outcome="not-recognised",
            now=NOW,
        )
    _, findings = check(
        decl_db, workflow, employer_a, APPRAISAL, appraisal(number, idn, "不予认定1号")
    )
    assert errors(findings) == {("V-APP-01", "decision_no")}


def test_a_decision_issued_outside_the_system_is_cited_with_its_issuing_body(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    insured: tuple[str, str],
    decide: Callable[..., Declaration],
) -> None:
    """Art. 23: the applicant brings the 工伤认定决定, wherever it was made: number, date
    and issuing body; the appraisal is accepted with a warning to check the original."""
    number, idn = insured
    outside = appraisal(
        number,
        idn,
        "绍人社工伤认字〔2024〕88号",
        decision_date="2024-11-02",
        stable_date="2025-02-01",
    )
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, outside)
    assert ("V-APP-01", "decision_no") in errors(findings)  # without the issuing body
    outside["issuing_body"] = "绍兴市人力资源和社会保障局"
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, outside)
    assert errors(findings) == set()
    assert ("V-APP-01", "issuing_body") in errors(findings, "warning")
    done = decide(employer_a, APPRAISAL, outside)
    assert done.result == {"decision_no": "绍人社工伤认字〔2024〕88号", "kind": "initial"}
    with decl_db.begin() as conn:
        case = conn.execute(select(injury_cases)).one()
    assert (case.issued_by, case.decided_on, case.accident_date) == (
        "绍兴市人力资源和社会保障局",
        date(2024, 11, 2),
        None,
    )


def test_an_initial_appraisal_cites_the_units_recognised_case(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    case: tuple[str, str, str],
    decide: Callable[..., Declaration],
) -> None:
    number, idn, decision = case
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, appraisal(number, idn, decision))
    assert findings == ()
    done = decide(employer_a, APPRAISAL, appraisal(number, idn, decision))
    assert done.result == {"decision_no": decision, "kind": "initial"}
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, appraisal(number, idn, decision))
    assert ("V-APP-01", "appraisal_kind") in errors(findings)  # initial only once


def test_an_unknown_or_mismatched_decision_is_v_app_01(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    case: tuple[str, str, str],
) -> None:
    number, idn, decision = case
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, appraisal(number, idn, "GSRD0"))
    assert errors(findings) == {("V-APP-01", "decision_no")}
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        APPRAISAL,
        appraisal(number, idn, decision, decision_date="2025-03-09"),
    )
    assert errors(findings) == {("V-APP-01", "decision_date")}
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        APPRAISAL,
        appraisal(number, idn, decision, stable_date="2025-02-01"),
    )
    assert ("V-FORM-02", "stable_date") in errors(findings)
    _, findings = check(decl_db, workflow, employer_b, APPRAISAL, appraisal(number, idn, decision))
    assert ("V-STAT-01", "person_no") in errors(findings)


def _conclude(db: Engine, decision: str, number: str, on: date) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(injury_appraisals).values(
                decision_no=decision,
                person_number=number,
                unit_code=UNIT_A,
                kind="initial",
                applied_on=on,
                conclusion_on=on,
                disability_grade=9,
            )
        )


def test_a_re_appraisal_within_15_days_of_the_conclusion(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, case: tuple[str, str, str]
) -> None:
    number, idn, decision = case
    again = appraisal(number, idn, decision, appraisal_kind="2")
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, again)
    assert errors(findings) == {("V-FORM-01", "previous_conclusion_date")}
    again["previous_conclusion_date"] = "2025-03-01"
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, again)
    assert errors(findings) == {("V-APP-01", "appraisal_kind")}  # no initial appraisal yet
    _conclude(decl_db, decision, number, date(2025, 3, 1))
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, again)
    assert errors(findings) == set()
    _, findings = check(
        decl_db,
        workflow,
        employer_a,
        APPRAISAL,
        {**again, "previous_conclusion_date": "2025-02-28"},
    )
    assert ("V-APP-01", "previous_conclusion_date") in errors(findings)


def test_a_re_appraisal_after_15_days_and_a_review_before_a_year_are_refused(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, case: tuple[str, str, str]
) -> None:
    number, idn, decision = case
    _conclude(decl_db, decision, number, date(2025, 2, 20))
    again = appraisal(
        number, idn, decision, appraisal_kind="2", previous_conclusion_date="2025-02-20"
    )
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, again)
    assert errors(findings) == {("V-APP-01", "appraisal_kind")}
    review = {**again, "appraisal_kind": "3"}
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, review)
    assert errors(findings) == {("V-APP-01", "appraisal_kind")}
    assert "2026-02-20" in next(f.message for f in findings if f.rule == "V-APP-01")


def test_a_review_a_year_after_the_conclusion(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, case: tuple[str, str, str]
) -> None:
    number, idn, decision = case
    _conclude(decl_db, decision, number, date(2024, 3, 10))
    review = appraisal(
        number, idn, decision, appraisal_kind="3", previous_conclusion_date="2024-03-10"
    )
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, review)
    assert errors(findings) == set()


def test_one_pending_appraisal_per_case(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, case: tuple[str, str, str]
) -> None:
    number, idn, decision = case
    with decl_db.begin() as conn:
        d = workflow.create_draft(
            conn, employer_a, APPRAISAL, appraisal(number, idn, decision), now=NOW
        )
        workflow.submit(conn, employer_a, d.id, now=NOW)
    _, findings = check(decl_db, workflow, employer_a, APPRAISAL, appraisal(number, idn, decision))
    assert ("V-DUP-03", "decision_no") in errors(findings)
