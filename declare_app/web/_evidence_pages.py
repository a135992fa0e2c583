"""The employer's evidence routes (issue 14, defect 8): upload onto a draft, remove
from it, download one's own file.

* ``POST /declarations/<id>/attachments`` — ``multipart/form-data`` with ``label``
  (材料名称), ``file`` and the CSRF token part; the body is capped at
  :data:`EVIDENCE_MAX_BODY` by the web shell before it is read, and the file part at
  5 MB by the streaming reader (:data:`MULTIPART_LIMITS`), so nothing unbounded is
  ever buffered.  What the file is comes from its content (``_evidence.sniff``).
* ``POST /declarations/<id>/attachments/<n>/delete`` — a draft's file taken off;
* ``GET /declarations/<id>/attachments/<n>`` — the file, as an attachment to save
  (never shown inline), with the content type found by the check.

A workflow without evidence calls (a test fake) answers 501.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

import web
from declare_app._evidence import MAX_FILE_BYTES
from declare_app.interfaces import Attachment, EvidenceWorkflow
from declare_app.web._app import Ctx, HttpError, Response, redirect, status_for, workflow_refusal

# The one file, its label and the CSRF token; framing and the small fields besides.
EVIDENCE_MAX_BODY: Final = MAX_FILE_BYTES + 64 * 1024
MULTIPART_LIMITS: Final = web.MultipartLimits(
    max_file_bytes=MAX_FILE_BYTES, max_parts=4, max_field_bytes=1024
)


def _evidence(ctx: Ctx) -> EvidenceWorkflow:
    workflow = ctx.app.workflow
    if not isinstance(workflow, EvidenceWorkflow):
        raise HttpError(501, "not-implemented", "本系统尚未启用附件上传")
    return workflow


def _number(n: str) -> int:
    try:
        return int(n)
    except ValueError:
        raise HttpError(404, "not-found", "附件不存在") from None


async def _back_with_notice(ctx: Ctx, id: str, error: Exception) -> Response:
    refusal = workflow_refusal(error)
    if refusal is None or status_for(refusal) == 404:
        raise error
    from declare_app.web._pages import _detail, with_evidence

    decl, versions, atts = await ctx.run(with_evidence, ctx.app.workflow, ctx.actor, id)
    return _detail(ctx, decl, versions, atts, status=status_for(refusal), notice=refusal.message)


async def upload(ctx: Ctx, id: str) -> Response:
    workflow = _evidence(ctx)
    upload = ctx.upload
    # No file is the workflow's refusal too, after it found the declaration: another
    # unit's id must answer 404 whatever the body (no hint that it exists).
    try:
        await ctx.run(
            workflow.attach,
            ctx.actor,
            id,
            label=(upload.field("label") if upload else None) or "",
            filename=upload.filename if upload else "",
            data=(upload.file if upload else None) or b"",
            now=ctx.now(),
        )
    except Exception as e:
        return await _back_with_notice(ctx, id, e)
    return redirect(f"/declarations/{quote(id, safe='')}?msg=attached")


async def remove(ctx: Ctx, id: str, n: str) -> Response:
    workflow = _evidence(ctx)
    try:
        await ctx.run(workflow.detach, ctx.actor, id, _number(n), now=ctx.now())
    except Exception as e:
        return await _back_with_notice(ctx, id, e)
    return redirect(f"/declarations/{quote(id, safe='')}?msg=detached")


def file_response(found: Attachment, data: bytes) -> Response:
    """A stored file to save, never to render: ``attachment`` disposition, the type
    its content was checked to be (with ``nosniff`` from the security headers)."""
    name = f"evidence-{found.id}.{found.extension}"
    return Response(
        200,
        data,
        found.media_type.encode("ascii"),
        ((b"Content-Disposition", web.content_disposition(name)),),
    )


async def download(ctx: Ctx, id: str, n: str) -> Response:
    workflow = _evidence(ctx)
    found, data = await ctx.run(workflow.attachment_file, ctx.actor, id, _number(n))
    return file_response(found, data)
