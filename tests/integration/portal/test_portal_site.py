"""The portal over TLS on SQLite and PostgreSQL: the person's own pages match the
ledger, the CSV, the 参保证明 and its verification, and the audit trail of views."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import func, select, update
from twisted.internet.threads import deferToThread

import audit
import portal
from declare_app._person_id import Gender
from declare_app._retirement import StaffKind, retirement_category, retirement_month
from declare_app._schema import contributions
from portal._schema import portal_certificates

from .conftest import ID_A, ID_B, NEW_PASSWORD, Browser, Person, Served, reactor_test


def logged_in(served: Served, person: Person) -> Browser:
    """A browser through the first login and the forced password change (blocking)."""
    browser = served.browser()
    status, headers, _ = browser.log_in(person.id_number, person.password, served.code(person))
    assert status == 303 and headers["location"] == ["/password"]
    served.next_step()
    token = browser.csrf("/password")
    status, page = browser.text(
        "POST", "/password",
        {"csrf_token": token, "password": person.password, "new_password": NEW_PASSWORD,
         "new_password2": NEW_PASSWORD, "otp": served.code(person)},
    )  # fmt: skip
    assert status == 303, page
    served.next_step()
    return browser


def issue_certificate(browser: Browser, start: str, end: str) -> tuple[str, bytes]:
    token = browser.csrf("/certificate")
    status, headers, pdf = browser.request(
        "POST", "/certificate", {"csrf_token": token, "from": start, "to": end}
    )
    assert status == 200, pdf[:300]
    match = re.search(r"canbao-zhengming-([A-Z2-7]{26})\.pdf", headers["content-disposition"][0])
    assert match is not None
    return match.group(1), pdf


def _ledger(served: Served, person: Person) -> tuple[Decimal, Decimal, int]:
    with served.world.engine.begin() as conn:
        rows = conn.execute(
            select(contributions).where(contributions.c.person_number == person.person_number)
        ).all()
    employer = sum((Decimal(r.employer_fen) for r in rows), Decimal(0)) / 100
    employee = sum((Decimal(r.employee_fen) for r in rows), Decimal(0)) / 100
    return employer, employee, len({r.month for r in rows})


@reactor_test
async def test_the_contributions_page_and_csv_match_the_ledger_and_filter(served: Served) -> None:
    a = served.world.people["a"]
    browser = await deferToThread(logged_in, served, a)
    employer, employee, months = _ledger(served, a)
    assert months == 3
    status, page = await deferToThread(browser.text, "GET", "/contributions")
    assert status == 200
    assert f"缴费月数 {months}" in page
    assert f"单位缴费合计 {employer:,.2f} 元" in page and f"个人缴费合计 {employee:,.2f} 元" in page
    status, page = await deferToThread(
        browser.text, "GET", "/contributions?insurance=110&from=2025-02&to=2025-03"
    )
    assert status == 200 and "2025-01" not in page.split("<tbody>")[1] and "2025-02" in page
    status, headers, data = await deferToThread(
        browser.request, "GET", "/contributions.csv?insurance=110"
    )
    assert status == 200 and headers["content-type"][0].startswith("text/csv")
    lines = data.decode("utf-8-sig").strip().split("\r\n")
    assert lines[0].startswith("费款所属期") and len(lines) == 1 + 3
    assert all(",110," in line for line in lines[1:])
    status, _ = await deferToThread(browser.text, "GET", "/contributions?from=2025-13")
    assert status == 400
    with served.world.engine.begin() as conn:
        views = [r.event for r in audit.query(conn, actions=["portal.view"])]
    assert [v.subject for v in views] == ["contributions", "contributions", "contributions.csv"]
    assert {v.actor for v in views} == {a.principal}
    assert views[1].details["insurance"] == "110" and views[1].details["from"] == "2025-02"
    assert all(v.session_id.startswith("ps-") for v in views)


@reactor_test
async def test_account_retirement_and_declarations_pages(served: Served) -> None:
    a = served.world.people["a"]
    browser = await deferToThread(logged_in, served, a)
    with served.world.engine.begin() as conn:
        credited = (
            conn.execute(
                select(contributions.c.to_account_fen).where(
                    contributions.c.person_number == a.person_number,
                    contributions.c.insurance == "110",
                )
            )
            .scalars()
            .all()
        )
    status, page = await deferToThread(browser.text, "GET", "/account?year=2025")
    assert status == 200
    assert f"{Decimal(sum(credited)) / 100:,.2f}" in page and "2025 年度" in page
    status, page = await deferToThread(browser.text, "GET", "/retirement")
    from datetime import date

    month = retirement_month(date(1990, 1, 1), retirement_category(Gender.MALE, StaffKind.WORKER))
    assert status == 200 and f"{month.year:04d}-{month.month:02d}" in page
    status, page = await deferToThread(browser.text, "GET", "/declarations")
    assert status == 200 and "人员增加" in page and "上虞示范机械厂" in page


@reactor_test
async def test_a_certificate_verifies_without_login_and_an_edited_pdf_does_not(
    served: Served,
) -> None:
    a = served.world.people["a"]
    browser = await deferToThread(logged_in, served, a)
    code, pdf = await deferToThread(issue_certificate, browser, "2025-01", "2025-03")
    assert pdf.startswith(b"%PDF-")
    stranger = served.browser()
    status, page = await deferToThread(stranger.text, "GET", f"/verify/{code}")
    assert status == 200
    assert "该参保证明真实有效" in page and "张三" in page and "330682********1233" in page
    assert ID_A not in page and "<li>企业职工基本养老保险：3 个月</li>" in page
    status, page = await deferToThread(stranger.text, "GET", f"/verify/{code.lower()}")
    assert status == 200  # typed from paper in lower case
    # The code names the original: an edited PDF's digest is not the one issued.
    with served.world.engine.begin() as conn:
        record = portal.find_certificate(conn, code)
    assert record is not None and portal.pdf_matches(record, pdf)
    middle = len(pdf) // 2
    edited = pdf[:middle] + bytes([pdf[middle] ^ 0x01]) + pdf[middle + 1 :]
    assert not portal.pdf_matches(record, edited)
    assert record.pdf_sha256 in page
    # A certificate edited in the database no longer counts as valid.
    with served.world.engine.begin() as conn:
        conn.execute(
            update(portal_certificates).values(
                content=func.replace(portal_certificates.c.content, "张三", "张四")
            )
        )
    status, page = await deferToThread(stranger.text, "GET", f"/verify/{code}")
    assert status == 200 and "不能作为有效证明" in page
    status, page = await deferToThread(stranger.text, "GET", "/verify/" + "A" * 26)
    assert status == 404 and "not found" in page
    with served.world.engine.begin() as conn:
        actions = [(r.event.action, r.event.outcome) for r in audit.query(conn)]
        every = [repr(r.event) for r in audit.query(conn)]
    assert ("portal.certificate", "ok") in actions
    assert ("portal.verify", "ok") in actions and ("portal.verify", "refused") in actions
    assert ("portal.login", "ok") in actions and ("portal.password", "ok") in actions
    assert not any(ID_A in e or ID_B in e for e in every)
    assert not any(code in e for e in every)


@reactor_test
async def test_a_hundred_wrong_codes_from_one_source_throttle_it(served: Served) -> None:
    a = served.world.people["a"]
    browser = await deferToThread(logged_in, served, a)
    code, _ = await deferToThread(issue_certificate, browser, "2025-01", "2025-03")
    stranger = served.browser()

    def guess() -> list[int]:
        return [
            stranger.request("GET", f"/verify/{'B' * 25}{chr(ord('A') + i % 26)}{i:02d}"[:34])[0]
            for i in range(100)
        ]

    statuses = await deferToThread(guess)
    assert set(statuses) == {404}
    status, _ = await deferToThread(stranger.text, "GET", f"/verify/{code}")
    assert status == 429
