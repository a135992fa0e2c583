"""Insurance types, effective-dated contribution rates and base limits (DOMAIN.md §2).

This module owns the rule arithmetic of a monthly contribution: which insurance types
exist (AAE140 codes), the person-level status codes (AAC031, AAC008), and the per-region
rate and base-limit tables, read from configuration and never written into the logic.
It is pure: no I/O except reading its own packaged demo file, no clock, no database.

Money is :class:`decimal.Decimal` throughout.  Rounding (DOMAIN §2.3, marked
[inference] there): each amount is ``round(base × rate, 2)`` half-up to the fen, the
employer and employee parts separately; the base itself is not rounded to whole yuan
(some regions do that first — a region that does must clamp and round its bases before
calling :func:`monthly_contribution`).

Configuration shape (a TOML document, or the plain mapping one parses to)::

    [region.330682]
    name = "上虞"

    [[region.330682.rate]]            # one per insurance type and effective period
    insurance = "110"
    from = 2024-01-01                 # first day of a month
    until = 2024-12-31                # optional: last day of a month; else until the next entry
    employer = "0.16"                 # fractions of the base, as strings or numbers
    employee = "0.08"
    to_account = "0.08"               # 110 only; default: the employee rate (§4.1)
    verified = false                  # default false: DOMAIN asks every value be checked
    source = "…"                      # optional: the notice the values come from

    [[region.330682.base_limit]]
    from = 2024-01-01
    floor = "4812"
    ceiling = "24930"

    [[region.330682.work_injury]]     # the 8 industry risk classes' base rates
    from = 2024-01-01
    class_rates = ["0.002", "0.004", "0.007", "0.009", "0.011", "0.013", "0.016", "0.019"]

Every mistake is a :class:`RatesConfigError` naming the source, the key and the form
allowed, in the style of ``ssgate.toml`` validation.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from importlib import resources
from itertools import pairwise
from typing import Any, Final, Literal, NamedTuple, TypeVar

FEN: Final = Decimal("0.01")

# -- codes ------------------------------------------------------------------------------


class Insurance(StrEnum):
    """险种类型 (AAE140).  120 (机关事业单位养老) is out of scope (DOMAIN §2.1)."""

    PENSION = "110"
    UNEMPLOYMENT = "210"
    MEDICAL = "310"
    WORK_INJURY = "410"
    MATERNITY = "510"

    @property
    def label(self) -> str:
        return _INSURANCE_LABELS[self]

    @property
    def employee_pays(self) -> bool:
        """False for work injury and maternity: the employee pays nothing (§2.1, §2.2)."""
        return self not in (Insurance.WORK_INJURY, Insurance.MATERNITY)


_INSURANCE_LABELS: Final[Mapping[Insurance, str]] = {
    Insurance.PENSION: "企业职工基本养老保险",
    Insurance.UNEMPLOYMENT: "失业保险",
    Insurance.MEDICAL: "职工基本医疗保险",
    Insurance.WORK_INJURY: "工伤保险",
    Insurance.MATERNITY: "生育保险",
}

# 国办发〔2019〕10号 merged maternity into medical; the two are enrolled and reduced
# together (V-INS-01), though many systems keep 510 as its own line.
MEDICAL_AND_MATERNITY: Final = frozenset({Insurance.MEDICAL, Insurance.MATERNITY})


def missing_companions(codes: Iterable[Insurance]) -> frozenset[Insurance]:
    """The types that must be added or removed along with *codes* (rule V-INS-01)."""
    chosen = frozenset(codes)
    if chosen & MEDICAL_AND_MATERNITY:
        return MEDICAL_AND_MATERNITY - chosen
    return frozenset()


class PaymentStatus(StrEnum):
    """个人缴费状态 (AAC031)."""

    PAYING = "1"
    SUSPENDED = "2"
    TERMINATED = "3"

    @property
    def label(self) -> str:
        return {"1": "参保缴费", "2": "暂停缴费", "3": "终止缴费"}[self.value]


class EnrolmentStatus(StrEnum):
    """人员参保状态 (AAC008).  Code 3 ("中断—发税务") is local to one system; not used."""

    NOT_INSURED = "0"
    NORMAL = "1"
    INTERRUPTED = "2"
    TERMINATED = "4"

    @property
    def label(self) -> str:
        return {"0": "未参保", "1": "正常参保", "2": "中断", "4": "终止参保"}[self.value]


# -- errors -----------------------------------------------------------------------------


class RatesConfigError(ValueError):
    """A rate table is malformed; the message names the source, the key and the form."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


class MissingRateError(LookupError):
    """No configured rate or limit covers the region and date (rule V-RATE-01)."""


class ContributionBaseError(ValueError):
    """A declared base is not a positive amount in fen (rule V-BASE-02)."""


# -- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """Rates of one insurance type in one region for one effective period."""

    insurance: Insurance
    employer: Decimal
    employee: Decimal
    to_account: Decimal  # fraction of the base credited to the pension account; 0 but for 110
    effective_from: date
    effective_until: date | None = None
    verified: bool = False
    source: str = ""


@dataclass(frozen=True)
class BaseLimits:
    """Published monthly base floor and ceiling (元/月), stored as published (§2.3)."""

    floor: Decimal
    ceiling: Decimal
    effective_from: date
    effective_until: date | None = None
    verified: bool = False
    source: str = ""


@dataclass(frozen=True)
class WorkInjuryRates:
    """The base rate of each industry risk class 1-8 (人社部发〔2015〕71号, §2.2)."""

    class_rates: tuple[Decimal, ...]
    effective_from: date
    effective_until: date | None = None
    verified: bool = False
    source: str = ""

    def for_class(self, risk_class: int) -> Rates:
        """The class's base rate as :class:`Rates`; the agency's per-unit float is not here."""
        if not 1 <= risk_class <= len(self.class_rates):
            raise ValueError(f"risk class must be 1 to {len(self.class_rates)}, got {risk_class}")
        return Rates(
            insurance=Insurance.WORK_INJURY,
            employer=self.class_rates[risk_class - 1],
            employee=Decimal(0),
            to_account=Decimal(0),
            effective_from=self.effective_from,
            effective_until=self.effective_until,
            verified=self.verified,
            source=self.source,
        )


@dataclass(frozen=True)
class RegionRates:
    """Everything configured for one 统筹区; each tuple is sorted by ``effective_from``."""

    code: str
    name: str
    rates: Mapping[Insurance, tuple[Rates, ...]]
    base_limits: tuple[BaseLimits, ...]
    work_injury: tuple[WorkInjuryRates, ...]


_D = TypeVar("_D", Rates, BaseLimits, WorkInjuryRates)


def _effective(entries: Sequence[_D], on_date: date) -> _D | None:
    """The last entry starting on or before *on_date*, if it has not ended by then."""
    if isinstance(on_date, datetime) or not isinstance(on_date, date):
        raise TypeError(f"on_date must be a date, not {type(on_date).__name__}")
    found = None
    for entry in entries:
        if entry.effective_from <= on_date:
            found = entry
    if found is None or (found.effective_until is not None and on_date > found.effective_until):
        return None
    return found


@dataclass(frozen=True)
class RateTable:
    """Rates and base limits of every configured region, looked up by date.

    Look a monthly contribution up by the first day of its 费款所属期 (``aae003``):
    effective periods always start on the first day of a month and end on the last.
    """

    regions: Mapping[str, RegionRates]
    # The file the table was read from, named when a figure is missing; not part of
    # the figures, so two tables with the same figures compare equal.
    source: str = field(default="", compare=False)

    def _region(self, region: str) -> RegionRates:
        found = self.regions.get(region)
        if found is None:
            raise MissingRateError(f"no rates are configured for region {region!r} (V-RATE-01)")
        return found

    def rates_for(
        self,
        region: str,
        insurance: Insurance,
        on_date: date,
        *,
        risk_class: int | None = None,
    ) -> Rates:
        """The rates in force; work injury (410) needs the unit's *risk_class* (1-8)."""
        insurance = Insurance(insurance)
        reg = self._region(region)
        if insurance is Insurance.WORK_INJURY:
            if risk_class is None:
                raise ValueError("work-injury rates depend on the unit's risk_class (1-8)")
            injury = _effective(reg.work_injury, on_date)
            if injury is None:
                raise MissingRateError(
                    f"no work-injury rates for region {region} on {on_date} (V-RATE-01)"
                )
            return injury.for_class(risk_class)
        if risk_class is not None:
            raise ValueError(f"risk_class applies to work injury (410) only, not {insurance}")
        found = _effective(reg.rates.get(insurance, ()), on_date)
        if found is None:
            raise MissingRateError(
                f"no {insurance} ({insurance.label}) rate for region {region} "
                f"on {on_date} (V-RATE-01)"
            )
        return found

    def base_limits(self, region: str, on_date: date) -> BaseLimits:
        """The base floor and ceiling in force."""
        found = _effective(self._region(region).base_limits, on_date)
        if found is None:
            raise MissingRateError(
                f"no base floor/ceiling for region {region} on {on_date} (V-RATE-01)"
            )
        return found


# -- base clamping and contributions (§2.3) ---------------------------------------------


def _fen(amount: Decimal) -> Decimal:
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)


def _at_most_places(number: Decimal, places: int) -> bool:
    """True when *number* is finite and has no non-zero digit below ``10**-places``.

    Read from the digits rather than by quantizing, which fails on numbers longer than
    the context precision.
    """
    if not number.is_finite():
        return False
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    below = -exponent - places
    return below <= 0 or not any(digits[-below:])


def _check_amount(value: object, what: str, error: type[ValueError]) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite() or value < 0:
        raise error(f"{what} must be a finite amount of at least 0, got {value}")
    if not _at_most_places(value, 2):
        raise error(f"{what} has more than 2 decimal places: {value}")
    return value


class ClampResult(NamedTuple):
    """The base to contribute on, and which limit replaced the declared wage, if any."""

    base: Decimal
    clamped: Literal["floor", "ceiling"] | None


def clamp_base(declared: Decimal, limits: BaseLimits) -> ClampResult:
    """Rule V-BASE-01: a wage below the floor is contributed at the floor, above the
    ceiling at the ceiling; the limits themselves are inside (§2.3).

    A declared base that is not positive or has fractions of a fen is refused
    (:class:`ContributionBaseError`, rule V-BASE-02) rather than clamped.
    """
    _check_amount(declared, "declared base", ContributionBaseError)
    if declared == 0:
        raise ContributionBaseError("declared base must be more than 0")
    if declared < limits.floor:
        return ClampResult(limits.floor, "floor")
    if declared > limits.ceiling:
        return ClampResult(limits.ceiling, "ceiling")
    return ClampResult(declared, None)


class Contribution(NamedTuple):
    """One month's amounts for one insurance type, each rounded half-up to the fen."""

    employer: Decimal
    employee: Decimal


def monthly_contribution(base: Decimal, rates: Rates) -> Contribution:
    """``(round(base × employer rate, 2), round(base × employee rate, 2))``, half-up."""
    _check_amount(base, "base", ContributionBaseError)
    with localcontext() as ctx:
        ctx.prec = 50  # products of a fen amount and a 6-place rate are exact
        return Contribution(_fen(base * rates.employer), _fen(base * rates.employee))


# -- configuration ----------------------------------------------------------------------

_REGION = re.compile(r"[1-9][0-9]{5}")
_MAX_RATE_PLACES = 6

_T = TypeVar("_T")


class _Invalid(Exception):
    """Raised by a field parser; carries the allowed form."""


def _decimal(value: object, places: int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid
    try:
        # A TOML float goes through its shortest repr, so 0.16 reads as Decimal("0.16").
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise _Invalid from None
    if not _at_most_places(number, places):
        raise _Invalid
    return number


def _fraction(value: object) -> Decimal:
    number = _decimal(value, _MAX_RATE_PLACES)
    if not 0 <= number < 1:
        raise _Invalid
    return number


_FRACTION_FORM = (
    f'a fraction from 0 up to 1 with at most {_MAX_RATE_PLACES} decimal places, such as "0.16" '
    "(16% is written 0.16)"
)


def _money(value: object) -> Decimal:
    number = _decimal(value, 2)
    if number <= 0:
        raise _Invalid
    return number


_MONEY_FORM = 'an amount in yuan above 0 with at most 2 decimal places, such as "4812"'


def _date(value: object) -> date:
    if isinstance(value, datetime):
        raise _Invalid
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise _Invalid from None
    raise _Invalid


def _month_start(value: object) -> date:
    day = _date(value)
    if day.day != 1:
        raise _Invalid
    return day


def _month_end(value: object) -> date:
    day = _date(value)
    if (day + timedelta(days=1)).day != 1:
        raise _Invalid
    return day


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid
    return value


class _TableReader:
    """Reads the keys of one table, naming ``source`` and the dotted key in every error."""

    def __init__(self, raw: object, *, source: str, key: str, allowed: Iterable[str]) -> None:
        self.source = source
        self.key = key
        if not isinstance(raw, Mapping):
            raise RatesConfigError(source, key, "must be a table")
        self.raw: Mapping[str, Any] = raw
        allowed = tuple(allowed)
        for name in raw:
            if name not in allowed:
                where = key or "the top level"
                raise RatesConfigError(
                    source, self.path(name), f"unknown key; {where} takes: {', '.join(allowed)}"
                )

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def fail(self, name: str, problem: str) -> RatesConfigError:
        return RatesConfigError(self.source, self.path(name), problem)

    def get(self, name: str, parse: Callable[[object], _T], form: str, default: _T) -> _T:
        if name not in self.raw:
            return default
        return self.require(name, parse, form)

    def require(self, name: str, parse: Callable[[object], _T], form: str) -> _T:
        if name not in self.raw:
            raise self.fail(name, f"is required; expected {form}")
        value = self.raw[name]
        try:
            return parse(value)
        except _Invalid:
            raise self.fail(name, f"{value!r} is invalid; expected {form}") from None

    def list_of_tables(self, name: str) -> list[tuple[str, object]]:
        """``(key, raw table)`` for each ``[[name]]``, keys numbered from #1 as in the file."""
        if name not in self.raw:
            return []
        items = self.raw[name]
        if not isinstance(items, list):
            raise self.fail(name, f"must be an array of tables ([[{self.path(name)}]])")
        return [(f"{self.path(name)}#{i}", item) for i, item in enumerate(items, 1)]


_PERIOD_KEYS = ("from", "until", "verified", "source")
_FROM_FORM = "the first day of a month, such as 2024-01-01"
_UNTIL_FORM = "the last day of a month, such as 2024-12-31"


def _period(reader: _TableReader) -> dict[str, Any]:
    start = reader.require("from", _month_start, _FROM_FORM)
    until = reader.get("until", _month_end, _UNTIL_FORM, None)
    if until is not None and until < start:
        raise reader.fail("until", f"{until} is before from ({start})")
    return {
        "effective_from": start,
        "effective_until": until,
        "verified": reader.get("verified", _bool, "true or false", False),
        "source": reader.get("source", _text, "a string naming the notice", ""),
    }


def _in_order(entries: list[tuple[str, _D]], *, source: str) -> tuple[_D, ...]:
    """Sort by start; refuse two periods that start together or overlap."""
    entries.sort(key=lambda e: e[1].effective_from)
    for (_, earlier), (key, later) in pairwise(entries):
        if later.effective_from == earlier.effective_from:
            raise RatesConfigError(
                source, f"{key}.from", f"{later.effective_from} starts another entry already"
            )
        if earlier.effective_until is not None and earlier.effective_until >= later.effective_from:
            raise RatesConfigError(
                source,
                f"{key}.from",
                f"{later.effective_from} overlaps the entry running until "
                f"{earlier.effective_until}",
            )
    return tuple(entry for _, entry in entries)


def _insurance(value: object) -> Insurance:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Invalid
    try:
        found = Insurance(value)
    except ValueError:
        raise _Invalid from None
    if found is Insurance.WORK_INJURY:
        raise _Invalid
    return found


_INSURANCE_FORM = (
    '"110", "210", "310" or "510" (work injury 410 goes by risk class in [[…work_injury]])'
)


def _parse_rate(raw: object, *, source: str, key: str) -> Rates:
    reader = _TableReader(
        raw,
        source=source,
        key=key,
        allowed=("insurance", "employer", "employee", "to_account", *_PERIOD_KEYS),
    )
    insurance = reader.require("insurance", _insurance, _INSURANCE_FORM)
    employer = reader.require("employer", _fraction, _FRACTION_FORM)
    if insurance.employee_pays:
        employee = reader.require("employee", _fraction, _FRACTION_FORM)
    else:
        employee = reader.get("employee", _fraction, _FRACTION_FORM, Decimal(0))
        if employee != 0:
            raise reader.fail(
                "employee", f"must be 0: employees pay no {insurance.label} ({insurance})"
            )
    if insurance is Insurance.PENSION:
        to_account = reader.get("to_account", _fraction, _FRACTION_FORM, employee)
        if to_account > employer + employee:
            raise reader.fail("to_account", "is more than the employer and employee rates together")
    elif "to_account" in reader.raw:
        raise reader.fail("to_account", "applies to pension (110) only")
    else:
        to_account = Decimal(0)
    return Rates(
        insurance=insurance,
        employer=employer,
        employee=employee,
        to_account=to_account,
        **_period(reader),
    )


def _parse_base_limit(raw: object, *, source: str, key: str) -> BaseLimits:
    reader = _TableReader(raw, source=source, key=key, allowed=("floor", "ceiling", *_PERIOD_KEYS))
    floor = reader.require("floor", _money, _MONEY_FORM)
    ceiling = reader.require("ceiling", _money, _MONEY_FORM)
    if ceiling < floor:
        raise reader.fail("ceiling", f"{ceiling} is below the floor {floor}")
    return BaseLimits(floor=floor, ceiling=ceiling, **_period(reader))


def _eight_fractions(value: object) -> tuple[Decimal, ...]:
    if not isinstance(value, list) or len(value) != 8:
        raise _Invalid
    rates = tuple(_fraction(v) for v in value)
    if list(rates) != sorted(rates):
        raise _Invalid
    return rates


def _parse_work_injury(raw: object, *, source: str, key: str) -> WorkInjuryRates:
    reader = _TableReader(raw, source=source, key=key, allowed=("class_rates", *_PERIOD_KEYS))
    rates = reader.require(
        "class_rates",
        _eight_fractions,
        "a list of 8 fractions, class 1 (lowest risk) first, never decreasing",
    )
    return WorkInjuryRates(class_rates=rates, **_period(reader))


def _parse_region(code: str, raw: object, *, source: str) -> RegionRates:
    key = f"region.{code}"
    if not _REGION.fullmatch(code):
        raise RatesConfigError(source, key, "region must be a 6-digit code such as 330682")
    reader = _TableReader(
        raw, source=source, key=key, allowed=("name", "rate", "base_limit", "work_injury")
    )
    by_type: dict[Insurance, list[tuple[str, Rates]]] = {}
    for item_key, item in reader.list_of_tables("rate"):
        rate = _parse_rate(item, source=source, key=item_key)
        by_type.setdefault(rate.insurance, []).append((item_key, rate))
    limits = [
        (k, _parse_base_limit(item, source=source, key=k))
        for k, item in reader.list_of_tables("base_limit")
    ]
    injury = [
        (k, _parse_work_injury(item, source=source, key=k))
        for k, item in reader.list_of_tables("work_injury")
    ]
    return RegionRates(
        code=code,
        name=reader.get("name", _text, "a string", ""),
        rates={ins: _in_order(entries, source=source) for ins, entries in by_type.items()},
        base_limits=_in_order(limits, source=source),
        work_injury=_in_order(injury, source=source),
    )


def parse_rates(data: Mapping[str, Any], *, source: str) -> RateTable:
    """Build a :class:`RateTable` from a parsed mapping; *source* names it in errors."""
    reader = _TableReader(data, source=source, key="", allowed=("region",))
    regions = reader.raw.get("region", {})
    if not isinstance(regions, Mapping):
        raise RatesConfigError(source, "region", "must be a table of regions ([region.330682])")
    return RateTable(
        {code: _parse_region(str(code), raw, source=source) for code, raw in regions.items()},
        source=source,
    )


def load_rates_toml(text: str, *, source: str) -> RateTable:
    """Parse TOML text holding ``[region.…]`` tables; *source* names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RatesConfigError(source, "", f"not valid TOML: {e}") from None
    return parse_rates(data, source=source)


DEMO_330682_FILE: Final = "rates_330682_demo.toml"
DEMO_330682: Final[str] = (
    resources.files("declare_app").joinpath(DEMO_330682_FILE).read_text("utf-8")
)


def demo_rate_table() -> RateTable:
    """The demo values for region 330682 (DOMAIN §2.2-§2.3), all ``verified = false``."""
    return load_rates_toml(DEMO_330682, source=f"declare_app/{DEMO_330682_FILE}")
