"""The alert evaluator and the alerts table on real SQLite and PostgreSQL: incremental
evaluation behind the cursor, dedupe while open, handling audited, and two evaluators
racing on one database (as two gateway nodes do) raising every alert exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter

import pytest
from sqlalchemy import Engine, func, select

import audit
from audit._schema import alerts, metadata

T0 = 1_767_225_600.0
ACCOUNTS = [f"330682{n:08d}@sxlss" for n in range(1, 4)]


@pytest.fixture
def db(engine: Engine) -> Engine:
    metadata.create_all(engine)
    return engine


def fail(engine: Engine, account: str, *, at: float, host: str = "198.51.100.4") -> None:
    with engine.begin() as conn:
        audit.append(
            conn,
            audit.AuditEvent(
                at=at,
                actor=f"channel:{account}",
                action="login",
                subject=account,
                outcome="refused",
                reason="bad-password",
                details={"peer": f"{host}:40000", "certificate": "0A"},
            ),
        )


def evaluate(engine: Engine, *, now: float = T0 + 1000, batch: int = 2000) -> audit.Evaluation:
    with engine.begin() as conn:
        return audit.evaluate_alerts(conn, audit.AlertThresholds(), now=now, batch=batch)


def stored(engine: Engine) -> list[audit.AlertRow]:
    with engine.begin() as conn:
        return audit.list_alerts(conn, limit=1000)


def test_an_evaluation_raises_alerts_and_moves_the_cursor_and_a_repeat_refreshes_them(
    db: Engine,
) -> None:
    for i in range(30):
        fail(db, ACCOUNTS[i % 3], at=T0 + i)
    first = evaluate(db)
    assert (first.after_seq, first.last_seq, first.records, first.raised) == (0, 30, 30, 4)
    assert evaluate(db).records == 0  # nothing new: nothing judged again
    rows = {a.rule + ":" + (a.account or a.source): a for a in stored(db)}
    spray = rows["spraying:198.51.100.4"]
    assert spray.state == "new" and spray.evidence.accounts == tuple(sorted(ACCOUNTS))
    assert spray.evidence.seqs == tuple(range(1, 31))

    fail(db, ACCOUNTS[0], at=T0 + 40)
    again = evaluate(db)
    assert (again.raised, again.refreshed) == (0, 2)  # brute force on ACCOUNTS[0], spraying
    spray = next(a for a in stored(db) if a.rule == "spraying")
    assert spray.occurrences == 2 and spray.last_seen == T0 + 40 and 31 in spray.evidence.seqs


def test_a_batch_limit_judges_the_backlog_in_turns_with_the_look_back(db: Engine) -> None:
    for i in range(30):
        fail(db, ACCOUNTS[i % 3], at=T0 + i)
    turns = [evaluate(db, batch=7) for _ in range(5)]
    assert [t.records for t in turns] == [7, 7, 7, 7, 2]
    assert Counter(a.rule for a in stored(db)) == {"brute-force": 3, "spraying": 1}


def test_acknowledge_then_close_are_audited_and_a_closed_alert_frees_its_key(db: Engine) -> None:
    for i in range(10):
        fail(db, ACCOUNTS[0], at=T0 + i, host=f"192.0.2.{i}")
    evaluate(db)
    [alert] = stored(db)
    with db.begin() as conn:
        ack = audit.change_alert_state(
            conn, alert.id, "acknowledged", note="查看中", actor="staff:olga", now=T0 + 100
        )
        again = audit.change_alert_state(
            conn, alert.id, "acknowledged", note="再次", actor="staff:olga", now=T0 + 101
        )
        closed = audit.change_alert_state(
            conn, alert.id, "closed", note="已联系单位", actor="staff:olga", now=T0 + 102
        )
        gone = audit.change_alert_state(
            conn, 999, "closed", note="x", actor="staff:olga", now=T0 + 103
        )
        events = audit.query(conn, actions={"alert.acknowledge", "alert.close"})
    assert ack.alert is not None and ack.alert.state == "acknowledged" and ack.refused == ""
    assert again.refused == "already-acknowledged"
    assert closed.alert is not None and closed.alert.state == "closed"
    assert (closed.alert.note, closed.alert.changed_by) == ("已联系单位", "staff:olga")
    assert gone == audit.StateChange(None, "no-such-alert")
    assert [(e.event.action, e.event.outcome, e.event.reason) for e in events] == [
        ("alert.acknowledge", "ok", ""),
        ("alert.acknowledge", "refused", "already-acknowledged"),
        ("alert.close", "ok", ""),
        ("alert.close", "refused", "no-such-alert"),
    ]
    assert events[2].event.details["note"] == "已联系单位"
    # The same thing again after the close is a new alert, not a refresh of the closed one.
    fail(db, ACCOUNTS[0], at=T0 + 200)
    assert evaluate(db).raised == 1
    assert [a.state for a in stored(db)] == ["new", "closed"]


def test_the_list_filters_and_pages_newest_first(db: Engine) -> None:
    for n in range(5):
        for i in range(10):
            fail(db, f"330682{n:08d}@sxlss", at=T0 + n * 1000 + i, host=f"192.0.2.{i}")
        evaluate(db, now=T0 + n * 1000 + 100)
    with db.begin() as conn:
        ids = [a.id for a in audit.list_alerts(conn)]
        page2 = audit.list_alerts(conn, before=ids[1], limit=2)
        high = audit.list_alerts(conn, severity="high", rule="brute-force", state="new")
        none = audit.list_alerts(conn, state="closed")
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    assert [a.id for a in page2] == ids[2:4]
    assert len(high) == 5 and none == []


def race(engine: Engine, evaluators: int) -> list[str]:
    errors: list[str] = []
    start = threading.Barrier(evaluators)

    def run() -> None:
        try:
            start.wait(timeout=30)
            for _ in range(20):
                evaluate(engine, batch=5)
        except Exception as e:  # reported to the test thread
            errors.append(repr(e))

    threads = [threading.Thread(target=run) for _ in range(evaluators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_two_evaluators_racing_raise_every_alert_exactly_once(db: Engine) -> None:
    """Two nodes evaluating the same database at once: the cursor lock lets one judge
    each record, so each alert exists once and the cursor ends at the last record."""
    for i in range(60):
        fail(db, ACCOUNTS[i % 3], at=T0 + i)
    # a second source sprays too, and a fourth account is brute-forced from many hosts
    for i in range(12):
        fail(db, ACCOUNTS[i % 3], at=T0 + 100 + i, host="203.0.113.50")
        fail(db, "33068299999999@sxlss", at=T0 + 100 + i, host=f"192.0.2.{i}")
    assert race(db, 2) == []
    rows = stored(db)
    assert Counter(a.rule for a in rows) == {"brute-force": 4, "spraying": 2}
    with db.begin() as conn:
        total = conn.execute(select(func.count()).select_from(alerts)).scalar_one()
        assert audit.evaluate_alerts(conn, audit.AlertThresholds(), now=T0).after_seq == 84
    assert total == 6


EVALUATOR = """
import sys
import audit
from ssgate._db import make_engine

engine = make_engine(sys.argv[1])
with engine.connect():
    pass
print("ready", flush=True)
sys.stdin.readline()
for _ in range(30):
    with engine.begin() as conn:
        audit.evaluate_alerts(conn, audit.AlertThresholds(), now=1_767_226_600.0, batch=3)
engine.dispose()
"""


@pytest.mark.slow
def test_two_evaluator_processes_racing_raise_every_alert_exactly_once(db: Engine) -> None:
    for i in range(60):
        fail(db, ACCOUNTS[i % 3], at=T0 + i)
    url = db.url.render_as_string(hide_password=False)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EVALUATOR, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert Counter(a.rule for a in stored(db)) == {"brute-force": 3, "spraying": 1}


def test_the_evaluator_asks_the_registry_when_sessions_without_an_end_event_ended(
    db: Engine,
) -> None:
    account = ACCOUNTS[0]
    with db.begin() as conn:
        for sid, host, at in (("s1", "203.0.113.7", T0), ("s2", "198.51.100.4", T0 + 600)):
            audit.append(
                conn,
                audit.AuditEvent(
                    at=at,
                    actor=f"channel:{account}",
                    action="login",
                    subject=account,
                    outcome="ok",
                    session_id=sid,
                    details={"peer": f"{host}:1"},
                ),
            )
    asked: list[list[str]] = []

    def reaped(conn: object, ids: list[str]) -> dict[str, float]:
        asked.append(list(ids))
        return {"s1": T0 + 300}

    with db.begin() as conn:
        done = audit.evaluate_alerts(
            conn, audit.AlertThresholds(), now=T0 + 601, session_ends=reaped
        )
    assert done.raised == 0 and asked == [["s1", "s2"]]


def test_a_dedupe_key_longer_than_its_column_is_stored_as_its_hash(db: Engine) -> None:
    """A key holds what a client chose (here a certificate serial of 1,000 characters):
    PostgreSQL would refuse it whole, so the rule and its SHA-256 stand in for it."""
    for at in (T0, T0 + 1):
        with db.begin() as conn:
            audit.append(
                conn,
                audit.AuditEvent(
                    at=at,
                    actor="channel:x",
                    action="login",
                    subject="a" * 255,
                    outcome="refused",
                    reason="cert-revoked",
                    details={"peer": "192.0.2.1:1", "certificate": "F" * 1000},
                ),
            )
        evaluate(db)
    [alert] = stored(db)
    assert alert.rule == "revoked-cert" and alert.occurrences == 2
    with db.begin() as conn:
        key = conn.execute(select(alerts.c.dedupe_key)).scalar_one()
    assert key.startswith("revoked-cert:sha256:") and len(key) == 20 + 64
