"""人员增加 (person add, 增员 types A–D), DOMAIN.md §5.2 and the §6 rules it names.

Applying it creates the person (with a new 个人编号) unless the ID number is already
in the pool, and opens one enrolment per chosen insurance type in the unit.

A batch (an uploaded file, :mod:`declare_app._batch`) is one declaration whose payload
is ``{"lines": [form, ...]}``: each line is checked as a single form (findings under
``lines[i].``, messages starting "第i行："), a person may appear once, and applying it
applies every line in the caller's one transaction — any line's conflict refuses the
whole batch.  A batch holds adds only, so V-ORDER-01 (adds before reduces) holds by
construction: a reduce is always another declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from declare_app import _vocabulary as vocabulary
from declare_app._contributions import Insurance
from declare_app._person_id import PersonId, PersonIdKind, upgrade_legacy_id
from declare_app._retirement import YearMonth
from declare_app._rules._common import (
    GENDER_ALIASES,
    GENDER_CHOICES,
    ID_NUMBER_FIELD,
    INSURANCE_CHOICES,
    NAME_FIELD,
    PERSON_NUMBER,
    STAFF_KIND_CHOICES,
    STATUS_RULE,
    age_findings,
    clamp_wage,
    gender_of,
    month_window,
    open_conflicts,
    read_id_number,
    risk_class_findings,
    staff_kind_of,
    unit_findings,
)
from declare_app._rules._context import Checked, RuleContext
from declare_app._rules._forms import (
    FORM_INVALID,
    FormReader,
    ignore_computed,
    month_text,
    to_fen,
)
from declare_app._rules._master import (
    Person,
    PoolSnapshot,
    enrolments_of,
    insert_person,
    insert_persons,
    next_number,
    open_enrolment,
    open_enrolments,
    pending_payloads,
    person_by_id_number,
    update_person,
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

NATIONS: Final = vocabulary.NATIONS
# Only the first three 证件类型 carry an 18-character MOD 11-2 number (DOMAIN §1.1);
# the others cannot be enrolled online (R02 证件类型不符).
ID_TYPES: Final = vocabulary.ID_TYPES
_ID_KIND_OF_TYPE: Final = {
    "01": PersonIdKind.CITIZEN,
    "02": PersonIdKind.RESIDENCE_PERMIT,
    "03": PersonIdKind.FOREIGN_PERMANENT_RESIDENT,
}
ADD_TYPES: Final = vocabulary.ADD_TYPES
EMPLOYMENT_FORMS: Final = vocabulary.EMPLOYMENT_FORMS

SPEC: Final = FormSpec(
    DeclarationType.PERSON_ADD,
    "用人单位应自用工之日起30日内为职工申请办理社会保险登记（社会保险法第58条）。"
    "首次参保（A）仅限从未参保人员；已参保人员按续保（B）或转入（C、D）办理。",
    (
        Section(
            "基本信息",
            (
                NAME_FIELD,
                FieldSpec(
                    "gender",
                    "性别",
                    FieldKind.SELECT,
                    choices=GENDER_CHOICES,
                    hint="留空则按身份号码填写",
                ),
                FieldSpec("birth_month", "出生年月", FieldKind.MONTH, hint="留空则按身份号码填写"),
                FieldSpec(
                    "id_type",
                    "证件类型",
                    FieldKind.SELECT,
                    choices=choices_of(ID_TYPES),
                    default="01",
                    hint="默认居民身份证",
                ),
                ID_NUMBER_FIELD,
                FieldSpec(
                    "nation",
                    "民族",
                    FieldKind.SELECT,
                    choices=choices_of(NATIONS),
                    default="01",
                    hint="居民身份证必填",
                ),
                FieldSpec(
                    "hukou_type",
                    "户口性质",
                    FieldKind.SELECT,
                    choices=choices_of(vocabulary.HUKOU_TYPES),
                    hint="居民身份证必填",
                ),
                FieldSpec("hukou_address", "户籍地址", max_length=200),
                FieldSpec(
                    "staff_kind",
                    "人员身份",
                    FieldKind.SELECT,
                    required=True,
                    choices=STAFF_KIND_CHOICES,
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
                    choices=choices_of(EMPLOYMENT_FORMS),
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
                    choices=INSURANCE_CHOICES,
                    default=("110", "210", "310", "410", "510"),
                    hint="职工基本医疗保险与生育保险须同时参保",
                ),
                FieldSpec(
                    "add_type",
                    "增员类型",
                    FieldKind.SELECT,
                    required=True,
                    choices=choices_of(ADD_TYPES),
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
    computed=(
        computed("base", "核定缴费基数", hint="按缴费基数上下限核定"),
        computed("birth_date", "出生日期", hint="按身份号码"),
    ),
)
# An uploaded file: one person-add form per line (:mod:`declare_app._batch`).
BATCH_FIELDS: Final = (
    FieldSpec(
        "lines",
        "人员明细",
        FieldKind.LINES,
        required=True,
        columns=SPEC.fields,
        computed=SPEC.computed,
    ),
)


class PersonAddRules:
    """DOMAIN §5.2: fields, V-ID-*, V-BASE-01/02, V-DUP-01/02/03, V-AGE-01/02,
    V-DATE-01/02, V-INS-01, V-RATE-02, V-UNIT-01."""

    type: DeclarationType = DeclarationType.PERSON_ADD
    spec: FormSpec = SPEC

    def check(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        if "lines" in payload:
            return self._check_batch(ctx, payload)
        r, subject = self._read(ctx, payload, prefix="", pending=None)
        r.findings[:0] = unit_findings(ctx)
        return Checked(r.out, tuple(r.findings), subject)

    def _check_batch(self, ctx: RuleContext, payload: Mapping[str, Any]) -> Checked:
        r = FormReader(payload, BATCH_FIELDS)
        r.findings.extend(unit_findings(ctx))
        raw_lines = r.sub_forms("lines", max_items=ctx.settings.max_batch_lines) or []
        pending = self._pending_index(ctx) if raw_lines else {}
        pool = PoolSnapshot(ctx.conn, _id_numbers(raw_lines))
        seen: set[str] = set()
        lines = []
        for index, raw in enumerate(raw_lines):
            line, subject = self._read(
                ctx, raw, prefix=f"lines[{index}].", pending=pending, pool=pool
            )
            if subject is not None and subject in seen:
                line.error("id_number", "V-DUP-03", "同一人员在本次申报中重复出现")
            if subject is not None:
                seen.add(subject)
            row = f"第{index + 1}行："
            r.findings.extend(replace(f, message=row + f.message) for f in line.findings)
            lines.append(line.out)
        r.out["lines"] = lines
        return Checked(r.out, tuple(r.findings), None)

    def _pending_index(self, ctx: RuleContext) -> dict[str, set[str]]:
        """ID number → insurance codes in this unit's person-adds under review."""
        index: dict[str, set[str]] = {}
        for other in pending_payloads(
            ctx.conn, ctx.unit.code, self.type.value, exclude=ctx.declaration_id
        ):
            forms = other.get("lines") if "lines" in other else [other]
            for form in forms or ():
                if isinstance(form, dict) and isinstance(form.get("id_number"), str):
                    codes = index.setdefault(form["id_number"], set())
                    codes.update(c for c in form.get("insurances") or () if isinstance(c, str))
        return index

    def _read(
        self,
        ctx: RuleContext,
        payload: Mapping[str, Any],
        *,
        prefix: str,
        pending: dict[str, set[str]] | None,
        pool: PoolSnapshot | None = None,
    ) -> tuple[FormReader, str | None]:
        """One person's form (without the unit's findings); *pending* is the batch's
        V-DUP-03 index and *pool* its persons (``None``: query for this one person)."""
        r = FormReader(ignore_computed(payload, SPEC.computed), SPEC.fields, prefix=prefix)
        form = _Form(
            name=r.text("name"),
            gender=r.choice("gender", aliases=GENDER_ALIASES),
            birth=r.month("birth_month"),
            id_type=r.choice("id_type") or "01",
        )
        r.out["id_type"] = form.id_type
        form.pid = read_id_number(
            r,
            "id_number",
            today=ctx.filed_on,
            gender_field="gender",
            birth_month_field="birth_month",
        )
        self._identity(r, form)
        r.choice("nation", required=form.id_type == "01")
        r.choice("hukou_type", required=form.id_type == "01")
        r.text("hukou_address")
        form.staff_kind = r.choice("staff_kind", aliases={"干部": "A", "工人": "B"})
        r.out["employment_form"] = r.choice("employment_form") or "1"
        form.work_start = r.month("work_start_month")
        form.hire = r.date("hire_date")
        form.insurances = r.insurances("insurances")
        risk_class_findings(r, ctx, "insurances", form.insurances)
        form.add_type = r.choice("add_type")
        form.start = r.month("start_month")
        form.wage = r.money("monthly_wage", rule="V-BASE-02")
        form.number = r.text(
            "person_no",
            required=form.add_type in ("B", "D"),
            pattern=PERSON_NUMBER,
            pattern_message="个人编号格式不正确",
        )
        r.phone("phone")
        r.text("address")
        r.text("remark")
        transfer_doc = r.text("transfer_doc")
        form.flexible = r.text("flexible_agreement")
        if form.add_type == "C" and transfer_doc is None:
            r.warn(
                "transfer_doc",
                "V-FORM-01",
                "区外转入须向经办机构提交转移接续材料，请填写凭证编号",
            )
        self._dates(r, ctx, form)
        if form.wage is not None and form.start is not None:
            clamp_wage(
                r,
                ctx,
                wage=form.wage,
                wage_field="monthly_wage",
                base_field="base",
                month=form.start,
            )
        if form.pid is not None and form.staff_kind and form.insurances and form.start:
            self._against_the_pool(r, ctx, form, pool)
        subject = form.pid.number if form.pid is not None else None
        if subject is not None and form.insurances:
            self._pending(r, ctx, subject, form.insurances, pending)
        return r, subject

    def _identity(self, r: FormReader, form: _Form) -> None:
        if form.id_type not in _ID_KIND_OF_TYPE:
            r.error(
                "id_type",
                "V-ID-02",
                "该证件类型没有18位公民身份号码，不能网上参保，请到经办窗口办理",
            )
        elif form.pid is not None and form.pid.kind is not _ID_KIND_OF_TYPE[form.id_type]:
            r.error("id_type", FORM_INVALID, f"该号码是{form.pid.kind.value}号码，与证件类型不符")
        if form.pid is not None:
            r.out["birth_date"] = form.pid.birth_date.isoformat()

    def _dates(self, r: FormReader, ctx: RuleContext, form: _Form) -> None:
        """V-DATE-01/02 and V-AGE-02."""
        if form.start is not None:
            month_window(r, "start_month", form.start, ctx)
            if form.hire is not None and form.start < YearMonth.of(form.hire):
                r.error("start_month", "V-DATE-01", "参保年月不能早于本单位入职年月")
            elif form.hire is not None:
                late_start_findings(r, hire=YearMonth.of(form.hire), start=form.start)
        if form.hire is not None:
            deadline = form.hire + timedelta(days=ctx.settings.registration_days)
            if ctx.filed_on > deadline:
                r.warn(
                    "hire_date",
                    "V-DATE-02",
                    f"超过用工之日起{ctx.settings.registration_days}日内办理参保登记的期限"
                    f"（{deadline.isoformat()}），属逾期登记（社会保险法第五十八条）",
                )
            if YearMonth.of(form.hire) > YearMonth.of(ctx.filed_on).plus_months(1):
                r.error("hire_date", "V-DATE-01", "本单位入职日期不能晚于下月")
        pid = form.pid
        if pid is None:
            return
        if form.work_start is not None and form.work_start < YearMonth.of(pid.birth_date):
            r.error("work_start_month", FORM_INVALID, "参加工作年月早于出生年月")
        day = form.hire or (date(form.start.year, form.start.month, 1) if form.start else None)
        if day is not None and _age_on(pid.birth_date, day) < 16:
            r.error(
                "hire_date" if form.hire else "start_month",
                "V-AGE-02",
                "用工时未满16周岁（劳动法第十五条）",
            )

    def _against_the_pool(
        self, r: FormReader, ctx: RuleContext, form: _Form, pool: PoolSnapshot | None
    ) -> None:
        """V-DUP-01/02, V-AGE-01 and the 增员类型 against the person's records."""
        assert form.pid is not None and form.staff_kind and form.insurances and form.start
        if pool is not None:
            person = pool.person(form.pid.number)
            history = pool.enrolments(person.person_number) if person else []
        else:
            person = person_by_id_number(ctx.conn, form.pid.number)
            history = enrolments_of(ctx.conn, person.person_number) if person else []
        here = [e for e in history if e.unit_code == ctx.unit.code]
        elsewhere = [e for e in history if e.unit_code != ctx.unit.code]
        if person is not None and person.terminal_reason in ("32", "33"):
            r.error(
                "id_number",
                STATUS_RULE,
                "该人员的参保关系已终止（死亡或出国（境）定居），不能再参保",
            )
        if form.add_type == "A" and person is not None:
            r.error(
                "add_type",
                "V-DUP-02",
                "已参保人员不可按首次参保办理，请选择续保、区外转入或区内转入",
            )
        elif form.add_type == "B" and not here:
            r.error("add_type", "V-DUP-02", "本单位没有该人员以前的参保记录，不能按续保办理")
        elif form.add_type == "D" and not elsewhere:
            r.error(
                "add_type",
                "V-DUP-02",
                "未找到该人员在本统筹区其他单位的参保记录，不能按区内转入办理",
            )
        if (
            form.number is not None
            and form.add_type != "A"
            and (person is None or form.number != person.person_number)
        ):
            r.error("person_no", FORM_INVALID, "个人编号与公民身份号码不是同一人")
        if person is not None and form.name is not None and form.name != person.name:
            r.warn("name", FORM_INVALID, "姓名与已登记的参保信息不一致，审核时将核对")
        open_conflicts(
            r,
            "insurances",
            unit_code=ctx.unit.code,
            all_enrolments=history,
            insurances=form.insurances,
            start=form.start,
        )
        gender = gender_of(r.out.get("gender"))
        if gender is not None:
            age_findings(
                r,
                "insurances",
                gender=gender,
                staff_kind=staff_kind_of(form.staff_kind),
                birth=form.pid.birth_date,
                override=person.retirement_override_month if person else None,
                receiving_pension=person.receiving_pension if person else False,
                insurances=form.insurances,
                start=form.start,
                flexible_agreement=form.flexible,
            )

    def _pending(
        self,
        r: FormReader,
        ctx: RuleContext,
        subject: str,
        insurances: tuple[Insurance, ...],
        pending: dict[str, set[str]] | None,
    ) -> None:
        """V-DUP-03: the same person and insurance type already waiting for review
        (alone, or as a line of a batch)."""
        codes = {i.value for i in insurances}
        if pending is not None:
            waiting = [pending.get(subject, set())]
        else:
            waiting = [
                set(other.get("insurances") or ())
                for other in pending_payloads(
                    ctx.conn,
                    ctx.unit.code,
                    self.type.value,
                    subject=subject,
                    exclude=ctx.declaration_id,
                )
            ]
            for batch in pending_payloads(
                ctx.conn,
                ctx.unit.code,
                self.type.value,
                batches=True,
                exclude=ctx.declaration_id,
            ):
                for line in batch.get("lines") or ():
                    if isinstance(line, dict) and line.get("id_number") == subject:
                        waiting.append(set(line.get("insurances") or ()))
        for other_codes in waiting:
            if other_codes & codes:
                r.error(
                    "id_number",
                    "V-DUP-03",
                    "该人员已有相同险种的人员增加申报在审核中，请勿重复申报",
                )
                return

    def apply(self, ctx: RuleContext, checked: Checked) -> dict[str, Any]:
        if "lines" in checked.payload:
            return self._apply_batch(ctx, checked.payload["lines"])
        return self._apply_one(ctx, checked.payload)

    def _apply_batch(self, ctx: RuleContext, lines: list[Mapping[str, Any]]) -> dict[str, Any]:
        """Every line, as :meth:`_apply_one` would, in a few statements: the persons read
        at once, new ones numbered from one reserved block and inserted together, then
        every enrolment inserted together (a line's person appears once: V-DUP-03)."""
        assert ctx.declaration_id is not None
        pool = PoolSnapshot(ctx.conn, [p["id_number"] for p in lines])
        known = [pool.person(p["id_number"]) for p in lines]
        new = [p for p, person in zip(lines, known, strict=True) if person is None]
        region = ctx.unit.region
        first = next_number(ctx.conn, "person:" + region, len(new)) if new else 0
        new_numbers = iter(f"{region}{first + i:08d}" for i in range(len(new)))
        person_rows: list[dict[str, Any]] = []
        enrolment_rows: list[dict[str, Any]] = []
        numbers: list[str] = []
        for p, person in zip(lines, known, strict=True):
            details = self._details(ctx, p)
            if person is None:
                number = next(new_numbers)
                person_rows.append(self._new_person(ctx, p, number, details))
            else:
                number = self._update_known(ctx, p, person, details)
            numbers.append(number)
            enrolment_rows.extend(self._enrolment_rows(ctx, p, number))
        insert_persons(ctx.conn, person_rows)
        open_enrolments(ctx.conn, enrolment_rows)
        return {"lines": len(lines), "new_persons": len(new), "person_nos": numbers}

    def _apply_one(self, ctx: RuleContext, p: Mapping[str, Any]) -> dict[str, Any]:
        assert ctx.declaration_id is not None
        person = person_by_id_number(ctx.conn, p["id_number"])
        details = self._details(ctx, p)
        if person is None:
            region = ctx.unit.region
            number = f"{region}{next_number(ctx.conn, 'person:' + region):08d}"
            insert_person(ctx.conn, self._new_person(ctx, p, number, details))
        else:
            number = self._update_known(ctx, p, person, details)
        for row in self._enrolment_rows(ctx, p, number):
            open_enrolment(ctx.conn, row)
        return {
            "person_no": number,
            "new_person": person is None,
            "insurances": list(p["insurances"]),
        }

    @staticmethod
    def _details(ctx: RuleContext, p: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "nation": p.get("nation"),
            "hukou_type": p.get("hukou_type"),
            "hukou_address": p.get("hukou_address"),
            "staff_kind": p["staff_kind"],
            "employment_form": p.get("employment_form"),
            "work_start_month": p.get("work_start_month"),
            "phone": p.get("phone"),
            "address": p.get("address"),
            "remark": p.get("remark"),
            "updated_at": ctx.now,
        }

    @staticmethod
    def _new_person(
        ctx: RuleContext, p: Mapping[str, Any], number: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "person_number": number,
            "id_number": p["id_number"],
            "id_type": p["id_type"],
            "name": p["name"],
            "gender": p["gender"],
            "birth_date": date.fromisoformat(p["birth_date"]),
            "first_insured_month": p["start_month"],
            "created_at": ctx.now,
            "created_by_declaration": ctx.declaration_id,
            **details,
        }

    @staticmethod
    def _update_known(
        ctx: RuleContext, p: Mapping[str, Any], person: Person, details: dict[str, Any]
    ) -> str:
        if person.first_insured_month is None:
            details = {**details, "first_insured_month": p["start_month"]}
        update_person(ctx.conn, person.person_number, details)
        return person.person_number

    @staticmethod
    def _enrolment_rows(
        ctx: RuleContext, p: Mapping[str, Any], number: str
    ) -> list[dict[str, Any]]:
        return [
            {
                "person_number": number,
                "unit_code": ctx.unit.code,
                "insurance": code,
                "start_month": p["start_month"],
                "base_fen": to_fen(Decimal(p["base"])),
                "add_type": p["add_type"],
                "hire_date": date.fromisoformat(p["hire_date"]),
                "opened_by": ctx.declaration_id,
                "updated_at": ctx.now,
            }
            for code in p["insurances"]
        ]


@dataclass
class _Form:
    """The values read so far, for the cross-field checks."""

    name: str | None
    gender: str | None
    birth: YearMonth | None
    id_type: str
    pid: PersonId | None = None
    staff_kind: str | None = None
    work_start: YearMonth | None = None
    hire: date | None = None
    insurances: tuple[Insurance, ...] | None = None
    add_type: str | None = None
    start: YearMonth | None = None
    wage: Decimal | None = None
    number: str | None = None
    flexible: str | None = None


LATE_START_RULE: Final = "V-DATE-04"


def late_start_findings(r: FormReader, *, hire: YearMonth, start: YearMonth) -> None:
    """V-DATE-04: a 参保开始月 after the hire month leaves the months between undeclared.

    The employer must register within 30 days of hiring and owes contributions from
    then on (社会保险法 Arts. 58, 60), so the warning names the months it skips; the
    agency decides on 补缴.
    """
    if start <= hire:
        return
    last = start.plus_months(-1)
    months = start.months_since(hire)
    span = month_text(hire) if months == 1 else f"{month_text(hire)}至{month_text(last)}"
    r.warn(
        "start_month",
        LATE_START_RULE,
        f"参保年月晚于本单位入职年月，{span}共{months}个月未申报参保缴费；"
        "用人单位应自用工之日起为职工参保并按月缴费（社会保险法第五十八条、第六十条）",
    )


def _id_numbers(raw_lines: list[Any]) -> list[str]:
    """The ID numbers the lines probably carry, as :func:`read_id_number` will read them
    (a guess: a number read differently is looked up on its own)."""
    out = []
    for raw in raw_lines:
        value = raw.get("id_number") if isinstance(raw, Mapping) else None
        if isinstance(value, str):
            number = value.strip().replace(" ", "").upper()
            if len(number) == 15 and number.isascii() and number.isdigit():
                number = upgrade_legacy_id(number)
            out.append(number)
    return out


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
