"""The employer's read-only queries (DOMAIN.md §5.8), on the shared database.

:class:`EmployerQueries` answers the eight queries of the manual for one unit, each
audited as ``declare.query.<name>``:

* 单位基本信息 — :meth:`~EmployerQueries.unit_info` (``unit-info``)
* 增减员名册 — :meth:`~EmployerQueries.changes` (``changes``)
* 单位缴费 — :meth:`~EmployerQueries.unit_payments` (``unit-payments``)
* 单位花名册 — :meth:`~EmployerQueries.roster` (``roster``)
* 个人缴费 — :meth:`~EmployerQueries.person_payments` (``person-payments``)
* 养老个人帐户对帐单 — :meth:`~EmployerQueries.account_statement` (``account-statement``)
* 退休人员档案 — :meth:`~EmployerQueries.retirees` (``retirees``)
* 单位到龄人员 — :meth:`~EmployerQueries.reaching_retirement` (``reaching-retirement``)

Blocking methods on the caller's ``Connection`` returning frozen dataclasses, like
the workflow in ``_declarations.py``; callers run them on the database worker pool,
never on the reactor.

Isolation: the only scope is ``actor.unit_code``, which the gateway's signed header
set; no parameter names a unit.  Every statement selects the unit's own rows (its
enrolments, ledger lines and declarations) or persons through an enrolment in the
unit, so another unit's persons, ID numbers and names never appear.  A person who
has never been enrolled in the unit reads as
:class:`~declare_app.interfaces.NotFound`, exactly like a person who does not
exist.  Two figures are the person's own rather than the unit's and
therefore count every unit's ledger lines: the pension account balance (the account
is one per person) and 累计缴费月数; other units appear in them only as amounts and
months, never by code or name.

Every call appends one audit event (``declare.query.<name>``, actor
``channel:<account>``, the unit, the gateway session, the outcome), refusals included:
a refused call has appended its ``refused`` event to *conn* before raising, so commit
*conn* even then (:func:`~declare_app._declarations.run_recording_refusals`).

Lists are paginated (``limit`` 1-500, ``offset`` from 0) and sorted deterministically,
each with :class:`Page` (rows matching the filters over all pages) and totals over
all pages.  Money is :class:`~decimal.Decimal` yuan with 2 places.
"""

from __future__ import annotations

import copy
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, Generic, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql

import audit
from declare_app._china_time import CHINA_TIME
from declare_app._contributions import (
    Insurance,
    MissingRateError,
    PaymentStatus,
    RateTable,
)
from declare_app._declarations import _audit_actor, _bounded
from declare_app._ledger_store import account_adjustments, credited_condition
from declare_app._legacy import LegacyOpening, legacy_opening
from declare_app._pension_account import (
    AccountStatementLine,
    InterestRate,
    PensionTables,
    account_pension,
    annual_statement,
    default_pension_tables,
)
from declare_app._person_id import Gender
from declare_app._retirement import (
    InsuredPerson,
    RetirementCategory,
    RetirementRow,
    StaffKind,
    YearMonth,
    flexible_earliest_month,
    retirement_category,
    retirement_month,
)
from declare_app._retirement import (
    persons_reaching_retirement as _persons_reaching_retirement,
)
from declare_app._rules._common import REDUCE_REASONS
from declare_app._rules._forms import FORM_INVALID, FORM_TOO_LONG, month_text, parse_month
from declare_app._rules._insurance_change import CHANGE_REASONS
from declare_app._rules._master import UnitStanding, unit_standing
from declare_app._rules._person_add import ADD_TYPES
from declare_app._schema import (
    contribution_adjustments,
    contributions,
    declarations,
    enrolments,
    persons,
    unit_enrolment_counts,
    unit_ledger_totals,
    unit_person_counts,
    unit_persons,
    unit_profiles,
)
from declare_app._unit_totals import NOT_PAID
from declare_app.interfaces import (
    Actor,
    DeclarationError,
    DeclarationType,
    Finding,
    NotFound,
    Status,
)

MAX_LIMIT: Final = 500
DEFAULT_LIMIT: Final = 100
MAX_OFFSET: Final = 10_000_000
MAX_NAME_FILTER: Final = 50
LATE_FEE_PER_DAY: Final = Decimal("0.0005")  # 社会保险法 art. 86 (DOMAIN §2.3)
RETIREMENT_REASON: Final = "31"  # §5.4 reduce reason 退休

_ID_FILTER = re.compile(r"[0-9]{17}[0-9X]|[0-9]{15}")
_PERSON_NUMBER = re.compile(r"[0-9A-Za-z]{6,20}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_ADD_TYPES: Final = (DeclarationType.PERSON_ADD.value, DeclarationType.INSURANCE_ADD.value)
_REDUCE_TYPES: Final = (
    DeclarationType.PERSON_REDUCE.value,
    DeclarationType.INSURANCE_REDUCE.value,
)
_CHANGE_CODE_LABELS: Final[Mapping[str, Mapping[str, str]]] = {
    DeclarationType.PERSON_ADD.value: dict(ADD_TYPES),
    DeclarationType.PERSON_REDUCE.value: dict(REDUCE_REASONS),
    DeclarationType.INSURANCE_ADD.value: dict(CHANGE_REASONS),
    DeclarationType.INSURANCE_REDUCE.value: dict(CHANGE_REASONS),
}
_ZERO: Final = Decimal("0.00")

_T = TypeVar("_T")
_R = TypeVar("_R")


# -- values ---------------------------------------------------------------------------


class InvalidQuery(DeclarationError):
    """A query refused for its parameters; the findings name each field and why."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__("invalid", "查询条件有误，请按提示修改")
        self.findings = tuple(findings)


@dataclass(frozen=True)
class Page:
    """Where a page sits: ``total`` rows match the filters over all pages."""

    limit: int
    offset: int
    total: int

    @property
    def has_more(self) -> bool:
        return self.offset + self.limit < self.total


@dataclass(frozen=True)
class Listing(Generic[_R]):
    """One page of rows."""

    rows: tuple[_R, ...]
    page: Page


# 单位基本信息


@dataclass(frozen=True)
class UnitInsurance:
    """The unit's standing in one insurance type, from its persons' enrolments.

    ``status``: ``"active"`` while at least one person contributes, ``"stopped"`` when
    enrolments exist but none is open, ``"none"`` when the unit never had one.
    """

    insurance: Insurance
    status: str
    first_month: str | None  # 参保日期: the earliest enrolment month, YYYY-MM
    contributing: int  # persons contributing now (AAC031 = 1)

    @property
    def status_label(self) -> str:
        return {"active": "参保缴费", "stopped": "暂停缴费", "none": "未参保"}[self.status]


@dataclass(frozen=True)
class UnitInfo:
    """单位基本信息: the registry entry, the §5.1 details on record (``None`` where the
    unit has filed none), the agency's standing, 参保状态 per 险种 and 工伤费率."""

    code: str  # 单位编号
    name: str  # 单位名称
    credit_code: str | None  # 统一社会信用代码
    region: str  # 统筹区
    registry_status: str  # registered | approved (网上申报)
    unit_type: str | None
    registered_address: str | None
    business_address: str | None
    postcode: str | None
    industry_code: str | None
    economic_type: str | None
    affiliation: str | None
    admin_region: str | None
    legal_rep_name: str | None
    legal_rep_id: str | None
    agent_name: str | None
    agent_phone: str | None
    bank_name: str | None
    bank_account_name: str | None
    bank_account_no: str | None
    injury_risk_class: int | None  # 工伤行业风险类别
    competent_dept: str | None
    standing: str  # normal | suspended | cancelled
    arrears: bool
    injury_rate: Decimal | None  # 工伤费率: the class's base rate in force today
    insurances: tuple[UnitInsurance, ...]


# 增减员名册


@dataclass(frozen=True)
class ChangeRow:
    """One 增减员 declaration of the unit (人员增加/减少, 险种增加/减少).

    ``code`` is the 增员类型 (A-D) for a person add, the reduce reason (§5.4) for a
    person reduce, the change reason for an insurance add or reduce; ``handled_on``
    (经办日期) is the day an auditor decided it, ``None`` while it waits.
    """

    declaration_id: str
    type: DeclarationType
    direction: str  # "add" 增 | "reduce" 减
    person_number: str | None
    name: str | None
    id_number: str | None
    code: str | None
    code_label: str | None
    insurances: tuple[str, ...]
    effective_month: str | None  # 生效年月: start month (add) or stop month (reduce)
    submitted_on: date | None
    handled_on: date | None
    status: Status  # 审核状态
    return_code: str | None
    voucher_no: str | None

    @property
    def direction_label(self) -> str:
        return "增" if self.direction == "add" else "减"


@dataclass(frozen=True)
class ChangeList:
    rows: tuple[ChangeRow, ...]
    page: Page
    adds: int  # 增 over all pages
    reduces: int  # 减 over all pages


# 单位缴费


@dataclass(frozen=True)
class UnitPaymentRow:
    """One 费款所属期 × 险种 of the unit's ledger.

    ``status``: ``"paid"`` (every line 到账), ``"due"`` (none), ``"partial"``;
    ``late_fee`` (滞纳金) is ``None`` when no payment deadline is configured.
    """

    month: str  # aae003, YYYY-MM
    insurance: Insurance
    persons: int  # 缴费人数
    base_total: Decimal  # 基数合计
    employer: Decimal  # 单位应缴
    employee: Decimal  # 个人应缴
    total: Decimal  # 合计
    status: str
    paid_on: date | None  # the last 到账 day of its lines
    late_fee: Decimal | None

    @property
    def status_label(self) -> str:
        return {"paid": "已到账", "due": "未到账", "partial": "部分到账"}[self.status]


@dataclass(frozen=True)
class UnitPayments:
    rows: tuple[UnitPaymentRow, ...]
    page: Page
    base_total: Decimal
    employer: Decimal
    employee: Decimal
    total: Decimal
    unpaid: Decimal  # 合计 of the lines not yet 到账
    late_fee: Decimal | None


# 单位花名册


@dataclass(frozen=True)
class RosterRow:
    """A person of the unit.  ``status`` (AAC031 here): ``"1"`` while an enrolment in
    this unit is open, else ``"3"`` if one was terminated, else ``"2"``; ``insurances``
    are the open types (for a person no longer contributing: those closed last)."""

    person_number: str
    name: str
    id_number: str
    gender: str  # 1 男, 2 女
    birth_month: str  # YYYY-MM
    staff_kind: str  # A 干部, B 工人
    insurances: tuple[str, ...]
    base: Decimal | None  # 当前基数: of the pension enrolment, else the largest
    status: str
    start_month: str  # first month enrolled in this unit

    @property
    def status_label(self) -> str:
        return PaymentStatus(self.status).label


class RosterLine(NamedTuple):
    """A :class:`RosterRow` as the export yields it: the same fields, a tuple (50,000
    of them are built per export; a frozen dataclass costs several times more)."""

    person_number: str
    name: str
    id_number: str
    gender: str
    birth_month: str
    staff_kind: str
    insurances: tuple[str, ...]
    base: Decimal | None
    status: str
    start_month: str

    @property
    def status_label(self) -> str:
        return PaymentStatus(self.status).label


@dataclass(frozen=True)
class Roster:
    rows: tuple[RosterRow, ...]
    page: Page
    counts: Mapping[str, int]  # AAC031 → persons, under the filters other than status


# 个人缴费


@dataclass(frozen=True)
class PersonRef:
    person_number: str
    name: str
    id_number: str


@dataclass(frozen=True)
class PersonPaymentRow:
    """One month × 险种 of the person's ledger in this unit."""

    month: str
    insurance: Insurance
    base: Decimal
    employer: Decimal  # 单位部分
    employee: Decimal  # 个人部分
    to_account: Decimal  # 划入个人账户
    status: str  # paid 到账 | due
    paid_on: date | None
    # The month's own line, or a later 补缴 (arrears) / 退费 (refund) of that month
    # booked by the ledger when an approval changed a closed month (signed amounts).
    kind: str = "regular"

    @property
    def kind_label(self) -> str:
        return {"regular": "正常应缴", "arrears": "补缴", "refund": "退费"}[self.kind]


@dataclass(frozen=True)
class PersonPayments:
    person: PersonRef
    rows: tuple[PersonPaymentRow, ...]
    page: Page
    months: int  # distinct months over all pages with a line of their own or a 补缴
    employer: Decimal
    employee: Decimal
    to_account: Decimal


# 养老个人帐户对帐单


@dataclass(frozen=True)
class StatementPeriod:
    """Months of the year a unit's lines credited the account; another unit's
    periods carry no code or name (``unit_code`` ``None``, ``unit_name`` 其他单位)."""

    from_month: str
    to_month: str
    unit_code: str | None
    unit_name: str


@dataclass(frozen=True)
class AccountStatementView:
    """养老个人帐户对帐单 (DOMAIN §4.3) for one year, computed from the ledger.

    The balance starts at 0 with the person's first credited year in the ledger — or
    at the balance imported from the old system at an earlier year end
    (``import-legacy``) — and is carried year by year with :func:`annual_statement`;
    ``opening_principal`` and ``opening_interest`` split the opening balance into
    credits and interest (an imported balance counts as principal).  For the current
    year ``provisional`` is true: the year's interest is credited at year end.
    ``deemed_months`` (视同缴费月数) is the imported one, ``None`` when none was.  A year
    whose 记账利率 is not yet published (DOMAIN §4.2) answers with its credits and
    ``rate_status`` ``"unpublished"``: no rate, no interest, closing = opening + credits.
    """

    year: int
    person: PersonRef
    opening: Decimal  # 上年末累计储存额
    opening_principal: Decimal
    opening_interest: Decimal
    months_credited: int  # 本年缴费月数
    credited: Decimal  # 本年个人缴费记账额
    rate: Decimal | None  # 本年记账利率; None: not yet published
    rate_status: str  # official | reported | unpublished
    interest_on_opening: Decimal | None  # None while the year's rate is unpublished
    interest_on_new: Decimal | None
    interest: Decimal | None  # 本年利息
    closing: Decimal  # 本年末累计储存额
    total_months: int  # 累计缴费月数 (actual months credited, to the end of the year)
    actual_months: int  # 实际缴费月数
    deemed_months: int | None  # 视同缴费月数
    periods: tuple[StatementPeriod, ...]  # 单位名称 per period
    lines: tuple[AccountStatementLine, ...]
    provisional: bool


# 退休人员档案


@dataclass(frozen=True)
class RetireeRow:
    """A person who retired from this unit (enrolment closed with reason 31, §5.4).

    Computed here: the statutory age and month (§3.2), 退休类别 from the retirement
    month against them, 实际缴费月数 from the ledger, the account balance at retirement
    ([inference]: the last year-end balance plus the retirement year's credits before
    the retirement month, without interest for the part year — DOMAIN is silent), the
    计发月数 for the age at retirement and 个人账户养老金 (§4.4).  ``None`` where the
    data are not recorded: 视同缴费月数, 平均缴费指数, 基础养老金 (needs C平 and Z),
    过渡性养老金, 月养老金合计; the balance too when the ledger holds no credit before
    the retirement month or a year's 记账利率 is not configured.
    """

    person_number: str
    name: str
    id_number: str
    gender: str
    birth_month: str
    staff_kind: str
    kind: str  # 退休类别: normal | flexible-early | flexible-late | special
    retirement_month: str  # 退休年月: the first month no longer contributed
    statutory_age_months: int | None  # 法定退休年龄 (None under an override)
    statutory_month: str  # 法定退休年月
    age_at_retirement_months: int
    actual_months: int  # 实际缴费月数
    deemed_months: int | None
    average_index: Decimal | None  # 平均缴费指数
    account_balance: Decimal | None  # 个人账户储存额
    payout_months: Decimal | None  # 计发月数
    basic_pension: Decimal | None
    account_pension: Decimal | None  # 个人账户养老金
    transitional_pension: Decimal | None
    monthly_total: Decimal | None  # 月养老金合计
    benefit_start_month: str  # 待遇开始年月 ([inference]: the retirement month)
    former_unit: str  # 原单位

    @property
    def kind_label(self) -> str:
        return _RETIREMENT_KIND_LABELS[self.kind]

    @property
    def contribution_years(self) -> Decimal:
        """累计缴费年限 from the months on record (actual + deemed when known)."""
        months = self.actual_months + (self.deemed_months or 0)
        return (Decimal(months) / 12).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


_RETIREMENT_KIND_LABELS: Final = {
    "normal": "正常退休",
    "flexible-early": "弹性提前退休",
    "flexible-late": "弹性延迟退休",
    "special": "国家另有规定（特殊工种、病退等）",
}


@dataclass(frozen=True)
class ReachingRetirement:
    """单位到龄人员 (DOMAIN §3.4): rows from :func:`persons_reaching_retirement`."""

    rows: tuple[RetirementRow, ...]
    page: Page
    from_month: YearMonth
    to_month: YearMonth
    include_overdue: bool
    overdue: int  # 已到龄仍在缴费, over all pages


# -- the queries ----------------------------------------------------------------------


@dataclass
class _Record:
    """What the call's audit event says: its subject and scalar details."""

    subject: str = "-"
    details: dict[str, audit.DetailValue] = field(default_factory=dict)


class EmployerQueries:
    """The §5.8 queries over SQLAlchemy Core, for employers only.

    *rates* gives 工伤费率; *pension_tables* the 记账利率 and 计发月数 (default: the
    shipped DOMAIN tables); *tz* turns ``now`` into the current month and day.
    *payment_deadline* maps a 费款所属期 to the last day it may be paid without
    滞纳金; DOMAIN names the fee (0.05% a day, §2.3) but not the local deadline, so
    without it 滞纳金 is ``None`` rather than a guess.
    """

    def __init__(
        self,
        rates: RateTable,
        *,
        pension_tables: PensionTables | None = None,
        tz: tzinfo = CHINA_TIME,
        payment_deadline: Callable[[YearMonth], date] | None = None,
    ) -> None:
        self._rates = rates
        self._tables = pension_tables or default_pension_tables()
        self._tz = tz
        self._deadline = payment_deadline
        self._audit_into: list[audit.AuditEvent] | None = None

    def reading(self, events: list[audit.AuditEvent]) -> EmployerQueries:
        """These queries for a read-only transaction: each call's audit event (refusals
        included) is added to *events* instead of appended on *conn*, for the caller to
        append in a write transaction of its own (:func:`append_events`) before it
        answers.  So a query never takes the write lock while it reads."""
        bound = copy.copy(self)
        bound._audit_into = events
        return bound

    # -- 单位基本信息 ------------------------------------------------------------------

    def unit_info(self, conn: Connection, actor: Actor, *, now: float) -> UnitInfo:
        """The unit's registry entry, §5.1 details, standing, 参保状态 per 险种 (from
        its persons' enrolments) and the 工伤 rate of its risk class in force today."""

        def body(unit: UnitStanding, record: _Record) -> UnitInfo:
            record.subject = unit.code
            return self._unit_info(conn, unit, self._today(now))

        return self._run(conn, actor, "unit-info", now, body)

    def _unit_info(self, conn: Connection, unit: UnitStanding, today: date) -> UnitInfo:
        profile = conn.execute(
            select(unit_profiles).where(unit_profiles.c.unit_code == unit.code)
        ).first()
        values: Mapping[str, Any] = {} if profile is None else dict(profile._mapping)
        # The counts the triggers keep (unit_enrolment_counts: a few rows), and each
        # insurance's first month by one probe of ix_enrolments_insurance_unit: never
        # the unit's enrolments counted.
        e, n = enrolments.c, unit_enrolment_counts.c
        first_month = (
            select(func.min(e.start_month))
            .where(e.unit_code == unit.code, e.insurance == n.insurance)
            .scalar_subquery()
        )
        per_type = {
            row.insurance: row
            for row in conn.execute(
                select(
                    n.insurance,
                    first_month.label("first_month"),
                    func.sum(case((n.status == "1", n.n), else_=0)).label("contributing"),
                )
                .where(n.unit_code == unit.code)
                .group_by(n.insurance)
                .having(func.sum(n.n) > 0)
            )
        }
        insurances = []
        for insurance in Insurance:
            row = per_type.get(insurance.value)
            contributing = int(row.contributing or 0) if row is not None else 0
            status = "none" if row is None else "active" if contributing else "stopped"
            insurances.append(
                UnitInsurance(
                    insurance=insurance,
                    status=status,
                    first_month=None if row is None else row.first_month,
                    contributing=contributing,
                )
            )
        risk_class = values.get("injury_risk_class")
        injury_rate = None
        if risk_class is not None:
            try:
                injury_rate = self._rates.rates_for(
                    unit.region, Insurance.WORK_INJURY, today, risk_class=int(risk_class)
                ).employer
            except (MissingRateError, ValueError):
                injury_rate = None
        return UnitInfo(
            code=unit.code,
            name=unit.name,
            credit_code=unit.credit_code,
            region=unit.region,
            registry_status=unit.registry_status,
            unit_type=values.get("unit_type"),
            registered_address=values.get("registered_address"),
            business_address=values.get("business_address"),
            postcode=values.get("postcode"),
            industry_code=values.get("industry_code"),
            economic_type=values.get("economic_type"),
            affiliation=values.get("affiliation"),
            admin_region=values.get("admin_region"),
            legal_rep_name=values.get("legal_rep_name"),
            legal_rep_id=values.get("legal_rep_id"),
            agent_name=values.get("agent_name"),
            agent_phone=values.get("agent_phone"),
            bank_name=values.get("bank_name"),
            bank_account_name=values.get("bank_account_name"),
            bank_account_no=values.get("bank_account_no"),
            injury_risk_class=None if risk_class is None else int(risk_class),
            competent_dept=values.get("competent_dept"),
            standing=unit.standing,
            arrears=unit.arrears,
            injury_rate=injury_rate,
            insurances=tuple(insurances),
        )

    # -- 增减员名册 --------------------------------------------------------------------

    def changes(
        self,
        conn: Connection,
        actor: Actor,
        *,
        from_month: str | YearMonth | None = None,
        to_month: str | YearMonth | None = None,
        direction: str | None = None,
        status: Status | str | None = None,
        id_number: str | None = None,
        name: str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        now: float,
    ) -> ChangeList:
        """The unit's 增减员 declarations, newest 生效年月 first.

        Filters: 生效年月 from/to (inclusive), *direction* ``"add"`` / ``"reduce"``,
        审核状态 *status* (default: every status but draft), ID number (exact) and
        name (part of it).
        """
        f = _Filters()
        months = f.months(from_month, to_month)
        wanted_direction = f.choice("direction", direction, ("add", "reduce"), "增减类型")
        wanted_status = f.status(status)
        idn = f.id_number(id_number)
        who = f.name(name)
        page = f.page(limit, offset)

        def body(unit: UnitStanding, record: _Record) -> ChangeList:
            f.raise_if_invalid()
            record.details.update(
                _filter_details(months, page, direction=wanted_direction, status=wanted_status)
            )
            record.details.update(_person_filter_details(idn, who))
            record.subject = unit.code
            result = self._changes(
                conn,
                unit.code,
                months=months,
                direction=wanted_direction,
                status=wanted_status,
                id_number=idn,
                name=who,
                page=page,
            )
            record.details.update(rows=len(result.rows), total=result.page.total)
            return result

        return self._run(conn, actor, "changes", now, body)

    def _changes(
        self,
        conn: Connection,
        unit_code: str,
        *,
        months: tuple[str | None, str | None],
        direction: str | None,
        status: str | None,
        id_number: str | None,
        name: str | None,
        page: tuple[int, int],
    ) -> ChangeList:
        d = declarations.c
        dialect = conn.dialect.name
        is_add = d.type.in_(_ADD_TYPES)
        effective = case(
            (is_add, _payload_text(dialect, "start_month")),
            else_=_payload_text(dialect, "stop_month"),
        )
        conditions: list[ColumnElement[bool]] = [
            d.unit_code == unit_code,
            d.type.in_(_ADD_TYPES + _REDUCE_TYPES),
        ]
        if status is None:
            conditions.append(d.status != Status.DRAFT.value)
        else:
            conditions.append(d.status == status)
        if direction == "add":
            conditions.append(is_add)
        elif direction == "reduce":
            conditions.append(d.type.in_(_REDUCE_TYPES))
        if months[0] is not None:
            conditions.append(effective >= months[0])
        if months[1] is not None:
            conditions.append(effective <= months[1])
        if id_number is not None:
            conditions.append(_payload_text(dialect, "id_number") == id_number)
        if name is not None:
            conditions.append(_payload_text(dialect, "name").contains(name, autoescape=True))
        where = and_(*conditions)
        counts = {
            bool(row.add): int(row.n)
            for row in conn.execute(
                select(is_add.label("add"), func.count().label("n")).where(where).group_by(is_add)
            )
        }
        limit, offset = page
        rows = conn.execute(
            select(
                d.id,
                d.type,
                d.status,
                d.payload,
                d.result,
                d.submitted_at,
                d.decided_at,
                d.return_code,
                d.voucher_no,
                effective.label("effective"),
            )
            .where(where)
            .order_by(effective.desc().nulls_last(), d.created_at.desc(), d.id)
            .limit(limit)
            .offset(offset)
        ).all()
        adds, reduces = counts.get(True, 0), counts.get(False, 0)
        return ChangeList(
            rows=tuple(self._change_row(row) for row in rows),
            page=Page(limit, offset, adds + reduces),
            adds=adds,
            reduces=reduces,
        )

    def _change_row(self, row: Any) -> ChangeRow:
        payload = _json_object(row.payload)
        result = _json_object(row.result)
        type_ = DeclarationType(row.type)
        code_field = "add_type" if type_ is DeclarationType.PERSON_ADD else "reason"
        code = _text_or_none(payload.get(code_field))
        insurances = payload.get("insurances")
        status = Status(row.status)
        return ChangeRow(
            declaration_id=row.id,
            type=type_,
            direction="add" if row.type in _ADD_TYPES else "reduce",
            person_number=_text_or_none(result.get("person_no"))
            or _text_or_none(payload.get("person_no")),
            name=_text_or_none(payload.get("name")),
            id_number=_text_or_none(payload.get("id_number")),
            code=code,
            code_label=None if code is None else _CHANGE_CODE_LABELS[row.type].get(code),
            insurances=tuple(sorted(i for i in insurances if isinstance(i, str)))
            if isinstance(insurances, list)
            else (),
            effective_month=_text_or_none(row.effective),
            submitted_on=self._day(row.submitted_at),
            handled_on=self._day(row.decided_at)
            if status in (Status.APPLIED, Status.RETURNED)
            else None,
            status=status,
            return_code=row.return_code,
            voucher_no=row.voucher_no,
        )

    # -- 单位缴费 ----------------------------------------------------------------------

    def unit_payments(
        self,
        conn: Connection,
        actor: Actor,
        *,
        from_month: str | YearMonth | None = None,
        to_month: str | YearMonth | None = None,
        insurance: Insurance | str | None = None,
        status: str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        now: float,
    ) -> UnitPayments:
        """The unit's ledger per 费款所属期 × 险种, newest month first; filters: months
        from/to, 险种, line status ``"paid"`` / ``"due"``."""
        f = _Filters()
        months = f.months(from_month, to_month)
        wanted_insurance = f.insurance(insurance)
        wanted_status = f.choice("status", status, ("paid", "due"), "到账状态")
        page = f.page(limit, offset)

        def body(unit: UnitStanding, record: _Record) -> UnitPayments:
            f.raise_if_invalid()
            record.subject = unit.code
            record.details.update(
                _filter_details(months, page, insurance=wanted_insurance, status=wanted_status)
            )
            result = self._unit_payments(
                conn,
                unit.code,
                months=months,
                insurance=wanted_insurance,
                status=wanted_status,
                page=page,
                today=self._today(now),
            )
            record.details.update(rows=len(result.rows), total=result.page.total)
            return result

        return self._run(conn, actor, "unit-payments", now, body)

    def _unit_payments(
        self,
        conn: Connection,
        unit_code: str,
        *,
        months: tuple[str | None, str | None],
        insurance: str | None,
        status: str | None,
        page: tuple[int, int],
        today: date,
    ) -> UnitPayments:
        where = _totals_where(unit_code, months, insurance, status)
        groups = _ledger_groups(conn, unit_code, months, insurance, status)
        total = len(groups)
        limit, offset = page
        rows = groups[offset : offset + limit]
        sums = _LedgerGroup(
            month="",
            insurance="",
            persons=0,
            base=sum(r.base for r in groups),
            employer=sum(r.employer for r in groups),
            employee=sum(r.employee for r in groups),
            lines=0,
            paid_lines=0,
            paid_on=None,
            unpaid=sum(r.unpaid for r in groups),
        )
        late = self._late_fees(conn, where, today)
        out = []
        for row in rows:
            lines, paid = int(row.lines), int(row.paid_lines or 0)
            employer, employee = _yuan(row.employer), _yuan(row.employee)
            out.append(
                UnitPaymentRow(
                    month=row.month,
                    insurance=Insurance(row.insurance),
                    persons=int(row.persons),
                    base_total=_yuan(row.base),
                    employer=employer,
                    employee=employee,
                    total=employer + employee,
                    status="paid" if paid == lines else "due" if paid == 0 else "partial",
                    paid_on=row.paid_on,
                    late_fee=None if late is None else late.get((row.month, row.insurance), _ZERO),
                )
            )
        employer, employee = _yuan(sums.employer), _yuan(sums.employee)
        return UnitPayments(
            rows=tuple(out),
            page=Page(limit, offset, total),
            base_total=_yuan(sums.base),
            employer=employer,
            employee=employee,
            total=employer + employee,
            unpaid=_yuan(sums.unpaid),
            late_fee=None if late is None else sum(late.values(), _ZERO),
        )

    def _late_fees(
        self, conn: Connection, where: ColumnElement[bool], today: date
    ) -> dict[tuple[str, str], Decimal] | None:
        """滞纳金 per month × 险种: 0.05% of the amount a day from the day after the
        deadline to the day paid (or today), rounded half-up to the fen per group of
        lines paid the same day."""
        if self._deadline is None:
            return None
        t = unit_ledger_totals.c
        fees: dict[tuple[str, str], Decimal] = defaultdict(lambda: _ZERO)
        for row in conn.execute(
            select(
                t.month,
                t.insurance,
                t.paid_on,
                func.sum(t.employer_fen + t.employee_fen).label("amount"),
            )
            .where(where)
            .group_by(t.month, t.insurance, t.paid_on)
        ):
            deadline = self._deadline(_parse_month(row.month))
            paid_on = None if row.paid_on == NOT_PAID else row.paid_on
            days = ((paid_on or today) - deadline).days
            if days > 0:
                fee = (_yuan(row.amount) * LATE_FEE_PER_DAY * days).quantize(
                    Decimal("0.01"), rounding=ROUND_HALF_UP
                )
                fees[(row.month, row.insurance)] += fee
        return dict(fees)

    # -- 单位花名册 --------------------------------------------------------------------

    def roster(
        self,
        conn: Connection,
        actor: Actor,
        *,
        status: str | None = "1",
        insurance: Insurance | str | None = None,
        id_number: str | None = None,
        name: str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        now: float,
    ) -> Roster:
        """The unit's persons by 个人编号; *status* is AAC031 here (default ``"1"``,
        the active persons; ``None`` for everyone ever enrolled), *insurance* keeps
        persons with an open enrolment of that type."""
        f = _Filters()
        wanted_status = f.choice(
            "status", status, tuple(s.value for s in PaymentStatus), "缴费状态"
        )
        wanted_insurance = f.insurance(insurance)
        idn = f.id_number(id_number)
        who = f.name(name)
        page = f.page(limit, offset)

        def body(unit: UnitStanding, record: _Record) -> Roster:
            f.raise_if_invalid()
            record.subject = unit.code
            record.details.update(
                _filter_details(
                    (None, None), page, status=wanted_status, insurance=wanted_insurance
                )
            )
            record.details.update(_person_filter_details(idn, who))
            result = self._roster(
                conn,
                unit.code,
                status=wanted_status,
                insurance=wanted_insurance,
                id_number=idn,
                name=who,
                page=page,
            )
            record.details.update(rows=len(result.rows), total=result.page.total)
            return result

        return self._run(conn, actor, "roster", now, body)

    def roster_export(
        self,
        conn: Connection,
        actor: Actor,
        *,
        status: str | None = "1",
        insurance: Insurance | str | None = None,
        id_number: str | None = None,
        name: str | None = None,
        now: float,
    ) -> tuple[Roster, Iterator[RosterLine]]:
        """The whole roster for a download, any size: the counts (a :class:`Roster`
        without rows) and every matching person, in 个人编号 order, read by one query
        as the iterator is consumed (so only while *conn*'s transaction is open).
        Audited once, as ``declare.query.roster`` with ``export``."""
        f = _Filters()
        wanted_status = f.choice(
            "status", status, tuple(s.value for s in PaymentStatus), "缴费状态"
        )
        wanted_insurance = f.insurance(insurance)
        idn = f.id_number(id_number)
        who = f.name(name)

        def body(unit: UnitStanding, record: _Record) -> tuple[Roster, Iterator[RosterLine]]:
            f.raise_if_invalid()
            record.subject = unit.code
            record.details.update(export=True)
            if wanted_status is not None:
                record.details.update(status=wanted_status)
            if wanted_insurance is not None:
                record.details.update(insurance=wanted_insurance)
            record.details.update(_person_filter_details(idn, who))
            conditions = _roster_where(
                unit.code, insurance=wanted_insurance, id_number=idn, name=who
            )
            counts = _roster_counts(conn, unit.code, conditions)
            total = sum(counts.values()) if wanted_status is None else counts.get(wanted_status, 0)
            record.details.update(total=total)
            if wanted_status is not None:
                conditions.append(unit_persons.c.status == wanted_status)
            summary = Roster(rows=(), page=Page(total, 0, total), counts=counts)
            return summary, _roster_rows(conn, unit.code, conditions)

        return self._run(conn, actor, "roster", now, body)

    def _roster(
        self,
        conn: Connection,
        unit_code: str,
        *,
        status: str | None,
        insurance: str | None,
        id_number: str | None,
        name: str | None,
        page: tuple[int, int],
    ) -> Roster:
        """Two ranges of ``ix_unit_persons_status_name`` (the counts per status, which
        give the total too; the page's keys), then the page's persons and enrolments by
        key.  An ID number narrows to one person through ``uq_persons_id_number``; a
        name fragment is tested on the name kept in that index (the unit's range)."""
        u, e, p = unit_persons.c, enrolments.c, persons.c
        conditions = _roster_where(unit_code, insurance=insurance, id_number=id_number, name=name)
        counts = _roster_counts(conn, unit_code, conditions)
        total = sum(counts.values()) if status is None else counts.get(status, 0)
        if status is not None:
            conditions.append(u.status == status)
        limit, offset = page
        keys = (
            select(u.person_number, u.status, u.start_month)
            .where(*conditions)
            .order_by(u.person_number)
            .limit(limit)
            .offset(offset)
            .subquery()
        )
        rows = conn.execute(
            select(
                p.person_number,
                p.name,
                p.id_number,
                p.gender,
                p.birth_date,
                p.staff_kind,
                keys.c.start_month,
                keys.c.status,
            )
            .select_from(keys.join(persons, p.person_number == keys.c.person_number))
            .order_by(p.person_number)
        ).all()
        by_person: dict[str, list[Any]] = defaultdict(list)
        if rows:
            for enrolment in conn.execute(
                select(e.person_number, e.insurance, e.status, e.end_month, e.base_fen, e.id)
                .where(
                    e.unit_code == unit_code,
                    e.person_number.in_([r.person_number for r in rows]),
                )
                .order_by(e.id)
            ):
                by_person[enrolment.person_number].append(enrolment)
        out = []
        for row in rows:
            insurances, base = _current_enrolments(by_person[row.person_number])
            out.append(
                RosterRow(
                    person_number=row.person_number,
                    name=row.name,
                    id_number=row.id_number,
                    gender=row.gender,
                    birth_month=month_text(YearMonth.of(row.birth_date)),
                    staff_kind=row.staff_kind,
                    insurances=insurances,
                    base=base,
                    status=row.status,
                    start_month=row.start_month,
                )
            )
        return Roster(rows=tuple(out), page=Page(limit, offset, total), counts=counts)

    # -- 个人缴费 ----------------------------------------------------------------------

    def person_payments(
        self,
        conn: Connection,
        actor: Actor,
        *,
        id_number: str | None = None,
        person_number: str | None = None,
        from_month: str | YearMonth | None = None,
        to_month: str | YearMonth | None = None,
        insurance: Insurance | str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        now: float,
    ) -> PersonPayments:
        """A person of the unit (by 身份证号 or 个人编号), their ledger lines *in this
        unit* per month × 险种, oldest month first.  Anyone never enrolled in the unit
        is :class:`NotFound`."""
        f = _Filters()
        who = f.person(id_number, person_number)
        months = f.months(from_month, to_month)
        wanted_insurance = f.insurance(insurance)
        page = f.page(limit, offset)

        def body(unit: UnitStanding, record: _Record) -> PersonPayments:
            f.raise_if_invalid()
            record.details.update(_filter_details(months, page, insurance=wanted_insurance))
            person = _person_of_unit(conn, unit.code, who, record)
            result = self._person_payments(
                conn, unit.code, person, months=months, insurance=wanted_insurance, page=page
            )
            record.details.update(rows=len(result.rows), total=result.page.total)
            return result

        return self._run(conn, actor, "person-payments", now, body)

    def _person_payments(
        self,
        conn: Connection,
        unit_code: str,
        person: PersonRef,
        *,
        months: tuple[str | None, str | None],
        insurance: str | None,
        page: tuple[int, int],
    ) -> PersonPayments:
        lines = _person_ledger(unit_code, person.person_number, months, insurance)
        c = lines.c
        sums = conn.execute(
            select(
                func.count().label("n"),
                func.count(distinct(case((c.kind != "refund", c.month)))).label("months"),
                func.coalesce(func.sum(c.employer_fen), 0).label("employer"),
                func.coalesce(func.sum(c.employee_fen), 0).label("employee"),
                func.coalesce(func.sum(c.to_account_fen), 0).label("to_account"),
            )
        ).one()
        limit, offset = page
        rows = conn.execute(
            select(lines).order_by(c.month, c.insurance, c.booked, c.id).limit(limit).offset(offset)
        ).all()
        return PersonPayments(
            person=person,
            rows=tuple(
                PersonPaymentRow(
                    month=r.month,
                    insurance=Insurance(r.insurance),
                    base=_yuan(r.base_fen),
                    employer=_yuan(r.employer_fen),
                    employee=_yuan(r.employee_fen),
                    to_account=_yuan(r.to_account_fen),
                    status=r.status,
                    paid_on=r.paid_on,
                    kind=r.kind,
                )
                for r in rows
            ),
            page=Page(limit, offset, int(sums.n)),
            months=int(sums.months),
            employer=_yuan(sums.employer),
            employee=_yuan(sums.employee),
            to_account=_yuan(sums.to_account),
        )

    # -- 养老个人帐户对帐单 ------------------------------------------------------------

    def account_statement(
        self,
        conn: Connection,
        actor: Actor,
        *,
        id_number: str | None = None,
        person_number: str | None = None,
        year: int | str | None = None,
        now: float,
    ) -> AccountStatementView:
        """The §4.3 statement of *year* for a person of the unit, for a year in which
        they were enrolled in the unit (any other year is :class:`NotFound`, like a
        person never enrolled here), up to the current year."""
        f = _Filters()
        who = f.person(id_number, person_number)
        today = self._today(now)
        wanted_year = f.year(year, today.year)

        def body(unit: UnitStanding, record: _Record) -> AccountStatementView:
            f.raise_if_invalid()
            assert wanted_year is not None
            record.details["year"] = wanted_year
            person = _person_of_unit(conn, unit.code, who, record)
            if not _enrolled_in_year(conn, unit.code, person.person_number, wanted_year):
                raise NotFound("该年度对帐单")
            return self._statement(conn, unit, person, wanted_year, today)

        return self._run(conn, actor, "account-statement", now, body)

    def _statement(
        self, conn: Connection, unit: UnitStanding, person: PersonRef, year: int, today: date
    ) -> AccountStatementView:
        credits = _account_credits(conn, person.person_number)
        legacy = legacy_opening(conn, person.person_number)  # the old system's (issue 14)
        carried = self._carry(credits, year, legacy)
        rate = self._tables.interest_rates.get(year)
        statement = annual_statement(
            carried.balance, credits.get(year, {}), year, _ZERO if rate is None else rate.rate
        )
        before = sum(len(m) for y, m in credits.items() if y < year)
        this_year = len(credits.get(year, {}))
        return AccountStatementView(
            year=year,
            person=person,
            opening=statement.opening,
            opening_principal=carried.principal,
            opening_interest=carried.interest,
            months_credited=statement.months_credited,
            credited=statement.credited,
            rate=None if rate is None else statement.rate,
            rate_status="unpublished" if rate is None else rate.status,
            interest_on_opening=None if rate is None else statement.interest_on_opening,
            interest_on_new=None if rate is None else statement.interest_on_new,
            interest=None if rate is None else statement.interest,
            closing=statement.closing,
            total_months=before + this_year,
            actual_months=before + this_year,
            deemed_months=None if legacy is None else legacy.deemed_months,
            periods=_statement_periods(conn, unit, person.person_number, year),
            lines=statement.lines,
            provisional=year >= today.year,
        )

    def _rate(self, year: int) -> InterestRate:
        try:
            return self._tables.interest_rate(year)
        except MissingRateError:
            raise DeclarationError(
                "rate-missing", f"未配置{year}年度的记账利率，暂不能计算对帐单"
            ) from None

    def _carry(
        self,
        credits: Mapping[int, Mapping[int, Decimal]],
        year: int,
        legacy: LegacyOpening | None = None,
    ) -> _Carried:
        """The balance at the end of ``year - 1``, year by year from the first credit —
        or from the old system's balance at an earlier year end, which replaces every
        credit up to that year end (it already holds them and their interest)."""
        carried = _Carried(_ZERO, _ZERO, _ZERO)
        first = min(credits) if credits else year
        if (
            legacy is not None
            and legacy.year is not None
            and legacy.balance_fen is not None
            and legacy.year < year
        ):
            opening = _yuan(legacy.balance_fen)
            carried = _Carried(opening, opening, _ZERO)  # its split is not imported
            first = legacy.year + 1
        if first >= year:
            return carried
        for y in range(first, year):
            statement = annual_statement(carried.balance, credits.get(y, {}), y, self._rate(y).rate)
            carried = _Carried(
                statement.closing,
                carried.principal + statement.credited,
                carried.interest + statement.interest,
            )
        return carried

    # -- 退休人员档案 ------------------------------------------------------------------

    def retirees(
        self,
        conn: Connection,
        actor: Actor,
        *,
        from_month: str | YearMonth | None = None,
        to_month: str | YearMonth | None = None,
        id_number: str | None = None,
        name: str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        now: float,
    ) -> Listing[RetireeRow]:
        """Persons who retired from this unit, newest retirement first; filters:
        退休年月 from/to, ID number, name."""
        f = _Filters()
        months = f.months(from_month, to_month)
        idn = f.id_number(id_number)
        who = f.name(name)
        page = f.page(limit, offset)

        def body(unit: UnitStanding, record: _Record) -> Listing[RetireeRow]:
            f.raise_if_invalid()
            record.subject = unit.code
            record.details.update(_filter_details(months, page))
            record.details.update(_person_filter_details(idn, who))
            result = self._retirees(conn, unit, months=months, id_number=idn, name=who, page=page)
            record.details.update(rows=len(result.rows), total=result.page.total)
            return result

        return self._run(conn, actor, "retirees", now, body)

    def _retirees(
        self,
        conn: Connection,
        unit: UnitStanding,
        *,
        months: tuple[str | None, str | None],
        id_number: str | None,
        name: str | None,
        page: tuple[int, int],
    ) -> Listing[RetireeRow]:
        e, p = enrolments.c, persons.c
        retired = (
            select(e.person_number, func.max(e.end_month).label("last_month"))
            .where(
                e.unit_code == unit.code,
                e.status == "3",
                e.stop_reason == RETIREMENT_REASON,
            )
            .group_by(e.person_number)
            .subquery()
        )
        # 退休年月 = the stop month = the month after the last one contributed; filter
        # on the last month contributed, one month earlier.
        conditions: list[ColumnElement[bool]] = []
        if months[0] is not None:
            conditions.append(retired.c.last_month >= _month_before(months[0]))
        if months[1] is not None:
            conditions.append(retired.c.last_month <= _month_before(months[1]))
        if id_number is not None:
            conditions.append(p.id_number == id_number)
        if name is not None:
            conditions.append(p.name.contains(name, autoescape=True))
        joined = retired.join(persons, p.person_number == retired.c.person_number)
        where = and_(true(), *conditions)
        total = int(
            conn.execute(select(func.count()).select_from(joined).where(where)).scalar_one()
        )
        limit, offset = page
        rows = conn.execute(
            select(persons, retired.c.last_month)
            .select_from(joined)
            .where(where)
            .order_by(retired.c.last_month.desc(), p.person_number)
            .limit(limit)
            .offset(offset)
        ).all()
        return Listing(
            rows=tuple(self._retiree(conn, unit, row) for row in rows),
            page=Page(limit, offset, total),
        )

    def _retiree(self, conn: Connection, unit: UnitStanding, row: Any) -> RetireeRow:
        retired = _parse_month(row.last_month).plus_months(1)
        birth = YearMonth.of(row.birth_date)
        gender = Gender.MALE if row.gender == "1" else Gender.FEMALE
        staff_kind = StaffKind.CADRE if row.staff_kind == "A" else StaffKind.WORKER
        category = retirement_category(gender, staff_kind)
        statutory_age: int | None
        if row.retirement_override_month:
            statutory = _parse_month(row.retirement_override_month)
            statutory_age = None
            kind = "special"
        else:
            statutory = retirement_month(row.birth_date, category)
            statutory_age = statutory.months_since(birth)
            kind = (
                "normal"
                if retired == statutory
                else "flexible-late"
                if retired > statutory
                else "flexible-early"
            )
        if kind == "flexible-early" and retired < flexible_earliest_month(row.birth_date, category):
            kind = "special"  # earlier than flexible retirement allows: not by the schedule
        credits = _account_credits(conn, row.person_number, before=retired)
        actual = sum(len(m) for m in credits.values())
        balance: Decimal | None = None  # no credit on record: unknown, not zero
        legacy = legacy_opening(conn, row.person_number)  # the old system's (issue 14)
        if credits or (legacy is not None and legacy.balance_fen is not None):
            try:
                carried = self._carry(credits, retired.year, legacy)
                balance = carried.balance + sum(credits.get(retired.year, {}).values(), _ZERO)
            except DeclarationError:  # a year's 记账利率 is not configured
                balance = None
        age = retired.months_since(birth)
        payout: Decimal | None = None
        try:
            payout = self._tables.payout_months(
                age // 12, age % 12, retirement_month=date(retired.year, retired.month, 1)
            )
        except (MissingRateError, ValueError):
            payout = None
        pension = (
            account_pension(balance, payout) if balance is not None and payout is not None else None
        )
        return RetireeRow(
            person_number=row.person_number,
            name=row.name,
            id_number=row.id_number,
            gender=row.gender,
            birth_month=month_text(birth),
            staff_kind=row.staff_kind,
            kind=kind,
            retirement_month=month_text(retired),
            statutory_age_months=statutory_age,
            statutory_month=month_text(statutory),
            age_at_retirement_months=age,
            actual_months=actual,
            deemed_months=None if legacy is None else legacy.deemed_months,
            average_index=None,
            account_balance=balance,
            payout_months=payout,
            basic_pension=None,
            account_pension=pension,
            transitional_pension=None,
            monthly_total=None,
            benefit_start_month=month_text(retired),
            former_unit=unit.name,
        )

    # -- 单位到龄人员 ------------------------------------------------------------------

    def reaching_retirement(
        self,
        conn: Connection,
        actor: Actor,
        *,
        from_month: str | YearMonth | None = None,
        to_month: str | YearMonth | None = None,
        include_overdue: bool = False,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        now: float,
    ) -> ReachingRetirement:
        """DOMAIN §3.4 over the persons contributing in this unit (an open enrolment
        here), by :func:`persons_reaching_retirement`; the window defaults to this
        month and the five after.  累计缴费月数 counts the months of the person's
        pension lines paid, in any unit."""
        f = _Filters()
        current = YearMonth.of(self._today(now))
        months = f.months(from_month, to_month)
        start = _parse_month(months[0]) if months[0] else current
        window = (start, _parse_month(months[1]) if months[1] else start.plus_months(5))
        if window[0] > window[1] and not f.findings:
            f.error("to_month", "截止年月不能早于起始年月")
        if not isinstance(include_overdue, bool):
            f.error("include_overdue", "是否包含已到龄人员应为是或否")
        page = f.page(limit, offset)

        def body(unit: UnitStanding, record: _Record) -> ReachingRetirement:
            f.raise_if_invalid()
            record.subject = unit.code
            record.details.update(
                _filter_details(
                    (month_text(window[0]), month_text(window[1])),
                    page,
                    include_overdue=include_overdue,
                )
            )
            every = _persons_reaching_retirement(
                _insured_persons(
                    conn,
                    unit.code,
                    _birth_ranges(window, current, include_overdue=include_overdue),
                ),
                from_month=window[0],
                to_month=window[1],
                current_month=current,
                include_overdue=include_overdue,
            )
            limit, offset = page
            record.details.update(rows=len(every[offset : offset + limit]), total=len(every))
            return ReachingRetirement(
                rows=tuple(every[offset : offset + limit]),
                page=Page(limit, offset, len(every)),
                from_month=window[0],
                to_month=window[1],
                include_overdue=include_overdue,
                overdue=sum(1 for r in every if r.overdue_still_contributing),
            )

        return self._run(conn, actor, "reaching-retirement", now, body)

    # -- steps ------------------------------------------------------------------------

    def _run(
        self,
        conn: Connection,
        actor: Actor,
        name: str,
        now: float,
        body: Callable[[UnitStanding, _Record], _T],
    ) -> _T:
        """*body* for the actor's unit, with its audit event; a refusal is audited and
        re-raised."""
        action = f"declare.query.{name}"
        record = _Record()
        try:
            unit = _employer_unit(conn, actor)
            result = body(unit, record)
        except DeclarationError as refusal:
            details: dict[str, audit.DetailValue] = {**record.details, "code": refusal.code}
            findings = getattr(refusal, "findings", ())
            if findings:
                details["fields"] = ",".join(sorted({f.field for f in findings}))[:500]
            self._record(
                conn,
                _event(
                    actor,
                    action,
                    record.subject,
                    now,
                    outcome="refused",
                    reason=f"{refusal.code}: {refusal.message}",
                    details=details,
                ),
            )
            raise
        self._record(
            conn,
            _event(actor, action, record.subject, now, outcome="ok", details=record.details),
        )
        return result

    def _record(self, conn: Connection, event: audit.AuditEvent) -> None:
        if self._audit_into is None:
            audit.append(conn, event)
        else:
            self._audit_into.append(event)

    def _today(self, now: float) -> date:
        return datetime.fromtimestamp(now, self._tz).date()

    def _day(self, at: float | None) -> date | None:
        return None if at is None else datetime.fromtimestamp(at, self._tz).date()


# -- helpers --------------------------------------------------------------------------


class _LedgerGroup(NamedTuple):
    """One 费款所属期 × 险种 of a unit's ledger: its lines and its 补缴/退费 together."""

    month: str
    insurance: str
    persons: int
    base: int  # fen, of the month's lines (an adjustment adds no base)
    employer: int
    employee: int
    lines: int
    paid_lines: int
    paid_on: date | None
    unpaid: int


class _Carried(NamedTuple):
    balance: Decimal
    principal: Decimal
    interest: Decimal


class _Filters:
    """Reads a query's parameters, collecting a finding per bad one."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(self, name: str, message: str, rule: str = FORM_INVALID) -> None:
        self.findings.append(Finding(rule, name, "error", message))

    def raise_if_invalid(self) -> None:
        if self.findings:
            raise InvalidQuery(self.findings)

    def page(self, limit: object, offset: object) -> tuple[int, int]:
        good_limit = _int(limit)
        good_offset = _int(offset)
        if good_limit is None or not 1 <= good_limit <= MAX_LIMIT:
            self.error("limit", f"每页条数应为1至{MAX_LIMIT}")
            good_limit = DEFAULT_LIMIT
        if good_offset is None or not 0 <= good_offset <= MAX_OFFSET:
            self.error("offset", "起始行应为不小于0的整数")
            good_offset = 0
        return good_limit, good_offset

    def month(self, name: str, value: object) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, YearMonth):
            if 1900 <= value.year <= 9999 and 1 <= value.month <= 12:
                return month_text(value)
        elif isinstance(value, str) and len(value) <= 16:
            parsed = parse_month(value.strip())
            if parsed is not None:
                return month_text(parsed)
        self.error(name, "年月格式应为YYYY-MM，如2024-03")
        return None

    def months(self, from_value: object, to_value: object) -> tuple[str | None, str | None]:
        start = self.month("from_month", from_value)
        end = self.month("to_month", to_value)
        if start is not None and end is not None and start > end:
            self.error("to_month", "截止年月不能早于起始年月")
        return start, end

    def choice(self, name: str, value: object, allowed: Iterable[str], label: str) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str) and value in set(allowed):
            return value
        self.error(name, f"{label}不正确")
        return None

    def status(self, value: object) -> str | None:
        if isinstance(value, Status):
            return value.value
        return self.choice("status", value, (s.value for s in Status), "审核状态")

    def insurance(self, value: object) -> str | None:
        if isinstance(value, Insurance):
            return value.value
        return self.choice("insurance", value, (i.value for i in Insurance), "险种")

    def id_number(self, value: object, name: str = "id_number") -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            text = value.strip().replace(" ", "").upper()
            if text.isascii() and _ID_FILTER.fullmatch(text):
                return text
        self.error(name, "身份证号应为18位（或15位）号码")
        return None

    def name(self, value: object) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            text = value.strip()
            if len(text) > MAX_NAME_FILTER:
                self.error("name", f"姓名不能超过{MAX_NAME_FILTER}个字", FORM_TOO_LONG)
                return None
            if text and not _CONTROL.search(text) and _encodable(text):
                return text
        self.error("name", "姓名不正确")
        return None

    def person(self, id_number: object, person_number: object) -> tuple[str | None, str | None]:
        idn = self.id_number(id_number)
        number = None
        if person_number is not None and person_number != "":
            if isinstance(person_number, str) and _PERSON_NUMBER.fullmatch(person_number.strip()):
                number = person_number.strip()
            else:
                self.error("person_number", "个人编号格式不正确")
        elif id_number is None or id_number == "":
            self.error("id_number", "请输入身份证号或个人编号", "V-FORM-01")
        return idn, number

    def year(self, value: object, current: int) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            self.error("year", "请输入年度")
            return None
        year = _int(value)
        if year is None or not 1990 <= year <= current:
            self.error("year", f"年度应为1990至{current}年")
            return None
        return year


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip()) if len(value.strip()) <= 12 else None
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _employer_unit(conn: Connection, actor: Actor) -> UnitStanding:
    if actor.kind != "employer" or not actor.unit_code or not actor.name:
        raise DeclarationError("forbidden", "只有参保单位可以查询")
    unit = unit_standing(conn, actor.unit_code)
    if unit is None:
        raise DeclarationError("unit-unknown", "单位未登记网上申报业务")
    return unit


def append_events(conn: Connection, events: Sequence[audit.AuditEvent]) -> None:
    """Append the audit events that :meth:`EmployerQueries.reading` collected."""
    for event in events:
        audit.append(conn, event)


def _event(
    actor: Actor,
    action: str,
    subject: str,
    now: float,
    *,
    outcome: str,
    reason: str = "",
    details: Mapping[str, audit.DetailValue],
) -> audit.AuditEvent:
    employer = actor.kind == "employer"
    return audit.AuditEvent(
        at=now,
        actor=_audit_actor(actor),
        action=action,
        subject=_bounded(subject, 255) or "-",
        outcome=outcome,
        reason=_bounded(reason, 1000),
        unit=_bounded((actor.unit_code or "") if employer else "", 64),
        session_id=_bounded((actor.session_id or "") if employer else "", 128),
        details=dict(details),
    )


def _filter_details(
    months: tuple[str | None, str | None], page: tuple[int, int], **more: str | bool | None
) -> dict[str, audit.DetailValue]:
    details: dict[str, audit.DetailValue] = {"limit": page[0], "offset": page[1]}
    if months[0] is not None:
        details["from_month"] = months[0]
    if months[1] is not None:
        details["to_month"] = months[1]
    details.update({k: v for k, v in more.items() if v is not None})
    return details


def _person_filter_details(id_number: str | None, name: str | None) -> dict[str, audit.DetailValue]:
    """Which person filters were used; an ID number masked, a name never written."""
    details: dict[str, audit.DetailValue] = {}
    if id_number is not None:
        details["id_number"] = _mask(id_number)
    if name is not None:
        details["by_name"] = True
    return details


def _mask(id_number: str) -> str:
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def _person_of_unit(
    conn: Connection, unit_code: str, who: tuple[str | None, str | None], record: _Record
) -> PersonRef:
    """The person named by ID number or 个人编号 who has (or had) an enrolment in the
    unit; anyone else — of another unit or of none — is :class:`NotFound`."""
    id_number, number = who
    if id_number is not None:
        record.details["id_number"] = _mask(id_number)
    p, e = persons.c, enrolments.c
    query = select(p.person_number, p.name, p.id_number).where(
        select(e.id).where(e.person_number == p.person_number, e.unit_code == unit_code).exists()
    )
    if id_number is not None:
        query = query.where(p.id_number == id_number)
    if number is not None:
        query = query.where(p.person_number == number)
    row = conn.execute(query).first()
    if row is None:
        raise NotFound("该人员")
    record.subject = row.person_number
    return PersonRef(row.person_number, row.name, row.id_number)


def _ledger_groups(
    conn: Connection,
    unit_code: str,
    months: tuple[str | None, str | None],
    insurance: str | None,
    status: str | None,
) -> list[_LedgerGroup]:
    """The unit's ledger per month × 险种, newest month first: the month's lines
    (``kind`` regular) and the adjustments of closed months (arrears / refund, always
    due).

    Two grouped reads, each one index range: the lines' sums from
    ``unit_ledger_totals`` (kept by triggers on ``contributions``: a few rows per
    month, never the unit's every line); the adjustments (few) through their unit
    index.  A month's line is
    one per person (``uq_contributions_line``), so its persons are its lines, plus the
    persons with only an adjustment of that month (a probe of the same unique index
    each) — where ``count(DISTINCT person)`` over both sorted every line of the unit.
    """
    a = contribution_adjustments.c
    t = unit_ledger_totals.c
    paid = t.status == "paid"
    groups: dict[tuple[str, str], _LedgerGroup] = {}
    for row in conn.execute(
        select(
            t.month,
            t.insurance,
            func.sum(t.lines).label("lines"),
            func.sum(t.base_fen).label("base"),
            func.sum(t.employer_fen).label("employer"),
            func.sum(t.employee_fen).label("employee"),
            func.sum(case((paid, t.lines), else_=0)).label("paid_lines"),
            func.max(case((t.paid_on != NOT_PAID, t.paid_on))).label("paid_on"),
            func.sum(case((paid, 0), else_=t.employer_fen + t.employee_fen)).label("unpaid"),
        )
        .where(_totals_where(unit_code, months, insurance, status))
        .group_by(t.month, t.insurance)
    ):
        groups[(row.month, row.insurance)] = _LedgerGroup(
            row.month,
            row.insurance,
            int(row.lines),
            int(row.base or 0),
            int(row.employer or 0),
            int(row.employee or 0),
            int(row.lines),
            int(row.paid_lines or 0),
            row.paid_on,
            int(row.unpaid or 0),
        )
    if status in (None, "due"):  # adjustments are always due
        line = contributions.alias("line")
        has_line = (
            select(line.c.id)
            .where(
                line.c.person_number == a.person_number,
                line.c.unit_code == a.unit_code,
                line.c.insurance == a.insurance,
                line.c.month == a.month,
                *([] if status is None else [line.c.status == status]),
            )
            .exists()
        )
        adjust_where: list[ColumnElement[bool]] = [a.unit_code == unit_code]
        adjust_where += _month_conditions(a.month, months)
        if insurance is not None:
            adjust_where.append(a.insurance == insurance)
        for row in conn.execute(
            select(
                a.month,
                a.insurance,
                func.count().label("lines"),
                func.count(distinct(case((~has_line, a.person_number)))).label("persons"),
                func.sum(a.employer_fen).label("employer"),
                func.sum(a.employee_fen).label("employee"),
            )
            .where(*adjust_where)
            .group_by(a.month, a.insurance)
        ):
            employer, employee = int(row.employer or 0), int(row.employee or 0)
            was = groups.get((row.month, row.insurance))
            groups[(row.month, row.insurance)] = _LedgerGroup(
                row.month,
                row.insurance,
                int(row.persons) + (was.persons if was else 0),
                was.base if was else 0,
                employer + (was.employer if was else 0),
                employee + (was.employee if was else 0),
                int(row.lines) + (was.lines if was else 0),
                was.paid_lines if was else 0,
                was.paid_on if was else None,
                employer + employee + (was.unpaid if was else 0),
            )
    # Newest month first, then 险种 (month text sorts chronologically).
    by_insurance = sorted(groups.values(), key=lambda g: g.insurance)
    return sorted(by_insurance, key=lambda g: g.month, reverse=True)


def _totals_where(
    unit_code: str,
    months: tuple[str | None, str | None],
    insurance: str | None,
    status: str | None,
) -> ColumnElement[bool]:
    """单位缴费's filters on ``unit_ledger_totals`` (a range of its primary key)."""
    t = unit_ledger_totals.c
    conditions: list[ColumnElement[bool]] = [t.unit_code == unit_code]
    conditions += _month_conditions(t.month, months)
    if insurance is not None:
        conditions.append(t.insurance == insurance)
    if status is not None:
        conditions.append(t.status == status)
    return and_(*conditions)


def _person_ledger(
    unit_code: str,
    person_number: str,
    months: tuple[str | None, str | None],
    insurance: str | None,
) -> Any:
    """The person's ledger in the unit as one subquery: each month's line (``kind``
    regular) and the adjustments of closed months (arrears / refund, always due);
    ``booked`` orders a month's adjustments after its line."""
    c, a = contributions.c, contribution_adjustments.c
    regular = select(
        c.id,
        c.month,
        c.insurance,
        c.base_fen,
        c.employer_fen,
        c.employee_fen,
        c.to_account_fen,
        c.status,
        c.paid_on,
        literal("regular", String).label("kind"),
        literal(0).label("booked"),
    ).where(c.unit_code == unit_code, c.person_number == person_number)
    later = select(
        a.id,
        a.month,
        a.insurance,
        a.base_fen,
        a.employer_fen,
        a.employee_fen,
        a.to_account_fen,
        literal("due", String).label("status"),
        cast(null(), Date).label("paid_on"),
        a.kind,
        literal(1).label("booked"),
    ).where(a.unit_code == unit_code, a.person_number == person_number)
    regular = regular.where(*_month_conditions(c.month, months))
    later = later.where(*_month_conditions(a.month, months))
    if insurance is not None:
        regular = regular.where(c.insurance == insurance)
        later = later.where(a.insurance == insurance)
    return union_all(regular, later).subquery("ledger")


def _enrolled_in_year(conn: Connection, unit_code: str, person_number: str, year: int) -> bool:
    e = enrolments.c
    found = conn.execute(
        select(e.id)
        .where(
            e.unit_code == unit_code,
            e.person_number == person_number,
            e.start_month <= f"{year:04d}-12",
            or_(e.end_month.is_(None), e.end_month >= f"{year:04d}-01"),
        )
        .limit(1)
    ).first()
    return found is not None


def _account_credits(
    conn: Connection, person_number: str, *, before: YearMonth | None = None
) -> dict[int, dict[int, Decimal]]:
    """The person's pension account credits (every unit), year → month → amount: the
    110 lines paid or in a closed month of the ledger, plus the ledger's adjustments
    (补缴/退费) of those months."""
    c = contributions.c
    query = (
        select(c.month, func.sum(c.to_account_fen).label("credit"))
        .where(
            c.person_number == person_number,
            c.insurance == Insurance.PENSION.value,
            credited_condition(),
        )
        .group_by(c.month)
    )
    if before is not None:
        query = query.where(c.month < month_text(before))
    by_month: dict[str, Decimal] = defaultdict(lambda: _ZERO)
    for row in conn.execute(query):
        by_month[row.month] += _yuan(row.credit)
    for text, amount in account_adjustments(conn, person_number).items():
        if before is None or text < month_text(before):
            by_month[text] += amount
    credits: dict[int, dict[int, Decimal]] = defaultdict(dict)
    for text, amount in by_month.items():
        month = _parse_month(text)
        credits[month.year][month.month] = max(amount, _ZERO)
    return dict(credits)


def _statement_periods(
    conn: Connection, unit: UnitStanding, person_number: str, year: int
) -> tuple[StatementPeriod, ...]:
    c = contributions.c
    rows = conn.execute(
        select(
            c.unit_code,
            func.min(c.month).label("first"),
            func.max(c.month).label("last"),
        )
        .where(
            c.person_number == person_number,
            c.insurance == Insurance.PENSION.value,
            c.month >= f"{year:04d}-01",
            c.month <= f"{year:04d}-12",
        )
        .group_by(c.unit_code)
    ).all()
    periods = [
        StatementPeriod(row.first, row.last, unit.code, unit.name)
        if row.unit_code == unit.code
        else StatementPeriod(row.first, row.last, None, "其他单位")
        for row in rows
    ]
    periods.sort(key=lambda p: (p.from_month, p.to_month, p.unit_code is None))
    return tuple(periods)


# The 2025 law's three groups as the persons table codes them (gender 1 男 / 2 女,
# staff_kind A 干部 / B 工人), with a person of each for the schedule.
_CATEGORY_OF: Final = (
    (RetirementCategory.MALE, "1", None),
    (RetirementCategory.FEMALE_55, "2", "A"),
    (RetirementCategory.FEMALE_50, "2", "B"),
)


class _BirthRange(NamedTuple):
    gender: str
    staff_kind: str | None  # None: either
    first: date | None  # None: no lower bound
    before: date  # exclusive


def _birth_ranges(
    window: tuple[YearMonth, YearMonth], current: YearMonth, *, include_overdue: bool
) -> list[_BirthRange]:
    """Per retirement group, the birth dates whose statutory month falls in *window*
    (or, with *include_overdue*, before *current*).  The statutory month only grows
    with the month of birth (the age never shrinks for a later birth), so each is one
    range of birth months, found by walking the months that can reach the window
    (ages 50 to 63 years)."""
    out: list[_BirthRange] = []
    for category, gender, kind in _CATEGORY_OF:
        first: YearMonth | None = None
        last: YearMonth | None = None
        birth = window[0].plus_months(-64 * 12)
        end = window[1].plus_months(-49 * 12)
        while birth <= end:
            month = retirement_month(date(birth.year, birth.month, 1), category)
            wanted = window[0] <= month <= window[1] or (include_overdue and month < current)
            if wanted:
                first = birth if first is None else first
                last = birth
            birth = birth.plus_months(1)
        if last is None:
            continue
        after = last.plus_months(1)
        out.append(
            _BirthRange(
                gender,
                kind,
                None if include_overdue else date(first.year, first.month, 1),  # type: ignore[union-attr]
                date(after.year, after.month, 1),
            )
        )
    return out


def _insured_persons(
    conn: Connection, unit_code: str, births: Sequence[_BirthRange]
) -> list[InsuredPerson]:
    """The persons contributing in the unit (status 1 in ``unit_persons``) who may be
    in the window: born in one of *births* (``ix_persons_birth_date``) or with an
    override month (``ix_persons_retirement_override``), each checked against the
    unit by its primary key — never the unit's every person; with the months of their
    paid pension lines in any unit.  The caller's rule decides exactly who is in."""
    u, p, c = unit_persons.c, persons.c, contributions.c
    # One range per group and one of the overrides, as a UNION (SQLite reads an OR of
    # these by scanning persons whole, and ``IS NOT NULL`` too: ``> ''`` is the same
    # persons, an override being a month, as a range of its index).
    ranges: list[Select[Any]] = [select(p.person_number).where(p.retirement_override_month > "")]
    for r in births:
        condition = [p.birth_date < r.before, p.gender == r.gender]
        if r.first is not None:
            condition.append(p.birth_date >= r.first)
        if r.staff_kind is not None:
            condition.append(p.staff_kind == r.staff_kind)
        ranges.append(select(p.person_number).where(*condition))
    candidates = union(*ranges).subquery()
    active = (
        select(u.person_number)
        .where(
            u.unit_code == unit_code,
            u.status == "1",
            u.person_number.in_(select(candidates.c.person_number)),
        )
        .subquery()
    )
    # Each candidate's paid pension months: a probe of the person's own lines
    # (uq_contributions_line leads with person_number) per row, where a grouped
    # subquery over every candidate was materialised and scanned per row.
    months = (
        select(func.count(distinct(c.month)))
        .where(
            c.person_number == p.person_number,
            c.insurance == Insurance.PENSION.value,
            c.status == "paid",
        )
        .scalar_subquery()
    )
    query: Select[Any] = (
        select(
            p.person_number,
            p.name,
            p.id_number,
            p.gender,
            p.birth_date,
            p.staff_kind,
            p.retirement_override_month,
            months.label("months"),
        )
        .select_from(active.join(persons, p.person_number == active.c.person_number))
        .order_by(p.person_number)
    )
    return [
        InsuredPerson(
            person_number=row.person_number,
            name=row.name,
            id_number=row.id_number,
            gender=Gender.MALE if row.gender == "1" else Gender.FEMALE,
            birth_date=row.birth_date,
            staff_kind=StaffKind.CADRE if row.staff_kind == "A" else StaffKind.WORKER,
            payment_status=PaymentStatus.PAYING.value,
            contribution_months=int(row.months or 0),
            override_month=_parse_month(row.retirement_override_month)
            if row.retirement_override_month
            else None,
        )
        for row in conn.execute(query)
    ]


def _roster_where(
    unit_code: str, *, insurance: str | None, id_number: str | None, name: str | None
) -> list[ColumnElement[bool]]:
    """The roster's conditions on ``unit_persons`` other than the status."""
    u, e, p = unit_persons.c, enrolments.c, persons.c
    conditions: list[ColumnElement[bool]] = [u.unit_code == unit_code]
    if id_number is not None:
        conditions.append(
            u.person_number.in_(select(p.person_number).where(p.id_number == id_number))
        )
    if name is not None:
        # The copy of the name in unit_persons: the fragment is tested on the unit's
        # own range of ix_unit_persons_status_name (covering), never on the pool's every
        # person.  A fragment anywhere in the name has no index order to seek on
        # (a given name is the end of a Chinese name), so this range is the bound:
        # the unit's size, with exact counts, at a few milliseconds per 10,000 persons.
        conditions.append(u.name.contains(name, autoescape=True))
    if insurance is not None:
        open_of_type = (
            select(e.id)
            .where(
                e.person_number == u.person_number,
                e.insurance == insurance,
                e.unit_code == unit_code,
                e.status == "1",
            )
            .exists()
        )
        conditions.append(open_of_type)
    return conditions


def _roster_counts(
    conn: Connection, unit_code: str, conditions: Sequence[ColumnElement[bool]]
) -> dict[str, int]:
    """Persons per AAC031 under *conditions*: without a filter (the unit's condition
    only), the counts the triggers keep in ``unit_person_counts`` (a few rows);
    otherwise one range of ``ix_unit_persons_status_name``."""
    if len(conditions) == 1:
        n = unit_person_counts.c
        return {
            row.status: int(row.n)
            for row in conn.execute(select(n.status, n.n).where(n.unit_code == unit_code, n.n > 0))
        }
    u = unit_persons.c
    return {
        row.status: int(row.n)
        for row in conn.execute(
            select(u.status, func.count().label("n")).where(*conditions).group_by(u.status)
        )
    }


EXPORT_BATCH: Final = 1_000  # rows fetched at a time (a server-side cursor on PostgreSQL)


def _roster_rows(
    conn: Connection, unit_code: str, conditions: Sequence[ColumnElement[bool]]
) -> Iterator[RosterLine]:
    """Every person under *conditions* with their enrolments in the unit, by one
    query in 个人编号 order (``ix_unit_persons_status_name`` or the primary key, then each
    person's rows by key), grouped here as they arrive."""
    u, e, p = unit_persons.c, enrolments.c, persons.c
    # SQLite plans by rule (no statistics): given an index that starts with unit_code it
    # may drive this join from the unit's every enrolment and sort them all before the
    # first row.  ``unit_code || ''`` cannot use an index, so the unit_persons range,
    # already in 个人编号 order, drives, and each person's rows are read by key.
    enrolment_unit = e.unit_code.concat("") if conn.dialect.name == "sqlite" else e.unit_code
    statement = (
        select(
            p.person_number,
            p.name,
            p.id_number,
            p.gender,
            p.birth_date,
            p.staff_kind,
            u.start_month,
            u.status,
            e.insurance,
            e.status.label("enrolment_status"),
            e.end_month,
            e.base_fen,
            e.id,
        )
        .select_from(
            unit_persons.join(persons, p.person_number == u.person_number).join(
                enrolments, and_(enrolment_unit == unit_code, e.person_number == u.person_number)
            )
        )
        .where(*conditions)
        .order_by(u.person_number)
    )
    result = conn.execution_options(yield_per=EXPORT_BATCH).execute(statement)
    # Positional tuples, each person's few enrolment rows kept as they come: the rows
    # of a 50,000-person unit are 246,000, so nothing is built per enrolment row.
    person: Any = None
    items: list[Any] = []
    for part in result.partitions():
        for row in part:
            if person is not None and row[0] != person[0]:
                yield _roster_line(person, items)
                items = []
            person = row
            items.append(row)
    if person is not None:
        yield _roster_line(person, items)


def _roster_line(person: Any, items: list[Any]) -> RosterLine:
    """One person from their joined rows (columns as :func:`_roster_rows` selects)."""
    # The current enrolments (as _current_enrolments): the open ones, else those that
    # ended last; the pension's base (the latest id), else the largest.
    current = [r for r in items if r[9] == "1"]
    if not current:
        last = max(r[10] for r in items)
        current = [r for r in items if r[10] == last]
    pension = [r for r in current if r[8] == _PENSION]
    base_fen = max(pension, key=_ID)[11] if pension else max(r[11] for r in current)
    birth = person[4]
    return RosterLine(
        person[0],
        person[1],
        person[2],
        person[3],
        f"{birth.year:04d}-{birth.month:02d}",
        person[5],
        tuple(sorted({r[8] for r in current})),
        _yuan(base_fen),
        person[7],
        person[6],
    )


_PENSION: Final = Insurance.PENSION.value


def _ID(row: Any) -> int:
    return int(row[12])


def _current_enrolments(items: Sequence[Any]) -> tuple[tuple[str, ...], Decimal | None]:
    """The 参保险种 and 当前基数 of one person's enrolments in the unit: the open ones,
    or, when none is open, those that ended last."""
    current = [r for r in items if r.status == "1"]
    if not current and items:
        last = max(r.end_month for r in items)
        current = [r for r in items if r.end_month == last]
    if not current:
        return (), None
    pension = [r for r in current if r.insurance == Insurance.PENSION.value]
    base_fen = pension[-1].base_fen if pension else max(r.base_fen for r in current)
    return tuple(sorted({r.insurance for r in current})), _yuan(base_fen)


def _payload_text(dialect: str, key: str) -> ColumnElement[str]:
    """A top-level string of ``declarations.payload`` (JSON text) in SQL."""
    expr: ColumnElement[Any]
    if dialect == "postgresql":
        expr = func.json_extract_path_text(cast(declarations.c.payload, postgresql.JSON), key)
    else:
        expr = func.json_extract(declarations.c.payload, f"$.{key}")
    return type_coerce(expr, String)


def _month_conditions(
    column: ColumnElement[str], months: tuple[str | None, str | None]
) -> list[ColumnElement[bool]]:
    conditions = []
    if months[0] is not None:
        conditions.append(column >= months[0])
    if months[1] is not None:
        conditions.append(column <= months[1])
    return conditions


def _parse_month(text: str) -> YearMonth:
    return YearMonth(int(text[:4]), int(text[5:7]))


def _month_before(text: str) -> str:
    return month_text(_parse_month(text).plus_months(-1))


def _yuan(fen: Any) -> Decimal:
    """Integer fen (a SUM may come back as a Decimal or None) as yuan."""
    return (Decimal(int(fen or 0)) / 100).quantize(Decimal("0.01"))


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
