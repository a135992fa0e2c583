"""Account names: ``<6-digit region><8-digit unit code>@<realm>``, parsed strictly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth import (
    AccountName,
    AccountNameError,
    is_valid_region_code,
    is_valid_unit_code,
    parse_account_name,
)

REALMS = ("sxlss",)
REGIONS = ("330682", "330604")


def parse(text: str) -> AccountName:
    return parse_account_name(text, realms=REALMS, regions=REGIONS)


def test_the_documented_example_parses_into_its_parts_and_prints_back() -> None:
    name = parse("33068212345678@sxlss")
    assert name == AccountName(region="330682", unit_code="12345678", realm="sxlss")
    assert str(name) == "33068212345678@sxlss"


def test_thirteen_digits_are_refused_with_the_count_in_the_message() -> None:
    with pytest.raises(AccountNameError) as caught:
        parse("3306821234567@sxlss")
    assert str(caught.value) == (
        "account '3306821234567@sxlss': the part before '@' must be exactly 14 digits "
        "(6-digit region + 8-digit unit code), got 13"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("33068212345678@@sxlss", ["exactly one '@'", "got 2"]),
        ("33068212345678sxlss", ["exactly one '@'", "got 0"]),
        ("３３０６８２１２３４５６７８@sxlss", ["non-ASCII digit", "U+FF13", "position 1"]),
        ("3306821234567٨@sxlss", ["non-ASCII digit", "U+0668", "position 14"]),
        ("33068212345678@other", ["unknown realm 'other'", "allowed: sxlss"]),
        ("33068212345678@SXLSS", ["unknown realm 'SXLSS'", "allowed: sxlss"]),
        ("33068112345678@sxlss", ["unknown region '330681'", "allowed: 330604, 330682"]),
        ("33068212345678@sxlss ", ["whitespace", "position 21"]),
        (" 33068212345678@sxlss", ["whitespace", "position 1"]),
        ("33068212345678@sxlss\n", ["whitespace", "U+000A"]),
        ("330682\u200b12345678@sxlss", ["control character", "U+200B"]),
        ("33068212345678@\u0455xlss", ["unknown realm", "U+0455", "lowercase ASCII"]),
        ("+3306821234567@sxlss", ["not a digit", "'+'", "position 1"]),
        ("330682123456789@sxlss", ["exactly 14 digits", "got 15"]),
        ("33068212345678@", ["realm after '@' is empty"]),
        ("", ["empty"]),
    ],
)
def test_malformed_names_are_refused_with_a_message_naming_the_problem(
    text: str, expected: list[str]
) -> None:
    with pytest.raises(AccountNameError) as caught:
        parse(text)
    message = str(caught.value)
    for part in expected:
        assert part in message


def test_a_cyrillic_look_alike_realm_is_not_the_configured_realm() -> None:
    """'ѕxlss' (U+0455 CYRILLIC SMALL LETTER DZE) looks like 'sxlss' but is refused."""
    look_alike = "33068212345678@\u0455xlss"
    assert look_alike != "33068212345678@sxlss"
    with pytest.raises(AccountNameError):
        parse(look_alike)


def test_a_very_long_input_is_shortened_in_the_message() -> None:
    with pytest.raises(AccountNameError) as caught:
        parse("3" * 5000 + "@sxlss")
    assert len(str(caught.value)) < 400
    assert "5006 characters" in str(caught.value)


def test_with_no_configured_regions_every_region_is_unknown() -> None:
    with pytest.raises(AccountNameError, match=r"allowed: \(none configured\)"):
        parse_account_name("33068212345678@sxlss", realms=REALMS, regions=())


def test_region_and_unit_code_validators_accept_only_ascii_digits_of_the_right_length() -> None:
    assert is_valid_region_code("330682")
    assert not is_valid_region_code("030682")  # no GB/T 2260 code starts with 0
    assert not is_valid_region_code("33068")
    assert not is_valid_region_code("３３０６８２")
    assert not is_valid_region_code("330682\n")
    assert is_valid_unit_code("00000001")
    assert not is_valid_unit_code("1234567")
    assert not is_valid_unit_code("1234567a")


@pytest.mark.parametrize(
    ("region", "unit_code", "realm"),
    [("33068", "12345678", "sxlss"), ("330682", "1234567", "sxlss"), ("330682", "12345678", "")],
)
def test_an_account_name_cannot_be_built_from_malformed_parts(
    region: str, unit_code: str, realm: str
) -> None:
    with pytest.raises(AccountNameError):
        AccountName(region=region, unit_code=unit_code, realm=realm)


_NEAR_MISS = st.text(
    alphabet=st.sampled_from(list("0123456789@sxlSX ３٣ѕ-\n+")) | st.characters(),
    max_size=30,
)


@given(st.one_of(st.text(max_size=40), _NEAR_MISS))
def test_parsing_any_text_round_trips_exactly_or_raises_account_name_error(text: str) -> None:
    try:
        name = parse(text)
    except AccountNameError:
        return
    assert str(name) == text


@given(
    region=st.sampled_from(REGIONS),
    unit_code=st.from_regex(r"\A[0-9]{8}\Z"),
)
def test_every_well_formed_name_parses_and_round_trips(region: str, unit_code: str) -> None:
    text = f"{region}{unit_code}@sxlss"
    name = parse(text)
    assert (name.region, name.unit_code, name.realm) == (region, unit_code, "sxlss")
    assert str(name) == text
