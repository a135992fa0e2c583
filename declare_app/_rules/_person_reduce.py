"""人员减少 (person reduce, 减员/停保), DOMAIN.md §5.4.

Applying it closes every open enrolment of the person in the unit: 终止 (AAC031 = 3)
for retirement, death or settling abroad (reasons 31, 32, 33), 暂停 (2) for every
other reason (DOMAIN §5.4, §8).  The stop month (停保年月) is the first month no
longer contributed, so a closed enrolment's ``end_month`` is the month before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from declare_app._retirement import YearMonth
from declare_app._rules._common import (
    REDUCE_REASONS,
    STATUS_RULE,
    TERMINATING_REASONS,
    gender_of,
    month_window,
    read_unit_person,
    staff_kind_of,
    statutory_retirement,
    unit_findings,
    unit_person_fields,
)
from declare_app._rules._context import Checked, RuleContext
from declare_app._rules._forms import (
    FormReader,
    month_text,
    parse_month_text,
)
from declare_app._rules._master import (
    Enrolment,
    Person,
    close_enrolment,
    pending_payloads,
    person_in_unit,
    update_person,
)
from declare_app._rules._spec import FieldKind, FieldSpec, FormSpec, Section, choices_of
from declare_app.interfaces import DeclarationType

SPEC: Final = FormSpec(
    DeclarationType.PERSON_REDUCE,
    "退休、死亡、出国（境）定居为终止参保，其他原因为暂停参保。"
    "解除劳动合同、退休、死亡须提供相应证明材料。",
    (
        Section("人员", unit_person_fields()),
        Section(
            "减员信息",
            (
                FieldSpec(
                    "reason",
                    "减员原因",
                    FieldKind.SELECT,
                    required=True,
                    choices=choices_of(REDUCE_REASONS),
                ),
                FieldSpec("stop_month", "停保（终止）年月", FieldKind.MONTH, required=True),
                FieldSpec("leave_date", "离职日期", FieldKind.DATE),
                FieldSpec(
                    "evidence",
                    "证明材料说明",
                    FieldKind.TEXTAREA,
                    max_length=500,
                    hint="材料的名称与编号；材料本身请在草稿页上传（PDF、JPEG 或 PNG），"
                    "解除劳动合同、退休、死亡的减员提交前须上传",
                ),
                FieldSpec(
                    "remark",
                    "备注",
                    FieldKind.TEXTAREA,
                    max_length=500,
                    hint="减员原因为“其他”时必填",
                ),
            ),
        ),
    ),
)


class PersonReduceRules:
    """DOMAIN §5.4 with V-RED-02, V-DATE-01, V-DUP-03, V-STAT-01, V-UNIT-01.

    V-RED-01 (the reason's evidence) is checked at submit, against the files uploaded
    onto the draft (:func:`declare_app._declarations.missing_evidence`): evidence is
    uploaded, not typed (issue 14, defect 8)."""

    type: DeclarationType = DeclarationType.PERSON_REDUCE
    spec: FormSpec = SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(payload, SPEC.fields)
        r.findings.extend(unit_findings(ctx))
        found = read_unit_person(r, ctx)
        reason = r.choice("reason")
        stop = r.month("stop_month")
        leave = r.date("leave_date")
        r.text("evidence")  # a description only: V-RED-01 wants the uploaded file (submit)
        r.text("remark", required=reason == "99")
        if stop is not None:
            month_window(r, "stop_month", stop, ctx)
            if leave is not None and stop < YearMonth.of(leave):
                r.warn("stop_month", "V-DATE-01", "停保年月早于离职年月，离职当月将不缴费")
        subject = None
        if found is not None:
            person, here = found
            subject = person.id_number
            opened = [e for e in here if e.open]
            if not opened:
                r.error("person_no", STATUS_RULE, "该人员在本单位没有正在缴费的险种，无需减员")
            if stop is not None:
                self._against_enrolments(r, person, opened, reason, stop)
            for _ in pending_payloads(
                ctx.conn,
                ctx.unit.code,
                self.type.value,
                subject=subject,
                exclude=ctx.declaration_id,
            ):
                r.error("person_no", "V-DUP-03", "该人员已有人员减少申报在审核中，请勿重复申报")
                break
        return Checked(r.out, tuple(r.findings), subject)

    def _against_enrolments(
        self,
        r: FormReader,
        person: Person,
        opened: list[Enrolment],
        reason: str | None,
        stop: YearMonth,
    ) -> None:
        latest_start = max((parse_month_text(e.start_month) for e in opened), default=None)
        if latest_start is not None and stop < latest_start:
            r.error(
                "stop_month",
                "V-DATE-01",
                f"停保年月不能早于参保年月{month_text(latest_start)}",
            )
        if reason == "31":
            gender = gender_of(person.gender)
            assert gender is not None
            month, _ = statutory_retirement(
                gender,
                staff_kind_of(person.staff_kind),
                person.birth_date,
                person.retirement_override_month,
            )
            if stop < month:
                r.warn(
                    "stop_month",
                    "V-RED-02",
                    f"该人员法定退休年月为{month_text(month)}，按退休减员须已批准弹性提前退休",
                )

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        p = checked.payload
        assert ctx.declaration_id is not None
        found = person_in_unit(
            ctx.conn, ctx.unit.code, person_number=p["person_no"], id_number=p["id_number"]
        )
        assert found is not None  # check() found the person a moment ago
        person, here = found
        reason = p["reason"]
        status = "3" if reason in TERMINATING_REASONS else "2"
        end = month_text(parse_month_text(p["stop_month"]).plus_months(-1))
        closed = []
        for e in here:
            if e.open:
                close_enrolment(
                    ctx.conn,
                    e.id,
                    status=status,
                    end_month=end,
                    reason=reason,
                    declaration_id=ctx.declaration_id,
                    now=ctx.now,
                )
                closed.append(e.insurance.value)
        if status == "3":
            # Not receiving_pension: the award is the agency's own decision, recorded by
            # staff afterwards (_agency_records.record_pension_award; issue 14, defect 7).
            values: dict[str, Any] = {"terminal_reason": reason, "updated_at": ctx.now}
            update_person(ctx.conn, person.person_number, values)
        return {
            "person_no": person.person_number,
            "insurances": sorted(closed),
            "status": status,
            "end_month": end,
        }
