"""The ledger's pure arithmetic (issue 14): plan segments, a month's 应缴 per DOMAIN
§2.3, adjustments of closed months, and the figures in force."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from declare_app import Insurance, Rates, demo_rate_table, load_rates_toml
from declare_app._ledger import (
    NOTHING,
    Due,
    PlanSegment,
    RatesNotInForce,
    adjustment,
    base_in,
    figures_in_force,
    month_due,
    plan_rebase,
    plan_start,
    plan_stop,
    rates_in_force,
)
from declare_app._retirement import YearMonth

D = Decimal
YM = YearMonth
TABLE = demo_rate_table()


def _rates(insurance: Insurance, risk_class: int | None = None) -> Rates:
    return rates_in_force(TABLE, "330682", insurance, YM(2026, 3), risk_class=risk_class)


# -- a month's 应缴 (DOMAIN §2.3 worked example) -------------------------------------------


@pytest.mark.parametrize(
    ("base", "employer", "employee"),
    [
        (D("4812"), D("769.92"), D("384.96")),
        (D("9000"), D("1440.00"), D("720.00")),
        (D("24930"), D("3988.80"), D("1994.40")),
    ],
)
def test_pension_due_is_the_worked_example_and_credits_the_whole_employee_part(
    base: Decimal, employer: Decimal, employee: Decimal
) -> None:
    due = month_due(base, _rates(Insurance.PENSION))
    assert (due.employer, due.employee, due.to_account) == (employer, employee, employee)


def test_only_pension_credits_the_account_and_work_injury_goes_by_risk_class() -> None:
    medical = month_due(D("9000"), _rates(Insurance.MEDICAL))
    assert (medical.employer, medical.employee, medical.to_account) == (
        D("855.00"),
        D("180.00"),
        D("0.00"),
    )
    injury = month_due(D("9000"), _rates(Insurance.WORK_INJURY, 3))
    assert (injury.employer, injury.employee) == (D("63.00"), D("0.00"))


def test_rounding_is_half_up_per_part() -> None:
    """0.005 × 4 811.10 = 24.0555 → 24.06 (half-up), each part on its own."""
    due = month_due(D("4811.10"), _rates(Insurance.UNEMPLOYMENT))
    assert (due.employer, due.employee) == (D("24.06"), D("24.06"))


bases = st.decimals(min_value=D("1.00"), max_value=D("100000.00"), places=2)


@given(st.lists(bases, min_size=1, max_size=30))
def test_a_unit_total_is_the_sum_of_its_persons_rounded_lines(persons: list[Decimal]) -> None:
    """Each person's line is rounded on its own and the unit owes their sum; that sum
    stays within half a fen per person of the rate applied to the summed base, which
    is why the unit total is never recomputed from the summed base."""
    rates = _rates(Insurance.PENSION)
    lines = [month_due(b, rates) for b in persons]
    total = sum((ln.employer for ln in lines), D(0))
    exact = sum(persons, D(0)) * rates.employer
    assert abs(total - exact) <= D("0.005") * len(persons)
    assert all(ln.employer == ln.employer.quantize(D("0.01")) for ln in lines)


# -- plans --------------------------------------------------------------------------------


def test_start_stop_and_rebase_as_in_acceptance_1() -> None:
    plan = plan_start((), YM(2026, 3), D("9000"))
    rebased = plan_rebase(plan, YM(2026, 7), D("10000"))
    assert rebased == (
        PlanSegment(YM(2026, 3), YM(2026, 6), D("9000")),
        PlanSegment(YM(2026, 7), None, D("10000")),
    )
    stopped = plan_stop(rebased, YM(2026, 8))
    assert [base_in(stopped, YM(2026, m)) for m in range(2, 11)] == [
        None,
        D("9000"),
        D("9000"),
        D("9000"),
        D("9000"),
        D("10000"),
        D("10000"),
        None,
        None,
    ]


def test_a_restart_replaces_what_the_plan_said_from_that_month() -> None:
    plan = plan_stop(plan_start((), YM(2026, 1), D("5000")), YM(2026, 4))
    again = plan_start(plan, YM(2026, 3), D("6000"))
    assert again == (
        PlanSegment(YM(2026, 1), YM(2026, 2), D("5000")),
        PlanSegment(YM(2026, 3), None, D("6000")),
    )


def test_rebase_enrols_nobody() -> None:
    plan = plan_stop(plan_start((), YM(2026, 1), D("5000")), YM(2026, 3))
    assert base_in(plan_rebase(plan, YM(2026, 6), D("8000")), YM(2026, 6)) is None


months = st.builds(YM, st.integers(2024, 2027), st.integers(1, 12))
operations = st.lists(
    st.tuples(st.sampled_from(("start", "stop", "rebase")), months, bases), max_size=8
)


def _run(ops: Sequence[tuple[str, YearMonth, Decimal]]) -> tuple[PlanSegment, ...]:
    plan: tuple[PlanSegment, ...] = ()
    for op, month, base in ops:
        if op == "start":
            plan = plan_start(plan, month, base)
        elif op == "stop":
            plan = plan_stop(plan, month)
        else:
            plan = plan_rebase(plan, month, base)
    return plan


@given(operations)
def test_segments_never_overlap_and_are_ordered(ops: list[tuple[str, YearMonth, Decimal]]) -> None:
    plan = _run(ops)
    for s in plan:
        assert s.end is None or s.start <= s.end
    for earlier, later in pairwise(plan):
        assert earlier.end is not None and earlier.end < later.start


@given(operations, months, bases)
def test_each_change_applied_twice_is_applied_once(
    ops: list[tuple[str, YearMonth, Decimal]], month: YearMonth, base: Decimal
) -> None:
    plan = _run(ops)
    assert plan_start(plan_start(plan, month, base), month, base) == plan_start(plan, month, base)
    assert plan_stop(plan_stop(plan, month), month) == plan_stop(plan, month)
    assert plan_rebase(plan_rebase(plan, month, base), month, base) == plan_rebase(
        plan, month, base
    )


@given(operations, months, bases, months)
def test_a_rebase_changes_no_month_before_it(
    ops: list[tuple[str, YearMonth, Decimal]], start: YearMonth, base: Decimal, probe: YearMonth
) -> None:
    plan = _run(ops)
    rebased = plan_rebase(plan, start, base)
    if probe < start:
        assert base_in(rebased, probe) == base_in(plan, probe)
    else:
        assert base_in(rebased, probe) == (None if base_in(plan, probe) is None else base)


# -- adjustments ------------------------------------------------------------------------


def test_an_unbooked_month_becomes_arrears_and_an_unowed_one_a_refund() -> None:
    owed = Due(D("9000"), D("1440.00"), D("720.00"), D("720.00"))
    arrears = adjustment(owed, [])
    assert arrears is not None and (arrears.kind, arrears.label) == ("arrears", "补缴")
    refund = adjustment(NOTHING, [owed])
    assert refund is not None and refund.kind == "refund"
    assert (refund.employer, refund.employee, refund.to_account) == (
        D("-1440.00"),
        D("-720.00"),
        D("-720.00"),
    )


dues = st.builds(
    Due,
    bases,
    st.decimals(0, 10000, places=2),
    st.decimals(0, 10000, places=2),
    st.decimals(0, 10000, places=2),
)


@given(dues, st.lists(dues, max_size=4))
def test_booking_the_adjustment_reconciles_the_month_for_good(owed: Due, booked: list[Due]) -> None:
    """Reconciling twice books nothing the second time."""
    found = adjustment(owed, booked)
    if found is not None:
        booked = [
            *booked,
            Due(found.base, found.employer, found.employee, found.to_account),
        ]
    assert adjustment(owed, booked) is None


# -- figures in force ---------------------------------------------------------------------

ENDING_2026 = """
[region.330682]
[[region.330682.rate]]
insurance = "110"
from = 2026-01-01
until = 2026-12-31
employer = "0.16"
employee = "0.08"
verified = true
source = "浙人社发 test"
"""


def test_a_month_without_figures_names_the_year_and_the_file() -> None:
    table = load_rates_toml(ENDING_2026, source="/srv/ssgate/rates.toml")
    with pytest.raises(RatesNotInForce, match=r"add the 2027 figures to /srv/ssgate/rates\.toml"):
        rates_in_force(table, "330682", Insurance.PENSION, YM(2027, 1), risk_class=None)
    figures = {f.what: f for f in figures_in_force(table, "330682", YM(2026, 7))}
    pension = figures["110 企业职工基本养老保险"]
    assert (pension.values, pension.period, pension.verified, pension.source) == (
        "employer 0.16, employee 0.08, to account 0.08",
        "2026-01 to 2026-12",
        True,
        "浙人社发 test",
    )
    assert "add the 2026 figures" in figures["base floor/ceiling"].missing


def test_the_demo_figures_in_force_name_their_sources_and_are_unverified() -> None:
    figures = figures_in_force(TABLE, "330682", YM(2026, 7))
    assert all(f.in_force and not f.verified and f.source for f in figures)
