"""The officers' alert pages in the staff console (role ``officer``; admin too).

* ``GET /alerts`` — the alerts newest first, filtered by state, severity and rule;
  pages of :data:`PAGE_SIZE` by keyset (``?before=<id>``), never OFFSET;
* ``GET /alerts/<id>`` — one alert: what was found, when, and its evidence linking
  to the sessions (``/sessions/<sid>``, ``/sessions?account=…``,
  ``/sessions?source=…``) and the login attempts (``/logins?account=…``,
  ``/logins?source=…``), and its handling so far;
* ``GET``/``POST /alerts/<id>/acknowledge`` and ``/alerts/<id>/close`` — the
  confirmation with a required note, then the change, recorded in the audit log
  (``alert.acknowledge``, ``alert.close``; a refused change too);
* ``GET /alerts/export.csv|.jsonl`` — every alert the list shows with the same
  filters (all its pages), streamed and audited (:mod:`._export`).

The alerts are raised by the evaluator (:func:`audit.evaluate_alerts`, run by
``ssgate serve``); these pages only read and handle them, each call through
``ctx.runner.run`` on the database pool.  The shell has checked login, role and CSRF
before a handler runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from jinja2 import PackageLoader
from sqlalchemy import Connection

import audit
import web
from web import Response, StaffCtx
from web._time import CHINA_TIME, shown

from ._export import FORMATS, ExportSpec, export_view

ALERTS = "/alerts"
PAGE_SIZE = 50
EXPORT_BATCH = 500
MAX_NOTE = 500

# Alert ids are integers; the converter is wider so that an odd id is a "no such
# alert" page, not the shell's 404 for the path.
_AID = r"[A-Za-z0-9_-]{1,32}"
_ID = re.compile(r"[1-9][0-9]{0,17}")
# What the sessions list accepts as an account filter (a channel account).
_LINKABLE_ACCOUNT = re.compile(r"[0-9A-Za-z@._-]{1,128}")

RULE_TITLES: Mapping[str, str] = {
    "brute-force": "暴力破解：单个账号多次登录失败",
    "spraying": "密码喷洒：同一来源尝试多个账号",
    "two-addresses": "同一账号同时从两个地址在线",
    "unusual-hour": "在从未使用过的时段登录",
    "revoked-cert": "出示已吊销或已注销的证书",
    "bulk-export": "工作人员批量导出",
    "id-probing": "单位查询非本单位人员",
}
SEVERITY_TITLES: Mapping[str, str] = {"high": "高", "medium": "中", "low": "低"}
STATE_TITLES: Mapping[str, str] = {"new": "新告警", "acknowledged": "已确认", "closed": "已关闭"}
# The two changes: path word → (target state, button and page title, past tense).
CHANGES: Mapping[str, tuple[str, str, str]] = {
    "acknowledge": ("acknowledged", "确认告警", "已确认该告警。"),
    "close": ("closed", "关闭告警", "已关闭该告警。"),
}
_REFUSED: Mapping[str, str] = {
    "already-acknowledged": "该告警已被确认。",
    "already-closed": "该告警已关闭。",
    "bad-transition": "已关闭的告警不能再确认。",
}


# An alert as exports carry it: times ISO 8601 with their offset; the evidence as
# one object (audit record numbers, sessions, accounts, sources).
ALERT_COLUMNS: Final = (
    "id",
    "rule",
    "severity",
    "state",
    "summary",
    "account",
    "source",
    "unit",
    "first_seen",
    "last_seen",
    "occurrences",
    "created_at",
    "changed_by",
    "changed_at",
    "note",
    "evidence",
)


def alert_cells(a: audit.AlertRow) -> dict[str, Any]:
    """*a* by :data:`ALERT_COLUMNS` (Beijing time)."""
    e = a.evidence

    def when(ts: float | None) -> str | None:
        return None if ts is None else audit.iso_time(ts, CHINA_TIME)

    return {
        "id": a.id,
        "rule": a.rule,
        "severity": a.severity,
        "state": a.state,
        "summary": a.summary,
        "account": a.account,
        "source": a.source,
        "unit": a.unit,
        "first_seen": when(a.first_seen),
        "last_seen": when(a.last_seen),
        "occurrences": a.occurrences,
        "created_at": when(a.created_at),
        "changed_by": a.changed_by,
        "changed_at": when(a.changed_at),
        "note": a.note,
        "evidence": {
            "seqs": list(e.seqs),
            "session_ids": list(e.session_ids),
            "accounts": list(e.accounts),
            "sources": list(e.sources),
        },
    }


@dataclass
class AlertFilters:
    """The list's filters as typed (``form``), as the store takes them (``search``)."""

    form: dict[str, str] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    before: int | None = None


def read_alert_filters(query: Mapping[str, str]) -> AlertFilters:
    """The filters of the list's query string, each checked against its list; a bad
    one is a field error (Chinese), never passed on."""
    f = AlertFilters()
    checks = (
        ("state", audit.ALERT_STATES, "请从列表中选择状态"),
        ("severity", audit.SEVERITIES, "请从列表中选择级别"),
        ("rule", audit.RULES, "请从列表中选择告警类型"),
    )
    for name, allowed, message in checks:
        value = query.get(name, "").strip()
        if not value:
            continue
        f.form[name] = value
        if value in allowed:
            f.search[name] = value
        else:
            f.errors[name] = message
    cursor = query.get("before", "")
    if cursor:
        if _ID.fullmatch(cursor):
            f.before = int(cursor)
        else:
            f.errors["before"] = "翻页位置无效，请从第一页开始"
    return f


@dataclass(frozen=True)
class EvidenceLink:
    """One line of an alert's evidence: what it is and where to follow it."""

    label: str
    value: str
    links: tuple[tuple[str, str], ...]  # (href, text)


def evidence_links(alert: audit.AlertRow) -> list[EvidenceLink]:
    """The alert's evidence as links to the session and login pages."""
    e = alert.evidence
    lines = [EvidenceLink("会话", sid, ((f"/sessions/{sid}", "时间线"),)) for sid in e.session_ids]
    for account in e.accounts:
        if _LINKABLE_ACCOUNT.fullmatch(account):
            q = urlencode({"account": account})
            links = ((f"/sessions?{q}", "会话"), (f"/logins?{q}", "登录记录"))
            lines.append(EvidenceLink("账号", account, links))
        else:
            lines.append(EvidenceLink("操作人", account, ()))
    for source in e.sources:
        q = urlencode({"source": source})
        links = ((f"/sessions?{q}", "会话"), (f"/logins?{q}", "登录记录"))
        lines.append(EvidenceLink("来源地址", source, links))
    if alert.unit:
        q = urlencode({"unit": alert.unit})
        lines.append(EvidenceLink("单位编号", alert.unit, ((f"/sessions?{q}", "会话"),)))
    return lines


def _when(ts: float | None) -> str:
    return shown(ts, seconds=True, offset=True)


def _page_of(conn: Connection, f: AlertFilters) -> tuple[Sequence[audit.AlertRow], bool]:
    rows = audit.list_alerts(conn, **f.search, before=f.before, limit=PAGE_SIZE + 1)
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _export_batch(
    conn: Connection, before: int | None, *, search: Mapping[str, Any]
) -> tuple[list[audit.AlertRow], int | None]:
    """The next batch below id *before* (None: from the newest), and the next cursor."""
    rows = audit.list_alerts(conn, **search, before=before, limit=EXPORT_BATCH)
    return rows, (rows[-1].id if len(rows) == EXPORT_BATCH else None)


def check_note(note: str) -> str:
    """The error (Chinese) for a handling note, or ``""``."""
    if not note:
        return "请填写处理说明"
    return web.note_problem(note, what="处理说明", max_chars=MAX_NOTE)


def alerts_section() -> web.ConsoleSection:
    """The officers' alert pages (see the module docstring) as a console section."""

    def page(
        ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any
    ) -> Response:
        return ctx.page(
            f"alerts/{template}",
            status,
            title=title,
            current=ALERTS,
            when=_when,
            rule_titles=RULE_TITLES,
            severity_titles=SEVERITY_TITLES,
            state_titles=STATE_TITLES,
            **values,
        )

    async def listing(ctx: StaffCtx) -> Response:
        f = read_alert_filters(ctx.query)
        rows: Sequence[audit.AlertRow] = ()
        more = False
        if not f.errors:
            rows, more = await ctx.runner.run(_page_of, f)
        next_link = ""
        if more and rows:
            next_link = ALERTS + "?" + urlencode({**f.form, "before": str(rows[-1].id)})
        return page(
            ctx,
            "list.html",
            "安全告警",
            400 if f.errors else 200,
            rows=rows,
            form=f.form,
            errors=f.errors,
            states=audit.ALERT_STATES,
            severities=audit.SEVERITIES,
            rules=audit.RULES,
            first_page=f.before is not None,
            first_link=ALERTS + ("?" + urlencode(f.form) if f.form else ""),
            next_link=next_link,
            export_query=urlencode(f.form),
            page_size=PAGE_SIZE,
        )

    def exporter(fmt: str) -> web.ConsoleHandler:
        async def export(ctx: StaffCtx) -> Response:
            f = read_alert_filters(ctx.query)
            f.errors.pop("before", None)  # an export holds every page: no cursor
            if f.errors:
                return await listing(ctx)
            search = dict(f.search)

            def reader(
                conn: Connection, before: int | None
            ) -> tuple[list[audit.AlertRow], int | None]:
                return _export_batch(conn, before, search=search)

            spec = ExportSpec(ALERT_COLUMNS, alert_cells, reader)
            return await export_view(ctx, spec, view="alerts", fmt=fmt, filters=f.form)

        return export

    def missing(ctx: StaffCtx) -> Response:
        return page(ctx, "missing.html", "告警不存在", 404)

    async def load(ctx: StaffCtx, aid: str) -> audit.AlertRow | None:
        if not _ID.fullmatch(aid):
            return None
        found: audit.AlertRow | None = await ctx.runner.run(audit.get_alert, int(aid))
        return found

    async def detail(ctx: StaffCtx, aid: str) -> Response:
        alert = await load(ctx, aid)
        if alert is None:
            return missing(ctx)
        done = CHANGES.get(ctx.query.get("done", ""))
        return page(
            ctx,
            "detail.html",
            f"告警 {alert.id}",
            a=alert,
            evidence=evidence_links(alert),
            notice=done[2] if done else "",
        )

    async def confirm(
        ctx: StaffCtx, aid: str, change: str, *, note: str = "", error: str = "", status: int = 200
    ) -> Response:
        alert = await load(ctx, aid)
        if alert is None:
            return missing(ctx)
        target, title, _ = CHANGES[change]
        allowed = _allowed(alert.state, target)
        return page(
            ctx,
            "confirm.html",
            title,
            status if allowed or error else 409,
            a=alert,
            change=change,
            allowed=allowed,
            note=note,
            error=error,
            max_note=MAX_NOTE,
        )

    async def change_state(ctx: StaffCtx, aid: str, change: str) -> Response:
        note = ctx.form.get("note", "").strip()
        error = check_note(note)
        if error:
            return await confirm(ctx, aid, change, note=note[:MAX_NOTE], error=error, status=400)
        if not _ID.fullmatch(aid):
            return missing(ctx)
        result: audit.StateChange = await ctx.runner.run(
            audit.change_alert_state,
            int(aid),
            CHANGES[change][0],
            note=note,
            actor=ctx.staff.audit_actor,
            now=ctx.now,
            session_ref=ctx.session_ref,
            details={"source": ctx.source},
        )
        if result.alert is None:
            return missing(ctx)
        if result.refused:
            message = _REFUSED.get(result.refused, "无法办理。")
            return await confirm(ctx, aid, change, note=note, error=message, status=409)
        return web.see_other(f"{ALERTS}/{result.alert.id}?done={change}")

    async def acknowledge_form(ctx: StaffCtx, aid: str) -> Response:
        return await confirm(ctx, aid, "acknowledge")

    async def acknowledge(ctx: StaffCtx, aid: str) -> Response:
        return await change_state(ctx, aid, "acknowledge")

    async def close_form(ctx: StaffCtx, aid: str) -> Response:
        return await confirm(ctx, aid, "close")

    async def close(ctx: StaffCtx, aid: str) -> Response:
        return await change_state(ctx, aid, "close")

    roles = ("officer",)
    one = f"{ALERTS}/<aid:aid>"
    return web.ConsoleSection(
        path=ALERTS,
        title="安全告警",
        roles=roles,
        routes=(
            web.Route("GET", ALERTS, roles, listing),
            *(web.Route("GET", f"{ALERTS}/export.{fmt}", roles, exporter(fmt)) for fmt in FORMATS),
            web.Route("GET", one, roles, detail),
            web.Route("GET", f"{one}/acknowledge", roles, acknowledge_form),
            web.Route("POST", f"{one}/acknowledge", roles, acknowledge),
            web.Route("GET", f"{one}/close", roles, close_form),
            web.Route("POST", f"{one}/close", roles, close),
        ),
        templates=PackageLoader("oversight", "templates"),
        converters={"aid": _AID},
    )


def _allowed(state: str, target: str) -> bool:
    return (state, target) in (
        ("new", "acknowledged"),
        ("new", "closed"),
        ("acknowledged", "closed"),
    )
