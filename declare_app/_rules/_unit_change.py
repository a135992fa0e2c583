"""单位基本信息变更 (unit basic information change), DOMAIN.md §5.1: one item per
declaration — which item, its new content, since when, and the proof.

The old content is taken from the record (the form's copy is only compared).  Name and
credit code live in the agency's registry (``units``), every other item in
``unit_profiles``; a change of either identity item needs proof (V-UNIT-02).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import insert, select, update

from declare_app import _vocabulary as vocabulary
from declare_app._identifiers import USCC_TAKEN, check_uscc, normalise_uscc
from declare_app._person_id import check_person_id
from declare_app._rules._common import UNIT_PROOF_RULE, unit_findings
from declare_app._rules._context import Checked, RuleContext
from declare_app._rules._forms import FORM_INVALID, FormReader, first_part
from declare_app._rules._master import pending_payloads, unit_profile
from declare_app._rules._spec import FieldKind, FieldSpec, FormSpec, Section, choices_of
from declare_app._schema import unit_profiles, units
from declare_app.interfaces import DeclarationType

UNIT_FIELDS: Final = vocabulary.UNIT_FIELDS
_LABELS: Final = dict(UNIT_FIELDS)
IDENTITY_FIELDS: Final = frozenset({"name", "credit_code"})
UNIT_TYPES: Final = (
    "企业",
    "事业单位",
    "机关",
    "社会团体",
    "民办非企业单位",
    "个体工商户",
    "其他",
)
# Column widths of units / unit_profiles, so PostgreSQL never refuses what we accept.
_WIDTHS: Final = {
    "name": 200,
    "unit_type": 32,
    "registered_address": 200,
    "business_address": 200,
    "economic_type": 32,
    "affiliation": 32,
    "legal_rep_name": 100,
    "agent_name": 100,
    "bank_name": 100,
    "bank_account_name": 200,
    "competent_dept": 100,
}
_PATTERNS: Final = {
    "postcode": (re.compile(r"[0-9]{6}"), "邮政编码应为6位数字"),
    "industry_code": (re.compile(r"[A-T]?[0-9]{2,4}"), "行业代码应为GB/T 4754代码，如C3011或3011"),
    "admin_region": (re.compile(r"[1-9][0-9]{5}"), "所属行政区划应为6位行政区划代码"),
    "agent_phone": (re.compile(r"\+?[0-9][0-9 \-]{4,22}[0-9]"), "电话号码格式不正确"),
    "bank_account_no": (re.compile(r"[0-9]{8,32}"), "银行账号应为8至32位数字"),
}
_USCC_MESSAGES: Final = {
    "USCC-01": "统一社会信用代码应为18位，字母须大写",
    "USCC-02": "统一社会信用代码含有不允许的字符（不使用I、O、Z、S、V）",
    "USCC-03": "统一社会信用代码校验码错误",
    "USCC-04": "统一社会信用代码的登记管理部门或机构类别代码少见，请核对",
    "USCC-05": "统一社会信用代码中的组织机构代码校验码不符，请核对",
}

SPEC: Final = FormSpec(
    DeclarationType.UNIT_CHANGE,
    "单位登记事项发生变更的，应自变更之日起30日内申报（社会保险法第57条）。"
    "统一社会信用代码、单位名称变更须与营业执照等证照一致。",
    (
        Section(
            "变更事项",
            (
                FieldSpec(
                    "field",
                    "变更项目",
                    FieldKind.SELECT,
                    required=True,
                    choices=choices_of(UNIT_FIELDS),
                ),
                FieldSpec("old_value", "变更前内容", max_length=200, hint="按登记信息填写"),
                FieldSpec("new_value", "变更后内容", required=True, max_length=200),
                FieldSpec("effective_date", "变更日期", FieldKind.DATE, required=True),
                FieldSpec("reason", "变更原因", FieldKind.TEXTAREA, max_length=500),
            ),
        ),
        Section(
            "材料",
            (
                FieldSpec(
                    "attachments",
                    "附件材料",
                    FieldKind.TEXTAREA,
                    max_length=500,
                    hint="营业执照副本、变更通知书等；单位名称和统一社会信用代码变更必填",
                ),
            ),
        ),
    ),
)


def current_value(conn: Any, unit_code: str, field: str) -> str:
    """The item as on record, as text (``""`` when not recorded)."""
    if field in IDENTITY_FIELDS:
        value = conn.execute(select(units.c[field]).where(units.c.code == unit_code)).scalar()
    else:
        value = unit_profile(conn, unit_code).get(field)
    return "" if value is None else str(value)


class UnitChangeRules:
    """DOMAIN §5.1 with V-USCC-*, V-ID-* (legal representative), V-RATE-02,
    V-DATE-03, V-UNIT-02, V-DUP-03, V-UNIT-01."""

    type: DeclarationType = DeclarationType.UNIT_CHANGE
    spec: FormSpec = SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(payload, SPEC.fields)
        r.findings.extend(unit_findings(ctx))
        field = r.choice("field")
        declared_old = r.text("old_value")
        new = r.text("new_value")
        effective = r.date("effective_date")
        r.text("reason")
        attachments = r.text("attachments")
        if effective is not None:
            if effective > ctx.filed_on:
                r.error("effective_date", FORM_INVALID, "变更日期不能晚于申报日期")
            elif effective + timedelta(days=ctx.settings.unit_change_days) < ctx.filed_on:
                r.warn(
                    "effective_date",
                    "V-DATE-03",
                    f"超过变更之日起{ctx.settings.unit_change_days}日内申报的期限"
                    "（社会保险法第五十七条）",
                )
        if field is None:
            return Checked(r.out, tuple(r.findings), None)
        old = current_value(ctx.conn, ctx.unit.code, field)
        r.out["old_value"] = old
        if declared_old is not None and declared_old != old:
            r.warn("old_value", FORM_INVALID, "变更前内容与登记信息不一致，已按登记信息填写")
        if new is not None:
            new = self._new_value(r, ctx, field, new)
            if new is not None and new == old:
                r.error("new_value", FORM_INVALID, "变更后内容与登记信息相同，无需变更")
        if field in IDENTITY_FIELDS and attachments is None:
            r.error(
                "attachments",
                UNIT_PROOF_RULE,
                f"{_LABELS[field]}变更须附营业执照或变更通知书，且须与证照一致",
            )
        if pending_payloads(
            ctx.conn, ctx.unit.code, self.type.value, subject=field, exclude=ctx.declaration_id
        ):
            r.error("field", "V-DUP-03", f"“{_LABELS[field]}”已有变更申报在审核中，请勿重复申报")
        return Checked(r.out, tuple(r.findings), field)

    def _new_value(self, r: FormReader, ctx: RuleContext, field: str, new: str) -> str | None:
        """Validate and normalise the new content of *field*; ``None`` when invalid."""
        if field == "credit_code":
            return self._credit_code(r, ctx, new)
        if field in ("legal_rep_id", "bank_account_no"):
            new = new.replace(" ", "").upper()
            r.out["new_value"] = new
        if field == "legal_rep_id":
            findings = check_person_id(new, today=ctx.filed_on)
            for f in findings:
                add = r.error if f.severity == "error" else r.warn
                add("new_value", "V-" + f.rule, first_part(f.message))
            return None if any(f.severity == "error" for f in findings) else new
        problem = _problem(field, new)
        if problem is not None:
            r.error("new_value", *problem)
            return None
        return new

    def _credit_code(self, r: FormReader, ctx: RuleContext, new: str) -> str | None:
        new = normalise_uscc(new)
        r.out["new_value"] = new
        findings = check_uscc(new)
        for f in findings:
            add = r.error if f.severity == "error" else r.warn
            add("new_value", "V-" + f.rule, _USCC_MESSAGES.get(f.rule, f.message))
        if any(f.severity == "error" for f in findings):
            return None
        clash = ctx.conn.execute(
            select(units.c.code).where(units.c.credit_code == new, units.c.code != ctx.unit.code)
        ).first()
        if clash is not None:
            r.error("new_value", "V-" + USCC_TAKEN, "该统一社会信用代码已登记为其他单位，请核对")
            return None
        return new

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        p = checked.payload
        field, new = p["field"], p["new_value"]
        if field in IDENTITY_FIELDS:
            ctx.conn.execute(
                update(units).where(units.c.code == ctx.unit.code).values({field: new})
            )
        else:
            value: Any = int(new) if field == "injury_risk_class" else new
            exists = ctx.conn.execute(
                select(unit_profiles.c.unit_code).where(unit_profiles.c.unit_code == ctx.unit.code)
            ).first()
            values = {
                field: value,
                "updated_at": ctx.now,
                "updated_by_declaration": ctx.declaration_id,
            }
            if exists is None:
                ctx.conn.execute(insert(unit_profiles).values(unit_code=ctx.unit.code, **values))
            else:
                ctx.conn.execute(
                    update(unit_profiles)
                    .where(unit_profiles.c.unit_code == ctx.unit.code)
                    .values(values)
                )
        return {"field": field, "old_value": p["old_value"], "new_value": new}


def _problem(field: str, new: str) -> tuple[str, str] | None:
    """(rule, message) when *new* is not a valid content of *field*."""
    if field == "injury_risk_class":
        if new not in {str(i) for i in range(1, 9)}:
            return "V-RATE-02", "工伤行业风险类别应为1至8类"
    elif field == "unit_type":
        if new not in UNIT_TYPES:
            return FORM_INVALID, f"单位类型应为：{'、'.join(UNIT_TYPES)}"
    elif field in _PATTERNS:
        pattern, message = _PATTERNS[field]
        if not pattern.fullmatch(new):
            return FORM_INVALID, message
    elif len(new) > _WIDTHS.get(field, 200):
        return "V-FORM-03", f"{_LABELS[field]}不能超过{_WIDTHS.get(field, 200)}个字符"
    return None
