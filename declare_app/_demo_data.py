"""Demo data for one registered unit: a few hundred persons and a declaration of each type.

:func:`load_demo` fills master data directly (persons with valid ID numbers and
plausible names, enrolments across AAC031 statuses, six months of the contribution
ledger, the unit's §5.1 details) and then files declarations through the real
workflow, so they carry history, findings, vouchers and audit events like any other.
Everything follows from *seed* and *now*: the same arguments give the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, func, insert, select, update

from declare_app._agency_records import record_injury_decision
from declare_app._china_time import CHINA_TIME
from declare_app._contributions import (
    Insurance,
    MissingRateError,
    RateTable,
    demo_rate_table,
    monthly_contribution,
)
from declare_app._declarations import Declarations
from declare_app._person_id import Gender, person_id_check_char
from declare_app._retirement import (
    YearMonth,
    original_retirement_age,
    retirement_category,
    retirement_month,
)
from declare_app._rules._common import gender_code, staff_kind_of
from declare_app._rules._forms import month_text, to_fen
from declare_app._rules._master import next_number, person_by_id_number
from declare_app._schema import (
    contribution_plans,
    contributions,
    declarations,
    enrolments,
    persons,
    unit_profiles,
)
from declare_app._units import get_unit
from declare_app.interfaces import Actor, Declaration, DeclarationType, Status

DEMO_PERSONS: Final = 300
LEDGER_MONTHS: Final = 6

# fmt: off
_SURNAMES: Final = (
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡",
    "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
    "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋", "蔡", "余", "杜", "叶", "程", "魏", "苏",
    "吕", "丁", "任", "沈", "姚", "卢", "钟", "姜", "崔", "谭", "陆", "范", "汪", "金", "石",
    "廖", "贾", "夏", "韦", "方", "邹", "熊", "孟", "秦", "邱", "侯", "江", "尹", "薛", "段",
    "雷", "史", "陶", "贺", "顾", "毛", "龚", "邵", "钱", "戴", "严", "俞", "章", "竺", "欧阳",
)
_MALE_CHARS: Final = (
    "伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华",
    "飞", "鑫", "波", "宇", "浩", "凯", "健", "俊", "帆", "旭", "宁", "龙", "林", "建", "国",
    "峰", "海", "志", "文", "荣", "晨", "阳", "东", "亮", "成",
)
_FEMALE_CHARS: Final = (
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "英", "慧", "美", "雪", "梅",
    "琳", "洁", "萍", "红", "燕", "婷", "颖", "倩", "丹", "瑶", "怡", "欣", "佳", "悦", "莉",
)
# Where staff of a Shangyu factory come from: the district (old and new codes, both of
# which occur in real numbers, DOMAIN §1.1), the rest of Shaoxing, and the provinces
# many migrant workers come from.
_BIRTH_REGIONS: Final = (
    ("330682", 30), ("330604", 12), ("330602", 6), ("330621", 5), ("330681", 4),
    ("330683", 4), ("330624", 3), ("330106", 3), ("342422", 6), ("412725", 6),
    ("511304", 5), ("522121", 4), ("362330", 4), ("432524", 4), ("500235", 4),
)
# fmt: on
_REDUCE_REASONS: Final = ("11", "12", "12", "13", "14", "21")


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`load_demo` made (``loaded`` is False when the unit had data already)."""

    loaded: bool
    persons: int = 0
    enrolments_by_status: dict[str, int] = field(default_factory=dict)
    ledger_lines: int = 0
    declarations: tuple[tuple[str, str, str], ...] = ()  # (type, status, id)


@dataclass
class _Person:
    number: str
    id_number: str
    name: str
    gender: Gender
    birth: date
    staff_kind: str
    base_fen: int
    start: YearMonth
    insurances: tuple[str, ...]
    status: str  # AAC031 of its enrolments
    end: YearMonth | None = None
    reason: str | None = None


@dataclass(frozen=True)
class UnitCounts:
    """How many persons a unit has (ever enrolled, insured now) and its declarations."""

    persons: int
    insured: int
    declarations: int


def unit_counts(conn: Connection, unit_code: str) -> UnitCounts:
    """The unit's numbers as the database has them now (the demo banner shows them:
    applying a 人员增加 adds a person, the employer files more declarations)."""
    enrolled = select(func.count(func.distinct(enrolments.c.person_number)))
    unit = enrolments.c.unit_code == unit_code
    return UnitCounts(
        persons=conn.execute(enrolled.where(unit)).scalar_one(),
        insured=conn.execute(enrolled.where(unit, enrolments.c.status == "1")).scalar_one(),
        declarations=conn.execute(
            select(func.count())
            .select_from(declarations)
            .where(declarations.c.unit_code == unit_code)
        ).scalar_one(),
    )


def load_demo(
    conn: Connection,
    unit_code: str,
    *,
    now: float,
    seed: int,
    rates: RateTable | None = None,
    account: str | None = None,
    auditor: str = "demo.auditor",
    persons_count: int = DEMO_PERSONS,
) -> DemoSummary:
    """Load the demo for *unit_code* (registered and approved) in the caller's transaction.

    Does nothing and returns ``loaded=False`` when the unit already has enrolments, so
    ``ssgate demo`` can call it on every start.  *account* is the unit's channel
    account (default ``<region><unit>@sxlss``), *auditor* the staff name that reviews.
    """
    unit = get_unit(conn, unit_code)
    if unit is None or not unit.approved:
        raise ValueError(f"unit {unit_code} must be registered and approved before the demo")
    if conn.execute(select(enrolments.c.id).where(enrolments.c.unit_code == unit_code)).first():
        return DemoSummary(loaded=False)
    rates = rates or demo_rate_table()
    rng = random.Random(f"{seed}:{unit_code}")  # noqa: S311 - demo data, reproducible on purpose
    today = datetime.fromtimestamp(now, CHINA_TIME).date()
    builder = _Builder(
        conn, rng, unit_code=unit_code, region=unit.region, today=today, now=now, rates=rates
    )
    builder.profile()
    people = builder.persons(persons_count)
    ledger = builder.ledger(people)
    employer = Actor(
        "employer",
        account or f"{unit.region}{unit_code}@sxlss",
        unit_code=unit_code,
        session_id="demo-" + format(rng.getrandbits(64), "016x"),
    )
    staff = Actor("staff", auditor, role="auditor")
    workflow = Declarations(rates, new_id=lambda: format(rng.getrandbits(128), "032x"))
    filed = _Filing(
        conn, workflow, employer=employer, auditor=staff, now=now, rng=rng, today=today
    ).all(people)
    by_status: dict[str, int] = {}
    for p in people:
        by_status[p.status] = by_status.get(p.status, 0) + len(p.insurances)
    return DemoSummary(
        loaded=True,
        persons=len(people),
        enrolments_by_status=by_status,
        ledger_lines=ledger,
        declarations=tuple((d.type.value, d.status.value, d.id) for d in filed),
    )


class _Builder:
    """Master data straight into the tables (what years of applied declarations left)."""

    def __init__(
        self,
        conn: Connection,
        rng: random.Random,
        *,
        unit_code: str,
        region: str,
        today: date,
        now: float,
        rates: RateTable,
    ) -> None:
        self.conn = conn
        self.rng = rng
        self.unit_code = unit_code
        self.region = region
        self.today = today
        self.now = now
        self.rates = rates
        self.month = YearMonth.of(today)
        self.used_ids: set[str] = set()

    def profile(self) -> None:
        """The §5.1 details (replacing a risk class given at registration)."""
        values = dict(
            unit_type="企业",
            registered_address="浙江省绍兴市上虞区曹娥街道江扬路18号",
            business_address="浙江省绍兴市上虞区杭州湾上虞经济技术开发区纬三路9号",
            postcode="312300",
            industry_code="C3422",
            economic_type="有限责任公司",
            affiliation="区县属",
            admin_region="330604",
            legal_rep_name="陈国良",
            legal_rep_id=self._id_number(Gender.MALE, date(1971, 5, 20), "330682"),
            agent_name="王丽娟",
            agent_phone="0575-82176688",
            bank_name="中国工商银行绍兴上虞支行",
            bank_account_name="绍兴市上虞示范制造有限公司",
            bank_account_no="1211020109200123456",
            injury_risk_class=3,
            competent_dept="上虞区经济和信息化局",
            updated_at=self.now,
        )
        exists = self.conn.execute(
            select(unit_profiles.c.unit_code).where(unit_profiles.c.unit_code == self.unit_code)
        ).first()
        if exists is None:
            self.conn.execute(insert(unit_profiles).values(unit_code=self.unit_code, **values))
        else:
            self.conn.execute(
                update(unit_profiles)
                .where(unit_profiles.c.unit_code == self.unit_code)
                .values(**values)
            )

    # -- persons --------------------------------------------------------------------

    def persons(self, count: int) -> list[_Person]:
        made = []
        near = max(4, count // 40)  # reaching retirement age within six months
        overage = max(3, count // 60)  # past it, work injury only
        retired = max(4, count // 30)
        suspended = count // 8
        no_medical = max(2, count // 100)  # for the insurance-add example
        for i in range(count):
            if i < near:
                made.append(self._near_retirement())
            elif i < near + overage:
                made.append(self._over_age())
            elif i < near + overage + retired:
                made.append(self._retired(dead=i == near + overage))
            elif i < near + overage + retired + suspended:
                made.append(self._suspended())
            elif i < near + overage + retired + suspended + no_medical:
                made.append(self._active(insurances=("110", "210", "410")))
            else:
                made.append(self._active())
        for p in made:
            self._store(p)
        return made

    def _active(self, insurances: tuple[str, ...] = ("110", "210", "310", "410", "510")) -> _Person:
        gender = Gender.MALE if self.rng.random() < 0.55 else Gender.FEMALE
        birth = self._birth(date(1972, 1, 1), date(2004, 12, 31))
        return self._person(gender, birth, insurances=insurances, status="1")

    def _suspended(self) -> _Person:
        p = self._active()
        p.status = "2"
        last = p.start.plus_months(self.rng.randint(3, 60))
        p.end = min(last, self.month.plus_months(-1))
        p.reason = self.rng.choice(_REDUCE_REASONS)
        return p

    def _retired(self, *, dead: bool) -> _Person:
        gender = Gender.MALE if self.rng.random() < 0.5 else Gender.FEMALE
        birth = self._birth(date(1958, 1, 1), date(1964, 6, 30))
        p = self._person(gender, birth, insurances=("110", "210", "310", "410", "510"), status="3")
        category = retirement_category(gender, staff_kind_of(p.staff_kind))
        p.end = min(retirement_month(birth, category), self.month).plus_months(-1)
        if p.end < p.start:
            p.start = p.end.plus_months(-120)
        p.reason = "32" if dead else "31"
        return p

    def _over_age(self) -> _Person:
        birth = self._birth(date(1957, 1, 1), date(1962, 12, 31))
        return self._person(Gender.MALE, birth, insurances=("410",), status="1", kind="B")

    def _near_retirement(self) -> _Person:
        """A contributing person whose statutory month is in the next six months."""
        gender = self.rng.choice((Gender.MALE, Gender.FEMALE))
        kind = self.rng.choice(("A", "B"))
        category = retirement_category(gender, staff_kind_of(kind))
        target = self.month.plus_months(self.rng.randint(1, 6))
        # Walk birth months back from the original-age guess until the statutory
        # month (original age plus the 2025 delay) lands on the target.
        birth_month = target.plus_months(-12 * original_retirement_age(category))
        for _ in range(80):
            if retirement_month(date(birth_month.year, birth_month.month, 1), category) <= target:
                break
            birth_month = birth_month.plus_months(-1)
        day = self.rng.randint(1, 28)
        return self._person(
            gender,
            date(birth_month.year, birth_month.month, day),
            insurances=("110", "210", "310", "410", "510"),
            status="1",
            kind=kind,
        )

    def _person(
        self,
        gender: Gender,
        birth: date,
        *,
        insurances: tuple[str, ...],
        status: str,
        kind: str | None = None,
    ) -> _Person:
        region = self._weighted_region()
        id_number = self._id_number(gender, birth, region)
        earliest = YearMonth(max(birth.year + 18, 2008), 1)
        latest = self.month.plus_months(-2)
        span = max(latest.months_since(earliest), 0)
        start = earliest.plus_months(self.rng.randint(0, span)) if span else latest
        wage = Decimal(int(self.rng.triangular(3200, 22000, 6800) / 10) * 10)
        base = self._clamped(wage, start)
        number = f"{self.region}{next_number(self.conn, 'person:' + self.region):08d}"
        return _Person(
            number=number,
            id_number=id_number,
            name=self._name(gender),
            gender=gender,
            birth=birth,
            staff_kind=kind or ("A" if self.rng.random() < 0.15 else "B"),
            base_fen=to_fen(base),
            start=start,
            insurances=insurances,
            status=status,
        )

    def _clamped(self, wage: Decimal, month: YearMonth) -> Decimal:
        try:
            limits = self.rates.base_limits(self.region, date(month.year, month.month, 1))
        except MissingRateError:
            return wage
        return min(max(wage, limits.floor), limits.ceiling)

    def _store(self, p: _Person) -> None:
        self.conn.execute(
            insert(persons).values(
                person_number=p.number,
                id_number=p.id_number,
                id_type="01",
                name=p.name,
                gender=gender_code(p.gender),
                birth_date=p.birth,
                nation="01" if self.rng.random() < 0.95 else self.rng.choice(("03", "04", "09")),
                hukou_type="A" if p.id_number.startswith("3306") else "B",
                staff_kind=p.staff_kind,
                employment_form="1",
                work_start_month=month_text(p.start),
                phone=f"1{self.rng.choice('3589')}{self.rng.randint(0, 999_999_999):09d}",
                first_insured_month=month_text(p.start),
                receiving_pension=p.reason == "31",
                terminal_reason=p.reason if p.status == "3" else None,
                created_at=self.now,
                updated_at=self.now,
            )
        )
        for code in p.insurances:
            self.conn.execute(
                insert(enrolments).values(
                    person_number=p.number,
                    unit_code=self.unit_code,
                    insurance=code,
                    status=p.status,
                    start_month=month_text(p.start),
                    end_month=None if p.end is None else month_text(p.end),
                    base_fen=p.base_fen,
                    add_type="A",
                    hire_date=date(p.start.year, p.start.month, self.rng.randint(1, 28)),
                    stop_reason=p.reason,
                    updated_at=self.now,
                )
            )
            # The plan the monthly close continues the demo's history from (issue 14).
            self.conn.execute(
                insert(contribution_plans).values(
                    person_number=p.number,
                    unit_code=self.unit_code,
                    insurance=code,
                    from_month=month_text(p.start),
                    until_month=None if p.end is None else month_text(p.end),
                    base_fen=p.base_fen,
                    updated_at=self.now,
                )
            )

    def ledger(self, people: list[_Person]) -> int:
        """The last six months (this one due, the others paid) for open enrolments."""
        rows: list[dict[str, Any]] = []
        for p in people:
            if p.status != "1":
                continue
            for back in range(LEDGER_MONTHS - 1, -1, -1):
                month = self.month.plus_months(-back)
                if month < p.start:
                    continue
                for code in p.insurances:
                    line = self._line(p, Insurance(code), month)
                    if line is not None:
                        rows.append(line)
        if rows:
            self.conn.execute(insert(contributions), rows)
        return len(rows)

    def _line(self, p: _Person, insurance: Insurance, month: YearMonth) -> dict[str, Any] | None:
        first = date(month.year, month.month, 1)
        try:
            rates = self.rates.rates_for(
                self.region,
                insurance,
                first,
                risk_class=3 if insurance is Insurance.WORK_INJURY else None,
            )
        except MissingRateError:
            return None
        base = Decimal(p.base_fen) / 100
        amounts = monthly_contribution(base, rates)
        paid = month < self.month
        next_month = month.plus_months(1)
        return {
            "person_number": p.number,
            "unit_code": self.unit_code,
            "insurance": insurance.value,
            "month": month_text(month),
            "base_fen": p.base_fen,
            "employer_fen": to_fen(amounts.employer),
            "employee_fen": to_fen(amounts.employee),
            "to_account_fen": to_fen((base * rates.to_account).quantize(Decimal("0.01"))),
            "status": "paid" if paid else "due",
            "paid_on": date(next_month.year, next_month.month, 15) if paid else None,
        }

    # -- identities -----------------------------------------------------------------

    def _birth(self, earliest: date, latest: date) -> date:
        return earliest + timedelta(days=self.rng.randint(0, (latest - earliest).days))

    def _weighted_region(self) -> str:
        codes = [c for c, _ in _BIRTH_REGIONS]
        weights = [w for _, w in _BIRTH_REGIONS]
        return self.rng.choices(codes, weights)[0]

    def _id_number(self, gender: Gender, birth: date, region: str) -> str:
        """A valid citizen number: odd sequence for men, even for women (GB 11643)."""
        while True:
            sequence = self.rng.randint(0, 499) * 2 + (1 if gender is Gender.MALE else 0)
            body = f"{region}{birth:%Y%m%d}{sequence:03d}"
            number = body + person_id_check_char(body)
            if number not in self.used_ids and person_by_id_number(self.conn, number) is None:
                self.used_ids.add(number)
                return number

    def _name(self, gender: Gender) -> str:
        chars = _MALE_CHARS if gender is Gender.MALE else _FEMALE_CHARS
        given = self.rng.choice(chars)
        if self.rng.random() < 0.7:
            given += self.rng.choice(chars)
        return self.rng.choice(_SURNAMES) + given


class _Filing:
    """One declaration of each type, in various states, through the workflow."""

    def __init__(
        self,
        conn: Connection,
        workflow: Declarations,
        *,
        employer: Actor,
        auditor: Actor,
        now: float,
        rng: random.Random,
        today: date,
    ) -> None:
        self.conn = conn
        self.wf = workflow
        self.employer = employer
        self.auditor = auditor
        self.now = now
        self.rng = rng
        self.today = today
        self.month = YearMonth.of(today)
        self.filed: list[Declaration] = []
        # Filed over the last hours of today, never before local midnight, never after now.
        midnight = datetime(today.year, today.month, today.day, tzinfo=CHINA_TIME).timestamp()
        self.start = max(now - 6 * 3600, midnight)
        self.spacing = min(60.0, (now - self.start) / 400)

    def all(self, people: list[_Person]) -> list[Declaration]:
        active = [p for p in people if p.status == "1" and len(p.insurances) == 5]
        no_medical = [
            p
            for p in people
            if p.status == "1" and "110" in p.insurances and "310" not in p.insurances
        ]
        builder_ids: set[str] = {p.id_number for p in people}
        self._person_adds(builder_ids)
        self._reduce(active[0], active[1])
        if no_medical:
            self._insurance_add(no_medical[0])
        self._insurance_reduce(active[2], active[3])
        self._annual_base(active[4:7])
        self._unit_change()
        self._injury(active[7])
        return self.filed

    # -- steps ----------------------------------------------------------------------

    def _at(self, step: int) -> float:
        return self.start + self.spacing * step

    def _draft(self, type: DeclarationType, payload: dict[str, Any], minutes: int) -> Declaration:
        return self.wf.create_draft(self.conn, self.employer, type, payload, now=self._at(minutes))

    def _submit(self, d: Declaration, minutes: int) -> Declaration:
        if d.type is DeclarationType.PERSON_REDUCE and d.status is Status.DRAFT:
            # V-RED-01: a reduce is submitted with its evidence uploaded (a stand-in scan).
            self.wf.attach(
                self.conn,
                self.employer,
                d.id,
                label="解除劳动合同证明",
                filename="解除劳动合同证明.png",
                data=one_pixel_png(0x80),  # a grey stand-in for a scanned certificate
                now=self._at(minutes),
            )
        return self.wf.submit(self.conn, self.employer, d.id, now=self._at(minutes))

    def _claim(self, d: Declaration, minutes: int) -> Declaration:
        return self.wf.claim(self.conn, self.auditor, d.id, now=self._at(minutes))

    def _approve(self, d: Declaration, minutes: int) -> Declaration:
        return self.wf.approve(self.conn, self.auditor, d.id, now=self._at(minutes))

    def _keep(self, d: Declaration) -> Declaration:
        self.filed.append(d)
        return d

    def _applied(self, type: DeclarationType, payload: dict[str, Any], minutes: int) -> Declaration:
        d = self._submit(self._draft(type, payload, minutes), minutes + 1)
        self._claim(d, minutes + 30)
        return self._keep(self._approve(d, minutes + 35))

    # -- the declarations -----------------------------------------------------------

    def _new_id(self, used: set[str], gender: Gender, birth: date) -> str:
        while True:
            sequence = self.rng.randint(0, 499) * 2 + (1 if gender is Gender.MALE else 0)
            body = f"330604{birth:%Y%m%d}{sequence:03d}"
            number = body + person_id_check_char(body)
            if number not in used and person_by_id_number(self.conn, number) is None:
                used.add(number)
                return number

    def _person_add_form(self, name: str, id_number: str, **more: Any) -> dict[str, Any]:
        hire = self.today - timedelta(days=5)
        form: dict[str, Any] = {
            "name": name,
            "id_type": "01",
            "id_number": id_number,
            "nation": "01",
            "hukou_type": "B",
            "hukou_address": "浙江省绍兴市上虞区百官街道",
            "staff_kind": "B",
            "employment_form": "1",
            "hire_date": hire.isoformat(),
            "insurances": ["110", "210", "310", "410", "510"],
            "add_type": "A",
            "start_month": month_text(max(self.month, YearMonth.of(hire))),
            "monthly_wage": "6500",
            "phone": "13757512345",
            "address": "浙江省绍兴市上虞区百官街道市民大道1号",
        }
        form.update(more)
        return form

    def _person_adds(self, used: set[str]) -> None:
        first = self._new_id(used, Gender.MALE, date(1998, 4, 16))
        self._applied(DeclarationType.PERSON_ADD, self._person_add_form("沈浩然", first), 0)
        second = self._new_id(used, Gender.FEMALE, date(2001, 9, 3))
        d = self._draft(
            DeclarationType.PERSON_ADD,
            self._person_add_form("俞佳怡", second, monthly_wage="3800"),
            40,
        )
        self._keep(self._submit(d, 41))
        # Returned for a wrong name, then resubmitted as version 2 and waiting again.
        third = self._new_id(used, Gender.MALE, date(1995, 12, 1))
        d = self._submit(
            self._draft(DeclarationType.PERSON_ADD, self._person_add_form("章志刚", third), 50),
            51,
        )
        self._claim(d, 60)
        self.wf.return_(
            self.conn,
            self.auditor,
            d.id,
            code="R01",
            text="姓名与身份证不符，身份证上为“章志钢”",
            now=self._at(65),
        )
        v2 = self.wf.resubmit(
            self.conn,
            self.employer,
            d.id,
            self._person_add_form("章志钢", third),
            now=self._at(80),
        )
        self._keep(self._submit(v2, 81))
        # A draft never submitted, and one withdrawn.
        fourth = self._new_id(used, Gender.FEMALE, date(1990, 7, 21))
        self._keep(
            self._draft(
                DeclarationType.PERSON_ADD,
                self._person_add_form("钱雪梅", fourth, staff_kind="A"),
                90,
            )
        )
        fifth = self._new_id(used, Gender.MALE, date(1988, 2, 2))
        d = self._submit(
            self._draft(DeclarationType.PERSON_ADD, self._person_add_form("孙建国", fifth), 95),
            96,
        )
        self._keep(self.wf.withdraw(self.conn, self.employer, d.id, now=self._at(100)))

    def _unit_person(self, p: _Person) -> dict[str, Any]:
        return {"person_no": p.number, "name": p.name, "id_number": p.id_number}

    def _reduce(self, resigned: _Person, returned: _Person) -> None:
        stop = month_text(self.month)
        self._applied(
            DeclarationType.PERSON_REDUCE,
            {
                **self._unit_person(resigned),
                "reason": "12",
                "stop_month": stop,
                "leave_date": (self.today - timedelta(days=3)).isoformat(),
                "evidence": "解除劳动合同证明（上虞示范〔2025〕离字第12号）",
            },
            110,
        )
        d = self._submit(
            self._draft(
                DeclarationType.PERSON_REDUCE,
                {
                    **self._unit_person(returned),
                    "reason": "11",
                    "stop_month": stop,
                    "evidence": "解除劳动合同证明",
                },
                150,
            ),
            151,
        )
        self._claim(d, 160)
        self._keep(
            self.wf.return_(
                self.conn,
                self.auditor,
                d.id,
                code="R07",
                text="解除劳动合同证明扫描件不清晰，请重新提交",
                now=self._at(170),
            )
        )

    def _insurance_add(self, p: _Person) -> None:
        d = self._submit(
            self._draft(
                DeclarationType.INSURANCE_ADD,
                {
                    **self._unit_person(p),
                    "insurances": ["310", "510"],
                    "reason": "3",
                    "start_month": month_text(self.month),
                    "base": str(Decimal(p.base_fen) / 100),
                },
                180,
            ),
            181,
        )
        self._keep(self._claim(d, 200))

    def _insurance_reduce(self, draft_for: _Person, withdrawn_for: _Person) -> None:
        form = {
            "insurances": ["210"],
            "reason": "4",
            "stop_month": month_text(self.month.plus_months(1)),
        }
        self._keep(
            self._draft(
                DeclarationType.INSURANCE_REDUCE, {**self._unit_person(draft_for), **form}, 210
            )
        )
        d = self._submit(
            self._draft(
                DeclarationType.INSURANCE_REDUCE, {**self._unit_person(withdrawn_for), **form}, 215
            ),
            216,
        )
        self._keep(self.wf.withdraw(self.conn, self.employer, d.id, now=self._at(220)))

    def _annual_base(self, people: list[_Person]) -> None:
        lines = [
            {**self._unit_person(p), "wage": str(self.rng.choice((3600, 7800, 9600, 15200)))}
            for p in people
        ]
        d = self._draft(
            DeclarationType.ANNUAL_BASE, {"year": str(self.today.year), "lines": lines}, 230
        )
        self._keep(self._submit(d, 231))

    def _unit_change(self) -> None:
        self._applied(
            DeclarationType.UNIT_CHANGE,
            {
                "field": "agent_phone",
                "new_value": "0575-82176699",
                "effective_date": (self.today - timedelta(days=2)).isoformat(),
                "reason": "经办人办公电话变更",
            },
            240,
        )

    def _injury(self, p: _Person) -> None:
        accident = self.today - timedelta(days=3)
        done = self._applied(
            DeclarationType.INJURY_ACCIDENT,
            {
                **self._unit_person(p),
                "gender": gender_code(p.gender),
                "birth_date": p.birth.isoformat(),
                "job": "数控车床操作工",
                "accident_time": f"{accident.isoformat()}T10:20",
                "accident_place": "本单位机加工车间3号数控车床旁",
                "accident_cause": "更换刀具时被铁屑划伤右前臂",
                "diagnosis_date": accident.isoformat(),
                "injury_part": "右前臂",
                "injury_degree": "皮肤裂伤，缝合8针",
                "description": (
                    f"{accident.year}年{accident.month}月{accident.day}日10时20分左右，"
                    f"{p.name}在机加工车间更换刀具时被飞溅铁屑划伤右前臂，"
                    "当即送上虞区人民医院急诊清创缝合。"
                ),
                "request": "申请认定为工伤",
                "materials": "劳动合同复印件\n上虞区人民医院诊断证明书\n事故经过说明",
                "contact_name": "王丽娟",
                "contact_phone": "0575-82176688",
            },
            250,
        )
        # Approval only accepts the application; the decision is recorded as its own step.
        decision = record_injury_decision(
            self.conn,
            self.auditor,
            done.id,
            decision_no=f"上人社工伤认字〔{self.today.year}〕{(done.voucher_no or '0000')[-4:]}号",
            decided_on=date.fromisoformat(done.result["accepted_on"]),
            outcome="recognised",
            now=self._at(260),
        )
        stable = self.today - timedelta(days=1)
        d = self._draft(
            DeclarationType.INJURY_APPRAISAL,
            {
                **self._unit_person(p),
                "decision_no": decision["decision_no"],
                "decision_date": decision["decided_on"],
                "injury_part": "右前臂",
                "hospital": "上虞区人民医院",
                "stable_date": stable.isoformat(),
                "appraisal_kind": "1",
                "applicant_kind": "1",
                "materials": "工伤认定决定书\n门诊病历\n清创缝合记录",
                "contact_name": "王丽娟",
                "contact_phone": "0575-82176688",
            },
            300,
        )
        self._keep(self._submit(d, 301))


def one_pixel_png(level: int = 0x00) -> bytes:
    """A valid 1×1 greyscale PNG whose one pixel is *level* (0 black, 255 white): the
    smallest file the evidence check accepts.  The demo's stand-in for a scanned
    certificate, and the tests' evidence file."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes((0, level))))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")
