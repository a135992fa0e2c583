"""The agency auditors' pages in the staff console: review queue, detail, decisions.

One :class:`auth.console.ConsolePage` at ``/review`` (role ``auditor``; admin too):

* ``GET /review`` — the queue: 待审核 (unit, type, submitted time, gateway session)
  and 审核中 (who claimed it); ``?status=applied`` / ``returned`` lists decided ones;
* ``GET /review/<id>`` — the declaration: payload, findings, history, and the actions
  its state allows;
* ``POST /review/<id>/claim``, ``/approve``, ``/return`` (reason code R01-R99 from the
  DOMAIN §7 catalogue, text required for R99).

Everything goes through :class:`declare_app.interfaces.DeclarationWorkflow` with an
``Actor(kind="staff", name=…, role=…)``, one transaction per call on the database
pool; the workflow checks the state, writes the audit events and refuses what is not
allowed.  The shell (``ssgate._console``) has already checked login, role and CSRF.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from jinja2 import DictLoader, Environment, StrictUndefined
from sqlalchemy import Connection

from auth.console import (
    ConsoleRequest,
    ConsoleResult,
    ConsoleRunner,
    Page,
    Redirect,
    StaffMember,
)
from declare_app import _vocabulary as vocabulary
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

RETURN_REASONS: Mapping[str, str] = vocabulary.RETURN_REASONS  # DOMAIN §7
FREE_TEXT_CODE = vocabulary.FREE_TEXT_REASON
MAX_RETURN_TEXT = 500
MAX_PAYLOAD_ROWS = 500  # rows of a batch shown on the page

# Declaration ids are opaque (>= 64 random bits); anything else is not one of ours.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHINA = timezone(timedelta(hours=8), "CST")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab and newlines are text
_T = TypeVar("_T")

_DONE = {
    "claimed": "已领取，请审核后作出决定。",
    "approved": "已审核通过并办结。",
    "returned": "已退回，单位将看到退回原因。",
}
_LISTS = {"applied": Status.APPLIED, "returned": Status.RETURNED}

_SEVERITY = {"error": "错误", "warning": "提示"}


def when(ts: float | None) -> str:
    """Epoch seconds as Beijing time, ``2026-01-01 08:00``; ``—`` for none."""
    if ts is None:
        return "—"
    try:
        return datetime.fromtimestamp(ts, UTC).astimezone(_CHINA).strftime("%Y-%m-%d %H:%M")
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


_QUEUE = """\
<h1>申报审核</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
<p>
  <a href="/review">待审核与审核中</a> ·
  <a href="/review?status=applied">已办结</a> ·
  <a href="/review?status=returned">已退回</a>
</p>
{% for heading, items, empty in sections %}
<h2>{{ heading }}（{{ items|length }}）</h2>
{% if items %}
<table class="list">
<thead><tr><th>申报类型</th><th>单位编号</th><th>提交时间</th><th>版本</th><th>会话</th>
<th>状态</th><th>审核人</th><th></th></tr></thead>
<tbody>
{% for d in items %}
<tr>
  <td>{{ d.type.chinese }}</td>
  <td>{{ d.unit_code }}</td>
  <td>{{ when(d.submitted_at) }}</td>
  <td>{{ d.version }}</td>
  <td>{{ d.created_session or "—" }}</td>
  <td>{{ d.status.chinese }}</td>
  <td>{{ d.claimed_by or "—" }}</td>
  <td><a href="/review/{{ d.id }}">查看</a></td>
</tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p>{{ empty }}</p>
{% endif %}
{% endfor %}
"""

_DETAIL = """\
<h1>{{ d.type.chinese }}（{{ d.status.chinese }}）</h1>
<p><a href="/review">返回审核列表</a></p>
{% if notice %}<p class="notice">{{ notice }}</p>{% endif %}
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if d.voucher_no %}
<p class="notice">办理凭证号：<strong id="voucher">{{ d.voucher_no }}</strong></p>
{% endif %}
<table class="list">
<tr><th>申报编号</th><td>{{ d.id }}</td></tr>
<tr><th>单位编号</th><td>{{ d.unit_code }}</td></tr>
<tr><th>版本</th><td>{{ d.version }}{% if d.previous_id %}（重新提交，上一版本
  <a href="/review/{{ d.previous_id }}">{{ d.previous_id }}</a>）{% endif %}</td></tr>
<tr><th>创建时间</th><td>{{ when(d.created_at) }}</td></tr>
<tr><th>提交时间</th><td>{{ when(d.submitted_at) }}</td></tr>
<tr><th>专网会话</th><td>{{ d.created_session or "—" }}</td></tr>
<tr><th>审核人</th><td>{{ d.claimed_by or "—" }}</td></tr>
<tr><th>决定人 / 时间</th><td>{{ d.decided_by or "—" }} / {{ when(d.decided_at) }}</td></tr>
{% if d.return_code %}
<tr><th>退回原因</th><td>{{ d.return_code }} {{ reasons.get(d.return_code, "") }}
  {% if d.return_text %}<br>{{ d.return_text }}{% endif %}</td></tr>
{% endif %}
</table>

<h2>申报内容</h2>
{% for title, rows in payload %}
{% if title %}<h3>{{ title }}</h3>{% endif %}
<table class="list">
{% for row in rows %}
<tr><th>{{ row.label }}</th><td>
{% if row.lines %}
  <table class="list">
  <thead><tr>{% for c in row.lines.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
  <tbody>
  {% for line in row.lines.rows %}
  <tr>{% for cell in line %}<td>{{ cell or "—" }}</td>{% endfor %}</tr>
  {% endfor %}
  </tbody>
  </table>
  <p class="hint">{{ row.lines.note }}</p>
{% else %}{{ row.value or "—" }}{% endif %}
{% for e in row.errors %}<br><span class="field-error">{{ e }}</span>{% endfor %}
{% for w in row.warnings %}<br><span class="hint">提示：{{ w }}</span>{% endfor %}
</td></tr>
{% endfor %}
</table>
{% else %}<p>（无内容）</p>
{% endfor %}

{% if result %}
<h2>办理结果</h2>
<table class="list">
{% for key, text in result %}<tr><th>{{ key }}</th><td>{{ text }}</td></tr>{% endfor %}
</table>
{% endif %}

<h2>校验结果</h2>
{% if d.findings %}
<table class="list">
<thead><tr><th>规则</th><th>字段</th><th>级别</th><th>说明</th></tr></thead>
<tbody>{% for f in d.findings %}
<tr>
  <td>{{ f.rule }}</td>
  <td>{{ f.field or "（整表）" }}</td>
  <td>{{ severity.get(f.severity, f.severity) }}</td>
  <td>{{ f.message }}</td>
</tr>
{% endfor %}</tbody>
</table>
{% else %}<p>无校验问题。</p>{% endif %}

<h2>处理记录</h2>
{% if history %}
<table class="list">
<thead><tr><th>时间</th><th>版本</th><th>操作人</th><th>状态</th><th>说明</th></tr></thead>
<tbody>
{% for h in history %}
<tr><td>{{ h.at }}</td><td>{{ h.version }}</td><td>{{ h.actor }}</td><td>{{ h.change }}</td>
<td>{{ h.note }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p>暂无记录。</p>{% endif %}

{% if can_claim or can_decide %}
<h2>审核操作</h2>
<div class="actions">
{% if can_claim %}
<form method="post" action="/review/{{ d.id }}/claim">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  {% if d.claimed_by %}<p>该申报由 {{ d.claimed_by }} 审核中；管理员可以转交给自己。</p>{% endif %}
  <button type="submit" id="claim">{{ "转交给我审核" if d.claimed_by else "领取审核" }}</button>
</form>
{% endif %}
{% if can_decide %}
<form method="post" action="/review/{{ d.id }}/approve">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  <p>审核通过后将立即写入业务数据并生成办理凭证。</p>
  <button type="submit" id="approve">审核通过</button>
</form>
<form method="post" action="/review/{{ d.id }}/return">
  <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
  <p><label for="code">退回原因</label><br>
  <select id="code" name="code" required>
    <option value="">请选择</option>
    {% for code, text in reasons.items() %}
    <option value="{{ code }}"{% if code == form_code %} selected{% endif %}>
      {{ code }} {{ text }}</option>
    {% endfor %}
  </select>
  {% if field_errors.get("code") %}
  <br><span class="field-error">{{ field_errors["code"] }}</span>
  {% endif %}
  </p>
  <p><label for="text">退回说明（单位可见，R99 必填）</label><br>
  <textarea id="text" name="text" rows="4" cols="50"
            maxlength="{{ max_text }}">{{ form_text }}</textarea>
  {% if field_errors.get("text") %}
  <br><span class="field-error">{{ field_errors["text"] }}</span>
  {% endif %}
  </p>
  <button type="submit" id="return">退回</button>
</form>
{% endif %}
</div>
{% elif d.status.value == "under-review" %}
<p class="hint">该申报由 {{ d.claimed_by }} 审核中。</p>
{% endif %}
"""

_NOT_FOUND = """\
<h1>申报不存在</h1>
<p class="error">{{ message }}</p>
<p><a href="/review">返回审核列表</a></p>
"""

_ENV = Environment(
    loader=DictLoader({"queue.html": _QUEUE, "detail.html": _DETAIL, "missing.html": _NOT_FOUND}),
    autoescape=True,
    undefined=StrictUndefined,
    auto_reload=False,
)
_ENV.globals.update(when=when, reasons=RETURN_REASONS, severity=_SEVERITY, max_text=MAX_RETURN_TEXT)


def _render(template: str, **values: Any) -> str:
    return _ENV.get_template(template).render(**values)


def staff_actor(staff: StaffMember) -> Actor:
    return Actor(kind="staff", name=staff.name, role=staff.role)


def check_return(code: str, text: str) -> dict[str, str]:
    """Field errors (Chinese) for a return: code from the catalogue, text bounded,
    text required for R99."""
    errors: dict[str, str] = {}
    if code not in RETURN_REASONS:
        errors["code"] = "请选择退回原因"
    if len(text) > MAX_RETURN_TEXT:
        errors["text"] = f"退回说明不能超过 {MAX_RETURN_TEXT} 字"
    elif _CONTROL.search(text):
        errors["text"] = "退回说明不能含控制字符"
    elif code == FREE_TEXT_CODE and not text:
        errors["text"] = "选择 R99（其他）时必须填写退回说明"
    return errors


class ReviewPage:
    """The auditors' review pages (see the module docstring)."""

    path = "review"
    title = "申报审核"
    roles = frozenset({"auditor"})

    def __init__(self, *, workflow: DeclarationWorkflow, runner: ConsoleRunner) -> None:
        self._workflow = workflow
        self._runner = runner

    # -- GET ---------------------------------------------------------------------------

    async def render_get(self, request: ConsoleRequest, staff: StaffMember) -> ConsoleResult:
        sub = request.subpath
        if not sub:
            return await self._queue(request, staff)
        if len(sub) == 1 and _ID.fullmatch(sub[0]):
            notice = _DONE.get(request.query.get("done", ""), "")
            return await self._detail(request, staff, sub[0], notice=notice)
        return _missing()

    async def _queue(self, request: ConsoleRequest, staff: StaffMember) -> Page:
        actor = staff_actor(staff)
        wanted = _LISTS.get(request.query.get("status", ""))
        sections: list[tuple[str, list[Declaration], str]] = []
        try:
            if wanted is not None:
                items = await self._call(self._workflow.list, actor, status=wanted, limit=200)
                sections.append((wanted.chinese, items, f"没有{wanted.chinese}的申报。"))
            else:
                pending = await self._call(
                    self._workflow.list, actor, status=Status.PENDING_REVIEW, limit=200
                )
                claimed = await self._call(
                    self._workflow.list, actor, status=Status.UNDER_REVIEW, limit=200
                )
                sections.append(("待审核", pending, "没有待审核的申报。"))
                sections.append(("审核中", claimed, "没有审核中的申报。"))
        except DeclarationError as refusal:
            return _refused(refusal)
        return Page("申报审核", _render("queue.html", sections=sections, error=""))

    async def _call(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """One workflow call in its own transaction on the database pool, committed even
        when the workflow refuses (then the refusal is raised here)."""
        result: _T | DeclarationError = await self._runner.run(
            recording_refusals, call, *args, **kwargs
        )
        if isinstance(result, DeclarationError):
            raise result
        return result

    async def _detail(
        self,
        request: ConsoleRequest,
        staff: StaffMember,
        declaration_id: str,
        *,
        notice: str = "",
        error: str = "",
        field_errors: Mapping[str, str] | None = None,
        form_code: str = "",
        form_text: str = "",
        status: int = 200,
    ) -> Page:
        try:
            d = await self._call(self._workflow.get, staff_actor(staff), declaration_id)
        except NotFound:
            return _missing()
        except DeclarationError as refusal:
            return _refused(refusal)
        body = _render(
            "detail.html",
            d=d,
            payload=payload_sections(d),
            history=[_history_line(h) for h in d.history],
            notice=notice,
            error=error,
            field_errors=dict(field_errors or {}),
            form_code=form_code,
            form_text=form_text,
            csrf_token=request.csrf_token,
            result=result_rows(d.result),
            can_claim=d.status is Status.PENDING_REVIEW
            or (
                d.status is Status.UNDER_REVIEW
                and d.claimed_by != staff.name
                and staff.role == "admin"
            ),
            can_decide=d.status is Status.UNDER_REVIEW and d.claimed_by == staff.name,
        )
        return Page(f"{d.type.chinese} 审核", body, status=status)

    # -- POST --------------------------------------------------------------------------

    async def render_post(self, request: ConsoleRequest, staff: StaffMember) -> ConsoleResult:
        sub = request.subpath
        if (
            len(sub) != 2
            or not _ID.fullmatch(sub[0])
            or sub[1] not in ("claim", "approve", "return")
        ):
            return _missing()
        declaration_id, action = sub
        actor = staff_actor(staff)
        now = request.now
        code = text = ""
        if action == "return":
            code = request.form.get("code", "").strip()
            text = request.form.get("text", "").strip()
            errors = check_return(code, text)
            if errors:
                return await self._detail(
                    request,
                    staff,
                    declaration_id,
                    error="请按提示修改后再退回。",
                    field_errors=errors,
                    form_code=code,
                    form_text=text[:MAX_RETURN_TEXT],
                    status=400,
                )
        try:
            if action == "claim":
                await self._call(self._workflow.claim, actor, declaration_id, now=now)
                done = "claimed"
            elif action == "approve":
                await self._call(self._workflow.approve, actor, declaration_id, now=now)
                done = "approved"
            else:
                await self._call(
                    self._workflow.return_, actor, declaration_id, code=code, text=text, now=now
                )
                done = "returned"
        except NotFound:
            return _missing()
        except DeclarationError as e:
            return await self._detail(
                request,
                staff,
                declaration_id,
                error=f"操作未完成：{e.message}",
                form_code=code,
                form_text=text,
                status=409,
            )
        return Redirect(f"/review/{declaration_id}?done={done}")


def _refused(refusal: DeclarationError) -> Page:
    """A refusal with no declaration to show it on (no right to read, say)."""
    return Page(
        "操作未完成", _render("missing.html", message=f"操作未完成：{refusal.message}"), status=403
    )


def _missing() -> Page:
    return Page(
        "申报不存在", _render("missing.html", message="该申报不存在或已被删除。"), status=404
    )
