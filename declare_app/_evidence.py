"""Uploaded evidence (issue 14, defect 8): what a file must be, and where it is kept.

Evidence is a PDF, JPEG or PNG of at most :data:`MAX_FILE_BYTES`.  What a file is
comes from its content alone — the magic bytes and a light structural check
(:func:`sniff`) — never from its name or the Content-Type the client sent, so a
renamed executable or an HTML page called ``证明.pdf`` is refused.  The check is
strict on structure (a PNG's chunk chain and CRCs up to IEND and nothing after; a
JPEG's marker segments up to the scan and its EOI; a PDF's header and its
``%%EOF`` trailer) because a file that is two formats at once is the usual way to
make a viewer run what an upload check let through.

Storage: the database, as ``evidence_blobs`` (one row per SHA-256, insert-only) and
``declaration_attachments`` (per declaration version).  Not the state directory:
backups, restores and several nodes on one PostgreSQL then see the same files, with
no second store to keep in step and no partial file to clean up after a crash (the
row and the declaration's event commit together).  A resubmission copies the rows
to the new version, so each version keeps the files it was decided on.

Per declaration version: at most :data:`MAX_FILES` files and :data:`MAX_TOTAL_BYTES`
in all.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
import zlib
from typing import Any, Final

from sqlalchemy import Connection, delete, func, insert, select

from declare_app._schema import declaration_attachments, evidence_blobs
from declare_app.interfaces import Attachment, DeclarationError

MAX_FILE_BYTES: Final = 5 * 1024 * 1024
MAX_FILES: Final = 10
MAX_TOTAL_BYTES: Final = 20 * 1024 * 1024
MAX_LABEL_CHARS: Final = 50
MAX_FILENAME_CHARS: Final = 120
MEDIA_TYPES: Final = ("application/pdf", "image/jpeg", "image/png")

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PDF_HEADER: Final = re.compile(rb"%PDF-[12]\.[0-9]")
_PDF_TAIL: Final = 1024  # %%EOF must be within the last KiB (ISO 32000-1 §7.5.5, loosely)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _refuse(message: str) -> DeclarationError:
    return DeclarationError("bad-evidence", message)


_NOT_ALLOWED: Final = "附件只能是 PDF、JPEG 或 PNG 文件（按文件内容判断，与文件名无关）"


def sniff(data: bytes) -> str:
    """The media type of *data* (one of :data:`MEDIA_TYPES`), or refused with a
    :class:`DeclarationError` ``bad-evidence`` saying why."""
    if not data:
        raise _refuse("请选择要上传的 PDF、JPEG 或 PNG 文件（未选择文件或文件为空）")
    if len(data) > MAX_FILE_BYTES:
        raise DeclarationError("too-large", f"附件不能超过 {MAX_FILE_BYTES >> 20} MB")
    if data.startswith(_PNG_SIGNATURE):
        _check_png(data)
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        _check_jpeg(data)
        return "image/jpeg"
    if _PDF_HEADER.match(data):
        if b"%%EOF" not in data[-_PDF_TAIL:]:
            raise _refuse("PDF 文件不完整（缺少文件结束标记）")
        return "application/pdf"
    raise _refuse(_NOT_ALLOWED)


def _check_png(data: bytes) -> None:
    """Chunks from the signature: IHDR first, each CRC right, IEND last, nothing after."""
    at = len(_PNG_SIGNATURE)
    first = True
    while True:
        if at + 12 > len(data):
            raise _refuse("PNG 文件不完整")
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        end = at + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise _refuse("PNG 文件不完整")
        if first and (kind != b"IHDR" or length != 13):
            raise _refuse("PNG 文件结构不正确")
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[at + 4 : end - 4]) != crc:
            raise _refuse("PNG 文件已损坏（校验不符）")
        first = False
        at = end
        if kind == b"IEND":
            if at != len(data):
                raise _refuse("PNG 文件结束后还有其他内容")
            return


def _check_jpeg(data: bytes) -> None:
    """Marker segments from SOI to the first scan (a frame header among them), then
    the EOI at the end (trailing zero padding allowed)."""
    at = 2
    frame = False
    while True:
        if at + 4 > len(data) or data[at] != 0xFF:
            raise _refuse("JPEG 文件结构不正确")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        if marker in (0xD8, 0xD9):
            raise _refuse("JPEG 文件结构不正确")
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if length < 2 or at + 2 + length > len(data):
            raise _refuse("JPEG 文件不完整")
        if marker in _JPEG_SOF:
            frame = True
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        at += 2 + length
    if not frame:
        raise _refuse("JPEG 文件缺少图像帧")
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise _refuse("JPEG 文件不完整（缺少结束标记）")


def clean_label(label: object) -> str:
    """The material's name: required, short, no control characters."""
    text = unicodedata.normalize("NFC", label).strip() if isinstance(label, str) else ""
    if not text:
        raise _refuse("请填写材料名称（例如：劳动合同、诊断证明书）")
    if len(text) > MAX_LABEL_CHARS or _CONTROL.search(text):
        raise _refuse(f"材料名称不能超过 {MAX_LABEL_CHARS} 个字，且不能含控制字符")
    return text


def clean_filename(name: object) -> str:
    """The client's file name, for display only: no path, no control characters,
    bounded; a name that is nothing but dots becomes 附件."""
    text = name if isinstance(name, str) else ""
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()[:MAX_FILENAME_CHARS]
    return text if text.strip(".") else "附件"


def _attachment(row: Any, blob: Any) -> Attachment:
    return Attachment(
        id=int(row.id),
        declaration_id=row.declaration_id,
        label=row.label,
        filename=row.filename,
        media_type=blob.media_type,
        size=int(blob.size),
        sha256=row.sha256,
        uploaded_at=float(row.uploaded_at),
        uploaded_by=row.uploaded_by,
        carried_from=row.carried_from,
    )


_COLUMNS = (
    declaration_attachments,
    evidence_blobs.c.media_type,
    evidence_blobs.c.size,
)


def attachments_of(conn: Connection, declaration_id: str) -> list[Attachment]:
    """The attachments of one declaration version, in upload order (no content)."""
    rows = conn.execute(
        select(*_COLUMNS)
        .join(evidence_blobs, evidence_blobs.c.sha256 == declaration_attachments.c.sha256)
        .where(declaration_attachments.c.declaration_id == declaration_id)
        .order_by(declaration_attachments.c.id)
    ).all()
    return [_attachment(r, r) for r in rows]


def content_of(
    conn: Connection, declaration_id: str, attachment_id: int
) -> tuple[Attachment, bytes] | None:
    row = conn.execute(
        select(*_COLUMNS, evidence_blobs.c.content)
        .join(evidence_blobs, evidence_blobs.c.sha256 == declaration_attachments.c.sha256)
        .where(
            declaration_attachments.c.declaration_id == declaration_id,
            declaration_attachments.c.id == attachment_id,
        )
    ).first()
    if row is None:
        return None
    return _attachment(row, row), bytes(row.content)


def store(
    conn: Connection,
    declaration_id: str,
    *,
    label: str,
    filename: str,
    data: bytes,
    uploaded_by: str,
    session_id: str | None,
    now: float,
) -> Attachment:
    """Check *data* and keep it as an attachment of *declaration_id* (within the
    per-version caps); the same content twice is stored once."""
    media_type = sniff(data)
    label = clean_label(label)
    filename = clean_filename(filename)
    count, total = conn.execute(
        select(func.count(), func.coalesce(func.sum(evidence_blobs.c.size), 0))
        .select_from(declaration_attachments)
        .join(evidence_blobs, evidence_blobs.c.sha256 == declaration_attachments.c.sha256)
        .where(declaration_attachments.c.declaration_id == declaration_id)
    ).one()
    if int(count) >= MAX_FILES:
        raise DeclarationError("too-many-files", f"每份申报最多上传 {MAX_FILES} 个附件")
    if int(total) + len(data) > MAX_TOTAL_BYTES:
        raise DeclarationError(
            "too-large", f"每份申报的附件合计不能超过 {MAX_TOTAL_BYTES >> 20} MB"
        )
    digest = hashlib.sha256(data).hexdigest()
    known = conn.execute(
        select(evidence_blobs.c.sha256).where(evidence_blobs.c.sha256 == digest)
    ).first()
    if known is None:
        conn.execute(
            insert(evidence_blobs).values(
                sha256=digest, media_type=media_type, size=len(data), content=data, stored_at=now
            )
        )
    new_id = conn.execute(
        insert(declaration_attachments)
        .values(
            declaration_id=declaration_id,
            sha256=digest,
            label=label,
            filename=filename,
            uploaded_at=now,
            uploaded_by=uploaded_by,
            session_id=session_id,
        )
        .returning(declaration_attachments.c.id)
    ).scalar_one()
    return Attachment(
        id=int(new_id),
        declaration_id=declaration_id,
        label=label,
        filename=filename,
        media_type=media_type,
        size=len(data),
        sha256=digest,
        uploaded_at=now,
        uploaded_by=uploaded_by,
    )


def remove(conn: Connection, declaration_id: str, attachment_id: int) -> Attachment | None:
    """Take an attachment off a draft (the blob stays: another version may hold it)."""
    found = [a for a in attachments_of(conn, declaration_id) if a.id == attachment_id]
    if not found:
        return None
    conn.execute(
        delete(declaration_attachments).where(declaration_attachments.c.id == attachment_id)
    )
    return found[0]


def carry_over(conn: Connection, from_id: str, to_id: str) -> int:
    """A resubmission keeps the earlier version's files (the employer may then remove
    or add while it is a draft); the earlier version keeps its own rows."""
    rows = conn.execute(
        select(declaration_attachments)
        .where(declaration_attachments.c.declaration_id == from_id)
        .order_by(declaration_attachments.c.id)
    ).all()
    for row in rows:
        conn.execute(
            insert(declaration_attachments).values(
                declaration_id=to_id,
                sha256=row.sha256,
                label=row.label,
                filename=row.filename,
                uploaded_at=row.uploaded_at,
                uploaded_by=row.uploaded_by,
                session_id=row.session_id,
                carried_from=row.id,
            )
        )
    return len(rows)
