"""Statutory retirement age under the 2025 gradual increase, DOMAIN.md §3 and its §3.2 table."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from declare_app import (
    Gender,
    InsuredPerson,
    RetirementCategory,
    StaffKind,
    YearMonth,
    final_retirement_age_months,
    flexible_earliest_month,
    flexible_latest_month,
    minimum_contribution_months,
    persons_reaching_retirement,
    retirement_age_months,
    retirement_category,
    retirement_delay_months,
    retirement_month,
)
from declare_app._retirement import default_window

M = RetirementCategory.MALE
F55 = RetirementCategory.FEMALE_55
F50 = RetirementCategory.FEMALE_50
STEP = {M: 4, F55: 4, F50: 2}
CAP_BIRTH = {M: YearMonth(1976, 9), F55: YearMonth(1981, 9), F50: YearMonth(1984, 11)}


def born(year: int, month: int, day: int = 15) -> date:
    return date(year, month, day)


# --- §3.2 anchor table: every row -----------------------------------------------------


# birth month, category, delay months, statutory age (years, months), retirement month
TABLE_3_2 = [
    ((1964, 12), M, 0, (60, 0), (2024, 12)),
    ((1965, 1), M, 1, (60, 1), (2025, 2)),
    ((1965, 4), M, 1, (60, 1), (2025, 5)),
    ((1965, 5), M, 2, (60, 2), (2025, 7)),
    ((1970, 6), M, 17, (61, 5), (2031, 11)),
    ((1976, 8), M, 35, (62, 11), (2039, 7)),
    ((1976, 9), M, 36, (63, 0), (2039, 9)),
    ((1970, 1), F55, 1, (55, 1), (2025, 2)),
    ((1971, 4), F55, 4, (55, 4), (2026, 8)),
    ((1981, 9), F55, 36, (58, 0), (2039, 9)),
    ((1975, 1), F50, 1, (50, 1), (2025, 2)),
    ((1975, 3), F50, 2, (50, 2), (2025, 5)),
    ((1984, 10), F50, 59, (54, 11), (2039, 9)),
    ((1984, 11), F50, 60, (55, 0), (2039, 11)),
]
Row = tuple[tuple[int, int], RetirementCategory, int, tuple[int, int], tuple[int, int]]


@pytest.mark.parametrize("row", TABLE_3_2, ids=lambda r: f"{r[0][0]}-{r[0][1]:02d}-{r[1].name}")
@pytest.mark.parametrize("day", [1, 15, 28])
def test_domain_table_row_gives_delay_age_and_retirement_month(row: Row, day: int) -> None:
    """Each row of DOMAIN §3.2, for several days of the birth month (only the month counts)."""
    birth, category, delay, age, month = row
    birth_date = born(*birth, day=day)
    assert retirement_delay_months(birth_date, category) == delay
    assert divmod(retirement_age_months(birth_date, category), 12) == age
    assert retirement_month(birth_date, category) == month


@pytest.mark.parametrize("category", [M, F55, F50])
def test_the_cap_is_reached_exactly_at_the_domain_cap_birth_month(
    category: RetirementCategory,
) -> None:
    """Men born 1976-09, original-55 women 1981-09, original-50 women 1984-11 and later
    retire at 63 / 58 / 55; one month earlier is still below the cap."""
    cap_birth = CAP_BIRTH[category]
    before = cap_birth.plus_months(-1)
    final = final_retirement_age_months(category)
    assert final == {M: 63 * 12, F55: 58 * 12, F50: 55 * 12}[category]
    assert retirement_age_months(born(*cap_birth), category) == final
    assert retirement_age_months(born(*before), category) == final - 1


@pytest.mark.parametrize(
    ("category", "last_unchanged"),
    [(M, YearMonth(1964, 12)), (F55, YearMonth(1969, 12)), (F50, YearMonth(1974, 12))],
)
def test_persons_originally_retiring_before_2025_keep_the_original_age(
    category: RetirementCategory, last_unchanged: YearMonth
) -> None:
    for birth in (last_unchanged, last_unchanged.plus_months(-1), YearMonth(1930, 1)):
        assert retirement_delay_months(born(*birth), category) == 0
    assert retirement_delay_months(born(*last_unchanged.plus_months(1)), category) == 1


def test_the_transition_ends_by_the_end_of_2039() -> None:
    """Fifteen years: the last person whose age still rises retires in 2039."""
    for category in (M, F55, F50):
        assert retirement_month(born(*CAP_BIRTH[category]), category).year == 2039


# --- properties -----------------------------------------------------------------------

births = st.dates(min_value=date(1940, 1, 1), max_value=date(2010, 12, 31))
categories = st.sampled_from([M, F55, F50])


@given(births, births, categories)
def test_a_later_birth_never_retires_earlier(
    a: date, b: date, category: RetirementCategory
) -> None:
    first, second = sorted((a, b))
    assert retirement_month(first, category) <= retirement_month(second, category)
    if YearMonth.of(first) < YearMonth.of(second):
        assert retirement_month(first, category) < retirement_month(second, category)


@given(births, categories)
def test_the_age_stays_between_the_original_and_the_final_statutory_age(
    birth: date, category: RetirementCategory
) -> None:
    age = retirement_age_months(birth, category)
    original = {M: 60, F55: 55, F50: 50}[category] * 12
    assert original <= age <= final_retirement_age_months(category)


@given(births, st.integers(0, 240), categories)
def test_the_delay_grows_by_at_most_one_month_per_step_of_birth_months(
    birth: date, later_by: int, category: RetirementCategory
) -> None:
    """+1 month per 4 months of birth (men, original-55 women) or per 2 (original-50 women)."""
    later = YearMonth.of(birth).plus_months(later_by)
    d1 = retirement_delay_months(birth, category)
    d2 = retirement_delay_months(born(*later), category)
    step = STEP[category]
    assert 0 <= d2 - d1 <= -(-later_by // step)


@given(births, categories)
def test_one_step_later_adds_exactly_one_month_while_the_schedule_runs(
    birth: date, category: RetirementCategory
) -> None:
    delay = retirement_delay_months(birth, category)
    later = retirement_delay_months(
        born(*YearMonth.of(birth).plus_months(STEP[category])), category
    )
    cap = final_retirement_age_months(category) - {M: 720, F55: 660, F50: 600}[category]
    if 0 < delay < cap:
        assert later == delay + 1


@given(births, categories)
def test_from_the_cap_birth_month_on_the_age_is_the_final_age(
    birth: date, category: RetirementCategory
) -> None:
    at_cap = YearMonth.of(birth) >= CAP_BIRTH[category]
    assert (
        retirement_age_months(birth, category) == final_retirement_age_months(category)
    ) == at_cap


# --- §3.1 categories ----------------------------------------------------------------


def test_category_follows_gender_then_staff_kind() -> None:
    assert retirement_category(Gender.MALE, StaffKind.CADRE) is M
    assert retirement_category(Gender.MALE, StaffKind.WORKER) is M
    assert retirement_category(Gender.FEMALE, StaffKind.CADRE) is F55
    assert retirement_category(Gender.FEMALE, StaffKind.WORKER) is F50


# --- §3.3 minimum contribution and flexible retirement ------------------------------


@pytest.mark.parametrize(
    ("year", "months"),
    [
        (2000, 180),
        (2025, 180),
        (2029, 180),
        (2030, 186),
        (2031, 192),
        (2035, 216),
        (2038, 234),
        (2039, 240),
        (2050, 240),
    ],
)
def test_minimum_contribution_is_15_years_until_2029_then_rises_6_months_a_year_to_20(
    year: int, months: int
) -> None:
    assert minimum_contribution_months(year) == months


def test_flexible_early_retirement_is_never_before_the_original_age() -> None:
    """A man born 1970-06 (statutory 2031-11) may go early only back to 60, i.e. 2030-06."""
    assert flexible_earliest_month(born(1970, 6), M) == (2030, 6)
    assert flexible_latest_month(born(1970, 6), M) == (2034, 11)


def test_flexible_late_retirement_applies_only_from_a_statutory_month_in_2025() -> None:
    """Issue 14 defect 1, 人社部发〔2024〕94号: flexible retirement is for persons reaching
    the statutory age on or after 2025-01-01.  A man born 1964-06 reached it in 2024-06
    and is past age (not "最迟至2027-06"); one born 1965-01 (2025-02) may go to 2028-02."""
    assert flexible_latest_month(born(1964, 6), M) is None
    assert flexible_latest_month(born(1964, 12), M) is None
    assert flexible_latest_month(born(1965, 1), M) == (2028, 2)


def test_flexible_early_retirement_for_original_50_women_is_three_years_before_statutory() -> None:
    """Original-50 women born 1984-11 retire at 55 (2039-11); early back to 52 (2036-11)."""
    assert flexible_earliest_month(born(1984, 11), F50) == (2036, 11)


@given(births, categories)
def test_flexible_bounds_bracket_the_statutory_month_by_at_most_three_years(
    birth: date, category: RetirementCategory
) -> None:
    statutory = retirement_month(birth, category)
    earliest = flexible_earliest_month(birth, category)
    latest = flexible_latest_month(birth, category)
    assert 0 <= statutory.months_since(earliest) <= 36
    if statutory < YearMonth(2025, 1):  # 人社部发〔2024〕94号: from 2025-01-01 only
        assert latest is None
    else:
        assert latest is not None and latest.months_since(statutory) == 36
    original = {M: 60, F55: 55, F50: 50}[category]
    assert earliest >= YearMonth.of(birth).plus_months(original * 12)


# --- §3.4 query -------------------------------------------------------------------


def person(
    number: str,
    gender: Gender,
    birth: date,
    *,
    staff_kind: StaffKind = StaffKind.WORKER,
    payment_status: str = "1",
    contribution_months: int = 200,
    override_month: YearMonth | None = None,
) -> InsuredPerson:
    return InsuredPerson(
        person_number=number,
        name=f"人员{number}",
        id_number="",
        gender=gender,
        birth_date=birth,
        staff_kind=staff_kind,
        payment_status=payment_status,
        contribution_months=contribution_months,
        override_month=override_month,
    )


NOW = YearMonth(2025, 6)


def test_default_window_is_this_month_and_the_five_after() -> None:
    assert default_window(NOW) == ((2025, 6), (2025, 11))


def test_query_lists_persons_whose_statutory_month_is_in_the_window() -> None:
    persons = [
        person("A", Gender.MALE, born(1965, 5)),  # 2025-07
        person("B", Gender.FEMALE, born(1975, 3)),  # worker, original 50: 2025-05 — before window
        person("C", Gender.FEMALE, born(1970, 4), staff_kind=StaffKind.CADRE),  # 55y1m: 2025-05
        person("D", Gender.FEMALE, born(1975, 5)),  # worker: 50y3m → 2025-08
        person("E", Gender.MALE, born(1965, 9)),  # 60y3m → 2025-12, after window
    ]
    rows = persons_reaching_retirement(
        persons, from_month=NOW, to_month=YearMonth(2025, 11), current_month=NOW
    )
    assert [(r.person_number, r.statutory_month) for r in rows] == [
        ("A", (2025, 7)),
        ("D", (2025, 8)),
    ]
    a = rows[0]
    assert (a.original_age, a.delay_months, a.statutory_age) == (60, 2, (60, 2))
    assert a.birth_month == (1965, 5)
    assert not a.overdue_still_contributing and not a.overridden


def test_query_with_overdue_flags_persons_past_their_month_still_contributing() -> None:
    persons = [
        person("B", Gender.FEMALE, born(1975, 3)),  # 2025-05, one month overdue
        person("F", Gender.MALE, born(1960, 1)),  # 2020-01
        person("G", Gender.MALE, born(1960, 1), payment_status="2"),  # suspended: not listed
        person("H", Gender.MALE, born(1960, 1), payment_status="3"),  # terminated: not listed
    ]
    end = YearMonth(2025, 11)
    assert (
        persons_reaching_retirement(persons, from_month=NOW, to_month=end, current_month=NOW) == []
    )
    rows = persons_reaching_retirement(
        persons, from_month=NOW, to_month=end, current_month=NOW, include_overdue=True
    )
    assert [(r.person_number, r.overdue_still_contributing) for r in rows] == [
        ("F", True),
        ("B", True),
    ]


def test_query_applies_a_per_person_override_month() -> None:
    """ "国家另有规定的，从其规定": a special-post man retiring at 55 in 2025-08."""
    special = person("S", Gender.MALE, born(1970, 8), override_month=YearMonth(2025, 8))
    (row,) = persons_reaching_retirement(
        [special], from_month=NOW, to_month=YearMonth(2025, 11), current_month=NOW
    )
    assert row.statutory_month == (2025, 8)
    assert row.statutory_age == (55, 0)
    assert row.overridden
    assert (
        row.delay_months is None and row.flexible_earliest is None and row.flexible_latest is None
    )


def test_query_reports_the_minimum_contribution_of_the_retirement_year() -> None:
    short = person("T", Gender.MALE, born(1970, 6), contribution_months=185)  # retires 2031-11
    enough = person("U", Gender.MALE, born(1970, 6), contribution_months=192)
    rows = persons_reaching_retirement(
        [short, enough],
        from_month=YearMonth(2031, 1),
        to_month=YearMonth(2031, 12),
        current_month=NOW,
    )
    assert [(r.person_number, r.minimum_contribution_months, r.meets_minimum) for r in rows] == [
        ("T", 192, False),
        ("U", 192, True),
    ]
    assert rows[0].flexible_earliest == (2030, 6) and rows[0].flexible_latest == (2034, 11)


def test_query_refuses_a_window_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="from_month"):
        persons_reaching_retirement(
            [], from_month=YearMonth(2025, 7), to_month=NOW, current_month=NOW
        )


def test_year_month_arithmetic_crosses_years_both_ways() -> None:
    assert YearMonth(2025, 12).plus_months(1) == (2026, 1)
    assert YearMonth(2025, 1).plus_months(-1) == (2024, 12)
    assert YearMonth(2026, 1).months_since(YearMonth(2024, 12)) == 13
