"""The agency counter's portal enrolment in the staff console (issue 18): an auditor
opens an insured person's portal account and resets its password from ``/persons``,
with the same :class:`portal.PersonCounter` the ``ssgate persons`` command runs.

The console is the one ``serve`` assembles (``ssgate._console.console_site`` with
``person_counter=``), on SQLite and PostgreSQL with the real authenticator, audit log
and declaration tables, driven over HTTP in memory with a ``MemoryReactorClock``.
"""

from __future__ import annotations

import base64
import io
import re
import urllib.parse
import zipfile
from dataclasses import dataclass
from html import unescape

import pytest
from sqlalchemy import Engine, select
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import Site

import audit
import auth
import portal
from auth.testing import SynchronousRunner
from portal._schema import person_accounts
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, Reply, enrol_staff
from ssgate._schema import all_metadata

from .conftest import ID_A, ID_C, NOW, declare_persons

PASSWORD = "Correct-Horse-9-battery"
MASKED_A = "330682********1233"


@dataclass
class World:
    engine: Engine
    clock: MemoryReactorClock
    secrets: dict[str, str]
    hasher: auth.PasswordHasher
    box: auth.SecretBox
    site: Site

    def login(self, name: str) -> ConsoleClient:
        c = ConsoleClient(self.site, clock=self.clock)
        self.clock.advance(30)  # a fresh TOTP step for each login
        code = auth.current_code(self.secrets[name], self.clock.seconds())
        reply = c.login(name, PASSWORD, code)
        assert reply.status == 303, reply.text
        return c

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn, actions=[action])]


@pytest.fixture
def world(engine: Engine) -> World:
    for metadata in all_metadata():
        metadata.create_all(engine)
    declare_persons(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    members = (("alice", "auditor"), ("otto", "officer"), ("carl", "carrier"), ("root", "admin"))
    with engine.begin() as conn:
        secrets = enrol_staff(conn, members, password=PASSWORD, hasher=hasher, box=box, now=NOW)
    clock = MemoryReactorClock()
    clock.advance(NOW)
    counter = portal.PersonCounter(
        engine=engine,
        box=box,
        hasher=hasher,
        totp_issuer="ssgate-test",
        clock=clock.seconds,
        actor="os:tester",
    )
    site = console_site(
        authenticator=auth.Authenticator(engine, hasher, box),
        runner=SynchronousRunner(engine),
        workflow=None,
        person_counter=counter,
        clock=clock,
        secure=False,
        refusal_delay=0,
        login_form_key=bytes(range(32)),
    )
    return World(engine, clock, secrets, hasher, box, site)


def _one_time(reply: Reply, element: str) -> str:
    match = re.search(rf'id="{element}"[^>]*>([^<]*)<', reply.text)
    assert match is not None, reply.text[:3000]
    return unescape(match.group(1))


def _counter(c: ConsoleClient, action: str, id_number: str, reason: str = "本人持证办理") -> Reply:
    """The form, then the confirmation, then the change — as the auditor clicks."""
    page = f"/persons/{action}"
    confirm = c.submit(page, page, {"id_number": id_number, "reason": reason})
    assert confirm.status == 200, confirm.text[:3000]
    assert _one_time(confirm, "confirm-id") == id_number[:6] + "********" + id_number[-4:]
    return c.post(
        page,
        {
            "csrf_token": confirm.csrf_token(),
            "id_number": id_number,
            "reason": reason,
            "confirmed": "1",
        },
    )


def test_an_auditor_enrols_a_person_whose_password_and_otp_are_shown_once_and_work(
    world: World,
) -> None:
    c = world.login("alice")
    assert 'href="/persons"' in c.get("/").text  # in the auditor's navigation
    reply = _counter(c, "enrol", ID_A.lower())
    assert reply.status == 200, reply.text[:3000]
    assert _one_time(reply, "issued-id") == MASKED_A
    password = _one_time(reply, "issued-password")
    assert 'id="issued-qr" src="data:image/png;base64,' in reply.text
    assert ID_A not in reply.text  # only masked on the one-time page
    zipped = re.search(r'href="data:application/zip;base64,([A-Za-z0-9+/=]+)"', reply.text)
    assert zipped is not None
    files = zipfile.ZipFile(io.BytesIO(base64.b64decode(zipped.group(1))))
    uri = files.read("portal-otp/otpauth.txt").decode().strip()
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]
    # What the page showed is the person's credential: the portal's authenticator takes it.
    with world.engine.begin() as conn:
        found = portal.principal_of(conn, ID_A)
        assert found is not None
        must_change = conn.execute(
            select(person_accounts.c.must_change_password).where(
                person_accounts.c.principal == found[0]
            )
        ).scalar_one()
    assert must_change
    result = auth.Authenticator(world.engine, world.hasher, world.box).authenticate(
        found[0],
        password,
        auth.current_code(secret, world.clock.seconds()),
        source="127.0.0.1",
        now=world.clock.seconds(),
        kind="person",
    )
    assert result.ok, result
    [event] = world.events("person.enrol")
    assert (event.actor, event.outcome, event.subject) == ("staff:alice", "ok", found[0])
    assert event.session_id and event.reason == "本人持证办理"
    # A second enrolment is refused in words, audited, and opens nothing.
    again = _counter(c, "enrol", ID_A)
    assert again.status == 409 and "已开通个人账户" in again.text
    assert [e.outcome for e in world.events("person.enrol")] == ["ok", "refused"]


def test_a_reset_gives_a_new_password_and_unknown_people_are_refused(world: World) -> None:
    c = world.login("root")  # admin may do what an auditor does
    not_yet = _counter(c, "reset-password", ID_A)
    assert not_yet.status == 409 and "尚未开通" in not_yet.text
    first = _one_time(_counter(c, "enrol", ID_A), "issued-password")
    reply = _counter(c, "reset-password", ID_A)
    assert reply.status == 200, reply.text[:3000]
    second = _one_time(reply, "issued-password")
    assert second != first and 'id="issued-qr"' not in reply.text
    unknown = _counter(c, "enrol", "110101199003077777")
    assert unknown.status == 409 and "没有该身份证号码的参保人" in unknown.text
    assert [e.outcome for e in world.events("person.reset-password")] == ["refused", "ok"]
    with world.engine.begin() as conn:
        assert portal.principal_of(conn, ID_C) is None
    for event in audit_all(world):
        assert ID_A not in repr(event) and "110101199003077777" not in repr(event)


def audit_all(world: World) -> list[audit.AuditEvent]:
    with world.engine.begin() as conn:
        return [r.event for r in audit.query(conn)]


def test_bad_input_is_the_form_again_and_other_roles_are_refused(world: World) -> None:
    c = world.login("alice")
    bad = c.submit("/persons/enrol", "/persons/enrol", {"id_number": "12345", "reason": ""})
    assert bad.status == 400
    assert "18 位居民身份证号码" in bad.text and "请填写办理原因" in bad.text
    assert world.events("person.enrol") == []
    for name in ("otto", "carl"):
        other = world.login(name)
        assert other.get("/persons/enrol").status == 403
        token = other.get("/").csrf_token()
        refused = other.post(
            "/persons/enrol",
            {"csrf_token": token, "id_number": ID_A, "reason": "x", "confirmed": "1"},
        )
        assert refused.status == 403
    assert world.events("person.enrol") == []
