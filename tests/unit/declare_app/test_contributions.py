"""Insurance codes, effective-dated rate tables and base clamping: DOMAIN.md §2 vectors."""

from __future__ import annotations

import copy
import tomllib
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from declare_app import (
    DEMO_330682,
    BaseLimits,
    ClampResult,
    ContributionBaseError,
    EnrolmentStatus,
    Insurance,
    MissingRateError,
    PaymentStatus,
    RatesConfigError,
    clamp_base,
    demo_rate_table,
    load_rates_toml,
    missing_companions,
    monthly_contribution,
    parse_rates,
)

D = Decimal
REGION = "330682"
MARCH_2024 = date(2024, 3, 1)


# -- codes (§2.1) ----------------------------------------------------------------------


def test_the_five_insurance_types_carry_their_AAE140_codes_and_names() -> None:
    assert {i.value: i.label for i in Insurance} == {
        "110": "企业职工基本养老保险",
        "210": "失业保险",
        "310": "职工基本医疗保险",
        "410": "工伤保险",
        "510": "生育保险",
    }


def test_employees_pay_no_work_injury_and_no_maternity_contribution() -> None:
    assert [i.value for i in Insurance if not i.employee_pays] == ["410", "510"]


def test_payment_and_enrolment_status_codes_are_those_of_AAC031_and_AAC008() -> None:
    assert {s.value: s.label for s in PaymentStatus} == {
        "1": "参保缴费",
        "2": "暂停缴费",
        "3": "终止缴费",
    }
    assert {s.value: s.label for s in EnrolmentStatus} == {
        "0": "未参保",
        "1": "正常参保",
        "2": "中断",
        "4": "终止参保",
    }


@pytest.mark.parametrize(
    ("chosen", "missing"),
    [
        ({Insurance.MEDICAL}, {Insurance.MATERNITY}),
        ({Insurance.MATERNITY}, {Insurance.MEDICAL}),
        ({Insurance.MEDICAL, Insurance.MATERNITY}, set()),
        ({Insurance.PENSION, Insurance.UNEMPLOYMENT}, set()),
        ({Insurance.PENSION, Insurance.MEDICAL}, {Insurance.MATERNITY}),
    ],
)
def test_medical_and_maternity_go_together_V_INS_01(
    chosen: set[Insurance], missing: set[Insurance]
) -> None:
    assert missing_companions(chosen) == missing


# -- the demo configuration (§2.2-§2.3) -------------------------------------------------


def test_the_demo_is_toml_text_parsed_by_the_same_loader() -> None:
    assert isinstance(DEMO_330682, str)
    assert load_rates_toml(DEMO_330682, source="demo") == demo_rate_table()


def test_every_demo_value_is_flagged_unverified() -> None:
    region = demo_rate_table().regions[REGION]
    flags = [e.verified for e in region.base_limits]
    flags += [e.verified for e in region.work_injury]
    flags += [rate.verified for rates in region.rates.values() for rate in rates]
    assert len(flags) == 7 and not any(flags)


@pytest.mark.parametrize(
    ("insurance", "employer", "employee", "to_account"),
    [
        (Insurance.PENSION, "0.16", "0.08", "0.08"),
        (Insurance.UNEMPLOYMENT, "0.005", "0.005", "0"),
        (Insurance.MEDICAL, "0.095", "0.02", "0"),
        (Insurance.MATERNITY, "0", "0", "0"),
    ],
)
def test_demo_rates_are_the_DOMAIN_seed_values(
    insurance: Insurance, employer: str, employee: str, to_account: str
) -> None:
    rates = demo_rate_table().rates_for(REGION, insurance, MARCH_2024)
    assert (rates.employer, rates.employee, rates.to_account) == (
        D(employer),
        D(employee),
        D(to_account),
    )


@pytest.mark.parametrize(
    ("risk_class", "rate"),
    list(enumerate(["0.002", "0.004", "0.007", "0.009", "0.011", "0.013", "0.016", "0.019"], 1)),
)
def test_work_injury_base_rate_by_risk_class_and_no_employee_part(
    risk_class: int, rate: str
) -> None:
    rates = demo_rate_table().rates_for(
        REGION, Insurance.WORK_INJURY, MARCH_2024, risk_class=risk_class
    )
    assert (rates.insurance, rates.employer, rates.employee) == (
        Insurance.WORK_INJURY,
        D(rate),
        D(0),
    )


def test_work_injury_needs_a_risk_class_from_1_to_8_and_others_refuse_one() -> None:
    table = demo_rate_table()
    with pytest.raises(ValueError, match="risk_class"):
        table.rates_for(REGION, Insurance.WORK_INJURY, MARCH_2024)
    with pytest.raises(ValueError, match="1 to 8"):
        table.rates_for(REGION, Insurance.WORK_INJURY, MARCH_2024, risk_class=9)
    with pytest.raises(ValueError, match=r"work injury \(410\) only"):
        table.rates_for(REGION, Insurance.PENSION, MARCH_2024, risk_class=1)


@pytest.mark.parametrize(
    ("on", "floor", "ceiling"),
    [
        (date(2023, 1, 1), "4462", "24060"),
        (date(2023, 12, 31), "4462", "24060"),
        (date(2024, 1, 1), "4812", "24930"),
        (date(2024, 12, 1), "4812", "24930"),
    ],
)
def test_zhejiang_base_limits_by_year(on: date, floor: str, ceiling: str) -> None:
    limits = demo_rate_table().base_limits(REGION, on)
    assert (limits.floor, limits.ceiling) == (D(floor), D(ceiling))


def test_the_open_ended_2024_limits_carry_forward_until_a_newer_entry() -> None:
    """The demo has no 2025 figures (DOMAIN §2.3): 2024's apply until configured otherwise."""
    limits = demo_rate_table().base_limits(REGION, date(2026, 11, 1))
    assert (limits.floor, limits.ceiling) == (D("4812"), D("24930"))


def test_a_date_before_any_entry_is_a_missing_rate_V_RATE_01() -> None:
    table = demo_rate_table()
    with pytest.raises(
        MissingRateError, match=r"no 110 .* region 330682 on 2023-12-01 \(V-RATE-01\)"
    ):
        table.rates_for(REGION, Insurance.PENSION, date(2023, 12, 1))
    with pytest.raises(MissingRateError, match="floor/ceiling for region 330682 on 2022-12-01"):
        table.base_limits(REGION, date(2022, 12, 1))


def test_an_unconfigured_region_is_a_missing_rate() -> None:
    with pytest.raises(MissingRateError, match="'330604'"):
        demo_rate_table().rates_for("330604", Insurance.PENSION, MARCH_2024)


def test_a_datetime_is_refused_where_a_date_is_meant() -> None:
    with pytest.raises(TypeError):
        demo_rate_table().base_limits(REGION, datetime(2024, 3, 1, 12, 0))


# -- the §2.3 worked example ------------------------------------------------------------


@pytest.mark.parametrize(
    ("wage", "clamped", "amounts"),
    [
        ("3000", ClampResult(D("4812"), "floor"), ("769.92", "384.96", "24.06")),
        ("9000", ClampResult(D("9000"), None), ("1440.00", "720.00", "45.00")),
        ("30000", ClampResult(D("24930"), "ceiling"), ("3988.80", "1994.40", "124.65")),
    ],
)
def test_the_worked_example_of_DOMAIN_2_3(
    wage: str, clamped: ClampResult, amounts: tuple[str, str, str]
) -> None:
    """2024 Zhejiang limits, rates 16% / 8% / 0.5%, half-up to the fen: base, pension
    employer, pension employee, unemployment employee."""
    employer, employee, unemployment_employee = amounts
    table = demo_rate_table()
    result = clamp_base(D(wage), table.base_limits(REGION, MARCH_2024))
    assert result == clamped
    pension = monthly_contribution(
        result.base, table.rates_for(REGION, Insurance.PENSION, MARCH_2024)
    )
    assert pension == (D(employer), D(employee))
    assert str(pension.employer) == employer  # to the fen, trailing zeros included
    unemployment = table.rates_for(REGION, Insurance.UNEMPLOYMENT, MARCH_2024)
    assert monthly_contribution(result.base, unemployment).employee == D(unemployment_employee)


def test_amounts_round_half_up_not_to_even() -> None:
    """4813 × 0.5% = 24.065 → 24.07 (banker's rounding would give 24.06)."""
    unemployment = demo_rate_table().rates_for(REGION, Insurance.UNEMPLOYMENT, MARCH_2024)
    assert monthly_contribution(D("4813"), unemployment) == (D("24.07"), D("24.07"))
    assert monthly_contribution(D("4812.50"), unemployment).employee == D("24.06")  # 24.0625


def test_the_limits_themselves_are_not_clamped() -> None:
    limits = demo_rate_table().base_limits(REGION, MARCH_2024)
    assert clamp_base(D("4812"), limits) == ClampResult(D("4812"), None)
    assert clamp_base(D("24930.00"), limits) == ClampResult(D("24930.00"), None)
    assert clamp_base(D("4811.99"), limits).clamped == "floor"
    assert clamp_base(D("24930.01"), limits).clamped == "ceiling"


@pytest.mark.parametrize("bad", ["0", "-1", "0.00", "4812.001", "NaN", "Infinity"])
def test_a_base_that_is_not_positive_fen_is_refused_V_BASE_02(bad: str) -> None:
    limits = demo_rate_table().base_limits(REGION, MARCH_2024)
    with pytest.raises(ContributionBaseError):
        clamp_base(D(bad), limits)


def test_trailing_zeros_below_the_fen_are_still_a_fen_amount() -> None:
    limits = demo_rate_table().base_limits(REGION, MARCH_2024)
    assert clamp_base(D("9000.000"), limits).base == D("9000")


def test_a_float_base_is_refused_rather_than_rounded() -> None:
    limits = demo_rate_table().base_limits(REGION, MARCH_2024)
    with pytest.raises(TypeError):
        clamp_base(9000.0, limits)  # type: ignore[arg-type]


# -- properties -------------------------------------------------------------------------

fen_amounts = st.decimals(min_value=D("0.01"), max_value=D("10000000"), places=2)


@st.composite
def limits_strategy(draw: st.DrawFn) -> BaseLimits:
    floor = draw(st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2))
    span = draw(st.decimals(min_value=D(0), max_value=D("500000"), places=2))
    return BaseLimits(floor=floor, ceiling=floor + span, effective_from=date(2024, 1, 1))


@given(fen_amounts, limits_strategy())
def test_clamping_is_within_the_limits_and_idempotent(
    declared: Decimal, limits: BaseLimits
) -> None:
    first = clamp_base(declared, limits)
    assert limits.floor <= first.base <= limits.ceiling
    assert clamp_base(first.base, limits) == ClampResult(first.base, None)
    if limits.floor <= declared <= limits.ceiling:
        assert first == ClampResult(declared, None)


@given(
    st.decimals(min_value=D(0), max_value=D("10000000"), places=2),
    st.decimals(min_value=D(0), max_value=D("0.999999"), places=6),
)
def test_each_amount_is_the_product_rounded_half_up_to_the_fen(
    base: Decimal, rate: Decimal
) -> None:
    rates = demo_rate_table().rates_for(REGION, Insurance.PENSION, MARCH_2024)
    from dataclasses import replace

    amounts = monthly_contribution(base, replace(rates, employer=rate, employee=rate))
    exact = base * rate
    assert amounts.employer == amounts.employee
    assert amounts.employer == exact.quantize(D("0.01"), rounding=ROUND_HALF_UP)
    assert -D("0.005") < amounts.employer - exact <= D("0.005")


# -- configuration errors name the key --------------------------------------------------

VALID = """
[region.330682]
name = "上虞"

[[region.330682.rate]]
insurance = "110"
from = 2024-01-01
employer = "0.16"
employee = "0.08"

[[region.330682.rate]]
insurance = "510"
from = 2024-01-01
employer = "0"

[[region.330682.base_limit]]
from = 2024-01-01
floor = "4812"
ceiling = "24930"

[[region.330682.work_injury]]
from = 2024-01-01
class_rates = ["0.002", "0.004", "0.007", "0.009", "0.011", "0.013", "0.016", "0.019"]
"""


def _valid() -> dict[str, Any]:
    return copy.deepcopy(tomllib.loads(VALID))


def _region(data: dict[str, Any]) -> dict[str, Any]:
    region: dict[str, Any] = data["region"]["330682"]
    return region


def test_the_valid_sample_parses_with_defaults() -> None:
    table = parse_rates(_valid(), source="rates.toml")
    pension = table.rates_for(REGION, Insurance.PENSION, MARCH_2024)
    assert pension.to_account == D("0.08")  # defaults to the employee rate (§4.1)
    assert pension.verified is False and pension.effective_until is None
    assert table.rates_for(REGION, Insurance.MATERNITY, MARCH_2024).employee == 0


def test_toml_numbers_are_read_through_their_shortest_repr() -> None:
    data = _valid()
    _region(data)["rate"][0]["employer"] = 0.16
    _region(data)["base_limit"][0]["floor"] = 3321.6
    table = parse_rates(data, source="rates.toml")
    assert table.rates_for(REGION, Insurance.PENSION, MARCH_2024).employer == D("0.16")
    assert table.base_limits(REGION, MARCH_2024).floor == D("3321.6")


def test_the_message_names_source_key_value_and_allowed_form() -> None:
    data = _valid()
    _region(data)["rate"][0]["employer"] = 16
    with pytest.raises(RatesConfigError) as info:
        parse_rates(data, source="/etc/ssgate/rates.toml")
    assert info.value.key == "region.330682.rate#1.employer"
    assert str(info.value) == (
        "/etc/ssgate/rates.toml: region.330682.rate#1.employer: 16 is invalid; expected a "
        'fraction from 0 up to 1 with at most 6 decimal places, such as "0.16" '
        "(16% is written 0.16)"
    )


def _set(path: str, value: object) -> Any:
    """A mutation of the valid sample: *path* is dotted, list items by index."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return mutate


_DELETE = object()
R = "region.330682"


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (_set("regions", {}), "regions", "unknown key; the top level takes: region"),
        (_set("region", []), "region", "must be a table"),
        (_set(f"{R}.colour", "red"), f"{R}.colour", "unknown key"),
        (_set(f"{R}.rate", {}), f"{R}.rate", "array of tables"),
        (_set(f"{R}.rate.0.employr", "0.16"), f"{R}.rate#1.employr", "takes: insurance"),
        (_set(f"{R}.rate.0.employee", _DELETE), f"{R}.rate#1.employee", "is required"),
        (_set(f"{R}.rate.0.employer", "0.1234567"), f"{R}.rate#1.employer", "6 decimal places"),
        (_set(f"{R}.rate.0.employer", "-0.01"), f"{R}.rate#1.employer", "is invalid"),
        (_set(f"{R}.rate.0.employer", True), f"{R}.rate#1.employer", "is invalid"),
        (_set(f"{R}.rate.0.employer", "abc"), f"{R}.rate#1.employer", "is invalid"),
        (_set(f"{R}.rate.0.insurance", "120"), f"{R}.rate#1.insurance", '"110", "210"'),
        (_set(f"{R}.rate.0.insurance", "410"), f"{R}.rate#1.insurance", "by risk class"),
        (_set(f"{R}.rate.1.employee", "0.01"), f"{R}.rate#2.employee", "pay no 生育保险"),
        (_set(f"{R}.rate.1.to_account", "0"), f"{R}.rate#2.to_account", "pension (110) only"),
        (_set(f"{R}.rate.0.to_account", "0.3"), f"{R}.rate#1.to_account", "more than"),
        (_set(f"{R}.rate.0.from", date(2024, 1, 15)), f"{R}.rate#1.from", "first day of a month"),
        (_set(f"{R}.rate.0.from", datetime(2024, 1, 1)), f"{R}.rate#1.from", "is invalid"),
        (_set(f"{R}.rate.0.from", "2024-02-30"), f"{R}.rate#1.from", "is invalid"),
        (_set(f"{R}.rate.0.until", date(2024, 6, 30)), None, None),
        (_set(f"{R}.rate.0.until", date(2024, 6, 29)), f"{R}.rate#1.until", "last day"),
        (_set(f"{R}.rate.0.until", date(2023, 6, 30)), f"{R}.rate#1.until", "before from"),
        (_set(f"{R}.rate.0.verified", "yes"), f"{R}.rate#1.verified", "true or false"),
        (_set(f"{R}.rate.0.source", 7), f"{R}.rate#1.source", "a string"),
        (_set(f"{R}.base_limit.0.ceiling", "4000"), f"{R}.base_limit#1.ceiling", "below the floor"),
        (_set(f"{R}.base_limit.0.floor", "0"), f"{R}.base_limit#1.floor", "above 0"),
        (_set(f"{R}.base_limit.0.floor", "4812.123"), f"{R}.base_limit#1.floor", "2 decimal"),
        (_set(f"{R}.base_limit.0.floor", "1e30"), f"{R}.base_limit#1.ceiling", "below the floor"),
        (
            _set(f"{R}.work_injury.0.class_rates", ["0.002"] * 7),
            f"{R}.work_injury#1.class_rates",
            "8",
        ),
        (
            _set(f"{R}.work_injury.0.class_rates", ["0.019", *["0.002"] * 7]),
            f"{R}.work_injury#1.class_rates",
            "never decreasing",
        ),
    ],
)
def test_bad_configuration_names_the_offending_key(
    mutate: Any, key: str | None, fragment: str | None
) -> None:
    data = _valid()
    mutate(data)
    if key is None:
        parse_rates(data, source="rates.toml")  # a valid variation
        return
    with pytest.raises(RatesConfigError, match=r"^rates\.toml: ") as info:
        parse_rates(data, source="rates.toml")
    assert info.value.key == key
    assert fragment is not None and fragment in str(info.value)


def test_a_region_key_must_be_a_6_digit_code() -> None:
    data = _valid()
    data["region"]["33068"] = data["region"].pop("330682")
    with pytest.raises(RatesConfigError, match="6-digit") as info:
        parse_rates(data, source="rates.toml")
    assert info.value.key == "region.33068"


def _with_second_pension_rate(**entry: object) -> dict[str, Any]:
    data = _valid()
    _region(data)["rate"].append(
        {"insurance": "110", "employer": "0.15", "employee": "0.08", **entry}
    )
    return data


def test_two_entries_starting_the_same_month_are_refused() -> None:
    with pytest.raises(RatesConfigError, match="starts another entry") as info:
        parse_rates(_with_second_pension_rate(**{"from": date(2024, 1, 1)}), source="x")
    assert info.value.key == f"{R}.rate#3.from"


def test_overlapping_periods_are_refused() -> None:
    data = _with_second_pension_rate(**{"from": date(2023, 1, 1), "until": date(2024, 3, 31)})
    with pytest.raises(
        RatesConfigError, match="overlaps the entry running until 2024-03-31"
    ) as info:
        parse_rates(data, source="x")
    assert info.value.key == f"{R}.rate#1.from"


def test_the_entry_in_force_is_the_latest_started_and_a_gap_is_missing() -> None:
    data = _with_second_pension_rate(**{"from": date(2022, 1, 1), "until": date(2022, 12, 31)})
    table = parse_rates(data, source="x")
    assert table.rates_for(REGION, Insurance.PENSION, date(2022, 12, 1)).employer == D("0.15")
    assert table.rates_for(REGION, Insurance.PENSION, date(2024, 1, 1)).employer == D("0.16")
    with pytest.raises(MissingRateError):
        table.rates_for(REGION, Insurance.PENSION, date(2023, 6, 1))


def test_bad_toml_text_names_the_source() -> None:
    with pytest.raises(RatesConfigError, match=r"^rates\.toml: not valid TOML"):
        load_rates_toml("[region.330682\n", source="rates.toml")
