"""Reading a declaration form against its spec (:mod:`._spec`): value parsers, findings.

A payload comes from an HTML form (every value a string) or the JSON API (strings,
numbers, lists).  :class:`FormReader` reads it field by field: each parser stores the
normalised value under the field's name, or, when the value cannot be read, keeps the
trimmed text so a draft can show the form again as typed, and records a finding.
Normalising is idempotent: reading a normalised payload gives it back unchanged.

Rule ids are DOMAIN.md §6's.  Where a check has no id there, ours extend the scheme
and are listed in ``declare_app/_rules/__init__.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from declare_app import _vocabulary as vocabulary
from declare_app._contributions import Insurance, missing_companions
from declare_app._retirement import YearMonth
from declare_app._rules._spec import FieldKind, FieldSpec
from declare_app.interfaces import Finding

MAX_LIST_ITEMS: Final = 20
MAX_MONEY: Final = Decimal("100000000")  # 1e8 yuan a month: beyond any real wage

# Rule ids of our own (DOMAIN §6 has none for these checks).
FORM_REQUIRED: Final = "V-FORM-01"  # a required field is empty
FORM_INVALID: Final = "V-FORM-02"  # malformed, not in its code list, or unknown field
FORM_TOO_LONG: Final = "V-FORM-03"  # longer than the field allows

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{4,22}[0-9]")
_MONTH_FORMS = vocabulary.MONTH_FORMS
_DATE_FORMS = vocabulary.DATE_FORMS
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


def month_text(month: YearMonth) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def parse_month_text(text: str) -> YearMonth:
    """A stored ``YYYY-MM`` month (never user input)."""
    return YearMonth(int(text[:4]), int(text[5:7]))


def money_text(amount: Decimal) -> str:
    return f"{amount:.2f}"


def to_fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def from_fen(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


class FormReader:
    """Reads one payload against its field specs, collecting output and findings."""

    def __init__(
        self,
        payload: Mapping[str, Any],
        fields: Sequence[FieldSpec],
        *,
        prefix: str = "",
        required_rule: str = FORM_REQUIRED,
    ) -> None:
        self.raw = payload
        self.fields = {f.name: f for f in fields}
        self.prefix = prefix
        self.required_rule = required_rule
        self.out: dict[str, Any] = {}
        self.findings: list[Finding] = []
        for key in payload:
            if key not in self.fields:
                self.error(
                    str(key)[:64], FORM_INVALID, f"未知字段“{str(key)[:64]}”，请删除后再提交"
                )

    # -- findings -------------------------------------------------------------------

    def where(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def error(self, name: str, rule: str, message: str) -> None:
        self.findings.append(Finding(rule, self.where(name), "error", message))

    def warn(self, name: str, rule: str, message: str) -> None:
        self.findings.append(Finding(rule, self.where(name), "warning", message))

    def has_error(self, name: str | None = None) -> bool:
        return any(
            f.severity == "error" and (name is None or f.field == self.where(name))
            for f in self.findings
        )

    def label(self, name: str) -> str:
        return self.fields[name].label

    def missing(self, name: str, rule: str | None = None) -> None:
        self.error(name, rule or self.required_rule, f"请填写{self.label(name)}")

    # -- raw access -----------------------------------------------------------------

    def _raw_text(self, name: str) -> str | None:
        """The value as stripped text, ``None`` when absent or empty; a number becomes
        its decimal text.  Lists and mappings are not text: they are refused."""
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            self.error(name, FORM_INVALID, f"{self.label(name)}格式不正确")
            return None
        if isinstance(value, int | Decimal):
            value = str(value)
        elif isinstance(value, float):
            value = repr(value)
        if not isinstance(value, str):
            self.error(name, FORM_INVALID, f"{self.label(name)}格式不正确")
            return None
        value = value.strip()
        return value or None

    def _keep(self, name: str, text: str) -> None:
        """Keep unreadable input as typed (bounded), for the draft form."""
        self.out[name] = text[: self.fields[name].max_length]

    # -- parsers --------------------------------------------------------------------

    def text(
        self,
        name: str,
        *,
        required: bool | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_message: str = "",
        rule: str | None = None,
    ) -> str | None:
        spec = self.fields[name]
        text = self._raw_text(name)
        if text is None:
            if spec.required if required is None else required:
                self.missing(name, rule)
            return None
        if _CONTROL.search(text) or (spec.kind is not FieldKind.TEXTAREA and "\n" in text):
            self._keep(name, _CONTROL.sub("", text).replace("\n", " "))
            self.error(name, FORM_INVALID, f"{spec.label}含有不允许的字符")
            return None
        if len(text) > spec.max_length:
            self._keep(name, text)
            self.error(name, FORM_TOO_LONG, f"{spec.label}不能超过{spec.max_length}个字符")
            return None
        if pattern is not None and not pattern.fullmatch(text):
            self._keep(name, text)
            self.error(name, FORM_INVALID, pattern_message or f"{spec.label}格式不正确")
            return None
        self.out[name] = text
        return text

    def phone(self, name: str, *, required: bool | None = None) -> str | None:
        return self.text(
            name,
            required=required,
            pattern=_PHONE,
            pattern_message=f"{self.label(name)}应为电话号码（数字，可含-）",
        )

    def choice(
        self,
        name: str,
        *,
        required: bool | None = None,
        aliases: Mapping[str, str] | None = None,
        rule: str | None = None,
    ) -> str | None:
        spec = self.fields[name]
        text = self._raw_text(name)
        if text is None:
            if spec.required if required is None else required:
                self.missing(name, rule)
            return None
        values = {c.value for c in spec.choices}
        by_label = {c.label: c.value for c in spec.choices}
        value = text if text in values else by_label.get(text) or (aliases or {}).get(text)
        if value is None:
            self._keep(name, text)
            allowed = "、".join(c.text for c in spec.choices)
            self.error(name, FORM_INVALID, f"{spec.label}应为：{allowed}"[:300])
            return None
        self.out[name] = value
        return value

    def date(
        self, name: str, *, required: bool | None = None, rule: str | None = None
    ) -> date | None:
        spec = self.fields[name]
        text = self._raw_text(name)
        if text is None:
            if spec.required if required is None else required:
                self.missing(name, rule)
            return None
        day = parse_date(text)
        if day is None:
            self._keep(name, text)
            self.error(name, FORM_INVALID, f"{spec.label}应为日期，如2024-03-15")
            return None
        self.out[name] = day.isoformat()
        return day

    def datetime(
        self, name: str, *, required: bool | None = None, rule: str | None = None
    ) -> datetime | None:
        """A local date and time, ``YYYY-MM-DD HH:MM``."""
        spec = self.fields[name]
        text = self._raw_text(name)
        if text is None:
            if spec.required if required is None else required:
                self.missing(name, rule)
            return None
        parts = text.replace("T", " ").split()
        day = parse_date(parts[0]) if parts else None
        at: datetime | None = None
        if day is not None and len(parts) == 2:
            m = _TIME.fullmatch(parts[1][:5] if len(parts[1]) == 8 else parts[1])
            if m and int(m[1]) < 24 and int(m[2]) < 60:
                at = datetime(day.year, day.month, day.day, int(m[1]), int(m[2]))
        if at is None:
            self._keep(name, text)
            self.error(name, FORM_INVALID, f"{spec.label}应为日期和时间，如2024-03-15 14:30")
            return None
        self.out[name] = at.strftime("%Y-%m-%dT%H:%M")
        return at

    def month(
        self, name: str, *, required: bool | None = None, rule: str | None = None
    ) -> YearMonth | None:
        spec = self.fields[name]
        text = self._raw_text(name)
        if text is None:
            if spec.required if required is None else required:
                self.missing(name, rule)
            return None
        month = parse_month(text)
        if month is None:
            self._keep(name, text)
            self.error(name, FORM_INVALID, f"{spec.label}应为年月，如2024-03")
            return None
        self.out[name] = month_text(month)
        return month

    def money(
        self, name: str, *, required: bool | None = None, rule: str = FORM_INVALID
    ) -> Decimal | None:
        """A positive amount in yuan with at most 2 decimals (V-BASE-02 for a base)."""
        spec = self.fields[name]
        text = self._raw_text(name)
        if text is None:
            if spec.required if required is None else required:
                self.missing(name, rule if rule != FORM_INVALID else None)
            return None
        amount = parse_money(text)
        if amount is None:
            self._keep(name, text)
            self.error(name, rule, f"{spec.label}应为大于0的金额，最多两位小数")
            return None
        self.out[name] = money_text(amount)
        return amount

    def integer(
        self, name: str, *, low: int, high: int, required: bool | None = None
    ) -> int | None:
        spec = self.fields[name]
        text = self._raw_text(name)
        if text is None:
            if spec.required if required is None else required:
                self.missing(name)
            return None
        if not (text.isascii() and text.isdigit() and len(text) <= 6) or not (
            low <= int(text) <= high
        ):
            self._keep(name, text)
            self.error(name, FORM_INVALID, f"{spec.label}应为{low}至{high}之间的整数")
            return None
        self.out[name] = int(text)
        return int(text)

    def insurances(
        self,
        name: str,
        *,
        required: bool | None = None,
        rule: str | None = None,
        already: Iterable[Insurance] = (),
    ) -> tuple[Insurance, ...] | None:
        """A set of AAE140 codes: a list, or one string with codes separated by commas
        or spaces.  V-INS-01 (medical and maternity together) is checked here; a
        companion in *already* (on record as it should be) counts as chosen."""
        spec = self.fields[name]
        items = self._raw_list(name)
        if items is None:
            return None
        if not items:
            if spec.required if required is None else required:
                self.missing(name, rule)
            self.out[name] = []
            return None
        chosen: set[Insurance] = set()
        bad = []
        for item in items:
            try:
                chosen.add(Insurance(item))
            except ValueError:
                label_match = [i for i in Insurance if i.label == item]
                if label_match:
                    chosen.add(label_match[0])
                else:
                    bad.append(item)
        if bad:
            self.out[name] = [str(b)[:16] for b in items][:MAX_LIST_ITEMS]
            self.error(
                name,
                FORM_INVALID,
                f"{spec.label}应为险种代码110、210、310、410、510，不认识：{'、'.join(bad)[:60]}",
            )
            return None
        result = tuple(sorted(chosen))
        self.out[name] = [i.value for i in result]
        companions = missing_companions(result) - set(already)
        if companions:
            names = "、".join(f"{c.value} {c.label}" for c in sorted(companions))
            self.error(
                name,
                "V-INS-01",
                f"职工基本医疗保险（310）与生育保险（510）须同时办理，请同时选择{names}",
            )
        return result

    def _raw_list(self, name: str) -> list[str] | None:
        """A list of short strings, from a list or a comma/space/newline separated text.
        ``None`` (and a finding) when malformed; ``[]`` when absent."""
        value = self.raw.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            items = [p for p in re.split(r"[,，、;；\s]+", value.strip()) if p]
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            items = [v.strip() for v in value if v.strip()]
        else:
            self.error(name, FORM_INVALID, f"{self.label(name)}格式不正确")
            return None
        if len(items) > MAX_LIST_ITEMS:
            self.error(name, FORM_TOO_LONG, f"{self.label(name)}最多{MAX_LIST_ITEMS}项")
            return None
        return items

    def sub_forms(self, name: str, *, max_items: int) -> list[Mapping[str, Any]] | None:
        """The raw lines of a ``lines`` field: a list of mappings."""
        value = self.raw.get(name)
        spec = self.fields[name]
        if value is None or (isinstance(value, list | tuple) and not value):
            if spec.required:
                self.missing(name)
            self.out[name] = []
            return []
        if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
            self.error(name, FORM_INVALID, f"{spec.label}格式不正确")
            return None
        if len(value) > max_items:
            self.error(name, FORM_TOO_LONG, f"{spec.label}一次最多{max_items}行")
            return None
        return list(value)


# -- plain parsers ----------------------------------------------------------------------


def parse_date(text: str) -> date | None:
    for form in _DATE_FORMS:
        m = form.fullmatch(text)
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return None
    return None


def parse_month(text: str) -> YearMonth | None:
    for form in _MONTH_FORMS:
        m = form.fullmatch(text)
        if m:
            year, month = int(m[1]), int(m[2])
            if 1900 <= year <= 9999 and 1 <= month <= 12:
                return YearMonth(year, month)
            return None
    return None


def parse_money(text: str) -> Decimal | None:
    cleaned = text.replace(",", "").replace("，", "").removesuffix("元").strip()
    if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,2})?", cleaned):
        return None
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None
    if amount <= 0 or amount >= MAX_MONEY:
        return None
    return amount


def first_part(message: str) -> str:
    """The Chinese half of a bilingual ``"中文 / English"`` message."""
    return message.split(" / ", 1)[0]


def ignore_computed(payload: Mapping[str, Any], fields: Iterable[FieldSpec]) -> dict[str, Any]:
    """The payload without the *fields* the service computes (they come back recomputed)."""
    drop = {f.name for f in fields}
    return {k: v for k, v in payload.items() if k not in drop}


def chosen_labels(codes: Iterable[Insurance]) -> str:
    return "、".join(f"{c.label}（{c.value}）" for c in codes)
