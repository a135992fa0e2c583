"""年度缴费基数申报 (annual contribution base), DOMAIN.md §5.5: one line per person.

Each line's declared wage (上年度月平均工资) is clamped to the region's floor and
ceiling in force on 1 January of the declared year (V-BASE-01) and, once applied,
becomes the base of every open enrolment of that person in the unit; the contribution
plan (:mod:`declare_app._ledger_store`) uses it from ``from_month`` (执行起始年月, a
month of the declared year; January when left empty).  A person's base
may be declared once a year (Xianyang FAQ: "基数申报每年只可申报一次"): a person
whose enrolments already carry that year is locked (V-DUP-03).

Lines come typed (the web form, the API) or from an uploaded .xlsx/CSV
(:mod:`declare_app._batch`, :meth:`Declarations.import_batch`); either way at most
``RuleSettings.max_lines`` (10 000) in one declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from declare_app._retirement import YearMonth
from declare_app._rules._common import (
    STATUS_RULE,
    clamp_wage,
    read_unit_person,
    unit_findings,
    unit_person_fields,
)
from declare_app._rules._context import Checked, RuleContext
from declare_app._rules._forms import (
    FormReader,
    from_fen,
    ignore_computed,
    money_text,
    to_fen,
)
from declare_app._rules._master import (
    pending_payloads,
    person_in_unit,
    set_base,
)
from declare_app._rules._spec import FieldKind, FieldSpec, FormSpec, Section, computed
from declare_app.interfaces import DeclarationType

CHANGE_WARNING: Final = Decimal("0.5")  # V-BASE-03: more than ±50% against the current base

LINES: Final = FieldSpec(
    "lines",
    "人员明细",
    FieldKind.LINES,
    required=True,
    max_length=1_000_000,  # the form's textarea, all lines together
    hint="每行一人：个人编号, 姓名, 公民身份号码, 上年度月平均工资（以逗号或制表符分隔）",
    # A column has no hint: the field's says what a line holds.
    columns=(
        *(replace(f, hint="") for f in unit_person_fields()),
        FieldSpec("wage", "上年度月平均工资", FieldKind.MONEY, required=True),
    ),
    computed=(computed("base", "核定缴费基数"),),
)
SPEC: Final = FormSpec(
    DeclarationType.ANNUAL_BASE,
    "每年只可申报一次。申报工资为上年度月平均工资；低于缴费基数下限的按下限、"
    "高于上限的按上限核定。",
    (
        Section(
            "申报",
            (
                FieldSpec("year", "申报年度", FieldKind.YEAR, required=True),
                # From which month the new bases are contributed on (issue 14's plan).
                FieldSpec("from_month", "执行起始年月", FieldKind.MONTH, hint="不填为申报年度1月"),
                LINES,
            ),
        ),
    ),
)


class AnnualBaseRules:
    """DOMAIN §5.5 with V-BASE-01/02/03, V-DUP-03, V-STAT-01, V-DATE-01, V-UNIT-01."""

    type: DeclarationType = DeclarationType.ANNUAL_BASE
    spec: FormSpec = SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(payload, SPEC.fields)
        r.findings.extend(unit_findings(ctx))
        filed = ctx.filed_on.year
        year = r.integer("year", low=1990, high=2100)
        if year is not None:
            r.out["year"] = str(year)
            if not filed - 1 <= year <= filed + 1:
                r.error(
                    "year",
                    "V-DATE-01",
                    f"申报年度只能为{filed - 1}至{filed + 1}年",
                )
                year = None
        start = r.month("from_month")
        if start is not None and year is not None and start.year != year:
            r.error("from_month", "V-DATE-01", f"执行起始年月应在申报年度{year}年内")
        raw_lines = r.sub_forms("lines", max_items=ctx.settings.max_lines) or []
        pending = self._pending_ids(ctx, year)
        seen: set[str] = set()
        lines = []
        for index, raw in enumerate(raw_lines):
            line = FormReader(
                ignore_computed(raw, LINES.computed), LINES.columns, prefix=f"lines[{index}]."
            )
            self._line(line, ctx, year=year, index=index, seen=seen, pending=pending)
            lines.append(line.out)
            r.findings.extend(line.findings)
        r.out["lines"] = lines
        subject = lines[0].get("id_number") if len(lines) == 1 else None
        return Checked(r.out, tuple(r.findings), subject)

    def _pending_ids(self, ctx: RuleContext, year: int | None) -> set[str]:
        """ID numbers in this unit's annual-base declarations of *year* under review."""
        ids: set[str] = set()
        if year is None:
            return ids
        for other in pending_payloads(
            ctx.conn, ctx.unit.code, self.type.value, exclude=ctx.declaration_id
        ):
            if str(other.get("year")) == str(year):
                for line in other.get("lines") or ():
                    if isinstance(line, dict) and isinstance(line.get("id_number"), str):
                        ids.add(line["id_number"])
        return ids

    def _line(
        self,
        line: FormReader,
        ctx: RuleContext,
        *,
        year: int | None,
        index: int,
        seen: set[str],
        pending: set[str],
    ) -> None:
        found = read_unit_person(line, ctx)
        wage = line.money("wage", rule="V-BASE-02")
        if wage is not None and year is not None:
            clamp_wage(
                line,
                ctx,
                wage=wage,
                wage_field="wage",
                base_field="base",
                month=YearMonth(year, 1),
            )
        if found is None:
            return
        person, here = found
        opened = [e for e in here if e.open]
        row = f"第{index + 1}行"
        if not opened:
            line.error("person_no", STATUS_RULE, f"{row}：该人员在本单位没有正在缴费的险种")
            return
        if person.id_number in seen:
            line.error("id_number", "V-DUP-03", f"{row}：同一人员在本次申报中重复出现")
        seen.add(person.id_number)
        if year is not None and any(e.base_year == year for e in opened):
            line.error(
                "person_no",
                "V-DUP-03",
                f"{row}：该人员{year}年度缴费基数已核定，每年只可申报一次",
            )
        elif person.id_number in pending:
            line.error(
                "person_no",
                "V-DUP-03",
                f"{row}：该人员{year}年度缴费基数已有申报在审核中",
            )
        base = line.out.get("base")
        if isinstance(base, str):
            current = max(from_fen(e.base_fen) for e in opened)
            new = Decimal(base)
            if current > 0 and abs(new - current) > current * CHANGE_WARNING:
                line.warn(
                    "wage",
                    "V-BASE-03",
                    f"{row}：核定基数{money_text(new)}元与现基数{money_text(current)}元"
                    "相比变动超过50%，请核实",
                )

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        p = checked.payload
        year = int(p["year"])
        persons = []
        for line in p["lines"]:
            found = person_in_unit(
                ctx.conn,
                ctx.unit.code,
                person_number=line["person_no"],
                id_number=line["id_number"],
            )
            assert found is not None
            person, here = found
            set_base(
                ctx.conn,
                [e.id for e in here if e.open],
                base_fen=to_fen(Decimal(line["base"])),
                year=year,
                now=ctx.now,
            )
            persons.append(person.person_number)
        return {"year": year, "lines": len(persons)}
