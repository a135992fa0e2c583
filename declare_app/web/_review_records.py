"""The review console's pages beyond the decision itself (issue 14):

* ``GET /review/<id>/attachments/<n>`` — an uploaded file, served to save
  (``Content-Disposition: attachment``, the content type its check found);
* ``POST /review/<id>/injury-decision`` — the 工伤认定决定 (number, date, outcome) on
  an accepted 工伤认定申请, its own audited step (工伤保险条例 Arts. 17, 20);
* ``POST /review/<id>/pension-award`` — the pension award after a retirement
  reduction, its own audited step.

:func:`review_extras` reads what the detail page shows of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection

import web
from declare_app._agency_records import (
    OUTCOMES,
    injury_application,
    pension_award,
    record_injury_decision,
    record_pension_award,
)
from declare_app.interfaces import (
    Actor,
    Attachment,
    Declaration,
    DeclarationError,
    DeclarationType,
    DeclarationWorkflow,
    EvidenceWorkflow,
    NotFound,
    Status,
)
from declare_app.web._evidence_pages import file_response
from declare_app.web._review import REVIEW, _call, _missing, _page, _refused, staff_actor
from web import Response, StaffCtx


@dataclass(frozen=True)
class Extras:
    attachments: list[Attachment] | None
    injury: dict[str, Any] | None
    pension: dict[str, Any] | None


def review_extras(
    conn: Connection, workflow: DeclarationWorkflow, actor: Actor, d: Declaration
) -> Extras:
    """The files, the injury application and the pension award of a declaration the
    actor has just read through the workflow (a workflow without evidence: none; an
    injury report or a reduction not applied yet: no decision to record)."""
    attachments = None
    if isinstance(workflow, EvidenceWorkflow):
        attachments = workflow.attachments(conn, actor, d.id)
    applied = d.status is Status.APPLIED
    injury = pension = None
    if applied and d.type is DeclarationType.INJURY_ACCIDENT:
        injury = injury_application(conn, d.id)
    if applied and d.type is DeclarationType.PERSON_REDUCE:
        pension = pension_award(conn, d.id)
    return Extras(attachments, injury, pension)


async def extras(ctx: StaffCtx, workflow: DeclarationWorkflow, d: Declaration) -> Extras:
    found: Extras = await _call(ctx, review_extras, workflow, staff_actor(ctx.staff), d)
    return found


def routes(workflow: DeclarationWorkflow, roles: tuple[str, ...]) -> tuple[web.Route, ...]:
    async def evidence_file(ctx: StaffCtx, id: str, n: str) -> Response:
        """One uploaded file, to save (never rendered inline); the read is audited."""
        if not isinstance(workflow, EvidenceWorkflow):
            return _page(ctx, "missing.html", "附件不存在", 404, message="该附件不存在。")
        try:
            found, data = await _call(
                ctx, workflow.attachment_file, staff_actor(ctx.staff), id, int(n)
            )
        except NotFound:
            return _page(ctx, "missing.html", "附件不存在", 404, message="该附件不存在。")
        except DeclarationError as refusal:
            return _refused(ctx, refusal)
        return file_response(found, data)

    async def not_recordable(ctx: StaffCtx, id: str, type: DeclarationType) -> Response | None:
        """The page refusing the record (None: the declaration takes it), read through
        the workflow first so that its own refusals and scoping apply."""
        try:
            d = await _call(ctx, workflow.get, staff_actor(ctx.staff), id)
        except NotFound:
            return _missing(ctx)
        except DeclarationError as refusal:
            return _refused(ctx, refusal)
        if d.status is not Status.APPLIED or d.type is not type:
            return await _again(ctx, id, f"只有已办结的{type.chinese}可以记录此项决定")
        return None

    async def injury_decision(ctx: StaffCtx, id: str) -> Response:
        stop = await not_recordable(ctx, id, DeclarationType.INJURY_ACCIDENT)
        if stop is not None:
            return stop
        try:
            decided = date.fromisoformat(ctx.form.get("decided_on", "").strip())
        except ValueError:
            return await _again(ctx, id, "决定日期应为YYYY-MM-DD")
        try:
            await _call(
                ctx,
                record_injury_decision,
                staff_actor(ctx.staff),
                id,
                decision_no=ctx.form.get("decision_no", ""),
                decided_on=decided,
                outcome=ctx.form.get("outcome", ""),
                now=ctx.now,
            )
        except NotFound:
            return _missing(ctx)
        except DeclarationError as e:
            return await _again(ctx, id, e.message)
        return web.see_other(f"{REVIEW}/{id}?done=decision")

    async def pension(ctx: StaffCtx, id: str) -> Response:
        stop = await not_recordable(ctx, id, DeclarationType.PERSON_REDUCE)
        if stop is not None:
            return stop
        try:
            await _call(
                ctx,
                record_pension_award,
                staff_actor(ctx.staff),
                id,
                from_month=ctx.form.get("from_month", ""),
                reference=ctx.form.get("reference", ""),
                now=ctx.now,
            )
        except NotFound:
            return _missing(ctx)
        except DeclarationError as e:
            return await _again(ctx, id, e.message)
        return web.see_other(f"{REVIEW}/{id}?done=award")

    async def _again(ctx: StaffCtx, id: str, message: str) -> Response:
        from declare_app.web._review import show_detail

        return await show_detail(ctx, workflow, id, error=f"操作未完成：{message}", status=409)

    return (
        web.Route("GET", f"{REVIEW}/<rid:id>/attachments/<num:n>", roles, evidence_file),
        web.Route("POST", f"{REVIEW}/<rid:id>/injury-decision", roles, injury_decision),
        web.Route("POST", f"{REVIEW}/<rid:id>/pension-award", roles, pension),
    )


__all__ = ["OUTCOMES", "Extras", "extras", "review_extras", "routes"]
