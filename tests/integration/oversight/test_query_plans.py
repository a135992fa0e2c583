"""The officers' heaviest reads seek the audit log, never walk it, on both databases.

A session's timeline (its events by session id, and the login attempts of its
account in the minutes before it started) and the login failures view (failed
``login`` events of the last 24 hours) must cost what the rows they show cost, not
what the log's length costs: on a million events, a plan that reads every ``login``
ever logged takes a third of a second (docs/benchmarks.md, the officer pages).  This
pins the plans, not a time: each statement on ``audit_events`` is answered from an
index whose condition holds the session id or the time range.

SQLite is left without statistics (ssgate never runs ANALYZE there, so its planner
chooses by the indexes' shape alone); PostgreSQL gets ``ANALYZE`` after the load, as
autovacuum would, on enough rows that a sequential scan is not the cheap choice.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, insert, text

import audit
import gateway
from audit._schema import audit_events
from gateway import _sessions
from oversight import session_timeline
from ssgate._schema import upgrade

NOW = 1_767_225_600.0
DAY = 86_400.0
ACCOUNTS = [f"330682{20000001 + i}@sxlss" for i in range(40)]
SESSION = "5e55" * 8
EVENTS = 30_000


def _load(engine: Engine) -> None:
    """30 days of a small channel: logins (some refused) and declaration actions of
    40 accounts, and one session with its events; hashes are not checked here."""
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    for seq in range(1, EVENTS + 1):
        account = rng.choice(ACCOUNTS)
        login = rng.random() < 0.3
        refused = login and rng.random() < 0.2
        rows.append(
            {
                "seq": seq,
                "at": NOW - 30 * DAY + seq * (30 * DAY / EVENTS),
                "actor": f"channel:{account}",
                "action": "login" if login else rng.choice(["declare.list", "declare.view"]),
                "subject": account,
                "outcome": "refused" if refused else "ok",
                "reason": "bad-password" if refused else "",
                "unit": "" if refused else account[6:14],
                "session_id": "" if refused else f"{rng.getrandbits(128):032x}",
                "details": json.dumps({"peer": f"192.0.2.{rng.randrange(1, 200)}:40000"}),
                "prev_hash": "0" * 64,
                "hash": "0" * 64,
            }
        )
    for i in range(20):
        rows[-100 - i]["session_id"] = SESSION
    with engine.begin() as conn:
        conn.execute(insert(audit_events), rows)
        assert _sessions.start_session(
            conn,
            session_id=SESSION,
            account=ACCOUNTS[0],
            unit_code=ACCOUNTS[0][6:14],
            peer="192.0.2.7:40000",
            cert_serial="0A",
            node="node-a",
            now=NOW - DAY / 2,
            max_concurrent=10,
        )
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE audit_events"))
            conn.execute(text("ANALYZE sessions"))


def _audit_statements(engine: Engine, fn: Callable[[Connection], object]) -> list[tuple[str, Any]]:
    """The statements on audit_events that ``fn(conn)`` runs, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:  # conn, cursor, statement, parameters, context, many
        if "FROM audit_events" in args[2]:
            seen.append((args[2], args[3]))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.begin() as conn:
            fn(conn)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert seen, "the function read nothing from audit_events"
    return seen


def _sqlite_plan(conn: Connection, statement: str, parameters: Any) -> list[str]:
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return [str(row[3]) for row in cur.fetchall()]
    finally:
        cur.close()


def _postgresql_scans(conn: Connection, statement: str, parameters: Any) -> list[dict[str, Any]]:
    """The plan's nodes that read audit_events."""
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        plan = cur.fetchone()[0][0]["Plan"]
    finally:
        cur.close()
    found: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Relation Name") == "audit_events":
            found.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return found


def _condition_on(column: str, condition: str) -> bool:
    """Whether an index condition (SQLite ``at>?``, PostgreSQL ``(at >= …)`` or
    ``((session_id)::text = …)``) constrains *column*."""
    return re.search(rf"\b{column}\b\)?(::\w+)?\s*[<>=]", condition) is not None


def assert_seeks(engine: Engine, statement: str, parameters: Any, *, column: str) -> None:
    """The statement reads audit_events only through an index search whose condition
    constrains *column* — never a scan of the table, nor of a whole index."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            plan = _sqlite_plan(conn, statement, parameters)
            reads = [line for line in plan if "audit_events" in line]
            assert reads, plan
            for line in reads:
                assert line.startswith("SEARCH audit_events USING"), (statement, plan)
                assert _condition_on(column, line.partition("(")[2]), (statement, plan)
        else:
            scans = _postgresql_scans(conn, statement, parameters)
            assert scans, statement
            for node in scans:
                kinds = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
                assert node["Node Type"] in kinds, (statement, node)
                condition = node.get("Index Cond") or node.get("Recheck Cond") or ""
                assert _condition_on(column, condition), (statement, node)


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    upgrade(engine)
    _load(engine)
    return engine


def test_a_timeline_seeks_its_session_and_its_login_window(loaded: Engine) -> None:
    """The session's events by session id; the account's login attempts by the time
    window before the start, not by every login the log holds."""
    registry = gateway.SessionRegistryView()

    def timeline(conn: Connection) -> object:
        found = session_timeline(conn, registry, SESSION)
        assert found is not None and len(found.entries) >= 20
        return found

    by_session, attempts = _audit_statements(loaded, timeline)
    assert_seeks(loaded, *by_session, column="session_id")
    assert_seeks(loaded, *attempts, column="at")


def test_the_failed_logins_of_the_last_day_seek_the_time_range(loaded: Engine) -> None:
    """The failures view's query (failed ``login`` events of the last 24 hours, read
    with :func:`audit.query`) seeks the day by the (action, at) index."""

    def failures(conn: Connection) -> object:
        return audit.query(conn, actions={"login"}, since=NOW - DAY, until=NOW)

    [(statement, parameters)] = _audit_statements(loaded, failures)
    assert_seeks(loaded, statement, parameters, column="at")
