"""Checks several declaration types share: the unit's standing, ID numbers, the
month window, retirement age, open enrolments, base clamping, and finding the
unit's own person."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Final

from declare_app import _vocabulary as vocabulary
from declare_app._contributions import Insurance, MissingRateError, clamp_base
from declare_app._person_id import (
    Gender,
    PersonId,
    check_person_id,
    parse_person_id,
    upgrade_legacy_id,
)
from declare_app._retirement import (
    RetirementCategory,
    StaffKind,
    YearMonth,
    flexible_latest_month,
    retirement_category,
    retirement_month,
)
from declare_app._rules._context import RuleContext
from declare_app._rules._forms import (
    FORM_INVALID,
    FormReader,
    first_part,
    money_text,
    month_text,
    parse_month_text,
)
from declare_app._rules._master import Enrolment, Person, person_in_unit
from declare_app._rules._spec import FieldKind, FieldSpec, choices_of
from declare_app.interfaces import Finding

# Our rule ids for checks DOMAIN §6 describes without numbering (see __init__).
STATUS_RULE: Final = "V-STAT-01"  # the person's enrolment state does not allow it
UNIT_PROOF_RULE: Final = "V-UNIT-02"  # unit identity changes need proof

GENDER_CHOICES: Final = choices_of(vocabulary.GENDERS)
GENDER_ALIASES: Final = {"M": "1", "F": "2", "m": "1", "f": "2"}
STAFF_KIND_CHOICES: Final = choices_of(vocabulary.STAFF_KINDS)
INSURANCE_CHOICES: Final = choices_of(vocabulary.INSURANCES)
PERSON_NUMBER = re.compile(r"[0-9A-Za-z]{6,20}")
REDUCE_REASONS: Final = vocabulary.REDUCE_REASONS  # 31/32/33 terminate
TERMINATING_REASONS: Final = frozenset({"31", "32", "33"})
# V-RED-01: reasons that need evidence, and which (DOMAIN §5.4).
REDUCE_EVIDENCE: Final = {
    "11": "解除（终止）劳动合同证明",
    "12": "解除（终止）劳动合同证明",
    "13": "解除（终止）劳动合同证明",
    "14": "解除（终止）劳动合同证明",
    "31": "退休审批表",
    "32": "死亡证明",
}


def unit_findings(ctx: RuleContext) -> list[Finding]:
    """V-UNIT-01: the unit is approved for online service, in normal standing, with no
    blocking arrears."""
    unit = ctx.unit
    message = None
    if unit.registry_status != "approved":
        message = "单位尚未开通网上申报业务"
    elif unit.standing == "cancelled":
        message = "单位已注销，不能办理申报"
    elif unit.standing == "suspended":
        message = "单位参保状态为暂停，不能办理申报，请到经办机构办理"
    elif unit.arrears:
        message = "单位存在欠费，暂不能办理网上申报，请先补缴"
    found = [] if message is None else [Finding("V-UNIT-01", "", "error", message)]
    return found + window_findings(ctx)


WINDOW_RULE: Final = "V-WIN-01"


def window_findings(ctx: RuleContext) -> list[Finding]:
    """V-WIN-01 (DOMAIN §6, §7 timing): outside the monthly acceptance window (many
    cities accept the 5th to the 25th; Chengdu, Zhuzhou forms) a filing still goes in
    but is handled in the following month.  Off unless configured
    (``RuleSettings.submission_window``): Shaoxing's window is to be verified (§10
    item 7)."""
    window = ctx.settings.submission_window
    if window is None:
        return []
    first, last = window
    day = ctx.filed_on.day
    if first <= day <= last:
        return []
    return [
        Finding(
            WINDOW_RULE,
            "",
            "warning",
            f"本月受理期为{first}日至{last}日，今日（{day}日）提交的申报将计入下月办理",
        )
    ]


RISK_CLASS_RULE: Final = "V-RATE-02"


def risk_class_findings(
    r: FormReader, ctx: RuleContext, name: str, insurances: tuple[Insurance, ...] | None
) -> None:
    """V-RATE-02: work injury (410) needs the unit's industry risk class 1-8, which its
    contribution rate depends on (DOMAIN §2.2)."""
    if not insurances or Insurance.WORK_INJURY not in insurances:
        return
    if ctx.unit.injury_risk_class is None or not 1 <= ctx.unit.injury_risk_class <= 8:
        r.error(
            name,
            RISK_CLASS_RULE,
            "本单位尚未核定工伤行业风险类别（1至8类），不能申报参加工伤保险；"
            "请先申报单位基本信息变更（工伤行业风险类别）或到经办机构核定",
        )


def gender_of(code: str | None) -> Gender | None:
    """The :class:`Gender` of a GB/T 2261.1 code (1 男, 2 女)."""
    return {"1": Gender.MALE, "2": Gender.FEMALE}.get(code or "")


def gender_code(gender: Gender) -> str:
    return "1" if gender is Gender.MALE else "2"


def staff_kind_of(code: str) -> StaffKind:
    return StaffKind.CADRE if code == "A" else StaffKind.WORKER


def read_id_number(
    reader: FormReader,
    name: str,
    *,
    today: date,
    gender_field: str | None = None,
    birth_date_field: str | None = None,
    birth_month_field: str | None = None,
    required: bool = True,
) -> PersonId | None:
    """V-ID-01…08 on *name*.  ID-06 (gender) and ID-07 (birth) go on the declared
    field, which is filled from the number when left empty (DOMAIN §1.1: "error (or
    auto-fill)"); read those fields before calling this."""
    text = reader.text(name, required=required)
    if text is None:
        return None
    text = text.replace(" ", "")
    declared_gender = gender_of(reader.out.get(gender_field)) if gender_field else None
    declared_birth = None
    if birth_date_field and isinstance(reader.out.get(birth_date_field), str):
        try:
            declared_birth = date.fromisoformat(reader.out[birth_date_field])
        except ValueError:
            declared_birth = None
    findings = check_person_id(
        text, today=today, declared_gender=declared_gender, declared_birth_date=declared_birth
    )
    for f in findings:
        field = name
        if f.rule == "ID-06" and gender_field:
            field = gender_field
        elif f.rule == "ID-07" and birth_date_field:
            field = birth_date_field
        add = reader.error if f.severity == "error" else reader.warn
        add(field, "V-" + f.rule, first_part(f.message))
    if any(f.severity == "error" and f.rule not in ("ID-06", "ID-07") for f in findings):
        return None
    parsed = parse_person_id(text, today=today)  # without the declared values: cannot fail
    reader.out[name] = parsed.number
    if gender_field and not reader.out.get(gender_field) and not reader.has_error(gender_field):
        reader.out[gender_field] = gender_code(parsed.gender)
    if (
        birth_date_field
        and not reader.out.get(birth_date_field)
        and not reader.has_error(birth_date_field)
    ):
        reader.out[birth_date_field] = parsed.birth_date.isoformat()
    if birth_month_field:
        declared = reader.out.get(birth_month_field)
        actual = month_text(YearMonth.of(parsed.birth_date))
        if not declared and not reader.has_error(birth_month_field):
            reader.out[birth_month_field] = actual
        elif isinstance(declared, str) and declared != actual:
            reader.error(
                birth_month_field,
                "V-ID-07",
                f"身份号码中的出生年月为{actual}，申报为{declared}",
            )
    return parsed


LEGACY_ID_MESSAGE: Final = "15位旧号码，已升级为18位"


def upgraded_id_number(reader: FormReader, name: str, text: str) -> str:
    """*text* without spaces, upper-cased, and a legacy 15-digit number (GB 11643-1989)
    upgraded to 18 characters with the V-ID-01 warning — on every form that names a
    person, as :func:`read_id_number` does on 人员增加 (DOMAIN §1.1, R02)."""
    number = text.replace(" ", "").upper()
    if len(number) == 15 and number.isascii() and number.isdigit():
        reader.warn(name, "V-ID-01", LEGACY_ID_MESSAGE)
        return upgrade_legacy_id(number)
    return number


def month_window(reader: FormReader, name: str, month: YearMonth, ctx: RuleContext) -> None:
    """V-DATE-01: not beyond next month, not further back than the online limit."""
    filed = YearMonth.of(ctx.filed_on)
    latest = filed.plus_months(ctx.settings.forward_months)
    earliest = filed.plus_months(-ctx.settings.backdate_months)
    label = reader.label(name)
    if month > latest:
        reader.error(name, "V-DATE-01", f"{label}不能晚于{month_text(latest)}")
    elif month < earliest:
        reader.error(
            name,
            "V-DATE-01",
            f"{label}早于{month_text(earliest)}，超过网上可办理的"
            f"{ctx.settings.backdate_months}个月期限，请到经办窗口办理",
        )


def statutory_retirement(
    gender: Gender, staff_kind: StaffKind, birth: date, override: str | None
) -> tuple[YearMonth, RetirementCategory]:
    category = retirement_category(gender, staff_kind)
    if override:
        return parse_month_text(override), category
    return retirement_month(birth, category), category


def age_findings(
    reader: FormReader,
    field: str,
    *,
    gender: Gender,
    staff_kind: StaffKind,
    birth: date,
    override: str | None,
    receiving_pension: bool,
    insurances: tuple[Insurance, ...],
    start: YearMonth,
    flexible_agreement: str | None,
) -> None:
    """V-AGE-01: a person at or past the statutory retirement month, or drawing a
    pension, may join only work injury (410) — unless a 弹性延迟 agreement is on record
    and the start lies before the flexible latest month (DOMAIN §3.3, §6, R13)."""
    month, category = statutory_retirement(gender, staff_kind, birth, override)
    others = [i for i in insurances if i is not Insurance.WORK_INJURY]
    if not others:
        return
    if receiving_pension:
        reader.error(field, "V-AGE-01", "该人员已享受养老保险待遇，只能单险种参加工伤保险（410）")
        return
    if start < month:
        return
    latest = flexible_latest_month(birth, category) if not override else month
    if flexible_agreement and latest is None:
        reader.error(
            field,
            "V-AGE-01",
            f"该人员法定退休年月为{month_text(month)}，早于2025年1月，不适用弹性延迟退休"
            "（人社部发〔2024〕94号），除工伤保险（410）外不能参保",
        )
        return
    if flexible_agreement and latest is not None and start < latest:
        reader.warn(
            field,
            "V-AGE-01",
            f"已达法定退休年月{month_text(month)}，按弹性延迟退休协议继续参保，"
            f"最迟至{month_text(latest)}",
        )
        return
    reader.error(
        field,
        "V-AGE-01",
        f"该人员法定退休年月为{month_text(month)}，已达法定退休年龄，"
        "除工伤保险（410）外不能参保（如有弹性延迟退休协议请填写）",
    )


def open_conflicts(
    reader: FormReader,
    field: str,
    *,
    unit_code: str,
    all_enrolments: list[Enrolment],
    insurances: tuple[Insurance, ...],
    start: YearMonth,
) -> None:
    """V-DUP-01: no open enrolment for the same type anywhere in the pool, and no
    closed period reaching into the new start month.  Another unit is never named."""
    for ins in insurances:
        for e in all_enrolments:
            if e.insurance is not ins:
                continue
            here = e.unit_code == unit_code
            if e.open:
                reader.error(
                    field,
                    "V-DUP-01",
                    f"该人员已在本单位参加{ins.label}（{ins.value}），不能重复参保"
                    if here
                    else f"该人员在其他单位仍在参加{ins.label}（{ins.value}），须原单位先办理减员",
                )
                break
            if e.end_month is not None and parse_month_text(e.end_month) >= start:
                reader.error(
                    field,
                    "V-DUP-01",
                    f"{ins.label}（{ins.value}）的参保年月与"
                    + (f"本单位至{e.end_month}的缴费期间重叠" if here else "已有缴费期间重叠"),
                )
                break


def clamp_wage(
    reader: FormReader,
    ctx: RuleContext,
    *,
    wage: Decimal,
    wage_field: str,
    base_field: str,
    month: YearMonth,
) -> Decimal | None:
    """V-BASE-01: the base is the declared wage clamped to the region's floor and
    ceiling in force in *month*; a missing limit is V-RATE-01."""
    try:
        limits = ctx.rates.base_limits(ctx.unit.region, date(month.year, month.month, 1))
    except MissingRateError:
        reader.error(
            wage_field,
            "V-RATE-01",
            f"未配置本统筹区{month_text(month)}的缴费基数上下限，请联系经办机构",
        )
        return None
    base, clamped = clamp_base(wage, limits)
    if clamped == "floor":
        reader.warn(
            wage_field,
            "V-BASE-01",
            f"低于缴费基数下限{money_text(limits.floor)}元，按下限核定",
        )
    elif clamped == "ceiling":
        reader.warn(
            wage_field,
            "V-BASE-01",
            f"高于缴费基数上限{money_text(limits.ceiling)}元，按上限核定",
        )
    reader.out[base_field] = money_text(base)
    return base


# The fields that name a person of the unit (read by :func:`read_unit_person`).
NAME_FIELD: Final = FieldSpec("name", "姓名", required=True, max_length=50)
ID_NUMBER_FIELD: Final = FieldSpec(
    "id_number",
    "公民身份号码",
    FieldKind.ID_NUMBER,
    required=True,
    max_length=32,
    hint="18位，末位校验码可为 X",
)


def person_no_field(*, required: bool = True) -> FieldSpec:
    return FieldSpec(
        "person_no",
        "个人编号",
        required=required,
        max_length=20,
        hint="经办机构分配的个人编号（社会保险号）",
    )


def unit_person_fields(*, person_no_required: bool = True) -> tuple[FieldSpec, ...]:
    return (person_no_field(required=person_no_required), NAME_FIELD, ID_NUMBER_FIELD)


def read_unit_person(reader: FormReader, ctx: RuleContext) -> tuple[Person, list[Enrolment]] | None:
    """The person of this unit the form names by 个人编号 and ID number, checked
    against each other and the name.

    Anyone who has no enrolment in this unit is "not found" with the same message
    whether or not they exist elsewhere (V-STAT-01).
    """
    number = reader.text("person_no", pattern=PERSON_NUMBER, pattern_message="个人编号格式不正确")
    id_text = reader.text("id_number")
    name = reader.text("name")
    id_number = None
    if id_text is not None:
        id_number = upgraded_id_number(reader, "id_number", id_text)
        if len(id_number) != 18:
            reader.error("id_number", "V-ID-01", "身份号码应为18位")
            id_number = None
        else:
            reader.out["id_number"] = id_number
    if number is None and id_number is None:
        return None
    found = person_in_unit(ctx.conn, ctx.unit.code, person_number=number, id_number=id_number)
    if found is None:
        reader.error(
            "person_no" if number else "id_number",
            STATUS_RULE,
            "本单位没有该人员的参保记录，请核对个人编号和身份号码",
        )
        return None
    person, _ = found
    if id_number is not None and person.id_number != id_number:
        reader.error("id_number", FORM_INVALID, "个人编号与公民身份号码不是同一人")
        return None
    if name is not None and name != person.name:
        reader.error("name", FORM_INVALID, "姓名与参保登记信息不符")
    reader.out["person_no"] = person.person_number
    reader.out["id_number"] = person.id_number
    return found
