"""The contribution ledger's arithmetic (issue 14): plans, a month's 应缴, adjustments.

Pure: no database, no Twisted, no clock.  The store (:mod:`declare_app._ledger_store`)
reads rows, calls these functions and writes what they return.

* A person's **contribution plan** for one unit and insurance type is a list of
  :class:`PlanSegment` — from which month, until which month (open-ended while the
  enrolment is open), on which base.  Approval of 人员增加 / 人员险种增加 starts a
  segment, 人员减少 / 人员险种减少 ends them, 年度缴费基数申报 re-bases them from its
  month on.  Segments of one plan never overlap.
* The **monthly close** turns the plan of every person into that month's 应缴
  (费款所属期 ``aae003``): ``round(base × rate, 2)`` half-up, employer and employee
  parts separately (DOMAIN §2.3, :func:`~declare_app._contributions.monthly_contribution`),
  and for pension (110) the part credited to the personal account (§4.1).
* A closed month is never edited.  When an approval changes the plan of a closed
  month, the difference between what the plan now says and what the ledger holds for
  that month is booked as an **adjustment** (补缴 when more is owed, 退费 when less).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Final, Literal

from declare_app._contributions import (
    Insurance,
    MissingRateError,
    Rates,
    RateTable,
    monthly_contribution,
)
from declare_app._pension_account import PensionTables, account_credit
from declare_app._retirement import YearMonth

ZERO: Final = Decimal("0.00")


def month_text(month: YearMonth) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def parse_month(text: str) -> YearMonth:
    """A stored ``YYYY-MM`` month."""
    return YearMonth(int(text[:4]), int(text[5:7]))


def first_day(month: YearMonth) -> date:
    return date(month.year, month.month, 1)


# -- plans ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSegment:
    """Months ``start`` to ``end`` (inclusive; ``None``: still running) on ``base``."""

    start: YearMonth
    end: YearMonth | None
    base: Decimal

    def covers(self, month: YearMonth) -> bool:
        return self.start <= month and (self.end is None or month <= self.end)


def _ordered(segments: Iterable[PlanSegment]) -> tuple[PlanSegment, ...]:
    return tuple(sorted(segments, key=lambda s: s.start))


def plan_start(
    segments: Sequence[PlanSegment], start: YearMonth, base: Decimal
) -> tuple[PlanSegment, ...]:
    """Contributions (re)start in *start* on *base*: whatever the plan said from that
    month on is replaced by one open segment (a 续保 after a stop, a back-dated add)."""
    kept = plan_stop(segments, start.plus_months(-1))
    return _ordered((*kept, PlanSegment(start, None, base)))


def plan_stop(segments: Sequence[PlanSegment], last: YearMonth) -> tuple[PlanSegment, ...]:
    """No contributions after *last* (the month before the 停保年月)."""
    return _ordered(
        s if s.end is not None and s.end <= last else PlanSegment(s.start, last, s.base)
        for s in segments
        if s.start <= last
    )


def plan_rebase(
    segments: Sequence[PlanSegment], start: YearMonth, base: Decimal
) -> tuple[PlanSegment, ...]:
    """From *start* on, every month the plan covers is contributed on *base*; months
    the plan does not cover stay uncovered (a base declaration enrols nobody)."""
    out: list[PlanSegment] = []
    for s in segments:
        if s.end is not None and s.end < start:
            out.append(s)
        elif s.start >= start:
            out.append(PlanSegment(s.start, s.end, base))
        else:
            out.append(PlanSegment(s.start, start.plus_months(-1), s.base))
            out.append(PlanSegment(start, s.end, base))
    return _merged(out)


def _merged(segments: Iterable[PlanSegment]) -> tuple[PlanSegment, ...]:
    """Adjacent segments on the same base become one (so re-basing twice is a no-op)."""
    out: list[PlanSegment] = []
    for s in _ordered(segments):
        if (
            out
            and out[-1].base == s.base
            and out[-1].end is not None
            and out[-1].end.plus_months(1) == s.start
        ):
            out[-1] = PlanSegment(out[-1].start, s.end, s.base)
        else:
            out.append(s)
    return tuple(out)


def base_in(segments: Sequence[PlanSegment], month: YearMonth) -> Decimal | None:
    """The base the plan contributes *month* on, or ``None`` when it does not cover it."""
    for s in segments:
        if s.covers(month):
            return s.base
    return None


# -- a month's 应缴 -----------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """One person's month of one insurance type, in yuan (each part rounded to the fen)."""

    base: Decimal
    employer: Decimal
    employee: Decimal
    to_account: Decimal  # 划入个人账户: pension (110) only

    @property
    def total(self) -> Decimal:
        return self.employer + self.employee


NOTHING: Final = Due(ZERO, ZERO, ZERO, ZERO)


class RatesNotInForce(MissingRateError):
    """No figures in force for a month: the message names the year and the file."""

    def __init__(self, region: str, month: YearMonth, what: str, source: str) -> None:
        self.region = region
        self.month = month
        self.source = source
        where = source or "the rates file ([declare] rates_file)"
        super().__init__(
            f"no {what} in force for region {region} in {month_text(month)}: "
            f"add the {month.year} figures to {where}"
        )


def rates_in_force(
    table: RateTable,
    region: str,
    insurance: Insurance,
    month: YearMonth,
    *,
    risk_class: int | None,
) -> Rates:
    """The rates of *insurance* in force in *month*; :class:`RatesNotInForce` if none.

    Work injury (410) needs the unit's industry *risk_class*; a unit without one has no
    work-injury rate, which is refused the same way (V-RATE-02 makes every unit with a
    410 enrolment carry one)."""
    if insurance is Insurance.WORK_INJURY and risk_class is None:
        raise RatesNotInForce(
            region, month, "work-injury rate (the unit has no risk class)", table.source
        )
    try:
        return table.rates_for(
            region,
            insurance,
            first_day(month),
            risk_class=risk_class if insurance is Insurance.WORK_INJURY else None,
        )
    except MissingRateError:
        raise RatesNotInForce(region, month, f"{insurance} rate", table.source) from None


def month_due(base: Decimal, rates: Rates) -> Due:
    """``base × rates`` for one month, rounded per DOMAIN §2.3; pension also credits
    the personal account (§4.1)."""
    amounts = monthly_contribution(base, rates)
    to_account = account_credit(base, rates) if rates.insurance is Insurance.PENSION else ZERO
    return Due(base, amounts.employer, amounts.employee, to_account)


# -- adjustments --------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjustment:
    """What to book for a closed month: ``owed − booked``, part by part."""

    kind: Literal["arrears", "refund"]  # 补缴 | 退费
    base: Decimal  # the base the month is now owed on (0: no longer owed)
    employer: Decimal
    employee: Decimal
    to_account: Decimal

    @property
    def label(self) -> str:
        return ADJUSTMENT_LABELS[self.kind]


ADJUSTMENT_LABELS: Final = {"arrears": "补缴", "refund": "退费"}


def adjustment(owed: Due, booked: Sequence[Due]) -> Adjustment | None:
    """The adjustment that brings the *booked* lines of a closed month to *owed*;
    ``None`` when they agree already (so reconciling twice books nothing twice)."""
    employer = owed.employer - sum((b.employer for b in booked), ZERO)
    employee = owed.employee - sum((b.employee for b in booked), ZERO)
    to_account = owed.to_account - sum((b.to_account for b in booked), ZERO)
    if employer == employee == to_account == 0:
        return None
    kind: Literal["arrears", "refund"] = "arrears" if employer + employee >= 0 else "refund"
    return Adjustment(kind, owed.base, employer, employee, to_account)


# -- what is in force (``ssgate declare rates``) --------------------------------------------

# What ``ssgate init`` writes as the live rates file: the shape, commented, and no
# figure — a new installation refuses every month until the agency installs its own
# (``ssgate declare rates --install FILE``).  The demo installs its own demo figures.
RATES_TEMPLATE_FILE: Final = "rates_template.toml"


def rates_template() -> str:
    """The text of the figure-less rates file ``ssgate init`` writes."""
    return resources.files("declare_app").joinpath(RATES_TEMPLATE_FILE).read_text("utf-8")


@dataclass(frozen=True)
class FigureInForce:
    """One configured figure as it stands in a month, or why there is none."""

    what: str  # "110 企业职工基本养老保险", "base limits", "410 class 3", ...
    values: str  # "employer 0.16, employee 0.08, to account 0.08" — empty when missing
    period: str  # "2026-01 to 2026-12", "from 2024-01"
    verified: bool
    source: str
    missing: str = ""  # why nothing is in force, naming the year and the file

    @property
    def in_force(self) -> bool:
        return not self.missing


def _period(start: date, until: date | None) -> str:
    first = f"{start.year:04d}-{start.month:02d}"
    return f"from {first}" if until is None else f"{first} to {until.year:04d}-{until.month:02d}"


def figures_in_force(table: RateTable, region: str, month: YearMonth) -> tuple[FigureInForce, ...]:
    """Every rate, base limit and work-injury class rate of *region* in *month*."""
    on = first_day(month)
    where = table.source or "the rates file ([declare] rates_file)"
    missing = f"nothing in force in {month_text(month)}: add the {month.year} figures to {where}"
    out = []
    for insurance in (
        Insurance.PENSION,
        Insurance.UNEMPLOYMENT,
        Insurance.MEDICAL,
        Insurance.MATERNITY,
    ):
        what = f"{insurance.value} {insurance.label}"
        try:
            r = table.rates_for(region, insurance, on)
        except MissingRateError:
            out.append(FigureInForce(what, "", "", False, "", missing))
            continue
        values = f"employer {r.employer}, employee {r.employee}"
        if insurance is Insurance.PENSION:
            values += f", to account {r.to_account}"
        period = _period(r.effective_from, r.effective_until)
        out.append(FigureInForce(what, values, period, r.verified, r.source))
    try:
        limits = table.base_limits(region, on)
    except MissingRateError:
        out.append(FigureInForce("base floor/ceiling", "", "", False, "", missing))
    else:
        out.append(
            FigureInForce(
                "base floor/ceiling",
                f"floor {limits.floor}, ceiling {limits.ceiling}",
                _period(limits.effective_from, limits.effective_until),
                limits.verified,
                limits.source,
            )
        )
    what = f"{Insurance.WORK_INJURY.value} {Insurance.WORK_INJURY.label} by risk class"
    try:
        class_rates = [
            table.rates_for(region, Insurance.WORK_INJURY, on, risk_class=k) for k in range(1, 9)
        ]
    except MissingRateError:
        out.append(FigureInForce(what, "", "", False, "", missing))
    else:
        first = class_rates[0]
        out.append(
            FigureInForce(
                what,
                ", ".join(f"{k}: {r.employer}" for k, r in enumerate(class_rates, 1)),
                _period(first.effective_from, first.effective_until),
                first.verified,
                first.source,
            )
        )
    return tuple(out)


def interest_in_force(tables: PensionTables, year: int, *, source: str) -> FigureInForce:
    """The 记账利率 of *year* (DOMAIN §4.2) as a figure; a year not yet published says so
    plainly (the account statement then credits without interest)."""
    what = f"记账利率 {year}"
    found = tables.interest_rates.get(year)
    if found is None:
        return FigureInForce(
            what, "", "", False, "", f"not published yet: add the {year} rate to {source}"
        )
    return FigureInForce(
        what,
        f"{found.rate} ({found.status})",
        f"{year}-01 to {year}-12",
        found.verified,
        found.source,
    )


def declaration_month(payload: Mapping[str, object], fallback: YearMonth) -> YearMonth:
    """The month whose figures a declaration uses: its start, stop or from month, a
    年度缴费基数申报's January, else *fallback* (the month it was filed)."""
    for key in ("start_month", "stop_month", "from_month"):
        value = payload.get(key)
        if isinstance(value, str) and len(value) == 7 and value[4] == "-":
            try:
                return parse_month(value)
            except ValueError:
                continue
    year = payload.get("year")
    if isinstance(year, str) and year.isdigit() and len(year) == 4:
        return YearMonth(int(year), 1)
    return fallback


def unverified_in_force(table: RateTable, month: YearMonth) -> tuple[str, ...]:
    """What is in force in *month* (any region) but not verified: for staff pages."""
    return tuple(
        f"{region} {f.what}"
        for region in sorted(table.regions)
        for f in figures_in_force(table, region, month)
        if f.in_force and not f.verified
    )
