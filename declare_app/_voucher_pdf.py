"""The 办理凭证 (voucher) of an applied declaration as a one-page A4 PDF.

Pure: :func:`voucher_pdf` takes a :class:`VoucherView` and returns the PDF bytes; it
reads no clock and no configuration, so the same voucher gives the same bytes
(reportlab's ``invariant`` mode, with the creation date and the document id taken
from the voucher).

Chinese is drawn with a free CJK TrueType font embedded as a subset — only the glyphs
the voucher uses — so it prints the same in every viewer, including those that have no
Chinese font of their own: WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``,
Apache-2.0/GPLv3), or Zen Hei when only that is installed.  The file is read once per
process.  Without either, the voucher falls back to reportlab's CID font
``STSong-Light``, which is not embedded (the viewer supplies a font), and says so in
the log once.  ``fonts-noto-cjk`` cannot serve: its outlines are CFF, which reportlab
does not embed.

Every value is untrusted text (unit names and form values come from employers): it is
cut to a bounded length, control and formatting characters are removed, and it is
drawn as plain text (there is no markup to inject), wrapped inside its cell and cut
with an ellipsis when it would not fit.  The page never grows past one sheet: detail
rows that do not fit are summarised in a last row.
"""

from __future__ import annotations

import functools
import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from twisted.logger import Logger

from declare_app._china_time import CHINA_TIME
from declare_app.interfaces import DeclarationType

__all__ = ["FOOTER", "VoucherView", "mask_id_number", "voucher_font", "voucher_pdf"]

FOOTER = "本凭证由社会保险网上申报系统生成，凭证号可在经办机构核验"

# (registered name, file, index in a TrueType collection), in order of preference.
EMBEDDED_FONTS = (
    ("WenQuanYiMicroHei", Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),
    ("WenQuanYiZenHei", Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),
)
FALLBACK_FONT = "STSong-Light"  # reportlab's CID font: named in the PDF, not embedded

_log = Logger(namespace="declare_app.voucher")

# Bounds on untrusted text, applied before any layout work.
MAX_RAW_CHARS = 2000  # looked at, per value; the rest is dropped unread
MAX_VALUE_CHARS = 300  # kept after cleaning, per value
MAX_LABEL_CHARS = 40
MAX_DETAIL_ROWS = 60  # more are summarised, whatever room is left
MAX_VALUE_LINES = 3  # lines a value may wrap to inside its cell

ELLIPSIS = "…"
# 〓 (GB2312 A1FE) stands for a character the font cannot draw: one the embedded font
# has no glyph for, or (STSong-Light, reached through a UCS-2 CMap) one beyond the BMP.
REPLACEMENT = "\u3013"

_PAGE_W, _PAGE_H = A4
_MARGIN = 56.0  # ~20 mm
_TABLE_W = _PAGE_W - 2 * _MARGIN
_LABEL_W = 120.0
_PAD = 5.0
_SIZE = 10.5
_LEADING = 14.0
_FOOTER_SIZE = 9.0
_FOOTER_Y = 40.0
_TABLE_BOTTOM = _FOOTER_Y + 30.0  # rows stop above this line


@dataclass(frozen=True)
class VoucherView:
    """What a voucher shows; built by the workflow from an applied declaration.

    *applied_at* must be timezone-aware; it is shown in Asia/Shanghai time.
    *details* are (label, value) rows of the declaration's content, already
    formatted for people (mask identity numbers with :func:`mask_id_number`).
    """

    voucher_no: str
    declaration_id: str
    declaration_type: DeclarationType
    unit_code: str
    unit_name: str
    applied_at: datetime
    auditor: str
    session_id: str | None
    details: Sequence[tuple[str, str]] = ()
    agency_name: str = "—"  # 经办机构 ([agency] name)
    submitted_at: datetime | None = None  # timezone-aware, like applied_at

    def __post_init__(self) -> None:
        for at in (self.applied_at, self.submitted_at):
            if at is not None and (at.tzinfo is None or at.utcoffset() is None):
                raise ValueError("applied_at and submitted_at must be timezone-aware")
        # A frozen value should not share a caller's mutable list.
        object.__setattr__(
            self, "details", tuple((str(label), str(value)) for label, value in self.details)
        )


def mask_id_number(id_number: str) -> str:
    """Show only the first 6 and the last 4 characters of an identity number.

    ``"330682199001011234"`` → ``"330682********1234"``.  A value of 10 characters
    or fewer would be shown whole by that rule, so it is masked entirely.
    """
    text = "".join(id_number.split())
    if len(text) <= 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


@dataclass(frozen=True)
class _Font:
    name: str
    embedded: bool
    glyphs: frozenset[int]  # code points the font draws; empty: every BMP one (CID)

    def draws(self, char: str) -> bool:
        code = ord(char)
        if not self.embedded:
            return code <= 0xFFFF
        return code in self.glyphs


@functools.cache
def _font() -> _Font:
    """The font vouchers use, registered with reportlab once per process."""
    for name, path, index in EMBEDDED_FONTS:
        if not path.is_file():
            continue
        try:
            font = TTFont(name, str(path), subfontIndex=index)
        except (OSError, TTFError) as e:
            _log.warn("voucher font {path} cannot be used: {why}", path=str(path), why=str(e))
            continue
        pdfmetrics.registerFont(font)
        return _Font(name, True, frozenset(font.face.charToGlyph))
    _log.warn(
        "no CJK TrueType font found ({paths}): vouchers name {fallback} without embedding "
        "it; install fonts-wqy-microhei",
        paths=", ".join(str(path) for _, path, _ in EMBEDDED_FONTS),
        fallback=FALLBACK_FONT,
    )
    pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_FONT))
    return _Font(FALLBACK_FONT, False, frozenset())


def voucher_font() -> tuple[str, bool]:
    """The name of the font vouchers are drawn with, and whether it is embedded."""
    font = _font()
    return font.name, font.embedded


def voucher_pdf(voucher: VoucherView) -> bytes:
    """The voucher as a one-page A4 PDF; the same *voucher* always gives the same bytes."""
    font = _font().name
    applied = voucher.applied_at.astimezone(CHINA_TIME)
    buffer = io.BytesIO()
    # The initial font too, or reportlab names Helvetica (not embedded) on the page.
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1, initialFontName=font)
    title = f"办理凭证 {_clean(voucher.voucher_no, 60)}"
    canvas.setTitle(title)
    canvas.setAuthor("社会保险网上申报系统")
    canvas.setCreator("ssgate")
    canvas.setSubject(voucher.declaration_type.chinese)
    canvas.setKeywords("")
    stamp = "D:" + applied.strftime("%Y%m%d%H%M%S") + "+08'00'"
    canvas.setDateFormatter(lambda *_ignored: stamp)
    # In invariant mode the document id is a digest of a fixed seed; mix the voucher in
    # so that two vouchers never share an id (reportlab has no public setter for it).
    canvas._doc.updateSignature("\x00".join([voucher.voucher_no, voucher.declaration_id, stamp]))

    y = _PAGE_H - _MARGIN
    canvas.setFont(font, 12)
    canvas.drawCentredString(_PAGE_W / 2, y - 12, "社会保险网上申报")
    canvas.setFont(font, 22)
    canvas.drawCentredString(_PAGE_W / 2, y - 44, "办理凭证")
    y -= 64

    head = [
        ("凭证号", voucher.voucher_no),
        ("业务类型", voucher.declaration_type.chinese),
        ("申报编号", voucher.declaration_id),
        ("单位编号", voucher.unit_code),
        ("单位名称", voucher.unit_name),
        ("经办机构", voucher.agency_name),
        ("提交时间", _when(voucher.submitted_at)),
        ("办结时间", _when(applied)),
        ("审核人", voucher.auditor),
        ("申报会话", voucher.session_id or "—"),
    ]
    for label, value in head:
        y = _draw_row(canvas, y, label, value)

    y = _draw_section(canvas, y, "申报内容")
    details = list(voucher.details)
    if not details:
        y = _draw_row(canvas, y, "—", "（无）")
    for index, (label, value) in enumerate(details):
        remaining = len(details) - index
        summary = f"另有 {remaining} 项因篇幅未列出，请在申报中心查看"
        last = remaining == 1
        if index >= MAX_DETAIL_ROWS or not _fits(y, label, value, then=None if last else summary):
            y = _draw_row(canvas, y, "……", summary)
            break
        y = _draw_row(canvas, y, label, value)

    canvas.setFont(font, _FOOTER_SIZE)
    canvas.line(_MARGIN, _FOOTER_Y + 14, _MARGIN + _TABLE_W, _FOOTER_Y + 14)
    canvas.drawCentredString(_PAGE_W / 2, _FOOTER_Y, FOOTER)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _when(at: datetime | None) -> str:
    """Beijing time with its offset, as on the HTML voucher: ``2026-03-10 14:30:00 +08:00``."""
    if at is None:
        return "—"
    return at.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S") + " +08:00"


def _clean(text: str, limit: int) -> str:
    """Printable single-line text of at most *limit* characters (… marks a cut)."""
    raw = str(text)[:MAX_RAW_CHARS]
    out: list[str] = []
    for char in raw:
        category = unicodedata.category(char)
        if char in "\t\n\r\v\f" or category in ("Zl", "Zp", "Zs"):
            out.append(" ")
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue  # controls, bidi overrides, zero-width, lone surrogates, unassigned
        elif not _font().draws(char):
            out.append(REPLACEMENT)
        else:
            out.append(char)
    cleaned = " ".join("".join(out).split())
    if len(cleaned) > limit or len(text) > MAX_RAW_CHARS:
        cleaned = cleaned[: limit - 1].rstrip() + ELLIPSIS
    return cleaned


def _width(text: str, size: float) -> float:
    return float(pdfmetrics.stringWidth(text, _font().name, size))


def _fit(text: str, width: float, size: float) -> str:
    """*text* cut with an ellipsis so that it fits on one line of *width*."""
    if _width(text, size) <= width:
        return text
    while text and _width(text + ELLIPSIS, size) > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS


def _wrap(text: str, width: float, size: float, max_lines: int) -> list[str]:
    """Break *text* into at most *max_lines* lines of *width*; a cut ends with …."""
    lines: list[str] = []
    line = ""
    for index, char in enumerate(text):
        if line and _width(line + char, size) > width:
            if len(lines) == max_lines - 1:
                lines.append(_fit(line + text[index:], width, size))
                return lines
            lines.append(line)
            line = char.lstrip()
        else:
            line += char
    lines.append(line)
    return lines


def _cell_lines(label: str, value: str) -> tuple[str, list[str]]:
    label_text = _fit(_clean(label, MAX_LABEL_CHARS), _LABEL_W - 2 * _PAD, _SIZE)
    value_lines = _wrap(
        _clean(value, MAX_VALUE_CHARS), _TABLE_W - _LABEL_W - 2 * _PAD, _SIZE, MAX_VALUE_LINES
    )
    return label_text, value_lines


def _row_height(lines: int) -> float:
    return lines * _LEADING + 2 * _PAD - (_LEADING - _SIZE)


def _fits(y: float, label: str, value: str, *, then: str | None) -> bool:
    """Whether the row fits, with room left below it for the summary row *then*."""
    _, lines = _cell_lines(label, value)
    below = _row_height(len(_cell_lines("……", then)[1])) if then is not None else 0.0
    return y - _row_height(len(lines)) - below >= _TABLE_BOTTOM


def _draw_row(canvas: Canvas, y: float, label: str, value: str) -> float:
    label_text, value_lines = _cell_lines(label, value)
    height = _row_height(len(value_lines))
    canvas.setFont(_font().name, _SIZE)
    canvas.rect(_MARGIN, y - height, _TABLE_W, height, stroke=1, fill=0)
    canvas.line(_MARGIN + _LABEL_W, y - height, _MARGIN + _LABEL_W, y)
    baseline = y - _PAD - _SIZE * 0.85
    canvas.drawString(_MARGIN + _PAD, baseline, label_text)
    for line in value_lines:
        canvas.drawString(_MARGIN + _LABEL_W + _PAD, baseline, line)
        baseline -= _LEADING
    return y - height


def _draw_section(canvas: Canvas, y: float, title: str) -> float:
    height = _row_height(1)
    canvas.setFillGray(0.92)
    canvas.rect(_MARGIN, y - height, _TABLE_W, height, stroke=1, fill=1)
    canvas.setFillGray(0)
    canvas.setFont(_font().name, _SIZE)
    canvas.drawString(_MARGIN + _PAD, y - _PAD - _SIZE * 0.85, title)
    return y - height
