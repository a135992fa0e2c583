"""Issue 10, acceptance 1 (the officer's part): with ``ssgate serve`` and a live
``ssgate connect`` running as processes, an officer in headless Chromium finds the
session by unit among the live ones, opens its timeline (the login carrying the session
id, the TLS handshake), terminates it with a reason, and the client exits within 5 s
printing the officer's own words (exit 13); the ended session's page lists its streams.  Screenshots of each step go to
``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import pyotp
import pytest

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel, NewPage, Screenshots
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow]

UNIT = "12345678"
OFFICER = "officer1"
OFFICER_PASSWORD = "Officer-Pass-4711!"
KILL_NOTE = "工单 42：核查异常访问"


def add_officer(channel: Channel) -> pyotp.TOTP:
    """``ssgate staff add officer1 --role officer``; the TOTP from its otpauth.txt."""
    secrets_dir = channel.tmp / "officer-secrets"
    secrets_dir.mkdir()
    password_file = secrets_dir / "password"
    password_file.write_text(OFFICER_PASSWORD + "\n", encoding="utf-8")
    out = channel.tmp / "staff-officer1"
    channel.run(
        "staff", "add", OFFICER, "--role", "officer",
        "--password-file", str(password_file), "--out", str(out), check_rc=0,
    )  # fmt: skip
    uri = (out / "otpauth.txt").read_text(encoding="utf-8").strip()
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    return pyotp.TOTP(secret)


def ok(page: Page, response: Any) -> None:
    assert response is not None, "no response"
    assert response.ok, f"{response.status} {response.url}\n{page.locator('body').inner_text()}"


def text_of(page: Page) -> str:
    return page.locator("body").inner_text()


def test_officer_finds_the_live_session_by_unit_and_terminates_it(
    channel: Channel, new_page: NewPage, screenshots: Screenshots
) -> None:
    totp = add_officer(channel)
    channel.start()
    console_port = channel.console_port  # what the banner reported (the console binds port 0)
    account = channel.open_account(UNIT)
    client = channel.connect(account)
    session_id, port = channel.connected(client)
    # The employer uses the service through the tunnel (a stream; the page view itself
    # is not an audited action — declaration actions are pinned by the unit tests).
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/declarations", timeout=30) as r:
        assert r.status == 200

    console = f"https://127.0.0.1:{console_port}"
    # The console's certificate is from our private CA (test_declare_flow checks it
    # against ca.pem); this context skips the browser's own check.
    officer = new_page(ignore_https_errors=True)
    ok(officer, officer.goto(f"{console}/login"))
    officer.fill("#name", OFFICER)
    officer.fill("#password", OFFICER_PASSWORD)
    officer.fill("#otp", totp.now())
    with officer.expect_navigation():
        officer.get_by_role("button", name="登录").click()
    assert officer.url == f"{console}/", text_of(officer)

    # -- find it: live sessions, filtered by unit ----------------------------------------
    with officer.expect_navigation():
        officer.get_by_role("navigation", name="功能菜单").get_by_role(
            "link", name="会话审计"
        ).click()
    with officer.expect_navigation():
        officer.get_by_role("link", name="在线会话").click()
    officer.fill("#f-unit", UNIT)
    with officer.expect_navigation():
        officer.locator("#filter").click()
    assert officer.url.startswith(f"{console}/sessions/live?"), officer.url
    row = officer.locator(
        "#sessions tbody tr", has=officer.locator(f'a[href="/sessions/{session_id}"]')
    )
    assert row.count() == 1, text_of(officer)
    assert account.name in row.inner_text() and "在线" in row.inner_text()
    screenshots.take(officer, "officer-live-sessions-by-unit")

    # -- its timeline -----------------------------------------------------------------------
    with officer.expect_navigation():
        row.get_by_role("link", name="时间线").click()
    assert officer.url == f"{console}/sessions/{session_id}"
    timeline = officer.locator("#timeline").inner_text()
    assert "登录" in timeline and "成功" in timeline, timeline
    assert "证书：通过 · 密码：通过 · 动态口令：通过" in timeline, timeline
    tls = officer.locator("#tls").inner_text()
    assert "TLSv1." in tls and account.name in tls, tls
    screenshots.take(officer, "officer-session-timeline")

    # -- terminate it, with a reason -------------------------------------------------------
    with officer.expect_navigation():
        officer.locator("#terminate").click()
    assert officer.url == f"{console}/sessions/{session_id}/terminate"
    officer.fill("#reason", KILL_NOTE)
    screenshots.take(officer, "officer-terminate-confirm")
    started = time.monotonic()
    with officer.expect_navigation():
        officer.locator("#confirm-terminate").click()
    assert officer.url == f"{console}/sessions/{session_id}?done=kill", text_of(officer)
    assert "已发出终止指令" in text_of(officer)
    screenshots.take(officer, "officer-terminated")

    assert client.wait_exit() == 13
    assert time.monotonic() - started <= 5.0 + 1.0  # one poll interval of slack
    # The officer's note itself reaches the employer's terminal (protocol §5, GOAWAY).
    assert (
        f"会话已被安全管理员终止 / Terminated by a security officer: {KILL_NOTE}" in client.output
    ), client.output

    # The ended session, as the officer now sees it: the kill and the end, with reasons.
    deadline = time.monotonic() + 10
    while True:
        ok(officer, officer.goto(f"{console}/sessions/{session_id}"))
        body = text_of(officer)
        if "已结束" in body or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "已结束" in body and KILL_NOTE in body and "安全员终止会话" in body, body
    # The stream the employer's request used, with its service and bytes (stream.end).
    streams = officer.locator("#streams").inner_text()
    assert "declare" in streams and ("正常结束" in streams or "随会话结束" in streams), streams
    screenshots.take(officer, "officer-session-ended")
