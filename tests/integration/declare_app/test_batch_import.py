"""Batch import (DOMAIN §7 batch notes) on the real workflow, SQLite and PostgreSQL: a
10 000-line 人员增加 file with bad lines gives per-line results and ONE draft of the
good lines; approving it applies every line in one transaction; a conflict on one
line at approval refuses the whole batch and changes nothing; 年度缴费基数申报 too."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from declare_app import person_id_check_char
from declare_app._batch import parse_batch, template_rows
from declare_app._declarations import Declarations
from declare_app._schema import declarations, enrolments, persons
from declare_app.interfaces import (
    Actor,
    BatchRefused,
    DeclarationError,
    DeclarationType,
    Status,
)
from tests.integration.declare_app.conftest import NOW, person_add_form

ADD = DeclarationType.PERSON_ADD
BASE = DeclarationType.ANNUAL_BASE


def make_id(n: int) -> str:
    """The n-th of many valid citizen numbers (1000 per birth day)."""
    birth = date(1985, 1, 1) + timedelta(days=n // 1000)
    body = f"330682{birth:%Y%m%d}{n % 1000:03d}"
    return body + person_id_check_char(body)


def add_csv(forms: list[dict[str, Any]]) -> bytes:
    """A person-add CSV with the template's header, one line per form."""
    header, _ = template_rows(ADD)
    names = [
        "name", "gender", "birth_month", "id_type", "id_number", "nation", "hukou_type",
        "hukou_address", "staff_kind", "employment_form", "work_start_month", "hire_date",
        "insurances", "add_type", "start_month", "monthly_wage", "person_no", "phone",
        "address", "remark", "transfer_doc", "flexible_agreement",
    ]  # fmt: skip
    assert len(names) == len(header)
    rows = [",".join(header)]
    for form in forms:
        values = {**form, "insurances": " ".join(form.get("insurances", []))}
        rows.append(",".join(str(values.get(n, "")) for n in names))
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def approve(
    engine: Engine, workflow: Declarations, employer: Actor, auditor: Actor, id: str
) -> Any:
    with engine.begin() as conn:
        workflow.submit(conn, employer, id, now=NOW)
    with engine.begin() as conn:
        workflow.claim(conn, auditor, id, now=NOW)
    with engine.begin() as conn:
        return workflow.approve(conn, auditor, id, now=NOW)


def test_10000_lines_with_bad_ones_give_per_line_results_and_one_draft_then_apply_at_once(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    forms = [person_add_form(make_id(i)) for i in range(10_000)]
    bad = {17: "check digit", 500: "no name", 9_999: "duplicate"}
    forms[17]["id_number"] = make_id(17)[:-1] + ("0" if make_id(17)[-1] != "0" else "1")
    forms[500]["name"] = ""
    forms[9_999]["id_number"] = make_id(3)
    lines = parse_batch(ADD, add_csv(forms))
    assert len(lines) == 10_000
    with decl_db.begin() as conn:
        result = workflow.import_batch(conn, employer_a, ADD, lines, common={}, now=NOW)
    refused = {r.number - 2: r for r in result.lines if not r.accepted}
    assert set(refused) == set(bad)
    assert next(f.rule for f in refused[17].findings if f.severity == "error").startswith("V-ID")
    assert "姓名" in refused[500].findings[0].message
    assert any(f.rule == "V-DUP-03" for f in refused[9_999].findings)
    assert result.accepted == 9_997 and result.refused == 3
    assert [r.number for r in result.lines] == list(range(2, 10_002))
    draft = result.declaration
    assert draft.status is Status.DRAFT and len(draft.payload["lines"]) == 9_997
    assert count(decl_db, declarations) == 1

    done = approve(decl_db, workflow, employer_a, auditor, draft.id)
    assert done.status is Status.APPLIED and done.result["lines"] == 9_997
    assert count(decl_db, persons) == 9_997
    assert count(decl_db, enrolments) == 9_997 * 5


def test_a_conflict_on_one_line_at_approval_refuses_the_whole_batch(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    auditor: Actor,
) -> None:
    forms = [person_add_form(make_id(i)) for i in range(5)]
    with decl_db.begin() as conn:
        batch = workflow.import_batch(
            conn, employer_a, ADD, parse_batch(ADD, add_csv(forms)), common={}, now=NOW
        ).declaration
        other = workflow.create_draft(conn, employer_b, ADD, forms[2], now=NOW)
    with decl_db.begin() as conn:
        workflow.submit(conn, employer_a, batch.id, now=NOW)
        workflow.claim(conn, auditor, batch.id, now=NOW)
    approve(decl_db, workflow, employer_b, auditor, other.id)  # person 2 enrolled at B
    assert count(decl_db, persons) == 1
    with pytest.raises(DeclarationError) as refused, decl_db.begin() as conn:
        workflow.approve(conn, auditor, batch.id, now=NOW)
    assert refused.value.code == "conflict" and "第3行" in refused.value.message
    assert count(decl_db, persons) == 1 and count(decl_db, enrolments) == 5
    with decl_db.begin() as conn:
        assert workflow.get(conn, auditor, batch.id).status is Status.UNDER_REVIEW


def test_no_acceptable_line_refuses_the_file_and_stores_nothing(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    forms = [person_add_form(make_id(i), add_type="X") for i in range(3)]
    with pytest.raises(BatchRefused) as refused, decl_db.begin() as conn:
        workflow.import_batch(
            conn, employer_a, ADD, parse_batch(ADD, add_csv(forms)), common={}, now=NOW
        )
    assert [r.accepted for r in refused.value.lines] == [False] * 3
    assert all("增员类型" in r.findings[0].message for r in refused.value.lines)
    assert count(decl_db, declarations) == 0


def test_a_batch_line_waiting_for_review_blocks_the_same_person_alone_v_dup_03(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    forms = [person_add_form(make_id(i)) for i in range(2)]
    with decl_db.begin() as conn:
        batch = workflow.import_batch(
            conn, employer_a, ADD, parse_batch(ADD, add_csv(forms)), common={}, now=NOW
        ).declaration
        workflow.submit(conn, employer_a, batch.id, now=NOW)
        _, findings = workflow.preview(conn, employer_a, ADD, forms[1], now=NOW)
    assert any(f.rule == "V-DUP-03" for f in findings)


def test_annual_base_import_keeps_good_lines_with_the_year(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    forms = [person_add_form(make_id(i)) for i in range(3)]
    with decl_db.begin() as conn:
        added = workflow.import_batch(
            conn, employer_a, ADD, parse_batch(ADD, add_csv(forms)), common={}, now=NOW
        ).declaration
    numbers = approve(decl_db, workflow, employer_a, auditor, added.id).result["person_nos"]
    text = "个人编号,姓名,公民身份号码,上年度月平均工资\r\n" + "".join(
        f"{n},张三,{make_id(i)},{7000 if i != 1 else 'abc'}\r\n" for i, n in enumerate(numbers)
    )
    with decl_db.begin() as conn:
        result = workflow.import_batch(
            conn, employer_a, BASE, parse_batch(BASE, text.encode()), common={"year": "2025"},
            now=NOW,
        )  # fmt: skip
    assert [r.accepted for r in result.lines] == [True, False, True]
    assert result.declaration.payload["year"] == "2025"
    assert [line["id_number"] for line in result.declaration.payload["lines"]] == [
        make_id(0),
        make_id(2),
    ]
    with pytest.raises(BatchRefused, match="申报年度"), decl_db.begin() as conn:
        workflow.import_batch(
            conn, employer_a, BASE, parse_batch(BASE, text.encode()), common={"year": "1999"},
            now=NOW,
        )  # fmt: skip
