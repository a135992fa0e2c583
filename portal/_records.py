"""The person's own records, read across every unit they have worked for.

:class:`LedgerRecords` implements :class:`portal.interfaces.PersonRecords` over the
declaration service's tables: blocking functions on a ``Connection``, each scoped by
the 个人编号 of the logged-in person (the portal never takes a person from the
request).  Where the declaration service already has a person-wide read, it is reused
rather than rewritten: the pension account's credits (``_account_credits``, which
already spans every unit and folds in the ledger's adjustments), the 对帐单 arithmetic
(:func:`annual_statement`), the statutory and flexible retirement months
(``declare_app._retirement``).  The declaration service's own queries are scoped to
one unit (the employer's view), so the person-wide ledger listing is a query here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    case,
    distinct,
    func,
    literal,
    or_,
    select,
    union_all,
)

from declare_app._contributions import Insurance
from declare_app._pension_account import (
    AccountStatement,
    PensionTables,
    annual_statement,
    default_pension_tables,
)
from declare_app._person_id import Gender
from declare_app._queries import _account_credits
from declare_app._retirement import (
    StaffKind,
    YearMonth,
    flexible_earliest_month,
    flexible_latest_month,
    minimum_contribution_months,
    retirement_category,
    retirement_month,
)
from declare_app._schema import (
    contribution_adjustments,
    contributions,
    declarations,
    enrolments,
    persons,
    units,
)
from declare_app._voucher_pdf import mask_id_number
from declare_app.interfaces import DeclarationType

_ZERO = Decimal("0.00")
_INSURANCE = {i.value: i for i in Insurance}
# What a person sees of a declaration about them: only those the agency applied (a
# draft or one under review is the unit's internal business).
_SHOWN_STATUS = "applied"
_PERSON_TYPES = (
    DeclarationType.PERSON_ADD.value,
    DeclarationType.INSURANCE_ADD.value,
    DeclarationType.INSURANCE_REDUCE.value,
    DeclarationType.PERSON_REDUCE.value,
    DeclarationType.ANNUAL_BASE.value,
)


@dataclass(frozen=True)
class PersonSummary:
    person_number: str
    name: str
    masked_id: str
    gender: str  # 男 / 女
    birth_date: date
    staff_kind: str  # A 干部 / B 工人
    first_insured_month: str | None
    retirement_override_month: str | None


@dataclass(frozen=True)
class EnrolmentRow:
    unit_code: str
    unit_name: str
    insurance: Insurance
    status: str  # AAC031: 1 参保缴费, 2 暂停缴费, 3 终止缴费
    start_month: str
    end_month: str | None

    @property
    def status_text(self) -> str:
        return {"1": "参保缴费", "2": "暂停缴费", "3": "终止缴费"}.get(self.status, self.status)


@dataclass(frozen=True)
class ContributionRow:
    month: str
    unit_code: str
    unit_name: str
    insurance: Insurance
    base: Decimal
    employer: Decimal
    employee: Decimal
    to_account: Decimal
    status: str  # due | paid
    kind: str  # regular | arrears | refund


@dataclass(frozen=True)
class Contributions:
    """The lines read (``rows``) and the totals of every line the filter matches
    (``lines`` of them: more than ``rows`` when only the newest were read)."""

    rows: tuple[ContributionRow, ...]
    months: int
    employer: Decimal
    employee: Decimal
    lines: int = 0


@dataclass(frozen=True)
class Statement:
    """One year of the 养老个人帐户对帐单; ``rate`` None while unpublished."""

    year: int
    statement: AccountStatement
    rate_published: bool
    total_months: int


@dataclass(frozen=True)
class Retirement:
    category: str
    statutory: YearMonth
    earliest: YearMonth
    latest: YearMonth | None
    minimum_months: int
    override: str | None


@dataclass(frozen=True)
class DeclarationRow:
    type: DeclarationType
    unit_code: str
    unit_name: str
    decided_at: float | None
    voucher_no: str | None


@dataclass(frozen=True)
class PaidMonths:
    """For a 参保证明: per insurance, the months contributed in the period."""

    by_insurance: tuple[tuple[Insurance, int], ...]


class LedgerRecords:
    """The person's records from the declaration service's tables (blocking)."""

    def __init__(self, pension_tables: PensionTables | None = None) -> None:
        self._tables = pension_tables or default_pension_tables()

    def summary(self, conn: Connection, person_number: str) -> PersonSummary | None:
        p = persons.c
        row = conn.execute(select(persons).where(p.person_number == person_number)).first()
        if row is None:
            return None
        return PersonSummary(
            person_number=row.person_number,
            name=row.name,
            masked_id=mask_id_number(row.id_number),
            gender="男" if row.gender == "1" else "女",
            birth_date=row.birth_date,
            staff_kind=row.staff_kind,
            first_insured_month=row.first_insured_month,
            retirement_override_month=row.retirement_override_month,
        )

    def enrolments(self, conn: Connection, person_number: str) -> tuple[EnrolmentRow, ...]:
        e, u = enrolments.c, units.c
        rows = conn.execute(
            select(e.unit_code, u.name, e.insurance, e.status, e.start_month, e.end_month)
            .join_from(enrolments, units, u.code == e.unit_code)
            .where(e.person_number == person_number)
            .order_by(e.start_month, e.unit_code, e.insurance)
        )
        return tuple(
            EnrolmentRow(
                r.unit_code, r.name, Insurance(r.insurance), r.status, r.start_month, r.end_month
            )
            for r in rows
        )

    def contributions(
        self,
        conn: Connection,
        person_number: str,
        *,
        from_month: str | None = None,
        to_month: str | None = None,
        insurance: str | None = None,
        unit_code: str | None = None,
        limit: int = 2000,
        newest: int | None = None,
    ) -> Contributions:
        """Every ledger line of the person (each unit), with the adjustments (补缴 /
        退费) of closed months, oldest first; filters are exact values.  The rows are
        the first *limit* lines, or with *newest* the newest that many; the totals
        are summed by the database over every line the filter matches."""
        c, a = contributions.c, contribution_adjustments.c
        regular = select(
            c.month,
            c.unit_code,
            c.insurance,
            c.base_fen,
            c.employer_fen,
            c.employee_fen,
            c.to_account_fen,
            c.status,
            literal("regular", String).label("kind"),
        ).where(c.person_number == person_number)
        later = select(
            a.month,
            a.unit_code,
            a.insurance,
            a.base_fen,
            a.employer_fen,
            a.employee_fen,
            a.to_account_fen,
            literal("due", String).label("status"),
            a.kind,
        ).where(a.person_number == person_number)
        for column_c, column_a, op, value in (
            (c.month, a.month, ">=", from_month),
            (c.month, a.month, "<=", to_month),
            (c.insurance, a.insurance, "==", insurance),
            (c.unit_code, a.unit_code, "==", unit_code),
        ):
            if value is None:
                continue
            if op == ">=":
                regular, later = regular.where(column_c >= value), later.where(column_a >= value)
            elif op == "<=":
                regular, later = regular.where(column_c <= value), later.where(column_a <= value)
            else:
                regular, later = regular.where(column_c == value), later.where(column_a == value)
        lines = union_all(regular, later).subquery("lines")
        ln, u = lines.c, units.c
        totals = conn.execute(
            select(
                func.count(),
                func.count(distinct(case((ln.kind == "regular", ln.month)))),
                func.coalesce(func.sum(ln.employer_fen), 0),
                func.coalesce(func.sum(ln.employee_fen), 0),
            ).select_from(lines)
        ).one()
        order = (ln.month, ln.unit_code, ln.insurance, ln.kind)
        query = select(lines, u.name.label("unit_name")).join_from(
            lines, units, u.code == ln.unit_code
        )
        if newest is None:
            rows = conn.execute(query.order_by(*order).limit(limit)).all()
        else:
            desc = [column.desc() for column in order]
            rows = conn.execute(query.order_by(*desc).limit(newest)).all()[::-1]
        out = tuple(
            ContributionRow(
                month=r.month,
                unit_code=r.unit_code,
                unit_name=r.unit_name,
                insurance=_INSURANCE[r.insurance],
                base=_yuan(r.base_fen),
                employer=_yuan(r.employer_fen),
                employee=_yuan(r.employee_fen),
                to_account=_yuan(r.to_account_fen),
                status=r.status,
                kind=r.kind,
            )
            for r in rows
        )
        return Contributions(
            rows=out,
            months=int(totals[1]),
            employer=_yuan(totals[2]),
            employee=_yuan(totals[3]),
            lines=int(totals[0]),
        )

    def statement_years(self, conn: Connection, person_number: str) -> tuple[int, ...]:
        return tuple(sorted(_account_credits(conn, person_number)))

    def statement(self, conn: Connection, person_number: str, year: int) -> Statement | None:
        """The §4.3 statement of *year*, the balance carried from the first credited
        year; None for a year before the first credit or a year whose earlier rates
        are not configured."""
        credits = _account_credits(conn, person_number)
        if not credits or year < min(credits):
            return None
        balance = _ZERO
        for y in range(min(credits), year):
            rate = self._tables.interest_rates.get(y)
            if rate is None:
                return None
            balance = annual_statement(balance, credits.get(y, {}), y, rate.rate).closing
        rate = self._tables.interest_rates.get(year)
        statement = annual_statement(
            balance, credits.get(year, {}), year, _ZERO if rate is None else rate.rate
        )
        total = sum(len(m) for y, m in credits.items() if y <= year)
        return Statement(year, statement, rate is not None, total)

    def retirement(self, person: PersonSummary) -> Retirement:
        gender = Gender.MALE if person.gender == "男" else Gender.FEMALE
        kind = StaffKind.CADRE if person.staff_kind == "A" else StaffKind.WORKER
        category = retirement_category(gender, kind)
        statutory = retirement_month(person.birth_date, category)
        return Retirement(
            category=category.value,
            statutory=statutory,
            earliest=flexible_earliest_month(person.birth_date, category),
            latest=flexible_latest_month(person.birth_date, category),
            minimum_months=minimum_contribution_months(statutory.year),
            override=person.retirement_override_month,
        )

    def declarations(
        self, conn: Connection, person_number: str, id_number_of: str
    ) -> tuple[DeclarationRow, ...]:
        """Applied declarations about the person: by subject (their ID number) or by
        the 个人编号 they carry; only type, unit, date and voucher number."""
        d, u = declarations.c, units.c
        rows = conn.execute(
            select(d.type, d.unit_code, u.name, d.decided_at, d.voucher_no)
            .join_from(declarations, units, u.code == d.unit_code)
            .where(
                d.status == _SHOWN_STATUS,
                d.type.in_(_PERSON_TYPES),
                or_(d.subject == id_number_of, d.subject == person_number),
            )
            .order_by(d.decided_at, d.id)
        )
        return tuple(
            DeclarationRow(DeclarationType(r.type), r.unit_code, r.name, r.decided_at, r.voucher_no)
            for r in rows
        )

    def id_number(self, conn: Connection, person_number: str) -> str | None:
        """The person's own ID number (for matching declarations; never shown whole)."""
        row = conn.execute(
            select(persons.c.id_number).where(persons.c.person_number == person_number)
        ).first()
        return None if row is None else str(row.id_number)

    def paid_months(
        self, conn: Connection, person_number: str, from_month: str, to_month: str
    ) -> dict[str, int]:
        """Per insurance code, how many months of the period have a ledger line."""
        c = contributions.c
        rows = conn.execute(
            select(c.insurance, c.month)
            .where(
                and_(
                    c.person_number == person_number,
                    c.month >= from_month,
                    c.month <= to_month,
                )
            )
            .distinct()
        )
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.insurance] = counts.get(r.insurance, 0) + 1
        return counts


def _yuan(fen: Any) -> Decimal:
    # Exact: a whole number of fen is a Decimal with two places (no division, no
    # rounding); called four times a line, 1,800 lines for 30 years.
    return Decimal(int(fen or 0)).scaleb(-2)


def rows_csv(rows: Sequence[ContributionRow]) -> bytes:
    """The contribution lines as CSV (UTF-8 with BOM, so spreadsheet programs read the
    Chinese headings)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            "费款所属期",
            "单位编号",
            "单位名称",
            "险种",
            "缴费基数",
            "单位缴费",
            "个人缴费",
            "划入个人账户",
            "状态",
            "类别",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.month,
                r.unit_code,
                _csv_safe(r.unit_name),
                r.insurance.value,
                r.base,
                r.employer,
                r.employee,
                r.to_account,
                r.status,
                r.kind,
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
