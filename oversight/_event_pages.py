"""The officers' actions view: the audit log itself, filtered (role ``officer``).

* ``GET /events`` — audit events newest first, filtered by account (what it was the
  subject of and what it did as ``channel:ACCOUNT``), unit, session id, action (and
  its sub-actions), outcome, source address and time (Beijing time); pages of
  :data:`PAGE_SIZE` by keyset (``?before=<seq>``), never OFFSET;
* ``GET /events/export.csv|.jsonl`` — every event the view shows with the same
  filters (all its pages, up to the newest event when the export began), streamed
  and audited (:mod:`._export`).

The filters are :class:`audit.EventFilter`, the ones ``ssgate audit actions`` reads.
"""

from __future__ import annotations

import ipaddress
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
from web._time import CHINA_TIME, form_value, parse_local, shown

from ._export import FORMATS, ExportSpec, export_view
from ._timeline import OUTCOMES

EVENTS = "/events"
PAGE_SIZE = 50
EXPORT_BATCH = 1000

_ACCOUNT = re.compile(r"[0-9A-Za-z@._-]{1,128}")
_UNIT = re.compile(r"[0-9]{8}")
_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ACTION = re.compile(r"[a-z][a-z0-9._-]{0,63}")
_CURSOR = re.compile(r"[1-9][0-9]{0,18}")
FILTER_NAMES: Final = (
    "account",
    "unit",
    "session",
    "action",
    "outcome",
    "source",
    "since",
    "until",
)


@dataclass
class EventFilters:
    """The filter form as typed (``form``), as the log takes it (``where``), and the
    field errors (Chinese) of what could not be read."""

    form: dict[str, str] = field(default_factory=dict)
    where: audit.EventFilter = field(default_factory=audit.EventFilter)
    errors: dict[str, str] = field(default_factory=dict)
    before: int | None = None


def read_event_filters(query: Mapping[str, str]) -> EventFilters:
    """The filters of the actions view's query string, each checked."""
    f = EventFilters()
    for name in FILTER_NAMES:
        value = query.get(name, "").strip()
        if value:
            f.form[name] = value
    values = {**_read_names(f), **_read_times(f)}
    f.where = audit.EventFilter(**values)
    cursor = query.get("before", "")
    if cursor:
        if _CURSOR.fullmatch(cursor):
            f.before = int(cursor)
        else:
            f.errors["before"] = "翻页位置无效，请从第一页开始"
    return f


def _read_names(f: EventFilters) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, shape, key, message in (
        ("account", _ACCOUNT, "account", "账号格式不正确"),
        ("unit", _UNIT, "unit", "单位编号应为 8 位数字"),
        ("session", _SESSION, "session_id", "会话编号格式不正确"),
        ("action", _ACTION, "action", "操作名称格式不正确（如 login、declare）"),
    ):
        if name in f.form:
            if shape.fullmatch(f.form[name]):
                values[key] = f.form[name]
            else:
                f.errors[name] = message
    if "outcome" in f.form:
        if f.form["outcome"] in OUTCOMES:
            values["outcome"] = f.form["outcome"]
        else:
            f.errors["outcome"] = "请从列表中选择结果"
    if "source" in f.form:
        try:
            values["source"] = str(ipaddress.ip_address(f.form["source"]))
        except ValueError:
            f.errors["source"] = "来源地址应为 IPv4 或 IPv6 地址"
    return values


def _read_times(f: EventFilters) -> dict[str, float]:
    values: dict[str, float] = {}
    for name in ("since", "until"):
        if name in f.form:
            try:
                values[name] = parse_local(f.form[name])
            except ValueError:
                f.errors[name] = "时间格式应为 2026-01-01T08:00（北京时间）"
    if "since" in values and "until" in values and values["since"] >= values["until"]:
        f.errors["until"] = "结束时间应晚于开始时间"
    return values


def _page_of(
    conn: Connection, where: audit.EventFilter, before: int | None
) -> tuple[list[audit.AuditRecord], bool]:
    records = audit.event_batch(conn, where, before=before, limit=PAGE_SIZE + 1, newest_first=True)
    return records[:PAGE_SIZE], len(records) > PAGE_SIZE


def _export_batch(
    conn: Connection, before: int, *, where: audit.EventFilter
) -> tuple[list[audit.AuditRecord], int | None]:
    """The next batch below *before*, newest first, and where the next one starts."""
    records = audit.event_batch(conn, where, before=before, limit=EXPORT_BATCH, newest_first=True)
    return records, (records[-1].seq if len(records) == EXPORT_BATCH else None)


def event_cells(record: audit.AuditRecord) -> dict[str, Any]:
    """A record as the console's exports carry it (Beijing time, offset shown)."""
    return audit.view_row(record, CHINA_TIME)


def events_section() -> web.ConsoleSection:
    """The officers' actions view (see the module docstring) as a console section."""

    async def listing(ctx: StaffCtx) -> Response:
        f = read_event_filters(ctx.query)
        rows: Sequence[audit.AuditRecord] = ()
        more = False
        if not f.errors:
            rows, more = await ctx.runner.run(_page_of, f.where, f.before)
        next_link = ""
        if more and rows:
            next_link = EVENTS + "?" + urlencode({**f.form, "before": str(rows[-1].seq)})
        return ctx.page(
            "events/list.html",
            400 if f.errors else 200,
            title="操作审计",
            current=EVENTS,
            when=lambda ts: shown(ts, seconds=True, offset=True),
            outcome_text=OUTCOMES,
            rows=rows,
            form=f.form,
            errors=f.errors,
            first_page=f.before is not None,
            first_link=EVENTS + ("?" + urlencode(f.form) if f.form else ""),
            next_link=next_link,
            export_query=urlencode(f.form),
            page_size=PAGE_SIZE,
            now_text=form_value(ctx.now),
        )

    def exporter(fmt: str) -> web.ConsoleHandler:
        async def export(ctx: StaffCtx) -> Response:
            f = read_event_filters(ctx.query)
            f.errors.pop("before", None)  # an export holds every page: no cursor
            if f.errors:
                return await listing(ctx)
            where = f.where

            def reader(conn: Connection, before: int) -> tuple[list[audit.AuditRecord], int | None]:
                return _export_batch(conn, before, where=where)

            # Bounded by the newest record before the export's own audit event: the
            # download holds what the view showed, not what is appended meanwhile.
            upto: int = await ctx.runner.run(audit.last_seq)
            spec = ExportSpec(audit.VIEW_FIELDS, event_cells, reader)
            return await export_view(
                ctx, spec, view="events", fmt=fmt, filters=f.form, start=upto + 1
            )

        return export

    roles = ("officer",)
    return web.ConsoleSection(
        path=EVENTS,
        title="操作审计",
        roles=roles,
        routes=(
            web.Route("GET", EVENTS, roles, listing),
            *(web.Route("GET", f"{EVENTS}/export.{fmt}", roles, exporter(fmt)) for fmt in FORMATS),
        ),
        templates=PackageLoader("oversight", "templates"),
    )
