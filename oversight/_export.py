"""Streamed exports of the officers' views: CSV for Excel and JSON Lines.

:func:`export_view` turns any filtered view into a :class:`web.Streamed` download:
the view gives its column names, a function from a row to its cells, and a batch
reader (``reader(conn, cursor) -> (rows, next cursor or None)``, run on the
database pool one batch at a time, and only when the client's connection takes
more).  So an export of millions of rows holds one batch, and a view added later
(the logins view) gets its exports by naming its columns and its reader.

The export is audited before the first byte goes out (``audit.export``, stage
``start``: view, format, the filters as typed) and again when it ends (stage
``end``: ``rows`` sent and whether the download was ``complete``).

CSV is UTF-8 with a byte order mark (Excel reads UTF-8 only with it), CRLF rows
(RFC 4180), and text cells a spreadsheet would run as a formula prefixed with ``'``;
JSON Lines is one object per row, UTF-8 unescaped.  Times are ISO 8601 with their
offset in both: the rows' dicts carry them as text already.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import Connection
from twisted.internet.defer import Deferred

import audit
import web
from web import StaffCtx
from web._time import local_datetime

R = TypeVar("R")

BOM: Final = "\ufeff"
FORMATS: Final = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}

BatchReader = Callable[[Connection, Any], tuple[Sequence[R], Any]]


@dataclass(frozen=True)
class ExportSpec(Generic[R]):
    """What a view exports: its *columns* (CSV header and JSON keys, in order),
    *cells* (a row as ``{column: value}``; values are text, numbers, booleans, None
    or a mapping, written as JSON inside a CSV cell) and *reader*: blocking,
    ``reader(conn, cursor) -> (rows, next cursor)`` reads one bounded batch in the
    view's order after *cursor* (the *start* given to :func:`export_view` first);
    a next cursor of None means there is no more."""

    columns: tuple[str, ...]
    cells: Callable[[R], Mapping[str, Any]]
    reader: BatchReader[R]


def csv_header(columns: Sequence[str], *, bom: bool) -> str:
    """The header line, after a byte order mark when *bom* (for Excel)."""
    return (BOM if bom else "") + _csv_text([list(columns)])


def csv_rows(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """*rows* as CSV lines (CRLF-ended), cells in *columns* order."""
    return _csv_text([[_cell(row.get(name)) for name in columns] for row in rows])


def jsonl_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """*rows* as JSON Lines (``\\n``-ended), text kept readable."""
    return "".join(
        json.dumps(dict(row), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
        + "\n"
        for row in rows
    )


def _csv_text(lines: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(lines)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return audit.spreadsheet_cell(str(value))


async def export_view(
    ctx: StaffCtx,
    spec: ExportSpec[R],
    *,
    view: str,
    fmt: str,
    filters: Mapping[str, str],
    start: Any = None,
) -> web.Response:
    """The download of *view* in *fmt* (``csv`` or ``jsonl``), audited first.

    *filters* are the view's filters as typed (recorded in the audit event: give
    no personal data); *start* is the reader's first cursor.
    """
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {sorted(FORMATS)}, got {fmt!r}")
    details: dict[str, audit.DetailValue] = {"view": view, "format": fmt, "stage": "start"}
    details.update({f"filter_{name}": value[:200] for name, value in sorted(filters.items())})
    details["source"] = ctx.source
    await ctx.audit("audit.export", view, "ok", details=details)
    stream = _Stream(ctx, spec, fmt, start)

    def ended(complete: bool) -> Deferred[None]:
        # Stamped when the download ended, not when it was asked for.
        return Deferred.fromCoroutine(
            ctx.shell.audit(
                ctx.shell.seconds(),
                ctx.staff.audit_actor,
                "audit.export",
                view,
                "ok",
                reason="" if complete else "incomplete",
                session_ref=ctx.session_ref,
                details={
                    "view": view,
                    "format": fmt,
                    "stage": "end",
                    "rows": stream.rows,
                    "complete": complete,
                },
            )
        )

    stamp = local_datetime(ctx.now).strftime("%Y%m%d-%H%M%S")
    return web.download(FORMATS[fmt], f"{view}-{stamp}.{fmt}", stream.next_chunk, ended=ended)


class _Stream(Generic[R]):
    """The pieces of one export: the header, then one encoded batch per call."""

    def __init__(self, ctx: StaffCtx, spec: ExportSpec[R], fmt: str, start: Any) -> None:
        self._ctx = ctx
        self._spec = spec
        self._csv = fmt == "csv"
        self._cursor = start
        self._header = self._csv
        self._over = False
        self.rows = 0

    async def next_chunk(self) -> bytes:
        if self._header:
            self._header = False
            return csv_header(self._spec.columns, bom=True).encode("utf-8")
        while not self._over:
            rows: Sequence[R]
            rows, self._cursor = await self._ctx.runner.run(self._spec.reader, self._cursor)
            self._over = self._cursor is None
            if rows:
                self.rows += len(rows)
                cells = [self._spec.cells(row) for row in rows]
                text = csv_rows(self._spec.columns, cells) if self._csv else jsonl_rows(cells)
                return text.encode("utf-8")
        return b""
