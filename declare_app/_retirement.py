"""Statutory retirement age and the "unit persons reaching retirement age" query, DOMAIN.md §3.

Owns: the original ages (§3.1), the gradual increase from 2025-01-01 under the 2024
decision of the NPC Standing Committee (§3.2), the minimum contribution years and the
flexible-retirement bounds (§3.3), and the rows of 单位到龄人员查询 (§3.4) computed over
persons the caller has already loaded.  Pure functions: the current month is a
parameter, months are :class:`YearMonth` values, nothing reads a clock or a database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from declare_app._person_id import Gender

FLEXIBLE_MONTHS = 36  # flexible early or late retirement: at most 3 years either way


class YearMonth(NamedTuple):
    """A calendar month; compares and sorts chronologically."""

    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> YearMonth:
        return cls(day.year, day.month)

    def plus_months(self, months: int) -> YearMonth:
        year, month0 = divmod(self.year * 12 + self.month - 1 + months, 12)
        return YearMonth(year, month0 + 1)

    def months_since(self, other: YearMonth) -> int:
        """How many months *other* is before this month (negative if after)."""
        return (self.year - other.year) * 12 + self.month - other.month


class RetirementCategory(enum.Enum):
    """The three groups of the 2024 decision, named by their original statutory age.

    The law names the women's groups by original age, not by post; DOMAIN §3.1 derives
    the group from 人员身份 (干部 → 55, 工人 → 50), see :func:`retirement_category`.
    """

    MALE = "男职工"
    FEMALE_55 = "原法定退休年龄55周岁的女职工"
    FEMALE_50 = "原法定退休年龄50周岁的女职工"


class StaffKind(enum.Enum):
    """人员身份 as the Xi'an form codes it (DOMAIN §3.1)."""

    CADRE = "干部"  # form code A
    WORKER = "工人"  # form code B


@dataclass(frozen=True)
class _Schedule:
    original_age: int  # years
    step: int  # months of birth per month of delay
    cap: int  # maximum delay in months


_SCHEDULES = {
    RetirementCategory.MALE: _Schedule(60, 4, 36),
    RetirementCategory.FEMALE_55: _Schedule(55, 4, 36),
    RetirementCategory.FEMALE_50: _Schedule(50, 2, 60),
}
_REFORM_START = YearMonth(2025, 1)


def retirement_category(gender: Gender, staff_kind: StaffKind) -> RetirementCategory:
    """The §3.2 group: every man is MALE; a woman by her 人员身份."""
    if gender is Gender.MALE:
        return RetirementCategory.MALE
    if staff_kind is StaffKind.CADRE:
        return RetirementCategory.FEMALE_55
    return RetirementCategory.FEMALE_50


def original_retirement_age(category: RetirementCategory) -> int:
    """The statutory age in years before 2025 (§3.1): 60, 55 or 50."""
    return _SCHEDULES[category].original_age


def final_retirement_age_months(category: RetirementCategory) -> int:
    """The age once the transition is complete: 63, 58 or 55 years, in months."""
    schedule = _SCHEDULES[category]
    return schedule.original_age * 12 + schedule.cap


def retirement_delay_months(birth_date: date, category: RetirementCategory) -> int:
    """Months added to the original age: one per ``step`` months of birth since the
    first person whose original retirement month is January 2025, up to the cap.

    Only the month of birth counts; the day does not.
    """
    schedule = _SCHEDULES[category]
    original_month = YearMonth.of(birth_date).plus_months(schedule.original_age * 12)
    n = original_month.months_since(_REFORM_START) + 1  # 1 = originally retiring Jan 2025
    if n <= 0:
        return 0
    return min(-(-n // schedule.step), schedule.cap)


def retirement_age_months(birth_date: date, category: RetirementCategory) -> int:
    """The statutory retirement age in months (e.g. 721 for 60 years 1 month)."""
    return original_retirement_age(category) * 12 + retirement_delay_months(birth_date, category)


def retirement_month(birth_date: date, category: RetirementCategory) -> YearMonth:
    """The month in which the person reaches the statutory retirement age."""
    return YearMonth.of(birth_date).plus_months(retirement_age_months(birth_date, category))


def minimum_contribution_months(retirement_year: int) -> int:
    """Contribution months needed for a monthly pension when retiring in *retirement_year*:
    180 until 2029, then 6 more each year from 2030, reaching 240 in 2039 (§3.3)."""
    return 180 + 6 * min(max(retirement_year - 2029, 0), 10)


def flexible_earliest_month(birth_date: date, category: RetirementCategory) -> YearMonth:
    """The earliest month for flexible early retirement, if the minimum years are met:
    3 years before the statutory month, never before the original age (§3.3)."""
    birth = YearMonth.of(birth_date)
    return max(
        retirement_month(birth_date, category).plus_months(-FLEXIBLE_MONTHS),
        birth.plus_months(original_retirement_age(category) * 12),
    )


def flexible_latest_month(birth_date: date, category: RetirementCategory) -> YearMonth | None:
    """The latest month for flexible late retirement (with the employer's agreement),
    or ``None`` when it does not apply: 人社部发〔2024〕94号 opens flexible retirement to
    persons reaching the statutory age on or after 2025-01-01, so a man born 1964-06
    (statutory month 2024-06) is simply past age."""
    statutory = retirement_month(birth_date, category)
    if statutory < _REFORM_START:
        return None
    return statutory.plus_months(FLEXIBLE_MONTHS)


@dataclass(frozen=True)
class InsuredPerson:
    """What the §3.4 query needs of one person enrolled with the unit.

    ``payment_status`` is the AAC031 code ("1" contributing, "2" suspended,
    "3" terminated); ``override_month`` replaces the computed statutory month where
    "国家另有规定" (special posts, illness retirement).
    """

    person_number: str  # 个人编号
    name: str
    id_number: str
    gender: Gender
    birth_date: date
    staff_kind: StaffKind
    payment_status: str
    contribution_months: int  # 累计缴费月数
    override_month: YearMonth | None = None


@dataclass(frozen=True)
class RetirementRow:
    """One line of 单位到龄人员查询, fields in the order DOMAIN §3.4 lists them.

    For a person with an override, ``delay_months`` and the flexible bounds are
    ``None``: the automatic schedule does not apply to them.
    """

    person_number: str  # 个人编号
    name: str  # 姓名
    id_number: str  # 身份证号
    gender: Gender  # 性别
    birth_month: YearMonth  # 出生年月
    staff_kind: StaffKind  # 人员身份
    original_age: int  # 原法定退休年龄 (years)
    delay_months: int | None  # 延迟月数
    statutory_age_months: int  # 法定退休年龄(岁+月), see statutory_age
    statutory_month: YearMonth  # 法定退休年月
    contribution_months: int  # 累计缴费月数
    minimum_contribution_months: int  # 当年最低缴费年限, in the statutory month's year
    meets_minimum: bool  # 是否满足最低年限
    flexible_earliest: YearMonth | None  # 弹性提前最早年月
    flexible_latest: YearMonth | None  # 弹性延迟最晚年月
    overdue_still_contributing: bool  # 已到龄仍在缴费
    overridden: bool

    @property
    def statutory_age(self) -> tuple[int, int]:
        """The statutory age as (years, months)."""
        years, months = divmod(self.statutory_age_months, 12)
        return years, months


def default_window(current_month: YearMonth) -> tuple[YearMonth, YearMonth]:
    """The §3.4 default window, "the next 6 months": this month and the five after."""
    return current_month, current_month.plus_months(5)


def _row(person: InsuredPerson, current_month: YearMonth) -> RetirementRow:
    category = retirement_category(person.gender, person.staff_kind)
    birth = YearMonth.of(person.birth_date)
    delay: int | None
    earliest: YearMonth | None
    latest: YearMonth | None
    if person.override_month is not None:
        month = person.override_month
        delay = earliest = latest = None
    else:
        month = retirement_month(person.birth_date, category)
        delay = retirement_delay_months(person.birth_date, category)
        earliest = flexible_earliest_month(person.birth_date, category)
        latest = flexible_latest_month(person.birth_date, category)
    minimum = minimum_contribution_months(month.year)
    return RetirementRow(
        person_number=person.person_number,
        name=person.name,
        id_number=person.id_number,
        gender=person.gender,
        birth_month=birth,
        staff_kind=person.staff_kind,
        original_age=original_retirement_age(category),
        delay_months=delay,
        statutory_age_months=month.months_since(birth),
        statutory_month=month,
        contribution_months=person.contribution_months,
        minimum_contribution_months=minimum,
        meets_minimum=person.contribution_months >= minimum,
        flexible_earliest=earliest,
        flexible_latest=latest,
        overdue_still_contributing=month < current_month and person.payment_status == "1",
        overridden=person.override_month is not None,
    )


def persons_reaching_retirement(
    persons: Iterable[InsuredPerson],
    *,
    from_month: YearMonth,
    to_month: YearMonth,
    current_month: YearMonth,
    include_overdue: bool = False,
) -> list[RetirementRow]:
    """单位到龄人员查询 over one unit's persons (the caller selects the unit).

    Lists every contributing person (AAC031 = "1") whose statutory month falls in
    ``[from_month, to_month]``; with *include_overdue*, also those whose statutory
    month is already before *current_month*.  Sorted by statutory month, then
    person number.
    """
    if from_month > to_month:
        raise ValueError("from_month is after to_month")
    rows = []
    for person in persons:
        if person.payment_status != "1":
            continue
        row = _row(person, current_month)
        in_window = from_month <= row.statutory_month <= to_month
        if in_window or (include_overdue and row.statutory_month < current_month):
            rows.append(row)
    rows.sort(key=lambda r: (r.statutory_month, r.person_number))
    return rows
