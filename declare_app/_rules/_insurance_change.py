"""人员险种增加 / 减少 (insurance add / reduce), DOMAIN.md §5.3: the per-type versions
of person add and reduce, for a person already enrolled in the unit.

An add opens an enrolment for each chosen type; a reduce suspends (AAC031 = 2) the
chosen open ones, with ``stop_reason`` ``"C"`` + the change reason.  Medical (310)
and maternity (510) move together (V-INS-01), counting what is already on record.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from declare_app import _vocabulary as vocabulary
from declare_app._contributions import Insurance
from declare_app._retirement import YearMonth
from declare_app._rules._common import (
    INSURANCE_CHOICES,
    STATUS_RULE,
    age_findings,
    clamp_wage,
    gender_of,
    month_window,
    open_conflicts,
    read_unit_person,
    risk_class_findings,
    staff_kind_of,
    unit_findings,
    unit_person_fields,
)
from declare_app._rules._context import Checked, RuleContext
from declare_app._rules._forms import (
    FORM_INVALID,
    FormReader,
    chosen_labels,
    ignore_computed,
    month_text,
    parse_month_text,
    to_fen,
)
from declare_app._rules._master import (
    Enrolment,
    close_enrolment,
    enrolments_of,
    open_enrolment,
    open_insurances,
    pending_payloads,
    person_in_unit,
)
from declare_app._rules._spec import (
    FieldKind,
    FieldSpec,
    FormSpec,
    Section,
    choices_of,
    computed,
)
from declare_app.interfaces import DeclarationType

CHANGE_REASONS: Final = vocabulary.INSURANCE_CHANGE_REASONS
ADD_REASONS: Final = frozenset({"1", "2", "3", "9"})
REDUCE_REASONS: Final = frozenset({"4", "9"})


_REASON: Final = FieldSpec(
    "reason", "变动原因", FieldKind.SELECT, required=True, choices=choices_of(CHANGE_REASONS)
)
_REMARK: Final = FieldSpec(
    "remark", "备注", FieldKind.TEXTAREA, max_length=500, hint="变动原因为“其他”时必填"
)

ADD_SPEC: Final = FormSpec(
    DeclarationType.INSURANCE_ADD,
    "为已参保人员增加参保险种。职工基本医疗保险与生育保险须同时增加。",
    (
        Section("人员", unit_person_fields()),
        Section(
            "增加险种",
            (
                FieldSpec(
                    "insurances",
                    "增加险种",
                    FieldKind.MULTI,
                    required=True,
                    choices=INSURANCE_CHOICES,
                ),
                _REASON,
                FieldSpec("start_month", "开始缴费年月", FieldKind.MONTH, required=True),
                FieldSpec("base", "缴费基数", FieldKind.MONEY, required=True, hint="元/月"),
                _REMARK,
            ),
        ),
    ),
    computed=(computed("assessed_base", "核定缴费基数"),),
)
REDUCE_SPEC: Final = FormSpec(
    DeclarationType.INSURANCE_REDUCE,
    "为参保人员停止部分险种。职工基本医疗保险与生育保险须同时减少。",
    (
        Section("人员", unit_person_fields()),
        Section(
            "减少险种",
            (
                FieldSpec(
                    "insurances",
                    "减少险种",
                    FieldKind.MULTI,
                    required=True,
                    choices=INSURANCE_CHOICES,
                ),
                _REASON,
                FieldSpec("stop_month", "停止缴费年月", FieldKind.MONTH, required=True),
                _REMARK,
            ),
        ),
    ),
)


def _reason(r: FormReader, allowed: frozenset[str]) -> str | None:
    reason = r.choice("reason")
    if reason is not None and reason not in allowed:
        r.error("reason", FORM_INVALID, "该变动原因不适用于本业务")
    r.text("remark", required=reason == "9")
    return reason


def _pending_overlap(
    r: FormReader,
    ctx: RuleContext,
    *,
    type: DeclarationType,
    subject: str,
    chosen: tuple[Insurance, ...],
    message: str,
) -> None:
    """V-DUP-03: the same person and type already waiting for review."""
    codes = {i.value for i in chosen}
    for other in pending_payloads(
        ctx.conn, ctx.unit.code, type.value, subject=subject, exclude=ctx.declaration_id
    ):
        if set(other.get("insurances") or ()) & codes:
            r.error("insurances", "V-DUP-03", message)
            return


class InsuranceAddRules:
    """DOMAIN §5.3 (add): V-INS-01, V-DUP-01/03, V-AGE-01, V-BASE-01/02, V-DATE-01,
    V-STAT-01, V-UNIT-01."""

    type: DeclarationType = DeclarationType.INSURANCE_ADD
    spec: FormSpec = ADD_SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(ignore_computed(payload, ADD_SPEC.computed), ADD_SPEC.fields)
        r.findings.extend(unit_findings(ctx))
        found = read_unit_person(r, ctx)
        here_open = open_insurances(found[1]) if found else set()
        chosen = r.insurances("insurances", already=here_open)
        risk_class_findings(r, ctx, "insurances", chosen)
        reason = _reason(r, ADD_REASONS)
        start = r.month("start_month")
        base = r.money("base", rule="V-BASE-02")
        if reason == "2" and chosen is not None and set(chosen) != {Insurance.WORK_INJURY}:
            r.error("insurances", FORM_INVALID, "超龄人员单险种参保只能选择工伤保险（410）")
        if start is not None:
            month_window(r, "start_month", start, ctx)
        if base is not None and start is not None:
            clamp_wage(
                r, ctx, wage=base, wage_field="base", base_field="assessed_base", month=start
            )
        if found is None:
            return Checked(r.out, tuple(r.findings), None)
        person = found[0]
        if not here_open:
            r.error(
                "person_no",
                STATUS_RULE,
                "该人员在本单位没有正在缴费的险种，请办理人员增加（续保）",
            )
        if chosen and start is not None:
            open_conflicts(
                r,
                "insurances",
                unit_code=ctx.unit.code,
                all_enrolments=enrolments_of(ctx.conn, person.person_number),
                insurances=chosen,
                start=start,
            )
            gender = gender_of(person.gender)
            assert gender is not None
            age_findings(
                r,
                "insurances",
                gender=gender,
                staff_kind=staff_kind_of(person.staff_kind),
                birth=person.birth_date,
                override=person.retirement_override_month,
                receiving_pension=person.receiving_pension,
                insurances=chosen,
                start=start,
                flexible_agreement=None,
            )
            _pending_overlap(
                r,
                ctx,
                type=self.type,
                subject=person.id_number,
                chosen=chosen,
                message="该人员已有相同险种的险种增加申报在审核中，请勿重复申报",
            )
        return Checked(r.out, tuple(r.findings), person.id_number)

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        p = checked.payload
        found = person_in_unit(
            ctx.conn, ctx.unit.code, person_number=p["person_no"], id_number=p["id_number"]
        )
        assert found is not None
        person, here = found
        newest = max((e for e in here if e.open), key=lambda e: e.id, default=None)
        hire_date = newest.hire_date if newest is not None else None
        for code in p["insurances"]:
            open_enrolment(
                ctx.conn,
                {
                    "person_number": person.person_number,
                    "unit_code": ctx.unit.code,
                    "insurance": code,
                    "start_month": p["start_month"],
                    "base_fen": to_fen(Decimal(p["assessed_base"])),
                    "hire_date": hire_date,
                    "opened_by": ctx.declaration_id,
                    "updated_at": ctx.now,
                },
            )
        return {"person_no": person.person_number, "insurances": list(p["insurances"])}


class InsuranceReduceRules:
    """DOMAIN §5.3 (reduce): V-INS-01, V-DATE-01, V-DUP-03, V-STAT-01, V-UNIT-01."""

    type: DeclarationType = DeclarationType.INSURANCE_REDUCE
    spec: FormSpec = REDUCE_SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(payload, REDUCE_SPEC.fields)
        r.findings.extend(unit_findings(ctx))
        found = read_unit_person(r, ctx)
        here_open = open_insurances(found[1]) if found else set()
        # A companion that is not open here need not be reduced with it.
        closed_here = set(Insurance) - here_open
        chosen = r.insurances("insurances", already=closed_here)
        _reason(r, REDUCE_REASONS)
        stop = r.month("stop_month")
        if stop is not None:
            month_window(r, "stop_month", stop, ctx)
        if found is None:
            return Checked(r.out, tuple(r.findings), None)
        person, here = found
        if chosen:
            missing = [i for i in chosen if i not in here_open]
            if missing:
                r.error(
                    "insurances",
                    STATUS_RULE,
                    f"该人员在本单位没有正在缴费的{chosen_labels(missing)}",
                )
            elif set(chosen) == here_open:
                r.warn(
                    "insurances",
                    STATUS_RULE,
                    "该人员所有险种都将停止缴费；如已离职，请办理人员减少",
                )
            if stop is not None:
                self._stop_after_start(r, here, chosen, stop)
            _pending_overlap(
                r,
                ctx,
                type=self.type,
                subject=person.id_number,
                chosen=chosen,
                message="该人员已有相同险种的险种减少申报在审核中，请勿重复申报",
            )
        return Checked(r.out, tuple(r.findings), person.id_number)

    def _stop_after_start(
        self, r: FormReader, here: list[Enrolment], chosen: tuple[Insurance, ...], stop: YearMonth
    ) -> None:
        starts = [parse_month_text(e.start_month) for e in here if e.open and e.insurance in chosen]
        if starts and stop < max(starts):
            r.error(
                "stop_month",
                "V-DATE-01",
                f"停止缴费年月不能早于参保年月{month_text(max(starts))}",
            )

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        p = checked.payload
        assert ctx.declaration_id is not None
        found = person_in_unit(
            ctx.conn, ctx.unit.code, person_number=p["person_no"], id_number=p["id_number"]
        )
        assert found is not None
        person, here = found
        end = month_text(parse_month_text(p["stop_month"]).plus_months(-1))
        for e in here:
            if e.open and e.insurance.value in p["insurances"]:
                close_enrolment(
                    ctx.conn,
                    e.id,
                    status="2",
                    end_month=end,
                    reason="C" + p["reason"],
                    declaration_id=ctx.declaration_id,
                    now=ctx.now,
                )
        return {
            "person_no": person.person_number,
            "insurances": list(p["insurances"]),
            "end_month": end,
        }
