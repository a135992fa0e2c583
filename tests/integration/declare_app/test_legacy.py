"""Opening data from the old system (issue 14, ``import-legacy``) on SQLite and
PostgreSQL: per-line results and all or nothing; an imported balance at 2025-12-31 is
the 2026 statement's opening balance and earns the year's interest (DOMAIN §4.3); an
imported open enrolment is continued by the monthly close."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine, func, select

from declare_app._legacy import LegacyImport, import_legacy, parse_legacy
from declare_app._pension_account import InterestRate, default_pension_tables
from declare_app._queries import EmployerQueries
from declare_app._schema import contributions, legacy_accounts, persons
from declare_app.interfaces import Actor
from tests.integration.declare_app.test_ledger import MONTHS_2026, RATES, at, close, make_id

HEADER = (
    "record,aac001,aac002,aac003,aac004,aac006,staff_kind,aab001,aae140,aac030,end_month,"
    "base,aae003,employer,employee,balance_date,balance,deemed_months\n"
)


def legacy_file(id_number: str, number: str = "LG0001", *extra: str) -> bytes:
    birth = f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
    gender = "1" if int(id_number[16]) % 2 else "2"
    rows = [
        f"person,{number},{id_number},老张,{gender},{birth},B,,,,,,,,,,,",
        f"enrolment,{number},,,,,,12345678,110,2026-06,,9000,,,,,,",
        f"contribution,{number},,,,,,12345678,110,,,9000,2025-12,1440.00,720.00,,,",
        f"account,{number},,,,,,,,,,,,,,2025-12-31,100000.00,36",
        *extra,
    ]
    return (HEADER + "\n".join(rows) + "\n").encode()


def run_import(db: Engine, data: bytes) -> LegacyImport:
    with db.begin() as conn:
        return import_legacy(
            conn, parse_legacy(data), today=date(2026, 12, 20), now=at(2026, 12), import_id="t",
            actor="os:t",
        )  # fmt: skip


def test_acceptance_3_a_legacy_balance_opens_the_year_and_earns_its_interest(
    decl_db: Engine, employer_a: Actor
) -> None:
    """Balance 100 000 at 2025-12-31, enrolled from 2026-06 on base 9 000, months closed
    through 2026-12, 2026 rate 2.62 % (a test figure): opening 100 000.00, seven credits
    of 720.00, interest on the opening 2 620.00 and on the new money
    720 × (7+6+…+1) × 0.0262 / 12 = 44.02 (§4.3 month-product method)."""
    done = run_import(decl_db, legacy_file(make_id(131)))
    assert done.written, [ln.problems for ln in done.lines]
    assert done.counts == {"persons": 1, "enrolments": 1, "contributions": 1, "accounts": 1}
    close(decl_db, *MONTHS_2026)

    tables = default_pension_tables()
    with_2026 = replace(
        tables,
        interest_rates={
            **tables.interest_rates,
            2026: InterestRate(2026, D("0.0262"), "official", "test figure"),
        },
    )
    queries = EmployerQueries(RATES, pension_tables=with_2026)
    with decl_db.begin() as conn:
        s = queries.account_statement(
            conn, employer_a, person_number="LG0001", year=2026, now=at(2026, 12, 20)
        )
    assert s.opening == D("100000.00")
    assert (s.months_credited, s.credited) == (7, D("5040.00"))
    assert (s.interest_on_opening, s.interest_on_new) == (D("2620.00"), D("44.02"))
    assert s.closing == D("107704.02")
    assert s.deemed_months == 36

    # without a published 2026 rate the statement still answers, opening included
    with decl_db.begin() as conn:
        s = EmployerQueries(RATES).account_statement(
            conn, employer_a, person_number="LG0001", year=2026, now=at(2026, 12, 20)
        )
    assert (s.opening, s.rate_status, s.interest, s.closing) == (
        D("100000.00"),
        "unpublished",
        None,
        D("105040.00"),
    )


def test_a_file_with_one_bad_line_writes_nothing_and_names_each_problem(
    decl_db: Engine,
) -> None:
    bad = [
        "contribution,LG0001,,,,,,12345678,110,,,9000,2026-13,1440.00,720.00,,,",
        "account,LG0009,,,,,,,,,,,,,,2025-06-30,5.00,",
        "enrolment,LG0001,,,,,,99999999,110,2026-01,,9000,,,,,,",
    ]
    done = run_import(decl_db, legacy_file(make_id(133), "LG0001", *bad))
    assert not done.written
    problems = {ln.number: ln.problems for ln in done.lines if not ln.accepted}
    assert sorted(problems) == [6, 7, 8]
    assert any("aae003 '2026-13' is not a month" in p for p in problems[6])
    assert any("no person" in p for p in problems[7])
    assert any("year end" in p for p in problems[7])
    assert any("aab001 is not a registered unit" in p for p in problems[8])
    assert all(make_id(133) not in p for ps in problems.values() for p in ps)  # no person
    with decl_db.connect() as conn:
        for table in (persons, contributions, legacy_accounts):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0


def test_importing_the_same_file_twice_is_refused_the_second_time(decl_db: Engine) -> None:
    data = legacy_file(make_id(135))
    assert run_import(decl_db, data).written
    again = run_import(decl_db, data)
    assert not again.written
    assert all(not ln.accepted for ln in again.lines)


@pytest.mark.parametrize(
    "header",
    ["record,aac001,nonsense\n", "aac001,aac002\n"],
)
def test_a_header_with_an_unknown_or_missing_column_refuses_the_file(header: str) -> None:
    from declare_app._batch import BatchFileError

    with pytest.raises(BatchFileError):
        parse_legacy((header + "person,X1,a\n").encode())


def test_an_xlsx_file_is_read_like_a_csv(tmp_path: object) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in legacy_file(make_id(137)).decode().splitlines():
        sheet.append(row.split(","))
    import io

    out = io.BytesIO()
    book.save(out)
    lines = parse_legacy(out.getvalue())
    assert [ln.record for ln in lines] == ["person", "enrolment", "contribution", "account"]
    assert lines[3].values["balance"] == "100000.00"
