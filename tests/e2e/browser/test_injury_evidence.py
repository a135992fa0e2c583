"""Issue 14, acceptance 6 (defect 8): one 工伤事故申报 with its evidence uploaded by the
employer in the browser and seen, and saved, by the auditor in the staff console.

Real processes as in ``test_declare_flow``: ``ssgate serve`` and ``ssgate connect``;
headless Debian Chromium is the employer (through the client's local port) and the
auditor (the console over TLS).  The person is enrolled and the injury report drafted
through the employer's JSON API (the person-add browser path is
``test_declare_flow``'s); the upload, the submission and the auditor's view are the
browser's.  Approval accepts the application (受理, 工伤保险条例 Arts. 17, 20): no
认定决定 appears until staff record one.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pyotp
import pytest

from declare_app._person_id import person_id_check_char
from declare_app.testing import one_pixel_png

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel, NewPage, Screenshots
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow]

UNIT = "12345678"
AUDITOR = "auditor1"
AUDITOR_PASSWORD = "Auditor-Pass-4711!"
CHINA = timezone(timedelta(hours=8))
ID_BODY = "33068219900307123"
ID_NUMBER = ID_BODY + person_id_check_char(ID_BODY)


def add_auditor(channel: Channel) -> pyotp.TOTP:
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


def text_of(page: Page) -> str:
    return page.locator("body").inner_text()


def api(page: Page, base: str, token: str, path: str, body: Any = None) -> Any:
    response = page.request.post(
        f"{base}{path}", data=body if body is not None else {}, headers={"X-CSRF-Token": token}
    )
    assert response.ok, f"{path}: {response.status} {response.text()}"
    return response.json()


def approve_in_console(auditor: Page, console: str, declaration_id: str) -> None:
    assert auditor.goto(f"{console}/review/{declaration_id}") is not None
    with auditor.expect_navigation():
        auditor.locator("#claim").click()
    with auditor.expect_navigation():
        auditor.locator("#approve").click()
    assert "已审核通过并办结" in text_of(auditor), text_of(auditor)


def test_an_injury_report_with_its_evidence_uploaded_and_seen_by_the_auditor(
    channel: Channel, new_page: NewPage, screenshots: Screenshots
) -> None:
    totp = add_auditor(channel)
    channel.start()
    account = channel.open_account(UNIT)
    _, port = channel.connected(channel.connect(account))
    base = f"http://127.0.0.1:{port}"
    console = f"https://127.0.0.1:{channel.console_port}"
    today = datetime.now(CHINA)

    employer = new_page()
    assert employer.goto(f"{base}/") is not None
    token = employer.request.get(f"{base}/api/v1/whoami").json()["csrf_token"]

    # The auditor logs in (the console's certificate is test_declare_flow's concern).
    auditor = new_page(ignore_https_errors=True)
    auditor.goto(f"{console}/login")
    auditor.fill("#name", AUDITOR)
    auditor.fill("#password", AUDITOR_PASSWORD)
    auditor.fill("#otp", totp.now())
    with auditor.expect_navigation():
        auditor.get_by_role("button", name="登录").click()

    # -- a person of the unit (API), approved in the console ---------------------------------
    person = {
        "name": "张三",
        "id_number": ID_NUMBER,
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": today.strftime("%Y-%m-%d"),
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": today.strftime("%Y-%m"),
        "monthly_wage": "6000",
        "phone": "13800138000",
    }
    added = api(
        employer, base, token, "/api/v1/declarations", {"type": "person-add", "payload": person}
    )
    api(employer, base, token, f"/api/v1/declarations/{added['id']}/submit")
    approve_in_console(auditor, console, added["id"])
    applied = employer.request.get(f"{base}/api/v1/declarations/{added['id']}").json()
    person_no = applied["result"]["person_no"]

    # -- the injury report: drafted (API), the evidence uploaded in the browser ------------
    day = today.strftime("%Y-%m-%d")
    report = {
        "person_no": person_no,
        "name": "张三",
        "gender": "1",
        "birth_date": "1990-03-07",
        "id_number": ID_NUMBER,
        "job": "冲压工",
        "accident_time": f"{day}T00:01",
        "accident_place": "本单位二车间",
        "accident_cause": "操作冲床时手被压伤",
        "diagnosis_date": day,
        "injury_part": "左手",
        "injury_degree": "骨折",
        "description": "在二车间操作冲床时左手被压伤，左手食指骨折。",
        "request": "申请认定为工伤",
        "materials": "劳动合同复印件\n诊断证明书",
        "contact_name": "王经理",
        "contact_phone": "0575-82000000",
    }
    draft = api(
        employer,
        base,
        token,
        "/api/v1/declarations",
        {"type": "injury-accident", "payload": report},
    )
    declaration_id = draft["id"]
    assert employer.goto(f"{base}/declarations/{declaration_id}") is not None
    assert "尚未上传证明材料" in text_of(employer)
    evidence = one_pixel_png()
    chosen = channel.tmp / "诊断证明.png"
    chosen.write_bytes(evidence)
    employer.set_input_files("#evidence-file", str(chosen))
    employer.fill("#evidence-label", "医疗诊断证明书")
    # The label's suggestion list (a datalist) is open while the field has focus, and
    # headless Chromium spends the next click on closing it; a person moves on first.
    employer.press("#evidence-label", "Tab")
    screenshots.take(employer, "employer-evidence-chosen")
    with employer.expect_navigation(timeout=15000):
        employer.get_by_role("button", name="上传").click()
    assert "附件已上传" in text_of(employer), text_of(employer)
    assert employer.locator("#attachments").get_by_text("诊断证明.png").count() == 1
    screenshots.take(employer, "employer-evidence-uploaded")
    with employer.expect_navigation():
        employer.get_by_role("button", name="提交").click()
    assert "已提交" in text_of(employer), text_of(employer)

    # -- the auditor sees the file, saves it, approves: 受理 only ---------------------------
    assert auditor.goto(f"{console}/review/{declaration_id}") is not None
    table = auditor.locator("#attachments")
    assert "医疗诊断证明书" in table.inner_text() and "诊断证明.png" in table.inner_text()
    assert hashlib.sha256(evidence).hexdigest() in table.inner_text()
    screenshots.take(auditor, "auditor-sees-evidence")
    with auditor.expect_download() as download:
        table.get_by_role("link", name="诊断证明.png").click()
    saved = download.value.path()
    assert saved is not None and saved.read_bytes() == evidence
    assert download.value.suggested_filename.endswith(".png")
    approve_in_console(auditor, console, declaration_id)
    body = text_of(auditor)
    assert "工伤认定申请受理编号" in body and "尚未作出" in body
    screenshots.take(auditor, "auditor-accepted")
