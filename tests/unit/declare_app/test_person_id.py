"""Citizen identity numbers (GB 11643-1999), DOMAIN.md §1.1 rules ID-01 to ID-09 and its vectors."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric as stdnum_ric

from declare_app import (
    Gender,
    IdentifierError,
    PersonId,
    PersonIdKind,
    check_person_id,
    parse_person_id,
    person_id_check_char,
    upgrade_legacy_id,
)

TODAY = date(2025, 6, 1)


def rules(
    text: str,
    *,
    declared_gender: Gender | None = None,
    declared_birth_date: date | None = None,
    employment_start: date | None = None,
) -> list[tuple[str, str]]:
    findings = check_person_id(
        text,
        today=TODAY,
        declared_gender=declared_gender,
        declared_birth_date=declared_birth_date,
        employment_start=employment_start,
    )
    return [(f.rule, f.severity) for f in findings]


def with_check(first17: str) -> str:
    return first17 + person_id_check_char(first17)


# --- DOMAIN §1.1 test vectors -------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "birth", "gender"),
    [
        ("11010519491231002X", date(1949, 12, 31), Gender.FEMALE),  # the standard's example
        ("370101190102039973", date(1901, 2, 3), Gender.MALE),  # zhshbaida.com worked example
        ("360426199101010071", date(1991, 1, 1), Gender.MALE),  # dataprep docs
        ("230306196304054513", date(1963, 4, 5), Gender.MALE),  # dataprep docs
        ("110101202311012176", date(2023, 11, 1), Gender.MALE),  # docs.rs china_identification_card
    ],
)
def test_domain_valid_vectors_parse_with_birth_date_and_gender(
    number: str, birth: date, gender: Gender
) -> None:
    assert check_person_id(number, today=TODAY) == []
    assert parse_person_id(number, today=TODAY) == PersonId(
        number=number, region=number[:6], birth_date=birth, gender=gender, kind=PersonIdKind.CITIZEN
    )


@pytest.mark.parametrize(
    ("number", "expected"),
    [("230307196304054513", "X"), ("110101202311012171", "6")],
)
def test_domain_invalid_vectors_fail_only_the_check_character(number: str, expected: str) -> None:
    findings = check_person_id(number, today=TODAY)
    assert [(f.rule, f.severity) for f in findings] == [("ID-05", "error")]
    assert f"expected {expected!r}" in findings[0].message


def test_the_standards_1880_example_has_a_valid_check_digit_but_fails_the_1900_floor() -> None:
    assert person_id_check_char("44052418800101001") == "4"
    findings = check_person_id("440524188001010014", today=TODAY)
    assert [(f.rule, f.severity) for f in findings] == [("ID-04", "error")]
    assert "1900-01-01" in findings[0].message


def test_check_characters_of_all_valid_vectors_agree_with_python_stdnum() -> None:
    for number in [
        "11010519491231002X",
        "440524188001010014",
        "370101190102039973",
        "360426199101010071",
        "230306196304054513",
        "110101202311012176",
    ]:
        assert (
            stdnum_ric.calc_check_digit(number) == number[17] == person_id_check_char(number[:17])
        )


def test_a_county_code_younger_than_the_holder_is_accepted_where_stdnum_refuses() -> None:
    """230306 dates from 1983 in stdnum's table; the holder was born in 1963.  The code is
    the one in force when the number was issued, so DOMAIN accepts it."""
    assert not stdnum_ric.is_valid("230306196304054513")
    assert parse_person_id("230306196304054513", today=TODAY).region == "230306"


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_character_agrees_with_python_stdnum_on_any_body(body: str) -> None:
    assert person_id_check_char(body) == stdnum_ric.calc_check_digit(body + "0")


# --- ID-01, ID-02: structure and the legacy 15-digit form ---------------------------


@pytest.mark.parametrize(
    "text", ["", "1101051949123100", "11010519491231002XX", "1101051949123100201"]
)
def test_a_length_other_than_15_or_18_is_an_id01_error(text: str) -> None:
    assert rules(text) == [("ID-01", "error")]


@pytest.mark.parametrize(
    "text",
    [
        "11010519491231002Y",  # check character neither digit nor X
        "1101051949123100X2",  # X only allowed last
        "１1010519491231002X",  # full-width digit
        "110105 9491231002X",  # embedded space
        "11010519491231002Ⅹ",  # Roman numeral ten, not the letter X
        "11010549123100A",  # 15 characters with a letter
    ],
)
def test_non_digit_characters_are_an_id02_error(text: str) -> None:
    assert rules(text) == [("ID-02", "error")]


def test_lower_case_x_is_accepted_and_normalised_to_upper_case() -> None:
    assert check_person_id("11010519491231002x", today=TODAY) == []
    assert parse_person_id("11010519491231002x", today=TODAY).number == "11010519491231002X"


def test_surrounding_whitespace_is_not_stripped() -> None:
    assert rules(" 11010519491231002X") == [("ID-01", "error")]


def test_a_legacy_15_digit_number_is_upgraded_with_a_warning() -> None:
    assert upgrade_legacy_id("110105491231002") == "11010519491231002X"
    assert rules("110105491231002") == [("ID-01", "warning")]
    person = parse_person_id("110105491231002", today=TODAY)
    assert person.number == "11010519491231002X"
    assert person.birth_date == date(1949, 12, 31)
    assert person.gender is Gender.FEMALE


def test_a_legacy_number_with_an_impossible_date_is_refused_after_upgrade() -> None:
    assert rules("110105490231002") == [("ID-01", "warning"), ("ID-04", "error")]


def test_a_legacy_number_is_always_a_citizen_number_checked_for_its_province() -> None:
    """The 1989 standard knew no 永居证: an upgraded number starting with 9 is no exception."""
    assert rules("930604900101001") == [("ID-01", "warning"), ("ID-03", "error")]
    person = parse_person_id("810000900101002", today=TODAY)
    assert person.kind is PersonIdKind.CITIZEN


def test_helpers_refuse_bodies_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        person_id_check_char("1101051949123100")
    with pytest.raises(ValueError, match="15 ASCII digits"):
        upgrade_legacy_id("11010549123100X")


# --- ID-03: province prefix; residence permits and the 2023 永居证 --------------------


@pytest.mark.parametrize("prefix", ["000000", "101010", "160000", "720000", "840000"])
def test_a_prefix_outside_the_province_list_is_an_id03_error(prefix: str) -> None:
    number = with_check(prefix + "19900101001")
    assert ("ID-03", "error") in rules(number)
    with pytest.raises(IdentifierError, match="ID-03"):
        parse_person_id(number, today=TODAY)


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("810000", PersonIdKind.RESIDENCE_PERMIT),
        ("820000", PersonIdKind.RESIDENCE_PERMIT),
        ("830000", PersonIdKind.RESIDENCE_PERMIT),
        ("933156", PersonIdKind.FOREIGN_PERMANENT_RESIDENT),
    ],
)
def test_residence_permits_and_new_permanent_residence_cards_are_accepted(
    prefix: str, kind: PersonIdKind
) -> None:
    number = with_check(prefix + "19900101002")
    assert check_person_id(number, today=TODAY) == []
    person = parse_person_id(number, today=TODAY)
    assert person.kind is kind
    assert person.birth_date == date(1990, 1, 1)
    assert person.gender is Gender.FEMALE


# --- ID-04: birth date --------------------------------------------------------------


@pytest.mark.parametrize("birth", ["19900230", "19000229", "19901301", "19900100", "00000000"])
def test_a_birth_date_that_is_not_a_calendar_date_is_an_id04_error(birth: str) -> None:
    assert rules(with_check("330604" + birth + "001")) == [("ID-04", "error")]


def test_29_february_of_a_leap_year_is_a_birth_date() -> None:
    assert parse_person_id(with_check("33060420000229001"), today=TODAY).birth_date == date(
        2000, 2, 29
    )


def test_a_birth_date_today_is_accepted_and_tomorrow_is_an_id04_error() -> None:
    today = date(2025, 6, 1)
    assert check_person_id(with_check("33060420250601001"), today=today) == []
    findings = check_person_id(with_check("33060420250602001"), today=today)
    assert [(f.rule, f.severity) for f in findings] == [("ID-04", "error")]
    assert "future" in findings[0].message and "晚于今天" in findings[0].message


def test_1900_01_01_is_the_earliest_birth_date_accepted() -> None:
    assert check_person_id(with_check("33060419000101001"), today=TODAY) == []
    assert rules(with_check("33060418991231001")) == [("ID-04", "error")]


@given(st.dates(min_value=date(1900, 1, 1), max_value=TODAY), st.integers(0, 999))
def test_any_real_past_birth_date_round_trips(birth: date, sequence: int) -> None:
    number = with_check(f"330604{birth:%Y%m%d}{sequence:03d}")
    person = parse_person_id(number, today=TODAY)
    assert person.birth_date == birth
    assert person.gender is (Gender.MALE if sequence % 2 else Gender.FEMALE)


@given(st.dates(min_value=TODAY + timedelta(days=1), max_value=date(9999, 12, 31)))
def test_any_future_birth_date_is_refused(birth: date) -> None:
    assert rules(with_check(f"330604{birth:%Y%m%d}001")) == [("ID-04", "error")]


# --- ID-05: check character ---------------------------------------------------------


@given(st.text(alphabet="0123456789", min_size=1, max_size=1))
def test_changing_any_body_digit_breaks_the_check(replacement: str) -> None:
    number = "11010519491231002X"
    for i in range(17):
        if number[i] == replacement:
            continue
        changed = number[:i] + replacement + number[i + 1 :]
        assert ("ID-05", "error") in rules(changed)


def test_errors_are_all_reported_with_chinese_and_english_text() -> None:
    with pytest.raises(IdentifierError) as info:
        parse_person_id("000000199002300010", today=TODAY)
    assert [f.rule for f in info.value.findings] == ["ID-03", "ID-04", "ID-05"]
    for finding in info.value.findings:
        zh, en = finding.message.split(" / ")
        assert any("\u4e00" <= c <= "\u9fff" for c in zh)
        assert en.isascii()


# --- ID-06, ID-07, ID-09: comparisons with the form ---------------------------------


def test_the_17th_digit_gives_gender_odd_male_even_female() -> None:
    assert parse_person_id(with_check("33060419900101001"), today=TODAY).gender is Gender.MALE
    assert parse_person_id(with_check("33060419900101010"), today=TODAY).gender is Gender.FEMALE


def test_a_declared_gender_that_differs_is_an_id06_error() -> None:
    assert rules("11010519491231002X", declared_gender=Gender.FEMALE) == []
    assert rules("11010519491231002X", declared_gender=Gender.MALE) == [("ID-06", "error")]


def test_a_declared_birth_date_that_differs_is_an_id07_error() -> None:
    assert rules("11010519491231002X", declared_birth_date=date(1949, 12, 31)) == []
    assert rules("11010519491231002X", declared_birth_date=date(1949, 12, 30)) == [
        ("ID-07", "error")
    ]


def test_employment_before_the_16th_birthday_is_an_id09_error() -> None:
    number = with_check("33060420090601001")  # born 2009-06-01
    assert rules(number, employment_start=date(2025, 5, 31)) == [("ID-09", "error")]
    assert rules(number, employment_start=date(2025, 6, 1)) == []


def test_parse_applies_the_form_comparisons_too() -> None:
    with pytest.raises(IdentifierError, match="ID-06"):
        parse_person_id("11010519491231002X", today=TODAY, declared_gender=Gender.MALE)


# --- ID-08: address code known (warning only) ---------------------------------------


@pytest.mark.parametrize("region", ["330604", "330682"])
def test_both_shangyu_codes_current_and_historic_are_known(region: str) -> None:
    """330682 上虞市 (until 2013) and 330604 上虞区 (since 2013) must both pass."""
    assert check_person_id(with_check(region + "19800101001"), today=TODAY) == []


def test_an_unknown_address_code_in_a_known_province_is_only_a_warning() -> None:
    number = with_check("339999" + "19800101001")
    assert rules(number) == [("ID-08", "warning")]
    assert parse_person_id(number, today=TODAY).region == "339999"
