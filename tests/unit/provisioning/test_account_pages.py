"""The carriers' account pages in the staff console, with the real Provisioner.

The console is the one ``serve`` assembles (``ssgate._console.console_shell`` with
``provisioner=``), on SQLite with the real authenticator, audit log, PKI and
provisioning workflows, driven over HTTP in memory; only the unit registry and the
gateway's sessions are fakes (:mod:`provisioning.testing`).
"""

from __future__ import annotations

import base64
import io
import re
import zipfile
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import certs
from auth.testing import SynchronousRunner
from certs._schema import metadata as certs_metadata
from provisioning import Provisioner, SessionSummary
from provisioning.testing import MemoryUnits, RecordingSessions, make_provisioner
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, Reply, enrol_staff
from ssgate._db import make_engine

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PASSWORD = "Correct-Horse-9-battery"
ACCOUNT = "33068212345678@sxlss"
UNIT = "12345678"


@dataclass
class World:
    client: ConsoleClient
    provisioner: Provisioner
    units: MemoryUnits
    sessions: RecordingSessions
    clock: MemoryReactorClock
    secrets: dict[str, str]
    engine: Engine
    authenticator: auth.Authenticator

    def login(self, name: str) -> None:
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        reply = self.client.login(name, PASSWORD, code)
        assert reply.status == 303, reply.text

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions=[action])]

    def open_account(self, account: str = ACCOUNT, reason: str = "新开户") -> Reply:
        return self.client.submit(
            "/accounts/open", "/accounts/open", {"account": account, "reason": reason}
        )

    def act(self, action: str, reason: str = "单位申请", account: str = ACCOUNT) -> Reply:
        page = f"/accounts/{account}/{action}"
        return self.client.submit(page, page, {"reason": reason})


@pytest.fixture
def world(tmp_path: Path) -> World:
    engine = make_engine(f"sqlite:///{tmp_path}/accounts.db")
    for metadata in (auth.metadata, audit.metadata, certs_metadata):
        metadata.create_all(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    with engine.begin() as conn:
        members = (("carol", "carrier"), ("otto", "officer"))
        secrets = enrol_staff(conn, members, password=PASSWORD, hasher=hasher, box=box, now=NOW)
    clock = MemoryReactorClock()
    clock.advance(NOW)
    units = MemoryUnits({UNIT: ("approved", "330682"), "87654321": ("registered", "330682")})
    sessions = RecordingSessions()
    provisioner = make_provisioner(
        engine, clock=clock.seconds, units=units, sessions=sessions, hasher=hasher, box=box
    )
    site = console_site(
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=SynchronousRunner(engine),
        workflow=None,
        provisioner=provisioner,
        clock=clock,
        secure=False,
        refusal_delay=0,
        login_form_key=bytes(range(32)),
    )
    return World(
        ConsoleClient(site, clock=clock),
        provisioner,
        units,
        sessions,
        clock,
        secrets,
        engine,
        auth.Authenticator(engine, hasher, box),
    )


def _one_time(reply: Reply, element: str) -> str:
    match = re.search(rf'id="{element}"[^>]*>([^<]*)<', reply.text)
    assert match is not None, reply.text[:3000]
    return unescape(match.group(1))


def _bundle(reply: Reply) -> zipfile.ZipFile:
    match = re.search(
        r'href="data:application/zip;base64,([A-Za-z0-9+/=]+)" download="([^"]+)"', reply.text
    )
    assert match is not None, reply.text[:3000]
    return zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(1))))


def test_a_carrier_opens_an_account_and_sees_its_password_qr_and_bundle_once(world: World) -> None:
    world.login("carol")
    reply = world.open_account()
    assert reply.status == 200, reply.text
    password = _one_time(reply, "issued-password")
    passphrase = _one_time(reply, "issued-p12-passphrase")
    assert password
    assert 'id="issued-qr" src="data:image/png;base64,' in reply.text
    bundle = _bundle(reply)
    assert sorted(bundle.namelist()) == sorted(
        f"{ACCOUNT}/{n}"
        for n in ("client.p12", "ca.pem", "profile.toml", "otp-qr.png", "otp-qr.svg", "otpauth.txt")
    )
    _key, cert, _chain = certs.load_pkcs12(
        bundle.read(f"{ACCOUNT}/client.p12"), passphrase.encode()
    )
    assert certs.account_of(cert) == ACCOUNT
    assert f'account = "{ACCOUNT}"' in bundle.read(f"{ACCOUNT}/profile.toml").decode()
    # The workflow the CLI runs, acting as the staff member.
    (event,) = world.events("provision.open")
    assert (event.actor, event.subject, event.outcome, event.reason) == (
        "staff:carol",
        ACCOUNT,
        "ok",
        "新开户",
    )
    # Nothing of it is kept for a second view: the account page shows no secret.
    page = world.client.get(f"/accounts/{ACCOUNT}")
    assert page.status == 200
    assert password not in page.text and passphrase not in page.text
    assert "data:application/zip" not in page.text and "issued-qr" not in page.text
    # The secrets are nowhere in the audit log either.
    for e in world.events("provision.open"):
        assert password not in repr(e) and passphrase not in repr(e)


def _otp_secret(otp_uri: str) -> str:
    match = re.search(r"secret=([A-Z2-7]+)", otp_uri)
    assert match is not None
    return match.group(1)


def test_what_the_open_page_hands_out_logs_in(world: World) -> None:
    world.login("carol")
    reply = world.open_account()
    password = _one_time(reply, "issued-password")
    uri = _bundle(reply).read(f"{ACCOUNT}/otpauth.txt").decode().strip()
    now = world.clock.seconds()
    code = auth.current_code(_otp_secret(uri), now)
    outcome = world.authenticator.authenticate(
        ACCOUNT, password, code, source="203.0.113.7", now=now
    )
    assert outcome.ok, outcome.reason


def test_opening_for_a_unit_not_approved_is_refused_in_chinese_and_audited(world: World) -> None:
    world.login("carol")
    reply = world.open_account("33068287654321@sxlss")
    assert reply.status == 409
    assert "尚未审核通过网上申报" in reply.text
    reply = world.open_account("33068211112222@sxlss")
    assert reply.status == 409
    assert "尚未在社保经办机构登记" in reply.text
    refused = world.events("provision.open")
    assert [(e.actor, e.outcome, e.reason) for e in refused] == [
        ("staff:carol", "refused", "unit-unapproved"),
        ("staff:carol", "refused", "unit-unregistered"),
    ]


def test_opening_twice_is_refused(world: World) -> None:
    world.login("carol")
    assert world.open_account().status == 200
    reply = world.open_account()
    assert reply.status == 409 and "已存在" in reply.text


@pytest.mark.parametrize(
    ("account", "reason", "expected"),
    [
        ("", "原因", "请填写账号"),
        ("33068212345678@other", "原因", "账号格式不正确"),
        ("not-an-account", "原因", "账号格式不正确"),
        (ACCOUNT, "", "请填写办理原因"),
        (ACCOUNT, "很" * 201, "不能超过 200 字"),
    ],
)
def test_a_bad_open_form_comes_back_with_the_problem_named(
    world: World, account: str, reason: str, expected: str
) -> None:
    world.login("carol")
    reply = world.open_account(account, reason)
    assert reply.status == 400
    assert expected in reply.text
    assert world.events("provision.open") == []


def test_search_by_account_unit_and_status(world: World) -> None:
    world.units.units["22223333"] = ("approved", "330682")
    world.provisioner.open(ACCOUNT)
    world.provisioner.open("33068222223333@sxlss")
    world.provisioner.suspend("33068222223333@sxlss", reason="test")
    world.login("carol")
    both = world.client.get("/accounts")
    assert both.status == 200 and ACCOUNT in both.text and "33068222223333@sxlss" in both.text
    by_unit = world.client.get(f"/accounts?unit={UNIT}")
    assert ACCOUNT in by_unit.text and "33068222223333" not in by_unit.text
    by_part = world.client.get("/accounts?account=2222333")
    assert ACCOUNT not in by_part.text and "33068222223333@sxlss" in by_part.text
    suspended = world.client.get("/accounts?status=suspended")
    assert ACCOUNT not in suspended.text and "已暂停" in suspended.text
    wildcard = world.client.get("/accounts?account=%25")
    assert "没有符合条件的账号" in wildcard.text
    bad = world.client.get("/accounts?status=gone")
    assert bad.status == 400 and "请选择有效的账号状态" in bad.text
    bad = world.client.get("/accounts?unit=abc")
    assert bad.status == 400 and "单位编号应为 8 位数字" in bad.text


def test_the_account_page_shows_certificates_lockout_and_sessions(world: World) -> None:
    issued = world.provisioner.open(ACCOUNT)
    world.sessions.sessions[ACCOUNT] = [
        SessionSummary(
            id="s-0123456789abcdef",
            peer="203.0.113.7:50000",
            node="node-a",
            status="live",  # the gateway's word for a session in progress
            started_at=NOW,
            ended_at=None,
            end_reason=None,
            bytes_in=10,
            bytes_out=20,
        )
    ]
    world.login("carol")
    page = world.client.get(f"/accounts/{ACCOUNT}")
    assert page.status == 200
    assert issued.certificate_serial is not None and issued.certificate_serial in page.text
    assert "未锁定" in page.text
    assert "s-0123456789abcdef" in page.text and "203.0.113.7" in page.text
    # The status in the carrier's words, not the gateway's code (it once showed "live").
    assert "<td>在线</td>" in page.text and "<td>live</td>" not in page.text
    assert f"/accounts/{ACCOUNT}/suspend" in page.text
    assert f"/accounts/{ACCOUNT}/resume" not in page.text
    assert f"/accounts/{ACCOUNT}/unlock" not in page.text  # nothing to unlock


def test_an_unknown_account_is_a_chinese_404(world: World) -> None:
    world.login("carol")
    for path in (
        "/accounts/33068299999999@sxlss",
        "/accounts/33068299999999@nowhere",
        "/accounts/33068299999999@nowhere/suspend",
    ):
        reply = world.client.get(path)
        assert reply.status == 404, path
        assert "不存在" in reply.text
    reply = world.act("suspend", account="33068299999999@sxlss")
    assert reply.status == 404 and "不存在" in reply.text


def test_suspend_needs_a_confirmation_with_a_reason_then_ends_sessions(world: World) -> None:
    world.provisioner.open(ACCOUNT)
    world.login("carol")
    confirm = world.client.get(f"/accounts/{ACCOUNT}/suspend")
    assert (
        confirm.status == 200 and "确认暂停账号" in confirm.text and 'name="reason"' in confirm.text
    )
    empty = world.act("suspend", reason="")
    assert empty.status == 400 and "请填写办理原因" in empty.text
    assert world.provisioner.show(ACCOUNT).account.status == "active"
    done = world.act("suspend", reason="单位欠费")
    assert (done.status, done.location) == (303, "/accounts/33068212345678%40sxlss?done=suspend")
    assert world.provisioner.show(ACCOUNT).account.status == "suspended"
    assert world.sessions.ended == [(ACCOUNT, "account-suspended", "staff:carol")]
    (event,) = world.events("provision.suspend")
    assert (event.actor, event.reason, event.outcome) == ("staff:carol", "单位欠费", "ok")
    assert event.session_id  # the console session that did it
    page = world.client.get(done.location or "")
    assert "已暂停账号" in page.text and "已暂停" in page.text
    # Suspending again: the workflow refuses, the page says why.
    again = world.act("suspend")
    assert again.status == 409 and "不允许此操作" in again.text
    assert world.events("provision.suspend")[-1].outcome == "refused"
    assert world.act("resume").status == 303
    assert world.provisioner.show(ACCOUNT).account.status == "active"


def test_cancel_revokes_the_certificate_into_the_crl(world: World) -> None:
    issued = world.provisioner.open(ACCOUNT)
    world.login("carol")
    assert world.act("cancel", reason="单位注销").status == 303
    view = world.provisioner.show(ACCOUNT)
    assert view.account.status == "cancelled"
    assert [c.status for c in view.certificates] == ["revoked"]
    page = world.client.get(f"/accounts/{ACCOUNT}")
    assert "已注销，不能再办理业务" in page.text
    refused = world.act("reset-password")
    assert refused.status == 409 and "已注销" in refused.text
    assert world.sessions.ended == [(ACCOUNT, "account-cancelled", "staff:carol")]
    (event,) = world.events("provision.cancel")
    assert event.details["certificates"] == issued.certificate_serial


def test_revocation_and_session_end_reasons_are_shown_in_chinese(world: World) -> None:
    """The CRL's and the gateway's reason codes in the carrier's words (the page once
    showed "cessation_of_operation" and "account-suspended"); an unknown code as is."""
    world.provisioner.open(ACCOUNT)
    world.sessions.sessions[ACCOUNT] = [
        SessionSummary(
            id=f"s-{n}", peer="203.0.113.7:50000", node="node-a", status="ended",
            started_at=NOW, ended_at=NOW + 60, end_reason=reason, bytes_in=1, bytes_out=2,
        )
        for n, reason in enumerate(("account-suspended", "some-new-reason"))
    ]  # fmt: skip
    world.login("carol")
    assert world.act("cancel", reason="单位注销").status == 303
    page = world.client.get(f"/accounts/{ACCOUNT}").text
    assert "/ 账号注销" in page and "cessation_of_operation" not in page
    assert "/ 账号已暂停" in page and "account-suspended" not in page
    assert "/ some-new-reason" in page


def test_reset_password_shows_the_new_password_once(world: World) -> None:
    issued = world.provisioner.open(ACCOUNT)
    world.login("carol")
    reply = world.act("reset-password", reason="单位遗忘密码")
    assert reply.status == 200
    password = _one_time(reply, "issued-password")
    assert "data:application/zip" not in reply.text  # nothing else to hand out
    now = world.clock.seconds()
    code = auth.current_code(_otp_secret(issued.otp_uri or ""), now)
    outcome = world.authenticator.authenticate(ACCOUNT, password, code, source="192.0.2.1", now=now)
    assert outcome.ok, outcome.reason
    (event,) = world.events("provision.reset-password")
    assert event.actor == "staff:carol" and password not in repr(event)


def test_reset_otp_shows_a_new_qr_once(world: World) -> None:
    world.provisioner.open(ACCOUNT)
    world.login("carol")
    reply = world.act("reset-otp")
    assert reply.status == 200
    assert 'id="issued-qr" src="data:image/png;base64,' in reply.text
    assert sorted(n.split("/")[1] for n in _bundle(reply).namelist()) == [
        "otp-qr.png",
        "otp-qr.svg",
        "otpauth.txt",
    ]
    assert world.events("provision.reset-otp")[0].actor == "staff:carol"


def test_reissue_cert_revokes_the_old_one_and_offers_a_new_bundle(world: World) -> None:
    first = world.provisioner.open(ACCOUNT)
    world.login("carol")
    reply = world.act("reissue-cert", reason="证书丢失")
    assert reply.status == 200
    names = sorted(n.split("/")[1] for n in _bundle(reply).namelist())
    assert names == ["ca.pem", "client.p12", "profile.toml"]
    assert _one_time(reply, "issued-p12-passphrase")
    statuses = {c.serial: c.status for c in world.provisioner.show(ACCOUNT).certificates}
    assert statuses[first.certificate_serial or ""] == "revoked"
    assert sorted(statuses.values()) == ["revoked", "valid"]
    assert world.sessions.ended[-1] == (ACCOUNT, "cert-revoked", "staff:carol")


def test_unlock_clears_a_lockout_and_is_refused_when_there_is_none(world: World) -> None:
    world.provisioner.open(ACCOUNT)
    world.login("carol")
    refused = world.act("unlock")
    assert refused.status == 409 and "没有被锁定" in refused.text
    with world.engine.begin() as conn:
        conn.execute(
            auth.metadata.tables["credentials"]
            .update()
            .where(auth.metadata.tables["credentials"].c.principal == ACCOUNT)
            .values(consecutive_failures=5, hard_locked=True)
        )
    page = world.client.get(f"/accounts/{ACCOUNT}")
    assert "已永久锁定" in page.text and f"/accounts/{ACCOUNT}/unlock" in page.text
    assert world.act("unlock", reason="核实为本人").status == 303
    state = world.provisioner.show(ACCOUNT).credential
    assert state is not None and not state.hard_locked and state.consecutive_failures == 0
    events = world.events("provision.unlock")
    assert [(e.actor, e.outcome) for e in events] == [
        ("staff:carol", "refused"),
        ("staff:carol", "ok"),
    ]


def test_other_roles_cannot_reach_the_account_pages(world: World) -> None:
    world.provisioner.open(ACCOUNT)
    world.login("otto")
    assert world.client.get("/accounts").status == 403
    assert world.client.get(f"/accounts/{ACCOUNT}").status == 403
    assert "专网账号" not in world.client.get("/").text


def test_the_cli_and_the_console_run_one_workflow(world: World) -> None:
    """The command line's actor stays its own; the console's is the staff member."""
    world.provisioner.open(ACCOUNT)
    world.provisioner.suspend(ACCOUNT, reason="cli")
    world.login("carol")
    world.act("resume", reason="console")
    events = world.events("provision.suspend") + world.events("provision.resume")
    assert [(e.actor, e.reason) for e in events] == [
        ("os:tester", "cli"),
        ("staff:carol", "console"),
    ]
