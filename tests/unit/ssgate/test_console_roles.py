"""Role sweep of the staff console (issue 9, acceptance 2): every route of the
console's route table × every role (none, carrier, auditor, officer, admin) × every
method.  The roles a route names (and admin) get their page; the other roles 403; no
login goes to the login page; another method is 405; nothing is ever a 500.

The console is the one ``serve`` mounts (``ssgate._console.console_shell`` with the
declaration workflow), on SQLite with the real authenticator and audit log; the
workflow is the in-memory one with a declaration in every state.  The table walked
is the shell's own, and it is checked to be the one ``ssgate routes`` lists, so a
route added anywhere is swept or this test fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import insert
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock

import audit
import auth
import declare_app
import gateway
import portal
import web
from audit._schema import alerts
from auth.testing import SynchronousRunner
from certs._schema import metadata as certs_metadata
from declare_app.interfaces import Status
from declare_app.web.testing import MemoryWorkflow, Seeder
from provisioning.testing import MemoryUnits, RecordingSessions, make_provisioner
from ssgate._console import console_shell
from ssgate._console.testing import ConsoleClient
from ssgate._db import make_engine
from ssgate._routes import console_table
from staffing.testing import make_staff_admin

NOW = 1_767_225_600.0
PASSWORD = "Correct-Horse-9-battery"
ROLES = ("carrier", "auditor", "officer", "admin")
ACCOUNT = "33068212345678@sxlss"  # opened in every world, so its pages exist
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
SESSION_ID = "5e551017" * 4
ALERT_ID = "7"


def _fill(path: str, values: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        assert name in values, f"route {path}: the sweep has no value for <{name}>"
        return values[name]

    return re.sub(r"<\w+:(\w+)>", one, path)


def test_the_swept_table_is_the_one_ssgate_routes_lists(tmp_path: Path) -> None:
    shell = _world(tmp_path)[0]
    assert shell.table.rows() == console_table().rows()


def _world(tmp_path: Path) -> tuple[web.ConsoleShell, ConsoleClient, dict[str, str], object]:
    engine = make_engine(f"sqlite:///{tmp_path}/roles.db")
    auth.metadata.create_all(engine)
    audit.metadata.create_all(engine)
    gateway.metadata.create_all(engine)
    certs_metadata.create_all(engine)
    declare_app.metadata.create_all(engine)  # the officers' declarations chart counts there
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    secrets: dict[str, str] = {}
    with engine.begin() as conn:
        # A live channel session for the officers' pages (its terminate form answers).
        from gateway._sessions import start_session

        start_session(
            conn,
            session_id=SESSION_ID,
            account="33068212345678@sxlss",
            unit_code="12345678",
            peer="192.0.2.7:50123",
            cert_serial="01",
            node="node-a",
            now=NOW,
            max_concurrent=1,
        )
        # An alert for the officers' alert pages (their forms answer for it).
        conn.execute(
            insert(alerts).values(
                id=int(ALERT_ID),
                rule="spraying",
                severity="high",
                dedupe_key="spraying:192.0.2.7",
                summary="sweep",
                account="",
                source="192.0.2.7",
                unit="",
                first_seen=NOW,
                last_seen=NOW,
                occurrences=1,
                evidence="{}",
                state="new",
                created_at=NOW,
            )
        )
        for role in ROLES:
            secret = auth.new_totp_secret()
            secrets[role] = secret
            auth.create_staff(
                conn,
                f"{role}1",
                role,
                password_hash=hasher.hash(PASSWORD),
                totp_secret_sealed=box.seal(secret, context=auth.totp_secret_context(f"{role}1")),
                now=NOW,
            )
    clock = MemoryReactorClock()
    clock.advance(NOW)
    workflow = MemoryWorkflow()
    seed = Seeder(workflow, SynchronousRunner())
    ids = {s: seed.in_state(s).id for s in (Status.PENDING_REVIEW, Status.UNDER_REVIEW)}
    provisioner = make_provisioner(
        engine,
        clock=clock.seconds,
        units=MemoryUnits({"12345678": ("approved", "330682")}),
        sessions=RecordingSessions(),
        hasher=hasher,
        box=box,
    )
    provisioner.open(ACCOUNT)
    shell = console_shell(
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=SynchronousRunner(engine),
        workflow=workflow,
        provisioner=provisioner,
        staff_admin=make_staff_admin(engine, clock=clock.seconds, hasher=hasher, box=box),
        # The counter's portal enrolment (issue 18): a POST without an ID number changes nothing.
        person_counter=portal.PersonCounter(
            engine=engine,
            box=box,
            hasher=hasher,
            totp_issuer="ssgate-test",
            clock=clock.seconds,
            actor="os:tester",
        ),
        clock=clock,
        secure=False,
        refusal_delay=0,
        login_form_key=bytes(range(32)),
    )
    client = ConsoleClient(shell.site(), clock=clock, peer=IPv4Address("TCP", "127.0.0.1", 1))
    return shell, client, secrets, (clock, ids)


@pytest.mark.parametrize("role", [None, *ROLES])
def test_every_console_route_every_role_every_method(tmp_path: Path, role: str | None) -> None:
    shell, client, secrets, (clock, ids) = _world(tmp_path)
    if role is not None:
        reply = client.login(f"{role}1", PASSWORD, auth.current_code(secrets[role], NOW))
        assert reply.status == 303 and reply.location == "/", reply.text
    token = client.get("/").csrf_token() if role is not None else ""
    values = {
        "id": ids[Status.PENDING_REVIEW],
        "sid": SESSION_ID,
        "aid": ALERT_ID,
        "x": "x",
        "n": "1",  # a declaration's evidence file (issue 14)
        "account": ACCOUNT,
        "name": "carrier1",  # a staff member's pages (a POST without a reason changes nothing)
    }
    by_path: dict[str, set[str]] = {}
    for route in shell.table.routes:
        by_path.setdefault(route.path, set()).add(route.method)
    swept = 0
    for route in shell.table.routes:
        path = _fill(route.path, values)
        allowed = by_path[route.path] | ({"HEAD"} if "GET" in by_path[route.path] else set())
        for method in METHODS:
            if method == "POST":
                reply = client.post(path, {"csrf_token": token})
            else:
                reply = client.request(method, path)
            swept += 1
            where = (role, method, route.path, reply.status)
            assert reply.status != 500, where
            public = web.PUBLIC in route.roles
            if method not in allowed:
                if role is None and not public:
                    assert (reply.status, reply.location) == (303, "/login"), where
                else:
                    assert reply.status == 405, where
                    assert set((reply.header("allow") or "").split(", ")) == allowed, where
                continue
            if public:
                assert reply.status not in (404, 405), where
                if reply.status == 403:  # a refused login is the login page again
                    assert "工作人员登录" in reply.text, where
            elif role is None:
                assert (reply.status, reply.location) == (303, "/login"), where
            elif web.may_call(route, role):
                if route.path.endswith("/attachments/<num:n>") and reply.status == 404:
                    # reached and allowed: the fake workflow holds no evidence file
                    assert method == "HEAD" or "附件不存在" in reply.text, where
                    continue
                assert reply.status not in (401, 403, 404, 405), where
                if route.path == "/logout" and method == "POST":
                    # logged out by the sweep itself: log in again for the rest
                    clock.advance(30)
                    code = auth.current_code(secrets[role], clock.seconds())
                    assert client.login(f"{role}1", PASSWORD, code).status == 303
                    token = client.get("/").csrf_token()
            else:
                assert reply.status == 403, where
                assert method == "HEAD" or "无权访问" in reply.text, where
    assert swept == len(shell.table.routes) * len(METHODS)
