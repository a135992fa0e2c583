"""人员增加 (person add, types A-D): DOMAIN §5.2 fields and the §6 rules, then applying
an approved one to master data — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, ApplyConflictError, Declarations
from declare_app._schema import enrolments, persons, unit_profiles
from declare_app.interfaces import (
    Actor,
    Declaration,
    DeclarationType,
    Finding,
    InvalidDeclaration,
    Status,
)

UNIT_A, UNIT_B = "12345678", "87654321"  # as conftest registers them
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()

ADD = DeclarationType.PERSON_ADD


def make_id(birth: str = "19900115", seq: int = 123, region: str = "330682") -> str:
    """A valid 18-character citizen number."""
    body = f"{region}{birth}{seq:03d}"
    return body + person_id_check_char(body)


ALL = ["110", "210", "310", "410", "510"]


def person(id_number: str, **changes: Any) -> dict[str, Any]:
    """A person-add form as the web sends it: every field, empty ones as ""."""
    form: dict[str, Any] = {
        "name": "张三",
        "gender": "",
        "birth_month": "",
        "id_type": "01",
        "id_number": id_number,
        "nation": "01",
        "hukou_type": "A",
        "hukou_address": "",
        "staff_kind": "B",
        "employment_form": "1",
        "work_start_month": "",
        "hire_date": "2025-03-01",
        "insurances": ALL,
        "add_type": "A",
        "start_month": "2025-03",
        "monthly_wage": "6000",
        "person_no": "",
        "phone": "13800000000",
        "address": "",
        "remark": "",
    }
    form.update(changes)
    return form


def preview(
    db: Engine, wf: Declarations, actor: Actor, form: dict[str, Any]
) -> tuple[dict[str, Any], tuple[Finding, ...]]:
    with db.begin() as conn:
        payload, findings = wf.preview(conn, actor, ADD, form, now=NOW)
    return dict(payload), findings


def rules(findings: tuple[Finding, ...], severity: str = "error") -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in findings if f.severity == severity}


def applied(
    db: Engine, wf: Declarations, employer: Actor, auditor: Actor, form: dict[str, Any]
) -> Declaration:
    with db.begin() as conn:
        d = wf.create_draft(conn, employer, ADD, form, now=NOW)
        wf.submit(conn, employer, d.id, now=NOW)
        wf.claim(conn, auditor, d.id, now=NOW)
        return wf.approve(conn, auditor, d.id, now=NOW)


def test_a_complete_form_has_no_findings_and_fills_gender_and_birth_from_the_id(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    payload, findings = preview(decl_db, workflow, employer_a, person(make_id()))
    assert findings == ()
    assert payload["gender"] == "1"  # 17th digit 3: odd, male
    assert payload["birth_month"] == "1990-01"
    assert payload["birth_date"] == "1990-01-15"
    assert payload["base"] == "6000.00"
    assert payload["employment_form"] == "1"


def test_normalising_twice_changes_nothing(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    once, _ = preview(
        decl_db,
        workflow,
        employer_a,
        person(make_id().lower(), monthly_wage="3,000", start_month="202503", gender="M"),
    )
    twice, _ = preview(decl_db, workflow, employer_a, once)
    assert once == twice
    assert once["start_month"] == "2025-03"


@pytest.mark.parametrize(
    "case",
    [
        ("3000", "4812.00", "V-BASE-01"),
        ("9000", "9000.00", None),
        ("30000", "24930.00", "V-BASE-01"),
    ],
)
def test_the_base_is_clamped_to_the_regions_floor_and_ceiling(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    case: tuple[str, str, str | None],
) -> None:
    """DOMAIN §2.3 worked example: 3 000 → 4 812, 9 000 → 9 000, 30 000 → 24 930."""
    wage, base, rule = case
    payload, findings = preview(decl_db, workflow, employer_a, person(make_id(), monthly_wage=wage))
    assert payload["base"] == base
    assert rules(findings, "warning") == ({(rule, "monthly_wage")} if rule else set())
    assert rules(findings) == set()


@pytest.mark.parametrize("wage", ["abc", "0", "1.234", "-5", "1e5"])
def test_a_base_that_is_not_a_positive_amount_in_fen_is_v_base_02(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    wage: str,
) -> None:
    payload, findings = preview(decl_db, workflow, employer_a, person(make_id(), monthly_wage=wage))
    assert ("V-BASE-02", "monthly_wage") in rules(findings)
    assert payload["monthly_wage"] == wage  # kept as typed, for the draft form
    assert "base" not in payload


def test_id_number_errors_name_the_rule_and_the_field(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    good = make_id()
    bad_check = good[:17] + ("0" if good[17] != "0" else "1")
    _, findings = preview(decl_db, workflow, employer_a, person(bad_check))
    assert ("V-ID-05", "id_number") in rules(findings)
    _, findings = preview(decl_db, workflow, employer_a, person(good, gender="2"))
    assert ("V-ID-06", "gender") in rules(findings)
    _, findings = preview(decl_db, workflow, employer_a, person(good, birth_month="1990-02"))
    assert ("V-ID-07", "birth_month") in rules(findings)
    _, findings = preview(decl_db, workflow, employer_a, person("12345"))
    assert ("V-ID-01", "id_number") in rules(findings)


def test_a_legacy_15_digit_number_is_upgraded_with_a_warning(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    payload, findings = preview(decl_db, workflow, employer_a, person("330682900115123"))
    assert payload["id_number"] == "33068219900115123" + payload["id_number"][17]
    assert ("V-ID-01", "id_number") in rules(findings, "warning")


def test_documents_without_an_18_character_number_cannot_be_enrolled_online(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    _, findings = preview(decl_db, workflow, employer_a, person(make_id(), id_type="04"))
    assert ("V-ID-02", "id_type") in rules(findings)
    _, findings = preview(decl_db, workflow, employer_a, person(make_id(), id_type="02"))
    assert ("V-FORM-02", "id_type") in rules(findings)  # a citizen number, not a permit


def test_medical_and_maternity_go_together(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    _, findings = preview(
        decl_db, workflow, employer_a, person(make_id(), insurances=["110", "310"])
    )
    assert ("V-INS-01", "insurances") in rules(findings)


@pytest.mark.parametrize(
    ("start", "ok"),
    [("2025-04", True), ("2025-05", False), ("2024-12", True), ("2024-11", False)],
)
def test_the_start_month_is_at_most_next_month_and_at_most_3_months_back(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    start: str,
    ok: bool,
) -> None:
    _, findings = preview(
        decl_db, workflow, employer_a, person(make_id(), start_month=start, hire_date="2024-12-01")
    )
    assert (("V-DATE-01", "start_month") in rules(findings)) is not ok


def test_registering_more_than_30_days_after_hiring_is_a_warning(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    _, findings = preview(
        decl_db,
        workflow,
        employer_a,
        person(make_id(), hire_date="2025-01-15", start_month="2025-01"),
    )
    assert ("V-DATE-02", "hire_date") in rules(findings, "warning")
    assert rules(findings) == set()


def test_under_16_at_hiring_is_refused(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    _, findings = preview(decl_db, workflow, employer_a, person(make_id(birth="20090401")))
    assert ("V-AGE-02", "hire_date") in rules(findings)


def test_past_the_statutory_retirement_month_only_work_injury_may_be_joined(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    """A man born 1964-12 retired 2024-12 (DOMAIN §3.2 table)."""
    old = make_id(birth="19641201", seq=111)
    _, findings = preview(decl_db, workflow, employer_a, person(old))
    assert ("V-AGE-01", "insurances") in rules(findings)
    _, findings = preview(decl_db, workflow, employer_a, person(old, insurances=["410"]))
    assert rules(findings) == set()
    # Issue 14 defect 1: 人社部发〔2024〕94号 opens flexible late retirement to persons
    # reaching the statutory age from 2025-01-01 on; 2024-12 is past age, agreement or not.
    _, findings = preview(
        decl_db, workflow, employer_a, person(old, flexible_agreement="弹延字2024第8号")
    )
    assert ("V-AGE-01", "insurances") in rules(findings)
    assert any("人社部发〔2024〕94号" in f.message for f in findings)
    # A man born 1965-01 reached it in 2025-02: with an agreement he may join (warning).
    later = make_id(birth="19650101", seq=113)
    _, findings = preview(
        decl_db, workflow, employer_a, person(later, flexible_agreement="弹延字2025第8号")
    )
    assert rules(findings) == set()
    assert ("V-AGE-01", "insurances") in rules(findings, "warning")
    # A woman worker born 1975-03 retires at 50y2m, in 2025-05: still in time.
    woman = make_id(birth="19750301", seq=122)
    _, findings = preview(decl_db, workflow, employer_a, person(woman, staff_kind="B"))
    assert rules(findings) == set()


def test_required_fields_and_unknown_fields(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    _, findings = preview(decl_db, workflow, employer_a, {"id_number": make_id(), "color": "blue"})
    errors = rules(findings)
    assert ("V-FORM-02", "color") in errors
    for name in ("name", "staff_kind", "hire_date", "insurances", "add_type", "start_month"):
        assert ("V-FORM-01", name) in errors
    assert ("V-BASE-02", "monthly_wage") in errors


def test_wrong_types_and_oversized_values_are_findings_not_crashes(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    form = person(
        make_id(),
        name=["a"],
        insurances={"x": 1},
        hire_date="2025-02-30",
        address="路" * 5000,
        monthly_wage=True,
        remark="a\x00b",
    )
    payload, findings = preview(decl_db, workflow, employer_a, form)
    errors = rules(findings)
    assert ("V-FORM-02", "name") in errors
    assert ("V-FORM-02", "insurances") in errors
    assert ("V-FORM-02", "hire_date") in errors
    assert ("V-FORM-03", "address") in errors
    assert ("V-FORM-02", "remark") in errors
    assert len(payload["address"]) <= 200


def test_a_suspended_unit_cannot_declare(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    with decl_db.begin() as conn:
        conn.execute(
            update(unit_profiles)
            .where(unit_profiles.c.unit_code == UNIT_A)
            .values(standing="suspended")
        )
    _, findings = preview(decl_db, workflow, employer_a, person(make_id()))
    assert ("V-UNIT-01", "") in rules(findings)


def test_work_injury_needs_the_units_risk_class_v_rate_02(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    """Without an industry risk class 1-8 (DOMAIN §2.2) the unit's work-injury rate is
    unknown: 410 is refused, the other insurances are not; approval re-checks."""
    with decl_db.begin() as conn:
        d = workflow.create_draft(conn, employer_a, ADD, person(make_id()), now=NOW)
        workflow.submit(conn, employer_a, d.id, now=NOW)
        workflow.claim(conn, auditor, d.id, now=NOW)
        conn.execute(
            update(unit_profiles)
            .where(unit_profiles.c.unit_code == UNIT_A)
            .values(injury_risk_class=None)  # the schema allows only 1-8 or none
        )
    _, findings = preview(decl_db, workflow, employer_a, person(make_id(seq=125)))
    assert ("V-RATE-02", "insurances") in rules(findings)
    assert any("工伤行业风险类别" in f.message for f in findings)
    _, findings = preview(
        decl_db, workflow, employer_a, person(make_id(seq=125), insurances=["110", "310", "510"])
    )
    assert "V-RATE-02" not in {rule for rule, _ in rules(findings)}
    with pytest.raises(ApplyConflictError) as refused, decl_db.begin() as conn:
        workflow.approve(conn, auditor, d.id, now=NOW)
    assert any(f.rule == "V-RATE-02" for f in refused.value.findings)


def test_applying_creates_the_person_with_a_new_number_and_opens_each_enrolment(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    auditor: Actor,
) -> None:
    first = applied(decl_db, workflow, employer_a, auditor, person(make_id()))
    second = applied(decl_db, workflow, employer_a, auditor, person(make_id(seq=125), name="李四"))
    assert first.status is Status.APPLIED
    assert first.result == {"person_no": "33068200000001", "new_person": True, "insurances": ALL}
    assert second.result["person_no"] == "33068200000002"
    assert first.voucher_no == "SB20250310000001"
    assert second.voucher_no == "SB20250310000002"
    with decl_db.begin() as conn:
        row = conn.execute(select(persons).where(persons.c.person_number == "33068200000001")).one()
        rows = conn.execute(
            select(enrolments).where(enrolments.c.person_number == "33068200000001")
        ).all()
    assert (row.name, row.gender, row.staff_kind, row.first_insured_month) == (
        "张三",
        "1",
        "B",
        "2025-03",
    )
    assert sorted(r.insurance for r in rows) == ALL
    assert {(r.unit_code, r.status, r.start_month, r.base_fen, r.add_type) for r in rows} == {
        (UNIT_A, "1", "2025-03", 600000, "A")
    }


def test_an_insured_person_cannot_be_added_again_as_new_or_while_open_elsewhere(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    auditor: Actor,
) -> None:
    idn = make_id()
    applied(decl_db, workflow, employer_b, auditor, person(idn))
    _, findings = preview(decl_db, workflow, employer_a, person(idn))
    errors = rules(findings)
    assert ("V-DUP-02", "add_type") in errors
    assert ("V-DUP-01", "insurances") in errors
    messages = " ".join(f.message for f in findings)
    assert UNIT_B not in messages and "另一家" not in messages  # another unit is never named
    _, findings = preview(
        decl_db, workflow, employer_a, person(idn, add_type="D", person_no="33068200000001")
    )
    assert rules(findings) == {("V-DUP-01", "insurances")}
    _, findings = preview(
        decl_db, workflow, employer_b, person(idn, add_type="B", person_no="33068200000001")
    )
    assert ("V-DUP-01", "insurances") in rules(findings)
    assert "本单位" in next(f.message for f in findings if f.rule == "V-DUP-01")


def test_a_transfer_within_the_pool_after_the_old_unit_reduced(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    auditor: Actor,
) -> None:
    idn = make_id()
    applied(
        decl_db,
        workflow,
        employer_b,
        auditor,
        person(idn, start_month="2025-01", hire_date="2025-01-02"),
    )
    with decl_db.begin() as conn:  # unit B reduced the person (its own declaration type)
        conn.execute(update(enrolments).values(status="2", end_month="2025-02", stop_reason="21"))
    form = person(idn, add_type="D", person_no="33068200000001", phone="13900000000")
    _, findings = preview(decl_db, workflow, employer_a, form)
    assert rules(findings) == set()
    _, findings = preview(
        decl_db, workflow, employer_a, person(idn, add_type="D", person_no="33068200000009")
    )
    assert ("V-FORM-02", "person_no") in rules(findings)
    _, findings = preview(
        decl_db, workflow, employer_a, person(idn, add_type="B", person_no="33068200000001")
    )
    assert ("V-DUP-02", "add_type") in rules(findings)  # never insured in unit A
    _, findings = preview(
        decl_db,
        workflow,
        employer_a,
        person(idn, add_type="D", person_no="33068200000001", start_month="2025-02"),
    )
    assert ("V-DUP-01", "insurances") in rules(findings)  # B paid for 2025-02
    d = applied(decl_db, workflow, employer_a, auditor, form)
    assert d.result == {"person_no": "33068200000001", "new_person": False, "insurances": ALL}
    with decl_db.begin() as conn:
        phone = conn.execute(select(persons.c.phone)).scalar()
        open_units = set(
            conn.execute(select(enrolments.c.unit_code).where(enrolments.c.status == "1")).scalars()
        )
    assert phone == "13900000000"
    assert open_units == {UNIT_A}


def test_a_second_pending_add_for_the_same_person_and_type_is_v_dup_03(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    idn = make_id()
    with decl_db.begin() as conn:
        first = workflow.create_draft(conn, employer_a, ADD, person(idn), now=NOW)
        workflow.submit(conn, employer_a, first.id, now=NOW)
        second = workflow.create_draft(
            conn, employer_a, ADD, person(idn, insurances=["410"]), now=NOW
        )
    assert ("V-DUP-03", "id_number") in rules(second.findings)
    with decl_db.connect() as conn:
        with pytest.raises(InvalidDeclaration) as refused:
            workflow.submit(conn, employer_a, second.id, now=NOW)
        conn.commit()
    assert ("V-DUP-03", "id_number") in rules(refused.value.findings)


def test_transfers_need_the_right_history(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    idn = make_id()
    _, findings = preview(
        decl_db, workflow, employer_a, person(idn, add_type="B", person_no="33068200000001")
    )
    assert ("V-DUP-02", "add_type") in rules(findings)
    _, findings = preview(
        decl_db, workflow, employer_a, person(idn, add_type="D", person_no="33068200000001")
    )
    assert ("V-DUP-02", "add_type") in rules(findings)
    _, findings = preview(decl_db, workflow, employer_a, person(idn, add_type="B"))
    assert ("V-FORM-01", "person_no") in rules(findings)
    _, findings = preview(decl_db, workflow, employer_a, person(idn, add_type="C"))
    assert rules(findings) == set()
    assert ("V-FORM-01", "transfer_doc") in rules(findings, "warning")
    assert UNIT_A  # the unit under test
