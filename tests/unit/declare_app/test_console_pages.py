"""The auditors' review pages in the staff console, against an in-memory workflow.

The console is the real one (``ssgate._console.console_site`` with the real
authenticator and audit log on SQLite, driven over HTTP in memory); the declaration
workflow is :class:`FakeWorkflow`, which implements
:class:`declare_app.interfaces.DeclarationWorkflow` (checked by annotation for mypy
and by signature here) with the DOMAIN §7 state rules the pages rely on.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
from auth.testing import SynchronousRunner
from declare_app.interfaces import (
    Actor,
    BatchLine,
    BatchResult,
    Declaration,
    DeclarationError,
    DeclarationType,
    DeclarationWorkflow,
    Finding,
    NotFound,
    Status,
)
from declare_app.web._review import RETURN_REASONS, when
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, Reply, enrol_staff
from ssgate._db import make_engine

LOGIN_FORM_KEY = bytes(range(32))  # any 32 bytes: the login-form token key

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z = 08:00 in Beijing
PASSWORD = "Correct-Horse-9-battery"


class FakeWorkflow:
    """In-memory :class:`DeclarationWorkflow`: the states and refusals of DOMAIN §7."""

    def __init__(self) -> None:
        self.items: dict[str, Declaration] = {}
        self.calls: list[tuple[str, Actor, str]] = []
        self.fail_approve: DeclarationError | None = None
        self._n = 0

    # -- seeding ----------------------------------------------------------------------

    def add(self, declaration_id: str, **changes: Any) -> Declaration:
        values: dict[str, Any] = {
            "id": declaration_id,
            "unit_code": "12345678",
            "type": DeclarationType.PERSON_ADD,
            "status": Status.PENDING_REVIEW,
            "version": 1,
            "previous_id": None,
            "payload": {"name": "张三", "id_number": "11010519491231002X", "base": 6000},
            "findings": (),
            "created_at": NOW - 3600,
            "created_session": "s-7f3a9c0e11d24b6f",
            "submitted_at": NOW - 1800,
            "history": (
                {
                    "at": NOW - 1800,
                    "declaration_id": declaration_id,
                    "version": 1,
                    "actor_kind": "employer",
                    "actor": "33068212345678@sxlss",
                    "session_id": "s-7f3a9c0e11d24b6f",
                    "from": "draft",
                    "to": "pending-review",
                    "note": "提交",
                },
            ),
        }
        values.update(changes)
        d = Declaration(**values)
        self.items[declaration_id] = d
        return d

    def _get(self, declaration_id: str) -> Declaration:
        d = self.items.get(declaration_id)
        if d is None:
            raise NotFound()
        return d

    def _log(self, name: str, actor: Actor, declaration_id: str) -> None:
        self.calls.append((name, actor, declaration_id))

    def _moved(
        self, d: Declaration, now: float, action: str, actor: Actor, **changes: Any
    ) -> Declaration:
        entry = {
            "at": now,
            "actor_kind": actor.kind,
            "actor": actor.name,
            "from": d.status.value,
            "to": changes.get("status", d.status).value,
            "note": action,
        }
        new = replace(d, history=(*d.history, entry), **changes)
        self.items[d.id] = new
        return new

    # -- employer side (not used by the console; kept simple) ---------------------------

    def create_draft(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        self._n += 1
        return self.add(
            f"d{self._n:04d}",
            unit_code=actor.unit_code or "",
            type=type,
            status=Status.DRAFT,
            payload=dict(payload),
            created_at=now,
            created_session=actor.session_id,
            submitted_at=None,
            history=(),
        )

    def update_draft(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        d = self.get(conn, actor, declaration_id)
        return self._moved(d, now, "update", actor, payload=dict(payload))

    def preview(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> tuple[Mapping[str, Any], tuple[Finding, ...]]:
        return dict(payload), ()

    def submit(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        d = self.get(conn, actor, declaration_id)
        return self._moved(d, now, "submit", actor, status=Status.PENDING_REVIEW, submitted_at=now)

    def import_batch(
        self,
        conn: Connection,
        actor: Actor,
        type: DeclarationType,
        lines: Sequence[BatchLine],
        *,
        common: Mapping[str, Any],
        now: float,
    ) -> BatchResult:
        raise NotImplementedError("the console never imports")

    def withdraw(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        d = self.get(conn, actor, declaration_id)
        return self._moved(d, now, "withdraw", actor, status=Status.WITHDRAWN)

    def resubmit(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        payload: Mapping[str, Any],
        *,
        now: float,
    ) -> Declaration:
        old = self.get(conn, actor, declaration_id)
        new = self.create_draft(conn, actor, old.type, payload, now=now)
        return self._moved(new, now, "resubmit", actor, version=old.version + 1, previous_id=old.id)

    # -- shared and agency side -------------------------------------------------------------

    def get(self, conn: Connection, actor: Actor, declaration_id: str) -> Declaration:
        d = self._get(declaration_id)
        if actor.kind == "employer" and d.unit_code != actor.unit_code:
            raise NotFound()
        return d

    def list(
        self, conn: Connection, actor: Actor, *, status: Status | None = None, limit: int = 200
    ) -> list[Declaration]:
        self.calls.append(("list", actor, status.value if status else ""))
        items = [
            d
            for d in self.items.values()
            if (status is None or d.status is status)
            and (actor.kind == "staff" or d.unit_code == actor.unit_code)
        ]
        return sorted(items, key=lambda d: d.submitted_at or 0)[:limit]

    def claim(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        self._log("claim", actor, declaration_id)
        d = self._get(declaration_id)
        if d.status is not Status.PENDING_REVIEW:
            raise DeclarationError("bad-state", "该申报当前不能领取")
        return self._moved(
            d, now, "claim", actor, status=Status.UNDER_REVIEW, claimed_by=actor.name
        )

    def approve(
        self, conn: Connection, actor: Actor, declaration_id: str, *, now: float
    ) -> Declaration:
        self._log("approve", actor, declaration_id)
        d = self._get(declaration_id)
        if self.fail_approve is not None:
            # as the real workflow does: the refusal is audited on conn, then raised
            audit.append(
                conn,
                audit.AuditEvent(
                    at=now,
                    actor=f"staff:{actor.name}",
                    action="declare.approve",
                    subject=declaration_id,
                    outcome="refused",
                    reason=self.fail_approve.code,
                ),
            )
            raise self.fail_approve
        if d.status is not Status.UNDER_REVIEW or d.claimed_by != actor.name:
            raise DeclarationError("bad-state", "该申报不在您的审核中")
        return self._moved(
            d,
            now,
            "approve",
            actor,
            status=Status.APPLIED,
            decided_by=actor.name,
            decided_at=now,
            voucher_no="PZ20260101000123",
        )

    def return_(
        self,
        conn: Connection,
        actor: Actor,
        declaration_id: str,
        *,
        code: str,
        text: str,
        now: float,
    ) -> Declaration:
        self._log("return", actor, declaration_id)
        d = self._get(declaration_id)
        if d.status is not Status.UNDER_REVIEW or d.claimed_by != actor.name:
            raise DeclarationError("bad-state", "该申报不在您的审核中")
        if not re.fullmatch(r"R(0[1-9]|[1-9][0-9])", code) or (code == "R99" and not text):
            raise DeclarationError("bad-reason", "退回原因无效")
        return self._moved(
            d,
            now,
            "return",
            actor,
            status=Status.RETURNED,
            decided_by=actor.name,
            decided_at=now,
            return_code=code,
            return_text=text,
        )


_workflow_check: DeclarationWorkflow = FakeWorkflow()  # mypy: the fake satisfies the Protocol


def test_the_fake_has_the_protocols_methods_and_signatures() -> None:
    """The fake stays in step with the interface (at run time too, not only for mypy)."""
    wanted = {
        name: inspect.signature(member)
        for name, member in vars(DeclarationWorkflow).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert set(wanted) <= set(dir(FakeWorkflow))
    for name, signature in wanted.items():
        got = inspect.signature(getattr(FakeWorkflow, name))
        assert list(got.parameters) == list(signature.parameters), name
        for p in signature.parameters.values():
            assert got.parameters[p.name].kind == p.kind, (name, p.name)


# -- the world --------------------------------------------------------------------------------


@dataclass
class World:
    engine: Engine
    clock: MemoryReactorClock
    workflow: FakeWorkflow
    secrets: dict[str, str]
    site: Any

    def login(self, name: str) -> ConsoleClient:
        c = ConsoleClient(self.site, clock=self.clock)
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        reply = c.login(name, PASSWORD, code)
        assert reply.status == 303, reply.text
        self.clock.advance(30)  # the next login of anyone uses a fresh time-step
        return c

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn) if r.event.action == action]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = make_engine(f"sqlite:///{tmp_path}/pages.db")
    auth.metadata.create_all(engine)
    audit.metadata.create_all(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    with engine.begin() as conn:
        members = [
            ("alice", "auditor"),
            ("bob", "auditor"),
            ("carol", "carrier"),
            ("root", "admin"),
        ]
        secrets = enrol_staff(conn, members, password=PASSWORD, hasher=hasher, box=box, now=NOW)
    clock = MemoryReactorClock()
    clock.advance(NOW)
    workflow = FakeWorkflow()
    site = console_site(
        login_form_key=LOGIN_FORM_KEY,
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=SynchronousRunner(engine),
        workflow=workflow,
        clock=clock,
        secure=False,
        refusal_delay=0,
    )
    yield World(engine, clock, workflow, secrets, site)
    engine.dispose()


def cells(reply: Reply) -> list[str]:
    """The text of every innermost table cell, in page order."""
    found = re.findall(r"<td>((?:(?!<td>).)*?)</td>", reply.text, re.S)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in found]


# -- the queue -------------------------------------------------------------------------------


def test_the_queue_lists_pending_declarations_with_unit_type_time_and_session(world: World) -> None:
    world.workflow.add("d1")
    world.workflow.add(
        "d2", type=DeclarationType.ANNUAL_BASE, unit_code="87654321", created_session="s-2"
    )
    world.workflow.add("d3", status=Status.UNDER_REVIEW, claimed_by="bob")
    world.workflow.add("d4", status=Status.APPLIED)
    c = world.login("alice")
    home = c.get("/")
    assert 'href="/review"' in home.text and "申报审核" in home.text
    reply = c.get("/review")
    assert reply.status == 200
    assert "待审核（2）" in reply.text and "审核中（1）" in reply.text
    row = cells(reply)
    assert row[:6] == [
        "人员增加",
        "12345678",
        "2026-01-01 07:30",
        "1",
        "s-7f3a9c0e11d24b6f",
        "待审核",
    ]
    assert "年度缴费基数申报" in row and "87654321" in row
    assert "bob" in row
    assert 'href="/review/d1"' in reply.text
    assert 'href="/review/d4"' not in reply.text
    applied = c.get("/review?status=applied")
    assert 'href="/review/d4"' in applied.text
    # the workflow saw the auditor as staff, with role
    actors = {actor for name, actor, _ in world.workflow.calls if name == "list"}
    assert actors == {Actor(kind="staff", name="alice", role="auditor")}


def test_an_empty_queue_says_so(world: World) -> None:
    reply = world.login("alice").get("/review")
    assert "没有待审核的申报。" in reply.text


def test_other_roles_cannot_open_the_review_pages_admin_can(world: World) -> None:
    world.workflow.add("d1")
    carol = world.login("carol")
    for path in ["/review", "/review/d1"]:
        assert carol.get(path).status == 403
    assert carol.submit("/", "/review/d1/claim").status == 403
    assert world.workflow.calls == []
    assert len(world.events("console.forbidden")) == 3
    root = world.login("root")
    assert root.get("/review").status == 200
    assert root.submit("/review/d1", "/review/d1/claim").status == 303
    assert world.workflow.items["d1"].claimed_by == "root"


# -- detail -----------------------------------------------------------------------------------


def test_the_detail_shows_payload_findings_history_and_escapes_everything(world: World) -> None:
    """The payload with the form's Chinese labels and choice texts (as the unit saw
    its form), each field's findings beside it, the history as a table."""
    world.workflow.add(
        "d1",
        payload={
            "name": "<script>alert(1)</script>",
            "id_number": "11010519491231002X",
            "hukou_type": "A",
            "insurances": ["110", "210"],
            "monthly_wage": "6000.00",
            "base": "6000.00",
            "odd_extra": 1,
        },
        findings=(
            Finding("V-BASE-01", "monthly_wage", "warning", "缴费基数低于下限，将按下限核定"),
        ),
    )
    reply = world.login("alice").get("/review/d1")
    assert reply.status == 200
    assert "<script>" not in reply.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in reply.text
    assert re.search(r"<th>公民身份号码</th><td>\s*11010519491231002X", reply.text)
    assert re.search(r"<th>户口性质</th><td>\s*[^<]*城镇", reply.text)
    assert "<th>核定缴费基数</th>" in reply.text  # a value the workflow derived
    assert "<th>odd_extra</th>" in reply.text  # unknown keys are still shown
    assert "提示：缴费基数低于下限，将按下限核定" in reply.text  # beside its field
    text = cells(reply)
    assert "V-BASE-01" in text and "提示" in text  # and in the findings table
    history = text[-5:]
    assert history == [
        "2026-01-01 07:30",
        "1",
        "单位 33068212345678@sxlss（会话 s-7f3a9c0e11d24b6f）",
        "草稿 → 待审核",
        "提交",
    ]
    assert 'id="claim"' in reply.text
    assert 'id="approve"' not in reply.text


def test_a_batch_shows_its_lines_as_a_table_capped_at_500_rows(world: World) -> None:
    lines = [
        {"person_no": f"P{i:06d}", "name": f"职工{i}", "id_number": "x", "wage": "5000"}
        for i in range(501)
    ]
    world.workflow.add(
        "d1", type=DeclarationType.ANNUAL_BASE, payload={"year": 2026, "lines": lines}
    )
    reply = world.login("alice").get("/review/d1")
    assert reply.status == 200
    assert (
        "<th>个人编号</th><th>姓名</th><th>公民身份号码</th><th>上年度月平均工资</th>" in reply.text
    )
    assert "P000499" in reply.text and "P000500" not in reply.text
    assert "共 501 行，仅显示前 500 行" in reply.text


def test_a_type_without_a_form_spec_is_shown_as_keys_and_values(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from declare_app.web import _review as console_pages

    monkeypatch.setattr(console_pages, "FORM_SPECS", {})
    world.workflow.add("d1", payload={"a": "<b>", "rows": [{"x": 1}, {"x": None, "y": True}]})
    reply = world.login("alice").get("/review/d1")
    assert "<th>a</th><td>\n&lt;b&gt;" in reply.text
    assert "<th>x</th><th>y</th>" in reply.text and "是" in cells(reply)


@pytest.mark.parametrize(
    "path",
    [
        "/review/nope",
        "/review/..%2e",
        "/review/a%20b",
        "/review/" + "x" * 65,
        "/review/d1/claim",
        "/review/d1/x/y",
    ],
)
def test_unknown_or_malformed_ids_are_404_or_400_never_500(world: World, path: str) -> None:
    world.workflow.add("d1")
    reply = world.login("alice").get(path)
    if path.endswith("/claim"):  # a POST-only route: its 405, with what it allows
        assert (reply.status, reply.header("allow")) == (405, "POST")
    else:
        assert reply.status in (400, 404)
    assert "Traceback" not in reply.text


def test_a_resubmitted_version_links_to_the_one_it_replaces(world: World) -> None:
    world.workflow.add(
        "d0", status=Status.RETURNED, return_code="R05", return_text="基数与工资不符"
    )
    world.workflow.add("d1", version=2, previous_id="d0")
    c = world.login("alice")
    assert 'href="/review/d0"' in c.get("/review/d1").text
    old = c.get("/review/d0").text
    assert "R05" in old and RETURN_REASONS["R05"] in old and "基数与工资不符" in old


# -- decisions ----------------------------------------------------------------------------------


def test_claim_then_approve_shows_the_voucher(world: World) -> None:
    world.workflow.add("d1")
    c = world.login("alice")
    reply = c.submit("/review/d1", "/review/d1/claim")
    assert reply.status == 303 and reply.location == "/review/d1?done=claimed"
    page = c.get(reply.location)
    assert "已领取" in page.text
    assert 'id="approve"' in page.text and 'id="return"' in page.text
    for code, text in RETURN_REASONS.items():
        assert f'value="{code}"' in page.text and text in page.text
    reply = c.submit("/review/d1", "/review/d1/approve")
    assert reply.status == 303 and reply.location == "/review/d1?done=approved"
    page = c.get(reply.location)
    assert "已审核通过并办结" in page.text
    assert re.search(r'id="voucher">PZ20260101000123<', page.text)
    assert "已办结" in page.text
    assert 'id="approve"' not in page.text
    staff = Actor(kind="staff", name="alice", role="auditor")
    assert [(n, a, i) for n, a, i in world.workflow.calls if n != "list"] == [
        ("claim", staff, "d1"),
        ("approve", staff, "d1"),
    ]


def test_claim_then_return_with_a_reason(world: World) -> None:
    world.workflow.add("d1")
    c = world.login("alice")
    c.submit("/review/d1", "/review/d1/claim")
    reply = c.submit(
        "/review/d1", "/review/d1/return", {"code": "R05", "text": "  基数与劳动合同工资不符  "}
    )
    assert reply.status == 303 and reply.location == "/review/d1?done=returned"
    d = world.workflow.items["d1"]
    assert (d.status, d.return_code, d.return_text) == (
        Status.RETURNED,
        "R05",
        "基数与劳动合同工资不符",
    )
    page = c.get(reply.location).text
    assert "已退回" in page and RETURN_REASONS["R05"] in page and "基数与劳动合同工资不符" in page


def test_r99_needs_text_and_codes_come_from_the_catalogue(world: World) -> None:
    world.workflow.add("d1", status=Status.UNDER_REVIEW, claimed_by="alice")
    c = world.login("alice")
    for fields, where in [
        ({"code": "R99", "text": "   "}, "text"),
        ({"code": "R00", "text": "x"}, "code"),
        ({"code": "<b>", "text": "x"}, "code"),
        ({"text": "x"}, "code"),
        ({"code": "R01", "text": "长" * 501}, "text"),
    ]:
        reply = c.submit("/review/d1", "/review/d1/return", fields)
        assert reply.status == 400, fields
        assert 'class="field-error"' in reply.text
        assert "<b>" not in reply.text
        if where == "text" and fields.get("code") == "R99":
            assert "必须填写退回说明" in reply.text
            assert 'value="R99" selected' in reply.text  # what was chosen stays chosen
    assert not [n for n, _, _ in world.workflow.calls if n == "return"]
    assert world.workflow.items["d1"].status is Status.UNDER_REVIEW
    reply = c.submit("/review/d1", "/review/d1/return", {"code": "R99", "text": "单位已注销"})
    assert reply.status == 303


def test_refusals_of_the_workflow_are_shown_not_500(world: World) -> None:
    """Another auditor's claim, a second claim, an apply conflict: a clear message (409)."""
    world.workflow.add("d1", status=Status.UNDER_REVIEW, claimed_by="bob")
    world.workflow.add("d2")
    c = world.login("alice")
    page = c.get("/review/d1").text
    assert "由 bob 审核中" in page and 'id="approve"' not in page
    reply = c.submit("/review/d1", "/review/d1/approve")
    assert reply.status == 409 and "该申报不在您的审核中" in reply.text
    assert c.submit("/review/d2", "/review/d2/claim").status == 303
    again = c.post("/review/d2/claim", {"csrf_token": c.get("/review/d2").csrf_token()})
    assert again.status == 409 and "该申报当前不能领取" in again.text
    world.workflow.fail_approve = DeclarationError("conflict", "该人员已在其他单位参保（V-DUP-01）")
    reply = c.submit("/review/d2", "/review/d2/approve")
    assert reply.status == 409 and "V-DUP-01" in reply.text
    assert world.workflow.items["d2"].status is Status.UNDER_REVIEW
    # the workflow's refused audit event was committed, not rolled back with the refusal
    [refused] = world.events("declare.approve")
    assert (refused.outcome, refused.reason, refused.subject) == ("refused", "conflict", "d2")
    assert c.submit("/review/nope", "/review/nope/claim").status in (403, 404)


def test_decisions_need_the_csrf_token(world: World) -> None:
    world.workflow.add("d1")
    c = world.login("alice")
    assert c.post("/review/d1/claim", {}).status == 403
    assert c.post("/review/d1/claim", {"csrf_token": "A" * 43}).status == 403
    assert not [n for n, _, _ in world.workflow.calls if n == "claim"]
    assert len(world.events("console.csrf")) == 2


def test_the_done_notice_comes_from_a_fixed_list(world: World) -> None:
    world.workflow.add("d1")
    reply = world.login("alice").get("/review/d1?done=%3Cb%3Ehacked")
    assert reply.status == 200 and "hacked" not in reply.text


def test_beijing_time_formatting() -> None:
    assert when(NOW) == "2026-01-01 08:00"
    assert when(None) == "—"
    assert when(float("inf")) == "—"


def test_an_applied_declaration_shows_what_applying_did(world: World) -> None:
    world.workflow.add(
        "d1",
        status=Status.APPLIED,
        voucher_no="SB20260101000001",
        decided_by="bob",
        decided_at=NOW,
        result={"person_number": "3306820000123"},
    )
    page = world.login("alice").get("/review/d1")
    assert "办理结果" in page.text
    assert "<th>个人编号</th><td>3306820000123</td>" in page.text
    assert 'id="voucher">SB20260101000001<' in page.text
    assert 'id="claim"' not in page.text and 'id="approve"' not in page.text


def test_an_admin_may_take_over_another_auditors_claim(world: World) -> None:
    """The take-over button is for admins only (the workflow decides and records it)."""
    world.workflow.add("d1", status=Status.UNDER_REVIEW, claimed_by="bob")
    assert 'id="claim"' not in world.login("alice").get("/review/d1").text
    page = world.login("root").get("/review/d1").text
    assert 'id="claim"' in page and "转交给我审核" in page


def test_control_characters_in_the_return_text_are_a_field_error(world: World) -> None:
    world.workflow.add("d1", status=Status.UNDER_REVIEW, claimed_by="alice")
    c = world.login("alice")
    reply = c.submit("/review/d1", "/review/d1/return", {"code": "R07", "text": "缺少\x1b材料"})
    assert reply.status == 400 and "控制字符" in reply.text
    ok = c.submit("/review/d1", "/review/d1/return", {"code": "R07", "text": "缺少\r\n劳动合同"})
    assert ok.status == 303


def test_a_refusal_to_read_is_a_page_not_a_500(world: World) -> None:
    """Should the workflow refuse the auditor outright (a role it no longer accepts)."""

    def refuse(*args: Any, **kwargs: Any) -> Declaration:
        raise DeclarationError("forbidden", "无权执行该操作")

    world.workflow.add("d1")
    c = world.login("alice")
    world.workflow.get = refuse  # type: ignore[method-assign]
    world.workflow.list = refuse  # type: ignore[method-assign, assignment]
    for path in ["/review", "/review/d1"]:
        reply = c.get(path)
        assert reply.status == 403 and "无权执行该操作" in reply.text
