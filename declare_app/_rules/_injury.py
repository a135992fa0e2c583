"""工伤事故申报 (work-injury accident, DOMAIN.md §5.6) and 工伤鉴定 (appraisal, §5.7).

An accident declaration is the employer's 工伤认定申请: due within 30 days of the
accident, or of the diagnosis for an occupational disease (工伤保险条例 art. 17).
A late one is still accepted, flagged ``late`` (V-INJ-02).  Approving it records the
application as accepted (受理) under an application number derived from the voucher
(``GSSL`` + date + sequence); it does not recognise anything: recognition is the
社会保险行政部门's decision within 60 days of acceptance (工伤保险条例 Arts. 17, 20),
which staff record later as its own audited step (``_agency_records``).  An
appraisal (V-APP-01) cites a recognised decision recorded that way, or one issued
outside this system (number, date and the issuing body).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final

from sqlalchemy import insert, select

from declare_app import _vocabulary as vocabulary
from declare_app._contributions import Insurance
from declare_app._retirement import YearMonth
from declare_app._rules._common import (
    GENDER_ALIASES,
    GENDER_CHOICES,
    ID_NUMBER_FIELD,
    NAME_FIELD,
    person_no_field,
    read_unit_person,
    unit_findings,
    unit_person_fields,
)
from declare_app._rules._context import Checked, RuleContext
from declare_app._rules._forms import (
    FORM_INVALID,
    FormReader,
    ignore_computed,
    parse_month_text,
)
from declare_app._rules._master import pending_payloads
from declare_app._rules._spec import (
    FieldKind,
    FieldSpec,
    FormSpec,
    Section,
    choices_of,
    computed,
)
from declare_app._schema import injury_applications, injury_appraisals, injury_cases
from declare_app.interfaces import DeclarationType

INJ_REQUIRED: Final = "V-INJ-01"
APP_RULE: Final = "V-APP-01"

# 社会保障卡号: the 工伤认定申请表 carries the worker's 社会保险号 (DOMAIN §5.6) and
# the 鉴定 form the 个人编号 (§5.7); the card number is what the worker holds.
SS_CARD_FIELD: Final = FieldSpec(
    "ss_card_no", "社会保障卡号", max_length=20, hint="选填，社会保障卡正面的卡号"
)
_SS_CARD: Final = re.compile(r"[0-9A-Z]{6,20}")

_CONTACT: Final = (
    FieldSpec("contact_name", "联系人", required=True, max_length=50),
    FieldSpec("contact_phone", "联系电话", FieldKind.TEL, required=True, max_length=32),
)

ACCIDENT_SPEC: Final = FormSpec(
    DeclarationType.INJURY_ACCIDENT,
    "职工发生事故伤害或被诊断、鉴定为职业病，用人单位应自事故伤害发生之日或被诊断、"
    "鉴定为职业病之日起30日内提出工伤认定申请（工伤保险条例第17条）；"
    "逾期申报的，请填写延期批准文号。",
    (
        Section(
            "受伤害职工",
            (
                person_no_field(required=False),
                NAME_FIELD,
                FieldSpec(
                    "gender", "性别", FieldKind.SELECT, required=True, choices=GENDER_CHOICES
                ),
                FieldSpec("birth_date", "出生日期", FieldKind.DATE, required=True),
                ID_NUMBER_FIELD,
                SS_CARD_FIELD,
                FieldSpec(
                    "job",
                    "职业/工种/工作岗位",
                    required=True,
                    max_length=100,
                    hint="事业单位填职业类别，企业填岗位/工种",
                ),
                FieldSpec("work_start_date", "参加工作时间", FieldKind.DATE),
            ),
        ),
        Section(
            "事故情况",
            (
                FieldSpec("accident_time", "事故时间", FieldKind.DATETIME, required=True),
                FieldSpec("accident_place", "事故地点", required=True, max_length=200),
                FieldSpec("accident_cause", "主要原因", required=True, max_length=200),
                FieldSpec(
                    "diagnosis_date",
                    "诊断时间",
                    FieldKind.DATE,
                    required=True,
                    hint="初诊时间；职业病按确诊时间",
                ),
                FieldSpec("injury_part", "受伤害部位", required=True, max_length=100),
                FieldSpec("injury_degree", "伤害程度", required=True, max_length=100),
                FieldSpec("disease_name", "职业病名称", max_length=100),
                FieldSpec("exposure_post", "接触职业病危害岗位", max_length=100),
                FieldSpec("exposure_period", "接触职业病危害时间", max_length=100),
                FieldSpec(
                    "description",
                    "受伤害经过简述",
                    FieldKind.TEXTAREA,
                    required=True,
                    max_length=2000,
                    hint="时间、地点、当时所从事的工作、受伤害原因、伤害部位和程度",
                ),
            ),
        ),
        Section(
            "申请",
            (
                FieldSpec(
                    "request",
                    "申请事项",
                    FieldKind.TEXTAREA,
                    required=True,
                    max_length=500,
                    default="申请认定为工伤",
                ),
                FieldSpec(
                    "materials",
                    "提交材料",
                    FieldKind.TEXTAREA,
                    required=True,
                    max_length=500,
                    hint="劳动合同或劳动关系证明、诊断证明书等",
                ),
                FieldSpec(
                    "extension_ref", "延期批准文号", max_length=100, hint="超过30日申报时填写"
                ),
                *_CONTACT,
            ),
        ),
    ),
    computed=(computed("deadline", "申报期限"), computed("late", "逾期申报")),
)

APPRAISAL_KINDS: Final = vocabulary.APPRAISAL_KINDS
_KIND_NAMES: Final = {"1": "initial", "2": "again", "3": "review"}
APPLICANT_KINDS: Final = vocabulary.APPLICANT_KINDS

APPRAISAL_SPEC: Final = FormSpec(
    DeclarationType.INJURY_APPRAISAL,
    "工伤职工经治疗伤情相对稳定后存在残疾、影响劳动能力的，应当进行劳动能力鉴定"
    "（工伤保险条例第21条）。再次鉴定应在收到鉴定结论之日起15日内申请；"
    "复查鉴定须在鉴定结论作出1年后申请。",
    (
        Section("职工", (*unit_person_fields(), SS_CARD_FIELD)),
        Section(
            "工伤认定",
            (
                FieldSpec("decision_no", "工伤认定决定书编号", required=True, max_length=32),
                FieldSpec("decision_date", "工伤认定决定日期", FieldKind.DATE, required=True),
                FieldSpec(
                    "issuing_body",
                    "作出认定决定的机构",
                    max_length=100,
                    hint="决定书不是本系统受理的工伤认定申请作出的，请填写作出决定的社会保险行政部门",
                ),
                FieldSpec("injury_part", "受伤部位", required=True, max_length=100),
                FieldSpec("hospital", "治疗医院", required=True, max_length=100),
                FieldSpec("stable_date", "治疗终结/伤情稳定日期", FieldKind.DATE, required=True),
            ),
        ),
        Section(
            "申请",
            (
                FieldSpec(
                    "appraisal_kind",
                    "申请类型",
                    FieldKind.SELECT,
                    required=True,
                    choices=choices_of(APPRAISAL_KINDS),
                ),
                FieldSpec(
                    "previous_conclusion_date",
                    "上次鉴定结论日期",
                    FieldKind.DATE,
                    hint="再次鉴定、复查鉴定时填写",
                ),
                FieldSpec(
                    "applicant_kind",
                    "申请人类型",
                    FieldKind.SELECT,
                    required=True,
                    choices=choices_of(APPLICANT_KINDS),
                    default="1",
                ),
                FieldSpec(
                    "materials",
                    "病历材料",
                    FieldKind.TEXTAREA,
                    required=True,
                    max_length=500,
                    hint="工伤认定决定书、病历、检查报告等",
                ),
                *_CONTACT,
            ),
        ),
    ),
)


class InjuryAccidentRules:
    """DOMAIN §5.6 with V-INJ-01 (required items, dates, coverage) and V-INJ-02 (the
    30-day deadline), V-DUP-03, V-STAT-01, V-ID-06/07, V-UNIT-01."""

    type: DeclarationType = DeclarationType.INJURY_ACCIDENT
    spec: FormSpec = ACCIDENT_SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(
            ignore_computed(payload, ACCIDENT_SPEC.computed),
            ACCIDENT_SPEC.fields,
            required_rule=INJ_REQUIRED,
        )
        r.findings.extend(unit_findings(ctx))
        found = read_unit_person(r, ctx)
        _card(r)
        gender = r.choice("gender", aliases=GENDER_ALIASES)
        birth = r.date("birth_date")
        for name in ("job", "accident_place", "accident_cause", "injury_part", "injury_degree"):
            r.text(name)
        r.date("work_start_date")
        at = r.datetime("accident_time")
        diagnosed = r.date("diagnosis_date")
        disease = r.text("disease_name")
        r.text("exposure_post", required=disease is not None)
        r.text("exposure_period", required=disease is not None)
        for name in ("description", "request", "materials", "contact_name"):
            r.text(name)
        r.phone("contact_phone")
        extension = r.text("extension_ref")
        accident = at.date() if at is not None else None
        self._materials(r)
        self._dates(r, ctx, accident, diagnosed)
        start = diagnosed if disease is not None else accident
        if start is not None:
            self._deadline(r, ctx, start, extension)
        if found is None:
            return Checked(r.out, tuple(r.findings), None)
        person, here = found
        _as_on_record(r, "gender", gender, person.gender, "V-ID-06")
        _as_on_record(r, "birth_date", birth, person.birth_date, "V-ID-07")
        if accident is not None:
            month = YearMonth.of(accident)
            covered = any(
                e.insurance is Insurance.WORK_INJURY
                and parse_month_text(e.start_month) <= month
                and (e.end_month is None or month <= parse_month_text(e.end_month))
                for e in here
            )
            if not covered:
                r.warn(
                    "accident_time",
                    INJ_REQUIRED,
                    "事故发生时该职工未在本单位参加工伤保险，工伤保险待遇由用人单位支付",
                )
            self._duplicates(r, ctx, person.person_number, person.id_number, accident)
        return Checked(r.out, tuple(r.findings), person.id_number)

    def _dates(
        self, r: FormReader, ctx: RuleContext, accident: date | None, diagnosed: date | None
    ) -> None:
        if accident is not None and accident > ctx.filed_on:
            r.error("accident_time", INJ_REQUIRED, "事故时间不能晚于申报日期")
        if diagnosed is not None:
            if diagnosed > ctx.filed_on:
                r.error("diagnosis_date", INJ_REQUIRED, "诊断时间不能晚于申报日期")
            elif accident is not None and diagnosed < accident:
                r.error("diagnosis_date", INJ_REQUIRED, "诊断时间不能早于事故时间")

    def _materials(self, r: FormReader) -> None:
        """V-INJ-01: art. 18 asks for proof of the labour relation and a diagnosis."""
        materials = r.out.get("materials")
        if not isinstance(materials, str) or r.has_error("materials"):
            return
        if not any(word in materials for word in ("劳动合同", "劳动关系", "用工")):
            r.warn("materials", INJ_REQUIRED, "提交材料中应有劳动合同或劳动关系证明")
        if "诊断" not in materials and "鉴定" not in materials:
            r.warn("materials", INJ_REQUIRED, "提交材料中应有医疗诊断证明或职业病诊断证明")
        degree = r.out.get("injury_degree")
        if isinstance(degree, str) and "死亡" in degree and "死亡" not in materials:
            r.warn("materials", INJ_REQUIRED, "职工死亡的，应提交死亡证明")

    def _deadline(
        self, r: FormReader, ctx: RuleContext, start: date, extension: str | None
    ) -> None:
        """V-INJ-02: due 30 days after the accident (or diagnosis); late still accepted."""
        deadline = start + timedelta(days=ctx.settings.injury_report_days)
        late = ctx.filed_on > deadline
        r.out["deadline"] = deadline.isoformat()
        r.out["late"] = late
        if late and extension:
            r.warn(
                "extension_ref",
                "V-INJ-02",
                f"已超过申报期限{deadline.isoformat()}，按延期批准（{extension}）受理，逾期标记保留",
            )
        elif late:
            r.warn(
                "accident_time",
                "V-INJ-02",
                f"已超过申报期限{deadline.isoformat()}（工伤保险条例第十七条），仍予受理并标记逾期；"
                "逾期期间发生的工伤待遇等费用由用人单位负担。如已获延期批准请填写批准文号",
            )
        elif (deadline - ctx.filed_on).days <= ctx.settings.injury_warn_days:
            r.warn("accident_time", "V-INJ-02", f"申报期限为{deadline.isoformat()}，即将到期")

    def _duplicates(
        self, r: FormReader, ctx: RuleContext, person_number: str, id_number: str, accident: date
    ) -> None:
        """V-DUP-03: the same accident pending, accepted or already decided."""
        recognised = ctx.conn.execute(
            select(injury_cases.c.decision_no).where(
                injury_cases.c.person_number == person_number,
                injury_cases.c.unit_code == ctx.unit.code,
                injury_cases.c.accident_date == accident,
            )
        ).first()
        if recognised is not None:
            r.error("accident_time", "V-DUP-03", f"该事故已认定（{recognised[0]}），请勿重复申报")
            return
        accepted = ctx.conn.execute(
            select(injury_applications.c.application_no).where(
                injury_applications.c.person_number == person_number,
                injury_applications.c.unit_code == ctx.unit.code,
                injury_applications.c.accident_date == accident,
            )
        ).first()
        if accepted is not None:
            r.error(
                "accident_time",
                "V-DUP-03",
                f"该事故的工伤认定申请已受理（{accepted[0]}），请勿重复申报",
            )
            return
        for other in pending_payloads(
            ctx.conn, ctx.unit.code, self.type.value, subject=id_number, exclude=ctx.declaration_id
        ):
            if str(other.get("accident_time", ""))[:10] == accident.isoformat():
                r.error("accident_time", "V-DUP-03", "该事故已有工伤申报在审核中，请勿重复申报")
                return

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        p = checked.payload
        assert ctx.voucher_no is not None and ctx.declaration_id is not None
        # 受理 only: the 工伤认定决定 is the administrative department's, recorded later
        # (工伤保险条例 Arts. 17, 20).
        application_no = "GSSL" + ctx.voucher_no[2:]
        ctx.conn.execute(
            insert(injury_applications).values(
                application_no=application_no,
                declaration_id=ctx.declaration_id,
                person_number=p["person_no"],
                unit_code=ctx.unit.code,
                accident_date=date.fromisoformat(p["accident_time"][:10]),
                diagnosis_date=date.fromisoformat(p["diagnosis_date"]),
                accepted_on=ctx.today,
                late=bool(p["late"]),
            )
        )
        return {
            "application_no": application_no,
            "accepted_on": ctx.today.isoformat(),
            "late": bool(p["late"]),
        }


class InjuryAppraisalRules:
    """DOMAIN §5.7 with V-APP-01: a recognised case of this person in this unit, a
    re-appraisal within 15 days of the conclusion, a review at least a year after."""

    type: DeclarationType = DeclarationType.INJURY_APPRAISAL
    spec: FormSpec = APPRAISAL_SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(payload, APPRAISAL_SPEC.fields)
        r.findings.extend(unit_findings(ctx))
        found = read_unit_person(r, ctx)
        _card(r)
        number = r.text("decision_no")
        decided = r.date("decision_date")
        issuer = r.text("issuing_body")
        r.text("injury_part")
        r.text("hospital")
        stable = r.date("stable_date")
        kind = r.choice("appraisal_kind")
        previous = r.date("previous_conclusion_date", required=kind in ("2", "3"))
        r.choice("applicant_kind")
        r.text("materials")
        r.text("contact_name")
        r.phone("contact_phone")
        if stable is not None and stable > ctx.filed_on:
            r.error("stable_date", FORM_INVALID, "治疗终结/伤情稳定日期不能晚于申报日期")
        if previous is not None and previous > ctx.filed_on:
            r.error("previous_conclusion_date", FORM_INVALID, "上次鉴定结论日期不能晚于申报日期")
        if found is None or number is None:
            return Checked(r.out, tuple(r.findings), None)
        person = found[0]
        case = ctx.conn.execute(
            select(injury_cases).where(injury_cases.c.decision_no == number)
        ).first()
        if case is not None and (
            case.person_number != person.person_number or case.unit_code != ctx.unit.code
        ):
            r.error("decision_no", APP_RULE, "未找到该职工在本单位的工伤认定决定，请核对决定书编号")
            return Checked(r.out, tuple(r.findings), number)
        if case is None:
            if issuer is None:
                r.error(
                    "decision_no",
                    APP_RULE,
                    "未找到该职工在本单位的工伤认定决定，请核对决定书编号；"
                    "系统外作出的决定请填写作出认定决定的机构",
                )
                return Checked(r.out, tuple(r.findings), number)
            if decided is not None and decided > ctx.filed_on:
                r.error("decision_date", APP_RULE, "工伤认定决定日期不能晚于申报日期")
            r.warn(
                "issuing_body",
                APP_RULE,
                f"工伤认定决定由{issuer}作出（本系统无记录），经办机构将核对决定书，请上传决定书",
            )
        else:
            if case.outcome != "recognised":
                r.error(
                    "decision_no",
                    APP_RULE,
                    "该决定为不予认定工伤，不能申请劳动能力鉴定（工伤保险条例第二十三条）",
                )
            if decided is not None and decided != case.decided_on:
                r.error("decision_date", APP_RULE, "工伤认定决定日期与决定书不符")
            if (
                stable is not None
                and case.accident_date is not None
                and stable < case.accident_date
            ):
                r.error("stable_date", FORM_INVALID, "治疗终结/伤情稳定日期不能早于事故日期")
        self._kind(r, ctx, number, kind, previous)
        return Checked(r.out, tuple(r.findings), number)

    def _kind(
        self,
        r: FormReader,
        ctx: RuleContext,
        decision_no: str,
        kind: str | None,
        previous: date | None,
    ) -> None:
        """V-APP-01 by application type, against the appraisals on record."""
        earlier = ctx.conn.execute(
            select(injury_appraisals)
            .where(injury_appraisals.c.decision_no == decision_no)
            .order_by(injury_appraisals.c.id)
        ).all()
        pending = pending_payloads(
            ctx.conn,
            ctx.unit.code,
            self.type.value,
            subject=decision_no,
            exclude=ctx.declaration_id,
        )
        if pending:
            r.error("decision_no", "V-DUP-03", "该工伤已有鉴定申请在审核中，请勿重复申报")
        if kind == "1":
            if earlier:
                r.error(
                    "appraisal_kind",
                    APP_RULE,
                    "该工伤已申请过初次鉴定，请选择再次鉴定或复查鉴定",
                )
            return
        if kind is None or previous is None:
            return
        if not earlier:
            r.error("appraisal_kind", APP_RULE, "该工伤尚无鉴定记录，请先申请初次鉴定")
            return
        concluded = [a.conclusion_on for a in earlier if a.conclusion_on is not None]
        if concluded and previous != max(concluded):
            r.error(
                "previous_conclusion_date",
                APP_RULE,
                f"上次鉴定结论日期应为{max(concluded).isoformat()}",
            )
        if kind == "2" and ctx.filed_on > previous + timedelta(days=ctx.settings.reappraisal_days):
            r.error(
                "appraisal_kind",
                APP_RULE,
                f"再次鉴定应在收到鉴定结论之日起{ctx.settings.reappraisal_days}日内申请"
                "（工伤保险条例第二十六条）",
            )
        if kind == "3" and ctx.filed_on < _one_year_after(previous):
            r.error(
                "appraisal_kind",
                APP_RULE,
                f"复查鉴定须在鉴定结论作出1年后（{_one_year_after(previous).isoformat()}起）申请"
                "（工伤保险条例第二十八条）",
            )

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        p = checked.payload
        kind = _KIND_NAMES[p["appraisal_kind"]]
        known = ctx.conn.execute(
            select(injury_cases.c.decision_no).where(injury_cases.c.decision_no == p["decision_no"])
        ).first()
        if known is None:  # issued outside this system: kept as cited, with its body
            ctx.conn.execute(
                insert(injury_cases).values(
                    decision_no=p["decision_no"],
                    person_number=p["person_no"],
                    unit_code=ctx.unit.code,
                    accident_date=None,
                    decided_on=date.fromisoformat(p["decision_date"]),
                    outcome="recognised",
                    issued_by=p.get("issuing_body"),
                    declaration_id=ctx.declaration_id,
                )
            )
        ctx.conn.execute(
            insert(injury_appraisals).values(
                decision_no=p["decision_no"],
                person_number=p["person_no"],
                unit_code=ctx.unit.code,
                kind=kind,
                applied_on=ctx.today,
                declaration_id=ctx.declaration_id,
            )
        )
        return {"decision_no": p["decision_no"], "kind": kind}


def _card(r: FormReader) -> None:
    """社会保障卡号: optional; letters and digits only (full-width folded, upper case)."""
    raw = r.text("ss_card_no")
    if raw is None or r.has_error("ss_card_no"):
        return
    card = unicodedata.normalize("NFKC", raw).replace(" ", "").upper()
    if not _SS_CARD.fullmatch(card):
        r.error("ss_card_no", FORM_INVALID, "社会保障卡号应为6至20位数字或大写字母")
        return
    r.out["ss_card_no"] = card


def _as_on_record(
    r: FormReader, name: str, declared: object, recorded: str | date, rule: str
) -> None:
    """A declared gender or birth date must be the record's; left empty, it is filled."""
    if declared is not None and declared != recorded:
        r.error(name, rule, f"{r.label(name)}与参保登记信息不符")
    elif declared is None and not r.has_error(name):
        r.out[name] = recorded.isoformat() if isinstance(recorded, date) else recorded


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)
