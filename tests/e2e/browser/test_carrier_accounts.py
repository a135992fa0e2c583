"""Issue 10, acceptance 2 (the carrier's part), with real processes throughout.

``ssgate serve`` runs as a process; a carrier staff member (``ssgate staff add …
--role carrier``) logs in to the staff console in headless Chromium and, for a unit
the agency registered and approved (``ssgate units register|approve``):

* opens its channel account and downloads the bundle zip through the browser;
* the zip, unpacked, is all an employer needs: ``ssgate connect --profile …`` with the
  initial password and the passphrase shown once on the page, and a code computed
  from the bundle's ``otpauth.txt``, logs in (no password change is forced: the
  employer may change it later in the declaration site);
* suspending the account in the browser (confirmation + reason) ends that live
  session within 5 s: the client process exits, saying why;
* resume lets the account log in again; reset OTP hands out a new secret (a second
  download) that logs in while the old one no longer does;
* cancel ends the session again and puts the bundle's certificate serial in the CRL
  (``ssgate pki crl``, and the state's ``crl.pem`` read with ``cryptography``).

Screenshots of each step go to ``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import time
import urllib.parse
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

if TYPE_CHECKING:  # conftest is not importable under --import-mode=importlib
    from conftest import Channel, NewPage, Proc, Screenshots
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow]

UNIT = "23456789"
ACCOUNT = f"330682{UNIT}@sxlss"
CARRIER = "carrier1"
CARRIER_PASSWORD = "Carrier-Pass-4711!"
SUSPEND_WITHIN = 5.0  # the acceptance: suspend ends the live session within 5 s
POLL_SLACK = 1.0  # the client's exit is seen by a poll of its output, as in the officer test


def totp_of(otpauth: Path) -> pyotp.TOTP:
    uri = otpauth.read_text(encoding="utf-8").strip()
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    return pyotp.TOTP(secret)


def add_carrier(channel: Channel) -> pyotp.TOTP:
    """``ssgate staff add carrier1 --role carrier``; the TOTP from its otpauth.txt."""
    secrets_dir = channel.tmp / "carrier-secrets"
    secrets_dir.mkdir()
    password_file = secrets_dir / "password"
    password_file.write_text(CARRIER_PASSWORD + "\n", encoding="utf-8")
    out = channel.tmp / "staff-carrier1"
    channel.run(
        "staff", "add", CARRIER, "--role", "carrier",
        "--password-file", str(password_file), "--out", str(out), check_rc=0,
    )  # fmt: skip
    return totp_of(out / "otpauth.txt")


def approve_unit(channel: Channel) -> None:
    """The agency's part: the unit registered and approved for online service."""
    channel.run(
        "units", "register", UNIT, "--name", "绍兴市上虞承运测试有限公司",
        "--region", "330682", "--injury-risk-class", "3", check_rc=0,
    )  # fmt: skip
    channel.run("units", "approve", UNIT, check_rc=0)


def ok(page: Page, response: Any) -> None:
    assert response is not None, "no response"
    assert response.ok, f"{response.status} {response.url}\n{text_of(page)}"


def text_of(page: Page) -> str:
    return page.locator("body").inner_text()


def at(page: Page) -> str:
    """The page's address as read (a redirect may carry the account's @ as %40)."""
    return urllib.parse.unquote(page.url)


def download(page: Page, into: Path) -> Path:
    """Click the page's one-time download link; the zip as the browser saved it."""
    link = page.locator("#bundle-download")
    with page.expect_download() as info:
        link.click()
    got = info.value
    assert got.failure() is None, got.failure()
    assert got.suggested_filename == f"{ACCOUNT}.zip"
    saved = into / got.suggested_filename
    got.save_as(saved)
    return saved


def unzip(archive: Path, into: Path) -> Path:
    """Unpack *archive* into *into*; the one folder it holds (named after the account)."""
    with zipfile.ZipFile(archive) as z:
        assert all(n.startswith(f"{ACCOUNT}/") for n in z.namelist()), z.namelist()
        z.extractall(into)
    return into / ACCOUNT


def secret_file(channel: Channel, name: str, value: str) -> Path:
    path = channel.tmp / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def connect(channel: Channel, bundle: Path, password: Path, p12_password: Path, code: str) -> Proc:
    """The employer's ``ssgate connect`` with the unpacked bundle, as a process."""
    return channel.spawn(
        [
            channel.ssgate, "connect", "--profile", str(bundle / "profile.toml"),
            "--password-file", str(password), "--p12-password-file", str(p12_password),
            "--otp", code, "--listen", "127.0.0.1:0",
        ]
    )  # fmt: skip


def confirm(page: Page, console: str, title: str, reason: str) -> None:
    """From the account's page: the action's link, its confirmation with a reason, sent."""
    with page.expect_navigation():
        page.locator("ul.actions").get_by_role("link", name=title, exact=True).click()
    assert at(page).startswith(f"{console}/accounts/{ACCOUNT}/"), page.url
    page.fill("#reason", reason)


def send(page: Page) -> None:
    with page.expect_navigation():
        page.locator("form.actions button[type=submit]").click()


def bundle_serial(bundle: Path, passphrase: str) -> int:
    _, cert, _ = pkcs12.load_key_and_certificates(
        (bundle / "client.p12").read_bytes(), passphrase.encode()
    )
    assert cert is not None
    return cert.serial_number


def test_carrier_opens_an_account_the_bundle_connects_and_suspend_resume_reset_cancel_work(
    channel: Channel, new_page: NewPage, screenshots: Screenshots
) -> None:
    carrier_totp = add_carrier(channel)
    approve_unit(channel)
    channel.start()
    console = f"https://127.0.0.1:{channel.console_port}"
    # Our private CA signs the console's certificate (test_declare_flow checks it
    # against ca.pem); this context skips the browser's own check.
    carrier = new_page(ignore_https_errors=True, accept_downloads=True)

    ok(carrier, carrier.goto(f"{console}/login"))
    carrier.fill("#name", CARRIER)
    carrier.fill("#password", CARRIER_PASSWORD)
    carrier.fill("#otp", carrier_totp.now())
    with carrier.expect_navigation():
        carrier.get_by_role("button", name="登录").click()
    assert carrier.url == f"{console}/", text_of(carrier)

    # -- open the account ------------------------------------------------------------------
    with carrier.expect_navigation():
        carrier.get_by_role("navigation", name="功能菜单").get_by_role(
            "link", name="专网账号"
        ).click()
    assert carrier.url == f"{console}/accounts", carrier.url
    with carrier.expect_navigation():
        carrier.get_by_role("link", name="开设专网账号").click()
    carrier.fill("#account", ACCOUNT)
    carrier.fill("#reason", "单位申请开通网上申报专网（受理单 2026-001）")
    screenshots.take(carrier, "carrier-open-form")
    with carrier.expect_navigation():
        carrier.get_by_role("button", name="确认开设").click()
    assert carrier.locator("#issued-account").inner_text() == ACCOUNT, text_of(carrier)
    password = carrier.locator("#issued-password").inner_text()
    passphrase = carrier.locator("#issued-p12-passphrase").inner_text()
    assert password and passphrase
    screenshots.take(carrier, "carrier-account-opened-shown-once")

    # -- the bundle zip, downloaded by the browser, unpacked as the employer would -------
    downloads = channel.tmp / "downloads"
    downloads.mkdir()
    bundle = unzip(download(carrier, downloads), channel.tmp / "employer")
    assert {p.name for p in bundle.iterdir()} >= {
        "client.p12", "ca.pem", "profile.toml", "otp-qr.png", "otpauth.txt",
    }  # fmt: skip
    serial = bundle_serial(bundle, passphrase)
    password_file = secret_file(channel, "employer-password", password)
    p12_file = secret_file(channel, "employer-p12-password", passphrase)
    totp = totp_of(bundle / "otpauth.txt")

    client = connect(channel, bundle, password_file, p12_file, totp.now())
    session_id, _ = channel.connected(client)

    # The account's page shows the live session.
    with carrier.expect_navigation():
        carrier.get_by_role("link", name="完成，返回账号页面").click()
    assert at(carrier) == f"{console}/accounts/{ACCOUNT}"
    assert carrier.locator("#account-status").inner_text() == "正常"
    assert session_id in text_of(carrier)
    assert password not in carrier.content() and passphrase not in carrier.content()  # once
    screenshots.take(carrier, "carrier-account-page-live-session")

    # -- suspend: the live session ends within 5 s --------------------------------------
    confirm(carrier, console, "暂停账号", "单位欠费，暂停专网使用")
    screenshots.take(carrier, "carrier-suspend-confirm")
    started = time.monotonic()
    send(carrier)
    assert at(carrier) == f"{console}/accounts/{ACCOUNT}?done=suspend", text_of(carrier)
    assert client.wait_exit() == 14, client.output  # account-suspended
    assert time.monotonic() - started <= SUSPEND_WITHIN + POLL_SLACK, client.output
    assert "该账号已暂停使用" in client.output and "suspended" in client.output
    assert carrier.locator("#account-status").inner_text().startswith("已暂停")
    screenshots.take(carrier, "carrier-suspended")

    refused = connect(channel, bundle, password_file, p12_file, totp.at(time.time() + 30))
    assert refused.wait_exit() == 14, refused.output  # account-suspended: no login
    assert "suspended" in refused.output, refused.output

    # -- resume ---------------------------------------------------------------------------
    confirm(carrier, console, "恢复账号", "单位已补缴，恢复专网使用")
    send(carrier)
    assert at(carrier) == f"{console}/accounts/{ACCOUNT}?done=resume", text_of(carrier)
    assert carrier.locator("#account-status").inner_text().startswith("正常")
    screenshots.take(carrier, "carrier-resumed")

    # -- reset OTP: a new secret, downloaded again; the old one is dead ------------------
    confirm(carrier, console, "重置动态口令", "经办人更换手机，重置动态口令")
    send(carrier)
    assert carrier.locator("#issued-qr").is_visible(), text_of(carrier)
    screenshots.take(carrier, "carrier-otp-reset-shown-once")
    otp_downloads = channel.tmp / "otp-downloads"
    otp_downloads.mkdir()
    new_files = unzip(download(carrier, otp_downloads), channel.tmp / "employer-new-otp")
    new_totp = totp_of(new_files / "otpauth.txt")
    assert new_totp.secret != totp.secret

    old = connect(channel, bundle, password_file, p12_file, totp.now())
    assert old.wait_exit() == 20, old.output  # auth-failed
    # Resumed, and with the new secret: the account logs in again.
    client = connect(channel, bundle, password_file, p12_file, new_totp.now())
    channel.connected(client)

    # -- cancel: the session ends, the bundle's certificate is in the CRL ---------------
    with carrier.expect_navigation():
        carrier.get_by_role("link", name="完成，返回账号页面").click()
    confirm(carrier, console, "注销账号", "单位注销，停止专网服务")
    screenshots.take(carrier, "carrier-cancel-confirm")
    send(carrier)
    assert at(carrier) == f"{console}/accounts/{ACCOUNT}?done=cancel", text_of(carrier)
    assert carrier.locator("#account-status").inner_text().startswith("已注销")
    certificates = carrier.locator("table.list").nth(1).inner_text()
    assert "已吊销" in certificates and "账号注销" in certificates, certificates
    assert "账号已暂停" in carrier.locator("table.list").nth(2).inner_text()  # the first session
    screenshots.take(carrier, "carrier-cancelled")
    # Two paths end it, whichever reaches the gateway first: the kill request
    # (account-cancelled, exit 15) or the new CRL (cert-revoked, exit 16).
    assert client.wait_exit() in (15, 16), client.output

    crl_text = channel.run("pki", "crl", check_rc=0).stdout
    assert f"serial {serial:x} " in crl_text, crl_text
    crl = x509.load_pem_x509_crl((channel.state / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
