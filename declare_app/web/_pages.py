"""The employer's HTML pages: home, 申报中心, the forms with preview, detail, voucher.

Every form works without script: a form posts its fields with an ``action`` button
(``preview`` 预览, ``save`` 保存草稿, ``submit`` 提交 from the preview page, ``edit``
返回修改); the preview page carries the typed input in hidden fields.  Bad input and
the workflow's error findings bring the form back with each message beside its
field; a successful save or submit redirects (303) to the declaration's page.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection

from declare_app._china_time import local_datetime
from declare_app._evidence import MAX_FILE_BYTES
from declare_app._rules import FORM_SPECS, FormSpec
from declare_app._voucher_pdf import VoucherView, voucher_pdf
from declare_app.interfaces import (
    Actor,
    Attachment,
    Declaration,
    DeclarationType,
    DeclarationWorkflow,
    EvidenceWorkflow,
    Finding,
    InvalidDeclaration,
    Status,
)
from declare_app.web._app import (
    Ctx,
    HttpError,
    Response,
    UnitNames,
    redirect,
    status_for,
    status_param,
    workflow_refusal,
)
from declare_app.web._input import ParsedPayload, RawValue, payload_from_form, raw_from_payload
from declare_app.web._templates import style_sheet
from declare_app.web._views import (
    MAX_SHOWN_LINES,
    STATUS_ORDER,
    display_sections,
    form_view,
    general_findings,
    hidden_fields,
    history_rows,
    voucher_details,
)

MAX_VERSIONS = 50  # how far back the detail page follows a resubmission chain

# The materials each form asks for (工伤保险条例 Art. 18; DOMAIN §5.4, §5.6, §5.7):
# offered as suggestions beside the upload, any short name is accepted.
EVIDENCE_LABELS: Mapping[DeclarationType, tuple[str, ...]] = {
    DeclarationType.INJURY_ACCIDENT: (
        "劳动合同或劳动关系证明",
        "医疗诊断证明书",
        "事故报告",
        "身份证复印件",
        "延期批准文件",
    ),
    DeclarationType.INJURY_APPRAISAL: ("工伤认定决定书", "病历材料", "检查报告"),
    DeclarationType.PERSON_REDUCE: ("解除劳动合同证明", "退休审批表", "死亡证明"),
    DeclarationType.PERSON_ADD: ("劳动合同",),
    DeclarationType.UNIT_CHANGE: ("营业执照", "变更通知书"),
}

FLASH = {
    "saved": "草稿已保存。",
    "submitted": "已提交，请等待经办机构审核。",
    "withdrawn": "已撤回。",
    "resubmitted": "已重新申报，请等待经办机构审核。",
    "attached": "附件已上传。",
    "detached": "附件已删除。",
}

_STYLE = style_sheet()


def message_page(
    ctx: Ctx,
    status: int,
    title: str,
    message: str,
    *,
    back: str = "/declarations",
    back_label: str = "返回申报中心",
    details: Sequence[str] = (),
) -> Response:
    return ctx.page(
        "message.html",
        status,
        title=title,
        message=message,
        details=list(details),
        back=back,
        back_label=back_label,
    )


def spec_for(slug: str) -> FormSpec:
    for t in DeclarationType:
        if t.value == slug:
            return FORM_SPECS[t]
    raise HttpError(404, "not-found", "没有这种申报类型")


# -- reading a declaration with its earlier versions (one transaction) -----------------------


def with_versions(
    conn: Connection, workflow: DeclarationWorkflow, actor: Actor, declaration_id: str
) -> tuple[Declaration, list[Declaration]]:
    """A declaration and the versions it resubmits, newest first."""
    decl = workflow.get(conn, actor, declaration_id)
    versions = [decl]
    seen = {decl.id}
    current = decl
    while current.previous_id and current.previous_id not in seen and len(versions) < MAX_VERSIONS:
        current = workflow.get(conn, actor, current.previous_id)
        seen.add(current.id)
        versions.append(current)
    return decl, versions


def with_evidence(
    conn: Connection, workflow: DeclarationWorkflow, actor: Actor, declaration_id: str
) -> tuple[Declaration, list[Declaration], list[Attachment] | None]:
    """:func:`with_versions` and the version's attachments (None: the workflow keeps
    no evidence)."""
    decl, versions = with_versions(conn, workflow, actor, declaration_id)
    if not isinstance(workflow, EvidenceWorkflow):
        return decl, versions, None
    return decl, versions, workflow.attachments(conn, actor, declaration_id)


# -- simple pages ---------------------------------------------------------------------------


async def style(ctx: Ctx) -> Response:
    return Response(200, _STYLE, b"text/css; charset=utf-8")


def home_data(
    conn: Connection, workflow: DeclarationWorkflow, actor: Actor, unit_names: UnitNames | None
) -> tuple[list[Declaration], str | None]:
    """The unit's declarations and its registered name (one transaction)."""
    decls = workflow.list(conn, actor)
    name = unit_names(conn, actor.unit_code) if unit_names and actor.unit_code else None
    return decls, name


async def no_icon(ctx: Ctx) -> Response:
    """Browsers ask for /favicon.ico on every page; there is none (and no 404 page
    for it)."""
    return Response(204, b"")


async def home(ctx: Ctx) -> Response:
    decls, unit_name = await ctx.run(home_data, ctx.app.workflow, ctx.actor, ctx.app.unit_names)
    counts = [(s, sum(1 for d in decls if d.status is s)) for s in STATUS_ORDER]
    return ctx.page(
        "home.html", counts=counts, specs=list(FORM_SPECS.values()), unit_name=unit_name or ""
    )


async def choose_type(ctx: Ctx) -> Response:
    return ctx.page("types.html", specs=list(FORM_SPECS.values()))


async def inbox(ctx: Ctx) -> Response:
    selected = status_param(ctx)
    decls: list[Declaration] = await ctx.run(ctx.app.workflow.list, ctx.actor, status=selected)
    shown = [selected] if selected is not None else list(STATUS_ORDER)
    groups = [(s, [d for d in decls if d.status is s]) for s in shown]
    return ctx.page("inbox.html", groups=groups, statuses=STATUS_ORDER, selected=selected)


# -- forms ----------------------------------------------------------------------------------


@dataclass
class FormTarget:
    """Where a form posts and what saving or submitting it does."""

    spec: FormSpec
    heading: str
    action_url: str
    cancel_url: str
    save: Callable[[dict[str, Any]], Awaitable[Declaration]]
    returned: Declaration | None = None
    done: str = "submitted"


def _form(
    ctx: Ctx,
    target: FormTarget,
    raw: Mapping[str, RawValue],
    findings: tuple[Finding, ...] = (),
    *,
    status: int = 200,
    notice: str = "",
) -> Response:
    return ctx.page(
        "form.html",
        status,
        heading=target.heading,
        form=form_view(target.spec, raw, findings),
        action_url=target.action_url,
        cancel_url=target.cancel_url,
        returned=target.returned,
        notice=notice,
    )


async def _preview(ctx: Ctx, target: FormTarget, parsed: ParsedPayload) -> Response:
    spec = target.spec
    normalised, findings = await ctx.run(
        ctx.app.workflow.preview, ctx.actor, spec.type, parsed.payload, now=ctx.now()
    )
    findings = tuple(findings)
    if any(f.severity == "error" for f in findings):
        return _form(ctx, target, parsed.raw, findings, status=422)
    general = general_findings(spec, findings)
    return ctx.page(
        "preview.html",
        spec=spec,
        sections=display_sections(spec, normalised, findings, max_lines=MAX_SHOWN_LINES),
        general_errors=[f.message for f in general if f.severity == "error"],
        general_warnings=[f.message for f in general if f.severity != "error"],
        warning_count=sum(1 for f in findings if f.severity != "error"),
        hidden_pairs=hidden_fields(parsed.raw),
        action_url=target.action_url,
    )


async def _save(ctx: Ctx, target: FormTarget, parsed: ParsedPayload) -> Response:
    decl = await target.save(parsed.payload)
    return redirect(f"/declarations/{quote(decl.id, safe='')}?msg=saved")


async def _submit(ctx: Ctx, target: FormTarget, parsed: ParsedPayload) -> Response:
    """Store (create, update or resubmit), then submit in a transaction of its own: a
    refused submit leaves the stored draft, shown with the reason, and both the draft
    and the refusal are on record."""
    decl = await target.save(parsed.payload)
    return await _transition(ctx, decl.id, ctx.app.workflow.submit, target.done)


async def _edit(ctx: Ctx, target: FormTarget, parsed: ParsedPayload) -> Response:
    return _form(ctx, target, parsed.raw)


_FORM_ACTIONS: dict[str, Callable[[Ctx, FormTarget, ParsedPayload], Awaitable[Response]]] = {
    "preview": _preview,
    "save": _save,
    "submit": _submit,
    "edit": _edit,
}


async def _form_post(ctx: Ctx, target: FormTarget) -> Response:
    """One post of a form: its ``action`` button decides (default: preview)."""
    act = _FORM_ACTIONS.get(ctx.form_value("action") or "preview")
    if act is None:
        raise HttpError(400, "bad-action", "未知的操作")
    parsed = payload_from_form(target.spec, ctx.form)
    if not parsed.ok:
        return _form(ctx, target, parsed.raw, parsed.errors, status=422)
    try:
        return await act(ctx, target, parsed)
    except InvalidDeclaration as e:
        return _form(ctx, target, parsed.raw, e.findings, status=422)
    except Exception as e:
        refusal = workflow_refusal(e)
        if refusal is None or status_for(refusal) == 404:
            raise
        return _form(ctx, target, parsed.raw, status=status_for(refusal), notice=refusal.message)


def _new_target(ctx: Ctx, spec: FormSpec) -> FormTarget:
    workflow = ctx.app.workflow

    async def save(payload: dict[str, Any]) -> Declaration:
        d: Declaration = await ctx.run(
            workflow.create_draft, ctx.actor, spec.type, payload, now=ctx.now()
        )
        return d

    return FormTarget(
        spec=spec,
        heading=spec.title,
        action_url=f"/declarations/new/{spec.type.value}",
        cancel_url="/declarations",
        save=save,
    )


async def new_form(ctx: Ctx, type: str) -> Response:
    spec = spec_for(type)
    return _form(ctx, _new_target(ctx, spec), raw_from_payload(spec, None))


async def new_post(ctx: Ctx, type: str) -> Response:
    return await _form_post(ctx, _new_target(ctx, spec_for(type)))


async def _get(ctx: Ctx, declaration_id: str) -> Declaration:
    d: Declaration = await ctx.run(ctx.app.workflow.get, ctx.actor, declaration_id)
    return d


def _edit_target(ctx: Ctx, decl: Declaration) -> FormTarget:
    workflow = ctx.app.workflow

    async def save(payload: dict[str, Any]) -> Declaration:
        d: Declaration = await ctx.run(
            workflow.update_draft, ctx.actor, decl.id, payload, now=ctx.now()
        )
        return d

    return FormTarget(
        spec=FORM_SPECS[decl.type],
        heading=f"修改草稿：{decl.type.chinese}",
        action_url=f"/declarations/{decl.id}/edit",
        cancel_url=f"/declarations/{decl.id}",
        save=save,
    )


def _not_in_state(ctx: Ctx, decl: Declaration, message: str) -> Response:
    return message_page(
        ctx, 409, "无法办理", message, back=f"/declarations/{decl.id}", back_label="返回申报详情"
    )


async def edit_form(ctx: Ctx, id: str) -> Response:
    decl = await _get(ctx, id)
    if decl.status is not Status.DRAFT:
        return _not_in_state(
            ctx, decl, f"该申报当前状态为“{decl.status.chinese}”，只有草稿可以修改。"
        )
    target = _edit_target(ctx, decl)
    return _form(ctx, target, raw_from_payload(target.spec, decl.payload), decl.findings)


async def edit_post(ctx: Ctx, id: str) -> Response:
    decl = await _get(ctx, id)
    return await _form_post(ctx, _edit_target(ctx, decl))


def _resubmit_target(ctx: Ctx, decl: Declaration) -> FormTarget:
    workflow = ctx.app.workflow

    async def save(payload: dict[str, Any]) -> Declaration:
        d: Declaration = await ctx.run(
            workflow.resubmit, ctx.actor, decl.id, payload, now=ctx.now()
        )
        return d

    return FormTarget(
        spec=FORM_SPECS[decl.type],
        heading=f"重新申报：{decl.type.chinese}",
        action_url=f"/declarations/{decl.id}/resubmit",
        cancel_url=f"/declarations/{decl.id}",
        save=save,
        returned=decl,
        done="resubmitted",
    )


async def resubmit_form(ctx: Ctx, id: str) -> Response:
    decl = await _get(ctx, id)
    if decl.status is not Status.RETURNED:
        return _not_in_state(
            ctx, decl, f"该申报当前状态为“{decl.status.chinese}”，只有已退回的申报可以重新申报。"
        )
    target = _resubmit_target(ctx, decl)
    return _form(ctx, target, raw_from_payload(target.spec, decl.payload))


async def resubmit_post(ctx: Ctx, id: str) -> Response:
    decl = await _get(ctx, id)
    return await _form_post(ctx, _resubmit_target(ctx, decl))


# -- one declaration ------------------------------------------------------------------------


def _detail(
    ctx: Ctx,
    decl: Declaration,
    versions: list[Declaration],
    attachments: list[Attachment] | None = None,
    *,
    findings: tuple[Finding, ...] | None = None,
    status: int = 200,
    notice: str = "",
) -> Response:
    spec = FORM_SPECS[decl.type]
    shown = decl.findings if findings is None else findings
    general = general_findings(spec, shown)
    flash = FLASH.get(ctx.query_value("msg") or "", "")
    return ctx.page(
        "detail.html",
        status,
        d=decl,
        sections=display_sections(spec, decl.payload, shown, max_lines=MAX_SHOWN_LINES),
        general_errors=[f.message for f in general if f.severity == "error"],
        general_warnings=[f.message for f in general if f.severity != "error"],
        has_errors=any(f.severity == "error" for f in shown),
        history=history_rows(decl.history),
        versions=versions if len(versions) > 1 else [],
        attachments=attachments,
        evidence_labels=EVIDENCE_LABELS.get(decl.type, ()),
        max_evidence_mib=MAX_FILE_BYTES >> 20,
        flash=flash,
        notice=notice,
    )


async def detail(ctx: Ctx, id: str) -> Response:
    decl, versions, attachments = await ctx.run(with_evidence, ctx.app.workflow, ctx.actor, id)
    return _detail(ctx, decl, versions, attachments)


async def _transition(ctx: Ctx, id: str, fn: Callable[..., Any], done: str) -> Response:
    try:
        decl: Declaration = await ctx.run(fn, ctx.actor, id, now=ctx.now())
    except InvalidDeclaration as e:
        current, versions, atts = await ctx.run(with_evidence, ctx.app.workflow, ctx.actor, id)
        return _detail(
            ctx, current, versions, atts, findings=e.findings, status=422, notice=e.message
        )
    except Exception as e:
        refusal = workflow_refusal(e)
        if refusal is None or status_for(refusal) == 404:
            raise
        current, versions, atts = await ctx.run(with_evidence, ctx.app.workflow, ctx.actor, id)
        return _detail(
            ctx, current, versions, atts, status=status_for(refusal), notice=refusal.message
        )
    return redirect(f"/declarations/{quote(decl.id, safe='')}?msg={done}")


async def submit(ctx: Ctx, id: str) -> Response:
    return await _transition(ctx, id, ctx.app.workflow.submit, "submitted")


async def withdraw(ctx: Ctx, id: str) -> Response:
    return await _transition(ctx, id, ctx.app.workflow.withdraw, "withdrawn")


def with_unit_name(
    conn: Connection,
    workflow: DeclarationWorkflow,
    actor: Actor,
    declaration_id: str,
    unit_names: UnitNames | None,
) -> tuple[Declaration, str]:
    """A declaration and its unit's registered name (``—`` when unknown)."""
    decl = workflow.get(conn, actor, declaration_id)
    name = unit_names(conn, decl.unit_code) if unit_names else None
    return decl, name or "—"


async def voucher(ctx: Ctx, id: str) -> Response:
    decl, unit_name = await ctx.run(
        with_unit_name, ctx.app.workflow, ctx.actor, id, ctx.app.unit_names
    )
    if decl.status is not Status.APPLIED or not decl.voucher_no:
        return message_page(
            ctx,
            404,
            "没有办理凭证",
            "该申报尚未办结，没有办理凭证。",
            back=f"/declarations/{decl.id}",
            back_label="返回申报详情",
        )
    spec = FORM_SPECS[decl.type]
    return ctx.page(
        "voucher.html",
        d=decl,
        unit_name=unit_name,
        agency_name=ctx.app.agency_name,
        # The ID numbers masked as on the PDF: a voucher is printed and handed on.
        sections=display_sections(
            spec, decl.payload, skip_empty=True, max_lines=MAX_SHOWN_LINES, mask_ids=True
        ),
    )


def voucher_document(
    conn: Connection,
    workflow: DeclarationWorkflow,
    actor: Actor,
    declaration_id: str,
    unit_names: UnitNames | None,
    *,
    agency_name: str = "—",
) -> tuple[str, bytes] | None:
    """(voucher number, the one-page PDF) of an applied declaration, else None; read
    and drawn on the pool, off the reactor."""
    decl = workflow.get(conn, actor, declaration_id)
    if decl.status is not Status.APPLIED or not decl.voucher_no or decl.decided_at is None:
        return None
    unit_name = unit_names(conn, decl.unit_code) if unit_names else None
    view = VoucherView(
        voucher_no=decl.voucher_no,
        declaration_id=decl.id,
        declaration_type=decl.type,
        unit_code=decl.unit_code,
        unit_name=unit_name or "—",
        applied_at=local_datetime(decl.decided_at),
        submitted_at=None if decl.submitted_at is None else local_datetime(decl.submitted_at),
        agency_name=agency_name,
        auditor=decl.decided_by or "—",
        session_id=decl.created_session,
        details=voucher_details(FORM_SPECS[decl.type], decl.payload, decl.result),
    )
    return decl.voucher_no, voucher_pdf(view)


async def voucher_pdf_download(ctx: Ctx, id: str) -> Response:
    found = await ctx.run(
        voucher_document,
        ctx.app.workflow,
        ctx.actor,
        id,
        ctx.app.unit_names,
        agency_name=ctx.app.agency_name,
    )
    if found is None:
        raise HttpError(404, "no-voucher", "该申报尚未办结，没有办理凭证。")
    number, pdf = found
    name = re.sub(r"[^A-Za-z0-9_-]", "_", number)[:64] or "voucher"
    return Response(
        200,
        pdf,
        b"application/pdf",
        ((b"Content-Disposition", f'attachment; filename="voucher-{name}.pdf"'.encode()),),
    )
