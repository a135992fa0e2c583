"""Batch import pages and API (人员增加, 年度缴费基数申报; DOMAIN §7 batch notes).

* ``GET /declarations/new/<type>/import`` — the upload form (multipart/form-data with
  the CSRF token field) and the template links;
* ``GET /declarations/new/<type>/template.xlsx`` and ``template.csv`` — the templates;
* ``POST /declarations/new/<type>/import`` — the result page: every line accepted or
  refused with its reasons, a CSV of the results (a ``data:`` link: refused lines are
  never stored, so there is nothing to fetch later), and the draft's link;
* ``POST /api/v1/declarations/import?type=<type>[&year=YYYY]`` — the same as JSON (or
  ``format=csv``: the results CSV).

Only these routes take ``multipart/form-data`` and a body up to
:data:`IMPORT_MAX_BODY` (the site's ``max_body`` elsewhere).  Parsing the file,
checking every line and storing the draft run in one call on the runner (one
transaction, off the reactor): an import interrupted anywhere stores nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection

import web
from declare_app._batch import (
    BATCH_TYPES,
    CSV_MEDIA_TYPE,
    MAX_FILE_BYTES,
    MAX_LINES,
    XLSX_MEDIA_TYPE,
    line_message,
    parse_batch,
    results_csv,
    template_csv,
    template_xlsx,
)
from declare_app._china_time import local_datetime
from declare_app.interfaces import (
    Actor,
    BatchRefused,
    BatchResult,
    DeclarationType,
    DeclarationWorkflow,
    LineResult,
)
from declare_app.web._api import json_response
from declare_app.web._app import Ctx, HttpError, Response

IMPORT_MAX_BODY: Final = MAX_FILE_BYTES + 64 * 1024  # the file and the multipart framing
MAX_PARTS: Final = 8
MAX_FIELD_BYTES: Final = 1024


# The one file and a few small fields (the CSRF token, the year): caps per part.
MULTIPART_LIMITS: Final = web.MultipartLimits(
    max_file_bytes=MAX_FILE_BYTES, max_parts=MAX_PARTS, max_field_bytes=MAX_FIELD_BYTES
)


def _batch_type(slug: str | None) -> DeclarationType:
    for t in BATCH_TYPES:
        if t.value == slug:
            return t
    raise HttpError(404, "not-found", "该申报类型不支持批量导入（支持人员增加、年度缴费基数申报）")


def _common(ctx: Ctx, type: DeclarationType, year: str | None) -> dict[str, Any]:
    if type is not DeclarationType.ANNUAL_BASE:
        return {}
    if not year:
        year = str(local_datetime(ctx.now()).year)
    return {"year": year.strip()[:8]}


def run_import(
    conn: Connection,
    workflow: DeclarationWorkflow,
    actor: Actor,
    type: DeclarationType,
    data: bytes,
    *,
    common: dict[str, Any],
    now: float,
) -> BatchResult:
    """On the runner, in one transaction: read the file, check, store the draft."""
    lines = parse_batch(type, data)
    return workflow.import_batch(conn, actor, type, lines, common=common, now=now)


async def _import(ctx: Ctx, type: DeclarationType, year: str | None) -> BatchResult:
    if ctx.upload is None or not ctx.upload.file:
        raise HttpError(422, "no-file", "请选择要上传的 .xlsx 或 CSV 文件")
    result: BatchResult = await ctx.run(
        run_import,
        ctx.app.workflow,
        ctx.actor,
        type,
        ctx.upload.file,
        common=_common(ctx, type, year),
        now=ctx.now(),
    )
    return result


# -- pages ------------------------------------------------------------------------------


async def import_form(ctx: Ctx, type: str) -> Response:
    t = _batch_type(type)
    return ctx.page("import.html", type=t, max_lines=MAX_LINES, max_mib=MAX_FILE_BYTES >> 20)


async def import_post(ctx: Ctx, type: str) -> Response:
    t = _batch_type(type)
    year = ctx.upload.field("year") if ctx.upload is not None else None
    try:
        result = await _import(ctx, t, year)
    except BatchRefused as refused:
        return _result_page(ctx, t, None, refused.lines, status=422, message=refused.message)
    return _result_page(ctx, t, result.declaration.id, result.lines, status=200, message="")


def _result_page(
    ctx: Ctx,
    type: DeclarationType,
    declaration_id: str | None,
    lines: Sequence[LineResult],
    *,
    status: int,
    message: str,
) -> Response:
    csv_link = "data:text/csv;charset=utf-8;base64," + base64.b64encode(results_csv(lines)).decode(
        "ascii"
    )
    return ctx.page(
        "import_result.html",
        status,
        type=type,
        declaration_id=declaration_id,
        lines=lines,
        accepted=sum(1 for r in lines if r.accepted),
        refused=sum(1 for r in lines if not r.accepted),
        message=message,
        csv_link=csv_link,
        line_message=line_message,
    )


async def template_file(ctx: Ctx, type: str, ext: str) -> Response:
    t = _batch_type(type)
    name = f"{t.value}-template.{ext}".encode("ascii")
    disposition = (b"Content-Disposition", b'attachment; filename="' + name + b'"')
    if ext == "csv":
        return Response(200, template_csv(t), CSV_MEDIA_TYPE.encode(), (disposition,))
    return Response(200, template_xlsx(t), XLSX_MEDIA_TYPE.encode(), (disposition,))


# -- API --------------------------------------------------------------------------------


def _line_json(r: LineResult) -> dict[str, Any]:
    return {
        "line": r.number,
        "accepted": r.accepted,
        "findings": [
            {
                "rule": f.rule,
                "field": f.field,
                "severity": f.severity,
                "message": line_message(f.message),
            }
            for f in r.findings
        ],
    }


async def api_import(ctx: Ctx) -> Response:
    t = _batch_type(ctx.query_value("type"))
    as_csv = ctx.query_value("format") == "csv"
    try:
        result = await _import(ctx, t, ctx.query_value("year"))
    except BatchRefused as refused:
        if as_csv:
            return Response(422, results_csv(refused.lines), CSV_MEDIA_TYPE.encode())
        return json_response(
            422,
            {
                "error": refused.code,
                "message": refused.message,
                "findings": [],
                "accepted": 0,
                "refused": len(refused.lines),
                "lines": [_line_json(r) for r in refused.lines],
            },
        )
    if as_csv:
        return Response(201, results_csv(result.lines), CSV_MEDIA_TYPE.encode())
    return json_response(
        201,
        {
            "id": result.declaration.id,
            "type": t.value,
            "status": result.declaration.status.value,
            "accepted": result.accepted,
            "refused": result.refused,
            "lines": [_line_json(r) for r in result.lines],
        },
        ((b"Location", f"/api/v1/declarations/{result.declaration.id}".encode()),),
    )
