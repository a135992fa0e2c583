"""Unified social credit codes (GB 32100-2015), DOMAIN.md §1.2 vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc as stdnum_uscc

from declare_app import IdentifierError, check_uscc, uscc_check_char, validate_uscc
from declare_app._identifiers import USCC_CHARSET, normalise_uscc, org_code_check_char


def test_the_standards_worked_example_is_valid_with_check_char_3() -> None:
    assert check_uscc("91350100M000100Y43") == []


def test_the_misprinted_example_with_Z_is_refused() -> None:
    findings = check_uscc("91350100M000100Y4Z")
    assert findings[0].rule == "USCC-02" and findings[0].severity == "error"


def test_a_wrong_check_character_is_an_error_naming_the_expected_one() -> None:
    with pytest.raises(IdentifierError, match="USCC-03: check character is '4', expected '3'"):
        validate_uscc("91350100M000100Y44")


def test_weighted_sum_divisible_by_31_gives_check_char_0() -> None:
    """The outer mod 31 of DOMAIN §1.2: an implementation without it indexes past the end."""
    assert uscc_check_char("91330604MA2BCDEFR") == "0"


def test_embedded_organisation_code_check_is_a_warning_only() -> None:
    assert org_code_check_char("M000100Y") == "4"
    first17 = "91350100M000100Y5"  # org check char wrong (5, expected 4)
    code = first17 + uscc_check_char(first17)
    findings = validate_uscc(code)
    assert [f.rule for f in findings] == ["USCC-05"]
    assert findings[0].severity == "warning"


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("91350100M000100Y4", "USCC-01"),
        ("91350100m000100y43", "USCC-01"),
        ("91350100M000100I43", "USCC-02"),
        ("９1350100M000100Y43", "USCC-02"),
    ],
)
def test_malformed_codes_are_errors(code: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as info:
        validate_uscc(code)
    assert info.value.findings[0].rule == rule


def test_letter_authorities_pass_where_stdnum_would_refuse() -> None:
    """python-stdnum requires 8 leading digits; authority N (agriculture) codes start with N."""
    first17 = "N2330604MA2BCDEF" + org_code_check_char("MA2BCDEF")
    code = first17 + uscc_check_char(first17)
    assert validate_uscc(code) == []
    assert not stdnum_uscc.is_valid(code)


@given(
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.text(alphabet=USCC_CHARSET, min_size=9, max_size=9),
)
def test_check_character_agrees_with_python_stdnum(prefix: str, rest: str) -> None:
    first17 = prefix + rest
    code = first17 + uscc_check_char(first17)
    assert stdnum_uscc.is_valid(code)
    assert not any(f.severity == "error" for f in check_uscc(code))


@pytest.mark.parametrize(
    "typed",
    [
        "91350100M000100Y43",
        "91350100m000100y43",
        "９１３５０１００Ｍ０００１００Ｙ４３",
        " 9135 0100 M000 100Y 43 ",
    ],
)
def test_full_width_lower_case_and_spaced_codes_are_read_as_ascii_upper_case(typed: str) -> None:
    """Issue 14 defect 4: credit codes are normalised before checking, as ID numbers are."""
    assert normalise_uscc(typed) == "91350100M000100Y43"
    assert validate_uscc(normalise_uscc(typed)) == []
