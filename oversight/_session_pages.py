"""The officers' session pages in the staff console (role ``officer``; admin too).

* ``GET /sessions`` — every session, newest first, filtered by account, unit, source
  address, node, start time (Beijing time) and end reason; pages of
  :data:`PAGE_SIZE` by keyset (``?before=<start>_<id>``), never OFFSET;
* ``GET /sessions/live`` — the open sessions, same filters, each with a 终止 link;
* ``GET /sessions/<sid>`` — the session and its timeline (:mod:`._timeline`);
* ``GET /sessions/<sid>/terminate`` — the confirmation, with a required reason;
* ``POST /sessions/<sid>/terminate`` — the kill, through
  :meth:`SessionRegistry.kill` (what ``ssgate audit kill`` does: the node holding the
  session ends it at its next poll, within seconds, and the audit log records who
  and why);
* ``GET /sessions/export.csv|.jsonl`` and ``GET /sessions/live/export.csv|.jsonl``
  — every session the list shows with the same filters (all its pages), streamed
  and audited (:mod:`._export`).

Every read and the kill run through ``ctx.runner.run`` on the database pool.  The
shell has checked login, role and CSRF before a handler runs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Final
from urllib.parse import urlencode

from jinja2 import PackageLoader
from sqlalchemy import Connection

import audit
import web
from web import Response, StaffCtx
from web._time import CHINA_TIME, form_value, parse_local, shown

from ._export import FORMATS, ExportSpec, export_view
from ._timeline import OUTCOMES, session_timeline
from .interfaces import SessionRegistry, SessionRow

SESSIONS = "/sessions"
PAGE_SIZE = 50
MAX_NOTE = 500
EXPORT_BATCH = 500

# A session as exports carry it: every time ISO 8601 with its offset, never epoch.
SESSION_COLUMNS: Final = (
    "id",
    "account",
    "unit_code",
    "peer",
    "node",
    "cert_serial",
    "status",
    "started_at",
    "last_seen_at",
    "ended_at",
    "end_reason",
    "bytes_in",
    "bytes_out",
    "streams_opened",
    "kill_requested_at",
    "kill_reason",
    "kill_note",
    "kill_actor",
)
_SESSION_TIMES = frozenset({"started_at", "last_seen_at", "ended_at", "kill_requested_at"})

# Session ids are 128-bit hex from the gateway; the converter is a little wider so
# that an odd id is a "no such session" page, not a 404 for the path.
_SID = r"[A-Za-z0-9_-]{1,64}"
_ACCOUNT = re.compile(r"[0-9A-Za-z@._-]{1,128}")
_UNIT = re.compile(r"[0-9]{8}")
_NODE = re.compile(r"[\x21-\x7e]{1,128}")
_CURSOR = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)_([A-Za-z0-9_-]{1,64})")

STATUS: Mapping[str, str] = {"live": "在线", "detached": "已断开（可恢复）", "ended": "已结束"}
_DONE = {"kill": "已发出终止指令：承载该会话的网关节点将在数秒内断开它。"}


@dataclass
class Filters:
    """The filter form, as typed (``form``) and as the registry takes it (``search``)."""

    form: dict[str, str] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    before: tuple[float, str] | None = None


def read_filters(query: Mapping[str, str], reasons: Mapping[str, str]) -> Filters:
    """The filters of a list page's query string, each checked; a bad one is a field
    error (Chinese), never passed on."""
    f = Filters()
    for name in ("account", "unit", "source", "node", "since", "until", "reason"):
        value = query.get(name, "").strip()
        if value:
            f.form[name] = value
    _read_names(f)
    _read_times(f)
    if "reason" in f.form:
        if f.form["reason"] in reasons:
            f.search["end_reason"] = f.form["reason"]
        else:
            f.errors["reason"] = "请从列表中选择结束原因"
    cursor = query.get("before", "")
    if cursor:
        match = _CURSOR.fullmatch(cursor)
        if match is None:
            f.errors["before"] = "翻页位置无效，请从第一页开始"
        else:
            f.before = (float(match.group(1)), match.group(2))
    return f


def _read_names(f: Filters) -> None:
    checks = (
        ("account", _ACCOUNT, "account", "账号格式不正确"),
        ("unit", _UNIT, "unit", "单位编号应为 8 位数字"),
        ("node", _NODE, "node", "节点名称格式不正确"),
    )
    for name, shape, key, message in checks:
        if name in f.form:
            if shape.fullmatch(f.form[name]):
                f.search[key] = f.form[name]
            else:
                f.errors[name] = message
    if "source" in f.form:
        try:
            f.search["peer_host"] = str(ipaddress.ip_address(f.form["source"]))
        except ValueError:
            f.errors["source"] = "来源地址应为 IPv4 或 IPv6 地址"


def _read_times(f: Filters) -> None:
    for name in ("since", "until"):
        if name in f.form:
            try:
                f.search[name] = parse_local(f.form[name])
            except ValueError:
                f.errors[name] = "时间格式应为 2026-01-01T08:00（北京时间）"
    if "since" in f.search and "until" in f.search and f.search["since"] >= f.search["until"]:
        f.errors["until"] = "结束时间应晚于开始时间"


def session_cells(row: SessionRow, zone: tzinfo = CHINA_TIME) -> dict[str, Any]:
    """*row* by :data:`SESSION_COLUMNS`, its times ISO 8601 in *zone* (None: not yet)."""
    cells: dict[str, Any] = {}
    for name in SESSION_COLUMNS:
        value = getattr(row, name)
        if name in _SESSION_TIMES and value is not None:
            value = audit.iso_time(value, zone)
        cells[name] = value
    return cells


def _export_batch(
    conn: Connection,
    cursor: tuple[float, str] | None,
    *,
    registry: SessionRegistry,
    search: Mapping[str, Any],
    live: bool,
    now: float,
) -> tuple[Sequence[SessionRow], tuple[float, str] | None]:
    rows = registry.search(
        conn, **search, open_only=live, now=now, before=cursor, limit=EXPORT_BATCH
    )
    more = len(rows) == EXPORT_BATCH
    return rows, ((rows[-1].started_at, rows[-1].id) if more else None)


def cursor_of(row: SessionRow) -> str:
    return f"{row.started_at!r}_{row.id}"


def _page_of(
    conn: Connection, registry: SessionRegistry, f: Filters, *, live: bool, now: float
) -> tuple[Sequence[SessionRow], bool]:
    """A page of sessions and whether there is another after it."""
    rows = registry.search(
        conn,
        **f.search,
        open_only=live,
        now=now,
        before=f.before,
        limit=PAGE_SIZE + 1,
    )
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _get(conn: Connection, registry: SessionRegistry, session_id: str) -> SessionRow | None:
    return registry.get(conn, session_id)


def _kill(
    conn: Connection,
    registry: SessionRegistry,
    session_id: str,
    *,
    note: str,
    actor: str,
    now: float,
    details: Mapping[str, Any],
) -> tuple[SessionRow | None, SessionRow | None]:
    """(the killed session or None, the session as it stands) in one transaction."""
    killed = registry.kill(conn, session_id, note=note, actor=actor, now=now, details=details)
    return killed, killed or registry.get(conn, session_id)


def _when(ts: float | None) -> str:
    """``2026-01-01 08:00:00 +08:00``: an officer comparing with another system's log
    must not guess the zone."""
    return shown(ts, seconds=True, offset=True)


def check_note(note: str) -> str:
    """The error (Chinese) for a kill reason, or ``""``."""
    if not note:
        return "请填写终止原因"
    return web.note_problem(note, what="终止原因", max_chars=MAX_NOTE)


def sessions_section(registry: SessionRegistry) -> web.ConsoleSection:
    """The officers' session pages (see the module docstring) as a console section."""
    # The gateway's codes in the words staff read (``gateway.REASON_WORDS``): the
    # carriers' pages show the same.
    reasons = dict(registry.reasons())
    reason_texts = reasons

    def page(
        ctx: StaffCtx, template: str, title: str, status: int = 200, **values: Any
    ) -> Response:
        return ctx.page(
            f"sessions/{template}",
            status,
            title=title,
            current=SESSIONS,
            when=_when,
            status_text=STATUS,
            reasons=reasons,
            reason_text=lambda code: reason_texts.get(code or "", ""),
            outcome_text=OUTCOMES,
            **values,
        )

    async def listing(ctx: StaffCtx, *, live: bool) -> Response:
        f = read_filters(ctx.query, reasons)
        rows: Sequence[SessionRow] = ()
        more = False
        if not f.errors:
            rows, more = await ctx.runner.run(_page_of, registry, f, live=live, now=ctx.now)
        base = f"{SESSIONS}/live" if live else SESSIONS
        next_link = ""
        if more and rows:
            next_link = base + "?" + urlencode({**f.form, "before": cursor_of(rows[-1])})
        return page(
            ctx,
            "list.html",
            "在线会话" if live else "会话审计",
            400 if f.errors else 200,
            live=live,
            base=base,
            rows=rows,
            form=f.form,
            errors=f.errors,
            first_page=f.before is not None,
            first_link=base + ("?" + urlencode(f.form) if f.form else ""),
            next_link=next_link,
            export_query=urlencode(f.form),
            page_size=PAGE_SIZE,
            now_text=form_value(ctx.now),
        )

    async def export(ctx: StaffCtx, *, live: bool, fmt: str) -> Response:
        f = read_filters(ctx.query, reasons)
        f.errors.pop("before", None)  # an export holds every page: no cursor
        if f.errors:
            return await listing(ctx, live=live)
        now = ctx.now

        def reader(
            conn: Connection, cursor: tuple[float, str] | None
        ) -> tuple[Sequence[SessionRow], tuple[float, str] | None]:
            return _export_batch(
                conn, cursor, registry=registry, search=f.search, live=live, now=now
            )

        spec = ExportSpec(SESSION_COLUMNS, session_cells, reader)
        view = "sessions-live" if live else "sessions"
        return await export_view(ctx, spec, view=view, fmt=fmt, filters=f.form)

    def exporter(live: bool, fmt: str) -> web.ConsoleHandler:
        async def handler(ctx: StaffCtx) -> Response:
            return await export(ctx, live=live, fmt=fmt)

        return handler

    async def all_sessions(ctx: StaffCtx) -> Response:
        return await listing(ctx, live=False)

    async def live_sessions(ctx: StaffCtx) -> Response:
        return await listing(ctx, live=True)

    def missing(ctx: StaffCtx) -> Response:
        return page(ctx, "missing.html", "会话不存在", 404)

    async def detail(ctx: StaffCtx, sid: str) -> Response:
        timeline = await ctx.runner.run(session_timeline, registry, sid)
        if timeline is None:
            return missing(ctx)
        s = timeline.session
        return page(
            ctx,
            "detail.html",
            f"会话 {s.id}",
            s=s,
            timeline=timeline,
            can_kill=_killable(s),
            notice=_DONE.get(ctx.query.get("done", ""), ""),
        )

    async def confirm(
        ctx: StaffCtx, sid: str, *, note: str = "", error: str = "", status: int = 200
    ) -> Response:
        s = await ctx.runner.run(_get, registry, sid)
        if s is None:
            return missing(ctx)
        return page(
            ctx,
            "terminate.html",
            "终止会话",
            status if _killable(s) else 409,
            s=s,
            can_kill=_killable(s),
            note=note,
            error=error,
            max_note=MAX_NOTE,
        )

    async def terminate_form(ctx: StaffCtx, sid: str) -> Response:
        return await confirm(ctx, sid)

    async def terminate(ctx: StaffCtx, sid: str) -> Response:
        note = ctx.form.get("reason", "").strip()
        error = check_note(note)
        if error:
            return await confirm(ctx, sid, note=note[:MAX_NOTE], error=error, status=400)
        killed, now_is = await ctx.runner.run(
            _kill,
            registry,
            sid,
            note=note,
            actor=ctx.staff.audit_actor,
            now=ctx.now,
            details={"console_session": ctx.session_ref, "source": ctx.source},
        )
        if now_is is None:
            return missing(ctx)
        if killed is None:
            gone = "该会话已结束或已在终止中。"
            return await confirm(ctx, sid, note=note, error=gone, status=409)
        return web.see_other(f"{SESSIONS}/{sid}?done=kill")

    roles = ("officer",)
    return web.ConsoleSection(
        path=SESSIONS,
        title="会话审计",
        roles=roles,
        routes=(
            web.Route("GET", SESSIONS, roles, all_sessions),
            web.Route("GET", f"{SESSIONS}/live", roles, live_sessions),
            web.Route("GET", f"{SESSIONS}/<sid:sid>", roles, detail),
            web.Route("GET", f"{SESSIONS}/<sid:sid>/terminate", roles, terminate_form),
            web.Route("POST", f"{SESSIONS}/<sid:sid>/terminate", roles, terminate),
            *(
                web.Route("GET", f"{base}/export.{fmt}", roles, exporter(live, fmt))
                for live, base in ((False, SESSIONS), (True, f"{SESSIONS}/live"))
                for fmt in FORMATS
            ),
        ),
        templates=PackageLoader("oversight", "templates"),
        converters={"sid": _SID},
    )


def _killable(s: SessionRow) -> bool:
    return s.status in ("live", "detached") and s.kill_requested_at is None
