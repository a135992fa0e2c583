"""The auditors' review pages with the real declaration workflow, on SQLite and PostgreSQL.

An employer submits 人员增加 declarations through :class:`Declarations`; an auditor
logs into the real staff console (real authenticator, password + TOTP) driven over
HTTP in memory, claims, approves (the person is applied and a voucher issued) or
returns with a reason; the employer then reads the outcome through the workflow.
Every step leaves its audit events, refusals included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
from auth.testing import SynchronousRunner
from declare_app import person_id_check_char
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._declarations import RETURN_REASONS as WORKFLOW_REASONS
from declare_app._schema import persons
from declare_app.interfaces import Actor, Declaration, DeclarationType, Status
from declare_app.testing import one_pixel_png
from declare_app.web._review import RETURN_REASONS
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient

LOGIN_FORM_KEY = bytes(range(32))  # any 32 bytes: the login-form token key

PASSWORD = "Correct-Horse-9-battery"
UNIT_A = "12345678"  # as conftest registers it
NOW = datetime(2025, 3, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()  # as conftest's workflow


def make_id(birth: str = "19900115", seq: int = 123) -> str:
    body = f"330682{birth}{seq:03d}"
    return body + person_id_check_char(body)


def form(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "张三",
        "id_number": make_id(),
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": "B",
        "hire_date": "2025-03-01",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": "2025-03",
        "monthly_wage": "6000",
        "phone": "13800000000",
    }
    values.update(changes)
    return values


@dataclass
class Console:
    engine: Engine
    clock: MemoryReactorClock
    workflow: Declarations
    employer: Actor
    secrets: dict[str, str]
    site: Any

    def submitted(self, **changes: Any) -> Declaration:
        with self.engine.begin() as conn:
            d = self.workflow.create_draft(
                conn, self.employer, DeclarationType.PERSON_ADD, form(**changes), now=NOW
            )
            assert not [f for f in d.findings if f.severity == "error"], d.findings
            return self.workflow.submit(conn, self.employer, d.id, now=NOW)

    def login(self, name: str) -> ConsoleClient:
        c = ConsoleClient(self.site, clock=self.clock)
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        assert c.login(name, PASSWORD, code).status == 303
        self.clock.advance(30)
        return c

    def as_employer(self, declaration_id: str) -> Declaration:
        with self.engine.begin() as conn:
            return self.workflow.get(conn, self.employer, declaration_id)

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn) if r.event.action == action]


@pytest.fixture
def console(decl_db: Engine, workflow: Declarations, employer_a: Actor) -> Console:
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    secrets = {}
    with decl_db.begin() as conn:
        for name in ("zhang", "li"):
            secrets[name] = auth.new_totp_secret()
            auth.create_staff(
                conn,
                name,
                "auditor",
                password_hash=hasher.hash(PASSWORD),
                totp_secret_sealed=box.seal(secrets[name], context=auth.totp_secret_context(name)),
                now=NOW,
            )
    clock = MemoryReactorClock()
    clock.advance(NOW + 3600)
    site = console_site(
        login_form_key=LOGIN_FORM_KEY,
        authenticator=auth.Authenticator(decl_db, hasher, box),
        runner=SynchronousRunner(decl_db),
        workflow=workflow,
        clock=clock,
        secure=False,
        refusal_delay=0,
    )
    return Console(decl_db, clock, workflow, employer_a, secrets, site)


def test_the_reason_catalogues_agree() -> None:
    assert set(RETURN_REASONS) == set(WORKFLOW_REASONS)


def test_claim_then_approve_applies_the_person_and_shows_the_voucher(console: Console) -> None:
    d = console.submitted()
    c = console.login("zhang")
    queue = c.get("/review")
    assert f'href="/review/{d.id}"' in queue.text
    assert "人员增加" in queue.text and UNIT_A in queue.text and "sess-a-1" in queue.text

    page = c.get(f"/review/{d.id}")
    assert page.status == 200
    assert "<th>姓名</th><td>\n张三" in page.text
    assert c.submit(f"/review/{d.id}", f"/review/{d.id}/claim").status == 303
    reply = c.submit(f"/review/{d.id}", f"/review/{d.id}/approve")
    assert reply.status == 303, reply.text
    page = c.get(reply.location or "")
    match = re.search(r'id="voucher">(SB\d{14})<', page.text)
    assert match is not None, page.text
    assert "<th>个人编号</th>" in page.text  # what applying did

    seen = console.as_employer(d.id)
    assert seen.status is Status.APPLIED
    assert seen.voucher_no == match.group(1)
    with console.engine.begin() as conn:
        person = conn.execute(select(persons).where(persons.c.id_number == make_id())).one()
    assert person.person_number == seen.result["person_no"]
    for action in ("declare.claim", "declare.approve", "declare.apply"):
        [event] = console.events(action)
        assert (event.actor, event.outcome, event.unit) == ("staff:zhang", "ok", UNIT_A)


def test_claim_then_return_with_a_reason_the_employer_sees(console: Console) -> None:
    d = console.submitted()
    c = console.login("zhang")
    c.submit(f"/review/{d.id}", f"/review/{d.id}/claim")
    bad = c.submit(f"/review/{d.id}", f"/review/{d.id}/return", {"code": "R99", "text": ""})
    assert bad.status == 400 and "必须填写退回说明" in bad.text
    reply = c.submit(
        f"/review/{d.id}", f"/review/{d.id}/return", {"code": "R05", "text": "月缴费工资与合同不符"}
    )
    assert reply.status == 303
    seen = console.as_employer(d.id)
    assert (seen.status, seen.return_code, seen.return_text) == (
        Status.RETURNED,
        "R05",
        "月缴费工资与合同不符",
    )
    page = c.get(f"/review/{d.id}").text
    assert "R05" in page and "月缴费工资与合同不符" in page
    [event] = console.events("declare.return")
    assert (event.actor, event.reason) == ("staff:zhang", "R05")


def test_a_refusal_is_shown_and_its_audit_event_kept(console: Console) -> None:
    """Another auditor's claim: li cannot approve it; the page says why (409) and the
    workflow's refused event is committed, not rolled back with the refusal."""
    d = console.submitted()
    zhang = console.login("zhang")
    zhang.submit(f"/review/{d.id}", f"/review/{d.id}/claim")
    li = console.login("li")
    page = li.get(f"/review/{d.id}").text
    assert "由 zhang 审核中" in page and 'id="approve"' not in page
    reply = li.submit(f"/review/{d.id}", f"/review/{d.id}/approve")
    assert reply.status == 409
    assert "只有认领人可以审批" in reply.text
    refused = [e for e in console.events("declare.approve") if e.outcome == "refused"]
    assert [(e.actor, e.unit) for e in refused] == [("staff:li", UNIT_A)]
    assert console.as_employer(d.id).status is Status.UNDER_REVIEW


def test_unknown_ids_are_404_and_every_view_is_audited(console: Console) -> None:
    d = console.submitted()
    c = console.login("zhang")
    assert c.get("/review/" + "0" * 32).status == 404
    assert c.submit("/review", "/review/" + "0" * 32 + "/claim").status == 404
    assert c.get(f"/review/{d.id}").status == 200
    views = console.events("declare.view")
    assert [(e.actor, e.subject, e.outcome) for e in views][-1] == ("staff:zhang", d.id, "ok")
    assert any(e.outcome == "refused" for e in views)


def test_the_review_page_marks_the_figures_in_force_that_are_not_verified(
    console: Console,
) -> None:
    """Issue 14: the demo figures (all ``verified = false``) in force for the
    declaration's month are named on the auditor's page as NOT VERIFIED."""
    d = console.submitted()
    page = console.login("zhang").get(f"/review/{d.id}")
    assert 'id="unverified-figures"' in page.text
    assert "NOT VERIFIED" in page.text and "330682 110 企业职工基本养老保险" in page.text


# -- evidence and the agency's own decisions (issue 14, defects 2 and 8) --------------------


PNG_1x1 = one_pixel_png()


def test_the_auditor_sees_the_units_evidence_and_downloads_it_as_an_attachment(
    console: Console,
) -> None:
    """DOMAIN §7 (the auditor decides on the materials, 工伤保险条例 Art. 18): the file
    the unit uploaded is listed with its SHA-256 and saved, never rendered: the
    content type its check found, Content-Disposition attachment; the read is audited."""
    import hashlib

    with console.engine.begin() as conn:
        d = console.workflow.create_draft(
            conn, console.employer, DeclarationType.PERSON_ADD, form(), now=NOW
        )
        added = console.workflow.attach(
            conn,
            console.employer,
            d.id,
            label="劳动合同",
            filename="合同<script>.png",
            data=PNG_1x1,
            now=NOW,
        )
        console.workflow.submit(conn, console.employer, d.id, now=NOW)
    c = console.login("zhang")
    page = c.get(f"/review/{d.id}")
    assert page.status == 200
    assert hashlib.sha256(PNG_1x1).hexdigest() in page.text
    assert "合同&lt;script&gt;.png" in page.text  # the client's name, escaped
    link = f"/review/{d.id}/attachments/{added.id}"
    assert f'href="{link}"' in page.text
    got = c.get(link)
    assert got.status == 200
    assert got.body == PNG_1x1
    assert got.header("content-type") == "image/png"
    assert got.header("content-disposition") == f'attachment; filename="evidence-{added.id}.png"'
    assert got.header("x-content-type-options") == "nosniff"
    assert [e.outcome for e in console.events("declare.evidence-view")] == ["ok"]
    assert c.get(f"/review/{d.id}/attachments/999999").status == 404


def test_a_pending_declaration_has_no_decision_forms(console: Console) -> None:
    d = console.submitted()
    page = console.login("zhang").get(f"/review/{d.id}")
    assert 'id="injury-decision"' not in page.text
    assert 'id="pension-award-form"' not in page.text
