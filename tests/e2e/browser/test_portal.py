"""Issue 18, acceptance 1, in a real browser against real processes.

``ssgate demo --no-serve`` loads the demo units, persons and ledger; ``ssgate serve``
runs with ``[portal] listen``; an auditor enrols a demo person at the counter on the
staff console's ``/persons`` page in Chromium (the initial password and the TOTP
files shown once, the files downloaded as the zip).  The person logs in with password
and code, changes the initial password, opens the enrolments, contributions and account
statement — whose figures are the employer's own 个人缴费 and 对帐单 for the same
person, computed by the declaration service's queries — and downloads a 参保证明.  A
second browser, never logged in, verifies it at ``/verify/CODE``.  Screenshots are
kept under test-artifacts/.
"""

from __future__ import annotations

import re
import time
import urllib.parse
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pyotp
import pytest
from sqlalchemy import func, select

import declare_app
from declare_app._schema import contributions, persons
from declare_app.interfaces import Actor
from ssgate._app import App
from ssgate._state import StateDir

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel, NewPage, Screenshots

pytestmark = [pytest.mark.slow]

NEW_PASSWORD = "Portal-Person-Pass-2025"
AUDITOR = "counter1"
AUDITOR_PASSWORD = "Counter-Pass-4711!"


def _add_auditor(channel: Channel) -> pyotp.TOTP:
    """``ssgate staff add counter1 --role auditor``; the TOTP from its otpauth.txt."""
    password_file = channel.tmp / "auditor-password"
    password_file.write_text(AUDITOR_PASSWORD + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    out = channel.tmp / "staff-counter1"
    channel.run(
        "staff", "add", AUDITOR, "--role", "auditor",
        "--password-file", str(password_file), "--out", str(out), check_rc=0,
    )  # fmt: skip
    uri = (out / "otpauth.txt").read_text(encoding="utf-8").strip()
    return pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])


def _demo_person(state: Path) -> tuple[str, str, str, str]:
    """(ID number, name, 个人编号, unit) of the demo person with the longest ledger in
    one unit only."""
    app = App(StateDir(state))
    try:
        with app.engine.begin() as conn:
            c, p = contributions.c, persons.c
            row = conn.execute(
                select(c.person_number, func.min(c.unit_code).label("unit"))
                .group_by(c.person_number)
                .having(func.count(func.distinct(c.unit_code)) == 1)
                .order_by(func.count().desc(), c.person_number)
                .limit(1)
            ).one()
            person = conn.execute(select(persons).where(p.person_number == row.person_number)).one()
            return person.id_number, person.name, row.person_number, row.unit
    finally:
        app.close()


def _employer_view(state: Path, id_number: str, unit: str, year: int) -> tuple[Decimal, Decimal]:
    """The employer's 个人缴费 total (个人 part) and 对帐单 closing balance of *year*."""
    app = App(StateDir(state))
    try:
        queries = declare_app.EmployerQueries(app.rate_table)
        actor = Actor("employer", f"330682{unit}@sxlss", unit_code=unit, session_id="e2e")
        with app.engine.begin() as conn:
            # The totals cover every line of the person in the unit, not only the page.
            paid = queries.person_payments(conn, actor, id_number=id_number, now=time.time())
            statement = queries.account_statement(
                conn, actor, id_number=id_number, year=year, now=time.time()
            )
        return paid.employee, statement.closing
    finally:
        app.close()


def test_a_person_enrolled_at_the_counter_sees_their_records_and_a_stranger_verifies_the_certificate(
    channel: Channel, new_page: NewPage, screenshots: Screenshots
) -> None:
    channel.run("demo", "--no-serve", check_rc=0)
    id_number, name, person_number, unit = _demo_person(channel.state)
    auditor_totp = _add_auditor(channel)

    config = channel.state / "ssgate.toml"
    head, tail = config.read_text(encoding="utf-8").split("\n[portal]\n")
    tail = tail.replace('listen = ""', 'listen = "tcp:0:interface=127.0.0.1"', 1)
    config.write_text(head + "\n[portal]\n" + tail, encoding="utf-8")
    serve = channel.start()
    port = int(serve.wait_for(r"personal portal on https://127\.0\.0\.1:(\d+)/").group(1))
    base = f"https://localhost:{port}"

    # -- the counter: the auditor checks the identity document and opens the account -------
    console = f"https://127.0.0.1:{channel.console_port}"
    counter = new_page(ignore_https_errors=True, accept_downloads=True)
    counter.goto(f"{console}/login")
    counter.fill("#name", AUDITOR)
    counter.fill("#password", AUDITOR_PASSWORD)
    counter.fill("#otp", auditor_totp.now())
    with counter.expect_navigation():
        counter.get_by_role("button", name="登录").click()
    with counter.expect_navigation():
        counter.get_by_role("navigation", name="功能菜单").get_by_role(
            "link", name="个人账户"
        ).click()
    with counter.expect_navigation():
        counter.get_by_role("link", name="开通个人网上服务账户").click()
    counter.fill("#id_number", id_number)
    counter.fill("#reason", "参保人持居民身份证到柜台申请开通")
    with counter.expect_navigation():
        counter.get_by_role("button", name="下一步").click()
    assert id_number not in counter.url
    screenshots.take(counter, "counter-confirm")
    with counter.expect_navigation():
        counter.get_by_role("button", name="确认开通个人网上服务账户").click()
    initial = counter.locator("#issued-password").inner_text()
    assert initial and counter.locator("#issued-qr").count() == 1
    assert id_number not in counter.locator("main").inner_text()
    screenshots.take(counter, "counter-enrolled-shown-once")
    with counter.expect_download() as got:
        counter.locator("#otp-download").click()
    with zipfile.ZipFile(got.value.path()) as files:
        uri = files.read("portal-otp/otpauth.txt").decode("utf-8").strip()
    totp = pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0])

    page = new_page(ignore_https_errors=True)
    page.goto(f"{base}/login")
    page.fill("input[name=id_number]", id_number)
    page.fill("input[name=password]", initial)
    page.fill("input[name=otp]", totp.now())
    screenshots.take(page, "login")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/password")
    screenshots.take(page, "must-change-password")
    page.fill("input[name=password]", initial)
    page.fill("input[name=new_password]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    page.fill("input[name=otp]", totp.at(time.time() + 30))  # the next step: never the same code
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert name in page.locator("main").inner_text()
    assert id_number not in page.content()
    screenshots.take(page, "home")

    page.goto(f"{base}/enrolments")
    assert unit in page.locator("main").inner_text()
    screenshots.take(page, "enrolments")

    year = int(_last_year(page, f"{base}/account"))
    employee, closing = _employer_view(channel.state, id_number, unit, year)
    page.goto(f"{base}/contributions")
    assert f"个人缴费合计 {employee:,.2f} 元" in page.locator("main").inner_text()
    screenshots.take(page, "contributions")
    page.goto(f"{base}/account?year={year}")
    assert f"{closing:,.2f}" in page.locator("main").inner_text()
    screenshots.take(page, "account-statement")

    page.goto(f"{base}/certificate")
    with page.expect_download() as download_info:
        page.click("form.stack button[type=submit]")
    download = download_info.value
    code = re.fullmatch(r"canbao-zhengming-([A-Z2-7]{26})\.pdf", download.suggested_filename)
    assert code is not None
    pdf = Path(download.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")

    stranger = new_page(ignore_https_errors=True)
    response = stranger.goto(f"{base}/verify/{code.group(1)}")
    assert response is not None and response.status == 200
    text = stranger.locator("main").inner_text()
    assert "该参保证明真实有效" in text and name in text
    assert (
        id_number[:6] + "********" + id_number[-4:] in text and id_number not in stranger.content()
    )
    screenshots.take(stranger, "verified-by-a-stranger")
    missing = stranger.goto(f"{base}/verify/{'A' * 26}")
    assert missing is not None and missing.status == 404
    assert person_number not in stranger.content()


def _last_year(page: object, url: str) -> str:
    """The newest year the account page offers (its default)."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(url)
    match = re.search(r"(\d{4}) 年度", page.locator("main").inner_text())
    assert match is not None
    return match.group(1)
