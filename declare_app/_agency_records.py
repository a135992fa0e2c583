"""The agency's own decisions, recorded by staff as steps of their own (issue 14).

Neither is a consequence of approving a declaration, because neither is the
employer's to declare nor the auditor's approval to imply:

* :func:`record_injury_decision` — the 工伤认定决定 (number, date, outcome) of the
  社会保险行政部门 on an accepted 工伤认定申请 (工伤保险条例 Arts. 17, 20: approval of
  a 工伤事故申报 is only its acceptance, 受理);
* :func:`record_pension_award` — the award of a basic pension (养老保险待遇核定) to a
  person whose 人员减少 for retirement (reason 31) was applied: the reduction ends the
  contributions, the award is the agency's decision (社会保险法 Art. 16).

Each runs inside the caller's transaction, in a savepoint; it adds a history line to
the declaration it belongs to and one audit event, and a refusal
(:class:`DeclarationError`) is audited too and changes nothing — the caller commits
either way (as with the workflow).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update

import audit
from declare_app._china_time import CHINA_TIME
from declare_app._schema import (
    declaration_events,
    declarations,
    injury_applications,
    injury_cases,
    pension_awards,
    persons,
)
from declare_app.interfaces import Actor, DeclarationError, NotFound

STAFF_ROLES: Final = frozenset({"auditor", "admin"})
OUTCOMES: Final = {"recognised": "认定为工伤（视同工伤）", "not-recognised": "不予认定工伤"}
DECISION_DAYS: Final = 60  # 工伤保险条例 Art. 20

_NUMBER: Final = re.compile(r"[0-9A-Za-z\u4e00-\u9fff〔〕\[\]()（）第号字\-]{1,32}")
_REFERENCE: Final = re.compile(r"[0-9A-Za-z\u4e00-\u9fff〔〕\[\]()（）第号字\-]{1,64}")
_MONTH: Final = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_ID: Final = re.compile(r"[0-9a-f]{32}")


@contextmanager
def _step(conn: Connection, actor: Actor, action: str, subject: str, now: float) -> Iterator[None]:
    savepoint = conn.begin_nested()
    try:
        if actor.kind != "staff" or not actor.name or actor.role not in STAFF_ROLES:
            raise DeclarationError("forbidden", "无权执行该操作")
        yield
    except DeclarationError as refusal:
        savepoint.rollback()
        _audit(
            conn,
            actor,
            action,
            subject,
            now,
            outcome="refused",
            reason=f"{refusal.code}: {refusal.message}",
        )
        raise
    except BaseException:
        savepoint.rollback()
        raise
    else:
        savepoint.commit()


def _audit(
    conn: Connection,
    actor: Actor,
    action: str,
    subject: str,
    now: float,
    *,
    outcome: str,
    reason: str = "",
    unit: str = "",
    details: dict[str, audit.DetailValue] | None = None,
) -> None:
    audit.append(
        conn,
        audit.AuditEvent(
            at=now,
            actor=f"staff:{actor.name or '?'}"[:255],
            action=action,
            subject=subject[:255] or "-",
            outcome=outcome,
            reason=reason[:1000],
            unit=unit,
            session_id="",
            details=details or {},
        ),
    )


def _applied(conn: Connection, declaration_id: str, type_slug: str) -> Any:
    if not _ID.fullmatch(declaration_id):
        raise NotFound()
    row = conn.execute(select(declarations).where(declarations.c.id == declaration_id)).first()
    if row is None:
        raise NotFound()
    if row.type != type_slug or row.status != "applied":
        raise DeclarationError("wrong-status", "只有已办结的该类申报可以记录此项决定")
    return row


def _history(conn: Connection, actor: Actor, declaration_id: str, now: float, note: str) -> None:
    conn.execute(
        insert(declaration_events).values(
            declaration_id=declaration_id,
            at=now,
            actor_kind="staff",
            actor_name=actor.name,
            session_id=None,
            from_status="applied",
            to_status="applied",
            note=note[:1000],
        )
    )


def _today(now: float) -> date:
    return datetime.fromtimestamp(now, CHINA_TIME).date()


def injury_application(conn: Connection, declaration_id: str) -> dict[str, Any] | None:
    """The accepted application of an applied 工伤事故申报 and its decision, if any."""
    row = conn.execute(
        select(injury_applications).where(injury_applications.c.declaration_id == declaration_id)
    ).first()
    if row is None:
        return None
    found: dict[str, Any] = {
        "application_no": row.application_no,
        "accepted_on": row.accepted_on,
        "decision": None,
    }
    if row.decision_no is not None:
        case = conn.execute(
            select(injury_cases).where(injury_cases.c.decision_no == row.decision_no)
        ).one()
        found["decision"] = {
            "decision_no": case.decision_no,
            "decided_on": case.decided_on,
            "outcome": OUTCOMES.get(case.outcome, case.outcome),
            "recorded_by": case.recorded_by,
        }
    return found


def record_injury_decision(
    conn: Connection,
    actor: Actor,
    declaration_id: str,
    *,
    decision_no: str,
    decided_on: date,
    outcome: str,
    now: float,
) -> dict[str, Any]:
    """The 工伤认定决定 on the application accepted by approving *declaration_id*."""
    action = "declare.injury-decision"
    with _step(conn, actor, action, declaration_id, now):
        row = _applied(conn, declaration_id, "injury-accident")
        number = decision_no.strip() if isinstance(decision_no, str) else ""
        if not _NUMBER.fullmatch(number):
            raise DeclarationError("bad-decision", "决定书编号应为1至32个字符（汉字、字母、数字）")
        if outcome not in OUTCOMES:
            raise DeclarationError("bad-decision", "请选择认定结论")
        application = conn.execute(
            select(injury_applications).where(
                injury_applications.c.declaration_id == declaration_id
            )
        ).first()
        if application is None:
            raise DeclarationError("no-application", "该申报没有受理记录（本系统升级前办结）")
        if application.decision_no is not None:
            raise DeclarationError(
                "decided", f"该申请已记录工伤认定决定（{application.decision_no}）"
            )
        if decided_on < application.accepted_on or decided_on > _today(now):
            raise DeclarationError("bad-decision", "决定日期应在受理日期与今天之间")
        taken = conn.execute(
            select(injury_cases.c.decision_no).where(injury_cases.c.decision_no == number)
        ).first()
        if taken is not None:
            raise DeclarationError("bad-decision", "该决定书编号已被使用")
        conn.execute(
            insert(injury_cases).values(
                decision_no=number,
                person_number=application.person_number,
                unit_code=application.unit_code,
                accident_date=application.accident_date,
                diagnosis_date=application.diagnosis_date,
                decided_on=decided_on,
                late=application.late,
                declaration_id=declaration_id,
                outcome=outcome,
                application_no=application.application_no,
                recorded_by=actor.name,
                recorded_at=now,
            )
        )
        conn.execute(
            update(injury_applications)
            .where(injury_applications.c.application_no == application.application_no)
            .values(decision_no=number)
        )
        overdue = (decided_on - application.accepted_on).days > DECISION_DAYS
        _history(
            conn,
            actor,
            declaration_id,
            now,
            f"记录工伤认定决定：{number}，{decided_on.isoformat()}，{OUTCOMES[outcome]}"
            + (f"（超过受理后{DECISION_DAYS}日）" if overdue else ""),
        )
        _audit(
            conn,
            actor,
            action,
            declaration_id,
            now,
            outcome="ok",
            unit=row.unit_code,
            details={"decision_no": number, "outcome": outcome, "overdue": overdue},
        )
        return {"decision_no": number, "decided_on": decided_on.isoformat(), "outcome": outcome}


def pension_award(conn: Connection, declaration_id: str) -> dict[str, Any] | None:
    """Whether *declaration_id* is a retirement reduction, and its award if recorded:
    None (not a retirement), ``{"award": None}`` or ``{"award": {...}}``."""
    row = conn.execute(
        select(declarations.c.type, declarations.c.payload, declarations.c.result).where(
            declarations.c.id == declaration_id
        )
    ).first()
    if row is None or row.type != "person-reduce" or not row.result:
        return None
    if json.loads(row.payload).get("reason") != "31":
        return None
    person_number = json.loads(row.result).get("person_no")
    award = conn.execute(
        select(pension_awards).where(pension_awards.c.person_number == person_number)
    ).first()
    if award is None:
        return {"award": None}
    return {
        "award": {
            "from_month": award.from_month,
            "reference": award.reference,
            "recorded_by": award.recorded_by,
        }
    }


def record_pension_award(
    conn: Connection,
    actor: Actor,
    declaration_id: str,
    *,
    from_month: str,
    reference: str,
    now: float,
) -> dict[str, Any]:
    """The agency's pension award to the person of an applied retirement reduction;
    only this marks the person as receiving a pension."""
    action = "declare.pension-award"
    with _step(conn, actor, action, declaration_id, now):
        row = _applied(conn, declaration_id, "person-reduce")
        payload, result = json.loads(row.payload), json.loads(row.result or "{}")
        if payload.get("reason") != "31":
            raise DeclarationError("wrong-status", "只有因退休减员的申报可以记录养老金待遇核定")
        month = from_month.strip() if isinstance(from_month, str) else ""
        if not _MONTH.fullmatch(month):
            raise DeclarationError("bad-award", "待遇开始年月应为YYYY-MM")
        ref = reference.strip() if isinstance(reference, str) else ""
        if not _REFERENCE.fullmatch(ref):
            raise DeclarationError("bad-award", "核定文号应为1至64个字符（汉字、字母、数字）")
        person_number = result.get("person_no")
        if not isinstance(person_number, str):
            raise DeclarationError("no-person", "该申报没有人员记录")
        done = conn.execute(
            select(pension_awards.c.id).where(pension_awards.c.person_number == person_number)
        ).first()
        if done is not None:
            raise DeclarationError("awarded", "该人员已记录养老金待遇核定")
        conn.execute(
            insert(pension_awards).values(
                person_number=person_number,
                from_month=month,
                reference=ref,
                declaration_id=declaration_id,
                recorded_by=actor.name,
                recorded_at=now,
            )
        )
        conn.execute(
            update(persons)
            .where(persons.c.person_number == person_number)
            .values(receiving_pension=True, updated_at=now)
        )
        _history(
            conn, actor, declaration_id, now, f"记录养老金待遇核定：{ref}，自{month}起享受待遇"
        )
        _audit(
            conn,
            actor,
            action,
            declaration_id,
            now,
            outcome="ok",
            unit=row.unit_code,
            details={"from_month": month, "reference": ref},
        )
        return {"from_month": month, "reference": ref}
