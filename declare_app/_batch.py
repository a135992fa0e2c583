"""Batch files for 人员增加 and 年度缴费基数申报 (DOMAIN.md §5.2, §5.5, §7 batch notes):
reading an uploaded CSV or .xlsx into lines, the downloadable templates, and the
per-line result list.  Pure: no database, no Twisted.

A file is one header row (the template's Chinese labels, or the form field names;
a trailing ``*`` and surrounding spaces are ignored; a 序号 column is allowed and
ignored) and then one line per person.  What is refused, and how:

* the whole file (:class:`BatchFileError`): over :data:`MAX_FILE_BYTES`; neither CSV
  nor .xlsx (an old .xls is named as such); CSV not in UTF-8 (with or without BOM) or
  GB18030/GBK (what Excel in China saves); a header with an unknown or repeated
  column, or without a required one; no line; more than :data:`MAX_LINES` lines
  (the message says how many); an .xlsx whose parts would inflate beyond
  :data:`MAX_XLSX_PART_BYTES` each or :data:`MAX_XLSX_TOTAL_BYTES` together, or with
  more than :data:`MAX_XLSX_PARTS` parts (a zip bomb), checked on the zip directory
  before anything is inflated — Python's zipfile never inflates a member beyond its
  declared size, so the declared sizes bound the work;
* one line (``BatchLine.problem``, the line is listed as refused and never
  validated): a cell over :data:`MAX_CELL_CHARS`; more cells than header columns;
  a formula cell (.xlsx) — formulas are refused, not evaluated and their cached
  values not trusted: the cached value is whatever the writing program stored, and
  the template asks for text; the template's own example line left in.

Empty lines are skipped; line numbers are the file's (the header is line 1; in a CSV
a quoted cell may span lines: a line's number is where it starts).  Every cell is
text: an .xlsx number becomes its decimal text (an integer-valued float without
``.0``), a date cell ``YYYY-MM-DD`` (or ``YYYY-MM`` for a month field).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from declare_app._rules import FORM_SPECS, FieldSpec
from declare_app.interfaces import BatchLine, DeclarationError, DeclarationType, LineResult

MAX_FILE_BYTES: Final = 8 * 1024 * 1024
MAX_LINES: Final = 10_000
MAX_CELL_CHARS: Final = 1000
MAX_COLUMNS: Final = 64
MAX_XLSX_PARTS: Final = 200
MAX_XLSX_PART_BYTES: Final = 48 * 1024 * 1024
MAX_XLSX_TOTAL_BYTES: Final = 96 * 1024 * 1024
MAX_EMPTY_ROWS: Final = 100_000  # formatted but empty rows an .xlsx may carry
BATCH_TYPES: Final = (DeclarationType.PERSON_ADD, DeclarationType.ANNUAL_BASE)
IGNORED_COLUMNS: Final = frozenset({"序号"})

CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_XLSX_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (and other old Office files)
_HEADER_CLEAN = re.compile(r"[\s\u3000*＊]+")
_ROW_PREFIX = re.compile(r"^第\d+行：")

# One example line per type, as text (all columns text: DOMAIN §5.5 "all columns as
# text or the upload fails").
_EXAMPLES: Final[Mapping[DeclarationType, Mapping[str, str]]] = {
    DeclarationType.PERSON_ADD: {
        "name": "张三",
        "gender": "男",
        "id_type": "01",
        "id_number": "330682199001151234",
        "nation": "01",
        "hukou_type": "A",
        "hukou_address": "浙江省绍兴市上虞区百官街道",
        "staff_kind": "B",
        "employment_form": "1",
        "work_start_month": "2012-07",
        "hire_date": "2025-03-01",
        "insurances": "110,210,310,410,510",
        "add_type": "A",
        "start_month": "2025-03",
        "monthly_wage": "6000.00",
        "phone": "13800000000",
    },
    DeclarationType.ANNUAL_BASE: {
        "person_no": "33068200000001",
        "name": "张三",
        "id_number": "330682199001151234",
        "wage": "6500.00",
    },
}


class BatchFileError(DeclarationError):
    """The whole file is refused (``code``: too-large, bad-file, bad-header,
    too-many-lines, no-lines); ``message`` is Chinese."""


def batch_columns(type: DeclarationType) -> tuple[FieldSpec, ...]:
    """The columns of *type*'s batch file, in template order: a person-add line is the
    form, an annual-base line the form's line."""
    if type is DeclarationType.PERSON_ADD:
        return FORM_SPECS[type].fields
    if type is DeclarationType.ANNUAL_BASE:
        return FORM_SPECS[type].fields_by_name["lines"].columns
    raise BatchFileError("bad-type", "该业务不支持批量导入")


# -- reading --------------------------------------------------------------------------


def parse_batch(type: DeclarationType, data: bytes) -> tuple[BatchLine, ...]:
    """The lines of an uploaded file (CSV or .xlsx, told apart by content)."""
    columns = batch_columns(type)
    if len(data) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // 1024 // 1024
        raise BatchFileError("too-large", f"文件过大，不能超过 {limit} MiB")
    if not data.strip():
        raise BatchFileError("no-lines", "文件为空")
    if data.startswith(_OLE2_MAGIC):
        raise BatchFileError("bad-file", "不支持旧版 .xls 文件，请另存为 .xlsx 或 CSV 后上传")
    rows = _xlsx_rows(data) if data.startswith(_XLSX_MAGIC) else _csv_rows(data)
    return _lines(type, columns, rows)


def _lines(
    type: DeclarationType,
    columns: tuple[FieldSpec, ...],
    rows: Iterator[tuple[int, list[Any]]],
) -> tuple[BatchLine, ...]:
    header: list[str | None] | None = None
    example = _EXAMPLES[type]
    lines: list[BatchLine] = []
    empty = 0
    for number, cells in rows:
        if all(_blank(c) for c in cells):
            empty += 1
            if empty > MAX_EMPTY_ROWS:
                raise BatchFileError("bad-file", "文件中空行过多")
            continue
        if header is None:
            header = _header(columns, cells)
            continue
        if len(lines) >= MAX_LINES:
            raise BatchFileError(
                "too-many-lines",
                f"一次最多导入 {MAX_LINES} 行，本文件超过 {MAX_LINES} 行，请分成多个文件",
            )
        lines.append(_line(number, header, cells, example))
    if header is None:
        raise BatchFileError("no-lines", "文件为空")
    if not lines:
        raise BatchFileError("no-lines", "文件只有表头，没有数据行")
    return tuple(lines)


def _header(columns: tuple[FieldSpec, ...], cells: list[Any]) -> list[str | None]:
    by_name: dict[str, str] = {}
    for f in columns:
        by_name[f.name] = f.name
        by_name[_clean_header(f.label)] = f.name
    header: list[str | None] = []
    unknown: list[str] = []
    seen: set[str] = set()
    if any(not _blank(c) for c in cells[MAX_COLUMNS:]):
        raise BatchFileError("bad-header", f"表头最多 {MAX_COLUMNS} 列")
    cells = cells[:MAX_COLUMNS]
    for cell in cells:
        text = _clean_header(_text(cell, None))
        if not text or text in IGNORED_COLUMNS:
            header.append(None)
            continue
        name = by_name.get(text)
        if name is None:
            unknown.append(text[:30])
            header.append(None)
            continue
        if name in seen:
            raise BatchFileError("bad-header", f"表头中“{text[:30]}”列重复")
        seen.add(name)
        header.append(name)
    if unknown:
        raise BatchFileError(
            "bad-header", f"表头中有不认识的列：{'、'.join(unknown)[:200]}（请使用下载的模板）"
        )
    missing = [f.label for f in columns if f.required and f.name not in seen]
    if missing:
        raise BatchFileError("bad-header", f"表头缺少必填列：{'、'.join(missing)}")
    return header


def _clean_header(text: str) -> str:
    return _HEADER_CLEAN.sub("", text)


def _line(
    number: int, header: list[str | None], cells: list[Any], example: Mapping[str, str]
) -> BatchLine:
    values: dict[str, str] = {}
    problem: str | None = None
    for index, cell in enumerate(cells):
        if index >= len(header):
            if not _blank(cell):
                problem = "该行的列数多于表头"
            continue
        name = header[index]
        if name is None:
            continue
        if isinstance(cell, _Formula):
            problem = f"第{index + 1}列是公式，请复制后“粘贴为数值”再上传"
            continue
        text = _text(cell, name)
        if len(text) > MAX_CELL_CHARS:
            problem = f"第{index + 1}列内容过长（超过 {MAX_CELL_CHARS} 个字符）"
            text = text[:MAX_CELL_CHARS]
        if text:
            values[name] = text
    if problem is None and values == {k: v for k, v in example.items() if k in header}:
        problem = "这是模板中的示例行，请删除后再上传"
    return BatchLine(number=number, values=values, problem=problem)


@dataclass(frozen=True)
class _Formula:
    """An .xlsx formula cell (refused)."""

    text: str


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


_MONTH_FIELDS = frozenset({"birth_month", "work_start_month", "start_month"})


def _text(cell: Any, name: str | None) -> str:
    """A cell as the text a form would carry."""
    text: str
    if cell is None:
        text = ""
    elif isinstance(cell, bool):
        text = "是" if cell else "否"
    elif isinstance(cell, datetime | date):
        day = cell.date() if isinstance(cell, datetime) else cell
        text = day.strftime("%Y-%m") if name in _MONTH_FIELDS else day.isoformat()
    elif isinstance(cell, float):
        integral = cell.is_integer() and abs(cell) < 1e15
        text = str(int(cell)) if integral else format(Decimal(repr(cell)), "f")
    else:
        text = str(cell)
    return text.strip()


def _csv_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    text = _decode(data)
    if "\x00" in text:
        raise BatchFileError("bad-file", "文件不是 CSV 或 .xlsx 表格")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for row in reader:
            if len(row) > MAX_COLUMNS * 4:
                raise BatchFileError("bad-file", f"第{start}行列数过多")
            yield start, list(row)
            start = reader.line_num + 1
    except csv.Error as e:
        message = f"CSV 文件格式有误（第{start}行附近）：{e}"[:200]
        raise BatchFileError("bad-file", message) from None


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    else:
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BatchFileError(
        "bad-file", "无法识别文件编码：CSV 应为 UTF-8 或 GBK/GB18030 编码，或上传 .xlsx 文件"
    )


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    """The first worksheet's rows, after the zip directory passed the size checks."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BatchFileError("bad-file", "文件不是有效的 .xlsx 表格") from None
    _check_inflated_sizes(infos)
    from openpyxl import load_workbook  # imported here: only an .xlsx upload needs it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:  # openpyxl raises many kinds on a malformed file
        raise BatchFileError("bad-file", "文件不是有效的 .xlsx 表格，或已损坏") from None
    try:
        if not book.worksheets:
            raise BatchFileError("bad-file", ".xlsx 文件中没有工作表")
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # ignore the file's claimed dimension (may be huge)
        try:
            for number, row in enumerate(sheet.iter_rows(), start=1):
                cells: list[Any] = []
                for cell in row[: MAX_COLUMNS * 4]:
                    value = getattr(cell, "value", None)
                    if getattr(cell, "data_type", None) == "f":
                        value = _Formula(str(value))
                    cells.append(value)
                yield number, cells
        except BatchFileError:
            raise
        except Exception:
            raise BatchFileError("bad-file", ".xlsx 文件内容无法读取，或已损坏") from None
    finally:
        book.close()


def _check_inflated_sizes(infos: Sequence[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_XLSX_PARTS:
        raise BatchFileError("bad-file", ".xlsx 文件结构异常（部件过多）")
    total = 0
    for info in infos:
        if info.file_size > MAX_XLSX_PART_BYTES:
            raise BatchFileError("bad-file", ".xlsx 文件解压后过大，已拒绝")
        total += info.file_size
    if total > MAX_XLSX_TOTAL_BYTES:
        raise BatchFileError("bad-file", ".xlsx 文件解压后过大，已拒绝")


# -- templates ------------------------------------------------------------------------


def template_rows(type: DeclarationType) -> tuple[list[str], list[str]]:
    """The header (Chinese labels) and the example line of *type*'s template."""
    columns = batch_columns(type)
    example = _EXAMPLES[type]
    return [f.label for f in columns], [example.get(f.name, "") for f in columns]


def template_csv(type: DeclarationType) -> bytes:
    """The CSV template: UTF-8 with BOM (so Excel opens it as UTF-8), header and example."""
    header, example = template_rows(type)
    return _csv_bytes([header, example])


def template_xlsx(type: DeclarationType) -> bytes:
    """The .xlsx template: header and example line, every column formatted as text."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    header, example = template_rows(type)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = type.chinese[:31]
    sheet.append(header)
    sheet.append(example)
    bold = Font(bold=True)
    required = {f.label for f in batch_columns(type) if f.required}
    for column, label in enumerate(header, start=1):
        letter = get_column_letter(column)
        sheet.column_dimensions[letter].width = max(12, len(label) * 2 + 4)
        sheet.column_dimensions[letter].number_format = "@"
        if label in required:
            sheet.cell(row=1, column=column).font = bold
        for row in (1, 2):
            sheet.cell(row=row, column=column).number_format = "@"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- results --------------------------------------------------------------------------


def line_message(message: str) -> str:
    """A finding's message without the rules' own "第N行：" (the result has the file's)."""
    return _ROW_PREFIX.sub("", message)


def results_csv(results: Iterable[LineResult]) -> bytes:
    """The per-line results as a CSV (UTF-8 with BOM): 行号, 结果, 身份号码/姓名, 说明.
    A cell that a spreadsheet would read as a formula is prefixed with ``'``."""
    rows: list[list[str]] = [["行号", "结果", "公民身份号码", "姓名", "说明"]]
    for r in results:
        notes = "；".join(
            ("" if f.severity == "error" else "提示：") + line_message(f.message)
            for f in r.findings
        )
        rows.append(
            [
                str(r.number),
                "接受" if r.accepted else "拒绝",
                _safe_cell(r.id_number),
                _safe_cell(r.name),
                _safe_cell(notes),
            ]
        )
    return _csv_bytes(rows)


def _safe_cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_bytes(rows: Iterable[Sequence[str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")
