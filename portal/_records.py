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

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Final

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
    """One year's lines (``rows``, of ``year``) and the totals of every line the
    filter matches (``lines`` of them, in every year of ``years``)."""

    rows: tuple[ContributionRow, ...]
    months: int
    employer: Decimal
    employee: Decimal
    lines: int = 0
    # (year, lines under the filter) for every year that has any, newest first.
    years: tuple[tuple[int, int], ...] = ()
    year: int | None = None  # the year ``rows`` are of


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
        year: int | None = None,
    ) -> Contributions:
        """The person's ledger (each unit), with the adjustments (补缴 / 退费) of closed
        months, a year at a time: the totals over every line the filter matches (summed
        by the database), the years that have lines with their counts (newest first),
        and the rows of one year, oldest first — *year*, or the newest year with lines
        when it is None (a year without lines gives no rows).  Filters are exact
        values."""
        filters = _LineFilters(from_month, to_month, insurance, unit_code)
        lines = _lines(person_number, filters).subquery("lines")
        ln = lines.c
        totals = conn.execute(
            select(
                func.count(),
                func.count(distinct(case((ln.kind == "regular", ln.month)))),
                func.coalesce(func.sum(ln.employer_fen), 0),
                func.coalesce(func.sum(ln.employee_fen), 0),
            ).select_from(lines)
        ).one()
        year_of = func.substr(ln.month, 1, 4)
        years = tuple(
            (int(r[0]), int(r[1]))
            for r in conn.execute(
                select(year_of, func.count()).select_from(lines).group_by(year_of)
            )
        )
        years = tuple(sorted(years, reverse=True))
        shown = year if year is not None else (years[0][0] if years else None)
        rows = () if shown is None else self.year_rows(conn, person_number, filters, shown)
        return Contributions(
            rows=rows,
            months=int(totals[1]),
            employer=_yuan(totals[2]),
            employee=_yuan(totals[3]),
            lines=int(totals[0]),
            years=years,
            year=shown,
        )

    def year_rows(
        self,
        conn: Connection,
        person_number: str,
        filters: _LineFilters,
        year: int,
        last_year: int | None = None,
    ) -> tuple[ContributionRow, ...]:
        """The lines of one year under *filters*, oldest first (at most twelve months of
        each unit and insurance, plus adjustments: a bounded read of the person's
        ``(person_number, month)`` range)."""
        lines = _lines(person_number, filters.within(year, last_year)).subquery("lines")
        ln, u = lines.c, units.c
        query = (
            select(lines, u.name.label("unit_name"))
            .join_from(lines, units, u.code == ln.unit_code)
            .order_by(ln.month, ln.unit_code, ln.insurance, ln.kind)
        )
        return tuple(
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
            for r in conn.execute(query)
        )

    def csv_years(
        self, conn: Connection, person_number: str, filters: _LineFilters
    ) -> tuple[tuple[int, int], ...]:
        """The CSV's pieces, oldest first: spans of consecutive years with lines under
        *filters*, each of at most :data:`CSV_PIECE_LINES` lines (a larger year is a
        piece of its own), so a 30-year ledger is two reads, not thirty."""
        lines = _lines(person_number, filters).subquery("lines")
        year_of = func.substr(lines.c.month, 1, 4)
        counts = sorted(
            (int(r[0]), int(r[1]))
            for r in conn.execute(
                select(year_of, func.count()).select_from(lines).group_by(year_of)
            )
        )
        spans: list[tuple[int, int]] = []
        size = 0
        for year, n in counts:
            if spans and size + n <= CSV_PIECE_LINES:
                spans[-1] = (spans[-1][0], year)
                size += n
            else:
                spans.append((year, year))
                size = n
        return tuple(spans)

    def csv_piece(
        self,
        conn: Connection,
        person_number: str,
        filters: _LineFilters,
        span: tuple[int, int],
    ) -> bytes:
        """The lines of a span of years as CSV rows (no heading), built off the
        reactor."""
        return csv_rows(self.year_rows(conn, person_number, filters, span[0], span[1]))

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


@dataclass(frozen=True)
class _LineFilters:
    """The contributions filters (exact values; months ``YYYY-MM``, inclusive)."""

    from_month: str | None = None
    to_month: str | None = None
    insurance: str | None = None
    unit_code: str | None = None

    def within(self, year: int, last_year: int | None = None) -> _LineFilters:
        """The same filters narrowed to *year* (to *last_year*, when given)."""
        first = f"{year:04d}-01"
        last = f"{year if last_year is None else last_year:04d}-12"
        return replace(
            self,
            from_month=max(first, self.from_month or first),
            to_month=min(last, self.to_month or last),
        )


LineFilters = _LineFilters


def _lines(person_number: str, filters: _LineFilters) -> Any:
    """The person's ledger lines and adjustments under *filters* (a UNION ALL), each
    half a range of the person's own index."""
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
    if filters.from_month is not None:
        regular = regular.where(c.month >= filters.from_month)
        later = later.where(a.month >= filters.from_month)
    if filters.to_month is not None:
        regular = regular.where(c.month <= filters.to_month)
        later = later.where(a.month <= filters.to_month)
    if filters.insurance is not None:
        regular = regular.where(c.insurance == filters.insurance)
        later = later.where(a.insurance == filters.insurance)
    if filters.unit_code is not None:
        regular = regular.where(c.unit_code == filters.unit_code)
        later = later.where(a.unit_code == filters.unit_code)
    return union_all(regular, later)


def _yuan(fen: Any) -> Decimal:
    # Exact: a whole number of fen is a Decimal with two places (no division, no
    # rounding); called four times a line, 1,800 lines for 30 years.
    return Decimal(int(fen or 0)).scaleb(-2)


# Lines per piece of the streamed CSV (consecutive years together, up to this many):
# a whole working life (45 years of five insurances, 2,700 lines, some 250 KB) is one
# read, as each read is a transaction on the pool; only a longer history (transfers,
# corrections) is read in more pieces, one in memory at a time.
CSV_PIECE_LINES: Final = 5_000
CSV_HEADING: Final = (
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
)


def csv_heading() -> bytes:
    """The CSV's first piece: the BOM (spreadsheet programs then read the Chinese
    headings as UTF-8) and the heading row."""
    return ("\ufeff" + ",".join(CSV_HEADING) + "\r\n").encode("utf-8")


def csv_rows(rows: Sequence[ContributionRow]) -> bytes:
    """Contribution lines as CSV rows (UTF-8, no heading)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(
        (
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
        )
        for r in rows
    )
    return out.getvalue().encode("utf-8")


def rows_csv(rows: Sequence[ContributionRow]) -> bytes:
    """The contribution lines as one CSV file (heading and rows)."""
    return csv_heading() + csv_rows(rows)


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
