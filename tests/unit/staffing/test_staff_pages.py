"""The administrators' staff pages in the staff console, with the real workflows.

The console is the one ``serve`` assembles (``ssgate._console.console_shell`` with
``staff_admin=``), on SQLite with the real authenticator, audit log and staff
workflows, driven over HTTP in memory with a ``MemoryReactorClock``.
"""

from __future__ import annotations

import base64
import io
import re
import urllib.parse
import zipfile
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import Engine
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import Site

import audit
import auth
import staffing
from auth.testing import SynchronousRunner
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, Reply, enrol_staff
from ssgate._db import make_engine
from staffing.testing import make_staff_admin

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PASSWORD = "Correct-Horse-9-battery"


@dataclass
class World:
    engine: Engine
    clock: MemoryReactorClock
    secrets: dict[str, str]
    admin: staffing.StaffAdministration
    authenticator: auth.Authenticator
    site: Site

    def client(self) -> ConsoleClient:
        return ConsoleClient(self.site, clock=self.clock)

    def login(self, name: str, client: ConsoleClient | None = None) -> ConsoleClient:
        c = client or self.client()
        self.clock.advance(30)  # a fresh TOTP step for each login
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        reply = c.login(name, PASSWORD, code)
        assert reply.status == 303, reply.text
        return c

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions=[action])]

    def status(self, name: str) -> str:
        return self.admin.show(name).record.status


def act(c: ConsoleClient, name: str, action: str, reason: str = "本人申请") -> Reply:
    page = f"/staff/members/{name}/{action}"
    return c.submit(page, page, {"reason": reason})


@pytest.fixture
def world(tmp_path: Path) -> World:
    engine = make_engine(f"sqlite:///{tmp_path}/staff.db")
    auth.metadata.create_all(engine)
    audit.metadata.create_all(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    members = (("root", "admin"), ("alice", "auditor"), ("otto", "officer"))
    with engine.begin() as conn:
        secrets = enrol_staff(conn, members, password=PASSWORD, hasher=hasher, box=box, now=NOW)
    clock = MemoryReactorClock()
    clock.advance(NOW)
    admin = make_staff_admin(engine, clock=clock.seconds, hasher=hasher, box=box)
    authenticator = auth.Authenticator(engine, hasher, box)
    site = console_site(
        authenticator=authenticator,
        runner=SynchronousRunner(engine),
        workflow=None,
        staff_admin=admin,
        clock=clock,
        secure=False,
        refusal_delay=0,
        login_form_key=bytes(range(32)),
    )
    return World(engine, clock, secrets, admin, authenticator, site)


def _one_time(reply: Reply, element: str) -> str:
    match = re.search(rf'id="{element}"[^>]*>([^<]*)<', reply.text)
    assert match is not None, reply.text[:3000]
    return unescape(match.group(1))


def _otp_files(reply: Reply) -> zipfile.ZipFile:
    match = re.search(r'href="data:application/zip;base64,([A-Za-z0-9+/=]+)"', reply.text)
    assert match is not None, reply.text[:3000]
    return zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(1))))


def _secret_of(files: zipfile.ZipFile, name: str) -> str:
    uri = files.read(f"{name}/otpauth.txt").decode().strip()
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


def test_the_list_shows_every_member_with_role_status_and_lockout(world: World) -> None:
    c = world.login("root")
    page = c.get("/staff")
    assert page.status == 200
    for name in ("root", "alice", "otto"):
        assert f'href="/staff/members/{name}"' in page.text
    assert "经办审核员" in page.text and "正常" in page.text and "未锁定" in page.text
    assert "+08:00" in page.text  # people's times in Beijing time, offset shown
    assert 'href="/staff"' in c.get("/").text  # in the admin's navigation


def test_an_admin_adds_a_member_who_logs_in_with_what_the_page_showed_once(
    world: World,
) -> None:
    c = world.login("root")
    form = c.get("/staff/add")
    assert form.status == 200 and 'name="role"' in form.text
    reply = c.submit(
        "/staff/add", "/staff/add", {"name": "li.na", "role": "officer", "reason": "新同事"}
    )
    assert reply.status == 200, reply.text
    password = _one_time(reply, "issued-password")
    assert 'id="issued-qr" src="data:image/png;base64,' in reply.text
    assert "当面交给该工作人员" in reply.text
    files = _otp_files(reply)
    assert sorted(files.namelist()) == [
        f"li.na/{n}" for n in ("otp-qr.png", "otp-qr.svg", "otpauth.txt")
    ]
    world.clock.advance(30)
    now = world.clock.seconds()
    code = auth.current_code(_secret_of(files, "li.na"), now)
    assert world.authenticator.authenticate(
        "li.na", password, code, source="192.0.2.1", now=now, kind="staff"
    ).ok
    [event] = world.events("staff.add")
    assert (event.actor, event.subject, event.reason) == ("staff:root", "li.na", "新同事")
    assert event.session_id.startswith("cs-") and password not in repr(event)
    # Shown once: the member's page does not show it again.
    assert password not in c.get("/staff/members/li.na").text


def test_a_bad_add_form_comes_back_with_each_problem_named(world: World) -> None:
    c = world.login("root")
    reply = c.submit("/staff/add", "/staff/add", {"name": "Li Na", "role": "root", "reason": ""})
    assert reply.status == 400
    assert 'id="name-error"' in reply.text and 'id="role-error"' in reply.text
    assert "请填写办理原因" in reply.text
    assert world.events("staff.add") == []
    taken = c.submit(
        "/staff/add", "/staff/add", {"name": "alice", "role": "auditor", "reason": "x"}
    )
    assert taken.status == 409 and "已被使用" in taken.text
    assert world.events("staff.add")[0].reason == "staff-exists"


def test_disable_needs_a_confirmation_with_a_reason_and_ends_the_members_session(
    world: World,
) -> None:
    alice = world.login("alice")
    assert alice.get("/").status == 200
    c = world.login("root")
    confirm = c.get("/staff/members/alice/disable")
    assert confirm.status == 200 and "确认停用" in confirm.text and 'name="reason"' in confirm.text
    empty = act(c, "alice", "disable", reason="")
    assert empty.status == 400 and "请填写办理原因" in empty.text
    assert world.status("alice") == "active"
    done = act(c, "alice", "disable", reason="离职")
    assert (done.status, done.location) == (303, "/staff/members/alice?done=disable")
    assert "已停用" in c.get(done.location or "").text
    assert world.status("alice") == "disabled"
    # Alice's very next request finds her logged out.
    assert (alice.get("/").status, alice.get("/").location) == (303, "/login")
    [event] = world.events("staff.disable")
    assert (event.actor, event.reason, event.details["console_sessions"]) == (
        "staff:root",
        "离职",
        1,
    )
    again = act(c, "alice", "disable")
    assert again.status == 409 and "不允许此操作" in again.text
    assert act(c, "alice", "enable", reason="返岗").status == 303
    assert world.status("alice") == "active"


def test_an_admin_cannot_disable_themselves(world: World) -> None:
    c = world.login("root")
    reply = act(c, "root", "disable")
    assert reply.status == 409 and "不能停用自己的账号" in reply.text
    assert world.status("root") == "active"


def test_reset_password_shows_the_new_password_once_and_ends_sessions(world: World) -> None:
    alice = world.login("alice")
    c = world.login("root")
    reply = act(c, "alice", "reset-password", reason="遗忘密码")
    assert reply.status == 200
    password = _one_time(reply, "issued-password")
    assert password != PASSWORD and "1 个控制台会话已结束" in reply.text
    assert alice.get("/").location == "/login"
    world.clock.advance(30)
    now = world.clock.seconds()
    code = auth.current_code(world.secrets["alice"], now)
    assert world.authenticator.authenticate(
        "alice", password, code, source="192.0.2.1", now=now, kind="staff"
    ).ok


def test_reset_otp_offers_the_new_qr_once(world: World) -> None:
    c = world.login("root")
    reply = act(c, "otto", "reset-otp", reason="换手机")
    assert reply.status == 200
    assert 'id="issued-qr"' in reply.text
    assert _secret_of(_otp_files(reply), "otto") != world.secrets["otto"]
    assert world.events("staff.reset-otp")[0].actor == "staff:root"


def test_unlock_is_offered_for_a_locked_member_and_refused_otherwise(world: World) -> None:
    c = world.login("root")
    assert "/staff/members/alice/unlock" not in c.get("/staff/members/alice").text
    refused = act(c, "alice", "unlock")
    assert refused.status == 409 and "没有被锁定" in refused.text
    for _ in range(5):
        world.clock.advance(1)
        c2 = world.client()
        assert c2.login("alice", "wrong-Password-1", "000000").status == 403
    page = c.get("/staff/members/alice")
    assert "临时锁定至" in page.text and "/staff/members/alice/unlock" in page.text
    assert act(c, "alice", "unlock", reason="电话核实").status == 303
    world.login("alice")  # at once, not after the lock period
    assert [(e.outcome, e.actor) for e in world.events("staff.unlock")] == [
        ("refused", "staff:root"),
        ("ok", "staff:root"),
    ]


def test_an_unknown_member_is_a_chinese_404(world: World) -> None:
    c = world.login("root")
    assert c.get("/staff/members/nobody").status == 404
    reply = act(c, "nobody", "unlock")
    assert reply.status == 404 and "不存在" in reply.text


@pytest.mark.parametrize("member", ["alice", "otto"])
def test_other_roles_cannot_reach_the_staff_pages(world: World, member: str) -> None:
    c = world.login(member)
    assert c.get("/staff").status == 403
    assert c.get("/staff/members/root").status == 403
    token = c.get("/").csrf_token()
    assert c.post("/staff/members/root/disable", {"csrf_token": token, "reason": "x"}).status == 403
    assert world.status("root") == "active"
    assert 'href="/staff"' not in c.get("/").text


def test_a_change_without_the_session_csrf_token_is_refused_and_audited(world: World) -> None:
    c = world.login("root")
    reply = c.post("/staff/members/alice/disable", {"csrf_token": "forged", "reason": "x"})
    assert reply.status == 403
    assert world.status("alice") == "active"
    [event] = world.events("console.csrf")
    assert (event.outcome, event.reason) == ("refused", "csrf-token")


def test_the_cli_and_the_console_run_one_workflow(world: World) -> None:
    """The command line's actor stays its own; the console's is the staff member."""
    world.admin.disable("otto", reason="cli")
    c = world.login("root")
    act(c, "otto", "enable", reason="console")
    events = world.events("staff.disable") + world.events("staff.enable")
    assert [(e.actor, e.reason) for e in events] == [
        ("os:tester", "cli"),
        ("staff:root", "console"),
    ]
