"""The declaration workflow (DOMAIN §7): every transition and refusal, the audit trail,
isolation between units, atomic approval and resubmission history — on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select, update

import audit
from declare_app import person_id_check_char
from declare_app._declarations import (
    CHINA_TIME,
    ApplyConflictError,
    Declarations,
    run_recording_refusals,
)
from declare_app._schema import (
    declarations,
    enrolments,
    number_sequences,
    persons,
    vouchers,
)
from declare_app.interfaces import (
    Actor,
    Declaration,
    DeclarationError,
    DeclarationType,
    DeclarationWorkflow,
    InvalidDeclaration,
    NotFound,
    Status,
)

UNIT_A, UNIT_B = "12345678", "87654321"  # as conftest registers them
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
ADD = DeclarationType.PERSON_ADD


def make_id(birth: str = "19900115", seq: int = 123) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


def form(id_number: str | None = None, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "张三",
        "id_number": id_number or make_id(),
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": "2025-03-01",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": "2025-03",
        "monthly_wage": "6000",
        "phone": "13800000000",
    }
    values.update(changes)
    return values


def events(conn: Connection, **filters: str) -> list[audit.AuditRecord]:
    return [
        r for r in audit.query(conn) if all(getattr(r.event, k) == v for k, v in filters.items())
    ]


def refused(db: Engine, call: Any) -> DeclarationError:
    """Run a workflow call that must be refused, committing as callers must."""
    with pytest.raises(DeclarationError) as info:
        run_recording_refusals(db, call)
    return info.value


def draft(db: Engine, wf: Declarations, actor: Actor, **changes: Any) -> Declaration:
    with db.begin() as conn:
        return wf.create_draft(conn, actor, ADD, form(**changes), now=NOW)


def submitted(db: Engine, wf: Declarations, actor: Actor, **changes: Any) -> Declaration:
    d = draft(db, wf, actor, **changes)
    with db.begin() as conn:
        return wf.submit(conn, actor, d.id, now=NOW)


def claimed(
    db: Engine, wf: Declarations, employer: Actor, auditor: Actor, **changes: Any
) -> Declaration:
    d = submitted(db, wf, employer, **changes)
    with db.begin() as conn:
        return wf.claim(conn, auditor, d.id, now=NOW + 60)


def test_the_workflow_satisfies_the_protocol(workflow: Declarations) -> None:
    checked: DeclarationWorkflow = workflow  # mypy checks this assignment
    assert checked is workflow


# -- the employer's side -------------------------------------------------------------------


def test_a_draft_is_stored_with_its_findings_history_and_audit_event(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a, monthly_wage="3000")
    assert (d.status, d.version, d.previous_id, d.unit_code) == (Status.DRAFT, 1, None, UNIT_A)
    assert len(d.id) == 32 and d.created_session == "sess-a-1"
    assert [f.rule for f in d.findings] == ["V-BASE-01"]
    assert [(h["from"], h["to"], h["session_id"]) for h in d.history] == [
        (None, "draft", "sess-a-1")
    ]
    with decl_db.begin() as conn:
        (record,) = events(conn, action="declare.create")
    assert record.event.outcome == "ok"
    assert record.event.subject == d.id
    assert record.event.unit == UNIT_A
    assert record.event.session_id == "sess-a-1"
    assert record.event.actor == f"channel:{employer_a.name}"


def test_a_draft_may_keep_errors_and_be_updated_until_submitted(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a, monthly_wage="", insurances=["310"])
    assert {f.rule for f in d.findings if f.severity == "error"} == {"V-BASE-02", "V-INS-01"}
    with decl_db.begin() as conn:
        updated = workflow.update_draft(conn, employer_a, d.id, form(), now=NOW + 1)
    assert updated.findings == () and updated.id == d.id
    assert updated.payload["monthly_wage"] == "6000.00"


def test_submit_refuses_a_draft_with_errors_and_audits_the_refusal(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a, start_month="2026-01")
    error = refused(decl_db, lambda conn: workflow.submit(conn, employer_a, d.id, now=NOW))
    assert isinstance(error, InvalidDeclaration)
    assert [(f.rule, f.field) for f in error.findings if f.severity == "error"] == [
        ("V-DATE-01", "start_month")
    ]
    with decl_db.begin() as conn:
        assert workflow.get(conn, employer_a, d.id).status is Status.DRAFT
        (record,) = events(conn, action="declare.submit")
    assert (record.event.outcome, record.event.subject, record.event.unit) == (
        "refused",
        d.id,
        UNIT_A,
    )
    assert record.event.session_id == "sess-a-1"
    assert record.event.details["rules"] == "V-DATE-01"


def test_submit_moves_a_clean_draft_to_pending_review(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    d = submitted(decl_db, workflow, employer_a)
    assert d.status is Status.PENDING_REVIEW and d.submitted_at == NOW
    assert [h["to"] for h in d.history] == ["draft", "pending-review"]
    error = refused(decl_db, lambda conn: workflow.submit(conn, employer_a, d.id, now=NOW))
    assert error.code == "wrong-status"
    error = refused(
        decl_db, lambda conn: workflow.update_draft(conn, employer_a, d.id, form(), now=NOW)
    )
    assert error.code == "wrong-status"


def test_withdraw_from_draft_or_pending_but_not_under_review(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a)
    p = submitted(decl_db, workflow, employer_a, id_number=make_id(seq=125))
    c = claimed(decl_db, workflow, employer_a, auditor, id_number=make_id(seq=127))
    with decl_db.begin() as conn:
        assert workflow.withdraw(conn, employer_a, d.id, now=NOW).status is Status.WITHDRAWN
        assert workflow.withdraw(conn, employer_a, p.id, now=NOW).status is Status.WITHDRAWN
    error = refused(decl_db, lambda conn: workflow.withdraw(conn, employer_a, c.id, now=NOW))
    assert error.code == "wrong-status"
    error = refused(decl_db, lambda conn: workflow.withdraw(conn, employer_a, p.id, now=NOW))
    assert error.code == "wrong-status"


@pytest.mark.parametrize(
    "payload",
    [
        ["not", "a", "mapping"],
        {1: "x"},
        {"name": float("nan")},
        {"name": "x" * 300_000},
        {"name": "\ud800"},
        {"name": object()},
    ],
)
def test_payloads_that_are_not_json_objects_of_bounded_size_are_refused(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, payload: Any
) -> None:
    error = refused(
        decl_db, lambda conn: workflow.create_draft(conn, employer_a, ADD, payload, now=NOW)
    )
    assert error.code in ("bad-payload", "too-large")


# -- the agency's side ---------------------------------------------------------------------


def test_only_auditors_and_admins_claim_and_decide(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = submitted(decl_db, workflow, employer_a)
    for actor in (
        employer_a,
        Actor("staff", "li", role="carrier"),
        Actor("staff", "wu", role="officer"),
    ):
        error = refused(decl_db, lambda conn, a=actor: workflow.claim(conn, a, d.id, now=NOW))
        assert error.code == "forbidden"
    with decl_db.begin() as conn:
        c = workflow.claim(conn, auditor, d.id, now=NOW + 60)
    assert (c.status, c.claimed_by) == (Status.UNDER_REVIEW, "zhang")
    with decl_db.begin() as conn:
        (record,) = events(conn, action="declare.claim", outcome="ok")
        carrier = events(conn, action="declare.claim", actor="staff:li")
    assert (record.event.actor, record.event.unit, record.event.session_id) == (
        "staff:zhang",
        UNIT_A,
        "",
    )
    assert carrier[0].event.outcome == "refused" and carrier[0].event.unit == UNIT_A


def test_claim_before_deciding_and_only_the_claimer_decides(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = submitted(decl_db, workflow, employer_a)
    error = refused(decl_db, lambda conn: workflow.approve(conn, auditor, d.id, now=NOW))
    assert error.code == "wrong-status"
    error = refused(
        decl_db,
        lambda conn: workflow.return_(conn, auditor, d.id, code="R01", text="", now=NOW),
    )
    assert error.code == "wrong-status"
    with decl_db.begin() as conn:
        workflow.claim(conn, auditor, d.id, now=NOW)
    other = Actor("staff", "wang", role="auditor")
    assert (
        refused(decl_db, lambda conn: workflow.claim(conn, other, d.id, now=NOW)).code == "claimed"
    )
    assert refused(decl_db, lambda conn: workflow.approve(conn, other, d.id, now=NOW)).code == (
        "not-claimer"
    )
    admin = Actor("staff", "boss", role="admin")
    with decl_db.begin() as conn:
        taken = workflow.claim(conn, admin, d.id, now=NOW + 5)
    assert taken.claimed_by == "boss"
    assert taken.history[-1]["note"] == "由zhang转交boss审核"
    assert refused(decl_db, lambda conn: workflow.approve(conn, auditor, d.id, now=NOW)).code == (
        "not-claimer"
    )


def test_approve_applies_issues_a_voucher_and_records_both_events(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = claimed(decl_db, workflow, employer_a, auditor)
    with decl_db.begin() as conn:
        done = workflow.approve(conn, auditor, d.id, now=NOW + 120)
    assert done.status is Status.APPLIED
    assert (done.decided_by, done.decided_at, done.voucher_no) == (
        "zhang",
        NOW + 120,
        "SB20250310000001",
    )
    assert done.result["person_no"] == "33068200000001"
    assert [h["to"] for h in done.history] == ["draft", "pending-review", "under-review", "applied"]
    with decl_db.begin() as conn:
        seen = workflow.get(conn, employer_a, d.id)
        approve = events(conn, action="declare.approve")
        apply = events(conn, action="declare.apply")
        voucher = conn.execute(select(vouchers)).one()
    assert seen.voucher_no == "SB20250310000001" and seen.status is Status.APPLIED
    assert [r.event.outcome for r in approve + apply] == ["ok", "ok"]
    assert apply[0].event.details["voucher"] == "SB20250310000001"
    assert apply[0].event.details["person_no"] == "33068200000001"
    assert (voucher.number, voucher.declaration_id, voucher.unit_code) == (
        "SB20250310000001",
        d.id,
        UNIT_A,
    )
    error = refused(decl_db, lambda conn: workflow.approve(conn, auditor, d.id, now=NOW))
    assert error.code == "wrong-status"


def test_voucher_numbers_restart_each_local_day(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    first = claimed(decl_db, workflow, employer_a, auditor)
    second = claimed(decl_db, workflow, employer_a, auditor, id_number=make_id(seq=125))
    # 16:30 UTC on 2025-03-10 is 00:30 on 2025-03-11 in China.
    next_day = datetime(2025, 3, 11, 0, 30, tzinfo=CHINA_TIME).timestamp()
    with decl_db.begin() as conn:
        a = workflow.approve(conn, auditor, first.id, now=NOW)
        b = workflow.approve(conn, auditor, second.id, now=next_day)
    assert (a.voucher_no, b.voucher_no) == ("SB20250310000001", "SB20250311000001")


def test_return_needs_a_catalogue_code_and_r99_needs_text(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = claimed(decl_db, workflow, employer_a, auditor)
    for code, text in (("R00", "x"), ("R14", "x"), ("r01", "x"), ("R99", "  "), ("R01", "a\x00")):
        error = refused(
            decl_db,
            lambda conn, c=code, t=text: workflow.return_(
                conn, auditor, d.id, code=c, text=t, now=NOW
            ),
        )
        assert error.code == "bad-reason"
    with decl_db.begin() as conn:
        back = workflow.return_(
            conn, auditor, d.id, code="R01", text="姓名与身份证不符", now=NOW + 300
        )
    assert (back.status, back.return_code, back.return_text) == (
        Status.RETURNED,
        "R01",
        "姓名与身份证不符",
    )
    with decl_db.begin() as conn:
        seen = workflow.get(conn, employer_a, d.id)
        (record,) = events(conn, action="declare.return", outcome="ok")
    assert seen.return_text == "姓名与身份证不符"
    assert seen.history[-1]["note"].startswith("退回：R01")
    assert (record.event.reason, record.event.unit) == ("R01", UNIT_A)


def test_resubmission_is_a_new_version_that_keeps_the_history(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = claimed(decl_db, workflow, employer_a, auditor, name="张山")
    with decl_db.begin() as conn:
        workflow.return_(conn, auditor, d.id, code="R99", text="姓名有误", now=NOW + 300)
        v2 = workflow.resubmit(conn, employer_a, d.id, form(name="张三"), now=NOW + 600)
    assert (v2.status, v2.version, v2.previous_id) == (Status.DRAFT, 2, d.id)
    assert v2.id != d.id and v2.payload["name"] == "张三"
    assert [(h["version"], h["to"]) for h in v2.history] == [
        (1, "draft"),
        (1, "pending-review"),
        (1, "under-review"),
        (1, "returned"),
        (1, "returned"),  # "已重新申报为第2版"
        (2, "draft"),
    ]
    assert any(h["note"] == "退回：R99 其他。姓名有误" for h in v2.history)
    error = refused(
        decl_db, lambda conn: workflow.resubmit(conn, employer_a, d.id, form(), now=NOW)
    )
    assert error.code == "resubmitted"
    error = refused(decl_db, lambda conn: workflow.withdraw(conn, employer_a, d.id, now=NOW))
    assert error.code == "resubmitted"
    with decl_db.begin() as conn:
        v2 = workflow.submit(conn, employer_a, v2.id, now=NOW + 700)
        workflow.claim(conn, auditor, v2.id, now=NOW + 800)
        done = workflow.approve(conn, auditor, v2.id, now=NOW + 900)
        (record,) = events(conn, action="declare.resubmit", outcome="ok")
    assert done.status is Status.APPLIED and done.version == 2
    assert record.event.subject == v2.id and record.event.details["previous_id"] == d.id


def test_a_returned_declaration_may_be_withdrawn(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = claimed(decl_db, workflow, employer_a, auditor)
    with decl_db.begin() as conn:
        workflow.return_(conn, auditor, d.id, code="R07", text="", now=NOW)
        assert workflow.withdraw(conn, employer_a, d.id, now=NOW).status is Status.WITHDRAWN
    error = refused(
        decl_db, lambda conn: workflow.resubmit(conn, employer_a, d.id, form(), now=NOW)
    )
    assert error.code == "wrong-status"


# -- atomic approval -----------------------------------------------------------------------


def test_a_conflict_arising_after_submission_makes_approve_refuse_and_change_nothing(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    auditor: Actor,
) -> None:
    """Units A and B both declare the same new person; B's is applied first, so A's
    approval finds the person open elsewhere (V-DUP-01 at apply time)."""
    idn = make_id()
    a = claimed(decl_db, workflow, employer_a, auditor, id_number=idn)
    b = claimed(decl_db, workflow, employer_b, auditor, id_number=idn)
    with decl_db.begin() as conn:
        workflow.approve(conn, auditor, b.id, now=NOW)

    def snapshot() -> tuple[Any, ...]:
        with decl_db.begin() as conn:
            return (
                conn.execute(select(declarations).where(declarations.c.id == a.id)).one(),
                conn.execute(select(func.count()).select_from(persons)).scalar(),
                conn.execute(select(enrolments).order_by(enrolments.c.id)).all(),
                conn.execute(select(number_sequences).order_by(number_sequences.c.name)).all(),
                conn.execute(select(func.count()).select_from(vouchers)).scalar(),
            )

    before = snapshot()
    error = refused(decl_db, lambda conn: workflow.approve(conn, auditor, a.id, now=NOW + 10))
    assert isinstance(error, ApplyConflictError) and error.code == "conflict"
    assert {f.rule for f in error.findings} >= {"V-DUP-01", "V-DUP-02"}
    assert snapshot() == before
    with decl_db.begin() as conn:
        still = workflow.get(conn, auditor, a.id)
        records = events(conn, action="declare.approve", subject=a.id)
    assert still.status is Status.UNDER_REVIEW and still.voucher_no is None
    assert [(r.event.outcome, r.event.unit) for r in records] == [("refused", UNIT_A)]
    assert "V-DUP-01" in str(records[0].event.details["rules"])
    # The auditor can still return it, with the catalogue's reason.
    with decl_db.begin() as conn:
        back = workflow.return_(conn, auditor, a.id, code="R03", text="", now=NOW + 20)
    assert back.status is Status.RETURNED


def test_a_unit_suspended_after_submission_cannot_have_it_applied(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    from declare_app._schema import unit_profiles

    d = claimed(decl_db, workflow, employer_a, auditor)
    with decl_db.begin() as conn:
        conn.execute(
            update(unit_profiles).where(unit_profiles.c.unit_code == UNIT_A).values(arrears=True)
        )
    error = refused(decl_db, lambda conn: workflow.approve(conn, auditor, d.id, now=NOW))
    assert error.code == "conflict" and "欠费" in error.message


def test_approval_filed_in_time_stays_in_time(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    """Date rules judge the submission day, not the approval day (V-DATE-01)."""
    d = claimed(
        decl_db, workflow, employer_a, auditor, start_month="2024-12", hire_date="2024-12-01"
    )
    months_later = datetime(2025, 7, 1, 9, 0, tzinfo=CHINA_TIME).timestamp()
    with decl_db.begin() as conn:
        assert workflow.approve(conn, auditor, d.id, now=months_later).status is Status.APPLIED


# -- isolation -----------------------------------------------------------------------------


def test_another_units_declaration_reads_and_acts_as_not_found(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    auditor: Actor,
) -> None:
    mine = draft(decl_db, workflow, employer_a)
    returned = claimed(decl_db, workflow, employer_a, auditor, id_number=make_id(seq=125))
    with decl_db.begin() as conn:
        workflow.return_(conn, auditor, returned.id, code="R07", text="", now=NOW)
    with decl_db.begin() as conn:
        before = conn.execute(select(declarations).order_by(declarations.c.id)).all()
    calls = [
        lambda conn: workflow.get(conn, employer_b, mine.id),
        lambda conn: workflow.update_draft(conn, employer_b, mine.id, form(), now=NOW),
        lambda conn: workflow.submit(conn, employer_b, mine.id, now=NOW),
        lambda conn: workflow.withdraw(conn, employer_b, mine.id, now=NOW),
        lambda conn: workflow.resubmit(conn, employer_b, returned.id, form(), now=NOW),
        lambda conn: workflow.withdraw(conn, employer_b, returned.id, now=NOW),
        lambda conn: workflow.get(conn, employer_b, "not-an-id"),
        lambda conn: workflow.get(conn, employer_b, "0" * 32),
    ]
    for call in calls:
        error = refused(decl_db, call)
        assert isinstance(error, NotFound) and error.message == "申报不存在"
    forged = Actor(
        "employer", employer_b.name, unit_code=UNIT_B, session_id="sess-b-1", role="admin"
    )
    assert refused(decl_db, lambda conn: workflow.claim(conn, forged, mine.id, now=NOW)).code == (
        "forbidden"
    )
    with decl_db.begin() as conn:
        assert workflow.list(conn, employer_b) == []
        assert {d.id for d in workflow.list(conn, employer_a)} == {mine.id, returned.id}
        after = conn.execute(select(declarations).order_by(declarations.c.id)).all()
        refusals = events(conn, unit=UNIT_B, outcome="refused")
    assert after == before
    assert len(refusals) == len(calls) + 1
    assert all(r.event.session_id == "sess-b-1" for r in refusals)


def test_an_employer_without_a_registered_unit_or_with_staff_powers_is_refused(
    decl_db: Engine, workflow: Declarations
) -> None:
    ghost = Actor("employer", "33068299999999@sxlss", unit_code="99999999", session_id="s")
    error = refused(decl_db, lambda conn: workflow.create_draft(conn, ghost, ADD, form(), now=NOW))
    assert error.code == "unit-unknown"
    staff = Actor("staff", "zhang", role="admin")
    error = refused(decl_db, lambda conn: workflow.create_draft(conn, staff, ADD, form(), now=NOW))
    assert error.code == "forbidden"
    nobody = Actor("employer", "", unit_code=None)
    assert refused(decl_db, lambda conn: workflow.list(conn, nobody)).code == "forbidden"


def test_staff_read_any_unit_and_see_the_review_queue(
    decl_db: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    auditor: Actor,
) -> None:
    first = submitted(decl_db, workflow, employer_a)
    with decl_db.begin() as conn:
        conn.execute(update(declarations).values(submitted_at=NOW - 100))
    second = submitted(decl_db, workflow, employer_b, id_number=make_id(seq=125))
    draft(decl_db, workflow, employer_a, id_number=make_id(seq=127))
    officer = Actor("staff", "wu", role="officer")
    with decl_db.begin() as conn:
        queue = workflow.list(conn, auditor)
        assert [d.id for d in queue] == [first.id, second.id]
        assert workflow.get(conn, officer, second.id).unit_code == UNIT_B
        assert [d.id for d in workflow.list(conn, officer, status=Status.DRAFT)] != []
        (view,) = events(conn, action="declare.view", actor="staff:wu")
    assert view.event.unit == UNIT_B and view.event.outcome == "ok"
    carrier = Actor("staff", "li", role="carrier")
    assert refused(decl_db, lambda conn: workflow.get(conn, carrier, first.id)).code == "forbidden"
    assert refused(decl_db, lambda conn: workflow.list(conn, carrier)).code == "forbidden"


def test_employers_list_their_own_newest_first_with_a_status_filter(
    decl_db: Engine, workflow: Declarations, employer_a: Actor
) -> None:
    old = draft(decl_db, workflow, employer_a)
    with decl_db.begin() as conn:
        new = workflow.create_draft(conn, employer_a, ADD, form(), now=NOW + 10)
        workflow.submit(conn, employer_a, new.id, now=NOW + 10)
        assert [d.id for d in workflow.list(conn, employer_a)] == [new.id, old.id]
        pending = workflow.list(conn, employer_a, status=Status.PENDING_REVIEW)
        assert [d.id for d in pending] == [new.id]
        assert len(workflow.list(conn, employer_a, limit=1)) == 1


@pytest.mark.postgres
def test_two_approvals_racing_for_the_same_new_person_on_two_nodes(
    pg_engine: Engine,
    workflow: Declarations,
    employer_a: Actor,
    employer_b: Actor,
    auditor: Actor,
) -> None:
    """Both pass their checks before either commits; the database lets only one apply
    (uq_persons_id_number / uq_enrolments_one_open) and the other is a conflict."""
    import threading

    import declare_app
    from ssgate._schema import all_metadata

    for metadata in all_metadata():
        metadata.create_all(pg_engine)
    with pg_engine.begin() as conn:
        for code in (UNIT_A, UNIT_B):
            declare_app.register_unit(
                conn,
                code,
                name=code,
                region="330682",
                credit_code=None,
                actor="t",
                now=1.0,
                injury_risk_class=3,
            )
            declare_app.approve_unit(conn, code, actor="t", now=2.0)
    idn = make_id()
    a = claimed(pg_engine, workflow, employer_a, auditor, id_number=idn)
    b = claimed(pg_engine, workflow, employer_b, auditor, id_number=idn)
    first = pg_engine.connect()
    first.begin()
    workflow.approve(first, auditor, a.id, now=NOW)  # applied, not yet committed
    outcome: list[BaseException | Declaration] = []

    def second() -> None:
        try:
            outcome.append(
                run_recording_refusals(
                    pg_engine, lambda conn: workflow.approve(conn, auditor, b.id, now=NOW)
                )
            )
        except BaseException as e:
            outcome.append(e)

    racer = threading.Thread(target=second)
    racer.start()
    racer.join(1.0)
    assert racer.is_alive()  # waiting for the first approval's locks
    first.commit()
    first.close()
    racer.join(10.0)
    (result,) = outcome
    assert isinstance(result, ApplyConflictError), result
    with pg_engine.begin() as conn:
        assert workflow.get(conn, auditor, b.id).status is Status.UNDER_REVIEW
        assert conn.execute(select(func.count()).select_from(persons)).scalar() == 1
        assert set(conn.execute(select(enrolments.c.unit_code)).scalars()) == {UNIT_A}
        assert events(conn, action="declare.approve", subject=b.id)[0].event.outcome == "refused"


def test_transitions_from_the_wrong_state_are_refused(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, auditor: Actor
) -> None:
    d = draft(decl_db, workflow, employer_a)
    assert refused(decl_db, lambda conn: workflow.claim(conn, auditor, d.id, now=NOW)).code == (
        "wrong-status"
    )
    assert refused(
        decl_db, lambda conn: workflow.resubmit(conn, employer_a, d.id, form(), now=NOW)
    ).code == ("wrong-status")
    with decl_db.begin() as conn:
        workflow.withdraw(conn, employer_a, d.id, now=NOW)
    for call in (
        lambda conn: workflow.submit(conn, employer_a, d.id, now=NOW),
        lambda conn: workflow.withdraw(conn, employer_a, d.id, now=NOW),
        lambda conn: workflow.update_draft(conn, employer_a, d.id, form(), now=NOW),
    ):
        assert refused(decl_db, call).code == "wrong-status"
    done = claimed(decl_db, workflow, employer_a, auditor, id_number=make_id(seq=125))
    with decl_db.begin() as conn:
        workflow.approve(conn, auditor, done.id, now=NOW)
    for call in (
        lambda conn: workflow.withdraw(conn, employer_a, done.id, now=NOW),
        lambda conn: workflow.claim(conn, auditor, done.id, now=NOW),
        lambda conn: workflow.return_(conn, auditor, done.id, code="R01", text="", now=NOW),
    ):
        assert refused(decl_db, call).code == "wrong-status"


def test_a_refused_call_leaves_its_audit_event_only_when_the_caller_commits(
    decl_db: Engine, workflow: Declarations, employer_b: Actor
) -> None:
    """The contract: commit even after a DeclarationError (run_recording_refusals does)."""
    with decl_db.connect() as conn:
        with pytest.raises(NotFound):
            workflow.get(conn, employer_b, "0" * 32)
        conn.rollback()
    with decl_db.begin() as conn:
        assert events(conn, action="declare.view") == []
    refused(decl_db, lambda conn: workflow.get(conn, employer_b, "0" * 32))
    with decl_db.begin() as conn:
        (record,) = events(conn, action="declare.view")
    assert (record.event.outcome, record.event.unit, record.event.session_id) == (
        "refused",
        UNIT_B,
        "sess-b-1",
    )


NASTY: list[Any] = [
    "",
    "  ",
    "\x00",
    "a\x00b",
    "\u202e\u2028",
    "９９９９",
    "-1",
    "1e309",
    "2025-02-30",
    "9999-99",
    "X" * 5000,
    0,
    -5,
    10**30,
    1.5,
    True,
    None,
    [],
    ["110", None],
    [{"a": 1}],
    {"nested": {"deep": ["x"]}},
]


@pytest.mark.parametrize("type", list(DeclarationType))
def test_no_field_value_makes_any_type_fail_other_than_with_findings(
    decl_db: Engine, workflow: Declarations, employer_a: Actor, type: DeclarationType
) -> None:
    """Every field of every form, set to each nasty value, gives a stored draft with
    findings (or a refusal), never an exception escaping the workflow."""
    from declare_app import form_fields

    names = [f.name for f in form_fields(type)]
    assert names
    for value in NASTY:
        payload = {name: value for name in names}
        with decl_db.begin() as conn:
            d = workflow.create_draft(conn, employer_a, type, payload, now=NOW)
            assert any(f.severity == "error" for f in d.findings), (type, value)
        for name in names:
            with decl_db.begin() as conn:
                workflow.preview(conn, employer_a, type, {name: value}, now=NOW)
    lines_payload = {
        "year": "2025",
        "lines": [dict.fromkeys(("person_no", "wage"), v) for v in NASTY],
    }
    with decl_db.begin() as conn:
        workflow.preview(conn, employer_a, DeclarationType.ANNUAL_BASE, lines_payload, now=NOW)
