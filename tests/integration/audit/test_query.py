"""The officers' reads of the log on SQLite and PostgreSQL: :class:`audit.EventFilter`
and its keyset batches (:func:`audit.event_batch`, :func:`audit.iter_events`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine

import audit
from audit._schema import metadata

T0 = 1_700_000_000.0
A = "33068212345678@sxlss"


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    metadata.create_all(engine)
    yield engine


def add(engine: Engine, *events: dict[str, Any]) -> list[int]:
    with engine.begin() as conn:
        return [
            audit.append(
                conn,
                audit.AuditEvent(
                    **{"at": T0, "actor": "gateway", "subject": "-", "outcome": "ok", **e}
                ),
            ).seq
            for e in events
        ]


def seqs(engine: Engine, **filters: Any) -> list[int]:
    with engine.begin() as conn:
        return [r.seq for r in audit.iter_events(conn, audit.EventFilter(**filters))]


def test_account_is_what_it_was_subject_of_and_what_it_did_as_channel(db: Engine) -> None:
    mine = add(
        db,
        {"action": "provision.open", "actor": "staff:carl", "subject": A},
        {"action": "declare.submit", "actor": f"channel:{A}", "subject": "D-1"},
    )
    add(db, {"action": "declare.submit", "actor": "channel:other@sxlss", "subject": "D-2"})
    add(db, {"action": "x", "actor": f"channel:{A}x", "subject": f"{A}x"})  # not a prefix match
    assert seqs(db, account=A) == mine


def test_action_is_the_action_and_its_sub_actions_with_wildcards_taken_literally(
    db: Engine,
) -> None:
    wanted = add(db, {"action": "login"}, {"action": "login.resume"})
    add(db, {"action": "loginx"}, {"action": "log_in"}, {"action": "console.login"})
    assert seqs(db, action="login") == wanted
    assert seqs(db, action="lo_in") == []  # _ is a character, not LIKE's wildcard
    assert seqs(db, action="%") == []


def test_source_is_the_peer_or_source_host_and_not_a_longer_one(db: Engine) -> None:
    wanted = add(
        db,
        {"action": "login", "details": {"peer": "192.0.2.7:5000"}},
        {"action": "console.login", "details": {"source": "192.0.2.7"}},
        {"action": "declare.query", "details": {"source": "192.0.2.7:81"}},
    )
    add(db, {"action": "login", "details": {"peer": "192.0.2.70:5000"}})
    add(db, {"action": "login", "details": {"note": "192.0.2.7"}})
    assert seqs(db, source="192.0.2.7") == wanted


def test_the_other_filters_and_the_time_range(db: Engine) -> None:
    first, second, _ = add(
        db,
        {"action": "a", "unit": "12345678", "session_id": "s1", "outcome": "refused", "at": T0},
        {"action": "a", "unit": "12345678", "at": T0 + 10},
        {"action": "a", "unit": "87654321", "at": T0 + 20},
    )
    assert seqs(db, unit="12345678") == [first, second]
    assert seqs(db, session_id="s1") == [first]
    assert seqs(db, outcome="refused") == [first]
    assert seqs(db, since=T0 + 10, until=T0 + 20) == [second]
    with pytest.raises(audit.AuditEventError):
        audit.EventFilter(outcome="maybe")


def test_batches_walk_every_match_once_in_both_orders_and_stop_at_upto(db: Engine) -> None:
    added = add(db, *({"action": "a" if n % 3 else "b", "at": T0 + n} for n in range(25)))
    wanted = [s for n, s in enumerate(added) if n % 3]
    with db.begin() as conn:
        where = audit.EventFilter(action="a")
        assert [r.seq for r in audit.iter_events(conn, where, batch=4)] == wanted
        newest = [r.seq for r in audit.iter_events(conn, where, batch=4, newest_first=True)]
        assert newest == wanted[::-1]
        upto = wanted[7]
        assert [r.seq for r in audit.iter_events(conn, where, upto=upto, batch=3)] == wanted[:8]
        assert audit.last_seq(conn) == added[-1]
        page = audit.event_batch(conn, where, before=wanted[5], limit=2, newest_first=True)
        assert [r.seq for r in page] == [wanted[4], wanted[3]]


def test_a_view_row_has_the_time_in_the_zone_with_its_offset_and_no_epoch(db: Engine) -> None:
    add(db, {"action": "a", "at": T0 + 0.5, "details": {"k": 1}})
    with db.begin() as conn:
        [record] = audit.iter_events(conn, audit.EventFilter())
    row = audit.view_row(record, timezone(timedelta(hours=8)))
    assert list(row) == list(audit.VIEW_FIELDS)
    assert row["time"] == "2023-11-15T06:13:20.500000+08:00"
    assert datetime.fromisoformat(row["time"]).timestamp() == T0 + 0.5
    assert row["details"] == {"k": 1} and not any(isinstance(v, float) for v in row.values())
