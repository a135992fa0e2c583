"""A database that is down is an outage, not a bug: 503 with Retry-After on both sites.

The errors are the real ones (SQLite on a file it cannot open, psycopg refused a
connection, SQLAlchemy's wrappers of both); the sites are driven in memory (the
console through :class:`ssgate._console.testing.ConsoleClient`, the employer site
through the identity guard), time on a ``MemoryReactorClock``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, exc, text
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, globalLogPublisher

import audit
import auth
import web
from auth.testing import SynchronousRunner
from declare_app.web import employer_site
from declare_app.web.testing import CSRF_KEY, GuardedClient, MemoryWorkflow
from ssgate._console import console_site
from ssgate._console.testing import ConsoleClient, enrol_staff
from ssgate._db import make_engine

NOW = 1_767_225_600.0
PASSWORD = "Correct-Horse-9-battery"


def unopenable(tmp_path: Path) -> exc.OperationalError:
    """What SQLAlchemy raises for an SQLite file in a directory that does not exist."""
    engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except exc.OperationalError as e:
        return e
    finally:
        engine.dispose()
    raise AssertionError("the file opened")


def test_sqlite_that_cannot_open_its_file_is_an_outage(tmp_path: Path) -> None:
    error = unopenable(tmp_path)
    assert "unable to open database file" in str(error.orig)
    assert web.is_outage(error)
    assert web.is_outage(error.orig)


@pytest.mark.parametrize(
    "words",
    ["disk I/O error", "database or disk is full", "database is locked"],
)
def test_sqlite_disk_and_lock_trouble_is_an_outage(words: str) -> None:
    assert web.is_outage(exc.OperationalError("INSERT", {}, sqlite3.OperationalError(words)))


def test_a_missing_table_or_bad_sql_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    for statement in ("SELECT * FROM nowhere", "SELEKT 1"):
        with pytest.raises(exc.OperationalError) as caught, engine.connect() as conn:
            conn.execute(text(statement))
        assert not web.is_outage(caught.value)
    engine.dispose()
    assert not web.is_outage(ValueError("x"))
    assert not web.is_outage(exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("unique")))


def test_postgresql_refusing_connections_is_an_outage() -> None:
    pytest.importorskip("psycopg")
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(exc.OperationalError) as caught, engine.connect():
        pass
    engine.dispose()
    assert web.is_outage(caught.value)
    assert type(caught.value.orig).__module__.startswith("psycopg")


def test_a_pool_that_gives_no_connection_in_time_is_an_outage() -> None:
    assert web.is_outage(exc.TimeoutError("QueuePool limit reached"))


# -- the runner --------------------------------------------------------------------------


class FailingRunner:
    """:class:`auth.Runner` whose calls fail with *error()* while :attr:`down`; calls
    to functions named in *spared* still run on *inner* (a session lookup that got
    through before the database went away)."""

    def __init__(
        self,
        inner: Any,
        error: Callable[[], BaseException],
        spared: tuple[str, ...] = (),
    ) -> None:
        self.inner = inner
        self.error = error
        self.spared = spared
        self.down = False

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        if self.down and getattr(fn, "__name__", "") not in self.spared:
            return fail(self.error())
        d: Deferred[Any] = self.inner.run(fn, *args, **kwargs)
        return d

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        if self.down:
            return fail(self.error())
        d: Deferred[Any] = self.inner.call(fn, *args, **kwargs)
        return d


@pytest.fixture
def warnings() -> Iterator[list[LogEvent]]:
    seen: list[LogEvent] = []

    def keep(event: LogEvent) -> None:
        if str(event.get("log_namespace", "")).startswith("web."):
            seen.append(event)

    globalLogPublisher.addObserver(keep)
    yield seen
    globalLogPublisher.removeObserver(keep)


def test_the_runner_turns_an_outage_into_503_and_reports_it_once_a_minute(
    tmp_path: Path, warnings: list[LogEvent]
) -> None:
    error = unopenable(tmp_path)
    clock = MemoryReactorClock()
    runner = web.OutageRunner(FailingRunner(None, lambda: error), clock=clock.seconds)
    runner._inner.down = True
    caught: list[Any] = []
    for _ in range(3):
        runner.run(lambda conn: None).addErrback(caught.append)
    assert all(f.check(web.DatabaseUnavailable) for f in caught)
    unavailable = caught[0].value
    assert (unavailable.status, unavailable.code) == (503, "database-unavailable")
    assert (b"Retry-After", b"30") in unavailable.headers
    assert unavailable.__cause__ is error
    reports = [e for e in warnings if "database unavailable" in e.get("log_format", "")]
    assert len(reports) == 1 and reports[0]["log_level"].name == "warn"
    clock.advance(61)
    runner.run(lambda conn: None).addErrback(caught.append)
    reports = [e for e in warnings if "database unavailable" in e.get("log_format", "")]
    assert [r["count"] for r in reports] == [1, 3]


def test_the_runner_lets_a_bug_through_unchanged() -> None:
    runner = web.OutageRunner(FailingRunner(None, lambda: KeyError("bug")), clock=lambda: 0.0)
    runner._inner.down = True
    caught: list[Any] = []
    runner.run(lambda conn: None).addErrback(caught.append)
    assert caught[0].check(KeyError)


# -- the staff console -------------------------------------------------------------------


class Console:
    def __init__(self, tmp_path: Path, *, wrap: bool = True) -> None:
        self.engine: Engine = make_engine(f"sqlite:///{tmp_path}/console.db")
        auth.metadata.create_all(self.engine)
        audit.metadata.create_all(self.engine)
        hasher = auth.PasswordHasher(auth.Argon2Params())
        box = auth.SecretBox(auth.SecretBox.generate_key())
        with self.engine.begin() as conn:
            self.secrets = enrol_staff(
                conn, [("otto", "officer")], password=PASSWORD, hasher=hasher, box=box, now=NOW
            )
        self.clock = MemoryReactorClock()
        self.clock.advance(NOW)
        error = unopenable(tmp_path)
        self.failing = FailingRunner(
            SynchronousRunner(self.engine), lambda: error, spared=("_session_and_staff",)
        )
        runner: Any = web.OutageRunner(self.failing, clock=self.clock.seconds)
        site = console_site(
            login_form_key=bytes(range(32)),
            authenticator=auth.Authenticator(self.engine, hasher, box),
            runner=runner if wrap else self.failing,
            workflow=None,
            clock=self.clock,
            secure=False,
            refusal_delay=0.0,
        )
        self.client = ConsoleClient(site, clock=self.clock)

    def login(self) -> None:
        code = auth.current_code(self.secrets["otto"], self.clock.seconds())
        assert self.client.login("otto", PASSWORD, code).status == 303


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    c = Console(tmp_path)
    yield c
    c.engine.dispose()


def test_a_console_page_whose_query_meets_an_outage_is_503_with_the_navigation(
    console: Console,
) -> None:
    console.login()
    assert console.client.get("/events").status == 200
    console.failing.down = True  # the session lookup still answers; the page's query not
    reply = console.client.get("/events")
    assert reply.status == 503
    assert reply.header("retry-after") == "30"
    assert "服务暂不可用" in reply.text and "数据库暂时无法访问" in reply.text
    assert 'href="/sessions"' in reply.text and 'href="/alerts"' in reply.text  # the nav
    assert '<a href="/events">重试</a>' in reply.text
    assert "otto" in reply.text


def test_a_console_request_whose_session_cannot_be_looked_up_is_503(console: Console) -> None:
    console.login()
    console.failing.spared = ()
    console.failing.down = True
    reply = console.client.get("/sessions?page=2")
    assert reply.status == 503
    assert reply.header("retry-after") == "30"
    assert 'href="/sessions?page=2"' in reply.text  # try again
    assert console.client.get("/nowhere").status == 503  # the 404 path looks up too


def test_a_console_login_while_the_database_is_down_is_503_not_500(console: Console) -> None:
    console.failing.down = True
    token = console.client.get("/login").csrf_token()  # the form needs no database
    reply = console.client.post(
        "/login", {"csrf_token": token, "name": "otto", "password": PASSWORD, "otp": "123456"}
    )
    assert reply.status == 503
    assert reply.header("retry-after") == "30"


def test_the_console_recognises_a_raw_outage_without_the_runner_wrapper(tmp_path: Path) -> None:
    console = Console(tmp_path, wrap=False)
    console.login()
    console.failing.down = True
    reply = console.client.get("/events")
    assert reply.status == 503
    assert reply.header("retry-after") == "30"
    console.engine.dispose()


# -- the employer site -------------------------------------------------------------------


@pytest.fixture
def employer(tmp_path: Path) -> tuple[GuardedClient, FailingRunner]:
    clock = MemoryReactorClock()
    clock.advance(NOW)
    error = unopenable(tmp_path)
    failing = FailingRunner(SynchronousRunner(), lambda: error)
    site = employer_site(
        workflow=MemoryWorkflow(require_runner=True),
        runner=web.OutageRunner(failing, clock=clock.seconds),  # type: ignore[arg-type]
        clock=clock,
        csrf_key=CSRF_KEY,
    )
    return GuardedClient(site, clock), failing


def test_the_employer_api_answers_problem_json_503_when_the_database_is_down(
    employer: tuple[GuardedClient, FailingRunner],
) -> None:
    client, failing = employer
    assert client.get("/api/v1/declarations").status == 200
    failing.down = True
    reply = client.get("/api/v1/declarations")
    assert reply.status == 503
    assert reply.header("retry-after") == "30"
    assert reply.header("content-type") == "application/problem+json; charset=utf-8"
    problem = json.loads(reply.body)
    assert (problem["status"], problem["error"]) == (503, "database-unavailable")
    assert problem["title"] == "服务暂不可用"


def test_an_employer_page_is_503_in_the_sites_layout_when_the_database_is_down(
    employer: tuple[GuardedClient, FailingRunner],
) -> None:
    client, failing = employer
    failing.down = True
    reply = client.get("/declarations")
    assert reply.status == 503
    assert reply.header("retry-after") == "30"
    assert "数据库暂时无法访问" in reply.text
    assert "<nav" in reply.text and 'href="/declarations"' in reply.text


def test_the_route_layer_answers_an_escaped_outage_with_503() -> None:
    """A dispatcher that lets an outage escape still gets 503, not 500."""

    class Escaping:
        async def handle(self, request: Any, route: Any, params: Any) -> web.Response:
            raise exc.OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))

        async def unrouted(self, request: Any, status: int, allowed: Any) -> web.Response:
            raise AssertionError

    async def never(ctx: Any) -> web.Response:
        raise AssertionError

    table = web.RouteTable(
        site="t",
        routes=(web.Route("GET", "/x", ("r",), never),),
        roles=frozenset({"r"}),
        max_body=10,
    )
    routed = web.RoutedResource(table, Escaping(), tls=False)
    site = web.WebSite(
        routed.resource(),
        reactor=MemoryReactorClock(),
        body_limit=routed.body_limit,
        too_large=lambda path, limit: web.plain(413, "big"),
        security_headers=(),
    )
    reply = ConsoleClient(site, clock=MemoryReactorClock()).get("/x")
    assert reply.status == 503
    assert reply.header("retry-after") == "30"
