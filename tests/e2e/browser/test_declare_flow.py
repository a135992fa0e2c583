"""Issue 4, acceptance 1: a person added in the browser, approved by an auditor, applied.

Everything is real: ``ssgate serve`` (gateway, declare service, staff console over
TLS) and ``ssgate connect`` run as processes (the ``channel`` fixture); headless
Debian Chromium is the employer, through the client's local port, and then the
auditor, in the staff console.  Each step is kept as a screenshot under
``test-artifacts/<test name>/``.  The audit log must tie the employer's actions to the
gateway session and the approval to the auditor's staff name.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyotp
import pytest
from cryptography import x509

from declare_app._person_id import person_id_check_char

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel, NewPage, Screenshots
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow]

UNIT = "12345678"
AUDITOR = "auditor1"
AUDITOR_PASSWORD = "Auditor-Pass-4711!"
CHINA = timezone(timedelta(hours=8))
VOUCHER = re.compile(r"^SB\d{8}\d{6}$")

# A Shangyu (330682) citizen born 1990-03-07, sequence 123 (odd: male).
ID_BODY = "33068219900307123"
ID_NUMBER = ID_BODY + person_id_check_char(ID_BODY)
PERSON_NAME = "张三"
WAGE = "6000"


# -- the channel: one auditor -----------------------------------


def add_auditor(channel: Channel) -> pyotp.TOTP:
    """``ssgate staff add auditor1 --role auditor``; the TOTP from its otpauth.txt."""
    secrets_dir = channel.tmp / "staff-secrets"
    secrets_dir.mkdir()
    password_file = secrets_dir / "password"
    password_file.write_text(AUDITOR_PASSWORD + "\n", encoding="utf-8")
    out = channel.tmp / "staff-auditor1"
    channel.run(
        "staff",
        "add",
        AUDITOR,
        "--role",
        "auditor",
        "--password-file",
        str(password_file),
        "--out",
        str(out),
        check_rc=0,
    )
    uri = (out / "otpauth.txt").read_text(encoding="utf-8").strip()
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    return pyotp.TOTP(secret)


def console_certificate(port: int, ca: Path) -> x509.Certificate:
    """The console's certificate, fetched with verification against our CA only and
    the host name checked: what the browser context below does not check itself."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


# -- page helpers -----------------------------------------------------------------------


def ok(page: Page, response: Any) -> None:
    assert response is not None, "no response"
    assert response.ok, f"{response.status} {response.url}\n{page.locator('body').inner_text()}"


def text_of(page: Page) -> str:
    return page.locator("body").inner_text()


def fill_person_add(page: Page, today: datetime) -> None:
    """The 人员增加 form as an employer fills it in: a first-time enrolment (type A)
    from this month, all five insurance types (the form's default, 310 with 510)."""
    page.fill("#in-name", PERSON_NAME)
    page.select_option("#in-gender", "1")
    page.fill("#in-birth_month", "1990-03")
    page.select_option("#in-id_type", "01")
    page.fill("#in-id_number", ID_NUMBER)
    page.select_option("#in-nation", "01")
    page.select_option("#in-hukou_type", "A")
    page.select_option("#in-staff_kind", "B")
    page.select_option("#in-employment_form", "1")
    page.fill("#in-hire_date", today.strftime("%Y-%m-%d"))
    for code in ("110", "210", "310", "410", "510"):
        page.check(f'input[name="insurances"][value="{code}"]')
    page.select_option("#in-add_type", "A")
    page.fill("#in-start_month", today.strftime("%Y-%m"))
    page.fill("#in-monthly_wage", WAGE)
    page.fill("#in-phone", "13800138000")


# -- the test -----------------------------------------------------------------------------


def test_employer_adds_a_person_auditor_approves_employer_gets_the_voucher(
    channel: Channel, new_page: NewPage, screenshots: Screenshots
) -> None:
    auditor_totp = add_auditor(channel)
    channel.start()
    console_port = channel.console_port  # what the banner reported (the console binds port 0)
    account = channel.open_account(UNIT)
    client = channel.connect(account)
    session_id, port = channel.connected(client)
    base = f"http://127.0.0.1:{port}"
    today = datetime.now(CHINA)

    # -- employer: 人员增加 → preview → submit → 待审核 --------------------------------------
    employer = new_page()
    ok(employer, employer.goto(f"{base}/"))
    assert UNIT in text_of(employer) and session_id in text_of(employer)
    screenshots.take(employer, "employer-home")

    ok(employer, employer.goto(f"{base}/declarations/new"))
    with employer.expect_navigation():
        employer.get_by_role("link", name="人员增加", exact=True).click()
    assert employer.url == f"{base}/declarations/new/person-add"
    fill_person_add(employer, today)
    screenshots.take(employer, "employer-person-add-filled")

    with employer.expect_navigation() as nav:
        employer.locator('button[name="action"][value="preview"]').click()
    body = text_of(employer)
    assert nav.value is not None
    assert nav.value.status == 200, f"preview refused ({nav.value.status}):\n{body}"
    assert "预览：人员增加" in body
    assert ID_NUMBER in body and PERSON_NAME in body
    screenshots.take(employer, "employer-preview")

    with employer.expect_navigation() as nav:
        employer.locator('button[name="action"][value="submit"]').click()
    body = text_of(employer)
    assert nav.value is not None and nav.value.ok, f"submit failed:\n{body}"
    m = re.fullmatch(
        rf"{re.escape(base)}/declarations/([A-Za-z0-9_-]+)\?msg=submitted", employer.url
    )
    assert m, f"not the declaration page after submit: {employer.url}\n{body}"
    declaration_id = m.group(1)
    assert "已提交，请等待经办机构审核。" in body
    assert employer.locator(".status").inner_text() == "待审核"
    screenshots.take(employer, "employer-submitted")

    ok(employer, employer.goto(f"{base}/declarations"))
    pending = employer.locator("#group-pending-review")
    row = pending.locator("tr", has=employer.locator(f'a[href="/declarations/{declaration_id}"]'))
    assert row.count() == 1, text_of(employer)
    assert "人员增加" in row.inner_text()
    assert employer.locator("#group-applied").locator(f'a[href*="{declaration_id}"]').count() == 0
    screenshots.take(employer, "employer-declaration-centre-pending")

    # -- auditor: staff console over TLS ---------------------------------------------------
    cert = console_certificate(console_port, channel.state / "ca.pem")
    console = f"https://127.0.0.1:{console_port}"
    # Chromium cannot be told to trust our private CA per context; the certificate was
    # just verified against ca.pem and the host name above, so this context may skip
    # the browser's own check (ignore_https_errors, accepted for this test).
    auditor = new_page(ignore_https_errors=True)
    response = auditor.goto(f"{console}/")
    ok(auditor, response)
    assert auditor.url == f"{console}/login"
    details = response.security_details() if response is not None else None
    assert details is not None, "the console did not answer over TLS"

    def common_name(name: x509.Name) -> Any:
        return name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value

    # The browser was shown the certificate verified above (same subject, same issuer).
    assert details.get("issuer") == common_name(cert.issuer), details
    assert details.get("subjectName") == common_name(cert.subject), details
    assert "工作人员登录" in text_of(auditor)
    screenshots.take(auditor, "auditor-login")

    auditor.fill("#name", AUDITOR)
    auditor.fill("#password", AUDITOR_PASSWORD)
    auditor.fill("#otp", auditor_totp.now())
    with auditor.expect_navigation():
        auditor.get_by_role("button", name="登录").click()
    assert auditor.url == f"{console}/", text_of(auditor)
    assert AUDITOR in text_of(auditor)

    ok(auditor, auditor.goto(f"{console}/review"))
    queue_row = auditor.locator("tr", has=auditor.locator(f'a[href="/review/{declaration_id}"]'))
    assert queue_row.count() == 1, text_of(auditor)
    queue_text = queue_row.inner_text()
    assert UNIT in queue_text and session_id in queue_text and "待审核" in queue_text
    screenshots.take(auditor, "auditor-review-queue")

    with auditor.expect_navigation():
        queue_row.get_by_role("link", name="查看").click()
    assert auditor.url == f"{console}/review/{declaration_id}"
    assert ID_NUMBER in text_of(auditor) and PERSON_NAME in text_of(auditor)
    screenshots.take(auditor, "auditor-declaration")

    with auditor.expect_navigation():
        auditor.locator("#claim").click()
    assert auditor.url == f"{console}/review/{declaration_id}?done=claimed", text_of(auditor)
    assert "已领取" in text_of(auditor) and "审核中" in text_of(auditor)
    screenshots.take(auditor, "auditor-claimed")

    with auditor.expect_navigation():
        auditor.locator("#approve").click()
    assert auditor.url == f"{console}/review/{declaration_id}?done=approved", text_of(auditor)
    assert "已审核通过并办结" in text_of(auditor)
    voucher_no = auditor.locator("#voucher").inner_text().strip()
    assert VOUCHER.fullmatch(voucher_no), voucher_no
    screenshots.take(auditor, "auditor-approved-voucher")

    # -- employer again: 已办结 with the voucher ---------------------------------------------
    ok(employer, employer.goto(f"{base}/declarations/{declaration_id}"))
    assert employer.locator(".status").inner_text() == "已办结"
    voucher_link = employer.locator(f'a[href="/declarations/{declaration_id}/voucher"]')
    assert voucher_no in voucher_link.first.inner_text()
    person_no = employer.locator("tr", has_text="个人编号").first.locator("td").inner_text()
    assert re.fullmatch(r"330682\d{8}", person_no.strip()), person_no  # the new person's
    screenshots.take(employer, "employer-applied")

    ok(employer, employer.goto(f"{base}/declarations"))
    applied = employer.locator("#group-applied")
    assert applied.get_by_role("link", name=voucher_no).count() == 1, text_of(employer)
    screenshots.take(employer, "employer-declaration-centre-applied")

    with employer.expect_navigation() as nav:
        applied.get_by_role("link", name=voucher_no).click()
    assert nav.value is not None and nav.value.ok
    assert employer.url == f"{base}/declarations/{declaration_id}/voucher"
    assert employer.locator("#voucher-no").inner_text().strip() == voucher_no
    voucher_text = text_of(employer)
    assert "社会保险业务办理凭证" in voucher_text and "审核通过，已办结" in voucher_text
    # The voucher is printed and handed on: the ID number masked as on the PDF.
    masked = ID_NUMBER[:6] + "********" + ID_NUMBER[-4:]
    assert ID_NUMBER not in voucher_text and masked in voucher_text
    assert UNIT in voucher_text and person_no in voucher_text
    screenshots.take(employer, "employer-voucher")

    # -- the audit log: the employer's session, the auditor's name ------------------------
    result = channel.run("audit", "actions", "--format", "json", check_rc=0)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    mine = [e for e in events if e.get("subject") == declaration_id and e.get("outcome") == "ok"]

    def one(action: str) -> dict[str, Any]:
        found = [e for e in mine if e["action"] == action]
        assert len(found) == 1, (action, mine)
        return found[0]

    for action in ("declare.create", "declare.submit"):
        event = one(action)
        assert event["session_id"] == session_id, event
        assert event["actor"] == f"channel:{account.name}", event
        assert event["unit"] == UNIT, event
    approve = one("declare.approve")
    assert approve["actor"] == f"staff:{AUDITOR}", approve
    assert approve["session_id"] == "", approve
    assert approve["unit"] == UNIT, approve

    assert [p.name for p in screenshots.taken] == [
        "01-employer-home.png",
        "02-employer-person-add-filled.png",
        "03-employer-preview.png",
        "04-employer-submitted.png",
        "05-employer-declaration-centre-pending.png",
        "06-auditor-login.png",
        "07-auditor-review-queue.png",
        "08-auditor-declaration.png",
        "09-auditor-claimed.png",
        "10-auditor-approved-voucher.png",
        "11-employer-applied.png",
        "12-employer-declaration-centre-applied.png",
        "13-employer-voucher.png",
    ]
