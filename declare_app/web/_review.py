"""The agency auditors' pages in the staff console: review queue, detail, decisions.

A console section (:func:`review_section`, role ``auditor``; admin too), its pages
Jinja templates under ``templates/review`` in the console layout:

* ``GET /review`` — the queue: 待审核 (unit, type, submitted time, gateway session)
  and 审核中 (who claimed it); ``?status=applied`` / ``returned`` lists decided ones;
* ``GET /review/<id>`` — the declaration: payload, findings, history, and the actions
  its state allows;
* ``POST /review/<id>/claim``, ``/approve``, ``/return`` (reason code R01-R99 from the
  DOMAIN §7 catalogue, text required for R99).

Everything goes through :class:`declare_app.interfaces.DeclarationWorkflow` with an
``Actor(kind="staff", name=…, role=…)``, one transaction per call on the database
pool; the workflow checks the state, writes the audit events and refuses what is not
allowed.  The console's shell (:class:`web.ConsoleShell`) has already checked login,
role and CSRF.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from jinja2 import PackageLoader
from sqlalchemy import Connection

import web
from auth.console import StaffMember
from declare_app import _vocabulary as vocabulary
from declare_app._china_time import CHINA_TIME, local_text
from declare_app._contributions import RateTable
from declare_app._ledger import declaration_month, unverified_in_force
from declare_app._retirement import YearMonth
from declare_app._rules import FORM_SPECS
from declare_app.interfaces import (
    Actor,
    Declaration,
    DeclarationError,
    DeclarationWorkflow,
    NotFound,
    Status,
)
from declare_app.web._views import display_sections, result_rows
from web import Response, StaffCtx

RETURN_REASONS: Mapping[str, str] = vocabulary.RETURN_REASONS  # DOMAIN §7
FREE_TEXT_CODE = vocabulary.FREE_TEXT_REASON
MAX_RETURN_TEXT = 500
MAX_PAYLOAD_ROWS = 500  # rows of a batch shown on the page

# Declaration ids are opaque (>= 64 random bits); anything else is not one of ours.
_ID = r"[A-Za-z0-9_-]{1,64}"
_T = TypeVar("_T")

_DONE = {
    "claimed": "已领取，请审核后作出决定。",
    "approved": "已审核通过并办结。",
    "returned": "已退回，单位将看到退回原因。",
    "decision": "已记录工伤认定决定。",
    "award": "已记录养老金待遇核定。",
}
_LISTS = {"applied": Status.APPLIED, "returned": Status.RETURNED}

_SEVERITY = {"error": "错误", "warning": "提示"}


def when(ts: float | None) -> str:
    """Epoch seconds as Beijing time, ``2026-01-01 08:00``; ``—`` for none."""
    if ts is None:
        return "—"
    try:
        return local_text(ts)
    except (OverflowError, OSError, ValueError):
        return "—"


def _shown(value: Any) -> str:
    """A payload or history value as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str | int | float):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _rows(value: Any) -> tuple[list[str], list[list[str]]] | None:
    """A list of mappings (a batch) as (columns, rows of text); None for anything else."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        return None
    if not all(isinstance(item, Mapping) for item in value):
        return None
    columns: list[str] = []
    for item in value:
        for key in item:
            if str(key) not in columns:
                columns.append(str(key))
    rows = [[_shown(item.get(c)) for c in columns] for item in value]
    return columns, rows


@dataclass(frozen=True)
class Lines:
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    note: str


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    lines: Lines | None = None
    errors: Sequence[str] = ()
    warnings: Sequence[str] = ()


def _lines(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Lines:
    count = len(rows)
    note = (
        f"共 {count} 行，仅显示前 {MAX_PAYLOAD_ROWS} 行"
        if count > MAX_PAYLOAD_ROWS
        else f"共 {count} 行"
    )
    return Lines(columns, rows[:MAX_PAYLOAD_ROWS], note)


def payload_sections(d: Declaration) -> list[tuple[str, list[Row]]]:
    """The payload as the unit saw it in its form (the employer web's labels, choice
    texts and sections, with each field's findings), else plain key/value rows."""
    spec = FORM_SPECS.get(d.type)
    if spec is not None:
        return [
            (
                section.title,
                [
                    Row(
                        r.label,
                        r.value,
                        None if r.lines is None else _lines(r.lines.columns, r.lines.rows),
                        r.errors,
                        r.warnings,
                    )
                    for r in section.rows
                ],
            )
            for section in display_sections(spec, d.payload, d.findings)
        ]
    rows = []
    for key, value in d.payload.items():
        batch = _rows(value)
        if batch is None:
            rows.append(Row(str(key), _shown(value)))
        else:
            rows.append(Row(str(key), "", _lines(*batch)))
    return [("", rows)]


def _status_text(value: Any) -> str:
    try:
        return Status(value).chinese
    except ValueError:
        return _shown(value)


_HISTORY_KEYS = frozenset(
    {"at", "declaration_id", "version", "actor_kind", "actor", "session_id", "from", "to", "note"}
)


def _history_line(entry: Mapping[str, Any]) -> dict[str, str]:
    """One transition as the history table shows it: 时间, 版本, 操作人, 状态, 说明."""
    at = entry.get("at")
    actor = _shown(entry.get("actor"))
    if entry.get("actor_kind") == "employer":
        actor = f"单位 {actor}"
        if entry.get("session_id"):
            actor += f"（会话 {entry['session_id']}）"
    change = _status_text(entry.get("to")) if entry.get("to") is not None else ""
    if entry.get("from") is not None:
        change = f"{_status_text(entry['from'])} → {change}"
    note = _shown(entry["note"]) if entry.get("note") is not None else ""
    extra = "；".join(f"{k}：{_shown(v)}" for k, v in entry.items() if k not in _HISTORY_KEYS)
    return {
        "at": when(at) if isinstance(at, int | float) else _shown(at),
        "version": _shown(entry.get("version")) if entry.get("version") is not None else "",
        "actor": actor,
        "change": change,
        "note": "；".join(t for t in (note, extra) if t),
    }


def recording_refusals(
    conn: Connection, call: Callable[..., _T], *args: Any, **kwargs: Any
) -> _T | DeclarationError:
    """``call(conn, ...)``, with a refusal returned instead of raised: the workflow has
    appended its ``refused`` audit event to *conn*, and the transaction must commit to
    keep it (the DeclarationWorkflow contract)."""
    try:
        return call(conn, *args, **kwargs)
    except DeclarationError as refusal:
        return refusal


def staff_actor(staff: StaffMember) -> Actor:
    return Actor(kind="staff", name=staff.name, role=staff.role)


def check_return(code: str, text: str) -> dict[str, str]:
    """Field errors (Chinese) for a return: code from the catalogue, text bounded,
    text required for R99."""
    errors: dict[str, str] = {}
    if code not in RETURN_REASONS:
        errors["code"] = "请选择退回原因"
    problem = web.note_problem(text, what="退回说明", max_chars=MAX_RETURN_TEXT)
    if problem:
        errors["text"] = problem
    elif code == FREE_TEXT_CODE and not text:
        errors["text"] = "选择 R99（其他）时必须填写退回说明"
    return errors


REVIEW = "/review"


def _page(ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any) -> Response:
    return ctx.page(
        f"review/{template}",
        status,
        title=title,
        current=REVIEW,
        when=when,
        reasons=RETURN_REASONS,
        severity=_SEVERITY,
        max_text=MAX_RETURN_TEXT,
        **values,
    )


async def _call(ctx: StaffCtx, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """One workflow call in its own transaction on the database pool, committed even
    when the workflow refuses (then the refusal is raised here)."""
    result: _T | DeclarationError = await ctx.runner.run(recording_refusals, call, *args, **kwargs)
    if isinstance(result, DeclarationError):
        raise result
    return result


def _unverified_figures(workflow: DeclarationWorkflow, d: Declaration) -> tuple[str, ...]:
    """The figures in force for the declaration's month not marked verified (issue 14)."""
    table = getattr(workflow, "rate_table", None)  # Declarations has one; fakes may not
    if not isinstance(table, RateTable):
        return ()
    filed = datetime.fromtimestamp(d.submitted_at or d.created_at, CHINA_TIME).date()
    return unverified_in_force(table, declaration_month(d.payload, YearMonth.of(filed)))


async def show_detail(
    ctx: StaffCtx,
    workflow: DeclarationWorkflow,
    id: str,
    *,
    notice: str = "",
    error: str = "",
    field_errors: Mapping[str, str] | None = None,
    form_code: str = "",
    form_text: str = "",
    status: int = 200,
) -> Response:
    """A declaration's review page with the actions its state allows."""
    staff = ctx.staff
    if not notice and ctx.request.method in (b"GET", b"HEAD"):
        notice = _DONE.get(ctx.query.get("done", ""), "")
    from declare_app.web._review_records import OUTCOMES, extras

    try:
        d = await _call(ctx, workflow.get, staff_actor(staff), id)
        more = await extras(ctx, workflow, d)
    except NotFound:
        return _missing(ctx)
    except DeclarationError as refusal:
        return _refused(ctx, refusal)
    return _page(
        ctx,
        "detail.html",
        f"{d.type.chinese} 审核",
        status,
        d=d,
        unverified=_unverified_figures(workflow, d),
        payload=payload_sections(d),
        history=[_history_line(h) for h in d.history],
        notice=notice,
        error=error,
        field_errors=dict(field_errors or {}),
        form_code=form_code,
        form_text=form_text,
        result=result_rows(d.result),
        attachments=more.attachments,
        injury=more.injury,
        pension=more.pension,
        outcomes=OUTCOMES,
        can_claim=d.status is Status.PENDING_REVIEW
        or (
            d.status is Status.UNDER_REVIEW and d.claimed_by != staff.name and staff.role == "admin"
        ),
        can_decide=d.status is Status.UNDER_REVIEW and d.claimed_by == staff.name,
    )


def review_section(workflow: DeclarationWorkflow) -> web.ConsoleSection:
    """The auditors' review pages (see the module docstring) as a console section."""

    async def queue(ctx: StaffCtx) -> Response:
        actor = staff_actor(ctx.staff)
        wanted = _LISTS.get(ctx.query.get("status", ""))
        sections: list[tuple[str, list[Declaration], str]] = []
        try:
            if wanted is not None:
                items = await _call(ctx, workflow.list, actor, status=wanted, limit=200)
                sections.append((wanted.chinese, items, f"没有{wanted.chinese}的申报。"))
            else:
                pending = await _call(
                    ctx, workflow.list, actor, status=Status.PENDING_REVIEW, limit=200
                )
                claimed = await _call(
                    ctx, workflow.list, actor, status=Status.UNDER_REVIEW, limit=200
                )
                sections.append(("待审核", pending, "没有待审核的申报。"))
                sections.append(("审核中", claimed, "没有审核中的申报。"))
        except DeclarationError as refusal:
            return _refused(ctx, refusal)
        return _page(ctx, "queue.html", "申报审核", sections=sections, error="")

    async def detail(ctx: StaffCtx, id: str, **values: Any) -> Response:
        return await show_detail(ctx, workflow, id, **values)

    def decision(action: str) -> web.ConsoleHandler:
        async def post(ctx: StaffCtx, id: str) -> Response:
            actor = staff_actor(ctx.staff)
            now = ctx.now
            code = text = ""
            if action == "return":
                code = ctx.form.get("code", "").strip()
                text = ctx.form.get("text", "").strip()
                errors = check_return(code, text)
                if errors:
                    return await detail(
                        ctx,
                        id,
                        error="请按提示修改后再退回。",
                        field_errors=errors,
                        form_code=code,
                        form_text=text[:MAX_RETURN_TEXT],
                        status=400,
                    )
            try:
                if action == "claim":
                    await _call(ctx, workflow.claim, actor, id, now=now)
                    done = "claimed"
                elif action == "approve":
                    await _call(ctx, workflow.approve, actor, id, now=now)
                    done = "approved"
                else:
                    await _call(ctx, workflow.return_, actor, id, code=code, text=text, now=now)
                    done = "returned"
            except NotFound:
                return _missing(ctx)
            except DeclarationError as e:
                return await detail(
                    ctx,
                    id,
                    error=f"操作未完成：{e.message}",
                    form_code=code,
                    form_text=text,
                    status=409,
                )
            return web.see_other(f"{REVIEW}/{id}?done={done}")

        post.__name__ = action
        return post

    async def show(ctx: StaffCtx, id: str) -> Response:
        return await detail(ctx, id)

    roles = ("auditor",)
    return web.ConsoleSection(
        path=REVIEW,
        title="申报审核",
        roles=roles,
        routes=(
            web.Route("GET", REVIEW, roles, queue),
            web.Route("GET", f"{REVIEW}/<rid:id>", roles, show),
            *_records_routes(workflow, roles),
            *(
                web.Route("POST", f"{REVIEW}/<rid:id>/{action}", roles, decision(action))
                for action in ("claim", "approve", "return")
            ),
        ),
        templates=PackageLoader("declare_app.web", "templates"),
        converters={"rid": _ID, "num": r"[0-9]{1,9}"},
    )


def _records_routes(workflow: DeclarationWorkflow, roles: tuple[str, ...]) -> tuple[web.Route, ...]:
    from declare_app.web._review_records import routes  # imports this module

    return routes(workflow, roles)


def _refused(ctx: StaffCtx, refusal: DeclarationError) -> Response:
    """A refusal with no declaration to show it on (no right to read, say)."""
    message = f"操作未完成：{refusal.message}"
    return _page(ctx, "missing.html", "操作未完成", 403, message=message)


def _missing(ctx: StaffCtx) -> Response:
    return _page(ctx, "missing.html", "申报不存在", 404, message="该申报不存在或已被删除。")
