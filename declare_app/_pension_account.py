"""The pension personal account (养老个人帐户, DOMAIN.md §4): crediting, the yearly
记账利率, the year-end statement (对帐单) and the account part of a pension.

Pure: no I/O except reading its own packaged default table, no clock, no database.
Money is :class:`decimal.Decimal`; every amount is rounded half-up to the fen.

Where DOMAIN is silent on rounding, the choices are:

* interest on the opening balance and interest on the year's credits are each rounded
  once, on the exact total — not month by month.  The §4.3 worked example needs this:
  rounding each month's interest gives 122.61 instead of its 122.62;
* 计发月数 between whole ages is rounded half-up to one decimal (the two Jinan values
  DOMAIN cites, 138.4 and 194.6, are given that way) — [inference];
* pensions are rounded half-up to the fen.

The tables live in configuration (``pension_account.toml`` is shipped as the default),
read in the same style as the contribution rates::

    [[interest_rate]]
    year = 2024
    rate = "0.0262"
    status = "official"      # or "reported": not yet confirmed
    source = "…"             # optional
    verified = false         # optional, default false: checked against the announcement

    [payout]
    month_level_from = 2025-01-01

    [payout.months]
    60 = 139
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from importlib import resources
from itertools import pairwise
from typing import Any, Final, Literal

from declare_app._contributions import (
    _FRACTION_FORM,
    _FROM_FORM,
    ContributionBaseError,
    Insurance,
    MissingRateError,
    Rates,
    RatesConfigError,
    _bool,
    _check_amount,
    _fen,
    _fraction,
    _Invalid,
    _month_start,
    _TableReader,
    _text,
)

# -- crediting (§4.1) -------------------------------------------------------------------


def account_credit(base: Decimal, rates: Rates) -> Decimal:
    """What one month's pension contribution credits to the personal account.

    Since 2006 (国发〔2005〕38号) that is 8% of the individual base — the whole employee
    contribution — and nothing of the employer's, which goes to the pooled fund.  The
    fraction is the pension rates' ``to_account`` (configured, by default the employee
    rate), so earlier provincial rules can be configured too.
    """
    if rates.insurance is not Insurance.PENSION:
        raise ValueError(f"only pension (110) is credited to the account, not {rates.insurance}")
    _check_amount(base, "base", ContributionBaseError)
    with localcontext() as ctx:
        ctx.prec = 50
        return _fen(base * rates.to_account)


# -- the year-end statement (§4.3) ------------------------------------------------------


@dataclass(frozen=True)
class AccountStatementLine:
    """One month of the statement: a credit in month *m* earns ``13 − m`` months."""

    month: int
    credit: Decimal
    interest_months: int  # 计息月数
    product: Decimal  # 积数: credit × interest_months, exact


@dataclass(frozen=True)
class AccountStatement:
    """A year of the account: ``closing = opening + credited + interest`` exactly."""

    year: int
    rate: Decimal
    opening: Decimal  # 上年末累计储存额
    credited: Decimal  # 本年个人缴费记账额
    interest_on_opening: Decimal
    interest_on_new: Decimal
    interest: Decimal  # 本年利息 = the two parts above
    closing: Decimal  # 本年末累计储存额
    lines: tuple[AccountStatementLine, ...]

    @property
    def months_credited(self) -> int:
        """本年缴费月数: months with a credit."""
        return sum(1 for line in self.lines if line.credit > 0)


def _credits_by_month(
    monthly_credits: Mapping[int, Decimal] | Sequence[Decimal],
) -> dict[int, Decimal]:
    if isinstance(monthly_credits, Mapping):
        unknown = [m for m in monthly_credits if m not in range(1, 13)]
        if unknown:
            raise ValueError(f"months must be 1 to 12, got {unknown}")
        given = dict(monthly_credits)
    else:
        if len(monthly_credits) != 12:
            raise ValueError(f"need 12 monthly credits, got {len(monthly_credits)}")
        given = dict(enumerate(monthly_credits, 1))
    return {
        m: _check_amount(given.get(m, Decimal("0.00")), f"credit of month {m}", ValueError)
        for m in range(1, 13)
    }


def annual_statement(
    opening_balance: Decimal,
    monthly_credits: Mapping[int, Decimal] | Sequence[Decimal],
    year: int,
    rate: Decimal,
) -> AccountStatement:
    """The year-end interest computation of DOMAIN §4.3 (month-product method)::

        interest_on_opening = opening × r
        interest_on_new     = Σ credit_m × r × (13 − m) / 12     (m = 1..12)
        closing             = opening + Σ credit_m + both interests

    *monthly_credits* maps month 1-12 to that month's credit (missing months credit
    nothing), or lists all twelve.  *rate* is the year's 记账利率 as a fraction.  Each
    interest part is rounded half-up to the fen once, on its exact total.

    The ``13 − m`` weighting (a January credit earns 12 months) is DOMAIN's, marked
    [recalled — verify against 劳办发〔1997〕116号 / local rule].
    """
    _check_amount(opening_balance, "opening balance", ValueError)
    if not isinstance(rate, Decimal) or not rate.is_finite() or not 0 <= rate < 1:
        raise ValueError(f"rate must be a Decimal fraction from 0 up to 1, got {rate!r}")
    credits = _credits_by_month(monthly_credits)
    lines = tuple(
        AccountStatementLine(m, c, 13 - m, c * (13 - m)) for m, c in sorted(credits.items())
    )
    with localcontext() as ctx:
        ctx.prec = 50  # exact for the products; the one division by 12 is far below a fen
        credited = sum((line.credit for line in lines), Decimal("0.00"))
        on_opening = _fen(opening_balance * rate)
        on_new = _fen(sum((line.product for line in lines), Decimal(0)) * rate / 12)
        interest = on_opening + on_new
        return AccountStatement(
            year=year,
            rate=rate,
            opening=opening_balance,
            credited=credited,
            interest_on_opening=on_opening,
            interest_on_new=on_new,
            interest=interest,
            closing=opening_balance + credited + interest,
            lines=lines,
        )


# -- pension at retirement (§4.4) -------------------------------------------------------


def account_pension(balance: Decimal, payout_months: Decimal) -> Decimal:
    """个人账户养老金 = account balance ÷ 计发月数, half-up to the fen."""
    _check_amount(balance, "account balance", ValueError)
    if not isinstance(payout_months, Decimal) or not payout_months > 0:
        raise ValueError(f"payout months must be a positive Decimal, got {payout_months!r}")
    with localcontext() as ctx:
        ctx.prec = 50
        return _fen(balance / payout_months)


def basic_pension(average_wage: Decimal, index_ratio: Decimal, contribution_months: int) -> Decimal:
    """基础养老金 = (C平 + C平 × Z) / 2 × N × 1% (国发〔2005〕38号, DOMAIN §4.4).

    *average_wage* is C平 (the previous year's average wage used as 计发基数), *index_ratio*
    Z (the average indexed contribution ratio, computed by the caller from the person's
    history: DOMAIN does not specify it), *contribution_months* counts actual and deemed
    months; N = months ÷ 12 unrounded, so 30 years 6 months count 30.5 — [inference].
    The 过渡性养老金 is not specified by DOMAIN and not computed here.
    """
    _check_amount(average_wage, "average wage", ValueError)
    if not isinstance(index_ratio, Decimal) or not index_ratio.is_finite() or index_ratio < 0:
        raise ValueError(f"index ratio must be a Decimal of at least 0, got {index_ratio!r}")
    if isinstance(contribution_months, bool) or not isinstance(contribution_months, int):
        raise TypeError("contribution_months must be an int")
    if contribution_months < 0:
        raise ValueError("contribution_months must be at least 0")
    with localcontext() as ctx:
        ctx.prec = 50
        mean = (average_wage + average_wage * index_ratio) / 2
        return _fen(mean * contribution_months / 12 / 100)


# -- the tables -------------------------------------------------------------------------

_STATUSES: Final = ("official", "reported")


@dataclass(frozen=True)
class InterestRate:
    """One year's 记账利率; ``status`` is ``"official"`` or ``"reported"`` (unconfirmed)."""

    year: int
    rate: Decimal
    status: Literal["official", "reported"]
    source: str = ""
    # Checked by the agency against the 人社部 / 财政部 announcement: the shipped table
    # is the consensus of public sources (DOMAIN §4.2), so every entry says false.
    verified: bool = False


@dataclass(frozen=True)
class PensionTables:
    """记账利率 by year and 计发月数 by age at retirement."""

    interest_rates: Mapping[int, InterestRate]
    payout_months_by_age: Mapping[int, int]
    month_level_from: date

    def interest_rate(self, year: int) -> InterestRate:
        found = self.interest_rates.get(year)
        if found is None:
            raise MissingRateError(f"no 记账利率 is configured for {year}")
        return found

    def payout_months(self, age_years: int, age_months: int, *, retirement_month: date) -> Decimal:
        """计发月数 for a retirement at *age_years* years and *age_months* months.

        From ``month_level_from`` on, a part year is interpolated linearly between the
        whole ages (60y1m → 138.4) and rounded half-up to one decimal; before that the
        whole age applies.
        """
        if not 0 <= age_months <= 11:
            raise ValueError(f"age_months must be 0 to 11, got {age_months}")
        here = self.payout_months_by_age.get(age_years)
        if here is None:
            raise MissingRateError(f"no 计发月数 is configured for age {age_years}")
        if age_months == 0 or retirement_month < self.month_level_from:
            return Decimal(here).quantize(Decimal("0.1"))
        after = self.payout_months_by_age.get(age_years + 1)
        if after is None:
            raise MissingRateError(f"no 计发月数 is configured for age {age_years + 1}")
        exact = Decimal(here) - Decimal(here - after) * age_months / 12
        return exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _year(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1990 <= value <= 2200:
        raise _Invalid
    return value


def _status(value: object) -> Literal["official", "reported"]:
    if value == "official":
        return "official"
    if value == "reported":
        return "reported"
    raise _Invalid


def _parse_payout(raw: object, *, source: str) -> tuple[date, dict[int, int]]:
    reader = _TableReader(raw, source=source, key="payout", allowed=("month_level_from", "months"))
    start = reader.require("month_level_from", _month_start, _FROM_FORM)
    months = reader.raw.get("months")
    if not isinstance(months, Mapping) or not months:
        raise reader.fail("months", "is required: a table of age = months ([payout.months])")
    by_age: dict[int, int] = {}
    for age, value in months.items():
        if not (
            isinstance(age, str)
            and age.isascii()
            and age.isdigit()
            and 16 <= int(age) <= 100
            and int(age) not in by_age
        ):
            raise RatesConfigError(
                source,
                f"payout.months.{age}",
                "unknown key; ages are whole years 16-100, each once",
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 600:
            raise RatesConfigError(
                source,
                f"payout.months.{age}",
                f"{value!r} is invalid; expected a whole number of months from 1 to 600",
            )
        by_age[int(age)] = value
    ages = sorted(by_age)
    if ages and ages != list(range(ages[0], ages[-1] + 1)):
        missing = sorted(set(range(ages[0], ages[-1] + 1)) - set(ages))
        raise RatesConfigError(source, "payout.months", f"ages {missing} are missing")
    for younger, older in pairwise(ages):
        if by_age[older] >= by_age[younger]:
            raise RatesConfigError(
                source,
                f"payout.months.{older}",
                f"{by_age[older]} must be fewer months than at age {younger} ({by_age[younger]})",
            )
    return start, by_age


def parse_pension_tables(data: Mapping[str, Any], *, source: str) -> PensionTables:
    """Build :class:`PensionTables` from a parsed mapping; *source* names it in errors."""
    reader = _TableReader(data, source=source, key="", allowed=("interest_rate", "payout"))
    rates: dict[int, InterestRate] = {}
    for key, item in reader.list_of_tables("interest_rate"):
        entry = _TableReader(
            item, source=source, key=key, allowed=("year", "rate", "status", "source", "verified")
        )
        year = entry.require("year", _year, "a year from 1990 to 2200")
        if year in rates:
            raise entry.fail("year", f"{year} appears twice")
        rates[year] = InterestRate(
            year=year,
            rate=entry.require("rate", _fraction, _FRACTION_FORM),
            status=entry.require("status", _status, '"official" or "reported"'),
            source=entry.get("source", _text, "a string naming the notice", ""),
            verified=entry.get("verified", _bool, "true or false", False),
        )
    if "payout" not in reader.raw:
        raise RatesConfigError(source, "payout", "is required ([payout] with [payout.months])")
    start, by_age = _parse_payout(reader.raw["payout"], source=source)
    return PensionTables(
        interest_rates=dict(sorted(rates.items())),
        payout_months_by_age=by_age,
        month_level_from=start,
    )


def load_pension_tables_toml(text: str, *, source: str) -> PensionTables:
    """Parse TOML text in the shape of ``pension_account.toml``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RatesConfigError(source, "", f"not valid TOML: {e}") from None
    return parse_pension_tables(data, source=source)


PENSION_TABLES_FILE: Final = "pension_account.toml"
PENSION_TABLES_DEFAULT: Final[str] = (
    resources.files("declare_app").joinpath(PENSION_TABLES_FILE).read_text("utf-8")
)


def default_pension_tables() -> PensionTables:
    """The DOMAIN §4.2 记账利率 and §4.4 计发月数 shipped with ssgate."""
    return load_pension_tables_toml(
        PENSION_TABLES_DEFAULT, source=f"declare_app/{PENSION_TABLES_FILE}"
    )
