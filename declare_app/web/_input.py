"""What employers send, checked before anything reaches the workflow (sans-IO).

Bodies and query strings are decoded strictly (UTF-8, bounded field counts, JSON
without NaN, duplicate keys or runaway nesting); a body that cannot be read is a
:class:`MalformedInput` (HTTP 400).  A readable body becomes a payload through the
type's :class:`~declare_app._rules.FormSpec` (the rules' own spec): only its fields
are taken (anything else in a form is ignored, anything else in JSON is refused),
every value gets the shape its kind asks for, and what is wrong is a
:class:`~declare_app.interfaces.Finding` with rule ``INPUT`` on that field, in
Chinese (HTTP 422 / the form again with the message beside the field).

What makes a value *wrong for the declaration* (a bad ID number, a base out of range,
a missing required field) is the workflow's to say; here only what no declaration
could contain is refused: the wrong type, control characters, over-long text, a
choice that was never offered, a date that is not a date.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from declare_app import _vocabulary as vocabulary
from declare_app._rules import FieldKind, FieldSpec, FormSpec
from declare_app.interfaces import Finding

INPUT_RULE = "INPUT"
MAX_LINE_ERRORS = 20  # per batch field; the rest are counted


# -- values -------------------------------------------------------------------------------

_DATE_FORMS = vocabulary.DATE_FORMS
_MONTH_FORMS = vocabulary.MONTH_FORMS
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_MONEY = re.compile(r"\d{1,12}(?:\.\d{1,2})?")
_YEAR = re.compile(r"\d{4}")
_ID_CHARS = re.compile(r"[0-9A-Z()\-]*")
_TEL = re.compile(r"[0-9+\-() ]*")


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_characters(text: str, *, multiline: bool) -> None:
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise _Invalid("包含无效的字符")
        if category == "Cc" and not (multiline and ch in "\n\t"):
            raise _Invalid("包含不允许的控制字符" if multiline else "不能包含换行或控制字符")


def _valid_date(y: str, m: str, d: str) -> date:
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise _Invalid("不是有效的日期") from None


def _select(f: FieldSpec, value: str) -> str:
    if f.choice_label(value) is None:
        raise _Invalid("请从列表中选择")
    return value


def _parse_date(value: str) -> date:
    for form in _DATE_FORMS:
        m = form.fullmatch(value)
        if m is not None:
            return _valid_date(*m.groups())
    raise _Invalid("日期格式应为 YYYY-MM-DD，如 2025-03-15")


def _date(f: FieldSpec, value: str) -> str:
    return _parse_date(value).isoformat()


def _month(f: FieldSpec, value: str) -> str:
    for form in _MONTH_FORMS:
        m = form.fullmatch(value)
        if m is not None and 1 <= int(m.group(2)) <= 12:
            return f"{m.group(1)}-{int(m.group(2)):02d}"
    raise _Invalid("年月格式应为 YYYY-MM，如 2025-03")


def _datetime(f: FieldSpec, value: str) -> str:
    day_text, sep, time_text = value.replace("T", " ").partition(" ")
    m = _TIME.fullmatch(time_text.strip())
    if not sep or m is None:
        raise _Invalid("时间格式应为 YYYY-MM-DD HH:MM，如 2025-03-15 14:30")
    day = _parse_date(day_text)
    hh, mm = int(m.group(1)), int(m.group(2))
    if hh > 23 or mm > 59:
        raise _Invalid("不是有效的时间")
    return f"{day.isoformat()}T{hh:02d}:{mm:02d}"


def _money(f: FieldSpec, value: str) -> str:
    if not _MONEY.fullmatch(value):
        raise _Invalid("金额应为不小于 0 的数字，最多两位小数")
    return value


def _year(f: FieldSpec, value: str) -> str:
    if not _YEAR.fullmatch(value) or not 1900 <= int(value) <= 2100:
        raise _Invalid("年度应为四位数字，如 2025")
    return value


def _id_number(f: FieldSpec, value: str) -> str:
    value = value.replace(" ", "").upper()
    if not _ID_CHARS.fullmatch(value):
        raise _Invalid("证件号码只能包含数字和字母")
    return value


def _tel(f: FieldSpec, value: str) -> str:
    if not _TEL.fullmatch(value):
        raise _Invalid("电话号码只能包含数字、空格和 + - ( )")
    return value


_FORMATS: dict[FieldKind, Callable[[FieldSpec, str], str]] = {
    FieldKind.SELECT: _select,
    FieldKind.DATE: _date,
    FieldKind.MONTH: _month,
    FieldKind.DATETIME: _datetime,
    FieldKind.MONEY: _money,
    FieldKind.YEAR: _year,
    FieldKind.ID_NUMBER: _id_number,
    FieldKind.TEL: _tel,
}
# Typed with full-width digits or letters (common with Chinese input methods), these
# kinds are read as their ASCII forms.
_NFKC_KINDS = frozenset(_FORMATS) - {FieldKind.SELECT}


def _scalar(f: FieldSpec, value: str) -> str:
    """Normalise one scalar value of *f* or raise :class:`_Invalid`."""
    multiline = f.kind is FieldKind.TEXTAREA
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    _check_characters(value, multiline=multiline)
    if f.kind in _NFKC_KINDS:
        value = unicodedata.normalize("NFKC", value)
    value = value.strip()
    if len(value) > f.max_length:
        raise _Invalid(f"长度不能超过 {f.max_length} 个字符")
    if value == "":
        return ""
    check = _FORMATS.get(f.kind)
    return value if check is None else check(f, value)


def _json_scalar(f: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _scalar(f, value)
    if (
        f.kind in (FieldKind.MONEY, FieldKind.YEAR)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        text = str(value) if isinstance(value, int) else repr(value)
        if text.endswith(".0"):
            text = text[:-2]
        return _scalar(f, text)
    raise _Invalid(
        "应为字符串" if f.kind not in (FieldKind.MONEY, FieldKind.YEAR) else "应为数字或字符串"
    )


def _multi(f: FieldSpec, values: Sequence[str]) -> list[str]:
    chosen = set()
    for v in values:
        if f.choice_label(v) is None:
            raise _Invalid("请从列表中选择")
        chosen.add(v)
    return [c.value for c in f.choices if c.value in chosen]


# -- batch lines ----------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[,，\t]")


class _LineErrors:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.more = 0

    def add(self, message: str) -> None:
        if len(self.messages) < MAX_LINE_ERRORS:
            self.messages.append(message)
        else:
            self.more += 1

    def message(self) -> str | None:
        if not self.messages:
            return None
        text = "；".join(self.messages)
        if self.more:
            text += f"；另有 {self.more} 处错误"
        return text


def _line_cell(f: FieldSpec, column: FieldSpec, row: int, value: Any, errors: _LineErrors) -> str:
    try:
        return _json_scalar(column, value)
    except _Invalid as e:
        errors.add(f"第 {row} 行{column.label}：{e.message}")
        return value if isinstance(value, str) else ""


def _lines_from_text(f: FieldSpec, text: str) -> tuple[list[dict[str, str]], str | None]:
    errors = _LineErrors()
    rows: list[dict[str, str]] = []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        _check_characters(text, multiline=True)
    except _Invalid as e:
        return [], e.message
    if len(text) > f.max_length:
        return [], f"内容不能超过 {f.max_length} 个字符"
    numbered = [(i, line) for i, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if len(numbered) > f.max_lines:
        return [], f"一次最多申报 {f.max_lines} 行"
    width = len(f.columns)
    for number, line in numbered:
        cells = [c.strip() for c in _SEPARATORS.split(line)]
        if len(cells) != width:
            errors.add(f"第 {number} 行应有 {width} 列，实有 {len(cells)} 列")
            continue
        rows.append(
            {
                column.name: _line_cell(f, column, number, cell, errors)
                for column, cell in zip(f.columns, cells, strict=True)
            }
        )
    return rows, errors.message()


def _lines_from_json(f: FieldSpec, value: Any) -> tuple[list[dict[str, str]], str | None]:
    if value is None:
        return [], None
    if not isinstance(value, list):
        return [], "应为数组，每个元素为一行"
    if len(value) > f.max_lines:
        return [], f"一次最多申报 {f.max_lines} 行"
    errors = _LineErrors()
    rows: list[dict[str, str]] = []
    names = {c.name: c for c in f.columns}
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            errors.add(f"第 {number} 行应为对象")
            continue
        unknown = [k for k in item if k not in names]
        if unknown:
            errors.add(f"第 {number} 行含未知字段 {_short(unknown[0])}")
            continue
        rows.append(
            {
                column.name: _line_cell(f, column, number, item.get(column.name), errors)
                for column in f.columns
            }
        )
    return rows, errors.message()


def lines_to_text(rows: Any, f: FieldSpec) -> str:
    """Batch rows back into the textarea's form (for editing a stored declaration)."""
    if not isinstance(rows, list | tuple):
        return ""
    out = []
    for row in rows:
        if isinstance(row, Mapping):
            out.append(", ".join(_as_text(row.get(c.name)) for c in f.columns))
    return "\n".join(out)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "…"


# -- whole payloads -------------------------------------------------------------------------

RawValue = str | list[str]


@dataclass(frozen=True)
class ParsedPayload:
    """A payload for the workflow, the input as typed (to show the form again), and
    what is wrong with it (rule ``INPUT``)."""

    payload: dict[str, Any]
    raw: dict[str, RawValue]
    errors: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def _error(field: str, message: str) -> Finding:
    return Finding(INPUT_RULE, field, "error", message)


def payload_from_form(spec: FormSpec, pairs: Sequence[tuple[str, str]]) -> ParsedPayload:
    """Take the spec's fields from a submitted form; other names are ignored."""
    given: dict[str, list[str]] = {}
    for name, value in pairs:
        if name in spec.fields_by_name:
            given.setdefault(name, []).append(value)
    payload: dict[str, Any] = {}
    raw: dict[str, RawValue] = {}
    errors: list[Finding] = []
    for f in spec.fields:
        values = given.get(f.name, [])
        if f.kind is FieldKind.MULTI:
            raw[f.name] = values
            try:
                payload[f.name] = _multi(f, values)
            except _Invalid as e:
                errors.append(_error(f.name, e.message))
                payload[f.name] = []
            continue
        if len(values) > 1:
            raw[f.name] = values[0]
            errors.append(_error(f.name, "此项只能填写一个值"))
            payload[f.name] = ""
            continue
        text = values[0] if values else ""
        raw[f.name] = text
        if f.kind is FieldKind.LINES:
            rows, message = _lines_from_text(f, text)
            payload[f.name] = rows
            if message:
                errors.append(_error(f.name, message))
            continue
        try:
            payload[f.name] = _scalar(f, text)
        except _Invalid as e:
            errors.append(_error(f.name, e.message))
            payload[f.name] = ""
    return ParsedPayload(payload, raw, tuple(errors))


def payload_from_json(spec: FormSpec, value: Any) -> ParsedPayload:
    """A JSON ``payload`` object: unknown keys and wrong types are errors."""
    if not isinstance(value, dict):
        return ParsedPayload({}, {}, (_error("payload", "payload 应为对象"),))
    errors = [_error(_short(k), "未知字段") for k in value if k not in spec.fields_by_name]
    payload: dict[str, Any] = {}
    for f in spec.fields:
        item = value.get(f.name)
        if f.kind is FieldKind.LINES:
            rows, message = _lines_from_json(f, item)
            payload[f.name] = rows
            if message:
                errors.append(_error(f.name, message))
            continue
        if f.kind is FieldKind.MULTI:
            if item is None:
                payload[f.name] = []
            elif not isinstance(item, list) or not all(isinstance(v, str) for v in item):
                errors.append(_error(f.name, "应为字符串数组"))
                payload[f.name] = []
            else:
                try:
                    payload[f.name] = _multi(f, item)
                except _Invalid as e:
                    errors.append(_error(f.name, e.message))
                    payload[f.name] = []
            continue
        try:
            payload[f.name] = _json_scalar(f, item)
        except _Invalid as e:
            errors.append(_error(f.name, e.message))
            payload[f.name] = ""
    return ParsedPayload(payload, {}, tuple(errors))


def raw_from_payload(spec: FormSpec, payload: Mapping[str, Any] | None) -> dict[str, RawValue]:
    """A stored payload as form input (to edit a draft or resubmit a returned one);
    *None* gives the spec's defaults (a new form)."""
    raw: dict[str, RawValue] = {}
    for f in spec.fields:
        if payload is None:
            default = f.default
            raw[f.name] = list(default) if isinstance(default, tuple) else default
            continue
        value = payload.get(f.name)
        if f.kind is FieldKind.MULTI:
            if isinstance(value, list | tuple):
                raw[f.name] = [_as_text(v) for v in value]
            else:
                raw[f.name] = [] if value in (None, "") else [_as_text(value)]
        elif f.kind is FieldKind.LINES:
            raw[f.name] = lines_to_text(value, f)
        else:
            raw[f.name] = _as_text(value)
    return raw


def field_of(spec: FormSpec, finding_field: str) -> str:
    """The spec field a finding belongs to (``lines[3].wage`` → ``lines``), or ``""``."""
    if finding_field in spec.fields_by_name:
        return finding_field
    for name in spec.fields_by_name:
        if finding_field.startswith((name + "[", name + ".")):
            return name
    return ""
