"""The employer forms, one per declaration type, as data (DOMAIN §5).

A :class:`FormSpec` lists a type's fields in sections, each a :class:`FieldSpec` with
its Chinese label (as the manual and the paper forms name it), its input kind, its
choices and whether it is required.  The pages, the form parser and the JSON API
are generic over these specs: a field is added here and appears everywhere.

Field names are the payload keys the workflow receives.  ``required`` drives the
form's marking and the workflow's own checks; the web layer itself refuses only
malformed input (wrong type, too long, a choice that is not offered, a bad date).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from declare_app import _vocabulary as vocabulary
from declare_app.interfaces import DeclarationType


class FieldKind(enum.Enum):
    """How a field is entered and what shape its value has."""

    TEXT = "text"  # one line
    TEXTAREA = "textarea"  # several lines
    SELECT = "select"  # one of the choices
    MULTI = "multi"  # any of the choices (a list)
    DATE = "date"  # YYYY-MM-DD
    MONTH = "month"  # YYYY-MM (the forms say "填写到月")
    DATETIME = "datetime"  # YYYY-MM-DDTHH:MM
    MONEY = "money"  # yuan, at most two decimals
    YEAR = "year"  # YYYY
    TEL = "tel"
    ID_NUMBER = "id-number"  # 公民身份号码 (upper-cased, spaces removed)
    LINES = "lines"  # a batch: one row per person, columns given by ``columns``


@dataclass(frozen=True)
class Choice:
    value: str
    label: str

    @property
    def text(self) -> str:
        """How the choice is shown: code and meaning, as on the paper forms."""
        return f"{self.value} {self.label}" if self.value != self.label else self.label


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: FieldKind = FieldKind.TEXT
    required: bool = False
    choices: tuple[Choice, ...] = ()
    max_length: int = 100
    hint: str = ""
    default: str | tuple[str, ...] = ""
    columns: tuple[FieldSpec, ...] = ()  # LINES only
    max_lines: int = 10_000  # LINES only

    def choice_label(self, value: str) -> str | None:
        for choice in self.choices:
            if choice.value == value:
                return choice.text
        return None


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class FormSpec:
    type: DeclarationType
    intro: str  # the rule that applies, shown above the form
    sections: tuple[Section, ...]
    fields_by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, FieldSpec] = {}
        for section in self.sections:
            for f in section.fields:
                if f.name in by_name:
                    raise ValueError(f"{self.type.value}: field {f.name} twice")
                by_name[f.name] = f
        object.__setattr__(self, "fields_by_name", by_name)

    @property
    def title(self) -> str:
        return self.type.chinese

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        return tuple(self.fields_by_name.values())


def _choices(*pairs: tuple[str, str]) -> tuple[Choice, ...]:
    return tuple(Choice(v, label) for v, label in pairs)


# -- shared vocabularies --------------------------------------------------------------

GENDERS = _choices(*vocabulary.GENDERS)
ID_TYPES = _choices(*vocabulary.ID_TYPES)
NATIONS = _choices(*vocabulary.NATIONS)
HUKOU_TYPES = _choices(*vocabulary.HUKOU_TYPES)
STAFF_KINDS = _choices(*vocabulary.STAFF_KINDS)
EMPLOYMENT_FORMS = _choices(*vocabulary.EMPLOYMENT_FORMS)
INSURANCES = _choices(*vocabulary.INSURANCES)
ADD_TYPES = _choices(*vocabulary.ADD_TYPES)
REDUCE_REASONS = _choices(*vocabulary.REDUCE_REASONS)
INSURANCE_CHANGE_REASONS = _choices(*vocabulary.INSURANCE_CHANGE_REASONS)
UNIT_FIELDS = _choices(*vocabulary.UNIT_FIELDS)
APPRAISAL_KINDS = _choices(*vocabulary.APPRAISAL_KINDS)
APPLICANT_KINDS = _choices(*vocabulary.APPLICANT_KINDS)
RETURN_REASONS = vocabulary.RETURN_REASONS


# -- the person fields most forms share ------------------------------------------------


def _person_no(required: bool = False) -> FieldSpec:
    return FieldSpec(
        "person_no",
        "个人编号",
        required=required,
        max_length=20,
        hint="经办机构分配的个人编号（社会保险号）",
    )


_NAME = FieldSpec("name", "姓名", required=True, max_length=50)
_ID_NUMBER = FieldSpec(
    "id_number",
    "公民身份号码",
    FieldKind.ID_NUMBER,
    required=True,
    max_length=32,
    hint="18位，末位校验码可为 X",
)


# -- the eight forms --------------------------------------------------------------------

UNIT_CHANGE = FormSpec(
    DeclarationType.UNIT_CHANGE,
    "单位登记事项发生变更的，应自变更之日起30日内申报（社会保险法第57条）。"
    "统一社会信用代码、单位名称变更须与营业执照等证照一致。",
    (
        Section(
            "变更事项",
            (
                FieldSpec(
                    "field", "变更项目", FieldKind.SELECT, required=True, choices=UNIT_FIELDS
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

PERSON_ADD = FormSpec(
    DeclarationType.PERSON_ADD,
    "用人单位应自用工之日起30日内为职工申请办理社会保险登记（社会保险法第58条）。"
    "首次参保（A）仅限从未参保人员；已参保人员按续保（B）或转入（C、D）办理。",
    (
        Section(
            "基本信息",
            (
                _NAME,
                FieldSpec(
                    "gender",
                    "性别",
                    FieldKind.SELECT,
                    choices=GENDERS,
                    hint="留空则按身份号码填写",
                ),
                FieldSpec("birth_month", "出生年月", FieldKind.MONTH, hint="留空则按身份号码填写"),
                FieldSpec(
                    "id_type",
                    "证件类型",
                    FieldKind.SELECT,
                    choices=ID_TYPES,
                    default="01",
                    hint="默认居民身份证",
                ),
                _ID_NUMBER,
                FieldSpec(
                    "nation",
                    "民族",
                    FieldKind.SELECT,
                    choices=NATIONS,
                    default="01",
                    hint="居民身份证必填",
                ),
                FieldSpec(
                    "hukou_type",
                    "户口性质",
                    FieldKind.SELECT,
                    choices=HUKOU_TYPES,
                    hint="居民身份证必填",
                ),
                FieldSpec("hukou_address", "户籍地址", max_length=200),
                FieldSpec(
                    "staff_kind",
                    "人员身份",
                    FieldKind.SELECT,
                    required=True,
                    choices=STAFF_KINDS,
                    hint="干部/工人，决定法定退休年龄",
                ),
            ),
        ),
        Section(
            "就业与参保",
            (
                FieldSpec(
                    "employment_form",
                    "用工形式",
                    FieldKind.SELECT,
                    choices=EMPLOYMENT_FORMS,
                    default="1",
                    hint="默认合同工",
                ),
                FieldSpec("work_start_month", "参加工作年月", FieldKind.MONTH),
                FieldSpec("hire_date", "本单位入职日期", FieldKind.DATE, required=True),
                FieldSpec(
                    "insurances",
                    "参保险种",
                    FieldKind.MULTI,
                    required=True,
                    choices=INSURANCES,
                    default=("110", "210", "310", "410", "510"),
                    hint="职工基本医疗保险与生育保险须同时参保",
                ),
                FieldSpec(
                    "add_type", "增员类型", FieldKind.SELECT, required=True, choices=ADD_TYPES
                ),
                FieldSpec("start_month", "参保（开始缴费）年月", FieldKind.MONTH, required=True),
                FieldSpec(
                    "monthly_wage",
                    "月缴费工资（基数）",
                    FieldKind.MONEY,
                    required=True,
                    hint="元；低于下限按下限、高于上限按上限核定",
                ),
                FieldSpec(
                    "person_no",
                    "个人编号",
                    max_length=20,
                    hint="续保（B）、区内转入（D）必填；首次参保不填，审核通过后分配",
                ),
                FieldSpec(
                    "transfer_doc",
                    "转移接续凭证编号",
                    max_length=50,
                    hint="区外转入（C）时填写",
                ),
            ),
        ),
        Section(
            "联系方式与备注",
            (
                FieldSpec("phone", "联系电话", FieldKind.TEL, max_length=32),
                FieldSpec("address", "联系地址", max_length=200),
                FieldSpec(
                    "remark",
                    "备注",
                    FieldKind.TEXTAREA,
                    max_length=500,
                    hint="特殊身份请注明，如军转干部、港澳台人员、外籍人员",
                ),
                FieldSpec(
                    "flexible_agreement",
                    "弹性延迟退休协议",
                    max_length=100,
                    hint="已达法定退休年龄仍继续参保时填写协议编号或说明",
                ),
            ),
        ),
    ),
)

INSURANCE_ADD = FormSpec(
    DeclarationType.INSURANCE_ADD,
    "为已参保人员增加参保险种。职工基本医疗保险与生育保险须同时增加。",
    (
        Section("人员", (_person_no(required=True), _NAME, _ID_NUMBER)),
        Section(
            "增加险种",
            (
                FieldSpec(
                    "insurances", "增加险种", FieldKind.MULTI, required=True, choices=INSURANCES
                ),
                FieldSpec(
                    "reason",
                    "变动原因",
                    FieldKind.SELECT,
                    required=True,
                    choices=INSURANCE_CHANGE_REASONS,
                ),
                FieldSpec("start_month", "开始缴费年月", FieldKind.MONTH, required=True),
                FieldSpec("base", "缴费基数", FieldKind.MONEY, required=True, hint="元/月"),
                FieldSpec(
                    "remark",
                    "备注",
                    FieldKind.TEXTAREA,
                    max_length=500,
                    hint="变动原因为“其他”时必填",
                ),
            ),
        ),
    ),
)

INSURANCE_REDUCE = FormSpec(
    DeclarationType.INSURANCE_REDUCE,
    "为参保人员停止部分险种。职工基本医疗保险与生育保险须同时减少。",
    (
        Section("人员", (_person_no(required=True), _NAME, _ID_NUMBER)),
        Section(
            "减少险种",
            (
                FieldSpec(
                    "insurances", "减少险种", FieldKind.MULTI, required=True, choices=INSURANCES
                ),
                FieldSpec(
                    "reason",
                    "变动原因",
                    FieldKind.SELECT,
                    required=True,
                    choices=INSURANCE_CHANGE_REASONS,
                ),
                FieldSpec("stop_month", "停止缴费年月", FieldKind.MONTH, required=True),
                FieldSpec(
                    "remark",
                    "备注",
                    FieldKind.TEXTAREA,
                    max_length=500,
                    hint="变动原因为“其他”时必填",
                ),
            ),
        ),
    ),
)

PERSON_REDUCE = FormSpec(
    DeclarationType.PERSON_REDUCE,
    "退休、死亡、出国（境）定居为终止参保，其他原因为暂停参保。"
    "解除劳动合同、退休、死亡须提供相应证明材料。",
    (
        Section("人员", (_person_no(required=True), _NAME, _ID_NUMBER)),
        Section(
            "减员信息",
            (
                FieldSpec(
                    "reason", "减员原因", FieldKind.SELECT, required=True, choices=REDUCE_REASONS
                ),
                FieldSpec("stop_month", "停保（终止）年月", FieldKind.MONTH, required=True),
                FieldSpec("leave_date", "离职日期", FieldKind.DATE),
                FieldSpec(
                    "evidence",
                    "证明材料",
                    FieldKind.TEXTAREA,
                    max_length=500,
                    hint="如解除劳动合同证明、退休审批表、死亡证明的名称与编号",
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

ANNUAL_BASE = FormSpec(
    DeclarationType.ANNUAL_BASE,
    "每年只可申报一次。申报工资为上年度月平均工资；低于缴费基数下限的按下限、"
    "高于上限的按上限核定。",
    (
        Section(
            "申报",
            (
                FieldSpec("year", "申报年度", FieldKind.YEAR, required=True),
                FieldSpec(
                    "lines",
                    "人员明细",
                    FieldKind.LINES,
                    required=True,
                    max_length=1_000_000,
                    hint=(
                        "每行一人：个人编号, 姓名, 公民身份号码, 上年度月平均工资"
                        "（以逗号或制表符分隔）"
                    ),
                    columns=(
                        FieldSpec("person_no", "个人编号", required=True, max_length=20),
                        FieldSpec("name", "姓名", required=True, max_length=50),
                        FieldSpec(
                            "id_number",
                            "公民身份号码",
                            FieldKind.ID_NUMBER,
                            required=True,
                            max_length=32,
                        ),
                        FieldSpec("wage", "上年度月平均工资", FieldKind.MONEY, required=True),
                    ),
                ),
            ),
        ),
    ),
)

INJURY_ACCIDENT = FormSpec(
    DeclarationType.INJURY_ACCIDENT,
    "职工发生事故伤害或被诊断、鉴定为职业病，用人单位应自事故伤害发生之日或被诊断、"
    "鉴定为职业病之日起30日内提出工伤认定申请（工伤保险条例第17条）；"
    "逾期申报的，请填写延期批准文号。",
    (
        Section(
            "受伤害职工",
            (
                _person_no(),
                _NAME,
                FieldSpec("gender", "性别", FieldKind.SELECT, required=True, choices=GENDERS),
                FieldSpec("birth_date", "出生日期", FieldKind.DATE, required=True),
                _ID_NUMBER,
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
                FieldSpec("contact_name", "联系人", required=True, max_length=50),
                FieldSpec("contact_phone", "联系电话", FieldKind.TEL, required=True, max_length=32),
            ),
        ),
    ),
)

INJURY_APPRAISAL = FormSpec(
    DeclarationType.INJURY_APPRAISAL,
    "工伤职工经治疗伤情相对稳定后存在残疾、影响劳动能力的，应当进行劳动能力鉴定"
    "（工伤保险条例第21条）。再次鉴定应在收到鉴定结论之日起15日内申请；"
    "复查鉴定须在鉴定结论作出1年后申请。",
    (
        Section("职工", (_person_no(required=True), _NAME, _ID_NUMBER)),
        Section(
            "工伤认定",
            (
                FieldSpec("decision_no", "工伤认定决定书编号", required=True, max_length=32),
                FieldSpec("decision_date", "工伤认定决定日期", FieldKind.DATE, required=True),
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
                    choices=APPRAISAL_KINDS,
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
                    choices=APPLICANT_KINDS,
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
                FieldSpec("contact_name", "联系人", required=True, max_length=50),
                FieldSpec("contact_phone", "联系电话", FieldKind.TEL, required=True, max_length=32),
            ),
        ),
    ),
)

FORM_SPECS: dict[DeclarationType, FormSpec] = {
    spec.type: spec
    for spec in (
        UNIT_CHANGE,
        PERSON_ADD,
        INSURANCE_ADD,
        INSURANCE_REDUCE,
        PERSON_REDUCE,
        ANNUAL_BASE,
        INJURY_ACCIDENT,
        INJURY_APPRAISAL,
    )
}

# Keys a workflow may add to a payload when it normalises it, and how to label them.
DERIVED_LABELS: dict[str, str] = {
    "base": "核定缴费基数",
    "assessed_base": "核定缴费基数",
    "clamped_base": "核定缴费基数",
    "deadline": "申报期限",
    "late": "逾期申报",
    "birth_date": "出生日期",
    "gender": "性别",
    "person_number": "个人编号",
    "person_no": "个人编号",
    "voucher_no": "凭证编号",
}
