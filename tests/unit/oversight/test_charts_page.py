"""The charts page, in memory: an officer sees five SVG charts drawn from the audit
log, the session registry and the declarations, each with its numbers as a table;
without a declaration service the page says so; other roles are refused."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import declare_app
import gateway
from auth.testing import SynchronousRunner
from certs._schema import metadata as certs_metadata
from declare_app._schema import declarations, units
from declare_app.web.testing import MemoryWorkflow
from gateway import _sessions
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, enrol_staff
from ssgate._db import make_engine

NOW = 1_767_225_600.0  # 2026-01-01 08:00 Beijing
PASSWORD = "Correct-Horse-9-battery"
HASHER = auth.PasswordHasher(auth.Argon2Params())
BOX = auth.SecretBox(auth.SecretBox.generate_key())


def site(engine: Engine, clock: MemoryReactorClock, *, declarations_too: bool) -> object:
    return console_site(
        login_form_key=bytes(range(32)),
        authenticator=auth.Authenticator(engine, HASHER, BOX),
        runner=SynchronousRunner(engine),
        workflow=MemoryWorkflow() if declarations_too else None,
        clock=clock,
        secure=False,
        refusal_delay=0,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/charts.db")
    for metadata in (
        auth.metadata,
        audit.metadata,
        certs_metadata,
        gateway.metadata,
        declare_app.metadata,
    ):
        metadata.create_all(engine)
    yield engine
    engine.dispose()


def login(engine: Engine, name: str, *, declarations_too: bool = True) -> ConsoleClient:
    with engine.begin() as conn:
        [secret] = enrol_staff(
            conn,
            [(name, "officer" if name == "olga" else "auditor")],
            password=PASSWORD,
            hasher=HASHER,
            box=BOX,
            now=NOW,
        ).values()
    clock = MemoryReactorClock()
    clock.advance(NOW + 1800)  # 08:30 Beijing
    c = ConsoleClient(site(engine, clock, declarations_too=declarations_too), clock=clock)
    assert c.login(name, PASSWORD, auth.current_code(secret, clock.seconds())).status == 303
    return c


def fill(engine: Engine) -> None:
    with engine.begin() as conn:
        for i, outcome in enumerate(["ok", "refused", "refused", "ok"]):
            audit.append(
                conn,
                audit.AuditEvent(
                    at=NOW - 2 * 3600 + i,  # 06:00 Beijing
                    actor="channel:a",
                    action="login",
                    subject="33068212345678@sxlss",
                    outcome=outcome,
                    reason="" if outcome == "ok" else "bad-password",
                    details={"peer": f"192.0.2.{7 + (outcome == 'ok')}:1"},
                ),
            )
        _sessions.start_session(
            conn,
            session_id="s1",
            account="33068212345678@sxlss",
            unit_code="12345678",
            peer="192.0.2.8:1",
            cert_serial="01",
            node="n",
            now=NOW - 3 * 3600,
            max_concurrent=10,
        )
        conn.execute(
            insert(units).values(
                code="12345678",
                region="330682",
                name="测试单位",
                status="approved",
                registered_at=NOW,
                registered_by="x",
            )
        )
        conn.execute(
            insert(declarations).values(
                id="d1",
                unit_code="12345678",
                type="person-add",
                status="pending-review",
                version=1,
                payload="{}",
                findings="[]",
                created_at=NOW,
                created_by="x",
                updated_at=NOW,
                submitted_at=NOW + 60,
            )
        )


def data_rows(text: str, chart_id: str) -> list[list[str]]:
    table = re.search(
        rf'<table class="list" id="{chart_id}-data">.*?<tbody>(.*?)</tbody>', text, re.S
    )
    assert table is not None, chart_id
    return [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    ]


def test_an_officer_sees_five_accessible_charts_with_their_numbers(engine: Engine) -> None:
    fill(engine)
    page = login(engine, "olga").get("/charts")
    assert page.status == 200
    svgs = re.findall(r"<svg .*?</svg>", page.text, re.S)
    assert len(svgs) == 5
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed inside the HTML
        assert root.get("role") == "img"
    hourly = data_rows(page.text, "logins-per-hour")
    assert len(hourly) == 168
    assert ["01-01 06:00", "4", "2"] in hourly
    assert hourly[-1][0] == "01-01 08:00"  # the current hour is the last
    sessions = data_rows(page.text, "open-sessions")
    assert sessions[-1] == ["现在", "1"] and sessions[0] == ["12-31 09:00", "0"]
    assert data_rows(page.text, "failing-sources") == [["192.0.2.7", "2"]]
    by_type = data_rows(page.text, "declarations-by-type")
    assert by_type[-1] == ["01-01", "1"] and len(by_type) == 14
    assert data_rows(page.text, "declarations-by-state")[-1] == ["01-01", "1"]
    assert "待审核" in page.text and "人员增加" in page.text


def test_without_a_declaration_service_the_page_says_so(engine: Engine) -> None:
    page = login(engine, "olga", declarations_too=False).get("/charts")
    assert page.status == 200
    assert len(re.findall(r"<svg ", page.text)) == 3
    assert "本控制台未接入申报服务" in page.text


def test_an_auditor_is_refused(engine: Engine) -> None:
    assert login(engine, "alice").get("/charts").status == 403
