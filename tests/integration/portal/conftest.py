"""A declaration service with two units and persons whose ledger has closed months, a
portal account for each, and the portal served over TLS on a real loopback socket
with the serve ``Runner`` (database pool + login pool).

Time is a stepped clock (the reactor's timers, a ``seconds()`` the test moves), so a
test can use the next TOTP step without waiting for it.
"""

from __future__ import annotations

import functools
import http.client
import re
import ssl
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import urlencode

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import Engine
from twisted.internet.defer import Deferred

import auth
import certs
import declare_app
import portal
from declare_app._declarations import CHINA_TIME, Declarations
from declare_app._retirement import YearMonth
from declare_app.interfaces import Actor, DeclarationType
from gateway import load_state_server_tls
from ssgate._console import console_factory
from ssgate._db import Database
from ssgate._schema import all_metadata
from ssgate._serve import Runner

UNIT_A, UNIT_B = "12345678", "87654321"
REGION = "330682"
ID_A = "330682199001011233"  # a man born 1990-01
ID_B = "330682197506150045"  # a woman born 1975-06
ID_C = "370101198802039970"  # in the persons table, no portal account
NOW = datetime(2025, 4, 10, 10, 0, 15, tzinfo=CHINA_TIME).timestamp()
TEST_TIMEOUT = 120.0
NEW_PASSWORD = "Portal-Person-Pass-2025"

P = ParamSpec("P")
AsyncTest = Callable[P, Coroutine[Any, Any, None]]


def reactor_test(test: AsyncTest[P]) -> AsyncTest[P]:
    """Run *test* on the reactor (pytest-twisted), failing it after TEST_TIMEOUT seconds."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        from twisted.internet import reactor

        await Deferred.fromCoroutine(test(*args, **kwargs)).addTimeout(TEST_TIMEOUT, reactor)

    marked: AsyncTest[P] = pytest_twisted.ensureDeferred(run)
    return marked


class SteppedClock:
    """The reactor's timers with a ``seconds()`` the test sets."""

    def __init__(self, now: float) -> None:
        from twisted.internet import reactor

        self.now = now
        self._reactor: Any = reactor

    def seconds(self) -> float:
        return self.now

    def callLater(self, delay: float, f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        return self._reactor.callLater(delay, f, *a, **kw)

    def getDelayedCalls(self) -> Any:
        return self._reactor.getDelayedCalls()


def person_add(
    id_number: str, name: str, start: str, wage: str, staff_kind: str = "B"
) -> dict[str, Any]:
    return {
        "name": name,
        "id_number": id_number,
        "nation": "01",
        "hukou_type": "A",
        "staff_kind": staff_kind,
        "hire_date": f"{start}-02",
        "insurances": ["110", "210", "310", "410", "510"],
        "add_type": "A",
        "start_month": start,
        "monthly_wage": wage,
        "phone": "13800000000",
    }


@dataclass
class Person:
    id_number: str
    person_number: str
    principal: str
    password: str = field(repr=False)
    secret: str = field(repr=False)


@dataclass
class World:
    engine: Engine
    hasher: auth.PasswordHasher
    box: auth.SecretBox
    people: dict[str, Person]
    declaration_ids: dict[str, list[str]]


def build_world(engine: Engine) -> World:
    for metadata in all_metadata():
        metadata.create_all(engine)
    numbers, ids = declare_persons(engine)
    hasher = auth.PasswordHasher(auth.Argon2Params())
    box = auth.SecretBox(auth.SecretBox.generate_key())
    people: dict[str, Person] = {}
    for key, id_number in (("a", ID_A), ("b", ID_B)):
        counter = portal.PersonCounter(
            engine=engine,
            box=box,
            hasher=hasher,
            totp_issuer="ssgate-test",
            clock=lambda: NOW - 50,
            actor="os:counter",
        )
        issued = counter.enrol(id_number)
        assert issued.otp_uri is not None
        secret = re.search(r"secret=([A-Z2-7]+)", issued.otp_uri)
        assert secret is not None
        people[key] = Person(
            id_number, numbers[id_number], issued.principal, issued.password, secret.group(1)
        )
    return World(engine, hasher, box, people, ids)


def declare_persons(engine: Engine) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Units A and B approved; persons A (unit A), B and C (unit B) added by applied
    person-add declarations in January 2025; January to March closed.  The 个人编号
    and the declaration ids by ID number."""
    rates = declare_app.demo_rate_table()
    jan = datetime(2025, 1, 10, 10, 0, tzinfo=CHINA_TIME).timestamp()
    workflow = Declarations(rates, clock=lambda: jan)
    auditor = Actor("staff", "zhang", role="auditor")
    employers = {
        code: Actor("employer", f"{REGION}{code}@sxlss", unit_code=code, session_id=f"s-{code}")
        for code in (UNIT_A, UNIT_B)
    }
    numbers: dict[str, str] = {}
    ids: dict[str, list[str]] = {}
    with engine.begin() as conn:
        for code, name in ((UNIT_A, "上虞示范机械厂"), (UNIT_B, "上虞另一家公司")):
            declare_app.register_unit(
                conn,
                code,
                name=name,
                region=REGION,
                credit_code=None,
                actor="os:t",
                now=1.0,
                injury_risk_class=3,
            )
            declare_app.approve_unit(conn, code, actor="os:t", now=2.0)
        for id_number, name, unit, wage in (
            (ID_A, "张三", UNIT_A, "6000"),
            (ID_B, "李四", UNIT_B, "8000"),
            (ID_C, "王五", UNIT_B, "7000"),
        ):
            actor = employers[unit]
            d = workflow.create_draft(
                conn,
                actor,
                DeclarationType.PERSON_ADD,
                person_add(id_number, name, "2025-01", wage),
                now=jan,
            )
            workflow.submit(conn, actor, d.id, now=jan)
            workflow.claim(conn, auditor, d.id, now=jan)
            done = workflow.approve(conn, auditor, d.id, now=jan)
            numbers[id_number] = str(done.result["person_no"])
            ids.setdefault(id_number, []).append(d.id)
        for month in (1, 2, 3):
            declare_app.close_month(
                conn,
                YearMonth(2025, month),
                rates=rates,
                current=YearMonth(2025, 4),
                actor="system",
                now=NOW - 100,
            )
    return numbers, ids


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


class Browser:
    """A blocking HTTPS client with a cookie jar (call it on a thread)."""

    def __init__(self, port: int, ca_file: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self.cookies: dict[str, str] = {}
        self.headers: dict[str, str] = {}
        self._conn: http.client.HTTPSConnection | None = None

    def _connection(self) -> http.client.HTTPSConnection:
        """One kept-alive connection, as a browser keeps one."""
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                "localhost", self.port, context=self.context, timeout=30
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, list[str]], bytes]:
        conn = self._connection()
        sent = dict(self.headers)
        sent.update(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self.close()  # the server closed a kept-alive connection: once more, afresh
            conn = self._connection()
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        got: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            got.setdefault(name.lower(), []).append(value)
        if response.will_close:
            self.close()
        for line in got.get("set-cookie", []):
            pair, *attrs = [p.strip() for p in line.split(";")]
            name, _, value = pair.partition("=")
            if not value or "max-age=0" in (a.lower() for a in attrs):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response.status, got, data

    def text(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        status, _, data = self.request(method, path, form)
        return status, data.decode("utf-8")

    def csrf(self, path: str) -> str:
        _, page = self.text("GET", path)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match is not None, page
        return match.group(1)

    def log_in(
        self, id_number: str, password: str, code: str
    ) -> tuple[int, dict[str, list[str]], bytes]:
        token = self.csrf("/login")
        return self.request(
            "POST",
            "/login",
            {"csrf_token": token, "id_number": id_number, "password": password, "otp": code},
        )


@dataclass
class Served:
    world: World
    clock: SteppedClock
    port: int
    ca_file: Path
    shell: portal.PortalShell

    def browser(self) -> Browser:
        return Browser(self.port, self.ca_file)

    def code(self, person: Person) -> str:
        return auth.current_code(person.secret, self.clock.now)

    def next_step(self) -> None:
        self.clock.now += 30


@pytest.fixture
def lockout_policy(request: pytest.FixtureRequest) -> auth.LockoutPolicy:
    """The default lockout, with source throttling out of the way unless a test
    passes its own policy (indirect parametrisation)."""
    given = getattr(request, "param", None)
    return given if given is not None else auth.LockoutPolicy(source_max_failures=1000)


@pytest.fixture
def served(world: World, tmp_path: Path, lockout_policy: auth.LockoutPolicy) -> Iterator[Served]:
    from twisted.internet import reactor

    now = datetime.now(UTC)
    ca = certs.CertificateAuthority.create("ssgate CA test", now=now)
    server = ca.issue_server(["localhost", "127.0.0.1"], now=now, validity_days=30)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "server.pem").write_bytes(server.cert_pem())
    (tmp_path / "server-key.pem").write_bytes(server.key_pem())
    tls = load_state_server_tls(tmp_path, require_client_cert=False).options
    clock = SteppedClock(NOW)
    runner = Runner(Database(world.engine, reactor), reactor)
    import os

    shell = portal.PortalShell(
        authenticator=auth.Authenticator(world.engine, world.hasher, world.box, lockout_policy),
        runner=runner,
        clock=clock,  # type: ignore[arg-type]
        form_key=bytes(range(32)),
        random_bytes=os.urandom,
        refusal_delay=0,
    )
    port = reactor.listenTCP(0, console_factory(shell.site(), tls), interface="127.0.0.1")
    yield Served(world, clock, port.getHost().port, tmp_path / "ca.pem", shell)
    port.stopListening()
    runner.close()
