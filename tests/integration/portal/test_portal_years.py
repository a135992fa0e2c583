"""A long ledger on the portal, on SQLite and PostgreSQL: the contributions page is
paged by year (every year of the person's reachable, each line on exactly one year's
page), and the CSV is streamed with every line — more than the 2,000 it used to stop
at — and nothing of another person."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal

from sqlalchemy import insert, select
from twisted.internet.threads import deferToThread

import audit
from declare_app._schema import contributions

from .conftest import UNIT_A, Served, reactor_test
from .test_portal_site import logged_in

INSURANCES = ("110", "210", "310", "410", "510")
FIRST_YEAR, LAST_YEAR = 1990, 2024  # 35 years × 12 months × 5 insurances = 2,100 lines
_ROW = re.compile(r"<tr><td>([0-9]{4}-[0-9]{2})[^<]*</td><td>[^<]*</td><td>([^<]*)</td>")


def _long_ledger(served: Served, person_number: str) -> None:
    """Thirty-five years of paid lines for the person (beside the closed months of
    2025 the world already has), written straight into the ledger."""
    with served.world.engine.begin() as conn:
        conn.execute(
            insert(contributions),
            [
                {
                    "person_number": person_number,
                    "unit_code": UNIT_A,
                    "insurance": insurance,
                    "month": f"{year:04d}-{month:02d}",
                    "base_fen": 600_000,
                    "employer_fen": 96_000 + month,
                    "employee_fen": 48_000,
                    "to_account_fen": 48_000 if insurance == "110" else 0,
                    "status": "paid",
                }
                for year in range(FIRST_YEAR, LAST_YEAR + 1)
                for month in range(1, 13)
                for insurance in INSURANCES
            ],
        )


def _lines_of(served: Served, person_number: str) -> list[tuple[str, str]]:
    c = contributions.c
    with served.world.engine.begin() as conn:
        return [
            (r.month, r.insurance)
            for r in conn.execute(
                select(c.month, c.insurance).where(c.person_number == person_number)
            )
        ]


@reactor_test
async def test_the_contributions_page_shows_every_year_each_line_once(served: Served) -> None:
    """The page opens on the newest year, links every year that has lines (with its
    count), and walking those links shows each of the person's lines exactly once;
    the totals cover every line whatever the year shown."""
    a = served.world.people["a"]
    _long_ledger(served, a.person_number)
    expected = Counter(_lines_of(served, a.person_number))
    assert sum(expected.values()) == 2_115
    browser = await deferToThread(logged_in, served, a)
    status, page = await deferToThread(browser.text, "GET", "/contributions")
    assert status == 200
    assert "共 2115 条记录" in page and 'id="year-heading">2025 年度' in page
    years = [int(y) for y in re.findall(r"year=([0-9]{4})", page)]
    assert sorted([*years, 2025]) == list(range(FIRST_YEAR, 2026))
    employer = sum(96_000 + m for m in range(1, 13)) * 5 * 35
    with served.world.engine.begin() as conn:
        employer_2025 = sum(
            conn.execute(
                select(contributions.c.employer_fen).where(
                    contributions.c.person_number == a.person_number,
                    contributions.c.month >= "2025-01",
                )
            ).scalars()
        )
    assert f"单位缴费合计 {Decimal(employer + employer_2025) / 100:,.2f} 元" in page
    seen: Counter[tuple[str, str]] = Counter()
    names = {"基本养老保险": "110", "失业保险": "210", "基本医疗保险": "310"}
    for year in [2025, *years]:
        status, page = await deferToThread(browser.text, "GET", f"/contributions?year={year}")
        assert status == 200
        body = page.split("<tbody>")[1].split("</tbody>")[0]
        rows = _ROW.findall(body)
        assert rows and all(month.startswith(f"{year}-") for month, _ in rows)
        assert body.count("<tr>") == len(rows)
        for month, label in rows:
            seen[(month, names.get(label, label))] += 1
    assert sum(seen.values()) == 2_115
    assert all(n == 1 for n in seen.values())
    assert {month for month, _ in seen} == {month for month, _ in expected}
    # a filter narrows the years offered and the rows; a year outside it shows none
    status, page = await deferToThread(
        browser.text, "GET", "/contributions?insurance=110&from=2000-01&to=2001-06"
    )
    assert status == 200 and "共 18 条记录" in page
    assert set(re.findall(r"year=([0-9]{4})", page)) == {"2000"}
    status, page = await deferToThread(
        browser.text, "GET", "/contributions?insurance=110&from=2000-01&to=2001-06&year=1995"
    )
    assert status == 200 and "<tbody>" not in page and "没有符合条件的缴费记录" in page
    status, _ = await deferToThread(browser.text, "GET", "/contributions?year=95")
    assert status == 400


@reactor_test
async def test_the_csv_streams_every_line_and_only_the_persons_own(served: Served) -> None:
    """The CSV of a 2,115-line ledger has every line once (oldest first), in a chunked
    (streamed) answer; person B's download has only B's lines; one audit event each."""
    a, b = served.world.people["a"], served.world.people["b"]
    _long_ledger(served, a.person_number)
    browser = await deferToThread(logged_in, served, a)
    status, headers, data = await deferToThread(browser.request, "GET", "/contributions.csv")
    assert status == 200 and headers["content-type"][0].startswith("text/csv")
    assert headers.get("transfer-encoding") == ["chunked"]
    text = data.decode("utf-8")
    assert text.startswith("\ufeff费款所属期,单位编号")
    lines = text.lstrip("\ufeff").strip().split("\r\n")[1:]
    got = [(line.split(",")[0], line.split(",")[3]) for line in lines]
    assert Counter(got) == Counter(_lines_of(served, a.person_number))
    assert len(got) == 2_115 and got == sorted(got, key=lambda g: g[0])
    assert all(f",{UNIT_A}," in line for line in lines)
    other = await deferToThread(logged_in, served, b)
    status, _, data = await deferToThread(other.request, "GET", "/contributions.csv")
    assert status == 200
    lines_b = data.decode("utf-8-sig").strip().split("\r\n")[1:]
    assert Counter((x.split(",")[0], x.split(",")[3]) for x in lines_b) == Counter(
        _lines_of(served, b.person_number)
    )
    assert all(f",{UNIT_A}," not in line for line in lines_b)
    with served.world.engine.begin() as conn:
        views = [r.event for r in audit.query(conn, actions=["portal.view"])]
    downloads = [v for v in views if v.subject == "contributions.csv"]
    assert [v.actor for v in downloads] == [a.principal, b.principal]
