"""单位基本信息变更 (unit change, DOMAIN §5.1) — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._schema import unit_profiles, units
from declare_app.interfaces import Actor, Declaration, DeclarationType, Finding

UNIT_A = "12345678"
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
CHANGE = DeclarationType.UNIT_CHANGE


def change(field: str, new: str, **more: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "field": field,
        "old_value": "",
        "new_value": new,
        "effective_date": "2025-03-01",
        "reason": "",
        "attachments": "",
    }
    values.update(more)
    return values


def errors(findings: tuple[Finding, ...], severity: str = "error") -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in findings if f.severity == severity}


def check(
    db: Engine, wf: Declarations, actor: Actor, payload: dict[str, Any]
) -> tuple[dict[str, Any], tuple[Finding, ...]]:
    with db.begin() as conn:
        normalised, findings = wf.preview(conn, actor, CHANGE, payload, now=NOW)
    return dict(normalised), findings


def test_a_profile_item_is_changed_with_the_old_value_from_the_record(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    decide: Callable[..., Declaration],
) -> None:
    done = decide(employer_a, CHANGE, change("agent_phone", "0575-82345678"))
    assert done.result == {"field": "agent_phone", "old_value": "", "new_value": "0575-82345678"}
    normalised, findings = check(
        decl_db, workflow, employer_a, change("agent_phone", "13900000000", old_value="123")
    )
    assert normalised["old_value"] == "0575-82345678"
    assert ("V-FORM-02", "old_value") in errors(findings, "warning")
    decide(employer_a, CHANGE, change("agent_phone", "13900000000"))
    decide(employer_a, CHANGE, change("injury_risk_class", "5"))  # registered with 3
    with decl_db.begin() as conn:
        row = conn.execute(select(unit_profiles).where(unit_profiles.c.unit_code == UNIT_A)).one()
    assert (row.unit_code, row.agent_phone, row.injury_risk_class) == (UNIT_A, "13900000000", 5)


def test_the_name_changes_in_the_registry_and_needs_proof(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    decide: Callable[..., Declaration],
) -> None:
    _, findings = check(decl_db, workflow, employer_a, change("name", "上虞新名称有限公司"))
    assert errors(findings) == {("V-UNIT-02", "attachments")}
    done = decide(
        employer_a, CHANGE, change("name", "上虞新名称有限公司", attachments="营业执照副本")
    )
    assert done.result["old_value"] == "上虞示范机械厂"
    with decl_db.begin() as conn:
        assert conn.execute(select(units.c.name).where(units.c.code == UNIT_A)).scalar() == (
            "上虞新名称有限公司"
        )


def test_the_credit_code_is_checked_and_unique(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    decide: Callable[..., Declaration],
) -> None:
    proof = {"attachments": "营业执照"}
    _, findings = check(
        decl_db, workflow, employer_a, change("credit_code", "91350100M000100Y44", **proof)
    )
    assert errors(findings) == {("V-USCC-03", "new_value")}
    _, findings = check(
        decl_db, workflow, employer_a, change("credit_code", "91350100M000100Y4Z", **proof)
    )
    assert ("V-USCC-02", "new_value") in errors(findings)
    decide(employer_b, CHANGE, change("credit_code", "91350100M000100Y43", **proof))
    # Issue 14 defect 4: "already registered to another unit" is its own rule, not the
    # check-character rule V-USCC-03; typed full-width and in lower case it is found too.
    for typed in ("91350100M000100Y43", "９１３５０１００m０００１００y４３"):
        normalised, findings = check(
            decl_db, workflow, employer_a, change("credit_code", typed, **proof)
        )
        assert normalised["new_value"] == "91350100M000100Y43"
        assert errors(findings) == {("V-USCC-06", "new_value")}
        assert "其他单位" in findings[0].message and "87654321" not in findings[0].message


@pytest.mark.parametrize(
    "case",
    [
        ("injury_risk_class", "9", "V-RATE-02"),
        ("postcode", "31200", "V-FORM-02"),
        ("admin_region", "abc", "V-FORM-02"),
        ("bank_account_no", "12 34", "V-FORM-02"),
        ("unit_type", "公司", "V-FORM-02"),
        ("industry_code", "Z99", "V-FORM-02"),
        ("economic_type", "很" * 40, "V-FORM-03"),
        ("legal_rep_id", "330682199001151230", "V-ID-05"),
        ("color", "red", "V-FORM-02"),
    ],
)
def test_item_formats(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, case: tuple[str, str, str]
) -> None:
    field, value, rule = case
    _, findings = check(decl_db, workflow, employer_a, change(field, value))
    assert rule in {f.rule for f in findings if f.severity == "error"}


def test_a_valid_legal_representative_id_and_bank_account(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    body = "33068219800101123"
    normalised, findings = check(
        decl_db,
        workflow,
        employer_a,
        change("legal_rep_id", body + person_id_check_char(body).lower()),
    )
    assert errors(findings) == set() and normalised["new_value"].endswith(
        person_id_check_char(body)
    )
    normalised, findings = check(
        decl_db, workflow, employer_a, change("bank_account_no", "6222 0212 3456 7890")
    )
    assert errors(findings) == set() and normalised["new_value"] == "6222021234567890"


def test_dates_sameness_and_duplicates(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, decide: Callable[..., Declaration]
) -> None:
    _, findings = check(
        decl_db, workflow, employer_a, change("postcode", "312300", effective_date="2025-01-15")
    )
    assert ("V-DATE-03", "effective_date") in errors(findings, "warning")
    _, findings = check(
        decl_db, workflow, employer_a, change("postcode", "312300", effective_date="2025-03-11")
    )
    assert ("V-FORM-02", "effective_date") in errors(findings)
    decide(employer_a, CHANGE, change("postcode", "312300"))
    _, findings = check(decl_db, workflow, employer_a, change("postcode", "312300"))
    assert ("V-FORM-02", "new_value") in errors(findings)
    with decl_db.begin() as conn:
        d = workflow.create_draft(conn, employer_a, CHANGE, change("postcode", "312000"), now=NOW)
        workflow.submit(conn, employer_a, d.id, now=NOW)
    _, findings = check(decl_db, workflow, employer_a, change("postcode", "312001"))
    assert ("V-DUP-03", "field") in errors(findings)
    _, findings = check(decl_db, workflow, employer_a, change("bank_name", "工商银行上虞支行"))
    assert errors(findings) == set()
