"""The counter's ID-number rule, account references, and the portal's route table."""

from __future__ import annotations

import io
from datetime import date

import pytest

from portal import PERSON, PUBLIC, normalise_id_number
from portal._accounts import new_principal
from portal._records import LedgerRecords, PersonSummary
from ssgate import cli
from ssgate._routes import portal_table


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("330682199001011233", "330682199001011233"),
        (" 11010519491231002x ", "11010519491231002X"),
        ("1101 0519 4912 3100 2X", "11010519491231002X"),
        ("12345", None),
        ("11010519491231002Y", None),
        ("１１０１０５１９４９１２３１００２X", None),  # full-width digits are not an ID
    ],
)
def test_an_id_number_is_normalised_or_refused(text: str, expected: str | None) -> None:
    assert normalise_id_number(text) == expected


def test_an_account_reference_is_random_and_says_nothing_about_the_person() -> None:
    principals = {new_principal() for _ in range(200)}
    assert len(principals) == 200
    for principal in principals:
        assert principal.startswith("person:p") and len(principal) == len("person:p") + 16
        int(principal[len("person:p") :], 16)


def test_only_login_the_style_sheet_and_verify_are_public_and_no_route_names_a_person() -> None:
    table = portal_table()
    public = {(r.method, r.path) for r in table.routes if PUBLIC in r.roles}
    assert public == {
        ("GET", "/login"),
        ("POST", "/login"),
        ("GET", "/static/portal.css"),
        ("GET", "/verify/<code:code>"),
    }
    assert all(r.roles == (PERSON,) for r in table.routes if (r.method, r.path) not in public)
    assert [r.path for r in table.routes if "<" in r.path] == ["/verify/<code:code>"]


def test_ssgate_routes_lists_the_portal() -> None:
    out = io.StringIO()
    assert cli.main(["routes"], out=out) == 0
    lines = [line.split() for line in out.getvalue().splitlines() if line.startswith("portal")]
    assert ["portal", "GET", "/verify/<code:code>", "public"] in lines
    assert ["portal", "POST", "/certificate", "person"] in lines


@pytest.mark.parametrize(
    ("gender", "kind", "birth", "statutory", "category"),
    [
        ("男", "B", date(1990, 1, 1), (2053, 1), "男职工"),
        ("女", "A", date(1975, 6, 15), (2031, 11), "原法定退休年龄55周岁的女职工"),
        ("女", "B", date(1975, 6, 15), (2025, 9), "原法定退休年龄50周岁的女职工"),
    ],
)
def test_the_retirement_page_takes_the_law_from_declare_app(  # 2025 law, by hand:
    # 1990-01 man: 60 + the 36-month cap; 1975-06 woman cadre: 55 + ceil(66/4) = 17
    # months; 1975-06 woman worker: 50 + ceil(6/2) = 3 months.
    gender: str,
    kind: str,
    birth: date,
    statutory: tuple[int, int],
    category: str,
) -> None:
    person = PersonSummary("P1", "某", "x", gender, birth, kind, None, None)
    info = LedgerRecords().retirement(person)
    assert info.category == category
    assert (info.statutory.year, info.statutory.month) == statutory
    assert info.earliest <= info.statutory
