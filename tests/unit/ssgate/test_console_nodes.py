"""The staff console on several nodes: two console sites on one database, as two
``ssgate serve`` processes sharing PostgreSQL would be (here SQLite, in memory time).

Sessions and the login form's key are shared, not per process: a cookie from one node
works on the other, a login form loaded on one may be sent to the other, and a logout
or a disable on one ends the session on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine, select
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher

import audit
import auth
from auth._schema import console_sessions
from auth.testing import SynchronousRunner
from ssgate._console import SessionPolicy, console_site, login_form_key, session_sweeper
from ssgate._console.testing import ConsoleClient
from ssgate._db import make_engine

NOW = 1_767_225_600.0
PASSWORD = "Correct-Horse-9-battery"
IDENTITY_KEY = bytes(range(32))


@dataclass
class Nodes:
    engine: Engine
    clock: MemoryReactorClock
    runner: SynchronousRunner
    secret: str
    a: object
    b: object

    def browser(self, site: object) -> ConsoleClient:
        return ConsoleClient(site, clock=self.clock)  # type: ignore[arg-type]

    def log_in(self, site: object) -> ConsoleClient:
        client = self.browser(site)
        reply = client.login(
            "carol", PASSWORD, auth.current_code(self.secret, self.clock.seconds())
        )
        assert reply.status == 303 and reply.location == "/", reply.text
        self.clock.advance(30)  # the next login needs the next TOTP step
        return client

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.engine.begin() as conn:
            return [r.event for r in audit.query(conn) if r.event.action == action]


def _site(
    nodes_engine: Engine, clock: MemoryReactorClock, runner: SynchronousRunner, key: bytes
) -> object:
    hasher = auth.PasswordHasher(auth.Argon2Params())
    return console_site(
        authenticator=auth.Authenticator(nodes_engine, hasher, BOX),
        runner=runner,
        workflow=None,
        clock=clock,
        secure=False,
        refusal_delay=0,
        login_form_key=key,
    )


BOX = auth.SecretBox(auth.SecretBox.generate_key())


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    engine = make_engine(f"sqlite:///{tmp_path}/console.db")
    auth.metadata.create_all(engine)
    audit.metadata.create_all(engine)
    secret = auth.new_totp_secret()
    with engine.begin() as conn:
        auth.create_staff(
            conn,
            "carol",
            "carrier",
            password_hash=auth.PasswordHasher(auth.Argon2Params()).hash(PASSWORD),
            totp_secret_sealed=BOX.seal(secret, context=auth.totp_secret_context("carol")),
            now=NOW,
        )
    clock = MemoryReactorClock()
    clock.advance(NOW)
    runner = SynchronousRunner(engine)
    key = login_form_key(IDENTITY_KEY)
    yield Nodes(
        engine,
        clock,
        runner,
        secret,
        _site(engine, clock, runner, key),
        _site(engine, clock, runner, key),
    )
    engine.dispose()


def test_login_form_key_is_derived_from_the_identity_key_and_nothing_else() -> None:
    key = login_form_key(IDENTITY_KEY)
    assert key == login_form_key(bytes(range(32)))  # every node, every restart
    assert len(key) == 32 and key != IDENTITY_KEY
    assert key != login_form_key(bytes(32))


def test_a_cookie_from_one_node_works_on_the_other(nodes: Nodes) -> None:
    on_a = nodes.log_in(nodes.a)
    on_b = nodes.browser(nodes.b)
    on_b.cookies = dict(on_a.cookies)
    assert on_b.get("/").status == 200
    assert on_a.get("/").status == 200
    # the idle clock is shared too: activity on B keeps the session alive on A
    for _ in range(3):
        nodes.clock.advance(10 * 60)
        assert on_b.get("/").status == 200
    assert on_a.get("/").status == 200


def test_a_login_form_from_one_node_can_be_sent_to_the_other(nodes: Nodes) -> None:
    browser = nodes.browser(nodes.a)
    token = browser.get("/login").csrf_token()
    on_b = nodes.browser(nodes.b)
    on_b.cookies = dict(browser.cookies)
    reply = on_b.post(
        "/login",
        {
            "csrf_token": token,
            "name": "carol",
            "password": PASSWORD,
            "otp": auth.current_code(nodes.secret, nodes.clock.seconds()),
        },
    )
    assert reply.status == 303 and reply.location == "/"


def test_a_node_with_another_key_refuses_the_login_form(nodes: Nodes) -> None:
    other = _site(nodes.engine, nodes.clock, nodes.runner, login_form_key(bytes(32)))
    browser = nodes.browser(nodes.a)
    token = browser.get("/login").csrf_token()
    stranger = nodes.browser(other)
    stranger.cookies = dict(browser.cookies)
    reply = stranger.post(
        "/login",
        {
            "csrf_token": token,
            "name": "carol",
            "password": PASSWORD,
            "otp": auth.current_code(nodes.secret, nodes.clock.seconds()),
        },
    )
    assert reply.status == 403
    assert [e.reason for e in nodes.events("console.login")] == ["csrf-token"]


def test_logout_on_one_node_ends_the_session_on_both(nodes: Nodes) -> None:
    on_a = nodes.log_in(nodes.a)
    on_b = nodes.browser(nodes.b)
    on_b.cookies = dict(on_a.cookies)
    assert on_b.submit("/", "/logout").location == "/login"
    assert on_a.get("/").location == "/login"
    with nodes.engine.begin() as conn:
        assert conn.execute(select(console_sessions)).first() is None


def test_a_disable_ends_every_session_on_every_node_and_each_end_is_audited_once(
    nodes: Nodes,
) -> None:
    first = nodes.log_in(nodes.a)
    second = nodes.log_in(nodes.b)
    refs = {e.session_id for e in nodes.events("console.login")}
    with nodes.engine.begin() as conn:
        auth.set_staff_status(conn, "carol", "disabled", now=nodes.clock.seconds())
    for browser in (first, second):
        on_other = nodes.browser(nodes.b if browser is first else nodes.a)
        on_other.cookies = dict(browser.cookies)
        assert on_other.get("/").location == "/login"
        assert browser.get("/").location == "/login"
    ends = nodes.events("console.session-end")
    assert {(e.actor, e.reason) for e in ends} == {("staff:carol", "staff-disabled")}
    assert sorted(e.session_id for e in ends) == sorted(refs)  # one event per session


def test_session_work_runs_on_the_database_runner(nodes: Nodes) -> None:
    """Look-ups, logins and logouts are transactions handed to runner.run, so under
    ``ssgate serve`` they run on the database pool, never on the reactor thread."""
    browser = nodes.log_in(nodes.a)
    browser.submit("/", "/logout")
    calls = nodes.runner.calls
    # the one fake records a transaction by its function's name, a login-pool call
    # as "call:<name>"
    assert {"_open_session", "_session_and_staff", "end"} <= set(calls)
    assert not any("session" in c for c in calls if c.startswith("call:"))


def test_the_sweeper_deletes_expired_sessions_every_minute(nodes: Nodes) -> None:
    nodes.log_in(nodes.a)
    policy = SessionPolicy(idle_seconds=120, max_age_seconds=600)
    sweeper = session_sweeper(nodes.runner, nodes.clock, policy)
    sweeper.startService()
    try:
        assert _count(nodes.engine) == 1
        nodes.clock.advance(60)
        assert _count(nodes.engine) == 1
        nodes.clock.advance(60)
        assert _count(nodes.engine) == 0
    finally:
        sweeper.stopService()


def test_a_failed_sweep_is_logged_and_the_next_one_runs(nodes: Nodes) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.runs = 0

        def run(self, fn: object, *args: object, **kwargs: object) -> Deferred[object]:
            self.runs += 1
            if self.runs == 1:
                return fail(RuntimeError("database away"))
            return succeed(0)

    flaky = Flaky()
    logged: list[LogEvent] = []
    observer = cast(ILogObserver, logged.append)
    globalLogPublisher.addObserver(observer)
    sweeper = session_sweeper(flaky, nodes.clock, SessionPolicy())
    try:
        sweeper.startService()  # the first sweep runs at once, and fails
        nodes.clock.advance(60)
        nodes.clock.advance(60)
    finally:
        sweeper.stopService()
        globalLogPublisher.removeObserver(observer)
    assert flaky.runs == 3
    [failure] = [e for e in logged if "log_failure" in e]
    assert failure["task"] == "console session sweep"
    assert failure["error"] == {"type": "RuntimeError", "message": "database away"}
    [recovered] = [e for e in logged if "recovered" in e["log_format"]]
    assert recovered["total"] == 1


def _count(engine: Engine) -> int:
    with engine.begin() as conn:
        return len(conn.execute(select(console_sessions)).all())
