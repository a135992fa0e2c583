"""The pension personal account: DOMAIN.md §4 crediting, 记账利率, the §4.3 statement and
the §4.4 account pension."""

from __future__ import annotations

import copy
import tomllib
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from declare_app import (
    PENSION_TABLES_DEFAULT,
    AccountStatementLine,
    Insurance,
    MissingRateError,
    RatesConfigError,
    account_credit,
    account_pension,
    annual_statement,
    basic_pension,
    default_pension_tables,
    demo_rate_table,
    load_pension_tables_toml,
    monthly_contribution,
    parse_pension_tables,
)

D = Decimal
FEN = D("0.01")


def _pension_rates() -> Any:
    return demo_rate_table().rates_for("330682", Insurance.PENSION, date(2024, 3, 1))


# -- crediting (§4.1) -------------------------------------------------------------------


@pytest.mark.parametrize(("base", "credit"), [("9000", "720.00"), ("4812", "384.96")])
def test_the_account_is_credited_8_percent_of_the_base(base: str, credit: str) -> None:
    """§4.3 example: base 9 000 × 8% = 720/month; §4.1: the whole employee contribution."""
    rates = _pension_rates()
    assert account_credit(D(base), rates) == D(credit)
    assert account_credit(D(base), rates) == monthly_contribution(D(base), rates).employee


def test_no_employer_money_and_no_other_insurance_is_credited() -> None:
    unemployment = demo_rate_table().rates_for("330682", Insurance.UNEMPLOYMENT, date(2024, 3, 1))
    with pytest.raises(ValueError, match="only pension"):
        account_credit(D("9000"), unemployment)


# -- the §4.3 worked example ------------------------------------------------------------

WORKED = annual_statement(D("100000"), [D("720")] * 12, 2024, D("0.0262"))


def test_worked_example_interest_on_the_opening_balance() -> None:
    assert str(WORKED.interest_on_opening) == "2620.00"


def test_worked_example_interest_on_new_money() -> None:
    assert str(WORKED.interest_on_new) == "122.62"


def test_worked_example_closing_balance() -> None:
    assert str(WORKED.closing) == "111382.62"


def test_worked_example_every_other_field() -> None:
    assert (WORKED.year, WORKED.rate, WORKED.opening) == (2024, D("0.0262"), D("100000"))
    assert str(WORKED.credited) == "8640.00"
    assert str(WORKED.interest) == "2742.62"
    assert WORKED.months_credited == 12
    assert WORKED.lines[0] == AccountStatementLine(1, D("720"), 12, D("8640"))
    assert WORKED.lines[11] == AccountStatementLine(12, D("720"), 1, D("720"))
    assert sum(line.interest_months for line in WORKED.lines) == 78  # Σ(13 − m)


def test_interest_on_new_money_is_rounded_once_not_month_by_month() -> None:
    """Rounding each month's interest to the fen would give 122.61, not DOMAIN's 122.62."""
    per_month = sum(
        (
            (D("720") * D("0.0262") * (13 - m) / 12).quantize(FEN, rounding=ROUND_HALF_UP)
            for m in range(1, 13)
        ),
        D(0),
    )
    assert per_month == D("122.61")
    assert WORKED.interest_on_new == D("122.62")


def test_a_mapping_of_months_equals_the_list_of_twelve() -> None:
    as_map = annual_statement(D("100000"), {m: D("720") for m in range(1, 13)}, 2024, D("0.0262"))
    assert as_map == WORKED


def test_a_person_joining_in_july_earns_6_down_to_1_months() -> None:
    """720 × (6+5+4+3+2+1) = 15 120; × 2.62% ÷ 12 = 33.012 → 33.01."""
    statement = annual_statement(D(0), {m: D("720") for m in range(7, 13)}, 2024, D("0.0262"))
    assert statement.months_credited == 6
    assert statement.credited == D("4320.00")
    assert statement.interest_on_new == D("33.01")
    assert statement.closing == D("4353.01")


@pytest.mark.parametrize(
    "credits",
    [
        [D("720")] * 11,
        {0: D("720")},
        {13: D("720")},
        {1: D("-1")},
        {1: D("720.001")},
        {1: 720.0},
    ],
)
def test_bad_credits_are_refused(credits: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        annual_statement(D(0), credits, 2024, D("0.0262"))


@pytest.mark.parametrize("rate", [D("-0.01"), D(1), D("NaN"), 0.0262])
def test_a_rate_outside_0_to_1_is_refused(rate: Any) -> None:
    with pytest.raises(ValueError, match="rate"):
        annual_statement(D(0), [D(0)] * 12, 2024, rate)


# -- properties -------------------------------------------------------------------------

money = st.decimals(min_value=D(0), max_value=D("5000000"), places=2)
credits_strategy = st.lists(
    st.decimals(min_value=D(0), max_value=D("20000"), places=2), min_size=12, max_size=12
)
rates_strategy = st.decimals(min_value=D(0), max_value=D("0.2"), places=4)


@given(money, credits_strategy)
def test_interest_is_zero_at_rate_zero(opening: Decimal, credits: list[Decimal]) -> None:
    statement = annual_statement(opening, credits, 2024, D(0))
    assert statement.interest == 0
    assert statement.closing == opening + sum(credits, D(0))


@given(money, credits_strategy, rates_strategy)
def test_closing_is_opening_plus_credited_plus_interest(
    opening: Decimal, credits: list[Decimal], rate: Decimal
) -> None:
    statement = annual_statement(opening, credits, 2024, rate)
    assert statement.closing == statement.opening + statement.credited + statement.interest
    assert statement.interest == statement.interest_on_opening + statement.interest_on_new
    assert statement.credited == sum(credits, D(0))
    assert statement.interest >= 0
    for amount in (statement.interest_on_opening, statement.interest_on_new, statement.closing):
        assert amount == amount.quantize(FEN)


@given(st.decimals(min_value=D(0), max_value=D("20000"), places=2), rates_strategy)
def test_twelve_equal_credits_earn_the_quoted_13_over_24_factor(
    credit: Decimal, rate: Decimal
) -> None:
    """12c × r × 1.0833 × ½ of §4.3 is exactly 12c × r × 13/24."""
    statement = annual_statement(D(0), [credit] * 12, 2024, rate)
    expected = (12 * credit * rate * 13 / 24).quantize(FEN, rounding=ROUND_HALF_UP)
    assert statement.interest_on_new == expected


# -- 记账利率 (§4.2) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "rate", "status"),
    [
        (2016, "0.0831", "official"),
        (2017, "0.0712", "official"),
        (2018, "0.0829", "official"),
        (2019, "0.0761", "official"),
        (2020, "0.0604", "official"),
        (2021, "0.0669", "official"),
        (2022, "0.0612", "official"),
        (2023, "0.0397", "official"),
        (2024, "0.0262", "official"),
        (2025, "0.0150", "reported"),
    ],
)
def test_the_shipped_interest_rates_are_DOMAINs_table(year: int, rate: str, status: str) -> None:
    found = default_pension_tables().interest_rate(year)
    assert (found.year, found.rate, found.status) == (year, D(rate), status)


@pytest.mark.parametrize("year", [2015, 2026])
def test_years_without_a_national_rate_are_missing(year: int) -> None:
    """Before 2016 rates were provincial; 2026's circulating 2.60% is not official."""
    with pytest.raises(MissingRateError, match=str(year)):
        default_pension_tables().interest_rate(year)


def test_the_2024_table_rate_reproduces_the_worked_example() -> None:
    rate = default_pension_tables().interest_rate(2024).rate
    assert annual_statement(D("100000"), [D("720")] * 12, 2024, rate).closing == D("111382.62")


# -- 计发月数 and the pension at retirement (§4.4) ------------------------------------------

PAYOUT = {
    40: 233, 41: 230, 42: 226, 43: 223, 44: 220, 45: 216, 46: 212, 47: 207, 48: 204, 49: 199,
    50: 195, 51: 190, 52: 185, 53: 180, 54: 175, 55: 170, 56: 164, 57: 158, 58: 152, 59: 145,
    60: 139, 61: 132, 62: 125, 63: 117, 64: 109, 65: 101, 66: 93, 67: 84, 68: 75, 69: 65, 70: 56,
}  # fmt: skip


def test_the_shipped_payout_months_are_the_2005_annex_table() -> None:
    assert dict(default_pension_tables().payout_months_by_age) == PAYOUT


@pytest.mark.parametrize(("age", "months"), list(PAYOUT.items()))
def test_whole_ages_give_the_table_value(age: int, months: int) -> None:
    got = default_pension_tables().payout_months(age, 0, retirement_month=date(2026, 1, 1))
    assert got == D(months)


@pytest.mark.parametrize(
    ("years", "months", "expected"),
    [(60, 1, "138.4"), (50, 1, "194.6"), (63, 0, "117.0"), (55, 6, "167.0"), (60, 11, "132.6")],
)
def test_month_level_values_from_2025_as_in_the_Jinan_reply(
    years: int, months: int, expected: str
) -> None:
    """60y1m = 138.4 and 50y1m = 194.6 (DOMAIN §4.4); the rest interpolate the same way."""
    got = default_pension_tables().payout_months(years, months, retirement_month=date(2025, 2, 1))
    assert str(got) == expected


def test_before_2025_a_part_year_counts_as_the_whole_age() -> None:
    tables = default_pension_tables()
    assert tables.payout_months(60, 5, retirement_month=date(2024, 12, 1)) == D(139)


def test_ages_outside_the_table_are_missing() -> None:
    tables = default_pension_tables()
    with pytest.raises(MissingRateError, match="age 71"):
        tables.payout_months(70, 1, retirement_month=date(2030, 1, 1))
    with pytest.raises(MissingRateError, match="age 39"):
        tables.payout_months(39, 0, retirement_month=date(2030, 1, 1))
    with pytest.raises(ValueError, match="0 to 11"):
        tables.payout_months(60, 12, retirement_month=date(2030, 1, 1))


def test_account_pension_is_the_balance_over_the_payout_months() -> None:
    """111 382.62 ÷ 139 = 801.3138… → 801.31; ÷ 138.4 = 804.7877… → 804.79."""
    assert account_pension(D("111382.62"), D(139)) == D("801.31")
    assert account_pension(D("111382.62"), D("138.4")) == D("804.79")
    with pytest.raises(ValueError):
        account_pension(D("1"), D(0))


@pytest.mark.parametrize(
    ("wage", "ratio", "months", "expected"),
    [
        ("8000", "1", 360, "2400.00"),  # (8000 + 8000)/2 × 30 × 1%
        ("8310", "0.6", 185, "1024.90"),  # 6648 × 15.4166… × 1%
        ("8310", "0.6", 0, "0.00"),
    ],
)
def test_basic_pension_formula(wage: str, ratio: str, months: int, expected: str) -> None:
    """(C + C × Z)/2 × N × 1%, N = months ÷ 12 (our vectors; DOMAIN gives none)."""
    assert str(basic_pension(D(wage), D(ratio), months)) == expected


# -- configuration errors name the key --------------------------------------------------


def _default() -> dict[str, Any]:
    return copy.deepcopy(tomllib.loads(PENSION_TABLES_DEFAULT))


def _error(data: dict[str, Any]) -> RatesConfigError:
    with pytest.raises(RatesConfigError, match=r"^pension\.toml: ") as info:
        parse_pension_tables(data, source="pension.toml")
    return info.value


def test_the_default_text_parses_with_the_same_loader() -> None:
    assert load_pension_tables_toml(PENSION_TABLES_DEFAULT, source="x") == default_pension_tables()


def test_a_year_twice_is_refused() -> None:
    data = _default()
    data["interest_rate"].append(dict(data["interest_rate"][0]))
    error = _error(data)
    assert error.key == "interest_rate#11.year" and "appears twice" in str(error)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("rate", "8.31", "fraction"),
        ("rate", 0.0831, None),
        ("status", "rumoured", '"official" or "reported"'),
        ("year", 16, "a year from 1990"),
        ("comment", "x", "unknown key"),
    ],
)
def test_a_bad_interest_rate_entry_names_its_key(
    key: str, value: object, fragment: str | None
) -> None:
    data = _default()
    data["interest_rate"][0][key] = value
    if fragment is None:
        assert parse_pension_tables(data, source="x").interest_rate(2016).rate == D("0.0831")
        return
    error = _error(data)
    assert error.key == f"interest_rate#1.{key}" and fragment in str(error)


def test_a_gap_in_the_payout_ages_is_refused() -> None:
    data = _default()
    del data["payout"]["months"]["55"]
    error = _error(data)
    assert error.key == "payout.months" and "[55]" in str(error)


def test_payout_months_must_fall_with_age() -> None:
    data = _default()
    data["payout"]["months"]["61"] = 140
    error = _error(data)
    assert error.key == "payout.months.61" and "fewer months than at age 60" in str(error)


@pytest.mark.parametrize(("age", "value"), [("sixty", 139), ("120", 10), ("60", 0), ("60", "139")])
def test_a_bad_payout_entry_names_the_age(age: str, value: object) -> None:
    data = _default()
    data["payout"]["months"][age] = value
    assert _error(data).key == f"payout.months.{age}"


def test_the_payout_table_and_its_start_are_required() -> None:
    data = _default()
    del data["payout"]["month_level_from"]
    assert _error(data).key == "payout.month_level_from"
    data = _default()
    del data["payout"]
    assert _error(data).key == "payout"
