"""What the templates show, computed from specs, payloads and declarations (pure).

Templates stay simple loops: a form arrives as sections of fields, each with its
current value, choices and the findings to show beside it; a stored payload as
sections of label/value rows (choice codes with their meaning, batch lines as a
table); a history entry as a time, an action and details, in Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from declare_app._china_time import local_text
from declare_app._rules import (
    DERIVED_LABELS,
    FORM_SPECS,
    FieldKind,
    FieldSpec,
    FormSpec,
    choices_of,
)
from declare_app._vocabulary import APPRAISAL_KINDS, INSURANCES, RETURN_REASONS, UNIT_FIELDS, Codes
from declare_app.interfaces import Declaration, DeclarationType, Finding, Status
from declare_app.web._input import RawValue, field_of

# The order the declaration centre shows its groups in.
STATUS_ORDER = (
    Status.DRAFT,
    Status.PENDING_REVIEW,
    Status.UNDER_REVIEW,
    Status.RETURNED,
    Status.APPLIED,
    Status.WITHDRAWN,
)

_STATUS_BY_VALUE = {s.value: s for s in Status}

_ACTIONS = {
    "create": "创建草稿",
    "created": "创建草稿",
    "draft": "创建草稿",
    "update": "修改草稿",
    "updated": "修改草稿",
    "submit": "提交",
    "submitted": "提交",
    "withdraw": "撤回",
    "withdrawn": "撤回",
    "claim": "受理审核",
    "claimed": "受理审核",
    "approve": "审核通过",
    "approved": "审核通过",
    "apply": "办结",
    "applied": "办结",
    "return": "退回",
    "returned": "退回",
    "resubmit": "重新申报",
    "resubmitted": "重新申报",
    "expire": "过期",
}

_HISTORY_KEYS = {
    "from": "原状态",
    "from_status": "原状态",
    "to": "新状态",
    "to_status": "新状态",
    "status": "状态",
    "by": "操作人",
    "actor": "操作人",
    "staff": "经办人",
    "session": "会话",
    "session_id": "会话",
    "code": "原因代码",
    "return_code": "原因代码",
    "text": "说明",
    "reason": "说明",
    "return_text": "说明",
    "voucher_no": "凭证编号",
    "version": "版本",
    "previous_id": "原申报",
    "new_id": "新申报",
    "outcome": "结果",
    "note": "说明",
}
_TIME_KEYS = ("at", "time", "timestamp", "when")
_HIDDEN_HISTORY_KEYS = frozenset({"declaration_id", "actor_kind"})
_ACTION_KEYS = ("action", "event", "transition", "what")


def fmt_time(ts: Any, *, seconds: bool = False, offset: bool = False) -> str:
    """Epoch seconds as Beijing time (the forms' time; ``+08:00`` appended with
    *offset*, for what is printed and handed on), or "" when absent."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return ""
    try:
        return local_text(float(ts), seconds=seconds, offset=offset)
    except (OverflowError, OSError, ValueError):
        return ""


def reason_text(code: str | None) -> str:
    if not code:
        return ""
    meaning = RETURN_REASONS.get(code)
    return f"{code} {meaning}" if meaning else code


def status_text(value: Any) -> str:
    status = value if isinstance(value, Status) else _STATUS_BY_VALUE.get(str(value))
    return status.chinese if status is not None else str(value)


# -- forms -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChoiceView:
    value: str
    text: str
    selected: bool


@dataclass(frozen=True)
class FieldView:
    spec: FieldSpec
    value: str  # scalar kinds and the batch textarea
    choices: tuple[ChoiceView, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_type(self) -> str:
        return {
            FieldKind.DATE: "date",
            FieldKind.MONTH: "month",
            FieldKind.DATETIME: "datetime-local",
            FieldKind.TEL: "tel",
        }.get(self.spec.kind, "text")

    @property
    def input_mode(self) -> str:
        if self.spec.kind in (FieldKind.MONEY,):
            return "decimal"
        if self.spec.kind in (FieldKind.YEAR,):
            return "numeric"
        return ""

    @property
    def placeholder(self) -> str:
        return {
            FieldKind.DATE: "YYYY-MM-DD",
            FieldKind.MONTH: "YYYY-MM",
            FieldKind.DATETIME: "YYYY-MM-DD HH:MM",
            FieldKind.YEAR: "YYYY",
        }.get(self.spec.kind, "")


@dataclass(frozen=True)
class SectionView:
    title: str
    fields: tuple[FieldView, ...]


@dataclass(frozen=True)
class FormView:
    spec: FormSpec
    sections: tuple[SectionView, ...]
    form_errors: tuple[str, ...]  # findings not tied to a field of the form
    form_warnings: tuple[str, ...]

    @property
    def has_errors(self) -> bool:
        return bool(self.form_errors) or any(f.errors for s in self.sections for f in s.fields)


def _messages(findings: Iterable[Finding], severity: str) -> tuple[str, ...]:
    return tuple(f.message for f in findings if f.severity == severity)


def _by_field(spec: FormSpec, findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(field_of(spec, finding.field), []).append(finding)
    return grouped


def form_view(
    spec: FormSpec, raw: Mapping[str, RawValue], findings: Sequence[Finding] = ()
) -> FormView:
    grouped = _by_field(spec, findings)
    sections = []
    for section in spec.sections:
        views = []
        for f in section.fields:
            value = raw.get(f.name, "")
            chosen = set(value) if isinstance(value, list) else {value}
            mine = grouped.get(f.name, [])
            views.append(
                FieldView(
                    spec=f,
                    value=value if isinstance(value, str) else "",
                    choices=tuple(
                        ChoiceView(c.value, c.text, c.value in chosen) for c in f.choices
                    ),
                    errors=_messages(mine, "error"),
                    warnings=_messages(mine, "warning"),
                )
            )
        sections.append(SectionView(section.title, tuple(views)))
    general = grouped.get("", [])
    return FormView(
        spec, tuple(sections), _messages(general, "error"), _messages(general, "warning")
    )


def hidden_fields(raw: Mapping[str, RawValue]) -> list[tuple[str, str]]:
    """The typed input as hidden (name, value) pairs, carried through the preview."""
    pairs: list[tuple[str, str]] = []
    for name, value in raw.items():
        if isinstance(value, list):
            pairs.extend((name, v) for v in value)
        else:
            pairs.append((name, value))
    return pairs


# -- stored payloads ------------------------------------------------------------------------


MAX_SHOWN_LINES = 500  # rows of a batch drawn in a page; the rest are counted


@dataclass(frozen=True)
class LinesView:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total: int = 0  # all rows, shown or not

    @property
    def hidden(self) -> int:
        return max(0, self.total - len(self.rows))


@dataclass(frozen=True)
class RowView:
    label: str
    value: str
    lines: LinesView | None = None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class DisplaySection:
    title: str
    rows: tuple[RowView, ...]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list | tuple):
        return "、".join(_text(v) for v in value)
    return str(value)


def _display_value(f: FieldSpec, value: Any) -> str:
    if f.kind is FieldKind.MULTI and isinstance(value, list | tuple):
        return "、".join(f.choice_label(str(v)) or str(v) for v in value)
    if f.kind is FieldKind.SELECT and isinstance(value, str):
        return f.choice_label(value) or value
    if f.kind is FieldKind.DATETIME and isinstance(value, str):
        return value.replace("T", " ")
    return _text(value)


def _masked(f: FieldSpec, text: str, mask: bool) -> str:
    """An identity number as the vouchers show it (first 6, last 4) when *mask*."""
    if mask and f.kind is FieldKind.ID_NUMBER and text:
        from declare_app._voucher_pdf import mask_id_number

        return mask_id_number(text)
    return text


def _lines_view(
    f: FieldSpec, value: Any, limit: int | None = MAX_SHOWN_LINES, *, mask: bool = False
) -> LinesView:
    rows: list[tuple[str, ...]] = []
    extra: list[str] = []
    items = list(value) if isinstance(value, list | tuple) else []
    shown = items if limit is None else items[:limit]
    if shown:
        for item in shown:
            if isinstance(item, Mapping):
                for key in item:
                    if key not in extra and all(c.name != key for c in f.columns):
                        extra.append(str(key))
    columns = [c.label for c in f.columns] + [DERIVED_LABELS.get(k, k) for k in extra]
    for item in shown:
        if isinstance(item, Mapping):
            cells = [_masked(c, _text(item.get(c.name)), mask) for c in f.columns]
            cells += [_text(item.get(k)) for k in extra]
            rows.append(tuple(cells))
    return LinesView(tuple(columns), tuple(rows), total=len(items))


def display_sections(
    spec: FormSpec,
    payload: Mapping[str, Any],
    findings: Sequence[Finding] = (),
    *,
    skip_empty: bool = False,
    max_lines: int | None = None,
    mask_ids: bool = False,
) -> list[DisplaySection]:
    """The payload as label/value rows by section; keys the spec does not know (values
    the workflow derived, such as the assessed base) follow under 其他信息.  With
    *skip_empty* (the voucher), fields left empty are not shown; with *max_lines*, a
    batch keeps only its first rows (and the count of all); with *mask_ids* (both
    vouchers, page and PDF), identity numbers show their first 6 and last 4 only."""
    grouped = _by_field(spec, findings)
    sections = []
    for section in spec.sections:
        rows = []
        for f in section.fields:
            value = payload.get(f.name)
            mine = grouped.get(f.name, [])
            rows.append(
                RowView(
                    label=f.label,
                    value=""
                    if f.kind is FieldKind.LINES
                    else _masked(f, _display_value(f, value), mask_ids),
                    lines=_lines_view(f, value, max_lines, mask=mask_ids)
                    if f.kind is FieldKind.LINES
                    else None,
                    errors=_messages(mine, "error"),
                    warnings=_messages(mine, "warning"),
                    required=f.required,
                )
            )
        if skip_empty:
            rows = [r for r in rows if r.value or (r.lines and r.lines.rows)]
        if rows:
            sections.append(DisplaySection(section.title, tuple(rows)))
    extra = [
        RowView(DERIVED_LABELS.get(k, k), _text(v))
        for k, v in payload.items()
        if k not in spec.fields_by_name and not (skip_empty and v in (None, ""))
    ]
    if extra:
        sections.append(DisplaySection("其他信息", tuple(extra)))
    return sections


def general_findings(spec: FormSpec, findings: Sequence[Finding]) -> list[Finding]:
    """Findings that belong to no field of the form (shown above it)."""
    return [f for f in findings if field_of(spec, f.field) == ""]


def summary(decl: Declaration) -> str:
    """One line that names what a declaration is about, for the lists."""
    p = decl.payload
    if decl.type is DeclarationType.ANNUAL_BASE:
        lines = p.get("lines")
        count = len(lines) if isinstance(lines, list | tuple) else 0
        return f"{_text(p.get('year'))}年度 · {count} 人"
    if decl.type is DeclarationType.UNIT_CHANGE:
        spec = FORM_SPECS[decl.type].fields_by_name["field"]
        label = spec.choice_label(_text(p.get("field"))) or _text(p.get("field"))
        return f"{label} → {_text(p.get('new_value'))}"
    name, number = _text(p.get("name")), _text(p.get("id_number"))
    return " ".join(x for x in (name, number) if x)


# -- history --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    at: str
    action: str
    details: tuple[tuple[str, str], ...] = field(default=())


def history_rows(history: Sequence[Mapping[str, Any]]) -> list[HistoryRow]:
    """Transitions as time, action and details.  The action is the entry's ``action``
    (or ``event``…) in Chinese, else its ``note``; internal keys are not shown."""
    rows = []
    for entry in history:
        if not isinstance(entry, Mapping):
            continue
        at = next((fmt_time(entry[k]) for k in _TIME_KEYS if k in entry), "")
        action_key = next((k for k in _ACTION_KEYS if k in entry), None)
        if action_key is None and entry.get("note"):
            action_key = "note"
        action_raw = _text(entry[action_key]) if action_key else ""
        action = _ACTIONS.get(action_raw, action_raw)
        details = []
        for key, value in entry.items():
            if (
                key in _TIME_KEYS
                or key == action_key
                or key in _HIDDEN_HISTORY_KEYS
                or value in (None, "")
            ):
                continue
            label = _HISTORY_KEYS.get(str(key), str(key))
            if key in ("from", "to", "status", "from_status", "to_status"):
                text = status_text(value)
            elif key in ("code", "return_code"):
                text = reason_text(_text(value))
            else:
                text = _text(value)
            details.append((label, text))
        rows.append(HistoryRow(at, action, tuple(details)))
    return rows


def _codes(codes: Codes) -> dict[str, str]:
    return {c.value: c.text for c in choices_of(codes)}


_INSURANCE_TEXT = _codes(INSURANCES)
_PAYMENT_STATUS = {"1": "1 参保缴费", "2": "2 暂停缴费", "3": "3 终止缴费"}  # AAC031


def _listed(texts: Mapping[str, str]) -> Any:
    def show(value: Any) -> str:
        items = value if isinstance(value, list | tuple) else [value]
        return "、".join(texts.get(_text(v), _text(v)) for v in items)

    return show


# What applying did (Declaration.result), by key: label and how to show the value.
_RESULT_FIELDS: dict[str, tuple[str, Any]] = {
    "person_no": ("个人编号", _text),
    "person_number": ("个人编号", _text),
    "new_person": ("新参保人员", _text),
    "insurances": ("险种", _listed(_INSURANCE_TEXT)),
    "status": ("缴费状态", _listed(_PAYMENT_STATUS)),
    "end_month": ("停保（终止）年月", _text),
    "year": ("申报年度", _text),
    "lines": ("申报人数", _text),
    "field": ("变更项目", _listed(_codes(UNIT_FIELDS))),
    "old_value": ("变更前内容", _text),
    "new_value": ("变更后内容", _text),
    "application_no": ("工伤认定申请受理编号", _text),
    "accepted_on": ("受理日期", _text),
    "decision_no": ("工伤认定决定书编号", _text),
    "decided_on": ("决定日期", _text),
    "late": ("逾期申报", _text),
    "kind": ("鉴定类型", _listed(_codes(APPRAISAL_KINDS))),
}


def result_rows(
    result: Mapping[str, Any], payload: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """What applying a declaration did (e.g. the new 个人编号), as label/value rows.

    With *payload* (the vouchers, which show the payload too), a key the payload
    already holds — such as the derived 逾期申报 of an injury report — is left to the
    payload's row, so that no item is listed twice."""
    if not isinstance(result, Mapping):
        return []
    shown = payload if isinstance(payload, Mapping) else {}
    rows = []
    for key, value in result.items():
        if shown.get(key) not in (None, ""):
            continue
        label, show = _RESULT_FIELDS.get(str(key), (DERIVED_LABELS.get(str(key), str(key)), _text))
        rows.append((label, show(value)))
    return rows


def voucher_details(
    spec: FormSpec, payload: Mapping[str, Any], result: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(label, value) rows for the PDF voucher: what applying did, then the filled-in
    fields, identity numbers masked (first 6 and last 4), batch lines one per row."""
    rows = result_rows(result, payload)
    for section in display_sections(spec, payload, skip_empty=True, max_lines=60, mask_ids=True):
        for row in section.rows:
            if row.lines is not None:
                for n, cells in enumerate(row.lines.rows, start=1):
                    rows.append((f"{row.label}第{n}行", " ".join(x for x in cells if x)))
                if row.lines.hidden:
                    rows.append((row.label, f"共 {row.lines.total} 行，其余请在申报中心查看"))
            else:
                rows.append((row.label, row.value))
    return rows
